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
 * Pinned MRs (--pinned) do not follow mprotect: the pages were pinned
 * writable at registration, so the device keeps writing into them.  The
 * pinned run asserts exactly that (the WRITE and the READ into read-only
 * memory succeed and their data lands), as the contrast to ODP.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "odptest.h"

#define NPAGES	16
#define LEN	(NPAGES * T_PAGE)

static struct t_dev dev;
static uint8_t *buf, *copy, *local, *rd;
static struct ibv_mr *mr, *lmr, *rdmr;

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

/* Remote WRITE of @len bytes at @off into the read-only buffer. */
static bool write_into_readonly(size_t off, size_t len, uint64_t seed,
				const char *where)
{
	struct t_rc_pair p;
	int s;
	bool ok;

	if (t_rc_pair_create(&dev, &p, NULL))
		return false;
	t_fill(local, len, seed);
	s = t_rdma_sync(&p, IBV_WR_RDMA_WRITE, local, len, lmr->lkey,
			(uintptr_t)buf + off, mr->rkey);
	t_diag("WRITE of %zu bytes into read-only %s: %s", len, where, st(s));
	if (t_odp) {
		ok = s == IBV_WC_REM_ACCESS_ERR;
		ok = t_check(buf, copy, LEN, "read-only buffer") && ok;
		if (s != 0)
			qp_states(&p);
	} else {
		/* Pinned: the write lands in spite of PROT_READ. */
		memcpy(copy + off, local, len);
		ok = s == IBV_WC_SUCCESS;
		ok = t_check(buf, copy, LEN, "pinned read-only buffer") && ok;
	}
	t_rc_pair_destroy(&p);
	return ok;
}

/* RDMA READ with the local SGE in a read-only range of the local MR. */
static bool read_into_readonly(void)
{
	size_t off = 2 * T_PAGE + 300, len = 3 * T_PAGE;
	struct t_rc_pair p;
	uint8_t *lcopy;
	bool ok;
	int s;

	lcopy = malloc(LEN);
	if (!lcopy || t_rc_pair_create(&dev, &p, NULL)) {
		free(lcopy);
		return false;
	}
	t_fill(local, LEN, 77);
	memcpy(lcopy, local, LEN);
	ok = do_mprotect(local, LEN, PROT_READ);
	s = t_rdma_sync(&p, IBV_WR_RDMA_READ, local + off, len, lmr->lkey,
			(uintptr_t)buf + off, mr->rkey);
	t_diag("READ of %zu bytes into a read-only local range: %s", len,
	       st(s));
	if (t_odp) {
		ok = s == IBV_WC_LOC_PROT_ERR && ok;
		ok = t_check(local, lcopy, LEN, "read-only local buffer") && ok;
		if (s != 0)
			qp_states(&p);
	} else {
		memcpy(lcopy + off, buf + off, len);
		ok = s == IBV_WC_SUCCESS && ok;
		ok = t_check(local, lcopy, LEN, "pinned read-only local buffer") &&
		     ok;
	}
	t_rc_pair_destroy(&p);
	ok = do_mprotect(local, LEN, PROT_READ | PROT_WRITE) && ok;

	/* Writable again: the same READ on a new pair lands. */
	if (t_rc_pair_create(&dev, &p, NULL)) {
		free(lcopy);
		return false;
	}
	memcpy(lcopy + off, buf + off, len);
	s = t_rdma_sync(&p, IBV_WR_RDMA_READ, local + off, len, lmr->lkey,
			(uintptr_t)buf + off, mr->rkey);
	if (s != IBV_WC_SUCCESS)
		t_diag("READ into the local range made writable again: %s",
		       st(s));
	ok = s == IBV_WC_SUCCESS && ok;
	ok = t_check(local, lcopy, LEN, "local buffer writable again") && ok;
	t_rc_pair_destroy(&p);
	free(lcopy);
	return ok;
}

/*
 * RDMA READ of the whole buffer after its second half has become PROT_NONE:
 * the first pages are mapped for the device (case 1 read them), so the
 * responder sends their response packets before it finds the rest gone.
 */
