/*
 * Array geometry: where each byte of the array lives.
 *
 * The RAID area of every member starts at data_offset and is cut into
 * chunks; stripe s is chunk s of every member.  The layouts are Linux md's:
 *
 *   RAID-4:  P on member n-1; data chunk d on member d.
 *   RAID-5:  left-symmetric: P on member n-1-(s mod n); data chunk d on
 *            member (P + 1 + d) mod n.
 *   RAID-6:  left-symmetric: P on member n-1-(s mod n), Q on (P + 1) mod n;
 *            data chunk d on member (P + 2 + d) mod n.  Q = sum g^d * D_d
 *            over GF(2^8) with g = 2 (polynomial 0x11d), the coefficient of
 *            data chunk d being g^d, as md and ISA-L's pq_gen compute it.
 *
 * Array offset x lies in stripe x / (ndata * chunk), data chunk
 * (x / chunk) mod ndata, at byte x mod chunk of that chunk.
 */
#ifndef CRPFS_GEOM_H
#define CRPFS_GEOM_H

#include <stddef.h>
#include <stdint.h>

#define CRP_MIN_CHUNK (4u * 1024)
#define CRP_MAX_CHUNK (1024u * 1024)
#define CRP_MAX_MEMBERS 64

struct crp_geom {
	int level;		/* 4, 5 or 6 */
	int nmembers;		/* 3..64 (RAID-4/5), 4..64 (RAID-6) */
	int ndata;		/* nmembers - 1, or nmembers - 2 for RAID-6 */
	uint32_t chunk;		/* bytes, power of two, 4 KiB..1 MiB */
	uint64_t data_offset;	/* bytes: start of the RAID area on each member */
	uint64_t nstripes;	/* stripes that fit on the smallest member */
};

/*
 * Fill @g.  @member_size is the usable size of the smallest member in
 * bytes.  Errors: -CRP_EGEOMETRY with a message in @err for a bad level,
 * too few or too many members, a chunk that is not a power of two in range,
 * a data_offset not a multiple of the chunk, or no room for one stripe.
 */
int crp_geom_init(struct crp_geom *g, int level, int nmembers, uint32_t chunk,
		  uint64_t data_offset, uint64_t member_size, char *err, size_t errlen);

/* Bytes of data in one stripe, and in the whole array. */
uint64_t crp_geom_stripe_bytes(const struct crp_geom *g);
uint64_t crp_geom_capacity(const struct crp_geom *g);

/* Parity members of stripe @s; *q = -1 unless RAID-6. */
void crp_geom_parity(const struct crp_geom *g, uint64_t s, int *p, int *q);

/* Member holding data chunk @d (0..ndata-1) of stripe @s. */
int crp_geom_data_member(const struct crp_geom *g, uint64_t s, int d);

/* Role of member @m in stripe @s: 0..ndata-1 for data chunk d,
 * CRP_ROLE_P or CRP_ROLE_Q for parity. */
#define CRP_ROLE_P (-1)
#define CRP_ROLE_Q (-2)
int crp_geom_role(const struct crp_geom *g, uint64_t s, int m);

/* Byte offset on a member of byte @off within chunk @s (adds data_offset). */
static inline uint64_t crp_geom_member_off(const struct crp_geom *g, uint64_t s, uint32_t off)
{
	return g->data_offset + s * (uint64_t)g->chunk + off;
}

struct crp_loc {
	uint64_t stripe;
	int didx;	     /* data chunk index within the stripe */
	int member;
	uint32_t chunk_off;  /* byte within the chunk */
	uint64_t member_off; /* byte on the member (includes data_offset) */
};

/* Array offset -> location.  -ERANGE past the capacity. */
int crp_geom_map(const struct crp_geom *g, uint64_t array_off, struct crp_loc *loc);
/* Member byte -> array offset.  -ERANGE outside the RAID area,
 * -ENOENT if that byte holds parity. */
int crp_geom_unmap(const struct crp_geom *g, int member, uint64_t member_off, uint64_t *array_off);

#endif
