/*
 * The parity engine: ISA-L against the byte-at-a-time reference, the
 * read-modify-write deltas, rebuild of every one- and two-column loss by
 * both implementations, verify, and the GF(2^8) arithmetic.
 */
#include <check.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "crpfs/err.h"
#include "crpfs/parity.h"
#include "crpfs/util.h"

/* A seeded generator so that a failure repeats. */
static uint64_t rng_state = 0x2545f4914f6cdd1dull;

static uint64_t rng(void)
{
	rng_state ^= rng_state << 13;
	rng_state ^= rng_state >> 7;
	rng_state ^= rng_state << 17;
	return rng_state;
}

static void fill_random(void *buf, size_t len)
{
	uint8_t *b = buf;
	size_t i;

	for (i = 0; i < len; i++)
		b[i] = (uint8_t)(rng() >> 24);
}

/* GF(2^8) multiply by shift and add, modulo 0x11d: the test's own oracle. */
static uint8_t slow_mul(uint8_t a, uint8_t b)
{
	unsigned r = 0, x = a;

	while (b) {
		if (b & 1)
			r ^= x;
		x <<= 1;
		if (x & 0x100)
			x ^= 0x11d;
		b >>= 1;
	}
	return (uint8_t)r;
}

static uint8_t slow_pow2(int i)
{
	uint8_t r = 1;

	while (i-- > 0)
		r = slow_mul(r, 2);
	return r;
}

/* Data columns of the widest array (64 members, RAID-4/5) plus P and Q. */
#define STRIPE_MAX_COLS 65

/* A stripe: ndata data columns, P and Q, and a copy of each as written. */
struct stripe {
	int ndata;
	size_t len;
	void *col[STRIPE_MAX_COLS];
	void *orig[STRIPE_MAX_COLS];
};

static void stripe_init(struct stripe *s, int ndata, size_t len)
{
	int i;

	ck_assert_int_le(ndata + 2, STRIPE_MAX_COLS);
	s->ndata = ndata;
	s->len = len;
	for (i = 0; i < ndata + 2; i++) {
		s->col[i] = crp_alloc_buf(len);
		s->orig[i] = crp_alloc_buf(len);
		ck_assert_ptr_nonnull(s->col[i]);
		ck_assert_ptr_nonnull(s->orig[i]);
	}
	for (i = 0; i < ndata; i++)
		fill_random(s->col[i], len);
	crp_ref_parity_pq(ndata, len, s->col, s->col[ndata], s->col[ndata + 1]);
	for (i = 0; i < ndata + 2; i++)
		memcpy(s->orig[i], s->col[i], len);
}

static void stripe_free(struct stripe *s)
{
	int i;

	for (i = 0; i < s->ndata + 2; i++) {
		free(s->col[i]);
		free(s->orig[i]);
	}
}

static void stripe_check(const struct stripe *s, const char *what)
{
	int i;

	for (i = 0; i < s->ndata + 2; i++)
		ck_assert_msg(memcmp(s->col[i], s->orig[i], s->len) == 0,
			      "%s: ndata %d len %zu: column %d differs", what, s->ndata, s->len, i);
}

/* ---- GF(2^8) ---- */

START_TEST(test_gf_mul_table)
{
	int a, b;

	for (a = 0; a < 256; a++)
		for (b = 0; b < 256; b++)
			ck_assert_msg(crp_gf_mul((uint8_t)a, (uint8_t)b) ==
					      slow_mul((uint8_t)a, (uint8_t)b),
				      "gf_mul(%d, %d)", a, b);
	ck_assert_uint_eq(crp_gf_mul(2, 0x80), 0x1d);
}
END_TEST

