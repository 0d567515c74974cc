/*
 * Extended attributes: one block per inode (CRP_MAGIC_XATTR, owner = the
 * inode), entries packed from the start of the payload (header aux = bytes
 * used, count = entries), full names with their namespace prefix.
 * Namespaces: user., trusted., security., and system.posix_acl_access /
 * system.posix_acl_default (stored as the opaque values the kernel gives).
 * All attributes of an inode fit in one block (4032 bytes), as on ext4.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/xattr.h>

#include "crpfs/err.h"
#include "crpfs/util.h"
#include "fs_i.h"

static int check_xname(const char *name)
{
	size_t n = strlen(name);

	if (!n)
		return -EINVAL;
	if (n > 255)
		return -ERANGE;
	if (!strncmp(name, "user.", 5) || !strncmp(name, "trusted.", 8) ||
	    !strncmp(name, "security.", 9) || !strcmp(name, "system.posix_acl_access") ||
	    !strcmp(name, "system.posix_acl_default"))
		return n > 5 ? 0 : -EINVAL;
	return -EOPNOTSUPP;
}

/* The structure of an xattr block of inode @ctx: its owner, and entries
 * that fill exactly the bytes it says it uses. */
static bool xblk_ok(const void *blk, void *ctx)
{
	const uint8_t *b = blk;
	uint32_t used = crp_get_le32(b + 52), n = 0, off;

	if (crp_get_le64(b + 32) != *(const uint64_t *)ctx || used > CRP_PAYLOAD)
		return false;
	for (off = 0; off < used; n++) {
		struct crp_xattr x;
		int rl = crp_xattr_in(b + CRP_HDR_SIZE + off, used - off, &x);

		if (rl <= 0)
			return false;
		off += (uint32_t)rl;
	}
	return n == crp_get_le32(b + 48);
}

static int xblk(struct crp_fs *fs, struct crp_fs_inode *ip, struct crp_mblk **out)
{
	int r;

	*out = NULL;
	if (!ip->d.xattr_blk)
		return 0;
	r = crp_meta_bread_check(fs->m, ip->d.xattr_blk, CRP_MAGIC_XATTR, xblk_ok, &ip->d.ino, out);
	if (r)
		return r;
	if (crp_mblk_owner(*out) != ip->d.ino || crp_mblk_aux(*out) > CRP_PAYLOAD)
		return -CRP_ECORRUPT;
	return 0;
}

/* Find @name in @b: its offset and decoded entry; -ENODATA if absent. */
static int xfind(struct crp_mblk *b, const char *name, uint32_t *off, struct crp_xattr *x)
{
	uint32_t used = crp_mblk_aux(b), nl = (uint32_t)strlen(name);

	for (uint32_t o = 0; o < used;) {
		int rl = crp_xattr_in(crp_mblk_payload(b) + o, used - o, x);

		if (rl < 0)
			return rl;
		if (x->namelen == nl && !memcmp(x->name, name, nl)) {
			*off = o;
			return 0;
		}
		o += (uint32_t)rl;
	}
	return -ENODATA;
}

static void xdelete(struct crp_mblk *b, uint32_t off, const struct crp_xattr *x)
{
	uint32_t used = crp_mblk_aux(b), rl = crp_xattr_reclen(x->namelen, x->valuelen);
	uint8_t *p = crp_mblk_payload(b);

	memmove(p + off, p + off + rl, used - off - rl);
	memset(p + used - rl, 0, rl);
	crp_mblk_set_aux(b, used - rl);
	crp_mblk_set_count(b, crp_mblk_count(b) - 1);
}

int crp_fs_xattr_write(struct crp_fs *fs, struct crp_fs_inode *ip, const char *name,
		       const void *value, size_t size, int flags)
{
	struct crp_mblk *b;
	struct crp_xattr x;
	uint32_t off, nl = (uint32_t)strlen(name), need;
	int r, found;

	need = crp_xattr_reclen(nl, (uint32_t)CRP_MIN(size, (size_t)UINT16_MAX));
	if (size > CRP_PAYLOAD || need > CRP_PAYLOAD)
		return -E2BIG;
	r = xblk(fs, ip, &b);
	if (r)
		return r;
	found = b ? xfind(b, name, &off, &x) : -ENODATA;
	if (found < 0 && found != -ENODATA)
		return found;
	if ((flags & XATTR_CREATE) && found == 0)
		return -EEXIST;
	if ((flags & XATTR_REPLACE) && found != 0)
		return -ENODATA;
	if (b && crp_mblk_aux(b) - (found == 0 ? crp_xattr_reclen(x.namelen, x.valuelen) : 0) +
			 need >
		 CRP_PAYLOAD)
		return -ENOSPC;
	if (!b) {
		uint64_t start;
		uint32_t got;

		if (crp_meta_free_blocks(fs->m) < 8)
			return -ENOSPC;
		r = crp_meta_alloc(fs->m, 0, 1, &start, &got);
		if (r)
			return r;
		b = crp_meta_bnew(fs->m, start, CRP_MAGIC_XATTR, ip->d.ino);
		if (!b)
			return -ENOMEM;
		ip->d.xattr_blk = start;
		ip->d.blocks++;
	}
	if (found == 0)
		xdelete(b, off, &x);
	off = crp_mblk_aux(b);
	off += crp_xattr_out(name, nl, value, (uint32_t)size, crp_mblk_payload(b) + off);
	crp_mblk_set_aux(b, off);
	crp_mblk_set_count(b, crp_mblk_count(b) + 1);
	crp_meta_dirty(fs->m, b);
	crp_fs_touch(ip, false, false, true);
	return crp_fs_istore(fs, ip);
}

