/*
 * Joining, the heartbeat thread, the lease and fencing (the model is at
 * the top of include/crpfs/cluster.h; recovery is in recover.c).
 *
 * Timeline of a heartbeat, on this host's monotonic clock:
 *
 *   t0 = now; write slot (counter+1) on every member; if any member took it:
 *   lease_ok_ns = t0 (the lease runs from before the write, never after).
 *
 * A write is allowed while now - lease_ok_ns < dead_timeout / 2.  A survivor
 * declares us dead only after seeing our counter still for dead_timeout on
 * its own clock, so a write started inside the lease lands before anyone
 * can have declared us dead.  Once the lease has expired (we were hung, or
 * the members were slow), the next beat or write re-reads our slot before
 * writing anything: a writer without the metadata lock (it may already
 * hold it), the heartbeat thread without it until three quarters of the
 * dead timeout after t0 (nobody can mark our slot before t0 + dead
 * timeout; renew_deadline), under it after that (survivors mark slots
 * under it).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "crpfs/err.h"
#include "crpfs/log.h"
#include "crpfs/member.h"
#include "crpfs/util.h"
#include "cluster_i.h"

static __thread bool in_cluster_thread;

void crp_cluster_thread_mark(bool on)
{
	in_cluster_thread = on;
}

int crp_cluster_slot(const struct crp_cluster *c)
{
	return c->slot;
}

void crp_cluster_get_stats(struct crp_cluster *c, struct crp_cluster_stats *st)
{
	st->beats = atomic_load(&c->beats);
	st->recoveries = atomic_load(&c->recoveries);
	st->lease_renewals = atomic_load(&c->renewals);
}

bool crp_cluster_fenced(struct crp_cluster *c, char *msg, size_t len)
{
	bool f = atomic_load(&c->fenced);

	if (!f && crp_array_fenced(c->m->a)) {
		crp_cluster_fence(c, NULL); /* the array saw the preemption first */
		f = true;
	}
	if (f && msg && len) {
		pthread_mutex_lock(&c->fence_mu);
		snprintf(msg, len, "%s",
			 c->fence_msg[0] ? c->fence_msg : "this host was fenced; remount to rejoin");
		pthread_mutex_unlock(&c->fence_mu);
	}
	return f;
}

static bool still_ours(const struct crp_cluster *c, const struct crp_slot *s);

void crp_cluster_fence(struct crp_cluster *c, const struct crp_slot *s)
{
	bool tell = false;
	char msg[256];
	struct crp_slot now;

	/* Preempted (pr): the slot says who declared us dead, if anyone did. */
	if (!s && c->slot >= 0 &&
	    crp_cluster_slot_read(c, c->slot, crp_now_ns() + c->beat_ns / 2, &now) == 0 &&
	    !still_ours(c, &now) && now.recoverer[0])
		s = &now;
	crp_array_fence(c->m->a);
	atomic_store(&c->fenced, true);
	pthread_mutex_lock(&c->fence_mu);
	if (!c->fence_msg[0]) {
		if (s && s->recoverer[0] && strcmp(s->recoverer, c->m->host))
			snprintf(c->fence_msg, sizeof(c->fence_msg),
				 "host %s was declared dead by %s and fenced; remount to rejoin",
				 c->m->host, s->recoverer);
		else if (s)
			snprintf(c->fence_msg, sizeof(c->fence_msg),
				 "host %s lost its slot %d (now %s%s%s) and is fenced; remount to rejoin",
				 c->m->host, c->slot,
				 s->state == CRP_SLOT_FREE ? "free" :
				 s->state == CRP_SLOT_RECOVERING ? "being recovered" : "taken",
				 s->host[0] && s->state != CRP_SLOT_FREE ? " by " : "",
				 s->state != CRP_SLOT_FREE ? s->host : "");
		else
			snprintf(c->fence_msg, sizeof(c->fence_msg),
				 "host %s: its registration was preempted by another host, "
				 "which declared it dead; it is fenced; remount to rejoin", c->m->host);
	}
	if (!c->fence_told) {
		c->fence_told = true;
		tell = true;
	}
	snprintf(msg, sizeof(msg), "%s", c->fence_msg);
	pthread_mutex_unlock(&c->fence_mu);
	if (tell) {
		crp_err("%s", msg);
		if (c->o.fenced)
			c->o.fenced(c->o.ctx, msg);
	}
}

/* Is @s still the slot we claimed? */
static bool still_ours(const struct crp_cluster *c, const struct crp_slot *s)
{
	return s->state == CRP_SLOT_ACTIVE && !strcmp(s->host, c->m->host) &&
	       s->mount_ns == c->mine.mount_ns;
}

/* Write our slot with the counter bumped; lease_mu held.  The lease runs
 * from @t0, taken before the write was issued.  Members that other hosts
 * hold reserved are retried for up to half a heartbeat: the beat counts if
 * any copy landed (watchers take the freshest copy they can read). */
static int write_beat(struct crp_cluster *c, uint64_t t0, uint64_t deadline)
{
	int r;

	if (c->beats_off)
		return -ESHUTDOWN;
	c->mine.heartbeat++;
	c->mine.heartbeat_ns = crp_wall_ns();
	r = crp_cluster_slot_write(c, &c->mine, CRP_MIN(t0 + c->beat_ns / 2, deadline));
	if (r == 0) {
		atomic_store(&c->lease_ok_ns, t0);
		crp_array_set_lease(c->m->a, t0 + c->lease_ns);
		atomic_fetch_add(&c->beats, 1);
	}
	return r;
}

