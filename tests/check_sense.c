/* Sense decoding, UNIT ATTENTION detection, status mapping and sense text. */
#include <check.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "crpfs/err.h"
#include "crpfs/scsi.h"

/* Fixed format, current: sense key, ASC, ASCQ. */
static size_t fixed(uint8_t *s, uint8_t rc, uint8_t key, uint8_t asc, uint8_t ascq)
{
	memset(s, 0, 18);
	s[0] = rc;
	s[2] = key;
	s[7] = 10;
	s[12] = asc;
	s[13] = ascq;
	return 18;
}

static size_t desc(uint8_t *s, uint8_t rc, uint8_t key, uint8_t asc, uint8_t ascq)
{
	memset(s, 0, 8);
	s[0] = rc;
	s[1] = key;
	s[2] = asc;
	s[3] = ascq;
	return 8;
}

START_TEST(test_decode_fixed)
{
	uint8_t s[32];
	struct crp_sense d;
	size_t n = fixed(s, 0x70, CRP_SK_ILLEGAL_REQUEST, 0x21, 0x00);

	ck_assert_int_eq(crp_sense_decode(s, n, &d), 0);
	ck_assert(d.valid);
	ck_assert_uint_eq(d.key, CRP_SK_ILLEGAL_REQUEST);
	ck_assert_uint_eq(d.asc, 0x21);
	ck_assert_uint_eq(d.ascq, 0x00);

	/* deferred, with the VALID bit set in byte 0 and bits above the key */
	n = fixed(s, 0xf1, 0x20 | CRP_SK_MEDIUM_ERROR, 0x11, 0x04);
	ck_assert_int_eq(crp_sense_decode(s, n, &d), 0);
	ck_assert_uint_eq(d.key, CRP_SK_MEDIUM_ERROR);
	ck_assert_uint_eq(d.asc, 0x11);
	ck_assert_uint_eq(d.ascq, 0x04);

	/* too short for ASC/ASCQ: key only */
	n = fixed(s, 0x70, CRP_SK_NOT_READY, 0x04, 0x01);
	ck_assert_int_eq(crp_sense_decode(s, 8, &d), 0);
	ck_assert_uint_eq(d.key, CRP_SK_NOT_READY);
	ck_assert_uint_eq(d.asc, 0);
	/* additional length too short for ASC/ASCQ */
	s[7] = 4;
	ck_assert_int_eq(crp_sense_decode(s, n, &d), 0);
	ck_assert_uint_eq(d.asc, 0);
	ck_assert_int_eq(crp_sense_decode(s, 2, &d), -EINVAL);
}
END_TEST

START_TEST(test_decode_descriptor)
{
	uint8_t s[32];
	struct crp_sense d;
	size_t n = desc(s, 0x72, CRP_SK_UNIT_ATTENTION, 0x2a, 0x03);

	ck_assert_int_eq(crp_sense_decode(s, n, &d), 0);
	ck_assert(d.valid);
	ck_assert_uint_eq(d.key, CRP_SK_UNIT_ATTENTION);
	ck_assert_uint_eq(d.asc, 0x2a);
	ck_assert_uint_eq(d.ascq, 0x03);
	n = desc(s, 0x73, CRP_SK_DATA_PROTECT, 0x27, 0x00);
	ck_assert_int_eq(crp_sense_decode(s, n, &d), 0);
	ck_assert_uint_eq(d.key, CRP_SK_DATA_PROTECT);
	ck_assert_uint_eq(d.asc, 0x27);
	ck_assert_int_eq(crp_sense_decode(s, 3, &d), -EINVAL);
}
END_TEST

START_TEST(test_decode_not_sense)
{
	uint8_t s[18] = { 0 };
	struct crp_sense d;

	ck_assert_int_eq(crp_sense_decode(s, sizeof(s), &d), -EINVAL);
	ck_assert(!d.valid);
	s[0] = 0x7f;
	ck_assert_int_eq(crp_sense_decode(s, sizeof(s), &d), -EINVAL);
	ck_assert_int_eq(crp_sense_decode(s, 0, &d), -EINVAL);
	ck_assert_int_eq(crp_sense_decode(NULL, 18, &d), -EINVAL);
}
END_TEST

START_TEST(test_unit_attention)
{
	uint8_t s[32];
	struct crp_sense d;

	fixed(s, 0x70, CRP_SK_UNIT_ATTENTION, 0x29, 0x00);
	ck_assert_int_eq(crp_sense_decode(s, 18, &d), 0);
	ck_assert(crp_sense_is_unit_attention(&d));
	desc(s, 0x72, CRP_SK_UNIT_ATTENTION, 0x2a, 0x03);
	ck_assert_int_eq(crp_sense_decode(s, 8, &d), 0);
	ck_assert(crp_sense_is_unit_attention(&d));
	fixed(s, 0x70, CRP_SK_ILLEGAL_REQUEST, 0x20, 0x00);
	ck_assert_int_eq(crp_sense_decode(s, 18, &d), 0);
	ck_assert(!crp_sense_is_unit_attention(&d));
	memset(&d, 0, sizeof(d));
	d.key = CRP_SK_UNIT_ATTENTION; /* not decoded: not a UA */
	ck_assert(!crp_sense_is_unit_attention(&d));
}
END_TEST

