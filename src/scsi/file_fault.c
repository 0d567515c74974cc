/*
 * The file transport's shared state file: locking, mapping, and the faults
 * injected into it (crp_file_fault_*, member.h).
 *
 * Faults live in the sidecar that every nexus of the image maps, so a
 * fault set by one process is seen by the next command of every process
 * that has the image open.  They are changed only under the exclusive
 * state lock and read under the shared one, like the reservations; see
 * transport_file.c for what each fault does to a command.
 *
 * Bad blocks are kept in 512-byte sectors, whatever block size a member
 * opens the image with (a power of two from 512 up), and converted at
 * either edge: crp_file_fault_medium and crp_file_fault_list take and give
 * blocks of the caller's size; a READ fails if any sector of its blocks is
 * bad and reports the block that holds the first one.
 */
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "crpfs/err.h"
#include "crpfs/member.h"
#include "crpfs/util.h"
#include "file_i.h"

_Static_assert(CRP_FAULT_BAD_MAX == SC_BAD_MAX, "one bound for the bad block list");
_Static_assert(sizeof(struct sidecar) == SC_V1_SIZE + sizeof(struct sc_faults),
	       "the faults follow the version 1 layout");
_Static_assert(SC_V1_SIZE == 8256, "the version 1 layout is fixed");

#define FAULT_LOCK_MS CRP_DEFAULT_TIMEOUT_MS

/* ---- locks and mapping ---------------------------------------------------- */

static int ofd_setlk(int fd, short type, off_t off)
{
	struct flock fl = { .l_type = type, .l_whence = SEEK_SET, .l_start = off, .l_len = 1 };

	if (fcntl(fd, F_OFD_SETLK, &fl) == 0)
		return 0;
	return -errno;
}

int crp_sc_lock(int fd, short type, uint64_t deadline_ns)
{
	uint64_t pause = 2000, stall0 = crp_stall_ns();

	for (int tries = 0;; tries++) {
		int r = ofd_setlk(fd, type, SC_LOCK_STATE);

		if (r == 0)
			return 0;
		if (r != -EAGAIN && r != -EACCES && r != -EINTR)
			return r;
		/* A stall of ours during the wait is not the holder's doing. */
		if (crp_now_ns() > deadline_ns + (crp_stall_ns() - stall0))
			return -ETIMEDOUT;
		if (tries < 8) {
			sched_yield();
			continue;
		}
		crp_sleep_ns(pause);
		if (pause < 1000000)
			pause *= 2;
	}
}

void crp_sc_unlock(int fd)
{
	ofd_setlk(fd, F_UNLCK, SC_LOCK_STATE);
}

