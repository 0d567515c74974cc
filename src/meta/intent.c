/*
 * The write-intent log: which stripes this host may have left half-written.
 *
 * A host that dies between a stripe transaction's data WRITE and its parity
 * WRITE leaves that stripe's parity wrong (the RAID write hole).  Before a
 * stripe transaction starts, the host sets the stripe's bit in its intent
 * log and makes it durable; a survivor recovering the host resyncs every
 * stripe whose bit is set (parity recomputed from the data, under the locks)
 * and clears the log.
 *
 * The log of slot h is CRP_INTENT_BYTES at CRP_INTENT_OFFSET + h *
 * CRP_INTENT_BYTES on every member (the same on all, like the slots): 64
 * blocks with the common block header (magic CRP_MAGIC_INTENT, owner = the
 * slot, aux64 = a sequence number) and a bitmap payload.  Bit i covers
 * stripes [i * spb, (i + 1) * spb), spb from the superblock
 * (crp_sb_intent_spb): at least CRP_INTENT_REGION_BYTES of each member, so
 * that a sequential writer sets a bit, with its FUA write on every member,
 * once per 16 MiB rather than once per stripe; filesystems made before
 * that keep spb = ceil(nstripes / bits in the log).
 *
 * Cost: a bit is written once when a region turns dirty (one round trip,
 * every member in parallel, FUA), not per transaction.  A region is cleaned
 * by crp_meta_intent_sweep() once no transaction has touched it for a while
 * and the members have synced: cleaning only loses work for the resync,
 * never correctness.
 *
 * Locking: struct crp_intent has its own mutex (mu) for the bitmaps and the
 * table of active regions, and a second one (wmu) that serializes writes of
 * log blocks so that a block on disk never loses a bit another thread set.
 * The hooks run on any thread, outside the fs big lock.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "crpfs/err.h"
#include "crpfs/log.h"
#include "crpfs/util.h"
#include "meta_i.h"

#define INTENT_BLOCKS ((int)(CRP_INTENT_BYTES / CRP_BLOCK))
#define INTENT_BITS CRP_INTENT_BITS

struct region {
	uint32_t inflight;    /* transactions running in it */
	uint64_t last_ns;     /* when the last one ended */
	GArray *suspect;      /* stripes a failed transaction may have left
				 half-written (uint64_t), or NULL: resynced
				 before the region leaves the log */
};

static void region_free(gpointer p)
{
	struct region *rg = p;

	if (rg->suspect)
		g_array_free(rg->suspect, TRUE);
	g_free(rg);
}

struct crp_intent {
	struct crp_meta *m;
	uint64_t spb;			/* stripes per bit */
	pthread_mutex_t mu;		/* protects want, ondisk, active, seq */
	pthread_mutex_t wmu;		/* serializes log block writes */
	uint8_t *want;			/* bits that must be on disk */
	uint8_t *ondisk;		/* bits known durable */
	GHashTable *active;		/* bit -> struct region * */
	uint64_t seq;
};

static uint64_t spb_of(const struct crp_meta *m)
{
	return crp_sb_intent_spb(&m->sb);
}

static uint64_t log_blkno(int slot, int k)
{
	return (CRP_INTENT_OFFSET + (uint64_t)slot * CRP_INTENT_BYTES + (uint64_t)k * CRP_BLOCK) /
	       CRP_BLOCK;
}

/* Write log block @k of @slot with @bits (its CRP_PAYLOAD bytes) to every
 * member that works.  Durable on return (FUA).  Called with wmu held. */
