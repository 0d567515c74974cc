/*
 * mkfs.crpfs: format members as one crpfs array.
 *
 *   mkfs.crpfs [-l 4|5|6] [-c CHUNK] [-n MAXHOSTS] [-m reserve|pr] [-L LABEL]
 *              [-s SIZE] [-f] MEMBER...
 *
 * Everything is checked before the first write: arguments, members that do
 * not exist (file: members are created only with -s), members given twice,
 * members that already hold crpfs or another filesystem (unless -f).
 * Exit status: 0 done, 1 an error (nothing written unless the message says
 * the format itself failed), 2 bad usage.
 */
#include <ctype.h>
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "crpfs/array.h"
#include "crpfs/err.h"
#include "crpfs/meta.h"
#include "crpfs/util.h"


static const char *prog = "mkfs.crpfs";

static void usage(FILE *f)
{
	fprintf(f,
		"usage: %s [-l 4|5|6] [-c CHUNK] [-n MAXHOSTS] [-m reserve|pr] [-L LABEL]\n"
		"                  [-s SIZE] [-f] MEMBER...\n"
		"  -l LEVEL     RAID level 4, 5 or 6 (default 5)\n"
		"  -c CHUNK     chunk size, a power of two from 4K to 1M (default 64K)\n"
		"  -n MAXHOSTS  hosts that may mount at once, 1 to 64 (default 8)\n"
		"  -m MODE      lock mode: reserve (SCSI-2, default) or pr (persistent)\n"
		"  -L LABEL     filesystem label, up to 63 bytes\n"
		"  -s SIZE      create missing file: members of SIZE bytes (K, M, G, T)\n"
		"  -f           format members that hold a filesystem already\n"
		"MEMBER is file:PATH, iscsi://HOST[:PORT]/IQN/LUN, /dev/sgN or /dev/sdX;\n"
		"RAID-4/5 needs at least 3 members, RAID-6 at least 4.\n",
		prog);
}

static int bad_usage(const char *fmt, const char *arg)
{
	fprintf(stderr, "%s: ", prog);
	fprintf(stderr, fmt, arg);
	fputc('\n', stderr);
	usage(stderr);
	return 2;
}

/* "64K", "1G", "123": bytes, or -1. */
static int64_t parse_size(const char *s)
{
	char *end;
	uint64_t v, mul = 1;

	if (!s || !isdigit((unsigned char)*s))
		return -1;
	errno = 0;
	v = strtoull(s, &end, 10);
	if (errno)
		return -1;
	switch (toupper((unsigned char)*end)) {
	case 0: break;
	case 'K': mul = 1ull << 10; end++; break;
	case 'M': mul = 1ull << 20; end++; break;
	case 'G': mul = 1ull << 30; end++; break;
	case 'T': mul = 1ull << 40; end++; break;
	default: return -1;
	}
	if (*end == 'i' || *end == 'I')
		end++;
	if (*end == 'b' || *end == 'B')
		end++;
	if (*end || v == 0 || v > (UINT64_MAX >> 1) / mul)
		return -1;
	return (int64_t)(v * mul);
}

struct member {
	const char *text;
	struct crp_spec spec;
	bool exists;
	dev_t dev;
	ino_t ino;
	uint64_t size;
};

