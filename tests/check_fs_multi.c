/*
 * Several hosts on the same members, in one process: three crp_fs
 * instances with different host names (so different nexuses, different
 * slots) mount the same file: members and must see each other's changes
 * (close-to-open data, names, attributes), never allocate the same inode or
 * block twice under concurrent creates, and keep a shared file exact under
 * concurrent writes of disjoint ranges; a file one host holds open stays
 * whole after another host unlinks it or renames over it, until its last
 * close frees it; fsck stays clean.  A host that only reads takes no
 * reservation, and what it reads without the lock is always one whole
 * state of what another host is changing.
 */
#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/fs.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include "crpfs/err.h"
#include "crpfs/fs.h"
#include "crpfs/meta.h"
#include "crpfs/status.h"
#include "crpfs/util.h"
#include "fixture/fsfix.h"
#include "../src/fs/fs_i.h"
#include "../src/meta/meta_i.h"

#define NM 3
#define NH 3
#define MEMBER_SIZE (160ull << 20)

static struct crp_fsfix fx;
static const struct crp_cred root_cred = { 0, 0, 022 };
static struct crp_fs *hosts[NH];
static const char *const host_names[NH] = { "host-a", "host-b", "host-c" };

static void rm_tree(void)
{
	if (crp_fsfix_remove(&fx) != 0)
		fprintf(stderr, "cannot remove %s\n", fx.dir);
}

/* @pr: persistent reservations (others read while one writes); else
 * RESERVE(6), which keeps every other host off a member it holds. */
static void format_mode(int pr)
{
	const struct crp_fsfix_params p = { .name = "multi", .members = NM,
					    .member_size = MEMBER_SIZE, .level = 5,
					    .chunk = 65536, .max_hosts = 4, .label = "multi",
					    .lock_mode = pr };

	crp_fsfix_format(&fx, &p);
}

static void format(void)
{
	format_mode(0);
}

/* Heartbeat and dead timeout: 0 for the defaults. */
static void mount_all_beating(uint32_t heartbeat_ms, uint32_t dead_ms)
{
	for (int h = 0; h < NH; h++) {
		struct crp_fs_opts o = { .host = host_names[h], .attr_timeout_ms = 200,
					 .heartbeat_ms = heartbeat_ms, .dead_timeout_ms = dead_ms };
		char err[256];
		int r = crp_fs_mount(fx.specs, NM, &o, &hosts[h], err, sizeof(err));

		ck_assert_msg(r == 0, "mount %s: %s (%d)", host_names[h], err, r);
	}
}

static void mount_all(void)
{
	mount_all_beating(0, 0);
}

static void say_msg(void *ctx, const char *msg)
{
	(void)ctx;
	fprintf(stderr, "fsck: %s\n", msg);
}

static void unmount_all_and_fsck(void)
{
	struct crp_fsck_opts o = { .host = "fsckhost", .say = say_msg };
	struct crp_fsck_result res;
	char err[256];

	for (int h = 0; h < NH; h++) {
		ck_assert_int_eq(crp_fs_unmount(hosts[h]), 0);
		hosts[h] = NULL;
	}
	ck_assert_msg(crp_fsck_run(fx.specs, NM, &o, &res, err, sizeof(err)) == CRP_FSCK_OK,
		      "fsck is not clean: %s", err);
}

static void fill_pattern(uint8_t *p, size_t len, unsigned seed)
{
	for (size_t i = 0; i < len; i++)
		p[i] = (uint8_t)(i * 31 + seed * 7 + (i >> 9));
}

static uint64_t lookup(struct crp_fs *fs, uint64_t parent, const char *name)
{
	struct crp_attr a;
	int r = crp_fs_lookup(fs, parent, name, &a);

	if (r)
		return 0;
	crp_fs_forget(fs, a.ino, 1);
	return a.ino;
}

static uint64_t create_file(struct crp_fs *fs, uint64_t parent, const char *name,
			    const void *data, size_t len)
{
	struct crp_attr a;
	uint64_t fh;
	int r = crp_fs_create(fs, parent, name, 0644, O_RDWR | O_EXCL, &root_cred, &a, &fh);

	ck_assert_msg(r == 0, "create %s: %s", name, crp_strerror(r));
	if (len)
		ck_assert_int_eq(crp_fs_write(fs, a.ino, fh, 0, data, len), (ssize_t)len);
	ck_assert_int_eq(crp_fs_release(fs, a.ino, fh), 0);
	crp_fs_forget(fs, a.ino, 1);
	return a.ino;
}

static void read_back(struct crp_fs *fs, uint64_t ino, const void *want, size_t len)
{
	uint8_t *buf = malloc(len + 4096);
	struct crp_attr a;
	uint64_t fh;

	ck_assert_int_eq(crp_fs_open(fs, ino, O_RDONLY, &fh), 0);
	ck_assert_int_eq(crp_fs_getattr(fs, ino, &a), 0);
	ck_assert_uint_eq(a.size, len);
	ck_assert_int_eq(crp_fs_read(fs, ino, fh, 0, buf, len + 4096), (ssize_t)len);
	ck_assert_int_eq(memcmp(buf, want, len), 0);
	ck_assert_int_eq(crp_fs_release(fs, ino, fh), 0);
	free(buf);
}

START_TEST(written_on_a_reads_on_b_and_c)
{
	size_t len = 300000;
	uint8_t *data = malloc(len), *more = malloc(len);
	uint64_t ino;

	format();
	mount_all();
	fill_pattern(data, len, 1);
	fill_pattern(more, len, 2);
	/* B and C look first, so that they cache the root and the absence. */
	ck_assert_uint_eq(lookup(hosts[1], CRP_ROOT_INO, "f"), 0);
	ck_assert_uint_eq(lookup(hosts[2], CRP_ROOT_INO, "f"), 0);
	ino = create_file(hosts[0], CRP_ROOT_INO, "f", data, len);
	ck_assert_uint_eq(lookup(hosts[1], CRP_ROOT_INO, "f"), ino);
	ck_assert_uint_eq(lookup(hosts[2], CRP_ROOT_INO, "f"), ino);
	read_back(hosts[1], ino, data, len);
	read_back(hosts[2], ino, data, len);
	/* Rewritten on A (copy-on-write, new extents): B sees the new bytes. */
	{
		uint64_t fh;

		ck_assert_int_eq(crp_fs_open(hosts[0], ino, O_RDWR, &fh), 0);
		ck_assert_int_eq(crp_fs_write(hosts[0], ino, fh, 0, more, len), (ssize_t)len);
		ck_assert_int_eq(crp_fs_release(hosts[0], ino, fh), 0);
	}
	read_back(hosts[1], ino, more, len);
	read_back(hosts[2], ino, more, len);
	unmount_all_and_fsck();
	free(data);
	free(more);
	rm_tree();
}
END_TEST

