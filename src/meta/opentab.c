/*
 * Open tables: which inodes each host holds open.
 *
 * POSIX keeps a file usable through its open descriptors after its last
 * name is gone, until the last close.  On one host the open count says
 * when that is; across hosts nobody but the disks can say it.  So every
 * host keeps, in the RAID area, a table of the regular files it has open:
 *
 *   otable_start + k * max_hosts + h    block k of host slot h's table
 *
 * (CRP_OTABLE_BLOCKS blocks per host, block-major, so that block k of every
 * host is read in one array read).  Inode @ino lives in block ino % blocks;
 * a block lists up to CRP_OTABLE_ENTRIES inode numbers, and when more of
 * them are open its header says OVERFLOW: any inode of that block may be
 * held.  The tables are plain blocks written in place (a stripe transaction
 * each), not journalled: a host that dies loses its opens with it, and its
 * recoverer empties its table.
 *
 * The rule that keeps an open file alive, with every step under the
 * metadata lock (so that no open is entered between a check and a free):
 *
 *   open      the first handle of this host on @ino enters it in our table
 *             on the disks before the open returns;
 *   close     the last handle removes it;
 *   free      an inode whose link count is 0 is freed only by a host that
 *             holds no handle on it and finds it in no other host's table,
 *             read from the disks; otherwise it goes on an orphan list, and
 *             the host whose close (or whose recovery of a dead holder)
 *             finds it unheld frees it then.
 *
 * An unreadable table block counts as holding everything it could hold:
 * a free is put off, never done early.
 *
 * Since no host changes its table without the metadata lock, block k of
 * the other hosts' tables, once read under the lock, stays what the disks
 * hold until this host lets the lock go: a free checks it again from
 * memory while the same hold lasts (lock_seq), so that removing many
 * files in one group commit reads each block once.  The only writer of
 * another slot's table under our own hold is our recovery of that slot
 * (crp_meta_open_clear), which forgets what was read.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "crpfs/err.h"
#include "crpfs/log.h"
#include "crpfs/util.h"
#include "meta_i.h"

static unsigned ot_index(uint64_t ino)
{
	return (unsigned)(ino % CRP_OTABLE_BLOCKS);
}

/* RAID block of block @k of slot @slot's table. */
static uint64_t ot_blkno(const struct crp_meta *m, int slot, unsigned k)
{
	return m->sb.otable_start + (uint64_t)k * m->sb.max_hosts + (uint64_t)slot;
}

int crp_meta_opentab_init(struct crp_meta *m)
{
	m->open_refs = g_hash_table_new(g_direct_hash, g_direct_equal);
	for (unsigned k = 0; k < CRP_OTABLE_BLOCKS; k++)
		m->ot_ents[k] = g_array_new(FALSE, FALSE, sizeof(uint64_t));
	return m->open_refs ? 0 : -ENOMEM;
}

static void ot_peers_forget(struct crp_meta *m)
{
	for (unsigned k = 0; k < CRP_OTABLE_BLOCKS; k++) {
		free(m->ot_peers[k]);
		m->ot_peers[k] = NULL;
		m->ot_peers_seq[k] = 0;
	}
}

void crp_meta_opentab_free(struct crp_meta *m)
{
	ot_peers_forget(m);
	if (m->open_refs)
		g_hash_table_destroy(m->open_refs);
	m->open_refs = NULL;
	for (unsigned k = 0; k < CRP_OTABLE_BLOCKS; k++) {
		if (m->ot_ents[k])
			g_array_free(m->ot_ents[k], TRUE);
		m->ot_ents[k] = NULL;
	}
}

/* Encode block @k of slot @slot from @ents (the first ENTRIES of them). */
static void ot_encode(const struct crp_meta *m, int slot, unsigned k, const GArray *ents,
		      uint8_t *buf)
{
	uint32_t n = ents ? CRP_MIN(ents->len, (uint32_t)CRP_OTABLE_ENTRIES) : 0;
	struct crp_bhdr h = { .magic = CRP_MAGIC_OPENTAB, .blkno = ot_blkno(m, slot, k),
			      .fsid = m->fsid, .owner = (uint64_t)slot, .count = n,
			      .aux64 = ents && ents->len > n ? CRP_OTABLE_OVERFLOW : 0 };

	memset(buf, 0, CRP_BLOCK);
	if (n)
		crp_u64s_out((const uint64_t *)(const void *)ents->data, n, buf + CRP_HDR_SIZE);
	crp_bhdr_out(&h, buf);
}

