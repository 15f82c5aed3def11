// SPDX-License-Identifier: GPL-2.0 OR Linux-OpenIB
/*
 * odp_badinput: bad input to ODP MRs gives clean errors.
 *
 * Registration: zero lengths, ranges that wrap or go past the top of the
 * user address space, huge unaligned lengths, remote write or atomic
 * access without local write: each must fail with EINVAL (the errno is
 * pinned down per mode), never leave an MR behind.  An ODP MR over an
 * address range with nothing mapped, or over PROT_NONE memory, registers
 * (nothing is looked at until it is used), and every access to it fails
 * with an access error; a pinned MR cannot be registered there at all.
 *
 * Data path, against a 4-page MR that starts and ends in the middle of
 * pages of a larger mapping: RDMA WRITE/READ before, after and straddling
 * the MR, at an address whose end wraps, with a bad rkey, with the rkey
 * of a deregistered MR, without the MR's remote write/read right;
 * atomics that are unaligned, past the end or on an MR without remote
 * atomic access; bad local keys, local SGEs past their MR and an SGE
 * list whose length overflows 32 bits.  Each must complete with the right
 * status (pinned down per case and mode), never hang; afterwards every
 * byte of the target mapping (the MR and the bytes around it) and of the
 * local buffer is unchanged, and a fresh QP pair moves data through the
 * MR correctly.  The kernel log must stay clean (the test bed checks).
 *
 * Every test sets up its own target mapping, local buffer and MRs (the
 * fixture), and posts each work request on a QP pair of its own.
 *
 * --pinned runs the same cases with pinned MRs; where they differ from
 * ODP the diagnostics say so.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "odpharness.h"

#define NPG		4
#define MAPLEN		((NPG + 2) * T_PAGE)
#define MROFF		(T_PAGE + 100)		/* MR start in the mapping */
#define MRLEN		(NPG * T_PAGE - 200)	/* ends 100 bytes into a page */
/* A range far from anything mmap() hands out (top-down, near 2^47). */
#define FAR_HOLE	((uint8_t *)(16 * T_TIB))

/* TASK_SIZE: 2^47 - 4 KiB, or 2^56 - 4 KiB with 5-level page tables. */
static uintptr_t find_user_top(void)
{
	void *hint = (void *)(1UL << 50);
	void *p = mmap(hint, T_PAGE, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS |
		       MAP_FIXED_NOREPLACE, -1, 0);

	if (p == MAP_FAILED)
		return (1UL << 47) - T_PAGE;
	munmap(p, T_PAGE);
	return p == hint ? (1UL << 56) - T_PAGE : (1UL << 47) - T_PAGE;
}

static const char *st(int s)
{
	return t_wc_status_str(s);
}

/*
 * The device; the target mapping with the MR in it and the local buffer
 * with its MR, each with an image of what it must hold; and what a test
 * adds: the QP pair of the work request under way, MRs of its own, and
 * the memory of the PROT_NONE case.
 */
FIXTURE(badinput) {
	struct t_dev dev;
	uint8_t *map, *copy;		/* target mapping, its image */
	uint8_t *lbuf, *lcopy;		/* local buffer, its image */
	uint8_t *want;			/* what one of them must hold */
	struct ibv_mr *mr, *lmr;
	uint64_t mr_start, mr_end;	/* iova range of mr */
	uint64_t a8, e8;		/* 8-byte aligned, in the MR */
	uintptr_t user_top;		/* TASK_SIZE */
	struct t_rc_pair pair;
	struct ibv_mr *xmr[3];
	uint8_t *xbuf, *ximg;
	size_t xlen;
};

ODP_VARIANTS(badinput);

FIXTURE_SETUP(badinput)
{
	t_variant();
	ASSERT_EQ(0, t_dev_open(&self->dev));
	self->map = t_mmap(MAPLEN);
	self->lbuf = t_mmap(MAPLEN);
	self->copy = malloc(MAPLEN);
	self->lcopy = malloc(MAPLEN);
	self->want = malloc(MAPLEN);
	ASSERT_NE(NULL, self->map);
	ASSERT_NE(NULL, self->lbuf);
	ASSERT_NE(NULL, self->copy);
	ASSERT_NE(NULL, self->lcopy);
	ASSERT_NE(NULL, self->want);
	t_fill(self->map, MAPLEN, 1);
	t_fill(self->lbuf, MAPLEN, 2);
	memcpy(self->copy, self->map, MAPLEN);
	memcpy(self->lcopy, self->lbuf, MAPLEN);
	self->mr = t_reg_mr(&self->dev, self->map + MROFF, MRLEN,
			    T_ACCESS_ALL);
	ASSERT_NE(NULL, self->mr);
	self->lmr = t_reg_mr(&self->dev, self->lbuf, MAPLEN, T_ACCESS_ALL);
	ASSERT_NE(NULL, self->lmr);
	self->mr_start = (uintptr_t)self->map + MROFF;
	self->mr_end = self->mr_start + MRLEN;
	self->a8 = (self->mr_start + 7) & ~7UL;
	self->e8 = (self->mr_end - 4) & ~7UL;
	self->user_top = find_user_top();
}

