/*
 * The operations of fs.h: mount, namespace, open files, directories.
 *
 * Every entry point takes fs->mu (fs_i.h) and brackets its work with
 * crp_fs_op_begin()/crp_fs_op_end(): one metadata transaction under the
 * metadata lock of the disks, committed at the end (see below); one that
 * only reads tries first without the lock (crp_fs_rop_begin).  An
 * operation that fails before it changed anything returns its error; one
 * that fails after (an I/O error, corruption found half-way) leaves a
 * half-done change in the running transaction, which is dropped, never
 * committed: the disks keep the last consistent state.  Space is checked
 * up front so that ENOSPC is the first kind.  A commit that fails, or a
 * metadata lock broken while held (fenced), turns the filesystem read-only.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/fs.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "crpfs/err.h"
#include "crpfs/log.h"
#include "crpfs/util.h"
#include "fs_i.h"

#define RESERVE_BLOCKS 64 /* kept free for metadata of namespace operations */

static void snap_clear(GArray *a);

/* A handle's memory, when it is closed or left open at unmount. */
static void handle_free(void *p)
{
	struct crp_fs_handle *h = p;

	if (h->snap) {
		snap_clear(h->snap);
		g_array_free(h->snap, TRUE);
	}
	free(h);
}

/*
 * Every operation is one metadata transaction: the big lock, then the
 * metadata lock on the disks with the generation check (crp_meta_tx_begin:
 * what other hosts changed is dropped from the caches, and cached inodes
 * turn stale), the work, and the commit with the unlock; or, while no
 * other host lives, a place in a batch that commits later (group commit:
 * the flusher commits it when its time is up, fsync at once).  If the
 * transaction cannot begin, fs->op_err makes every crp_fs_iget of the
 * operation fail with the reason, so that it touches nothing.
 */
static uint64_t op_begin_locked(struct crp_fs *fs, bool ro)
{
	int r;

	if (atomic_load(&fs->fenced)) {
		/* Declared dead by another host: touch nothing, not even to read. */
		fs->ro = true;
		fs->m->ro = true;
		fs->err = -CRP_EFENCED;
		fs->op_err = -CRP_EFENCED;
		return fs->m->nmods;
	}
	r = ro ? crp_meta_tx_begin_read(fs->m) : crp_meta_tx_begin(fs->m);
	fs->op_err = r < 0 ? r : 0;
	return fs->m->nmods;
}

uint64_t crp_fs_op_begin(struct crp_fs *fs)
{
	pthread_mutex_lock(&fs->mu);
	return op_begin_locked(fs, false);
}

/*
 * Operations that only read (getattr, lookup, readdir, read, readlink,
 * getxattr, listxattr) run first without the metadata lock: no RESERVE,
 * one read of the shared block before, and one after if anything came
 * from the disks (crp_meta_read_begin says why that is enough).  The body
 * keeps its effects in memory until crp_fs_rop_valid says the result
 * holds; if it does not, the body runs again, this time under the lock
 * (@locked), and that pass always holds:
 *
 *	for (bool locked = false;; locked = true) {
 *		uint64_t s = crp_fs_rop_begin(fs, locked);
 *		... read ...
 *		if (!crp_fs_rop_valid(fs, s, r))
 *			continue;
 *		... effects (nlookup, a reply) ...
 *		return crp_fs_op_end(fs, s, r);
 *	}
 *
 * A result that is an error other than "no such name" (ENOENT, ENODATA)
 * is not trusted without the lock either: damage, a member gone, a block
 * met half-written all look alike from here.
 */
uint64_t crp_fs_rop_begin(struct crp_fs *fs, bool locked)
{
	pthread_mutex_lock(&fs->mu);
	if (!locked && !fs->ro && !atomic_load(&fs->fenced) && crp_meta_read_begin(fs->m) > 0) {
		fs->op_opt = true;
		fs->op_err = 0;
		return fs->m->nmods;
	}
	return op_begin_locked(fs, true);
}

bool crp_fs_rop_valid(struct crp_fs *fs, uint64_t snap, int r)
{
	/* "No such name" holds as any result does: a host that keeps a batch
	 * of operations it answered for says so in the shared block (HELD),
	 * and crp_meta_read_begin saw none. */
	bool keep = r >= 0 || r == -ENOENT || r == -ENODATA;

	if (!fs->op_opt)
		return true;
	fs->op_opt = false;
	if (fs->m->nmods != snap)
		keep = false; /* a read path that changed something: never kept */
	if (crp_meta_read_end(fs->m, keep) == 0)
		return true;
	/* Forget what this pass may have read half-written, and go again. */
	if (fs->m->nmods != snap)
		crp_meta_tx_abort(fs->m);
	fs->op_err = 0;
	crp_meta_trim(fs->m);
	pthread_mutex_unlock(&fs->mu);
	return false;
}

static void shutdown_fs(struct crp_fs *fs, int r)
{
	if (fs->ro)
		return;
	if (atomic_load(&fs->fenced))
		r = -CRP_EFENCED; /* the cluster layer said why */
	else if (fs->m->fenced)
		crp_err("crpfs: host %s is fenced: another host broke its metadata lock; the "
			"filesystem is now read-only; unmount, run crpfs fsck, and mount again",
			fs->m->host);
	else
		crp_err("crpfs: an operation failed half-way (%s): the filesystem is now "
			"read-only; unmount and run crpfs fsck",
			crp_strerror(r));
	fs->ro = true;
	fs->m->ro = true;
	fs->err = r;
}

static __thread bool tx_lost;

bool crp_fs_tx_lost_take(void)
{
	bool was = tx_lost;

	tx_lost = false;
	return was;
}

int crp_fs_op_end_keep(struct crp_fs *fs, uint64_t snap, int r)
{
	if (fs->op_err && r >= 0)
		r = fs->op_err;
	if (r < 0 && fs->m->nmods != snap) {
		/* Half-done: forget it.  Nothing of it reached the disks. */
		crp_meta_tx_abort(fs->m);
	} else {
		int e = crp_meta_tx_end(fs->m);

		/* A transaction lost with the lock (a lost session) was not
		 * applied: that operation fails, the mount goes on. */
		if (e < 0 && e != -CRP_ETXLOST)
			shutdown_fs(fs, e);
		if (e < 0 && r >= 0)
			r = e;
	}
	if (fs->m->fenced)
		shutdown_fs(fs, -CRP_ELOCKLOST);
	/* Failed because a lock went with its session, on a host still in
	 * the cluster: nothing of it was applied, it may run again. */
	if (r == -CRP_ELOCKLOST && !fs->m->fenced && !atomic_load(&fs->fenced))
		r = -CRP_ETXLOST;
	if (r == -CRP_ETXLOST)
		tx_lost = true;
	fs->op_err = 0;
	crp_meta_trim(fs->m);
	if (fs->m->held && fs->m->held_ops == 1)
		pthread_cond_signal(&fs->flush_cv); /* a batch began: its timer */
	return r;
}

int crp_fs_op_unlock(struct crp_fs *fs, int r)
{
	pthread_mutex_unlock(&fs->mu);
	/* An application sees EIO: say why, as a disk's driver would. */
	if (r < 0 && crp_errno(r) == EIO)
		crp_warn("host %s: an operation fails with EIO: %s", fs->m->host, crp_strerror(r));
	return r < 0 ? -crp_errno(r) : r;
}

