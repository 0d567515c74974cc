/*
 * The on-disk format of crpfs: every record, its in-memory form, and the
 * functions that convert one to the other.  crpfs(5) documents each byte.
 *
 * Rules (as sanlock's ondisk.c): structs live in memory, bytes live on
 * disk, and nothing is ever cast from one to the other.  Every record is
 * converted field by field to little-endian by a crp_*_out() function and
 * back by a crp_*_in() function in src/meta/ondisk.c, the one place that
 * knows the byte layout.  Every record carries a magic number, a version
 * and an XXH3-64 checksum computed over the record with the checksum field
 * zeroed; *_in() checks all three and fails with -CRP_ECORRUPT (bad magic,
 * version, location or size) or -CRP_ECHECKSUM, writing a sentence into
 * @err.  ondisk.c depends only on libc, xxhash and src/util, so that the
 * fuzzer can link it alone.
 *
 * Where things are (B = 4096-byte filesystem block):
 *
 *   Each member, from byte 0 (the reserved area, outside the RAID area):
 *     0                      label (4 KiB), with a copy of the superblock and
 *                            the member table
 *     CRP_NAMES_OFFSET + i*CRP_NAME_REC   name of the member at position i
 *     CRP_SLOT_OFFSET + i*B  host slot i, i < max_hosts (mirrored on all)
 *     CRP_INTENT_OFFSET + i*CRP_INTENT_BYTES   intent log of host i (issue 4)
 *     data_offset            RAID area (md layout, include/crpfs/geom.h)
 *
 *   The RAID area, in blocks of B (block n = array offset n*B):
 *     0                      superblock
 *     1                      shared state block (struct crp_shared)
 *     journal_start + h*journal_blocks   journal of host slot h:
 *                            +0 journal header, +1 orphan list, +2.. ring
 *     otable_start + k*max_hosts + h     block k of host slot h's open table
 *     ibitmap_start          inode bitmap blocks (CRP_BITS_PER_BLOCK each)
 *     itable_start           inode table (CRP_INODES_PER_BLOCK per block)
 *     ag_start + g*ag_blocks allocation group g: +0 bitmap, +1..+64
 *                            data checksums, then data and metadata blocks
 */
#ifndef CRPFS_ONDISK_H
#define CRPFS_ONDISK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define CRP_BLOCK 4096u
#define CRP_BLOCK_SHIFT 12
#define CRP_ONDISK_VERSION 1

/* Reserved area of each member (bytes from the start of the member). */
#define CRP_LABEL_OFFSET 0
#define CRP_SLOT_OFFSET (64u * 1024)
#define CRP_INTENT_OFFSET (1024u * 1024)
#define CRP_INTENT_BYTES (256u * 1024)
#define CRP_LABEL_SB_OFFSET 1024 /* superblock copy inside the label */
#define CRP_LABEL_TABLE_OFFSET 2048 /* member table inside the label */

#define CRP_SB_SIZE 1024
#define CRP_INODE_SIZE 512
#define CRP_INODES_PER_BLOCK (CRP_BLOCK / CRP_INODE_SIZE)
#define CRP_HDR_SIZE 64
#define CRP_PAYLOAD (CRP_BLOCK - CRP_HDR_SIZE)	     /* 4032 */
#define CRP_BITS_PER_BLOCK (CRP_PAYLOAD * 8)	     /* 32256 */
#define CRP_CSUMS_PER_BLOCK (CRP_PAYLOAD / 8)	     /* 504 */
#define CRP_AG_CSUM_BLOCKS (CRP_BITS_PER_BLOCK / CRP_CSUMS_PER_BLOCK) /* 64 */
#define CRP_AG_META_BLOCKS (1 + CRP_AG_CSUM_BLOCKS)   /* bitmap + csums */
#define CRP_EXTENT_SIZE 24
#define CRP_EXTENTS_PER_BLOCK (CRP_PAYLOAD / CRP_EXTENT_SIZE) /* 168 */
#define CRP_INLINE_SIZE 320
#define CRP_INLINE_EXTENTS (CRP_INLINE_SIZE / CRP_EXTENT_SIZE) /* 13 */
#define CRP_JOURNAL_MAX_TX (CRP_PAYLOAD / 8)	     /* 504 blocks a transaction */
#define CRP_ORPHANS_PER_BLOCK (CRP_PAYLOAD / 8)
#define CRP_HOST_MAX 64				     /* host name bytes with NUL */
#define CRP_LABEL_MAX 64			     /* fs label bytes with NUL */
#define CRP_DIRENT_HDR 16

