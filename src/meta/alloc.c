/*
 * Allocation (block bitmaps per allocation group, inode bitmaps), the
 * inode table, data blocks with their checksum table, and orphan lists.
 *
 * Allocation group g spans ag_blocks blocks from ag_start + g * ag_blocks
 * (the last may be shorter): block 0 is its bitmap (one bit per block of
 * the group, header count = free blocks), blocks 1..64 its checksum table
 * (one XXH3-64 per block of the group, 0 = none), then data and metadata.
 * Many hosts: host slot h allocates blocks from the groups g with
 * g mod max_hosts == h first, and inodes from the inode chunks (CRP_ICHUNK
 * inodes) c with c mod max_hosts == h first; only when its own are full
 * does it take from the others.  Allocation happens under the metadata
 * lock with the bitmap block re-read whenever another host changed it, so
 * two hosts never take the same block or inode; the areas only keep them
 * from working on the same bitmap blocks.  The free counts in memory are
 * hints, exact for a group whose bitmap was read since another host last
 * changed it (ag_stale/ig_stale say which are not).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "crpfs/err.h"
#include "crpfs/log.h"
#include "crpfs/util.h"
#include "meta_i.h"

uint64_t crp_meta_ag_base(const struct crp_meta *m, uint32_t g)
{
	return m->sb.ag_start + (uint64_t)g * m->sb.ag_blocks;
}

uint32_t crp_meta_ag_len(const struct crp_meta *m, uint32_t g)
{
	if (g + 1 < m->sb.ag_count)
		return m->sb.ag_blocks;
	return (uint32_t)(m->sb.total_blocks - crp_meta_ag_base(m, g));
}

static uint32_t ig_len(const struct crp_meta *m, uint32_t i)
{
	uint64_t first = (uint64_t)i * CRP_BITS_PER_BLOCK;

	return (uint32_t)CRP_MIN((uint64_t)CRP_BITS_PER_BLOCK, m->sb.inode_count - first);
}

/* Structure checks of the allocation blocks (beyond their headers). */
struct own_ctx {
	uint64_t owner;
	uint32_t max_count;	/* count may not exceed it */
	uint64_t aux64;		/* bitmaps: the bits they hold; UINT64_MAX: any */
};

static bool own_ok(const void *blk, void *ctx)
{
	const struct own_ctx *c = ctx;
	const uint8_t *b = blk;

	return crp_get_le64(b + 32) == c->owner && crp_get_le32(b + 48) <= c->max_count &&
	       (c->aux64 == UINT64_MAX || crp_get_le64(b + 56) == c->aux64);
}

int crp_meta_bitmap_read(struct crp_meta *m, uint32_t g, struct crp_mblk **out)
{
	uint32_t len = crp_meta_ag_len(m, g);
	struct own_ctx c = { g, len, len };

	if (g >= m->sb.ag_count)
		return -CRP_ECORRUPT;
	return crp_meta_bread_check(m, crp_meta_ag_base(m, g), CRP_MAGIC_BITMAP, own_ok, &c, out);
}

int crp_meta_ibitmap_read(struct crp_meta *m, uint32_t i, struct crp_mblk **out)
{
	uint32_t len = ig_len(m, i);
	struct own_ctx c = { i, len, len };

	if (i >= m->sb.ibitmap_blocks)
		return -CRP_ECORRUPT;
	return crp_meta_bread_check(m, m->sb.ibitmap_start + i, CRP_MAGIC_IBITMAP, own_ok, &c,
				    out);
}

bool crp_meta_block_in_data_area(const struct crp_meta *m, uint64_t blk)
{
	uint64_t rel;

	if (blk < m->sb.ag_start || blk >= m->sb.total_blocks)
		return false;
	rel = (blk - m->sb.ag_start) % m->sb.ag_blocks;
	return rel >= CRP_AG_META_BLOCKS;
}

int crp_meta_load_counts(struct crp_meta *m)
{
	struct crp_mblk *b;
	int r;

	m->ag_free = calloc(m->sb.ag_count, sizeof(*m->ag_free));
	m->ig_free = calloc(m->sb.ibitmap_blocks, sizeof(*m->ig_free));
	m->ag_stale = calloc(m->sb.ag_count, 1);
	m->ig_stale = calloc(m->sb.ibitmap_blocks, 1);
	if (!m->ag_free || !m->ig_free || !m->ag_stale || !m->ig_stale)
		return -ENOMEM;
	/* Salvage (fsck): a bitmap beyond repair counts as full, so nothing is
	 * allocated from it until fsck has rebuilt it. */
	for (uint32_t g = 0; g < m->sb.ag_count; g++) {
		r = crp_meta_bitmap_read(m, g, &b);
		if (r < 0 && m->salvage && r != -ENOMEM)
			continue;
		if (r < 0)
			return r;
		m->ag_free[g] = crp_mblk_count(b);
	}
	for (uint32_t i = 0; i < m->sb.ibitmap_blocks; i++) {
		r = crp_meta_ibitmap_read(m, i, &b);
		if (r < 0 && m->salvage && r != -ENOMEM)
			continue;
		if (r < 0)
			return r;
		m->ig_free[i] = crp_mblk_count(b);
	}
	return 0;
}

