/*
 * Scrub, on file: members, RAID-5 and RAID-6.  Files and a directory are
 * written and the filesystem unmounted; then one member is damaged in
 * four stripes: a data block, a directory bucket, an inode-table block,
 * a parity chunk (all four on the same member).  A scrub without --repair reports each kind, names the
 * member of each bad column and changes nothing (the member images are
 * equal outside the labels and stripe 0, where the scrub's own record
 * goes); with --repair each is rewritten, a second scrub is clean, fsck
 * is clean and every file reads back identical.  A data block and its
 * parity wrong the same way is reported unrecoverable and left alone.
 * With a member missing, stripes count as degraded (parity not checked)
 * and a bad data block on a member that is there is still found
 * (RAID-6 still puts it right).  A block a member cannot read (MEDIUM
 * ERROR) is rebuilt and rewritten.  And no false alarm: pass after pass
 * over an array another host keeps writing (copy-on-write overwrites,
 * fallocated ranges written in place, truncates, unlinks) finds nothing.
 * The scrub record: status calls a live one "scrubbing", a stopped one
 * (no checkpoint for a minute) not, and a second scrub is refused only
 * while the first lives.
 */
#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define XXH_INLINE_ALL
#include <xxhash.h>

#include "crpfs/cluster.h"
#include "crpfs/err.h"
#include "crpfs/fs.h"
#include "crpfs/meta.h"
#include "crpfs/parity.h"
#include "crpfs/scrub.h"
#include "crpfs/status.h"
#include "crpfs/util.h"
#include "fixture/fsfix.h"

#define MEMBER_SIZE (96ull << 20)
#define CHUNK 65536u
#define NFILES 10
#define NENTRIES 60

static struct crp_fsfix fx;
static const struct crp_cred root_cred = { 0, 0, 022 };
static size_t sizes[NFILES];
static uint64_t sums[NFILES];
static uint64_t inos[NFILES];
static uint64_t dir_ino;
#define NDIRS 16
static uint64_t small_dirs[NDIRS];

static void fill(uint8_t *b, size_t len, unsigned seed)
{
	for (size_t i = 0; i < len; i++)
		b[i] = (uint8_t)((i * 131 + seed * 7) ^ (i >> 11) ^ (i >> 3));
}

static struct crp_fs *mount_or_fail(const char *const *specs, int n)
{
	struct crp_fs_opts o = { .host = "h1", .heartbeat_ms = 200, .dead_timeout_ms = 2000 };
	struct crp_fs *fs;
	char err[512];
	int r = crp_fs_mount(specs, n, &o, &fs, err, sizeof(err));

	ck_assert_msg(r == 0, "mount: %s (%s)", err, crp_strerror(r));
	return fs;
}

static uint64_t lookup(struct crp_fs *fs, uint64_t parent, const char *name)
{
	struct crp_attr a;

	if (crp_fs_lookup(fs, parent, name, &a))
		return 0;
	crp_fs_forget(fs, a.ino, 1);
	return a.ino;
}

static void write_file(struct crp_fs *fs, uint64_t parent, const char *name, size_t size,
		       unsigned seed, uint64_t *sum, uint64_t *ino)
{
	struct crp_attr a;
	uint64_t fh;
	uint8_t *buf = malloc(size + 1);

	fill(buf, size, seed);
	ck_assert_int_eq(crp_fs_create(fs, parent, name, 0644, O_RDWR, &root_cred, &a, &fh), 0);
	ck_assert_int_eq(crp_fs_write(fs, a.ino, fh, 0, buf, size), (ssize_t)size);
	ck_assert_int_eq(crp_fs_release(fs, a.ino, fh), 0);
	crp_fs_forget(fs, a.ino, 1);
	if (sum)
		*sum = XXH3_64bits(buf, size);
	if (ino)
		*ino = a.ino;
	free(buf);
}