/* Write our block @k as memory has it; a failure is retried at the next
 * write of ours (the block stays marked). */
static int ot_write_now(struct crp_meta *m, unsigned k)
{
	uint8_t *buf;
	int r;

	if (m->ro || m->slot < 0)
		return 0;
	m->ot_pending &= (uint8_t)~(1u << k);
	buf = crp_alloc_buf(CRP_BLOCK);
	if (!buf)
		return -ENOMEM;
	ot_encode(m, m->slot, k, m->ot_ents[k], buf);
	r = crp_array_write(m->a, ot_blkno(m, m->slot, k) * CRP_BLOCK, buf, CRP_BLOCK);
	free(buf);
	if (r < 0)
		m->ot_dirty |= (uint8_t)(1u << k);
	else
		m->ot_dirty &= (uint8_t)~(1u << k);
	return r;
}

/*
 * Our table is read by other hosts only under the metadata lock.  While
 * this host holds it, a change waits in memory and is written before the
 * lock goes: by the commit, in the same array write as its in-place
 * blocks (crp_meta_open_pending_iov), or, when nothing is committed, by
 * the commit alone or at the unlock (crp_meta_open_flush_pending).  A
 * failed write fails the commit, as it failed the open when it was written
 * at once.  An open and its close in one batch cost one write.  A host
 * that dies meanwhile loses its table anyway.
 */
static int ot_write(struct crp_meta *m, unsigned k)
{
	if (m->locked && !m->ro && m->slot >= 0) {
		m->ot_pending |= (uint8_t)(1u << k);
		return 0;
	}
	return ot_write_now(m, k);
}

unsigned crp_meta_open_pending_iov(struct crp_meta *m, struct crp_array_iov *iov, uint8_t *bufs,
				   uint8_t *mask)
{
	unsigned n = 0;

	*mask = 0;
	if (m->ro || m->slot < 0)
		return 0;
	for (unsigned k = 0; k < CRP_OTABLE_BLOCKS; k++) {
		if (!(m->ot_pending & (1u << k)))
			continue;
		ot_encode(m, m->slot, k, m->ot_ents[k], bufs + (size_t)n * CRP_BLOCK);
		iov[n] = (struct crp_array_iov){ ot_blkno(m, m->slot, k) * CRP_BLOCK,
						 bufs + (size_t)n * CRP_BLOCK, CRP_BLOCK };
		*mask |= (uint8_t)(1u << k);
		n++;
	}
	return n;
}

void crp_meta_open_pending_written(struct crp_meta *m, uint8_t mask, int r)
{
	m->ot_pending &= (uint8_t)~mask;
	if (r < 0)
		m->ot_dirty |= mask;
	else
		m->ot_dirty &= (uint8_t)~mask;
}

/* Write our blocks named in @mask now. */
static int ot_write_mask(struct crp_meta *m, uint8_t mask)
{
	int r = 0;

	for (unsigned k = 0; k < CRP_OTABLE_BLOCKS; k++) {
		if (!(mask & (1u << k)))
			continue;
		int e = ot_write_now(m, k);

		r = r ? r : e;
	}
	return r;
}

int crp_meta_open_flush_pending(struct crp_meta *m)
{
	return ot_write_mask(m, m->ot_pending);
}

/* Blocks whose last write failed, written again. */
int crp_meta_open_flush(struct crp_meta *m)
{
	return ot_write_mask(m, m->ot_dirty);
}

uint32_t crp_meta_open_count(const struct crp_meta *m, uint64_t ino)
{
	if (!m->open_refs)
		return 0;
	return (uint32_t)GPOINTER_TO_SIZE(g_hash_table_lookup(m->open_refs, GSIZE_TO_POINTER(ino)));
}