/* Re-read our slot and beat if it is still ours, else fence; lease_mu held.
 * Safe against a survivor marking the slot only when the caller holds the
 * metadata lock, or before @deadline (UINT64_MAX: none) from
 * renew_deadline, or when the survivor is not mid-way (see the header).
 * Nothing is sent after @deadline. */
static int verify_and_beat(struct crp_cluster *c, uint64_t deadline)
{
	uint64_t t0 = crp_now_ns();
	struct crp_slot s;
	int r;

	atomic_fetch_add(&c->renewals, 1);
	r = crp_cluster_slot_read(c, c->slot, CRP_MIN(t0 + c->beat_ns / 2, deadline), &s);
	if (r < 0)
		return r;
	if (!still_ours(c, &s)) {
		crp_cluster_fence(c, &s);
		return -CRP_EFENCED;
	}
	if (s.heartbeat > c->mine.heartbeat)
		c->mine.heartbeat = s.heartbeat;
	if (crp_now_ns() >= deadline)
		return -ETIMEDOUT;
	return write_beat(c, t0, deadline);
}

/*
 * Until when the heartbeat may renew an expired lease without the
 * metadata lock.  A survivor declares us dead only after our counter, as
 * it read it, stood still for a dead timeout on its clock; it read our
 * last beat after that beat landed, so after its t0 (lease_ok_ns): it
 * cannot mark our slot before lease_ok_ns + dead timeout.  A renewal sent
 * before three quarters of that has the last quarter to land, as a
 * write inside the lease has half.  (reserve mode: a survivor that cannot
 * read the member our last beat landed on judges an older copy; the
 * lease has the same caveat.)
 */
static uint64_t renew_deadline(struct crp_cluster *c)
{
	return atomic_load(&c->lease_ok_ns) + c->dead_ns / 4 * 3;
}

static bool lease_fresh(struct crp_cluster *c)
{
	return crp_now_ns() - atomic_load(&c->lease_ok_ns) < c->lease_ns;
}

int crp_cluster_check(struct crp_cluster *c)
{
	int r;

	if (atomic_load(&c->fenced))
		return -CRP_EFENCED;
	if (in_cluster_thread || lease_fresh(c))
		return 0;
	/* Our slot is free or about to be: nothing renews the lease. */
	if (atomic_load(&c->leaving))
		return -ESHUTDOWN;
	pthread_mutex_lock(&c->lease_mu);
	r = lease_fresh(c) ? 0 : verify_and_beat(c, UINT64_MAX);
	pthread_mutex_unlock(&c->lease_mu);
	/* An expired lease that could not be renewed refuses the write too. */
	return atomic_load(&c->fenced) ? -CRP_EFENCED : r;
}

/*
 * The array's write gate.  The fence time of the writes that follow is the
 * end of the lease: a write still queued then (this host hung) is never
 * sent.  The cluster threads' own writes (a recovery's resync) are not
 * bound to the lease, which they may be renewing themselves.
 */
static int gate(void *ctx, uint64_t *until)
{
	struct crp_cluster *c = ctx;
	int r = crp_cluster_check(c);

	*until = r == 0 && !in_cluster_thread ? atomic_load(&c->lease_ok_ns) + c->lease_ns : 0;
	return r;
}

/*
 * Our lease ran out a dead timeout ago and could not be renewed (@err, our
 * members failed): the others may have declared us dead and recovered us,
 * and we cannot read our slot to find out.  Nothing may be written again without a
 * fresh mount.
 */
static void lapsed(struct crp_cluster *c, int err)
{
	uint64_t gap = crp_now_ns() - atomic_load(&c->lease_ok_ns);

	/* Members reserved by another host (a hung one, until it is
	 * recovered) only delay us; members that failed do not come back. */
	if (err == -CRP_ECONFLICT || err == -ETIMEDOUT || err == -EBUSY)
		return;
	if (gap < c->dead_ns || atomic_load(&c->fenced))
		return;
	pthread_mutex_lock(&c->fence_mu);
	if (!c->fence_msg[0])
		snprintf(c->fence_msg, sizeof(c->fence_msg),
			 "host %s has not beaten for %llu ms and cannot renew its lease (%s): the "
			 "others may have declared it dead; it is fenced; remount to rejoin",
			 c->m->host, (unsigned long long)(gap / 1000000), crp_strerror(err));
	pthread_mutex_unlock(&c->fence_mu);
	crp_cluster_fence(c, NULL);
}

