/*
 * The iSCSI transport against a real tgtd (integration).
 *
 * One tgtd for the suite, started in main() before the tests fork, with a
 * LUN of its own for every test that takes locks, so no test sees another's
 * reservations.  Tests that kill, stop or reconfigure the daemon start a
 * private tgtd.  Each host is its own initiator name and so its own
 * session (nexus).  If tgtd cannot start, every test fails with the reason.
 *
 * Reconnection: a session dropped at the target, a daemon stopped and
 * started again on the same port and files, one that stays away past the
 * window, a LUN found gone when logging in again.
 *
 * Some tests bound how long a failure takes to be reported: a member must
 * report an error within its command timeout instead of hanging.  Those
 * bounds are the timeout plus a wide margin; they check that the timeout
 * mechanism works, not how fast anything is.
 */
#include <arpa/inet.h>
#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "crpfs/array.h"
#include "crpfs/err.h"
#include "crpfs/member.h"
#include "crpfs/scsi.h"
#include "crpfs/util.h"
#include "fixture/child.h"
#include "fixture/semantics.h"
#include "fixture/tgt.h"

#define LUN_SIZE (16ull << 20)
#define SHORT_TIMEOUT_MS 2000
/* A failure must be reported within the timeout plus this margin. */
#define MARGIN_MS 3000

/* LUN indexes of the suite's tgtd, one per test that needs its own. */
enum {
	LUN_RW,
	LUN_RESERVE,
	LUN_CLOSE,
	LUN_DEATH,
	LUN_PR_WE,
	LUN_PR_PREEMPT,
	LUN_RESET,
	LUN_OFFLINE,
	LUN_UA,
	LUN_LOST,
	LUN_GONE,
	LUN_COUNT
};

static struct crp_tgt *g_tgt;
static char g_tgt_err[512];

static const char *spec_of(int lun)
{
	ck_assert_msg(g_tgt, "tgtd for the suite did not start: %s", g_tgt_err);
	return crp_tgt_spec(g_tgt, lun);
}

static struct crp_member *open_rc(const char *spec, const char *host, uint32_t timeout_ms,
				  uint32_t reconnect_ms)
{
	struct crp_member_opts o = { .host = host, .timeout_ms = timeout_ms,
				     .reconnect_ms = reconnect_ms };
	struct crp_member *m = NULL;
	char err[512];
	int r = crp_member_open(spec, &o, &m, err, sizeof(err));

	ck_assert_msg(r == 0, "open %s as %s: %s", spec, host, err);
	return m;
}

static struct crp_member *open_host(const char *spec, const char *host, uint32_t timeout_ms)
{
	return open_rc(spec, host, timeout_ms, 0);
}

static uint64_t ms_since(uint64_t t0)
{
	return (crp_now_ns() - t0) / 1000000ull;
}

/* ---- the shared semantics, on iSCSI members ----------------------------- */

START_TEST(test_sem_rw_roundtrip)
{
	crp_sem_rw_roundtrip(spec_of(LUN_RW));
}
END_TEST

START_TEST(test_sem_reserve_conflict)
{
	crp_sem_reserve_conflict(spec_of(LUN_RESERVE));
}
END_TEST

START_TEST(test_sem_release_on_close)
{
	crp_sem_release_on_close(spec_of(LUN_CLOSE));
}
END_TEST

START_TEST(test_sem_release_on_death)
{
	crp_sem_release_on_death(spec_of(LUN_DEATH));
}
END_TEST

START_TEST(test_sem_pr_write_exclusive)
{
	crp_sem_pr_write_exclusive(spec_of(LUN_PR_WE));
}
END_TEST

START_TEST(test_sem_pr_preempt)
{
	crp_sem_pr_preempt(spec_of(LUN_PR_PREEMPT));
}
END_TEST

START_TEST(test_sem_lun_reset)
{
	crp_sem_lun_reset(spec_of(LUN_RESET));
}
END_TEST

static void tgt_lun_gone(void *arg, bool gone)
{
	(void)arg;
	ck_assert_msg(crp_tgt_lun_offline(g_tgt, LUN_GONE, gone) == 0, "tgtadm: %s LUN %d",
		      gone ? "delete" : "re-create", LUN_GONE + 1);
}

START_TEST(test_sem_lun_gone)
{
	crp_sem_lun_gone(spec_of(LUN_GONE), tgt_lun_gone, NULL);
}
END_TEST

/* ---- CHAP ---------------------------------------------------------------- */

static void write_chap(const char *path, const char *user, const char *secret, mode_t mode)
{
	FILE *f;

	unlink(path);
	f = fopen(path, "w");
	ck_assert_msg(f, "create %s: %s", path, strerror(errno));
	fprintf(f, "# test credentials\n[chap]\nusername = %s\npassword = %s\n", user, secret);
	fclose(f);
	ck_assert_int_eq(chmod(path, mode), 0);
}