static int check_members(struct member *mem, int n, int64_t create_size, bool force)
{
	struct crp_member_opts mo = { 0 };
	char err[512];
	uint8_t *buf = crp_alloc_buf(CRP_SIGNATURE_BYTES);
	int r = 0;

	if (!buf)
		return -ENOMEM;
	for (int i = 0; i < n; i++) {
		struct member *m = &mem[i];
		struct stat st;

		if (crp_spec_parse(m->text, &m->spec, err, sizeof(err)) < 0) {
			fprintf(stderr, "%s: %s\n", prog, err);
			r = -EINVAL;
			goto out;
		}
		for (int j = 0; j < i; j++) {
			if (!strcmp(mem[j].text, m->text)) {
				fprintf(stderr, "%s: member %s is given twice\n", prog, m->text);
				r = -EINVAL;
				goto out;
			}
		}
		m->exists = true;
		if (m->spec.kind != CRP_TRANSPORT_ISCSI) {
			if (stat(m->spec.path, &st) < 0) {
				if (errno != ENOENT || m->spec.kind != CRP_TRANSPORT_FILE) {
					fprintf(stderr, "%s: member %s: %s\n", prog, m->text,
						strerror(errno));
					r = -errno;
					goto out;
				}
				if (create_size <= 0) {
					fprintf(stderr,
						"%s: member %s does not exist; give -s SIZE to create it\n",
						prog, m->text);
					r = -ENOENT;
					goto out;
				}
				m->exists = false;
			} else {
				m->dev = st.st_dev;
				m->ino = st.st_ino;
				for (int j = 0; j < i; j++) {
					if (mem[j].exists && mem[j].spec.kind != CRP_TRANSPORT_ISCSI &&
					    mem[j].dev == m->dev && mem[j].ino == m->ino) {
						fprintf(stderr,
							"%s: members %s and %s are the same file\n",
							prog, mem[j].text, m->text);
						r = -EINVAL;
						goto out;
					}
				}
			}
		}
	}
	/* Probe the members that exist; write nothing. */
	for (int i = 0; i < n; i++) {
		struct crp_member *cm;
		const char *what;
		uint32_t len;

		if (!mem[i].exists)
			continue;
		r = crp_member_open(mem[i].text, &mo, &cm, err, sizeof(err));
		if (r < 0) {
			fprintf(stderr, "%s: %s\n", prog, err);
			goto out;
		}
		mem[i].size = crp_member_size(cm);
		len = (uint32_t)CRP_MIN((uint64_t)CRP_SIGNATURE_BYTES, mem[i].size);
		len -= len % crp_member_block_size(cm);
		memset(buf, 0, CRP_SIGNATURE_BYTES);
		r = len ? crp_member_read(cm, 0, buf, len) : 0;
		crp_member_close(cm);
		if (r < 0) {
			fprintf(stderr, "%s: member %s: cannot read: %s\n", prog, mem[i].text,
				crp_strerror(r));
			goto out;
		}
		what = crp_member_signature(buf, len);
		if (what && !force) {
			fprintf(stderr,
				"%s: member %s holds %s; use -f to format it anyway (its data is lost)\n",
				prog, mem[i].text, what);
			r = -EEXIST;
			goto out;
		}
	}
	r = 0;
out:
	free(buf);
	return r;
}

