/*
 * Scrub: read every stripe in use, online, check its parity and every
 * block's own checksum, find the column that is wrong and, when asked,
 * rewrite it (src/meta/scrub.c opens with the model and the races).
 *
 * A stripe is in use when it holds a block of the fixed metadata regions
 * (superblock, shared state, journals, open tables, inode bitmap, inode
 * table, each group's bitmap and checksum table) or a block that the
 * group bitmaps mark allocated; the others are skipped.  Each stripe in
 * use is read whole under the locks of every writable member; the
 * blocks' checksums are judged against the bitmaps, checksum tables and
 * inode bitmap as the disks hold them in that same hold.  Anything that
 * does not check out is read and judged again under the metadata lock as
 * well (no operation of any host under way) before it is reported or
 * repaired.
 */
#ifndef CRPFS_SCRUB_H
#define CRPFS_SCRUB_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "crpfs/geom.h"
#include "crpfs/meta.h"

/* A scrub whose last checkpoint is older than this has stopped (its host
 * died or was killed): it is no longer "scrubbing", and another may start. */
#define CRP_SCRUB_STALE_NS (60ull * 1000000000ull)
/* How often a running scrub writes its checkpoint to the member table. */
#define CRP_SCRUB_CHECKPOINT_NS (5ull * 1000000000ull)

struct crp_scrub_counts {
	uint64_t stripes_total;		/* stripes of the array */
	uint64_t stripes_in_use;	/* checked + degraded */
	uint64_t stripes_checked;	/* in use, parity checked */
	uint64_t stripes_free;		/* skipped: nothing in use there */
	uint64_t stripes_degraded;	/* in use, a member out of service: parity not
					   checked (the readable blocks' checksums are) */
	uint64_t parity_p;		/* stripes whose P does not match the data */
	uint64_t parity_q;		/* stripes whose Q does not match the data */
	uint64_t data_errors;		/* data blocks failing their checksum */
	uint64_t meta_errors;		/* metadata blocks (or inode records' blocks)
					   failing theirs */
	uint64_t read_errors;		/* chunks a member could not read (MEDIUM ERROR) */
	uint64_t bad_columns[CRP_MAX_MEMBERS]; /* chunks found wrong, by position */
	uint64_t syndrome_disagree;	/* RAID-6: P and Q named another column than
					   the checksums did */
	uint64_t problem_stripes;	/* stripes with any of the above */
	uint64_t repaired;		/* chunks rewritten (and read back right) */
	uint64_t repaired_stripes;	/* problem stripes now right */
	uint64_t unrecoverable;		/* problem stripes parity cannot put right */
	uint64_t rechecked_clean;	/* stripes that did not check out in a writer's
					   instant and did under the metadata lock */
	uint64_t blocks_checked;	/* blocks whose checksum was judged */
	uint64_t bytes_read;		/* from the members */
	uint64_t stripes_done;		/* how far the scrub went (stopped early: < total) */
};

struct crp_scrub_opts {
	bool repair;		/* rewrite what is found wrong; else only report */
	uint64_t rate_bps;	/* bytes a second read from the members; 0: no limit */
	/* After each batch: stripes passed of @total, bytes read so far. */
	void (*progress)(void *ctx, uint64_t done, uint64_t total, uint64_t bytes,
			 uint64_t start);
	/* Each problem found or repaired, as one sentence (the core does
	 * not print). */
	void (*say)(void *ctx, const char *msg);
	void *ctx;
	atomic_bool *stop;	/* set: stop at the next batch (-EINTR) */
	uint64_t checkpoint_ns;	/* 0: CRP_SCRUB_CHECKPOINT_NS */
};

/*
 * Scrub the array of @m (open read-write with a host slot, as
 * crp_admin_open opens it: its locks and writes follow the rules every
 * host follows).  The scrub is recorded in the member table (scrubber,
 * checkpoint time and stripe) when it starts, about every checkpoint_ns,
 * and cleared at the end, so that crpfs status shows it.  Returns 0 when
 * the whole array was scrubbed (@c says what was found), -EINTR when
 * stopped, -EBUSY when another live scrub is recorded (@c untouched but
 * for its host, in @busy_host if not NULL, 64 bytes), or an error that
 * kept it from going on.
 */
int crp_meta_scrub(struct crp_meta *m, const struct crp_scrub_opts *o,
		   struct crp_scrub_counts *c, char *busy_host);

#endif
