/*
 * Stripe transactions: the parity update protocol.
 *
 * A write to one stripe is one transaction.  W is the set of members it
 * writes (the data chunks it touches and the parity members), in ascending
 * member order.
 *
 *   LOCAL    take this host's local ownership of every member of W, in
 *            ascending order (blocking; local threads never deadlock).
 *   LOCK+READ one round trip: for every member of W, RESERVE (unless the
 *            reservation is cached) followed on the same nexus by the READ
 *            of the old data / old parity it needs.  All members in
 *            parallel.  A READ counts only if its member's RESERVE
 *            returned GOOD.  Reads of members outside W (a degraded
 *            write reads every member left) go out only once every
 *            member of W is reserved: in the same round if all of W was
 *            cached, else in a second one.  Sent beside the RESERVEs,
 *            such a read could see a chunk before another host's WRITE
 *            landed, while our RESERVE of the parity was granted after
 *            that host released it: the parity computed from it would be
 *            wrong.
 *   CONFLICT any RESERVE met RESERVATION CONFLICT: release every
 *            reservation of W this host holds, sleep a randomized, growing
 *            backoff (about a millisecond at most when W has a lock
 *            member, which a group commit holds a few milliseconds at a
 *            time), go back to LOCK+READ (bounded by the lock deadline).
 *   COMPUTE  new parity: P' = P ^ D ^ D', Q' = Q ^ g^d (D ^ D')
 *            (read-modify-write) or P, Q from the whole stripe
 *            (reconstruct-write: when every data chunk is written, so
 *            that it reads nothing outside W, plan(); or when it reads
 *            fewer chunks and those outside W cost no round trip and meet
 *            no other host's reservation, prefer_rcw()); a full-stripe
 *            write reads nothing but still takes the locks.
 *   WRITE+UNLOCK one round trip: data and parity WRITEs in parallel;
 *            each data member's RELEASE is chained on its WRITE and goes
 *            out from the WRITE's completion in the member's I/O thread;
 *            the parity members' RELEASEs go out when every WRITE of the
 *            stripe is GOOD, when the caller is answered, and are not
 *            waited for.  A member is kept instead if a local
 *            transaction is waiting for it and the hold-time bound
 *            allows.  The parity waits for the data because a degraded
 *            write reads chunks it does not lock, and in pr mode
 *            nothing else keeps those reads off a stripe another host is
 *            half way through (see the invariant).
 *   DONE     give back the local ownership.
 *
 * Degraded: when a member of the stripe is not readable (failed, or a
 * replacement being rebuilt), the transaction locks the members it writes
 * (the parity that is left among them, which every writer of the stripe
 * takes, so no other host is half way through it), reads every readable
 * one over the rows it touches,
 * rebuilds the rows of the missing data chunks from the parity that is
 * left, applies the new data, recomputes P (and Q) from the whole rows and
 * writes the new data and parity to the members that can take them (a
 * data chunk whose member is gone lives on in the parity).  Before a write
 * goes on without a member that just failed, the failure is recorded on
 * the disks (crp_array_record_failures), so that a crash cannot bring
 * back the stale member as current.  A block a member cannot read
 * (MEDIUM ERROR) is read around the same way, and rewritten if the
 * transaction writes it.
 *
 * Invariant: no block of a stripe is read for an update or written unless
 * this host holds the reservation of every member of W, taken before the
 * first read, and no parity member of W is released before every WRITE
 * of the transaction has completed.  So a host that holds the parity of
 * a stripe sees every data chunk of it whole, as no writer of the stripe
 * is half way: that is what lets a degraded write (once it holds W)
 * read the chunks it does not lock.  A WRITE
 * whose member saw a reset or preemption during the
 * transaction (a retried UNIT ATTENTION) may have landed without our
 * reservation: the transaction reports -CRP_ELOCKLOST and the caller must
 * treat the stripe as needing resync.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "crpfs/err.h"
#include "crpfs/parity.h"
#include "crpfs/util.h"
#include "array_i.h"

enum txn_mode { TXN_RMW, TXN_RCW, TXN_FULL, TXN_DEG };

struct txn {
	struct crp_array *a;
	const struct crp_geom *g;
	uint64_t s;
	int p, q;			 /* parity members; q = -1 unless RAID-6 */
	uint32_t lo, hi;		 /* parity rows touched, bytes within the chunk */
	const uint8_t *const *src;	 /* new data per data chunk, or NULL */
	const uint32_t *dlo, *dhi;	 /* range written per data chunk */
	enum txn_mode mode;
	int w[CRP_MAX_MEMBERS];		 /* members locked, ascending */
	int nw;
	bool wr[CRP_MAX_MEMBERS];	 /* by member: written (all of w unless degraded) */
	bool need_read[CRP_MAX_MEMBERS]; /* by member */
	uint8_t *cur[CRP_MAX_MEMBERS];	 /* by data index: rows [lo, hi) */
	uint8_t *old[CRP_MAX_MEMBERS];	 /* by data index, RMW: old rows [lo, hi) */
	uint8_t *pbuf, *qbuf, *scratch;
	void *mem;
	struct crp_txn_stats st;
	uint64_t fence_ns;		 /* the WRITEs' fence time (the lease) */
	uint64_t skip;			 /* members not read this time (unreadable blocks) */
	uint64_t medium;		 /* members whose read met an unreadable block */
};

