/*
 * The iSCSI transport: iscsi://HOST[:PORT]/IQN/LUN[?chap=FILE] through
 * libiscsi.
 *
 * One iscsi_context per member.  crp_member_open creates it, connects and
 * logs in from the caller's thread (bounded by the member's timeout), then
 * hands it to the member's I/O thread, which owns it from then on: libiscsi
 * is not thread-safe, so no other thread touches the context again.  Other
 * threads talk to the I/O thread through the member's queue, an eventfd
 * (kicks) and the LUN reset request below.
 *
 * The I/O thread polls the session's socket and the eventfd, wakes at least
 * every 100 ms to check deadlines and to let libiscsi answer NOP-Ins, and
 * keeps the commands it has sent on an in-flight list:
 *
 *   - a command past its deadline is cancelled locally and completes with
 *     -ETIMEDOUT; the member is failed and the session dropped, since the
 *     state of the nexus is then unknown;
 *   - a lost session (the target closed it, the socket failed) completes
 *     everything in flight with -CRP_ELOCKLOST and records
 *     CRP_EV_NEXUS_LOST first.  libiscsi's auto-reconnect stays off: it
 *     would be a new nexus without our reservations, behind our back.
 *     Instead the I/O thread logs in again itself (reconnect() below) for
 *     up to opts.reconnect_ms, on a new context, with a growing, jittered
 *     pause between attempts (100 ms doubling to 2 s); an attempt is
 *     connect, login and READ CAPACITY(16), bounded by the command timeout
 *     and by the window.  Meanwhile the queue is not dispatched: commands
 *     submitted wait there and go out on the new session with fresh
 *     deadlines.  A LUN reset asked for meanwhile returns -CRP_ELOCKLOST
 *     at once.  The member fails (-CRP_EMEMBER) when the window passes, or
 *     at once when the unit that answers is not there (ILLEGAL REQUEST
 *     25h) or has another capacity.  With reconnect_ms UINT32_MAX the
 *     member fails at the loss with -CRP_ELOCKLOST, as it always did.
 *
 * Sense data: for CHECK CONDITION libiscsi keeps the SCSI Response data
 * segment in task->datain (two bytes of SenseLength, then the sense bytes
 * as the target sent them); those raw bytes are handed up, so decoding is
 * the shared crp_sense_decode.  Should the segment be missing, fixed-format
 * sense is rebuilt from libiscsi's parsed key and ASC/ASCQ.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/stat.h>
#include <unistd.h>

#include <glib.h>
#include <iscsi/iscsi.h>
#include <iscsi/scsi-lowlevel.h>

#include "crpfs/err.h"
#include "crpfs/log.h"
#include "crpfs/util.h"
#include "member_i.h"

#define IC_TICK_MS 100		   /* the I/O thread wakes at least this often */
#define IC_LOGOUT_MAX_MS 2000	   /* bound on the logout at close */
#define IC_RECONNECT_FIRST_MS 100  /* first pause between login attempts ... */
#define IC_RECONNECT_MAX_MS 2000   /* ... doubling up to this */
#define IC_CHAP_FILE_MAX (64 * 1024)

/* One command in flight: owned by the I/O thread. */
struct ic_io {
	struct ic_state *st;
	struct crp_cmd *cmd;
	struct scsi_task *task;
	struct ic_io *prev, *next;
	int cancel_err; /* set before we cancel it ourselves: its result */
};

enum ic_login {
	IC_LOGIN_CONNECTING,
	IC_LOGIN_LOGGING_IN,
	IC_LOGIN_DONE,
	IC_LOGIN_FAILED,
};

enum ic_reset {
	IC_RESET_IDLE,
	IC_RESET_REQUESTED, /* by a caller, not yet sent */
	IC_RESET_SENT,	    /* task management request in flight */
	IC_RESET_DONE,	    /* rresult holds the answer */
};

struct ic_state {
	struct crp_member *m;
	char portal[300];
	int efd; /* eventfd: kicks, stop, reset requests */
	pthread_t thread;
	bool thread_started;
	atomic_bool stop;

	/* I/O thread only (the opening thread until the I/O thread starts). */
	struct iscsi_context *ctx; /* NULL once the session is dropped */
	enum ic_login login;
	enum ic_login login_failed_at; /* the stage that failed */
	char login_err[256];	       /* libiscsi's reason, taken when it failed */
	struct ic_io *inflight;
	struct ic_io *cancelling;  /* the io being cancelled by us, until its callback */
	struct crp_cmd *deferred;  /* completions that could not run inside issue() */
	struct crp_cmd *deferred_tail;
	struct crp_cmd *held;	   /* issued while our LUN reset is in flight */
	struct crp_cmd *held_tail;
	struct crp_cmd *delayed;   /* retries waiting for their not_before_ns */
	struct crp_cmd *delayed_tail;
	bool lost;		   /* the session failed inside a libiscsi callback */
	bool reconnecting;	   /* the session was lost: log in again */
	bool logout_done;

	/* What a new login needs again (scrubbed at free): set at open. */
	char *chap_user;
	char *chap_secret;

	/* LUN reset request: protected by rmu (rserial serializes callers). */
	pthread_mutex_t rserial;
	pthread_mutex_t rmu;
	pthread_cond_t rcv;
	enum ic_reset rstate;
	int rresult;
	uint64_t rdeadline;  /* I/O thread: deadline of the request in flight */
	uint64_t rstall;     /* crp_stall_ns() when it was sent */
};

static void ic_kick_fd(struct ic_state *st)
{
	crp_member_kick_fd(st->m, st->efd);
}

/* ---- credentials ------------------------------------------------------ */

/*
 * Read the CHAP user and secret from @path.  The file must be a regular file
 * owned by root or by the effective uid, with no permission for group or
 * others.  Format: GLib key file with a [chap] group holding "username" and
 * "password"; a file without any group header is read as if it started with
 * [chap].  The secret never appears in a message.
 */
