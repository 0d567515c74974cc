/*
 * Losing members, on file: members: a mount with a member missing (RAID-5:
 * one, RAID-6: two) reads every file back and writes on; the missing
 * member is recorded failed, and comes back stale (never read); too many
 * missing is refused with nothing written; a replacement is rebuilt (a
 * rebuild stopped half way resumes from its checkpoint), and afterwards
 * the array is redundant again: every file reads back, fsck is clean and
 * every stripe's parity verifies.  A mount that names the old member finds
 * the replacement by the name the array recorded.
 */
#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define XXH_INLINE_ALL
#include <xxhash.h>

#include "crpfs/array.h"
#include "crpfs/err.h"
#include "crpfs/fs.h"
#include "crpfs/meta.h"
#include "crpfs/status.h"
#include "fixture/fsfix.h"

#define MEMBER_SIZE (96ull << 20)
#define NFILES 12

static struct crp_fsfix fx;
static const struct crp_cred root_cred = { 0, 0, 022 };
static size_t sizes[NFILES];
static uint64_t sums[NFILES];

static void format(int level, int members)
{
	const struct crp_fsfix_params p = { .name = "degraded", .members = members,
					    .member_size = MEMBER_SIZE, .level = level,
					    .chunk = 65536, .max_hosts = 4, .label = "deg" };

	crp_fsfix_format(&fx, &p);
}

static void fill(uint8_t *b, size_t len, unsigned seed)
{
	for (size_t i = 0; i < len; i++)
		b[i] = (uint8_t)((i * 131 + seed * 7) ^ (i >> 11));
}

static int mount_specs(const char *const *specs, int n, const char *host, struct crp_fs **fs,
		       char *err, size_t errlen)
{
	struct crp_fs_opts o = { .host = host, .heartbeat_ms = 200, .dead_timeout_ms = 2000 };

	return crp_fs_mount(specs, n, &o, fs, err, errlen);
}

static struct crp_fs *mount_or_fail(const char *const *specs, int n, const char *host)
{
	struct crp_fs *fs;
	char err[512];
	int r = mount_specs(specs, n, host, &fs, err, sizeof(err));

	ck_assert_msg(r == 0, "mount: %s (%s)", err, crp_strerror(r));
	return fs;
}

static uint64_t lookup(struct crp_fs *fs, const char *name)
{
	struct crp_attr a;

	if (crp_fs_lookup(fs, CRP_ROOT_INO, name, &a))
		return 0;
	crp_fs_forget(fs, a.ino, 1);
	return a.ino;
}

/* Write file @i whole (@seed picks the content) and remember its sum. */
static void write_file(struct crp_fs *fs, int i, unsigned seed)
{
	char name[32];
	struct crp_attr a;
	uint64_t fh;
	uint8_t *buf = malloc(sizes[i] + 1);

	snprintf(name, sizeof(name), "f%d", i);
	fill(buf, sizes[i], seed);
	ck_assert_int_eq(crp_fs_create(fs, CRP_ROOT_INO, name, 0644, O_RDWR | O_TRUNC, &root_cred,
				       &a, &fh), 0);
	ck_assert_int_eq(crp_fs_setattr(fs, a.ino, &(struct crp_attr){ .size = 0 }, CRP_SET_SIZE,
					&root_cred, &a), 0);
	ck_assert_int_eq(crp_fs_write(fs, a.ino, fh, 0, buf, sizes[i]), (ssize_t)sizes[i]);
	ck_assert_int_eq(crp_fs_release(fs, a.ino, fh), 0);
	crp_fs_forget(fs, a.ino, 1);
	sums[i] = XXH3_64bits(buf, sizes[i]);
	free(buf);
}

static void check_files(struct crp_fs *fs, const char *when)
{
	for (int i = 0; i < NFILES; i++) {
		char name[32];
		uint8_t *buf = malloc(sizes[i] + 1);
		uint64_t ino, fh;

		snprintf(name, sizeof(name), "f%d", i);
		ino = lookup(fs, name);
		ck_assert_msg(ino, "%s: f%d is missing", when, i);
		ck_assert_int_eq(crp_fs_open(fs, ino, O_RDONLY, &fh), 0);
		ck_assert_msg(crp_fs_read(fs, ino, fh, 0, buf, sizes[i]) == (ssize_t)sizes[i],
			      "%s: f%d reads short", when, i);
		ck_assert_msg(XXH3_64bits(buf, sizes[i]) == sums[i], "%s: f%d differs", when, i);
		ck_assert_int_eq(crp_fs_release(fs, ino, fh), 0);
		free(buf);
	}
}