static bool written(const struct txn *t, int d)
{
	return t->src[d] != NULL;
}

/* Data chunk @d is written over every row [lo, hi) of the transaction. */
static bool covers(const struct txn *t, int d)
{
	return written(t, d) && t->dlo[d] <= t->lo && t->dhi[d] >= t->hi;
}

/* Reconstruct-write: read every data chunk not written over all rows. */
static void set_rcw(struct txn *t)
{
	t->mode = TXN_RCW;
	memset(t->need_read, 0, sizeof(t->need_read));
	for (int d = 0; d < t->g->ndata; d++)
		if (!covers(t, d))
			t->need_read[crp_geom_data_member(t->g, t->s, d)] = true;
}

static int cmp_int(const void *x, const void *y)
{
	return *(const int *)x - *(const int *)y;
}

/*
 * Choose the mode and the members to read.  Reconstruct-write only when
 * every member it reads is one it writes, that is when every data chunk is
 * touched (then it also reads fewer chunks than read-modify-write, which
 * reads the touched ones and the parity).  A read of a member outside W is
 * good only once W is locked (lock_and_read), which costs another round
 * trip unless W's locks are cached; and in reserve mode a reservation
 * blocks reads too, so such a read would wait on other hosts while holding
 * our locks.  prefer_rcw() revisits the choice once the cached locks are
 * known.
 */
static void plan(struct txn *t)
{
	const struct crp_geom *g = t->g;
	int nd = g->ndata, touched = 0, full = 0;

	t->lo = g->chunk;
	t->hi = 0;
	for (int d = 0; d < nd; d++) {
		if (!written(t, d))
			continue;
		touched++;
		t->lo = CRP_MIN(t->lo, t->dlo[d]);
		t->hi = CRP_MAX(t->hi, t->dhi[d]);
	}
	for (int d = 0; d < nd; d++)
		full += covers(t, d);

	t->nw = 0;
	for (int d = 0; d < nd; d++)
		if (written(t, d))
			t->w[t->nw++] = crp_geom_data_member(g, t->s, d);
	t->w[t->nw++] = t->p;
	if (t->q >= 0)
		t->w[t->nw++] = t->q;
	qsort(t->w, (size_t)t->nw, sizeof(int), cmp_int);
	memset(t->wr, 0, sizeof(t->wr));
	for (int k = 0; k < t->nw; k++)
		t->wr[t->w[k]] = true;

	memset(t->need_read, 0, sizeof(t->need_read));
	if (full == nd && t->lo == 0 && t->hi == g->chunk) {
		t->mode = TXN_FULL;
	} else if (touched < nd) {
		t->mode = TXN_RMW;
		for (int d = 0; d < nd; d++)
			if (written(t, d))
				t->need_read[crp_geom_data_member(g, t->s, d)] = true;
		t->need_read[t->p] = true;
		if (t->q >= 0)
			t->need_read[t->q] = true;
	} else {
		set_rcw(t);
	}
}

/*
 * The degraded plan: lock every writable member of the stripe, read every
 * readable one over [lo, hi), write the written data chunks and the parity
 * to the members that can take them.  -CRP_EDEGRADED when more members are
 * missing than the level can rebuild, or when nothing is left to write to.
 */
