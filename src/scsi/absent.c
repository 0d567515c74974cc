/*
 * A member that is not there: named "missing" in a member list, or one
 * that could not be opened when the array may do without it.  It stands
 * at its position so that the layers above need no special case: it is
 * failed from the start, and every command completes at once with
 * -CRP_EMEMBER (crp_member_submit does that for a failed member).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "crpfs/err.h"
#include "member_i.h"

static int absent_open(struct crp_member *m, char *err, size_t errlen)
{
	(void)m;
	snprintf(err, errlen, "an absent member cannot be opened");
	return -CRP_EMEMBER;
}

static void absent_close(struct crp_member *m)
{
	(void)m;
}

static void absent_kick(struct crp_member *m)
{
	/* Never reached: a failed member completes its commands at submit. */
	for (struct crp_cmd *c = crp_member_dequeue(m), *next; c; c = next) {
		next = c->q_next;
		crp_member_abort(m, c, -CRP_EMEMBER);
	}
}

static void absent_issue(struct crp_member *m, struct crp_cmd *cmd)
{
	crp_member_abort(m, cmd, -CRP_EMEMBER);
}

static int absent_lun_reset(struct crp_member *m)
{
	(void)m;
	return -CRP_EMEMBER;
}

static const struct crp_transport_ops absent_ops = {
	.name = "absent",
	.open = absent_open,
	.close = absent_close,
	.kick = absent_kick,
	.issue = absent_issue,
	.lun_reset = absent_lun_reset,
};

bool crp_spec_is_missing(const char *spec)
{
	return !spec || !strcmp(spec, "missing");
}

int crp_member_open_absent(const char *text, int reason, struct crp_member **out)
{
	struct crp_member *m = calloc(1, sizeof(*m));

	*out = NULL;
	if (!m)
		return -ENOMEM;
	snprintf(m->spec.text, sizeof(m->spec.text), "%s", text ? text : "missing");
	m->spec.kind = CRP_TRANSPORT_FILE;
	m->ops = &absent_ops;
	m->opts.timeout_ms = CRP_DEFAULT_TIMEOUT_MS;
	m->block_size = 512;
	pthread_mutex_init(&m->qmu, NULL);
	atomic_store(&m->failed, reason < 0 ? reason : -CRP_EMEMBER);
	*out = m;
	return 0;
}
