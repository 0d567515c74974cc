/*
 * mount.crpfs's command line.
 *
 * mount(8) runs "/sbin/mount.crpfs SPEC DIR [-sfnv] [-o OPTS]" for a
 * "mount -t crpfs" or an fstab line of type crpfs; users run the same by
 * hand.  The generic options that mount(8) may hand us are accepted and
 * ignored (the kernel side of them does not apply to a FUSE mount, or
 * libfuse sets it); every other unknown option is an error that names it,
 * unless -s (sloppy) asked for a warning instead.
 */
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "crpfs/cluster.h"
#include "crpfs/log.h"
#include "crpfs/member.h"
#include "fuse_i.h"

/* Options of mount(8) that mean nothing for crpfs, or that FUSE imposes. */
static const char *const ignored_opts[] = {
	"defaults", "auto", "noauto", "user", "nouser", "users", "_netdev", "nofail",
	"dev", "suid", "exec", "nodev", "nosuid", "noexec", "atime", "noatime",
	"relatime", "norelatime", "strictatime", "async", "owner", "group",
	"loud", "silent",
};

static bool is_ignored(const char *name)
{
	for (size_t i = 0; i < sizeof(ignored_opts) / sizeof(ignored_opts[0]); i++)
		if (strcmp(name, ignored_opts[i]) == 0)
			return true;
	/* x-* options are for userspace (systemd, mount helpers); comment= too. */
	return strncmp(name, "x-", 2) == 0 || strcmp(name, "comment") == 0;
}

static int parse_seconds(const char *v, double *out)
{
	char *end;
	double d;

	errno = 0;
	d = strtod(v, &end);
	if (errno || end == v || *end || !isfinite(d) || d < 0 || d > 86400)
		return -EINVAL;
	*out = d;
	return 0;
}

static int parse_ms(const char *v, uint32_t *out)
{
	char *end;
	unsigned long l;

	if (*v < '0' || *v > '9')
		return -EINVAL;
	errno = 0;
	l = strtoul(v, &end, 10);
	if (errno || *end || l == 0 || l > 3600000)
		return -EINVAL;
	*out = (uint32_t)l;
	return 0;
}

/* A group commit window: "0" is none (CRP_FS_COMMIT_OFF), else 1 to @max
 * milliseconds. */
static int parse_window(const char *v, uint32_t max, uint32_t *out)
{
	uint32_t ms;

	if (strcmp(v, "0") == 0) {
		*out = CRP_FS_COMMIT_OFF;
		return 0;
	}
	if (parse_ms(v, &ms) < 0 || ms > max)
		return -EINVAL;
	*out = ms;
	return 0;
}

static int valid_host(const char *v)
{
	size_t len = strlen(v);

	if (len == 0 || len >= CRP_MOUNT_HOST_MAX)
		return 0;
	for (const char *p = v; *p; p++)
		if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') ||
		      (*p >= '0' && *p <= '9') || *p == '-' || *p == '.' || *p == '_'))
			return 0;
	return 1;
}