FIXTURE_TEARDOWN(badinput)
{
	int i;

	t_rc_pair_destroy(&self->pair);
	for (i = 0; i < (int)T_ARRAY_SIZE(self->xmr); i++)
		t_dereg_mr(self->xmr[i]);
	t_munmap(self->xbuf, self->xlen);
	free(self->ximg);
	t_dereg_mr(self->mr);
	t_dereg_mr(self->lmr);
	t_munmap(self->map, MAPLEN);
	t_munmap(self->lbuf, MAPLEN);
	free(self->copy);
	free(self->lcopy);
	free(self->want);
	t_dev_close(&self->dev);
}

/* What the helpers of the tests take. */
#define BADINPUT_ARGS	struct __test_metadata *_metadata, \
			FIXTURE_DATA(badinput) *self

/* ---- registration ---------------------------------------------------- */

/*
 * ibv_reg_mr(@addr, @len, @access) must fail with @want (0: succeed).
 */
static void reg_case(BADINPUT_ARGS, void *addr, size_t len, int access,
		     int want, const char *what)
{
	struct ibv_mr *m;
	int err;

	errno = 0;
	m = ibv_reg_mr(self->dev.pd, addr, len,
		       access | (t_odp ? IBV_ACCESS_ON_DEMAND : 0));
	err = m ? 0 : errno;
	t_diag("%s: ibv_reg_mr(%p, 0x%zx, 0x%x%s): %s", what, addr, len,
	       access, t_odp ? "|ON_DEMAND" : "",
	       m ? "an MR" : strerror(err));
	if (m && ibv_dereg_mr(m))
		t_diag("ibv_dereg_mr: %s", strerror(errno));
	EXPECT_EQ(want, err) {
		TH_LOG("%s: expected %s", what,
		       want ? strerror(want) : "an MR");
	}
}

/* ---- data path helpers ------------------------------------------------- */

static void unchanged(BADINPUT_ARGS)
{
	EXPECT_BYTES(self->map, self->copy, MAPLEN, "target mapping");
	EXPECT_BYTES(self->lbuf, self->lcopy, MAPLEN, "local buffer");
}

/*
 * A new QP pair writes and reads back fresh data through mr, then the
 * target is put back as it was.
 */
static void fresh_qp_works(BADINPUT_ARGS)
{
	uint8_t *src = self->lbuf + MAPLEN / 2, *dst = self->lbuf;
	uint64_t raddr = self->mr_start + MRLEN / 4;
	int s;

	ASSERT_EQ(0, t_rc_pair_create(&self->dev, &self->pair, NULL));
	t_fill(src, MRLEN / 2, 777);
	s = t_rdma_sync(&self->pair, IBV_WR_RDMA_WRITE, src, MRLEN / 2,
			self->lmr->lkey, raddr, self->mr->rkey);
	EXPECT_WC(IBV_WC_SUCCESS, s);
	if (s == IBV_WC_SUCCESS) {
		EXPECT_BYTES(self->map + MROFF + MRLEN / 4, src, MRLEN / 2,
			     "fresh QP: WRITE target");
		s = t_rdma_sync(&self->pair, IBV_WR_RDMA_READ, dst,
				MRLEN / 2, self->lmr->lkey, raddr,
				self->mr->rkey);
		EXPECT_WC(IBV_WC_SUCCESS, s);
		if (s == IBV_WC_SUCCESS) {
			EXPECT_BYTES(dst, src, MRLEN / 2, "fresh QP: READ");
		}
	}
	if (s)
		t_diag("fresh QP pair: %s", st(s));
	t_rc_pair_destroy(&self->pair);
	memcpy(self->map, self->copy, MAPLEN);
	memcpy(self->lbuf, self->lcopy, MAPLEN);
}

/*
 * Send one WR on a new pair; return its status (-1: post failed, -2: no
 * completion).  @post_err gets ibv_post_send's error.
 */
static int one_wr(BADINPUT_ARGS, struct ibv_send_wr *wr, int *post_err)
{
	struct ibv_send_wr *bad;
	struct ibv_wc wc;
	int s;

	*post_err = 0;
	ASSERT_EQ(0, t_rc_pair_create(&self->dev, &self->pair, NULL));
	*post_err = ibv_post_send(self->pair.qp[0], wr, &bad);
	if (*post_err)
		s = -1;
	else if (t_poll(self->pair.scq[0], 1, &wc) != 1)
		s = -2;
	else
		s = wc.status;
	t_rc_pair_destroy(&self->pair);
	return s;
}

/*
 * The WR ended as @want says (a status, or -1: refused by ibv_post_send),
 * changed nothing, and the MR still works.
 */
