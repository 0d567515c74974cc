/*
 * Recovery of a dead host, exactly once.
 *
 * Slot states and who writes them (every write bumps the counter):
 *
 *   FREE --claim (metadata lock)--> ACTIVE --clean close (metadata lock)--> FREE
 *   ACTIVE (counter still for the dead timeout)
 *        --mark (metadata lock, counter unchanged)--> RECOVERING by R
 *   RECOVERING by R --R's steps--> RECOVERING (counter bumped per step)
 *   RECOVERING by R --done (metadata lock, still R's)--> FREE, recoveries + 1
 *   RECOVERING (counter still for the dead timeout: R died) --mark--> RECOVERING by R'
 *
 * The mark is the exactly-once point: it is written under the metadata
 * lock only if the slot still shows the state and counter the watcher saw
 * stop, so of several survivors that notice together one wins and the
 * others find the counter moved.  Lock breaking runs after the mark, by the
 * winner only, except when the dead host itself holds the metadata lock
 * (hung while holding it): then the lock cannot be had within the dead
 * timeout, and the survivor breaks the dead host's locks first (in pr mode
 * a PREEMPT of its key; in reserve mode a LU reset), which is harmless to
 * repeat.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "crpfs/err.h"
#include "crpfs/log.h"
#include "crpfs/member.h"
#include "crpfs/scsi.h"
#include "crpfs/util.h"
#include "cluster_i.h"

static bool same(const struct crp_slot *a, const struct crp_slot *b)
{
	return a->state == b->state && a->heartbeat == b->heartbeat && !strcmp(a->host, b->host);
}

/* Write a step of our recovery of @s (counter bumped, so that other
 * survivors see it move).  Refuses if the slot is no longer ours to recover. */
static int step(struct crp_cluster *c, struct crp_slot *s)
{
	struct crp_slot now;
	int r = crp_cluster_slot_read(c, (int)s->slot, crp_now_ns() + c->dead_ns / 2, &now);

	if (r < 0)
		return r;
	if (now.state != CRP_SLOT_RECOVERING || strcmp(now.recoverer, c->m->host) ||
	    now.heartbeat != s->heartbeat)
		return -EAGAIN; /* taken over: ours stalled */
	s->heartbeat++;
	s->recovered_ns = crp_wall_ns();
	return crp_cluster_slot_write(c, s, crp_now_ns() + c->dead_ns / 2);
}

/*
 * pr mode: PREEMPT the dead host's registration on every member before we
 * wait for any lock.  Its reservations (the metadata lock on member 0,
 * stripe locks) stay until someone preempts them, and our own threads may
 * already be waiting for them while they hold this host's side of the
 * locks (the array's local member ownership, its meta_mu): waiting for the
 * metadata lock first would wait behind them for ever.  So the PREEMPT is
 * sent straight to each member, outside the array's local locks.  Racing
 * survivors all do it (harmless: the later ones find the key gone and get
 * RESERVATION CONFLICT).  A reservation the dead host held passes to us:
 * a member no local transaction owns is released at once; on the others
 * our waiting threads get it (a RESERVE by the holder succeeds) and release
 * it as usual.  Only when the slot, read again, still shows what the
 * watcher saw stop.
 */
void crp_cluster_preempt_dead(struct crp_cluster *c, int slot, const struct crp_slot *seen)
{
	struct crp_array *a = c->m->a;
	struct crp_slot s;

	if (crp_array_lock_mode(a) != CRP_LOCK_PR || !seen->pr_key ||
	    seen->pr_key == crp_array_pr_key(a))
		return;
	if (crp_cluster_slot_read(c, slot, crp_now_ns() + c->beat_ns, &s) < 0 || !same(&s, seen))
		return;
	if (crp_array_preempt(a, seen->pr_key) > 0)
		crp_info("host %s (slot %d): its registration preempted on the members", seen->host,
			 slot);
}

/* Mark @slot RECOVERING by us if it still shows @seen; 1 if marked. */
static int mark(struct crp_cluster *c, int slot, const struct crp_slot *seen, struct crp_slot *out)
{
	struct crp_array *a = c->m->a;
	struct crp_slot s;
	int r, e;

	r = crp_array_meta_lock_until(a, crp_now_ns() + c->dead_ns);
	if (r == -ETIMEDOUT || r == -EBUSY) {
		/* The lock is held longer than a dead timeout: by the dead host? */
		r = crp_cluster_slot_read(c, slot, crp_now_ns() + c->beat_ns, &s);
		if (r < 0)
			return r;
		if (!same(&s, seen))
			return 0;
		crp_warn("the metadata lock is held past the dead timeout: breaking the locks of "
			 "dead host %s (slot %d) to take it", seen->host, slot);
		crp_array_break_locks(a, seen->pr_key, c->dead_ns / 4);
		r = crp_array_meta_lock(a);
	}
	if (r < 0)
		return r;
	r = crp_cluster_slot_read(c, slot, crp_now_ns() + c->beat_ns, &s);
	if (r == 0 && same(&s, seen)) {
		s.state = CRP_SLOT_RECOVERING;
		snprintf(s.recoverer, sizeof(s.recoverer), "%s", c->m->host);
		s.heartbeat++;
		s.recovered_ns = crp_wall_ns();
		r = crp_cluster_slot_write(c, &s, crp_now_ns() + c->beat_ns);
		if (r == 0)
			r = 1;
		*out = s;
	}
	e = crp_array_meta_unlock(a);
	if (r == 1 && e < 0)
		r = e; /* our lock was broken: the mark may have raced; the dead timeout retries */
	return r;
}

