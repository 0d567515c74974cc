/*
 * The member table: which member holds each position of the array and in
 * what state (in sync, failed, being rebuilt), kept in every member's
 * label (crpfs(5), "Member table").
 *
 * Assembly.  At open the labels of the members given are read; the one
 * with the highest events carries the table.  A position is served by the
 * given member whose own identity (member_uuid) the table names there; a
 * member whose label names a position the table gives to another member
 * (it was replaced) or marks failed is stale and never read; a position
 * the list does not serve is tried under the name the array last recorded
 * for it (a replacement another host added).  In-sync positions nobody
 * can serve are missing: the array runs without them when the level
 * allows (one for RAID-4/5, two for RAID-6), and they are recorded failed
 * on the disks when the mount writes.
 *
 * Changes.  Every change goes through crp_meta_members_update, under the
 * metadata lock: read the freshest table from the labels, fold in the
 * failures the array saw, apply the change, write the table with events
 * + 1 to the label of every member still written, and put the low bits of
 * the new events in the shared state block (member_epoch).  Every host
 * checks that epoch where it checks the generation (under the lock at
 * every metadata transaction, and in its poll), and reads the labels
 * again when it moved: a failure recorded by one host is known to every
 * other before it next reads metadata, and within a poll otherwise.
 *
 * Failures and writes.  The array calls the failure hook before a write
 * goes on without a member that just failed; the hook records the failure
 * first.  A crash after a degraded write therefore never brings the stale
 * member back as current: its label carries the older table.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "crpfs/err.h"
#include "crpfs/log.h"
#include "crpfs/util.h"
#include "meta_i.h"

static const char *state_name(uint32_t st)
{
	switch (st) {
	case CRP_MS_IN_SYNC: return "in sync";
	case CRP_MS_FAILED: return "failed";
	case CRP_MS_REBUILDING: return "rebuilding";
	default: return "none";
	}
}

int crp_meta_tolerance(uint32_t level)
{
	return level == 6 ? 2 : 1;
}

/* Read @mem's label, retrying while another host's reservation blocks the
 * read (reserve mode), within the member's timeout. */
static int read_label(struct crp_member *mem, struct crp_label *l, char *why, size_t whylen)
{
	uint8_t *buf = crp_alloc_buf(CRP_BLOCK);
	int r;

	if (!buf)
		return -ENOMEM;
	r = crp_member_read(mem, CRP_LABEL_OFFSET, buf, CRP_BLOCK);
	for (uint64_t t0 = crp_now_ns(); r == -CRP_ECONFLICT &&
	     crp_now_ns() - t0 < (uint64_t)crp_member_default_timeout(mem) * 1000000ull;) {
		crp_sleep_ns(1000000ull + crp_random() % 4000000ull);
		r = crp_member_read(mem, CRP_LABEL_OFFSET, buf, CRP_BLOCK);
	}
	if (r < 0) {
		snprintf(why, whylen, "cannot read its label: %s", crp_strerror(r));
		goto out;
	}
	r = crp_label_in(buf, l, why, whylen);
out:
	free(buf);
	return r;
}

/* The member names area of @mem into @names (every position).  With
 * @table, a position's record replaces what is there only if it names the
 * member the table has there (names from several members are merged). */
static int read_names_of(struct crp_member *mem, char (*names)[CRP_NAME_SPEC_MAX],
			 uint8_t (*uuids)[16], uint16_t *origins,
			 const struct crp_member_ent *table);

static int read_names(struct crp_member *mem, char (*names)[CRP_NAME_SPEC_MAX],
		      uint8_t (*uuids)[16], uint16_t *origins)
{
	return read_names_of(mem, names, uuids, origins, NULL);
}