/* Magic numbers (little-endian on disk). */
#define CRP_LABEL_MAGIC 0x4c424c5346505243ull /* "CRPFSLBL" */
#define CRP_SB_MAGIC 0x42535f5346505243ull    /* "CRPFS_SB" */
#define CRP_INODE_MAGIC 0x49505243u	      /* "CRPI" */
/* Block types of the common 64-byte block header. */
#define CRP_MAGIC_SLOT 0x48505243u	/* "CRPH" host slot */
#define CRP_MAGIC_JHDR 0x4a505243u	/* "CRPJ" journal header */
#define CRP_MAGIC_JDESC 0x444a5243u	/* "CRJD" journal descriptor */
#define CRP_MAGIC_JCOMMIT 0x434a5243u	/* "CRJC" journal commit */
#define CRP_MAGIC_ORPHAN 0x4f505243u	/* "CRPO" orphan list */
#define CRP_MAGIC_BITMAP 0x42505243u	/* "CRPB" allocation-group bitmap */
#define CRP_MAGIC_IBITMAP 0x4e505243u	/* "CRPN" inode bitmap */
#define CRP_MAGIC_CSUM 0x43505243u	/* "CRPC" data checksums */
#define CRP_MAGIC_EXTENT 0x45505243u	/* "CRPE" extent block */
#define CRP_MAGIC_DIR 0x44505243u	/* "CRPD" directory bucket */
#define CRP_MAGIC_XATTR 0x58505243u	/* "CRPX" extended attributes */
#define CRP_MAGIC_SHARED 0x53505243u	/* "CRPS" shared state */
#define CRP_MAGIC_INTENT 0x57505243u	/* "CRPW" write-intent log */
#define CRP_MAGIC_OPENTAB 0x54505243u	/* "CRPT" open table */

/* Feature flags of the superblock.  Every flag is required: a superblock
 * with a flag this crpfs does not know, or without one it needs, is
 * refused. */
#define CRP_FEAT_OPEN_TABLES (1u << 0) /* per-host open tables (otable_*) */
#define CRP_FEAT_INTENT_SPB (1u << 1)  /* intent log regions of sb.intent_spb stripes */
#define CRP_FEATURES (CRP_FEAT_OPEN_TABLES | CRP_FEAT_INTENT_SPB)
/* Still mounted: made before CRP_FEAT_INTENT_SPB (regions as small as the
 * log allows, intent_spb 0). */
#define CRP_FEATURES_OLD CRP_FEAT_OPEN_TABLES
/* Member bytes one intent region covers at least (CRP_FEAT_INTENT_SPB):
 * a sequential writer sets one bit per 16 MiB of each member, not one per
 * stripe. */
#define CRP_INTENT_REGION_BYTES (16u << 20)
/* Bits in one host's intent log: 64 blocks of 4032-byte bitmaps. */
#define CRP_INTENT_BITS ((uint64_t)(CRP_INTENT_BYTES / CRP_BLOCK) * CRP_BITS_PER_BLOCK)

/* Open tables: blocks per host slot, inode numbers per block. */
#define CRP_OTABLE_BLOCKS 8
#define CRP_OTABLE_ENTRIES (CRP_PAYLOAD / 8) /* 504 */
#define CRP_OTABLE_OVERFLOW 1u		      /* aux64: more inodes than fit */

/* ---- member label (byte 0 of every member, 4096 bytes) ---- */

