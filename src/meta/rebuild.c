/*
 * Replacing a member and rebuilding it, online.
 *
 *   replace   under the metadata lock: the new member takes the position
 *             (a new member identity), in state REBUILDING with checkpoint
 *             0, in the member table of every label (events + 1), and its
 *             name is recorded so that the other hosts open it.  From then
 *             on every host writes it (its stripe transactions take the
 *             degraded path: they read around it and write it) and none
 *             reads it.
 *   rebuild   stripe by stripe from the checkpoint, in batches, under the
 *             locks of every writable member of the stripes: each chunk of
 *             the position is computed from the others and written.  The
 *             checkpoint goes to the labels about once a second (with the
 *             rebuilder's name and the time), so that a rebuild stopped by
 *             a crash or a kill resumes there, on this host or another.
 *   done      the position is IN_SYNC; hosts read it again.
 *
 * A write by another host to a stripe already rebuilt keeps the new
 * member right (it writes it); one to a stripe not rebuilt yet may leave
 * it wrong, and the rebuild comes to it later.  A host that cannot open
 * the new member records it failed, which ends the rebuild: it cannot
 * keep it right.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "crpfs/err.h"
#include "crpfs/log.h"
#include "crpfs/util.h"
#include "meta_i.h"

#define REBUILD_BATCH 8			/* stripes under one lock round, at most
					   (fewer under other hosts: CRP_HOLD_ALL_NS) */
#define CHECKPOINT_NS 1000000000ull	/* checkpoint to the labels this often */

/* Write the names of every position to every member written. */
static int write_names(struct crp_meta *m)
{
	size_t len = (size_t)CRP_LABEL_MEMBERS * CRP_NAME_REC;
	uint8_t *buf = crp_alloc_buf(len);
	int ok = 0, r = 0;

	if (!buf)
		return -ENOMEM;
	memset(buf, 0, len);
	for (uint32_t p = 0; p < m->mt.nmembers; p++) {
		struct crp_member_name nm = { 0 };

		memcpy(nm.uuid, m->name_uuid[p], 16);
		nm.origin = m->name_origin[p];
		snprintf(nm.spec, sizeof(nm.spec), "%s", m->names[p]);
		crp_member_name_out(&nm, buf + (size_t)p * CRP_NAME_REC);
	}
	for (uint32_t p = 0; p < m->mt.nmembers; p++) {
		struct crp_member *mem = crp_array_member(m->a, (int)p);
		uint64_t deadline = crp_now_ns() + (uint64_t)m->timeout_ms * 4000000ull;
		int e;

		if (!crp_array_writable(m->a, (int)p))
			continue;
		while ((e = crp_member_write(mem, CRP_NAMES_OFFSET, buf, (uint32_t)len)) ==
			       -CRP_ECONFLICT && crp_now_ns() < deadline)
			crp_sleep_ns(1000000ull + crp_random() % 1000000ull);
		if (e == 0)
			ok++;
		else if (!r)
			r = e;
	}
	free(buf);
	return ok ? 0 : r;
}

struct replace_ctx {
	int pos;
	uint8_t uuid[16];
	bool resume;
};

static int replace_fn(struct crp_meta *m, struct crp_label *l, void *ctx)
{
	struct replace_ctx *c = ctx;
	struct crp_member_ent *e = &l->table[c->pos];
	uint32_t lost = 0;

	(void)m;
	if (e->state == CRP_MS_REBUILDING && !memcmp(e->uuid, c->uuid, 16)) {
		c->resume = true;
		return 1;
	}
	for (uint32_t p = 0; p < l->nmembers; p++)
		lost += p != (uint32_t)c->pos && l->table[p].state != CRP_MS_IN_SYNC;
	if (lost + 1 > (uint32_t)crp_meta_tolerance(l->level))
		return -CRP_EDEGRADED;
	memcpy(e->uuid, c->uuid, 16);
	e->state = CRP_MS_REBUILDING;
	e->checkpoint = 0;
	e->flags = 0;
	snprintf(l->rebuilder, sizeof(l->rebuilder), "%s", m->host);
	l->rebuild_ns = crp_wall_ns();
	return 0;
}

