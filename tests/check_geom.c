/*
 * Geometry: validation, md left-symmetric layouts, and the mapping between
 * array offsets and member bytes.
 */
#include <check.h>
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "crpfs/err.h"
#include "crpfs/geom.h"

#define KiB 1024u
#define MiB (1024u * 1024u)

static const int levels[] = { 4, 5, 6 };
static const int widths[] = { 3, 4, 5, 8, 64 };
static const uint32_t chunks[] = { 4 * KiB, 64 * KiB, 1 * MiB };

#define NLEVELS 3
#define NWIDTHS 5
#define NCHUNKS 3

/* A small, seeded generator so that a failure repeats. */
static uint64_t rng_state = 0x9e3779b97f4a7c15ull;

static uint64_t rng(void)
{
	rng_state ^= rng_state << 13;
	rng_state ^= rng_state >> 7;
	rng_state ^= rng_state << 17;
	return rng_state;
}

/* The valid level x width x chunk combinations, filled in by main(). */
struct geom_case {
	int level, n;
	uint32_t chunk;
};

static struct geom_case cases[NLEVELS * NWIDTHS * NCHUNKS];
static int ncases;

static void make_cases(void)
{
	int l, w, c;

	for (l = 0; l < NLEVELS; l++)
		for (w = 0; w < NWIDTHS; w++)
			for (c = 0; c < NCHUNKS; c++) {
				if (widths[w] < (levels[l] == 6 ? 4 : 3))
					continue;
				cases[ncases].level = levels[l];
				cases[ncases].n = widths[w];
				cases[ncases].chunk = chunks[c];
				ncases++;
			}
}

/*
 * Geometry for case @i: a data offset of two chunks and room for 37 stripes
 * plus a partial chunk that must not count.
 */
static void test_geom(int i, struct crp_geom *g)
{
	const struct geom_case *c = &cases[i];
	uint64_t off = 2ull * c->chunk, size = off + 37ull * c->chunk + 123;
	char err[256];
	int rc;

	rc = crp_geom_init(g, c->level, c->n, c->chunk, off, size, err, sizeof(err));
	ck_assert_msg(rc == 0, "RAID-%d n=%d chunk=%u refused: %s", c->level, c->n, c->chunk, err);
	ck_assert_int_eq(g->level, c->level);
	ck_assert_int_eq(g->nmembers, c->n);
	ck_assert_uint_eq(g->chunk, c->chunk);
}

START_TEST(test_init_fields)
{
	struct crp_geom g;
	int nparity;

	test_geom(_i, &g);
	nparity = g.level == 6 ? 2 : 1;
	ck_assert_int_eq(g.ndata, g.nmembers - nparity);
	ck_assert_uint_eq(g.nstripes, 37);
	ck_assert_uint_eq(g.data_offset, 2ull * g.chunk);
	ck_assert_uint_eq(crp_geom_stripe_bytes(&g), (uint64_t)g.ndata * g.chunk);
	ck_assert_uint_eq(crp_geom_capacity(&g), 37ull * g.ndata * g.chunk);
}
END_TEST

static void check_roundtrip(const struct crp_geom *g, uint64_t x)
{
	struct crp_loc loc;
	uint64_t back = ~0ull;
	int rc;

	rc = crp_geom_map(g, x, &loc);
	ck_assert_msg(rc == 0, "map(%" PRIu64 ") = %d", x, rc);
	ck_assert_uint_lt(loc.chunk_off, g->chunk);
	ck_assert_int_ge(loc.didx, 0);
	ck_assert_int_lt(loc.didx, g->ndata);
	ck_assert_uint_lt(loc.stripe, g->nstripes);
	ck_assert_int_eq(crp_geom_role(g, loc.stripe, loc.member), loc.didx);
	ck_assert_uint_eq(loc.member_off,
			  g->data_offset + loc.stripe * g->chunk + loc.chunk_off);
	/* The array offset formula of geom.h. */
	ck_assert_uint_eq(loc.stripe, x / crp_geom_stripe_bytes(g));
	ck_assert_int_eq(loc.didx, (int)((x / g->chunk) % (uint64_t)g->ndata));
	ck_assert_uint_eq(loc.chunk_off, x % g->chunk);
	rc = crp_geom_unmap(g, loc.member, loc.member_off, &back);
	ck_assert_msg(rc == 0, "unmap(member %d, %" PRIu64 ") = %d", loc.member, loc.member_off,
		      rc);
	ck_assert_msg(back == x, "RAID-%d n=%d: map then unmap of %" PRIu64 " gave %" PRIu64,
		      g->level, g->nmembers, x, back);
}

