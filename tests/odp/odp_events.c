// SPDX-License-Identifier: GPL-2.0 OR Linux-OpenIB
/*
 * odp_events: an ODP MR follows the other things that happen to a process'
 * pages besides mprotect, MADV_DONTNEED and migration.
 *
 *  - MADV_PAGEOUT pushes the pages to swap (zram in the test guest); the
 *    device must fault them back in: READ returns the data, WRITE lands.
 *  - munmap: the device can no longer reach the range (READ completes with
 *    IBV_WC_REM_ACCESS_ERR); a new mapping at the same address (MAP_FIXED)
 *    is what the device sees from then on.
 *  - fork: the parent's pages become copy-on-write.  A remote WRITE after
 *    the fork lands in the parent's memory and the child keeps the old
 *    data; what the parent's CPU writes after the fork is what the device
 *    reads.
 *  - hugetlbfs: an ODP MR over 2 MiB huge pages.
 *
 * Pinned MRs (--pinned): pinned pages cannot be swapped out (the contrast
 * asserts that none was), and after munmap the device still reaches the
 * old pages (the contrast asserts it reads the old data, even after a new
 * mapping took the address).  The fork and huge page cases must pass as
 * they are: 6.1 gives the child a copy of pinned pages at fork.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/mman.h>
#include <sys/wait.h>

#include "odptest.h"

#ifndef MADV_PAGEOUT
#define MADV_PAGEOUT	21
#endif

#define LEN		(8 * T_MIB)
#define HUGE_SZ		(2 * T_MIB)
#define NR_HUGE		4

static struct t_dev dev;

/* A registered local buffer for the reads and writes of every case. */
static uint8_t *local;
static struct ibv_mr *lmr;

/* t_rdma_chunked() and t_rdma_fresh_pair() from local (lmr). */
static int dev_op_on(struct t_rc_pair *p, enum ibv_wr_opcode op, void *laddr,
		     void *raddr, size_t len, struct ibv_mr *mr)
{
	return t_rdma_chunked(p, op, laddr, lmr->lkey, raddr, mr->rkey, len,
			      false);
}

static int dev_op(enum ibv_wr_opcode op, void *laddr, void *raddr, size_t len,
		  struct ibv_mr *mr)
{
	return t_rdma_fresh_pair(&dev, op, laddr, lmr->lkey, raddr, mr->rkey,
				 len);
}

/* True if no page of [p, p + len) is mapped. */
static bool unmapped(void *p, size_t len)
{
	unsigned char vec[1];
	size_t off;

	for (off = 0; off < len; off += T_PAGE)
		if (!mincore((uint8_t *)p + off, T_PAGE, vec) ||
		    errno != ENOMEM)
			return false;
	return true;
}

/* Pages of [p, p + len) that /proc/self/pagemap says are swapped out. */
static long swapped_pages(void *p, size_t len)
{
	uint64_t *ent;
	size_t i, n = len / T_PAGE;
	long swapped = 0;
	int fd;

	ent = calloc(n, sizeof(*ent));
	fd = open("/proc/self/pagemap", O_RDONLY);
	if (!ent || fd < 0 ||
	    pread(fd, ent, n * 8, (uintptr_t)p / T_PAGE * 8) != (ssize_t)(n * 8)) {
		t_diag("reading /proc/self/pagemap: %s", strerror(errno));
		swapped = -1;
	} else {
		for (i = 0; i < n; i++)
			if (ent[i] >> 62 & 1)
				swapped++;
	}
	if (fd >= 0)
		close(fd);
	free(ent);
	return swapped;
}

/* ---- MADV_PAGEOUT --------------------------------------------------------- */

