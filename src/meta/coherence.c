/*
 * Many hosts: metadata transactions under the metadata lock, and the
 * coherence of every host's caches through the shared state block.
 *
 * The model.  The hosts share nothing but the disks.  Every change to the
 * metadata is one transaction, made while holding the metadata lock
 * (crp_array_meta_lock: member 0's reservation, pinned):
 *
 *   begin   lock; read the shared block (RAID block 1, struct crp_shared);
 *           if it says PENDING, the previous holder died (or lost the lock)
 *           while writing a transaction in place: redo that transaction from
 *           its journal and clear the flag; if the generation moved since
 *           our last look, drop the blocks the records name (or everything
 *           when records were lost) and tell the fs layer
 *   work    reads go to the cache or to the disks (nobody else writes meta-
 *           data now); changes go into the running transaction
 *   commit  journal + SYNCHRONIZE CACHE (as on one host); shared block:
 *           generation + 1, PENDING, where the transaction lies in our
 *           journal, one record per block it touches; blocks in place;
 *           shared block again without PENDING
 *   end     unlock.  If the lock was broken meanwhile (LU reset, PREEMPT),
 *           another host may have written between our reads and our
 *           writes: we are fenced, and write nothing more.
 *
 * Why the journal needs the generation.  Every transaction of a journal but
 * the last is in place once its holder unlocked, and other hosts may have
 * changed the same blocks since: replaying them would write old images over
 * newer ones.  The descriptor therefore carries the generation the
 * transaction creates, and replay applies only transactions newer than the
 * shared block's generation (the one a host died in before marking it
 * pending; a pending one is redone by the next lock holder).
 *
 * Group commit.  tx_end may keep the lock and the running transaction for
 * the next operation (crp_meta_batch_*): the model is the same with
 * "transaction" read as "batch", because nothing of a batch reaches the
 * disks before its commit, and nobody else can write metadata while we
 * hold the lock.  What a batch changes is not on the disks, yet its
 * operations were answered: a reader without the lock on another host
 * would miss them.  So before the first of them is answered, the shared
 * block says HELD (one write, under the lock), read_begin and read_end
 * treat HELD as PENDING, and the reader asks again under the lock, which
 * it gets once the batch committed (the commit's PENDING write clears
 * HELD; one that writes no block clears it alone).  A holder that died
 * with a batch left HELD behind: the next tx_begin clears it.  With other
 * hosts alive a batch is kept only while it changes something, and for
 * peer_commit_ns (a few milliseconds: they wait for the lock meanwhile),
 * then the lock steps aside for them.  What must be per operation is
 * the abort: from tx_begin on, each block of the batch the operation
 * touches is saved first (crp_meta_undo_save, crp_meta_undo_touch) and
 * tx_abort puts them back, so a failed operation takes nothing else with
 * it.
 *
 * Between transactions, a host may poll the shared block without the lock
 * (crp_meta_poll): one small read; on a change it only drops cache entries,
 * it reads nothing, so it never sees a half-written block.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "crpfs/err.h"
#include "crpfs/log.h"
#include "crpfs/util.h"
#include "meta_i.h"

void crp_meta_set_changed(struct crp_meta *m, crp_meta_changed_fn fn, void *ctx)
{
	m->changed = fn;
	m->changed_ctx = ctx;
}

struct shared_ctx {
	uint64_t fsid;
};

static bool shared_ok(const void *blk, void *ctx)
{
	struct crp_shared *s = malloc(sizeof(*s));
	bool ok = s && crp_shared_in(blk, ((struct shared_ctx *)ctx)->fsid, s, NULL, 0) == 0;

	free(s);
	return ok;
}

enum shared_how {
	SH_READ,	/* unlocked, read-write host: a failure may be a block being
			   written; the next look under the lock rebuilds it */
	SH_REBUILD,	/* under the lock, or a tool that writes nothing */
	SH_REBUILD_QUIET, /* a read-only mount: rebuilt in memory, and a failed
			   attempt (maybe a write in flight) is not reported */
};

/* Read the shared block into @s.  A block that fails its checks (an
 * all-zero one included) is rebuilt from parity as @how says, written back
 * only by a host that may write (crp_meta_rebuild_block). */
static int shared_read(struct crp_meta *m, struct crp_shared *s, enum shared_how how)
{
	uint8_t *buf = crp_alloc_buf(CRP_BLOCK);
	int r;

	if (!buf)
		return -ENOMEM;
	r = crp_array_read(m->a, (uint64_t)CRP_SHARED_BLKNO * CRP_BLOCK, buf, CRP_BLOCK);
	if (r == 0)
		r = crp_shared_in(buf, m->fsid, s, NULL, 0);
	if ((r == -CRP_ECHECKSUM || r == -CRP_ECORRUPT) && how != SH_READ) {
		struct shared_ctx c = { m->fsid };

		if (crp_meta_rebuild_as(m, CRP_SHARED_BLKNO, buf, shared_ok, &c, CRP_MAGIC_SHARED,
					NULL, how == SH_REBUILD_QUIET) == 0)
			r = crp_shared_in(buf, m->fsid, s, NULL, 0);
	}
	free(buf);
	return r;
}