START_TEST(test_status_error)
{
	uint8_t s[32];

	ck_assert_int_eq(crp_status_error(CRP_SAM_GOOD, NULL, 0), 0);
	ck_assert_int_eq(crp_status_error(CRP_SAM_RESERVATION_CONFLICT, NULL, 0), -CRP_ECONFLICT);
	ck_assert_int_eq(crp_status_error(CRP_SAM_BUSY, NULL, 0), -EAGAIN);
	ck_assert_int_eq(crp_status_error(CRP_SAM_TASK_SET_FULL, NULL, 0), -EAGAIN);
	ck_assert_int_eq(crp_status_error(CRP_SAM_NONE, NULL, 0), -EIO);

	fixed(s, 0x70, CRP_SK_UNIT_ATTENTION, 0x29, 0);
	ck_assert_int_eq(crp_status_error(CRP_SAM_CHECK_CONDITION, s, 18), -EAGAIN);
	fixed(s, 0x70, CRP_SK_ILLEGAL_REQUEST, 0x21, 0);
	ck_assert_int_eq(crp_status_error(CRP_SAM_CHECK_CONDITION, s, 18), -EINVAL);
	desc(s, 0x72, CRP_SK_DATA_PROTECT, 0x27, 0);
	ck_assert_int_eq(crp_status_error(CRP_SAM_CHECK_CONDITION, s, 8), -EROFS);
	fixed(s, 0x70, CRP_SK_ABORTED_COMMAND, 0x47, 0);
	ck_assert_int_eq(crp_status_error(CRP_SAM_CHECK_CONDITION, s, 18), -CRP_ESENSE);
	/* CHECK CONDITION without usable sense */
	ck_assert_int_eq(crp_status_error(CRP_SAM_CHECK_CONDITION, NULL, 0), -CRP_ESENSE);
}
END_TEST

/* A bad block is not a dead member: MEDIUM ERROR is -CRP_EMEDIUM (member.c
 * makes it -CRP_EMEMBER for anything but a READ), in either format. */
START_TEST(test_status_medium)
{
	uint8_t s[32];

	fixed(s, 0x70, CRP_SK_MEDIUM_ERROR, 0x11, 0);
	ck_assert_int_eq(crp_status_error(CRP_SAM_CHECK_CONDITION, s, 18), -CRP_EMEDIUM);
	fixed(s, 0xf0, CRP_SK_MEDIUM_ERROR, 0x11, 0x04);
	ck_assert_int_eq(crp_status_error(CRP_SAM_CHECK_CONDITION, s, 18), -CRP_EMEDIUM);
	fixed(s, 0x70, CRP_SK_MEDIUM_ERROR, 0x0c, 0); /* write error */
	ck_assert_int_eq(crp_status_error(CRP_SAM_CHECK_CONDITION, s, 18), -CRP_EMEDIUM);
	desc(s, 0x72, CRP_SK_MEDIUM_ERROR, 0x11, 0);
	ck_assert_int_eq(crp_status_error(CRP_SAM_CHECK_CONDITION, s, 8), -CRP_EMEDIUM);
}
END_TEST

