/* crpfs error text and the mapping of domain errors to POSIX errno. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "crpfs/err.h"

static const char *const crp_err_text[] = {
	[CRP_ECONFLICT - CRP_EBASE] = "reservation conflict",
	[CRP_ELOCKLOST - CRP_EBASE] = "reservation lost (session lost or reset)",
	[CRP_EFENCED - CRP_EBASE] = "this host was fenced by another host",
	[CRP_EMEMBER - CRP_EBASE] = "member failed",
	[CRP_ESENSE - CRP_EBASE] = "SCSI check condition",
	[CRP_EBADSPEC - CRP_EBASE] = "bad member specification",
	[CRP_EGEOMETRY - CRP_EBASE] = "invalid array geometry",
	[CRP_ECHECKSUM - CRP_EBASE] = "checksum mismatch",
	[CRP_ECORRUPT - CRP_EBASE] = "corrupt on-disk structure",
	[CRP_EPARITY - CRP_EBASE] = "parity does not match data",
	[CRP_EDEGRADED - CRP_EBASE] = "too many members missing",
	[CRP_ETXLOST - CRP_EBASE] = "transaction lost with the metadata lock",
	[CRP_EMEDIUM - CRP_EBASE] = "unreadable block on the member (medium error)",
	[CRP_ERETRY - CRP_EBASE] = "read without the lock met a change (retried under it)",
};

const char *crp_strerror(int err)
{
	if (err < 0)
		err = -err;
	if (err > CRP_EBASE && err < CRP_ELAST) {
		const char *s = crp_err_text[err - CRP_EBASE];
		return s ? s : "unknown crpfs error";
	}
	return strerror(err);
}

int crp_errno(int err)
{
	if (err < 0)
		err = -err;
	switch (err) {
	case CRP_ECONFLICT:
		return EBUSY;
	case CRP_ELOCKLOST:
	case CRP_EMEMBER:
	case CRP_ESENSE:
	case CRP_ECHECKSUM:
	case CRP_ECORRUPT:
	case CRP_EPARITY:
	case CRP_EDEGRADED:
	case CRP_EMEDIUM:
	case CRP_ETXLOST:
	case CRP_ERETRY:
		return EIO;
	case CRP_EFENCED:
		return ESHUTDOWN;
	case CRP_EBADSPEC:
	case CRP_EGEOMETRY:
		return EINVAL;
	default:
		return err > 0 && err < CRP_EBASE ? err : EIO;
	}
}