/* One heartbeat. */
static int beat(struct crp_cluster *c)
{
	uint64_t until;
	int r, e;

	/* pr: was our registration preempted? (one PR IN a beat) */
	if ((crp_array_fenced(c->m->a) || crp_array_pr_check(c->m->a) == -CRP_EFENCED) &&
	    !atomic_load(&c->fenced))
		crp_cluster_fence(c, NULL);
	if (atomic_load(&c->fenced))
		return -CRP_EFENCED;
	if (lease_fresh(c)) {
		pthread_mutex_lock(&c->lease_mu);
		r = write_beat(c, crp_now_ns(), UINT64_MAX);
		pthread_mutex_unlock(&c->lease_mu);
		return r;
	}
	/*
	 * Expired a little while ago (our beats met members that other hosts
	 * held): nobody can have declared us dead yet, so re-read our slot
	 * and beat without the metadata lock, which the others' writers and
	 * ours may be queued for.  A host that cannot beat for a whole lease
	 * under load is alive; it must not wait in that queue until the others
	 * take it for dead.
	 */
	until = renew_deadline(c);
	if (crp_now_ns() < until) {
		pthread_mutex_lock(&c->lease_mu);
		r = verify_and_beat(c, until);
		pthread_mutex_unlock(&c->lease_mu);
		return r;
	}
	/*
	 * Expired: check under the metadata lock, where survivors mark slots.
	 * Waited for one heartbeat at most: a local thread may hold it while
	 * it waits for a dead host's lock (which only the watcher's verdict
	 * and a recovery free); without a beat the lease stays expired
	 * (writes refused) and the next tick tries again.
	 */
	r = crp_array_meta_lock_until(c->m->a, crp_now_ns() + c->beat_ns);
	if (r == -CRP_EFENCED) {
		crp_cluster_fence(c, NULL);
		return r;
	}
	if (r == -EBUSY && crp_array_meta_held(c->m->a)) {
		/*
		 * One of our own threads holds it, likely waiting for a hung
		 * host's reservations: beat without it, as a writer renewing
		 * its lease does, rather than let the others take us for dead
		 * too.  While we hold member 0, no survivor can be marking our
		 * slot (unless it breaks the lock, which that thread then
		 * finds out).
		 */
		pthread_mutex_lock(&c->lease_mu);
		r = verify_and_beat(c, UINT64_MAX);
		pthread_mutex_unlock(&c->lease_mu);
		return r;
	}
	if (r < 0)
		return r;
	pthread_mutex_lock(&c->lease_mu);
	r = verify_and_beat(c, UINT64_MAX);
	pthread_mutex_unlock(&c->lease_mu);
	e = crp_array_meta_unlock(c->m->a);
	return r ? r : e;
}

/* Hand dead slot @i (as @s showed it stop) to the recovery thread; false
 * if it is already queued or being recovered by us. */
static bool queue_recovery(struct crp_cluster *c, int i, const struct crp_slot *s)
{
	bool queued = false;

	pthread_mutex_lock(&c->mu);
	if (c->rec_state[i] == REC_IDLE) {
		c->rec_state[i] = REC_PENDING;
		c->rec_seen[i] = *s;
		queued = true;
		pthread_cond_broadcast(&c->rec_cv);
	}
	pthread_mutex_unlock(&c->mu);
	return queued;
}

/* Is any recovery of ours queued or running? */
static bool any_recovery_busy(struct crp_cluster *c)
{
	bool busy = false;

	pthread_mutex_lock(&c->mu);
	for (int i = 0; i < (int)c->m->sb.max_hosts; i++)
		busy |= c->rec_state[i] != REC_IDLE;
	pthread_mutex_unlock(&c->mu);
	return busy;
}

static bool recovery_busy(struct crp_cluster *c, int i)
{
	bool busy;

	pthread_mutex_lock(&c->mu);
	busy = c->rec_state[i] != REC_IDLE;
	pthread_mutex_unlock(&c->mu);
	return busy;
}

/* Recover slot @i, which @s showed stopped for the dead timeout. */
static void recover_one(struct crp_cluster *c, int i, const struct crp_slot *s)
{
	int r = crp_cluster_recover(c, i, s);

	if (r < 0)
		crp_err("recovery of host %s (slot %d) failed: %s; retrying after the dead timeout",
			s->host, i, crp_strerror(r));
}

/*
 * A recovery can take longer than the dead timeout in one step (a replay,
 * a resync, the orphans), while its recoverer keeps beating in its own
 * slot: a RECOVERING slot is stalled only when its recoverer is no longer
 * a live host.  Our own recovery that stopped (it failed) is retried.
 */
static bool recoverer_alive(struct crp_cluster *c, const struct crp_slot *s, uint64_t now)
{
	for (int j = 0; j < (int)c->m->sb.max_hosts; j++) {
		const struct crp_slot *r = &c->watch_slots[j];

		if (j == (int)s->slot || !c->watch_got[j] || r->state != CRP_SLOT_ACTIVE ||
		    strcmp(r->host, s->recoverer))
			continue;
		if (j == c->slot)
			return false;
		return c->seen_valid[j] && now - c->seen_ns[j] < c->dead_ns;
	}
	return false;
}

/*
 * reserve mode: every member answered our slot reads with RESERVATION
 * CONFLICT for a whole dead timeout.  No live host holds all members that
 * long (a lock is held for a transaction, a cached one max_hold_us more),
 * so a hung host does, and its heartbeat cannot even be read to declare it
 * dead.  Break those reservations (LU reset of each member still held
 * after a short probe) and watch every slot afresh: the hung host is then
 * declared dead like any other.  Its queued writes fail (the reset's UNIT
 * ATTENTION, the lease), never land.
 */
