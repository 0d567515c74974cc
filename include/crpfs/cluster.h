/*
 * The cluster layer: host slots, heartbeats, recovery of a dead host and
 * fencing.  It sits on the metadata layer (slots, journal replay, intent
 * log) and the array (metadata lock, lock breaking, the write gate); it
 * never calls the fs or FUSE layers: what they must do is handed in as
 * callbacks.
 *
 * Slots.  A host joins by watching the slots (crp_meta_slots_watch) for up
 * to the dead timeout, recovering those whose counter did not move, and
 * claiming a free one under the metadata lock.  A host name whose slot is
 * alive is refused: two mounts never share a slot.
 *
 * Heartbeat.  A thread writes our slot (counter + 1, wall time) every
 * heartbeat interval: a plain write of the slot block on every member,
 * members reserved by other hosts retried within the interval; the beat
 * counts if any copy landed.  A thread of its own watches the other slots
 * at the same interval (so that a slow watch never delays a beat): a
 * host is dead when its counter, as read, has not moved for the dead
 * timeout, measured on this host's monotonic clock (never by comparing
 * wall clocks across hosts; a slot that could not be read proves nothing).
 * Recovery runs on a thread of its own, so that the heartbeat goes on
 * while it does.
 *
 * Recovery, exactly once.  The watcher takes the metadata lock, re-reads
 * the dead slot and marks it RECOVERING with its own name only if it still
 * shows the counter it saw stop; every other survivor then finds it
 * RECOVERING or FREE and does nothing.  The winner breaks the dead host's
 * locks, replays its journal, resyncs the stripes in its intent log, has
 * its orphans freed (callback) and frees the slot, counting the recovery
 * in the slot (struct crp_slot.recoveries, .recoverer).  A RECOVERING slot
 * whose counter stops for the dead timeout while its recoverer is no longer
 * a live host (its own slot stopped too) is taken over the same way.
 *
 * Fencing.  Every write passes the array's gate: our lease is our last
 * successful heartbeat, valid for half the dead timeout.  A write after it
 * expired re-reads our slot first: if it is no longer ACTIVE under our
 * name and mount, a survivor declared us dead, and the host is fenced: the
 * array refuses every further write with -CRP_EFENCED and the fenced
 * callback tells the daemon to stop.  The heartbeat renews an expired
 * lease the same way, without the metadata lock until three quarters of
 * the dead timeout after its last beat (nobody can declare us dead
 * sooner), under it after that.  In pr mode a preempted registration
 * (UNIT ATTENTION 2Ah/05h) fences the array the same way.  A fenced host
 * rejoins only through a fresh mount.
 *
 * Assumption (as for every lease): a write that passed the gate reaches
 * the disks within half the dead timeout, and the hosts' clocks run at
 * the same rate.  In pr mode PREEMPT fences even a write that breaks it.
 */
#ifndef CRPFS_CLUSTER_H
#define CRPFS_CLUSTER_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "crpfs/meta.h"

#define CRP_DEFAULT_HEARTBEAT_MS 1000
#define CRP_DEFAULT_DEAD_TIMEOUT_MS 5000

struct crp_cluster_opts {
	uint32_t heartbeat_ms;	  /* 0: CRP_DEFAULT_HEARTBEAT_MS */
	uint32_t dead_timeout_ms; /* 0: CRP_DEFAULT_DEAD_TIMEOUT_MS; at least 2 beats */
	/* The lock that protects struct crp_meta (the fs big lock), taken by
	 * recovery around the journal replay and intent resync; NULL when the
	 * caller does not share the meta with other threads (tests). */
	pthread_mutex_t *meta_mu;
	/* Free slot @slot's orphan inodes (the fs layer), after its journal
	 * was replayed; called from the recovery thread without meta_mu.
	 * NULL: the slot's bit stays in meta->recovered for the caller. */
	int (*free_orphans)(void *ctx, int slot);
	/* This host was fenced: called once, from the heartbeat or recovery
	 * thread or a writer, with the message to show ("host X was declared dead by Y and
	 * fenced; remount to rejoin").  Must not block. */
	void (*fenced)(void *ctx, const char *msg);
	void *ctx;
	bool no_thread;		  /* tests: no heartbeat thread, call crp_cluster_tick */
	bool no_recovery;	  /* never recover another host (administration tools:
				     the mounted hosts do it) */
};

