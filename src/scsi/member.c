/*
 * The transport-independent half of a member: specification parsing, the
 * submission queue, completion (UNIT ATTENTION retry, chaining, counters)
 * and completion groups.
 */
#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "crpfs/err.h"
#include "crpfs/log.h"
#include "crpfs/util.h"
#include "member_i.h"

static int spec_error(char *err, size_t errlen, const char *text, const char *why)
{
	if (err && errlen)
		snprintf(err, errlen, "member '%s': %s", text, why);
	return -CRP_EBADSPEC;
}

static int parse_options(char *opts, struct crp_spec *spec, char *err, size_t errlen)
{
	char *save = NULL;

	for (char *kv = strtok_r(opts, "&", &save); kv; kv = strtok_r(NULL, "&", &save)) {
		char *eq = strchr(kv, '=');

		if (!eq)
			return spec_error(err, errlen, spec->text, "option without '=' after '?'");
		*eq = '\0';
		if (!strcmp(kv, "chap") && spec->kind == CRP_TRANSPORT_ISCSI) {
			if (eq[1] != '/')
				return spec_error(err, errlen, spec->text,
						  "chap= needs an absolute path to a credentials file");
			snprintf(spec->chap_file, sizeof(spec->chap_file), "%s", eq + 1);
		} else {
			char why[128];

			snprintf(why, sizeof(why), "unknown option '%.60s'", kv);
			return spec_error(err, errlen, spec->text, why);
		}
	}
	return 0;
}

static int parse_iscsi(const char *rest, struct crp_spec *spec, char *err, size_t errlen)
{
	char buf[CRP_SPEC_MAX];
	char *opts, *slash, *lun, *end, *colon;
	long v;

	snprintf(buf, sizeof(buf), "%s", rest);
	opts = strchr(buf, '?');
	if (opts)
		*opts++ = '\0';
	slash = strchr(buf, '/');
	if (!slash || slash == buf)
		return spec_error(err, errlen, spec->text,
				  "expected iscsi://HOST[:PORT]/IQN/LUN");
	*slash = '\0';
	lun = strrchr(slash + 1, '/');
	if (!lun || lun == slash + 1)
		return spec_error(err, errlen, spec->text,
				  "expected iscsi://HOST[:PORT]/IQN/LUN (target name or LUN missing)");
	*lun++ = '\0';
	errno = 0;
	v = strtol(lun, &end, 10);
	if (errno || *end || end == lun || v < 0 || v > 16383)
		return spec_error(err, errlen, spec->text, "LUN must be a number from 0 to 16383");
	spec->lun = (int)v;
	if (strlen(slash + 1) >= sizeof(spec->iqn))
		return spec_error(err, errlen, spec->text, "target name too long");
	snprintf(spec->iqn, sizeof(spec->iqn), "%s", slash + 1);
	for (const char *c = spec->iqn; *c; c++)
		if (isspace((unsigned char)*c) || *c == '/')
			return spec_error(err, errlen, spec->text, "bad character in target name");
	spec->port = 3260;
	colon = strrchr(buf, ':');
	if (colon && buf[0] != '[') {
		*colon = '\0';
		errno = 0;
		v = strtol(colon + 1, &end, 10);
		if (errno || *end || end == colon + 1 || v < 1 || v > 65535)
			return spec_error(err, errlen, spec->text, "port must be 1 to 65535");
		spec->port = (int)v;
	}
	if (!buf[0] || strlen(buf) >= sizeof(spec->host))
		return spec_error(err, errlen, spec->text, "host missing or too long");
	memcpy(spec->host, buf, strlen(buf) + 1);
	if (opts)
		return parse_options(opts, spec, err, errlen);
	return 0;
}

