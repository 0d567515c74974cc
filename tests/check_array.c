/* The array on file members: data, parity, round trips, rebuild, bad input. */
#include <check.h>
#include <pthread.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../src/raid/array_i.h"
#include "crpfs/array.h"
#include "crpfs/err.h"
#include "crpfs/util.h"

#define MEMBER_SIZE (8ull << 20)

static char dir[64];
static char specs_buf[8][128];
static const char *specs[8];

static void make_specs(int n)
{
	snprintf(dir, sizeof(dir), "/tmp/crpfs-arr.XXXXXX");
	ck_assert_ptr_nonnull(mkdtemp(dir));
	for (int i = 0; i < n; i++) {
		snprintf(specs_buf[i], sizeof(specs_buf[i]), "file:%s/m%d", dir, i);
		specs[i] = specs_buf[i];
	}
}

static void remove_specs(int n)
{
	char p[160];

	for (int i = 0; i < n; i++) {
		snprintf(p, sizeof(p), "%s/m%d", dir, i);
		unlink(p);
		snprintf(p, sizeof(p), "%s/m%d.crpfs-scsi", dir, i);
		unlink(p);
	}
	rmdir(dir);
}

/* hold_us: the array's max_hold_us (0: the default). */
static struct crp_array *open_array_hold(int n, int level, uint32_t chunk, enum crp_lock_mode mode,
					 uint32_t hold_us)
{
	struct crp_array_opts o = { .host = "check", .create = true, .create_size = MEMBER_SIZE,
				    .lock_mode = mode, .max_hold_us = hold_us };
	struct crp_array *a;
	struct crp_geom g;
	char err[512];
	int r;

	r = crp_array_open(specs, n, &o, &a, err, sizeof(err));
	ck_assert_msg(r == 0, "open: %s", err);
	r = crp_geom_init(&g, level, n, chunk, chunk, crp_array_min_member_size(a), err,
			  sizeof(err));
	ck_assert_msg(r == 0, "geometry: %s", err);
	ck_assert_int_eq(crp_array_set_geometry(a, &g), 0);
	return a;
}

static struct crp_array *open_array(int n, int level, uint32_t chunk, enum crp_lock_mode mode)
{
	return open_array_hold(n, level, chunk, mode, 0);
}

static void verify_all(struct crp_array *a)
{
	const struct crp_geom *g = crp_array_geom(a);

	for (uint64_t s = 0; s < g->nstripes; s++) {
		int r = crp_array_verify_stripe(a, s);

		ck_assert_msg(r == 0, "stripe %llu: %s", (unsigned long long)s, crp_strerror(r));
	}
}

/* Random writes of every size against a shadow copy; read back; parity. */
static void roundtrip(int n, int level, uint32_t chunk, enum crp_lock_mode mode)
{
	struct crp_array *a;
	uint64_t cap, seed = 42;
	uint8_t *shadow, *buf;

	make_specs(n);
	a = open_array(n, level, chunk, mode);
	cap = CRP_MIN(crp_geom_capacity(crp_array_geom(a)), 2ull << 20);
	shadow = crp_alloc_buf(cap);
	buf = crp_alloc_buf(cap);
	for (int i = 0; i < 200; i++) {
		uint64_t off, len;

		seed = seed * 6364136223846793005ull + 1442695040888963407ull;
		off = (seed >> 20) % (cap / 512) * 512;
		len = CRP_MIN(((seed >> 40) % (3 * chunk / 512) + 1) * 512, cap - off);
		for (uint64_t k = 0; k < len; k++)
			buf[k] = (uint8_t)(seed >> (k % 56)) ^ (uint8_t)k;
		ck_assert_int_eq(crp_array_write(a, off, buf, len), 0);
		memcpy(shadow + off, buf, len);
	}
	ck_assert_int_eq(crp_array_read(a, 0, buf, cap), 0);
	ck_assert_msg(memcmp(buf, shadow, cap) == 0, "data read back differs");
	verify_all(a);
	ck_assert_uint_gt(crp_array_counters(a)->rmw + crp_array_counters(a)->rcw, 0);
	crp_array_close(a);
	free(shadow);
	free(buf);
	remove_specs(n);
}

