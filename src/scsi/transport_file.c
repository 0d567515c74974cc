/*
 * file:PATH -- an image file with SCSI semantics emulated in-process.
 *
 * The model.  The image is a logical unit of floor(size / block size)
 * blocks (opts->file_block_size, 512 by default).  Each crp_member_open() of
 * it is one I_T nexus, and each member has one I/O thread that executes the
 * member's commands one at a time, in submission order: READ(16) and
 * WRITE(16) are pread/pwrite on the image, SYNCHRONIZE CACHE and the FUA
 * bit are fdatasync.  The commands emulated are TEST UNIT READY, INQUIRY,
 * READ CAPACITY(16), READ(16), WRITE(16), SYNCHRONIZE CACHE(10/16),
 * RESERVE(6), RELEASE(6), PERSISTENT RESERVE IN (READ KEYS, READ
 * RESERVATION) and PERSISTENT RESERVE OUT (REGISTER, REGISTER AND IGNORE
 * EXISTING KEY, RESERVE, RELEASE, CLEAR, PREEMPT); anything else is CHECK
 * CONDITION, ILLEGAL REQUEST, INVALID COMMAND OPERATION CODE (20h/00h).
 *
 * Shared state.  Reservations are shared by every process on the machine
 * through a sidecar file, PATH.crpfs-scsi, mapped by every nexus (struct
 * sidecar in file_i.h): the SCSI-2 reservation holder, the PR registrations
 * (one key per nexus slot), the PR holder and type, PRgeneration, the UNIT
 * ATTENTIONs pending for each nexus slot, and the injected faults.
 *
 * Sidecar layout, all in host byte order (the file never leaves the
 * machine):
 *     0  header: magic "CRPSCSI1", version, nslots (128), PRgeneration,
 *        RESERVE(6) holder, PR holder and type, 32 reserved bytes (64 bytes)
 *    64  128 nexus slots of 64 bytes: PR key, pending UAs, last pid and host
 *  8256  faults (version 2; version 1 files end before them): flags
 *        (CRP_FAULT_GONE, CRP_FAULT_NOT_READY, CRP_FAULT_SENSE), the number
 *        of bad ranges, the count of forgotten bad sectors, the sense key,
 *        ASC and ASCQ of CRP_FAULT_SENSE, 45 reserved bytes, then 64
 *        bad ranges of (first sector, count) in 512-byte sectors, sorted,
 *        disjoint (9344 bytes in all)
 * A version 1 file is brought to version 2 in place by the first open (or
 * crp_file_fault_*) under the exclusive state lock: it grows by the
 * faults area, which reads as zero, that is no faults.  The byte-range
 * locks below use offsets 0 to 191 of the same file.
 *
 * Faults (crp_file_fault_*, member.h; the test tool crp_inject).  They are
 * changed under the exclusive state lock and read by every command under
 * its own lock, so the next command of every nexus sees a change:
 *  - gone: every command but INQUIRY completes ILLEGAL REQUEST, LOGICAL
 *    UNIT NOT SUPPORTED (25h/00h), ahead of any UNIT ATTENTION; INQUIRY
 *    answers peripheral qualifier 011b, type 1Fh, as tgt does for a
 *    deleted LUN; open fails; an LU reset does nothing.  Setting it drops
 *    every reservation and registration; clearing it leaves a power-on
 *    UNIT ATTENTION for every nexus.
 *  - not ready: every command but INQUIRY completes NOT READY, BECOMING
 *    READY (04h/01h), after any pending UNIT ATTENTION.
 *  - sense: every command but INQUIRY completes CHECK CONDITION with the
 *    sense key, ASC and ASCQ given, after those above.
 *  - bad blocks: after the reservation and range checks, a READ over a bad
 *    sector completes MEDIUM ERROR, UNRECOVERED READ ERROR (11h/00h), no
 *    data moved, INFORMATION (VALID) the first bad LBA of the range read;
 *    a WRITE over bad sectors takes the state lock exclusively, writes,
 *    and clears them from the list.
 *
 * Nexus slots and liveness.  A nexus claims a free slot of the sidecar by
 * taking an exclusive open-file-description lock (F_OFD_SETLK) on the
 * slot's byte, SC_LOCK_SLOT(slot), and keeps it until it closes.  The lock
 * belongs to the open file description, so it goes away when the member is
 * closed or its process dies for any reason; any other nexus sees that with
 * F_OFD_GETLK.  As on tgt, where a closed session releases its RESERVE(6):
 *  - a SCSI-2 reservation whose holder's slot is not locked is treated as
 *    released, and is cleared when the slot is claimed again;
 *  - PR registrations and a PR reservation survive the nexus (PR state
 *    does not depend on the session on tgt): a slot that holds a
 *    registration is never handed to a new nexus, which is a new
 *    registrant, until PREEMPT or CLEAR removes it.
 * A child created by fork() shares its parent's open file descriptions,
 * and so its parent's nexus, until it exits (the descriptors are
 * O_CLOEXEC).
 *
 * Serialization.  Byte SC_LOCK_STATE of the sidecar is the state lock.
 * Commands that change reservation state (RESERVE(6), RELEASE(6), PR OUT)
 * and LU reset hold it exclusively; every other command holds it shared
 * from its reservation check to the end of its pread/pwrite, so a data
 * command's check is atomic with its I/O: no RESERVE can be granted between
 * a WRITE's check and the write itself.  fdatasync (SYNCHRONIZE CACHE, FUA)
 * runs after the lock is dropped.  The OFD locks of one member are owned by
 * its sidecar descriptor, shared by the I/O thread and a caller of
 * lun_reset, so the two take t->lkmu around every use of the state lock.
 * Pending UNIT ATTENTION bits are set under the exclusive lock and taken by
 * their own nexus with an atomic and, so taking one needs no upgrade.
 *
 * Semantics, matching tgt where the two are compared by the tests in
 * tests/fixture/semantics.c:
 *  - RESERVE(6) by another live nexus makes TEST UNIT READY, READ CAPACITY,
 *    READ, WRITE, SYNCHRONIZE CACHE and RESERVE(6) return RESERVATION
 *    CONFLICT; INQUIRY, RELEASE(6) and PR IN/OUT are not affected.
 *    RESERVE(6) by the holder again is GOOD; RELEASE(6) by a non-holder is
 *    GOOD and does nothing.  RESERVE(6) is granted while a PR is held, as
 *    tgt does: never mix the modes.
 *  - PR: Write Exclusive lets everyone read and only the holder write (and
 *    SYNCHRONIZE CACHE); Exclusive Access also fences reads; the
 *    registrants-only and all-registrants types let every registrant in.
 *    PR OUT from an unregistered nexus other than REGISTER is RESERVATION
 *    CONFLICT.  PREEMPT removes the registrations with the given key and,
 *    if the victim held the reservation, gives it to the preempter with the
 *    given type; each victim gets UNIT ATTENTION 2Ah/03h once.  CLEAR gives
 *    every other registrant 2Ah/03h.  PREEMPT AND ABORT is refused with
 *    INVALID FIELD IN CDB, as tgt does not implement it either.
 *  - LU reset clears the SCSI-2 reservation (not PR state) and leaves UNIT
 *    ATTENTION 29h/00h pending for every other live nexus.
 *  Known differences from tgt: PR RELEASE leaves no spurious UNIT ATTENTION
 *  for the releaser, and registering follows SPC-3 where tgt's bookkeeping
 *  differs (unregistering the holder releases its reservation).
 *
 * Timeouts.  A command on a local file cannot be interrupted: pread,
 * pwrite and fdatasync run to completion once started, however long the
 * kernel takes.  A command's deadline is honoured wherever the I/O thread
 * can act on it: a command taken for execution after its deadline (stuck
 * behind slow commands) completes with -ETIMEDOUT and fails the member,
 * after which every command completes at once with -CRP_EMEMBER; and the
 * wait for the state lock (another process inside a state change) polls
 * until the command's deadline, then does the same.
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <sched.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "crpfs/err.h"
#include "crpfs/util.h"
#include "file_i.h"
#include "member_i.h"

struct file_tp {
	struct crp_member *m;
	int fd;		    /* the image */
	int scfd;	    /* the sidecar; its open file description owns our locks */
	struct sidecar *sc; /* the sidecar, mapped */
	int slot;	    /* our nexus slot */
	bool have_slot;
	uint32_t bs;
	uint64_t nblocks;
	char path[CRP_SPEC_MAX];
	char scpath[CRP_SPEC_MAX + sizeof(SC_SUFFIX)];

	/* Serializes the state lock on scfd between the I/O thread and
	 * lun_reset (OFD locks do not tell threads apart). */
	pthread_mutex_t lkmu;

	pthread_t thread;
	bool started;
	pthread_mutex_t mu; /* protects kicked, stop */
	pthread_cond_t cv;
	bool kicked;
	bool stop;

	/* The executor: the I/O thread, or a submitter running its commands
	 * itself (file_run_now).  Whoever holds xmu executes, and owns: */
	pthread_mutex_t xmu;
	struct crp_cmd *front, *front_tail; /* sent by ops->issue, go first */
	struct crp_cmd *pend, *pend_tail;   /* dequeued, not executed yet */
};

