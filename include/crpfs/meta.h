/*
 * The metadata layer: an opened crpfs array with its superblock, the
 * metadata block cache, the running transaction and its journal, block and
 * inode allocation, data checksums, host slots and orphan lists.
 *
 * Transactions.  Every change to a metadata block goes through the cache:
 * crp_meta_bread()/crp_meta_bnew() give the cached block, the caller edits
 * its bytes and calls crp_meta_dirty().  The dirty blocks form the running
 * transaction; crp_meta_commit() writes it to this host's journal
 * (descriptor, block images, commit record with an XXH3 over all of them),
 * syncs the members, then writes the blocks in place.  A crash before the
 * commit record is durable loses the transaction whole; after it, replay
 * at the next mount redoes it.  Callers commit only at points where the
 * metadata is consistent (the end of an operation, or a restartable step
 * of a long one).
 *
 * Ordered data.  Data blocks are written (crp_meta_data_write) before the
 * transaction that points at them commits, and never over a block that a
 * committed transaction references: the fs layer writes new data to blocks
 * allocated in the running transaction (crp_meta_is_new()) and moves
 * anything else (copy-on-write).  Blocks freed by the running transaction
 * are not handed out again until it has committed.
 *
 * Locking: none here.  Every function is called with the fs layer's big
 * lock held (struct crp_fs.mu); struct crp_meta is protected by it.  Between
 * hosts, every change happens between crp_meta_tx_begin() and
 * crp_meta_tx_end() (below), under the metadata lock taken on the disks.
 */
#ifndef CRPFS_META_H
#define CRPFS_META_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <glib.h>

#include "crpfs/array.h"
#include "crpfs/member.h"
#include "crpfs/ondisk.h"

struct crp_mblk {
	uint64_t blkno;
	uint32_t magic;	/* CRP_MAGIC_* sealed at commit; 0 = inode-table block */
	bool dirty;	/* part of the running transaction */
	uint64_t dirty_op; /* the operation (undo_op) that made it dirty */
	uint64_t saved_op; /* the last operation that saved it for its undo */
	uint8_t badrec;	/* inode-table block: records (bit i = record i) found
			   damaged and not rebuilt; cleared as they are written */
	uint8_t *buf;	/* CRP_BLOCK bytes, aligned */
};

/* Header fields of a cached block, read and written in place. */
static inline uint64_t crp_mblk_next(const struct crp_mblk *b) { return crp_get_le64(b->buf + 40); }
static inline void crp_mblk_set_next(struct crp_mblk *b, uint64_t v) { crp_put_le64(b->buf + 40, v); }
static inline uint32_t crp_mblk_count(const struct crp_mblk *b) { return crp_get_le32(b->buf + 48); }
static inline void crp_mblk_set_count(struct crp_mblk *b, uint32_t v) { crp_put_le32(b->buf + 48, v); }
static inline uint32_t crp_mblk_aux(const struct crp_mblk *b) { return crp_get_le32(b->buf + 52); }
static inline void crp_mblk_set_aux(struct crp_mblk *b, uint32_t v) { crp_put_le32(b->buf + 52, v); }
static inline uint64_t crp_mblk_aux64(const struct crp_mblk *b) { return crp_get_le64(b->buf + 56); }
static inline uint64_t crp_mblk_owner(const struct crp_mblk *b) { return crp_get_le64(b->buf + 32); }
static inline uint8_t *crp_mblk_payload(struct crp_mblk *b) { return b->buf + CRP_HDR_SIZE; }

struct crp_meta_opts {
	const char *host;	/* slot owner and initiator name; hostname if NULL */
	bool ro;		/* write nothing: no replay, no slot */
	bool claim_slot;	/* claim a host slot (mount), else none (fsck, status) */
	bool replay;		/* replay the journals of slots left active */
	bool salvage;		/* fsck: an allocation bitmap that cannot be read even
				   after reconstruction does not fail the open (its
				   group is not allocated from; fsck rebuilds it) */
	bool observer;		/* an administration tool (crpfs fail, replace,
				   scrub): a member it cannot reach is left for
				   the mounted hosts to judge, never recorded
				   failed by it (failures of its own I/O are) */
	bool defer_members;	/* members missing at open are recorded failed by the
				   caller (crp_meta_members_update), once dead
				   hosts' locks can be broken (mount: after the
				   cluster join), not by the open */
	uint32_t timeout_ms;
};

struct crp_meta_stats {
	uint64_t commits;
	uint64_t committed_blocks; /* blocks those commits journaled */
	uint64_t deferred;	/* commits whose blocks went in place later (journal.c) */
	uint64_t inplace_blocks; /* blocks written in place from the journal's copies */
	uint64_t ordered_syncs;	/* members synced for file data before a journal write */
	uint64_t replayed;	/* transactions replayed at open */
	uint64_t repairs;	/* blocks rebuilt from parity */
};

