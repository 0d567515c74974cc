/*
 * crpfs: the administration tool.
 *
 *   crpfs status MEMBER[,MEMBER...]|MOUNTPOINT [--json] [--watch MS] [--host NAME]
 *   crpfs hosts MEMBER[,MEMBER...]|MOUNTPOINT [--json] [--watch MS] [--host NAME]
 *   crpfs fsck MEMBER[,MEMBER...] [--repair] [--host NAME]
 *   crpfs fail MEMBER[,MEMBER...]|MOUNTPOINT MEMBER [--host NAME]
 *   crpfs replace MEMBER[,MEMBER...]|MOUNTPOINT OLD NEW [--rate MIB/S] [--json] [--force]
 *                 [--host NAME]
 *   crpfs scrub MEMBER[,MEMBER...]|MOUNTPOINT [--repair] [--json] [--rate MIB/S] [--host NAME]
 *
 * Each subcommand is a thin main over the library (crpfs/status.h).  Bad
 * arguments print the usage on standard error before anything is opened:
 * exit 16 for fsck (fsck(8)'s "usage or syntax error"), 2 otherwise.
 * A subcommand is one more row in the table at the end.
 */
#include <errno.h>
#include <limits.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <signal.h>
#include <stdatomic.h>

#include "crpfs/cluster.h"
#include "crpfs/err.h"
#include "crpfs/log.h"
#include "crpfs/meta.h"
#include "crpfs/scrub.h"
#include "crpfs/status.h"
#include "crpfs/util.h"

#define EXIT_USAGE 2
#define EXIT_FAILED 1
#define HOST_MAX 64

static void usage(FILE *f)
{
	fprintf(f,
		"usage: crpfs status MEMBER[,MEMBER...]|MOUNTPOINT [--json] [--watch MS] [--host NAME]\n"
		"       crpfs hosts MEMBER[,MEMBER...]|MOUNTPOINT [--json] [--watch MS] [--host NAME]\n"
		"       crpfs fsck MEMBER[,MEMBER...] [--repair] [--host NAME]\n"
		"       crpfs fail MEMBER[,MEMBER...]|MOUNTPOINT MEMBER [--host NAME]\n"
		"       crpfs replace MEMBER[,MEMBER...]|MOUNTPOINT OLD NEW [--rate MIB/S] [--json]\n"
		"                     [--force] [--host NAME]\n"
		"       crpfs scrub MEMBER[,MEMBER...]|MOUNTPOINT [--repair] [--json] [--rate MIB/S]\n"
		"                   [--host NAME]\n"
		"       crpfs help\n"
		"\n"
		"  MEMBER  file:PATH, iscsi://HOST[:PORT]/IQN/LUN, /dev/sgN or /dev/sdX, or\n"
		"          missing; OLD may also be a position number\n"
		"See crpfs(8).\n");
}

/* The member list, split on commas; the strings live in @buf. */
struct members {
	char *buf;
	const char *specs[CRP_MAX_MEMBERS];
	int n;
};

static int members_split(const char *list, struct members *m, char *err, size_t errlen)
{
	char *p;

	memset(m, 0, sizeof(*m));
	m->buf = strdup(list);
	if (!m->buf)
		return -ENOMEM;
	p = m->buf;
	for (;;) {
		char *comma = strchr(p, ',');

		if (comma)
			*comma = '\0';
		if (*p == '\0') {
			snprintf(err, errlen, "member list '%s': an empty member", list);
			return -EINVAL;
		}
		if (m->n == CRP_MAX_MEMBERS) {
			snprintf(err, errlen, "member list '%s': more than %d members", list,
				 CRP_MAX_MEMBERS);
			return -EINVAL;
		}
		m->specs[m->n++] = p;
		if (!comma)
			break;
		p = comma + 1;
	}
	return 0;
}

static void members_free(struct members *m)
{
	free(m->buf);
	memset(m, 0, sizeof(*m));
}

/*
 * The member list of the fuse.crpfs mount at @dir: the fsname, which the
 * kernel shows as the mount source.  Returns a malloc'd string, or NULL with
 * @err set.
 */
static char *members_of_mountpoint(const char *dir, char *err, size_t errlen)
{
	char *want = realpath(dir, NULL), *found = NULL;
	int r;

	if (!want) {
		snprintf(err, errlen, "%s: %s", dir, strerror(errno));
		return NULL;
	}
	r = crp_mountinfo_find(want, "fuse.crpfs", NULL, &found);
	if (r == -ENOENT)
		snprintf(err, errlen, "%s is not a crpfs mount point", dir);
	else if (r < 0)
		snprintf(err, errlen, "/proc/self/mountinfo: %s", strerror(-r));
	free(want);
	return found;
}

static int default_host(char *host, size_t len)
{
	char name[HOST_NAME_MAX + 1] = "";

	if (gethostname(name, sizeof(name)) < 0)
		return -errno;
	name[sizeof(name) - 1] = '\0';
	if (strlen(name) >= len) {
		char *dot = strchr(name, '.');

		if (dot)
			*dot = '\0';
	}
	snprintf(host, len, "%s", name);
	return 0;
}

/* Common options of the subcommands. */
struct args {
	const char *target;
	const char *operand[2];	/* fail: MEMBER; replace: OLD NEW */
	int noperands;
	bool json;
	bool repair;
	bool force;		/* replace: overwrite a device that holds something */
	uint64_t watch_ms;	/* --watch: how long the heartbeats are watched */
	uint64_t rate_bps;	/* --rate (MiB/s), 0: no limit */
	char host[HOST_MAX];
};

