/*
 * Parity engine throughput, against ISA-L's raw xor_gen measured in the
 * same run.
 *
 * Every row is `| area | benchmark | value | unit | baseline | baseline value | ratio |`.
 * GB/s counts bytes of data consumed per second (1 GB = 1e9 bytes):
 *   - generation (P, P+Q) and rebuild: the stripe's ndata data chunks;
 *   - a delta update: the old and the new data chunk (2 x 64 KiB);
 *   - the xor_gen baselines: their source vectors (k+1 means k sources).
 * Each row repeats its operation for about 0.3 s after one warm-up call.
 * Before timing, every ISA-L path is checked once against the reference:
 * a wrong result is a failed benchmark, not a fast one.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <isa-l/raid.h>

#include "crpfs/parity.h"
#include "crpfs/util.h"

#define CHUNK (64u * 1024)
#define MAXCOLS 10
#define ROW_NS 300000000ull

struct bstripe {
	int ndata;
	void *col[MAXCOLS + 2]; /* data, then P, then Q */
	void *save[2];		/* for rebuild: the lost columns, as written */
	void *newd, *scratch;
};

static uint64_t seed = 88172645463325252ull;

static void fill(void *buf, size_t len)
{
	uint64_t *w = buf;
	size_t i;

	for (i = 0; i < len / 8; i++) {
		seed ^= seed << 13;
		seed ^= seed >> 7;
		seed ^= seed << 17;
		w[i] = seed;
	}
}

static int bs_init(struct bstripe *s, int ndata)
{
	int i;

	memset(s, 0, sizeof(*s));
	s->ndata = ndata;
	for (i = 0; i < ndata + 2; i++)
		if (!(s->col[i] = crp_alloc_buf(CHUNK)))
			return -1;
	for (i = 0; i < 2; i++)
		if (!(s->save[i] = crp_alloc_buf(CHUNK)))
			return -1;
	if (!(s->newd = crp_alloc_buf(CHUNK)) || !(s->scratch = crp_alloc_buf(2 * CHUNK)))
		return -1;
	for (i = 0; i < ndata; i++)
		fill(s->col[i], CHUNK);
	fill(s->newd, CHUNK);
	crp_ref_parity_pq(ndata, CHUNK, s->col, s->col[ndata], s->col[ndata + 1]);
	return 0;
}

static void bs_free(struct bstripe *s)
{
	int i;

	for (i = 0; i < MAXCOLS + 2; i++)
		free(s->col[i]);
	free(s->save[0]);
	free(s->save[1]);
	free(s->newd);
	free(s->scratch);
}

/* One operation of a row, on stripe @s. */
typedef void (*op_fn)(struct bstripe *s);

static void op_xor(struct bstripe *s)
{
	void *v[MAXCOLS + 1];
	int i;

	/* The first ndata data columns into scratch: k+1 vectors. */
	for (i = 0; i < s->ndata; i++)
		v[i] = s->col[i];
	v[s->ndata] = s->scratch;
	xor_gen(s->ndata + 1, CHUNK, v);
}

static void op_p(struct bstripe *s)
{
	crp_parity_p(s->ndata, CHUNK, s->col, s->col[s->ndata]);
}

static void op_pq(struct bstripe *s)
{
	crp_parity_pq(s->ndata, CHUNK, s->col, s->col[s->ndata], s->col[s->ndata + 1]);
}

static void op_ref_p(struct bstripe *s)
{
	crp_ref_parity_p(s->ndata, CHUNK, s->col, s->col[s->ndata]);
}

static void op_ref_pq(struct bstripe *s)
{
	crp_ref_parity_pq(s->ndata, CHUNK, s->col, s->col[s->ndata], s->col[s->ndata + 1]);
}

/* Deltas write data chunk 1 from col[1] to newd and back, alternately, so the
 * stripe stays consistent and the work is the same every call. */
static void swap_d1(struct bstripe *s)
{
	void *t = s->col[1];

	s->col[1] = s->newd;
	s->newd = t;
}

static void op_p_delta(struct bstripe *s)
{
	crp_parity_p_update(CHUNK, s->col[1], s->newd, s->col[s->ndata]);
	swap_d1(s);
}

static void op_q_delta(struct bstripe *s)
{
	crp_parity_q_update(1, CHUNK, s->col[1], s->newd, s->col[s->ndata + 1], s->scratch);
	swap_d1(s);
}

static void op_ref_q_delta(struct bstripe *s)
{
	crp_ref_parity_q_update(1, CHUNK, s->col[1], s->newd, s->col[s->ndata + 1]);
	swap_d1(s);
}

static const int lost2[2] = { 1, 3 };

static void op_rebuild2(struct bstripe *s)
{
	crp_parity_rebuild(s->ndata, CHUNK, s->col, s->col[s->ndata], s->col[s->ndata + 1], lost2,
			   2);
}