static int plan_degraded(struct txn *t)
{
	const struct crp_geom *g = t->g;
	struct crp_array *a = t->a;
	int lost = 0, nwr = 0;

	t->mode = TXN_DEG;
	t->lo = g->chunk;
	t->hi = 0;
	for (int d = 0; d < g->ndata; d++) {
		if (!written(t, d))
			continue;
		t->lo = CRP_MIN(t->lo, t->dlo[d]);
		t->hi = CRP_MAX(t->hi, t->dhi[d]);
	}
	t->nw = 0;
	memset(t->wr, 0, sizeof(t->wr));
	memset(t->need_read, 0, sizeof(t->need_read));
	for (int m = 0; m < a->n; m++) {
		int role = crp_geom_role(g, t->s, m);

		if (crp_array_readable(a, m) && !(t->skip & (1ull << m)))
			t->need_read[m] = true;
		else
			lost++;
		/* Locked: what we write (the parity left among it, which every
		 * writer of the stripe takes); the others are only read. */
		if (!crp_array_writable(a, m) || (role >= 0 && !written(t, role)))
			continue;
		t->w[t->nw++] = m;
		t->wr[m] = true;
		nwr++;
	}
	if (lost > (t->q >= 0 ? 2 : 1) || !nwr)
		return -CRP_EDEGRADED;
	return 0;
}

/*
 * A full-stripe write needs no copy of the data and no old rows: the new
 * chunks are used where the caller has them (when aligned as the parity
 * code needs) and only the parity is computed into buffers of our own,
 * which nothing reads before they are written whole: not cleared.  Every
 * other mode gets the whole set, cleared.
 */
static int alloc_bufs(struct txn *t)
{
	size_t rows = t->hi - t->lo, nbuf = (size_t)t->g->ndata * 2 + 4;
	uint8_t *p;

	if (t->mode == TXN_FULL) {
		bool aligned = true;

		for (int d = 0; d < t->g->ndata; d++)
			aligned = aligned && !((uintptr_t)t->src[d] % CRP_BUF_ALIGN);
		if (aligned) {
			t->mem = crp_scratch_take(CRP_SCRATCH_STRIPE, rows * 2, false);
			if (!t->mem)
				return -ENOMEM;
			for (int d = 0; d < t->g->ndata; d++)
				t->cur[d] = (uint8_t *)(uintptr_t)t->src[d];
			t->pbuf = t->mem;
			t->qbuf = t->pbuf + rows;
			return 0;
		}
	}
	t->mem = crp_scratch_take(CRP_SCRATCH_STRIPE, rows * nbuf, true);
	if (!t->mem)
		return -ENOMEM;
	p = t->mem;
	for (int d = 0; d < t->g->ndata; d++) {
		t->cur[d] = p;
		p += rows;
		t->old[d] = p;
		p += rows;
	}
	t->pbuf = p;
	p += rows;
	t->qbuf = p;
	p += rows;
	t->scratch = p;
	return 0;
}

/*
 * A read-modify-write that reads more chunks than a reconstruct-write
 * would (a small write to a narrow array: two data chunks, or RAID-6 on
 * four members) becomes one when the chunks it then reads outside W cost
 * nothing more: every member of W is ours already, so they go out in the
 * one LOCK+READ round, and no other host's reservation can refuse them
 * (pr mode: Write Exclusive lets reads through; reserve mode: no other
 * host is alive).  Reading outside W once W is ours is what the invariant
 * allows.  Called with W's local ownership, before LOCK+READ.
 */
static void prefer_rcw(struct txn *t, bool locks)
{
	int rmw = 0, rcw = 0;

	if (t->mode != TXN_RMW)
		return;
	if (locks) {
		if (crp_array_lock_mode(t->a) != CRP_LOCK_PR && crp_array_peers(t->a) > 0)
			return;
		for (int k = 0; k < t->nw; k++)
			if (!t->a->lk[t->w[k]].reserved)
				return;
	}
	for (int m = 0; m < t->a->n; m++)
		rmw += t->need_read[m];
	for (int d = 0; d < t->g->ndata; d++)
		rcw += !covers(t, d);
	if (rcw < rmw)
		set_rcw(t);
}

