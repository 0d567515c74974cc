/* Private to the metadata layer. */
#ifndef CRPFS_META_I_H
#define CRPFS_META_I_H

#include "crpfs/meta.h"

/* journal.c */
void crp_meta_mblk_free(void *p);
/* Forget a cached block (freed metadata), dropping it from the transaction. */
void crp_meta_forget_block(struct crp_meta *m, uint64_t blkno);
/* Where @slot's journal continues: ring index and next sequence. */
int crp_meta_journal_position(struct crp_meta *m, int slot, uint64_t *pos, uint64_t *seq);
/* Write our journal header at the current position (clean close). */
int crp_meta_journal_settle(struct crp_meta *m);

/* alloc.c */
/* Load the free counts of every allocation group and inode group. */
int crp_meta_load_counts(struct crp_meta *m);

#endif
