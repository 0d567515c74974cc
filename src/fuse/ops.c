/*
 * FUSE low-level handlers: each converts its arguments, calls the
 * filesystem core (crp_fs_*), and replies.  No filesystem logic lives here;
 * errors from the core become errnos once, at fuse_reply_err.
 *
 * Inode numbers are the core's own (CRP_ROOT_INO == FUSE_ROOT_ID).  File
 * handles are the core's.  Every handler may run on any of the session's
 * threads at once; the core is thread-safe and this file keeps no state
 * beyond the read-only struct crp_fuse.
 *
 * Lookup counts: a reply that hands the kernel an entry (lookup, create,
 * mknod, mkdir, symlink, link, readdirplus) counts one lookup in the core.
 * If the reply cannot be delivered (the request was interrupted), the count
 * is given back at once with crp_fs_forget, and an open handle is released.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "crpfs/err.h"
#include "crpfs/log.h"
#include "crpfs/util.h"
#include "fuse_i.h"

/* I/O size the kernel and programs such as cp(1) use for this filesystem. */
#define CRP_FUSE_BLKSIZE (128u * 1024)

static struct crp_fuse *cf_of(fuse_req_t req)
{
	return fuse_req_userdata(req);
}

static void reply_err(fuse_req_t req, int r)
{
	fuse_reply_err(req, crp_errno(r));
}

/* For requests answered by fuse_reply_err alone: 0 (or a count) is success. */
static void reply_status(fuse_req_t req, int r)
{
	fuse_reply_err(req, r < 0 ? crp_errno(r) : 0);
}

static void attr_to_stat(const struct crp_attr *a, struct stat *st)
{
	memset(st, 0, sizeof(*st));
	st->st_ino = a->ino;
	st->st_mode = a->mode;
	st->st_nlink = a->nlink;
	st->st_uid = a->uid;
	st->st_gid = a->gid;
	st->st_rdev = a->rdev;
	st->st_size = (off_t)a->size;
	st->st_blocks = (blkcnt_t)a->blocks;
	st->st_blksize = CRP_FUSE_BLKSIZE;
	st->st_atim = a->atime;
	st->st_mtim = a->mtime;
	st->st_ctim = a->ctime;
}

static void cred_of(fuse_req_t req, struct crp_cred *cred)
{
	const struct fuse_ctx *ctx = fuse_req_ctx(req);

	cred->uid = ctx->uid;
	cred->gid = ctx->gid;
	cred->umask = ctx->umask;
}

static void entry_of(const struct crp_fuse *cf, const struct crp_attr *a,
		     struct fuse_entry_param *e)
{
	memset(e, 0, sizeof(*e));
	e->ino = a->ino;
	e->generation = a->generation;
	attr_to_stat(a, &e->attr);
	e->attr_timeout = cf->attr_timeout;
	e->entry_timeout = cf->attr_timeout;
}

/* Reply with a new entry; give the lookup back if the kernel never sees it. */
static void reply_entry(fuse_req_t req, const struct crp_attr *a)
{
	struct crp_fuse *cf = cf_of(req);
	struct fuse_entry_param e;

	entry_of(cf, a, &e);
	if (fuse_reply_entry(req, &e) != 0)
		crp_fs_forget(cf->fs, a->ino, 1);
}

static void reply_entry_or_err(fuse_req_t req, int r, const struct crp_attr *a)
{
	if (r < 0)
		reply_err(req, r);
	else
		reply_entry(req, a);
}

