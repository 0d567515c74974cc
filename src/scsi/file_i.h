/*
 * Private to the file transport (transport_file.c) and its fault injection
 * (file_fault.c): the layout of the shared state file PATH.crpfs-scsi, the
 * "sidecar".  transport_file.c's opening comment describes what each part
 * means and how it is locked.
 */
#ifndef CRPFS_FILE_I_H
#define CRPFS_FILE_I_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define SC_SUFFIX ".crpfs-scsi"
#define SC_MAGIC 0x4352505343534931ull /* "CRPSCSI1" */
#define SC_VERSION 2u		       /* 2: struct sc_faults appended */
#define SC_SLOTS 128
#define SC_LOCK_STATE 0		    /* byte offset of the state lock */
#define SC_LOCK_SLOT(s) (64 + (s)) /* byte offset of slot s's liveness lock */
#define SC_BAD_MAX 64		    /* bad block ranges, CRP_FAULT_BAD_MAX */
#define SC_SECTOR 512u		    /* the unit of the bad block ranges */

/* Pending UNIT ATTENTIONs of a slot, reported in this order. */
enum {
	UA_RESET = 1u << 0,	       /* 29h/00h */
	UA_RES_PREEMPTED = 1u << 1, /* 2Ah/03h */
	UA_REG_PREEMPTED = 1u << 2, /* 2Ah/05h */
	UA_RES_RELEASED = 1u << 3,  /* 2Ah/04h */
};

/* One nexus slot of the sidecar. */
struct sc_slot {
	uint64_t key;  /* PR registration key; 0: not registered */
	uint32_t ua;   /* UA_* pending; set under the exclusive state lock,
			* taken by the slot's own nexus with atomics */
	uint32_t pid;  /* last claimer, for a human reading the file */
	char host[48]; /* last claimer's host name, likewise */
};

/* Bad sectors [first, first + count), in SC_SECTOR units. */
struct sc_bad {
	uint64_t first;
	uint64_t count;
};

/*
 * Injected faults (version 2).  flags takes CRP_FAULT_GONE,
 * CRP_FAULT_NOT_READY and CRP_FAULT_SENSE (member.h); the last answers
 * every command but INQUIRY with sense key / ASC / ASCQ below.  bad[0..nbad) is sorted by first, the
 * ranges neither overlap nor touch.  dropped counts the bad sectors a
 * WRITE could not keep on the list: clearing the middle of a range splits
 * it in two, and with SC_BAD_MAX ranges in use the last range of the list
 * is then forgotten.
 */
struct sc_faults {
	uint32_t flags;
	uint32_t nbad;
	uint64_t dropped;
	uint8_t sense_key;
	uint8_t asc;
	uint8_t ascq;
	uint8_t reserved[45];
	struct sc_bad bad[SC_BAD_MAX];
};

/*
 * The sidecar, mapped shared by every nexus of the image.  Every field is
 * protected by the state lock (exclusive to write, shared to read), except
 * slot[].ua (see above).  A zeroed file is the empty state.
 */
struct sidecar {
	uint64_t magic;
	uint32_t version;
	uint32_t nslots;
	uint32_t prgen;	    /* PRgeneration */
	uint32_t r6_holder; /* slot + 1 holding RESERVE(6); 0: none */
	uint32_t pr_holder; /* slot + 1 holding the PR; 0: none */
	uint32_t pr_type;   /* its type (CRP_PR_TYPE_* and the others) */
	uint8_t reserved[32];
	struct sc_slot slot[SC_SLOTS];
	/* version 1 ended here */
	struct sc_faults faults;
};

#define SC_V1_SIZE offsetof(struct sidecar, faults)

/*
 * Take the state lock of the sidecar open as @fd (F_RDLCK shared, F_WRLCK
 * exclusive) by @deadline_ns, polling with a growing pause (a blocking
 * F_OFD_SETLKW could not honour the deadline): 0, -ETIMEDOUT or -errno.
 */
int crp_sc_lock(int fd, short type, uint64_t deadline_ns);
void crp_sc_unlock(int fd);

/*
 * With the exclusive state lock held on @fd: give the file the size of
 * this version, map it (*out), and initialize an empty (zeroed) file or
 * bring a version 1 file up to date (its faults area reads as no faults).
 * @create: a zeroed file is initialized; otherwise it is refused as not a
 * sidecar.  0, or a negative error with a message about @scpath in @err.
 */
int crp_sc_map(int fd, const char *scpath, bool create, struct sidecar **out, char *err,
	       size_t errlen);
void crp_sc_unmap(struct sidecar *sc);

/* Under the state lock: the first bad sector in [lo, hi), if any. */
bool crp_sc_bad_first(const struct sc_faults *f, uint64_t lo, uint64_t hi, uint64_t *first);
/* Does [lo, hi) hold a bad sector? */
bool crp_sc_bad_any(const struct sc_faults *f, uint64_t lo, uint64_t hi);
/* Under the exclusive state lock: sectors [lo, hi) are good again (a
 * WRITE reached them), splitting a range if it must. */
void crp_sc_bad_clear(struct sc_faults *f, uint64_t lo, uint64_t hi);

/* Under the exclusive state lock: the LU is deleted (@gone) or created
 * again.  Deletion drops every reservation and registration, as a target
 * does with the LU's state; creation leaves a power-on UNIT ATTENTION
 * (29h/00h) on every slot (a slot claimed later starts clean). */
void crp_sc_set_gone(struct sidecar *sc, bool gone);

#endif