int crp_spec_parse(const char *text, struct crp_spec *spec, char *err, size_t errlen)
{
	memset(spec, 0, sizeof(*spec));
	if (!text || !*text)
		return spec_error(err, errlen, "", "empty member specification");
	if (strlen(text) >= sizeof(spec->text))
		return spec_error(err, errlen, "(too long)", "specification longer than 1023 bytes");
	snprintf(spec->text, sizeof(spec->text), "%s", text);

	if (!strncmp(text, "file:", 5)) {
		spec->kind = CRP_TRANSPORT_FILE;
		if (!text[5])
			return spec_error(err, errlen, text, "file: needs a path (file:PATH)");
		if (strchr(text + 5, ','))
			return spec_error(err, errlen, text, "a path may not contain ','");
		snprintf(spec->path, sizeof(spec->path), "%s", text + 5);
		return 0;
	}
	if (!strncmp(text, "iscsi://", 8)) {
		spec->kind = CRP_TRANSPORT_ISCSI;
		return parse_iscsi(text + 8, spec, err, errlen);
	}
	if (!strncmp(text, "/dev/", 5) && text[5]) {
		spec->kind = CRP_TRANSPORT_SG;
		snprintf(spec->path, sizeof(spec->path), "%s", text);
		return 0;
	}
	return spec_error(err, errlen, text,
			  "not a member: use file:PATH, iscsi://HOST[:PORT]/IQN/LUN or /dev/sgN");
}

void crp_initiator_name(const char *host, char *buf, size_t len)
{
	size_t o;

	o = (size_t)snprintf(buf, len, "iqn.2026-11.org.crpfs:");
	for (const char *c = host; *c && o + 1 < len; c++) {
		char ch = (char)tolower((unsigned char)*c);

		buf[o++] = (isalnum((unsigned char)ch) || ch == '-' || ch == '.') ? ch : '-';
	}
	if (o < len)
		buf[o] = '\0';
}

static const struct crp_transport_ops *transport_of(enum crp_transport_kind k)
{
	switch (k) {
	case CRP_TRANSPORT_FILE:
		return &crp_transport_file;
	case CRP_TRANSPORT_ISCSI:
		return &crp_transport_iscsi;
	case CRP_TRANSPORT_SG:
		return &crp_transport_sg;
	}
	return NULL;
}

int crp_member_open(const char *spec, const struct crp_member_opts *opts,
		    struct crp_member **out, char *err, size_t errlen)
{
	struct crp_member *m;
	int r;

	*out = NULL;
	crp_stall_watch(); /* command timeouts leave out this process's pauses */
	m = calloc(1, sizeof(*m));
	if (!m)
		return -ENOMEM;
	r = crp_spec_parse(spec, &m->spec, err, errlen);
	if (r < 0)
		goto out;
	if (opts)
		m->opts = *opts;
	if (!m->opts.timeout_ms)
		m->opts.timeout_ms = CRP_DEFAULT_TIMEOUT_MS;
	if (!m->opts.file_block_size)
		m->opts.file_block_size = 512;
	if (!m->opts.reconnect_ms)
		m->opts.reconnect_ms = CRP_DEFAULT_RECONNECT_MS;
	if (opts && opts->host && opts->host[0]) {
		snprintf(m->host, sizeof(m->host), "%s", opts->host);
	} else if (gethostname(m->host, sizeof(m->host) - 1) < 0 || !m->host[0]) {
		snprintf(m->host, sizeof(m->host), "localhost");
	}
	m->opts.host = m->host;
	pthread_mutex_init(&m->qmu, NULL);
	m->ops = transport_of(m->spec.kind);
	r = m->ops->open(m, err, errlen);
	if (r < 0) {
		pthread_mutex_destroy(&m->qmu);
		goto out;
	}
	*out = m;
	m = NULL;
out:
	free(m);
	return r;
}

void crp_member_close(struct crp_member *m)
{
	if (!m)
		return;
	m->ops->close(m);
	pthread_mutex_destroy(&m->qmu);
	free(m);
}

const char *crp_member_spec(const struct crp_member *m)
{
	return m->spec.text;
}