static void op_init(void *userdata, struct fuse_conn_info *conn)
{
	(void)userdata;
	/* Data goes to the core at write(2): no kernel write-back cache, so
	 * fsync, close-to-open and other hosts see every byte written. */
	conn->want &= ~FUSE_CAP_WRITEBACK_CACHE;
	/* The kernel truncates with a setattr before open(O_TRUNC), and clears
	 * set-user-ID/set-group-ID bits itself: the core need not know. */
	conn->want &= ~(FUSE_CAP_ATOMIC_O_TRUNC | FUSE_CAP_HANDLE_KILLPRIV);
	/* Let the kernel enforce ACLs stored as system.posix_acl_* xattrs. */
	if (conn->capable & FUSE_CAP_POSIX_ACL)
		conn->want |= FUSE_CAP_POSIX_ACL;
	/* The kernel passes the creator's umask (struct crp_cred) instead of
	 * applying it: the core applies it, except where a default ACL of the
	 * parent replaces it, as POSIX.1e says. */
	if (conn->capable & FUSE_CAP_DONT_MASK)
		conn->want |= FUSE_CAP_DONT_MASK;
	if (conn->capable & FUSE_CAP_READDIRPLUS)
		conn->want |= FUSE_CAP_READDIRPLUS | FUSE_CAP_READDIRPLUS_AUTO;
	/* Times are kept to the nanosecond. */
	conn->time_gran = 1;
}

static void op_destroy(void *userdata)
{
	(void)userdata;
	crp_debug("mount.crpfs: session closed");
}

static void op_lookup(fuse_req_t req, fuse_ino_t parent, const char *name)
{
	struct crp_attr a;
	int r = crp_fs_lookup(cf_of(req)->fs, parent, name, &a);

	reply_entry_or_err(req, r, &a);
}

static void op_forget(fuse_req_t req, fuse_ino_t ino, uint64_t nlookup)
{
	crp_fs_forget(cf_of(req)->fs, ino, nlookup);
	fuse_reply_none(req);
}

static void op_forget_multi(fuse_req_t req, size_t count, struct fuse_forget_data *forgets)
{
	struct crp_fs *fs = cf_of(req)->fs;

	for (size_t i = 0; i < count; i++)
		crp_fs_forget(fs, forgets[i].ino, forgets[i].nlookup);
	fuse_reply_none(req);
}

static void op_getattr(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct crp_fuse *cf = cf_of(req);
	struct crp_attr a;
	struct stat st;
	int r;

	(void)fi;
	r = crp_fs_getattr(cf->fs, ino, &a);
	if (r < 0) {
		reply_err(req, r);
		return;
	}
	attr_to_stat(&a, &st);
	fuse_reply_attr(req, &st, cf->attr_timeout);
}

static void op_setattr(fuse_req_t req, fuse_ino_t ino, struct stat *attr, int to_set,
		       struct fuse_file_info *fi)
{
	struct crp_fuse *cf = cf_of(req);
	struct crp_attr in, out;
	struct crp_cred cred;
	struct timespec now;
	unsigned set = 0;
	struct stat st;
	int r;

	(void)fi;
	memset(&in, 0, sizeof(in));
	clock_gettime(CLOCK_REALTIME, &now);
	in.ino = ino;
	in.mode = attr->st_mode;
	in.uid = attr->st_uid;
	in.gid = attr->st_gid;
	in.size = (uint64_t)attr->st_size;
	in.atime = attr->st_atim;
	in.mtime = attr->st_mtim;
	in.ctime = attr->st_ctim;
	if (to_set & FUSE_SET_ATTR_MODE)
		set |= CRP_SET_MODE;
	if (to_set & FUSE_SET_ATTR_UID)
		set |= CRP_SET_UID;
	if (to_set & FUSE_SET_ATTR_GID)
		set |= CRP_SET_GID;
	if (to_set & FUSE_SET_ATTR_SIZE)
		set |= CRP_SET_SIZE;
	if (to_set & FUSE_SET_ATTR_ATIME_NOW) {
		in.atime = now;
		set |= CRP_SET_ATIME | CRP_SET_ATIME_NOW;
	} else if (to_set & FUSE_SET_ATTR_ATIME) {
		set |= CRP_SET_ATIME;
	}
	if (to_set & FUSE_SET_ATTR_MTIME_NOW) {
		in.mtime = now;
		set |= CRP_SET_MTIME | CRP_SET_MTIME_NOW;
	} else if (to_set & FUSE_SET_ATTR_MTIME) {
		set |= CRP_SET_MTIME;
	}
	if (to_set & FUSE_SET_ATTR_CTIME)
		set |= CRP_SET_CTIME;
	cred_of(req, &cred);
	r = CRP_TX_RETRY(crp_fs_setattr(cf->fs, ino, &in, set, &cred, &out));
	if (r < 0) {
		reply_err(req, r);
		return;
	}
	attr_to_stat(&out, &st);
	fuse_reply_attr(req, &st, cf->attr_timeout);
}

