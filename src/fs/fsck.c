/*
 * crp_fsck_run: check every structure against every other.
 *
 *  1. labels and superblock (crp_meta_open), journals (pending replay), the
 *     open tables of free slots (empty)
 *  2. every allocated inode: record, extents (inside the data area, no
 *     block claimed twice), extent chain, xattr block, directory buckets
 *     and entries (names point at live inodes), block counts
 *  3. every data block's checksum (a mismatch is rebuilt from parity when
 *     repairing), link counts from the directory tree
 *  4. block and inode bitmaps against what the inodes reference
 *  5. every stripe's parity
 * With repair it fixes bitmaps, free counts, link counts, block counts,
 * orphans, open tables and parity (from the data); it reports the rest.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "crpfs/err.h"
#include "crpfs/status.h"
#include "crpfs/util.h"
#include "fs_i.h"

struct ck {
	struct crp_fs fs;
	struct crp_meta *m;
	const struct crp_fsck_opts *o;
	struct crp_fsck_result *res;
	uint8_t *ref;		/* bit per block: referenced */
	uint32_t *links;	/* per inode: names found */
	uint32_t *subdirs;	/* per inode: child directories */
	uint8_t *alive;		/* bit per inode: allocated with a valid record */
	bool unfixed;
	uint64_t nentries;	/* entries seen in the directory being walked */
};