/* Where the READ of member @m lands, and which rows it covers. */
static void read_target(struct txn *t, int m, uint8_t **buf, uint32_t *off, uint32_t *len)
{
	int role = crp_geom_role(t->g, t->s, m);

	*off = t->lo;
	*len = t->hi - t->lo;
	if (role == CRP_ROLE_P) {
		*buf = t->pbuf;
	} else if (role == CRP_ROLE_Q) {
		*buf = t->qbuf;
	} else if (t->mode == TXN_RMW) {
		*off = t->dlo[role];
		*len = t->dhi[role] - t->dlo[role];
		*buf = t->old[role] + (t->dlo[role] - t->lo);
	} else {
		*buf = t->cur[role];
	}
}

static bool in_w(const struct txn *t, int m)
{
	for (int k = 0; k < t->nw; k++)
		if (t->w[k] == m)
			return true;
	return false;
}

static void set_rw(struct txn *t, struct crp_cmd *c, int m, bool write, uint8_t *buf,
		   uint32_t off, uint32_t len)
{
	uint32_t bs = crp_member_block_size(t->a->m[m]);
	uint64_t moff = crp_geom_member_off(t->g, t->s, off);

	crp_cmd_init(c);
	if (write)
		crp_cdb_write16(c, moff / bs, len / bs, buf, len, false);
	else
		crp_cdb_read16(c, moff / bs, len / bs, buf, len);
}

/*
 * LOCK+READ until every member of W is ours and every read is in.
 * Returns 0, or an error after releasing whatever it took.
 */
static int lock_and_read(struct txn *t)
{
	struct crp_array *a = t->a;
	bool locks = !(a->opts.debug & CRP_DEBUG_NO_LOCKS);
	uint64_t deadline = crp_lock_deadline_ns(a);
	bool have_read[CRP_MAX_MEMBERS] = { false };
	unsigned attempt = 0;

	for (;;) {
		struct crp_cmd res[CRP_MAX_MEMBERS], rd[CRP_MAX_MEMBERS];
		uint8_t params[CRP_MAX_MEMBERS][24];
		bool sent_res[CRP_MAX_MEMBERS] = { false }, sent_rd[CRP_MAX_MEMBERS] = { false };
		bool conflict = false, read_conflict = false;
		struct crp_batch b;
		int err = 0, nsent = 0;
		bool unlocked = false, again = false;

		/* Reads outside W wait until all of W is ours (see the top). */
		for (int k = 0; locks && k < t->nw; k++)
			unlocked = unlocked || !a->lk[t->w[k]].reserved;
		t->st.attempts++;
		crp_batch_init(&b);
		for (int m = 0; m < a->n; m++) {
			struct crp_cmd *cmds[2];
			int nc = 0;

			if (locks && in_w(t, m)) {
				if (a->lk[m].reserved) {
					if (t->st.attempts == 1) {
						t->st.cache_hits++;
						atomic_fetch_add(&a->ctr.lock_cache_hits, 1);
					}
				} else {
					crp_lock_cmd_reserve(a, &res[m], params[m]);
					crp_batch_add(&b, &res[m]);
					cmds[nc++] = &res[m];
					sent_res[m] = true;
					t->st.reserves++;
				}
			}
			if (t->need_read[m] && !have_read[m] && unlocked && !in_w(t, m)) {
				again = true;
			} else if (t->need_read[m] && !have_read[m]) {
				uint8_t *buf;
				uint32_t off, len;

				read_target(t, m, &buf, &off, &len);
				set_rw(t, &rd[m], m, false, buf, off, len);
				crp_batch_add(&b, &rd[m]);
				cmds[nc++] = &rd[m];
				sent_rd[m] = true;
				t->st.reads++;
			}
			if (nc) {
				crp_member_submit(a->m[m], cmds, nc);
				nsent++;
			}
		}
		if (nsent) {
			crp_batch_wait(&b);
			t->st.round_trips++;
		}
		crp_batch_destroy(&b);

		for (int m = 0; m < a->n; m++) {
			if (sent_res[m]) {
				if (res[m].result == 0)
					crp_lock_taken(a, m);
				else if (res[m].result == -CRP_ECONFLICT ||
					 res[m].result == -CRP_ELOCKLOST)
					conflict = true; /* lost with a session: again */
				else if (!err)
					err = res[m].result;
			}
			if (!sent_rd[m])
				continue;
			/* A read of a locked member counts only if its lock is ours. */
			if (locks && in_w(t, m) && !a->lk[m].reserved)
				continue;
			if (rd[m].result == 0)
				have_read[m] = true;
			else if (rd[m].result == -CRP_ECONFLICT && !in_w(t, m))
				read_conflict = true;
			else if (rd[m].result == -CRP_EMEDIUM)
				t->medium |= 1ull << m;
			if (rd[m].result && rd[m].result != -CRP_ECONFLICT && !err)
				err = rd[m].result;
		}
		if (err) {
			crp_lock_release_now(a, t->w, t->nw);
			return err;
		}
		if (conflict) {
			atomic_fetch_add(&a->ctr.lock_conflicts, 1);
			crp_lock_release_now(a, t->w, t->nw);
			/* A preempted registration conflicts for ever: fenced.
			 * (Pinned members keep their events for meta_unlock.) */
			for (int k = 0; k < t->nw; k++)
				if (!a->lk[t->w[k]].pinned)
					(void)crp_lock_check_events(a, t->w[k]);
			/* A target may report a preemption as 2Ah/03h only:
			 * from the second conflict on, ask whether we are still
			 * registered. */
			if (!atomic_load(&a->fenced) && attempt == 1)
				(void)crp_array_pr_check(a);
			if (atomic_load(&a->fenced))
				return -CRP_EFENCED;
			memset(have_read, 0, sizeof(have_read));
			if (crp_now_ns() > deadline)
				return -ETIMEDOUT;
			crp_lock_backoff(a, CRP_MIN(attempt, crp_lock_attempt_cap(a, t->w, t->nw)));
			attempt++;
			continue;
		}
		if (read_conflict) {
			/*
			 * Another host holds a member we only read.  Never wait
			 * while holding locks: release ours and start over.
			 */
			atomic_fetch_add(&a->ctr.read_conflict_retries, 1);
			crp_lock_release_now(a, t->w, t->nw);
			memset(have_read, 0, sizeof(have_read));
			if (crp_now_ns() > deadline)
				return -ETIMEDOUT;
			crp_lock_backoff(a, CRP_MIN(attempt, crp_lock_attempt_cap(a, t->w, t->nw)));
			attempt++;
			continue;
		}
		if (again)
			continue; /* W is ours now: the reads outside it */
		return 0;
	}
}