static void unreadable(struct crp_cluster *c)
{
	uint64_t now = crp_now_ns();

	if (!c->unreadable_ns) {
		c->unreadable_ns = now;
		return;
	}
	if (now - c->unreadable_ns < c->dead_ns)
		return;
	crp_warn("host %s: every member has been reserved by another host for %llu ms: a hung "
		 "host holds them; breaking their reservations", c->m->host,
		 (unsigned long long)((now - c->unreadable_ns) / 1000000));
	crp_array_break_locks(c->m->a, 0, c->dead_ns / 4);
	for (int i = 0; i < (int)c->m->sb.max_hosts; i++)
		c->seen_valid[i] = false;
	c->unreadable_ns = 0;
}

/*
 * pr mode: order the candidates for a dead verdict by what the members'
 * reservations say (one PR IN READ RESERVATION per member).  A host that
 * holds a reservation while its counter stands still is hung (or dead:
 * persistent reservations outlive their holder) and goes first: it can
 * always write its slot on the member it holds.  A host that holds none
 * while every member is reserved by others at this instant may simply be
 * unable to beat (a hung host, or a busy one, holds what it would write
 * to): its verdict waits.  Returns the slot to recover, or -1.
 */
static int pr_pick(struct crp_cluster *c, const int *cand, int ncand)
{
	uint64_t keys[CRP_MAX_MEMBERS];
	int nm = crp_array_nmembers(c->m->a), pick = -1, fallback = -1;
	bool all_held = true;

	if (crp_array_pr_holders(c->m->a, keys) == 0)
		return cand[0];
	for (int k = 0; k < ncand; k++) {
		const struct crp_slot *s = &c->watch_slots[cand[k]];
		bool holds = false;

		for (int i = 0; i < nm; i++)
			holds |= s->pr_key && keys[i] == s->pr_key;
		if (holds && pick < 0)
			pick = cand[k];
		if (!holds && fallback < 0)
			fallback = cand[k];
	}
	if (pick >= 0)
		return pick;
	for (int i = 0; i < nm; i++) {
		const struct crp_slot *f = &c->watch_slots[fallback];

		if (keys[i] == 0 || keys[i] == UINT64_MAX || keys[i] == f->pr_key)
			all_held = false;
	}
	if (all_held) {
		crp_info("host %s (slot %d) has not beaten, but every member is reserved by other "
			 "hosts: it may not have been able to; waiting", c->watch_slots[fallback].host,
			 fallback);
		return -1;
	}
	return fallback;
}

/*
 * One round of watching the other slots: every slot in one read per
 * member, members reserved by other hosts retried for up to half a
 * heartbeat.  A slot that could not be read says nothing: a host is judged
 * dead only from a counter that was read and had not moved for the dead
 * timeout.  A dead slot goes to the recovery thread (inline without
 * threads), and is not watched while our recovery of it runs.
 *
 * One verdict a round, the slot still the longest: a hung host can hold
 * the members that the others need to beat (pr mode: Write Exclusive on
 * every member), so their counters stop too, a little later; its recovery
 * frees them.  After each recovery we ran, every other slot's clock
 * restarts, so that a host that could not beat meanwhile is not taken for
 * dead.
 */
static void watch(struct crp_cluster *c)
{
	int n = (int)c->m->sb.max_hosts, pick = -1, ncand = 0;
	int cand[CRP_HOST_MAX];
	unsigned epoch = atomic_load(&c->rec_epoch);
	uint64_t now;
	int r;

	r = crp_cluster_slots_read(c, 0, n, crp_now_ns() + c->beat_ns / 2, c->watch_slots,
				   c->watch_got);
	if (r == -CRP_ECONFLICT && crp_array_lock_mode(c->m->a) == CRP_LOCK_RESERVE)
		unreadable(c);
	if (r < 0)
		return;
	c->unreadable_ns = 0;
	now = crp_now_ns();
	if (epoch != c->rec_epoch_seen) {
		c->rec_epoch_seen = epoch;
		for (int i = 0; i < n; i++)
			c->seen_ns[i] = now;
	}
	/* Other live hosts: the metadata lock steps aside for them now and
	 * then (lock.c). */
	{
		int peers = 0;

		for (int i = 0; i < n; i++)
			peers += i != c->slot && c->watch_got[i] &&
				 c->watch_slots[i].state == CRP_SLOT_ACTIVE;
		crp_array_set_peers(c->m->a, peers);
	}
	/* First what moved, then the verdicts (a recovery is judged by its
	 * recoverer's own heartbeat, in any slot). */
	for (int i = 0; i < n; i++) {
		struct crp_slot *s = &c->watch_slots[i];

		if (i == c->slot || !c->watch_got[i])
			continue;
		if (s->state == CRP_SLOT_FREE || (c->rec_running && recovery_busy(c, i))) {
			c->seen_valid[i] = false; /* busy: watch afresh once we are done */
			continue;
		}
		if (!c->seen_valid[i] || s->heartbeat != c->seen_counter[i] ||
		    s->state != c->seen_state[i]) {
			c->seen_valid[i] = true;
			c->seen_counter[i] = s->heartbeat;
			c->seen_state[i] = s->state;
			c->seen_ns[i] = now;
		}
	}
	for (int i = 0; i < n && !atomic_load(&c->fenced) && !c->o.no_recovery; i++) {
		struct crp_slot *s = &c->watch_slots[i];

		if (i == c->slot || !c->watch_got[i] || !c->seen_valid[i] ||
		    now - c->seen_ns[i] < c->dead_ns)
			continue;
		if (s->state == CRP_SLOT_RECOVERING && recoverer_alive(c, s, now)) {
			c->seen_ns[i] = now;
			continue;
		}
		/* stalest first */
		int k = ncand++;

		while (k > 0 && c->seen_ns[cand[k - 1]] > c->seen_ns[i]) {
			cand[k] = cand[k - 1];
			k--;
		}
		cand[k] = i;
	}
	/* Our recovery under way frees what the others need to beat: the
	 * next verdict waits for it (and for their clocks to restart). */
	if (ncand && c->rec_running && any_recovery_busy(c))
		ncand = 0;
	if (ncand)
		pick = crp_array_lock_mode(c->m->a) == CRP_LOCK_PR ? pr_pick(c, cand, ncand) : cand[0];
	if (pick >= 0) {
		struct crp_slot s = c->watch_slots[pick];

		c->seen_valid[pick] = false;
		if (c->rec_running && !queue_recovery(c, pick, &s))
			return;
		crp_warn("host %s (slot %d) has not beaten for %llu ms (counter %llu%s): recovering it",
			 s.host, pick, (unsigned long long)((now - c->seen_ns[pick]) / 1000000),
			 (unsigned long long)s.heartbeat,
			 s.state == CRP_SLOT_RECOVERING ? ", its recovery stalled" : "");
		if (!c->rec_running) {
			recover_one(c, pick, &s);
			atomic_fetch_add(&c->rec_epoch, 1);
		}
	}
}

