/*
 * crp_locate: where a block of a crpfs array lives, for tests that damage
 * one block on one member.  Opens the array read-only (writes nothing),
 * finds the block, maps it through the geometry and prints one line:
 *
 *   BLKNO MEMBER_INDEX MEMBER_SPEC MEMBER_BYTE_OFFSET P_MEMBER Q_MEMBER
 *
 * (the members holding the stripe's parity; Q_MEMBER is -1 but on RAID-6).
 *
 *   crp_locate MEMBERS sb | shared
 *   crp_locate MEMBERS jhdr SLOT | orphan SLOT | otable SLOT K
 *   crp_locate MEMBERS bbitmap G | ibitmap I
 *   crp_locate MEMBERS itable PATH          inode-table block of PATH's inode
 *   crp_locate MEMBERS dir PATH [BUCKET]    bucket block of directory PATH
 *   crp_locate MEMBERS extent PATH [K]      K-th block of PATH's extent chain
 *   crp_locate MEMBERS xattr PATH           PATH's xattr block
 *   crp_locate MEMBERS data PATH [LBLK]     the block holding file block LBLK
 *   crp_locate MEMBERS csum PATH [LBLK]     the checksum table block of it
 *   crp_locate MEMBERS dataoff              prints data_offset (bytes) only
 *
 * MEMBERS is a comma-separated list; PATH starts at the root ("/d/f").
 * Exit 0 with the line, 1 (and a sentence on standard error) when the
 * block does not exist, 2 for bad usage.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "crpfs/err.h"
#include "crpfs/fs.h"
#include "crpfs/meta.h"
#include "../../src/fs/fs_i.h"

static int usage(void)
{
	fprintf(stderr, "usage: crp_locate MEMBERS sb|shared|jhdr|orphan|otable|bbitmap|ibitmap|"
			"itable|dir|extent|xattr|data|csum|dataoff [ARGS] (see the source)\n");
	return 2;
}

static int fail(const char *what, int r)
{
	fprintf(stderr, "crp_locate: %s: %s\n", what, crp_strerror(r));
	return 1;
}

/* The inode at @path, its struct in the fs cache (under fs->mu). */
static int resolve(struct crp_fs *fs, const char *path, struct crp_fs_inode **out)
{
	uint64_t ino = CRP_ROOT_INO;
	char *copy = strdup(path), *save = NULL;
	int r = 0;

	for (char *c = strtok_r(copy, "/", &save); c && !r; c = strtok_r(NULL, "/", &save)) {
		struct crp_attr a;

		r = crp_fs_lookup(fs, ino, c, &a);
		if (!r)
			ino = a.ino;
	}
	free(copy);
	if (r)
		return r;
	pthread_mutex_lock(&fs->mu);
	r = crp_fs_iget(fs, ino, out);
	pthread_mutex_unlock(&fs->mu);
	return r;
}

int main(int argc, char **argv)
{
	const char *specs[CRP_MAX_MEMBERS];
	struct crp_fs_opts o = { .ro = true, .host = "crp-locate" };
	struct crp_fs_inode *ip = NULL;
	struct crp_fs *fs;
	struct crp_meta *m;
	struct crp_loc loc;
	char err[512], *list;
	uint64_t blk = 0, arg = 0;
	int n = 0, r;
	const char *what;

	if (argc < 3)
		return usage();
	list = strdup(argv[1]);
	for (char *save = NULL, *s = strtok_r(list, ",", &save); s && n < CRP_MAX_MEMBERS;
	     s = strtok_r(NULL, ",", &save))
		specs[n++] = s;
	what = argv[2];
	r = crp_fs_mount(specs, n, &o, &fs, err, sizeof(err));
	if (r) {
		fprintf(stderr, "crp_locate: cannot open: %s\n", err);
		return 1;
	}
	m = fs->m;
	if (argc > 3 && strchr("0123456789", argv[3][0]))
		arg = strtoull(argv[3], NULL, 0);
	if (!strcmp(what, "dataoff")) {
		printf("%llu\n", (unsigned long long)m->sb.data_offset);
		crp_fs_unmount(fs);
		return 0;
	} else if (!strcmp(what, "sb")) {
		blk = 0;
	} else if (!strcmp(what, "shared")) {
		blk = CRP_SHARED_BLKNO;
	} else if (!strcmp(what, "jhdr") || !strcmp(what, "orphan")) {
		blk = m->sb.journal_start + arg * m->sb.journal_blocks + (what[0] == 'o');
	} else if (!strcmp(what, "otable")) {
		uint64_t k = argc > 4 ? strtoull(argv[4], NULL, 0) : 0;

		blk = m->sb.otable_start + k * m->sb.max_hosts + arg;
	} else if (!strcmp(what, "bbitmap")) {
		blk = crp_meta_ag_base(m, (uint32_t)arg);
	} else if (!strcmp(what, "ibitmap")) {
		blk = m->sb.ibitmap_start + arg;
	} else {
		uint64_t k = argc > 4 ? strtoull(argv[4], NULL, 0) : 0, len;

		if (argc < 4)
			return usage();
		r = resolve(fs, argv[3], &ip);
		if (r)
			return fail(argv[3], r);
		if (!strcmp(what, "itable")) {
			blk = m->sb.itable_start + ip->d.ino / CRP_INODES_PER_BLOCK;
		} else if (!strcmp(what, "dir") || !strcmp(what, "data") ||
			   !strcmp(what, "csum")) {
			if (crp_fs_emap(ip, k, &blk, &len, NULL) != 1)
				return fail("that block is not mapped", -ENOENT);
			if (!strcmp(what, "csum")) {
				uint64_t rel = blk - m->sb.ag_start;

				blk = m->sb.ag_start + rel / m->sb.ag_blocks * m->sb.ag_blocks + 1 +
				      rel % m->sb.ag_blocks / CRP_CSUMS_PER_BLOCK;
			}
		} else if (!strcmp(what, "extent")) {
			if (k >= ip->nchain)
				return fail("no such extent block", -ENOENT);
			blk = ip->chain[k];
		} else if (!strcmp(what, "xattr")) {
			if (!ip->d.xattr_blk)
				return fail("no xattr block", -ENOENT);
			blk = ip->d.xattr_blk;
		} else {
			return usage();
		}
	}
	r = crp_geom_map(&m->geom, blk * CRP_BLOCK, &loc);
	if (r)
		return fail("geometry", r);
	{
		int pm, qm;

		crp_geom_parity(&m->geom, loc.stripe, &pm, &qm);
		printf("%llu %d %s %llu %d %d\n", (unsigned long long)blk, loc.member,
		       crp_member_spec(crp_array_member(m->a, loc.member)),
		       (unsigned long long)loc.member_off, pm, qm);
	}
	crp_fs_unmount(fs);
	free(list);
	return 0;
}
