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
 * --pinned runs the same cases with pinned MRs; where they differ from
 * ODP the diagnostics say so.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "odptest.h"

#define NPG		4
#define MAPLEN		((NPG + 2) * T_PAGE)
#define MROFF		(T_PAGE + 100)		/* MR start in the mapping */
#define MRLEN		(NPG * T_PAGE - 200)	/* ends 100 bytes into a page */
/* A range far from anything mmap() hands out (top-down, near 2^47). */
#define FAR_HOLE	((uint8_t *)(16 * T_TIB))

static struct t_dev dev;
static uint8_t *map, *copy;		/* target mapping, its image */
static uint8_t *lbuf, *lcopy;		/* local buffer, its image */
static struct ibv_mr *mr, *lmr;
static uint64_t mr_start, mr_end;	/* iova range of mr */
static uint64_t a8, e8;			/* 8-byte aligned, in the MR */
static uintptr_t user_top;		/* TASK_SIZE */

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

/* ---- registration ---------------------------------------------------- */

/*
 * ibv_reg_mr(@addr, @len, @access) must fail with @want (0: succeed).
 */
static bool reg_case(void *addr, size_t len, int access, int want,
		     const char *what)
{
	struct ibv_mr *m;
	int err;

	errno = 0;
	m = ibv_reg_mr(dev.pd, addr, len,
		       access | (t_odp ? IBV_ACCESS_ON_DEMAND : 0));
	err = m ? 0 : errno;
	t_diag("%s: ibv_reg_mr(%p, 0x%zx, 0x%x%s): %s", what, addr, len,
	       access, t_odp ? "|ON_DEMAND" : "",
	       m ? "an MR" : strerror(err));
	if (m && ibv_dereg_mr(m))
		t_diag("ibv_dereg_mr: %s", strerror(errno));
	if (err != want)
		t_diag("%s: expected %s", what, want ? strerror(want) : "an MR");
	return err == want;
}

/* ---- data path helpers ------------------------------------------------- */

static bool unchanged(void)
{
	bool ok = t_check(map, copy, MAPLEN, "target mapping");

	return t_check(lbuf, lcopy, MAPLEN, "local buffer") && ok;
}

/* A new QP pair writes and reads back fresh data through mr, then the
 * target is put back as it was.
 */
static bool fresh_qp_works(void)
{
	struct t_rc_pair p;
	uint8_t *src = lbuf + MAPLEN / 2, *dst = lbuf;
	bool ok;
	int s;

	if (t_rc_pair_create(&dev, &p, NULL))
		return false;
	t_fill(src, MRLEN / 2, 777);
	s = t_rdma_sync(&p, IBV_WR_RDMA_WRITE, src, MRLEN / 2, lmr->lkey,
			mr_start + MRLEN / 4, mr->rkey);
	ok = s == IBV_WC_SUCCESS &&
	     t_check(map + MROFF + MRLEN / 4, src, MRLEN / 2,
		     "fresh QP: WRITE target");
	if (ok) {
		s = t_rdma_sync(&p, IBV_WR_RDMA_READ, dst, MRLEN / 2,
				lmr->lkey, mr_start + MRLEN / 4, mr->rkey);
		ok = s == IBV_WC_SUCCESS &&
		     t_check(dst, src, MRLEN / 2, "fresh QP: READ");
	}
	if (s)
		t_diag("fresh QP pair: %s", st(s));
	t_rc_pair_destroy(&p);
	memcpy(map, copy, MAPLEN);
	memcpy(lbuf, lcopy, MAPLEN);
	return ok;
}

/* Send one WR on a new pair; return its status (-1: post failed, -2: no
 * completion).  @post_err gets ibv_post_send's error.
 */
