/*
 * The SG_IO transport: /dev/sgN or /dev/sdX through sg3_utils' pass-through
 * (sg_pt), the path on hosts with SAS or FC disks.
 *
 * Deliberately thin: the kernel does the transport, the shared code builds
 * the CDBs and decodes the sense.  One I/O thread per member executes the
 * queued commands one at a time, in order, each bounded by its own timeout
 * (SG_IO's timeout, rounded up to whole seconds).  A command that times out
 * fails the member.  Retries and chained commands issued from a completion
 * go out before the rest of the queue.  The nexus is the open file
 * descriptor: closing it is what the kernel offers to end it.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <scsi/sg.h>
#include <scsi/sg_pt.h>

#include "crpfs/err.h"
#include "crpfs/log.h"
#include "crpfs/util.h"
#include "member_i.h"

struct sg_state {
	struct crp_member *m;
	int fd;	 /* the device; the nexus */
	int efd; /* eventfd: kicks and stop */
	pthread_t thread;
	bool thread_started;
	atomic_bool stop;
	struct sg_pt_base *pt; /* I/O thread only */
	/* Commands issued from a completion (retries, chains): I/O thread only. */
	struct crp_cmd *now_head, *now_tail;
};

static void sg_kick_fd(struct sg_state *st)
{
	crp_member_kick_fd(st->m, st->efd);
}

/* Execute @cmd synchronously and fill its results (I/O thread). */
static void sg_execute(struct sg_state *st, struct crp_cmd *cmd)
{
	struct crp_member *m = st->m;
	uint64_t now = crp_now_ns(), deadline;
	int secs, r, cat;

	cmd->status = CRP_SAM_NONE;
	cmd->result = 0;
	cmd->sense_len = 0;
	cmd->resid = 0;
	if (atomic_load(&m->failed)) {
		cmd->result = -CRP_EMEMBER;
		return;
	}
	if (cmd->not_before_ns > now) { /* a NOT READY retry: a short pause */
		crp_sleep_ns(cmd->not_before_ns - now);
		now = crp_now_ns();
	}
	cmd->result = crp_member_may_send(m, cmd);
	if (cmd->result < 0)
		return;
	deadline = crp_cmd_deadline(cmd);
	secs = deadline > now ? (int)CRP_DIV_ROUND_UP(deadline - now, 1000000000ull) : 1;
	clear_scsi_pt_obj(st->pt);
	set_scsi_pt_cdb(st->pt, cmd->cdb, cmd->cdb_len);
	set_scsi_pt_sense(st->pt, cmd->sense, CRP_SENSE_MAX);
	if (cmd->dir == CRP_DIR_READ && cmd->len)
		set_scsi_pt_data_in(st->pt, cmd->buf, (int)cmd->len);
	else if (cmd->dir == CRP_DIR_WRITE && cmd->len)
		set_scsi_pt_data_out(st->pt, cmd->buf, (int)cmd->len);

	r = do_scsi_pt(st->pt, st->fd, secs, 0);
	if (r == SCSI_PT_DO_TIMEOUT) {
		cmd->result = -ETIMEDOUT;
		crp_member_fail(m, -ETIMEDOUT);
		return;
	}
	if (r < 0) {
		cmd->result = r;
		return;
	}
	if (r > 0) {
		cmd->result = r == SCSI_PT_DO_NOT_SUPPORTED ? -EOPNOTSUPP : -EINVAL;
		return;
	}
	cat = get_scsi_pt_result_category(st->pt);
	switch (cat) {
	case SCSI_PT_RESULT_GOOD:
		cmd->status = CRP_SAM_GOOD;
		break;
	case SCSI_PT_RESULT_STATUS:
	case SCSI_PT_RESULT_SENSE:
		cmd->status = get_scsi_pt_status_response(st->pt);
		cmd->sense_len = (uint8_t)CRP_MIN(get_scsi_pt_sense_len(st->pt), CRP_SENSE_MAX);
		if (cmd->status < 0) {
			cmd->status = CRP_SAM_NONE;
			cmd->result = -EIO;
		}
		break;
	case SCSI_PT_RESULT_OS_ERR:
		r = get_scsi_pt_os_err(st->pt);
		cmd->result = r > 0 ? -r : -EIO;
		break;
	default: /* transport error: the HBA or the path */
		cmd->result = -EIO;
		break;
	}
	if (cmd->status != CRP_SAM_NONE) {
		r = get_scsi_pt_resid(st->pt);
		cmd->resid = r > 0 ? (uint32_t)CRP_MIN((uint32_t)r, cmd->len) : 0;
	}
}

