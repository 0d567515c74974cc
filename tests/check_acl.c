/*
 * POSIX ACLs in the filesystem core, driven without FUSE on file: members
 * in a temporary directory: an access ACL sets the mode (and one that says
 * no more than the mode is not stored), malformed ACLs are refused, chmod
 * rewrites the ACL's base entries, a directory's default ACL replaces the
 * umask for new inodes and is inherited, and getxattr returns what is
 * stored.
 */
#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/xattr.h>

#include "crpfs/err.h"
#include "crpfs/fs.h"
#include "crpfs/meta.h"
#include "crpfs/ondisk.h"
#include "crpfs/status.h"
#include "fixture/fsfix.h"

#define NM 3
#define MEMBER_SIZE (160ull << 20)

#define ACCESS "system.posix_acl_access"
#define DEFAULT "system.posix_acl_default"

/* The kernel's ACL xattr form: tags and the id of the base entries. */
enum { U_OBJ = 0x01, USER = 0x02, G_OBJ = 0x04, GROUP = 0x08, MASK = 0x10, OTHER = 0x20 };
#define NOID 0xffffffffu

struct ent {
	uint16_t tag, perm;
	uint32_t id;
};

static struct crp_fsfix fx;
static const struct crp_cred root_cred = { 0, 0, 022 };

static void rm_tree(void)
{
	if (crp_fsfix_remove(&fx) != 0)
		fprintf(stderr, "cannot remove %s\n", fx.dir);
}

static void format(void)
{
	const struct crp_fsfix_params p = { .name = "acl", .members = NM,
					    .member_size = MEMBER_SIZE, .level = 5,
					    .chunk = 65536, .max_hosts = 2, .label = "acl" };

	crp_fsfix_format(&fx, &p);
}

static struct crp_fs *mount_fs(void)
{
	struct crp_fs_opts o = { .host = "testhost" };
	struct crp_fs *fs;
	char err[256];
	int r = crp_fs_mount(fx.specs, NM, &o, &fs, err, sizeof(err));

	ck_assert_msg(r == 0, "mount: %s (%d)", err, r);
	return fs;
}

static void say_msg(void *ctx, const char *msg)
{
	(void)ctx;
	fprintf(stderr, "fsck: %s\n", msg);
}

static void fsck_clean(void)
{
	struct crp_fsck_opts o = { .repair = false, .host = "fsckhost", .say = say_msg };
	struct crp_fsck_result res;
	char err[256];

	ck_assert_msg(crp_fsck_run(fx.specs, NM, &o, &res, err, sizeof(err)) == CRP_FSCK_OK, "fsck: %s",
		      err);
}

/* An ACL in xattr form from @n entries; its size. */
static size_t acl_of(uint8_t *buf, const struct ent *e, size_t n)
{
	crp_put_le32(buf, 2);
	for (size_t i = 0; i < n; i++) {
		crp_put_le16(buf + 4 + 8 * i, e[i].tag);
		crp_put_le16(buf + 4 + 8 * i + 2, e[i].perm);
		crp_put_le32(buf + 4 + 8 * i + 4, e[i].id);
	}
	return 4 + 8 * n;
}

static int set_acl(struct crp_fs *fs, uint64_t ino, const char *name, const struct ent *e,
		   size_t n)
{
	uint8_t buf[256];

	return crp_fs_setxattr(fs, ino, name, buf, acl_of(buf, e, n), 0);
}

/* The ACL @name of @ino is exactly @e. */
static void want_acl(struct crp_fs *fs, uint64_t ino, const char *name, const struct ent *e,
		     size_t n)
{
	uint8_t want[256], got[256];
	size_t len = acl_of(want, e, n);

	ck_assert_int_eq(crp_fs_getxattr(fs, ino, name, got, sizeof(got)), (ssize_t)len);
	ck_assert_int_eq(memcmp(got, want, len), 0);
}

static void want_no_acl(struct crp_fs *fs, uint64_t ino, const char *name)
{
	uint8_t got[256];

	ck_assert_int_eq(crp_fs_getxattr(fs, ino, name, got, sizeof(got)), -ENODATA);
}

