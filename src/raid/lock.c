/*
 * Member locks: the local ownership that serializes this host's own
 * transactions on a member, and the SCSI reservation that serializes hosts.
 *
 *   reserve mode   RESERVE(6) / RELEASE(6).  A whole-LU lock, reads
 *                  included; freed when the nexus dies, broken by LU reset.
 *   pr mode        PERSISTENT RESERVE OUT RESERVE / RELEASE, type Write
 *                  Exclusive, with this host's registered key; others keep
 *                  reading; a dead host is fenced by PREEMPT of its key.
 *
 * Caching: while this host holds the metadata lock, every reservation a
 * stripe transaction takes stays until the metadata lock goes
 * (crp_array_meta_unlock releases them): no other host writes meanwhile,
 * and a metadata transaction writes several stripes on the same members.
 * Otherwise a transaction that finishes with a member keeps the reservation
 * only if another local transaction already waits for that member and the
 * reservation has been held for less than max_hold_us; otherwise its
 * RELEASE is chained on the WRITE.  A reservation given up because it hit
 * that bound is not taken again for a quarter of it: without the pause the
 * next local transaction's RESERVE would follow the RELEASE within
 * microseconds, and a host streaming writes would hold the members all
 * but continuously, starving the other hosts' stripe writes and
 * heartbeats (which then take it for dead).
 */
#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "crpfs/err.h"
#include "crpfs/log.h"
#include "crpfs/util.h"
#include "array_i.h"

void crp_mlock_init(struct crp_mlock *l)
{
	memset(l, 0, sizeof(*l));
	pthread_mutex_init(&l->mu, NULL);
	pthread_cond_init(&l->cv, NULL);
}

void crp_mlock_destroy(struct crp_mlock *l)
{
	pthread_cond_destroy(&l->cv);
	pthread_mutex_destroy(&l->mu);
}

void crp_mlock_take_local(struct crp_array *a, const int *mem, int n)
{
	for (int k = 0; k < n; k++) {
		struct crp_mlock *l = &a->lk[mem[k]];

		pthread_mutex_lock(&l->mu);
		while (l->busy) {
			l->waiters++;
			pthread_cond_wait(&l->cv, &l->mu);
			l->waiters--;
		}
		l->busy = true;
		pthread_mutex_unlock(&l->mu);
	}
}

bool crp_mlock_try_local(struct crp_array *a, int i)
{
	struct crp_mlock *l = &a->lk[i];
	bool got;

	pthread_mutex_lock(&l->mu);
	got = !l->busy;
	l->busy = true;
	pthread_mutex_unlock(&l->mu);
	return got;
}

void crp_mlock_give_local(struct crp_array *a, const int *mem, int n)
{
	for (int k = n - 1; k >= 0; k--) {
		struct crp_mlock *l = &a->lk[mem[k]];
		bool idle;

		/*
		 * A reservation kept for local work that then did not use it
		 * (it failed before its LOCK+READ: lease, fencing, a failed
		 * member) must not outlive that interest: in reserve mode it
		 * would lock every other host out of the member, reads
		 * included, for as long as this host stays idle.
		 */
		if (l->reserved && !l->pinned && !atomic_load(&a->meta_keep)) {
			pthread_mutex_lock(&l->mu);
			idle = l->waiters == 0 && l->queued == 0;
			pthread_mutex_unlock(&l->mu);
			if (idle)
				crp_lock_release_now(a, &mem[k], 1);
		}
		pthread_mutex_lock(&l->mu);
		l->busy = false;
		pthread_cond_signal(&l->cv);
		pthread_mutex_unlock(&l->mu);
	}
}

void crp_lock_release_idle(struct crp_array *a, const int *mem, int n)
{
	/* Giving back the local ownership releases what no one wants. */
	crp_mlock_take_local(a, mem, n);
	crp_mlock_give_local(a, mem, n);
}

void crp_mlock_queue(struct crp_array *a, const int *mem, int n, int delta)
{
	for (int k = 0; k < n; k++) {
		struct crp_mlock *l = &a->lk[mem[k]];

		pthread_mutex_lock(&l->mu);
		l->queued += delta;
		pthread_mutex_unlock(&l->mu);
	}
}

void crp_lock_cmd_reserve(struct crp_array *a, struct crp_cmd *c, uint8_t param[24])
{
	crp_cmd_init(c);
	if (a->opts.lock_mode == CRP_LOCK_PR)
		crp_cdb_pr_out(c, CRP_PROUT_RESERVE, CRP_PR_TYPE_WRITE_EXCLUSIVE, a->pr_key, 0, param);
	else
		crp_cdb_reserve6(c);
}

