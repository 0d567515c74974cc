/*
 * crp_status_read: labels, superblock, host slots and space, read without
 * taking a reservation or writing anything.  Slot states come from watching
 * the heartbeat counters (crp_meta_slots_watch), as crpfs hosts shows them.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "crpfs/err.h"
#include "crpfs/scrub.h"
#include "crpfs/status.h"
#include "crpfs/util.h"
#include "meta_i.h"

/* Every position as the member table says, with the member serving it. */
static void member_states(const struct crp_assembly *as, struct crp_meta *m,
			  const char *const *specs, int n, const char *host, struct crp_status *st)
{
	const struct crp_label *l = m ? &m->mt : &as->label;
	struct crp_member_opts mo = { .host = host };
	int lost = 0, rebuilding = 0;

	st->nmembers = (int)l->nmembers;
	st->events = l->events;
	snprintf(st->rebuilder, sizeof(st->rebuilder), "%s", l->rebuilder);
	for (uint32_t p = 0; p < l->nmembers && p < CRP_MAX_MEMBERS; p++) {
		struct crp_status_member *sm = &st->members[p];
		const struct crp_member_ent *e = &l->table[p];
		const char *spec = as->spec[p] ? as->spec[p] : as->names[p];
		struct crp_member *mem;
		char err[256];

		sm->index = (int)p;
		snprintf(sm->spec, sizeof(sm->spec), "%s", spec[0] ? spec : "missing");
		/* A given member the table no longer lists there: say which. */
		for (int i = 0; i < n && !as->spec[p]; i++)
			if (as->given_pos[i] == 0 && !crp_spec_is_missing(specs[i]) &&
			    strstr(as->why[p], specs[i]))
				snprintf(sm->spec, sizeof(sm->spec), "%s", specs[i]);
		if (!crp_spec_is_missing(sm->spec) &&
		    crp_member_open(sm->spec, &mo, &mem, err, sizeof(err)) == 0) {
			sm->size = crp_member_size(mem);
			crp_member_close(mem);
		}
		if (e->state == CRP_MS_FAILED) {
			snprintf(sm->state, sizeof(sm->state), "%s", strstr(as->why[p], "stale") ?
				 "stale" : "failed");
			snprintf(sm->detail, sizeof(sm->detail), "%s", as->why[p]);
			lost++;
		} else if (e->state == CRP_MS_REBUILDING) {
			snprintf(sm->state, sizeof(sm->state), "rebuilding");
			sm->rebuilt_pct = l->nstripes ? 100.0 * (double)e->checkpoint /
							    (double)l->nstripes : 0;
			snprintf(sm->detail, sizeof(sm->detail), "%.1f%% rebuilt%s%s",
				 sm->rebuilt_pct, l->rebuilder[0] ? " by " : "", l->rebuilder);
			lost++;
			rebuilding++;
		} else if (!as->spec[p] || (m && !crp_array_readable(m->a, (int)p))) {
			snprintf(sm->state, sizeof(sm->state), "missing");
			snprintf(sm->detail, sizeof(sm->detail), "%s", as->why[p][0] ? as->why[p] :
				 "cannot be reached");
			lost++;
		} else {
			snprintf(sm->state, sizeof(sm->state), "ok");
		}
	}
	snprintf(st->array_state, sizeof(st->array_state), "%s",
		 lost > as->tolerance ? "inoperable" : rebuilding ? "rebuilding" :
		 lost ? "degraded" : "clean");
}

/* The scrub the table records: "scrubbing" while its checkpoints go on. */
static void scrub_state(const struct crp_label *l, struct crp_status *st)
{
	uint64_t now = crp_wall_ns();

	snprintf(st->scrubber, sizeof(st->scrubber), "%s", l->scrubber);
	if (!l->scrubber[0])
		return;
	st->scrub_stripe = l->scrub_stripe;
	st->scrub_nstripes = l->nstripes;
	st->scrub_pct = l->nstripes ? 100.0 * (double)l->scrub_stripe / (double)l->nstripes : 0;
	st->scrub_wall_ns = l->scrub_ns;
	st->scrub_start_wall_ns = l->scrub_start_ns;
	st->scrubbing = now >= l->scrub_ns ? now - l->scrub_ns < CRP_SCRUB_STALE_NS : true;
	if (st->scrubbing && !strcmp(st->array_state, "clean"))
		snprintf(st->array_state, sizeof(st->array_state), "scrubbing");
}