/* A block found failing its checks (crp_meta_rebuild_block and every read
 * path that checks what it reads): rebuilt from parity or not.  Every tool
 * finds them in m->damage; fsck reports each. */
struct crp_meta_damage {
	uint64_t blkno;
	char what[64];		/* "directory block", "inode table block (inodes 8-15)" ... */
	char why[96];		/* "all zeros", "checksum mismatch", ... */
	int member, member2;	/* rebuilt without these members (-1: none); not
				   rebuilt: member = the one holding the block */
	bool rebuilt;		/* a reconstruction passed the checks */
	bool repaired;		/* ... and was written back */
};

/* Told that block @blkno was changed by another host (or dropped from the
 * running transaction); @cached is our copy before it was dropped, or NULL.
 * @blkno == CRP_META_CHANGED_ALL: anything may have changed. */
#define CRP_META_CHANGED_ALL UINT64_MAX
typedef void (*crp_meta_changed_fn)(void *ctx, uint64_t blkno, const struct crp_mblk *cached);

struct crp_meta {
	struct crp_array *a;
	struct crp_sb sb;
	struct crp_geom geom;
	uint64_t fsid;
	bool ro;
	bool salvage;			/* opened with crp_meta_opts.salvage */
	int slot;			/* our host slot, -1 if none */
	char host[CRP_HOST_MAX];
	uint64_t heartbeat;
	uint64_t slot_mount_ns;		/* mount_ns of our claim: is the slot still ours */
	/* Called under the metadata lock just before our slot is freed at
	 * a clean close, so that the cluster stops beating in it: a beat
	 * after the FREE would make it active again. */
	void (*slot_free_hook)(void *ctx);
	void *slot_free_ctx;
	bool shut;			/* crp_meta_shutdown has run */
	bool journal_dirty;		/* some slot's journal needs replay (ro/fsck) */
	bool journal_chain;		/* ... or holds a deferred checkpoint's chain not in
					   place: a live host writes it there itself, a
					   replay does it for a dead one (ro/fsck) */
	uint64_t recovered;		/* bit per slot recovered at open: its orphans
					   are for the fs layer to free */

	GHashTable *cache;		/* blkno -> struct crp_mblk * */
	GPtrArray *dirty;		/* the running transaction, struct crp_mblk * */
	GHashTable *tx_freed;		/* blocks freed by the running transaction */
	GHashTable *tx_new;		/* blocks allocated by the running transaction */
	bool tx_freed_meta;		/* it freed a metadata block */

	bool data_unsynced;		/* file data written since the last journal sync */
	uint64_t j_pos;			/* next free ring index of our journal */
	uint64_t j_seq;			/* sequence of the next transaction */
	/* The deferred checkpoint (journal.c): transactions an fsync
	 * committed whose blocks are in the journal but not yet in place. */
	GHashTable *lazy;		/* blkno -> 4 KiB: the newest committed image */
	uint64_t lazy_since_ns;		/* the first of them committed then; 0: none */
	uint64_t lazy_pos, lazy_seq;	/* ... at this ring index, with this sequence */
	uint64_t hold_max_ns;		/* a kept batch holds the lock at most this long
					   in a row (CRP_HOLD_MAX_NS; tests stretch it) */
	uint64_t lock_since_ns;		/* ... taken then */

	uint32_t ag_cursor;		/* next allocation group to try */
	uint32_t *ag_free;		/* free blocks per group */
	uint32_t *ig_free;		/* free inodes per inode-bitmap block */
	uint64_t ino_cursor;
	uint64_t nmods;			/* crp_meta_dirty() calls: did an operation change anything? */
	struct crp_meta_stats stats;
	GArray *damage;			/* struct crp_meta_damage, in the order found
					   (NULL until the first); a reader may empty it */
	struct crp_intent *intent;	/* our write-intent log (intent.c) */
	bool debug_no_checkpoint;	/* tests: commit to the journal only */