uint64_t crp_meta_free_blocks(const struct crp_meta *m)
{
	uint64_t n = 0;

	for (uint32_t g = 0; g < m->sb.ag_count; g++)
		n += m->ag_free[g];
	return n;
}

uint64_t crp_meta_free_inodes(const struct crp_meta *m)
{
	uint64_t n = 0;

	for (uint32_t i = 0; i < m->sb.ibitmap_blocks; i++)
		n += m->ig_free[i];
	return n;
}

bool crp_meta_is_new(const struct crp_meta *m, uint64_t blk)
{
	return g_hash_table_contains(m->tx_new, GSIZE_TO_POINTER(blk));
}

static bool usable(const struct crp_meta *m, const uint8_t *bits, uint64_t base, uint32_t i)
{
	if (crp_bit_test(bits, i))
		return false;
	return !g_hash_table_size(m->tx_freed) ||
	       !g_hash_table_contains(m->tx_freed, GSIZE_TO_POINTER(base + i));
}

/* First usable bit at or after @from (wrapping), or -1. */
static int64_t find_free(const struct crp_meta *m, const uint8_t *bits, uint64_t base,
			 uint32_t len, uint32_t from)
{
	for (uint32_t n = 0, i = from % len; n < len;) {
		if (!(i & 7) && bits[i >> 3] == 0xff && i + 8 <= len) {
			n += 8;
			i += 8;
		} else {
			if (usable(m, bits, base, i))
				return i;
			n++;
			i++;
		}
		if (i >= len)
			i = 0;
	}
	return -1;
}

/*
 * A run of a stripe or more that does not go on from its goal starts on a
 * stripe boundary when that block is free, so that it is written as whole
 * stripes (no parity read-modify-write) and so are the runs that follow
 * it; the few blocks skipped stay free for smaller runs.
 */
static int64_t stripe_align(const struct crp_meta *m, const uint8_t *bits, uint64_t base,
			    uint32_t len, int64_t i, uint32_t want, bool at_goal)
{
	uint32_t sw = crp_meta_stripe_blocks(m), mis;
	int64_t ia;

	if (at_goal || sw <= 1 || want < sw)
		return i;
	mis = (uint32_t)((base + (uint64_t)i) % sw);
	if (!mis)
		return i;
	/* The first stripe boundary after it that is free, a few stripes on
	 * at most (small runs fill whole stripes of their own). */
	ia = i + (sw - mis);
	for (int t = 0; t < 64 && ia < len; t++, ia += sw)
		if (usable(m, bits, base, (uint32_t)ia))
			return ia;
	return i;
}

/* Is group or chunk @i in this host's own area? */
static bool own_area(const struct crp_meta *m, uint64_t i)
{
	if (m->slot < 0 || m->sb.max_hosts <= 1)
		return true;
	return i % m->sb.max_hosts == (uint64_t)m->slot;
}

/* The bitmap of group @g, its free count in memory made exact by it. */
static int group_bitmap(struct crp_meta *m, uint32_t g, struct crp_mblk **b)
{
	int r = crp_meta_bitmap_read(m, g, b);

	if (r < 0)
		return r;
	m->ag_free[g] = crp_mblk_count(*b);
	m->ag_stale[g] = 0;
	return 0;
}

/* Take up to @want usable blocks of group @g (bitmap @b, read by
 * group_bitmap) from index @i. */
static int take_run(struct crp_meta *m, uint32_t g, struct crp_mblk *b, uint32_t i,
		    uint32_t want, uint64_t *start, uint32_t *got)
{
	uint64_t base = crp_meta_ag_base(m, g);
	uint32_t len = crp_meta_ag_len(m, g), k;
	uint8_t *bits = crp_mblk_payload(b);
	int r;

	for (k = 0; k < want && i + k < len && usable(m, bits, base, i + k); k++) {
		crp_bit_set(bits, i + k);
		g_hash_table_add(m->tx_new, GSIZE_TO_POINTER(base + i + k));
	}
	if (!k)
		return -CRP_ECORRUPT; /* callers hand a usable first block */
	m->ag_free[g] -= CRP_MIN(k, m->ag_free[g]);
	crp_mblk_set_count(b, m->ag_free[g]);
	crp_meta_dirty(m, b);
	/* Anything held for an earlier use of these blocks is not theirs. */
	crp_meta_dheld_forget(m, base + i, k);
	/* No checksum until data is written: an entry left by an earlier use
	 * would not match what a fallocated (or metadata) block holds, and
	 * scrub would judge it so. */
	for (uint32_t j = 0; j < k; j++) {
		r = crp_meta_csum_set(m, base + i + j, 0);
		if (r < 0)
			return r;
	}
	*start = base + i;
	*got = k;
	return 0;
}