static void op_readlink(fuse_req_t req, fuse_ino_t ino)
{
	char buf[CRP_SYMLINK_MAX + 1];
	ssize_t n = crp_fs_readlink(cf_of(req)->fs, ino, buf, sizeof(buf) - 1);

	if (n < 0) {
		reply_err(req, (int)n);
		return;
	}
	buf[(size_t)n < sizeof(buf) - 1 ? (size_t)n : sizeof(buf) - 1] = '\0';
	fuse_reply_readlink(req, buf);
}

static void op_mknod(fuse_req_t req, fuse_ino_t parent, const char *name, mode_t mode,
		     dev_t rdev)
{
	struct crp_cred cred;
	struct crp_attr a;
	int r;

	cred_of(req, &cred);
	r = CRP_TX_RETRY(crp_fs_mknod(cf_of(req)->fs, parent, name, mode, rdev, &cred, &a));
	reply_entry_or_err(req, r, &a);
}

static void op_mkdir(fuse_req_t req, fuse_ino_t parent, const char *name, mode_t mode)
{
	struct crp_cred cred;
	struct crp_attr a;
	int r;

	cred_of(req, &cred);
	r = CRP_TX_RETRY(crp_fs_mkdir(cf_of(req)->fs, parent, name, mode | S_IFDIR, &cred, &a));
	reply_entry_or_err(req, r, &a);
}

static void op_unlink(fuse_req_t req, fuse_ino_t parent, const char *name)
{
	struct crp_cred cred;

	cred_of(req, &cred);
	reply_status(req, CRP_TX_RETRY(crp_fs_unlink(cf_of(req)->fs, parent, name, &cred)));
}

static void op_rmdir(fuse_req_t req, fuse_ino_t parent, const char *name)
{
	struct crp_cred cred;

	cred_of(req, &cred);
	reply_status(req, CRP_TX_RETRY(crp_fs_rmdir(cf_of(req)->fs, parent, name, &cred)));
}

static void op_symlink(fuse_req_t req, const char *link, fuse_ino_t parent, const char *name)
{
	struct crp_cred cred;
	struct crp_attr a;
	int r;

	cred_of(req, &cred);
	r = CRP_TX_RETRY(crp_fs_symlink(cf_of(req)->fs, parent, name, link, &cred, &a));
	reply_entry_or_err(req, r, &a);
}

static void op_rename(fuse_req_t req, fuse_ino_t parent, const char *name,
		      fuse_ino_t newparent, const char *newname, unsigned int flags)
{
	struct crp_cred cred;
	int r;

	cred_of(req, &cred);
	r = CRP_TX_RETRY(crp_fs_rename(cf_of(req)->fs, parent, name, newparent, newname, flags, &cred));
	reply_status(req, r);
}

static void op_link(fuse_req_t req, fuse_ino_t ino, fuse_ino_t newparent, const char *newname)
{
	struct crp_attr a;
	int r = CRP_TX_RETRY(crp_fs_link(cf_of(req)->fs, ino, newparent, newname, &a));

	reply_entry_or_err(req, r, &a);
}

static void op_open(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct crp_fs *fs = cf_of(req)->fs;
	uint64_t fh;
	int r = CRP_TX_RETRY(crp_fs_open(fs, ino, fi->flags, &fh));

	if (r < 0) {
		reply_err(req, r);
		return;
	}
	fi->fh = fh;
	/* keep_cache stays off: the page cache is dropped at each open, which is
	 * what close-to-open coherence between hosts needs.  strict: no page
	 * cache at all, for files shared live across hosts. */
	fi->keep_cache = 0;
	fi->direct_io = cf_of(req)->strict;
	if (fuse_reply_open(req, fi) != 0)
		crp_fs_release(fs, ino, fh);
}

static void op_create(fuse_req_t req, fuse_ino_t parent, const char *name, mode_t mode,
		      struct fuse_file_info *fi)
{
	struct crp_fuse *cf = cf_of(req);
	struct fuse_entry_param e;
	struct crp_cred cred;
	struct crp_attr a;
	uint64_t fh;
	int r;

