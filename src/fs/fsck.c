/*
 * crp_fsck_run: check every structure against every other.
 *
 *  0. labels and superblock (crp_meta_open), the shared state block, every
 *     host slot's journal header, orphan list and open table, every
 *     checksum table block
 *  1. every record of every inode-table block that holds an inode in use
 *     (a record in use that the bitmap calls free is found too): extents (inside the data area, no
 *     block claimed twice), extent chain, xattr block, directory buckets
 *     and overflow chains, every data block's checksum, block counts
 *  2. every directory's entries: names point at live inodes (a name keeps
 *     an inode whose record is in use though the bitmap lost its bit),
 *     entry counts, parents
 *  3. names for the nameless (/lost+found), link counts
 *  4. block and inode bitmaps against what the inodes reference (a bitmap
 *     beyond repair does not stop fsck: the array is opened with
 *     crp_meta_opts.salvage, the inodes in use come from their records,
 *     and --repair writes the bitmap anew from the references)
 *  5. every stripe's parity
 *
 * Every read goes through the metadata layer, which rebuilds from parity
 * any block that fails its checks (an all-zero one included) before
 * calling it damaged, so fsck works on the rebuilt blocks; each rebuild
 * is reported (m->damage).  fsck gives up only what parity cannot rebuild,
 * and says what: an inode whose record cannot be read (its names are
 * removed, the inode freed), a directory bucket that cannot be read (the
 * bucket is rewritten empty; the inodes it named get new names in
 * /lost+found).  An inode in use with a valid record but no name is never
 * freed: it goes to /lost+found as "#INO" (a directory as well).  Only an
 * inode whose link count is 0 -- an orphan whose holder is gone -- is.
 *
 * With repair it fixes all of that, bitmaps, free counts, link counts,
 * block counts, entry counts, orphans, open tables and parity (from the
 * data, after every block that matters was read and rebuilt); it reports
 * the rest (a data block nothing rebuilds is reported, never replaced).
 */
#include <dirent.h>
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
	uint32_t *subdirs;	/* per directory: names of directories in it */
	uint8_t *alive;		/* bit per inode: in use with a valid record */
	uint8_t *bad;		/* bit per inode: in use, unreadable even after
				   reconstruction from parity */
	GArray *dirs;		/* uint64_t: the live directories */
	bool unfixed;
	/* The directory whose entries are being counted (pass 2). */
	struct crp_fs_inode *walking;
	uint64_t nentries;
	GPtrArray *drop;	/* names to remove from it (char *) */
	GHashTable *reported;	/* blocks whose damage was reported (once each) */
	uint8_t *ibad;		/* per inode bitmap block: beyond repair (the inodes
				   in use come from their records; pass 4 rebuilds it) */
	struct crp_fs_inode *lf; /* /lost+found, once found or made */
};

