/*
 * libFuzzer target for the on-disk decoders: every *_in() function gets the
 * input as a record and must return an error or a record that encodes back
 * to a valid one, never crash or read out of bounds.  Links only
 * src/meta/ondisk.c, the src/util sources and xxhash.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "crpfs/ondisk.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static uint8_t blk[CRP_BLOCK], out[CRP_BLOCK];
	char err[256];
	struct crp_label l;
	struct crp_sb sb;
	struct crp_bhdr h;
	struct crp_slot s;
	struct crp_jhdr j;
	struct crp_inode in;
	struct crp_dirent d;
	struct crp_xattr x;
	uint32_t off;
	int r;

	memset(blk, 0, sizeof(blk));
	memcpy(blk, data, size < CRP_BLOCK ? size : CRP_BLOCK);

	if (crp_label_in(blk, &l, err, sizeof(err)) == 0) {
		crp_label_out(&l, out);
		if (crp_label_in(out, &l, err, sizeof(err)) != 0)
			abort();
	}
	if (crp_sb_in(blk, &sb, err, sizeof(err)) == 0) {
		crp_sb_out(&sb, out);
		if (crp_sb_in(out, &sb, err, sizeof(err)) != 0)
			abort();
	}
	if (crp_inode_in(blk, crp_get_le64(blk + 16), &in, err, sizeof(err)) == 0) {
		crp_inode_out(&in, out);
		if (crp_inode_in(out, in.ino, &in, err, sizeof(err)) != 0)
			abort();
	}
	(void)crp_slot_in(blk, crp_get_le64(blk + 16), crp_get_le64(blk + 24), &s, err,
			  sizeof(err));
	(void)crp_jhdr_in(blk, crp_get_le64(blk + 16), crp_get_le64(blk + 24), &j, err,
			  sizeof(err));
	(void)crp_bhdr_in(blk, crp_get_le32(blk), crp_get_le64(blk + 16), crp_get_le64(blk + 24),
			  &h, err, sizeof(err));
	/* Walk the payload as directory entries and as xattrs, as the fs does
	 * with the count and used bytes from the header. */
	for (off = CRP_HDR_SIZE; off < CRP_BLOCK;) {
		r = crp_dirent_in(blk + off, CRP_BLOCK - off, &d);
		if (r <= 0)
			break;
		off += (uint32_t)r;
	}
	for (off = CRP_HDR_SIZE; off < CRP_BLOCK;) {
		r = crp_xattr_in(blk + off, CRP_BLOCK - off, &x);
		if (r <= 0)
			break;
		off += (uint32_t)r;
	}
	return 0;
}