static int one_wr(struct ibv_send_wr *wr, int *post_err)
{
	struct ibv_send_wr *bad;
	struct t_rc_pair p;
	struct ibv_wc wc;
	int s;

	*post_err = 0;
	if (t_rc_pair_create(&dev, &p, NULL))
		return -3;
	*post_err = ibv_post_send(p.qp[0], wr, &bad);
	if (*post_err)
		s = -1;
	else if (t_poll(p.scq[0], 1, &wc) != 1)
		s = -2;
	else
		s = wc.status;
	t_rc_pair_destroy(&p);
	return s;
}

static bool judge(int s, int post_err, int want, const char *what)
{
	bool ok;

	if (s == -1)
		t_diag("%s: ibv_post_send: %s", what, strerror(post_err));
	else if (s == -2)
		t_diag("%s: no completion within %d ms: hung", what,
		       t_timeout_ms);
	else
		t_diag("%s: %s", what, st(s));
	ok = s == want;
	if (!ok)
		t_diag("%s: expected %s", what,
		       want == -1 ? "ibv_post_send to refuse it" : st(want));
	ok = unchanged() && ok;
	return fresh_qp_works() && ok;
}

static bool rdma_case(enum ibv_wr_opcode op, void *laddr, uint32_t len,
		      uint32_t lkey, uint64_t raddr, uint32_t rkey, int want,
		      const char *what)
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

	s = one_wr(&wr, &post_err);
	return judge(s, post_err, want, what);
}

static bool remote(enum ibv_wr_opcode op, uint64_t raddr, uint32_t len,
		   uint32_t rkey, int want, const char *what)
{
	memcpy(lcopy, lbuf, MAPLEN);
	return rdma_case(op, op == IBV_WR_RDMA_READ ? lbuf + 8 : lbuf, len,
			 lmr->lkey, raddr, rkey, want, what);
}

static bool atomic_case(enum ibv_wr_opcode op, uint64_t raddr,
			uint32_t rkey, int want, const char *what)
{
	struct ibv_sge sge = {
		.addr = (uintptr_t)lbuf + 64, .length = 8, .lkey = lmr->lkey,
	};
	struct ibv_send_wr wr = {
		.wr_id = 1, .sg_list = &sge, .num_sge = 1, .opcode = op,
		.send_flags = IBV_SEND_SIGNALED,
		.wr.atomic = { .remote_addr = raddr, .compare_add = 1,
			       .swap = 0x1234, .rkey = rkey },
	};
	int post_err, s;

	/* compare with what is there, so that a wrong swap would show */
	if (raddr >= (uintptr_t)map && raddr - (uintptr_t)map <= MAPLEN - 8)
		memcpy(&wr.wr.atomic.compare_add,
		       map + (raddr - (uintptr_t)map), 8);
	memcpy(lcopy, lbuf, MAPLEN);
	s = one_wr(&wr, &post_err);
	return judge(s, post_err, want, what);
}

/* ---- registration cases ------------------------------------------------ */

static bool reg_zero(void)
{
	bool ok = reg_case(map, 0, T_ACCESS_ALL, EINVAL, "zero length");

	ok = reg_case(NULL, 0, T_ACCESS_ALL, EINVAL, "zero length at NULL") && ok;
	/* ib_umem counts the pages of [ALIGN_DOWN(addr), ALIGN(addr + len)):
	 * one for an unaligned zero-length range, which it pins
	 */
	return reg_case(map + 5, 0, IBV_ACCESS_LOCAL_WRITE, t_odp ? EINVAL : 0,
			"zero length, unaligned") && ok;
}

static bool reg_wrap(void)
{
	uintptr_t a = (uintptr_t)map;
	bool ok;

	ok = reg_case(map, SIZE_MAX - a + T_PAGE + 1, T_ACCESS_ALL, EINVAL,
		      "addr + len wraps");
	ok = reg_case(map + 123, SIZE_MAX - 4095, T_ACCESS_ALL, EINVAL,
		      "unaligned addr, length SIZE_MAX - 4095") && ok;
	ok = reg_case(map, SIZE_MAX, T_ACCESS_ALL, EINVAL,
		      "length SIZE_MAX at a non-NULL address") && ok;
	return reg_case((void *)(uintptr_t)(SIZE_MAX - T_PAGE + 1), T_PAGE,
			T_ACCESS_ALL, EINVAL, "last page of the 64-bit space") &&
	       ok;
}