ssize_t crp_fs_xattr_read(struct crp_fs *fs, struct crp_fs_inode *ip, const char *name,
			  void *value, size_t size)
{
	struct crp_mblk *b;
	struct crp_xattr x;
	uint32_t off;
	int r = xblk(fs, ip, &b);

	if (!r)
		r = b ? xfind(b, name, &off, &x) : -ENODATA;
	if (r)
		return r;
	if (size && size < x.valuelen)
		return -ERANGE;
	if (size)
		memcpy(value, x.value, x.valuelen);
	return x.valuelen;
}

int crp_fs_xattr_delete(struct crp_fs *fs, struct crp_fs_inode *ip, const char *name)
{
	struct crp_mblk *b;
	struct crp_xattr x;
	uint32_t off;
	int r = xblk(fs, ip, &b);

	if (!r)
		r = b ? xfind(b, name, &off, &x) : -ENODATA;
	if (r)
		return r;
	xdelete(b, off, &x);
	crp_meta_dirty(fs->m, b);
	if (!crp_mblk_count(b)) {
		r = crp_fs_xattr_free(fs, ip);
		if (r)
			return r;
	}
	crp_fs_touch(ip, false, false, true);
	return crp_fs_istore(fs, ip);
}

/* Names are checked here; the system.posix_acl_* values also set the mode
 * (acl.c). */
static int do_set(struct crp_fs *fs, uint64_t ino, const char *name, const void *value,
		  size_t size, int flags)
{
	struct crp_fs_inode *ip;
	int r = check_xname(name);

	if (r)
		return r;
	if (fs->ro)
		return -EROFS;
	r = crp_fs_iget(fs, ino, &ip);
	if (r)
		return r;
	if (crp_fs_acl_name(name))
		return crp_fs_acl_set(fs, ip, name, value, size, flags);
	return crp_fs_xattr_write(fs, ip, name, value, size, flags);
}

int crp_fs_setxattr(struct crp_fs *fs, uint64_t ino, const char *name, const void *value,
		    size_t size, int flags)
{
	uint64_t s;
	int r;

	s = crp_fs_op_begin(fs);
	r = do_set(fs, ino, name, value, size, flags);
	return crp_fs_op_end(fs, s, r);
}

ssize_t crp_fs_getxattr(struct crp_fs *fs, uint64_t ino, const char *name, void *value,
			size_t size)
{
	struct crp_fs_inode *ip;
	uint64_t s;
	ssize_t n;
	int r = check_xname(name);

	if (r)
		return r == -EOPNOTSUPP ? -ENODATA : r;
	for (bool locked = false;; locked = true) {
		s = crp_fs_rop_begin(fs, locked);
		r = crp_fs_iget(fs, ino, &ip);
		n = r ? r : crp_fs_xattr_read(fs, ip, name, value, size);
		if (!crp_fs_rop_valid(fs, s, n < 0 ? (int)n : 0))
			continue;
		r = crp_fs_op_end(fs, s, n < 0 ? (int)n : 0);
		return r < 0 ? r : n;
	}
}

static ssize_t listxattr_pass(struct crp_fs *fs, uint64_t ino, char *list, size_t size)
{
	struct crp_fs_inode *ip;
	struct crp_mblk *b = NULL;
	ssize_t n = 0;
	int r = crp_fs_iget(fs, ino, &ip);

	if (!r)
		r = xblk(fs, ip, &b);
	if (r) {
		n = r;
		goto out;
	}
	if (b) {
		uint32_t used = crp_mblk_aux(b);

		for (uint32_t o = 0; o < used;) {
			struct crp_xattr x;
			int rl = crp_xattr_in(crp_mblk_payload(b) + o, used - o, &x);

			if (rl < 0) {
				n = rl;
				goto out;
			}
			if (size) {
				if ((size_t)n + x.namelen + 1 > size) {
					n = -ERANGE;
					goto out;
				}
				memcpy(list + n, x.name, x.namelen);
				list[n + x.namelen] = 0;
			}
			n += x.namelen + 1;
			o += (uint32_t)rl;
		}
	}
out:
	return n;
}

ssize_t crp_fs_listxattr(struct crp_fs *fs, uint64_t ino, char *list, size_t size)
{
	for (bool locked = false;; locked = true) {
		uint64_t s = crp_fs_rop_begin(fs, locked);
		ssize_t n = listxattr_pass(fs, ino, list, size);
		int r;

		if (!crp_fs_rop_valid(fs, s, n < 0 ? (int)n : 0))
			continue;
		r = crp_fs_op_end(fs, s, n < 0 ? (int)n : 0);
		return r < 0 ? r : n;
	}
}

int crp_fs_removexattr(struct crp_fs *fs, uint64_t ino, const char *name)
{
	struct crp_fs_inode *ip;
	uint64_t s;
	int r = check_xname(name);

	if (r)
		return r == -EOPNOTSUPP ? -ENODATA : r;
	s = crp_fs_op_begin(fs);
	r = fs->ro ? -EROFS : crp_fs_iget(fs, ino, &ip);
	if (!r)
		r = crp_fs_xattr_delete(fs, ip, name);
	return crp_fs_op_end(fs, s, r);
}

int crp_fs_xattr_free(struct crp_fs *fs, struct crp_fs_inode *ip)
{
	int r;

	if (!ip->d.xattr_blk)
		return 0;
	r = crp_meta_free(fs->m, ip->d.xattr_blk, 1, true);
	if (r)
		return r;
	ip->d.xattr_blk = 0;
	ip->d.blocks--;
	return 0;
}
