/*
 * The cluster layer on file: members, with short intervals (heartbeat
 * 100 ms, dead timeout 500 ms): slot claim, refusal of a live duplicate
 * host name, dead detection, recovery exactly once with two survivors
 * racing, replay of the dead host's committed transaction, and fencing of
 * a hung host whose slot was recovered, in both lock modes.  Hosts that die
 * or hang are forked processes (each its own nexus), killed or stopped by
 * PID.
 */
#include <check.h>
#include <dirent.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "crpfs/cluster.h"
#include "crpfs/err.h"
#include "crpfs/member.h"
#include "crpfs/meta.h"
#include "crpfs/scsi.h"
#include "crpfs/util.h"
#include "fixture/fsfix.h"

#define NM 3
#define MEMBER_SIZE (64ull << 20)
#define HB_MS 100
#define DEAD_MS 500
#define MARK_MODE 0100640u /* the mode the dead host's journalled inode carries */

static struct crp_fsfix fx;

static void format(int lock_mode)
{
	const struct crp_fsfix_params p = { .name = "cluster", .members = NM,
					    .member_size = MEMBER_SIZE, .level = 5,
					    .chunk = 16384, .max_hosts = 4, .label = "cluster",
					    .lock_mode = lock_mode, .host = "mkfs" };

	crp_fsfix_format(&fx, &p);
}

static void cleanup(void)
{
	ck_assert_int_eq(crp_fsfix_remove(&fx), 0);
}

static int open_meta(const char *host, struct crp_meta **m, char *err, size_t errlen)
{
	struct crp_meta_opts o = { .host = host };

	return crp_meta_open(fx.specs, NM, &o, m, err, errlen);
}

static int join(struct crp_meta *m, bool thread, struct crp_cluster **c, char *err,
		size_t errlen)
{
	struct crp_cluster_opts o = { .heartbeat_ms = HB_MS, .dead_timeout_ms = DEAD_MS,
				      .no_thread = !thread };

	return crp_cluster_join(m, &o, c, err, errlen);
}

/* A whole host in the test process: meta open and join, or fail the test. */
static void host_up(const char *name, bool thread, struct crp_meta **m, struct crp_cluster **c)
{
	char err[512];

	ck_assert_msg(open_meta(name, m, err, sizeof(err)) == 0, "open %s: %s", name, err);
	ck_assert_msg(join(*m, thread, c, err, sizeof(err)) == 0, "join %s: %s", name, err);
}

/* A clean close, in the order cluster.h gives. */
static int host_down(struct crp_meta *m, struct crp_cluster *c)
{
	int r, e;

	crp_cluster_quiesce(c);
	r = crp_meta_shutdown(m);
	crp_cluster_leave(c);
	e = crp_meta_close(m);
	return r ? r : e;
}

/* Slot @i as the members say, through a short-lived read-only open. */
static struct crp_slot slot_now(int i)
{
	struct crp_meta_opts o = { .host = "observer", .ro = true };
	struct crp_meta *m;
	struct crp_slot s;
	char err[256];
	int r;

	/* In reserve mode a host holding member 0 locks out even reads of its
	 * label for a few round trips: retry, bounded. */
	for (int k = 0; (r = crp_meta_open(fx.specs, NM, &o, &m, err, sizeof(err))) < 0 && k < 200; k++)
		crp_sleep_ns(10000000ull);
	ck_assert_msg(r == 0, "%s", err);
	ck_assert_int_eq(crp_meta_slot_read(m, i, &s), 0);
	m->ro = true;
	crp_meta_close(m);
	return s;
}

/* Wait (bounded: a test that cannot finish fails) for slot @i's state. */
static struct crp_slot wait_slot_state(int i, uint32_t state, int seconds)
{
	struct crp_slot s;

	for (int k = 0; k < seconds * 20; k++) {
		s = slot_now(i);
		if (s.state == state)
			return s;
		crp_sleep_ns(50000000ull);
	}
	ck_abort_msg("slot %d did not reach state %u in %d s (it is %u, host %s)", i, state, seconds,
		     s.state, s.host);
	return s;
}

/* Fork a host that joins as @name (heartbeat thread running), optionally
 * commits an inode to its journal only, optionally takes the metadata lock
 * and keeps it, reports its slot on @fd, and then waits to be killed or
 * stopped.  Returns its PID. */
/* The forked host's side: in a process of its own (exec'd, so that it
 * inherits no lock another thread of the test held at fork time). */