	/* Many hosts (coherence.c). */
	bool locked;			/* we hold the metadata lock (a transaction is open) */
	bool tx_published;		/* the running commit's PENDING is on the disks
					   (or its deferred checkpoint chain's) */
	bool tx_journaled;		/* the running commit's transaction is in the journal */
	uint64_t lock_losses;		/* metadata locks lost with a session and survived */
	uint64_t held_wait_ns;		/* a batch another live host lost its lock with is
					   waited for while its heartbeat moves, up to this
					   long without a beat (the dead timeout; 0: never) */
	int hw_slot;			/* ... the holder waited for (-1: none) */
	uint64_t hw_gen, hw_beat;	/* ... at this generation, its last counter seen */
	uint64_t hw_start_ns, hw_beat_ns; /* ... since, and when the counter last moved */
	bool fenced;			/* the lock was broken while held: we write no more */
	bool gen_known;			/* @gen is what our caches reflect */
	uint64_t gen;			/* cluster generation our caches reflect */
	struct crp_shared *sh;		/* the shared block as read under the lock */
	struct crp_shared *peek;	/* ... as read without it (poll, lock-free reads) */
	uint8_t *ag_stale;		/* per group: ag_free[g] may be out of date */
	uint8_t *ig_stale;		/* per inode-bitmap block: ig_free may be out of date */
	crp_meta_changed_fn changed;	/* told of every block another host changed */
	void *changed_ctx;
	uint64_t gen_drops;		/* times the generation moved under us */
	uint64_t full_drops;		/* ... and we had to drop every cached block */
	bool opt;			/* a read without the lock runs (read_begin) */
	uint64_t opt_gen;		/* ... at this generation */
	uint64_t opt_reads;		/* ... crp_array_thread_reads() at its begin */
	uint64_t opt_ok;		/* reads without the lock that held */
	uint64_t opt_retries;		/* ... that had to run again under the lock */
	uint64_t lock_seq;		/* metadata lock acquisitions (0: never) */
	uint64_t free_epoch;		/* times freed blocks became free to reuse */
	GHashTable *dheld;		/* pblk -> 4 KiB: small writes held until the commit (dheld.c) */
	uint64_t dheld_taken;		/* blocks written into it */
	uint64_t dheld_flushed;		/* ... and later to the disks, */
	uint64_t dheld_runs;		/* ... in this many runs of adjacent blocks */
	uint64_t dstream, dstream_end;	/* the free stripe small data writes fill (alloc.c) */
	uint64_t dstream_scan;		/* where the next one is looked for */
	uint64_t data_ok;		/* file data read outside the caller's lock that held */
	uint64_t data_retries;		/* ... that had to be read again under it */

	/* Group commit (coherence.c): the lock and the running transaction
	 * kept from one operation to the next. */
	uint64_t commit_ns;		/* kept this long at most; 0: every operation commits */
	uint64_t peer_commit_ns;	/* ... while other hosts live; 0: never kept then */
	bool held;			/* kept: @locked, and no operation runs */
	uint64_t held_marks;		/* batches marked so */
	uint64_t held_since_ns;		/* when the first operation of the batch ended */
	uint64_t held_ops;		/* operations in the batch */
	int batch_err;			/* -EIO: operations already answered were lost
					   since the last fsync (crp_fs_sync reports it) */
	uint64_t batches;		/* batches committed, and the operations they held */
	uint64_t batched_ops;
	struct crp_mblk *undo;		/* blocks of the batch as the running operation found them */
	uint32_t nundo, undo_cap;
	uint64_t undo_op;		/* the running operation, counted from 1 */
	bool undo_valid;		/* ... and nothing of the operation was committed yet */
	GArray *undo_wr;		/* struct crp_undo_wr: data blocks the operation wrote */
	GArray *undo_freed;		/* struct crp_undo_freed: blocks of the batch it freed */
	bool undo_lost;			/* it changed more than the undo could keep */
	uint64_t undo_misses;		/* blocks changed without being saved first (a bug) */

	/* The member table (members.c). */
	struct crp_label mt;		/* the freshest label we know: the table */
	char names[CRP_LABEL_MEMBERS][CRP_NAME_SPEC_MAX]; /* the names members were added under */
	uint8_t name_uuid[CRP_LABEL_MEMBERS][16]; /* the member each name names */
	uint16_t name_origin[CRP_LABEL_MEMBERS]; /* enum crp_name_origin of each name */
	uint8_t pos_uuid[CRP_LABEL_MEMBERS][16]; /* the member object at each position */
	uint64_t unreachable;		/* positions this host cannot serve, to record failed */
	bool observer;			/* crp_meta_opts.observer: unreachable is not recorded */
	bool in_update;			/* a table update runs (its own writes do not recurse) */
	int replacing;			/* position + 1 that a replace is setting up, or 0 */
	uint32_t timeout_ms;		/* member command timeout (opening replacements) */

	/* Open tables (opentab.c). */
	GHashTable *open_refs;		/* ino -> handles this host holds open on it */
	GArray *ot_ents[CRP_OTABLE_BLOCKS]; /* our table, uint64_t per block (may
					   exceed what fits: OVERFLOW) */
	uint8_t ot_dirty;		/* blocks whose last write failed */
	uint8_t ot_pending;		/* blocks changed in a group commit, written
					   before the metadata lock goes */
	uint8_t *ot_peers[CRP_OTABLE_BLOCKS]; /* block k of every slot's table, as
					   crp_meta_open_elsewhere read it ... */
	uint64_t ot_peers_seq[CRP_OTABLE_BLOCKS]; /* ... under this hold of the lock */
	uint64_t ot_peer_reads;		/* such blocks read from the disks */
};

