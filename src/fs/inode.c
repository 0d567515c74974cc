/*
 * The inode cache and the extent map.
 *
 * An inode is read once and kept in fs->inodes while the kernel references
 * it (lookups) or it is open; every change is stored at once into the
 * inode table block of the running transaction (crp_fs_istore), so the
 * cache never holds anything the journal does not.  The extent list is
 * kept whole in memory, sorted; up to 13 extents live in the inode, more
 * in a chain of extent blocks (up to 168 each) of which a store rewrites
 * only those that changed (store_chain).
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <dirent.h>

#include "crpfs/err.h"
#include "crpfs/log.h"
#include "crpfs/util.h"
#include "fs_i.h"

void crp_fs_inode_free_mem(void *p)
{
	struct crp_fs_inode *ip = p;

	if (!ip)
		return;
	free(ip->ext);
	free(ip->chain);
	free(ip->chain_cnt);
	free(ip);
}

static int ext_reserve(struct crp_fs_inode *ip, uint32_t n)
{
	if (n <= ip->ext_cap)
		return 0;
	uint32_t cap = CRP_MAX(n, ip->ext_cap * 2);
	struct crp_extent *e = realloc(ip->ext, (size_t)cap * sizeof(*e));

	if (!e)
		return -ENOMEM;
	ip->ext = e;
	ip->ext_cap = cap;
	return 0;
}

/*
 * Note a change of the extent list: after it, entries [@from, @to) are new
 * (@from == @to: entries were removed at @from).  What comes before @from
 * is as it was; so is the tail after @to, shifted.  ext_lo is the first
 * index changed since the last store; ext_tail the number of trailing
 * entries known unchanged, which a change ahead of them does not alter
 * (it shifts them and the end alike).  store_chain compares only the
 * blocks in between.
 */
static void ext_touch(struct crp_fs_inode *ip, uint32_t from, uint32_t to)
{
	ip->ext_lo = CRP_MIN(ip->ext_lo, from);
	ip->ext_tail = CRP_MIN(ip->ext_tail, ip->next - to);
}

/* An extent block of inode @ctx: owner, count, and extents that make sense. */
static bool eblk_ok(const void *blk, void *ctx)
{
	const uint8_t *b = blk;
	uint32_t cnt = crp_get_le32(b + 48);
	struct crp_extent e[CRP_EXTENTS_PER_BLOCK];

	if (crp_get_le64(b + 32) != *(const uint64_t *)ctx || cnt > CRP_EXTENTS_PER_BLOCK)
		return false;
	crp_extents_in(b + CRP_HDR_SIZE, cnt, e);
	for (uint32_t i = 0; i < cnt; i++)
		if (!e[i].len || (i && e[i].lblk < e[i - 1].lblk + e[i - 1].len))
			return false;
	return true;
}

static int load_extents(struct crp_fs *fs, struct crp_fs_inode *ip)
{
	struct crp_mblk *b;
	uint64_t blk;
	int r;

	if (ip->d.flags & CRP_IF_INLINE_DATA)
		return 0;
	if (!(ip->d.flags & CRP_IF_EXT_CHAIN)) {
		r = ext_reserve(ip, CRP_MAX(ip->d.nextents, 4));
		if (r)
			return r;
		memcpy(ip->ext, ip->d.ext, ip->d.nextents * sizeof(*ip->ext));
		ip->next = ip->d.nextents;
		return 0;
	}
	for (blk = ip->d.ext_chain; blk;) {
		uint32_t cnt, *cc;
		uint64_t *c;

		if (ip->nchain > 1u << 20)
			return -CRP_ECORRUPT; /* a loop */
		r = crp_meta_bread_check(fs->m, blk, CRP_MAGIC_EXTENT, eblk_ok, &ip->d.ino, &b);
		if (r)
			return r;
		if (crp_mblk_owner(b) != ip->d.ino)
			return -CRP_ECORRUPT;
		cnt = crp_mblk_count(b);
		if (cnt > CRP_EXTENTS_PER_BLOCK)
			return -CRP_ECORRUPT;
		r = ext_reserve(ip, ip->next + cnt);
		if (r)
			return r;
		crp_extents_in(crp_mblk_payload(b), cnt, ip->ext + ip->next);
		ip->next += cnt;
		c = realloc(ip->chain, (ip->nchain + 1) * sizeof(*c));
		if (!c)
			return -ENOMEM;
		ip->chain = c;
		cc = realloc(ip->chain_cnt, (ip->nchain + 1) * sizeof(*cc));
		if (!cc)
			return -ENOMEM;
		ip->chain_cnt = cc;
		ip->chain_cnt[ip->nchain] = cnt;
		ip->chain[ip->nchain++] = blk;
		blk = crp_mblk_next(b);
	}
	if (ip->next != ip->d.nextents)
		return -CRP_ECORRUPT;
	return 0;
}

