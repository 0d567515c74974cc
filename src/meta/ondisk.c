/*
 * The on-disk format: every record converted explicitly to and from
 * little-endian bytes, checked for magic, version and checksum.  This is the
 * only file that knows where a field lives in a record; crpfs(5) is its
 * byte-by-byte description.  Depends on libc, xxhash and src/util only (the
 * fuzzer links it alone).
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#define XXH_INLINE_ALL
#include <xxhash.h>

#include "crpfs/err.h"
#include "crpfs/ondisk.h"
#include "crpfs/util.h"

/* Checksums live at byte 8..15 of every record except the label and the
 * superblock (16..23). */
#define CSUM_OFF_BLOCK 8
#define CSUM_OFF_SB 16

static int fail(int r, char *err, size_t errlen, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));

static int fail(int r, char *err, size_t errlen, const char *fmt, ...)
{
	va_list ap;

	if (err && errlen) {
		va_start(ap, fmt);
		vsnprintf(err, errlen, fmt, ap);
		va_end(ap);
	}
	return r;
}

uint64_t crp_xxh64(const void *p, size_t len, uint64_t seed)
{
	return XXH3_64bits_withSeed(p, len, seed);
}

/* XXH3-64 of @len bytes with the 8 bytes at @csum_off taken as zero.  A
 * block is hashed whole from a copy with the field zeroed: the one-shot
 * hash (AVX2 where the CPU has it) is the same value as the streaming one
 * over the three pieces, and several times faster (perf: the streaming
 * form was 6 % of a daemon's CPU under unlinks). */
static uint64_t csum_skip(const void *buf, size_t len, size_t csum_off)
{
	XXH3_state_t st;
	static const uint8_t zero[8];
	const uint8_t *b = buf;

	if (len <= CRP_BLOCK) {
		_Alignas(CRP_BUF_ALIGN) uint8_t copy[CRP_BLOCK];

		memcpy(copy, b, len);
		memset(copy + csum_off, 0, 8);
		if (len == CRP_BLOCK && __builtin_cpu_supports("avx2"))
			return crp_xxh3_avx2(copy, len);
		return XXH3_64bits(copy, len);
	}
	XXH3_64bits_reset(&st);
	XXH3_64bits_update(&st, b, csum_off);
	XXH3_64bits_update(&st, zero, 8);
	XXH3_64bits_update(&st, b + csum_off + 8, len - csum_off - 8);
	return XXH3_64bits_digest(&st);
}

uint64_t crp_data_csum(const void *blk)
{
	if (__builtin_cpu_supports("avx2"))
		return crp_xxh3_avx2(blk, CRP_BLOCK);
	return XXH3_64bits(blk, CRP_BLOCK);
}

uint32_t crp_name_hash(uint64_t seed, const char *name, size_t len)
{
	return (uint32_t)XXH3_64bits_withSeed(name, len, seed);
}

static bool all_zero(const void *p, size_t len)
{
	const uint8_t *b = p;

	for (size_t i = 0; i < len; i++)
		if (b[i])
			return false;
	return true;
}

/* Copy a NUL-terminated string field of @len bytes; refuse one without NUL. */
static int str_in(const uint8_t *p, size_t len, char *out)
{
	if (!memchr(p, 0, len))
		return -1;
	memcpy(out, p, len);
	return 0;
}

static void str_out(uint8_t *p, size_t len, const char *s)
{
	size_t n = strnlen(s, len - 1);

	memset(p, 0, len);
	memcpy(p, s, n);
}

void crp_uuid_str(const uint8_t u[16], char out[37])
{
	snprintf(out, 37,
		 "%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x", u[0],
		 u[1], u[2], u[3], u[4], u[5], u[6], u[7], u[8], u[9], u[10], u[11], u[12], u[13],
		 u[14], u[15]);
}

uint64_t crp_fsid(const struct crp_sb *sb)
{
	return crp_get_le64(sb->uuid) ^ sb->generation;
}

/* ---- superblock ---- */

void crp_sb_out(const struct crp_sb *sb, void *buf)
{
	uint8_t *b = buf;

	memset(b, 0, CRP_SB_SIZE);
	crp_put_le64(b + 0, CRP_SB_MAGIC);
	crp_put_le16(b + 8, CRP_ONDISK_VERSION);
	crp_put_le32(b + 12, CRP_SB_SIZE);
	memcpy(b + 24, sb->uuid, 16);
	str_out(b + 40, CRP_LABEL_MAX, sb->label);
	crp_put_le32(b + 104, sb->block_size);
	crp_put_le32(b + 108, sb->level);
	crp_put_le32(b + 112, sb->nmembers);
	crp_put_le32(b + 116, sb->chunk);
	crp_put_le64(b + 120, sb->data_offset);
	crp_put_le64(b + 128, sb->nstripes);
	crp_put_le32(b + 136, sb->lock_mode);
	crp_put_le32(b + 140, sb->max_hosts);
	crp_put_le64(b + 144, sb->total_blocks);
	crp_put_le64(b + 152, sb->journal_start);
	crp_put_le32(b + 160, sb->journal_blocks);
	crp_put_le32(b + 164, sb->ibitmap_blocks);
	crp_put_le64(b + 168, sb->ibitmap_start);
	crp_put_le64(b + 176, sb->itable_start);
	crp_put_le64(b + 184, sb->inode_count);
	crp_put_le64(b + 192, sb->ag_start);
	crp_put_le32(b + 200, sb->ag_count);
	crp_put_le32(b + 204, sb->ag_blocks);
	crp_put_le64(b + 208, sb->root_ino);
	crp_put_le64(b + 216, sb->hash_seed);
	crp_put_le64(b + 224, sb->ctime_ns);
	crp_put_le64(b + 232, sb->generation);
	crp_put_le64(b + 240, sb->slot_offset);
	crp_put_le64(b + 248, sb->intent_offset);
	crp_put_le32(b + 256, sb->intent_bytes);
	crp_put_le32(b + 260, sb->features);
	crp_put_le64(b + 264, sb->otable_start);
	crp_put_le32(b + 272, sb->otable_blocks);
	crp_put_le32(b + 276, sb->intent_spb);
	crp_put_le64(b + CSUM_OFF_SB, csum_skip(b, CRP_SB_SIZE, CSUM_OFF_SB));
}

