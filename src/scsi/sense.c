/*
 * Sense data: decoding of fixed (70h/71h) and descriptor (72h/73h) format,
 * text through sg3_utils' sg_lib, and the mapping of a completed command's
 * status to a crpfs error.
 *
 * The mapping is the one place that tells a bad block from a dead member
 * (member.c adds what depends on the command: see crp_member_complete):
 *
 *   GOOD                                     0
 *   RESERVATION CONFLICT                     -CRP_ECONFLICT
 *   BUSY, TASK SET FULL                      -EAGAIN (retried)
 *   UNIT ATTENTION                           -EAGAIN (retried)
 *   NOT READY 04h, passing kind              -EAGAIN (retried until the
 *                                            deadline, then -CRP_EMEMBER)
 *   NOT READY otherwise (3Ah no medium ...)  -CRP_EMEMBER
 *   MEDIUM ERROR                             -CRP_EMEDIUM (a READ: the block
 *                                            is bad, the member serves on;
 *                                            anything else: -CRP_EMEMBER)
 *   HARDWARE ERROR                           -CRP_EMEMBER
 *   ILLEGAL REQUEST 25h (LU not supported)   -CRP_EMEMBER
 *   ILLEGAL REQUEST otherwise                -EINVAL (crpfs sent a bad field)
 *   DATA PROTECT                             -EROFS
 *   other CHECK CONDITION                    -CRP_ESENSE
 *   no status, others                        -EIO
 *
 * -CRP_EMEMBER from here fails the member (crp_member_complete).
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include <scsi/sg_lib.h>

#include "crpfs/err.h"
#include "crpfs/scsi.h"
#include "crpfs/util.h"

/* The Information sense data descriptor (type 00h) of descriptor-format
 * sense, if there is one with its VALID bit set. */
static void decode_info_descriptor(const uint8_t *sense, size_t len, struct crp_sense *out)
{
	size_t end, o = 8;

	if (len < 8)
		return;
	end = CRP_MIN(len, (size_t)sense[7] + 8);
	while (o + 2 <= end) {
		size_t dlen = (size_t)sense[o + 1] + 2;

		if (o + dlen > end)
			return;
		if (sense[o] == 0x00 && dlen >= 12 && (sense[o + 2] & 0x80)) {
			out->info_valid = true;
			out->info = crp_get_be64(&sense[o + 4]);
			return;
		}
		o += dlen;
	}
}

int crp_sense_decode(const uint8_t *sense, size_t len, struct crp_sense *out)
{
	uint8_t rc;

	memset(out, 0, sizeof(*out));
	if (!sense || len < 1)
		return -EINVAL;
	rc = sense[0] & 0x7f;
	switch (rc) {
	case 0x70: /* fixed, current */
	case 0x71: /* fixed, deferred */
		if (len < 3)
			return -EINVAL;
		out->key = sense[2] & 0x0f;
		/* ASC and ASCQ only when both the buffer and the additional
		 * sense length (byte 7) reach them. */
		if (len >= 14 && len >= 8 && (size_t)sense[7] + 8 >= 14) {
			out->asc = sense[12];
			out->ascq = sense[13];
		}
		/* INFORMATION (bytes 3-6) counts only with the VALID bit. */
		if ((sense[0] & 0x80) && len >= 7) {
			out->info_valid = true;
			out->info = crp_get_be32(&sense[3]);
		}
		break;
	case 0x72: /* descriptor, current */
	case 0x73: /* descriptor, deferred */
		if (len < 4)
			return -EINVAL;
		out->key = sense[1] & 0x0f;
		out->asc = sense[2];
		out->ascq = sense[3];
		decode_info_descriptor(sense, len, out);
		break;
	default:
		return -EINVAL;
	}
	out->valid = true;
	return 0;
}

void crp_sense_set_fixed(struct crp_cmd *cmd, uint8_t key, uint8_t asc, uint8_t ascq)
{
	memset(cmd->sense, 0, 18);
	cmd->sense[0] = 0x70;
	cmd->sense[2] = key;
	cmd->sense[7] = 10; /* additional sense length */
	cmd->sense[12] = asc;
	cmd->sense[13] = ascq;
	cmd->sense_len = 18;
}

void crp_sense_set_info(struct crp_cmd *cmd, uint8_t key, uint8_t asc, uint8_t ascq,
			uint64_t info)
{
	if (info <= UINT32_MAX) {
		crp_sense_set_fixed(cmd, key, asc, ascq);
		cmd->sense[0] |= 0x80; /* VALID */
		crp_put_be32(&cmd->sense[3], (uint32_t)info);
		return;
	}
	/* Fixed format holds 32 bits of INFORMATION: descriptor format with
	 * an Information descriptor for the rest (SPC-4 4.5.2.2). */
	memset(cmd->sense, 0, 20);
	cmd->sense[0] = 0x72;
	cmd->sense[1] = key;
	cmd->sense[2] = asc;
	cmd->sense[3] = ascq;
	cmd->sense[7] = 12;   /* additional sense length: one descriptor */
	cmd->sense[8] = 0x00; /* Information */
	cmd->sense[9] = 0x0a;
	cmd->sense[10] = 0x80; /* VALID */
	crp_put_be64(&cmd->sense[12], info);
	cmd->sense_len = 20;
}

