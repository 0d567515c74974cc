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
#include "crpfs/status.h"
#include "crpfs/util.h"
#include "meta_i.h"

static void member_states(const char *const *specs, int n, const char *host,
			  struct crp_status *st)
{
	struct crp_member_opts mo = { .host = host };
	uint8_t *buf = crp_alloc_buf(CRP_BLOCK);

	st->nmembers = n;
	for (int i = 0; i < n && i < CRP_MAX_MEMBERS; i++) {
		struct crp_status_member *sm = &st->members[i];
		struct crp_member *mem;
		struct crp_label l;
		char err[256];

		snprintf(sm->spec, sizeof(sm->spec), "%s", specs[i]);
		sm->index = -1;
		if (crp_member_open(specs[i], &mo, &mem, err, sizeof(err)) < 0) {
			snprintf(sm->state, sizeof(sm->state), "missing");
			snprintf(sm->detail, sizeof(sm->detail), "%.159s", err);
			continue;
		}
		sm->size = crp_member_size(mem);
		if (!buf || crp_member_read(mem, 0, buf, CRP_BLOCK) < 0) {
			snprintf(sm->state, sizeof(sm->state), "failed");
			snprintf(sm->detail, sizeof(sm->detail), "cannot read its label");
		} else if (crp_label_in(buf, &l, err, sizeof(err)) < 0) {
			snprintf(sm->state, sizeof(sm->state), "foreign");
			snprintf(sm->detail, sizeof(sm->detail), "%.159s", err);
		} else {
			sm->index = (int)l.index;
			snprintf(sm->state, sizeof(sm->state), "ok");
		}
		crp_member_close(mem);
	}
	free(buf);
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
	struct crp_meta *m = NULL;
	const char *sorted[CRP_MAX_MEMBERS];
	int r;

	memset(out, 0, sizeof(*out));
	if (n < 1 || n > CRP_MAX_MEMBERS) {
		snprintf(err, errlen, "give 1 to %d members, not %d", CRP_MAX_MEMBERS, n);
		return -EINVAL;
	}
	member_states(specs, n, host, out);
	r = crp_meta_open(specs, n, &mo, &m, err, errlen);
	if (r < 0)
		return r;
	/* Members in array order. */
	for (int i = 0; i < n; i++)
		sorted[i] = crp_member_spec(crp_array_member(m->a, i));
	{
		struct crp_status_member tmp[CRP_MAX_MEMBERS];

		memcpy(tmp, out->members, sizeof(tmp[0]) * (size_t)n);
		for (int i = 0; i < n; i++) {
			for (int j = 0; j < n; j++) {
				if (!strcmp(tmp[j].spec, sorted[i])) {
					out->members[i] = tmp[j];
					break;
				}
			}
			out->members[i].index = i;
			if (crp_member_failed(crp_array_member(m->a, i))) {
				snprintf(out->members[i].state, sizeof(out->members[i].state), "failed");
				snprintf(out->members[i].detail, sizeof(out->members[i].detail),
					 "%s", crp_strerror(crp_member_fail_reason(crp_array_member(m->a, i))));
			}
		}
	}
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
	return 0;
}