static int shared_write(struct crp_meta *m, const struct crp_shared *s)
{
	uint8_t *buf = crp_alloc_buf(CRP_BLOCK);
	int r;

	if (!buf)
		return -ENOMEM;
	crp_shared_out(s, m->fsid, buf);
	r = crp_array_write(m->a, (uint64_t)CRP_SHARED_BLKNO * CRP_BLOCK, buf, CRP_BLOCK);
	free(buf);
	return r;
}

static void mark_stale(struct crp_meta *m, uint64_t blkno)
{
	const struct crp_sb *sb = &m->sb;

	if (blkno >= sb->ibitmap_start && blkno < sb->ibitmap_start + sb->ibitmap_blocks) {
		if (m->ig_stale)
			m->ig_stale[blkno - sb->ibitmap_start] = 1;
	} else if (blkno >= sb->ag_start && blkno < sb->total_blocks &&
		   (blkno - sb->ag_start) % sb->ag_blocks == 0) {
		if (m->ag_stale)
			m->ag_stale[(blkno - sb->ag_start) / sb->ag_blocks] = 1;
	}
}

static void drop_one(struct crp_meta *m, uint64_t blkno)
{
	struct crp_mblk *b = g_hash_table_lookup(m->cache, &blkno);

	if (m->changed)
		m->changed(m->changed_ctx, blkno, b);
	mark_stale(m, blkno);
	if (b && !b->dirty)
		g_hash_table_remove(m->cache, &blkno);
}

static gboolean drop_clean(gpointer key, gpointer value, gpointer data)
{
	struct crp_mblk *b = value;

	(void)key;
	(void)data;
	return !b->dirty;
}

/* Drop every clean cached block; every count may be stale. */
static void drop_all(struct crp_meta *m)
{
	if (m->changed)
		m->changed(m->changed_ctx, CRP_META_CHANGED_ALL, NULL);
	g_hash_table_foreach_remove(m->cache, drop_clean, NULL);
	if (m->ag_stale)
		memset(m->ag_stale, 1, m->sb.ag_count);
	if (m->ig_stale)
		memset(m->ig_stale, 1, m->sb.ibitmap_blocks);
	m->full_drops++;
}

/* The generation on disk is @s's: drop whatever changed since ours. */
static void catch_up(struct crp_meta *m, const struct crp_shared *s)
{
	if (m->gen_known && s->generation == m->gen)
		return;
	m->gen_drops++;
	if (!m->gen_known || s->generation < m->gen || s->lost_gen > m->gen) {
		drop_all(m);
	} else {
		for (uint32_t i = 0; i < CRP_SHARED_RECS; i++)
			if (s->rec[i].gen > m->gen)
				drop_one(m, s->rec[i].blkno);
	}
	m->gen = s->generation;
	m->gen_known = true;
}

/* m->peek, the shared block as read without the lock (a poll, a read's
 * check): made once, kept for every later look. */
static struct crp_shared *peek_buf(struct crp_meta *m)
{
	if (!m->peek)
		m->peek = malloc(sizeof(*m->peek));
	return m->peek;
}

int crp_meta_poll(struct crp_meta *m)
{
	struct crp_shared *s;
	int r;

	if (m->locked)
		return 0;
	s = peek_buf(m);
	if (!s)
		return -ENOMEM;
	r = shared_read(m, s, SH_READ);
	if (r == 0)
		catch_up(m, s);
	if (r == 0 && crp_meta_members_stale(m, s))
		(void)crp_meta_members_reload(m); /* unreadable now: next time */
	return r;
}

/*
 * Reads without the lock.  The writer's order makes them safe to check
 * afterwards: a transaction publishes its new generation with PENDING
 * (and the blocks it touches in the records) and waits for that WRITE to
 * complete before it writes any block in place, and clears PENDING only
 * after the last one.  So if a read of ours returned anything a
 * transaction wrote in place, that transaction's PENDING write had
 * completed before our read was answered, and the shared block we read
 * after it shows PENDING or a later generation.  The same holds for file
 * data: a block freed by a transaction is allocated again only after it
 * committed (alloc.c keeps tx_freed), so a data block that changed owner
 * changed it under a later generation.  What a check catches was read into
 * the caches; the next catch-up drops it, since every block written in
 * place is named in its transaction's records (or all are dropped).
 *
 * Only with every member in sync: reconstruction from parity, MEDIUM ERROR
 * repair and damaged blocks are left to the lock holder, because a stripe
 * read without the lock may be half-way through another host's update.
 */
