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

/* One slot I/O on every member: @prep fills the command of member @i
 * (its buffer its own), @done takes the result of one that returned GOOD. */
struct slot_io {
	void (*prep)(void *ctx, int i, struct crp_member *mem, struct crp_cmd *cmd);
	void (*done)(void *ctx, int i);
};

/*
 * Run @io once on every member that has not failed, all members at once
 * (the beat's time is the slowest member's, not the sum: under load each
 * command waits behind this host's own I/O on its session); a member that
 * answers RESERVATION CONFLICT is tried again after a backoff until
 * @deadline.  Returns the first other error (0 if none); *conflicted says
 * whether any attempt conflicted.
 */
static int each_member(struct crp_meta *m, uint64_t deadline, const struct slot_io *io,
		       void *ctx, bool *conflicted)
{
	int nm = m->geom.nmembers, r = 0;
	bool todo[CRP_MAX_MEMBERS];
	unsigned attempt = 0;

	*conflicted = false;
	for (int i = 0; i < nm; i++)
		todo[i] = true;
	for (;;) {
		struct crp_cmd cmd[CRP_MAX_MEMBERS];
		bool sent[CRP_MAX_MEMBERS] = { false }, conflict = false;
		struct crp_batch b;

		crp_batch_init(&b);
		for (int i = 0; i < nm; i++) {
			struct crp_member *mem = crp_array_member(m->a, i);
			struct crp_cmd *cp = &cmd[i];

			if (!todo[i])
				continue;
			/* A failed member, or one logging in again after a lost
			 * session (its commands would wait for the login): the
			 * others carry the slot meanwhile. */
			if (crp_member_failed(mem) || crp_member_reconnecting(mem)) {
				todo[i] = false;
				continue;
			}
			crp_cmd_init(cp);
			io->prep(ctx, i, mem, cp);
			crp_batch_add(&b, cp);
			crp_member_submit(mem, &cp, 1);
			sent[i] = true;
		}
		crp_batch_wait(&b);
		crp_batch_destroy(&b);
		for (int i = 0; i < nm; i++) {
			int e;

			if (!sent[i])
				continue;
			e = cmd[i].result;
			if (e == -CRP_ECONFLICT) {
				conflict = *conflicted = true;
				continue;
			}
			todo[i] = false;
			if (e < 0)
				r = r ? r : e;
			else
				io->done(ctx, i);
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
	uint8_t *buf;		/* a copy of the slots per member */
	struct crp_slot *out;
	bool *got;
	bool any;
};

static void read_prep(void *ctx, int i, struct crp_member *mem, struct crp_cmd *cmd)
{
	struct slots_read *sr = ctx;
	uint32_t bs = crp_member_block_size(mem), len = (uint32_t)sr->n * CRP_BLOCK;

	crp_cdb_read16(cmd, slot_off(sr->first) / bs, len / bs,
		       sr->buf + (size_t)i * sr->n * CRP_BLOCK, len);
}

/* Keep each valid copy of member @i newer than what was read before. */
static void read_done(void *ctx, int i)
{
	struct slots_read *sr = ctx;
	const uint8_t *buf = sr->buf + (size_t)i * sr->n * CRP_BLOCK;

	for (int k = 0; k < sr->n; k++) {
		struct crp_slot s;
		uint64_t blk = slot_off(sr->first + k) / CRP_BLOCK;

		if (crp_slot_in(buf + (size_t)k * CRP_BLOCK, blk, sr->m->fsid, &s, NULL, 0) < 0 ||
		    s.slot != (uint32_t)(sr->first + k))
			continue;
		if (!sr->got[k] || s.heartbeat > sr->out[k].heartbeat) {
			sr->out[k] = s;
			sr->got[k] = true;
			sr->any = true;
		}
	}
}

static const struct slot_io slots_read_io = { read_prep, read_done };

int crp_cluster_slots_read(struct crp_cluster *c, int first, int n, uint64_t deadline,
			   struct crp_slot *out, bool *got)
{
	struct slots_read sr = { .m = c->m, .first = first, .n = n, .out = out, .got = got };
	bool conflicted;
	int r;

	sr.buf = crp_alloc_buf((size_t)c->m->geom.nmembers * (size_t)n * CRP_BLOCK);
	if (!sr.buf)
		return -ENOMEM;
	memset(got, 0, (size_t)n * sizeof(*got));
	r = each_member(c->m, deadline, &slots_read_io, &sr, &conflicted);
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

static void write_prep(void *ctx, int i, struct crp_member *mem, struct crp_cmd *cmd)
{
	struct slot_write *sw = ctx;
	uint32_t bs = crp_member_block_size(mem);

	(void)i;
	crp_cdb_write16(cmd, slot_off((int)sw->s->slot) / bs, CRP_BLOCK / bs, sw->buf, CRP_BLOCK,
			false);
}

static void write_done(void *ctx, int i)
{
	struct slot_write *sw = ctx;

	(void)i;
	sw->landed++;
}

static const struct slot_io slot_write_io = { write_prep, write_done };

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
	r = each_member(m, deadline, &slot_write_io, &sw, &conflicted);
	free(sw.buf);
	if (sw.landed)
		return 0;
	return r ? r : (conflicted ? -CRP_ECONFLICT : -CRP_EDEGRADED);
}
