/*
 * The filesystem core driven without FUSE on file: members in a temporary
 * directory: files, directories, links, symlinks, xattrs, truncate, holes,
 * a large directory, persistence across mounts, journal replay after a
 * crash, and fsck.
 */
#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/falloc.h>
#include <linux/fs.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <sys/xattr.h>
#include <unistd.h>

#include "crpfs/err.h"
#include "crpfs/array.h"
#include "crpfs/fs.h"
#include "crpfs/member.h"
#include "crpfs/meta.h"
#include "crpfs/status.h"
#include "crpfs/util.h"
#include "../src/fs/fs_i.h"
#include "fixture/fsfix.h"

#define NM 3
#define MEMBER_SIZE (192ull << 20)

static struct crp_fsfix fx;
static const struct crp_cred root_cred = { 0, 0, 022 };

static void rm_tree(void)
{
	if (crp_fsfix_remove(&fx) != 0)
		fprintf(stderr, "cannot remove %s\n", fx.dir);
}

static void format(void)
{
	const struct crp_fsfix_params p = { .name = "fs", .members = NM,
					    .member_size = MEMBER_SIZE, .level = 5,
					    .chunk = 65536, .max_hosts = 2, .label = "test" };

	crp_fsfix_format(&fx, &p);
}

static struct crp_fs *mount_fs_commit(uint32_t commit_ms)
{
	struct crp_fs_opts o = { .host = "testhost", .commit_ms = commit_ms };
	struct crp_fs *fs;
	char err[256];
	int r = crp_fs_mount(fx.specs, NM, &o, &fs, err, sizeof(err));