static int read_chap(const struct crp_spec *spec, char **user, char **secret, char *err,
		     size_t errlen)
{
	const char *path = spec->chap_file;
	GKeyFile *kf = NULL;
	GError *gerr = NULL;
	char *buf = NULL;
	size_t len = 0, off;
	struct stat sb;
	int fd = -1, r = 0;

	*user = *secret = NULL;
	fd = open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NONBLOCK);
	if (fd < 0) {
		r = -errno;
		snprintf(err, errlen, "member '%s': cannot open CHAP credentials file %s: %s",
			 spec->text, path, strerror(errno));
		goto out;
	}
	if (fstat(fd, &sb) < 0) {
		r = -errno;
		snprintf(err, errlen, "member '%s': cannot stat CHAP credentials file %s: %s",
			 spec->text, path, strerror(errno));
		goto out;
	}
	if (!S_ISREG(sb.st_mode)) {
		r = -EPERM;
		snprintf(err, errlen, "member '%s': CHAP credentials file %s is not a regular file",
			 spec->text, path);
		goto out;
	}
	if (sb.st_uid != 0 && sb.st_uid != geteuid()) {
		r = -EPERM;
		snprintf(err, errlen,
			 "member '%s': CHAP credentials file %s is owned by uid %u, not by root "
			 "or uid %u; refusing to use it",
			 spec->text, path, (unsigned)sb.st_uid, (unsigned)geteuid());
		goto out;
	}
	if (sb.st_mode & (S_IRGRP | S_IWGRP | S_IROTH | S_IWOTH)) {
		r = -EPERM;
		snprintf(err, errlen,
			 "member '%s': CHAP credentials file %s is accessible by group or others "
			 "(mode %04o); refusing to use it: chmod 600 %s",
			 spec->text, path, (unsigned)(sb.st_mode & 07777), path);
		goto out;
	}
	if (sb.st_size > IC_CHAP_FILE_MAX) {
		r = -EFBIG;
		snprintf(err, errlen, "member '%s': CHAP credentials file %s is too large",
			 spec->text, path);
		goto out;
	}
	/* Room for a "[chap]\n" header in front and a terminating NUL. */
	buf = calloc(1, (size_t)sb.st_size + 16);
	if (!buf) {
		r = -ENOMEM;
		goto out;
	}
	off = 7;
	for (;;) {
		ssize_t n = read(fd, buf + off + len, (size_t)sb.st_size - len);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			r = -errno;
			snprintf(err, errlen, "member '%s': cannot read CHAP credentials file %s: %s",
				 spec->text, path, strerror(errno));
			goto out;
		}
		if (n == 0 || (len += (size_t)n) >= (size_t)sb.st_size)
			break;
	}
	{
		/* Does a group header come before the first key? */
		const char *p = buf + off;
		bool has_group = false;

		while (*p) {
			while (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r')
				p++;
			if (*p == '#') {
				while (*p && *p != '\n')
					p++;
				continue;
			}
			has_group = *p == '[';
			break;
		}
		if (!has_group) {
			memcpy(buf, "[chap]\n", 7);
			off = 0;
			len += 7;
		}
	}
	kf = g_key_file_new();
	if (!g_key_file_load_from_data(kf, buf + off, len, G_KEY_FILE_NONE, &gerr)) {
		r = -EINVAL;
		snprintf(err, errlen, "member '%s': CHAP credentials file %s does not parse: %s",
			 spec->text, path, gerr->message);
		goto out;
	}
	*user = g_key_file_get_string(kf, "chap", "username", NULL);
	*secret = g_key_file_get_string(kf, "chap", "password", NULL);
	if (!*user || !**user || !*secret || !**secret) {
		r = -EINVAL;
		snprintf(err, errlen,
			 "member '%s': CHAP credentials file %s needs 'username = NAME' and "
			 "'password = SECRET' in a [chap] group",
			 spec->text, path);
		goto out;
	}
	g_strstrip(*user);
	g_strstrip(*secret);
out:
	if (r < 0) {
		if (*secret) {
			explicit_bzero(*secret, strlen(*secret));
			g_free(*secret);
		}
		g_free(*user);
		*user = *secret = NULL;
	}
	if (gerr)
		g_error_free(gerr);
	if (kf)
		g_key_file_free(kf); /* GKeyFile does not scrub; the raw buffer below is */
	if (buf) {
		explicit_bzero(buf, (size_t)sb.st_size + 16);
		free(buf);
	}
	if (fd >= 0)
		close(fd);
	return r;
}

/* ---- completions ------------------------------------------------------ */

static void io_unlink(struct ic_state *st, struct ic_io *io)
{
	if (io->prev)
		io->prev->next = io->next;
	else
		st->inflight = io->next;
	if (io->next)
		io->next->prev = io->prev;
	io->prev = io->next = NULL;
}

/* Append @cmd to the list @head/@tail (linked by q_next). */
static void cmd_append(struct crp_cmd **head, struct crp_cmd **tail, struct crp_cmd *cmd)
{
	cmd->q_next = NULL;
	if (*tail)
		(*tail)->q_next = cmd;
	else
		*head = cmd;
	*tail = cmd;
}

/* Complete @cmd with a transport error from the loop (never from issue()). */
static void defer_error(struct ic_state *st, struct crp_cmd *cmd, int err)
{
	cmd->status = CRP_SAM_NONE;
	cmd->result = err;
	cmd_append(&st->deferred, &st->deferred_tail, cmd);
}

static void run_deferred(struct ic_state *st)
{
	while (st->deferred) {
		struct crp_cmd *cmd = st->deferred;

		st->deferred = cmd->q_next;
		if (!st->deferred)
			st->deferred_tail = NULL;
		cmd->q_next = NULL;
		crp_member_complete(st->m, cmd);
	}
}

static void copy_sense(struct crp_cmd *cmd, struct scsi_task *task)
{
	const unsigned char *d = task->datain.data;
	int size = task->datain.size;

	cmd->sense_len = 0;
	if (d && size > 2) {
		size_t slen = ((size_t)d[0] << 8) | d[1];

		slen = CRP_MIN(slen, (size_t)size - 2);
		slen = CRP_MIN(slen, (size_t)CRP_SENSE_MAX);
		memcpy(cmd->sense, d + 2, slen);
		cmd->sense_len = (uint8_t)slen;
	}
	if (cmd->sense_len == 0 && task->sense.key) {
		/* Rebuild fixed-format sense from what libiscsi parsed. */
		crp_sense_set_fixed(cmd, (uint8_t)(task->sense.key & 0x0f),
				    (uint8_t)((task->sense.ascq >> 8) & 0xff),
				    (uint8_t)(task->sense.ascq & 0xff));
	}
}

/*
 * The session failed (seen inside a libiscsi callback or after
 * iscsi_service): the loss is noted at once, before any command completes
 * with it, so that a caller woken by the completion sees the event (and,
 * when the member does not log in again, sees it failed).  The context
 * itself is dropped from the loop (session_lost).
 */