static void host_child(const char *name, bool journal_inode, bool hold_meta, int fd)
{
	struct crp_meta *m;
	struct crp_cluster *c;
	char err[512];
	int64_t msg[2] = { -1, 0 };

	if (open_meta(name, &m, err, sizeof(err)) == 0 &&
	    join(m, true, &c, err, sizeof(err)) == 0) {
		msg[0] = crp_cluster_slot(c);
		if (journal_inode) {
			struct crp_inode in = { 0 };
			uint64_t ino;

			m->debug_no_checkpoint = true;
			if (crp_meta_ialloc(m, &ino) == 0) {
				in.ino = ino;
				in.mode = MARK_MODE;
				in.nlink = 1;
				if (crp_meta_iwrite(m, &in) == 0 && crp_meta_commit(m) == 0)
					msg[1] = (int64_t)ino;
			}
		}
		if (hold_meta && crp_array_meta_lock(m->a) < 0)
			msg[0] = -1;
	} else {
		fprintf(stderr, "host %s: %s\n", name, err);
	}
	if (write(fd, msg, sizeof(msg)) != (ssize_t)sizeof(msg))
		_exit(1);
	for (;;)
		pause();
}

/* Where the threads of a forked host that does not answer are waiting
 * (the wait channel of each, from /proc): said on stderr, so that a
 * hang that ends in the tcase timeout leaves a trace of where it was. */
static void say_waiting(const char *name, pid_t pid, int secs)
{
	char path[320], buf[128];
	struct dirent *e;
	DIR *d;

	snprintf(path, sizeof(path), "/proc/%d/task", (int)pid);
	d = opendir(path);
	fprintf(stderr, "host %s (pid %d) has not answered for %d s; its threads:", name, (int)pid,
		secs);
	while (d && (e = readdir(d))) {
		FILE *f;

		if (e->d_name[0] == '.')
			continue;
		snprintf(path, sizeof(path), "/proc/%d/task/%s/wchan", (int)pid, e->d_name);
		f = fopen(path, "r");
		buf[0] = '\0';
		if (f) {
			if (!fgets(buf, sizeof(buf), f))
				buf[0] = '\0';
			fclose(f);
		}
		fprintf(stderr, " %s:%s", e->d_name, buf[0] ? buf : "?");
	}
	fprintf(stderr, "\n");
	if (d)
		closedir(d);
}

static pid_t fork_host_ex(const char *name, bool journal_inode, bool hold_meta, int *slot_out,
			  uint64_t *ino_out)
{
	int fds[2];
	pid_t pid;
	int64_t msg[2];

	ck_assert_int_eq(pipe(fds), 0);
	pid = fork();
	ck_assert_int_ge(pid, 0);
	if (pid == 0) {
		char fd[16];
		char *argv[8 + NM];
		int k = 0;

		close(fds[0]);
		snprintf(fd, sizeof(fd), "%d", fds[1]);
		argv[k++] = "check_cluster";
		argv[k++] = "--host";
		argv[k++] = (char *)name;
		argv[k++] = journal_inode ? "1" : "0";
		argv[k++] = hold_meta ? "1" : "0";
		argv[k++] = fd;
		for (int i = 0; i < NM; i++)
			argv[k++] = (char *)fx.specs[i];
		argv[k] = NULL;
		execv("/proc/self/exe", argv);
		_exit(127);
	}
	close(fds[1]);
	for (int secs = 1;; secs++) {
		struct pollfd pf = { .fd = fds[0], .events = POLLIN };

		if (poll(&pf, 1, 1000) != 0)
			break; /* an answer, the child gone, or an error: read says */
		if (secs % 30 == 0)
			say_waiting(name, pid, secs);
	}
	ck_assert_int_eq(read(fds[0], msg, sizeof(msg)), (ssize_t)sizeof(msg));
	close(fds[0]);
	ck_assert_msg(msg[0] >= 0, "host %s could not join", name);
	if (journal_inode)
		ck_assert_msg(msg[1] > 0, "host %s could not commit its inode", name);
	*slot_out = (int)msg[0];
	if (ino_out)
		*ino_out = (uint64_t)msg[1];
	return pid;
}

static pid_t fork_host(const char *name, bool journal_inode, int *slot_out, uint64_t *ino_out)
{
	return fork_host_ex(name, journal_inode, false, slot_out, ino_out);
}

static void kill_host(pid_t pid)
{
	int st;

	kill(pid, SIGKILL);
	ck_assert_int_eq(waitpid(pid, &st, 0), pid);
}

START_TEST(test_claim_and_free)
{
	struct crp_meta *ma, *mb;
	struct crp_cluster *ca, *cb;
	struct crp_slot s;

	format(0);
	host_up("alpha", true, &ma, &ca);
	host_up("beta", true, &mb, &cb);
	ck_assert_int_ne(crp_cluster_slot(ca), crp_cluster_slot(cb));
	s = slot_now(crp_cluster_slot(ca));
	ck_assert_uint_eq(s.state, CRP_SLOT_ACTIVE);
	ck_assert_str_eq(s.host, "alpha");
	ck_assert_uint_eq(s.pr_key, crp_array_pr_key(ma->a));
	/* The heartbeat thread moves the counter (bounded wait, no timing claim). */
	for (int k = 0; k < 100 && slot_now(crp_cluster_slot(ca)).heartbeat == s.heartbeat; k++)
		crp_sleep_ns(50000000ull);
	ck_assert_uint_gt(slot_now(crp_cluster_slot(ca)).heartbeat, s.heartbeat);
	int sb = crp_cluster_slot(cb);
	ck_assert_int_eq(host_down(mb, cb), 0);
	ck_assert_uint_eq(slot_now(sb).state, CRP_SLOT_FREE);
	ck_assert_uint_eq(slot_now(sb).recoveries, 0);
	ck_assert_int_eq(host_down(ma, ca), 0);
	cleanup();
}
END_TEST