	ck_assert_msg(r == 0, "mount: %s (%d)", err, r);
	return fs;
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

static int fsck(bool repair, struct crp_fsck_result *res)
{
	struct crp_fsck_opts o = { .repair = repair, .host = "fsckhost", .say = say_msg };
	char err[256];
	int r = crp_fsck_run(fx.specs, NM, &o, res, err, sizeof(err));

	ck_assert_msg(r >= 0, "fsck: %s", err);
	return r;
}

static uint64_t create_file(struct crp_fs *fs, uint64_t parent, const char *name,
			    const void *data, size_t len)
{
	struct crp_attr a;
	uint64_t fh;

	ck_assert_int_eq(crp_fs_create(fs, parent, name, 0644, O_RDWR, &root_cred, &a, &fh), 0);
	if (len)
		ck_assert_int_eq(crp_fs_write(fs, a.ino, fh, 0, data, len), (ssize_t)len);
	ck_assert_int_eq(crp_fs_release(fs, a.ino, fh), 0);
	crp_fs_forget(fs, a.ino, 1);
	return a.ino;
}

static void read_back(struct crp_fs *fs, uint64_t ino, uint64_t off, const void *want, size_t len)
{
	uint8_t *buf = malloc(len + 1);
	uint64_t fh;

	ck_assert_int_eq(crp_fs_open(fs, ino, O_RDONLY, &fh), 0);
	ck_assert_int_eq(crp_fs_read(fs, ino, fh, off, buf, len), (ssize_t)len);
	ck_assert_int_eq(memcmp(buf, want, len), 0);
	ck_assert_int_eq(crp_fs_release(fs, ino, fh), 0);
	free(buf);
}

static uint64_t lookup(struct crp_fs *fs, uint64_t parent, const char *name)
{
	struct crp_attr a;
	int r = crp_fs_lookup(fs, parent, name, &a);

	if (r)
		return 0;
	crp_fs_forget(fs, a.ino, 1);
	return a.ino;
}

/* The inode @name of the root names, inside an operation. */
static uint64_t lookup_locked(struct crp_fs *fs, const char *name)
{
	struct crp_fs_inode *dp;
	uint64_t ino = 0;
	uint8_t type;

	ck_assert_int_eq(crp_fs_iget(fs, CRP_ROOT_INO, &dp), 0);
	ck_assert_int_eq(crp_fs_dir_find(fs, dp, name, &ino, &type), 0);
	return ino;
}

static void fill_pattern(uint8_t *b, size_t len, unsigned seed)
{
	for (size_t i = 0; i < len; i++)
		b[i] = (uint8_t)(i * 31 + seed + (i >> 12));
}

START_TEST(files_persist)
{
	struct crp_fsck_result res;
	struct crp_fs *fs;
	size_t len = 300 * 1024 + 123;
	uint8_t *data = malloc(len);
	uint64_t ino;
	struct crp_attr a;

	format();
	fill_pattern(data, len, 7);
	fs = mount_fs();
	ino = create_file(fs, CRP_ROOT_INO, "hello", data, len);
	read_back(fs, ino, 0, data, len);
	read_back(fs, ino, 5000, data + 5000, 1000);
	ck_assert_int_eq(crp_fs_unmount(fs), 0);

	fs = mount_fs();
	ino = lookup(fs, CRP_ROOT_INO, "hello");
	ck_assert_uint_ne(ino, 0);
	ck_assert_int_eq(crp_fs_getattr(fs, ino, &a), 0);
	ck_assert_uint_eq(a.size, len);
	ck_assert(S_ISREG(a.mode));
	ck_assert_uint_eq(a.mode & 0777, 0644);
	read_back(fs, ino, 0, data, len);
	ck_assert_int_eq(crp_fs_unmount(fs), 0);
	ck_assert_int_eq(fsck(false, &res), CRP_FSCK_OK);
	ck_assert_uint_gt(res.blocks_checked, 70);
	ck_assert_uint_gt(res.stripes_checked, 0);
	free(data);
	rm_tree();
}
END_TEST

START_TEST(namespace_ops)
{
	struct crp_fsck_result res;
	struct crp_fs *fs;
	struct crp_attr a, b;
	uint64_t d1, d2, f1, f2, fh;
	char name[300], buf[5000];

	format();
	fs = mount_fs();
	ck_assert_int_eq(crp_fs_mkdir(fs, CRP_ROOT_INO, "d1", 0755, &root_cred, &a), 0);
	d1 = a.ino;
	ck_assert_uint_eq(a.nlink, 2);
	ck_assert_int_eq(crp_fs_mkdir(fs, CRP_ROOT_INO, "d2", 0755, &root_cred, &a), 0);
	d2 = a.ino;
	ck_assert_int_eq(crp_fs_mkdir(fs, CRP_ROOT_INO, "d1", 0755, &root_cred, &a), -EEXIST);
	f1 = create_file(fs, d1, "f1", "one", 3);
	f2 = create_file(fs, d2, "f2", "two", 3);
	ck_assert_int_eq(crp_fs_rmdir(fs, CRP_ROOT_INO, "d1", &root_cred), -ENOTEMPTY);
	ck_assert_int_eq(crp_fs_unlink(fs, CRP_ROOT_INO, "d1", &root_cred), -EISDIR);
	ck_assert_int_eq(crp_fs_rmdir(fs, d1, "f1", &root_cred), -ENOTDIR);

	/* 255-byte names work, 256 do not. */
	memset(name, 'x', 255);
	name[255] = 0;
	create_file(fs, d1, name, "", 0);
	ck_assert_uint_ne(lookup(fs, d1, name), 0);
	name[255] = 'x';
	name[256] = 0;
	ck_assert_int_eq(crp_fs_mknod(fs, d1, name, S_IFREG | 0644, 0, &root_cred, &a),
			 -ENAMETOOLONG);

	/* Hard links. */
	ck_assert_int_eq(crp_fs_link(fs, f1, d2, "f1link", &a), 0);
	ck_assert_uint_eq(a.nlink, 2);
	crp_fs_forget(fs, f1, 1);
	ck_assert_int_eq(crp_fs_link(fs, d1, d2, "dirlink", &a), -EPERM);

	/* Rename: NOREPLACE, over a file, EXCHANGE, directory over empty directory. */
	ck_assert_int_eq(crp_fs_rename(fs, d1, "f1", d2, "f2", RENAME_NOREPLACE, &root_cred),
			 -EEXIST);
	ck_assert_int_eq(crp_fs_rename(fs, d1, "f1", d2, "f2", RENAME_EXCHANGE, &root_cred), 0);
	ck_assert_uint_eq(lookup(fs, d1, "f1"), f2);
	ck_assert_uint_eq(lookup(fs, d2, "f2"), f1);
	ck_assert_int_eq(crp_fs_rename(fs, d1, "f1", d2, "f2", 0, &root_cred), 0);
	ck_assert_uint_eq(lookup(fs, d1, "f1"), 0);
	ck_assert_uint_eq(lookup(fs, d2, "f2"), f2);
	ck_assert_int_eq(crp_fs_getattr(fs, f1, &a), 0);
	ck_assert_uint_eq(a.nlink, 1); /* f1link remains */
	ck_assert_int_eq(crp_fs_mkdir(fs, d2, "empty", 0755, &root_cred, &a), 0);
	crp_fs_forget(fs, a.ino, 1);
	ck_assert_int_eq(crp_fs_mkdir(fs, CRP_ROOT_INO, "d3", 0755, &root_cred, &b), 0);
	crp_fs_forget(fs, b.ino, 1);
	ck_assert_int_eq(crp_fs_rename(fs, CRP_ROOT_INO, "d3", d2, "empty", 0, &root_cred), 0);
	ck_assert_uint_eq(lookup(fs, d2, "empty"), b.ino);
	ck_assert_int_eq(crp_fs_rename(fs, CRP_ROOT_INO, "d1", d1, "sub", 0, &root_cred), -EINVAL);
	ck_assert_int_eq(crp_fs_getattr(fs, d2, &a), 0);
	ck_assert_uint_eq(a.nlink, 3);

	/* Symlinks, short and long. */
	ck_assert_int_eq(crp_fs_symlink(fs, CRP_ROOT_INO, "s", "/etc/passwd", &root_cred, &a), 0);
	ck_assert_int_eq(crp_fs_readlink(fs, a.ino, buf, sizeof(buf)), 11);
	ck_assert_int_eq(memcmp(buf, "/etc/passwd", 11), 0);
	crp_fs_forget(fs, a.ino, 1);
	memset(buf, 'a', 4000);
	buf[4000] = 0;
	ck_assert_int_eq(crp_fs_symlink(fs, CRP_ROOT_INO, "long", buf, &root_cred, &a), 0);
	crp_fs_forget(fs, a.ino, 1);

	/* Unlinked but open: readable until the last release. */
	f1 = create_file(fs, CRP_ROOT_INO, "open", "still here", 10);
	ck_assert_int_eq(crp_fs_lookup(fs, CRP_ROOT_INO, "open", &a), 0);
	ck_assert_int_eq(crp_fs_open(fs, f1, O_RDONLY, &fh), 0);
	ck_assert_int_eq(crp_fs_unlink(fs, CRP_ROOT_INO, "open", &root_cred), 0);
	ck_assert_uint_eq(lookup(fs, CRP_ROOT_INO, "open"), 0);
	ck_assert_int_eq(crp_fs_read(fs, f1, fh, 0, buf, 100), 10);
	ck_assert_int_eq(memcmp(buf, "still here", 10), 0);
	ck_assert_int_eq(crp_fs_release(fs, f1, fh), 0);
	crp_fs_forget(fs, f1, 1);
	ck_assert_int_eq(crp_fs_getattr(fs, f1, &a), -ESTALE);

	/* Sticky directory: another user may not remove root's file. */
	{
		struct crp_cred user = { 1000, 1000, 022 };
		struct crp_attr t = { .mode = 01777 };

		ck_assert_int_eq(crp_fs_setattr(fs, d2, &t, CRP_SET_MODE, &root_cred, &a), 0);
		ck_assert_int_eq(crp_fs_unlink(fs, d2, "f2", &user), -EPERM);
	}
	ck_assert_int_eq(crp_fs_unmount(fs), 0);

	fs = mount_fs();
	ck_assert_int_eq(crp_fs_lookup(fs, CRP_ROOT_INO, "long", &a), 0);
	ck_assert_int_eq(crp_fs_readlink(fs, a.ino, name, sizeof(name)), 4000);
	crp_fs_forget(fs, a.ino, 1);
	ck_assert_int_eq(crp_fs_unmount(fs), 0);
	ck_assert_int_eq(fsck(false, &res), CRP_FSCK_OK);
	rm_tree();
}
END_TEST

START_TEST(xattrs)
{
	struct crp_fsck_result res;
	struct crp_fs *fs;
	uint64_t ino;
	char buf[256];
	/* u::rw-, u:65534:r--, g::r--, m::r--, o::--- (an ACL is checked: see check_acl) */
	static const uint8_t acl[] = { 2, 0, 0, 0, 1, 0, 6, 0, 0xff, 0xff, 0xff, 0xff,
				       2, 0, 4, 0, 0xfe, 0xff, 0, 0, 4, 0, 4, 0, 0xff, 0xff, 0xff, 0xff,
				       0x10, 0, 4, 0, 0xff, 0xff, 0xff, 0xff,
				       0x20, 0, 0, 0, 0xff, 0xff, 0xff, 0xff };

	format();
	fs = mount_fs();
	ino = create_file(fs, CRP_ROOT_INO, "x", "x", 1);
	ck_assert_int_eq(crp_fs_setxattr(fs, ino, "user.a", "1", 1, 0), 0);
	ck_assert_int_eq(crp_fs_setxattr(fs, ino, "user.a", "22", 2, XATTR_CREATE), -EEXIST);
	ck_assert_int_eq(crp_fs_setxattr(fs, ino, "user.b", "22", 2, XATTR_REPLACE), -ENODATA);
	ck_assert_int_eq(crp_fs_setxattr(fs, ino, "user.a", "22", 2, XATTR_REPLACE), 0);
	ck_assert_int_eq(crp_fs_setxattr(fs, ino, "system.posix_acl_access", acl, sizeof(acl), 0),
			 0);
	ck_assert_int_eq(crp_fs_setxattr(fs, ino, "bogus.a", "1", 1, 0), -EOPNOTSUPP);
	ck_assert_int_eq(crp_fs_getxattr(fs, ino, "user.a", NULL, 0), 2);
	ck_assert_int_eq(crp_fs_getxattr(fs, ino, "user.a", buf, 1), -ERANGE);
	ck_assert_int_eq(crp_fs_getxattr(fs, ino, "user.a", buf, sizeof(buf)), 2);
	ck_assert_int_eq(memcmp(buf, "22", 2), 0);
	ck_assert_int_eq(crp_fs_listxattr(fs, ino, NULL, 0),
			 (ssize_t)(sizeof("user.a") + sizeof("system.posix_acl_access")));
	ck_assert_int_eq(crp_fs_unmount(fs), 0);
	fs = mount_fs();
	ck_assert_int_eq(crp_fs_getxattr(fs, ino, "system.posix_acl_access", buf, sizeof(buf)),
			 (ssize_t)sizeof(acl));
	ck_assert_int_eq(memcmp(buf, acl, sizeof(acl)), 0);
	ck_assert_int_eq(crp_fs_removexattr(fs, ino, "user.a"), 0);
	ck_assert_int_eq(crp_fs_getxattr(fs, ino, "user.a", buf, sizeof(buf)), -ENODATA);
	ck_assert_int_eq(crp_fs_removexattr(fs, ino, "system.posix_acl_access"), 0);
	ck_assert_int_eq(crp_fs_listxattr(fs, ino, NULL, 0), 0);
	ck_assert_int_eq(crp_fs_unmount(fs), 0);
	ck_assert_int_eq(fsck(false, &res), CRP_FSCK_OK);
	rm_tree();
}
END_TEST

START_TEST(sparse_truncate_seek)
{
	struct crp_fsck_result res;
	struct crp_fs *fs;
	struct crp_attr a, t;
	uint64_t ino, fh, big = 5ull << 30;
	uint8_t blk[8192], zero[8192] = { 0 };

	format();
	fs = mount_fs();
	fill_pattern(blk, sizeof(blk), 3);
	ino = create_file(fs, CRP_ROOT_INO, "sparse", NULL, 0);
	ck_assert_int_eq(crp_fs_open(fs, ino, O_RDWR, &fh), 0);
	/* A block past 4 GiB, one at 1 MiB; everything between is a hole. */
	ck_assert_int_eq(crp_fs_write(fs, ino, fh, big, blk, 100), 100);
	ck_assert_int_eq(crp_fs_write(fs, ino, fh, 1 << 20, blk, 8192), 8192);
	ck_assert_int_eq(crp_fs_getattr(fs, ino, &a), 0);
	ck_assert_uint_eq(a.size, big + 100);
	ck_assert_uint_eq(a.blocks, 3 * 8);
	read_back(fs, ino, big, blk, 100);
	read_back(fs, ino, 4096, zero, 8192);
	ck_assert_int_eq(crp_fs_lseek(fs, ino, 0, SEEK_DATA), 1 << 20);
	ck_assert_int_eq(crp_fs_lseek(fs, ino, 1 << 20, SEEK_HOLE), (1 << 20) + 8192);
	ck_assert_int_eq(crp_fs_lseek(fs, ino, (1 << 20) + 8192, SEEK_DATA), (int64_t)big);
	ck_assert_int_eq(crp_fs_lseek(fs, ino, big + 100, SEEK_DATA), -ENXIO);
	/* Overwrite in the middle of a committed block (copy-on-write). */
	ck_assert_int_eq(crp_fs_fsync(fs, ino, false), 0);
	ck_assert_int_eq(crp_fs_write(fs, ino, fh, (1 << 20) + 10, "HELLO", 5), 5);
	memcpy(blk + 10, "HELLO", 5);
	read_back(fs, ino, 1 << 20, blk, 8192);
	/* Truncate down into the middle of a block, then up: the tail is zero. */
	t.size = (1 << 20) + 100;
	ck_assert_int_eq(crp_fs_setattr(fs, ino, &t, CRP_SET_SIZE, &root_cred, &a), 0);
	ck_assert_uint_eq(a.blocks, 8);
	t.size = (1 << 20) + 8192;
	ck_assert_int_eq(crp_fs_setattr(fs, ino, &t, CRP_SET_SIZE, &root_cred, &a), 0);
	read_back(fs, ino, 1 << 20, blk, 100);
	read_back(fs, ino, (1 << 20) + 100, zero, 8092);
	/* fallocate: allocate, keep size, punch a hole. */
	ck_assert_int_eq(crp_fs_fallocate(fs, ino, 0, 0, 65536), 0);
	ck_assert_int_eq(crp_fs_getattr(fs, ino, &a), 0);
	ck_assert_uint_eq(a.size, (1 << 20) + 8192);
	ck_assert_uint_eq(a.blocks, (16 + 1) * 8);
	read_back(fs, ino, 0, zero, 8192);
	ck_assert_int_eq(crp_fs_fallocate(fs, ino, FALLOC_FL_KEEP_SIZE, 4ull << 20, 4096), 0);
	ck_assert_int_eq(crp_fs_getattr(fs, ino, &a), 0);
	ck_assert_uint_eq(a.size, (1 << 20) + 8192);
	ck_assert_int_eq(crp_fs_write(fs, ino, fh, 4096, blk, 4096), 4096);
	ck_assert_int_eq(crp_fs_fallocate(fs, ino, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE,
					  4096 + 100, 4096), 0);
	read_back(fs, ino, 4096, blk, 100);
	read_back(fs, ino, 4196, zero, 4096);
	ck_assert_int_eq(crp_fs_release(fs, ino, fh), 0);
	ck_assert_int_eq(crp_fs_unmount(fs), 0);
	ck_assert_int_eq(fsck(false, &res), CRP_FSCK_OK);
	rm_tree();
}
END_TEST

static int count_cb(void *ctx, const char *name, uint64_t ino, uint32_t mode, uint64_t next)
{
	(void)name;
	(void)ino;
	(void)mode;
	(void)next;
	(*(int *)ctx)++;
	return 0;
}

START_TEST(large_directory)
{
	struct crp_fsck_result res;
	struct crp_fs *fs;
	struct crp_attr a;
	uint64_t d, fh;
	char name[64];
	int n = 0;

	format();
	fs = mount_fs();
	ck_assert_int_eq(crp_fs_mkdir(fs, CRP_ROOT_INO, "big", 0755, &root_cred, &a), 0);
	d = a.ino;
	for (int i = 0; i < 3000; i++) {
		snprintf(name, sizeof(name), "file-with-a-longish-name-%05d", i);
		ck_assert_int_eq(crp_fs_mknod(fs, d, name, S_IFREG | 0644, 0, &root_cred, &a), 0);
		crp_fs_forget(fs, a.ino, 1);
	}
	ck_assert_int_eq(crp_fs_unmount(fs), 0);
	fs = mount_fs();
	for (int i = 0; i < 3000; i += 7) {
		snprintf(name, sizeof(name), "file-with-a-longish-name-%05d", i);
		ck_assert_uint_ne(lookup(fs, d, name), 0);
	}
	ck_assert_int_eq(crp_fs_opendir(fs, d, &fh), 0);
	ck_assert_int_eq(crp_fs_readdir(fs, d, fh, 0, count_cb, &n), 0);
	ck_assert_int_eq(n, 3002);
	ck_assert_int_eq(crp_fs_releasedir(fs, d, fh), 0);
	for (int i = 0; i < 3000; i += 2) {
		snprintf(name, sizeof(name), "file-with-a-longish-name-%05d", i);
		ck_assert_int_eq(crp_fs_unlink(fs, d, name, &root_cred), 0);
	}
	ck_assert_int_eq(crp_fs_unmount(fs), 0);
	ck_assert_int_eq(fsck(false, &res), CRP_FSCK_OK);
	ck_assert_uint_ge(res.inodes_checked, 1502);
	rm_tree();
}
END_TEST

START_TEST(crash_replay)
{
	struct crp_fsck_result res;
	struct crp_fs *fs;
	uint8_t data[20000];
	pid_t pid;
	int st;

	format();
	fill_pattern(data, sizeof(data), 9);
	pid = fork();
	ck_assert_int_ge(pid, 0);
	if (pid == 0) {
		/* The child makes changes, commits them to the journal only
		 * (not in place), makes more it never commits, and dies. */
		struct crp_fs *cfs = mount_fs();
		struct crp_attr a;

		create_file(cfs, CRP_ROOT_INO, "durable", data, sizeof(data));
		crp_fs_mkdir(cfs, CRP_ROOT_INO, "dir", 0755, &root_cred, &a);
		pthread_mutex_lock(&cfs->mu);
		cfs->m->debug_no_checkpoint = true;
		pthread_mutex_unlock(&cfs->mu);
		create_file(cfs, a.ino, "journalled", data, 5000);
		crp_fs_fsync(cfs, CRP_ROOT_INO, false);
		pthread_mutex_lock(&cfs->mu);
		cfs->stop = true; /* no more background commits */
		pthread_mutex_unlock(&cfs->mu);
		create_file(cfs, CRP_ROOT_INO, "lost", data, 100);
		_exit(0);
	}
	ck_assert_int_eq(waitpid(pid, &st, 0), pid);
	ck_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0);
	/* Without repair, fsck sees the journal waiting. */
	ck_assert_int_eq(fsck(false, &res), CRP_FSCK_UNCORRECTED);
	fs = mount_fs();
	{
		uint64_t d = lookup(fs, CRP_ROOT_INO, "dir"), f;

		ck_assert_uint_ne(d, 0);
		f = lookup(fs, d, "journalled");
		ck_assert_uint_ne(f, 0);
		read_back(fs, f, 0, data, 5000);
		f = lookup(fs, CRP_ROOT_INO, "durable");
		ck_assert_uint_ne(f, 0);
		read_back(fs, f, 0, data, sizeof(data));
	}
	ck_assert_int_eq(crp_fs_unmount(fs), 0);
	ck_assert_int_eq(fsck(false, &res), CRP_FSCK_OK);
	rm_tree();
}
END_TEST