int crp_fs_op_end(struct crp_fs *fs, uint64_t snap, int r)
{
	return crp_fs_op_unlock(fs, crp_fs_op_end_keep(fs, snap, r));
}

static int check_name(const char *name)
{
	size_t n = strlen(name);

	if (!n || strchr(name, '/'))
		return -EINVAL;
	if (n > CRP_NAME_MAX)
		return -ENAMETOOLONG;
	if (!strcmp(name, ".") || !strcmp(name, ".."))
		return -EEXIST;
	return 0;
}

static int get_dir(struct crp_fs *fs, uint64_t ino, struct crp_fs_inode **dp)
{
	int r = crp_fs_iget(fs, ino, dp);

	if (r)
		return r;
	if (!S_ISDIR((*dp)->d.mode))
		return -ENOTDIR;
	return 0;
}

static int need_space(struct crp_fs *fs, uint64_t blocks, bool inode)
{
	bool refreshed = false;

	if (fs->ro)
		return -EROFS;
	for (;;) {
		bool ok = crp_meta_free_blocks(fs->m) >= blocks + RESERVE_BLOCKS / 2 &&
			  (!inode || crp_meta_free_inodes(fs->m));
		int r;

		if (ok)
			return 0;
		if (refreshed)
			return -ENOSPC;
		/* Other hosts may have freed space since we counted. */
		r = crp_meta_refresh_counts(fs->m);
		if (r)
			return r;
		refreshed = true;
	}
}

static int sticky_ok(const struct crp_fs_inode *dp, const struct crp_fs_inode *ip,
		     const struct crp_cred *cred)
{
	if (!(dp->d.mode & S_ISVTX) || !cred || cred->uid == 0)
		return 0;
	if (cred->uid == dp->d.uid || cred->uid == ip->d.uid)
		return 0;
	return -EPERM;
}

/* ---- mount ---- */

/* Seconds between intent-log sweeps, and the idle time that cleans a region. */
#define CRP_FS_INTENT_SWEEP_S 5
/* Seconds between sweeps of the orphan lists (the safety net: a close or a
 * recovery frees what it can at once). */
#define CRP_FS_ORPHAN_SWEEP_S 30

/* Commit the operations kept together (under mu): their time is up, or
 * the mount stops.  A failure is the next fsync's to report. */
static void flush_batch(struct crp_fs *fs)
{
	int r = crp_meta_batch_flush(fs->m);

	if (r < 0 && r != -CRP_ETXLOST && !fs->ro)
		shutdown_fs(fs, r); /* the next fsync says so too (m->batch_err) */
	crp_meta_trim(fs->m);
}

/*
 * The background thread: polls the shared generation every attribute
 * timeout, so that what other hosts changed is dropped from the caches (and
 * the kernel told) within that bound even when nothing runs here, and
 * sweeps the intent log.  Transactions are committed by each operation,
 * but for a group commit's batch, which this thread commits on time.
 */
static void *flusher(void *arg)
{
	struct crp_fs *fs = arg;
	struct timespec ts;
	uint64_t last_sweep = crp_now_ns(), last_orphans = last_sweep;

	pthread_mutex_lock(&fs->mu);
	while (!fs->stop) {
		uint64_t due = crp_meta_batch_due(fs->m), wake = crp_now_ns() + fs->poll_ms * 1000000ull;

		if (due && due < wake)
			wake = due;
		ts.tv_sec = (time_t)(wake / 1000000000ull);
		ts.tv_nsec = (long)(wake % 1000000000ull);
		pthread_cond_timedwait(&fs->flush_cv, &fs->mu, &ts);
		if (fs->stop)
			continue;
		due = crp_meta_batch_due(fs->m);
		if (due && (crp_now_ns() >= due || fs->ro || atomic_load(&fs->fenced)))
			flush_batch(fs);
		(void)crp_meta_poll(fs->m); /* unreadable now: next time */
		if (fs->ro)
			continue;
		if (crp_now_ns() - last_orphans >= CRP_FS_ORPHAN_SWEEP_S * 1000000000ull) {
			uint64_t snap;
			int r;

			last_orphans = crp_now_ns();
			pthread_mutex_unlock(&fs->mu);
			snap = crp_fs_op_begin(fs);
			r = fs->op_err ? 0 : crp_fs_orphan_sweep(fs);
			(void)crp_fs_op_end(fs, snap, r);
			pthread_mutex_lock(&fs->mu);
			if (fs->stop)
				continue;
		}
		/* Every few seconds, clean the intent log's idle regions (it has
		 * its own locks; the members' sync must not hold up requests). */
		if (crp_now_ns() - last_sweep >= CRP_FS_INTENT_SWEEP_S * 1000000000ull) {
			struct crp_meta *m = fs->m;

			last_sweep = crp_now_ns();
			pthread_mutex_unlock(&fs->mu);
			crp_meta_intent_sweep(m, CRP_FS_INTENT_SWEEP_S * 1000000000ull);
			pthread_mutex_lock(&fs->mu);
		}
	}
	pthread_mutex_unlock(&fs->mu);
	return NULL;
}

/*
 * The cluster layer's callback, on its recovery thread, after a dead host's
 * journal was replayed and its open table emptied: the orphans only it held
 * open are freed, in a transaction of our own.  While joining (no slot of
 * ours yet, so no journal to commit to) there is nothing to do: the mount
 * sweeps every orphan list once it has its slot.
 */
static int cluster_free_orphans(void *ctx, int slot)
{
	struct crp_fs *fs = ctx;
	uint64_t snap = crp_fs_op_begin(fs);
	int r = 0;

	(void)slot;
	if (fs->m->slot >= 0 && !fs->ro && !fs->op_err)
		r = crp_fs_orphan_sweep(fs);
	return crp_fs_op_end(fs, snap, r);
}

/* Must not block: a writer holding fs->mu may be the caller. */
static void cluster_fenced(void *ctx, const char *msg)
{
	struct crp_fs *fs = ctx;

	atomic_store(&fs->fenced, true);
	if (fs->fenced_fn)
		fs->fenced_fn(fs->fenced_ctx, msg);
}

/* A group commit window of the options in ns: @ms 0 is @def,
 * CRP_FS_COMMIT_OFF none (0). */
static uint64_t window_ns(uint32_t ms, uint32_t def)
{
	if (!ms)
		ms = def;
	return ms == CRP_FS_COMMIT_OFF ? 0 : ms * 1000000ull;
}

int crp_fs_mount(const char *const *specs, int n, const struct crp_fs_opts *opts,
		 struct crp_fs **out, char *err, size_t errlen)
{
	struct crp_meta_opts mo = { 0 };
	struct crp_fs *fs;
	struct crp_fs_inode *root;
	int r;

