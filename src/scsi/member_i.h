/*
 * Private to the member layer and its transports.
 *
 * A transport supplies struct crp_transport_ops and runs the member's I/O
 * thread.  The generic code in member.c owns the submission queue, the
 * counters, UNIT ATTENTION retries and command chaining; a transport only
 * moves bytes:
 *
 *   I/O thread loop:
 *     cmds = crp_member_dequeue(m)            take everything queued, in order
 *     for each: crp_member_prepare(m, cmd)     stamps issue time and deadline
 *               send it (or execute it)
 *     on each completion: fill cmd->status, sense, resid, then
 *               crp_member_complete(m, cmd)     may call ops->issue() for a
 *                                               retry or a chained command;
 *                                               a retry may carry
 *                                               cmd->not_before_ns: send it
 *                                               no sooner (NOT READY)
 *     a command past cmd->deadline_ns: crp_member_fail(m, -ETIMEDOUT) and
 *               complete it with status CRP_SAM_NONE, result -ETIMEDOUT
 */
#ifndef CRPFS_MEMBER_I_H
#define CRPFS_MEMBER_I_H

#include "crpfs/member.h"

struct crp_transport_ops {
	const char *name;
	/* Open the nexus, fill m->size and m->block_size, start the I/O thread. */
	int (*open)(struct crp_member *m, char *err, size_t errlen);
	/* Stop the I/O thread, complete anything outstanding, close the nexus. */
	void (*close)(struct crp_member *m);
	/* Commands were queued: wake the I/O thread.  Any thread. */
	void (*kick)(struct crp_member *m);
	/*
	 * Send @cmd now, ahead of anything still queued, or once the clock
	 * has passed cmd->not_before_ns when that is set (a NOT READY retry:
	 * the pause is at most 250 ms).  Called only from the I/O thread, or
	 * from whoever executes in its place (run_now), by crp_member_complete
	 * for retries and chains; must not complete @cmd before returning.
	 */
	void (*issue)(struct crp_member *m, struct crp_cmd *cmd);
	/*
	 * Optional: execute and complete @cmds in the calling thread, in
	 * order, if the transport can do so now without reordering anything
	 * queued; false to have them queued and kicked as usual.
	 */
	bool (*run_now)(struct crp_member *m, struct crp_cmd *const *cmds, int n);
	/* Logical unit reset; any thread other than the I/O thread. */
	int (*lun_reset)(struct crp_member *m);
};

extern const struct crp_transport_ops crp_transport_file;
extern const struct crp_transport_ops crp_transport_iscsi;
extern const struct crp_transport_ops crp_transport_sg;

struct crp_member {
	struct crp_spec spec;
	char host[256];
	struct crp_member_opts opts; /* opts.host points at host[] */
	const struct crp_transport_ops *ops;
	void *tp; /* the transport's state */

	uint64_t size;	     /* bytes; set by ops->open */
	uint32_t block_size; /* bytes; set by ops->open */

	atomic_int failed;     /* 0, or the negative error that failed it */
	atomic_uint events;    /* CRP_EV_* */
	struct crp_member_counters ctr;

	/* Nexus losses so far; changed under qmu with CRP_EV_NEXUS_LOST. */
	atomic_uint nexus_gen;
	atomic_bool reconnecting; /* set and cleared by the transport */
	atomic_bool fresh_nexus;  /* logged in again, no command answered yet: its
				     power-on UNIT ATTENTION tells of the loss
				     already noted (crp_member_complete) */

	pthread_mutex_t qmu;	/* protects qhead, qtail, last_err, gen_seen */
	struct crp_cmd *qhead;
	struct crp_cmd *qtail;
	char last_err[256];
	/* nexus_gen when CRP_EV_NEXUS_LOST was last taken: what a submitter
	 * knows of (stamped into each command as cmd->nexus_gen). */
	unsigned gen_seen;
};

/* Take every queued command, in submission order (NULL-terminated list
 * through q_next). */
