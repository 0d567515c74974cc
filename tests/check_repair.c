/*
 * Repair from parity, driven without FUSE on file: members: a block that
 * fails its checks -- all zeros included -- is rebuilt before it is called
 * damaged (RAID-6: two columns if need be), rewritten unless read-only,
 * and recorded; what parity cannot rebuild fails with EIO, never a wrong
 * answer; fsck --repair names the nameless in /lost+found instead of
 * freeing them, and gives up only what cannot be read, saying so.
 */
#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "crpfs/array.h"
#include "crpfs/err.h"
#include "crpfs/fs.h"
#include "crpfs/meta.h"
#include "crpfs/status.h"
#include "crpfs/util.h"
#include "../src/fs/fs_i.h"
#include "fixture/fsfix.h"

#define MEMBER_SIZE (64ull << 20)

static struct crp_fsfix fx;
static const struct crp_cred root_cred = { 0, 0, 022 };
static GString *said; /* what the last fsck said, one line each */

static void format(int level, int n)
{
	const struct crp_fsfix_params p = { .name = "repair", .members = n,
					    .member_size = MEMBER_SIZE, .level = level,
					    .chunk = 65536, .max_hosts = 2, .label = "repair" };

	crp_fsfix_format(&fx, &p);
}

static void rm_tree(void)
{
	if (crp_fsfix_remove(&fx) != 0)
		fprintf(stderr, "cannot remove %s\n", fx.dir);
}

static struct crp_fs *mount_fs(void)
{
	struct crp_fs_opts o = { .host = "repairhost" };
	struct crp_fs *fs;
	char err[512];
	int r = crp_fs_mount(fx.specs, fx.n, &o, &fs, err, sizeof(err));

	ck_assert_msg(r == 0, "mount: %s (%d)", err, r);
	return fs;
}

static struct crp_meta *open_ro(void)
{
	struct crp_meta_opts mo = { .host = "repairhost", .ro = true };
	struct crp_meta *m;
	char err[512];
	int r = crp_meta_open(fx.specs, fx.n, &mo, &m, err, sizeof(err));

	ck_assert_msg(r == 0, "open: %s (%d)", err, r);
	return m;
}

static void say_msg(void *ctx, const char *msg)
{
	(void)ctx;
	fprintf(stderr, "fsck: %s\n", msg);
	g_string_append_printf(said, "%s\n", msg);
}

static int fsck(bool repair, struct crp_fsck_result *res)
{
	struct crp_fsck_opts o = { .repair = repair, .host = "fsckhost", .say = say_msg };
	char err[512];
	int r;

	if (!said)
		said = g_string_new(NULL);
	g_string_truncate(said, 0);
	r = crp_fsck_run(fx.specs, fx.n, &o, res, err, sizeof(err));
	ck_assert_msg(r >= 0, "fsck: %s", err);
	return r;
}

static bool fsck_said(const char *what)
{
	return said && strstr(said->str, what);
}

static void fill(uint8_t *b, size_t len, unsigned seed)
{
	for (size_t i = 0; i < len; i++)
		b[i] = (uint8_t)(i * 13 + seed * 101 + (i >> 12));
}

static uint64_t create_file(struct crp_fs *fs, uint64_t parent, const char *name,
			    const void *data, size_t len)
{
	struct crp_attr a;
	uint64_t fh;

	ck_assert_int_eq(crp_fs_create(fs, parent, name, 0644, O_RDWR, &root_cred, &a, &fh), 0);
	if (len)
		ck_assert_int_eq(crp_fs_write(fs, a.ino, fh, 0, data, len), (ssize_t)len);
	ck_assert_int_eq(crp_fs_release(fs, a.ino, fh), 0);
	crp_fs_forget(fs, a.ino, 1);
	return a.ino;
}

static uint64_t make_dir(struct crp_fs *fs, uint64_t parent, const char *name)
{
	struct crp_attr a;

	ck_assert_int_eq(crp_fs_mkdir(fs, parent, name, 0755, &root_cred, &a), 0);
	crp_fs_forget(fs, a.ino, 1);
	return a.ino;
}

/* 0 if @name in @parent holds @want, else the error. */
static int check_file(struct crp_fs *fs, uint64_t parent, const char *name, const void *want,
		      size_t len)
{
	uint8_t *buf = malloc(len + 1);
	struct crp_attr a;
	uint64_t fh;
	ssize_t n;
	int r = crp_fs_lookup(fs, parent, name, &a);

	if (r) {
		free(buf);
		return r;
	}
	crp_fs_forget(fs, a.ino, 1);
	r = crp_fs_open(fs, a.ino, O_RDONLY, &fh);
	if (r) {
		free(buf);
		return r;
	}
	n = crp_fs_read(fs, a.ino, fh, 0, buf, len + 1);
	crp_fs_release(fs, a.ino, fh);
	r = n < 0 ? (int)n : (size_t)n != len || memcmp(buf, want, len) ? -EILSEQ : 0;
	free(buf);
	return r;
}

/* Where a block lives. */
struct where {
	uint64_t blkno;
	int member, pm, qm;
	uint64_t moff;
};

static struct where where_of(struct crp_meta *m, uint64_t blkno)
{
	struct where w = { .blkno = blkno };
	struct crp_loc loc;