START_TEST(test_live_duplicate_refused)
{
	struct crp_meta *m;
	struct crp_cluster *c;
	char err[512];
	int slot;
	pid_t pid;

	format(0);
	pid = fork_host("alpha", false, &slot, NULL);
	ck_assert_int_eq(open_meta("alpha", &m, err, sizeof(err)), 0);
	ck_assert_int_eq(join(m, false, &c, err, sizeof(err)), -EBUSY);
	ck_assert_msg(strstr(err, "host alpha is already mounted"), "message: %s", err);
	m->ro = true;
	crp_meta_close(m);
	/* The live host still owns its slot. */
	ck_assert_uint_eq(slot_now(slot).state, CRP_SLOT_ACTIVE);
	ck_assert_str_eq(slot_now(slot).host, "alpha");
	kill_host(pid);
	cleanup();
}
END_TEST

/* A killed host's slot is found dead at the next join, recovered (its
 * committed transaction replayed) and the name may be mounted again. */
START_TEST(test_dead_host_recovered_at_join)
{
	struct crp_meta *m;
	struct crp_cluster *c;
	struct crp_inode in;
	struct crp_slot s;
	uint64_t ino;
	int slot;
	pid_t pid;

	format(0);
	pid = fork_host("alpha", true, &slot, &ino);
	kill_host(pid);
	ck_assert_uint_eq(slot_now(slot).state, CRP_SLOT_ACTIVE);
	host_up("alpha", false, &m, &c);
	s = slot_now(slot);
	ck_assert_uint_eq(s.recoveries, 1);
	ck_assert_str_eq(s.recoverer, "alpha");
	ck_assert_int_eq(crp_meta_iread(m, ino, &in), 0);
	ck_assert_uint_eq(in.mode, MARK_MODE);
	ck_assert_int_eq(host_down(m, c), 0);
	cleanup();
}
END_TEST

/*
 * Two survivors with heartbeat threads race to recover a killed host:
 * exactly one does (the sum of their counters and the slot's count are 1),
 * and its committed transaction is replayed.
 */
static void race(int lock_mode)
{
	struct crp_meta *mb, *mc, *mo;
	struct crp_cluster *cb, *cc;
	struct crp_cluster_stats sb, sc;
	struct crp_inode in;
	struct crp_slot s;
	char err[256];
	uint64_t ino;
	int slot;
	pid_t pid;

	format(lock_mode);
	pid = fork_host("victim", true, &slot, &ino);
	host_up("beta", true, &mb, &cb);
	host_up("gamma", true, &mc, &cc);
	kill_host(pid);
	s = wait_slot_state(slot, CRP_SLOT_FREE, 30);
	crp_cluster_get_stats(cb, &sb);
	crp_cluster_get_stats(cc, &sc);
	ck_assert_uint_eq(sb.recoveries + sc.recoveries, 1);
	ck_assert_uint_eq(s.recoveries, 1);
	ck_assert_msg(!strcmp(s.recoverer, sb.recoveries ? "beta" : "gamma"), "recoverer %s",
		      s.recoverer);
	ck_assert_msg(!crp_cluster_fenced(cb, NULL, 0) && !crp_cluster_fenced(cc, NULL, 0),
		      "a survivor was fenced");
	/* Give the loser several dead timeouts to do something it should not. */
	crp_sleep_ns(3ull * DEAD_MS * 1000000ull);
	crp_cluster_get_stats(cb, &sb);
	crp_cluster_get_stats(cc, &sc);
	ck_assert_uint_eq(sb.recoveries + sc.recoveries, 1);
	ck_assert_uint_eq(slot_now(slot).recoveries, 1);
	ck_assert_int_eq(host_down(mb, cb), 0);
	ck_assert_int_eq(host_down(mc, cc), 0);
	/* The victim's journalled inode is in place. */
	ck_assert_int_eq(open_meta("observer", &mo, err, sizeof(err)), 0);
	ck_assert_int_eq(crp_meta_iread(mo, ino, &in), 0);
	ck_assert_uint_eq(in.mode, MARK_MODE);
	crp_meta_close(mo);
	cleanup();
}

START_TEST(test_exactly_once_reserve)
{
	race(0);
}
END_TEST

START_TEST(test_exactly_once_pr)
{
	race(1);
}
END_TEST

/*
 * A hung host (SIGSTOP) is declared dead and recovered; after SIGCONT its
 * next write is refused with -CRP_EFENCED and it knows who fenced it.
 * With @table, the hung host held the metadata lock when it stopped, and
 * what it does after SIGCONT is record a member it could not reach as
 * failed in the member table (as it does when a command it sent before
 * the pause has timed out): refused the same way, the table unchanged.
 */