/* Results. */

static void set_good(struct crp_cmd *cmd)
{
	cmd->status = CRP_SAM_GOOD;
	cmd->sense_len = 0;
}

static void set_conflict(struct crp_cmd *cmd)
{
	cmd->status = CRP_SAM_RESERVATION_CONFLICT;
	cmd->sense_len = 0;
	cmd->resid = cmd->len;
}

/* CHECK CONDITION with fixed-format sense. */
static void set_check(struct crp_cmd *cmd, uint8_t key, uint8_t asc, uint8_t ascq)
{
	crp_sense_set_fixed(cmd, key, asc, ascq);
	cmd->status = CRP_SAM_CHECK_CONDITION;
	cmd->resid = cmd->len;
}

static void set_invalid_cdb(struct crp_cmd *cmd)
{
	set_check(cmd, CRP_SK_ILLEGAL_REQUEST, 0x24, 0x00);
}

static void set_invalid_param(struct crp_cmd *cmd)
{
	set_check(cmd, CRP_SK_ILLEGAL_REQUEST, 0x26, 0x00);
}

/* Copy @n bytes of parameter data to the command's buffer, within both the
 * allocation length and the buffer. */
static void put_data(struct crp_cmd *cmd, const void *data, uint32_t n, uint32_t alloc)
{
	uint32_t c = CRP_MIN(n, CRP_MIN(alloc, cmd->len));

	if (c && cmd->buf)
		memcpy(cmd->buf, data, c);
	else
		c = 0;
	cmd->resid = cmd->len - c;
	set_good(cmd);
}

/* Locks on the sidecar. */

static int ofd_setlk(int fd, short type, off_t off)
{
	struct flock fl = { .l_type = type, .l_whence = SEEK_SET, .l_start = off, .l_len = 1 };

	if (fcntl(fd, F_OFD_SETLK, &fl) == 0)
		return 0;
	return -errno;
}

/* Take the state lock (crp_sc_lock) by @deadline_ns.  Caller holds t->lkmu. */
static int state_lock(struct file_tp *t, short type, uint64_t deadline_ns)
{
	return crp_sc_lock(t->scfd, type, deadline_ns);
}

static void state_unlock(struct file_tp *t)
{
	crp_sc_unlock(t->scfd);
}

/* Is the nexus of slot @s alive (its liveness byte locked by someone)? */
static bool slot_live(struct file_tp *t, int s)
{
	struct flock fl = { .l_type = F_WRLCK, .l_whence = SEEK_SET, .l_start = SC_LOCK_SLOT(s),
			    .l_len = 1 };

	if (s == t->slot)
		return true; /* our own lock never conflicts with us */
	if (fcntl(t->scfd, F_OFD_GETLK, &fl) < 0)
		return true; /* cannot tell: keep the reservation */
	return fl.l_type != F_UNLCK;
}

/* Reservation state, under the state lock. */

static bool type_valid(unsigned type)
{
	return type == 1 || type == 3 || type == 5 || type == 6 || type == 7 || type == 8;
}

static bool type_all_reg(unsigned type)
{
	return type == 7 || type == 8;
}

static bool type_reg_only(unsigned type)
{
	return type == 5 || type == 6;
}

static bool is_pr_holder(const struct sidecar *sc, int s)
{
	if (!sc->pr_holder)
		return false;
	if (type_all_reg(sc->pr_type))
		return sc->slot[s].key != 0;
	return sc->pr_holder == (uint32_t)s + 1;
}