static int write_block(struct crp_meta *m, int slot, int k, const uint8_t *bits, uint64_t seq)
{
	struct crp_bhdr h = { .magic = CRP_MAGIC_INTENT, .version = CRP_ONDISK_VERSION,
			      .blkno = log_blkno(slot, k), .fsid = m->fsid,
			      .owner = (uint64_t)slot, .aux64 = seq };
	struct crp_cmd cmds[CRP_MAX_MEMBERS];
	struct crp_batch b;
	uint8_t *blk = crp_alloc_buf(CRP_BLOCK);
	int n = crp_array_nmembers(m->a), ok = 0, r = 0;

	if (!blk)
		return -ENOMEM;
	memcpy(blk + CRP_HDR_SIZE, bits, CRP_PAYLOAD);
	crp_bhdr_out(&h, blk);
	/* Members reserved by other hosts (reserve mode) refuse the write for
	 * a few round trips: those are tried again until one copy lands or
	 * the deadline passes. */
	bool want[CRP_MAX_MEMBERS];
	/* As long as a stripe transaction waits for its locks. */
	uint64_t deadline = crp_now_ns() +
			    (uint64_t)(m->timeout_ms ? m->timeout_ms : CRP_DEFAULT_TIMEOUT_MS) * 12000000ull;

	for (int i = 0; i < n; i++)
		want[i] = crp_array_writable(m->a, i);
	for (unsigned attempt = 0;; attempt++) {
		bool conflict = false;

		crp_batch_init(&b);
		for (int i = 0; i < n; i++) {
			struct crp_member *mem = crp_array_member(m->a, i);
			uint32_t bs = crp_member_block_size(mem);
			struct crp_cmd *c = &cmds[i];

			if (!want[i])
				continue;
			crp_cmd_init(c);
			crp_cdb_write16(c, h.blkno * CRP_BLOCK / bs, CRP_BLOCK / bs, blk, CRP_BLOCK, true);
			crp_batch_add(&b, c);
			crp_member_submit(mem, &c, 1);
		}
		crp_batch_wait(&b);
		crp_batch_destroy(&b);
		for (int i = 0; i < n; i++) {
			if (!want[i])
				continue;
			if (cmds[i].result == 0) {
				ok++;
				want[i] = false;
			} else if (cmds[i].result == -CRP_ECONFLICT) {
				conflict = true;
				r = r ? r : cmds[i].result;
			} else {
				want[i] = false;
				if (!r || r == -CRP_ECONFLICT)
					r = cmds[i].result;
			}
		}
		if (ok || !conflict || crp_now_ns() >= deadline)
			break;
		crp_sleep_ns((200000ull << CRP_MIN(attempt, 5u)) + crp_random() % 200000ull);
	}
	free(blk);
	/* One durable copy is enough for a survivor to find the bit. */
	return ok ? 0 : r;
}

/* Make block @k durable with every bit of want (wmu taken here). */
static int flush_block(struct crp_intent *in, int k)
{
	uint8_t *bits = crp_alloc_buf(CRP_PAYLOAD);
	uint64_t seq;
	int r;

	if (!bits)
		return -ENOMEM;
	pthread_mutex_lock(&in->wmu);
	pthread_mutex_lock(&in->mu);
	memcpy(bits, in->want + (size_t)k * CRP_PAYLOAD, CRP_PAYLOAD);
	seq = ++in->seq;
	pthread_mutex_unlock(&in->mu);
	r = write_block(in->m, in->m->slot, k, bits, seq);
	if (r == 0) {
		pthread_mutex_lock(&in->mu);
		memcpy(in->ondisk + (size_t)k * CRP_PAYLOAD, bits, CRP_PAYLOAD);
		pthread_mutex_unlock(&in->mu);
	}
	pthread_mutex_unlock(&in->wmu);
	free(bits);
	return r;
}

static void intent_end(void *ctx, uint64_t s, bool suspect)
{
	struct crp_intent *in = ctx;
	struct region *rg;

	pthread_mutex_lock(&in->mu);
	rg = g_hash_table_lookup(in->active, GSIZE_TO_POINTER(s / in->spb));
	if (rg) {
		rg->inflight--;
		rg->last_ns = crp_now_ns();
		if (suspect) {
			if (!rg->suspect)
				rg->suspect = g_array_new(FALSE, FALSE, sizeof(uint64_t));
			g_array_append_val(rg->suspect, s);
		}
	}
	pthread_mutex_unlock(&in->mu);
}

static int intent_begin(void *ctx, uint64_t s)
{
	struct crp_intent *in = ctx;
	uint64_t bit = s / in->spb;
	struct region *rg;
	bool durable;
	int r;

	pthread_mutex_lock(&in->mu);
	rg = g_hash_table_lookup(in->active, GSIZE_TO_POINTER(bit));
	if (!rg) {
		rg = g_new0(struct region, 1);
		g_hash_table_insert(in->active, GSIZE_TO_POINTER(bit), rg);
	}
	rg->inflight++;
	crp_bit_set(in->want, bit);
	durable = crp_bit_test(in->ondisk, bit);
	pthread_mutex_unlock(&in->mu);
	if (durable)
		return 0;
	r = flush_block(in, (int)(bit / CRP_BITS_PER_BLOCK));
	if (r < 0)
		intent_end(in, s, false); /* the transaction will not run */
	return r;
}
static const struct crp_array_intent_ops intent_ops = {
	.begin = intent_begin,
	.end = intent_end,
};

