/*
 * The array: members, geometry and the stripe transactions that keep parity
 * right while other hosts write the same members.
 *
 * Every write goes through a stripe transaction (raid/stripe.c opens with
 * the protocol and its state machine).  Reads of data need no lock; in
 * `reserve` mode a read that meets another host's reservation is retried
 * with backoff until the member's timeout.
 */
#ifndef CRPFS_ARRAY_H
#define CRPFS_ARRAY_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "crpfs/geom.h"
#include "crpfs/member.h"

enum crp_lock_mode {
	CRP_LOCK_RESERVE = 0, /* SCSI-2 RESERVE(6)/RELEASE(6) */
	CRP_LOCK_PR = 1,      /* SPC-3 persistent reservations, Write Exclusive */
};

/* Debug switches that break the protocol on purpose, so that tests can show
 * that the checks catch a broken protocol, or widen a window the protocol
 * must close.  Never set in production. */
enum {
	CRP_DEBUG_NO_LOCKS = 1u << 0,	   /* take no reservations at all */
	CRP_DEBUG_EARLY_RELEASE = 1u << 1, /* release before the write */
	CRP_DEBUG_SLOW_DATA = 1u << 2,	   /* data WRITEs go out 300 ms after the
					      parity WRITEs of their stripe */
};

#define CRP_DEFAULT_MAX_HOLD_US 2000

struct crp_array_opts {
	const char *host;	/* this host's name (initiator name, PR key) */
	uint32_t timeout_ms;	/* command timeout, CRP_DEFAULT_TIMEOUT_MS if 0 */
	enum crp_lock_mode lock_mode;
	uint64_t pr_key;	/* 0: derived from the host name */
	uint32_t max_hold_us;	/* longest a cached lock is kept for queued work;
				   0: CRP_DEFAULT_MAX_HOLD_US; UINT32_MAX: never cache */
	unsigned debug;		/* CRP_DEBUG_* */
	bool create;		/* file members: create missing images ... */
	uint64_t create_size;	/* ... of this size */
};

/* Per-host counters of the lock protocol and the transactions. */
struct crp_host_counters {
	atomic_uint_fast64_t txns;	     /* stripe transactions completed */
	atomic_uint_fast64_t txn_round_trips; /* sum of round trips on their critical path */
	atomic_uint_fast64_t last_round_trips; /* of the last transaction */
	atomic_uint_fast64_t max_round_trips;
	atomic_uint_fast64_t rmw;	     /* read-modify-write transactions */
	atomic_uint_fast64_t rcw;	     /* reconstruct-write */
	atomic_uint_fast64_t full_stripe;    /* full-stripe writes (no reads) */
	atomic_uint_fast64_t lock_acquires;  /* RESERVE/PR RESERVE that returned GOOD */
	atomic_uint_fast64_t lock_conflicts; /* transaction attempts that met a conflict */
	atomic_uint_fast64_t lock_backoffs;  /* backoff sleeps */
	atomic_uint_fast64_t lock_cache_hits; /* member locks reused from the cache */
	atomic_uint_fast64_t lock_releases;
	atomic_uint_fast64_t lock_hold_ns;   /* total time reservations were held */
	atomic_uint_fast64_t lock_hold_max_ns;
	atomic_uint_fast64_t read_conflict_retries; /* unlocked reads retried */
	atomic_uint_fast64_t degraded_reads; /* reads served by rebuilding from parity */
	atomic_uint_fast64_t medium_repairs; /* unreadable blocks rebuilt and rewritten */
	atomic_uint_fast64_t degraded_writes; /* stripe transactions without a member */
	atomic_uint_fast64_t lock_lost;      /* transactions that lost their locks */
};

struct crp_array;

/*
 * Open @n members (array order).  The geometry is set afterwards with
 * crp_array_set_geometry (mkfs computes it, mount reads it from the label).
 * In `pr` mode, registers this host's key on every member.
 */
int crp_array_open(const char *const *specs, int n, const struct crp_array_opts *opts,
		   struct crp_array **out, char *err, size_t errlen);
/* The same, with absent members: @specs[i] NULL or "missing" is a member
 * that is not there (FAILED from the start); so is one that cannot be
 * opened when @tolerate says how many may be (its reason in @why[i] if
 * @why is given, CRP_SPEC_MAX bytes each). */
int crp_array_open_degraded(const char *const *specs, int n, const struct crp_array_opts *opts,
			    int tolerate, char (*why)[256], struct crp_array **out, char *err,
			    size_t errlen);
void crp_array_close(struct crp_array *a);

int crp_array_set_geometry(struct crp_array *a, const struct crp_geom *g);
const struct crp_geom *crp_array_geom(const struct crp_array *a);
int crp_array_nmembers(const struct crp_array *a);
struct crp_member *crp_array_member(struct crp_array *a, int i);
/* Size of the smallest member, in bytes. */
uint64_t crp_array_min_member_size(const struct crp_array *a);
/* The largest member block size: array I/O offsets and lengths must be
 * multiples of it. */