static void add_ua(struct sidecar *sc, int s, uint32_t ua)
{
	__atomic_fetch_or(&sc->slot[s].ua, ua, __ATOMIC_SEQ_CST);
}

/* RESERVE(6) held by another live nexus? */
static bool r6_conflict(struct file_tp *t)
{
	uint32_t h = t->sc->r6_holder;

	return h && h <= SC_SLOTS && (int)h - 1 != t->slot && slot_live(t, (int)h - 1);
}

/* Does the PR forbid this nexus to read (@rd) or write (@wr)? */
static bool pr_conflict(struct file_tp *t, bool rd, bool wr)
{
	const struct sidecar *sc = t->sc;
	bool registered = sc->slot[t->slot].key != 0;

	if (!sc->pr_holder || is_pr_holder(sc, t->slot))
		return false;
	switch (sc->pr_type) {
	case CRP_PR_TYPE_WRITE_EXCLUSIVE:
		return wr;
	case CRP_PR_TYPE_EXCLUSIVE_ACCESS:
		return rd || wr;
	case CRP_PR_TYPE_WE_REGISTRANTS_ONLY:
	case 7: /* write exclusive, all registrants */
		return !registered && wr;
	default: /* exclusive access, registrants only / all registrants */
		return !registered && (rd || wr);
	}
}

/*
 * Remove slot @s's registration.  If it held the reservation, an
 * all-registrants reservation passes to another registrant and any other
 * is released (SPC-3 5.6.10.4); @ua_released gives the remaining
 * registrants RESERVATIONS RELEASED for the registrants-only types.
 */
static void unregister_slot(struct sidecar *sc, int s, bool ua_released)
{
	sc->slot[s].key = 0;
	if (sc->pr_holder != (uint32_t)s + 1)
		return;
	if (type_all_reg(sc->pr_type)) {
		for (int i = 0; i < SC_SLOTS; i++) {
			if (sc->slot[i].key) {
				sc->pr_holder = (uint32_t)i + 1;
				return;
			}
		}
	} else if (ua_released && type_reg_only(sc->pr_type)) {
		for (int i = 0; i < SC_SLOTS; i++)
			if (i != s && sc->slot[i].key)
				add_ua(sc, i, UA_RES_RELEASED);
	}
	sc->pr_holder = 0;
	sc->pr_type = 0;
}

/* Report one pending UNIT ATTENTION of our nexus, if any. */
static bool take_ua(struct file_tp *t, struct crp_cmd *cmd)
{
	static const struct {
		uint32_t bit;
		uint8_t asc, ascq;
	} order[] = {
		{ UA_RESET, 0x29, 0x00 },
		{ UA_RES_PREEMPTED, 0x2a, 0x03 },
		{ UA_REG_PREEMPTED, 0x2a, 0x05 },
		{ UA_RES_RELEASED, 0x2a, 0x04 },
	};
	uint32_t *ua = &t->sc->slot[t->slot].ua;
	uint32_t v = __atomic_load_n(ua, __ATOMIC_SEQ_CST);

	if (!v)
		return false;
	for (size_t i = 0; i < CRP_ARRAY_SIZE(order); i++) {
		if (v & order[i].bit) {
			__atomic_fetch_and(ua, ~order[i].bit, __ATOMIC_SEQ_CST);
			set_check(cmd, CRP_SK_UNIT_ATTENTION, order[i].asc, order[i].ascq);
			return true;
		}
	}
	__atomic_store_n(ua, 0, __ATOMIC_SEQ_CST); /* unknown bits: drop them */
	return false;
}

/* Commands. */

static void do_inquiry(struct file_tp *t, struct crp_cmd *cmd)
{
	uint8_t d[36];

	if (cmd->cdb[1] & 0x01) { /* EVPD: no vital product data pages */
		set_invalid_cdb(cmd);
		return;
	}
	memset(d, 0, sizeof(d));
	/* direct-access block device; with the unit gone, tgt's answer for a
	 * LUN it does not have: qualifier 011b, type 1Fh */
	d[0] = (t->sc->faults.flags & CRP_FAULT_GONE) ? 0x7f : 0x00;
	d[2] = 0x05;	       /* SPC-3 */
	d[3] = 0x02;	       /* response data format 2 */
	d[4] = sizeof(d) - 5; /* additional length */
	d[7] = 0x02;	       /* CMDQUE */
	memcpy(&d[8], "CRPFS   ", 8);
	memcpy(&d[16], "FILE            ", 16);
	memcpy(&d[32], "0001", 4);
	put_data(cmd, d, sizeof(d), crp_get_be16(&cmd->cdb[3]));
}

static void do_read_capacity(struct file_tp *t, struct crp_cmd *cmd)
{
	uint8_t d[32];

	if ((cmd->cdb[1] & 0x1f) != 0x10) {
		set_check(cmd, CRP_SK_ILLEGAL_REQUEST, 0x20, 0x00);
		return;
	}
	memset(d, 0, sizeof(d));
	crp_put_be64(&d[0], t->nblocks - 1);
	crp_put_be32(&d[8], t->bs);
	put_data(cmd, d, sizeof(d), crp_get_be32(&cmd->cdb[10]));
}

/*
 * READ(16) / WRITE(16), under the state lock, shared unless @excl.  A WRITE
 * over bad blocks clears them from the list, which needs the exclusive
 * lock: without it, returns -EAGAIN having done nothing (emulate() comes
 * back with it).
 */
