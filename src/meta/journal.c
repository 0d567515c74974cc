/*
 * The metadata block cache, the running transaction and the journal.
 *
 * Journal of host slot h, at block J = journal_start + h * journal_blocks:
 *   J+0  journal header: ring index where replay starts, and the sequence
 *        number expected there
 *   J+1  orphan list of the host
 *   J+2  ring of R = journal_blocks - 2 blocks
 *
 * A transaction of k blocks occupies k + 2 consecutive ring blocks:
 *   descriptor (seq, k, the k target block numbers), the k block images,
 *   commit (seq, k, XXH3-64 of the descriptor and the images).
 * Transactions never wrap: when the next one does not fit before the end
 * of the ring, every earlier one is already written in place, so the
 * members are synced, the header is reset to ring index 0 with the next
 * sequence, synced again, and writing starts over at 0.
 *
 * Commit: sync if file data was written since the last sync (ordered data:
 * on the media before the commit block can be), write descriptor+images+
 * commit in one array write, sync, write the blocks in place, advance.  Replay: from the header's start, apply
 * each transaction whose descriptor and commit carry the expected sequence
 * and whose checksum matches; stop at the first that does not (a torn tail
 * or the end).  Redo of whole images is idempotent, so replaying a
 * transaction already written in place is harmless -- except over a block
 * freed since and reused for file data.  A transaction that frees a
 * metadata block therefore moves the header's start past itself (synced)
 * before the block can be reused; this is the revoke record, done by
 * trimming the journal instead.
 *
 * The deferred checkpoint.  Most fsyncs of a host alone change the same
 * few blocks again and again (a file's extent, checksum-table and bitmap
 * blocks under random writes), and writing each of them in place is a
 * stripe update of its own.  So an fsync that finds the host alone, the
 * lock kept for the batch (group commit) and nothing that moves the
 * journal header (no metadata block freed) commits to the journal only:
 * the journal write and its sync are what fsync promises.  Its blocks
 * wait in memory (m->lazy, the newest committed image of each; a read
 * that misses the cache takes it from there) and go in place, newest
 * image once, when the chain ends: at the batch's commit and unlock, at
 * any commit that is not an fsync's, before the ring starts over, at
 * LAZY_MAX_BLOCKS blocks, and when the batch has held the lock
 * CRP_HOLD_MAX_NS in a row: it commits then and the lock steps aside.  Until then the shared
 * block says PENDING, published with the chain's first transaction
 * (where it lies, the generation it creates): the chain's transactions
 * all create that one generation, so that a redo of the named transaction
 * goes on through the rest of the chain (crp_meta_journal_redo), and a
 * replay takes the chain in whole when PENDING names the slot replayed.
 * Other hosts read nothing meanwhile: PENDING sends a reader to the lock,
 * and whoever takes it next -- us, or a host that broke our lock -- redoes
 * the chain first.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "crpfs/err.h"
#include "crpfs/log.h"
#include "crpfs/meta.h"
#include "crpfs/util.h"
#include "meta_i.h"

#define CACHE_MAX_BLOCKS 16384 /* 64 MiB of clean blocks before a trim */
#define TX_COMMIT_AT 384       /* commit the running transaction at this size */
#define LAZY_MAX_BLOCKS 1024   /* a deferred checkpoint's blocks, at most */


static struct crp_mblk *mblk_alloc(uint64_t blkno, uint32_t magic)
{
	struct crp_mblk *b = calloc(1, sizeof(*b));

	if (!b)
		return NULL;
	b->buf = crp_alloc_buf(CRP_BLOCK);
	if (!b->buf) {
		free(b);
		return NULL;
	}
	b->blkno = blkno;
	b->magic = magic;
	return b;
}

void crp_meta_mblk_free(void *p)
{
	struct crp_mblk *b = p;

	if (b) {
		free(b->buf);
		free(b);
	}
}

/* The deferred checkpoint's images (m->lazy) are blocks of their own,
 * outside the cache: what the cache holds may be changed by the running
 * transaction, they are what the journal says. */
bool crp_meta_lazy_get(struct crp_meta *m, uint64_t blkno, void *buf)
{
	struct crp_mblk *l = m->lazy ? g_hash_table_lookup(m->lazy, &blkno) : NULL;

	if (!l)
		return false;
	memcpy(buf, l->buf, CRP_BLOCK);
	return true;
}

void crp_meta_lazy_drop(struct crp_meta *m)
{
	if (m->lazy)
		g_hash_table_remove_all(m->lazy);
	m->lazy_since_ns = 0;
}

/* Keep the images of the @k blocks just journaled as the chain's newest. */
static int lazy_keep(struct crp_meta *m, struct crp_mblk **blks, unsigned k)
{
	for (unsigned i = 0; i < k; i++) {
		struct crp_mblk *l = g_hash_table_lookup(m->lazy, &blks[i]->blkno);

		if (!l) {
			l = mblk_alloc(blks[i]->blkno, blks[i]->magic);
			if (!l)
				return -ENOMEM;
			g_hash_table_insert(m->lazy, &l->blkno, l);
		}
		memcpy(l->buf, blks[i]->buf, CRP_BLOCK);
	}
	return 0;
}

static uint64_t jbase(const struct crp_meta *m, int slot)
{
	return m->sb.journal_start + (uint64_t)slot * m->sb.journal_blocks;
}

static uint64_t jring(const struct crp_meta *m)
{
	return m->sb.journal_blocks - 2;
}

static int blk_read(struct crp_meta *m, uint64_t blkno, void *buf, uint32_t n)
{
	if (blkno + n > m->sb.total_blocks)
		return -CRP_ECORRUPT;
	return crp_array_read(m->a, blkno * CRP_BLOCK, buf, (size_t)n * CRP_BLOCK);
}

static int blk_write(struct crp_meta *m, uint64_t blkno, const void *buf, uint32_t n)
{
	if (blkno + n > m->sb.total_blocks)
		return -CRP_ECORRUPT;
	return crp_array_write(m->a, blkno * CRP_BLOCK, buf, (size_t)n * CRP_BLOCK);
}