START_TEST(test_roundtrip_raid4)
{
	roundtrip(4, 4, 4096, CRP_LOCK_RESERVE);
}
END_TEST

START_TEST(test_roundtrip_raid5)
{
	roundtrip(3, 5, 4096, CRP_LOCK_RESERVE);
	roundtrip(5, 5, 65536, CRP_LOCK_RESERVE);
}
END_TEST

START_TEST(test_roundtrip_raid6)
{
	roundtrip(4, 6, 4096, CRP_LOCK_RESERVE);
	roundtrip(6, 6, 16384, CRP_LOCK_RESERVE);
}
END_TEST

START_TEST(test_roundtrip_pr)
{
	roundtrip(4, 5, 8192, CRP_LOCK_PR);
	roundtrip(5, 6, 8192, CRP_LOCK_PR);
}
END_TEST

START_TEST(test_full_stripe)
{
	struct crp_array *a;
	uint8_t *buf;
	uint64_t sb;

	make_specs(4);
	a = open_array(4, 5, 4096, CRP_LOCK_RESERVE);
	sb = crp_geom_stripe_bytes(crp_array_geom(a));
	buf = crp_alloc_buf(sb * 4);
	memset(buf, 0x5a, sb * 4);
	ck_assert_int_eq(crp_array_write(a, sb, buf, sb * 4), 0);
	ck_assert_uint_eq(crp_array_counters(a)->full_stripe, 4);
	ck_assert_uint_eq(crp_array_counters(a)->rmw + crp_array_counters(a)->rcw, 0);
	verify_all(a);
	crp_array_close(a);
	free(buf);
	remove_specs(4);
}
END_TEST

/* Round trips on the critical path, counted by the transaction hook. */
struct trace {
	int n;
	struct crp_txn_stats st[8];
};

static void hook(void *ctx, const struct crp_txn_stats *st)
{
	struct trace *t = ctx;

	if (t->n < 8)
		t->st[t->n++] = *st;
}

static void round_trips(enum crp_lock_mode mode)
{
	struct crp_array *a;
	struct trace tr = { 0 };
	uint8_t *buf = crp_alloc_buf(8192);
	uint64_t sb, res_before;
	struct crp_array_iov iov[2];
	int n = 3;

	make_specs(n);
	/* The hold-time bound out of reach: what is counted here must not
	 * depend on how fast the members answer (a parity is released or kept
	 * only once the whole stripe is written). */
	a = open_array_hold(n, 5, 4096, mode, 10 * 1000 * 1000);
	crp_array_set_txn_hook(a, hook, &tr);
	sb = crp_geom_stripe_bytes(crp_array_geom(a));

	/* Uncached small write: lock+read, then write(+release). */
	res_before = crp_array_counters(a)->lock_acquires;
	ck_assert_int_eq(crp_array_write(a, 4096 + 512, buf, 1024), 0);
	ck_assert_int_eq(tr.n, 1);
	ck_assert_uint_le(tr.st[0].round_trips, 2);
	ck_assert_uint_eq(tr.st[0].reserves, 2);  /* one data member and P */
	ck_assert_uint_eq(tr.st[0].releases, 2);  /* chained on the WRITEs */
	ck_assert_uint_eq(tr.st[0].cache_hits, 0);
	ck_assert_uint_eq(crp_array_counters(a)->lock_acquires - res_before, 2);

	/* Two small writes to stripes with the same layout (s and s + n), as one
	 * batch: the second finds both locks cached and costs its reads and its
	 * write only. */
	tr.n = 0;
	iov[0] = (struct crp_array_iov){ 2 * sb, buf, 4096 };
	iov[1] = (struct crp_array_iov){ (2 + (uint64_t)n) * sb, buf + 4096, 4096 };
	ck_assert_int_eq(crp_array_writev(a, iov, 2), 0);
	ck_assert_int_eq(tr.n, 2);
	ck_assert_uint_le(tr.st[0].round_trips, 2);
	ck_assert_uint_eq(tr.st[0].releases, 0); /* kept for the queued work */
	ck_assert_uint_eq(tr.st[1].round_trips, 2);
	ck_assert_uint_eq(tr.st[1].reserves, 0);
	ck_assert_uint_eq(tr.st[1].cache_hits, 2);
	ck_assert_uint_eq(tr.st[1].releases, 2); /* nothing queued after it */
	ck_assert_uint_gt(tr.st[1].reads, 0);
	verify_all(a);
	crp_array_close(a);
	free(buf);
	remove_specs(n);
}