/* One option, "name" or "name=value" (@opt is modified). */
static int apply_one(struct crp_mount_opts *o, char *opt, char *err, size_t errlen)
{
	char *val = strchr(opt, '=');

	if (val)
		*val++ = '\0';
	if (strcmp(opt, "host") == 0) {
		if (!val || !valid_host(val)) {
			snprintf(err, errlen,
				 "option host=%s: a host name needs 1 to %d letters, digits, '-', '.' or '_'",
				 val ? val : "", CRP_MOUNT_HOST_MAX - 1);
			return -EINVAL;
		}
		snprintf(o->host, sizeof(o->host), "%s", val);
	} else if (strcmp(opt, "attr_timeout") == 0) {
		if (!val || parse_seconds(val, &o->attr_timeout) < 0) {
			snprintf(err, errlen,
				 "option attr_timeout=%s: give seconds, from 0 to 86400",
				 val ? val : "");
			return -EINVAL;
		}
	} else if (strcmp(opt, "timeout") == 0) {
		if (!val || parse_ms(val, &o->timeout_ms) < 0) {
			snprintf(err, errlen,
				 "option timeout=%s: give milliseconds, from 1 to 3600000",
				 val ? val : "");
			return -EINVAL;
		}
	} else if (strcmp(opt, "heartbeat") == 0) {
		if (!val || parse_ms(val, &o->heartbeat_ms) < 0) {
			snprintf(err, errlen,
				 "option heartbeat=%s: give milliseconds, from 1 to 3600000",
				 val ? val : "");
			return -EINVAL;
		}
	} else if (strcmp(opt, "dead_timeout") == 0) {
		if (!val || parse_ms(val, &o->dead_timeout_ms) < 0) {
			snprintf(err, errlen,
				 "option dead_timeout=%s: give milliseconds, from 1 to 3600000",
				 val ? val : "");
			return -EINVAL;
		}
	} else if (strcmp(opt, "commit") == 0 || strcmp(opt, "peer_commit") == 0) {
		bool peer = opt[0] == 'p';
		uint32_t max = peer ? CRP_FS_MAX_PEER_COMMIT_MS : CRP_FS_MAX_COMMIT_MS;

		if (!val || parse_window(val, max, peer ? &o->peer_commit_ms : &o->commit_ms) < 0) {
			snprintf(err, errlen,
				 "option %s=%s: give milliseconds, from 0 (every operation commits "
				 "alone%s) to %u",
				 opt, val ? val : "", peer ? " while other hosts are mounted" : "", max);
			return -EINVAL;
		}
	} else if (strcmp(opt, "readahead") == 0) {
		char *end;
		unsigned long kb = val ? strtoul(val, &end, 10) : 0;

		if (!val || !*val || *end || val[0] == '-' || kb > CRP_MOUNT_MAX_READAHEAD_KB) {
			snprintf(err, errlen,
				 "option readahead=%s: give KiB, from 0 (the kernel's default) to %u",
				 val ? val : "", CRP_MOUNT_MAX_READAHEAD_KB);
			return -EINVAL;
		}
		o->readahead_kb = (uint32_t)kb;
	} else if (val) {
		/* Every remaining option is a flag: a value is a mistake. */
		if (is_ignored(opt))
			return 0;
		snprintf(err, errlen, "option %s=%s: unknown option", opt, val);
		return -EINVAL;
	} else if (strcmp(opt, "ro") == 0) {
		o->ro = true;
	} else if (strcmp(opt, "rw") == 0) {
		o->ro = false;
	} else if (strcmp(opt, "allow_other") == 0) {
		o->allow_other = true;
		o->owner_only = false;
	} else if (strcmp(opt, "owner_only") == 0) {
		o->owner_only = true;
		o->allow_other = false;
	} else if (strcmp(opt, "strict") == 0) {
		o->strict = true;
	} else if (strcmp(opt, "default_permissions") == 0) {
		/* Always on: the kernel checks permissions. */
	} else if (strcmp(opt, "foreground") == 0) {
		o->foreground = true;
	} else if (strcmp(opt, "debug") == 0) {
		o->debug = true;
		o->foreground = true;
	} else if (!is_ignored(opt)) {
		snprintf(err, errlen, "option %s: unknown option", opt);
		return -EINVAL;
	}
	return 0;
}

int crp_mount_opts_apply(struct crp_mount_opts *o, const char *list, char *err,
			 size_t errlen)
{
	char *copy = strdup(list);
	char *save = NULL;
	int r = 0;

	if (!copy)
		return -ENOMEM;
	for (char *opt = strtok_r(copy, ",", &save); opt; opt = strtok_r(NULL, ",", &save)) {
		r = apply_one(o, opt, err, errlen);
		if (r == -EINVAL && o->sloppy) {
			crp_warn("mount.crpfs: ignoring %s (sloppy mount)", err);
			r = 0;
		}
		if (r < 0)
			break;
	}
	free(copy);
	return r;
}

static int split_members(struct crp_mount_opts *o, const char *list, char *err,
			 size_t errlen)
{
	const char *p = list;
	struct crp_spec *spec = malloc(sizeof(*spec));
	int r = 0;

	if (!spec)
		return -ENOMEM;
	o->members = strdup(list);
	if (!o->members) {
		r = -ENOMEM;
		goto out;
	}
	for (;;) {
		const char *comma = strchr(p, ',');
		size_t len = comma ? (size_t)(comma - p) : strlen(p);
		char *s;

		if (len == 0) {
			snprintf(err, errlen, "member list '%s': an empty member", list);
			r = -EINVAL;
			goto out;
		}
		if (o->nspecs == CRP_MAX_MEMBERS) {
			snprintf(err, errlen, "member list '%s': more than %d members", list,
				 CRP_MAX_MEMBERS);
			r = -EINVAL;
			goto out;
		}
		s = strndup(p, len);
		if (!s) {
			r = -ENOMEM;
			goto out;
		}
		o->specs[o->nspecs++] = s;
		/* "missing" holds the place of a member that is gone. */
		if (!crp_spec_is_missing(s) && crp_spec_parse(s, spec, err, errlen) < 0) {
			r = -EINVAL;
			goto out;
		}
		if (!comma)
			break;
		p = comma + 1;
	}
out:
	free(spec);
	return r;
}

static int set_mountpoint(struct crp_mount_opts *o, const char *path, char *err,
			  size_t errlen)
{
	struct stat st;

	o->mountpoint = realpath(path, NULL);
	if (!o->mountpoint) {
		snprintf(err, errlen, "mount point %s: %s", path, strerror(errno));
		return -EINVAL;
	}
	if (stat(o->mountpoint, &st) < 0 || !S_ISDIR(st.st_mode)) {
		snprintf(err, errlen, "mount point %s: not a directory", path);
		return -EINVAL;
	}
	return 0;
}