uint32_t crp_array_block_size(const struct crp_array *a);
struct crp_host_counters *crp_array_counters(struct crp_array *a);
enum crp_lock_mode crp_array_lock_mode(const struct crp_array *a);
uint64_t crp_array_pr_key(const struct crp_array *a);

/*
 * Member states.  The array reads a member only while it is in sync and
 * writes it while it is in sync or being rebuilt; a failed member is left
 * alone.  The metadata layer sets the states from the member table on the
 * disks; the array itself turns a member that fails in I/O (its commands
 * complete with -CRP_EMEMBER) to FAILED at once and remembers it for
 * crp_array_take_failures, so that the failure is recorded on the disks
 * before a degraded write relies on it (the failure hook, below).
 */
enum crp_array_mstate {
	CRP_AM_IN_SYNC = 1,
	CRP_AM_FAILED = 2,
	CRP_AM_REBUILDING = 3,
};
void crp_array_set_mstate(struct crp_array *a, int i, enum crp_array_mstate st);
enum crp_array_mstate crp_array_mstate(struct crp_array *a, int i);
/* Read (in sync and answering) / written (in sync or rebuilding, answering). */
bool crp_array_readable(struct crp_array *a, int i);
bool crp_array_writable(struct crp_array *a, int i);
/* Members not readable, and how many the level can lose (1, or 2 for RAID-6). */
int crp_array_nlost(struct crp_array *a);
int crp_array_tolerance(const struct crp_array *a);
/* Turn members that failed in I/O to FAILED, remembering them for
 * crp_array_take_failures; true if any did just now. */
bool crp_array_note_failures(struct crp_array *a);
/* Position @i cannot be served by this host (a member it cannot reach):
 * FAILED, and remembered like a failure in I/O, so that no write goes on
 * without it before the failure is recorded. */
void crp_array_mark_failed(struct crp_array *a, int i);
/* Has a failure been noted that crp_array_take_failures has not taken? */
bool crp_array_failures_pending(struct crp_array *a);
/* The members that failed in I/O since the last call (bit i: member i), now
 * FAILED; 0 if none. */
uint64_t crp_array_take_failures(struct crp_array *a);
/*
 * The failure hook: called, with no member lock of the calling thread held,
 * when a write found a member failed that no one has recorded yet (before
 * the write goes on without it).  It records crp_array_take_failures on the
 * disks; a negative return fails the write.  Set before I/O starts.
 */
void crp_array_set_failure_hook(struct crp_array *a, int (*fn)(void *ctx), void *ctx);
/*
 * Put member object @m at position @i (a replacement being rebuilt), in
 * state @st.  The old object is kept open until the array closes (readers
 * may still hold it).  The caller's own: the array takes it over.
 */
int crp_array_swap_member(struct crp_array *a, int i, struct crp_member *m,
			  enum crp_array_mstate st);

/*
 * Read @len bytes at array offset @off.  A chunk on a member that is not
 * readable is rebuilt from the others, under the stripe's parity lock once
 * a gate is set (no writer is half way through the stripe); a block the
 * member cannot read
 * (MEDIUM ERROR) is rebuilt and rewritten in place under the stripe's
 * locks, and the member stays in the array.
 */
int crp_array_read(struct crp_array *a, uint64_t off, void *buf, size_t len);

/*
 * Optimistic reads, for the calling thread only: while on, crp_array_read
 * serves only what the members return as they are, and fails with
 * -CRP_ERETRY instead of rebuilding a piece (a member not readable, a
 * MEDIUM ERROR) or waiting for a reservation held by another host: a
 * reader without the metadata lock may meet a stripe being written, and
 * must neither reconstruct nor rewrite from it.  crp_array_thread_reads
 * counts the calling thread's crp_array_read calls, so that the caller
 * knows whether it read the disks at all.
 */
void crp_array_optimistic(bool on);
uint64_t crp_array_thread_reads(void);

/*
 * Write @len bytes at array offset @off through stripe transactions, one
 * per stripe touched.  Returns when every data and parity WRITE is GOOD.
 */
int crp_array_write(struct crp_array *a, uint64_t off, const void *buf, size_t len);

/* Several writes as one batch: their stripe transactions run in order, and
 * a member lock needed by the next transaction may stay cached between them
 * (within the hold-time bound).  Ranges must not overlap. */
struct crp_array_iov {
	uint64_t off;
	const void *buf;
	size_t len;
};
int crp_array_writev(struct crp_array *a, const struct crp_array_iov *iov, int n);

/* SYNCHRONIZE CACHE on every member: what was written is durable. */
int crp_array_sync(struct crp_array *a);