struct crp_sb {
	uint8_t uuid[16];
	char label[CRP_LABEL_MAX];
	uint32_t block_size;	 /* CRP_BLOCK */
	uint32_t level;		 /* 4, 5, 6 */
	uint32_t nmembers;
	uint32_t chunk;		 /* bytes */
	uint64_t data_offset;	 /* bytes from the start of each member */
	uint64_t nstripes;
	uint32_t lock_mode;	 /* enum crp_lock_mode */
	uint32_t max_hosts;
	uint64_t total_blocks;	 /* blocks of B in the RAID area */
	uint64_t journal_start;	 /* block */
	uint32_t journal_blocks; /* per host slot */
	uint64_t ibitmap_start;
	uint32_t ibitmap_blocks;
	uint64_t itable_start;
	uint64_t inode_count;	 /* inode numbers 0..inode_count-1; 0 unused */
	uint64_t ag_start;
	uint32_t ag_count;
	uint32_t ag_blocks;	 /* blocks in every group but the last */
	uint64_t root_ino;
	uint64_t hash_seed;	 /* directory name hash */
	uint64_t ctime_ns;	 /* mkfs time */
	uint64_t generation;	 /* bumped by every mkfs of these members */
	uint64_t slot_offset;	 /* CRP_SLOT_OFFSET */
	uint64_t intent_offset;	 /* CRP_INTENT_OFFSET */
	uint32_t intent_bytes;	 /* CRP_INTENT_BYTES */
	uint32_t features;	 /* CRP_FEATURES */
	uint64_t otable_start;	 /* open tables: journal_start + max_hosts*journal_blocks */
	uint32_t otable_blocks;	 /* per host slot: CRP_OTABLE_BLOCKS */
	uint32_t intent_spb;	 /* stripes per intent bit (CRP_FEAT_INTENT_SPB), else 0 */
};

/* Stripes per bit of an intent log on the array @sb describes. */
uint64_t crp_sb_intent_spb(const struct crp_sb *sb);

/*
 * The member table: the state of every position of the array, as the
 * freshest label says (highest @events).  Every change (a member failed,
 * replaced, rebuilt) is written to the label of every member still in the
 * array with @events one higher, so that a member that was away when it
 * changed carries an older table and is known stale.
 */
#define CRP_LABEL_MEMBERS 64

enum crp_member_state {
	CRP_MS_NONE = 0,	/* no member at this position */
	CRP_MS_IN_SYNC = 1,	/* current: read and written */
	CRP_MS_FAILED = 2,	/* out of the array: never read nor written */
	CRP_MS_REBUILDING = 3,	/* a new member being rebuilt: written, never read;
				   stripes below @checkpoint are rebuilt */
};

struct crp_member_ent {
	uint8_t uuid[16];	/* the member that holds this position */
	uint32_t state;		/* enum crp_member_state */
	uint32_t flags;		/* 0 */
	uint64_t checkpoint;	/* REBUILDING: stripes [0, checkpoint) are rebuilt */
};

struct crp_label {
	uint8_t uuid[16];
	uint32_t index;		/* this member's position in the array */
	uint32_t nmembers;
	uint32_t level;
	uint32_t chunk;
	uint64_t data_offset;
	uint64_t nstripes;
	uint32_t lock_mode;
	uint32_t max_hosts;
	uint64_t generation;
	uint64_t member_size;	/* the size used (smallest member), bytes */
	char fslabel[CRP_LABEL_MAX];
	struct crp_sb sb;	/* copy of the superblock */
	/* The member table, as this member last heard of it. */
	uint8_t member_uuid[16]; /* this member's own identity */
	uint64_t events;	/* version of the table: 1 at mkfs, +1 per change */
	uint64_t rebuild_ns;	/* wall clock of the last rebuild checkpoint, 0 if none */
	char rebuilder[CRP_HOST_MAX]; /* host rebuilding a member, "" if none */
	/* The scrub under way (crpfs scrub), recorded with the table: */
	char scrubber[CRP_HOST_MAX]; /* host scrubbing, "" if none */
	uint64_t scrub_ns;	/* wall clock of its last checkpoint */
	uint64_t scrub_stripe;	/* stripes [0, scrub_stripe) scrubbed */
	uint64_t scrub_start_ns; /* wall clock of its start */
	struct crp_member_ent table[CRP_LABEL_MEMBERS];
};

