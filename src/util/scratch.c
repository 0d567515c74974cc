/*
 * Per-thread scratch buffers for the I/O paths.
 *
 * A read, a write or a stripe update needs a buffer of up to a few MiB for
 * as long as it runs.  Allocated and freed per request, such buffers make
 * glibc raise its mmap threshold to their size; from then on they come
 * from the per-thread arenas, and what was freed stays resident: the
 * daemon's RSS grew with the number of threads times the largest request
 * seen.  Allocated with a fixed threshold instead, every request pays for
 * an mmap, its page faults and an munmap (a third of the sequential
 * throughput, measured).  So each thread keeps one buffer per use
 * (enum crp_scratch_use), grown to the largest size asked for, and frees
 * them when it exits.
 *
 * A buffer is taken for one use at a time: a second take of the same use on
 * the same thread while the first is out (a nested call) gets a buffer of
 * its own, freed when it is given back.
 */
#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "crpfs/util.h"

struct scratch {
	void *p;
	size_t cap;
	bool out;
};

static pthread_key_t scratch_key;
static pthread_once_t scratch_once = PTHREAD_ONCE_INIT;
static bool scratch_keyed;

static void scratch_free(void *v)
{
	struct scratch *s = v;

	for (int u = 0; u < CRP_SCRATCH_USES; u++)
		free(s[u].p);
	free(s);
}

static void scratch_key_init(void)
{
	scratch_keyed = pthread_key_create(&scratch_key, scratch_free) == 0;
}

/* This thread's buffers, NULL when they cannot be had (then every take is
 * a plain allocation). */
static struct scratch *scratch_mine(void)
{
	struct scratch *s;

	pthread_once(&scratch_once, scratch_key_init);
	if (!scratch_keyed)
		return NULL;
	s = pthread_getspecific(scratch_key);
	if (!s) {
		s = calloc(CRP_SCRATCH_USES, sizeof(*s));
		if (s && pthread_setspecific(scratch_key, s)) {
			free(s);
			s = NULL;
		}
	}
	return s;
}

void *crp_scratch_take(enum crp_scratch_use use, size_t len, bool zero)
{
	struct scratch *s = scratch_mine(), *b;
	void *p;

	if (!s || s[use].out)
		return zero ? crp_alloc_buf(len) : crp_alloc_buf_raw(len);
	b = &s[use];
	if (b->cap < len || !b->p) {
		p = crp_alloc_buf_raw(len);
		if (!p)
			return NULL;
		free(b->p);
		b->p = p;
		b->cap = len;
	}
	if (zero)
		memset(b->p, 0, len);
	b->out = true;
	return b->p;
}

void crp_scratch_give(enum crp_scratch_use use, void *p)
{
	struct scratch *s;

	if (!p)
		return;
	s = scratch_keyed ? pthread_getspecific(scratch_key) : NULL;
	if (s && s[use].out && s[use].p == p) {
		s[use].out = false;
		return;
	}
	free(p);
}
