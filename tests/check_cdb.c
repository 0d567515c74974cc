/* CDB builders and parameter-data parsers: exact bytes on the wire. */
#include <check.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "crpfs/scsi.h"

static void assert_bytes(const uint8_t *got, const uint8_t *want, size_t n)
{
	for (size_t i = 0; i < n; i++)
		ck_assert_msg(got[i] == want[i], "byte %zu: got 0x%02x, want 0x%02x", i, got[i],
			      want[i]);
}

START_TEST(test_cmd_init)
{
	struct crp_cmd c;

	memset(&c, 0xa5, sizeof(c));
	crp_cmd_init(&c);
	ck_assert_int_eq(c.cdb_len, 0);
	ck_assert_int_eq(c.status, CRP_SAM_NONE);
	ck_assert_int_eq(c.result, 0);
	ck_assert_int_eq(c.sense_len, 0);
	ck_assert_ptr_null(c.chain);
	ck_assert_ptr_null(c.done);
	ck_assert_ptr_null(c.buf);
	ck_assert_int_eq(c.timeout_ms, 0);
}
END_TEST

START_TEST(test_tur)
{
	struct crp_cmd c;
	static const uint8_t want[6] = { 0 };

	crp_cmd_init(&c);
	memset(c.cdb, 0xff, sizeof(c.cdb));
	crp_cdb_test_unit_ready(&c);
	ck_assert_int_eq(c.cdb_len, 6);
	ck_assert_int_eq(c.dir, CRP_DIR_NONE);
	assert_bytes(c.cdb, want, 6);
	ck_assert_str_eq(crp_cdb_name(&c), "TEST UNIT READY");
	ck_assert_int_eq(crp_cdb_class(&c), CRP_OPC_OTHER);
}
END_TEST

START_TEST(test_inquiry)
{
	struct crp_cmd c;
	uint8_t buf[300];
	static const uint8_t want[6] = { 0x12, 0, 0, 0x01, 0x2c, 0 };

	crp_cmd_init(&c);
	crp_cdb_inquiry(&c, buf, 300);
	ck_assert_int_eq(c.cdb_len, 6);
	ck_assert_int_eq(c.dir, CRP_DIR_READ);
	ck_assert_ptr_eq(c.buf, buf);
	ck_assert_uint_eq(c.len, 300);
	assert_bytes(c.cdb, want, 6);
	ck_assert_str_eq(crp_cdb_name(&c), "INQUIRY");
}
END_TEST

START_TEST(test_read_capacity16)
{
	struct crp_cmd c;
	uint8_t buf[32];
	static const uint8_t want[16] = { 0x9e, 0x10, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 32, 0, 0 };

	crp_cmd_init(&c);
	crp_cdb_read_capacity16(&c, buf, sizeof(buf));
	ck_assert_int_eq(c.cdb_len, 16);
	ck_assert_int_eq(c.dir, CRP_DIR_READ);
	assert_bytes(c.cdb, want, 16);
	ck_assert_str_eq(crp_cdb_name(&c), "READ CAPACITY(16)");
	ck_assert_int_eq(crp_cdb_class(&c), CRP_OPC_OTHER);
}
END_TEST

START_TEST(test_read16)
{
	struct crp_cmd c;
	uint8_t buf[4096];
	static const uint8_t want[16] = { 0x88, 0,    0x01, 0x23, 0x45, 0x67, 0x89, 0xab,
					  0xcd, 0xef, 0x00, 0x00, 0x00, 0x08, 0,    0 };

	crp_cmd_init(&c);
	c.timeout_ms = 77;
	crp_cdb_read16(&c, 0x0123456789abcdefull, 8, buf, sizeof(buf));
	ck_assert_int_eq(c.cdb_len, 16);
	ck_assert_int_eq(c.dir, CRP_DIR_READ);
	ck_assert_uint_eq(c.len, 4096);
	ck_assert_uint_eq(c.timeout_ms, 77); /* builders leave the timeout alone */
	assert_bytes(c.cdb, want, 16);
	ck_assert_str_eq(crp_cdb_name(&c), "READ(16)");
	ck_assert_int_eq(crp_cdb_class(&c), CRP_OPC_READ);
}
END_TEST