/*
 * Open the array on @specs (any order: the labels give it), check labels
 * and superblock, replay journals and claim a slot as @opts says.  On
 * error @err names the member and the problem.
 */
int crp_meta_open(const char *const *specs, int n, const struct crp_meta_opts *opts,
		  struct crp_meta **out, char *err, size_t errlen);
/* Commit, clear our journal, free our slot (only if still ours), sync;
 * the array stays open, so that the heartbeat goes on until the slot is
 * free (m->slot_free_hook).  Returns the first error.  Runs once. */
int crp_meta_shutdown(struct crp_meta *m);
/* crp_meta_shutdown unless it ran, then close.  Returns the first error
 * of the two; @m is freed in every case. */
int crp_meta_close(struct crp_meta *m);

/* Read the labels of @specs and order them; fills @sorted (array order)
 * and @label (of member 0).  Used by open, status and fsck. */
int crp_meta_read_labels(const char *const *specs, int n, const char *host, uint32_t timeout_ms,
			 const char **sorted, struct crp_label *label, char *err, size_t errlen);

/* ---- block cache ---- */

/* The cached block @blkno, read and checked (magic, version, checksum,
 * place, fsid) if not cached.  A block that fails any check, an all-zero
 * one included, is rebuilt from parity (repaired unless read-only, logged,
 * recorded in m->damage); one that nothing rebuilds fails with the check's
 * error (-CRP_ECHECKSUM, -CRP_ECORRUPT). */
int crp_meta_bread(struct crp_meta *m, uint64_t blkno, uint32_t magic, struct crp_mblk **out);
/* The same, with @check (may be NULL) judging the structure of the payload
 * too, on the copy read from the disks and on every reconstruction: a
 * block whose checksum holds but whose contents @check refuses (a stale
 * block, a lost write) is rebuilt as well.  Not run on a cached block. */
int crp_meta_bread_check(struct crp_meta *m, uint64_t blkno, uint32_t magic,
			 bool (*check)(const void *blk, void *ctx), void *ctx,
			 struct crp_mblk **out);
/* Inode-table block.  Read from the disks, its records are checked against
 * the inode bitmap (each valid, or all zero where the inode is free); a
 * block that fails is rebuilt from parity as above, and the records of one
 * that nothing rebuilds are marked in badrec.  Records are decoded by the
 * caller. */
int crp_meta_bread_raw(struct crp_meta *m, uint64_t blkno, struct crp_mblk **out);
/* A freshly allocated block: zeroed, header written, dirty. */
struct crp_mblk *crp_meta_bnew(struct crp_meta *m, uint64_t blkno, uint32_t magic,
			       uint64_t owner);
void crp_meta_dirty(struct crp_meta *m, struct crp_mblk *b);
/* Commit the running transaction (no-op when clean). */
int crp_meta_commit(struct crp_meta *m);
/* Commit, and make everything written before it durable (fsync). */
int crp_meta_commit_durable(struct crp_meta *m);
/* Commit if the running transaction is large. */
int crp_meta_maybe_commit(struct crp_meta *m);
/* Drop clean blocks when the cache is large.  No crp_mblk pointer may be
 * held across this call. */
void crp_meta_trim(struct crp_meta *m);
/* Blocks in the running transaction. */
static inline unsigned crp_meta_tx_size(const struct crp_meta *m) { return m->dirty->len; }

/* ---- allocation ---- */

/* Allocate up to @want contiguous blocks near @goal (0: anywhere); *@got
 * >= 1 on success, -ENOSPC when full. */
int crp_meta_alloc(struct crp_meta *m, uint64_t goal, uint32_t want, uint64_t *start,
		   uint32_t *got);
/* Free @n blocks; @meta: they held metadata (dropped from the cache). */
int crp_meta_free(struct crp_meta *m, uint64_t start, uint32_t n, bool meta);
/* For file data: as crp_meta_alloc, but a run smaller than a stripe that
 * cannot go on at @goal (not 0) is taken from a wholly free stripe that small runs
 * fill one after the other, so that they are written as a full stripe
 * (crp_meta_dheld_flush). */
int crp_meta_alloc_data(struct crp_meta *m, uint64_t goal, uint32_t want, uint64_t *start,
			uint32_t *got);