/* pr mode: every reservation another host releases may queue a UNIT
 * ATTENTION on our nexus (tgt queues them without bound); take them off
 * once a beat, so that our next command does not meet thousands. */
static void drain_ua(struct crp_cluster *c)
{
	struct crp_array *a = c->m->a;

	if (crp_array_lock_mode(a) != CRP_LOCK_PR)
		return;
	for (int i = 0; i < crp_array_nmembers(a); i++) {
		struct crp_member *mem = crp_array_member(a, i);

		if (!crp_member_failed(mem) && !crp_member_reconnecting(mem))
			(void)crp_member_drain_ua(mem, 1u << 16);
	}
}

/* The heartbeat's half of a tick. */
static void tick_beat(struct crp_cluster *c)
{
	int r;

	drain_ua(c);
	r = beat(c);
	if (r < 0 && r != -CRP_EFENCED) {
		lapsed(c, r);
		crp_warn("host %s: heartbeat write failed: %s", c->m->host, crp_strerror(r));
	}
}

int crp_cluster_tick(struct crp_cluster *c)
{
	bool was = in_cluster_thread;

	if (atomic_load(&c->leaving))
		return 0; /* the slot is being freed: no beat may mark it active */
	in_cluster_thread = true;
	tick_beat(c);
	if (!atomic_load(&c->fenced))
		watch(c);
	in_cluster_thread = was;
	return atomic_load(&c->fenced) ? -CRP_EFENCED : 0;
}

/*
 * The heartbeat thread beats and the watcher thread watches, each once a
 * heartbeat interval: a watch round under load (every slot read past the
 * others' reservations, a verdict, a reset of a hung host's members) must
 * not hold back our own next beat.
 */
static void cluster_loop(struct crp_cluster *c, bool beats)
{
	struct timespec ts;

	crp_cluster_thread_mark(true);
	pthread_mutex_lock(&c->mu);
	while (!c->stop) {
		uint64_t next = crp_now_ns() + c->beat_ns;

		pthread_mutex_unlock(&c->mu);
		/* While the slot is being freed: no beat, nobody to watch for. */
		if (!atomic_load(&c->leaving)) {
			if (beats)
				tick_beat(c);
			else if (!atomic_load(&c->fenced))
				watch(c);
		}
		pthread_mutex_lock(&c->mu);
		ts.tv_sec = (time_t)(next / 1000000000ull);
		ts.tv_nsec = (long)(next % 1000000000ull);
		while (!c->stop && crp_now_ns() < next)
			pthread_cond_timedwait(&c->cv, &c->mu, &ts);
	}
	pthread_mutex_unlock(&c->mu);
}

static void *heartbeat_main(void *arg)
{
	cluster_loop(arg, true);
	return NULL;
}

static void *watcher_main(void *arg)
{
	cluster_loop(arg, false);
	return NULL;
}

/* The recovery thread: recovers the slots the watcher queued, one at a
 * time, until stopped (a recovery under way is finished first). */
static void *recovery_main(void *arg)
{
	struct crp_cluster *c = arg;
	int n = (int)c->m->sb.max_hosts;

	pthread_mutex_lock(&c->mu);
	while (!c->stop && !c->rec_stop) {
		int i;

		for (i = 0; i < n && c->rec_state[i] != REC_PENDING; i++)
			;
		if (i == n) {
			pthread_cond_wait(&c->rec_cv, &c->mu);
			continue;
		}
		struct crp_slot seen = c->rec_seen[i];

		c->rec_state[i] = REC_RUNNING;
		pthread_mutex_unlock(&c->mu);
		if (!atomic_load(&c->fenced))
			recover_one(c, i, &seen);
		atomic_fetch_add(&c->rec_epoch, 1);
		pthread_mutex_lock(&c->mu);
		c->rec_state[i] = REC_IDLE;
	}
	pthread_mutex_unlock(&c->mu);
	return NULL;
}