static void hung(int lock_mode, bool table)
{
	struct crp_meta *mb;
	struct crp_cluster *cb;
	int fds[2], st, slot = -1;
	char line[512] = "";
	pid_t pid;
	ssize_t n;

	format(lock_mode);
	ck_assert_int_eq(pipe(fds), 0);
	int go[2];

	ck_assert_int_eq(pipe(go), 0);
	pid = fork();
	ck_assert_int_ge(pid, 0);
	if (pid == 0) {
		struct crp_meta *m;
		struct crp_cluster *c;
		char err[512], msg[300];
		uint8_t *buf = crp_alloc_buf(4096);
		int r, k;

		close(fds[0]);
		close(go[1]);
		if (open_meta("hung", &m, err, sizeof(err)) || join(m, true, &c, err, sizeof(err)))
			_exit(10);
		k = crp_cluster_slot(c);
		if (write(fds[1], &k, sizeof(k)) != sizeof(k))
			_exit(11);
		if (table) {
			/* Once the other host is up: the lock, then stopped. */
			if (read(go[0], &k, sizeof(k)) != sizeof(k))
				_exit(12);
			k = crp_array_meta_lock(m->a);
			if (write(fds[1], &k, sizeof(k)) != sizeof(k))
				_exit(11);
		}
		/* Parent stops us, lets us be recovered, continues us, then
		 * tells us to write. */
		if (read(go[0], &k, sizeof(k)) != sizeof(k))
			_exit(12);
		if (table) {
			m->unreachable = 1ull << 1;
			r = crp_meta_members_update(m, NULL, NULL);
		} else {
			r = crp_array_write(m->a,
					    (m->geom.nstripes - 2) * crp_geom_stripe_bytes(&m->geom),
					    buf, 4096);
		}
		if (!crp_cluster_fenced(c, msg, sizeof(msg)))
			snprintf(msg, sizeof(msg), "not fenced");
		snprintf(err, sizeof(err), "%d %s", r == -CRP_EFENCED ? 1 : 0, msg);
		if (write(fds[1], err, strlen(err) + 1) < 0)
			_exit(13);
		crp_cluster_leave(c);
		crp_meta_close(m); /* writes nothing: fenced */
		_exit(0);
	}
	close(fds[1]);
	close(go[0]);
	ck_assert_int_eq(read(fds[0], &slot, sizeof(slot)), (ssize_t)sizeof(slot));
	host_up("beta", true, &mb, &cb);
	if (table) {
		int r;

		ck_assert_int_eq(write(go[1], &slot, sizeof(slot)), (ssize_t)sizeof(slot));
		ck_assert_int_eq(read(fds[0], &r, sizeof(r)), (ssize_t)sizeof(r));
		ck_assert_msg(r == 0, "the hung host could not take the metadata lock: %d", r);
	}
	ck_assert_int_eq(kill(pid, SIGSTOP), 0);
	wait_slot_state(slot, CRP_SLOT_FREE, 30);
	ck_assert_int_eq(kill(pid, SIGCONT), 0);
	ck_assert_int_eq(write(go[1], &slot, sizeof(slot)), (ssize_t)sizeof(slot));
	n = read(fds[0], line, sizeof(line) - 1);
	ck_assert_int_gt(n, 0);
	ck_assert_int_eq(waitpid(pid, &st, 0), pid);
	ck_assert_msg(WIFEXITED(st) && WEXITSTATUS(st) == 0, "hung host: status %d", st);
	ck_assert_msg(line[0] == '1', "the hung host's write was not refused: %s", line);
	ck_assert_msg(strstr(line, "host hung was declared dead by beta and fenced"),
		      "message: %s", line);
	if (table) {
		uint64_t events = mb->mt.events;

		ck_assert_int_eq(crp_meta_members_reload(mb), 0);
		ck_assert_uint_eq(mb->mt.events, events);
		ck_assert_uint_ne(mb->mt.table[1].state, CRP_MS_FAILED);
	}
	/* The fenced host left the slot alone: still free, recovered once. */
	ck_assert_uint_eq(slot_now(slot).state, CRP_SLOT_FREE);
	ck_assert_uint_eq(slot_now(slot).recoveries, 1);
	ck_assert_int_eq(crp_cluster_tick(cb), 0);
	ck_assert_int_eq(host_down(mb, cb), 0);
	close(fds[0]);
	close(go[1]);
	cleanup();
}

START_TEST(test_hung_host_fenced_reserve)
{
	hung(0, false);
}
END_TEST

START_TEST(test_hung_host_fenced_pr)
{
	hung(1, false);
}
END_TEST

START_TEST(test_hung_lock_holder_writes_no_table_reserve)
{
	hung(0, true);
}
END_TEST

START_TEST(test_hung_lock_holder_writes_no_table_pr)
{
	hung(1, true);
}
END_TEST

/* pr mode: a host whose registration another host preempted is fenced by
 * the array at its next write, whatever its lease says. */
