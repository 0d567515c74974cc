/*
 * Hosts side by side: creates per second of 1, 2 and 3 hosts on the same
 * disks, each in its own directory and all in one shared directory.
 *
 * A tgtd of our own on 127.0.0.1 serves 4 LUNs of 256 MiB, formatted
 * RAID-5 with mkfs.crpfs again before each setting.  The hosts are crp_fs
 * mounts in this process (the library, no FUSE), each with its own host
 * name, so its own iSCSI sessions and initiator name, its own slot and
 * its own locks: to the disks they are different machines.  Before a setting is measured, every
 * host waits (bounded) until its heartbeat counts the others alive, so
 * what is measured is the steady state: a host alone keeps the metadata
 * lock for group commits of commit= (50 ms), hosts that see each other
 * for peer_commit= (30 ms), or commit every operation alone with
 * peer_commit=0.
 *
 * Each host runs in a thread of its own and creates empty files (create +
 * release) for SECONDS; the rate is all hosts' creates over the time.
 * Rows, area "hosts", ratios against the same run:
 *
 *   1 host alone                                  (the baseline)
 *   1 host, commit=0 (every operation commits alone)  against 1 host alone
 *   2 and 3 hosts, own directories, aggregate      against 1 host alone
 *   2 and 3 hosts, one shared directory, aggregate against 1 host alone
 *   3 hosts, both settings, peer_commit=0           against 1 host alone
 *
 * and the reservations per create of the 3-host settings, from the
 * counters, and the 99th and 99.9th percentiles and the longest of one
 * create's time with 3 hosts in one directory (what waiting for the
 * others' metadata lock costs);
 * then, on the same LUNs formatted for persistent reservations (pr lock
 * mode), 1 host alone and 3 hosts in both settings, against the
 * same baseline.  When tgtd or mkfs.crpfs cannot run, it fails and says why.
 *
 * Paths: $CRPFS_BUILD, else $BUILD (set by run-bench.sh), else "build".
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/benchlib.h"
#include "crpfs/err.h"
#include "crpfs/fs.h"
#include "crpfs/util.h"
#include "../tests/fixture/tgt.h"

#define NLUNS 4
#define LUN_SIZE (256ull << 20)
#define MAX_HOSTS 3
#define SECONDS 4
#define NLAT 3 /* create latency: p99, p99.9, the longest */

static const struct crp_cred root_cred = { 0, 0, 022 };

struct worker {
	pthread_t th;
	struct crp_fs *fs;
	uint64_t dir;
	int id;
	uint64_t stop_ns;
	uint64_t done;
	int err;
	uint32_t *lat_us;	/* each create's time (create + release), in order */
	size_t nlat, lat_cap;
};

static void lat_add(struct worker *w, uint64_t ns)
{
	if (w->nlat == w->lat_cap) {
		size_t cap = w->lat_cap ? w->lat_cap * 2 : 4096;
		uint32_t *n = realloc(w->lat_us, cap * sizeof(*n));

		if (!n)
			bench_die("out of memory for latencies");
		w->lat_us = n;
		w->lat_cap = cap;
	}
	w->lat_us[w->nlat++] = (uint32_t)CRP_MIN(ns / 1000, (uint64_t)UINT32_MAX);
}

static int cmp_u32(const void *a, const void *b)
{
	uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;

	return x < y ? -1 : x > y;
}

static void *create_loop(void *arg)
{
	struct worker *w = arg;
	char name[48];

	while (crp_now_ns() < w->stop_ns) {
		struct crp_attr a;
		uint64_t fh, t0 = crp_now_ns();
		int r;

		snprintf(name, sizeof(name), "h%d-%06llu", w->id, (unsigned long long)w->done);
		r = crp_fs_create(w->fs, w->dir, name, 0644, O_RDWR | O_EXCL, &root_cred, &a, &fh);
		if (r < 0) {
			w->err = r;
			break;
		}
		r = crp_fs_release(w->fs, a.ino, fh);
		crp_fs_forget(w->fs, a.ino, 1);
		if (r < 0) {
			w->err = r;
			break;
		}
		w->done++;
		lat_add(w, crp_now_ns() - t0);
	}
	return NULL;
}

static const char *const *g_specs;
static const char *g_mkfs, *g_mode; /* mkfs.crpfs, and the lock mode to format for */

/* A new filesystem on the LUNs, in lock mode g_mode. */
static void format(void)
{
	char *argv[] = { (char *)g_mkfs, (char *)"-f", (char *)"-l", (char *)"5", (char *)"-m",
			 (char *)g_mode, (char *)g_specs[0], (char *)g_specs[1],
			 (char *)g_specs[2], (char *)g_specs[3], NULL };

	if (bench_run(argv))
		bench_die("%s -m %s failed on the LUNs: its words are above", g_mkfs, g_mode);
}