static void stop_threads(struct crp_cluster *c)
{
	pthread_mutex_lock(&c->mu);
	c->stop = true;
	pthread_cond_broadcast(&c->cv);
	pthread_cond_broadcast(&c->rec_cv);
	pthread_mutex_unlock(&c->mu);
	if (c->running)
		pthread_join(c->thread, NULL);
	if (c->watch_running)
		pthread_join(c->watch_thread, NULL);
	if (c->rec_running)
		pthread_join(c->rec_thread, NULL);
	c->running = c->watch_running = c->rec_running = false;
}

/*
 * crp_meta_shutdown calls this under the metadata lock just before it
 * frees our slot: no beat may land after the FREE (it would make the slot
 * active again), and none is needed, as no survivor marks a slot while we
 * hold the lock.  Until then the heartbeat went on, so that a close that
 * waits long for the lock is not taken for a dead host.
 */
static void slot_freeing(void *ctx)
{
	struct crp_cluster *c = ctx;

	atomic_store(&c->leaving, true);
	pthread_mutex_lock(&c->lease_mu); /* a beat under way lands first */
	c->beats_off = true;
	pthread_mutex_unlock(&c->lease_mu);
}

static void cluster_free(struct crp_cluster *c)
{
	free(c->seen_counter);
	free(c->seen_state);
	free(c->seen_ns);
	free(c->seen_valid);
	free(c->watch_slots);
	free(c->watch_got);
	free(c->rec_state);
	free(c->rec_seen);
	pthread_cond_destroy(&c->rec_cv);
	pthread_cond_destroy(&c->cv);
	pthread_mutex_destroy(&c->mu);
	pthread_mutex_destroy(&c->lease_mu);
	pthread_mutex_destroy(&c->fence_mu);
	free(c);
}

/*
 * Claim a slot under the metadata lock: our own name must not be taken
 * (a racing mount of the same name may have claimed it since the watch),
 * and a free slot that last belonged to us is preferred.
 */
static int claim(struct crp_cluster *c, char *err, size_t errlen)
{
	struct crp_meta *m = c->m;
	int n = (int)m->sb.max_hosts, pick = -1, peers = 0, r, e;
	struct crp_slot chosen = { 0 }, *all = calloc((size_t)n, sizeof(*all));
	bool *got = calloc((size_t)n, sizeof(*got));

	if (!all || !got) {
		free(all);
		free(got);
		snprintf(err, errlen, "out of memory claiming a host slot");
		return -ENOMEM;
	}

	r = crp_array_meta_lock(m->a);
	if (r < 0) {
		snprintf(err, errlen, "host %s: cannot take the metadata lock to claim a slot: %s",
			 m->host, crp_strerror(r));
		free(all);
		free(got);
		return r;
	}
	r = crp_cluster_slots_read(c, 0, n, crp_now_ns() + c->dead_ns, all, got);
	for (int i = 0; i < n && r == 0; i++)
		if (!got[i])
			r = -CRP_ECORRUPT;
	if (r < 0) {
		snprintf(err, errlen, "the host slots cannot be read on any member: %s",
			 crp_strerror(r));
		goto out;
	}
	for (int i = 0; i < n; i++) {
		struct crp_slot s = all[i];

		peers += s.state == CRP_SLOT_ACTIVE;
		if (s.state != CRP_SLOT_FREE && !strcmp(s.host, m->host)) {
			snprintf(err, errlen,
				 "host %s is already mounted (slot %d, %s); a second mount under the "
				 "same host name is refused: unmount it first or give another host=",
				 m->host, i, s.state == CRP_SLOT_ACTIVE ? "alive" : "being recovered");
			r = -EBUSY;
			goto out;
		}
		if (s.state == CRP_SLOT_FREE &&
		    (pick < 0 || (!strcmp(s.host, m->host) && strcmp(chosen.host, m->host)))) {
			pick = i;
			chosen = s;
		}
	}
	if (pick < 0) {
		snprintf(err, errlen, "all %u host slots are taken by live hosts; mkfs.crpfs -n sets "
			 "how many hosts", m->sb.max_hosts);
		r = -EBUSY;
		goto out;
	}
	chosen.slot = (uint32_t)pick;
	chosen.state = CRP_SLOT_ACTIVE;
	chosen.heartbeat++;
	chosen.heartbeat_ns = crp_wall_ns();
	chosen.mount_ns = chosen.heartbeat_ns;
	chosen.pr_key = crp_array_pr_key(m->a);
	snprintf(chosen.host, sizeof(chosen.host), "%s", m->host);
	{
		uint64_t t0 = crp_now_ns();

		r = crp_cluster_slot_write(c, &chosen, t0 + c->dead_ns / 2);
		if (r == 0) {
			atomic_store(&c->lease_ok_ns, t0);
			crp_array_set_lease(m->a, t0 + c->lease_ns);
		}
	}
	if (r < 0)
		snprintf(err, errlen, "cannot write host slot %d: %s", pick, crp_strerror(r));
out:
	free(all);
	free(got);
	e = crp_array_meta_unlock(m->a);
	if (r == 0 && e < 0) {
		snprintf(err, errlen, "the metadata lock was broken while claiming slot %d: %s", pick,
			 crp_strerror(e));
		r = e;
	}
	if (r == 0) {
		/* The hosts alive now count from the start, not from our first
		 * watch: this host keeps no group commit while they live, and
		 * trusts no "no such name" read without the lock (fs ops.c). */
		crp_array_set_peers(m->a, peers);
		c->slot = pick;
		c->mine = chosen;
		r = crp_meta_slot_adopt(m, pick, &chosen);
		if (r < 0)
			snprintf(err, errlen, "cannot start host slot %d: %s", pick, crp_strerror(r));
	}
	return r;
}

