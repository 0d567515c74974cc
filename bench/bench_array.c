/*
 * Members and stripe transactions, against a tgtd of our own on 127.0.0.1
 * and against file members, each row beside its baseline from the same run:
 *
 *   raw members   sequential and random, read and write, N members in
 *                 parallel through the transport (the baseline of the rest)
 *   small write   4 KiB random writes through stripe transactions: with
 *                 locks uncached, with locks cached, against the same
 *                 read-modify-write with no locks at all
 *   large write   full-stripe writes against the raw members' write rate
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../src/raid/array_i.h"
#include "crpfs/array.h"
#include "crpfs/err.h"
#include "crpfs/util.h"
#include "../tests/fixture/tgt.h"

#define NMEM 4
#define LUN_SIZE (256ull << 20)
#define RUN_NS 1500000000ull

static void row(const char *area, const char *name, double v, const char *unit,
		const char *base, double bv)
{
	if (bv > 0)
		printf("| %s | %s | %.1f | %s | %s | %.1f | %.2f |\n", area, name, v, unit, base, bv,
		       v / bv);
	else /* a baseline row itself */
		printf("| %s | %s | %.1f | %s | - | - | - |\n", area, name, v, unit);
	fflush(stdout);
}

static void die(const char *what, int r)
{
	fprintf(stderr, "bench_array: %s: %s\n", what, crp_strerror(r));
	exit(1);
}

/* Raw member I/O: @qd commands in flight per member, all members at once. */
static double raw_io(struct crp_member **m, int n, bool write, bool random, uint32_t io,
		     int qd, double *iops)
{
	struct crp_cmd *cmds = calloc((size_t)(n * qd), sizeof(*cmds));
	uint8_t *buf = crp_alloc_buf((size_t)io * (size_t)qd);
	uint64_t start = crp_now_ns(), bytes = 0, ops = 0, pos = 0, seed = 7;
	uint32_t bs = crp_member_block_size(m[0]);
	uint64_t span = CRP_MIN(crp_member_size(m[0]), LUN_SIZE) / io;

	memset(buf, 0xa5, (size_t)io * (size_t)qd);
	while (crp_now_ns() - start < RUN_NS) {
		struct crp_batch b;

		crp_batch_init(&b);
		for (int i = 0; i < n; i++) {
			for (int k = 0; k < qd; k++) {
				struct crp_cmd *c = &cmds[i * qd + k];
				uint64_t blk;

				if (random) {
					seed = seed * 6364136223846793005ull + 1;
					blk = (seed >> 33) % span;
				} else {
					blk = (pos + (uint64_t)k) % span;
				}
				crp_cmd_init(c);
				if (write)
					crp_cdb_write16(c, blk * io / bs, io / bs, buf + (size_t)k * io, io,
							false);
				else
					crp_cdb_read16(c, blk * io / bs, io / bs, buf + (size_t)k * io, io);
				crp_batch_add(&b, c);
				crp_member_submit(m[i], &c, 1);
			}
		}
		crp_batch_wait(&b);
		crp_batch_destroy(&b);
		for (int i = 0; i < n * qd; i++)
			if (cmds[i].result)
				die("raw I/O", cmds[i].result);
		pos += (uint64_t)qd;
		bytes += (uint64_t)n * (uint64_t)qd * io;
		ops += (uint64_t)n * (uint64_t)qd;
	}
	double secs = (double)(crp_now_ns() - start) / 1e9;

	free(cmds);
	free(buf);
	*iops = (double)ops / secs;
	return (double)bytes / secs / 1e6;
}

/* Mean latency in microseconds of 4 KiB random writes through transactions.
 * @batch > 1 writes that many same-layout stripes per call (locks cached). */
static double txn_latency(struct crp_array *a, int batch)
{
	const struct crp_geom *g = crp_array_geom(a);
	uint64_t sb = crp_geom_stripe_bytes(g), layouts = (uint64_t)g->nmembers;
	uint64_t groups = g->nstripes / layouts / (uint64_t)batch, start = crp_now_ns(), n = 0;
	uint64_t seed = 11;
	struct crp_array_iov iov[16];
	uint8_t *buf = crp_alloc_buf(4096);

	while (crp_now_ns() - start < RUN_NS) {
		uint64_t grp, lay;

		seed = seed * 6364136223846793005ull + 1;
		grp = (seed >> 33) % groups;
		lay = (seed >> 20) % layouts;
		for (int i = 0; i < batch; i++) {
			uint64_t s = (grp * (uint64_t)batch + (uint64_t)i) * layouts + lay;

			iov[i] = (struct crp_array_iov){ s * sb, buf, 4096 };
		}
		int r = crp_array_writev(a, iov, batch);

		if (r)
			die("transaction", r);
		n += (uint64_t)batch;
	}
	free(buf);
	return (double)(crp_now_ns() - start) / 1e3 / (double)n;
}