static uint32_t mode_of(struct crp_fs *fs, uint64_t ino)
{
	struct crp_attr a;

	ck_assert_int_eq(crp_fs_getattr(fs, ino, &a), 0);
	return a.mode;
}

static uint64_t new_file(struct crp_fs *fs, uint64_t parent, const char *name, uint32_t mode,
			 const struct crp_cred *cred)
{
	struct crp_attr a;
	uint64_t fh;

	ck_assert_int_eq(crp_fs_create(fs, parent, name, mode, O_RDWR, cred, &a, &fh), 0);
	ck_assert_int_eq(crp_fs_release(fs, a.ino, fh), 0);
	crp_fs_forget(fs, a.ino, 1);
	return a.ino;
}

static uint64_t new_dir(struct crp_fs *fs, uint64_t parent, const char *name, uint32_t mode,
			const struct crp_cred *cred)
{
	struct crp_attr a;

	ck_assert_int_eq(crp_fs_mkdir(fs, parent, name, mode, cred, &a), 0);
	crp_fs_forget(fs, a.ino, 1);
	return a.ino;
}

static void chmod_ino(struct crp_fs *fs, uint64_t ino, uint32_t mode)
{
	struct crp_attr in = { .mode = mode }, out;

	ck_assert_int_eq(crp_fs_setattr(fs, ino, &in, CRP_SET_MODE, &root_cred, &out), 0);
	ck_assert_uint_eq(out.mode & 07777, mode);
}

/* Set ctime far in the past, so that a change shows. */
static void old_ctime(struct crp_fs *fs, uint64_t ino)
{
	struct crp_attr in = { .ctime = { 1000, 0 } }, out;

	ck_assert_int_eq(crp_fs_setattr(fs, ino, &in, CRP_SET_CTIME, &root_cred, &out), 0);
	ck_assert_int_eq(out.ctime.tv_sec, 1000);
}

static int64_t ctime_of(struct crp_fs *fs, uint64_t ino)
{
	struct crp_attr a;

	ck_assert_int_eq(crp_fs_getattr(fs, ino, &a), 0);
	return a.ctime.tv_sec;
}

START_TEST(access_acl_sets_mode)
{
	static const struct ent named[] = { { U_OBJ, 6, NOID }, { USER, 4, 65534 },
					    { G_OBJ, 4, NOID }, { MASK, 4, NOID },
					    { OTHER, 0, NOID } };
	static const struct ent mask_rw[] = { { U_OBJ, 6, NOID }, { USER, 4, 65534 },
					      { G_OBJ, 4, NOID }, { MASK, 6, NOID },
					      { OTHER, 0, NOID } };
	static const struct ent minimal[] = { { U_OBJ, 6, NOID }, { G_OBJ, 4, NOID },
					      { OTHER, 4, NOID } };
	struct crp_fs *fs;
	uint64_t f, g;
	uint8_t buf[64];

	format();
	fs = mount_fs();
	f = new_file(fs, CRP_ROOT_INO, "f", 0600, &root_cred);
	ck_assert_uint_eq(mode_of(fs, f), S_IFREG | 0600);

	/* A named entry: group bits from the mask; ctime moves. */
	old_ctime(fs, f);
	ck_assert_int_eq(set_acl(fs, f, ACCESS, named, 5), 0);
	ck_assert_uint_eq(mode_of(fs, f), S_IFREG | 0640);
	ck_assert_int_gt(ctime_of(fs, f), 1000);
	want_acl(fs, f, ACCESS, named, 5);
	ck_assert_int_eq(set_acl(fs, f, ACCESS, mask_rw, 5), 0);
	ck_assert_uint_eq(mode_of(fs, f), S_IFREG | 0660);
	want_acl(fs, f, ACCESS, mask_rw, 5);
	ck_assert_int_eq(crp_fs_setxattr(fs, f, ACCESS, buf, acl_of(buf, named, 5), XATTR_CREATE),
			 -EEXIST);

	/* The three base entries are the mode: it changes, no ACL stays. */
	old_ctime(fs, f);
	ck_assert_int_eq(set_acl(fs, f, ACCESS, minimal, 3), 0);
	ck_assert_uint_eq(mode_of(fs, f), S_IFREG | 0644);
	ck_assert_int_gt(ctime_of(fs, f), 1000);
	want_no_acl(fs, f, ACCESS);
	ck_assert_int_eq(crp_fs_listxattr(fs, f, NULL, 0), 0);

	/* ... also on a file that never had one (cp -a does that). */
	g = new_file(fs, CRP_ROOT_INO, "g", 0600, &root_cred);
	old_ctime(fs, g);
	ck_assert_int_eq(set_acl(fs, g, ACCESS, minimal, 3), 0);
	ck_assert_uint_eq(mode_of(fs, g), S_IFREG | 0644);
	ck_assert_int_gt(ctime_of(fs, g), 1000);
	want_no_acl(fs, g, ACCESS);

	/* No entries at all: no ACL. */
	ck_assert_int_eq(set_acl(fs, g, ACCESS, named, 5), 0);
	ck_assert_int_eq(set_acl(fs, g, ACCESS, NULL, 0), 0);
	want_no_acl(fs, g, ACCESS);

	/* A default ACL belongs on a directory only. */
	ck_assert_int_eq(set_acl(fs, g, DEFAULT, named, 5), -EACCES);

	/* Kept across a remount. */
	ck_assert_int_eq(set_acl(fs, f, ACCESS, named, 5), 0);
	ck_assert_int_eq(crp_fs_unmount(fs), 0);
	fs = mount_fs();
	ck_assert_uint_eq(mode_of(fs, f), S_IFREG | 0640);
	want_acl(fs, f, ACCESS, named, 5);
	ck_assert_int_eq(crp_fs_unmount(fs), 0);
	fsck_clean();
	rm_tree();
}
END_TEST

