/*
 * The filesystem through FUSE, against a FUSE passthrough of the same disk
 * measured in the same run.
 *
 * Three sparse 1 GiB file: members in a scratch directory under /var/tmp,
 * formatted with mkfs.crpfs (RAID-5) and mounted with mount.crpfs, and
 * four more formatted RAID-6 (the same 2 GiB of data) and mounted beside
 * them; beside them, a directory of the same filesystem mirrored by our passthrough
 * (build/bench-tools/passthrough, bench/tools/passthrough.c), and fuse2fs
 * on an ext4 image file as large as the crpfs filesystem (2 GiB), the
 * single-host FUSE filesystem a user would otherwise pick.  The daemons
 * run in the foreground as our children, each on its own mount point,
 * with the same kernel caching (1 s attributes, no write-back cache).
 * Each phase runs on the passthrough, then on fuse2fs, then on crpfs
 * (RAID-5, then RAID-6):
 *
 *   seq write   256 MiB in 1 MiB write(2)s, then fsync; open to fsync timed
 *   seq read    the same file back in 1 MiB reads after dropping the page,
 *               dentry and inode caches (and checking every byte)
 *   rand write  4 KiB writes at random 4 KiB-aligned offsets of that file,
 *               fsync after every 64, for 10 s or 100,000 writes
 *   fio         the same with fio (psync, queue depth 1) for 5 s, and 4 KiB
 *               random reads of the file for 5 s after dropping the caches
 *   create      2,000 empty files in one new directory (open O_CREAT|O_EXCL,
 *               close)
 *   stat        each of them by path, after dropping the caches again, so
 *               that every stat is a LOOKUP the daemon answers
 *   unlink      each of them
 *   peak RSS    VmHWM of each daemon after all of the above
 *
 * Each phase gives two rows: crpfs's value with the passthrough's as its
 * baseline and the ratio crpfs/passthrough, and the same against fuse2fs;
 * then the same two for RAID-6, named "RAID-6: ...";
 * above 1 is better except where the name says "lower is better".
 * MB = 1e6 bytes.
 *
 * Needs root (FUSE mounts, drop_caches), /dev/fuse, fusermount3, fuse2fs,
 * mkfs.ext4 and fio; when it cannot run it fails and says why.  Everything it made is removed at
 * exit, also on failure: each mount point unmounted with fusermount3 -u,
 * each daemon waited for by PID (SIGTERM, then SIGKILL as the last resort),
 * the scratch directory deleted.  On SIGINT/SIGTERM/SIGHUP the same, with
 * lazy unmounts and SIGKILL; the daemons die with us (PR_SET_PDEATHSIG) if
 * we are killed outright.
 *
 * Paths: $CRPFS_BUILD, else $BUILD (set by run-bench.sh), else "build".
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <limits.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "common/benchlib.h"
#include "crpfs/err.h"
#include "crpfs/util.h"

#define NMEM 3
#define NMEM6 4 /* RAID-6: the same data area as RAID-5 on NMEM */
#define MEMBER_SIZE "1G"
#define SEQ_BYTES (256ull << 20)
#define SEQ_IO (1u << 20)
#define RAND_IO 4096u
#define RAND_SYNC_EVERY 64
#define RAND_MAX_OPS 100000
#define RAND_MAX_NS 10000000000ull
#define FIO_SECONDS 5
#define NFILES 2000
#define COPY_SRC "/usr/include/linux"
#define MOUNT_WAIT_NS 30000000000ull
#define EXIT_WAIT_NS 30000000000ull

#define BASE "FUSE passthrough, same disk"
#define BASE_F2 "fuse2fs, ext4 image on the same disk"
#define F2_SIZE (2ull << 30) /* the data area of RAID-5 on 3 x 1 GiB */

enum { PT, F2, CRP, CRP6, NFS };

/* One mounted filesystem: its daemon (our child) and its mount point. */
struct fsm {
	const char *name;
	char mnt[PATH_MAX];
	pid_t pid; /* 0: none running */
};

/* Everything to tear down; written by the main thread before each child
 * starts, read by the exit and signal teardowns. */
static struct {
	pid_t owner;
	char dir[64]; /* the scratch directory, "" until made */
	char fusermount[PATH_MAX];
	char fuse2fs[PATH_MAX], mkfs_ext4[PATH_MAX], fio[PATH_MAX];
	char build[1024];
	struct fsm fs[NFS];
} B;

