/*
 * POSIX access control lists, as Linux keeps them: the xattrs
 * system.posix_acl_access and system.posix_acl_default hold the kernel's
 * form of an ACL,
 *
 *   +0 le32 version (2), then entries of 8 bytes: le16 tag, le16 perm, le32 id
 *
 * in the order USER_OBJ, USER..., GROUP_OBJ, GROUP..., MASK, OTHER.  The
 * kernel checks permissions with them (default_permissions and
 * FUSE_CAP_POSIX_ACL), but for a FUSE filesystem it leaves the mode alone:
 * the core keeps mode and ACL in step itself, as the kernel's posix_acl
 * helpers do for ext4:
 *
 * - Setting an access ACL sets the mode's permission bits: owner from
 *   USER_OBJ, group from MASK (GROUP_OBJ without a mask), other from OTHER.
 *   An ACL of the three base entries only says no more than the mode: it
 *   is kept as the mode, and no xattr is stored.
 * - chmod rewrites the access ACL's base entries from the new mode
 *   (USER_OBJ, MASK or else GROUP_OBJ, OTHER); named entries stay.
 * - A new inode (not a symlink) in a directory with a default ACL gets the
 *   default ACL masked by the requested mode (POSIX.1e: the umask is not
 *   applied) as its mode and, when that says more than the mode, as its
 *   access ACL; a new directory also inherits the default ACL itself.
 *   Without a default ACL the umask applies (crp_fs_inew).
 *
 * Everything runs inside the caller's operation (fs->mu held, one
 * metadata transaction).
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/xattr.h>

#include "crpfs/err.h"
#include "crpfs/ondisk.h"
#include "fs_i.h"

#define ACL_VERSION 2
#define ACL_HDR 4
#define ACL_ENT 8
#define ACL_UNDEFINED_ID 0xffffffffu

enum {
	TAG_USER_OBJ = 0x01,
	TAG_USER = 0x02,
	TAG_GROUP_OBJ = 0x04,
	TAG_GROUP = 0x08,
	TAG_MASK = 0x10,
	TAG_OTHER = 0x20,
};

static uint16_t ent_tag(const uint8_t *acl, uint32_t i)
{
	return crp_get_le16(acl + ACL_HDR + ACL_ENT * i);
}

static uint16_t ent_perm(const uint8_t *acl, uint32_t i)
{
	return crp_get_le16(acl + ACL_HDR + ACL_ENT * i + 2);
}

static void ent_set_perm(uint8_t *acl, uint32_t i, uint16_t perm)
{
	crp_put_le16(acl + ACL_HDR + ACL_ENT * i + 2, perm);
}

static uint32_t ent_id(const uint8_t *acl, uint32_t i)
{
	return crp_get_le32(acl + ACL_HDR + ACL_ENT * i + 4);
}

bool crp_fs_acl_name(const char *name)
{
	return !strcmp(name, CRP_ACL_ACCESS) || !strcmp(name, CRP_ACL_DEFAULT);
}

int crp_fs_acl_check(const void *value, size_t size)
{
	const uint8_t *acl = value;
	uint32_t n, state = TAG_USER_OBJ;
	bool named = false;

	if (size < ACL_HDR || (size - ACL_HDR) % ACL_ENT || crp_get_le32(acl) != ACL_VERSION)
		return -EINVAL;
	n = (uint32_t)((size - ACL_HDR) / ACL_ENT);
	if (!n)
		return 0;
	/* state: the tag expected next (TAG_USER: users or GROUP_OBJ; TAG_GROUP:
	 * groups, MASK or OTHER; TAG_OTHER: OTHER; 0: nothing more). */
	for (uint32_t i = 0; i < n; i++) {
		uint16_t tag = ent_tag(acl, i);

		if (ent_perm(acl, i) & ~7u)
			return -EINVAL;
		switch (tag) {
		case TAG_USER_OBJ:
			if (state != TAG_USER_OBJ)
				return -EINVAL;
			state = TAG_USER;
			break;
		case TAG_USER:
		case TAG_GROUP:
			if (state != (tag == TAG_USER ? TAG_USER : TAG_GROUP) ||
			    ent_id(acl, i) == ACL_UNDEFINED_ID)
				return -EINVAL;
			/* One entry per user or group. */
			for (uint32_t j = 0; j < i; j++)
				if (ent_tag(acl, j) == tag && ent_id(acl, j) == ent_id(acl, i))
					return -EINVAL;
			named = true;
			break;
		case TAG_GROUP_OBJ:
			if (state != TAG_USER)
				return -EINVAL;
			state = TAG_GROUP;
			break;
		case TAG_MASK:
			if (state != TAG_GROUP)
				return -EINVAL;
			state = TAG_OTHER;
			break;
		case TAG_OTHER:
			/* Named entries need a mask. */
			if (state != TAG_OTHER && (state != TAG_GROUP || named))
				return -EINVAL;
			state = 0;
			break;
		default:
			return -EINVAL;
		}
	}
	return state == 0 ? (int)n : -EINVAL;
}

