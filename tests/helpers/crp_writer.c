/*
 * crp_writer: one host of the contention test.
 *
 *   crp_writer write  --host H --id I --writers N [options] MEMBER...
 *   crp_writer verify --writers N [options] MEMBER...
 *   crp_writer zero [options] MEMBER...   (zero the test region of every member)
 *
 * Options: --level L (5) --chunk BYTES (16384) --stripes S (64)
 *          --seconds T (20) --seed X --lock reserve|pr --debug nolocks|early
 *          --shadow DIR (where writer I keeps DIR/shadow.I)
 *
 * The array's data chunks are dealt to the writers round-robin (chunk c of
 * the array belongs to writer c mod N), so every stripe holds chunks of
 * several writers and they all contend for the same parity.  A writer
 * writes random small extents (one to eight blocks inside one of its
 * chunks) and large extents (several of its chunks across stripes, in one
 * batch) for T seconds, keeps a shadow copy of what it wrote, and saves the
 * shadow when it stops.  verify checks every stripe's parity against its
 * data and every writer's chunks against its shadow, and exits 0 only if
 * both hold, printing what does not.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "crpfs/array.h"
#include "crpfs/err.h"
#include "crpfs/util.h"

struct cfg {
	const char *mode;
	const char *host;
	int id, writers, level;
	uint32_t chunk;
	uint64_t stripes;
	unsigned seconds;
	uint64_t seed;
	enum crp_lock_mode lock;
	unsigned debug;
	const char *shadow_dir;
	const char **specs;
	int nspecs;
};

static void usage(void)
{
	fprintf(stderr, "usage: crp_writer write|verify [--host H] [--id I] [--writers N] "
			"[--level L] [--chunk B] [--stripes S] [--seconds T] [--seed X] "
			"[--lock reserve|pr] [--debug nolocks|early] [--shadow DIR] MEMBER...\n");
	exit(2);
}

static int parse(int argc, char **argv, struct cfg *c)
{
	static const struct option opts[] = {
		{ "host", 1, 0, 'h' },	  { "id", 1, 0, 'i' },	  { "writers", 1, 0, 'w' },
		{ "level", 1, 0, 'l' },	  { "chunk", 1, 0, 'c' }, { "stripes", 1, 0, 's' },
		{ "seconds", 1, 0, 't' }, { "seed", 1, 0, 'x' },  { "lock", 1, 0, 'm' },
		{ "debug", 1, 0, 'd' },	  { "shadow", 1, 0, 'o' }, { 0, 0, 0, 0 },
	};
	int o;

	if (argc < 2)
		usage();
	*c = (struct cfg){ .mode = argv[1], .host = "writer", .writers = 3, .level = 5,
			   .chunk = 16384, .stripes = 64, .seconds = 20, .seed = 1,
			   .shadow_dir = "." };
	optind = 2;
	while ((o = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		switch (o) {
		case 'h': c->host = optarg; break;
		case 'i': c->id = atoi(optarg); break;
		case 'w': c->writers = atoi(optarg); break;
		case 'l': c->level = atoi(optarg); break;
		case 'c': c->chunk = (uint32_t)strtoul(optarg, NULL, 0); break;
		case 's': c->stripes = strtoull(optarg, NULL, 0); break;
		case 't': c->seconds = (unsigned)atoi(optarg); break;
		case 'x': c->seed = strtoull(optarg, NULL, 0); break;
		case 'm':
			if (!strcmp(optarg, "pr"))
				c->lock = CRP_LOCK_PR;
			else if (strcmp(optarg, "reserve"))
				usage();
			break;
		case 'd':
			if (!strcmp(optarg, "nolocks"))
				c->debug |= CRP_DEBUG_NO_LOCKS;
			else if (!strcmp(optarg, "early"))
				c->debug |= CRP_DEBUG_EARLY_RELEASE;
			else
				usage();
			break;
		case 'o': c->shadow_dir = optarg; break;
		default: usage();
		}
	}
	c->specs = (const char **)argv + optind;
	c->nspecs = argc - optind;
	if (c->nspecs < 3 || c->writers < 1 || c->id < 0 || c->id >= c->writers)
		usage();
	return 0;
}

static struct crp_array *open_array(const struct cfg *c)
{
	struct crp_array_opts ao = { .host = c->host, .lock_mode = c->lock, .debug = c->debug };
	struct crp_array *a;
	struct crp_geom g;
	char err[512];
	int r;

	r = crp_array_open(c->specs, c->nspecs, &ao, &a, err, sizeof(err));
	if (r < 0) {
		fprintf(stderr, "crp_writer: %s\n", err);
		exit(1);
	}
	r = crp_geom_init(&g, c->level, c->nspecs, c->chunk, 0,
			  CRP_MIN(crp_array_min_member_size(a), c->stripes * c->chunk), err,
			  sizeof(err));
	if (r == 0)
		r = crp_array_set_geometry(a, &g);
	if (r < 0) {
		fprintf(stderr, "crp_writer: geometry: %s\n", r == -CRP_EGEOMETRY ? err : crp_strerror(r));
		exit(1);
	}
	return a;
}

static uint64_t rnd(uint64_t *s)
{
	*s ^= *s << 13;
	*s ^= *s >> 7;
	*s ^= *s << 17;
	return *s;
}

static void fill(uint8_t *p, size_t len, uint64_t *s, int id)
{
	for (size_t i = 0; i < len; i += 8) {
		uint64_t v = rnd(s);

		memcpy(p + i, &v, 8);
		p[i] = (uint8_t)id; /* who wrote it, for messages */
	}
}