const struct crp_spec *crp_member_parsed_spec(const struct crp_member *m)
{
	return &m->spec;
}

uint64_t crp_member_size(const struct crp_member *m)
{
	return m->size;
}

uint32_t crp_member_block_size(const struct crp_member *m)
{
	return m->block_size;
}

bool crp_member_failed(const struct crp_member *m)
{
	return atomic_load(&((struct crp_member *)m)->failed) != 0;
}

bool crp_member_reconnecting(const struct crp_member *m)
{
	return atomic_load(&((struct crp_member *)m)->reconnecting);
}

int crp_member_fail_reason(const struct crp_member *m)
{
	return atomic_load(&((struct crp_member *)m)->failed);
}

uint32_t crp_member_default_timeout(const struct crp_member *m)
{
	return m->opts.timeout_ms;
}

unsigned crp_member_take_events(struct crp_member *m)
{
	unsigned ev;

	/* With the loss counted and noted under the same lock, a caller who
	 * takes the event knows of every loss counted so far. */
	pthread_mutex_lock(&m->qmu);
	ev = atomic_exchange(&m->events, 0u);
	if (ev & CRP_EV_NEXUS_LOST)
		m->gen_seen = atomic_load(&m->nexus_gen);
	pthread_mutex_unlock(&m->qmu);
	return ev;
}

bool crp_member_resend(struct crp_member *m, struct crp_cmd *cmd)
{
	enum crp_opclass cls = crp_cdb_class(cmd);

	if (cmd->fence_ns || cmd->resends >= CRP_LOST_RESENDS || atomic_load(&m->failed) ||
	    !atomic_load(&m->reconnecting) ||
	    (cls != CRP_OPC_READ && cls != CRP_OPC_PR_IN && cls != CRP_OPC_OTHER))
		return false;
	cmd->resends++;
	cmd->status = CRP_SAM_NONE;
	cmd->result = 0;
	cmd->sense_len = 0;
	cmd->q_next = NULL;
	pthread_mutex_lock(&m->qmu);
	if (m->qtail)
		m->qtail->q_next = cmd;
	else
		m->qhead = cmd;
	m->qtail = cmd;
	pthread_mutex_unlock(&m->qmu);
	return true;
}

void crp_member_nexus_lost(struct crp_member *m)
{
	pthread_mutex_lock(&m->qmu);
	atomic_fetch_add(&m->nexus_gen, 1);
	atomic_fetch_or(&m->events, (unsigned)CRP_EV_NEXUS_LOST);
	pthread_mutex_unlock(&m->qmu);
}

unsigned crp_member_nexus_gen(struct crp_member *m)
{
	return atomic_load(&m->nexus_gen);
}

void crp_member_note_event(struct crp_member *m, unsigned ev)
{
	if (ev & CRP_EV_RESET)
		atomic_fetch_add(&m->ctr.resets_seen, 1);
	atomic_fetch_or(&m->events, ev);
}

struct crp_member_counters *crp_member_counters(struct crp_member *m)
{
	return &m->ctr;
}

void crp_member_fail(struct crp_member *m, int err)
{
	crp_member_fail_why(m, err, NULL);
}

void crp_member_fail_why(struct crp_member *m, int err, const char *why)
{
	int zero = 0;

	if (err >= 0)
		err = -CRP_EMEMBER;
	if (why && why[0] && why != m->last_err) {
		pthread_mutex_lock(&m->qmu);
		snprintf(m->last_err, sizeof(m->last_err), "%s", why);
		pthread_mutex_unlock(&m->qmu);
	}
	if (atomic_compare_exchange_strong(&m->failed, &zero, err))
		crp_err("member %s failed: %s; it takes no more commands until the array is "
			"mounted again", m->spec.text, why && why[0] ? why : crp_strerror(err));
}