int crp_sb_in(const void *buf, struct crp_sb *sb, char *err, size_t errlen)
{
	const uint8_t *b = buf;
	uint64_t magic = crp_get_le64(b);

	memset(sb, 0, sizeof(*sb));
	if (magic != CRP_SB_MAGIC)
		return fail(-CRP_ECORRUPT, err, errlen,
			    all_zero(b, CRP_SB_SIZE) ? "superblock is all zeros (never written)"
						     : "superblock has a bad magic number %016llx",
			    (unsigned long long)magic);
	if (crp_get_le16(b + 8) != CRP_ONDISK_VERSION)
		return fail(-CRP_ECORRUPT, err, errlen,
			    "superblock has version %u, this crpfs reads version %u",
			    crp_get_le16(b + 8), CRP_ONDISK_VERSION);
	if (crp_get_le32(b + 12) != CRP_SB_SIZE)
		return fail(-CRP_ECORRUPT, err, errlen, "superblock has a bad record size %u",
			    crp_get_le32(b + 12));
	if (crp_get_le64(b + CSUM_OFF_SB) != csum_skip(b, CRP_SB_SIZE, CSUM_OFF_SB))
		return fail(-CRP_ECHECKSUM, err, errlen, "superblock checksum mismatch");
	memcpy(sb->uuid, b + 24, 16);
	if (str_in(b + 40, CRP_LABEL_MAX, sb->label) < 0)
		return fail(-CRP_ECORRUPT, err, errlen, "superblock label is not terminated");
	sb->block_size = crp_get_le32(b + 104);
	sb->level = crp_get_le32(b + 108);
	sb->nmembers = crp_get_le32(b + 112);
	sb->chunk = crp_get_le32(b + 116);
	sb->data_offset = crp_get_le64(b + 120);
	sb->nstripes = crp_get_le64(b + 128);
	sb->lock_mode = crp_get_le32(b + 136);
	sb->max_hosts = crp_get_le32(b + 140);
	sb->total_blocks = crp_get_le64(b + 144);
	sb->journal_start = crp_get_le64(b + 152);
	sb->journal_blocks = crp_get_le32(b + 160);
	sb->ibitmap_blocks = crp_get_le32(b + 164);
	sb->ibitmap_start = crp_get_le64(b + 168);
	sb->itable_start = crp_get_le64(b + 176);
	sb->inode_count = crp_get_le64(b + 184);
	sb->ag_start = crp_get_le64(b + 192);
	sb->ag_count = crp_get_le32(b + 200);
	sb->ag_blocks = crp_get_le32(b + 204);
	sb->root_ino = crp_get_le64(b + 208);
	sb->hash_seed = crp_get_le64(b + 216);
	sb->ctime_ns = crp_get_le64(b + 224);
	sb->generation = crp_get_le64(b + 232);
	sb->slot_offset = crp_get_le64(b + 240);
	sb->intent_offset = crp_get_le64(b + 248);
	sb->intent_bytes = crp_get_le32(b + 256);
	sb->features = crp_get_le32(b + 260);
	sb->otable_start = crp_get_le64(b + 264);
	sb->otable_blocks = crp_get_le32(b + 272);
	sb->intent_spb = crp_get_le32(b + 276);
	return crp_sb_check(sb, err, errlen);
}

uint64_t crp_sb_intent_spb(const struct crp_sb *sb)
{
	uint64_t spb;

	if (sb->features & CRP_FEAT_INTENT_SPB)
		return sb->intent_spb;
	spb = CRP_DIV_ROUND_UP(sb->nstripes, CRP_INTENT_BITS);
	return spb ? spb : 1;
}