START_TEST(test_chap)
{
	static const char user[] = "crpfs-test", secret[] = "s3cret-0123456789";
	char err[1024], dir[] = "/tmp/crpfs-chap-XXXXXX", good[128], wrong[128], open_file[128];
	char spec[600];
	struct crp_member_opts o = { .host = "chaphost", .timeout_ms = 5000 };
	struct crp_member *m = NULL;
	struct crp_tgt *t;
	uint8_t *buf = crp_alloc_buf(4096), *back = crp_alloc_buf(4096);
	int r;

	t = crp_tgt_start(1, LUN_SIZE, err, sizeof(err));
	ck_assert_msg(t, "private tgtd for CHAP: %s", err);
	ck_assert_int_eq(crp_tgt_add_chap(t, user, secret), 0);
	ck_assert_ptr_nonnull(mkdtemp(dir));
	snprintf(good, sizeof(good), "%s/good", dir);
	snprintf(wrong, sizeof(wrong), "%s/wrong", dir);
	snprintf(open_file, sizeof(open_file), "%s/open", dir);
	write_chap(good, user, secret, 0600);
	write_chap(wrong, user, "not-the-secret-42", 0600);
	write_chap(open_file, user, secret, 0640);

	/* Without credentials the target refuses the login. */
	r = crp_member_open(crp_tgt_spec(t, 0), &o, &m, err, sizeof(err));
	ck_assert_msg(r < 0, "login without CHAP succeeded on a CHAP target");
	ck_assert_msg(strstr(err, "login"), "message does not say the login failed: %s", err);

	/* The right secret from a 0600 file logs in, and I/O works. */
	snprintf(spec, sizeof(spec), "%s?chap=%s", crp_tgt_spec(t, 0), good);
	r = crp_member_open(spec, &o, &m, err, sizeof(err));
	ck_assert_msg(r == 0, "CHAP login with the right secret: %s", err);
	memset(buf, 0x5c, 4096);
	ck_assert_int_eq(crp_member_write(m, 4096, buf, 4096), 0);
	ck_assert_int_eq(crp_member_read(m, 4096, back, 4096), 0);
	ck_assert_mem_eq(buf, back, 4096);
	crp_member_close(m);
	m = NULL;

	/* A wrong secret is refused; the message names the file, not the secret. */
	snprintf(spec, sizeof(spec), "%s?chap=%s", crp_tgt_spec(t, 0), wrong);
	r = crp_member_open(spec, &o, &m, err, sizeof(err));
	ck_assert_msg(r < 0, "CHAP login with a wrong secret succeeded");
	ck_assert_msg(strstr(err, "login") && strstr(err, wrong),
		      "message should say the login was refused and name %s: %s", wrong, err);
	ck_assert_msg(!strstr(err, "not-the-secret-42"), "message leaks the secret: %s", err);

	/* A file group or others can read is refused before any login. */
	snprintf(spec, sizeof(spec), "%s?chap=%s", crp_tgt_spec(t, 0), open_file);
	r = crp_member_open(spec, &o, &m, err, sizeof(err));
	ck_assert_msg(r < 0, "a group-readable credentials file was accepted");
	ck_assert_msg(strstr(err, open_file) && strstr(err, "group or others"),
		      "message should name %s and say group/others can read it: %s", open_file,
		      err);
	ck_assert_msg(!strstr(err, secret), "message leaks the secret: %s", err);

	/* A missing file is named too. */
	snprintf(spec, sizeof(spec), "%s?chap=%s/missing", crp_tgt_spec(t, 0), dir);
	r = crp_member_open(spec, &o, &m, err, sizeof(err));
	ck_assert_msg(r < 0 && strstr(err, "missing"), "missing credentials file: %s", err);

	unlink(good);
	unlink(wrong);
	unlink(open_file);
	rmdir(dir);
	free(buf);
	free(back);
	crp_tgt_stop(t);
}
END_TEST

/* ---- unreachable and silent portals ------------------------------------- */