static int do_write(const struct cfg *c)
{
	struct crp_array *a = open_array(c);
	const struct crp_geom *g = crp_array_geom(a);
	uint64_t nchunks = g->nstripes * (uint64_t)g->ndata;
	uint64_t mine = (nchunks - (uint64_t)c->id + (uint64_t)c->writers - 1) / (uint64_t)c->writers;
	uint32_t bs = crp_array_block_size(a);
	uint64_t s = c->seed * 0x9e3779b97f4a7c15ull + (uint64_t)c->id + 1, end;
	uint8_t *shadow, *buf;
	unsigned long txns = 0;
	char path[1024];
	int r = 0, fd;

	/* The shadow starts as whatever the array holds in our chunks (zeros
	 * on a fresh array; the test writes nothing before). */
	shadow = crp_alloc_buf(mine * g->chunk);
	buf = crp_alloc_buf((size_t)g->chunk * 8);
	if (!shadow || !buf)
		return 1;
	for (uint64_t k = 0; k < mine; k++) {
		r = crp_array_read(a, (k * (uint64_t)c->writers + (uint64_t)c->id) * g->chunk,
				   shadow + k * g->chunk, g->chunk);
		if (r < 0)
			goto fail;
	}
	end = crp_now_ns() + (uint64_t)c->seconds * 1000000000ull;
	while (crp_now_ns() < end) {
		if (rnd(&s) % 4) {
			/* small: 1..8 blocks inside one of our chunks */
			uint64_t k = rnd(&s) % mine;
			uint32_t nb = (uint32_t)(1 + rnd(&s) % 8), maxb = g->chunk / bs;
			uint32_t b0, len;

			nb = CRP_MIN(nb, maxb);
			b0 = (uint32_t)(rnd(&s) % (maxb - nb + 1));
			len = nb * bs;
			fill(buf, len, &s, c->id);
			r = crp_array_write(a, (k * (uint64_t)c->writers + (uint64_t)c->id) * g->chunk +
						       (uint64_t)b0 * bs, buf, len);
			if (r < 0)
				goto fail;
			memcpy(shadow + k * g->chunk + (uint64_t)b0 * bs, buf, len);
		} else {
			/* large: 2..8 of our chunks in a row, one batch */
			struct crp_array_iov iov[8];
			int n = (int)(2 + rnd(&s) % 7);
			uint64_t k0;

			n = (int)CRP_MIN((uint64_t)n, mine);
			k0 = rnd(&s) % (mine - (uint64_t)n + 1);
			fill(buf, (size_t)n * g->chunk, &s, c->id);
			for (int i = 0; i < n; i++) {
				iov[i].off = ((k0 + (uint64_t)i) * (uint64_t)c->writers + (uint64_t)c->id) *
					     g->chunk;
				iov[i].buf = buf + (size_t)i * g->chunk;
				iov[i].len = g->chunk;
			}
			r = crp_array_writev(a, iov, n);
			if (r < 0)
				goto fail;
			memcpy(shadow + k0 * g->chunk, buf, (size_t)n * g->chunk);
		}
		txns++;
	}
	snprintf(path, sizeof(path), "%s/shadow.%d", c->shadow_dir, c->id);
	fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
	if (fd < 0 || write(fd, shadow, mine * g->chunk) != (ssize_t)(mine * g->chunk)) {
		fprintf(stderr, "crp_writer %s: cannot save %s: %s\n", c->host, path, strerror(errno));
		return 1;
	}
	close(fd);
	{
		struct crp_host_counters *hc = crp_array_counters(a);

		printf("writer %s: %lu writes, %lu transactions, %.2f round trips each, "
		       "%lu conflicts, %lu backoffs, %lu cache hits, hold mean %lu us max %lu us\n",
		       c->host, txns, (unsigned long)hc->txns,
		       hc->txns ? (double)hc->txn_round_trips / (double)hc->txns : 0.0,
		       (unsigned long)hc->lock_conflicts, (unsigned long)hc->lock_backoffs,
		       (unsigned long)hc->lock_cache_hits,
		       (unsigned long)(hc->lock_releases ? hc->lock_hold_ns / hc->lock_releases / 1000 : 0),
		       (unsigned long)(hc->lock_hold_max_ns / 1000));
	}
	crp_array_close(a);
	free(shadow);
	free(buf);
	return 0;
fail:
	fprintf(stderr, "crp_writer %s: write failed: %s\n", c->host, crp_strerror(r));
	return 1;
}