int crp_sb_check(const struct crp_sb *sb, char *err, size_t errlen)
{
	uint64_t end;

	if (sb->block_size != CRP_BLOCK)
		return fail(-CRP_ECORRUPT, err, errlen, "superblock block size %u is not %u",
			    sb->block_size, CRP_BLOCK);
	if (sb->level != 4 && sb->level != 5 && sb->level != 6)
		return fail(-CRP_ECORRUPT, err, errlen, "superblock RAID level %u is not 4, 5 or 6",
			    sb->level);
	if (sb->nmembers < 3 || sb->nmembers > 64 || (sb->level == 6 && sb->nmembers < 4))
		return fail(-CRP_ECORRUPT, err, errlen,
			    "superblock member count %u is impossible for RAID-%u", sb->nmembers,
			    sb->level);
	if (sb->chunk < 4096 || sb->chunk > 1024 * 1024 || (sb->chunk & (sb->chunk - 1)))
		return fail(-CRP_ECORRUPT, err, errlen, "superblock chunk size %u is invalid",
			    sb->chunk);
	if (sb->max_hosts < 1 || sb->max_hosts > CRP_HOST_MAX || sb->lock_mode > 1)
		return fail(-CRP_ECORRUPT, err, errlen,
			    "superblock max hosts %u or lock mode %u is invalid", sb->max_hosts,
			    sb->lock_mode);
	if (sb->slot_offset != CRP_SLOT_OFFSET || sb->intent_offset != CRP_INTENT_OFFSET ||
	    sb->intent_bytes != CRP_INTENT_BYTES ||
	    sb->data_offset < CRP_INTENT_OFFSET + (uint64_t)sb->max_hosts * CRP_INTENT_BYTES ||
	    sb->data_offset % sb->chunk)
		return fail(-CRP_ECORRUPT, err, errlen,
			    "superblock reserved-area layout is invalid (data offset %llu)",
			    (unsigned long long)sb->data_offset);
	if (sb->features != CRP_FEATURES && sb->features != CRP_FEATURES_OLD)
		return fail(-CRP_ECORRUPT, err, errlen,
			    "superblock has features %#x, this crpfs needs %#x or %#x (made by "
			    "another version of mkfs.crpfs: format it again with this one)",
			    sb->features, CRP_FEATURES, CRP_FEATURES_OLD);
	if ((sb->features & CRP_FEAT_INTENT_SPB) ? sb->intent_spb == 0 : sb->intent_spb != 0)
		return fail(-CRP_ECORRUPT, err, errlen,
			    "superblock intent region size %u stripes does not match its features "
			    "%#x", sb->intent_spb, sb->features);
	if (sb->journal_blocks < 64 || sb->journal_start < 2 ||
	    sb->otable_start != sb->journal_start + (uint64_t)sb->max_hosts * sb->journal_blocks ||
	    sb->otable_blocks != CRP_OTABLE_BLOCKS ||
	    sb->ibitmap_start != sb->otable_start + (uint64_t)sb->max_hosts * sb->otable_blocks ||
	    sb->itable_start != sb->ibitmap_start + sb->ibitmap_blocks ||
	    sb->inode_count < 2 ||
	    (uint64_t)sb->ibitmap_blocks * CRP_BITS_PER_BLOCK < sb->inode_count ||
	    sb->ag_start != sb->itable_start + CRP_DIV_ROUND_UP(sb->inode_count, CRP_INODES_PER_BLOCK) ||
	    sb->ag_blocks <= CRP_AG_META_BLOCKS || sb->ag_blocks > CRP_BITS_PER_BLOCK ||
	    sb->ag_count < 1)
		return fail(-CRP_ECORRUPT, err, errlen, "superblock region layout is inconsistent");
	end = sb->ag_start + (uint64_t)(sb->ag_count - 1) * sb->ag_blocks;
	if (end >= sb->total_blocks || sb->total_blocks - end > sb->ag_blocks ||
	    sb->total_blocks - end <= CRP_AG_META_BLOCKS)
		return fail(-CRP_ECORRUPT, err, errlen,
			    "superblock allocation groups do not fit %llu blocks",
			    (unsigned long long)sb->total_blocks);
	if (sb->nstripes && sb->total_blocks * CRP_BLOCK >
				    sb->nstripes * (uint64_t)sb->chunk *
					    (sb->nmembers - (sb->level == 6 ? 2 : 1)))
		return fail(-CRP_ECORRUPT, err, errlen,
			    "superblock says %llu blocks, more than the array holds",
			    (unsigned long long)sb->total_blocks);
	if (sb->root_ino < 1 || sb->root_ino >= sb->inode_count)
		return fail(-CRP_ECORRUPT, err, errlen, "superblock root inode %llu is invalid",
			    (unsigned long long)sb->root_ino);
	return 0;
}

/* ---- label ---- */

void crp_label_out(const struct crp_label *l, void *buf)
{
	uint8_t *b = buf;

	memset(b, 0, CRP_BLOCK);
	crp_put_le64(b + 0, CRP_LABEL_MAGIC);
	crp_put_le16(b + 8, CRP_ONDISK_VERSION);
	crp_put_le32(b + 12, CRP_BLOCK);
	memcpy(b + 24, l->uuid, 16);
	crp_put_le32(b + 40, l->index);
	crp_put_le32(b + 44, l->nmembers);
	crp_put_le32(b + 48, l->level);
	crp_put_le32(b + 52, l->chunk);
	crp_put_le64(b + 56, l->data_offset);
	crp_put_le64(b + 64, l->nstripes);
	crp_put_le32(b + 72, l->lock_mode);
	crp_put_le32(b + 76, l->max_hosts);
	crp_put_le64(b + 80, l->generation);
	crp_put_le64(b + 88, l->member_size);
	str_out(b + 96, CRP_LABEL_MAX, l->fslabel);
	memcpy(b + 160, l->member_uuid, 16);
	crp_put_le64(b + 176, l->events);
	crp_put_le64(b + 184, l->rebuild_ns);
	str_out(b + 192, CRP_HOST_MAX, l->rebuilder);
	str_out(b + 256, CRP_HOST_MAX, l->scrubber);
	crp_put_le64(b + 320, l->scrub_ns);
	crp_put_le64(b + 328, l->scrub_stripe);
	crp_put_le64(b + 336, l->scrub_start_ns);
	crp_sb_out(&l->sb, b + CRP_LABEL_SB_OFFSET);
	for (int i = 0; i < CRP_LABEL_MEMBERS; i++) {
		uint8_t *e = b + CRP_LABEL_TABLE_OFFSET + (size_t)i * 32;

		memcpy(e, l->table[i].uuid, 16);
		crp_put_le32(e + 16, l->table[i].state);
		crp_put_le32(e + 20, l->table[i].flags);
		crp_put_le64(e + 24, l->table[i].checkpoint);
	}
	crp_put_le64(b + CSUM_OFF_SB, csum_skip(b, CRP_BLOCK, CSUM_OFF_SB));
}

