/*
 * mount.crpfs: the crpfs daemon.
 *
 * Start-up order, chosen so that every error reaches the terminal and the
 * exit status of mount(8):
 *   1. parse the command line (nothing touched yet);
 *   2. unless foreground, fork: the parent waits on a pipe for the child's
 *      verdict and exits with it.  The fork comes before anything else
 *      because crp_fs_mount starts threads (member I/O, heartbeats), and
 *      threads do not survive a fork: libfuse's fuse_daemonize, which forks
 *      late, cannot be used;
 *   3. crp_fs_mount: members, labels, host slot, journal replay;
 *   4. fuse_session_new + fuse_session_mount;
 *   5. tell the parent "mounted", detach standard I/O, log to syslog;
 *   6. the multithreaded session loop until unmount or a signal;
 *   7. crp_fs_unmount: flush, free the host slot, close the members.
 *
 * Exit codes follow mount(8): 1 bad invocation, 32 mount failure, 0 ok;
 * 2: the host was fenced (declared dead by another host) and stopped.
 */
#include <errno.h>
#include <pthread.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <syslog.h>
#include <unistd.h>

#include "crpfs/err.h"
#include "crpfs/log.h"
#include "crpfs/util.h"
#include "fuse_i.h"

#define EXIT_USAGE 1
#define EXIT_MOUNT_FAILED 32
#define CRP_FUSE_MAX_THREADS 16

static void usage(FILE *f)
{
	fprintf(f,
		"usage: mount.crpfs MEMBER[,MEMBER...] MOUNTPOINT [-o OPTIONS] [-f] [-d] [-n] [-s] [-v]\n"
		"\n"
		"  MEMBER       file:PATH, iscsi://HOST[:PORT]/IQN/LUN, /dev/sgN or /dev/sdX;\n"
		"               missing for one that is gone (a degraded mount)\n"
		"  -o OPTIONS   comma-separated: host=NAME, ro, rw, allow_other (root's\n"
		"               default), owner_only,\n"
		"               default_permissions (always on), attr_timeout=SECONDS,\n"
		"               timeout=MS, heartbeat=MS, dead_timeout=MS, commit=MS,\n"
		"               peer_commit=MS,\n"
		"               strict (no kernel data cache), foreground, debug\n"
		"  -f           stay in the foreground, log to standard error\n"
		"  -d           debug: foreground, and log every FUSE request\n"
		"  -n, -v       accepted from mount(8); -s: unknown options only warn\n"
		"\n"
		"See mount.crpfs(8).\n");
}

/* fsname for libfuse's option parser: ',' and '\' are escaped. */
static char *escape_opt(const char *s)
{
	size_t len = strlen(s);
	char *out = malloc(2 * len + 1);
	char *d = out;

	if (!out)
		return NULL;
	for (; *s; s++) {
		if (*s == ',' || *s == '\\')
			*d++ = '\\';
		*d++ = *s;
	}
	*d = '\0';
	return out;
}

/*
 * Fork for the background.  The parent never returns: it waits for one
 * status byte from the child (0 = mounted) and exits with it.  The child
 * returns the write end of the pipe, to be given to report_started.
 */
static int daemon_fork(void)
{
	int fds[2];
	pid_t pid;
	unsigned char code;
	ssize_t n;

	if (pipe2(fds, O_CLOEXEC) < 0) {
		fprintf(stderr, "mount.crpfs: pipe: %s\n", strerror(errno));
		exit(EXIT_MOUNT_FAILED);
	}
	pid = fork();
	if (pid < 0) {
		fprintf(stderr, "mount.crpfs: fork: %s\n", strerror(errno));
		exit(EXIT_MOUNT_FAILED);
	}
	if (pid == 0) {
		close(fds[0]);
		setsid();
		return fds[1];
	}
	close(fds[1]);
	do {
		n = read(fds[0], &code, 1);
	} while (n < 0 && errno == EINTR);
	if (n == 1)
		_exit(code);
	/* The child died before it could say anything. */
	int status = 0;

	waitpid(pid, &status, 0);
	if (WIFSIGNALED(status))
		fprintf(stderr, "mount.crpfs: the daemon was killed by signal %d while mounting\n",
			WTERMSIG(status));
	else
		fprintf(stderr, "mount.crpfs: the daemon exited while mounting\n");
	_exit(EXIT_MOUNT_FAILED);
}

