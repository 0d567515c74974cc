/*
 * Slot I/O of the cluster layer: the slot copies on every member, read and
 * written past other hosts' reservations.
 *
 * A slot is mirrored on every member and written without a lock.  In
 * reserve mode a member another host holds reserved refuses our WRITE and
 * our READ (RESERVATION CONFLICT) for a few round trips; in pr mode a
 * member reserved Write Exclusive refuses our WRITE.  So each member that
 * conflicted is tried again after a short randomized backoff until the
 * deadline: a write counts if any copy landed, a read uses the copies it
 * could read (the one with the highest counter, since every write of a
 * slot bumps it).  Failed members are skipped.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "crpfs/err.h"
#include "crpfs/ondisk.h"
#include "crpfs/util.h"
#include "cluster_i.h"

/* A conflicted member is retried after 0.5-1.5 ms, doubling to 2-6 ms: a
 * reservation is held for a few round trips, and a short gap between two
 * holders must not be slept through. */
static void backoff(unsigned attempt, uint64_t deadline)
{
	uint64_t base = 1000000ull << CRP_MIN(attempt, 2u);
	uint64_t ns = base / 2 + crp_random() % base, now = crp_now_ns();

	if (now >= deadline)
		return;
	crp_sleep_ns(CRP_MIN(ns, deadline - now));
}

static uint64_t slot_off(int slot)
{
	return CRP_SLOT_OFFSET + (uint64_t)slot * CRP_BLOCK;
}

/*
 * Run @io(@ctx, member) once on every member that has not failed; a member
 * that answers RESERVATION CONFLICT is tried again after a backoff until
 * @deadline.  Returns the first other error (0 if none); *conflicted says
 * whether any attempt conflicted.
 */
static int each_member(struct crp_meta *m, uint64_t deadline,
		       int (*io)(void *ctx, struct crp_member *mem), void *ctx, bool *conflicted)
{
	int nm = m->geom.nmembers, r = 0;
	bool todo[CRP_MAX_MEMBERS];
	unsigned attempt = 0;

	*conflicted = false;
	for (int i = 0; i < nm; i++)
		todo[i] = true;
	for (;;) {
		bool conflict = false;

		for (int i = 0; i < nm; i++) {
			struct crp_member *mem = crp_array_member(m->a, i);
			int e;

			if (!todo[i])
				continue;
			/* A failed member, or one logging in again after a lost
			 * session (its commands would wait for the login): the
			 * others carry the slot meanwhile. */
			if (crp_member_failed(mem) || crp_member_reconnecting(mem)) {
				todo[i] = false;
				continue;
			}
			e = io(ctx, mem);
			if (e == -CRP_ECONFLICT) {
				conflict = *conflicted = true;
				continue;
			}
			todo[i] = false;
			if (e < 0)
				r = r ? r : e;
		}
		if (!conflict || crp_now_ns() >= deadline)
			break;
		backoff(attempt++, deadline);
	}
	return r;
}

struct slots_read {
	struct crp_meta *m;
	int first, n;
	uint8_t *buf;
	struct crp_slot *out;
	bool *got;
	bool any;
};

/* Read slots first..first+n-1 from @mem; keep each valid copy newer than
 * what was read before. */
static int read_one(void *ctx, struct crp_member *mem)
{
	struct slots_read *sr = ctx;
	int e = crp_member_read(mem, slot_off(sr->first), sr->buf, (uint32_t)sr->n * CRP_BLOCK);

	if (e < 0)
		return e;
	for (int k = 0; k < sr->n; k++) {
		struct crp_slot s;
		uint64_t blk = slot_off(sr->first + k) / CRP_BLOCK;

		if (crp_slot_in(sr->buf + (size_t)k * CRP_BLOCK, blk, sr->m->fsid, &s, NULL, 0) < 0 ||
		    s.slot != (uint32_t)(sr->first + k))
			continue;
		if (!sr->got[k] || s.heartbeat > sr->out[k].heartbeat) {
			sr->out[k] = s;
			sr->got[k] = true;
			sr->any = true;
		}
	}
	return e;
}

int crp_cluster_slots_read(struct crp_cluster *c, int first, int n, uint64_t deadline,
			   struct crp_slot *out, bool *got)
{
	struct slots_read sr = { .m = c->m, .first = first, .n = n, .out = out, .got = got };
	bool conflicted;
	int r;

	sr.buf = crp_alloc_buf((size_t)n * CRP_BLOCK);
	if (!sr.buf)
		return -ENOMEM;
	memset(got, 0, (size_t)n * sizeof(*got));
	r = each_member(c->m, deadline, read_one, &sr, &conflicted);
	free(sr.buf);
	if (sr.any)
		return 0;
	return r ? r : -CRP_ECONFLICT;
}

int crp_cluster_slot_read(struct crp_cluster *c, int slot, uint64_t deadline,
			  struct crp_slot *out)
{
	bool got = false;
	int r = crp_cluster_slots_read(c, slot, 1, deadline, out, &got);

	if (r == 0 && !got)
		r = -CRP_ECORRUPT; /* every copy read, none valid */
	return r;
}

struct slot_write {
	const struct crp_slot *s;
	uint8_t *buf;
	int landed;
};

static int write_one(void *ctx, struct crp_member *mem)
{
	struct slot_write *sw = ctx;
	int e = crp_member_write(mem, slot_off((int)sw->s->slot), sw->buf, CRP_BLOCK);

	if (e >= 0)
		sw->landed++;
	return e;
}

int crp_cluster_slot_write(struct crp_cluster *c, const struct crp_slot *s, uint64_t deadline)
{
	struct crp_meta *m = c->m;
	struct slot_write sw = { .s = s };
	bool conflicted;
	int r;

	sw.buf = crp_alloc_buf(CRP_BLOCK);
	if (!sw.buf)
		return -ENOMEM;
	crp_slot_out(s, slot_off((int)s->slot) / CRP_BLOCK, m->fsid, sw.buf);
	r = each_member(m, deadline, write_one, &sw, &conflicted);
	free(sw.buf);
	if (sw.landed)
		return 0;
	return r ? r : (conflicted ? -CRP_ECONFLICT : -CRP_EDEGRADED);
}