int crp_label_in(const void *buf, struct crp_label *l, char *err, size_t errlen)
{
	const uint8_t *b = buf;
	char why[160];
	int r;

	memset(l, 0, sizeof(*l));
	if (crp_get_le64(b) != CRP_LABEL_MAGIC)
		return fail(-CRP_ECORRUPT, err, errlen, "no crpfs label (bad magic number)");
	if (crp_get_le16(b + 8) != CRP_ONDISK_VERSION)
		return fail(-CRP_ECORRUPT, err, errlen,
			    "label has version %u, this crpfs reads version %u",
			    crp_get_le16(b + 8), CRP_ONDISK_VERSION);
	if (crp_get_le32(b + 12) != CRP_BLOCK)
		return fail(-CRP_ECORRUPT, err, errlen, "label has a bad record size %u",
			    crp_get_le32(b + 12));
	if (crp_get_le64(b + CSUM_OFF_SB) != csum_skip(b, CRP_BLOCK, CSUM_OFF_SB))
		return fail(-CRP_ECHECKSUM, err, errlen, "label checksum mismatch");
	memcpy(l->uuid, b + 24, 16);
	l->index = crp_get_le32(b + 40);
	l->nmembers = crp_get_le32(b + 44);
	l->level = crp_get_le32(b + 48);
	l->chunk = crp_get_le32(b + 52);
	l->data_offset = crp_get_le64(b + 56);
	l->nstripes = crp_get_le64(b + 64);
	l->lock_mode = crp_get_le32(b + 72);
	l->max_hosts = crp_get_le32(b + 76);
	l->generation = crp_get_le64(b + 80);
	l->member_size = crp_get_le64(b + 88);
	if (str_in(b + 96, CRP_LABEL_MAX, l->fslabel) < 0)
		return fail(-CRP_ECORRUPT, err, errlen, "label name is not terminated");
	memcpy(l->member_uuid, b + 160, 16);
	l->events = crp_get_le64(b + 176);
	l->rebuild_ns = crp_get_le64(b + 184);
	if (str_in(b + 192, CRP_HOST_MAX, l->rebuilder) < 0)
		return fail(-CRP_ECORRUPT, err, errlen, "label's rebuilder name is not terminated");
	if (str_in(b + 256, CRP_HOST_MAX, l->scrubber) < 0)
		return fail(-CRP_ECORRUPT, err, errlen, "label's scrubber name is not terminated");
	l->scrub_ns = crp_get_le64(b + 320);
	l->scrub_stripe = crp_get_le64(b + 328);
	l->scrub_start_ns = crp_get_le64(b + 336);
	for (int i = 0; i < CRP_LABEL_MEMBERS; i++) {
		const uint8_t *e = b + CRP_LABEL_TABLE_OFFSET + (size_t)i * 32;

		memcpy(l->table[i].uuid, e, 16);
		l->table[i].state = crp_get_le32(e + 16);
		l->table[i].flags = crp_get_le32(e + 20);
		l->table[i].checkpoint = crp_get_le64(e + 24);
		if (l->table[i].state > CRP_MS_REBUILDING ||
		    ((uint32_t)i < l->nmembers) != (l->table[i].state != CRP_MS_NONE))
			return fail(-CRP_ECORRUPT, err, errlen,
				    "label's member table is invalid at position %d", i);
	}
	if (!l->events)
		return fail(-CRP_ECORRUPT, err, errlen,
			    "label has no member table (made by another version of mkfs.crpfs: "
			    "format it again with this one)");
	if (memcmp(l->table[l->index < CRP_LABEL_MEMBERS ? l->index : 0].uuid, l->member_uuid, 16))
		return fail(-CRP_ECORRUPT, err, errlen,
			    "label's member table does not name this member at its position");
	r = crp_sb_in(b + CRP_LABEL_SB_OFFSET, &l->sb, why, sizeof(why));
	if (r < 0)
		return fail(r, err, errlen, "label's superblock copy: %s", why);
	if (l->nmembers != l->sb.nmembers || l->index >= l->nmembers ||
	    memcmp(l->uuid, l->sb.uuid, 16) || l->level != l->sb.level ||
	    l->chunk != l->sb.chunk || l->data_offset != l->sb.data_offset ||
	    l->nstripes != l->sb.nstripes || l->generation != l->sb.generation ||
	    l->member_size < l->data_offset + l->nstripes * l->chunk)
		return fail(-CRP_ECORRUPT, err, errlen,
			    "label fields disagree with its superblock copy");
	return 0;
}

/* ---- member names ---- */

void crp_member_name_out(const struct crp_member_name *n, void *buf)
{
	uint8_t *b = buf;

	memset(b, 0, CRP_NAME_REC);
	crp_put_le32(b + 0, CRP_NAME_MAGIC);
	crp_put_le16(b + 4, CRP_ONDISK_VERSION);
	crp_put_le16(b + 6, n->origin);
	memcpy(b + 16, n->uuid, 16);
	str_out(b + 32, CRP_NAME_SPEC_MAX, n->spec);
	crp_put_le64(b + 8, csum_skip(b, CRP_NAME_REC, 8));
}

int crp_member_name_in(const void *buf, struct crp_member_name *n)
{
	const uint8_t *b = buf;

	memset(n, 0, sizeof(*n));
	if (all_zero(b, CRP_NAME_REC))
		return 1;
	if (crp_get_le32(b) != CRP_NAME_MAGIC || crp_get_le16(b + 4) != CRP_ONDISK_VERSION ||
	    crp_get_le64(b + 8) != csum_skip(b, CRP_NAME_REC, 8))
		return -CRP_ECORRUPT;
	memcpy(n->uuid, b + 16, 16);
	n->origin = crp_get_le16(b + 6);
	if (str_in(b + 32, CRP_NAME_SPEC_MAX, n->spec) < 0)
		return -CRP_ECORRUPT;
	return 0;
}

/* ---- common block header ---- */

uint64_t crp_block_csum_stored(const void *blk)
{
	return crp_get_le64((const uint8_t *)blk + CSUM_OFF_BLOCK);
}

uint64_t crp_block_csum_compute(const void *blk)
{
	return csum_skip(blk, CRP_BLOCK, CSUM_OFF_BLOCK);
}

void crp_block_seal(void *blk)
{
	crp_put_le64((uint8_t *)blk + CSUM_OFF_BLOCK, crp_block_csum_compute(blk));
}

void crp_bhdr_out(const struct crp_bhdr *h, void *blk)
{
	uint8_t *b = blk;

	crp_put_le32(b + 0, h->magic);
	crp_put_le16(b + 4, CRP_ONDISK_VERSION);
	crp_put_le16(b + 6, h->flags);
	crp_put_le64(b + 16, h->blkno);
	crp_put_le64(b + 24, h->fsid);
	crp_put_le64(b + 32, h->owner);
	crp_put_le64(b + 40, h->next);
	crp_put_le32(b + 48, h->count);
	crp_put_le32(b + 52, h->aux);
	crp_put_le64(b + 56, h->aux64);
	crp_block_seal(b);
}