static void say_msg(void *ctx, const char *msg)
{
	(void)ctx;
	fprintf(stderr, "fsck: %s\n", msg);
}

static int fsck_specs(const char *const *specs, int n, bool repair, struct crp_fsck_result *res)
{
	struct crp_fsck_opts o = { .host = "fsckhost", .repair = repair, .say = say_msg };
	char err[256];
	int r = crp_fsck_run(specs, n, &o, res, err, sizeof(err));

	if (r < 0)
		fprintf(stderr, "fsck: %s\n", err);
	return r;
}

static uint64_t image_sum(const char *spec)
{
	const char *path = spec + strlen("file:");
	FILE *f = fopen(path, "rb");
	XXH3_state_t st;
	uint8_t buf[1 << 16];
	size_t n;

	ck_assert_ptr_nonnull(f);
	XXH3_64bits_reset(&st);
	while ((n = fread(buf, 1, sizeof(buf), f)) > 0)
		XXH3_64bits_update(&st, buf, n);
	fclose(f);
	return XXH3_64bits_digest(&st);
}

/* An array open for administration (as crpfs replace opens it). */
static struct crp_meta *admin_open(const char *const *specs, int n)
{
	struct crp_meta_opts mo = { .host = "admin", .claim_slot = true, .replay = true };
	struct crp_meta *m;
	char err[512];
	int r = crp_meta_open(specs, n, &mo, &m, err, sizeof(err));

	ck_assert_msg(r == 0, "admin open: %s", err);
	return m;
}

struct stopper {
	atomic_bool stop;
	uint64_t first_start;
	bool first_seen;
};

static void stop_half(void *ctx, uint64_t done, uint64_t total, uint64_t bytes, uint64_t start)
{
	struct stopper *s = ctx;

	(void)bytes;
	if (!s->first_seen) {
		s->first_seen = true;
		s->first_start = start;
	}
	if (done >= total / 2)
		atomic_store(&s->stop, true);
}

static void note_start(void *ctx, uint64_t done, uint64_t total, uint64_t bytes, uint64_t start)
{
	struct stopper *s = ctx;

	(void)done;
	(void)total;
	(void)bytes;
	if (!s->first_seen) {
		s->first_seen = true;
		s->first_start = start;
	}
}

