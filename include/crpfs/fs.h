/*
 * The filesystem core: namespace, files, extents, caches.  No FUSE types.
 *
 * Every operation is a short call that returns 0 (or a byte count) or a
 * negative error; the FUSE adapters in src/fuse turn those into replies.
 * Inode numbers are the filesystem's own; CRP_ROOT_INO is the root.
 * Every metadata change is a transaction (meta/journal): it is journalled
 * before it is applied, so that a crash at any instant replays to a
 * consistent filesystem.  Reference counts from lookups (nlookup) follow
 * the FUSE low-level model: every successful lookup, create, mknod, mkdir,
 * symlink and link counts one, crp_fs_forget() drops them, and an unlinked
 * inode is freed when its links, its lookups and its open handles are all
 * gone.
 *
 * Thread safety: every function may be called from any thread at once.
 */
#ifndef CRPFS_FS_H
#define CRPFS_FS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/types.h>
#include <time.h>

#define CRP_ROOT_INO 1
#define CRP_NAME_MAX 255
#define CRP_SYMLINK_MAX 4095

struct crp_fs;

#define CRP_FS_DEFAULT_COMMIT_MS 50
#define CRP_FS_MAX_COMMIT_MS 60000
#define CRP_FS_DEFAULT_PEER_COMMIT_MS 30
#define CRP_FS_MAX_PEER_COMMIT_MS 1000
#define CRP_FS_COMMIT_OFF UINT32_MAX

struct crp_fs_opts {
	const char *host;	/* this host's name (slot, initiator name); hostname if NULL */
	bool ro;
	uint32_t timeout_ms;	/* member command timeout; default if 0 */
	uint32_t attr_timeout_ms; /* staleness bound for cached attributes (multi-host) */
	uint32_t heartbeat_ms;	/* host slot heartbeat interval; default if 0 */
	uint32_t dead_timeout_ms; /* a host silent this long is dead; default if 0 */
	/* Group commit: while no other host is alive, operations are
	 * committed together at most this long after the first (fsync
	 * commits at once).  0: the default; CRP_FS_COMMIT_OFF: each
	 * operation commits alone. */
	uint32_t commit_ms;
	/* The same while other hosts are alive, for batches that change
	 * something; they wait for the metadata lock meanwhile, so it is
	 * short.  0: the default; CRP_FS_COMMIT_OFF: each operation commits
	 * alone once another host lives. */
	uint32_t peer_commit_ms;
	/* This host was declared dead by another and fenced: every call fails
	 * with -ESHUTDOWN from now on.  Called once, from the heartbeat thread
	 * or a writer, with the message to show; must not block nor call back
	 * into the filesystem.  NULL: nobody is told (calls still fail). */
	void (*fenced)(void *ctx, const char *msg);
	void *fenced_ctx;
};

/*
 * Did the last operation of this thread fail because its metadata
 * transaction was lost with the metadata lock (the lock went with an iSCSI
 * session: a target restart, a network cut; another host wrote meanwhile)?
 * Nothing of it was applied, and it fails with EIO; the caller may run it
 * again, as the application would.  Cleared by the reading.
 */
bool crp_fs_tx_lost_take(void);


/* Mount the filesystem on the members @specs (array order, or any order:
 * the labels say which is which).  Read-write: joins the cluster (claims a
 * host slot, recovers the hosts found dead, starts the heartbeat; a host
 * name whose slot is alive is refused with -EBUSY).  Read-only: no slot,
 * and a journal left to replay is refused.  On error @err says which
 * member and what is wrong. */
int crp_fs_mount(const char *const *specs, int n, const struct crp_fs_opts *opts,
		 struct crp_fs **out, char *err, size_t errlen);
/* Flush everything, leave the cluster, free the host slot, close the members.
 * A fenced host writes nothing and returns -ESHUTDOWN. */
int crp_fs_unmount(struct crp_fs *fs);
/* Flush every dirty buffer and the journal (syncfs). */
int crp_fs_sync(struct crp_fs *fs);

