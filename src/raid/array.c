/*
 * The array: opening members, the read path (unlocked, retried on another
 * host's reservation, rebuilt from parity around a failed member under
 * the stripe's parity lock), the
 * write path (one stripe transaction per stripe, stripe.c), verification
 * and repair of a stripe, and breaking a dead host's locks.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define XXH_INLINE_ALL
#include <xxhash.h>

#include "crpfs/err.h"
#include "crpfs/log.h"
#include "crpfs/parity.h"
#include "crpfs/util.h"
#include "array_i.h"

uint64_t crp_pr_key_for_host(const char *host)
{
	uint64_t k = XXH3_64bits(host, strlen(host)) & 0xffffffff00000000ull;

	k |= crp_random() & 0xffffffffull;
	return k ? k : 1;
}

/* One PERSISTENT RESERVE OUT on member @i, waited for. */
static int pr_out(struct crp_array *a, int i, uint8_t sa, uint8_t type, uint64_t key,
		  uint64_t sa_key)
{
	struct crp_cmd c;
	uint8_t param[24];

	crp_cmd_init(&c);
	crp_cdb_pr_out(&c, sa, type, key, sa_key, param);
	return crp_member_exec(a->m[i], &c);
}

/*
 * pr mode: our session to member @i was lost and made again: the new
 * I_T nexus may not carry our registration.  Register the key again; a
 * host that was declared dead meanwhile gains nothing by it, since every
 * write first passes the lease (the gate), which finds the slot taken.
 */
void crp_array_pr_reregister(struct crp_array *a, int i)
{
	unsigned gen;
	int r;

	if (a->opts.lock_mode != CRP_LOCK_PR || crp_member_failed(a->m[i]))
		return;
	gen = crp_member_nexus_gen(a->m[i]);
	r = pr_out(a, i, CRP_PROUT_REGISTER_IGNORE, 0, 0, a->pr_key);
	if (r < 0)
		crp_warn("member %s: registering our key again after a lost session failed: %s",
			 crp_member_spec(a->m[i]), crp_strerror(r));
	else
		atomic_store(&a->reg_gen[i], gen);
}

int crp_array_open(const char *const *specs, int n, const struct crp_array_opts *opts,
		   struct crp_array **out, char *err, size_t errlen)
{
	return crp_array_open_degraded(specs, n, opts, 0, NULL, out, err, errlen);
}

int crp_array_open_degraded(const char *const *specs, int n, const struct crp_array_opts *opts,
			    int tolerate, char (*why)[256], struct crp_array **out, char *err,
			    size_t errlen)
{
	struct crp_array *a;
	struct crp_member_opts mo = { 0 };
	int r = 0, absent = 0;

	*out = NULL;
	if (n < 1 || n > CRP_MAX_MEMBERS) {
		snprintf(err, errlen, "an array has 1 to %d members, not %d", CRP_MAX_MEMBERS, n);
		return -EINVAL;
	}
	a = calloc(1, sizeof(*a));
	if (!a)
		return -ENOMEM;
	if (opts)
		a->opts = *opts;
	if (!a->opts.timeout_ms)
		a->opts.timeout_ms = CRP_DEFAULT_TIMEOUT_MS;
	if (a->opts.host && a->opts.host[0])
		snprintf(a->host, sizeof(a->host), "%s", a->opts.host);
	else if (gethostname(a->host, sizeof(a->host) - 1) < 0 || !a->host[0])
		snprintf(a->host, sizeof(a->host), "localhost");
	a->opts.host = a->host;
	a->pr_key = a->opts.pr_key ? a->opts.pr_key : crp_pr_key_for_host(a->host);
	if (a->opts.max_hold_us == UINT32_MAX)
		a->max_hold_ns = 0;
	else
		a->max_hold_ns = (uint64_t)(a->opts.max_hold_us ? a->opts.max_hold_us :
					    CRP_DEFAULT_MAX_HOLD_US) * 1000ull;
	for (int i = 0; i < CRP_MAX_MEMBERS; i++)
		crp_mlock_init(&a->lk[i]);
	pthread_mutex_init(&a->meta_mu, NULL);
	{
		pthread_condattr_t ca;

		pthread_condattr_init(&ca);
		pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
		pthread_cond_init(&a->meta_cv, &ca);
		pthread_condattr_destroy(&ca);
	}
	pthread_mutex_init(&a->retire_mu, NULL);
	pthread_mutex_init(&a->scratch_mu, NULL);

	mo.host = a->host;
	mo.timeout_ms = a->opts.timeout_ms;
	mo.create = a->opts.create;
	mo.create_size = a->opts.create_size;
	a->min_size = UINT64_MAX;
	for (int i = 0; i < n; i++) {
		char e[256] = "";

		if (why)
			why[i][0] = '\0';
		for (int j = 0; j < i; j++) {
			if (!crp_spec_is_missing(specs[i]) && !crp_spec_is_missing(specs[j]) &&
			    !strcmp(specs[i], specs[j])) {
				snprintf(err, errlen, "member '%s' is given twice", specs[i]);
				r = -EINVAL;
				goto out;
			}
		}
		if (crp_spec_is_missing(specs[i])) {
			snprintf(e, sizeof(e), "named missing");
			r = -CRP_EMEMBER;
		} else {
			r = crp_member_open(specs[i], &mo, &a->m[i], e, sizeof(e));
		}
		if (r < 0) {
			if (r == -ENOMEM || r == -CRP_EBADSPEC || absent >= tolerate) {
				snprintf(err, errlen, "%s", e);
				goto out;
			}
			absent++;
			if (why)
				snprintf(why[i], 256, "%s", e);
			r = crp_member_open_absent(crp_spec_is_missing(specs[i]) ? "missing" : specs[i],
						   -CRP_EMEMBER, &a->m[i]);
			if (r < 0)
				goto out;
			atomic_store(&a->mstate[i], CRP_AM_FAILED);
			a->n = i + 1;
			continue;
		}
		atomic_store(&a->mstate[i], CRP_AM_IN_SYNC);
		a->n = i + 1;
		a->block_size = CRP_MAX(a->block_size, crp_member_block_size(a->m[i]));
		a->min_size = CRP_MIN(a->min_size, crp_member_size(a->m[i]));
	}
	if (absent == n) {
		snprintf(err, errlen, "no member could be opened");
		r = -CRP_EDEGRADED;
		goto out;
	}
	if (a->opts.lock_mode == CRP_LOCK_PR) {
		for (int i = 0; i < n; i++) {
			if (crp_member_failed(a->m[i]))
				continue;
			atomic_store(&a->reg_gen[i], crp_member_nexus_gen(a->m[i]));
			r = pr_out(a, i, CRP_PROUT_REGISTER_IGNORE, 0, 0, a->pr_key);
			if (r < 0) {
				snprintf(err, errlen,
					 "member '%s': PERSISTENT RESERVE OUT REGISTER failed: %s "
					 "(does the target support persistent reservations?)",
					 specs[i], crp_strerror(r));
				goto out;
			}
		}
	}
	*out = a;
	a = NULL;
out:
	if (a)
		crp_array_close(a);
	return r;
}