struct hdr_ctx {
	uint32_t magic;
	uint64_t blkno, fsid;
	bool (*check)(const void *blk, void *ctx); /* the caller's structure check */
	void *ctx;
};

static bool hdr_ok(const void *blk, void *ctx)
{
	struct hdr_ctx *c = ctx;
	struct crp_bhdr h;

	return crp_bhdr_in(blk, c->magic, c->blkno, c->fsid, &h, NULL, 0) == 0 &&
	       (!c->check || c->check(blk, c->ctx));
}

/* What crp_bhdr_in's sentence says went wrong, for the repair messages. */
static const char *why_short(const char *why)
{
	const char *w = strstr(why, ": ");

	if (strstr(why, "never written"))
		return "all zeros";
	if (strstr(why, "bad magic"))
		return "a bad magic number";
	if (strstr(why, "misdirected"))
		return "says it belongs elsewhere (misdirected write)";
	if (strstr(why, "another filesystem"))
		return "belongs to another filesystem (stale)";
	return w ? w + 2 : why;
}

static int cache_insert(struct crp_meta *m, struct crp_mblk *b)
{
	g_hash_table_insert(m->cache, &b->blkno, b);
	return 0;
}

int crp_meta_bread_check(struct crp_meta *m, uint64_t blkno, uint32_t magic,
			 bool (*check)(const void *blk, void *ctx), void *ctx,
			 struct crp_mblk **out)
{
	struct crp_mblk *b = g_hash_table_lookup(m->cache, &blkno);
	struct crp_bhdr h;
	char why[200];
	int r;

	*out = NULL;
	if (b) {
		if (b->magic != magic)
			return -CRP_ECORRUPT;
		crp_meta_undo_touch(m, b);
		*out = b;
		return 0;
	}
	if (blkno >= m->sb.total_blocks || blkno < 2)
		return -CRP_ECORRUPT;
	b = mblk_alloc(blkno, magic);
	if (!b)
		return -ENOMEM;
	r = crp_meta_lazy_get(m, blkno, b->buf) ? 0 : blk_read(m, blkno, b->buf, 1);
	if (r < 0)
		goto out;
	r = crp_bhdr_in(b->buf, magic, blkno, m->fsid, &h, why, sizeof(why));
	if (r == 0 && check && !check(b->buf, ctx)) {
		snprintf(why, sizeof(why), "malformed contents");
		r = -CRP_ECORRUPT;
	}
	if (r == -CRP_ECHECKSUM || r == -CRP_ECORRUPT) {
		/* Whatever failed, an all-zero block included: parity first. */
		struct hdr_ctx c = { magic, blkno, m->fsid, check, ctx };

		if (crp_meta_rebuild_as(m, blkno, b->buf, hdr_ok, &c, magic, why_short(why),
					false) == 0)
			r = 0;
	}
	if (r < 0)
		goto out;
	cache_insert(m, b);
	*out = b;
	b = NULL;
out:
	crp_meta_mblk_free(b);
	return r;
}

int crp_meta_bread(struct crp_meta *m, uint64_t blkno, uint32_t magic, struct crp_mblk **out)
{
	return crp_meta_bread_check(m, blkno, magic, NULL, NULL, out);
}

struct crp_mblk *crp_meta_bnew(struct crp_meta *m, uint64_t blkno, uint32_t magic,
			       uint64_t owner)
{
	struct crp_mblk *b = g_hash_table_lookup(m->cache, &blkno);
	struct crp_bhdr h = { .magic = magic, .blkno = blkno, .fsid = m->fsid, .owner = owner };

	if (!b) {
		b = mblk_alloc(blkno, magic);
		if (!b)
			return NULL;
		cache_insert(m, b);
	} else {
		crp_meta_undo_touch(m, b);
	}
	b->magic = magic;
	memset(b->buf, 0, CRP_BLOCK);
	crp_bhdr_out(&h, b->buf);
	crp_meta_dirty(m, b);
	return b;
}

void crp_meta_dirty(struct crp_meta *m, struct crp_mblk *b)
{
	m->nmods++;
	if (!b->dirty) {
		b->dirty = true;
		b->dirty_op = m->undo_op;
		g_ptr_array_add(m->dirty, b);
	} else if (m->undo_valid && b->dirty_op != m->undo_op && b->saved_op != m->undo_op) {
		/* Changed without passing a cache lookup: its undo copy is
		 * missing, so a failure forgets the whole batch instead. */
		if (!m->undo_misses++)
			crp_warn("host %s: metadata block %llu changed without its undo copy",
				 m->host, (unsigned long long)b->blkno);
		m->undo_lost = true;
	}
}

/*
 * The undo of one operation in a batch.  The blocks of the batch that the
 * operation may change are saved as it finds them: the first time, in this
 * operation, that a cache lookup hands out a dirty block (bread, bnew,
 * crp_meta_forget_block: crp_meta_undo_touch), so the copy costs what the
 * operation touches, not the size of the batch.  A block it makes dirty
 * itself needs no copy (dirty_op): the restore makes it clean again and
 * the caller drops every clean block.  crp_meta_dirty catches a batch
 * block changed without a lookup (undo_misses): that undo is not trusted,
 * and a failure then forgets the whole batch.
 *
 * Data cannot be put back that way: a block the batch allocated is
 * written in place (or held in memory, dheld.c), so after a failed write
 * it holds what that write put there while the saved checksum table says
 * what the batch wrote before.  The undo therefore also keeps, per
 * operation:
 *   - each data block it wrote and the checksum of what it wrote
 *     (undo_wr): after the restore, a block that is still allocated (the
 *     batch's, not one the operation allocated) gets that checksum, so it
 *     reads back as what the failed write left in it, never as EIO;
 *   - each block of the batch it freed (undo_freed), with what was held
 *     for it: such a block is not reusable until the commit (it goes to
 *     tx_freed), so the restore can give it back to the file unchanged.
 */
#define UNDO_WR_MAX 65536u