START_TEST(test_gf_properties)
{
	int a, b, c, i;

	for (a = 0; a < 256; a++) {
		ck_assert_uint_eq(crp_gf_mul((uint8_t)a, 1), a);
		ck_assert_uint_eq(crp_gf_mul((uint8_t)a, 0), 0);
		if (a)
			ck_assert_msg(crp_gf_mul((uint8_t)a, crp_gf_inv((uint8_t)a)) == 1,
				      "a * inv(a) != 1 for a = %d", a);
	}
	ck_assert_uint_eq(crp_gf_inv(0), 0);
	ck_assert_uint_eq(crp_gf_inv(1), 1);
	for (i = 0; i < 20000; i++) {
		a = (int)(rng() & 255);
		b = (int)(rng() & 255);
		c = (int)(rng() & 255);
		ck_assert_uint_eq(crp_gf_mul((uint8_t)a, (uint8_t)b),
				  crp_gf_mul((uint8_t)b, (uint8_t)a));
		ck_assert_uint_eq(crp_gf_mul(crp_gf_mul((uint8_t)a, (uint8_t)b), (uint8_t)c),
				  crp_gf_mul((uint8_t)a, crp_gf_mul((uint8_t)b, (uint8_t)c)));
		ck_assert_uint_eq(crp_gf_mul((uint8_t)a, (uint8_t)(b ^ c)),
				  crp_gf_mul((uint8_t)a, (uint8_t)b) ^
					  crp_gf_mul((uint8_t)a, (uint8_t)c));
	}
}
END_TEST

START_TEST(test_gf_exp2)
{
	int seen[256] = { 0 };
	int i, j;

	/* g = 2 generates the group: 255 distinct non-zero powers. */
	for (i = 0; i < 255; i++) {
		uint8_t v = crp_gf_exp2(i);

		ck_assert_uint_eq(v, slow_pow2(i));
		ck_assert_uint_ne(v, 0);
		ck_assert_msg(!seen[v], "g^%d repeats", i);
		seen[v] = 1;
	}
	ck_assert_uint_eq(crp_gf_exp2(255), 1);
	ck_assert_uint_eq(crp_gf_exp2(256), 2);
	ck_assert_uint_eq(crp_gf_exp2(-1), crp_gf_inv(2));
	for (i = -300; i < 600; i += 7)
		for (j = -50; j < 300; j += 11)
			ck_assert_uint_eq(crp_gf_mul(crp_gf_exp2(i), crp_gf_exp2(j)),
					  crp_gf_exp2(i + j));
}
END_TEST

/* The reference's own tables: its Q update multiplies by g^d for every d. */
START_TEST(test_ref_gf_tables)
{
	uint8_t *old_d = crp_alloc_buf(256), *new_d = crp_alloc_buf(256), *q = crp_alloc_buf(256);
	int d, v;

	ck_assert_ptr_nonnull(old_d);
	ck_assert_ptr_nonnull(new_d);
	ck_assert_ptr_nonnull(q);
	for (v = 0; v < 256; v++)
		new_d[v] = (uint8_t)v;
	for (d = 0; d < 255; d++) {
		memset(q, 0, 256);
		crp_ref_parity_q_update(d, 256, old_d, new_d, q);
		for (v = 0; v < 256; v++)
			ck_assert_msg(q[v] == slow_mul(slow_pow2(d), (uint8_t)v),
				      "reference g^%d * %d", d, v);
	}
	free(old_d);
	free(new_d);
	free(q);
}
END_TEST

/* ---- P and Q generation ---- */

/* A hand-worked stripe: D = 1, 1, 1 gives P = 1 and Q = 1 + 2 + 4 = 7;
 * D = 0x80, 0x80 gives P = 0 and Q = 0x80 + 0x1d = 0x9d. */
START_TEST(test_known_answer)
{
	void *d[3], *p = crp_alloc_buf(64), *q = crp_alloc_buf(64);
	int i, impl;

	for (i = 0; i < 3; i++) {
		d[i] = crp_alloc_buf(64);
		memset(d[i], 1, 64);
	}
	for (impl = 0; impl < 2; impl++) {
		memset(p, 0xee, 64);
		memset(q, 0xee, 64);
		if (impl)
			crp_ref_parity_pq(3, 64, d, p, q);
		else
			crp_parity_pq(3, 64, d, p, q);
		for (i = 0; i < 64; i++) {
			ck_assert_uint_eq(((uint8_t *)p)[i], 1);
			ck_assert_uint_eq(((uint8_t *)q)[i], 7);
		}
		memset(d[0], 0x80, 64);
		memset(d[1], 0x80, 64);
		if (impl)
			crp_ref_parity_pq(2, 64, d, p, q);
		else
			crp_parity_pq(2, 64, d, p, q);
		ck_assert_uint_eq(((uint8_t *)p)[63], 0);
		ck_assert_uint_eq(((uint8_t *)q)[63], 0x9d);
		memset(d[0], 1, 64);
		memset(d[1], 1, 64);
	}
	for (i = 0; i < 3; i++)
		free(d[i]);
	free(p);
	free(q);
}
END_TEST

