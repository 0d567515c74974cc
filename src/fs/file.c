/*
 * File data: reads, writes, truncate, fallocate, SEEK_DATA/SEEK_HOLE.
 *
 * Data goes to the array in 4 KiB blocks.  A block that a committed
 * transaction references is never overwritten (its checksum in the
 * committed table would no longer match after a crash): a write to it goes
 * to a newly allocated block, which replaces it in the extent map (the old
 * one is freed when the transaction commits).  Blocks allocated by the
 * running transaction, and unwritten (fallocated) blocks, are written in
 * place: nothing committed reads them.  Partial blocks are read, merged,
 * written whole.  Data is written before the transaction that maps it
 * commits (ordered mode).
 */
#include <errno.h>
#include <fcntl.h>
#include <linux/falloc.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "crpfs/err.h"
#include "crpfs/util.h"
#include "fs_i.h"

#define RUN_MAX 256u /* blocks per array write */

enum bclass { B_HOLE, B_INPLACE, B_COW };

static enum bclass classify(struct crp_fs *fs, struct crp_fs_inode *ip, uint64_t l,
			    uint64_t *pblk, uint32_t *flags)
{
	uint64_t len;

	if (!crp_fs_emap(ip, l, pblk, &len, flags))
		return B_HOLE;
	if ((*flags & CRP_EXT_UNWRITTEN) || crp_meta_is_new(fs->m, *pblk))
		return B_INPLACE;
	return B_COW;
}

/* Old content of file block @l into @dst (zeros for holes, unwritten). */
static int read_old(struct crp_fs *fs, struct crp_fs_inode *ip, uint64_t l, uint8_t *dst)
{
	uint64_t pblk, len;
	uint32_t flags;

	if (!crp_fs_emap(ip, l, &pblk, &len, &flags) || (flags & CRP_EXT_UNWRITTEN)) {
		memset(dst, 0, CRP_BLOCK);
		return 0;
	}
	return crp_meta_data_read(fs->m, pblk, 1, dst);
}

/* Fill @n blocks of @bounce for file blocks [l, l+n) from @buf (the write
 * covers bytes [off, off+size)), merging old content at the edges. */
static int fill(struct crp_fs *fs, struct crp_fs_inode *ip, uint64_t l, uint32_t n, uint64_t off,
		const uint8_t *buf, size_t size, uint8_t *bounce)
{
	uint64_t end = off + size;

	for (uint32_t i = 0; i < n; i++) {
		uint64_t bs = (l + i) * CRP_BLOCK, be = bs + CRP_BLOCK;
		uint64_t s = CRP_MAX(bs, off), e = CRP_MIN(be, end);
		uint8_t *dst = bounce + (size_t)i * CRP_BLOCK;

		if (s > bs || e < be) {
			int r = read_old(fs, ip, l + i, dst);

			if (r)
				return r;
		}
		memcpy(dst + (s - bs), buf + (s - off), e - s);
	}
	return 0;
}