static void run_case(int level, int members, int nmissing)
{
	const char *specs[CRP_FSFIX_MAX_MEMBERS], *old[CRP_FSFIX_MAX_MEMBERS];
	char newspec[CRP_FSFIX_MAX_MEMBERS][160];
	uint64_t before[CRP_FSFIX_MAX_MEMBERS];
	struct crp_fsck_result res;
	struct crp_fs *fs;
	struct crp_meta *m;
	char err[512];
	int r;

	format(level, members);
	for (int i = 0; i < NFILES; i++)
		sizes[i] = (size_t)(i * i * 37 * 1024 + i * 1000 + 1);
	fs = mount_or_fail(fx.specs, fx.n, "h1");
	for (int i = 0; i < NFILES; i++)
		write_file(fs, i, (unsigned)i);
	ck_assert_int_eq(crp_fs_unmount(fs), 0);

	/* Members 1 (and 3) gone: the mount runs degraded. */
	for (int i = 0; i < fx.n; i++)
		specs[i] = old[i] = fx.specs[i];
	specs[1] = "missing";
	if (nmissing == 2)
		specs[3] = "missing";
	fs = mount_or_fail(specs, fx.n, "h1");
	check_files(fs, "degraded");
	for (int i = 0; i < NFILES; i += 2)
		write_file(fs, i, (unsigned)i + 100); /* written without them */
	check_files(fs, "after degraded writes");
	ck_assert_int_eq(crp_fs_unmount(fs), 0);

	/* Given back, the old members are stale: the table says failed. */
	fs = mount_or_fail(old, fx.n, "h1");
	check_files(fs, "stale members given back");
	ck_assert_int_eq(crp_fs_unmount(fs), 0);

	/* One more gone than the level survives: refused, nothing written. */
	for (int i = 0; i < fx.n; i++)
		before[i] = image_sum(fx.specs[i]);
	specs[0] = "missing";
	r = mount_specs(specs, fx.n, "h1", &fs, err, sizeof(err));
	ck_assert_int_eq(r, -CRP_EDEGRADED);
	ck_assert_msg(strstr(err, "cannot run"), "refusal says: %s", err);
	for (int i = 0; i < fx.n; i++)
		if (i != 1 && i != 3)
			ck_assert_msg(image_sum(fx.specs[i]) == before[i],
				      "member %d changed by a refused mount", i);
	specs[0] = fx.specs[0];

	/* fsck, degraded: clean, the stripes it cannot check counted apart. */
	ck_assert_int_eq(fsck_specs(specs, fx.n, false, &res), CRP_FSCK_OK);
	ck_assert_uint_gt(res.stripes_degraded, 0);

	/* Replace position 1 with a new member; the rebuild is stopped half
	 * way, then resumed from its checkpoint. */
	snprintf(newspec[1], sizeof(newspec[1]), "file:%s/new1", fx.dir);
	{
		char path[160];
		int fd;

		snprintf(path, sizeof(path), "%s/new1", fx.dir);
		fd = open(path, O_CREAT | O_RDWR, 0600);
		ck_assert_int_ge(fd, 0);
		ck_assert_int_eq(ftruncate(fd, (off_t)MEMBER_SIZE), 0);
		close(fd);
	}
	m = admin_open(specs, fx.n);
	{
		struct stopper st = { .stop = false };
		struct crp_rebuild_opts ro = { .progress = stop_half, .ctx = &st, .stop = &st.stop };
		bool resumed;

		r = crp_meta_member_replace(m, 1, newspec[1], false, &resumed, err, sizeof(err));
		ck_assert_msg(r == 0, "replace: %s", err);
		ck_assert(!resumed);
		r = crp_meta_rebuild(m, 1, &ro);
		ck_assert_int_eq(r, -EINTR);
		ck_assert_uint_eq(st.first_start, 0);
	}
	ck_assert_int_eq(crp_meta_close(m), 0);
	specs[1] = newspec[1];
	m = admin_open(specs, fx.n);
	{
		struct stopper st = { .stop = false };
		struct crp_rebuild_opts ro = { .progress = note_start, .ctx = &st };
		bool resumed;

		r = crp_meta_member_replace(m, 1, newspec[1], false, &resumed, err, sizeof(err));
		ck_assert_msg(r == 0, "replace again: %s", err);
		ck_assert(resumed);
		ck_assert_int_eq(crp_meta_rebuild(m, 1, &ro), 0);
		/* It did not start over. */
		ck_assert_uint_ge(st.first_start, m->geom.nstripes / 2 - 8);
	}
	if (nmissing == 2) {
		bool resumed;

		snprintf(newspec[3], sizeof(newspec[3]), "file:%s/new3", fx.dir);
		{
			char path[160];
			int fd;

			snprintf(path, sizeof(path), "%s/new3", fx.dir);
			fd = open(path, O_CREAT | O_RDWR, 0600);
			ck_assert_int_ge(fd, 0);
			ck_assert_int_eq(ftruncate(fd, (off_t)MEMBER_SIZE), 0);
			close(fd);
		}
		r = crp_meta_member_replace(m, 3, newspec[3], false, &resumed, err, sizeof(err));
		ck_assert_msg(r == 0, "replace 3: %s", err);
		ck_assert_int_eq(crp_meta_rebuild(m, 3, NULL), 0);
		specs[3] = newspec[3];
	}
	ck_assert_int_eq(crp_meta_close(m), 0);

	/* Redundant again: every stripe's parity verifies, every file reads. */
	ck_assert_int_eq(fsck_specs(specs, fx.n, false, &res), CRP_FSCK_OK);
	ck_assert_uint_gt(res.stripes_checked, 0);
	ck_assert_uint_eq(res.stripes_degraded, 0);
	fs = mount_or_fail(specs, fx.n, "h1");
	check_files(fs, "rebuilt");
	ck_assert_int_eq(crp_fs_unmount(fs), 0);

	/* The old list still mounts: the labels name the replacement. */
	fs = mount_or_fail(old, fx.n, "h1");
	check_files(fs, "old member list");
	ck_assert_int_eq(crp_fs_unmount(fs), 0);
	if (crp_fsfix_remove(&fx) != 0)
		fprintf(stderr, "cannot remove %s\n", fx.dir);
}

START_TEST(raid5_one_missing)
{
	run_case(5, 4, 1);
}
END_TEST

START_TEST(raid6_two_missing)
{
	run_case(6, 6, 2);
}
END_TEST

static Suite *degraded_suite(void)
{
	Suite *s = suite_create("degraded");
	TCase *t = tcase_create("members");

	tcase_set_timeout(t, 900);
	tcase_add_test(t, raid5_one_missing);
	tcase_add_test(t, raid6_two_missing);
	suite_add_tcase(s, t);
	return s;
}

int main(void)
{
	SRunner *sr = srunner_create(degraded_suite());
	int failed;

	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
