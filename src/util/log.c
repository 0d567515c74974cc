/* crpfs logging: standard error with a timestamp, or syslog. */
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <syslog.h>
#include <time.h>

#include "crpfs/log.h"

static atomic_int crp_log_level = -1;
static atomic_int crp_log_syslog;

static int level_from_env(void)
{
	const char *e = getenv("CRPFS_LOG");

	if (e && e[0] >= '0' && e[0] <= '3' && e[1] == '\0')
		return e[0] - '0';
	return CRP_LOG_WARN;
}

int crp_log_get_level(void)
{
	int l = atomic_load(&crp_log_level);

	if (l < 0) {
		l = level_from_env();
		atomic_store(&crp_log_level, l);
	}
	return l;
}

void crp_log_set_level(int level)
{
	atomic_store(&crp_log_level, level);
}

void crp_log_use_syslog(int on)
{
	atomic_store(&crp_log_syslog, on);
}

void crp_log(int level, const char *fmt, ...)
{
	static const char *const names[] = { "error", "warning", "info", "debug" };
	static const int prio[] = { LOG_ERR, LOG_WARNING, LOG_INFO, LOG_DEBUG };
	char msg[1024];
	va_list ap;

	if (level > crp_log_get_level() || level < 0)
		return;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	if (atomic_load(&crp_log_syslog)) {
		syslog(prio[level], "%s", msg);
		return;
	}
	struct timespec ts;
	struct tm tm;

	clock_gettime(CLOCK_REALTIME, &ts);
	localtime_r(&ts.tv_sec, &tm);
	fprintf(stderr, "%02d:%02d:%02d.%03ld crpfs %s: %s\n", tm.tm_hour, tm.tm_min,
		tm.tm_sec, ts.tv_nsec / 1000000, names[level], msg);
}
