/*
 * Members: one SCSI logical unit each, reached through one transport.
 *
 * A host talks to a member through exactly one I_T nexus (one iSCSI session,
 * one /dev/sg handle, one open of a file member): a reservation belongs to
 * the nexus, so every thread of the host shares it.  Each member has one I/O
 * thread, owned by its transport, that issues the commands queued with
 * crp_member_submit() in the order they were queued and completes each with
 * status and sense.
 *
 * Contract of the I/O thread (every transport):
 *  - commands go out in submission order; a command's @chain goes out from
 *    the completion of the command, before its @done callback runs;
 *  - UNIT ATTENTION, BUSY and TASK SET FULL are retried (up to
 *    CRP_UA_RETRIES times, within the command's deadline); a UNIT
 *    ATTENTION is recorded in the member's events (reset, reservations
 *    preempted/released);
 *  - NOT READY of the passing kind (04h: becoming ready, an operation in
 *    progress) is retried after a pause (10 ms doubling to 250 ms) until
 *    the command's deadline; one that lasts past it, or any other NOT
 *    READY (3Ah medium not present...), fails the member;
 *  - a bad block is not a dead member: MEDIUM ERROR on a READ completes
 *    with -CRP_EMEDIUM, cmd->info_lba (info_valid) naming the first LBA
 *    the unit could not read, and the member stays in service; MEDIUM
 *    ERROR on anything else (a WRITE), HARDWARE ERROR and ILLEGAL REQUEST
 *    25h (LOGICAL UNIT NOT SUPPORTED: the LUN was deleted) fail the member
 *    and complete with -CRP_EMEMBER, last_err and the log naming what the
 *    target said; other ILLEGAL REQUESTs are -EINVAL (a bad field);
 *  - every command completes within its timeout: a command that has not
 *    completed by its deadline completes with -ETIMEDOUT and the member is
 *    marked failed, after which every command completes at once with
 *    -CRP_EMEMBER;
 *  - a lost session (iSCSI) completes everything in flight with
 *    -CRP_ELOCKLOST: the nexus and every reservation it held are gone.
 *    The member notes CRP_EV_NEXUS_LOST before any of them completes and
 *    logs in again itself, with a growing pause between attempts, for up
 *    to opts.reconnect_ms; each attempt (connect, login, and a READ
 *    CAPACITY that checks the unit is the one it had) is bounded by the
 *    command timeout and by the window.  Commands submitted meanwhile
 *    wait in the queue and are sent on the new session, each with its own
 *    timeout from then on, so none waits longer than the window plus its
 *    timeout.  A command that changes nothing and relies on no
 *    reservation (a READ without fence_ns, TEST UNIT READY, PERSISTENT
 *    RESERVE IN...) that was in flight is sent again on the new session
 *    rather than failed.  A reconnect notes CRP_EV_NEW_NEXUS and counts in
 *    counters.reconnects; no reservation is taken back and no PR key
 *    registered again: that is the caller's (the array's) job.  The new
 *    session's own power-on or nexus-loss UNIT ATTENTION (29h/00h, 01h,
 *    07h), reported once on its first commands, is not an event: it
 *    tells of the loss already noted.  If the
 *    window passes without a session, or the unit that answers is not
 *    there (ILLEGAL REQUEST 25h) or not the same size, the member fails
 *    with -CRP_EMEMBER and every waiting command completes with it;
 *  - a command that relies on a reservation (fence_ns set) is never sent
 *    on a nexus newer than the one its submitter knew of: if a session
 *    was lost after the submitter last took CRP_EV_NEXUS_LOST with
 *    crp_member_take_events (or after the member opened), the command
 *    completes with -CRP_ELOCKLOST unsent.  Take the event, take the
 *    locks again, then submit.
 */
#ifndef CRPFS_MEMBER_H
#define CRPFS_MEMBER_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "crpfs/scsi.h"

#define CRP_UA_RETRIES 250
#define CRP_DEFAULT_TIMEOUT_MS 5000
#define CRP_DEFAULT_RECONNECT_MS 20000
#define CRP_SPEC_MAX 1024

enum crp_transport_kind {
	CRP_TRANSPORT_FILE,
	CRP_TRANSPORT_ISCSI,
	CRP_TRANSPORT_SG,
};