START_TEST(malformed_acl_refused)
{
	static const struct ent good[] = { { U_OBJ, 6, NOID }, { USER, 4, 65534 },
					   { G_OBJ, 4, NOID }, { MASK, 4, NOID },
					   { OTHER, 0, NOID } };
	static const struct {
		const char *what;
		struct ent e[6];
		size_t n;
	} bad[] = {
		{ "no USER_OBJ", { { G_OBJ, 4, NOID }, { OTHER, 0, NOID } }, 2 },
		{ "no OTHER", { { U_OBJ, 6, NOID }, { G_OBJ, 4, NOID } }, 2 },
		{ "no GROUP_OBJ", { { U_OBJ, 6, NOID }, { OTHER, 4, NOID } }, 2 },
		{ "a named user without a mask",
		  { { U_OBJ, 6, NOID }, { USER, 4, 7 }, { G_OBJ, 4, NOID }, { OTHER, 0, NOID } }, 4 },
		{ "a named group without a mask",
		  { { U_OBJ, 6, NOID }, { G_OBJ, 4, NOID }, { GROUP, 4, 7 }, { OTHER, 0, NOID } }, 4 },
		{ "GROUP_OBJ before USER_OBJ", { { G_OBJ, 4, NOID }, { U_OBJ, 6, NOID },
						  { OTHER, 0, NOID } }, 3 },
		{ "a named user after GROUP_OBJ",
		  { { U_OBJ, 6, NOID }, { G_OBJ, 4, NOID }, { USER, 4, 7 }, { MASK, 4, NOID },
		    { OTHER, 0, NOID } }, 5 },
		{ "a user twice",
		  { { U_OBJ, 6, NOID }, { USER, 4, 7 }, { USER, 6, 7 }, { G_OBJ, 4, NOID },
		    { MASK, 6, NOID }, { OTHER, 0, NOID } }, 6 },
		{ "a named user without an id",
		  { { U_OBJ, 6, NOID }, { USER, 4, NOID }, { G_OBJ, 4, NOID }, { MASK, 4, NOID },
		    { OTHER, 0, NOID } }, 5 },
		{ "two masks", { { U_OBJ, 6, NOID }, { G_OBJ, 4, NOID }, { MASK, 4, NOID },
				 { MASK, 4, NOID }, { OTHER, 0, NOID } }, 5 },
		{ "permission bits beyond rwx", { { U_OBJ, 8, NOID }, { G_OBJ, 4, NOID },
						  { OTHER, 0, NOID } }, 3 },
		{ "an unknown tag", { { U_OBJ, 6, NOID }, { 0x40, 4, NOID }, { G_OBJ, 4, NOID },
				      { OTHER, 0, NOID } }, 4 },
	};
	struct crp_fs *fs;
	uint8_t buf[256];
	uint64_t f;
	size_t len;

	format();
	fs = mount_fs();
	f = new_file(fs, CRP_ROOT_INO, "f", 0600, &root_cred);
	ck_assert_int_eq(set_acl(fs, f, ACCESS, good, 5), 0);
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		ck_assert_msg(set_acl(fs, f, ACCESS, bad[i].e, bad[i].n) == -EINVAL,
			      "an ACL with %s was not refused", bad[i].what);
		ck_assert_msg(mode_of(fs, f) == (S_IFREG | 0640), "an ACL with %s changed the mode",
			      bad[i].what);
	}
	/* Wrong version, a cut entry, a cut header. */
	len = acl_of(buf, good, 5);
	crp_put_le32(buf, 1);
	ck_assert_int_eq(crp_fs_setxattr(fs, f, ACCESS, buf, len, 0), -EINVAL);
	crp_put_le32(buf, 2);
	ck_assert_int_eq(crp_fs_setxattr(fs, f, ACCESS, buf, len - 1, 0), -EINVAL);
	ck_assert_int_eq(crp_fs_setxattr(fs, f, ACCESS, buf, 2, 0), -EINVAL);
	ck_assert_int_eq(crp_fs_setxattr(fs, f, ACCESS, buf, 0, 0), -EINVAL);
	want_acl(fs, f, ACCESS, good, 5);
	ck_assert_uint_eq(mode_of(fs, f), S_IFREG | 0640);
	ck_assert_int_eq(crp_fs_unmount(fs), 0);
	rm_tree();
}
END_TEST