static void row(const char *name, double v, const char *base, double bv, const char *unit)
{
	printf("| fs | %s | %.1f | %s | %s | %.1f | %.2f |\n", name, v, unit, base, bv,
	       bv > 0 ? v / bv : 0.0);
	fflush(stdout);
}

/* ---- processes ---------------------------------------------------------- */

/* Wait for @pid up to @ns (0: forever); its wait status, or -ETIMEDOUT. */
static int wait_pid(pid_t pid, uint64_t ns)
{
	uint64_t end = crp_now_ns() + ns;
	int status;

	for (;;) {
		pid_t r = waitpid(pid, &status, ns ? WNOHANG : 0);

		if (r == pid)
			return status;
		if (r < 0 && errno != EINTR)
			return -errno;
		if (ns && crp_now_ns() > end)
			return -ETIMEDOUT;
		if (ns)
			crp_sleep_ns(20000000);
	}
}

/* Run @argv to its end; 0 if it exited 0, else a negative error. */
static int run(char *const argv[])
{
	pid_t pid = bench_spawn(argv);
	int st;

	if (pid < 0)
		return pid;
	st = wait_pid(pid, 0);
	if (st < 0)
		return st;
	return WIFEXITED(st) && WEXITSTATUS(st) == 0 ? 0 : -ECHILD;
}

static bool is_mounted(const char *dir)
{
	char line[4096], mp[PATH_MAX];
	bool found = false;
	FILE *f = fopen("/proc/self/mountinfo", "re");

	if (!f)
		return false;
	/* Field 5 is the mount point (our paths have no spaces to escape). */
	while (!found && fgets(line, sizeof(line), f))
		if (sscanf(line, "%*s %*s %*s %*s %4095s", mp) == 1 && !strcmp(mp, dir))
			found = true;
	fclose(f);
	return found;
}

/* Start @argv, a FUSE daemon in the foreground that mounts @m->mnt, and
 * wait until the mount is there. */
static void mount_fs(struct fsm *m, char *const argv[])
{
	uint64_t end = crp_now_ns() + MOUNT_WAIT_NS;
	pid_t pid = bench_spawn(argv);

	if (pid < 0)
		bench_die("cannot start %s: %s", argv[0], strerror(-pid));
	m->pid = pid;
	while (!is_mounted(m->mnt)) {
		int st;

		if (waitpid(pid, &st, WNOHANG) == pid) {
			m->pid = 0;
			bench_die("%s exited (status %d) before mounting %s: its words are above", argv[0],
			    WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st), m->mnt);
		}
		if (crp_now_ns() > end)
			bench_die("%s did not mount %s within 30 s", argv[0], m->mnt);
		crp_sleep_ns(50000000);
	}
}

/* Unmount @m and wait for its daemon; 0, or -1 if either had to be forced
 * or failed (said on stderr). */
static int unmount_fs(struct fsm *m)
{
	char *uargv[] = { B.fusermount, (char *)"-u", m->mnt, NULL };
	char *zargv[] = { B.fusermount, (char *)"-u", (char *)"-z", m->mnt, NULL };
	int r = 0, st;

	for (int i = 0; i < 25 && is_mounted(m->mnt); i++) {
		if (!run(uargv))
			break;
		crp_sleep_ns(200000000); /* busy for a moment after a close */
	}
	if (is_mounted(m->mnt)) {
		fprintf(stderr, "bench_fs: %s stays mounted on %s: detaching it\n", m->name, m->mnt);
		run(zargv);
		r = -1;
	}
	if (m->pid > 0) {
		st = wait_pid(m->pid, EXIT_WAIT_NS);
		if (st == -ETIMEDOUT) {
			fprintf(stderr, "bench_fs: %s (PID %d) did not exit after unmount: killing it\n",
				m->name, (int)m->pid);
			kill(m->pid, SIGTERM);
			st = wait_pid(m->pid, 5000000000ull);
			if (st == -ETIMEDOUT) {
				kill(m->pid, SIGKILL);
				st = wait_pid(m->pid, 0);
			}
			r = -1;
		}
		if (st >= 0 && !(WIFEXITED(st) && WEXITSTATUS(st) == 0)) {
			fprintf(stderr, "bench_fs: %s (PID %d) ended with status %d\n", m->name,
				(int)m->pid, WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st));
			r = -1;
		}
		m->pid = 0;
	}
	return r;
}

