/*
 * The file transport: the shared semantics cases (tests/fixture/semantics.c,
 * the same code that runs against tgt) on a fresh image each, then what is
 * particular to file: images, errors, ordering and chaining, unit
 * attentions, PR state that outlives a nexus, slot reuse, and two processes
 * fighting over one reservation.
 */
#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "crpfs/err.h"
#include "crpfs/member.h"
#include "crpfs/scsi.h"
#include "crpfs/util.h"
#include "fixture/semantics.h"

#define IMAGE_SIZE (8u << 20)

static char g_dir[64];
static char g_img[128];
static char g_spec[160];

static void make_image(const char *path, off_t size)
{
	int fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0644);

	ck_assert_msg(fd >= 0, "create %s: %s", path, strerror(errno));
	ck_assert_int_eq(ftruncate(fd, size), 0);
	close(fd);
}

static void setup(void)
{
	snprintf(g_dir, sizeof(g_dir), "/tmp/crpfs-file-XXXXXX");
	ck_assert_ptr_nonnull(mkdtemp(g_dir));
	snprintf(g_img, sizeof(g_img), "%s/lu.img", g_dir);
	snprintf(g_spec, sizeof(g_spec), "file:%s", g_img);
	make_image(g_img, IMAGE_SIZE);
}

static void teardown(void)
{
	char p[256];
	static const char *const names[] = { "lu.img", "lu.img.crpfs-scsi", "new.img",
					     "new.img.crpfs-scsi", "small.img",
					     "small.img.crpfs-scsi" };

	for (size_t i = 0; i < CRP_ARRAY_SIZE(names); i++) {
		snprintf(p, sizeof(p), "%s/%s", g_dir, names[i]);
		unlink(p);
	}
	rmdir(g_dir);
}

static struct crp_member *open_as(const char *spec, const char *host)
{
	struct crp_member_opts o = { .host = host };
	struct crp_member *m = NULL;
	char err[1024] = "";
	int r = crp_member_open(spec, &o, &m, err, sizeof(err));

	ck_assert_msg(r == 0, "open %s: %s", spec, err);
	return m;
}

static int simple(struct crp_member *m, void (*build)(struct crp_cmd *))
{
	struct crp_cmd c;

	crp_cmd_init(&c);
	build(&c);
	return crp_member_exec(m, &c);
}

static int pr_out(struct crp_member *m, uint8_t sa, uint8_t type, uint64_t key, uint64_t sa_key)
{
	struct crp_cmd c;
	uint8_t param[24];

	crp_cmd_init(&c);
	crp_cdb_pr_out(&c, sa, type, key, sa_key, param);
	return crp_member_exec(m, &c);
}

static int write_u32(struct crp_member *m, uint64_t lba, uint32_t a, uint32_t b)
{
	uint32_t bs = crp_member_block_size(m);
	uint32_t *buf = crp_alloc_buf(bs);
	int r;

	buf[0] = a;
	buf[1] = b;
	r = crp_member_write(m, lba * bs, buf, bs);
	free(buf);
	return r;
}

static int read_u32(struct crp_member *m, uint64_t lba, uint32_t *a, uint32_t *b)
{
	uint32_t bs = crp_member_block_size(m);
	uint32_t *buf = crp_alloc_buf(bs);
	int r;

	r = crp_member_read(m, lba * bs, buf, bs);
	*a = buf[0];
	if (b)
		*b = buf[1];
	free(buf);
	return r;
}

/* The shared semantics, each on a fresh image. */

START_TEST(test_sem_rw_roundtrip)
{
	crp_sem_rw_roundtrip(g_spec);
}
END_TEST

START_TEST(test_sem_reserve_conflict)
{
	crp_sem_reserve_conflict(g_spec);
}
END_TEST

START_TEST(test_sem_release_on_close)
{
	crp_sem_release_on_close(g_spec);
}
END_TEST