START_TEST(test_round_trips_reserve)
{
	round_trips(CRP_LOCK_RESERVE);
}
END_TEST

START_TEST(test_round_trips_pr)
{
	round_trips(CRP_LOCK_PR);
}
END_TEST

/* Every member, taken as the bad one, is rebuilt byte-exact from the rest. */
static void rebuild(int n, int level)
{
	struct crp_array *a;
	uint64_t cap;
	uint8_t *data, *out;

	make_specs(n);
	a = open_array(n, level, 4096, CRP_LOCK_RESERVE);
	cap = crp_geom_stripe_bytes(crp_array_geom(a)) * (uint64_t)n * 2;
	data = crp_alloc_buf(cap);
	out = crp_alloc_buf(cap);
	for (uint64_t i = 0; i < cap; i++)
		data[i] = (uint8_t)(i * 7 + i / 4096);
	ck_assert_int_eq(crp_array_write(a, 0, data, cap), 0);
	for (int bad = 0; bad < n; bad++) {
		memset(out, 0, cap);
		ck_assert_int_eq(crp_array_rebuild_range(a, 0, out, cap, bad, false), 0);
		ck_assert_msg(memcmp(out, data, cap) == 0, "rebuild without member %d differs", bad);
	}
	crp_array_close(a);
	free(data);
	free(out);
	remove_specs(n);
}

START_TEST(test_rebuild)
{
	rebuild(3, 5);
	rebuild(4, 4);
	rebuild(5, 6);
}
END_TEST

/*
 * pr mode: a read of a chunk on a missing member, rebuilt from the rest of
 * its stripe while another host updates another chunk of that stripe, is
 * the chunk as it is, never one mixed from the writer's new parity and its
 * old data.  The writer (CRP_DEBUG_SLOW_DATA) sends its data WRITE 300 ms
 * after its parity WRITE; the reader starts once the new parity is on the
 * disk.  A Write Exclusive reservation lets reads through, so only the
 * reader's lock on the parity keeps it off the half-written stripe.
 */
struct slow_writer {
	struct crp_array *a;
	uint64_t off;
	const uint8_t *buf;
	uint32_t len;
	int r;
};

static void *slow_write(void *arg)
{
	struct slow_writer *w = arg;

	w->r = crp_array_write(w->a, w->off, w->buf, w->len);
	return NULL;
}

static int open_gate(void *ctx, uint64_t *until)
{
	(void)ctx;
	*until = 0;
	return 0;
}

static struct crp_array *open_host(int n, const char *host, unsigned debug)
{
	struct crp_array_opts o = { .host = host, .lock_mode = CRP_LOCK_PR, .debug = debug };
	struct crp_array *a;
	struct crp_geom g;
	char err[512];

	ck_assert_msg(crp_array_open(specs, n, &o, &a, err, sizeof(err)) == 0, "open: %s", err);
	ck_assert_msg(crp_geom_init(&g, 5, n, 4096, 4096, crp_array_min_member_size(a), err,
				    sizeof(err)) == 0, "geometry: %s", err);
	ck_assert_int_eq(crp_array_set_geometry(a, &g), 0);
	return a;
}