/* Allocated by the running transaction: data may be written over it. */
bool crp_meta_is_new(const struct crp_meta *m, uint64_t blk);
int crp_meta_ialloc(struct crp_meta *m, uint64_t *ino);
int crp_meta_ifree(struct crp_meta *m, uint64_t ino);
/* fsck: mark @ino in use in the inode bitmap (its record says it is). */
int crp_meta_imark(struct crp_meta *m, uint64_t ino);
bool crp_meta_block_in_data_area(const struct crp_meta *m, uint64_t blk);
/* First block and length of allocation group @g. */
uint64_t crp_meta_ag_base(const struct crp_meta *m, uint32_t g);
uint32_t crp_meta_ag_len(const struct crp_meta *m, uint32_t g);
uint64_t crp_meta_free_blocks(const struct crp_meta *m);
uint64_t crp_meta_free_inodes(const struct crp_meta *m);
/* Is @blk / @ino marked allocated (fsck). */
int crp_meta_block_allocated(struct crp_meta *m, uint64_t blk, bool *out);
int crp_meta_inode_allocated(struct crp_meta *m, uint64_t ino, bool *out);

/* ---- inodes ---- */

/* Read inode @ino: 0, 1 if the slot was never used, or an error.  An
 * all-zero record of an inode the inode bitmap says is in use is damage:
 * its block is rebuilt from parity (crp_meta_bread_raw), and if nothing
 * rebuilds it the read fails with -EIO. */
int crp_meta_iread(struct crp_meta *m, uint64_t ino, struct crp_inode *out);
/* Store @in into the inode table (in the running transaction). */
int crp_meta_iwrite(struct crp_meta *m, const struct crp_inode *in);

/* ---- data ---- */

/* Write @n blocks at @pblk and record their checksums.  Fewer blocks than
 * a stripe, all allocated by the running transaction, are held in memory
 * until it commits (dheld.c). */
int crp_meta_data_write(struct crp_meta *m, uint64_t pblk, uint32_t n, const void *buf);
/* Is any of [pblk, pblk+n) held in memory, not yet on the disks?  A read
 * outside the lock must not cover it. */
bool crp_meta_data_held(const struct crp_meta *m, uint64_t pblk, uint64_t n);
/* Write every held block now (the commit does; so may anyone). */
int crp_meta_dheld_flush(struct crp_meta *m);
/* Read @n blocks at @pblk and check their checksums; a mismatch is
 * rebuilt from parity and repaired, or fails with -EIO. */
int crp_meta_data_read(struct crp_meta *m, uint64_t pblk, uint32_t n, void *buf);
int crp_meta_csum_get(struct crp_meta *m, uint64_t blk, uint64_t *csum);
int crp_meta_csum_set(struct crp_meta *m, uint64_t blk, uint64_t csum);
/*
 * Rebuild @blkno (whose copy in @buf failed its checks) from parity until
 * @ok accepts it: as if the member holding it were missing, then, on
 * RAID-6, as if that member and each other member of the stripe were
 * missing.  The accepted copy goes to @buf, is written back unless
 * read-only, logged and recorded in m->damage; 0, or -EIO if no
 * reconstruction passes (also logged and recorded).
 */
int crp_meta_rebuild_block(struct crp_meta *m, uint64_t blkno, void *buf,
			   bool (*ok)(const void *blk, void *ctx), void *ctx);
/* What block @blkno is, from where it lies (and @magic for blocks of the
 * allocation groups: directory, extent, xattr, 0 for data). */
void crp_meta_block_kind(const struct crp_meta *m, uint64_t blkno, uint32_t magic, char *out,
			 size_t len);

/* ---- orphans (this host's list) ---- */

/* Add to our list, or to any slot's list with room when ours is full. */
int crp_meta_orphan_add(struct crp_meta *m, uint64_t ino);
/* Remove from whichever slot's list holds it (-ENOENT if none). */
int crp_meta_orphan_del(struct crp_meta *m, uint64_t ino);
/* The inodes on slot @slot's orphan list (g_free the array). */
int crp_meta_orphan_list(struct crp_meta *m, int slot, uint64_t **inos, uint32_t *n);
/* Empty slot @slot's orphan list (after recovery freed them). */
int crp_meta_orphan_clear(struct crp_meta *m, int slot);

/* ---- open tables (opentab.c) ----
 *
 * Every host lists on the disks the regular files it holds open, so that
 * an inode whose last name goes stays allocated until its last close on
 * every host (the rule is at the top of opentab.c).  All of it runs under
 * the metadata lock: no open is entered between a check and a free.
 */

/* A handle of this host opened / closed on regular file @ino: the first
 * enters @ino in our table on the disks before returning (an error: the
 * open must fail), the last removes it. */
int crp_meta_open_ref(struct crp_meta *m, uint64_t ino);
int crp_meta_open_unref(struct crp_meta *m, uint64_t ino);
/* Handles this host holds on @ino. */
uint32_t crp_meta_open_count(const struct crp_meta *m, uint64_t ino);
/* Does any other host's table list @ino (read from the disks)?  An
 * unreadable block counts as yes. */