void crp_lock_cmd_release(struct crp_array *a, struct crp_cmd *c, uint8_t param[24])
{
	crp_cmd_init(c);
	if (a->opts.lock_mode == CRP_LOCK_PR)
		crp_cdb_pr_out(c, CRP_PROUT_RELEASE, CRP_PR_TYPE_WRITE_EXCLUSIVE, a->pr_key, 0, param);
	else
		crp_cdb_release6(c);
}

void crp_lock_taken(struct crp_array *a, int i)
{
	a->lk[i].reserved = true;
	a->lk[i].reserved_since_ns = crp_now_ns();
	atomic_fetch_add(&a->ctr.lock_acquires, 1);
}

static void note_hold(struct crp_array *a, uint64_t since)
{
	uint64_t held = crp_now_ns() - since;
	uint_fast64_t max = atomic_load(&a->ctr.lock_hold_max_ns);

	atomic_fetch_add(&a->ctr.lock_hold_ns, held);
	atomic_fetch_add(&a->ctr.lock_releases, 1);
	while (held > max && !atomic_compare_exchange_weak(&a->ctr.lock_hold_max_ns, &max, held))
		;
}

/* A heap RELEASE that outlives the transaction that issued it. */
struct release_cmd {
	struct crp_cmd cmd;
	uint8_t param[24];
	struct crp_array *a;
	int member;
	uint64_t since; /* when the reservation was taken */
};

static void release_done(struct crp_cmd *cmd)
{
	struct release_cmd *rc = cmd->priv;

	if (cmd->result == 0)
		note_hold(rc->a, rc->since); /* held until the RELEASE completed */
	else if (cmd->result != -ECANCELED && cmd->result != -CRP_EMEMBER)
		crp_warn("member %s: releasing the reservation failed: %s",
			 crp_member_spec(rc->a->m[rc->member]), crp_strerror(cmd->result));
	free(rc);
}

struct crp_cmd *crp_lock_release_cmd(struct crp_array *a, int i)
{
	struct release_cmd *rc = calloc(1, sizeof(*rc));

	if (!rc)
		return NULL;
	rc->a = a;
	rc->member = i;
	crp_lock_cmd_release(a, &rc->cmd, rc->param);
	rc->cmd.done = release_done;
	rc->cmd.priv = rc;
	rc->since = a->lk[i].reserved_since_ns;
	a->lk[i].reserved = false;
	return &rc->cmd;
}

void crp_lock_release_now(struct crp_array *a, const int *mem, int n)
{
	struct crp_cmd cmds[CRP_MAX_MEMBERS];
	uint8_t params[CRP_MAX_MEMBERS][24];
	uint64_t since[CRP_MAX_MEMBERS];
	struct crp_batch b;
	int sent = 0;

	crp_batch_init(&b);
	for (int k = 0; k < n; k++) {
		int i = mem[k];
		struct crp_cmd *c = &cmds[sent];

		if (!a->lk[i].reserved || a->lk[i].pinned)
			continue;
		since[sent] = a->lk[i].reserved_since_ns;
		a->lk[i].reserved = false;
		crp_lock_cmd_release(a, c, params[sent]);
		crp_batch_add(&b, c);
		crp_member_submit(a->m[i], &c, 1);
		sent++;
	}
	crp_batch_wait(&b);
	crp_batch_destroy(&b);
	for (int k = 0; k < sent; k++)
		if (cmds[k].result == 0)
			note_hold(a, since[k]);
}

bool crp_lock_keep(struct crp_array *a, int i)
{
	struct crp_mlock *l = &a->lk[i];
	bool waiting;

	if (l->pinned)
		return true;
	if (a->opts.debug & (CRP_DEBUG_NO_LOCKS | CRP_DEBUG_EARLY_RELEASE))
		return false;
	/* While this host holds the metadata lock, no other host writes
	 * anything but after it: the stripes a transaction (or a group
	 * commit) writes keep their members reserved until the metadata lock
	 * goes, which releases them (crp_array_meta_unlock).  A create wrote
	 * five or six stripes and took about nine reservations. */
	if (atomic_load(&a->meta_keep))
		return true;
	if (!a->max_hold_ns)
		return false;
	pthread_mutex_lock(&l->mu);
	waiting = l->waiters > 0 || l->queued > 0;
	pthread_mutex_unlock(&l->mu);
	if (!waiting)
		return false;
	if (crp_now_ns() - l->reserved_since_ns < a->max_hold_ns)
		return true;
	l->yield_until_ns = crp_now_ns() + a->max_hold_ns / 4;
	return false;
}

