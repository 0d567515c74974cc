/* Private to the array layer (array.c, lock.c, stripe.c). */
#ifndef CRPFS_ARRAY_I_H
#define CRPFS_ARRAY_I_H

#include <pthread.h>

#include "crpfs/array.h"

/*
 * Lock state of one member on this host.
 *
 * A member's reservation belongs to the host's nexus, so every local
 * transaction shares it; @busy serializes the local transactions that
 * write the member, and @reserved says whether this host holds the SCSI
 * reservation right now (between transactions it is "cached" only while
 * another local transaction is waiting for the member, and never longer
 * than max_hold_us).
 */
struct crp_mlock {
	pthread_mutex_t mu;
	pthread_cond_t cv;
	bool busy;		    /* protected by mu: a local transaction owns it */
	int waiters;		    /* protected by mu: local transactions waiting */
	int queued;		    /* protected by mu: local work announced for it */
	/* The following are touched only by the transaction that owns @busy. */
	bool reserved;		    /* this host holds the reservation */
	bool pinned;		    /* held for the metadata lock: never released
				       by a transaction, only by meta_unlock */
	uint64_t reserved_since_ns; /* when the current reservation was taken */
	uint64_t yield_until_ns;    /* not reserved again before this (see lock.c) */
};

/* Statistics of one transaction, for the round-trip test and benchmarks. */
struct crp_txn_stats {
	unsigned round_trips; /* batches waited for on the critical path */
	unsigned reserves;    /* RESERVE / PR RESERVE issued */
	unsigned releases;    /* RELEASE / PR RELEASE issued (chained or not) */
	unsigned reads;
	unsigned writes;
	unsigned cache_hits;  /* member locks reused from the cache */
	unsigned attempts;    /* lock attempts (1 + conflicts) */
};

typedef void (*crp_txn_hook_fn)(void *ctx, const struct crp_txn_stats *st);

struct crp_array {
	int n;
	struct crp_member *m[CRP_MAX_MEMBERS];
	struct crp_mlock lk[CRP_MAX_MEMBERS];
	struct crp_geom g;
	bool has_geom;
	char host[256];
	struct crp_array_opts opts; /* opts.host points at host[] */
	uint64_t pr_key;
	uint32_t block_size; /* largest member block size */
	uint64_t min_size;
	uint64_t max_hold_ns; /* 0: never keep a reservation past its transaction */
	struct crp_host_counters ctr;
	/* Held from crp_array_meta_lock to _unlock, by one thread or, for a
	 * group commit, handed from thread to thread (crp_array_meta_adopt):
	 * a flag under a mutex, not the mutex itself. */
	pthread_mutex_t meta_mu;
	pthread_cond_t meta_cv;
	bool meta_busy;
	const struct crp_array_intent_ops *intent; /* set before I/O starts */
	void *intent_ctx;
	crp_txn_hook_fn txn_hook;
	void *txn_hook_ctx;
	atomic_int mstate[CRP_MAX_MEMBERS]; /* enum crp_array_mstate */
	atomic_uint_fast64_t new_failed;    /* members failed in I/O, not yet taken */
	int (*failure_hook)(void *ctx);	    /* records new failures; set before I/O */
	void *failure_ctx;
	pthread_mutex_t scratch_mu;	    /* protects scratch (tried, never waited for) */
	uint8_t *scratch;		    /* stripe_check's buffers, kept between stripes */
	size_t scratch_len;
	pthread_mutex_t retire_mu;	    /* protects retired[], nretired */
	struct crp_member *retired[2 * CRP_MAX_MEMBERS]; /* replaced, closed at close */
	int nretired;
	/* The metadata lock (lock.c): the members pinned for it, and who
	 * holds it; both change only under meta_mu. */
	int meta_set[3];
	int nmeta_set;
	pthread_t meta_owner;
	atomic_bool meta_keep;		/* held: stripe locks stay until the unlock */
	atomic_bool meta_lost;		/* a member of the held metadata lock lost its
					   reservation (whoever took the event):
					   the unlock reports it */
	/* Fairness of the metadata lock (lock.c): a host that holds it in a
	 * streak of back-to-back transactions steps aside now and then while
	 * other hosts are alive.  Under meta_mu, but for @peers. */
	uint64_t meta_streak_ns;	/* start of the current streak */
	uint64_t meta_unlocked_ns;	/* last unlock */
	uint64_t meta_yield_until_ns;	/* not taken again before this */
	bool meta_aside;		/* the holder asks for a pause after its unlock */
	atomic_int peers;		/* other live hosts (the cluster layer says) */
	atomic_bool fenced;	/* sticky: preempted, or declared dead (crp_array_fence) */
	atomic_uint_fast64_t lease_end_ns; /* our lease, as the cluster last renewed it */
	/* pr: the member's nexus generation our key was last registered on. */
	atomic_uint reg_gen[CRP_MAX_MEMBERS];
	atomic_bool reregistered; /* said once: registrations found lost */
	int (*gate)(void *ctx, uint64_t *until); /* write gate (cluster lease), set before I/O starts */
	void *gate_ctx;
};

