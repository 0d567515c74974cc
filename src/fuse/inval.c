/*
 * Kernel cache invalidation for changes made by other hosts.
 *
 * The core (crp_fs_set_invalidate) tells us, with its lock held, that an
 * inode's attributes and data or a directory entry may be stale in the
 * kernel.  The callback only queues; a thread of our own sends the
 * notifications (fuse_lowlevel_notify_inval_inode / _entry), because a
 * notification may wait on the kernel, which may wait on a request that
 * waits on the core's lock: never from a request handler, never under the
 * core's lock.
 *
 * The queue is bounded: past CRP_INVAL_MAX entries, entry invalidations are
 * dropped (the entry timeout bounds their staleness anyway) and inode ones
 * merged by number.
 */
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "crpfs/log.h"
#include "fuse_i.h"

#define CRP_INVAL_MAX 8192

struct inval {
	struct inval *next;
	uint64_t ino;	 /* inode, or 0 for an entry */
	uint64_t parent; /* entry: the directory */
	char *name;	 /* entry: the name */
};

struct crp_inval_queue {
	pthread_mutex_t mu;
	pthread_cond_t cv;
	struct inval *head, *tail; /* protected by mu */
	unsigned len;		   /* protected by mu */
	bool stop;		   /* protected by mu */
	struct fuse_session *se;
	pthread_t thread;
	uint64_t sent, dropped;	   /* protected by mu */
};

/* The core's callback: queue and return (called with the core's lock). */
static void inval_queue(void *ctx, uint64_t ino, uint64_t parent, const char *name)
{
	struct crp_inval_queue *q = ctx;
	struct inval *e;

	if (!ino && !name)
		return; /* "anything": the core also names every inode it caches */
	pthread_mutex_lock(&q->mu);
	if (q->stop || (q->len >= CRP_INVAL_MAX && name)) {
		q->dropped++;
		goto out;
	}
	if (q->len >= CRP_INVAL_MAX) {
		for (e = q->head; e; e = e->next)
			if (e->ino == ino)
				goto out;
	}
	e = calloc(1, sizeof(*e));
	if (!e || (name && !(e->name = strdup(name)))) {
		free(e);
		q->dropped++;
		goto out;
	}
	e->ino = ino;
	e->parent = parent;
	if (q->tail)
		q->tail->next = e;
	else
		q->head = e;
	q->tail = e;
	q->len++;
	pthread_cond_signal(&q->cv);
out:
	pthread_mutex_unlock(&q->mu);
}

static void *inval_thread(void *arg)
{
	struct crp_inval_queue *q = arg;

	pthread_mutex_lock(&q->mu);
	for (;;) {
		struct inval *e;
		int r;

		while (!q->head && !q->stop)
			pthread_cond_wait(&q->cv, &q->mu);
		if (q->stop)
			break;
		e = q->head;
		q->head = e->next;
		if (!q->head)
			q->tail = NULL;
		q->len--;
		pthread_mutex_unlock(&q->mu);
		if (e->name)
			r = fuse_lowlevel_notify_inval_entry(q->se, e->parent, e->name,
							     strlen(e->name));
		else
			r = fuse_lowlevel_notify_inval_inode(q->se, e->ino, 0, 0);
		/* -ENOENT: the kernel had nothing cached; fine. */
		if (r < 0 && r != -ENOENT)
			crp_debug("mount.crpfs: invalidation of %s %llu failed: %s",
				  e->name ? "entry in" : "inode",
				  (unsigned long long)(e->name ? e->parent : e->ino), strerror(-r));
		free(e->name);
		free(e);
		pthread_mutex_lock(&q->mu);
		q->sent++;
	}
	pthread_mutex_unlock(&q->mu);
	return NULL;
}

int crp_fuse_inval_start(struct crp_fuse *cf, struct fuse_session *se)
{
	struct crp_inval_queue *q = calloc(1, sizeof(*q));
	int r;

	if (!q)
		return -ENOMEM;
	pthread_mutex_init(&q->mu, NULL);
	pthread_cond_init(&q->cv, NULL);
	q->se = se;
	r = -pthread_create(&q->thread, NULL, inval_thread, q);
	if (r) {
		pthread_cond_destroy(&q->cv);
		pthread_mutex_destroy(&q->mu);
		free(q);
		return r;
	}
	cf->inval = q;
	crp_fs_set_invalidate(cf->fs, inval_queue, q);
	return 0;
}

void crp_fuse_inval_stop(struct crp_fuse *cf)
{
	struct crp_inval_queue *q = cf->inval;

	if (!q)
		return;
	crp_fs_set_invalidate(cf->fs, NULL, NULL);
	pthread_mutex_lock(&q->mu);
	q->stop = true;
	pthread_cond_signal(&q->cv);
	pthread_mutex_unlock(&q->mu);
	pthread_join(q->thread, NULL);
	while (q->head) {
		struct inval *e = q->head;

		q->head = e->next;
		free(e->name);
		free(e);
	}
	pthread_cond_destroy(&q->cv);
	pthread_mutex_destroy(&q->mu);
	free(q);
	cf->inval = NULL;
}