static void pageout(bool *moved, bool *read_ok, bool *write_ok)
{
	uint8_t *buf, *want;
	struct ibv_mr *mr;
	long n, total = LEN / T_PAGE;

	*moved = *read_ok = *write_ok = false;
	buf = t_mmap(LEN);
	want = malloc(LEN);
	if (!buf || !want)
		goto out;
	/* Base pages: MADV_PAGEOUT would split a huge page first. */
	madvise(buf, LEN, MADV_NOHUGEPAGE);
	t_fill(buf, LEN, 11);
	memcpy(want, buf, LEN);
	mr = t_reg_mr(&dev, buf, LEN, T_ACCESS_ALL);
	if (!mr)
		goto out;
	t_diag("SwapTotal %ld kB, SwapFree %ld kB", t_meminfo_kb("SwapTotal"),
	       t_meminfo_kb("SwapFree"));
	/* The device maps every page first. */
	if (dev_op(IBV_WR_RDMA_READ, local, buf, LEN, mr) ||
	    !t_check(local, want, LEN, "READ before MADV_PAGEOUT"))
		goto out_mr;

	if (madvise(buf, LEN, MADV_PAGEOUT))
		t_diag("madvise(MADV_PAGEOUT): %s", strerror(errno));
	n = swapped_pages(buf, LEN);
	t_diag("after MADV_PAGEOUT %ld of %ld pages are swapped out", n,
	       total);
	if (t_odp)
		*moved = n >= total * 9 / 10;
	else
		*moved = n == 0;

	memset(local, 0, LEN);
	*read_ok = !dev_op(IBV_WR_RDMA_READ, local, buf, LEN, mr) &&
		   t_check(local, want, LEN, "READ after MADV_PAGEOUT");

	/* Out again, then the device writes. */
	madvise(buf, LEN, MADV_PAGEOUT);
	t_diag("before the WRITE %ld pages are swapped out",
	       swapped_pages(buf, LEN));
	t_fill(local, LEN - 2 * T_PAGE, 12);
	memcpy(want + T_PAGE + 1, local, LEN - 2 * T_PAGE);
	*write_ok = !dev_op(IBV_WR_RDMA_WRITE, local, buf + T_PAGE + 1,
			    LEN - 2 * T_PAGE, mr) &&
		    t_check(buf, want, LEN, "CPU view of a WRITE after MADV_PAGEOUT");
out_mr:
	t_dereg_mr(mr);
out:
	t_munmap(buf, LEN);
	free(want);
}

/* ---- munmap and a new mapping at the same address ------------------------ */

static void unmap_remap(bool *gone_ok, bool *new_ok)
{
	uint8_t *buf, *old, *fresh;
	size_t len = 64 * T_PAGE;
	struct t_rc_pair p;
	struct ibv_mr *mr;
	int s;

	*gone_ok = *new_ok = false;
	buf = t_mmap(len);
	old = malloc(len);
	fresh = malloc(len);
	if (!buf || !old || !fresh)
		goto out;
	t_fill(buf, len, 21);
	memcpy(old, buf, len);
	mr = t_reg_mr(&dev, buf, len, T_ACCESS_ALL);
	if (!mr)
		goto out;
	if (dev_op(IBV_WR_RDMA_READ, local, buf, len, mr) ||
	    !t_check(local, old, len, "READ before munmap"))
		goto out_mr;

	/*
	 * The QP pair exists before the munmap: creating one maps queues,
	 * and a new mapping could take the freed address range.
	 */
	if (t_rc_pair_create(&dev, &p, NULL))
		goto out_mr;
	memset(local, 0x5a, len);
	munmap(buf, len);
	s = dev_op_on(&p, IBV_WR_RDMA_READ, local, buf + 8 * T_PAGE + 7,
		      3 * T_PAGE, mr);
	t_diag("READ of the unmapped range: %s", t_wc_status_str(s));
	if (!unmapped(buf, len)) {
		t_diag("something was mapped at the freed range meanwhile: no verdict");
		s = -1;
	}
	t_rc_pair_destroy(&p);
	if (s == IBV_WC_SUCCESS && t_odp) {
		if (!t_cmp(local, old + 8 * T_PAGE + 7, 3 * T_PAGE))
			t_diag("the READ returned the data of the unmapped pages");
		else if (t_check_byte(local, 0, 3 * T_PAGE, "READ result"))
			t_diag("the READ returned zeros");
	}
	if (t_odp)
		*gone_ok = s == IBV_WC_REM_ACCESS_ERR &&
			   t_check_byte(local, 0x5a, 3 * T_PAGE,
					"local buffer after the failed READ");
	else
		*gone_ok = s == IBV_WC_SUCCESS &&
			   t_check(local, old + 8 * T_PAGE + 7, 3 * T_PAGE,
				   "pinned: READ after munmap");

	if (mmap(buf, len, PROT_READ | PROT_WRITE,
		 MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0) != buf) {
		t_diag("mmap(MAP_FIXED): %s", strerror(errno));
		goto out_mr;
	}
	t_fill(buf, len, 22);
	memcpy(fresh, buf, len);
	memset(local, 0, len);
	s = dev_op(IBV_WR_RDMA_READ, local, buf, len, mr);
	*new_ok = s == IBV_WC_SUCCESS &&
		  t_check(local, t_odp ? fresh : old, len,
			  t_odp ? "READ of the new mapping" :
			  "pinned: READ after a new mapping");
out_mr:
	t_dereg_mr(mr);
out:
	t_munmap(buf, len);
	free(old);
	free(fresh);
}