static void report_status(int *fd, unsigned char code)
{
	if (*fd < 0)
		return;
	if (write(*fd, &code, 1) != 1)
		crp_warn("mount.crpfs: cannot report to the starting process: %s",
			 strerror(errno));
	close(*fd);
	*fd = -1;
}

/* Mounted: leave the terminal, log to syslog, release the parent. */
static void detach(int *fd)
{
	int null = open("/dev/null", O_RDWR);

	if (chdir("/") < 0)
		crp_warn("mount.crpfs: chdir /: %s", strerror(errno));
	crp_log_use_syslog(1);
	if (null >= 0) {
		dup2(null, STDIN_FILENO);
		dup2(null, STDOUT_FILENO);
		dup2(null, STDERR_FILENO);
		if (null > STDERR_FILENO)
			close(null);
	}
	report_status(fd, 0);
}

static struct fuse_session *session_create(const struct crp_mount_opts *o, struct crp_fuse *cf)
{
	struct fuse_args args = FUSE_ARGS_INIT(0, NULL);
	struct fuse_session *se = NULL;
	char *fsname = escape_opt(o->members);
	char *opts = NULL;

	if (!fsname)
		goto out;
	if (asprintf(&opts, "fsname=%s,subtype=crpfs,default_permissions%s%s", fsname,
		     o->allow_other ? ",allow_other" : "", o->ro ? ",ro" : "") < 0) {
		opts = NULL;
		goto out;
	}
	if (fuse_opt_add_arg(&args, "mount.crpfs") < 0 || fuse_opt_add_arg(&args, "-o") < 0 ||
	    fuse_opt_add_arg(&args, opts) < 0 || (o->debug && fuse_opt_add_arg(&args, "-d") < 0))
		goto out;
	se = fuse_session_new(&args, &crp_fuse_ops, sizeof(crp_fuse_ops), cf);
out:
	fuse_opt_free_args(&args);
	free(opts);
	free(fsname);
	return se;
}

/*
 * Fencing.  Another host declared this one dead (it was hung) and
 * recovered it: the core refuses every call from now on (-ESHUTDOWN), and
 * the daemon stops as for a SIGTERM: the session loop ends, the mount is
 * removed, and the exit status says it failed.  The core's callback must
 * not block (it may run under the core's lock), so it only writes a byte
 * to a pipe; the stopper thread does the rest once the session runs.
 */
#define EXIT_FENCED 2

static void on_fenced(void *ctx, const char *msg)
{
	struct crp_fuse *cf = ctx;
	char b = 1;

	(void)msg; /* the cluster layer logged it */
	atomic_store(&cf->fenced, true);
	if (write(cf->fence_pipe[1], &b, 1) < 0) {
		/* The pipe holds a byte already: the stopper is awake. */
	}
}

struct stopper_arg {
	struct crp_fuse *cf;
	pthread_t main_thread;
	const char *mountpoint;
};

static struct stopper_arg stopper_arg;

static void *stopper_main(void *arg)
{
	struct stopper_arg *sa = arg;
	char b;
	ssize_t n;

	do {
		n = read(sa->cf->fence_pipe[0], &b, 1);
	} while (n < 0 && errno == EINTR);
	if (n != 1 || !atomic_load(&sa->cf->fenced) || atomic_load(&sa->cf->stopping))
		return NULL; /* the session ended by itself */
	crp_err("mount.crpfs: this host was fenced; stopping and unmounting %s", sa->mountpoint);
	fuse_session_exit(sa->cf->se);
	/* Wake the session loop, which waits in the main thread; it sees the
	 * session exited and ends like for a SIGTERM. */
	pthread_kill(sa->main_thread, SIGTERM);
	return NULL;
}

static int stopper_start(struct crp_fuse *cf, const char *mountpoint)
{
	int r;

	stopper_arg.cf = cf;
	stopper_arg.main_thread = pthread_self();
	stopper_arg.mountpoint = mountpoint;
	r = -pthread_create(&cf->stopper, NULL, stopper_main, &stopper_arg);
	if (r == 0)
		cf->stopper_running = true;
	return r;
}

/* Before the signal handlers are removed: the stopper sends a SIGTERM. */
static void stopper_stop(struct crp_fuse *cf)
{
	char b = 0;

	if (!cf->stopper_running)
		return;
	atomic_store(&cf->stopping, true);
	if (write(cf->fence_pipe[1], &b, 1) < 0) {
		/* Full: the stopper has a byte to read already. */
	}
	pthread_join(cf->stopper, NULL);
	cf->stopper_running = false;
}