	ck_assert_int_eq(crp_geom_map(&m->geom, blkno * CRP_BLOCK, &loc), 0);
	w.member = loc.member;
	w.moff = loc.member_off;
	crp_geom_parity(&m->geom, loc.stripe, &w.pm, &w.qm);
	return w;
}

/* The block of @fs's inode @ino: its first bucket (directory) or block
 * @lblk (file). */
static uint64_t file_block(struct crp_fs *fs, uint64_t ino, uint64_t lblk)
{
	struct crp_fs_inode *ip;
	uint64_t pblk, len;

	pthread_mutex_lock(&fs->mu);
	ck_assert_int_eq(crp_fs_iget(fs, ino, &ip), 0);
	ck_assert_int_eq(crp_fs_emap(ip, lblk, &pblk, &len, NULL), 1);
	pthread_mutex_unlock(&fs->mu);
	return pblk;
}

static int member_fd(int member)
{
	char path[256];
	int fd;

	snprintf(path, sizeof(path), "%s/m%d", fx.dir, member);
	fd = open(path, O_RDWR);
	ck_assert_int_ge(fd, 0);
	return fd;
}

static void member_rw(int member, uint64_t off, void *buf, size_t len, bool write)
{
	int fd = member_fd(member);

	if (write)
		ck_assert_int_eq(pwrite(fd, buf, len, (off_t)off), (ssize_t)len);
	else
		ck_assert_int_eq(pread(fd, buf, len, (off_t)off), (ssize_t)len);
	close(fd);
}

static void zero_at(int member, uint64_t off)
{
	static uint8_t zero[CRP_BLOCK];

	member_rw(member, off, zero, CRP_BLOCK, true);
}

static void flip_at(int member, uint64_t off)
{
	uint8_t b[16];

	member_rw(member, off, b, sizeof(b), false);
	for (unsigned i = 0; i < sizeof(b); i++)
		b[i] ^= 0xa5;
	member_rw(member, off, b, sizeof(b), true);
}

static bool member_holds(int member, uint64_t off, const uint8_t *want)
{
	uint8_t *b = malloc(CRP_BLOCK);
	bool same;

	member_rw(member, off, b, CRP_BLOCK, false);
	same = !memcmp(b, want, CRP_BLOCK);
	free(b);
	return same;
}

/* The last damage record of @m. */
static const struct crp_meta_damage *last_damage(struct crp_meta *m)
{
	ck_assert_ptr_nonnull(m->damage);
	ck_assert_uint_gt(m->damage->len, 0);
	return &g_array_index(m->damage, struct crp_meta_damage, m->damage->len - 1);
}

/* ---- the array: two columns from P and Q ---- */

START_TEST(raid6_two_columns)
{
	const int n = 6;
	struct crp_array_opts o = { .host = "check", .create = true, .create_size = 8ull << 20 };
	struct crp_array *a;
	struct crp_geom g;
	char err[512];
	uint64_t sbytes;
	uint8_t *data, *out, *zero;

	format(6, n); /* only for its directory and member files */
	ck_assert_int_eq(crp_array_open(fx.specs, n, &o, &a, err, sizeof(err)), 0);
	ck_assert_int_eq(crp_geom_init(&g, 6, n, 4096, 1 << 20, crp_array_min_member_size(a), err,
				       sizeof(err)), 0);
	ck_assert_int_eq(crp_array_set_geometry(a, &g), 0);
	sbytes = crp_geom_stripe_bytes(&g);
	data = crp_alloc_buf(sbytes);
	out = crp_alloc_buf(CRP_BLOCK);
	zero = crp_alloc_buf(CRP_BLOCK);
	memset(zero, 0, CRP_BLOCK);
	fill(data, sbytes, 7);
	ck_assert_int_eq(crp_array_write(a, 0, data, sbytes), 0);
	/* Every data column of stripe 0, with every other column zeroed too:
	 * data, P or Q. */
	for (uint64_t off = 0; off < sbytes; off += CRP_BLOCK) {
		struct crp_loc loc;

		crp_geom_map(&g, off, &loc);
		for (int j = 0; j < n; j++) {
			if (j == loc.member)
				continue;
			ck_assert_int_eq(crp_member_write(crp_array_member(a, loc.member),
							  loc.member_off, zero, CRP_BLOCK), 0);
			ck_assert_int_eq(crp_member_write(crp_array_member(a, j), loc.member_off,
							  zero, CRP_BLOCK), 0);
			ck_assert_int_eq(crp_array_verify_stripe(a, 0), -CRP_EPARITY);
			ck_assert_int_eq(crp_array_rebuild_range2(a, off, out, CRP_BLOCK, loc.member,
								  j, true), 0);
			ck_assert_msg(!memcmp(out, data + off, CRP_BLOCK),
				      "block at %llu without members %d and %d differs",
				      (unsigned long long)off, loc.member, j);
			/* Both columns written back: the stripe agrees again. */
			ck_assert_int_eq(crp_array_verify_stripe(a, 0), 0);
			ck_assert_int_eq(crp_array_read(a, off, out, CRP_BLOCK), 0);
			ck_assert_int_eq(memcmp(out, data + off, CRP_BLOCK), 0);
		}
	}
	/* One member alone is the plain rebuild. */
	{
		struct crp_loc loc;

		crp_geom_map(&g, 0, &loc);
		ck_assert_int_eq(crp_array_rebuild_range2(a, 0, out, CRP_BLOCK, loc.member, -1, false),
				 0);
		ck_assert_int_eq(memcmp(out, data, CRP_BLOCK), 0);
	}
	crp_array_close(a);
	free(data);
	free(out);
	free(zero);
	rm_tree();
}
END_TEST

