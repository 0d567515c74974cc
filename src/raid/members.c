/*
 * Member states of the array (the model is in include/crpfs/array.h).
 *
 * A member object that fails in I/O (crp_member_failed) is turned to
 * FAILED by the first thread that notices, which also sets its bit in
 * new_failed; crp_array_take_failures hands those bits to the metadata
 * layer, which records them in the member table on the disks.  A write
 * that would go on without a member first makes sure the failure is
 * recorded (crp_array_record_failures runs the hook): a crash after the
 * degraded write must not bring the stale member back as current.
 */
#include <errno.h>
#include <stdlib.h>

#include "crpfs/err.h"
#include "crpfs/log.h"
#include "array_i.h"

void crp_array_set_mstate(struct crp_array *a, int i, enum crp_array_mstate st)
{
	if (i < 0 || i >= a->n)
		return;
	atomic_store(&a->mstate[i], (int)st);
	if (st != CRP_AM_FAILED)
		atomic_fetch_and(&a->new_failed, ~(1ull << i));
}

enum crp_array_mstate crp_array_mstate(struct crp_array *a, int i)
{
	crp_array_note_failures(a);
	return (enum crp_array_mstate)atomic_load(&a->mstate[i]);
}

bool crp_array_readable(struct crp_array *a, int i)
{
	return atomic_load(&a->mstate[i]) == CRP_AM_IN_SYNC && !crp_member_failed(a->m[i]);
}

bool crp_array_writable(struct crp_array *a, int i)
{
	int st = atomic_load(&a->mstate[i]);

	return (st == CRP_AM_IN_SYNC || st == CRP_AM_REBUILDING) && !crp_member_failed(a->m[i]);
}

int crp_array_tolerance(const struct crp_array *a)
{
	return a->has_geom && a->g.level == 6 ? 2 : 1;
}

int crp_array_nlost(struct crp_array *a)
{
	int n = 0;

	for (int i = 0; i < a->n; i++)
		n += !crp_array_readable(a, i);
	return n;
}

bool crp_array_note_failures(struct crp_array *a)
{
	bool any = false;

	for (int i = 0; i < a->n; i++) {
		int st = atomic_load(&a->mstate[i]);

		if (st == CRP_AM_FAILED || !crp_member_failed(a->m[i]))
			continue;
		if (!atomic_compare_exchange_strong(&a->mstate[i], &st, CRP_AM_FAILED))
			continue;
		atomic_fetch_or(&a->new_failed, 1ull << i);
		crp_err("member %s (position %d) failed: %s; the array goes on without it",
			crp_member_spec(a->m[i]), i, crp_strerror(crp_member_fail_reason(a->m[i])));
		any = true;
	}
	return any;
}

void crp_array_mark_failed(struct crp_array *a, int i)
{
	int st;

	if (i < 0 || i >= a->n)
		return;
	st = atomic_exchange(&a->mstate[i], CRP_AM_FAILED);
	if (st != CRP_AM_FAILED)
		atomic_fetch_or(&a->new_failed, 1ull << i);
}

bool crp_array_failures_pending(struct crp_array *a)
{
	crp_array_note_failures(a);
	return atomic_load(&a->new_failed) != 0;
}

uint64_t crp_array_take_failures(struct crp_array *a)
{
	crp_array_note_failures(a);
	return atomic_exchange(&a->new_failed, 0);
}

void crp_array_set_failure_hook(struct crp_array *a, int (*fn)(void *ctx), void *ctx)
{
	a->failure_ctx = ctx;
	a->failure_hook = fn;
}

int crp_array_record_failures(struct crp_array *a)
{
	if (!crp_array_failures_pending(a) || !a->failure_hook)
		return 0;
	return a->failure_hook(a->failure_ctx);
}

int crp_array_swap_member(struct crp_array *a, int i, struct crp_member *m,
			  enum crp_array_mstate st)
{
	struct crp_member *old;

	if (i < 0 || i >= a->n || !m)
		return -EINVAL;
	pthread_mutex_lock(&a->retire_mu);
	if (a->nretired == (int)(sizeof(a->retired) / sizeof(a->retired[0]))) {
		pthread_mutex_unlock(&a->retire_mu);
		return -ENOSPC;
	}
	/* No transaction of ours is on the position while we swap. */
	crp_mlock_take_local(a, &i, 1);
	old = a->m[i];
	if (a->lk[i].reserved && !a->lk[i].pinned)
		crp_lock_release_now(a, &i, 1);
	a->lk[i].reserved = false;
	a->lk[i].pinned = false;
	a->m[i] = m;
	atomic_store(&a->mstate[i], (int)st);
	atomic_fetch_and(&a->new_failed, ~(1ull << i));
	a->retired[a->nretired++] = old;
	/* pr mode: a reservation needs our key registered on the new one. */
	crp_array_pr_reregister(a, i);
	crp_mlock_give_local(a, &i, 1);
	pthread_mutex_unlock(&a->retire_mu);
	return 0;
}