START_TEST(test_sem_release_on_death)
{
	crp_sem_release_on_death(g_spec);
}
END_TEST

START_TEST(test_sem_pr_write_exclusive)
{
	crp_sem_pr_write_exclusive(g_spec);
}
END_TEST

START_TEST(test_sem_pr_preempt)
{
	crp_sem_pr_preempt(g_spec);
}
END_TEST

START_TEST(test_sem_lun_reset)
{
	crp_sem_lun_reset(g_spec);
}
END_TEST

/* All of them on one image, as on one tgt LUN: each leaves it clean. */
START_TEST(test_sem_in_sequence)
{
	crp_sem_rw_roundtrip(g_spec);
	crp_sem_reserve_conflict(g_spec);
	crp_sem_release_on_close(g_spec);
	crp_sem_release_on_death(g_spec);
	crp_sem_pr_write_exclusive(g_spec);
	crp_sem_pr_preempt(g_spec);
	crp_sem_lun_reset(g_spec);
	crp_sem_pr_write_exclusive(g_spec);
}
END_TEST

/* Images and errors. */

START_TEST(test_create_with_size)
{
	char spec[200], path[160], err[1024] = "";
	struct crp_member_opts o = { .host = "t", .create = true,
				     .create_size = (1u << 20) + 100, .file_block_size = 4096 };
	struct crp_member *m = NULL;
	uint8_t cap[32];
	uint64_t nblocks;
	uint32_t bs;
	struct crp_cmd c;
	struct stat st;

	snprintf(path, sizeof(path), "%s/new.img", g_dir);
	snprintf(spec, sizeof(spec), "file:%s", path);
	/* missing and not asked to create: an error that names the image */
	ck_assert_int_lt(crp_member_open(spec, &(struct crp_member_opts){ .host = "t" }, &m, err,
					 sizeof(err)),
			 0);
	ck_assert_ptr_null(m);
	ck_assert_msg(strstr(err, path) != NULL, "message does not name %s: '%s'", path, err);

	ck_assert_msg(crp_member_open(spec, &o, &m, err, sizeof(err)) == 0, "%s", err);
	ck_assert_uint_eq(crp_member_block_size(m), 4096);
	ck_assert_uint_eq(crp_member_size(m), 1u << 20); /* rounded down to blocks */
	crp_cmd_init(&c);
	crp_cdb_read_capacity16(&c, cap, sizeof(cap));
	ck_assert_int_eq(crp_member_exec(m, &c), 0);
	ck_assert_int_eq(crp_parse_read_capacity16(cap, sizeof(cap), &nblocks, &bs), 0);
	ck_assert_uint_eq(nblocks, 256);
	ck_assert_uint_eq(bs, 4096);
	crp_member_close(m);

	ck_assert_int_eq(stat(path, &st), 0);
	ck_assert_int_eq(st.st_size, (1 << 20) + 100);
	ck_assert_msg((uint64_t)st.st_blocks * 512 < (1u << 19), "image is not sparse");

	/* an existing image is opened, not recreated, even with create set */
	o.create_size = 1u << 21;
	ck_assert_msg(crp_member_open(spec, &o, &m, err, sizeof(err)) == 0, "%s", err);
	ck_assert_uint_eq(crp_member_size(m), 1u << 20);
	crp_member_close(m);
}
END_TEST

START_TEST(test_create_too_small)
{
	char spec[200], err[1024] = "";
	struct crp_member_opts o = { .host = "t", .create = true, .create_size = 100 };
	struct crp_member *m = NULL;

	snprintf(spec, sizeof(spec), "file:%s/small.img", g_dir);
	ck_assert_int_lt(crp_member_open(spec, &o, &m, err, sizeof(err)), 0);
	ck_assert_ptr_null(m);
	ck_assert_msg(strstr(err, "small.img") && strstr(err, "block"), "'%s'", err);
	/* an existing image under one block is refused too */
	snprintf(spec, sizeof(spec), "%s/small.img", g_dir);
	make_image(spec, 511);
	snprintf(spec, sizeof(spec), "file:%s/small.img", g_dir);
	o.create = false;
	ck_assert_int_lt(crp_member_open(spec, &o, &m, err, sizeof(err)), 0);
	ck_assert_msg(strstr(err, "small.img") != NULL, "'%s'", err);
}
END_TEST

