/*
 * The parity engine: P and Q over GF(2^8), by ISA-L, with a plain C
 * reference implementation that the tests use as the oracle.
 *
 * Buffers: every length is a multiple of 64 bytes and every buffer is
 * aligned to CRP_BUF_ALIGN (crp_alloc_buf), as ISA-L's vector code needs.
 * Indices: data chunks 0..ndata-1; CRP_PAR_P = ndata, CRP_PAR_Q = ndata+1
 * name the parity columns in crp_parity_rebuild().
 */
#ifndef CRPFS_PARITY_H
#define CRPFS_PARITY_H

#include <stddef.h>
#include <stdint.h>

/* P = D_0 ^ ... ^ D_{k-1}.  k >= 1. */
void crp_parity_p(int ndata, size_t len, void *const *data, void *p);
/* P as above and Q = sum g^i D_i.  k >= 2. */
void crp_parity_pq(int ndata, size_t len, void *const *data, void *p, void *q);

/* Read-modify-write deltas: P ^= (old ^ new); Q ^= g^didx * (old ^ new).
 * @scratch holds @len bytes. */
void crp_parity_p_update(size_t len, const void *old_d, const void *new_d, void *p);
void crp_parity_q_update(int didx, size_t len, const void *old_d, const void *new_d, void *q,
			 void *scratch);

/*
 * Rebuild the columns named by @fail (one or two indices, @nfail 1 or 2),
 * in place: data[i] for data columns, p or q for parity.  The other columns
 * hold good data.  RAID-4/5 (@q == NULL) rebuilds one column; RAID-6 any
 * two.  Returns 0, or -EINVAL for a combination that cannot be rebuilt.
 */
int crp_parity_rebuild(int ndata, size_t len, void *const *data, void *p, void *q,
		       const int *fail, int nfail);

/* Check that P (and Q, if non-NULL) match the data: 0 if they do,
 * -CRP_EPARITY if not.  @scratch holds 2 * @len bytes. */
int crp_parity_verify(int ndata, size_t len, void *const *data, const void *p, const void *q,
		      void *scratch);

/* GF(2^8) with polynomial 0x11d. */
uint8_t crp_gf_mul(uint8_t a, uint8_t b);
uint8_t crp_gf_inv(uint8_t a);
uint8_t crp_gf_exp2(int i); /* g^i, g = 2 */

/* The reference implementation: byte at a time, no ISA-L.  Same contracts. */
void crp_ref_parity_p(int ndata, size_t len, void *const *data, void *p);
void crp_ref_parity_pq(int ndata, size_t len, void *const *data, void *p, void *q);
void crp_ref_parity_q_update(int didx, size_t len, const void *old_d, const void *new_d,
			     void *q);
int crp_ref_parity_rebuild(int ndata, size_t len, void *const *data, void *p, void *q,
			   const int *fail, int nfail);

#endif