/*
 * The kernel reads ahead of a FUSE file 128 KiB at a time, so a
 * sequential read comes as 128 KiB requests, each of which pays a
 * request's round trip and the coherence check of the disks.  The mount's
 * readahead is a setting of its backing device
 * (/sys/class/bdi/MAJ:MIN/read_ahead_kb; the device number of the mount
 * is found in /proc/self/mountinfo).  The kernel lowers it to what the
 * daemon answered at INIT, which was asked with the old value, so it is
 * written once INIT is answered: from a thread of its own, after a stat of
 * the mount, which waits for that.  Only root may write it: otherwise,
 * and on any other failure, the kernel's default stays and a note says so.
 */
struct readahead_arg {
	char *mountpoint;
	uint32_t kb;
};

static void set_readahead(const char *mountpoint, uint32_t kb)
{
	char path[128], *dev = NULL;
	int fd, r = crp_mountinfo_find(mountpoint, "fuse.crpfs", &dev, NULL);

	if (r < 0) {
		crp_info("mount.crpfs: readahead left as the kernel's: %s in /proc/self/mountinfo: %s",
			 mountpoint, crp_strerror(r));
		return;
	}
	snprintf(path, sizeof(path), "/sys/class/bdi/%s/read_ahead_kb", dev);
	free(dev);
	fd = open(path, O_WRONLY | O_CLOEXEC);
	if (fd >= 0) {
		char v[16];
		int len = snprintf(v, sizeof(v), "%u\n", kb);
		bool ok = write(fd, v, (size_t)len) == len;
		int e = errno;

		close(fd);
		if (ok)
			return;
		errno = e;
	}
	crp_info("mount.crpfs: readahead left as the kernel's: cannot write %s: %s", path,
		 strerror(errno));
}

static void *readahead_main(void *p)
{
	struct readahead_arg *ra = p;
	struct stat st;

	if (stat(ra->mountpoint, &st) == 0)
		set_readahead(ra->mountpoint, ra->kb);
	free(ra->mountpoint);
	free(ra);
	return NULL;
}

/* Detached: the stat it makes may be answered only as the session ends. */
static void readahead_start(const char *mountpoint, uint32_t kb)
{
	struct readahead_arg *ra = calloc(1, sizeof(*ra));
	pthread_attr_t at;
	pthread_t t;

	if (ra)
		ra->mountpoint = strdup(mountpoint);
	if (!ra || !ra->mountpoint) {
		free(ra);
		crp_warn("mount.crpfs: readahead left as the kernel's: out of memory");
		return;
	}
	ra->kb = kb;
	pthread_attr_init(&at);
	pthread_attr_setdetachstate(&at, PTHREAD_CREATE_DETACHED);
	if (pthread_create(&t, &at, readahead_main, ra) != 0) {
		crp_warn("mount.crpfs: readahead left as the kernel's: no thread to set it");
		free(ra->mountpoint);
		free(ra);
	}
	pthread_attr_destroy(&at);
}

static int session_run(struct fuse_session *se)
{
	struct fuse_loop_config *cfg = fuse_loop_cfg_create();
	int r;

	if (!cfg)
		return -ENOMEM;
	fuse_loop_cfg_set_max_threads(cfg, CRP_FUSE_MAX_THREADS);
	fuse_loop_cfg_set_clone_fd(cfg, 0);
	r = fuse_session_loop_mt(se, cfg);
	fuse_loop_cfg_destroy(cfg);
	return r;
}

