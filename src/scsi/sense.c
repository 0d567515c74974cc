/*
 * Sense data: decoding of fixed (70h/71h) and descriptor (72h/73h) format,
 * text through sg3_utils' sg_lib, and the mapping of a completed command's
 * status to a crpfs error.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include <scsi/sg_lib.h>

#include "crpfs/err.h"
#include "crpfs/scsi.h"

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
		break;
	case 0x72: /* descriptor, current */
	case 0x73: /* descriptor, deferred */
		if (len < 4)
			return -EINVAL;
		out->key = sense[1] & 0x0f;
		out->asc = sense[2];
		out->ascq = sense[3];
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
	case CRP_SK_MEDIUM_ERROR:
	case CRP_SK_HARDWARE_ERROR:
		return -EIO;
	case CRP_SK_ILLEGAL_REQUEST:
		return -EINVAL;
	case CRP_SK_DATA_PROTECT:
		return -EROFS;
	}
	return -CRP_ESENSE;
}