int crp_meta_intent_attach(struct crp_meta *m)
{
	struct crp_intent *in;
	uint8_t *zero;
	int r = 0;

	if (m->slot < 0 || m->ro)
		return 0;
	in = calloc(1, sizeof(*in));
	zero = crp_alloc_buf(CRP_PAYLOAD);
	if (!in || !zero) {
		free(in);
		free(zero);
		return -ENOMEM;
	}
	in->m = m;
	in->spb = spb_of(m);
	in->want = crp_alloc_buf(CRP_INTENT_BYTES);
	in->ondisk = crp_alloc_buf(CRP_INTENT_BYTES);
	in->active = g_hash_table_new_full(g_direct_hash, g_direct_equal, NULL, region_free);
	pthread_mutex_init(&in->mu, NULL);
	pthread_mutex_init(&in->wmu, NULL);
	/* Our log starts clean: whatever an earlier life of this slot left was
	 * resynced by its recovery before the slot was freed. */
	for (int k = 0; k < INTENT_BLOCKS && r == 0; k++)
		r = write_block(m, m->slot, k, zero, 0);
	free(zero);
	m->intent = in;
	crp_array_set_intent(m->a, &intent_ops, in);
	return r;
}

/*
 * Resync the stripes our failed transactions may have left half-written
 * (data and parity disagreeing: a lost session cut the writes), so that a
 * member lost later is not rebuilt from wrong parity.  A stripe that cannot
 * be resynced now (the members still away) stays, and so does its region's
 * bit in the log, for the next sweep or, should this host die, the
 * recovery.
 */
static int resync_suspects(struct crp_intent *in)
{
	GArray *todo = g_array_new(FALSE, FALSE, sizeof(uint64_t));
	GHashTableIter it;
	gpointer key, val;
	int r = 0;

	pthread_mutex_lock(&in->mu);
	g_hash_table_iter_init(&it, in->active);
	while (g_hash_table_iter_next(&it, &key, &val)) {
		struct region *rg = val;

		if (!rg->suspect || rg->inflight)
			continue;
		g_array_append_vals(todo, rg->suspect->data, rg->suspect->len);
		g_array_free(rg->suspect, TRUE);
		rg->suspect = NULL;
	}
	pthread_mutex_unlock(&in->mu);
	for (guint i = 0; i < todo->len; i++) {
		uint64_t s = g_array_index(todo, uint64_t, i);
		int e = crp_array_resync_stripe(in->m->a, s);

		if (e == 0) {
			crp_info("stripe %llu, which a failed write may have left half-written, "
				 "resynced", (unsigned long long)s);
			continue;
		}
		if (e == -CRP_EDEGRADED) {
			/* A column is out: parity cannot be recomputed, and
			 * what the failed write left cannot be told apart. */
			crp_warn("stripe %llu may have been left half-written by a failed write while "
				 "a member is out: it cannot be resynced; its blocks are checked "
				 "against their checksums when read", (unsigned long long)s);
			continue;
		}
		if (!r)
			r = e;
		/* Again next time. */
		pthread_mutex_lock(&in->mu);
		{
			struct region *rg = g_hash_table_lookup(in->active,
								GSIZE_TO_POINTER(s / in->spb));

			if (rg) {
				if (!rg->suspect)
					rg->suspect = g_array_new(FALSE, FALSE, sizeof(uint64_t));
				g_array_append_val(rg->suspect, s);
			}
		}
		pthread_mutex_unlock(&in->mu);
	}
	g_array_free(todo, TRUE);
	return r;
}