static int rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)st;
	(void)ftw;
	if ((flag == FTW_DP ? rmdir(path) : unlink(path)) < 0)
		fprintf(stderr, "bench_fs: cannot remove %s: %s\n", path, strerror(errno));
	return 0;
}

/* Unmount both, stop both daemons, remove the scratch directory (never
 * through a mount that is still there).  0, or -1 if anything was forced. */
static int teardown(void)
{
	int r = 0;

	if (B.owner != getpid())
		return 0;
	for (int i = 0; i < NFS; i++)
		if (B.fs[i].mnt[0] && unmount_fs(&B.fs[i]))
			r = -1;
	if (B.dir[0]) {
		for (int i = 0; i < NFS; i++)
			if (B.fs[i].mnt[0] && is_mounted(B.fs[i].mnt)) {
				fprintf(stderr, "bench_fs: %s is still mounted: leaving %s\n",
					B.fs[i].mnt, B.dir);
				return -1;
			}
		nftw(B.dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS | FTW_MOUNT);
		B.dir[0] = '\0';
	}
	return r;
}

static void at_exit(void)
{
	teardown();
}

/* Async-signal-safe: detach the mounts, kill the daemons by PID, delete
 * the scratch directory with rm(1). */
static void on_signal(int sig)
{
	if (B.owner == getpid()) {
		for (int i = 0; i < NFS; i++) {
			char *zargv[] = { B.fusermount, (char *)"-u", (char *)"-z", B.fs[i].mnt, NULL };
			pid_t p;

			if (!B.fs[i].mnt[0])
				continue;
			p = bench_spawn(zargv);
			if (p > 0)
				waitpid(p, NULL, 0);
			if (B.fs[i].pid > 0) {
				kill(B.fs[i].pid, SIGKILL);
				waitpid(B.fs[i].pid, NULL, 0);
			}
		}
		if (B.dir[0]) {
			char *rargv[] = { (char *)"/bin/rm", (char *)"-rf", (char *)"--one-file-system",
					  B.dir, NULL };
			pid_t p = bench_spawn(rargv);

			if (p > 0)
				waitpid(p, NULL, 0);
		}
	}
	signal(sig, SIG_DFL);
	raise(sig);
}

static void install_teardown(void)
{
	static const int sigs[] = { SIGINT, SIGTERM, SIGHUP };
	struct sigaction sa;

	B.owner = getpid();
	atexit(at_exit);
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_signal;
	sigemptyset(&sa.sa_mask);
	for (size_t i = 0; i < CRP_ARRAY_SIZE(sigs); i++)
		sigaction(sigs[i], &sa, NULL);
}

/* ---- setup -------------------------------------------------------------- */

/* @prog's full path from $PATH into @out; -ENOENT if none. */
static int which(const char *prog, char *out, size_t len)
{
	const char *path = getenv("PATH");
	char dirs[4096], *save = NULL;

	snprintf(dirs, sizeof(dirs), "%s", path && *path ? path : "/usr/bin:/bin");
	for (char *d = strtok_r(dirs, ":", &save); d; d = strtok_r(NULL, ":", &save)) {
		snprintf(out, len, "%s/%s", d, prog);
		if (!access(out, X_OK))
			return 0;
	}
	return -ENOENT;
}