static int do_rw(struct file_tp *t, struct crp_cmd *cmd, bool wr, bool excl)
{
	uint64_t lba = crp_get_be64(&cmd->cdb[2]);
	uint32_t n = crp_get_be32(&cmd->cdb[10]);
	uint64_t bytes, done = 0, spb = t->bs / SC_SECTOR, bad;
	struct sc_faults *f = &t->sc->faults;
	bool remap = false;
	uint8_t *p = cmd->buf;

	if (lba > t->nblocks || n > t->nblocks - lba) {
		set_check(cmd, CRP_SK_ILLEGAL_REQUEST, 0x21, 0x00); /* LBA OUT OF RANGE */
		return 0;
	}
	bytes = (uint64_t)n * t->bs;
	if (bytes > cmd->len || (bytes && !p)) {
		set_invalid_cdb(cmd); /* the data buffer cannot hold the transfer */
		return 0;
	}
	if (f->nbad && n) {
		uint64_t lo = lba * spb, hi = (lba + n) * spb;

		if (!wr && crp_sc_bad_first(f, lo, hi, &bad)) {
			/* UNRECOVERED READ ERROR at the first bad block */
			crp_sense_set_info(cmd, CRP_SK_MEDIUM_ERROR, 0x11, 0x00, bad / spb);
			cmd->status = CRP_SAM_CHECK_CONDITION;
			cmd->resid = cmd->len;
			return 0;
		}
		if (wr && crp_sc_bad_any(f, lo, hi)) {
			if (!excl)
				return -EAGAIN;
			remap = true;
		}
	}
	while (done < bytes) {
		off_t off = (off_t)(lba * t->bs + done);
		ssize_t r = wr ? pwrite(t->fd, p + done, bytes - done, off)
			       : pread(t->fd, p + done, bytes - done, off);

		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0) {
			if (wr)
				set_check(cmd, CRP_SK_MEDIUM_ERROR, 0x0c, 0x00);
			else
				set_check(cmd, CRP_SK_MEDIUM_ERROR, 0x11, 0x00);
			return 0;
		}
		if (r == 0) {
			if (wr) {
				set_check(cmd, CRP_SK_MEDIUM_ERROR, 0x0c, 0x00);
				return 0;
			}
			/* the image shrank under us: what is gone reads as zeros */
			memset(p + done, 0, bytes - done);
			break;
		}
		done += (uint64_t)r;
	}
	if (remap) /* the blocks were written: they are good again */
		crp_sc_bad_clear(f, lba * spb, (lba + n) * spb);
	cmd->resid = cmd->len - (uint32_t)bytes;
	set_good(cmd);
	return 0;
}

static void do_sync(struct file_tp *t, struct crp_cmd *cmd)
{
	if (fdatasync(t->fd) < 0)
		set_check(cmd, CRP_SK_MEDIUM_ERROR, 0x0c, 0x00);
	else
		set_good(cmd);
}

static void do_pr_in(struct file_tp *t, struct crp_cmd *cmd)
{
	const struct sidecar *sc = t->sc;
	uint8_t d[8 + 8 * SC_SLOTS];
	uint32_t alloc = crp_get_be16(&cmd->cdb[7]);
	uint32_t n = 8;

	memset(d, 0, sizeof(d));
	crp_put_be32(&d[0], sc->prgen);
	switch (cmd->cdb[1] & 0x1f) {
	case CRP_PRIN_READ_KEYS:
		for (int i = 0; i < SC_SLOTS; i++) {
			if (sc->slot[i].key) {
				crp_put_be64(&d[n], sc->slot[i].key);
				n += 8;
			}
		}
		crp_put_be32(&d[4], n - 8);
		break;
	case CRP_PRIN_READ_RESERVATION:
		if (sc->pr_holder) {
			uint64_t key = sc->slot[sc->pr_holder - 1].key;

			crp_put_be32(&d[4], 16);
			crp_put_be64(&d[8], type_all_reg(sc->pr_type) ? 0 : key);
			d[21] = (uint8_t)(sc->pr_type & 0x0f); /* scope 0: LU */
			n = 24;
		}
		break;
	default:
		set_invalid_cdb(cmd);
		return;
	}
	put_data(cmd, d, n, alloc);
}

static void pr_register(struct sidecar *sc, int me, struct crp_cmd *cmd, bool ignore,
			uint64_t key, uint64_t sa_key)
{
	uint64_t mine = sc->slot[me].key;

	if (mine) {
		if (!ignore && key != mine) {
			set_conflict(cmd);
			return;
		}
		if (sa_key)
			sc->slot[me].key = sa_key;
		else
			unregister_slot(sc, me, true);
	} else {
		if (!ignore && key) {
			set_conflict(cmd);
			return;
		}
		if (!sa_key) { /* unregistering while not registered: nothing */
			set_good(cmd);
			return;
		}
		sc->slot[me].key = sa_key;
	}
	sc->prgen++;
	set_good(cmd);
}

static void pr_reserve(struct sidecar *sc, int me, struct crp_cmd *cmd, unsigned type,
		       uint64_t key)
{
	if (!sc->slot[me].key || key != sc->slot[me].key) {
		set_conflict(cmd);
		return;
	}
	if (sc->pr_holder) {
		if (is_pr_holder(sc, me) && sc->pr_type == type)
			set_good(cmd);
		else
			set_conflict(cmd);
		return;
	}
	sc->pr_holder = (uint32_t)me + 1;
	sc->pr_type = type;
	set_good(cmd);
}

static void pr_release(struct sidecar *sc, int me, struct crp_cmd *cmd, unsigned type,
		       uint64_t key)
{
	unsigned held = sc->pr_type;

	if (!sc->slot[me].key) {
		set_conflict(cmd);
		return;
	}
	if (!sc->pr_holder || !is_pr_holder(sc, me)) {
		set_good(cmd); /* nothing of ours to release */
		return;
	}
	if (key != sc->slot[me].key) {
		set_conflict(cmd);
		return;
	}
	if (type != held) {
		/* INVALID RELEASE OF PERSISTENT RESERVATION */
		set_check(cmd, CRP_SK_ILLEGAL_REQUEST, 0x26, 0x04);
		return;
	}
	sc->pr_holder = 0;
	sc->pr_type = 0;
	if (type_reg_only(held) || type_all_reg(held))
		for (int i = 0; i < SC_SLOTS; i++)
			if (i != me && sc->slot[i].key)
				add_ua(sc, i, UA_RES_RELEASED);
	set_good(cmd);
}

static void pr_clear(struct sidecar *sc, int me, struct crp_cmd *cmd, uint64_t key)
{
	if (!sc->slot[me].key || key != sc->slot[me].key) {
		set_conflict(cmd);
		return;
	}
	sc->pr_holder = 0;
	sc->pr_type = 0;
	for (int i = 0; i < SC_SLOTS; i++) {
		if (!sc->slot[i].key)
			continue;
		if (i != me)
			add_ua(sc, i, UA_RES_PREEMPTED);
		sc->slot[i].key = 0;
	}
	sc->prgen++;
	set_good(cmd);
}