static void judge(BADINPUT_ARGS, int s, int post_err, int want,
		  const char *what)
{
	if (s == -1)
		t_diag("%s: ibv_post_send: %s", what, strerror(post_err));
	else if (s == -2)
		t_diag("%s: no completion within %d ms: hung", what,
		       t_timeout_ms);
	else
		t_diag("%s: %s", what, st(s));
	EXPECT_EQ(want, s) {
		TH_LOG("%s: expected %s", what,
		       want == -1 ? "ibv_post_send to refuse it" : st(want));
	}
	unchanged(_metadata, self);
	fresh_qp_works(_metadata, self);
}

static void rdma_case(BADINPUT_ARGS, enum ibv_wr_opcode op, void *laddr,
		      uint32_t len, uint32_t lkey, uint64_t raddr,
		      uint32_t rkey, int want, const char *what)
{
	struct ibv_sge sge = {
		.addr = (uintptr_t)laddr, .length = len, .lkey = lkey,
	};
	struct ibv_send_wr wr = {
		.wr_id = 1, .sg_list = &sge, .num_sge = 1, .opcode = op,
		.send_flags = IBV_SEND_SIGNALED,
		.wr.rdma = { .remote_addr = raddr, .rkey = rkey },
	};
	int post_err, s;

	s = one_wr(_metadata, self, &wr, &post_err);
	judge(_metadata, self, s, post_err, want, what);
}

static void remote(BADINPUT_ARGS, enum ibv_wr_opcode op, uint64_t raddr,
		   uint32_t len, uint32_t rkey, int want, const char *what)
{
	memcpy(self->lcopy, self->lbuf, MAPLEN);
	rdma_case(_metadata, self, op,
		  op == IBV_WR_RDMA_READ ? self->lbuf + 8 : self->lbuf, len,
		  self->lmr->lkey, raddr, rkey, want, what);
}

static void atomic_case(BADINPUT_ARGS, enum ibv_wr_opcode op,
			uint64_t raddr, uint32_t rkey, int want,
			const char *what)
{
	uintptr_t map = (uintptr_t)self->map;
	struct ibv_sge sge = {
		.addr = (uintptr_t)self->lbuf + 64, .length = 8,
		.lkey = self->lmr->lkey,
	};
	struct ibv_send_wr wr = {
		.wr_id = 1, .sg_list = &sge, .num_sge = 1, .opcode = op,
		.send_flags = IBV_SEND_SIGNALED,
		.wr.atomic = { .remote_addr = raddr, .compare_add = 1,
			       .swap = 0x1234, .rkey = rkey },
	};
	int post_err, s;

	/* compare with what is there, so that a wrong swap would show */
	if (raddr >= map && raddr - map <= MAPLEN - 8)
		memcpy(&wr.wr.atomic.compare_add,
		       self->map + (raddr - map), 8);
	memcpy(self->lcopy, self->lbuf, MAPLEN);
	s = one_wr(_metadata, self, &wr, &post_err);
	judge(_metadata, self, s, post_err, want, what);
}

/* ---- registration cases ------------------------------------------------ */

/*
 * odp: zero-length MRs fail with EINVAL
 * pinned: zero-length MRs fail with EINVAL, unless unaligned (one page
 * pinned)
 */
TEST_F(badinput, reg_zero_length)
{
	reg_case(_metadata, self, self->map, 0, T_ACCESS_ALL, EINVAL,
		 "zero length");
	reg_case(_metadata, self, NULL, 0, T_ACCESS_ALL, EINVAL,
		 "zero length at NULL");
	/* ib_umem counts the pages of [ALIGN_DOWN(addr), ALIGN(addr + len)):
	 * one for an unaligned zero-length range, which it pins
	 */
	reg_case(_metadata, self, self->map + 5, 0, IBV_ACCESS_LOCAL_WRITE,
		 variant->odp ? EINVAL : 0, "zero length, unaligned");
}

/* ranges that wrap around 2^64 fail with EINVAL */
TEST_F(badinput, reg_wrapping_range)
{
	uintptr_t a = (uintptr_t)self->map;

	reg_case(_metadata, self, self->map, SIZE_MAX - a + T_PAGE + 1,
		 T_ACCESS_ALL, EINVAL, "addr + len wraps");
	reg_case(_metadata, self, self->map + 123, SIZE_MAX - 4095,
		 T_ACCESS_ALL, EINVAL,
		 "unaligned addr, length SIZE_MAX - 4095");
	reg_case(_metadata, self, self->map, SIZE_MAX, T_ACCESS_ALL, EINVAL,
		 "length SIZE_MAX at a non-NULL address");
	reg_case(_metadata, self, (void *)(uintptr_t)(SIZE_MAX - T_PAGE + 1),
		 T_PAGE, T_ACCESS_ALL, EINVAL, "last page of the 64-bit space");
}

/*
 * ranges past TASK_SIZE fail (odp: EINVAL; up to TASK_SIZE
 * registers; pinned: EINVAL if too long, else EFAULT from the pin)
 */