START_TEST(test_bad_path)
{
	static const char *const spec = "file:/nonexistent-crpfs-dir/lu.img";
	struct crp_member *m = NULL;
	char err[1024] = "";
	int r = crp_member_open(spec, NULL, &m, err, sizeof(err));

	ck_assert_int_eq(r, -ENOENT);
	ck_assert_ptr_null(m);
	ck_assert_msg(strstr(err, "/nonexistent-crpfs-dir/lu.img") != NULL, "'%s'", err);
	ck_assert_msg(strstr(err, spec) != NULL, "message does not name the member: '%s'", err);
}
END_TEST

START_TEST(test_bad_block_size)
{
	struct crp_member_opts o = { .host = "t", .file_block_size = 1000 };
	struct crp_member *m = NULL;
	char err[1024] = "";

	ck_assert_int_eq(crp_member_open(g_spec, &o, &m, err, sizeof(err)), -EINVAL);
	ck_assert_msg(strstr(err, "1000") != NULL, "'%s'", err);
}
END_TEST

START_TEST(test_spec_errors)
{
	static const char *const bad[] = { "file:", "nonsense", "iscsi://h/iqn",
					   "iscsi://h:99999/iqn/1" };

	for (size_t i = 0; i < CRP_ARRAY_SIZE(bad); i++) {
		struct crp_member *m = NULL;
		char err[1024] = "";
		int r = crp_member_open(bad[i], NULL, &m, err, sizeof(err));

		ck_assert_msg(r == -CRP_EBADSPEC, "'%s': got %d", bad[i], r);
		ck_assert_ptr_null(m);
		ck_assert_msg(strstr(err, bad[i]) != NULL, "'%s' not named in '%s'", bad[i], err);
	}
}
END_TEST

/* Commands. */

START_TEST(test_inquiry_ids)
{
	struct crp_member *m = open_as(g_spec, "t");
	uint8_t inq[36];
	struct crp_cmd c;

	crp_cmd_init(&c);
	crp_cdb_inquiry(&c, inq, sizeof(inq));
	ck_assert_int_eq(crp_member_exec(m, &c), 0);
	ck_assert_uint_eq(c.resid, 0);
	ck_assert_int_eq(memcmp(&inq[8], "CRPFS   ", 8), 0);
	ck_assert_int_eq(memcmp(&inq[16], "FILE            ", 16), 0);
	/* EVPD pages are not emulated */
	c.cdb[1] = 1;
	ck_assert_int_eq(crp_member_exec(m, &c), -EINVAL);
	crp_member_close(m);
}
END_TEST

START_TEST(test_unsupported)
{
	struct crp_member *m = open_as(g_spec, "t");
	struct crp_cmd c;
	struct crp_sense s;

	crp_cmd_init(&c);
	c.cdb_len = 10;
	c.cdb[0] = 0x42; /* UNMAP */
	ck_assert_int_eq(crp_member_exec(m, &c), -EINVAL);
	ck_assert_int_eq(crp_sense_decode(c.sense, c.sense_len, &s), 0);
	ck_assert_uint_eq(s.key, CRP_SK_ILLEGAL_REQUEST);
	ck_assert_uint_eq(s.asc, 0x20); /* INVALID COMMAND OPERATION CODE */
	ck_assert_uint_eq(s.ascq, 0x00);

	ck_assert_int_eq(pr_out(m, CRP_PROUT_REGISTER, 0, 0, 0x99), 0);
	/* PREEMPT AND ABORT is not implemented (nor is it on tgt) */
	ck_assert_int_eq(pr_out(m, CRP_PROUT_PREEMPT_ABORT, 1, 0x99, 0x99), -EINVAL);
	/* a bad PR type */
	ck_assert_int_eq(pr_out(m, CRP_PROUT_RESERVE, 2, 0x99, 0), -EINVAL);
	ck_assert_int_eq(pr_out(m, CRP_PROUT_REGISTER, 0, 0x99, 0), 0);
	crp_member_close(m);
}
END_TEST