/* Format, write NFILES files and a directory of NENTRIES, unmount. */
static void setup(int level, int members)
{
	const struct crp_fsfix_params p = { .name = "scrub", .members = members,
					    .member_size = MEMBER_SIZE, .level = level,
					    .chunk = CHUNK, .max_hosts = 4, .label = "scrub" };
	struct crp_attr a;
	struct crp_fs *fs;

	crp_fsfix_format(&fx, &p);
	fs = mount_or_fail(fx.specs, fx.n);
	for (int i = 0; i < NFILES; i++) {
		char name[16];

		sizes[i] = (size_t)(i + 1) * 37000 + 4096 * (size_t)i * i;
		snprintf(name, sizeof(name), "f%d", i);
		write_file(fs, CRP_ROOT_INO, name, sizes[i], (unsigned)i, &sums[i], &inos[i]);
	}
	/* Small directories, each after a chunk's worth of data or more (of
	 * sizes that differ, as the allocator fills the gaps that stripe
	 * aligned runs leave), so that their first buckets lie on different
	 * members. */
	for (int i = 0; i < NDIRS; i++) {
		char name[16];

		snprintf(name, sizeof(name), "s%d", i);
		ck_assert_int_eq(crp_fs_mkdir(fs, CRP_ROOT_INO, name, 0755, &root_cred, &a), 0);
		small_dirs[i] = a.ino;
		crp_fs_forget(fs, a.ino, 1);
		write_file(fs, small_dirs[i], "e", 100, (unsigned)i, NULL, NULL);
		snprintf(name, sizeof(name), "pad%d", i);
		write_file(fs, CRP_ROOT_INO, name, CHUNK + 4096 * (size_t)(1 + 5 * i), (unsigned)i, NULL,
			   NULL);
	}
	ck_assert_int_eq(crp_fs_mkdir(fs, CRP_ROOT_INO, "d", 0755, &root_cred, &a), 0);
	dir_ino = a.ino;
	crp_fs_forget(fs, a.ino, 1);
	for (int i = 0; i < NENTRIES; i++) {
		char name[32];

		snprintf(name, sizeof(name), "entry-with-a-long-name-%d", i);
		write_file(fs, dir_ino, name, 100, (unsigned)i + 50, NULL, NULL);
	}
	ck_assert_int_eq(crp_fs_unmount(fs), 0);
}

static void check_files(const char *const *specs, const char *when)
{
	struct crp_fs *fs = mount_or_fail(specs, fx.n);

	for (int i = 0; i < NFILES; i++) {
		char name[16];
		uint8_t *buf = malloc(sizes[i] + 1);
		uint64_t ino, fh;

		snprintf(name, sizeof(name), "f%d", i);
		ino = lookup(fs, CRP_ROOT_INO, name);
		ck_assert_msg(ino, "%s: f%d is missing", when, i);
		ck_assert_int_eq(crp_fs_open(fs, ino, O_RDONLY, &fh), 0);
		ck_assert_msg(crp_fs_read(fs, ino, fh, 0, buf, sizes[i]) == (ssize_t)sizes[i],
			      "%s: f%d reads short", when, i);
		ck_assert_msg(XXH3_64bits(buf, sizes[i]) == sums[i], "%s: f%d differs", when, i);
		ck_assert_int_eq(crp_fs_release(fs, ino, fh), 0);
		free(buf);
	}
	for (int i = 0; i < NENTRIES; i++) {
		char name[32];

		snprintf(name, sizeof(name), "entry-with-a-long-name-%d", i);
		ck_assert_msg(lookup(fs, dir_ino, name), "%s: d/%s is missing", when, name);
	}
	ck_assert_int_eq(crp_fs_unmount(fs), 0);
}

static struct crp_meta *admin_open(const char *const *specs)
{
	struct crp_meta_opts mo = { .host = "scrubber", .claim_slot = true, .replay = true };
	struct crp_meta *m;
	char err[512];
	int r = crp_meta_open(specs, fx.n, &mo, &m, err, sizeof(err));

	ck_assert_msg(r == 0, "admin open: %s", err);
	return m;
}

/* As the crpfs tool opens it: no replay of its own (a journal waiting
 * there is the mounted hosts' to recover, or the lock holder's to redo). */
static struct crp_meta *tool_open(const char *const *specs)
{
	struct crp_meta_opts mo = { .host = "scrubber", .claim_slot = true };
	struct crp_meta *m;
	char err[512];
	int r = crp_meta_open(specs, fx.n, &mo, &m, err, sizeof(err));

	ck_assert_msg(r == 0, "tool open: %s", err);
	return m;
}

static void say_msg(void *ctx, const char *msg)
{
	(void)ctx;
	fprintf(stderr, "  scrub: %s\n", msg);
}

static int scrub(struct crp_meta *m, bool repair, struct crp_scrub_counts *c)
{
	struct crp_scrub_opts o = { .repair = repair, .say = say_msg };

	fprintf(stderr, "scrub%s:\n", repair ? " --repair" : "");
	return crp_meta_scrub(m, &o, c, NULL);
}

static int fsck(const char *const *specs)
{
	struct crp_fsck_opts o = { .host = "fsckhost", .say = say_msg };
	struct crp_fsck_result res;
	char err[256];
	int r = crp_fsck_run(specs, fx.n, &o, &res, err, sizeof(err));

	if (r < 0)
		fprintf(stderr, "fsck: %s\n", err);
	return r;
}

static const char *path_of(int m)
{
	return fx.specs[m] + strlen("file:");
}

/* The member images past the labels and stripe 0 (the scrub's own record
 * goes to the labels and the shared state block). */
static uint64_t image_sum(int m, uint64_t from)
{
	FILE *f = fopen(path_of(m), "rb");
	XXH3_state_t st;
	uint8_t buf[1 << 16];
	size_t n;

	ck_assert_ptr_nonnull(f);
	ck_assert_int_eq(fseeko(f, (off_t)from, SEEK_SET), 0);
	XXH3_64bits_reset(&st);
	while ((n = fread(buf, 1, sizeof(buf), f)) > 0)
		XXH3_64bits_update(&st, buf, n);
	fclose(f);
	return XXH3_64bits_digest(&st);
}