struct crp_cluster;

/*
 * Join: watch the slots, recover dead hosts, claim a slot under the
 * metadata lock and start the heartbeat thread and the write gate.  @m is
 * open without a slot (crp_meta_opts.claim_slot and .replay false).  Slots
 * recovered here are left set in m->recovered (free their orphans).
 * -EBUSY with a message naming the host when its slot is alive.
 */
int crp_cluster_join(struct crp_meta *m, const struct crp_cluster_opts *opts,
		     struct crp_cluster **out, char *err, size_t errlen);
/*
 * A clean close, in this order:
 *   crp_cluster_quiesce   no recovery of other hosts from here on (one
 *                         under way finishes first); the heartbeat goes on
 *   crp_meta_shutdown     commit, settle, free the slot under the metadata
 *                         lock; the heartbeat stops just before the FREE
 *   crp_cluster_leave     stop the threads, remove the gate
 *   crp_meta_close
 * A host that stopped beating before its close was done would be taken
 * for dead by the others if the close waits long for the metadata lock.
 */
void crp_cluster_quiesce(struct crp_cluster *c);
/*
 * Quiesce if not done, stop the heartbeat thread and remove the gate.
 * Without crp_meta_shutdown first, the slot is freed by crp_meta_close
 * afterwards (only if still ours), as the heartbeat stopped here.  A fenced
 * host leaves its array fenced, so that close writes nothing.  Frees @c.
 */
void crp_cluster_leave(struct crp_cluster *c);

/*
 * An administration tool's hold on an array (crpfs replace, fail, scrub):
 * the metadata open read-write with a host slot and a heartbeat of its
 * own, so that its locks and writes follow the rules every host follows
 * (the lease, fencing; recovered by the others if it dies), but it never
 * recovers another host.  @host must differ from every mounted host's.
 */
struct crp_admin;
int crp_admin_open(const char *const *specs, int n, const char *host, uint32_t timeout_ms,
		   struct crp_admin **out, char *err, size_t errlen);
struct crp_meta *crp_admin_meta(struct crp_admin *ad);
/* Leave the cluster (the slot is freed) and close: 0 or the first error. */
int crp_admin_close(struct crp_admin *ad);

/* One heartbeat and one round of watching (the thread's loop body; tests
 * with no_thread call it, and recover dead hosts inline).  0, or
 * -CRP_EFENCED once fenced. */
int crp_cluster_tick(struct crp_cluster *c);
/* The lease check of the write gate: 0 or -CRP_EFENCED. */
int crp_cluster_check(struct crp_cluster *c);
/* Fenced?  @msg (may be NULL) receives the message. */
bool crp_cluster_fenced(struct crp_cluster *c, char *msg, size_t len);

struct crp_cluster_stats {
	uint64_t beats;		/* heartbeats written */
	uint64_t recoveries;	/* dead hosts this host recovered */
	uint64_t lease_renewals; /* writes that found the lease expired and re-read the slot */
};
void crp_cluster_get_stats(struct crp_cluster *c, struct crp_cluster_stats *st);
int crp_cluster_slot(const struct crp_cluster *c);

/*
 * Recover slot @slot if it still shows @seen (state and counter) under
 * the metadata lock: the exactly-once step the watcher runs.  Returns 1 if
 * this host recovered it, 0 if another host did or it came back, or an
 * error.
 */
int crp_cluster_recover(struct crp_cluster *c, int slot, const struct crp_slot *seen);

#endif