struct blk_snap {
	uint64_t blkno;
	uint32_t magic;
	uint8_t buf[CRP_BLOCK];
};

static int cmp_snap(const void *a, const void *b)
{
	const struct blk_snap *x = a, *y = b;

	return x->blkno < y->blkno ? -1 : x->blkno > y->blkno;
}

/* The running batch: its blocks as they are now, in block order. */
static struct blk_snap *snap_batch(struct crp_fs *fs, unsigned *n)
{
	GPtrArray *d = fs->m->dirty;
	struct blk_snap *s = calloc(d->len ? d->len : 1, sizeof(*s));

	ck_assert_ptr_nonnull(s);
	for (guint i = 0; i < d->len; i++) {
		const struct crp_mblk *b = d->pdata[i];

		ck_assert(b->dirty);
		s[i].blkno = b->blkno;
		s[i].magic = b->magic;
		memcpy(s[i].buf, b->buf, CRP_BLOCK);
	}
	qsort(s, d->len, sizeof(*s), cmp_snap);
	*n = d->len;
	return s;
}

/*
 * The undo of a failed operation in a large batch copies only the blocks
 * the operation touched, and puts the batch back exactly: the same blocks,
 * byte for byte.  The operation removes and adds names, rewrites a
 * committed file (copy-on-write), truncates two files of the batch (their
 * blocks freed, an extent chain block with them) and changes inodes;
 * afterwards every file reads as before, and the batch commits clean.
 */
START_TEST(undo_restores_the_batch_exactly)
{
	enum { NF = 40, OLD = 64 * CRP_BLOCK };
	uint8_t *old = malloc(OLD), data[3 * CRP_BLOCK + 5], w[2 * CRP_BLOCK];
	struct blk_snap *before, *after;
	unsigned nb, na;
	uint64_t ino_old, f05, frag, free0;
	struct crp_fsck_result res;
	struct crp_fs *fs;
	char name[32];
	uint32_t nundo;

	ck_assert_ptr_nonnull(old);
	format();
	fill_pattern(old, OLD, 21);
	fill_pattern(data, sizeof(data), 22);
	fill_pattern(w, sizeof(w), 23);
	fs = mount_fs_commit(600000);
	ino_old = create_file(fs, CRP_ROOT_INO, "old", old, OLD);
	ck_assert_int_eq(crp_fs_fsync(fs, CRP_ROOT_INO, false), 0);
	/* The batch: files created, the committed file rewritten at its start. */
	for (int i = 0; i < NF; i++) {
		snprintf(name, sizeof(name), "f%02d", i);
		create_file(fs, CRP_ROOT_INO, name, data, sizeof(data));
	}
	{
		uint64_t fh;

		ck_assert_int_eq(crp_fs_open(fs, ino_old, O_RDWR, &fh), 0);
		fill_pattern(old, 2 * CRP_BLOCK, 24);
		ck_assert_int_eq(crp_fs_write(fs, ino_old, fh, 0, old, 2 * CRP_BLOCK),
				 2 * CRP_BLOCK);
		ck_assert_int_eq(crp_fs_release(fs, ino_old, fh), 0);
	}
	/* ... and a file of 40 extents: a chain block of the batch. */
	{
		struct crp_attr a;
		uint64_t fh;

		ck_assert_int_eq(crp_fs_create(fs, CRP_ROOT_INO, "frag", 0644, O_RDWR, &root_cred,
					       &a, &fh), 0);
		frag = a.ino;
		for (int i = 0; i < 40; i++)
			ck_assert_int_eq(crp_fs_write(fs, frag, fh, (uint64_t)i * 2 * CRP_BLOCK,
						      data, CRP_BLOCK), CRP_BLOCK);
		ck_assert_int_eq(crp_fs_release(fs, frag, fh), 0);
	}
	ck_assert(fs->m->held);
	f05 = lookup(fs, CRP_ROOT_INO, "f05");
	free0 = crp_meta_free_blocks(fs->m);
	before = snap_batch(fs, &nb);
	ck_assert_uint_gt(nb, 8);

	{
		uint64_t s = crp_fs_op_begin(fs);
		struct crp_fs_inode *dp, *ip;

		ck_assert_int_eq(crp_fs_iget(fs, CRP_ROOT_INO, &dp), 0);
		ck_assert_int_eq(crp_fs_dir_remove(fs, dp, "f03"), 0);
		ck_assert_int_eq(crp_fs_dir_add(fs, dp, "ghost", f05, crp_fs_dtype(S_IFREG)), 0);
		dp->d.mode = (dp->d.mode & ~07777u) | 0700;
		ck_assert_int_eq(crp_fs_istore(fs, dp), 0);
		ck_assert_int_eq(crp_fs_iget(fs, ino_old, &ip), 0);
		ck_assert_int_eq(crp_fs_write_range(fs, ip, 32 * CRP_BLOCK, w, sizeof(w)), 0);
		ck_assert_int_eq(crp_fs_istore(fs, ip), 0);
		ck_assert_int_eq(crp_fs_iget(fs, f05, &ip), 0);
		ck_assert_int_eq(crp_fs_truncate(fs, ip, 0), 0);
		ck_assert_int_eq(crp_fs_istore(fs, ip), 0);
		ck_assert_int_eq(crp_fs_iget(fs, frag, &ip), 0);
		ck_assert_uint_gt(ip->nchain, 0);
		ck_assert_int_eq(crp_fs_truncate(fs, ip, 0), 0);
		ck_assert_int_eq(crp_fs_istore(fs, ip), 0);
		nundo = fs->m->nundo;
		ck_assert_int_eq(crp_fs_op_end(fs, s, -EIO), -EIO);
	}
	ck_assert_uint_eq(fs->m->undo_misses, 0);
	ck_assert_msg(nundo > 0 && nundo < nb, "the operation saved %u blocks of a batch of %u",
		      nundo, nb);
	ck_assert(fs->m->held);
	after = snap_batch(fs, &na);
	ck_assert_uint_eq(na, nb);
	for (unsigned i = 0; i < nb; i++) {
		ck_assert_uint_eq(after[i].blkno, before[i].blkno);
		ck_assert_uint_eq(after[i].magic, before[i].magic);
		ck_assert_msg(!memcmp(after[i].buf, before[i].buf, CRP_BLOCK),
			      "block %llu of the batch differs after the undo",
			      (unsigned long long)before[i].blkno);
	}
	ck_assert_int_eq(crp_meta_refresh_counts(fs->m), 0); /* counts as the bitmaps say */
	ck_assert_uint_eq(crp_meta_free_blocks(fs->m), free0);

	ck_assert_uint_ne(lookup(fs, CRP_ROOT_INO, "f03"), 0);
	ck_assert_uint_eq(lookup(fs, CRP_ROOT_INO, "ghost"), 0);
	read_back(fs, f05, 0, data, sizeof(data));
	read_back(fs, ino_old, 0, old, OLD);
	read_back(fs, frag, 78 * CRP_BLOCK, data, CRP_BLOCK);
	ck_assert_int_eq(crp_fs_sync(fs), 0);
	ck_assert_int_eq(crp_fs_unmount(fs), 0);
	ck_assert_int_eq(fsck(false, &res), CRP_FSCK_OK);
	fs = mount_fs();
	read_back(fs, f05, 0, data, sizeof(data));
	read_back(fs, ino_old, 0, old, OLD);
	ck_assert_int_eq(crp_fs_unmount(fs), 0);
	free(before);
	free(after);
	free(old);
	rm_tree();
}
END_TEST