/* Commands of one submission run in order. */
START_TEST(test_order)
{
	struct crp_member *m = open_as(g_spec, "t");
	uint32_t *b1 = crp_alloc_buf(512), *b2 = crp_alloc_buf(512), *rd = crp_alloc_buf(512);
	struct crp_cmd c[3];
	struct crp_cmd *v[3] = { &c[0], &c[1], &c[2] };
	struct crp_batch b;

	b1[0] = 1;
	b2[0] = 2;
	for (int round = 0; round < 50; round++) {
		for (int i = 0; i < 3; i++)
			crp_cmd_init(&c[i]);
		crp_cdb_write16(&c[0], 9, 1, b1, 512, false);
		crp_cdb_write16(&c[1], 9, 1, b2, 512, false);
		crp_cdb_read16(&c[2], 9, 1, rd, 512);
		crp_batch_init(&b);
		for (int i = 0; i < 3; i++)
			crp_batch_add(&b, &c[i]);
		crp_member_submit(m, v, 3);
		crp_batch_wait(&b);
		crp_batch_destroy(&b);
		for (int i = 0; i < 3; i++)
			ck_assert_int_eq(c[i].result, 0);
		ck_assert_uint_eq(rd[0], 2);
		rd[0] = 0;
	}
	free(b1);
	free(b2);
	free(rd);
	crp_member_close(m);
}
END_TEST

/* A chained RELEASE goes out from its WRITE's completion; a failed WRITE
 * cancels it. */
START_TEST(test_chain)
{
	struct crp_member *a = open_as(g_spec, "sem-a");
	struct crp_member *b = open_as(g_spec, "sem-b");
	uint8_t *buf = crp_alloc_buf(512);
	struct crp_cmd w, rel;
	struct crp_batch bt;

	ck_assert_int_eq(simple(a, crp_cdb_reserve6), 0);
	crp_cmd_init(&w);
	crp_cmd_init(&rel);
	crp_cdb_write16(&w, 10, 1, buf, 512, false);
	crp_cdb_release6(&rel);
	w.chain = &rel;
	crp_batch_init(&bt);
	crp_batch_add(&bt, &w);
	crp_batch_add(&bt, &rel);
	crp_member_submit(a, (struct crp_cmd *[]){ &w }, 1);
	crp_batch_wait(&bt);
	ck_assert_int_eq(w.result, 0);
	ck_assert_int_eq(rel.result, 0);
	ck_assert_int_eq(simple(b, crp_cdb_reserve6), 0); /* A's RELEASE ran */

	/* B holds: A's WRITE conflicts and its chained RELEASE is cancelled */
	crp_cmd_init(&w);
	crp_cmd_init(&rel);
	crp_cdb_write16(&w, 10, 1, buf, 512, false);
	crp_cdb_release6(&rel);
	w.chain = &rel;
	crp_batch_add(&bt, &w);
	crp_batch_add(&bt, &rel);
	crp_member_submit(a, (struct crp_cmd *[]){ &w }, 1);
	crp_batch_wait(&bt);
	crp_batch_destroy(&bt);
	ck_assert_int_eq(w.result, -CRP_ECONFLICT);
	ck_assert_int_eq(rel.result, -ECANCELED);
	ck_assert_int_eq(simple(b, crp_cdb_release6), 0);
	free(buf);
	crp_member_close(b);
	crp_member_close(a);
}
END_TEST