static void image_sums(const struct crp_geom *g, uint64_t *out)
{
	for (int i = 0; i < fx.n; i++)
		out[i] = image_sum(i, g->data_offset + g->chunk);
}

/* XOR @len bytes of @x into member @m at byte @off. */
static void xor_member(int m, uint64_t off, const uint8_t *x, size_t len)
{
	uint8_t buf[512];
	int fd = open(path_of(m), O_RDWR);

	ck_assert_int_ge(fd, 0);
	ck_assert(len <= sizeof(buf));
	ck_assert_int_eq(pread(fd, buf, len, (off_t)off), (ssize_t)len);
	for (size_t i = 0; i < len; i++)
		buf[i] ^= x[i];
	ck_assert_int_eq(pwrite(fd, buf, len, (off_t)off), (ssize_t)len);
	close(fd);
}

static const uint8_t delta[32] = { 0xa5, 0x5a, 0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07, 0x08, 0x09,
				   0x0a, 0x0b, 0x0c, 0x0d, 0x0e, 0x0f, 0x10, 0x11, 0x12, 0x13, 0x14,
				   0x15, 0x16, 0x17, 0x18, 0x19, 0x1a, 0x1b, 0x1c, 0x1d, 0xff };

/* Damage array block @blk at byte @at of it, on the member holding it. */
static struct crp_loc damage_block(const struct crp_geom *g, uint64_t blk, uint32_t at)
{
	struct crp_loc loc;

	ck_assert_int_eq(crp_geom_map(g, blk * CRP_BLOCK + at, &loc), 0);
	xor_member(loc.member, loc.member_off, delta, sizeof(delta));
	return loc;
}

static uint64_t stripe_of(const struct crp_geom *g, uint64_t blk)
{
	struct crp_loc loc;

	crp_geom_map(g, blk * CRP_BLOCK, &loc);
	return loc.stripe;
}

static uint64_t first_block(struct crp_meta *m, uint64_t ino)
{
	struct crp_inode in;

	ck_assert_int_eq(crp_meta_iread(m, ino, &in), 0);
	ck_assert_uint_gt(in.nextents, 0);
	return in.ext[0].pblk;
}

static bool taken(const uint64_t *st, int n, uint64_t s)
{
	for (int i = 0; i < n; i++)
		if (st[i] == s)
			return true;
	return false;
}

static int member_of(const struct crp_geom *g, uint64_t blk)
{
	struct crp_loc loc;

	crp_geom_map(g, blk * CRP_BLOCK, &loc);
	return loc.member;
}

/* A block of the files f0.. on member @target, in a stripe none of @st
 * uses; with @parity, one in a stripe whose P lies on @target. */
static uint64_t file_block_on(struct crp_meta *m, int target, const uint64_t *st, int n,
			      bool parity)
{
	for (int i = 0; i < NFILES; i++) {
		struct crp_inode in;

		ck_assert_int_eq(crp_meta_iread(m, inos[i], &in), 0);
		for (uint32_t e = 0; e < in.nextents && e < CRP_INLINE_EXTENTS; e++)
			for (uint32_t k = 0; k < in.ext[e].len; k++) {
				uint64_t b = in.ext[e].pblk + k, s = stripe_of(&m->geom, b);
				int p, q, at = member_of(&m->geom, b);

				crp_geom_parity(&m->geom, s, &p, &q);
				if (taken(st, n, s) || (parity ? p : at) != target)
					continue;
				return b;
			}
	}
	ck_abort_msg("no file block on member %d apart from the stripes already chosen", target);
	return 0;
}
static uint64_t sum_columns(const struct crp_scrub_counts *c)
{
	uint64_t n = 0;

	for (int i = 0; i < CRP_MAX_MEMBERS; i++)
		n += c->bad_columns[i];
	return n;
}

