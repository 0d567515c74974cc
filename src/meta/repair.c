/*
 * Rebuilding damaged blocks from parity.
 *
 * Every read of the RAID area checks what it reads: a typed metadata block
 * its header (magic, version, checksum, place, filesystem) and its
 * structure, an inode-table block its records against the inode bitmap, a
 * data block its checksum in the checksum table.  A block that fails is not
 * called corrupt until parity has had its say: it is rebuilt as if the
 * member holding it were missing, and on RAID-6, if that is not enough, as
 * if that member and each other member of the stripe were missing (two
 * columns from P and Q).  A reconstruction is taken only if it passes the
 * same checks; it is then written back in place (unless read-only) and the
 * event is logged and recorded in m->damage, where fsck finds it.
 *
 * A block that reads as all zeros where a written block must be is damage
 * like any other: members lose writes and get zeroed, and the all-zero
 * "never written" state of a fresh block is only trusted where nothing
 * says the block was written.
 *
 * Trying a member other than the one holding the block as the only culprit
 * is pointless: the block's bytes come from its own member alone.  The
 * other members matter only as the second column of a RAID-6 pair.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "crpfs/err.h"
#include "crpfs/log.h"
#include "crpfs/util.h"
#include "meta_i.h"

static bool is_zero(const void *p, size_t len)
{
	const uint8_t *b = p;

	for (size_t i = 0; i < len; i++)
		if (b[i])
			return false;
	return true;
}

void crp_meta_block_kind(const struct crp_meta *m, uint64_t blkno, uint32_t magic, char *out,
			 size_t len)
{
	const struct crp_sb *sb = &m->sb;
	uint64_t itable_end = sb->itable_start + CRP_DIV_ROUND_UP(sb->inode_count,
								  CRP_INODES_PER_BLOCK);
	uint64_t otable_end = sb->otable_start + (uint64_t)sb->max_hosts * sb->otable_blocks;
	uint64_t journal_end = sb->journal_start + (uint64_t)sb->max_hosts * sb->journal_blocks;

	if (blkno == 0) {
		snprintf(out, len, "superblock");
	} else if (blkno == CRP_SHARED_BLKNO) {
		snprintf(out, len, "shared state block");
	} else if (sb->journal_blocks && blkno >= sb->journal_start && blkno < journal_end) {
		uint64_t h = (blkno - sb->journal_start) / sb->journal_blocks;
		uint64_t k = (blkno - sb->journal_start) % sb->journal_blocks;

		snprintf(out, len, "%s of host slot %llu",
			 k == 0 ? "journal header" : k == 1 ? "orphan list" : "journal block",
			 (unsigned long long)h);
	} else if (sb->max_hosts && blkno >= sb->otable_start && blkno < otable_end) {
		uint64_t r = blkno - sb->otable_start;

		snprintf(out, len, "open table block %llu of host slot %llu",
			 (unsigned long long)(r / sb->max_hosts),
			 (unsigned long long)(r % sb->max_hosts));
	} else if (blkno >= sb->ibitmap_start && blkno < sb->itable_start) {
		snprintf(out, len, "inode bitmap block %llu",
			 (unsigned long long)(blkno - sb->ibitmap_start));
	} else if (blkno >= sb->itable_start && blkno < itable_end) {
		uint64_t first = (blkno - sb->itable_start) * CRP_INODES_PER_BLOCK;

		snprintf(out, len, "inode table block (inodes %llu-%llu)",
			 (unsigned long long)first,
			 (unsigned long long)(first + CRP_INODES_PER_BLOCK - 1));
	} else if (sb->ag_blocks && blkno >= sb->ag_start && blkno < sb->total_blocks) {
		uint64_t g = (blkno - sb->ag_start) / sb->ag_blocks;
		uint64_t i = (blkno - sb->ag_start) % sb->ag_blocks;
		const char *what;

		if (i == 0) {
			snprintf(out, len, "block bitmap of group %llu", (unsigned long long)g);
			return;
		}
		if (i < CRP_AG_META_BLOCKS) {
			snprintf(out, len, "checksum table block %llu of group %llu",
				 (unsigned long long)(i - 1), (unsigned long long)g);
			return;
		}
		switch (magic) {
		case CRP_MAGIC_DIR: what = "directory block"; break;
		case CRP_MAGIC_EXTENT: what = "extent block"; break;
		case CRP_MAGIC_XATTR: what = "xattr block"; break;
		case 0: what = "data block"; break;
		default: what = "metadata block"; break;
		}
		snprintf(out, len, "%s", what);
	} else {
		snprintf(out, len, "block");
	}
}

static void note(struct crp_meta *m, const struct crp_meta_damage *d)
{
	if (!m->damage)
		m->damage = g_array_new(FALSE, TRUE, sizeof(struct crp_meta_damage));
	/* Bounded: a daemon never empties it, and a wrecked array must not
	 * eat the memory of a tool (fsck empties it as it goes). */
	if (m->damage->len < 4096)
		g_array_append_val(m->damage, *d);
}