static void say(struct ck *c, bool fixed, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

static void say(struct ck *c, bool fixed, const char *fmt, ...)
{
	char msg[512];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	c->res->problems++;
	if (fixed)
		c->res->fixed++;
	else
		c->unfixed = true;
	if (c->o->say) {
		char line[600];

		snprintf(line, sizeof(line), "%s%s", msg, fixed ? " (fixed)" : "");
		c->o->say(c->o->ctx, line);
	}
}

static int mark(struct ck *c, uint64_t blk, uint64_t n, uint64_t ino, const char *what)
{
	for (uint64_t b = blk; b < blk + n; b++) {
		if (!crp_meta_block_in_data_area(c->m, b)) {
			say(c, false, "inode %llu: %s block %llu is outside the data area",
			    (unsigned long long)ino, what, (unsigned long long)b);
			return -1;
		}
		if (crp_bit_test(c->ref, b)) {
			say(c, false, "inode %llu: %s block %llu is claimed twice",
			    (unsigned long long)ino, what, (unsigned long long)b);
			return -1;
		}
		crp_bit_set(c->ref, b);
	}
	return 0;
}

static int count_entry(void *ctx, const struct crp_dirent *d)
{
	struct ck *c = ctx;

	if (d->ino >= c->m->sb.inode_count || !crp_bit_test(c->alive, d->ino)) {
		say(c, false, "directory entry '%s' points at inode %llu, which is not in use",
		    d->name, (unsigned long long)d->ino);
		return 0;
	}
	c->links[d->ino]++;
	c->nentries++;
	return 0;
}

static int mark_overflow(void *ctx, uint64_t blk)
{
	struct ck *c = ctx;

	(void)mark(c, blk, 1, 0, "directory overflow");
	return 0;
}

static void check_inode(struct ck *c, struct crp_fs_inode *ip)
{
	uint64_t nblocks = 0;
	uint8_t *buf = crp_alloc_buf(CRP_BLOCK);

	for (uint32_t i = 0; i < ip->next; i++) {
		const struct crp_extent *e = &ip->ext[i];

		if (!e->len || (i && e->lblk < ip->ext[i - 1].lblk + ip->ext[i - 1].len)) {
			say(c, false, "inode %llu: extent %u is empty or overlaps the one before",
			    (unsigned long long)ip->d.ino, i);
			continue;
		}
		if (mark(c, e->pblk, e->len, ip->d.ino, "data") < 0)
			continue;
		nblocks += e->len;
		if (S_ISDIR(ip->d.mode) || (e->flags & CRP_EXT_UNWRITTEN) || !buf)
			continue;
		for (uint32_t k = 0; k < e->len; k++) {
			int r = crp_meta_data_read(c->m, e->pblk + k, 1, buf);

			c->res->blocks_checked++;
			if (r < 0)
				say(c, false, "inode %llu: data block %llu (file block %llu) is unreadable "
					      "or fails its checksum: %s",
				    (unsigned long long)ip->d.ino, (unsigned long long)(e->pblk + k),
				    (unsigned long long)(e->lblk + k), crp_strerror(r));
		}
	}
	for (uint32_t i = 0; i < ip->nchain; i++)
		if (mark(c, ip->chain[i], 1, ip->d.ino, "extent") == 0)
			nblocks++;
	if (ip->d.xattr_blk) {
		struct crp_mblk *b;

		if (crp_meta_bread(c->m, ip->d.xattr_blk, CRP_MAGIC_XATTR, &b) < 0)
			say(c, false, "inode %llu: xattr block %llu is unreadable",
			    (unsigned long long)ip->d.ino, (unsigned long long)ip->d.xattr_blk);
		else if (mark(c, ip->d.xattr_blk, 1, ip->d.ino, "xattr") == 0)
			nblocks++;
	}
	if (S_ISDIR(ip->d.mode)) {
		int r;

		uint64_t mapped = 0;

		for (uint32_t i = 0; i < ip->next; i++)
			mapped += ip->ext[i].len;
		if (mapped != ip->d.dir_nbuckets ||
		    (ip->next && ip->ext[ip->next - 1].lblk + ip->ext[ip->next - 1].len != mapped))
			say(c, false, "directory %llu: %u buckets but its map holds %llu blocks",
			    (unsigned long long)ip->d.ino, ip->d.dir_nbuckets,
			    (unsigned long long)mapped);
		r = crp_fs_dir_overflow(&c->fs, ip, mark_overflow, c);
		if (r < 0)
			say(c, false, "directory %llu: unreadable bucket chain: %s",
			    (unsigned long long)ip->d.ino, crp_strerror(r));
	}
	if (!S_ISDIR(ip->d.mode) && nblocks != ip->d.blocks) {
		say(c, c->o->repair, "inode %llu: block count %llu, counted %llu",
		    (unsigned long long)ip->d.ino, (unsigned long long)ip->d.blocks,
		    (unsigned long long)nblocks);
		if (c->o->repair) {
			ip->d.blocks = nblocks;
			crp_fs_istore(&c->fs, ip);
		}
	}
	free(buf);
}

/* Second pass for directories, once every live inode is known. */
static void check_dir_entries(struct ck *c, struct crp_fs_inode *ip)
{
	int r;

	c->nentries = 0;
	r = crp_fs_dir_iter(&c->fs, ip, count_entry, c);
	if (r < 0) {
		say(c, false, "directory %llu: cannot read its entries: %s",
		    (unsigned long long)ip->d.ino, crp_strerror(r));
		return;
	}
	if (c->nentries != ip->d.dir_entries)
		say(c, false, "directory %llu: says %llu entries, holds %llu",
		    (unsigned long long)ip->d.ino, (unsigned long long)ip->d.dir_entries,
		    (unsigned long long)c->nentries);
}

static void fix_bitmaps(struct ck *c)
{
	struct crp_meta *m = c->m;

	for (uint32_t g = 0; g < m->sb.ag_count; g++) {
		uint64_t base = crp_meta_ag_base(m, g);
		uint32_t len = crp_meta_ag_len(m, g), nfree = 0;
		struct crp_mblk *b;
		bool changed = false;

		if (crp_meta_bread(m, base, CRP_MAGIC_BITMAP, &b) < 0) {
			say(c, false, "allocation group %u: bitmap unreadable", g);
			continue;
		}
		for (uint32_t i = 0; i < len; i++) {
			bool used = crp_bit_test(crp_mblk_payload(b), i);
			bool want = i < CRP_AG_META_BLOCKS || crp_bit_test(c->ref, base + i);

			if (used != want) {
				say(c, c->o->repair, "block %llu is %s but %s",
				    (unsigned long long)(base + i), used ? "allocated" : "free",
				    want ? "in use" : "not referenced (leaked)");
				if (c->o->repair) {
					if (want)
						crp_bit_set(crp_mblk_payload(b), i);
					else
						crp_bit_clear(crp_mblk_payload(b), i);
					changed = true;
				}
			}
			if (!crp_bit_test(crp_mblk_payload(b), i))
				nfree++;
		}
		if (crp_mblk_count(b) != nfree) {
			say(c, c->o->repair, "allocation group %u: free count %u, counted %u", g,
			    crp_mblk_count(b), nfree);
			changed = true;
		}
		if (changed && c->o->repair) {
			crp_mblk_set_count(b, nfree);
			m->ag_free[g] = nfree;
			crp_meta_dirty(m, b);
		}
	}
}

/* A free slot's open table holds nothing: its host is gone.  (A live
 * host's is its own business; a dead one's is emptied by its replay.) */
static void check_opentabs(struct ck *c)
{
	struct crp_meta *m = c->m;

	for (int s = 0; s < (int)m->sb.max_hosts; s++) {
		struct crp_slot sl;
		uint64_t *inos = NULL;
		uint32_t n = 0;
		bool ovf = false;
		int r;

		if (s != m->slot && (crp_meta_slot_read(m, s, &sl) < 0 || sl.state != CRP_SLOT_FREE))
			continue;
		r = crp_meta_open_list(m, s, &inos, &n, &ovf);
		if (r < 0)
			say(c, c->o->repair, "host slot %d: its open table is unreadable: %s", s,
			    crp_strerror(r));
		else if (n || ovf)
			say(c, c->o->repair, "host slot %d is free but its open table lists %u%s "
			    "inodes", s, n, ovf ? " or more" : "");
		if ((r < 0 || n || ovf) && c->o->repair && crp_meta_open_clear(m, s) < 0)
			c->unfixed = true;
		g_free(inos);
	}
}

static void check_stripes(struct ck *c)
{
	struct crp_meta *m = c->m;
	uint64_t sbytes = crp_geom_stripe_bytes(&m->geom);
	uint8_t *buf = NULL;

	for (uint64_t s = 0; s < m->geom.nstripes; s++) {
		int r = crp_array_verify_stripe(m->a, s);

		if (r == -CRP_EDEGRADED) {
			/* A member is out: nothing to check the parity against. */
			c->res->stripes_degraded++;
			continue;
		}
		c->res->stripes_checked++;
		if (r == 0)
			continue;
		if (r != -CRP_EPARITY) {
			say(c, false, "stripe %llu: cannot verify: %s", (unsigned long long)s,
			    crp_strerror(r));
			continue;
		}
		if (c->o->repair && !buf)
			buf = crp_alloc_buf(sbytes);
		/* A full-stripe write recomputes parity from the data. */
		if (c->o->repair && buf && crp_array_read(m->a, s * sbytes, buf, sbytes) == 0 &&
		    crp_array_write(m->a, s * sbytes, buf, sbytes) == 0 &&
		    crp_array_verify_stripe(m->a, s) == 0)
			say(c, true, "stripe %llu: parity does not match the data",
			    (unsigned long long)s);
		else
			say(c, false, "stripe %llu: parity does not match the data",
			    (unsigned long long)s);
	}
	free(buf);
}

int crp_fsck_run(const char *const *specs, int n, const struct crp_fsck_opts *opts,
		 struct crp_fsck_result *res, char *err, size_t errlen)
{
	struct crp_meta_opts mo = { .host = opts->host, .ro = !opts->repair,
				    .claim_slot = opts->repair, .replay = opts->repair };
	struct ck c = { .o = opts, .res = res };
	struct crp_meta *m = NULL;
	GPtrArray *dirs = NULL;
	int r;

	memset(res, 0, sizeof(*res));
	r = crp_meta_open(specs, n, &mo, &m, err, errlen);
	if (r < 0)
		return r;
	c.m = m;
	c.fs.m = m;
	c.fs.ro = !opts->repair;
	c.fs.inodes = g_hash_table_new_full(g_int64_hash, g_int64_equal, NULL,
					    crp_fs_inode_free_mem);
	pthread_mutex_init(&c.fs.mu, NULL);
	if (m->journal_dirty)
		say(&c, false, "a journal holds committed transactions not yet replayed "
			       "(mount, or fsck --repair, replays it)");
	if (m->stats.replayed)
		say(&c, true, "replayed %llu journal transactions",
		    (unsigned long long)m->stats.replayed);
	check_opentabs(&c);
	c.ref = calloc(m->sb.total_blocks / 8 + 1, 1);
	c.alive = calloc(m->sb.inode_count / 8 + 1, 1);
	c.links = calloc(m->sb.inode_count, sizeof(*c.links));
	c.subdirs = calloc(m->sb.inode_count, sizeof(*c.subdirs));
	dirs = g_ptr_array_new();
	if (!c.ref || !c.alive || !c.links || !c.subdirs) {
		r = -ENOMEM;
		goto out;
	}
	/* Pass 1: inodes. */
	for (uint64_t ino = 1; ino < m->sb.inode_count; ino++) {
		struct crp_fs_inode *ip;
		bool used;

		r = crp_meta_inode_allocated(m, ino, &used);
		if (r < 0) {
			say(&c, false, "inode bitmap for inode %llu is unreadable",
			    (unsigned long long)ino);
			ino += CRP_BITS_PER_BLOCK - 1 - ino % CRP_BITS_PER_BLOCK;
			continue;
		}
		if (!used)
			continue;
		res->inodes_checked++;
		r = crp_fs_iget(&c.fs, ino, &ip);
		if (r < 0) {
			say(&c, false, "inode %llu is allocated but unreadable: %s",
			    (unsigned long long)ino, crp_strerror(r));
			continue;
		}
		crp_bit_set(c.alive, ino);
		check_inode(&c, ip);
		if (S_ISDIR(ip->d.mode)) {
			g_ptr_array_add(dirs, ip);
			if (ino != m->sb.root_ino && ip->d.parent < m->sb.inode_count)
				c.subdirs[ip->d.parent]++;
		}
	}
	/* Pass 2: names. */
	for (guint i = 0; i < dirs->len; i++)
		check_dir_entries(&c, dirs->pdata[i]);
	/* Pass 3: link counts. */
	for (uint64_t ino = 1; ino < m->sb.inode_count; ino++) {
		struct crp_fs_inode *ip;
		uint32_t want;

		if (!crp_bit_test(c.alive, ino) ||
		    !(ip = g_hash_table_lookup(c.fs.inodes, &ino)))
			continue;
		if (S_ISDIR(ip->d.mode))
			want = 2 + c.subdirs[ino];
		else
			want = c.links[ino];
		if (!c.links[ino] && ino != m->sb.root_ino) {
			say(&c, opts->repair, "inode %llu has no name (an orphan)",
			    (unsigned long long)ino);
			if (opts->repair) {
				ip->d.nlink = 0;
				ip->nlookup = ip->nopen = 0;
				if (crp_fs_iput_maybe(&c.fs, ip) < 0)
					c.unfixed = true;
				crp_meta_maybe_commit(m);
			}
			continue;
		}
		if (ip->d.nlink != want) {
			say(&c, opts->repair, "inode %llu: link count %u, counted %u",
			    (unsigned long long)ino, ip->d.nlink, want);
			if (opts->repair) {
				ip->d.nlink = want;
				crp_fs_istore(&c.fs, ip);
			}
		}
	}
	/* Pass 4: bitmaps (after the orphans are gone, when repairing). */
	if (opts->repair) {
		r = crp_meta_commit(m);
		if (r < 0)
			goto out;
		/* Re-mark from the inodes that remain. */
		memset(c.ref, 0, m->sb.total_blocks / 8 + 1);
		{
			GHashTableIter it;
			gpointer k, v;

			g_hash_table_iter_init(&it, c.fs.inodes);
			while (g_hash_table_iter_next(&it, &k, &v)) {
				struct crp_fs_inode *ip = v;

				for (uint32_t i = 0; i < ip->next; i++)
					for (uint64_t b = 0; b < ip->ext[i].len; b++)
						crp_bit_set(c.ref, ip->ext[i].pblk + b);
				for (uint32_t i = 0; i < ip->nchain; i++)
					crp_bit_set(c.ref, ip->chain[i]);
				if (ip->d.xattr_blk)
					crp_bit_set(c.ref, ip->d.xattr_blk);
				if (S_ISDIR(ip->d.mode))
					crp_fs_dir_overflow(&c.fs, ip, mark_overflow, &c);
			}
		}
	}
	fix_bitmaps(&c);
	if (opts->repair) {
		r = crp_meta_commit(m);
		if (r < 0)
			goto out;
	}
	/* Pass 5: parity. */
	check_stripes(&c);
	r = !res->problems ? CRP_FSCK_OK : c.unfixed ? CRP_FSCK_UNCORRECTED : CRP_FSCK_CORRECTED;
out:
	if (dirs)
		g_ptr_array_free(dirs, TRUE);
	g_hash_table_destroy(c.fs.inodes);
	pthread_mutex_destroy(&c.fs.mu);
	free(c.ref);
	free(c.alive);
	free(c.links);
	free(c.subdirs);
	{
		int e = crp_meta_close(m);

		if (r >= 0 && e < 0)
			r = e;
	}
	if (r < 0)
		snprintf(err, errlen, "fsck could not finish: %s", crp_strerror(r));
	return r;
}