int crp_meta_alloc(struct crp_meta *m, uint64_t goal, uint32_t want, uint64_t *start,
		   uint32_t *got)
{
	uint32_t g0, from = 0, gg = UINT32_MAX;
	struct crp_mblk *b;
	int r;

	if (!want)
		want = 1;
	if (goal >= m->sb.ag_start && goal < m->sb.total_blocks) {
		gg = (uint32_t)((goal - m->sb.ag_start) / m->sb.ag_blocks);
		from = (uint32_t)((goal - m->sb.ag_start) % m->sb.ag_blocks);
	}
	/* Pass 0: our own groups; pass 1: the others.  Each starts at the
	 * goal when its group is of the pass (a file that grew into another
	 * host's area goes on there), else at the cursor. */
	for (int pass = 0; pass < 2; pass++) {
		g0 = gg != UINT32_MAX && own_area(m, gg) == (pass == 0) ? gg : m->ag_cursor;
		for (uint32_t n = 0; n < m->sb.ag_count; n++) {
			uint32_t g = (g0 + n) % m->sb.ag_count, len = crp_meta_ag_len(m, g);
			uint64_t base = crp_meta_ag_base(m, g);
			uint8_t *bits;
			int64_t i;

			if (own_area(m, g) != (pass == 0))
				continue;
			if (!m->ag_free[g] && !m->ag_stale[g])
				continue;
			r = group_bitmap(m, g, &b);
			if (r < 0)
				return r;
			if (!m->ag_free[g])
				continue;
			bits = crp_mblk_payload(b);
			i = find_free(m, bits, base, len, g == gg ? from : 0);
			if (i < 0)
				continue;
			i = stripe_align(m, bits, base, len, i, want, g == gg && (uint32_t)i == from);
			if (pass == 0)
				m->ag_cursor = g;
			return take_run(m, g, b, (uint32_t)i, want, start, got);
		}
	}
	return -ENOSPC;
}

/* A stripe of group @g (bitmap @bits) whose every block is usable, at or
 * after block @from of the group (wrapping): its index in the group, or -1. */
static int64_t find_free_stripe(const struct crp_meta *m, const uint8_t *bits, uint64_t base,
				uint32_t len, uint32_t from, uint32_t sw)
{
	uint32_t first = (uint32_t)((sw - base % sw) % sw), nstripes;

	if (len < first + sw)
		return -1;
	nstripes = (len - first) / sw;
	from = from > first ? (from - first) / sw : 0;
	for (uint32_t n = 0; n < nstripes; n++) {
		uint32_t i = first + ((from + n) % nstripes) * sw, k = 0;

		while (k < sw && usable(m, bits, base, i + k))
			k++;
		if (k == sw)
			return i;
	}
	return -1;
}

/*
 * The stream of small data runs: m->dstream is the next block of a stripe
 * that was wholly free when it was chosen; runs are taken from it in
 * order until it is used up, then another wholly free stripe is looked
 * for, from the last one on, in our own groups first.
 */