START_TEST(test_degraded_read_sees_whole_stripe)
{
	const int n = 4;
	const uint64_t s = 3;
	struct crp_array *wa, *rb;
	const struct crp_geom *g;
	struct slow_writer w;
	struct crp_loc l1;
	struct crp_cmd c;
	uint8_t *stripe, *newc, *pold, *pnow, *got;
	uint64_t sb, poff;
	uint32_t bs;
	pthread_t th;
	int pm, qm, polls = 0;

	make_specs(n);
	crp_array_close(open_array(n, 5, 4096, CRP_LOCK_PR)); /* creates the images */
	wa = open_host(n, "writer", CRP_DEBUG_SLOW_DATA);
	rb = open_host(n, "reader", 0);
	g = crp_array_geom(rb);
	sb = crp_geom_stripe_bytes(g);
	stripe = crp_alloc_buf(sb);
	newc = crp_alloc_buf(g->chunk);
	pold = crp_alloc_buf(g->chunk);
	pnow = crp_alloc_buf(g->chunk);
	got = crp_alloc_buf(g->chunk);
	for (uint64_t i = 0; i < sb; i++)
		stripe[i] = (uint8_t)(i * 7 + 1);
	memset(newc, 0xa5, g->chunk);
	ck_assert_int_eq(crp_array_write(rb, s * sb, stripe, (uint32_t)sb), 0);

	/* The reader lost the member of chunk 1; it rebuilds chunk 1 from
	 * chunk 0, chunk 2 and P.  It has joined (a gate), as a mounted host. */
	crp_geom_map(g, s * sb + g->chunk, &l1);
	crp_geom_parity(g, s, &pm, &qm);
	crp_array_set_mstate(rb, l1.member, CRP_AM_FAILED);
	crp_array_set_gate(rb, open_gate, NULL);
	poff = crp_geom_member_off(g, s, 0);
	bs = crp_member_block_size(crp_array_member(rb, pm));
	crp_cmd_init(&c);
	crp_cdb_read16(&c, poff / bs, g->chunk / bs, pold, g->chunk);
	ck_assert_int_eq(crp_member_exec(crp_array_member(rb, pm), &c), 0);

	w = (struct slow_writer){ wa, s * sb, newc, g->chunk, -1 };
	ck_assert_int_eq(pthread_create(&th, NULL, slow_write, &w), 0);
	/* Until the writer's new parity is on the disk (its data is not). */
	for (;;) {
		crp_cmd_init(&c);
		crp_cdb_read16(&c, poff / bs, g->chunk / bs, pnow, g->chunk);
		ck_assert_int_eq(crp_member_exec(crp_array_member(rb, pm), &c), 0);
		if (memcmp(pnow, pold, g->chunk))
			break;
		ck_assert_msg(++polls < 100000, "the writer's parity never landed");
		crp_sleep_ns(100000);
	}
	ck_assert_int_eq(crp_array_read(rb, s * sb + g->chunk, got, g->chunk), 0);
	ck_assert_uint_eq(crp_array_counters(rb)->degraded_reads, 1);
	ck_assert_msg(memcmp(got, stripe + g->chunk, g->chunk) == 0,
		      "chunk 1 rebuilt from a half-written stripe");
	pthread_join(th, NULL);
	ck_assert_int_eq(w.r, 0);
	crp_array_close(wa);
	crp_array_close(rb);
	free(stripe);
	free(newc);
	free(pold);
	free(pnow);
	free(got);
	remove_specs(n);
}
END_TEST