/* COMPUTE, degraded: rebuild the rows of the missing data chunks from the
 * parity read, apply the new data, and recompute the parity. */
static int compute_degraded(struct txn *t)
{
	const struct crp_geom *g = t->g;
	size_t rows = t->hi - t->lo;
	int fail[2], nfail = 0, ndfail = 0;

	for (int d = 0; d < g->ndata; d++) {
		if (t->need_read[crp_geom_data_member(g, t->s, d)])
			continue;
		if (nfail == 2)
			return -CRP_EDEGRADED;
		fail[nfail++] = d;
		ndfail++;
	}
	if (ndfail) {
		if (!t->need_read[t->p] && nfail < 2)
			fail[nfail++] = g->ndata;
		else if (!t->need_read[t->p])
			return -CRP_EDEGRADED;
		if (t->q >= 0 && !t->need_read[t->q]) {
			if (nfail == 2)
				return -CRP_EDEGRADED;
			fail[nfail++] = g->ndata + 1;
		}
		if (crp_parity_rebuild(g->ndata, rows, (void *const *)t->cur, t->pbuf,
				       t->q >= 0 ? t->qbuf : NULL, fail, nfail) < 0)
			return -CRP_EDEGRADED;
	}
	for (int d = 0; d < g->ndata; d++)
		if (written(t, d))
			memcpy(t->cur[d] + (t->dlo[d] - t->lo), t->src[d], t->dhi[d] - t->dlo[d]);
	if (t->q >= 0)
		crp_parity_pq(g->ndata, rows, (void *const *)t->cur, t->pbuf, t->qbuf);
	else
		crp_parity_p(g->ndata, rows, (void *const *)t->cur, t->pbuf);
	return 0;
}