/* ---- metadata blocks ---- */

/* A zeroed bitmap is rebuilt: read-only in memory only (recorded, the
 * member untouched), read-write written back. */
START_TEST(zeroed_bitmap_rebuilt)
{
	struct crp_fs *fs;
	struct crp_meta *m;
	struct where w;
	uint8_t *orig = malloc(CRP_BLOCK);
	struct crp_status st;
	char err[512];
	uint8_t data[10000];

	format(5, 4);
	fs = mount_fs();
	fill(data, sizeof(data), 1);
	create_file(fs, CRP_ROOT_INO, "f", data, sizeof(data));
	w = where_of(fs->m, crp_meta_ag_base(fs->m, 0));
	ck_assert_int_eq(crp_fs_unmount(fs), 0);
	member_rw(w.member, w.moff, orig, CRP_BLOCK, false);
	zero_at(w.member, w.moff);

	/* What failed every open before: status and a read-only open. */
	ck_assert_msg(crp_status_read_watch(fx.specs, fx.n, "repairhost", 0, &st, err,
					    sizeof(err)) == 0, "status: %s", err);
	m = open_ro();
	{
		const struct crp_meta_damage *d = last_damage(m);

		ck_assert_uint_eq(d->blkno, w.blkno);
		ck_assert(d->rebuilt && !d->repaired);
		ck_assert_int_eq(d->member, w.member);
		ck_assert_int_eq(d->member2, -1);
		ck_assert_msg(strstr(d->what, "block bitmap of group 0"), "what: %s", d->what);
		ck_assert_str_eq(d->why, "all zeros");
	}
	crp_meta_close(m);
	ck_assert(!member_holds(w.member, w.moff, orig));

	fs = mount_fs();
	ck_assert(member_holds(w.member, w.moff, orig));
	ck_assert_int_eq(check_file(fs, CRP_ROOT_INO, "f", data, sizeof(data)), 0);
	ck_assert_int_eq(crp_fs_unmount(fs), 0);
	free(orig);
	rm_tree();
}
END_TEST

/* A directory bucket zeroed, then one with bytes flipped: every name is
 * still found, and the block is written back. */
START_TEST(directory_bucket_rebuilt)
{
	struct crp_fs *fs;
	struct where w;
	uint8_t *orig = malloc(CRP_BLOCK);
	uint64_t d;
	char name[32];
	uint8_t data[100];

	format(5, 4);
	fs = mount_fs();
	d = make_dir(fs, CRP_ROOT_INO, "d");
	for (int i = 0; i < 60; i++) {
		snprintf(name, sizeof(name), "file-%d", i);
		fill(data, sizeof(data), (unsigned)i);
		create_file(fs, d, name, data, sizeof(data));
	}
	w = where_of(fs->m, file_block(fs, d, 0));
	ck_assert_int_eq(crp_fs_unmount(fs), 0);
	member_rw(w.member, w.moff, orig, CRP_BLOCK, false);
	for (int pass = 0; pass < 2; pass++) {
		if (pass == 0)
			zero_at(w.member, w.moff);
		else
			flip_at(w.member, w.moff + 300);
		fs = mount_fs();
		for (int i = 0; i < 60; i++) {
			snprintf(name, sizeof(name), "file-%d", i);
			fill(data, sizeof(data), (unsigned)i);
			ck_assert_msg(check_file(fs, d, name, data, sizeof(data)) == 0,
				      "pass %d: %s", pass, name);
		}
		ck_assert_uint_ge(fs->m->stats.repairs, 1);
		ck_assert_int_eq(crp_fs_unmount(fs), 0);
		ck_assert(member_holds(w.member, w.moff, orig));
	}
	free(orig);
	rm_tree();
}
END_TEST

/* A directory block whose checksum holds but that belongs to another
 * directory (a stale copy): its structure check sends it to parity. */
START_TEST(stale_block_rebuilt)
{
	struct crp_fs *fs;
	struct crp_meta *m;
	struct where w;
	uint8_t *blk = malloc(CRP_BLOCK);
	uint64_t d, e;
	uint8_t data[100];

	format(5, 4);
	fs = mount_fs();
	d = make_dir(fs, CRP_ROOT_INO, "d");
	e = make_dir(fs, CRP_ROOT_INO, "e");
	fill(data, sizeof(data), 3);
	create_file(fs, d, "in-d", data, sizeof(data));
	create_file(fs, e, "in-e", data, sizeof(data));
	w = where_of(fs->m, file_block(fs, d, 0));
	ck_assert_int_eq(crp_fs_unmount(fs), 0);
	member_rw(w.member, w.moff, blk, CRP_BLOCK, false);
	crp_put_le64(blk + 32, e); /* owned by e, and sealed again */
	crp_block_seal(blk);
	member_rw(w.member, w.moff, blk, CRP_BLOCK, true);
	fs = mount_fs();
	ck_assert_int_eq(check_file(fs, d, "in-d", data, sizeof(data)), 0);
	m = fs->m;
	ck_assert_str_eq(last_damage(m)->why, "malformed contents");
	ck_assert(last_damage(m)->repaired);
	ck_assert_int_eq(crp_fs_unmount(fs), 0);
	free(blk);
	rm_tree();
}
END_TEST