/* Parse argv after the subcommand.  @allowed lists the flags it takes. */
static int parse_args(int argc, char **argv, const char *allowed, struct args *a)
{
	memset(a, 0, sizeof(*a));
	a->watch_ms = CRP_STATUS_WATCH_MS;
	for (int i = 0; i < argc; i++) {
		const char *s = argv[i];

		if (strcmp(s, "--json") == 0 && strstr(allowed, "json")) {
			a->json = true;
		} else if ((strcmp(s, "--watch") == 0 || strncmp(s, "--watch=", 8) == 0) &&
			   strstr(allowed, "watch")) {
			const char *v = s[7] == '=' ? s + 8 : (i + 1 < argc ? argv[++i] : NULL);
			char *end = NULL;
			unsigned long long ms = v ? strtoull(v, &end, 10) : 0;

			if (!v || *v < '0' || *v > '9' || *end || ms > 3600000) {
				fprintf(stderr, "crpfs: --watch needs milliseconds, from 0 to 3600000\n");
				return -EINVAL;
			}
			a->watch_ms = ms;
		} else if (strcmp(s, "--repair") == 0 && strstr(allowed, "repair")) {
			a->repair = true;
		} else if (strcmp(s, "--force") == 0 && strstr(allowed, "force")) {
			a->force = true;
		} else if ((strcmp(s, "--rate") == 0 || strncmp(s, "--rate=", 7) == 0) &&
			   strstr(allowed, "rate")) {
			const char *v = s[6] == '=' ? s + 7 : (i + 1 < argc ? argv[++i] : NULL);
			char *end = NULL;
			double mib = v ? strtod(v, &end) : 0;

			if (!v || end == v || *end || !(mib > 0) || mib > 1e6) {
				fprintf(stderr, "crpfs: --rate needs MiB a second, above 0\n");
				return -EINVAL;
			}
			a->rate_bps = (uint64_t)(mib * 1048576.0);
		} else if (strcmp(s, "--host") == 0 || strncmp(s, "--host=", 7) == 0) {
			const char *v = s[6] == '=' ? s + 7 : (i + 1 < argc ? argv[++i] : NULL);

			if (!v || !*v || strlen(v) >= sizeof(a->host)) {
				fprintf(stderr, "crpfs: --host needs a name of 1 to %d characters\n",
					HOST_MAX - 1);
				return -EINVAL;
			}
			snprintf(a->host, sizeof(a->host), "%s", v);
		} else if (s[0] == '-' && s[1] != '\0') {
			fprintf(stderr, "crpfs: unknown option '%s'\n", s);
			return -EINVAL;
		} else if (!a->target) {
			a->target = s;
		} else if (strstr(allowed, "operands") && a->noperands < 2) {
			a->operand[a->noperands++] = s;
		} else {
			fprintf(stderr, "crpfs: unexpected argument '%s'\n", s);
			return -EINVAL;
		}
	}
	if (!a->target) {
		fprintf(stderr, "crpfs: missing the member list\n");
		return -EINVAL;
	}
	if (a->host[0] == '\0' && default_host(a->host, sizeof(a->host)) < 0) {
		fprintf(stderr, "crpfs: cannot read the hostname: give --host NAME\n");
		return -EINVAL;
	}
	return 0;
}

/* ---- status ---- */

/* A JSON string literal, escaped as RFC 8259 requires. */
static void json_str(FILE *f, const char *s)
{
	fputc('"', f);
	for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
		switch (*p) {
		case '"':
			fputs("\\\"", f);
			break;
		case '\\':
			fputs("\\\\", f);
			break;
		case '\b':
			fputs("\\b", f);
			break;
		case '\f':
			fputs("\\f", f);
			break;
		case '\n':
			fputs("\\n", f);
			break;
		case '\r':
			fputs("\\r", f);
			break;
		case '\t':
			fputs("\\t", f);
			break;
		default:
			if (*p < 0x20 || *p == 0x7f)
				fprintf(f, "\\u%04x", *p);
			else
				fputc(*p, f);
		}
	}
	fputc('"', f);
}

static void status_json(FILE *f, const struct crp_status *st)
{
	fputs("{\n  \"uuid\": ", f);
	json_str(f, st->uuid);
	fputs(",\n  \"label\": ", f);
	json_str(f, st->label);
	fputs(",\n  \"state\": ", f);
	json_str(f, st->array_state);
	fprintf(f, ",\n  \"events\": %llu,\n  \"rebuilder\": ", (unsigned long long)st->events);
	json_str(f, st->rebuilder);
	fprintf(f, ",\n  \"level\": %d,\n  \"chunk_size\": %u,\n  \"data_offset\": %llu,\n",
		st->level, st->chunk_size, (unsigned long long)st->data_offset);
	fputs("  \"lock_mode\": ", f);
	json_str(f, st->lock_mode);
	fputs(",\n  \"members\": [", f);
	for (int i = 0; i < st->nmembers; i++) {
		const struct crp_status_member *m = &st->members[i];

		fprintf(f, "%s\n    {\"index\": %d, \"spec\": ", i ? "," : "", m->index);
		json_str(f, m->spec);
		fputs(", \"state\": ", f);
		json_str(f, m->state);
		fprintf(f, ", \"size\": %llu, \"rebuilt_pct\": %.1f, \"detail\": ",
			(unsigned long long)m->size, m->rebuilt_pct);
		json_str(f, m->detail);
		fputc('}', f);
	}
	fprintf(f, "%s],\n  \"max_hosts\": %d,\n  \"slots\": [", st->nmembers ? "\n  " : "",
		st->max_hosts);
	for (int i = 0; i < st->max_hosts && i < CRP_MAX_HOSTS; i++) {
		const struct crp_status_slot *s = &st->slots[i];

		fprintf(f, "%s\n    {\"slot\": %d, \"host\": ", i ? "," : "", s->slot);
		json_str(f, s->host);
		fputs(", \"state\": ", f);
		json_str(f, s->state);
		fprintf(f, ", \"heartbeat\": %llu, \"heartbeat_wall_ns\": %llu}",
			(unsigned long long)s->heartbeat, (unsigned long long)s->heartbeat_wall_ns);
	}
	fprintf(f,
		"%s],\n  \"bytes_total\": %llu,\n  \"bytes_used\": %llu,\n"
		"  \"inodes_total\": %llu,\n  \"inodes_used\": %llu,\n",
		st->max_hosts > 0 ? "\n  " : "", (unsigned long long)st->bytes_total,
		(unsigned long long)st->bytes_used, (unsigned long long)st->inodes_total,
		(unsigned long long)st->inodes_used);
	fputs("  \"scrub\": {\"host\": ", f);
	json_str(f, st->scrubber);
	fprintf(f, ", \"active\": %s, \"stripe\": %llu, \"stripes\": %llu, \"percent\": %.1f, "
		"\"checkpoint_wall_ns\": %llu, \"start_wall_ns\": %llu}\n}\n",
		st->scrubbing ? "true" : "false", (unsigned long long)st->scrub_stripe,
		(unsigned long long)st->scrub_nstripes, st->scrub_pct,
		(unsigned long long)st->scrub_wall_ns, (unsigned long long)st->scrub_start_wall_ns);
}