static void check_machine(char *mkfs, char *crpfsd, char *pt, size_t len)
{
	const char *b = getenv("CRPFS_BUILD");

	if (!b || !*b)
		b = getenv("BUILD");
	b = b && *b ? b : "build";
	if (strlen(b) >= sizeof(B.build))
		bench_die("cannot run: the build directory %.40s... is too long a path", b);
	snprintf(B.build, sizeof(B.build), "%s", b);
	snprintf(mkfs, len, "%s/mkfs.crpfs", B.build);
	snprintf(crpfsd, len, "%s/mount.crpfs", B.build);
	snprintf(pt, len, "%s/bench-tools/passthrough", B.build);
	if (geteuid() != 0)
		bench_die("cannot run: needs root (FUSE mounts, /proc/sys/vm/drop_caches)");
	if (access("/dev/fuse", R_OK | W_OK))
		bench_die("cannot run: /dev/fuse: %s (modprobe fuse)", strerror(errno));
	if (which("fusermount3", B.fusermount, sizeof(B.fusermount)))
		bench_die("cannot run: fusermount3 is not in $PATH (install the fuse3 package)");
	if (access(mkfs, X_OK) || access(crpfsd, X_OK))
		bench_die("cannot run: %s or %s is not built (run make)", mkfs, crpfsd);
	if (access(pt, X_OK))
		bench_die("cannot run: %s is not built (run make bench)", pt);
	if (which("fuse2fs", B.fuse2fs, sizeof(B.fuse2fs)) ||
	    which("mkfs.ext4", B.mkfs_ext4, sizeof(B.mkfs_ext4)))
		bench_die("cannot run: fuse2fs or mkfs.ext4 is not in $PATH (apt-get install "
		    "--no-install-recommends fuse2fs e2fsprogs: the recommended fuse package "
		    "would remove fuse3)");
	if (which("fio", B.fio, sizeof(B.fio)))
		bench_die("cannot run: fio is not in $PATH (apt-get install fio)");
}

/* ---- measurements ------------------------------------------------------- */

/* Write back dirty data, then drop the page, dentry and inode caches. */
static void drop_caches(void)
{
	int fd;

	sync();
	fd = open("/proc/sys/vm/drop_caches", O_WRONLY | O_CLOEXEC);
	if (fd < 0 || write(fd, "3\n", 2) != 2)
		bench_die("cannot drop the caches through /proc/sys/vm/drop_caches: %s", strerror(errno));
	close(fd);
}

/* The content of MiB @i of the sequential file, in @buf: random bytes
 * that pattern_init() put there, with each 4 KiB block's first 8 bytes
 * restamped with its number in the file.  A stamp is 256 stores a MiB:
 * nothing next to the I/O being timed, so a misplaced, lost or stale
 * block is still caught. */
static void pattern(uint8_t *buf, uint64_t i)
{
	for (uint64_t k = 0; k < SEQ_IO / RAND_IO; k++) {
		uint64_t stamp = (i * (SEQ_IO / RAND_IO) + k) ^ 0x5eb1e5eb1e5eb1e5ull;

		memcpy(buf + k * RAND_IO, &stamp, sizeof(stamp));
	}
}

static void pattern_init(uint8_t *buf)
{
	uint64_t x = 0x9e3779b97f4a7c15ull;

	for (size_t k = 0; k < SEQ_IO; k += sizeof(x)) {
		x ^= x << 13;
		x ^= x >> 7;
		x ^= x << 17;
		memcpy(buf + k, &x, sizeof(x));
	}
}

static int write_full(int fd, const uint8_t *buf, size_t len, off_t off)
{
	size_t done = 0;

	while (done < len) {
		ssize_t n = pwrite(fd, buf + done, len - done, off + (off_t)done);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return n < 0 ? -errno : -EIO;
		done += (size_t)n;
	}
	return 0;
}

/* MB/s of writing @path: SEQ_BYTES in SEQ_IO writes, then fsync. */
static int seq_write(const char *path, double *mbps)
{
	uint8_t *buf = crp_alloc_buf(SEQ_IO);
	uint64_t t0;
	int fd = -1, r = -ENOMEM;

	if (!buf)
		goto out;
	pattern_init(buf);
	t0 = crp_now_ns();
	fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (fd < 0) {
		r = -errno;
		goto out;
	}
	for (uint64_t i = 0; i < SEQ_BYTES / SEQ_IO; i++) {
		pattern(buf, i);
		r = write_full(fd, buf, SEQ_IO, (off_t)(i * SEQ_IO));
		if (r)
			goto out;
	}
	if (fsync(fd) < 0) {
		r = -errno;
		goto out;
	}
	*mbps = (double)SEQ_BYTES / ((double)(crp_now_ns() - t0) / 1e9) / 1e6;
	r = 0;
out:
	if (fd >= 0)
		close(fd);
	free(buf);
	return r;
}

/* MB/s of reading @path back (caches dropped by the caller); every MiB is
 * compared with what seq_write wrote: -EILSEQ if one differs. */
