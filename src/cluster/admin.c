/*
 * An administration tool's hold on an array (the model is in
 * include/crpfs/cluster.h): the metadata open read-write, without a
 * replay of its own (the mounted hosts recover whoever died), then the
 * cluster joined for a slot, a heartbeat and the write gate.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>

#include "crpfs/cluster.h"
#include "crpfs/err.h"

struct crp_admin {
	struct crp_meta *m;
	struct crp_cluster *c;
};

int crp_admin_open(const char *const *specs, int n, const char *host, uint32_t timeout_ms,
		   struct crp_admin **out, char *err, size_t errlen)
{
	struct crp_meta_opts mo = { .host = host, .timeout_ms = timeout_ms, .observer = true };
	struct crp_cluster_opts co = { .no_recovery = true };
	struct crp_admin *ad = calloc(1, sizeof(*ad));
	int r;

	*out = NULL;
	if (!ad)
		return -ENOMEM;
	r = crp_meta_open(specs, n, &mo, &ad->m, err, errlen);
	if (r < 0)
		goto fail;
	r = crp_cluster_join(ad->m, &co, &ad->c, err, errlen);
	if (r < 0)
		goto fail;
	*out = ad;
	return 0;
fail:
	if (ad->m) {
		ad->m->ro = true; /* leave the disks as they are */
		crp_meta_close(ad->m);
	}
	free(ad);
	return r;
}

struct crp_meta *crp_admin_meta(struct crp_admin *ad)
{
	return ad->m;
}

int crp_admin_close(struct crp_admin *ad)
{
	int r, e;

	if (!ad)
		return 0;
	crp_cluster_quiesce(ad->c);
	r = crp_meta_shutdown(ad->m);
	crp_cluster_leave(ad->c);
	e = crp_meta_close(ad->m);
	free(ad);
	return r ? r : e;
}