/* Re-read a stale inode: 0, or -ESTALE (freed or reused by another host:
 * dropped from the cache), or an error. */
static int refresh(struct crp_fs *fs, struct crp_fs_inode *ip)
{
	struct crp_inode d;
	int r = crp_meta_iread(fs->m, ip->d.ino, &d);

	if (r < 0)
		return r;
	if (r == 1 || !d.mode || d.generation != ip->d.generation) {
		if (fs->m->opt)
			return -CRP_ERETRY; /* decided under the lock, not on a read without it */
		g_hash_table_remove(fs->inodes, &ip->d.ino);
		return -ESTALE;
	}
	ip->d = d;
	free(ip->chain);
	free(ip->chain_cnt);
	ip->chain = NULL;
	ip->chain_cnt = NULL;
	ip->nchain = 0;
	ip->next = 0;
	ip->ext_dirty = false;
	r = load_extents(fs, ip);
	if (r < 0)
		return r;
	ip->stale = false;
	return 0;
}

int crp_fs_iget(struct crp_fs *fs, uint64_t ino, struct crp_fs_inode **out)
{
	struct crp_fs_inode *ip = g_hash_table_lookup(fs->inodes, &ino);
	int r;

	*out = NULL;
	if (fs->op_err)
		return fs->op_err; /* no transaction: touch nothing */
	if (ip && ip->stale) {
		r = refresh(fs, ip);
		if (r == -ESTALE)
			ip = NULL; /* gone, or a new inode under the same number */
		else if (r < 0)
			return r;
	}
	if (ip) {
		*out = ip;
		return 0;
	}
	if (ino < 1 || ino >= fs->m->sb.inode_count)
		return -ESTALE;
	ip = calloc(1, sizeof(*ip));
	if (!ip)
		return -ENOMEM;
	r = crp_meta_iread(fs->m, ino, &ip->d);
	if (r == 1 || (r == 0 && !ip->d.mode)) {
		r = -ESTALE;
		goto out;
	}
	if (r < 0)
		goto out;
	r = load_extents(fs, ip);
	if (r < 0)
		goto out;
	g_hash_table_insert(fs->inodes, &ip->d.ino, ip);
	*out = ip;
	ip = NULL;
out:
	crp_fs_inode_free_mem(ip);
	return r;
}

static void inval(struct crp_fs *fs, uint64_t ino, uint64_t parent, const char *name)
{
	if (fs->inval)
		fs->inval(fs->inval_ctx, ino, parent, name);
}

static void stale_ino(struct crp_fs *fs, uint64_t ino)
{
	struct crp_fs_inode *ip = g_hash_table_lookup(fs->inodes, &ino);

	if (!ip)
		return;
	ip->stale = true;
	inval(fs, ino, 0, NULL);
}

/*
 * Another host changed block @blkno (or everything): the inodes it holds
 * turn stale; the kernel forgets their attributes and data, and, for a
 * directory block we had cached, every name it held (whatever changed
 * among them).
 */
void crp_fs_meta_changed(void *ctx, uint64_t blkno, const struct crp_mblk *cached)
{
	struct crp_fs *fs = ctx;
	const struct crp_sb *sb = &fs->m->sb;

	if (blkno == CRP_META_CHANGED_ALL) {
		GHashTableIter it;
		gpointer k, v;

		g_hash_table_iter_init(&it, fs->inodes);
		while (g_hash_table_iter_next(&it, &k, &v)) {
			struct crp_fs_inode *ip = v;

			ip->stale = true;
			if (ip->nlookup || ip->nopen)
				inval(fs, ip->d.ino, 0, NULL); /* those the kernel knows */
		}
		inval(fs, 0, 0, NULL);
		return;
	}
	if (blkno >= sb->itable_start &&
	    blkno < sb->itable_start + CRP_DIV_ROUND_UP(sb->inode_count, CRP_INODES_PER_BLOCK)) {
		uint64_t first = (blkno - sb->itable_start) * CRP_INODES_PER_BLOCK;

		for (uint64_t i = 0; i < CRP_INODES_PER_BLOCK; i++)
			stale_ino(fs, first + i);
		return;
	}
	if (!cached)
		return;
	if (cached->magic == CRP_MAGIC_EXTENT || cached->magic == CRP_MAGIC_XATTR) {
		stale_ino(fs, crp_mblk_owner(cached));
	} else if (cached->magic == CRP_MAGIC_DIR) {
		const uint8_t *p = cached->buf + CRP_HDR_SIZE;
		uint32_t used = CRP_MIN(crp_mblk_aux(cached), CRP_PAYLOAD);
		uint64_t dir = crp_mblk_owner(cached);
		struct crp_dirent d;

		stale_ino(fs, dir);
		for (uint32_t o = 0; o < used;) {
			int rl = crp_dirent_in(p + o, used - o, &d);

			if (rl <= 0)
				break;
			inval(fs, 0, dir, d.name);
			o += (uint32_t)rl;
		}
	}
}

