/*
 * crp_storm: one host's part of the racing-rename storm.
 *
 *   crp_storm MOUNT HOSTTAG ITERATIONS NAMES [PROGRESS]
 *
 * Each iteration: create a file in MOUNT/d1 with O_CREAT|O_TRUNC, write a
 * few blocks of content that names this host and iteration, read them back
 * through the same descriptor, rename it to d2/fJ (over whatever is
 * there), write and read back again through the still-open descriptor,
 * close, then unlink d2/fL.  The names in d2 (f0 .. f<NAMES-1>) are shared
 * by every host that runs it, so hosts rename over and unlink each other's
 * files, open or not.  Every other iteration creates a shared name in d1
 * too (d1/fK, which another host may have open and be writing: its content
 * is not checked then); the others create a name of this host's own, whose
 * content must read back exactly, whatever the other hosts did to its
 * names.  ENOENT and EEXIST are the races a program must expect and are
 * counted; any other error (ESTALE, EIO, EINVAL...), or content that does
 * not read back, is a failure.
 *
 * PROGRESS, if given, is rewritten after every iteration with the number
 * done, so that the test waits on progress rather than on a total time.
 * Prints one line: "done N enoent E eexist X" and exits 0, or names the
 * first failure on standard error and exits 1.  Exit 2: bad usage.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define BLK 4096
#define MAX_BLOCKS 12

static unsigned long long enoent, eexist;

static uint64_t rng_state;

static uint64_t rnd(void)
{
	/* xorshift64*: deterministic per host tag, no libc state shared. */
	rng_state ^= rng_state >> 12;
	rng_state ^= rng_state << 25;
	rng_state ^= rng_state >> 27;
	return rng_state * 2685821657736338717ull;
}

static void fill(uint8_t *buf, size_t len, const char *tag, unsigned long it, unsigned pass)
{
	char word[64];
	int n = snprintf(word, sizeof(word), "%s:%lu:%u|", tag, it, pass);

	for (size_t i = 0; i < len; i++)
		buf[i] = (uint8_t)word[i % (size_t)n];
}

static int expected(int e)
{
	if (e == ENOENT) {
		enoent++;
		return 1;
	}
	if (e == EEXIST) {
		eexist++;
		return 1;
	}
	return 0;
}

static int fail(const char *what, const char *path, unsigned long it, int e)
{
	fprintf(stderr, "crp_storm: iteration %lu: %s %s: %s\n", it, what, path,
		e ? strerror(e) : "content differs");
	return 1;
}

/* Write @len bytes at 0 and read them back through @fd (compared only if
 * @check). */
static int write_check(int fd, const uint8_t *buf, uint8_t *back, size_t len, int check)
{
	ssize_t n = pwrite(fd, buf, len, 0);

	if (n < 0)
		return errno;
	if ((size_t)n != len)
		return EIO;
	n = pread(fd, back, len, 0);
	if (n < 0)
		return errno;
	if (check && ((size_t)n != len || memcmp(buf, back, len)))
		return -1;
	return 0;
}

static void progress(const char *path, unsigned long done)
{
	char tmp[4096];
	FILE *f;

	if (!path)
		return;
	snprintf(tmp, sizeof(tmp), "%s.tmp", path);
	f = fopen(tmp, "w");
	if (!f)
		return;
	fprintf(f, "%lu\n", done);
	if (fclose(f) == 0)
		rename(tmp, path);
}

int main(int argc, char **argv)
{
	static uint8_t buf[MAX_BLOCKS * BLK], back[MAX_BLOCKS * BLK];
	unsigned long iters, names, it;
	const char *mnt, *tag, *prog;
	char *end;

	if (argc < 5 || argc > 6)
		goto usage;
	mnt = argv[1];
	tag = argv[2];
	iters = strtoul(argv[3], &end, 10);
	if (*end || !iters)
		goto usage;
	names = strtoul(argv[4], &end, 10);
	if (*end || !names)
		goto usage;
	prog = argc == 6 ? argv[5] : NULL;
	rng_state = 0x9e3779b97f4a7c15ull;
	for (const char *p = tag; *p; p++)
		rng_state = (rng_state ^ (uint8_t)*p) * 0x100000001b3ull;
	if (!rng_state)
		rng_state = 1;

	for (it = 0; it < iters; it++) {
		char src[4096], dst[4096], victim[4096];
		size_t len = (size_t)(1 + rnd() % MAX_BLOCKS) * BLK - (size_t)(rnd() % 100);
		int fd, e, own = it % 2;

		if (own)
			snprintf(src, sizeof(src), "%s/d1/%s.%lu", mnt, tag, it);
		else
			snprintf(src, sizeof(src), "%s/d1/f%lu", mnt, (unsigned long)(rnd() % names));
		snprintf(dst, sizeof(dst), "%s/d2/f%lu", mnt, (unsigned long)(rnd() % names));
		snprintf(victim, sizeof(victim), "%s/d2/f%lu", mnt, (unsigned long)(rnd() % names));

		fd = open(src, O_CREAT | O_TRUNC | O_RDWR, 0644);
		if (fd < 0) {
			if (expected(errno))
				goto next;
			return fail("open", src, it, errno);
		}
		fill(buf, len, tag, it, 0);
		e = write_check(fd, buf, back, len, own);
		if (e) {
			close(fd);
			return fail("write and read back", src, it, e < 0 ? 0 : e);
		}
		if (rename(src, dst) < 0 && !expected(errno)) {
			e = errno;
			close(fd);
			return fail("rename to", dst, it, e);
		}
		/* The descriptor stays ours whatever the other hosts did. */
		fill(buf, len, tag, it, 1);
		e = write_check(fd, buf, back, len, own);
		if (e) {
			close(fd);
			return fail("write and read back after the rename of", src, it, e < 0 ? 0 : e);
		}
		if (close(fd) < 0)
			return fail("close", src, it, errno);
		if (unlink(victim) < 0 && !expected(errno))
			return fail("unlink", victim, it, errno);
next:
		progress(prog, it + 1);
	}
	printf("done %lu enoent %llu eexist %llu\n", it, enoent, eexist);
	return 0;
usage:
	fprintf(stderr, "usage: crp_storm MOUNT HOSTTAG ITERATIONS NAMES [PROGRESS]\n");
	return 2;
}
