/*
 * The file transport: the shared semantics cases (tests/fixture/semantics.c,
 * the same code that runs against tgt) on a fresh image each, then what is
 * particular to file: images, errors, ordering and chaining, unit
 * attentions, PR state that outlives a nexus, slot reuse, two processes
 * fighting over one reservation, and the injected faults (bad blocks, a
 * deleted unit, a unit not ready) with the crp_inject tool.
 */
#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
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
#include "fixture/child.h"
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
					     "small.img.crpfs-scsi", "big.img",
					     "big.img.crpfs-scsi", "plain.img", "out" };

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

static void fault_gone(void *arg, bool gone)
{
	char err[1024];
	int r = crp_file_fault_set(arg, gone ? CRP_FAULT_GONE : 0, gone ? 0 : CRP_FAULT_GONE, err,
				   sizeof(err));

	ck_assert_msg(r == 0, "%s the unit: %s", gone ? "deleting" : "creating", err);
}

START_TEST(test_sem_lun_gone)
{
	crp_sem_lun_gone(g_spec, fault_gone, g_img);
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
	crp_sem_lun_gone(g_spec, fault_gone, g_img);
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


/* Faults. */

/* READ of blocks @lba..+@n on @m: its result, the command kept in @c. */
static int read_blocks(struct crp_member *m, struct crp_cmd *c, uint64_t lba, uint32_t n)
{
	uint32_t bs = crp_member_block_size(m);
	uint8_t *buf = crp_alloc_buf((size_t)n * bs);
	int r;

	crp_cmd_init(c);
	crp_cdb_read16(c, lba, n, buf, n * bs);
	r = crp_member_exec(m, c);
	free(buf);
	c->buf = NULL;
	return r;
}

static void inject_medium(const char *img, uint32_t bs, uint64_t lba, uint64_t count)
{
	char err[1024];
	int r = crp_file_fault_medium(img, bs, lba, count, err, sizeof(err));

	ck_assert_msg(r == 0, "medium %llu+%llu: %s", (unsigned long long)lba,
		      (unsigned long long)count, err);
}

static void list_faults(const char *img, uint32_t bs, struct crp_faults *f)
{
	char err[1024];

	ck_assert_msg(crp_file_fault_list(img, bs, f, err, sizeof(err)) == 0, "list: %s", err);
}

/* A READ over a bad block is -CRP_EMEDIUM with the first bad LBA; the
 * member serves on; reads around the bad range succeed. */
START_TEST(test_medium_read)
{
	struct crp_member *m = open_as(g_spec, "t");
	struct crp_member_counters *ctr = crp_member_counters(m);
	struct crp_cmd c;
	struct crp_sense s;
	char last[256];

	inject_medium(g_img, 0, 100, 8); /* blocks 100-107 */
	ck_assert_int_eq(read_blocks(m, &c, 96, 16), -CRP_EMEDIUM);
	ck_assert_int_eq(c.status, CRP_SAM_CHECK_CONDITION);
	ck_assert_int_eq(crp_sense_decode(c.sense, c.sense_len, &s), 0);
	ck_assert_uint_eq(s.key, CRP_SK_MEDIUM_ERROR);
	ck_assert_uint_eq(s.asc, 0x11);
	ck_assert_uint_eq(s.ascq, 0x00);
	ck_assert_uint_eq(c.sense[0], 0xf0); /* fixed format, VALID */
	ck_assert(c.info_valid);
	ck_assert_uint_eq(c.info_lba, 100);
	ck_assert_uint_eq(c.resid, c.len); /* no data moved */
	ck_assert(!crp_member_failed(m));
	ck_assert_uint_eq(atomic_load(&ctr->errors), 1);
	crp_member_last_error(m, last, sizeof(last));
	ck_assert_msg(strcasestr(last, "unrecovered read error"), "last error: %s", last);

	/* the first bad block of the range read, not of the bad range */
	ck_assert_int_eq(read_blocks(m, &c, 105, 10), -CRP_EMEDIUM);
	ck_assert_uint_eq(c.info_lba, 105);
	ck_assert_int_eq(read_blocks(m, &c, 107, 1), -CRP_EMEDIUM);
	ck_assert_uint_eq(c.info_lba, 107);
	/* around it: fine, and a good read clears info_valid */
	ck_assert_int_eq(read_blocks(m, &c, 0, 100), 0);
	ck_assert(!c.info_valid);
	ck_assert_int_eq(read_blocks(m, &c, 108, 20), 0);
	ck_assert(!crp_member_failed(m));
	crp_member_close(m);
}
END_TEST

/* A WRITE over bad blocks succeeds and makes just those blocks good. */
START_TEST(test_medium_write_remaps)
{
	struct crp_member *m = open_as(g_spec, "t");
	uint8_t *buf = crp_alloc_buf(16 * 512), *back = crp_alloc_buf(16 * 512);
	struct crp_faults f;
	struct crp_cmd c;

	inject_medium(g_img, 0, 100, 8);
	memset(buf, 0x5a, 2 * 512);
	ck_assert_int_eq(crp_member_write(m, 102 * 512, buf, 2 * 512), 0);
	ck_assert_int_eq(crp_member_read(m, 102 * 512, back, 2 * 512), 0);
	ck_assert_mem_eq(buf, back, 2 * 512);
	list_faults(g_img, 0, &f);
	ck_assert_int_eq(f.nbad, 2);
	ck_assert_uint_eq(f.bad[0].lba, 100);
	ck_assert_uint_eq(f.bad[0].count, 2);
	ck_assert_uint_eq(f.bad[1].lba, 104);
	ck_assert_uint_eq(f.bad[1].count, 4);
	ck_assert_int_eq(read_blocks(m, &c, 100, 8), -CRP_EMEDIUM);
	ck_assert_uint_eq(c.info_lba, 100);
	ck_assert_int_eq(read_blocks(m, &c, 102, 6), -CRP_EMEDIUM);
	ck_assert_uint_eq(c.info_lba, 104);

	/* a write over all of it, and one more */
	memset(buf, 0x6b, 16 * 512);
	ck_assert_int_eq(crp_member_write(m, 96 * 512, buf, 16 * 512), 0);
	list_faults(g_img, 0, &f);
	ck_assert_int_eq(f.nbad, 0);
	ck_assert_int_eq(crp_member_read(m, 96 * 512, back, 16 * 512), 0);
	ck_assert_mem_eq(buf, back, 16 * 512);
	ck_assert(!crp_member_failed(m));
	free(buf);
	free(back);
	crp_member_close(m);
}
END_TEST

/* Bad blocks are sectors underneath: a member of 4096-byte blocks sees a
 * bad 512-byte sector as its block, and lists come in either size. */
START_TEST(test_medium_block_size)
{
	struct crp_member_opts o = { .host = "t", .file_block_size = 4096 };
	struct crp_member *m = NULL;
	struct crp_faults f;
	struct crp_cmd c;
	char err[1024];

	ck_assert_msg(crp_member_open(g_spec, &o, &m, err, sizeof(err)) == 0, "%s", err);
	inject_medium(g_img, 512, 17, 1); /* sector 17: in 4096-byte block 2 */
	ck_assert_int_eq(read_blocks(m, &c, 0, 4), -CRP_EMEDIUM);
	ck_assert_uint_eq(c.info_lba, 2);
	list_faults(g_img, 4096, &f);
	ck_assert_int_eq(f.nbad, 1);
	ck_assert_uint_eq(f.bad[0].lba, 2);
	ck_assert_uint_eq(f.bad[0].count, 1);
	list_faults(g_img, 0, &f);
	ck_assert_uint_eq(f.bad[0].lba, 17);
	/* injected in 4096-byte blocks: 8 sectors each */
	inject_medium(g_img, 4096, 10, 2);
	list_faults(g_img, 512, &f);
	ck_assert_int_eq(f.nbad, 2);
	ck_assert_uint_eq(f.bad[1].lba, 80);
	ck_assert_uint_eq(f.bad[1].count, 16);
	crp_member_close(m);
}
END_TEST

/* The list merges what touches, holds CRP_FAULT_BAD_MAX ranges, refuses
 * more, and counts what a split of a full list forgets. */
START_TEST(test_medium_list_bounds)
{
	struct crp_member *m = open_as(g_spec, "t");
	uint8_t *buf = crp_alloc_buf(512);
	struct crp_faults f;
	char err[1024];

	inject_medium(g_img, 0, 10, 2);
	inject_medium(g_img, 0, 12, 3); /* touches: merged */
	inject_medium(g_img, 0, 8, 4);	/* overlaps: merged */
	list_faults(g_img, 0, &f);
	ck_assert_int_eq(f.nbad, 1);
	ck_assert_uint_eq(f.bad[0].lba, 8);
	ck_assert_uint_eq(f.bad[0].count, 7);
	ck_assert_int_eq(crp_file_fault_clear(g_img, err, sizeof(err)), 0);

	for (int i = 0; i < CRP_FAULT_BAD_MAX; i++)
		inject_medium(g_img, 0, 1000 + 10 * (uint64_t)i, 4);
	ck_assert_int_eq(crp_file_fault_medium(g_img, 0, 5, 1, err, sizeof(err)), -ENOSPC);
	ck_assert_msg(strstr(err, "64"), "the refusal does not name the bound: %s", err);
	/* past the end of the image, and empty ranges, are refused */
	ck_assert_int_eq(crp_file_fault_medium(g_img, 0, IMAGE_SIZE / 512, 1, err, sizeof(err)),
			 -EINVAL);
	ck_assert_msg(strstr(err, "past the end"), "%s", err);
	ck_assert_int_eq(crp_file_fault_medium(g_img, 0, 0, 0, err, sizeof(err)), -EINVAL);
	ck_assert_int_eq(crp_file_fault_medium(g_img, 1000, 0, 1, err, sizeof(err)), -EINVAL);
	/* a write into the middle of the first range splits it: the last
	 * range is forgotten, and counted */
	ck_assert_int_eq(crp_member_write(m, 1001 * 512, buf, 512), 0);
	list_faults(g_img, 0, &f);
	ck_assert_int_eq(f.nbad, CRP_FAULT_BAD_MAX);
	ck_assert_uint_eq(f.bad[0].lba, 1000);
	ck_assert_uint_eq(f.bad[0].count, 1);
	ck_assert_uint_eq(f.bad[1].lba, 1002);
	ck_assert_uint_eq(f.bad[1].count, 2);
	ck_assert_uint_eq(f.dropped, 4);
	ck_assert_int_eq(crp_file_fault_clear(g_img, err, sizeof(err)), 0);
	list_faults(g_img, 0, &f);
	ck_assert_int_eq(f.nbad, 0);
	ck_assert_uint_eq(f.dropped, 0);
	ck_assert_uint_eq(f.flags, 0);
	free(buf);
	crp_member_close(m);
}
END_TEST

/* An LBA above 32 bits goes back in descriptor-format sense. */
START_TEST(test_medium_big_lba)
{
	char img[160], spec[200];
	struct crp_member *m;
	struct crp_cmd c;
	uint64_t lba = (1ull << 32) + 5;

	snprintf(img, sizeof(img), "%s/big.img", g_dir);
	snprintf(spec, sizeof(spec), "file:%s", img);
	make_image(img, (off_t)((lba + 1000) * 512)); /* sparse, about 2 TiB */
	m = open_as(spec, "t");
	inject_medium(img, 0, lba, 1);
	ck_assert_int_eq(read_blocks(m, &c, lba - 3, 8), -CRP_EMEDIUM);
	ck_assert_uint_eq(c.sense[0], 0x72);
	ck_assert(c.info_valid);
	ck_assert_uint_eq(c.info_lba, lba);
	crp_member_close(m);
}
END_TEST

/* Open, read, fail: a deleted unit at open, and what it leaves behind. */
START_TEST(test_gone_file)
{
	struct crp_member *a = open_as(g_spec, "a");
	struct crp_member *b = open_as(g_spec, "b");
	struct crp_member *c = NULL;
	struct crp_member_opts o = { .host = "c" };
	char err[1024];
	uint8_t inq[36];
	struct crp_cmd cmd;

	ck_assert_int_eq(pr_out(b, CRP_PROUT_REGISTER, 0, 0, 0x77), 0);
	fault_gone(g_img, true);
	ck_assert_int_eq(crp_member_open(g_spec, &o, &c, err, sizeof(err)), -CRP_EMEMBER);
	ck_assert_msg(strstr(err, g_img) && strstr(err, "back"), "'%s'", err);
	/* the unit's reset does nothing and fails nothing */
	ck_assert_int_eq(crp_member_lun_reset(a), 0);
	ck_assert(!crp_member_failed(a));
	/* INQUIRY answers while gone, and does not fail the member */
	crp_cmd_init(&cmd);
	crp_cdb_inquiry(&cmd, inq, sizeof(inq));
	ck_assert_int_eq(crp_member_exec(a, &cmd), 0);
	ck_assert_uint_eq(inq[0], 0x7f);
	fault_gone(g_img, false);
	/* a nexus that saw nothing of it hears of a power on; the deleted
	 * unit's registrations are gone */
	ck_assert_int_eq(simple(a, crp_cdb_test_unit_ready), 0);
	ck_assert(crp_member_take_events(a) & CRP_EV_RESET);
	ck_assert_int_eq(pr_out(b, CRP_PROUT_CLEAR, 0, 0x77, 0), -CRP_ECONFLICT);
	ck_assert_int_eq(pr_out(b, CRP_PROUT_REGISTER, 0, 0, 0x77), 0);
	ck_assert_int_eq(pr_out(b, CRP_PROUT_CLEAR, 0, 0x77, 0), 0);
	crp_member_close(b);
	crp_member_close(a);
}
END_TEST

struct later {
	pthread_t thread;
	const char *img;
	unsigned ms;
};

static void *clear_not_ready_later(void *arg)
{
	struct later *l = arg;
	char err[1024];

	crp_sleep_ns((uint64_t)l->ms * 1000000ull);
	if (crp_file_fault_set(l->img, 0, CRP_FAULT_NOT_READY, err, sizeof(err)) < 0)
		fprintf(stderr, "clearing NOT READY: %s\n", err);
	return NULL;
}

/* NOT READY, becoming ready, that passes within the deadline: retried
 * with pauses, the command succeeds, the member serves on. */
START_TEST(test_not_ready_passes)
{
	struct crp_member *m = open_as(g_spec, "t");
	struct crp_member_counters *ctr = crp_member_counters(m);
	struct later l = { .img = g_img, .ms = 400 };
	struct crp_cmd c;
	uint64_t t0;
	char err[1024];

	ck_assert_int_eq(crp_file_fault_set(g_img, CRP_FAULT_NOT_READY, 0, err, sizeof(err)), 0);
	ck_assert_int_eq(pthread_create(&l.thread, NULL, clear_not_ready_later, &l), 0);
	t0 = crp_now_ns();
	ck_assert_int_eq(read_blocks(m, &c, 0, 8), 0);
	ck_assert_uint_ge((crp_now_ns() - t0) / 1000000, 300);
	pthread_join(l.thread, NULL);
	ck_assert_uint_gt(c.ua_retries, 0);
	/* paused, not spun: 10 ms doubling to 250 ms is a handful in 400 ms */
	ck_assert_uint_le(c.ua_retries, 10);
	ck_assert_uint_eq(atomic_load(&ctr->not_ready_retries), c.ua_retries);
	ck_assert(!crp_member_failed(m));
	crp_member_close(m);
}
END_TEST

/* NOT READY past the command's deadline: the member fails, in bounded time. */
START_TEST(test_not_ready_lasts)
{
	struct crp_member_opts o = { .host = "t", .timeout_ms = 1000 };
	struct crp_member *m = NULL;
	struct crp_cmd c;
	char err[1024], last[256];
	uint64_t t0, ms;

	ck_assert_msg(crp_member_open(g_spec, &o, &m, err, sizeof(err)) == 0, "%s", err);
	ck_assert_int_eq(crp_file_fault_set(g_img, CRP_FAULT_NOT_READY, 0, err, sizeof(err)), 0);
	t0 = crp_now_ns();
	ck_assert_int_eq(read_blocks(m, &c, 0, 8), -CRP_EMEMBER);
	ms = (crp_now_ns() - t0) / 1000000;
	ck_assert_msg(ms >= 500 && ms < 1000 + 1000, "failed after %llu ms with a 1000 ms timeout",
		      (unsigned long long)ms);
	ck_assert(crp_member_failed(m));
	ck_assert_int_eq(crp_member_fail_reason(m), -CRP_EMEMBER);
	crp_member_last_error(m, last, sizeof(last));
	ck_assert_msg(strcasestr(last, "becoming ready"), "last error: %s", last);
	ck_assert_int_eq(read_blocks(m, &c, 0, 8), -CRP_EMEMBER);
	ck_assert_int_eq(crp_file_fault_set(g_img, 0, CRP_FAULT_NOT_READY, err, sizeof(err)), 0);
	crp_member_close(m);
}
END_TEST

/* The parent's hold on the file transport's state lock (byte 0 of the
 * sidecar), which every command takes: commands wait for it. */
static int hold_state_lock(const char *img)
{
	struct flock fl = { .l_type = F_WRLCK, .l_whence = SEEK_SET, .l_start = 0, .l_len = 1 };
	char sc[256];
	int fd;

	snprintf(sc, sizeof(sc), "%s.crpfs-scsi", img);
	fd = open(sc, O_RDWR | O_CLOEXEC);
	ck_assert_msg(fd >= 0, "open %s: %s", sc, strerror(errno));
	ck_assert_msg(fcntl(fd, F_OFD_SETLK, &fl) == 0, "lock %s: %s", sc, strerror(errno));
	return fd;
}

/* The child of test_pause_is_not_a_timeout: its exit status says what
 * went wrong (0: nothing). */
static int paused_child(int rd, int wr, void *ctx)
{
	struct crp_member_opts o = { .host = "t", .timeout_ms = 1000 };
	struct crp_member *m = NULL;
	struct crp_cmd c[2];
	struct crp_batch b;
	char err[1024], x = 'x';
	int r;

	(void)ctx;
	if (crp_member_open(g_spec, &o, &m, err, sizeof(err)) < 0)
		return 2;
	if (write(wr, &x, 1) != 1 || read(rd, &x, 1) != 1)
		return 3;
	/* SYNCHRONIZE CACHE goes to the member's I/O thread (never run by
	 * the submitter): the first waits for the state lock, the second
	 * behind it.  Then this process stops for 2.5 timeouts, and the lock
	 * is still held for a moment after it resumes. */
	crp_batch_init(&b);
	for (int i = 0; i < 2; i++) {
		crp_cmd_init(&c[i]);
		crp_cdb_sync_cache16(&c[i]);
		crp_batch_add(&b, &c[i]);
	}
	crp_member_submit(m, (struct crp_cmd *[]){ &c[0], &c[1] }, 2);
	crp_sleep_ns(300 * 1000000ull); /* the I/O thread has taken them up */
	raise(SIGSTOP);
	crp_batch_wait(&b);
	crp_batch_destroy(&b);
	if (c[0].result || c[1].result || crp_member_failed(m)) {
		fprintf(stderr, "after the pause: %s, %s; member %s\n", crp_strerror(c[0].result),
			crp_strerror(c[1].result), crp_member_failed(m) ? "failed" : "in service");
		return 4;
	}
	/* The timeout still works: the lock held, the process running. */
	if (write(wr, &x, 1) != 1 || read(rd, &x, 1) != 1)
		return 5;
	crp_cmd_init(&c[0]);
	crp_cdb_sync_cache16(&c[0]);
	r = crp_member_exec(m, &c[0]);
	if (r == 0 || !crp_member_failed(m)) {
		fprintf(stderr, "a wait of a running process for a held lock: %s; member %s\n",
			crp_strerror(r), crp_member_failed(m) ? "failed" : "in service");
		return 6;
	}
	crp_member_close(m);
	return 0;
}

/*
 * A pause of this host (SIGSTOP here; a paused VM alike) longer than the
 * command timeout is not the target's fault: commands that were waiting
 * for the unit when it began (here for the state lock, which another
 * holder keeps a moment past the resume) complete, and the member stays
 * in service.  The same wait while the process runs still times out and
 * fails the member.
 */
START_TEST(test_pause_is_not_a_timeout)
{
	struct crp_child ch;
	int st, fd;
	char x = 'x';
	pid_t pid;

	ck_assert_int_eq(crp_child_start(&ch, paused_child, NULL), 0);
	pid = ch.pid;
	/* A child that exits early: the read sees the end. */
	ck_assert_int_eq(read(ch.from_child, &x, 1), 1);
	fd = hold_state_lock(g_img);
	/* Resumed while the lock is still held (another host's short hold):
	 * the wait goes on, it has not used up its timeout. */
	ck_assert_msg(crp_child_pause(&ch, 2500 * 1000000ull, &st) == 0,
		      "the child did not stop (status %#x)", st);
	crp_sleep_ns(200 * 1000000ull);
	close(fd);
	if (read(ch.from_child, &x, 1) == 1) {
		fd = hold_state_lock(g_img);
		ck_assert_int_eq(write(ch.to_child, &x, 1), 1);
	} else {
		fd = -1;
	}
	ck_assert_int_eq(waitpid(pid, &st, 0), pid);
	if (fd >= 0)
		close(fd);
	crp_child_close(&ch);
	ck_assert_msg(WIFEXITED(st) && WEXITSTATUS(st) == 0,
		      "the child failed (status %#x: 4 = a command failed after the pause, "
		      "6 = no timeout without one)", st);
}
END_TEST

/*
 * What each answer means for the member, whatever the transport (sense.c
 * and member.c): a bad block, a dead unit, a field crpfs got wrong.  The
 * unit answers every command with the sense given; none of these is
 * retried.
 */
START_TEST(test_sense_judged)
{
	static const struct {
		uint8_t key, asc, ascq;
		bool write;
		int want;
		bool fails;
	} cases[] = {
		{ CRP_SK_MEDIUM_ERROR, 0x11, 0x00, false, -CRP_EMEDIUM, false },
		{ CRP_SK_MEDIUM_ERROR, 0x0c, 0x00, true, -CRP_EMEMBER, true },
		{ CRP_SK_MEDIUM_ERROR, 0x11, 0x00, true, -CRP_EMEMBER, true },
		{ CRP_SK_HARDWARE_ERROR, 0x44, 0x00, false, -CRP_EMEMBER, true },
		{ CRP_SK_HARDWARE_ERROR, 0x44, 0x00, true, -CRP_EMEMBER, true },
		{ CRP_SK_NOT_READY, 0x3a, 0x00, false, -CRP_EMEMBER, true },
		{ CRP_SK_NOT_READY, 0x04, 0x02, false, -CRP_EMEMBER, true },
		{ CRP_SK_ILLEGAL_REQUEST, 0x25, 0x00, true, -CRP_EMEMBER, true },
		{ CRP_SK_ILLEGAL_REQUEST, 0x24, 0x00, false, -EINVAL, false },
		{ CRP_SK_ILLEGAL_REQUEST, 0x21, 0x00, true, -EINVAL, false },
		{ CRP_SK_DATA_PROTECT, 0x27, 0x00, true, -EROFS, false },
		{ CRP_SK_ABORTED_COMMAND, 0x47, 0x00, false, -CRP_ESENSE, false },
	};
	uint8_t *buf = crp_alloc_buf(4096);
	char err[1024];

	memset(buf, 0, 4096);
	for (size_t i = 0; i < CRP_ARRAY_SIZE(cases); i++) {
		struct crp_member *m = open_as(g_spec, "t");
		uint64_t t0;
		struct crp_cmd c;
		int r;

		ck_assert_int_eq(crp_file_fault_sense(g_img, cases[i].key, cases[i].asc,
						      cases[i].ascq, err, sizeof(err)),
				 0);
		crp_cmd_init(&c);
		if (cases[i].write)
			crp_cdb_write16(&c, 8, 8, buf, 4096, false);
		else
			crp_cdb_read16(&c, 8, 8, buf, 4096);
		t0 = crp_now_ns();
		r = crp_member_exec(m, &c);
		ck_assert_msg(r == cases[i].want && crp_member_failed(m) == cases[i].fails,
			      "%s with sense %x/%02x/%02x: %d (%s), member %s", crp_cdb_name(&c),
			      cases[i].key, cases[i].asc, cases[i].ascq, r, crp_strerror(r),
			      crp_member_failed(m) ? "failed" : "in service");
		ck_assert_uint_eq(c.ua_retries, 0);
		ck_assert_uint_lt((crp_now_ns() - t0) / 1000000, 1000);
		if (cases[i].fails) {
			ck_assert_int_eq(crp_member_fail_reason(m), -CRP_EMEMBER);
			ck_assert_int_eq(read_blocks(m, &c, 0, 1), -CRP_EMEMBER);
		}
		ck_assert_int_eq(crp_file_fault_set(g_img, 0, CRP_FAULT_SENSE, err, sizeof(err)), 0);
		if (!cases[i].fails)
			ck_assert_int_eq(read_blocks(m, &c, 0, 1), 0);
		crp_member_close(m);
	}
	ck_assert_int_eq(crp_file_fault_sense(g_img, CRP_SK_UNIT_ATTENTION, 0x29, 0, err,
					      sizeof(err)),
			 -EINVAL);
	free(buf);
}
END_TEST

/* The path of the crp_inject tool: next to this test program. */
static void inject_path(char *buf, size_t len)
{
	char self[512];
	ssize_t n = readlink("/proc/self/exe", self, sizeof(self) - 1);

	ck_assert_int_gt(n, 0);
	self[n] = '\0';
	snprintf(buf, len, "%s/crp_inject", dirname(self));
	ck_assert_msg(access(buf, X_OK) == 0, "%s is not built", buf);
}

/* Run crp_inject with @args (NULL-terminated); its output in g_dir/out. */
static int run_inject(const char *const *args, char *out, size_t outlen)
{
	char tool[600], outpath[128];
	const char *argv[16];
	int n = 0, st, fd;
	pid_t pid;

	inject_path(tool, sizeof(tool));
	snprintf(outpath, sizeof(outpath), "%s/out", g_dir);
	argv[n++] = tool;
	for (; *args && n < 15; args++)
		argv[n++] = *args;
	argv[n] = NULL;
	pid = fork();
	ck_assert_int_ge(pid, 0);
	if (pid == 0) {
		fd = open(outpath, O_WRONLY | O_CREAT | O_TRUNC, 0600);
		if (fd < 0)
			_exit(126);
		dup2(fd, 1);
		dup2(fd, 2);
		execv(tool, (char *const *)argv);
		_exit(127);
	}
	ck_assert_int_eq(waitpid(pid, &st, 0), pid);
	fd = open(outpath, O_RDONLY);
	ck_assert_int_ge(fd, 0);
	n = (int)read(fd, out, outlen - 1);
	out[n > 0 ? n : 0] = '\0';
	close(fd);
	ck_assert(WIFEXITED(st));
	return WEXITSTATUS(st);
}

/* crp_inject, another process, changes what an open member sees at once. */
START_TEST(test_inject_tool)
{
	struct crp_member *m = open_as(g_spec, "t");
	char out[2048], plain[160];
	struct crp_cmd c;

	ck_assert_int_eq(run_inject((const char *[]){ g_img, "medium", "40", "3", NULL }, out,
				    sizeof(out)),
			 0);
	ck_assert_int_eq(read_blocks(m, &c, 32, 16), -CRP_EMEDIUM);
	ck_assert_uint_eq(c.info_lba, 40);
	ck_assert_int_eq(run_inject((const char *[]){ g_img, "medium", "90", NULL }, out,
				    sizeof(out)),
			 0);
	ck_assert_int_eq(run_inject((const char *[]){ g_img, "list", NULL }, out, sizeof(out)), 0);
	ck_assert_str_eq(out, "unit: present\nready: yes\nmedium: 40 3\nmedium: 90 1\n");
	ck_assert_int_eq(run_inject((const char *[]){ "-b", "4096", g_img, "list", NULL }, out,
				    sizeof(out)),
			 0);
	ck_assert_str_eq(out, "unit: present\nready: yes\nmedium: 5 1\nmedium: 11 1\n");

	ck_assert_int_eq(run_inject((const char *[]){ g_img, "notready", NULL }, out, sizeof(out)),
			 0);
	ck_assert_int_eq(run_inject((const char *[]){ g_img, "gone", NULL }, out, sizeof(out)), 0);
	ck_assert_int_eq(run_inject((const char *[]){ g_img, "list", NULL }, out, sizeof(out)), 0);
	ck_assert_str_eq(out, "unit: gone\nready: no\nmedium: 40 3\nmedium: 90 1\n");
	ck_assert_int_eq(simple(m, crp_cdb_test_unit_ready), -CRP_EMEMBER);
	ck_assert(crp_member_failed(m));
	ck_assert_int_eq(run_inject((const char *[]){ g_img, "sense", "4", "44", "0", NULL }, out,
				    sizeof(out)),
			 0);
	ck_assert_int_eq(run_inject((const char *[]){ g_img, "list", NULL }, out, sizeof(out)), 0);
	ck_assert_str_eq(out, "unit: gone\nready: no\nsense: 4 44 00\nmedium: 40 3\nmedium: 90 1\n");
	ck_assert_int_eq(run_inject((const char *[]){ g_img, "back", NULL }, out, sizeof(out)), 0);
	ck_assert_int_eq(run_inject((const char *[]){ g_img, "list", NULL }, out, sizeof(out)), 0);
	ck_assert_str_eq(out, "unit: present\nready: yes\nmedium: 40 3\nmedium: 90 1\n");
	ck_assert_int_eq(run_inject((const char *[]){ g_img, "clear", NULL }, out, sizeof(out)), 0);
	ck_assert_int_eq(run_inject((const char *[]){ g_img, "list", NULL }, out, sizeof(out)), 0);
	ck_assert_str_eq(out, "unit: present\nready: yes\n");
	crp_member_close(m);

	/* an image crpfs never opened has no state file: refused, nothing made */
	snprintf(plain, sizeof(plain), "%s/plain.img", g_dir);
	make_image(plain, 1 << 20);
	ck_assert_int_eq(run_inject((const char *[]){ plain, "gone", NULL }, out, sizeof(out)), 1);
	ck_assert_msg(strstr(out, "never opened as a crpfs member"), "'%s'", out);
	snprintf(out, sizeof(out), "%s.crpfs-scsi", plain);
	ck_assert_int_eq(access(out, F_OK), -1);
	ck_assert_int_eq(run_inject((const char *[]){ g_img, "medium", "99999999", NULL }, out,
				    sizeof(out)),
			 1);
	ck_assert_msg(strstr(out, "past the end"), "'%s'", out);
	/* bad usage */
	ck_assert_int_eq(run_inject((const char *[]){ g_img, NULL }, out, sizeof(out)), 2);
	ck_assert_int_eq(run_inject((const char *[]){ g_img, "frob", NULL }, out, sizeof(out)), 2);
	ck_assert_int_eq(run_inject((const char *[]){ g_img, "medium", "x", NULL }, out,
				    sizeof(out)),
			 2);
	ck_assert_int_eq(run_inject((const char *[]){ g_img, "medium", "1", "0", NULL }, out,
				    sizeof(out)),
			 2);
	ck_assert_int_eq(run_inject((const char *[]){ g_img, "sense", "6", "29", "0", NULL }, out,
				    sizeof(out)),
			 1);
	ck_assert_msg(strstr(out, "UNIT ATTENTION"), "'%s'", out);
	ck_assert_int_eq(run_inject((const char *[]){ g_img, "sense", "4", "444", "0", NULL }, out,
				    sizeof(out)),
			 2);
	ck_assert_int_eq(run_inject((const char *[]){ g_img, "gone", "1", NULL }, out, sizeof(out)),
			 2);
	ck_assert_msg(strstr(out, "usage:"), "'%s'", out);
}
END_TEST

/* A version 1 state file (no faults area) is brought up to date in place,
 * its reservations kept. */
START_TEST(test_sidecar_v1)
{
	char sc[160];
	uint8_t v1[8256];
	struct crp_member *a, *b;
	struct stat st;
	uint32_t v;
	int fd;

	memset(v1, 0, sizeof(v1));
	memcpy(v1, &(uint64_t){ 0x4352505343534931ull }, 8); /* magic */
	memcpy(v1 + 8, &(uint32_t){ 1 }, 4);		      /* version */
	memcpy(v1 + 12, &(uint32_t){ 128 }, 4);		      /* nslots */
	memcpy(v1 + 64, &(uint64_t){ 0x55 }, 8);	      /* slot 0 registered */
	snprintf(sc, sizeof(sc), "%s.crpfs-scsi", g_img);
	fd = open(sc, O_RDWR | O_CREAT | O_TRUNC, 0644);
	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(write(fd, v1, sizeof(v1)), (ssize_t)sizeof(v1));
	close(fd);

	a = open_as(g_spec, "a");
	ck_assert_int_eq(stat(sc, &st), 0);
	ck_assert_int_eq(st.st_size, 9344);
	fd = open(sc, O_RDONLY);
	ck_assert_int_eq(pread(fd, &v, 4, 8), 4);
	close(fd);
	ck_assert_uint_eq(v, 2);
	/* the registration survived: slot 0's key is still there */
	b = open_as(g_spec, "b");
	ck_assert_int_eq(pr_out(b, CRP_PROUT_REGISTER, 0, 0, 0x66), 0);
	ck_assert_int_eq(pr_out(b, CRP_PROUT_PREEMPT, CRP_PR_TYPE_WRITE_EXCLUSIVE, 0x66, 0x55), 0);
	ck_assert_int_eq(pr_out(b, CRP_PROUT_CLEAR, 0, 0x66, 0), 0);
	inject_medium(g_img, 0, 1, 1);
	ck_assert_int_eq(read_u32(a, 1, &v, NULL), -CRP_EMEDIUM);
	crp_member_close(b);
	crp_member_close(a);
}
END_TEST

static Suite *file_suite(void)
{
	Suite *s = suite_create("transport_file");
	TCase *sem = tcase_create("semantics");
	TCase *img = tcase_create("images");
	TCase *cmd = tcase_create("commands");
	TCase *conc = tcase_create("concurrency");
	TCase *flt = tcase_create("faults");
	TCase *all[] = { sem, img, cmd, conc, flt };

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
	tcase_add_test(sem, test_sem_lun_gone);
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
	tcase_add_test(flt, test_medium_read);
	tcase_add_test(flt, test_medium_write_remaps);
	tcase_add_test(flt, test_medium_block_size);
	tcase_add_test(flt, test_medium_list_bounds);
	tcase_add_test(flt, test_medium_big_lba);
	tcase_add_test(flt, test_gone_file);
	tcase_add_test(flt, test_not_ready_passes);
	tcase_add_test(flt, test_not_ready_lasts);
	tcase_add_test(flt, test_pause_is_not_a_timeout);
	tcase_add_test(flt, test_sense_judged);
	tcase_add_test(flt, test_inject_tool);
	tcase_add_test(flt, test_sidecar_v1);
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