static int stream_take(struct crp_meta *m, uint32_t want, uint64_t *start, uint32_t *got)
{
	uint32_t sw = crp_meta_stripe_blocks(m);
	struct crp_mblk *b;
	int r;

	for (int attempt = 0; attempt < 2; attempt++) {
		if (m->dstream >= m->sb.ag_start && m->dstream < m->dstream_end &&
		    m->dstream_end <= m->sb.total_blocks) {
			uint32_t g = (uint32_t)((m->dstream - m->sb.ag_start) / m->sb.ag_blocks);
			uint32_t i = (uint32_t)((m->dstream - m->sb.ag_start) % m->sb.ag_blocks);
			uint64_t base = crp_meta_ag_base(m, g);

			r = group_bitmap(m, g, &b);
			if (r < 0)
				return r;
			if (usable(m, crp_mblk_payload(b), base, i)) {
				want = (uint32_t)CRP_MIN((uint64_t)want, m->dstream_end - m->dstream);
				r = take_run(m, g, b, i, want, start, got);
				if (r == 0)
					m->dstream = *start + *got;
				return r;
			}
		}
		/* A new stripe, from the last one on: pass 0 in our own
		 * groups, pass 1 in the others (ours may be full while theirs
		 * have room), as crp_meta_alloc goes. */
		m->dstream = m->dstream_end = 0;
		for (int pass = 0; pass < 2 && !m->dstream; pass++) {
			for (uint32_t n = 0; n < m->sb.ag_count; n++) {
				uint32_t g = (m->ag_cursor + n) % m->sb.ag_count;
				uint32_t len = crp_meta_ag_len(m, g);
				uint64_t base = crp_meta_ag_base(m, g);
				uint32_t from = m->dstream_scan >= base &&
							m->dstream_scan < base + len
						? (uint32_t)(m->dstream_scan - base) : 0;
				int64_t i;

				if (own_area(m, g) != (pass == 0) ||
				    (!m->ag_free[g] && !m->ag_stale[g]))
					continue;
				if (m->ag_free[g] < sw && !m->ag_stale[g])
					continue;
				r = group_bitmap(m, g, &b);
				if (r < 0)
					return r;
				if (m->ag_free[g] < sw)
					continue;
				i = find_free_stripe(m, crp_mblk_payload(b), base, len, from, sw);
				if (i < 0)
					continue;
				if (pass == 0)
					m->ag_cursor = g;
				m->dstream = base + (uint64_t)i;
				m->dstream_end = m->dstream_scan = m->dstream + sw;
				break;
			}
		}
		if (!m->dstream)
			return -ENOSPC;
	}
	return -ENOSPC;
}

int crp_meta_alloc_data(struct crp_meta *m, uint64_t goal, uint32_t want, uint64_t *start,
			uint32_t *got)
{
	uint32_t sw = crp_meta_stripe_blocks(m);
	int r;

	if (!want)
		want = 1;
	/* Without a goal (a file's first blocks) the usual allocation keeps
	 * small files next to each other. */
	if (sw > 1 && want < sw && goal) {
		bool go_on = false;

		if (goal >= m->sb.ag_start && goal < m->sb.total_blocks &&
		    crp_meta_block_in_data_area(m, goal)) {
			uint32_t g = (uint32_t)((goal - m->sb.ag_start) / m->sb.ag_blocks);
			struct crp_mblk *b;

			r = crp_meta_bitmap_read(m, g, &b);
			if (r < 0)
				return r;
			go_on = usable(m, crp_mblk_payload(b), crp_meta_ag_base(m, g),
				       (uint32_t)((goal - m->sb.ag_start) % m->sb.ag_blocks));
		}
		/* The goal may be the stream's next block (a run this
		 * transaction writes from the stream): taken through the
		 * stream, which then goes on after it. */
		if (!go_on || goal == m->dstream) {
			r = stream_take(m, want, start, got);
			if (r != -ENOSPC)
				return r;
		}
	}
	return crp_meta_alloc(m, goal, want, start, got);
}

int crp_meta_free(struct crp_meta *m, uint64_t start, uint32_t n, bool meta)
{
	struct crp_mblk *b = NULL;
	uint32_t cur = UINT32_MAX;
	int r;

	for (uint64_t blk = start; blk < start + n; blk++) {
		uint32_t g, i;

		if (!crp_meta_block_in_data_area(m, blk))
			return -CRP_ECORRUPT;
		g = (uint32_t)((blk - m->sb.ag_start) / m->sb.ag_blocks);
		i = (uint32_t)((blk - m->sb.ag_start) % m->sb.ag_blocks);
		if (g != cur) {
			r = group_bitmap(m, g, &b);
			if (r < 0)
				return r;
			cur = g;
		}
		if (!crp_bit_test(crp_mblk_payload(b), i))
			return -CRP_ECORRUPT; /* double free */
		crp_bit_clear(crp_mblk_payload(b), i);
		m->ag_free[g]++;
		crp_mblk_set_count(b, m->ag_free[g]);
		crp_meta_dirty(m, b);
		if (meta)
			crp_meta_forget_block(m, blk);
		if (g_hash_table_remove(m->tx_new, GSIZE_TO_POINTER(blk))) {
			if (crp_meta_undo_note_free(m, blk))
				continue; /* reusable after the commit */
			crp_meta_dheld_forget(m, blk, 1);
			m->free_epoch++; /* never committed: reusable at once */
			continue;
		}
		g_hash_table_add(m->tx_freed, GSIZE_TO_POINTER(blk));
		if (meta)
			m->tx_freed_meta = true;
	}
	return 0;
}

int crp_meta_block_allocated(struct crp_meta *m, uint64_t blk, bool *out)
{
	struct crp_mblk *b;
	uint32_t g, i;
	int r;

	if (blk < m->sb.ag_start || blk >= m->sb.total_blocks) {
		*out = true; /* fixed regions */
		return 0;
	}
	g = (uint32_t)((blk - m->sb.ag_start) / m->sb.ag_blocks);
	i = (uint32_t)((blk - m->sb.ag_start) % m->sb.ag_blocks);
	r = crp_meta_bitmap_read(m, g, &b);
	if (r < 0)
		return r;
	*out = crp_bit_test(crp_mblk_payload(b), i);
	return 0;
}