/* A command as it starts out; caller holds m->qmu (for gen_seen). */
static void cmd_reset_locked(struct crp_member *m, struct crp_cmd *c)
{
	c->q_next = NULL;
	c->status = CRP_SAM_NONE;
	c->result = 0;
	c->sense_len = 0;
	c->ua_retries = 0;
	c->resends = 0;
	c->info_valid = false;
	c->info_lba = 0;
	c->not_before_ns = 0;
	c->nexus_gen = m->gen_seen;
}

void crp_member_cmd_reset(struct crp_member *m, struct crp_cmd *c)
{
	pthread_mutex_lock(&m->qmu);
	cmd_reset_locked(m, c);
	pthread_mutex_unlock(&m->qmu);
}

void crp_member_submit(struct crp_member *m, struct crp_cmd *const *cmds, int n)
{
	int failed = atomic_load(&m->failed);

	if (failed) {
		for (int i = 0; i < n; i++)
			crp_member_abort(m, cmds[i], -CRP_EMEMBER);
		return;
	}
	if (m->ops->run_now && m->ops->run_now(m, cmds, n))
		return;
	pthread_mutex_lock(&m->qmu);
	for (int i = 0; i < n; i++) {
		struct crp_cmd *c = cmds[i];

		cmd_reset_locked(m, c);
		if (m->qtail)
			m->qtail->q_next = c;
		else
			m->qhead = c;
		m->qtail = c;
	}
	pthread_mutex_unlock(&m->qmu);
	m->ops->kick(m);
}

struct crp_cmd *crp_member_dequeue(struct crp_member *m)
{
	struct crp_cmd *list;

	pthread_mutex_lock(&m->qmu);
	list = m->qhead;
	m->qhead = m->qtail = NULL;
	pthread_mutex_unlock(&m->qmu);
	return list;
}

void crp_member_prepare(struct crp_member *m, struct crp_cmd *cmd)
{
	uint32_t t = cmd->timeout_ms ? cmd->timeout_ms : m->opts.timeout_ms;

	cmd->issued_ns = crp_now_ns();
	cmd->deadline_ns = cmd->issued_ns + (uint64_t)t * 1000000ull;
	cmd->stall_ns = crp_stall_ns();
	cmd->not_before_ns = 0;
}

uint64_t crp_cmd_deadline(const struct crp_cmd *cmd)
{
	return cmd->deadline_ns + (crp_stall_ns() - cmd->stall_ns);
}

int crp_member_may_send(struct crp_member *m, const struct crp_cmd *cmd)
{
	if (cmd->fence_ns && crp_now_ns() >= cmd->fence_ns)
		return -CRP_EFENCED;
	if (cmd->fence_ns && cmd->nexus_gen != atomic_load(&m->nexus_gen))
		return -CRP_ELOCKLOST; /* its reservation belonged to a lost nexus */
	return 0;
}

static void record_failure(struct crp_member *m, struct crp_cmd *cmd)
{
	char sense[160];

	pthread_mutex_lock(&m->qmu);
	if (cmd->status == CRP_SAM_CHECK_CONDITION)
		snprintf(m->last_err, sizeof(m->last_err), "%s: %s", crp_cdb_name(cmd),
			 crp_sense_text(cmd->sense, cmd->sense_len, sense, sizeof(sense)));
	else
		snprintf(m->last_err, sizeof(m->last_err), "%s: %s", crp_cdb_name(cmd),
			 crp_strerror(cmd->result));
	pthread_mutex_unlock(&m->qmu);
}

static unsigned ua_event(const struct crp_sense *s)
{
	if (s->asc == 0x29)
		return CRP_EV_RESET;
	if (s->asc == 0x2a && s->ascq == 0x03)
		return CRP_EV_RES_PREEMPTED;
	if (s->asc == 0x2a && s->ascq == 0x04)
		return CRP_EV_RES_RELEASED;
	if (s->asc == 0x2a && s->ascq == 0x05)
		return CRP_EV_REG_PREEMPTED;
	return CRP_EV_PARAMS_CHANGED;
}