/* RAID-6: a directory bucket and the same rows of another data member
 * zeroed: rebuilt from P and Q, both columns written back. */
START_TEST(raid6_bucket_two_columns)
{
	struct crp_fs *fs;
	struct crp_meta *m;
	struct where w;
	uint8_t *orig = malloc(CRP_BLOCK), *other = malloc(CRP_BLOCK);
	uint64_t d;
	int j = -1;
	uint8_t data[100];
	char name[32];

	format(6, 6);
	fs = mount_fs();
	d = make_dir(fs, CRP_ROOT_INO, "d");
	for (int i = 0; i < 40; i++) {
		snprintf(name, sizeof(name), "n%d", i);
		fill(data, sizeof(data), (unsigned)i);
		create_file(fs, d, name, data, sizeof(data));
	}
	w = where_of(fs->m, file_block(fs, d, 0));
	ck_assert_int_eq(crp_fs_unmount(fs), 0);
	for (int i = 0; i < fx.n && j < 0; i++) {
		/* Another data column whose rows there hold something. */
		if (i == w.member || i == w.pm || i == w.qm)
			continue;
		member_rw(i, w.moff, other, CRP_BLOCK, false);
		for (unsigned k = 0; k < CRP_BLOCK && j < 0; k++)
			if (other[k])
				j = i;
	}
	ck_assert_msg(j >= 0, "no other data column holds anything in that row");
	member_rw(w.member, w.moff, orig, CRP_BLOCK, false);
	zero_at(w.member, w.moff);
	zero_at(j, w.moff);
	fs = mount_fs();
	for (int i = 0; i < 40; i++) {
		snprintf(name, sizeof(name), "n%d", i);
		fill(data, sizeof(data), (unsigned)i);
		ck_assert_int_eq(check_file(fs, d, name, data, sizeof(data)), 0);
	}
	m = fs->m;
	{
		bool found = false;

		for (guint i = 0; i < m->damage->len; i++) {
			const struct crp_meta_damage *dd =
				&g_array_index(m->damage, struct crp_meta_damage, i);

			if (dd->blkno == w.blkno) {
				ck_assert(dd->rebuilt && dd->repaired);
				ck_assert_int_eq(dd->member, w.member);
				ck_assert_int_eq(dd->member2, j);
				found = true;
			}
		}
		ck_assert(found);
	}
	ck_assert_int_eq(crp_fs_unmount(fs), 0);
	ck_assert(member_holds(w.member, w.moff, orig));
	ck_assert(member_holds(j, w.moff, other));
	free(orig);
	free(other);
	rm_tree();
}
END_TEST

/* ---- inode table ---- */

/* An inode-table block zeroed: its records are not taken for free ones;
 * parity rebuilds them.  Beyond parity: EIO, and new inodes still work. */
START_TEST(inode_table_zeroed)
{
	struct crp_fs *fs;
	struct where w;
	uint64_t ino[24];
	uint8_t data[3000];
	char name[32];
	int victim = -1;

	format(5, 4);
	fs = mount_fs();
	for (int i = 0; i < 24; i++) {
		snprintf(name, sizeof(name), "f%d", i);
		fill(data, sizeof(data), (unsigned)i);
		ino[i] = create_file(fs, CRP_ROOT_INO, name, data, sizeof(data));
		if (victim < 0 && ino[i] >= 8)
			victim = i; /* not in the root's block */
	}
	ck_assert_int_ge(victim, 0);
	w = where_of(fs->m, fs->m->sb.itable_start + ino[victim] / CRP_INODES_PER_BLOCK);
	ck_assert_int_eq(crp_fs_unmount(fs), 0);

	zero_at(w.member, w.moff);
	fs = mount_fs();
	for (int i = 0; i < 24; i++) {
		snprintf(name, sizeof(name), "f%d", i);
		fill(data, sizeof(data), (unsigned)i);
		ck_assert_msg(check_file(fs, CRP_ROOT_INO, name, data, sizeof(data)) == 0, "%s", name);
	}
	ck_assert_int_eq(crp_fs_unmount(fs), 0);

	/* Its member and the parity of its row: nothing rebuilds it. */
	zero_at(w.member, w.moff);
	zero_at(w.pm, w.moff);
	fs = mount_fs();
	for (int i = 0; i < 24; i++) {
		int r;

		snprintf(name, sizeof(name), "f%d", i);
		fill(data, sizeof(data), (unsigned)i);
		r = check_file(fs, CRP_ROOT_INO, name, data, sizeof(data));
		if (ino[i] / CRP_INODES_PER_BLOCK == ino[victim] / CRP_INODES_PER_BLOCK)
			ck_assert_msg(r == -EIO, "%s (inode %llu): %d, not EIO", name,
				      (unsigned long long)ino[i], r);
		else
			ck_assert_msg(r == 0, "%s: %d", name, r);
	}
	fill(data, sizeof(data), 99);
	create_file(fs, CRP_ROOT_INO, "new", data, sizeof(data));
	ck_assert_int_eq(check_file(fs, CRP_ROOT_INO, "new", data, sizeof(data)), 0);
	ck_assert_int_eq(crp_fs_unmount(fs), 0);
	rm_tree();
}
END_TEST