static bool reg_past_top(void)
{
	bool ok;

	t_diag("TASK_SIZE is 0x%lx", (unsigned long)user_top);
	ok = reg_case(map, user_top + T_PAGE, T_ACCESS_ALL, EINVAL,
		      "length TASK_SIZE + 4 KiB");
	ok = reg_case((void *)(user_top - T_PAGE + 17), T_PAGE,
		      T_ACCESS_ALL, t_odp ? EINVAL : EFAULT,
		      "range ending 17 bytes past TASK_SIZE") && ok;
	ok = reg_case((void *)(user_top + T_PAGE), T_PAGE, T_ACCESS_ALL,
		      t_odp ? EINVAL : EFAULT, "range above TASK_SIZE") && ok;
	/* control: ODP may mirror up to TASK_SIZE, nothing is mapped there */
	return reg_case((void *)(user_top - 16 * T_PAGE), 16 * T_PAGE,
			T_ACCESS_ALL, t_odp ? 0 : EFAULT,
			"the last 64 KiB below TASK_SIZE") && ok;
}

static bool reg_access(void)
{
	bool ok;

	ok = reg_case(map, MAPLEN, IBV_ACCESS_REMOTE_WRITE, EINVAL,
		      "REMOTE_WRITE without LOCAL_WRITE");
	ok = reg_case(map, MAPLEN, IBV_ACCESS_REMOTE_ATOMIC, EINVAL,
		      "REMOTE_ATOMIC without LOCAL_WRITE") && ok;
	ok = reg_case(map, MAPLEN, IBV_ACCESS_REMOTE_WRITE |
		      IBV_ACCESS_REMOTE_READ | IBV_ACCESS_REMOTE_ATOMIC,
		      EINVAL, "all remote rights without LOCAL_WRITE") && ok;
	/* controls: these make sense */
	ok = reg_case(map, MAPLEN, 0, 0, "no access flags (local read)") && ok;
	return reg_case(map, MAPLEN, IBV_ACCESS_REMOTE_READ, 0,
			"REMOTE_READ only") && ok;
}

/*
 * ODP: an MR over @len bytes at @addr, which the process cannot access,
 * registers; remote WRITE, READ and atomics into it, and local SGEs in
 * it, fail with access errors; nothing changes.  Pinned: registration
 * fails with EFAULT.
 */
static bool inaccessible(uint8_t *addr, size_t len, const char *what)
{
	struct ibv_mr *m;
	bool ok = true;
	char w[128];

	m = t_reg_mr(&dev, addr, len, T_ACCESS_ALL);
	if (!t_odp) {
		int err = m ? 0 : errno;

		t_diag("pinned MR over %s: %s", what,
		       m ? "registered" : strerror(err));
		t_dereg_mr(m);
		return err == EFAULT;
	}
	if (!m)
		return false;
	t_diag("ODP MR over %s: registered", what);
	memcpy(lcopy, lbuf, MAPLEN);
	snprintf(w, sizeof(w), "RDMA WRITE into %s", what);
	ok = rdma_case(IBV_WR_RDMA_WRITE, lbuf, 64, lmr->lkey,
		       (uintptr_t)addr + 64, m->rkey, IBV_WC_REM_ACCESS_ERR,
		       w) && ok;
	snprintf(w, sizeof(w), "RDMA READ from %s", what);
	ok = rdma_case(IBV_WR_RDMA_READ, lbuf, 64, lmr->lkey,
		       (uintptr_t)addr + 64, m->rkey, IBV_WC_REM_ACCESS_ERR,
		       w) && ok;
	snprintf(w, sizeof(w), "FETCH_AND_ADD on %s", what);
	ok = atomic_case(IBV_WR_ATOMIC_FETCH_AND_ADD, (uintptr_t)addr + 64,
			 m->rkey, IBV_WC_REM_ACCESS_ERR, w) && ok;
	snprintf(w, sizeof(w), "RDMA WRITE from a local SGE in %s", what);
	ok = rdma_case(IBV_WR_RDMA_WRITE, addr + 64, 64, m->lkey,
		       mr_start, mr->rkey, IBV_WC_LOC_PROT_ERR, w) && ok;
	snprintf(w, sizeof(w), "RDMA READ into a local SGE in %s", what);
	ok = rdma_case(IBV_WR_RDMA_READ, addr + 64, 64, m->lkey,
		       mr_start, mr->rkey, IBV_WC_LOC_PROT_ERR, w) && ok;
	t_dereg_mr(m);
	return ok;
}

