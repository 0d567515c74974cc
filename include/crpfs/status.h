/*
 * What `crpfs status` and `crpfs fsck` need from the library, without a
 * mount: read the labels and superblock, check everything.
 */
#ifndef CRPFS_STATUS_H
#define CRPFS_STATUS_H

#include <stdbool.h>
#include <stdint.h>

#include "crpfs/geom.h"

#define CRP_MAX_HOSTS 64

struct crp_status_member {
	char spec[1024];
	int index;	 /* position in the array */
	uint64_t size;	 /* bytes (0 if it cannot be opened) */
	char state[16];	 /* "ok", "failed", "missing", "stale", "rebuilding" */
	double rebuilt_pct; /* rebuilding: how far */
	char detail[256]; /* why, when not ok */
};

struct crp_status_slot {
	int slot;
	char host[64];	      /* the holder; "" when free */
	char last_host[64];   /* free: the last holder ("" if never taken) */
	uint64_t heartbeat;   /* counter */
	uint64_t heartbeat_wall_ns; /* time of the last beat, wall clock */
	char state[16];	      /* "free", "alive", "dead", "recovering",
			       "unknown" (not watched), "unreadable" */
	/* Issue 4: */
	uint64_t mount_ns;    /* wall clock of the holder's claim */
	char recoverer[64];   /* recovering: the survivor doing it; else the last one */
	uint64_t recoveries;  /* times this slot was recovered after its host died */
	uint64_t recovered_ns; /* wall clock of the last recovery step (0: never) */
	bool moved;	      /* the counter moved while it was watched */
};

struct crp_status {
	char uuid[37];
	char label[64];
	/* "clean", "scrubbing" (clean, and a scrub runs), "degraded" (a
	 * member out, no rebuild), "rebuilding", "inoperable" (more members
	 * out than the level survives). */
	char array_state[16];
	uint64_t events;	/* member table version */
	char rebuilder[64];	/* host rebuilding a member, "" if none */
	int level;
	uint32_t chunk_size;	/* bytes */
	uint64_t data_offset;	/* bytes from the start of each member */
	char lock_mode[16];	/* "reserve" or "pr" */
	int nmembers;
	struct crp_status_member members[CRP_MAX_MEMBERS];
	int max_hosts;
	struct crp_status_slot slots[CRP_MAX_HOSTS];
	uint64_t watch_ms;	/* how long the slots were watched (see below) */
	uint64_t bytes_total, bytes_used;
	uint64_t inodes_total, inodes_used;
	/* The scrub recorded in the member table (crpfs scrub): */
	char scrubber[64];	/* its host, "" if none is recorded */
	bool scrubbing;		/* its last checkpoint is under CRP_SCRUB_STALE_NS old */
	uint64_t scrub_stripe;	/* stripes scrubbed, at its last checkpoint */
	uint64_t scrub_nstripes; /* stripes of the array */
	double scrub_pct;
	uint64_t scrub_wall_ns;	/* wall clock of its last checkpoint */
	uint64_t scrub_start_wall_ns;
};

/* Read the state of the array on @specs (any order).  Opens the members
 * read-only in spirit: takes no reservation and writes nothing.
 *
 * Slot states: the slots are watched for up to CRP_STATUS_WATCH_MS (two
 * default heartbeats; less once every taken slot's counter moved).  A
 * taken slot whose counter moved is "alive" (or "recovering": a survivor
 * is recovering its dead host), one whose counter stood still is "dead"
 * (a recovering slot stays "recovering": its recoverer may have died too,
 * and the next survivor takes it over). */
#define CRP_STATUS_WATCH_MS 2000
int crp_status_read(const char *const *specs, int n, const char *host, struct crp_status *out,
		    char *err, size_t errlen);
/* The same, watching the slots for up to @watch_ms (0: no watch: every
 * taken slot is reported "alive" or "recovering" as it is written). */
int crp_status_read_watch(const char *const *specs, int n, const char *host,
			  uint64_t watch_ms, struct crp_status *out, char *err, size_t errlen);

/* fsck(8) exit codes. */
enum {
	CRP_FSCK_OK = 0,
	CRP_FSCK_CORRECTED = 1,
	CRP_FSCK_UNCORRECTED = 4,
	CRP_FSCK_OPERATIONAL = 8,
	CRP_FSCK_USAGE = 16,
};

struct crp_fsck_opts {
	bool repair;
	const char *host;
	/* Called for each problem found or fixed (the core does not print). */
	void (*say)(void *ctx, const char *msg);
	void *ctx;
};

struct crp_fsck_result {
	uint64_t inodes_checked;
	uint64_t blocks_checked;
	uint64_t stripes_checked;
	uint64_t stripes_degraded; /* not checked: a member of theirs is out of service */
	uint64_t problems;	/* found */
	uint64_t fixed;		/* repaired (only with repair) */
};

/* Check every metadata structure, checksum and stripe's parity.  Returns a
 * CRP_FSCK_* code (>= 0), or a negative error if the check could not run. */
int crp_fsck_run(const char *const *specs, int n, const struct crp_fsck_opts *opts,
		 struct crp_fsck_result *res, char *err, size_t errlen);

#endif