/* ---- data ---- */

START_TEST(data_block_zeroed)
{
	struct crp_fs *fs;
	struct where w;
	uint64_t ino;
	uint8_t *data = malloc(5 * CRP_BLOCK), *orig = malloc(CRP_BLOCK);

	format(5, 4);
	fs = mount_fs();
	fill(data, 5 * CRP_BLOCK, 5);
	ino = create_file(fs, CRP_ROOT_INO, "f", data, 5 * CRP_BLOCK);
	w = where_of(fs->m, file_block(fs, ino, 2));
	ck_assert_int_eq(crp_fs_unmount(fs), 0);
	member_rw(w.member, w.moff, orig, CRP_BLOCK, false);

	zero_at(w.member, w.moff);
	fs = mount_fs();
	ck_assert_int_eq(check_file(fs, CRP_ROOT_INO, "f", data, 5 * CRP_BLOCK), 0);
	ck_assert(last_damage(fs->m)->repaired);
	ck_assert_int_eq(crp_fs_unmount(fs), 0);
	ck_assert(member_holds(w.member, w.moff, orig));

	zero_at(w.member, w.moff);
	zero_at(w.pm, w.moff);
	fs = mount_fs();
	ck_assert_int_eq(check_file(fs, CRP_ROOT_INO, "f", data, 5 * CRP_BLOCK), -EIO);
	ck_assert_int_eq(crp_fs_unmount(fs), 0);
	free(data);
	free(orig);
	rm_tree();
}
END_TEST

/* ---- journal replay ---- */

/* A transaction committed to the journal only, its descriptor and first
 * image then zeroed on their member: replay rebuilds them from parity. */
START_TEST(journal_ring_rebuilt)
{
	struct crp_fsck_result res;
	struct crp_fs *fs;
	struct crp_meta *m;
	uint8_t data[6000], *hb = malloc(CRP_BLOCK);
	struct crp_jhdr jh;
	struct where wd, wi;
	uint64_t jb;
	pid_t pid;
	int st;

	format(5, 4);
	fill(data, sizeof(data), 8);
	pid = fork();
	ck_assert_int_ge(pid, 0);
	if (pid == 0) {
		struct crp_fs *cfs = mount_fs();

		create_file(cfs, CRP_ROOT_INO, "before", data, 100);
		pthread_mutex_lock(&cfs->mu);
		cfs->m->debug_no_checkpoint = true;
		pthread_mutex_unlock(&cfs->mu);
		create_file(cfs, CRP_ROOT_INO, "journalled", data, sizeof(data));
		crp_fs_fsync(cfs, CRP_ROOT_INO, false);
		pthread_mutex_lock(&cfs->mu);
		cfs->stop = true;
		pthread_mutex_unlock(&cfs->mu);
		_exit(0);
	}
	ck_assert_int_eq(waitpid(pid, &st, 0), pid);
	ck_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0);
	m = open_ro();
	jb = m->sb.journal_start; /* slot 0 */
	ck_assert_int_eq(crp_array_read(m->a, jb * CRP_BLOCK, hb, CRP_BLOCK), 0);
	ck_assert_int_eq(crp_jhdr_in(hb, jb, m->fsid, &jh, NULL, 0), 0);
	wd = where_of(m, jb + 2 + jh.start);
	wi = where_of(m, jb + 2 + jh.start + 1);
	crp_meta_close(m);
	zero_at(wd.member, wd.moff);
	zero_at(wi.member, wi.moff);
	fs = mount_fs();
	ck_assert_int_eq(check_file(fs, CRP_ROOT_INO, "journalled", data, sizeof(data)), 0);
	ck_assert_int_eq(check_file(fs, CRP_ROOT_INO, "before", data, 100), 0);
	ck_assert_int_eq(crp_fs_unmount(fs), 0);
	ck_assert_int_eq(fsck(false, &res), CRP_FSCK_OK);
	free(hb);
	rm_tree();
}
END_TEST

/* ---- fsck ---- */

/* Names lost behind the core's back: the nameless go to /lost+found
 * (files and directories), only the orphan is freed, a second run is
 * clean, and the contents are all there. */