static const char *magic_name(uint32_t magic)
{
	switch (magic) {
	case CRP_MAGIC_SLOT: return "host slot";
	case CRP_MAGIC_JHDR: return "journal header";
	case CRP_MAGIC_JDESC: return "journal descriptor";
	case CRP_MAGIC_JCOMMIT: return "journal commit";
	case CRP_MAGIC_ORPHAN: return "orphan list";
	case CRP_MAGIC_BITMAP: return "allocation bitmap";
	case CRP_MAGIC_IBITMAP: return "inode bitmap";
	case CRP_MAGIC_CSUM: return "checksum table";
	case CRP_MAGIC_EXTENT: return "extent block";
	case CRP_MAGIC_DIR: return "directory block";
	case CRP_MAGIC_XATTR: return "xattr block";
	case CRP_MAGIC_SHARED: return "shared state block";
	default: return "metadata block";
	}
}

int crp_bhdr_in(const void *blk, uint32_t magic, uint64_t blkno, uint64_t fsid,
		struct crp_bhdr *h, char *err, size_t errlen)
{
	const uint8_t *b = blk;
	const char *what = magic_name(magic);

	memset(h, 0, sizeof(*h));
	h->magic = crp_get_le32(b);
	if (h->magic != magic)
		return fail(-CRP_ECORRUPT, err, errlen,
			    all_zero(b, CRP_BLOCK) ? "%s at block %llu was never written"
						   : "%s at block %llu has a bad magic number",
			    what, (unsigned long long)blkno);
	h->version = crp_get_le16(b + 4);
	if (h->version != CRP_ONDISK_VERSION)
		return fail(-CRP_ECORRUPT, err, errlen,
			    "%s at block %llu has version %u, this crpfs reads version %u", what,
			    (unsigned long long)blkno, h->version, CRP_ONDISK_VERSION);
	if (crp_block_csum_stored(b) != crp_block_csum_compute(b))
		return fail(-CRP_ECHECKSUM, err, errlen, "%s at block %llu: checksum mismatch",
			    what, (unsigned long long)blkno);
	h->flags = crp_get_le16(b + 6);
	h->blkno = crp_get_le64(b + 16);
	h->fsid = crp_get_le64(b + 24);
	h->owner = crp_get_le64(b + 32);
	h->next = crp_get_le64(b + 40);
	h->count = crp_get_le32(b + 48);
	h->aux = crp_get_le32(b + 52);
	h->aux64 = crp_get_le64(b + 56);
	if (h->blkno != blkno)
		return fail(-CRP_ECORRUPT, err, errlen,
			    "%s at block %llu says it belongs at block %llu (misdirected write)",
			    what, (unsigned long long)blkno, (unsigned long long)h->blkno);
	if (h->fsid != fsid)
		return fail(-CRP_ECORRUPT, err, errlen,
			    "%s at block %llu belongs to another filesystem (stale)", what,
			    (unsigned long long)blkno);
	return 0;
}

/* ---- host slot ---- */

void crp_slot_out(const struct crp_slot *s, uint64_t blkno, uint64_t fsid, void *blk)
{
	struct crp_bhdr h = { .magic = CRP_MAGIC_SLOT, .blkno = blkno, .fsid = fsid,
			      .owner = s->slot };
	uint8_t *p = (uint8_t *)blk + CRP_HDR_SIZE;

	memset(blk, 0, CRP_BLOCK);
	crp_put_le32(p + 0, s->slot);
	crp_put_le32(p + 4, s->state);
	crp_put_le64(p + 8, s->heartbeat);
	crp_put_le64(p + 16, s->heartbeat_ns);
	crp_put_le64(p + 24, s->mount_ns);
	crp_put_le64(p + 32, s->pr_key);
	str_out(p + 40, CRP_HOST_MAX, s->host);
	str_out(p + 104, CRP_HOST_MAX, s->recoverer);
	crp_put_le64(p + 168, s->recoveries);
	crp_put_le64(p + 176, s->recovered_ns);
	crp_bhdr_out(&h, blk);
}

int crp_slot_in(const void *blk, uint64_t blkno, uint64_t fsid, struct crp_slot *s, char *err,
		size_t errlen)
{
	const uint8_t *p = (const uint8_t *)blk + CRP_HDR_SIZE;
	struct crp_bhdr h;
	int r;

	memset(s, 0, sizeof(*s));
	r = crp_bhdr_in(blk, CRP_MAGIC_SLOT, blkno, fsid, &h, err, errlen);
	if (r < 0)
		return r;
	s->slot = crp_get_le32(p + 0);
	s->state = crp_get_le32(p + 4);
	s->heartbeat = crp_get_le64(p + 8);
	s->heartbeat_ns = crp_get_le64(p + 16);
	s->mount_ns = crp_get_le64(p + 24);
	s->pr_key = crp_get_le64(p + 32);
	s->recoveries = crp_get_le64(p + 168);
	s->recovered_ns = crp_get_le64(p + 176);
	if (str_in(p + 40, CRP_HOST_MAX, s->host) < 0 ||
	    str_in(p + 104, CRP_HOST_MAX, s->recoverer) < 0 || s->state > CRP_SLOT_RECOVERING ||
	    s->slot != h.owner)
		return fail(-CRP_ECORRUPT, err, errlen, "host slot at block %llu is malformed",
			    (unsigned long long)blkno);
	return 0;
}

/* ---- shared state ---- */