static int seq_read(const char *path, double *mbps)
{
	uint8_t *buf = crp_alloc_buf(SEQ_IO), *want = crp_alloc_buf(SEQ_IO);
	uint64_t t0, total = 0;
	int fd = -1, r = -ENOMEM;

	if (!buf || !want)
		goto out;
	pattern_init(want);
	t0 = crp_now_ns();
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		r = -errno;
		goto out;
	}
	/* Reads never cross a MiB, so that a short one is compared with the
	 * right part of its MiB. */
	for (;;) {
		ssize_t n = read(fd, buf, SEQ_IO - total % SEQ_IO);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			r = -errno;
			goto out;
		}
		if (n == 0)
			break;
		if (total / SEQ_IO >= SEQ_BYTES / SEQ_IO) {
			r = -EILSEQ; /* longer than written */
			goto out;
		}
		pattern(want, total / SEQ_IO);
		if (memcmp(buf, want + total % SEQ_IO, (size_t)n)) {
			r = -EILSEQ;
			goto out;
		}
		total += (uint64_t)n;
	}
	if (total != SEQ_BYTES) {
		r = -EIO;
		goto out;
	}
	*mbps = (double)total / ((double)(crp_now_ns() - t0) / 1e9) / 1e6;
	r = 0;
out:
	if (fd >= 0)
		close(fd);
	free(buf);
	free(want);
	return r;
}

/* IOPS of RAND_IO writes at random aligned offsets of @path (SEQ_BYTES
 * long), fsync after every RAND_SYNC_EVERY, until RAND_MAX_NS or
 * RAND_MAX_OPS.  Same offsets on both filesystems (fixed seed). */
static int rand_write(const char *path, double *iops)
{
	uint8_t *buf = crp_alloc_buf(RAND_IO);
	uint64_t t0 = crp_now_ns(), seed = 0x2545f4914f6cdd1dull, n = 0;
	int fd = -1, r = -ENOMEM;

	if (!buf)
		goto out;
	memset(buf, 0x5a, RAND_IO);
	fd = open(path, O_WRONLY | O_CLOEXEC);
	if (fd < 0) {
		r = -errno;
		goto out;
	}
	while (n < RAND_MAX_OPS && crp_now_ns() - t0 < RAND_MAX_NS) {
		for (int k = 0; k < RAND_SYNC_EVERY; k++, n++) {
			seed = seed * 6364136223846793005ull + 1442695040888963407ull;
			r = write_full(fd, buf, RAND_IO,
				       (off_t)((seed >> 33) % (SEQ_BYTES / RAND_IO) * RAND_IO));
			if (r)
				goto out;
		}
		if (fsync(fd) < 0) {
			r = -errno;
			goto out;
		}
	}
	*iops = (double)n / ((double)(crp_now_ns() - t0) / 1e9);
	r = 0;
out:
	if (fd >= 0)
		close(fd);
	free(buf);
	return r;
}

static void file_path(char *out, size_t len, const char *dir, int i)
{
	snprintf(out, len, "%s/f%05d", dir, i);
}

