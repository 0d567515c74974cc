/* Private to the metadata layer. */
#ifndef CRPFS_META_I_H
#define CRPFS_META_I_H

#include "crpfs/meta.h"
#include "crpfs/util.h"

/* Rebuild and scrub hold every member for a run of stripes.  While other
 * hosts live, a run holds them about this long at most (it takes fewer
 * stripes after a longer one, more again after a short one): their
 * heartbeats retry a held member for half a heartbeat, and in pr mode
 * none of them lands anywhere while a run holds them all. */
#define CRP_HOLD_ALL_NS 20000000ull
/* The next run's stripes (1 to @max) after one of @cur that held every
 * member @held_ns, with @peers other hosts alive. */
static inline uint32_t crp_hold_all_next(uint32_t cur, uint32_t max, uint64_t held_ns, int peers)
{
	if (peers > 0 && held_ns > CRP_HOLD_ALL_NS && cur > 1)
		return cur / 2;
	if ((peers == 0 || held_ns < CRP_HOLD_ALL_NS / 2) && cur < max)
		return CRP_MIN(cur * 2, max);
	return cur;
}

/* journal.c */
void crp_meta_mblk_free(void *p);
/* Forget a cached block (freed metadata), dropping it from the transaction. */
void crp_meta_forget_block(struct crp_meta *m, uint64_t blkno);
/* Group commit's undo (journal.c): open one for an operation joining the
 * batch (its blocks are saved as the operation touches them,
 * crp_meta_undo_touch); put them back (the operation's own changes become
 * clean copies for the caller to drop).  Restore returns false when it
 * cannot (no save, a commit since, or a change it could not save). */
void crp_meta_undo_save(struct crp_meta *m);
bool crp_meta_undo_restore(struct crp_meta *m);
/* A block of the cache is handed out (it may be changed): save it for the
 * running operation's undo if it is the batch's and not saved yet. */
void crp_meta_undo_touch(struct crp_meta *m, struct crp_mblk *b);
/* The operation no longer needs its undo (it ended, or committed). */
void crp_meta_undo_forget(struct crp_meta *m);
/* What the undo must also know of data: the operation wrote @blk, whose
 * content now has checksum @csum; it freed @blk, which the batch had
 * allocated (1: the undo took it over; 0: no undo runs, free it now). */
void crp_meta_undo_note_write(struct crp_meta *m, uint64_t blk, uint64_t csum);
int crp_meta_undo_note_free(struct crp_meta *m, uint64_t blk);
void crp_meta_undo_free(struct crp_meta *m);
/* Where @slot's journal continues: ring index and next sequence. */
int crp_meta_journal_position(struct crp_meta *m, int slot, uint64_t *pos, uint64_t *seq);
/* Write our journal header at the current position (clean close). */
int crp_meta_journal_settle(struct crp_meta *m);

/* Redo in place the transaction of @slot's journal at ring index @pos with
 * sequence @seq, and those after it that create the same generation (the
 * rest of a deferred checkpoint's chain); a no-op if it is not there
 * (never committed).  Returns how many it redid. */
int crp_meta_journal_redo(struct crp_meta *m, int slot, uint64_t pos, uint64_t seq);

/* The deferred checkpoint (journal.c).  A block whose newest committed
 * image is not in place yet: copied into @buf (true), for a read that
 * missed the cache. */
bool crp_meta_lazy_get(struct crp_meta *m, uint64_t blkno, void *buf);
/* Forget the chain (the lock is gone with it: whoever takes it next redoes
 * the chain from the journal, PENDING says where). */
void crp_meta_lazy_drop(struct crp_meta *m);
static inline bool crp_meta_lazy_open(const struct crp_meta *m)
{
	return m->lazy_since_ns != 0;
}
/* How long a kept batch may hold the metadata lock in a row, however
 * often fsync starts its window over (the deferred checkpoint): then it
 * commits and the lock steps aside for 1 to 3 ms, so that a host starting
 * to mount (which the holder cannot know of before its first heartbeat,
 * written after it read the labels) gets its reads through in reserve
 * mode. */
#define CRP_HOLD_MAX_NS 250000000ull
static inline bool crp_meta_hold_over(const struct crp_meta *m, uint64_t now)
{
	return m->locked && m->lock_since_ns && now - m->lock_since_ns >= m->hold_max_ns;
}

/* coherence.c: the shared block around a commit (under the lock).
 * Pending: the new generation, PENDING (and HELD too with @held), where
 * the transaction lies in our journal, one record per block. */
int crp_meta_shared_pending(struct crp_meta *m, struct crp_mblk **blks, unsigned k, uint64_t pos,
			    uint64_t seq, bool held);
/* A record of the current generation for block @blkno (in memory: the
 * next write of the shared block carries it). */