START_TEST(chmod_sets_acl)
{
	static const struct ent named[] = { { U_OBJ, 6, NOID }, { USER, 4, 65534 },
					    { G_OBJ, 4, NOID }, { MASK, 6, NOID },
					    { OTHER, 0, NOID } };
	static const struct ent named_0604[] = { { U_OBJ, 6, NOID }, { USER, 4, 65534 },
						 { G_OBJ, 4, NOID }, { MASK, 0, NOID },
						 { OTHER, 4, NOID } };
	static const struct ent mask_only[] = { { U_OBJ, 6, NOID }, { G_OBJ, 4, NOID },
						{ MASK, 4, NOID }, { OTHER, 0, NOID } };
	static const struct ent mask_only_0750[] = { { U_OBJ, 7, NOID }, { G_OBJ, 4, NOID },
						     { MASK, 5, NOID }, { OTHER, 0, NOID } };
	struct crp_fs *fs;
	uint64_t f, g, h;

	format();
	fs = mount_fs();
	f = new_file(fs, CRP_ROOT_INO, "f", 0600, &root_cred);
	ck_assert_int_eq(set_acl(fs, f, ACCESS, named, 5), 0);
	ck_assert_uint_eq(mode_of(fs, f), S_IFREG | 0660);
	/* Owner and other from the mode, the mask from its group bits;
	 * GROUP_OBJ and the named entry stay. */
	chmod_ino(fs, f, 0604);
	want_acl(fs, f, ACCESS, named_0604, 5);

	g = new_file(fs, CRP_ROOT_INO, "g", 0600, &root_cred);
	ck_assert_int_eq(set_acl(fs, g, ACCESS, mask_only, 4), 0);
	ck_assert_uint_eq(mode_of(fs, g), S_IFREG | 0640);
	chmod_ino(fs, g, 0750);
	want_acl(fs, g, ACCESS, mask_only_0750, 4);

	/* Set-user-ID and friends are the mode's, not the ACL's. */
	chmod_ino(fs, g, 04700);
	ck_assert_uint_eq(mode_of(fs, g), S_IFREG | 04700);

	/* Without an ACL, chmod makes none. */
	h = new_file(fs, CRP_ROOT_INO, "h", 0600, &root_cred);
	chmod_ino(fs, h, 0755);
	want_no_acl(fs, h, ACCESS);

	ck_assert_int_eq(crp_fs_unmount(fs), 0);
	fs = mount_fs();
	want_acl(fs, f, ACCESS, named_0604, 5);
	ck_assert_uint_eq(mode_of(fs, f), S_IFREG | 0604);
	ck_assert_int_eq(crp_fs_unmount(fs), 0);
	fsck_clean();
	rm_tree();
}
END_TEST

