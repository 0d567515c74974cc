/*
 * Opening a crpfs array: labels (which member is which), the superblock
 * (from the RAID area, rebuilt from parity, or from a label's copy), the
 * journals of slots left active, and this host's slot.
 *
 * Issue 3 runs one host: a slot found active at open belonged to a host
 * that died, and is recovered here.  Issue 4 puts the liveness check
 * (heartbeat) and the recovery lock in front of that.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "crpfs/err.h"
#include "crpfs/log.h"
#include "crpfs/util.h"
#include "meta_i.h"

int crp_meta_read_labels(const char *const *specs, int n, const char *host, uint32_t timeout_ms,
			 const char **sorted, struct crp_label *label, char *err, size_t errlen)
{
	struct crp_member_opts mo = { .host = host, .timeout_ms = timeout_ms };
	struct crp_label l, first;
	uint8_t *buf = crp_alloc_buf(CRP_BLOCK);
	char why[200];
	int r = 0;

	if (!buf)
		return -ENOMEM;
	if (n < 1 || n > CRP_MAX_MEMBERS) {
		snprintf(err, errlen, "an array has 1 to %d members, not %d", CRP_MAX_MEMBERS, n);
		r = -EINVAL;
		goto out;
	}
	for (int i = 0; i < n; i++)
		sorted[i] = NULL;
	for (int i = 0; i < n; i++) {
		struct crp_member *mem;

		r = crp_member_open(specs[i], &mo, &mem, err, errlen);
		if (r < 0)
			goto out;
		r = crp_member_read(mem, CRP_LABEL_OFFSET, buf, CRP_BLOCK);
		/* reserve mode: another host's lock blocks reads for a few
		 * round trips; retry within the command timeout. */
		for (uint64_t t0 = crp_now_ns(); r == -CRP_ECONFLICT &&
		     crp_now_ns() - t0 < (uint64_t)crp_member_default_timeout(mem) * 1000000ull;) {
			crp_sleep_ns(1000000ull + crp_random() % 4000000ull);
			r = crp_member_read(mem, CRP_LABEL_OFFSET, buf, CRP_BLOCK);
		}
		crp_member_close(mem);
		if (r < 0) {
			snprintf(err, errlen, "member %s: cannot read its label: %s", specs[i],
				 crp_strerror(r));
			goto out;
		}
		r = crp_label_in(buf, &l, why, sizeof(why));
		if (r < 0) {
			snprintf(err, errlen, "member %s: %s; is it a crpfs member (mkfs.crpfs)?",
				 specs[i], why);
			goto out;
		}
		if (i == 0) {
			first = l;
			if (l.nmembers != (uint32_t)n) {
				snprintf(err, errlen,
					 "member %s belongs to an array of %u members, but %d were given",
					 specs[i], l.nmembers, n);
				r = -CRP_EGEOMETRY;
				goto out;
			}
		} else if (memcmp(l.uuid, first.uuid, 16) || l.generation != first.generation) {
			char a[37], b[37];

			crp_uuid_str(l.uuid, a);
			crp_uuid_str(first.uuid, b);
			snprintf(err, errlen, "member %s belongs to array %s, but %s belongs to %s",
				 specs[i], a, specs[0], b);
			r = -CRP_ECORRUPT;
			goto out;
		}
		if (sorted[l.index]) {
			snprintf(err, errlen, "members %s and %s both claim position %u", sorted[l.index],
				 specs[i], l.index);
			r = -CRP_ECORRUPT;
			goto out;
		}
		sorted[l.index] = specs[i];
		if (l.index == 0 && label)
			*label = l;
	}
	r = 0;
out:
	free(buf);
	return r;
}

static uint64_t slot_blkno(int slot)
{
	return (CRP_SLOT_OFFSET + (uint64_t)slot * CRP_BLOCK) / CRP_BLOCK;
}

int crp_meta_slot_read(struct crp_meta *m, int slot, struct crp_slot *out)
{
	uint8_t *buf = crp_alloc_buf(CRP_BLOCK);
	struct crp_slot s;
	int r = -CRP_ECORRUPT;

	if (!buf)
		return -ENOMEM;
	/*
	 * Mirrored on every member, written without a stripe transaction, so
	 * a copy may lag (a member reserved by another host refused the
	 * write).  Every write of a slot bumps its counter: the good copy
	 * with the highest counter is the slot.
	 */
	for (int i = 0; i < m->geom.nmembers; i++) {
		struct crp_member *mem = crp_array_member(m->a, i);

		if (crp_member_failed(mem) ||
		    crp_member_read(mem, slot_blkno(slot) * CRP_BLOCK, buf, CRP_BLOCK) < 0)
			continue;
		if (crp_slot_in(buf, slot_blkno(slot), m->fsid, &s, NULL, 0) == 0 &&
		    s.slot == (uint32_t)slot && (r < 0 || s.heartbeat > out->heartbeat)) {
			*out = s;
			r = 0;
		}
	}
	free(buf);
	return r;
}