int crp_sc_map(int fd, const char *scpath, bool create, struct sidecar **out, char *err,
	       size_t errlen)
{
	struct sidecar *sc;
	struct stat st;
	void *p;
	int r;

	*out = NULL;
	if (fstat(fd, &st) < 0) {
		r = -errno;
		snprintf(err, errlen, "cannot stat reservation state file %s: %s", scpath,
			 strerror(-r));
		return r;
	}
	if (!create && (size_t)st.st_size < SC_V1_SIZE) {
		snprintf(err, errlen, "%s is not a crpfs reservation state file (%lld bytes)",
			 scpath, (long long)st.st_size);
		return -EINVAL;
	}
	/* Grows a new file, or a version 1 file by its zeroed faults area. */
	if ((size_t)st.st_size < sizeof(struct sidecar) &&
	    ftruncate(fd, sizeof(struct sidecar)) < 0) {
		r = -errno;
		snprintf(err, errlen, "cannot size reservation state file %s: %s", scpath,
			 strerror(-r));
		return r;
	}
	p = mmap(NULL, sizeof(struct sidecar), PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	if (p == MAP_FAILED) {
		r = -errno;
		snprintf(err, errlen, "cannot map reservation state file %s: %s", scpath,
			 strerror(-r));
		return r;
	}
	sc = p;
	if (sc->magic == 0 && create) {
		memset(sc, 0, sizeof(*sc));
		sc->magic = SC_MAGIC;
		sc->version = SC_VERSION;
		sc->nslots = SC_SLOTS;
	} else if (sc->magic == SC_MAGIC && sc->version == 1 && sc->nslots == SC_SLOTS) {
		memset(&sc->faults, 0, sizeof(sc->faults));
		sc->version = SC_VERSION;
	} else if (sc->magic != SC_MAGIC || sc->version != SC_VERSION ||
		   sc->nslots != SC_SLOTS) {
		snprintf(err, errlen,
			 "%s is not a reservation state file of this crpfs version; remove it "
			 "while no host uses the image",
			 scpath);
		munmap(p, sizeof(struct sidecar));
		return -EINVAL;
	}
	if (sc->faults.nbad > SC_BAD_MAX)
		sc->faults.nbad = SC_BAD_MAX; /* a damaged count never reads past the list */
	*out = sc;
	return 0;
}

void crp_sc_unmap(struct sidecar *sc)
{
	if (sc)
		munmap(sc, sizeof(*sc));
}

/* ---- the bad block list ---------------------------------------------------- */

static uint32_t nbad(const struct sc_faults *f)
{
	return CRP_MIN(f->nbad, (uint32_t)SC_BAD_MAX);
}

bool crp_sc_bad_first(const struct sc_faults *f, uint64_t lo, uint64_t hi, uint64_t *first)
{
	for (uint32_t i = 0; i < nbad(f); i++) {
		const struct sc_bad *b = &f->bad[i];

		if (b->first >= hi)
			break; /* sorted: nothing further can overlap */
		if (b->first + b->count > lo) {
			*first = CRP_MAX(b->first, lo);
			return true;
		}
	}
	return false;
}

bool crp_sc_bad_any(const struct sc_faults *f, uint64_t lo, uint64_t hi)
{
	uint64_t first;

	return crp_sc_bad_first(f, lo, hi, &first);
}

void crp_sc_bad_clear(struct sc_faults *f, uint64_t lo, uint64_t hi)
{
	struct sc_bad out[SC_BAD_MAX + 1];
	uint32_t n = 0, have = nbad(f);

	/* Only the one range that holds [lo, hi) with room on both sides
	 * splits, so the list grows by one at most. */
	for (uint32_t i = 0; i < have; i++) {
		const struct sc_bad b = f->bad[i];
		uint64_t end = b.first + b.count;

		if (end <= lo || b.first >= hi) {
			out[n++] = b;
			continue;
		}
		if (b.first < lo)
			out[n++] = (struct sc_bad){ b.first, lo - b.first };
		if (end > hi)
			out[n++] = (struct sc_bad){ hi, end - hi };
	}
	if (n > SC_BAD_MAX) { /* the list was full: its last range is forgotten */
		n = SC_BAD_MAX;
		f->dropped += out[n].count;
	}
	memcpy(f->bad, out, n * sizeof(out[0]));
	f->nbad = n;
}

/* Add bad sectors [lo, hi), merging with the ranges they overlap or touch. */
static int bad_add(struct sc_faults *f, uint64_t lo, uint64_t hi)
{
	struct sc_bad out[SC_BAD_MAX + 1];
	uint32_t n = 0, have = nbad(f);
	bool placed = false;

	for (uint32_t i = 0; i < have; i++) {
		const struct sc_bad b = f->bad[i];
		uint64_t end = b.first + b.count;

		if (end < lo) {
			out[n++] = b;
		} else if (b.first > hi) {
			if (!placed) {
				out[n++] = (struct sc_bad){ lo, hi - lo };
				placed = true;
			}
			out[n++] = b;
		} else { /* overlaps or touches: absorbed */
			lo = CRP_MIN(lo, b.first);
			hi = CRP_MAX(hi, end);
		}
	}
	if (!placed)
		out[n++] = (struct sc_bad){ lo, hi - lo };
	if (n > SC_BAD_MAX)
		return -ENOSPC;
	memcpy(f->bad, out, n * sizeof(out[0]));
	f->nbad = n;
	return 0;
}

void crp_sc_set_gone(struct sidecar *sc, bool gone)
{
	if (gone) {
		if (sc->faults.flags & CRP_FAULT_GONE)
			return;
		sc->faults.flags |= CRP_FAULT_GONE;
		/* The LU's state goes with it. */
		sc->r6_holder = 0;
		sc->pr_holder = 0;
		sc->pr_type = 0;
		for (int s = 0; s < SC_SLOTS; s++)
			sc->slot[s].key = 0;
		sc->prgen++;
		return;
	}
	if (!(sc->faults.flags & CRP_FAULT_GONE))
		return;
	sc->faults.flags &= ~(uint32_t)CRP_FAULT_GONE;
	/* A new LU: every nexus hears of it as a power on. */
	for (int s = 0; s < SC_SLOTS; s++)
		__atomic_fetch_or(&sc->slot[s].ua, UA_RESET, __ATOMIC_SEQ_CST);
}

/* ---- the injection interface ---------------------------------------------- */

struct fault_ctx {
	int fd;
	struct sidecar *sc;
	uint64_t image_size;
};

/*
 * Open @path's sidecar, lock it exclusively and map it.  A path without a
 * sidecar (never opened as a member) is refused: nothing is created.
 */
static int fault_begin(const char *path, struct fault_ctx *f, char *err, size_t errlen)
{
	char scpath[CRP_SPEC_MAX + sizeof(SC_SUFFIX)];
	char why[CRP_SPEC_MAX * 2 + 256];
	struct stat st;
	int r;

	f->fd = -1;
	f->sc = NULL;
	if (!path || !path[0] || strlen(path) >= CRP_SPEC_MAX) {
		snprintf(err, errlen, "image path '%s' is empty or too long", path ? path : "");
		return -EINVAL;
	}
	if (stat(path, &st) < 0) {
		r = -errno;
		snprintf(err, errlen, "image %s: %s", path, strerror(-r));
		return r;
	}
	if (!S_ISREG(st.st_mode)) {
		snprintf(err, errlen, "%s is not an image file", path);
		return -EINVAL;
	}
	f->image_size = (uint64_t)st.st_size;
	snprintf(scpath, sizeof(scpath), "%s%s", path, SC_SUFFIX);
	f->fd = open(scpath, O_RDWR | O_CLOEXEC | O_NOFOLLOW);
	if (f->fd < 0) {
		r = -errno;
		if (r == -ENOENT)
			snprintf(err, errlen,
				 "%s has no crpfs state file %s: it was never opened as a crpfs "
				 "member (file:%s); faults go to images crpfs uses",
				 path, scpath, path);
		else
			snprintf(err, errlen, "cannot open %s: %s", scpath, strerror(-r));
		return r;
	}
	r = crp_sc_lock(f->fd, F_WRLCK, crp_now_ns() + FAULT_LOCK_MS * 1000000ull);
	if (r < 0) {
		snprintf(err, errlen, "cannot lock %s within %u ms: %s", scpath, FAULT_LOCK_MS,
			 strerror(-r));
		close(f->fd);
		f->fd = -1;
		return r;
	}
	r = crp_sc_map(f->fd, scpath, false, &f->sc, why, sizeof(why));
	if (r < 0) {
		snprintf(err, errlen, "%s", why);
		crp_sc_unlock(f->fd);
		close(f->fd);
		f->fd = -1;
	}
	return r;
}

static void fault_end(struct fault_ctx *f)
{
	crp_sc_unmap(f->sc);
	if (f->fd >= 0) {
		crp_sc_unlock(f->fd);
		close(f->fd); /* our own lock only: no nexus lives on this descriptor */
	}
}

static int check_block_size(uint32_t *bs, char *err, size_t errlen)
{
	if (!*bs)
		*bs = SC_SECTOR;
	if (!crp_is_pow2(*bs) || *bs < SC_SECTOR || *bs > 65536) {
		snprintf(err, errlen, "block size %u is not a power of two from 512 to 65536",
			 *bs);
		return -EINVAL;
	}
	return 0;
}

int crp_file_fault_medium(const char *path, uint32_t block_size, uint64_t lba, uint64_t count,
			  char *err, size_t errlen)
{
	struct fault_ctx f;
	uint64_t nblocks, spb;
	int r = check_block_size(&block_size, err, errlen);

	if (r < 0)
		return r;
	if (!count) {
		snprintf(err, errlen, "a bad block range needs at least one block");
		return -EINVAL;
	}
	r = fault_begin(path, &f, err, errlen);
	if (r < 0)
		return r;
	nblocks = f.image_size / block_size;
	if (lba >= nblocks || count > nblocks - lba) {
		snprintf(err, errlen,
			 "blocks %llu to %llu are past the end of %s (%llu blocks of %u bytes)",
			 (unsigned long long)lba, (unsigned long long)(lba + count - 1), path,
			 (unsigned long long)nblocks, block_size);
		r = -EINVAL;
		goto out;
	}
	spb = block_size / SC_SECTOR;
	r = bad_add(&f.sc->faults, lba * spb, (lba + count) * spb);
	if (r < 0)
		snprintf(err, errlen,
			 "%s already holds %d bad block ranges, the most it keeps: clear some "
			 "first",
			 path, SC_BAD_MAX);
out:
	fault_end(&f);
	return r;
}

int crp_file_fault_set(const char *path, unsigned set, unsigned clear, char *err, size_t errlen)
{
	const unsigned known = CRP_FAULT_GONE | CRP_FAULT_NOT_READY | CRP_FAULT_SENSE;
	struct fault_ctx f;
	int r;

	if ((set | clear) & ~known || (set & CRP_FAULT_SENSE)) {
		snprintf(err, errlen, "fault flags 0x%x cannot be set this way (CRP_FAULT_SENSE: "
			 "crp_file_fault_sense)", set | clear);
		return -EINVAL;
	}
	r = fault_begin(path, &f, err, errlen);
	if (r < 0)
		return r;
	if (clear & CRP_FAULT_GONE)
		crp_sc_set_gone(f.sc, false);
	if (set & CRP_FAULT_GONE)
		crp_sc_set_gone(f.sc, true);
	f.sc->faults.flags &= ~(uint32_t)(clear & (CRP_FAULT_NOT_READY | CRP_FAULT_SENSE));
	f.sc->faults.flags |= set & CRP_FAULT_NOT_READY;
	fault_end(&f);
	return 0;
}

int crp_file_fault_sense(const char *path, uint8_t key, uint8_t asc, uint8_t ascq, char *err,
			 size_t errlen)
{
	struct fault_ctx f;
	int r;

	if (key == 0 || key > 0x0f || key == 0x06) {
		snprintf(err, errlen, "sense key 0x%x is not an error a unit keeps answering "
			 "(1 to 15, not 6: UNIT ATTENTION)", key);
		return -EINVAL;
	}
	r = fault_begin(path, &f, err, errlen);
	if (r < 0)
		return r;
	f.sc->faults.sense_key = key;
	f.sc->faults.asc = asc;
	f.sc->faults.ascq = ascq;
	f.sc->faults.flags |= CRP_FAULT_SENSE;
	fault_end(&f);
	return 0;
}

int crp_file_fault_clear(const char *path, char *err, size_t errlen)
{
	struct fault_ctx f;
	int r = fault_begin(path, &f, err, errlen);

	if (r < 0)
		return r;
	crp_sc_set_gone(f.sc, false);
	f.sc->faults.flags = 0;
	f.sc->faults.sense_key = f.sc->faults.asc = f.sc->faults.ascq = 0;
	f.sc->faults.nbad = 0;
	f.sc->faults.dropped = 0;
	memset(f.sc->faults.bad, 0, sizeof(f.sc->faults.bad));
	fault_end(&f);
	return 0;
}

int crp_file_fault_list(const char *path, uint32_t block_size, struct crp_faults *out,
			char *err, size_t errlen)
{
	struct fault_ctx f;
	uint64_t spb;
	int r = check_block_size(&block_size, err, errlen);

	memset(out, 0, sizeof(*out));
	if (r < 0)
		return r;
	r = fault_begin(path, &f, err, errlen);
	if (r < 0)
		return r;
	spb = block_size / SC_SECTOR;
	out->flags = f.sc->faults.flags;
	out->dropped = f.sc->faults.dropped;
	if (out->flags & CRP_FAULT_SENSE) {
		out->sense_key = f.sc->faults.sense_key;
		out->asc = f.sc->faults.asc;
		out->ascq = f.sc->faults.ascq;
	}
	for (uint32_t i = 0; i < nbad(&f.sc->faults); i++) {
		const struct sc_bad *b = &f.sc->faults.bad[i];
		uint64_t first = b->first / spb, end = CRP_DIV_ROUND_UP(b->first + b->count, spb);

		/* Two ranges that share a block in a larger block size are one. */
		if (out->nbad && out->bad[out->nbad - 1].lba + out->bad[out->nbad - 1].count >=
				       first) {
			struct crp_fault_range *last = &out->bad[out->nbad - 1];

			last->count = end - last->lba;
			continue;
		}
		out->bad[out->nbad].lba = first;
		out->bad[out->nbad].count = end - first;
		out->nbad++;
	}
	fault_end(&f);
	return 0;
}