START_TEST(default_acl_inherited)
{
	static const struct ent dflt[] = { { U_OBJ, 7, NOID }, { USER, 7, 65534 },
					   { G_OBJ, 5, NOID }, { MASK, 7, NOID },
					   { OTHER, 5, NOID } };
	/* dflt masked by 0666 and by 0640 */
	static const struct ent file_0666[] = { { U_OBJ, 6, NOID }, { USER, 7, 65534 },
						{ G_OBJ, 5, NOID }, { MASK, 6, NOID },
						{ OTHER, 4, NOID } };
	static const struct ent fifo_0640[] = { { U_OBJ, 6, NOID }, { USER, 7, 65534 },
						{ G_OBJ, 5, NOID }, { MASK, 4, NOID },
						{ OTHER, 0, NOID } };
	static const struct ent base[] = { { U_OBJ, 7, NOID }, { G_OBJ, 5, NOID },
					   { OTHER, 0, NOID } };
	static const struct crp_cred umask_077 = { 0, 0, 077 };
	static const struct crp_cred umask_027 = { 0, 0, 027 };
	struct crp_fs *fs;
	struct crp_attr a;
	uint64_t d, f, sub, e, x;
	char link[16];

	format();
	fs = mount_fs();
	d = new_dir(fs, CRP_ROOT_INO, "d", 0755, &root_cred);
	ck_assert_int_eq(set_acl(fs, d, DEFAULT, dflt, 5), 0);
	want_acl(fs, d, DEFAULT, dflt, 5);
	ck_assert_uint_eq(mode_of(fs, d), S_IFDIR | 0755);

	/* The default ACL replaces the umask. */
	f = new_file(fs, d, "f", 0666, &umask_077);
	ck_assert_uint_eq(mode_of(fs, f), S_IFREG | 0664);
	want_acl(fs, f, ACCESS, file_0666, 5);
	want_no_acl(fs, f, DEFAULT);

	ck_assert_int_eq(crp_fs_mknod(fs, d, "fifo", S_IFIFO | 0640, 0, &umask_077, &a), 0);
	crp_fs_forget(fs, a.ino, 1);
	ck_assert_uint_eq(a.mode, S_IFIFO | 0640);
	want_acl(fs, a.ino, ACCESS, fifo_0640, 5);

	/* A new directory: the access ACL, and the default ACL itself. */
	sub = new_dir(fs, d, "sub", 0777, &umask_077);
	ck_assert_uint_eq(mode_of(fs, sub), S_IFDIR | 0775);
	want_acl(fs, sub, ACCESS, dflt, 5);
	want_acl(fs, sub, DEFAULT, dflt, 5);
	x = new_file(fs, sub, "deeper", 0666, &umask_077);
	want_acl(fs, x, ACCESS, file_0666, 5);

	/* Symlinks are exempt. */
	ck_assert_int_eq(crp_fs_symlink(fs, d, "l", "f", &umask_077, &a), 0);
	crp_fs_forget(fs, a.ino, 1);
	ck_assert_uint_eq(a.mode, S_IFLNK | 0777);
	want_no_acl(fs, a.ino, ACCESS);
	ck_assert_int_eq(crp_fs_readlink(fs, a.ino, link, sizeof(link)), 1);

	/* A default ACL of base entries only: the mode, no access ACL. */
	e = new_dir(fs, CRP_ROOT_INO, "e", 0755, &root_cred);
	ck_assert_int_eq(set_acl(fs, e, DEFAULT, base, 3), 0);
	want_acl(fs, e, DEFAULT, base, 3);
	f = new_file(fs, e, "f", 0666, &umask_077);
	ck_assert_uint_eq(mode_of(fs, f), S_IFREG | 0640);
	want_no_acl(fs, f, ACCESS);
	sub = new_dir(fs, e, "sub", 0777, &umask_077);
	ck_assert_uint_eq(mode_of(fs, sub), S_IFDIR | 0750);
	want_no_acl(fs, sub, ACCESS);
	want_acl(fs, sub, DEFAULT, base, 3);

	/* No default ACL: the umask applies. */
	f = new_file(fs, CRP_ROOT_INO, "plain", 0666, &umask_027);
	ck_assert_uint_eq(mode_of(fs, f), S_IFREG | 0640);
	want_no_acl(fs, f, ACCESS);
	sub = new_dir(fs, CRP_ROOT_INO, "plain.d", 0777, &root_cred);
	ck_assert_uint_eq(mode_of(fs, sub), S_IFDIR | 0755);
	want_no_acl(fs, sub, ACCESS);
	want_no_acl(fs, sub, DEFAULT);

	/* Removing the default ACL ends the inheritance. */
	ck_assert_int_eq(crp_fs_removexattr(fs, d, DEFAULT), 0);
	f = new_file(fs, d, "after", 0666, &umask_027);
	ck_assert_uint_eq(mode_of(fs, f), S_IFREG | 0640);
	want_no_acl(fs, f, ACCESS);

	ck_assert_int_eq(crp_fs_unmount(fs), 0);
	fsck_clean();
	rm_tree();
}
END_TEST