int crp_meta_slots_watch(struct crp_meta *m, uint64_t watch_ns, struct crp_slot *slots,
			 bool *moved)
{
	int n = (int)m->sb.max_hosts, r;
	uint64_t start = crp_now_ns();
	struct crp_slot s;
	bool waiting;

	for (int i = 0; i < n; i++) {
		r = crp_meta_slot_read(m, i, &slots[i]);
		if (r < 0)
			return r;
		moved[i] = false;
	}
	for (;;) {
		waiting = false;
		for (int i = 0; i < n; i++)
			waiting |= slots[i].state != CRP_SLOT_FREE && !moved[i];
		if (!waiting || crp_now_ns() - start >= watch_ns)
			return 0;
		crp_sleep_ns(CRP_MIN(watch_ns / 10, 100000000ull));
		for (int i = 0; i < n; i++) {
			if (slots[i].state == CRP_SLOT_FREE || moved[i])
				continue;
			r = crp_meta_slot_read(m, i, &s);
			if (r < 0)
				return r;
			if (s.heartbeat != slots[i].heartbeat || s.state != slots[i].state)
				moved[i] = true;
			slots[i] = s;
		}
	}
}

int crp_meta_slot_adopt(struct crp_meta *m, int slot, const struct crp_slot *s)
{
	int r;

	m->slot = slot;
	m->heartbeat = s->heartbeat;
	m->slot_mount_ns = s->mount_ns;
	r = crp_meta_journal_position(m, slot, &m->j_pos, &m->j_seq);
	if (r < 0)
		return r;
	/* A table left by an earlier holder of the slot holds nothing now. */
	r = crp_meta_open_clear(m, slot);
	if (r < 0)
		return r;
	return crp_meta_intent_attach(m);
}

int crp_meta_slot_write(struct crp_meta *m, const struct crp_slot *s)
{
	uint8_t *buf = crp_alloc_buf(CRP_BLOCK);
	bool want[CRP_MAX_MEMBERS];
	uint64_t deadline = crp_now_ns() +
			    (uint64_t)(m->timeout_ms ? m->timeout_ms : CRP_DEFAULT_TIMEOUT_MS) * 4000000ull;
	int r = 0, ok = 0;

	if (!buf)
		return -ENOMEM;
	crp_slot_out(s, slot_blkno((int)s->slot), m->fsid, buf);
	for (int i = 0; i < m->geom.nmembers; i++)
		want[i] = !crp_member_failed(crp_array_member(m->a, i));
	/* Every member that can take it; one reserved by another host (reserve
	 * mode) is tried again for a while. */
	for (unsigned attempt = 0;; attempt++) {
		bool conflict = false;

		for (int i = 0; i < m->geom.nmembers; i++) {
			struct crp_member *mem = crp_array_member(m->a, i);
			int e;

			if (!want[i])
				continue;
			e = crp_member_write(mem, slot_blkno((int)s->slot) * CRP_BLOCK, buf, CRP_BLOCK);
			if (e == 0) {
				ok++;
				want[i] = false;
			} else if (e == -CRP_ECONFLICT) {
				conflict = true;
				r = r ? r : e;
			} else {
				want[i] = false;
				r = r && r != -CRP_ECONFLICT ? r : e;
			}
		}
		/* One copy is enough: readers take the freshest. */
		if (ok || !conflict || crp_now_ns() >= deadline)
			break;
		crp_sleep_ns((500000ull << CRP_MIN(attempt, 4u)) + crp_random() % 500000ull);
	}
	free(buf);
	return ok ? 0 : (r ? r : -CRP_EDEGRADED);
}

/* A superblock that decodes and belongs to the array the labels describe. */
static bool sb_ok(const void *blk, void *ctx)
{
	const struct crp_label *l = ctx;
	struct crp_sb sb;

	return crp_sb_in(blk, &sb, NULL, 0) == 0 && !memcmp(sb.uuid, l->uuid, 16) &&
	       sb.generation == l->generation && sb.nstripes == l->nstripes;
}