START_TEST(test_map_roundtrip)
{
	struct crp_geom g;
	uint64_t cap, sb;
	struct crp_loc loc;
	int k;

	test_geom(_i, &g);
	cap = crp_geom_capacity(&g);
	sb = crp_geom_stripe_bytes(&g);
	check_roundtrip(&g, 0);
	check_roundtrip(&g, 1);
	check_roundtrip(&g, g.chunk - 1);
	check_roundtrip(&g, g.chunk);
	check_roundtrip(&g, sb - 1);
	check_roundtrip(&g, sb);
	check_roundtrip(&g, sb + g.chunk + 17);
	check_roundtrip(&g, cap - sb);
	check_roundtrip(&g, cap - 1);
	for (k = 0; k < 2000; k++)
		check_roundtrip(&g, rng() % cap);
	ck_assert_int_eq(crp_geom_map(&g, cap, &loc), -ERANGE);
	ck_assert_int_eq(crp_geom_map(&g, UINT64_MAX, &loc), -ERANGE);
}
END_TEST

/* Every member byte of the RAID area: data unmaps and maps back, parity is ENOENT. */
START_TEST(test_unmap_every_chunk)
{
	struct crp_geom g;
	uint64_t s, x = 0, last;
	struct crp_loc loc = { 0 };
	int m, role;

	test_geom(_i, &g);
	for (s = 0; s < g.nstripes; s++) {
		for (m = 0; m < g.nmembers; m++) {
			uint64_t mo = crp_geom_member_off(&g, s, g.chunk - 1);

			/* Plain tests, one failure message: an assertion that
			 * passes costs a message to the runner, and this loop
			 * runs over every chunk of the array. */
			role = crp_geom_role(&g, s, m);
			if (role < 0) {
				if (crp_geom_unmap(&g, m, mo, &x) != -ENOENT)
					ck_abort_msg("stripe %" PRIu64 " member %d: parity unmapped", s, m);
				continue;
			}
			if (crp_geom_unmap(&g, m, mo, &x) != 0 ||
			    x != s * crp_geom_stripe_bytes(&g) + (uint64_t)role * g.chunk + g.chunk - 1 ||
			    crp_geom_map(&g, x, &loc) != 0 || loc.member != m || loc.member_off != mo)
				ck_abort_msg("stripe %" PRIu64 " member %d (role %d): unmapped to %" PRIu64
					     ", mapped back to member %d offset %" PRIu64 ", want %" PRIu64,
					     s, m, role, x, loc.member, loc.member_off, mo);
		}
	}
	/* Outside the RAID area. */
	last = g.data_offset + g.nstripes * g.chunk;
	ck_assert_int_eq(crp_geom_unmap(&g, 0, g.data_offset - 1, &x), -ERANGE);
	ck_assert_int_eq(crp_geom_unmap(&g, 0, last, &x), -ERANGE);
	ck_assert_int_eq(crp_geom_unmap(&g, 0, 0, &x), -ERANGE);
	ck_assert_int_eq(crp_geom_unmap(&g, -1, g.data_offset, &x), -EINVAL);
	ck_assert_int_eq(crp_geom_unmap(&g, g.nmembers, g.data_offset, &x), -EINVAL);
}
END_TEST

/* In every stripe each member has exactly one role and parity holds no data. */
START_TEST(test_roles_partition)
{
	struct crp_geom g;
	int seen[CRP_MAX_MEMBERS];
	uint64_t s;
	int p, q, d, m;

	test_geom(_i, &g);
	for (s = 0; s < 3ull * g.nmembers && s < g.nstripes; s++) {
		memset(seen, 0, sizeof(seen));
		crp_geom_parity(&g, s, &p, &q);
		ck_assert_int_ge(p, 0);
		ck_assert_int_lt(p, g.nmembers);
		ck_assert_int_eq(crp_geom_role(&g, s, p), CRP_ROLE_P);
		seen[p]++;
		if (g.level == 6) {
			ck_assert_int_ge(q, 0);
			ck_assert_int_lt(q, g.nmembers);
			ck_assert_int_ne(q, p);
			ck_assert_int_eq(crp_geom_role(&g, s, q), CRP_ROLE_Q);
			seen[q]++;
		} else {
			ck_assert_int_eq(q, -1);
		}
		for (d = 0; d < g.ndata; d++) {
			m = crp_geom_data_member(&g, s, d);
			ck_assert_int_ge(m, 0);
			ck_assert_int_lt(m, g.nmembers);
			ck_assert_msg(m != p && m != q, "stripe %" PRIu64 ": data %d on parity member %d",
				      s, d, m);
			ck_assert_int_eq(crp_geom_role(&g, s, m), d);
			seen[m]++;
		}
		for (m = 0; m < g.nmembers; m++)
			ck_assert_msg(seen[m] == 1, "stripe %" PRIu64 ": member %d has %d roles", s, m,
				      seen[m]);
	}
	ck_assert_int_eq(crp_geom_data_member(&g, 0, -1), -EINVAL);
	ck_assert_int_eq(crp_geom_data_member(&g, 0, g.ndata), -EINVAL);
	ck_assert_int_eq(crp_geom_role(&g, 0, g.nmembers), -EINVAL);
}
END_TEST

