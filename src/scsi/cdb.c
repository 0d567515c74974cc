/*
 * CDB builders and parsers for the commands crpfs issues (SPC-3, SBC-3).
 *
 * Every multi-byte field of a CDB or of parameter data is big-endian on the
 * wire; the crp_put_be / crp_get_be helpers below are the only place that converts,
 * so nothing here depends on the host's byte order.
 */
#include <errno.h>
#include <string.h>

#include "crpfs/scsi.h"

void crp_put_be16(uint8_t *p, uint16_t v)
{
	p[0] = (uint8_t)(v >> 8);
	p[1] = (uint8_t)v;
}

void crp_put_be32(uint8_t *p, uint32_t v)
{
	p[0] = (uint8_t)(v >> 24);
	p[1] = (uint8_t)(v >> 16);
	p[2] = (uint8_t)(v >> 8);
	p[3] = (uint8_t)v;
}

void crp_put_be64(uint8_t *p, uint64_t v)
{
	crp_put_be32(p, (uint32_t)(v >> 32));
	crp_put_be32(p + 4, (uint32_t)v);
}

uint16_t crp_get_be16(const uint8_t *p)
{
	return (uint16_t)((p[0] << 8) | p[1]);
}

uint32_t crp_get_be32(const uint8_t *p)
{
	return ((uint32_t)p[0] << 24) | ((uint32_t)p[1] << 16) | ((uint32_t)p[2] << 8) |
	       (uint32_t)p[3];
}

uint64_t crp_get_be64(const uint8_t *p)
{
	return ((uint64_t)crp_get_be32(p) << 32) | crp_get_be32(p + 4);
}

void crp_cmd_init(struct crp_cmd *cmd)
{
	memset(cmd, 0, sizeof(*cmd));
	cmd->status = CRP_SAM_NONE;
}

/* Reset the CDB and set the data phase; everything else (timeout, chain,
 * callback) is left as the caller set it. */
static void cdb_reset(struct crp_cmd *cmd, uint8_t len, enum crp_dir dir, void *buf,
		      uint32_t buflen)
{
	memset(cmd->cdb, 0, sizeof(cmd->cdb));
	cmd->cdb_len = len;
	cmd->dir = buf && buflen ? dir : CRP_DIR_NONE;
	cmd->buf = buf;
	cmd->len = buf ? buflen : 0;
}

void crp_cdb_test_unit_ready(struct crp_cmd *cmd)
{
	cdb_reset(cmd, 6, CRP_DIR_NONE, NULL, 0);
	cmd->cdb[0] = CRP_OP_TEST_UNIT_READY;
}

void crp_cdb_inquiry(struct crp_cmd *cmd, void *buf, uint16_t len)
{
	cdb_reset(cmd, 6, CRP_DIR_READ, buf, len);
	cmd->cdb[0] = CRP_OP_INQUIRY;
	crp_put_be16(&cmd->cdb[3], len); /* allocation length */
}

void crp_cdb_read_capacity16(struct crp_cmd *cmd, void *buf, uint32_t len)
{
	cdb_reset(cmd, 16, CRP_DIR_READ, buf, len);
	cmd->cdb[0] = CRP_OP_SERVICE_IN16;
	cmd->cdb[1] = 0x10; /* READ CAPACITY(16) */
	crp_put_be32(&cmd->cdb[10], len);
}

static void rw16(struct crp_cmd *cmd, uint8_t op, uint64_t lba, uint32_t nblocks)
{
	cmd->cdb[0] = op;
	crp_put_be64(&cmd->cdb[2], lba);
	crp_put_be32(&cmd->cdb[10], nblocks);
}

void crp_cdb_read16(struct crp_cmd *cmd, uint64_t lba, uint32_t nblocks, void *buf, uint32_t len)
{
	cdb_reset(cmd, 16, CRP_DIR_READ, buf, len);
	rw16(cmd, CRP_OP_READ16, lba, nblocks);
}