START_TEST(names_and_attrs_across_hosts)
{
	struct crp_attr a;
	uint64_t ino, ino2;

	format();
	mount_all();
	ino = create_file(hosts[0], CRP_ROOT_INO, "old", "x", 1);
	ino2 = create_file(hosts[0], CRP_ROOT_INO, "gone", "y", 1);
	for (int h = 0; h < NH; h++) {
		ck_assert_uint_eq(lookup(hosts[h], CRP_ROOT_INO, "old"), ino);
		ck_assert_uint_eq(lookup(hosts[h], CRP_ROOT_INO, "gone"), ino2);
		ck_assert_int_eq(crp_fs_getattr(hosts[h], ino, &a), 0);
		ck_assert_uint_eq(a.mode & 07777, 0644);
	}
	/* Rename on B: A and C see the new name only. */
	ck_assert_int_eq(crp_fs_rename(hosts[1], CRP_ROOT_INO, "old", CRP_ROOT_INO, "new", 0,
				       &root_cred), 0);
	for (int h = 0; h < NH; h++) {
		ck_assert_uint_eq(lookup(hosts[h], CRP_ROOT_INO, "old"), 0);
		ck_assert_uint_eq(lookup(hosts[h], CRP_ROOT_INO, "new"), ino);
	}
	/* Unlink on C: A and B no longer find it, and its inode is gone. */
	ck_assert_int_eq(crp_fs_unlink(hosts[2], CRP_ROOT_INO, "gone", &root_cred), 0);
	for (int h = 0; h < NH; h++) {
		ck_assert_uint_eq(lookup(hosts[h], CRP_ROOT_INO, "gone"), 0);
		ck_assert_int_eq(crp_fs_getattr(hosts[h], ino2, &a), -ESTALE);
	}
	/* chmod on A: B's cached attributes follow. */
	a.mode = 0600;
	ck_assert_int_eq(crp_fs_setattr(hosts[0], ino, &a, CRP_SET_MODE, &root_cred, &a), 0);
	ck_assert_int_eq(crp_fs_getattr(hosts[1], ino, &a), 0);
	ck_assert_uint_eq(a.mode & 07777, 0600);
	/* A directory made on C lists on A with what B put in it. */
	{
		struct crp_attr d;

		ck_assert_int_eq(crp_fs_mkdir(hosts[2], CRP_ROOT_INO, "dir", 0755, &root_cred, &d),
				 0);
		crp_fs_forget(hosts[2], d.ino, 1);
		ck_assert_uint_eq(lookup(hosts[1], CRP_ROOT_INO, "dir"), d.ino);
		create_file(hosts[1], d.ino, "inside", "z", 1);
		ck_assert_uint_ne(lookup(hosts[0], d.ino, "inside"), 0);
	}
	unmount_all_and_fsck();
	rm_tree();
}
END_TEST

/* ---- concurrency ---- */

#define THREADS_PER_HOST 2
#define NAMES_PER_THREAD 200

struct worker {
	struct crp_fs *fs;
	uint64_t dir;
	int id;
	int err;
};

static void *create_names(void *arg)
{
	struct worker *w = arg;

	for (int i = 0; i < NAMES_PER_THREAD && !w->err; i++) {
		char name[64];
		struct crp_attr a;
		uint64_t fh;
		int r;

		snprintf(name, sizeof(name), "w%d-file-%04d", w->id, i);
		r = crp_fs_create(w->fs, w->dir, name, 0644, O_RDWR | O_EXCL, &root_cred, &a, &fh);
		if (r == 0) {
			r = crp_fs_write(w->fs, a.ino, fh, 0, name, strlen(name)) ==
					    (ssize_t)strlen(name)
				    ? 0
				    : -EIO;
			crp_fs_release(w->fs, a.ino, fh);
			crp_fs_forget(w->fs, a.ino, 1);
		}
		if (r)
			w->err = r;
	}
	return NULL;
}

static int count_cb(void *ctx, const char *name, uint64_t ino, uint32_t mode,
		    uint64_t next_cookie)
{
	(void)ino;
	(void)mode;
	(void)next_cookie;
	if (name[0] != '.')
		(*(int *)ctx)++;
	return 0;
}

START_TEST(concurrent_creates_in_one_directory)
{
	pthread_t th[NH * THREADS_PER_HOST];
	struct worker w[NH * THREADS_PER_HOST];
	struct crp_attr d;
	int total = NH * THREADS_PER_HOST * NAMES_PER_THREAD;

	format();
	mount_all();
	ck_assert_int_eq(crp_fs_mkdir(hosts[0], CRP_ROOT_INO, "many", 0755, &root_cred, &d), 0);
	crp_fs_forget(hosts[0], d.ino, 1);
	for (int i = 0; i < NH * THREADS_PER_HOST; i++) {
		w[i] = (struct worker){ .fs = hosts[i % NH], .dir = d.ino, .id = i };
		ck_assert_int_eq(pthread_create(&th[i], NULL, create_names, &w[i]), 0);
	}
	for (int i = 0; i < NH * THREADS_PER_HOST; i++) {
		pthread_join(th[i], NULL);
		ck_assert_msg(w[i].err == 0, "worker %d: %s", i, crp_strerror(w[i].err));
	}
	for (int h = 0; h < NH; h++) {
		uint64_t fh;
		int n = 0;

		ck_assert_int_eq(crp_fs_opendir(hosts[h], d.ino, &fh), 0);
		ck_assert_int_eq(crp_fs_readdir(hosts[h], d.ino, fh, 0, count_cb, &n), 0);
		ck_assert_int_eq(crp_fs_releasedir(hosts[h], d.ino, fh), 0);
		ck_assert_msg(n == total, "%s lists %d names, not %d", host_names[h], n, total);
		/* Every name of every host resolves, to its own content. */
		for (int i = 0; i < NH * THREADS_PER_HOST; i += 3) {
			char name[64];
			uint64_t ino;

			snprintf(name, sizeof(name), "w%d-file-%04d", i, NAMES_PER_THREAD - 1);
			ino = lookup(hosts[h], d.ino, name);
			ck_assert_uint_ne(ino, 0);
			read_back(hosts[h], ino, name, strlen(name));
		}
	}
	unmount_all_and_fsck();
	rm_tree();
}
END_TEST

#define RANGES 12
#define RANGE_LEN 10000 /* not a multiple of the block: neighbours share blocks */

struct range_writer {
	struct crp_fs *fs;
	uint64_t ino;
	int first; /* writes ranges first, first + NH, ... */
	int err;
};

static void *write_ranges(void *arg)
{
	struct range_writer *rw = arg;
	uint8_t buf[RANGE_LEN];
	uint64_t fh;
	int r = crp_fs_open(rw->fs, rw->ino, O_RDWR, &fh);

	if (r) {
		rw->err = r;
		return NULL;
	}
	for (int k = rw->first; k < RANGES; k += NH) {
		fill_pattern(buf, sizeof(buf), (unsigned)k + 10);
		if (crp_fs_write(rw->fs, rw->ino, fh, (uint64_t)k * RANGE_LEN, buf, sizeof(buf)) !=
		    (ssize_t)sizeof(buf)) {
			rw->err = -EIO;
			break;
		}
	}
	crp_fs_release(rw->fs, rw->ino, fh);
	return NULL;
}

START_TEST(disjoint_ranges_of_one_file)
{
	struct range_writer rw[NH];
	pthread_t th[NH];
	size_t len = (size_t)RANGES * RANGE_LEN;
	uint8_t *want = malloc(len);
	uint64_t ino;

	format();
	mount_all();
	ino = create_file(hosts[0], CRP_ROOT_INO, "shared", NULL, 0);
	for (int k = 0; k < RANGES; k++)
		fill_pattern(want + (size_t)k * RANGE_LEN, RANGE_LEN, (unsigned)k + 10);
	/* Run it a few times over: later rounds overwrite committed blocks. */
	for (int round = 0; round < 3; round++) {
		for (int h = 0; h < NH; h++) {
			rw[h] = (struct range_writer){ .fs = hosts[h], .ino = ino, .first = h };
			ck_assert_int_eq(pthread_create(&th[h], NULL, write_ranges, &rw[h]), 0);
		}
		for (int h = 0; h < NH; h++) {
			pthread_join(th[h], NULL);
			ck_assert_msg(rw[h].err == 0, "%s: %s", host_names[h],
				      crp_strerror(rw[h].err));
		}
		for (int h = 0; h < NH; h++)
			read_back(hosts[h], ino, want, len);
	}
	unmount_all_and_fsck();
	free(want);
	rm_tree();
}
END_TEST

