// SPDX-License-Identifier: GPL-2.0 OR Linux-OpenIB
/*
 * odp_mprotect: an ODP MR follows the protection of the process mapping.
 *
 * After mprotect(PROT_READ) on memory under an ODP MR that allows remote
 * writes:
 *  - RDMA READ from it still works;
 *  - a remote RDMA WRITE into it completes with IBV_WC_REM_ACCESS_ERR at the
 *    requester and changes no byte, both where the device had already
 *    mapped the pages writable (it wrote there before the mprotect) and
 *    where it never touched them;
 *  - an RDMA READ whose local SGE lies in a read-only range completes with
 *    IBV_WC_LOC_PROT_ERR and changes no byte;
 *  - after mprotect(PROT_READ | PROT_WRITE), on a new QP pair, writes land;
 *  - a multi-packet RDMA READ that runs into PROT_NONE pages after its
 *    first response packets completes with IBV_WC_REM_ACCESS_ERR (the
 *    responder NAKs in the middle of its response), and the local buffer
 *    keeps only what the packets before the error carried;
 *  - READs that the requester retransmits while their responses are on the
 *    way (transport timeout of one jiffy) and that the responder replays
 *    after they completed, when the buffer is PROT_NONE by then: the
 *    replay is NAKed, and the QP lives on (the WRITE after each READ
 *    completes).
 *
 * The cases form one sequence, each starting where the one before left
 * the buffers and the device's mappings: every test is set up with the
 * first steps (the device writes the first half, the CPU the second,
 * PROT_READ), then replays the steps of the tests before it, with their
 * checks, and does its own.
 *
 * Pinned MRs (the pinned variant) do not follow mprotect: the pages were
 * pinned writable at registration, so the device keeps writing into them.
 * The pinned tests assert exactly that (the WRITE and the READ into
 * read-only memory succeed and their data lands), as the contrast to ODP.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "odpharness.h"

#define NPAGES	16
#define LEN	(NPAGES * T_PAGE)

/*
 * The device; the buffer under test (buf, mr) and what it should hold
 * (copy); a local source (local, lmr) and a READ target (rd, rdmr); the
 * QP pair of the step under way; a copy of the local buffer (lcopy).
 */
FIXTURE(mprotect) {
	struct t_dev dev;
	uint8_t *buf, *copy, *local, *rd, *lcopy;
	struct ibv_mr *mr, *lmr, *rdmr;
	struct t_rc_pair p;
};

ODP_VARIANTS(mprotect);

static const char *st(int s)
{
	return t_wc_status_str(s);
}

static bool do_mprotect(void *p, size_t len, int prot)
{
	if (mprotect(p, len, prot)) {
		t_diag("mprotect(%p, %zu, %d): %s", p, len, prot,
		       strerror(errno));
		return false;
	}
	return true;
}

/*
 * The buffers and MRs; the device writes the first half of buf (so, with
 * ODP, it has mapped the pages writable), the CPU the second half (the
 * device has never touched those pages); then buf becomes PROT_READ.
 */
FIXTURE_SETUP(mprotect)
{
	const int access = IBV_ACCESS_LOCAL_WRITE | IBV_ACCESS_REMOTE_WRITE |
			   IBV_ACCESS_REMOTE_READ;
	size_t half = LEN / 2;

	t_variant();
	ASSERT_EQ(0, t_dev_open(&self->dev));
	self->buf = t_mmap(LEN);
	ASSERT_NE(NULL, self->buf);
	self->local = t_mmap(LEN);
	ASSERT_NE(NULL, self->local);
	self->rd = t_mmap(LEN);
	ASSERT_NE(NULL, self->rd);
	self->copy = malloc(LEN);
	ASSERT_NE(NULL, self->copy);
	self->mr = t_reg_mr(&self->dev, self->buf, LEN, access);
	ASSERT_NE(NULL, self->mr);
	self->lmr = t_reg_mr(&self->dev, self->local, LEN, access);
	ASSERT_NE(NULL, self->lmr);
	self->rdmr = t_reg_mr(&self->dev, self->rd, LEN, access);
	ASSERT_NE(NULL, self->rdmr);
	ASSERT_EQ(0, t_rc_pair_create(&self->dev, &self->p, NULL));

	t_fill(self->local, half, 1);
	ASSERT_WC(IBV_WC_SUCCESS,
		  t_rdma_sync(&self->p, IBV_WR_RDMA_WRITE, self->local, half,
			      self->lmr->lkey, (uintptr_t)self->buf,
			      self->mr->rkey));
	ASSERT_BYTES(self->buf, self->local, half, "initial WRITE");
	t_fill(self->buf + half, half, 2);
	memcpy(self->copy, self->buf, LEN);
	ASSERT_TRUE(do_mprotect(self->buf, LEN, PROT_READ));
}