static int read_names_of(struct crp_member *mem, char (*names)[CRP_NAME_SPEC_MAX],
			 uint8_t (*uuids)[16], uint16_t *origins,
			 const struct crp_member_ent *table)
{
	size_t len = (size_t)CRP_LABEL_MEMBERS * CRP_NAME_REC;
	uint8_t *buf = crp_alloc_buf(len);
	int r;

	if (!buf)
		return -ENOMEM;
	r = crp_member_read(mem, CRP_NAMES_OFFSET, buf, (uint32_t)len);
	/* reserve mode: another host's reservation refuses reads a while. */
	for (uint64_t t0 = crp_now_ns(); r == -CRP_ECONFLICT &&
	     crp_now_ns() - t0 < (uint64_t)crp_member_default_timeout(mem) * 1000000ull;) {
		crp_sleep_ns(1000000ull + crp_random() % 4000000ull);
		r = crp_member_read(mem, CRP_NAMES_OFFSET, buf, (uint32_t)len);
	}
	for (int i = 0; r == 0 && i < CRP_LABEL_MEMBERS; i++) {
		struct crp_member_name nm;

		if (crp_member_name_in(buf + (size_t)i * CRP_NAME_REC, &nm) != 0)
			continue;
		if (table && (memcmp(nm.uuid, table[i].uuid, 16) ||
			      !memcmp(uuids[i], table[i].uuid, 16)))
			continue;
		snprintf(names[i], CRP_NAME_SPEC_MAX, "%s", nm.spec);
		memcpy(uuids[i], nm.uuid, 16);
		origins[i] = nm.origin;
	}
	free(buf);
	return r;
}

/* ---- assembly ---- */

/* Open @spec and read its label (the member is closed again). */
static int probe(const char *spec, const struct crp_member_opts *mo, struct crp_label *l,
		 char *why, size_t whylen)
{
	struct crp_member *mem;
	int r = crp_member_open(spec, mo, &mem, why, whylen);

	if (r < 0)
		return r;
	r = read_label(mem, l, why, whylen);
	crp_member_close(mem);
	return r;
}

/* Does a given member claim position @p with another identity than the
 * table's (a member since replaced)? */
static bool replaced_here(const struct crp_label *given, const bool *valid, int n, int p,
			  const uint8_t *uuid)
{
	for (int i = 0; i < n; i++)
		if (valid[i] && given[i].index == (uint32_t)p && memcmp(given[i].member_uuid, uuid, 16))
			return true;
	return false;
}

/* Does the list name a member "missing"?  Then it says which are out, and
 * recorded names do not bring one back. */
static bool names_missing(const char *const *specs, int n)
{
	for (int i = 0; i < n; i++)
		if (crp_spec_is_missing(specs[i]))
			return true;
	return false;
}

int crp_meta_assemble(const char *const *specs, int n, const char *host, uint32_t timeout_ms,
		      struct crp_assembly *as, char *err, size_t errlen)
{
	struct crp_member_opts mo = { .host = host, .timeout_ms = timeout_ms };
	struct crp_label *given = calloc((size_t)n, sizeof(*given));
	char (*names)[CRP_NAME_SPEC_MAX] = calloc(CRP_LABEL_MEMBERS, CRP_NAME_SPEC_MAX);
	uint8_t (*nuuids)[16] = calloc(CRP_LABEL_MEMBERS, 16);
	bool *valid = calloc((size_t)n, sizeof(*valid));
	int best = -1, lost = 0, r = 0;