int crp_meta_inode_allocated(struct crp_meta *m, uint64_t ino, bool *out)
{
	struct crp_mblk *b;
	int r;

	if (ino >= m->sb.inode_count)
		return -CRP_ECORRUPT;
	r = crp_meta_ibitmap_read(m, (uint32_t)(ino / CRP_BITS_PER_BLOCK), &b);
	if (r < 0)
		return r;
	*out = crp_bit_test(crp_mblk_payload(b), ino % CRP_BITS_PER_BLOCK);
	return 0;
}

#define CRP_ICHUNK (CRP_BITS_PER_BLOCK / 8) /* inodes of one host's area unit */

int crp_meta_ialloc(struct crp_meta *m, uint64_t *ino)
{
	uint64_t nchunks = CRP_DIV_ROUND_UP(m->sb.inode_count, CRP_ICHUNK);
	uint64_t c0 = m->ino_cursor / CRP_ICHUNK;
	struct crp_mblk *b, *ib;
	int r;

	if (!own_area(m, c0))
		c0 = m->slot >= 0 ? (uint64_t)m->slot : 0;
	for (int pass = 0; pass < 2; pass++) {
		for (uint64_t n = 0; n < nchunks; n++) {
			uint64_t c = (c0 + n) % nchunks, first = c * CRP_ICHUNK;
			uint64_t end = CRP_MIN(first + CRP_ICHUNK, m->sb.inode_count);
			uint32_t g = (uint32_t)(first / CRP_BITS_PER_BLOCK);
			uint64_t from = first;
			uint8_t *bits;

			if (own_area(m, c) != (pass == 0))
				continue;
			if (!m->ig_free[g] && !m->ig_stale[g])
				continue;
			r = crp_meta_ibitmap_read(m, g, &b);
			if (r < 0)
				return r;
			m->ig_free[g] = crp_mblk_count(b);
			m->ig_stale[g] = 0;
			if (!m->ig_free[g])
				continue;
			bits = crp_mblk_payload(b);
			if (m->ino_cursor > first && m->ino_cursor < end)
				from = m->ino_cursor;
			for (uint64_t k = 0; k < end - first; k++) {
				uint64_t x = first + (from - first + k) % (end - first);
				uint32_t i = (uint32_t)(x % CRP_BITS_PER_BLOCK);

				if (crp_bit_test(bits, i))
					continue;
				/* Its record is read (and checked, while the
				 * bitmap still calls it free) before it is in
				 * use: a damaged record must never look like a
				 * free one, nor a free one like a damaged one. */
				r = crp_meta_bread_raw(m, m->sb.itable_start +
							  x / CRP_INODES_PER_BLOCK, &ib);
				if (r < 0)
					return r;
				crp_bit_set(bits, i);
				m->ig_free[g]--;
				crp_mblk_set_count(b, m->ig_free[g]);
				crp_meta_dirty(m, b);
				*ino = x;
				m->ino_cursor = x + 1;
				return 0;
			}
		}
	}
	return -ENOSPC;
}

int crp_meta_imark(struct crp_meta *m, uint64_t ino)
{
	struct crp_mblk *b;
	uint32_t g = (uint32_t)(ino / CRP_BITS_PER_BLOCK), i = ino % CRP_BITS_PER_BLOCK;
	int r;

	if (ino < 1 || ino >= m->sb.inode_count)
		return -CRP_ECORRUPT;
	r = crp_meta_ibitmap_read(m, g, &b);
	if (r < 0)
		return r;
	if (crp_bit_test(crp_mblk_payload(b), i))
		return 0;
	crp_bit_set(crp_mblk_payload(b), i);
	m->ig_free[g] = crp_mblk_count(b);
	if (m->ig_free[g])
		m->ig_free[g]--;
	crp_mblk_set_count(b, m->ig_free[g]);
	crp_meta_dirty(m, b);
	return 0;
}

int crp_meta_ifree(struct crp_meta *m, uint64_t ino)
{
	struct crp_mblk *b;
	uint32_t g = (uint32_t)(ino / CRP_BITS_PER_BLOCK), i = ino % CRP_BITS_PER_BLOCK;
	int r;

	if (ino < 2 || ino >= m->sb.inode_count)
		return -CRP_ECORRUPT;
	r = crp_meta_ibitmap_read(m, g, &b);
	if (r < 0)
		return r;
	m->ig_free[g] = crp_mblk_count(b);
	m->ig_stale[g] = 0;
	if (!crp_bit_test(crp_mblk_payload(b), i))
		return -CRP_ECORRUPT;
	crp_bit_clear(crp_mblk_payload(b), i);
	m->ig_free[g]++;
	crp_mblk_set_count(b, m->ig_free[g]);
	crp_meta_dirty(m, b);
	return 0;
}