FIXTURE_TEARDOWN(mprotect)
{
	t_rc_pair_destroy(&self->p);
	t_dereg_mr(self->mr);
	t_dereg_mr(self->lmr);
	t_dereg_mr(self->rdmr);
	t_munmap(self->buf, LEN);
	t_munmap(self->local, LEN);
	t_munmap(self->rd, LEN);
	free(self->copy);
	free(self->lcopy);
	t_dev_close(&self->dev);
}

static void qp_states(struct t_rc_pair *p)
{
	struct ibv_qp_init_attr init;
	struct ibv_qp_attr a[2];
	int i;

	for (i = 0; i < 2; i++)
		if (ibv_query_qp(p->qp[i], &a[i], IBV_QP_STATE, &init))
			a[i].qp_state = -1;
	t_diag("QP states after the error: requester %d, responder %d (%d is ERR)",
	       a[0].qp_state, a[1].qp_state, IBV_QPS_ERR);
}

/* The QP pair of a step; the step destroys it when done. */
#define NEW_PAIR() do {							\
	t_rc_pair_destroy(&self->p);					\
	ASSERT_EQ(0, t_rc_pair_create(&self->dev, &self->p, NULL));	\
} while (0)

#define STEP_ARGS	struct __test_metadata *_metadata,		\
			FIXTURE_DATA(mprotect) *self,			\
			const FIXTURE_VARIANT(mprotect) *variant
#define STEP(f, ...)	f(_metadata, self, variant, ##__VA_ARGS__)

/* 1: READ from the read-only MR, on the setup's QP pair. */
static void read_from_readonly(STEP_ARGS)
{
	int s;

	s = t_rdma_sync(&self->p, IBV_WR_RDMA_READ, self->rd, LEN,
			self->rdmr->lkey, (uintptr_t)self->buf,
			self->mr->rkey);
	if (s)
		t_diag("READ from read-only buffer: %s", st(s));
	EXPECT_WC(IBV_WC_SUCCESS, s);
	EXPECT_BYTES(self->rd, self->copy, LEN, "READ from read-only buffer");
	t_rc_pair_destroy(&self->p);
}

/* 2, 3: remote WRITE of @len bytes at @off into the read-only buffer. */
static void write_into_readonly(STEP_ARGS, size_t off, size_t len,
				uint64_t seed, const char *where)
{
	int s;

	NEW_PAIR();
	t_fill(self->local, len, seed);
	s = t_rdma_sync(&self->p, IBV_WR_RDMA_WRITE, self->local, len,
			self->lmr->lkey, (uintptr_t)self->buf + off,
			self->mr->rkey);
	t_diag("WRITE of %zu bytes into read-only %s: %s", len, where, st(s));
	if (variant->odp) {
		EXPECT_WC(IBV_WC_REM_ACCESS_ERR, s);
		EXPECT_BYTES(self->buf, self->copy, LEN, "read-only buffer");
		if (s != 0)
			qp_states(&self->p);
	} else {
		/* Pinned: the write lands in spite of PROT_READ. */
		memcpy(self->copy + off, self->local, len);
		EXPECT_WC(IBV_WC_SUCCESS, s);
		EXPECT_BYTES(self->buf, self->copy, LEN,
			     "pinned read-only buffer");
	}
	t_rc_pair_destroy(&self->p);
}