/* GB/s of @op, @bytes counted per call. */
static double measure(op_fn op, struct bstripe *s, double bytes)
{
	uint64_t t0, dt;
	long n = 0;
	int i;

	op(s);
	t0 = crp_now_ns();
	do {
		for (i = 0; i < 8; i++)
			op(s);
		n += 8;
		dt = crp_now_ns() - t0;
	} while (dt < ROW_NS);
	return bytes * (double)n / (double)dt;
}

static void row(const char *name, double v, const char *base, double bv)
{
	printf("| parity | %s | %.3g | GB/s | %s | %.3g | %.3g |\n", name, v, base, bv, v / bv);
	fflush(stdout);
}

/* Check the ISA-L paths against the reference on @s once; 0 if they agree. */
static int self_check(struct bstripe *s)
{
	int nd = s->ndata, rc = 0;
	void *p = s->col[nd], *q = s->col[nd + 1];
	void *pr = s->scratch, *qr = (char *)s->scratch + CHUNK;

	crp_ref_parity_pq(nd, CHUNK, s->col, pr, qr);
	op_pq(s);
	if (memcmp(p, pr, CHUNK) || memcmp(q, qr, CHUNK))
		rc = -1;
	op_p(s);
	if (memcmp(p, pr, CHUNK))
		rc = -1;
	memcpy(s->save[0], s->col[lost2[0]], CHUNK);
	memcpy(s->save[1], s->col[lost2[1]], CHUNK);
	memset(s->col[lost2[0]], 0, CHUNK);
	memset(s->col[lost2[1]], 0, CHUNK);
	op_rebuild2(s);
	if (memcmp(s->save[0], s->col[lost2[0]], CHUNK) ||
	    memcmp(s->save[1], s->col[lost2[1]], CHUNK))
		rc = -1;
	op_q_delta(s);
	op_q_delta(s);
	if (crp_parity_verify(nd, CHUNK, s->col, p, q, s->scratch))
		rc = -1;
	return rc;
}

int main(void)
{
	struct bstripe s4, s8;
	double x2, x4, x8;
	int rc = 1;

	memset(&s4, 0, sizeof(s4));
	memset(&s8, 0, sizeof(s8));
	if (bs_init(&s4, 4) || bs_init(&s8, 8)) {
		fprintf(stderr, "bench_parity: out of memory for the test stripes\n");
		goto out;
	}
	if (self_check(&s4) || self_check(&s8)) {
		fprintf(stderr, "bench_parity: ISA-L result differs from the reference; "
				"run build/tests/check_parity\n");
		goto out;
	}
	fprintf(stderr, "bench_parity: 64 KiB chunks, about %.1f s per row\n", ROW_NS / 1e9);

	/* Baselines: ISA-L's xor_gen straight, k sources into one. */
	s4.ndata = 2;
	x2 = measure(op_xor, &s4, 2.0 * CHUNK);
	s4.ndata = 4;
	x4 = measure(op_xor, &s4, 4.0 * CHUNK);
	x8 = measure(op_xor, &s8, 8.0 * CHUNK);

	row("P 4+1 64KiB", measure(op_p, &s4, 4.0 * CHUNK), "isa-l xor_gen 4+1", x4);
	row("P 8+1 64KiB", measure(op_p, &s8, 8.0 * CHUNK), "isa-l xor_gen 8+1", x8);
	row("P+Q 4+2 64KiB", measure(op_pq, &s4, 4.0 * CHUNK), "isa-l xor_gen 4+1", x4);
	row("P+Q 8+2 64KiB", measure(op_pq, &s8, 8.0 * CHUNK), "isa-l xor_gen 8+1", x8);
	row("P delta 64KiB", measure(op_p_delta, &s8, 2.0 * CHUNK), "isa-l xor_gen 2+1", x2);
	row("Q delta 64KiB", measure(op_q_delta, &s8, 2.0 * CHUNK), "isa-l xor_gen 2+1", x2);
	row("rebuild 2 data 8+2 64KiB", measure(op_rebuild2, &s8, 8.0 * CHUNK),
	    "isa-l xor_gen 8+1", x8);
	row("ref P 4+1 64KiB", measure(op_ref_p, &s4, 4.0 * CHUNK), "isa-l xor_gen 4+1", x4);
	row("ref P+Q 8+2 64KiB", measure(op_ref_pq, &s8, 8.0 * CHUNK), "isa-l xor_gen 8+1", x8);
	row("ref Q delta 64KiB", measure(op_ref_q_delta, &s8, 2.0 * CHUNK), "isa-l xor_gen 2+1",
	    x2);

	if (crp_parity_verify(8, CHUNK, s8.col, s8.col[8], s8.col[9], s8.scratch)) {
		fprintf(stderr, "bench_parity: stripe inconsistent after the timed runs\n");
		goto out;
	}
	rc = 0;
out:
	bs_free(&s4);
	bs_free(&s8);
	return rc;
}
