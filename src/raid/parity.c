/*
 * The parity engine, on ISA-L.
 *
 * The math
 * --------
 * Bytes are elements of GF(2^8) = GF(2)[x] / (x^8 + x^4 + x^3 + x^2 + 1)
 * (polynomial 0x11d).  Addition is XOR; g = 2 (the element x) generates the
 * multiplicative group, whose order is 255, so g^i = g^j only when
 * i = j (mod 255) and g^-i = g^(255-i).  With data columns D_0..D_{k-1}
 * (k <= 62) each byte position is computed independently:
 *
 *   P = D_0 + D_1 + ... + D_{k-1}
 *   Q = g^0 D_0 + g^1 D_1 + ... + g^{k-1} D_{k-1}
 *
 * which is what md and ISA-L's pq_gen compute (Horner's rule from D_{k-1}).
 *
 * Updating column d from D to D':  P' = P + (D + D'), and since Q is
 * linear, Q' = Q + g^d (D + D').
 *
 * Rebuilding.  Call the lost columns x and y, and write S for a sum over the
 * surviving data columns i only.  Every lost column is a linear combination
 * of survivors, which is exactly what ec_encode_data() computes in one pass
 * over the buffers (the coefficient rows below), so no lost column is ever
 * read before it is written and no scratch buffer is needed.
 *
 *   lost     rebuild
 *   D_x      D_x = P + S D_i                          (xor_gen)
 *   P        P = sum of all D_i                       (xor_gen)
 *   Q        Q = sum of all g^i D_i                   (rows: g^i)
 *   P, Q     both as above                            (pq_gen)
 *   D_x, Q   D_x from P as above, then Q
 *   D_x, P   Q + S g^i D_i = g^x D_x, so
 *            D_x = g^-x Q + S g^(i-x) D_i, then P     (row: g^(i-x), g^-x)
 *   D_x, D_y (x != y) the two syndromes of the survivors
 *              Pxy = P + S D_i       = D_x + D_y
 *              Qxy = Q + S g^i D_i   = g^x D_x + g^y D_y
 *            form a 2x2 system.  Multiply the first by g^y and add:
 *              g^y Pxy + Qxy = (g^x + g^y) D_x
 *            g^x + g^y != 0 because x != y and both are below 255, so with
 *              B = (g^x + g^y)^-1,  A = g^y B:
 *              D_x = A Pxy + B Qxy
 *              D_y = Pxy + D_x = (1 + A) Pxy + B Qxy
 *            and, expanding Pxy and Qxy into the survivors, the rows
 *              D_x:  P: A      Q: B   D_i: A + B g^i
 *              D_y:  P: 1 + A  Q: B   D_i: 1 + A + B g^i
 *
 * Any other combination (a Q column without RAID-6, more than two columns)
 * cannot be rebuilt and is refused.
 *
 * ISA-L's constraints, all met by the buffer contract in parity.h: xor_gen
 * wants >= 2 sources and 32-byte aligned vectors; pq_gen >= 2 data vectors,
 * 32-byte aligned, a length that is a multiple of 32.  xor_gen processes each
 * block by loading every source before storing the destination, so a
 * destination that is also a source (P ^= delta) is safe.  A call that ISA-L
 * refuses falls back to the reference implementation, so the result is
 * always right.
 */
#include <errno.h>
#include <string.h>

#include <isa-l/erasure_code.h>
#include <isa-l/gf_vect_mul.h>
#include <isa-l/raid.h>

#include "crpfs/err.h"
#include "crpfs/geom.h"
#include "crpfs/parity.h"

/* Data columns plus P and Q: the most sources a rebuild combines. */
#define PAR_MAX_COLS (CRP_MAX_MEMBERS + 2)

uint8_t crp_gf_mul(uint8_t a, uint8_t b)
{
	return gf_mul(a, b);
}

uint8_t crp_gf_inv(uint8_t a)
{
	return a ? gf_inv(a) : 0;
}

uint8_t crp_gf_exp2(int i)
{
	uint8_t r = 1, base = 2;
	int e = i % 255;

	if (e < 0)
		e += 255;
	while (e) {
		if (e & 1)
			r = gf_mul(r, base);
		base = gf_mul(base, base);
		e >>= 1;
	}
	return r;
}

/* dst = src[0] ^ ... ^ src[n-1]; dst may be one of the sources. */
static void par_xor(int n, size_t len, void *const *src, void *dst)
{
	void *v[PAR_MAX_COLS + 1];
	unsigned char *d = dst;
	size_t b;
	int i;

	if (n == 1) {
		if (src[0] != dst)
			memcpy(dst, src[0], len);
		return;
	}
	for (i = 0; i < n; i++)
		v[i] = src[i];
	v[n] = dst;
	if (xor_gen(n + 1, (int)len, v) == 0)
		return;
	for (b = 0; b < len; b++) {
		unsigned char x = 0;

		for (i = 0; i < n; i++)
			x ^= ((const unsigned char *)src[i])[b];
		d[b] = x;
	}
}

/*
 * dst[r] = sum over j of coef[r * k + j] * src[j], for r < rows.  No
 * destination may be a source.
 */
static void par_lincomb(int k, int rows, unsigned char *coef, size_t len, void *const *src,
			void *const *dst)
{
	unsigned char tbls[32 * PAR_MAX_COLS * 2];
	unsigned char *s[PAR_MAX_COLS], *d[2];
	int i;

	for (i = 0; i < k; i++)
		s[i] = src[i];
	for (i = 0; i < rows; i++)
		d[i] = dst[i];
	ec_init_tables(k, rows, coef, tbls);
	ec_encode_data((int)len, k, rows, tbls, s, d);
}

void crp_parity_p(int ndata, size_t len, void *const *data, void *p)
{
	par_xor(ndata, len, data, p);
}