	*out = NULL;
	fs = calloc(1, sizeof(*fs));
	if (!fs)
		return -ENOMEM;
	pthread_mutex_init(&fs->mu, NULL);
	{
		pthread_condattr_t ca; /* the flusher's deadlines are crp_now_ns() */

		pthread_condattr_init(&ca);
		pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
		pthread_cond_init(&fs->flush_cv, &ca);
		pthread_condattr_destroy(&ca);
	}
	fs->inodes = g_hash_table_new_full(g_int64_hash, g_int64_equal, NULL,
					   crp_fs_inode_free_mem);
	fs->handles = g_hash_table_new_full(g_direct_hash, g_direct_equal, handle_free, NULL);
	mo.host = opts ? opts->host : NULL;
	mo.ro = opts && opts->ro;
	mo.timeout_ms = opts ? opts->timeout_ms : 0;
	/* The slot, and the recovery of dead hosts, come from the cluster
	 * layer: a slot found taken may be a live host's. */
	mo.claim_slot = false;
	mo.replay = false;
	mo.defer_members = true;
	r = crp_meta_open(specs, n, &mo, &fs->m, err, errlen);
	if (r)
		goto out;
	fs->ro = mo.ro;
	if (fs->ro && fs->m->journal_dirty) {
		snprintf(err, errlen, "the journal of a host that did not unmount needs replay; "
				      "mount read-write once (or run crpfs fsck --repair)");
		r = -EROFS;
		goto out;
	}
	fs->poll_ms = opts && opts->attr_timeout_ms ? opts->attr_timeout_ms : 1000;
	fs->m->commit_ns = window_ns(opts ? opts->commit_ms : 0, CRP_FS_DEFAULT_COMMIT_MS);
	fs->m->peer_commit_ns =
		window_ns(opts ? opts->peer_commit_ms : 0, CRP_FS_DEFAULT_PEER_COMMIT_MS);
	fs->fenced_fn = opts ? opts->fenced : NULL;
	fs->fenced_ctx = opts ? opts->fenced_ctx : NULL;
	crp_meta_set_changed(fs->m, crp_fs_meta_changed, fs);
	if (!fs->ro) {
		struct crp_cluster_opts co = {
			.heartbeat_ms = opts ? opts->heartbeat_ms : 0,
			.dead_timeout_ms = opts ? opts->dead_timeout_ms : 0,
			.meta_mu = &fs->mu,
			.free_orphans = cluster_free_orphans,
			.fenced = cluster_fenced,
			.ctx = fs,
		};

		r = crp_cluster_join(fs->m, &co, &fs->cluster, err, errlen);
		if (r)
			goto out;
		if (fs->m->unreachable) {
			pthread_mutex_lock(&fs->mu);
			r = crp_meta_members_update(fs->m, NULL, NULL);
			pthread_mutex_unlock(&fs->mu);
			if (r) {
				snprintf(err, errlen, "cannot record the missing members in the "
						      "member table: %s", crp_strerror(r));
				goto out;
			}
		}
	}
	pthread_mutex_lock(&fs->mu);
	r = crp_meta_tx_begin(fs->m);
	if (r)
		snprintf(err, errlen, "cannot take the metadata lock: %s", crp_strerror(r));
	if (!r) {
		r = crp_fs_iget(fs, fs->m->sb.root_ino, &root);
		if (r == 0 && !S_ISDIR(root->d.mode))
			r = -CRP_ECORRUPT;
		if (r)
			snprintf(err, errlen, "the root directory is unreadable: %s",
				 crp_strerror(r));
	}
	if (!r && !fs->ro) {
		r = crp_fs_orphan_sweep(fs);
		if (!r)
			r = crp_meta_commit(fs->m);
		if (r)
			snprintf(err, errlen, "cannot free the orphan inodes of a crashed mount: %s",
				 crp_strerror(r));
		fs->m->recovered = 0;
	}
	if (r)
		crp_meta_tx_abort(fs->m);
	else
		r = crp_meta_tx_end(fs->m);
	pthread_mutex_unlock(&fs->mu);
	if (r)
		goto out;
	r = -pthread_create(&fs->flusher, NULL, flusher, fs);
	if (r)
		goto out;
	fs->flusher_running = true;
	*out = fs;
	fs = NULL;
out:
	if (fs) {
		/* A slot already claimed is freed by the close (the failed
		 * transaction was aborted: nothing else is written). */
		if (fs->cluster) {
			crp_cluster_quiesce(fs->cluster);
			(void)crp_meta_shutdown(fs->m);
			crp_cluster_leave(fs->cluster);
		}
		if (fs->m) {
			if (!fs->cluster)
				fs->m->ro = true; /* leave the disks as they are */
			crp_meta_close(fs->m);
		}
		g_hash_table_destroy(fs->inodes);
		g_hash_table_destroy(fs->handles);
		pthread_cond_destroy(&fs->flush_cv);
		pthread_mutex_destroy(&fs->mu);
		free(fs);
	}
	return r;
}

int crp_fs_unmount(struct crp_fs *fs)
{
	int r, e;

	if (!fs)
		return 0;
	pthread_mutex_lock(&fs->mu);
	fs->stop = true;
	pthread_cond_broadcast(&fs->flush_cv);
	pthread_mutex_unlock(&fs->mu);
	if (fs->flusher_running)
		pthread_join(fs->flusher, NULL);
	/* From here every operation commits, and what is kept goes now. */
	pthread_mutex_lock(&fs->mu);
	fs->m->commit_ns = 0;
	fs->m->peer_commit_ns = 0;
	flush_batch(fs);
	if (fs->m->batch_err && !fs->err)
		fs->err = fs->m->batch_err;
	pthread_mutex_unlock(&fs->mu);
	/* Every handle still open goes with us: unlinked inodes that only we
	 * held are freed before the journal closes. */
	if (!fs->ro && !atomic_load(&fs->fenced) && crp_meta_tx_begin(fs->m) == 0) {
		GHashTableIter it;
		gpointer k, v;
		int r2;

		g_hash_table_iter_init(&it, fs->inodes);
		while (g_hash_table_iter_next(&it, &k, &v))
			((struct crp_fs_inode *)v)->nopen = 0;
		r2 = crp_meta_open_drop_all(fs->m);
		if (!r2)
			r2 = crp_fs_orphan_sweep(fs);
		if (r2 < 0)
			fs->err = fs->err ? fs->err : r2;
		if (crp_meta_tx_end(fs->m) < 0)
			fs->err = fs->err ? fs->err : -EIO;
	}
	/* The heartbeat goes on until the slot is freed, under the metadata
	 * lock (a fenced host's array stays fenced: the close writes nothing). */
	crp_cluster_quiesce(fs->cluster);
	r = crp_meta_shutdown(fs->m);
	crp_cluster_leave(fs->cluster);
	fs->cluster = NULL;
	e = crp_meta_close(fs->m);
	r = r ? r : e;
	if (atomic_load(&fs->fenced))
		r = -CRP_EFENCED;
	if (fs->err && !r)
		r = fs->err;
	g_hash_table_destroy(fs->inodes);
	g_hash_table_destroy(fs->handles); /* those never released */
	pthread_cond_destroy(&fs->flush_cv);
	pthread_mutex_destroy(&fs->mu);
	free(fs);
	return r < 0 ? -crp_errno(r) : r;
}

int crp_fs_sync(struct crp_fs *fs)
{
	uint64_t s = crp_fs_op_begin(fs);
	int r = 0;

	if (!fs->ro) {
		r = crp_meta_commit_durable(fs->m);
	} else if (fs->err) {
		r = fs->err;
	}
	if (!r && fs->m->batch_err) {
		/* A commit of kept operations failed since the last fsync. */
		r = fs->m->batch_err;
		fs->m->batch_err = 0;
	}
	return crp_fs_op_end(fs, s, r);
}

int crp_fs_fsync(struct crp_fs *fs, uint64_t ino, bool datasync)
{
	(void)ino;
	(void)datasync; /* data and metadata go together: one journal commit */
	return crp_fs_sync(fs);
}

