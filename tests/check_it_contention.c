/*
 * The contention test on file members: three processes, each its own host,
 * write overlapping stripes of one RAID-5 and one RAID-6 array; afterwards
 * every stripe's parity and every writer's last data must verify.  The
 * same check must catch a protocol broken on purpose.
 */
#include <check.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "fixture/contention.h"

#define SECONDS 6

static char dir[64];
static char specs_buf[8][128];
static const char *specs[8];

static void make_members(int n)
{
	snprintf(dir, sizeof(dir), "/tmp/crpfs-itc.XXXXXX");
	ck_assert_ptr_nonnull(mkdtemp(dir));
	for (int i = 0; i < n; i++) {
		char p[100];
		int fd;

		snprintf(p, sizeof(p), "%s/m%d", dir, i);
		fd = open(p, O_RDWR | O_CREAT | O_TRUNC, 0600);
		ck_assert_int_ge(fd, 0);
		ck_assert_int_eq(ftruncate(fd, 4 << 20), 0);
		close(fd);
		snprintf(specs_buf[i], sizeof(specs_buf[i]), "file:%s", p);
		specs[i] = specs_buf[i];
	}
}

static void remove_members(int n)
{
	char p[160];

	for (int i = 0; i < n; i++) {
		snprintf(p, sizeof(p), "%s/m%d", dir, i);
		unlink(p);
		snprintf(p, sizeof(p), "%s/m%d.crpfs-scsi", dir, i);
		unlink(p);
	}
	rmdir(dir);
}

static void run(int n, int level, const char *lock, const char *debug, unsigned secs, int want)
{
	make_members(n);
	crp_contention_expect("file members", specs, n, level, lock, debug, secs, want,
			      remove_members);
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

/* The check must catch a broken protocol. */
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

int main(void)
{
	Suite *s = suite_create("contention-file");
	TCase *tc = tcase_create("contention");
	SRunner *sr;
	int failed;

	tcase_set_timeout(tc, 120);
	tcase_add_test(tc, test_raid5_reserve);
	tcase_add_test(tc, test_raid6_reserve);
	tcase_add_test(tc, test_raid5_pr);
	tcase_add_test(tc, test_raid6_pr);
	tcase_add_test(tc, test_catches_no_locks);
	tcase_add_test(tc, test_catches_early_release);
	suite_add_tcase(s, tc);
	sr = srunner_create(s);
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