/*
 * Group commit on one host: operations share commits; one that fails half
 * way is undone alone and the batch before it stays; fsync commits; what
 * was never committed is gone after a crash, what was fsync'd is not.
 */
START_TEST(group_commit)
{
	struct crp_fs_counters c0, c1;
	struct crp_fsck_result res;
	struct crp_fs *fs;
	struct crp_attr ra, a;
	uint8_t data[6000];
	char name[32];
	pid_t pid;
	int st;

	format();
	fill_pattern(data, sizeof(data), 3);
	/* A window no run reaches: only size and fsync end a batch. */
	fs = mount_fs_commit(600000);
	crp_fs_get_counters(fs, &c0);
	for (int i = 0; i < 20; i++) {
		snprintf(name, sizeof(name), "f%02d", i);
		create_file(fs, CRP_ROOT_INO, name, data, 1000 + (size_t)i);
	}
	crp_fs_get_counters(fs, &c1);
	ck_assert_msg(c1.commits - c0.commits < 10, "20 creates took %llu commits",
		      (unsigned long long)(c1.commits - c0.commits));
	ck_assert_int_eq(crp_fs_getattr(fs, CRP_ROOT_INO, &ra), 0);
	/* A read joined the batch without copying it for an undo. */
	ck_assert(fs->m->held);
	ck_assert_uint_gt(fs->m->dirty->len, 0);
	ck_assert_uint_eq(fs->m->nundo, 0);

	/* An operation that changes a directory and an inode, then fails. */
	{
		uint64_t snap = crp_fs_op_begin(fs);
		struct crp_fs_inode *dp;

		ck_assert_int_eq(crp_fs_iget(fs, CRP_ROOT_INO, &dp), 0);
		ck_assert_int_eq(crp_fs_dir_add(fs, dp, "ghost", lookup_locked(fs, "f00"),
						crp_fs_dtype(S_IFREG)), 0);
		dp->d.mode = (dp->d.mode & ~07777u) | 0700;
		ck_assert_int_eq(crp_fs_istore(fs, dp), 0);
		ck_assert_int_eq(crp_fs_op_end(fs, snap, -EIO), -EIO);
	}
	ck_assert_uint_eq(lookup(fs, CRP_ROOT_INO, "ghost"), 0);
	ck_assert_int_eq(crp_fs_getattr(fs, CRP_ROOT_INO, &a), 0);
	ck_assert_uint_eq(a.mode, ra.mode);
	for (int i = 0; i < 20; i++) {
		snprintf(name, sizeof(name), "f%02d", i);
		ck_assert_msg(lookup(fs, CRP_ROOT_INO, name) != 0, "%s lost with the failed operation",
			      name);
	}
	ck_assert_int_eq(crp_fs_unmount(fs), 0);
	ck_assert_int_eq(fsck(false, &res), CRP_FSCK_OK);

	/* A crash: the fsync'd file is there, the operation kept since is not. */
	pid = fork();
	ck_assert_int_ge(pid, 0);
	if (pid == 0) {
		struct crp_fs *cfs = mount_fs_commit(600000);

		create_file(cfs, CRP_ROOT_INO, "synced", data, sizeof(data));
		if (crp_fs_fsync(cfs, CRP_ROOT_INO, false) != 0)
			_exit(2);
		create_file(cfs, CRP_ROOT_INO, "kept", data, 100);
		_exit(0);
	}
	ck_assert_int_eq(waitpid(pid, &st, 0), pid);
	ck_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0);
	fs = mount_fs_commit(CRP_FS_COMMIT_OFF);
	{
		uint64_t f = lookup(fs, CRP_ROOT_INO, "synced");

		ck_assert_uint_ne(f, 0);
		read_back(fs, f, 0, data, sizeof(data));
		ck_assert_uint_eq(lookup(fs, CRP_ROOT_INO, "kept"), 0);
		for (int i = 0; i < 20; i++) {
			snprintf(name, sizeof(name), "f%02d", i);
			f = lookup(fs, CRP_ROOT_INO, name);
			ck_assert_uint_ne(f, 0);
			read_back(fs, f, 0, data, 1000 + (size_t)i);
		}
	}
	ck_assert_int_eq(crp_fs_unmount(fs), 0);
	ck_assert_int_eq(fsck(false, &res), CRP_FSCK_OK);
	rm_tree();
}
END_TEST

/*
 * Large writes go to whole stripes: a run of a stripe or more that does
 * not continue its file's last block starts on a stripe boundary, and the
 * next 1 MiB write continues right after it (RAID-5 on 3 with 64 KiB
 * chunks: 32 blocks a stripe).
 */
START_TEST(large_runs_stripe_aligned)
{
	enum { MIB = 1 << 20, SW = 2 * 65536 / CRP_BLOCK };
	uint8_t *data = malloc(MIB);
	struct crp_fs *fs;
	struct crp_attr a;
	uint64_t fh, pblk, len, p2, l2;
	uint32_t fl;

	ck_assert_ptr_nonnull(data);
	format();
	fill_pattern(data, MIB, 5);
	fs = mount_fs();
	/* A small file first, so that the free space does not start aligned. */
	create_file(fs, CRP_ROOT_INO, "small", data, 3 * CRP_BLOCK);
	ck_assert_int_eq(crp_fs_create(fs, CRP_ROOT_INO, "big", 0644, O_RDWR, &root_cred, &a, &fh),
			 0);
	ck_assert_int_eq(crp_fs_write(fs, a.ino, fh, 0, data, MIB), MIB);
	ck_assert_int_eq(crp_fs_write(fs, a.ino, fh, MIB, data, MIB), MIB);
	{
		uint64_t s = crp_fs_op_begin(fs);
		struct crp_fs_inode *ip;

		ck_assert_int_eq(crp_fs_iget(fs, a.ino, &ip), 0);
		ck_assert_int_eq(crp_fs_emap(ip, 0, &pblk, &len, &fl), 1);
		ck_assert_int_eq(crp_fs_emap(ip, MIB / CRP_BLOCK, &p2, &l2, &fl), 1);
		crp_fs_op_end(fs, s, 0);
	}
	ck_assert_msg(pblk % SW == 0, "the first run starts at block %llu, not on a stripe",
		      (unsigned long long)pblk);
	ck_assert_uint_eq(p2, pblk + MIB / CRP_BLOCK);
	ck_assert_int_eq(crp_fs_release(fs, a.ino, fh), 0);
	crp_fs_forget(fs, a.ino, 1);
	read_back(fs, a.ino, MIB, data, MIB);
	ck_assert_int_eq(crp_fs_unmount(fs), 0);
	free(data);
	rm_tree();
}
END_TEST

/*
 * File data is read outside the core's lock: a plan under it, the blocks
 * read without it, a check after.  The hook runs in that gap.  A change
 * elsewhere (a create, committed) leaves the read as it was; a truncate
 * of the file being read, committed, with another file written over the
 * blocks it freed, makes it read again under the lock, and it returns
 * what the file holds then (nothing), never the other file's data.
 */
struct gap_ctx {
	struct crp_fs *fs;
	int what; /* 1: create and fsync; 2: truncate X, fsync, write Y, fsync */
	uint64_t x;
	const uint8_t *ydata;
	size_t len;
	int ran;
};