static const int gen_ndata[] = { 1, 2, 3, 4, 5, 8, 13, 16 };
static const size_t gen_len[] = { 64, 128, 192, 4096, 65536 };
#define N_GEN_NDATA ((int)(sizeof(gen_ndata) / sizeof(gen_ndata[0])))
#define N_GEN_LEN ((int)(sizeof(gen_len) / sizeof(gen_len[0])))

START_TEST(test_p_matches_ref)
{
	int ndata = gen_ndata[_i / N_GEN_LEN];
	size_t len = gen_len[_i % N_GEN_LEN];
	void *d[16], *p = crp_alloc_buf(len), *pr = crp_alloc_buf(len);
	int i;

	for (i = 0; i < ndata; i++) {
		d[i] = crp_alloc_buf(len);
		fill_random(d[i], len);
	}
	memset(p, 0x5a, len);
	crp_parity_p(ndata, len, d, p);
	crp_ref_parity_p(ndata, len, d, pr);
	ck_assert_msg(memcmp(p, pr, len) == 0, "P differs: ndata %d len %zu", ndata, len);
	for (i = 0; i < ndata; i++)
		free(d[i]);
	free(p);
	free(pr);
}
END_TEST

START_TEST(test_pq_matches_ref)
{
	int ndata = gen_ndata[_i / N_GEN_LEN];
	size_t len = gen_len[_i % N_GEN_LEN];
	void *d[16], *p = crp_alloc_buf(len), *q = crp_alloc_buf(len);
	void *pr = crp_alloc_buf(len), *qr = crp_alloc_buf(len);
	int i;

	for (i = 0; i < ndata; i++) {
		d[i] = crp_alloc_buf(len);
		fill_random(d[i], len);
	}
	memset(p, 0x5a, len);
	memset(q, 0xa5, len);
	crp_parity_pq(ndata, len, d, p, q);
	crp_ref_parity_pq(ndata, len, d, pr, qr);
	ck_assert_msg(memcmp(p, pr, len) == 0, "P differs: ndata %d len %zu", ndata, len);
	ck_assert_msg(memcmp(q, qr, len) == 0, "Q differs: ndata %d len %zu", ndata, len);
	for (i = 0; i < ndata; i++)
		free(d[i]);
	free(p);
	free(q);
	free(pr);
	free(qr);
}
END_TEST

/* ---- read-modify-write deltas ---- */

static const int upd_ndata[] = { 2, 3, 8, 16, 62 };

START_TEST(test_update_every_didx)
{
	int ndata = upd_ndata[_i];
	size_t len = 4096;
	struct stripe s;
	void *nd = crp_alloc_buf(len), *p = crp_alloc_buf(len), *q = crp_alloc_buf(len);
	void *qr = crp_alloc_buf(len), *scratch = crp_alloc_buf(len);
	void *old_d = crp_alloc_buf(len);
	int d;

	stripe_init(&s, ndata, len);
	for (d = 0; d < ndata; d++) {
		fill_random(nd, len);
		memcpy(old_d, s.col[d], len);
		memcpy(p, s.col[ndata], len);
		memcpy(q, s.col[ndata + 1], len);
		memcpy(qr, s.col[ndata + 1], len);
		crp_parity_p_update(len, old_d, nd, p);
		crp_parity_q_update(d, len, old_d, nd, q, scratch);
		crp_ref_parity_q_update(d, len, old_d, nd, qr);
		/* Recompute from scratch with the new data in place. */
		memcpy(s.col[d], nd, len);
		crp_ref_parity_pq(ndata, len, s.col, s.col[ndata], s.col[ndata + 1]);
		ck_assert_msg(memcmp(p, s.col[ndata], len) == 0, "P delta: ndata %d didx %d", ndata,
			      d);
		ck_assert_msg(memcmp(q, s.col[ndata + 1], len) == 0, "Q delta: ndata %d didx %d",
			      ndata, d);
		ck_assert_msg(memcmp(qr, s.col[ndata + 1], len) == 0,
			      "reference Q delta: ndata %d didx %d", ndata, d);
	}
	stripe_free(&s);
	free(nd);
	free(p);
	free(q);
	free(qr);
	free(scratch);
	free(old_d);
}
END_TEST