int crp_fs_write_range(struct crp_fs *fs, struct crp_fs_inode *ip, uint64_t off,
		       const void *buf, size_t size)
{
	uint64_t l, le;
	uint8_t *bounce;
	int r = 0;

	if (!size)
		return 0;
	if ((off + size + CRP_BLOCK - 1) / CRP_BLOCK > CRP_MAX_FILE_BLOCKS)
		return -EFBIG;
	l = off / CRP_BLOCK;
	le = (off + size - 1) / CRP_BLOCK;
	/* As large as one run of this write, and not cleared: fill() sets
	 * every byte of the blocks it is given. */
	bounce = crp_scratch_take(CRP_SCRATCH_FILE_W,
				  (size_t)CRP_MIN(le - l + 1, (uint64_t)RUN_MAX) * CRP_BLOCK, false);
	if (!bounce)
		return -ENOMEM;
	while (l <= le) {
		uint64_t pblk, p2;
		uint32_t flags, f2, n = 1;
		enum bclass c = classify(fs, ip, l, &pblk, &flags);

		if (c == B_INPLACE) {
			/* Extend over physically contiguous in-place blocks. */
			while (l + n <= le && n < RUN_MAX &&
			       classify(fs, ip, l + n, &p2, &f2) == B_INPLACE && p2 == pblk + n &&
			       f2 == flags)
				n++;
			r = fill(fs, ip, l, n, off, buf, size, bounce);
			if (!r)
				r = crp_meta_data_write(fs->m, pblk, n, bounce);
			if (!r && (flags & CRP_EXT_UNWRITTEN)) {
				r = crp_fs_eremove(fs, ip, l, n, false, false);
				if (!r)
					r = crp_fs_einsert(ip, l, pblk, n, 0);
			}
		} else {
			uint64_t start, goal = 0, gl;
			uint32_t got;

			while (l + n <= le && n < RUN_MAX && classify(fs, ip, l + n, &p2, &f2) != B_INPLACE)
				n++;
			/* A hole continues the block before it, so that a file
			 * grows in one piece.  A copy continues it only while
			 * this transaction writes the run (a rewrite from the
			 * start); otherwise the goal is the block being replaced,
			 * in use until the commit, so that small copies come side
			 * by side from a free stripe (crp_meta_alloc_data) and go
			 * out as full stripes, instead of each going back next to
			 * its old neighbour as a read-modify-write of its own. */
			if (l > 0 && crp_fs_emap(ip, l - 1, &gl, &p2, NULL) &&
			    (c == B_HOLE || crp_meta_is_new(fs->m, gl)))
				goal = gl + 1;
			else if (c == B_COW)
				goal = pblk;
			r = crp_meta_alloc_data(fs->m, goal, n, &start, &got);
			if (r)
				break;
			n = got;
			r = fill(fs, ip, l, n, off, buf, size, bounce);
			if (!r)
				r = crp_meta_data_write(fs->m, start, n, bounce);
			if (!r)
				r = crp_fs_ereplace(fs, ip, l, start, n);
			if (!r)
				ip->d.blocks += n;
			if (r) {
				(void)crp_meta_free(fs->m, start, got, false);
				break;
			}
		}
		if (r)
			break;
		l += n;
		/* A restartable step: the mapping is consistent here. */
		if (crp_meta_tx_size(fs->m) > 300) {
			r = crp_fs_istore(fs, ip);
			if (!r)
				r = crp_meta_maybe_commit(fs->m);
			if (r)
				break;
		}
	}
	crp_scratch_give(CRP_SCRATCH_FILE_W, bounce);
	return r;
}

ssize_t crp_fs_read_range(struct crp_fs *fs, struct crp_fs_inode *ip, uint64_t off, void *buf,
			  size_t size)
{
	uint8_t *out = buf, *bounce;
	uint64_t end;
	size_t done = 0;
	int r = 0;

	if (off >= ip->d.size || !size)
		return 0;
	end = CRP_MIN(ip->d.size, off + size);
	/* Not cleared: a block is copied out of it only once read into it. */
	bounce = crp_scratch_take(CRP_SCRATCH_FILE_R,
				  (size_t)CRP_MIN((end - 1) / CRP_BLOCK - off / CRP_BLOCK + 1,
						  (uint64_t)RUN_MAX) * CRP_BLOCK, false);
	if (!bounce)
		return -ENOMEM;
	while (off < end) {
		uint64_t l = off / CRP_BLOCK, pblk, len;
		uint32_t flags;
		uint64_t bytes;
		int mapped = crp_fs_emap(ip, l, &pblk, &len, &flags);

		len = CRP_MIN(len, (uint64_t)RUN_MAX);
		len = CRP_MIN(len, (end - l * CRP_BLOCK + CRP_BLOCK - 1) / CRP_BLOCK);
		bytes = CRP_MIN(end, (l + len) * CRP_BLOCK) - off;
		if (!mapped || (flags & CRP_EXT_UNWRITTEN)) {
			memset(out + done, 0, bytes);
		} else {
			r = crp_meta_data_read(fs->m, pblk, (uint32_t)len, bounce);
			if (r)
				break;
			memcpy(out + done, bounce + (off - l * CRP_BLOCK), bytes);
		}
		done += bytes;
		off += bytes;
	}
	crp_scratch_give(CRP_SCRATCH_FILE_R, bounce);
	return r ? r : (ssize_t)done;
}