/* Drop from the cache an inode nothing references. */
void crp_fs_inode_drop(struct crp_fs *fs, struct crp_fs_inode *ip)
{
	if (!ip->nlookup && !ip->nopen && ip->d.ino != fs->m->sb.root_ino)
		g_hash_table_remove(fs->inodes, &ip->d.ino);
}

/* Free the whole chain: the extents fit in the inode again. */
static int drop_chain(struct crp_fs *fs, struct crp_fs_inode *ip)
{
	while (ip->nchain) {
		int r = crp_meta_free(fs->m, ip->chain[ip->nchain - 1], 1, true);

		if (r)
			return r;
		ip->nchain--;
		ip->d.blocks--;
	}
	ip->d.flags &= ~(uint32_t)CRP_IF_EXT_CHAIN;
	ip->d.ext_chain = 0;
	memcpy(ip->d.ext, ip->ext, ip->next * sizeof(*ip->ext));
	ip->d.nextents = ip->next;
	return 0;
}

/* Does chain block @b hold exactly extents @e[0 .. @n) (in @tmp: scratch)? */
static bool eblk_same(struct crp_mblk *b, const struct crp_extent *e, uint32_t n,
		      uint8_t *tmp)
{
	if (crp_mblk_count(b) != n)
		return false;
	crp_extents_out(e, n, tmp);
	return memcmp(tmp, crp_mblk_payload(b), (size_t)n * CRP_EXTENT_SIZE) == 0;
}

/* Write chain block @blk with extents @e[0 .. @n) and link @next. */
static int eblk_write(struct crp_fs *fs, struct crp_fs_inode *ip, uint64_t blk,
		      const struct crp_extent *e, uint32_t n, uint64_t next)
{
	struct crp_mblk *b = crp_meta_bnew(fs->m, blk, CRP_MAGIC_EXTENT, ip->d.ino);

	if (!b)
		return -ENOMEM;
	crp_extents_out(e, n, crp_mblk_payload(b));
	crp_mblk_set_count(b, n);
	crp_mblk_set_next(b, next);
	return 0;
}

/*
 * Store the extent list in the chain, rewriting only the blocks whose
 * extents changed.  Blocks need not be full (each says its count): the
 * blocks at the head and at the tail of the chain that still hold exactly
 * the same extents are kept as they are, and the extents between them are
 * spread evenly over as few blocks as hold them, reusing the old blocks
 * there first.  An extent split in the middle of a large file thus
 * rewrites one block (two when that block was full and splits), not the
 * whole chain.
 */
