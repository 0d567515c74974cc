/*
 * crp_fsop: the system calls the integration tests need and the shell
 * cannot make.  Each subcommand makes its calls and prints the outcome on
 * standard output: "ok", a value, or the errno's name (EEXIST, ENXIO...),
 * so that the test compares it with what POSIX says.  Exit status 0 when
 * the calls were made, 1 when a check inside the subcommand failed (with a
 * sentence on standard error), 2 for bad usage.
 *
 *   crp_fsop open PATH FLAGS [DATA]     FLAGS: comma list of rdonly, wronly,
 *                                       rdwr, creat, excl, trunc, append;
 *                                       DATA is written after a seek to 0
 *   crp_fsop pwrite PATH OFFSET DATA    pwrite at OFFSET (file created 0644)
 *   crp_fsop pread PATH OFFSET LEN      the bytes read, raw
 *   crp_fsop seek PATH data|hole OFFSET lseek SEEK_DATA/SEEK_HOLE: the offset
 *   crp_fsop rename2 OLD NEW none|noreplace|exchange
 *   crp_fsop unlinked PATH              open-unlinked file stays readable
 *   crp_fsop fsync PATH full|data SIZE  write SIZE bytes, fsync or fdatasync
 *   crp_fsop mksock PATH                mknod of a socket
 *   crp_fsop statvfs PATH               "bsize frsize blocks bfree bavail
 *                                        files ffree namemax"
 *   crp_fsop setxattr PATH NAME VALUE create|replace|none
 *   crp_fsop chmod PATH MODE            chmod (MODE in octal)
 *   crp_fsop stat PATH                  stat: "ok UID MODE" (mode in octal)
 *   crp_fsop unlink PATH                unlink
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/xattr.h>
#include <unistd.h>

static int usage(void)
{
	fprintf(stderr, "usage: crp_fsop open|pwrite|pread|seek|rename2|unlinked|fsync|mksock|"
			"statvfs|setxattr|chmod|stat|unlink ARGS... (see the source)\n");
	return 2;
}

static void print_err(int e)
{
	const char *n = strerrorname_np(e);

	printf("%s\n", n ? n : "EUNKNOWN");
}

static int parse_u64(const char *s, uint64_t *v)
{
	char *end;

	errno = 0;
	*v = strtoull(s, &end, 0);
	return (errno || end == s || *end) ? -1 : 0;
}

static int parse_flags(const char *list, int *flags)
{
	char *copy = strdup(list);
	char *save = NULL;
	int f = 0;
	int r = 0;

	if (!copy)
		return -1;
	for (char *t = strtok_r(copy, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
		if (strcmp(t, "rdonly") == 0)
			f |= O_RDONLY;
		else if (strcmp(t, "wronly") == 0)
			f |= O_WRONLY;
		else if (strcmp(t, "rdwr") == 0)
			f |= O_RDWR;
		else if (strcmp(t, "creat") == 0)
			f |= O_CREAT;
		else if (strcmp(t, "excl") == 0)
			f |= O_EXCL;
		else if (strcmp(t, "trunc") == 0)
			f |= O_TRUNC;
		else if (strcmp(t, "append") == 0)
			f |= O_APPEND;
		else
			r = -1;
	}
	free(copy);
	*flags = f;
	return r;
}

static int write_all(int fd, const void *buf, size_t len)
{
	const char *p = buf;

	while (len) {
		ssize_t n = write(fd, p, len);

		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

static int cmd_open(int argc, char **argv)
{
	int flags, fd, r = 0;

	if (argc < 2 || argc > 3 || parse_flags(argv[1], &flags) < 0)
		return usage();
	fd = open(argv[0], flags, 0644);
	if (fd < 0) {
		print_err(errno);
		return 0;
	}
	if (argc == 3) {
		if (lseek(fd, 0, SEEK_SET) < 0)
			r = -errno;
		if (r == 0)
			r = write_all(fd, argv[2], strlen(argv[2]));
	}
	if (close(fd) < 0 && r == 0)
		r = -errno;
	if (r < 0)
		print_err(-r);
	else
		printf("ok\n");
	return 0;
}

static int cmd_pwrite(int argc, char **argv)
{
	uint64_t off;
	ssize_t n;
	int fd;

	if (argc != 3 || parse_u64(argv[1], &off) < 0)
		return usage();
	fd = open(argv[0], O_WRONLY | O_CREAT, 0644);
	if (fd < 0) {
		print_err(errno);
		return 0;
	}
	n = pwrite(fd, argv[2], strlen(argv[2]), (off_t)off);
	if (n < 0)
		print_err(errno);
	else if ((size_t)n != strlen(argv[2]))
		printf("short %zd\n", n);
	else if (close(fd) < 0)
		print_err(errno);
	else
		printf("ok\n");
	return 0;
}

static int cmd_pread(int argc, char **argv)
{
	uint64_t off, len;
	char *buf;
	ssize_t n;
	int fd;

	if (argc != 3 || parse_u64(argv[1], &off) < 0 || parse_u64(argv[2], &len) < 0 ||
	    len > (64u << 20))
		return usage();
	fd = open(argv[0], O_RDONLY);
	if (fd < 0) {
		print_err(errno);
		return 0;
	}
	buf = malloc(len ? len : 1);
	if (!buf)
		return 1;
	n = pread(fd, buf, len, (off_t)off);
	if (n < 0)
		print_err(errno);
	else
		fwrite(buf, 1, (size_t)n, stdout);
	free(buf);
	close(fd);
	return 0;
}

static int cmd_seek(int argc, char **argv)
{
	uint64_t off;
	int whence, fd;
	off_t r;

	if (argc != 3 || parse_u64(argv[2], &off) < 0)
		return usage();
	if (strcmp(argv[1], "data") == 0)
		whence = SEEK_DATA;
	else if (strcmp(argv[1], "hole") == 0)
		whence = SEEK_HOLE;
	else
		return usage();
	fd = open(argv[0], O_RDONLY);
	if (fd < 0) {
		print_err(errno);
		return 0;
	}
	r = lseek(fd, (off_t)off, whence);
	if (r < 0)
		print_err(errno);
	else
		printf("%jd\n", (intmax_t)r);
	close(fd);
	return 0;
}

static int cmd_rename2(int argc, char **argv)
{
	unsigned flags;

	if (argc != 3)
		return usage();
	if (strcmp(argv[2], "none") == 0)
		flags = 0;
	else if (strcmp(argv[2], "noreplace") == 0)
		flags = RENAME_NOREPLACE;
	else if (strcmp(argv[2], "exchange") == 0)
		flags = RENAME_EXCHANGE;
	else
		return usage();
	if (renameat2(AT_FDCWD, argv[0], AT_FDCWD, argv[1], flags) < 0)
		print_err(errno);
	else
		printf("ok\n");
	return 0;
}

static int cmd_chmod(int argc, char **argv)
{
	char *end;
	unsigned long mode;

	if (argc != 2)
		return usage();
	mode = strtoul(argv[1], &end, 8);
	if (*end || mode > 07777)
		return usage();
	if (chmod(argv[0], (mode_t)mode) < 0)
		print_err(errno);
	else
		printf("ok\n");
	return 0;
}

static int cmd_stat(int argc, char **argv)
{
	struct stat st;

	if (argc != 1)
		return usage();
	if (stat(argv[0], &st) < 0)
		print_err(errno);
	else
		printf("ok %u %04o\n", (unsigned)st.st_uid, (unsigned)(st.st_mode & 07777));
	return 0;
}

static int cmd_unlink(int argc, char **argv)
{
	if (argc != 1)
		return usage();
	if (unlink(argv[0]) < 0)
		print_err(errno);
	else
		printf("ok\n");
	return 0;
}

static int check_read(int fd, const char *want, const char *what)
{
	char buf[256];
	size_t len = strlen(want);
	ssize_t n = pread(fd, buf, sizeof(buf), 0);

	if (n < 0) {
		fprintf(stderr, "%s: read failed: %s\n", what, strerror(errno));
		return -1;
	}
	if ((size_t)n != len || memcmp(buf, want, len) != 0) {
		fprintf(stderr, "%s: read %zd bytes '%.*s', expected '%s'\n", what, n, (int)n, buf,
			want);
		return -1;
	}
	return 0;
}

/* Open twice, unlink, read through both, close one, write and read the other. */
static int cmd_unlinked(int argc, char **argv)
{
	const char *first = "written before the unlink";
	const char *second = "written after the unlink";
	struct stat st;
	int fd1, fd2;

	if (argc != 1)
		return usage();
	fd1 = open(argv[0], O_RDWR | O_CREAT | O_TRUNC, 0644);
	if (fd1 < 0 || write_all(fd1, first, strlen(first)) < 0) {
		fprintf(stderr, "create %s: %s\n", argv[0], strerror(errno));
		return 1;
	}
	fd2 = open(argv[0], O_RDWR);
	if (fd2 < 0) {
		fprintf(stderr, "second open of %s: %s\n", argv[0], strerror(errno));
		return 1;
	}
	if (unlink(argv[0]) < 0) {
		fprintf(stderr, "unlink %s: %s\n", argv[0], strerror(errno));
		return 1;
	}
	if (stat(argv[0], &st) == 0 || errno != ENOENT) {
		fprintf(stderr, "%s: still visible by name after unlink\n", argv[0]);
		return 1;
	}
	if (fstat(fd1, &st) < 0 || st.st_nlink != 0) {
		fprintf(stderr, "fstat of the unlinked file: nlink %ju, expected 0\n",
			(uintmax_t)st.st_nlink);
		return 1;
	}
	if (check_read(fd1, first, "first handle after unlink") < 0)
		return 1;
	if (close(fd1) < 0) {
		fprintf(stderr, "close of the first handle: %s\n", strerror(errno));
		return 1;
	}
	if (check_read(fd2, first, "second handle after the first closed") < 0)
		return 1;
	if (pwrite(fd2, second, strlen(second), 0) != (ssize_t)strlen(second) ||
	    ftruncate(fd2, (off_t)strlen(second)) < 0) {
		fprintf(stderr, "write to the unlinked file: %s\n", strerror(errno));
		return 1;
	}
	if (check_read(fd2, second, "second handle after writing") < 0)
		return 1;
	if (close(fd2) < 0) {
		fprintf(stderr, "last close: %s\n", strerror(errno));
		return 1;
	}
	printf("ok\n");
	return 0;
}