static void read_gap(void *p)
{
	struct gap_ctx *g = p;
	struct crp_attr in = { .size = 0 }, out;
	char name[32];

	g->fs->read_gap = NULL; /* once */
	g->ran++;
	if (g->what == 1) {
		snprintf(name, sizeof(name), "z%d", g->ran);
		create_file(g->fs, CRP_ROOT_INO, name, g->ydata, 100);
		ck_assert_int_eq(crp_fs_fsync(g->fs, CRP_ROOT_INO, false), 0);
		return;
	}
	ck_assert_int_eq(crp_fs_setattr(g->fs, g->x, &in, CRP_SET_SIZE, &root_cred, &out), 0);
	ck_assert_int_eq(crp_fs_fsync(g->fs, g->x, false), 0);
	create_file(g->fs, CRP_ROOT_INO, "y", g->ydata, g->len);
	ck_assert_int_eq(crp_fs_fsync(g->fs, CRP_ROOT_INO, false), 0);
}

START_TEST(read_outside_lock)
{
	enum { LEN = 1 << 20 };
	uint8_t *xdata = malloc(LEN), *ydata = malloc(LEN), *buf = malloc(LEN);
	struct crp_fs_counters c0, c1;
	struct gap_ctx g = { 0 };
	struct crp_fs *fs;
	uint64_t x, fh;

	ck_assert(xdata && ydata && buf);
	format();
	fill_pattern(xdata, LEN, 11);
	fill_pattern(ydata, LEN, 97);
	fs = mount_fs();
	x = create_file(fs, CRP_ROOT_INO, "x", xdata, LEN);
	ck_assert_int_eq(crp_fs_fsync(fs, CRP_ROOT_INO, false), 0);
	ck_assert_int_eq(crp_fs_open(fs, x, O_RDONLY, &fh), 0);

	/* Nothing meanwhile: read outside, no retry. */
	crp_fs_get_counters(fs, &c0);
	ck_assert_int_eq(crp_fs_read(fs, x, fh, 0, buf, LEN), LEN);
	ck_assert_int_eq(memcmp(buf, xdata, LEN), 0);
	crp_fs_get_counters(fs, &c1);
	ck_assert_uint_eq(c1.data_outside - c0.data_outside, 1);
	ck_assert_uint_eq(c1.data_outside_retries, c0.data_outside_retries);

	/* This host commits something else meanwhile: still holds. */
	g = (struct gap_ctx){ .fs = fs, .what = 1, .x = x, .ydata = ydata, .len = LEN };
	fs->read_gap_ctx = &g;
	fs->read_gap = read_gap;
	ck_assert_int_eq(crp_fs_read(fs, x, fh, 4096, buf, LEN - 8192), LEN - 8192);
	ck_assert_int_eq(g.ran, 1);
	ck_assert_int_eq(memcmp(buf, xdata + 4096, LEN - 8192), 0);
	crp_fs_get_counters(fs, &c0);
	ck_assert_uint_eq(c0.data_outside - c1.data_outside, 1);
	ck_assert_uint_eq(c0.data_outside_retries, c1.data_outside_retries);

	/* The file loses its blocks to another file meanwhile. */
	g = (struct gap_ctx){ .fs = fs, .what = 2, .x = x, .ydata = ydata, .len = LEN };
	fs->read_gap = read_gap;
	ck_assert_int_eq(crp_fs_read(fs, x, fh, 0, buf, LEN), 0);
	ck_assert_int_eq(g.ran, 1);
	crp_fs_get_counters(fs, &c1);
	ck_assert_uint_eq(c1.data_outside_retries - c0.data_outside_retries, 1);
	ck_assert_int_eq(crp_fs_release(fs, x, fh), 0);
	read_back(fs, lookup(fs, CRP_ROOT_INO, "y"), 0, ydata, LEN);
	ck_assert_int_eq(crp_fs_unmount(fs), 0);
	free(xdata);
	free(ydata);
	free(buf);
	rm_tree();
}
END_TEST


/* The physical block of file block @l of @ino. */
static uint64_t pblk_of(struct crp_fs *fs, uint64_t ino, uint64_t l)
{
	uint64_t s = crp_fs_op_begin(fs), pblk, len;
	struct crp_fs_inode *ip;
	uint32_t fl;

	ck_assert_int_eq(crp_fs_iget(fs, ino, &ip), 0);
	ck_assert_int_eq(crp_fs_emap(ip, l, &pblk, &len, &fl), 1);
	crp_fs_op_end(fs, s, 0);
	return pblk;
}

/* Mark array block @pblk unreadable on its data member and on its parity
 * member: a read of it fails, and so does its rebuild. */
static void unreadable(struct crp_fs *fs, uint64_t pblk)
{
	const struct crp_geom *g = crp_array_geom(fs->m->a);
	struct crp_loc loc;
	char err[256];
	int p, q;

	ck_assert_int_eq(crp_geom_map(g, pblk * CRP_BLOCK, &loc), 0);
	crp_geom_parity(g, loc.stripe, &p, &q);
	ck_assert_msg(crp_file_fault_medium(fx.specs[loc.member] + 5, 0, loc.member_off / 512,
					    CRP_BLOCK / 512, err, sizeof(err)) == 0, "%s", err);
	ck_assert_msg(crp_file_fault_medium(fx.specs[p] + 5, 0,
					    crp_geom_member_off(g, loc.stripe, loc.chunk_off) / 512,
					    CRP_BLOCK / 512, err, sizeof(err)) == 0, "%s", err);
}

/*
 * A write that fails after it wrote part of its data, in a batch: the
 * operation is undone, the batch before it stays, and the blocks it wrote
 * read back without error (each holds what the failed write put there, its
 * checksum with it), before and after the commit and a remount.  The
 * first block of the failing write is one the batch allocated (written in
 * place: held in memory); its second block must be merged with old
 * content that cannot be read.  Before it, an operation that frees the
 * batch's block and fails gives it back to the file as it was.
 */
START_TEST(failed_write_in_batch_leaves_readable_blocks)
{
	uint8_t a[2 * CRP_BLOCK], b[2 * CRP_BLOCK], got[CRP_BLOCK];
	uint64_t ino, fh, x, y;
	struct crp_fs *fs;
	char err[256];

	format();
	fill_pattern(a, sizeof(a), 3);
	fill_pattern(b, sizeof(b), 4);
	fs = mount_fs_commit(600000);
	ino = create_file(fs, CRP_ROOT_INO, "f", a, sizeof(a));
	ck_assert_int_eq(crp_fs_fsync(fs, ino, false), 0);
	y = pblk_of(fs, ino, 1);
	ck_assert_int_eq(crp_fs_open(fs, ino, O_RDWR, &fh), 0);
	/* The batch: block 0 rewritten to a block of its own. */
	fill_pattern(a, CRP_BLOCK, 5);
	ck_assert_int_eq(crp_fs_write(fs, ino, fh, 0, a, CRP_BLOCK), CRP_BLOCK);
	x = pblk_of(fs, ino, 0);
	ck_assert(crp_meta_is_new(fs->m, x));
	ck_assert(fs->m->dheld && g_hash_table_contains(fs->m->dheld, GSIZE_TO_POINTER(x)));
	/* An operation frees that block, cannot have it again, and fails:
	 * the block is the file's again, with what was held for it. */
	{
		uint64_t s = crp_fs_op_begin(fs), start;
		uint32_t n;

		ck_assert_int_eq(crp_meta_free(fs->m, x, 1, false), 0);
		ck_assert_int_eq(crp_meta_alloc_data(fs->m, x, 1, &start, &n), 0);
		ck_assert_uint_ne(start, x);
		crp_fs_op_end(fs, s, -EIO);
	}
	ck_assert(crp_meta_is_new(fs->m, x));
	read_back(fs, ino, 0, a, CRP_BLOCK);
	unreadable(fs, y);
	ck_assert_int_eq(crp_fs_write(fs, ino, fh, 0, b, CRP_BLOCK + 100), -EIO);
	for (int i = 0; i < NM; i++)
		ck_assert_msg(crp_file_fault_clear(fx.specs[i] + 5, err, sizeof(err)) == 0, "%s", err);
	ck_assert_int_eq(crp_fs_read(fs, ino, fh, 0, got, CRP_BLOCK), CRP_BLOCK);
	ck_assert_msg(!memcmp(got, a, CRP_BLOCK) || !memcmp(got, b, CRP_BLOCK),
		      "block 0 holds neither write");
	ck_assert_int_eq(crp_fs_fsync(fs, ino, false), 0);
	ck_assert_int_eq(crp_fs_release(fs, ino, fh), 0);
	ck_assert_int_eq(crp_fs_unmount(fs), 0);

	fs = mount_fs();
	ck_assert_int_eq(crp_fs_open(fs, ino, O_RDONLY, &fh), 0);
	ck_assert_int_eq(crp_fs_read(fs, ino, fh, 0, got, CRP_BLOCK), CRP_BLOCK);
	ck_assert_msg(!memcmp(got, a, CRP_BLOCK) || !memcmp(got, b, CRP_BLOCK),
		      "block 0 holds neither write after a remount");
	ck_assert_int_eq(crp_fs_release(fs, ino, fh), 0);
	ck_assert_int_eq(crp_fs_unmount(fs), 0);
	rm_tree();
}
END_TEST
/*
 * Small overwrites of a file are held in memory until their batch commits,
 * in blocks taken side by side from wholly free stripes: 64 random 4 KiB
 * overwrites send no stripe write until the fsync but (at most) the
 * batch's HELD mark in the shared block, and the fsync writes them as
 * full stripes (no parity read), and so does a second round over the same
 * blocks.  Reads see them before and after; a crash
 * keeps what was fsync'd and nothing held after it; fsck is clean.
 */