void crp_lock_yield(struct crp_array *a, const int *mem, int n)
{
	uint64_t until = 0, now;

	for (int k = 0; k < n; k++)
		if (!a->lk[mem[k]].reserved)
			until = CRP_MAX(until, a->lk[mem[k]].yield_until_ns);
	now = crp_now_ns();
	if (until > now)
		crp_sleep_ns(until - now);
}

int crp_lock_check_events(struct crp_array *a, int i)
{
	unsigned ev = crp_member_take_events(a->m[i]);

	/* A member of the held metadata lock: the lock itself was lost,
	 * whoever takes the event.  A stripe transaction that took it and
	 * reserved the member again on its new nexus would hide the loss from
	 * the unlock, while another host may have taken the lock and written
	 * the metadata meanwhile. */
	if ((ev & (CRP_EV_RESET | CRP_EV_RES_PREEMPTED | CRP_EV_NEXUS_LOST | CRP_EV_REG_PREEMPTED)) &&
	    a->lk[i].pinned)
		atomic_store(&a->meta_lost, true);
	if (ev & (CRP_EV_NEXUS_LOST | CRP_EV_NEW_NEXUS))
		crp_array_pr_reregister(a, i);
	if (ev & CRP_EV_REG_PREEMPTED) {
		atomic_store(&a->fenced, true);
		return -CRP_EFENCED;
	}
	if (ev & (CRP_EV_RESET | CRP_EV_RES_PREEMPTED | CRP_EV_NEXUS_LOST))
		return -CRP_ELOCKLOST;
	return 0;
}

void crp_lock_backoff(struct crp_array *a, unsigned attempt)
{
	/* 100 us doubling to 25.6 ms, times a random factor in [0.5, 1.5). */
	uint64_t base = 100000ull << CRP_MIN(attempt, 8u);
	uint64_t ns = base / 2 + crp_random() % base;

	atomic_fetch_add(&a->ctr.lock_backoffs, 1);
	crp_sleep_ns(ns);
}

uint64_t crp_lock_deadline_ns(const struct crp_array *a)
{
	/* Generous: other hosts may hold members for many transactions. */
	return crp_now_ns() + (uint64_t)a->opts.timeout_ms * 12ull * 1000000ull;
}

/*
 * The metadata lock.  A metadata transaction must see and change the
 * metadata alone, across many stripe transactions, so it holds the
 * reservations of the lock members from start to end: pinned, so that no
 * stripe transaction releases them, and shared by this host's own stripe
 * transactions (cache hits).  The lock members are the writable ones among
 * positions 0 .. tolerance (array.h says why that keeps two hosts apart
 * while a member is failed in one's view and not yet in the other's).
 * Other hosts' writes to those members wait meanwhile (in reserve mode
 * their reads too), so a holder keeps it for a few round trips only.
 */
/* Take the local gate of the metadata lock by @deadline (crp_now_ns). */
static int gate_enter(struct crp_array *a, uint64_t deadline)
{
	struct timespec ts = { .tv_sec = (time_t)(deadline / 1000000000ull),
			       .tv_nsec = (long)(deadline % 1000000000ull) };
	int r = 0;

	pthread_mutex_lock(&a->meta_mu);
	while (a->meta_busy && r == 0)
		r = pthread_cond_timedwait(&a->meta_cv, &a->meta_mu, &ts);
	if (!a->meta_busy) {
		a->meta_busy = true;
		r = 0;
	}
	pthread_mutex_unlock(&a->meta_mu);
	return r == 0 ? 0 : r == ETIMEDOUT ? -ETIMEDOUT : -r;
}

static void gate_leave(struct crp_array *a)
{
	pthread_mutex_lock(&a->meta_mu);
	a->meta_busy = false;
	pthread_cond_signal(&a->meta_cv);
	pthread_mutex_unlock(&a->meta_mu);
}

void crp_array_meta_adopt(struct crp_array *a)
{
	a->meta_owner = pthread_self();
}

void crp_array_meta_step_aside(struct crp_array *a)
{
	a->meta_aside = true; /* by the holder: crp_array_meta_unlock acts on it */
}

int crp_array_peers(struct crp_array *a)
{
	return atomic_load(&a->peers);
}

int crp_array_meta_lock(struct crp_array *a)
{
	return crp_array_meta_lock_until(a, crp_lock_deadline_ns(a));
}

/* The lock members now: writable, among positions 0 .. tolerance. */
static int meta_members(struct crp_array *a, int *set)
{
	int n = 0, t = crp_array_tolerance(a);

	for (int i = 0; i <= t && i < a->n; i++)
		if (crp_array_writable(a, i))
			set[n++] = i;
	return n;
}