/* ---- attributes ---- */

static int lookup_pass(struct crp_fs *fs, uint64_t parent, const char *name,
		       struct crp_fs_inode **ipp)
{
	struct crp_fs_inode *dp;
	uint64_t ino;
	int r = get_dir(fs, parent, &dp);

	if (r)
		return r;
	if (strlen(name) > CRP_NAME_MAX)
		return -ENAMETOOLONG;
	if (!strcmp(name, "."))
		ino = dp->d.ino;
	else if (!strcmp(name, ".."))
		ino = dp->d.parent ? dp->d.parent : dp->d.ino;
	else
		r = crp_fs_dir_find(fs, dp, name, &ino, NULL);
	if (r)
		return r;
	r = crp_fs_iget(fs, ino, ipp);
	return r == -ESTALE ? -CRP_ECORRUPT : r; /* a name that points at a free inode */
}

int crp_fs_lookup(struct crp_fs *fs, uint64_t parent, const char *name, struct crp_attr *out)
{
	for (bool locked = false;; locked = true) {
		uint64_t s = crp_fs_rop_begin(fs, locked);
		struct crp_fs_inode *ip = NULL;
		int r = lookup_pass(fs, parent, name, &ip);

		if (!crp_fs_rop_valid(fs, s, r))
			continue;
		if (!r) {
			ip->nlookup++;
			crp_fs_attr(ip, out);
		}
		return crp_fs_op_end(fs, s, r);
	}
}

/* Lookups hold nothing on the disks: a forget only trims the cache. */
void crp_fs_forget(struct crp_fs *fs, uint64_t ino, uint64_t nlookup)
{
	struct crp_fs_inode *ip;

	pthread_mutex_lock(&fs->mu);
	ip = g_hash_table_lookup(fs->inodes, &ino);
	if (ip) {
		ip->nlookup -= CRP_MIN(ip->nlookup, nlookup);
		crp_fs_inode_drop(fs, ip);
	}
	pthread_mutex_unlock(&fs->mu);
}

int crp_fs_getattr(struct crp_fs *fs, uint64_t ino, struct crp_attr *out)
{
	for (bool locked = false;; locked = true) {
		uint64_t s = crp_fs_rop_begin(fs, locked);
		struct crp_fs_inode *ip;
		int r = crp_fs_iget(fs, ino, &ip);

		if (!r)
			crp_fs_attr(ip, out);
		if (!r)
			crp_fs_inode_drop(fs, ip);
		if (crp_fs_rop_valid(fs, s, r))
			return crp_fs_op_end(fs, s, r);
	}
}

int crp_fs_setattr(struct crp_fs *fs, uint64_t ino, const struct crp_attr *in, unsigned set,
		   const struct crp_cred *cred, struct crp_attr *out)
{
	uint64_t s = crp_fs_op_begin(fs);
	struct crp_fs_inode *ip;
	int r = crp_fs_iget(fs, ino, &ip);

	(void)cred;
	if (r)
		goto out;
	if (fs->ro) {
		r = -EROFS;
		goto out;
	}
	if (set & CRP_SET_SIZE) {
		if (S_ISDIR(ip->d.mode)) {
			r = -EISDIR;
			goto out;
		}
		if (!S_ISREG(ip->d.mode)) {
			r = -EINVAL;
			goto out;
		}
		if (in->size > ip->d.size) {
			r = need_space(fs, 0, false);
			if (r)
				goto out;
		}
		r = crp_fs_truncate(fs, ip, in->size);
		if (r)
			goto out;
		crp_fs_touch(ip, false, true, true);
	}
	if (set & CRP_SET_MODE) {
		ip->d.mode = (ip->d.mode & S_IFMT) | (in->mode & 07777);
		r = crp_fs_acl_chmod(fs, ip);
		if (r)
			goto out;
	}
	if (set & CRP_SET_UID)
		ip->d.uid = in->uid;
	if (set & CRP_SET_GID)
		ip->d.gid = in->gid;
	if (set & CRP_SET_ATIME_NOW)
		crp_fs_touch(ip, true, false, false);
	else if (set & CRP_SET_ATIME) {
		ip->d.atime_sec = in->atime.tv_sec;
		ip->d.atime_nsec = (uint32_t)in->atime.tv_nsec;
	}
	if (set & CRP_SET_MTIME_NOW)
		crp_fs_touch(ip, false, true, false);
	else if (set & CRP_SET_MTIME) {
		ip->d.mtime_sec = in->mtime.tv_sec;
		ip->d.mtime_nsec = (uint32_t)in->mtime.tv_nsec;
	}
	if (set & CRP_SET_CTIME) {
		ip->d.ctime_sec = in->ctime.tv_sec;
		ip->d.ctime_nsec = (uint32_t)in->ctime.tv_nsec;
	} else {
		crp_fs_touch(ip, false, false, true);
	}
	r = crp_fs_istore(fs, ip);
	if (!r)
		crp_fs_attr(ip, out);
out:
	return crp_fs_op_end(fs, s, r);
}

/* ---- creating names ---- */

static int make_node(struct crp_fs *fs, uint64_t parent, const char *name, uint32_t mode,
		     uint64_t rdev, const struct crp_cred *cred, const char *target,
		     struct crp_fs_inode **out)
{
	struct crp_fs_inode *dp, *ip;
	uint64_t ino;
	int r = check_name(name);

	if (r)
		return r;
	r = get_dir(fs, parent, &dp);
	if (r)
		return r;
	if (!dp->d.nlink)
		return -ENOENT;
	r = crp_fs_dir_find(fs, dp, name, &ino, NULL);
	if (r == 0)
		return -EEXIST;
	if (r != -ENOENT)
		return r;
	if (S_ISDIR(mode) && dp->d.nlink >= CRP_LINK_MAX)
		return -EMLINK;
	r = need_space(fs, 4 + (target ? 1 : 0), true);
	if (r)
		return r;
	r = crp_fs_inew(fs, dp, mode, rdev, cred, &ip);
	if (r)
		return r;
	r = crp_fs_acl_inherit(fs, dp, ip, mode);
	if (r)
		return r;
	if (target) {
		size_t len = strlen(target);

		if (len <= CRP_INLINE_SIZE) {
			ip->d.flags |= CRP_IF_INLINE_DATA;
			ip->d.inline_len = (uint32_t)len;
			memcpy(ip->d.inline_data, target, len);
		} else {
			r = crp_fs_write_range(fs, ip, 0, target, len);
			if (r)
				return r;
		}
		ip->d.size = len;
	}
	r = crp_fs_dir_add(fs, dp, name, ip->d.ino, crp_fs_dtype(mode));
	if (r)
		return r;
	if (S_ISDIR(mode))
		dp->d.nlink++;
	crp_fs_touch(dp, false, true, true);
	r = crp_fs_istore(fs, dp);
	if (!r)
		r = crp_fs_istore(fs, ip);
	if (r)
		return r;
	ip->nlookup++;
	*out = ip;
	return 0;
}