/* array.c: pr mode, after a lost session to member @i: register our key
 * on it again. */
void crp_array_pr_reregister(struct crp_array *a, int i);

/* members.c: run the failure hook if failures are pending: 0, or its error. */
int crp_array_record_failures(struct crp_array *a);

/* lock.c */
void crp_mlock_init(struct crp_mlock *l);
void crp_mlock_destroy(struct crp_mlock *l);
/* Take the local ownership of members @mem[0..n-1] (ascending, distinct). */
void crp_mlock_take_local(struct crp_array *a, const int *mem, int n);
void crp_mlock_give_local(struct crp_array *a, const int *mem, int n);
/* Release the reservations of @mem (ascending) that this host keeps cached
 * for local work that will not come, unless other local work wants them. */
void crp_lock_release_idle(struct crp_array *a, const int *mem, int n);
/* Take member @i's local ownership only if nobody has it; true if taken. */
bool crp_mlock_try_local(struct crp_array *a, int i);
/* Build the command that takes / drops this host's reservation of member i. */
void crp_lock_cmd_reserve(struct crp_array *a, struct crp_cmd *c, uint8_t param[24]);
void crp_lock_cmd_release(struct crp_array *a, struct crp_cmd *c, uint8_t param[24]);
/* Note that member @i's reservation was taken now. */
void crp_lock_taken(struct crp_array *a, int i);
/*
 * Drop member @i's reservation: returns a heap command to submit (chained
 * behind a WRITE or alone) that frees itself when done, and marks the lock
 * not reserved.
 */
struct crp_cmd *crp_lock_release_cmd(struct crp_array *a, int i);
/* Release synchronously every reservation in @mem that this host holds. */
void crp_lock_release_now(struct crp_array *a, const int *mem, int n);
/* Whether member @i's reservation may be kept for a waiting local
 * transaction (queued work, hold time within the bound). */
bool crp_lock_keep(struct crp_array *a, int i);
/* Before reserving members @mem: wait out the pause after a reservation
 * given up at the max_hold bound (see lock.c). */
void crp_lock_yield(struct crp_array *a, const int *mem, int n);
/* Events that mean our reservation on member @i is gone; 0 if none. */
int crp_lock_check_events(struct crp_array *a, int i);
/* Sleep for the @attempt-th randomized, growing backoff. */
void crp_lock_backoff(struct crp_array *a, unsigned attempt);
/* The highest attempt worth backing off for, for a waiter on members
 * @set: short when the set has a lock member (held for a group commit at
 * a time, then given up for a moment), UINT_MAX otherwise. */
unsigned crp_lock_attempt_cap(struct crp_array *a, const int *set, int n);
/* Total time a transaction may spend waiting for locks. */
uint64_t crp_lock_deadline_ns(const struct crp_array *a);

/* Announce (+1) or withdraw (-1) local work queued for members @mem. */
void crp_mlock_queue(struct crp_array *a, const int *mem, int n, int delta);

/* Test hook: called after every stripe transaction with its statistics. */
void crp_array_set_txn_hook(struct crp_array *a, crp_txn_hook_fn fn, void *ctx);

/* stripe.c: the members a write of the given chunks of stripe @s touches
 * (ascending); returns their number. */
int crp_stripe_members(struct crp_array *a, uint64_t s, const uint8_t *const *src, int *out);

/* stripe.c: one stripe transaction for data chunks [d0..] of stripe @s:
 * @src[d] points at the new bytes for [lo[d], hi[d]) of data chunk d, or is
 * NULL for chunks not written. */
int crp_stripe_write(struct crp_array *a, uint64_t s, const uint8_t *const *src,
		     const uint32_t *lo, const uint32_t *hi);

#endif