START_TEST(test_preempted_registration_fenced)
{
	struct crp_meta *ma, *mb;
	struct crp_cluster *ca, *cb;
	uint8_t *buf = crp_alloc_buf(4096);
	char msg[300];

	format(1);
	host_up("alpha", true, &ma, &ca);
	host_up("beta", true, &mb, &cb);
	ck_assert_int_eq(crp_array_break_locks(mb->a, crp_array_pr_key(ma->a), 0), 0);
	ck_assert_int_eq(crp_array_write(ma->a, (ma->geom.nstripes - 2) *
					 crp_geom_stripe_bytes(&ma->geom), buf, 4096),
			 -CRP_EFENCED);
	/* Its heartbeat thread sees it at the next beat (bounded wait). */
	for (int k = 0; k < 100 && !crp_cluster_fenced(ca, NULL, 0); k++)
		crp_sleep_ns(50000000ull);
	ck_assert(crp_cluster_fenced(ca, msg, sizeof(msg)));
	ck_assert_msg(strstr(msg, "host alpha") && strstr(msg, "preempted"), "message: %s", msg);
	/* Fenced for good: the metadata lock too. */
	ck_assert_int_eq(crp_array_meta_lock(ma->a), -CRP_EFENCED);
	crp_cluster_leave(ca);
	crp_meta_close(ma);
	ck_assert_int_eq(host_down(mb, cb), 0);
	free(buf);
	cleanup();
}
END_TEST

/*
 * A recovery that takes longer than the dead timeout (its orphan step
 * sleeps three of them) must not stop the recoverer's heartbeat: the other
 * survivor never declares the recoverer dead, nobody is fenced, and the
 * killed host is recovered once.
 */
static int slow_free_orphans(void *ctx, int slot)
{
	(void)ctx;
	(void)slot;
	crp_sleep_ns(3ull * DEAD_MS * 1000000ull);
	return 0;
}

static void slow_host_up(const char *name, struct crp_meta **m, struct crp_cluster **c)
{
	struct crp_cluster_opts o = { .heartbeat_ms = HB_MS, .dead_timeout_ms = DEAD_MS,
				      .free_orphans = slow_free_orphans };
	char err[512];

	ck_assert_msg(open_meta(name, m, err, sizeof(err)) == 0, "open %s: %s", name, err);
	ck_assert_msg(crp_cluster_join(*m, &o, c, err, sizeof(err)) == 0, "join %s: %s", name,
		      err);
}

static void slow_recovery(int lock_mode)
{
	struct crp_meta *mb, *mc;
	struct crp_cluster *cb, *cc;
	struct crp_cluster_stats sb, sc;
	int slot;
	pid_t pid;

	format(lock_mode);
	pid = fork_host("victim", false, &slot, NULL);
	slow_host_up("beta", &mb, &cb);
	slow_host_up("gamma", &mc, &cc);
	kill_host(pid);
	wait_slot_state(slot, CRP_SLOT_RECOVERING, 30);
	wait_slot_state(slot, CRP_SLOT_FREE, 30);
	/* Time for a wrong verdict on the recoverer to show. */
	crp_sleep_ns(2ull * DEAD_MS * 1000000ull);
	crp_cluster_get_stats(cb, &sb);
	crp_cluster_get_stats(cc, &sc);
	ck_assert_msg(!crp_cluster_fenced(cb, NULL, 0) && !crp_cluster_fenced(cc, NULL, 0),
		      "the recoverer was declared dead and fenced during its recovery");
	ck_assert_uint_eq(sb.recoveries + sc.recoveries, 1);
	ck_assert_uint_eq(slot_now(slot).recoveries, 1);
	ck_assert_uint_eq(slot_now(crp_cluster_slot(cb)).state, CRP_SLOT_ACTIVE);
	ck_assert_uint_eq(slot_now(crp_cluster_slot(cc)).state, CRP_SLOT_ACTIVE);
	ck_assert_uint_eq(slot_now(crp_cluster_slot(cb)).recoveries, 0);
	ck_assert_uint_eq(slot_now(crp_cluster_slot(cc)).recoveries, 0);
	ck_assert_int_eq(host_down(mb, cb), 0);
	ck_assert_int_eq(host_down(mc, cc), 0);
	cleanup();
}

START_TEST(test_slow_recovery_keeps_beating_reserve)
{
	slow_recovery(0);
}
END_TEST

START_TEST(test_slow_recovery_keeps_beating_pr)
{
	slow_recovery(1);
}
END_TEST

/*
 * A host closes while another holds the metadata lock for three dead
 * timeouts: its close waits for the lock to free its slot, and it must
 * go on beating meanwhile.  A host that stopped beating when its close
 * began was declared dead by the lock holder, recovered (in pr mode
 * fenced too), and its close failed although it had lost nothing.
 */
struct closer {
	struct crp_meta *m;
	struct crp_cluster *c;
	atomic_int done;
	int r;
};

static void *closer_main(void *arg)
{
	struct closer *cl = arg;

	cl->r = host_down(cl->m, cl->c);
	atomic_store(&cl->done, 1);
	return NULL;
}

