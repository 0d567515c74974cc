/*
 * passthrough: the baseline of bench/bench_fs.c, a minimal FUSE filesystem
 * that mirrors one directory of the local disk.
 *
 *   passthrough SOURCE MOUNTPOINT [-f] [-d] [-s] [-o OPTIONS]
 *
 * libfuse's high-level API, multithreaded (at most 16 threads, as
 * mount.crpfs; -s for one).  Every path the kernel sends ("/a/b") is
 * resolved relative to a descriptor of SOURCE opened once at start ("a/b",
 * "." for the root) with the *at() calls, never following a symlink in the
 * last component (the kernel resolves the others by lookups), so the
 * mirror never leaves SOURCE.  A file handle is the open descriptor of the
 * backing file.
 *
 * What a benchmark needs and no more: getattr, readdir, open, create,
 * read, write, release, fsync, mkdir, unlink, rmdir, truncate and the rest
 * of setattr (chmod, chown, utimens), statfs.  Files are created with the
 * daemon's credentials.  Kernel caching matches mount.crpfs's defaults:
 * attributes and names cached for 1 s, no write-back cache, so each
 * write(2) reaches the daemon as crpfs's do.
 *
 * Handlers return 0 or -errno, as the high-level API wants.
 */
#define FUSE_USE_VERSION 314

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <fuse.h>
#include <fuse_lowlevel.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/types.h>
#include <unistd.h>

#define PT_MAX_THREADS 16

/* Descriptor of SOURCE; set before fuse_main, read-only afterwards. */
static int root_fd = -1;

/* "/" -> ".", "/a/b" -> "a/b": a path relative to root_fd. */
static const char *rel(const char *path)
{
	while (*path == '/')
		path++;
	return *path ? path : ".";
}

static void *pt_init(struct fuse_conn_info *conn, struct fuse_config *cfg)
{
	/* Same kernel caching as mount.crpfs: every write comes to us. */
	conn->want &= ~FUSE_CAP_WRITEBACK_CACHE;
	cfg->use_ino = 1;
	cfg->entry_timeout = 1.0;
	cfg->attr_timeout = 1.0;
	cfg->negative_timeout = 0.0;
	return NULL;
}

static int pt_getattr(const char *path, struct stat *st, struct fuse_file_info *fi)
{
	int r = fi ? fstat((int)fi->fh, st) : fstatat(root_fd, rel(path), st, AT_SYMLINK_NOFOLLOW);

	return r < 0 ? -errno : 0;
}

static int pt_readdir(const char *path, void *buf, fuse_fill_dir_t filler, off_t off,
		      struct fuse_file_info *fi, enum fuse_readdir_flags flags)
{
	struct dirent *de;
	DIR *d;
	int fd, r = 0;

	(void)off;
	(void)fi;
	(void)flags;
	fd = openat(root_fd, rel(path), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	d = fdopendir(fd);
	if (!d) {
		r = -errno;
		close(fd);
		return r;
	}
	/* Offset 0 to the filler: libfuse keeps the whole listing and pages
	 * it to the kernel itself. */
	errno = 0;
	while ((de = readdir(d))) {
		struct stat st = { .st_ino = de->d_ino, .st_mode = (mode_t)DTTOIF(de->d_type) };

		if (filler(buf, de->d_name, &st, 0, 0))
			break;
		errno = 0;
	}
	if (errno)
		r = -errno;
	closedir(d);
	return r;
}

static int pt_open(const char *path, struct fuse_file_info *fi)
{
	int fd = openat(root_fd, rel(path), (fi->flags | O_NOFOLLOW | O_CLOEXEC) & ~O_CREAT);

	if (fd < 0)
		return -errno;
	fi->fh = (uint64_t)fd;
	return 0;
}

static int pt_create(const char *path, mode_t mode, struct fuse_file_info *fi)
{
	int fd = openat(root_fd, rel(path), fi->flags | O_CREAT | O_NOFOLLOW | O_CLOEXEC, mode);

	if (fd < 0)
		return -errno;
	fi->fh = (uint64_t)fd;
	return 0;
}

static int pt_read(const char *path, char *buf, size_t size, off_t off, struct fuse_file_info *fi)
{
	ssize_t n;

	(void)path;
	n = pread((int)fi->fh, buf, size, off);
	return n < 0 ? -errno : (int)n;
}

static int pt_write(const char *path, const char *buf, size_t size, off_t off,
		    struct fuse_file_info *fi)
{
	size_t done = 0;