void crp_parity_pq(int ndata, size_t len, void *const *data, void *p, void *q)
{
	void *v[PAR_MAX_COLS];
	int i;

	if (ndata < 2) {
		memcpy(p, data[0], len);
		memcpy(q, data[0], len);
		return;
	}
	for (i = 0; i < ndata; i++)
		v[i] = data[i];
	v[ndata] = p;
	v[ndata + 1] = q;
	if (pq_gen(ndata + 2, (int)len, v) != 0)
		crp_ref_parity_pq(ndata, len, data, p, q);
}

void crp_parity_p_update(size_t len, const void *old_d, const void *new_d, void *p)
{
	void *src[3] = { (void *)old_d, (void *)new_d, p };

	par_xor(3, len, src, p);
}

void crp_parity_q_update(int didx, size_t len, const void *old_d, const void *new_d, void *q,
			 void *scratch)
{
	void *src[2] = { (void *)old_d, (void *)new_d };
	unsigned char tbl[32];
	unsigned char *out = q;

	par_xor(2, len, src, scratch);
	gf_vect_mul_init(crp_gf_exp2(didx), tbl);
	ec_encode_data_update((int)len, 1, 1, 0, tbl, scratch, &out);
}

/* Q alone from all the data columns, leaving P untouched. */
static void par_q_only(int ndata, size_t len, void *const *data, void *q)
{
	unsigned char coef[PAR_MAX_COLS];
	int i;

	for (i = 0; i < ndata; i++)
		coef[i] = crp_gf_exp2(i);
	par_lincomb(ndata, 1, coef, len, data, &q);
}

/* D_x = P + sum of the other data columns. */
static void par_data_from_p(int ndata, size_t len, void *const *data, void *p, int x)
{
	void *src[PAR_MAX_COLS];
	int i, n = 0;

	for (i = 0; i < ndata; i++)
		if (i != x)
			src[n++] = data[i];
	src[n++] = p;
	par_xor(n, len, src, data[x]);
}

/* D_x = g^-x Q + sum over i != x of g^(i-x) D_i. */
static void par_data_from_q(int ndata, size_t len, void *const *data, void *q, int x)
{
	unsigned char coef[PAR_MAX_COLS];
	void *src[PAR_MAX_COLS];
	int i, n = 0;

	for (i = 0; i < ndata; i++) {
		if (i == x)
			continue;
		coef[n] = crp_gf_exp2(i - x);
		src[n++] = data[i];
	}
	coef[n] = crp_gf_exp2(-x);
	src[n++] = q;
	par_lincomb(n, 1, coef, len, src, &data[x]);
}

/* D_x and D_y from P, Q and the other data columns (rows derived above). */
static void par_two_data(int ndata, size_t len, void *const *data, void *p, void *q, int x,
			 int y)
{
	unsigned char coef[2 * PAR_MAX_COLS];
	void *src[PAR_MAX_COLS], *dst[2] = { data[x], data[y] };
	uint8_t gx = crp_gf_exp2(x), gy = crp_gf_exp2(y);
	uint8_t b = crp_gf_inv(gx ^ gy), a = crp_gf_mul(gy, b);
	int i, k = 0, j;

	for (i = 0; i < ndata; i++)
		if (i != x && i != y)
			src[k++] = data[i];
	src[k++] = p;
	src[k++] = q;
	for (i = 0, j = 0; i < ndata; i++) {
		uint8_t bg;

		if (i == x || i == y)
			continue;
		bg = crp_gf_mul(b, crp_gf_exp2(i));
		coef[j] = a ^ bg;
		coef[k + j] = 1 ^ a ^ bg;
		j++;
	}
	coef[j] = a;
	coef[j + 1] = b;
	coef[k + j] = 1 ^ a;
	coef[k + j + 1] = b;
	par_lincomb(k, 2, coef, len, src, dst);
}

int crp_parity_rebuild(int ndata, size_t len, void *const *data, void *p, void *q,
		       const int *fail, int nfail)
{
	int pi = ndata, qi = ndata + 1, a, b;

	if (ndata < 1 || ndata > CRP_MAX_MEMBERS || !fail || nfail < 1 || nfail > 2)
		return -EINVAL;
	a = fail[0];
	b = nfail == 2 ? fail[1] : -1;
	if (nfail == 2 && a > b) {
		b = fail[0];
		a = fail[1];
	}
	if (a < 0 || a > qi || b > qi || a == b || (nfail == 2 && !q) || (!q && a == qi))
		return -EINVAL;

	if (b < 0) {
		/* One column. */
		if (a < ndata)
			par_data_from_p(ndata, len, data, p, a);
		else if (a == pi)
			crp_parity_p(ndata, len, data, p);
		else
			par_q_only(ndata, len, data, q);
	} else if (a == pi) {
		crp_parity_pq(ndata, len, data, p, q);
	} else if (b == qi) {
		par_data_from_p(ndata, len, data, p, a);
		par_q_only(ndata, len, data, q);
	} else if (b == pi) {
		par_data_from_q(ndata, len, data, q, a);
		crp_parity_p(ndata, len, data, p);
	} else {
		par_two_data(ndata, len, data, p, q, a, b);
	}
	return 0;
}

int crp_parity_verify(int ndata, size_t len, void *const *data, const void *p, const void *q,
		      void *scratch)
{
	unsigned char *sp = scratch, *sq = sp + len;

	if (q) {
		crp_parity_pq(ndata, len, data, sp, sq);
		if (memcmp(sq, q, len))
			return -CRP_EPARITY;
	} else {
		crp_parity_p(ndata, len, data, sp);
	}
	return memcmp(sp, p, len) ? -CRP_EPARITY : 0;
}
