/*
 * Private to the filesystem core.
 *
 * Locking: one big lock, fs->mu, taken by every entry point of fs.h,
 * protects the metadata layer (cache, transaction, allocators), the inode
 * cache and every struct crp_fs_inode.  Reads of file data let it go while
 * the data comes from the disks (crp_fs_read says how that stays right);
 * writes still run under it whole.
 *
 * Between hosts: inside fs->mu, every entry point holds the metadata lock
 * of the disks (crp_fs_op_begin/_end, one transaction per operation).
 * When another host changed an inode, the cached copy is marked stale and
 * crp_fs_iget re-reads it (keeping the kernel's references and the open
 * count); the stale mark is set only between operations or at their
 * start, so no struct crp_fs_inode pointer is held across it.
 */
#ifndef CRPFS_FS_I_H
#define CRPFS_FS_I_H

#include <pthread.h>
#include <stdatomic.h>

#include "crpfs/cluster.h"
#include "crpfs/fs.h"
#include "crpfs/meta.h"

#define CRP_MAX_FILE_BLOCKS (1ull << 40) /* 4 PiB files */
#define CRP_LINK_MAX 65000

struct crp_fs_inode {
	struct crp_inode d;	 /* the on-disk record, kept current */
	uint64_t nlookup;	 /* kernel references (lookup counts) */
	uint32_t nopen;		 /* open handles */
	struct crp_extent *ext;	 /* every extent, sorted by lblk */
	uint32_t next, ext_cap;
	uint64_t *chain;	 /* extent blocks when d.flags has CRP_IF_EXT_CHAIN */
	uint32_t *chain_cnt;	 /* ... and the extents each holds (NULL: read them) */
	uint32_t nchain;
	bool ext_dirty;		 /* ext changed since the last store */
	uint32_t ext_lo;	 /* ... from this index on (UINT32_MAX: unchanged) */
	uint32_t ext_tail;	 /* ... but for this many at the end (ext_touch) */
	bool stale;		 /* another host may have changed it: re-read at iget */
};

struct crp_fs_handle {
	uint64_t ino;
	int flags;
	bool registered;	 /* counted in this host's open table (regular files) */
	GArray *snap;		 /* directories: struct crp_fs_snapent, from opendir */
};

struct crp_fs_snapent {
	char *name;
	uint64_t ino;
	uint32_t mode;
};

struct crp_fs {
	pthread_mutex_t mu;	 /* the big lock, see above */
	struct crp_meta *m;	 /* protected by mu */
	GHashTable *inodes;	 /* ino -> struct crp_fs_inode *, protected by mu */
	GHashTable *handles;	 /* open struct crp_fs_handle *, protected by mu */
	bool ro;
	int err;		 /* sticky error of the background commit, protected by mu */
	pthread_t flusher;
	pthread_cond_t flush_cv; /* with mu */
	bool stop;		 /* protected by mu */
	bool flusher_running;
	int op_err;		 /* the running operation has no transaction (protected by mu) */
	bool op_opt;		 /* ... it reads without the lock (crp_fs_rop_begin; mu) */
	uint32_t poll_ms;	 /* the background poll of the shared generation */
	crp_fs_inval_fn inval;	 /* kernel cache invalidation, protected by mu */
	void *inval_ctx;
	struct crp_cluster *cluster; /* host slot and heartbeat; NULL read-only */
	atomic_bool fenced;	 /* declared dead by another host: no more calls */
	void (*fenced_fn)(void *ctx, const char *msg); /* crp_fs_opts.fenced */
	void *fenced_ctx;
	/* Tests: called in crp_fs_read between letting fs->mu go and reading. */
	void (*read_gap)(void *ctx);
	void *read_gap_ctx;
};

/* ops.c: bracket every operation (fs->mu and one metadata transaction);
 * op_end returns @r as a negative errno for the kernel. */
uint64_t crp_fs_op_begin(struct crp_fs *fs);
int crp_fs_op_end(struct crp_fs *fs, uint64_t snap, int r);
/* The same, but fs->mu stays held: the caller unlocks with
 * crp_fs_op_unlock(fs, r), which also returns the errno for the kernel. */
int crp_fs_op_end_keep(struct crp_fs *fs, uint64_t snap, int r);
int crp_fs_op_unlock(struct crp_fs *fs, int r);
/* An operation that only reads: first without the lock (ops.c says how).
 * rop_valid false: the pass is void, mu released; run it again locked. */