static int closed_port(void)
{
	struct sockaddr_in sa = { .sin_family = AF_INET };
	socklen_t sl = sizeof(sa);
	int fd = socket(AF_INET, SOCK_STREAM, 0), port;

	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(bind(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	ck_assert_int_eq(getsockname(fd, (struct sockaddr *)&sa, &sl), 0);
	port = ntohs(sa.sin_port);
	close(fd);
	return port;
}

START_TEST(test_unreachable_portal)
{
	struct crp_member_opts o = { .host = "h-unreach", .timeout_ms = SHORT_TIMEOUT_MS };
	struct crp_member *m = NULL;
	char spec[256], err[512], portal[64];
	uint64_t t0;
	int r, port = closed_port();

	snprintf(spec, sizeof(spec), "iscsi://127.0.0.1:%d/iqn.2026-11.org.crpfs.test:none/1",
		 port);
	snprintf(portal, sizeof(portal), "127.0.0.1:%d", port);
	t0 = crp_now_ns();
	r = crp_member_open(spec, &o, &m, err, sizeof(err));
	ck_assert_msg(r < 0, "open of a closed port succeeded");
	ck_assert_ptr_null(m);
	ck_assert_msg(ms_since(t0) < SHORT_TIMEOUT_MS + MARGIN_MS,
		      "open took %llu ms with a %d ms timeout", (unsigned long long)ms_since(t0),
		      SHORT_TIMEOUT_MS);
	ck_assert_msg(strstr(err, portal), "message does not name the portal %s: %s", portal, err);
}
END_TEST

/* A portal that accepts the TCP connection and never answers the login. */
START_TEST(test_silent_portal)
{
	struct crp_member_opts o = { .host = "h-silent", .timeout_ms = SHORT_TIMEOUT_MS };
	struct sockaddr_in sa = { .sin_family = AF_INET };
	socklen_t sl = sizeof(sa);
	struct crp_member *m = NULL;
	char spec[256], err[512], portal[64];
	uint64_t t0;
	int r, fd = socket(AF_INET, SOCK_STREAM, 0);

	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	ck_assert_int_eq(bind(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	ck_assert_int_eq(listen(fd, 4), 0);
	ck_assert_int_eq(getsockname(fd, (struct sockaddr *)&sa, &sl), 0);
	snprintf(portal, sizeof(portal), "127.0.0.1:%d", ntohs(sa.sin_port));
	snprintf(spec, sizeof(spec), "iscsi://%s/iqn.2026-11.org.crpfs.test:none/1", portal);

	t0 = crp_now_ns();
	r = crp_member_open(spec, &o, &m, err, sizeof(err));
	ck_assert_int_eq(r, -ETIMEDOUT);
	ck_assert_msg(ms_since(t0) < SHORT_TIMEOUT_MS + MARGIN_MS,
		      "open took %llu ms with a %d ms timeout", (unsigned long long)ms_since(t0),
		      SHORT_TIMEOUT_MS);
	ck_assert_msg(strstr(err, portal), "message does not name the portal %s: %s", portal, err);
	close(fd);
}
END_TEST

/* ---- a LUN going away, a daemon hanging or dying ------------------------ */

/* A LUN deleted at the target (every command: ILLEGAL REQUEST, LOGICAL UNIT
 * NOT SUPPORTED) is a dead member, not a field crpfs got wrong. */
START_TEST(test_lun_offline)
{
	struct crp_member *m = open_host(spec_of(LUN_OFFLINE), "h-offline", SHORT_TIMEOUT_MS);
	uint8_t *buf = crp_alloc_buf(4096);
	char last[256];
	uint64_t t0;
	int r;

	ck_assert_int_eq(crp_member_read(m, 0, buf, 4096), 0);
	ck_assert_int_eq(crp_tgt_lun_offline(g_tgt, LUN_OFFLINE, true), 0);
	t0 = crp_now_ns();
	r = crp_member_read(m, 0, buf, 4096);
	ck_assert_msg(r == -CRP_EMEMBER, "read from a deleted LUN: %d (%s)", r, crp_strerror(r));
	/* at once: no retries, no reconnect loop */
	ck_assert_msg(ms_since(t0) < 1000, "read took %llu ms", (unsigned long long)ms_since(t0));
	ck_assert_uint_eq(atomic_load(&crp_member_counters(m)->reconnects), 0);
	ck_assert(crp_member_failed(m));
	ck_assert_int_eq(crp_member_fail_reason(m), -CRP_EMEMBER);
	crp_member_last_error(m, last, sizeof(last));
	ck_assert_msg(strcasestr(last, "logical unit not supported"),
		      "last error does not say what the target said: %s", last);
	/* Failed for good: the LUN coming back does not revive this member. */
	ck_assert_int_eq(crp_tgt_lun_offline(g_tgt, LUN_OFFLINE, false), 0);
	ck_assert_int_eq(crp_member_read(m, 0, buf, 4096), -CRP_EMEMBER);
	crp_member_close(m);
	m = open_host(spec_of(LUN_OFFLINE), "h-offline", SHORT_TIMEOUT_MS);
	ck_assert_int_eq(crp_member_read(m, 0, buf, 4096), 0);
	crp_member_close(m);
	free(buf);
}
END_TEST

START_TEST(test_tgtd_hung)
{
	struct crp_member *m;
	struct crp_tgt *t;
	uint8_t *buf = crp_alloc_buf(4096);
	char err[512];
	uint64_t t0;
	int r;

	t = crp_tgt_start(1, LUN_SIZE, err, sizeof(err));
	ck_assert_msg(t, "private tgtd: %s", err);
	m = open_host(crp_tgt_spec(t, 0), "h-hung", SHORT_TIMEOUT_MS);
	ck_assert_int_eq(crp_member_read(m, 0, buf, 4096), 0);

	ck_assert_int_eq(kill(crp_tgt_pid(t), SIGSTOP), 0);
	t0 = crp_now_ns();
	r = crp_member_read(m, 0, buf, 4096);
	ck_assert_msg(r == -ETIMEDOUT, "read from a stopped tgtd: %d (%s)", r, crp_strerror(r));
	ck_assert_msg(ms_since(t0) < SHORT_TIMEOUT_MS + MARGIN_MS, "read took %llu ms",
		      (unsigned long long)ms_since(t0));
	ck_assert(crp_member_failed(m));
	ck_assert_int_eq(crp_member_fail_reason(m), -ETIMEDOUT);
	ck_assert_uint_ge(atomic_load(&crp_member_counters(m)->timeouts), 1);
	/* A failed member answers at once. */
	ck_assert_int_eq(crp_member_read(m, 0, buf, 4096), -CRP_EMEMBER);
	ck_assert_int_eq(crp_member_lun_reset(m), -CRP_EMEMBER);
	kill(crp_tgt_pid(t), SIGCONT);
	crp_member_close(m);
	crp_tgt_stop(t);
	free(buf);
}
END_TEST

/* The child of test_host_paused: exit status 0, or what went wrong. */
static int paused_host(int rd, int wr, void *ctx)
{
	const char *spec = ctx;
	struct crp_member_opts o = { .host = "h-paused", .timeout_ms = 1000 };
	uint8_t *buf = crp_alloc_buf(4096);
	struct crp_member *m = NULL;
	struct crp_batch b;
	struct crp_cmd c;
	char err[512], x = 'x';

	if (crp_member_open(spec, &o, &m, err, sizeof(err)) < 0 ||
	    crp_member_read(m, 0, buf, 4096) < 0)
		return 2;
	if (write(wr, &x, 1) != 1 || read(rd, &x, 1) != 1)
		return 3;
	/* tgtd is stopped: the READ goes out and waits for its answer, then
	 * this process stops for 2.5 timeouts; tgtd answers after it resumes. */
	crp_batch_init(&b);
	crp_cmd_init(&c);
	crp_cdb_read16(&c, 0, 4096 / crp_member_block_size(m), buf, 4096);
	crp_batch_add(&b, &c);
	crp_member_submit(m, (struct crp_cmd *[]){ &c }, 1);
	crp_sleep_ns(300 * 1000000ull);
	raise(SIGSTOP);
	crp_batch_wait(&b);
	crp_batch_destroy(&b);
	if (c.result || crp_member_failed(m)) {
		fprintf(stderr, "READ in flight across the pause: %s; member %s\n",
			crp_strerror(c.result), crp_member_failed(m) ? "failed" : "in service");
		return 4;
	}
	crp_member_close(m);
	free(buf);
	return 0;
}

/*
 * This host paused (stopped here; a paused VM alike) for longer than the
 * command timeout while a READ waited for its answer, which comes just
 * after the resume: the pause is not the target's, the READ completes and
 * the member stays in service.  (test_tgtd_hung: a target that does not
 * answer while this host runs is timed out.)
 */
START_TEST(test_host_paused)
{
	struct crp_child ch;
	struct crp_tgt *t;
	char err[512], x = 'x';
	int st;
	pid_t pid;

	t = crp_tgt_start(1, LUN_SIZE, err, sizeof(err));
	ck_assert_msg(t, "private tgtd: %s", err);
	ck_assert_int_eq(crp_child_start(&ch, paused_host, (void *)crp_tgt_spec(t, 0)), 0);
	pid = ch.pid;
	ck_assert_int_eq(read(ch.from_child, &x, 1), 1);
	ck_assert_int_eq(kill(crp_tgt_pid(t), SIGSTOP), 0);
	ck_assert_msg(crp_child_pause(&ch, 2500 * 1000000ull, &st) == 0,
		      "the host did not stop (status %#x)", st);
	crp_sleep_ns(200 * 1000000ull);
	ck_assert_int_eq(kill(crp_tgt_pid(t), SIGCONT), 0);
	ck_assert_int_eq(waitpid(pid, &st, 0), pid);
	crp_child_close(&ch);
	crp_tgt_stop(t);
	ck_assert_msg(WIFEXITED(st) && WEXITSTATUS(st) == 0,
		      "the host failed (status %#x: 4 = the READ failed after the pause)", st);
}
END_TEST

START_TEST(test_tgtd_killed)
{
	struct crp_member *m;
	struct crp_tgt *t;
	struct crp_batch b;
	struct crp_cmd cmd;
	uint8_t *buf = crp_alloc_buf(4096);
	char err[512];
	pid_t pid;

	t = crp_tgt_start(1, LUN_SIZE, err, sizeof(err));
	ck_assert_msg(t, "private tgtd: %s", err);
	/* reconnect_ms UINT32_MAX: a lost session fails the member at once */
	m = open_rc(crp_tgt_spec(t, 0), "h-killed", 30000, UINT32_MAX);
	ck_assert_int_eq(crp_member_read(m, 0, buf, 4096), 0);
	pid = crp_tgt_pid(t);

	/* A READ in flight when the daemon dies completes with lock loss. */
	ck_assert_int_eq(kill(pid, SIGSTOP), 0);
	crp_cmd_init(&cmd);
	crp_cdb_read16(&cmd, 0, 8, buf, 4096);
	crp_batch_init(&b);
	crp_batch_add(&b, &cmd);
	crp_member_submit(m, (struct crp_cmd *[]){ &cmd }, 1);
	crp_sleep_ns(300 * 1000000ull); /* let it reach the socket */
	ck_assert_int_eq(kill(pid, SIGKILL), 0);
	crp_batch_wait(&b);
	crp_batch_destroy(&b);
	ck_assert_msg(cmd.result == -CRP_ELOCKLOST, "in-flight READ: %d (%s)", cmd.result,
		      crp_strerror(cmd.result));
	ck_assert(crp_member_failed(m));
	ck_assert_int_eq(crp_member_fail_reason(m), -CRP_ELOCKLOST);
	ck_assert(crp_member_take_events(m) & CRP_EV_NEXUS_LOST);
	ck_assert_int_eq(crp_member_read(m, 0, buf, 4096), -CRP_EMEMBER);
	ck_assert_uint_eq(atomic_load(&crp_member_counters(m)->reconnects), 0);
	crp_member_close(m);
	crp_tgt_stop(t);
	free(buf);
}
END_TEST

/* Drop @host's session at @t with tgtadm (delete its connection). */
static void drop_session_of(struct crp_tgt *t, const char *host)
{
	const char *show[] = { "--lld", "iscsi", "--op", "show", "--mode", "conn", "--tid", "1",
			       NULL };
	char out[4096], sid[32] = "", cur[32] = "", initiator[300], *line, *save = NULL;

	crp_initiator_name(host, initiator, sizeof(initiator));
	ck_assert_int_eq(crp_tgt_admin(t, out, sizeof(out), show), 0);
	for (line = strtok_r(out, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
		if (sscanf(line, " Session: %31s", cur) == 1)
			continue;
		if (strstr(line, initiator))
			snprintf(sid, sizeof(sid), "%s", cur);
	}
	ck_assert_msg(sid[0], "tgtadm shows no session of %s", initiator);
	{
		const char *del[] = { "--lld", "iscsi", "--op", "delete", "--mode", "conn",
				      "--tid", "1", "--sid", sid, "--cid", "0", NULL };

		ck_assert_int_eq(crp_tgt_admin(t, out, sizeof(out), del), 0);
	}
}

/* Wait (bounded by @ms) until @m has logged in again @n times. */
static bool wait_reconnects(struct crp_member *m, uint64_t n, unsigned ms)
{
	uint64_t end = crp_now_ns() + (uint64_t)ms * 1000000ull;

	while (atomic_load(&crp_member_counters(m)->reconnects) < n) {
		if (crp_now_ns() > end || crp_member_failed(m))
			return false;
		crp_sleep_ns(10 * 1000000ull);
	}
	return true;
}

/* A write that relies on a reservation (its fence time a minute ahead). */
static int fenced_write(struct crp_member *m, uint64_t off, const void *buf, uint32_t len)
{
	struct crp_cmd cmd;

	crp_cmd_init(&cmd);
	crp_cdb_write16(&cmd, off / 512, len / 512, buf, len, false);
	cmd.fence_ns = crp_now_ns() + 60000000000ull;
	return crp_member_exec(m, &cmd);
}

static int reserve6(struct crp_member *m)
{
	struct crp_cmd cmd;

	crp_cmd_init(&cmd);
	crp_cdb_reserve6(&cmd);
	return crp_member_exec(m, &cmd);
}

static int release6(struct crp_member *m)
{
	struct crp_cmd cmd;

	crp_cmd_init(&cmd);
	crp_cdb_release6(&cmd);
	return crp_member_exec(m, &cmd);
}

/*
 * The target closes an idle session: the member notices on its own, logs
 * in again, and the next commands succeed.  The loss is an event; the
 * reservation held on the old nexus is gone (another host takes it); a
 * write that relies on a reservation is refused until the event is taken.
 */
START_TEST(test_session_lost)
{
	struct crp_member *m = open_host(spec_of(LUN_LOST), "h-lost", SHORT_TIMEOUT_MS);
	struct crp_member *other = open_host(spec_of(LUN_LOST), "h-lost-other", SHORT_TIMEOUT_MS);
	uint8_t *buf = crp_alloc_buf(4096), *back = crp_alloc_buf(4096);
	uint64_t end;
	int r;

	memset(buf, 0x3c, 4096);
	ck_assert_int_eq(crp_member_write(m, 0, buf, 4096), 0);
	ck_assert_int_eq(reserve6(m), 0);
	ck_assert_int_eq(reserve6(other), -CRP_ECONFLICT);
	crp_member_take_events(m);
	drop_session_of(g_tgt, "h-lost");
	ck_assert_msg(wait_reconnects(m, 1, 10000), "no reconnect within 10 s (failed: %d)",
		      crp_member_fail_reason(m));
	ck_assert_int_eq(crp_member_read(m, 0, back, 4096), 0);
	ck_assert_mem_eq(buf, back, 4096);
	ck_assert(!crp_member_failed(m));
	ck_assert_uint_eq(atomic_load(&crp_member_counters(m)->reconnects), 1);

	/* The old nexus's reservation went with it: the other host gets it
	 * (tgt may take a moment to end the old session). */
	end = crp_now_ns() + 10000000000ull;
	while ((r = reserve6(other)) == -CRP_ECONFLICT && crp_now_ns() < end)
		crp_sleep_ns(50 * 1000000ull);
	ck_assert_msg(r == 0, "the other host's RESERVE(6) after the loss: %s", crp_strerror(r));
	ck_assert_int_eq(release6(other), 0);

	/* A write under a reservation of the lost nexus never goes out... */
	ck_assert_int_eq(fenced_write(m, 4096, buf, 4096), -CRP_ELOCKLOST);
	/* ... until the loss has been heard of. */
	ck_assert(crp_member_take_events(m) & CRP_EV_NEXUS_LOST);
	ck_assert_int_eq(fenced_write(m, 4096, buf, 4096), 0);
	ck_assert_int_eq(crp_member_read(m, 4096, back, 4096), 0);
	ck_assert_mem_eq(buf, back, 4096);
	crp_member_close(other);
	crp_member_close(m);
	free(buf);
	free(back);
}
END_TEST

/* A stopped target's reset request, while the member logs in again. */
struct bg_read {
	struct crp_batch b;
	struct crp_cmd cmd;
	uint8_t *buf;
};

static void bg_read_start(struct bg_read *r, struct crp_member *m, uint64_t lba)
{
	r->buf = crp_alloc_buf(4096);
	crp_cmd_init(&r->cmd);
	crp_cdb_read16(&r->cmd, lba, 8, r->buf, 4096);
	crp_batch_init(&r->b);
	crp_batch_add(&r->b, &r->cmd);
	crp_member_submit(m, (struct crp_cmd *[]){ &r->cmd }, 1);
}

static int bg_read_wait(struct bg_read *r)
{
	crp_batch_wait(&r->b);
	crp_batch_destroy(&r->b);
	return r->cmd.result;
}

/*
 * tgtd stopped and started again on the same port with the same LUN files,
 * within the window: commands submitted meanwhile wait and succeed, the
 * data is intact.  Then killed with a READ in flight: that READ completes
 * with lock loss, a write relying on a reservation submitted meanwhile is
 * refused, a plain one lands once the daemon is back.
 */
START_TEST(test_tgtd_restart)
{
	struct crp_member *m;
	struct crp_tgt *t;
	struct bg_read rd;
	uint8_t *buf = crp_alloc_buf(4096), *back = crp_alloc_buf(4096);
	struct crp_batch b;
	struct crp_cmd wf, wp;
	char err[512];
	uint64_t t0;
	int r;

	t = crp_tgt_start(1, LUN_SIZE, err, sizeof(err));
	ck_assert_msg(t, "private tgtd: %s", err);
	m = open_rc(crp_tgt_spec(t, 0), "h-restart", SHORT_TIMEOUT_MS, 20000);
	for (int i = 0; i < 4096; i++)
		buf[i] = (uint8_t)(i * 13 + 1);
	ck_assert_int_eq(crp_member_write(m, 8192, buf, 4096), 0);
	crp_member_take_events(m);

	/* Stopped (its sessions end), a READ waits, started again. */
	ck_assert_int_eq(crp_tgt_daemon_stop(t, false), 0);
	for (int i = 0; i < 500 && !(crp_member_take_events(m) & CRP_EV_NEXUS_LOST); i++)
		crp_sleep_ns(10 * 1000000ull);
	ck_assert(crp_member_reconnecting(m));
	t0 = crp_now_ns();
	bg_read_start(&rd, m, 16);
	/* no session to send a LUN reset on: refused at once */
	ck_assert_int_eq(crp_member_lun_reset(m), -CRP_ELOCKLOST);
	crp_sleep_ns(1000 * 1000000ull);
	ck_assert_msg(crp_tgt_daemon_start(t, err, sizeof(err)) == 0, "restart: %s", err);
	r = bg_read_wait(&rd);
	ck_assert_msg(r == 0, "READ submitted while tgtd was down: %s", crp_strerror(r));
	ck_assert_msg(ms_since(t0) < 20000 + SHORT_TIMEOUT_MS, "the READ waited %llu ms",
		      (unsigned long long)ms_since(t0));
	ck_assert_mem_eq(rd.buf, buf, 4096);
	free(rd.buf);
	ck_assert(!crp_member_failed(m));
	ck_assert(!crp_member_reconnecting(m));
	ck_assert_uint_eq(atomic_load(&crp_member_counters(m)->reconnects), 1);
	/* The new session is an event of its own, not a second loss. */
	ck_assert_uint_eq(crp_member_take_events(m) & (CRP_EV_NEXUS_LOST | CRP_EV_NEW_NEXUS),
			  CRP_EV_NEW_NEXUS);

	/* Killed with a READ in flight: it changes nothing and relies on no
	 * reservation, so it goes out again on the next session. */
	ck_assert_int_eq(kill(crp_tgt_pid(t), SIGSTOP), 0);
	bg_read_start(&rd, m, 16);
	crp_sleep_ns(300 * 1000000ull); /* let it reach the socket */
	ck_assert_int_eq(crp_tgt_daemon_stop(t, true), 0);
	ck_assert(!crp_member_failed(m));
	/* submitted while down, without taking the event: one relies on a
	 * reservation of the old nexus, one does not */
	memset(back, 0xee, 4096);
	crp_cmd_init(&wf);
	crp_cdb_write16(&wf, 32, 8, back, 4096, false);
	wf.fence_ns = crp_now_ns() + 60000000000ull;
	crp_cmd_init(&wp);
	crp_cdb_write16(&wp, 40, 8, buf, 4096, false);
	crp_batch_init(&b);
	crp_batch_add(&b, &wf);
	crp_batch_add(&b, &wp);
	crp_member_submit(m, (struct crp_cmd *[]){ &wf, &wp }, 2);
	ck_assert_msg(crp_tgt_daemon_start(t, err, sizeof(err)) == 0, "restart: %s", err);
	r = bg_read_wait(&rd);
	ck_assert_msg(r == 0, "READ in flight at the loss: %d (%s)", r, crp_strerror(r));
	ck_assert_mem_eq(rd.buf, buf, 4096);
	free(rd.buf);
	crp_batch_wait(&b);
	crp_batch_destroy(&b);
	ck_assert_int_eq(wf.result, -CRP_ELOCKLOST);
	ck_assert_int_eq(wp.result, 0);
	ck_assert_uint_eq(crp_member_take_events(m) & (CRP_EV_NEXUS_LOST | CRP_EV_NEW_NEXUS),
			  CRP_EV_NEXUS_LOST | CRP_EV_NEW_NEXUS);
	ck_assert_int_eq(crp_member_read(m, 16384, back, 4096), 0);
	ck_assert_msg(back[0] == 0 && back[4095] == 0, "the refused write landed");
	ck_assert_int_eq(crp_member_read(m, 20480, back, 4096), 0);
	ck_assert_mem_eq(back, buf, 4096);
	ck_assert_int_eq(crp_member_read(m, 8192, back, 4096), 0);
	ck_assert_mem_eq(back, buf, 4096);
	ck_assert_uint_eq(atomic_load(&crp_member_counters(m)->reconnects), 2);
	crp_member_close(m);
	crp_tgt_stop(t);
	free(buf);
	free(back);
}
END_TEST

/*
 * A tgtd restart while this host holds the metadata lock: the lock went
 * with the sessions, and another host may take it and write the metadata
 * before this one notices.  No stripe is written under it from then on
 * (a stripe write that found a member's session lost used to reserve it
 * again on the new session, and the unlock then saw a lock that looked
 * held): every write fails with -CRP_ELOCKLOST, and the unlock reports
 * the loss, whichever command found it first.
 */
static void meta_lock_lost(enum crp_lock_mode mode)
{
	struct crp_array_opts o = { .host = "h-mll", .timeout_ms = SHORT_TIMEOUT_MS,
				    .lock_mode = mode };
	const char *specs[3];
	struct crp_array *a = NULL;
	struct crp_tgt *t;
	struct crp_geom g;
	uint8_t *buf;
	uint64_t sb;
	char err[512];

	t = crp_tgt_start(3, LUN_SIZE, err, sizeof(err));
	ck_assert_msg(t, "private tgtd: %s", err);
	for (int i = 0; i < 3; i++)
		specs[i] = crp_tgt_spec(t, i);
	ck_assert_msg(crp_array_open(specs, 3, &o, &a, err, sizeof(err)) == 0, "open: %s", err);
	ck_assert_msg(crp_geom_init(&g, 5, 3, 4096, 0, crp_array_min_member_size(a), err,
				    sizeof(err)) == 0, "geometry: %s", err);
	ck_assert_int_eq(crp_array_set_geometry(a, &g), 0);
	sb = crp_geom_stripe_bytes(&g);
	buf = crp_alloc_buf(sb);
	ck_assert_ptr_nonnull(buf);

	ck_assert_int_eq(crp_array_meta_lock(a), 0);
	ck_assert_int_eq(crp_array_write(a, 0, buf, sb), 0);
	ck_assert_int_eq(crp_tgt_daemon_stop(t, false), 0);
	ck_assert_msg(crp_tgt_daemon_start(t, err, sizeof(err)) == 0, "restart: %s", err);
	/* Whole stripes: every member, the lock's among them. */
	ck_assert_int_eq(crp_array_write(a, 0, buf, sb), -CRP_ELOCKLOST);
	ck_assert_int_eq(crp_array_write(a, sb, buf, sb), -CRP_ELOCKLOST);
	ck_assert_int_eq(crp_array_meta_unlock(a), -CRP_ELOCKLOST);
	/* Taken again, it is held on the new sessions. */
	ck_assert_int_eq(crp_array_meta_lock(a), 0);
	ck_assert_int_eq(crp_array_write(a, sb, buf, sb), 0);
	ck_assert_int_eq(crp_array_meta_unlock(a), 0);
	crp_array_close(a);
	free(buf);
	crp_tgt_stop(t);
}

START_TEST(test_meta_lock_lost_with_restart_reserve)
{
	meta_lock_lost(CRP_LOCK_RESERVE);
}
END_TEST

START_TEST(test_meta_lock_lost_with_restart_pr)
{
	meta_lock_lost(CRP_LOCK_PR);
}
END_TEST

/* Is @key registered on @spec?  Read with a session of another host. */
static bool key_registered(const char *spec, uint64_t key)
{
	struct crp_member *m = open_host(spec, "h-prrs-reader", SHORT_TIMEOUT_MS);
	uint8_t buf[512];
	uint64_t keys[32];
	uint32_t gen;
	struct crp_cmd c;
	bool found = false;
	int n;

	crp_cmd_init(&c);
	crp_cdb_pr_in(&c, CRP_PRIN_READ_KEYS, buf, sizeof(buf));
	ck_assert_int_eq(crp_member_exec(m, &c), 0);
	n = crp_parse_pr_keys(buf, sizeof(buf), &gen, keys, 32);
	ck_assert_int_ge(n, 0);
	for (int k = 0; k < n && k < 32; k++)
		found |= keys[k] == key;
	crp_member_close(m);
	return found;
}

/*
 * pr mode: a tgtd restart drops every registration.  A host whose session
 * was lost meanwhile registers again even when its lease ran out during
 * the outage (its slot is checked before it writes again, by the cluster
 * layer): a key missing after a new nexus is not proof of a preemption.
 * The same key preempted on the same nexus still fences.
 */
START_TEST(test_pr_lost_with_restart_not_fenced)
{
	struct crp_array_opts o = { .host = "h-prrs", .timeout_ms = SHORT_TIMEOUT_MS,
				    .lock_mode = CRP_LOCK_PR };
	struct crp_array *a = NULL, *b = NULL;
	struct crp_tgt *t;
	const char *spec;
	char err[512];
	uint64_t key;

	t = crp_tgt_start(1, LUN_SIZE, err, sizeof(err));
	ck_assert_msg(t, "private tgtd: %s", err);
	spec = crp_tgt_spec(t, 0);
	ck_assert_msg(crp_array_open(&spec, 1, &o, &a, err, sizeof(err)) == 0, "open: %s", err);
	key = crp_array_pr_key(a);
	ck_assert(key_registered(spec, key));
	crp_array_set_lease(a, crp_now_ns() - 1); /* the lease ran out */

	ck_assert_int_eq(crp_tgt_daemon_stop(t, false), 0);
	ck_assert_msg(crp_tgt_daemon_start(t, err, sizeof(err)) == 0, "restart: %s", err);
	ck_assert(!key_registered(spec, key)); /* the target lost it */
	/* Once the member is on a new session, the check finds the key gone
	 * and registers it again (a member still logging in is left for the
	 * next check: as the heartbeat does, call again). */
	for (int i = 0; !key_registered(spec, key); i++) {
		ck_assert_msg(i < 2000, "the key was never registered again");
		ck_assert_int_eq(crp_array_pr_check(a), 0);
		ck_assert(!crp_array_fenced(a));
		if (!key_registered(spec, key))
			crp_sleep_ns(10000000);
	}
	ck_assert_int_eq(crp_array_pr_check(a), 0);

	/* Preempted on the nexus it registered on: fenced. */
	o.host = "h-prrs-other";
	ck_assert_msg(crp_array_open(&spec, 1, &o, &b, err, sizeof(err)) == 0, "open: %s", err);
	ck_assert_int_eq(crp_array_break_locks(b, key, 0), 0);
	ck_assert(!key_registered(spec, key));
	ck_assert_int_eq(crp_array_pr_check(a), -CRP_EFENCED);
	ck_assert(crp_array_fenced(a));
	crp_array_close(b);
	crp_array_close(a);
	crp_tgt_stop(t);
}
END_TEST

/*
 * reserve mode: the survivors of a hung host all probe its reservation and
 * reset the unit, at about the same time.  One that resets while another
 * probes, and then takes the unit as a live host, must keep it: the
 * prober saw the reset (a UNIT ATTENTION) and does not reset again.  X
 * holds the unit (hung), Y probes for 1.5 s, Z resets it 300 ms in and
 * reserves it; after Y's probe, a READ of Y's still meets Z's reservation.
 */
struct probe {
	struct crp_array *a;
	int r;
};

static void *probe_main(void *arg)
{
	struct probe *p = arg;

	p->r = crp_array_break_locks(p->a, 0, 1500000000ull);
	return NULL;
}

START_TEST(test_break_locks_spares_a_live_holder)
{
	struct crp_array_opts o = { .timeout_ms = SHORT_TIMEOUT_MS, .lock_mode = CRP_LOCK_RESERVE };
	struct crp_array *x = NULL, *y = NULL, *z = NULL;
	const char *spec;
	struct crp_tgt *t;
	struct probe p;
	pthread_t th;
	uint8_t *buf = crp_alloc_buf(4096);
	char err[512];

	t = crp_tgt_start(1, LUN_SIZE, err, sizeof(err));
	ck_assert_msg(t, "private tgtd: %s", err);
	spec = crp_tgt_spec(t, 0);
	o.host = "h-hung-x";
	ck_assert_msg(crp_array_open(&spec, 1, &o, &x, err, sizeof(err)) == 0, "open x: %s", err);
	o.host = "h-probe-y";
	ck_assert_msg(crp_array_open(&spec, 1, &o, &y, err, sizeof(err)) == 0, "open y: %s", err);
	o.host = "h-live-z";
	ck_assert_msg(crp_array_open(&spec, 1, &o, &z, err, sizeof(err)) == 0, "open z: %s", err);
	ck_assert_int_eq(crp_array_meta_lock(x), 0);
	ck_assert_int_eq(crp_member_read(crp_array_member(y, 0), 0, buf, 4096), -CRP_ECONFLICT);

	p.a = y;
	p.r = 1;
	ck_assert_int_eq(pthread_create(&th, NULL, probe_main, &p), 0);
	crp_sleep_ns(300000000ull);
	ck_assert_int_eq(crp_member_lun_reset(crp_array_member(z, 0)), 0);
	/* Z knows of its own reset: its notice is not a lock lost later. */
	ck_assert_int_eq(crp_member_read(crp_array_member(z, 0), 0, buf, 4096), 0);
	(void)crp_member_take_events(crp_array_member(z, 0));
	ck_assert_int_eq(crp_array_meta_lock(z), 0);
	ck_assert_int_eq(pthread_join(th, NULL), 0);
	ck_assert_int_eq(p.r, 0);
	ck_assert_msg(crp_member_read(crp_array_member(y, 0), 0, buf, 4096) == -CRP_ECONFLICT,
		      "the prober reset the unit again: the live host's reservation is gone");
	ck_assert_int_eq(crp_array_meta_unlock(z), 0);
	crp_array_close(z);
	crp_array_close(y);
	crp_array_close(x);
	free(buf);
	crp_tgt_stop(t);
}
END_TEST

/* tgtd stays away longer than the window: the member fails, every waiting
 * command with it, within the window plus the command timeout. */
START_TEST(test_tgtd_gone_too_long)
{
	enum { TIMEOUT_MS = 1000, WINDOW_MS = 1500 };
	struct crp_member *m;
	struct crp_tgt *t;
	struct bg_read rd;
	uint8_t *buf = crp_alloc_buf(4096);
	char err[512], last[256];
	uint64_t t0;
	int r;

	t = crp_tgt_start(1, LUN_SIZE, err, sizeof(err));
	ck_assert_msg(t, "private tgtd: %s", err);
	m = open_rc(crp_tgt_spec(t, 0), "h-gone", TIMEOUT_MS, WINDOW_MS);
	ck_assert_int_eq(crp_member_read(m, 0, buf, 4096), 0);
	crp_member_take_events(m);
	ck_assert_int_eq(crp_tgt_daemon_stop(t, false), 0);
	for (int i = 0; i < 500 && !(crp_member_take_events(m) & CRP_EV_NEXUS_LOST); i++)
		crp_sleep_ns(10 * 1000000ull);
	t0 = crp_now_ns();
	bg_read_start(&rd, m, 0);
	r = bg_read_wait(&rd);
	free(rd.buf);
	ck_assert_msg(r == -CRP_EMEMBER, "READ while the target is away: %d (%s)", r,
		      crp_strerror(r));
	ck_assert_msg(ms_since(t0) < WINDOW_MS + TIMEOUT_MS + MARGIN_MS,
		      "the READ waited %llu ms with a %d ms window and a %d ms timeout",
		      (unsigned long long)ms_since(t0), WINDOW_MS, TIMEOUT_MS);
	ck_assert(crp_member_failed(m));
	ck_assert(!crp_member_reconnecting(m));
	ck_assert_int_eq(crp_member_fail_reason(m), -CRP_EMEMBER);
	crp_member_last_error(m, last, sizeof(last));
	ck_assert_msg(strstr(last, "reconnect window"), "last error: %s", last);
	ck_assert_uint_eq(atomic_load(&crp_member_counters(m)->reconnects), 0);
	ck_assert_int_eq(crp_member_read(m, 0, buf, 4096), -CRP_EMEMBER);
	crp_member_close(m);
	crp_tgt_stop(t);
	free(buf);
}
END_TEST

/* The LUN deleted while the session was up, then the session lost: the
 * login again finds no unit and fails the member at once, not at the end
 * of the window. */
START_TEST(test_lun_gone_at_reconnect)
{
	struct crp_member *m;
	struct crp_tgt *t;
	uint8_t *buf = crp_alloc_buf(4096);
	char err[512], last[256];
	uint64_t t0;

	t = crp_tgt_start(1, LUN_SIZE, err, sizeof(err));
	ck_assert_msg(t, "private tgtd: %s", err);
	m = open_rc(crp_tgt_spec(t, 0), "h-lungone", SHORT_TIMEOUT_MS, 20000);
	ck_assert_int_eq(crp_member_read(m, 0, buf, 4096), 0);
	ck_assert_int_eq(crp_tgt_lun_offline(t, 0, true), 0);
	t0 = crp_now_ns();
	drop_session_of(t, "h-lungone");
	while (!crp_member_failed(m) && ms_since(t0) < 15000)
		crp_sleep_ns(10 * 1000000ull);
	ck_assert_msg(crp_member_failed(m), "not failed after %llu ms",
		      (unsigned long long)ms_since(t0));
	ck_assert_msg(ms_since(t0) < SHORT_TIMEOUT_MS + MARGIN_MS, "failed after %llu ms",
		      (unsigned long long)ms_since(t0));
	ck_assert_int_eq(crp_member_fail_reason(m), -CRP_EMEMBER);
	crp_member_last_error(m, last, sizeof(last));
	ck_assert_msg(strcasestr(last, "logical unit not supported"), "last error: %s", last);
	ck_assert_uint_eq(atomic_load(&crp_member_counters(m)->reconnects), 0);
	ck_assert_int_eq(crp_member_read(m, 0, buf, 4096), -CRP_EMEMBER);
	crp_member_close(m);
	crp_tgt_stop(t);
	free(buf);
}
END_TEST

/* ---- UNIT ATTENTION ------------------------------------------------------ */

static int pr_out(struct crp_member *m, uint8_t sa, uint8_t type, uint64_t key, uint64_t sa_key)
{
	struct crp_cmd cmd;
	uint8_t param[24];

	crp_cmd_init(&cmd);
	crp_cdb_pr_out(&cmd, sa, type, key, sa_key, param);
	return crp_member_exec(m, &cmd);
}

START_TEST(test_ua_after_pr_release)
{
	struct crp_member *m = open_host(spec_of(LUN_UA), "h-ua", 5000);
	struct crp_member *other = open_host(spec_of(LUN_UA), "h-ua-other", 5000);
	struct crp_member_counters *c = crp_member_counters(m);
	uint8_t *buf = crp_alloc_buf(4096);
	uint64_t before;
	struct crp_cmd cmd;

	/* tgt queues the RESERVATIONS RELEASED attention meant for the other
	 * registrants on the releaser's own nexus; with no other registrant
	 * there is none, so register a second host. */
	ck_assert_int_eq(pr_out(m, CRP_PROUT_REGISTER, 0, 0, 0xc0ffee), 0);
	ck_assert_int_eq(pr_out(other, CRP_PROUT_REGISTER, 0, 0, 0xbeef), 0);
	ck_assert_int_eq(pr_out(m, CRP_PROUT_RESERVE, CRP_PR_TYPE_WRITE_EXCLUSIVE, 0xc0ffee, 0), 0);
	crp_member_take_events(m);
	before = atomic_load(&c->ua_retries);
	ck_assert_int_eq(pr_out(m, CRP_PROUT_RELEASE, CRP_PR_TYPE_WRITE_EXCLUSIVE, 0xc0ffee, 0), 0);
	/* The next command meets the UNIT ATTENTION, is retried by the I/O
	 * thread, and succeeds. */
	crp_cmd_init(&cmd);
	crp_cdb_read16(&cmd, 0, 8, buf, 4096);
	ck_assert_int_eq(crp_member_exec(m, &cmd), 0);
	ck_assert_int_eq(cmd.status, CRP_SAM_GOOD);
	ck_assert_uint_gt(atomic_load(&c->ua_retries), before);
	ck_assert_int_gt(cmd.ua_retries, 0);
	ck_assert(crp_member_take_events(m) & CRP_EV_RES_RELEASED);
	ck_assert_int_eq(pr_out(m, CRP_PROUT_REGISTER, 0, 0xc0ffee, 0), 0);
	ck_assert_int_eq(pr_out(other, CRP_PROUT_REGISTER, 0, 0xbeef, 0), 0);
	crp_member_close(other);
	crp_member_close(m);
	free(buf);
}
END_TEST

/* ---- the suite ----------------------------------------------------------- */

static Suite *tgt_transport_suite(void)
{
	Suite *s = suite_create("tgt_transport");
	TCase *tc;

	tc = tcase_create("semantics");
	tcase_set_timeout(tc, 120);
	tcase_add_test(tc, test_sem_rw_roundtrip);
	tcase_add_test(tc, test_sem_reserve_conflict);
	tcase_add_test(tc, test_sem_release_on_close);
	tcase_add_test(tc, test_sem_release_on_death);
	tcase_add_test(tc, test_sem_pr_write_exclusive);
	tcase_add_test(tc, test_sem_pr_preempt);
	tcase_add_test(tc, test_sem_lun_reset);
	tcase_add_test(tc, test_sem_lun_gone);
	suite_add_tcase(s, tc);

	tc = tcase_create("chap");
	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, test_chap);
	suite_add_tcase(s, tc);

	tc = tcase_create("unreachable");
	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, test_unreachable_portal);
	tcase_add_test(tc, test_silent_portal);
	suite_add_tcase(s, tc);

	tc = tcase_create("failures");
	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, test_lun_offline);
	tcase_add_test(tc, test_tgtd_hung);
	tcase_add_test(tc, test_tgtd_killed);
	tcase_add_test(tc, test_host_paused);
	suite_add_tcase(s, tc);

	tc = tcase_create("reconnect");
	tcase_set_timeout(tc, 90);
	tcase_add_test(tc, test_session_lost);
	tcase_add_test(tc, test_tgtd_restart);
	tcase_add_test(tc, test_tgtd_gone_too_long);
	tcase_add_test(tc, test_lun_gone_at_reconnect);
	tcase_add_test(tc, test_pr_lost_with_restart_not_fenced);
	tcase_add_test(tc, test_meta_lock_lost_with_restart_reserve);
	tcase_add_test(tc, test_meta_lock_lost_with_restart_pr);
	tcase_add_test(tc, test_break_locks_spares_a_live_holder);
	suite_add_tcase(s, tc);

	tc = tcase_create("unit_attention");
	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, test_ua_after_pr_release);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	SRunner *sr;
	int failed;

	g_tgt = crp_tgt_start(LUN_COUNT, LUN_SIZE, g_tgt_err, sizeof(g_tgt_err));
	if (!g_tgt)
		fprintf(stderr, "check_tgt_transport: tgtd did not start: %s\n", g_tgt_err);
	sr = srunner_create(tgt_transport_suite());
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	crp_tgt_stop(g_tgt);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