int crp_fs_mknod(struct crp_fs *fs, uint64_t parent, const char *name, uint32_t mode,
		 uint64_t rdev, const struct crp_cred *cred, struct crp_attr *out)
{
	uint64_t s = crp_fs_op_begin(fs);
	struct crp_fs_inode *ip;
	int r;

	switch (mode & S_IFMT) {
	case S_IFREG: case S_IFCHR: case S_IFBLK: case S_IFIFO: case S_IFSOCK:
		r = make_node(fs, parent, name, mode, rdev, cred, NULL, &ip);
		break;
	case 0:
		r = make_node(fs, parent, name, mode | S_IFREG, 0, cred, NULL, &ip);
		break;
	default:
		r = -EINVAL;
	}
	if (!r)
		crp_fs_attr(ip, out);
	return crp_fs_op_end(fs, s, r);
}

int crp_fs_mkdir(struct crp_fs *fs, uint64_t parent, const char *name, uint32_t mode,
		 const struct crp_cred *cred, struct crp_attr *out)
{
	uint64_t s = crp_fs_op_begin(fs);
	struct crp_fs_inode *ip;
	int r = make_node(fs, parent, name, S_IFDIR | (mode & 07777), 0, cred, NULL, &ip);

	if (!r)
		crp_fs_attr(ip, out);
	return crp_fs_op_end(fs, s, r);
}

int crp_fs_symlink(struct crp_fs *fs, uint64_t parent, const char *name, const char *target,
		   const struct crp_cred *cred, struct crp_attr *out)
{
	uint64_t s = crp_fs_op_begin(fs);
	struct crp_fs_inode *ip;
	struct crp_cred c = cred ? *cred : (struct crp_cred){ 0 };
	int r;

	c.umask = 0;
	if (strlen(target) > CRP_SYMLINK_MAX || !target[0])
		r = target[0] ? -ENAMETOOLONG : -ENOENT;
	else
		r = make_node(fs, parent, name, S_IFLNK | 0777, 0, &c, target, &ip);
	if (!r)
		crp_fs_attr(ip, out);
	return crp_fs_op_end(fs, s, r);
}

static ssize_t readlink_pass(struct crp_fs *fs, uint64_t ino, char *buf, size_t size)
{
	struct crp_fs_inode *ip;
	ssize_t n = 0;
	int r = crp_fs_iget(fs, ino, &ip);

	if (r)
		goto out;
	if (!S_ISLNK(ip->d.mode)) {
		r = -EINVAL;
		goto out;
	}
	if (ip->d.flags & CRP_IF_INLINE_DATA) {
		n = ip->d.inline_len;
		memcpy(buf, ip->d.inline_data, CRP_MIN((size_t)n, size));
	} else {
		char *tmp = malloc(ip->d.size + 1);

		if (!tmp) {
			r = -ENOMEM;
			goto out;
		}
		n = crp_fs_read_range(fs, ip, 0, tmp, ip->d.size);
		if (n >= 0)
			memcpy(buf, tmp, CRP_MIN((size_t)n, size));
		free(tmp);
		if (n < 0)
			r = (int)n;
	}
	if (!r && (size_t)n < size)
		buf[n] = 0;
out:
	return r < 0 ? r : n;
}

ssize_t crp_fs_readlink(struct crp_fs *fs, uint64_t ino, char *buf, size_t size)
{
	for (bool locked = false;; locked = true) {
		uint64_t s = crp_fs_rop_begin(fs, locked);
		ssize_t n = readlink_pass(fs, ino, buf, size);
		int r = n < 0 ? (int)n : 0;

		if (!crp_fs_rop_valid(fs, s, r))
			continue;
		r = crp_fs_op_end(fs, s, r);
		return r < 0 ? r : n;
	}
}

int crp_fs_link(struct crp_fs *fs, uint64_t ino, uint64_t newparent, const char *newname,
		struct crp_attr *out)
{
	uint64_t s = crp_fs_op_begin(fs), x;
	struct crp_fs_inode *ip, *dp;
	int r = check_name(newname);

	if (r)
		goto out;
	r = crp_fs_iget(fs, ino, &ip);
	if (r)
		goto out;
	if (S_ISDIR(ip->d.mode)) {
		r = -EPERM;
		goto out;
	}
	if (ip->d.nlink >= CRP_LINK_MAX) {
		r = -EMLINK;
		goto out;
	}
	if (!ip->d.nlink) {
		r = -ENOENT;
		goto out;
	}
	r = get_dir(fs, newparent, &dp);
	if (r)
		goto out;
	r = crp_fs_dir_find(fs, dp, newname, &x, NULL);
	if (r == 0)
		r = -EEXIST;
	if (r != -ENOENT)
		goto out;
	r = need_space(fs, 2, false);
	if (r)
		goto out;
	r = crp_fs_dir_add(fs, dp, newname, ip->d.ino, crp_fs_dtype(ip->d.mode));
	if (r)
		goto out;
	ip->d.nlink++;
	crp_fs_touch(ip, false, false, true);
	crp_fs_touch(dp, false, true, true);
	r = crp_fs_istore(fs, ip);
	if (!r)
		r = crp_fs_istore(fs, dp);
	if (r)
		goto out;
	ip->nlookup++;
	crp_fs_attr(ip, out);
out:
	return crp_fs_op_end(fs, s, r);
}

/* ---- removing names ---- */

static int drop_link(struct crp_fs *fs, struct crp_fs_inode *ip)
{
	int r;

	if (S_ISDIR(ip->d.mode))
		ip->d.nlink = 0;
	else if (ip->d.nlink)
		ip->d.nlink--;
	crp_fs_touch(ip, false, false, true);
	r = crp_fs_istore(fs, ip);
	if (!r)
		r = crp_fs_iput_maybe(fs, ip);
	return r;
}

/* The inode @name in @dp stands for; a name that points at a free inode is
 * corruption. */
static int named_inode(struct crp_fs *fs, struct crp_fs_inode *dp, const char *name,
		       struct crp_fs_inode **ip)
{
	uint64_t ino;
	int r = crp_fs_dir_find(fs, dp, name, &ino, NULL);

	if (r)
		return r;
	r = crp_fs_iget(fs, ino, ip);
	return r == -ESTALE ? -CRP_ECORRUPT : r;
}

static int remove_name(struct crp_fs *fs, uint64_t parent, const char *name,
		       const struct crp_cred *cred, bool dir)
{
	struct crp_fs_inode *dp, *ip;
	int r;

	if (fs->ro)
		return -EROFS;
	if (!strcmp(name, "."))
		return dir ? -EINVAL : -EISDIR;
	if (!strcmp(name, ".."))
		return dir ? -ENOTEMPTY : -EISDIR;
	if (strlen(name) > CRP_NAME_MAX)
		return -ENAMETOOLONG;
	r = get_dir(fs, parent, &dp);
	if (r)
		return r;
	r = named_inode(fs, dp, name, &ip);
	if (r)
		return r;
	if (dir && !S_ISDIR(ip->d.mode))
		return -ENOTDIR;
	if (!dir && S_ISDIR(ip->d.mode))
		return -EISDIR;
	if (dir && ip->d.dir_entries)
		return -ENOTEMPTY;
	r = sticky_ok(dp, ip, cred);
	if (r)
		return r;
	r = crp_fs_dir_remove(fs, dp, name);
	if (r)
		return r;
	if (dir)
		dp->d.nlink--;
	crp_fs_touch(dp, false, true, true);
	r = crp_fs_istore(fs, dp);
	if (!r)
		r = drop_link(fs, ip);
	return r;
}