static void finish(struct crp_cmd *cmd)
{
	if (cmd->done)
		cmd->done(cmd);
}

void crp_member_abort(struct crp_member *m, struct crp_cmd *cmd, int err)
{
	struct crp_cmd *chain = cmd->chain;

	cmd->status = CRP_SAM_NONE;
	cmd->result = err;
	atomic_fetch_add(&m->ctr.errors, 1);
	if (chain)
		crp_member_abort(m, chain, -ECANCELED);
	finish(cmd);
}

/* Send @cmd again from its completion, keeping its deadline, no sooner than
 * @delay_ns from now. */
static void retry(struct crp_member *m, struct crp_cmd *cmd, uint64_t delay_ns)
{
	uint64_t deadline = cmd->deadline_ns, stall = cmd->stall_ns;

	cmd->ua_retries++;
	cmd->status = CRP_SAM_NONE;
	cmd->sense_len = 0;
	crp_member_prepare(m, cmd);
	cmd->deadline_ns = deadline;
	cmd->stall_ns = stall;
	if (delay_ns)
		cmd->not_before_ns = cmd->issued_ns + delay_ns;
	m->ops->issue(m, cmd);
}

/* The pause before NOT READY retry @n: 10 ms doubling to 250 ms. */
static uint64_t not_ready_pause_ns(uint32_t n)
{
	return CRP_MIN(10000000ull << CRP_MIN(n, 5u), 250000000ull);
}

/*
 * What a CHECK CONDITION means for this command and this member: a MEDIUM
 * ERROR is a bad block only for a READ (a WRITE or a SYNCHRONIZE CACHE that
 * cannot reach the medium is a broken unit), and a NOT READY that did not
 * pass by the deadline is a dead one.  -CRP_EMEMBER fails the member, with
 * what the target said in last_err and in the log (crp_member_complete).
 */
static void judge_check_condition(struct crp_cmd *cmd, const struct crp_sense *s)
{
	if (cmd->result == -CRP_EMEDIUM && crp_cdb_class(cmd) != CRP_OPC_READ)
		cmd->result = -CRP_EMEMBER;
	else if (cmd->result == -EAGAIN && s->key == CRP_SK_NOT_READY)
		cmd->result = -CRP_EMEMBER;
}

