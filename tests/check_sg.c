/*
 * The SG_IO transport without SCSI hardware: which specifications select
 * it, and the errors an open gives when the path is not a usable SCSI
 * device.  The CDB bytes it sends come from the shared builders
 * (check_cdb); commands on a real device cannot run on a machine without
 * kernel SCSI.
 */
#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "crpfs/err.h"
#include "crpfs/member.h"

START_TEST(test_spec_selects_sg)
{
	static const char *const specs[] = { "/dev/sg0", "/dev/sdb", "/dev/disk/by-id/wwn-0x5000" };
	struct crp_spec s;
	char err[256];

	for (size_t i = 0; i < sizeof(specs) / sizeof(specs[0]); i++) {
		ck_assert_int_eq(crp_spec_parse(specs[i], &s, err, sizeof(err)), 0);
		ck_assert_int_eq(s.kind, CRP_TRANSPORT_SG);
		ck_assert_str_eq(s.path, specs[i]);
		ck_assert_str_eq(s.text, specs[i]);
	}
}
END_TEST

START_TEST(test_spec_rejects_bare_dev)
{
	struct crp_spec s;
	char err[256] = "";

	ck_assert_int_eq(crp_spec_parse("/dev/", &s, err, sizeof(err)), -CRP_EBADSPEC);
	ck_assert_msg(strstr(err, "/dev/"), "message does not name the input: %s", err);
}
END_TEST

START_TEST(test_missing_device)
{
	struct crp_member *m = (struct crp_member *)0x1;
	char err[512] = "";
	int r;

	r = crp_member_open("/dev/sg-crpfs-missing", NULL, &m, err, sizeof(err));
	ck_assert_int_eq(r, -ENOENT);
	ck_assert_ptr_null(m);
	ck_assert_msg(strstr(err, "/dev/sg-crpfs-missing"), "message does not name the device: %s",
		      err);
	ck_assert_msg(strstr(err, "no such device"), "message does not say what is wrong: %s",
		      err);
}
END_TEST

/* A regular file under /dev is not a device: refused, pointing at file:. */
START_TEST(test_not_a_device_node)
{
	char path[] = "/dev/shm/crpfs-sg-XXXXXX", err[512] = "";
	struct crp_member *m = NULL;
	int fd = mkstemp(path), r;

	ck_assert_msg(fd >= 0, "mkstemp in /dev/shm: %s", strerror(errno));
	close(fd);
	r = crp_member_open(path, NULL, &m, err, sizeof(err));
	unlink(path);
	ck_assert_int_eq(r, -ENODEV);
	ck_assert_ptr_null(m);
	ck_assert_msg(strstr(err, path) && strstr(err, "not a device"), "message: %s", err);
}
END_TEST

/* A character device that does not speak SG_IO: the first command fails,
 * the open reports it and names the command, nothing hangs or leaks. */
START_TEST(test_not_scsi)
{
	struct crp_member *m = NULL;
	char err[512] = "";
	int r;

	r = crp_member_open("/dev/null", NULL, &m, err, sizeof(err));
	ck_assert_int_lt(r, 0);
	ck_assert_ptr_null(m);
	ck_assert_msg(strstr(err, "/dev/null") && strstr(err, "TEST UNIT READY"),
		      "message should name the device and the command: %s", err);
}
END_TEST

static Suite *sg_suite(void)
{
	Suite *s = suite_create("sg");
	TCase *tc = tcase_create("spec");

	tcase_add_test(tc, test_spec_selects_sg);
	tcase_add_test(tc, test_spec_rejects_bare_dev);
	suite_add_tcase(s, tc);
	tc = tcase_create("open");
	tcase_add_test(tc, test_missing_device);
	tcase_add_test(tc, test_not_a_device_node);
	tcase_add_test(tc, test_not_scsi);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	SRunner *sr = srunner_create(sg_suite());
	int failed;

	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