/* A corrupted chunk is repaired in place from parity. */
START_TEST(test_repair)
{
	struct crp_array *a;
	struct crp_loc loc;
	uint8_t *data, *out, *junk;

	make_specs(4);
	a = open_array(4, 5, 4096, CRP_LOCK_RESERVE);
	data = crp_alloc_buf(65536);
	out = crp_alloc_buf(4096);
	junk = crp_alloc_buf(4096);
	memset(data, 0x33, 65536);
	memset(junk, 0xee, 4096);
	ck_assert_int_eq(crp_array_write(a, 0, data, 65536), 0);
	crp_geom_map(crp_array_geom(a), 8192, &loc);
	ck_assert_int_eq(crp_member_write(crp_array_member(a, loc.member), loc.member_off, junk, 4096), 0);
	ck_assert_int_eq(crp_array_verify_stripe(a, loc.stripe), -CRP_EPARITY);
	ck_assert_int_eq(crp_array_rebuild_range(a, 8192, out, 4096, loc.member, true), 0);
	ck_assert_int_eq(memcmp(out, data, 4096), 0);
	ck_assert_int_eq(crp_array_read(a, 8192, out, 4096), 0);
	ck_assert_int_eq(memcmp(out, data, 4096), 0);
	ck_assert_int_eq(crp_array_verify_stripe(a, loc.stripe), 0);

	/* Parity left stale (a host died between its data and parity WRITEs):
	 * resync recomputes it from the data. */
	{
		int p, q;

		crp_geom_parity(crp_array_geom(a), loc.stripe, &p, &q);
		ck_assert_int_eq(crp_member_write(crp_array_member(a, p),
						  crp_geom_member_off(crp_array_geom(a), loc.stripe, 0),
						  junk, 4096), 0);
		ck_assert_int_eq(crp_array_verify_stripe(a, loc.stripe), -CRP_EPARITY);
		ck_assert_int_eq(crp_array_resync_stripe(a, loc.stripe), 0);
		ck_assert_int_eq(crp_array_verify_stripe(a, loc.stripe), 0);
		ck_assert_int_eq(crp_array_read(a, 0, data + 4096, 4096), 0);
		ck_assert_int_eq(memcmp(data, data + 4096, 4096), 0);
	}
	crp_array_close(a);
	free(data);
	free(out);
	free(junk);
	remove_specs(4);
}
END_TEST

/* Mark the 4096 bytes at @moff of member @m unreadable (MEDIUM ERROR until
 * written). */
static void bad_block(int m, uint64_t moff)
{
	char err[256];

	ck_assert_msg(crp_file_fault_medium(specs_buf[m] + 5, 4096, moff / 4096, 1, err,
					    sizeof(err)) == 0, "inject: %s", err);
}

static int bad_ranges(int n)
{
	int total = 0;

	for (int m = 0; m < n; m++) {
		struct crp_faults f;
		char err[256];

		ck_assert_int_eq(crp_file_fault_list(specs_buf[m] + 5, 4096, &f, err, sizeof(err)), 0);
		total += f.nbad;
	}
	return total;
}

/*
 * A write whose stripe transaction reads an unreadable block (the old
 * parity, another column's rows) does not fail and costs no member: the
 * block is read around (rebuilt from parity) and the write puts it back.
 * RAID-5, then RAID-6 with parity and a data column of the same rows bad.
 */
static void medium_on_write(int n, int level)
{
	const uint64_t chunk = 16384;
	struct crp_array *a;
	struct crp_loc loc;
	uint8_t *data, *out;
	int p, q, other;

	make_specs(n);
	a = open_array(n, level, (uint32_t)chunk, CRP_LOCK_RESERVE);
	data = crp_alloc_buf(1 << 20);
	out = crp_alloc_buf(1 << 20);
	for (size_t k = 0; k < (1 << 20); k++)
		data[k] = (uint8_t)(k * 7 + k / 4093);
	ck_assert_int_eq(crp_array_write(a, 0, data, 1 << 20), 0);
	/* The second block of stripe 1's first data chunk is rewritten; its
	 * parity, and on RAID-6 another data column, are bad in those rows. */
	crp_geom_map(crp_array_geom(a), crp_geom_stripe_bytes(crp_array_geom(a)) + 4096, &loc);
	crp_geom_parity(crp_array_geom(a), loc.stripe, &p, &q);
	bad_block(p, loc.member_off);
	other = -1;
	if (level == 6) {
		for (int m = 0; m < n && other < 0; m++)
			if (m != p && m != q && m != loc.member)
				other = m;
		bad_block(other, loc.member_off);
	}
	ck_assert_int_eq(bad_ranges(n), level == 6 ? 2 : 1);
	memset(data + crp_geom_stripe_bytes(crp_array_geom(a)) + 4096, 0x5c, 4096);
	ck_assert_int_eq(crp_array_write(a, crp_geom_stripe_bytes(crp_array_geom(a)) + 4096,
					 data + crp_geom_stripe_bytes(crp_array_geom(a)) + 4096, 4096),
			 0);
	/* The parity was written: its sector is good again.  A column only
	 * read around stays bad until it is read (or written). */
	ck_assert_int_eq(bad_ranges(n), level == 6 ? 1 : 0);
	ck_assert_int_eq(crp_array_nlost(a), 0);
	ck_assert_int_eq(crp_array_read(a, 0, out, 1 << 20), 0);
	ck_assert_msg(memcmp(out, data, 1 << 20) == 0, "RAID-%d: data differs after the write", level);
	ck_assert_int_eq(bad_ranges(n), 0);
	verify_all(a);
	crp_array_close(a);
	free(data);
	free(out);
	remove_specs(n);
}