const char *crp_sense_text(const uint8_t *sense, size_t len, char *buf, size_t buflen)
{
	char tmp[512];
	size_t o = 0;
	bool sep = false;
	int n;

	if (!buf || !buflen)
		return "";
	buf[0] = '\0';
	if (!sense || !len) {
		snprintf(buf, buflen, "no sense data");
		return buf;
	}
	n = sg_get_sense_str(NULL, sense, (int)(len > 255 ? 255 : len), false, (int)sizeof(tmp),
			     tmp);
	if (n <= 0) {
		struct crp_sense s;

		if (crp_sense_decode(sense, len, &s) == 0)
			snprintf(buf, buflen, "sense key 0x%x, asc/ascq 0x%02x/0x%02x", s.key,
				 s.asc, s.ascq);
		else
			snprintf(buf, buflen, "unrecognised sense data (response code 0x%02x)",
				 sense[0]);
		return buf;
	}
	/* sg_lib writes several indented lines: fold them into one, the
	 * lines separated by "; ", runs of blanks collapsed. */
	for (int i = 0; i < n && tmp[i]; i++) {
		char c = tmp[i];

		if (c == '\n') {
			sep = o > 0;
			continue;
		}
		if (c == ' ' || c == '\t') {
			if (o > 0 && buf[o - 1] != ' ' && !sep && o + 1 < buflen)
				buf[o++] = ' ';
			continue;
		}
		if (sep) {
			while (o > 0 && buf[o - 1] == ' ')
				o--;
			if (o + 3 < buflen) {
				buf[o++] = ';';
				buf[o++] = ' ';
			}
			sep = false;
		}
		if (o + 1 >= buflen)
			break;
		buf[o++] = c;
	}
	while (o > 0 && buf[o - 1] == ' ')
		o--;
	buf[o] = '\0';
	return buf;
}

bool crp_sense_is_unit_attention(const struct crp_sense *s)
{
	return s && s->valid && s->key == CRP_SK_UNIT_ATTENTION;
}

/*
 * NOT READY that passes by itself (SPC-4 ASC 04h): the unit is becoming
 * ready, busy with an operation of its own, or changing its ALUA state.
 * The others (04h/00h cause not reportable, 04h/02h and 04h/03h: someone
 * must act; 3Ah: no medium; 05h: no answer) do not.  The list follows the
 * one Linux retries in scsi_io_completion_action().
 */
bool crp_sense_is_transient_not_ready(const struct crp_sense *s)
{
	if (!s || !s->valid || s->key != CRP_SK_NOT_READY || s->asc != 0x04)
		return false;
	switch (s->ascq) {
	case 0x01: /* becoming ready */
	case 0x04: /* format in progress */
	case 0x05: /* rebuild in progress */
	case 0x06: /* recalculation in progress */
	case 0x07: /* operation in progress */
	case 0x08: /* long write in progress */
	case 0x09: /* self-test in progress */
	case 0x0a: /* asymmetric access state transition */
	case 0x11: /* notify (enable spinup) required */
	case 0x14: /* space allocation in progress */
	case 0x1a: /* start stop unit command in progress */
	case 0x1b: /* sanitize in progress */
	case 0x1d: /* configuration of incapacity in progress */
	case 0x24: /* depopulation in progress */
		return true;
	}
	return false;
}

int crp_status_error(int status, const uint8_t *sense, size_t sense_len)
{
	struct crp_sense s;

	switch (status) {
	case CRP_SAM_GOOD:
		return 0;
	case CRP_SAM_RESERVATION_CONFLICT:
		return -CRP_ECONFLICT;
	case CRP_SAM_BUSY:
	case CRP_SAM_TASK_SET_FULL:
		return -EAGAIN;
	case CRP_SAM_CHECK_CONDITION:
		break;
	default:
		/* No status at all, or one crpfs never expects (TASK ABORTED,
		 * ACA ACTIVE, ...): the command did not do its work. */
		return -EIO;
	}
	if (crp_sense_decode(sense, sense_len, &s) < 0)
		return -CRP_ESENSE;
	switch (s.key) {
	case CRP_SK_UNIT_ATTENTION:
		return -EAGAIN;
	case CRP_SK_NOT_READY:
		return crp_sense_is_transient_not_ready(&s) ? -EAGAIN : -CRP_EMEMBER;
	case CRP_SK_MEDIUM_ERROR:
		return -CRP_EMEDIUM;
	case CRP_SK_HARDWARE_ERROR:
		return -CRP_EMEMBER;
	case CRP_SK_ILLEGAL_REQUEST:
		/* 25h: the logical unit is not there (deleted at the target);
		 * anything else is a field crpfs got wrong. */
		return s.asc == 0x25 ? -CRP_EMEMBER : -EINVAL;
	case CRP_SK_DATA_PROTECT:
		return -EROFS;
	}
	return -CRP_ESENSE;
}