/* ---- rebuild ---- */

typedef int (*rebuild_fn)(int, size_t, void *const *, void *, void *, const int *, int);

static void erase_and_rebuild(struct stripe *s, int raid6, const int *fail, int nfail,
			      rebuild_fn fn, const char *name)
{
	void *q = raid6 ? s->col[s->ndata + 1] : NULL;
	char what[160];
	int i, rc;

	for (i = 0; i < nfail; i++)
		fill_random(s->col[fail[i]], s->len);
	rc = fn(s->ndata, s->len, s->col, s->col[s->ndata], q, fail, nfail);
	snprintf(what, sizeof(what), "%s RAID-%d lost %d%s%d", name, raid6 ? 6 : 5, fail[0],
		 nfail == 2 ? "+" : "", nfail == 2 ? fail[1] : -1);
	ck_assert_msg(rc == 0, "%s: returned %d", what, rc);
	stripe_check(s, what);
}

static const int r5_ndata[] = { 2, 3, 4, 7, 15, 63 };
static const size_t rb_len[] = { 64, 4096 };

START_TEST(test_rebuild_raid5_every_column)
{
	int ndata = r5_ndata[_i / 2];
	size_t len = rb_len[_i % 2];
	struct stripe s;
	int c;

	stripe_init(&s, ndata, len);
	for (c = 0; c <= ndata; c++) {
		erase_and_rebuild(&s, 0, &c, 1, crp_parity_rebuild, "isa-l");
		erase_and_rebuild(&s, 0, &c, 1, crp_ref_parity_rebuild, "ref");
	}
	stripe_free(&s);
}
END_TEST

static const int r6_ndata[] = { 2, 3, 4, 6, 8, 16, 62 };

START_TEST(test_rebuild_raid6_every_pair)
{
	int ndata = r6_ndata[_i / 2];
	size_t len = ndata > 16 ? (_i % 2 ? 256 : 64) : rb_len[_i % 2];
	struct stripe s;
	int a, b, f[2], npairs = 0;

	stripe_init(&s, ndata, len);
	for (a = 0; a < ndata + 2; a++) {
		erase_and_rebuild(&s, 1, &a, 1, crp_parity_rebuild, "isa-l");
		erase_and_rebuild(&s, 1, &a, 1, crp_ref_parity_rebuild, "ref");
		for (b = 0; b < ndata + 2; b++) {
			if (a == b)
				continue;
			/* Both orders: the caller need not sort. */
			f[0] = a;
			f[1] = b;
			erase_and_rebuild(&s, 1, f, 2, crp_parity_rebuild, "isa-l");
			erase_and_rebuild(&s, 1, f, 2, crp_ref_parity_rebuild, "ref");
			npairs++;
		}
	}
	/* data+data, data+P, data+Q and P+Q all came up. */
	ck_assert_int_eq(npairs, (ndata + 2) * (ndata + 1));
	stripe_free(&s);
}
END_TEST

