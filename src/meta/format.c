/*
 * mkfs: write a new, empty filesystem on an open array.  The labels go
 * last, so that an interrupted mkfs leaves no array that looks valid.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "crpfs/err.h"
#include "crpfs/util.h"
#include "meta_i.h"

static int wr(struct crp_array *a, uint64_t blkno, const void *buf, uint32_t n)
{
	return crp_array_write(a, blkno * CRP_BLOCK, buf, (size_t)n * CRP_BLOCK);
}

static void hdr(void *blk, uint32_t magic, uint64_t blkno, uint64_t fsid, uint64_t owner,
		uint32_t count, uint64_t aux64)
{
	struct crp_bhdr h = { .magic = magic, .blkno = blkno, .fsid = fsid, .owner = owner,
			      .count = count, .aux64 = aux64 };

	crp_bhdr_out(&h, blk);
}

static int write_groups(struct crp_array *a, const struct crp_sb *sb, uint64_t fsid)
{
	uint8_t *buf = crp_alloc_buf((size_t)CRP_AG_META_BLOCKS * CRP_BLOCK);
	int r = 0;

	if (!buf)
		return -ENOMEM;
	for (uint32_t g = 0; g < sb->ag_count && !r; g++) {
		uint64_t base = sb->ag_start + (uint64_t)g * sb->ag_blocks;
		uint32_t len = g + 1 < sb->ag_count ? sb->ag_blocks
						    : (uint32_t)(sb->total_blocks - base);

		memset(buf, 0, (size_t)CRP_AG_META_BLOCKS * CRP_BLOCK);
		for (uint32_t i = 0; i < CRP_AG_META_BLOCKS; i++)
			crp_bit_set(buf + CRP_HDR_SIZE, i);
		hdr(buf, CRP_MAGIC_BITMAP, base, fsid, g, len - CRP_AG_META_BLOCKS, len);
		for (uint32_t i = 1; i < CRP_AG_META_BLOCKS; i++)
			hdr(buf + (size_t)i * CRP_BLOCK, CRP_MAGIC_CSUM, base + i, fsid, g, 0, 0);
		r = wr(a, base, buf, CRP_AG_META_BLOCKS);
	}
	free(buf);
	return r;
}

static int write_inodes(struct crp_array *a, const struct crp_sb *sb, uint64_t fsid)
{
	uint8_t *buf = crp_alloc_buf(CRP_BLOCK);
	struct crp_inode root = { 0 };
	uint64_t now = crp_wall_ns();
	int r = 0;

	if (!buf)
		return -ENOMEM;
	for (uint32_t i = 0; i < sb->ibitmap_blocks && !r; i++) {
		uint64_t first = (uint64_t)i * CRP_BITS_PER_BLOCK;
		uint32_t len = (uint32_t)CRP_MIN((uint64_t)CRP_BITS_PER_BLOCK,
						 sb->inode_count - first);
		uint32_t used = 0;

		memset(buf, 0, CRP_BLOCK);
		if (i == 0) {
			crp_bit_set(buf + CRP_HDR_SIZE, 0);
			crp_bit_set(buf + CRP_HDR_SIZE, sb->root_ino);
			used = 2;
		}
		hdr(buf, CRP_MAGIC_IBITMAP, sb->ibitmap_start + i, fsid, i, len - used, len);
		r = wr(a, sb->ibitmap_start + i, buf, 1);
	}
	if (r)
		goto out;
	root.ino = sb->root_ino;
	root.generation = 1;
	root.mode = 040755;
	root.nlink = 2;
	root.parent = sb->root_ino;
	root.atime_sec = root.mtime_sec = root.ctime_sec = root.btime_sec =
		(int64_t)(now / 1000000000ull);
	root.atime_nsec = root.mtime_nsec = root.ctime_nsec = root.btime_nsec =
		(uint32_t)(now % 1000000000ull);
	memset(buf, 0, CRP_BLOCK);
	crp_inode_out(&root, buf + (sb->root_ino % CRP_INODES_PER_BLOCK) * CRP_INODE_SIZE);
	r = wr(a, sb->itable_start + sb->root_ino / CRP_INODES_PER_BLOCK, buf, 1);
out:
	free(buf);
	return r;
}

static int write_journals(struct crp_array *a, const struct crp_sb *sb, uint64_t fsid)
{
	uint8_t *buf = crp_alloc_buf(3 * CRP_BLOCK);
	int r = 0;

	if (!buf)
		return -ENOMEM;
	for (uint32_t h = 0; h < sb->max_hosts && !r; h++) {
		uint64_t base = sb->journal_start + (uint64_t)h * sb->journal_blocks;
		struct crp_jhdr j = { .start = 0, .seq = 1, .slot = h };

		memset(buf, 0, 3 * CRP_BLOCK);
		crp_jhdr_out(&j, base, fsid, buf);
		hdr(buf + CRP_BLOCK, CRP_MAGIC_ORPHAN, base + 1, fsid, h, 0, 0);
		/* The first ring block zeroed: nothing to replay. */
		r = wr(a, base, buf, 3);
	}
	free(buf);
	return r;
}