void crp_shared_out(const struct crp_shared *s, uint64_t fsid, void *blk)
{
	struct crp_bhdr h = { .magic = CRP_MAGIC_SHARED, .blkno = CRP_SHARED_BLKNO, .fsid = fsid };
	uint8_t *p = (uint8_t *)blk + CRP_HDR_SIZE;

	memset(blk, 0, CRP_BLOCK);
	crp_put_le64(p + 0, s->generation);
	crp_put_le32(p + 8, s->flags);
	crp_put_le32(p + 12, s->slot);
	crp_put_le64(p + 16, s->seq);
	crp_put_le64(p + 24, s->pos);
	crp_put_le64(p + 32, s->lost_gen);
	crp_put_le32(p + 40, s->head);
	crp_put_le32(p + 44, s->member_epoch);
	for (uint32_t i = 0; i < CRP_SHARED_RECS; i++) {
		crp_put_le64(p + 48 + 16 * i, s->rec[i].gen);
		crp_put_le64(p + 56 + 16 * i, s->rec[i].blkno);
	}
	crp_bhdr_out(&h, blk);
}

int crp_shared_in(const void *blk, uint64_t fsid, struct crp_shared *s, char *err,
		  size_t errlen)
{
	const uint8_t *p = (const uint8_t *)blk + CRP_HDR_SIZE;
	struct crp_bhdr h;
	int r;

	memset(s, 0, sizeof(*s));
	r = crp_bhdr_in(blk, CRP_MAGIC_SHARED, CRP_SHARED_BLKNO, fsid, &h, err, errlen);
	if (r < 0)
		return r;
	s->generation = crp_get_le64(p + 0);
	s->flags = crp_get_le32(p + 8);
	s->slot = crp_get_le32(p + 12);
	s->seq = crp_get_le64(p + 16);
	s->pos = crp_get_le64(p + 24);
	s->lost_gen = crp_get_le64(p + 32);
	s->head = crp_get_le32(p + 40);
	s->member_epoch = crp_get_le32(p + 44);
	for (uint32_t i = 0; i < CRP_SHARED_RECS; i++) {
		s->rec[i].gen = crp_get_le64(p + 48 + 16 * i);
		s->rec[i].blkno = crp_get_le64(p + 56 + 16 * i);
	}
	if ((s->flags & ~(CRP_SHARED_PENDING | CRP_SHARED_HELD)) || s->head >= CRP_SHARED_RECS ||
	    s->lost_gen > s->generation)
		return fail(-CRP_ECORRUPT, err, errlen,
			    "shared state block (block %u) is malformed", CRP_SHARED_BLKNO);
	for (uint32_t i = 0; i < CRP_SHARED_RECS; i++)
		if (s->rec[i].gen > s->generation)
			return fail(-CRP_ECORRUPT, err, errlen,
				    "shared state block (block %u): record %u is newer than the "
				    "generation", CRP_SHARED_BLKNO, i);
	return 0;
}

/* ---- journal header ---- */

void crp_jhdr_out(const struct crp_jhdr *j, uint64_t blkno, uint64_t fsid, void *blk)
{
	struct crp_bhdr h = { .magic = CRP_MAGIC_JHDR, .blkno = blkno, .fsid = fsid,
			      .owner = j->slot };
	uint8_t *p = (uint8_t *)blk + CRP_HDR_SIZE;

	memset(blk, 0, CRP_BLOCK);
	crp_put_le64(p + 0, j->start);
	crp_put_le64(p + 8, j->seq);
	crp_put_le32(p + 16, j->slot);
	crp_bhdr_out(&h, blk);
}

int crp_jhdr_in(const void *blk, uint64_t blkno, uint64_t fsid, struct crp_jhdr *j, char *err,
		size_t errlen)
{
	const uint8_t *p = (const uint8_t *)blk + CRP_HDR_SIZE;
	struct crp_bhdr h;
	int r;

	memset(j, 0, sizeof(*j));
	r = crp_bhdr_in(blk, CRP_MAGIC_JHDR, blkno, fsid, &h, err, errlen);
	if (r < 0)
		return r;
	j->start = crp_get_le64(p + 0);
	j->seq = crp_get_le64(p + 8);
	j->slot = crp_get_le32(p + 16);
	if (j->slot != h.owner)
		return fail(-CRP_ECORRUPT, err, errlen, "journal header at block %llu is malformed",
			    (unsigned long long)blkno);
	return 0;
}

/* ---- inode ---- */

void crp_inode_out(const struct crp_inode *in, void *buf)
{
	uint8_t *b = buf;

	memset(b, 0, CRP_INODE_SIZE);
	crp_put_le32(b + 0, CRP_INODE_MAGIC);
	crp_put_le16(b + 4, CRP_ONDISK_VERSION);
	crp_put_le16(b + 6, (uint16_t)in->flags);
	crp_put_le64(b + 16, in->ino);
	crp_put_le64(b + 24, in->generation);
	crp_put_le32(b + 32, in->mode);
	crp_put_le32(b + 36, in->nlink);
	crp_put_le32(b + 40, in->uid);
	crp_put_le32(b + 44, in->gid);
	crp_put_le64(b + 48, in->size);
	crp_put_le64(b + 56, in->blocks);
	crp_put_le64(b + 64, in->rdev);
	crp_put_le64(b + 72, (uint64_t)in->atime_sec);
	crp_put_le64(b + 80, (uint64_t)in->mtime_sec);
	crp_put_le64(b + 88, (uint64_t)in->ctime_sec);
	crp_put_le64(b + 96, (uint64_t)in->btime_sec);
	crp_put_le32(b + 104, in->atime_nsec);
	crp_put_le32(b + 108, in->mtime_nsec);
	crp_put_le32(b + 112, in->ctime_nsec);
	crp_put_le32(b + 116, in->btime_nsec);
	crp_put_le64(b + 120, in->xattr_blk);
	crp_put_le64(b + 128, in->parent);
	crp_put_le64(b + 136, in->dir_entries);
	crp_put_le32(b + 144, in->dir_nbuckets);
	crp_put_le32(b + 148, in->nextents);
	crp_put_le64(b + 152, in->ext_chain);
	crp_put_le32(b + 160, in->inline_len);
	if (in->flags & CRP_IF_INLINE_DATA)
		memcpy(b + 192, in->inline_data, CRP_MIN(in->inline_len, CRP_INLINE_SIZE));
	else if (!(in->flags & CRP_IF_EXT_CHAIN))
		crp_extents_out(in->ext, CRP_MIN(in->nextents, CRP_INLINE_EXTENTS), b + 192);
	crp_put_le64(b + CSUM_OFF_BLOCK, csum_skip(b, CRP_INODE_SIZE, CSUM_OFF_BLOCK));
}