/* Free the slot we recovered, under the metadata lock, if still ours. */
static int finish(struct crp_cluster *c, struct crp_slot *s)
{
	struct crp_array *a = c->m->a;
	struct crp_slot now;
	int r, e;

	r = crp_array_meta_lock(a);
	if (r < 0)
		return r;
	r = crp_cluster_slot_read(c, (int)s->slot, crp_now_ns() + c->beat_ns, &now);
	if (r == 0 && (now.state != CRP_SLOT_RECOVERING || strcmp(now.recoverer, c->m->host) ||
		       now.heartbeat != s->heartbeat))
		r = -EAGAIN;
	if (r == 0) {
		s->state = CRP_SLOT_FREE;
		s->heartbeat++;
		s->recoveries++;
		s->recovered_ns = crp_wall_ns();
		r = crp_cluster_slot_write(c, s, crp_now_ns() + c->beat_ns);
	}
	e = crp_array_meta_unlock(a);
	return r ? r : e;
}

/* Replay the journal and resync the intent log of @slot, under the fs big
 * lock and the metadata lock. */
static int redo(struct crp_cluster *c, int slot, int *replayed, uint64_t *resynced)
{
	struct crp_meta *m = c->m;
	int r, e;

	if (c->o.meta_mu)
		pthread_mutex_lock(c->o.meta_mu);
	/* Operations of ours kept for a group commit hold the lock: they go
	 * first (a failure is theirs to report, in the log). */
	(void)crp_meta_batch_flush(m);
	r = crp_array_meta_lock(m->a);
	if (r == 0) {
		r = crp_meta_replay(m, slot);
		if (r >= 0) {
			*replayed = r;
			r = crp_meta_intent_resync(m, slot, resynced);
		}
		/* The dead host holds nothing open any more: its orphans may go. */
		if (r >= 0)
			r = crp_meta_open_clear(m, slot);
		e = crp_array_meta_unlock(m->a);
		r = r < 0 ? r : e;
	}
	if (r == 0)
		m->recovered |= 1ull << slot;
	if (c->o.meta_mu)
		pthread_mutex_unlock(c->o.meta_mu);
	return r;
}

int crp_cluster_recover(struct crp_cluster *c, int slot, const struct crp_slot *seen)
{
	struct crp_slot s;
	uint64_t resynced = 0;
	int replayed = 0, r;

	if (slot == c->slot || seen->state == CRP_SLOT_FREE)
		return 0;
	/* A RECOVERING slot's pr_key is still its dead host's. */
	crp_cluster_preempt_dead(c, slot, seen);
	r = mark(c, slot, seen, &s);
	if (r <= 0) {
		if (r == 0)
			crp_info("host %s (slot %d) is recovered by another host or came back",
				 seen->host, slot);
		return r;
	}
	crp_warn("host %s (slot %d) is dead: %s recovers it", s.host, slot, c->m->host);
	r = crp_array_break_locks(c->m->a, s.pr_key, c->dead_ns);
	if (r < 0)
		crp_warn("breaking the locks of dead host %s: %s (continuing)", s.host,
			 crp_strerror(r));
	r = step(c, &s);
	if (r == 0)
		r = redo(c, slot, &replayed, &resynced);
	if (r == 0)
		r = step(c, &s);
	if (r == 0 && c->o.free_orphans) {
		r = c->o.free_orphans(c->o.ctx, slot);
		if (r == 0)
			r = step(c, &s);
	}
	if (r == 0)
		r = finish(c, &s);
	if (r < 0)
		return r;
	atomic_fetch_add(&c->recoveries, 1);
	crp_warn("recovered dead host %s (slot %d) by %s: locks broken, %d journal transactions "
		 "replayed, %llu stripes resynced, orphans %s; slot freed (recovery %llu of this slot)",
		 s.host, slot, c->m->host, replayed, (unsigned long long)resynced,
		 c->o.free_orphans ? "freed" : "left to the mount", (unsigned long long)s.recoveries);
	return 1;
}