static bool array_whole(struct crp_meta *m)
{
	int n = crp_array_nmembers(m->a);

	if (m->unreachable || crp_array_failures_pending(m->a))
		return false;
	for (int i = 0; i < n; i++)
		if (crp_array_mstate(m->a, i) != CRP_AM_IN_SYNC || !crp_array_readable(m->a, i))
			return false;
	return true;
}

int crp_meta_read_begin(struct crp_meta *m)
{
	struct crp_shared *s;
	int ok = 0;

	if (m->locked || m->ro || m->opt || m->dirty->len || !array_whole(m))
		return 0;
	s = peek_buf(m);
	if (!s)
		return 0;
	crp_array_optimistic(true);
	if (shared_read(m, s, SH_READ) == 0 &&
	    !(s->flags & (CRP_SHARED_PENDING | CRP_SHARED_HELD)) &&
	    !crp_meta_members_stale(m, s)) {
		catch_up(m, s);
		m->opt = true;
		m->opt_gen = s->generation;
		m->opt_reads = crp_array_thread_reads();
		ok = 1;
	}
	if (!ok)
		crp_array_optimistic(false);
	return ok;
}

int crp_meta_read_end(struct crp_meta *m, bool keep)
{
	struct crp_shared *s;
	int r = keep ? 0 : -CRP_ERETRY;

	if (!m->opt)
		return 0;
	m->opt = false;
	if (m->dirty->len) {
		crp_array_optimistic(false);
		m->opt_retries++;
		return -EDEADLK; /* a change made outside a transaction */
	}
	if (r == 0 && crp_array_thread_reads() != m->opt_reads) {
		s = peek_buf(m);
		r = s ? shared_read(m, s, SH_READ) : -ENOMEM;
		if (r == 0 && ((s->flags & (CRP_SHARED_PENDING | CRP_SHARED_HELD)) ||
			       s->generation != m->opt_gen))
			r = -CRP_ERETRY;
	}
	crp_array_optimistic(false);
	if (r < 0) {
		m->opt_retries++;
		return -CRP_ERETRY;
	}
	m->opt_ok++;
	return 0;
}

bool crp_meta_data_token(struct crp_meta *m, struct crp_meta_dtoken *t)
{
	if (m->ro || m->fenced || !m->gen_known || m->opt || !array_whole(m))
		return false;
	t->free_epoch = m->free_epoch;
	t->gen_drops = m->gen_drops;
	t->lock_seq = m->locked ? m->lock_seq : 0;
	return true;
}

int crp_meta_data_check(struct crp_meta *m, const struct crp_meta_dtoken *t, bool read_ok)
{
	struct crp_shared *s;
	int r = read_ok ? 0 : -CRP_ERETRY;

	if (r == 0 && (m->free_epoch != t->free_epoch || m->gen_drops != t->gen_drops ||
		       !m->gen_known || m->ro || m->fenced))
		r = -CRP_ERETRY;
	if (r == 0 && !(t->lock_seq && m->locked && m->lock_seq == t->lock_seq)) {
		s = peek_buf(m);
		r = s ? shared_read(m, s, SH_READ) : -ENOMEM;
		if (r == 0 && ((s->flags & CRP_SHARED_PENDING) || s->generation != m->gen))
			r = -CRP_ERETRY;
	}
	if (r < 0) {
		m->data_retries++;
		return -CRP_ERETRY;
	}
	m->data_ok++;
	return 0;
}

/* Group commit: the largest batch kept (blocks, and blocks allocated or
 * freed).  An operation's undo copies only what it touches, so the bound
 * is the journal's: a transaction holds CRP_JOURNAL_MAX_TX (504) blocks,
 * and the next operation must fit beside the batch. */
#define BATCH_MAX_DIRTY 256
#define BATCH_MAX_ALLOC 8192

int crp_meta_tx_begin_read(struct crp_meta *m)
{
	if (!m->held)
		return crp_meta_tx_begin(m);
	/* A read changes nothing: no undo, so its lookups copy nothing. */
	m->held = false;
	crp_array_meta_adopt(m->a);
	crp_meta_undo_forget(m);
	return 0;
}