int crp_inode_in(const void *buf, uint64_t expect_ino, struct crp_inode *in, char *err,
		 size_t errlen)
{
	const uint8_t *b = buf;

	memset(in, 0, sizeof(*in));
	if (all_zero(b, CRP_INODE_SIZE))
		return 1;
	if (crp_get_le32(b) != CRP_INODE_MAGIC)
		return fail(-CRP_ECORRUPT, err, errlen, "inode %llu has a bad magic number",
			    (unsigned long long)expect_ino);
	if (crp_get_le16(b + 4) != CRP_ONDISK_VERSION)
		return fail(-CRP_ECORRUPT, err, errlen, "inode %llu has version %u",
			    (unsigned long long)expect_ino, crp_get_le16(b + 4));
	if (crp_get_le64(b + CSUM_OFF_BLOCK) != csum_skip(b, CRP_INODE_SIZE, CSUM_OFF_BLOCK))
		return fail(-CRP_ECHECKSUM, err, errlen, "inode %llu: checksum mismatch",
			    (unsigned long long)expect_ino);
	in->flags = crp_get_le16(b + 6);
	in->ino = crp_get_le64(b + 16);
	in->generation = crp_get_le64(b + 24);
	in->mode = crp_get_le32(b + 32);
	in->nlink = crp_get_le32(b + 36);
	in->uid = crp_get_le32(b + 40);
	in->gid = crp_get_le32(b + 44);
	in->size = crp_get_le64(b + 48);
	in->blocks = crp_get_le64(b + 56);
	in->rdev = crp_get_le64(b + 64);
	in->atime_sec = (int64_t)crp_get_le64(b + 72);
	in->mtime_sec = (int64_t)crp_get_le64(b + 80);
	in->ctime_sec = (int64_t)crp_get_le64(b + 88);
	in->btime_sec = (int64_t)crp_get_le64(b + 96);
	in->atime_nsec = crp_get_le32(b + 104);
	in->mtime_nsec = crp_get_le32(b + 108);
	in->ctime_nsec = crp_get_le32(b + 112);
	in->btime_nsec = crp_get_le32(b + 116);
	in->xattr_blk = crp_get_le64(b + 120);
	in->parent = crp_get_le64(b + 128);
	in->dir_entries = crp_get_le64(b + 136);
	in->dir_nbuckets = crp_get_le32(b + 144);
	in->nextents = crp_get_le32(b + 148);
	in->ext_chain = crp_get_le64(b + 152);
	in->inline_len = crp_get_le32(b + 160);
	if (in->ino != expect_ino)
		return fail(-CRP_ECORRUPT, err, errlen,
			    "inode %llu says it is inode %llu (misdirected write)",
			    (unsigned long long)expect_ino, (unsigned long long)in->ino);
	if (in->atime_nsec >= 1000000000u || in->mtime_nsec >= 1000000000u ||
	    in->ctime_nsec >= 1000000000u || in->btime_nsec >= 1000000000u ||
	    in->inline_len > CRP_INLINE_SIZE || (in->flags & ~7u) ||
	    ((in->flags & CRP_IF_INLINE_DATA) && (in->flags & CRP_IF_EXT_CHAIN)) ||
	    (!(in->flags & (CRP_IF_INLINE_DATA | CRP_IF_EXT_CHAIN)) &&
	     in->nextents > CRP_INLINE_EXTENTS) ||
	    ((in->flags & CRP_IF_EXT_CHAIN) && !in->ext_chain))
		return fail(-CRP_ECORRUPT, err, errlen, "inode %llu has inconsistent fields",
			    (unsigned long long)expect_ino);
	if (in->flags & CRP_IF_INLINE_DATA)
		memcpy(in->inline_data, b + 192, in->inline_len);
	else if (!(in->flags & CRP_IF_EXT_CHAIN))
		crp_extents_in(b + 192, in->nextents, in->ext);
	return 0;
}

/* ---- payloads ---- */

void crp_extents_out(const struct crp_extent *e, uint32_t n, void *p)
{
	uint8_t *b = p;

	for (uint32_t i = 0; i < n; i++, b += CRP_EXTENT_SIZE) {
		crp_put_le64(b + 0, e[i].lblk);
		crp_put_le64(b + 8, e[i].pblk);
		crp_put_le32(b + 16, e[i].len);
		crp_put_le32(b + 20, e[i].flags);
	}
}

void crp_extents_in(const void *p, uint32_t n, struct crp_extent *e)
{
	const uint8_t *b = p;

	for (uint32_t i = 0; i < n; i++, b += CRP_EXTENT_SIZE) {
		e[i].lblk = crp_get_le64(b + 0);
		e[i].pblk = crp_get_le64(b + 8);
		e[i].len = crp_get_le32(b + 16);
		e[i].flags = crp_get_le32(b + 20);
	}
}

void crp_u64s_out(const uint64_t *v, uint32_t n, void *p)
{
	for (uint32_t i = 0; i < n; i++)
		crp_put_le64((uint8_t *)p + 8 * i, v[i]);
}

void crp_u64s_in(const void *p, uint32_t n, uint64_t *v)
{
	for (uint32_t i = 0; i < n; i++)
		v[i] = crp_get_le64((const uint8_t *)p + 8 * i);
}

uint32_t crp_dirent_out(const struct crp_dirent *d, void *p)
{
	uint8_t *b = p;
	uint32_t rl = crp_dirent_reclen(d->namelen);

	memset(b, 0, rl);
	crp_put_le64(b + 0, d->ino);
	crp_put_le32(b + 8, d->hash);
	b[12] = d->namelen;
	b[13] = d->type;
	memcpy(b + 16, d->name, d->namelen);
	return rl;
}