/* Mount @n hosts named after @tag, and wait until each counts the others. */
static void mount_hosts(struct crp_fs **fs, int n, const char *tag, uint32_t commit_ms,
			uint32_t peer_commit_ms)
{
	char err[1024], host[64];

	for (int i = 0; i < n; i++) {
		struct crp_fs_opts o = { .host = host, .commit_ms = commit_ms,
					 .peer_commit_ms = peer_commit_ms };

		snprintf(host, sizeof(host), "bench-%s-%d", tag, i);
		if (crp_fs_mount(g_specs, NLUNS, &o, &fs[i], err, sizeof(err)) < 0)
			bench_die("cannot mount host %s: %s", host, err);
	}
	for (int i = 0; i < n; i++) {
		struct crp_fs_counters c;
		int waited = 0;

		for (crp_fs_get_counters(fs[i], &c); c.peers != (uint32_t)(n - 1);
		     crp_fs_get_counters(fs[i], &c)) {
			if (++waited > 300)
				bench_die("host %d of %d counts %u others alive after 30 s", i, n, c.peers);
			usleep(100000);
		}
	}
}

/* Creates per second of @n hosts (own directories unless @shared), and
 * the reservations per create. */
static double measure(int n, bool shared, uint32_t commit_ms, uint32_t peer_commit_ms,
		      const char *tag, double *resv, double lat_ms[NLAT])
{
	struct crp_fs *fs[MAX_HOSTS];
	struct worker w[MAX_HOSTS];
	struct crp_fs_counters c0[MAX_HOSTS], c1;
	uint64_t total = 0, reserves = 0, t0, t1;
	struct crp_attr d;
	char dname[64];

	/* Each setting on a new filesystem: the same free space and inodes,
	 * none of the previous settings' files in the way. */
	format();
	mount_hosts(fs, n, tag, commit_ms, peer_commit_ms);
	if (shared) {
		snprintf(dname, sizeof(dname), "%s", tag);
		if (crp_fs_mkdir(fs[0], CRP_ROOT_INO, dname, 0755, &root_cred, &d) < 0)
			bench_die("mkdir %s", dname);
	}
	for (int i = 0; i < n; i++) {
		memset(&w[i], 0, sizeof(w[i]));
		w[i].fs = fs[i];
		w[i].id = i;
		if (!shared) {
			snprintf(dname, sizeof(dname), "%s-%d", tag, i);
			if (crp_fs_mkdir(fs[i], CRP_ROOT_INO, dname, 0755, &root_cred, &d) < 0)
				bench_die("mkdir %s", dname);
		}
		w[i].dir = d.ino;
	}
	/* The other hosts see the directories before the clock starts. */
	for (int i = 0; i < n; i++) {
		struct crp_attr a;

		if (crp_fs_lookup(fs[i], CRP_ROOT_INO, shared ? tag : dname, &a) == 0)
			crp_fs_forget(fs[i], a.ino, 1);
		crp_fs_get_counters(fs[i], &c0[i]);
	}
	t0 = crp_now_ns();
	for (int i = 0; i < n; i++) {
		w[i].stop_ns = t0 + SECONDS * 1000000000ull;
		if (pthread_create(&w[i].th, NULL, create_loop, &w[i]))
			bench_die("cannot start a host thread");
	}
	for (int i = 0; i < n; i++)
		pthread_join(w[i].th, NULL);
	t1 = crp_now_ns();
	for (int i = 0; i < n; i++) {
		if (w[i].err)
			bench_die("host %d of %d (%s): a create failed: %s", i, n, tag, crp_strerror(w[i].err));
		crp_fs_get_counters(fs[i], &c1);
		reserves += c1.reservations - c0[i].reservations;
		total += w[i].done;
		fprintf(stderr, "bench_hosts: %s host %d: %llu creates\n", tag, i,
			(unsigned long long)w[i].done);
	}
	{
		size_t nl = 0, k = 0;
		uint32_t *all;

		for (int i = 0; i < n; i++)
			nl += w[i].nlat;
		all = malloc((nl ? nl : 1) * sizeof(*all));
		if (!all)
			bench_die("out of memory for latencies");
		for (int i = 0; i < n; i++) {
			memcpy(all + k, w[i].lat_us, w[i].nlat * sizeof(*all));
			k += w[i].nlat;
			free(w[i].lat_us);
		}
		qsort(all, nl, sizeof(*all), cmp_u32);
		lat_ms[0] = nl ? all[nl * 99 / 100] / 1000.0 : 0;
		lat_ms[1] = nl ? all[nl * 999 / 1000] / 1000.0 : 0;
		lat_ms[2] = nl ? all[nl - 1] / 1000.0 : 0;
		free(all);
	}
	for (int i = n - 1; i >= 0; i--)
		if (crp_fs_unmount(fs[i]) < 0)
			bench_die("unmount of host %d (%s) failed", i, tag);
	*resv = total ? (double)reserves / (double)total : 0;
	return (double)total / ((double)(t1 - t0) / 1e9);
}

static void row(const char *what, double v, const char *base, double bv)
{
	printf("| hosts | %s | %.1f | creates/s | %s | %.1f | %.2f |\n", what, v, base, bv,
	       bv > 0 ? v / bv : 0.0);
	fflush(stdout);
}

/* Reservations per create in @setting: a count, no baseline. */
static void resv_row(const char *setting, double resv)
{
	printf("| hosts | reservations per create, %s | %.3f | RESERVE/op | - | - | - |\n", setting,
	       resv);
	fflush(stdout);
}