static void close_under_lock(int lock_mode)
{
	struct crp_meta *ma, *mb;
	struct crp_cluster *ca, *cb;
	struct crp_cluster_stats sb;
	struct closer cl = { 0 };
	struct crp_slot s;
	pthread_t th;
	int slot;

	format(lock_mode);
	host_up("alpha", true, &ma, &ca);
	host_up("beta", true, &mb, &cb);
	slot = crp_cluster_slot(ca);
	ck_assert_int_eq(crp_array_meta_lock(mb->a), 0);
	cl.m = ma;
	cl.c = ca;
	ck_assert_int_eq(pthread_create(&th, NULL, closer_main, &cl), 0);
	crp_sleep_ns(3ull * DEAD_MS * 1000000ull);
	ck_assert_msg(!atomic_load(&cl.done), "the close did not wait for the metadata lock");
	ck_assert_int_eq(crp_array_meta_unlock(mb->a), 0);
	pthread_join(th, NULL);
	ck_assert_msg(cl.r == 0, "the close failed: %s", crp_strerror(cl.r));
	/* Time for a wrong verdict on the closed host to show. */
	crp_sleep_ns(2ull * DEAD_MS * 1000000ull);
	crp_cluster_get_stats(cb, &sb);
	ck_assert_msg(sb.recoveries == 0, "the closing host was declared dead and recovered");
	ck_assert(!crp_cluster_fenced(cb, NULL, 0));
	s = slot_now(slot);
	ck_assert_uint_eq(s.state, CRP_SLOT_FREE);
	ck_assert_uint_eq(s.recoveries, 0);
	ck_assert_int_eq(host_down(mb, cb), 0);
	cleanup();
}

START_TEST(test_close_under_lock_reserve)
{
	close_under_lock(0);
}
END_TEST

START_TEST(test_close_under_lock_pr)
{
	close_under_lock(1);
}
END_TEST

/*
 * The dead host was killed holding the metadata lock, while a thread of
 * each survivor waits for that lock (an fs call).  In pr mode the dead
 * host's reservation stays until a PREEMPT: the recoverer must preempt it
 * before it waits for the lock itself, or it waits behind its own blocked
 * caller for ever.  Recovery finishes once, and the waiting calls get the
 * lock.
 */
struct waiter {
	struct crp_meta *m;
	atomic_int done; /* 0 waiting, 1 got and released the lock, 2 failed */
};

static void *waiter_main(void *arg)
{
	struct waiter *w = arg;
	int r = crp_array_meta_lock(w->m->a);

	if (r == 0)
		r = crp_array_meta_unlock(w->m->a);
	atomic_store(&w->done, r == 0 ? 1 : 2);
	return NULL;
}

static void dead_lock_holder(int lock_mode)
{
	struct crp_meta *mb, *mc;
	struct crp_cluster *cb, *cc;
	struct crp_cluster_stats sb, sc;
	struct waiter wb = { 0 }, wc = { 0 };
	pthread_t tb, tc;
	uint64_t ino;
	int slot, k;
	pid_t pid;

	format(lock_mode);
	host_up("beta", true, &mb, &cb);
	host_up("gamma", true, &mc, &cc);
	pid = fork_host_ex("victim", true, true, &slot, &ino);
	wb.m = mb;
	wc.m = mc;
	ck_assert_int_eq(pthread_create(&tb, NULL, waiter_main, &wb), 0);
	ck_assert_int_eq(pthread_create(&tc, NULL, waiter_main, &wc), 0);
	kill_host(pid);
	wait_slot_state(slot, CRP_SLOT_FREE, 30);
	for (k = 0; k < 600 && !(atomic_load(&wb.done) && atomic_load(&wc.done)); k++)
		crp_sleep_ns(50000000ull);
	ck_assert_msg(atomic_load(&wb.done) == 1 && atomic_load(&wc.done) == 1,
		      "a survivor's metadata lock call %s",
		      atomic_load(&wb.done) && atomic_load(&wc.done) ? "failed" : "never returned");
	ck_assert_int_eq(pthread_join(tb, NULL), 0);
	ck_assert_int_eq(pthread_join(tc, NULL), 0);
	crp_cluster_get_stats(cb, &sb);
	crp_cluster_get_stats(cc, &sc);
	ck_assert_uint_eq(sb.recoveries + sc.recoveries, 1);
	ck_assert_uint_eq(slot_now(slot).recoveries, 1);
	ck_assert_msg(!crp_cluster_fenced(cb, NULL, 0) && !crp_cluster_fenced(cc, NULL, 0),
		      "a survivor was fenced");
	ck_assert_int_eq(host_down(mb, cb), 0);
	ck_assert_int_eq(host_down(mc, cc), 0);
	cleanup();
}

START_TEST(test_dead_lock_holder_reserve)
{
	dead_lock_holder(0);
}
END_TEST

START_TEST(test_dead_lock_holder_pr)
{
	dead_lock_holder(1);
}
END_TEST