int crp_meta_open_ref(struct crp_meta *m, uint64_t ino)
{
	uint32_t n = crp_meta_open_count(m, ino);
	unsigned k = ot_index(ino);
	int r;

	if (n) {
		g_hash_table_insert(m->open_refs, GSIZE_TO_POINTER(ino), GSIZE_TO_POINTER(n + 1));
		return 0;
	}
	g_array_append_val(m->ot_ents[k], ino);
	r = ot_write(m, k);
	if (r < 0) {
		/* Not entered on the disks: the open fails, nothing is held. */
		g_array_remove_index_fast(m->ot_ents[k], m->ot_ents[k]->len - 1);
		m->ot_dirty &= (uint8_t)~(1u << k);
		(void)ot_write(m, k);
		return r;
	}
	g_hash_table_insert(m->open_refs, GSIZE_TO_POINTER(ino), GSIZE_TO_POINTER(1));
	return 0;
}

int crp_meta_open_unref(struct crp_meta *m, uint64_t ino)
{
	uint32_t n = crp_meta_open_count(m, ino);
	GArray *a = m->ot_ents[ot_index(ino)];

	if (!n)
		return 0;
	if (n > 1) {
		g_hash_table_insert(m->open_refs, GSIZE_TO_POINTER(ino), GSIZE_TO_POINTER(n - 1));
		return 0;
	}
	g_hash_table_remove(m->open_refs, GSIZE_TO_POINTER(ino));
	for (guint i = 0; i < a->len; i++) {
		if (g_array_index(a, uint64_t, i) != ino)
			continue;
		/* Keep the order: an overflowed entry moves into the block. */
		g_array_remove_index(a, i);
		break;
	}
	/* A failed write leaves the inode listed: its free waits, never
	 * happens early; the block is written again later. */
	return ot_write(m, ot_index(ino));
}

int crp_meta_open_drop_all(struct crp_meta *m)
{
	if (m->open_refs)
		g_hash_table_remove_all(m->open_refs);
	for (unsigned k = 0; k < CRP_OTABLE_BLOCKS; k++)
		g_array_set_size(m->ot_ents[k], 0);
	m->ot_dirty = 0;
	m->ot_pending = 0;
	if (m->ro || m->slot < 0)
		return 0;
	return crp_meta_open_clear(m, m->slot);
}

struct ot_ctx {
	uint64_t blkno, fsid;
	uint64_t slot;
};

/* A block of slot @slot's table: its header, its owner, its count.  One
 * that fails (an all-zero one included) is rebuilt from parity. */
static bool ot_ok(const void *blk, void *ctx)
{
	struct ot_ctx *c = ctx;
	struct crp_bhdr h;

	return crp_bhdr_in(blk, CRP_MAGIC_OPENTAB, c->blkno, c->fsid, &h, NULL, 0) == 0 &&
	       h.owner == c->slot && h.count <= CRP_OTABLE_ENTRIES;
}

/* Block @k of every slot's table into @buf (max_hosts blocks), each other
 * slot's checked (rebuilt from parity if it fails).  1 if one is
 * unreadable (@bad: its slot), else 0 or an error. */
static int ot_peers_read(struct crp_meta *m, unsigned k, uint8_t *buf, uint32_t *bad)
{
	uint32_t hosts = m->sb.max_hosts;
	uint64_t first = ot_blkno(m, 0, k);
	int r = crp_array_read(m->a, first * CRP_BLOCK, buf, (size_t)hosts * CRP_BLOCK);

	for (uint32_t s = 0; s < hosts && r == 0; s++) {
		uint8_t *b = buf + (size_t)s * CRP_BLOCK;
		struct ot_ctx c = { first + s, m->fsid, s };

		if ((int)s == m->slot || ot_ok(b, &c))
			continue;
		if (crp_meta_rebuild_block(m, c.blkno, b, ot_ok, &c) < 0) {
			*bad = s;
			r = 1;
		}
	}
	return r;
}