/*
 * A read outside fs->mu (crp_fs_read): the plan says, for each piece of
 * the caller's buffer, zeros or which blocks to read, and the checksum
 * each block must have.  Made under fs->mu like crp_fs_read_range, from
 * the same extent map; read by crp_fs_rplan_read without it.
 */
static int rplan_add(struct crp_fs_rplan *p, const struct crp_fs_rseg *sg)
{
	if (p->nseg == p->seg_cap) {
		uint32_t cap = p->seg_cap ? p->seg_cap * 2 : 8;
		struct crp_fs_rseg *n = realloc(p->seg, cap * sizeof(*n));

		if (!n)
			return -ENOMEM;
		p->seg = n;
		p->seg_cap = cap;
	}
	p->seg[p->nseg++] = *sg;
	return 0;
}

int crp_fs_rplan_make(struct crp_fs *fs, struct crp_fs_inode *ip, uint64_t off, size_t size,
		      struct crp_fs_rplan *p)
{
	uint64_t end, nb;
	int r;

	p->nseg = 0;
	p->bytes = 0;
	p->nblk = 0;
	if (off >= ip->d.size || !size)
		return 0;
	end = CRP_MIN(ip->d.size, off + size);
	nb = (end - 1) / CRP_BLOCK - off / CRP_BLOCK + 1;
	if (nb > p->csum_cap) {
		uint64_t *c = realloc(p->csum, nb * sizeof(*c));

		if (!c)
			return -ENOMEM;
		p->csum = c;
		p->csum_cap = (uint32_t)nb;
	}
	while (off < end) {
		uint64_t l = off / CRP_BLOCK, pblk, len;
		uint32_t flags;
		int mapped = crp_fs_emap(ip, l, &pblk, &len, &flags);
		struct crp_fs_rseg sg;

		len = CRP_MIN(len, (uint64_t)RUN_MAX);
		len = CRP_MIN(len, (end - l * CRP_BLOCK + CRP_BLOCK - 1) / CRP_BLOCK);
		sg = (struct crp_fs_rseg){ .out = p->bytes,
					   .bytes = CRP_MIN(end, (l + len) * CRP_BLOCK) - off,
					   .skip = (uint32_t)(off - l * CRP_BLOCK) };
		if (mapped && !(flags & CRP_EXT_UNWRITTEN)) {
			if (!crp_meta_block_in_data_area(fs->m, pblk) ||
			    !crp_meta_block_in_data_area(fs->m, pblk + len - 1))
				return -CRP_ECORRUPT;
			/* Data held in memory until the commit is read under the lock. */
			if (crp_meta_data_held(fs->m, pblk, len))
				return -EAGAIN;
			sg.pblk = pblk;
			sg.nblk = (uint32_t)len;
			sg.csum = p->nblk;
			for (uint32_t i = 0; i < sg.nblk; i++) {
				r = crp_meta_csum_get(fs->m, pblk + i, &p->csum[p->nblk + i]);
				if (r < 0)
					return r;
			}
			p->nblk += sg.nblk;
		}
		r = rplan_add(p, &sg);
		if (r < 0)
			return r;
		p->bytes += sg.bytes;
		off += sg.bytes;
	}
	return 0;
}