void crp_array_close(struct crp_array *a)
{
	if (!a)
		return;
	crp_array_drop_locks(a);
	if (a->opts.lock_mode == CRP_LOCK_PR) {
		/* Unregister: a zero service action key removes our registration. */
		for (int i = 0; i < a->n; i++)
			if (!crp_member_failed(a->m[i]))
				pr_out(a, i, CRP_PROUT_REGISTER_IGNORE, 0, 0, 0);
	}
	for (int i = 0; i < a->n; i++)
		crp_member_close(a->m[i]);
	for (int i = 0; i < a->nretired; i++)
		crp_member_close(a->retired[i]);
	for (int i = 0; i < CRP_MAX_MEMBERS; i++)
		crp_mlock_destroy(&a->lk[i]);
	pthread_cond_destroy(&a->meta_cv);
	pthread_mutex_destroy(&a->meta_mu);
	pthread_mutex_destroy(&a->retire_mu);
	pthread_mutex_destroy(&a->scratch_mu);
	free(a->scratch);
	free(a);
}

int crp_array_set_geometry(struct crp_array *a, const struct crp_geom *g)
{
	if (g->nmembers != a->n || g->chunk % a->block_size || g->data_offset % a->block_size)
		return -CRP_EGEOMETRY;
	if (g->data_offset + g->nstripes * (uint64_t)g->chunk > a->min_size)
		return -CRP_EGEOMETRY;
	a->g = *g;
	a->has_geom = true;
	return 0;
}

const struct crp_geom *crp_array_geom(const struct crp_array *a)
{
	return &a->g;
}

int crp_array_nmembers(const struct crp_array *a)
{
	return a->n;
}

struct crp_member *crp_array_member(struct crp_array *a, int i)
{
	return i >= 0 && i < a->n ? a->m[i] : NULL;
}

uint64_t crp_array_min_member_size(const struct crp_array *a)
{
	return a->min_size;
}

uint32_t crp_array_block_size(const struct crp_array *a)
{
	return a->block_size;
}

struct crp_host_counters *crp_array_counters(struct crp_array *a)
{
	return &a->ctr;
}

enum crp_lock_mode crp_array_lock_mode(const struct crp_array *a)
{
	return a->opts.lock_mode;
}

uint64_t crp_array_pr_key(const struct crp_array *a)
{
	return a->pr_key;
}

void crp_array_set_txn_hook(struct crp_array *a, crp_txn_hook_fn fn, void *ctx)
{
	a->txn_hook = fn;
	a->txn_hook_ctx = ctx;
}

static int check_io(const struct crp_array *a, uint64_t off, size_t len)
{
	if (!a->has_geom)
		return -CRP_EGEOMETRY;
	if (off % a->block_size || len % a->block_size)
		return -EINVAL;
	if (off + len < off || off + len > crp_geom_capacity(&a->g))
		return -ERANGE;
	return 0;
}

/*
 * Rebuild rows [off, off+len) of stripe @s's member @bad from the others
 * into @out; with @bad2 >= 0 (not @bad), member @bad2 is taken as missing
 * too and its rows go to @out2 (RAID-6: two columns from P and Q).  Reads
 * are unlocked (the caller holds locks if it needs them).
 */
static int rebuild_rows_once(struct crp_array *a, uint64_t s, int bad, int bad2, uint32_t off,
			     uint32_t len, uint8_t *out, uint8_t *out2, int *medium)
{
	const struct crp_geom *g = &a->g;
	struct crp_cmd cmds[CRP_MAX_MEMBERS];
	void *data[CRP_MAX_MEMBERS];
	bool skip[CRP_MAX_MEMBERS];
	uint8_t *mem, *p = NULL, *q = NULL;
	int fail[2], nfail = 0, r = 0, pm, qm, role;
	struct crp_batch b;

	mem = crp_alloc_buf((size_t)len * (size_t)(g->ndata + 2));
	if (!mem)
		return -ENOMEM;
	crp_geom_parity(g, s, &pm, &qm);
	for (int d = 0; d < g->ndata; d++)
		data[d] = mem + (size_t)d * len;
	p = mem + (size_t)g->ndata * len;
	if (qm >= 0)
		q = p + len;

	crp_batch_init(&b);
	for (int m = 0; m < a->n; m++) {
		struct crp_cmd *c = &cmds[m];
		uint32_t bs = crp_member_block_size(a->m[m]);
		uint64_t moff = crp_geom_member_off(g, s, off);
		void *buf;

		role = crp_geom_role(g, s, m);
		buf = role == CRP_ROLE_P ? (void *)p : role == CRP_ROLE_Q ? (void *)q : data[role];
		skip[m] = m == bad || m == bad2 || !crp_array_readable(a, m);
		if (skip[m]) {
			if (nfail == 2) {
				r = -CRP_EDEGRADED;
				continue;
			}
			fail[nfail++] = role == CRP_ROLE_P ? g->ndata :
					role == CRP_ROLE_Q ? g->ndata + 1 : role;
			continue;
		}
		crp_cmd_init(c);
		crp_cdb_read16(c, moff / bs, len / bs, buf, len);
		crp_batch_add(&b, c);
		crp_member_submit(a->m[m], &c, 1);
	}
	crp_batch_wait(&b);
	crp_batch_destroy(&b);
	if (r < 0)
		goto out;
	for (int m = 0; m < a->n; m++) {
		if (skip[m])
			continue;
		if (cmds[m].result) {
			r = cmds[m].result;
			if (r == -CRP_EMEDIUM && medium)
				*medium = m;
			goto out;
		}
	}
	if (nfail == 2 && !q) {
		r = -CRP_EDEGRADED;
		goto out;
	}
	r = crp_parity_rebuild(g->ndata, len, data, p, q, fail, nfail);
	if (r < 0)
		goto out;
	role = crp_geom_role(g, s, bad);
	memcpy(out, role == CRP_ROLE_P ? p : role == CRP_ROLE_Q ? q : (uint8_t *)data[role], len);
	if (bad2 >= 0 && out2) {
		role = crp_geom_role(g, s, bad2);
		memcpy(out2, role == CRP_ROLE_P ? p : role == CRP_ROLE_Q ? q : (uint8_t *)data[role],
		       len);
	}
out:
	free(mem);
	return r;
}

