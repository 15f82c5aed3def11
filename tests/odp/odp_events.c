// SPDX-License-Identifier: GPL-2.0 OR Linux-OpenIB
/*
 * odp_events: an ODP MR follows the other things that happen to a process'
 * pages besides mprotect, MADV_DONTNEED and migration.
 *
 *  - MADV_PAGEOUT pushes the pages to swap (zram in the test guest); the
 *    device must fault them back in: READ returns the data, WRITE lands.
 *    Then 3 cycles of: MADV_PAGEOUT; a quarter of the pages swapped back
 *    in read-only by CPU reads, a quarter by a device READ, the rest left
 *    out; an RDMA WRITE over all of them; MADV_PAGEOUT again (checked via
 *    pagemap) and a byte-for-byte CPU read-back: nothing written is lost.
 *  - munmap: the device can no longer reach the range (READ completes with
 *    IBV_WC_REM_ACCESS_ERR); a new mapping at the same address (MAP_FIXED)
 *    is what the device sees from then on.
 *  - fork: the parent's pages become copy-on-write.  A remote WRITE after
 *    the fork lands in the parent's memory and the child keeps the old
 *    data; then the child writes its own copy, and the device still reads
 *    the parent's data and a remote WRITE lands in the parent, not in the
 *    child (the child checks its view and reports in its exit status);
 *    what the parent's CPU writes after the fork is what the device reads.
 *  - fork with MADV_DONTFORK on the registered range: the child has no
 *    mapping there (mincore() says ENOMEM), the device keeps reaching the
 *    parent's pages.
 *  - hugetlbfs: an ODP MR over 2 MiB huge pages.
 *
 * Pinned MRs (--pinned): pinned pages cannot be swapped out (the contrast
 * asserts that none was), and after munmap the device still reaches the
 * old pages (the contrast asserts it reads the old data, even after a new
 * mapping took the address); the swap cycles assert that no pinned page
 * is ever swapped out, and the data must survive all the same.  The fork
 * and huge page cases must pass as they are: 6.1 gives the child a copy
 * of pinned pages at fork, and with MADV_DONTFORK no mapping at all.
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

/* MADV_PAGEOUT of [p, p + len); true if as many pages as the mode
 * expects were swapped out (ODP: >= 90%, pinned: none).
 */
static bool pageout_check(void *p, size_t len, const char *when)
{
	long n, total = len / T_PAGE;

	if (t_pageout(p, len))
		t_diag("madvise(MADV_PAGEOUT): %s", strerror(errno));
	n = swapped_pages(p, len);
	t_diag("%s: %ld of %ld pages swapped out", when, n, total);
	return t_odp ? n >= total * 9 / 10 : n == 0;
}

/*
 * CYCLES times: MADV_PAGEOUT; the first quarter is swapped back in by
 * CPU reads, the second by a device READ, the rest stays out; an RDMA
 * WRITE over all of it but the first and last page; MADV_PAGEOUT again
 * and the CPU reads everything back.  *swapped_ok: every MADV_PAGEOUT
 * swapped what the mode expects; *data_ok: nothing RDMA wrote is lost.
 */
#define CYCLES	3
static void pageout_cycles(uint8_t *buf, uint8_t *want, struct ibv_mr *mr,
			   bool *swapped_ok, bool *data_ok)
{
	size_t q = LEN / 4, i;
	volatile uint8_t sink = 0;
	char what[96];
	int c;

	*swapped_ok = *data_ok = true;
	for (c = 1; c <= CYCLES; c++) {
		snprintf(what, sizeof(what), "cycle %d, before the read-only swap-in", c);
		*swapped_ok = pageout_check(buf, LEN, what) && *swapped_ok;
		/* Read-only swap-in: CPU reads, then a device READ. */
		for (i = 0; i < q; i += T_PAGE)
			sink += buf[i];
		memset(local, 0, q);
		snprintf(what, sizeof(what), "cycle %d: READ swapping in", c);
		*data_ok = !dev_op(IBV_WR_RDMA_READ, local, buf + q, q, mr) &&
			   t_check(local, want + q, q, what) && *data_ok;
		t_diag("cycle %d: swapped out after the read-only swap-in: %ld / %ld / %ld pages of each quarter",
		       c, swapped_pages(buf, q), swapped_pages(buf + q, q),
		       swapped_pages(buf + 2 * q, 2 * q));
		/* The device writes into all three kinds of page. */
		t_fill(local, LEN - 2 * T_PAGE, 100 + c);
		memcpy(want + T_PAGE + 3 * c, local, LEN - 2 * T_PAGE);
		*data_ok = !dev_op(IBV_WR_RDMA_WRITE, local, buf + T_PAGE + 3 * c,
				   LEN - 2 * T_PAGE, mr) && *data_ok;
		snprintf(what, sizeof(what), "cycle %d, after the WRITE", c);
		*swapped_ok = pageout_check(buf, LEN, what) && *swapped_ok;
		snprintf(what, sizeof(what), "cycle %d: CPU read-back after MADV_PAGEOUT", c);
		*data_ok = t_check(buf, want, LEN, what) && *data_ok;
	}
	(void)sink;
}