static int store_chain(struct crp_fs *fs, struct crp_fs_inode *ip)
{
	const uint32_t per = CRP_EXTENTS_PER_BLOCK, n = ip->next;
	uint32_t j = 0, m = ip->nchain, p = 0, q = n, need, k_old, pcnt = 0;
	uint64_t *nc = NULL;
	uint32_t *ncc = NULL;
	uint8_t *tmp = NULL;
	struct crp_mblk *b;
	int r = 0;

	if (n <= CRP_INLINE_EXTENTS)
		return drop_chain(fs, ip);
	tmp = malloc(CRP_PAYLOAD);
	if (!tmp)
		return -ENOMEM;
	/* The head that did not change (never the last block: its link may).
	 * Blocks wholly before the first extent changed are not even read. */
	while (j + 1 < ip->nchain) {
		uint32_t cnt;

		if (ip->chain_cnt && ip->chain_cnt[j] && p + ip->chain_cnt[j] <= ip->ext_lo &&
		    p + ip->chain_cnt[j] <= n) {
			pcnt = ip->chain_cnt[j];
			p += pcnt;
			j++;
			continue;
		}
		if (crp_meta_bread_check(fs->m, ip->chain[j], CRP_MAGIC_EXTENT, eblk_ok, &ip->d.ino,
					 &b))
			break;
		cnt = crp_mblk_count(b);
		if (!cnt || p + cnt > n ||
		    (p + cnt > ip->ext_lo && !eblk_same(b, ip->ext + p, cnt, tmp)))
			break;
		p += cnt;
		pcnt = cnt;
		j++;
	}
	/* The tail that did not change. */
	while (m > j) {
		uint32_t cnt;

		if (ip->chain_cnt && ip->chain_cnt[m - 1] && q >= p + ip->chain_cnt[m - 1] &&
		    n - (q - ip->chain_cnt[m - 1]) <= ip->ext_tail) {
			q -= ip->chain_cnt[m - 1];
			m--;
			continue;
		}
		if (crp_meta_bread_check(fs->m, ip->chain[m - 1], CRP_MAGIC_EXTENT, eblk_ok,
					 &ip->d.ino, &b))
			break;
		cnt = crp_mblk_count(b);
		if (!cnt || q < p + cnt ||
		    (n - (q - cnt) > ip->ext_tail && !eblk_same(b, ip->ext + q - cnt, cnt, tmp)))
			break;
		q -= cnt;
		m--;
	}
	/* Extents [p, q) go to blocks in place of old blocks [j, m). */
	need = q > p ? (q - p + per - 1) / per : 0;
	k_old = m - j;
	nc = malloc((size_t)(ip->nchain - k_old + need) * sizeof(*nc));
	ncc = malloc((size_t)(ip->nchain - k_old + need) * sizeof(*ncc));
	if (!nc || !ncc) {
		r = -ENOMEM;
		goto out;
	}
	/* The counts, where known for the blocks kept. */
	if (ip->chain_cnt || !ip->nchain) {
		if (j)
			memcpy(ncc, ip->chain_cnt, j * sizeof(*ncc));
		for (uint32_t i = 0; i < need; i++)
			ncc[j + i] = (q - p) / need + (i < (q - p) % need);
		if (ip->nchain > m)
			memcpy(ncc + j + need, ip->chain_cnt + m, (ip->nchain - m) * sizeof(*ncc));
	} else {
		free(ncc);
		ncc = NULL;
	}
	if (j)
		memcpy(nc, ip->chain, j * sizeof(*nc));
	for (uint32_t i = 0; i < need; i++) {
		if (i < k_old) {
			nc[j + i] = ip->chain[j + i];
		} else {
			uint64_t start, goal = j + i ? nc[j + i - 1] + 1 : 0;
			uint32_t got;

			r = crp_meta_alloc(fs->m, goal, 1, &start, &got);
			if (r)
				goto out;
			nc[j + i] = start;
			ip->d.blocks++;
		}
	}
	for (uint32_t i = need; i < k_old; i++) {
		r = crp_meta_free(fs->m, ip->chain[j + i], 1, true);
		if (r)
			goto out;
		ip->d.blocks--;
	}
	if (ip->nchain > m)
		memcpy(nc + j + need, ip->chain + m, (ip->nchain - m) * sizeof(*nc));
	for (uint32_t i = 0, at = p; i < need; i++) {
		uint32_t cnt = (q - p) / need + (i < (q - p) % need);
		uint64_t next = j + i + 1 < ip->nchain - k_old + need ? nc[j + i + 1] : 0;

		r = eblk_write(fs, ip, nc[j + i], ip->ext + at, cnt, next);
		if (r)
			goto out;
		at += cnt;
	}
	/* The block before the middle links to what follows it now. */
	if (j > 0 && (need == 0 || k_old == 0)) {
		uint64_t next = j < ip->nchain - k_old + need ? nc[j] : 0;

		r = eblk_write(fs, ip, nc[j - 1], ip->ext + p - pcnt, pcnt, next);
		if (r)
			goto out;
	}
	free(ip->chain);
	free(ip->chain_cnt);
	ip->chain = nc;
	ip->chain_cnt = ncc;
	ip->nchain = ip->nchain - k_old + need;
	nc = NULL;
	ncc = NULL;
	ip->d.flags |= CRP_IF_EXT_CHAIN;
	ip->d.ext_chain = ip->chain[0];
	ip->d.nextents = n;
out:
	free(nc);
	free(ncc);
	free(tmp);
	return r;
}

int crp_fs_istore(struct crp_fs *fs, struct crp_fs_inode *ip)
{
	int r;

	if (ip->ext_dirty && !(ip->d.flags & CRP_IF_INLINE_DATA)) {
		r = store_chain(fs, ip);
		if (r)
			return r;
		ip->ext_dirty = false;
		ip->ext_lo = UINT32_MAX;
		ip->ext_tail = UINT32_MAX;
	}
	return crp_meta_iwrite(fs->m, &ip->d);
}