/*
 * Member names, on every member from byte CRP_NAMES_OFFSET: one record of
 * CRP_NAME_REC bytes per position, the name (member spec) the member at
 * that position was last added under (mkfs, replace), so that a host whose
 * member list names a member since replaced finds the new one.  A hint:
 * the label's member UUID decides.
 */
#define CRP_NAMES_OFFSET (16u * 1024)
#define CRP_NAME_REC 512
#define CRP_NAME_MAGIC 0x4d505243u /* "CRPM" */
#define CRP_NAME_SPEC_MAX (CRP_NAME_REC - 32)

enum crp_name_origin {
	CRP_NAME_MKFS = 0,	/* given to mkfs */
	CRP_NAME_REPLACE = 1,	/* given to crpfs replace */
};

struct crp_member_name {
	uint8_t uuid[16];	/* the member it names */
	uint16_t origin;	/* enum crp_name_origin */
	char spec[CRP_NAME_SPEC_MAX]; /* NUL-terminated; "" if none */
};

/* @buf: CRP_NAME_REC bytes.  in: 0, 1 if the record is empty (never
 * written), or an error. */
void crp_member_name_out(const struct crp_member_name *n, void *buf);
int crp_member_name_in(const void *buf, struct crp_member_name *n);

/* The identifier that stamps every metadata block: first 8 bytes of the
 * UUID xor the generation, so a block from an earlier mkfs never passes. */
uint64_t crp_fsid(const struct crp_sb *sb);

/* @buf: CRP_BLOCK bytes. */
void crp_label_out(const struct crp_label *l, void *buf);
int crp_label_in(const void *buf, struct crp_label *l, char *err, size_t errlen);
/* @buf: CRP_SB_SIZE bytes (the rest of the superblock's block is zero). */
void crp_sb_out(const struct crp_sb *sb, void *buf);
int crp_sb_in(const void *buf, struct crp_sb *sb, char *err, size_t errlen);
/* The reserved area each member needs for @max_hosts, rounded up to @chunk
 * (and to at least 1 MiB): the data_offset mkfs uses. */
uint64_t crp_data_offset_for(uint32_t max_hosts, uint32_t chunk);
/*
 * Lay out the RAID area: from level, nmembers, chunk, data_offset,
 * nstripes and max_hosts in @sb, fill total_blocks, the journal, inode and
 * allocation-group fields, slot/intent offsets and root_ino.
 * -CRP_EGEOMETRY with a message when the array is too small.
 */
int crp_sb_layout(struct crp_sb *sb, char *err, size_t errlen);
/* Sanity of a decoded superblock's geometry (regions in order, inside). */
int crp_sb_check(const struct crp_sb *sb, char *err, size_t errlen);

/* ---- the common 64-byte header of every other metadata block ---- */

struct crp_bhdr {
	uint32_t magic;	  /* CRP_MAGIC_* */
	uint16_t version;
	uint16_t flags;
	/* checksum at byte 8 */
	uint64_t blkno;	  /* where it lives: RAID block, or member block for slots */
	uint64_t fsid;
	uint64_t owner;	  /* inode, group or slot that owns it */
	uint64_t next;	  /* chain: overflow bucket, next extent block */
	uint32_t count;	  /* entries */
	uint32_t aux;	  /* per type: bytes used (dir, xattr) */
	uint64_t aux64;	  /* per type: bucket (dir), seq (journal), nbits (bitmap) */
};

/* Write @h into the first 64 bytes of @blk and seal: compute the checksum
 * over the whole CRP_BLOCK with the checksum field zero. */
