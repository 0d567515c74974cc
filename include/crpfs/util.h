/* Small helpers shared by every layer: clocks, alignment, random numbers. */
#ifndef CRPFS_UTIL_H
#define CRPFS_UTIL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define CRP_ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))
#define CRP_MIN(a, b) ((a) < (b) ? (a) : (b))
#define CRP_MAX(a, b) ((a) > (b) ? (a) : (b))
#define CRP_DIV_ROUND_UP(a, b) (((a) + (b) - 1) / (b))

/* Alignment of every I/O buffer handed to a member or the parity engine. */
#define CRP_BUF_ALIGN 64

/* Monotonic clock, nanoseconds. */
uint64_t crp_now_ns(void);
/* Wall clock, nanoseconds since the epoch. */
uint64_t crp_wall_ns(void);
void crp_sleep_ns(uint64_t ns);

/*
 * Stall time: how long this process could not run although it wanted to
 * (stopped, paused, starved), in ns since the watcher started; it only
 * grows.  Timeouts that judge another party subtract what passed during a
 * wait (src/util/stall.c).  crp_stall_watch starts the watcher (once per
 * process; again in a forked child); before it, crp_stall_ns counts nothing.
 */
void crp_stall_watch(void);
uint64_t crp_stall_ns(void);

/* Aligned, zeroed allocation (CRP_BUF_ALIGN); free with free(). NULL on ENOMEM. */
void *crp_alloc_buf(size_t len);
/* The same, not zeroed: for buffers that are filled whole before use. */
void *crp_alloc_buf_raw(size_t len);

/*
 * Per-thread scratch buffers (src/util/scratch.c): aligned as
 * crp_alloc_buf, kept by the thread between requests instead of freed, one
 * per use.  crp_scratch_take gives @len bytes (cleared when @zero), NULL on
 * ENOMEM; crp_scratch_give takes it back, on the same thread.
 */
enum crp_scratch_use {
	CRP_SCRATCH_REPLY,	/* a read request's reply (the FUSE layer) */
	CRP_SCRATCH_FILE_W,	/* a file write's bounce buffer */
	CRP_SCRATCH_FILE_R,	/* a file read's bounce buffer */
	CRP_SCRATCH_STRIPE,	/* a stripe update's rows */
	CRP_SCRATCH_USES
};
void *crp_scratch_take(enum crp_scratch_use use, size_t len, bool zero);
void crp_scratch_give(enum crp_scratch_use use, void *p);

/* XXH3-64 of @len bytes, built for AVX2: only where the CPU has it. */
uint64_t crp_xxh3_avx2(const void *p, size_t len);

/* The topmost mount of type @fstype (as "fuse.crpfs") on @dir, a canonical
 * path, in /proc/self/mountinfo: its device ("MAJ:MIN") and source, each
 * malloc'd when asked for.  0, -ENOENT if there is none, or an errno. */
int crp_mountinfo_find(const char *dir, const char *fstype, char **dev, char **source);

/* A thread-safe pseudo-random 64-bit value (xorshift seeded per thread). */
uint64_t crp_random(void);

static inline int crp_is_pow2(uint64_t v)
{
	return v && !(v & (v - 1));
}

#endif