static int cmd_fsync(int argc, char **argv)
{
	uint64_t size;
	char *buf;
	int fd, r;

	if (argc != 3 || parse_u64(argv[2], &size) < 0 || size > (256u << 20) ||
	    (strcmp(argv[1], "full") != 0 && strcmp(argv[1], "data") != 0))
		return usage();
	buf = malloc(size ? size : 1);
	if (!buf)
		return 1;
	for (uint64_t i = 0; i < size; i++)
		buf[i] = (char)(i * 131 + 7);
	fd = open(argv[0], O_WRONLY | O_CREAT | O_TRUNC, 0644);
	if (fd < 0) {
		print_err(errno);
		free(buf);
		return 0;
	}
	r = write_all(fd, buf, size);
	if (r == 0)
		r = (strcmp(argv[1], "full") == 0 ? fsync(fd) : fdatasync(fd)) < 0 ? -errno : 0;
	if (r < 0)
		print_err(-r);
	else
		printf("ok\n");
	close(fd);
	free(buf);
	return 0;
}

static int cmd_mksock(int argc, char **argv)
{
	if (argc != 1)
		return usage();
	if (mknod(argv[0], S_IFSOCK | 0644, 0) < 0)
		print_err(errno);
	else
		printf("ok\n");
	return 0;
}

