/*
 * XXH3 compiled for AVX2 (this file alone is built with -mavx2): the data
 * checksums of every block read and written hash 4 KiB each, and the
 * library's build is for the x86-64 baseline (SSE2), about half as fast.
 * The result is the same bits on every vector width.  Called only where
 * the CPU has AVX2 (crp_data_csum checks).
 */
#define XXH_INLINE_ALL
#include <xxhash.h>

#include "crpfs/util.h"

uint64_t crp_xxh3_avx2(const void *p, size_t len)
{
	return XXH3_64bits(p, len);
}