struct crp_undo_wr {
	uint64_t blk, csum;
};

struct crp_undo_freed {
	uint64_t blk;
	void *held; /* its held copy, or NULL */
};

static void undo_data_clear(struct crp_meta *m)
{
	if (m->undo_freed) {
		for (guint i = 0; i < m->undo_freed->len; i++)
			free(g_array_index(m->undo_freed, struct crp_undo_freed, i).held);
		g_array_set_size(m->undo_freed, 0);
	}
	if (m->undo_wr)
		g_array_set_size(m->undo_wr, 0);
}

void crp_meta_undo_forget(struct crp_meta *m)
{
	m->undo_valid = false;
	m->undo_lost = false;
	m->nundo = 0;
	undo_data_clear(m);
}

void crp_meta_undo_note_write(struct crp_meta *m, uint64_t blk, uint64_t csum)
{
	struct crp_undo_wr w = { blk, csum };

	if (!m->undo_valid)
		return;
	if (!m->undo_wr)
		m->undo_wr = g_array_new(FALSE, FALSE, sizeof(w));
	if (m->undo_wr->len >= UNDO_WR_MAX) {
		m->undo_lost = true;
		return;
	}
	g_array_append_val(m->undo_wr, w);
}

int crp_meta_undo_note_free(struct crp_meta *m, uint64_t blk)
{
	struct crp_undo_freed f = { blk, NULL };

	if (!m->undo_valid)
		return 0;
	if (!m->undo_freed)
		m->undo_freed = g_array_new(FALSE, FALSE, sizeof(f));
	f.held = crp_meta_dheld_steal(m, blk);
	g_array_append_val(m->undo_freed, f);
	g_hash_table_add(m->tx_freed, GSIZE_TO_POINTER(blk));
	return 1;
}

void crp_meta_undo_save(struct crp_meta *m)
{
	crp_meta_undo_forget(m);
	m->undo_op++;
	m->undo_valid = true;
}

void crp_meta_undo_touch(struct crp_meta *m, struct crp_mblk *b)
{
	struct crp_mblk *u;

	if (!m->undo_valid || !b->dirty || b->dirty_op == m->undo_op || b->saved_op == m->undo_op)
		return;
	if (m->nundo == m->undo_cap) {
		uint32_t cap = m->undo_cap ? m->undo_cap * 2 : 16;
		struct crp_mblk *nu = realloc(m->undo, cap * sizeof(*nu));

		if (!nu) {
			m->undo_lost = true;
			return;
		}
		m->undo = nu;
		for (uint32_t i = m->undo_cap; i < cap; i++) {
			nu[i].buf = crp_alloc_buf(CRP_BLOCK);
			if (!nu[i].buf) {
				m->undo_lost = true;
				return;
			}
			m->undo_cap = i + 1;
		}
	}
	b->saved_op = m->undo_op;
	u = &m->undo[m->nundo++];
	u->blkno = b->blkno;
	u->magic = b->magic;
	u->badrec = b->badrec;
	memcpy(u->buf, b->buf, CRP_BLOCK);
}

/* The data side of a restore, once the metadata blocks are back. */
static bool undo_data_restore(struct crp_meta *m)
{
	for (guint i = 0; m->undo_freed && i < m->undo_freed->len; i++) {
		struct crp_undo_freed *f = &g_array_index(m->undo_freed, struct crp_undo_freed, i);

		g_hash_table_remove(m->tx_freed, GSIZE_TO_POINTER(f->blk));
		g_hash_table_add(m->tx_new, GSIZE_TO_POINTER(f->blk));
		if (f->held && crp_meta_dheld_put(m, f->blk, f->held) < 0) {
			f->held = NULL;
			return false;
		}
		f->held = NULL;
	}
	for (guint i = 0; m->undo_wr && i < m->undo_wr->len; i++) {
		const struct crp_undo_wr *w = &g_array_index(m->undo_wr, struct crp_undo_wr, i);
		bool used;

		if (crp_meta_block_allocated(m, w->blk, &used) < 0)
			return false;
		if (!used)
			crp_meta_dheld_forget(m, w->blk, 1); /* the operation's own */
		else if (crp_meta_csum_set(m, w->blk, w->csum) < 0)
			return false;
	}
	return true;
}

bool crp_meta_undo_restore(struct crp_meta *m)
{
	guint keep = 0;
	bool ok;

	if (!m->undo_valid || m->undo_lost)
		return false;
	/* What the operation made dirty goes clean (and out with the clean
	 * blocks); what the batch had stays. */
	for (guint i = 0; i < m->dirty->len; i++) {
		struct crp_mblk *b = m->dirty->pdata[i];

		if (b->dirty_op == m->undo_op)
			b->dirty = false;
		else
			m->dirty->pdata[keep++] = b;
	}
	g_ptr_array_set_size(m->dirty, keep);
	for (unsigned i = 0; i < m->nundo; i++) {
		const struct crp_mblk *u = &m->undo[i];
		struct crp_mblk *b = g_hash_table_lookup(m->cache, &u->blkno);

		if (!b) {
			/* The operation freed it (crp_meta_forget_block). */
			b = mblk_alloc(u->blkno, u->magic);
			if (!b)
				return false; /* the caller forgets the batch */
			cache_insert(m, b);
		}
		b->magic = u->magic;
		b->badrec = u->badrec;
		memcpy(b->buf, u->buf, CRP_BLOCK);
		if (!b->dirty) {
			b->dirty = true;
			g_ptr_array_add(m->dirty, b);
		}
		b->dirty_op = 0;
	}
	/* tx_new keeps what the operation allocated: such a block is free
	 * again in the bitmap and stays in tx_new, which only a file's
	 * extent can ask about, and only after allocating it again.  What it
	 * freed of the batch's own blocks is the batch's again. */
	ok = undo_data_restore(m);
	crp_meta_undo_forget(m);
	m->free_epoch++;
	return ok;
}