void crp_fs_touch(struct crp_fs_inode *ip, bool atime, bool mtime, bool ctime)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	if (atime) {
		ip->d.atime_sec = ts.tv_sec;
		ip->d.atime_nsec = (uint32_t)ts.tv_nsec;
	}
	if (mtime) {
		ip->d.mtime_sec = ts.tv_sec;
		ip->d.mtime_nsec = (uint32_t)ts.tv_nsec;
	}
	if (ctime) {
		ip->d.ctime_sec = ts.tv_sec;
		ip->d.ctime_nsec = (uint32_t)ts.tv_nsec;
	}
}

void crp_fs_attr(const struct crp_fs_inode *ip, struct crp_attr *a)
{
	memset(a, 0, sizeof(*a));
	a->ino = ip->d.ino;
	a->size = ip->d.size;
	a->blocks = ip->d.blocks * (CRP_BLOCK / 512);
	a->mode = ip->d.mode;
	a->nlink = ip->d.nlink;
	a->uid = ip->d.uid;
	a->gid = ip->d.gid;
	a->rdev = ip->d.rdev;
	a->atime = (struct timespec){ ip->d.atime_sec, ip->d.atime_nsec };
	a->mtime = (struct timespec){ ip->d.mtime_sec, ip->d.mtime_nsec };
	a->ctime = (struct timespec){ ip->d.ctime_sec, ip->d.ctime_nsec };
	a->btime = (struct timespec){ ip->d.btime_sec, ip->d.btime_nsec };
	a->generation = ip->d.generation;
}

uint8_t crp_fs_dtype(uint32_t mode)
{
	switch (mode & S_IFMT) {
	case S_IFREG: return DT_REG;
	case S_IFDIR: return DT_DIR;
	case S_IFLNK: return DT_LNK;
	case S_IFCHR: return DT_CHR;
	case S_IFBLK: return DT_BLK;
	case S_IFIFO: return DT_FIFO;
	case S_IFSOCK: return DT_SOCK;
	default: return DT_UNKNOWN;
	}
}

int crp_fs_inew(struct crp_fs *fs, struct crp_fs_inode *dp, uint32_t mode, uint64_t rdev,
		const struct crp_cred *cred, struct crp_fs_inode **out)
{
	struct crp_fs_inode *ip;
	struct crp_inode old;
	uint64_t ino;
	int r;

	*out = NULL;
	r = crp_meta_ialloc(fs->m, &ino);
	if (r)
		return r;
	ip = calloc(1, sizeof(*ip));
	if (!ip)
		return -ENOMEM;
	r = crp_meta_iread(fs->m, ino, &old);
	ip->d.generation = r == 0 ? old.generation + 1 : 1;
	ip->d.ino = ino;
	ip->d.mode = mode & ~(cred ? cred->umask & 0777 : 0);
	ip->d.rdev = rdev;
	ip->d.uid = cred ? cred->uid : 0;
	ip->d.gid = cred ? cred->gid : 0;
	if (dp->d.mode & S_ISGID) {
		ip->d.gid = dp->d.gid;
		if (S_ISDIR(mode))
			ip->d.mode |= S_ISGID;
	}
	ip->d.nlink = S_ISDIR(mode) ? 2 : 1;
	ip->d.parent = S_ISDIR(mode) ? dp->d.ino : 0;
	crp_fs_touch(ip, true, true, true);
	ip->d.btime_sec = ip->d.mtime_sec;
	ip->d.btime_nsec = ip->d.mtime_nsec;
	r = crp_meta_iwrite(fs->m, &ip->d);
	if (r) {
		free(ip);
		return r;
	}
	g_hash_table_insert(fs->inodes, &ip->d.ino, ip);
	*out = ip;
	return 0;
}