static int read_sb(struct crp_meta *m, const struct crp_label *l, char *err, size_t errlen)
{
	uint8_t *buf = crp_alloc_buf(CRP_BLOCK);
	char why[200];
	int r;

	if (!buf)
		return -ENOMEM;
	r = crp_array_read(m->a, 0, buf, CRP_BLOCK);
	if (r < 0) {
		snprintf(err, errlen, "cannot read the superblock: %s", crp_strerror(r));
		goto out;
	}
	r = crp_sb_in(buf, &m->sb, why, sizeof(why));
	if (r < 0) {
		/* Rebuild from parity (RAID-6: two columns if need be), else
		 * take the label's copy. */
		if (crp_meta_rebuild_as(m, 0, buf, sb_ok, (void *)l, 0, why, false) == 0)
			r = crp_sb_in(buf, &m->sb, NULL, 0);
		if (r < 0) {
			crp_warn("superblock: %s; using the copy in member %s's label", why,
				 crp_member_spec(crp_array_member(m->a, 0)));
			m->sb = l->sb;
			r = 0;
			if (!m->ro) {
				memset(buf, 0, CRP_BLOCK);
				crp_sb_out(&m->sb, buf);
				r = crp_array_write(m->a, 0, buf, CRP_BLOCK);
			}
		}
	}
	if (r == 0 && (memcmp(m->sb.uuid, l->uuid, 16) || m->sb.generation != l->generation ||
		       m->sb.nstripes != l->nstripes)) {
		snprintf(err, errlen, "the superblock does not match the labels (another mkfs?)");
		r = -CRP_ECORRUPT;
	}
out:
	free(buf);
	return r;
}

static int recover_slots(struct crp_meta *m, char *err, size_t errlen)
{
	struct crp_slot s;
	int r;

	for (int i = 0; i < (int)m->sb.max_hosts; i++) {
		bool pending = false, chain = false;

		r = crp_meta_slot_read(m, i, &s);
		if (r < 0) {
			snprintf(err, errlen, "host slot %d is unreadable on every member", i);
			return r;
		}
		if (s.state == CRP_SLOT_FREE)
			continue;
		if (m->ro) {
			r = crp_meta_journal_pending(m, i, &pending, &chain);
			if (r < 0 || pending)
				m->journal_dirty = true;
			else if (chain)
				m->journal_chain = true;
			continue;
		}
		r = crp_meta_replay(m, i);
		if (r < 0) {
			snprintf(err, errlen, "cannot replay the journal of host slot %d (%s): %s", i,
				 s.host, crp_strerror(r));
			return r;
		}
		if (r > 0)
			crp_info("replayed %d transactions of host slot %d (%s)", r, i, s.host);
		r = crp_meta_intent_resync(m, i, NULL);
		if (r < 0) {
			snprintf(err, errlen, "cannot resync the stripes of host slot %d (%s): %s", i,
				 s.host, crp_strerror(r));
			return r;
		}
		/* Its host is gone: so are its opens. */
		r = crp_meta_open_clear(m, i);
		if (r < 0) {
			snprintf(err, errlen, "cannot empty the open table of host slot %d (%s): %s",
				 i, s.host, crp_strerror(r));
			return r;
		}
		m->recovered |= 1ull << i;
	}
	return 0;
}

static int claim_slot(struct crp_meta *m, char *err, size_t errlen)
{
	struct crp_slot s, mine = { 0 };
	int free_slot = -1, own = -1, r;

	for (int i = 0; i < (int)m->sb.max_hosts; i++) {
		r = crp_meta_slot_read(m, i, &s);
		if (r < 0)
			return r;
		if (s.state != CRP_SLOT_FREE && !strcmp(s.host, m->host) && own < 0)
			own = i;
		if (s.state == CRP_SLOT_FREE && free_slot < 0)
			free_slot = i;
	}
	if (own < 0)
		own = free_slot;
	if (own < 0) {
		snprintf(err, errlen, "all %u host slots are taken; mkfs.crpfs -n sets how many hosts",
			 m->sb.max_hosts);
		return -EBUSY;
	}
	r = crp_meta_slot_read(m, own, &s);
	if (r < 0)
		return r;
	mine = s;
	mine.slot = (uint32_t)own;
	mine.state = CRP_SLOT_ACTIVE;
	mine.heartbeat = s.heartbeat + 1;
	mine.heartbeat_ns = crp_wall_ns();
	mine.mount_ns = mine.heartbeat_ns;
	mine.pr_key = crp_array_pr_key(m->a);
	snprintf(mine.host, sizeof(mine.host), "%s", m->host);
	r = crp_meta_slot_write(m, &mine);
	if (r < 0) {
		snprintf(err, errlen, "cannot write host slot %d: %s", own, crp_strerror(r));
		return r;
	}
	m->slot = own;
	m->heartbeat = mine.heartbeat;
	m->slot_mount_ns = mine.mount_ns;
	r = crp_meta_journal_position(m, own, &m->j_pos, &m->j_seq);
	if (r < 0)
		return r;
	return crp_meta_open_clear(m, own);
}