static void mark_lost(struct ic_state *st)
{
	if (st->lost)
		return;
	st->lost = true;
	if (st->login != IC_LOGIN_DONE || st->reconnecting)
		return; /* still logging in: ic_connect or reconnect() reports it */
	crp_member_nexus_lost(st->m);
	if (st->m->opts.reconnect_ms == UINT32_MAX)
		crp_member_fail(st->m, -CRP_ELOCKLOST);
	else
		atomic_store(&st->m->reconnecting, true);
}

/* Was a task cancelled by our own LOGICAL UNIT RESET (libiscsi cancels the
 * LUN's tasks when the reset completes) rather than by a lost session? */
static bool reset_aborted(struct ic_state *st)
{
	bool ours;

	pthread_mutex_lock(&st->rmu);
	ours = st->rstate == IC_RESET_SENT || st->rstate == IC_RESET_DONE;
	pthread_mutex_unlock(&st->rmu);
	return ours && st->ctx && iscsi_is_logged_in(st->ctx);
}

static void cmd_cb(struct iscsi_context *ctx, int status, void *command_data, void *priv)
{
	struct ic_io *io = priv;
	struct ic_state *st = io->st;
	struct crp_cmd *cmd = io->cmd;
	struct scsi_task *task = io->task;

	(void)ctx;
	(void)command_data;
	io_unlink(st, io);
	if (st->cancelling == io)
		st->cancelling = NULL;
	cmd->resid = 0;
	cmd->sense_len = 0;
	if (io->cancel_err == -CRP_ELOCKLOST && crp_member_resend(st->m, cmd)) {
		/* The session is lost: a command that changes nothing waits
		 * for the new one. */
		scsi_free_scsi_task(task);
		free(io);
		return;
	} else if (io->cancel_err) {
		cmd->status = CRP_SAM_NONE;
		cmd->result = io->cancel_err;
	} else if (status == SCSI_STATUS_CANCELLED && reset_aborted(st)) {
		/* Aborted by our LOGICAL UNIT RESET: the reservations are
		 * gone, the nexus is not. */
		crp_member_note_event(st->m, CRP_EV_RESET);
		cmd->status = CRP_SAM_NONE;
		cmd->result = -CRP_ELOCKLOST;
	} else if (status == SCSI_STATUS_CANCELLED) {
		/* Not cancelled by us: libiscsi dropped the session.  A
		 * command that changes nothing waits for the new one. */
		mark_lost(st);
		if (crp_member_resend(st->m, cmd)) {
			scsi_free_scsi_task(task);
			free(io);
			return;
		}
		cmd->status = CRP_SAM_NONE;
		cmd->result = -CRP_ELOCKLOST;
	} else if (status == SCSI_STATUS_ERROR || status == SCSI_STATUS_TIMEOUT ||
		   status < 0 || status > 0xff) {
		cmd->status = CRP_SAM_NONE;
		cmd->result = -EIO;
	} else {
		cmd->status = status;
		cmd->result = 0;
		if (status == SCSI_STATUS_CHECK_CONDITION)
			copy_sense(cmd, task);
		if (task->residual_status == SCSI_RESIDUAL_UNDERFLOW)
			cmd->resid = (uint32_t)CRP_MIN(task->residual, (size_t)cmd->len);
	}
	scsi_free_scsi_task(task);
	free(io);
	crp_member_complete(st->m, cmd);
}

/* Send @cmd on the session (I/O thread).  Never completes it synchronously. */
static bool reset_in_flight(struct ic_state *st)
{
	bool sent;

	pthread_mutex_lock(&st->rmu);
	sent = st->rstate == IC_RESET_REQUESTED || st->rstate == IC_RESET_SENT;
	pthread_mutex_unlock(&st->rmu);
	return sent;
}

static void send_cmd(struct ic_state *st, struct crp_cmd *cmd)
{
	struct crp_member *m = st->m;
	struct iscsi_data d;
	struct scsi_task *task;
	struct ic_io *io;
	int dir, e, failed = atomic_load(&m->failed);

	/*
	 * From the moment our LOGICAL UNIT RESET is requested until it is
	 * answered, new commands are held back: sending the reset makes
	 * libiscsi cancel every task, and one cancelled before it left the
	 * send queue leaves a hole in the CmdSN sequence that stalls every
	 * later command at the target; one sent while the reset is carried
	 * out can be aborted without an answer.
	 */
	if (!failed && st->ctx && reset_in_flight(st)) {
		cmd_append(&st->held, &st->held_tail, cmd);
		return;
	}
	if (!st->ctx || failed) {
		defer_error(st, cmd, failed ? -CRP_EMEMBER : -CRP_ELOCKLOST);
		return;
	}
	if (cmd->not_before_ns > crp_now_ns()) { /* a NOT READY retry: later */
		cmd_append(&st->delayed, &st->delayed_tail, cmd);
		return;
	}
	e = crp_member_may_send(m, cmd);
	if (e < 0) {
		defer_error(st, cmd, e);
		return;
	}
	switch (cmd->dir) {
	case CRP_DIR_READ:
		dir = SCSI_XFER_READ;
		break;
	case CRP_DIR_WRITE:
		dir = SCSI_XFER_WRITE;
		break;
	default:
		dir = SCSI_XFER_NONE;
		break;
	}
	io = calloc(1, sizeof(*io));
	task = scsi_create_task(cmd->cdb_len, cmd->cdb, dir,
				dir == SCSI_XFER_NONE ? 0 : (int)cmd->len);
	if (!io || !task)
		goto nomem;
	io->st = st;
	io->cmd = cmd;
	io->task = task;
	cmd->tpriv = io;
	if (dir == SCSI_XFER_READ && cmd->len &&
	    scsi_task_add_data_in_buffer(task, (int)cmd->len, cmd->buf) != 0)
		goto nomem;
	d.data = cmd->buf;
	d.size = cmd->len;
	if (iscsi_scsi_command_async(st->ctx, st->m->spec.lun, task, cmd_cb,
				     dir == SCSI_XFER_WRITE && cmd->len ? &d : NULL, io) != 0) {
		crp_debug("member %s: cannot queue %s: %s", m->spec.text, crp_cdb_name(cmd),
			  iscsi_get_error(st->ctx));
		scsi_free_scsi_task(task);
		free(io);
		defer_error(st, cmd, -EIO);
		return;
	}
	io->next = st->inflight;
	if (st->inflight)
		st->inflight->prev = io;
	st->inflight = io;
	return;
nomem:
	if (task)
		scsi_free_scsi_task(task);
	free(io);
	defer_error(st, cmd, -ENOMEM);
}