	memset(as, 0, sizeof(*as));
	if (!given || !names || !nuuids || !valid) {
		r = -ENOMEM;
		goto out;
	}
	if (n < 1 || n > CRP_LABEL_MEMBERS) {
		snprintf(err, errlen, "an array has 1 to %d members, not %d", CRP_LABEL_MEMBERS, n);
		r = -EINVAL;
		goto out;
	}
	for (int i = 0; i < n; i++) {
		if (crp_spec_is_missing(specs[i])) {
			snprintf(as->given_why[i], sizeof(as->given_why[i]), "named missing");
			continue;
		}
		for (int j = 0; j < i; j++)
			if (!crp_spec_is_missing(specs[j]) && !strcmp(specs[i], specs[j])) {
				snprintf(err, errlen, "member '%s' is given twice", specs[i]);
				r = -EINVAL;
				goto out;
			}
		r = probe(specs[i], &mo, &given[i], as->given_why[i],
			  sizeof(as->given_why[i]));
		if (r == -CRP_EBADSPEC || r == -ENOMEM) {
			snprintf(err, errlen, "%s", as->given_why[i]);
			goto out;
		}
		if (r == -CRP_ECORRUPT && strstr(as->given_why[i], "no crpfs label")) {
			/* It answers, and is not a member: a wrong name, not a lost
			 * member.  (One whose label was destroyed: name it missing.) */
			snprintf(err, errlen, "member %s: %s; is it a crpfs member (mkfs.crpfs)?  A "
				 "member that is gone or whose label was destroyed can be named "
				 "\"missing\"", specs[i], as->given_why[i]);
			goto out;
		}
		valid[i] = r == 0;
		if (valid[i])
			as->given_why[i][0] = '\0'; /* a tolerated hitch (a conflict) said nothing */
		r = 0;
		if (!valid[i])
			continue;
		if (best >= 0 && (memcmp(given[i].uuid, given[best].uuid, 16) ||
				  given[i].generation != given[best].generation)) {
			char a[37], b[37];

			crp_uuid_str(given[i].uuid, a);
			crp_uuid_str(given[best].uuid, b);
			snprintf(err, errlen, "member %s belongs to array %s, but %s belongs to %s",
				 specs[i], a, specs[best], b);
			r = -CRP_ECORRUPT;
			goto out;
		}
		if (best < 0 || given[i].events > given[best].events)
			best = i;
	}
	if (best < 0) {
		for (int i = 0; i < n; i++)
			if (!crp_spec_is_missing(specs[i])) {
				snprintf(err, errlen, "member %s: %s; is it a crpfs member (mkfs.crpfs)?",
					 specs[i], as->given_why[i]);
				r = -CRP_ECORRUPT;
				goto out;
			}
		snprintf(err, errlen, "every member is named missing");
		r = -CRP_EDEGRADED;
		goto out;
	}
	as->label = given[best];
	if (as->label.nmembers != (uint32_t)n) {
		snprintf(err, errlen,
			 "member %s belongs to an array of %u members, but %d were given (name a "
			 "member that is gone \"missing\" to keep its place)",
			 specs[best], as->label.nmembers, n);
		r = -CRP_EGEOMETRY;
		goto out;
	}
	/* Hints for positions the list does not serve: the freshest names. */
	{
		struct crp_member *mem;
		char why[256];

		if (crp_member_open(specs[best], &mo, &mem, why, sizeof(why)) == 0) {
			(void)read_names(mem, names, nuuids, as->name_origin);
			crp_member_close(mem);
		}
	}
	for (int p = 0; p < n; p++) {
		const struct crp_member_ent *e = &as->label.table[p];
		int found = -1;

		memcpy(as->names[p], names[p], CRP_NAME_SPEC_MAX);
		memcpy(as->name_uuid[p], nuuids[p], 16);
		for (int i = 0; i < n && found < 0; i++)
			if (valid[i] && !memcmp(given[i].member_uuid, e->uuid, 16))
				found = i;
		if (e->state == CRP_MS_FAILED) {
			snprintf(as->why[p], sizeof(as->why[p]), "failed (member table, events %llu)%s%s",
				 (unsigned long long)as->label.events, found >= 0 ? ": stale, " : "",
				 found >= 0 ? specs[found] : "");
			lost++;
			continue;
		}
		if (found < 0 && names[p][0] && !memcmp(nuuids[p], e->uuid, 16) &&
		    (replaced_here(given, valid, n, p, e->uuid) || !names_missing(specs, n))) {
			/* The list names the member that was replaced (it names
			 * the old one, or a name no longer served): the one that
			 * took its place was added under this name.  A position
			 * never replaced whose member is there under its mkfs
			 * name while the list names something else is a list in
			 * error: misnamed, which only a read-only open accepts. */
			struct crp_label l;
			char why[256];

			if (probe(names[p], &mo, &l, why, sizeof(why)) == 0 &&
			    !memcmp(l.member_uuid, e->uuid, 16) && !memcmp(l.uuid, as->label.uuid, 16)) {
				snprintf(as->spec_buf[p], sizeof(as->spec_buf[p]), "%s", names[p]);
				as->spec[p] = as->spec_buf[p];
				as->renamed |= 1ull << p;
				if (!replaced_here(given, valid, n, p, e->uuid) &&
				    as->name_origin[p] != CRP_NAME_REPLACE)
					as->misnamed |= 1ull << p;
				if (e->state == CRP_MS_IN_SYNC)
					continue;
			}
		} else if (found >= 0) {
			as->spec[p] = specs[found];
			as->given_pos[found] = p + 1;
		}
		if (e->state == CRP_MS_REBUILDING) {
			snprintf(as->why[p], sizeof(as->why[p]), "being rebuilt (%llu of %llu stripes)",
				 (unsigned long long)e->checkpoint,
				 (unsigned long long)as->label.nstripes);
			lost++;
			continue;
		}
		if (!as->spec[p]) {
			/* In sync, and nothing here serves it: missing. */
			int g = -1;

			for (int i = 0; i < n && g < 0; i++)
				if (!valid[i] && given[i].index == (uint32_t)p)
					g = i;
			snprintf(as->why[p], sizeof(as->why[p]), "missing");
			as->missing |= 1ull << p;
			lost++;
		}
	}
	/* Given members that serve no position: why each is left out. */
	for (int i = 0; i < n; i++) {
		if (crp_spec_is_missing(specs[i]) || as->given_pos[i])
			continue;
		if (valid[i])
			crp_warn("member %s is stale (it was position %u, which the member table now "
				 "gives to another member or marks failed): not used", specs[i],
				 given[i].index);
		else
			crp_warn("member %s cannot be used: %s", specs[i], as->given_why[i]);
	}
	as->lost = lost;
	as->tolerance = crp_meta_tolerance(as->label.level);
out:
	free(given);
	free(names);
	free(nuuids);
	free(valid);
	return r;
}