START_TEST(test_write16_fua)
{
	struct crp_cmd c;
	uint8_t buf[512];
	static const uint8_t want[16] = { 0x8a, 0,    0,    0,    0,    0,    0,    0,
					  0,    0x2a, 0x12, 0x34, 0x56, 0x78, 0,    0 };

	crp_cmd_init(&c);
	crp_cdb_write16(&c, 42, 0x12345678u, buf, sizeof(buf), false);
	ck_assert_int_eq(c.dir, CRP_DIR_WRITE);
	ck_assert_int_eq(c.cdb_len, 16);
	assert_bytes(c.cdb, want, 16);
	ck_assert_int_eq(crp_cdb_class(&c), CRP_OPC_WRITE);
	ck_assert_str_eq(crp_cdb_name(&c), "WRITE(16)");

	crp_cdb_write16(&c, 42, 0x12345678u, buf, sizeof(buf), true);
	ck_assert_int_eq(c.cdb[1], 0x08);
	ck_assert_int_eq(c.cdb[0], 0x8a);
	ck_assert_int_eq(c.cdb[9], 0x2a);
}
END_TEST

START_TEST(test_sync_cache16)
{
	struct crp_cmd c;
	uint8_t want[16] = { 0x91 };

	crp_cmd_init(&c);
	crp_cdb_sync_cache16(&c);
	ck_assert_int_eq(c.cdb_len, 16);
	ck_assert_int_eq(c.dir, CRP_DIR_NONE);
	assert_bytes(c.cdb, want, 16);
	ck_assert_int_eq(crp_cdb_class(&c), CRP_OPC_SYNC);
	ck_assert_str_eq(crp_cdb_name(&c), "SYNCHRONIZE CACHE(16)");
}
END_TEST

START_TEST(test_reserve_release6)
{
	struct crp_cmd c;
	uint8_t r[6] = { 0x16 }, l[6] = { 0x17 };

	crp_cmd_init(&c);
	crp_cdb_reserve6(&c);
	ck_assert_int_eq(c.cdb_len, 6);
	ck_assert_int_eq(c.dir, CRP_DIR_NONE);
	assert_bytes(c.cdb, r, 6);
	ck_assert_int_eq(crp_cdb_class(&c), CRP_OPC_RESERVE);
	ck_assert_str_eq(crp_cdb_name(&c), "RESERVE(6)");
	crp_cdb_release6(&c);
	assert_bytes(c.cdb, l, 6);
	ck_assert_int_eq(crp_cdb_class(&c), CRP_OPC_RELEASE);
	ck_assert_str_eq(crp_cdb_name(&c), "RELEASE(6)");
}
END_TEST

START_TEST(test_pr_in)
{
	struct crp_cmd c;
	uint8_t buf[0x208];
	static const uint8_t want[10] = { 0x5e, 0x01, 0, 0, 0, 0, 0, 0x02, 0x08, 0 };

	crp_cmd_init(&c);
	crp_cdb_pr_in(&c, CRP_PRIN_READ_RESERVATION, buf, sizeof(buf));
	ck_assert_int_eq(c.cdb_len, 10);
	ck_assert_int_eq(c.dir, CRP_DIR_READ);
	assert_bytes(c.cdb, want, 10);
	ck_assert_int_eq(crp_cdb_class(&c), CRP_OPC_PR_IN);
	ck_assert_str_eq(crp_cdb_name(&c), "PR IN(READ RESERVATION)");
	crp_cdb_pr_in(&c, CRP_PRIN_READ_KEYS, buf, 8);
	ck_assert_int_eq(c.cdb[1], 0);
	ck_assert_int_eq(c.cdb[8], 8);
	ck_assert_str_eq(crp_cdb_name(&c), "PR IN(READ KEYS)");
}
END_TEST