void crp_meta_undo_free(struct crp_meta *m)
{
	for (unsigned i = 0; i < m->undo_cap; i++)
		free(m->undo[i].buf);
	free(m->undo);
	m->undo = NULL;
	m->undo_cap = m->nundo = 0;
	crp_meta_undo_forget(m);
	if (m->undo_wr)
		g_array_free(m->undo_wr, TRUE);
	if (m->undo_freed)
		g_array_free(m->undo_freed, TRUE);
	m->undo_wr = m->undo_freed = NULL;
}

/* Forget a cached block (freed metadata). */
void crp_meta_forget_block(struct crp_meta *m, uint64_t blkno)
{
	struct crp_mblk *b = g_hash_table_lookup(m->cache, &blkno);

	if (!b)
		return;
	crp_meta_undo_touch(m, b);
	if (b->dirty)
		g_ptr_array_remove(m->dirty, b);
	g_hash_table_remove(m->cache, &blkno);
}

static int cmp_blkno(const void *a, const void *b)
{
	const struct crp_mblk *x = *(struct crp_mblk *const *)a;
	const struct crp_mblk *y = *(struct crp_mblk *const *)b;

	return x->blkno < y->blkno ? -1 : x->blkno > y->blkno;
}

static int write_jhdr(struct crp_meta *m, int slot, uint64_t start, uint64_t seq)
{
	/* A transaction that ends exactly at the end of the ring leaves
	 * j_pos == jring: the next one starts the ring over (after its own
	 * sync and header), and replay looks for @seq at 0, where only older
	 * transactions lie.  The header must say 0: readers refuse a start
	 * past the ring. */
	struct crp_jhdr j = { .start = start >= jring(m) ? 0 : start, .seq = seq,
			      .slot = (uint32_t)slot };
	uint8_t *buf = crp_alloc_buf(CRP_BLOCK);
	int r;

	if (!buf)
		return -ENOMEM;
	crp_jhdr_out(&j, jbase(m, slot), m->fsid, buf);
	r = blk_write(m, jbase(m, slot), buf, 1);
	free(buf);
	return r;
}

/*
 * Write the committed blocks @blks (in block order) in place, and the
 * blocks of our open table that wait for the unlock beside them, in one
 * array write.  Runs of adjacent blocks are copied side by side and go as
 * one range, so that the array updates each stripe they share once (one
 * set of locks, one parity read-modify-write) rather than once per block.
 */
static int checkpoint(struct crp_meta *m, struct crp_mblk **blks, unsigned k)
{
	struct crp_array_iov *iov = calloc(k + CRP_OTABLE_BLOCKS, sizeof(*iov));
	uint8_t *ot = m->ot_pending ? crp_alloc_buf((size_t)CRP_OTABLE_BLOCKS * CRP_BLOCK) : NULL;
	uint8_t *runs = k ? crp_alloc_buf((size_t)k * CRP_BLOCK) : NULL;
	uint8_t mask = 0;
	unsigned n = 0;
	int r;

	if (!iov || (m->ot_pending && !ot) || (k && !runs)) {
		free(iov);
		free(ot);
		free(runs);
		return -ENOMEM;
	}
	for (unsigned i = 0; i < k; i++) {
		memcpy(runs + (size_t)i * CRP_BLOCK, blks[i]->buf, CRP_BLOCK);
		if (n && blks[i]->blkno == blks[i - 1]->blkno + 1) {
			iov[n - 1].len += CRP_BLOCK;
			continue;
		}
		iov[n++] = (struct crp_array_iov){ blks[i]->blkno * CRP_BLOCK,
						   runs + (size_t)i * CRP_BLOCK, CRP_BLOCK };
	}
	if (ot)
		n += crp_meta_open_pending_iov(m, iov + n, ot, &mask);
	r = crp_array_writev(m->a, iov, (int)n);
	if (mask)
		crp_meta_open_pending_written(m, mask, r);
	if (r == 0)
		m->stats.inplace_blocks += k;
	free(iov);
	free(ot);
	free(runs);
	return r;
}

static bool in_tx(struct crp_mblk **blks, unsigned k, uint64_t blkno)
{
	unsigned lo = 0, hi = k;

	while (lo < hi) {
		unsigned mid = lo + (hi - lo) / 2;

		if (blks[mid]->blkno == blkno)
			return true;
		if (blks[mid]->blkno < blkno)
			lo = mid + 1;
		else
			hi = mid;
	}
	return false;
}

/*
 * End the deferred checkpoint's chain: its blocks in place, with the @k
 * blocks of @blks (in block order), a transaction of the chain already in
 * the journal whose images are newer; then the shared block without
 * PENDING, with a record for each of them.
 */
static int lazy_finish(struct crp_meta *m, struct crp_mblk **blks, unsigned k)
{
	struct crp_mblk **v = malloc((g_hash_table_size(m->lazy) + k + 1) * sizeof(*v));
	GHashTableIter it;
	gpointer key, val;
	unsigned n = 0;
	int r;

	if (!v)
		return -ENOMEM;
	g_hash_table_iter_init(&it, m->lazy);
	while (g_hash_table_iter_next(&it, &key, &val))
		if (!in_tx(blks, k, ((struct crp_mblk *)val)->blkno))
			v[n++] = val;
	for (unsigned i = 0; i < k; i++)
		v[n++] = blks[i];
	qsort(v, n, sizeof(*v), cmp_blkno);
	for (unsigned i = 0; i < n; i++)
		crp_meta_shared_note(m, v[i]->blkno);
	r = checkpoint(m, v, n);
	if (!r)
		r = crp_meta_shared_done(m);
	if (!r)
		crp_meta_lazy_drop(m);
	free(v);
	return r;
}

/* May the in-place writes of the transaction of @k blocks just journaled
 * wait (the file comment)?  A batch past CRP_HOLD_MAX_NS still defers:
 * its end (crp_meta_tx_end), right after, writes the chain in place and
 * lets the lock go. */
