/*
 * The crpfs daemon (mount.crpfs): private interface between its files.
 *
 *   opts.c  the command line and -o options, as mount(8) passes them
 *   ops.c   the FUSE low-level handlers: short adapters over crp_fs_*
 *   main.c  start-up order, daemonizing, the session loop, shutdown
 *
 * Only this directory includes <fuse_lowlevel.h>.
 */
#ifndef CRPFS_FUSE_I_H
#define CRPFS_FUSE_I_H

#define FUSE_USE_VERSION 314

#include <fuse_lowlevel.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "crpfs/fs.h"
#include "crpfs/geom.h"

/*
 * Run @call, an operation that changes the filesystem, again (CRP_TX_TRIES
 * times in all at most) while it fails with EIO because its transaction was
 * lost with the metadata lock (crp_fs_tx_lost_take): nothing of it was
 * applied, so running it again is what the application would do.  A lock
 * goes with an iSCSI session, and the session takes a while to log in
 * again (about a second after a target restart): the tries wait 50 ms,
 * doubling, in between (6.35 s in all), rather than failing at once
 * against a session still down.
 */
#define CRP_TX_TRIES 8
#define CRP_TX_RETRY(call)                                                     \
	({                                                                     \
		__typeof__(call) r_;                                           \
		int tries_ = 0;                                                \
		(void)crp_fs_tx_lost_take();                                   \
		for (;;) {                                                     \
			r_ = (call);                                           \
			if (r_ != -EIO || !crp_fs_tx_lost_take() ||            \
			    ++tries_ >= CRP_TX_TRIES)                          \
				break;                                         \
			crp_sleep_ns(50000000ull << (tries_ - 1));             \
		}                                                              \
		r_;                                                            \
	})

#define CRP_MOUNT_HOST_MAX 64
#define CRP_MOUNT_DEFAULT_ATTR_TIMEOUT 1.0
#define CRP_MOUNT_DEFAULT_READAHEAD_KB 1024 /* one FUSE read of the largest size */
#define CRP_MOUNT_MAX_READAHEAD_KB 65536

/* Everything the command line says.  Filled by crp_mount_opts_parse. */
struct crp_mount_opts {
	char *members;			/* MEMBER[,MEMBER...] as given (fsname) */
	char *specs[CRP_MAX_MEMBERS];	/* split copies of each member */
	int nspecs;
	char *mountpoint;		/* canonical absolute path */
	char host[CRP_MOUNT_HOST_MAX];	/* "" until defaulted to the hostname */
	bool ro;
	bool allow_other;		/* other users may use the mount (root's default) */
	bool owner_only;		/* only the user who mounted (option owner_only) */
	double attr_timeout;		/* seconds, for entries and attributes */
	uint32_t timeout_ms;		/* member command timeout, 0 = default */
	uint32_t heartbeat_ms;		/* host slot heartbeat interval */
	uint32_t dead_timeout_ms;	/* a host silent this long is dead */
	uint32_t commit_ms;		/* group commit window, CRP_FS_COMMIT_OFF: none */
	uint32_t peer_commit_ms;	/* ... while other hosts are mounted */
	uint32_t readahead_kb;		/* the mount's kernel readahead, 0: the kernel's */
	bool foreground;
	bool debug;
	bool verbose;			/* -v from mount(8) */
	bool sloppy;			/* -s from mount(8): unknown options warn */
	bool strict;			/* no kernel data cache: direct I/O on every open */
	bool help;
	bool version;
};

/*
 * Parse argv as mount(8) and users call us:
 *   mount.crpfs MEMBERS MOUNTPOINT [-o OPTS]... [-f] [-d] [-n] [-s] [-v]
 * Options and positional arguments may come in any order.  Returns 0, or
 * -EINVAL with a sentence in @err naming the bad argument or option.
 * Checks that MOUNTPOINT is an existing directory.  Touches nothing else.
 */
int crp_mount_opts_parse(int argc, char **argv, struct crp_mount_opts *o, char *err,
			 size_t errlen);
void crp_mount_opts_free(struct crp_mount_opts *o);

/* Apply one comma-separated option list (the text after -o) to @o. */
int crp_mount_opts_apply(struct crp_mount_opts *o, const char *list, char *err,
			 size_t errlen);

/* What the handlers need; the session's userdata. */
struct crp_fuse {
	struct crp_fs *fs;		/* set before the session is created */
	double attr_timeout;		/* seconds */
	bool ro;
	bool strict;			/* direct_io on every open (mount option strict) */
	struct crp_inval_queue *inval;	/* inval.c */
	struct fuse_session *se;	/* set once mounted, before the loop */
	atomic_bool fenced;		/* declared dead by another host: stop */
	atomic_bool stopping;		/* the session loop ended: the stopper leaves */
	int fence_pipe[2];		/* main.c: the fenced callback wakes the stopper */
	pthread_t stopper;
	bool stopper_running;
};

/* inval.c: the thread that tells the kernel what other hosts changed.
 * Start after the session is mounted, stop before it is unmounted. */
int crp_fuse_inval_start(struct crp_fuse *cf, struct fuse_session *se);
void crp_fuse_inval_stop(struct crp_fuse *cf);

/* The handler table for fuse_session_new. */
extern const struct fuse_lowlevel_ops crp_fuse_ops;

#endif