void crp_cdb_write16(struct crp_cmd *cmd, uint64_t lba, uint32_t nblocks, const void *buf,
		     uint32_t len, bool fua)
{
	cdb_reset(cmd, 16, CRP_DIR_WRITE, (void *)buf, len);
	rw16(cmd, CRP_OP_WRITE16, lba, nblocks);
	if (fua)
		cmd->cdb[1] |= 0x08;
}

void crp_cdb_sync_cache16(struct crp_cmd *cmd)
{
	/* LBA 0, 0 blocks: the whole medium. */
	cdb_reset(cmd, 16, CRP_DIR_NONE, NULL, 0);
	cmd->cdb[0] = CRP_OP_SYNC_CACHE16;
}

void crp_cdb_reserve6(struct crp_cmd *cmd)
{
	cdb_reset(cmd, 6, CRP_DIR_NONE, NULL, 0);
	cmd->cdb[0] = CRP_OP_RESERVE6;
}

void crp_cdb_release6(struct crp_cmd *cmd)
{
	cdb_reset(cmd, 6, CRP_DIR_NONE, NULL, 0);
	cmd->cdb[0] = CRP_OP_RELEASE6;
}

void crp_cdb_pr_in(struct crp_cmd *cmd, uint8_t sa, void *buf, uint16_t len)
{
	cdb_reset(cmd, 10, CRP_DIR_READ, buf, len);
	cmd->cdb[0] = CRP_OP_PR_IN;
	cmd->cdb[1] = sa & 0x1f;
	crp_put_be16(&cmd->cdb[7], len);
}

void crp_cdb_pr_out(struct crp_cmd *cmd, uint8_t sa, uint8_t type, uint64_t key,
		    uint64_t sa_key, uint8_t param[24])
{
	memset(param, 0, 24);
	crp_put_be64(&param[0], key);
	crp_put_be64(&param[8], sa_key);
	/* byte 20: SPEC_I_PT, ALL_TG_PT and APTPL all off */
	cdb_reset(cmd, 10, CRP_DIR_WRITE, param, 24);
	cmd->cdb[0] = CRP_OP_PR_OUT;
	cmd->cdb[1] = sa & 0x1f;
	cmd->cdb[2] = type & 0x0f; /* scope 0: logical unit */
	crp_put_be32(&cmd->cdb[5], 24);
}

int crp_parse_read_capacity16(const uint8_t *buf, uint32_t len, uint64_t *nblocks,
			      uint32_t *block_size)
{
	uint64_t last;

	if (!buf || len < 12)
		return -EPROTO;
	last = crp_get_be64(buf);
	if (last == UINT64_MAX)
		return -EPROTO;
	*nblocks = last + 1;
	*block_size = crp_get_be32(buf + 8);
	if (*block_size == 0)
		return -EPROTO;
	return 0;
}

int crp_parse_pr_keys(const uint8_t *buf, uint32_t len, uint32_t *gen, uint64_t *keys, int max)
{
	uint32_t addlen, nkeys, avail, want;

	if (!buf || len < 8 || max < 0)
		return -EPROTO;
	addlen = crp_get_be32(buf + 4);
	if (addlen % 8 || addlen / 8 > (uint32_t)INT32_MAX)
		return -EPROTO;
	nkeys = addlen / 8;
	avail = (len - 8) / 8;
	want = nkeys < (uint32_t)max ? nkeys : (uint32_t)max;
	/* The caller asked for keys the buffer does not hold: truncated data. */
	if (want > avail)
		return -EPROTO;
	if (gen)
		*gen = crp_get_be32(buf);
	for (uint32_t i = 0; i < want; i++)
		keys[i] = crp_get_be64(buf + 8 + 8 * i);
	return (int)nkeys;
}

int crp_parse_pr_reservation(const uint8_t *buf, uint32_t len, uint32_t *gen, uint64_t *key,
			     uint8_t *type)
{
	uint32_t addlen;

	if (!buf || len < 8)
		return -EPROTO;
	addlen = crp_get_be32(buf + 4);
	if (gen)
		*gen = crp_get_be32(buf);
	if (addlen == 0)
		return 0;
	if (addlen < 16 || len < 24)
		return -EPROTO;
	if (key)
		*key = crp_get_be64(buf + 8);
	if (type)
		*type = buf[21] & 0x0f;
	return 1;
}