uint64_t crp_fs_rop_begin(struct crp_fs *fs, bool locked);
bool crp_fs_rop_valid(struct crp_fs *fs, uint64_t snap, int r);

/* inode.c */
/* The metadata layer's changed callback (crp_meta_set_changed). */
void crp_fs_meta_changed(void *ctx, uint64_t blkno, const struct crp_mblk *cached);
int crp_fs_iget(struct crp_fs *fs, uint64_t ino, struct crp_fs_inode **out);
/* Write the inode (and its extent list) into the running transaction. */
int crp_fs_istore(struct crp_fs *fs, struct crp_fs_inode *ip);
/* Free the inode if its link count is 0 and no handle of any host holds
 * it; put it on an orphan list if one still does (inode.c says more). */
int crp_fs_iput_maybe(struct crp_fs *fs, struct crp_fs_inode *ip);
/* Free every orphan (any host's list) that nothing holds any more. */
int crp_fs_orphan_sweep(struct crp_fs *fs);
/* A new inode of @mode in directory @dp. */
int crp_fs_inew(struct crp_fs *fs, struct crp_fs_inode *dp, uint32_t mode, uint64_t rdev,
		const struct crp_cred *cred, struct crp_fs_inode **out);
void crp_fs_attr(const struct crp_fs_inode *ip, struct crp_attr *a);
void crp_fs_touch(struct crp_fs_inode *ip, bool atime, bool mtime, bool ctime);
void crp_fs_inode_drop(struct crp_fs *fs, struct crp_fs_inode *ip);
void crp_fs_inode_free_mem(void *p);

/* Extent map (inode.c). */
/* Mapping of @lblk: 1 with pblk, len and flags if mapped, 0 if a hole of
 * *len blocks (UINT64_MAX-ish past the last extent). */
int crp_fs_emap(const struct crp_fs_inode *ip, uint64_t lblk, uint64_t *pblk, uint64_t *len,
		uint32_t *flags);
/* Unmap [lblk, lblk+n); with @free the blocks go back to the allocator. */
int crp_fs_eremove(struct crp_fs *fs, struct crp_fs_inode *ip, uint64_t lblk, uint64_t n,
		   bool free_blocks, bool meta);
/* Map [lblk, lblk+n), mapped now, to [pblk, ...) instead; the old blocks
 * are freed (a copy-on-write rewrite). */
int crp_fs_ereplace(struct crp_fs *fs, struct crp_fs_inode *ip, uint64_t lblk, uint64_t pblk,
		    uint32_t n);
/* Map [lblk, lblk+n) -> [pblk, ...) (range must be unmapped). */
int crp_fs_einsert(struct crp_fs_inode *ip, uint64_t lblk, uint64_t pblk, uint32_t n,
		   uint32_t flags);

/* file.c: a read made outside fs->mu (crp_fs_read says how). */
struct crp_fs_rseg {
	size_t out, bytes;	 /* the piece of the caller's buffer */
	uint32_t skip;		 /* ... starts this far into its first block */
	uint32_t nblk;		 /* blocks to read from pblk; 0: zeros */
	uint64_t pblk;
	uint32_t csum;		 /* index of the first one's checksum in csum */
};

struct crp_fs_rplan {
	struct crp_fs_rseg *seg;
	uint32_t nseg, seg_cap;
	uint64_t *csum;		 /* per block read; 0: none recorded */
	uint32_t nblk, csum_cap;
	size_t bytes;		 /* what the read returns */
};

int crp_fs_rplan_make(struct crp_fs *fs, struct crp_fs_inode *ip, uint64_t off, size_t size,
		      struct crp_fs_rplan *p);
int crp_fs_rplan_read(struct crp_fs *fs, const struct crp_fs_rplan *p, void *buf);
void crp_fs_rplan_free(struct crp_fs_rplan *p);

/* dir.c */
int crp_fs_dir_find(struct crp_fs *fs, struct crp_fs_inode *dp, const char *name,
		    uint64_t *ino, uint8_t *type);
int crp_fs_dir_add(struct crp_fs *fs, struct crp_fs_inode *dp, const char *name, uint64_t ino,
		   uint8_t type);
int crp_fs_dir_remove(struct crp_fs *fs, struct crp_fs_inode *dp, const char *name);
int crp_fs_dir_replace(struct crp_fs *fs, struct crp_fs_inode *dp, const char *name,
		       uint64_t ino, uint8_t type);