static uint64_t free_blocks(struct crp_fs *fs)
{
	struct statvfs st;

	ck_assert_int_eq(crp_fs_statfs(fs, &st), 0);
	return st.f_bfree;
}

#define HELD_LEN (1u << 20)

/* Host a holds a file open; host b takes its name away (unlink, or a rename
 * of another file over it): a reads and writes it still, and its blocks
 * are freed by a's close, not before. */
static void held_across_hosts(bool rename_over)
{
	uint8_t *want = malloc(HELD_LEN), *got = malloc(HELD_LEN);
	uint64_t ino, fh, before, held;
	struct crp_attr a;

	fill_pattern(want, HELD_LEN, 5);
	before = free_blocks(hosts[1]);
	ck_assert_int_eq(crp_fs_create(hosts[0], CRP_ROOT_INO, "held", 0644, O_RDWR | O_EXCL,
				       &root_cred, &a, &fh), 0);
	ino = a.ino;
	ck_assert_int_eq(crp_fs_write(hosts[0], ino, fh, 0, want, HELD_LEN), (ssize_t)HELD_LEN);
	if (rename_over) {
		create_file(hosts[1], CRP_ROOT_INO, "newer", "newer", 5);
		ck_assert_int_eq(crp_fs_rename(hosts[1], CRP_ROOT_INO, "newer", CRP_ROOT_INO, "held",
					       0, &root_cred), 0);
	} else {
		ck_assert_int_eq(crp_fs_unlink(hosts[1], CRP_ROOT_INO, "held", &root_cred), 0);
	}
	/* a's descriptor: the old data, and new writes, read back. */
	ck_assert_int_eq(crp_fs_read(hosts[0], ino, fh, 0, got, HELD_LEN), (ssize_t)HELD_LEN);
	ck_assert(memcmp(got, want, HELD_LEN) == 0);
	fill_pattern(want, HELD_LEN, 6);
	ck_assert_int_eq(crp_fs_write(hosts[0], ino, fh, 0, want, HELD_LEN), (ssize_t)HELD_LEN);
	ck_assert_int_eq(crp_fs_read(hosts[0], ino, fh, 0, got, HELD_LEN), (ssize_t)HELD_LEN);
	ck_assert(memcmp(got, want, HELD_LEN) == 0);
	ck_assert_int_eq(crp_fs_getattr(hosts[0], ino, &a), 0);
	ck_assert_uint_eq(a.nlink, 0);
	/* Still allocated, as b sees it. */
	held = free_blocks(hosts[1]);
	ck_assert_msg(held + HELD_LEN / 4096 <= before, "%llu free while held, %llu before",
		      (unsigned long long)held, (unsigned long long)before);
	ck_assert_int_eq(crp_fs_release(hosts[0], ino, fh), 0);
	crp_fs_forget(hosts[0], ino, 1);
	ck_assert_msg(free_blocks(hosts[1]) + 4 >= before, "%llu free after the close, %llu before",
		      (unsigned long long)free_blocks(hosts[1]), (unsigned long long)before);
	ck_assert_int_eq(crp_fs_getattr(hosts[1], ino, &a), -ESTALE);
	if (rename_over) {
		ck_assert_uint_ne(lookup(hosts[0], CRP_ROOT_INO, "held"), 0);
		ck_assert_int_eq(crp_fs_unlink(hosts[0], CRP_ROOT_INO, "held", &root_cred), 0);
	}
	free(want);
	free(got);
}

START_TEST(open_file_survives_unlink_elsewhere)
{
	format();
	mount_all();
	held_across_hosts(false);
	held_across_hosts(true);
	unmount_all_and_fsck();
	rm_tree();
}
END_TEST

/* A host that unmounts while it holds an unlinked file frees it. */
START_TEST(unlinked_file_freed_when_its_holder_leaves)
{
	struct crp_attr a;
	uint64_t fh, before;

	format();
	mount_all();
	before = free_blocks(hosts[2]);
	ck_assert_int_eq(crp_fs_create(hosts[0], CRP_ROOT_INO, "left", 0644, O_RDWR | O_EXCL,
				       &root_cred, &a, &fh), 0);
	{
		uint8_t *buf = calloc(1, HELD_LEN);

		ck_assert_int_eq(crp_fs_write(hosts[0], a.ino, fh, 0, buf, HELD_LEN),
				 (ssize_t)HELD_LEN);
		free(buf);
	}
	ck_assert_int_eq(crp_fs_unlink(hosts[1], CRP_ROOT_INO, "left", &root_cred), 0);
	ck_assert(free_blocks(hosts[2]) + HELD_LEN / 4096 <= before);
	/* The handle is never released: the unmount lets go of it. */
	ck_assert_int_eq(crp_fs_unmount(hosts[0]), 0);
	hosts[0] = NULL;
	ck_assert_msg(free_blocks(hosts[2]) + 4 >= before, "%llu free, %llu before",
		      (unsigned long long)free_blocks(hosts[2]), (unsigned long long)before);
	for (int h = 1; h < NH; h++) {
		ck_assert_int_eq(crp_fs_unmount(hosts[h]), 0);
		hosts[h] = NULL;
	}
	{
		struct crp_fsck_opts o = { .host = "fsckhost", .say = say_msg };
		struct crp_fsck_result res;
		char err[256];

		ck_assert(crp_fsck_run(fx.specs, NM, &o, &res, err, sizeof(err)) == CRP_FSCK_OK);
	}
	rm_tree();
}
END_TEST

/* ---- reads without the metadata lock ---- */

#define QUIET_OPS 300

/* Lookups, attributes, listings and data of files another host wrote, on
 * a host that changes nothing: served without a reservation, correctly. */
START_TEST(reads_take_no_reservation)
{
	size_t len = 100000;
	uint8_t *data = malloc(len), *buf = malloc(len + 4096);
	struct crp_fs_counters c0, c1, w0, w1;
	struct crp_fs *b;
	uint64_t ino, fh;
	int ops = 0;

	format();
	mount_all();
	b = hosts[1];
	fill_pattern(data, len, 3);
	ino = create_file(hosts[0], CRP_ROOT_INO, "quiet", data, len);
	ck_assert_int_eq(crp_fs_open(b, ino, O_RDONLY, &fh), 0); /* open takes the lock */
	crp_fs_get_counters(b, &c0);
	crp_fs_get_counters(hosts[0], &w0);
	while (ops < QUIET_OPS) {
		struct crp_attr a;
		uint64_t dfh;
		int n = 0;

		ck_assert_uint_eq(lookup(b, CRP_ROOT_INO, "quiet"), ino);
		ck_assert_int_eq(crp_fs_getattr(b, ino, &a), 0);
		ck_assert_uint_eq(a.size, len);
		ck_assert_int_eq(crp_fs_read(b, ino, fh, 0, buf, len + 4096), (ssize_t)len);
		ck_assert_int_eq(memcmp(buf, data, len), 0);
		ck_assert_int_eq(crp_fs_opendir(b, CRP_ROOT_INO, &dfh), 0); /* locked */
		ck_assert_int_eq(crp_fs_readdir(b, CRP_ROOT_INO, dfh, 0, count_cb, &n), 0);
		ck_assert_int_eq(crp_fs_releasedir(b, CRP_ROOT_INO, dfh), 0); /* locked */
		ck_assert_int_ge(n, 1);
		ops += 4;
	}
	crp_fs_get_counters(b, &c1);
	crp_fs_get_counters(hosts[0], &w1);
	fprintf(stderr, "reads_take_no_reservation: %d reads: %llu without the lock, %llu retried, "
		"%llu reservations (opendir/releasedir: %d)\n", ops,
		(unsigned long long)(c1.unlocked_reads - c0.unlocked_reads),
		(unsigned long long)(c1.unlocked_retries - c0.unlocked_retries),
		(unsigned long long)(c1.reservations - c0.reservations), ops / 2);
	/* Nobody wrote: every read held without the lock (the first
	 * lookups after A's create may have had to catch up, no more). */
	ck_assert_uint_eq(w1.commits, w0.commits);
	ck_assert_uint_eq(c1.unlocked_reads - c0.unlocked_reads, (uint64_t)ops);
	ck_assert_uint_eq(c1.unlocked_retries, c0.unlocked_retries);
	/* The only reservations: opendir and releasedir (one transaction
	 * each, a few stripe locks at most), and the heartbeat. */
	ck_assert_uint_le(c1.reservations - c0.reservations, (uint64_t)(ops / 2) * 3 + 20);
	ck_assert_int_eq(crp_fs_release(b, ino, fh), 0);
	unmount_all_and_fsck();
	free(data);
	free(buf);
	rm_tree();
}
END_TEST