int crp_fs_unlink(struct crp_fs *fs, uint64_t parent, const char *name,
		  const struct crp_cred *cred)
{
	uint64_t s = crp_fs_op_begin(fs);

	return crp_fs_op_end(fs, s, remove_name(fs, parent, name, cred, false));
}

int crp_fs_rmdir(struct crp_fs *fs, uint64_t parent, const char *name,
		 const struct crp_cred *cred)
{
	uint64_t s = crp_fs_op_begin(fs);

	return crp_fs_op_end(fs, s, remove_name(fs, parent, name, cred, true));
}

/* Is @anc @ino or one of its ancestors? */
static int is_ancestor(struct crp_fs *fs, uint64_t anc, uint64_t ino, bool *out)
{
	for (int depth = 0; depth < 1 << 16; depth++) {
		struct crp_fs_inode *ip;
		int r;

		if (ino == anc) {
			*out = true;
			return 0;
		}
		if (ino == fs->m->sb.root_ino) {
			*out = false;
			return 0;
		}
		r = crp_fs_iget(fs, ino, &ip);
		if (r)
			return r;
		ino = ip->d.parent;
	}
	return -CRP_ECORRUPT;
}

static int do_rename(struct crp_fs *fs, uint64_t parent, const char *name, uint64_t newparent,
		     const char *newname, unsigned flags, const struct crp_cred *cred)
{
	struct crp_fs_inode *sp, *dp, *src, *dst = NULL;
	uint64_t dino;
	bool loop = false;
	int r;

	if (flags & ~(unsigned)(RENAME_NOREPLACE | RENAME_EXCHANGE))
		return -EINVAL;
	if ((flags & RENAME_NOREPLACE) && (flags & RENAME_EXCHANGE))
		return -EINVAL;
	if (fs->ro)
		return -EROFS;
	r = check_name(name);
	if (!r)
		r = check_name(newname);
	if (r)
		return r == -EEXIST ? -EBUSY : r;
	r = get_dir(fs, parent, &sp);
	if (!r)
		r = get_dir(fs, newparent, &dp);
	if (r)
		return r;
	r = named_inode(fs, sp, name, &src);
	if (r)
		return r;
	r = crp_fs_dir_find(fs, dp, newname, &dino, NULL);
	if (r && r != -ENOENT)
		return r;
	if (r == 0) {
		if (flags & RENAME_NOREPLACE)
			return -EEXIST;
		r = crp_fs_iget(fs, dino, &dst);
		if (r)
			return r == -ESTALE ? -CRP_ECORRUPT : r;
	} else if (flags & RENAME_EXCHANGE) {
		return -ENOENT;
	}
	if (dst == src)
		return 0; /* the same inode: nothing to do */
	r = sticky_ok(sp, src, cred);
	if (!r && dst)
		r = sticky_ok(dp, dst, cred);
	if (r)
		return r;
	/* A directory may not move below itself. */
	if (S_ISDIR(src->d.mode) && parent != newparent) {
		r = is_ancestor(fs, src->d.ino, dp->d.ino, &loop);
		if (r)
			return r;
		if (loop)
			return -EINVAL;
	}
	if (dst && (flags & RENAME_EXCHANGE) && S_ISDIR(dst->d.mode) && parent != newparent) {
		r = is_ancestor(fs, dst->d.ino, sp->d.ino, &loop);
		if (r)
			return r;
		if (loop)
			return -EINVAL;
	}
	if (dst && !(flags & RENAME_EXCHANGE)) {
		if (S_ISDIR(src->d.mode) && !S_ISDIR(dst->d.mode))
			return -ENOTDIR;
		if (!S_ISDIR(src->d.mode) && S_ISDIR(dst->d.mode))
			return -EISDIR;
		if (S_ISDIR(dst->d.mode) && dst->d.dir_entries)
			return -ENOTEMPTY;
	}
	if (!dst && S_ISDIR(src->d.mode) && parent != newparent && dp->d.nlink >= CRP_LINK_MAX)
		return -EMLINK;
	r = need_space(fs, 4, false);
	if (r)
		return r;

	if (flags & RENAME_EXCHANGE) {
		r = crp_fs_dir_replace(fs, dp, newname, src->d.ino, crp_fs_dtype(src->d.mode));
		if (!r)
			r = crp_fs_dir_replace(fs, sp, name, dst->d.ino, crp_fs_dtype(dst->d.mode));
		if (r)
			return r;
		if (parent != newparent) {
			if (S_ISDIR(src->d.mode)) {
				src->d.parent = dp->d.ino;
				sp->d.nlink--;
				dp->d.nlink++;
			}
			if (S_ISDIR(dst->d.mode)) {
				dst->d.parent = sp->d.ino;
				dp->d.nlink--;
				sp->d.nlink++;
			}
		}
		crp_fs_touch(dst, false, false, true);
		r = crp_fs_istore(fs, dst);
	} else {
		if (dst) {
			r = crp_fs_dir_replace(fs, dp, newname, src->d.ino, crp_fs_dtype(src->d.mode));
			if (!r && S_ISDIR(dst->d.mode))
				dp->d.nlink--;
			if (!r)
				r = drop_link(fs, dst);
		} else {
			r = crp_fs_dir_add(fs, dp, newname, src->d.ino, crp_fs_dtype(src->d.mode));
		}
		if (!r)
			r = crp_fs_dir_remove(fs, sp, name);
		if (r)
			return r;
		if (S_ISDIR(src->d.mode) && parent != newparent) {
			src->d.parent = dp->d.ino;
			sp->d.nlink--;
			dp->d.nlink++;
		}
	}
	if (r)
		return r;
	crp_fs_touch(src, false, false, true);
	crp_fs_touch(sp, false, true, true);
	crp_fs_touch(dp, false, true, true);
	r = crp_fs_istore(fs, src);
	if (!r)
		r = crp_fs_istore(fs, sp);
	if (!r && dp != sp)
		r = crp_fs_istore(fs, dp);
	return r;
}

int crp_fs_rename(struct crp_fs *fs, uint64_t parent, const char *name, uint64_t newparent,
		  const char *newname, unsigned flags, const struct crp_cred *cred)
{
	uint64_t s = crp_fs_op_begin(fs);

	return crp_fs_op_end(fs, s, do_rename(fs, parent, name, newparent, newname, flags, cred));
}

/* ---- open files ---- */

static int open_handle(struct crp_fs *fs, struct crp_fs_inode *ip, int flags, uint64_t *fh)
{
	struct crp_fs_handle *h = calloc(1, sizeof(*h));
	int r;

	if (!h)
		return -ENOMEM;
	if ((flags & O_TRUNC) && (flags & O_ACCMODE) != O_RDONLY && S_ISREG(ip->d.mode) &&
	    ip->d.size) {
		if (fs->ro) {
			free(h);
			return -EROFS;
		}
		r = crp_fs_truncate(fs, ip, 0);
		if (!r) {
			crp_fs_touch(ip, false, true, true);
			r = crp_fs_istore(fs, ip);
		}
		if (r) {
			free(h);
			return r;
		}
	}
	if (S_ISREG(ip->d.mode) && !fs->ro) {
		/* Entered in our open table before the open returns: no other
		 * host frees it while we hold it (opentab.c). */
		r = crp_meta_open_ref(fs->m, ip->d.ino);
		if (r) {
			free(h);
			return r;
		}
		h->registered = true;
	}
	h->ino = ip->d.ino;
	h->flags = flags;
	ip->nopen++;
	g_hash_table_add(fs->handles, h);
	*fh = (uint64_t)(uintptr_t)h;
	return 0;
}