TEST_F(badinput, reg_past_task_size)
{
	uintptr_t top = self->user_top;
	bool odp = variant->odp;

	t_diag("TASK_SIZE is 0x%lx", (unsigned long)top);
	reg_case(_metadata, self, self->map, top + T_PAGE, T_ACCESS_ALL,
		 EINVAL, "length TASK_SIZE + 4 KiB");
	reg_case(_metadata, self, (void *)(top - T_PAGE + 17), T_PAGE,
		 T_ACCESS_ALL, odp ? EINVAL : EFAULT,
		 "range ending 17 bytes past TASK_SIZE");
	reg_case(_metadata, self, (void *)(top + T_PAGE), T_PAGE,
		 T_ACCESS_ALL, odp ? EINVAL : EFAULT, "range above TASK_SIZE");
	/* control: ODP may mirror up to TASK_SIZE, nothing is mapped there */
	reg_case(_metadata, self, (void *)(top - 16 * T_PAGE), 16 * T_PAGE,
		 T_ACCESS_ALL, odp ? 0 : EFAULT,
		 "the last 64 KiB below TASK_SIZE");
}

/* remote write/atomic rights without LOCAL_WRITE fail with EINVAL */
TEST_F(badinput, reg_remote_rights_without_local_write)
{
	reg_case(_metadata, self, self->map, MAPLEN, IBV_ACCESS_REMOTE_WRITE,
		 EINVAL, "REMOTE_WRITE without LOCAL_WRITE");
	reg_case(_metadata, self, self->map, MAPLEN, IBV_ACCESS_REMOTE_ATOMIC,
		 EINVAL, "REMOTE_ATOMIC without LOCAL_WRITE");
	reg_case(_metadata, self, self->map, MAPLEN, IBV_ACCESS_REMOTE_WRITE |
		 IBV_ACCESS_REMOTE_READ | IBV_ACCESS_REMOTE_ATOMIC, EINVAL,
		 "all remote rights without LOCAL_WRITE");
	/* controls: these make sense */
	reg_case(_metadata, self, self->map, MAPLEN, 0, 0,
		 "no access flags (local read)");
	reg_case(_metadata, self, self->map, MAPLEN, IBV_ACCESS_REMOTE_READ, 0,
		 "REMOTE_READ only");
}

/*
 * ODP: an MR over @len bytes at @addr, which the process cannot access,
 * registers; remote WRITE, READ and atomics into it, and local SGEs in
 * it, fail with access errors; nothing changes.  Pinned: registration
 * fails with EFAULT.  The MR is xmr[0] while it lives.
 */
static void inaccessible(BADINPUT_ARGS, uint8_t *addr, size_t len,
			 const char *what)
{
	struct ibv_mr *m;
	char w[128];
	int err;

	m = t_reg_mr(&self->dev, addr, len, T_ACCESS_ALL);
	err = m ? 0 : errno;
	self->xmr[0] = m;
	if (!t_odp) {
		t_diag("pinned MR over %s: %s", what,
		       m ? "registered" : strerror(err));
		t_dereg_mr(m);
		self->xmr[0] = NULL;
		EXPECT_EQ(EFAULT, err) {
			TH_LOG("pinned MR over %s: expected %s", what,
			       strerror(EFAULT));
		}
		return;
	}
	/* not ASSERT: the caller's checks after this one still run */
	EXPECT_NE(NULL, m) {
		TH_LOG("ODP MR over %s: %s", what, strerror(err));
	}
	if (!m)
		return;
	t_diag("ODP MR over %s: registered", what);
	memcpy(self->lcopy, self->lbuf, MAPLEN);
	snprintf(w, sizeof(w), "RDMA WRITE into %s", what);
	rdma_case(_metadata, self, IBV_WR_RDMA_WRITE, self->lbuf, 64,
		  self->lmr->lkey, (uintptr_t)addr + 64, m->rkey,
		  IBV_WC_REM_ACCESS_ERR, w);
	snprintf(w, sizeof(w), "RDMA READ from %s", what);
	rdma_case(_metadata, self, IBV_WR_RDMA_READ, self->lbuf, 64,
		  self->lmr->lkey, (uintptr_t)addr + 64, m->rkey,
		  IBV_WC_REM_ACCESS_ERR, w);
	snprintf(w, sizeof(w), "FETCH_AND_ADD on %s", what);
	atomic_case(_metadata, self, IBV_WR_ATOMIC_FETCH_AND_ADD,
		    (uintptr_t)addr + 64, m->rkey, IBV_WC_REM_ACCESS_ERR, w);
	snprintf(w, sizeof(w), "RDMA WRITE from a local SGE in %s", what);
	rdma_case(_metadata, self, IBV_WR_RDMA_WRITE, addr + 64, 64, m->lkey,
		  self->mr_start, self->mr->rkey, IBV_WC_LOC_PROT_ERR, w);
	snprintf(w, sizeof(w), "RDMA READ into a local SGE in %s", what);
	rdma_case(_metadata, self, IBV_WR_RDMA_READ, addr + 64, 64, m->lkey,
		  self->mr_start, self->mr->rkey, IBV_WC_LOC_PROT_ERR, w);
	t_dereg_mr(m);
	self->xmr[0] = NULL;
}

