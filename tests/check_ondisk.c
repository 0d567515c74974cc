/*
 * The on-disk format: every record round-trips through its _out/_in pair,
 * a flipped byte fails the checksum, and a bad magic or version is refused
 * with a message that says so.
 */
#include <check.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#define XXH_STATIC_LINKING_ONLY /* XXH3_state_t, for the streaming oracle */
#include <xxhash.h>

#include "crpfs/err.h"
#include "crpfs/ondisk.h"
#include "crpfs/util.h"

static uint8_t blk[CRP_BLOCK];
static char err[256];

static void make_sb(struct crp_sb *sb, uint32_t level, uint32_t n, uint32_t chunk,
		    uint64_t member_size, uint32_t hosts)
{
	memset(sb, 0, sizeof(*sb));
	for (int i = 0; i < 16; i++)
		sb->uuid[i] = (uint8_t)(0x10 + i);
	snprintf(sb->label, sizeof(sb->label), "test-fs");
	sb->level = level;
	sb->nmembers = n;
	sb->chunk = chunk;
	sb->max_hosts = hosts;
	sb->lock_mode = 1;
	sb->data_offset = crp_data_offset_for(hosts, chunk);
	sb->nstripes = (member_size - sb->data_offset) / chunk;
	sb->hash_seed = 0x1234567890abcdefull;
	sb->ctime_ns = 1700000000123456789ull;
	sb->generation = 7;
	ck_assert_int_eq(crp_sb_layout(sb, err, sizeof(err)), 0);
}

START_TEST(sb_round_trip)
{
	struct crp_sb a, b;

	make_sb(&a, 5, 4, 65536, 1ull << 30, 8);
	crp_sb_out(&a, blk);
	ck_assert_int_eq(crp_sb_in(blk, &b, err, sizeof(err)), 0);
	ck_assert_int_eq(memcmp(&a, &b, sizeof(a)), 0);
}
END_TEST

/* Intent regions: at least 16 MiB of a member per bit on a new
 * filesystem; one made before keeps its regions (and no other mix goes). */
START_TEST(sb_intent_regions)
{
	struct crp_sb a, b;
	uint64_t old_spb;

	make_sb(&a, 5, 4, 65536, 1ull << 30, 8);
	ck_assert_uint_eq(a.features, CRP_FEATURES);
	ck_assert_uint_eq(crp_sb_intent_spb(&a), (16u << 20) / 65536);
	make_sb(&a, 5, 4, 4096, 1ull << 30, 8);
	ck_assert_uint_eq(crp_sb_intent_spb(&a), (16u << 20) / 4096);

	a.features = CRP_FEATURES_OLD;
	a.intent_spb = 0;
	old_spb = CRP_DIV_ROUND_UP(a.nstripes, CRP_INTENT_BITS);
	ck_assert_uint_eq(crp_sb_intent_spb(&a), old_spb ? old_spb : 1);
	crp_sb_out(&a, blk);
	ck_assert_int_eq(crp_sb_in(blk, &b, err, sizeof(err)), 0);
	ck_assert_uint_eq(crp_sb_intent_spb(&b), crp_sb_intent_spb(&a));

	a.intent_spb = 8; /* a size without the feature that says so */
	crp_sb_out(&a, blk);
	ck_assert_int_lt(crp_sb_in(blk, &b, err, sizeof(err)), 0);
	a.features = CRP_FEATURES;
	a.intent_spb = 0; /* the feature without a size */
	crp_sb_out(&a, blk);
	ck_assert_int_lt(crp_sb_in(blk, &b, err, sizeof(err)), 0);
}
END_TEST

START_TEST(sb_flip_every_byte)
{
	struct crp_sb a, b;

	make_sb(&a, 6, 5, 4096, 512ull << 20, 3);
	crp_sb_out(&a, blk);
	for (int i = 0; i < CRP_SB_SIZE; i++) {
		blk[i] ^= 0x40;
		ck_assert_int_lt(crp_sb_in(blk, &b, err, sizeof(err)), 0);
		blk[i] ^= 0x40;
	}
	ck_assert_int_eq(crp_sb_in(blk, &b, err, sizeof(err)), 0);
}
END_TEST

