/*
 * Directories: linear hashing over buckets of one block each.
 *
 * A directory with N buckets keeps bucket b at file block b of its extent
 * map (a metadata block, CRP_MAGIC_DIR, header aux64 = b).  With
 * L = floor(log2 N), the name with hash h lives in bucket h mod 2^(L+1), or
 * h mod 2^L if that is >= N.  When an insert finds its bucket's first
 * block full, bucket N - 2^L is split into itself and the new bucket N
 * (entries whose h mod 2^(L+1) == N move), so buckets stay about one block
 * and a lookup reads one or two blocks whatever the size.  A bucket that
 * still overflows (many equal hashes) chains overflow blocks through the
 * header's next field; an overflow block that empties is freed.
 *
 * Entries are packed from the start of the payload (header aux = bytes
 * used, count = entries).  "." and ".." are not stored: the inode keeps
 * its parent.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "crpfs/err.h"
#include "crpfs/util.h"
#include "fs_i.h"

static uint32_t bucket_of(uint32_t h, uint32_t n)
{
	uint32_t l = 31 - (uint32_t)__builtin_clz(n);
	uint64_t b = h & ((2ull << l) - 1);

	if (b >= n)
		b = h & ((1ull << l) - 1);
	return (uint32_t)b;
}

static int bucket_blk(struct crp_fs_inode *dp, uint32_t b, uint64_t *blk)
{
	uint64_t len;

	if (crp_fs_emap(dp, b, blk, &len, NULL) != 1)
		return -CRP_ECORRUPT;
	return 0;
}

struct dblk_ctx {
	uint64_t dir;		/* the directory that owns it */
	uint32_t bucket;	/* the bucket whose chain it is in */
	uint32_t nbuckets;
};

/* The structure of a directory block read from the disks: its owner and
 * bucket, and entries that fill exactly the bytes it says it uses. */
static bool dblk_ok(const void *blk, void *ctx)
{
	const struct dblk_ctx *c = ctx;
	const uint8_t *b = blk;
	uint32_t used = crp_get_le32(b + 52), n = 0, off;

	if (crp_get_le64(b + 32) != c->dir || used > CRP_PAYLOAD ||
	    crp_get_le64(b + 56) != c->bucket || c->bucket >= c->nbuckets)
		return false;
	for (off = 0; off < used; n++) {
		struct crp_dirent d;
		int rl = crp_dirent_in(b + CRP_HDR_SIZE + off, used - off, &d);

		if (rl <= 0)
			return false;
		off += (uint32_t)rl;
	}
	return n == crp_get_le32(b + 48);
}

/* Block @blk of bucket @bucket's chain: read, checked, and rebuilt from
 * parity when it fails (crp_meta_bread_check). */
static int read_dblk(struct crp_fs *fs, struct crp_fs_inode *dp, uint64_t blk, uint32_t bucket,
		     struct crp_mblk **out)
{
	struct dblk_ctx c = { dp->d.ino, bucket, dp->d.dir_nbuckets };
	int r = crp_meta_bread_check(fs->m, blk, CRP_MAGIC_DIR, dblk_ok, &c, out);

	if (r)
		return r;
	if (crp_mblk_owner(*out) != dp->d.ino || crp_mblk_aux(*out) > CRP_PAYLOAD)
		return -CRP_ECORRUPT;
	return 0;
}

/* Read directory block @blk and empty it, for entries to be rewritten. */
static int empty_dblk(struct crp_fs *fs, struct crp_fs_inode *dp, uint64_t blk, uint32_t bucket,
		      struct crp_mblk **out)
{
	int r = read_dblk(fs, dp, blk, bucket, out);

	if (r)
		return r;
	crp_mblk_set_aux(*out, 0);
	crp_mblk_set_count(*out, 0);
	memset(crp_mblk_payload(*out), 0, CRP_PAYLOAD);
	crp_meta_dirty(fs->m, *out);
	return 0;
}

static uint32_t name_hash(struct crp_fs *fs, const char *name)
{
	return crp_name_hash(fs->m->sb.hash_seed, name, strlen(name));
}

