/*
 * The write-intent log: a stripe transaction marks its region durably
 * before it writes; a host that dies with a stripe half-written (data
 * without parity) has that stripe resynced by the host that recovers it;
 * idle regions are cleaned by the sweep.
 */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "crpfs/err.h"
#include "crpfs/meta.h"
#include "crpfs/util.h"
#include "fixture/fsfix.h"

#define NM 4
#define MEMBER_SIZE (96ull << 20)

static struct crp_fsfix fx;

static void format(int level)
{
	const struct crp_fsfix_params p = { .name = "intent", .members = NM,
					    .member_size = MEMBER_SIZE, .level = level,
					    .chunk = 16384, .max_hosts = 4, .label = "intent" };

	crp_fsfix_format(&fx, &p);
}

static void cleanup(void)
{
	ck_assert_int_eq(crp_fsfix_remove(&fx), 0);
}

static struct crp_meta *open_meta(const char *host)
{
	struct crp_meta_opts o = { .host = host, .claim_slot = true, .replay = true };
	struct crp_meta *m;
	char err[256];
	int r = crp_meta_open(fx.specs, NM, &o, &m, err, sizeof(err));

	ck_assert_msg(r == 0, "open as %s: %s", host, err);
	return m;
}

/* Bits set in slot @slot's intent log, from member 0's copy. */
static unsigned bits_set(struct crp_meta *m, int slot)
{
	uint8_t *blk = crp_alloc_buf(CRP_BLOCK);
	unsigned n = 0;

	for (uint32_t k = 0; k < CRP_INTENT_BYTES / CRP_BLOCK; k++) {
		uint64_t off = CRP_INTENT_OFFSET + (uint64_t)slot * CRP_INTENT_BYTES + k * CRP_BLOCK;

		ck_assert_int_eq(crp_member_read(crp_array_member(m->a, 0), off, blk, CRP_BLOCK), 0);
		for (uint32_t j = CRP_HDR_SIZE; j < CRP_BLOCK; j++)
			n += (unsigned)__builtin_popcount(blk[j]);
	}
	free(blk);
	return n;
}

/* A stripe of the data area, away from the metadata at the start. */
static uint64_t victim_stripe(struct crp_meta *m)
{
	return m->geom.nstripes - 3;
}

START_TEST(test_marks_and_sweeps)
{
	struct crp_meta *m;
	uint8_t *buf = crp_alloc_buf(4096);
	uint64_t s, sb_bytes;

	format(5);
	m = open_meta("alpha");
	ck_assert_uint_eq(bits_set(m, m->slot), 0);
	s = victim_stripe(m);
	sb_bytes = crp_geom_stripe_bytes(&m->geom);
	memset(buf, 0x42, 4096);
	ck_assert_int_eq(crp_array_write(m->a, s * sb_bytes, buf, 4096), 0);
	ck_assert_uint_eq(bits_set(m, m->slot), 1);
	/* A second write to the same region needs no new bit, nor does one
	 * to another stripe of the region (16 MiB of each member). */
	ck_assert_int_eq(crp_array_write(m->a, s * sb_bytes + 4096, buf, 4096), 0);
	ck_assert_uint_eq(bits_set(m, m->slot), 1);
	ck_assert_uint_eq(crp_sb_intent_spb(&m->sb), (16u << 20) / 16384);
	ck_assert_uint_eq((s - 1) / crp_sb_intent_spb(&m->sb), s / crp_sb_intent_spb(&m->sb));
	ck_assert_int_eq(crp_array_write(m->a, (s - 1) * sb_bytes, buf, 4096), 0);
	ck_assert_uint_eq(bits_set(m, m->slot), 1);
	/* A stripe of the region before: a second bit. */
	ck_assert_int_eq(crp_array_write(m->a, (s - crp_sb_intent_spb(&m->sb)) * sb_bytes, buf,
					 4096), 0);
	ck_assert_uint_eq(bits_set(m, m->slot), 2);
	/* Not idle long enough: the bit stays; idle: it goes. */
	ck_assert_int_eq(crp_meta_intent_sweep(m, 3600ull * 1000000000ull), 0);
	ck_assert_uint_eq(bits_set(m, m->slot), 2);
	ck_assert_int_eq(crp_meta_intent_sweep(m, 0), 0);
	ck_assert_uint_eq(bits_set(m, m->slot), 0);
	ck_assert_int_eq(crp_meta_close(m), 0);
	free(buf);
	cleanup();
}
END_TEST

/* The child writes a stripe's data but not its parity (as a host that dies
 * between the two WRITEs would), and dies; the next mount resyncs it. */
static void write_hole(int level)
{
	struct crp_meta *m;
	uint64_t s;
	pid_t pid;
	int st;

	format(level);
	pid = fork();
	ck_assert_int_ge(pid, 0);
	if (pid == 0) {
		uint8_t *buf = crp_alloc_buf(16384);
		struct crp_loc loc;

		m = open_meta("victim");
		s = victim_stripe(m);
		memset(buf, 0x17, 16384);
		/* Through a transaction: marks the intent, data and parity. */
		if (crp_array_write(m->a, s * crp_geom_stripe_bytes(&m->geom), buf, 16384))
			_exit(2);
		/* Then data alone, behind the array's back: parity is now stale. */
		crp_geom_map(&m->geom, s * crp_geom_stripe_bytes(&m->geom), &loc);
		memset(buf, 0x99, 16384);
		if (crp_member_write(crp_array_member(m->a, loc.member), loc.member_off, buf, 16384))
			_exit(3);
		if (crp_array_verify_stripe(m->a, s) != -CRP_EPARITY)
			_exit(4);
		_exit(0); /* dies without unmounting: its slot and log stay */
	}
	ck_assert_int_eq(waitpid(pid, &st, 0), pid);
	ck_assert_msg(WIFEXITED(st) && WEXITSTATUS(st) == 0, "child failed: %d", st);

	m = open_meta("survivor");
	s = victim_stripe(m);
	ck_assert_int_eq(crp_array_verify_stripe(m->a, s), 0);
	ck_assert_int_eq(crp_meta_close(m), 0);
	cleanup();
}

START_TEST(test_write_hole_raid5)
{
	write_hole(5);
}
END_TEST

START_TEST(test_write_hole_raid6)
{
	write_hole(6);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("intent");
	TCase *tc = tcase_create("intent");
	SRunner *sr;
	int failed;

	tcase_set_timeout(tc, 120);
	tcase_add_test(tc, test_marks_and_sweeps);
	tcase_add_test(tc, test_write_hole_raid5);
	tcase_add_test(tc, test_write_hole_raid6);
	suite_add_tcase(s, tc);
	sr = srunner_create(s);
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