void crp_array_set_peers(struct crp_array *a, int n)
{
	atomic_store(&a->peers, n);
}

/* The streak of back-to-back holds after which the lock steps aside, and
 * for how long: other hosts back off up to 25.6 ms between tries, so a
 * pause of a few milliseconds every few tens lets one in soon, at a cost
 * of a tenth of a busy host's metadata rate, and only while others live. */
#define META_STREAK_NS 20000000ull
#define META_PAUSE_NS 2000000ull
/* The metadata lock's waiters back off at most 0.8 ms (x 0.5 to 1.5): a
 * holder keeps it a few milliseconds at a time (group commit beside
 * others, peer_commit) and steps aside as briefly, and a waiter that
 * slept 25 ms would miss every gap. */
#define META_MAX_ATTEMPT 3u

unsigned crp_lock_attempt_cap(struct crp_array *a, const int *set, int n)
{
	int t = crp_array_tolerance(a);

	/* Whoever needs a lock member waits for the metadata lock's holder
	 * as its waiters do. */
	for (int i = 0; i < n; i++)
		if (set[i] <= t)
			return META_MAX_ATTEMPT;
	return UINT_MAX;
}

int crp_array_meta_lock_until(struct crp_array *a, uint64_t deadline)
{
	int set[3], n, r;
	unsigned attempt = 0;
	uint64_t now;

	r = crp_array_gate_check(a, NULL);
	if (r < 0)
		return r;
	/* Another local thread may be waiting for a lock that a hung host
	 * holds: wait for it no longer than our own deadline, so that the
	 * caller (recovery) can break the hung host's locks. */
	r = gate_enter(a, deadline);
	if (r == -ETIMEDOUT)
		return -EBUSY; /* a local thread holds it (or waits for it) */
	if (r < 0)
		return r;
	now = crp_now_ns();
	if (a->meta_yield_until_ns > now) {
		crp_sleep_ns(a->meta_yield_until_ns - now);
		now = crp_now_ns();
	}
	if (now - a->meta_unlocked_ns > 1000000ull)
		a->meta_streak_ns = now; /* a gap: a new streak */
	crp_array_note_failures(a);
	n = meta_members(a, set);
	if (!n) {
		gate_leave(a);
		return -CRP_EDEGRADED;
	}
	crp_mlock_take_local(a, set, n);
	for (int k = 0; k < n; k++)
		if (crp_lock_check_events(a, set[k]))
			a->lk[set[k]].reserved = false;
	while (!(a->opts.debug & CRP_DEBUG_NO_LOCKS)) {
		struct crp_cmd c[3];
		uint8_t param[3][24];
		bool sent[3] = { false }, conflict = false;
		struct crp_batch b;

		crp_batch_init(&b);
		for (int k = 0; k < n; k++) {
			struct crp_cmd *cp = &c[k];

			if (a->lk[set[k]].reserved)
				continue;
			crp_lock_cmd_reserve(a, cp, param[k]);
			crp_batch_add(&b, cp);
			crp_member_submit(a->m[set[k]], &cp, 1);
			sent[k] = true;
		}
		crp_batch_wait(&b);
		crp_batch_destroy(&b);
		r = 0;
		for (int k = 0; k < n; k++) {
			if (!sent[k])
				continue;
			if (c[k].result == 0)
				crp_lock_taken(a, set[k]);
			else if (c[k].result == -CRP_ECONFLICT || c[k].result == -CRP_ELOCKLOST)
				conflict = true; /* lost with a session: again, on the new one */
			else if (!r)
				r = c[k].result;
		}
		if (!r && !conflict)
			break;
		/* A preempted registration conflicts for ever: fenced. */
		for (int k = 0; k < n; k++)
			if (crp_lock_check_events(a, set[k]) == -CRP_EFENCED)
				r = -CRP_EFENCED;
		if ((attempt == 1 && crp_array_pr_check(a) == -CRP_EFENCED) ||
		    atomic_load(&a->fenced))
			r = -CRP_EFENCED;
		/* Never wait holding part of the set: others take it in the
		 * same order and would wait for us. */
		crp_lock_release_now(a, set, n);
		if (r == -CRP_EMEMBER && crp_array_note_failures(a)) {
			/* A lock member failed: the set is one smaller. */
			crp_mlock_give_local(a, set, n);
			n = meta_members(a, set);
			if (!n) {
				gate_leave(a);
				return -CRP_EDEGRADED;
			}
			crp_mlock_take_local(a, set, n);
			continue;
		}
		if (r)
			break;
		atomic_fetch_add(&a->ctr.lock_conflicts, 1);
		if (crp_now_ns() > deadline) {
			r = -ETIMEDOUT;
			break;
		}
		/* Sleep without the members' local ownership, so that breaking a
		 * hung host's locks (crp_array_break_locks) is not held up. */
		crp_mlock_give_local(a, set, n);
		crp_lock_backoff(a, CRP_MIN(attempt, META_MAX_ATTEMPT));
		attempt++;
		crp_mlock_take_local(a, set, n);
	}
	if (r == 0) {
		atomic_store(&a->meta_lost, false);
		for (int k = 0; k < n; k++)
			a->lk[set[k]].pinned = true;
		memcpy(a->meta_set, set, sizeof(set));
		a->nmeta_set = n;
		a->meta_owner = pthread_self();
		atomic_store(&a->meta_keep, true);
	}
	crp_mlock_give_local(a, set, n);
	if (r < 0)
		gate_leave(a);
	return r;
}