#define SWAP_FILES 16
#define SWAP_LEN 65536

struct swapper {
	struct crp_fs *fs;
	uint64_t dir, ino;
	volatile bool stop;
	volatile int rounds, err;
};

/* Renames a name back and forth (the directory always holds SWAP_FILES
 * names) and rewrites one file whole, each time with one version byte. */
static void *swap_names(void *arg)
{
	struct swapper *sw = arg;
	uint8_t *buf = malloc(SWAP_LEN);
	uint64_t fh;
	int r = crp_fs_open(sw->fs, sw->ino, O_RDWR, &fh);

	for (int k = 0; !r && !sw->stop && k < 100000; k++) {
		char from[32], to[32];
		int i = k % SWAP_FILES;

		snprintf(from, sizeof(from), "%c%02d", (k / SWAP_FILES) % 2 ? 'y' : 'x', i);
		snprintf(to, sizeof(to), "%c%02d", (k / SWAP_FILES) % 2 ? 'x' : 'y', i);
		r = crp_fs_rename(sw->fs, sw->dir, from, sw->dir, to, 0, &root_cred);
		if (!r) {
			memset(buf, (k & 0x7f) + 1, SWAP_LEN);
			r = crp_fs_write(sw->fs, sw->ino, fh, 0, buf, SWAP_LEN) == SWAP_LEN ? 0 : -EIO;
		}
		sw->rounds = k + 1;
		usleep(2000); /* room for the reader's passes between changes */
	}
	if (!r)
		r = crp_fs_release(sw->fs, sw->ino, fh);
	sw->err = r;
	free(buf);
	return NULL;
}

/* While A renames and rewrites, B lists, looks up and reads without the
 * lock: every listing has exactly the names the directory always has,
 * every read is one whole version of the file (a pass that met A's change
 * ran again under the lock). */
static void whole_states(int pr)
{
	struct crp_attr d;
	struct swapper sw = { 0 };
	struct crp_fs_counters c0, c1;
	uint8_t *buf = malloc(SWAP_LEN), *ones = malloc(SWAP_LEN);
	struct crp_fs *b;
	pthread_t th;
	uint64_t fh, dfh;
	int loops = 0;

	format_mode(pr);
	mount_all();
	b = hosts[1];
	ck_assert_int_eq(crp_fs_mkdir(hosts[0], CRP_ROOT_INO, "swap", 0755, &root_cred, &d), 0);
	crp_fs_forget(hosts[0], d.ino, 1);
	for (int i = 0; i < SWAP_FILES; i++) {
		char name[32];

		snprintf(name, sizeof(name), "x%02d", i);
		create_file(hosts[0], d.ino, name, name, strlen(name));
	}
	memset(ones, 1, SWAP_LEN);
	sw.fs = hosts[0];
	sw.dir = d.ino;
	sw.ino = create_file(hosts[0], CRP_ROOT_INO, "data", ones, SWAP_LEN);
	ck_assert_int_eq(crp_fs_open(b, sw.ino, O_RDONLY, &fh), 0);
	crp_fs_get_counters(b, &c0);
	ck_assert_int_eq(crp_fs_opendir(b, d.ino, &dfh), 0);
	ck_assert_int_eq(pthread_create(&th, NULL, swap_names, &sw), 0);
	/* At least 100 rounds of looking, and on until A made 50 changes
	 * (at most a million rounds; A stops when told, or after 100000). */
	while (!sw.err && (loops < 100 || (sw.rounds < 50 && loops < 1000000))) {
		int n = 0;
		ssize_t got;

		/* Cookie 0: a new snapshot of the names each time. */
		ck_assert_int_eq(crp_fs_readdir(b, d.ino, dfh, 0, count_cb, &n), 0);
		ck_assert_msg(n == SWAP_FILES, "a listing of %d names, not %d", n, SWAP_FILES);
		got = crp_fs_read(b, sw.ino, fh, 0, buf, SWAP_LEN);
		ck_assert_int_eq(got, SWAP_LEN);
		/* One assertion a pass, not one a byte: each costs a message
		 * to the test runner. */
		if (memcmp(buf, buf + 1, SWAP_LEN - 1)) {
			size_t i = 1;

			while (buf[i] == buf[0])
				i++;
			ck_abort_msg("byte %zu is version %u, byte 0 version %u", i, buf[i], buf[0]);
		}
		for (int i = 0; i < SWAP_FILES; i += 5) {
			char x[32], y[32];

			snprintf(x, sizeof(x), "x%02d", i);
			snprintf(y, sizeof(y), "y%02d", i);
			/* Between two looks it may have moved, never vanished
			 * from both for long: at least the name resolves as a
			 * file when found. */
			(void)lookup(b, d.ino, x);
			(void)lookup(b, d.ino, y);
		}
		loops++;
	}
	sw.stop = true;
	pthread_join(th, NULL);
	ck_assert_int_eq(crp_fs_releasedir(b, d.ino, dfh), 0);
	ck_assert_msg(sw.err == 0, "the writer failed: %s", crp_strerror(sw.err));
	crp_fs_get_counters(b, &c1);
	fprintf(stderr, "reads_without_lock_see_whole_states (%s): %d loops against %d changes: %llu "
		"reads without the lock, %llu ran again under it\n", pr ? "pr" : "reserve", loops,
		sw.rounds,
		(unsigned long long)(c1.unlocked_reads - c0.unlocked_reads),
		(unsigned long long)(c1.unlocked_retries - c0.unlocked_retries));
	ck_assert_uint_gt(c1.unlocked_reads - c0.unlocked_reads, 0);
	ck_assert_int_ge(sw.rounds, 50);
	ck_assert_int_eq(crp_fs_release(b, sw.ino, fh), 0);
	unmount_all_and_fsck();
	free(buf);
	free(ones);
	rm_tree();
}

struct creator {
	struct crp_fs *fs;
	const char *name;
	bool commit;
	uint64_t ino;
};

static void *create_one(void *arg)
{
	struct creator *c = arg;

	c->ino = create_file(c->fs, CRP_ROOT_INO, c->name, c->name, strlen(c->name));
	if (c->commit)
		ck_assert_int_eq(crp_fs_sync(c->fs), 0);
	return NULL;
}

/* Host A creates @name, from a thread of its own as its daemon would
 * (what a thread reads without the lock is counted per thread), and
 * commits it if @commit (else it may keep it in a batch). */