static void run_repair(int level, int members)
{
	struct crp_scrub_counts c;
	struct crp_meta *m;
	uint64_t st[4], before[CRP_FSFIX_MAX_MEMBERS], after[CRP_FSFIX_MAX_MEMBERS];
	uint64_t blk_data, blk_dir, blk_itab = 0, blk_par;
	struct crp_geom g;
	int target = -1, fi;

	setup(level, members);
	m = admin_open(fx.specs);
	g = m->geom;
	/* Four stripes, one damage each, all on one member: the member that
	 * holds the inode-table block of a file f<fi> and the first bucket of
	 * one of the small directories (where the allocator put them). */
	blk_dir = 0;
	for (fi = 0; fi < NFILES && !blk_dir; fi++) {
		blk_itab = m->sb.itable_start + inos[fi] / CRP_INODES_PER_BLOCK;
		target = member_of(&g, blk_itab);
		st[0] = stripe_of(&g, blk_itab);
		for (int i = 0; i < NDIRS && !blk_dir; i++) {
			uint64_t b = first_block(m, small_dirs[i]);

			if (member_of(&g, b) == target && !taken(st, 1, stripe_of(&g, b)))
				blk_dir = b;
		}
	}
	fi--;
	ck_assert_msg(blk_dir, "no directory bucket on the member of any file's inode block");
	st[1] = stripe_of(&g, blk_dir);
	blk_data = file_block_on(m, target, st, 2, false);
	st[2] = stripe_of(&g, blk_data);
	blk_par = file_block_on(m, target, st, 3, true);
	st[3] = stripe_of(&g, blk_par);
	for (int i = 0; i < 4; i++)
		ck_assert_uint_gt(st[i], 0); /* stripe 0 holds the scrub's own record */
	ck_assert_int_eq(crp_meta_close(m), 0);

	ck_assert_int_eq(damage_block(&g, blk_dir, 300).member, target); /* a bucket's entries */
	ck_assert_int_eq(damage_block(&g, blk_itab, (inos[fi] % CRP_INODES_PER_BLOCK) *
					  CRP_INODE_SIZE + 100).member, target); /* an inode */
	ck_assert_int_eq(damage_block(&g, blk_data, 200).member, target); /* file data */
	{
		/* The P chunk of the row that holds blk_par. */
		struct crp_loc loc;
		int p, q;

		crp_geom_map(&g, blk_par * CRP_BLOCK + 500, &loc);
		crp_geom_parity(&g, loc.stripe, &p, &q);
		ck_assert_int_eq(p, target);
		xor_member(p, crp_geom_member_off(&g, loc.stripe, loc.chunk_off), delta,
			   sizeof(delta));
	}

	/* Without --repair: each kind reported, nothing changed. */
	m = admin_open(fx.specs);
	image_sums(&g, before);
	ck_assert_int_eq(scrub(m, false, &c), 0);
	image_sums(&g, after);
	for (int i = 0; i < fx.n; i++)
		ck_assert_msg(before[i] == after[i], "member %d changed by a scrub without --repair",
			      i);
	ck_assert_uint_eq(c.problem_stripes, 4);
	ck_assert_uint_eq(c.data_errors, 1);
	ck_assert_uint_eq(c.meta_errors, 2);
	ck_assert_uint_eq(c.parity_p, 4);
	ck_assert_uint_eq(c.parity_q, level == 6 ? 3 : 0);
	ck_assert_uint_eq(c.unrecoverable, 0);
	ck_assert_uint_eq(c.repaired, 0);
	ck_assert_uint_eq(c.syndrome_disagree, 0);
	ck_assert_uint_eq(sum_columns(&c), 4);
	ck_assert_uint_eq(c.bad_columns[target], 4);
	ck_assert_uint_eq(c.stripes_in_use, c.stripes_checked);
	ck_assert_uint_eq(c.stripes_degraded, 0);
	ck_assert_uint_eq(c.stripes_in_use + c.stripes_free, c.stripes_total);
	ck_assert_uint_gt(c.stripes_free, 0);
	ck_assert_uint_gt(c.blocks_checked, 0);

	/* With --repair: each put right, and the next scrub is clean. */
	ck_assert_int_eq(scrub(m, true, &c), 0);
	ck_assert_uint_eq(c.problem_stripes, 4);
	ck_assert_uint_eq(c.data_errors, 1);
	ck_assert_uint_eq(c.meta_errors, 2);
	ck_assert_uint_eq(c.repaired_stripes, 4);
	ck_assert_uint_eq(c.repaired, 4);
	ck_assert_uint_eq(c.unrecoverable, 0);
	ck_assert_int_eq(scrub(m, false, &c), 0);
	ck_assert_uint_eq(c.problem_stripes, 0);
	ck_assert_uint_eq(c.parity_p + c.parity_q + c.data_errors + c.meta_errors, 0);
	/* Cleared at the end: no scrub recorded. */
	ck_assert_int_eq(crp_meta_members_reload(m), 0);
	ck_assert_str_eq(m->mt.scrubber, "");
	ck_assert_int_eq(crp_meta_close(m), 0);

	ck_assert_int_eq(fsck(fx.specs), CRP_FSCK_OK);
	check_files(fx.specs, "after the repair");
	if (crp_fsfix_remove(&fx) != 0)
		fprintf(stderr, "cannot remove %s\n", fx.dir);
}

START_TEST(raid5_repair)
{
	run_repair(5, 4);
}
END_TEST

START_TEST(raid6_repair)
{
	run_repair(6, 6);
}
END_TEST