	(void)path;
	while (done < size) {
		ssize_t n = pwrite((int)fi->fh, buf + done, size - done, off + (off_t)done);

		if (n < 0) {
			if (errno == EINTR)
				continue;
			return done ? (int)done : -errno;
		}
		if (n == 0)
			break;
		done += (size_t)n;
	}
	return (int)done;
}

static int pt_release(const char *path, struct fuse_file_info *fi)
{
	(void)path;
	close((int)fi->fh);
	return 0;
}

static int pt_fsync(const char *path, int datasync, struct fuse_file_info *fi)
{
	int r;

	(void)path;
	r = datasync ? fdatasync((int)fi->fh) : fsync((int)fi->fh);
	return r < 0 ? -errno : 0;
}

static int pt_mkdir(const char *path, mode_t mode)
{
	return mkdirat(root_fd, rel(path), mode) < 0 ? -errno : 0;
}

static int pt_unlink(const char *path)
{
	return unlinkat(root_fd, rel(path), 0) < 0 ? -errno : 0;
}

static int pt_rmdir(const char *path)
{
	return unlinkat(root_fd, rel(path), AT_REMOVEDIR) < 0 ? -errno : 0;
}

static int pt_truncate(const char *path, off_t size, struct fuse_file_info *fi)
{
	int fd, r = 0;

	if (fi)
		return ftruncate((int)fi->fh, size) < 0 ? -errno : 0;
	fd = openat(root_fd, rel(path), O_WRONLY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	if (ftruncate(fd, size) < 0)
		r = -errno;
	close(fd);
	return r;
}

static int pt_chmod(const char *path, mode_t mode, struct fuse_file_info *fi)
{
	int r = fi ? fchmod((int)fi->fh, mode) : fchmodat(root_fd, rel(path), mode, AT_SYMLINK_NOFOLLOW);

	return r < 0 ? -errno : 0;
}

static int pt_chown(const char *path, uid_t uid, gid_t gid, struct fuse_file_info *fi)
{
	int r = fi ? fchown((int)fi->fh, uid, gid)
		   : fchownat(root_fd, rel(path), uid, gid, AT_SYMLINK_NOFOLLOW);

	return r < 0 ? -errno : 0;
}

static int pt_utimens(const char *path, const struct timespec tv[2], struct fuse_file_info *fi)
{
	int r = fi ? futimens((int)fi->fh, tv)
		   : utimensat(root_fd, rel(path), tv, AT_SYMLINK_NOFOLLOW);

	return r < 0 ? -errno : 0;
}

static int pt_statfs(const char *path, struct statvfs *sv)
{
	(void)path;
	return fstatvfs(root_fd, sv) < 0 ? -errno : 0;
}

static const struct fuse_operations pt_ops = {
	.init = pt_init,
	.getattr = pt_getattr,
	.readdir = pt_readdir,
	.open = pt_open,
	.create = pt_create,
	.read = pt_read,
	.write = pt_write,
	.release = pt_release,
	.fsync = pt_fsync,
	.mkdir = pt_mkdir,
	.unlink = pt_unlink,
	.rmdir = pt_rmdir,
	.truncate = pt_truncate,
	.chmod = pt_chmod,
	.chown = pt_chown,
	.utimens = pt_utimens,
	.statfs = pt_statfs,
};

/* fuse_main's loop, written out so that the thread limit is ours: the same
 * 16 threads at most as mount.crpfs. */
static int serve(struct fuse_args *args)
{
	struct fuse_cmdline_opts o = { 0 };
	struct fuse_loop_config *cfg = NULL;
	struct fuse *f = NULL;
	bool mounted = false, handlers = false;
	int r = 1;

	if (fuse_parse_cmdline(args, &o) != 0)
		return 2;
	if (o.show_help || o.show_version || !o.mountpoint) {
		fprintf(stderr, "usage: passthrough SOURCE MOUNTPOINT [-f] [-d] [-s] [-o OPTIONS]\n");
		r = 2;
		goto out;
	}
	f = fuse_new(args, &pt_ops, sizeof(pt_ops), NULL);
	if (!f)
		goto out;
	if (fuse_mount(f, o.mountpoint) != 0)
		goto out;
	mounted = true;
	if (fuse_daemonize(o.foreground) != 0)
		goto out;
	if (fuse_set_signal_handlers(fuse_get_session(f)) != 0)
		goto out;
	handlers = true;
	cfg = fuse_loop_cfg_create();
	if (!cfg)
		goto out;
	fuse_loop_cfg_set_max_threads(cfg, PT_MAX_THREADS);
	fuse_loop_cfg_set_clone_fd(cfg, 0);
	r = (o.singlethread ? fuse_loop(f) : fuse_loop_mt(f, cfg)) ? 1 : 0;
out:
	if (cfg)
		fuse_loop_cfg_destroy(cfg);
	if (handlers)
		fuse_remove_signal_handlers(fuse_get_session(f));
	if (mounted)
		fuse_unmount(f);
	if (f)
		fuse_destroy(f);
	free(o.mountpoint);
	return r;
}

int main(int argc, char *argv[])
{
	struct fuse_args args;
	int r;

	if (argc < 3 || argv[1][0] == '-') {
		fprintf(stderr, "usage: %s SOURCE MOUNTPOINT [-f] [-d] [-s] [-o OPTIONS]\n", argv[0]);
		return 2;
	}
	root_fd = open(argv[1], O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (root_fd < 0) {
		fprintf(stderr, "passthrough: cannot open the source directory %s: %s\n", argv[1],
			strerror(errno));
		return 1;
	}
	/* libfuse sees the program name and everything after SOURCE. */
	argv[1] = argv[0];
	args = (struct fuse_args)FUSE_ARGS_INIT(argc - 1, argv + 1);
	r = serve(&args);
	fuse_opt_free_args(&args);
	close(root_fd);
	return r;
}