static const char *human(uint64_t v, char *buf, size_t len)
{
	static const char *const units[] = { "B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB" };
	double d = (double)v;
	int u = 0;

	while (d >= 1024 && u < 6) {
		d /= 1024;
		u++;
	}
	if (u == 0)
		snprintf(buf, len, "%llu B", (unsigned long long)v);
	else
		snprintf(buf, len, "%.1f %s", d, units[u]);
	return buf;
}

static void status_text(FILE *f, const struct crp_status *st)
{
	char h1[32], h2[32];
	uint64_t now = 0;
	struct timespec ts;

	if (clock_gettime(CLOCK_REALTIME, &ts) == 0)
		now = (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
	fprintf(f, "uuid:        %s\n", st->uuid);
	fprintf(f, "label:       %s\n", st->label[0] ? st->label : "(none)");
	fprintf(f, "state:       %s (member table events %llu)\n", st->array_state,
		(unsigned long long)st->events);
	fprintf(f, "level:       RAID-%d\n", st->level);
	fprintf(f, "chunk size:  %u bytes (%s)\n", st->chunk_size,
		human(st->chunk_size, h1, sizeof(h1)));
	fprintf(f, "data offset: %llu bytes (%s)\n", (unsigned long long)st->data_offset,
		human(st->data_offset, h1, sizeof(h1)));
	fprintf(f, "lock mode:   %s\n", st->lock_mode);
	if (st->scrubber[0]) {
		fprintf(f, "scrub:       %s %.1f%% (stripe %llu of %llu) by %s", st->scrubbing ?
			"running," : "stopped at", st->scrub_pct, (unsigned long long)st->scrub_stripe,
			(unsigned long long)st->scrub_nstripes, st->scrubber);
		if (st->scrub_wall_ns && now >= st->scrub_wall_ns)
			fprintf(f, ", last checkpoint %.1f s ago",
				(double)(now - st->scrub_wall_ns) / 1e9);
		fputc('\n', f);
	}
	fprintf(f, "space:       %s used of %s", human(st->bytes_used, h1, sizeof(h1)),
		human(st->bytes_total, h2, sizeof(h2)));
	if (st->bytes_total)
		fprintf(f, " (%.1f%%)", 100.0 * (double)st->bytes_used / (double)st->bytes_total);
	fputc('\n', f);
	if (st->inodes_total)
		fprintf(f, "inodes:      %llu used of %llu\n", (unsigned long long)st->inodes_used,
			(unsigned long long)st->inodes_total);
	fprintf(f, "members:     %d\n", st->nmembers);
	for (int i = 0; i < st->nmembers; i++) {
		const struct crp_status_member *m = &st->members[i];

		fprintf(f, "  %3d  %-10s %10s  %s", m->index, m->state,
			m->size ? human(m->size, h1, sizeof(h1)) : "-", m->spec);
		if (m->detail[0])
			fprintf(f, "  (%s)", m->detail);
		fputc('\n', f);
	}
	fprintf(f, "host slots:  %d\n", st->max_hosts);
	for (int i = 0; i < st->max_hosts && i < CRP_MAX_HOSTS; i++) {
		const struct crp_status_slot *s = &st->slots[i];

		fprintf(f, "  %3d  %-10s %s", s->slot, s->state, s->host[0] ? s->host : "-");
		if (s->host[0] && s->heartbeat_wall_ns && now >= s->heartbeat_wall_ns)
			fprintf(f, "  heartbeat %llu, %.1f s ago", (unsigned long long)s->heartbeat,
				(double)(now - s->heartbeat_wall_ns) / 1e9);
		fputc('\n', f);
	}
}

/*
 * status and hosts: read the state of the array named by the target (a
 * mount point, or a member list) and print it with @show.
 */
static int run_status(const char *cmd, int argc, char **argv,
		      void (*show)(FILE *f, const struct crp_status *st, bool json))
{
	struct crp_status *st = NULL;
	struct members m = { 0 };
	char *list = NULL;
	char err[1024] = "";
	struct stat sb;
	struct args a;
	int code = EXIT_FAILED;
	int r;

	if (parse_args(argc, argv, "json,watch", &a) < 0) {
		usage(stderr);
		return EXIT_USAGE;
	}
	/* A directory is a mount point; anything else is a member list. */
	if (stat(a.target, &sb) == 0 && S_ISDIR(sb.st_mode)) {
		list = members_of_mountpoint(a.target, err, sizeof(err));
		if (!list) {
			fprintf(stderr, "crpfs %s: %s\n", cmd, err);
			goto out;
		}
	} else {
		list = strdup(a.target);
		if (!list)
			goto out;
	}
	r = members_split(list, &m, err, sizeof(err));
	if (r < 0) {
		fprintf(stderr, "crpfs %s: %s\n", cmd, err[0] ? err : crp_strerror(r));
		usage(stderr);
		code = EXIT_USAGE;
		goto out;
	}
	st = calloc(1, sizeof(*st));
	if (!st) {
		fprintf(stderr, "crpfs %s: out of memory\n", cmd);
		goto out;
	}
	r = crp_status_read_watch(m.specs, m.n, a.host, a.watch_ms, st, err, sizeof(err));
	if (r < 0) {
		fprintf(stderr, "crpfs %s: %s\n", cmd, err[0] ? err : crp_strerror(r));
		goto out;
	}
	show(stdout, st, a.json);
	code = fflush(stdout) == 0 ? 0 : EXIT_FAILED;
out:
	free(st);
	members_free(&m);
	free(list);
	return code;
}

static void status_show(FILE *f, const struct crp_status *st, bool json)
{
	if (json)
		status_json(f, st);
	else
		status_text(f, st);
}

static int cmd_status(int argc, char **argv)
{
	return run_status("status", argc, argv, status_show);
}

/* ---- hosts ---- */

static uint64_t wall_now_ns(void)
{
	struct timespec ts;

	if (clock_gettime(CLOCK_REALTIME, &ts) < 0)
		return 0;
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

/* "2026-01-31T12:00:00.123Z" (UTC), or "-" for 0. */
static const char *wall_str(uint64_t ns, char *buf, size_t len)
{
	time_t t = (time_t)(ns / 1000000000ull);
	struct tm tm;

	if (!ns || !gmtime_r(&t, &tm)) {
		snprintf(buf, len, "-");
		return buf;
	}
	snprintf(buf, len, "%04d-%02d-%02dT%02d:%02d:%02d.%03uZ", tm.tm_year + 1900,
		 tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
		 (unsigned)(ns % 1000000000ull / 1000000ull));
	return buf;
}

static void hosts_json(FILE *f, const struct crp_status *st)
{
	char w[64];

	fputs("{\n  \"uuid\": ", f);
	json_str(f, st->uuid);
	fputs(",\n  \"label\": ", f);
	json_str(f, st->label);
	fputs(",\n  \"lock_mode\": ", f);
	json_str(f, st->lock_mode);
	fprintf(f, ",\n  \"max_hosts\": %d,\n  \"watch_ms\": %llu,\n  \"now_wall_ns\": %llu,\n"
		"  \"slots\": [", st->max_hosts, (unsigned long long)st->watch_ms,
		(unsigned long long)wall_now_ns());
	for (int i = 0; i < st->max_hosts && i < CRP_MAX_HOSTS; i++) {
		const struct crp_status_slot *s = &st->slots[i];

		fprintf(f, "%s\n    {\"slot\": %d, \"host\": ", i ? "," : "", s->slot);
		json_str(f, s->host);
		fputs(", \"state\": ", f);
		json_str(f, s->state);
		fprintf(f, ", \"heartbeat\": %llu, \"heartbeat_wall_ns\": %llu, \"heartbeat_time\": ",
			(unsigned long long)s->heartbeat, (unsigned long long)s->heartbeat_wall_ns);
		json_str(f, wall_str(s->heartbeat_wall_ns, w, sizeof(w)));
		fputs(", \"last_host\": ", f);
		json_str(f, s->last_host);
		fprintf(f, ", \"moved\": %s, \"mount_wall_ns\": %llu, \"recoverer\": ",
			s->moved ? "true" : "false", (unsigned long long)s->mount_ns);
		json_str(f, s->recoverer);
		fprintf(f, ", \"recoveries\": %llu, \"recovered_wall_ns\": %llu}",
			(unsigned long long)s->recoveries, (unsigned long long)s->recovered_ns);
	}
	fprintf(f, "%s]\n}\n", st->max_hosts > 0 ? "\n  " : "");
}

static void hosts_text(FILE *f, const struct crp_status *st)
{
	uint64_t now = wall_now_ns();
	char w[64];

	fprintf(f, "%d host slots, lock mode %s; heartbeats watched for up to %.1f s\n",
		st->max_hosts, st->lock_mode, (double)st->watch_ms / 1000.0);
	fprintf(f, "%4s  %-12s %-11s %12s  %-24s %s\n", "slot", "host", "state", "heartbeat",
		"last beat (UTC)", "recoveries");
	for (int i = 0; i < st->max_hosts && i < CRP_MAX_HOSTS; i++) {
		const struct crp_status_slot *s = &st->slots[i];

		char who[HOST_MAX + 2];

		/* A free slot: its last holder in parentheses. */
		if (s->host[0] || !s->last_host[0])
			snprintf(who, sizeof(who), "%s", s->host[0] ? s->host : "-");
		else
			snprintf(who, sizeof(who), "(%.*s)", HOST_MAX - 1, s->last_host);
		fprintf(f, "%4d  %-12s %-11s %12llu  %-24s", s->slot, who, s->state, (unsigned long long)s->heartbeat,
			wall_str(s->heartbeat_wall_ns, w, sizeof(w)));
		if (s->heartbeat_wall_ns && now >= s->heartbeat_wall_ns && strcmp(s->state, "free"))
			fprintf(f, " (%.1f s ago)", (double)(now - s->heartbeat_wall_ns) / 1e9);
		if (!strcmp(s->state, "recovering"))
			fprintf(f, " recovering by %s", s->recoverer[0] ? s->recoverer : "?");
		else if (s->recoveries)
			fprintf(f, " %llu, last by %s at %s", (unsigned long long)s->recoveries,
				s->recoverer[0] ? s->recoverer : "?",
				wall_str(s->recovered_ns, w, sizeof(w)));
		fputc('\n', f);
	}
}

static void hosts_show(FILE *f, const struct crp_status *st, bool json)
{
	if (json)
		hosts_json(f, st);
	else
		hosts_text(f, st);
}

static int cmd_hosts(int argc, char **argv)
{
	return run_status("hosts", argc, argv, hosts_show);
}

/* ---- fsck ---- */

static void fsck_say(void *ctx, const char *msg)
{
	(void)ctx;
	printf("crpfs fsck: %s\n", msg);
	fflush(stdout);
}

static int cmd_fsck(int argc, char **argv)
{
	struct crp_fsck_opts opts = { 0 };
	struct crp_fsck_result res = { 0 };
	struct members m = { 0 };
	char err[1024] = "";
	struct args a;
	int r;

	if (parse_args(argc, argv, "repair", &a) < 0) {
		usage(stderr);
		return CRP_FSCK_USAGE;
	}
	r = members_split(a.target, &m, err, sizeof(err));
	if (r < 0) {
		fprintf(stderr, "crpfs fsck: %s\n", err[0] ? err : crp_strerror(r));
		usage(stderr);
		members_free(&m);
		return CRP_FSCK_USAGE;
	}
	opts.repair = a.repair;
	opts.host = a.host;
	opts.say = fsck_say;
	r = crp_fsck_run(m.specs, m.n, &opts, &res, err, sizeof(err));
	members_free(&m);
	if (r < 0) {
		fprintf(stderr, "crpfs fsck: %s\n", err[0] ? err : crp_strerror(r));
		return CRP_FSCK_OPERATIONAL;
	}
	printf("crpfs fsck: %llu inodes, %llu blocks, %llu stripes checked; "
	       "%llu problems found, %llu fixed\n",
	       (unsigned long long)res.inodes_checked, (unsigned long long)res.blocks_checked,
	       (unsigned long long)res.stripes_checked, (unsigned long long)res.problems,
	       (unsigned long long)res.fixed);
	if (fflush(stdout) != 0 && r == CRP_FSCK_OK)
		r = CRP_FSCK_OPERATIONAL;
	return r;
}

/* ---- fail and replace ---- */

/* The member list named by a mount point, or the list itself. */
static char *target_list(const char *cmd, const char *target)
{
	char err[1024] = "";
	struct stat sb;
	char *list;

	if (stat(target, &sb) == 0 && S_ISDIR(sb.st_mode)) {
		list = members_of_mountpoint(target, err, sizeof(err));
		if (!list)
			fprintf(stderr, "crpfs %s: %s\n", cmd, err);
		return list;
	}
	list = strdup(target);
	if (!list)
		fprintf(stderr, "crpfs %s: out of memory\n", cmd);
	return list;
}

/* The host name a writing tool uses: its own, never a mounted host's. */
static void admin_host(struct args *a, bool given)
{
	size_t n = strnlen(a->host, HOST_MAX - 7);

	if (given)
		return;
	memcpy(a->host + n, ".admin", 7);
}

static bool host_given(int argc, char **argv)
{
	for (int i = 0; i < argc; i++)
		if (!strcmp(argv[i], "--host") || !strncmp(argv[i], "--host=", 7))
			return true;
	return false;
}

/* The position @what names: a number, a recorded member name, the member
 * at a position, or a member whose label says where it stood. */
static int position_of(struct crp_meta *m, const char *what)
{
	char *end;
	long v = strtol(what, &end, 10);
	struct crp_member_opts mo = { .host = m->host };
	struct crp_member *mem;
	uint8_t *buf;
	char why[256];
	int pos = -1;

	if (*what && !*end)
		return v >= 0 && v < (long)m->mt.nmembers ? (int)v : -1;
	for (uint32_t p = 0; p < m->mt.nmembers; p++)
		if (!strcmp(m->names[p], what) ||
		    !strcmp(crp_member_spec(crp_array_member(m->a, (int)p)), what))
			return (int)p;
	if (crp_member_open(what, &mo, &mem, why, sizeof(why)) < 0)
		return -1;
	buf = malloc(CRP_BLOCK);
	if (buf && crp_member_read(mem, CRP_LABEL_OFFSET, buf, CRP_BLOCK) == 0) {
		struct crp_label l;

		if (crp_label_in(buf, &l, NULL, 0) == 0 && !memcmp(l.uuid, m->mt.uuid, 16))
			pos = (int)l.index;
	}
	free(buf);
	crp_member_close(mem);
	return pos;
}

static atomic_bool stop_requested;

static void on_stop_signal(int sig)
{
	(void)sig;
	atomic_store(&stop_requested, true);
}

/* Progress of a long operation: a bar on a terminal, plain lines
 * otherwise, one JSON object a line with --json. */
struct progress {
	const char *op;
	int pos;
	bool json, tty;
	uint64_t t0, last_ns, last_pct10;
};

static void progress_show(void *ctx, uint64_t done, uint64_t total, uint64_t bytes,
			  uint64_t start)
{
	struct progress *p = ctx;
	uint64_t now = wall_now_ns(), el = now - p->t0;
	double pct = total ? 100.0 * (double)done / (double)total : 100.0;
	double rate = el ? (double)bytes * 1e9 / (double)el : 0;
	double eta = done > start && done < total ?
			     (double)el / 1e9 * (double)(total - done) / (double)(done - start) : 0;
	bool last = done >= total;
	char what[64];

	if (!last && now - p->last_ns < (p->tty ? 200000000ull : 5000000000ull) &&
	    (uint64_t)(pct / 10) == p->last_pct10)
		return;
	p->last_ns = now;
	p->last_pct10 = (uint64_t)(pct / 10);
	/* A scrub (pos < 0) names no position. */
	if (p->pos >= 0)
		snprintf(what, sizeof(what), "%s position %d", p->op, p->pos);
	else
		snprintf(what, sizeof(what), "%s", p->op);
	if (p->json) {
		printf("{\"op\": \"%s\", ", p->op);
		if (p->pos >= 0)
			printf("\"position\": %d, ", p->pos);
		printf("\"done\": %llu, \"total\": %llu, "
		       "\"percent\": %.1f, \"resumed_at\": %llu, \"bytes\": %llu, "
		       "\"rate_bps\": %.0f, \"eta_s\": %.0f}\n",
		       (unsigned long long)done, (unsigned long long)total, pct,
		       (unsigned long long)start, (unsigned long long)bytes, rate, eta);
	} else if (p->tty) {
		int w = 30, fill = (int)(pct * w / 100.0);

		fprintf(stderr, "\r%s [%.*s%*s] %5.1f%% %8.1f MiB/s ETA %4.0f s", what,
			fill, "##############################", w - fill, "", pct,
			rate / 1048576.0, eta);
		if (last)
			fputc('\n', stderr);
	} else {
		printf("%s: %.1f%% (%llu of %llu stripes%s), %.1f MiB/s, ETA %.0f s\n",
		       what, pct, (unsigned long long)done, (unsigned long long)total,
		       start ? ", resumed" : "", rate / 1048576.0, eta);
	}
	fflush(stdout);
}

static int open_admin(const char *cmd, struct args *a, struct members *mb, char **list,
		      struct crp_admin **ad)
{
	char err[1024] = "";
	int r;

	*list = target_list(cmd, a->target);
	if (!*list)
		return EXIT_FAILED;
	r = members_split(*list, mb, err, sizeof(err));
	if (r < 0) {
		fprintf(stderr, "crpfs %s: %s\n", cmd, err[0] ? err : crp_strerror(r));
		return EXIT_USAGE;
	}
	r = crp_admin_open(mb->specs, mb->n, a->host, 0, ad, err, sizeof(err));
	if (r < 0) {
		fprintf(stderr, "crpfs %s: %s\n", cmd, err[0] ? err : crp_strerror(r));
		return EXIT_FAILED;
	}
	return 0;
}

static int close_admin(const char *cmd, struct crp_admin *ad, int code)
{
	int r = crp_admin_close(ad);

	if (r < 0) {
		fprintf(stderr, "crpfs %s: leaving the array: %s\n", cmd, crp_strerror(r));
		return code ? code : EXIT_FAILED;
	}
	return code;
}

static int cmd_fail(int argc, char **argv)
{
	struct crp_admin *ad = NULL;
	struct members mb = { 0 };
	char *list = NULL;
	struct args a;
	int code, pos, r;

	if (parse_args(argc, argv, "operands", &a) < 0 || a.noperands != 1) {
		if (a.noperands != 1)
			fprintf(stderr, "crpfs fail: name the member to take out\n");
		usage(stderr);
		return EXIT_USAGE;
	}
	admin_host(&a, host_given(argc, argv));
	code = open_admin("fail", &a, &mb, &list, &ad);
	if (code)
		goto out;
	pos = position_of(crp_admin_meta(ad), a.operand[0]);
	if (pos < 0) {
		fprintf(stderr, "crpfs fail: %s is not a member of this array (give its position: "
			"crpfs status shows them)\n", a.operand[0]);
		code = EXIT_USAGE;
		goto out;
	}
	r = crp_meta_member_fail(crp_admin_meta(ad), pos);
	if (r == -CRP_EDEGRADED) {
		fprintf(stderr, "crpfs fail: taking position %d out would leave the array without "
			"enough members; nothing changed\n", pos);
		code = EXIT_FAILED;
	} else if (r < 0) {
		fprintf(stderr, "crpfs fail: position %d: %s\n", pos, crp_strerror(r));
		code = EXIT_FAILED;
	} else {
		printf("crpfs fail: position %d (%s) is out of the array; every host stops using it "
		       "within its next operation; crpfs replace puts a new member in\n", pos,
		       a.operand[0]);
	}
out:
	code = close_admin("fail", ad, code);
	members_free(&mb);
	free(list);
	return code;
}

static int cmd_replace(int argc, char **argv)
{
	struct crp_admin *ad = NULL;
	struct members mb = { 0 };
	struct progress pg = { .op = "rebuild" };
	struct crp_rebuild_opts ro = { 0 };
	struct sigaction sa = { .sa_handler = on_stop_signal };
	char *list = NULL, err[1024] = "";
	struct args a;
	bool resumed;
	int code, pos, r;

	if (parse_args(argc, argv, "operands,json,rate,force", &a) < 0 || a.noperands != 2) {
		if (a.noperands != 2)
			fprintf(stderr, "crpfs replace: name the member to replace and the new one\n");
		usage(stderr);
		return EXIT_USAGE;
	}
	admin_host(&a, host_given(argc, argv));
	code = open_admin("replace", &a, &mb, &list, &ad);
	if (code)
		goto out;
	pos = position_of(crp_admin_meta(ad), a.operand[0]);
	if (pos < 0) {
		fprintf(stderr, "crpfs replace: %s is not a member of this array (give its position: "
			"crpfs status shows them)\n", a.operand[0]);
		code = EXIT_USAGE;
		goto out;
	}
	r = crp_meta_member_replace(crp_admin_meta(ad), pos, a.operand[1], a.force, &resumed, err,
				    sizeof(err));
	if (r < 0) {
		fprintf(stderr, "crpfs replace: %s\n", err[0] ? err : crp_strerror(r));
		code = EXIT_FAILED;
		goto out;
	}
	if (!a.json)
		printf("crpfs replace: %s takes position %d%s\n", a.operand[1], pos,
		       resumed ? " (its rebuild resumes where it stopped)" : "");
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	pg.pos = pos;
	pg.json = a.json;
	pg.tty = !a.json && isatty(STDERR_FILENO);
	pg.t0 = wall_now_ns();
	ro.rate_bps = a.rate_bps;
	ro.progress = progress_show;
	ro.ctx = &pg;
	ro.stop = &stop_requested;
	r = crp_meta_rebuild(crp_admin_meta(ad), pos, &ro);
	if (r == -EINTR) {
		fprintf(stderr, "crpfs replace: stopped; the rebuild resumes from its checkpoint when "
			"the same command runs again\n");
		code = EXIT_FAILED;
	} else if (r < 0) {
		fprintf(stderr, "crpfs replace: the rebuild of position %d failed: %s\n", pos,
			crp_strerror(r));
		code = EXIT_FAILED;
	} else if (a.json) {
		printf("{\"op\": \"rebuild\", \"position\": %d, \"state\": \"done\"}\n", pos);
	} else {
		printf("crpfs replace: position %d rebuilt; the array is redundant again\n", pos);
	}
out:
	code = close_admin("replace", ad, code);
	members_free(&mb);
	free(list);
	return code;
}

/* ---- scrub ---- */

static void scrub_say(void *ctx, const char *msg)
{
	const struct progress *p = ctx;

	/* With --json, standard output carries JSON only. */
	if (p->json) {
		fprintf(stderr, "crpfs scrub: %s\n", msg);
	} else {
		if (p->tty)
			fputs("\r\033[K", stderr); /* past the bar */
		printf("crpfs scrub: %s\n", msg);
		fflush(stdout);
	}
}

static bool scrub_problems(const struct crp_scrub_counts *c)
{
	return c->problem_stripes > 0;
}

static void scrub_json(const struct crp_scrub_counts *c, struct crp_meta *m, bool repair,
		       const char *state, const char *result, double secs)
{
	bool first = true;

	printf("{\"op\": \"scrub\", \"state\": \"%s\", \"result\": \"%s\", \"repair\": %s, "
	       "\"stripes_total\": %llu, \"stripes_done\": %llu, \"stripes_in_use\": %llu, "
	       "\"stripes_checked\": %llu, \"stripes_free\": %llu, \"stripes_degraded\": %llu, "
	       "\"parity_mismatches\": {\"p\": %llu, \"q\": %llu}, "
	       "\"data_checksum_errors\": %llu, \"metadata_checksum_errors\": %llu, "
	       "\"read_errors\": %llu, \"bad_columns\": [",
	       state, result, repair ? "true" : "false", (unsigned long long)c->stripes_total,
	       (unsigned long long)c->stripes_done, (unsigned long long)c->stripes_in_use,
	       (unsigned long long)c->stripes_checked, (unsigned long long)c->stripes_free,
	       (unsigned long long)c->stripes_degraded, (unsigned long long)c->parity_p,
	       (unsigned long long)c->parity_q, (unsigned long long)c->data_errors,
	       (unsigned long long)c->meta_errors, (unsigned long long)c->read_errors);
	for (int i = 0; i < crp_array_nmembers(m->a); i++) {
		if (!c->bad_columns[i])
			continue;
		printf("%s{\"position\": %d, \"member\": ", first ? "" : ", ", i);
		json_str(stdout, crp_member_spec(crp_array_member(m->a, i)));
		printf(", \"count\": %llu}", (unsigned long long)c->bad_columns[i]);
		first = false;
	}
	printf("], \"syndrome_disagreements\": %llu, \"problem_stripes\": %llu, "
	       "\"repaired\": %llu, \"repaired_stripes\": %llu, \"unrecoverable\": %llu, "
	       "\"rechecked_clean\": %llu, \"blocks_checked\": %llu, \"bytes_read\": %llu, "
	       "\"seconds\": %.1f, \"rate_bps\": %.0f}\n",
	       (unsigned long long)c->syndrome_disagree, (unsigned long long)c->problem_stripes,
	       (unsigned long long)c->repaired, (unsigned long long)c->repaired_stripes,
	       (unsigned long long)c->unrecoverable, (unsigned long long)c->rechecked_clean,
	       (unsigned long long)c->blocks_checked,
	       (unsigned long long)c->bytes_read, secs,
	       secs > 0 ? (double)c->bytes_read / secs : 0.0);
}

static void scrub_text(const struct crp_scrub_counts *c, struct crp_meta *m, double secs)
{
	bool any = false;

	printf("crpfs scrub: %llu of %llu stripes: %llu in use (%llu checked, %llu degraded, "
	       "parity not checked), %llu free (skipped)\n",
	       (unsigned long long)c->stripes_done, (unsigned long long)c->stripes_total,
	       (unsigned long long)c->stripes_in_use, (unsigned long long)c->stripes_checked,
	       (unsigned long long)c->stripes_degraded, (unsigned long long)c->stripes_free);
	printf("crpfs scrub: parity mismatches: P %llu, Q %llu; checksum errors: data %llu, "
	       "metadata %llu; read errors %llu; %llu blocks checked\n",
	       (unsigned long long)c->parity_p, (unsigned long long)c->parity_q,
	       (unsigned long long)c->data_errors, (unsigned long long)c->meta_errors,
	       (unsigned long long)c->read_errors, (unsigned long long)c->blocks_checked);
	for (int i = 0; i < crp_array_nmembers(m->a); i++) {
		if (!c->bad_columns[i])
			continue;
		printf("%s position %d (%s): %llu", any ? ";" : "crpfs scrub: bad columns:", i,
		       crp_member_spec(crp_array_member(m->a, i)),
		       (unsigned long long)c->bad_columns[i]);
		any = true;
	}
	if (any)
		putchar('\n');
	if (c->syndrome_disagree)
		printf("crpfs scrub: %llu stripes where P and Q named another column than the "
		       "checksums\n", (unsigned long long)c->syndrome_disagree);
	printf("crpfs scrub: %llu stripes with problems, %llu repaired (%llu chunks rewritten), "
	       "%llu unrecoverable\n",
	       (unsigned long long)c->problem_stripes, (unsigned long long)c->repaired_stripes,
	       (unsigned long long)c->repaired, (unsigned long long)c->unrecoverable);
	printf("crpfs scrub: %.1f MiB read in %.1f s (%.1f MiB/s)\n",
	       (double)c->bytes_read / 1048576.0, secs,
	       secs > 0 ? (double)c->bytes_read / 1048576.0 / secs : 0.0);
}

static int cmd_scrub(int argc, char **argv)
{
	struct crp_admin *ad = NULL;
	struct members mb = { 0 };
	struct progress pg = { .op = "scrub", .pos = -1 };
	struct crp_scrub_opts so = { 0 };
	struct crp_scrub_counts c;
	struct sigaction sa = { .sa_handler = on_stop_signal };
	char *list = NULL, busy[CRP_HOST_MAX] = "";
	const char *state = "done", *result;
	struct args a;
	uint64_t t0;
	double secs;
	int code, r;

	if (parse_args(argc, argv, "repair,json,rate", &a) < 0) {
		usage(stderr);
		return EXIT_USAGE;
	}
	admin_host(&a, host_given(argc, argv));
	code = open_admin("scrub", &a, &mb, &list, &ad);
	if (code)
		goto out;
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	pg.json = a.json;
	pg.tty = !a.json && isatty(STDERR_FILENO);
	pg.t0 = t0 = wall_now_ns();
	so.repair = a.repair;
	so.rate_bps = a.rate_bps;
	so.progress = progress_show;
	so.say = scrub_say;
	so.ctx = &pg;
	so.stop = &stop_requested;
	r = crp_meta_scrub(crp_admin_meta(ad), &so, &c, busy);
	secs = (double)(wall_now_ns() - t0) / 1e9;
	if (r == -EBUSY) {
		fprintf(stderr, "crpfs scrub: %s is scrubbing this array (its last checkpoint is "
			"less than a minute old); wait for it to finish\n", busy);
		code = EXIT_FAILED;
		goto out;
	}
	if (r < 0 && r != -EINTR) {
		fprintf(stderr, "crpfs scrub: stopped at stripe %llu of %llu: %s\n",
			(unsigned long long)c.stripes_done, (unsigned long long)c.stripes_total,
			crp_strerror(r));
		state = "failed";
	} else if (r == -EINTR) {
		fprintf(stderr, "crpfs scrub: stopped at stripe %llu of %llu; a scrub starts over "
			"from the first stripe\n", (unsigned long long)c.stripes_done,
			(unsigned long long)c.stripes_total);
		state = "stopped";
	}
	if (!scrub_problems(&c))
		result = "clean";
	else if (a.repair && !c.unrecoverable && c.repaired_stripes == c.problem_stripes)
		result = "repaired";
	else
		result = "problems";
	if (a.json) {
		scrub_json(&c, crp_admin_meta(ad), a.repair, state, result, secs);
	} else {
		scrub_text(&c, crp_admin_meta(ad), secs);
		if (!strcmp(result, "clean"))
			printf("crpfs scrub: %s\n", r == 0 ? "clean: every stripe in use checks out" :
			       "no problem found in the stripes scrubbed");
		else if (!strcmp(result, "repaired"))
			printf("crpfs scrub: every problem found was repaired\n");
		else if (c.unrecoverable)
			printf("crpfs scrub: %llu stripes cannot be put right from parity: what "
			       "they hold is lost unless a copy exists (crpfs fsck names the "
			       "inodes whose blocks fail)\n",
			       (unsigned long long)c.unrecoverable);
		else if (!a.repair)
			printf("crpfs scrub: problems found; crpfs scrub --repair rewrites what was "
			       "found wrong\n");
		else
			printf("crpfs scrub: some problems were not repaired (see above)\n");
	}
	code = r == 0 && strcmp(result, "problems") ? 0 : EXIT_FAILED;
	if (fflush(stdout) != 0)
		code = EXIT_FAILED;
out:
	code = close_admin("scrub", ad, code);
	members_free(&mb);
	free(list);
	return code;
}

/* ---- dispatch ---- */

struct subcommand {
	const char *name;
	int (*run)(int argc, char **argv);
	int usage_exit;
};

static const struct subcommand subcommands[] = {
	{ "status", cmd_status, EXIT_USAGE },
	{ "fsck", cmd_fsck, CRP_FSCK_USAGE },
	{ "hosts", cmd_hosts, EXIT_USAGE },
	{ "fail", cmd_fail, EXIT_USAGE },
	{ "replace", cmd_replace, EXIT_USAGE },
	{ "scrub", cmd_scrub, EXIT_USAGE },
};

int main(int argc, char **argv)
{
	if (argc < 2) {
		usage(stderr);
		return EXIT_USAGE;
	}
	if (strcmp(argv[1], "help") == 0 || strcmp(argv[1], "-h") == 0 ||
	    strcmp(argv[1], "--help") == 0) {
		usage(stdout);
		return 0;
	}
	for (size_t i = 0; i < sizeof(subcommands) / sizeof(subcommands[0]); i++)
		if (strcmp(argv[1], subcommands[i].name) == 0)
			return subcommands[i].run(argc - 2, argv + 2);
	fprintf(stderr, "crpfs: unknown command '%s'\n", argv[1]);
	usage(stderr);
	return EXIT_USAGE;
}