int crp_dirent_in(const void *p, uint32_t avail, struct crp_dirent *d)
{
	const uint8_t *b = p;
	uint32_t rl;

	if (avail < CRP_DIRENT_HDR)
		return -CRP_ECORRUPT;
	d->ino = crp_get_le64(b + 0);
	d->hash = crp_get_le32(b + 8);
	d->namelen = b[12];
	d->type = b[13];
	rl = crp_dirent_reclen(d->namelen);
	if (!d->namelen || rl > avail || !d->ino)
		return -CRP_ECORRUPT;
	memcpy(d->name, b + 16, d->namelen);
	d->name[d->namelen] = 0;
	if (memchr(d->name, 0, d->namelen) || memchr(d->name, '/', d->namelen))
		return -CRP_ECORRUPT;
	return (int)rl;
}

uint32_t crp_xattr_out(const char *name, uint32_t namelen, const void *value,
		       uint32_t valuelen, void *p)
{
	uint8_t *b = p;
	uint32_t rl = crp_xattr_reclen(namelen, valuelen);

	memset(b, 0, rl);
	b[0] = (uint8_t)namelen;
	crp_put_le16(b + 2, (uint16_t)valuelen);
	memcpy(b + 4, name, namelen);
	if (valuelen)
		memcpy(b + 4 + namelen, value, valuelen);
	return rl;
}

int crp_xattr_in(const void *p, uint32_t avail, struct crp_xattr *x)
{
	const uint8_t *b = p;
	uint32_t rl;

	if (avail < 4)
		return -CRP_ECORRUPT;
	x->namelen = b[0];
	x->valuelen = crp_get_le16(b + 2);
	rl = crp_xattr_reclen(x->namelen, x->valuelen);
	if (!x->namelen || rl > avail)
		return -CRP_ECORRUPT;
	x->name = (const char *)b + 4;
	x->value = b + 4 + x->namelen;
	if (memchr(x->name, 0, x->namelen))
		return -CRP_ECORRUPT;
	return (int)rl;
}

/* ---- layout ---- */

uint64_t crp_data_offset_for(uint32_t max_hosts, uint32_t chunk)
{
	uint64_t need = CRP_INTENT_OFFSET + (uint64_t)max_hosts * CRP_INTENT_BYTES;
	uint64_t align = CRP_MAX((uint64_t)chunk, 1024u * 1024u);

	return CRP_DIV_ROUND_UP(need, align) * align;
}

int crp_sb_layout(struct crp_sb *sb, char *err, size_t errlen)
{
	uint32_t ndata = sb->nmembers - (sb->level == 6 ? 2 : 1);
	uint64_t total, jb, inodes, rest, last;

	sb->block_size = CRP_BLOCK;
	sb->slot_offset = CRP_SLOT_OFFSET;
	sb->intent_offset = CRP_INTENT_OFFSET;
	sb->intent_bytes = CRP_INTENT_BYTES;
	total = sb->nstripes * sb->chunk * (uint64_t)ndata / CRP_BLOCK;
	/* A journal holds two of the largest transactions (descriptor, 504
	 * images, commit) plus its header and orphan list, and grows to 1/16
	 * of the array shared by the hosts, up to 32 MiB each (16 MiB each of
	 * 8 hosts on 2 GiB, as ext4 would give one host 64 MiB): the longer
	 * the ring, the more fsyncs a deferred checkpoint spans before the
	 * ring starts over. */
	jb = total / 16 / sb->max_hosts;
	jb = CRP_MAX(jb, 2 + 2 * (CRP_JOURNAL_MAX_TX + 2) + 8);
	jb = CRP_MIN(jb, 8192);
	sb->journal_start = 2;
	sb->journal_blocks = (uint32_t)jb;
	sb->features = CRP_FEATURES;
	sb->intent_spb = (uint32_t)CRP_MAX(CRP_DIV_ROUND_UP(sb->nstripes, CRP_INTENT_BITS),
					   CRP_INTENT_REGION_BYTES / sb->chunk);
	sb->otable_start = sb->journal_start + (uint64_t)sb->max_hosts * jb;
	sb->otable_blocks = CRP_OTABLE_BLOCKS;
	/* One inode per 16 KiB of array. */
	inodes = CRP_MAX(total / 4, 64);
	inodes = CRP_MIN(inodes, (uint64_t)UINT32_MAX);
	sb->inode_count = inodes;
	sb->ibitmap_start = sb->otable_start + (uint64_t)sb->max_hosts * sb->otable_blocks;
	sb->ibitmap_blocks = (uint32_t)CRP_DIV_ROUND_UP(inodes, CRP_BITS_PER_BLOCK);
	sb->itable_start = sb->ibitmap_start + sb->ibitmap_blocks;
	sb->ag_start = sb->itable_start + CRP_DIV_ROUND_UP(inodes, CRP_INODES_PER_BLOCK);
	sb->ag_blocks = CRP_BITS_PER_BLOCK;
	if (total < sb->ag_start + CRP_AG_META_BLOCKS + 256)
		return fail(-CRP_EGEOMETRY, err, errlen,
			    "the array holds %llu blocks of 4 KiB, too few for %u host journals, "
			    "the inode table and one allocation group",
			    (unsigned long long)total, sb->max_hosts);
	rest = total - sb->ag_start;
	sb->ag_count = (uint32_t)CRP_DIV_ROUND_UP(rest, sb->ag_blocks);
	last = rest - (uint64_t)(sb->ag_count - 1) * sb->ag_blocks;
	if (last <= CRP_AG_META_BLOCKS + 64 && sb->ag_count > 1) {
		/* A last group too small to be worth its bitmap: leave it out. */
		sb->ag_count--;
		total = sb->ag_start + (uint64_t)sb->ag_count * sb->ag_blocks;
	}
	sb->total_blocks = total;
	sb->root_ino = 1;
	return 0;
}