static bool may_defer(struct crp_meta *m, unsigned k)
{
	return m->locked && m->sh && m->commit_ns && !m->fenced && !m->tx_freed_meta &&
	       crp_array_peers(m->a) == 0 && !crp_array_fenced(m->a) &&
	       g_hash_table_size(m->lazy) + k <= LAZY_MAX_BLOCKS;
}

static void tx_reset(struct crp_meta *m)
{
	if (g_hash_table_size(m->tx_freed))
		m->free_epoch++; /* reusable from now on */
	g_hash_table_remove_all(m->tx_freed);
	g_hash_table_remove_all(m->tx_new);
	m->tx_freed_meta = false;
	crp_meta_undo_forget(m); /* what it saved is on the disks now */
}

/* Everything before is in place: move our journal header to the current
 * position, synced on both sides. */
static int trim_journal(struct crp_meta *m)
{
	int r = crp_array_sync(m->a);

	if (!r)
		r = write_jhdr(m, m->slot, m->j_pos, m->j_seq);
	if (!r)
		r = crp_array_sync(m->a);
	return r;
}

/* @synced, when given: true if everything written before this commit,
 * data included, is durable when it returns (a journal write and its
 * sync).  @defer: an fsync's, whose in-place writes may wait. */
static int commit(struct crp_meta *m, bool *synced, bool defer)
{
	unsigned k = m->dirty->len;
	struct crp_mblk **blks = (struct crp_mblk **)m->dirty->pdata;
	uint64_t base, at, *targets = NULL;
	struct crp_bhdr h;
	uint8_t *buf = NULL;
	int r;

	/* Ordered data: what was held in memory first. */
	r = crp_meta_dheld_flush(m);
	if (r)
		return r;
	m->tx_journaled = false;
	if (!k) {
		/* Nothing to journal: the chain, unless an fsync's, and our
		 * open table, if it changed, alone (its failure is the
		 * commit's, as it was the open's). */
		if (crp_meta_lazy_open(m) && (!defer || m->tx_freed_meta))
			r = lazy_finish(m, NULL, 0);
		else if (m->ot_pending && !m->ro && m->slot >= 0)
			r = checkpoint(m, NULL, 0);
		if (!r && m->tx_freed_meta && !m->ro && m->slot >= 0)
			r = trim_journal(m);
		tx_reset(m);
		return r;
	}
	if (m->ro || m->slot < 0)
		return -EROFS;
	if (k > CRP_JOURNAL_MAX_TX || k + 2 > jring(m))
		return -E2BIG;
	qsort(blks, k, sizeof(*blks), cmp_blkno);
	for (unsigned i = 0; i < k; i++)
		if (blks[i]->magic)
			crp_block_seal(blks[i]->buf);
	base = jbase(m, m->slot);
	if (m->j_pos + k + 2 > jring(m)) {
		/* Everything before is written in place (the chain now): make
		 * it durable and start the ring over. */
		if (crp_meta_lazy_open(m)) {
			r = lazy_finish(m, NULL, 0);
			if (r)
				goto out;
		}
		r = crp_array_sync(m->a);
		if (!r)
			r = write_jhdr(m, m->slot, 0, m->j_seq);
		if (!r)
			r = crp_array_sync(m->a);
		if (r)
			goto out;
		m->j_pos = 0;
	}
	at = base + 2 + m->j_pos;
	buf = crp_alloc_buf((size_t)(k + 2) * CRP_BLOCK);
	targets = malloc(k * sizeof(*targets));
	if (!buf || !targets) {
		r = -ENOMEM;
		goto out;
	}
	for (unsigned i = 0; i < k; i++) {
		targets[i] = blks[i]->blkno;
		memcpy(buf + (size_t)(i + 1) * CRP_BLOCK, blks[i]->buf, CRP_BLOCK);
	}
	crp_u64s_out(targets, k, buf + CRP_HDR_SIZE);
	h = (struct crp_bhdr){ .magic = CRP_MAGIC_JDESC, .blkno = at, .fsid = m->fsid,
			       .owner = (uint64_t)m->slot, .next = crp_meta_next_gen(m),
			       .count = k, .aux64 = m->j_seq };
	crp_bhdr_out(&h, buf);
	{
		uint8_t *c = buf + (size_t)(k + 1) * CRP_BLOCK;

		crp_put_le64(c + CRP_HDR_SIZE, crp_xxh64(buf, (size_t)(k + 1) * CRP_BLOCK, 0));
		crp_put_le64(c + CRP_HDR_SIZE + 8, crp_wall_ns());
		h.magic = CRP_MAGIC_JCOMMIT;
		h.blkno = at + k + 1;
		crp_bhdr_out(&h, c);
	}
	/* Ordered data: the file data this transaction maps is on the media
	 * before its commit block can be.  One sync after both would let a
	 * member's volatile cache keep the commit and lose the data, and the
	 * replayed extents would point at blocks that fail their checksums. */
	if (m->data_unsynced) {
		r = crp_array_sync(m->a);
		if (r)
			goto out;
		m->stats.ordered_syncs++;
	}
	r = blk_write(m, at, buf, k + 2);
	if (!r)
		r = crp_array_sync(m->a);
	if (r)
		goto out;
	m->data_unsynced = false;
	if (synced)
		*synced = true;
	m->tx_journaled = true;
	m->j_pos += k + 2;
	m->j_seq++;
	if (m->debug_no_checkpoint)
		goto done;
	if (defer && may_defer(m, k)) {
		if (!crp_meta_lazy_open(m)) {
			/* The chain starts: other hosts, and whoever takes
			 * the lock next, learn where (PENDING, and HELD: the
			 * batch goes on). */
			r = crp_meta_shared_pending(m, blks, k, m->j_pos - k - 2, m->j_seq - 1, true);
			if (r)
				goto out;
			m->lazy_since_ns = crp_now_ns();
			m->lazy_pos = m->j_pos - k - 2;
			m->lazy_seq = m->j_seq - 1;
		}
		r = lazy_keep(m, blks, k);
		if (r)
			r = lazy_finish(m, blks, k); /* no room to wait: now */
		else
			m->stats.deferred++;
		/* Everything answered is durable: the batch's window starts
		 * over with the next operation. */
		m->held_since_ns = 0;
	} else if (crp_meta_lazy_open(m)) {
		r = lazy_finish(m, blks, k);
	} else {
		/* Other hosts: the new generation, and PENDING until in place. */
		r = crp_meta_shared_pending(m, blks, k, m->j_pos - k - 2, m->j_seq - 1, false);
		if (!r)
			r = checkpoint(m, blks, k);
		if (!r)
			r = crp_meta_shared_done(m);
	}
	if (!r && m->tx_freed_meta)
		r = trim_journal(m);
	if (r)
		goto out;
done:
	for (unsigned i = 0; i < k; i++)
		blks[i]->dirty = false;
	g_ptr_array_set_size(m->dirty, 0);
	tx_reset(m);
	m->stats.commits++;
	m->stats.committed_blocks += k;
out:
	free(buf);
	free(targets);
	return r;
}