static uint64_t create_on_a_as(const char *name, bool commit)
{
	struct creator c = { hosts[0], name, commit, 0 };
	pthread_t th;

	ck_assert_int_eq(pthread_create(&th, NULL, create_one, &c), 0);
	pthread_join(th, NULL);
	return c.ino;
}

static uint64_t create_on_a(const char *name)
{
	return create_on_a_as(name, true);
}

/* The check itself, step by step: B starts a read without the lock; A
 * commits; B reads from the disks: the pass must not hold.  Without a
 * disk read in between, it holds (B's caches are one state, current when
 * the pass began). */
START_TEST(read_across_a_commit_does_not_hold)
{
	uint8_t data[8192], blk[CRP_BLOCK];
	struct crp_fs *b;
	struct crp_fs_inode *ip;
	uint64_t ino, pblk, n;
	uint32_t fl;

	format_mode(1); /* pr: B may read while A writes */
	mount_all();
	b = hosts[1];
	fill_pattern(data, sizeof(data), 5);
	ino = create_file(hosts[0], CRP_ROOT_INO, "f", data, sizeof(data));
	ck_assert_uint_eq(lookup(b, CRP_ROOT_INO, "f"), ino);

	/* Nothing changes, nothing read: holds. */
	pthread_mutex_lock(&b->mu);
	ck_assert_int_eq(crp_meta_read_begin(b->m), 1);
	ck_assert_int_eq(crp_meta_read_end(b->m, true), 0);
	pthread_mutex_unlock(&b->mu);

	/* Nothing changes, the disks read: holds. */
	pthread_mutex_lock(&b->mu);
	ck_assert_int_eq(crp_meta_read_begin(b->m), 1);
	ck_assert_int_eq(crp_fs_iget(b, ino, &ip), 0);
	ck_assert_int_eq(crp_fs_emap(ip, 0, &pblk, &n, &fl), 1);
	ck_assert_int_eq(crp_meta_data_read(b->m, pblk, 1, blk), 0);
	ck_assert_int_eq(memcmp(blk, data, CRP_BLOCK), 0);
	ck_assert_int_eq(crp_meta_read_end(b->m, true), 0);
	pthread_mutex_unlock(&b->mu);

	/* A commits while B's pass runs, B then reads the disks: void. */
	pthread_mutex_lock(&b->mu);
	ck_assert_int_eq(crp_meta_read_begin(b->m), 1);
	ck_assert_uint_ne(create_on_a("g"), 0);
	ck_assert_int_eq(crp_meta_data_read(b->m, pblk, 1, blk), 0);
	ck_assert_int_eq(crp_meta_read_end(b->m, true), -CRP_ERETRY);
	pthread_mutex_unlock(&b->mu);

	/* A commits while B's pass runs, B reads only its caches: holds, the
	 * state it saw was current when the pass began. */
	pthread_mutex_lock(&b->mu);
	ck_assert_int_eq(crp_meta_read_begin(b->m), 1);
	ck_assert_uint_ne(create_on_a("h"), 0);
	ck_assert_int_eq(crp_meta_read_end(b->m, true), 0);
	pthread_mutex_unlock(&b->mu);

	/* And the next read sees A's names. */
	ck_assert_uint_ne(lookup(b, CRP_ROOT_INO, "g"), 0);
	ck_assert_uint_ne(lookup(b, CRP_ROOT_INO, "h"), 0);
	unmount_all_and_fsck();
	rm_tree();
}
END_TEST

/* File data read outside B's core lock, with host A alive: nothing
 * changes, it holds; A commits between B's plan and its read, B reads
 * again under the lock (the data is the same: A changed another file). */
static void commit_on_a(void *ctx)
{
	hosts[1]->read_gap = NULL;
	ck_assert_uint_ne(create_on_a(ctx), 0);
}

START_TEST(data_read_outside_lock_across_a_commit)
{
	uint8_t data[3 * CRP_BLOCK], got[sizeof(data)];
	struct crp_fs_counters c0, c1;
	struct crp_fs *b;
	uint64_t ino, fh;

	format_mode(1);
	mount_all();
	b = hosts[1];
	fill_pattern(data, sizeof(data), 9);
	ino = create_file(hosts[0], CRP_ROOT_INO, "f", data, sizeof(data));
	ck_assert_uint_eq(lookup(b, CRP_ROOT_INO, "f"), ino);
	ck_assert_int_eq(crp_fs_open(b, ino, O_RDONLY, &fh), 0);

	crp_fs_get_counters(b, &c0);
	ck_assert_int_eq(crp_fs_read(b, ino, fh, 0, got, sizeof(got)), (ssize_t)sizeof(got));
	ck_assert_int_eq(memcmp(got, data, sizeof(data)), 0);
	crp_fs_get_counters(b, &c1);
	ck_assert_uint_eq(c1.data_outside - c0.data_outside, 1);
	ck_assert_uint_eq(c1.data_outside_retries, c0.data_outside_retries);

	memset(got, 0, sizeof(got));
	b->read_gap_ctx = (void *)"g";
	b->read_gap = commit_on_a;
	ck_assert_int_eq(crp_fs_read(b, ino, fh, 0, got, sizeof(got)), (ssize_t)sizeof(got));
	ck_assert_ptr_null(b->read_gap);
	ck_assert_int_eq(memcmp(got, data, sizeof(data)), 0);
	crp_fs_get_counters(b, &c0);
	ck_assert_uint_eq(c0.data_outside, c1.data_outside);
	ck_assert_uint_eq(c0.data_outside_retries - c1.data_outside_retries, 1);
	ck_assert_int_eq(crp_fs_release(b, ino, fh), 0);
	unmount_all_and_fsck();
	rm_tree();
}
END_TEST

/* ---- group commit beside other hosts ---- */

/* The shared state block's flags as the disks hold them now. */
static uint32_t shared_flags(struct crp_fs *fs)
{
	uint8_t *blk = malloc(CRP_BLOCK);
	struct crp_shared *s = malloc(sizeof(*s));
	uint32_t fl;

	ck_assert_ptr_nonnull(blk);
	ck_assert_ptr_nonnull(s);
	ck_assert_int_eq(crp_array_read(fs->m->a, (uint64_t)CRP_SHARED_BLKNO * CRP_BLOCK, blk,
					CRP_BLOCK), 0);
	ck_assert_int_eq(crp_shared_in(blk, fs->m->fsid, s, NULL, 0), 0);
	fl = s->flags;
	free(s);
	free(blk);
	return fl;
}

/* Every host sees the other two alive (the heartbeats say so). */
static void wait_peers(void)
{
	for (int h = 0; h < NH; h++) {
		struct crp_fs_counters c;
		int tries = 0;

		for (crp_fs_get_counters(hosts[h], &c); c.peers < NH - 1;
		     crp_fs_get_counters(hosts[h], &c)) {
			ck_assert_msg(++tries < 600, "%s sees %u other hosts after 60 s, not %d",
				      host_names[h], c.peers, NH - 1);
			usleep(100000);
		}
	}
}

static void remount(int h, uint32_t peer_commit_ms)
{
	struct crp_fs_opts o = { .host = host_names[h], .attr_timeout_ms = 200,
				 .peer_commit_ms = peer_commit_ms };
	char err[256];

	ck_assert_int_eq(crp_fs_unmount(hosts[h]), 0);
	ck_assert_msg(crp_fs_mount(fx.specs, NM, &o, &hosts[h], err, sizeof(err)) == 0,
		      "mount %s: %s", host_names[h], err);
}

/* A keeps a batch of answered creates while B and C live: the shared
 * block says HELD until it commits, and B, looking the new name up at
 * once, finds it (its pass without the lock sees HELD and asks under the
 * lock, which waits for A's commit) instead of "no such name". */