/*
 * The shared block says HELD for another host: it answered operations of a
 * batch that is not on the disks, and then lost the lock without
 * committing.  Either it died (its batch is gone with it: clear the mark
 * and go on) or it lost the lock with its iSCSI session, when the target
 * restarted or the connection broke, and is logging in again to take the
 * lock and commit the batch, which it can do only if nobody wrote
 * meanwhile (lock_lost).  Which of the two shows in its heartbeat: while
 * its counter moves (read from its slot under the lock), we step aside
 * and wait; once it stood still for held_wait_ns (the dead timeout: the
 * same verdict the cluster makes), or after HELD_WAIT_BEATS of those in
 * all, or if its slot is no longer an active one, we go on.  A holder
 * given up for is not waited for again at the same generation.
 */
#define HELD_WAIT_STEP_NS 50000000ull /* 50 ms */
#define HELD_WAIT_BEATS 3

static bool holder_returns(struct crp_meta *m)
{
	const struct crp_shared *sh = m->sh;
	const char *why;
	struct crp_slot s;
	uint64_t now;

	if (!m->held_wait_ns || (sh->flags & CRP_SHARED_PENDING) || !(sh->flags & CRP_SHARED_HELD) ||
	    sh->slot == (uint32_t)m->slot || sh->slot >= m->sb.max_hosts)
		return false;
	if (m->hw_slot == (int)sh->slot && m->hw_gen == sh->generation && !m->hw_start_ns)
		return false; /* given up for already */
	if (crp_meta_slot_read(m, (int)sh->slot, &s) < 0 || s.state != CRP_SLOT_ACTIVE) {
		why = "its slot is not an active host's";
		goto give_up;
	}
	now = crp_now_ns();
	if (m->hw_slot != (int)sh->slot || m->hw_gen != sh->generation) {
		m->hw_slot = (int)sh->slot;
		m->hw_gen = sh->generation;
		m->hw_beat = s.heartbeat;
		m->hw_start_ns = m->hw_beat_ns = now;
		crp_warn("host %s: host %s (slot %u) keeps a batch of answered operations but lost "
			 "the lock: waiting for it to commit them while it beats",
			 m->host, s.host, sh->slot);
		return true;
	}
	if (s.heartbeat != m->hw_beat) {
		m->hw_beat = s.heartbeat;
		m->hw_beat_ns = now;
	}
	if (now - m->hw_beat_ns >= m->held_wait_ns)
		why = "its heartbeat stopped";
	else if (now - m->hw_start_ns >= HELD_WAIT_BEATS * m->held_wait_ns)
		why = "it beats but did not come back";
	else
		return true;
give_up:
	crp_warn("host %s: the batch of host slot %u is given up for (%s): what it answered "
		 "and did not commit is lost", m->host, sh->slot, why);
	m->hw_slot = (int)sh->slot;
	m->hw_gen = sh->generation;
	m->hw_start_ns = 0;
	return false;
}

int crp_meta_tx_begin(struct crp_meta *m)
{
	int r;

	if (m->held) {
		/* The batch kept by the last operation: still ours, as is the
		 * lock (a loss shows at the commit, as within one operation). */
		m->held = false;
		crp_array_meta_adopt(m->a);
		crp_meta_undo_save(m);
		return 0;
	}
	if (m->locked)
		return -EDEADLK;
	if (!m->sh) {
		m->sh = calloc(1, sizeof(*m->sh));
		if (!m->sh)
			return -ENOMEM;
	}
	if (m->ro) {
		/* No lock: a read-only view that follows the generation. */
		r = shared_read(m, m->sh, SH_REBUILD_QUIET);
		if (r == 0)
			catch_up(m, m->sh);
		if (r == 0 && crp_meta_members_stale(m, m->sh))
			(void)crp_meta_members_reload(m);
		return r == -CRP_ECHECKSUM || r == -CRP_ECORRUPT ? 0 : r;
	}
	for (;;) {
		r = crp_array_meta_lock(m->a);
		if (r < 0)
			return r;
		m->locked = true;
		m->lock_seq++;
		m->lock_since_ns = crp_now_ns();
		m->tx_published = false;
		r = shared_read(m, m->sh, SH_REBUILD);
		if (r < 0)
			goto fail;
		if (!holder_returns(m))
			break;
		/* Step aside, so that it can take the lock and commit. */
		m->locked = false;
		(void)crp_array_meta_unlock(m->a);
		crp_sleep_ns(CRP_MIN(m->held_wait_ns / 20, HELD_WAIT_STEP_NS));
	}
	if (m->sh->flags & CRP_SHARED_PENDING) {
		/* Its writer stopped half-way through the in-place writes. */
		r = crp_meta_journal_redo(m, (int)m->sh->slot, m->sh->pos, m->sh->seq);
		if (r < 0)
			goto fail;
		crp_warn("redid %d transaction(s) from %llu of host slot %u, which its host left "
			 "half-written", r, (unsigned long long)m->sh->seq, m->sh->slot);
		if (r > 1) /* a chain: its records name its first transaction's blocks only */
			m->sh->lost_gen = m->sh->generation;
	}
	if (m->sh->flags & (CRP_SHARED_PENDING | CRP_SHARED_HELD)) {
		/* Redone, or a batch its holder never committed (it died, or
		 * lost the lock): nothing of that is on the disks.  Readers
		 * wait no more. */
		m->sh->flags &= ~(CRP_SHARED_PENDING | CRP_SHARED_HELD);
		r = shared_write(m, m->sh);
		if (r < 0)
			goto fail;
	}
	catch_up(m, m->sh);
	/* Another host changed the member table: follow it before reading
	 * anything.  A member this host cannot serve is failed in the array
	 * and recorded before any write goes on without it (the failure
	 * hook); reads need not wait for that. */
	if (crp_meta_members_stale(m, m->sh))
		(void)crp_meta_members_reload(m);
	return 0;
fail:
	m->locked = false;
	(void)crp_array_meta_unlock(m->a);
	return r;
}