static int do_verify(const struct cfg *c)
{
	struct crp_array *a = open_array(c);
	const struct crp_geom *g = crp_array_geom(a);
	uint64_t bad_stripes = 0, bad_chunks = 0;
	uint8_t *chunk = crp_alloc_buf(g->chunk), *shadow = NULL;
	int r;

	for (uint64_t st = 0; st < g->nstripes; st++) {
		r = crp_array_verify_stripe(a, st);
		if (r == -CRP_EPARITY) {
			if (bad_stripes++ < 5)
				printf("stripe %llu: parity does not match data\n", (unsigned long long)st);
		} else if (r < 0) {
			printf("stripe %llu: %s\n", (unsigned long long)st, crp_strerror(r));
			return 1;
		}
	}
	for (int w = 0; w < c->writers; w++) {
		char path[1024];
		FILE *f;
		uint64_t nchunks = g->nstripes * (uint64_t)g->ndata;
		uint64_t mine = (nchunks - (uint64_t)w + (uint64_t)c->writers - 1) / (uint64_t)c->writers;

		snprintf(path, sizeof(path), "%s/shadow.%d", c->shadow_dir, w);
		f = fopen(path, "r");
		if (!f) {
			printf("writer %d left no shadow (%s): it did not finish\n", w, path);
			return 1;
		}
		shadow = realloc(shadow, g->chunk);
		for (uint64_t k = 0; k < mine; k++) {
			if (fread(shadow, 1, g->chunk, f) != g->chunk) {
				printf("%s: short\n", path);
				return 1;
			}
			r = crp_array_read(a, (k * (uint64_t)c->writers + (uint64_t)w) * g->chunk, chunk,
					   g->chunk);
			if (r < 0) {
				printf("read: %s\n", crp_strerror(r));
				return 1;
			}
			if (memcmp(chunk, shadow, g->chunk) && bad_chunks++ < 5)
				printf("writer %d chunk %llu: data differs from what it last wrote\n", w,
				       (unsigned long long)k);
		}
		fclose(f);
	}
	printf("verify: %llu stripes, %llu with bad parity, %llu chunks with lost data\n",
	       (unsigned long long)g->nstripes, (unsigned long long)bad_stripes,
	       (unsigned long long)bad_chunks);
	crp_array_close(a);
	free(chunk);
	free(shadow);
	return bad_stripes || bad_chunks ? 3 : 0;
}

/* Zeros on every member make a consistent array (P and Q of zeros are zeros). */
static int do_zero(const struct cfg *c)
{
	struct crp_array *a = open_array(c);
	const struct crp_geom *g = crp_array_geom(a);
	uint8_t *z = crp_alloc_buf(g->chunk);

	for (int m = 0; m < crp_array_nmembers(a); m++) {
		struct crp_cmd cmd;
		uint8_t param[24];

		/* Start from no persistent reservation: register, then CLEAR
		 * (left over only by a host that died holding one). */
		crp_cmd_init(&cmd);
		crp_cdb_pr_out(&cmd, CRP_PROUT_REGISTER_IGNORE, 0, 0, 0x7e57, param);
		if (crp_member_exec(crp_array_member(a, m), &cmd) == 0) {
			crp_cmd_init(&cmd);
			crp_cdb_pr_out(&cmd, CRP_PROUT_CLEAR, 0, 0x7e57, 0, param);
			crp_member_exec(crp_array_member(a, m), &cmd);
		}
		for (uint64_t st = 0; st < g->nstripes; st++) {
			int r = crp_member_write(crp_array_member(a, m), crp_geom_member_off(g, st, 0), z,
						 g->chunk);

			if (r < 0) {
				fprintf(stderr, "crp_writer: zeroing %s: %s\n",
					crp_member_spec(crp_array_member(a, m)), crp_strerror(r));
				return 1;
			}
		}
	}
	free(z);
	crp_array_close(a);
	return 0;
}

int main(int argc, char **argv)
{
	struct cfg c;

	parse(argc, argv, &c);
	if (!strcmp(c.mode, "zero"))
		return do_zero(&c);
	if (!strcmp(c.mode, "write"))
		return do_write(&c);
	if (!strcmp(c.mode, "verify"))
		return do_verify(&c);
	usage();
	return 2;
}