/* ---- inode table ---- */

struct itab_ctx {
	struct crp_meta *m;
	uint64_t first;		/* first inode of the block */
	uint8_t used;		/* bit i: inode first+i is in use (inode bitmap) */
};

/* Records of an inode-table block that fail: undecodable, or all zero
 * while the inode bitmap says the inode is in use. */
static uint8_t itab_bad(const void *blk, const struct itab_ctx *c)
{
	uint8_t bad = 0;

	for (unsigned i = 0; i < CRP_INODES_PER_BLOCK; i++) {
		struct crp_inode in;
		int r = crp_inode_in((const uint8_t *)blk + i * CRP_INODE_SIZE, c->first + i, &in,
				     NULL, 0);

		if (r < 0 || (r == 1 && (c->used & (1u << i))))
			bad |= (uint8_t)(1u << i);
	}
	return bad;
}

static bool itab_ok(const void *blk, void *ctx)
{
	return itab_bad(blk, ctx) == 0;
}

int crp_meta_bread_raw(struct crp_meta *m, uint64_t blkno, struct crp_mblk **out)
{
	struct crp_mblk *b = g_hash_table_lookup(m->cache, &blkno);
	struct itab_ctx c = { m, 0, 0 };
	struct crp_mblk *ib;
	uint8_t bad;
	int r;

	*out = NULL;
	if (b) {
		crp_meta_undo_touch(m, b);
		*out = b;
		return b->magic ? -CRP_ECORRUPT : 0;
	}
	if (blkno < m->sb.itable_start || blkno >= m->sb.ag_start)
		return -CRP_ECORRUPT;
	c.first = (blkno - m->sb.itable_start) * CRP_INODES_PER_BLOCK;
	/* Which of its inodes are in use; an unreadable bitmap says nothing
	 * (the records are still checked one by one). */
	if (crp_meta_ibitmap_read(m, (uint32_t)(c.first / CRP_BITS_PER_BLOCK), &ib) == 0)
		for (unsigned i = 0; i < CRP_INODES_PER_BLOCK; i++) {
			uint64_t ino = c.first + i;

			/* (Inode 0 is marked in use and never has a record.) */
			if (ino && ino < m->sb.inode_count &&
			    crp_bit_test(crp_mblk_payload(ib), ino % CRP_BITS_PER_BLOCK))
				c.used |= (uint8_t)(1u << i);
		}
	b = calloc(1, sizeof(*b));
	if (!b)
		return -ENOMEM;
	b->blkno = blkno;
	b->buf = crp_alloc_buf(CRP_BLOCK);
	if (!b->buf) {
		free(b);
		return -ENOMEM;
	}
	r = crp_meta_lazy_get(m, blkno, b->buf) ? 0
						 : crp_array_read(m->a, blkno * CRP_BLOCK, b->buf, CRP_BLOCK);
	if (r < 0) {
		free(b->buf);
		free(b);
		return r;
	}
	bad = itab_bad(b->buf, &c);
	if (bad && m->opt) {
		/* Without the lock: maybe a block being written; not cached. */
		free(b->buf);
		free(b);
		return -CRP_ERETRY;
	}
	if (bad) {
		char why[96] = "damaged records";
		int nb = __builtin_popcount(bad);

		for (unsigned i = 0; i < CRP_INODES_PER_BLOCK; i++) {
			struct crp_inode in;

			if (!(bad & (1u << i)))
				continue;
			snprintf(why, sizeof(why), "inode %llu %s%s",
				 (unsigned long long)(c.first + i),
				 crp_inode_in(b->buf + i * CRP_INODE_SIZE, c.first + i, &in, NULL,
					      0) == 1
					 ? "is in use but its record is all zeros"
					 : "has a damaged record",
				 nb > 1 ? " (and others)" : "");
			break;
		}
		if (crp_meta_rebuild_as(m, blkno, b->buf, itab_ok, &c, 0, why, false) == 0)
			bad = 0;
	}
	b->badrec = bad;
	g_hash_table_insert(m->cache, &b->blkno, b);
	*out = b;
	return 0;
}