/*
 * odp: an MR over an unmapped range registers, every access fails cleanly
 * pinned: an MR over an unmapped range fails with EFAULT
 */
TEST_F(badinput, reg_unmapped_range)
{
	size_t len = 64 * T_PAGE;
	uint8_t *hole = mmap(FAR_HOLE, len, PROT_NONE, MAP_PRIVATE |
			     MAP_ANONYMOUS | MAP_FIXED_NOREPLACE, -1, 0);

	/* make sure the range is free; QPs and CQs created later map their
	 * rings top-down, nowhere near it
	 */
	if (hole != FAR_HOLE) {
		t_diag("mmap(%p, MAP_FIXED_NOREPLACE): %s", FAR_HOLE,
		       hole == MAP_FAILED ? strerror(errno) : "elsewhere");
		if (hole != MAP_FAILED)
			munmap(hole, len);
	}
	ASSERT_EQ(FAR_HOLE, hole);
	munmap(hole, len);
	inaccessible(_metadata, self, hole, len, "an unmapped range");
}

/*
 * odp: an MR over PROT_NONE memory registers, every access fails
 * cleanly, works after mprotect RW
 * pinned: an MR over PROT_NONE memory fails with EFAULT
 */
TEST_F(badinput, reg_prot_none)
{
	size_t len = 16 * T_PAGE;
	struct ibv_mr *m;
	uint8_t *p, *img;
	int s;

	self->xlen = len;
	self->xbuf = t_mmap(len);
	self->ximg = malloc(len);
	ASSERT_NE(NULL, self->xbuf);
	ASSERT_NE(NULL, self->ximg);
	p = self->xbuf;
	img = self->ximg;
	t_fill(p, len, 31);
	memcpy(img, p, len);
	ASSERT_EQ(0, mprotect(p, len, PROT_NONE));
	inaccessible(_metadata, self, p, len, "PROT_NONE memory");
	ASSERT_EQ(0, mprotect(p, len, PROT_READ | PROT_WRITE));
	EXPECT_BYTES(p, img, len, "PROT_NONE memory, made accessible again");
	if (!variant->odp)
		return;
	/* the same ODP MR works once the memory is accessible */
	self->xmr[1] = t_reg_mr(&self->dev, p, len, T_ACCESS_ALL);
	ASSERT_NE(NULL, self->xmr[1]);
	m = self->xmr[1];
	ASSERT_EQ(0, mprotect(p, len, PROT_NONE));
	ASSERT_EQ(0, mprotect(p, len, PROT_READ | PROT_WRITE));
	ASSERT_EQ(0, t_rc_pair_create(&self->dev, &self->pair, NULL));
	memset(self->lbuf, 0, len < MAPLEN ? len : MAPLEN);
	s = t_rdma_sync(&self->pair, IBV_WR_RDMA_READ, self->lbuf, 4 * T_PAGE,
			self->lmr->lkey, (uintptr_t)p, m->rkey);
	EXPECT_WC(IBV_WC_SUCCESS, s);
	if (s == IBV_WC_SUCCESS) {
		EXPECT_BYTES(self->lbuf, img, 4 * T_PAGE,
			     "READ after PROT_NONE -> RW");
	}
	t_rc_pair_destroy(&self->pair);
	memcpy(self->lbuf, self->lcopy, MAPLEN);
}

/* ---- data path cases --------------------------------------------------- */

/* control: a WRITE and a READ through the MR work */
TEST_F(badinput, control_write_read)
{
	fresh_qp_works(_metadata, self);
	unchanged(_metadata, self);
}

/* Control: @op of exactly the MR works and touches nothing around it. */
static void exact_mr(BADINPUT_ARGS, enum ibv_wr_opcode op)
{
	uint8_t *want = self->want;
	int s;

	ASSERT_EQ(0, t_rc_pair_create(&self->dev, &self->pair, NULL));
	if (op == IBV_WR_RDMA_WRITE) {
		memcpy(want, self->copy, MAPLEN);
		memcpy(want + MROFF, self->lbuf, MRLEN);
		s = t_rdma_sync(&self->pair, op, self->lbuf, MRLEN,
				self->lmr->lkey, self->mr_start,
				self->mr->rkey);
		EXPECT_WC(IBV_WC_SUCCESS, s);
		if (s == IBV_WC_SUCCESS) {
			EXPECT_BYTES(self->map, want, MAPLEN,
				     "WRITE of exactly the MR");
		}
	} else {
		memcpy(want, self->lcopy, MAPLEN);
		memcpy(want + 8, self->copy + MROFF, MRLEN);
		s = t_rdma_sync(&self->pair, op, self->lbuf + 8, MRLEN,
				self->lmr->lkey, self->mr_start,
				self->mr->rkey);
		EXPECT_WC(IBV_WC_SUCCESS, s);
		if (s == IBV_WC_SUCCESS) {
			EXPECT_BYTES(self->lbuf, want, MAPLEN,
				     "READ of exactly the MR");
		}
	}
	if (s)
		t_diag("%s of exactly the MR: %s",
		       op == IBV_WR_RDMA_READ ? "READ" : "WRITE", st(s));
	t_rc_pair_destroy(&self->pair);
	memcpy(self->map, self->copy, MAPLEN);
	memcpy(self->lbuf, self->lcopy, MAPLEN);
}