/*
 * The same, once more if a member failed meanwhile (it is left out then).
 * On RAID-6, with one column to rebuild, a member whose read of these rows
 * fails with MEDIUM ERROR is taken as missing too: *@also is set to it and
 * its rows go to @out2 (scratch if NULL), for the caller to write back.
 */
static int rebuild_rows(struct crp_array *a, uint64_t s, int bad, int bad2, uint32_t off,
			uint32_t len, uint8_t *out, uint8_t *out2, int *also)
{
	int medium = -1, pm, qm;
	int r = rebuild_rows_once(a, s, bad, bad2, off, len, out, out2, &medium);

	if (r < 0 && crp_array_note_failures(a))
		r = rebuild_rows_once(a, s, bad, bad2, off, len, out, out2, &medium);
	crp_geom_parity(&a->g, s, &pm, &qm);
	if (r == -CRP_EMEDIUM && bad2 < 0 && medium >= 0 && qm >= 0) {
		uint8_t *scratch = out2 ? NULL : crp_alloc_buf(len);

		if (!out2 && !scratch)
			return -ENOMEM;
		r = rebuild_rows_once(a, s, bad, medium, off, len, out, out2 ? out2 : scratch,
				      NULL);
		free(scratch);
		if (r == 0 && also)
			*also = medium;
	}
	return r;
}

static __thread bool t_optimistic;
static __thread uint64_t t_reads;

void crp_array_optimistic(bool on)
{
	t_optimistic = on;
}

uint64_t crp_array_thread_reads(void)
{
	return t_reads;
}

struct piece {
	uint64_t s;
	int member;
	uint32_t off, len;
	uint8_t *buf;
};

static int lock_set(struct crp_array *a, const int *set, int n, bool *took);

/*
 * Rebuild piece @p of a read (its member is not readable) from the rest of
 * its stripe, holding the stripe's parity meanwhile.  A writer holds the
 * parity from before it reads the stripe until every WRITE of its update
 * has landed (stripe.c), so while the parity is ours no writer is half way
 * through the stripe and the chunks read are one version of it.  Without
 * it, in pr mode (a Write Exclusive reservation lets reads through) a new
 * parity read beside an old data chunk gave back a chunk nobody wrote.
 *
 * Only once the array has its gate (the cluster layer joined).  Before,
 * a dead host's pr reservation stays until its recovery, which comes after
 * the join, and waiting for it would fail the mount; the reads of a mount
 * are metadata, whose checksums catch a torn rebuild.
 */
static int read_rebuild(struct crp_array *a, const struct piece *p)
{
	bool took[CRP_MAX_MEMBERS] = { false };
	int par[2], np = 0, pm, qm, r;

	crp_geom_parity(&a->g, p->s, &pm, &qm);
	if (a->gate) {
		/* Ascending, as local ownership is taken. */
		if (qm >= 0 && qm < pm && crp_array_readable(a, qm))
			par[np++] = qm;
		if (pm >= 0 && crp_array_readable(a, pm))
			par[np++] = pm;
		if (qm > pm && crp_array_readable(a, qm))
			par[np++] = qm;
	}
	crp_mlock_take_local(a, par, np);
	r = lock_set(a, par, np, took);
	if (r == 0)
		r = rebuild_rows(a, p->s, p->member, -1, p->off, p->len, p->buf, NULL, NULL);
	/* Released as a transaction releases its parity: not waited for. */
	for (int k = 0; k < np; k++) {
		struct crp_cmd *rel;

		if (!took[par[k]] || !a->lk[par[k]].reserved)
			continue;
		rel = crp_lock_release_cmd(a, par[k]);
		if (rel)
			crp_member_submit(a->m[par[k]], &rel, 1);
		else
			crp_lock_release_now(a, &par[k], 1);
	}
	crp_mlock_give_local(a, par, np);
	return r;
}

int crp_array_read(struct crp_array *a, uint64_t off, void *buf, size_t len)
{
	uint64_t deadline;
	unsigned attempt = 0;
	struct piece *pc = NULL;
	struct crp_cmd *cmds = NULL;
	bool *done = NULL;
	size_t np = 0, cap;
	int r = check_io(a, off, len);

	if (r < 0 || len == 0)
		return r;
	t_reads++;
	cap = len / a->g.chunk + 2;
	pc = calloc(cap, sizeof(*pc));
	cmds = calloc(cap, sizeof(*cmds));
	done = calloc(cap, sizeof(*done));
	if (!pc || !cmds || !done) {
		r = -ENOMEM;
		goto out;
	}
	for (size_t o = 0; o < len; np++) {
		struct crp_loc loc;
		uint32_t n;

		crp_geom_map(&a->g, off + o, &loc);
		n = (uint32_t)CRP_MIN((uint64_t)(a->g.chunk - loc.chunk_off), len - o);
		pc[np] = (struct piece){ loc.stripe, loc.member, loc.chunk_off, n, (uint8_t *)buf + o };
		o += n;
	}

	deadline = crp_lock_deadline_ns(a);
	for (;;) {
		struct crp_batch b;
		bool conflict = false;

		crp_batch_init(&b);
		for (size_t i = 0; i < np; i++) {
			struct crp_member *m = a->m[pc[i].member];
			uint32_t bs = crp_member_block_size(m);
			struct crp_cmd *c = &cmds[i];

			if (done[i] || !crp_array_readable(a, pc[i].member))
				continue;
			crp_cmd_init(c);
			crp_cdb_read16(c, crp_geom_member_off(&a->g, pc[i].s, pc[i].off) / bs,
				       pc[i].len / bs, pc[i].buf, pc[i].len);
			crp_batch_add(&b, c);
			crp_member_submit(m, &c, 1);
		}
		crp_batch_wait(&b);
		crp_batch_destroy(&b);
		crp_array_note_failures(a);
		for (size_t i = 0; i < np; i++) {
			if (done[i])
				continue;
			if (t_optimistic && (!crp_array_readable(a, pc[i].member) ||
					     cmds[i].result == -CRP_EMEDIUM ||
					     cmds[i].result == -CRP_ECONFLICT)) {
				r = -CRP_ERETRY;
				goto out;
			}
			if (!crp_array_readable(a, pc[i].member)) {
				/* Degraded: rebuild this piece from the rest of its stripe
				 * (a member of it reserved by another host: retried). */
				r = read_rebuild(a, &pc[i]);
				if (r == -CRP_ECONFLICT) {
					conflict = true;
					continue;
				}
				if (r < 0)
					goto out;
				atomic_fetch_add(&a->ctr.degraded_reads, 1);
				done[i] = true;
			} else if (cmds[i].result == 0) {
				done[i] = true;
			} else if (cmds[i].result == -CRP_ECONFLICT) {
				conflict = true;
			} else if (cmds[i].result == -CRP_EMEDIUM) {
				/* A block the member cannot read: rebuild the piece from
				 * parity and write it back (the drive remaps it), as md
				 * corrects read errors; the member stays in. */
				uint64_t aoff;

				r = crp_geom_unmap(&a->g, pc[i].member,
						   crp_geom_member_off(&a->g, pc[i].s, pc[i].off), &aoff);
				if (r == 0)
					r = crp_array_rebuild_range(a, aoff, pc[i].buf, pc[i].len,
								    pc[i].member, true);
				if (r == 0)
					crp_warn("member %s: unreadable block at array offset %llu rebuilt "
						 "from parity and rewritten",
						 crp_member_spec(a->m[pc[i].member]),
						 (unsigned long long)aoff);
				if (r < 0)
					goto out;
				atomic_fetch_add(&a->ctr.medium_repairs, 1);
				done[i] = true;
			} else {
				r = cmds[i].result;
				goto out;
			}
		}
		if (!conflict)
			break;
		/* reserve mode: another host holds a member for its transaction. */
		atomic_fetch_add(&a->ctr.read_conflict_retries, 1);
		if (crp_now_ns() > deadline) {
			r = -ETIMEDOUT;
			goto out;
		}
		crp_lock_backoff(a, CRP_MIN(attempt++, 4u));
	}
	r = 0;
out:
	free(pc);
	free(cmds);
	free(done);
	return r;
}

