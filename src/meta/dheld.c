/*
 * Small data writes held until their transaction commits.
 *
 * A data write smaller than a stripe costs a parity read-modify-write:
 * the stripe's reservations, a read of the old data and parity, two
 * writes.  Written to blocks that only the running transaction knows
 * (crp_meta_is_new), it need not reach the disks before that transaction
 * commits (ordered data: before the commit record).  So such a write is
 * kept here, block by block, its checksum recorded at once; the commit
 * writes every held block first (crp_meta_dheld_flush, in block order,
 * adjacent blocks as one run), so that blocks the allocator handed out
 * side by side (crp_meta_alloc_data fills whole free stripes with small
 * writes) go out as full stripes, whose parity is computed, not read.
 *
 * Rules that keep it exact:
 *   - a held block is in tx_new: nothing committed reads it, and no other
 *     host can take it before this transaction commits (the metadata lock
 *     is held throughout);
 *   - reads under the lock (crp_meta_data_read) take a held block from
 *     here; a read plan outside the lock never covers one
 *     (crp_meta_data_held makes the caller read under the lock);
 *   - a block freed, or handed out again, forgets what was held for it;
 *     a dropped transaction forgets everything held;
 *   - what is held goes only when its writes came back GOOD: a commit that
 *     fails and is made again writes it again;
 *   - at most DHELD_MAX blocks: beyond, they are written at once (they may
 *     reach the disks any time before the commit).
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "crpfs/err.h"
#include "crpfs/util.h"
#include "meta_i.h"

#define DHELD_MAX 1024u /* 4 MiB */

static void held_free(gpointer p)
{
	free(p);
}

static int ensure_table(struct crp_meta *m)
{
	if (!m->dheld)
		m->dheld = g_hash_table_new_full(g_direct_hash, g_direct_equal, NULL, held_free);
	return m->dheld ? 0 : -ENOMEM;
}

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return x < y ? -1 : x > y;
}

int crp_meta_dheld_flush(struct crp_meta *m)
{
	GHashTableIter it;
	gpointer k, v;
	uint64_t *blks;
	struct crp_array_iov *iov;
	uint8_t *buf;
	guint n = m->dheld ? g_hash_table_size(m->dheld) : 0, i = 0, niov = 0;
	int r;

	if (!n)
		return 0;
	if (m->ro) {
		g_hash_table_remove_all(m->dheld);
		return -EROFS;
	}
	blks = malloc(n * sizeof(*blks));
	iov = malloc(n * sizeof(*iov));
	buf = crp_alloc_buf_raw((size_t)n * CRP_BLOCK);
	if (!blks || !iov || !buf) {
		r = -ENOMEM;
		goto out;
	}
	g_hash_table_iter_init(&it, m->dheld);
	while (g_hash_table_iter_next(&it, &k, &v))
		blks[i++] = (uint64_t)GPOINTER_TO_SIZE(k);
	qsort(blks, n, sizeof(*blks), cmp_u64);
	for (i = 0; i < n; i++) {
		uint8_t *dst = buf + (size_t)i * CRP_BLOCK;

		memcpy(dst, g_hash_table_lookup(m->dheld, GSIZE_TO_POINTER(blks[i])), CRP_BLOCK);
		if (niov && blks[i] == blks[i - 1] + 1) {
			iov[niov - 1].len += CRP_BLOCK;
		} else {
			iov[niov].off = blks[i] * CRP_BLOCK;
			iov[niov].buf = dst;
			iov[niov].len = CRP_BLOCK;
			niov++;
		}
	}
	m->data_unsynced = true;
	r = crp_array_writev(m->a, iov, (int)niov);
	if (r == 0) {
		m->dheld_flushed += n;
		m->dheld_runs += niov;
		g_hash_table_remove_all(m->dheld);
	}
out:
	free(blks);
	free(iov);
	free(buf);
	return r;
}

int crp_meta_dheld_take(struct crp_meta *m, uint64_t pblk, uint32_t n, const void *buf)
{
	int r;

	if (m->ro || m->slot < 0 || !m->locked || (uint64_t)n >= crp_meta_stripe_blocks(m))
		return 0;
	for (uint32_t i = 0; i < n; i++)
		if (!crp_meta_is_new(m, pblk + i))
			return 0;
	if (ensure_table(m))
		return 0;
	if (g_hash_table_size(m->dheld) + n > DHELD_MAX) {
		r = crp_meta_dheld_flush(m);
		if (r)
			return r;
	}
	for (uint32_t i = 0; i < n; i++) {
		gpointer key = GSIZE_TO_POINTER(pblk + i);
		uint8_t *p = g_hash_table_lookup(m->dheld, key);

		if (!p) {
			p = crp_alloc_buf_raw(CRP_BLOCK);
			if (!p) {
				/* The caller writes the whole range at once. */
				crp_meta_dheld_forget(m, pblk, n);
				return 0;
			}
			g_hash_table_insert(m->dheld, key, p);
		}
		memcpy(p, (const uint8_t *)buf + (size_t)i * CRP_BLOCK, CRP_BLOCK);
	}
	m->dheld_taken += n;
	return 1;
}

void crp_meta_dheld_forget(struct crp_meta *m, uint64_t pblk, uint32_t n)
{
	if (!m->dheld || !g_hash_table_size(m->dheld))
		return;
	for (uint32_t i = 0; i < n; i++)
		g_hash_table_remove(m->dheld, GSIZE_TO_POINTER(pblk + i));
}

void *crp_meta_dheld_steal(struct crp_meta *m, uint64_t pblk)
{
	gpointer v = NULL;

	if (!m->dheld || !g_hash_table_steal_extended(m->dheld, GSIZE_TO_POINTER(pblk), NULL, &v))
		return NULL;
	return v;
}

int crp_meta_dheld_put(struct crp_meta *m, uint64_t pblk, void *buf)
{
	if (ensure_table(m)) {
		free(buf);
		return -ENOMEM;
	}
	g_hash_table_replace(m->dheld, GSIZE_TO_POINTER(pblk), buf);
	return 0;
}

void crp_meta_dheld_drop(struct crp_meta *m)
{
	if (m->dheld)
		g_hash_table_remove_all(m->dheld);
}

const void *crp_meta_dheld_get(const struct crp_meta *m, uint64_t pblk)
{
	if (!m->dheld || !g_hash_table_size(m->dheld))
		return NULL;
	return g_hash_table_lookup(m->dheld, GSIZE_TO_POINTER(pblk));
}

bool crp_meta_data_held(const struct crp_meta *m, uint64_t pblk, uint64_t n)
{
	if (!m->dheld || !g_hash_table_size(m->dheld))
		return false;
	for (uint64_t i = 0; i < n; i++)
		if (g_hash_table_contains(m->dheld, GSIZE_TO_POINTER(pblk + i)))
			return true;
	return false;
}

void crp_meta_dheld_free(struct crp_meta *m)
{
	if (m->dheld)
		g_hash_table_destroy(m->dheld);
	m->dheld = NULL;
}