static bool reg_unmapped(void)
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
		return false;
	}
	munmap(hole, len);
	return inaccessible(hole, len, "an unmapped range");
}

static bool reg_protnone(void)
{
	size_t len = 16 * T_PAGE;
	uint8_t *p = t_mmap(len), *img = malloc(len);
	struct ibv_mr *m;
	struct t_rc_pair pr;
	bool ok;
	int s;

	if (!p || !img) {
		free(img);
		t_munmap(p, len);
		return false;
	}
	t_fill(p, len, 31);
	memcpy(img, p, len);
	ok = !mprotect(p, len, PROT_NONE);
	ok = inaccessible(p, len, "PROT_NONE memory") && ok;
	ok = !mprotect(p, len, PROT_READ | PROT_WRITE) && ok;
	ok = t_check(p, img, len, "PROT_NONE memory, made accessible again") &&
	     ok;
	if (t_odp) {
		/* the same ODP MR works once the memory is accessible */
		m = t_reg_mr(&dev, p, len, T_ACCESS_ALL);
		ok = ok && m && !mprotect(p, len, PROT_NONE) &&
		     !mprotect(p, len, PROT_READ | PROT_WRITE);
		if (ok && !t_rc_pair_create(&dev, &pr, NULL)) {
			memset(lbuf, 0, len < MAPLEN ? len : MAPLEN);
			s = t_rdma_sync(&pr, IBV_WR_RDMA_READ, lbuf, 4 * T_PAGE,
					lmr->lkey, (uintptr_t)p, m->rkey);
			ok = s == IBV_WC_SUCCESS &&
			     t_check(lbuf, img, 4 * T_PAGE,
				     "READ after PROT_NONE -> RW");
			t_rc_pair_destroy(&pr);
			memcpy(lbuf, lcopy, MAPLEN);
		} else {
			ok = false;
		}
		t_dereg_mr(m);
	}
	t_munmap(p, len);
	free(img);
	return ok;
}

/* ---- data path cases --------------------------------------------------- */

/* Control: @op of exactly the MR works and touches nothing around it. */
static bool exact_mr(enum ibv_wr_opcode op)
{
	uint8_t *want = malloc(MAPLEN);
	struct t_rc_pair p;
	bool ok;
	int s;

	if (!want || t_rc_pair_create(&dev, &p, NULL)) {
		free(want);
		return false;
	}
	if (op == IBV_WR_RDMA_WRITE) {
		memcpy(want, copy, MAPLEN);
		memcpy(want + MROFF, lbuf, MRLEN);
		s = t_rdma_sync(&p, op, lbuf, MRLEN, lmr->lkey, mr_start,
				mr->rkey);
		ok = s == IBV_WC_SUCCESS &&
		     t_check(map, want, MAPLEN, "WRITE of exactly the MR");
	} else {
		memcpy(want, lcopy, MAPLEN);
		memcpy(want + 8, copy + MROFF, MRLEN);
		s = t_rdma_sync(&p, op, lbuf + 8, MRLEN, lmr->lkey, mr_start,
				mr->rkey);
		ok = s == IBV_WC_SUCCESS &&
		     t_check(lbuf, want, MAPLEN, "READ of exactly the MR");
	}
	if (s)
		t_diag("%s of exactly the MR: %s",
		       op == IBV_WR_RDMA_READ ? "READ" : "WRITE", st(s));
	t_rc_pair_destroy(&p);
	memcpy(map, copy, MAPLEN);
	memcpy(lbuf, lcopy, MAPLEN);
	free(want);
	return ok;
}