int crp_meta_iread(struct crp_meta *m, uint64_t ino, struct crp_inode *out)
{
	uint64_t blkno = m->sb.itable_start + ino / CRP_INODES_PER_BLOCK;
	unsigned k = ino % CRP_INODES_PER_BLOCK;
	struct crp_mblk *b;
	int r;

	if (ino < 1 || ino >= m->sb.inode_count)
		return -CRP_ECORRUPT;
	r = crp_meta_bread_raw(m, blkno, &b);
	if (r < 0)
		return r;
	r = crp_inode_in(b->buf + k * CRP_INODE_SIZE, ino, out, NULL, 0);
	if (b->badrec & (1u << k))
		return r < 0 ? r : -EIO; /* damaged, and parity did not rebuild it */
	return r;
}

int crp_meta_iwrite(struct crp_meta *m, const struct crp_inode *in)
{
	uint64_t blkno = m->sb.itable_start + in->ino / CRP_INODES_PER_BLOCK;
	struct crp_mblk *b;
	int r;

	if (in->ino < 1 || in->ino >= m->sb.inode_count)
		return -CRP_ECORRUPT;
	r = crp_meta_bread_raw(m, blkno, &b);
	if (r < 0)
		return r;
	crp_inode_out(in, b->buf + (in->ino % CRP_INODES_PER_BLOCK) * CRP_INODE_SIZE);
	b->badrec &= (uint8_t)~(1u << (in->ino % CRP_INODES_PER_BLOCK));
	crp_meta_dirty(m, b);
	return 0;
}

/* ---- data and checksums ---- */

static int csum_slot(struct crp_meta *m, uint64_t blk, struct crp_mblk **b, uint8_t **p)
{
	uint32_t g, i;
	int r;

	if (!crp_meta_block_in_data_area(m, blk))
		return -CRP_ECORRUPT;
	g = (uint32_t)((blk - m->sb.ag_start) / m->sb.ag_blocks);
	i = (uint32_t)((blk - m->sb.ag_start) % m->sb.ag_blocks);
	{
		struct own_ctx c = { g, 0, UINT64_MAX };

		r = crp_meta_bread_check(m, crp_meta_ag_base(m, g) + 1 + i / CRP_CSUMS_PER_BLOCK,
					 CRP_MAGIC_CSUM, own_ok, &c, b);
	}
	if (r < 0)
		return r;
	*p = crp_mblk_payload(*b) + 8 * (i % CRP_CSUMS_PER_BLOCK);
	return 0;
}

int crp_meta_csum_get(struct crp_meta *m, uint64_t blk, uint64_t *csum)
{
	struct crp_mblk *b;
	uint8_t *p;
	int r = csum_slot(m, blk, &b, &p);

	if (r < 0)
		return r;
	*csum = crp_get_le64(p);
	return 0;
}

int crp_meta_csum_set(struct crp_meta *m, uint64_t blk, uint64_t csum)
{
	struct crp_mblk *b;
	uint8_t *p;
	int r = csum_slot(m, blk, &b, &p);

	if (r < 0)
		return r;
	if (crp_get_le64(p) != csum) {
		crp_put_le64(p, csum);
		crp_meta_dirty(m, b);
	}
	return 0;
}

int crp_meta_data_write(struct crp_meta *m, uint64_t pblk, uint32_t n, const void *buf)
{
	int r;

	if (m->ro)
		return -EROFS;
	if (!crp_meta_block_in_data_area(m, pblk) || !crp_meta_block_in_data_area(m, pblk + n - 1))
		return -CRP_ECORRUPT;
	r = crp_meta_dheld_take(m, pblk, n, buf);
	if (r < 0)
		return r;
	if (r == 0) {
		/* Written now: nothing older may be written over it later. */
		crp_meta_dheld_forget(m, pblk, n);
		m->data_unsynced = true;
		r = crp_array_write(m->a, pblk * CRP_BLOCK, buf, (size_t)n * CRP_BLOCK);
	} else {
		r = 0;
	}
	for (uint32_t i = 0; r == 0 && i < n; i++) {
		uint64_t c = crp_data_csum((const uint8_t *)buf + (size_t)i * CRP_BLOCK);

		crp_meta_undo_note_write(m, pblk + i, c);
		r = crp_meta_csum_set(m, pblk + i, c);
	}
	return r;
}

struct data_ctx {
	uint64_t csum;
};

static bool data_ok(const void *blk, void *ctx)
{
	return crp_data_csum(blk) == ((struct data_ctx *)ctx)->csum;
}

