/* Clocks, aligned buffers and per-thread random numbers. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "crpfs/util.h"

uint64_t crp_now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

uint64_t crp_wall_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

void crp_sleep_ns(uint64_t ns)
{
	struct timespec ts = { .tv_sec = (time_t)(ns / 1000000000ull),
			       .tv_nsec = (long)(ns % 1000000000ull) };

	while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
		;
}

void *crp_alloc_buf_raw(size_t len)
{
	void *p = NULL;

	if (posix_memalign(&p, CRP_BUF_ALIGN, len ? len : CRP_BUF_ALIGN))
		return NULL;
	return p;
}

void *crp_alloc_buf(size_t len)
{
	void *p = crp_alloc_buf_raw(len);

	if (p)
		memset(p, 0, len);
	return p;
}

uint64_t crp_random(void)
{
	static __thread uint64_t state;

	if (!state)
		state = crp_now_ns() ^ ((uint64_t)getpid() << 32) ^ (uint64_t)(uintptr_t)&state;
	/* xorshift64* */
	state ^= state >> 12;
	state ^= state << 25;
	state ^= state >> 27;
	return state * 2685821657736338717ull;
}