/* Free everything the inode owns and the inode itself. */
static int destroy(struct crp_fs *fs, struct crp_fs_inode *ip)
{
	bool isdir = S_ISDIR(ip->d.mode);
	int r;

	if (isdir) {
		/* Overflow blocks are freed as entries go; an empty directory
		 * has none.  Its buckets are in the extent map. */
		ip->d.dir_nbuckets = 0;
	}
	if (!(ip->d.flags & CRP_IF_INLINE_DATA)) {
		r = crp_fs_eremove(fs, ip, 0, CRP_MAX_FILE_BLOCKS, true, isdir);
		if (r)
			return r;
	}
	r = crp_fs_xattr_free(fs, ip);
	if (r)
		return r;
	ip->d.flags &= ~(uint32_t)CRP_IF_INLINE_DATA;
	r = crp_fs_istore(fs, ip); /* frees the chain */
	if (r)
		return r;
	if (ip->d.flags & CRP_IF_ORPHAN) {
		r = crp_meta_orphan_del(fs->m, ip->d.ino);
		if (r && r != -ENOENT)
			return r;
	}
	r = crp_meta_ifree(fs->m, ip->d.ino);
	if (r)
		return r;
	/* Keep the generation for the next user of this number. */
	memset(&ip->d.mode, 0, sizeof(ip->d) - offsetof(struct crp_inode, mode));
	ip->d.flags = 0;
	r = crp_meta_iwrite(fs->m, &ip->d);
	g_hash_table_remove(fs->inodes, &ip->d.ino);
	return r;
}

/*
 * An inode lost a hold: its last name (unlink, rmdir, a rename over it), a
 * handle of this host (release), or another host's opens (recovery, the
 * orphan sweep).  Free it if its link count is 0 and nothing holds it: no
 * handle of this host, and, for a regular file, no other host's open table
 * (read from the disks).  Kernel lookups hold nothing: an unlinked inode
 * that no one has open is freed at once, as a local filesystem does.  If
 * something still holds it, it goes on an orphan list; whoever drops the
 * last hold (a close, or the recovery of a dead holder) frees it then.
 * @ip is the inode as the disks hold it (crp_fs_iget under the metadata
 * lock); it may be freed from memory on return.
 */
int crp_fs_iput_maybe(struct crp_fs *fs, struct crp_fs_inode *ip)
{
	bool held;
	int r;

	if (ip->d.nlink) {
		crp_fs_inode_drop(fs, ip);
		return 0;
	}
	held = ip->nopen || crp_meta_open_count(fs->m, ip->d.ino);
	if (!held && S_ISREG(ip->d.mode) && fs->m->slot >= 0) {
		r = crp_meta_open_elsewhere(fs->m, ip->d.ino, &held);
		if (r)
			return r;
	}
	if (!held)
		return destroy(fs, ip);
	if (ip->d.flags & CRP_IF_ORPHAN)
		return 0;
	r = crp_meta_orphan_add(fs->m, ip->d.ino);
	if (r == -ENOSPC) {
		/* Its last close still frees it; only a crash of its holder
		 * would leave it for fsck. */
		crp_warn("every host's orphan list is full: unlinked inode %llu, still open, is "
			 "on none", (unsigned long long)ip->d.ino);
		return 0;
	}
	if (r)
		return r;
	ip->d.flags |= CRP_IF_ORPHAN;
	return crp_fs_istore(fs, ip);
}

/*
 * Free every orphan nothing holds any more, on every host's list: after a
 * dead host was recovered (its opens are gone), at mount, and now and then
 * (a close that could not free one, an open table that overflowed).
 */
int crp_fs_orphan_sweep(struct crp_fs *fs)
{
	int r = crp_meta_open_flush(fs->m);

	if (r)
		return r;
	for (int s = 0; s < (int)fs->m->sb.max_hosts; s++) {
		uint64_t *inos;
		uint32_t n;

		r = crp_meta_orphan_list(fs->m, s, &inos, &n);
		if (r)
			return r;
		for (uint32_t i = 0; i < n && !r; i++) {
			struct crp_fs_inode *ip;

			r = crp_fs_iget(fs, inos[i], &ip);
			if (r == -ESTALE) {
				/* Freed, its entry left behind: drop the entry. */
				r = crp_meta_orphan_del(fs->m, inos[i]);
				if (r == -ENOENT)
					r = 0;
				continue;
			}
			if (r)
				break;
			if (ip->d.nlink) {
				/* Linked again (fsck): not an orphan. */
				ip->d.flags &= ~(uint32_t)CRP_IF_ORPHAN;
				r = crp_meta_orphan_del(fs->m, ip->d.ino);
				if (!r || r == -ENOENT)
					r = crp_fs_istore(fs, ip);
				crp_fs_inode_drop(fs, ip);
			} else {
				r = crp_fs_iput_maybe(fs, ip);
			}
			if (!r)
				r = crp_meta_maybe_commit(fs->m);
		}
		g_free(inos);
		if (r)
			return r;
	}
	return 0;
}

/* ---- extent map ---- */