/* Unlock, after writing what of our open table waited for it. */
static int meta_unlock(struct crp_meta *m)
{
	if (crp_meta_lazy_open(m)) {
		/* Its end failed: the shared block still says PENDING. */
		crp_warn("host %s: blocks committed to the journal are not all in place; the next "
			 "holder of the lock writes them from the journal", m->host);
		crp_meta_lazy_drop(m);
	}
	if (m->ot_pending && crp_meta_open_flush_pending(m) < 0)
		crp_warn("host %s: an open table block could not be written; it is tried again "
			 "at the next open or close", m->host);
	return crp_array_meta_unlock(m->a);
}

/* Drop the running transaction from the cache: nothing of it is on disk.
 * Blocks freed or allocated in memory only, inodes changed in memory:
 * simplest and safe to forget every cached block and inode. */
static void tx_drop(struct crp_meta *m)
{
	for (guint i = 0; i < m->dirty->len; i++)
		((struct crp_mblk *)m->dirty->pdata[i])->dirty = false;
	g_ptr_array_set_size(m->dirty, 0);
	drop_all(m);
	crp_meta_undo_forget(m);
	crp_meta_lazy_drop(m);
	crp_meta_dheld_drop(m); /* its blocks are free again */
	g_hash_table_remove_all(m->tx_freed);
	g_hash_table_remove_all(m->tx_new);
	m->tx_freed_meta = false;
	m->free_epoch++; /* what it allocated is free again */
}

static void fence_lost(struct crp_meta *m, const char *why)
{
	m->fenced = true;
	m->ro = true;
	crp_err("crpfs: host %s lost the metadata lock while it held it (%s); this mount is now "
		"read-only and writes nothing more: unmount, run crpfs fsck, and mount again",
		m->host, why);
}

/*
 * The metadata lock was lost while this host held it: the unlock said so,
 * after a commit that succeeded (@commit_r 0), failed (< 0), or after an
 * abort (@aborted: nothing to commit).  A host breaks another's lock only
 * after it declared that host dead and marked its slot, under the lock
 * (cluster/recover.c); a lock lost with its iSCSI session (a target
 * restart, a network cut) was broken by nobody.  So the lock is taken again
 * and our slot read: not ours any more, this host was declared dead and is
 * fenced.  Still ours, the transaction's fate depends on how far its
 * commit got:
 *   - committed: every write it made went out under the lock (a write is
 *     never sent on a nexus other than the one that reserved,
 *     crp_member_may_send): done;
 *   - published (PENDING on the disks): the shared block names it, and the
 *     next holder of the lock, this one now, redoes it from the journal:
 *     done;
 *   - neither, and the generation has not moved: no other host committed
 *     meanwhile, what is in memory is still what the disks say: committed
 *     again under the new lock;
 *   - otherwise it is lost, dropped with the caches: -CRP_ETXLOST, the
 *     operation fails with EIO and the mount goes on.
 */