struct crp_attr {
	uint64_t ino;
	uint64_t size;
	uint64_t blocks;	/* 512-byte units allocated */
	uint32_t mode;
	uint32_t nlink;
	uint32_t uid;
	uint32_t gid;
	uint64_t rdev;
	struct timespec atime, mtime, ctime, btime;
	uint64_t generation;
};

/* Fields to change in crp_fs_setattr. */
enum {
	CRP_SET_MODE = 1u << 0,
	CRP_SET_UID = 1u << 1,
	CRP_SET_GID = 1u << 2,
	CRP_SET_SIZE = 1u << 3,
	CRP_SET_ATIME = 1u << 4,
	CRP_SET_MTIME = 1u << 5,
	CRP_SET_ATIME_NOW = 1u << 6,
	CRP_SET_MTIME_NOW = 1u << 7,
	CRP_SET_CTIME = 1u << 8,
};

/* The caller's identity, for ownership of new inodes and for the few checks
 * the core makes itself (sticky directories, RENAME_*); FUSE's
 * default_permissions makes the kernel do the rest, as for a local fs. */
struct crp_cred {
	uint32_t uid;
	uint32_t gid;
	uint32_t umask;
};

int crp_fs_lookup(struct crp_fs *fs, uint64_t parent, const char *name, struct crp_attr *out);
void crp_fs_forget(struct crp_fs *fs, uint64_t ino, uint64_t nlookup);
int crp_fs_getattr(struct crp_fs *fs, uint64_t ino, struct crp_attr *out);
int crp_fs_setattr(struct crp_fs *fs, uint64_t ino, const struct crp_attr *in, unsigned set,
		   const struct crp_cred *cred, struct crp_attr *out);

int crp_fs_mknod(struct crp_fs *fs, uint64_t parent, const char *name, uint32_t mode,
		 uint64_t rdev, const struct crp_cred *cred, struct crp_attr *out);
int crp_fs_mkdir(struct crp_fs *fs, uint64_t parent, const char *name, uint32_t mode,
		 const struct crp_cred *cred, struct crp_attr *out);
int crp_fs_symlink(struct crp_fs *fs, uint64_t parent, const char *name, const char *target,
		   const struct crp_cred *cred, struct crp_attr *out);
/* Returns the length of the target (not NUL-terminated past @size). */
ssize_t crp_fs_readlink(struct crp_fs *fs, uint64_t ino, char *buf, size_t size);
int crp_fs_link(struct crp_fs *fs, uint64_t ino, uint64_t newparent, const char *newname,
		struct crp_attr *out);
int crp_fs_unlink(struct crp_fs *fs, uint64_t parent, const char *name,
		  const struct crp_cred *cred);
int crp_fs_rmdir(struct crp_fs *fs, uint64_t parent, const char *name,
		 const struct crp_cred *cred);
/* @flags: 0, RENAME_NOREPLACE or RENAME_EXCHANGE (linux/fs.h values). */
int crp_fs_rename(struct crp_fs *fs, uint64_t parent, const char *name, uint64_t newparent,
		  const char *newname, unsigned flags, const struct crp_cred *cred);

/* Open files.  @fh identifies the open handle until crp_fs_release. */
int crp_fs_open(struct crp_fs *fs, uint64_t ino, int flags, uint64_t *fh);
int crp_fs_create(struct crp_fs *fs, uint64_t parent, const char *name, uint32_t mode,
		  int flags, const struct crp_cred *cred, struct crp_attr *out, uint64_t *fh);
int crp_fs_release(struct crp_fs *fs, uint64_t ino, uint64_t fh);
ssize_t crp_fs_read(struct crp_fs *fs, uint64_t ino, uint64_t fh, uint64_t off, void *buf,
		    size_t size);
ssize_t crp_fs_write(struct crp_fs *fs, uint64_t ino, uint64_t fh, uint64_t off,
		     const void *buf, size_t size);