static void out_of_bounds(BADINPUT_ARGS, enum ibv_wr_opcode op)
{
	const char *o = op == IBV_WR_RDMA_READ ? "READ" : "WRITE";
	uint64_t start = self->mr_start, end = self->mr_end;
	uint32_t rkey = self->mr->rkey;
	int e = IBV_WC_REM_ACCESS_ERR;
	char w[128];

	snprintf(w, sizeof(w), "%s 8 bytes ending 1 byte before the MR", o);
	remote(_metadata, self, op, start - 9, 8, rkey, e, w);
	snprintf(w, sizeof(w), "%s 8 bytes starting 1 byte before the MR", o);
	remote(_metadata, self, op, start - 1, 8, rkey, e, w);
	snprintf(w, sizeof(w), "%s 1 byte at the MR's end", o);
	remote(_metadata, self, op, end, 1, rkey, e, w);
	snprintf(w, sizeof(w), "%s 8 bytes straddling the MR's end", o);
	remote(_metadata, self, op, end - 4, 8, rkey, e, w);
	snprintf(w, sizeof(w), "%s of the whole MR plus 1 byte", o);
	remote(_metadata, self, op, start, MRLEN + 1, rkey, e, w);
	snprintf(w, sizeof(w), "%s a page past the MR", o);
	remote(_metadata, self, op, end + T_PAGE, 16, rkey, e, w);
	exact_mr(_metadata, self, op);
}

/*
 * RDMA WRITEs before, after and across the MR's ends:
 * REM_ACCESS_ERR, nothing written
 */
TEST_F(badinput, write_out_of_bounds)
{
	out_of_bounds(_metadata, self, IBV_WR_RDMA_WRITE);
}

/*
 * RDMA READs before, after and across the MR's ends:
 * REM_ACCESS_ERR, nothing read
 */
TEST_F(badinput, read_out_of_bounds)
{
	out_of_bounds(_metadata, self, IBV_WR_RDMA_READ);
}

/*
 * remote address that wraps: REM_ACCESS_ERR; 2 GiB from a small
 * local MR: LOC_QP_OP_ERR
 */
TEST_F(badinput, wrapping_remote_address)
{
	uint32_t rkey = self->mr->rkey;

	remote(_metadata, self, IBV_WR_RDMA_WRITE, UINT64_MAX - 3, 8, rkey,
	       IBV_WC_REM_ACCESS_ERR, "WRITE at 2^64 - 4, length 8 (wraps)");
	remote(_metadata, self, IBV_WR_RDMA_READ, UINT64_MAX - 3, 8, rkey,
	       IBV_WC_REM_ACCESS_ERR, "READ at 2^64 - 4, length 8 (wraps)");
	remote(_metadata, self, IBV_WR_RDMA_WRITE, self->mr_start + 16,
	       0x80000000u, rkey, IBV_WC_LOC_QP_OP_ERR,
	       "WRITE of 2 GiB from a 6-page local MR");
}

/*
 * Two SGEs of 2 GiB each: the WR's length overflows 32 bits.  Return:
 * its status as one_wr() gives it.
 */
static int sge_overflow(BADINPUT_ARGS, int *post_err)
{
	struct ibv_sge sge[2] = {
		{ (uintptr_t)self->lbuf, 0x80000000u, self->lmr->lkey },
		{ (uintptr_t)self->lbuf, 0x80000000u, self->lmr->lkey },
	};
	struct ibv_send_wr wr = {
		.wr_id = 1, .sg_list = sge, .num_sge = 2,
		.opcode = IBV_WR_RDMA_WRITE, .send_flags = IBV_SEND_SIGNALED,
		.wr.rdma = { .remote_addr = self->mr_start,
			     .rkey = self->mr->rkey },
	};

	memcpy(self->lcopy, self->lbuf, MAPLEN);
	return one_wr(_metadata, self, &wr, post_err);
}

/*
 * an SGE list whose length overflows 32 bits: completes, nothing
 * written
 */
TEST_F(badinput, sge_list_overflow_completes)
{
	int post_err, s;

	s = sge_overflow(_metadata, self, &post_err);
	/* an error, or at least no byte moved */
	judge(_metadata, self, s, post_err, s >= 0 ? s : IBV_WC_LOC_LEN_ERR,
	      "WRITE with two 2 GiB SGEs (length overflows 32 bits)");
	EXPECT_GE(s, 0) {
		TH_LOG("the WRITE with two 2 GiB SGEs did not complete: %s",
		       s == -1 ? "refused by ibv_post_send" : "hung");
	}
}