int crp_meta_open_elsewhere(struct crp_meta *m, uint64_t ino, bool *held)
{
	uint32_t hosts = m->sb.max_hosts, bad = 0;
	unsigned k = ot_index(ino);
	uint64_t first = ot_blkno(m, 0, k);
	uint8_t *buf = m->ot_peers[k];
	int r;

	*held = false;
	if (!buf || !m->locked || m->ot_peers_seq[k] != m->lock_seq) {
		if (!buf)
			buf = crp_alloc_buf((size_t)hosts * CRP_BLOCK);
		if (!buf)
			return -ENOMEM;
		m->ot_peers[k] = buf;
		m->ot_peers_seq[k] = 0;
		m->ot_peer_reads++;
		r = ot_peers_read(m, k, buf, &bad);
		if (r == 1) {
			crp_warn("open table block %llu (host slot %u) is unreadable: inode %llu is "
				 "kept as if that host held it open",
				 (unsigned long long)(first + bad), bad, (unsigned long long)ino);
			*held = true;
			return 0;
		}
		if (r < 0)
			return r;
		if (m->locked)
			m->ot_peers_seq[k] = m->lock_seq;
	}
	for (uint32_t s = 0; s < hosts && !*held; s++) {
		uint8_t *b = buf + (size_t)s * CRP_BLOCK;
		struct crp_bhdr h;

		if ((int)s == m->slot)
			continue;
		crp_bhdr_in(b, CRP_MAGIC_OPENTAB, first + s, m->fsid, &h, NULL, 0);
		if (h.aux64 & CRP_OTABLE_OVERFLOW) {
			*held = true;
			break;
		}
		for (uint32_t i = 0; i < h.count; i++)
			if (crp_get_le64(b + CRP_HDR_SIZE + 8 * i) == ino) {
				*held = true;
				break;
			}
	}
	return 0;
}

int crp_meta_open_clear(struct crp_meta *m, int slot)
{
	uint8_t *buf;
	int r = 0;

	if (m->ro)
		return -EROFS;
	if (slot < 0 || slot >= (int)m->sb.max_hosts)
		return -EINVAL;
	buf = crp_alloc_buf(CRP_BLOCK);
	if (!buf)
		return -ENOMEM;
	if (slot != m->slot)
		ot_peers_forget(m); /* read again after this */
	for (unsigned k = 0; k < CRP_OTABLE_BLOCKS && !r; k++) {
		struct ot_ctx c = { ot_blkno(m, slot, k), m->fsid, (uint64_t)slot };

		/* Read first: a damaged block is rebuilt (and written back)
		 * before the write below, whose read-modify-write of parity
		 * would otherwise take the damage for the old contents and
		 * leave the stripe's parity wrong.  One that nothing rebuilds
		 * is simply overwritten. */
		if (crp_array_read(m->a, c.blkno * CRP_BLOCK, buf, CRP_BLOCK) == 0 && !ot_ok(buf, &c))
			(void)crp_meta_rebuild_block(m, c.blkno, buf, ot_ok, &c);
		ot_encode(m, slot, k, slot == m->slot ? m->ot_ents[k] : NULL, buf);
		r = crp_array_write(m->a, c.blkno * CRP_BLOCK, buf, CRP_BLOCK);
	}
	free(buf);
	return r;
}

int crp_meta_open_list(struct crp_meta *m, int slot, uint64_t **inos, uint32_t *n,
		       bool *overflow)
{
	uint8_t *buf = crp_alloc_buf(CRP_BLOCK);
	GArray *out = g_array_new(FALSE, FALSE, sizeof(uint64_t));
	int r = 0;

	*inos = NULL;
	*n = 0;
	*overflow = false;
	if (!buf) {
		g_array_free(out, TRUE);
		return -ENOMEM;
	}
	for (unsigned k = 0; k < CRP_OTABLE_BLOCKS && !r; k++) {
		struct ot_ctx c = { ot_blkno(m, slot, k), m->fsid, (uint64_t)slot };
		struct crp_bhdr h;

		r = crp_array_read(m->a, c.blkno * CRP_BLOCK, buf, CRP_BLOCK);
		if (r < 0)
			break;
		if (!ot_ok(buf, &c) && crp_meta_rebuild_block(m, c.blkno, buf, ot_ok, &c) < 0) {
			r = -CRP_ECORRUPT;
			break;
		}
		crp_bhdr_in(buf, CRP_MAGIC_OPENTAB, c.blkno, m->fsid, &h, NULL, 0);
		*overflow |= (h.aux64 & CRP_OTABLE_OVERFLOW) != 0;
		for (uint32_t i = 0; i < h.count; i++) {
			uint64_t ino = crp_get_le64(buf + CRP_HDR_SIZE + 8 * i);

			g_array_append_val(out, ino);
		}
	}
	free(buf);
	if (r < 0) {
		g_array_free(out, TRUE);
		return r;
	}
	*n = out->len;
	*inos = (uint64_t *)(void *)g_array_free(out, FALSE);
	return 0;
}
