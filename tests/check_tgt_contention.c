/*
 * The contention test and the round-trip count against a real tgtd: three
 * writer processes, each its own host with its own initiator name (its own
 * iSCSI session), on RAID-5 and RAID-6 arrays of tgt LUNs, wide and
 * narrow (two data chunks a stripe).
 */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../src/raid/array_i.h"
#include "crpfs/array.h"
#include "crpfs/err.h"
#include "crpfs/util.h"
#include "fixture/contention.h"
#include "fixture/tgt.h"

#define SECONDS 6
#define NLUNS 5

static struct crp_tgt *tgt;
static const char *specs[NLUNS];

static void run(int n, int level, const char *lock, const char *debug, unsigned secs, int want)
{
	crp_contention_expect("tgt", specs, n, level, lock, debug, secs, want, NULL);
}

START_TEST(test_raid5_reserve)
{
	run(4, 5, "reserve", NULL, SECONDS, 0);
}
END_TEST

START_TEST(test_raid6_reserve)
{
	run(5, 6, "reserve", NULL, SECONDS, 0);
}
END_TEST

START_TEST(test_raid5_pr)
{
	run(4, 5, "pr", NULL, SECONDS / 2, 0);
}
END_TEST

START_TEST(test_raid6_pr)
{
	run(5, 6, "pr", NULL, SECONDS / 2, 0);
}
END_TEST

/* Two data chunks a stripe: small writes whose locks are cached read the
 * other data chunk, outside the members they lock (stripe.c, prefer_rcw). */
START_TEST(test_raid5_narrow_reserve)
{
	run(3, 5, "reserve", NULL, SECONDS / 2, 0);
}
END_TEST

START_TEST(test_raid6_narrow_pr)
{
	run(4, 6, "pr", NULL, SECONDS / 2, 0);
}
END_TEST

START_TEST(test_catches_no_locks)
{
	run(4, 5, "reserve", "nolocks", 5, 3);
}
END_TEST

START_TEST(test_catches_early_release)
{
	run(4, 5, "reserve", "early", 5, 3);
}
END_TEST

struct trace {
	int n;
	struct crp_txn_stats st[8];
};

static void hook(void *ctx, const struct crp_txn_stats *st)
{
	struct trace *t = ctx;

	if (t->n < 8)
		t->st[t->n++] = *st;
}

/* Uncached small write: two round trips (lock+read, write); with the locks
 * cached: its reads and its write, no RESERVE.  The hold-time bound is out
 * of reach: whether the second write finds the parity still reserved must
 * not depend on tgt's latency (a parity is kept or released only once every
 * WRITE of its stripe is back, two round trips after its RESERVE). */
static void round_trips(enum crp_lock_mode mode)
{
	struct crp_array_opts o = { .host = "rt", .lock_mode = mode, .max_hold_us = 10 * 1000 * 1000 };
	struct crp_array *a;
	struct crp_geom g;
	struct trace tr = { 0 };
	struct crp_array_iov iov[2];
	uint8_t *buf = crp_alloc_buf(8192);
	uint64_t sb, cmds_before[CRP_OPC_MAX] = { 0 };
	char err[512];
	int n = 3;

	ck_assert_msg(crp_array_open(specs, n, &o, &a, err, sizeof(err)) == 0, "%s", err);
	ck_assert_msg(crp_geom_init(&g, 5, n, 4096, 0, 1 << 20, err, sizeof(err)) == 0, "%s", err);
	ck_assert_int_eq(crp_array_set_geometry(a, &g), 0);
	crp_array_set_txn_hook(a, hook, &tr);
	sb = crp_geom_stripe_bytes(&g);

	ck_assert_int_eq(crp_array_write(a, 4096 + 512, buf, 1024), 0);
	ck_assert_int_eq(tr.n, 1);
	ck_assert_uint_le(tr.st[0].round_trips, 2);
	ck_assert_uint_eq(tr.st[0].reserves, 2);
	ck_assert_uint_eq(tr.st[0].releases, 2);

	for (int m = 0; m < n; m++)
		for (int c = 0; c < CRP_OPC_MAX; c++)
			cmds_before[c] += crp_member_counters(crp_array_member(a, m))->cmds[c];
	tr.n = 0;
	iov[0] = (struct crp_array_iov){ 2 * sb, buf, 4096 };
	iov[1] = (struct crp_array_iov){ (2 + (uint64_t)n) * sb, buf + 4096, 4096 };
	ck_assert_int_eq(crp_array_writev(a, iov, 2), 0);
	ck_assert_int_eq(tr.n, 2);
	ck_assert_uint_eq(tr.st[1].round_trips, 2);
	ck_assert_uint_eq(tr.st[1].reserves, 0);
	ck_assert_uint_eq(tr.st[1].cache_hits, 2);
	/* In reserve mode the member counters agree: two RESERVE(6) in all,
	 * both from the first transaction of the batch. */
	if (mode == CRP_LOCK_RESERVE) {
		uint64_t res = 0;

		for (int m = 0; m < n; m++)
			res += crp_member_counters(crp_array_member(a, m))->cmds[CRP_OPC_RESERVE];
		ck_assert_uint_eq(res - cmds_before[CRP_OPC_RESERVE], 2);
	}
	crp_array_close(a);
	free(buf);
}

START_TEST(test_round_trips_reserve)
{
	round_trips(CRP_LOCK_RESERVE);
}
END_TEST

START_TEST(test_round_trips_pr)
{
	round_trips(CRP_LOCK_PR);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("contention-tgt");
	TCase *tc = tcase_create("tgt");
	SRunner *sr;
	char why[512];
	int failed;

	tgt = crp_tgt_start(NLUNS, 16ull << 20, why, sizeof(why));
	if (!tgt) {
		fprintf(stderr, "FAIL: cannot start tgtd for the contention test: %s\n", why);
		return EXIT_FAILURE;
	}
	for (int i = 0; i < NLUNS; i++)
		specs[i] = crp_tgt_spec(tgt, i);
	tcase_set_timeout(tc, 180);
	tcase_add_test(tc, test_round_trips_reserve);
	tcase_add_test(tc, test_round_trips_pr);
	tcase_add_test(tc, test_raid5_reserve);
	tcase_add_test(tc, test_raid6_reserve);
	tcase_add_test(tc, test_raid5_pr);
	tcase_add_test(tc, test_raid6_pr);
	tcase_add_test(tc, test_raid5_narrow_reserve);
	tcase_add_test(tc, test_raid6_narrow_pr);
	tcase_add_test(tc, test_catches_no_locks);
	tcase_add_test(tc, test_catches_early_release);
	suite_add_tcase(s, tc);
	sr = srunner_create(s);
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	crp_tgt_stop(tgt);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