static void write_into_readonly_mapped(STEP_ARGS)
{
	STEP(write_into_readonly, T_PAGE + 100, 3 * T_PAGE, 3,
	     variant->odp ? "pages the device had mapped" : "pinned pages");
}

static void write_into_readonly_untouched(STEP_ARGS)
{
	STEP(write_into_readonly, LEN / 2 + 5, 2 * T_PAGE, 4,
	     variant->odp ? "pages the device never touched" :
	     "pinned pages");
}

/* 4: writable again, new QP pair: writes land everywhere. */
static void write_after_writable_again(STEP_ARGS)
{
	int s;

	EXPECT_TRUE(do_mprotect(self->buf, LEN, PROT_READ | PROT_WRITE));
	NEW_PAIR();
	t_fill(self->local, LEN - 2 * T_PAGE, 5);
	memcpy(self->copy + T_PAGE - 1, self->local, LEN - 2 * T_PAGE);
	s = t_rdma_sync(&self->p, IBV_WR_RDMA_WRITE, self->local,
			LEN - 2 * T_PAGE, self->lmr->lkey,
			(uintptr_t)self->buf + T_PAGE - 1, self->mr->rkey);
	if (s)
		t_diag("WRITE after PROT_READ|PROT_WRITE: %s", st(s));
	EXPECT_WC(IBV_WC_SUCCESS, s);
	EXPECT_BYTES(self->buf, self->copy, LEN, "buffer writable again");
	t_rc_pair_destroy(&self->p);
}

/* 5: RDMA READ with the local SGE in a read-only range of the local MR. */
static void read_into_readonly_local(STEP_ARGS)
{
	size_t off = 2 * T_PAGE + 300, len = 3 * T_PAGE;
	uint8_t *lcopy;
	int s;

	free(self->lcopy);
	lcopy = self->lcopy = malloc(LEN);
	ASSERT_NE(NULL, lcopy);
	NEW_PAIR();
	t_fill(self->local, LEN, 77);
	memcpy(lcopy, self->local, LEN);
	EXPECT_TRUE(do_mprotect(self->local, LEN, PROT_READ));
	s = t_rdma_sync(&self->p, IBV_WR_RDMA_READ, self->local + off, len,
			self->lmr->lkey, (uintptr_t)self->buf + off,
			self->mr->rkey);
	t_diag("READ of %zu bytes into a read-only local range: %s", len,
	       st(s));
	if (variant->odp) {
		EXPECT_WC(IBV_WC_LOC_PROT_ERR, s);
		EXPECT_BYTES(self->local, lcopy, LEN,
			     "read-only local buffer");
		if (s != 0)
			qp_states(&self->p);
	} else {
		memcpy(lcopy + off, self->buf + off, len);
		EXPECT_WC(IBV_WC_SUCCESS, s);
		EXPECT_BYTES(self->local, lcopy, LEN,
			     "pinned read-only local buffer");
	}
	t_rc_pair_destroy(&self->p);
	EXPECT_TRUE(do_mprotect(self->local, LEN, PROT_READ | PROT_WRITE));

	/* Writable again: the same READ on a new pair lands. */
	NEW_PAIR();
	memcpy(lcopy + off, self->buf + off, len);
	s = t_rdma_sync(&self->p, IBV_WR_RDMA_READ, self->local + off, len,
			self->lmr->lkey, (uintptr_t)self->buf + off,
			self->mr->rkey);
	if (s != IBV_WC_SUCCESS)
		t_diag("READ into the local range made writable again: %s",
		       st(s));
	EXPECT_WC(IBV_WC_SUCCESS, s);
	EXPECT_BYTES(self->local, lcopy, LEN, "local buffer writable again");
	t_rc_pair_destroy(&self->p);
}