static bool out_of_bounds(enum ibv_wr_opcode op)
{
	const char *o = op == IBV_WR_RDMA_READ ? "READ" : "WRITE";
	int e = IBV_WC_REM_ACCESS_ERR;
	char w[128];
	bool ok;

	snprintf(w, sizeof(w), "%s 8 bytes ending 1 byte before the MR", o);
	ok = remote(op, mr_start - 9, 8, mr->rkey, e, w);
	snprintf(w, sizeof(w), "%s 8 bytes starting 1 byte before the MR", o);
	ok = remote(op, mr_start - 1, 8, mr->rkey, e, w) && ok;
	snprintf(w, sizeof(w), "%s 1 byte at the MR's end", o);
	ok = remote(op, mr_end, 1, mr->rkey, e, w) && ok;
	snprintf(w, sizeof(w), "%s 8 bytes straddling the MR's end", o);
	ok = remote(op, mr_end - 4, 8, mr->rkey, e, w) && ok;
	snprintf(w, sizeof(w), "%s of the whole MR plus 1 byte", o);
	ok = remote(op, mr_start, MRLEN + 1, mr->rkey, e, w) && ok;
	snprintf(w, sizeof(w), "%s a page past the MR", o);
	ok = remote(op, mr_end + T_PAGE, 16, mr->rkey, e, w) && ok;
	return exact_mr(op) && ok;
}

static bool wrap_addr(void)
{
	bool ok;

	ok = remote(IBV_WR_RDMA_WRITE, UINT64_MAX - 3, 8, mr->rkey,
		    IBV_WC_REM_ACCESS_ERR, "WRITE at 2^64 - 4, length 8 (wraps)");
	ok = remote(IBV_WR_RDMA_READ, UINT64_MAX - 3, 8, mr->rkey,
		    IBV_WC_REM_ACCESS_ERR, "READ at 2^64 - 4, length 8 (wraps)") &&
	     ok;
	return remote(IBV_WR_RDMA_WRITE, mr_start + 16, 0x80000000u,
		      mr->rkey, IBV_WC_LOC_QP_OP_ERR,
		      "WRITE of 2 GiB from a 6-page local MR") && ok;
}

static int sge_overflow_status = -3;

/* Two SGEs of 2 GiB each: the WR's length overflows 32 bits. */
static bool sge_overflow(void)
{
	struct ibv_sge sge[2] = {
		{ (uintptr_t)lbuf, 0x80000000u, lmr->lkey },
		{ (uintptr_t)lbuf, 0x80000000u, lmr->lkey },
	};
	struct ibv_send_wr wr = {
		.wr_id = 1, .sg_list = sge, .num_sge = 2,
		.opcode = IBV_WR_RDMA_WRITE, .send_flags = IBV_SEND_SIGNALED,
		.wr.rdma = { .remote_addr = mr_start, .rkey = mr->rkey },
	};
	int post_err, s;

	memcpy(lcopy, lbuf, MAPLEN);
	s = one_wr(&wr, &post_err);
	sge_overflow_status = s;
	/* an error, or at least no byte moved */
	return judge(s, post_err, s >= 0 ? s : IBV_WC_LOC_LEN_ERR,
		     "WRITE with two 2 GiB SGEs (length overflows 32 bits)") &&
	       s >= 0;
}

