/*
 * crp_locate: where a file's block lies on the members, for tests that
 * damage one member on purpose.
 *
 *   crp_locate MEMBERS INO FILEBLOCK [data|parity]
 *
 * Opens the array read-only (no slot, no lock: the file must not be being
 * written) and prints one line:
 *
 *   POSITION SPEC MEMBER_OFFSET RAID_BLOCK STRIPE
 *
 * for the member holding file block FILEBLOCK of inode INO (data, the
 * default), or for the member holding the P parity of that same row
 * (parity).  Exit status 0, 1 with a sentence on standard error, 2 for
 * bad usage.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "crpfs/err.h"
#include "crpfs/meta.h"

int main(int argc, char **argv)
{
	const char *specs[CRP_MAX_MEMBERS];
	struct crp_meta_opts mo = { .host = "locate", .ro = true };
	struct crp_meta *m;
	struct crp_inode in;
	struct crp_loc loc;
	char err[512] = "", *list, *save = NULL;
	uint64_t ino, lblk, pblk = 0;
	bool parity;
	int n = 0, r;

	if (argc < 4 || argc > 5 || (argc == 5 && strcmp(argv[4], "data") &&
				     strcmp(argv[4], "parity"))) {
		fprintf(stderr, "usage: crp_locate MEMBERS INO FILEBLOCK [data|parity]\n");
		return 2;
	}
	parity = argc == 5 && !strcmp(argv[4], "parity");
	ino = strtoull(argv[2], NULL, 0);
	lblk = strtoull(argv[3], NULL, 0);
	list = strdup(argv[1]);
	for (char *t = strtok_r(list, ",", &save); t && n < CRP_MAX_MEMBERS;
	     t = strtok_r(NULL, ",", &save))
		specs[n++] = t;
	r = crp_meta_open(specs, n, &mo, &m, err, sizeof(err));
	if (r < 0) {
		fprintf(stderr, "crp_locate: %s\n", err[0] ? err : crp_strerror(r));
		return 1;
	}
	r = crp_meta_iread(m, ino, &in);
	if (r != 0) {
		fprintf(stderr, "crp_locate: inode %llu: %s\n", (unsigned long long)ino,
			r > 0 ? "never used" : crp_strerror(r));
		return 1;
	}
	if (in.flags & (CRP_IF_EXT_CHAIN | CRP_IF_INLINE_DATA)) {
		fprintf(stderr, "crp_locate: inode %llu keeps its extents in a chain (or none)\n",
			(unsigned long long)ino);
		return 1;
	}
	for (uint32_t i = 0; i < in.nextents && i < CRP_INLINE_EXTENTS; i++) {
		const struct crp_extent *e = &in.ext[i];

		if (lblk >= e->lblk && lblk < e->lblk + e->len)
			pblk = e->pblk + (lblk - e->lblk);
	}
	if (!pblk) {
		fprintf(stderr, "crp_locate: file block %llu of inode %llu is not mapped\n",
			(unsigned long long)lblk, (unsigned long long)ino);
		return 1;
	}
	crp_geom_map(&m->geom, pblk * CRP_BLOCK, &loc);
	if (parity) {
		int p, q;

		crp_geom_parity(&m->geom, loc.stripe, &p, &q);
		loc.member = p;
	}
	printf("%d %s %llu %llu %llu\n", loc.member,
	       crp_member_spec(crp_array_member(m->a, loc.member)),
	       (unsigned long long)crp_geom_member_off(&m->geom, loc.stripe, loc.chunk_off),
	       (unsigned long long)pblk, (unsigned long long)loc.stripe);
	m->ro = true;
	crp_meta_close(m);
	free(list);
	return 0;
}