static void pr_preempt(struct sidecar *sc, int me, struct crp_cmd *cmd, unsigned type,
		       uint64_t key, uint64_t sa_key)
{
	bool remove_all = false, released = false, found = false;

	if (!sc->slot[me].key || key != sc->slot[me].key) {
		set_conflict(cmd);
		return;
	}
	for (int i = 0; i < SC_SLOTS && sa_key; i++)
		found |= sc->slot[i].key == sa_key;
	if (sa_key && !found) {
		set_conflict(cmd);
		return;
	}
	if (sc->pr_holder) {
		if (!type_valid(type)) {
			set_invalid_cdb(cmd);
			return;
		}
		if (type_all_reg(sc->pr_type)) {
			if (!sa_key) {
				released = type != sc->pr_type;
				sc->pr_holder = (uint32_t)me + 1;
				sc->pr_type = type;
				remove_all = true;
			}
		} else if (sc->slot[sc->pr_holder - 1].key == sa_key) {
			released = type != sc->pr_type;
			sc->pr_holder = (uint32_t)me + 1;
			sc->pr_type = type;
		} else if (!sa_key) {
			set_invalid_param(cmd);
			return;
		}
	} else if (!sa_key) {
		set_invalid_param(cmd);
		return;
	}
	for (int i = 0; i < SC_SLOTS; i++) {
		if (i == me || !sc->slot[i].key)
			continue;
		if (remove_all || sc->slot[i].key == sa_key) {
			add_ua(sc, i, UA_RES_PREEMPTED);
			unregister_slot(sc, i, false);
		} else if (released) {
			add_ua(sc, i, UA_RES_RELEASED);
		}
	}
	sc->prgen++;
	set_good(cmd);
}

/* PERSISTENT RESERVE OUT, under the exclusive state lock. */
static void do_pr_out(struct file_tp *t, struct crp_cmd *cmd)
{
	const uint8_t *p = cmd->buf;
	unsigned scope = cmd->cdb[2] >> 4, type = cmd->cdb[2] & 0x0f;
	uint8_t sa = cmd->cdb[1] & 0x1f;
	uint64_t key, sa_key;

	if (crp_get_be32(&cmd->cdb[5]) < 24 || cmd->len < 24 || !p || cmd->dir != CRP_DIR_WRITE) {
		set_invalid_cdb(cmd);
		return;
	}
	if (p[20] & 0x0d) { /* SPEC_I_PT, ALL_TG_PT, APTPL: not supported */
		set_invalid_param(cmd);
		return;
	}
	key = crp_get_be64(&p[0]);
	sa_key = crp_get_be64(&p[8]);
	cmd->resid = 0;
	switch (sa) {
	case CRP_PROUT_REGISTER:
	case CRP_PROUT_REGISTER_IGNORE:
		pr_register(t->sc, t->slot, cmd, sa == CRP_PROUT_REGISTER_IGNORE, key, sa_key);
		return;
	case CRP_PROUT_RESERVE:
		if (scope || !type_valid(type))
			set_invalid_cdb(cmd);
		else
			pr_reserve(t->sc, t->slot, cmd, type, key);
		return;
	case CRP_PROUT_RELEASE:
		if (scope)
			set_invalid_cdb(cmd);
		else
			pr_release(t->sc, t->slot, cmd, type, key);
		return;
	case CRP_PROUT_CLEAR:
		pr_clear(t->sc, t->slot, cmd, key);
		return;
	case CRP_PROUT_PREEMPT:
		if (scope)
			set_invalid_cdb(cmd);
		else
			pr_preempt(t->sc, t->slot, cmd, type, key, sa_key);
		return;
	}
	set_invalid_cdb(cmd); /* PREEMPT AND ABORT, REGISTER AND MOVE, ... */
}

static void do_reserve6(struct file_tp *t, struct crp_cmd *cmd)
{
	if (r6_conflict(t)) {
		set_conflict(cmd);
		return;
	}
	t->sc->r6_holder = (uint32_t)t->slot + 1;
	set_good(cmd);
}

static void do_release6(struct file_tp *t, struct crp_cmd *cmd)
{
	if (t->sc->r6_holder == (uint32_t)t->slot + 1)
		t->sc->r6_holder = 0;
	set_good(cmd); /* a non-holder's RELEASE is GOOD and does nothing */
}

enum cmd_kind {
	K_UNSUPPORTED,
	K_INQUIRY,
	K_TUR,
	K_READCAP,
	K_READ,
	K_WRITE,
	K_SYNC,
	K_PR_IN,
	K_RESERVE6,
	K_RELEASE6,
	K_PR_OUT,
};

static enum cmd_kind kind_of(const struct crp_cmd *cmd)
{
	if (!cmd->cdb_len)
		return K_UNSUPPORTED;
	switch (cmd->cdb[0]) {
	case CRP_OP_INQUIRY:
		return K_INQUIRY;
	case CRP_OP_TEST_UNIT_READY:
		return K_TUR;
	case CRP_OP_SERVICE_IN16:
		return K_READCAP;
	case CRP_OP_READ16:
		return K_READ;
	case CRP_OP_WRITE16:
		return K_WRITE;
	case CRP_OP_SYNC_CACHE10:
	case CRP_OP_SYNC_CACHE16:
		return K_SYNC;
	case CRP_OP_PR_IN:
		return K_PR_IN;
	case CRP_OP_RESERVE6:
		return K_RESERVE6;
	case CRP_OP_RELEASE6:
		return K_RELEASE6;
	case CRP_OP_PR_OUT:
		return K_PR_OUT;
	}
	return K_UNSUPPORTED;
}

/*
 * Execute @cmd against the image and the shared state, filling status,
 * sense and resid.  Returns 0, or a negative error when the command could
 * not be executed at all (-ETIMEDOUT waiting for the state lock).
 */
