/*
 * crp_inject: set, clear and list the faults of a file: member, as every
 * process that has the image open sees them (crp_file_fault_*, member.h).
 *
 *   crp_inject [-b BYTES] PATH medium LBA [COUNT]   blocks LBA.. LBA+COUNT-1
 *                                                  (COUNT 1 by default) read
 *                                                  back MEDIUM ERROR until
 *                                                  written
 *   crp_inject PATH gone       every command: LOGICAL UNIT NOT SUPPORTED
 *   crp_inject PATH notready   every command: NOT READY, BECOMING READY
 *   crp_inject PATH sense KEY ASC ASCQ   every command: this sense (hex
 *                              bytes, e.g. "4 44 0" for HARDWARE ERROR)
 *   crp_inject PATH back       the unit is there, ready, answering again
 *   crp_inject PATH clear      no faults at all
 *   crp_inject [-b BYTES] PATH list
 *
 * PATH is the image, as in file:PATH; it must have been opened as a member
 * once (its state file PATH.crpfs-scsi exists).  LBAs count blocks of
 * BYTES (-b, default 512: the block size crpfs opens file members with).
 * list prints one line each:
 *   unit: present|gone
 *   ready: yes|no
 *   sense: KEY ASC ASCQ      (only with a sense fault, hex)
 *   medium: LBA COUNT        (one line per bad range, ascending)
 *   dropped: SECTORS         (only when a WRITE made the list forget some)
 * Exit status: 0 done, 1 failed (the reason on stderr), 2 bad usage.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "crpfs/err.h"
#include "crpfs/member.h"

static void usage(FILE *f)
{
	fprintf(f, "usage: crp_inject [-b BYTES] PATH medium LBA [COUNT]\n"
		   "       crp_inject PATH gone|notready|back|clear\n"
		   "       crp_inject PATH sense KEY ASC ASCQ   (hex bytes)\n"
		   "       crp_inject [-b BYTES] PATH list\n"
		   "  PATH is the image of a file: member; LBAs count blocks of BYTES "
		   "(default 512)\n");
}

static int bad_usage(const char *why)
{
	fprintf(stderr, "crp_inject: %s\n", why);
	usage(stderr);
	return 2;
}

/* An unsigned decimal number, the whole of @s. */
static int parse_u64(const char *s, uint64_t *out)
{
	char *end;

	if (!s[0] || s[0] == '-' || s[0] == '+')
		return -EINVAL;
	errno = 0;
	*out = strtoull(s, &end, 10);
	if (errno || *end)
		return -EINVAL;
	return 0;
}

/* A byte in hex (at most two digits, no sign). */
static int parse_hex8(const char *s, uint8_t *out)
{
	char *end;
	unsigned long v;

	if (!s[0] || strlen(s) > 2 || !strchr("0123456789abcdefABCDEF", s[0]))
		return -EINVAL;
	v = strtoul(s, &end, 16);
	if (*end)
		return -EINVAL;
	*out = (uint8_t)v;
	return 0;
}

static int list(const char *path, uint32_t bs)
{
	struct crp_faults f;
	char err[1024];
	int r = crp_file_fault_list(path, bs, &f, err, sizeof(err));

	if (r < 0) {
		fprintf(stderr, "crp_inject: %s\n", err);
		return 1;
	}
	printf("unit: %s\n", (f.flags & CRP_FAULT_GONE) ? "gone" : "present");
	printf("ready: %s\n", (f.flags & CRP_FAULT_NOT_READY) ? "no" : "yes");
	if (f.flags & CRP_FAULT_SENSE)
		printf("sense: %x %02x %02x\n", f.sense_key, f.asc, f.ascq);
	for (int i = 0; i < f.nbad; i++)
		printf("medium: %" PRIu64 " %" PRIu64 "\n", f.bad[i].lba, f.bad[i].count);
	if (f.dropped)
		printf("dropped: %" PRIu64 "\n", f.dropped);
	return 0;
}

int main(int argc, char **argv)
{
	const char *path, *op;
	char err[1024] = "";
	uint64_t bs = 0, lba, count = 1;
	int c, r, nargs;

	while ((c = getopt(argc, argv, "b:h")) != -1) {
		switch (c) {
		case 'b':
			if (parse_u64(optarg, &bs) < 0 || bs > 65536)
				return bad_usage("-b needs a block size in bytes (512 to 65536)");
			break;
		case 'h':
			usage(stdout);
			return 0;
		default:
			usage(stderr);
			return 2;
		}
	}
	nargs = argc - optind;
	if (nargs < 2)
		return bad_usage("PATH and an operation are needed");
	path = argv[optind];
	op = argv[optind + 1];
	if (!strcmp(op, "medium")) {
		if (nargs < 3 || nargs > 4)
			return bad_usage("medium needs LBA and optionally COUNT");
		if (parse_u64(argv[optind + 2], &lba) < 0)
			return bad_usage("LBA must be a block number");
		if (nargs == 4 && (parse_u64(argv[optind + 3], &count) < 0 || !count))
			return bad_usage("COUNT must be a number of blocks, at least 1");
		r = crp_file_fault_medium(path, (uint32_t)bs, lba, count, err, sizeof(err));
	} else if (!strcmp(op, "sense")) {
		uint8_t b[3];

		if (nargs != 5)
			return bad_usage("sense needs KEY ASC ASCQ");
		for (int i = 0; i < 3; i++)
			if (parse_hex8(argv[optind + 2 + i], &b[i]) < 0)
				return bad_usage("KEY, ASC and ASCQ are bytes in hex (00 to ff)");
		r = crp_file_fault_sense(path, b[0], b[1], b[2], err, sizeof(err));
	} else if (nargs != 2) {
		return bad_usage("too many arguments");
	} else if (!strcmp(op, "gone")) {
		r = crp_file_fault_set(path, CRP_FAULT_GONE, 0, err, sizeof(err));
	} else if (!strcmp(op, "notready")) {
		r = crp_file_fault_set(path, CRP_FAULT_NOT_READY, 0, err, sizeof(err));
	} else if (!strcmp(op, "back")) {
		r = crp_file_fault_set(path, 0,
				       CRP_FAULT_GONE | CRP_FAULT_NOT_READY | CRP_FAULT_SENSE, err,
				       sizeof(err));
	} else if (!strcmp(op, "clear")) {
		r = crp_file_fault_clear(path, err, sizeof(err));
	} else if (!strcmp(op, "list")) {
		return list(path, (uint32_t)bs);
	} else {
		return bad_usage("unknown operation (medium, gone, notready, sense, back, clear, "
				 "list)");
	}
	if (r < 0) {
		fprintf(stderr, "crp_inject: %s\n", err[0] ? err : crp_strerror(r));
		return 1;
	}
	return 0;
}