/* Durable on return: data (and metadata unless @datasync) reached the disks. */
int crp_fs_fsync(struct crp_fs *fs, uint64_t ino, bool datasync);
/* @mode: 0, FALLOC_FL_KEEP_SIZE, FALLOC_FL_PUNCH_HOLE|FALLOC_FL_KEEP_SIZE. */
int crp_fs_fallocate(struct crp_fs *fs, uint64_t ino, int mode, uint64_t off, uint64_t len);
/* SEEK_DATA / SEEK_HOLE: the resulting offset, or -ENXIO. */
int64_t crp_fs_lseek(struct crp_fs *fs, uint64_t ino, int64_t off, int whence);

/* Directory listing.  @fn gets each entry with the cookie of the entry after
 * it; returning non-zero stops the walk.  "." and ".." are included. */
typedef int (*crp_fs_dirent_fn)(void *ctx, const char *name, uint64_t ino, uint32_t mode,
				uint64_t next_cookie);
int crp_fs_opendir(struct crp_fs *fs, uint64_t ino, uint64_t *fh);
int crp_fs_readdir(struct crp_fs *fs, uint64_t ino, uint64_t fh, uint64_t cookie,
		   crp_fs_dirent_fn fn, void *ctx);
int crp_fs_releasedir(struct crp_fs *fs, uint64_t ino, uint64_t fh);

int crp_fs_statfs(struct crp_fs *fs, struct statvfs *out);

/* What this host's mount has done so far, for tests and benchmarks. */
struct crp_fs_counters {
	uint64_t reservations;	   /* RESERVEs that returned GOOD (metadata and stripes) */
	uint64_t commits;	   /* metadata transactions committed */
	uint64_t committed_blocks; /* ... and the blocks they journaled */
	uint64_t deferred_commits; /* ... whose blocks went in place later, from memory */
	uint64_t inplace_blocks;   /* metadata blocks written in place after their commit */
	uint64_t unlocked_reads;   /* read-only operations served without the lock */
	uint64_t unlocked_retries; /* ... that met a change and ran again under it */
	uint64_t data_outside;	   /* reads whose data came without the core's lock */
	uint64_t data_outside_retries; /* ... that met a change and read again under it */
	uint64_t batches;	   /* group commits of more than one operation */
	uint64_t batched_ops;	   /* ... and the operations they committed */
	uint64_t held_marks;	   /* batches announced kept (HELD) in the shared block */
	uint64_t open_table_reads; /* other hosts' open tables read to free an inode */
	uint32_t peers;		   /* other hosts alive, as the heartbeats say */
};
void crp_fs_get_counters(struct crp_fs *fs, struct crp_fs_counters *out);

/*
 * Many hosts.  Every operation checks the shared generation under the
 * metadata lock, so it always works on what the disks hold; a background
 * poll every attr_timeout_ms does the same between operations.  When
 * another host changed something this host (or its kernel) may cache, the
 * invalidate callback is told: @ino != 0 and @name NULL: the attributes and
 * data of @ino; @name != NULL: the entry @name of directory @parent;
 * @ino == 0 and @name NULL: anything (drop every cache).  It is called with
 * the filesystem's lock held, from an operation's thread or the poll
 * thread: it must only queue the request (copy @name) and return, never
 * call back into the filesystem, never block on the kernel.
 */
typedef void (*crp_fs_inval_fn)(void *ctx, uint64_t ino, uint64_t parent, const char *name);
void crp_fs_set_invalidate(struct crp_fs *fs, crp_fs_inval_fn fn, void *ctx);

/* Extended attributes; @flags XATTR_CREATE / XATTR_REPLACE.  get/list return
 * the size needed when @size is 0, -ERANGE when it is too small. */
int crp_fs_setxattr(struct crp_fs *fs, uint64_t ino, const char *name, const void *value,
		    size_t size, int flags);
ssize_t crp_fs_getxattr(struct crp_fs *fs, uint64_t ino, const char *name, void *value,
			size_t size);
ssize_t crp_fs_listxattr(struct crp_fs *fs, uint64_t ino, char *list, size_t size);
int crp_fs_removexattr(struct crp_fs *fs, uint64_t ino, const char *name);

#endif