void crp_meta_shared_note(struct crp_meta *m, uint64_t blkno);
int crp_meta_shared_done(struct crp_meta *m);
uint64_t crp_meta_next_gen(const struct crp_meta *m);
/* Read the shared block into m->sh (repaired from parity unless read-only). */
int crp_meta_shared_load(struct crp_meta *m);
int crp_meta_shared_replayed(struct crp_meta *m);
uint64_t crp_meta_shared_gen(const struct crp_meta *m);
int crp_meta_shared_peek(struct crp_meta *m, int slot, uint64_t *gen, uint64_t *replay_gen);
/* Transactions of @slot's journal that create a generation above this one
 * are not in place: those after the shared generation @s, and the one (or
 * the chain) its PENDING names if it names @slot. */
static inline uint64_t crp_meta_replay_gen(const struct crp_shared *s, int slot)
{
	if ((s->flags & CRP_SHARED_PENDING) && s->slot == (uint32_t)slot && s->generation)
		return s->generation - 1;
	return s->generation;
}
/* Write m->sh as it is (under the lock). */
int crp_meta_shared_store(struct crp_meta *m);

/* members.c */
/* Take the member table of the assembly, set the array's states, hook the
 * failure recording. */
int crp_meta_members_attach(struct crp_meta *m, const struct crp_assembly *as);
/* Write our table to the label of the member at @pos (a new member). */
int crp_meta_members_write_label(struct crp_meta *m, int pos);
/* Does the shared block say the table moved since ours? */
bool crp_meta_members_stale(const struct crp_meta *m, const struct crp_shared *s);

/* opentab.c: the in-memory table, made at open and freed at close. */
int crp_meta_opentab_init(struct crp_meta *m);
void crp_meta_opentab_free(struct crp_meta *m);
/* Write the open-table blocks a group commit kept back (opentab.c). */
int crp_meta_open_flush_pending(struct crp_meta *m);
/* Our table's blocks waiting for the unlock, encoded into @bufs (room for
 * CRP_OTABLE_BLOCKS blocks) as array writes @iov, for the commit to write
 * with its own; *@mask says which.  Returns how many.  The commit then
 * says how the write went (crp_meta_open_pending_written). */
unsigned crp_meta_open_pending_iov(struct crp_meta *m, struct crp_array_iov *iov, uint8_t *bufs,
				   uint8_t *mask);
void crp_meta_open_pending_written(struct crp_meta *m, uint8_t mask, int r);

/* repair.c */
/* crp_meta_rebuild_block, with @magic naming the block in messages, @why
 * saying what failed (NULL: "all zeros" or "fails its checks"), and, with
 * @quiet, nothing logged or recorded when no reconstruction passes (a
 * probe: the end of a journal). */
int crp_meta_rebuild_as(struct crp_meta *m, uint64_t blkno, void *buf,
			bool (*ok)(const void *blk, void *ctx), void *ctx, uint32_t magic,
			const char *why, bool quiet);
/* Find a reconstruction of @blkno that @ok accepts, into @out, without
 * writing or logging anything: the members taken as missing in *@bad and
 * *@bad2 (-1: none).  0, or -EIO. */
int crp_meta_reconstruct(struct crp_meta *m, uint64_t blkno, void *out,
			 bool (*ok)(const void *blk, void *ctx), void *ctx, int *bad, int *bad2);
/* Record damage found without a rebuild attempt (fsck reports it). */
void crp_meta_damage_note(struct crp_meta *m, uint64_t blkno, uint32_t magic, const char *why);

/* alloc.c */
/* Load the free counts of every allocation group and inode group. */
int crp_meta_load_counts(struct crp_meta *m);
/* The block bitmap of group @g / inode bitmap block @i, checked (owner,
 * bits, free count) and rebuilt from parity when they fail. */
int crp_meta_bitmap_read(struct crp_meta *m, uint32_t g, struct crp_mblk **out);
int crp_meta_ibitmap_read(struct crp_meta *m, uint32_t i, struct crp_mblk **out);

/* Blocks per stripe (the data chunks of one row of the array); 1 without
 * an array geometry. */
static inline uint32_t crp_meta_stripe_blocks(const struct crp_meta *m)
{
	const struct crp_geom *g = crp_array_geom(m->a);

	return g ? (uint32_t)(crp_geom_stripe_bytes(g) / CRP_BLOCK) : 1;
}

/* dheld.c: small data writes held until the commit. */
/* Hold @n blocks at @pblk: 1 if held, 0 if they must be written now. */
int crp_meta_dheld_take(struct crp_meta *m, uint64_t pblk, uint32_t n, const void *buf);
/* The held copy of @pblk, or NULL. */
const void *crp_meta_dheld_get(const struct crp_meta *m, uint64_t pblk);
/* Take the held copy of @pblk out (the caller's to free), or NULL; put
 * one back (the table's to free). */
void *crp_meta_dheld_steal(struct crp_meta *m, uint64_t pblk);
int crp_meta_dheld_put(struct crp_meta *m, uint64_t pblk, void *buf);
/* Forget what is held for [pblk, pblk+n) / for everything. */
void crp_meta_dheld_forget(struct crp_meta *m, uint64_t pblk, uint32_t n);
void crp_meta_dheld_drop(struct crp_meta *m);
void crp_meta_dheld_free(struct crp_meta *m);

#endif