static int lock_lost(struct crp_meta *m, int commit_r, bool aborted)
{
	/* A deferred checkpoint's chain was published with its first
	 * transaction: the running one is redone with it only if it reached
	 * the journal. */
	bool published = m->tx_published, mine;
	bool unjournaled = crp_meta_lazy_open(m) && m->dirty->len && !m->tx_journaled;
	uint64_t pub_seq = m->sh ? m->sh->seq : 0, gen0 = m->gen;
	struct crp_slot s;
	int r, e;

	crp_warn("host %s: the metadata lock was lost while held (%s); taking it again to see why",
		 m->host, commit_r < 0 ? crp_strerror(commit_r) : "found at its release");
	r = crp_array_meta_lock(m->a);
	if (r < 0) {
		tx_drop(m);
		crp_warn("host %s: cannot take the metadata lock again: %s; the operation fails",
			 m->host, crp_strerror(r));
		return aborted ? r : -CRP_ETXLOST;
	}
	m->locked = true;
	m->lock_seq++;
	r = crp_meta_slot_read(m, m->slot, &s);
	if (r < 0 || s.state != CRP_SLOT_ACTIVE || strcmp(s.host, m->host) ||
	    s.mount_ns != m->slot_mount_ns) {
		tx_drop(m);
		m->locked = false;
		m->ot_pending = 0; /* not ours to write any more */
		(void)crp_array_meta_unlock(m->a);
		fence_lost(m, r < 0 ? "its slot cannot be read" : "another host declared it dead");
		return -CRP_ELOCKLOST;
	}
	m->lock_losses++;
	if (aborted || commit_r == 0) {
		r = 0;
		goto out;
	}
	r = shared_read(m, m->sh, SH_REBUILD);
	if (r < 0) {
		tx_drop(m);
		r = -CRP_ETXLOST;
		goto out;
	}
	/* A PENDING write that failed may have landed all the same. */
	mine = (m->sh->flags & CRP_SHARED_PENDING) && m->sh->slot == (uint32_t)m->slot &&
	       m->sh->seq == pub_seq;
	if (published || mine) {
		if (mine) {
			r = crp_meta_journal_redo(m, m->slot, m->sh->pos, m->sh->seq);
			if (r >= 0) {
				m->sh->flags &= ~CRP_SHARED_PENDING;
				if (r > 1)
					m->sh->lost_gen = m->sh->generation;
				r = shared_write(m, m->sh);
			}
		}
		tx_drop(m);
		if (r == 0 && !unjournaled)
			crp_warn("host %s: its transaction %llu was on the disks already: redone",
				 m->host, (unsigned long long)pub_seq);
		r = r < 0 || unjournaled ? -CRP_ETXLOST : 0;
		goto out;
	}
	if (!(m->sh->flags & CRP_SHARED_PENDING) && m->sh->generation == gen0) {
		r = crp_meta_commit(m);
		if (r == 0) {
			crp_warn("host %s: no other host wrote meanwhile: the transaction is committed "
				 "under the new lock", m->host);
			goto out;
		}
	}
	tx_drop(m);
	crp_warn("host %s: another host wrote meanwhile: the transaction is lost, its operation "
		 "fails with EIO", m->host);
	r = -CRP_ETXLOST;
out:
	m->locked = false;
	e = meta_unlock(m);
	if (e == -CRP_ELOCKLOST) {
		fence_lost(m, "lost twice in a row");
		return -CRP_ELOCKLOST;
	}
	return r ? r : e;
}

/* The batch changes what a reader on another host could see: blocks of
 * metadata, allocations.  The open table alone is not read without the
 * lock, and is not worth holding the lock for. */
static bool has_changes(const struct crp_meta *m)
{
	return m->dirty->len || g_hash_table_size(m->tx_new) || g_hash_table_size(m->tx_freed) ||
	       crp_meta_lazy_open(m);
}

/* How long a batch may be kept: commit_ns alone, peer_commit_ns with
 * other hosts alive (they wait for the lock meanwhile). */
static uint64_t keep_window(const struct crp_meta *m)
{
	return crp_array_peers(m->a) == 0 ? m->commit_ns : m->peer_commit_ns;
}

/* Under the lock, our copy of the shared block says what the disks say
 * (tx_begin read it, cleared a stale HELD, and every change since went
 * out with it): HELD there is this batch's mark. */
static bool held_marked(const struct crp_meta *m)
{
	return m->sh && (m->sh->flags & CRP_SHARED_HELD);
}

/* Write HELD to the shared block: the batch kept from now on has
 * operations answered that are not on the disks.  A failed write may
 * have landed: the flag stays in our copy, and the commit clears it. */
static int mark_held(struct crp_meta *m)
{
	int r;

	m->sh->flags |= CRP_SHARED_HELD;
	m->sh->slot = (uint32_t)m->slot; /* whose batch: see holder_returns */
	r = shared_write(m, m->sh);
	if (r == 0)
		m->held_marks++;
	return r;
}

/* The batch is committed or dropped: readers need not wait any more.  A
 * failure leaves a stale HELD, which costs readers a lock until the next
 * holder clears it (tx_begin). */
static void unmark_held(struct crp_meta *m)
{
	if (!m->locked || m->fenced || !held_marked(m))
		return;
	m->sh->flags &= ~CRP_SHARED_HELD;
	if (shared_write(m, m->sh) < 0)
		crp_warn("host %s: the shared block still says that a batch is kept; readers "
			 "take the lock until the next transaction clears it", m->host);
}