/* The permission bits an ACL of @n valid entries gives the mode. */
static uint32_t acl_mode(const uint8_t *acl, uint32_t n)
{
	uint32_t mode = 0;
	bool mask = false;

	for (uint32_t i = 0; i < n; i++) {
		uint32_t p = ent_perm(acl, i);

		switch (ent_tag(acl, i)) {
		case TAG_USER_OBJ:
			mode |= p << 6;
			break;
		case TAG_GROUP_OBJ:
			if (!mask)
				mode |= p << 3;
			break;
		case TAG_MASK:
			mode = (mode & ~070u) | p << 3;
			mask = true;
			break;
		case TAG_OTHER:
			mode |= p;
			break;
		}
	}
	return mode;
}

/* Base entries from the permission bits @mode (chmod). */
static void acl_chmod(uint8_t *acl, uint32_t n, uint32_t mode)
{
	uint32_t group = UINT32_MAX;

	for (uint32_t i = 0; i < n; i++) {
		switch (ent_tag(acl, i)) {
		case TAG_USER_OBJ:
			ent_set_perm(acl, i, (mode >> 6) & 7);
			break;
		case TAG_GROUP_OBJ:
			if (group == UINT32_MAX)
				group = i;
			break;
		case TAG_MASK:
			group = i;
			break;
		case TAG_OTHER:
			ent_set_perm(acl, i, mode & 7);
			break;
		}
	}
	if (group != UINT32_MAX)
		ent_set_perm(acl, group, (mode >> 3) & 7);
}

/* Base entries masked by the permission bits @*mode of a new inode, and
 * *mode masked by them (posix_acl_create_masq).  True when the result
 * says more than the mode (named entries or a mask). */
static bool acl_create_masq(uint8_t *acl, uint32_t n, uint32_t *mode)
{
	uint32_t m = *mode, group = UINT32_MAX, res = 0;
	bool extended = false;

	for (uint32_t i = 0; i < n; i++) {
		uint16_t p = ent_perm(acl, i);

		switch (ent_tag(acl, i)) {
		case TAG_USER_OBJ:
			p &= (m >> 6) & 7;
			ent_set_perm(acl, i, p);
			res |= (uint32_t)p << 6;
			break;
		case TAG_USER:
		case TAG_GROUP:
			extended = true;
			break;
		case TAG_GROUP_OBJ:
			if (group == UINT32_MAX)
				group = i;
			break;
		case TAG_MASK:
			group = i;
			extended = true;
			break;
		case TAG_OTHER:
			p &= m & 7;
			ent_set_perm(acl, i, p);
			res |= p;
			break;
		}
	}
	if (group != UINT32_MAX) {
		uint16_t p = ent_perm(acl, group) & ((m >> 3) & 7);

		ent_set_perm(acl, group, p);
		res |= (uint32_t)p << 3;
	}
	*mode = res;
	return extended;
}

/* The ACL @name of @ip, checked, in a new buffer (*out, free it): its
 * number of entries; -ENODATA if there is none. */
