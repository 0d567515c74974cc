/*
 * crpfs error codes.
 *
 * Every function of the library returns 0 (or a non-negative count) on
 * success and a negative error on failure: either a negated POSIX errno or a
 * negated CRP_E* domain error below.  Domain errors start above every errno
 * value so the two never collide.  Only the edges (tools, daemon, FUSE
 * adapters) turn an error into text or into an errno for the kernel.
 */
#ifndef CRPFS_ERR_H
#define CRPFS_ERR_H

enum crp_err {
	CRP_EBASE = 4096,
	CRP_ECONFLICT,	/* RESERVATION CONFLICT: another nexus holds the lock */
	CRP_ELOCKLOST,	/* the nexus was lost or reset: our reservations are gone */
	CRP_EFENCED,	/* this host was preempted (fenced) by another host */
	CRP_EMEMBER,	/* the member has failed and takes no more commands */
	CRP_ESENSE,	/* CHECK CONDITION not otherwise mapped */
	CRP_EBADSPEC,	/* a member specification that does not parse */
	CRP_EGEOMETRY,	/* a geometry that is invalid or does not fit */
	CRP_ECHECKSUM,	/* a checksum did not match */
	CRP_ECORRUPT,	/* an on-disk structure is inconsistent */
	CRP_EPARITY,	/* parity does not match the data */
	CRP_EDEGRADED,	/* too many members missing to serve the request */
	CRP_ETXLOST,	/* a metadata transaction lost with the metadata lock (a
			   lost session): not applied, the mount goes on */
	CRP_EMEDIUM,	/* the member cannot read this block (MEDIUM ERROR); the
			   member itself stays in service */
	CRP_ERETRY,	/* a read made without the metadata lock met a change,
			   damage or a missing member: run it again under the lock */
	CRP_ELAST
};

/* Text for a (positive or negative) errno or CRP_E* value.  Never NULL. */
const char *crp_strerror(int err);

/* The POSIX errno that best describes @err, for the FUSE edge (positive). */
int crp_errno(int err);

#endif