/*
 * Watch every slot for up to the dead timeout (less once every taken slot
 * moved), in rounds of one read per member, retrying members reserved by
 * other hosts.  @slots[i] is the last copy read, @moved[i] whether its
 * counter or state changed between reads, @read[i] whether it was read at
 * all (a slot never read is judged neither alive nor dead).
 */
static int watch_slots(struct crp_cluster *c, struct crp_slot *slots, bool *moved, bool *read)
{
	int n = (int)c->m->sb.max_hosts, r, ok = 0;
	uint64_t start = crp_now_ns();

	memset(moved, 0, (size_t)n * sizeof(*moved));
	memset(read, 0, (size_t)n * sizeof(*read));
	for (;;) {
		bool waiting = false;

		r = crp_cluster_slots_read(c, 0, n, crp_now_ns() + c->beat_ns / 2, c->watch_slots,
					   c->watch_got);
		if (r == 0)
			ok++;
		for (int i = 0; r == 0 && i < n; i++) {
			struct crp_slot *s = &c->watch_slots[i];

			if (!c->watch_got[i])
				continue;
			if (read[i] && (s->heartbeat != slots[i].heartbeat ||
					s->state != slots[i].state))
				moved[i] = true;
			slots[i] = *s;
			read[i] = true;
		}
		for (int i = 0; i < n; i++)
			waiting |= !read[i] || (slots[i].state != CRP_SLOT_FREE && !moved[i]);
		if (!waiting || crp_now_ns() - start >= c->dead_ns)
			break;
		crp_sleep_ns(CRP_MIN(c->dead_ns / 10, 100000000ull));
	}
	/* A recovery whose recoverer is beating is alive (see recoverer_alive). */
	for (int i = 0; i < n; i++) {
		if (!read[i] || moved[i] || slots[i].state != CRP_SLOT_RECOVERING)
			continue;
		for (int j = 0; j < n; j++)
			if (j != i && read[j] && moved[j] && slots[j].state == CRP_SLOT_ACTIVE &&
			    !strcmp(slots[j].host, slots[i].recoverer))
				moved[i] = true;
	}
	return ok ? 0 : r;
}

/* Watch the slots for the dead timeout; recover every taken slot that did
 * not move; refuse when our own name is alive. */
static int recover_dead(struct crp_cluster *c, char *err, size_t errlen)
{
	struct crp_meta *m = c->m;
	int n = (int)m->sb.max_hosts, r = -ENOMEM;
	struct crp_slot *slots = calloc((size_t)n, sizeof(*slots));
	bool *moved = calloc((size_t)n, sizeof(*moved));
	bool *read = calloc((size_t)n, sizeof(*read));

	if (!slots || !moved || !read)
		goto out;
	r = watch_slots(c, slots, moved, read);
	if (r < 0) {
		snprintf(err, errlen, "cannot read the host slots: %s", crp_strerror(r));
		goto out;
	}
	/* Every dead host's registration goes first: the metadata lock the
	 * first recovery waits for may be held by any of them (pr mode). */
	for (int i = 0; i < n; i++)
		if (read[i] && slots[i].state != CRP_SLOT_FREE && !moved[i] &&
		    (!c->o.no_recovery || !strcmp(slots[i].host, m->host)))
			crp_cluster_preempt_dead(c, i, &slots[i]);
	for (int i = 0; i < n; i++) {
		if (!read[i] || slots[i].state == CRP_SLOT_FREE)
			continue;
		if (moved[i]) {
			if (slots[i].state == CRP_SLOT_ACTIVE && !strcmp(slots[i].host, m->host)) {
				snprintf(err, errlen,
					 "host %s is already mounted and alive (slot %d, heartbeat %llu "
					 "moving); a second mount under the same host name is refused: "
					 "unmount it first or give another host=", m->host, i,
					 (unsigned long long)slots[i].heartbeat);
				r = -EBUSY;
				goto out;
			}
			continue;
		}
		if (c->o.no_recovery && strcmp(slots[i].host, m->host))
			continue; /* left to the mounted hosts: only our own name's is ours */
		crp_warn("host %s (slot %d) did not beat for %llu ms: recovering it before mounting",
			 slots[i].host, i, (unsigned long long)(c->dead_ns / 1000000));
		r = crp_cluster_recover(c, i, &slots[i]);
		if (r < 0) {
			snprintf(err, errlen, "cannot recover dead host %s (slot %d): %s",
				 slots[i].host, i, crp_strerror(r));
			goto out;
		}
	}
	r = 0;
out:
	free(slots);
	free(moved);
	free(read);
	return r;
}