/*
 * Call @fn(@ctx, mb, off, d) for each entry of bucket @b's chain, in order
 * (@off: the entry's byte offset in @mb's payload); stops at the first
 * non-zero return and passes it back.  With @check_bucket, every block must
 * also say it belongs to bucket @b.  A chain longer than 2^20 blocks is
 * corrupt (a loop).
 */
static int walk_bucket(struct crp_fs *fs, struct crp_fs_inode *dp, uint32_t b, bool check_bucket,
		       int (*fn)(void *ctx, struct crp_mblk *mb, uint32_t off,
				 const struct crp_dirent *d),
		       void *ctx)
{
	uint64_t blk;
	int r = bucket_blk(dp, b, &blk), hops = 0;

	if (r)
		return r;
	while (blk) {
		struct crp_mblk *mb;
		uint32_t used, off;

		if (++hops > 1 << 20)
			return -CRP_ECORRUPT;
		r = read_dblk(fs, dp, blk, b, &mb);
		if (r)
			return r;
		if (check_bucket && crp_mblk_aux64(mb) != b)
			return -CRP_ECORRUPT;
		used = crp_mblk_aux(mb);
		for (off = 0; off < used;) {
			struct crp_dirent d;
			int rl = crp_dirent_in(crp_mblk_payload(mb) + off, used - off, &d);

			if (rl < 0)
				return rl;
			r = fn(ctx, mb, off, &d);
			if (r)
				return r;
			off += (uint32_t)rl;
		}
		blk = crp_mblk_next(mb);
	}
	return 0;
}

struct find_ctx {
	const char *name;
	size_t nl;
	uint32_t h;
	struct crp_dirent *d;
	struct crp_mblk **bout;
	uint32_t *offout;
};

static int find_one(void *ctx, struct crp_mblk *mb, uint32_t off, const struct crp_dirent *d)
{
	struct find_ctx *f = ctx;

	if (d->hash != f->h || d->namelen != f->nl || memcmp(d->name, f->name, f->nl))
		return 0;
	*f->d = *d;
	*f->bout = mb;
	*f->offout = off;
	return 1;
}

/* Find @name: its block and byte offset in the payload. */
static int find(struct crp_fs *fs, struct crp_fs_inode *dp, const char *name,
		struct crp_dirent *d, struct crp_mblk **bout, uint32_t *offout)
{
	struct find_ctx f = { .name = name, .nl = strlen(name), .d = d, .bout = bout,
			      .offout = offout };
	int r;

	if (!dp->d.dir_nbuckets)
		return -ENOENT;
	f.h = name_hash(fs, name);
	r = walk_bucket(fs, dp, bucket_of(f.h, dp->d.dir_nbuckets), false, find_one, &f);
	if (r < 0)
		return r;
	return r ? 0 : -ENOENT;
}

int crp_fs_dir_find(struct crp_fs *fs, struct crp_fs_inode *dp, const char *name,
		    uint64_t *ino, uint8_t *type)
{
	struct crp_dirent d;
	struct crp_mblk *mb;
	uint32_t off;
	int r = find(fs, dp, name, &d, &mb, &off);

	if (r)
		return r;
	*ino = d.ino;
	if (type)
		*type = d.type;
	return 0;
}

static int alloc_dblk(struct crp_fs *fs, struct crp_fs_inode *dp, uint64_t goal, uint64_t bucket,
		      struct crp_mblk **out)
{
	uint64_t start;
	uint32_t got;
	struct crp_mblk *mb;
	int r = crp_meta_alloc(fs->m, goal, 1, &start, &got);

	if (r)
		return r;
	mb = crp_meta_bnew(fs->m, start, CRP_MAGIC_DIR, dp->d.ino);
	if (!mb)
		return -ENOMEM;
	crp_put_le64(mb->buf + 56, bucket);
	dp->d.blocks++;
	*out = mb;
	return 0;
}