/* Split one range into per-stripe transactions; the members of the next
 * stripe are announced as queued work so that shared locks stay cached. */
struct wpiece {
	uint64_t s;
	const uint8_t *src[CRP_MAX_MEMBERS];
	uint32_t lo[CRP_MAX_MEMBERS], hi[CRP_MAX_MEMBERS];
};

static size_t split_stripes(const struct crp_array *a, const struct crp_array_iov *iov, int n,
			    struct wpiece **out)
{
	const struct crp_geom *g = &a->g;
	uint64_t sb = crp_geom_stripe_bytes(g);
	size_t cap = 0, np = 0;
	struct wpiece *w = NULL;

	for (int i = 0; i < n; i++)
		cap += iov[i].len / sb + 2;
	w = calloc(cap ? cap : 1, sizeof(*w));
	if (!w)
		return 0;
	for (int i = 0; i < n; i++) {
		uint64_t off = iov[i].off;
		const uint8_t *src = iov[i].buf;
		size_t left = iov[i].len;

		while (left) {
			struct crp_loc loc;
			uint32_t take;

			crp_geom_map(g, off, &loc);
			if (np == 0 || w[np - 1].s != loc.stripe || w[np - 1].src[loc.didx]) {
				np++;
				w[np - 1].s = loc.stripe;
			}
			take = (uint32_t)CRP_MIN((uint64_t)(g->chunk - loc.chunk_off), left);
			w[np - 1].src[loc.didx] = src;
			w[np - 1].lo[loc.didx] = loc.chunk_off;
			w[np - 1].hi[loc.didx] = loc.chunk_off + take;
			src += take;
			off += take;
			left -= take;
		}
	}
	*out = w;
	return np;
}

int crp_array_writev(struct crp_array *a, const struct crp_array_iov *iov, int n)
{
	struct wpiece *w = NULL;
	size_t np;
	int r = 0;

	for (int i = 0; i < n; i++) {
		r = check_io(a, iov[i].off, iov[i].len);
		if (r < 0)
			return r;
	}
	np = split_stripes(a, iov, n, &w);
	if (!w)
		return -ENOMEM;
	for (size_t i = 0; i < np && r == 0; i++) {
		int next[CRP_MAX_MEMBERS], nn = 0;

		if (i + 1 < np) {
			nn = crp_stripe_members(a, w[i + 1].s, w[i + 1].src, next);
			crp_mlock_queue(a, next, nn, +1);
		}
		r = crp_stripe_write(a, w[i].s, w[i].src, w[i].lo, w[i].hi);
		if (nn)
			crp_mlock_queue(a, next, nn, -1);
		if (r < 0 && nn)
			crp_lock_release_idle(a, next, nn); /* the next stripe will not come */
	}
	free(w);
	return r;
}

int crp_array_write(struct crp_array *a, uint64_t off, const void *buf, size_t len)
{
	struct crp_array_iov iov = { off, buf, len };

	if (len == 0)
		return check_io(a, off, 0);
	return crp_array_writev(a, &iov, 1);
}

int crp_array_sync(struct crp_array *a)
{
	struct crp_cmd cmds[CRP_MAX_MEMBERS];
	bool want[CRP_MAX_MEMBERS];
	uint64_t deadline = crp_lock_deadline_ns(a);
	int r = 0;

	for (int i = 0; i < a->n; i++)
		want[i] = crp_array_writable(a, i); /* out of service: nothing of ours there */
	/* reserve mode: a member another host holds refuses the SYNCHRONIZE
	 * CACHE for a few round trips; it is asked again within the lock
	 * deadline. */
	for (unsigned attempt = 0;; attempt++) {
		bool sent[CRP_MAX_MEMBERS] = { false }, conflict = false;
		struct crp_batch b;

		crp_batch_init(&b);
		for (int i = 0; i < a->n; i++) {
			struct crp_cmd *c = &cmds[i];

			if (!want[i])
				continue;
			crp_cmd_init(c);
			crp_cdb_sync_cache16(c);
			crp_batch_add(&b, c);
			crp_member_submit(a->m[i], &c, 1);
			sent[i] = true;
		}
		crp_batch_wait(&b);
		crp_batch_destroy(&b);
		/* A member that failed on the way is out of service, not an error
		 * of the sync: what it held is in the parity of the others. */
		crp_array_note_failures(a);
		r = 0;
		for (int i = 0; i < a->n; i++) {
			if (!sent[i])
				continue;
			if (cmds[i].result == 0 || !crp_array_writable(a, i)) {
				want[i] = false;
			} else if (cmds[i].result == -CRP_ECONFLICT) {
				conflict = true;
				r = r ? r : cmds[i].result;
			} else {
				want[i] = false;
				r = cmds[i].result;
			}
		}
		if (!conflict || (r && r != -CRP_ECONFLICT) || crp_now_ns() > deadline)
			break;
		crp_lock_backoff(a, CRP_MIN(attempt, 6u));
	}
	return r;
}