int main(int argc, char **argv)
{
	struct crp_mount_opts o;
	struct crp_fuse cf = { 0 };
	struct crp_fs_opts fo = { 0 };
	struct fuse_session *se = NULL;
	char err[1024] = "";
	int notify = -1;
	int code = 0;
	int r;

	cf.fence_pipe[0] = cf.fence_pipe[1] = -1;
	r = crp_mount_opts_parse(argc, argv, &o, err, sizeof(err));
	if (r < 0) {
		fprintf(stderr, "mount.crpfs: %s\n", err[0] ? err : crp_strerror(r));
		usage(stderr);
		code = EXIT_USAGE;
		goto out;
	}
	if (o.help) {
		usage(stdout);
		goto out;
	}
	if (o.version) {
		printf("mount.crpfs (crpfs), libfuse %s\n", fuse_pkgversion());
		goto out;
	}
	if (o.debug)
		crp_log_set_level(CRP_LOG_DEBUG);
	else if (o.verbose && crp_log_get_level() < CRP_LOG_INFO)
		crp_log_set_level(CRP_LOG_INFO);
	openlog("mount.crpfs", LOG_PID, LOG_DAEMON);

	if (!o.foreground)
		notify = daemon_fork();

	fo.host = o.host;
	fo.ro = o.ro;
	fo.timeout_ms = o.timeout_ms;
	fo.attr_timeout_ms = (uint32_t)(o.attr_timeout * 1000.0);
	fo.heartbeat_ms = o.heartbeat_ms;
	fo.dead_timeout_ms = o.dead_timeout_ms;
	fo.commit_ms = o.commit_ms;
	fo.peer_commit_ms = o.peer_commit_ms;
	fo.fenced = on_fenced;
	fo.fenced_ctx = &cf;
	if (pipe2(cf.fence_pipe, O_CLOEXEC | O_NONBLOCK) < 0 ||
	    fcntl(cf.fence_pipe[0], F_SETFL, 0) < 0) {
		fprintf(stderr, "mount.crpfs: pipe: %s\n", strerror(errno));
		code = EXIT_MOUNT_FAILED;
		goto out;
	}
	r = crp_fs_mount((const char *const *)o.specs, o.nspecs, &fo, &cf.fs, err, sizeof(err));
	if (r < 0) {
		fprintf(stderr, "mount.crpfs: cannot mount %s: %s\n", o.members,
			err[0] ? err : crp_strerror(r));
		code = EXIT_MOUNT_FAILED;
		goto out;
	}
	cf.attr_timeout = o.attr_timeout;
	cf.ro = o.ro;
	cf.strict = o.strict;

	se = session_create(&o, &cf);
	if (!se) {
		fprintf(stderr, "mount.crpfs: cannot start the FUSE session for %s\n", o.mountpoint);
		code = EXIT_MOUNT_FAILED;
		goto out;
	}
	if (fuse_set_signal_handlers(se) < 0) {
		fprintf(stderr, "mount.crpfs: cannot install signal handlers\n");
		code = EXIT_MOUNT_FAILED;
		goto out;
	}
	if (fuse_session_mount(se, o.mountpoint) != 0) {
		fprintf(stderr, "mount.crpfs: cannot mount on %s (see the message above)\n",
			o.mountpoint);
		fuse_remove_signal_handlers(se);
		code = EXIT_MOUNT_FAILED;
		goto out;
	}
	crp_info("mount.crpfs: %s mounted on %s as host %s%s", o.members, o.mountpoint, o.host,
		 o.ro ? " (read-only)" : "");
	if (!o.foreground)
		detach(&notify);
	/* Other hosts' changes reach the kernel through a thread of its own. */
	if (crp_fuse_inval_start(&cf, se) < 0)
		crp_warn("mount.crpfs: no invalidation thread: other hosts' changes show "
			 "only after the attribute timeout");

	cf.se = se;
	if (stopper_start(&cf, o.mountpoint) < 0)
		crp_warn("mount.crpfs: no fencing stopper thread: a fenced host only fails its calls");

	if (o.readahead_kb)
		readahead_start(o.mountpoint, o.readahead_kb);
	r = session_run(se);
	stopper_stop(&cf);
	if (atomic_load(&cf.fenced))
		r = 0; /* our own stop, reported below */
	crp_fuse_inval_stop(&cf);
	if (r < 0)
		crp_err("mount.crpfs: the session loop failed: %s", strerror(-r));
	fuse_session_unmount(se);
	fuse_remove_signal_handlers(se);
	if (r < 0)
		code = 1;

out:
	if (se)
		fuse_session_destroy(se);
	if (cf.fs) {
		r = crp_fs_unmount(cf.fs);
		if (atomic_load(&cf.fenced)) {
			crp_err("mount.crpfs: %s: host %s was fenced and stopped; nothing was written "
				"after it was declared dead; mount again to rejoin", o.members, o.host);
			code = code ? code : EXIT_FENCED;
		} else if (r < 0) {
			crp_err("mount.crpfs: unmounting %s: %s", o.members, crp_strerror(r));
			if (code == 0)
				code = 1;
		} else {
			crp_info("mount.crpfs: %s unmounted cleanly", o.members);
		}
	}
	report_status(&notify, (unsigned char)(code ? code : EXIT_MOUNT_FAILED));
	for (int i = 0; i < 2; i++)
		if (cf.fence_pipe[i] >= 0)
			close(cf.fence_pipe[i]);
	crp_mount_opts_free(&o);
	return code;
}
