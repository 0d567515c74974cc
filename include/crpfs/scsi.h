/*
 * SCSI commands as crpfs uses them: one command object, CDB builders and
 * sense decoding, shared by every transport.  A transport only moves the
 * bytes of a struct crp_cmd; nothing here knows how they travel.
 */
#ifndef CRPFS_SCSI_H
#define CRPFS_SCSI_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* SCSI status bytes (SAM-5). */
enum {
	CRP_SAM_GOOD = 0x00,
	CRP_SAM_CHECK_CONDITION = 0x02,
	CRP_SAM_BUSY = 0x08,
	CRP_SAM_RESERVATION_CONFLICT = 0x18,
	CRP_SAM_TASK_SET_FULL = 0x28,
	CRP_SAM_NONE = -1, /* the command never got a status (transport error) */
};

/* Operation codes crpfs issues. */
enum {
	CRP_OP_TEST_UNIT_READY = 0x00,
	CRP_OP_INQUIRY = 0x12,
	CRP_OP_RESERVE6 = 0x16,
	CRP_OP_RELEASE6 = 0x17,
	CRP_OP_SYNC_CACHE10 = 0x35,
	CRP_OP_PR_IN = 0x5e,
	CRP_OP_PR_OUT = 0x5f,
	CRP_OP_READ16 = 0x88,
	CRP_OP_WRITE16 = 0x8a,
	CRP_OP_SYNC_CACHE16 = 0x91,
	CRP_OP_SERVICE_IN16 = 0x9e, /* READ CAPACITY(16) is service action 0x10 */
};

/* PERSISTENT RESERVE IN service actions. */
enum {
	CRP_PRIN_READ_KEYS = 0x00,
	CRP_PRIN_READ_RESERVATION = 0x01,
};

/* PERSISTENT RESERVE OUT service actions. */
enum {
	CRP_PROUT_REGISTER = 0x00,
	CRP_PROUT_RESERVE = 0x01,
	CRP_PROUT_RELEASE = 0x02,
	CRP_PROUT_CLEAR = 0x03,
	CRP_PROUT_PREEMPT = 0x04,
	CRP_PROUT_PREEMPT_ABORT = 0x05,
	CRP_PROUT_REGISTER_IGNORE = 0x06,
};

/* Persistent reservation types. */
enum {
	CRP_PR_TYPE_WRITE_EXCLUSIVE = 0x1,
	CRP_PR_TYPE_EXCLUSIVE_ACCESS = 0x3,
	CRP_PR_TYPE_WE_REGISTRANTS_ONLY = 0x5,
};

/* Sense keys. */
enum {
	CRP_SK_NO_SENSE = 0x0,
	CRP_SK_RECOVERED_ERROR = 0x1,
	CRP_SK_NOT_READY = 0x2,
	CRP_SK_MEDIUM_ERROR = 0x3,
	CRP_SK_HARDWARE_ERROR = 0x4,
	CRP_SK_ILLEGAL_REQUEST = 0x5,
	CRP_SK_UNIT_ATTENTION = 0x6,
	CRP_SK_DATA_PROTECT = 0x7,
	CRP_SK_ABORTED_COMMAND = 0xb,
};

enum crp_dir {
	CRP_DIR_NONE = 0,
	CRP_DIR_READ,  /* data from the device into buf */
	CRP_DIR_WRITE, /* data from buf to the device */
};

#define CRP_SENSE_MAX 96
#define CRP_CDB_MAX 16

struct crp_cmd;
typedef void (*crp_cmd_done_fn)(struct crp_cmd *cmd);

/*
 * One SCSI command.  The caller fills the CDB (with a crp_cdb_* builder), the
 * data buffer and the timeout; the member's I/O thread fills the results and
 * calls @done.  A command belongs to its member's I/O thread from
 * crp_member_submit() until @done runs; the caller touches nothing in it
 * meanwhile.
 */
struct crp_cmd {
	uint8_t cdb[CRP_CDB_MAX];
	uint8_t cdb_len;
	enum crp_dir dir;
	void *buf;
	uint32_t len;
	uint32_t timeout_ms; /* 0: the member's default */
	/*
	 * A WRITE that relies on a reservation this host holds: 0 if none.
	 * Not sent once the monotonic clock (crp_now_ns) has passed it (the
	 * host's lease: a host hung with the command queued must not write
	 * after the others may have declared it dead), failing with
	 * -CRP_EFENCED; and not retried after a UNIT ATTENTION that says the
	 * reservation is gone (reset, preemption), failing with
	 * -CRP_ELOCKLOST.
	 */
	uint64_t fence_ns;