START_TEST(fsck_lost_found)
{
	struct crp_fsck_result res;
	struct crp_fs *fs;
	uint64_t d, sub, f, orphan;
	uint8_t data[7000];
	char name[96];
	struct crp_attr a;

	format(5, 4);
	fs = mount_fs();
	fill(data, sizeof(data), 4);
	d = make_dir(fs, CRP_ROOT_INO, "d");
	f = create_file(fs, d, "file", data, sizeof(data));
	sub = make_dir(fs, d, "sub");
	create_file(fs, sub, "inner", data, 500);
	orphan = create_file(fs, d, "orphan", data, 100);
	{
		uint64_t s = crp_fs_op_begin(fs);
		struct crp_fs_inode *dp, *op;
		int r;

		r = crp_fs_iget(fs, d, &dp);
		if (!r)
			r = crp_fs_dir_remove(fs, dp, "file");
		if (!r)
			r = crp_fs_dir_remove(fs, dp, "sub");
		if (!r)
			r = crp_fs_dir_remove(fs, dp, "orphan");
		if (!r)
			r = crp_fs_istore(fs, dp);
		if (!r)
			r = crp_fs_iget(fs, orphan, &op);
		if (!r) {
			op->d.nlink = 0;
			r = crp_fs_istore(fs, op);
		}
		ck_assert_int_eq(crp_fs_op_end(fs, s, r), 0);
	}
	ck_assert_int_eq(crp_fs_unmount(fs), 0);

	ck_assert_int_eq(fsck(false, &res), CRP_FSCK_UNCORRECTED);
	ck_assert(fsck_said("has no name; --repair names it /lost+found/#"));
	ck_assert(!fsck_said("; freed"));
	ck_assert_int_eq(fsck(true, &res), CRP_FSCK_CORRECTED);
	snprintf(name, sizeof(name), "file %llu (", (unsigned long long)f);
	ck_assert(fsck_said(name));
	snprintf(name, sizeof(name), "directory %llu (", (unsigned long long)sub);
	ck_assert(fsck_said(name));
	snprintf(name, sizeof(name), "inode %llu has no name and a link count of 0",
		 (unsigned long long)orphan);
	ck_assert(fsck_said(name));
	ck_assert(fsck_said("made /lost+found"));
	ck_assert_int_eq(fsck(false, &res), CRP_FSCK_OK);

	fs = mount_fs();
	ck_assert_int_eq(crp_fs_lookup(fs, CRP_ROOT_INO, "lost+found", &a), 0);
	crp_fs_forget(fs, a.ino, 1);
	ck_assert_uint_eq(a.mode, S_IFDIR | 0700);
	ck_assert_uint_eq(a.nlink, 3); /* ".", its name, and #sub's ".." */
	{
		uint64_t lf = a.ino;

		snprintf(name, sizeof(name), "#%llu", (unsigned long long)f);
		ck_assert_int_eq(check_file(fs, lf, name, data, sizeof(data)), 0);
		snprintf(name, sizeof(name), "#%llu", (unsigned long long)sub);
		ck_assert_int_eq(crp_fs_lookup(fs, lf, name, &a), 0);
		crp_fs_forget(fs, a.ino, 1);
		ck_assert_uint_eq(a.nlink, 2);
		ck_assert_int_eq(check_file(fs, a.ino, "inner", data, 500), 0);
		snprintf(name, sizeof(name), "#%llu", (unsigned long long)orphan);
		ck_assert_int_eq(crp_fs_lookup(fs, lf, name, &a), -ENOENT);
	}
	ck_assert_int_eq(crp_fs_getattr(fs, CRP_ROOT_INO, &a), 0);
	ck_assert_uint_eq(a.nlink, 4); /* ".", "..", d and lost+found */
	ck_assert_int_eq(crp_fs_unmount(fs), 0);
	rm_tree();
}
END_TEST

/* RAID-5, an inode-table block zeroed on two members: its inodes cannot be
 * read.  fsck says which, and with --repair removes their names and frees
 * them, and only them; a second run is clean. */
START_TEST(fsck_unreadable_inodes)
{
	struct crp_fsck_result res;
	struct crp_fs *fs;
	struct where w;
	uint64_t ino[24], blk = 0;
	uint8_t data[1000];
	char name[64];

	format(5, 4);
	fs = mount_fs();
	for (int i = 0; i < 24; i++) {
		snprintf(name, sizeof(name), "f%d", i);
		fill(data, sizeof(data), (unsigned)i);
		ino[i] = create_file(fs, CRP_ROOT_INO, name, data, sizeof(data));
		if (!blk && ino[i] >= 8)
			blk = ino[i] / CRP_INODES_PER_BLOCK;
	}
	w = where_of(fs->m, fs->m->sb.itable_start + blk);
	ck_assert_int_eq(crp_fs_unmount(fs), 0);
	zero_at(w.member, w.moff);
	zero_at(w.pm, w.moff);

	ck_assert_int_eq(fsck(false, &res), CRP_FSCK_UNCORRECTED);
	for (int i = 0; i < 24; i++) {
		if (ino[i] / CRP_INODES_PER_BLOCK != blk)
			continue;
		snprintf(name, sizeof(name), "entry 'f%d' points at inode %llu, which cannot be read",
			 i, (unsigned long long)ino[i]);
		ck_assert_msg(fsck_said(name), "not said: %s", name);
	}
	ck_assert(!fsck_said("entry is removed"));
	ck_assert_int_eq(fsck(true, &res), CRP_FSCK_CORRECTED);
	ck_assert(fsck_said("entry is removed"));
	ck_assert_int_eq(fsck(false, &res), CRP_FSCK_OK);
	fs = mount_fs();
	for (int i = 0; i < 24; i++) {
		struct crp_attr a;

		snprintf(name, sizeof(name), "f%d", i);
		fill(data, sizeof(data), (unsigned)i);
		if (ino[i] / CRP_INODES_PER_BLOCK == blk)
			ck_assert_int_eq(crp_fs_lookup(fs, CRP_ROOT_INO, name, &a), -ENOENT);
		else
			ck_assert_int_eq(check_file(fs, CRP_ROOT_INO, name, data, sizeof(data)), 0);
	}
	ck_assert_int_eq(crp_fs_unmount(fs), 0);
	rm_tree();
}
END_TEST