START_TEST(small_writes_held_until_commit)
{
	enum { NBLK = 512, NW = 64, NCRASH = 16 };
	const size_t size = (size_t)NBLK * CRP_BLOCK;
	uint8_t *model = malloc(size), blk[CRP_BLOCK];
	struct crp_fsck_result res;
	struct crp_host_counters *ctr;
	uint64_t ino, fh, txns0, full0, rmw0, flushed0, runs0, marks0;
	uint32_t cb[NCRASH];
	unsigned seed = 77;
	bool done[NBLK] = { false };
	struct crp_fs *fs;
	pid_t pid;
	int st;

	ck_assert_ptr_nonnull(model);
	format();
	fill_pattern(model, size, 9);
	fs = mount_fs_commit(600000);
	ino = create_file(fs, CRP_ROOT_INO, "r", model, size);
	ck_assert_int_eq(crp_fs_fsync(fs, ino, false), 0);
	ck_assert_int_eq(crp_fs_open(fs, ino, O_RDWR, &fh), 0);
	ctr = crp_array_counters(fs->m->a);
	txns0 = atomic_load(&ctr->txns);
	full0 = atomic_load(&ctr->full_stripe);
	rmw0 = atomic_load(&ctr->rmw);
	flushed0 = fs->m->dheld_flushed;
	runs0 = fs->m->dheld_runs;
	marks0 = fs->m->held_marks;
	for (int k = 0; k < NW; k++) {
		uint32_t b;

		do
			b = (uint32_t)(rand_r(&seed) % NBLK);
		while (done[b]);
		done[b] = true;
		fill_pattern(blk, sizeof(blk), 1000u + (unsigned)k);
		memcpy(model + (size_t)b * CRP_BLOCK, blk, sizeof(blk));
		ck_assert_int_eq(crp_fs_write(fs, ino, fh, (uint64_t)b * CRP_BLOCK, blk, sizeof(blk)),
				 (ssize_t)sizeof(blk));
	}
	/* At most one write: the shared block's HELD mark, before the first
	 * write of the batch is answered (none if the fsync before left the
	 * mark, its blocks waiting for a deferred checkpoint). */
	ck_assert_uint_le(fs->m->held_marks - marks0, 1);
	ck_assert_uint_eq(atomic_load(&ctr->txns) - txns0, fs->m->held_marks - marks0);
	ck_assert_uint_eq(g_hash_table_size(fs->m->dheld), NW);
	read_back(fs, ino, 0, model, size);
	ck_assert_int_eq(crp_fs_fsync(fs, ino, false), 0);
	ck_assert_uint_eq(fs->m->dheld_flushed - flushed0, NW);
	fprintf(stderr, "small_writes_held_until_commit: %d overwrites: %llu runs, %llu full "
		"stripes, %llu read-modify-writes (metadata included)\n", NW,
		(unsigned long long)(fs->m->dheld_runs - runs0),
		(unsigned long long)(atomic_load(&ctr->full_stripe) - full0),
		(unsigned long long)(atomic_load(&ctr->rmw) - rmw0));
	ck_assert_msg(fs->m->dheld_runs - runs0 <= 3, "%d blocks went out in %llu runs", NW,
		      (unsigned long long)(fs->m->dheld_runs - runs0));
	ck_assert_msg(atomic_load(&ctr->full_stripe) - full0 >= NW / 32 - 1,
		      "%d blocks in %llu full stripes", NW,
		      (unsigned long long)(atomic_load(&ctr->full_stripe) - full0));
	read_back(fs, ino, 0, model, size);

	/* The same blocks again: the blocks they had before the first round
	 * are free now, right after their unchanged neighbours, and still the
	 * new copies come side by side from free stripes, not back to where
	 * they were one by one. */
	runs0 = fs->m->dheld_runs;
	for (uint32_t b = 0; b < NBLK; b++) {
		if (!done[b])
			continue;
		fill_pattern(blk, sizeof(blk), 3000u + b);
		memcpy(model + (size_t)b * CRP_BLOCK, blk, sizeof(blk));
		ck_assert_int_eq(crp_fs_write(fs, ino, fh, (uint64_t)b * CRP_BLOCK, blk, sizeof(blk)),
				 (ssize_t)sizeof(blk));
	}
	ck_assert_int_eq(crp_fs_fsync(fs, ino, false), 0);
	ck_assert_msg(fs->m->dheld_runs - runs0 <= 3, "again: %d blocks went out in %llu runs", NW,
		      (unsigned long long)(fs->m->dheld_runs - runs0));
	read_back(fs, ino, 0, model, size);
	ck_assert_int_eq(crp_fs_release(fs, ino, fh), 0);
	ck_assert_int_eq(crp_fs_unmount(fs), 0);
	ck_assert_int_eq(fsck(false, &res), CRP_FSCK_OK);

	/* A crash with overwrites held: the first half is fsync'd and stays,
	 * the second leaves its blocks as the fsync left them. */
	for (int k = 0; k < NCRASH; k++)
		cb[k] = (uint32_t)(rand_r(&seed) % NBLK);
	pid = fork();
	ck_assert_int_ge(pid, 0);
	if (pid == 0) {
		struct crp_fs *cfs = mount_fs_commit(600000);
		uint64_t cfh;

		if (crp_fs_open(cfs, ino, O_RDWR, &cfh) != 0)
			_exit(2);
		for (int k = 0; k < NCRASH; k++) {
			fill_pattern(blk, sizeof(blk), 5000u + (unsigned)k);
			if (crp_fs_write(cfs, ino, cfh, (uint64_t)cb[k] * CRP_BLOCK, blk,
					 sizeof(blk)) != (ssize_t)sizeof(blk))
				_exit(3);
			if (k == NCRASH / 2 - 1 && crp_fs_fsync(cfs, ino, false) != 0)
				_exit(4);
		}
		if (!g_hash_table_size(cfs->m->dheld))
			_exit(5); /* nothing held: the crash would test nothing */
		_exit(0);
	}
	ck_assert_int_eq(waitpid(pid, &st, 0), pid);
	ck_assert_msg(WIFEXITED(st) && WEXITSTATUS(st) == 0, "the writer ended with %d", st);
	for (int k = 0; k < NCRASH / 2; k++)
		fill_pattern(model + (size_t)cb[k] * CRP_BLOCK, CRP_BLOCK, 5000u + (unsigned)k);
	fs = mount_fs_commit(CRP_FS_COMMIT_OFF);
	read_back(fs, ino, 0, model, size);
	ck_assert_int_eq(crp_fs_unmount(fs), 0);
	ck_assert_int_eq(fsck(false, &res), CRP_FSCK_OK);
	free(model);
	rm_tree();
}
END_TEST

/*
 * The deferred checkpoint: rounds of random overwrites of one file, each
 * fsync'd, on a host alone.  Every fsync commits to the journal only and
 * the blocks they change again and again (extent, checksum-table, bitmap
 * blocks) wait in memory: nothing is written in place meanwhile, and
 * reads see every round.  A crash with the chain open: fsck without
 * repair finds the journal waiting (the blocks are not in place), and the
 * next mount replays the whole chain; what was fsync'd is all there.
 * Then the same, ended by an unmount: the blocks in place, each once,
 * fewer than the commits journaled.
 */
static void overwrite_rounds(struct crp_fs *fs, uint64_t ino, uint8_t *model, uint32_t nblk,
			     int rounds, unsigned *seed, unsigned tag)
{
	uint8_t blk[CRP_BLOCK];
	uint64_t fh;

	ck_assert_int_eq(crp_fs_open(fs, ino, O_RDWR, &fh), 0);
	for (int r = 0; r < rounds; r++) {
		for (int k = 0; k < 16; k++) {
			uint32_t b = (uint32_t)(rand_r(seed) % nblk);

			fill_pattern(blk, sizeof(blk), tag + (unsigned)(r * 16 + k));
			memcpy(model + (size_t)b * CRP_BLOCK, blk, sizeof(blk));
			ck_assert_int_eq(crp_fs_write(fs, ino, fh, (uint64_t)b * CRP_BLOCK, blk,
						      sizeof(blk)),
					 (ssize_t)sizeof(blk));
		}
		ck_assert_int_eq(crp_fs_fsync(fs, ino, false), 0);
	}
	ck_assert_int_eq(crp_fs_release(fs, ino, fh), 0);
}