/*
 * Load: another nexus keeps every member reserved (RESERVE(6), reads and
 * writes of others refused) most of the time, with short gaps, as busy
 * hosts do.  Heartbeat writes and the watchers' reads that conflict are
 * retried within the interval, so two idle hosts never judge each other
 * dead: nobody is recovered, nobody fenced, both slots stay alive.
 */
struct loader {
	struct crp_meta *m;
	volatile bool stop;
	uint64_t holds;
};

static void *loader_main(void *arg)
{
	struct loader *l = arg;

	while (!l->stop) {
		struct crp_cmd cmd;

		for (int i = 0; i < NM; i++) {
			crp_cmd_init(&cmd);
			crp_cdb_reserve6(&cmd);
			/* Taken or not (a heartbeat may hold a member for its
			 * own write), the next round tries again. */
			(void)crp_member_exec(crp_array_member(l->m->a, i), &cmd);
		}
		l->holds++;
		crp_sleep_ns(45000000ull);
		for (int i = 0; i < NM; i++) {
			crp_cmd_init(&cmd);
			crp_cdb_release6(&cmd);
			(void)crp_member_exec(crp_array_member(l->m->a, i), &cmd);
		}
		crp_sleep_ns(5000000ull);
	}
	return NULL;
}

START_TEST(test_beats_pass_reservations)
{
	struct crp_meta_opts o = { .host = "loader", .ro = true };
	struct crp_meta *ma, *mb;
	struct crp_cluster *ca, *cb;
	struct crp_cluster_stats sa, sb, sa0, sb0;
	struct loader l = { 0 };
	pthread_t t;
	char err[256];
	int slot_a, slot_b;

	format(0);
	host_up("alpha", true, &ma, &ca);
	host_up("beta", true, &mb, &cb);
	slot_a = crp_cluster_slot(ca);
	slot_b = crp_cluster_slot(cb);
	ck_assert_msg(crp_meta_open(fx.specs, NM, &o, &l.m, err, sizeof(err)) == 0, "%s", err);
	crp_cluster_get_stats(ca, &sa0);
	crp_cluster_get_stats(cb, &sb0);
	ck_assert_int_eq(pthread_create(&t, NULL, loader_main, &l), 0);
	/* Ten dead timeouts of load. */
	crp_sleep_ns(10ull * DEAD_MS * 1000000ull);
	l.stop = true;
	ck_assert_int_eq(pthread_join(t, NULL), 0);
	l.m->ro = true;
	crp_meta_close(l.m);
	ck_assert_uint_gt(l.holds, 0);
	crp_cluster_get_stats(ca, &sa);
	crp_cluster_get_stats(cb, &sb);
	ck_assert_msg(sa.recoveries + sb.recoveries == 0, "a live host was declared dead under load");
	ck_assert_msg(!crp_cluster_fenced(ca, NULL, 0) && !crp_cluster_fenced(cb, NULL, 0),
		      "a live host was fenced under load");
	/* Both kept beating through the load. */
	ck_assert_uint_gt(sa.beats, sa0.beats);
	ck_assert_uint_gt(sb.beats, sb0.beats);
	ck_assert_uint_eq(slot_now(slot_a).state, CRP_SLOT_ACTIVE);
	ck_assert_str_eq(slot_now(slot_a).host, "alpha");
	ck_assert_uint_eq(slot_now(slot_b).state, CRP_SLOT_ACTIVE);
	ck_assert_str_eq(slot_now(slot_b).host, "beta");
	ck_assert_int_eq(host_down(ma, ca), 0);
	ck_assert_int_eq(host_down(mb, cb), 0);
	cleanup();
}
END_TEST

/*
 * A lease that ran out under load is renewed while the metadata lock is
 * queued for.  Another nexus holds the metadata lock's members (0 and 1)
 * and one of alpha's threads waits for that lock, holding its local gate;
 * alpha's beats could not land for longer than its lease.  Nobody can
 * have declared alpha dead before a dead timeout, so its next beat renews
 * the lease on the member left free, instead of queueing behind that
 * thread until the others declare it dead.
 */
#define LAPSE_HB_MS 100
#define LAPSE_DEAD_MS 4000