/* "block B, member S at byte O", for the messages. */
static void where(struct crp_meta *m, uint64_t blkno, int member, uint64_t moff, char *out,
		  size_t len)
{
	snprintf(out, len, "block %llu, member %s at byte %llu", (unsigned long long)blkno,
		 crp_member_spec(crp_array_member(m->a, member)), (unsigned long long)moff);
}

int crp_meta_reconstruct(struct crp_meta *m, uint64_t blkno, void *out,
			 bool (*ok)(const void *blk, void *ctx), void *ctx, int *bad, int *bad2)
{
	int n = m->geom.nmembers;
	bool two = m->geom.level == 6;
	struct crp_loc loc;

	if (crp_geom_map(&m->geom, blkno * CRP_BLOCK, &loc) < 0)
		return -EIO;
	/* The member holding the block alone, then (RAID-6) with each other
	 * member of the stripe as the second missing column. */
	for (int j = -1; j < (two ? n : 0); j++) {
		if (j == loc.member)
			continue;
		if (crp_array_rebuild_range2(m->a, blkno * CRP_BLOCK, out, CRP_BLOCK, loc.member, j,
					     false))
			continue;
		if (!ok(out, ctx))
			continue;
		*bad = loc.member;
		*bad2 = j;
		return 0;
	}
	return -EIO;
}

int crp_meta_rebuild_as(struct crp_meta *m, uint64_t blkno, void *buf,
			bool (*ok)(const void *blk, void *ctx), void *ctx, uint32_t magic,
			const char *why, bool quiet)
{
	struct crp_meta_damage d = { .blkno = blkno, .member = -1, .member2 = -1 };
	int r, bad = -1, bad2 = -1;
	char at[1200];
	struct crp_loc loc;
	uint8_t *tmp;

	/* A reader without the lock may have met a block being written:
	 * not damage until the lock holder reads it so (crp_meta_read_begin). */
	if (m->opt)
		return -CRP_ERETRY;
	if (crp_geom_map(&m->geom, blkno * CRP_BLOCK, &loc) < 0)
		return -EIO;
	tmp = crp_alloc_buf(CRP_BLOCK);
	if (!tmp)
		return -ENOMEM;
	if (!why)
		why = is_zero(buf, CRP_BLOCK) ? "all zeros" : "fails its checks";
	r = crp_meta_reconstruct(m, blkno, tmp, ok, ctx, &bad, &bad2);
	crp_meta_block_kind(m, blkno, r == 0 ? crp_get_le32(tmp) : magic, d.what, sizeof(d.what));
	where(m, blkno, loc.member, loc.member_off, at, sizeof(at));
	snprintf(d.why, sizeof(d.why), "%s", why);
	if (r < 0) {
		if (!quiet) {
			crp_warn("%s (%s): %s, and no reconstruction from parity passes its checks",
				 d.what, at, why);
			d.member = loc.member;
			note(m, &d);
		}
		free(tmp);
		return r;
	}
	d.rebuilt = true;
	d.member = bad;
	d.member2 = bad2;
	if (!m->ro) {
		uint8_t *again = crp_alloc_buf(CRP_BLOCK);

		/* Again under the stripe's locks, written back to the member(s). */
		if (again &&
		    crp_array_rebuild_range2(m->a, blkno * CRP_BLOCK, again, CRP_BLOCK, bad, bad2,
					     true) == 0 &&
		    crp_array_read(m->a, blkno * CRP_BLOCK, again, CRP_BLOCK) == 0 && ok(again, ctx))
			d.repaired = true;
		free(again);
	}
	crp_warn("%s (%s): %s; rebuilt from parity without member %s%s%s%s", d.what, at, why,
		 crp_member_spec(crp_array_member(m->a, bad)),
		 bad2 >= 0 ? " and member " : "",
		 bad2 >= 0 ? crp_member_spec(crp_array_member(m->a, bad2)) : "",
		 m->ro ? " (read-only: not repaired)"
		       : d.repaired ? " and repaired" : ", but writing it back failed");
	memcpy(buf, tmp, CRP_BLOCK);
	m->stats.repairs++;
	note(m, &d);
	free(tmp);
	return 0;
}

int crp_meta_rebuild_block(struct crp_meta *m, uint64_t blkno, void *buf,
			   bool (*ok)(const void *blk, void *ctx), void *ctx)
{
	return crp_meta_rebuild_as(m, blkno, buf, ok, ctx, 0, NULL, false);
}

void crp_meta_damage_note(struct crp_meta *m, uint64_t blkno, uint32_t magic, const char *why)
{
	struct crp_meta_damage d = { .blkno = blkno, .member = -1, .member2 = -1 };

	crp_meta_block_kind(m, blkno, magic, d.what, sizeof(d.what));
	snprintf(d.why, sizeof(d.why), "%s", why);
	note(m, &d);
}