int crp_fs_rplan_read(struct crp_fs *fs, const struct crp_fs_rplan *p, void *buf)
{
	uint8_t *out = buf, *bounce = NULL;
	int r = 0;

	crp_array_optimistic(true);
	for (uint32_t k = 0; k < p->nseg && r == 0; k++) {
		const struct crp_fs_rseg *sg = &p->seg[k];
		uint8_t *dst = out + sg->out;
		bool direct = !sg->skip && sg->bytes == (size_t)sg->nblk * CRP_BLOCK &&
			      !((uintptr_t)dst % CRP_BUF_ALIGN);

		if (!sg->nblk) {
			memset(dst, 0, sg->bytes);
			continue;
		}
		if (!direct && !bounce) {
			bounce = crp_scratch_take(CRP_SCRATCH_FILE_R, (size_t)RUN_MAX * CRP_BLOCK, false);
			if (!bounce) {
				r = -ENOMEM;
				break;
			}
		}
		if (!direct)
			dst = bounce;
		r = crp_array_read(fs->m->a, sg->pblk * CRP_BLOCK, dst,
				   (size_t)sg->nblk * CRP_BLOCK);
		/* A block that fails its checksum is the locked read's to
		 * rebuild: it may only be half-way through a write. */
		for (uint32_t i = 0; r == 0 && i < sg->nblk; i++) {
			uint64_t want = p->csum[sg->csum + i];

			if (want && crp_data_csum(dst + (size_t)i * CRP_BLOCK) != want)
				r = -CRP_ERETRY;
		}
		if (r == 0 && !direct)
			memcpy(out + sg->out, bounce + sg->skip, sg->bytes);
	}
	crp_array_optimistic(false);
	crp_scratch_give(CRP_SCRATCH_FILE_R, bounce);
	return r;
}

void crp_fs_rplan_free(struct crp_fs_rplan *p)
{
	free(p->seg);
	free(p->csum);
	memset(p, 0, sizeof(*p));
}

int crp_fs_truncate(struct crp_fs *fs, struct crp_fs_inode *ip, uint64_t size)
{
	int r;

	if ((size + CRP_BLOCK - 1) / CRP_BLOCK > CRP_MAX_FILE_BLOCKS)
		return -EFBIG;
	if (size < ip->d.size) {
		uint64_t first = (size + CRP_BLOCK - 1) / CRP_BLOCK;

		if (size % CRP_BLOCK) {
			/* Zero the tail of the last block, so that growing the file
			 * later reads zeros there. */
			uint64_t pblk, len;
			uint32_t flags;

			if (crp_fs_emap(ip, size / CRP_BLOCK, &pblk, &len, &flags) &&
			    !(flags & CRP_EXT_UNWRITTEN)) {
				static const uint8_t zero[CRP_BLOCK];

				r = crp_fs_write_range(fs, ip, size, zero,
						       CRP_BLOCK - size % CRP_BLOCK);
				if (r)
					return r;
			}
		}
		r = crp_fs_eremove(fs, ip, first, CRP_MAX_FILE_BLOCKS - first, true, false);
		if (r)
			return r;
	}
	ip->d.size = size;
	return 0;
}