void crp_bhdr_out(const struct crp_bhdr *h, void *blk);
/* Re-seal a block whose header is already in place (payload changed). */
void crp_block_seal(void *blk);
/*
 * Decode and check the header of @blk: magic == @magic, version, checksum,
 * blkno == @blkno and fsid == @fsid.  An all-zero block fails with
 * -CRP_ECORRUPT ("never written").
 */
int crp_bhdr_in(const void *blk, uint32_t magic, uint64_t blkno, uint64_t fsid,
		struct crp_bhdr *h, char *err, size_t errlen);
/* The stored checksum of a block, and the one it should have. */
uint64_t crp_block_csum_stored(const void *blk);
uint64_t crp_block_csum_compute(const void *blk);

/* ---- host slots (payload of a CRP_MAGIC_SLOT block, owner = slot) ---- */

enum crp_slot_state {
	CRP_SLOT_FREE = 0,
	CRP_SLOT_ACTIVE = 1,	 /* mounted (alive if its heartbeat moves) */
	CRP_SLOT_RECOVERING = 2, /* a survivor is recovering it (issue 4) */
};

struct crp_slot {
	uint32_t slot;
	uint32_t state;
	uint64_t heartbeat;	 /* counter */
	uint64_t heartbeat_ns;	 /* wall clock of the last beat */
	uint64_t mount_ns;	 /* when it was claimed */
	uint64_t pr_key;
	char host[CRP_HOST_MAX];
	/* Recovery record (issue 4), kept across owners of the slot: */
	char recoverer[CRP_HOST_MAX]; /* RECOVERING: the survivor doing it; FREE: the
					 last one that did ("" if never) */
	uint64_t recoveries;	 /* times this slot was recovered after its host died */
	uint64_t recovered_ns;	 /* wall clock of the last recovery step */
};

/* @blkno is the slot block's member offset / CRP_BLOCK. */
void crp_slot_out(const struct crp_slot *s, uint64_t blkno, uint64_t fsid, void *blk);
int crp_slot_in(const void *blk, uint64_t blkno, uint64_t fsid, struct crp_slot *s, char *err,
		size_t errlen);

/* ---- shared state (RAID block 1, CRP_MAGIC_SHARED, owner 0) ----
 *
 * The coherence record of the hosts, changed only under the metadata lock
 * (crp_array_meta_lock).  Every metadata transaction bumps @generation; a
 * host compares it with the one it last saw to know whether its caches are
 * stale, and the ring of records says which blocks the transactions since
 * then touched.  @flags has CRP_SHARED_PENDING while a transaction's blocks
 * are being written in place: the next holder of the lock that finds it set
 * (the writer died or lost the lock) redoes that transaction from the
 * journal of @slot at ring index @pos, sequence @seq.  @flags has
 * CRP_SHARED_HELD while the lock's holder keeps a batch of operations it
 * has already answered for (group commit) and not yet committed: readers
 * without the lock then ask under the lock, which waits for the commit.  A
 * holder that stopped leaves it set; the next holder clears it.  With
 * HELD and without PENDING, @slot is the holder's: a host that finds the
 * mark of another host whose heartbeat still moves waits for it to come
 * back and commit (it lost the lock with its session).
 */
#define CRP_SHARED_BLKNO 1
#define CRP_SHARED_RECS 249 /* (CRP_PAYLOAD - 48) / 16 */
#define CRP_SHARED_PENDING 1u
#define CRP_SHARED_HELD 2u

struct crp_shared_rec {
	uint64_t gen;	/* the generation of the transaction that touched ... */
	uint64_t blkno;	/* ... this block; gen 0 = unused record */
};

struct crp_shared {
	uint64_t generation;
	uint32_t flags;		/* CRP_SHARED_PENDING, CRP_SHARED_HELD */
	uint32_t slot;		/* journal of the last (or pending) transaction */
	uint64_t seq;		/* its sequence number */
	uint64_t pos;		/* ring index of its descriptor */
	uint64_t lost_gen;	/* newest generation some of whose records were overwritten */
	uint32_t head;		/* next record to overwrite */
	uint32_t member_epoch;	/* low 32 bits of the member table's events: a host
				   whose table is older reads the labels again */
	struct crp_shared_rec rec[CRP_SHARED_RECS];
};