static int cmd_statvfs(int argc, char **argv)
{
	struct statvfs s;

	if (argc != 1)
		return usage();
	if (statvfs(argv[0], &s) < 0) {
		print_err(errno);
		return 0;
	}
	printf("%lu %lu %ju %ju %ju %ju %ju %lu\n", s.f_bsize, s.f_frsize, (uintmax_t)s.f_blocks,
	       (uintmax_t)s.f_bfree, (uintmax_t)s.f_bavail, (uintmax_t)s.f_files,
	       (uintmax_t)s.f_ffree, s.f_namemax);
	return 0;
}

static int cmd_setxattr(int argc, char **argv)
{
	int flags;

	if (argc != 4)
		return usage();
	if (strcmp(argv[3], "create") == 0)
		flags = XATTR_CREATE;
	else if (strcmp(argv[3], "replace") == 0)
		flags = XATTR_REPLACE;
	else if (strcmp(argv[3], "none") == 0)
		flags = 0;
	else
		return usage();
	if (setxattr(argv[0], argv[1], argv[2], strlen(argv[2]), flags) < 0)
		print_err(errno);
	else
		printf("ok\n");
	return 0;
}

int main(int argc, char **argv)
{
	static const struct {
		const char *name;
		int (*fn)(int argc, char **argv);
	} cmds[] = {
		{ "open", cmd_open },	    { "pwrite", cmd_pwrite }, { "pread", cmd_pread },
		{ "seek", cmd_seek },	    { "rename2", cmd_rename2 },
		{ "unlinked", cmd_unlinked }, { "fsync", cmd_fsync }, { "mksock", cmd_mksock },
		{ "statvfs", cmd_statvfs }, { "setxattr", cmd_setxattr },
		{ "chmod", cmd_chmod },	    { "stat", cmd_stat },     { "unlink", cmd_unlink },
	};

	if (argc < 2)
		return usage();
	for (size_t i = 0; i < sizeof(cmds) / sizeof(cmds[0]); i++)
		if (strcmp(argv[1], cmds[i].name) == 0)
			return cmds[i].fn(argc - 2, argv + 2);
	return usage();
}