/* An LU reset leaves UNIT ATTENTION 29h for the other nexus, once. */
START_TEST(test_lun_reset_ua)
{
	struct crp_member *a = open_as(g_spec, "sem-a");
	struct crp_member *b = open_as(g_spec, "sem-b");
	struct crp_member_counters *ca = crp_member_counters(a);

	ck_assert_int_eq(crp_member_lun_reset(b), 0);
	ck_assert_int_eq(simple(a, crp_cdb_test_unit_ready), 0);
	ck_assert(crp_member_take_events(a) & CRP_EV_RESET);
	ck_assert_uint_eq(atomic_load(&ca->ua_retries), 1);
	ck_assert_int_eq(simple(a, crp_cdb_test_unit_ready), 0);
	ck_assert_uint_eq(atomic_load(&ca->ua_retries), 1); /* reported once */
	ck_assert_int_eq(simple(b, crp_cdb_test_unit_ready), 0);
	ck_assert_uint_eq(crp_member_take_events(b) & CRP_EV_RESET, 0);
	crp_member_close(b);
	crp_member_close(a);
}
END_TEST

/* A WRITE under a lock with its fence time passed is never sent: it fails
 * with -CRP_EFENCED and the block keeps its old data; one with the time
 * still ahead lands. */
static int fenced_write(struct crp_member *m, uint64_t lba, uint32_t v, uint64_t fence_ns)
{
	uint32_t bs = crp_member_block_size(m);
	uint32_t *buf = crp_alloc_buf(bs);
	struct crp_cmd c;
	int r;

	buf[0] = v;
	crp_cmd_init(&c);
	crp_cdb_write16(&c, lba, 1, buf, bs, false);
	c.fence_ns = fence_ns;
	r = crp_member_exec(m, &c);
	free(buf);
	return r;
}

START_TEST(test_fence_time)
{
	struct crp_member *a = open_as(g_spec, "fence-a");
	uint32_t v;

	ck_assert_int_eq(write_u32(a, 3, 111, 0), 0);
	ck_assert_int_eq(fenced_write(a, 3, 222, crp_now_ns() - 1), -CRP_EFENCED);
	ck_assert_int_eq(read_u32(a, 3, &v, NULL), 0);
	ck_assert_uint_eq(v, 111);
	ck_assert_int_eq(fenced_write(a, 3, 333, crp_now_ns() + 60000000000ull), 0);
	ck_assert_int_eq(read_u32(a, 3, &v, NULL), 0);
	ck_assert_uint_eq(v, 333);
	crp_member_close(a);
}
END_TEST

/* A WRITE under a lock that meets the UNIT ATTENTION of an LU reset (its
 * reservation is gone) fails with -CRP_ELOCKLOST and is not retried: the
 * block keeps its old data.  The same UA on a plain command is retried. */
START_TEST(test_lock_loss_not_retried)
{
	struct crp_member *a = open_as(g_spec, "fence-a");
	struct crp_member *b = open_as(g_spec, "fence-b");
	struct crp_member_counters *ca = crp_member_counters(a);
	uint32_t v;

	ck_assert_int_eq(write_u32(a, 5, 111, 0), 0);
	ck_assert_int_eq(simple(a, crp_cdb_reserve6), 0);
	ck_assert_int_eq(crp_member_lun_reset(b), 0); /* breaks a's reservation */
	ck_assert_int_eq(fenced_write(a, 5, 222, crp_now_ns() + 60000000000ull), -CRP_ELOCKLOST);
	ck_assert(crp_member_take_events(a) & CRP_EV_RESET);
	ck_assert_uint_eq(atomic_load(&ca->ua_retries), 0);
	ck_assert_int_eq(read_u32(a, 5, &v, NULL), 0);
	ck_assert_uint_eq(v, 111);
	/* the UA was reported once: the next write (no lock) lands */
	ck_assert_int_eq(write_u32(a, 5, 444, 0), 0);
	ck_assert_int_eq(read_u32(a, 5, &v, NULL), 0);
	ck_assert_uint_eq(v, 444);
	crp_member_close(b);
	crp_member_close(a);
}
END_TEST