/* Free the slots recovered at open (except ours). */
static int release_recovered(struct crp_meta *m)
{
	for (int i = 0; i < (int)m->sb.max_hosts; i++) {
		struct crp_slot s;
		int r;

		if (!(m->recovered & (1ull << i)) || i == m->slot)
			continue;
		r = crp_meta_slot_read(m, i, &s);
		if (r < 0)
			return r;
		s.state = CRP_SLOT_FREE;
		s.heartbeat++;
		r = crp_meta_slot_write(m, &s);
		if (r < 0)
			return r;
	}
	return 0;
}

int crp_meta_open(const char *const *specs, int n, const struct crp_meta_opts *opts,
		  struct crp_meta **out, char *err, size_t errlen)
{
	struct crp_array_opts ao = { 0 };
	struct crp_assembly *as = NULL;
	char (*why)[256] = NULL;
	struct crp_label l;
	struct crp_meta *m;
	int r;

	*out = NULL;
	m = calloc(1, sizeof(*m));
	if (!m)
		return -ENOMEM;
	m->slot = -1;
	m->hw_slot = -1;
	m->ro = opts->ro;
	if (opts->host && opts->host[0])
		snprintf(m->host, sizeof(m->host), "%s", opts->host);
	else if (gethostname(m->host, sizeof(m->host) - 1) < 0 || !m->host[0])
		snprintf(m->host, sizeof(m->host), "localhost");
	m->cache = g_hash_table_new_full(g_int64_hash, g_int64_equal, NULL, crp_meta_mblk_free);
	m->dirty = g_ptr_array_new();
	m->tx_freed = g_hash_table_new(g_direct_hash, g_direct_equal);
	m->tx_new = g_hash_table_new(g_direct_hash, g_direct_equal);
	m->lazy = g_hash_table_new_full(g_int64_hash, g_int64_equal, NULL, crp_meta_mblk_free);
	m->hold_max_ns = CRP_HOLD_MAX_NS;
	r = crp_meta_opentab_init(m);
	if (r < 0)
		goto out;