void crp_array_drop_locks(struct crp_array *a)
{
	int all[CRP_MAX_MEMBERS];

	for (int i = 0; i < a->n; i++)
		all[i] = i;
	crp_mlock_take_local(a, all, a->n);
	crp_lock_release_now(a, all, a->n);
	crp_mlock_give_local(a, all, a->n);
}

/* Take the locks of members @set[0..n) (no reads): every one not reserved
 * yet is RESERVEd, all or none (a conflict releases the set and backs off,
 * until the lock deadline).  @took (by member, if not NULL) says which this
 * call reserved, for the caller to release.  The caller holds their local
 * ownership.  For verify and repair the set is every member of the stripe:
 * nobody else is half-way through a transaction on it meanwhile. */
static int lock_set(struct crp_array *a, const int *set, int n, bool *took)
{
	uint64_t deadline = crp_lock_deadline_ns(a);
	unsigned attempt = 0;

	if (a->opts.debug & CRP_DEBUG_NO_LOCKS)
		return 0;
	for (;;) {
		struct crp_cmd cmds[CRP_MAX_MEMBERS];
		uint8_t params[CRP_MAX_MEMBERS][24];
		bool sent[CRP_MAX_MEMBERS] = { false }, conflict = false;
		struct crp_batch b;
		int err = 0;

		crp_batch_init(&b);
		for (int i = 0; i < n; i++) {
			struct crp_cmd *c = &cmds[i];

			if (a->lk[set[i]].reserved || !crp_array_writable(a, set[i]))
				continue;
			crp_lock_cmd_reserve(a, c, params[i]);
			crp_batch_add(&b, c);
			crp_member_submit(a->m[set[i]], &c, 1);
			sent[i] = true;
		}
		crp_batch_wait(&b);
		crp_batch_destroy(&b);
		for (int i = 0; i < n; i++) {
			if (!sent[i])
				continue;
			if (cmds[i].result == 0) {
				crp_lock_taken(a, set[i]);
				if (took)
					took[set[i]] = true;
			} else if (cmds[i].result == -CRP_ECONFLICT) {
				conflict = true;
			} else if (!err) {
				err = cmds[i].result;
			}
		}
		if (!conflict && !err)
			return 0;
		crp_lock_release_now(a, set, n);
		for (int i = 0; took && i < n; i++)
			took[set[i]] = false;
		if (err)
			return err;
		atomic_fetch_add(&a->ctr.lock_conflicts, 1);
		if (crp_now_ns() > deadline)
			return -ETIMEDOUT;
		crp_lock_backoff(a, CRP_MIN(attempt, crp_lock_attempt_cap(a, set, n)));
		attempt++;
	}
}

void crp_array_set_intent(struct crp_array *a, const struct crp_array_intent_ops *ops, void *ctx)
{
	a->intent = ops;
	a->intent_ctx = ctx;
}

/* Read stripe @s whole into @data/@p/@q under the locks of every member
 * (the caller holds the local ownership of all members); with @resync,
 * write back parity recomputed from the data before releasing.  A member
 * that is not readable: -CRP_EDEGRADED for a check (there is nothing to
 * check it against), and for a resync unless it is a parity member (the
 * data are all there: the parity that is left is rewritten). */
static int stripe_whole(struct crp_array *a, uint64_t s, void *const *data, uint8_t *p,
			uint8_t *q, bool resync)
{
	const struct crp_geom *g = &a->g;
	int all[CRP_MAX_MEMBERS], r, pm, qm;
	struct crp_cmd cmds[CRP_MAX_MEMBERS];
	bool sent[CRP_MAX_MEMBERS] = { false };
	struct crp_batch b;

	crp_geom_parity(g, s, &pm, &qm);
	for (int m = 0; m < a->n; m++) {
		int role = crp_geom_role(g, s, m);

		if (!crp_array_readable(a, m) && (!resync || role >= 0))
			return -CRP_EDEGRADED;
	}
	for (int i = 0; i < a->n; i++)
		all[i] = i;
	r = lock_set(a, all, a->n, NULL);
	if (r < 0)
		return r;
	crp_batch_init(&b);
	for (int m = 0; m < a->n; m++) {
		struct crp_cmd *c = &cmds[m];
		uint32_t bs = crp_member_block_size(a->m[m]);
		int role = crp_geom_role(g, s, m);
		void *buf = role == CRP_ROLE_P ? (void *)p : role == CRP_ROLE_Q ? (void *)q : data[role];

		if (!crp_array_readable(a, m))
			continue;
		crp_cmd_init(c);
		crp_cdb_read16(c, crp_geom_member_off(g, s, 0) / bs, g->chunk / bs, buf, g->chunk);
		crp_batch_add(&b, c);
		crp_member_submit(a->m[m], &c, 1);
		sent[m] = true;
	}
	crp_batch_wait(&b);
	crp_batch_destroy(&b);
	for (int m = 0; m < a->n && r == 0; m++)
		if (sent[m])
			r = cmds[m].result;
	if (r == 0 && resync) {
		int pms[2] = { pm, qm };

		if (qm >= 0)
			crp_parity_pq(g->ndata, g->chunk, data, p, q);
		else
			crp_parity_p(g->ndata, g->chunk, data, p);
		crp_batch_init(&b);
		for (int k = 0; k < (qm >= 0 ? 2 : 1); k++) {
			struct crp_cmd *c = &cmds[pms[k]];
			uint32_t bs = crp_member_block_size(a->m[pms[k]]);

			if (!crp_array_writable(a, pms[k])) {
				crp_cmd_init(c);
				c->result = 0;
				continue;
			}
			crp_cmd_init(c);
			crp_cdb_write16(c, crp_geom_member_off(g, s, 0) / bs, g->chunk / bs,
					k ? q : p, g->chunk, false);
			crp_batch_add(&b, c);
			crp_member_submit(a->m[pms[k]], &c, 1);
		}
		crp_batch_wait(&b);
		crp_batch_destroy(&b);
		for (int k = 0; k < (qm >= 0 ? 2 : 1) && r == 0; k++)
			r = cmds[pms[k]].result;
	}
	crp_lock_release_now(a, all, a->n);
	return r;
}

