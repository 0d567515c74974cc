/*
 * Stalls: time this process wanted to run and did not.
 *
 * A command timeout says how long a target may leave a command unanswered
 * before the member is taken for dead.  It is measured on this host's
 * monotonic clock, which keeps running while the process is stopped
 * (SIGSTOP, a debugger), its virtual machine is paused or migrated, or its
 * CPU is starved.  A host paused for longer than the timeout would then
 * fail a member whose answer has been waiting in a socket, or whose
 * command was still in our own queue, and record it failed in the member
 * table for every host.  A pause on this side proves nothing about the
 * target, so the member layer does not count it: each command's deadline
 * moves out by the stall time that passed since it was issued.
 *
 * A watcher thread ticks every STALL_TICK_NS.  A tick late by more than
 * STALL_SLACK_NS (the thread could not run) adds its lateness to the total.
 * A reader also counts a stall still in progress: after a resume, a
 * thread that checks a deadline before the watcher has run again must not
 * judge it by a clock that includes the pause.  The total only grows.
 *
 * Across fork() only the forking thread survives: the watcher is known to
 * run only in the process that started it, and a child starts its own at
 * its first member open.
 */
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <unistd.h>

#include "crpfs/log.h"
#include "crpfs/util.h"

#define STALL_TICK_NS 50000000ull   /* 50 ms */
#define STALL_SLACK_NS 200000000ull /* later than this: the process did not run */

/* The watcher writes total and tick under a sequence count (odd while it
 * writes); readers retry until they see one version of both.  No lock, so
 * that a fork() can never leave one held in the child. */
static atomic_int stall_pid;	      /* the process whose watcher runs, 0: none */
static atomic_int stall_self;	      /* getpid(), kept by an atfork handler: it is
					 asked at every deadline check */
static atomic_uint stall_seq;
static atomic_uint_fast64_t stall_total; /* stall time counted so far */
static atomic_uint_fast64_t stall_tick;  /* the watcher's last tick */

/* Stall time since @last at @now, beyond what a tick may take. */
static uint64_t late(uint64_t now, uint64_t last)
{
	uint64_t gap = now > last ? now - last : 0;

	return gap > STALL_TICK_NS + STALL_SLACK_NS ? gap - STALL_TICK_NS : 0;
}

static void *watch(void *arg)
{
	(void)arg;
	for (;;) {
		uint64_t now, add;

		crp_sleep_ns(STALL_TICK_NS);
		now = crp_now_ns();
		add = late(now, atomic_load(&stall_tick));
		atomic_fetch_add(&stall_seq, 1);
		atomic_fetch_add(&stall_total, add);
		atomic_store(&stall_tick, now);
		atomic_fetch_add(&stall_seq, 1);
		if (add >= 1000000000ull)
			crp_info("this process did not run for %llu ms (stopped, paused or starved); "
				 "command timeouts do not count it",
				 (unsigned long long)(add / 1000000));
	}
	return NULL;
}

static void forked_child(void)
{
	atomic_store(&stall_self, (int)getpid());
}

static void atfork_once(void)
{
	(void)pthread_atfork(NULL, NULL, forked_child);
}

void crp_stall_watch(void)
{
	static pthread_once_t once = PTHREAD_ONCE_INIT;
	pthread_attr_t at;
	pthread_t th;
	int me = (int)getpid(), was = atomic_load(&stall_pid);

	if (was == me || !atomic_compare_exchange_strong(&stall_pid, &was, me))
		return;
	atomic_store(&stall_self, me);
	(void)pthread_once(&once, atfork_once);
	atomic_fetch_add(&stall_seq, 1);
	atomic_store(&stall_tick, crp_now_ns());
	atomic_fetch_add(&stall_seq, 1);
	pthread_attr_init(&at);
	pthread_attr_setdetachstate(&at, PTHREAD_CREATE_DETACHED);
	pthread_attr_setstacksize(&at, 64 * 1024);
	if (pthread_create(&th, &at, watch, NULL) != 0) {
		atomic_store(&stall_pid, 0);
		crp_warn("cannot start the stall watcher: a pause of this process may count "
			 "against command timeouts");
	}
	pthread_attr_destroy(&at);
}

uint64_t crp_stall_ns(void)
{
	uint64_t total, tick;
	unsigned seq;
	int pid = atomic_load(&stall_pid);
	bool live = pid && pid == atomic_load(&stall_self);

	for (;;) {
		seq = atomic_load(&stall_seq);
		if (seq & 1) {
			sched_yield(); /* the watcher is writing */
			continue;
		}
		total = atomic_load(&stall_total);
		tick = atomic_load(&stall_tick);
		if (seq == atomic_load(&stall_seq))
			break;
	}
	return live ? total + late(crp_now_ns(), tick) : total;
}