/* Cancel every command in flight, completing each with @err. */
static void cancel_inflight(struct ic_state *st, int err)
{
	while (st->inflight) {
		struct ic_io *io = st->inflight;

		io->cancel_err = err;
		st->cancelling = io;
		if (st->ctx)
			iscsi_scsi_cancel_task(st->ctx, io->task);
		if (st->cancelling == io) {
			/* libiscsi no longer knew the task: finish it here. */
			struct crp_cmd *cmd = io->cmd;

			st->cancelling = NULL;
			io_unlink(st, io);
			scsi_free_scsi_task(io->task);
			free(io);
			if (err == -CRP_ELOCKLOST && crp_member_resend(st->m, cmd))
				continue; /* waits for the new session */
			defer_error(st, cmd, err);
		}
	}
}

static void reset_finish(struct ic_state *st, int result)
{
	pthread_mutex_lock(&st->rmu);
	if (st->rstate == IC_RESET_SENT || st->rstate == IC_RESET_REQUESTED) {
		st->rresult = result;
		st->rstate = IC_RESET_DONE;
		pthread_cond_broadcast(&st->rcv);
	}
	pthread_mutex_unlock(&st->rmu);
}

/* Close the session without a logout: the nexus and its reservations go. */
static void drop_session(struct ic_state *st, int err)
{
	/* Retries waiting for their pause belong to this nexus too. */
	while (st->delayed) {
		struct crp_cmd *cmd = st->delayed;

		st->delayed = cmd->q_next;
		defer_error(st, cmd, err);
	}
	st->delayed_tail = NULL;
	cancel_inflight(st, err);
	reset_finish(st, err);
	if (st->ctx) {
		iscsi_destroy_context(st->ctx);
		st->ctx = NULL;
	}
}

static void session_lost(struct ic_state *st)
{
	struct crp_member *m = st->m;
	bool again;

	if (!st->ctx)
		return;
	again = m->opts.reconnect_ms != UINT32_MAX && !atomic_load(&m->failed) &&
		!atomic_load(&st->stop);
	if (again)
		crp_warn("member %s: iSCSI session to %s lost (the target closed it or the "
			 "connection failed); its reservations are gone; logging in again for "
			 "up to %u ms",
			 m->spec.text, st->portal, m->opts.reconnect_ms);
	else
		crp_warn("member %s: iSCSI session to %s lost (the target closed it or the "
			 "connection failed); its reservations are gone",
			 m->spec.text, st->portal);
	drop_session(st, -CRP_ELOCKLOST);
	st->reconnecting = again;
	atomic_store(&m->reconnecting, again);
}

/* ---- LUN reset -------------------------------------------------------- */

static void reset_cb(struct iscsi_context *ctx, int status, void *command_data, void *priv)
{
	struct ic_state *st = priv;
	int r;

	(void)ctx;
	if (status == SCSI_STATUS_GOOD)
		r = (command_data && *(uint32_t *)command_data != 0) ? -EIO : 0;
	else if (status == SCSI_STATUS_CANCELLED)
		r = -CRP_ELOCKLOST;
	else
		r = -EIO;
	pthread_mutex_lock(&st->rmu);
	if (st->rstate == IC_RESET_SENT) {
		st->rresult = r;
		st->rstate = IC_RESET_DONE;
		pthread_cond_broadcast(&st->rcv);
	}
	pthread_mutex_unlock(&st->rmu);
}

static void reset_start(struct ic_state *st)
{
	bool go = false;

	/* Only once everything sent before is on the wire (see send_cmd). */
	if (st->ctx && iscsi_out_queue_length(st->ctx) > 0)
		return;
	pthread_mutex_lock(&st->rmu);
	if (st->rstate == IC_RESET_REQUESTED) {
		if (!st->ctx || atomic_load(&st->m->failed)) {
			st->rresult = -CRP_EMEMBER;
			st->rstate = IC_RESET_DONE;
			pthread_cond_broadcast(&st->rcv);
		} else {
			st->rstate = IC_RESET_SENT;
			st->rdeadline = crp_now_ns() + (uint64_t)st->m->opts.timeout_ms * 1000000ull;
			st->rstall = crp_stall_ns();
			go = true;
		}
	}
	pthread_mutex_unlock(&st->rmu);
	if (go && iscsi_task_mgmt_lun_reset_async(st->ctx, (uint32_t)st->m->spec.lun, reset_cb,
						  st) != 0)
		reset_finish(st, -EIO);
}

/* ---- the I/O thread --------------------------------------------------- */

static int next_wait_ms(struct ic_state *st)
{
	/* Deadlines leave out this process's stalls (src/util/stall.c). */
	uint64_t now = crp_now_ns(), first = UINT64_MAX, stall = crp_stall_ns();
	int ms;

	for (struct ic_io *io = st->inflight; io; io = io->next)
		first = CRP_MIN(first, io->cmd->deadline_ns + (stall - io->cmd->stall_ns));
	for (struct crp_cmd *c = st->delayed; c; c = c->q_next)
		first = CRP_MIN(first, c->not_before_ns);
	pthread_mutex_lock(&st->rmu);
	if (st->rstate == IC_RESET_SENT)
		first = CRP_MIN(first, st->rdeadline + (stall - st->rstall));
	pthread_mutex_unlock(&st->rmu);
	if (first == UINT64_MAX)
		return IC_TICK_MS;
	if (first <= now)
		return 0;
	ms = (int)CRP_MIN((first - now + 999999) / 1000000, (uint64_t)IC_TICK_MS);
	return ms;
}