/* Release every cached lock now (unmount, tests). */
void crp_array_drop_locks(struct crp_array *a);

/*
 * Read stripe @s whole (taking its locks so that no writer is mid-way) and
 * check its parity: 0, -CRP_EPARITY, or an I/O error.
 */
int crp_array_verify_stripe(struct crp_array *a, uint64_t s);

/*
 * Rebuild the chunk range [off, off+len) of data as if member @bad were
 * missing, return it in @buf, and if @repair write it back to @bad under the
 * stripe's locks.  For checksum failures found above this layer.
 */
int crp_array_rebuild_range(struct crp_array *a, uint64_t off, void *buf, size_t len, int bad,
			    bool repair);
/*
 * The same with member @bad2 taken as wrong too (-1: none): RAID-6 rebuilds
 * two columns from P and Q.  With @repair, the rows of both members are
 * written back, so that the stripe agrees with its parity again.
 */
int crp_array_rebuild_range2(struct crp_array *a, uint64_t off, void *buf, size_t len, int bad,
			     int bad2, bool repair);

/*
 * Rebuild position @pos (a replacement, REBUILDING) over stripes
 * [s0, s0 + count): under the locks of every writable member, each chunk
 * of @pos is computed from the others and written.  Bounded by the
 * members' timeouts; -CRP_EDEGRADED if too few members are readable.
 */
int crp_array_rebuild_stripes(struct crp_array *a, uint64_t s0, uint32_t count, int pos,
			      uint64_t *held_ns);

/*
 * Recompute stripe @s's parity from its data under the locks of every
 * member, and write it: the resync of a stripe that a dead host may have
 * left half-written.
 */
int crp_array_resync_stripe(struct crp_array *a, uint64_t s);

/*
 * Whole-array checks (scrub): hold the locks of every writable member,
 * this host's local ownership of all of them first, as
 * crp_array_rebuild_stripes takes them, so that no transaction of any
 * host is half way through any stripe while the caller reads the members
 * directly (crp_array_member, crp_member_submit) and writes back with
 * crp_array_write_held.  All or nothing, with backoff, up to the lock
 * deadline; works while the calling thread holds the metadata lock (its
 * members stay pinned).  0, or an error with nothing held.  Keep the hold
 * to a few round trips: in reserve mode every other host waits, reads
 * included.
 */
int crp_array_hold_all(struct crp_array *a);
/* Give them back: 0, or -CRP_ELOCKLOST if a reservation was broken while
 * held (what was read may have raced another host: read it again). */
int crp_array_release_all(struct crp_array *a);
/* Under crp_array_hold_all: write @len bytes at byte @off of member @m (a
 * chunk found wrong), with the lease's fence time; not intent-logged. */
int crp_array_write_held(struct crp_array *a, int m, uint64_t off, const void *buf,
			 uint32_t len);
/* Rows [off, off+len) of stripe @s's member @bad rebuilt from the other
 * readable members into @out, with plain reads (the caller holds the
 * locks if it needs them).  -CRP_EDEGRADED if too few are readable. */
int crp_array_reconstruct(struct crp_array *a, uint64_t s, int bad, uint32_t off, uint32_t len,
			  uint8_t *out);

/*
 * Write intent: @begin runs before a stripe transaction first touches
 * stripe @s (a negative return fails the write), @end after it finished,
 * successfully or not; @suspect when it failed after its writes went out
 * (some may have landed, others not: data and parity may disagree until
 * the stripe is resynced).  Both may run on any thread, concurrently.  The
 * metadata layer keeps its intent log with them, so that a survivor can
 * resync the stripes a dead host was writing, and resyncs its own suspect
 * stripes before their region leaves the log.
 */
struct crp_array_intent_ops {
	int (*begin)(void *ctx, uint64_t s);
	void (*end)(void *ctx, uint64_t s, bool suspect);
};
void crp_array_set_intent(struct crp_array *a, const struct crp_array_intent_ops *ops, void *ctx);

/*
 * The metadata lock, taken through the disks: the reservations of the
 * members at positions 0 .. tolerance (the first two, three for RAID-6)
 * that are writable.  Any two hosts whose views of the failed members
 * differ by no more than the level tolerates share at least one of them,
 * so while it is held no other host holds it.  Blocks (randomized
 * backoff) up to the lock deadline; -ETIMEDOUT then.  Not recursive.
 * unlock returns -CRP_ELOCKLOST if the lock was broken (LU reset,
 * PREEMPT) while held: whatever the holder wrote meanwhile may have raced
 * another host, and the holder must stop writing.
 */