void crp_member_complete(struct crp_member *m, struct crp_cmd *cmd)
{
	struct crp_member_counters *c = &m->ctr;
	enum crp_opclass cls = crp_cdb_class(cmd);
	struct crp_sense s = { .valid = false };
	bool sense_ok = cmd->status == CRP_SAM_CHECK_CONDITION &&
			crp_sense_decode(cmd->sense, cmd->sense_len, &s) == 0;

	if (sense_ok && crp_sense_is_unit_attention(&s) && cmd->no_ua_retry) {
		crp_member_note_event(m, ua_event(&s));
	} else if (sense_ok && crp_sense_is_unit_attention(&s)) {
		unsigned ev = ua_event(&s);

		/* A new session's power-on / nexus-loss notice: the loss was
		 * noted when the session dropped.  (A reset, 29h/03h, is
		 * always an event.) */
		if (s.asc == 0x29 && (s.ascq == 0x00 || s.ascq == 0x01 || s.ascq == 0x07) &&
		    atomic_exchange(&m->fresh_nexus, false))
			ev = 0;
		crp_member_note_event(m, ev);
		/*
		 * A write under a reservation that is gone must not land;
		 * anything else is retried within its original deadline
		 * (other hosts' reservation traffic can raise a UA per
		 * command).
		 */
		if (cmd->fence_ns &&
		    (ev & (CRP_EV_RESET | CRP_EV_RES_PREEMPTED | CRP_EV_REG_PREEMPTED))) {
			cmd->status = CRP_SAM_NONE;
			cmd->result = -CRP_ELOCKLOST;
		} else if ((cmd->ua_retries < CRP_UA_RETRIES ||
			    (ev & (CRP_EV_RES_RELEASED | CRP_EV_PARAMS_CHANGED))) &&
			   !atomic_load(&m->failed) && crp_now_ns() < crp_cmd_deadline(cmd)) {
			/* A target may queue one UNIT ATTENTION per reservation
			 * another host released (tgt does, without bound): those
			 * are retried for as long as the deadline allows;
			 * crp_member_drain_ua keeps the queue short. */
			atomic_fetch_add(&c->ua_retries, 1);
			retry(m, cmd, 0);
			return;
		}
	} else if (sense_ok && crp_sense_is_transient_not_ready(&s) && !atomic_load(&m->failed)) {
		/* Becoming ready, or busy with something of its own: ask again
		 * after a pause, for as long as the deadline allows. */
		uint64_t pause = not_ready_pause_ns(cmd->ua_retries);

		if (crp_now_ns() + pause < crp_cmd_deadline(cmd)) {
			atomic_fetch_add(&c->not_ready_retries, 1);
			retry(m, cmd, pause);
			return;
		}
	}

	/* BUSY and TASK SET FULL: the target asks us to try again; a write
	 * under a fence time keeps it (the gate was passed for this send). */
	if ((cmd->status == CRP_SAM_BUSY || cmd->status == CRP_SAM_TASK_SET_FULL) &&
	    cmd->ua_retries < CRP_UA_RETRIES && !atomic_load(&m->failed) &&
	    crp_now_ns() < crp_cmd_deadline(cmd)) {
		atomic_fetch_add(&c->busy_retries, 1);
		retry(m, cmd, 0);
		return;
	}
	if (cmd->status != CRP_SAM_NONE)
		cmd->result = crp_status_error(cmd->status, cmd->sense, cmd->sense_len);
	else if (!cmd->result)
		cmd->result = -EIO;
	cmd->info_valid = sense_ok && s.info_valid;
	cmd->info_lba = cmd->info_valid ? s.info : 0;
	if (sense_ok)
		judge_check_condition(cmd, &s);

	atomic_fetch_add(&c->cmds[cls], 1);
	if (cmd->issued_ns)
		atomic_fetch_add(&c->busy_ns, crp_now_ns() - cmd->issued_ns);
	if (cmd->result == 0) {
		uint32_t moved = cmd->len - CRP_MIN(cmd->resid, cmd->len);

		/* Answered without a power-on notice: none is coming. */
		if (atomic_load(&m->fresh_nexus))
			atomic_store(&m->fresh_nexus, false);

		if (cmd->dir == CRP_DIR_READ)
			atomic_fetch_add(&c->bytes_read, moved);
		else if (cmd->dir == CRP_DIR_WRITE)
			atomic_fetch_add(&c->bytes_written, moved);
	} else if (cmd->result == -CRP_ECONFLICT) {
		atomic_fetch_add(&c->conflicts, 1);
	} else if (cmd->result == -EAGAIN && cmd->no_ua_retry) {
		atomic_fetch_add(&c->ua_retries, 1); /* drained, not an error */
	} else {
		if (cmd->result == -ETIMEDOUT)
			atomic_fetch_add(&c->timeouts, 1);
		else
			atomic_fetch_add(&c->errors, 1);
		record_failure(m, cmd);
		/* Before @done runs: whoever it wakes sees the member failed. */
		if (cmd->result == -CRP_EMEMBER && cmd->status == CRP_SAM_CHECK_CONDITION) {
			char why[sizeof(m->last_err)];

			crp_member_fail_why(m, -CRP_EMEMBER,
					    crp_member_last_error(m, why, sizeof(why)));
		}
	}

	if (cmd->chain) {
		if (cmd->result == 0) {
			crp_member_prepare(m, cmd->chain);
			cmd->chain->status = CRP_SAM_NONE;
			cmd->chain->result = 0;
			cmd->chain->sense_len = 0;
			cmd->chain->ua_retries = 0;
			cmd->chain->nexus_gen = cmd->nexus_gen;
			m->ops->issue(m, cmd->chain);
		} else {
			crp_member_abort(m, cmd->chain, -ECANCELED);
		}
	}
	finish(cmd);
}