START_TEST(deferred_checkpoint)
{
	enum { NBLK = 2048, ROUNDS = 12 };
	const size_t size = (size_t)NBLK * CRP_BLOCK;
	uint8_t *model = malloc(size);
	struct crp_fs_counters c0, c1;
	struct crp_fsck_result res;
	struct crp_fs *fs;
	unsigned seed = 31;
	uint64_t ino;
	int st, rounds;
	pid_t pid;

	ck_assert_ptr_nonnull(model);
	format();
	fill_pattern(model, size, 4);
	fs = mount_fs_commit(600000);
	ino = create_file(fs, CRP_ROOT_INO, "r", model, size);
	ck_assert_int_eq(crp_fs_unmount(fs), 0);

	/* The crash, with a chain open (a chain ends at its size or age
	 * limit: a round more then).  The exit status is the rounds done. */
	pid = fork();
	ck_assert_int_ge(pid, 0);
	if (pid == 0) {
		struct crp_fs *cfs = mount_fs_commit(600000);
		int n = 0;

		cfs->m->hold_max_ns = 600000000000ull; /* one chain for every round */
		crp_fs_get_counters(cfs, &c0);
		while (n < ROUNDS || (!cfs->m->lazy_since_ns && n < 3 * ROUNDS)) {
			overwrite_rounds(cfs, ino, model, NBLK, 1, &seed, 100u + 16u * (unsigned)n);
			n++;
		}
		crp_fs_get_counters(cfs, &c1);
		if (c1.deferred_commits - c0.deferred_commits < ROUNDS / 2)
			_exit(200); /* the fsyncs wrote in place at once */
		if (!cfs->m->lazy_since_ns)
			_exit(201); /* no chain open at the crash */
		_exit(n);
	}
	ck_assert_int_eq(waitpid(pid, &st, 0), pid);
	ck_assert_msg(WIFEXITED(st) && WEXITSTATUS(st) >= ROUNDS && WEXITSTATUS(st) < 200,
		      "the writer ended with %d (200: fsyncs checkpointed at once; 201: no chain "
		      "open at the crash)", st);
	/* The child's rounds on the model (its copy went with it). */
	rounds = WEXITSTATUS(st);
	for (int r = 0; r < rounds; r++)
		for (int k = 0; k < 16; k++) {
			uint32_t b = (uint32_t)(rand_r(&seed) % NBLK);

			fill_pattern(model + (size_t)b * CRP_BLOCK, CRP_BLOCK,
				     100u + 16u * (unsigned)r + (unsigned)k);
		}
	/* The blocks are in the journal only. */
	ck_assert_int_eq(fsck(false, &res), CRP_FSCK_UNCORRECTED);
	fs = mount_fs_commit(600000);
	read_back(fs, ino, 0, model, size);

	/* Ended by a commit of the batch: each block in place once. */
	crp_fs_get_counters(fs, &c0);
	overwrite_rounds(fs, ino, model, NBLK, ROUNDS, &seed, 5000);
	read_back(fs, ino, 0, model, size);
	pthread_mutex_lock(&fs->mu);
	ck_assert_int_eq(crp_meta_batch_flush(fs->m), 0);
	ck_assert(!fs->m->lazy_since_ns);
	pthread_mutex_unlock(&fs->mu);
	crp_fs_get_counters(fs, &c1);
	fprintf(stderr, "deferred_checkpoint: %d fsyncs (%llu deferred) journaled %llu blocks; "
		"%llu went in place\n", ROUNDS,
		(unsigned long long)(c1.deferred_commits - c0.deferred_commits),
		(unsigned long long)(c1.committed_blocks - c0.committed_blocks),
		(unsigned long long)(c1.inplace_blocks - c0.inplace_blocks));
	ck_assert_uint_gt(c1.inplace_blocks, c0.inplace_blocks);
	ck_assert_msg((c1.inplace_blocks - c0.inplace_blocks) * 2 <
			      c1.committed_blocks - c0.committed_blocks,
		      "%llu blocks in place for %llu journaled",
		      (unsigned long long)(c1.inplace_blocks - c0.inplace_blocks),
		      (unsigned long long)(c1.committed_blocks - c0.committed_blocks));
	read_back(fs, ino, 0, model, size);
	ck_assert_int_eq(crp_fs_unmount(fs), 0);
	ck_assert_int_eq(fsck(false, &res), CRP_FSCK_OK);
	fs = mount_fs_commit(CRP_FS_COMMIT_OFF);
	read_back(fs, ino, 0, model, size);
	ck_assert_int_eq(crp_fs_unmount(fs), 0);
	free(model);
	rm_tree();
}
END_TEST

/*
 * Ordered data: a commit that maps file data written since the last sync
 * syncs the members before it writes its journal blocks (a member's
 * volatile cache must not keep the commit and lose the data); one that
 * maps no new data does not.
 */
START_TEST(data_synced_before_journal)
{
	uint8_t data[3 * CRP_BLOCK];
	struct crp_fsck_result res;
	struct crp_fs *fs;
	struct crp_attr a;
	uint64_t o0, ino;

	format();
	fill_pattern(data, sizeof(data), 21);
	fs = mount_fs_commit(600000);
	o0 = fs->m->stats.ordered_syncs;
	ino = create_file(fs, CRP_ROOT_INO, "d", data, sizeof(data));
	ck_assert_int_eq(crp_fs_fsync(fs, ino, false), 0);
	ck_assert_uint_eq(fs->m->stats.ordered_syncs - o0, 1);
	ck_assert(!fs->m->data_unsynced);
	o0 = fs->m->stats.ordered_syncs;
	ck_assert_int_eq(crp_fs_mkdir(fs, CRP_ROOT_INO, "m", 0755, &root_cred, &a), 0);
	ck_assert_int_eq(crp_fs_fsync(fs, CRP_ROOT_INO, false), 0);
	ck_assert_uint_eq(fs->m->stats.ordered_syncs, o0);
	ck_assert_int_eq(crp_fs_unmount(fs), 0);
	ck_assert_int_eq(fsck(false, &res), CRP_FSCK_OK);
	fs = mount_fs();
	read_back(fs, ino, 0, data, sizeof(data));
	ck_assert_int_eq(crp_fs_unmount(fs), 0);
	rm_tree();
}
END_TEST

/*
 * The stream of small writes is not confined to this host's own groups.
 * A file fills them; a first round of random overwrites leaves single
 * free blocks scattered through them (the old copies); a second round
 * must still take whole free stripes (in the other groups) and go out as
 * a few runs, not fill those holes one read-modify-write at a time.
 */
START_TEST(small_writes_stream_beyond_own_groups)
{
	enum { NW = 64 };
	struct crp_fsck_result res;
	struct crp_fs *fs;
	uint64_t own = 0, nblk, ino, fh, runs0;
	uint8_t *chunk = malloc(1u << 20), blk[CRP_BLOCK];
	unsigned seed = 5;

	ck_assert_ptr_nonnull(chunk);
	format();
	fs = mount_fs_commit(600000);
	pthread_mutex_lock(&fs->mu);
	for (uint32_t g = 0; g < fs->m->sb.ag_count; g++)
		if (g % fs->m->sb.max_hosts == (uint32_t)fs->m->slot)
			own += fs->m->ag_free[g];
	pthread_mutex_unlock(&fs->mu);
	nblk = own;
	ck_assert_uint_gt(nblk, 4 * NW);
	ino = create_file(fs, CRP_ROOT_INO, "full", NULL, 0);
	ck_assert_int_eq(crp_fs_open(fs, ino, O_RDWR, &fh), 0);
	memset(chunk, 0x5a, 1u << 20);
	for (uint64_t off = 0; off < nblk * CRP_BLOCK; off += 1u << 20) {
		size_t len = (size_t)CRP_MIN((uint64_t)1 << 20, nblk * CRP_BLOCK - off);

		ck_assert_int_eq(crp_fs_write(fs, ino, fh, off, chunk, len), (ssize_t)len);
	}
	ck_assert_int_eq(crp_fs_fsync(fs, ino, false), 0);
	for (int round = 0; round < 2; round++) {
		runs0 = fs->m->dheld_runs;
		for (int k = 0; k < NW; k++) {
			uint64_t b = (uint64_t)rand_r(&seed) % nblk;

			fill_pattern(blk, sizeof(blk), (unsigned)(round * NW + k));
			ck_assert_int_eq(crp_fs_write(fs, ino, fh, b * CRP_BLOCK, blk, sizeof(blk)),
					 (ssize_t)sizeof(blk));
		}
		ck_assert_int_eq(crp_fs_fsync(fs, ino, false), 0);
		fprintf(stderr, "small_writes_stream_beyond_own_groups: round %d: %d overwrites in "
			"%llu runs\n", round, NW, (unsigned long long)(fs->m->dheld_runs - runs0));
		ck_assert_msg(fs->m->dheld_runs - runs0 <= 4, "round %d: %d blocks went out in %llu runs",
			      round, NW, (unsigned long long)(fs->m->dheld_runs - runs0));
	}
	ck_assert_int_eq(crp_fs_release(fs, ino, fh), 0);
	ck_assert_int_eq(crp_fs_unmount(fs), 0);
	ck_assert_int_eq(fsck(false, &res), CRP_FSCK_OK);
	free(chunk);
	rm_tree();
}
END_TEST

/*
 * A file whose every other block was overwritten (each overwrite goes to
 * a new block: thousands of extents in a chain of extent blocks).  One
 * more overwrite in the middle rewrites a block or two of the chain, not
 * all of it; the file reads back right after a remount, fsck agrees, and
 * a truncate back to a few extents frees the chain.
 */
START_TEST(extent_chain_incremental)
{
	enum { NBLK = 2048 };
	struct crp_fsck_result res;
	struct crp_fs *fs;
	uint8_t *want = malloc((size_t)NBLK * 4096), blk[4096];
	uint64_t ino, fh, before;
	struct crp_attr a;

	ck_assert_ptr_nonnull(want);
	format();
	fill_pattern(want, (size_t)NBLK * 4096, 5);
	fs = mount_fs_commit(CRP_FS_COMMIT_OFF);
	ino = create_file(fs, CRP_ROOT_INO, "big", want, (size_t)NBLK * 4096);
	ck_assert_int_eq(crp_fs_open(fs, ino, O_RDWR, &fh), 0);
	for (uint32_t i = 1; i < NBLK; i += 2) {
		fill_pattern(blk, sizeof(blk), 100 + i);
		memcpy(want + (size_t)i * 4096, blk, sizeof(blk));
		ck_assert_int_eq(crp_fs_write(fs, ino, fh, (uint64_t)i * 4096, blk, sizeof(blk)),
				 (ssize_t)sizeof(blk));
	}
	ck_assert_int_eq(crp_fs_getattr(fs, ino, &a), 0);
	{
		struct crp_fs_inode *ip;
		uint64_t s = crp_fs_op_begin(fs);

		ck_assert_int_eq(crp_fs_iget(fs, ino, &ip), 0);
		ck_assert_msg(ip->nchain >= 10, "only %u chain blocks for %u extents", ip->nchain,
			      ip->next);
		crp_fs_op_end(fs, s, 0);
	}
	/* One more overwrite, in the middle of the file. */
	before = fs->m->stats.committed_blocks;
	fill_pattern(blk, sizeof(blk), 7);
	memcpy(want + (size_t)1000 * 4096, blk, sizeof(blk));
	ck_assert_int_eq(crp_fs_write(fs, ino, fh, 1000ull * 4096, blk, sizeof(blk)),
			 (ssize_t)sizeof(blk));
	ck_assert_msg(fs->m->stats.committed_blocks - before <= 8,
		      "one overwrite wrote %llu blocks in place",
		      (unsigned long long)(fs->m->stats.committed_blocks - before));
	ck_assert_int_eq(crp_fs_release(fs, ino, fh), 0);
	ck_assert_int_eq(crp_fs_unmount(fs), 0);
	ck_assert_int_eq(fsck(false, &res), CRP_FSCK_OK);

	fs = mount_fs();
	read_back(fs, ino, 0, want, (size_t)NBLK * 4096);
	{
		struct crp_attr in = { .size = 3 * 4096 }, out;

		ck_assert_int_eq(crp_fs_setattr(fs, ino, &in, CRP_SET_SIZE, &root_cred, &out), 0);
	}
	read_back(fs, ino, 0, want, 3 * 4096);
	ck_assert_int_eq(crp_fs_unmount(fs), 0);
	ck_assert_int_eq(fsck(false, &res), CRP_FSCK_OK);
	free(want);
	rm_tree();
}
END_TEST