/*
 * A parsed member specification:
 *   file:PATH
 *   iscsi://HOST[:PORT]/IQN/LUN[?chap=FILE]
 *   /dev/sgN, /dev/sdX (any path under /dev/)
 * Options follow a '?' as key=value pairs joined by '&'.
 */
struct crp_spec {
	enum crp_transport_kind kind;
	char text[CRP_SPEC_MAX];  /* the spec as given, for messages */
	char path[CRP_SPEC_MAX];  /* file and sg: the path */
	char host[256];		  /* iscsi: portal host */
	int port;		  /* iscsi: portal port (3260) */
	char iqn[256];		  /* iscsi: target name */
	int lun;		  /* iscsi: LUN */
	char chap_file[CRP_SPEC_MAX]; /* iscsi: credentials file, or "" */
};

/* Parse @text.  On error returns -CRP_EBADSPEC and writes why into @err. */
int crp_spec_parse(const char *text, struct crp_spec *spec, char *err, size_t errlen);

struct crp_member_opts {
	const char *host;     /* this host's name; the iSCSI initiator name derives from it */
	uint32_t timeout_ms;  /* default command timeout (CRP_DEFAULT_TIMEOUT_MS if 0) */
	bool create;	      /* file: create the image if missing ... */
	uint64_t create_size; /* ... with this size in bytes */
	uint32_t file_block_size; /* file: logical block size (512 if 0) */
	/*
	 * iscsi: how long a lost session is logged in again for before the
	 * member fails (CRP_DEFAULT_RECONNECT_MS if 0; UINT32_MAX: never, the
	 * member fails at once with -CRP_ELOCKLOST).
	 */
	uint32_t reconnect_ms;
};

/* The iSCSI initiator name of host @host: "iqn.2026-11.org.crpfs:<host>". */
void crp_initiator_name(const char *host, char *buf, size_t len);

/* Events seen in UNIT ATTENTIONs, accumulated until crp_member_take_events. */
enum {
	CRP_EV_RESET = 1u << 0,	       /* power on, reset, bus device reset (29h) */
	CRP_EV_RES_PREEMPTED = 1u << 1, /* 2Ah/03h reservations preempted */
	CRP_EV_RES_RELEASED = 1u << 2,	/* 2Ah/04h reservations released */
	CRP_EV_REG_PREEMPTED = 1u << 3, /* 2Ah/05h registrations preempted */
	CRP_EV_PARAMS_CHANGED = 1u << 4, /* other 2Ah, 3Fh */
	CRP_EV_NEXUS_LOST = 1u << 5,	/* session lost: every reservation gone */
	CRP_EV_NEW_NEXUS = 1u << 6,	/* logged in again: a new nexus, without the
					   old one's registration (the loss itself
					   was CRP_EV_NEXUS_LOST) */
};

/* Per-member counters: updated by the I/O thread, read by anyone. */
struct crp_member_counters {
	atomic_uint_fast64_t cmds[CRP_OPC_MAX]; /* completed commands by class */
	atomic_uint_fast64_t bytes_read;
	atomic_uint_fast64_t bytes_written;
	atomic_uint_fast64_t conflicts;	 /* RESERVATION CONFLICT statuses */
	atomic_uint_fast64_t ua_retries; /* UNIT ATTENTIONs retried */
	atomic_uint_fast64_t busy_retries; /* BUSY / TASK SET FULL retried */
	atomic_uint_fast64_t not_ready_retries; /* NOT READY (becoming ready...) retried */
	atomic_uint_fast64_t timeouts;
	atomic_uint_fast64_t reconnects; /* lost sessions logged in again */
	atomic_uint_fast64_t resets_seen; /* resets of the unit noticed (CRP_EV_RESET) */
	atomic_uint_fast64_t errors;	 /* other failed commands */
	atomic_uint_fast64_t busy_ns;	 /* sum of command latencies */
};

struct crp_member;

/*
 * Open a member and start its I/O thread.  Checks that the unit answers
 * (TEST UNIT READY, READ CAPACITY).  On error returns a negative error and
 * writes a message naming the member and what to do into @err.
 */