void crp_shared_out(const struct crp_shared *s, uint64_t fsid, void *blk);
/* An all-zero payload (as mkfs writes it) decodes as generation 0. */
int crp_shared_in(const void *blk, uint64_t fsid, struct crp_shared *s, char *err,
		  size_t errlen);

/* ---- inodes (512 bytes, 8 per inode-table block) ---- */

enum {
	CRP_IF_INLINE_DATA = 1u << 0, /* inline area holds bytes (symlink target) */
	CRP_IF_EXT_CHAIN = 1u << 1,   /* extents live in a chain of extent blocks */
	CRP_IF_ORPHAN = 1u << 2,      /* on an orphan list (nlink 0, still open) */
};

/* Extent flags. */
enum {
	CRP_EXT_UNWRITTEN = 1u << 0, /* allocated, reads as zeros */
};

struct crp_extent {
	uint64_t lblk; /* file block */
	uint64_t pblk; /* RAID-area block */
	uint32_t len;  /* blocks */
	uint32_t flags;
};

struct crp_inode {
	uint64_t ino;
	uint64_t generation;
	uint32_t flags;	 /* CRP_IF_* (16 bits on disk) */
	uint32_t mode;
	uint32_t nlink;
	uint32_t uid, gid;
	uint64_t size;
	uint64_t blocks; /* blocks of B allocated to it (data and its metadata) */
	uint64_t rdev;
	int64_t atime_sec, mtime_sec, ctime_sec, btime_sec;
	uint32_t atime_nsec, mtime_nsec, ctime_nsec, btime_nsec;
	uint64_t xattr_blk;   /* 0: none */
	uint64_t parent;      /* directories: the parent directory */
	uint64_t dir_entries; /* directories: entries, "." and ".." excluded */
	uint32_t dir_nbuckets; /* directories: linear-hash buckets */
	uint32_t nextents;
	uint64_t ext_chain;   /* first extent block if CRP_IF_EXT_CHAIN */
	/* Inline area: nextents extents (no chain), or bytes (INLINE_DATA). */
	uint32_t inline_len;  /* INLINE_DATA: bytes used */
	uint8_t inline_data[CRP_INLINE_SIZE];
	struct crp_extent ext[CRP_INLINE_EXTENTS];
};

/* @buf: CRP_INODE_SIZE bytes. */
void crp_inode_out(const struct crp_inode *ino, void *buf);
/* Returns 0, 1 if the record is all zeros (never used: *ino zeroed), or
 * an error.  @expect_ino is checked against the record. */
int crp_inode_in(const void *buf, uint64_t expect_ino, struct crp_inode *ino, char *err,
		 size_t errlen);

/* ---- payloads of typed blocks ---- */

/* Extents: @n entries at @p (CRP_EXTENT_SIZE each). */
void crp_extents_out(const struct crp_extent *e, uint32_t n, void *p);
void crp_extents_in(const void *p, uint32_t n, struct crp_extent *e);

/* 64-bit little-endian arrays (checksums, orphan lists, journal targets). */
void crp_u64s_out(const uint64_t *v, uint32_t n, void *p);
void crp_u64s_in(const void *p, uint32_t n, uint64_t *v);

/* Directory entries, packed in the payload of a bucket block:
 *   +0 u64 ino, +8 u32 hash, +12 u8 namelen, +13 u8 type (DT_*),
 *   +14 u16 zero, +16 name (no NUL), padded to a multiple of 8. */
struct crp_dirent {
	uint64_t ino;
	uint32_t hash;
	uint8_t type;
	uint8_t namelen;
	char name[256]; /* NUL-terminated in memory */
};
static inline uint32_t crp_dirent_reclen(uint32_t namelen)
{
	return (CRP_DIRENT_HDR + namelen + 7u) & ~7u;
}
/* Encode @d at @p (room checked by the caller); returns its reclen. */
uint32_t crp_dirent_out(const struct crp_dirent *d, void *p);
/* Decode the entry at @p with @avail bytes left; returns its reclen, or
 * -CRP_ECORRUPT if it does not fit or is malformed. */