#define P CRP_ROLE_P
#define Q CRP_ROLE_Q

/* Roles of members 0..n-1 for consecutive stripes, written out by hand. */
static void check_table(int level, int n, int nrows, const int *table)
{
	struct crp_geom g;
	char err[256];
	int s, m;

	ck_assert_int_eq(crp_geom_init(&g, level, n, 4 * KiB, 0, 1 * MiB, err, sizeof(err)), 0);
	for (s = 0; s < nrows; s++)
		for (m = 0; m < n; m++)
			ck_assert_msg(crp_geom_role(&g, (uint64_t)s, m) == table[s * n + m],
				      "RAID-%d n=%d stripe %d member %d: role %d, want %d", level, n,
				      s, m, crp_geom_role(&g, (uint64_t)s, m), table[s * n + m]);
}

START_TEST(test_md_raid5_4)
{
	static const int t[8 * 4] = {
		0, 1, 2, P,
		1, 2, P, 0,
		2, P, 0, 1,
		P, 0, 1, 2,
		0, 1, 2, P,
		1, 2, P, 0,
		2, P, 0, 1,
		P, 0, 1, 2,
	};
	struct crp_geom g;
	struct crp_loc loc;

	check_table(5, 4, 8, t);
	/* Array offsets: data chunk 4 (stripe 1, D1) is on member 0. */
	ck_assert_int_eq(crp_geom_init(&g, 5, 4, 4 * KiB, 0, 1 * MiB, NULL, 0), 0);
	ck_assert_int_eq(crp_geom_map(&g, 4 * 4 * KiB + 5, &loc), 0);
	ck_assert_uint_eq(loc.stripe, 1);
	ck_assert_int_eq(loc.didx, 1);
	ck_assert_int_eq(loc.member, 0);
	ck_assert_uint_eq(loc.member_off, 4 * KiB + 5);
}
END_TEST

START_TEST(test_md_raid5_5)
{
	static const int t[6 * 5] = {
		0, 1, 2, 3, P,
		1, 2, 3, P, 0,
		2, 3, P, 0, 1,
		3, P, 0, 1, 2,
		P, 0, 1, 2, 3,
		0, 1, 2, 3, P,
	};

	check_table(5, 5, 6, t);
}
END_TEST

START_TEST(test_md_raid6_5)
{
	static const int t[6 * 5] = {
		Q, 0, 1, 2, P,
		0, 1, 2, P, Q,
		1, 2, P, Q, 0,
		2, P, Q, 0, 1,
		P, Q, 0, 1, 2,
		Q, 0, 1, 2, P,
	};

	check_table(6, 5, 6, t);
}
END_TEST

START_TEST(test_md_raid6_4)
{
	static const int t[5 * 4] = {
		Q, 0, 1, P,
		0, 1, P, Q,
		1, P, Q, 0,
		P, Q, 0, 1,
		Q, 0, 1, P,
	};

	check_table(6, 4, 5, t);
}
END_TEST

START_TEST(test_md_raid4_4)
{
	static const int t[3 * 4] = {
		0, 1, 2, P,
		0, 1, 2, P,
		0, 1, 2, P,
	};

	check_table(4, 4, 3, t);
}
END_TEST

#undef P
#undef Q

/* A bad input and the words its message must contain. */
struct bad_case {
	int level, n;
	uint32_t chunk;
	uint64_t data_offset, member_size;
	const char *want1, *want2;
};