static void put_entry(struct crp_fs *fs, struct crp_mblk *mb, const struct crp_dirent *d)
{
	uint32_t used = crp_mblk_aux(mb);

	used += crp_dirent_out(d, crp_mblk_payload(mb) + used);
	crp_mblk_set_aux(mb, used);
	crp_mblk_set_count(mb, crp_mblk_count(mb) + 1);
	crp_meta_dirty(fs->m, mb);
}

/* Split bucket N - 2^L into itself and new bucket N. */
static int split(struct crp_fs *fs, struct crp_fs_inode *dp)
{
	uint32_t n = dp->d.dir_nbuckets, l = 31 - (uint32_t)__builtin_clz(n);
	uint32_t old = n - (1u << l);
	uint64_t mask = (2ull << l) - 1, blk, prim;
	struct crp_mblk *nb, *mb, *w;
	uint64_t *chain = NULL;
	uint32_t nchain = 0, wi = 0;
	GArray *keep = g_array_new(FALSE, FALSE, sizeof(struct crp_dirent));
	int r;

	if (n >= 1u << 31) {
		r = 0;
		goto out;
	}
	r = bucket_blk(dp, old, &prim);
	if (r)
		goto out;
	r = alloc_dblk(fs, dp, prim, n, &nb);
	if (r)
		goto out;
	r = crp_fs_einsert(dp, n, nb->blkno, 1, 0);
	if (r)
		goto out;
	dp->d.dir_nbuckets = n + 1;
	dp->d.size = (uint64_t)(n + 1) * CRP_BLOCK;
	/* Read the old chain, move entries. */
	for (blk = prim; blk; blk = crp_mblk_next(mb)) {
		uint32_t used, off;
		uint64_t *c;

		r = read_dblk(fs, dp, blk, old, &mb);
		if (r)
			goto out;
		c = realloc(chain, (nchain + 1) * sizeof(*c));
		if (!c) {
			r = -ENOMEM;
			goto out;
		}
		chain = c;
		chain[nchain++] = blk;
		used = crp_mblk_aux(mb);
		for (off = 0; off < used;) {
			struct crp_dirent d;
			int rl = crp_dirent_in(crp_mblk_payload(mb) + off, used - off, &d);

			if (rl < 0) {
				r = rl;
				goto out;
			}
			off += (uint32_t)rl;
			if ((d.hash & mask) == n) {
				if (crp_mblk_aux(nb) + crp_dirent_reclen(d.namelen) > CRP_PAYLOAD) {
					struct crp_mblk *ob;

					r = alloc_dblk(fs, dp, nb->blkno, n, &ob);
					if (r)
						goto out;
					crp_mblk_set_next(ob, crp_mblk_next(nb));
					crp_mblk_set_next(nb, ob->blkno);
					crp_meta_dirty(fs->m, nb);
					nb = ob;
				}
				put_entry(fs, nb, &d);
			} else {
				g_array_append_val(keep, d);
			}
		}
	}
	/* Rewrite the old chain with what stays; free emptied overflow blocks. */
	r = empty_dblk(fs, dp, chain[0], old, &w);
	if (r)
		goto out;
	for (guint i = 0; i < keep->len; i++) {
		struct crp_dirent *d = &g_array_index(keep, struct crp_dirent, i);

		if (crp_mblk_aux(w) + crp_dirent_reclen(d->namelen) > CRP_PAYLOAD) {
			wi++;
			r = empty_dblk(fs, dp, chain[wi], old, &w);
			if (r)
				goto out;
		}
		put_entry(fs, w, d);
	}
	crp_mblk_set_next(w, 0);
	crp_meta_dirty(fs->m, w);
	for (uint32_t i = wi + 1; i < nchain; i++) {
		r = crp_meta_free(fs->m, chain[i], 1, true);
		if (r)
			goto out;
		dp->d.blocks--;
	}
out:
	g_array_free(keep, TRUE);
	free(chain);
	return r;
}