/* ---- fork ----------------------------------------------------------------- */

static void after_fork(bool *write_ok, bool *cpu_ok)
{
	size_t len = 256 * T_PAGE, off = 5 * T_PAGE + 3, n = 100 * T_PAGE;
	int go[2] = { -1, -1 }, status = 0;
	uint8_t *buf, *old, *want;
	struct ibv_mr *mr;
	bool child_ok;
	pid_t pid;
	char c;

	*write_ok = *cpu_ok = false;
	buf = t_mmap(len);
	old = malloc(len);
	want = malloc(len);
	if (!buf || !old || !want || pipe(go))
		goto out;
	t_fill(buf, len, 31);
	memcpy(old, buf, len);
	mr = t_reg_mr(&dev, buf, len, T_ACCESS_ALL);
	if (!mr)
		goto out;
	if (dev_op(IBV_WR_RDMA_READ, local, buf, len, mr))
		goto out_mr;

	fflush(stdout);
	pid = fork();
	if (pid < 0) {
		t_diag("fork: %s", strerror(errno));
		goto out_mr;
	}
	if (!pid) {
		/* The child touches nothing until the parent has written. */
		alarm(60);
		if (read(go[0], &c, 1) != 1)
			_exit(2);
		_exit(t_check(buf, old, len, "child's view after the parent's WRITE") ?
		      0 : 1);
	}

	/* Remote WRITE into the parent's (now copy-on-write) pages. */
	memcpy(want, old, len);
	t_fill(local, n, 32);
	memcpy(want + off, local, n);
	*write_ok = !dev_op(IBV_WR_RDMA_WRITE, local, buf + off, n, mr) &&
		    t_check(buf, want, len, "parent's view of a WRITE after fork");
	if (write(go[1], "g", 1) != 1)
		t_diag("write(pipe): %s", strerror(errno));
	child_ok = waitpid(pid, &status, 0) == pid && WIFEXITED(status) &&
		   WEXITSTATUS(status) == 0;
	if (!child_ok)
		t_diag("the child saw the parent's WRITE or failed (status 0x%x)",
		       status);
	*write_ok = *write_ok && child_ok;

	/* The parent's CPU writes; the device must read that. */
	t_fill(buf, len, 33);
	memcpy(want, buf, len);
	memset(local, 0, len);
	*cpu_ok = !dev_op(IBV_WR_RDMA_READ, local, buf, len, mr) &&
		  t_check(local, want, len, "READ of the parent's CPU writes after fork");
out_mr:
	t_dereg_mr(mr);
out:
	if (go[0] >= 0) {
		close(go[0]);
		close(go[1]);
	}
	t_munmap(buf, len);
	free(old);
	free(want);
}