static int emulate(struct file_tp *t, struct crp_cmd *cmd)
{
	enum cmd_kind k = kind_of(cmd);
	bool excl = k == K_RESERVE6 || k == K_RELEASE6 || k == K_PR_OUT;
	bool sync_after = false;
	uint32_t faults;
	int r;

	/* A WRITE over bad blocks changes the list: exclusive from the start
	 * when there are any (do_rw asks for it if some came meanwhile). */
	if (k == K_WRITE && __atomic_load_n(&t->sc->faults.nbad, __ATOMIC_RELAXED))
		excl = true;
	cmd->resid = 0;
	pthread_mutex_lock(&t->lkmu);
again:
	r = state_lock(t, excl ? F_WRLCK : F_RDLCK, crp_cmd_deadline(cmd));
	if (r < 0)
		goto out;
	faults = t->sc->faults.flags;
	/* A deleted unit answers nothing but INQUIRY, before any UNIT
	 * ATTENTION (its nexus has nothing left to be told). */
	if ((faults & CRP_FAULT_GONE) && k != K_INQUIRY) {
		set_check(cmd, CRP_SK_ILLEGAL_REQUEST, 0x25, 0x00);
		goto unlock;
	}
	/* INQUIRY never reports a UNIT ATTENTION (SPC-3 5.9.7). */
	if (k != K_INQUIRY && take_ua(t, cmd))
		goto unlock;
	if ((faults & CRP_FAULT_NOT_READY) && k != K_INQUIRY) {
		set_check(cmd, CRP_SK_NOT_READY, 0x04, 0x01); /* becoming ready */
		goto unlock;
	}
	if ((faults & CRP_FAULT_SENSE) && k != K_INQUIRY) {
		set_check(cmd, t->sc->faults.sense_key, t->sc->faults.asc, t->sc->faults.ascq);
		goto unlock;
	}
	switch (k) {
	case K_INQUIRY:
		do_inquiry(t, cmd);
		break;
	case K_TUR:
		if (r6_conflict(t))
			set_conflict(cmd);
		else
			set_good(cmd);
		break;
	case K_READCAP:
		if (r6_conflict(t))
			set_conflict(cmd);
		else
			do_read_capacity(t, cmd);
		break;
	case K_READ:
	case K_WRITE:
		if (r6_conflict(t) || pr_conflict(t, k == K_READ, k == K_WRITE)) {
			set_conflict(cmd);
			break;
		}
		if (do_rw(t, cmd, k == K_WRITE, excl) == -EAGAIN) {
			state_unlock(t);
			excl = true;
			goto again;
		}
		sync_after = k == K_WRITE && (cmd->cdb[1] & 0x08) && cmd->status == CRP_SAM_GOOD;
		break;
	case K_SYNC:
		if (r6_conflict(t) || pr_conflict(t, false, true))
			set_conflict(cmd);
		else
			sync_after = true;
		break;
	case K_PR_IN:
		do_pr_in(t, cmd);
		break;
	case K_RESERVE6:
		do_reserve6(t, cmd);
		break;
	case K_RELEASE6:
		do_release6(t, cmd);
		break;
	case K_PR_OUT:
		do_pr_out(t, cmd);
		break;
	case K_UNSUPPORTED:
		set_check(cmd, CRP_SK_ILLEGAL_REQUEST, 0x20, 0x00);
		break;
	}
unlock:
	state_unlock(t);
out:
	pthread_mutex_unlock(&t->lkmu);
	/* Durability needs no lock: the data is in the image already. */
	if (r == 0 && sync_after)
		do_sync(t, cmd);
	return r;
}

/* The I/O thread. */

static void list_push(struct crp_cmd **head, struct crp_cmd **tail, struct crp_cmd *cmd)
{
	cmd->q_next = NULL;
	if (*tail)
		(*tail)->q_next = cmd;
	else
		*head = cmd;
	*tail = cmd;
}

static struct crp_cmd *list_pop(struct crp_cmd **head, struct crp_cmd **tail)
{
	struct crp_cmd *cmd = *head;

	if (cmd) {
		*head = cmd->q_next;
		if (!*head)
			*tail = NULL;
		cmd->q_next = NULL;
	}
	return cmd;
}

static void execute(struct file_tp *t, struct crp_cmd *cmd)
{
	struct crp_member *m = t->m;
	int r;

	if (atomic_load(&m->failed)) {
		crp_member_abort(m, cmd, -CRP_EMEMBER);
		return;
	}
	cmd->status = CRP_SAM_NONE;
	cmd->sense_len = 0;
	if (cmd->not_before_ns > crp_now_ns()) /* a NOT READY retry: a short pause */
		crp_sleep_ns(cmd->not_before_ns - crp_now_ns());
	if (crp_now_ns() > crp_cmd_deadline(cmd)) {
		r = -ETIMEDOUT;
	} else if ((r = crp_member_may_send(m, cmd)) < 0) {
		/* refused unsent */
	} else {
		r = emulate(t, cmd);
	}
	if (r < 0) {
		if (r == -ETIMEDOUT)
			crp_member_fail(m, -ETIMEDOUT);
		cmd->status = CRP_SAM_NONE;
		cmd->sense_len = 0;
		cmd->result = r;
	}
	crp_member_complete(m, cmd);
}

static bool should_stop(struct file_tp *t)
{
	bool stop;

	pthread_mutex_lock(&t->mu);
	stop = t->stop;
	pthread_mutex_unlock(&t->mu);
	return stop;
}

static void *io_thread(void *arg)
{
	struct file_tp *t = arg;
	struct crp_member *m = t->m;
	struct crp_cmd *cmd;

	while (!should_stop(t)) {
		pthread_mutex_lock(&t->xmu);
		cmd = list_pop(&t->front, &t->front_tail);
		if (!cmd)
			cmd = list_pop(&t->pend, &t->pend_tail);
		if (cmd) {
			execute(t, cmd);
			pthread_mutex_unlock(&t->xmu);
			continue;
		}
		cmd = crp_member_dequeue(m);
		if (cmd) {
			while (cmd) {
				struct crp_cmd *next = cmd->q_next;

				crp_member_prepare(m, cmd);
				list_push(&t->pend, &t->pend_tail, cmd);
				cmd = next;
			}
			pthread_mutex_unlock(&t->xmu);
			continue;
		}
		pthread_mutex_unlock(&t->xmu);
		pthread_mutex_lock(&t->mu);
		while (!t->kicked && !t->stop)
			pthread_cond_wait(&t->cv, &t->mu);
		t->kicked = false;
		pthread_mutex_unlock(&t->mu);
	}

	/* Closing: whatever was not executed completes with -CRP_EMEMBER. */
	pthread_mutex_lock(&t->xmu);
	for (;;) {
		cmd = list_pop(&t->front, &t->front_tail);
		if (!cmd)
			cmd = list_pop(&t->pend, &t->pend_tail);
		if (!cmd) {
			cmd = crp_member_dequeue(m);
			while (cmd) {
				struct crp_cmd *next = cmd->q_next;

				list_push(&t->pend, &t->pend_tail, cmd);
				cmd = next;
			}
			cmd = list_pop(&t->pend, &t->pend_tail);
		}
		if (!cmd)
			break;
		crp_member_abort(m, cmd, -CRP_EMEMBER);
	}
	pthread_mutex_unlock(&t->xmu);
	return NULL;
}