static void check_deadlines(struct ic_state *st)
{
	struct crp_member *m = st->m;
	uint64_t now = crp_now_ns(), stall = crp_stall_ns();
	bool expired = false, reset_expired;

	for (struct ic_io *io = st->inflight; io; io = io->next) {
		if (io->cmd->deadline_ns + (stall - io->cmd->stall_ns) <= now) {
			expired = true;
			io->cancel_err = -ETIMEDOUT;
		}
	}
	pthread_mutex_lock(&st->rmu);
	reset_expired = st->rstate == IC_RESET_SENT && st->rdeadline + (stall - st->rstall) <= now;
	pthread_mutex_unlock(&st->rmu);
	if (!expired && !reset_expired)
		return;

	for (struct ic_io *io = st->inflight; io; io = io->next)
		if (io->cancel_err == -ETIMEDOUT)
			crp_warn("member %s: %s sent %llu ms ago has no answer", m->spec.text,
				 crp_cdb_name(io->cmd),
				 (unsigned long long)((now - io->cmd->issued_ns) / 1000000));
	crp_warn("member %s: %s to %s did not complete within its timeout; dropping the "
		 "session", m->spec.text, expired ? "a command" : "a LUN reset", st->portal);
	crp_member_fail(m, -ETIMEDOUT);
	crp_member_note_event(m, CRP_EV_NEXUS_LOST);
	if (reset_expired)
		reset_finish(st, -ETIMEDOUT);
	/* The expired commands complete with -ETIMEDOUT, the others with
	 * -CRP_EMEMBER: the session they were sent on is gone. */
	for (struct ic_io *io = st->inflight, *next; io; io = next) {
		next = io->next;
		if (io->cancel_err == -ETIMEDOUT) {
			st->cancelling = io;
			iscsi_scsi_cancel_task(st->ctx, io->task);
			if (st->cancelling == io) {
				struct crp_cmd *cmd = io->cmd;

				st->cancelling = NULL;
				io_unlink(st, io);
				scsi_free_scsi_task(io->task);
				free(io);
				defer_error(st, cmd, -ETIMEDOUT);
			}
			next = st->inflight; /* the list changed: start over */
		}
	}
	drop_session(st, -CRP_EMEMBER);
}

/* Send the retries whose pause is over. */
static void send_delayed(struct ic_state *st)
{
	uint64_t now = crp_now_ns();
	struct crp_cmd *list = st->delayed, *keep = NULL, *keep_tail = NULL;

	st->delayed = st->delayed_tail = NULL;
	while (list) {
		struct crp_cmd *cmd = list;

		list = cmd->q_next;
		if (cmd->not_before_ns > now) {
			cmd_append(&keep, &keep_tail, cmd);
			continue;
		}
		cmd->q_next = NULL;
		cmd->not_before_ns = 0;
		send_cmd(st, cmd);
	}
	/* Those still waiting go first again, in their order. */
	if (keep) {
		keep_tail->q_next = st->delayed;
		if (!st->delayed)
			st->delayed_tail = keep_tail;
		st->delayed = keep;
	}
}

/* Send what was held back during our LUN reset, once it is over. */
static void send_held(struct ic_state *st)
{
	struct crp_cmd *list;

	if (!st->held || reset_in_flight(st))
		return;
	list = st->held;
	st->held = st->held_tail = NULL;
	while (list) {
		struct crp_cmd *cmd = list;

		list = cmd->q_next;
		cmd->q_next = NULL;
		send_cmd(st, cmd);
	}
}

static void dispatch_queue(struct ic_state *st)
{
	struct crp_cmd *list;

	if (reset_in_flight(st))
		return; /* stays queued: see send_cmd */
	list = crp_member_dequeue(st->m);

	while (list) {
		struct crp_cmd *cmd = list;

		list = cmd->q_next;
		cmd->q_next = NULL;
		if (atomic_load(&st->m->failed) || !st->ctx) {
			crp_member_abort(st->m, cmd, -CRP_EMEMBER);
			continue;
		}
		crp_member_prepare(st->m, cmd);
		send_cmd(st, cmd);
	}
}

/* One round of poll + service; returns after at most @wait_ms. */
static void poll_once(struct ic_state *st, int wait_ms)
{
	struct pollfd p[2];
	int n = 1, r;

	p[0].fd = st->efd;
	p[0].events = POLLIN;
	p[0].revents = 0;
	if (st->ctx) {
		p[1].fd = iscsi_get_fd(st->ctx);
		p[1].events = (short)iscsi_which_events(st->ctx);
		p[1].revents = 0;
		n = 2;
	}
	r = poll(p, (nfds_t)n, wait_ms);
	if (r < 0 && errno != EINTR) {
		crp_warn("member %s: poll: %s", st->m->spec.text, strerror(errno));
		crp_sleep_ns(1000000);
		return;
	}
	if (p[0].revents & POLLIN) {
		uint64_t v;

		if (read(st->efd, &v, sizeof(v)) < 0 && errno != EAGAIN)
			crp_warn("member %s: eventfd: %s", st->m->spec.text, strerror(errno));
	}
	if (st->ctx) {
		/* revents 0 still runs libiscsi's timers and NOP handling. */
		if (iscsi_service(st->ctx, r > 0 ? p[1].revents : 0) < 0)
			mark_lost(st);
	}
}

static void logout_cb(struct iscsi_context *ctx, int status, void *command_data, void *priv)
{
	struct ic_state *st = priv;

	(void)ctx;
	(void)status;
	(void)command_data;
	st->logout_done = true;
}

/* Stop: complete everything, log out (bounded) and close the session. */
static void io_shutdown(struct ic_state *st)
{
	struct crp_member *m = st->m;

	cancel_inflight(st, -CRP_EMEMBER);
	run_deferred(st);
	if (st->ctx && !st->lost && !atomic_load(&m->failed)) {
		uint64_t end = crp_now_ns() +
			       (uint64_t)CRP_MIN(m->opts.timeout_ms, IC_LOGOUT_MAX_MS) * 1000000ull;

		st->logout_done = false;
		if (iscsi_logout_async(st->ctx, logout_cb, st) == 0) {
			while (!st->logout_done && !st->lost && crp_now_ns() < end)
				poll_once(st, 10);
		}
	}
	drop_session(st, -CRP_EMEMBER);
	send_held(st); /* the member is failed: each completes with an error */
	run_deferred(st);
	for (struct crp_cmd *c = crp_member_dequeue(m), *next; c; c = next) {
		next = c->q_next;
		crp_member_abort(m, c, -CRP_EMEMBER);
	}
	reset_finish(st, -CRP_EMEMBER);
}

static void reconnect(struct ic_state *st);

static void *io_thread(void *arg)
{
	struct ic_state *st = arg;

	while (!atomic_load(&st->stop)) {
		poll_once(st, next_wait_ms(st));
		if (st->lost)
			session_lost(st);
		run_deferred(st);
		send_held(st); /* without a session: each completes with the loss */
		run_deferred(st);
		if (st->reconnecting)
			reconnect(st); /* the queue waits meanwhile; sent just below */
		send_delayed(st);
		dispatch_queue(st);
		reset_start(st);
		check_deadlines(st);
		run_deferred(st);
	}
	io_shutdown(st);
	return NULL;
}

/* ---- open / close ----------------------------------------------------- */