int crp_meta_data_read(struct crp_meta *m, uint64_t pblk, uint32_t n, void *buf)
{
	int r;

	if (!crp_meta_block_in_data_area(m, pblk) || !crp_meta_block_in_data_area(m, pblk + n - 1))
		return -CRP_ECORRUPT;
	r = crp_array_read(m->a, pblk * CRP_BLOCK, buf, (size_t)n * CRP_BLOCK);
	for (uint32_t i = 0; r == 0 && i < n; i++) {
		uint8_t *p = (uint8_t *)buf + (size_t)i * CRP_BLOCK;
		const void *held = crp_meta_dheld_get(m, pblk + i);
		struct data_ctx c;

		if (held) {
			memcpy(p, held, CRP_BLOCK); /* not on the disks yet */
			continue;
		}

		r = crp_meta_csum_get(m, pblk + i, &c.csum);
		if (r == -CRP_ECHECKSUM || r == -CRP_ECORRUPT)
			r = -EIO; /* its checksum table block is beyond repair */
		if (r < 0 || !c.csum || crp_data_csum(p) == c.csum)
			continue;
		/* A block that reads as zeros while its checksum says it was
		 * written is damaged like any other. */
		if (crp_meta_rebuild_as(m, pblk + i, p, data_ok, &c, 0, NULL, false) < 0)
			r = -EIO;
	}
	return r;
}

/* ---- orphans ---- */

static uint64_t orphan_blk(const struct crp_meta *m, int slot)
{
	return m->sb.journal_start + (uint64_t)slot * m->sb.journal_blocks + 1;
}

static int orphan_read(struct crp_meta *m, int slot, struct crp_mblk **b)
{
	struct own_ctx c = { (uint64_t)slot, CRP_ORPHANS_PER_BLOCK, UINT64_MAX };

	return crp_meta_bread_check(m, orphan_blk(m, slot), CRP_MAGIC_ORPHAN, own_ok, &c, b);
}

/* Add @ino to slot @slot's list: 0, or -ENOSPC when it is full. */
static int orphan_add_to(struct crp_meta *m, int slot, uint64_t ino)
{
	struct crp_mblk *b;
	uint32_t n;
	int r;

	r = orphan_read(m, slot, &b);
	if (r < 0)
		return r;
	n = crp_mblk_count(b);
	if (n >= CRP_ORPHANS_PER_BLOCK)
		return -ENOSPC;
	crp_put_le64(crp_mblk_payload(b) + 8 * n, ino);
	crp_mblk_set_count(b, n + 1);
	crp_meta_dirty(m, b);
	return 0;
}

int crp_meta_orphan_add(struct crp_meta *m, uint64_t ino)
{
	int r;

	if (m->slot < 0)
		return -EROFS;
	r = orphan_add_to(m, m->slot, ino);
	for (int s = 0; r == -ENOSPC && s < (int)m->sb.max_hosts; s++)
		if (s != m->slot)
			r = orphan_add_to(m, s, ino);
	return r;
}

/* Remove @ino from slot @slot's list: 0, or -ENOENT if it is not there. */
static int orphan_del_from(struct crp_meta *m, int slot, uint64_t ino)
{
	struct crp_mblk *b;
	uint8_t *p;
	uint32_t n;
	int r;

	r = orphan_read(m, slot, &b);
	if (r < 0)
		return r;
	p = crp_mblk_payload(b);
	n = CRP_MIN(crp_mblk_count(b), CRP_ORPHANS_PER_BLOCK);
	for (uint32_t i = 0; i < n; i++) {
		if (crp_get_le64(p + 8 * i) != ino)
			continue;
		memmove(p + 8 * i, p + 8 * (i + 1), 8 * (n - i - 1));
		crp_put_le64(p + 8 * (n - 1), 0);
		crp_mblk_set_count(b, n - 1);
		crp_meta_dirty(m, b);
		return 0;
	}
	return -ENOENT;
}

int crp_meta_orphan_del(struct crp_meta *m, uint64_t ino)
{
	int r = -ENOENT;

	if (m->slot >= 0)
		r = orphan_del_from(m, m->slot, ino);
	for (int s = 0; r == -ENOENT && s < (int)m->sb.max_hosts; s++)
		if (s != m->slot)
			r = orphan_del_from(m, s, ino);
	return r;
}

int crp_meta_orphan_list(struct crp_meta *m, int slot, uint64_t **inos, uint32_t *n)
{
	struct crp_mblk *b;
	int r;

	*inos = NULL;
	*n = 0;
	r = orphan_read(m, slot, &b);
	if (r < 0)
		return r;
	*n = CRP_MIN(crp_mblk_count(b), CRP_ORPHANS_PER_BLOCK);
	*inos = g_new0(uint64_t, *n + 1);
	crp_u64s_in(crp_mblk_payload(b), *n, *inos);
	return 0;
}

int crp_meta_orphan_clear(struct crp_meta *m, int slot)
{
	struct crp_mblk *b;
	int r = orphan_read(m, slot, &b);

	if (r < 0)
		return r;
	if (crp_mblk_count(b)) {
		memset(crp_mblk_payload(b), 0, CRP_PAYLOAD);
		crp_mblk_set_count(b, 0);
		crp_meta_dirty(m, b);
	}
	return 0;
}
