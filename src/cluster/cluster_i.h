/* Private to the cluster layer (cluster.c, recover.c). */
#ifndef CRPFS_CLUSTER_I_H
#define CRPFS_CLUSTER_I_H

#include <stdatomic.h>

#include "crpfs/cluster.h"

enum { REC_IDLE, REC_PENDING, REC_RUNNING };

struct crp_cluster {
	struct crp_meta *m;
	struct crp_cluster_opts o;
	uint64_t beat_ns;		/* heartbeat interval */
	uint64_t dead_ns;		/* dead timeout */
	uint64_t lease_ns;		/* dead_ns / 2 */
	int slot;			/* ours */

	pthread_mutex_t lease_mu;	/* lock order: array meta lock, then lease_mu */
	struct crp_slot mine;		/* protected by lease_mu: our slot as we write it */
	bool beats_off;			/* protected by lease_mu: our slot is being freed */
	atomic_bool leaving;		/* set with beats_off: no beats, no watching */
	atomic_uint_fast64_t lease_ok_ns; /* monotonic start of our last good beat */

	atomic_bool fenced;
	pthread_mutex_t fence_mu;	/* protects fence_msg, fence_told */
	char fence_msg[256];
	bool fence_told;

	/* Watching the other slots: touched by the heartbeat thread only (or
	 * by the crp_cluster_tick caller). */
	uint64_t *seen_counter;
	uint32_t *seen_state;
	uint64_t *seen_ns;		/* monotonic time the counter last moved */
	bool *seen_valid;
	struct crp_slot *watch_slots;	/* the last round's read */
	bool *watch_got;		/* slot read in that round */
	uint64_t unreadable_ns;		/* since when no slot copy could be read, or 0 */
	unsigned rec_epoch_seen;	/* rec_epoch when the clocks last restarted */
	atomic_uint rec_epoch;		/* bumped after each recovery we ran */

	pthread_t thread;		/* the heartbeat */
	bool running;
	pthread_t watch_thread;		/* the watcher: watch() alone touches the
					   seen_*, watch_* and unreadable_ns above */
	bool watch_running;
	pthread_mutex_t mu;		/* protects stop, rec_state, rec_seen */
	pthread_cond_t cv;		/* the heartbeat and watcher threads' sleep */
	bool stop;

	/* Recovery runs on a thread of its own, so that our heartbeat goes on
	 * while it does (a recovery takes seconds).  The watcher queues a
	 * dead slot (REC_PENDING, with the slot as it saw it stop) and skips
	 * it until the recovery thread is done with it (back to REC_IDLE). */
	pthread_t rec_thread;
	bool rec_running;
	bool rec_stop;			/* protected by mu: crp_cluster_quiesce */
	pthread_cond_t rec_cv;		/* with mu: a slot was queued, or stop */
	uint8_t *rec_state;		/* protected by mu: REC_* per slot */
	struct crp_slot *rec_seen;	/* protected by mu */

	atomic_uint_fast64_t beats, recoveries, renewals;
};

/*
 * slotio.c: slot copies read and written past other hosts' reservations,
 * retrying the members that answered RESERVATION CONFLICT (randomized
 * backoff) until @deadline (crp_now_ns clock).
 *
 * slots_read: slots @first .. @first + @n - 1, one read per member; @got[k]
 * says whether slot @first + k was read (its freshest copy in @out[k]).  0
 * if any copy was read, else the error (-CRP_ECONFLICT: every member stayed
 * reserved by another host).  slot_read: one slot, 0 only if it was read.
 * slot_write: every member; 0 if any copy landed.
 */
int crp_cluster_slots_read(struct crp_cluster *c, int first, int n, uint64_t deadline,
			   struct crp_slot *out, bool *got);
int crp_cluster_slot_read(struct crp_cluster *c, int slot, uint64_t deadline,
			  struct crp_slot *out);
int crp_cluster_slot_write(struct crp_cluster *c, const struct crp_slot *s, uint64_t deadline);
/* pr mode: PREEMPT the registration of the dead host @seen showed, on every
 * member, if the slot still shows it (recover.c). */
void crp_cluster_preempt_dead(struct crp_cluster *c, int slot, const struct crp_slot *seen);

/* cluster.c: fence this host (once), with the slot that shows why. */
void crp_cluster_fence(struct crp_cluster *c, const struct crp_slot *s);
/* Marks the current thread as the cluster's own (the gate does not re-enter). */
void crp_cluster_thread_mark(bool on);

#endif