	/* results */
	int status;  /* SCSI status, or CRP_SAM_NONE */
	int result;  /* 0 when status is GOOD, else a negative error (see
			crp_status_error and crp_member_complete) */
	uint32_t resid;
	uint8_t sense_len;
	uint8_t sense[CRP_SENSE_MAX];
	uint32_t ua_retries; /* UNIT ATTENTIONs (BUSY, NOT READY...) retried for this
				command */
	uint32_t resends;    /* sent again after a lost session (crp_member_resend) */
	/*
	 * The sense data's INFORMATION field, when the target set it VALID
	 * (fixed format, or a descriptor-format Information descriptor).  For
	 * a READ that failed with -CRP_EMEDIUM it is the first LBA the unit
	 * could not read.
	 */
	uint64_t info_lba;
	bool info_valid;
	bool no_ua_retry;    /* complete a UNIT ATTENTION as is (-EAGAIN), noting its
				event: crp_member_drain_ua */

	/*
	 * Issued by the I/O thread as soon as this command completes GOOD,
	 * before @done runs, so that nothing the caller does can come between
	 * them (RELEASE chained on a WRITE).  If this command fails, @chain is
	 * completed with result -ECANCELED without being issued.
	 */
	struct crp_cmd *chain;

	crp_cmd_done_fn done; /* called in the I/O thread; may be NULL */
	void *priv;	      /* the owner's */

	/* private to the member layer and the transports */
	struct crp_cmd *q_next;
	uint64_t deadline_ns;	/* without the stalls since issued_ns: crp_cmd_deadline */
	uint64_t issued_ns;
	uint64_t stall_ns;	/* crp_stall_ns() when it was issued */
	uint64_t not_before_ns; /* a retry goes out no sooner (NOT READY), 0: now */
	uint32_t nexus_gen;	/* the nexus losses the submitter knew of */
	void *tpriv;
};

/* Reset @cmd to an empty command (results cleared, no chain, no callback). */
void crp_cmd_init(struct crp_cmd *cmd);

/* CDB builders: each resets the CDB, sets direction, buffer and length. */
void crp_cdb_test_unit_ready(struct crp_cmd *cmd);
void crp_cdb_inquiry(struct crp_cmd *cmd, void *buf, uint16_t len);
void crp_cdb_read_capacity16(struct crp_cmd *cmd, void *buf, uint32_t len);
void crp_cdb_read16(struct crp_cmd *cmd, uint64_t lba, uint32_t nblocks, void *buf, uint32_t len);
void crp_cdb_write16(struct crp_cmd *cmd, uint64_t lba, uint32_t nblocks, const void *buf,
		     uint32_t len, bool fua);
void crp_cdb_sync_cache16(struct crp_cmd *cmd);
void crp_cdb_reserve6(struct crp_cmd *cmd);
void crp_cdb_release6(struct crp_cmd *cmd);
/* PR IN: @buf receives the parameter data (use crp_pr_parse_* on it). */
void crp_cdb_pr_in(struct crp_cmd *cmd, uint8_t sa, void *buf, uint16_t len);
/*
 * PR OUT.  @param must point at 24 bytes owned by the caller for the life of
 * the command; crp_cdb_pr_out fills them (reservation key, service action
 * key, APTPL off).
 */
void crp_cdb_pr_out(struct crp_cmd *cmd, uint8_t sa, uint8_t type, uint64_t key,
		    uint64_t sa_key, uint8_t param[24]);

/* Parsed READ CAPACITY(16) data. */
int crp_parse_read_capacity16(const uint8_t *buf, uint32_t len, uint64_t *nblocks,
			      uint32_t *block_size);

/* Parsed PR IN READ KEYS data: up to @max keys; returns the number of keys
 * registered (may exceed @max) or a negative error; *gen is the PRgeneration. */
int crp_parse_pr_keys(const uint8_t *buf, uint32_t len, uint32_t *gen, uint64_t *keys, int max);
/* Parsed PR IN READ RESERVATION data: returns 1 if a reservation is held (key
 * and type filled), 0 if none, or a negative error. */