int crp_mount_opts_parse(int argc, char **argv, struct crp_mount_opts *o, char *err,
			 size_t errlen)
{
	const char *pos[2] = { NULL, NULL };
	int npos = 0;
	int r = 0;

	memset(o, 0, sizeof(*o));
	o->attr_timeout = CRP_MOUNT_DEFAULT_ATTR_TIMEOUT;
	o->heartbeat_ms = CRP_DEFAULT_HEARTBEAT_MS;
	o->dead_timeout_ms = CRP_DEFAULT_DEAD_TIMEOUT_MS;
	o->commit_ms = CRP_FS_DEFAULT_COMMIT_MS;
	o->peer_commit_ms = CRP_FS_DEFAULT_PEER_COMMIT_MS;
	o->readahead_kb = CRP_MOUNT_DEFAULT_READAHEAD_KB;
	/* -s changes how every -o is read: look for it first. */
	for (int i = 1; i < argc; i++)
		if (strcmp(argv[i], "-s") == 0)
			o->sloppy = true;
	for (int i = 1; i < argc; i++) {
		const char *a = argv[i];

		if (strcmp(a, "-o") == 0) {
			if (i + 1 == argc) {
				snprintf(err, errlen, "option -o needs a list of options");
				return -EINVAL;
			}
			r = crp_mount_opts_apply(o, argv[++i], err, errlen);
		} else if (strncmp(a, "-o", 2) == 0) {
			r = crp_mount_opts_apply(o, a + 2, err, errlen);
		} else if (strcmp(a, "-f") == 0) {
			o->foreground = true;
		} else if (strcmp(a, "-d") == 0) {
			o->debug = true;
			o->foreground = true;
		} else if (strcmp(a, "-n") == 0 || strcmp(a, "-s") == 0) {
			/* -n: no mtab (there is none to write); -s: handled above. */
		} else if (strcmp(a, "-t") == 0) {
			/* mount(8) may name the type; it can only be ours. */
			if (i + 1 == argc || (strcmp(argv[i + 1], "crpfs") != 0 &&
					      strcmp(argv[i + 1], "fuse.crpfs") != 0)) {
				snprintf(err, errlen, "option -t: only type crpfs is mounted here");
				return -EINVAL;
			}
			i++;
		} else if (strcmp(a, "-v") == 0) {
			o->verbose = true;
		} else if (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0) {
			o->help = true;
			return 0;
		} else if (strcmp(a, "-V") == 0 || strcmp(a, "--version") == 0) {
			o->version = true;
			return 0;
		} else if (strcmp(a, "--") == 0) {
			for (i++; i < argc; i++) {
				if (npos == 2) {
					snprintf(err, errlen, "unexpected argument '%s'", argv[i]);
					return -EINVAL;
				}
				pos[npos++] = argv[i];
			}
		} else if (a[0] == '-' && a[1] != '\0') {
			snprintf(err, errlen, "unknown option '%s'", a);
			return -EINVAL;
		} else if (npos == 2) {
			snprintf(err, errlen, "unexpected argument '%s'", a);
			return -EINVAL;
		} else {
			pos[npos++] = a;
		}
		if (r < 0)
			return r;
	}
	/* Mounted by root, a filesystem serves every user, as a local one
	 * does (the kernel checks permissions: default_permissions); owner_only
	 * keeps it to root.  Another user's mount serves that user alone unless
	 * it asks for allow_other (which fuse.conf must permit). */
	if (!o->owner_only && geteuid() == 0)
		o->allow_other = true;
	if (o->dead_timeout_ms < 2 * o->heartbeat_ms) {
		snprintf(err, errlen,
			 "option dead_timeout=%u: must be at least two heartbeats (heartbeat=%u ms)",
			 o->dead_timeout_ms, o->heartbeat_ms);
		return -EINVAL;
	}
	if (npos < 2) {
		snprintf(err, errlen, npos == 0 ? "missing the member list and the mount point"
						: "missing the mount point");
		return -EINVAL;
	}
	r = split_members(o, pos[0], err, errlen);
	if (r < 0)
		return r;
	r = set_mountpoint(o, pos[1], err, errlen);
	if (r < 0)
		return r;
	if (o->host[0] == '\0') {
		char name[HOST_NAME_MAX + 1] = "";

		gethostname(name, sizeof(name));
		name[sizeof(name) - 1] = '\0';
		/* Keep the first label of a long or dotted name if it does not fit. */
		if (strlen(name) >= sizeof(o->host) || !valid_host(name)) {
			char *dot = strchr(name, '.');

			if (dot)
				*dot = '\0';
		}
		if (!valid_host(name)) {
			snprintf(err, errlen,
				 "the hostname '%s' cannot name this host: give -o host=NAME", name);
			return -EINVAL;
		}
		snprintf(o->host, sizeof(o->host), "%s", name);
	}
	return 0;
}

void crp_mount_opts_free(struct crp_mount_opts *o)
{
	for (int i = 0; i < o->nspecs; i++)
		free(o->specs[i]);
	free(o->members);
	free(o->mountpoint);
	memset(o, 0, sizeof(*o));
}