START_TEST(getxattr_returns_stored)
{
	static const struct ent named[] = { { U_OBJ, 6, NOID }, { USER, 4, 65534 },
					    { G_OBJ, 4, NOID }, { GROUP, 2, 100 },
					    { MASK, 6, NOID }, { OTHER, 0, NOID } };
	struct crp_fs *fs;
	uint8_t buf[256];
	uint64_t f, d;
	size_t len = acl_of(buf, named, 6);

	format();
	fs = mount_fs();
	f = new_file(fs, CRP_ROOT_INO, "f", 0600, &root_cred);
	d = new_dir(fs, CRP_ROOT_INO, "d", 0755, &root_cred);
	want_no_acl(fs, f, ACCESS);
	want_no_acl(fs, f, DEFAULT);
	want_no_acl(fs, d, ACCESS);
	want_no_acl(fs, d, DEFAULT);
	ck_assert_int_eq(crp_fs_getxattr(fs, f, ACCESS, NULL, 0), -ENODATA);

	ck_assert_int_eq(set_acl(fs, f, ACCESS, named, 6), 0);
	ck_assert_int_eq(set_acl(fs, d, DEFAULT, named, 6), 0);
	ck_assert_int_eq(crp_fs_getxattr(fs, f, ACCESS, NULL, 0), (ssize_t)len);
	ck_assert_int_eq(crp_fs_getxattr(fs, f, ACCESS, buf, len - 1), -ERANGE);
	want_acl(fs, f, ACCESS, named, 6);
	want_acl(fs, d, DEFAULT, named, 6);
	want_no_acl(fs, d, ACCESS);

	/* Removal leaves the mode. */
	ck_assert_int_eq(crp_fs_removexattr(fs, f, ACCESS), 0);
	want_no_acl(fs, f, ACCESS);
	ck_assert_uint_eq(mode_of(fs, f), S_IFREG | 0660);
	ck_assert_int_eq(crp_fs_removexattr(fs, f, ACCESS), -ENODATA);
	ck_assert_int_eq(crp_fs_unmount(fs), 0);
	fsck_clean();
	rm_tree();
}
END_TEST

static Suite *acl_suite(void)
{
	Suite *s = suite_create("acl");
	TCase *t;

	t = tcase_create("access_acl_sets_mode");
	tcase_set_timeout(t, 120);
	tcase_add_test(t, access_acl_sets_mode);
	tcase_add_test(t, malformed_acl_refused);
	suite_add_tcase(s, t);
	t = tcase_create("chmod_sets_acl");
	tcase_set_timeout(t, 120);
	tcase_add_test(t, chmod_sets_acl);
	suite_add_tcase(s, t);
	t = tcase_create("default_acl_inherited");
	tcase_set_timeout(t, 120);
	tcase_add_test(t, default_acl_inherited);
	suite_add_tcase(s, t);
	t = tcase_create("getxattr_returns_stored");
	tcase_set_timeout(t, 120);
	tcase_add_test(t, getxattr_returns_stored);
	suite_add_tcase(s, t);
	return s;
}

int main(void)
{
	SRunner *sr = srunner_create(acl_suite());
	int failed;

	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