struct crp_cmd *crp_member_dequeue(struct crp_member *m);

/* Stamp @cmd as issued now, with its deadline. */
void crp_member_prepare(struct crp_member *m, struct crp_cmd *cmd);
/* Set a command up as crp_member_submit does (for ops->run_now). */
void crp_member_cmd_reset(struct crp_member *m, struct crp_cmd *cmd);

/* Right before @cmd goes to the device: 0, or the error to complete it
 * with unsent: -CRP_EFENCED (its fence time has passed: see struct
 * crp_cmd), -CRP_ELOCKLOST (it relies on a reservation of a nexus lost
 * since its submitter last took CRP_EV_NEXUS_LOST). */
int crp_member_may_send(struct crp_member *m, const struct crp_cmd *cmd);
/* The deadline of @cmd, moved out by the time this process stalled since
 * it was issued (src/util/stall.c): what a transport times it out by. */
uint64_t crp_cmd_deadline(const struct crp_cmd *cmd);

/* The nexus is gone with every reservation it held (I/O thread): counts
 * the loss and notes CRP_EV_NEXUS_LOST, before any command completes
 * with it. */
void crp_member_nexus_lost(struct crp_member *m);

/*
 * A command completed (status, sense, resid filled, or status CRP_SAM_NONE
 * with result set to a transport error).  Counts it, retries UNIT
 * ATTENTION through ops->issue, issues the chain on GOOD, and runs @done.
 * I/O thread only.
 */
void crp_member_complete(struct crp_member *m, struct crp_cmd *cmd);

/* Complete @cmd with a transport error without it reaching the unit. */
void crp_member_abort(struct crp_member *m, struct crp_cmd *cmd, int err);
/*
 * A command the lost session took with it (I/O thread, after
 * crp_member_nexus_lost): one that changes nothing and relies on no
 * reservation (a READ without a fence, TEST UNIT READY, INQUIRY, READ
 * CAPACITY, PERSISTENT RESERVE IN) goes back on the queue, to be sent on
 * the new session with a fresh deadline once logged in again, instead of
 * failing; at most CRP_LOST_RESENDS times.  Returns true if it was queued
 * (it does not complete now).  A WRITE or a lock command never is: what
 * it did is unknown and its reservation is gone.
 */
#define CRP_LOST_RESENDS 4
bool crp_member_resend(struct crp_member *m, struct crp_cmd *cmd);

/* Mark the member failed with @err (first reason sticks) and log it. */
void crp_member_fail(struct crp_member *m, int err);
/* The same, logging @why (what the target said, why the session could not
 * be had) instead of the text of @err when it is not NULL or empty; @why
 * becomes the member's last error too. */
void crp_member_fail_why(struct crp_member *m, int err, const char *why);

/*
 * Once a transport's nexus is up and its I/O thread runs: TEST UNIT READY
 * (a reservation conflict still proves the unit answers), READ CAPACITY(16)
 * for m->size and m->block_size, and forget the power-on UNIT ATTENTION.
 * Any thread but the I/O thread.
 */
int crp_member_probe(struct crp_member *m, char *err, size_t errlen);

/* Record an event bit (CRP_EV_*). */
void crp_member_note_event(struct crp_member *m, unsigned ev);

/*
 * A transport's I/O thread: start @fn(@arg) into @thread; 0, or a negative
 * errno with "member 'SPEC': cannot start the I/O thread: ..." in @err.
 */
int crp_member_thread_start(struct crp_member *m, pthread_t *thread, void *(*fn)(void *),
			    void *arg, char *err, size_t errlen);

/* Wake an I/O thread that polls the eventfd @efd (any thread); a failed
 * write is logged, not returned. */
void crp_member_kick_fd(struct crp_member *m, int efd);

/* Stop an I/O thread that polls the eventfd @efd and checks @stop: set
 * @stop, wake it, and wait for it to exit. */
void crp_member_thread_stop(struct crp_member *m, pthread_t thread, atomic_bool *stop, int efd);

#endif