START_TEST(sb_bad_magic_version)
{
	struct crp_sb a, b;

	make_sb(&a, 5, 3, 65536, 1ull << 30, 8);
	crp_sb_out(&a, blk);
	blk[0] ^= 1;
	ck_assert_int_eq(crp_sb_in(blk, &b, err, sizeof(err)), -CRP_ECORRUPT);
	ck_assert_ptr_nonnull(strstr(err, "magic"));
	blk[0] ^= 1;
	crp_put_le16(blk + 8, 99);
	ck_assert_int_eq(crp_sb_in(blk, &b, err, sizeof(err)), -CRP_ECORRUPT);
	ck_assert_ptr_nonnull(strstr(err, "version 99"));
	memset(blk, 0, sizeof(blk));
	ck_assert_int_eq(crp_sb_in(blk, &b, err, sizeof(err)), -CRP_ECORRUPT);
	ck_assert_ptr_nonnull(strstr(err, "never written"));
}
END_TEST

START_TEST(sb_layout_fits)
{
	static const uint32_t chunks[] = { 4096, 65536, 1u << 20 };
	static const uint64_t sizes[] = { 200ull << 20, 1ull << 30, 3ull << 40 };
	struct crp_sb a, b;

	for (int c = 0; c < 3; c++)
		for (int s = 0; s < 3; s++)
			for (uint32_t h = 1; h <= 64; h *= 4) {
				make_sb(&a, 5, 3, chunks[c], sizes[s], h);
				ck_assert_int_eq(crp_sb_check(&a, err, sizeof(err)), 0);
				ck_assert_uint_ge(a.journal_blocks, 2 * CRP_JOURNAL_MAX_TX + 8);
				ck_assert_uint_le(a.total_blocks * CRP_BLOCK,
						  a.nstripes * a.chunk * 2);
				crp_sb_out(&a, blk);
				ck_assert_int_eq(crp_sb_in(blk, &b, err, sizeof(err)), 0);
			}
}
END_TEST

START_TEST(sb_layout_too_small)
{
	struct crp_sb a;

	memset(&a, 0, sizeof(a));
	a.level = 5;
	a.nmembers = 3;
	a.chunk = 65536;
	a.max_hosts = 64;
	a.data_offset = crp_data_offset_for(64, 65536);
	a.nstripes = 100;
	ck_assert_int_eq(crp_sb_layout(&a, err, sizeof(err)), -CRP_EGEOMETRY);
	ck_assert_ptr_nonnull(strstr(err, "too few"));
}
END_TEST

START_TEST(label_round_trip)
{
	struct crp_label a, b;

	memset(&a, 0, sizeof(a));
	make_sb(&a.sb, 5, 4, 65536, 1ull << 30, 8);
	memcpy(a.uuid, a.sb.uuid, 16);
	a.index = 2;
	a.nmembers = 4;
	a.level = 5;
	a.chunk = 65536;
	a.data_offset = a.sb.data_offset;
	a.nstripes = a.sb.nstripes;
	a.lock_mode = 1;
	a.max_hosts = 8;
	a.generation = 7;
	a.member_size = 1ull << 30;
	snprintf(a.fslabel, sizeof(a.fslabel), "test-fs");
	a.events = 9;
	a.rebuild_ns = 12345;
	snprintf(a.rebuilder, sizeof(a.rebuilder), "node-b");
	snprintf(a.scrubber, sizeof(a.scrubber), "node-c.admin");
	a.scrub_ns = 23456;
	a.scrub_stripe = 1234;
	a.scrub_start_ns = 3456;
	for (int i = 0; i < 4; i++) {
		memset(a.table[i].uuid, 0x10 + i, 16);
		a.table[i].state = i == 1 ? CRP_MS_FAILED : i == 3 ? CRP_MS_REBUILDING : CRP_MS_IN_SYNC;
	}
	a.table[3].checkpoint = 77;
	memcpy(a.member_uuid, a.table[2].uuid, 16);
	crp_label_out(&a, blk);
	ck_assert_int_eq(crp_label_in(blk, &b, err, sizeof(err)), 0);
	ck_assert_int_eq(memcmp(&a, &b, sizeof(a)), 0);
	/* The scrub record sits at bytes 256..343. */
	ck_assert_str_eq((const char *)blk + 256, "node-c.admin");
	ck_assert_uint_eq(crp_get_le64(blk + 320), 23456);
	ck_assert_uint_eq(crp_get_le64(blk + 328), 1234);
	ck_assert_uint_eq(crp_get_le64(blk + 336), 3456);
	/* A table that does not name the member at its position is refused. */
	memset(a.member_uuid, 0x77, 16);
	crp_label_out(&a, blk);
	ck_assert_int_eq(crp_label_in(blk, &b, err, sizeof(err)), -CRP_ECORRUPT);
	memcpy(a.member_uuid, a.table[2].uuid, 16);
	/* So is one with a state beyond the member count. */
	a.table[5].state = CRP_MS_IN_SYNC;
	crp_label_out(&a, blk);
	ck_assert_int_eq(crp_label_in(blk, &b, err, sizeof(err)), -CRP_ECORRUPT);
	a.table[5].state = CRP_MS_NONE;
	crp_label_out(&a, blk);
	for (unsigned i = 0; i < CRP_BLOCK; i += 7) {
		blk[i] ^= 0x01;
		ck_assert_int_lt(crp_label_in(blk, &b, err, sizeof(err)), 0);
		blk[i] ^= 0x01;
	}
	blk[3] ^= 0xff;
	ck_assert_int_eq(crp_label_in(blk, &b, err, sizeof(err)), -CRP_ECORRUPT);
	ck_assert_ptr_nonnull(strstr(err, "no crpfs label"));
}
END_TEST