static bool atomics_bad(void)
{
	int e = IBV_WC_REM_ACCESS_ERR;
	bool ok;

	/* rdma-core's rxe provider refuses unaligned atomics itself */
	ok = atomic_case(IBV_WR_ATOMIC_FETCH_AND_ADD, a8 + 4, mr->rkey, -1,
			 "FETCH_AND_ADD at an address 4 bytes off 8");
	ok = atomic_case(IBV_WR_ATOMIC_CMP_AND_SWP, a8 + 1, mr->rkey, -1,
			 "CMP_AND_SWP at an address 1 byte off 8") && ok;
	ok = atomic_case(IBV_WR_ATOMIC_FETCH_AND_ADD, e8, mr->rkey, e,
			 "FETCH_AND_ADD straddling the MR's end") && ok;
	ok = atomic_case(IBV_WR_ATOMIC_CMP_AND_SWP, e8 + 8, mr->rkey, e,
			 "CMP_AND_SWP just past the MR's end") && ok;
	return atomic_case(IBV_WR_ATOMIC_FETCH_AND_ADD, a8 - 8, mr->rkey, e,
			   "FETCH_AND_ADD straddling the MR's start") && ok;
}

/* An MR over the same range with fewer rights. */
static bool rights(void)
{
	const int lw = IBV_ACCESS_LOCAL_WRITE;
	struct ibv_mr *m1, *m2, *m3;
	int e = IBV_WC_REM_ACCESS_ERR;
	bool ok;

	m1 = t_reg_mr(&dev, map + MROFF, MRLEN, lw | IBV_ACCESS_REMOTE_READ |
		      IBV_ACCESS_REMOTE_ATOMIC);
	m2 = t_reg_mr(&dev, map + MROFF, MRLEN, lw | IBV_ACCESS_REMOTE_WRITE);
	m3 = t_reg_mr(&dev, map + MROFF, MRLEN, lw | IBV_ACCESS_REMOTE_WRITE |
		      IBV_ACCESS_REMOTE_READ);
	ok = m1 && m2 && m3;
	if (ok) {
		ok = remote(IBV_WR_RDMA_WRITE, mr_start + 8, 64, m1->rkey, e,
			    "WRITE into an MR without REMOTE_WRITE");
		ok = remote(IBV_WR_RDMA_READ, mr_start + 8, 64, m2->rkey, e,
			    "READ from an MR without REMOTE_READ") && ok;
		ok = atomic_case(IBV_WR_ATOMIC_FETCH_AND_ADD, a8 + 8,
				 m3->rkey, e,
				 "FETCH_AND_ADD on an MR without REMOTE_ATOMIC") &&
		     ok;
		ok = atomic_case(IBV_WR_ATOMIC_CMP_AND_SWP, a8 + 8,
				 m2->rkey, e,
				 "CMP_AND_SWP on an MR without REMOTE_ATOMIC") &&
		     ok;
	}
	t_dereg_mr(m1);
	t_dereg_mr(m2);
	t_dereg_mr(m3);
	return ok;
}

static bool bad_rkeys(void)
{
	uint32_t k = mr->rkey ^ 0x5a5a00;
	int e = IBV_WC_REM_ACCESS_ERR;
	bool ok;

	ok = remote(IBV_WR_RDMA_WRITE, mr_start, 64, k, e, "WRITE with a bad rkey");
	ok = remote(IBV_WR_RDMA_READ, mr_start, 64, k, e, "READ with a bad rkey") && ok;
	ok = atomic_case(IBV_WR_ATOMIC_FETCH_AND_ADD, a8 + 8, k, e,
			 "FETCH_AND_ADD with a bad rkey") && ok;
	/* the key's index right, its tag (low byte) wrong */
	return remote(IBV_WR_RDMA_WRITE, mr_start, 64, mr->rkey ^ 1, e,
		      "WRITE with the rkey's tag byte changed") && ok;
}