/* COMPUTE: fill cur[] with the new data rows and pbuf/qbuf with new parity. */
static void compute(struct txn *t)
{
	const struct crp_geom *g = t->g;
	size_t rows = t->hi - t->lo;

	for (int d = 0; d < g->ndata; d++) {
		if (!written(t, d) || t->cur[d] == t->src[d])
			continue; /* in place: a full stripe (alloc_bufs) */
		memcpy(t->cur[d] + (t->dlo[d] - t->lo), t->src[d], t->dhi[d] - t->dlo[d]);
	}
	if (t->mode == TXN_RMW) {
		for (int d = 0; d < g->ndata; d++) {
			uint32_t o, len;

			if (!written(t, d))
				continue;
			o = t->dlo[d] - t->lo;
			len = t->dhi[d] - t->dlo[d];
			crp_parity_p_update(len, t->old[d] + o, t->cur[d] + o, t->pbuf + o);
			if (t->q >= 0)
				crp_parity_q_update(d, len, t->old[d] + o, t->cur[d] + o, t->qbuf + o,
						    t->scratch);
		}
		return;
	}
	if (t->q >= 0)
		crp_parity_pq(g->ndata, rows, (void *const *)t->cur, t->pbuf, t->qbuf);
	else
		crp_parity_p(g->ndata, rows, (void *const *)t->cur, t->pbuf);
}

/* WRITE+UNLOCK. */
static int write_and_unlock(struct txn *t, bool locks)
{
	struct crp_array *a = t->a;
	struct crp_cmd wr[CRP_MAX_MEMBERS];
	int roles[CRP_MAX_MEMBERS];
	struct crp_batch b;
	int err = 0;

	for (int k = 0; k < t->nw; k++)
		roles[t->w[k]] = crp_geom_role(t->g, t->s, t->w[k]);
	crp_batch_init(&b);
	for (int k = 0; k < t->nw; k++) {
		int m = t->w[k], role = roles[m];
		struct crp_cmd *c = &wr[m];

		if (!t->wr[m])
			continue;
		if (role == CRP_ROLE_P)
			set_rw(t, c, m, true, t->pbuf, t->lo, t->hi - t->lo);
		else if (role == CRP_ROLE_Q)
			set_rw(t, c, m, true, t->qbuf, t->lo, t->hi - t->lo);
		else
			set_rw(t, c, m, true, t->cur[role] + (t->dlo[role] - t->lo), t->dlo[role],
			       t->dhi[role] - t->dlo[role]);
		c->fence_ns = t->fence_ns;
		/* A data member's RELEASE rides on its own WRITE. */
		if (role >= 0 && locks && a->lk[m].reserved && !crp_lock_keep(a, m)) {
			c->chain = crp_lock_release_cmd(a, m);
			if (c->chain)
				t->st.releases++;
		}
		crp_batch_add(&b, c);
		t->st.writes++;
	}
	/* Parity first; CRP_DEBUG_SLOW_DATA holds the data back (tests). */
	for (int pass = 0; pass < 2; pass++) {
		if (pass == 1 && (a->opts.debug & CRP_DEBUG_SLOW_DATA))
			crp_sleep_ns(300000000ull);
		for (int k = 0; k < t->nw; k++) {
			int m = t->w[k];
			struct crp_cmd *c = &wr[m];

			if (t->wr[m] && (roles[m] < 0) == (pass == 0))
				crp_member_submit(a->m[m], &c, 1);
		}
	}
	crp_batch_wait(&b);
	crp_batch_destroy(&b);
	t->st.round_trips++;
	/*
	 * The parity's RELEASE goes out only now that every WRITE of the
	 * stripe has completed, not on the parity's own WRITE: in pr mode
	 * another host's degraded write or degraded read reads data chunks it
	 * does not lock, trusting that the parity it holds means no writer of
	 * the stripe is half way.  A parity released while a data WRITE was
	 * still on its way let it read the old data beside the new parity.
	 * Not waited for.  Members locked only to be read (degraded) go too.
	 */
	for (int k = 0; k < t->nw; k++) {
		int m = t->w[k];
		struct crp_cmd *rel;

		if ((t->wr[m] && roles[m] >= 0) || !locks || !a->lk[m].reserved ||
		    (t->wr[m] && wr[m].result) || crp_lock_keep(a, m))
			continue;
		rel = t->wr[m] ? crp_lock_release_cmd(a, m) : NULL;
		if (!rel) {
			crp_lock_release_now(a, &m, 1);
			continue;
		}
		t->st.releases++;
		crp_member_submit(a->m[m], &rel, 1);
	}

	/* The broken protocol of CRP_DEBUG_EARLY_RELEASE writes anyway, as an
	 * implementation that released too early would: retry conflicts. */
	for (unsigned tries = 0; (a->opts.debug & CRP_DEBUG_EARLY_RELEASE) && tries < 1000; tries++) {
		bool again = false;

		for (int k = 0; k < t->nw; k++) {
			struct crp_cmd *c = &wr[t->w[k]];

			if (!t->wr[t->w[k]] || c->result != -CRP_ECONFLICT)
				continue;
			again = true;
			crp_lock_backoff(a, 0);
			crp_member_exec(a->m[t->w[k]], c);
		}
		if (!again)
			break;
	}

	for (int k = 0; k < t->nw; k++) {
		int m = t->w[k];

		if (!t->wr[m])
			continue;
		if (wr[m].result && !err)
			err = wr[m].result;
		if (!wr[m].result || !locks)
			continue;
		/* After a failed WRITE (which cancelled a chained RELEASE) the
		 * lock is still ours unless the member is gone or said it was
		 * taken away. */
		if (wr[m].chain)
			a->lk[m].reserved = true;
		if (!a->lk[m].reserved)
			continue;
		if (crp_member_failed(a->m[m]) || wr[m].result == -CRP_ELOCKLOST)
			a->lk[m].reserved = false;
		else if (wr[m].chain || !crp_lock_keep(a, m))
			crp_lock_release_now(a, &m, 1);
	}
	return err;
}