START_TEST(test_rebuild_refuses)
{
	struct stripe s;
	rebuild_fn fns[2] = { crp_parity_rebuild, crp_ref_parity_rebuild };
	int ndata = 4, pi = 4, qi = 5, k;

	stripe_init(&s, ndata, 64);
	for (k = 0; k < 2; k++) {
		rebuild_fn fn = fns[k];
		void *p = s.col[pi], *q = s.col[qi];
		int f2[2];

		/* RAID-5: no Q column, one loss only. */
		ck_assert_int_eq(fn(ndata, 64, s.col, p, NULL, &qi, 1), -EINVAL);
		f2[0] = 0;
		f2[1] = 1;
		ck_assert_int_eq(fn(ndata, 64, s.col, p, NULL, f2, 2), -EINVAL);
		/* RAID-6: a column twice, out of range, three columns, none. */
		f2[0] = 2;
		f2[1] = 2;
		ck_assert_int_eq(fn(ndata, 64, s.col, p, q, f2, 2), -EINVAL);
		f2[0] = -1;
		ck_assert_int_eq(fn(ndata, 64, s.col, p, q, f2, 1), -EINVAL);
		f2[0] = qi + 1;
		ck_assert_int_eq(fn(ndata, 64, s.col, p, q, f2, 1), -EINVAL);
		f2[0] = 0;
		f2[1] = 1;
		ck_assert_int_eq(fn(ndata, 64, s.col, p, q, f2, 3), -EINVAL);
		ck_assert_int_eq(fn(ndata, 64, s.col, p, q, f2, 0), -EINVAL);
		/* Nothing was touched. */
		stripe_check(&s, "refused rebuild");
	}
	stripe_free(&s);
}
END_TEST

/* ---- verify ---- */

START_TEST(test_verify_detects_flip)
{
	int ndata = 6, raid6, c, k;
	size_t len = 4096;
	struct stripe s;
	void *scratch = crp_alloc_buf(2 * len);

	stripe_init(&s, ndata, len);
	for (raid6 = 0; raid6 < 2; raid6++) {
		void *q = raid6 ? s.col[ndata + 1] : NULL;

		ck_assert_int_eq(crp_parity_verify(ndata, len, s.col, s.col[ndata], q, scratch), 0);
		for (c = 0; c < ndata + 1 + raid6; c++) {
			for (k = 0; k < 3; k++) {
				size_t byte = k == 0 ? 0 : k == 1 ? len - 1 : rng() % len;
				uint8_t bit = (uint8_t)(1u << (rng() % 8));

				((uint8_t *)s.col[c])[byte] ^= bit;
				ck_assert_msg(crp_parity_verify(ndata, len, s.col, s.col[ndata], q,
								scratch) == -CRP_EPARITY,
					      "RAID-%d: flipped bit in column %d byte %zu not detected",
					      raid6 ? 6 : 5, c, byte);
				((uint8_t *)s.col[c])[byte] ^= bit;
				ck_assert_int_eq(crp_parity_verify(ndata, len, s.col, s.col[ndata],
								   q, scratch),
						 0);
			}
		}
	}
	stripe_free(&s);
	free(scratch);
}
END_TEST

static Suite *parity_suite(void)
{
	Suite *s = suite_create("parity");
	TCase *tc;

	tc = tcase_create("gf");
	tcase_add_test(tc, test_gf_mul_table);
	tcase_add_test(tc, test_gf_properties);
	tcase_add_test(tc, test_gf_exp2);
	tcase_add_test(tc, test_ref_gf_tables);
	suite_add_tcase(s, tc);

	tc = tcase_create("generate");
	tcase_add_test(tc, test_known_answer);
	tcase_add_loop_test(tc, test_p_matches_ref, 0, N_GEN_NDATA * N_GEN_LEN);
	tcase_add_loop_test(tc, test_pq_matches_ref, N_GEN_LEN, N_GEN_NDATA * N_GEN_LEN);
	suite_add_tcase(s, tc);

	tc = tcase_create("update");
	tcase_add_loop_test(tc, test_update_every_didx, 0,
			    (int)(sizeof(upd_ndata) / sizeof(upd_ndata[0])));
	suite_add_tcase(s, tc);

	tc = tcase_create("rebuild");
	tcase_add_loop_test(tc, test_rebuild_raid5_every_column, 0,
			    2 * (int)(sizeof(r5_ndata) / sizeof(r5_ndata[0])));
	tcase_add_loop_test(tc, test_rebuild_raid6_every_pair, 0,
			    2 * (int)(sizeof(r6_ndata) / sizeof(r6_ndata[0])));
	tcase_add_test(tc, test_rebuild_refuses);
	suite_add_tcase(s, tc);

	tc = tcase_create("verify");
	tcase_add_test(tc, test_verify_detects_flip);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	SRunner *sr = srunner_create(parity_suite());
	int failed;

	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