int crp_meta_open_elsewhere(struct crp_meta *m, uint64_t ino, bool *held);
/* Write slot @slot's table empty (ours: as memory has it): at claim, by
 * the recoverer of a dead host, at a clean close. */
int crp_meta_open_clear(struct crp_meta *m, int slot);
/* This host lets go of every handle (unmount): its table is written empty. */
int crp_meta_open_drop_all(struct crp_meta *m);
/* Write again the blocks of our table whose write failed. */
int crp_meta_open_flush(struct crp_meta *m);
/* Slot @slot's table as the disks hold it (g_free @inos); @overflow: some
 * block lists more than it holds (fsck, status). */
int crp_meta_open_list(struct crp_meta *m, int slot, uint64_t **inos, uint32_t *n,
		       bool *overflow);

/* ---- the member table (members.c) ---- */

/* What the labels of a member list say, before the array is opened. */
struct crp_assembly {
	struct crp_label label;		/* the freshest label: its table rules */
	const char *spec[CRP_LABEL_MEMBERS]; /* the member to open at each position, or NULL */
	char spec_buf[CRP_LABEL_MEMBERS][CRP_SPEC_MAX]; /* names found in the labels */
	char names[CRP_LABEL_MEMBERS][CRP_NAME_SPEC_MAX]; /* every position's recorded name */
	uint8_t name_uuid[CRP_LABEL_MEMBERS][16]; /* the member each name names */
	uint16_t name_origin[CRP_LABEL_MEMBERS]; /* enum crp_name_origin of each name */
	char why[CRP_LABEL_MEMBERS][256];	/* a position out of service: why */
	char given_why[CRP_LABEL_MEMBERS][256]; /* a given member not usable: why */
	int given_pos[CRP_LABEL_MEMBERS];	/* given member i serves position - 1 (0: none) */
	uint64_t missing;		/* in-sync positions nothing serves */
	uint64_t renamed;		/* positions served under their recorded name */
	uint64_t misnamed;		/* of those, positions never replaced: the list
					   names something else for a member that is
					   there (a writing open refuses) */
	int lost;			/* positions out of service (failed, rebuilding, missing) */
	int tolerance;			/* how many the level survives */
};
/* Read the labels of @specs (any order; "missing" for one that is gone)
 * and decide which member serves each position.  Errors only for a list
 * that cannot be an array (foreign members, a wrong count); a member that
 * cannot be read is only out of service (as->why). */
int crp_meta_assemble(const char *const *specs, int n, const char *host, uint32_t timeout_ms,
		      struct crp_assembly *as, char *err, size_t errlen);
/* The positions out of service, as one sentence. */
void crp_meta_assembly_lost(const struct crp_assembly *as, char *buf, size_t len);
/* Members the level survives losing: 1, or 2 for RAID-6. */
int crp_meta_tolerance(uint32_t level);

/* A change to the member table: edit @l (the freshest table); return 0 if
 * changed, 1 if there is nothing to change, or an error. */
typedef int (*crp_members_fn)(struct crp_meta *m, struct crp_label *l, void *ctx);
/* Apply @fn (and every failure the array saw) to the table on the disks,
 * under the metadata lock (taken unless this thread holds it). */
int crp_meta_members_update(struct crp_meta *m, crp_members_fn fn, void *ctx);
/* Read the table again from the labels and apply it to the array. */
int crp_meta_members_reload(struct crp_meta *m);
/* Take position @pos out of the array by hand (crpfs fail): -CRP_EDEGRADED
 * if that would leave the array without enough members. */
int crp_meta_member_fail(struct crp_meta *m, int pos);
/* Open the member recorded for position @p and put it there. */
int crp_meta_member_open_name(struct crp_meta *m, int p);

/* ---- replace and rebuild (rebuild.c) ---- */

/*
 * Put the member named @spec at position @pos, to be rebuilt: it takes the
 * position in the member table (REBUILDING, checkpoint 0) and its name is
 * recorded for the other hosts.  If @spec already is the member being
 * rebuilt there, nothing changes and *@resumed says so.  The array must be
 * able to lose the position (it is failed or missing, or the others are
 * all in sync).  A device that holds another array or a filesystem is
 * refused unless @force.  @err says what is wrong.
 */
int crp_meta_member_replace(struct crp_meta *m, int pos, const char *spec, bool force,
			    bool *resumed, char *err, size_t errlen);

/* What the first CRP_SIGNATURE_BYTES of a device say it holds ("crpfs
 * already", "an ext2/3/4 filesystem", ...), or NULL: mkfs and replace
 * refuse to overwrite it unless forced. */
#define CRP_SIGNATURE_BYTES (72u * 1024)
const char *crp_member_signature(const void *buf, size_t len);