/* A sentence naming the positions that are out, for messages. */
void crp_meta_assembly_lost(const struct crp_assembly *as, char *buf, size_t len)
{
	size_t o = 0;

	buf[0] = '\0';
	for (uint32_t p = 0; p < as->label.nmembers && o < len; p++) {
		if (as->spec[p] && as->label.table[p].state == CRP_MS_IN_SYNC)
			continue;
		o += (size_t)snprintf(buf + o, len - o, "%sposition %u %s", o ? "; " : "", p,
				      as->why[p][0] ? as->why[p] : "out");
	}
}

/* ---- the table of an open array ---- */

/* Set the array's member states from m->mt; the positions the table has
 * in sync or rebuilding that this host cannot serve are returned (to be
 * recorded failed). */
static uint64_t apply(struct crp_meta *m)
{
	uint64_t unreachable = 0;

	for (uint32_t p = 0; p < m->mt.nmembers; p++) {
		const struct crp_member_ent *e = &m->mt.table[p];
		struct crp_member *mem = crp_array_member(m->a, (int)p);
		bool same = !memcmp(m->pos_uuid[p], e->uuid, 16);

		if (m->replacing == (int)p + 1)
			continue; /* crp_meta_member_replace puts the member there */

		if (e->state == CRP_MS_FAILED) {
			crp_array_set_mstate(m->a, (int)p, CRP_AM_FAILED);
			continue;
		}
		if (!same && crp_meta_member_open_name(m, (int)p) == 0)
			same = true;
		if (!same || crp_member_failed(mem)) {
			/* The table has it in service and this host cannot serve it:
			 * failed, recorded before any write goes around it. */
			crp_array_mark_failed(m->a, (int)p);
			if (!same)
				unreachable |= 1ull << p;
			continue;
		}
		crp_array_set_mstate(m->a, (int)p, e->state == CRP_MS_REBUILDING ?
				     CRP_AM_REBUILDING : CRP_AM_IN_SYNC);
	}
	return unreachable;
}