START_TEST(test_pr_out)
{
	struct crp_cmd c;
	uint8_t param[24];
	static const uint8_t want[10] = { 0x5f, 0x04, 0x01, 0, 0, 0, 0, 0, 24, 0 };
	static const uint8_t wparam[24] = { 0x11, 0x22, 0x33, 0x44, 0x55, 0x66, 0x77, 0x88,
					    0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07, 0x08,
					    0,	  0,	0,    0,    0,	  0,	0,    0 };

	memset(param, 0xee, sizeof(param));
	crp_cmd_init(&c);
	crp_cdb_pr_out(&c, CRP_PROUT_PREEMPT, CRP_PR_TYPE_WRITE_EXCLUSIVE, 0x1122334455667788ull,
		       0x0102030405060708ull, param);
	ck_assert_int_eq(c.cdb_len, 10);
	ck_assert_int_eq(c.dir, CRP_DIR_WRITE);
	ck_assert_ptr_eq(c.buf, param);
	ck_assert_uint_eq(c.len, 24);
	assert_bytes(c.cdb, want, 10);
	assert_bytes(param, wparam, 24);
	ck_assert_int_eq(crp_cdb_class(&c), CRP_OPC_PR_OUT);
	ck_assert_str_eq(crp_cdb_name(&c), "PR OUT(PREEMPT)");

	crp_cdb_pr_out(&c, CRP_PROUT_REGISTER_IGNORE, 0, 0, 5, param);
	ck_assert_int_eq(c.cdb[1], 0x06);
	ck_assert_int_eq(c.cdb[2], 0);
	ck_assert_int_eq(param[15], 5);
	ck_assert_int_eq(param[20], 0); /* APTPL off */
	ck_assert_str_eq(crp_cdb_name(&c), "PR OUT(REGISTER AND IGNORE)");
	crp_cdb_pr_out(&c, CRP_PROUT_REGISTER, 0, 0, 5, param);
	ck_assert_str_eq(crp_cdb_name(&c), "PR OUT(REGISTER)");
	crp_cdb_pr_out(&c, CRP_PROUT_RESERVE, 3, 0, 5, param);
	ck_assert_int_eq(c.cdb[2], 3);
	ck_assert_str_eq(crp_cdb_name(&c), "PR OUT(RESERVE)");
	crp_cdb_pr_out(&c, CRP_PROUT_RELEASE, 1, 0, 5, param);
	ck_assert_str_eq(crp_cdb_name(&c), "PR OUT(RELEASE)");
	crp_cdb_pr_out(&c, CRP_PROUT_CLEAR, 0, 9, 0, param);
	ck_assert_str_eq(crp_cdb_name(&c), "PR OUT(CLEAR)");
}
END_TEST

START_TEST(test_names_other)
{
	struct crp_cmd c;

	crp_cmd_init(&c);
	ck_assert_str_eq(crp_cdb_name(&c), "(no command)");
	ck_assert_int_eq(crp_cdb_class(&c), CRP_OPC_OTHER);
	c.cdb_len = 10;
	c.cdb[0] = 0x35;
	ck_assert_str_eq(crp_cdb_name(&c), "SYNCHRONIZE CACHE(10)");
	ck_assert_int_eq(crp_cdb_class(&c), CRP_OPC_SYNC);
	c.cdb[0] = 0x42;
	ck_assert_str_eq(crp_cdb_name(&c), "UNKNOWN COMMAND");
	ck_assert_int_eq(crp_cdb_class(&c), CRP_OPC_OTHER);
	c.cdb[0] = 0x9e;
	c.cdb[1] = 0x12;
	ck_assert_str_eq(crp_cdb_name(&c), "SERVICE ACTION IN(16)");

	ck_assert_str_eq(crp_opclass_name(CRP_OPC_READ), "read");
	ck_assert_str_eq(crp_opclass_name(CRP_OPC_WRITE), "write");
	ck_assert_str_eq(crp_opclass_name(CRP_OPC_RESERVE), "reserve");
	ck_assert_str_eq(crp_opclass_name(CRP_OPC_RELEASE), "release");
	ck_assert_str_eq(crp_opclass_name(CRP_OPC_PR_IN), "pr_in");
	ck_assert_str_eq(crp_opclass_name(CRP_OPC_PR_OUT), "pr_out");
	ck_assert_str_eq(crp_opclass_name(CRP_OPC_SYNC), "sync");
	ck_assert_str_eq(crp_opclass_name(CRP_OPC_OTHER), "other");
	ck_assert_str_eq(crp_opclass_name(CRP_OPC_MAX), "invalid");
}
END_TEST

START_TEST(test_parse_read_capacity)
{
	uint8_t d[32] = { 0, 0, 0, 0x01, 0, 0, 0, 0xff, 0, 0, 0x10, 0 };
	uint64_t n = 0;
	uint32_t bs = 0;

	ck_assert_int_eq(crp_parse_read_capacity16(d, sizeof(d), &n, &bs), 0);
	ck_assert_uint_eq(n, 0x100000100ull);
	ck_assert_uint_eq(bs, 4096);
	ck_assert_int_eq(crp_parse_read_capacity16(d, 12, &n, &bs), 0);
	/* truncated */
	ck_assert_int_lt(crp_parse_read_capacity16(d, 11, &n, &bs), 0);
	ck_assert_int_lt(crp_parse_read_capacity16(d, 0, &n, &bs), 0);
	ck_assert_int_lt(crp_parse_read_capacity16(NULL, 32, &n, &bs), 0);
	/* a block size of 0 is not a disk */
	d[10] = 0;
	ck_assert_int_lt(crp_parse_read_capacity16(d, sizeof(d), &n, &bs), 0);
}
END_TEST