int crp_meta_commit(struct crp_meta *m)
{
	return commit(m, NULL, false);
}

/*
 * What fsync and syncfs ask for.  A commit that journals syncs the members
 * after its journal blocks, and so after every write before them, data
 * included.  What it then writes in place, now or later (the deferred
 * checkpoint), is in that journal: after a crash it is replayed from there
 * (the ring is synced before it wraps), so it needs no second sync.  Only
 * a commit with nothing to journal leaves the members to sync here.
 */
int crp_meta_commit_durable(struct crp_meta *m)
{
	bool synced = false;
	int r = commit(m, &synced, true);

	if (!r && !synced)
		r = crp_array_sync(m->a);
	return r;
}

int crp_meta_maybe_commit(struct crp_meta *m)
{
	if (m->dirty->len >= TX_COMMIT_AT)
		return crp_meta_commit(m);
	return 0;
}

static gboolean drop_clean(gpointer key, gpointer value, gpointer data)
{
	struct crp_mblk *b = value;

	(void)key;
	(void)data;
	return !b->dirty;
}

void crp_meta_trim(struct crp_meta *m)
{
	if (g_hash_table_size(m->cache) > CACHE_MAX_BLOCKS)
		g_hash_table_foreach_remove(m->cache, drop_clean, NULL);
}

/* Checks of the blocks of one journal transaction, one by one. */
struct jblk_ctx {
	struct crp_meta *m;
	uint64_t at;		/* ring block */
	uint64_t seq;
	uint32_t count;		/* commit: blocks of the transaction */
	uint64_t limit;		/* descriptor: ring blocks left from its place */
	uint64_t target;	/* image: where it goes */
	const uint8_t *cur;	/* differs_ok: what was read */
};

static bool jdesc_ok(const void *blk, void *ctx)
{
	struct jblk_ctx *c = ctx;
	struct crp_bhdr h;

	return crp_bhdr_in(blk, CRP_MAGIC_JDESC, c->at, c->m->fsid, &h, NULL, 0) == 0 &&
	       h.aux64 == c->seq && h.count && h.count <= CRP_JOURNAL_MAX_TX &&
	       h.count + 2 <= c->limit;
}

static bool jcommit_ok(const void *blk, void *ctx)
{
	struct jblk_ctx *c = ctx;
	struct crp_bhdr h;

	return crp_bhdr_in(blk, CRP_MAGIC_JCOMMIT, c->at, c->m->fsid, &h, NULL, 0) == 0 &&
	       h.aux64 == c->seq && h.count == c->count;
}

/* An image: an inode-table block (every record valid or all zero), or a
 * typed metadata block that says it belongs at its target. */
static bool jimage_ok(const void *blk, void *ctx)
{
	struct jblk_ctx *c = ctx;
	const struct crp_sb *sb = &c->m->sb;
	struct crp_bhdr h;

	if (c->target >= sb->itable_start && c->target < sb->ag_start) {
		uint64_t first = (c->target - sb->itable_start) * CRP_INODES_PER_BLOCK;

		for (unsigned i = 0; i < CRP_INODES_PER_BLOCK; i++) {
			struct crp_inode in;

			if (crp_inode_in((const uint8_t *)blk + i * CRP_INODE_SIZE, first + i, &in,
					 NULL, 0) < 0)
				return false;
		}
		return true;
	}
	return crp_bhdr_in(blk, crp_get_le32(blk), c->target, c->m->fsid, &h, NULL, 0) == 0;
}

static bool jblk_ok(const void *blk, void *ctx)
{
	struct jblk_ctx *c = ctx;

	return c->target ? jimage_ok(blk, ctx) : jcommit_ok(blk, ctx);
}

static bool differs_ok(const void *blk, void *ctx)
{
	struct jblk_ctx *c = ctx;

	return memcmp(blk, c->cur, CRP_BLOCK) != 0 && jblk_ok(blk, ctx);
}

static bool same_as(const void *blk, void *ctx)
{
	return memcmp(blk, ((struct jblk_ctx *)ctx)->cur, CRP_BLOCK) == 0;
}

static bool tx_sum_ok(const uint8_t *buf, uint32_t n)
{
	return crp_get_le64(buf + (size_t)(n + 1) * CRP_BLOCK + CRP_HDR_SIZE) ==
	       crp_xxh64(buf, (size_t)(n + 1) * CRP_BLOCK, 0);
}

/*
 * The images and commit of a transaction at ring block @at whose
 * descriptor is good but whose checksum fails: rebuild from parity the
 * blocks that fail their own checks; if the checksum still fails, try
 * every block whose reconstruction differs from what was read (a damaged
 * block can look valid: an all-zero inode-table image).  Blocks taken from
 * parity are repaired (and logged) only once the checksum holds.  Returns
 * true if it does.
 */