/* A stale inode bitmap block (its checksum holds: a lost write) that
 * calls inodes in use free: their names are kept, their bits given back --
 * a whole inode-table block's worth (found through the names), and one
 * inode among others in use (found in pass 1). */
START_TEST(fsck_stale_inode_bitmap)
{
	struct crp_fsck_result res;
	struct crp_fs *fs;
	struct where w;
	uint64_t ino[24], blk = 0, lone = 0;
	uint8_t data[500], *b = malloc(CRP_BLOCK);
	char name[96];
	uint32_t cleared = 0;

	format(5, 4);
	fs = mount_fs();
	for (int i = 0; i < 24; i++) {
		snprintf(name, sizeof(name), "f%d", i);
		fill(data, sizeof(data), (unsigned)i);
		ino[i] = create_file(fs, CRP_ROOT_INO, name, data, sizeof(data));
	}
	w = where_of(fs->m, fs->m->sb.ibitmap_start);
	ck_assert_int_eq(crp_fs_unmount(fs), 0);
	for (int i = 0; i < 24; i++) {
		if (!blk && ino[i] >= 8 && ino[i] % CRP_INODES_PER_BLOCK == 0)
			blk = ino[i] / CRP_INODES_PER_BLOCK;
	}
	ck_assert_uint_ne(blk, 0);
	lone = ino[23];
	ck_assert_uint_ne(lone / CRP_INODES_PER_BLOCK, blk);
	member_rw(w.member, w.moff, b, CRP_BLOCK, false);
	for (uint64_t i = blk * CRP_INODES_PER_BLOCK; i < (blk + 1) * CRP_INODES_PER_BLOCK; i++)
		if (crp_bit_test(b + CRP_HDR_SIZE, i)) {
			crp_bit_clear(b + CRP_HDR_SIZE, i);
			cleared++;
		}
	crp_bit_clear(b + CRP_HDR_SIZE, lone);
	cleared++;
	crp_put_le32(b + 48, crp_get_le32(b + 48) + cleared);
	crp_block_seal(b);
	member_rw(w.member, w.moff, b, CRP_BLOCK, true);

	ck_assert_int_eq(fsck(false, &res), CRP_FSCK_UNCORRECTED);
	snprintf(name, sizeof(name), "inode %llu (file, 1 links) has a record in use, but the "
		 "inode bitmap calls it free", (unsigned long long)lone);
	ck_assert_msg(fsck_said(name), "not said: %s", name);
	snprintf(name, sizeof(name), "inode %llu (file, 1 links) is named",
		 (unsigned long long)(blk * CRP_INODES_PER_BLOCK));
	ck_assert_msg(fsck_said(name), "not said: %s", name);
	ck_assert(!fsck_said("entry is removed"));
	ck_assert_int_eq(fsck(true, &res), CRP_FSCK_CORRECTED);
	ck_assert(!fsck_said("entry is removed") && !fsck_said("freed"));
	ck_assert_int_eq(fsck(false, &res), CRP_FSCK_OK);
	fs = mount_fs();
	for (int i = 0; i < 24; i++) {
		snprintf(name, sizeof(name), "f%d", i);
		fill(data, sizeof(data), (unsigned)i);
		ck_assert_int_eq(check_file(fs, CRP_ROOT_INO, name, data, sizeof(data)), 0);
	}
	/* New files do not reuse the numbers in use. */
	fill(data, sizeof(data), 77);
	for (int i = 0; i < 12; i++) {
		snprintf(name, sizeof(name), "new%d", i);
		create_file(fs, CRP_ROOT_INO, name, data, sizeof(data));
	}
	for (int i = 0; i < 24; i++) {
		snprintf(name, sizeof(name), "f%d", i);
		fill(data, sizeof(data), (unsigned)i);
		ck_assert_int_eq(check_file(fs, CRP_ROOT_INO, name, data, sizeof(data)), 0);
	}
	ck_assert_int_eq(crp_fs_unmount(fs), 0);
	ck_assert_int_eq(fsck(false, &res), CRP_FSCK_OK);
	free(b);
	rm_tree();
}
END_TEST

/* RAID-5, a block bitmap and an inode bitmap zeroed on two members: the
 * mount refuses, fsck (which can still open the array) rebuilds both from
 * the inodes, and new files then take nothing in use. */