/* A unit that is gone or broken: -CRP_EMEMBER, whatever the command. */
START_TEST(test_status_dead_member)
{
	uint8_t s[32];

	fixed(s, 0x70, CRP_SK_HARDWARE_ERROR, 0x44, 0);
	ck_assert_int_eq(crp_status_error(CRP_SAM_CHECK_CONDITION, s, 18), -CRP_EMEMBER);
	desc(s, 0x72, CRP_SK_HARDWARE_ERROR, 0x3e, 0x03);
	ck_assert_int_eq(crp_status_error(CRP_SAM_CHECK_CONDITION, s, 8), -CRP_EMEMBER);
	/* LOGICAL UNIT NOT SUPPORTED: the LUN was deleted at the target */
	fixed(s, 0x70, CRP_SK_ILLEGAL_REQUEST, 0x25, 0x00);
	ck_assert_int_eq(crp_status_error(CRP_SAM_CHECK_CONDITION, s, 18), -CRP_EMEMBER);
	desc(s, 0x72, CRP_SK_ILLEGAL_REQUEST, 0x25, 0x00);
	ck_assert_int_eq(crp_status_error(CRP_SAM_CHECK_CONDITION, s, 8), -CRP_EMEMBER);
	/* the other ILLEGAL REQUESTs are crpfs's own mistakes */
	fixed(s, 0x70, CRP_SK_ILLEGAL_REQUEST, 0x24, 0x00);
	ck_assert_int_eq(crp_status_error(CRP_SAM_CHECK_CONDITION, s, 18), -EINVAL);
	fixed(s, 0x70, CRP_SK_ILLEGAL_REQUEST, 0x20, 0x00);
	ck_assert_int_eq(crp_status_error(CRP_SAM_CHECK_CONDITION, s, 18), -EINVAL);
	/* NOT READY that does not pass by itself */
	fixed(s, 0x70, CRP_SK_NOT_READY, 0x3a, 0x00); /* medium not present */
	ck_assert_int_eq(crp_status_error(CRP_SAM_CHECK_CONDITION, s, 18), -CRP_EMEMBER);
	fixed(s, 0x70, CRP_SK_NOT_READY, 0x04, 0x00); /* cause not reportable */
	ck_assert_int_eq(crp_status_error(CRP_SAM_CHECK_CONDITION, s, 18), -CRP_EMEMBER);
	fixed(s, 0x70, CRP_SK_NOT_READY, 0x04, 0x02); /* initializing command required */
	ck_assert_int_eq(crp_status_error(CRP_SAM_CHECK_CONDITION, s, 18), -CRP_EMEMBER);
	fixed(s, 0x70, CRP_SK_NOT_READY, 0x04, 0x03); /* manual intervention required */
	ck_assert_int_eq(crp_status_error(CRP_SAM_CHECK_CONDITION, s, 18), -CRP_EMEMBER);
	fixed(s, 0x70, CRP_SK_NOT_READY, 0x05, 0x00); /* does not respond to selection */
	ck_assert_int_eq(crp_status_error(CRP_SAM_CHECK_CONDITION, s, 18), -CRP_EMEMBER);
}
END_TEST

/* NOT READY that passes: -EAGAIN, retried by the member until the deadline. */
START_TEST(test_status_not_ready_transient)
{
	static const uint8_t passing[] = { 0x01, 0x04, 0x05, 0x06, 0x07, 0x08, 0x09,
					   0x0a, 0x11, 0x14, 0x1a, 0x1b, 0x1d, 0x24 };
	uint8_t s[32];
	struct crp_sense d;

	for (size_t i = 0; i < sizeof(passing); i++) {
		fixed(s, 0x70, CRP_SK_NOT_READY, 0x04, passing[i]);
		ck_assert_msg(crp_status_error(CRP_SAM_CHECK_CONDITION, s, 18) == -EAGAIN,
			      "NOT READY 04h/%02xh is not retried", passing[i]);
		ck_assert_int_eq(crp_sense_decode(s, 18, &d), 0);
		ck_assert(crp_sense_is_transient_not_ready(&d));
	}
	desc(s, 0x72, CRP_SK_NOT_READY, 0x04, 0x01);
	ck_assert_int_eq(crp_status_error(CRP_SAM_CHECK_CONDITION, s, 8), -EAGAIN);
	/* 04h/01h under another sense key is not NOT READY */
	fixed(s, 0x70, CRP_SK_UNIT_ATTENTION, 0x04, 0x01);
	ck_assert_int_eq(crp_sense_decode(s, 18, &d), 0);
	ck_assert(!crp_sense_is_transient_not_ready(&d));
	fixed(s, 0x70, CRP_SK_NOT_READY, 0x3a, 0x00);
	ck_assert_int_eq(crp_sense_decode(s, 18, &d), 0);
	ck_assert(!crp_sense_is_transient_not_ready(&d));
	ck_assert(!crp_sense_is_transient_not_ready(NULL));
}
END_TEST

/* The INFORMATION field: fixed format with the VALID bit, descriptor
 * format's Information descriptor; crp_sense_set_info picks the format. */