static int stripe_check(struct crp_array *a, uint64_t s, bool resync)
{
	const struct crp_geom *g = &a->g;
	size_t len = (size_t)g->chunk * (size_t)(g->ndata + 4);
	int all[CRP_MAX_MEMBERS], r, pm, qm;
	void *data[CRP_MAX_MEMBERS];
	uint8_t *mem = NULL, *p, *q;
	bool own = false;

	if (!a->has_geom || s >= g->nstripes)
		return -ERANGE;
	/*
	 * fsck and scrub check every stripe in a row: the array keeps one set
	 * of buffers for them (a fresh one of ndata + 4 chunks per stripe
	 * cost more than the check).  A second checker at the same time gets
	 * its own.  Every byte is read or computed before it is used.
	 */
	if (pthread_mutex_trylock(&a->scratch_mu) == 0) {
		if (a->scratch_len < len) {
			free(a->scratch);
			a->scratch = crp_alloc_buf_raw(len);
			a->scratch_len = a->scratch ? len : 0;
		}
		mem = a->scratch;
		own = mem != NULL;
		if (!own)
			pthread_mutex_unlock(&a->scratch_mu);
	}
	if (!mem && !(mem = crp_alloc_buf_raw(len)))
		return -ENOMEM;
	for (int d = 0; d < g->ndata; d++)
		data[d] = mem + (size_t)d * g->chunk;
	p = mem + (size_t)g->ndata * g->chunk;
	q = p + g->chunk;
	crp_geom_parity(g, s, &pm, &qm);
	for (int i = 0; i < a->n; i++)
		all[i] = i;
	crp_mlock_take_local(a, all, a->n);
	r = stripe_whole(a, s, data, p, q, resync);
	crp_mlock_give_local(a, all, a->n);
	if (r == 0 && !resync)
		r = crp_parity_verify(g->ndata, g->chunk, data, p, qm >= 0 ? q : NULL, q + g->chunk);
	if (own)
		pthread_mutex_unlock(&a->scratch_mu);
	else
		free(mem);
	return r;
}

int crp_array_resync_stripe(struct crp_array *a, uint64_t s)
{
	return stripe_check(a, s, true);
}

int crp_array_verify_stripe(struct crp_array *a, uint64_t s)
{
	return stripe_check(a, s, false);
}

/* Write rows [moff, moff+n) of member @m from @buf (under the caller's locks). */
static int write_rows(struct crp_array *a, int m, uint64_t moff, uint32_t n, const uint8_t *buf,
		      uint64_t array_off)
{
	uint32_t bs = crp_member_block_size(a->m[m]);
	struct crp_cmd c;
	int r;

	if (!crp_array_writable(a, m))
		return 0;
	crp_cmd_init(&c);
	crp_cdb_write16(&c, moff / bs, n / bs, (void *)buf, n, false);
	r = crp_member_exec(a->m[m], &c);
	if (r == 0)
		crp_warn("member %s: repaired %u bytes at array offset %llu from parity",
			 crp_member_spec(a->m[m]), n, (unsigned long long)array_off);
	return r;
}

int crp_array_rebuild_range(struct crp_array *a, uint64_t off, void *buf, size_t len, int bad,
			    bool repair)
{
	return crp_array_rebuild_range2(a, off, buf, len, bad, -1, repair);
}

int crp_array_rebuild_range2(struct crp_array *a, uint64_t off, void *buf, size_t len, int bad,
			     int bad2, bool repair)
{
	int all[CRP_MAX_MEMBERS], r = check_io(a, off, len);
	uint8_t *other = NULL;

	if (r < 0)
		return r;
	if (bad < 0 || bad >= a->n || bad2 >= a->n)
		return -EINVAL;
	if (bad2 == bad)
		bad2 = -1;
	if (bad2 >= 0) {
		other = crp_alloc_buf(CRP_MIN((size_t)a->g.chunk, len));
		if (!other)
			return -ENOMEM;
	}
	for (int i = 0; i < a->n; i++)
		all[i] = i;
	for (size_t o = 0; o < len;) {
		struct crp_loc loc;
		uint32_t n;
		int first, second;

		crp_geom_map(&a->g, off + o, &loc);
		n = (uint32_t)CRP_MIN((uint64_t)(a->g.chunk - loc.chunk_off), len - o);
		if (loc.member != bad && loc.member != bad2) {
			r = crp_array_read(a, off + o, (uint8_t *)buf + o, n);
			if (r < 0)
				goto out;
			o += n;
			continue;
		}
		/* The piece's own member, and the other one taken as missing. */
		first = loc.member;
		second = bad2 < 0 ? -1 : loc.member == bad ? bad2 : bad;
		crp_mlock_take_local(a, all, a->n);
		r = repair ? lock_set(a, all, a->n, NULL) : 0;
		if (r == 0 && second < 0 && !other && a->g.level == 6) {
			/* RAID-6: room for a second column a MEDIUM ERROR may add. */
			other = crp_alloc_buf(CRP_MIN((size_t)a->g.chunk, len));
			if (!other)
				r = -ENOMEM;
		}
		if (r == 0)
			r = rebuild_rows(a, loc.stripe, first, second, loc.chunk_off, n,
					 (uint8_t *)buf + o, other, &second);
		/* Unlocked, another host's reservation may refuse a read for a
		 * few round trips: again, within the lock deadline. */
		if (r == -CRP_ECONFLICT && !repair) {
			uint64_t deadline = crp_lock_deadline_ns(a);

			for (unsigned attempt = 0; r == -CRP_ECONFLICT && crp_now_ns() < deadline;
			     attempt++) {
				crp_lock_backoff(a, CRP_MIN(attempt, 6u));
				r = rebuild_rows(a, loc.stripe, first, second, loc.chunk_off, n,
						 (uint8_t *)buf + o, other, &second);
			}
		}
		if (r == 0 && repair && crp_array_writable(a, first))
			r = write_rows(a, first, loc.member_off, n, (uint8_t *)buf + o, off + o);
		if (r == 0 && repair && second >= 0 && crp_array_writable(a, second)) {
			uint64_t aoff = 0;

			/* The same rows of the second member (data or parity). */
			if (crp_geom_role(&a->g, loc.stripe, second) >= 0)
				crp_geom_unmap(&a->g, second, loc.member_off, &aoff);
			r = write_rows(a, second, loc.member_off, n, other, aoff);
		}
		if (repair)
			crp_lock_release_now(a, all, a->n);
		crp_mlock_give_local(a, all, a->n);
		if (r < 0)
			goto out;
		o += n;
	}
	r = 0;
out:
	free(other);
	return r;
}