START_TEST(test_parse_pr_keys)
{
	uint8_t d[8 + 3 * 8] = { 0, 0, 0x01, 0x02, 0, 0, 0, 24 };
	uint64_t keys[3] = { 0 };
	uint32_t gen = 0;

	for (int k = 0; k < 3; k++)
		for (int i = 0; i < 8; i++)
			d[8 + 8 * k + i] = (uint8_t)(k * 16 + i);
	ck_assert_int_eq(crp_parse_pr_keys(d, sizeof(d), &gen, keys, 3), 3);
	ck_assert_uint_eq(gen, 0x102);
	ck_assert_uint_eq(keys[0], 0x0001020304050607ull);
	ck_assert_uint_eq(keys[1], 0x1011121314151617ull);
	ck_assert_uint_eq(keys[2], 0x2021222324252627ull);

	/* fewer slots than keys: the count still says 3 */
	memset(keys, 0, sizeof(keys));
	ck_assert_int_eq(crp_parse_pr_keys(d, sizeof(d), &gen, keys, 1), 3);
	ck_assert_uint_eq(keys[0], 0x0001020304050607ull);
	ck_assert_uint_eq(keys[1], 0);
	/* a buffer cut to the keys asked for is fine, shorter is not */
	ck_assert_int_eq(crp_parse_pr_keys(d, 16, &gen, keys, 1), 3);
	ck_assert_int_lt(crp_parse_pr_keys(d, 15, &gen, keys, 1), 0);
	ck_assert_int_lt(crp_parse_pr_keys(d, 20, &gen, keys, 3), 0);
	ck_assert_int_lt(crp_parse_pr_keys(d, 7, &gen, keys, 3), 0);
	ck_assert_int_eq(crp_parse_pr_keys(d, 8, &gen, keys, 0), 3);

	/* no keys */
	d[7] = 0;
	ck_assert_int_eq(crp_parse_pr_keys(d, 8, &gen, keys, 3), 0);
	/* a length that is not a whole number of keys */
	d[7] = 12;
	ck_assert_int_lt(crp_parse_pr_keys(d, sizeof(d), &gen, keys, 3), 0);
}
END_TEST

START_TEST(test_parse_pr_reservation)
{
	uint8_t d[24] = { 0, 0, 0, 7, 0, 0, 0, 16, 0xaa, 0xbb, 0, 0, 0, 0, 0, 0x01 };
	uint64_t key = 0;
	uint8_t type = 0;
	uint32_t gen = 0;

	d[21] = 0x01;
	ck_assert_int_eq(crp_parse_pr_reservation(d, sizeof(d), &gen, &key, &type), 1);
	ck_assert_uint_eq(gen, 7);
	ck_assert_uint_eq(key, 0xaabb000000000001ull);
	ck_assert_uint_eq(type, CRP_PR_TYPE_WRITE_EXCLUSIVE);
	/* scope in the high nibble is not the type */
	d[21] = 0x03 | 0x20;
	ck_assert_int_eq(crp_parse_pr_reservation(d, sizeof(d), &gen, &key, &type), 1);
	ck_assert_uint_eq(type, CRP_PR_TYPE_EXCLUSIVE_ACCESS);
	/* truncated */
	ck_assert_int_lt(crp_parse_pr_reservation(d, 23, &gen, &key, &type), 0);
	ck_assert_int_lt(crp_parse_pr_reservation(d, 7, &gen, &key, &type), 0);
	/* no reservation */
	d[7] = 0;
	ck_assert_int_eq(crp_parse_pr_reservation(d, 8, &gen, &key, &type), 0);
}
END_TEST

static Suite *cdb_suite(void)
{
	Suite *s = suite_create("cdb");
	TCase *b = tcase_create("builders");
	TCase *p = tcase_create("parsers");

	tcase_add_test(b, test_cmd_init);
	tcase_add_test(b, test_tur);
	tcase_add_test(b, test_inquiry);
	tcase_add_test(b, test_read_capacity16);
	tcase_add_test(b, test_read16);
	tcase_add_test(b, test_write16_fua);
	tcase_add_test(b, test_sync_cache16);
	tcase_add_test(b, test_reserve_release6);
	tcase_add_test(b, test_pr_in);
	tcase_add_test(b, test_pr_out);
	tcase_add_test(b, test_names_other);
	suite_add_tcase(s, b);
	tcase_add_test(p, test_parse_read_capacity);
	tcase_add_test(p, test_parse_pr_keys);
	tcase_add_test(p, test_parse_pr_reservation);
	suite_add_tcase(s, p);
	return s;
}

int main(void)
{
	SRunner *sr = srunner_create(cdb_suite());
	int failed;

	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