bool crp_array_meta_held(struct crp_array *a)
{
	bool held = false;

	/* pinned changes under the member's local ownership; this is a
	 * snapshot, good for a decision that tolerates its staleness. */
	for (int k = 0; k < a->nmeta_set && !held; k++) {
		struct crp_mlock *l = &a->lk[a->meta_set[k]];

		pthread_mutex_lock(&l->mu);
		held = l->pinned;
		pthread_mutex_unlock(&l->mu);
	}
	return held;
}

bool crp_array_meta_mine(struct crp_array *a)
{
	return crp_array_meta_held(a) && pthread_equal(a->meta_owner, pthread_self());
}

/*
 * The stripe locks kept for the metadata lock's holder (crp_lock_keep),
 * released after it.  meta_keep went false first: a stripe write that
 * starts from now on releases its own; one under way finishes before its
 * member's local ownership is ours here, and its reservation is then seen.
 */
static void release_kept(struct crp_array *a, const int *set, int n)
{
	for (int i = 0; i < a->n; i++) {
		bool meta = false;

		for (int k = 0; k < n; k++)
			meta = meta || set[k] == i;
		if (meta)
			continue;
		crp_mlock_take_local(a, &i, 1);
		if (a->lk[i].reserved && !a->lk[i].pinned)
			crp_lock_release_now(a, &i, 1);
		crp_mlock_give_local(a, &i, 1);
	}
}

int crp_array_meta_unlock(struct crp_array *a)
{
	int set[3], n = a->nmeta_set, r = 0;

	memcpy(set, a->meta_set, sizeof(set));
	atomic_store(&a->meta_keep, false);
	crp_mlock_take_local(a, set, n);
	for (int k = 0; k < n; k++) {
		struct crp_mlock *l = &a->lk[set[k]];
		bool live = !(a->opts.debug & CRP_DEBUG_NO_LOCKS) && crp_array_writable(a, set[k]);
		bool lost;

		l->pinned = false;
		lost = crp_lock_check_events(a, set[k]) != 0;
		if ((lost || !l->reserved) && live && !r) {
			/* A reset or preemption took it while we held it. */
			atomic_fetch_add(&a->ctr.lock_lost, 1);
			r = -CRP_ELOCKLOST;
		}
		/*
		 * The event may predate a RESERVE that then succeeded (the
		 * notice of a reset came with the RESERVE that followed it):
		 * the unit may be ours still.  Released all the same, or
		 * nobody could take the lock until we next did; a RELEASE
		 * from a nexus that holds nothing changes nothing.
		 */
		if (lost && live)
			l->reserved = true;
	}
	/* ... or it was found lost (and maybe reserved again) meanwhile. */
	if (atomic_exchange(&a->meta_lost, false) && !r) {
		atomic_fetch_add(&a->ctr.lock_lost, 1);
		r = -CRP_ELOCKLOST;
	}
	crp_lock_release_now(a, set, n);
	a->nmeta_set = 0;
	crp_mlock_give_local(a, set, n);
	release_kept(a, set, n);
	a->meta_unlocked_ns = crp_now_ns();
	if (a->meta_aside) {
		a->meta_aside = false;
		a->meta_yield_until_ns = a->meta_unlocked_ns + META_PAUSE_NS / 2 +
					 crp_random() % META_PAUSE_NS;
		a->meta_streak_ns = a->meta_yield_until_ns;
	} else if (atomic_load(&a->peers) > 0 &&
	    a->meta_unlocked_ns - a->meta_streak_ns >= META_STREAK_NS) {
		a->meta_yield_until_ns = a->meta_unlocked_ns + META_PAUSE_NS / 2 +
					 crp_random() % META_PAUSE_NS;
		a->meta_streak_ns = a->meta_yield_until_ns;
	}
	gate_leave(a);
	return r;
}