START_TEST(test_medium_on_write)
{
	medium_on_write(4, 5);
	medium_on_write(6, 6);
}
END_TEST

START_TEST(test_bad_input)
{
	struct crp_array_opts o = { .host = "check", .create = true, .create_size = MEMBER_SIZE };
	struct crp_array *a = NULL;
	const char *twice[3];
	const char *bad[3] = { "nonsense", "file:/tmp/x", "file:/tmp/y" };
	char err[512] = "";
	uint8_t buf[4096] = { 0 };

	make_specs(3);
	twice[0] = specs[0];
	twice[1] = specs[1];
	twice[2] = specs[0];
	ck_assert_int_lt(crp_array_open(twice, 3, &o, &a, err, sizeof(err)), 0);
	ck_assert_ptr_nonnull(strstr(err, "twice"));
	err[0] = '\0';
	ck_assert_int_eq(crp_array_open(bad, 3, &o, &a, err, sizeof(err)), -CRP_EBADSPEC);
	ck_assert_ptr_nonnull(strstr(err, "nonsense"));
	ck_assert_int_lt(crp_array_open(specs, 0, &o, &a, err, sizeof(err)), 0);

	a = open_array(3, 5, 4096, CRP_LOCK_RESERVE);
	ck_assert_int_eq(crp_array_write(a, 100, buf, 512), -EINVAL);
	ck_assert_int_eq(crp_array_write(a, 0, buf, 100), -EINVAL);
	ck_assert_int_eq(crp_array_read(a, crp_geom_capacity(crp_array_geom(a)), buf, 512), -ERANGE);
	ck_assert_int_eq(crp_array_verify_stripe(a, crp_array_geom(a)->nstripes), -ERANGE);
	crp_array_close(a);
	remove_specs(3);
}
END_TEST

/* The metadata lock excludes another host, survives this host's own
 * stripe transactions, and is released by unlock. */
struct locker {
	struct crp_array *a;
	volatile int got;
};

static void *lock_thread(void *p)
{
	struct locker *l = p;

	ck_assert_int_eq(crp_array_meta_lock(l->a), 0);
	l->got = 1;
	ck_assert_int_eq(crp_array_meta_unlock(l->a), 0);
	return NULL;
}

START_TEST(test_meta_lock)
{
	struct crp_array_opts o = { .host = "other" };
	struct crp_array *a, *b;
	struct locker lb;
	pthread_t th;
	uint8_t *buf = crp_alloc_buf(4096);
	char err[512];

	make_specs(3);
	a = open_array(3, 5, 4096, CRP_LOCK_RESERVE);
	ck_assert_msg(crp_array_open(specs, 3, &o, &b, err, sizeof(err)) == 0, "%s", err);
	ck_assert_int_eq(crp_array_set_geometry(b, crp_array_geom(a)), 0);

	ck_assert_int_eq(crp_array_meta_lock(a), 0);
	/* Our own writes, member 0 included, go through and keep the lock. */
	for (uint64_t s = 0; s < 6; s++)
		ck_assert_int_eq(crp_array_write(a, s * 8192, buf, 4096), 0);
	lb = (struct locker){ .a = b };
	ck_assert_int_eq(pthread_create(&th, NULL, lock_thread, &lb), 0);
	crp_sleep_ns(300000000ull);
	ck_assert_msg(!lb.got, "another host took the metadata lock while we held it");
	ck_assert_int_eq(crp_array_meta_unlock(a), 0);
	pthread_join(th, NULL);
	ck_assert_int_eq(lb.got, 1);
	crp_array_close(b);
	crp_array_close(a);
	free(buf);
	remove_specs(3);
}
END_TEST