/* 6: everything still works on the same MRs. */
static void mrs_work_after_errors(STEP_ARGS)
{
	NEW_PAIR();
	memset(self->rd, 0, LEN);
	EXPECT_WC(IBV_WC_SUCCESS,
		  t_rdma_sync(&self->p, IBV_WR_RDMA_READ, self->rd, LEN,
			      self->rdmr->lkey, (uintptr_t)self->buf,
			      self->mr->rkey));
	EXPECT_BYTES(self->rd, self->copy, LEN, "final READ");
	t_rc_pair_destroy(&self->p);
}

/*
 * 7: RDMA READ of the whole buffer after its second half has become
 * PROT_NONE: the first pages are mapped for the device (the steps before
 * read them), so the responder sends their response packets before it
 * finds the rest gone.
 */
static void read_cut_off(STEP_ARGS)
{
	size_t good = 4 * T_PAGE, i;
	uint8_t *rd = self->rd;
	int s;

	NEW_PAIR();
	EXPECT_TRUE(do_mprotect(self->buf + good, LEN - good, PROT_NONE));
	memset(rd, 0xa5, LEN);
	s = t_rdma_sync(&self->p, IBV_WR_RDMA_READ, rd, LEN,
			self->rdmr->lkey, (uintptr_t)self->buf,
			self->mr->rkey);
	t_diag("READ of %zu bytes, the last %zu of them PROT_NONE: %s",
	       (size_t)LEN, (size_t)LEN - good, st(s));
	EXPECT_TRUE(do_mprotect(self->buf + good, LEN - good,
				PROT_READ | PROT_WRITE));
	if (variant->odp) {
		EXPECT_WC(IBV_WC_REM_ACCESS_ERR, s);
		/* what arrived before the NAK is the data, the rest untouched */
		EXPECT_BYTES(rd, self->copy, good,
			     "READ before the PROT_NONE pages");
		for (i = good; i < LEN && rd[i] == 0xa5; i++)
			;
		EXPECT_EQ(LEN, i) {
			TH_LOG("byte %zu of the READ target changed after the error",
			       i);
		}
		if (s != 0)
			qp_states(&self->p);
	} else {
		EXPECT_WC(IBV_WC_SUCCESS, s);
		EXPECT_BYTES(rd, self->copy, LEN,
			     "pinned READ of PROT_NONE pages");
	}
	t_rc_pair_destroy(&self->p);
}

/*
 * The steps of the tests before test @n (1 for the first), in order: the
 * state test @n starts from.
 */
static void steps_before(STEP_ARGS, int n)
{
	static void (*const step[])(STEP_ARGS) = {
		read_from_readonly,
		write_into_readonly_mapped,
		write_into_readonly_untouched,
		write_after_writable_again,
		read_into_readonly_local,
		mrs_work_after_errors,
		read_cut_off,
	};
	int i;

	for (i = 0; i < n - 1 && i < (int)T_ARRAY_SIZE(step); i++)
		step[i](_metadata, self, variant);
	ASSERT_TRUE(_metadata->passed) {
		TH_LOG("a step of the tests before this one failed");
	}
}

/* RDMA READ from a PROT_READ MR returns its data (odp / pinned) */
TEST_F(mprotect, read_from_readonly)
{
	STEP(read_from_readonly);
}

/*
 * odp: remote WRITE into PROT_READ pages the device wrote before:
 * IBV_WC_REM_ACCESS_ERR, no byte changed
 * pinned contrast: remote WRITE into PROT_READ pinned pages succeeds and
 * lands
 */
TEST_F(mprotect, write_into_readonly_mapped)
{
	STEP(steps_before, 2);
	STEP(write_into_readonly_mapped);
}

/*
 * odp: remote WRITE into PROT_READ pages the device never touched:
 * IBV_WC_REM_ACCESS_ERR, no byte changed
 * pinned contrast: remote WRITE into other PROT_READ pinned pages lands
 */
TEST_F(mprotect, write_into_readonly_untouched)
{
	STEP(steps_before, 3);
	STEP(write_into_readonly_untouched);
}