/* A data block and its parity wrong the same way: unrecoverable. */
static void run_unrecoverable(int level, int members)
{
	struct crp_scrub_counts c;
	struct crp_meta *m;
	uint64_t before[CRP_FSFIX_MAX_MEMBERS], after[CRP_FSFIX_MAX_MEMBERS], blk;
	struct crp_loc loc;
	struct crp_geom g;
	int p, q;

	setup(level, members);
	m = admin_open(fx.specs);
	g = m->geom;
	blk = first_block(m, inos[4]) + 2;
	ck_assert_int_eq(crp_meta_close(m), 0);
	loc = damage_block(&g, blk, 200);
	crp_geom_parity(&g, loc.stripe, &p, &q);
	/* Every member holds stripe s's row at the same byte. */
	xor_member(p, loc.member_off, delta, sizeof(delta));
	if (q >= 0) {
		uint8_t qd[sizeof(delta)];

		for (size_t i = 0; i < sizeof(delta); i++)
			qd[i] = crp_gf_mul(crp_gf_exp2(loc.didx), delta[i]);
		xor_member(q, loc.member_off, qd, sizeof(qd));
	}

	m = admin_open(fx.specs);
	image_sums(&g, before);
	ck_assert_int_eq(scrub(m, true, &c), 0);
	image_sums(&g, after);
	for (int i = 0; i < fx.n; i++)
		ck_assert_msg(before[i] == after[i], "member %d rewritten with a guess", i);
	ck_assert_uint_eq(c.problem_stripes, 1);
	ck_assert_uint_eq(c.data_errors, 1);
	ck_assert_uint_eq(c.parity_p + c.parity_q, 0);
	ck_assert_uint_eq(c.unrecoverable, 1);
	ck_assert_uint_eq(c.repaired, 0);
	ck_assert_uint_eq(sum_columns(&c), 0);
	ck_assert_int_eq(crp_meta_close(m), 0);
	if (crp_fsfix_remove(&fx) != 0)
		fprintf(stderr, "cannot remove %s\n", fx.dir);
}

START_TEST(raid5_unrecoverable)
{
	run_unrecoverable(5, 4);
}
END_TEST

START_TEST(raid6_unrecoverable)
{
	run_unrecoverable(6, 6);
}
END_TEST

/* A member missing: degraded stripes, readable blocks still judged. */
static void run_degraded(int level, int members)
{
	const char *specs[CRP_FSFIX_MAX_MEMBERS];
	struct crp_scrub_counts c;
	struct crp_meta *m;
	struct crp_loc loc;
	struct crp_geom g;
	uint64_t blk;

	setup(level, members);
	m = admin_open(fx.specs);
	g = m->geom;
	blk = first_block(m, inos[6]) + 1;
	ck_assert_int_eq(crp_meta_close(m), 0);
	loc = damage_block(&g, blk, 64);
	for (int i = 0; i < fx.n; i++)
		specs[i] = fx.specs[i];
	specs[(loc.member + 1) % fx.n] = "missing";

	m = admin_open(specs);
	ck_assert_int_eq(scrub(m, true, &c), 0);
	ck_assert_uint_eq(c.stripes_checked, 0);
	ck_assert_uint_gt(c.stripes_degraded, 0);
	ck_assert_uint_eq(c.stripes_in_use, c.stripes_degraded);
	ck_assert_uint_eq(c.parity_p + c.parity_q, 0);
	ck_assert_uint_eq(c.data_errors, 1);
	if (level == 6) {
		/* One member still to spare: the bad chunk is rebuilt. */
		ck_assert_uint_eq(c.repaired_stripes, 1);
		ck_assert_uint_eq(c.bad_columns[loc.member], 1);
		ck_assert_uint_eq(c.unrecoverable, 0);
		ck_assert_int_eq(scrub(m, false, &c), 0);
		ck_assert_uint_eq(c.problem_stripes, 0);
	} else {
		ck_assert_uint_eq(c.unrecoverable, 1);
		ck_assert_uint_eq(c.repaired, 0);
	}
	ck_assert_int_eq(crp_meta_close(m), 0);
	if (crp_fsfix_remove(&fx) != 0)
		fprintf(stderr, "cannot remove %s\n", fx.dir);
}

START_TEST(raid5_degraded)
{
	run_degraded(5, 4);
}
END_TEST

START_TEST(raid6_degraded)
{
	run_degraded(6, 6);
}
END_TEST

/* A block a member cannot read: rebuilt from parity and rewritten. */
START_TEST(raid5_medium_error)
{
	struct crp_scrub_counts c;
	struct crp_meta *m;
	struct crp_loc loc;
	struct crp_faults fl;
	char err[256];
	uint64_t blk;

	setup(5, 4);
	m = admin_open(fx.specs);
	blk = first_block(m, inos[7]) + 3;
	crp_geom_map(&m->geom, blk * CRP_BLOCK, &loc);
	ck_assert_int_eq(crp_file_fault_medium(path_of(loc.member), 0, loc.member_off / 512, 8,
					       err, sizeof(err)), 0);
	ck_assert_int_eq(scrub(m, false, &c), 0);
	ck_assert_uint_eq(c.read_errors, 1);
	ck_assert_uint_eq(c.bad_columns[loc.member], 1);
	ck_assert_uint_eq(c.repaired, 0);
	ck_assert_uint_eq(c.stripes_degraded, 0); /* a bad block is not a member out */
	ck_assert_int_eq(scrub(m, true, &c), 0);
	ck_assert_uint_eq(c.read_errors, 1);
	ck_assert_uint_eq(c.repaired_stripes, 1);
	ck_assert_int_eq(crp_file_fault_list(path_of(loc.member), 0, &fl, err, sizeof(err)), 0);
	ck_assert_int_eq(fl.nbad, 0); /* the write remapped it */
	ck_assert_int_eq(scrub(m, false, &c), 0);
	ck_assert_uint_eq(c.problem_stripes, 0);
	ck_assert_int_eq(crp_meta_close(m), 0);
	check_files(fx.specs, "after the medium error");
	if (crp_fsfix_remove(&fx) != 0)
		fprintf(stderr, "cannot remove %s\n", fx.dir);
}
END_TEST