static void login_cb(struct iscsi_context *ctx, int status, void *command_data, void *priv)
{
	struct ic_state *st = priv;

	(void)ctx;
	(void)command_data;
	if (st->login != IC_LOGIN_LOGGING_IN)
		return;
	if (status == SCSI_STATUS_GOOD) {
		st->login = IC_LOGIN_DONE;
	} else {
		snprintf(st->login_err, sizeof(st->login_err), "%s", iscsi_get_error(ctx));
		st->login_failed_at = IC_LOGIN_LOGGING_IN;
		st->login = IC_LOGIN_FAILED;
	}
}

static void connect_cb(struct iscsi_context *ctx, int status, void *command_data, void *priv)
{
	struct ic_state *st = priv;

	(void)command_data;
	if (st->login != IC_LOGIN_CONNECTING)
		return; /* a later teardown report: the I/O thread sees it itself */
	if (status != SCSI_STATUS_GOOD) {
		snprintf(st->login_err, sizeof(st->login_err), "%s", iscsi_get_error(ctx));
		st->login_failed_at = IC_LOGIN_CONNECTING;
		st->login = IC_LOGIN_FAILED;
		return;
	}
	st->login = IC_LOGIN_LOGGING_IN;
	if (iscsi_login_async(ctx, login_cb, st) != 0) {
		snprintf(st->login_err, sizeof(st->login_err), "%s", iscsi_get_error(ctx));
		st->login_failed_at = IC_LOGIN_LOGGING_IN;
		st->login = IC_LOGIN_FAILED;
	}
}

/* Connect and log in on st->ctx by @end (the I/O thread once it runs). */
static int ic_connect(struct ic_state *st, uint64_t end, char *err, size_t errlen)
{
	struct crp_member *m = st->m;
	unsigned ms = (unsigned)((end - CRP_MIN(end, crp_now_ns()) + 999999) / 1000000);
	enum ic_login stage;

	st->login = IC_LOGIN_CONNECTING;
	if (iscsi_connect_async(st->ctx, st->portal, connect_cb, st) != 0) {
		snprintf(err, errlen, "member '%s': cannot connect to iSCSI portal %s: %s",
			 m->spec.text, st->portal, iscsi_get_error(st->ctx));
		return -EHOSTUNREACH;
	}
	st->lost = false;
	while (st->login == IC_LOGIN_CONNECTING || st->login == IC_LOGIN_LOGGING_IN) {
		uint64_t now = crp_now_ns();

		if (now >= end || atomic_load(&st->stop))
			break;
		poll_once(st, (int)CRP_MIN((end - now) / 1000000 + 1, (uint64_t)IC_TICK_MS));
		if (st->lost && st->login != IC_LOGIN_DONE) {
			st->lost = false;
			if (st->login == IC_LOGIN_CONNECTING || st->login == IC_LOGIN_LOGGING_IN) {
				snprintf(st->login_err, sizeof(st->login_err), "%s",
					 iscsi_get_error(st->ctx));
				st->login_failed_at = st->login;
				st->login = IC_LOGIN_FAILED;
			}
		}
	}
	stage = st->login;
	if (stage == IC_LOGIN_DONE)
		return 0;
	if (stage == IC_LOGIN_CONNECTING) {
		snprintf(err, errlen,
			 "member '%s': no connection to iSCSI portal %s within %u ms; check that "
			 "the target is up and reachable",
			 m->spec.text, st->portal, ms);
		return -ETIMEDOUT;
	}
	if (stage == IC_LOGIN_LOGGING_IN) {
		snprintf(err, errlen,
			 "member '%s': iSCSI login to %s at portal %s did not complete within %u ms",
			 m->spec.text, m->spec.iqn, st->portal, ms);
		return -ETIMEDOUT;
	}
	/* Failed: was it the connection or the login? */
	if (st->login_failed_at == IC_LOGIN_LOGGING_IN) {
		snprintf(err, errlen,
			 "member '%s': iSCSI login to %s at portal %s refused: %s%s",
			 m->spec.text, m->spec.iqn, st->portal, st->login_err,
			 m->spec.chap_file[0] ? "; check the CHAP credentials in " : "");
		if (m->spec.chap_file[0]) {
			size_t l = strlen(err);

			snprintf(err + l, errlen > l ? errlen - l : 0, "%s", m->spec.chap_file);
		}
		return -EACCES;
	}
	snprintf(err, errlen,
		 "member '%s': cannot connect to iSCSI portal %s: %s; check that the target is "
		 "up and listening there",
		 m->spec.text, st->portal, st->login_err);
	return -ECONNREFUSED;
}

/* A new context in st->ctx, set up for a login as this member's host. */
static int ic_new_context(struct ic_state *st, char *err, size_t errlen)
{
	struct crp_member *m = st->m;
	char initiator[256];

	crp_initiator_name(m->opts.host, initiator, sizeof(initiator));
	st->ctx = iscsi_create_context(initiator);
	if (!st->ctx) {
		snprintf(err, errlen, "member '%s': cannot create an iSCSI context", m->spec.text);
		return -ENOMEM;
	}
	iscsi_set_noautoreconnect(st->ctx, 1);
	if (iscsi_set_targetname(st->ctx, m->spec.iqn) != 0 ||
	    iscsi_set_session_type(st->ctx, ISCSI_SESSION_NORMAL) != 0 ||
	    iscsi_set_header_digest(st->ctx, ISCSI_HEADER_DIGEST_NONE_CRC32C) != 0 ||
	    (st->chap_user &&
	     iscsi_set_initiator_username_pwd(st->ctx, st->chap_user, st->chap_secret) != 0)) {
		snprintf(err, errlen, "member '%s': cannot set up the iSCSI session: %s",
			 m->spec.text, iscsi_get_error(st->ctx));
		return -EINVAL;
	}
	return 0;
}

/* ---- logging in again ------------------------------------------------- */

struct ic_probe {
	bool done;
	int status;
};

static void probe_cb(struct iscsi_context *ctx, int status, void *command_data, void *priv)
{
	struct ic_probe *p = priv;

	(void)ctx;
	(void)command_data;
	p->done = true;
	p->status = status;
}

/*
 * On a new session: is the unit the one this member had?  READ
 * CAPACITY(16) by @end, the new nexus's UNIT ATTENTIONs retried.  0 (a
 * RESERVATION CONFLICT also proves the unit answers); -CRP_EMEMBER when
 * the unit is not there or has another capacity (no use trying again);
 * another negative error when this attempt failed.  @why says what.
 */