/* ---- hugetlbfs ------------------------------------------------------------ */

static bool hugetlb(void)
{
	size_t len = NR_HUGE * HUGE_SZ, off = HUGE_SZ - 3 * T_PAGE - 5;
	size_t n = 2 * HUGE_SZ + 11;
	uint8_t *buf, *want;
	struct ibv_mr *mr;
	bool ok = false;

	t_diag("HugePages_Total %ld, HugePages_Free %ld",
	       t_meminfo_kb("HugePages_Total"), t_meminfo_kb("HugePages_Free"));
	buf = mmap(NULL, len, PROT_READ | PROT_WRITE,
		   MAP_PRIVATE | MAP_ANONYMOUS | MAP_HUGETLB, -1, 0);
	if (buf == MAP_FAILED) {
		t_diag("mmap(MAP_HUGETLB, %zu): %s", len, strerror(errno));
		return false;
	}
	want = calloc(1, len);
	if (!want)
		goto out;
	mr = t_reg_mr(&dev, buf, len, T_ACCESS_ALL);
	if (!mr)
		goto out;
	/* WRITE across two huge page boundaries into untouched huge pages. */
	t_fill(local, n, 41);
	memcpy(want + off, local, n);
	ok = !dev_op(IBV_WR_RDMA_WRITE, local, buf + off, n, mr);
	ok = t_check(buf, want, len, "huge pages after WRITE") && ok;
	/* And READ all of it back. */
	t_fill(buf, HUGE_SZ, 42);
	memcpy(want, buf, HUGE_SZ);
	memset(local, 0, len);
	ok = !dev_op(IBV_WR_RDMA_READ, local, buf, len, mr) && ok;
	ok = t_check(local, want, len, "READ of the huge pages") && ok;
	t_dereg_mr(mr);
out:
	munmap(buf, len);
	free(want);
	return ok;
}

int main(int argc, char **argv)
{
	bool a, b, c;

	t_init(argc, argv, "ODP MRs follow swap-out, munmap, fork; huge pages");
	t_plan(8);
	if (t_dev_open(&dev))
		t_bail("cannot open the RDMA device");
	local = t_mmap(LEN);
	if (!local)
		t_bail("out of memory");
	lmr = t_reg_mr(&dev, local, LEN, T_ACCESS_ALL);
	if (!lmr)
		t_bail("cannot register %s MRs", t_mode());

	pageout(&a, &b, &c);
	if (t_odp)
		t_result(a, "MADV_PAGEOUT swaps out >= 90%% of the pages under the ODP MR");
	else
		t_result(a, "pinned contrast: MADV_PAGEOUT swaps out no pinned page");
	t_result(b, "after MADV_PAGEOUT, RDMA READ returns the data");
	t_result(c, "after MADV_PAGEOUT, RDMA WRITE lands and the CPU sees it");

	unmap_remap(&a, &b);
	if (t_odp) {
		t_result(a, "after munmap, RDMA READ of the range: IBV_WC_REM_ACCESS_ERR");
		t_result(b, "after a new mmap at the same address, RDMA READ returns the new data");
	} else {
		t_result(a, "pinned contrast: after munmap, RDMA READ still returns the old data");
		t_result(b, "pinned contrast: after a new mmap at the same address, READ returns the old data");
	}

	after_fork(&a, &b);
	t_result(a, "after fork, a remote WRITE lands in the parent, the child keeps the old data");
	t_result(b, "after fork, RDMA READ returns what the parent's CPU wrote");

	t_result(hugetlb(), "RDMA WRITE and READ across 2 MiB hugetlb pages");

	t_dereg_mr(lmr);
	t_dev_close(&dev);
	return t_finish();
}