int crp_cluster_join(struct crp_meta *m, const struct crp_cluster_opts *opts,
		     struct crp_cluster **out, char *err, size_t errlen)
{
	struct crp_cluster *c;
	pthread_condattr_t ca;
	size_t n = m->sb.max_hosts;
	int r;

	*out = NULL;
	if (m->ro || m->slot >= 0) {
		snprintf(err, errlen, "join needs a read-write metadata open without a slot");
		return -EINVAL;
	}
	c = calloc(1, sizeof(*c));
	if (!c)
		return -ENOMEM;
	c->m = m;
	c->o = *opts;
	c->slot = -1;
	c->beat_ns = (uint64_t)(opts->heartbeat_ms ? opts->heartbeat_ms : CRP_DEFAULT_HEARTBEAT_MS) *
		     1000000ull;
	c->dead_ns = (uint64_t)(opts->dead_timeout_ms ? opts->dead_timeout_ms :
				CRP_DEFAULT_DEAD_TIMEOUT_MS) * 1000000ull;
	if (c->dead_ns < 2 * c->beat_ns) {
		snprintf(err, errlen, "dead timeout %llu ms must be at least two heartbeats (%llu ms)",
			 (unsigned long long)(c->dead_ns / 1000000),
			 (unsigned long long)(c->beat_ns / 1000000));
		free(c);
		return -EINVAL;
	}
	c->lease_ns = c->dead_ns / 2;
	pthread_mutex_init(&c->lease_mu, NULL);
	pthread_mutex_init(&c->fence_mu, NULL);
	pthread_mutex_init(&c->mu, NULL);
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&c->cv, &ca);
	pthread_condattr_destroy(&ca);
	pthread_cond_init(&c->rec_cv, NULL);
	c->seen_counter = calloc(n, sizeof(*c->seen_counter));
	c->seen_state = calloc(n, sizeof(*c->seen_state));
	c->seen_ns = calloc(n, sizeof(*c->seen_ns));
	c->seen_valid = calloc(n, sizeof(*c->seen_valid));
	c->watch_slots = calloc(n, sizeof(*c->watch_slots));
	c->watch_got = calloc(n, sizeof(*c->watch_got));
	c->rec_state = calloc(n, sizeof(*c->rec_state));
	c->rec_seen = calloc(n, sizeof(*c->rec_seen));
	if (!c->seen_counter || !c->seen_state || !c->seen_ns || !c->seen_valid ||
	    !c->watch_slots || !c->watch_got || !c->rec_state || !c->rec_seen) {
		r = -ENOMEM;
		goto out;
	}
	crp_cluster_thread_mark(true);
	r = recover_dead(c, err, errlen);
	if (r == 0)
		r = claim(c, err, errlen);
	crp_cluster_thread_mark(false);
	if (r < 0)
		goto out;
	crp_array_set_gate(m->a, gate, c);
	m->slot_free_hook = slot_freeing;
	m->slot_free_ctx = c;
	if (!opts->no_thread) {
		/* The recovery thread first: the watcher queues to it. */
		r = -pthread_create(&c->rec_thread, NULL, recovery_main, c);
		if (r == 0) {
			c->rec_running = true;
			r = -pthread_create(&c->thread, NULL, heartbeat_main, c);
		}
		if (r == 0) {
			c->running = true;
			r = -pthread_create(&c->watch_thread, NULL, watcher_main, c);
		}
		if (r == 0)
			c->watch_running = true;
		/* A batch another host lost its lock with is waited for
		 * while that host beats (coherence.c), which needs beats. */
		if (r == 0)
			m->held_wait_ns = c->dead_ns;
		if (r < 0) {
			stop_threads(c);
			crp_array_set_gate(m->a, NULL, NULL);
			m->slot_free_hook = NULL;
			m->slot_free_ctx = NULL;
			snprintf(err, errlen, "cannot start the heartbeat, watcher and recovery threads: %s",
				 crp_strerror(r));
			goto out;
		}
	}
	crp_info("host %s joined in slot %d (heartbeat %llu ms, dead timeout %llu ms)", m->host,
		 c->slot, (unsigned long long)(c->beat_ns / 1000000),
		 (unsigned long long)(c->dead_ns / 1000000));
	*out = c;
	return 0;
out:
	cluster_free(c);
	return r;
}

void crp_cluster_quiesce(struct crp_cluster *c)
{
	if (!c)
		return;
	pthread_mutex_lock(&c->mu);
	c->rec_stop = true;
	pthread_cond_broadcast(&c->rec_cv);
	pthread_mutex_unlock(&c->mu);
	if (c->rec_running)
		pthread_join(c->rec_thread, NULL);
	c->rec_running = false;
}

void crp_cluster_leave(struct crp_cluster *c)
{
	if (!c)
		return;
	crp_cluster_quiesce(c);
	stop_threads(c);
	c->m->slot_free_hook = NULL;
	c->m->slot_free_ctx = NULL;
	/* A last check: a host that was hung until now must not free a slot
	 * that is no longer its own (crp_meta_shutdown checks again, locked).
	 * Not after it freed the slot: that slot is no longer ours. */
	if (!atomic_load(&c->fenced) && !atomic_load(&c->leaving))
		crp_cluster_check(c);
	crp_array_set_gate(c->m->a, NULL, NULL);
	if (atomic_load(&c->fenced))
		crp_array_fence(c->m->a);
	cluster_free(c);
}