/* Index of the first extent ending after @lblk. */
static uint32_t efind(const struct crp_fs_inode *ip, uint64_t lblk)
{
	uint32_t lo = 0, hi = ip->next;

	while (lo < hi) {
		uint32_t mid = (lo + hi) / 2;
		const struct crp_extent *e = &ip->ext[mid];

		if (e->lblk + e->len <= lblk)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo;
}

int crp_fs_emap(const struct crp_fs_inode *ip, uint64_t lblk, uint64_t *pblk, uint64_t *len,
		uint32_t *flags)
{
	uint32_t i = efind(ip, lblk);

	if (i < ip->next && ip->ext[i].lblk <= lblk) {
		const struct crp_extent *e = &ip->ext[i];

		*pblk = e->pblk + (lblk - e->lblk);
		*len = e->len - (lblk - e->lblk);
		if (flags)
			*flags = e->flags;
		return 1;
	}
	*pblk = 0;
	*len = i < ip->next ? ip->ext[i].lblk - lblk : CRP_MAX_FILE_BLOCKS - CRP_MIN(lblk, CRP_MAX_FILE_BLOCKS);
	if (flags)
		*flags = 0;
	return 0;
}

int crp_fs_eremove(struct crp_fs *fs, struct crp_fs_inode *ip, uint64_t lblk, uint64_t n,
		   bool free_blocks, bool meta)
{
	uint64_t end = lblk + n;
	uint32_t i = efind(ip, lblk);
	int r;

	while (i < ip->next && ip->ext[i].lblk < end) {
		struct crp_extent *e = &ip->ext[i];
		uint64_t s = CRP_MAX(e->lblk, lblk), t = CRP_MIN(e->lblk + e->len, end);
		uint64_t ps = e->pblk + (s - e->lblk);

		if (free_blocks) {
			r = crp_meta_free(fs->m, ps, (uint32_t)(t - s), meta);
			if (r)
				return r;
			ip->d.blocks -= t - s;
		}
		ip->ext_dirty = true;
		if (s == e->lblk && t == e->lblk + e->len) {
			memmove(e, e + 1, (ip->next - i - 1) * sizeof(*e));
			ip->next--;
			ext_touch(ip, i, i);
		} else if (s == e->lblk) {
			e->pblk += t - s;
			e->len -= (uint32_t)(t - s);
			e->lblk = t;
			ext_touch(ip, i, i + 1);
			i++;
		} else if (t == e->lblk + e->len) {
			e->len = (uint32_t)(s - e->lblk);
			ext_touch(ip, i, i + 1);
			i++;
		} else {
			/* A hole in the middle: split. */
			struct crp_extent tail = { .lblk = t, .pblk = e->pblk + (t - e->lblk),
						   .len = (uint32_t)(e->lblk + e->len - t),
						   .flags = e->flags };

			r = ext_reserve(ip, ip->next + 1);
			if (r)
				return r;
			e = &ip->ext[i];
			e->len = (uint32_t)(s - e->lblk);
			memmove(&ip->ext[i + 2], &ip->ext[i + 1], (ip->next - i - 1) * sizeof(*e));
			ip->ext[i + 1] = tail;
			ip->next++;
			ext_touch(ip, i, i + 2);
			i += 2;
		}
	}
	return 0;
}

/*
 * A copy-on-write rewrite: [lblk, lblk+n) maps to [pblk, pblk+n) instead of
 * the blocks it mapped, which are freed.  When the range lies in one
 * extent the list is changed where it stands: the extent takes the new
 * blocks, or gives its head or tail to a neighbour that the new blocks
 * continue, or is split around them with one move of the entries after it
 * (a remove and an insert would move them twice, and a fragmented file
 * has tens of thousands).
 */
int crp_fs_ereplace(struct crp_fs *fs, struct crp_fs_inode *ip, uint64_t lblk, uint64_t pblk,
		    uint32_t n)
{
	uint32_t i = efind(ip, lblk);
	struct crp_extent *e = i < ip->next ? &ip->ext[i] : NULL;
	struct crp_extent *p, *q, mid, tail;
	uint64_t pre, post;
	int r;

	if (!n)
		return 0;
	if (!e || e->lblk > lblk || e->lblk + e->len < lblk + n || e->flags) {
		r = crp_fs_eremove(fs, ip, lblk, n, true, false);
		return r ? r : crp_fs_einsert(ip, lblk, pblk, n, 0);
	}
	/* Room for a split first: nothing may fail once the blocks are freed. */
	r = ext_reserve(ip, ip->next + 2);
	if (r)
		return r;
	e = &ip->ext[i];
	pre = lblk - e->lblk;
	post = e->lblk + e->len - (lblk + n);
	r = crp_meta_free(fs->m, e->pblk + pre, n, false);
	if (r)
		return r;
	ip->d.blocks -= n;
	ip->ext_dirty = true;
	p = i > 0 ? &ip->ext[i - 1] : NULL;
	q = i + 1 < ip->next ? &ip->ext[i + 1] : NULL;
	if (!pre && !post) {
		e->pblk = pblk;
		ext_touch(ip, i, i + 1);
		/* Rejoin neighbours that the new blocks continue. */
		if (p && !p->flags && p->lblk + p->len == lblk && p->pblk + p->len == pblk &&
		    (uint64_t)p->len + n < UINT32_MAX / 2) {
			r = crp_fs_eremove(fs, ip, lblk, n, false, false);
			return r ? r : crp_fs_einsert(ip, lblk, pblk, n, 0);
		}
		if (q && !q->flags && lblk + n == q->lblk && pblk + n == q->pblk &&
		    (uint64_t)q->len + n < UINT32_MAX / 2) {
			r = crp_fs_eremove(fs, ip, lblk, n, false, false);
			return r ? r : crp_fs_einsert(ip, lblk, pblk, n, 0);
		}
		return 0;
	}
	if (!pre && p && !p->flags && p->lblk + p->len == lblk && p->pblk + p->len == pblk &&
	    (uint64_t)p->len + n < UINT32_MAX / 2) {
		p->len += n;
		e->lblk += n;
		e->pblk += n;
		e->len -= n;
		ext_touch(ip, i - 1, i + 1);
		return 0;
	}
	if (!post && q && !q->flags && lblk + n == q->lblk && pblk + n == q->pblk &&
	    (uint64_t)q->len + n < UINT32_MAX / 2) {
		q->lblk = lblk;
		q->pblk = pblk;
		q->len += n;
		e->len -= n;
		ext_touch(ip, i, i + 2);
		return 0;
	}
	/* Split: [pre][new][post], the empty ones left out. */
	{
		uint32_t add = (pre != 0) + (post != 0); /* entries beyond the one there */

		mid = (struct crp_extent){ .lblk = lblk, .pblk = pblk, .len = n, .flags = 0 };
		tail = (struct crp_extent){ .lblk = lblk + n, .pblk = e->pblk + pre + n,
					    .len = (uint32_t)post, .flags = 0 };
		memmove(&ip->ext[i + 1 + add], &ip->ext[i + 1],
			(ip->next - i - 1) * sizeof(*e));
		ip->next += add;
		if (pre) {
			e->len = (uint32_t)pre;
			ip->ext[i + 1] = mid;
			if (post)
				ip->ext[i + 2] = tail;
		} else {
			ip->ext[i] = mid;
			ip->ext[i + 1] = tail;
		}
		ext_touch(ip, i, i + 1 + add);
	}
	return 0;
}

int crp_fs_einsert(struct crp_fs_inode *ip, uint64_t lblk, uint64_t pblk, uint32_t n,
		   uint32_t flags)
{
	uint32_t i = efind(ip, lblk);
	struct crp_extent *p = i > 0 ? &ip->ext[i - 1] : NULL;
	struct crp_extent *q = i < ip->next ? &ip->ext[i] : NULL;
	int r;

	ip->ext_dirty = true;
	if (p && p->lblk + p->len == lblk && p->pblk + p->len == pblk && p->flags == flags &&
	    (uint64_t)p->len + n < UINT32_MAX / 2) {
		p->len += n;
		if (q && lblk + n == q->lblk && pblk + n == q->pblk && q->flags == flags &&
		    (uint64_t)p->len + q->len < UINT32_MAX / 2) {
			p->len += q->len;
			memmove(q, q + 1, (ip->next - i - 1) * sizeof(*q));
			ip->next--;
		}
		ext_touch(ip, i - 1, i);
		return 0;
	}
	if (q && lblk + n == q->lblk && pblk + n == q->pblk && q->flags == flags &&
	    (uint64_t)q->len + n < UINT32_MAX / 2) {
		q->lblk = lblk;
		q->pblk = pblk;
		q->len += n;
		ext_touch(ip, i, i + 1);
		return 0;
	}
	r = ext_reserve(ip, ip->next + 1);
	if (r)
		return r;
	memmove(&ip->ext[i + 1], &ip->ext[i], (ip->next - i) * sizeof(*ip->ext));
	ip->ext[i] = (struct crp_extent){ .lblk = lblk, .pblk = pblk, .len = n, .flags = flags };
	ip->next++;
	ext_touch(ip, i, i + 1);
	return 0;
}