static bool repair_tx(struct crp_meta *m, uint64_t at, uint64_t seq, uint8_t *buf,
		      const uint64_t *targets, uint32_t n)
{
	uint8_t *orig = crp_alloc_buf((size_t)(n + 1) * CRP_BLOCK), *tmp = crp_alloc_buf(CRP_BLOCK);
	bool *took = calloc(n + 2, sizeof(*took)), good = false;

	if (!orig || !tmp || !took)
		goto out;
	memcpy(orig, buf + CRP_BLOCK, (size_t)(n + 1) * CRP_BLOCK);
	for (int pass = 0; pass < 2 && !good; pass++) {
		for (uint32_t i = 1; i <= n + 1; i++) {
			struct jblk_ctx c = { .m = m, .at = at + i, .seq = seq, .count = n,
					      .target = i <= n ? targets[i - 1] : 0 };
			uint8_t *blk = buf + (size_t)i * CRP_BLOCK;
			int bad, bad2;

			if (took[i] || (pass == 0 && jblk_ok(blk, &c)))
				continue;
			c.cur = blk;
			if (crp_meta_reconstruct(m, at + i, tmp, pass ? differs_ok : jblk_ok, &c, &bad,
						 &bad2) == 0) {
				memcpy(blk, tmp, CRP_BLOCK);
				took[i] = true;
			}
		}
		good = tx_sum_ok(buf, n);
	}
	if (!good) {
		memcpy(buf + CRP_BLOCK, orig, (size_t)(n + 1) * CRP_BLOCK);
		goto out;
	}
	for (uint32_t i = 1; i <= n + 1; i++) {
		struct jblk_ctx c = { .cur = buf + (size_t)i * CRP_BLOCK };

		if (took[i])
			(void)crp_meta_rebuild_as(m, at + i, orig + (size_t)(i - 1) * CRP_BLOCK,
						  same_as, &c, 0, NULL, false);
	}
out:
	free(orig);
	free(tmp);
	free(took);
	return good;
}

/*
 * Read the transaction of @slot's journal at ring index @p with sequence
 * @seq into @buf (descriptor, images, commit) and its targets.  Returns 0
 * with *@k blocks and *@gen (the generation it creates, 0 if written
 * before generations existed), 1 if there is no committed transaction
 * there, or an error.  A block that fails its checks is rebuilt from
 * parity first: the end of the journal is where nothing parity can rebuild
 * carries the next sequence number.
 */
static int read_tx(struct crp_meta *m, int slot, uint64_t p, uint64_t seq, uint8_t *buf,
		   uint64_t *targets, uint32_t *k, uint64_t *gen)
{
	uint64_t base = jbase(m, slot), R = jring(m), at = base + 2 + p;
	struct jblk_ctx c = { .m = m, .at = at, .seq = seq, .limit = R - p };
	struct crp_bhdr h;
	uint32_t n;

	if (p + 2 > R || blk_read(m, at, buf, 1) < 0)
		return 1;
	if (!jdesc_ok(buf, &c)) {
		/* An older transaction (a valid header, another sequence) is
		 * the end; anything else may be a damaged descriptor. */
		if (crp_bhdr_in(buf, CRP_MAGIC_JDESC, at, m->fsid, &h, NULL, 0) == 0)
			return 1;
		if (crp_meta_rebuild_as(m, at, buf, jdesc_ok, &c, CRP_MAGIC_JDESC, NULL, true) < 0)
			return 1;
	}
	crp_bhdr_in(buf, CRP_MAGIC_JDESC, at, m->fsid, &h, NULL, 0);
	n = h.count;
	*gen = h.next;
	crp_u64s_in(buf + CRP_HDR_SIZE, n, targets);
	for (uint32_t i = 0; i < n; i++)
		if (targets[i] < m->sb.ibitmap_start || targets[i] >= m->sb.total_blocks) {
			/* Only an orphan list lies outside the fs area. */
			if (targets[i] < m->sb.journal_start ||
			    (targets[i] - m->sb.journal_start) % m->sb.journal_blocks != 1)
				return -CRP_ECORRUPT;
		}
	if (blk_read(m, at + 1, buf + CRP_BLOCK, n + 1) < 0)
		return 1;
	c.at = at + n + 1;
	c.count = n;
	if (!jcommit_ok(buf + (size_t)(n + 1) * CRP_BLOCK, &c) || !tx_sum_ok(buf, n)) {
		/* A torn tail, or damage that parity may mend. */
		if (!repair_tx(m, at, seq, buf, targets, n))
			return 1;
	}
	*k = n;
	return 0;
}

static int apply_tx(struct crp_meta *m, const uint8_t *buf, const uint64_t *targets, uint32_t k)
{
	for (uint32_t i = 0; i < k; i++) {
		int r = blk_write(m, targets[i], buf + (size_t)(i + 1) * CRP_BLOCK, 1);

		if (r < 0)
			return r;
	}
	return 0;
}

struct jhdr_ctx {
	struct crp_meta *m;
	uint64_t blkno;
	int slot;
};

static bool jhdr_ok(const void *blk, void *ctx)
{
	struct jhdr_ctx *c = ctx;
	struct crp_jhdr jh;

	return crp_jhdr_in(blk, c->blkno, c->m->fsid, &jh, NULL, 0) == 0 &&
	       jh.start < jring(c->m) && jh.slot == (uint32_t)c->slot;
}

/*
 * Walk slot @slot's journal from its header.  Transactions that create a
 * generation at or below @min_gen are in place already (other hosts may
 * have changed their blocks since): they are walked over, neither counted
 * nor applied.  With @apply, write every other committed transaction in
 * place and reset the header past them.  Returns the number of committed
 * transactions found that need replay.
 */