int crp_parse_pr_reservation(const uint8_t *buf, uint32_t len, uint32_t *gen, uint64_t *key,
			     uint8_t *type);

/* Big-endian fields of CDBs and parameter data (defined in cdb.c, the one
 * place that converts; shared by the transports that build replies). */
void crp_put_be16(uint8_t *p, uint16_t v);
void crp_put_be32(uint8_t *p, uint32_t v);
void crp_put_be64(uint8_t *p, uint64_t v);
uint16_t crp_get_be16(const uint8_t *p);
uint32_t crp_get_be32(const uint8_t *p);
uint64_t crp_get_be64(const uint8_t *p);

/* Decoded sense data (fixed or descriptor format). */
struct crp_sense {
	bool valid;
	uint8_t key;
	uint8_t asc;
	uint8_t ascq;
	bool info_valid; /* the INFORMATION field is VALID ... */
	uint64_t info;	 /* ... and holds this (an LBA for medium errors) */
};

/* Decode @len bytes of sense data; returns 0, or -EINVAL if it is not sense. */
int crp_sense_decode(const uint8_t *sense, size_t len, struct crp_sense *out);

/* Fill @cmd->sense with 18 bytes of fixed-format current sense (response
 * code 0x70) for @key/@asc/@ascq and set sense_len; status is not touched. */
void crp_sense_set_fixed(struct crp_cmd *cmd, uint8_t key, uint8_t asc, uint8_t ascq);

/*
 * Like crp_sense_set_fixed, with the INFORMATION field @info and the VALID
 * bit set; an @info above 32 bits takes descriptor format (72h) with an
 * Information descriptor, as SPC-4 asks.
 */
void crp_sense_set_info(struct crp_cmd *cmd, uint8_t key, uint8_t asc, uint8_t ascq,
			uint64_t info);

/* One line of text for the sense data (via sg_lib), into @buf. */
const char *crp_sense_text(const uint8_t *sense, size_t len, char *buf, size_t buflen);

/* True for UNIT ATTENTION sense: the command was not executed; retry it. */
bool crp_sense_is_unit_attention(const struct crp_sense *s);

/* True for NOT READY that passes by itself (04h: becoming ready, an
 * operation in progress, an ALUA transition): retry until the deadline. */
bool crp_sense_is_transient_not_ready(const struct crp_sense *s);

/*
 * The error a completed command stands for, whatever the command:
 *   0               GOOD
 *   -CRP_ECONFLICT  RESERVATION CONFLICT
 *   -EAGAIN         BUSY, TASK SET FULL, UNIT ATTENTION, NOT READY of the
 *                   passing kind (crp_sense_is_transient_not_ready)
 *   -CRP_EMEDIUM    MEDIUM ERROR (a bad block)
 *   -CRP_EMEMBER    the unit is gone or broken: HARDWARE ERROR, ILLEGAL
 *                   REQUEST with ASC 25h (logical unit not supported: the
 *                   LUN was deleted), any other NOT READY (3Ah no medium)
 *   -EINVAL         other ILLEGAL REQUEST (a field crpfs got wrong)
 *   -EROFS          DATA PROTECT
 *   -CRP_ESENSE     other check conditions
 *   -EIO            no status, or one crpfs never expects
 * The member layer refines this per command (crp_member_complete: a
 * MEDIUM ERROR other than on a READ is -CRP_EMEMBER, a NOT READY that
 * lasts past the deadline too) and fails the member on -CRP_EMEMBER.
 */
int crp_status_error(int status, const uint8_t *sense, size_t sense_len);

/* Short name of the command in @cmd ("READ(16)", "RESERVE(6)", ...). */
const char *crp_cdb_name(const struct crp_cmd *cmd);

/* Counter class of an operation code, for struct crp_member_counters. */
enum crp_opclass {
	CRP_OPC_READ,
	CRP_OPC_WRITE,
	CRP_OPC_RESERVE,
	CRP_OPC_RELEASE,
	CRP_OPC_PR_IN,
	CRP_OPC_PR_OUT,
	CRP_OPC_SYNC,
	CRP_OPC_OTHER,
	CRP_OPC_MAX
};
enum crp_opclass crp_cdb_class(const struct crp_cmd *cmd);
const char *crp_opclass_name(enum crp_opclass c);

#endif