	m->timeout_ms = opts->timeout_ms;
	as = calloc(1, sizeof(*as));
	why = calloc(CRP_MAX_MEMBERS, sizeof(*why));
	if (!as || !why) {
		r = -ENOMEM;
		goto out;
	}
	r = crp_meta_assemble(specs, n, m->host, opts->timeout_ms, as, err, errlen);
	if (r < 0)
		goto out;
	l = as->label;
	if (as->misnamed && !m->ro) {
		/* The list is wrong about a member that is there: refuse
		 * rather than guess, or record it failed (a full rebuild). */
		size_t o = 0;
		bool first = true;

		for (uint32_t p = 0; p < l.nmembers && o < errlen; p++) {
			if (!(as->misnamed & (1ull << p)))
				continue;
			o += (size_t)snprintf(err + o, errlen - o, "%s position %u's member, %s "
					      "(its name at mkfs)", first ?
					      "the member list does not name" : "; nor", p,
					      as->spec[p]);
			first = false;
		}
		for (int i = 0; i < n && o < errlen; i++)
			if (!as->given_pos[i] && !crp_spec_is_missing(specs[i]))
				o += (size_t)snprintf(err + o, errlen - o, "; it names %s, which cannot "
						      "be used (%s)", specs[i],
						      as->given_why[i][0] ? as->given_why[i] :
									    "stale");
		if (o < errlen)
			snprintf(err + o, errlen - o, "; give each member its name, or \"missing\" "
				 "for one to leave out");
		r = -EINVAL;
		goto out;
	}
	if (as->lost > as->tolerance) {
		char lost[1024];

		crp_meta_assembly_lost(as, lost, sizeof(lost));
		snprintf(err, errlen, "the array cannot run: %d of its %u members are out of service "
			 "and RAID-%u survives %d (%s)", as->lost, l.nmembers, l.level,
			 as->tolerance, lost);
		r = -CRP_EDEGRADED;
		goto out;
	}
	ao.host = m->host;
	ao.timeout_ms = opts->timeout_ms;
	ao.lock_mode = l.lock_mode ? CRP_LOCK_PR : CRP_LOCK_RESERVE;
	r = crp_array_open_degraded(as->spec, n, &ao, as->tolerance, why, &m->a, err, errlen);
	if (r < 0)
		goto out;
	for (int p = 0; p < n; p++) {
		/* Assembled, but not opened now: missing after all. */
		if (as->spec[p] && why[p][0]) {
			snprintf(as->why[p], sizeof(as->why[p]), "missing: %s", why[p]);
			as->spec[p] = NULL;
			as->missing |= 1ull << p;
		}
	}
	r = crp_geom_init(&m->geom, (int)l.level, n, l.chunk, l.data_offset, l.member_size, err,
			  errlen);
	if (r < 0)
		goto out;
	if (l.nstripes > m->geom.nstripes) {
		snprintf(err, errlen, "labels say %llu stripes but only %llu fit",
			 (unsigned long long)l.nstripes, (unsigned long long)m->geom.nstripes);
		r = -CRP_ECORRUPT;
		goto out;
	}
	m->geom.nstripes = l.nstripes;
	if (crp_array_min_member_size(m->a) < l.data_offset + l.nstripes * l.chunk) {
		snprintf(err, errlen, "a member is smaller (%llu bytes) than the array needs (%llu)",
			 (unsigned long long)crp_array_min_member_size(m->a),
			 (unsigned long long)(l.data_offset + l.nstripes * l.chunk));
		r = -CRP_EGEOMETRY;
		goto out;
	}
	r = crp_array_set_geometry(m->a, &m->geom);
	if (r < 0) {
		snprintf(err, errlen, "cannot set the array geometry: %s", crp_strerror(r));
		goto out;
	}
	crp_meta_members_attach(m, as);
	if (crp_array_nlost(m->a) > as->tolerance) {
		char lost[1024];

		crp_meta_assembly_lost(as, lost, sizeof(lost));
		snprintf(err, errlen, "the array cannot run: %d of its %u members are out of service "
			 "and RAID-%u survives %d (%s)", crp_array_nlost(m->a), l.nmembers, l.level,
			 as->tolerance, lost);
		r = -CRP_EDEGRADED;
		goto out;
	}
	if (crp_array_nlost(m->a)) {
		char lost[1024];

		crp_meta_assembly_lost(as, lost, sizeof(lost));
		crp_warn("the array runs degraded: %d of its %u members out of service (%s); reads "
			 "of what they held are rebuilt from parity%s", crp_array_nlost(m->a),
			 l.nmembers, lost,
			 m->ro ? "" : "; missing members are recorded failed: crpfs replace puts a "
				      "new one in");
	}
	for (int p = 0; p < n; p++)
		if (as->renamed & (1ull << p))
			crp_warn("position %d is served by %s, the name the array recorded for it "
				 "(not the one given)", p, as->spec[p]);
	r = read_sb(m, &l, err, errlen);
	if (r < 0)
		goto out;
	m->fsid = crp_fsid(&m->sb);
	if (opts->replay || m->ro) {
		r = recover_slots(m, err, errlen);
		if (r < 0)
			goto out;
	}
	m->salvage = opts->salvage;
	r = crp_meta_load_counts(m);
	if (r < 0) {
		snprintf(err, errlen,
			 "cannot read the allocation bitmaps: %s (crpfs fsck --repair rebuilds "
			 "what parity cannot from the inodes)",
			 crp_strerror(r));
		goto out;
	}
	m->ag_cursor = 0;
	m->ino_cursor = m->sb.root_ino + 1;
	if (opts->claim_slot && !m->ro) {
		r = claim_slot(m, err, errlen);
		if (r < 0)
			goto out;
		r = release_recovered(m);
		if (r < 0)
			goto out;
		r = crp_meta_intent_attach(m);
		if (r < 0) {
			snprintf(err, errlen, "cannot start the write-intent log of host slot %d: %s",
				 m->slot, crp_strerror(r));
			goto out;
		}
	}
	/* Missing members are recorded failed, so that they are never taken
	 * for current again (read-only: nothing is written).  It takes the
	 * metadata lock, which a dead host may hold (pr mode keeps a dead
	 * host's reservation): a mount records them after joining the
	 * cluster, whose recovery breaks such locks. */
	if (!m->ro)
		m->unreachable |= as->missing;
	m->observer = opts->observer;
	if (!m->ro && m->unreachable && !opts->defer_members && !m->observer) {
		r = crp_meta_members_update(m, NULL, NULL);
		if (r < 0) {
			snprintf(err, errlen, "cannot record the missing members in the member "
				 "table: %s", crp_strerror(r));
			goto out;
		}
	}
	*out = m;
	m = NULL;
out:
	free(as);
	free(why);
	if (m) {
		if (m->a)
			crp_array_close(m->a);
		m->a = NULL;
		m->slot = -1;
		crp_meta_close(m);
	}
	return r;
}