int crp_meta_intent_sweep(struct crp_meta *m, uint64_t idle_ns)
{
	struct crp_intent *in = m->intent;
	bool dirty[INTENT_BLOCKS] = { false }, any = false;
	GHashTableIter it;
	gpointer key, val;
	uint64_t now = crp_now_ns();
	int r = 0;

	if (!in)
		return 0;
	r = resync_suspects(in);
	if (r < 0)
		return r;
	/* Everything written so far must be on the media before its bit goes. */
	r = crp_array_sync(m->a);
	if (r < 0)
		return r;
	pthread_mutex_lock(&in->mu);
	g_hash_table_iter_init(&it, in->active);
	while (g_hash_table_iter_next(&it, &key, &val)) {
		struct region *rg = val;
		uint64_t bit = GPOINTER_TO_SIZE(key);

		if (rg->inflight || now - rg->last_ns < idle_ns || rg->suspect)
			continue;
		crp_bit_clear(in->want, bit);
		dirty[bit / CRP_BITS_PER_BLOCK] = true;
		any = true;
		g_hash_table_iter_remove(&it);
	}
	pthread_mutex_unlock(&in->mu);
	for (int k = 0; any && k < INTENT_BLOCKS; k++) {
		int e = dirty[k] ? flush_block(in, k) : 0;

		if (e < 0 && !r)
			r = e;
	}
	return r;
}

void crp_meta_intent_detach(struct crp_meta *m, bool clean)
{
	struct crp_intent *in = m->intent;

	if (!in)
		return;
	/* Clean close: the caller synced; nothing of ours is half-written
	 * once the suspect stripes are resynced.  Otherwise the log stays as
	 * it is, for the recovery. */
	if (clean && resync_suspects(in) < 0)
		clean = false;
	crp_array_set_intent(m->a, NULL, NULL);
	if (clean && crp_array_sync(m->a) == 0) {
		uint8_t *zero = crp_alloc_buf(CRP_PAYLOAD);

		for (int k = 0; zero && k < INTENT_BLOCKS; k++)
			write_block(m, m->slot, k, zero, ++in->seq);
		free(zero);
	}
	g_hash_table_destroy(in->active);
	pthread_mutex_destroy(&in->mu);
	pthread_mutex_destroy(&in->wmu);
	free(in->want);
	free(in->ondisk);
	free(in);
	m->intent = NULL;
}

/*
 * The write hole, closed by proof where it can be.  A stripe a dead host
 * was writing, with a data member out of service, cannot have its parity
 * recomputed (a column is missing): whether the parity matches the data
 * the dead host left is not known, and md would guess.  crpfs checks
 * instead: every block of the missing column, rebuilt from the parity and
 * the others, is checked against its own checksum (a data block against
 * its group's checksum table, a metadata block against its header, an
 * inode-table block record by record).  A block that verifies is proven:
 * the parity agreed.  One that does not is unprovable and reads will fail
 * with EIO rather than return a wrong block; one without a checksum (free
 * space, never written) says nothing.  Nothing is written.
 */
static void prove_stripe(struct crp_meta *m, uint64_t s, uint64_t *proven, uint64_t *unproven)
{
	const struct crp_geom *g = &m->geom;
	uint64_t per = g->chunk / CRP_BLOCK;
	uint8_t *blk = crp_alloc_buf(CRP_BLOCK);

	if (!blk)
		return;
	for (int d = 0; d < g->ndata; d++) {
		int mem = crp_geom_data_member(g, s, d);

		if (crp_array_readable(m->a, mem))
			continue;
		for (uint64_t k = 0; k < per; k++) {
			uint64_t b = (s * (uint64_t)g->ndata + (uint64_t)d) * per + k;
			bool alloc = false, any = false, ok = true;
			uint64_t csum = 0;

			if (b >= m->sb.total_blocks ||
			    crp_array_read(m->a, b * CRP_BLOCK, blk, CRP_BLOCK) < 0) {
				(*unproven)++;
				continue;
			}
			if (crp_meta_block_in_data_area(m, b)) {
				if (crp_meta_block_allocated(m, b, &alloc) < 0 || !alloc ||
				    crp_meta_csum_get(m, b, &csum) < 0 || !csum)
					continue; /* nothing to check it against */
				if (crp_data_csum(blk) == csum)
					(*proven)++;
				else
					(*unproven)++;
				continue;
			}
			if (b >= m->sb.itable_start &&
			    b < m->sb.itable_start + CRP_DIV_ROUND_UP(m->sb.inode_count, CRP_INODES_PER_BLOCK)) {
				for (unsigned i = 0; i < CRP_INODES_PER_BLOCK; i++) {
					struct crp_inode in;
					uint64_t ino = (b - m->sb.itable_start) * CRP_INODES_PER_BLOCK + i;
					int r = crp_inode_in(blk + (size_t)i * CRP_INODE_SIZE, ino, &in, NULL, 0);

					any |= r == 0;
					ok &= r >= 0;
				}
			} else if (crp_get_le32(blk) != 0) {
				any = true;
				ok = crp_block_csum_stored(blk) == crp_block_csum_compute(blk);
			}
			if (!any && ok)
				continue;
			if (ok)
				(*proven)++;
			else
				(*unproven)++;
		}
	}
	free(blk);
}