int crp_array_rebuild_stripes(struct crp_array *a, uint64_t s0, uint32_t count, int pos,
			      uint64_t *held_ns)
{
	const struct crp_geom *g = &a->g;
	int all[CRP_MAX_MEMBERS], r = 0;
	uint64_t since;
	uint8_t *buf;

	if (!a->has_geom || pos < 0 || pos >= a->n || s0 + count > g->nstripes)
		return -ERANGE;
	if (!crp_array_writable(a, pos))
		return -CRP_EMEMBER;
	buf = crp_alloc_buf(g->chunk);
	if (!buf)
		return -ENOMEM;
	for (int i = 0; i < a->n; i++)
		all[i] = i;
	/* Every writable member locked: no transaction of any host is half
	 * way through these stripes while we read them and write @pos. */
	crp_mlock_take_local(a, all, a->n);
	r = lock_set(a, all, a->n, NULL);
	since = crp_now_ns();
	for (uint64_t s = s0; r == 0 && s < s0 + count; s++) {
		uint32_t bs = crp_member_block_size(a->m[pos]);
		struct crp_cmd c;

		r = rebuild_rows_once(a, s, pos, -1, 0, g->chunk, buf, NULL, NULL);
		if (r < 0)
			break;
		crp_cmd_init(&c);
		crp_cdb_write16(&c, crp_geom_member_off(g, s, 0) / bs, g->chunk / bs, buf, g->chunk,
				false);
		r = crp_member_exec(a->m[pos], &c);
	}
	crp_lock_release_now(a, all, a->n);
	if (held_ns)
		*held_ns = crp_now_ns() - since;
	crp_mlock_give_local(a, all, a->n);
	free(buf);
	crp_array_note_failures(a);
	return r;
}

int crp_array_hold_all(struct crp_array *a)
{
	int all[CRP_MAX_MEMBERS], r;

	for (int i = 0; i < a->n; i++)
		all[i] = i;
	crp_mlock_take_local(a, all, a->n);
	/* A reset or preemption seen since invalidates a cached reservation. */
	for (int i = 0; i < a->n; i++) {
		r = crp_lock_check_events(a, i);
		if (r)
			a->lk[i].reserved = false;
		/* A pinned one is the metadata lock of the caller, broken:
		 * its unlock reports it; nothing more is done under it. */
		if (r == -CRP_EFENCED || (r && a->lk[i].pinned))
			goto fail;
	}
	r = lock_set(a, all, a->n, NULL);
	if (r == 0)
		return 0;
fail:
	crp_mlock_give_local(a, all, a->n);
	return r;
}

int crp_array_release_all(struct crp_array *a)
{
	int all[CRP_MAX_MEMBERS], r = 0;

	for (int i = 0; i < CRP_MAX_MEMBERS; i++)
		all[i] = i;
	for (int i = 0; i < a->n; i++) {
		int e = crp_lock_check_events(a, i);

		if (e && !r)
			r = e == -CRP_EFENCED ? e : -CRP_ELOCKLOST;
		if (e)
			a->lk[i].reserved = false;
	}
	crp_lock_release_now(a, all, a->n);
	crp_mlock_give_local(a, all, a->n);
	if (r)
		atomic_fetch_add(&a->ctr.lock_lost, 1);
	return r;
}

int crp_array_write_held(struct crp_array *a, int m, uint64_t off, const void *buf,
			 uint32_t len)
{
	struct crp_cmd c;
	uint64_t until = 0;
	uint32_t bs;
	int r;

	if (m < 0 || m >= a->n)
		return -EINVAL;
	if (!crp_array_writable(a, m))
		return -CRP_EMEMBER;
	bs = crp_member_block_size(a->m[m]);
	if (off % bs || len % bs)
		return -EINVAL;
	r = crp_array_gate_check(a, &until);
	if (r < 0)
		return r;
	crp_cmd_init(&c);
	crp_cdb_write16(&c, off / bs, len / bs, buf, len, false);
	c.fence_ns = until;
	r = crp_member_exec(a->m[m], &c);
	crp_array_note_failures(a);
	return r;
}

int crp_array_reconstruct(struct crp_array *a, uint64_t s, int bad, uint32_t off, uint32_t len,
			  uint8_t *out)
{
	if (!a->has_geom || s >= a->g.nstripes || bad < 0 || bad >= a->n ||
	    (uint64_t)off + len > a->g.chunk)
		return -ERANGE;
	return rebuild_rows_once(a, s, bad, -1, off, len, out, NULL, NULL);
}

/*
 * reserve mode: a dead host's SCSI-2 reservation went with its session if
 * it crashed; only a hung host still holds one.  Probe with a one-block
 * READ until @deadline (it changes nothing, and needs none of this host's
 * local locks, which our own threads may hold while they wait for the
 * hung host): GOOD means no other nexus holds the member, or this host
 * does; a member still reserved against us at the deadline is reset,
 * which also breaks any other host's reservation of it at that instant
 * (their WRITEs see the reset and fail as lock loss, never land).  Every
 * survivor of a hung host probes at about the same time, so the unit may
 * be reset by another one while we probe: its reservation is then held
 * by a live host that took it after that reset, and is left alone (our
 * probe noticed the reset in a UNIT ATTENTION).
 */
static int break_reserve(struct crp_array *a, int i, uint64_t deadline)
{
	uint32_t bs = crp_member_block_size(a->m[i]);
	uint8_t *buf = crp_alloc_buf(bs);
	struct crp_member_counters *ctr = crp_member_counters(a->m[i]);
	uint64_t resets = atomic_load(&ctr->resets_seen);
	unsigned attempt = 0;
	int r;

	if (!buf)
		return -ENOMEM;
	for (;;) {
		r = crp_member_read(a->m[i], 0, buf, bs);
		if (r != -CRP_ECONFLICT)
			break;
		if (crp_now_ns() >= deadline)
			break;
		crp_lock_backoff(a, CRP_MIN(attempt++, 6u));
	}
	free(buf);
	if (r != -CRP_ECONFLICT)
		return r;
	if (atomic_load(&ctr->resets_seen) != resets) {
		crp_warn("member %s: reset by another host while probed; its reservation now "
			 "is a live host's, not reset again", crp_member_spec(a->m[i]));
		return 0;
	}
	crp_warn("member %s: reservation held past the dead timeout: LU reset",
		 crp_member_spec(a->m[i]));
	return crp_member_lun_reset(a->m[i]);
}

int crp_array_preempt(struct crp_array *a, uint64_t victim_key)
{
	int n = 0;

	if (a->opts.lock_mode != CRP_LOCK_PR || !victim_key || victim_key == a->pr_key)
		return 0;
	for (int i = 0; i < a->n; i++) {
		if (crp_member_failed(a->m[i]) ||
		    pr_out(a, i, CRP_PROUT_PREEMPT, CRP_PR_TYPE_WRITE_EXCLUSIVE, a->pr_key,
			   victim_key) < 0)
			continue; /* not registered (any more): nothing to take */
		n++;
		/*
		 * If the victim held the reservation, it is ours now, and no
		 * local transaction knows.  Give it back unless a local
		 * transaction owns the member: that one reserves (which
		 * succeeds) and releases as usual.  A RELEASE from a
		 * registrant that does not hold the reservation changes
		 * nothing.
		 */
		if (!crp_mlock_try_local(a, i))
			continue;
		if (!a->lk[i].reserved)
			(void)pr_out(a, i, CRP_PROUT_RELEASE, CRP_PR_TYPE_WRITE_EXCLUSIVE, a->pr_key, 0);
		crp_mlock_give_local(a, &i, 1);
	}
	return n;
}