/* While this host holds the metadata lock, the members its stripe writes
 * reserve stay reserved (each is reserved once however many stripes are
 * written), and the unlock releases them all: another host then takes
 * every member at once. */
static void meta_lock_keeps(enum crp_lock_mode mode)
{
	struct crp_array_opts o = { .host = "other", .lock_mode = mode };
	struct crp_array *a, *b;
	uint8_t *buf = crp_alloc_buf(4096);
	uint64_t sb, before;
	char err[512];
	int n = 4;

	make_specs(n);
	a = open_array(n, 5, 4096, mode);
	ck_assert_msg(crp_array_open(specs, n, &o, &b, err, sizeof(err)) == 0, "%s", err);
	ck_assert_int_eq(crp_array_set_geometry(b, crp_array_geom(a)), 0);
	sb = crp_geom_stripe_bytes(crp_array_geom(a));

	ck_assert_int_eq(crp_array_meta_lock(a), 0);
	before = crp_array_counters(a)->lock_acquires;
	/* Small writes to 4 stripes x 3 data chunks: every member is a data
	 * or parity member of several of them. */
	for (uint64_t s = 0; s < 4; s++)
		for (uint64_t c = 0; c < 3; c++)
			ck_assert_int_eq(crp_array_write(a, s * sb + c * 4096, buf, 4096), 0);
	/* Members 0 and 1 hold the metadata lock already: 2 and 3 once each. */
	ck_assert_uint_eq(crp_array_counters(a)->lock_acquires - before, 2);
	ck_assert(a->lk[2].reserved && a->lk[3].reserved);
	ck_assert_int_eq(crp_array_meta_unlock(a), 0);
	for (int i = 0; i < n; i++)
		ck_assert_msg(!a->lk[i].reserved, "member %d still reserved after the unlock", i);
	/* Another host's stripe write needs members the first one kept. */
	ck_assert_int_eq(crp_array_write(b, 2 * sb, buf, 4096), 0);
	ck_assert_int_eq(crp_array_meta_lock(b), 0);
	ck_assert_int_eq(crp_array_meta_unlock(b), 0);
	verify_all(a);
	crp_array_close(b);
	crp_array_close(a);
	free(buf);
	remove_specs(n);
}

START_TEST(test_meta_lock_keeps_reserve)
{
	meta_lock_keeps(CRP_LOCK_RESERVE);
}
END_TEST

START_TEST(test_meta_lock_keeps_pr)
{
	meta_lock_keeps(CRP_LOCK_PR);
}
END_TEST




/*
 * Small writes to a narrow array (two data chunks a stripe) while the
 * metadata lock keeps the stripe locks cached: once every member of a
 * write is reserved, each is a reconstruct-write that reads the other
 * data chunk only, instead of a read-modify-write that reads the old data
 * and every parity.  Data and parity stay right.  In reserve mode, with
 * another host alive, a read outside the locked members could meet its
 * reservation: read-modify-write again; pr mode's reads pass.
 */
static void narrow_rcw_pass(struct crp_array *a, uint8_t *shadow, uint8_t *buf, uint64_t cap,
			    uint64_t *seed)
{
	ck_assert_int_eq(crp_array_meta_lock(a), 0);
	for (int i = 0; i < 64; i++) {
		uint64_t off, len;

		*seed = *seed * 6364136223846793005ull + 1442695040888963407ull;
		off = (*seed >> 20) % (cap / 512) * 512;
		/* Within one chunk: one data chunk of the stripe touched. */
		len = CRP_MIN(((*seed >> 40) % 8 + 1) * 512, 4096 - off % 4096);
		for (uint64_t k = 0; k < len; k++)
			buf[k] = (uint8_t)(*seed >> (k % 56)) ^ (uint8_t)(k * 3);
		ck_assert_int_eq(crp_array_write(a, off, buf, len), 0);
		memcpy(shadow + off, buf, len);
	}
	ck_assert_int_eq(crp_array_meta_unlock(a), 0);
}