int crp_member_open(const char *spec, const struct crp_member_opts *opts,
		    struct crp_member **out, char *err, size_t errlen);
/*
 * A stand-in for a member that is not there (named "missing", or that
 * could not be opened): failed from the start with @reason (-CRP_EMEMBER
 * if not negative); every command completes at once with -CRP_EMEMBER.
 * @text names it in messages.  Closed with crp_member_close.
 */
int crp_member_open_absent(const char *text, int reason, struct crp_member **out);
/* Is @spec the word "missing" (or NULL): no member at that position? */
bool crp_spec_is_missing(const char *spec);
/* Stop the I/O thread (completing anything queued with -CRP_EMEMBER) and
 * close the nexus, which releases its SCSI-2 reservation. */
void crp_member_close(struct crp_member *m);

const char *crp_member_spec(const struct crp_member *m);
const struct crp_spec *crp_member_parsed_spec(const struct crp_member *m);
uint64_t crp_member_size(const struct crp_member *m);	    /* bytes */
uint32_t crp_member_block_size(const struct crp_member *m); /* bytes */
bool crp_member_failed(const struct crp_member *m);
/*
 * True from the loss of the member's session until it is logged in again
 * or the member fails (iSCSI): commands submitted meanwhile wait, up to
 * reconnect_ms plus their timeout.  A caller that must not wait that long
 * (a heartbeat) can leave the member alone meanwhile.
 */
bool crp_member_reconnecting(const struct crp_member *m);
/* Why the member failed (0 if it has not). */
int crp_member_fail_reason(const struct crp_member *m);
uint32_t crp_member_default_timeout(const struct crp_member *m);

/* Return and clear the CRP_EV_* bits seen since the last call.  Taking
 * CRP_EV_NEXUS_LOST lets commands with fence_ns go out again (above). */
unsigned crp_member_take_events(struct crp_member *m);
/* How many times the member's session was lost so far (0 at open). */
unsigned crp_member_nexus_gen(struct crp_member *m);

struct crp_member_counters *crp_member_counters(struct crp_member *m);

/*
 * Queue @n commands for the I/O thread, in order.  Never blocks on I/O.
 * Each command's @done runs in the I/O thread when it completes (after its
 * chain, if any, has been issued).  A failed member completes them at once.
 */
void crp_member_submit(struct crp_member *m, struct crp_cmd *const *cmds, int n);

/*
 * Logical unit reset (task management): breaks a SCSI-2 reservation held by
 * any nexus.  Synchronous, bounded by the member's timeout.
 */
int crp_member_lun_reset(struct crp_member *m);

/*
 * A completion group: commands on any number of members, waited for
 * together.  crp_batch_add() takes the command's @done and @priv.
 */
struct crp_batch {
	pthread_mutex_t mu;
	pthread_cond_t cv;
	int pending;
};

void crp_batch_init(struct crp_batch *b);
void crp_batch_destroy(struct crp_batch *b);
void crp_batch_add(struct crp_batch *b, struct crp_cmd *cmd);
/* Wait until every command added has completed (each is bounded by its own
 * timeout, so this is too). */
void crp_batch_wait(struct crp_batch *b);

/* Submit one command and wait for it; returns its result. */
int crp_member_exec(struct crp_member *m, struct crp_cmd *cmd);
/*
 * Take up to @max pending UNIT ATTENTIONs off our nexus (TEST UNIT READY
 * in batches until one comes back GOOD), noting their events.  A target
 * may queue one per reservation another host releases, without bound
 * (tgt does); a host that issues few commands of its own drains them with
 * this now and then.  0, or the first error other than a UNIT ATTENTION.
 */
int crp_member_drain_ua(struct crp_member *m, unsigned max);

/* Convenience synchronous I/O in bytes (offset and length multiples of the
 * block size); return 0 or the command's error. */
int crp_member_read(struct crp_member *m, uint64_t off, void *buf, uint32_t len);
int crp_member_write(struct crp_member *m, uint64_t off, const void *buf, uint32_t len);
int crp_member_sync(struct crp_member *m);

/* Text of the last failed command of this member for messages. */
const char *crp_member_last_error(struct crp_member *m, char *buf, size_t len);