START_TEST(batch_kept_beside_others_is_marked)
{
	struct crp_fs_counters a0, a1, b0, b1;
	struct crp_attr at;
	uint64_t ino;

	format_mode(1); /* pr: B reads the disks while A holds the lock */
	mount_all();
	remount(0, 1000); /* a window long enough to look at */
	wait_peers();
	crp_fs_get_counters(hosts[0], &a0);
	crp_fs_get_counters(hosts[1], &b0);
	ino = create_on_a_as("kept", false);
	ck_assert_uint_ne(ino, 0);
	crp_fs_get_counters(hosts[0], &a1);
	ck_assert_uint_eq(a1.held_marks - a0.held_marks, 1);
	ck_assert_uint_eq(a1.commits, a0.commits); /* kept, not committed */
	ck_assert_msg(shared_flags(hosts[1]) & CRP_SHARED_HELD, "the kept batch is not marked");
	ck_assert_int_eq(crp_fs_lookup(hosts[1], CRP_ROOT_INO, "kept", &at), 0);
	ck_assert_uint_eq(at.ino, ino);
	crp_fs_forget(hosts[1], at.ino, 1);
	crp_fs_get_counters(hosts[0], &a1);
	crp_fs_get_counters(hosts[1], &b1);
	ck_assert_uint_gt(a1.commits, a0.commits);
	ck_assert_uint_eq(b1.unlocked_reads, b0.unlocked_reads); /* saw HELD: under the lock */
	ck_assert_msg(!(shared_flags(hosts[2]) & CRP_SHARED_HELD), "HELD outlived the commit");
	/* C, which never read the directory, finds it without the lock. */
	crp_fs_get_counters(hosts[2], &b0);
	ck_assert_uint_eq(lookup(hosts[2], CRP_ROOT_INO, "kept"), ino);
	crp_fs_get_counters(hosts[2], &b1);
	ck_assert_uint_eq(b1.unlocked_retries, b0.unlocked_retries);
	unmount_all_and_fsck();
	rm_tree();
}
END_TEST

#define OT_FILES 40

/* A removes many files in one kept batch: it reads each block of the other
 * hosts' open tables once for that hold of the metadata lock, not once per
 * file.  B then opens a file (which waits for A's lock and enters it in
 * B's table); A's next removal reads the tables again and keeps the file
 * for B, who still reads it whole, and whose close frees it. */
START_TEST(open_tables_read_once_per_hold)
{
	struct crp_fs_counters c0, c1;
	uint64_t ino, fh, seq0, holds, before;
	char name[32], got[16];
	struct crp_attr at;

	format();
	mount_all();
	remount(0, 1000); /* one hold for the whole run of removals */
	wait_peers();
	for (int i = 0; i < OT_FILES; i++) {
		snprintf(name, sizeof(name), "f%d", i);
		create_file(hosts[0], CRP_ROOT_INO, name, "x", 1);
	}
	ino = create_file(hosts[0], CRP_ROOT_INO, "kept", "still here", 10);
	ck_assert_int_eq(crp_fs_sync(hosts[0]), 0);

	crp_fs_get_counters(hosts[0], &c0);
	seq0 = hosts[0]->m->lock_seq;
	for (int i = 0; i < OT_FILES; i++) {
		snprintf(name, sizeof(name), "f%d", i);
		ck_assert_int_eq(crp_fs_unlink(hosts[0], CRP_ROOT_INO, name, &root_cred), 0);
	}
	crp_fs_get_counters(hosts[0], &c1);
	holds = hosts[0]->m->lock_seq - seq0 + 1;
	ck_assert_uint_gt(c1.open_table_reads, c0.open_table_reads);
	ck_assert_msg(c1.open_table_reads - c0.open_table_reads <= CRP_OTABLE_BLOCKS * holds,
		      "%llu open table reads for %d removals in %llu holds of the lock",
		      (unsigned long long)(c1.open_table_reads - c0.open_table_reads), OT_FILES,
		      (unsigned long long)holds);

	/* A has every block of the tables in memory now; B's open comes in
	 * a later hold, and A must see it. */
	ck_assert_int_eq(crp_fs_open(hosts[1], ino, O_RDONLY, &fh), 0);
	before = hosts[0]->m->lock_seq;
	crp_fs_get_counters(hosts[0], &c0);
	ck_assert_int_eq(crp_fs_unlink(hosts[0], CRP_ROOT_INO, "kept", &root_cred), 0);
	crp_fs_get_counters(hosts[0], &c1);
	ck_assert_uint_gt(hosts[0]->m->lock_seq, before);
	ck_assert_uint_eq(c1.open_table_reads - c0.open_table_reads, 1);
	ck_assert_int_eq(crp_fs_sync(hosts[0]), 0);
	memset(got, 0, sizeof(got));
	ck_assert_int_eq(crp_fs_read(hosts[1], ino, fh, 0, got, sizeof(got)), 10);
	ck_assert_msg(memcmp(got, "still here", 10) == 0, "B's open file reads \"%.10s\"", got);
	ck_assert_int_eq(crp_fs_getattr(hosts[1], ino, &at), 0);
	ck_assert_uint_eq(at.nlink, 0);
	ck_assert_int_eq(crp_fs_release(hosts[1], ino, fh), 0);
	crp_fs_forget(hosts[1], ino, 1);
	ck_assert_int_eq(crp_fs_getattr(hosts[2], ino, &at), -ESTALE);
	unmount_all_and_fsck();
	rm_tree();
}
END_TEST

/* What a holder that lost the lock with a batch kept leaves: HELD naming
 * @slot, and nothing of the batch on the disks; @fs forgets its mark. */
static void leave_held_mark(struct crp_fs *fs, uint32_t slot)
{
	pthread_mutex_lock(&fs->mu);
	ck_assert_int_eq(crp_meta_batch_flush(fs->m), 0);
	ck_assert_int_eq(crp_meta_tx_begin(fs->m), 0);
	fs->m->sh->flags |= CRP_SHARED_HELD;
	fs->m->sh->slot = slot;
	ck_assert_int_eq(crp_meta_shared_store(fs->m), 0);
	fs->m->sh->flags &= ~CRP_SHARED_HELD;
	crp_meta_tx_abort(fs->m);
	pthread_mutex_unlock(&fs->mu);
}

/* A host that stopped with a batch kept left HELD behind: the readers go
 * under the lock, and the first of them clears it for good.  The mark
 * names a slot no host beats in (the dead holder's, recovered): nobody
 * waits for it. */
START_TEST(stale_mark_cleared_by_next_holder)
{
	struct crp_fs_counters c0, c1;
	struct crp_fs *b;
	uint64_t ino;

	format_mode(1);
	mount_all();
	b = hosts[1];
	ino = create_file(hosts[0], CRP_ROOT_INO, "f", "x", 1);
	ck_assert_int_eq(crp_fs_sync(hosts[0]), 0);
	leave_held_mark(hosts[0], 3); /* max_hosts 4, three mounted: free */
	ck_assert(shared_flags(b) & CRP_SHARED_HELD);
	ck_assert_uint_ne(b->m->held_wait_ns, 0); /* it would wait for a live holder */

	crp_fs_get_counters(b, &c0);
	ck_assert_uint_eq(lookup(b, CRP_ROOT_INO, "f"), ino);
	crp_fs_get_counters(b, &c1);
	ck_assert_uint_eq(c1.unlocked_reads, c0.unlocked_reads); /* under the lock */
	ck_assert_msg(!(shared_flags(b) & CRP_SHARED_HELD), "the stale HELD is still there");
	/* From now on, reads go without the lock again. */
	ck_assert_uint_eq(lookup(b, CRP_ROOT_INO, "f"), ino);
	crp_fs_get_counters(b, &c0);
	ck_assert_uint_eq(c0.unlocked_reads - c1.unlocked_reads, 1);
	ck_assert_uint_eq(c0.unlocked_retries, c1.unlocked_retries);
	unmount_all_and_fsck();
	rm_tree();
}
END_TEST