	cred_of(req, &cred);
	r = CRP_TX_RETRY(crp_fs_create(cf->fs, parent, name, mode, fi->flags, &cred, &a, &fh));
	if (r < 0) {
		reply_err(req, r);
		return;
	}
	fi->fh = fh;
	fi->keep_cache = 0;
	fi->direct_io = cf->strict;
	entry_of(cf, &a, &e);
	if (fuse_reply_create(req, &e, fi) != 0) {
		crp_fs_release(cf->fs, a.ino, fh);
		crp_fs_forget(cf->fs, a.ino, 1);
	}
}

static void op_read(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
		    struct fuse_file_info *fi)
{
	/* Aligned: the core reads into it at once. */
	char *buf = crp_scratch_take(CRP_SCRATCH_REPLY, size, false);
	ssize_t n;

	if (!buf) {
		fuse_reply_err(req, ENOMEM);
		return;
	}
	n = crp_fs_read(cf_of(req)->fs, ino, fi->fh, (uint64_t)off, buf, size);
	if (n < 0)
		reply_err(req, (int)n);
	else
		fuse_reply_buf(req, buf, (size_t)n);
	crp_scratch_give(CRP_SCRATCH_REPLY, buf);
}

static void op_write(fuse_req_t req, fuse_ino_t ino, const char *buf, size_t size, off_t off,
		     struct fuse_file_info *fi)
{
	ssize_t n = CRP_TX_RETRY(crp_fs_write(cf_of(req)->fs, ino, fi->fh, (uint64_t)off, buf, size));

	if (n < 0)
		reply_err(req, (int)n);
	else
		fuse_reply_write(req, (size_t)n);
}

static void op_flush(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	/* close(2) promises no durability; fsync does.  Nothing is held here. */
	(void)ino;
	(void)fi;
	fuse_reply_err(req, 0);
}

static void op_release(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	reply_status(req, crp_fs_release(cf_of(req)->fs, ino, fi->fh));
}

static void op_fsync(fuse_req_t req, fuse_ino_t ino, int datasync, struct fuse_file_info *fi)
{
	(void)fi;
	reply_status(req, CRP_TX_RETRY(crp_fs_fsync(cf_of(req)->fs, ino, datasync != 0)));
}

static void op_opendir(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct crp_fs *fs = cf_of(req)->fs;
	uint64_t fh;
	int r = crp_fs_opendir(fs, ino, &fh);

	if (r < 0) {
		reply_err(req, r);
		return;
	}
	fi->fh = fh;
	if (fuse_reply_open(req, fi) != 0)
		crp_fs_releasedir(fs, ino, fh);
}

/* A reply buffer being filled by the readdir callback. */
struct dirbuf {
	fuse_req_t req;
	char *buf;
	size_t size, pos;
};

static int fill_dirent(void *ctx, const char *name, uint64_t ino, uint32_t mode,
		       uint64_t next_cookie)
{
	struct dirbuf *d = ctx;
	struct stat st;
	size_t len;

	memset(&st, 0, sizeof(st));
	st.st_ino = ino;
	st.st_mode = mode;
	len = fuse_add_direntry(d->req, d->buf + d->pos, d->size - d->pos, name, &st,
				(off_t)next_cookie);
	if (len > d->size - d->pos)
		return 1;	/* full: the kernel asks again from this cookie */
	d->pos += len;
	return 0;
}

static void op_readdir(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
		       struct fuse_file_info *fi)
{
	struct dirbuf d = { .req = req, .size = size };
	int r;

	d.buf = malloc(size ? size : 1);
	if (!d.buf) {
		fuse_reply_err(req, ENOMEM);
		return;
	}
	r = crp_fs_readdir(cf_of(req)->fs, ino, fi->fh, (uint64_t)off, fill_dirent, &d);
	if (r < 0 && d.pos == 0)
		reply_err(req, r);
	else
		fuse_reply_buf(req, d.buf, d.pos);
	free(d.buf);
}

/*
 * readdirplus: the entries are collected first and looked up after the walk,
 * so that the core is never re-entered from inside its own readdir.
 */