struct crp_rebuild_opts {
	uint64_t rate_bps;	/* bytes a second written to the new member; 0: no limit */
	/* After each batch: stripes done of @total, bytes written since the
	 * start of this run, and the stripe this run started from. */
	void (*progress)(void *ctx, uint64_t done, uint64_t total, uint64_t bytes,
			 uint64_t start);
	void *ctx;
	atomic_bool *stop;	/* set: stop at the next batch (-EINTR) */
};
/*
 * Rebuild position @pos (REBUILDING) from its checkpoint to the end, with
 * checkpoints in the labels about once a second; at the end it is in
 * sync.  -ECANCELED if the position stopped being this rebuild (failed,
 * replaced again); -CRP_EMEMBER if the new member failed.
 */
int crp_meta_rebuild(struct crp_meta *m, int pos, const struct crp_rebuild_opts *o);

/* ---- journal ---- */

/* Replay slot @slot's journal: the number of transactions applied. */
int crp_meta_replay(struct crp_meta *m, int slot);
/* Does slot @slot's journal hold transactions to replay (*@out), or only
 * a deferred checkpoint's chain the shared block names (*@chain)? */
int crp_meta_journal_pending(struct crp_meta *m, int slot, bool *out, bool *chain);
/* fsck --repair, for a slot with no host: write its journal header anew
 * (replay from ring index 0, with a sequence number no transaction left in
 * the ring carries), when the old one is beyond repair. */
int crp_meta_journal_reset(struct crp_meta *m, int slot);

/* ---- write-intent log (intent.c) ---- */

/* Start this host's intent log (after its slot is claimed): cleared on
 * disk, then every stripe transaction marks its region first. */
int crp_meta_intent_attach(struct crp_meta *m);
/* Clean regions idle for @idle_ns (after syncing the members). */
int crp_meta_intent_sweep(struct crp_meta *m, uint64_t idle_ns);
/* Stop the log; @clean (everything synced): clear it on disk too. */
void crp_meta_intent_detach(struct crp_meta *m, bool clean);
/* Recovery: resync every stripe marked in slot @slot's log, then clear it.
 * *@resynced receives the number of stripes resynced. */
int crp_meta_intent_resync(struct crp_meta *m, int slot, uint64_t *resynced);

/* ---- host slots ---- */

/* The slot as its freshest copy says (highest counter: every write of a
 * slot bumps it).  Plain member I/O: safe on any thread, no fs lock. */
int crp_meta_slot_read(struct crp_meta *m, int slot, struct crp_slot *out);
int crp_meta_slot_write(struct crp_meta *m, const struct crp_slot *s);
/*
 * Watch every slot for up to @watch_ns (less once every taken slot's
 * counter or state has moved): @slots[i] the last copy read, @moved[i]
 * whether it moved meanwhile.  Arrays of sb.max_hosts entries.
 */
int crp_meta_slots_watch(struct crp_meta *m, uint64_t watch_ns, struct crp_slot *slots,
			 bool *moved);
/* Make slot @slot (already written ACTIVE as @s by the caller, under the
 * metadata lock) ours: journal position, intent log. */
int crp_meta_slot_adopt(struct crp_meta *m, int slot, const struct crp_slot *s);

/* ---- many hosts: the metadata lock and coherence (coherence.c) ----
 *
 * A metadata operation is one transaction under the metadata lock:
 * crp_meta_tx_begin() takes the lock (crp_array_meta_lock), reads the
 * shared block, redoes a transaction another host left half-written in
 * place, and drops from the cache every block changed since our last check
 * (telling the changed callback); then the caller reads and changes blocks;
 * crp_meta_tx_end() commits (journal, shared block marked pending, blocks in
 * place, shared block with the new generation) and unlocks.  A lock broken
 * while held fences us: tx_end returns -CRP_ELOCKLOST and @m turns
 * read-only for good.  crp_meta_tx_abort() drops the running transaction
 * (cache only: nothing reached the disks) and unlocks.
 *
 * Read-only opens take no lock: tx_begin only checks the generation.
 */
void crp_meta_set_changed(struct crp_meta *m, crp_meta_changed_fn fn, void *ctx);
int crp_meta_tx_begin(struct crp_meta *m);
/* The same for an operation that only reads: joining a kept batch, it
 * saves no undo copy of it; should it change something after all and
 * fail, the batch goes with it (crp_meta_tx_abort, as when a save fails). */
int crp_meta_tx_begin_read(struct crp_meta *m);
int crp_meta_tx_end(struct crp_meta *m);
void crp_meta_tx_abort(struct crp_meta *m);