int crp_meta_member_open_name(struct crp_meta *m, int p)
{
	struct crp_member_opts mo = { .host = m->host, .timeout_ms = m->timeout_ms };
	const struct crp_member_ent *e = &m->mt.table[p];
	struct crp_member *mem;
	struct crp_label l;
	char why[256];
	int r;

	if (!m->names[p][0])
		return -ENOENT;
	/* Another host's reservation refuses even the open's TEST UNIT READY
	 * (reserve mode): a member that answers that way is there. */
	{
		uint64_t deadline = crp_now_ns() +
				    (uint64_t)(m->timeout_ms ? m->timeout_ms : CRP_DEFAULT_TIMEOUT_MS) *
					    12000000ull;

		for (unsigned attempt = 0;; attempt++) {
			r = crp_member_open(m->names[p], &mo, &mem, why, sizeof(why));
			if (r != -CRP_ECONFLICT || crp_now_ns() >= deadline)
				break;
			crp_sleep_ns((1000000ull << CRP_MIN(attempt, 5u)) + crp_random() % 1000000ull);
		}
	}
	if (r < 0) {
		crp_warn("position %d: cannot open member %s: %s", p, m->names[p], why);
		return r;
	}
	r = read_label(mem, &l, why, sizeof(why));
	if (r == 0 && (memcmp(l.member_uuid, e->uuid, 16) || memcmp(l.uuid, m->mt.uuid, 16)))
		r = -CRP_ECORRUPT;
	if (r == 0)
		r = crp_array_swap_member(m->a, p, mem, e->state == CRP_MS_REBUILDING ?
					  CRP_AM_REBUILDING : CRP_AM_IN_SYNC);
	if (r < 0) {
		crp_warn("position %d: member %s is not the one the member table names there",
			 p, m->names[p]);
		crp_member_close(mem);
		return r;
	}
	memcpy(m->pos_uuid[p], e->uuid, 16);
	crp_info("position %d: now served by member %s (%s)", p, m->names[p],
		 state_name(e->state));
	return 0;
}

/* The freshest table among the labels of the members this host reaches. */
static int read_freshest(struct crp_meta *m, struct crp_label *out, int *from)
{
	bool got = false;

	*from = -1;
	for (uint32_t p = 0; p < m->mt.nmembers; p++) {
		struct crp_member *mem = crp_array_member(m->a, (int)p);
		struct crp_label l;
		char why[256];

		if (crp_member_failed(mem) || memcmp(m->pos_uuid[p], m->mt.table[p].uuid, 16))
			continue;
		if (read_label(mem, &l, why, sizeof(why)) < 0)
			continue;
		if (memcmp(l.uuid, m->mt.uuid, 16) || l.generation != m->mt.generation)
			continue;
		if (!got || l.events > out->events) {
			*out = l;
			*from = (int)p;
			got = true;
		}
	}
	return got ? 0 : -CRP_EDEGRADED;
}

int crp_meta_members_reload(struct crp_meta *m)
{
	struct crp_label l;
	int from, r;

	r = read_freshest(m, &l, &from);
	if (r < 0)
		return r;
	if (l.events > m->mt.events) {
		crp_info("member table: events %llu -> %llu", (unsigned long long)m->mt.events,
			 (unsigned long long)l.events);
		m->mt = l;
		(void)read_names(crp_array_member(m->a, from), m->names, m->name_uuid,
				 m->name_origin);
		/* A name written to some members only (another host's replace
		 * still under way, a member busy then): any member that has the
		 * record of the member the table names is believed. */
		for (uint32_t p = 0; p < m->mt.nmembers; p++) {
			struct crp_member *mem = crp_array_member(m->a, (int)p);

			if ((int)p == from || crp_member_failed(mem))
				continue;
			(void)read_names_of(mem, m->names, m->name_uuid, m->name_origin,
					    m->mt.table);
		}
	}
	m->unreachable |= apply(m);
	return 0;
}