/* The slots as watched for @watch_ms (see status.h). */
static int slot_states(struct crp_meta *m, uint64_t watch_ms, struct crp_status *out)
{
	int n = (int)m->sb.max_hosts;
	struct crp_slot *slots = calloc((size_t)n, sizeof(*slots));
	bool *moved = calloc((size_t)n, sizeof(*moved));
	int r = -ENOMEM;

	if (!slots || !moved)
		goto out;
	r = crp_meta_slots_watch(m, watch_ms * 1000000ull, slots, moved);
	if (r < 0)
		goto out;
	out->watch_ms = watch_ms;
	for (int i = 0; i < out->max_hosts && i < CRP_MAX_HOSTS; i++) {
		struct crp_status_slot *ss = &out->slots[i];
		const struct crp_slot *s = &slots[i];
		const char *state;

		ss->slot = i;
		/* A freed slot keeps its last holder's name on disk. */
		if (s->state == CRP_SLOT_FREE)
			snprintf(ss->last_host, sizeof(ss->last_host), "%s", s->host);
		else
			snprintf(ss->host, sizeof(ss->host), "%s", s->host);
		snprintf(ss->recoverer, sizeof(ss->recoverer), "%s", s->recoverer);
		ss->heartbeat = s->heartbeat;
		ss->heartbeat_wall_ns = s->heartbeat_ns;
		ss->mount_ns = s->mount_ns;
		ss->recoveries = s->recoveries;
		ss->recovered_ns = s->recovered_ns;
		ss->moved = moved[i];
		if (s->state == CRP_SLOT_FREE)
			state = "free";
		else if (s->state == CRP_SLOT_RECOVERING)
			state = "recovering";
		else
			state = moved[i] || !watch_ms ? "alive" : "dead";
		snprintf(ss->state, sizeof(ss->state), "%s", state);
	}
	r = 0;
out:
	free(slots);
	free(moved);
	return r;
}

int crp_status_read(const char *const *specs, int n, const char *host, struct crp_status *out,
		    char *err, size_t errlen)
{
	return crp_status_read_watch(specs, n, host, CRP_STATUS_WATCH_MS, out, err, errlen);
}

int crp_status_read_watch(const char *const *specs, int n, const char *host,
			  uint64_t watch_ms, struct crp_status *out, char *err, size_t errlen)
{
	struct crp_meta_opts mo = { .host = host, .ro = true };
	struct crp_assembly *as = NULL;
	struct crp_meta *m = NULL;
	int r;

	memset(out, 0, sizeof(*out));
	if (n < 1 || n > CRP_MAX_MEMBERS) {
		snprintf(err, errlen, "give 1 to %d members, not %d", CRP_MAX_MEMBERS, n);
		return -EINVAL;
	}
	as = calloc(1, sizeof(*as));
	if (!as)
		return -ENOMEM;
	r = crp_meta_assemble(specs, n, host, 0, as, err, errlen);
	if (r < 0)
		goto out_free;
	r = crp_meta_open(specs, n, &mo, &m, err, errlen);
	if (r == -CRP_EDEGRADED) {
		/* Too many members out to open it: what the labels say. */
		const struct crp_label *l = &as->label;

		member_states(as, NULL, specs, n, host, out);
		scrub_state(l, out);
		crp_uuid_str(l->uuid, out->uuid);
		snprintf(out->label, sizeof(out->label), "%s", l->fslabel);
		out->level = (int)l->level;
		out->chunk_size = l->chunk;
		out->data_offset = l->data_offset;
		snprintf(out->lock_mode, sizeof(out->lock_mode), "%s", l->lock_mode ? "pr" : "reserve");
		out->max_hosts = (int)l->max_hosts;
		/* Not opened: the slots were not watched. */
		for (int i = 0; i < out->max_hosts && i < CRP_MAX_HOSTS; i++) {
			out->slots[i].slot = i;
			snprintf(out->slots[i].state, sizeof(out->slots[i].state), "unreadable");
		}
		r = 0;
		goto out_free;
	}
	if (r < 0)
		goto out_free;
	member_states(as, m, specs, n, host, out);
	scrub_state(&m->mt, out);
	crp_uuid_str(m->sb.uuid, out->uuid);
	snprintf(out->label, sizeof(out->label), "%s", m->sb.label);
	out->level = (int)m->sb.level;
	out->chunk_size = m->sb.chunk;
	out->data_offset = m->sb.data_offset;
	snprintf(out->lock_mode, sizeof(out->lock_mode), "%s", m->sb.lock_mode ? "pr" : "reserve");
	out->max_hosts = (int)m->sb.max_hosts;
	/* A slot unreadable on every member stops the watch: report each
	 * slot as written, liveness unknown, and name the unreadable ones. */
	r = slot_states(m, watch_ms, out);
	if (r < 0) {
		for (int i = 0; i < out->max_hosts && i < CRP_MAX_HOSTS; i++) {
			struct crp_status_slot *ss = &out->slots[i];
			struct crp_slot s;

			ss->slot = i;
			if (crp_meta_slot_read(m, i, &s) < 0) {
				snprintf(ss->state, sizeof(ss->state), "unreadable");
				continue;
			}
			snprintf(s.state == CRP_SLOT_FREE ? ss->last_host : ss->host,
				 sizeof(ss->host), "%s", s.host);
			ss->heartbeat = s.heartbeat;
			ss->heartbeat_wall_ns = s.heartbeat_ns;
			snprintf(ss->state, sizeof(ss->state), "%s",
				 s.state == CRP_SLOT_FREE ? "free"
				 : s.state == CRP_SLOT_RECOVERING ? "recovering" : "unknown");
		}
	}
	out->bytes_total = (m->sb.total_blocks - m->sb.ag_start -
			    (uint64_t)m->sb.ag_count * CRP_AG_META_BLOCKS) * CRP_BLOCK;
	out->bytes_used = out->bytes_total - crp_meta_free_blocks(m) * CRP_BLOCK;
	out->inodes_total = m->sb.inode_count - 1;
	out->inodes_used = out->inodes_total - crp_meta_free_inodes(m);
	crp_meta_close(m);
	r = 0;
out_free:
	free(as);
	return r;
}