int crp_meta_member_replace(struct crp_meta *m, int pos, const char *spec, bool force,
			    bool *resumed, char *err, size_t errlen)
{
	struct crp_member_opts mo = { .host = m->host, .timeout_ms = m->timeout_ms };
	struct replace_ctx c = { .pos = pos };
	struct crp_member *mem = NULL;
	uint64_t need = m->geom.data_offset + m->geom.nstripes * (uint64_t)m->geom.chunk;
	uint8_t *buf = NULL;
	struct crp_label l;
	char why[256];
	bool ours;
	int r;

	*resumed = false;
	if (m->ro)
		return -EROFS;
	if (pos < 0 || (uint32_t)pos >= m->mt.nmembers) {
		snprintf(err, errlen, "position %d is not in the array (0 to %u)", pos,
			 m->mt.nmembers - 1);
		return -EINVAL;
	}
	r = crp_meta_members_reload(m);
	if (r < 0) {
		snprintf(err, errlen, "cannot read the member table: %s", crp_strerror(r));
		return r;
	}
	r = crp_member_open(spec, &mo, &mem, why, sizeof(why));
	if (r < 0) {
		snprintf(err, errlen, "%s", why);
		return r;
	}
	if (crp_member_size(mem) < need) {
		snprintf(err, errlen, "member %s holds %llu bytes; the array needs %llu on each",
			 spec, (unsigned long long)crp_member_size(mem), (unsigned long long)need);
		r = -CRP_EGEOMETRY;
		goto out;
	}
	if (m->geom.chunk % crp_member_block_size(mem) ||
	    m->geom.data_offset % crp_member_block_size(mem)) {
		snprintf(err, errlen, "member %s has %u-byte blocks, which the chunk does not fit",
			 spec, crp_member_block_size(mem));
		r = -CRP_EGEOMETRY;
		goto out;
	}
	buf = crp_alloc_buf(CRP_SIGNATURE_BYTES);
	if (!buf) {
		r = -ENOMEM;
		goto out;
	}
	memset(buf, 0, CRP_SIGNATURE_BYTES);
	r = crp_member_read(mem, 0, buf, CRP_SIGNATURE_BYTES); /* need covers it */
	if (r < 0) {
		snprintf(err, errlen, "member %s: cannot read: %s", spec, crp_strerror(r));
		goto out;
	}
	/* Is it already ours?  A rebuild of it to resume, a member in use, or
	 * one that failed and is given back. */
	ours = crp_label_in(buf, &l, NULL, 0) == 0 && !memcmp(l.uuid, m->mt.uuid, 16) &&
	       l.generation == m->mt.generation;
	if (ours) {
		for (uint32_t p = 0; p < m->mt.nmembers; p++) {
			const struct crp_member_ent *e = &m->mt.table[p];

			if (memcmp(e->uuid, l.member_uuid, 16))
				continue;
			if (p == (uint32_t)pos && e->state == CRP_MS_REBUILDING) {
				memcpy(c.uuid, e->uuid, 16);
				break;
			}
			if (e->state != CRP_MS_FAILED) {
				snprintf(err, errlen, "member %s is already position %u of this array "
					 "(%s)", spec, p, e->state == CRP_MS_IN_SYNC ? "in sync" :
					 "being rebuilt");
				r = -EBUSY;
				goto out;
			}
		}
	}
	if (!memcmp(c.uuid, (uint8_t[16]){ 0 }, 16)) {
		/* Not this array's: it must hold nothing else. */
		const char *what = crp_member_signature(buf, CRP_SIGNATURE_BYTES);

		if (what && !force && !ours) {
			snprintf(err, errlen, "member %s holds %s; give --force to overwrite it (its "
				 "data is lost); nothing changed", spec, what);
			r = -EEXIST;
			goto out;
		}
		crp_put_le64(c.uuid, crp_random());
		crp_put_le64(c.uuid + 8, crp_random());
	}
	/* The name first (the other hosts find the member by it), then the
	 * member at its position, then the table with it, written to every
	 * member's label, the new one's included, before any host is told. */
	snprintf(m->names[pos], sizeof(m->names[pos]), "%s", spec);
	memcpy(m->name_uuid[pos], c.uuid, 16);
	m->name_origin[pos] = CRP_NAME_REPLACE;
	/* Under the metadata lock: the other hosts' stripe locks come and go
	 * meanwhile, and no other change to the table races ours. */
	r = crp_array_meta_lock(m->a);
	if (r == 0) {
		int e;

		r = write_names(m);
		e = crp_array_meta_unlock(m->a);
		r = r ? r : e;
	}
	if (r < 0) {
		snprintf(err, errlen, "cannot record the name of member %s: %s", spec,
			 crp_strerror(r));
		goto out;
	}
	m->replacing = pos + 1;
	if (memcmp(m->pos_uuid[pos], c.uuid, 16)) {
		r = crp_array_swap_member(m->a, pos, mem, CRP_AM_REBUILDING);
		if (r < 0) {
			m->replacing = 0;
			snprintf(err, errlen, "cannot put member %s at position %d: %s", spec, pos,
				 crp_strerror(r));
			goto out;
		}
		mem = NULL;
		memcpy(m->pos_uuid[pos], c.uuid, 16);
	}
	crp_array_set_mstate(m->a, pos, CRP_AM_REBUILDING);
	r = crp_meta_members_update(m, replace_fn, &c);
	m->replacing = 0;
	if (r < 0) {
		/* Not taken: the position stays as the table has it. */
		crp_array_mark_failed(m->a, pos);
		(void)crp_array_take_failures(m->a);
		(void)crp_meta_members_reload(m);
	}
	if (r == -CRP_EDEGRADED) {
		snprintf(err, errlen, "taking position %d out for the rebuild would leave the array "
			 "without enough members: put the new member in for one that is failed or "
			 "missing", pos);
		goto out;
	}
	if (r < 0) {
		snprintf(err, errlen, "cannot record the new member in the member table: %s",
			 crp_strerror(r));
		goto out;
	}
	r = 0;
	*resumed = c.resume;
	r = 0;
out:
	if (mem)
		crp_member_close(mem);
	free(buf);
	return r;
}