static bool read_cut_off(void)
{
	size_t good = 4 * T_PAGE;
	struct t_rc_pair p;
	bool ok;
	int s;

	if (t_rc_pair_create(&dev, &p, NULL))
		return false;
	ok = do_mprotect(buf + good, LEN - good, PROT_NONE);
	memset(rd, 0xa5, LEN);
	s = t_rdma_sync(&p, IBV_WR_RDMA_READ, rd, LEN, rdmr->lkey,
			(uintptr_t)buf, mr->rkey);
	t_diag("READ of %zu bytes, the last %zu of them PROT_NONE: %s", (size_t)LEN,
	       (size_t)LEN - good, st(s));
	ok = do_mprotect(buf + good, LEN - good, PROT_READ | PROT_WRITE) && ok;
	if (t_odp) {
		size_t i = good;

		ok = s == IBV_WC_REM_ACCESS_ERR && ok;
		/* what arrived before the NAK is the data, the rest untouched */
		ok = t_check(rd, copy, good, "READ before the PROT_NONE pages") &&
		     ok;
		while (i < LEN && rd[i] == 0xa5)
			i++;
		if (i < LEN)
			t_diag("byte %zu of the READ target changed after the error",
			       i);
		ok = i == LEN && ok;
		if (s != 0)
			qp_states(&p);
	} else {
		ok = s == IBV_WC_SUCCESS && ok;
		ok = t_check(rd, copy, LEN, "pinned READ of PROT_NONE pages") &&
		     ok;
	}
	t_rc_pair_destroy(&p);
	return ok;
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

static bool stale_read_replays(void)
{
	int i, s = 0, w = 0, timeout = t_rc_timeout;
	struct t_rc_pair p;
	long dup;
	bool ok = true;

	t_rc_timeout = 1;
	i = t_rc_pair_create(&dev, &p, NULL);
	t_rc_timeout = timeout;
	if (i)
		return false;
	dup = t_hw_counter(&dev, "duplicate_request");
	for (i = 0; ok && i < STALE_ROUNDS; i++) {
		s = t_rdma_sync(&p, IBV_WR_RDMA_READ, rd, LEN, rdmr->lkey,
				(uintptr_t)buf, mr->rkey);
		ok = s == IBV_WC_SUCCESS &&
		     t_check(rd, copy, LEN, "READ before PROT_NONE");
		ok = do_mprotect(buf, LEN, PROT_NONE) && ok;
		t_fill(local, T_PAGE, 100 + i);
		w = t_rdma_sync(&p, IBV_WR_RDMA_WRITE, local, T_PAGE,
				lmr->lkey, (uintptr_t)rd, rdmr->rkey);
		ok = ok && w == IBV_WC_SUCCESS &&
		     t_check(rd, local, T_PAGE, "WRITE after PROT_NONE");
		ok = do_mprotect(buf, LEN, PROT_READ | PROT_WRITE) && ok;
	}
	dup = t_hw_counter(&dev, "duplicate_request") - dup;
	t_diag("%d rounds of READ, PROT_NONE, WRITE elsewhere: READ %s, WRITE %s; the responder saw %ld duplicate requests",
	       i, st(s), st(w), dup);
	if (!ok)
		qp_states(&p);
	t_rc_pair_destroy(&p);
	return ok;
}

int main(int argc, char **argv)
{
	const int access = IBV_ACCESS_LOCAL_WRITE | IBV_ACCESS_REMOTE_WRITE |
			   IBV_ACCESS_REMOTE_READ;
	size_t half = LEN / 2;
	struct t_rc_pair p;
	bool ok;
	int s;

	t_init(argc, argv, "ODP MRs follow mprotect()");
	t_plan(8);
	if (t_dev_open(&dev))
		t_bail("cannot open the RDMA device");
	buf = t_mmap(LEN);
	local = t_mmap(LEN);
	rd = t_mmap(LEN);
	copy = malloc(LEN);
	if (!buf || !local || !rd || !copy)
		t_bail("out of memory");
	mr = t_reg_mr(&dev, buf, LEN, access);
	lmr = t_reg_mr(&dev, local, LEN, access);
	rdmr = t_reg_mr(&dev, rd, LEN, access);
	if (!mr || !lmr || !rdmr)
		t_bail("cannot register %s MRs", t_mode());
	if (t_rc_pair_create(&dev, &p, NULL))
		t_bail("cannot create a QP pair");

	/*
	 * First half: the device writes it (so, with ODP, it has mapped the
	 * pages writable).  Second half: the CPU writes it; the device has
	 * never touched those pages.
	 */
	t_fill(local, half, 1);
	ok = t_rdma_sync(&p, IBV_WR_RDMA_WRITE, local, half, lmr->lkey,
			 (uintptr_t)buf, mr->rkey) == IBV_WC_SUCCESS;
	ok = ok && t_check(buf, local, half, "initial WRITE");
	if (!ok)
		t_bail("initial RDMA WRITE into the buffer failed");
	t_fill(buf + half, half, 2);
	memcpy(copy, buf, LEN);
	if (!do_mprotect(buf, LEN, PROT_READ))
		t_bail("mprotect");

	/* 1: READ from the read-only MR. */
	s = t_rdma_sync(&p, IBV_WR_RDMA_READ, rd, LEN, rdmr->lkey,
			(uintptr_t)buf, mr->rkey);
	if (s)
		t_diag("READ from read-only buffer: %s", st(s));
	ok = s == IBV_WC_SUCCESS;
	ok = t_check(rd, copy, LEN, "READ from read-only buffer") && ok;
	t_result(ok, "RDMA READ from a PROT_READ %s MR returns its data",
		 t_mode());
	t_rc_pair_destroy(&p);

	/* 2, 3: remote WRITE into read-only memory. */
	if (t_odp) {
		t_result(write_into_readonly(T_PAGE + 100, 3 * T_PAGE, 3,
					     "pages the device had mapped"),
			 "remote WRITE into PROT_READ pages the device wrote before: IBV_WC_REM_ACCESS_ERR, no byte changed");
		t_result(write_into_readonly(half + 5, 2 * T_PAGE, 4,
					     "pages the device never touched"),
			 "remote WRITE into PROT_READ pages the device never touched: IBV_WC_REM_ACCESS_ERR, no byte changed");
	} else {
		t_result(write_into_readonly(T_PAGE + 100, 3 * T_PAGE, 3,
					     "pinned pages"),
			 "pinned contrast: remote WRITE into PROT_READ pinned pages succeeds and lands");
		t_result(write_into_readonly(half + 5, 2 * T_PAGE, 4,
					     "pinned pages"),
			 "pinned contrast: remote WRITE into other PROT_READ pinned pages lands");
	}

	/* 4: writable again, new QP pair: writes land everywhere. */
	ok = do_mprotect(buf, LEN, PROT_READ | PROT_WRITE);
	if (!t_rc_pair_create(&dev, &p, NULL)) {
		t_fill(local, LEN - 2 * T_PAGE, 5);
		memcpy(copy + T_PAGE - 1, local, LEN - 2 * T_PAGE);
		s = t_rdma_sync(&p, IBV_WR_RDMA_WRITE, local,
				LEN - 2 * T_PAGE, lmr->lkey,
				(uintptr_t)buf + T_PAGE - 1, mr->rkey);
		if (s)
			t_diag("WRITE after PROT_READ|PROT_WRITE: %s", st(s));
		ok = s == IBV_WC_SUCCESS && ok;
		ok = t_check(buf, copy, LEN, "buffer writable again") && ok;
		t_rc_pair_destroy(&p);
	} else {
		ok = false;
	}
	t_result(ok, "after PROT_READ|PROT_WRITE, on a new QP pair, remote WRITE lands");

	/* 5, 6: local SGE in read-only memory as an RDMA READ target. */
	ok = read_into_readonly();
	if (t_odp)
		t_result(ok, "RDMA READ into a PROT_READ local range: IBV_WC_LOC_PROT_ERR, no byte changed; lands once writable");
	else
		t_result(ok, "pinned contrast: RDMA READ into a PROT_READ pinned local range lands");

	/* Everything still works on the same MRs. */
	ok = !t_rc_pair_create(&dev, &p, NULL);
	if (ok) {
		memset(rd, 0, LEN);
		s = t_rdma_sync(&p, IBV_WR_RDMA_READ, rd, LEN, rdmr->lkey,
				(uintptr_t)buf, mr->rkey);
		ok = s == IBV_WC_SUCCESS;
		ok = t_check(rd, copy, LEN, "final READ") && ok;
		t_rc_pair_destroy(&p);
	}
	t_result(ok, "the MRs still work after the errors: READ returns the whole buffer");

	/* 7: a READ cut off after its first response packets. */
	t_result(read_cut_off(), t_odp ?
		 "RDMA READ running into PROT_NONE pages after 4 response packets: IBV_WC_REM_ACCESS_ERR, not a hang" :
		 "pinned contrast: RDMA READ over PROT_NONE pinned pages returns their data");

	/* 8: duplicate READs replayed after the buffer became PROT_NONE */
	t_result(stale_read_replays(),
		 "READs retransmitted every jiffy, buffer PROT_NONE after each: the WRITE that follows completes, the QP lives (%d rounds)",
		 STALE_ROUNDS);

	t_dereg_mr(mr);
	t_dereg_mr(lmr);
	t_dereg_mr(rdmr);
	t_dev_close(&dev);
	return t_finish();
}