/* A member name keeps its member, its origin and its spec; a flipped byte
 * or a blank record does not pass for a name. */
START_TEST(member_name_round_trip)
{
	struct crp_member_name a = { .origin = CRP_NAME_REPLACE }, b;
	uint8_t buf[CRP_NAME_REC];

	memset(a.uuid, 0x5a, sizeof(a.uuid));
	snprintf(a.spec, sizeof(a.spec), "iscsi://127.0.0.1:3260/iqn.2026-11.org.example:san/7");
	crp_member_name_out(&a, buf);
	ck_assert_int_eq(crp_member_name_in(buf, &b), 0);
	ck_assert_mem_eq(b.uuid, a.uuid, 16);
	ck_assert_uint_eq(b.origin, CRP_NAME_REPLACE);
	ck_assert_str_eq(b.spec, a.spec);
	buf[40] ^= 1;
	ck_assert_int_lt(crp_member_name_in(buf, &b), 0);
	memset(buf, 0, sizeof(buf));
	ck_assert_int_eq(crp_member_name_in(buf, &b), 1);
}
END_TEST

START_TEST(bhdr_checks)
{
	struct crp_bhdr h = { .magic = CRP_MAGIC_DIR, .blkno = 1234, .fsid = 99, .owner = 5,
			      .next = 77, .count = 3, .aux = 100, .aux64 = 42 };
	struct crp_bhdr g;

	memset(blk, 0xa5, sizeof(blk));
	crp_bhdr_out(&h, blk);
	ck_assert_int_eq(crp_bhdr_in(blk, CRP_MAGIC_DIR, 1234, 99, &g, err, sizeof(err)), 0);
	ck_assert_uint_eq(g.owner, 5);
	ck_assert_uint_eq(g.next, 77);
	ck_assert_uint_eq(g.count, 3);
	ck_assert_uint_eq(g.aux, 100);
	ck_assert_uint_eq(g.aux64, 42);
	ck_assert_int_eq(crp_bhdr_in(blk, CRP_MAGIC_XATTR, 1234, 99, &g, err, sizeof(err)),
			 -CRP_ECORRUPT);
	ck_assert_int_eq(crp_bhdr_in(blk, CRP_MAGIC_DIR, 1235, 99, &g, err, sizeof(err)),
			 -CRP_ECORRUPT);
	ck_assert_ptr_nonnull(strstr(err, "misdirected"));
	ck_assert_int_eq(crp_bhdr_in(blk, CRP_MAGIC_DIR, 1234, 98, &g, err, sizeof(err)),
			 -CRP_ECORRUPT);
	ck_assert_ptr_nonnull(strstr(err, "another filesystem"));
	blk[4000] ^= 0x10; /* payload */
	ck_assert_int_eq(crp_bhdr_in(blk, CRP_MAGIC_DIR, 1234, 99, &g, err, sizeof(err)),
			 -CRP_ECHECKSUM);
	ck_assert_ptr_nonnull(strstr(err, "checksum"));
	blk[4000] ^= 0x10;
	crp_put_le16(blk + 4, 2);
	ck_assert_int_eq(crp_bhdr_in(blk, CRP_MAGIC_DIR, 1234, 99, &g, err, sizeof(err)),
			 -CRP_ECORRUPT);
	ck_assert_ptr_nonnull(strstr(err, "version 2"));
}
END_TEST