int crp_fs_open(struct crp_fs *fs, uint64_t ino, int flags, uint64_t *fh)
{
	uint64_t s = crp_fs_op_begin(fs);
	struct crp_fs_inode *ip;
	int r = crp_fs_iget(fs, ino, &ip);

	if (!r && S_ISDIR(ip->d.mode) && (flags & O_ACCMODE) != O_RDONLY)
		r = -EISDIR;
	if (!r && fs->ro && (flags & O_ACCMODE) != O_RDONLY)
		r = -EROFS;
	if (!r)
		r = open_handle(fs, ip, flags, fh);
	return crp_fs_op_end(fs, s, r);
}

int crp_fs_create(struct crp_fs *fs, uint64_t parent, const char *name, uint32_t mode,
		  int flags, const struct crp_cred *cred, struct crp_attr *out, uint64_t *fh)
{
	uint64_t s = crp_fs_op_begin(fs), ino;
	struct crp_fs_inode *dp, *ip;
	int r = get_dir(fs, parent, &dp);

	if (r)
		goto out;
	if (strlen(name) <= CRP_NAME_MAX && crp_fs_dir_find(fs, dp, name, &ino, NULL) == 0) {
		/* Created by someone else since the kernel looked. */
		if (flags & O_EXCL) {
			r = -EEXIST;
			goto out;
		}
		r = crp_fs_iget(fs, ino, &ip);
		if (!r && S_ISDIR(ip->d.mode))
			r = -EISDIR;
		if (!r)
			r = open_handle(fs, ip, flags, fh);
		if (!r) {
			ip->nlookup++;
			crp_fs_attr(ip, out);
		}
		goto out;
	}
	r = make_node(fs, parent, name, S_IFREG | (mode & 07777), 0, cred, NULL, &ip);
	if (!r)
		r = open_handle(fs, ip, flags & ~O_TRUNC, fh);
	if (!r)
		crp_fs_attr(ip, out);
out:
	return crp_fs_op_end(fs, s, r);
}

/*
 * Handle @h is closed: it no longer holds its inode (our open table on the
 * disks first, so that the check below and any other host's see it so),
 * and an unlinked inode that nothing holds any more is freed.  The inode
 * is taken as the disks hold it now: another host may have unlinked it.
 */
static int drop_open(struct crp_fs *fs, const struct crp_fs_handle *h)
{
	struct crp_fs_inode *ip = g_hash_table_lookup(fs->inodes, &h->ino);
	int r;

	if (ip && ip->nopen)
		ip->nopen--;
	if (h->registered && crp_meta_open_unref(fs->m, h->ino) < 0)
		crp_warn("inode %llu: our open table could not be written at close; written "
			 "again later", (unsigned long long)h->ino);
	if (fs->ro || fs->op_err)
		return 0;
	r = crp_fs_iget(fs, h->ino, &ip);
	if (r == -ESTALE)
		return 0; /* freed already */
	if (r)
		return r;
	return crp_fs_iput_maybe(fs, ip);
}

int crp_fs_release(struct crp_fs *fs, uint64_t ino, uint64_t fh)
{
	uint64_t s = crp_fs_op_begin(fs);
	struct crp_fs_handle *h = (struct crp_fs_handle *)(uintptr_t)fh;
	int r = 0;

	(void)ino;
	if (h) {
		r = drop_open(fs, h);
		g_hash_table_remove(fs->handles, h);
	}
	return crp_fs_op_end(fs, s, r);
}

/*
 * File data is read without fs->mu, so that reads run side by side and
 * beside the other operations: the blocks are found under it (a plan with
 * their checksums, crp_fs_rplan_make) and a token taken before it goes
 * (crp_meta_data_token); after the read, crp_meta_data_check says, under
 * fs->mu again, whether every block still belonged to this file all along.
 * If not, or if a block failed its checksum, or a member could not serve
 * (nothing is rebuilt without the lock), the read is made again the old
 * way, under fs->mu and the metadata lock.
 */
ssize_t crp_fs_read(struct crp_fs *fs, uint64_t ino, uint64_t fh, uint64_t off, void *buf,
		    size_t size)
{
	struct crp_fs_rplan p = { 0 };
	bool outside = true;

	(void)fh;
	for (bool locked = false;; locked = true) {
		uint64_t s = crp_fs_rop_begin(fs, locked);
		struct crp_meta_dtoken tok;
		struct crp_fs_inode *ip;
		ssize_t n = 0;
		int r = crp_fs_iget(fs, ino, &ip);

		if (!r && S_ISDIR(ip->d.mode))
			r = -EISDIR;
		if (!r && outside) {
			/* A plan that cannot be made (a checksum block that
			 * must be repaired): the old way says what to do. */
			outside = crp_fs_rplan_make(fs, ip, off, size, &p) == 0;
			n = (ssize_t)p.bytes;
		}
		if (!r && !outside) {
			n = crp_fs_read_range(fs, ip, off, buf, size);
			if (n < 0)
				r = (int)n;
		}
		if (!crp_fs_rop_valid(fs, s, r))
			continue;
		r = crp_fs_op_end_keep(fs, s, r);
		if (r >= 0 && outside && !p.nblk)
			r = crp_fs_rplan_read(fs, &p, buf); /* holes: zeros only */
		if (r < 0 || !outside || !p.nblk) {
			crp_fs_rplan_free(&p);
			r = crp_fs_op_unlock(fs, r);
			return r < 0 ? r : n;
		}
		if (!crp_meta_data_token(fs->m, &tok)) {
			crp_fs_op_unlock(fs, 0);
			outside = false;
			continue;
		}
		pthread_mutex_unlock(&fs->mu);
		if (fs->read_gap)
			fs->read_gap(fs->read_gap_ctx);
		r = crp_fs_rplan_read(fs, &p, buf);
		pthread_mutex_lock(&fs->mu);
		r = crp_meta_data_check(fs->m, &tok, r == 0);
		pthread_mutex_unlock(&fs->mu);
		if (r == 0) {
			crp_fs_rplan_free(&p);
			return n;
		}
		/* Any failure, a member gone or a block changed meanwhile: */
		outside = false; /* again, the old way */
	}
}

ssize_t crp_fs_write(struct crp_fs *fs, uint64_t ino, uint64_t fh, uint64_t off,
		     const void *buf, size_t size)
{
	uint64_t s = crp_fs_op_begin(fs);
	struct crp_fs_handle *h = (struct crp_fs_handle *)(uintptr_t)fh;
	struct crp_fs_inode *ip;
	int r = crp_fs_iget(fs, ino, &ip);

	if (r)
		goto out;
	if (!S_ISREG(ip->d.mode)) {
		r = S_ISDIR(ip->d.mode) ? -EISDIR : -EINVAL;
		goto out;
	}
	if (h && (h->flags & O_APPEND))
		off = ip->d.size;
	if (off + size < off) {
		r = -EFBIG;
		goto out;
	}
	r = need_space(fs, size / CRP_BLOCK + 2, false);
	if (r)
		goto out;
	r = crp_fs_write_range(fs, ip, off, buf, size);
	if (r)
		goto out;
	if (off + size > ip->d.size)
		ip->d.size = off + size;
	/* Writing clears set-user-ID, as on a local filesystem. */
	if (ip->d.mode & (S_ISUID | S_ISGID))
		ip->d.mode &= ~(uint32_t)(S_ISUID | ((ip->d.mode & S_IXGRP) ? S_ISGID : 0));
	crp_fs_touch(ip, false, true, true);
	r = crp_fs_istore(fs, ip);
out:
	r = crp_fs_op_end(fs, s, r);
	return r < 0 ? r : (ssize_t)size;
}