/* ---- no false alarm while another host writes ---- */

struct writer {
	struct crp_fs *fs;
	atomic_bool stop;
	uint64_t ops;
	int failed;
};

static void *write_loop(void *arg)
{
	struct writer *w = arg;
	uint8_t *buf = malloc(1 << 17);

	while (!atomic_load(&w->stop) && buf) {
		uint64_t n = w->ops++, fh, off = (n * 40961) % (1u << 20);
		char name[16];
		struct crp_attr a;
		int r;

		snprintf(name, sizeof(name), "w%llu", (unsigned long long)(n % 6));
		fill(buf, 1 << 17, (unsigned)n);
		r = crp_fs_create(w->fs, CRP_ROOT_INO, name, 0644, O_RDWR, &root_cred, &a, &fh);
		if (r == -EEXIST || r == 0) {
			if (r == -EEXIST) {
				a.ino = lookup(w->fs, CRP_ROOT_INO, name);
				r = a.ino ? crp_fs_open(w->fs, a.ino, O_RDWR, &fh) : -ENOENT;
			} else {
				crp_fs_forget(w->fs, a.ino, 1);
			}
		}
		if (r) {
			w->failed = r;
			break;
		}
		/* Overwrites (copy-on-write), fallocated ranges written in place,
		 * truncation and unlinking: blocks allocated and freed all along. */
		if (crp_fs_write(w->fs, a.ino, fh, off, buf, 1 << 16) != 1 << 16)
			w->failed = -EIO;
		if (n % 3 == 0 &&
		    (crp_fs_fallocate(w->fs, a.ino, 0, off + (1 << 17), 1 << 18) != 0 ||
		     crp_fs_write(w->fs, a.ino, fh, off + (1 << 17) + 8192, buf, 8192) != 8192))
			w->failed = -EIO;
		if (n % 5 == 0 &&
		    crp_fs_setattr(w->fs, a.ino, &(struct crp_attr){ .size = off / 2 }, CRP_SET_SIZE,
				   &root_cred, &a) != 0)
			w->failed = -EIO;
		crp_fs_release(w->fs, a.ino, fh);
		if (n % 7 == 0)
			crp_fs_unlink(w->fs, CRP_ROOT_INO, name, &root_cred);
		if (w->failed)
			break;
	}
	free(buf);
	return NULL;
}

static void run_writers(int level, int members)
{
	struct writer w = { .stop = false };
	struct crp_admin *ad;
	struct crp_scrub_counts c;
	pthread_t th;
	char err[512];
	uint64_t t0, passes = 0, rechecked = 0;
	int r;

	setup(level, members);
	w.fs = mount_or_fail(fx.specs, fx.n);
	r = crp_admin_open(fx.specs, fx.n, "scrubber.admin", 0, &ad, err, sizeof(err));
	ck_assert_msg(r == 0, "admin open: %s", err);
	ck_assert_int_eq(pthread_create(&th, NULL, write_loop, &w), 0);
	t0 = crp_now_ns();
	while (crp_now_ns() - t0 < 6000000000ull || passes < 3) {
		ck_assert_int_eq(scrub(crp_admin_meta(ad), false, &c), 0);
		ck_assert_msg(c.problem_stripes == 0,
			      "pass %llu: %llu stripes reported while another host writes "
			      "(P %llu, Q %llu, data %llu, metadata %llu)",
			      (unsigned long long)passes, (unsigned long long)c.problem_stripes,
			      (unsigned long long)c.parity_p, (unsigned long long)c.parity_q,
			      (unsigned long long)c.data_errors, (unsigned long long)c.meta_errors);
		ck_assert_uint_gt(c.stripes_checked, 0);
		rechecked += c.rechecked_clean;
		passes++;
	}
	atomic_store(&w.stop, true);
	pthread_join(th, NULL);
	fprintf(stderr, "%llu scrub passes over %llu writer operations; %llu stripes checked "
		"out only under the metadata lock\n", (unsigned long long)passes,
		(unsigned long long)w.ops, (unsigned long long)rechecked);
	ck_assert_int_eq(w.failed, 0);
	ck_assert_uint_gt(w.ops, passes);
	ck_assert_int_eq(crp_admin_close(ad), 0);
	ck_assert_int_eq(crp_fs_unmount(w.fs), 0);
	ck_assert_int_eq(fsck(fx.specs), CRP_FSCK_OK);
	check_files(fx.specs, "after scrubbing under a writer");
	if (crp_fsfix_remove(&fx) != 0)
		fprintf(stderr, "cannot remove %s\n", fx.dir);
}