static void pageout(bool *moved, bool *read_ok, bool *write_ok,
		    bool *cyc_swapped, bool *cyc_data)
{
	uint8_t *buf, *want;
	struct ibv_mr *mr;
	long n, n1, total = LEN / T_PAGE;
	bool aging = t_odp && t_odp_aging() == 1;

	*moved = *read_ok = *write_ok = *cyc_swapped = *cyc_data = false;
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

	/*
	 * With odp_aging, reclaim learns that the device just used every
	 * page and spares them once; the second pass takes them.
	 */
	if (madvise(buf, LEN, MADV_PAGEOUT))
		t_diag("madvise(MADV_PAGEOUT): %s", strerror(errno));
	n = n1 = swapped_pages(buf, LEN);
	t_diag("after MADV_PAGEOUT %ld of %ld pages are swapped out", n,
	       total);
	if (aging) {
		if (madvise(buf, LEN, MADV_PAGEOUT))
			t_diag("madvise(MADV_PAGEOUT): %s", strerror(errno));
		n = swapped_pages(buf, LEN);
		t_diag("after a second MADV_PAGEOUT %ld of %ld pages are swapped out",
		       n, total);
	}
	if (aging)
		*moved = n1 <= total / 10 && n >= total * 9 / 10;
	else if (t_odp)
		*moved = n >= total * 9 / 10;
	else
		*moved = n == 0;

	memset(local, 0, LEN);
	*read_ok = !dev_op(IBV_WR_RDMA_READ, local, buf, LEN, mr) &&
		   t_check(local, want, LEN, "READ after MADV_PAGEOUT");

	/* Out again, then the device writes. */
	t_pageout(buf, LEN);
	t_diag("before the WRITE %ld pages are swapped out",
	       swapped_pages(buf, LEN));
	t_fill(local, LEN - 2 * T_PAGE, 12);
	memcpy(want + T_PAGE + 1, local, LEN - 2 * T_PAGE);
	*write_ok = !dev_op(IBV_WR_RDMA_WRITE, local, buf + T_PAGE + 1,
			    LEN - 2 * T_PAGE, mr) &&
		    t_check(buf, want, LEN, "CPU view of a WRITE after MADV_PAGEOUT");
	pageout_cycles(buf, want, mr, cyc_swapped, cyc_data);
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

/* One byte over a pipe; false on error or EOF. */
static bool pipe_put(int fd, char c)
{
	return write(fd, &c, 1) == 1;
}

static bool pipe_get(int fd, char want)
{
	char c;

	return read(fd, &c, 1) == 1 && c == want;
}

/*
 * The child of after_fork().  Exit status bits: 1 its view changed with
 * the parent's WRITE, 2 its own CPU writes were not what it read back
 * after the parent's device traffic, 4 a pipe failed.
 */
static void __attribute__((noreturn))
fork_child(uint8_t *buf, const uint8_t *old, size_t len, int in, int out)
{
	uint8_t *mine = malloc(len);
	int st = 0;

	alarm(60);
	/* The child touches nothing until the parent has written. */
	if (!mine || !pipe_get(in, 'g'))
		_exit(4);
	if (!t_check(buf, old, len, "child's view after the parent's WRITE"))
		st |= 1;
	/* COW in the child: its own copy of every page. */
	t_fill(buf, len, 34);
	memcpy(mine, buf, len);
	if (!pipe_put(out, 'w') || !pipe_get(in, 'c'))
		_exit(st | 4);
	if (!t_check(buf, mine, len, "child's own writes after the parent's READ and WRITE"))
		st |= 2;
	fflush(stdout);
	_exit(st);
}

/*
 * Without MADV_DONTFORK: the parent's WRITE lands in the parent only
 * (*write_ok), the child's CPU writes stay in the child while the device
 * reads and writes the parent's pages (*child_ok), and the device reads
 * what the parent's CPU writes (*cpu_ok).
 */
static void after_fork(bool *write_ok, bool *child_ok, bool *cpu_ok)
{
	size_t len = 256 * T_PAGE, off = 5 * T_PAGE + 3, n = 100 * T_PAGE;
	int go[2] = { -1, -1 }, back[2] = { -1, -1 }, status = 0;
	uint8_t *buf, *old, *want;
	struct ibv_mr *mr;
	bool ok;
	pid_t pid;

	*write_ok = *child_ok = *cpu_ok = false;
	buf = t_mmap(len);
	old = malloc(len);
	want = malloc(len);
	if (!buf || !old || !want || pipe(go) || pipe(back))
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
	if (!pid)
		fork_child(buf, old, len, go[0], back[1]);

	/* Remote WRITE into the parent's (now copy-on-write) pages. */
	memcpy(want, old, len);
	t_fill(local, n, 32);
	memcpy(want + off, local, n);
	*write_ok = !dev_op(IBV_WR_RDMA_WRITE, local, buf + off, n, mr) &&
		    t_check(buf, want, len, "parent's view of a WRITE after fork");
	if (!pipe_put(go[1], 'g'))
		t_diag("write(pipe): %s", strerror(errno));

	/* The child has written its copy: the device still sees ours. */
	ok = pipe_get(back[0], 'w');
	if (!ok)
		t_diag("no word from the child after its CPU writes");
	memset(local, 0, len);
	ok = !dev_op(IBV_WR_RDMA_READ, local, buf, len, mr) &&
	     t_check(local, want, len, "READ of the parent after the child wrote its copy") &&
	     ok;
	t_fill(local, n, 35);
	memcpy(want + off + 7 * T_PAGE, local, n);
	ok = !dev_op(IBV_WR_RDMA_WRITE, local, buf + off + 7 * T_PAGE, n, mr) &&
	     t_check(buf, want, len, "parent's view of a WRITE after the child wrote") &&
	     ok;
	if (!pipe_put(go[1], 'c'))
		t_diag("write(pipe): %s", strerror(errno));
	if (waitpid(pid, &status, 0) != pid || !WIFEXITED(status)) {
		t_diag("the child failed (status 0x%x)", status);
		status = 0x700;
	}
	status = WEXITSTATUS(status);
	if (status & 1)
		t_diag("the child saw the parent's WRITE");
	if (status & 2)
		t_diag("the child's own writes changed under the parent's READ/WRITE");
	if (status & ~3)
		t_diag("the child failed (exit status %d)", status);
	*write_ok = *write_ok && !(status & ~2);
	*child_ok = ok && !(status & ~1);

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
	if (back[0] >= 0) {
		close(back[0]);
		close(back[1]);
	}
	t_munmap(buf, len);
	free(old);
	free(want);
}

/*
 * With MADV_DONTFORK on the registered range: the child has no mapping
 * there (*gone_ok: mincore() gives ENOMEM for every page, the child's
 * exit status says so), and the device keeps reading and writing the
 * parent's pages (*rdma_ok).
 */
static void after_fork_dontfork(bool *gone_ok, bool *rdma_ok)
{
	size_t len = 128 * T_PAGE, off = 3 * T_PAGE + 9, n = 90 * T_PAGE;
	int status = 0;
	uint8_t *buf, *want;
	struct ibv_mr *mr;
	pid_t pid;

	*gone_ok = *rdma_ok = false;
	buf = t_mmap(len);
	want = malloc(len);
	if (!buf || !want)
		goto out;
	t_fill(buf, len, 36);
	memcpy(want, buf, len);
	mr = t_reg_mr(&dev, buf, len, T_ACCESS_ALL);
	if (!mr)
		goto out;
	if (madvise(buf, len, MADV_DONTFORK)) {
		t_diag("madvise(MADV_DONTFORK): %s", strerror(errno));
		goto out_mr;
	}
	if (dev_op(IBV_WR_RDMA_READ, local, buf, len, mr))
		goto out_mr;

	fflush(stdout);
	pid = fork();
	if (pid < 0) {
		t_diag("fork: %s", strerror(errno));
		goto out_mr;
	}
	if (!pid) {
		alarm(60);
		_exit(unmapped(buf, len) ? 0 : 1);
	}
	*gone_ok = waitpid(pid, &status, 0) == pid && WIFEXITED(status) &&
		   WEXITSTATUS(status) == 0;
	if (!*gone_ok)
		t_diag("MADV_DONTFORK: the child has the range mapped or failed (status 0x%x)",
		       status);

	t_fill(local, n, 37);
	memcpy(want + off, local, n);
	*rdma_ok = !dev_op(IBV_WR_RDMA_WRITE, local, buf + off, n, mr) &&
		   t_check(buf, want, len, "parent's view of a WRITE after fork (MADV_DONTFORK)");
	t_fill(buf, len / 2, 38);
	memcpy(want, buf, len / 2);
	memset(local, 0, len);
	*rdma_ok = !dev_op(IBV_WR_RDMA_READ, local, buf, len, mr) &&
		   t_check(local, want, len, "READ after fork (MADV_DONTFORK)") &&
		   *rdma_ok;
out_mr:
	t_dereg_mr(mr);
out:
	t_munmap(buf, len);
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
	bool a, b, c, d, e;

	t_init(argc, argv, "ODP MRs follow swap-out, munmap, fork; huge pages");
	t_plan(13);
	if (t_dev_open(&dev))
		t_bail("cannot open the RDMA device");
	local = t_mmap(LEN);
	if (!local)
		t_bail("out of memory");
	lmr = t_reg_mr(&dev, local, LEN, T_ACCESS_ALL);
	if (!lmr)
		t_bail("cannot register %s MRs", t_mode());

	pageout(&a, &b, &c, &d, &e);
	if (t_odp && t_odp_aging() == 1)
		t_result(a, "MADV_PAGEOUT spares the pages the device just read once, then swaps out >= 90%% of them");
	else if (t_odp)
		t_result(a, "MADV_PAGEOUT swaps out >= 90%% of the pages under the ODP MR");
	else
		t_result(a, "pinned contrast: MADV_PAGEOUT swaps out no pinned page");
	t_result(b, "after MADV_PAGEOUT, RDMA READ returns the data");
	t_result(c, "after MADV_PAGEOUT, RDMA WRITE lands and the CPU sees it");
	if (t_odp)
		t_result(d, "%d MADV_PAGEOUT cycles: each swaps out >= 90%% of the pages, also after RDMA WRITEs",
			 CYCLES);
	else
		t_result(d, "pinned contrast: %d MADV_PAGEOUT cycles swap out no pinned page",
			 CYCLES);
	t_result(e, "%d cycles of swap-out, read-only swap-in (CPU, RDMA READ), RDMA WRITE, swap-out: no byte lost",
		 CYCLES);

	unmap_remap(&a, &b);
	if (t_odp) {
		t_result(a, "after munmap, RDMA READ of the range: IBV_WC_REM_ACCESS_ERR");
		t_result(b, "after a new mmap at the same address, RDMA READ returns the new data");
	} else {
		t_result(a, "pinned contrast: after munmap, RDMA READ still returns the old data");
		t_result(b, "pinned contrast: after a new mmap at the same address, READ returns the old data");
	}

	after_fork(&a, &b, &c);
	t_result(a, "after fork, a remote WRITE lands in the parent, the child keeps the old data");
	t_result(b, "after fork, the child's CPU writes stay in the child: READ returns the parent's data, WRITE lands in the parent");
	t_result(c, "after fork, RDMA READ returns what the parent's CPU wrote");

	after_fork_dontfork(&a, &b);
	t_result(a, "fork with MADV_DONTFORK: the child has no mapping of the registered range");
	t_result(b, "fork with MADV_DONTFORK: RDMA WRITE and READ reach the parent's pages");

	t_result(hugetlb(), "RDMA WRITE and READ across 2 MiB hugetlb pages");

	t_dereg_mr(lmr);
	t_dev_close(&dev);
	return t_finish();
}