static int journal_scan(struct crp_meta *m, int slot, bool apply, uint64_t min_gen,
			uint64_t *pos_out, uint64_t *seq_out)
{
	uint64_t base = jbase(m, slot), p, seq;
	uint8_t *hb = crp_alloc_buf(CRP_BLOCK), *buf = NULL;
	struct crp_jhdr jh;
	uint64_t *targets = NULL;
	int r, n = 0;

	if (!hb)
		return -ENOMEM;
	buf = crp_alloc_buf((size_t)(CRP_JOURNAL_MAX_TX + 2) * CRP_BLOCK);
	targets = malloc(CRP_JOURNAL_MAX_TX * sizeof(*targets));
	if (!buf || !targets) {
		r = -ENOMEM;
		goto out;
	}
	r = blk_read(m, base, hb, 1);
	if (r < 0)
		goto out;
	{
		struct jhdr_ctx c = { m, base, slot };

		if (!jhdr_ok(hb, &c) &&
		    crp_meta_rebuild_as(m, base, hb, jhdr_ok, &c, CRP_MAGIC_JHDR, NULL, false) < 0) {
			r = -CRP_ECORRUPT;
			goto out;
		}
	}
	crp_jhdr_in(hb, base, m->fsid, &jh, NULL, 0);
	p = jh.start;
	seq = jh.seq;
	for (;;) {
		uint32_t k;
		uint64_t gen;

		r = read_tx(m, slot, p, seq, buf, targets, &k, &gen);
		if (r < 0)
			goto out;
		if (r > 0)
			break;
		if (gen == 0 || gen > min_gen) {
			if (apply) {
				r = apply_tx(m, buf, targets, k);
				if (r < 0)
					goto out;
			}
			n++;
		}
		p += k + 2;
		seq++;
	}
	if (apply && !m->ro) {
		r = crp_array_sync(m->a);
		if (!r)
			r = write_jhdr(m, slot, 0, seq);
		if (!r)
			r = crp_array_sync(m->a);
		if (r < 0)
			goto out;
		p = 0;
	}
	if (pos_out)
		*pos_out = p;
	if (seq_out)
		*seq_out = seq;
	r = n;
out:
	free(hb);
	free(buf);
	free(targets);
	return r;
}

int crp_meta_journal_redo(struct crp_meta *m, int slot, uint64_t pos, uint64_t seq)
{
	uint8_t *buf = crp_alloc_buf((size_t)(CRP_JOURNAL_MAX_TX + 2) * CRP_BLOCK);
	uint64_t *targets = malloc(CRP_JOURNAL_MAX_TX * sizeof(*targets)), gen, gen0;
	uint32_t k;
	int r, n = 0;

	if (!buf || !targets) {
		r = -ENOMEM;
		goto out;
	}
	if (slot < 0 || slot >= (int)m->sb.max_hosts) {
		r = -CRP_ECORRUPT;
		goto out;
	}
	r = read_tx(m, slot, pos, seq, buf, targets, &k, &gen0);
	while (r == 0) {
		r = apply_tx(m, buf, targets, k);
		if (r < 0)
			break;
		n++;
		if (gen0 == 0)
			break;
		/* The rest of a deferred checkpoint's chain, if any. */
		pos += k + 2;
		seq++;
		r = read_tx(m, slot, pos, seq, buf, targets, &k, &gen);
		if (r == 0 && gen != gen0)
			break;
	}
	if (r >= 0)
		r = n;
out:
	free(buf);
	free(targets);
	return r;
}

/*
 * The caller holds the metadata lock (crp_array_meta_lock directly, or
 * crp_meta_tx_begin), so that no other host changes a block between the
 * generation check and the writes -- except at a mount that recovers slots
 * before any other host can run (one host).  Afterwards every host drops
 * its caches: the shared generation moves with nothing to say what changed.
 */
int crp_meta_replay(struct crp_meta *m, int slot)
{
	uint64_t pos, seq, gen = 0;
	int r;

	if (crp_meta_shared_load(m) == 0)
		gen = crp_meta_replay_gen(m->sh, slot); /* unreadable: replay them all */
	r = journal_scan(m, slot, true, gen, &pos, &seq);
	if (r > 0 && !m->ro) {
		int e = crp_meta_shared_replayed(m);

		if (e < 0)
			r = e;
	}
	if (r < 0)
		return r;
	m->stats.replayed += (uint64_t)r;
	if (slot == m->slot) {
		m->j_pos = pos;
		m->j_seq = seq;
	}
	return r;
}

/*
 * Does @slot's journal hold committed transactions that are not in place?
 * *@out: some newer than the shared generation (a host died before it
 * published them: a replay is due).  *@chain: only the ones PENDING names
 * for @slot, a deferred checkpoint's chain, which its host, if alive,
 * writes in place itself (a read-only mount beside it reads the state
 * before them), and a replay or the next lock holder does otherwise.
 */
int crp_meta_journal_pending(struct crp_meta *m, int slot, bool *out, bool *chain)
{
	uint64_t gen = 0, rgen = 0;
	int r;

	(void)crp_meta_shared_peek(m, slot, &gen, &rgen); /* unreadable: count them all */
	*out = *chain = false;
	r = journal_scan(m, slot, false, gen, NULL, NULL);
	if (r < 0)
		return r;
	*out = r > 0;
	if (!*out && rgen < gen) {
		r = journal_scan(m, slot, false, rgen, NULL, NULL);
		if (r < 0)
			return r;
		*chain = r > 0;
	}
	return 0;
}

/* Position of @slot's journal after a clean close (ours, at open). */
int crp_meta_journal_position(struct crp_meta *m, int slot, uint64_t *pos, uint64_t *seq)
{
	int r = journal_scan(m, slot, false, UINT64_MAX, pos, seq);

	return r < 0 ? r : 0;
}

/* Write the journal header of our slot at the current position. */
int crp_meta_journal_settle(struct crp_meta *m)
{
	if (m->slot < 0 || m->ro)
		return 0;
	return write_jhdr(m, m->slot, m->j_pos, m->j_seq);
}

int crp_meta_journal_reset(struct crp_meta *m, int slot)
{
	int r;

	if (m->ro)
		return -EROFS;
	if (slot < 0 || slot >= (int)m->sb.max_hosts || slot == m->slot)
		return -EINVAL;
	/* Far beyond any sequence a ring of this size has reached, so that
	 * nothing left in the ring is ever taken for the next transaction. */
	r = write_jhdr(m, slot, 0, (1ull << 62) | (crp_random() & ((1ull << 48) - 1)));
	if (!r)
		r = crp_array_sync(m->a);
	return r;
}