START_TEST(raid5_writers)
{
	run_writers(5, 4);
}
END_TEST

START_TEST(raid6_writers)
{
	run_writers(6, 5);
}
END_TEST

/*
 * A host that died half way through writing a transaction in place: the
 * bitmap says a reused block is allocated, its checksum-table block is
 * still the old one (whose entry is the checksum of the block's earlier
 * data), and the shared state block says PENDING.  The first look sees a
 * block failing its checksum; judged again under the metadata lock (which
 * redoes the transaction first) it checks out: nothing is reported.
 */
START_TEST(raid5_half_written_transaction)
{
	struct crp_scrub_counts c;
	struct crp_meta *h2, *m;
	struct crp_shared *sh = calloc(1, sizeof(*sh));
	uint8_t *old_csum = crp_alloc_buf(CRP_BLOCK), *blk = crp_alloc_buf(CRP_BLOCK);
	uint64_t freed, start, csum_blk;
	uint32_t got, g, i;
	struct crp_fs *fs;
	char err[256];

	setup(5, 4);
	/* A file's blocks freed: their checksum entries stay as they were. */
	m = admin_open(fx.specs);
	freed = first_block(m, inos[9]);
	ck_assert_int_eq(crp_meta_close(m), 0);
	fs = mount_or_fail(fx.specs, fx.n);
	ck_assert_int_eq(crp_fs_unlink(fs, CRP_ROOT_INO, "f9", &root_cred), 0);
	ck_assert_int_eq(crp_fs_unmount(fs), 0);

	{
		struct crp_meta_opts mo = { .host = "h2", .claim_slot = true, .replay = true };

		ck_assert_int_eq(crp_meta_open(fx.specs, fx.n, &mo, &h2, err, sizeof(err)), 0);
	}
	g = (uint32_t)((freed - h2->sb.ag_start) / h2->sb.ag_blocks);
	i = (uint32_t)((freed - h2->sb.ag_start) % h2->sb.ag_blocks);
	csum_blk = h2->sb.ag_start + (uint64_t)g * h2->sb.ag_blocks + 1 + i / CRP_CSUMS_PER_BLOCK;
	ck_assert_int_eq(crp_array_read(h2->a, csum_blk * CRP_BLOCK, old_csum, CRP_BLOCK), 0);
	ck_assert_uint_ne(crp_get_le64(old_csum + CRP_HDR_SIZE + 8 * (i % CRP_CSUMS_PER_BLOCK)), 0);

	/* h2 reuses the block for new data and commits. */
	ck_assert_int_eq(crp_meta_tx_begin(h2), 0);
	ck_assert_int_eq(crp_meta_alloc(h2, freed, 1, &start, &got), 0);
	ck_assert_uint_eq(start, freed);
	fill(blk, CRP_BLOCK, 999);
	ck_assert_int_eq(crp_meta_data_write(h2, start, 1, blk), 0);
	ck_assert_int_eq(crp_meta_tx_end(h2), 0);
	/* ... and is made to have died before its checksum block was in
	 * place: the old one back, the shared state block PENDING. */
	ck_assert_int_eq(crp_array_write(h2->a, csum_blk * CRP_BLOCK, old_csum, CRP_BLOCK), 0);
	ck_assert_int_eq(crp_array_read(h2->a, (uint64_t)CRP_SHARED_BLKNO * CRP_BLOCK, blk,
					CRP_BLOCK), 0);
	ck_assert_int_eq(crp_shared_in(blk, h2->fsid, sh, err, sizeof(err)), 0);
	sh->flags |= CRP_SHARED_PENDING;
	crp_shared_out(sh, h2->fsid, blk);
	ck_assert_int_eq(crp_array_write(h2->a, (uint64_t)CRP_SHARED_BLKNO * CRP_BLOCK, blk,
					 CRP_BLOCK), 0);

	m = tool_open(fx.specs);
	ck_assert_int_eq(scrub(m, false, &c), 0);
	ck_assert_uint_ge(c.rechecked_clean, 1);
	ck_assert_uint_eq(c.problem_stripes, 0);
	/* The transaction was redone on the way: in place, not pending. */
	ck_assert_int_eq(crp_array_read(m->a, (uint64_t)CRP_SHARED_BLKNO * CRP_BLOCK, blk,
					CRP_BLOCK), 0);
	ck_assert_int_eq(crp_shared_in(blk, m->fsid, sh, err, sizeof(err)), 0);
	ck_assert_uint_eq(sh->flags & CRP_SHARED_PENDING, 0);
	ck_assert_int_eq(scrub(m, false, &c), 0);
	ck_assert_uint_eq(c.rechecked_clean + c.problem_stripes, 0);
	/* The block h2 took is referenced by nothing: give it back. */
	ck_assert_int_eq(crp_meta_tx_begin(m), 0);
	ck_assert_int_eq(crp_meta_free(m, start, 1, false), 0);
	ck_assert_int_eq(crp_meta_tx_end(m), 0);
	ck_assert_int_eq(crp_meta_close(m), 0);
	h2->ro = true; /* it "died": leave the disks as they are */
	crp_meta_close(h2);
	ck_assert_int_eq(fsck(fx.specs), CRP_FSCK_OK);
	free(sh);
	free(old_csum);
	free(blk);
	if (crp_fsfix_remove(&fx) != 0)
		fprintf(stderr, "cannot remove %s\n", fx.dir);
}
END_TEST