/* PR registrations and the reservation outlive the nexus, as on tgt; the
 * next host fences the dead one with PREEMPT. */
START_TEST(test_pr_survives_close)
{
	const uint64_t ka = 0x7466000000000001ull, kb = 0x7466000000000002ull;
	struct crp_member *a = open_as(g_spec, "sem-a");
	struct crp_member *b;
	uint8_t buf[8 + 8 * 4];
	uint64_t keys[4];
	struct crp_cmd c;

	ck_assert_int_eq(pr_out(a, CRP_PROUT_REGISTER, 0, 0, ka), 0);
	ck_assert_int_eq(pr_out(a, CRP_PROUT_RESERVE, CRP_PR_TYPE_WRITE_EXCLUSIVE, ka, 0), 0);
	crp_member_close(a);

	b = open_as(g_spec, "sem-b");
	crp_cmd_init(&c);
	crp_cdb_pr_in(&c, CRP_PRIN_READ_KEYS, buf, sizeof(buf));
	ck_assert_int_eq(crp_member_exec(b, &c), 0);
	ck_assert_int_eq(crp_parse_pr_keys(buf, sizeof(buf), NULL, keys, 4), 1);
	ck_assert_uint_eq(keys[0], ka);
	ck_assert_int_eq(write_u32(b, 11, 1, 1), -CRP_ECONFLICT);
	/* unregistered: PR OUT other than REGISTER conflicts */
	ck_assert_int_eq(pr_out(b, CRP_PROUT_CLEAR, 0, kb, 0), -CRP_ECONFLICT);
	ck_assert_int_eq(pr_out(b, CRP_PROUT_PREEMPT, 1, kb, ka), -CRP_ECONFLICT);
	ck_assert_int_eq(pr_out(b, CRP_PROUT_REGISTER, 0, 0, kb), 0);
	ck_assert_int_eq(pr_out(b, CRP_PROUT_PREEMPT, CRP_PR_TYPE_WRITE_EXCLUSIVE, kb, ka), 0);
	ck_assert_int_eq(write_u32(b, 11, 1, 1), 0);
	ck_assert_int_eq(pr_out(b, CRP_PROUT_CLEAR, 0, kb, 0), 0);
	ck_assert_int_eq(crp_member_exec(b, &c), 0);
	ck_assert_int_eq(crp_parse_pr_keys(buf, sizeof(buf), NULL, keys, 4), 0);
	crp_member_close(b);
}
END_TEST

/* Nexus slots are reused: far more opens than slots. */
START_TEST(test_slots_reused)
{
	for (int i = 0; i < 300; i++) {
		struct crp_member *m = open_as(g_spec, "t");

		ck_assert_int_eq(simple(m, crp_cdb_reserve6), 0);
		crp_member_close(m);
	}
}
END_TEST

/* Two processes hammer RESERVE / WRITE / RELEASE; block 0 counts the
 * holders inside, blocks 1 and 2 count each one's entries. */
#define HAMMER_ROUNDS 200

static int hammer(int id)
{
	char host[16];
	struct crp_member *m;
	char err[1024];
	struct crp_member_opts o = { .host = host };
	uint32_t inside, who, n;

	snprintf(host, sizeof(host), "conc-%d", id);
	if (crp_member_open(g_spec, &o, &m, err, sizeof(err)) < 0)
		return 10;
	for (int i = 0; i < HAMMER_ROUNDS; i++) {
		int r;

		while ((r = simple(m, crp_cdb_reserve6)) == -CRP_ECONFLICT)
			crp_sleep_ns(crp_random() % 100000);
		if (r < 0)
			return 11;
		if (read_u32(m, 0, &inside, &who) < 0 || inside != 0)
			return 12; /* another holder is inside */
		if (write_u32(m, 0, 1, (uint32_t)id) < 0)
			return 13;
		if (read_u32(m, 1 + (uint64_t)id, &n, NULL) < 0 ||
		    write_u32(m, 1 + (uint64_t)id, n + 1, 0) < 0)
			return 14;
		sched_yield();
		if (read_u32(m, 0, &inside, &who) < 0 || inside != 1 || who != (uint32_t)id)
			return 15;
		if (write_u32(m, 0, 0, 0) < 0)
			return 16;
		if (simple(m, crp_cdb_release6) < 0)
			return 17;
	}
	crp_member_close(m);
	return 0;
}