static int acl_load(struct crp_fs *fs, struct crp_fs_inode *ip, const char *name, uint8_t **out,
		    size_t *size)
{
	uint8_t *acl = NULL;
	ssize_t n;
	int r;

	*out = NULL;
	n = crp_fs_xattr_read(fs, ip, name, NULL, 0);
	if (n < 0)
		return (int)n;
	acl = malloc(n ? (size_t)n : 1);
	if (!acl)
		return -ENOMEM;
	n = crp_fs_xattr_read(fs, ip, name, acl, (size_t)n);
	if (n < 0) {
		r = (int)n;
		goto out;
	}
	r = crp_fs_acl_check(acl, (size_t)n);
	if (r < 0) {
		r = -CRP_ECORRUPT; /* stored only after the same check */
		goto out;
	}
	*out = acl;
	*size = (size_t)n;
	acl = NULL;
out:
	free(acl);
	return r;
}

int crp_fs_acl_set(struct crp_fs *fs, struct crp_fs_inode *ip, const char *name,
		   const void *value, size_t size, int flags)
{
	bool access = !strcmp(name, CRP_ACL_ACCESS);
	ssize_t have;
	int n = crp_fs_acl_check(value, size), r;

	if (n < 0)
		return n;
	if (!access && !S_ISDIR(ip->d.mode))
		return -EACCES;
	if (flags & (XATTR_CREATE | XATTR_REPLACE)) {
		have = crp_fs_xattr_read(fs, ip, name, NULL, 0);
		if (have < 0 && have != -ENODATA)
			return (int)have;
		if ((flags & XATTR_CREATE) && have >= 0)
			return -EEXIST;
		if ((flags & XATTR_REPLACE) && have < 0)
			return -ENODATA;
	}
	if (access && n)
		ip->d.mode = (ip->d.mode & ~0777u) | acl_mode(value, (uint32_t)n);
	/* No entries: no ACL.  An access ACL of the base entries: the mode. */
	if (n == 0 || (access && n == 3)) {
		r = crp_fs_xattr_delete(fs, ip, name);
		if (r != -ENODATA)
			return r;
		crp_fs_touch(ip, false, false, true);
		return crp_fs_istore(fs, ip);
	}
	return crp_fs_xattr_write(fs, ip, name, value, size, 0);
}

int crp_fs_acl_chmod(struct crp_fs *fs, struct crp_fs_inode *ip)
{
	uint8_t *acl;
	size_t size;
	int r = acl_load(fs, ip, CRP_ACL_ACCESS, &acl, &size);

	if (r == -ENODATA)
		return 0;
	if (r < 0)
		return r;
	acl_chmod(acl, (uint32_t)r, ip->d.mode & 0777);
	r = crp_fs_xattr_write(fs, ip, CRP_ACL_ACCESS, acl, size, 0);
	free(acl);
	return r;
}

int crp_fs_acl_inherit(struct crp_fs *fs, struct crp_fs_inode *dp, struct crp_fs_inode *ip,
		       uint32_t mode)
{
	uint8_t *acl = NULL;
	size_t size;
	uint32_t m = mode & 0777, n;
	bool extended;
	int r;

	if (S_ISLNK(ip->d.mode))
		return 0;
	r = acl_load(fs, dp, CRP_ACL_DEFAULT, &acl, &size);
	if (r == -ENODATA)
		return 0;	/* the umask applies, as crp_fs_inew did */
	if (r < 0)
		return r;
	n = (uint32_t)r;
	if (n == 0) {
		/* A stored ACL has entries (crp_fs_acl_set). */
		r = -CRP_ECORRUPT;
		goto out;
	}
	if (S_ISDIR(ip->d.mode)) {
		r = crp_fs_xattr_write(fs, ip, CRP_ACL_DEFAULT, acl, size, 0);
		if (r)
			goto out;
	}
	extended = acl_create_masq(acl, n, &m);
	ip->d.mode = (ip->d.mode & ~0777u) | m;
	r = extended ? crp_fs_xattr_write(fs, ip, CRP_ACL_ACCESS, acl, size, 0) : 0;
out:
	free(acl);
	return r;
}
