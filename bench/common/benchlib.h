/*
 * What every benchmark program needs around its measurements: dying with a
 * message that names the benchmark, and running a tool (mkfs.crpfs) to its
 * end without letting it write into the table on standard output.
 */
#ifndef CRPFS_BENCHLIB_H
#define CRPFS_BENCHLIB_H

#include <sys/types.h>

/* The name bench_die puts in front of its message ("bench_ops"). */
void bench_set_name(const char *name);

/* Print "NAME: message" on standard error and exit 1. */
void bench_die(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));

/* Fork and exec @argv (a full path) with stdin from /dev/null and stdout
 * to our stderr (the table is ours alone); the child dies with us.  Only
 * async-signal-safe calls in the child.  The PID, or -errno. */
pid_t bench_spawn(char *const argv[]);

/* bench_spawn, and wait for the end: 0 if it exited 0, else a negative
 * error. */
int bench_run(char *const argv[]);

#endif