/* Transport operations. */

static int open_error(struct crp_member *m, char *err, size_t errlen, int r, const char *fmt,
		      ...) __attribute__((format(printf, 5, 6)));

/* Write "member 'SPEC': <why>" into @err; returns @r. */
static int open_error(struct crp_member *m, char *err, size_t errlen, int r, const char *fmt,
		      ...)
{
	char why[CRP_SPEC_MAX * 2 + 256];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(why, sizeof(why), fmt, ap);
	va_end(ap);
	if (err && errlen)
		snprintf(err, errlen, "member '%s': %s", m->spec.text, why);
	return r;
}

static int open_image(struct file_tp *t, char *err, size_t errlen, mode_t *mode)
{
	struct crp_member *m = t->m;
	struct stat st;
	int r;

	t->fd = open(t->path, O_RDWR | O_CLOEXEC);
	if (t->fd < 0 && errno == ENOENT && m->opts.create) {
		if (m->opts.create_size < t->bs) {
			return open_error(m, err, errlen, -EINVAL,
					  "cannot create image %s: size %llu bytes is smaller "
					  "than one block of %u bytes",
					  t->path, (unsigned long long)m->opts.create_size, t->bs);
		}
		t->fd = open(t->path, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
		if (t->fd >= 0 && ftruncate(t->fd, (off_t)m->opts.create_size) < 0) {
			r = -errno;
			close(t->fd);
			t->fd = -1;
			unlink(t->path);
			return open_error(m, err, errlen, r, "cannot size new image %s: %s",
					  t->path, strerror(-r));
		}
		if (t->fd < 0 && errno == EEXIST) /* created by someone else meanwhile */
			t->fd = open(t->path, O_RDWR | O_CLOEXEC);
	}
	if (t->fd < 0) {
		r = -errno;
		return open_error(m, err, errlen, r, "cannot open image %s: %s", t->path,
				  strerror(-r));
	}
	if (fstat(t->fd, &st) < 0) {
		r = -errno;
		return open_error(m, err, errlen, r, "cannot stat image %s: %s", t->path,
				  strerror(-r));
	}
	if (!S_ISREG(st.st_mode))
		return open_error(m, err, errlen, -EINVAL,
				  "image %s is not a regular file (use /dev/sgN for devices)",
				  t->path);
	/* The array reads what it needs, whole chunks at most: the page
	 * cache's readahead only read (or cleared, in a sparse image) pages
	 * nobody asked for around every metadata block. */
	(void)posix_fadvise(t->fd, 0, 0, POSIX_FADV_RANDOM);
	t->nblocks = (uint64_t)st.st_size / t->bs;
	if (!t->nblocks)
		return open_error(m, err, errlen, -EINVAL,
				  "image %s is smaller than one block (%u bytes)",
				  t->path, t->bs);
	*mode = st.st_mode & 0666;
	return 0;
}

/* Claim a free nexus slot, under the exclusive state lock. */
static int claim_slot(struct file_tp *t)
{
	struct sidecar *sc = t->sc;

	for (int s = 0; s < SC_SLOTS; s++) {
		if (sc->slot[s].key)
			continue; /* a registrant, dead or alive: never reused */
		if (ofd_setlk(t->scfd, F_WRLCK, SC_LOCK_SLOT(s)) < 0)
			continue; /* a live nexus */
		t->slot = s;
		t->have_slot = true;
		/* Whatever the slot's last nexus left belongs to a dead nexus. */
		__atomic_store_n(&sc->slot[s].ua, 0, __ATOMIC_SEQ_CST);
		if (sc->r6_holder == (uint32_t)s + 1)
			sc->r6_holder = 0;
		sc->slot[s].pid = (uint32_t)getpid();
		snprintf(sc->slot[s].host, sizeof(sc->slot[s].host), "%.47s", t->m->host);
		return 0;
	}
	return -EBUSY;
}

static int open_sidecar(struct file_tp *t, mode_t mode, char *err, size_t errlen)
{
	struct crp_member *m = t->m;
	char why[CRP_SPEC_MAX * 2 + 256];
	int r;

	t->scfd = open(t->scpath, O_RDWR | O_CREAT | O_CLOEXEC, mode | 0600);
	if (t->scfd < 0) {
		r = -errno;
		return open_error(m, err, errlen, r, "cannot open reservation state file %s: %s",
				  t->scpath, strerror(-r));
	}
	pthread_mutex_lock(&t->lkmu);
	r = state_lock(t, F_WRLCK, crp_now_ns() + (uint64_t)m->opts.timeout_ms * 1000000ull);
	if (r < 0) {
		pthread_mutex_unlock(&t->lkmu);
		return open_error(m, err, errlen, r,
				  "cannot lock reservation state file %s: %s", t->scpath,
				  strerror(-r));
	}
	r = crp_sc_map(t->scfd, t->scpath, true, &t->sc, why, sizeof(why));
	if (r < 0) {
		open_error(m, err, errlen, r, "%s", why);
		goto out;
	}
	if (t->sc->faults.flags & CRP_FAULT_GONE) {
		/* What TEST UNIT READY would say: the unit is not there. */
		r = open_error(m, err, errlen, -CRP_EMEMBER,
			       "the logical unit is gone (ILLEGAL REQUEST, LOGICAL UNIT NOT "
			       "SUPPORTED: a fault injected in %s; clear it with crp_inject %s "
			       "back)",
			       t->scpath, t->path);
		goto out;
	}
	r = claim_slot(t);
	if (r < 0)
		open_error(m, err, errlen, r,
			   "all %d nexus slots of %s are in use or held by PR registrations; "
			   "close members or PR CLEAR the registrations",
			   SC_SLOTS, t->scpath);
out:
	state_unlock(t);
	pthread_mutex_unlock(&t->lkmu);
	return r;
}

static void file_free(struct file_tp *t)
{
	crp_sc_unmap(t->sc);
	if (t->scfd >= 0)
		close(t->scfd); /* drops our slot lock: the nexus is gone */
	if (t->fd >= 0)
		close(t->fd);
	pthread_mutex_destroy(&t->lkmu);
	pthread_mutex_destroy(&t->xmu);
	pthread_mutex_destroy(&t->mu);
	pthread_cond_destroy(&t->cv);
	free(t);
}

static int file_open(struct crp_member *m, char *err, size_t errlen)
{
	struct file_tp *t;
	mode_t mode = 0644;
	int r;

	t = calloc(1, sizeof(*t));
	if (!t)
		return -ENOMEM;
	t->m = m;
	t->fd = -1;
	t->scfd = -1;
	pthread_mutex_init(&t->lkmu, NULL);
	pthread_mutex_init(&t->xmu, NULL);
	pthread_mutex_init(&t->mu, NULL);
	pthread_cond_init(&t->cv, NULL);
	t->bs = m->opts.file_block_size ? m->opts.file_block_size : 512;
	if (!crp_is_pow2(t->bs) || t->bs < 512 || t->bs > 65536) {
		r = open_error(m, err, errlen, -EINVAL,
			       "block size %u is not a power of two from 512 to 65536", t->bs);
		goto out;
	}
	if (strlen(m->spec.path) >= sizeof(t->path)) {
		r = open_error(m, err, errlen, -ENAMETOOLONG, "path too long");
		goto out;
	}
	snprintf(t->path, sizeof(t->path), "%s", m->spec.path);
	snprintf(t->scpath, sizeof(t->scpath), "%s%s", t->path, SC_SUFFIX);

	r = open_image(t, err, errlen, &mode);
	if (r < 0)
		goto out;
	r = open_sidecar(t, mode, err, errlen);
	if (r < 0)
		goto out;
	m->block_size = t->bs;
	m->size = t->nblocks * t->bs;
	m->tp = t;
	r = crp_member_thread_start(m, &t->thread, io_thread, t, err, errlen);
	if (r < 0) {
		m->tp = NULL;
		goto out;
	}
	t->started = true;
	return 0;
out:
	file_free(t);
	return r;
}

static void file_close(struct crp_member *m)
{
	struct file_tp *t = m->tp;

	if (!t)
		return;
	pthread_mutex_lock(&t->mu);
	t->stop = true;
	pthread_cond_signal(&t->cv);
	pthread_mutex_unlock(&t->mu);
	if (t->started)
		pthread_join(t->thread, NULL);

	/* Release our SCSI-2 reservation and forget our unit attentions.  If
	 * the lock cannot be had, dropping the slot lock below releases the
	 * reservation all the same (a dead holder holds nothing). */
	pthread_mutex_lock(&t->lkmu);
	if (state_lock(t, F_WRLCK, crp_now_ns() + (uint64_t)m->opts.timeout_ms * 1000000ull) ==
	    0) {
		if (t->sc->r6_holder == (uint32_t)t->slot + 1)
			t->sc->r6_holder = 0;
		__atomic_store_n(&t->sc->slot[t->slot].ua, 0, __ATOMIC_SEQ_CST);
		ofd_setlk(t->scfd, F_UNLCK, SC_LOCK_SLOT(t->slot));
		state_unlock(t);
	}
	pthread_mutex_unlock(&t->lkmu);
	m->tp = NULL;
	file_free(t);
}

static void file_kick(struct crp_member *m)
{
	struct file_tp *t = m->tp;

	pthread_mutex_lock(&t->mu);
	t->kicked = true;
	pthread_cond_signal(&t->cv);
	pthread_mutex_unlock(&t->mu);
}

static void file_issue(struct crp_member *m, struct crp_cmd *cmd)
{
	struct file_tp *t = m->tp;

	/* The executor only: goes ahead of everything still pending. */
	list_push(&t->front, &t->front_tail, cmd);
}

/*
 * Run @cmds here, in the submitting thread, when nothing else is queued
 * for the member and no one executes for it: a command on a local file is
 * a few system calls, and handing it to the I/O thread and back costs two
 * thread switches, more than the command itself.  The order of commands
 * on the member is kept (nothing is queued ahead, and whoever executes
 * holds xmu); what their completions send on (a chained RELEASE, a UNIT
 * ATTENTION retry) runs here too.  A SYNCHRONIZE CACHE or a FUA write
 * (fdatasync, long) still goes to the I/O thread, so that the members
 * sync in parallel.  false: queue them as usual.
 */
static bool file_run_now(struct crp_member *m, struct crp_cmd *const *cmds, int n)
{
	struct file_tp *t = m->tp;
	struct crp_cmd *cmd;
	bool idle;

	for (int i = 0; i < n; i++) {
		enum cmd_kind k = kind_of(cmds[i]);

		if (k == K_SYNC || (k == K_WRITE && (cmds[i]->cdb[1] & 0x08)))
			return false;
	}
	if (pthread_mutex_trylock(&t->xmu))
		return false;
	pthread_mutex_lock(&m->qmu);
	idle = !m->qhead;
	pthread_mutex_unlock(&m->qmu);
	if (!idle || t->front || t->pend || should_stop(t)) {
		pthread_mutex_unlock(&t->xmu);
		return false;
	}
	for (int i = 0; i < n; i++) {
		crp_member_cmd_reset(m, cmds[i]);
		crp_member_prepare(m, cmds[i]);
		execute(t, cmds[i]);
		while ((cmd = list_pop(&t->front, &t->front_tail)))
			execute(t, cmd);
	}
	pthread_mutex_unlock(&t->xmu);
	return true;
}

static int file_lun_reset(struct crp_member *m)
{
	struct file_tp *t = m->tp;
	struct sidecar *sc = t->sc;
	int r;

	pthread_mutex_lock(&t->lkmu);
	r = state_lock(t, F_WRLCK, crp_now_ns() + (uint64_t)m->opts.timeout_ms * 1000000ull);
	if (r < 0)
		goto out;
	if (sc->faults.flags & CRP_FAULT_GONE) { /* no unit to reset (tgt: FUNCTION COMPLETE) */
		state_unlock(t);
		goto out;
	}
	sc->r6_holder = 0;
	for (int s = 0; s < SC_SLOTS; s++)
		if (s != t->slot && slot_live(t, s))
			add_ua(sc, s, UA_RESET);
	state_unlock(t);
out:
	pthread_mutex_unlock(&t->lkmu);
	return r;
}

const struct crp_transport_ops crp_transport_file = {
	.name = "file",
	.open = file_open,
	.close = file_close,
	.kick = file_kick,
	.issue = file_issue,
	.run_now = file_run_now,
	.lun_reset = file_lun_reset,
};