/*
 * A holder that lost the lock with a batch it answered for (its session
 * went with a target restart) is alive: its heartbeat moves.  The next
 * host to take the lock must not clear its mark and write over it, which
 * would lose the batch (the holder can commit it under a new lock only if
 * nobody wrote meanwhile), but step aside until the holder commits, for
 * longer than a dead timeout as long as the holder beats.  Here A marks
 * HELD and forgets it; a thread makes A come back after more than a dead
 * timeout and create "late"; B, looking "late" up from the start, waits
 * and finds it.  A B that cleared the mark at once would not.
 */
#define LOST_DEAD_MS 1000u

static void *create_late(void *arg)
{
	uint64_t *ino = arg;

	crp_sleep_ns(LOST_DEAD_MS * 1200000ull); /* 1.2 dead timeouts */
	*ino = create_file(hosts[0], CRP_ROOT_INO, "late", "y", 1);
	return NULL;
}

START_TEST(lost_batch_waited_for_while_holder_beats)
{
	uint64_t late = 0, ino;
	pthread_t t;

	format_mode(1);
	mount_all_beating(100, LOST_DEAD_MS);
	ck_assert_uint_eq(hosts[1]->m->held_wait_ns, LOST_DEAD_MS * 1000000ull);
	leave_held_mark(hosts[0], (uint32_t)hosts[0]->m->slot);
	ck_assert(shared_flags(hosts[1]) & CRP_SHARED_HELD);

	ck_assert_int_eq(pthread_create(&t, NULL, create_late, &late), 0);
	ino = lookup(hosts[1], CRP_ROOT_INO, "late");
	ck_assert_int_eq(pthread_join(t, NULL), 0);
	ck_assert_uint_ne(late, 0);
	ck_assert_msg(ino == late, "B went on before A came back: \"late\" is %llu, not %llu",
		      (unsigned long long)ino, (unsigned long long)late);
	ck_assert_msg(!(shared_flags(hosts[1]) & CRP_SHARED_HELD), "HELD outlived A's commit");
	unmount_all_and_fsck();
	rm_tree();
}
END_TEST

/* ---- the deferred checkpoint and the hosts that come after it ---- */

enum { CH_NBLK = 512, CH_ROUNDS = 8 };

static void mount_one_commit(int h, uint32_t commit_ms)
{
	struct crp_fs_opts o = { .host = host_names[h], .attr_timeout_ms = 200,
				 .commit_ms = commit_ms };
	char err[256];
	int r = crp_fs_mount(fx.specs, NM, &o, &hosts[h], err, sizeof(err));

	ck_assert_msg(r == 0, "mount %s: %s (%d)", host_names[h], err, r);
}

static void mount_one(int h)
{
	mount_one_commit(h, 0);
}

/* Host a alone: a file, then rounds of 16 random overwrites, each
 * fsync'd, until a deferred checkpoint's chain is open after at least
 * CH_ROUNDS of them (bounded).  @model follows. */
static uint64_t build_chain(uint8_t *model)
{
	struct crp_fs *a = hosts[0];
	unsigned seed = 11;
	uint8_t blk[CRP_BLOCK];
	uint64_t ino, fh;
	int n = 0;

	/* The chain stays open as long as the test needs (a batch holds the
	 * lock CRP_HOLD_MAX_NS at most otherwise). */
	pthread_mutex_lock(&a->mu);
	a->m->hold_max_ns = 600000000000ull;
	pthread_mutex_unlock(&a->mu);
	fill_pattern(model, (size_t)CH_NBLK * CRP_BLOCK, 2);
	ino = create_file(a, CRP_ROOT_INO, "f", model, (size_t)CH_NBLK * CRP_BLOCK);
	ck_assert_int_eq(crp_fs_open(a, ino, O_RDWR, &fh), 0);
	while (n < CH_ROUNDS || (!a->m->lazy_since_ns && n < 4 * CH_ROUNDS)) {
		for (int k = 0; k < 16; k++) {
			uint32_t b = (uint32_t)(rand_r(&seed) % CH_NBLK);

			fill_pattern(blk, sizeof(blk), 300u + (unsigned)(n * 16 + k));
			memcpy(model + (size_t)b * CRP_BLOCK, blk, sizeof(blk));
			ck_assert_int_eq(crp_fs_write(a, ino, fh, (uint64_t)b * CRP_BLOCK, blk,
						      sizeof(blk)),
					 (ssize_t)sizeof(blk));
		}
		ck_assert_int_eq(crp_fs_fsync(a, ino, false), 0);
		n++;
	}
	ck_assert_int_eq(crp_fs_release(a, ino, fh), 0);
	ck_assert_msg(a->m->lazy_since_ns, "no chain open after %d fsyncs", n);
	ck_assert_uint_ge(a->m->stats.deferred, CH_ROUNDS / 2);
	ck_assert(shared_flags(a) & CRP_SHARED_PENDING);
	return ino;
}

/* A host mounts while a's chain is open: a, idle, commits its batch and
 * writes the chain in place before it lets the lock go; b reads every
 * round. */
START_TEST(deferred_checkpoint_ends_for_next_host)
{
	uint8_t *model = malloc((size_t)CH_NBLK * CRP_BLOCK);
	uint64_t ino, inplace0;

	ck_assert_ptr_nonnull(model);
	format();
	mount_one(0);
	ino = build_chain(model);
	inplace0 = hosts[0]->m->stats.inplace_blocks;
	mount_one(1);
	mount_one(2);
	read_back(hosts[1], ino, model, (size_t)CH_NBLK * CRP_BLOCK);
	read_back(hosts[2], ino, model, (size_t)CH_NBLK * CRP_BLOCK);
	pthread_mutex_lock(&hosts[0]->mu);
	ck_assert(!hosts[0]->m->lazy_since_ns);
	ck_assert_uint_gt(hosts[0]->m->stats.inplace_blocks, inplace0);
	pthread_mutex_unlock(&hosts[0]->mu);
	read_back(hosts[0], ino, model, (size_t)CH_NBLK * CRP_BLOCK);
	free(model);
	unmount_all_and_fsck();
	rm_tree();
}
END_TEST

/* a loses the lock with its chain open and forgets it (as a host that
 * died, or lost its session for good): the shared block says PENDING
 * with the chain's first transaction.  The next holder, b, redoes the
 * whole chain from a's journal -- not that transaction alone -- and every
 * host drops what it cached. */
START_TEST(deferred_chain_redone_by_next_holder)
{
	uint8_t *model = malloc((size_t)CH_NBLK * CRP_BLOCK);
	struct crp_fs *a;
	uint64_t ino;

	ck_assert_ptr_nonnull(model);
	format();
	mount_one(0);
	a = hosts[0];
	ino = build_chain(model);
	pthread_mutex_lock(&a->mu);
	ck_assert_uint_gt(a->m->j_seq - a->m->lazy_seq, 1); /* a chain, not one transaction */
	a->m->lazy_since_ns = 0;
	g_hash_table_remove_all(a->m->lazy);
	ck_assert_int_eq(crp_meta_batch_flush(a->m), 0);
	pthread_mutex_unlock(&a->mu);
	ck_assert(shared_flags(a) & CRP_SHARED_PENDING);
	mount_one(1);
	mount_one(2);
	read_back(hosts[1], ino, model, (size_t)CH_NBLK * CRP_BLOCK);
	ck_assert(!(shared_flags(a) & CRP_SHARED_PENDING));
	read_back(hosts[2], ino, model, (size_t)CH_NBLK * CRP_BLOCK);
	read_back(a, ino, model, (size_t)CH_NBLK * CRP_BLOCK);
	free(model);
	unmount_all_and_fsck();
	rm_tree();
}
END_TEST

