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

int crp_cluster_slots_read(struct crp_cluster *c, int first, int n, uint64_t deadline,
			   struct crp_slot *out, bool *got)
{
	struct crp_meta *m = c->m;
	int nm = m->geom.nmembers, r = 0;
	bool todo[CRP_MAX_MEMBERS];
	uint8_t *buf = crp_alloc_buf((size_t)n * CRP_BLOCK);
	unsigned attempt = 0;
	bool any = false;

	if (!buf)
		return -ENOMEM;
	memset(got, 0, (size_t)n * sizeof(*got));
	for (int i = 0; i < nm; i++)
		todo[i] = true;
	for (;;) {
		bool conflict = false;

		for (int i = 0; i < nm; i++) {
			struct crp_member *mem = crp_array_member(m->a, i);
			int e;

			if (!todo[i])
				continue;
			if (crp_member_failed(mem)) {
				todo[i] = false;
				continue;
			}
			e = crp_member_read(mem, slot_off(first), buf, (uint32_t)n * CRP_BLOCK);
			if (e == -CRP_ECONFLICT) {
				conflict = true;
				continue;
			}
			todo[i] = false;
			if (e < 0) {
				r = r ? r : e;
				continue;
			}
			for (int k = 0; k < n; k++) {
				struct crp_slot s;
				uint64_t blk = slot_off(first + k) / CRP_BLOCK;

				if (crp_slot_in(buf + (size_t)k * CRP_BLOCK, blk, m->fsid, &s, NULL,
						0) < 0 || s.slot != (uint32_t)(first + k))
					continue;
				if (!got[k] || s.heartbeat > out[k].heartbeat) {
					out[k] = s;
					got[k] = true;
					any = true;
				}
			}
		}
		if (!conflict || crp_now_ns() >= deadline)
			break;
		backoff(attempt++, deadline);
	}
	free(buf);
	if (any)
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

int crp_cluster_slot_write(struct crp_cluster *c, const struct crp_slot *s, uint64_t deadline)
{
	struct crp_meta *m = c->m;
	int nm = m->geom.nmembers, r = 0, landed = 0;
	bool todo[CRP_MAX_MEMBERS];
	uint8_t *buf = crp_alloc_buf(CRP_BLOCK);
	unsigned attempt = 0;
	bool conflicted = false;

	if (!buf)
		return -ENOMEM;
	crp_slot_out(s, slot_off((int)s->slot) / CRP_BLOCK, m->fsid, buf);
	for (int i = 0; i < nm; i++)
		todo[i] = true;
	for (;;) {
		bool conflict = false;

		for (int i = 0; i < nm; i++) {
			struct crp_member *mem = crp_array_member(m->a, i);
			int e;

			if (!todo[i])
				continue;
			if (crp_member_failed(mem)) {
				todo[i] = false;
				continue;
			}
			e = crp_member_write(mem, slot_off((int)s->slot), buf, CRP_BLOCK);
			if (e == -CRP_ECONFLICT) {
				conflict = conflicted = true;
				continue;
			}
			todo[i] = false;
			if (e < 0)
				r = r ? r : e;
			else
				landed++;
		}
		if (!conflict || crp_now_ns() >= deadline)
			break;
		backoff(attempt++, deadline);
	}
	free(buf);
	if (landed)
		return 0;
	return r ? r : (conflicted ? -CRP_ECONFLICT : -CRP_EDEGRADED);
}