START_TEST(test_information)
{
	uint8_t s[40];
	struct crp_sense d;
	struct crp_cmd c;

	/* fixed, VALID clear: INFORMATION bytes are ignored */
	fixed(s, 0x70, CRP_SK_MEDIUM_ERROR, 0x11, 0);
	s[3] = 0x12;
	s[6] = 0x34;
	ck_assert_int_eq(crp_sense_decode(s, 18, &d), 0);
	ck_assert(!d.info_valid);
	/* fixed, VALID set */
	s[0] = 0xf0;
	ck_assert_int_eq(crp_sense_decode(s, 18, &d), 0);
	ck_assert(d.info_valid);
	ck_assert_uint_eq(d.info, 0x12000034u);
	ck_assert_uint_eq(d.key, CRP_SK_MEDIUM_ERROR);

	/* descriptor format: a non-information descriptor, then one */
	memset(s, 0, sizeof(s));
	s[0] = 0x72;
	s[1] = CRP_SK_MEDIUM_ERROR;
	s[2] = 0x11;
	s[7] = 8 + 12;
	s[8] = 0x02; /* sense key specific */
	s[9] = 0x06;
	s[16] = 0x00; /* information */
	s[17] = 0x0a;
	s[18] = 0x80;
	crp_put_be64(&s[20], 0x123456789abull);
	ck_assert_int_eq(crp_sense_decode(s, 28, &d), 0);
	ck_assert(d.info_valid);
	ck_assert_uint_eq(d.info, 0x123456789abull);
	/* VALID clear in the descriptor */
	s[18] = 0;
	ck_assert_int_eq(crp_sense_decode(s, 28, &d), 0);
	ck_assert(!d.info_valid);
	/* a descriptor cut short by the buffer is not read */
	s[18] = 0x80;
	ck_assert_int_eq(crp_sense_decode(s, 24, &d), 0);
	ck_assert(!d.info_valid);

	/* crp_sense_set_info: fixed up to 32 bits, descriptor above */
	crp_cmd_init(&c);
	crp_sense_set_info(&c, CRP_SK_MEDIUM_ERROR, 0x11, 0x00, 4242);
	ck_assert_uint_eq(c.sense[0], 0xf0);
	ck_assert_int_eq(crp_sense_decode(c.sense, c.sense_len, &d), 0);
	ck_assert(d.info_valid);
	ck_assert_uint_eq(d.info, 4242);
	ck_assert_uint_eq(d.asc, 0x11);
	ck_assert_int_eq(crp_status_error(CRP_SAM_CHECK_CONDITION, c.sense, c.sense_len),
			 -CRP_EMEDIUM);
	crp_sense_set_info(&c, CRP_SK_MEDIUM_ERROR, 0x11, 0x00, 1ull << 40);
	ck_assert_uint_eq(c.sense[0], 0x72);
	ck_assert_int_eq(crp_sense_decode(c.sense, c.sense_len, &d), 0);
	ck_assert(d.info_valid);
	ck_assert_uint_eq(d.info, 1ull << 40);
	ck_assert_uint_eq(d.key, CRP_SK_MEDIUM_ERROR);
	ck_assert_uint_eq(d.asc, 0x11);
}
END_TEST

START_TEST(test_text)
{
	uint8_t s[32];
	char buf[256];
	const char *t;

	fixed(s, 0x70, CRP_SK_ILLEGAL_REQUEST, 0x21, 0x00);
	t = crp_sense_text(s, 18, buf, sizeof(buf));
	ck_assert_ptr_eq(t, buf);
	ck_assert_int_gt(strlen(t), 0);
	ck_assert_msg(strstr(t, "Illegal") || strstr(t, "ILLEGAL"), "no sense key in '%s'", t);
	ck_assert_msg(!strchr(t, '\n'), "more than one line: '%s'", t);

	desc(s, 0x72, CRP_SK_UNIT_ATTENTION, 0x29, 0x00);
	t = crp_sense_text(s, 8, buf, sizeof(buf));
	ck_assert_int_gt(strlen(t), 0);
	ck_assert_msg(strstr(t, "nit") != NULL, "no unit attention in '%s'", t);

	t = crp_sense_text(NULL, 0, buf, sizeof(buf));
	ck_assert_int_gt(strlen(t), 0);
	/* a tiny buffer is filled and terminated, never overrun */
	memset(buf, 'x', sizeof(buf));
	fixed(s, 0x70, CRP_SK_ILLEGAL_REQUEST, 0x21, 0x00);
	t = crp_sense_text(s, 18, buf, 8);
	ck_assert_int_lt(strlen(t), 8);
	ck_assert_int_eq(buf[8], 'x');
}
END_TEST

static Suite *sense_suite(void)
{
	Suite *s = suite_create("sense");
	TCase *d = tcase_create("decode");
	TCase *m = tcase_create("mapping");

	tcase_add_test(d, test_decode_fixed);
	tcase_add_test(d, test_decode_descriptor);
	tcase_add_test(d, test_decode_not_sense);
	tcase_add_test(d, test_unit_attention);
	suite_add_tcase(s, d);
	tcase_add_test(m, test_status_error);
	tcase_add_test(m, test_status_medium);
	tcase_add_test(m, test_status_dead_member);
	tcase_add_test(m, test_status_not_ready_transient);
	tcase_add_test(d, test_information);
	tcase_add_test(m, test_text);
	suite_add_tcase(s, m);
	return s;
}

int main(void)
{
	SRunner *sr = srunner_create(sense_suite());
	int failed;

	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