/* Run @cmd and everything issued from its completion. */
static void sg_run(struct sg_state *st, struct crp_cmd *cmd)
{
	crp_member_prepare(st->m, cmd);
	sg_execute(st, cmd);
	crp_member_complete(st->m, cmd);
	while (st->now_head) {
		struct crp_cmd *c = st->now_head;

		st->now_head = c->q_next;
		if (!st->now_head)
			st->now_tail = NULL;
		c->q_next = NULL;
		/* issue() callers have stamped it with crp_member_prepare. */
		sg_execute(st, c);
		crp_member_complete(st->m, c);
	}
}

static void *sg_thread(void *arg)
{
	struct sg_state *st = arg;
	struct crp_cmd *list, *next;

	while (!atomic_load(&st->stop)) {
		struct pollfd p = { .fd = st->efd, .events = POLLIN };
		uint64_t v;

		list = crp_member_dequeue(st->m);
		if (!list) {
			if (poll(&p, 1, -1) > 0 && read(st->efd, &v, sizeof(v)) < 0 &&
			    errno != EAGAIN)
				crp_warn("member %s: eventfd: %s", st->m->spec.text,
					 strerror(errno));
			continue;
		}
		for (; list; list = next) {
			next = list->q_next;
			list->q_next = NULL;
			if (atomic_load(&st->stop) || atomic_load(&st->m->failed))
				crp_member_abort(st->m, list, -CRP_EMEMBER);
			else
				sg_run(st, list);
		}
	}
	for (list = crp_member_dequeue(st->m); list; list = next) {
		next = list->q_next;
		crp_member_abort(st->m, list, -CRP_EMEMBER);
	}
	return NULL;
}

static void sg_close(struct crp_member *m)
{
	struct sg_state *st = m->tp;

	if (!st)
		return;
	if (st->thread_started)
		crp_member_thread_stop(m, st->thread, &st->stop, st->efd);
	if (st->pt)
		destruct_scsi_pt_obj(st->pt);
	if (st->fd >= 0)
		scsi_pt_close_device(st->fd);
	if (st->efd >= 0)
		close(st->efd);
	free(st);
	m->tp = NULL;
}

static int sg_open(struct crp_member *m, char *err, size_t errlen)
{
	struct sg_state *st;
	struct stat sb;
	int r;

	st = calloc(1, sizeof(*st));
	if (!st)
		return -ENOMEM;
	st->m = m;
	st->fd = -1;
	st->efd = -1;
	m->tp = st;

	if (stat(m->spec.path, &sb) < 0) {
		r = -errno;
		snprintf(err, errlen, "member '%s': no such device: %s%s", m->spec.text,
			 strerror(errno),
			 errno == ENOENT ? " (check the path; lsscsi -g lists SCSI devices)" : "");
		goto out;
	}
	if (!S_ISCHR(sb.st_mode) && !S_ISBLK(sb.st_mode)) {
		r = -ENODEV;
		snprintf(err, errlen,
			 "member '%s': not a device node (use /dev/sgN or /dev/sdX, or file:PATH "
			 "for an image file)",
			 m->spec.text);
		goto out;
	}
	r = scsi_pt_open_device(m->spec.path, false, 0);
	if (r < 0) {
		snprintf(err, errlen, "member '%s': cannot open the device: %s", m->spec.text,
			 strerror(-r));
		goto out;
	}
	st->fd = r;
	st->pt = construct_scsi_pt_obj();
	st->efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	if (!st->pt || st->efd < 0) {
		r = -ENOMEM;
		snprintf(err, errlen, "member '%s': out of resources opening the device",
			 m->spec.text);
		goto out;
	}
	r = crp_member_thread_start(m, &st->thread, sg_thread, st, err, errlen);
	if (r < 0)
		goto out;
	st->thread_started = true;

	r = crp_member_probe(m, err, errlen);
	if (r < 0)
		goto out;
	r = 0;
out:
	if (r < 0)
		sg_close(m);
	return r;
}

static void sg_kick(struct crp_member *m)
{
	sg_kick_fd(m->tp);
}

static void sg_issue(struct crp_member *m, struct crp_cmd *cmd)
{
	struct sg_state *st = m->tp;

	cmd->q_next = NULL;
	if (st->now_tail)
		st->now_tail->q_next = cmd;
	else
		st->now_head = cmd;
	st->now_tail = cmd;
}

static int sg_lun_reset(struct crp_member *m)
{
	struct sg_state *st = m->tp;
	int what = SG_SCSI_RESET_DEVICE;

	if (ioctl(st->fd, SG_SCSI_RESET, &what) < 0)
		return -errno;
	return 0;
}

const struct crp_transport_ops crp_transport_sg = {
	.name = "sg",
	.open = sg_open,
	.close = sg_close,
	.kick = sg_kick,
	.issue = sg_issue,
	.lun_reset = sg_lun_reset,
};