struct plus_ent {
	char *name;
	uint64_t ino;
	uint32_t mode;
	uint64_t next_cookie;
	bool counted;	/* the lookup below counted one in the core */
};

struct plusbuf {
	fuse_req_t req;
	size_t budget;		/* bytes left in the reply */
	struct plus_ent *ents;
	size_t n, cap;
};

static int collect_dirent(void *ctx, const char *name, uint64_t ino, uint32_t mode,
			  uint64_t next_cookie)
{
	struct plusbuf *p = ctx;
	size_t len = fuse_add_direntry_plus(p->req, NULL, 0, name, NULL, 0);
	struct plus_ent *e;

	if (len > p->budget)
		return 1;
	if (p->n == p->cap) {
		size_t cap = p->cap ? p->cap * 2 : 32;
		struct plus_ent *n = realloc(p->ents, cap * sizeof(*n));

		if (!n)
			return 1;
		p->ents = n;
		p->cap = cap;
	}
	e = &p->ents[p->n];
	e->name = strdup(name);
	if (!e->name)
		return 1;
	e->ino = ino;
	e->mode = mode;
	e->next_cookie = next_cookie;
	e->counted = false;
	p->n++;
	p->budget -= len;
	return 0;
}

static bool is_dot_or_dotdot(const char *name)
{
	return name[0] == '.' && (name[1] == '\0' || (name[1] == '.' && name[2] == '\0'));
}

static void op_readdirplus(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
			   struct fuse_file_info *fi)
{
	struct crp_fuse *cf = cf_of(req);
	struct plusbuf p = { .req = req, .budget = size };
	char *buf = malloc(size ? size : 1);
	size_t pos = 0;
	int r;

	if (!buf) {
		fuse_reply_err(req, ENOMEM);
		return;
	}
	r = crp_fs_readdir(cf->fs, ino, fi->fh, (uint64_t)off, collect_dirent, &p);
	if (r < 0 && p.n == 0) {
		reply_err(req, r);
		goto out;
	}
	for (size_t i = 0; i < p.n; i++) {
		struct plus_ent *pe = &p.ents[i];
		struct fuse_entry_param e;
		struct crp_attr a;

		memset(&e, 0, sizeof(e));
		if (is_dot_or_dotdot(pe->name)) {
			/* ino 0: listed, but no lookup is counted for it. */
			e.attr.st_ino = pe->ino;
			e.attr.st_mode = pe->mode;
		} else if (crp_fs_lookup(cf->fs, ino, pe->name, &a) == 0) {
			entry_of(cf, &a, &e);
			pe->ino = a.ino;
			pe->counted = true;
		} else {
			/* Gone since the walk (or unreadable): list it without
			 * attributes; the kernel looks it up if it is used. */
			e.attr.st_ino = pe->ino;
			e.attr.st_mode = pe->mode;
		}
		pos += fuse_add_direntry_plus(req, buf + pos, size - pos, pe->name, &e,
					      (off_t)pe->next_cookie);
	}
	if (fuse_reply_buf(req, buf, pos) != 0) {
		/* Never delivered: give back the lookups counted above. */
		for (size_t i = 0; i < p.n; i++)
			if (p.ents[i].counted)
				crp_fs_forget(cf->fs, p.ents[i].ino, 1);
	}
out:
	for (size_t i = 0; i < p.n; i++)
		free(p.ents[i].name);
	free(p.ents);
	free(buf);
}

static void op_releasedir(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	reply_status(req, crp_fs_releasedir(cf_of(req)->fs, ino, fi->fh));
}

static void op_fsyncdir(fuse_req_t req, fuse_ino_t ino, int datasync, struct fuse_file_info *fi)
{
	(void)fi;
	reply_status(req, CRP_TX_RETRY(crp_fs_fsync(cf_of(req)->fs, ino, datasync != 0)));
}

static void op_statfs(fuse_req_t req, fuse_ino_t ino)
{
	struct statvfs st;
	int r;

	(void)ino;
	memset(&st, 0, sizeof(st));
	r = crp_fs_statfs(cf_of(req)->fs, &st);
	if (r < 0)
		reply_err(req, r);
	else
		fuse_reply_statfs(req, &st);
}