/* Write @l to the label of every member written at its position. */
static int write_labels(struct crp_meta *m, struct crp_label *l)
{
	uint8_t *buf = crp_alloc_buf(CRP_BLOCK);
	int ok = 0, r = 0;

	if (!buf)
		return -ENOMEM;
	for (uint32_t p = 0; p < l->nmembers; p++) {
		struct crp_member *mem = crp_array_member(m->a, (int)p);
		struct crp_label lp = *l;
		unsigned attempt = 0;
		uint64_t deadline = crp_now_ns() + (uint64_t)m->timeout_ms * 4000000ull;
		int e;

		if (l->table[p].state == CRP_MS_FAILED || !crp_array_writable(m->a, (int)p) ||
		    memcmp(m->pos_uuid[p], l->table[p].uuid, 16))
			continue;
		lp.index = p;
		memcpy(lp.member_uuid, l->table[p].uuid, 16);
		crp_label_out(&lp, buf);
		/* Another host's stripe lock blocks the write for a few round
		 * trips (reserve mode): retried within the deadline. */
		while ((e = crp_member_write(mem, CRP_LABEL_OFFSET, buf, CRP_BLOCK)) ==
			       -CRP_ECONFLICT &&
		       crp_now_ns() < deadline)
			crp_sleep_ns((500000ull << CRP_MIN(attempt++, 4u)) + crp_random() % 500000ull);
		if (e == 0)
			ok++;
		else if (!r)
			r = e;
	}
	free(buf);
	crp_array_note_failures(m->a);
	return ok ? 0 : (r ? r : -CRP_EDEGRADED);
}

int crp_meta_members_write_label(struct crp_meta *m, int pos)
{
	struct crp_label l = m->mt;
	uint8_t *buf = crp_alloc_buf(CRP_BLOCK);
	int r;

	if (!buf)
		return -ENOMEM;
	r = crp_array_gate_check(m->a, NULL);
	if (r < 0) {
		free(buf);
		return r;
	}
	l.index = (uint32_t)pos;
	memcpy(l.member_uuid, l.table[pos].uuid, 16);
	crp_label_out(&l, buf);
	r = crp_member_write(crp_array_member(m->a, pos), CRP_LABEL_OFFSET, buf, CRP_BLOCK);
	free(buf);
	return r;
}

/* The shared state block says the table moved (under the lock). */
static int publish_epoch(struct crp_meta *m)
{
	struct crp_shared *s = m->sh;
	int r;

	if (m->ro)
		return 0;
	if (!s) {
		r = crp_meta_shared_load(m);
		if (r < 0)
			return r;
		s = m->sh;
	} else if (!m->locked) {
		r = crp_meta_shared_load(m);
		if (r < 0)
			return r;
	}
	m->sh->member_epoch = (uint32_t)m->mt.events;
	return crp_meta_shared_store(m);
}

