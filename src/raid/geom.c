/*
 * Array geometry: validation of a level/width/chunk/offset and the mapping
 * between array offsets and member bytes, in Linux md's layouts.
 *
 * Rotation, with n members and stripe s (r = s mod n):
 *
 *   RAID-4   P = n-1                         data d on member d
 *   RAID-5   P = n-1-r                       data d on member (P+1+d) mod n
 *   RAID-6   P = n-1-r, Q = (P+1) mod n      data d on member (P+2+d) mod n
 *
 * So the inverse, for member m of stripe s, is d = (m - P - 1) mod n for
 * RAID-5 and d = (m - P - 2) mod n for RAID-6 (values ndata.. are the
 * parity members).  For RAID-5 with 4 members this gives:
 *
 *   stripe  m0  m1  m2  m3        stripe  m0  m1  m2  m3
 *     0     D0  D1  D2  P           4     D0  D1  D2  P
 *     1     D1  D2  P   D0          5     D1  D2  P   D0
 *     2     D2  P   D0  D1          6     D2  P   D0  D1
 *     3     P   D0  D1  D2          7     P   D0  D1  D2
 */
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "crpfs/err.h"
#include "crpfs/geom.h"
#include "crpfs/util.h"

static int geom_fail(char *err, size_t errlen, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static int geom_fail(char *err, size_t errlen, const char *fmt, ...)
{
	va_list ap;

	if (err && errlen) {
		va_start(ap, fmt);
		vsnprintf(err, errlen, fmt, ap);
		va_end(ap);
	}
	return -CRP_EGEOMETRY;
}

int crp_geom_init(struct crp_geom *g, int level, int nmembers, uint32_t chunk,
		  uint64_t data_offset, uint64_t member_size, char *err, size_t errlen)
{
	int min_members, nparity;
	uint64_t nstripes, stripe_bytes;

	if (err && errlen)
		err[0] = '\0';
	if (level != 4 && level != 5 && level != 6)
		return geom_fail(err, errlen,
				 "RAID level %d is not supported: the level must be 4, 5 or 6",
				 level);
	nparity = level == 6 ? 2 : 1;
	min_members = nparity + 2;
	if (nmembers < min_members || nmembers > CRP_MAX_MEMBERS)
		return geom_fail(err, errlen,
				 "RAID-%d needs %d to %d members, but %d members were given",
				 level, min_members, CRP_MAX_MEMBERS, nmembers);
	if (!crp_is_pow2(chunk))
		return geom_fail(err, errlen,
				 "chunk size %" PRIu32 " bytes is not a power of two "
				 "(use 4 KiB, 8 KiB, ... 1 MiB)",
				 chunk);
	if (chunk < CRP_MIN_CHUNK)
		return geom_fail(err, errlen,
				 "chunk size %" PRIu32 " bytes is below the minimum of %u bytes (4 KiB)",
				 chunk, CRP_MIN_CHUNK);
	if (chunk > CRP_MAX_CHUNK)
		return geom_fail(err, errlen,
				 "chunk size %" PRIu32 " bytes is above the maximum of %u bytes (1 MiB)",
				 chunk, CRP_MAX_CHUNK);
	if (data_offset % chunk)
		return geom_fail(err, errlen,
				 "data offset %" PRIu64 " bytes is not a multiple of the chunk size "
				 "%" PRIu32 " bytes",
				 data_offset, chunk);
	if (member_size < data_offset || member_size - data_offset < chunk)
		return geom_fail(err, errlen,
				 "member size %" PRIu64 " bytes leaves no room for one stripe: "
				 "it must be at least the data offset %" PRIu64
				 " plus one chunk of %" PRIu32 " bytes",
				 member_size, data_offset, chunk);
	nstripes = (member_size - data_offset) / chunk;
	stripe_bytes = (uint64_t)(nmembers - nparity) * chunk;
	if (nstripes > UINT64_MAX / stripe_bytes)
		return geom_fail(err, errlen,
				 "member size %" PRIu64 " bytes times %d data members overflows "
				 "a 64-bit array offset",
				 member_size, nmembers - nparity);

	memset(g, 0, sizeof(*g));
	g->level = level;
	g->nmembers = nmembers;
	g->ndata = nmembers - nparity;
	g->chunk = chunk;
	g->data_offset = data_offset;
	g->nstripes = nstripes;
	return 0;
}

uint64_t crp_geom_stripe_bytes(const struct crp_geom *g)
{
	return (uint64_t)g->ndata * g->chunk;
}

uint64_t crp_geom_capacity(const struct crp_geom *g)
{
	return g->nstripes * crp_geom_stripe_bytes(g);
}

/* The P member of stripe @s. */
static int geom_p(const struct crp_geom *g, uint64_t s)
{
	if (g->level == 4)
		return g->nmembers - 1;
	return g->nmembers - 1 - (int)(s % (uint64_t)g->nmembers);
}

void crp_geom_parity(const struct crp_geom *g, uint64_t s, int *p, int *q)
{
	int pm = geom_p(g, s);

	if (p)
		*p = pm;
	if (q)
		*q = g->level == 6 ? (pm + 1) % g->nmembers : -1;
}

int crp_geom_data_member(const struct crp_geom *g, uint64_t s, int d)
{
	if (d < 0 || d >= g->ndata)
		return -EINVAL;
	switch (g->level) {
	case 4:
		return d;
	case 5:
		return (geom_p(g, s) + 1 + d) % g->nmembers;
	default:
		return (geom_p(g, s) + 2 + d) % g->nmembers;
	}
}

int crp_geom_role(const struct crp_geom *g, uint64_t s, int m)
{
	int n = g->nmembers, p, d;

	if (m < 0 || m >= n)
		return -EINVAL;
	p = geom_p(g, s);
	if (m == p)
		return CRP_ROLE_P;
	switch (g->level) {
	case 4:
		return m;
	case 5:
		return (m - p - 1 + n) % n;
	default:
		d = (m - p - 2 + 2 * n) % n;
		return d == n - 1 ? CRP_ROLE_Q : d;
	}
}

int crp_geom_map(const struct crp_geom *g, uint64_t array_off, struct crp_loc *loc)
{
	uint64_t sb = crp_geom_stripe_bytes(g), rem;

	if (array_off >= crp_geom_capacity(g))
		return -ERANGE;
	loc->stripe = array_off / sb;
	rem = array_off % sb;
	loc->didx = (int)(rem / g->chunk);
	loc->chunk_off = (uint32_t)(rem % g->chunk);
	loc->member = crp_geom_data_member(g, loc->stripe, loc->didx);
	loc->member_off = crp_geom_member_off(g, loc->stripe, loc->chunk_off);
	return 0;
}

int crp_geom_unmap(const struct crp_geom *g, int member, uint64_t member_off, uint64_t *array_off)
{
	uint64_t rel, s;
	int role;

	if (member < 0 || member >= g->nmembers)
		return -EINVAL;
	if (member_off < g->data_offset)
		return -ERANGE;
	rel = member_off - g->data_offset;
	s = rel / g->chunk;
	if (s >= g->nstripes)
		return -ERANGE;
	role = crp_geom_role(g, s, member);
	if (role < 0)
		return -ENOENT;
	*array_off = s * crp_geom_stripe_bytes(g) + (uint64_t)role * g->chunk + rel % g->chunk;
	return 0;
}