START_TEST(slot_and_jhdr_round_trip)
{
	struct crp_slot s = { .slot = 3, .state = CRP_SLOT_ACTIVE, .heartbeat = 11,
			      .heartbeat_ns = 22, .mount_ns = 33, .pr_key = 44 };
	struct crp_slot t;
	struct crp_jhdr j = { .start = 17, .seq = 900, .slot = 3 }, k;

	snprintf(s.host, sizeof(s.host), "host-a");
	crp_slot_out(&s, 19, 5, blk);
	ck_assert_int_eq(crp_slot_in(blk, 19, 5, &t, err, sizeof(err)), 0);
	ck_assert_int_eq(memcmp(&s, &t, sizeof(s)), 0);
	blk[CRP_HDR_SIZE + 41] ^= 1;
	ck_assert_int_eq(crp_slot_in(blk, 19, 5, &t, err, sizeof(err)), -CRP_ECHECKSUM);

	crp_jhdr_out(&j, 66, 5, blk);
	ck_assert_int_eq(crp_jhdr_in(blk, 66, 5, &k, err, sizeof(err)), 0);
	ck_assert_uint_eq(k.start, 17);
	ck_assert_uint_eq(k.seq, 900);
	ck_assert_uint_eq(k.slot, 3);
	blk[CRP_HDR_SIZE] ^= 1;
	ck_assert_int_eq(crp_jhdr_in(blk, 66, 5, &k, err, sizeof(err)), -CRP_ECHECKSUM);
}
END_TEST

static void make_inode(struct crp_inode *in)
{
	memset(in, 0, sizeof(*in));
	in->ino = 4242;
	in->generation = 3;
	in->mode = 0100644;
	in->nlink = 2;
	in->uid = 1000;
	in->gid = 100;
	in->size = (5ull << 32) + 17;
	in->blocks = 99;
	in->rdev = 0;
	in->atime_sec = -5;
	in->atime_nsec = 999999999;
	in->mtime_sec = 1700000000;
	in->mtime_nsec = 1;
	in->ctime_sec = 1700000001;
	in->btime_sec = 1600000000;
	in->xattr_blk = 5555;
	in->nextents = 2;
	in->ext[0] = (struct crp_extent){ .lblk = 0, .pblk = 1000, .len = 10, .flags = 0 };
	in->ext[1] = (struct crp_extent){ .lblk = 1ull << 21, .pblk = 9000, .len = 3,
					  .flags = CRP_EXT_UNWRITTEN };
}

START_TEST(inode_round_trip)
{
	uint8_t b[CRP_INODE_SIZE];
	struct crp_inode a, c;

	make_inode(&a);
	crp_inode_out(&a, b);
	ck_assert_int_eq(crp_inode_in(b, 4242, &c, err, sizeof(err)), 0);
	ck_assert_int_eq(memcmp(&a, &c, sizeof(a)), 0);
	ck_assert_int_eq(crp_inode_in(b, 4243, &c, err, sizeof(err)), -CRP_ECORRUPT);
	for (int i = 0; i < CRP_INODE_SIZE; i++) {
		b[i] ^= 0x80;
		ck_assert_int_lt(crp_inode_in(b, 4242, &c, err, sizeof(err)), 0);
		b[i] ^= 0x80;
	}
	/* A symlink target inline. */
	make_inode(&a);
	a.nextents = 0;
	memset(a.ext, 0, sizeof(a.ext));
	a.flags = CRP_IF_INLINE_DATA;
	a.mode = 0120777;
	a.inline_len = 11;
	memcpy(a.inline_data, "/etc/passwd", 11);
	crp_inode_out(&a, b);
	ck_assert_int_eq(crp_inode_in(b, 4242, &c, err, sizeof(err)), 0);
	ck_assert_int_eq(memcmp(&a, &c, sizeof(a)), 0);
	/* Never used. */
	memset(b, 0, sizeof(b));
	ck_assert_int_eq(crp_inode_in(b, 4242, &c, err, sizeof(err)), 1);
}
END_TEST