/* ---- the record in the member table, as status reads it ---- */

static uint64_t ghost_ns;

static int ghost_fn(struct crp_meta *m, struct crp_label *l, void *ctx)
{
	(void)m;
	(void)ctx;
	snprintf(l->scrubber, sizeof(l->scrubber), "ghost.admin");
	l->scrub_ns = ghost_ns;
	l->scrub_start_ns = ghost_ns;
	l->scrub_stripe = 3;
	return 0;
}

static void status_of(struct crp_status *st)
{
	char err[256];

	ck_assert_int_eq(crp_status_read_watch(fx.specs, fx.n, "status", 0, st, err,
					       sizeof(err)), 0);
}

START_TEST(record_and_status)
{
	struct crp_status *st = calloc(1, sizeof(*st));
	struct crp_scrub_counts c;
	struct crp_meta *m;
	char busy[CRP_HOST_MAX] = "";

	setup(5, 3);
	m = admin_open(fx.specs);
	/* A scrub whose checkpoint is a minute old has stopped. */
	ghost_ns = crp_wall_ns() - 2 * CRP_SCRUB_STALE_NS;
	ck_assert_int_eq(crp_meta_members_update(m, ghost_fn, NULL), 0);
	status_of(st);
	ck_assert_str_eq(st->scrubber, "ghost.admin");
	ck_assert(!st->scrubbing);
	ck_assert_str_eq(st->array_state, "clean");
	/* A live one: the array is scrubbing, and a second scrub is refused. */
	ghost_ns = crp_wall_ns();
	ck_assert_int_eq(crp_meta_members_update(m, ghost_fn, NULL), 0);
	status_of(st);
	ck_assert(st->scrubbing);
	ck_assert_str_eq(st->array_state, "scrubbing");
	ck_assert_uint_eq(st->scrub_stripe, 3);
	ck_assert_int_eq(crp_meta_scrub(m, NULL, &c, busy), -EBUSY);
	ck_assert_str_eq(busy, "ghost.admin");
	/* A stopped one is taken over, and the record cleared at the end. */
	ghost_ns = crp_wall_ns() - 2 * CRP_SCRUB_STALE_NS;
	ck_assert_int_eq(crp_meta_members_update(m, ghost_fn, NULL), 0);
	ck_assert_int_eq(crp_meta_scrub(m, NULL, &c, busy), 0);
	ck_assert_uint_eq(c.problem_stripes, 0);
	status_of(st);
	ck_assert_str_eq(st->scrubber, "");
	ck_assert(!st->scrubbing);
	ck_assert_str_eq(st->array_state, "clean");
	ck_assert_int_eq(crp_meta_close(m), 0);
	free(st);
	if (crp_fsfix_remove(&fx) != 0)
		fprintf(stderr, "cannot remove %s\n", fx.dir);
}
END_TEST

static Suite *scrub_suite(void)
{
	Suite *s = suite_create("scrub");
	TCase *t = tcase_create("repair");
	TCase *u = tcase_create("unrecoverable");
	TCase *d = tcase_create("degraded");
	TCase *e = tcase_create("medium");
	TCase *w = tcase_create("writers");
	TCase *rc = tcase_create("record");

	tcase_set_timeout(t, 600);
	tcase_set_timeout(u, 600);
	tcase_set_timeout(d, 600);
	tcase_set_timeout(e, 600);
	tcase_add_test(t, raid5_repair);
	tcase_add_test(t, raid6_repair);
	tcase_add_test(u, raid5_unrecoverable);
	tcase_add_test(u, raid6_unrecoverable);
	tcase_add_test(d, raid5_degraded);
	tcase_add_test(d, raid6_degraded);
	tcase_add_test(e, raid5_medium_error);
	tcase_set_timeout(w, 600);
	tcase_add_test(w, raid5_writers);
	tcase_add_test(w, raid6_writers);
	tcase_add_test(w, raid5_half_written_transaction);
	suite_add_tcase(s, w);
	tcase_set_timeout(rc, 300);
	tcase_add_test(rc, record_and_status);
	suite_add_tcase(s, rc);
	suite_add_tcase(s, t);
	suite_add_tcase(s, u);
	suite_add_tcase(s, d);
	suite_add_tcase(s, e);
	return s;
}

int main(void)
{
	SRunner *sr = srunner_create(scrub_suite());
	int failed;

	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