static double full_stripe_rate(struct crp_array *a)
{
	const struct crp_geom *g = crp_array_geom(a);
	uint64_t sb = crp_geom_stripe_bytes(g), io = sb * 4, start = crp_now_ns(), bytes = 0, off = 0;
	uint8_t *buf = crp_alloc_buf(io);

	while (crp_now_ns() - start < RUN_NS) {
		int r = crp_array_write(a, off, buf, io);

		if (r)
			die("full-stripe write", r);
		bytes += io;
		off = (off + io) % (crp_geom_capacity(g) - io) / sb * sb;
	}
	free(buf);
	return (double)bytes / ((double)(crp_now_ns() - start) / 1e9) / 1e6;
}

static struct crp_array *array_on(const char *const *specs, int n, unsigned debug, bool create)
{
	struct crp_array_opts o = { .host = "bench", .debug = debug, .create = create,
				    .create_size = LUN_SIZE };
	struct crp_array *a;
	struct crp_geom g;
	char err[512];
	int r = crp_array_open(specs, n, &o, &a, err, sizeof(err));

	if (r) {
		fprintf(stderr, "bench_array: %s\n", err);
		exit(1);
	}
	if (crp_geom_init(&g, 5, n, 65536, 0, crp_array_min_member_size(a), err, sizeof(err)) ||
	    crp_array_set_geometry(a, &g)) {
		fprintf(stderr, "bench_array: %s\n", err);
		exit(1);
	}
	return a;
}

static void bench_transport(const char *area, const char *const *specs, bool create)
{
	struct crp_member *m[NMEM];
	struct crp_member_opts mo = { .host = "bench-raw", .create = create, .create_size = LUN_SIZE };
	struct crp_array *a;
	char err[512], name[96];
	double iops, mbps, base_lat, seq_w;

	for (int i = 0; i < NMEM; i++)
		if (crp_member_open(specs[i], &mo, &m[i], err, sizeof(err))) {
			fprintf(stderr, "bench_array: %s\n", err);
			exit(1);
		}
	seq_w = raw_io(m, NMEM, true, false, 1 << 20, 4, &iops);
	row(area, "raw seq write 1 MiB x4 members", seq_w, "MB/s", "-", 0);
	mbps = raw_io(m, NMEM, false, false, 1 << 20, 4, &iops);
	row(area, "raw seq read 1 MiB x4 members", mbps, "MB/s", "-", 0);
	raw_io(m, NMEM, true, true, 4096, 8, &iops);
	row(area, "raw rand write 4 KiB qd8 x4", iops, "IOPS", "-", 0);
	raw_io(m, NMEM, false, true, 4096, 8, &iops);
	row(area, "raw rand read 4 KiB qd8 x4", iops, "IOPS", "-", 0);
	raw_io(m, 1, true, true, 4096, 1, &iops);
	double raw_lat = 1e6 / iops;

	row(area, "raw 4 KiB write latency qd1", raw_lat, "us", "-", 0);
	for (int i = 0; i < NMEM; i++)
		crp_member_close(m[i]);

	a = array_on(specs, NMEM, CRP_DEBUG_NO_LOCKS, false);
	base_lat = txn_latency(a, 1);
	row(area, "RAID-5 4 KiB write, no locks", base_lat, "us", "raw 4 KiB write qd1", raw_lat);
	crp_array_close(a);

	a = array_on(specs, NMEM, 0, false);
	row(area, "RAID-5 4 KiB write, locks uncached", txn_latency(a, 1), "us",
	    "same write, no locks", base_lat);
	row(area, "RAID-5 4 KiB write, locks cached (x8)", txn_latency(a, 8), "us",
	    "same write, no locks", base_lat);
	snprintf(name, sizeof(name), "RAID-5 full-stripe write (%d data)", NMEM - 1);
	row(area, name, full_stripe_rate(a), "MB/s", "raw seq write x4 members", seq_w);
	{
		struct crp_host_counters *hc = crp_array_counters(a);

		fprintf(stderr, "%s: %lu transactions, %.2f round trips each, max hold %lu us\n", area,
			(unsigned long)hc->txns,
			hc->txns ? (double)hc->txn_round_trips / (double)hc->txns : 0.0,
			(unsigned long)(hc->lock_hold_max_ns / 1000));
	}
	crp_array_close(a);
}

int main(void)
{
	char why[512], dir[] = "/tmp/crpfs-bench.XXXXXX", fspecs[NMEM][128];
	const char *specs[NMEM];
	struct crp_tgt *t;

	if (!mkdtemp(dir))
		die("mkdtemp", -1);
	for (int i = 0; i < NMEM; i++) {
		snprintf(fspecs[i], sizeof(fspecs[i]), "file:%s/m%d", dir, i);
		specs[i] = fspecs[i];
	}
	bench_transport("file", specs, true);
	for (int i = 0; i < NMEM; i++) {
		char p[200];

		snprintf(p, sizeof(p), "%s/m%d", dir, i);
		unlink(p);
		snprintf(p, sizeof(p), "%s/m%d.crpfs-scsi", dir, i);
		unlink(p);
	}
	rmdir(dir);

	t = crp_tgt_start(NMEM, LUN_SIZE, why, sizeof(why));
	if (!t) {
		fprintf(stderr, "bench_array: cannot start tgtd: %s\n", why);
		return 1;
	}
	for (int i = 0; i < NMEM; i++)
		specs[i] = crp_tgt_spec(t, i);
	bench_transport("iscsi", specs, false);
	crp_tgt_stop(t);
	return 0;
}