static const char *pr_out_name(uint8_t sa)
{
	switch (sa) {
	case CRP_PROUT_REGISTER:
		return "PR OUT(REGISTER)";
	case CRP_PROUT_RESERVE:
		return "PR OUT(RESERVE)";
	case CRP_PROUT_RELEASE:
		return "PR OUT(RELEASE)";
	case CRP_PROUT_CLEAR:
		return "PR OUT(CLEAR)";
	case CRP_PROUT_PREEMPT:
		return "PR OUT(PREEMPT)";
	case CRP_PROUT_PREEMPT_ABORT:
		return "PR OUT(PREEMPT AND ABORT)";
	case CRP_PROUT_REGISTER_IGNORE:
		return "PR OUT(REGISTER AND IGNORE)";
	}
	return "PERSISTENT RESERVE OUT";
}

static const char *pr_in_name(uint8_t sa)
{
	switch (sa) {
	case CRP_PRIN_READ_KEYS:
		return "PR IN(READ KEYS)";
	case CRP_PRIN_READ_RESERVATION:
		return "PR IN(READ RESERVATION)";
	}
	return "PERSISTENT RESERVE IN";
}

const char *crp_cdb_name(const struct crp_cmd *cmd)
{
	if (!cmd->cdb_len)
		return "(no command)";
	switch (cmd->cdb[0]) {
	case CRP_OP_TEST_UNIT_READY:
		return "TEST UNIT READY";
	case CRP_OP_INQUIRY:
		return "INQUIRY";
	case CRP_OP_RESERVE6:
		return "RESERVE(6)";
	case CRP_OP_RELEASE6:
		return "RELEASE(6)";
	case CRP_OP_SYNC_CACHE10:
		return "SYNCHRONIZE CACHE(10)";
	case CRP_OP_SYNC_CACHE16:
		return "SYNCHRONIZE CACHE(16)";
	case CRP_OP_PR_IN:
		return pr_in_name(cmd->cdb[1] & 0x1f);
	case CRP_OP_PR_OUT:
		return pr_out_name(cmd->cdb[1] & 0x1f);
	case CRP_OP_READ16:
		return "READ(16)";
	case CRP_OP_WRITE16:
		return "WRITE(16)";
	case CRP_OP_SERVICE_IN16:
		if ((cmd->cdb[1] & 0x1f) == 0x10)
			return "READ CAPACITY(16)";
		return "SERVICE ACTION IN(16)";
	}
	return "UNKNOWN COMMAND";
}

enum crp_opclass crp_cdb_class(const struct crp_cmd *cmd)
{
	if (!cmd->cdb_len)
		return CRP_OPC_OTHER;
	switch (cmd->cdb[0]) {
	case CRP_OP_READ16:
		return CRP_OPC_READ;
	case CRP_OP_WRITE16:
		return CRP_OPC_WRITE;
	case CRP_OP_RESERVE6:
		return CRP_OPC_RESERVE;
	case CRP_OP_RELEASE6:
		return CRP_OPC_RELEASE;
	case CRP_OP_PR_IN:
		return CRP_OPC_PR_IN;
	case CRP_OP_PR_OUT:
		return CRP_OPC_PR_OUT;
	case CRP_OP_SYNC_CACHE10:
	case CRP_OP_SYNC_CACHE16:
		return CRP_OPC_SYNC;
	}
	return CRP_OPC_OTHER;
}

const char *crp_opclass_name(enum crp_opclass c)
{
	static const char *const names[CRP_OPC_MAX] = {
		[CRP_OPC_READ] = "read",       [CRP_OPC_WRITE] = "write",
		[CRP_OPC_RESERVE] = "reserve", [CRP_OPC_RELEASE] = "release",
		[CRP_OPC_PR_IN] = "pr_in",     [CRP_OPC_PR_OUT] = "pr_out",
		[CRP_OPC_SYNC] = "sync",       [CRP_OPC_OTHER] = "other",
	};

	if ((unsigned)c >= CRP_OPC_MAX)
		return "invalid";
	return names[c];
}