/* ---- directories ---- */

static int snap_add(void *ctx, const struct crp_dirent *d)
{
	struct crp_fs_snapent e = { .name = g_strdup(d->name), .ino = d->ino,
				    .mode = (uint32_t)DTTOIF(d->type) };

	g_array_append_val((GArray *)ctx, e);
	return 0;
}

static void snap_clear(GArray *a)
{
	for (guint i = 0; i < a->len; i++)
		g_free(g_array_index(a, struct crp_fs_snapent, i).name);
	g_array_set_size(a, 0);
}

int crp_fs_opendir(struct crp_fs *fs, uint64_t ino, uint64_t *fh)
{
	uint64_t s = crp_fs_op_begin(fs);
	struct crp_fs_inode *dp;
	struct crp_fs_handle *h;
	int r = get_dir(fs, ino, &dp);

	if (r)
		goto out;
	h = calloc(1, sizeof(*h));
	if (!h) {
		r = -ENOMEM;
		goto out;
	}
	h->ino = ino;
	h->snap = g_array_new(FALSE, FALSE, sizeof(struct crp_fs_snapent));
	dp->nopen++;
	g_hash_table_add(fs->handles, h);
	*fh = (uint64_t)(uintptr_t)h;
out:
	return crp_fs_op_end(fs, s, r);
}

/* 1: the directory is gone (reads as empty); 0: the snapshot is ready. */
static int readdir_pass(struct crp_fs *fs, uint64_t ino, struct crp_fs_handle *h,
			uint64_t cookie, bool *built)
{
	struct crp_fs_inode *dp;
	int r = get_dir(fs, ino, &dp);

	if (r == -ESTALE && h && !fs->op_opt) {
		/* Removed by another host while open here: it reads as the
		 * empty directory it was when it went. */
		return 1;
	}
	if (r)
		return r;
	/* Cookie 0 (opendir, rewinddir) takes a snapshot of the names; the
	 * cookies are positions in it.  Names added or removed after it may
	 * or may not show, as POSIX allows. */
	if (cookie == 0 || !h->snap->len) {
		struct crp_fs_snapent dot = { g_strdup("."), dp->d.ino, S_IFDIR };
		struct crp_fs_snapent dotdot = { g_strdup(".."),
						 dp->d.parent ? dp->d.parent : dp->d.ino, S_IFDIR };

		*built = true;
		snap_clear(h->snap);
		g_array_append_val(h->snap, dot);
		g_array_append_val(h->snap, dotdot);
		r = crp_fs_dir_iter(fs, dp, snap_add, h->snap);
		if (r) {
			snap_clear(h->snap); /* never a partial snapshot */
			return r;
		}
	}
	return 0;
}

int crp_fs_readdir(struct crp_fs *fs, uint64_t ino, uint64_t fh, uint64_t cookie,
		   crp_fs_dirent_fn fn, void *ctx)
{
	struct crp_fs_handle *h = (struct crp_fs_handle *)(uintptr_t)fh;

	for (bool locked = false;; locked = true) {
		uint64_t s = crp_fs_rop_begin(fs, locked);
		bool built = false;
		int r = readdir_pass(fs, ino, h, cookie, &built);

		if (!crp_fs_rop_valid(fs, s, r)) {
			/* A snapshot taken on a pass that did not hold is not used. */
			pthread_mutex_lock(&fs->mu);
			if (built)
				snap_clear(h->snap);
			pthread_mutex_unlock(&fs->mu);
			continue;
		}
		/* The walk calls back into the adapter: it must not re-enter the fs. */
		for (uint64_t i = cookie; r == 0 && i < h->snap->len; i++) {
			struct crp_fs_snapent *e = &g_array_index(h->snap, struct crp_fs_snapent, i);

			if (fn(ctx, e->name, e->ino, e->mode, i + 1))
				break;
		}
		return crp_fs_op_end(fs, s, r < 0 ? r : 0);
	}
}

int crp_fs_releasedir(struct crp_fs *fs, uint64_t ino, uint64_t fh)
{
	uint64_t s = crp_fs_op_begin(fs);
	struct crp_fs_handle *h = (struct crp_fs_handle *)(uintptr_t)fh;
	int r = 0;

	(void)ino;
	if (h) {
		r = drop_open(fs, h);
		g_hash_table_remove(fs->handles, h);
	}
	return crp_fs_op_end(fs, s, r);
}

int crp_fs_statfs(struct crp_fs *fs, struct statvfs *out)
{
	uint64_t s = crp_fs_op_begin(fs);
	const struct crp_sb *sb = &fs->m->sb;
	uint64_t data = sb->total_blocks - sb->ag_start - (uint64_t)sb->ag_count * CRP_AG_META_BLOCKS;
	uint64_t bfree;

	if (!fs->op_err && !fs->m->ro)
		(void)crp_meta_refresh_counts(fs->m); /* other hosts' allocations */
	bfree = crp_meta_free_blocks(fs->m);
	memset(out, 0, sizeof(*out));
	out->f_bsize = CRP_BLOCK;
	out->f_frsize = CRP_BLOCK;
	out->f_blocks = data;
	out->f_bfree = bfree;
	out->f_bavail = bfree > RESERVE_BLOCKS ? bfree - RESERVE_BLOCKS : 0;
	out->f_files = sb->inode_count - 1;
	out->f_ffree = crp_meta_free_inodes(fs->m);
	out->f_favail = out->f_ffree;
	out->f_fsid = fs->m->fsid;
	out->f_namemax = CRP_NAME_MAX;
	if (fs->ro)
		out->f_flag |= ST_RDONLY;
	return crp_fs_op_end(fs, s, 0);
}

void crp_fs_get_counters(struct crp_fs *fs, struct crp_fs_counters *out)
{
	pthread_mutex_lock(&fs->mu);
	out->reservations = atomic_load(&crp_array_counters(fs->m->a)->lock_acquires);
	out->commits = fs->m->stats.commits;
	out->committed_blocks = fs->m->stats.committed_blocks;
	out->deferred_commits = fs->m->stats.deferred;
	out->inplace_blocks = fs->m->stats.inplace_blocks;
	out->unlocked_reads = fs->m->opt_ok;
	out->unlocked_retries = fs->m->opt_retries;
	out->data_outside = fs->m->data_ok;
	out->data_outside_retries = fs->m->data_retries;
	out->batches = fs->m->batches;
	out->batched_ops = fs->m->batched_ops;
	out->held_marks = fs->m->held_marks;
	out->open_table_reads = fs->m->ot_peer_reads;
	out->peers = (uint32_t)crp_array_peers(fs->m->a);
	pthread_mutex_unlock(&fs->mu);
}

void crp_fs_set_invalidate(struct crp_fs *fs, crp_fs_inval_fn fn, void *ctx)
{
	pthread_mutex_lock(&fs->mu);
	fs->inval = fn;
	fs->inval_ctx = ctx;
	pthread_mutex_unlock(&fs->mu);
}
