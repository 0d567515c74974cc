/*
 * Scrub: every stripe in use read whole, its parity and every block's own
 * checksum checked, the wrong column found and, when asked, rewritten;
 * online, while every host reads and writes.
 *
 * The pass.  Stripes go by in order.  One whose blocks are all free in the
 * group bitmaps (read without a lock, a second old at most) and outside
 * the fixed metadata regions is skipped.  The others go in runs of up to
 * SCRUB_BATCH consecutive stripes: under the locks of every writable
 * member (crp_array_hold_all, as a rebuild takes them) each member's
 * chunks of the run are read in one command, together with the blocks the
 * judgement needs from elsewhere (the group bitmaps and checksum-table
 * blocks that cover the run, the inode-bitmap blocks that cover its inode
 * table blocks), all in that one hold; then the locks go and the run is
 * judged in memory:
 *
 *   parity   P (and Q) recomputed from the data as read, compared;
 *   blocks   a block the bitmap marks allocated and whose checksum-table
 *            entry is not 0 must hash to it, or be a metadata block of the
 *            data area (extent, directory, xattr: the common header with
 *            its own block number and this filesystem's fsid) whose header
 *            checksum holds; a block of a fixed region has its own type
 *            (superblock, shared state, journal header, orphan list, open
 *            table, bitmaps, checksum table) and checksum; an inode-table
 *            block is judged record by record, an all-zero record being
 *            right only if the inode bitmap has it free.  Journal ring
 *            blocks hold copies of other blocks and, after a crash, a torn
 *            tail that replay ignores by design: one that presents our
 *            header with a bad checksum is only a hint for finding the bad
 *            column, reported when parity puts it right.  Free blocks, and
 *            allocated ones with entry 0 (fallocated, never written), have
 *            nothing to check but the parity.
 *
 * Anything that does not check out is judged again, stripe by stripe,
 * under the metadata lock as well (crp_meta_tx_begin: no operation of any
 * host is under way, and a transaction a dead host left half-written in
 * place is redone first), then under the locks of every member: read
 * whole again, with its bitmaps and checksum tables, and judged again.
 * Only what fails there is counted and reported, and repaired in that same
 * hold, then read back and judged once more.
 *
 * Why what is reported is not a false alarm.  Every check compares bytes
 * read in one hold of every member's lock: no stripe transaction of any
 * host is half way meanwhile, and none starts, so the stripe, the bitmap
 * bit and the checksum entry are one instant of the disks, never a cached
 * copy another host may have changed.  The races a writer brings:
 *
 *   - Copy-on-write: new data goes to blocks the bitmap on the disks
 *     still shows free until the transaction commits; free blocks are not
 *     judged.  A block is never overwritten while a committed transaction
 *     references it, so an allocated block's data and its entry change
 *     only together, in one transaction.
 *   - A block freed and reused between a read of its data and a read of
 *     its entry: there is no between; both come from the same hold.
 *   - The transaction itself: its blocks reach their places one stripe
 *     transaction at a time (bitmap, checksum table, extents), so an
 *     instant taken half way could show a bit set whose entry is not
 *     there yet.  No live host is half way while we hold every member's
 *     lock: every operation of a host, its data writes included, runs
 *     from start to commit under its metadata lock, which is the
 *     reservation of members 0..tolerance, and our hold takes those too.
 *     What the first look can meet is a transaction that a host which died
 *     left half-written in place (the shared state block says PENDING).
 *     The confirming pass takes the metadata lock itself, whose tx_begin
 *     redoes such a transaction before anything is judged again; a journal
 *     a survivor has yet to replay holds only transactions that never
 *     reached their places (replay applies those newer than the shared
 *     generation), so the disks hold committed state.
 *   - Fallocated blocks are allocated with their entry set to 0
 *     (crp_meta_alloc), and a write into one sets the entry in the same
 *     transaction that marks the extent written: such a block has no
 *     checksum until then, whatever a crashed writer left in it.
 *   - A stripe a dead host left half-written (the write hole) shows a
 *     parity mismatch until a survivor resyncs it from that host's intent
 *     log: a real mismatch, found and put right the same way.  So is an
 *     open-table block a host died writing (they are written in place,
 *     outside the journal) until its recoverer writes the table empty.
 *
 * Finding the bad column.  Members not read (out of service, or a chunk
 * the member could not read) are erased from the start.  With F the
 * members holding blocks that fail: rebuild F (and the erased) from the
 * others; if every checksummed block of the stripe then holds, that is
 * the bad column.  RAID-6 tries F with one more column when that is not
 * enough (a data chunk and P both wrong), and any two when two members
 * hold failing blocks.  When every block holds as read and only the
 * parity does not, the parity is the bad column.  RAID-6 also locates a
 * single bad column from P and Q (the syndrome: for a wrong data chunk z,
 * Q's error is g^z times P's at every byte); the checksums decide, and a
 * syndrome that names another column is reported.  A block that fails
 * while the parity agrees with it (both wrong the same way) cannot be put
 * right from parity: unrecoverable, never rewritten with a guess.
 *
 * Repairs are plain writes under the held locks, outside the intent log:
 * a crash half way leaves the chunk as it was or right, and the parity as
 * it was, which is what the next scrub needs to find it again (a resync
 * from the data would make the wrong chunk the truth).  A stripe with a
 * member being rebuilt is not repaired: the rebuild computes that member
 * from the others, wrong chunk included, so it is reported and left for a
 * scrub after the rebuild.
 *
 * The scrub is recorded in the member table (scrubber, the time and
 * stripe of its last checkpoint) at the start, every checkpoint_ns and at
 * the end, as a rebuild records its own, so that crpfs status on any host
 * shows it.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "crpfs/err.h"
#include "crpfs/log.h"
#include "crpfs/parity.h"
#include "crpfs/scrub.h"
#include "crpfs/util.h"
#include "meta_i.h"

#define SCRUB_BATCH 8			/* stripes read under one hold */
#define SCRUB_BATCH_BYTES (4u << 20)	/* ... and at most this much */
#define PRE_MAX_AGE_NS 1000000000ull	/* the unlocked bitmap used for skipping */
#define SAY_PER_STRIPE 8		/* problems named one by one in a stripe */
#define HOLD_TRIES 3			/* a run whose locks were lost: read again */

#define BIT(m) (1ull << (m))

enum verdict {
	V_NONE,	/* nothing to judge: free, or no checksum */
	V_OK,
	V_DATA,	/* a data block failing its checksum */
	V_META,	/* a metadata block (or inode record) failing its own */
	V_SOFT,	/* a journal ring block with our header and a bad checksum */
};