static int ic_check_unit(struct ic_state *st, uint64_t end, char *why, size_t len)
{
	struct crp_member *m = st->m;

	for (int tries = 0; tries < CRP_UA_RETRIES; tries++) {
		struct ic_probe p = { false, 0 };
		struct scsi_task *task;
		struct crp_cmd tmp;
		struct crp_sense s;
		char sense[160];
		uint64_t nblocks;
		uint32_t bs;
		int e;

		task = iscsi_readcapacity16_task(st->ctx, m->spec.lun, probe_cb, &p);
		if (!task) {
			snprintf(why, len, "READ CAPACITY(16) on the new session: %s",
				 iscsi_get_error(st->ctx));
			return -EIO;
		}
		while (!p.done && !st->lost && !atomic_load(&st->stop)) {
			uint64_t now = crp_now_ns();

			if (now >= end)
				break;
			poll_once(st, (int)CRP_MIN((end - now) / 1000000 + 1, (uint64_t)IC_TICK_MS));
		}
		if (!p.done) {
			iscsi_scsi_cancel_task(st->ctx, task); /* its callback runs now, if at all */
			scsi_free_scsi_task(task);
			snprintf(why, len, "READ CAPACITY(16) on the new session: %s",
				 st->lost ? "the session was lost again" : "no answer in time");
			return -ETIMEDOUT;
		}
		crp_cmd_init(&tmp);
		if (p.status == SCSI_STATUS_CHECK_CONDITION)
			copy_sense(&tmp, task);
		e = p.status == SCSI_STATUS_GOOD
			    ? crp_parse_read_capacity16(task->datain.data,
							(uint32_t)CRP_MAX(task->datain.size, 0),
							&nblocks, &bs)
			    : 0;
		scsi_free_scsi_task(task);
		switch (p.status) {
		case SCSI_STATUS_GOOD:
			if (e < 0) {
				snprintf(why, len, "READ CAPACITY(16) data on the new session does "
					 "not parse");
				return -EIO;
			}
			if (bs != m->block_size || nblocks * bs != m->size) {
				snprintf(why, len,
					 "LUN %d came back with %llu blocks of %u bytes, not %llu of "
					 "%u: it is not the unit this member had",
					 m->spec.lun, (unsigned long long)nblocks, bs,
					 (unsigned long long)(m->size / m->block_size),
					 m->block_size);
				return -CRP_EMEMBER;
			}
			return 0;
		case SCSI_STATUS_RESERVATION_CONFLICT:
			return 0; /* it answers; another host holds a lock */
		case SCSI_STATUS_CHECK_CONDITION:
			if (crp_sense_decode(tmp.sense, tmp.sense_len, &s) == 0 &&
			    crp_sense_is_unit_attention(&s))
				continue; /* a new nexus hears of a reset first */
			e = crp_status_error(CRP_SAM_CHECK_CONDITION, tmp.sense, tmp.sense_len);
			snprintf(why, len, "READ CAPACITY(16) on the new session: %s",
				 crp_sense_text(tmp.sense, tmp.sense_len, sense, sizeof(sense)));
			return e == -CRP_EMEMBER ? e : -EIO;
		default:
			snprintf(why, len, "READ CAPACITY(16) on the new session: status 0x%x",
				 (unsigned)p.status);
			return -EIO;
		}
	}
	snprintf(why, len, "READ CAPACITY(16) on the new session: UNIT ATTENTION every time");
	return -EIO;
}

/* @why without the "member 'SPEC': " that ic_connect's messages start with
 * (the log line names the member already). */
static const char *without_member(const char *why)
{
	const char *end;

	if (strncmp(why, "member '", 8) || !(end = strstr(why, "': ")))
		return why;
	return end + 3;
}

/* A LUN reset cannot be sent without a session: the caller hears so. */
static void refuse_reset(struct ic_state *st)
{
	pthread_mutex_lock(&st->rmu);
	if (st->rstate == IC_RESET_REQUESTED) {
		st->rresult = -CRP_ELOCKLOST;
		st->rstate = IC_RESET_DONE;
		pthread_cond_broadcast(&st->rcv);
	}
	pthread_mutex_unlock(&st->rmu);
}

/* Wait until @until, answering LUN reset requests; true if asked to stop. */
static bool reconnect_pause(struct ic_state *st, uint64_t until)
{
	while (!atomic_load(&st->stop)) {
		uint64_t now = crp_now_ns();

		refuse_reset(st);
		if (now >= until)
			return false;
		poll_once(st, (int)CRP_MIN((until - now) / 1000000 + 1, (uint64_t)IC_TICK_MS));
	}
	return true;
}

/*
 * The session is lost (session_lost dropped it): log in again within the
 * reconnect window, or fail the member.  Runs in the I/O thread, which
 * dispatches nothing meanwhile; commands submitted wait in the queue.
 */
static void reconnect(struct ic_state *st)
{
	struct crp_member *m = st->m;
	uint64_t t0 = crp_now_ns(), end = t0 + (uint64_t)m->opts.reconnect_ms * 1000000ull;
	uint64_t timeout = (uint64_t)m->opts.timeout_ms * 1000000ull;
	uint64_t pause = IC_RECONNECT_FIRST_MS;
	unsigned attempts = 0;
	char why[512] = "no attempt was made";

	while (!atomic_load(&st->stop) && !atomic_load(&m->failed) && crp_now_ns() < end) {
		uint64_t now = crp_now_ns(), bound = CRP_MIN(now + timeout, end);
		int r;

		refuse_reset(st);
		attempts++;
		st->lost = false;
		r = ic_new_context(st, why, sizeof(why));
		if (r == 0)
			r = ic_connect(st, bound, why, sizeof(why));
		if (r == 0)
			r = ic_check_unit(st, bound, why, sizeof(why));
		if (r == 0 && st->lost) {
			snprintf(why, sizeof(why), "the new session was lost at once");
			r = -ECONNRESET;
		}
		if (r == 0) {
			st->reconnecting = false;
			atomic_fetch_add(&m->ctr.reconnects, 1);
			atomic_store(&m->reconnecting, false);
			atomic_store(&m->fresh_nexus, true);
			crp_member_note_event(m, CRP_EV_NEW_NEXUS);
			crp_warn("member %s: iSCSI session to %s logged in again after %llu ms "
				 "(%u attempt%s); it is a new nexus: every reservation this host "
				 "held on the unit is gone",
				 m->spec.text, st->portal,
				 (unsigned long long)((crp_now_ns() - t0) / 1000000), attempts,
				 attempts == 1 ? "" : "s");
			return;
		}
		st->login = IC_LOGIN_FAILED; /* late login callbacks change nothing */
		if (st->ctx) {
			iscsi_destroy_context(st->ctx);
			st->ctx = NULL;
		}
		if (r == -CRP_EMEMBER) { /* the unit is gone: nothing to wait for */
			st->reconnecting = false;
			crp_member_fail_why(m, -CRP_EMEMBER, why);
			atomic_store(&m->reconnecting, false);
			return;
		}
		crp_debug("member %s: login attempt %u to %s failed: %s", m->spec.text, attempts,
			  st->portal, without_member(why));
		/* A jittered pause, so that hosts that lost the same target
		 * do not all come back at the same moment. */
		now = crp_now_ns();
		if (reconnect_pause(st, CRP_MIN(now + (pause / 2 + crp_random() % pause) * 1000000ull,
						end)))
			break;
		pause = CRP_MIN(pause * 2, (uint64_t)IC_RECONNECT_MAX_MS);
	}
	st->reconnecting = false;
	if (atomic_load(&st->stop) || atomic_load(&m->failed)) {
		atomic_store(&m->reconnecting, false);
		return; /* closing (io_shutdown completes the queue), or failed already */
	}
	{
		char text[sizeof(why) + 256];

		snprintf(text, sizeof(text),
			 "no iSCSI session to %s within the reconnect window of %u ms (%u login "
			 "attempt%s; the last: %s)",
			 st->portal, m->opts.reconnect_ms, attempts, attempts == 1 ? "" : "s",
			 without_member(why));
		crp_member_fail_why(m, -CRP_EMEMBER, text);
	}
	atomic_store(&m->reconnecting, false);
}