/* a 32-bit overflowing SGE list is refused with an error (its status) */
TEST_F(badinput, sge_list_overflow_refused)
{
	int post_err, s;

	s = sge_overflow(_metadata, self, &post_err);
	if (s == IBV_WC_SUCCESS)
		SKIP(return, "rdma-core's rxe provider sums SGE lengths in 32 bits and posts a 0-byte WRITE, which succeeds");
	EXPECT_GT(s, 0) {
		TH_LOG("a 32-bit overflowing SGE list: %s, expected an error completion",
		       s == -1 ? "refused by ibv_post_send" : st(s));
	}
}

/*
 * unaligned atomics refused by ibv_post_send (EINVAL); atomics
 * across the MR's ends: REM_ACCESS_ERR
 */
TEST_F(badinput, bad_atomics)
{
	uint32_t rkey = self->mr->rkey;
	int e = IBV_WC_REM_ACCESS_ERR;

	/* rdma-core's rxe provider refuses unaligned atomics itself */
	atomic_case(_metadata, self, IBV_WR_ATOMIC_FETCH_AND_ADD, self->a8 + 4,
		    rkey, -1, "FETCH_AND_ADD at an address 4 bytes off 8");
	atomic_case(_metadata, self, IBV_WR_ATOMIC_CMP_AND_SWP, self->a8 + 1,
		    rkey, -1, "CMP_AND_SWP at an address 1 byte off 8");
	atomic_case(_metadata, self, IBV_WR_ATOMIC_FETCH_AND_ADD, self->e8,
		    rkey, e, "FETCH_AND_ADD straddling the MR's end");
	atomic_case(_metadata, self, IBV_WR_ATOMIC_CMP_AND_SWP, self->e8 + 8,
		    rkey, e, "CMP_AND_SWP just past the MR's end");
	atomic_case(_metadata, self, IBV_WR_ATOMIC_FETCH_AND_ADD, self->a8 - 8,
		    rkey, e, "FETCH_AND_ADD straddling the MR's start");
}

/*
 * WRITE/READ/atomics without the MR's remote right: REM_ACCESS_ERR
 * (through MRs over the same range with fewer rights)
 */
TEST_F(badinput, missing_remote_rights)
{
	const int lw = IBV_ACCESS_LOCAL_WRITE;
	uint8_t *at = self->map + MROFF;
	int e = IBV_WC_REM_ACCESS_ERR;
	struct ibv_mr *m1, *m2, *m3;

	self->xmr[0] = t_reg_mr(&self->dev, at, MRLEN,
				lw | IBV_ACCESS_REMOTE_READ |
				IBV_ACCESS_REMOTE_ATOMIC);
	self->xmr[1] = t_reg_mr(&self->dev, at, MRLEN,
				lw | IBV_ACCESS_REMOTE_WRITE);
	self->xmr[2] = t_reg_mr(&self->dev, at, MRLEN,
				lw | IBV_ACCESS_REMOTE_WRITE |
				IBV_ACCESS_REMOTE_READ);
	ASSERT_NE(NULL, self->xmr[0]);
	ASSERT_NE(NULL, self->xmr[1]);
	ASSERT_NE(NULL, self->xmr[2]);
	m1 = self->xmr[0];
	m2 = self->xmr[1];
	m3 = self->xmr[2];
	remote(_metadata, self, IBV_WR_RDMA_WRITE, self->mr_start + 8, 64,
	       m1->rkey, e, "WRITE into an MR without REMOTE_WRITE");
	remote(_metadata, self, IBV_WR_RDMA_READ, self->mr_start + 8, 64,
	       m2->rkey, e, "READ from an MR without REMOTE_READ");
	atomic_case(_metadata, self, IBV_WR_ATOMIC_FETCH_AND_ADD, self->a8 + 8,
		    m3->rkey, e, "FETCH_AND_ADD on an MR without REMOTE_ATOMIC");
	atomic_case(_metadata, self, IBV_WR_ATOMIC_CMP_AND_SWP, self->a8 + 8,
		    m2->rkey, e, "CMP_AND_SWP on an MR without REMOTE_ATOMIC");
}

/*
 * bad rkeys and the rkey of a deregistered MR: REM_ACCESS_ERR (its
 * lkey: LOC_QP_OP_ERR); here the bad rkeys
 */
TEST_F(badinput, bad_rkeys)
{
	uint32_t k = self->mr->rkey ^ 0x5a5a00;
	int e = IBV_WC_REM_ACCESS_ERR;

	remote(_metadata, self, IBV_WR_RDMA_WRITE, self->mr_start, 64, k, e,
	       "WRITE with a bad rkey");
	remote(_metadata, self, IBV_WR_RDMA_READ, self->mr_start, 64, k, e,
	       "READ with a bad rkey");
	atomic_case(_metadata, self, IBV_WR_ATOMIC_FETCH_AND_ADD, self->a8 + 8,
		    k, e, "FETCH_AND_ADD with a bad rkey");
	/* the key's index right, its tag (low byte) wrong */
	remote(_metadata, self, IBV_WR_RDMA_WRITE, self->mr_start, 64,
	       self->mr->rkey ^ 1, e, "WRITE with the rkey's tag byte changed");
}