/* after PROT_READ|PROT_WRITE, on a new QP pair, remote WRITE lands */
TEST_F(mprotect, write_after_writable_again)
{
	STEP(steps_before, 4);
	STEP(write_after_writable_again);
}

/*
 * odp: RDMA READ into a PROT_READ local range: IBV_WC_LOC_PROT_ERR, no
 * byte changed; lands once writable
 * pinned contrast: RDMA READ into a PROT_READ pinned local range lands
 */
TEST_F(mprotect, read_into_readonly_local)
{
	STEP(steps_before, 5);
	STEP(read_into_readonly_local);
}

/* the MRs still work after the errors: READ returns the whole buffer */
TEST_F(mprotect, mrs_work_after_errors)
{
	STEP(steps_before, 6);
	STEP(mrs_work_after_errors);
}

/*
 * odp: RDMA READ running into PROT_NONE pages after 4 response packets:
 * IBV_WC_REM_ACCESS_ERR, not a hang
 * pinned contrast: RDMA READ over PROT_NONE pinned pages returns their
 * data
 */
TEST_F(mprotect, read_cut_off_by_prot_none)
{
	STEP(steps_before, 7);
	STEP(read_cut_off);
}

/*
 * READs retransmitted while their responses are on the way: with the
 * shortest transport timeout (one jiffy in rxe) the requester retransmits
 * a 64 KiB READ while it runs, and the responder may replay a duplicate
 * after the READ completed.  Here the buffer is PROT_NONE by then, so such
 * a replay cannot read.  That must cost a NAK that the requester drops as
 * stale, not the QP: the WRITE that follows (elsewhere) must complete.
 * Before the patch "Keep the QP out of error when a READ replay cannot
 * read" the responder moved to the error state and the WRITE
 * was retried forever.
 */
#define STALE_ROUNDS	300

/*
 * READs retransmitted every jiffy, buffer PROT_NONE after each: the WRITE
 * that follows completes, the QP lives (300 rounds)
 */
TEST_F(mprotect, stale_read_replays)
{
	int i, s = 0, w = 0, timeout = t_rc_timeout;
	struct t_rc_pair *p = &self->p;
	long dup;

	STEP(steps_before, 8);
	t_rc_timeout = 1;
	i = t_rc_pair_create(&self->dev, p, NULL);
	t_rc_timeout = timeout;
	ASSERT_EQ(0, i);
	dup = t_hw_counter(&self->dev, "duplicate_request");
	for (i = 0; i < STALE_ROUNDS; i++) {
		s = t_rdma_sync(p, IBV_WR_RDMA_READ, self->rd, LEN,
				self->rdmr->lkey, (uintptr_t)self->buf,
				self->mr->rkey);
		EXPECT_WC(IBV_WC_SUCCESS, s);
		EXPECT_BYTES(self->rd, self->copy, LEN,
			     "READ before PROT_NONE");
		EXPECT_TRUE(do_mprotect(self->buf, LEN, PROT_NONE));
		t_fill(self->local, T_PAGE, 100 + i);
		w = t_rdma_sync(p, IBV_WR_RDMA_WRITE, self->local, T_PAGE,
				self->lmr->lkey, (uintptr_t)self->rd,
				self->rdmr->rkey);
		EXPECT_WC(IBV_WC_SUCCESS, w);
		EXPECT_BYTES(self->rd, self->local, T_PAGE,
			     "WRITE after PROT_NONE");
		EXPECT_TRUE(do_mprotect(self->buf, LEN,
					PROT_READ | PROT_WRITE));
		if (!_metadata->passed) {
			i++;
			break;
		}
	}
	dup = t_hw_counter(&self->dev, "duplicate_request") - dup;
	t_diag("%d rounds of READ, PROT_NONE, WRITE elsewhere: READ %s, WRITE %s; the responder saw %ld duplicate requests",
	       i, st(s), st(w), dup);
	if (!_metadata->passed)
		qp_states(p);
}

ODP_HARNESS_MAIN("ODP MRs follow mprotect()")