START_TEST(test_concurrent_reserve)
{
	pid_t pid[2];
	struct crp_member *m;
	uint32_t v, w;

	for (int i = 0; i < 2; i++) {
		pid[i] = fork();
		ck_assert_int_ge(pid[i], 0);
		if (pid[i] == 0)
			_exit(hammer(i));
	}
	for (int i = 0; i < 2; i++) {
		int st = 0;

		ck_assert_int_eq(waitpid(pid[i], &st, 0), pid[i]);
		ck_assert_msg(WIFEXITED(st) && WEXITSTATUS(st) == 0,
			      "process %d failed with status 0x%x (10+: see hammer())", i, st);
	}
	m = open_as(g_spec, "check");
	ck_assert_int_eq(read_u32(m, 0, &v, &w), 0);
	ck_assert_uint_eq(v, 0);
	ck_assert_int_eq(read_u32(m, 1, &v, NULL), 0);
	ck_assert_uint_eq(v, HAMMER_ROUNDS);
	ck_assert_int_eq(read_u32(m, 2, &v, NULL), 0);
	ck_assert_uint_eq(v, HAMMER_ROUNDS);
	crp_member_close(m);
}
END_TEST

static Suite *file_suite(void)
{
	Suite *s = suite_create("transport_file");
	TCase *sem = tcase_create("semantics");
	TCase *img = tcase_create("images");
	TCase *cmd = tcase_create("commands");
	TCase *conc = tcase_create("concurrency");
	TCase *all[] = { sem, img, cmd, conc };

	for (size_t i = 0; i < CRP_ARRAY_SIZE(all); i++) {
		tcase_add_checked_fixture(all[i], setup, teardown);
		tcase_set_timeout(all[i], 120);
		suite_add_tcase(s, all[i]);
	}
	tcase_add_test(sem, test_sem_rw_roundtrip);
	tcase_add_test(sem, test_sem_reserve_conflict);
	tcase_add_test(sem, test_sem_release_on_close);
	tcase_add_test(sem, test_sem_release_on_death);
	tcase_add_test(sem, test_sem_pr_write_exclusive);
	tcase_add_test(sem, test_sem_pr_preempt);
	tcase_add_test(sem, test_sem_lun_reset);
	tcase_add_test(sem, test_sem_in_sequence);
	tcase_add_test(img, test_create_with_size);
	tcase_add_test(img, test_create_too_small);
	tcase_add_test(img, test_bad_path);
	tcase_add_test(img, test_bad_block_size);
	tcase_add_test(img, test_spec_errors);
	tcase_add_test(cmd, test_inquiry_ids);
	tcase_add_test(cmd, test_unsupported);
	tcase_add_test(cmd, test_order);
	tcase_add_test(cmd, test_chain);
	tcase_add_test(cmd, test_lun_reset_ua);
	tcase_add_test(cmd, test_fence_time);
	tcase_add_test(cmd, test_lock_loss_not_retried);
	tcase_add_test(cmd, test_pr_survives_close);
	tcase_add_test(cmd, test_slots_reused);
	tcase_add_test(conc, test_concurrent_reserve);
	return s;
}

int main(void)
{
	SRunner *sr = srunner_create(file_suite());
	int failed;

	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