int crp_fs_dir_add(struct crp_fs *fs, struct crp_fs_inode *dp, const char *name, uint64_t ino,
		   uint8_t type)
{
	struct crp_dirent d = { .ino = ino, .type = type };
	uint32_t rl, b;
	uint64_t blk;
	struct crp_mblk *mb = NULL;
	int r;

	d.namelen = (uint8_t)strlen(name);
	memcpy(d.name, name, d.namelen + 1);
	d.hash = name_hash(fs, name);
	rl = crp_dirent_reclen(d.namelen);
	if (!dp->d.dir_nbuckets) {
		r = alloc_dblk(fs, dp, 0, 0, &mb);
		if (r)
			return r;
		r = crp_fs_einsert(dp, 0, mb->blkno, 1, 0);
		if (r)
			return r;
		dp->d.dir_nbuckets = 1;
		dp->d.size = CRP_BLOCK;
	}
	for (int attempt = 0;; attempt++) {
		b = bucket_of(d.hash, dp->d.dir_nbuckets);
		r = bucket_blk(dp, b, &blk);
		if (r)
			return r;
		r = read_dblk(fs, dp, blk, b, &mb);
		if (r)
			return r;
		if (crp_mblk_aux(mb) + rl <= CRP_PAYLOAD)
			break;
		if (attempt >= 2)
			break;
		r = split(fs, dp);
		if (r)
			return r;
	}
	/* Walk the overflow chain for room; add a block at its end if none. */
	while (crp_mblk_aux(mb) + rl > CRP_PAYLOAD) {
		uint64_t next = crp_mblk_next(mb);

		if (!next) {
			struct crp_mblk *ob;

			r = alloc_dblk(fs, dp, mb->blkno, b, &ob);
			if (r)
				return r;
			crp_mblk_set_next(mb, ob->blkno);
			crp_meta_dirty(fs->m, mb);
			mb = ob;
			break;
		}
		r = read_dblk(fs, dp, next, b, &mb);
		if (r)
			return r;
	}
	put_entry(fs, mb, &d);
	dp->d.dir_entries++;
	return 0;
}

int crp_fs_dir_remove(struct crp_fs *fs, struct crp_fs_inode *dp, const char *name)
{
	struct crp_dirent d;
	struct crp_mblk *mb;
	uint32_t off, used, rl;
	int r = find(fs, dp, name, &d, &mb, &off);

	if (r)
		return r;
	used = crp_mblk_aux(mb);
	rl = crp_dirent_reclen(d.namelen);
	memmove(crp_mblk_payload(mb) + off, crp_mblk_payload(mb) + off + rl, used - off - rl);
	memset(crp_mblk_payload(mb) + used - rl, 0, rl);
	crp_mblk_set_aux(mb, used - rl);
	crp_mblk_set_count(mb, crp_mblk_count(mb) - 1);
	crp_meta_dirty(fs->m, mb);
	dp->d.dir_entries--;
	if (!crp_mblk_count(mb)) {
		/* An emptied overflow block leaves its chain. */
		uint32_t b = (uint32_t)crp_mblk_aux64(mb);
		uint64_t blk, target = mb->blkno, after = crp_mblk_next(mb);
		struct crp_mblk *pb;

		r = bucket_blk(dp, b, &blk);
		if (r || blk == target)
			return r;
		while (blk) {
			r = read_dblk(fs, dp, blk, b, &pb);
			if (r)
				return r;
			if (crp_mblk_next(pb) == target) {
				crp_mblk_set_next(pb, after);
				crp_meta_dirty(fs->m, pb);
				r = crp_meta_free(fs->m, target, 1, true);
				if (!r)
					dp->d.blocks--;
				return r;
			}
			blk = crp_mblk_next(pb);
		}
		return -CRP_ECORRUPT;
	}
	return 0;
}

int crp_fs_dir_replace(struct crp_fs *fs, struct crp_fs_inode *dp, const char *name,
		       uint64_t ino, uint8_t type)
{
	struct crp_dirent d;
	struct crp_mblk *mb;
	uint32_t off;
	int r = find(fs, dp, name, &d, &mb, &off);

	if (r)
		return r;
	d.ino = ino;
	d.type = type;
	crp_dirent_out(&d, crp_mblk_payload(mb) + off);
	crp_meta_dirty(fs->m, mb);
	return 0;
}

