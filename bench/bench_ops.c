/*
 * What each filesystem operation costs on the disks, from the counters
 * (crp_fs_get_counters): reservations taken (RESERVE or PR RESERVE that
 * returned GOOD, metadata lock and stripe locks together) and metadata
 * transactions committed, per operation, and how many of the operations
 * that only read were served without the metadata lock.
 *
 * Three sparse 256 MiB file: members in a scratch directory under
 * /var/tmp, formatted RAID-5 with mkfs.crpfs, mounted in this process
 * (crp_fs_mount: the library, no FUSE, no kernel cache in between, so that
 * every call reaches the filesystem).  First host "ops-a" alone, where
 * group commit keeps the metadata lock between operations:
 *
 *   create       1,000 empty files in one directory (create + release)
 *   stat         lookup + getattr of each
 *   write 4 KiB  1,000 4 KiB writes at random offsets of a 4 MiB file
 *   unlink       each of the 1,000 files
 *
 * then "ops-b" mounts too and the phases run again once A counts B alive
 * (every operation commits alone then), with B's reads of A's work:
 *
 *   create, stat on A; stat of A's files, readdir of them (20 times) and
 *   1,000 4 KiB reads of A's file on B; 4 KiB writes, unlink on A
 *
 * Rows, area "ops": reservations per operation and commits per operation,
 * with no baseline (they are counts, not rates); for the phases that
 * only read, the share served without the lock (1.00 = all).  The
 * background heartbeat's own reservations fall into whichever phase is
 * running (one per heartbeat period at most, a second by default).
 *
 * Needs a built mkfs.crpfs; when it cannot run it fails and says why.  The
 * scratch directory is removed at exit, also on failure; on SIGINT,
 * SIGTERM or SIGHUP the member files are unlinked by name before we die.
 *
 * Paths: $CRPFS_BUILD, else $BUILD (set by run-bench.sh), else "build".
 */
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <limits.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/benchlib.h"
#include "crpfs/err.h"
#include "crpfs/fs.h"
#include "crpfs/util.h"

#define NMEM 3
#define MEMBER_SIZE "256M"
#define NOPS 1000
#define FILE_BYTES (4u << 20)
#define BLK 4096u
#define READDIRS 20

static struct {
	pid_t owner;
	char dir[64];
	char paths[2 * NMEM][PATH_MAX]; /* the images and their state files */
	char build[1024];
} B;

static const struct crp_cred root_cred = { 0, 0, 022 };

/* ---- teardown ----------------------------------------------------------- */

static int rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)st;
	(void)ftw;
	if ((flag == FTW_DP ? rmdir(path) : unlink(path)) < 0)
		fprintf(stderr, "bench_ops: cannot remove %s: %s\n", path, strerror(errno));
	return 0;
}

static void at_exit(void)
{
	if (B.owner != getpid() || !B.dir[0])
		return;
	nftw(B.dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS | FTW_MOUNT);
	B.dir[0] = '\0';
}