int crp_stripe_members(struct crp_array *a, uint64_t s, const uint8_t *const *src, int *out)
{
	int n = 0, p, q;

	crp_geom_parity(&a->g, s, &p, &q);
	for (int d = 0; d < a->g.ndata; d++)
		if (src[d])
			out[n++] = crp_geom_data_member(&a->g, s, d);
	out[n++] = p;
	if (q >= 0)
		out[n++] = q;
	qsort(out, (size_t)n, sizeof(int), cmp_int);
	return n;
}

/* A transaction that gives up before it starts: a reservation of W kept for
 * it by the previous one goes back if nobody else wants it. */
static int bail(struct crp_array *a, const int *w, int nw, int r)
{
	crp_lock_release_idle(a, w, nw);
	return r;
}

/* One attempt.  @full: read every readable member and recompute the
 * parity from whole rows (the degraded plan), as a retry after a lost lock
 * must: a WRITE of the failed attempt may have landed, and a
 * read-modify-write would take it for the old data. */
static int stripe_write_once(struct crp_array *a, uint64_t s, const uint8_t *const *src,
			     const uint32_t *lo, const uint32_t *hi, bool full, uint64_t *skip)
{
	struct txn t = { .a = a, .g = &a->g, .s = s, .src = src, .dlo = lo, .dhi = hi,
			 .skip = *skip };
	bool locks = !(a->opts.debug & CRP_DEBUG_NO_LOCKS), degraded = full, wrote = false;
	int r, lost = 0;

	crp_geom_parity(&a->g, s, &t.p, &t.q);
	for (int m = 0; m < a->n && !degraded; m++)
		degraded = !crp_array_readable(a, m);
	if (degraded) {
		r = plan_degraded(&t);
		if (r < 0)
			return bail(a, t.w, t.nw, r);
	} else {
		plan(&t);
	}
	r = crp_array_gate_check(a, NULL);
	if (r < 0)
		return bail(a, t.w, t.nw, r);
	r = alloc_bufs(&t);
	if (r < 0)
		return bail(a, t.w, t.nw, r);
	if (a->intent) {
		r = a->intent->begin(a->intent_ctx, s);
		if (r < 0) {
			crp_scratch_give(CRP_SCRATCH_STRIPE, t.mem);
			return bail(a, t.w, t.nw, r);
		}
	}

	crp_mlock_take_local(a, t.w, t.nw);
	/* A reset or preemption seen before we start invalidates cached locks. */
	for (int k = 0; k < t.nw; k++) {
		int e = crp_lock_check_events(a, t.w[k]);

		if (e == -CRP_EFENCED) {
			r = e;
			goto out;
		}
		if (e)
			a->lk[t.w[k]].reserved = false;
	}
	/* The metadata lock went with a member's session or a reset: nothing
	 * more is written under it (see crp_lock_check_events); its holder
	 * finds out at the unlock, or here. */
	if (atomic_load(&a->meta_lost)) {
		r = -CRP_ELOCKLOST;
		goto out;
	}
	if (locks)
		crp_lock_yield(a, t.w, t.nw);
	prefer_rcw(&t, locks);
	r = lock_and_read(&t);
	if (r < 0)
		goto out;
	/* The lease again, now that the locks may have taken a while. */
	r = crp_array_gate_check(a, &t.fence_ns);
	if (r < 0) {
		crp_lock_release_now(a, t.w, t.nw);
		goto out;
	}
	if (locks && (a->opts.debug & CRP_DEBUG_EARLY_RELEASE))
		crp_lock_release_now(a, t.w, t.nw);
	if (t.mode == TXN_DEG) {
		r = compute_degraded(&t);
		if (r < 0) {
			crp_lock_release_now(a, t.w, t.nw);
			goto out;
		}
	} else {
		compute(&t);
	}
	wrote = true;
	r = write_and_unlock(&t, locks);
	for (int k = 0; k < t.nw; k++) {
		int e = crp_lock_check_events(a, t.w[k]);

		if (e) {
			a->lk[t.w[k]].reserved = false;
			if (!lost)
				lost = e;
		}
	}
	if (!r && lost) {
		atomic_fetch_add(&a->ctr.lock_lost, 1);
		r = lost;
	}
	if (r == 0) {
		uint_fast64_t max = atomic_load(&a->ctr.max_round_trips);

		atomic_fetch_add(&a->ctr.txns, 1);
		atomic_fetch_add(&a->ctr.txn_round_trips, t.st.round_trips);
		atomic_store(&a->ctr.last_round_trips, t.st.round_trips);
		while (t.st.round_trips > max &&
		       !atomic_compare_exchange_weak(&a->ctr.max_round_trips, &max, t.st.round_trips))
			;
		atomic_fetch_add(t.mode == TXN_FULL ? &a->ctr.full_stripe :
				 t.mode == TXN_RMW ? &a->ctr.rmw :
				 t.mode == TXN_DEG ? &a->ctr.degraded_writes : &a->ctr.rcw, 1);
		if (a->txn_hook)
			a->txn_hook(a->txn_hook_ctx, &t.st);
	}
out:
	crp_mlock_give_local(a, t.w, t.nw);
	if (a->intent)
		a->intent->end(a->intent_ctx, s, wrote && r < 0);
	crp_scratch_give(CRP_SCRATCH_STRIPE, t.mem);
	*skip |= t.medium;
	return r;
}