int crp_dirent_in(const void *p, uint32_t avail, struct crp_dirent *d);

/* Extended attributes, packed in the payload of an xattr block:
 *   +0 u8 namelen, +1 u8 zero, +2 u16 valuelen, +4 name, value, padded to 4. */
struct crp_xattr {
	uint8_t namelen;
	uint16_t valuelen;
	const char *name;    /* points into the block */
	const void *value;   /* points into the block */
};
static inline uint32_t crp_xattr_reclen(uint32_t namelen, uint32_t valuelen)
{
	return (4u + namelen + valuelen + 3u) & ~3u;
}
uint32_t crp_xattr_out(const char *name, uint32_t namelen, const void *value,
		       uint32_t valuelen, void *p);
int crp_xattr_in(const void *p, uint32_t avail, struct crp_xattr *x);

/* Journal header payload: +0 u64 start (ring index), +8 u64 seq of the
 * transaction expected there, +16 u32 slot. */
struct crp_jhdr {
	uint64_t start;
	uint64_t seq;
	uint32_t slot;
};
void crp_jhdr_out(const struct crp_jhdr *j, uint64_t blkno, uint64_t fsid, void *blk);
int crp_jhdr_in(const void *blk, uint64_t blkno, uint64_t fsid, struct crp_jhdr *j, char *err,
		size_t errlen);

/* Commit record payload: +0 u64 XXH3-64 of the descriptor and every image,
 * in order (see crp_journal_csum_*), +8 u64 wall-clock ns. */

/* Checksum of a data block (also the one kept in the checksum table). */
uint64_t crp_data_csum(const void *blk);
/* Hash of a directory entry name. */
uint32_t crp_name_hash(uint64_t seed, const char *name, size_t len);
/* XXH3-64 of @len bytes with @seed. */
uint64_t crp_xxh64(const void *p, size_t len, uint64_t seed);

/* Little-endian helpers (used by ondisk.c and fsck for raw payloads). */
static inline void crp_put_le16(void *p, uint16_t v)
{
	uint8_t *b = p;
	b[0] = (uint8_t)v;
	b[1] = (uint8_t)(v >> 8);
}
static inline void crp_put_le32(void *p, uint32_t v)
{
	uint8_t *b = p;
	for (int i = 0; i < 4; i++)
		b[i] = (uint8_t)(v >> (8 * i));
}
static inline void crp_put_le64(void *p, uint64_t v)
{
	uint8_t *b = p;
	for (int i = 0; i < 8; i++)
		b[i] = (uint8_t)(v >> (8 * i));
}
static inline uint16_t crp_get_le16(const void *p)
{
	const uint8_t *b = p;
	return (uint16_t)(b[0] | (b[1] << 8));
}
static inline uint32_t crp_get_le32(const void *p)
{
	const uint8_t *b = p;
	return (uint32_t)b[0] | ((uint32_t)b[1] << 8) | ((uint32_t)b[2] << 16) |
	       ((uint32_t)b[3] << 24);
}
static inline uint64_t crp_get_le64(const void *p)
{
	const uint8_t *b = p;
	uint64_t v = 0;
	for (int i = 7; i >= 0; i--)
		v = (v << 8) | b[i];
	return v;
}

/* Bitmaps: bit i of a payload is byte i/8, bit i%8. */
static inline bool crp_bit_test(const uint8_t *bits, uint64_t i)
{
	return bits[i >> 3] & (1u << (i & 7));
}
static inline void crp_bit_set(uint8_t *bits, uint64_t i)
{
	bits[i >> 3] |= (uint8_t)(1u << (i & 7));
}
static inline void crp_bit_clear(uint8_t *bits, uint64_t i)
{
	bits[i >> 3] &= (uint8_t)~(1u << (i & 7));
}

/* UUID text (36 chars + NUL). */
void crp_uuid_str(const uint8_t uuid[16], char out[37]);

#endif