int main(int argc, char **argv)
{
	int level = 5, c, n, r;
	int64_t chunk = 64 * 1024, size = -1;
	long hosts = 8;
	int mode = CRP_LOCK_RESERVE;
	const char *label = "";
	bool force = false;
	struct member *mem = NULL;
	const char **specs = NULL;
	struct crp_array_opts ao = { 0 };
	struct crp_array *a = NULL;
	struct crp_mkfs_params p = { 0 };
	struct crp_sb sb;
	char err[512], uuid[37];
	uint64_t min = UINT64_MAX, max = 0;
	int ret = 1;

	while ((c = getopt(argc, argv, "l:c:n:m:L:s:fh")) != -1) {
		switch (c) {
		case 'l':
			if (strcmp(optarg, "4") && strcmp(optarg, "5") && strcmp(optarg, "6"))
				return bad_usage("RAID level '%s' is not 4, 5 or 6", optarg);
			level = atoi(optarg);
			break;
		case 'c':
			chunk = parse_size(optarg);
			if (chunk < CRP_MIN_CHUNK || chunk > CRP_MAX_CHUNK || !crp_is_pow2((uint64_t)chunk))
				return bad_usage("chunk size '%s' is not a power of two from 4K to 1M",
						 optarg);
			break;
		case 'n': {
			char *end;

			hosts = strtol(optarg, &end, 10);
			if (*end || end == optarg || hosts < 1 || hosts > CRP_HOST_MAX)
				return bad_usage("max hosts '%s' is not a number from 1 to 64", optarg);
			break;
		}
		case 'm':
			if (!strcmp(optarg, "reserve"))
				mode = CRP_LOCK_RESERVE;
			else if (!strcmp(optarg, "pr"))
				mode = CRP_LOCK_PR;
			else
				return bad_usage("lock mode '%s' is not reserve or pr", optarg);
			break;
		case 'L':
			if (strlen(optarg) >= CRP_LABEL_MAX)
				return bad_usage("label '%s' is longer than 63 bytes", optarg);
			label = optarg;
			break;
		case 's':
			size = parse_size(optarg);
			if (size <= 0)
				return bad_usage("size '%s' is not a number with an optional K, M, G or T",
						 optarg);
			break;
		case 'f':
			force = true;
			break;
		case 'h':
			usage(stdout);
			return 0;
		default:
			usage(stderr);
			return 2;
		}
	}
	n = argc - optind;
	if (n < 1)
		return bad_usage("%s", "no members given");
	if (n < (level == 6 ? 4 : 3) || n > CRP_MAX_MEMBERS) {
		char msg[96];

		snprintf(msg, sizeof(msg), "RAID-%d needs %d to %d members, %d given", level,
			 level == 6 ? 4 : 3, CRP_MAX_MEMBERS, n);
		return bad_usage("%s", msg);
	}
	mem = calloc((size_t)n, sizeof(*mem));
	specs = calloc((size_t)n, sizeof(*specs));
	if (!mem || !specs)
		goto out;
	for (int i = 0; i < n; i++)
		mem[i].text = specs[i] = argv[optind + i];
	r = check_members(mem, n, size, force);
	if (r == -EINVAL || r == -ENOENT) {
		usage(stderr);
		ret = 2;
		goto out;
	}
	if (r < 0)
		goto out;
	for (int i = 0; i < n; i++) {
		uint64_t s = mem[i].exists ? mem[i].size : (uint64_t)size;

		min = CRP_MIN(min, s);
		max = CRP_MAX(max, s);
	}
	{
		/* Check that the geometry fits before anything is written. */
		struct crp_geom g;
		struct crp_sb t = { .level = (uint32_t)level, .nmembers = (uint32_t)n,
				    .chunk = (uint32_t)chunk, .max_hosts = (uint32_t)hosts };

		t.data_offset = crp_data_offset_for((uint32_t)hosts, (uint32_t)chunk);
		r = crp_geom_init(&g, level, n, (uint32_t)chunk, t.data_offset, min, err, sizeof(err));
		if (r == 0) {
			t.nstripes = g.nstripes;
			r = crp_sb_layout(&t, err, sizeof(err));
		}
		if (r < 0) {
			fprintf(stderr, "%s: members of %" PRIu64 " bytes: %s\n", prog, min, err);
			goto out;
		}
	}
	ao.lock_mode = (enum crp_lock_mode)mode;
	ao.create = size > 0;
	ao.create_size = size > 0 ? (uint64_t)size : 0;
	r = crp_array_open(specs, n, &ao, &a, err, sizeof(err));
	if (r < 0) {
		fprintf(stderr, "%s: %s\n", prog, err);
		goto out;
	}
	min = crp_array_min_member_size(a);
	if (min != max)
		printf("members differ in size: using the smallest, %" PRIu64 " bytes, on each\n",
		       min);
	p.level = level;
	p.chunk = (uint32_t)chunk;
	p.max_hosts = (uint32_t)hosts;
	p.lock_mode = mode;
	p.label = label;
	p.member_size = min;
	r = crp_meta_format(a, &p, &sb, err, sizeof(err));
	if (r < 0) {
		fprintf(stderr, "%s: format failed: %s\n", prog, err);
		goto out;
	}
	crp_uuid_str(sb.uuid, uuid);
	printf("crpfs %s%s%s\n", uuid, label[0] ? " label " : "", label);
	printf("  RAID-%d, %d members, chunk %u KiB, data offset %" PRIu64 " KiB\n", level, n,
	       (unsigned)(chunk / 1024), sb.data_offset / 1024);
	for (int i = 0; i < n; i++)
		printf("  member %d: %s\n", i, specs[i]);
	printf("  capacity %" PRIu64 " MiB (%" PRIu64 " blocks of 4 KiB), %" PRIu64
	       " inodes, %ld host slots, lock mode %s\n",
	       sb.total_blocks * CRP_BLOCK >> 20, sb.total_blocks, sb.inode_count - 2, hosts,
	       mode == CRP_LOCK_PR ? "pr" : "reserve");
	ret = 0;
out:
	if (a)
		crp_array_close(a);
	free(mem);
	free(specs);
	return ret;
}