static void on_signal(int sig)
{
	if (B.owner == getpid() && B.dir[0]) {
		for (int i = 0; i < 2 * NMEM; i++)
			unlink(B.paths[i]);
		rmdir(B.dir);
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

/* ---- counting ----------------------------------------------------------- */

struct span {
	struct crp_fs *fs;
	struct crp_fs_counters c0;
};

static void span_start(struct span *s, struct crp_fs *fs)
{
	s->fs = fs;
	crp_fs_get_counters(fs, &s->c0);
}

/* The rows of a phase of @n operations; @reads: it only read. */
static void span_end(const struct span *s, const char *name, int n, bool reads)
{
	struct crp_fs_counters c;

	crp_fs_get_counters(s->fs, &c);
	printf("| ops | %s: reservations per operation | %.3f | RESERVE/op | - | - | - |\n", name,
	       (double)(c.reservations - s->c0.reservations) / n);
	printf("| ops | %s: commits per operation | %.3f | commits/op | - | - | - |\n", name,
	       (double)(c.commits - s->c0.commits) / n);
	if (reads)
		printf("| ops | %s: served without the lock | %.3f | share | - | - | - |\n", name,
		       (double)(c.unlocked_reads - s->c0.unlocked_reads) / n);
	fflush(stdout);
	fprintf(stderr, "bench_ops: %-12s %d operations: %llu reservations, %llu commits, %llu "
		"without the lock, %llu ran again under it\n", name, n,
		(unsigned long long)(c.reservations - s->c0.reservations),
		(unsigned long long)(c.commits - s->c0.commits),
		(unsigned long long)(c.unlocked_reads - s->c0.unlocked_reads),
		(unsigned long long)(c.unlocked_retries - s->c0.unlocked_retries));
}

static void check(int r, const char *what)
{
	if (r < 0)
		bench_die("%s: %s", what, crp_strerror(r));
}

static void stat_all(struct crp_fs *fs, uint64_t dir, const uint64_t *ino)
{
	for (int i = 0; i < NOPS; i++) {
		char name[32];
		struct crp_attr a;

		snprintf(name, sizeof(name), "f%04d", i);
		check(crp_fs_lookup(fs, dir, name, &a), "lookup");
		if (a.ino != ino[i])
			bench_die("lookup of %s gives inode %llu, not %llu", name,
			    (unsigned long long)a.ino, (unsigned long long)ino[i]);
		check(crp_fs_getattr(fs, a.ino, &a), "getattr");
		crp_fs_forget(fs, a.ino, 1);
	}
}

static int count_cb(void *ctx, const char *name, uint64_t ino, uint32_t mode, uint64_t next)
{
	(void)name;
	(void)ino;
	(void)mode;
	(void)next;
	(*(int *)ctx)++;
	return 0;
}

static char *phase_name(char *out, size_t len, const char *what, const char *suffix)
{
	snprintf(out, len, "%s%s", what, suffix);
	return out;
}

/*
 * The phases on host @fa in directory @dname (made here); with @fb, the
 * reads of another host too.  @suffix names the setting in the rows.
 */
static void run_host_phases(struct crp_fs *fa, struct crp_fs *fb, const char *dname,
			    const char *suffix, uint64_t *ino, uint8_t *buf)
{
	uint64_t fh, seed = 0x2545f4914f6cdd1dull;
	struct crp_attr d, a;
	struct span s;
	char nm[160];

	check(crp_fs_mkdir(fa, CRP_ROOT_INO, dname, 0755, &root_cred, &d), "mkdir");
	span_start(&s, fa);
	for (int i = 0; i < NOPS; i++) {
		char name[32];

		snprintf(name, sizeof(name), "f%04d", i);
		check(crp_fs_create(fa, d.ino, name, 0644, O_RDWR | O_EXCL, &root_cred, &a, &fh),
		      "create");
		check(crp_fs_release(fa, a.ino, fh), "release");
		crp_fs_forget(fa, a.ino, 1);
		ino[i] = a.ino;
	}
	span_end(&s, phase_name(nm, sizeof(nm), "create (+ release)", suffix), NOPS, false);

	span_start(&s, fa);
	stat_all(fa, d.ino, ino);
	span_end(&s, phase_name(nm, sizeof(nm), "stat, own files (lookup + getattr)", suffix),
		 2 * NOPS, true);

	if (fb) {
		span_start(&s, fb);
		stat_all(fb, d.ino, ino);
		span_end(&s, phase_name(nm, sizeof(nm), "stat, another host's files", suffix),
			 2 * NOPS, true);

		span_start(&s, fb);
		{
			uint64_t dfh;

			check(crp_fs_opendir(fb, d.ino, &dfh), "opendir");
			for (int k = 0; k < READDIRS; k++) {
				int n = 0;

				check(crp_fs_readdir(fb, d.ino, dfh, 0, count_cb, &n), "readdir");
				if (n != NOPS + 2)
					bench_die("readdir lists %d names, not %d", n, NOPS + 2);
			}
			check(crp_fs_releasedir(fb, d.ino, dfh), "releasedir");
		}
		span_end(&s, phase_name(nm, sizeof(nm),
					"readdir of 1,000 names (+ opendir, releasedir)", suffix),
			 READDIRS + 2, true);
	}

	memset(buf, 0x5a, FILE_BYTES);
	check(crp_fs_create(fa, d.ino, "data", 0644, O_RDWR, &root_cred, &a, &fh), "create");
	if (crp_fs_write(fa, a.ino, fh, 0, buf, FILE_BYTES) != (ssize_t)FILE_BYTES)
		bench_die("cannot write the data file");
	check(crp_fs_fsync(fa, a.ino, false), "fsync");
	span_start(&s, fa);
	for (int i = 0; i < NOPS; i++) {
		seed = seed * 6364136223846793005ull + 1442695040888963407ull;
		if (crp_fs_write(fa, a.ino, fh, (seed >> 33) % (FILE_BYTES / BLK) * BLK, buf, BLK) !=
		    (ssize_t)BLK)
			bench_die("a 4 KiB write failed");
	}
	span_end(&s, phase_name(nm, sizeof(nm), "write 4 KiB", suffix), NOPS, false);
	check(crp_fs_release(fa, a.ino, fh), "release");

	if (fb) {
		check(crp_fs_open(fb, a.ino, O_RDONLY, &fh), "open");
		span_start(&s, fb);
		for (int i = 0; i < NOPS; i++) {
			seed = seed * 6364136223846793005ull + 1442695040888963407ull;
			if (crp_fs_read(fb, a.ino, fh, (seed >> 33) % (FILE_BYTES / BLK) * BLK, buf,
					BLK) != (ssize_t)BLK)
				bench_die("a 4 KiB read failed");
		}
		span_end(&s, phase_name(nm, sizeof(nm), "read 4 KiB, another host's file", suffix),
			 NOPS, true);
		check(crp_fs_release(fb, a.ino, fh), "release");
	}

	span_start(&s, fa);
	for (int i = 0; i < NOPS; i++) {
		char name[32];

		snprintf(name, sizeof(name), "f%04d", i);
		check(crp_fs_unlink(fa, d.ino, name, &root_cred), "unlink");
	}
	span_end(&s, phase_name(nm, sizeof(nm), "unlink", suffix), NOPS, false);
}

int main(void)
{
	const char *b = getenv("CRPFS_BUILD");
	char mkfs[PATH_MAX], spec[NMEM][PATH_MAX];
	const char *specs[NMEM];
	struct crp_fs *fa, *fb;
	uint64_t *ino = calloc(NOPS, sizeof(*ino));
	uint8_t *buf = crp_alloc_buf(FILE_BYTES);
	char err[1024] = "";

	bench_set_name("bench_ops");

	if (!ino || !buf)
		bench_die("out of memory");
	if (!b || !*b)
		b = getenv("BUILD");
	b = b && *b ? b : "build";
	snprintf(B.build, sizeof(B.build), "%s", b);
	snprintf(mkfs, sizeof(mkfs), "%s/mkfs.crpfs", B.build);
	if (access(mkfs, X_OK))
		bench_die("cannot run: %s is not built (run make)", mkfs);
	install_teardown();
	snprintf(B.dir, sizeof(B.dir), "/var/tmp/crpfs-bench-ops.XXXXXX");
	if (!mkdtemp(B.dir)) {
		B.dir[0] = '\0';
		bench_die("cannot make a scratch directory under /var/tmp: %s", strerror(errno));
	}
	for (int i = 0; i < NMEM; i++) {
		snprintf(spec[i], PATH_MAX, "file:%s/m%d", B.dir, i);
		snprintf(B.paths[2 * i], PATH_MAX, "%s/m%d", B.dir, i);
		snprintf(B.paths[2 * i + 1], PATH_MAX, "%s/m%d.crpfs-scsi", B.dir, i);
		specs[i] = spec[i];
	}
	{
		char *argv[] = { mkfs, (char *)"-l", (char *)"5", (char *)"-s", (char *)MEMBER_SIZE,
				 spec[0], spec[1], spec[2], NULL };

		if (bench_run(argv))
			bench_die("%s failed on the members in %s: its words are above", mkfs, B.dir);
	}
	{
		struct crp_fs_opts oa = { .host = "ops-a" };

		if (crp_fs_mount(specs, NMEM, &oa, &fa, err, sizeof(err)) < 0)
			bench_die("cannot mount host A: %s", err);
	}
	run_host_phases(fa, NULL, "d1", ", one host", ino, buf);
	{
		struct crp_fs_opts ob = { .host = "ops-b" };
		struct crp_fs_counters c;
		int waited = 0;

		if (crp_fs_mount(specs, NMEM, &ob, &fb, err, sizeof(err)) < 0)
			bench_die("cannot mount host B: %s", err);
		/* Until A's heartbeat has seen B: bounded, 30 s. */
		for (crp_fs_get_counters(fa, &c); !c.peers; crp_fs_get_counters(fa, &c)) {
			if (++waited > 300)
				bench_die("host A does not see host B alive after 30 s");
			usleep(100000);
		}
	}
	run_host_phases(fa, fb, "d2", ", two hosts", ino, buf);
	check(crp_fs_unmount(fb), "unmount B");
	check(crp_fs_unmount(fa), "unmount A");
	free(ino);
	free(buf);
	return 0;
}