/* A block read with a run for the judgement: a group bitmap, a block of a
 * checksum table or of the inode bitmap. */
struct lkb {
	uint64_t blkno;
	uint32_t magic;
	bool ok;		/* verified: as read, or rebuilt from parity */
	uint8_t *buf;
	struct crp_loc loc;
	bool sent;
	struct crp_cmd cmd;
};

/* Stripes [s0, s0 + k) read whole under one hold. */
struct run {
	uint64_t s0;
	uint32_t k;
	uint8_t *col[CRP_MAX_MEMBERS];	/* k chunks of each member */
	int err[CRP_MAX_MEMBERS];	/* the member's read error (0: read) */
	uint64_t out;			/* members not read: out of service, or err */
	struct lkb *lk;
	int nlk, caplk;
};

/* One stripe of a run. */
struct view {
	uint64_t s;
	int pm, qm;
	uint8_t *colp[CRP_MAX_MEMBERS];	/* by member; NULL: not read */
	void *data[CRP_MAX_MEMBERS];	/* by data index */
	uint64_t out, medium;		/* members not read; of them, read errors */
	uint64_t rebuilding;		/* members written but not read */
};

struct result {
	bool in_use, degraded;
	bool p_bad, q_bad;
	uint32_t ndata, nmeta, nsoft, nchecked;
	uint64_t hard;	/* members holding blocks that fail (data, metadata) */
	uint64_t soft;	/* members holding journal ring blocks that fail */
};

struct scrub {
	struct crp_meta *m;
	struct crp_array *a;
	const struct crp_geom *g;
	const struct crp_sb *sb;
	const struct crp_scrub_opts *o;
	struct crp_scrub_counts *c;
	int n, tol;
	uint32_t cpb, spb, kmax, kcur;	/* stripes a run: at most, next (CRP_HOLD_ALL_NS) */
	struct run run;
	uint8_t *sp, *sq;		/* parity recomputed: a chunk each */
	uint8_t *fix[CRP_MAX_MEMBERS];	/* columns rebuilt while locating */
	uint8_t *best[CRP_MAX_MEMBERS];	/* the corrected columns of the plan */
	uint8_t gflog[256];
	uint64_t released_ns, held_ns;	/* the last hold of every member's lock */
	/* The bitmap of one group read without locks, for skipping. */
	uint8_t *pre;
	int64_t pre_g;
	bool pre_ok;
	uint64_t pre_ns;
};