int crp_meta_intent_resync(struct crp_meta *m, int slot, uint64_t *resynced)
{
	uint64_t proven = 0, unproven = 0, degraded = 0;
	uint64_t spb = spb_of(m), count = 0;
	uint8_t *blk = crp_alloc_buf(CRP_BLOCK), *bits = crp_alloc_buf(CRP_PAYLOAD);
	uint8_t *zero = crp_alloc_buf(CRP_PAYLOAD);
	int n = crp_array_nmembers(m->a), r = 0;

	if (!blk || !bits || !zero) {
		r = -ENOMEM;
		goto out;
	}
	for (int k = 0; k < INTENT_BLOCKS && r == 0; k++) {
		bool found = false, damaged = false;

		/* The union of every valid copy: resyncing a stripe too many is
		 * harmless, missing one is not.  The copies are mirrors outside
		 * the RAID area: the other members' copies are the redundancy.
		 * If every copy is damaged (and not all simply never written),
		 * every region of the block is resynced. */
		memset(bits, 0, CRP_PAYLOAD);
		for (int i = 0; i < n; i++) {
			struct crp_member *mem = crp_array_member(m->a, i);
			struct crp_bhdr h;

			if (crp_member_failed(mem) ||
			    crp_member_read(mem, log_blkno(slot, k) * CRP_BLOCK, blk, CRP_BLOCK) < 0) {
				damaged = true;
				continue;
			}
			if (crp_bhdr_in(blk, CRP_MAGIC_INTENT, log_blkno(slot, k), m->fsid, &h, NULL, 0) ||
			    h.owner != (uint64_t)slot) {
				for (uint32_t j = 0; j < CRP_BLOCK && !damaged; j++)
					damaged = blk[j] != 0;
				continue;
			}
			found = true;
			for (uint32_t j = 0; j < CRP_PAYLOAD; j++)
				bits[j] |= blk[CRP_HDR_SIZE + j];
		}
		if (!found && damaged) {
			crp_warn("intent log block %d of host slot %d is damaged on every member: "
				 "resyncing every stripe it covers",
				 k, slot);
			memset(bits, 0xff, CRP_PAYLOAD);
		} else if (!found) {
			continue;
		}
		for (uint64_t j = 0; j < CRP_BITS_PER_BLOCK && r == 0; j++) {
			uint64_t bit = (uint64_t)k * CRP_BITS_PER_BLOCK + j;

			if (!crp_bit_test(bits, j))
				continue;
			for (uint64_t s = bit * spb; s < (bit + 1) * spb && s < m->geom.nstripes; s++) {
				r = crp_array_resync_stripe(m->a, s);
				if (r == -CRP_EDEGRADED) {
					/* A data column is out: prove what can be. */
					uint64_t p0 = unproven;

					prove_stripe(m, s, &proven, &unproven);
					degraded++;
					if (unproven > p0)
						crp_warn("stripe %llu (written by host slot %d when it died, a "
							 "member now out): %llu blocks of the missing column do not "
							 "match their checksums and will read as errors",
							 (unsigned long long)s, slot,
							 (unsigned long long)(unproven - p0));
					r = 0;
					continue;
				}
				if (r < 0)
					break;
				count++;
			}
		}
	}
	if (r == 0)
		r = crp_array_sync(m->a);
	for (int k = 0; k < INTENT_BLOCKS && r == 0; k++)
		r = write_block(m, slot, k, zero, 0);
	if (count)
		crp_warn("resynced %llu stripes from the intent log of host slot %d",
			 (unsigned long long)count, slot);
	if (degraded)
		crp_warn("%llu stripes in the intent log of host slot %d have a member out and "
			 "could not be resynced: %llu blocks of their missing columns proven by their "
			 "checksums, %llu not (those read as errors), the rest free or without a "
			 "checksum", (unsigned long long)degraded, slot, (unsigned long long)proven,
			 (unsigned long long)unproven);
out:
	if (resynced)
		*resynced = count;
	free(blk);
	free(bits);
	free(zero);
	return r;
}
