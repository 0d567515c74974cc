/* Mounts as /proc/self/mountinfo lists them (proc(5)). */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "crpfs/util.h"

/* Undo the octal escapes (\040 and friends) of a mountinfo field. */
static void unescape(char *s)
{
	char *d = s;

	for (; *s; s++) {
		if (s[0] == '\\' && s[1] >= '0' && s[1] <= '3' && s[2] >= '0' && s[2] <= '7' &&
		    s[3] >= '0' && s[3] <= '7') {
			*d++ = (char)((s[1] - '0') * 64 + (s[2] - '0') * 8 + (s[3] - '0'));
			s += 3;
		} else {
			*d++ = *s;
		}
	}
	*d = '\0';
}

int crp_mountinfo_find(const char *dir, const char *fstype, char **dev, char **source)
{
	FILE *f = fopen("/proc/self/mountinfo", "re");
	char *line = NULL, *got_dev = NULL, *got_src = NULL;
	size_t cap = 0;
	int r = -ENOENT;

	if (!f)
		return -errno;
	while (getline(&line, &cap, f) > 0) {
		char *save = NULL, *fields[5], *tok, *type, *src;
		int i = 0;

		line[strcspn(line, "\n")] = '\0';
		for (tok = strtok_r(line, " ", &save); tok && i < 5; tok = strtok_r(NULL, " ", &save))
			fields[i++] = tok;
		if (i < 5)
			continue;
		/* Optional fields end at the lone "-". */
		while (tok && strcmp(tok, "-") != 0)
			tok = strtok_r(NULL, " ", &save);
		type = strtok_r(NULL, " ", &save);
		src = strtok_r(NULL, " ", &save);
		if (!type || !src || strcmp(type, fstype) != 0)
			continue;
		unescape(fields[4]);
		if (strcmp(fields[4], dir) != 0)
			continue;
		unescape(src);
		/* The last (topmost) mount there wins. */
		free(got_dev);
		free(got_src);
		got_dev = strdup(fields[2]);
		got_src = strdup(src);
		r = got_dev && got_src ? 0 : -ENOMEM;
	}
	free(line);
	fclose(f);
	if (r == 0 && dev) {
		*dev = got_dev;
		got_dev = NULL;
	}
	if (r == 0 && source) {
		*source = got_src;
		got_src = NULL;
	}
	free(got_dev);
	free(got_src);
	return r;
}
