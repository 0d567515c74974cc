/*
 * Running without a member, rebuilding one and scrubbing, in-process
 * through the library (crp_fs_*, no FUSE), each row beside its baseline
 * measured in the same run.
 *
 * Four sparse 1 GiB file: members in a scratch directory under /var/tmp,
 * formatted RAID-5 with mkfs.crpfs (default chunk, 64 KiB).  The
 * filesystem is mounted in this process as host "bench-degraded"; member
 * changes go through an administration handle of host
 * "bench-degraded.admin" (crp_admin_open, as crpfs fail, replace and
 * scrub join an array), with the mount up and idle.  The file transport
 * reads and writes the images through the page cache (pread, pwrite;
 * SYNCHRONIZE CACHE is fdatasync), so the page cache is written back and
 * dropped (/proc/sys/vm/drop_caches) before every timed phase.  The
 * phases, in this order:
 *
 *   setup          a 512 MiB file written in 1 MiB writes and fsynced
 *                  (untimed), then unmounted
 *   read           the file read back in 1 MiB crp_fs_read calls, lookup
 *                  to last read timed, every byte checked, each time on a
 *                  fresh read-only mount (which records nothing on the
 *                  disks): of all four members, and of three with
 *                  position 3 given as "missing" (its chunks computed
 *                  from parity).  Four runs, all / missing / missing /
 *                  all, the best of each kind counted
 *   raw read       nothing mounted: one member image read whole (1 GiB)
 *                  in 1 MiB crp_member_read calls through the transport
 *   rebuild        a read-write mount with position 3 "missing" (which
 *                  records it failed), idle; a fresh sparse image takes
 *                  the position (crp_meta_member_replace, untimed) and is
 *                  rebuilt (crp_meta_rebuild: every stripe) until in sync,
 *                  then synced (SYNCHRONIZE CACHE): MB/s of member data
 *                  written
 *   scrub          a full scrub, no repair (crp_meta_scrub), of the now
 *                  redundant array: MB/s read from the members
 *                  (crp_scrub_counts.bytes_read).  The byte ranges member
 *                  0's image then holds (SEEK_DATA/SEEK_HOLE: the stripes
 *                  written so far, the same offsets on every member) are
 *                  noted for its baseline
 *   write          128 MiB in 1 MiB crp_fs_write calls to a new file,
 *                  then crp_fs_fsync; create to fsync timed, the file
 *                  removed after.  Four runs, the best of each kind
 *                  counted: on the redundant array; during a rebuild;
 *                  during another; on the redundant array.  For each
 *                  during a rebuild, position 3 is failed
 *                  (crp_meta_member_fail) and given the replacement image
 *                  not in the array (a fresh sparse one the first time,
 *                  then the one it replaced), whose
 *                  rebuild runs in another thread, limited to
 *                  LOOP_RATE (as crpfs replace --rate would: an
 *                  unlimited rebuild of these members takes some 3 s,
 *                  less than the writes); the writes start after
 *                  its first batch, and the rebuild is waited for after
 *                  them.  A rebuild that ends before the writes do is
 *                  followed by another (the position failed again and
 *                  given the other image), so that a rebuild runs from
 *                  before the create to after the fsync but for the
 *                  moments between two (how many and how long is said on
 *                  stderr)
 *   raw read       nothing mounted: the ranges noted at the scrub read
 *                  from all four members at once, one thread each, in
 *                  reads of at most 1 MiB
 *
 * At the start of each timed read or write, the mounted host's own view of
 * position 3 is checked (in sync, failed, being rebuilt) so that each
 * phase runs as its name says; for a write during rebuilds, at start or
 * after one of its writes (rebuilds back to back pass through failed).
 *
 * Rows, area "degraded", MB = 1e6 bytes, ratio = value / baseline value:
 *
 *   read, a member missing    against the read with all members
 *   rebuild                   against the raw read of one member
 *   scrub                     against the raw read of the same stripes
 *   write during a rebuild    against the same writes with no rebuild
 *
 * Needs root (/proc/sys/vm/drop_caches) and a built mkfs.crpfs; when it
 * cannot run it fails and says why.  Nothing runs outside this process
 * but mkfs.crpfs, which is waited for and dies with us (PR_SET_PDEATHSIG);
 * there is no mount in the kernel.  The scratch directory and everything
 * in it (member images, their .crpfs-scsi state files) is removed at
 * exit, also on failure; on SIGINT, SIGTERM or SIGHUP every file the run
 * can make is unlinked by name before we die.
 *
 * Paths: $CRPFS_BUILD, else $BUILD (set by run-bench.sh), else "build".
 */
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "../src/fs/fs_i.h"
#include "crpfs/array.h"
#include "crpfs/cluster.h"
#include "common/benchlib.h"
#include "crpfs/err.h"
#include "crpfs/fs.h"
#include "crpfs/member.h"
#include "crpfs/meta.h"
#include "crpfs/scrub.h"
#include "crpfs/util.h"