static void say(struct scrub *sc, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void say(struct scrub *sc, const char *fmt, ...)
{
	char msg[512];
	va_list ap;

	if (!sc->o || !sc->o->say)
		return;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	sc->o->say(sc->o->ctx, msg);
}

static const char *mspec(struct scrub *sc, int m)
{
	return crp_member_spec(crp_array_member(sc->a, m));
}

/* ---- where a block lies, and what it is ---- */

static uint64_t ag_base(const struct scrub *sc, uint32_t g)
{
	return sc->sb->ag_start + (uint64_t)g * sc->sb->ag_blocks;
}

/* Group and index of a block of the groups' area. */
static void ag_of(const struct scrub *sc, uint64_t blk, uint32_t *g, uint32_t *i)
{
	*g = (uint32_t)((blk - sc->sb->ag_start) / sc->sb->ag_blocks);
	*i = (uint32_t)((blk - sc->sb->ag_start) % sc->sb->ag_blocks);
}

static bool in_itable(const struct scrub *sc, uint64_t blk)
{
	return blk >= sc->sb->itable_start && blk < sc->sb->ag_start;
}

static struct lkb *lk_find(struct run *r, uint64_t blkno)
{
	for (int i = 0; i < r->nlk; i++)
		if (r->lk[i].blkno == blkno)
			return &r->lk[i];
	return NULL;
}

static int lk_add(struct scrub *sc, struct run *r, uint64_t blkno, uint32_t magic)
{
	struct lkb *l;

	if (lk_find(r, blkno))
		return 0;
	if (r->nlk == r->caplk) {
		int cap = r->caplk ? r->caplk * 2 : 16;
		struct lkb *nl = realloc(r->lk, (size_t)cap * sizeof(*nl));

		if (!nl)
			return -ENOMEM;
		memset(nl + r->caplk, 0, (size_t)(cap - r->caplk) * sizeof(*nl));
		r->lk = nl;
		r->caplk = cap;
	}
	l = &r->lk[r->nlk];
	if (!l->buf) {
		l->buf = crp_alloc_buf(CRP_BLOCK);
		if (!l->buf)
			return -ENOMEM;
	}
	l->blkno = blkno;
	l->magic = magic;
	l->ok = false;
	l->sent = false;
	crp_geom_map(sc->g, blkno * CRP_BLOCK, &l->loc);
	r->nlk++;
	return 0;
}

/* Allocation state of @blk: 1 allocated, 0 free, -1 unknown (its bitmap
 * does not check out).  Blocks outside the groups' data areas are in use.
 * With @r, from the bitmaps read with the run; without, from the
 * unlocked copy (pre). */
static int alloc_state(struct scrub *sc, struct run *r, uint64_t blk)
{
	const struct crp_sb *sb = sc->sb;
	uint32_t g, i;
	const uint8_t *bits;

	if (blk >= sb->total_blocks)
		return 0;
	if (blk < sb->ag_start)
		return 1;
	ag_of(sc, blk, &g, &i);
	if (i < CRP_AG_META_BLOCKS)
		return 1;
	if (r) {
		struct lkb *l = lk_find(r, ag_base(sc, g));

		if (!l || !l->ok)
			return -1;
		bits = l->buf + CRP_HDR_SIZE;
	} else {
		if (sc->pre_g != (int64_t)g) {
			sc->pre_g = g;
			sc->pre_ns = crp_now_ns();
			sc->pre_ok = crp_array_read(sc->a, ag_base(sc, g) * CRP_BLOCK, sc->pre,
						    CRP_BLOCK) == 0 &&
				     crp_bhdr_in(sc->pre, CRP_MAGIC_BITMAP, ag_base(sc, g),
						 sc->m->fsid, &(struct crp_bhdr){ 0 }, NULL, 0) == 0;
		}
		if (!sc->pre_ok)
			return -1;
		bits = sc->pre + CRP_HDR_SIZE;
	}
	return crp_bit_test(bits, i) ? 1 : 0;
}

static bool stripe_in_use(struct scrub *sc, struct run *r, uint64_t s)
{
	uint64_t b0 = s * sc->spb;

	if (!r && crp_now_ns() - sc->pre_ns > PRE_MAX_AGE_NS)
		sc->pre_g = -1; /* read the bitmap again */

	for (uint64_t b = b0; b < b0 + sc->spb && b < sc->sb->total_blocks; b++)
		if (alloc_state(sc, r, b) != 0)
			return true;
	return false;
}

/* A block that presents the common header of this filesystem with one of
 * @magics (and block number @blkno, unless UINT64_MAX): -1 if it does not,
 * 0 if its checksum holds, 1 if not. */
static int self_check(const struct scrub *sc, const uint8_t *b, const uint32_t *magics, int n,
		      uint64_t blkno)
{
	uint32_t mg = crp_get_le32(b);
	bool known = false;

	for (int i = 0; i < n; i++)
		known |= mg == magics[i];
	if (!known || crp_get_le16(b + 4) != CRP_ONDISK_VERSION ||
	    crp_get_le64(b + 24) != sc->m->fsid)
		return -1;
	if (blkno != UINT64_MAX && crp_get_le64(b + 16) != blkno)
		return -1;
	return crp_block_csum_stored(b) == crp_block_csum_compute(b) ? 0 : 1;
}

static const uint32_t data_area_magics[] = { CRP_MAGIC_EXTENT, CRP_MAGIC_DIR, CRP_MAGIC_XATTR };
static const uint32_t ring_magics[] = {
	CRP_MAGIC_JHDR,	  CRP_MAGIC_JDESC,  CRP_MAGIC_JCOMMIT, CRP_MAGIC_ORPHAN,
	CRP_MAGIC_BITMAP, CRP_MAGIC_IBITMAP, CRP_MAGIC_CSUM,   CRP_MAGIC_EXTENT,
	CRP_MAGIC_DIR,	  CRP_MAGIC_XATTR,  CRP_MAGIC_SHARED,  CRP_MAGIC_OPENTAB,
};

static enum verdict typed(const struct scrub *sc, const uint8_t *b, uint32_t magic, uint64_t blk)
{
	struct crp_bhdr h;

	return crp_bhdr_in(b, magic, blk, sc->m->fsid, &h, NULL, 0) == 0 ? V_OK : V_META;
}

static enum verdict judge_itable(struct scrub *sc, struct run *r, uint64_t blk, const uint8_t *b)
{
	uint64_t ino0 = (blk - sc->sb->itable_start) * CRP_INODES_PER_BLOCK;
	struct crp_inode in;

	for (uint32_t k = 0; k < CRP_INODES_PER_BLOCK; k++) {
		uint64_t ino = ino0 + k;
		int rc;

		if (ino >= sc->sb->inode_count)
			break;
		rc = crp_inode_in(b + (size_t)k * CRP_INODE_SIZE, ino, &in, NULL, 0);
		if (rc < 0)
			return V_META;
		if (rc == 1 && ino > 0) {
			/* Never used: right only if the inode bitmap has it free. */
			struct lkb *l = lk_find(r, sc->sb->ibitmap_start + ino / CRP_BITS_PER_BLOCK);

			if (l && l->ok &&
			    crp_bit_test(l->buf + CRP_HDR_SIZE, ino % CRP_BITS_PER_BLOCK))
				return V_META;
		}
	}
	return V_OK;
}

static enum verdict judge_data_area(struct scrub *sc, struct run *r, uint64_t blk,
				    const uint8_t *b)
{
	int st = alloc_state(sc, r, blk), mv;
	uint64_t entry = 0;
	bool known = false;
	uint32_t g, i;

	if (st == 0)
		return V_NONE;
	ag_of(sc, blk, &g, &i);
	if (st == 1) {
		struct lkb *l = lk_find(r, ag_base(sc, g) + 1 + i / CRP_CSUMS_PER_BLOCK);

		if (l && l->ok) {
			entry = crp_get_le64(l->buf + CRP_HDR_SIZE + 8 * (i % CRP_CSUMS_PER_BLOCK));
			known = true;
		}
	}
	if (known && entry && crp_data_csum(b) == entry)
		return V_OK;
	mv = self_check(sc, b, data_area_magics, (int)CRP_ARRAY_SIZE(data_area_magics), blk);
	if (mv >= 0)
		return mv ? V_META : V_OK;
	return known && entry ? V_DATA : V_NONE;
}

/* What block @blk, holding @b, is, and whether it checks out. */
static enum verdict judge(struct scrub *sc, struct run *r, uint64_t blk, const uint8_t *b)
{
	const struct crp_sb *sb = sc->sb;
	uint64_t jend = sb->journal_start + (uint64_t)sb->max_hosts * sb->journal_blocks;
	uint64_t oend = sb->otable_start + (uint64_t)sb->max_hosts * sb->otable_blocks;
	uint32_t g, i;

	if (blk >= sb->total_blocks)
		return V_NONE;
	if (blk == 0) {
		struct crp_sb s;

		if (crp_sb_in(b, &s, NULL, 0) < 0)
			return V_META;
		for (uint32_t k = CRP_SB_SIZE; k < CRP_BLOCK; k++)
			if (b[k])
				return V_META;
		return V_OK;
	}
	if (blk == CRP_SHARED_BLKNO) {
		struct crp_shared *s = malloc(sizeof(*s));
		enum verdict v = s && crp_shared_in(b, sc->m->fsid, s, NULL, 0) == 0 ? V_OK : V_META;

		free(s);
		return v;
	}
	if (blk >= sb->journal_start && blk < jend) {
		uint64_t k = (blk - sb->journal_start) % sb->journal_blocks;
		int mv;

		if (k == 0)
			return typed(sc, b, CRP_MAGIC_JHDR, blk);
		if (k == 1)
			return typed(sc, b, CRP_MAGIC_ORPHAN, blk);
		mv = self_check(sc, b, ring_magics, (int)CRP_ARRAY_SIZE(ring_magics), UINT64_MAX);
		return mv < 0 ? V_NONE : mv ? V_SOFT : V_OK;
	}
	if (blk >= sb->otable_start && blk < oend)
		return typed(sc, b, CRP_MAGIC_OPENTAB, blk);
	if (blk >= sb->ibitmap_start && blk < sb->ibitmap_start + sb->ibitmap_blocks)
		return typed(sc, b, CRP_MAGIC_IBITMAP, blk);
	if (in_itable(sc, blk))
		return judge_itable(sc, r, blk, b);
	if (blk < sb->ag_start)
		return V_NONE; /* between regions: nothing there */
	ag_of(sc, blk, &g, &i);
	if (i == 0)
		return typed(sc, b, CRP_MAGIC_BITMAP, blk);
	if (i < CRP_AG_META_BLOCKS)
		return typed(sc, b, CRP_MAGIC_CSUM, blk);
	return judge_data_area(sc, r, blk, b);
}

/* ---- reading a run under the locks ---- */

/* The blocks the judgement of [s0, s0 + k) needs from elsewhere. */
static int run_lookups(struct scrub *sc, struct run *r)
{
	uint64_t b0 = r->s0 * sc->spb, b1 = b0 + (uint64_t)r->k * sc->spb;
	const struct crp_sb *sb = sc->sb;
	int e = 0;

	r->nlk = 0;
	b1 = CRP_MIN(b1, sb->total_blocks);
	for (uint64_t b = b0; b < b1 && !e; b++) {
		uint32_t g, i;

		if (in_itable(sc, b)) {
			e = lk_add(sc, r, sb->ibitmap_start + (b - sb->itable_start) *
					  CRP_INODES_PER_BLOCK / CRP_BITS_PER_BLOCK, CRP_MAGIC_IBITMAP);
			continue;
		}
		if (b < sb->ag_start)
			continue;
		ag_of(sc, b, &g, &i);
		if (i < CRP_AG_META_BLOCKS)
			continue;
		e = lk_add(sc, r, ag_base(sc, g), CRP_MAGIC_BITMAP);
		if (!e)
			e = lk_add(sc, r, ag_base(sc, g) + 1 + i / CRP_CSUMS_PER_BLOCK, CRP_MAGIC_CSUM);
	}
	return e;
}

static bool lk_verify(struct scrub *sc, const struct lkb *l)
{
	struct crp_bhdr h;

	return crp_bhdr_in(l->buf, l->magic, l->blkno, sc->m->fsid, &h, NULL, 0) == 0;
}

/*
 * Under the held locks: read every readable member's chunks of the run
 * and the lookup blocks in one round.  A member that cannot read its part
 * is out for the run (r->err); a lookup block that does not check out is
 * rebuilt from the rest of its stripe (in memory only: it is judged, and
 * repaired, when the scrub comes to its own stripe).  Errors that are not
 * the member's (a lost lock, a timeout) are returned.
 */
static int run_read(struct scrub *sc, struct run *r)
{
	struct crp_cmd cmds[CRP_MAX_MEMBERS];
	bool sent[CRP_MAX_MEMBERS] = { false };
	uint32_t len = r->k * sc->g->chunk;
	struct crp_batch b;
	int rc = 0;

	r->out = 0;
	crp_batch_init(&b);
	for (int m = 0; m < sc->n; m++) {
		struct crp_member *mem = crp_array_member(sc->a, m);
		uint32_t bs = crp_member_block_size(mem);
		struct crp_cmd *c = &cmds[m];

		r->err[m] = 0;
		if (!crp_array_readable(sc->a, m)) {
			r->out |= BIT(m);
			continue;
		}
		crp_cmd_init(c);
		crp_cdb_read16(c, crp_geom_member_off(sc->g, r->s0, 0) / bs, len / bs, r->col[m], len);
		crp_batch_add(&b, c);
		crp_member_submit(mem, &c, 1);
		sent[m] = true;
	}
	for (int i = 0; i < r->nlk; i++) {
		struct lkb *l = &r->lk[i];
		struct crp_member *mem = crp_array_member(sc->a, l->loc.member);
		uint32_t bs = crp_member_block_size(mem);
		struct crp_cmd *c = &l->cmd;

		l->ok = false;
		l->sent = false;
		if (!crp_array_readable(sc->a, l->loc.member))
			continue;
		crp_cmd_init(c);
		crp_cdb_read16(c, l->loc.member_off / bs, CRP_BLOCK / bs, l->buf, CRP_BLOCK);
		crp_batch_add(&b, c);
		crp_member_submit(mem, &c, 1);
		l->sent = true;
	}
	crp_batch_wait(&b);
	crp_batch_destroy(&b);
	crp_array_note_failures(sc->a);
	for (int m = 0; m < sc->n; m++) {
		int e = sent[m] ? cmds[m].result : 0;

		if (!sent[m] || e == 0)
			continue;
		if (e != -CRP_EMEDIUM && e != -CRP_EMEMBER && crp_array_readable(sc->a, m)) {
			if (!rc)
				rc = e;
			continue;
		}
		r->err[m] = e;
		r->out |= BIT(m);
	}
	for (int m = 0; m < sc->n; m++)
		if (sent[m] && !r->err[m])
			sc->c->bytes_read += len;
	if (rc)
		return rc;
	for (int i = 0; i < r->nlk; i++) {
		struct lkb *l = &r->lk[i];

		if (l->sent && l->cmd.result == 0 && lk_verify(sc, l)) {
			l->ok = true;
			continue;
		}
		if (crp_array_reconstruct(sc->a, l->loc.stripe, l->loc.member, l->loc.chunk_off,
					  CRP_BLOCK, l->buf) == 0)
			l->ok = lk_verify(sc, l);
	}
	return 0;
}

/* Read the run [s0, s0 + k) under a hold of every member's lock; the
 * caller holds the metadata lock or not.  A hold broken meanwhile: again. */
static int run_hold_read(struct scrub *sc, struct run *r, uint64_t s0, uint32_t k)
{
	int rc = 0;

	r->s0 = s0;
	r->k = k;
	rc = run_lookups(sc, r);
	for (int t = 0; rc == 0 && t < HOLD_TRIES; t++) {
		uint64_t now = crp_now_ns(), due = sc->released_ns + sc->held_ns / 2;
		int e;

		/* Leave the members to the other hosts a while between holds
		 * (half as long as the last one, the judging included): in
		 * reserve mode a hold stops their reads too, and back to back
		 * holds would starve their writes and heartbeats. */
		if (due > now)
			crp_sleep_ns(due - now);
		rc = crp_array_hold_all(sc->a);
		if (rc < 0)
			break;
		now = crp_now_ns();
		rc = run_read(sc, r);
		e = crp_array_release_all(sc->a);
		sc->released_ns = crp_now_ns();
		sc->held_ns = sc->released_ns - now;
		if (rc == 0 && e == 0)
			return 0;
		rc = rc ? rc : e;
		if (rc != -CRP_ELOCKLOST && rc != -CRP_ECONFLICT)
			break;
	}
	return rc;
}

/* ---- judging one stripe ---- */

static void view_of(struct scrub *sc, struct run *r, uint32_t j, struct view *v)
{
	memset(v, 0, sizeof(*v));
	v->s = r->s0 + j;
	crp_geom_parity(sc->g, v->s, &v->pm, &v->qm);
	v->out = r->out;
	for (int m = 0; m < sc->n; m++) {
		int role = crp_geom_role(sc->g, v->s, m);

		v->colp[m] = r->out & BIT(m) ? NULL : r->col[m] + (size_t)j * sc->g->chunk;
		if (role >= 0)
			v->data[role] = r->out & BIT(m) ? (void *)sc->fix[m] : (void *)v->colp[m];
		if (r->err[m] == -CRP_EMEDIUM)
			v->medium |= BIT(m);
		if (crp_array_writable(sc->a, m) && !crp_array_readable(sc->a, m))
			v->rebuilding |= BIT(m);
	}
}

/* The blocks of data member @m's chunk of stripe @s, held in @chunk:
 * judged; the failing ones counted in @res (if not NULL).  Returns true
 * if none fails (soft failures count when @soft). */
static bool judge_chunk(struct scrub *sc, struct run *r, uint64_t s, int m, const uint8_t *chunk,
			struct result *res, bool soft)
{
	int d = crp_geom_role(sc->g, s, m);
	uint64_t b0 = s * sc->spb + (uint64_t)d * sc->cpb;
	bool clean = true;

	if (d < 0)
		return true;
	for (uint32_t i = 0; i < sc->cpb; i++) {
		enum verdict v = judge(sc, r, b0 + i, chunk + (size_t)i * CRP_BLOCK);

		if (v == V_DATA || v == V_META || (soft && v == V_SOFT))
			clean = false;
		if (!res)
			continue;
		res->nchecked += v != V_NONE && v != V_SOFT;
		if (v == V_DATA) {
			res->ndata++;
			res->hard |= BIT(m);
		} else if (v == V_META) {
			res->nmeta++;
			res->hard |= BIT(m);
		} else if (v == V_SOFT) {
			res->nsoft++;
			res->soft |= BIT(m);
		}
	}
	return clean;
}

static void parity_of(struct scrub *sc, void *const *data)
{
	if (sc->g->level == 6)
		crp_parity_pq(sc->g->ndata, sc->g->chunk, data, sc->sp, sc->sq);
	else
		crp_parity_p(sc->g->ndata, sc->g->chunk, data, sc->sp);
}

static void evaluate(struct scrub *sc, struct run *r, struct view *v, struct result *res)
{
	memset(res, 0, sizeof(*res));
	res->in_use = stripe_in_use(sc, r, v->s);
	if (!res->in_use)
		return;
	/* Degraded: a member out of service.  A chunk its member could not
	 * read is no such thing: it is rebuilt and judged when settled. */
	res->degraded = (v->out & ~v->medium) != 0;
	for (int m = 0; m < sc->n; m++)
		if (!(v->out & BIT(m)))
			judge_chunk(sc, r, v->s, m, v->colp[m], res, true);
	if (v->out)
		return; /* nothing to check the parity against */
	parity_of(sc, v->data);
	res->p_bad = memcmp(sc->sp, v->colp[v->pm], sc->g->chunk) != 0;
	if (v->qm >= 0)
		res->q_bad = memcmp(sc->sq, v->colp[v->qm], sc->g->chunk) != 0;
}

static bool clean(const struct view *v, const struct result *res)
{
	return !res->in_use || (!res->p_bad && !res->q_bad && !res->hard && !res->soft &&
				!v->medium);
}

/* ---- finding the bad column ---- */

/* RAID-6, every member read: the one column P and Q name (a member), -1 if
 * they agree with the data, -2 if no single column explains them.  Call
 * after evaluate (sc->sp, sc->sq hold the recomputed parity). */
static int syndrome(struct scrub *sc, const struct view *v, const struct result *res)
{
	const uint8_t *p = v->colp[v->pm], *q = v->colp[v->qm];
	int z = -1;

	if (!res->p_bad && !res->q_bad)
		return -1;
	if (!res->q_bad)
		return v->pm;
	if (!res->p_bad)
		return v->qm;
	for (uint32_t i = 0; i < sc->g->chunk; i++) {
		uint8_t a = p[i] ^ sc->sp[i], b = q[i] ^ sc->sq[i];
		int zi;

		if (!a && !b)
			continue;
		if (!a || !b)
			return -2;
		zi = (sc->gflog[b] - sc->gflog[a] + 255) % 255;
		if (z >= 0 && zi != z)
			return -2;
		z = zi;
	}
	if (z < 0 || z >= sc->g->ndata)
		return -2;
	return crp_geom_data_member(sc->g, v->s, z);
}

static int role_index(const struct scrub *sc, const struct view *v, int m)
{
	int role = crp_geom_role(sc->g, v->s, m);

	return role == CRP_ROLE_P ? sc->g->ndata : role == CRP_ROLE_Q ? sc->g->ndata + 1 : role;
}

/*
 * Rebuild the members in @E from the others into sc->fix and judge every
 * rebuilt data chunk: true if all of them check out.  The members outside
 * @E must hold no failing block (@F, the members that do, within @E).
 */
static bool try_set(struct scrub *sc, struct run *r, struct view *v, uint64_t E, uint64_t F,
		    bool soft)
{
	void *data[CRP_MAX_MEMBERS];
	uint8_t *p, *q = NULL;
	int fail[2], nfail = 0;

	if ((F & ~E) || __builtin_popcountll(E) > sc->tol || !E)
		return false;
	for (int m = 0; m < sc->n; m++) {
		if (!(E & BIT(m)))
			continue;
		fail[nfail++] = role_index(sc, v, m);
	}
	for (int d = 0; d < sc->g->ndata; d++) {
		int m = crp_geom_data_member(sc->g, v->s, d);

		data[d] = E & BIT(m) ? (void *)sc->fix[m] : v->data[d];
	}
	p = E & BIT(v->pm) ? sc->fix[v->pm] : v->colp[v->pm];
	if (v->qm >= 0)
		q = E & BIT(v->qm) ? sc->fix[v->qm] : v->colp[v->qm];
	if (crp_parity_rebuild(sc->g->ndata, sc->g->chunk, data, p, q, fail, nfail) < 0)
		return false;
	for (int m = 0; m < sc->n; m++)
		if ((E & BIT(m)) && !judge_chunk(sc, r, v->s, m, sc->fix[m], NULL, soft))
			return false;
	return true;
}

struct plan {
	bool found;
	bool ambiguous;
	uint64_t erased;	/* the set rebuilt (sc->best holds its data chunks) */
	uint64_t write;		/* members to rewrite */
};

/* Keep the data chunks of @E (in sc->fix) as the plan, or find that they
 * disagree with the plan kept. */
static void keep(struct scrub *sc, struct view *v, struct plan *pl, uint64_t E)
{
	if (!pl->found) {
		pl->found = true;
		pl->erased = E;
		for (int m = 0; m < sc->n; m++)
			if ((E & BIT(m)) && crp_geom_role(sc->g, v->s, m) >= 0)
				memcpy(sc->best[m], sc->fix[m], sc->g->chunk);
		return;
	}
	for (int m = 0; m < sc->n; m++) {
		int role = crp_geom_role(sc->g, v->s, m);
		const uint8_t *mine, *kept;

		if (role < 0)
			continue;
		mine = E & BIT(m) ? sc->fix[m] : v->colp[m];
		kept = pl->erased & BIT(m) ? sc->best[m] : v->colp[m];
		if (!mine || !kept || memcmp(mine, kept, sc->g->chunk)) {
			pl->ambiguous = true;
			return;
		}
	}
}

/* The sets to try for the failing members @F: @F and the erased; on
 * RAID-6, one more column if that is not enough. */
static void locate_with(struct scrub *sc, struct run *r, struct view *v, uint64_t F, bool soft,
			struct plan *pl)
{
	uint64_t E = F | v->out;

	memset(pl, 0, sizeof(*pl));
	if (try_set(sc, r, v, E, F, soft)) {
		keep(sc, v, pl, E);
		return;
	}
	if (__builtin_popcountll(E) >= sc->tol)
		return;
	for (int x = 0; x < sc->n && !pl->ambiguous; x++)
		if (!(E & BIT(x)) && try_set(sc, r, v, E | BIT(x), F, soft))
			keep(sc, v, pl, E | BIT(x));
}

/* The columns the plan changes: data chunks rebuilt that differ from what
 * was read, parity recomputed from the corrected data that differs, and
 * chunks a member could not read. */
static void plan_writes(struct scrub *sc, struct view *v, struct plan *pl)
{
	void *data[CRP_MAX_MEMBERS];

	pl->write = 0;
	for (int d = 0; d < sc->g->ndata; d++) {
		int m = crp_geom_data_member(sc->g, v->s, d);

		data[d] = pl->erased & BIT(m) ? (void *)sc->best[m] : v->data[d];
	}
	parity_of(sc, data);
	for (int m = 0; m < sc->n; m++) {
		int role = crp_geom_role(sc->g, v->s, m);
		const uint8_t *now = role == CRP_ROLE_P ? sc->sp : role == CRP_ROLE_Q ? sc->sq :
				     data[role];

		if (v->out & BIT(m) & ~v->medium)
			continue; /* out of service: not written here */
		if ((v->medium & BIT(m)) || memcmp(now, v->colp[m], sc->g->chunk))
			pl->write |= BIT(m);
	}
}

static const uint8_t *plan_col(struct scrub *sc, struct view *v, struct plan *pl, int m)
{
	int role = crp_geom_role(sc->g, v->s, m);

	if (role == CRP_ROLE_P)
		return sc->sp;
	if (role == CRP_ROLE_Q)
		return sc->sq;
	return pl->erased & BIT(m) ? sc->best[m] : v->colp[m];
}

/* What block @blk is, for messages. */
static const char *kind_of(const struct scrub *sc, uint64_t blk, const uint8_t *b)
{
	const struct crp_sb *sb = sc->sb;
	uint32_t g, i;

	if (blk == 0)
		return "superblock";
	if (blk == CRP_SHARED_BLKNO)
		return "shared state block";
	if (blk < sb->otable_start) {
		uint64_t k = (blk - sb->journal_start) % sb->journal_blocks;

		return k == 0 ? "journal header" : k == 1 ? "orphan list" : "journal block";
	}
	if (blk < sb->ibitmap_start)
		return "open table block";
	if (blk < sb->itable_start)
		return "inode bitmap block";
	if (blk < sb->ag_start)
		return "inode table block";
	ag_of(sc, blk, &g, &i);
	if (i == 0)
		return "group bitmap";
	if (i < CRP_AG_META_BLOCKS)
		return "checksum table block";
	switch (crp_get_le32(b)) {
	case CRP_MAGIC_DIR:
		return "directory block";
	case CRP_MAGIC_EXTENT:
		return "extent block";
	case CRP_MAGIC_XATTR:
		return "xattr block";
	default:
		return "metadata block";
	}
}

/* Name the failing blocks of the stripe, as read. */
static void say_blocks(struct scrub *sc, struct run *r, struct view *v, bool soft)
{
	int said = 0;

	for (int m = 0; m < sc->n && said < SAY_PER_STRIPE; m++) {
		int d = crp_geom_role(sc->g, v->s, m);
		uint64_t b0;

		if (d < 0 || (v->out & BIT(m)))
			continue;
		b0 = v->s * sc->spb + (uint64_t)d * sc->cpb;
		for (uint32_t i = 0; i < sc->cpb && said < SAY_PER_STRIPE; i++) {
			enum verdict vd = judge(sc, r, b0 + i, v->colp[m] + (size_t)i * CRP_BLOCK);

			if (vd != V_DATA && vd != V_META && !(soft && vd == V_SOFT))
				continue;
			say(sc, "stripe %llu: %s %llu fails its checksum (position %d, %s, "
				"byte %llu)", (unsigned long long)v->s,
			    vd == V_DATA ? "data block" :
			    kind_of(sc, b0 + i, v->colp[m] + (size_t)i * CRP_BLOCK),
			    (unsigned long long)(b0 + i), m, mspec(sc, m),
			    (unsigned long long)crp_geom_member_off(sc->g, v->s, i * CRP_BLOCK));
			said++;
		}
	}
}

static void count_stripe(struct scrub *sc, const struct result *res)
{
	if (!res->in_use)
		sc->c->stripes_free++;
	else if (res->degraded)
		sc->c->stripes_degraded++;
	else
		sc->c->stripes_checked++;
	sc->c->blocks_checked += res->nchecked;
}

/*
 * Judge stripe @s again under the metadata lock and the locks of every
 * member; count and report what fails there, and repair it in the same
 * hold when asked.
 */
static int settle(struct scrub *sc, uint64_t s)
{
	struct run *r = &sc->run;
	struct result res;
	struct view v;
	struct plan pl = { 0 };
	bool soft_counted = false, repaired = false;
	int syn = -1, rc, e;

	rc = crp_meta_tx_begin(sc->m);
	if (rc < 0)
		return rc;
	r->s0 = s;
	r->k = 1;
	rc = run_lookups(sc, r);
	if (rc == 0)
		rc = crp_array_hold_all(sc->a);
	if (rc < 0)
		goto out_meta;
	rc = run_read(sc, r);
	if (rc < 0)
		goto out_hold;
	view_of(sc, r, 0, &v);
	evaluate(sc, r, &v, &res);
	count_stripe(sc, &res);
	if (clean(&v, &res)) {
		/* What the first look saw was not the disks' committed state. */
		sc->c->rechecked_clean += res.in_use;
		goto out_hold;
	}
	if (!v.out && v.qm >= 0)
		syn = syndrome(sc, &v, &res);

	/* Locate with the journal ring's hints first; if no column explains
	 * them, they are a torn tail that replay ignores: without them. */
	if (res.hard || res.soft || v.medium) {
		locate_with(sc, r, &v, res.hard | res.soft, true, &pl);
		soft_counted = res.soft && pl.found && !pl.ambiguous;
		if (res.soft && !soft_counted) {
			memset(&pl, 0, sizeof(pl));
			if (res.hard || v.medium)
				locate_with(sc, r, &v, res.hard, false, &pl);
		}
	}
	if (!soft_counted)
		res.nsoft = 0;
	if (!res.hard && !soft_counted && !v.medium) {
		/* Every checksummed block holds: the parity is the bad column. */
		memset(&pl, 0, sizeof(pl));
		pl.found = !v.out && (res.p_bad || res.q_bad);
		if (!pl.found)
			goto out_hold; /* only hints that parity does not explain */
	}

	sc->c->problem_stripes++;
	sc->c->parity_p += res.p_bad;
	sc->c->parity_q += res.q_bad;
	sc->c->data_errors += res.ndata;
	sc->c->meta_errors += res.nmeta + res.nsoft;
	sc->c->read_errors += (uint64_t)__builtin_popcountll(v.medium);
	if (res.p_bad || res.q_bad)
		say(sc, "stripe %llu: %s the data", (unsigned long long)s,
		    res.p_bad && res.q_bad ? "neither P nor Q matches" :
		    res.p_bad ? "P does not match" : "Q does not match");
	for (int m = 0; m < sc->n; m++)
		if (v.medium & BIT(m))
			say(sc, "stripe %llu: position %d (%s) cannot read its chunk",
			    (unsigned long long)s, m, mspec(sc, m));
	say_blocks(sc, r, &v, soft_counted);

	if (!pl.found || pl.ambiguous) {
		sc->c->unrecoverable++;
		say(sc, "stripe %llu: unrecoverable: %s", (unsigned long long)s,
		    pl.ambiguous ? "more than one column could be the wrong one" :
		    res.degraded && !v.medium ? "the stripe is degraded and parity rebuilds no "
						"column that puts it right" :
		    "no column rebuilt from the others puts it right (the parity agrees with "
		    "the wrong data)");
		goto out_hold;
	}
	plan_writes(sc, &v, &pl);
	for (int m = 0; m < sc->n; m++)
		if (pl.write & BIT(m)) {
			int role = crp_geom_role(sc->g, s, m);

			sc->c->bad_columns[m]++;
			say(sc, "stripe %llu: the bad column is position %d (%s, %s)%s",
			    (unsigned long long)s, m, mspec(sc, m),
			    role == CRP_ROLE_P ? "P" : role == CRP_ROLE_Q ? "Q" : "data",
			    sc->o && sc->o->repair ? "" : "; not repaired (no --repair)");
		}
	if (syn >= 0 && pl.write != BIT(syn)) {
		sc->c->syndrome_disagree++;
		say(sc, "stripe %llu: P and Q name position %d as the bad column; the checksums "
			"say otherwise and decide", (unsigned long long)s, syn);
	}
	if (!sc->o || !sc->o->repair || !pl.write)
		goto out_hold;
	if (v.rebuilding) {
		say(sc, "stripe %llu: not repaired: a member of it is being rebuilt (scrub again "
			"once the rebuild is done)", (unsigned long long)s);
		goto out_hold;
	}
	for (int m = 0; m < sc->n && rc == 0; m++)
		if (pl.write & BIT(m))
			rc = crp_array_write_held(sc->a, m, crp_geom_member_off(sc->g, s, 0),
						  plan_col(sc, &v, &pl, m), sc->g->chunk);
	if (rc < 0) {
		say(sc, "stripe %llu: the repair could not be written: %s", (unsigned long long)s,
		    crp_strerror(rc));
		rc = 0;
		goto out_hold;
	}
	/* Read back in the same hold, and judged again. */
	rc = run_read(sc, r);
	if (rc < 0)
		goto out_hold;
	view_of(sc, r, 0, &v);
	{
		struct result again;

		evaluate(sc, r, &v, &again);
		repaired = clean(&v, &again) || (again.degraded && !again.hard);
	}
	if (repaired) {
		sc->c->repaired += (uint64_t)__builtin_popcountll(pl.write);
		sc->c->repaired_stripes++;
		say(sc, "stripe %llu: repaired", (unsigned long long)s);
	} else {
		say(sc, "stripe %llu: still wrong after the repair", (unsigned long long)s);
	}
out_hold:
	e = crp_array_release_all(sc->a);
	rc = rc ? rc : e;
out_meta:
	e = crp_meta_tx_end(sc->m);
	return rc ? rc : e;
}

/* ---- the pass ---- */

struct rec_ctx {
	int what;		/* 0 start, 1 checkpoint, 2 done */
	uint64_t stripe;
	bool busy;		/* start: another live scrub */
	char other[CRP_HOST_MAX];
};

static int rec_fn(struct crp_meta *m, struct crp_label *l, void *ctx)
{
	struct rec_ctx *c = ctx;
	uint64_t now = crp_wall_ns();
	bool mine = !strcmp(l->scrubber, m->host);

	if (c->what == 0) {
		if (l->scrubber[0] && !mine && now - l->scrub_ns < CRP_SCRUB_STALE_NS &&
		    now >= l->scrub_ns) {
			c->busy = true;
			snprintf(c->other, sizeof(c->other), "%s", l->scrubber);
			return 1;
		}
		snprintf(l->scrubber, sizeof(l->scrubber), "%s", m->host);
		l->scrub_start_ns = now;
		l->scrub_ns = now;
		l->scrub_stripe = 0;
		return 0;
	}
	if (!mine)
		return 1; /* taken over after ours went stale: leave it */
	if (c->what == 2) {
		l->scrubber[0] = '\0';
		l->scrub_ns = l->scrub_stripe = l->scrub_start_ns = 0;
		return 0;
	}
	l->scrub_ns = now;
	l->scrub_stripe = c->stripe;
	return 0;
}

static int record(struct scrub *sc, int what, uint64_t stripe, char *busy_host)
{
	struct rec_ctx rc = { .what = what, .stripe = stripe };
	int r = crp_meta_members_update(sc->m, rec_fn, &rc);

	if (r == 0 && rc.busy) {
		if (busy_host)
			snprintf(busy_host, CRP_HOST_MAX, "%s", rc.other);
		return -EBUSY;
	}
	return r;
}

static int scrub_init(struct scrub *sc, struct crp_meta *m, const struct crp_scrub_opts *o,
		      struct crp_scrub_counts *c)
{
	size_t chunk;

	memset(sc, 0, sizeof(*sc));
	sc->m = m;
	sc->a = m->a;
	sc->g = &m->geom;
	sc->sb = &m->sb;
	sc->o = o;
	sc->c = c;
	sc->n = sc->g->nmembers;
	sc->tol = crp_meta_tolerance((uint32_t)sc->g->level);
	sc->cpb = sc->g->chunk / CRP_BLOCK;
	sc->spb = sc->cpb * (uint32_t)sc->g->ndata;
	chunk = sc->g->chunk;
	sc->kmax = (uint32_t)CRP_MAX(1u, CRP_MIN((uint64_t)SCRUB_BATCH,
						 SCRUB_BATCH_BYTES / (chunk * (size_t)sc->n)));
	sc->kcur = sc->kmax;
	sc->pre_g = -1;
	for (int i = 0; i < 255; i++)
		sc->gflog[crp_gf_exp2(i)] = (uint8_t)i;
	sc->pre = crp_alloc_buf(CRP_BLOCK);
	sc->sp = crp_alloc_buf(chunk);
	sc->sq = crp_alloc_buf(chunk);
	if (!sc->pre || !sc->sp || !sc->sq)
		return -ENOMEM;
	for (int i = 0; i < sc->n; i++) {
		sc->run.col[i] = crp_alloc_buf(chunk * sc->kmax);
		sc->fix[i] = crp_alloc_buf(chunk);
		sc->best[i] = crp_alloc_buf(chunk);
		if (!sc->run.col[i] || !sc->fix[i] || !sc->best[i])
			return -ENOMEM;
	}
	return 0;
}

static void scrub_free(struct scrub *sc)
{
	free(sc->pre);
	free(sc->sp);
	free(sc->sq);
	for (int i = 0; i < CRP_MAX_MEMBERS; i++) {
		free(sc->run.col[i]);
		free(sc->fix[i]);
		free(sc->best[i]);
	}
	for (int i = 0; i < sc->run.caplk; i++)
		free(sc->run.lk[i].buf);
	free(sc->run.lk);
}

/* One run of in-use stripes: read under the locks, judged; what does not
 * check out is settled stripe by stripe. */
static int do_run(struct scrub *sc, uint64_t s0, uint32_t k)
{
	struct run *r = &sc->run;
	bool suspect[SCRUB_BATCH] = { false };
	bool any_err = false;
	int rc = run_hold_read(sc, r, s0, k);

	if (rc < 0)
		return rc;
	for (int m = 0; m < sc->n; m++)
		any_err |= r->err[m] != 0;
	for (uint32_t j = 0; j < k; j++) {
		struct result res;
		struct view v;

		if (any_err) {
			/* A member failed to read part of the run: stripe by stripe. */
			suspect[j] = true;
			continue;
		}
		view_of(sc, r, j, &v);
		evaluate(sc, r, &v, &res);
		if (clean(&v, &res))
			count_stripe(sc, &res);
		else
			suspect[j] = true;
	}
	for (uint32_t j = 0; j < k && rc == 0; j++)
		if (suspect[j])
			rc = settle(sc, s0 + j);
	return rc;
}

int crp_meta_scrub(struct crp_meta *m, const struct crp_scrub_opts *o,
		   struct crp_scrub_counts *c, char *busy_host)
{
	struct scrub sc;
	uint64_t total = m->geom.nstripes, s = 0, t0 = crp_now_ns(), last_ckpt = t0;
	uint64_t ckpt_ns = o && o->checkpoint_ns ? o->checkpoint_ns : CRP_SCRUB_CHECKPOINT_NS;
	int r, e;

	memset(c, 0, sizeof(*c));
	c->stripes_total = total;
	if (m->ro)
		return -EROFS;
	r = scrub_init(&sc, m, o, c);
	if (r < 0)
		goto out_free;
	r = crp_meta_members_reload(m);
	if (r == 0)
		r = record(&sc, 0, 0, busy_host);
	if (r < 0)
		goto out_free;
	if (o && o->progress)
		o->progress(o->ctx, 0, total, 0, 0);
	while (s < total) {
		uint64_t now;
		uint32_t k = 0;

		if (o && o->stop && atomic_load(o->stop)) {
			r = -EINTR;
			break;
		}
		if (!stripe_in_use(&sc, NULL, s)) {
			c->stripes_free++;
			s++;
		} else {
			while (k < sc.kcur && s + k < total &&
			       (k == 0 || stripe_in_use(&sc, NULL, s + k)))
				k++;
			r = do_run(&sc, s, k);
			if (r < 0)
				break;
			s += k;
			sc.kcur = crp_hold_all_next(sc.kcur, sc.kmax, sc.held_ns,
						    crp_array_peers(m->a));
		}
		c->stripes_done = s;
		now = crp_now_ns();
		if (k == 0 && s < total && (s & 1023) && now - last_ckpt < ckpt_ns)
			continue; /* free stripes go by quickly: report now and then */
		if (o && o->progress)
			o->progress(o->ctx, s, total, c->bytes_read, 0);
		if (o && o->rate_bps) {
			uint64_t due = t0 + c->bytes_read * 1000000000ull / o->rate_bps;

			if (due > now) {
				crp_sleep_ns(due - now);
				now = crp_now_ns();
			}
		}
		if (now - last_ckpt >= ckpt_ns && s < total) {
			/* A checkpoint that finds the metadata lock busy for the
			 * whole lock deadline is only late: the next one goes. */
			r = record(&sc, 1, s, NULL);
			if (r < 0 && r != -ETIMEDOUT)
				break;
			r = 0;
			last_ckpt = now;
		}
	}
	c->stripes_in_use = c->stripes_checked + c->stripes_degraded;
	e = record(&sc, 2, s, NULL);
	if (!r)
		r = e;
out_free:
	scrub_free(&sc);
	return r;
}