/*
 * Fault injection in file: members.  The faults live in the image's shared
 * state file (PATH.crpfs-scsi, next to the image @path as in file:PATH),
 * so a fault set by one process is seen by the next command of every
 * process that has the image open; they last until cleared, across opens.
 * Each call takes the state lock like a reservation command (bounded by
 * CRP_DEFAULT_TIMEOUT_MS).  An image that has no state file (never opened
 * as a member) is refused with -ENOENT; errors write why into @err.
 *
 *  - bad blocks: a READ whose blocks hold a bad one completes CHECK
 *    CONDITION, MEDIUM ERROR, 11h/00h (unrecovered read error), with the
 *    first bad LBA of the range read in the INFORMATION field (VALID), so
 *    the member layer completes it with -CRP_EMEDIUM and info_lba; a WRITE
 *    over bad blocks succeeds and makes them good (a drive remaps a
 *    sector on write).  LBAs count blocks of @block_size bytes (0: 512,
 *    the block size crpfs opens file members with); they are kept in
 *    512-byte sectors, so members opened with other block sizes agree.
 *  - CRP_FAULT_GONE: the logical unit is deleted, as tgt does when a LUN
 *    is removed: every command but INQUIRY completes CHECK CONDITION,
 *    ILLEGAL REQUEST, 25h/00h (LOGICAL UNIT NOT SUPPORTED); INQUIRY
 *    answers with peripheral qualifier 011b, device type 1Fh (no unit
 *    here); opening the image fails with -CRP_EMEMBER.  The LU's
 *    reservations and PR registrations go with it.  Clearing it creates
 *    the unit again, with a power-on UNIT ATTENTION (29h/00h) for every
 *    nexus.
 *  - CRP_FAULT_NOT_READY: every command but INQUIRY completes CHECK
 *    CONDITION, NOT READY, 04h/01h (becoming ready) until it is cleared.
 *  - CRP_FAULT_SENSE (crp_file_fault_sense): every command but INQUIRY
 *    completes CHECK CONDITION with the given sense key, ASC and ASCQ
 *    (HARDWARE ERROR, NOT READY 3Ah no medium, ...) until it is cleared.
 * A deleted unit answers before anything else, then pending UNIT
 * ATTENTIONs, then NOT READY, then the given sense.
 */
#define CRP_FAULT_BAD_MAX 64 /* bad block ranges an image holds */
enum {
	CRP_FAULT_GONE = 1u << 0,
	CRP_FAULT_NOT_READY = 1u << 1,
	CRP_FAULT_SENSE = 1u << 2,
};

struct crp_fault_range {
	uint64_t lba;
	uint64_t count;
};

struct crp_faults {
	unsigned flags; /* CRP_FAULT_* */
	uint8_t sense_key, asc, ascq; /* with CRP_FAULT_SENSE */
	int nbad;	/* ranges in bad[], in ascending order */
	struct crp_fault_range bad[CRP_FAULT_BAD_MAX];
	/* 512-byte sectors forgotten: a WRITE in the middle of a range
	 * splits it, and with CRP_FAULT_BAD_MAX ranges in use the last range
	 * is dropped. */
	uint64_t dropped;
};

/* Mark blocks [@lba, @lba + @count) bad (merged with ranges they touch);
 * -EINVAL past the end of the image, -ENOSPC with the list full. */
int crp_file_fault_medium(const char *path, uint32_t block_size, uint64_t lba, uint64_t count,
			  char *err, size_t errlen);
/* Set and clear CRP_FAULT_GONE and CRP_FAULT_NOT_READY, and clear
 * CRP_FAULT_SENSE (clear first, then set). */
int crp_file_fault_set(const char *path, unsigned set, unsigned clear, char *err, size_t errlen);
/* Answer every command but INQUIRY with this sense (CRP_FAULT_SENSE). */
int crp_file_fault_sense(const char *path, uint8_t key, uint8_t asc, uint8_t ascq, char *err,
			 size_t errlen);
/* No faults at all: the unit back, ready, every block good. */
int crp_file_fault_clear(const char *path, char *err, size_t errlen);
/* The faults now, bad ranges in blocks of @block_size (0: 512). */
int crp_file_fault_list(const char *path, uint32_t block_size, struct crp_faults *out,
			char *err, size_t errlen);

#endif