int crp_array_break_locks(struct crp_array *a, uint64_t victim_key, uint64_t wait_ns)
{
	uint64_t deadline = crp_now_ns() + wait_ns;
	int r = 0;

	if (a->opts.lock_mode == CRP_LOCK_PR) {
		crp_array_preempt(a, victim_key);
		return 0;
	}
	for (int i = 0; i < a->n; i++) {
		int e;

		if (crp_member_failed(a->m[i]))
			continue;
		e = break_reserve(a, i, deadline);
		if (e < 0 && !r)
			r = e;
	}
	return r;
}

void crp_array_set_gate(struct crp_array *a, int (*gate)(void *ctx, uint64_t *until), void *ctx)
{
	a->gate_ctx = ctx;
	a->gate = gate;
}

void crp_array_set_lease(struct crp_array *a, uint64_t end_ns)
{
	atomic_store(&a->lease_end_ns, end_ns);
}

void crp_array_fence(struct crp_array *a)
{
	atomic_store(&a->fenced, true);
}

bool crp_array_fenced(const struct crp_array *a)
{
	return atomic_load(&a->fenced);
}

int crp_array_gate_check(struct crp_array *a, uint64_t *until)
{
	uint64_t u = 0;
	int r;

	if (until)
		*until = 0;
	if (atomic_load(&a->fenced))
		return -CRP_EFENCED;
	r = a->gate ? a->gate(a->gate_ctx, &u) : 0;
	if (until && r == 0)
		*until = u;
	return r;
}

int crp_array_pr_holders(struct crp_array *a, uint64_t *keys)
{
	uint8_t buf[64];
	int n = 0;

	for (int i = 0; i < a->n; i++) {
		struct crp_cmd c;
		uint32_t gen;
		uint8_t type;

		keys[i] = UINT64_MAX;
		if (a->opts.lock_mode != CRP_LOCK_PR || crp_member_failed(a->m[i]))
			continue;
		crp_cmd_init(&c);
		crp_cdb_pr_in(&c, CRP_PRIN_READ_RESERVATION, buf, sizeof(buf));
		if (crp_member_exec(a->m[i], &c) < 0)
			continue;
		if (crp_parse_pr_reservation(buf, sizeof(buf), &gen, &keys[i], &type) == 0)
			keys[i] = 0;
		else if (keys[i] == 0)
			keys[i] = UINT64_MAX;
		n++;
	}
	return n;
}

int crp_array_pr_check(struct crp_array *a)
{
	struct pr_look {
		struct crp_cmd c;
		uint8_t buf[512];
		unsigned nexus, reg;
		bool sent;
	} *lk;
	struct crp_batch b;
	uint64_t keys[48];
	uint32_t gen;
	int r = 0, n;

	if (a->opts.lock_mode != CRP_LOCK_PR)
		return 0;
	lk = calloc((size_t)a->n, sizeof(*lk));
	if (!lk)
		return -ENOMEM;
	/* Every member, all at once: a registration lost on one alone (its
	 * session was lost and the registration made again went to the old
	 * nexus) makes every RESERVE there conflict, for ever.  A member still
	 * logging in is left for the next call: its READ KEYS would wait for
	 * the login, and the heartbeat thread calls this. */
	crp_batch_init(&b);
	for (int i = 0; i < a->n; i++) {
		struct crp_cmd *c = &lk[i].c;

		if (crp_member_failed(a->m[i]) || crp_member_reconnecting(a->m[i]))
			continue;
		/* Taken before the READ KEYS: a registration made again while it
		 * is on its way (another thread, after a lost session) must not
		 * make a list read before it look like a preemption. */
		lk[i].nexus = crp_member_nexus_gen(a->m[i]);
		lk[i].reg = atomic_load(&a->reg_gen[i]);
		lk[i].sent = true;
		crp_cmd_init(c);
		crp_cdb_pr_in(c, CRP_PRIN_READ_KEYS, lk[i].buf, sizeof(lk[i].buf));
		crp_batch_add(&b, c);
		crp_member_submit(a->m[i], &c, 1);
	}
	crp_batch_wait(&b);
	crp_batch_destroy(&b);
	for (int i = 0; i < a->n; i++) {
		bool ours = false;

		if (!lk[i].sent || lk[i].c.result < 0)
			continue;
		n = crp_parse_pr_keys(lk[i].buf, sizeof(lk[i].buf), &gen, keys, 48);
		if (n < 0) {
			r = n;
			break;
		}
		for (int k = 0; k < n && k < 48; k++)
			ours = ours || keys[k] == a->pr_key;
		if (ours || n > 48)
			continue; /* (a truncated list cannot tell) */
		if (lk[i].nexus != lk[i].reg || crp_member_nexus_gen(a->m[i]) != lk[i].nexus) {
			/* Our session was lost since we registered: the target
			 * may have lost its registrations (a restart), or a
			 * survivor may have preempted us before the loss.
			 * While our lease runs nobody may have declared us
			 * dead, so it was the target.  Once it ran out we
			 * cannot tell from the keys, and register again all
			 * the same, as a lost session does (crp_lock_check_events):
			 * nothing is written before the lease is renewed, and
			 * the renewal reads our slot, which a survivor marks
			 * RECOVERING under the metadata lock before it recovers
			 * anything (a survivor that only preempted us, and then
			 * sees our heartbeat move, leaves the slot ours).  Only
			 * a key gone from the very nexus it was registered on,
			 * registered before the READ KEYS was sent, was
			 * certainly preempted. */
			bool lease = crp_now_ns() < atomic_load(&a->lease_end_ns);

			if (!atomic_exchange(&a->reregistered, true))
				crp_warn("member %s: this host's registration is gone after a lost "
					 "session (the target lost its reservation state%s): "
					 "registering again",
					 crp_member_spec(a->m[i]),
					 lease ? "" : "; the lease ran out, so this host's slot is "
						      "checked before anything is written");
			crp_array_pr_reregister(a, i);
			continue;
		}
		atomic_store(&a->fenced, true);
		r = -CRP_EFENCED;
		break;
	}
	free(lk);
	return r;
}
