/*
 * The reference parity engine: the oracle the tests hold ISA-L to.
 *
 * Byte at a time, no ISA-L, no cleverness.  GF(2^8) with polynomial 0x11d
 * through log/exp tables built here by repeated multiplication by g = 2
 * (shift left, reduce by 0x11d when bit 8 is set).  The formulas are the
 * ones derived at the top of parity.c, solved per byte in the most direct
 * form (the 2x2 system as D_x = (g^y Pxy + Qxy) / (g^x + g^y)) rather than
 * as the precomputed rows the fast path uses, so the two do not share a
 * mistake.
 */
#include <errno.h>
#include <pthread.h>
#include <string.h>

#include "crpfs/geom.h"
#include "crpfs/parity.h"

static uint8_t ref_exp[510];	/* ref_exp[i] = g^i, twice over so log a + log b indexes it */
static uint8_t ref_log[256];	/* ref_log[g^i] = i; ref_log[0] unused */
static pthread_once_t ref_once = PTHREAD_ONCE_INIT;

static void ref_build_tables(void)
{
	unsigned v = 1;
	int i;

	for (i = 0; i < 255; i++) {
		ref_exp[i] = (uint8_t)v;
		ref_exp[i + 255] = (uint8_t)v;
		ref_log[v] = (uint8_t)i;
		v <<= 1;
		if (v & 0x100)
			v ^= 0x11d;
	}
}

static void ref_init(void)
{
	pthread_once(&ref_once, ref_build_tables);
}

static uint8_t ref_mul(uint8_t a, uint8_t b)
{
	if (!a || !b)
		return 0;
	return ref_exp[ref_log[a] + ref_log[b]];
}

static uint8_t ref_inv(uint8_t a)
{
	return ref_exp[255 - ref_log[a]];
}

static uint8_t ref_pow2(int i)
{
	return ref_exp[i % 255];
}

static uint8_t ref_byte(void *const *data, int i, size_t b)
{
	return ((const uint8_t *)data[i])[b];
}

/* P and Q of byte @b over the data columns, leaving out @skip1 and @skip2. */
static void ref_sums(int ndata, void *const *data, size_t b, int skip1, int skip2, uint8_t *ps,
		     uint8_t *qs)
{
	int i;

	*ps = 0;
	*qs = 0;
	for (i = 0; i < ndata; i++) {
		if (i == skip1 || i == skip2)
			continue;
		*ps ^= ref_byte(data, i, b);
		*qs ^= ref_mul(ref_pow2(i), ref_byte(data, i, b));
	}
}

void crp_ref_parity_p(int ndata, size_t len, void *const *data, void *p)
{
	uint8_t *pp = p, ps, qs;
	size_t b;

	ref_init();
	for (b = 0; b < len; b++) {
		ref_sums(ndata, data, b, -1, -1, &ps, &qs);
		pp[b] = ps;
	}
}

void crp_ref_parity_pq(int ndata, size_t len, void *const *data, void *p, void *q)
{
	uint8_t *pp = p, *qq = q;
	size_t b;

	ref_init();
	for (b = 0; b < len; b++)
		ref_sums(ndata, data, b, -1, -1, &pp[b], &qq[b]);
}

void crp_ref_parity_q_update(int didx, size_t len, const void *old_d, const void *new_d,
			     void *q)
{
	const uint8_t *o = old_d, *n = new_d;
	uint8_t *qq = q;
	size_t b;

	ref_init();
	for (b = 0; b < len; b++)
		qq[b] ^= ref_mul(ref_pow2(didx), o[b] ^ n[b]);
}

int crp_ref_parity_rebuild(int ndata, size_t len, void *const *data, void *p, void *q,
			   const int *fail, int nfail)
{
	uint8_t *pp = p, *qq = q, ps, qs, dx;
	int pi = ndata, qi = ndata + 1, x, y;
	int lost_p = 0, lost_q = 0;
	size_t b;

	if (ndata < 1 || ndata > CRP_MAX_MEMBERS || !fail || nfail < 1 || nfail > 2)
		return -EINVAL;
	if (nfail == 2 && (!q || fail[0] == fail[1]))
		return -EINVAL;
	x = -1;
	y = -1;
	for (int f = 0; f < nfail; f++) {
		int c = fail[f];

		if (c < 0 || c > qi || (c == qi && !q))
			return -EINVAL;
		if (c == pi)
			lost_p = 1;
		else if (c == qi)
			lost_q = 1;
		else if (x < 0)
			x = c;
		else
			y = c;
	}
	if (x >= 0 && y >= 0 && x > y) {
		int t = x;

		x = y;
		y = t;
	}

	ref_init();
	for (b = 0; b < len; b++) {
		if (y >= 0) {
			/* Two data columns: the 2x2 system. */
			uint8_t pxy, qxy, gx = ref_pow2(x), gy = ref_pow2(y);

			ref_sums(ndata, data, b, x, y, &ps, &qs);
			pxy = pp[b] ^ ps;
			qxy = qq[b] ^ qs;
			dx = ref_mul(ref_inv(gx ^ gy), ref_mul(gy, pxy) ^ qxy);
			((uint8_t *)data[x])[b] = dx;
			((uint8_t *)data[y])[b] = pxy ^ dx;
		} else if (x >= 0 && lost_p) {
			/* Data from Q: Q + sum of the others = g^x D_x. */
			ref_sums(ndata, data, b, x, -1, &ps, &qs);
			((uint8_t *)data[x])[b] = ref_mul(ref_inv(ref_pow2(x)), qq[b] ^ qs);
		} else if (x >= 0) {
			/* Data from P. */
			ref_sums(ndata, data, b, x, -1, &ps, &qs);
			((uint8_t *)data[x])[b] = pp[b] ^ ps;
		}
		/* Every data column is good now: recompute lost parity. */
		ref_sums(ndata, data, b, -1, -1, &ps, &qs);
		if (lost_p)
			pp[b] = ps;
		if (lost_q)
			qq[b] = qs;
	}
	return 0;
}