void crp_meta_tx_abort(struct crp_meta *m)
{
	if (m->locked && crp_meta_undo_restore(m)) {
		/* Only the failed operation goes; the batch before it stays. */
		drop_all(m);
		m->held = true;
		return;
	}
	if (m->locked && m->held_ops) {
		crp_err("host %s: %llu operations not yet committed are forgotten with a failed one",
			m->host, (unsigned long long)m->held_ops);
		m->batch_err = -EIO;
	}
	tx_drop(m);
	m->held_ops = 0;
	m->held_since_ns = 0;
	if (!m->locked)
		return;
	unmark_held(m);
	m->locked = false;
	if (meta_unlock(m) == -CRP_ELOCKLOST)
		(void)lock_lost(m, 0, true);
}

/* Commit the running transaction and unlock.  @answered: operations of
 * it whose callers were already told they succeeded. */
static int tx_commit_unlock(struct crp_meta *m, uint64_t answered)
{
	uint64_t ops = m->held_ops, since = m->held_since_ns;
	bool aged = crp_meta_hold_over(m, crp_now_ns());
	int r, e;

	m->held = false;
	m->held_ops = 0;
	m->held_since_ns = 0;
	r = crp_meta_commit(m);
	unmark_held(m); /* a commit that wrote no block left it */
	m->locked = false;
	if (aged || (since && crp_now_ns() - since >= keep_window(m)))
		crp_array_meta_step_aside(m->a); /* held a whole window */
	e = meta_unlock(m);
	/* The commit met a lock lost with its session (a stripe's, or the
	 * metadata lock before the unlock could tell): the same question. */
	if (e == -CRP_ELOCKLOST || r == -CRP_ELOCKLOST)
		r = lock_lost(m, r, false);
	else
		r = r ? r : e;
	if (r < 0 && answered) {
		/* Operations already answered went with it: the next fsync
		 * must not say that everything is on the disks. */
		crp_err("host %s: a commit of %llu operations failed (%s): those not synced "
			"since may be lost", m->host, (unsigned long long)ops, crp_strerror(r));
		m->batch_err = -EIO;
	} else if (r == 0 && ops > 1) {
		m->batches++;
		m->batched_ops += ops;
	}
	return r;
}

static bool may_keep(struct crp_meta *m, uint64_t now)
{
	uint64_t window = keep_window(m);

	return window && !m->ro && !m->fenced && m->slot >= 0 &&
	       !m->in_update && (!m->tx_published || crp_meta_lazy_open(m)) &&
	       !crp_array_fenced(m->a) &&
	       (crp_array_peers(m->a) == 0 || has_changes(m)) &&
	       m->dirty->len <= BATCH_MAX_DIRTY && !crp_meta_hold_over(m, now) &&
	       g_hash_table_size(m->tx_new) + g_hash_table_size(m->tx_freed) <= BATCH_MAX_ALLOC &&
	       (!m->held_since_ns || now - m->held_since_ns < window);
}

int crp_meta_tx_end(struct crp_meta *m)
{
	uint64_t now = crp_now_ns();

	if (!m->locked) {
		if (m->dirty->len && !m->ro)
			return -EDEADLK; /* a change made outside a transaction */
		return 0;
	}
	m->held_ops++;
	/* Only what changes something must be marked: a batch of reads has
	 * answered nothing the disks do not say. */
	if (may_keep(m, now) && (held_marked(m) || !has_changes(m) || mark_held(m) == 0)) {
		if (!m->held_since_ns)
			m->held_since_ns = now;
		m->held = true;
		return 0;
	}
	return tx_commit_unlock(m, m->held_ops - 1); /* all but this one */
}

int crp_meta_batch_flush(struct crp_meta *m)
{
	if (!m->held)
		return 0;
	m->held = false;
	crp_array_meta_adopt(m->a);
	return tx_commit_unlock(m, m->held_ops);
}

uint64_t crp_meta_batch_due(const struct crp_meta *m)
{
	uint64_t due = m->held_since_ns + keep_window(m);

	if (!m->held)
		return 0;
	if (m->lock_since_ns)
		due = CRP_MIN(due, m->lock_since_ns + m->hold_max_ns);
	return due;
}

void crp_meta_shared_note(struct crp_meta *m, uint64_t blkno)
{
	struct crp_shared *s = m->sh;
	struct crp_shared_rec *rec;

	if (!s)
		return;
	rec = &s->rec[s->head];
	if (rec->gen)
		s->lost_gen = CRP_MAX(s->lost_gen, rec->gen);
	rec->gen = s->generation;
	rec->blkno = blkno;
	s->head = (s->head + 1) % CRP_SHARED_RECS;
}