static void say(struct ck *c, bool fixed, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void note(struct ck *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void emit(struct ck *c, const char *msg, const char *suffix)
{
	if (c->o->say) {
		char line[800];

		snprintf(line, sizeof(line), "%s%s", msg, suffix);
		c->o->say(c->o->ctx, line);
	}
}

static void say(struct ck *c, bool fixed, const char *fmt, ...)
{
	char msg[640];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	c->res->problems++;
	if (fixed)
		c->res->fixed++;
	else
		c->unfixed = true;
	emit(c, msg, fixed ? " (fixed)" : "");
}

/* Told, not counted: what a repair did along the way. */
static void note(struct ck *c, const char *fmt, ...)
{
	char msg[640];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	emit(c, msg, "");
}

static const char *spec_of(struct ck *c, int member)
{
	return member >= 0 ? crp_member_spec(crp_array_member(c->m->a, member)) : "?";
}

/* Report the blocks the metadata layer found failing their checks since
 * the last call, rebuilt from parity or not. */
static void report_damage(struct ck *c)
{
	GArray *dmg = c->m->damage;

	for (guint i = 0; dmg && i < dmg->len; i++) {
		const struct crp_meta_damage *d = &g_array_index(dmg, struct crp_meta_damage, i);

		/* Read again (blocks read past the cache: journal headers, open
		 * tables, the shared block), found again: said already. */
		if (!g_hash_table_add(c->reported, GSIZE_TO_POINTER(d->blkno)))
			continue;
		if (d->rebuilt) {
			say(c, d->repaired,
			    "%s (block %llu): %s; rebuilt from parity without member %s%s%s%s",
			    d->what, (unsigned long long)d->blkno, d->why, spec_of(c, d->member),
			    d->member2 >= 0 ? " and member " : "",
			    d->member2 >= 0 ? spec_of(c, d->member2) : "",
			    d->repaired ? " and written back"
			    : c->m->ro ? " (read-only: not written back; --repair writes it)"
				       : "; writing it back failed");
		} else if (c->o->repair) {
			/* What depends on it is repaired (and counted) where
			 * it is found. */
			note(c, "%s (block %llu on member %s): %s; no reconstruction from parity "
				"passes its checks",
			     d->what, (unsigned long long)d->blkno, spec_of(c, d->member), d->why);
		} else {
			say(c, false,
			    "%s (block %llu on member %s): %s; no reconstruction from parity passes "
			    "its checks",
			    d->what, (unsigned long long)d->blkno, spec_of(c, d->member), d->why);
		}
	}
	if (dmg)
		g_array_set_size(dmg, 0);
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

/* ---- pass 0: the fixed regions ---- */

static uint64_t orphan_blkno(const struct crp_meta *m, int slot)
{
	return m->sb.journal_start + (uint64_t)slot * m->sb.journal_blocks + 1;
}

static void check_slots(struct ck *c)
{
	struct crp_meta *m = c->m;
	bool repair = c->o->repair;

	for (int s = 0; s < (int)m->sb.max_hosts; s++) {
		struct crp_slot sl;
		uint64_t *inos = NULL;
		uint32_t n = 0;
		bool ovf = false, pending, chain, is_free;
		int r;

		if (s == m->slot)
			continue; /* ours: read and written at claim */
		is_free = crp_meta_slot_read(m, s, &sl) == 0 && sl.state == CRP_SLOT_FREE;
		r = crp_meta_journal_pending(m, s, &pending, &chain);
		if (r < 0) {
			bool fix = repair && is_free;

			say(c, fix,
			    "journal header of host slot %d cannot be read even after reconstruction "
			    "from parity: %s%s",
			    s, crp_strerror(r), fix ? "; written anew (the slot has no host)" : "");
			if (fix && crp_meta_journal_reset(m, s) < 0)
				c->unfixed = true;
		}
		r = crp_meta_orphan_list(m, s, &inos, &n);
		g_free(inos);
		if (r < 0) {
			say(c, repair,
			    "orphan list of host slot %d cannot be read even after reconstruction "
			    "from parity: %s%s",
			    s, crp_strerror(r),
			    repair ? "; written empty (an inode it held has no name and a link "
				     "count of 0, and is freed below)"
				   : "");
			if (repair && !crp_meta_bnew(m, orphan_blkno(m, s), CRP_MAGIC_ORPHAN,
						     (uint64_t)s))
				c->unfixed = true;
		}
		/* A free slot's open table holds nothing: its host is gone.
		 * (A live host's is its own business; a dead one's is emptied
		 * by its recovery.) */
		inos = NULL;
		r = crp_meta_open_list(m, s, &inos, &n, &ovf);
		g_free(inos);
		if (r < 0)
			say(c, repair && is_free,
			    "host slot %d: its open table cannot be read even after reconstruction "
			    "from parity: %s",
			    s, crp_strerror(r));
		else if (is_free && (n || ovf))
			say(c, repair, "host slot %d is free but its open table lists %u%s inodes", s,
			    n, ovf ? " or more" : "");
		if ((r < 0 || n || ovf) && is_free && repair && crp_meta_open_clear(m, s) < 0)
			c->unfixed = true;
	}
}

static void check_csum_tables(struct ck *c)
{
	struct crp_meta *m = c->m;

	for (uint32_t g = 0; g < m->sb.ag_count; g++) {
		uint64_t base = crp_meta_ag_base(m, g);
		uint32_t len = crp_meta_ag_len(m, g);

		for (uint32_t k = 0; k < CRP_AG_CSUM_BLOCKS; k++) {
			uint32_t first = k * CRP_CSUMS_PER_BLOCK, i = CRP_MAX(first, CRP_AG_META_BLOCKS);
			uint64_t sum;
			int r;

			if (i >= len)
				break;
			r = crp_meta_csum_get(m, base + i, &sum);
			if (r >= 0)
				continue;
			say(c, c->o->repair,
			    "checksum table block %u of group %u (block %llu) cannot be read even "
			    "after reconstruction from parity: %s%s",
			    k, g, (unsigned long long)(base + 1 + k), crp_strerror(r),
			    c->o->repair ? "; written empty: data blocks it covered are no longer "
					   "checked"
					 : "");
			if (c->o->repair && !crp_meta_bnew(m, base + 1 + k, CRP_MAGIC_CSUM, g))
				c->unfixed = true;
		}
	}
}

static void check_fixed(struct ck *c)
{
	int r = crp_meta_shared_check(c->m);

	if (r < 0)
		say(c, false,
		    "shared state block (block 1) cannot be read even after reconstruction from "
		    "parity: %s; hosts cannot mount",
		    crp_strerror(r));
	check_slots(c);
	check_csum_tables(c);
	if (c->o->repair && crp_meta_commit(c->m) < 0)
		c->unfixed = true;
}

/* ---- pass 1: inodes ---- */

static void salvage_said(void *ctx, uint32_t bucket, uint64_t blk, bool head, int err)
{
	struct ck *c = ctx;
	bool repair = c->o->repair;

	say(c, repair,
	    "directory %llu: %s block %llu of bucket %u cannot be read even after reconstruction "
	    "from parity: %s%s",
	    (unsigned long long)c->walking->d.ino, head ? "first" : "overflow",
	    (unsigned long long)blk, bucket, crp_strerror(err),
	    !repair ? ""
	    : head	? "; the bucket is rewritten empty, and the inodes it named go to /lost+found"
			: "; the chain is cut there, and the inodes named in the rest go to "
			  "/lost+found");
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
				say(c, false,
				    "inode %llu: data block %llu (file block %llu) cannot be read, or "
				    "fails its checksum even after reconstruction from parity: %s; "
				    "reading it gives an error",
				    (unsigned long long)ip->d.ino, (unsigned long long)(e->pblk + k),
				    (unsigned long long)(e->lblk + k), crp_strerror(r));
		}
	}
	for (uint32_t i = 0; i < ip->nchain; i++)
		if (mark(c, ip->chain[i], 1, ip->d.ino, "extent") == 0)
			nblocks++;
	if (ip->d.xattr_blk) {
		char list[16];
		ssize_t r = crp_fs_xattr_read(&c->fs, ip, "user.", list, 0);

		if (r < 0 && r != -ENODATA) {
			say(c, c->o->repair,
			    "inode %llu: xattr block %llu cannot be read even after reconstruction "
			    "from parity: %s%s",
			    (unsigned long long)ip->d.ino, (unsigned long long)ip->d.xattr_blk,
			    crp_strerror((int)r),
			    c->o->repair ? "; dropped: the inode's extended attributes and ACLs "
					   "are lost"
					 : "");
			if (c->o->repair) {
				ip->d.xattr_blk = 0;
				if (crp_fs_istore(&c->fs, ip) < 0)
					c->unfixed = true;
			}
		} else if (mark(c, ip->d.xattr_blk, 1, ip->d.ino, "xattr") == 0) {
			nblocks++;
		}
	}
	if (S_ISDIR(ip->d.mode)) {
		uint64_t mapped = 0;
		int r;

		for (uint32_t i = 0; i < ip->next; i++)
			mapped += ip->ext[i].len;
		if (mapped != ip->d.dir_nbuckets ||
		    (ip->next && ip->ext[ip->next - 1].lblk + ip->ext[ip->next - 1].len != mapped))
			say(c, false, "directory %llu: %u buckets but its map holds %llu blocks",
			    (unsigned long long)ip->d.ino, ip->d.dir_nbuckets,
			    (unsigned long long)mapped);
		c->walking = ip;
		r = crp_fs_dir_salvage(&c->fs, ip, c->o->repair, salvage_said, c);
		if (r < 0 && r != -CRP_ECORRUPT)
			say(c, false, "directory %llu: cannot check its buckets: %s",
			    (unsigned long long)ip->d.ino, crp_strerror(r));
		r = crp_fs_dir_overflow(&c->fs, ip, mark_overflow, c);
		if (r < 0 && c->o->repair)
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

static const char *type_name(uint32_t mode)
{
	switch (mode & S_IFMT) {
	case S_IFREG: return "file";
	case S_IFDIR: return "directory";
	case S_IFLNK: return "symbolic link";
	default: return "special file";
	}
}

static bool ibitmap_bad(const struct ck *c, uint64_t ino)
{
	return c->ibad[ino / CRP_BITS_PER_BLOCK];
}

/* Inode @ino: is it in use, readable, and what is wrong with it.  With its
 * inode bitmap block beyond repair, its record alone says. */
static int check_one(struct ck *c, uint64_t ino)
{
	struct crp_meta *m = c->m;
	bool repair = c->o->repair, used;
	struct crp_fs_inode *ip;
	struct crp_inode rec;
	int r, rr;

	rr = crp_meta_iread(m, ino, &rec); /* the block is checked and rebuilt here */
	if (ibitmap_bad(c, ino)) {
		if (rr != 0 || !rec.mode)
			return 0;
		used = true;
	} else {
		r = crp_meta_inode_allocated(m, ino, &used);
		if (r < 0)
			return r;
	}
	if (!used) {
		if (rr == 0 && rec.mode) {
			say(c, repair,
			    "inode %llu (%s, %u links) has a record in use, but the inode bitmap "
			    "calls it free%s",
			    (unsigned long long)ino, type_name(rec.mode), rec.nlink,
			    repair ? "; marked in use" : "");
			if (repair && crp_meta_imark(m, ino) < 0)
				c->unfixed = true;
		} else if (rr < 0) {
			struct crp_inode fresh = { .ino = ino, .generation = 1 };

			say(c, repair,
			    "inode %llu is free, but its record cannot be read even after "
			    "reconstruction from parity: %s%s",
			    (unsigned long long)ino, crp_strerror(rr),
			    repair ? "; written as a free record" : "");
			if (repair && crp_meta_iwrite(m, &fresh) < 0)
				c->unfixed = true;
			return 0;
		} else {
			return 0;
		}
	}
	c->res->inodes_checked++;
	r = crp_fs_iget(&c->fs, ino, &ip);
	if (r == -ESTALE) {
		say(c, repair, "inode %llu is marked in use, but its record says it is free%s",
		    (unsigned long long)ino, repair ? "; marked free" : "");
		if (repair && crp_meta_ifree(m, ino) < 0)
			c->unfixed = true;
		return 0;
	}
	if (r < 0) {
		say(c, repair,
		    "inode %llu is in use but cannot be read even after reconstruction from "
		    "parity: %s%s",
		    (unsigned long long)ino, crp_strerror(r),
		    repair ? "; its names are removed and it is freed (what it held is lost)" : "");
		crp_bit_set(c->bad, ino);
		return 0;
	}
	crp_bit_set(c->alive, ino);
	check_inode(c, ip);
	if (S_ISDIR(ip->d.mode))
		g_array_append_val(c->dirs, ino);
	return 0;
}

/* ---- pass 2: names ---- */

/*
 * Entry @d of the directory being walked names an inode that pass 1 did
 * not find in use.  If its record is in use all the same (a stale inode
 * bitmap lost its bit), the name is right and the bitmap wrong: the inode
 * is marked in use (with repair), checked, and counted alive.  0 then,
 * else -ENOENT.
 */
static int revive(struct ck *c, const struct crp_dirent *d)
{
	struct crp_fs_inode *ip;
	struct crp_inode rec;

	if (crp_meta_iread(c->m, d->ino, &rec) != 0 || !rec.mode)
		return -ENOENT;
	say(c, c->o->repair,
	    "inode %llu (%s, %u links) is named '%s' in directory %llu and its record is in use, "
	    "but the inode bitmap calls it free%s",
	    (unsigned long long)d->ino, type_name(rec.mode), rec.nlink, d->name,
	    (unsigned long long)c->walking->d.ino, c->o->repair ? "; marked in use" : "");
	if (c->o->repair && !ibitmap_bad(c, d->ino) && crp_meta_imark(c->m, d->ino) < 0)
		c->unfixed = true;
	if (crp_fs_iget(&c->fs, d->ino, &ip) < 0)
		return -ENOENT;
	crp_bit_set(c->alive, d->ino);
	c->res->inodes_checked++;
	{
		struct crp_fs_inode *walking = c->walking;

		check_inode(c, ip);
		c->walking = walking;
	}
	if (S_ISDIR(ip->d.mode))
		g_array_append_val(c->dirs, d->ino);
	return 0;
}

static int count_entry(void *ctx, const struct crp_dirent *d)
{
	struct ck *c = ctx;
	uint64_t dir = c->walking->d.ino;
	struct crp_fs_inode *ip;

	if (d->ino < c->m->sb.inode_count && d->ino != c->m->sb.root_ino &&
	    !crp_bit_test(c->alive, d->ino) && !crp_bit_test(c->bad, d->ino))
		(void)revive(c, d); /* alive now if its record is in use */
	if (d->ino >= c->m->sb.inode_count || !crp_bit_test(c->alive, d->ino) ||
	    d->ino == c->m->sb.root_ino) {
		bool bad = d->ino < c->m->sb.inode_count && crp_bit_test(c->bad, d->ino);

		say(c, c->o->repair, "directory %llu: entry '%s' points at inode %llu, which %s%s",
		    (unsigned long long)dir, d->name, (unsigned long long)d->ino,
		    bad ? "cannot be read even after reconstruction from parity"
		    : d->ino == c->m->sb.root_ino ? "is the root"
						  : "is not in use",
		    c->o->repair ? "; the entry is removed" : "");
		if (c->o->repair)
			g_ptr_array_add(c->drop, g_strdup(d->name));
		return 0;
	}
	c->links[d->ino]++;
	c->nentries++;
	ip = g_hash_table_lookup(c->fs.inodes, &d->ino);
	if (ip && S_ISDIR(ip->d.mode)) {
		c->subdirs[dir]++;
		if (ip->d.parent != dir && c->links[d->ino] == 1) {
			say(c, c->o->repair,
			    "directory %llu is named '%s' in directory %llu, but says its parent is "
			    "%llu%s",
			    (unsigned long long)d->ino, d->name, (unsigned long long)dir,
			    (unsigned long long)ip->d.parent, c->o->repair ? "; parent set" : "");
			if (c->o->repair) {
				ip->d.parent = dir;
				if (crp_fs_istore(&c->fs, ip) < 0)
					c->unfixed = true;
			}
		}
	}
	return 0;
}

static void check_dir_entries(struct ck *c, struct crp_fs_inode *ip)
{
	int r;

	c->walking = ip;
	c->nentries = 0;
	g_ptr_array_set_size(c->drop, 0);
	/* (Buckets that cannot be read were reported by pass 1; with repair
	 * they were rewritten.) */
	r = crp_fs_dir_iter_all(&c->fs, ip, count_entry, c);
	if (r < 0 && c->o->repair) {
		say(c, false, "directory %llu: cannot read its entries: %s",
		    (unsigned long long)ip->d.ino, crp_strerror(r));
		return;
	}
	for (guint i = 0; i < c->drop->len; i++) {
		r = crp_fs_dir_remove(&c->fs, ip, c->drop->pdata[i]);
		if (r < 0) {
			c->unfixed = true;
			note(c, "directory %llu: cannot remove entry '%s': %s",
			     (unsigned long long)ip->d.ino, (char *)c->drop->pdata[i], crp_strerror(r));
		}
	}
	if (c->drop->len && crp_fs_istore(&c->fs, ip) < 0)
		c->unfixed = true;
	if (c->nentries != ip->d.dir_entries) {
		say(c, c->o->repair, "directory %llu: says %llu entries, holds %llu",
		    (unsigned long long)ip->d.ino, (unsigned long long)ip->d.dir_entries,
		    (unsigned long long)c->nentries);
		if (c->o->repair) {
			ip->d.dir_entries = c->nentries;
			if (crp_fs_istore(&c->fs, ip) < 0)
				c->unfixed = true;
		}
	}
}

/* ---- pass 3: the nameless, link counts ---- */

/* /lost+found, found in the root or made there (mode 0700). */
static int lost_found(struct ck *c, struct crp_fs_inode **out)
{
	static const struct crp_cred root_cred = { 0, 0, 0 };
	struct crp_fs *fs = &c->fs;
	struct crp_fs_inode *root, *lf;
	uint64_t ino;
	int r;

	if (c->lf) {
		*out = c->lf;
		return 0;
	}
	r = crp_fs_iget(fs, c->m->sb.root_ino, &root);
	if (r < 0)
		return r;
	r = crp_fs_dir_find(fs, root, "lost+found", &ino, NULL);
	if (r == 0) {
		if (ino >= c->m->sb.inode_count || !crp_bit_test(c->alive, ino) ||
		    crp_fs_iget(fs, ino, &lf) < 0 || !S_ISDIR(lf->d.mode))
			return -ENOTDIR;
		c->lf = *out = lf;
		return 0;
	}
	if (r != -ENOENT)
		return r;
	r = crp_fs_inew(fs, root, S_IFDIR | 0700, 0, &root_cred, &lf);
	if (r < 0)
		return r;
	r = crp_fs_dir_add(fs, root, "lost+found", lf->d.ino, DT_DIR);
	if (r < 0)
		return r;
	root->d.nlink++;
	r = crp_fs_istore(fs, root);
	if (!r)
		r = crp_fs_istore(fs, lf);
	if (r < 0)
		return r;
	crp_bit_set(c->alive, lf->d.ino);
	c->links[lf->d.ino] = 1;
	c->subdirs[root->d.ino]++;
	note(c, "made /lost+found (inode %llu)", (unsigned long long)lf->d.ino);
	c->lf = *out = lf;
	return 0;
}

/* Give nameless inode @ip the name "#INO" in /lost+found. */
static int to_lost_found(struct ck *c, struct crp_fs_inode *ip)
{
	struct crp_fs_inode *lf = NULL;
	char name[32];
	int r = lost_found(c, &lf);

	if (r < 0)
		return r;
	snprintf(name, sizeof(name), "#%llu", (unsigned long long)ip->d.ino);
	r = crp_fs_dir_add(&c->fs, lf, name, ip->d.ino, crp_fs_dtype(ip->d.mode));
	if (r < 0)
		return r;
	c->links[ip->d.ino]++;
	if (S_ISDIR(ip->d.mode)) {
		ip->d.parent = lf->d.ino;
		c->subdirs[lf->d.ino]++;
		r = crp_fs_istore(&c->fs, ip);
		if (r < 0)
			return r;
	}
	return crp_fs_istore(&c->fs, lf);
}

/* Inode @ino is in use but cannot be read: free its number (its names are
 * gone already; the blocks it held are found leaked by pass 4). */
static void free_unreadable(struct ck *c, uint64_t ino)
{
	struct crp_inode old, fresh = { .ino = ino, .generation = 1 };

	if (crp_meta_iread(c->m, ino, &old) == 0)
		fresh.generation = old.generation + 1;
	if (crp_meta_iwrite(c->m, &fresh) < 0 ||
	    (!ibitmap_bad(c, ino) && crp_meta_ifree(c->m, ino) < 0))
		c->unfixed = true;
}

static void check_links(struct ck *c)
{
	struct crp_meta *m = c->m;
	bool repair = c->o->repair;

	if (repair)
		for (uint64_t ino = 1; ino < m->sb.inode_count; ino++)
			if (crp_bit_test(c->bad, ino))
				free_unreadable(c, ino);
	/* The nameless: to /lost+found, or freed if their link count is 0. */
	for (uint64_t ino = 1; ino < m->sb.inode_count; ino++) {
		struct crp_fs_inode *ip;
		int r;

		if (!crp_bit_test(c->alive, ino) || ino == m->sb.root_ino || c->links[ino] ||
		    !(ip = g_hash_table_lookup(c->fs.inodes, &ino)))
			continue;
		if (!ip->d.nlink) {
			say(c, repair,
			    "inode %llu has no name and a link count of 0 (an orphan whose holder is "
			    "gone)%s",
			    (unsigned long long)ino, repair ? "; freed" : "");
			if (repair) {
				ip->nlookup = ip->nopen = 0;
				crp_bit_clear(c->alive, ino);
				if (crp_fs_iput_maybe(&c->fs, ip) < 0)
					c->unfixed = true;
				crp_meta_maybe_commit(m);
			}
			continue;
		}
		say(c, repair, "%s %llu (%llu bytes, %u links) has no name%s%llu",
		    type_name(ip->d.mode), (unsigned long long)ino, (unsigned long long)ip->d.size,
		    ip->d.nlink,
		    repair ? "; named /lost+found/#" : "; --repair names it /lost+found/#",
		    (unsigned long long)ino);
		if (repair) {
			r = to_lost_found(c, ip);
			if (r < 0) {
				c->unfixed = true;
				note(c, "cannot give inode %llu a name in /lost+found: %s",
				     (unsigned long long)ino, crp_strerror(r));
			}
			crp_meta_maybe_commit(m);
		}
	}
	/* Link counts: names for the others, "." and the subdirectories'
	 * ".." for directories. */
	for (uint64_t ino = 1; ino < m->sb.inode_count; ino++) {
		struct crp_fs_inode *ip;
		uint32_t want;

		if (!crp_bit_test(c->alive, ino) || !(ip = g_hash_table_lookup(c->fs.inodes, &ino)))
			continue;
		if (!c->links[ino] && ino != m->sb.root_ino)
			continue; /* said above */
		want = S_ISDIR(ip->d.mode) ? 2 + c->subdirs[ino] : c->links[ino];
		if (ip->d.nlink != want) {
			say(c, repair, "inode %llu: link count %u, counted %u",
			    (unsigned long long)ino, ip->d.nlink, want);
			if (repair) {
				ip->d.nlink = want;
				crp_fs_istore(&c->fs, ip);
			}
		}
	}
}

/* ---- pass 4: bitmaps ---- */

static void fix_bitmaps(struct ck *c)
{
	struct crp_meta *m = c->m;

	for (uint32_t g = 0; g < m->sb.ag_count; g++) {
		uint64_t base = crp_meta_ag_base(m, g);
		uint32_t len = crp_meta_ag_len(m, g), nfree = 0;
		struct crp_mblk *b;
		bool changed = false;

		int r = crp_meta_bread(m, base, CRP_MAGIC_BITMAP, &b);

		if (r < 0) {
			say(c, c->o->repair,
			    "block bitmap of group %u (block %llu) cannot be read even after "
			    "reconstruction from parity: %s%s",
			    g, (unsigned long long)base, crp_strerror(r),
			    c->o->repair ? "; rebuilt from the blocks the inodes reference"
					 : "; nothing is allocated from the group (--repair rebuilds "
					   "it from the blocks the inodes reference)");
			if (!c->o->repair)
				continue;
			b = crp_meta_bnew(m, base, CRP_MAGIC_BITMAP, g);
			if (!b) {
				c->unfixed = true;
				continue;
			}
			crp_put_le64(b->buf + 56, len);
			for (uint32_t i = 0; i < len; i++)
				if (i < CRP_AG_META_BLOCKS || crp_bit_test(c->ref, base + i))
					crp_bit_set(crp_mblk_payload(b), i);
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
	for (uint32_t i = 0; i < m->sb.ibitmap_blocks; i++) {
		uint64_t first = (uint64_t)i * CRP_BITS_PER_BLOCK;
		uint32_t len = (uint32_t)CRP_MIN((uint64_t)CRP_BITS_PER_BLOCK,
						 m->sb.inode_count - first), nfree = 0;
		struct crp_mblk *b;

		if (crp_meta_bread(m, m->sb.ibitmap_start + i, CRP_MAGIC_IBITMAP, &b) < 0) {
			/* Said in pass 1. */
			if (!c->o->repair) {
				c->unfixed = true;
				continue;
			}
			b = crp_meta_bnew(m, m->sb.ibitmap_start + i, CRP_MAGIC_IBITMAP, i);
			if (!b) {
				c->unfixed = true;
				continue;
			}
			crp_put_le64(b->buf + 56, len);
			if (i == 0)
				crp_bit_set(crp_mblk_payload(b), 0); /* never used */
			for (uint32_t k = 0; k < len; k++)
				if (crp_bit_test(c->alive, first + k))
					crp_bit_set(crp_mblk_payload(b), k);
			crp_mblk_set_count(b, len); /* counted below */
		}
		for (uint32_t k = 0; k < len; k++)
			if (!crp_bit_test(crp_mblk_payload(b), k))
				nfree++;
		if (crp_mblk_count(b) != nfree) {
			say(c, c->o->repair, "inode bitmap block %u: free count %u, counted %u", i,
			    crp_mblk_count(b), nfree);
			if (c->o->repair) {
				crp_mblk_set_count(b, nfree);
				m->ig_free[i] = nfree;
				crp_meta_dirty(m, b);
			}
		}
	}
}

/* After repairs: what the inodes that remain reference. */
static void remark(struct ck *c)
{
	GHashTableIter it;
	gpointer k, v;

	memset(c->ref, 0, c->m->sb.total_blocks / 8 + 1);
	g_hash_table_iter_init(&it, c->fs.inodes);
	while (g_hash_table_iter_next(&it, &k, &v)) {
		struct crp_fs_inode *ip = v;

		for (uint32_t i = 0; i < ip->next; i++)
			for (uint64_t b = 0; b < ip->ext[i].len; b++)
				crp_bit_set(c->ref, ip->ext[i].pblk + b);
		for (uint32_t i = 0; i < ip->nchain; i++)
			crp_bit_set(c->ref, ip->chain[i]);
		if (ip->d.xattr_blk)
			crp_bit_set(c->ref, ip->d.xattr_blk);
		if (S_ISDIR(ip->d.mode))
			crp_fs_dir_overflow(&c->fs, ip, mark_overflow, c);
	}
}

/* ---- pass 5: parity ---- */

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
		/* A full-stripe write recomputes parity from the data.  Every
		 * block that matters was read (and rebuilt) by now. */
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
				    .claim_slot = opts->repair, .replay = opts->repair,
				    .salvage = true };
	struct ck c = { .o = opts, .res = res };
	struct crp_meta *m = NULL;
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
	if (m->journal_dirty || m->journal_chain)
		say(&c, false, "a journal holds committed transactions not yet replayed "
			       "(mount, or fsck --repair, replays it)");
	if (m->stats.replayed)
		say(&c, true, "replayed %llu journal transactions",
		    (unsigned long long)m->stats.replayed);
	c.ref = calloc(m->sb.total_blocks / 8 + 1, 1);
	c.alive = calloc(m->sb.inode_count / 8 + 1, 1);
	c.bad = calloc(m->sb.inode_count / 8 + 1, 1);
	c.links = calloc(m->sb.inode_count, sizeof(*c.links));
	c.subdirs = calloc(m->sb.inode_count, sizeof(*c.subdirs));
	c.dirs = g_array_new(FALSE, FALSE, sizeof(uint64_t));
	c.drop = g_ptr_array_new_with_free_func(g_free);
	c.reported = g_hash_table_new(g_direct_hash, g_direct_equal);
	c.ibad = calloc(m->sb.ibitmap_blocks + 1, 1);
	if (!c.ref || !c.alive || !c.bad || !c.links || !c.subdirs || !c.ibad) {
		r = -ENOMEM;
		goto out;
	}
	report_damage(&c); /* found at open: superblock, bitmaps, journals */
	/* Pass 0: the fixed regions. */
	check_fixed(&c);
	report_damage(&c);
	/* Pass 1: every inode-table block that holds an inode in use, every
	 * record in it (a free one included: a record in use whose bit was
	 * lost is found too).  Blocks of free inodes only are not read. */
	for (uint64_t first = 0; first < m->sb.inode_count; first += CRP_INODES_PER_BLOCK) {
		uint64_t end = CRP_MIN(first + CRP_INODES_PER_BLOCK, m->sb.inode_count);
		bool any = false, used;

		r = 0;
		for (uint64_t ino = CRP_MAX(first, 1); ino < end && !any; ino++) {
			if (c.ibad[ino / CRP_BITS_PER_BLOCK]) {
				any = true; /* every record is read */
				break;
			}
			r = crp_meta_inode_allocated(m, ino, &used);
			if (r < 0) {
				c.ibad[ino / CRP_BITS_PER_BLOCK] = 1;
				say(&c, opts->repair,
				    "inode bitmap block %llu cannot be read even after reconstruction "
				    "from parity: %s; the inodes in use are found from their records%s",
				    (unsigned long long)(ino / CRP_BITS_PER_BLOCK), crp_strerror(r),
				    opts->repair ? ", and the block is rebuilt from them" : "");
				any = true;
				break;
			}
			any = used;
		}
		for (uint64_t ino = CRP_MAX(first, 1); ino < end && any; ino++)
			(void)check_one(&c, ino);
		report_damage(&c);
		if (opts->repair)
			crp_meta_maybe_commit(m);
	}
	/* Pass 2: names. */
	for (guint i = 0; i < c.dirs->len; i++) {
		uint64_t ino = g_array_index(c.dirs, uint64_t, i);
		struct crp_fs_inode *ip = g_hash_table_lookup(c.fs.inodes, &ino);

		if (ip)
			check_dir_entries(&c, ip);
		report_damage(&c);
	}
	/* Pass 3: the nameless, link counts. */
	check_links(&c);
	report_damage(&c);
	/* Pass 4: bitmaps (after the orphans are gone, when repairing). */
	if (opts->repair) {
		r = crp_meta_commit(m);
		if (r < 0)
			goto out;
		remark(&c);
	}
	fix_bitmaps(&c);
	if (opts->repair) {
		r = crp_meta_commit(m);
		if (r < 0)
			goto out;
	}
	report_damage(&c);
	/* Pass 5: parity. */
	check_stripes(&c);
	report_damage(&c);
	r = !res->problems ? CRP_FSCK_OK : c.unfixed ? CRP_FSCK_UNCORRECTED : CRP_FSCK_CORRECTED;
out:
	if (c.dirs)
		g_array_free(c.dirs, TRUE);
	if (c.drop)
		g_ptr_array_free(c.drop, TRUE);
	if (c.reported)
		g_hash_table_destroy(c.reported);
	g_hash_table_destroy(c.fs.inodes);
	pthread_mutex_destroy(&c.fs.mu);
	free(c.ref);
	free(c.alive);
	free(c.bad);
	free(c.ibad);
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