static void op_setxattr(fuse_req_t req, fuse_ino_t ino, const char *name, const char *value,
			size_t size, int flags)
{
	int r = CRP_TX_RETRY(crp_fs_setxattr(cf_of(req)->fs, ino, name, value, size, flags));

	reply_status(req, r);
}

static void op_getxattr(fuse_req_t req, fuse_ino_t ino, const char *name, size_t size)
{
	struct crp_fs *fs = cf_of(req)->fs;
	char *buf = NULL;
	ssize_t n;

	if (size == 0) {
		n = crp_fs_getxattr(fs, ino, name, NULL, 0);
		if (n < 0)
			reply_err(req, (int)n);
		else
			fuse_reply_xattr(req, (size_t)n);
		return;
	}
	buf = malloc(size);
	if (!buf) {
		fuse_reply_err(req, ENOMEM);
		return;
	}
	n = crp_fs_getxattr(fs, ino, name, buf, size);
	if (n < 0)
		reply_err(req, (int)n);
	else
		fuse_reply_buf(req, buf, (size_t)n);
	free(buf);
}

static void op_listxattr(fuse_req_t req, fuse_ino_t ino, size_t size)
{
	struct crp_fs *fs = cf_of(req)->fs;
	char *buf = NULL;
	ssize_t n;

	if (size == 0) {
		n = crp_fs_listxattr(fs, ino, NULL, 0);
		if (n < 0)
			reply_err(req, (int)n);
		else
			fuse_reply_xattr(req, (size_t)n);
		return;
	}
	buf = malloc(size);
	if (!buf) {
		fuse_reply_err(req, ENOMEM);
		return;
	}
	n = crp_fs_listxattr(fs, ino, buf, size);
	if (n < 0)
		reply_err(req, (int)n);
	else
		fuse_reply_buf(req, buf, (size_t)n);
	free(buf);
}

static void op_removexattr(fuse_req_t req, fuse_ino_t ino, const char *name)
{
	reply_status(req, CRP_TX_RETRY(crp_fs_removexattr(cf_of(req)->fs, ino, name)));
}

static void op_fallocate(fuse_req_t req, fuse_ino_t ino, int mode, off_t off, off_t len,
			 struct fuse_file_info *fi)
{
	int r;

	(void)fi;
	if (off < 0 || len <= 0) {
		fuse_reply_err(req, EINVAL);
		return;
	}
	r = CRP_TX_RETRY(crp_fs_fallocate(cf_of(req)->fs, ino, mode, (uint64_t)off, (uint64_t)len));
	reply_status(req, r);
}

static void op_lseek(fuse_req_t req, fuse_ino_t ino, off_t off, int whence,
		     struct fuse_file_info *fi)
{
	int64_t r;

	(void)fi;
	r = crp_fs_lseek(cf_of(req)->fs, ino, off, whence);
	if (r < 0)
		reply_err(req, (int)r);
	else
		fuse_reply_lseek(req, (off_t)r);
}

const struct fuse_lowlevel_ops crp_fuse_ops = {
	.init = op_init,
	.destroy = op_destroy,
	.lookup = op_lookup,
	.forget = op_forget,
	.forget_multi = op_forget_multi,
	.getattr = op_getattr,
	.setattr = op_setattr,
	.readlink = op_readlink,
	.mknod = op_mknod,
	.mkdir = op_mkdir,
	.unlink = op_unlink,
	.rmdir = op_rmdir,
	.symlink = op_symlink,
	.rename = op_rename,
	.link = op_link,
	.open = op_open,
	.read = op_read,
	.write = op_write,
	.flush = op_flush,
	.release = op_release,
	.fsync = op_fsync,
	.opendir = op_opendir,
	.readdir = op_readdir,
	.readdirplus = op_readdirplus,
	.releasedir = op_releasedir,
	.fsyncdir = op_fsyncdir,
	.statfs = op_statfs,
	.setxattr = op_setxattr,
	.getxattr = op_getxattr,
	.listxattr = op_listxattr,
	.removexattr = op_removexattr,
	.create = op_create,
	.fallocate = op_fallocate,
	.lseek = op_lseek,
};