typedef int (*crp_fs_dir_fn)(void *ctx, const struct crp_dirent *d);
int crp_fs_dir_iter(struct crp_fs *fs, struct crp_fs_inode *dp, crp_fs_dir_fn fn, void *ctx);
/* The same, going on past a bucket chain that cannot be read (fsck: the
 * names in the others still count); returns the first such error. */
int crp_fs_dir_iter_all(struct crp_fs *fs, struct crp_fs_inode *dp, crp_fs_dir_fn fn, void *ctx);
/* Blocks of the directory outside its extent map (overflow chains), for
 * freeing and fsck: calls @fn for each. */
int crp_fs_dir_overflow(struct crp_fs *fs, struct crp_fs_inode *dp,
			int (*fn)(void *ctx, uint64_t blk), void *ctx);
uint8_t crp_fs_dtype(uint32_t mode);
/* fsck: find the blocks of @dp's bucket chains that cannot be read even
 * after reconstruction from parity (crp_meta_bread_check tried), telling
 * @fn (bucket, block, whether it is the bucket's first block, error) of
 * each.  With @repair, a chain is cut where it breaks: a bucket block is
 * rewritten as an empty bucket, an overflow block is unlinked from the one
 * before it (the names they held are lost; what follows is not reached).
 * Returns the number of blocks given up, or an error. */
int crp_fs_dir_salvage(struct crp_fs *fs, struct crp_fs_inode *dp, bool repair,
		       void (*fn)(void *ctx, uint32_t bucket, uint64_t blk, bool head, int err),
		       void *ctx);

/* file.c */
int crp_fs_write_range(struct crp_fs *fs, struct crp_fs_inode *ip, uint64_t off,
		       const void *buf, size_t size);
ssize_t crp_fs_read_range(struct crp_fs *fs, struct crp_fs_inode *ip, uint64_t off, void *buf,
			  size_t size);
int crp_fs_truncate(struct crp_fs *fs, struct crp_fs_inode *ip, uint64_t size);

/* xattr.c */
int crp_fs_xattr_free(struct crp_fs *fs, struct crp_fs_inode *ip);
/* One attribute of @ip inside a running operation, by its full name, with
 * no namespace check and no meaning given to the value: read returns the
 * length (the size needed when @size is 0), -ERANGE, or -ENODATA; write
 * (@flags XATTR_CREATE / XATTR_REPLACE) and delete (-ENODATA if absent)
 * touch ctime and store the inode. */
ssize_t crp_fs_xattr_read(struct crp_fs *fs, struct crp_fs_inode *ip, const char *name,
			  void *value, size_t size);
int crp_fs_xattr_write(struct crp_fs *fs, struct crp_fs_inode *ip, const char *name,
		       const void *value, size_t size, int flags);
int crp_fs_xattr_delete(struct crp_fs *fs, struct crp_fs_inode *ip, const char *name);

/* acl.c: POSIX ACLs (system.posix_acl_*), kept in step with the mode. */
#define CRP_ACL_ACCESS "system.posix_acl_access"
#define CRP_ACL_DEFAULT "system.posix_acl_default"
bool crp_fs_acl_name(const char *name);
/* Check an ACL in the kernel's xattr form: its number of entries (0: none,
 * a removal), or -EINVAL if malformed. */
int crp_fs_acl_check(const void *value, size_t size);
/* setxattr of an ACL: checked; an access ACL sets the mode's permission
 * bits and is stored only if it says more than the mode; a default ACL
 * only on a directory (-EACCES). */
int crp_fs_acl_set(struct crp_fs *fs, struct crp_fs_inode *ip, const char *name,
		   const void *value, size_t size, int flags);
/* After chmod set ip->d.mode: the access ACL's base entries follow it. */
int crp_fs_acl_chmod(struct crp_fs *fs, struct crp_fs_inode *ip);
/* New inode @ip created with the requested @mode in @dp (after
 * crp_fs_inew, which applied the umask): if @dp has a default ACL, the
 * mode and the access ACL come from it instead, and a directory inherits
 * it.  Nothing for symlinks. */
int crp_fs_acl_inherit(struct crp_fs *fs, struct crp_fs_inode *dp, struct crp_fs_inode *ip,
		       uint32_t mode);

#endif