#define NMEM 4
#define POS 3 /* the position taken out and rebuilt */
#define MEMBER_BYTES (1ull << 30)
#define MEMBER_SIZE "1G"
#define READ_BYTES (512ull << 20)
#define WRITE_BYTES (128ull << 20)
#define IO (1u << 20)
#define BLK 4096u
#define LOOP_RATE (100ull * 1000 * 1000) /* bytes/s, rebuilds under writes */

#define HOST "bench-degraded"
#define ADMIN_HOST "bench-degraded.admin"
#define RAW_HOST "bench-degraded.raw"

/* The files the run can make in the scratch directory, by name: the
 * members, the two replacements, and each one's transport state file. */
static const char *const FILES[] = { "m0", "m1", "m2", "m3", "r1", "r2" };
#define NFILES ((int)CRP_ARRAY_SIZE(FILES))

/* Everything to tear down; written by the main thread before anything is
 * made, read by the exit and signal teardowns. */
static struct {
	pid_t owner;
	char dir[64];	/* the scratch directory, "" until made */
	char paths[2 * NFILES][PATH_MAX]; /* every file the run can make */
	char build[1024];
} B;

static const struct crp_cred root_cred = { 0, 0, 022 };

static void note(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

static void note(const char *fmt, ...)
{
	va_list ap;

	fputs("bench_degraded: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
}

static void row(const char *name, double v, const char *unit, const char *base, double bv)
{
	printf("| degraded | %s | %.1f | %s | %s | %.1f | %.2f |\n", name, v, unit, base, bv,
	       bv > 0 ? v / bv : 0.0);
	fflush(stdout);
}

static double mbps(uint64_t bytes, uint64_t ns)
{
	return ns ? (double)bytes / ((double)ns / 1e9) / 1e6 : 0.0;
}

/* ---- teardown ----------------------------------------------------------- */

static int rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)st;
	(void)ftw;
	if ((flag == FTW_DP ? rmdir(path) : unlink(path)) < 0)
		fprintf(stderr, "bench_degraded: cannot remove %s: %s\n", path, strerror(errno));
	return 0;
}

/* Remove the scratch directory and all in it.  The members may still be
 * open in this process (a failure half-way): the images go when the
 * process does. */
static void at_exit(void)
{
	if (B.owner != getpid() || !B.dir[0])
		return;
	nftw(B.dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS | FTW_MOUNT);
	B.dir[0] = '\0';
}

/* Async-signal-safe: unlink every file the run can have made, by name,
 * and the directory; then die of the signal. */