static const struct bad_case bad_cases[] = {
	{ 5, 4, 3000, 0, 1ull << 30, "3000", "power of two" },
	{ 5, 4, 6 * KiB, 0, 1ull << 30, "6144", "power of two" },
	{ 5, 4, 2 * MiB, 0, 1ull << 30, "2097152", "maximum" },
	{ 5, 4, 2 * KiB, 0, 1ull << 30, "2048", "minimum" },
	{ 5, 4, 0, 0, 1ull << 30, "chunk size 0", "power of two" },
	{ 5, 2, 64 * KiB, 0, 1ull << 30, "RAID-5 needs 3 to 64 members", "2 members" },
	{ 4, 2, 64 * KiB, 0, 1ull << 30, "RAID-4 needs 3 to 64 members", "2 members" },
	{ 6, 3, 64 * KiB, 0, 1ull << 30, "RAID-6 needs 4 to 64 members", "3 members" },
	{ 5, 65, 64 * KiB, 0, 1ull << 30, "RAID-5 needs 3 to 64", "65 members" },
	{ 6, 65, 64 * KiB, 0, 1ull << 30, "RAID-6 needs 4 to 64", "65 members" },
	{ 3, 4, 64 * KiB, 0, 1ull << 30, "RAID level 3", "4, 5 or 6" },
	{ 0, 4, 64 * KiB, 0, 1ull << 30, "RAID level 0", "4, 5 or 6" },
	{ 5, 4, 64 * KiB, 1000, 1ull << 30, "data offset 1000", "multiple of the chunk" },
	{ 5, 4, 64 * KiB, 64 * KiB, 64 * KiB, "member size 65536", "no room for one stripe" },
	{ 5, 4, 64 * KiB, 64 * KiB, 128 * KiB - 1, "member size 131071",
	  "no room for one stripe" },
	{ 5, 4, 64 * KiB, 1ull << 30, 4 * KiB, "member size 4096", "no room for one stripe" },
	{ 5, 64, 4 * KiB, 0, UINT64_MAX, "overflows", "63 data members" },
};

START_TEST(test_bad_input)
{
	const struct bad_case *c = &bad_cases[_i];
	struct crp_geom g;
	char err[256];
	int rc;

	memset(err, 'x', sizeof(err));
	rc = crp_geom_init(&g, c->level, c->n, c->chunk, c->data_offset, c->member_size, err,
			   sizeof(err));
	ck_assert_int_eq(rc, -CRP_EGEOMETRY);
	ck_assert_msg(memchr(err, '\0', sizeof(err)) != NULL, "message not terminated");
	ck_assert_msg(strstr(err, c->want1) && strstr(err, c->want2),
		      "case %d: message \"%s\" does not say \"%s\" and \"%s\"", _i, err, c->want1,
		      c->want2);
	/* No message buffer is fine too. */
	ck_assert_int_eq(crp_geom_init(&g, c->level, c->n, c->chunk, c->data_offset,
				       c->member_size, NULL, 0),
			 -CRP_EGEOMETRY);
}
END_TEST

/* The boundaries that must be accepted. */
START_TEST(test_good_edges)
{
	struct crp_geom g;
	char err[256];

	ck_assert_int_eq(crp_geom_init(&g, 5, 3, 4 * KiB, 0, 4 * KiB, err, sizeof(err)), 0);
	ck_assert_uint_eq(g.nstripes, 1);
	ck_assert_int_eq(crp_geom_init(&g, 6, 4, 1 * MiB, 1 * MiB, 2 * MiB, err, sizeof(err)), 0);
	ck_assert_uint_eq(g.nstripes, 1);
	ck_assert_int_eq(g.ndata, 2);
	ck_assert_int_eq(crp_geom_init(&g, 4, 64, 64 * KiB, 0, 1ull << 40, err, sizeof(err)), 0);
	ck_assert_int_eq(g.ndata, 63);
	ck_assert_uint_eq(g.nstripes, (1ull << 40) / (64 * KiB));
	ck_assert_int_eq(crp_geom_init(&g, 6, 64, 4 * KiB, 8 * KiB, 8 * KiB + 12345678,
				       err, sizeof(err)),
			 0);
	ck_assert_uint_eq(g.nstripes, 12345678 / (4 * KiB));
}
END_TEST

static Suite *geom_suite(void)
{
	Suite *s = suite_create("geom");
	TCase *tc;

	tc = tcase_create("init");
	tcase_add_loop_test(tc, test_init_fields, 0, ncases);
	tcase_add_test(tc, test_good_edges);
	suite_add_tcase(s, tc);

	tc = tcase_create("bad_input");
	tcase_add_loop_test(tc, test_bad_input, 0, (int)(sizeof(bad_cases) / sizeof(bad_cases[0])));
	suite_add_tcase(s, tc);

	tc = tcase_create("roundtrip");
	tcase_add_loop_test(tc, test_map_roundtrip, 0, ncases);
	tcase_add_loop_test(tc, test_unmap_every_chunk, 0, ncases);
	suite_add_tcase(s, tc);

	tc = tcase_create("roles");
	tcase_add_loop_test(tc, test_roles_partition, 0, ncases);
	suite_add_tcase(s, tc);

	tc = tcase_create("md_layout");
	tcase_add_test(tc, test_md_raid5_4);
	tcase_add_test(tc, test_md_raid5_5);
	tcase_add_test(tc, test_md_raid6_5);
	tcase_add_test(tc, test_md_raid6_4);
	tcase_add_test(tc, test_md_raid4_4);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	SRunner *sr;
	int failed;

	make_cases();
	sr = srunner_create(geom_suite());
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