START_TEST(inode_bad_fields)
{
	uint8_t b[CRP_INODE_SIZE];
	struct crp_inode a, c;

	make_inode(&a);
	a.nextents = CRP_INLINE_EXTENTS + 1; /* too many for inline */
	crp_inode_out(&a, b);
	ck_assert_int_eq(crp_inode_in(b, 4242, &c, err, sizeof(err)), -CRP_ECORRUPT);
	ck_assert_ptr_nonnull(strstr(err, "inconsistent"));
	make_inode(&a);
	a.mtime_nsec = 1000000000u;
	crp_inode_out(&a, b);
	ck_assert_int_eq(crp_inode_in(b, 4242, &c, err, sizeof(err)), -CRP_ECORRUPT);
	make_inode(&a);
	crp_inode_out(&a, b);
	b[0] = 'X';
	ck_assert_int_eq(crp_inode_in(b, 4242, &c, err, sizeof(err)), -CRP_ECORRUPT);
	ck_assert_ptr_nonnull(strstr(err, "magic"));
}
END_TEST

START_TEST(extents_u64s_round_trip)
{
	struct crp_extent e[CRP_EXTENTS_PER_BLOCK], f[CRP_EXTENTS_PER_BLOCK];
	uint64_t v[CRP_CSUMS_PER_BLOCK], w[CRP_CSUMS_PER_BLOCK];

	for (uint32_t i = 0; i < CRP_EXTENTS_PER_BLOCK; i++)
		e[i] = (struct crp_extent){ .lblk = i * 1000003ull << 20, .pblk = ~(uint64_t)i,
					    .len = i * 7, .flags = i & 1 };
	crp_extents_out(e, CRP_EXTENTS_PER_BLOCK, blk + CRP_HDR_SIZE);
	crp_extents_in(blk + CRP_HDR_SIZE, CRP_EXTENTS_PER_BLOCK, f);
	ck_assert_int_eq(memcmp(e, f, sizeof(e)), 0);
	for (uint32_t i = 0; i < CRP_CSUMS_PER_BLOCK; i++)
		v[i] = i * 0x9e3779b97f4a7c15ull;
	crp_u64s_out(v, CRP_CSUMS_PER_BLOCK, blk + CRP_HDR_SIZE);
	crp_u64s_in(blk + CRP_HDR_SIZE, CRP_CSUMS_PER_BLOCK, w);
	ck_assert_int_eq(memcmp(v, w, sizeof(v)), 0);
	ck_assert_uint_eq(blk[CRP_HDR_SIZE + 8], 0x15); /* little-endian */
}
END_TEST

START_TEST(dirent_round_trip)
{
	struct crp_dirent a = { .ino = 77, .hash = 0xdeadbeef, .type = 4 }, b;
	uint32_t rl;

	memset(a.name, 'n', 255);
	a.namelen = 255;
	a.name[255] = 0;
	rl = crp_dirent_out(&a, blk);
	ck_assert_uint_eq(rl, crp_dirent_reclen(255));
	ck_assert_uint_eq(rl % 8, 0);
	ck_assert_int_eq(crp_dirent_in(blk, rl, &b), (int)rl);
	ck_assert_uint_eq(b.ino, 77);
	ck_assert_uint_eq(b.hash, 0xdeadbeef);
	ck_assert_uint_eq(b.type, 4);
	ck_assert_int_eq(memcmp(a.name, b.name, 256), 0);
	ck_assert_int_eq(crp_dirent_in(blk, rl - 8, &b), -CRP_ECORRUPT);
	blk[20] = '/';
	ck_assert_int_eq(crp_dirent_in(blk, rl, &b), -CRP_ECORRUPT);
	blk[20] = 'n';
	blk[12] = 0; /* empty name */
	ck_assert_int_eq(crp_dirent_in(blk, rl, &b), -CRP_ECORRUPT);
}
END_TEST

START_TEST(xattr_round_trip)
{
	struct crp_xattr x;
	uint32_t rl;
	char val[300];

	memset(val, 0xcc, sizeof(val));
	rl = crp_xattr_out("user.test", 9, val, sizeof(val), blk);
	ck_assert_uint_eq(rl, crp_xattr_reclen(9, 300));
	ck_assert_int_eq(crp_xattr_in(blk, rl, &x), (int)rl);
	ck_assert_uint_eq(x.namelen, 9);
	ck_assert_uint_eq(x.valuelen, 300);
	ck_assert_int_eq(memcmp(x.name, "user.test", 9), 0);
	ck_assert_int_eq(memcmp(x.value, val, 300), 0);
	ck_assert_int_eq(crp_xattr_in(blk, rl - 4, &x), -CRP_ECORRUPT);
}
END_TEST

