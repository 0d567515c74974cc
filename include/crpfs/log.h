/*
 * crpfs logging.
 *
 * Policy: the library core does not print.  It returns errors, and the edges
 * (tools, daemon, FUSE adapters) decide what to say.  The exceptions are
 * events that no caller is waiting for: a repair made from parity, a member
 * marked failed by an I/O thread, a lock broken during recovery.  Those are
 * logged here, at CRP_LOG_WARN or above, with the member named.
 *
 * Nothing secret is ever logged: not a CHAP secret, not a key file's content.
 */
#ifndef CRPFS_LOG_H
#define CRPFS_LOG_H

enum crp_log_level {
	CRP_LOG_ERR = 0,
	CRP_LOG_WARN = 1,
	CRP_LOG_INFO = 2,
	CRP_LOG_DEBUG = 3,
};

/* Messages above @level are dropped.  Default CRP_LOG_WARN, or the value of
 * the CRPFS_LOG environment variable (0-3) read at first use. */
void crp_log_set_level(int level);
int crp_log_get_level(void);

/* Send messages to syslog instead of standard error (the daemon does). */
void crp_log_use_syslog(int on);

void crp_log(int level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#define crp_err(...) crp_log(CRP_LOG_ERR, __VA_ARGS__)
#define crp_warn(...) crp_log(CRP_LOG_WARN, __VA_ARGS__)
#define crp_info(...) crp_log(CRP_LOG_INFO, __VA_ARGS__)
#define crp_debug(...) crp_log(CRP_LOG_DEBUG, __VA_ARGS__)

#endif