/* The 99th and 99.9th percentiles and the longest of one create's time in
 * @setting, the waits for the other hosts' metadata lock included: lower
 * is better.  A host waits for the lock once per turn and answers many
 * creates in it, so the wait itself shows in the tail, not in the p99. */
static void lat_row(const char *setting, const double lat[NLAT], const double one[NLAT])
{
	static const char *const name[NLAT] = { "p99", "p99.9", "max" };

	for (int i = 0; i < NLAT; i++)
		printf("| hosts | create latency %s (lock waits included), %s, lower is better | "
		       "%.2f | ms | 1 host alone, same run | %.2f | %.2f |\n",
		       name[i], setting, lat[i], one[i], one[i] > 0 ? lat[i] / one[i] : 0.0);
	fflush(stdout);
}

/* One setting measured against 1 host alone: its rate row and, when
 * named, its reservations per create and its create latency tail. */
struct setting {
	int n;
	bool shared;
	uint32_t commit_ms, peer_commit_ms;
	const char *tag, *what;
	const char *resv, *lat; /* NULL: no such row */
};

static const struct setting reserve_settings[] = {
	{ 1, false, CRP_FS_COMMIT_OFF, 0, "commit0", "creates, 1 host, commit=0", NULL, NULL },
	{ 2, false, 0, 0, "own2", "creates, 2 hosts, each in its own directory", NULL, NULL },
	{ 3, false, 0, 0, "own3", "creates, 3 hosts, each in its own directory",
	  "3 hosts, own directories", NULL },
	{ 2, true, 0, 0, "shared2", "creates, 2 hosts, one shared directory", NULL, NULL },
	{ 3, true, 0, 0, "shared3", "creates, 3 hosts, one shared directory",
	  "3 hosts, one shared directory", "3 hosts, one shared directory" },
	{ 3, false, 0, CRP_FS_COMMIT_OFF, "own3p0",
	  "creates, 3 hosts, each in its own directory, peer_commit=0",
	  "3 hosts, own directories, peer_commit=0", NULL },
	{ 3, true, 0, CRP_FS_COMMIT_OFF, "shared3p0",
	  "creates, 3 hosts, one shared directory, peer_commit=0",
	  "3 hosts, one shared directory, peer_commit=0",
	  "3 hosts, one shared directory, peer_commit=0" },
};

static const struct setting pr_settings[] = {
	{ 1, false, 0, 0, "pralone", "pr lock mode: creates, 1 host alone", NULL, NULL },
	{ 3, false, 0, 0, "prown3", "pr lock mode: creates, 3 hosts, each in its own directory",
	  "pr lock mode, 3 hosts, own directories", NULL },
	{ 3, true, 0, 0, "prshared3", "pr lock mode: creates, 3 hosts, one shared directory", NULL,
	  "pr lock mode, 3 hosts, one shared directory" },
};

static void run_settings(const struct setting *st, size_t n, double one,
			 const double lat_one[NLAT])
{
	for (size_t i = 0; i < n; i++) {
		double resv, lat[NLAT], r = measure(st[i].n, st[i].shared, st[i].commit_ms,
						    st[i].peer_commit_ms, st[i].tag, &resv, lat);

		row(st[i].what, r, "1 host alone (group commit), same run", one);
		if (st[i].resv)
			resv_row(st[i].resv, resv);
		if (st[i].lat)
			lat_row(st[i].lat, lat, lat_one);
	}
}

int main(void)
{
	const char *b = getenv("CRPFS_BUILD");
	char mkfs[PATH_MAX], why[512];
	const char *specs[NLUNS];
	struct crp_tgt *t;
	double one, resv, lat_one[NLAT];

	bench_set_name("bench_hosts");

	if (!b || !*b)
		b = getenv("BUILD");
	b = b && *b ? b : "build";
	snprintf(mkfs, sizeof(mkfs), "%s/mkfs.crpfs", b);
	if (access(mkfs, X_OK))
		bench_die("cannot run: %s is not built (run make)", mkfs);
	t = crp_tgt_start(NLUNS, LUN_SIZE, why, sizeof(why));
	if (!t)
		bench_die("cannot start tgtd: %s", why);
	for (int i = 0; i < NLUNS; i++)
		specs[i] = crp_tgt_spec(t, i);
	g_specs = specs;
	g_mkfs = mkfs;
	g_mode = "reserve";
	one = measure(1, false, 0, 0, "alone", &resv, lat_one);
	printf("| hosts | creates, 1 host alone (group commit), iSCSI RAID-5 on 4 LUNs | %.1f | "
	       "creates/s | - | - | - |\n", one);
	resv_row("1 host alone", resv);
	run_settings(reserve_settings, CRP_ARRAY_SIZE(reserve_settings), one, lat_one);

	/* The same disks, formatted with persistent reservations. */
	g_mode = "pr";
	run_settings(pr_settings, CRP_ARRAY_SIZE(pr_settings), one, lat_one);
	crp_tgt_stop(t);
	return 0;
}