struct ckpt_ctx {
	int pos;
	uint8_t uuid[16];
	uint64_t checkpoint;
	bool done;
	bool gone;	/* the position is no longer the rebuild we run */
};

static int ckpt_fn(struct crp_meta *m, struct crp_label *l, void *ctx)
{
	struct ckpt_ctx *c = ctx;
	struct crp_member_ent *e = &l->table[c->pos];

	if (e->state != CRP_MS_REBUILDING || memcmp(e->uuid, c->uuid, 16)) {
		c->gone = true;
		return 1;
	}
	if (c->done) {
		e->state = CRP_MS_IN_SYNC;
		e->checkpoint = 0;
		l->rebuilder[0] = '\0';
		l->rebuild_ns = 0;
	} else {
		if (c->checkpoint <= e->checkpoint && strcmp(l->rebuilder, m->host) == 0)
			return 1;
		e->checkpoint = CRP_MAX(c->checkpoint, e->checkpoint);
		snprintf(l->rebuilder, sizeof(l->rebuilder), "%s", m->host);
		l->rebuild_ns = crp_wall_ns();
	}
	return 0;
}

int crp_meta_rebuild(struct crp_meta *m, int pos, const struct crp_rebuild_opts *o)
{
	struct ckpt_ctx c = { .pos = pos };
	uint64_t total = m->geom.nstripes, s, t0 = crp_now_ns(), last_ckpt = t0, start;
	uint64_t sbytes = m->geom.chunk;
	uint32_t batch = REBUILD_BATCH;
	int r;

	if (m->ro)
		return -EROFS;
	r = crp_meta_members_reload(m);
	if (r < 0)
		return r;
	if (pos < 0 || (uint32_t)pos >= m->mt.nmembers ||
	    m->mt.table[pos].state != CRP_MS_REBUILDING)
		return -EINVAL;
	memcpy(c.uuid, m->mt.table[pos].uuid, 16);
	start = s = CRP_MIN(m->mt.table[pos].checkpoint, total);
	c.checkpoint = s;
	r = crp_meta_members_update(m, ckpt_fn, &c); /* we are the rebuilder now */
	if (r < 0)
		return r;
	if (c.gone)
		return -ECANCELED;
	if (o && o->progress)
		o->progress(o->ctx, s, total, 0, start);
	while (s < total) {
		uint32_t n = (uint32_t)CRP_MIN((uint64_t)batch, total - s);
		uint64_t now, held = 0;

		if (o && o->stop && atomic_load(o->stop)) {
			/* Stopped: what is done is kept for the next run. */
			c.checkpoint = s;
			r = crp_meta_members_update(m, ckpt_fn, &c);
			return r < 0 ? r : -EINTR;
		}
		r = crp_array_rebuild_stripes(m->a, s, n, pos, &held);
		if (r < 0) {
			if (!crp_array_writable(m->a, pos))
				r = -CRP_EMEMBER; /* the new member failed */
			return r;
		}
		s += n;
		now = crp_now_ns();
		if (o && o->progress)
			o->progress(o->ctx, s, total, (s - start) * sbytes, start);
		/*
		 * A batch holds every member.  While other hosts live, leave
		 * the members to them a while (half as long as the batch held
		 * them, its wait for the locks not counted, as scrub does): back to back batches would starve
		 * their writes and heartbeats, and in reserve mode their reads
		 * of the host slots too; after a dead timeout of that they take
		 * the rebuilder for a hung host and reset the members under it.
		 */
		if (crp_array_peers(m->a) > 0 && s < total)
			crp_sleep_ns(held / 2);
		batch = crp_hold_all_next(batch, REBUILD_BATCH, held, crp_array_peers(m->a));
		/* A rate limit: sleep until the bytes done so far are due. */
		if (o && o->rate_bps) {
			uint64_t due = t0 + (s - start) * sbytes * 1000000000ull / o->rate_bps;

			if (due > now)
				crp_sleep_ns(due - now);
		}
		if (now - last_ckpt >= CHECKPOINT_NS || s == total) {
			c.checkpoint = s;
			r = crp_meta_members_update(m, ckpt_fn, &c);
			if (r < 0)
				return r;
			if (c.gone)
				return -ECANCELED;
			last_ckpt = now;
		}
	}
	c.done = true;
	r = crp_meta_members_update(m, ckpt_fn, &c);
	if (r == 0 && c.gone)
		r = -ECANCELED;
	if (r == 0)
		crp_warn("position %d rebuilt (%llu stripes): the array is redundant again", pos,
			 (unsigned long long)total);
	return r;
}