/* Every host's open table, empty. */
static int write_opentabs(struct crp_array *a, const struct crp_sb *sb, uint64_t fsid)
{
	uint64_t n = (uint64_t)sb->otable_blocks * sb->max_hosts;
	uint8_t *buf = crp_alloc_buf((size_t)n * CRP_BLOCK);
	int r;

	if (!buf)
		return -ENOMEM;
	memset(buf, 0, (size_t)n * CRP_BLOCK);
	for (uint64_t i = 0; i < n; i++)
		hdr(buf + (size_t)i * CRP_BLOCK, CRP_MAGIC_OPENTAB, sb->otable_start + i, fsid,
		    i % sb->max_hosts, 0, 0);
	r = wr(a, sb->otable_start, buf, (uint32_t)n);
	free(buf);
	return r;
}

int crp_meta_format(struct crp_array *a, const struct crp_mkfs_params *p, struct crp_sb *sb,
		    char *err, size_t errlen)
{
	int n = crp_array_nmembers(a);
	struct crp_geom g;
	struct crp_label l;
	uint8_t *buf = NULL;
	uint64_t fsid;
	int r;

	memset(sb, 0, sizeof(*sb));
	if (p->uuid) {
		memcpy(sb->uuid, p->uuid, 16);
	} else {
		uint64_t u0 = crp_random(), u1 = crp_random();

		crp_put_le64(sb->uuid, u0);
		crp_put_le64(sb->uuid + 8, u1);
		sb->uuid[6] = (uint8_t)((sb->uuid[6] & 0x0f) | 0x40); /* version 4 */
		sb->uuid[8] = (uint8_t)((sb->uuid[8] & 0x3f) | 0x80);
	}
	snprintf(sb->label, sizeof(sb->label), "%s", p->label ? p->label : "");
	sb->level = (uint32_t)p->level;
	sb->nmembers = (uint32_t)n;
	sb->chunk = p->chunk;
	sb->max_hosts = p->max_hosts;
	sb->lock_mode = (uint32_t)p->lock_mode;
	sb->data_offset = crp_data_offset_for(p->max_hosts, p->chunk);
	r = crp_geom_init(&g, p->level, n, p->chunk, sb->data_offset, p->member_size, err, errlen);
	if (r < 0)
		return r;
	sb->nstripes = g.nstripes;
	sb->hash_seed = crp_random();
	sb->ctime_ns = crp_wall_ns();
	sb->generation = crp_random() | 1;
	r = crp_sb_layout(sb, err, errlen);
	if (r < 0)
		return r;
	r = crp_array_set_geometry(a, &g);
	if (r < 0) {
		snprintf(err, errlen, "cannot set the geometry: %s", crp_strerror(r));
		return r;
	}
	fsid = crp_fsid(sb);
	buf = crp_alloc_buf(CRP_BLOCK * 2);
	if (!buf)
		return -ENOMEM;
	/* Labels first made invalid, so that a crash leaves no half array. */
	for (int i = 0; i < n; i++) {
		r = crp_member_write(crp_array_member(a, i), CRP_LABEL_OFFSET, buf, CRP_BLOCK);
		if (r < 0) {
			snprintf(err, errlen, "member %s: cannot write: %s",
				 crp_member_spec(crp_array_member(a, i)), crp_strerror(r));
			goto out;
		}
	}
	crp_sb_out(sb, buf);
	hdr(buf + CRP_BLOCK, CRP_MAGIC_SHARED, 1, fsid, 0, 0, 0);
	r = wr(a, 0, buf, 2);
	if (!r)
		r = write_journals(a, sb, fsid);
	if (!r)
		r = write_opentabs(a, sb, fsid);
	if (!r)
		r = write_inodes(a, sb, fsid);
	if (!r)
		r = write_groups(a, sb, fsid);
	if (r < 0) {
		snprintf(err, errlen, "cannot write the filesystem: %s", crp_strerror(r));
		goto out;
	}
	/* Host slots and intent logs, on every member. */
	for (int i = 0; i < n && !r; i++) {
		struct crp_member *mem = crp_array_member(a, i);
		uint8_t *z = crp_alloc_buf(CRP_INTENT_BYTES);

		if (!z) {
			r = -ENOMEM;
			break;
		}
		for (uint32_t h = 0; h < sb->max_hosts && !r; h++) {
			struct crp_slot s = { .slot = h, .state = CRP_SLOT_FREE };
			uint64_t off = CRP_SLOT_OFFSET + (uint64_t)h * CRP_BLOCK;

			crp_slot_out(&s, off / CRP_BLOCK, fsid, buf);
			r = crp_member_write(mem, off, buf, CRP_BLOCK);
			if (!r)
				r = crp_member_write(mem, CRP_INTENT_OFFSET + (uint64_t)h * CRP_INTENT_BYTES,
						     z, CRP_INTENT_BYTES);
		}
		free(z);
		if (r < 0)
			snprintf(err, errlen, "member %s: cannot write host slots: %s",
				 crp_member_spec(mem), crp_strerror(r));
	}
	if (r < 0)
		goto out;
	r = crp_array_sync(a);
	if (r < 0) {
		snprintf(err, errlen, "cannot sync the members: %s", crp_strerror(r));
		goto out;
	}
	memset(&l, 0, sizeof(l));
	memcpy(l.uuid, sb->uuid, 16);
	l.events = 1;
	for (int i = 0; i < n; i++) {
		crp_put_le64(l.table[i].uuid, crp_random());
		crp_put_le64(l.table[i].uuid + 8, crp_random());
		l.table[i].state = CRP_MS_IN_SYNC;
	}
	l.nmembers = (uint32_t)n;
	l.level = sb->level;
	l.chunk = sb->chunk;
	l.data_offset = sb->data_offset;
	l.nstripes = sb->nstripes;
	l.lock_mode = sb->lock_mode;
	l.max_hosts = sb->max_hosts;
	l.generation = sb->generation;
	l.member_size = p->member_size;
	snprintf(l.fslabel, sizeof(l.fslabel), "%s", sb->label);
	l.sb = *sb;
	/* The names the members were given, on every member. */
	for (int i = 0; i < n && !r; i++) {
		uint8_t *names = crp_alloc_buf((size_t)CRP_LABEL_MEMBERS * CRP_NAME_REC);

		if (!names) {
			r = -ENOMEM;
			break;
		}
		memset(names, 0, (size_t)CRP_LABEL_MEMBERS * CRP_NAME_REC);
		for (int j = 0; j < n; j++) {
			struct crp_member_name nm = { 0 };

			memcpy(nm.uuid, l.table[j].uuid, 16);
			snprintf(nm.spec, sizeof(nm.spec), "%s", crp_member_spec(crp_array_member(a, j)));
			crp_member_name_out(&nm, names + (size_t)j * CRP_NAME_REC);
		}
		r = crp_member_write(crp_array_member(a, i), CRP_NAMES_OFFSET, names,
				     CRP_LABEL_MEMBERS * CRP_NAME_REC);
		free(names);
		if (r < 0)
			snprintf(err, errlen, "member %s: cannot write the member names: %s",
				 crp_member_spec(crp_array_member(a, i)), crp_strerror(r));
	}
	if (r < 0)
		goto out;
	for (int i = 0; i < n; i++) {
		l.index = (uint32_t)i;
		memcpy(l.member_uuid, l.table[i].uuid, 16);
		crp_label_out(&l, buf);
		r = crp_member_write(crp_array_member(a, i), CRP_LABEL_OFFSET, buf, CRP_BLOCK);
		if (r < 0) {
			snprintf(err, errlen, "member %s: cannot write the label: %s",
				 crp_member_spec(crp_array_member(a, i)), crp_strerror(r));
			goto out;
		}
	}
	r = crp_array_sync(a);
	if (r < 0)
		snprintf(err, errlen, "cannot sync the members: %s", crp_strerror(r));
out:
	free(buf);
	return r;
}

const char *crp_member_signature(const void *buf, size_t len)
{
	const uint8_t *b = buf;

	if (len >= 8 && crp_get_le64(b) == CRP_LABEL_MAGIC)
		return "crpfs already";
	if (len >= 4 && !memcmp(b, "XFSB", 4))
		return "an XFS filesystem";
	if (len >= 1082 && crp_get_le16(b + 1080) == 0xEF53)
		return "an ext2/3/4 filesystem";
	if (len >= 65608 && !memcmp(b + 65600, "_BHRfS_M", 8))
		return "a btrfs filesystem";
	if (len >= 4096 && (!memcmp(b + 4086, "SWAPSPACE2", 10) || !memcmp(b + 4086, "SWAP-SPACE", 10)))
		return "swap space";
	for (size_t off = 0; off + 8 <= 2048 && off + 8 <= len; off += 512)
		if (!memcmp(b + off, "LABELONE", 8))
			return "an LVM2 physical volume";
	if (len >= 520 && !memcmp(b + 512, "EFI PART", 8))
		return "a GPT partition table";
	if (len >= 512 && b[510] == 0x55 && b[511] == 0xAA)
		return "an MBR partition table or boot sector";
	return NULL;
}