/*
 * bad rkeys and the rkey of a deregistered MR: REM_ACCESS_ERR (its
 * lkey: LOC_QP_OP_ERR); here the keys of a deregistered MR
 */
TEST_F(badinput, deregistered_mr_keys)
{
	int e = IBV_WC_REM_ACCESS_ERR, s, err;
	uint64_t start = self->mr_start;
	struct ibv_mr *m;
	uint32_t k, lk;

	self->xmr[0] = t_reg_mr(&self->dev, self->map + MROFF, MRLEN,
				T_ACCESS_ALL);
	ASSERT_NE(NULL, self->xmr[0]);
	m = self->xmr[0];
	/* used once, so that a translation would be cached */
	memcpy(self->lcopy, self->lbuf, MAPLEN);
	ASSERT_EQ(0, t_rc_pair_create(&self->dev, &self->pair, NULL));
	s = t_rdma_sync(&self->pair, IBV_WR_RDMA_READ, self->lbuf, MRLEN,
			self->lmr->lkey, start, m->rkey);
	EXPECT_WC(IBV_WC_SUCCESS, s);
	if (s == IBV_WC_SUCCESS) {
		EXPECT_BYTES(self->lbuf, self->map + MROFF, MRLEN,
			     "READ through a second MR");
	}
	t_rc_pair_destroy(&self->pair);
	memcpy(self->lbuf, self->lcopy, MAPLEN);
	k = m->rkey;
	lk = m->lkey;
	err = ibv_dereg_mr(m) ? errno : 0;
	if (!err)
		self->xmr[0] = NULL;
	ASSERT_EQ(0, err) {
		TH_LOG("ibv_dereg_mr: %s", strerror(err));
	}
	remote(_metadata, self, IBV_WR_RDMA_WRITE, start, 64, k, e,
	       "WRITE with the rkey of a deregistered MR");
	remote(_metadata, self, IBV_WR_RDMA_READ, start, 64, k, e,
	       "READ with the rkey of a deregistered MR");
	atomic_case(_metadata, self, IBV_WR_ATOMIC_FETCH_AND_ADD, self->a8 + 8,
		    k, e, "FETCH_AND_ADD with the rkey of a deregistered MR");
	rdma_case(_metadata, self, IBV_WR_RDMA_WRITE, self->map + MROFF, 64,
		  lk, start, self->mr->rkey, IBV_WC_LOC_QP_OP_ERR,
		  "WRITE from the lkey of a deregistered MR");
}

/*
 * bad lkeys (WRITE: LOC_QP_OP_ERR, READ: LOC_PROT_ERR), local SGEs
 * past their MR, READ into a read-only MR: LOC_PROT_ERR
 */
TEST_F(badinput, bad_local_keys)
{
	uint32_t lkey = self->lmr->lkey, rkey = self->mr->rkey;
	uint8_t *lbuf = self->lbuf, *end = lbuf + MAPLEN - 32;
	uint64_t start = self->mr_start;
	struct ibv_mr *ro;

	memcpy(self->lcopy, lbuf, MAPLEN);
	rdma_case(_metadata, self, IBV_WR_RDMA_WRITE, lbuf, 64,
		  lkey ^ 0x5a5a00, start, rkey, IBV_WC_LOC_QP_OP_ERR,
		  "WRITE from a bad lkey");
	rdma_case(_metadata, self, IBV_WR_RDMA_READ, lbuf, 64,
		  lkey ^ 0x5a5a00, start, rkey, IBV_WC_LOC_PROT_ERR,
		  "READ into a bad lkey");
	rdma_case(_metadata, self, IBV_WR_RDMA_WRITE, end, 64, lkey, start,
		  rkey, IBV_WC_LOC_PROT_ERR,
		  "WRITE from a local SGE straddling its MR's end");
	rdma_case(_metadata, self, IBV_WR_RDMA_READ, end, 64, lkey, start,
		  rkey, IBV_WC_LOC_PROT_ERR,
		  "READ into a local SGE straddling its MR's end");
	self->xmr[0] = t_reg_mr(&self->dev, lbuf, MAPLEN,
				IBV_ACCESS_REMOTE_READ);
	ASSERT_NE(NULL, self->xmr[0]);
	ro = self->xmr[0];
	rdma_case(_metadata, self, IBV_WR_RDMA_READ, lbuf, 64, ro->lkey,
		  start, rkey, IBV_WC_LOC_PROT_ERR,
		  "READ into a local MR without LOCAL_WRITE");
}

ODP_HARNESS_MAIN("bad input to ODP MRs: clean errors, nothing changed")