/*
 * Called by crp_meta_commit under the lock, after the journal holds the
 * transaction of @k blocks at ring index @pos with sequence @seq: publish
 * the new generation with PENDING and one record per block.
 */
int crp_meta_shared_pending(struct crp_meta *m, struct crp_mblk **blks, unsigned k, uint64_t pos,
			    uint64_t seq, bool held)
{
	struct crp_shared *s = m->sh;
	int r;

	if (!m->locked || !s)
		return 0;
	s->generation++;
	s->flags = CRP_SHARED_PENDING | (held ? CRP_SHARED_HELD : 0);
	s->slot = (uint32_t)m->slot;
	s->seq = seq;
	s->pos = pos;
	for (unsigned i = 0; i < k; i++)
		crp_meta_shared_note(m, blks[i]->blkno);
	r = shared_write(m, s); /* failed: whether it landed is not known (lock_lost) */
	if (r == 0)
		m->tx_published = true;
	return r;
}

/* The transaction is in place: clear PENDING; our caches are current. */
int crp_meta_shared_done(struct crp_meta *m)
{
	int r;

	if (!m->locked || !m->sh || !(m->sh->flags & CRP_SHARED_PENDING))
		return 0;
	m->sh->flags &= ~CRP_SHARED_PENDING;
	r = shared_write(m, m->sh);
	if (r == 0) {
		m->gen = m->sh->generation;
		m->gen_known = true;
	}
	return r;
}

int crp_meta_shared_store(struct crp_meta *m)
{
	return m->sh ? shared_write(m, m->sh) : -EINVAL;
}

/* The generation a transaction committed now creates (0: no lock held).
 * A deferred checkpoint's chain published its generation with its first
 * transaction: the later ones create the same (the redo of a chain goes
 * as far as it does). */
uint64_t crp_meta_next_gen(const struct crp_meta *m)
{
	if (!m->locked || !m->sh)
		return 0;
	return m->sh->generation + (crp_meta_lazy_open(m) ? 0 : 1);
}

int crp_meta_shared_check(struct crp_meta *m)
{
	struct crp_shared *s = malloc(sizeof(*s));
	int r;

	if (!s)
		return -ENOMEM;
	r = shared_read(m, s, SH_REBUILD);
	free(s);
	return r;
}

int crp_meta_shared_load(struct crp_meta *m)
{
	if (!m->sh) {
		m->sh = calloc(1, sizeof(*m->sh));
		if (!m->sh)
			return -ENOMEM;
	}
	/* Under the lock, or opened read-only (writes nothing). */
	return shared_read(m, m->sh, SH_REBUILD);
}

/* After replaying a dead host's journal (under the lock): every host drops
 * everything, this one too. */
int crp_meta_shared_replayed(struct crp_meta *m)
{
	if (!m->sh)
		return 0;
	m->sh->generation++;
	m->sh->lost_gen = m->sh->generation;
	m->sh->flags = 0;
	return shared_write(m, m->sh);
}

uint64_t crp_meta_shared_gen(const struct crp_meta *m)
{
	return m->sh ? m->sh->generation : 0;
}

/* Without the lock (read-only checks): the shared generation, and the one
 * above which transactions of @slot's journal are not in place
 * (crp_meta_replay_gen); 0 if the shared block cannot be read. */
int crp_meta_shared_peek(struct crp_meta *m, int slot, uint64_t *gen, uint64_t *replay_gen)
{
	struct crp_shared *s = malloc(sizeof(*s));
	int r;

	if (!s)
		return -ENOMEM;
	r = shared_read(m, s, m->ro ? SH_REBUILD : SH_READ);
	*gen = r == 0 ? s->generation : 0;
	*replay_gen = r == 0 ? crp_meta_replay_gen(s, slot) : 0;
	free(s);
	return r;
}

int crp_meta_refresh_counts(struct crp_meta *m)
{
	struct crp_mblk *b;
	int r;

	for (uint32_t g = 0; m->ag_stale && g < m->sb.ag_count; g++) {
		if (!m->ag_stale[g])
			continue;
		r = crp_meta_bread(m, crp_meta_ag_base(m, g), CRP_MAGIC_BITMAP, &b);
		if (r < 0)
			return r;
		m->ag_free[g] = crp_mblk_count(b);
		m->ag_stale[g] = 0;
	}
	for (uint32_t i = 0; m->ig_stale && i < m->sb.ibitmap_blocks; i++) {
		if (!m->ig_stale[i])
			continue;
		r = crp_meta_bread(m, m->sb.ibitmap_start + i, CRP_MAGIC_IBITMAP, &b);
		if (r < 0)
			return r;
		m->ig_free[i] = crp_mblk_count(b);
		m->ig_stale[i] = 0;
	}
	return 0;
}