START_TEST(fsck_bitmaps_beyond_parity)
{
	struct crp_fsck_result res;
	struct crp_fs *fs;
	struct crp_fs_opts o = { .host = "repairhost" };
	struct where wb, wi;
	uint8_t data[9000];
	char name[32], err[512];

	format(5, 4);
	fs = mount_fs();
	for (int i = 0; i < 30; i++) {
		snprintf(name, sizeof(name), "f%d", i);
		fill(data, sizeof(data), (unsigned)i);
		create_file(fs, CRP_ROOT_INO, name, data, sizeof(data));
	}
	wb = where_of(fs->m, crp_meta_ag_base(fs->m, 0));
	wi = where_of(fs->m, fs->m->sb.ibitmap_start);
	ck_assert_int_eq(crp_fs_unmount(fs), 0);
	zero_at(wb.member, wb.moff);
	zero_at(wb.pm, wb.moff);
	zero_at(wi.member, wi.moff);
	zero_at(wi.pm, wi.moff);

	ck_assert_int_lt(crp_fs_mount(fx.specs, fx.n, &o, &fs, err, sizeof(err)), 0);
	ck_assert_msg(strstr(err, "fsck --repair"), "%s", err);
	ck_assert_int_eq(fsck(false, &res), CRP_FSCK_UNCORRECTED);
	ck_assert(fsck_said("block bitmap of group 0"));
	ck_assert(fsck_said("inode bitmap block 0 cannot be read even after reconstruction"));
	ck_assert_int_eq(fsck(true, &res), CRP_FSCK_CORRECTED);
	ck_assert(fsck_said("rebuilt from the blocks the inodes reference (fixed)"));
	ck_assert(!fsck_said("freed") && !fsck_said("removed"));
	ck_assert_int_eq(fsck(false, &res), CRP_FSCK_OK);
	fs = mount_fs();
	fill(data, sizeof(data), 200);
	for (int i = 0; i < 30; i++) {
		snprintf(name, sizeof(name), "new%d", i);
		create_file(fs, CRP_ROOT_INO, name, data, sizeof(data));
	}
	for (int i = 0; i < 30; i++) {
		snprintf(name, sizeof(name), "f%d", i);
		fill(data, sizeof(data), (unsigned)i);
		ck_assert_int_eq(check_file(fs, CRP_ROOT_INO, name, data, sizeof(data)), 0);
	}
	ck_assert_int_eq(crp_fs_unmount(fs), 0);
	ck_assert_int_eq(fsck(false, &res), CRP_FSCK_OK);
	rm_tree();
}
END_TEST

/* A block rebuilt by a read-only fsck is reported, and not written; fsck
 * --repair writes it; the next run is clean. */
START_TEST(fsck_reports_rebuilds)
{
	struct crp_fsck_result res;
	struct crp_fs *fs;
	struct where w;
	uint8_t data[3000];
	char what[64];

	format(6, 6);
	fs = mount_fs();
	fill(data, sizeof(data), 2);
	create_file(fs, CRP_ROOT_INO, "f", data, sizeof(data));
	w = where_of(fs->m, fs->m->sb.ibitmap_start);
	ck_assert_int_eq(crp_fs_unmount(fs), 0);
	zero_at(w.member, w.moff);
	snprintf(what, sizeof(what), "(block %llu): all zeros; rebuilt from parity",
		 (unsigned long long)w.blkno);
	ck_assert_int_eq(fsck(false, &res), CRP_FSCK_UNCORRECTED);
	ck_assert(fsck_said(what));
	ck_assert(fsck_said("read-only: not written back"));
	ck_assert_int_eq(fsck(true, &res), CRP_FSCK_CORRECTED);
	ck_assert(fsck_said(what));
	ck_assert(fsck_said("and written back (fixed)"));
	ck_assert_int_eq(fsck(false, &res), CRP_FSCK_OK);
	rm_tree();
}
END_TEST

static Suite *repair_suite(void)
{
	Suite *s = suite_create("repair");
	TCase *t;

	/* Mounts after a crash wait out the dead host's heartbeat. */
	t = tcase_create("array");
	tcase_set_timeout(t, 120);
	tcase_add_test(t, raid6_two_columns);
	suite_add_tcase(s, t);
	t = tcase_create("metadata");
	tcase_set_timeout(t, 300);
	tcase_add_test(t, zeroed_bitmap_rebuilt);
	tcase_add_test(t, directory_bucket_rebuilt);
	tcase_add_test(t, stale_block_rebuilt);
	tcase_add_test(t, raid6_bucket_two_columns);
	tcase_add_test(t, inode_table_zeroed);
	tcase_add_test(t, journal_ring_rebuilt);
	suite_add_tcase(s, t);
	t = tcase_create("data");
	tcase_set_timeout(t, 120);
	tcase_add_test(t, data_block_zeroed);
	suite_add_tcase(s, t);
	t = tcase_create("fsck");
	tcase_set_timeout(t, 300);
	tcase_add_test(t, fsck_lost_found);
	tcase_add_test(t, fsck_unreadable_inodes);
	tcase_add_test(t, fsck_reports_rebuilds);
	tcase_add_test(t, fsck_stale_inode_bitmap);
	tcase_add_test(t, fsck_bitmaps_beyond_parity);
	suite_add_tcase(s, t);
	return s;
}

int main(void)
{
	SRunner *sr = srunner_create(repair_suite());
	int failed;

	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	if (said)
		g_string_free(said, TRUE);
	return failed ? 1 : 0;
}