/*
 * Free our slot at a clean close, under the metadata lock (a survivor marks
 * slots under it too) and only if it is still ours: a host that was
 * declared dead finds it recovered, and leaves it alone.
 */
static int free_own_slot(struct crp_meta *m)
{
	struct crp_slot s;
	int r, e;

	r = crp_array_meta_lock(m->a);
	if (r < 0)
		return r;
	/* No survivor marks slots while we hold the lock, and from here on
	 * no beat of ours lands: the slot read below is the last word. */
	if (m->slot_free_hook)
		m->slot_free_hook(m->slot_free_ctx);
	r = crp_meta_slot_read(m, m->slot, &s);
	if (r == 0 && (s.state != CRP_SLOT_ACTIVE || strcmp(s.host, m->host) ||
		       s.mount_ns != m->slot_mount_ns)) {
		/* Recovered (or freed) by another host meanwhile: not ours to free. */
		crp_warn("host %s: slot %d is no longer ours at unmount (%s%s%s); left as it is",
			 m->host, m->slot, s.state == CRP_SLOT_FREE ? "free" : "held by ",
			 s.state == CRP_SLOT_FREE ? "" : s.host,
			 s.recoverer[0] ? ", recovered" : "");
		goto out;
	}
	if (r == 0) {
		s.state = CRP_SLOT_FREE;
		s.heartbeat++;
		r = crp_meta_slot_write(m, &s);
	}
out:
	e = crp_array_meta_unlock(m->a);
	return r ? r : e;
}

int crp_meta_shutdown(struct crp_meta *m)
{
	int r = 0, e;

	if (!m || m->shut)
		return 0;
	m->shut = true;
	if (m->a && !m->ro && m->slot >= 0 && !crp_array_fenced(m->a)) {

		r = crp_meta_commit(m);
		e = crp_array_sync(m->a);
		r = r ? r : e;
		crp_meta_intent_detach(m, r == 0);
		if (!r) {
			/* Everything is in place: the journal holds nothing to redo,
			 * and we hold nothing open any more. */
			for (unsigned k = 0; k < CRP_OTABLE_BLOCKS; k++)
				g_array_set_size(m->ot_ents[k], 0);
			e = crp_meta_open_clear(m, m->slot);
			r = r ? r : e;
			e = crp_meta_journal_settle(m);
			r = r ? r : e;
			e = crp_array_sync(m->a);
			r = r ? r : e;
			e = free_own_slot(m);
			r = r ? r : e;
			e = crp_array_sync(m->a);
			r = r ? r : e;
		}
	}
	return r;
}

int crp_meta_close(struct crp_meta *m)
{
	int r;

	if (!m)
		return 0;
	r = crp_meta_shutdown(m);
	crp_meta_intent_detach(m, false);
	if (m->a)
		crp_array_close(m->a);
	if (m->dirty)
		g_ptr_array_free(m->dirty, TRUE);
	if (m->cache)
		g_hash_table_destroy(m->cache);
	crp_meta_undo_free(m);
	if (m->tx_freed)
		g_hash_table_destroy(m->tx_freed);
	if (m->tx_new)
		g_hash_table_destroy(m->tx_new);
	if (m->lazy)
		g_hash_table_destroy(m->lazy);
	crp_meta_dheld_free(m);
	free(m->ag_free);
	free(m->ig_free);
	free(m->ag_stale);
	free(m->ig_stale);
	free(m->sh);
	free(m->peek);
	if (m->damage)
		g_array_free(m->damage, TRUE);
	crp_meta_opentab_free(m);
	free(m);
	return r;
}