static bool dereg_rkey(void)
{
	struct ibv_mr *m;
	uint32_t k, lk;
	int e = IBV_WC_REM_ACCESS_ERR, s;
	struct t_rc_pair p;
	bool ok;

	m = t_reg_mr(&dev, map + MROFF, MRLEN, T_ACCESS_ALL);
	if (!m)
		return false;
	/* used once, so that a translation would be cached */
	memcpy(lcopy, lbuf, MAPLEN);
	if (t_rc_pair_create(&dev, &p, NULL)) {
		t_dereg_mr(m);
		return false;
	}
	s = t_rdma_sync(&p, IBV_WR_RDMA_READ, lbuf, MRLEN, lmr->lkey,
			mr_start, m->rkey);
	ok = s == IBV_WC_SUCCESS &&
	     t_check(lbuf, map + MROFF, MRLEN, "READ through a second MR");
	t_rc_pair_destroy(&p);
	memcpy(lbuf, lcopy, MAPLEN);
	k = m->rkey;
	lk = m->lkey;
	if (ibv_dereg_mr(m)) {
		t_diag("ibv_dereg_mr: %s", strerror(errno));
		return false;
	}
	ok = remote(IBV_WR_RDMA_WRITE, mr_start, 64, k, e,
		    "WRITE with the rkey of a deregistered MR") && ok;
	ok = remote(IBV_WR_RDMA_READ, mr_start, 64, k, e,
		    "READ with the rkey of a deregistered MR") && ok;
	ok = atomic_case(IBV_WR_ATOMIC_FETCH_AND_ADD, a8 + 8, k, e,
			 "FETCH_AND_ADD with the rkey of a deregistered MR") &&
	     ok;
	ok = rdma_case(IBV_WR_RDMA_WRITE, map + MROFF, 64, lk, mr_start,
		       mr->rkey, IBV_WC_LOC_QP_OP_ERR,
		       "WRITE from the lkey of a deregistered MR") && ok;
	return ok;
}

static bool local_bad(void)
{
	struct ibv_mr *ro;
	bool ok;

	memcpy(lcopy, lbuf, MAPLEN);
	ok = rdma_case(IBV_WR_RDMA_WRITE, lbuf, 64, lmr->lkey ^ 0x5a5a00,
		       mr_start, mr->rkey, IBV_WC_LOC_QP_OP_ERR,
		       "WRITE from a bad lkey");
	ok = rdma_case(IBV_WR_RDMA_READ, lbuf, 64, lmr->lkey ^ 0x5a5a00,
		       mr_start, mr->rkey, IBV_WC_LOC_PROT_ERR,
		       "READ into a bad lkey") && ok;
	ok = rdma_case(IBV_WR_RDMA_WRITE, lbuf + MAPLEN - 32, 64, lmr->lkey,
		       mr_start, mr->rkey, IBV_WC_LOC_PROT_ERR,
		       "WRITE from a local SGE straddling its MR's end") && ok;
	ok = rdma_case(IBV_WR_RDMA_READ, lbuf + MAPLEN - 32, 64, lmr->lkey,
		       mr_start, mr->rkey, IBV_WC_LOC_PROT_ERR,
		       "READ into a local SGE straddling its MR's end") && ok;
	ro = t_reg_mr(&dev, lbuf, MAPLEN, IBV_ACCESS_REMOTE_READ);
	if (!ro)
		return false;
	ok = rdma_case(IBV_WR_RDMA_READ, lbuf, 64, ro->lkey, mr_start,
		       mr->rkey, IBV_WC_LOC_PROT_ERR,
		       "READ into a local MR without LOCAL_WRITE") && ok;
	t_dereg_mr(ro);
	return ok;
}