/* A read-only mount beside a host that keeps a chain open: the chain is
 * that live host's to write in place, not a journal left for a replay, so
 * the mount goes on (a journal a host died with, newer than the shared
 * generation, still refuses it). */
START_TEST(read_only_mount_beside_open_chain)
{
	uint8_t *model = malloc((size_t)CH_NBLK * CRP_BLOCK);
	struct crp_fs_opts o = { .host = "reader", .attr_timeout_ms = 200, .ro = true };
	struct crp_fs *ro = NULL;
	struct crp_attr at;
	char err[256];
	uint64_t ino;
	int r;

	ck_assert_ptr_nonnull(model);
	format_mode(1); /* pr: the reader reads while a holds the lock */
	/* A commit window no run reaches: the chain stays open until a
	 * peer shows (or the unmount). */
	mount_one_commit(0, 600000);
	ino = build_chain(model);
	pthread_mutex_lock(&hosts[0]->mu);
	ck_assert(hosts[0]->m->lazy_since_ns);
	pthread_mutex_unlock(&hosts[0]->mu);
	r = crp_fs_mount(fx.specs, NM, &o, &ro, err, sizeof(err));
	ck_assert_msg(r == 0, "read-only mount beside an open chain: %s (%d)", err, r);
	/* It sees the state before the chain (the file came with it). */
	ck_assert_int_eq(crp_fs_getattr(ro, CRP_ROOT_INO, &at), 0);
	ck_assert_int_eq(crp_fs_unmount(ro), 0);
	/* a's batch (kept as long as the test asked) ends: the others may
	 * take the lock to claim their slots. */
	pthread_mutex_lock(&hosts[0]->mu);
	ck_assert_int_eq(crp_meta_batch_flush(hosts[0]->m), 0);
	pthread_mutex_unlock(&hosts[0]->mu);
	mount_one(1);
	mount_one(2);
	read_back(hosts[1], ino, model, (size_t)CH_NBLK * CRP_BLOCK);
	free(model);
	unmount_all_and_fsck();
	rm_tree();
}
END_TEST

/* Host a fsyncs overwrites without a pause, alone, in reserve mode: its
 * chains would keep the lock (whose reservation refuses even reads)
 * however long the fsyncs go on, and b and c, which must read the labels
 * before a can know of them, could not mount.  A chain keeps the lock
 * CRP_HOLD_MAX_NS at most in a row, then steps aside: b and c mount while a goes
 * on, and read what it wrote. */
struct fsyncer {
	uint8_t *model;
	uint64_t ino;
	atomic_bool stop;
	int rounds;
};

static void *fsync_loop(void *arg)
{
	struct fsyncer *f = arg;
	struct crp_fs *a = hosts[0];
	unsigned seed = 5;
	uint8_t blk[CRP_BLOCK];
	uint64_t fh;

	if (crp_fs_open(a, f->ino, O_RDWR, &fh) != 0)
		return NULL;
	while (!atomic_load(&f->stop) && f->rounds < 100000) {
		for (int k = 0; k < 8; k++) {
			uint32_t b = (uint32_t)(rand_r(&seed) % CH_NBLK);

			fill_pattern(blk, sizeof(blk), 7000u + (unsigned)(f->rounds * 8 + k));
			if (crp_fs_write(a, f->ino, fh, (uint64_t)b * CRP_BLOCK, blk, sizeof(blk)) !=
			    (ssize_t)sizeof(blk))
				goto out;
			memcpy(f->model + (size_t)b * CRP_BLOCK, blk, sizeof(blk));
		}
		if (crp_fs_fsync(a, f->ino, false) != 0)
			goto out;
		f->rounds++;
	}
out:
	crp_fs_release(a, f->ino, fh);
	return NULL;
}

START_TEST(mount_beside_host_fsyncing)
{
	struct fsyncer f = { .model = malloc((size_t)CH_NBLK * CRP_BLOCK) };
	uint64_t deferred0;
	pthread_t t;

	ck_assert_ptr_nonnull(f.model);
	format();
	mount_one(0);
	fill_pattern(f.model, (size_t)CH_NBLK * CRP_BLOCK, 6);
	f.ino = create_file(hosts[0], CRP_ROOT_INO, "busy", f.model, (size_t)CH_NBLK * CRP_BLOCK);
	deferred0 = hosts[0]->m->stats.deferred;
	atomic_init(&f.stop, false);
	ck_assert_int_eq(pthread_create(&t, NULL, fsync_loop, &f), 0);
	/* Until a has deferred some fsyncs: chains are running. */
	for (int k = 0; k < 2000 && hosts[0]->m->stats.deferred - deferred0 < 20; k++)
		crp_sleep_ns(5000000ull);
	ck_assert_uint_ge(hosts[0]->m->stats.deferred - deferred0, 20);
	mount_one(1);
	mount_one(2);
	atomic_store(&f.stop, true);
	ck_assert_int_eq(pthread_join(t, NULL), 0);
	ck_assert_int_gt(f.rounds, 20);
	read_back(hosts[1], f.ino, f.model, (size_t)CH_NBLK * CRP_BLOCK);
	read_back(hosts[2], f.ino, f.model, (size_t)CH_NBLK * CRP_BLOCK);
	free(f.model);
	unmount_all_and_fsck();
	rm_tree();
}
END_TEST

START_TEST(reads_without_lock_see_whole_states)
{
	whole_states(0);
}
END_TEST

START_TEST(reads_without_lock_see_whole_states_pr)
{
	whole_states(1);
}
END_TEST

static Suite *multi_suite(void)
{
	Suite *s = suite_create("fs_multi");
	TCase *t = tcase_create("hosts");

	tcase_set_timeout(t, 900);
	tcase_add_test(t, written_on_a_reads_on_b_and_c);
	tcase_add_test(t, names_and_attrs_across_hosts);
	tcase_add_test(t, concurrent_creates_in_one_directory);
	tcase_add_test(t, disjoint_ranges_of_one_file);
	tcase_add_test(t, open_file_survives_unlink_elsewhere);
	tcase_add_test(t, unlinked_file_freed_when_its_holder_leaves);
	tcase_add_test(t, reads_take_no_reservation);
	tcase_add_test(t, read_across_a_commit_does_not_hold);
	tcase_add_test(t, data_read_outside_lock_across_a_commit);
	tcase_add_test(t, reads_without_lock_see_whole_states);
	tcase_add_test(t, reads_without_lock_see_whole_states_pr);
	tcase_add_test(t, batch_kept_beside_others_is_marked);
	tcase_add_test(t, stale_mark_cleared_by_next_holder);
	tcase_add_test(t, lost_batch_waited_for_while_holder_beats);
	tcase_add_test(t, open_tables_read_once_per_hold);
	tcase_add_test(t, deferred_checkpoint_ends_for_next_host);
	tcase_add_test(t, deferred_chain_redone_by_next_holder);
	tcase_add_test(t, read_only_mount_beside_open_chain);
	tcase_add_test(t, mount_beside_host_fsyncing);
	suite_add_tcase(s, t);
	return s;
}

int main(void)
{
	SRunner *sr = srunner_create(multi_suite());
	int failed;

	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