START_TEST(test_lapsed_lease_renewed_while_lock_queued)
{
	struct crp_meta_opts o = { .host = "holder", .ro = true };
	struct crp_cluster_opts co = { .heartbeat_ms = LAPSE_HB_MS,
				       .dead_timeout_ms = LAPSE_DEAD_MS, .no_thread = true };
	const uint64_t lease = LAPSE_DEAD_MS / 2 * 1000000ull;
	const uint64_t window = LAPSE_DEAD_MS / 4 * 3 * 1000000ull;
	struct crp_meta *ma, *mh;
	struct crp_cluster *ca;
	struct crp_cluster_stats s0, s1;
	struct crp_host_counters *ctr;
	struct waiter w = { 0 };
	struct crp_cmd cmd;
	pthread_t t;
	char err[256];
	bool judged = false;
	int r = 0;

	format(0);
	ck_assert_msg(open_meta("alpha", &ma, err, sizeof(err)) == 0, "open alpha: %s", err);
	ck_assert_msg(crp_cluster_join(ma, &co, &ca, err, sizeof(err)) == 0, "join alpha: %s", err);
	ck_assert_msg(crp_meta_open(fx.specs, NM, &o, &mh, err, sizeof(err)) == 0, "%s", err);
	ctr = crp_array_counters(ma->a);
	/* The other nexus takes the metadata lock's members; alpha's waiter
	 * queues for the lock (it met a conflict: it holds the gate). */
	for (int i = 0; i < 2; i++) {
		crp_cmd_init(&cmd);
		crp_cdb_reserve6(&cmd);
		ck_assert_int_eq(crp_member_exec(crp_array_member(mh->a, i), &cmd), 0);
	}
	w.m = ma;
	ck_assert_int_eq(pthread_create(&t, NULL, waiter_main, &w), 0);
	for (int k = 0; k < 600 && atomic_load(&ctr->lock_conflicts) == 0; k++)
		crp_sleep_ns(10000000ull);
	ck_assert_msg(atomic_load(&ctr->lock_conflicts) > 0, "the waiter never met the conflict");
	/* Beat, let the lease run out, beat again inside the window.  A
	 * machine too slow to tick inside it tries again (bounded). */
	for (int round = 0; round < 5 && !judged; round++) {
		uint64_t before = crp_now_ns(), after, t1;

		/* The lease runs from a time between before and after. */
		ck_assert_int_eq(crp_cluster_tick(ca), 0);
		after = crp_now_ns();
		crp_cluster_get_stats(ca, &s0);
		crp_sleep_ns(lease + 200000000ull);
		t1 = crp_now_ns();
		r = crp_cluster_tick(ca);
		crp_cluster_get_stats(ca, &s1);
		judged = t1 - after > lease && t1 - before < window - 300000000ull;
	}
	ck_assert_msg(judged, "the machine never ticked inside the renewal window");
	ck_assert_int_eq(r, 0);
	ck_assert_msg(s1.beats > s0.beats,
		      "alpha's lapsed lease was not renewed while its own thread queued for the lock");
	ck_assert_msg(!crp_cluster_fenced(ca, NULL, 0), "alpha was fenced");
	ck_assert_int_eq(atomic_load(&w.done), 0); /* the lock was never free */
	for (int i = 0; i < 2; i++) {
		crp_cmd_init(&cmd);
		crp_cdb_release6(&cmd);
		ck_assert_int_eq(crp_member_exec(crp_array_member(mh->a, i), &cmd), 0);
	}
	ck_assert_int_eq(pthread_join(t, NULL), 0);
	ck_assert_int_eq(atomic_load(&w.done), 1);
	mh->ro = true;
	crp_meta_close(mh);
	ck_assert_int_eq(host_down(ma, ca), 0);
	cleanup();
}
END_TEST

int main(int argc, char **argv)
{
	const struct {
		const char *name;
		const TTest *test;
	} cases[] = {
		{ "claim", test_claim_and_free },
		{ "duplicate", test_live_duplicate_refused },
		{ "join_recovers", test_dead_host_recovered_at_join },
		{ "once_reserve", test_exactly_once_reserve },
		{ "once_pr", test_exactly_once_pr },
		{ "hung_reserve", test_hung_host_fenced_reserve },
		{ "hung_pr", test_hung_host_fenced_pr },
		{ "hung_table_reserve", test_hung_lock_holder_writes_no_table_reserve },
		{ "hung_table_pr", test_hung_lock_holder_writes_no_table_pr },
		{ "preempted", test_preempted_registration_fenced },
		{ "beats_under_load", test_beats_pass_reservations },
		{ "slow_recovery_reserve", test_slow_recovery_keeps_beating_reserve },
		{ "slow_recovery_pr", test_slow_recovery_keeps_beating_pr },
		{ "close_under_lock_reserve", test_close_under_lock_reserve },
		{ "close_under_lock_pr", test_close_under_lock_pr },
		{ "dead_lock_holder_reserve", test_dead_lock_holder_reserve },
		{ "dead_lock_holder_pr", test_dead_lock_holder_pr },
		{ "lapsed_lease_renewed", test_lapsed_lease_renewed_while_lock_queued },
	};
	Suite *s = suite_create("cluster");
	SRunner *sr;
	int failed;

	/* check_cluster --host NAME JOURNAL HOLD FD SPEC...: a forked host */
	if (argc == 6 + NM && !strcmp(argv[1], "--host")) {
		for (int i = 0; i < NM; i++)
			fx.specs[i] = argv[6 + i];
		host_child(argv[2], argv[3][0] == '1', argv[4][0] == '1', atoi(argv[5]));
	}

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		TCase *tc = tcase_create(cases[i].name);

		tcase_set_timeout(tc, 120);
		tcase_add_test(tc, cases[i].test);
		suite_add_tcase(s, tc);
	}
	sr = srunner_create(s);
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