int crp_fs_fallocate(struct crp_fs *fs, uint64_t ino, int mode, uint64_t off, uint64_t len)
{
	struct crp_fs_inode *ip;
	uint64_t end = off + len, l, le, snap;
	int r;

	if (!len || end < off)
		return -EINVAL;
	if (mode & ~(FALLOC_FL_KEEP_SIZE | FALLOC_FL_PUNCH_HOLE))
		return -EOPNOTSUPP;
	if ((mode & FALLOC_FL_PUNCH_HOLE) && !(mode & FALLOC_FL_KEEP_SIZE))
		return -EOPNOTSUPP;
	if ((end + CRP_BLOCK - 1) / CRP_BLOCK > CRP_MAX_FILE_BLOCKS)
		return -EFBIG;
	snap = crp_fs_op_begin(fs);
	if (fs->ro) {
		r = -EROFS;
		goto out;
	}
	r = crp_fs_iget(fs, ino, &ip);
	if (r)
		goto out;
	if (!S_ISREG(ip->d.mode)) {
		r = S_ISDIR(ip->d.mode) ? -EISDIR : -ENODEV;
		goto out;
	}
	if (mode & FALLOC_FL_PUNCH_HOLE) {
		static const uint8_t zero[CRP_BLOCK];
		uint64_t fb = (off + CRP_BLOCK - 1) / CRP_BLOCK, lb = end / CRP_BLOCK;
		uint64_t pe = CRP_MIN(end, ip->d.size);

		if (off >= ip->d.size)
			goto done;
		/* Partial blocks at the edges are zeroed, whole ones unmapped. */
		if (off % CRP_BLOCK) {
			uint64_t e = CRP_MIN(pe, (off / CRP_BLOCK + 1) * CRP_BLOCK);
			uint64_t p, n;

			if (e > off && crp_fs_emap(ip, off / CRP_BLOCK, &p, &n, NULL)) {
				r = crp_fs_write_range(fs, ip, off, zero, e - off);
				if (r)
					goto out;
			}
		}
		if (pe % CRP_BLOCK && pe / CRP_BLOCK >= fb && pe == end) {
			uint64_t p, n;

			if (crp_fs_emap(ip, pe / CRP_BLOCK, &p, &n, NULL)) {
				r = crp_fs_write_range(fs, ip, (pe / CRP_BLOCK) * CRP_BLOCK, zero,
						       pe % CRP_BLOCK);
				if (r)
					goto out;
			}
		}
		if (lb > fb) {
			r = crp_fs_eremove(fs, ip, fb, lb - fb, true, false);
			if (r)
				goto out;
		}
		goto done;
	}
	l = off / CRP_BLOCK;
	le = (end - 1) / CRP_BLOCK;
	while (l <= le) {
		uint64_t pblk, n, start;
		uint32_t got;

		if (crp_fs_emap(ip, l, &pblk, &n, NULL)) {
			l += n;
			continue;
		}
		n = CRP_MIN(n, le - l + 1);
		r = crp_meta_alloc(fs->m, pblk, (uint32_t)CRP_MIN(n, 32768u), &start, &got);
		if (r)
			goto out;
		r = crp_fs_einsert(ip, l, start, got, CRP_EXT_UNWRITTEN);
		if (r)
			goto out;
		ip->d.blocks += got;
		l += got;
		if (crp_meta_tx_size(fs->m) > 300) {
			r = crp_fs_istore(fs, ip);
			if (!r)
				r = crp_meta_maybe_commit(fs->m);
			if (r)
				goto out;
		}
	}
	if (!(mode & FALLOC_FL_KEEP_SIZE) && end > ip->d.size)
		ip->d.size = end;
done:
	crp_fs_touch(ip, false, !(mode & FALLOC_FL_KEEP_SIZE) || (mode & FALLOC_FL_PUNCH_HOLE), true);
	r = crp_fs_istore(fs, ip);
out:
	return crp_fs_op_end(fs, snap, r);
}

int64_t crp_fs_lseek(struct crp_fs *fs, uint64_t ino, int64_t off, int whence)
{
	struct crp_fs_inode *ip;
	uint64_t snap;
	int64_t res;
	int r;

	if (off < 0)
		return -ENXIO;
	snap = crp_fs_op_begin(fs);
	r = crp_fs_iget(fs, ino, &ip);
	if (r) {
		res = r;
		goto out;
	}
	if ((uint64_t)off >= ip->d.size) {
		res = -ENXIO;
		goto out;
	}
	res = -EINVAL;
	if (whence == SEEK_DATA || whence == SEEK_HOLE) {
		uint64_t pos = (uint64_t)off;

		/* Unwritten extents count as holes: they read as zeros. */
		for (;;) {
			uint64_t l = pos / CRP_BLOCK, pblk, n;
			uint32_t flags;
			bool data = crp_fs_emap(ip, l, &pblk, &n, &flags) &&
				    !(flags & CRP_EXT_UNWRITTEN);

			if (pos >= ip->d.size) {
				res = whence == SEEK_DATA ? -ENXIO : (int64_t)ip->d.size;
				break;
			}
			if (data == (whence == SEEK_DATA)) {
				res = (int64_t)pos;
				break;
			}
			pos = (l + n) * CRP_BLOCK;
		}
	}
out:
	r = crp_fs_op_end(fs, snap, res < 0 ? (int)res : 0);
	return r < 0 ? r : res;
}