static void on_signal(int sig)
{
	if (B.owner == getpid() && B.dir[0]) {
		for (int i = 0; i < 2 * NFILES; i++)
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

/* ---- setup -------------------------------------------------------------- */

static void check_machine(char *mkfs, size_t len)
{
	const char *b = getenv("CRPFS_BUILD");

	if (!b || !*b)
		b = getenv("BUILD");
	b = b && *b ? b : "build";
	if (strlen(b) >= sizeof(B.build))
		bench_die("cannot run: the build directory %.40s... is too long a path", b);
	snprintf(B.build, sizeof(B.build), "%s", b);
	snprintf(mkfs, len, "%s/mkfs.crpfs", B.build);
	if (geteuid() != 0)
		bench_die("cannot run: needs root (/proc/sys/vm/drop_caches)");
	if (access(mkfs, X_OK))
		bench_die("cannot run: %s is not built (run make)", mkfs);
}

/* The path of scratch file @name, and its spec "file:PATH". */
static void file_path(char *out, size_t len, const char *name)
{
	snprintf(out, len, "%s/%s", B.dir, name);
}

static void file_spec(char *out, size_t len, const char *name)
{
	snprintf(out, len, "file:%s/%s", B.dir, name);
}

/* A fresh sparse image of MEMBER_BYTES to put in for a member. */
static void make_image(const char *name)
{
	char p[PATH_MAX];
	int fd;

	file_path(p, sizeof(p), name);
	fd = open(p, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	if (fd < 0 || ftruncate(fd, (off_t)MEMBER_BYTES) < 0)
		bench_die("cannot make the image %s: %s", p, strerror(errno));
	close(fd);
}

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

/* ---- content ------------------------------------------------------------ */

/* The content of MiB @i of a file, in @buf: random bytes that
 * pattern_init() put there, with each 4 KiB block's first 8 bytes
 * restamped with its number in the file, so that a misplaced, lost or
 * stale block is caught at the cost of 256 stores a MiB. */
static void pattern(uint8_t *buf, uint64_t i)
{
	for (uint64_t k = 0; k < IO / BLK; k++) {
		uint64_t stamp = (i * (IO / BLK) + k) ^ 0x5eb1e5eb1e5eb1e5ull;

		memcpy(buf + k * BLK, &stamp, sizeof(stamp));
	}
}

static void pattern_init(uint8_t *buf)
{
	uint64_t x = 0x9e3779b97f4a7c15ull;

	for (size_t k = 0; k < IO; k += sizeof(x)) {
		x ^= x << 13;
		x ^= x >> 7;
		x ^= x << 17;
		memcpy(buf + k, &x, sizeof(x));
	}
}

/* ---- the filesystem ----------------------------------------------------- */

static struct crp_fs *mount_fs(const char *const *specs, bool ro)
{
	struct crp_fs_opts o = { .host = HOST, .ro = ro };
	struct crp_fs *fs;
	char err[1024] = "";
	int r = crp_fs_mount(specs, NMEM, &o, &fs, err, sizeof(err));

	if (r)
		bench_die("mount: %s", err[0] ? err : crp_strerror(r));
	return fs;
}

static void unmount_fs(struct crp_fs *fs)
{
	int r = crp_fs_unmount(fs);

	if (r)
		bench_die("unmount: %s", crp_strerror(r));
}

/* What the mounted host itself makes of position POS: @st and, unless
 * NULL, the member serving it (its spec).  -ESTALE if not. */
static int check_view(struct crp_fs *fs, enum crp_array_mstate st, const char *spec)
{
	struct crp_array *a;
	int r = 0;

	pthread_mutex_lock(&fs->mu);
	a = fs->m->a;
	if (crp_array_mstate(a, POS) != st ||
	    (spec && strcmp(crp_member_spec(crp_array_member(a, POS)), spec)))
		r = -ESTALE;
	pthread_mutex_unlock(&fs->mu);
	return r;
}

/* MB/s of writing @name anew: @bytes in IO writes, then fsync; create to
 * fsync timed.  Right after the create (which follows the member table as
 * every operation does) the host's view of POS must be @st / @spec, or,
 * for CRP_AM_REBUILDING, after at least one of the writes (back-to-back
 * rebuilds pass through FAILED between two, and a create that waited for
 * a rebuild's hold may end in that moment): -ESTALE if not. */
static int fs_write_file(struct crp_fs *fs, const char *name, uint64_t bytes,
			 enum crp_array_mstate st, const char *spec, double *rate)
{
	uint8_t *buf = crp_alloc_buf(IO);
	struct crp_attr a;
	uint64_t fh, t0;
	bool open = false, seen;
	int r = -ENOMEM;

	if (!buf)
		return r;
	pattern_init(buf);
	t0 = crp_now_ns();
	r = crp_fs_create(fs, CRP_ROOT_INO, name, 0644, O_RDWR | O_CREAT | O_EXCL, &root_cred,
			  &a, &fh);
	if (r)
		goto out;
	open = true;
	r = check_view(fs, st, spec);
	seen = r == 0;
	if (r && st != CRP_AM_REBUILDING)
		goto out;
	r = 0;
	for (uint64_t i = 0; i < bytes / IO; i++) {
		size_t done = 0;

		pattern(buf, i);
		while (done < IO) {
			ssize_t n = crp_fs_write(fs, a.ino, fh, i * IO + done, buf + done, IO - done);

			if (n <= 0) {
				r = n < 0 ? (int)n : -EIO;
				goto out;
			}
			done += (size_t)n;
		}
		if (!seen && check_view(fs, st, spec) == 0)
			seen = true;
	}
	r = crp_fs_fsync(fs, a.ino, false);
	if (r)
		goto out;
	if (!seen) {
		r = -ESTALE;
		goto out;
	}
	*rate = mbps(bytes, crp_now_ns() - t0);
out:
	if (open) {
		int e = crp_fs_release(fs, a.ino, fh);

		r = r ? r : e;
		crp_fs_forget(fs, a.ino, 1);
	}
	free(buf);
	return r;
}

/* MB/s of reading @name (@bytes long) in IO reads, lookup to last read
 * timed; every MiB is compared with what fs_write_file wrote: -EILSEQ if
 * one differs.  The host's view of POS must be @st: -ESTALE if not. */
static int fs_read_file(struct crp_fs *fs, const char *name, uint64_t bytes,
			enum crp_array_mstate st, double *rate)
{
	uint8_t *buf = crp_alloc_buf(IO), *want = crp_alloc_buf(IO);
	struct crp_attr a;
	uint64_t fh, t0, total = 0;
	bool looked = false, open = false;
	int r = -ENOMEM;

	if (!buf || !want)
		goto out;
	pattern_init(want);
	t0 = crp_now_ns();
	r = crp_fs_lookup(fs, CRP_ROOT_INO, name, &a);
	if (r)
		goto out;
	looked = true;
	r = check_view(fs, st, NULL);
	if (r)
		goto out;
	if (a.size != bytes) {
		r = -EILSEQ;
		goto out;
	}
	r = crp_fs_open(fs, a.ino, O_RDONLY, &fh);
	if (r)
		goto out;
	open = true;
	/* Reads never cross a MiB, so that a short one is compared with the
	 * right part of its MiB. */
	while (total < bytes) {
		ssize_t n = crp_fs_read(fs, a.ino, fh, total, buf, IO - total % IO);

		if (n <= 0) {
			r = n < 0 ? (int)n : -EIO;
			goto out;
		}
		pattern(want, total / IO);
		if (memcmp(buf, want + total % IO, (size_t)n)) {
			r = -EILSEQ;
			goto out;
		}
		total += (uint64_t)n;
	}
	*rate = mbps(bytes, crp_now_ns() - t0);
	r = 0;
out:
	if (open) {
		int e = crp_fs_release(fs, a.ino, fh);

		r = r ? r : e;
	}
	if (looked)
		crp_fs_forget(fs, a.ino, 1);
	free(buf);
	free(want);
	return r;
}

static void fs_remove(struct crp_fs *fs, const char *name)
{
	int r = crp_fs_unlink(fs, CRP_ROOT_INO, name, &root_cred);

	if (!r)
		r = crp_fs_sync(fs);
	if (r)
		bench_die("cannot remove %s: %s", name, crp_strerror(r));
}

static void what_failed(const char *phase, const char *name, int r)
{
	if (r == -EILSEQ)
		bench_die("%s: %s holds other data than was written", phase, name);
	if (r == -ESTALE)
		bench_die("%s: the mounted host does not see position %d as this phase needs", phase,
		    POS);
	if (r)
		bench_die("%s (%s): %s", phase, name, crp_strerror(r));
}

/* One timed read of the file on a fresh read-only mount of @specs; the
 * host must see POS as @st. */
static double read_run(const char *const *specs, enum crp_array_mstate st, const char *what)
{
	struct crp_fs *fs = mount_fs(specs, true);
	double v = 0;
	int r;

	drop_caches();
	r = fs_read_file(fs, "seq", READ_BYTES, st, &v);
	what_failed(what, "seq", r);
	unmount_fs(fs);
	note("read, %-24s %8.1f MB/s", what, v);
	return v;
}

/* ---- raw members -------------------------------------------------------- */

struct range {
	uint64_t off, len;
};

/* The byte ranges that the image at @path holds (its data, not its holes),
 * in 4 KiB units: g_free *@out. */
static void image_ranges(const char *path, struct range **out, int *n)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC), cap = 0;
	struct range *v = NULL;
	off_t size, off = 0;

	*n = 0;
	if (fd < 0)
		bench_die("cannot open %s: %s", path, strerror(errno));
	size = lseek(fd, 0, SEEK_END);
	while (off < size) {
		off_t d = lseek(fd, off, SEEK_DATA), h;

		if (d < 0 && errno == ENXIO)
			break;
		h = d < 0 ? -1 : lseek(fd, d, SEEK_HOLE);
		if (h < 0)
			bench_die("cannot map the data of %s: %s", path, strerror(errno));
		if (*n == cap) {
			cap = cap ? 2 * cap : 64;
			v = g_realloc(v, (size_t)cap * sizeof(*v));
		}
		d = d / BLK * BLK;
		h = CRP_MIN((h + BLK - 1) / BLK * BLK, size);
		v[(*n)++] = (struct range){ (uint64_t)d, (uint64_t)(h - d) };
		off = h;
	}
	close(fd);
	*out = v;
}

struct raw {
	const char *spec;
	struct crp_member *m;
	const struct range *ranges;
	int nranges;
	int r;
};

static void *raw_read_main(void *arg)
{
	struct raw *w = arg;
	uint8_t *buf = crp_alloc_buf(IO);

	w->r = buf ? 0 : -ENOMEM;
	for (int i = 0; !w->r && i < w->nranges; i++)
		for (uint64_t o = 0; !w->r && o < w->ranges[i].len; o += IO)
			w->r = crp_member_read(w->m, w->ranges[i].off + o, buf,
					       (uint32_t)CRP_MIN((uint64_t)IO, w->ranges[i].len - o));
	free(buf);
	return NULL;
}

/* MB/s of reading @ranges of each of @n members, one thread each, all at
 * once, in reads of at most IO through the transport (caches dropped
 * first; open and close untimed). */
static double raw_read(const char *const *specs, int n, const struct range *ranges, int nranges)
{
	struct crp_member_opts mo = { .host = RAW_HOST };
	struct raw w[NMEM];
	pthread_t th[NMEM];
	char err[1024];
	uint64_t t0, ns, bytes = 0;

	for (int i = 0; i < nranges; i++)
		bytes += ranges[i].len;
	for (int i = 0; i < n; i++) {
		w[i] = (struct raw){ .spec = specs[i], .ranges = ranges, .nranges = nranges };
		if (crp_member_open(specs[i], &mo, &w[i].m, err, sizeof(err)))
			bench_die("raw read: %s", err);
		if (nranges && crp_member_size(w[i].m) < ranges[nranges - 1].off +
		    ranges[nranges - 1].len)
			bench_die("raw read: %s is smaller than the ranges to read", specs[i]);
	}
	drop_caches();
	t0 = crp_now_ns();
	for (int i = 0; i < n; i++)
		if (pthread_create(&th[i], NULL, raw_read_main, &w[i]))
			bench_die("cannot start a thread");
	for (int i = 0; i < n; i++)
		pthread_join(th[i], NULL);
	ns = crp_now_ns() - t0;
	for (int i = 0; i < n; i++) {
		crp_member_close(w[i].m);
		if (w[i].r)
			bench_die("raw read of %s: %s", w[i].spec, crp_strerror(w[i].r));
	}
	return mbps(bytes * (uint64_t)n, ns);
}

/* ---- administration ----------------------------------------------------- */

static struct crp_admin *admin_open(const char *const *specs)
{
	struct crp_admin *ad;
	char err[1024] = "";
	int r = crp_admin_open(specs, NMEM, ADMIN_HOST, 0, &ad, err, sizeof(err));

	if (r)
		bench_die("administration open: %s", err[0] ? err : crp_strerror(r));
	return ad;
}

/*
 * Rebuilds of POS, by rebuild_main (in a thread or not).  Once: the
 * member now at POS.  Looping (@loop): after each, unless @writes_done,
 * POS is failed and given the other of @spec[], which is rebuilt in turn.
 */
struct rebuild {
	struct crp_meta *m;
	bool loop;
	const char *spec[2];		/* loop: the images put in by turns */
	int cur;			/* loop: spec[cur] is at POS */
	atomic_bool writes_done;	/* loop: stop after the rebuild under way */
	atomic_uint_fast64_t bytes;	/* written to new members so far */
	uint64_t base;			/* of those, by the rebuilds done */
	atomic_uint_fast64_t end_ns;	/* when the last ended, synced (0: running) */
	int runs;			/* rebuilds done */
	uint64_t gap_ns;		/* time between two rebuilds (loop) */
	int r;
	char err[1024];
};

static void rebuild_progress(void *ctx, uint64_t done, uint64_t total, uint64_t bytes,
			     uint64_t start)
{
	struct rebuild *rb = ctx;

	(void)done;
	(void)total;
	(void)start;
	atomic_store(&rb->bytes, rb->base + bytes);
}

static void *rebuild_main(void *arg)
{
	struct rebuild *rb = arg;
	struct crp_rebuild_opts ro = { .progress = rebuild_progress, .ctx = rb,
				       .rate_bps = rb->loop ? LOOP_RATE : 0 };

	for (;;) {
		uint64_t t;
		bool resumed;

		rb->r = crp_meta_rebuild(rb->m, POS, &ro);
		if (!rb->r)
			rb->r = crp_member_sync(crp_array_member(rb->m->a, POS));
		if (rb->r) {
			snprintf(rb->err, sizeof(rb->err), "rebuild of position %d: %s", POS,
				 crp_strerror(rb->r));
			break;
		}
		rb->base = atomic_load(&rb->bytes);
		rb->runs++;
		if (!rb->loop || atomic_load(&rb->writes_done))
			break;
		t = crp_now_ns();
		rb->r = crp_meta_member_fail(rb->m, POS);
		if (rb->r) {
			snprintf(rb->err, sizeof(rb->err), "fail of position %d: %s", POS,
				 crp_strerror(rb->r));
			break;
		}
		rb->cur ^= 1;
		/* The image was this array's member before: forced, as it
		 * holds crpfs already. */
		rb->r = crp_meta_member_replace(rb->m, POS, rb->spec[rb->cur], true, &resumed,
						rb->err, sizeof(rb->err));
		if (rb->r) {
			if (!rb->err[0])
				snprintf(rb->err, sizeof(rb->err), "%s", crp_strerror(rb->r));
			break;
		}
		rb->gap_ns += crp_now_ns() - t;
	}
	atomic_store(&rb->end_ns, crp_now_ns());
	return NULL;
}

static void replace(struct crp_meta *m, const char *spec)
{
	char err[1024] = "";
	bool resumed;
	int r = crp_meta_member_replace(m, POS, spec, false, &resumed, err, sizeof(err));

	if (r)
		bench_die("replace of position %d by %s: %s", POS, spec, err[0] ? err : crp_strerror(r));
	if (resumed)
		bench_die("replace of position %d by %s resumed an earlier rebuild", POS, spec);
}

/* MB/s of writing @name on the redundant array (@at_pos at POS, in sync);
 * the file is removed after. */
static double write_plain(struct crp_fs *fs, const char *name, const char *at_pos)
{
	double v = 0;
	int r;

	drop_caches();
	r = fs_write_file(fs, name, WRITE_BYTES, CRP_AM_IN_SYNC, at_pos, &v);
	what_failed("write, no rebuild", name, r);
	fs_remove(fs, name);
	note("write, no rebuild:              %8.1f MB/s", v);
	return v;
}

/* MB/s of writing @name while POS is rebuilt: POS (the image *@at_pos,
 * one of @imgs) failed and given the other of @imgs (@force: it was this
 * array's member before), its rebuild started in another thread, the
 * writes begun after its first batch; rebuilds follow one another, the
 * two images by turns, until the writes are done, and the last one is
 * waited for.  The file is removed after (the array redundant again);
 * *@at_pos is the image left at POS. */
static double write_rebuilding(struct crp_fs *fs, struct crp_meta *m, const char *name,
			       const char *const imgs[2], bool force, const char **at_pos)
{
	const char *img = strcmp(*at_pos, imgs[0]) ? imgs[0] : imgs[1], *other = *at_pos;
	static struct rebuild rb;
	char err[1024] = "";
	bool resumed;
	pthread_t th;
	double v = 0;
	uint64_t t, wend;
	int r;

	r = crp_meta_member_fail(m, POS);
	if (r)
		bench_die("fail of position %d: %s", POS, crp_strerror(r));
	r = crp_meta_member_replace(m, POS, img, force, &resumed, err, sizeof(err));
	if (r)
		bench_die("replace of position %d by %s: %s", POS, img, err[0] ? err : crp_strerror(r));
	drop_caches();
	memset(&rb, 0, sizeof(rb));
	rb.m = m;
	rb.loop = true;
	rb.spec[0] = img;
	rb.spec[1] = other;
	t = crp_now_ns();
	if (pthread_create(&th, NULL, rebuild_main, &rb))
		bench_die("cannot start a thread");
	while (!atomic_load(&rb.bytes) && !atomic_load(&rb.end_ns))
		crp_sleep_ns(1000000);
	/* Either image: the rebuilds alternate them. */
	r = fs_write_file(fs, name, WRITE_BYTES, CRP_AM_REBUILDING, NULL, &v);
	wend = crp_now_ns();
	atomic_store(&rb.writes_done, true);
	pthread_join(th, NULL);
	what_failed("write during a rebuild", name, r);
	if (rb.r)
		bench_die("under writes: %s", rb.err);
	*at_pos = rb.spec[rb.cur];
	fs_remove(fs, name);
	note("write during a rebuild:         %8.1f MB/s (%.1f s from the rebuild's start to the "
	     "fsync; %d rebuild%s, "
	     "%.1f ms between them; %.1f MB/s rebuilt)", v, (double)(wend - t) / 1e9, rb.runs,
	     rb.runs == 1 ? "" : "s back to back", (double)rb.gap_ns / 1e6,
	     mbps(atomic_load(&rb.bytes), rb.end_ns - t));
	return v;
}

/* ---- the run ------------------------------------------------------------ */

int main(void)
{
	char mkfs[PATH_MAX], spec[NFILES][PATH_MAX], m0[PATH_MAX];
	const char *all[NMEM], *missing[NMEM], *specs[NMEM];
	struct crp_fs *fs;
	struct crp_admin *ad;
	struct crp_meta *m;
	struct crp_scrub_counts sc;
	struct crp_scrub_opts so = { 0 };
	struct range whole = { 0, MEMBER_BYTES }, *used;
	double healthy, degraded, raw_one, rebuild, scrub, raw_used, w_setup, w_base, w_rebuild, v;
	uint64_t t0 = crp_now_ns(), t, used_bytes = 0;
	char busy[CRP_HOST_MAX] = "";
	const char *at_pos, *imgs[2];
	int nused, r;
	static struct rebuild rb;

	bench_set_name("bench_degraded");

	check_machine(mkfs, sizeof(mkfs));
	install_teardown();
	snprintf(B.dir, sizeof(B.dir), "/var/tmp/crpfs-bench-degraded.XXXXXX");
	if (!mkdtemp(B.dir)) {
		B.dir[0] = '\0';
		bench_die("cannot make a scratch directory under /var/tmp: %s", strerror(errno));
	}
	for (int i = 0; i < NFILES; i++) {
		file_path(B.paths[2 * i], PATH_MAX, FILES[i]);
		snprintf(B.paths[2 * i + 1], PATH_MAX, "%s.crpfs-scsi", B.paths[2 * i]);
		file_spec(spec[i], PATH_MAX, FILES[i]);
	}
	for (int i = 0; i < NMEM; i++)
		all[i] = missing[i] = spec[i];
	missing[POS] = "missing";
	file_path(m0, sizeof(m0), FILES[0]);

	/* Setup: format, write the file, unmount. */
	{
		char *argv[] = { mkfs, (char *)"-l", (char *)"5", (char *)"-s", (char *)MEMBER_SIZE,
				 spec[0], spec[1], spec[2], spec[3], NULL };

		if (bench_run(argv))
			bench_die("%s failed on the members in %s: its words are above", mkfs, B.dir);
	}
	fs = mount_fs(all, false);
	r = fs_write_file(fs, "seq", READ_BYTES, CRP_AM_IN_SYNC, spec[POS], &w_setup);
	what_failed("writing the file to read", "seq", r);
	unmount_fs(fs);
	note("RAID-5 of 4 x 1 GiB file: members in %s; %llu MiB written at %.1f MB/s", B.dir,
	     (unsigned long long)(READ_BYTES >> 20), w_setup);

	/* Reads: all, missing, missing, all; the best of each. */
	healthy = read_run(all, CRP_AM_IN_SYNC, "all members");
	degraded = read_run(missing, CRP_AM_FAILED, "position 3 missing");
	v = read_run(missing, CRP_AM_FAILED, "position 3 missing");
	degraded = CRP_MAX(degraded, v);
	v = read_run(all, CRP_AM_IN_SYNC, "all members");
	healthy = CRP_MAX(healthy, v);

	/* Raw read of one member, the rebuild's baseline. */
	raw_one = raw_read(all, 1, &whole, 1);
	note("raw read of one member:         %8.1f MB/s", raw_one);

	/* Rebuild onto a fresh image, a read-write mount up and idle. */
	fs = mount_fs(missing, false);
	ad = admin_open(missing);
	m = crp_admin_meta(ad);
	make_image(FILES[4]);
	replace(m, spec[4]);
	drop_caches();
	rb.m = m;
	t = crp_now_ns();
	rebuild_main(&rb);
	if (rb.r)
		bench_die("%s", rb.err);
	rebuild = mbps(atomic_load(&rb.bytes), rb.end_ns - t);
	note("rebuild: %.1f MiB written to position %d at %.1f MB/s",
	     (double)atomic_load(&rb.bytes) / 1048576.0, POS, rebuild);

	/* Scrub, no repair; then what member 0 holds, for its baseline. */
	drop_caches();
	t = crp_now_ns();
	r = crp_meta_scrub(m, &so, &sc, busy);
	if (r == -EBUSY)
		bench_die("scrub: %s is scrubbing this array", busy);
	if (r)
		bench_die("scrub: %s", crp_strerror(r));
	t = crp_now_ns() - t;
	if (sc.problem_stripes || sc.stripes_degraded || sc.stripes_done != sc.stripes_total)
		bench_die("scrub: %llu of %llu stripes done, %llu with problems, %llu degraded: the "
		    "array should be clean and redundant", (unsigned long long)sc.stripes_done,
		    (unsigned long long)sc.stripes_total, (unsigned long long)sc.problem_stripes,
		    (unsigned long long)sc.stripes_degraded);
	scrub = mbps(sc.bytes_read, t);
	image_ranges(m0, &used, &nused);
	for (int i = 0; i < nused; i++)
		used_bytes += used[i].len;
	note("scrub: %llu of %llu stripes in use, %.1f MiB read at %.1f MB/s; member 0 holds "
	     "%.1f MiB in %d ranges", (unsigned long long)sc.stripes_in_use,
	     (unsigned long long)sc.stripes_total, (double)sc.bytes_read / 1048576.0, scrub,
	     (double)used_bytes / 1048576.0, nused);

	/* Writes: none, during a rebuild, during a rebuild, none; the best
	 * of each. */
	fs_remove(fs, "seq");
	make_image(FILES[5]);
	imgs[0] = spec[4];
	imgs[1] = spec[5];
	at_pos = spec[4];
	w_base = write_plain(fs, "w0", at_pos);
	w_rebuild = write_rebuilding(fs, m, "w1", imgs, false, &at_pos);
	v = write_rebuilding(fs, m, "w2", imgs, true, &at_pos);
	w_rebuild = CRP_MAX(w_rebuild, v);
	v = write_plain(fs, "w3", at_pos);
	w_base = CRP_MAX(w_base, v);

	r = crp_admin_close(ad);
	if (r)
		bench_die("leaving the array (administration): %s", crp_strerror(r));
	unmount_fs(fs);

	/* The scrub's baseline, nothing mounted. */
	for (int i = 0; i < NMEM; i++)
		specs[i] = spec[i];
	specs[POS] = at_pos;
	raw_used = raw_read(specs, NMEM, used, nused);
	g_free(used);
	note("raw read of those ranges, %d members at once: %.1f MB/s", NMEM, raw_used);

	row("seq read 512 MiB, 1 MiB reads, one member missing", degraded, "MB/s",
	    "same read, all members", healthy);
	row("rebuild of a 1 GiB member, idle mount", rebuild, "MB/s",
	    "raw seq read of one member, 1 MiB reads", raw_one);
	row("scrub, no repair, idle mount", scrub, "MB/s",
	    "raw read of the stripes in use, 4 members at once", raw_used);
	row("seq write 128 MiB, 1 MiB writes + fsync, during a rebuild at 100 MB/s", w_rebuild,
	    "MB/s", "same writes, no rebuild", w_base);
	note("done in %.1f s", (double)(crp_now_ns() - t0) / 1e9);
	return 0;
}
