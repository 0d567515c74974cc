/*
 * crp_holder: hold one file open and do I/O through that descriptor on
 * command, so that a test can act on the file's names (from this host or
 * others) while it stays open.
 *
 *   crp_holder PATH
 *
 * Opens PATH read-write (creating it 0644), prints "open", then reads
 * commands, one a line, from standard input and answers each with one line:
 *
 *   write OFF LEN SEED   pwrite LEN bytes of a pattern made from SEED at OFF
 *   check OFF LEN SEED   pread them back: "ok", or "differs at BYTE"
 *   size                 fstat: the size in bytes
 *   close                close the descriptor ("ok"), then exit 0
 *
 * Answers are "ok", a value, or the errno's name (ESTALE, EIO...).  Exits 0
 * at "close" or end of input, 2 on bad usage.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static void say_err(int e)
{
	const char *n = strerrorname_np(e);

	printf("%s\n", n ? n : "EUNKNOWN");
}

static void pattern(uint8_t *buf, size_t len, uint64_t off, uint64_t seed)
{
	for (size_t i = 0; i < len; i++) {
		uint64_t x = (off + i) * 0x9e3779b97f4a7c15ull ^ seed;

		buf[i] = (uint8_t)(x >> 29);
	}
}

int main(int argc, char **argv)
{
	char line[256];
	int fd;

	if (argc != 2) {
		fprintf(stderr, "usage: crp_holder PATH\n");
		return 2;
	}
	setvbuf(stdout, NULL, _IOLBF, 0);
	fd = open(argv[1], O_RDWR | O_CREAT, 0644);
	if (fd < 0) {
		say_err(errno);
		return 1;
	}
	printf("open\n");
	while (fgets(line, sizeof(line), stdin)) {
		char cmd[16];
		uint64_t off = 0, len = 0, seed = 0;
		int n = sscanf(line, "%15s %" SCNu64 " %" SCNu64 " %" SCNu64, cmd, &off, &len, &seed);

		if (n >= 1 && strcmp(cmd, "close") == 0) {
			if (close(fd) < 0)
				say_err(errno);
			else
				printf("ok\n");
			return 0;
		}
		if (n >= 1 && strcmp(cmd, "size") == 0) {
			struct stat st;

			if (fstat(fd, &st) < 0)
				say_err(errno);
			else
				printf("%jd\n", (intmax_t)st.st_size);
			continue;
		}
		if (n != 4 || len > 64u << 20 ||
		    (strcmp(cmd, "write") != 0 && strcmp(cmd, "check") != 0)) {
			printf("EUSAGE\n");
			continue;
		}
		uint8_t *want = malloc(len ? len : 1), *got = malloc(len ? len : 1);

		if (!want || !got) {
			printf("ENOMEM\n");
			free(want);
			free(got);
			continue;
		}
		pattern(want, len, off, seed);
		if (strcmp(cmd, "write") == 0) {
			ssize_t w = pwrite(fd, want, len, (off_t)off);

			if (w < 0)
				say_err(errno);
			else if ((uint64_t)w != len)
				printf("short write %zd\n", w);
			else
				printf("ok\n");
		} else {
			ssize_t r = pread(fd, got, len, (off_t)off);

			if (r < 0) {
				say_err(errno);
			} else if ((uint64_t)r != len) {
				printf("short read %zd\n", r);
			} else {
				size_t i = 0;

				while (i < len && got[i] == want[i])
					i++;
				if (i == len)
					printf("ok\n");
				else
					printf("differs at %" PRIu64 "\n", off + i);
			}
		}
		free(want);
		free(got);
	}
	return 0;
}