int main(int argc, char **argv)
{
	t_init(argc, argv, "bad input to ODP MRs: clean errors, nothing changed");
	t_plan(16);
	if (t_dev_open(&dev))
		t_bail("cannot open the RDMA device");

	map = t_mmap(MAPLEN);
	lbuf = t_mmap(MAPLEN);
	copy = malloc(MAPLEN);
	lcopy = malloc(MAPLEN);
	if (!map || !lbuf || !copy || !lcopy)
		t_bail("out of memory");
	t_fill(map, MAPLEN, 1);
	t_fill(lbuf, MAPLEN, 2);
	memcpy(copy, map, MAPLEN);
	memcpy(lcopy, lbuf, MAPLEN);
	mr = t_reg_mr(&dev, map + MROFF, MRLEN, T_ACCESS_ALL);
	lmr = t_reg_mr(&dev, lbuf, MAPLEN, T_ACCESS_ALL);
	if (!mr || !lmr)
		t_bail("cannot register the MRs");
	mr_start = (uintptr_t)map + MROFF;
	mr_end = mr_start + MRLEN;
	a8 = (mr_start + 7) & ~7UL;
	e8 = (mr_end - 4) & ~7UL;
	user_top = find_user_top();

	t_result(reg_zero(), t_odp ? "odp: zero-length MRs fail with EINVAL" :
		 "pinned: zero-length MRs fail with EINVAL, unless unaligned (one page pinned)");
	t_result(reg_wrap(), "%s: ranges that wrap around 2^64 fail with EINVAL",
		 t_mode());
	t_result(reg_past_top(), "%s: ranges past TASK_SIZE fail (%s)",
		 t_mode(), t_odp ? "EINVAL; up to TASK_SIZE registers" :
		 "EINVAL if too long, else EFAULT from the pin");
	t_result(reg_access(), "%s: remote write/atomic rights without LOCAL_WRITE fail with EINVAL",
		 t_mode());
	t_result(reg_unmapped(), t_odp ?
		 "odp: an MR over an unmapped range registers, every access fails cleanly" :
		 "pinned: an MR over an unmapped range fails with EFAULT");
	t_result(reg_protnone(), t_odp ?
		 "odp: an MR over PROT_NONE memory registers, every access fails cleanly, works after mprotect RW" :
		 "pinned: an MR over PROT_NONE memory fails with EFAULT");
	t_result(fresh_qp_works() && unchanged(), "%s: control: a WRITE and a READ through the MR work",
		 t_mode());
	t_result(out_of_bounds(IBV_WR_RDMA_WRITE), "%s: RDMA WRITEs before, after and across the MR's ends: REM_ACCESS_ERR, nothing written",
		 t_mode());
	t_result(out_of_bounds(IBV_WR_RDMA_READ), "%s: RDMA READs before, after and across the MR's ends: REM_ACCESS_ERR, nothing read",
		 t_mode());
	t_result(wrap_addr(), "%s: remote address that wraps: REM_ACCESS_ERR; 2 GiB from a small local MR: LOC_QP_OP_ERR",
		 t_mode());
	t_result(sge_overflow(), "%s: an SGE list whose length overflows 32 bits: completes, nothing written",
		 t_mode());
	if (sge_overflow_status == IBV_WC_SUCCESS)
		t_skip("rdma-core's rxe provider sums SGE lengths in 32 bits and posts a 0-byte WRITE, which succeeds",
		       "%s: a 32-bit overflowing SGE list is refused with an error", t_mode());
	else
		t_result(sge_overflow_status > 0, "%s: a 32-bit overflowing SGE list is refused with an error (%s)",
			 t_mode(), st(sge_overflow_status));
	t_result(atomics_bad(), "%s: unaligned atomics refused by ibv_post_send (EINVAL); atomics across the MR's ends: REM_ACCESS_ERR",
		 t_mode());
	t_result(rights(), "%s: WRITE/READ/atomics without the MR's remote right: REM_ACCESS_ERR",
		 t_mode());
	t_result(bad_rkeys() && dereg_rkey(), "%s: bad rkeys and the rkey of a deregistered MR: REM_ACCESS_ERR (its lkey: LOC_QP_OP_ERR)",
		 t_mode());
	t_result(local_bad(), "%s: bad lkeys (WRITE: LOC_QP_OP_ERR, READ: LOC_PROT_ERR), local SGEs past their MR, READ into a read-only MR: LOC_PROT_ERR",
		 t_mode());

	t_dereg_mr(mr);
	t_dereg_mr(lmr);
	t_munmap(map, MAPLEN);
	t_munmap(lbuf, MAPLEN);
	free(copy);
	free(lcopy);
	t_dev_close(&dev);
	return t_finish();
}