const char *crp_member_last_error(struct crp_member *m, char *buf, size_t len)
{
	pthread_mutex_lock(&m->qmu);
	snprintf(buf, len, "%s", m->last_err[0] ? m->last_err : "no error");
	pthread_mutex_unlock(&m->qmu);
	return buf;
}

int crp_member_drain_ua(struct crp_member *m, unsigned max)
{
	enum { BATCH = 32 };
	struct crp_cmd cmds[BATCH];
	unsigned drained = 0;

	/* One first: most of the time nothing is pending. */
	for (int batch = 1; drained < max && !atomic_load(&m->failed); batch = BATCH) {
		struct crp_batch b;
		bool clear = false;
		int r = 0;

		crp_batch_init(&b);
		for (int i = 0; i < batch; i++) {
			struct crp_cmd *c = &cmds[i];

			crp_cmd_init(c);
			crp_cdb_test_unit_ready(c);
			c->no_ua_retry = true;
			crp_batch_add(&b, c);
			crp_member_submit(m, &c, 1);
		}
		crp_batch_wait(&b);
		crp_batch_destroy(&b);
		for (int i = 0; i < batch; i++) {
			if (cmds[i].result == 0)
				clear = true;
			else if (cmds[i].result == -EAGAIN)
				drained++;
			else if (!r)
				r = cmds[i].result;
		}
		if (clear || r)
			return r;
	}
	return 0;
}

/* Completion groups. */

void crp_batch_init(struct crp_batch *b)
{
	pthread_mutex_init(&b->mu, NULL);
	pthread_cond_init(&b->cv, NULL);
	b->pending = 0;
}

void crp_batch_destroy(struct crp_batch *b)
{
	pthread_cond_destroy(&b->cv);
	pthread_mutex_destroy(&b->mu);
}

static void batch_done(struct crp_cmd *cmd)
{
	struct crp_batch *b = cmd->priv;

	pthread_mutex_lock(&b->mu);
	if (--b->pending == 0)
		pthread_cond_broadcast(&b->cv);
	pthread_mutex_unlock(&b->mu);
}

void crp_batch_add(struct crp_batch *b, struct crp_cmd *cmd)
{
	cmd->done = batch_done;
	cmd->priv = b;
	pthread_mutex_lock(&b->mu);
	b->pending++;
	pthread_mutex_unlock(&b->mu);
}

void crp_batch_wait(struct crp_batch *b)
{
	pthread_mutex_lock(&b->mu);
	while (b->pending > 0)
		pthread_cond_wait(&b->cv, &b->mu);
	pthread_mutex_unlock(&b->mu);
}

int crp_member_exec(struct crp_member *m, struct crp_cmd *cmd)
{
	struct crp_batch b;

	crp_batch_init(&b);
	crp_batch_add(&b, cmd);
	crp_member_submit(m, &cmd, 1);
	crp_batch_wait(&b);
	crp_batch_destroy(&b);
	return cmd->result;
}

static int check_range(struct crp_member *m, uint64_t off, uint32_t len)
{
	if (off % m->block_size || len % m->block_size || off + len > m->size || off + len < off)
		return -EINVAL;
	return 0;
}

int crp_member_read(struct crp_member *m, uint64_t off, void *buf, uint32_t len)
{
	struct crp_cmd cmd;
	int r = check_range(m, off, len);

	if (r < 0)
		return r;
	crp_cmd_init(&cmd);
	crp_cdb_read16(&cmd, off / m->block_size, len / m->block_size, buf, len);
	return crp_member_exec(m, &cmd);
}