/* The chain of @ino as its cache holds it is the chain on the disks: the
 * same blocks, linked in that order, each with the count the cache keeps. */
static void check_chain(struct crp_fs *fs, uint64_t ino)
{
	uint64_t s = crp_fs_op_begin(fs);
	struct crp_fs_inode *ip;

	ck_assert_int_eq(crp_fs_iget(fs, ino, &ip), 0);
	ck_assert(ip->nchain == 0 || ip->chain_cnt != NULL);
	for (uint32_t i = 0; i < ip->nchain; i++) {
		struct crp_mblk *b;

		ck_assert_int_eq(crp_meta_bread(fs->m, ip->chain[i], CRP_MAGIC_EXTENT, &b), 0);
		ck_assert_uint_eq(crp_mblk_count(b), ip->chain_cnt[i]);
		ck_assert_uint_eq(crp_mblk_next(b), i + 1 < ip->nchain ? ip->chain[i + 1] : 0);
	}
	crp_fs_op_end(fs, s, 0);
}

/*
 * The extent chain under random overwrites, hole punches, preallocations
 * and truncates of a 6 MiB file, every operation its own commit (so that
 * overwrites go to new blocks and split extents): after each round the
 * file reads back as a model of it says, after a remount too, and fsck is
 * clean at the end.
 */
START_TEST(extent_chain_random)
{
	enum { NBLK = 1536, ROUNDS = 6, OPS = 250 };
	const size_t size = (size_t)NBLK * 4096;
	struct crp_fsck_result res;
	struct crp_fs *fs;
	uint8_t *model = malloc(size), *buf = malloc(size);
	uint64_t ino, fh, len = size;
	unsigned seed = 12345;

	ck_assert_ptr_nonnull(model);
	ck_assert_ptr_nonnull(buf);
	format();
	fill_pattern(model, size, 1);
	fs = mount_fs_commit(CRP_FS_COMMIT_OFF);
	ino = create_file(fs, CRP_ROOT_INO, "r", model, size);
	for (int round = 0; round < ROUNDS; round++) {
		ck_assert_int_eq(crp_fs_open(fs, ino, O_RDWR, &fh), 0);
		for (int k = 0; k < OPS; k++) {
			uint64_t b = rand_r(&seed) % NBLK, n = 1 + rand_r(&seed) % 6;
			uint64_t off = b * 4096, cnt = CRP_MIN(n, (uint64_t)NBLK - b) * 4096;
			int what = rand_r(&seed) % 10;

			if (what < 6) {
				/* Overwrite (maybe unaligned at the end). */
				uint64_t c = cnt - (rand_r(&seed) % 2 ? 0 : 100);

				fill_pattern(buf, c, (unsigned)(round * 1000 + k));
				ck_assert_int_eq(crp_fs_write(fs, ino, fh, off, buf, c), (ssize_t)c);
				memcpy(model + off, buf, c);
				len = CRP_MAX(len, off + c);
			} else if (what < 8) {
				ck_assert_int_eq(crp_fs_fallocate(fs, ino, FALLOC_FL_PUNCH_HOLE |
							FALLOC_FL_KEEP_SIZE, off, cnt), 0);
				if (off < len)
					memset(model + off, 0, CRP_MIN(cnt, len - off));
			} else if (what < 9) {
				ck_assert_int_eq(crp_fs_fallocate(fs, ino, FALLOC_FL_KEEP_SIZE, off,
								  cnt), 0);
			} else {
				/* Truncate down, then back up (a hole at the end). */
				struct crp_attr in = { .size = off }, out;

				ck_assert_int_eq(crp_fs_setattr(fs, ino, &in, CRP_SET_SIZE, &root_cred,
								&out), 0);
				if (off < len)
					memset(model + off, 0, size - off);
				in.size = size;
				ck_assert_int_eq(crp_fs_setattr(fs, ino, &in, CRP_SET_SIZE, &root_cred,
								&out), 0);
				len = size;
			}
			if (k % 25 == 24)
				check_chain(fs, ino);
		}
		ck_assert_int_eq(crp_fs_release(fs, ino, fh), 0);
		read_back(fs, ino, 0, model, len);
		ck_assert_int_eq(crp_fs_unmount(fs), 0);
		fs = mount_fs_commit(round % 2 ? CRP_FS_COMMIT_OFF : 0);
		read_back(fs, ino, 0, model, len);
	}
	ck_assert_int_eq(crp_fs_unmount(fs), 0);
	ck_assert_int_eq(fsck(false, &res), CRP_FSCK_OK);
	free(model);
	free(buf);
	rm_tree();
}
END_TEST

/*
 * A transaction that ends exactly at the end of a journal ring, followed by
 * a header write (it freed a metadata block): the header must still be
 * one that readers accept, at unmount and for fsck.
 */
START_TEST(journal_ring_end)
{
	struct crp_fsck_result res;
	struct crp_fs *fs;
	struct crp_fs_inode *ip;
	uint64_t s;

	format();
	fs = mount_fs_commit(CRP_FS_COMMIT_OFF);
	s = crp_fs_op_begin(fs);
	ck_assert_int_eq(crp_fs_iget(fs, CRP_ROOT_INO, &ip), 0);
	crp_fs_touch(ip, false, true, true);
	ck_assert_int_eq(crp_fs_istore(fs, ip), 0);
	ck_assert_uint_eq(fs->m->dirty->len, 1);
	/* One block: descriptor, image, commit end at the ring's last block. */
	fs->m->j_pos = fs->m->sb.journal_blocks - 2 - 3;
	fs->m->tx_freed_meta = true;
	ck_assert_int_eq(crp_fs_op_end(fs, s, 0), 0);
	ck_assert_uint_eq(fs->m->j_pos, fs->m->sb.journal_blocks - 2);
	ck_assert_int_eq(crp_fs_unmount(fs), 0);
	ck_assert_int_eq(fsck(false, &res), CRP_FSCK_OK);
	fs = mount_fs();
	ck_assert_int_eq(crp_fs_unmount(fs), 0);
	ck_assert_int_eq(fsck(false, &res), CRP_FSCK_OK);
	rm_tree();
}
END_TEST

START_TEST(fsck_finds_and_repairs)
{
	struct crp_fsck_result res;
	struct crp_fs *fs;
	uint64_t ino;
	uint8_t data[8192];

	format();
	fill_pattern(data, sizeof(data), 1);
	fs = mount_fs();
	ino = create_file(fs, CRP_ROOT_INO, "f", data, sizeof(data));
	/* Break the link count behind the core's back. */
	pthread_mutex_lock(&fs->mu);
	{
		struct crp_fs_inode *ip;

		ck_assert_int_eq(crp_fs_iget(fs, ino, &ip), 0);
		ip->d.nlink = 5;
		ck_assert_int_eq(crp_fs_istore(fs, ip), 0);
	}
	pthread_mutex_unlock(&fs->mu);
	ck_assert_int_eq(crp_fs_unmount(fs), 0);
	ck_assert_int_eq(fsck(false, &res), CRP_FSCK_UNCORRECTED);
	ck_assert_uint_eq(res.problems, 1);
	ck_assert_int_eq(fsck(true, &res), CRP_FSCK_CORRECTED);
	ck_assert_int_eq(fsck(false, &res), CRP_FSCK_OK);
	rm_tree();
}
END_TEST

static Suite *fs_suite(void)
{
	Suite *s = suite_create("fs");
	TCase *t = tcase_create("core");

	tcase_set_timeout(t, 600);
	tcase_add_test(t, files_persist);
	tcase_add_test(t, namespace_ops);
	tcase_add_test(t, xattrs);
	tcase_add_test(t, sparse_truncate_seek);
	tcase_add_test(t, large_directory);
	tcase_add_test(t, crash_replay);
	tcase_add_test(t, deferred_checkpoint);
	tcase_add_test(t, data_synced_before_journal);
	tcase_add_test(t, group_commit);
	tcase_add_test(t, undo_restores_the_batch_exactly);
	tcase_add_test(t, read_outside_lock);
	tcase_add_test(t, large_runs_stripe_aligned);
	tcase_add_test(t, small_writes_held_until_commit);
	tcase_add_test(t, small_writes_stream_beyond_own_groups);
	tcase_add_test(t, failed_write_in_batch_leaves_readable_blocks);
	tcase_add_test(t, extent_chain_incremental);
	tcase_add_test(t, extent_chain_random);
	tcase_add_test(t, journal_ring_end);
	tcase_add_test(t, fsck_finds_and_repairs);
	suite_add_tcase(s, t);
	return s;
}

int main(void)
{
	SRunner *sr = srunner_create(fs_suite());
	int failed;

	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
