/*
 * Unit tests of the shared helpers: the per-thread scratch buffers
 * (src/util/scratch.c).  Under check-asan the leak checker also sees that a
 * thread's buffers go with the thread.
 */
#include <check.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "crpfs/util.h"

static bool all_bytes(const uint8_t *p, size_t len, uint8_t v)
{
	for (size_t i = 0; i < len; i++)
		if (p[i] != v)
			return false;
	return true;
}

/* A buffer given back is the one the next take of that use gets: nothing is
 * allocated per request once the thread has one large enough. */
START_TEST(test_scratch_kept)
{
	uint8_t *a, *b;

	a = crp_scratch_take(CRP_SCRATCH_FILE_W, 1 << 20, false);
	ck_assert_ptr_nonnull(a);
	ck_assert_uint_eq((uintptr_t)a % CRP_BUF_ALIGN, 0);
	memset(a, 0xa5, 1 << 20);
	crp_scratch_give(CRP_SCRATCH_FILE_W, a);
	b = crp_scratch_take(CRP_SCRATCH_FILE_W, 4096, false);
	ck_assert_ptr_eq(a, b);
	crp_scratch_give(CRP_SCRATCH_FILE_W, b);
	/* Another use has a buffer of its own. */
	b = crp_scratch_take(CRP_SCRATCH_FILE_R, 4096, false);
	ck_assert_ptr_nonnull(b);
	ck_assert_ptr_ne(a, b);
	crp_scratch_give(CRP_SCRATCH_FILE_R, b);
}
END_TEST

/* zero: the bytes asked for are cleared, whatever the last user left. */
START_TEST(test_scratch_zero)
{
	uint8_t *a = crp_scratch_take(CRP_SCRATCH_STRIPE, 65536, false);

	ck_assert_ptr_nonnull(a);
	memset(a, 0xff, 65536);
	crp_scratch_give(CRP_SCRATCH_STRIPE, a);
	a = crp_scratch_take(CRP_SCRATCH_STRIPE, 65536, true);
	ck_assert(all_bytes(a, 65536, 0));
	crp_scratch_give(CRP_SCRATCH_STRIPE, a);
}
END_TEST

/* A larger request than the kept buffer gets a larger one, usable whole. */
START_TEST(test_scratch_grows)
{
	uint8_t *a = crp_scratch_take(CRP_SCRATCH_REPLY, 4096, false), *b;

	ck_assert_ptr_nonnull(a);
	crp_scratch_give(CRP_SCRATCH_REPLY, a);
	b = crp_scratch_take(CRP_SCRATCH_REPLY, 3 << 20, true);
	ck_assert_ptr_nonnull(b);
	ck_assert(all_bytes(b, 3 << 20, 0));
	memset(b, 1, 3 << 20);
	crp_scratch_give(CRP_SCRATCH_REPLY, b);
}
END_TEST

/* A nested take of a use that is out gets a buffer of its own, and giving
 * both back in either order leaves the first one kept. */
START_TEST(test_scratch_nested)
{
	uint8_t *a = crp_scratch_take(CRP_SCRATCH_STRIPE, 8192, false), *b, *c;

	memset(a, 1, 8192);
	b = crp_scratch_take(CRP_SCRATCH_STRIPE, 8192, true);
	ck_assert_ptr_nonnull(b);
	ck_assert_ptr_ne(a, b);
	ck_assert(all_bytes(b, 8192, 0));
	ck_assert(all_bytes(a, 8192, 1)); /* the outer user's bytes untouched */
	crp_scratch_give(CRP_SCRATCH_STRIPE, a);
	crp_scratch_give(CRP_SCRATCH_STRIPE, b);
	c = crp_scratch_take(CRP_SCRATCH_STRIPE, 8192, false);
	ck_assert_ptr_eq(c, a);
	crp_scratch_give(CRP_SCRATCH_STRIPE, c);
}
END_TEST

static void *other_thread(void *arg)
{
	uint8_t *mine = crp_scratch_take(CRP_SCRATCH_FILE_W, 1 << 20, false);

	*(uint8_t **)arg = mine;
	if (mine)
		memset(mine, 7, 1 << 20);
	crp_scratch_give(CRP_SCRATCH_FILE_W, mine);
	return NULL; /* its buffers are freed with it (the leak checker sees) */
}

/* Threads do not share buffers: one out here is not another thread's. */
START_TEST(test_scratch_per_thread)
{
	uint8_t *a = crp_scratch_take(CRP_SCRATCH_FILE_W, 1 << 20, false), *theirs = NULL;
	pthread_t th;

	ck_assert_ptr_nonnull(a);
	memset(a, 3, 1 << 20);
	ck_assert_int_eq(pthread_create(&th, NULL, other_thread, &theirs), 0);
	ck_assert_int_eq(pthread_join(th, NULL), 0);
	ck_assert_ptr_nonnull(theirs);
	ck_assert_ptr_ne(theirs, a);
	ck_assert(all_bytes(a, 1 << 20, 3));
	crp_scratch_give(CRP_SCRATCH_FILE_W, a);
}
END_TEST

static Suite *util_suite(void)
{
	Suite *s = suite_create("util");
	TCase *tc = tcase_create("scratch");

	tcase_add_test(tc, test_scratch_kept);
	tcase_add_test(tc, test_scratch_zero);
	tcase_add_test(tc, test_scratch_grows);
	tcase_add_test(tc, test_scratch_nested);
	tcase_add_test(tc, test_scratch_per_thread);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	SRunner *sr = srunner_create(util_suite());
	int failed;

	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