int crp_member_write(struct crp_member *m, uint64_t off, const void *buf, uint32_t len)
{
	struct crp_cmd cmd;
	int r = check_range(m, off, len);

	if (r < 0)
		return r;
	crp_cmd_init(&cmd);
	crp_cdb_write16(&cmd, off / m->block_size, len / m->block_size, buf, len, false);
	return crp_member_exec(m, &cmd);
}

int crp_member_sync(struct crp_member *m)
{
	struct crp_cmd cmd;

	crp_cmd_init(&cmd);
	crp_cdb_sync_cache16(&cmd);
	return crp_member_exec(m, &cmd);
}

static int probe_cmd(struct crp_member *m, struct crp_cmd *cmd, char *err, size_t errlen)
{
	int r = crp_member_exec(m, cmd);
	char sense[160];

	if (r == 0)
		return 0;
	if (cmd->status == CRP_SAM_CHECK_CONDITION)
		snprintf(err, errlen, "member '%s': %s failed: %s", m->spec.text, crp_cdb_name(cmd),
			 crp_sense_text(cmd->sense, cmd->sense_len, sense, sizeof(sense)));
	else
		snprintf(err, errlen, "member '%s': %s failed: %s", m->spec.text, crp_cdb_name(cmd),
			 crp_strerror(r));
	return r;
}

int crp_member_probe(struct crp_member *m, char *err, size_t errlen)
{
	struct crp_cmd cmd;
	uint8_t cap[32];
	uint64_t nblocks;
	uint32_t bs;
	int r;

	crp_cmd_init(&cmd);
	crp_cdb_test_unit_ready(&cmd);
	r = probe_cmd(m, &cmd, err, errlen);
	/* RESERVATION CONFLICT: the unit answers, another host holds a lock. */
	if (r < 0 && r != -CRP_ECONFLICT)
		return r;
	crp_cmd_init(&cmd);
	memset(cap, 0, sizeof(cap));
	crp_cdb_read_capacity16(&cmd, cap, sizeof(cap));
	r = probe_cmd(m, &cmd, err, errlen);
	if (r < 0)
		return r;
	r = crp_parse_read_capacity16(cap, sizeof(cap) - cmd.resid, &nblocks, &bs);
	if (r < 0 || !bs || !nblocks) {
		snprintf(err, errlen, "member '%s': READ CAPACITY(16) returned data that does not parse",
			 m->spec.text);
		return r < 0 ? r : -EINVAL;
	}
	m->block_size = bs;
	m->size = nblocks * bs;
	/* A fresh nexus has lost nothing: forget the power-on UNIT ATTENTION. */
	crp_member_take_events(m);
	return 0;
}

int crp_member_lun_reset(struct crp_member *m)
{
	if (atomic_load(&m->failed))
		return -CRP_EMEMBER;
	return m->ops->lun_reset(m);
}

int crp_member_thread_start(struct crp_member *m, pthread_t *thread, void *(*fn)(void *),
			    void *arg, char *err, size_t errlen)
{
	int r = pthread_create(thread, NULL, fn, arg);

	if (r) {
		snprintf(err, errlen, "member '%s': cannot start the I/O thread: %s", m->spec.text,
			 strerror(r));
		return -r;
	}
	return 0;
}

void crp_member_kick_fd(struct crp_member *m, int efd)
{
	uint64_t one = 1;

	if (write(efd, &one, sizeof(one)) < 0 && errno != EAGAIN)
		crp_warn("member %s: cannot wake the I/O thread: %s", m->spec.text, strerror(errno));
}

void crp_member_thread_stop(struct crp_member *m, pthread_t thread, atomic_bool *stop, int efd)
{
	atomic_store(stop, true);
	crp_member_kick_fd(m, efd);
	pthread_join(thread, NULL);
}