/* Files per second of creating NFILES empty files in @dir (made here). */
static int create_files(const char *dir, double *rate)
{
	char p[PATH_MAX];
	uint64_t t0;

	if (mkdir(dir, 0755) < 0)
		return -errno;
	t0 = crp_now_ns();
	for (int i = 0; i < NFILES; i++) {
		int fd;

		file_path(p, sizeof(p), dir, i);
		fd = open(p, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
		if (fd < 0)
			return -errno;
		close(fd);
	}
	*rate = NFILES / ((double)(crp_now_ns() - t0) / 1e9);
	return 0;
}

/* stat(2)s per second over the NFILES files of @dir; each must be an
 * empty regular file (-EILSEQ otherwise). */
static int stat_files(const char *dir, double *rate)
{
	char p[PATH_MAX];
	struct stat st;
	uint64_t t0 = crp_now_ns();

	for (int i = 0; i < NFILES; i++) {
		file_path(p, sizeof(p), dir, i);
		if (stat(p, &st) < 0)
			return -errno;
		if (!S_ISREG(st.st_mode) || st.st_size != 0)
			return -EILSEQ;
	}
	*rate = NFILES / ((double)(crp_now_ns() - t0) / 1e9);
	return 0;
}

/* Entries per second of listing @dir with the attributes of each (ls -l:
 * readdir, then lstat of every name); NFILES regular files expected. */
static int list_long(const char *dir, double *rate)
{
	char p[PATH_MAX];
	uint64_t t0 = crp_now_ns();
	struct dirent *e;
	struct stat st;
	int n = 0;
	DIR *d = opendir(dir);

	if (!d)
		return -errno;
	while ((e = readdir(d))) {
		if (e->d_name[0] == '.')
			continue;
		snprintf(p, sizeof(p), "%s/%s", dir, e->d_name);
		if (lstat(p, &st) < 0) {
			closedir(d);
			return -errno;
		}
		if (!S_ISREG(st.st_mode)) {
			closedir(d);
			return -EILSEQ;
		}
		n++;
	}
	closedir(d);
	if (n != NFILES)
		return -EILSEQ;
	*rate = NFILES / ((double)(crp_now_ns() - t0) / 1e9);
	return 0;
}

/* Files per second of copying COPY_SRC (a tree of headers: directories,
 * files, symlinks) to @path with cp -a; the copy is left in place. */
static int copy_tree(const char *path, double *rate)
{
	char cp[PATH_MAX], *argv[] = { cp, (char *)"-a", (char *)COPY_SRC, (char *)path, NULL };
	uint64_t t0;
	long n = 0;
	FILE *f;

	if (which("cp", cp, sizeof(cp)))
		return -ENOENT;
	/* The count, and the source in the page cache for every target alike. */
	f = popen("find " COPY_SRC " | wc -l", "r");
	if (!f || fscanf(f, "%ld", &n) != 1 || n <= 0) {
		if (f)
			pclose(f);
		return -EIO;
	}
	pclose(f);
	t0 = crp_now_ns();
	if (run(argv))
		return -EIO;
	sync();
	*rate = (double)n / ((double)(crp_now_ns() - t0) / 1e9);
	return 0;
}

/* Unlinks per second of the NFILES files of @dir; then @dir is removed
 * (untimed), which fails if anything is left in it. */
static int unlink_files(const char *dir, double *rate)
{
	char p[PATH_MAX];
	uint64_t t0 = crp_now_ns();

	for (int i = 0; i < NFILES; i++) {
		file_path(p, sizeof(p), dir, i);
		if (unlink(p) < 0)
			return -errno;
	}
	*rate = NFILES / ((double)(crp_now_ns() - t0) / 1e9);
	return rmdir(dir) < 0 ? -errno : 0;
}

/* VmHWM of @pid in MiB. */
static int peak_rss(pid_t pid, double *mib)
{
	char p[64], line[256];
	long kb = -1;
	FILE *f;

	snprintf(p, sizeof(p), "/proc/%d/status", (int)pid);
	f = fopen(p, "re");
	if (!f)
		return -errno;
	while (fgets(line, sizeof(line), f))
		if (sscanf(line, "VmHWM: %ld kB", &kb) == 1)
			break;
	fclose(f);
	if (kb < 0)
		return -ENOENT;
	*mib = (double)kb / 1024.0;
	return 0;
}

/* fio, one job of 4 KiB I/O at random offsets of @path (the 256 MiB
 * sequential file) for FIO_SECONDS, psync, queue depth 1: its IOPS, from
 * the terse (version 3) line, field 8 for reads and 49 for writes. */
static int fio_job(const char *path, bool write, double *iops)
{
	char fname[PATH_MAX + 16], out[PATH_MAX + 16], rt[32], line[16384];
	char *argv[] = { B.fio, (char *)"--name=bench", fname,
			 (char *)(write ? "--rw=randwrite" : "--rw=randread"), (char *)"--bs=4k",
			 (char *)"--size=256M", (char *)"--ioengine=psync", rt, (char *)"--time_based",
			 (char *)"--output-format=terse", (char *)"--terse-version=3", out,
			 (char *)(write ? "--fsync=64" : "--invalidate=1"), NULL };
	char *save = NULL, *tok;
	int field = 0, want = write ? 49 : 8;
	FILE *f;
	int r;

	snprintf(fname, sizeof(fname), "--filename=%s", path);
	snprintf(out, sizeof(out), "--output=%s/fio.out", B.dir);
	snprintf(rt, sizeof(rt), "--runtime=%d", FIO_SECONDS);
	r = run(argv);
	if (r)
		return r;
	f = fopen(out + strlen("--output="), "re");
	if (!f)
		return -errno;
	r = fgets(line, sizeof(line), f) ? 0 : -EIO;
	fclose(f);
	if (r)
		return r;
	for (tok = strtok_r(line, ";", &save); tok && ++field < want; tok = strtok_r(NULL, ";", &save))
		;
	if (!tok || sscanf(tok, "%lf", iops) != 1 || *iops <= 0)
		return -EIO;
	return 0;
}

static int fio_randwrite(const char *path, double *iops)
{
	return fio_job(path, true, iops);
}

static int fio_randread(const char *path, double *iops)
{
	return fio_job(path, false, iops);
}

/* ---- the run ------------------------------------------------------------ */

typedef int (*measure_fn)(const char *path, double *v);

/* One phase on both filesystems, passthrough first, on PATH/@leaf; the
 * caches are dropped before each when @cold. */
static void phase(const char *name, const char *unit, measure_fn fn, const char *leaf, bool cold)
{
	double v[NFS];
	char p[PATH_MAX];

	for (int i = 0; i < NFS; i++) {
		int r;

		if (cold)
			drop_caches();
		snprintf(p, sizeof(p), "%s/%s", B.fs[i].mnt, leaf);
		r = fn(p, &v[i]);
		if (r == -EILSEQ)
			bench_die("%s on %s: %s holds other data than was written", name, B.fs[i].name, p);
		if (r)
			bench_die("%s on %s (%s): %s", name, B.fs[i].name, p, crp_strerror(r));
		fprintf(stderr, "bench_fs: %-12s %-40s %10.1f %s\n", B.fs[i].name, name, v[i], unit);
	}
	row(name, v[CRP], BASE, v[PT], unit);
	row(name, v[CRP], BASE_F2, v[F2], unit);
	snprintf(p, sizeof(p), "RAID-6: %s", name);
	row(p, v[CRP6], BASE, v[PT], unit);
	row(p, v[CRP6], BASE_F2, v[F2], unit);
}

/* Sparse 1 GiB file members $B.dir/PREFIX0.. (@n of them), formatted at
 * RAID @level; their list, as mount.crpfs takes it, in @members. */
static void format_crpfs(const char *mkfs, const char *level, const char *prefix, int n,
			 char *members, size_t len)
{
	char mem[NMEM6][PATH_MAX];
	char *argv[6 + NMEM6] = { (char *)mkfs, (char *)"-l", (char *)level, (char *)"-s",
				  (char *)MEMBER_SIZE };

	members[0] = '\0';
	for (int i = 0; i < n; i++) {
		snprintf(mem[i], PATH_MAX, "file:%s/%s%d", B.dir, prefix, i);
		snprintf(members + strlen(members), len - strlen(members), "%s%s", i ? "," : "",
			 mem[i]);
		argv[5 + i] = mem[i];
	}
	argv[5 + n] = NULL;
	if (run(argv))
		bench_die("%s failed on %s: its words are above", mkfs, members);
}

int main(void)
{
	char mkfs[PATH_MAX], crpfsd[PATH_MAX], pt[PATH_MAX], src[PATH_MAX], img[PATH_MAX];
	char members[NMEM * PATH_MAX + NMEM], members6[NMEM6 * PATH_MAX + NMEM6];
	double rss[NFS];
	uint64_t t0 = crp_now_ns();

	bench_set_name("bench_fs");

	check_machine(mkfs, crpfsd, pt, PATH_MAX);
	install_teardown();
	snprintf(B.dir, sizeof(B.dir), "/var/tmp/crpfs-bench-fs.XXXXXX");
	if (!mkdtemp(B.dir)) {
		B.dir[0] = '\0';
		bench_die("cannot make a scratch directory under /var/tmp: %s", strerror(errno));
	}
	B.fs[PT].name = "passthrough";
	B.fs[F2].name = "fuse2fs";
	B.fs[CRP].name = "crpfs";
	B.fs[CRP6].name = "crpfs-raid6";
	snprintf(B.fs[PT].mnt, PATH_MAX, "%s/mnt-passthrough", B.dir);
	snprintf(B.fs[F2].mnt, PATH_MAX, "%s/mnt-fuse2fs", B.dir);
	snprintf(B.fs[CRP].mnt, PATH_MAX, "%s/mnt-crpfs", B.dir);
	snprintf(B.fs[CRP6].mnt, PATH_MAX, "%s/mnt-crpfs-raid6", B.dir);
	snprintf(src, sizeof(src), "%s/passthrough-src", B.dir);
	snprintf(img, sizeof(img), "%s/ext4.img", B.dir);
	if (mkdir(B.fs[PT].mnt, 0755) || mkdir(B.fs[F2].mnt, 0755) ||
	    mkdir(B.fs[CRP].mnt, 0755) || mkdir(B.fs[CRP6].mnt, 0755) || mkdir(src, 0755))
		bench_die("cannot make directories in %s: %s", B.dir, strerror(errno));
	{
		int fd = open(img, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
		char *argv[] = { B.mkfs_ext4, (char *)"-q", (char *)"-F", img, NULL };

		if (fd < 0 || ftruncate(fd, (off_t)F2_SIZE) < 0)
			bench_die("cannot make the image %s: %s", img, strerror(errno));
		close(fd);
		if (run(argv))
			bench_die("%s failed on %s: its words are above", B.mkfs_ext4, img);
	}

	format_crpfs(mkfs, "5", "m", NMEM, members, sizeof(members));
	format_crpfs(mkfs, "6", "r6m", NMEM6, members6, sizeof(members6));
	{
		char *cargv[] = { crpfsd, members, B.fs[CRP].mnt, (char *)"-f",
				  (char *)"-o", (char *)"host=bench-fs", NULL };
		char *pargv[] = { pt, src, B.fs[PT].mnt, (char *)"-f", NULL };
		char *fargv[] = { B.fuse2fs, img, B.fs[F2].mnt, (char *)"-f", NULL };
		char *c6argv[] = { crpfsd, members6, B.fs[CRP6].mnt, (char *)"-f",
				   (char *)"-o", (char *)"host=bench-fs6", NULL };

		mount_fs(&B.fs[PT], pargv);
		mount_fs(&B.fs[F2], fargv);
		mount_fs(&B.fs[CRP], cargv);
		mount_fs(&B.fs[CRP6], c6argv);
	}
	fprintf(stderr, "bench_fs: members and passthrough source in %s; mounted in %.1f s\n", B.dir,
		(double)(crp_now_ns() - t0) / 1e9);

	phase("seq write 256 MiB, 1 MiB writes + fsync", "MB/s", seq_write, "seq", false);
	phase("seq read 256 MiB, 1 MiB reads, cold cache", "MB/s", seq_read, "seq", true);
	phase("4 KiB random write, fsync every 64", "IOPS", rand_write, "seq", false);
	phase("fio 4 KiB randwrite, psync, fsync every 64, 5 s", "IOPS", fio_randwrite, "seq",
	      false);
	phase("fio 4 KiB randread, psync, cold cache, 5 s", "IOPS", fio_randread, "seq", true);
	phase("create 2,000 empty files in one dir", "files/s", create_files, "many", false);
	phase("stat 2,000 files, cold cache", "ops/s", stat_files, "many", true);
	phase("ls -l of 2,000 files, cold cache", "entries/s", list_long, "many", true);
	phase("cp -a /usr/include/linux, then sync", "entries/s", copy_tree, "tree",
	      false);
	phase("unlink 2,000 files", "files/s", unlink_files, "many", false);
	for (int i = 0; i < NFS; i++) {
		char p[PATH_MAX];
		int r;

		snprintf(p, sizeof(p), "%s/seq", B.fs[i].mnt);
		if (unlink(p) < 0)
			bench_die("cannot unlink %s: %s", p, strerror(errno));
		r = peak_rss(B.fs[i].pid, &rss[i]);
		if (r)
			bench_die("cannot read VmHWM of %s (PID %d): %s", B.fs[i].name, (int)B.fs[i].pid,
			    crp_strerror(r));
	}
	row("daemon peak RSS (VmHWM), lower is better", rss[CRP], BASE, rss[PT], "MiB");
	row("daemon peak RSS (VmHWM), lower is better", rss[CRP], BASE_F2, rss[F2], "MiB");
	row("RAID-6: daemon peak RSS (VmHWM), lower is better", rss[CRP6], BASE, rss[PT], "MiB");
	row("RAID-6: daemon peak RSS (VmHWM), lower is better", rss[CRP6], BASE_F2, rss[F2], "MiB");

	if (teardown())
		bench_die("the teardown had to force its way (see above)");
	fprintf(stderr, "bench_fs: done in %.1f s\n", (double)(crp_now_ns() - t0) / 1e9);
	return 0;
}