struct iter_ctx {
	crp_fs_dir_fn fn;
	void *ctx;
};

static int iter_one(void *ctx, struct crp_mblk *mb, uint32_t off, const struct crp_dirent *d)
{
	struct iter_ctx *it = ctx;

	(void)mb;
	(void)off;
	return it->fn(it->ctx, d);
}

int crp_fs_dir_iter(struct crp_fs *fs, struct crp_fs_inode *dp, crp_fs_dir_fn fn, void *ctx)
{
	struct iter_ctx it = { fn, ctx };

	for (uint32_t b = 0; b < dp->d.dir_nbuckets; b++) {
		int r = walk_bucket(fs, dp, b, true, iter_one, &it);

		if (r)
			return r;
	}
	return 0;
}

int crp_fs_dir_iter_all(struct crp_fs *fs, struct crp_fs_inode *dp, crp_fs_dir_fn fn, void *ctx)
{
	struct iter_ctx it = { fn, ctx };
	int first = 0;

	for (uint32_t b = 0; b < dp->d.dir_nbuckets; b++) {
		int r = walk_bucket(fs, dp, b, true, iter_one, &it);

		if (r > 0 || r == -ENOMEM)
			return r;
		if (r < 0 && !first)
			first = r;
	}
	return first;
}

int crp_fs_dir_overflow(struct crp_fs *fs, struct crp_fs_inode *dp,
			int (*fn)(void *ctx, uint64_t blk), void *ctx)
{
	for (uint32_t b = 0; b < dp->d.dir_nbuckets; b++) {
		uint64_t blk;
		struct crp_mblk *mb;
		int r = bucket_blk(dp, b, &blk), hops = 0;

		if (r)
			return r;
		r = read_dblk(fs, dp, blk, b, &mb);
		if (r)
			return r;
		for (blk = crp_mblk_next(mb); blk; blk = crp_mblk_next(mb)) {
			if (++hops > 1 << 20)
				return -CRP_ECORRUPT;
			r = fn(ctx, blk);
			if (r)
				return r;
			r = read_dblk(fs, dp, blk, b, &mb);
			if (r)
				return r;
		}
	}
	return 0;
}

int crp_fs_dir_salvage(struct crp_fs *fs, struct crp_fs_inode *dp, bool repair,
		       void (*fn)(void *ctx, uint32_t bucket, uint64_t blk, bool head, int err),
		       void *ctx)
{
	int given_up = 0;

	for (uint32_t b = 0; b < dp->d.dir_nbuckets; b++) {
		struct crp_mblk *mb, *prev = NULL;
		uint64_t blk;
		int r = bucket_blk(dp, b, &blk), hops = 0;

		if (r)
			return r;
		while (blk) {
			if (++hops > 1 << 20) {
				r = -CRP_ECORRUPT;
			} else {
				r = read_dblk(fs, dp, blk, b, &mb);
				if (r == 0 && crp_mblk_aux64(mb) != b)
					r = -CRP_ECORRUPT;
			}
			if (r == -ENOMEM)
				return r;
			if (r == 0) {
				prev = mb;
				blk = crp_mblk_next(mb);
				continue;
			}
			/* Parity could not rebuild it (read_dblk tried). */
			given_up++;
			if (fn)
				fn(ctx, b, blk, !prev, r);
			if (!repair)
				break;
			if (!prev) {
				/* The bucket itself: an empty bucket in its place. */
				mb = crp_meta_bnew(fs->m, blk, CRP_MAGIC_DIR, dp->d.ino);
				if (!mb)
					return -ENOMEM;
				crp_put_le64(mb->buf + 56, b);
			} else {
				crp_mblk_set_next(prev, 0);
				crp_meta_dirty(fs->m, prev);
			}
			break;
		}
	}
	return given_up;
}