START_TEST(hashes_stable)
{
	uint8_t d[CRP_BLOCK];

	memset(d, 0, sizeof(d));
	ck_assert_uint_eq(crp_data_csum(d), crp_data_csum(d));
	d[100] = 1;
	ck_assert_uint_ne(crp_data_csum(d), crp_xxh64(d, CRP_BLOCK, 1));
	ck_assert_uint_eq(crp_name_hash(5, "abc", 3), crp_name_hash(5, "abc", 3));
	ck_assert_uint_ne(crp_name_hash(5, "abc", 3), crp_name_hash(6, "abc", 3));
}
END_TEST

/* The data checksum is XXH3-64 of the block, whichever build computes it
 * (the AVX2 one where the CPU has it): the library's is the oracle. */
START_TEST(data_csum_is_xxh3)
{
	uint8_t *d = crp_alloc_buf(CRP_BLOCK + 64);

	ck_assert_ptr_nonnull(d);
	for (int k = 0; k < 200; k++) {
		uint8_t *p = d + (k % 2) * 8; /* aligned and not */

		for (size_t i = 0; i < CRP_BLOCK; i += 8) {
			uint64_t v = crp_random();

			memcpy(p + i, &v, 8);
		}
		if (k == 0)
			memset(p, 0, CRP_BLOCK);
		ck_assert_uint_eq(crp_data_csum(p), XXH3_64bits(p, CRP_BLOCK));
		if (__builtin_cpu_supports("avx2"))
			ck_assert_uint_eq(crp_xxh3_avx2(p, CRP_BLOCK), XXH3_64bits(p, CRP_BLOCK));
	}
	free(d);
}
END_TEST

/* A metadata block's checksum is XXH3-64 of the block with its own field
 * (bytes 8..15, crp_block_seal) taken as zero, as the streaming hash over
 * the three pieces computes it: the oracle for the one-shot on a copy. */
START_TEST(block_csum_skips_its_field)
{
	static const uint8_t zero[8];
	uint8_t *d = crp_alloc_buf(CRP_BLOCK + 64);

	ck_assert_ptr_nonnull(d);
	for (int k = 0; k < 200; k++) {
		uint8_t *p = d + (k % 2) * 8; /* aligned and not */
		XXH3_state_t st;
		uint64_t want;

		for (size_t i = 0; i < CRP_BLOCK; i += 8) {
			uint64_t v = crp_random();

			memcpy(p + i, &v, 8);
		}
		if (k == 0)
			memset(p, 0, CRP_BLOCK);
		XXH3_64bits_reset(&st);
		XXH3_64bits_update(&st, p, 8);
		XXH3_64bits_update(&st, zero, 8);
		XXH3_64bits_update(&st, p + 16, CRP_BLOCK - 16);
		want = XXH3_64bits_digest(&st);
		ck_assert_uint_eq(crp_block_csum_compute(p), want);
		crp_block_seal(p);
		ck_assert_uint_eq(crp_block_csum_stored(p), want);
		ck_assert_uint_eq(crp_block_csum_compute(p), want);
	}
	free(d);
}
END_TEST

static Suite *ondisk_suite(void)
{
	Suite *s = suite_create("ondisk");
	TCase *t = tcase_create("records");

	tcase_add_test(t, sb_round_trip);
	tcase_add_test(t, sb_intent_regions);
	tcase_add_test(t, sb_flip_every_byte);
	tcase_add_test(t, sb_bad_magic_version);
	tcase_add_test(t, sb_layout_fits);
	tcase_add_test(t, sb_layout_too_small);
	tcase_add_test(t, label_round_trip);
	tcase_add_test(t, member_name_round_trip);
	tcase_add_test(t, bhdr_checks);
	tcase_add_test(t, slot_and_jhdr_round_trip);
	tcase_add_test(t, inode_round_trip);
	tcase_add_test(t, inode_bad_fields);
	tcase_add_test(t, extents_u64s_round_trip);
	tcase_add_test(t, dirent_round_trip);
	tcase_add_test(t, xattr_round_trip);
	tcase_add_test(t, hashes_stable);
	tcase_add_test(t, data_csum_is_xxh3);
	tcase_add_test(t, block_csum_skips_its_field);
	suite_add_tcase(s, t);
	return s;
}

int main(void)
{
	SRunner *sr = srunner_create(ondisk_suite());
	int failed;

	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