/* ---- state ------------------------------------------------------------ */

static void ic_state_free(struct ic_state *st)
{
	if (!st)
		return;
	if (st->chap_secret) {
		explicit_bzero(st->chap_secret, strlen(st->chap_secret));
		g_free(st->chap_secret);
	}
	g_free(st->chap_user);
	if (st->ctx)
		iscsi_destroy_context(st->ctx);
	if (st->efd >= 0)
		close(st->efd);
	pthread_cond_destroy(&st->rcv);
	pthread_mutex_destroy(&st->rmu);
	pthread_mutex_destroy(&st->rserial);
	free(st);
}

static void ic_close(struct crp_member *m)
{
	struct ic_state *st = m->tp;

	if (!st)
		return;
	if (st->thread_started)
		crp_member_thread_stop(m, st->thread, &st->stop, st->efd);
	ic_state_free(st);
	m->tp = NULL;
}

/* Run one command through the I/O thread during open; UNIT ATTENTION is
 * retried by the member layer. */
static int ic_open(struct crp_member *m, char *err, size_t errlen)
{
	struct ic_state *st;
	int r;

	st = calloc(1, sizeof(*st));
	if (!st)
		return -ENOMEM;
	st->m = m;
	st->efd = -1;
	pthread_mutex_init(&st->rserial, NULL);
	pthread_mutex_init(&st->rmu, NULL);
	pthread_cond_init(&st->rcv, NULL);
	m->tp = st;

	if (strchr(m->spec.host, ':') && m->spec.host[0] != '[')
		snprintf(st->portal, sizeof(st->portal), "[%s]:%d", m->spec.host, m->spec.port);
	else
		snprintf(st->portal, sizeof(st->portal), "%s:%d", m->spec.host, m->spec.port);

	st->efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	if (st->efd < 0) {
		r = -errno;
		snprintf(err, errlen, "member '%s': eventfd: %s", m->spec.text, strerror(errno));
		goto out;
	}
	/* Read once: a login again uses the same credentials (libiscsi's
	 * context keeps its own copy of them anyway). */
	if (m->spec.chap_file[0]) {
		r = read_chap(&m->spec, &st->chap_user, &st->chap_secret, err, errlen);
		if (r < 0)
			goto out;
	}
	r = ic_new_context(st, err, errlen);
	if (r < 0)
		goto out;
	r = ic_connect(st, crp_now_ns() + (uint64_t)m->opts.timeout_ms * 1000000ull, err, errlen);
	if (r < 0)
		goto out;

	r = crp_member_thread_start(m, &st->thread, io_thread, st, err, errlen);
	if (r < 0)
		goto out;
	st->thread_started = true;

	r = crp_member_probe(m, err, errlen);
	if (r < 0)
		goto out;
	r = 0;
out:
	if (r < 0)
		ic_close(m);
	return r;
}

static void ic_kick(struct crp_member *m)
{
	ic_kick_fd(m->tp);
}

static void ic_issue(struct crp_member *m, struct crp_cmd *cmd)
{
	send_cmd(m->tp, cmd);
}

static int ic_lun_reset(struct crp_member *m)
{
	struct ic_state *st = m->tp;
	struct timespec ts;
	uint64_t wait_ns = ((uint64_t)m->opts.timeout_ms + 2000) * 1000000ull;
	int r;

	pthread_mutex_lock(&st->rserial);
	pthread_mutex_lock(&st->rmu);
	st->rstate = IC_RESET_REQUESTED;
	st->rresult = 0;
	pthread_mutex_unlock(&st->rmu);
	ic_kick_fd(st);

	clock_gettime(CLOCK_REALTIME, &ts);
	ts.tv_sec += (time_t)(wait_ns / 1000000000ull);
	ts.tv_nsec += (long)(wait_ns % 1000000000ull);
	if (ts.tv_nsec >= 1000000000L) {
		ts.tv_sec++;
		ts.tv_nsec -= 1000000000L;
	}
	pthread_mutex_lock(&st->rmu);
	while (st->rstate != IC_RESET_DONE) {
		if (pthread_cond_timedwait(&st->rcv, &st->rmu, &ts) == ETIMEDOUT)
			break;
	}
	if (st->rstate == IC_RESET_DONE) {
		r = st->rresult;
	} else {
		/* The I/O thread enforces the deadline itself; this is a backstop. */
		r = -ETIMEDOUT;
		crp_member_fail(m, -ETIMEDOUT);
	}
	st->rstate = IC_RESET_IDLE;
	pthread_mutex_unlock(&st->rmu);
	pthread_mutex_unlock(&st->rserial);
	return r;
}

const struct crp_transport_ops crp_transport_iscsi = {
	.name = "iscsi",
	.open = ic_open,
	.close = ic_close,
	.kick = ic_kick,
	.issue = ic_issue,
	.lun_reset = ic_lun_reset,
};