/*
 * Group commit.  crp_meta_tx_end keeps the metadata lock and the running
 * transaction instead of committing while the batch is younger than
 * commit_ns (peer_commit_ns once another host is alive, crp_array_peers,
 * and then only a batch that changes something; 0: never kept) and
 * small; the next crp_meta_tx_begin takes them over without a round trip.
 * Before the first operation of a batch that changes something is
 * answered, the shared block says CRP_SHARED_HELD, so that readers without
 * the lock ask under it and see what was answered.  An operation that
 * fails half-way in a batch is undone alone: crp_meta_tx_begin saves the
 * batch's blocks, crp_meta_tx_abort puts them back and keeps the rest of
 * the batch.  Whoever must see the disks current or needs the lock for
 * something else commits it: crp_meta_batch_flush (commit and unlock; 0
 * when nothing is kept), and crp_meta_batch_due says when (crp_now_ns; 0:
 * nothing kept).  fsync is a commit, as before.
 */
int crp_meta_batch_flush(struct crp_meta *m);
uint64_t crp_meta_batch_due(const struct crp_meta *m);
/* Without the lock: one read of the shared block; if the generation moved,
 * drop what changed (reads nothing else).  0, or an error (try later). */
int crp_meta_poll(struct crp_meta *m);
/*
 * Reads without the lock (a sequence lock on the shared block).
 * crp_meta_read_begin() reads the shared block: if no transaction is being
 * written in place (no PENDING), no host keeps a batch it answered for (no
 * HELD: group commit), the member table did not change and every
 * member is in sync, it catches up with the generation as crp_meta_poll
 * does and returns 1; the caller then reads (never changes) blocks, with
 * crp_array_optimistic on; any read that would have to rebuild a block
 * fails with -CRP_ERETRY.  crp_meta_read_end() says whether what was read
 * holds: 0 if nothing was read from the disks (the caches reflect the
 * generation seen at begin, current when it was read) or the shared block
 * still shows that generation without PENDING or HELD; -CRP_ERETRY
 * otherwise, and the caller runs the operation again under the lock
 * (whose catch-up drops whatever was read meanwhile: a block written in
 * place by a transaction is in that transaction's records).  Returns 0
 * when the read must be made under the lock (a read-only open, the lock
 * held, a change in progress).
 */
int crp_meta_read_begin(struct crp_meta *m);
/* @keep false: the caller will not use what it read (counted a retry). */
int crp_meta_read_end(struct crp_meta *m, bool keep);

/*
 * File data read outside the caller's lock (the filesystem's big lock):
 * the blocks to read are found under it, with their checksums, and a
 * token taken before it is let go; the data is read without it (with
 * crp_array_optimistic on: nothing rebuilt, nothing waited for) and
 * checked against the checksums; then, under the lock again,
 * crp_meta_data_check says whether every block read still belonged to
 * what it was read for all along:
 *   - on this host, a freed block is reused only after the transaction
 *     that freed it committed, or at once when it was allocated in the
 *     same one (alloc.c): both move free_epoch, which must not have moved;
 *   - other hosts: none changed anything if this host held the metadata
 *     lock from the token to the check (same lock_seq); otherwise the
 *     caches must not have caught up with another host's change since the
 *     token (gen_drops; this host's own commits move the generation
 *     without it), and the shared block must still show the generation
 *     they reflect, without PENDING (as for crp_meta_read_end).
 * A token refuses (false) when the array is not whole or the mount is
 * read-only or fenced: the caller reads under its lock, as before.  The
 * check returns 0, or -CRP_ERETRY: read again under the lock.
 */
struct crp_meta_dtoken {
	uint64_t free_epoch;
	uint64_t gen_drops;
	uint64_t lock_seq;		/* 0: the lock was not held */
};

bool crp_meta_data_token(struct crp_meta *m, struct crp_meta_dtoken *t);
int crp_meta_data_check(struct crp_meta *m, const struct crp_meta_dtoken *t, bool read_ok);
/* Re-read the allocation counts that other hosts may have changed. */
int crp_meta_refresh_counts(struct crp_meta *m);
/* Read and check the shared state block (rebuilt from parity when it
 * fails, as every block): 0, or the error of a block beyond repair. */
int crp_meta_shared_check(struct crp_meta *m);

/* ---- mkfs ---- */

struct crp_mkfs_params {
	int level;
	uint32_t chunk;
	uint32_t max_hosts;
	int lock_mode;
	const char *label;
	uint64_t member_size;	/* smallest member, bytes */
	const uint8_t *uuid;	/* NULL: random */
};

/* Write a new filesystem on the open array @a (geometry not yet set):
 * labels, slots, superblock, journals, bitmaps, checksum tables and the
 * root directory.  Fills @sb. */
int crp_meta_format(struct crp_array *a, const struct crp_mkfs_params *p, struct crp_sb *sb,
		    char *err, size_t errlen);

#endif