static void narrow_rcw(int n, int level, enum crp_lock_mode mode)
{
	struct crp_host_counters *ctr;
	struct crp_array *a;
	uint64_t cap, seed = 7, rcw, rmw;
	uint8_t *shadow, *buf;

	make_specs(n);
	a = open_array_hold(n, level, 4096, mode, 10 * 1000 * 1000);
	ck_assert_int_eq(crp_array_geom(a)->ndata, 2);
	ctr = crp_array_counters(a);
	cap = 4 * crp_geom_stripe_bytes(crp_array_geom(a));
	shadow = crp_alloc_buf(cap);
	buf = crp_alloc_buf(cap);
	for (uint64_t k = 0; k < cap; k++)
		shadow[k] = (uint8_t)(k * 13 + k / 4096);
	ck_assert_int_eq(crp_array_write(a, 0, shadow, cap), 0); /* full stripes */

	rcw = ctr->rcw;
	rmw = ctr->rmw;
	narrow_rcw_pass(a, shadow, buf, cap, &seed);
	ck_assert_msg(ctr->rcw - rcw > ctr->rmw - rmw,
		      "small writes with their locks cached: %llu reconstruct-writes, %llu "
		      "read-modify-writes", (unsigned long long)(ctr->rcw - rcw),
		      (unsigned long long)(ctr->rmw - rmw));
	crp_array_set_peers(a, 1);
	rcw = ctr->rcw;
	narrow_rcw_pass(a, shadow, buf, cap, &seed);
	if (mode == CRP_LOCK_RESERVE)
		ck_assert_uint_eq(ctr->rcw - rcw, 0);
	else
		ck_assert_uint_gt(ctr->rcw - rcw, 0);

	ck_assert_int_eq(crp_array_read(a, 0, buf, cap), 0);
	ck_assert_msg(memcmp(buf, shadow, cap) == 0, "data read back differs");
	verify_all(a);
	crp_array_close(a);
	free(shadow);
	free(buf);
	remove_specs(n);
}

START_TEST(test_narrow_rcw_reserve)
{
	narrow_rcw(3, 5, CRP_LOCK_RESERVE);
	narrow_rcw(4, 6, CRP_LOCK_RESERVE);
}
END_TEST

START_TEST(test_narrow_rcw_pr)
{
	narrow_rcw(3, 5, CRP_LOCK_PR);
	narrow_rcw(4, 6, CRP_LOCK_PR);
}
END_TEST

static Suite *array_suite(void)
{
	Suite *s = suite_create("array");
	TCase *tc;

	tc = tcase_create("roundtrip");
	tcase_add_test(tc, test_roundtrip_raid4);
	tcase_add_test(tc, test_roundtrip_raid5);
	tcase_add_test(tc, test_roundtrip_raid6);
	tcase_add_test(tc, test_roundtrip_pr);
	tcase_add_test(tc, test_full_stripe);
	suite_add_tcase(s, tc);
	tc = tcase_create("round_trips");
	tcase_add_test(tc, test_round_trips_reserve);
	tcase_add_test(tc, test_round_trips_pr);
	tcase_add_test(tc, test_narrow_rcw_reserve);
	tcase_add_test(tc, test_narrow_rcw_pr);
	suite_add_tcase(s, tc);
	tc = tcase_create("meta_lock");
	tcase_add_test(tc, test_meta_lock);
	tcase_add_test(tc, test_meta_lock_keeps_reserve);
	tcase_add_test(tc, test_meta_lock_keeps_pr);
	suite_add_tcase(s, tc);
	tc = tcase_create("rebuild");
	tcase_add_test(tc, test_rebuild);
	tcase_add_test(tc, test_repair);
	tcase_add_test(tc, test_degraded_read_sees_whole_stripe);
	suite_add_tcase(s, tc);
	tc = tcase_create("bad_input");
	tcase_add_test(tc, test_medium_on_write);
	tcase_add_test(tc, test_bad_input);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	SRunner *sr = srunner_create(array_suite());
	int failed;

	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