int crp_meta_members_update(struct crp_meta *m, crp_members_fn fn, void *ctx)
{
	bool mine = crp_array_meta_mine(m->a), changed = false;
	int r = 0;

	if (m->ro)
		return -EROFS;
	if (m->in_update)
		return 0; /* a write of our own update found a failure: the loop below */
	if (!mine) {
		r = crp_array_meta_lock(m->a);
		if (r < 0)
			return r;
	}
	m->in_update = true;
	for (uint32_t round = 0; round <= m->mt.nmembers; round++) {
		struct crp_label l;
		uint64_t fails;
		bool change = false;

		r = crp_meta_members_reload(m);
		if (r < 0)
			break;
		l = m->mt;
		fails = crp_array_take_failures(m->a) | (m->observer ? 0 : m->unreachable);
		m->unreachable = 0;
		for (uint32_t p = 0; p < l.nmembers; p++) {
			if (!(fails & (1ull << p)) || l.table[p].state == CRP_MS_FAILED)
				continue;
			crp_err("recording member at position %u (%s) failed in the member table",
				p, crp_member_spec(crp_array_member(m->a, (int)p)));
			l.table[p].state = CRP_MS_FAILED;
			l.table[p].checkpoint = 0;
			change = true;
		}
		if (fn) {
			r = fn(m, &l, ctx);
			if (r < 0)
				break;
			change |= r == 0;
			fn = NULL; /* once: a second round only records failures */
		}
		r = 0;
		if (!change)
			break;
		l.events = m->mt.events + 1;
		/* Labels go to the members directly, past the stripe layer's
		 * gate: a host that was hung (a failure it saw may be its own
		 * pause) writes no table before its lease is renewed, which
		 * finds it fenced if it was declared dead meanwhile. */
		r = crp_array_gate_check(m->a, NULL);
		if (r < 0)
			break;
		r = write_labels(m, &l);
		if (r < 0)
			break;
		m->mt = l;
		changed = true;
		m->unreachable |= apply(m);
		if (!crp_array_failures_pending(m->a) && (m->observer || !m->unreachable))
			break;
	}
	if (r == 0 && changed)
		r = publish_epoch(m);
	m->in_update = false;
	if (!mine) {
		int e = crp_array_meta_unlock(m->a);

		r = r ? r : e;
	}
	return r;
}

/* The array's failure hook: record what failed before writing around it. */
static int failure_hook(void *ctx)
{
	struct crp_meta *m = ctx;

	if (m->ro)
		return 0; /* nothing is written */
	return crp_meta_members_update(m, NULL, NULL);
}

int crp_meta_members_attach(struct crp_meta *m, const struct crp_assembly *as)
{
	m->mt = as->label;
	memcpy(m->names, as->names, sizeof(m->names));
	memcpy(m->name_uuid, as->name_uuid, sizeof(m->name_uuid));
	memcpy(m->name_origin, as->name_origin, sizeof(m->name_origin));
	for (uint32_t p = 0; p < as->label.nmembers; p++)
		if (as->spec[p])
			memcpy(m->pos_uuid[p], as->label.table[p].uuid, 16);
	m->unreachable = apply(m);
	crp_array_set_failure_hook(m->a, failure_hook, m);
	return 0;
}

/* Is the epoch in the shared block newer than our table? */
bool crp_meta_members_stale(const struct crp_meta *m, const struct crp_shared *s)
{
	uint32_t e = s->member_epoch ? s->member_epoch : 1;

	return e != (uint32_t)m->mt.events;
}

/* ---- changes asked for by the administrator ---- */

struct fail_ctx {
	int pos;
};

static int fail_fn(struct crp_meta *m, struct crp_label *l, void *ctx)
{
	struct fail_ctx *c = ctx;
	uint32_t lost = 0;

	(void)m;
	if (l->table[c->pos].state == CRP_MS_FAILED)
		return 1;
	for (uint32_t p = 0; p < l->nmembers; p++)
		lost += l->table[p].state != CRP_MS_IN_SYNC;
	if (l->table[c->pos].state == CRP_MS_IN_SYNC &&
	    lost + 1 > (uint32_t)crp_meta_tolerance(l->level))
		return -CRP_EDEGRADED;
	l->table[c->pos].state = CRP_MS_FAILED;
	l->table[c->pos].checkpoint = 0;
	return 0;
}

int crp_meta_member_fail(struct crp_meta *m, int pos)
{
	struct fail_ctx c = { pos };

	if (pos < 0 || (uint32_t)pos >= m->mt.nmembers)
		return -EINVAL;
	return crp_meta_members_update(m, fail_fn, &c);
}