#define CRP_META_LOCK_MEMBER 0
int crp_array_meta_lock(struct crp_array *a);
int crp_array_meta_unlock(struct crp_array *a);
/* Does a thread of this host hold the metadata lock right now? */
bool crp_array_meta_held(struct crp_array *a);
/* Does the calling thread hold it? */
bool crp_array_meta_mine(struct crp_array *a);
/* How many other hosts are alive (the cluster layer tells, each beat): a
 * host holding the metadata lock in a long streak steps aside briefly only
 * when some are. */
void crp_array_set_peers(struct crp_array *a, int n);
int crp_array_peers(struct crp_array *a);
/* The calling thread takes over the metadata lock another thread of this
 * host took and kept (a group commit, crp_meta_tx_end): from now on it is
 * "mine" for this thread, which unlocks it. */
void crp_array_meta_adopt(struct crp_array *a);
/* Called by the holder before crp_array_meta_unlock, after a long hold (a
 * group commit that ran its whole window): the lock is not taken again for
 * a few milliseconds, so that other hosts' RESERVEs and heartbeat writes
 * get their turn before this host knows they are there. */
void crp_array_meta_step_aside(struct crp_array *a);

/* The same with a deadline (crp_now_ns clock) instead of the default one:
 * recovery uses it so that a dead host holding the lock cannot stall it.
 * -ETIMEDOUT: another host held it past the deadline; -EBUSY: a local
 * thread did. */
int crp_array_meta_lock_until(struct crp_array *a, uint64_t deadline_ns);

/*
 * Fencing.  The write gate runs before every stripe transaction and every
 * metadata lock, and again once a transaction has its locks, just before
 * its WRITEs; a negative return fails the write (the cluster layer's lease
 * check).  The gate also sets *until: the WRITEs carry it as their fence
 * time (struct crp_cmd's fence_ns), so that one queued by a host that then
 * hung is never sent after its lease ran out; 0 for no limit.
 * crp_array_fence() makes the array refuse every further write and lock
 * with -CRP_EFENCED, for good; a registration preempted by another host
 * (UNIT ATTENTION 2Ah/05h) fences the array the same way.
 */
void crp_array_set_gate(struct crp_array *a, int (*gate)(void *ctx, uint64_t *until), void *ctx);
void crp_array_fence(struct crp_array *a);
bool crp_array_fenced(const struct crp_array *a);
/* Before any write: -CRP_EFENCED once fenced, else the gate's verdict;
 * *until (if not NULL): the fence time for the writes that follow (struct
 * crp_cmd's fence_ns), 0 for none.  Writes that go to members directly
 * (the member table's labels) pass it too. */
int crp_array_gate_check(struct crp_array *a, uint64_t *until);
/* pr mode: is our key still registered (PR IN READ KEYS on every live
 * member not logging in)?  0, or -CRP_EFENCED (and the array fenced) if it
 * was preempted: gone from the nexus it was registered on.  A key gone
 * after a new nexus (the target restarted, or lost its state) is
 * registered again on that member, and 0 returned: the gate's lease check
 * decides whether this host was declared dead meanwhile.  reserve mode: 0. */
int crp_array_pr_check(struct crp_array *a);

/* pr mode: the key holding each member's reservation (PR IN READ
 * RESERVATION): keys[i] = 0 if none, UINT64_MAX if it could not be read
 * (and in reserve mode).  Returns the number of members read. */
int crp_array_pr_holders(struct crp_array *a, uint64_t *keys);

/*
 * Break a dead host's locks on every member.  pr mode: PREEMPT of
 * @victim_key (its registration goes, and its reservation if it had one).
 * reserve mode: a member whose reservation is still held against us after
 * @wait_ns (a hung holder: a crashed one lost it with its session) is LU
 * reset; the others are left alone, so that live hosts keep theirs.
 */
int crp_array_break_locks(struct crp_array *a, uint64_t victim_key, uint64_t wait_ns);

/*
 * pr mode: PREEMPT @victim_key on every member now, without waiting for
 * this host's local locks (its own threads may be waiting for the
 * victim's reservations); a reservation that passes to us is given back
 * unless a local transaction owns the member.  Returns the number of
 * members where the victim was still registered.  reserve mode: 0.
 */
int crp_array_preempt(struct crp_array *a, uint64_t victim_key);

/*
 * The end of this host's lease (monotonic ns), as the cluster layer renews
 * it with every heartbeat: while it runs no other host may declare this one
 * dead.  crp_array_pr_check says in its warning whether a registration
 * lost with a session went while the lease ran.
 */
void crp_array_set_lease(struct crp_array *a, uint64_t end_ns);

/*
 * The PR key of one open of the array by @host (never 0): the high 32 bits
 * name the host, the low 32 bits are new at every open.  A mount must
 * never share its key with a dead earlier mount of the same host name,
 * whose reservations it may have to preempt (a PREEMPT of one's own key is
 * not one).  The key is recorded in the host's slot for the survivors.
 */
uint64_t crp_pr_key_for_host(const char *host);

#endif