/* Is the metadata lock held here?  A reset that took a stripe lock may have
 * taken it too: that is the metadata layer's to find out (it stops
 * writing), not a stripe write's to retry past.  A snapshot: the pins
 * change under meta_mu, and a holder that comes or goes meanwhile only
 * makes the answer conservative. */
static bool meta_lock_pinned(struct crp_array *a)
{
	for (int k = 0; k < a->nmeta_set; k++)
		if (a->lk[a->meta_set[k]].pinned)
			return true;
	return false;
}

#define STRIPE_LOST_TRIES 12

int crp_stripe_write(struct crp_array *a, uint64_t s, const uint8_t *const *src,
		     const uint32_t *lo, const uint32_t *hi)
{
	uint64_t skip = 0, deadline = crp_lock_deadline_ns(a);
	unsigned lost = 0;
	bool full = false;
	int r = 0;

	/*
	 * A member that failed (here or in another transaction) is recorded
	 * on the disks before any write goes on without it; a lost lock (a
	 * reconnected session, a reset) is retried with the whole rows read
	 * again.  Bounded: each failure takes a member away for good, and a
	 * lost lock is retried STRIPE_LOST_TRIES times within the lock
	 * deadline (sessions that come back one by one can take a few).
	 */
	for (int attempt = 0; attempt < CRP_MAX_MEMBERS + 3 + STRIPE_LOST_TRIES; attempt++) {
		r = crp_array_record_failures(a);
		if (r < 0)
			return r;
		r = stripe_write_once(a, s, src, lo, hi, full, &skip);
		if (r == -CRP_EMEMBER || (r < 0 && crp_array_failures_pending(a)))
			continue;
		if (r == -CRP_EMEDIUM && attempt < CRP_MAX_MEMBERS + 2) {
			/* An unreadable block in the rows read: read around it
			 * (rebuilt from parity); the write puts it back. */
			full = true;
			continue;
		}
		if (r == -CRP_ELOCKLOST && lost < STRIPE_LOST_TRIES && crp_now_ns() < deadline &&
		    !atomic_load(&a->fenced) && !meta_lock_pinned(a)) {
			crp_lock_backoff(a, lost++);
			full = true;
			continue;
		}
		break;
	}
	return r;
}
