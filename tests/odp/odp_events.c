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
 * Each test goes through its case's steps afresh, up to and including the
 * one it checks; the RDMA operations and data of the steps before it are
 * asserted on the way, the swap counts of the steps before are only
 * printed.
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

#include "odpharness.h"

#ifndef MADV_PAGEOUT
#define MADV_PAGEOUT	21
#endif

#define LEN		(8 * T_MIB)
#define HUGE_SZ		(2 * T_MIB)
#define NR_HUGE		4

/*
 * The device, a registered local buffer for the reads and writes of every
 * case, and what a test allocates: the buffer under test and its MR, the
 * expected images, a QP pair, the pipes to a child.
 */
FIXTURE(events) {
	struct t_dev dev;
	uint8_t *local;
	struct ibv_mr *lmr;
	uint8_t *buf;
	size_t len;
	struct ibv_mr *mr;
	uint8_t *want, *old, *fresh;
	struct t_rc_pair pair;
	int go[2], back[2];
	pid_t child;
};

ODP_VARIANTS(events);

FIXTURE_SETUP(events)
{
	t_variant();
	self->go[0] = self->go[1] = self->back[0] = self->back[1] = -1;
	ASSERT_EQ(0, t_dev_open(&self->dev));
	self->local = t_mmap(LEN);
	ASSERT_NE(NULL, self->local) {
		TH_LOG("out of memory");
	}
	self->lmr = t_reg_mr(&self->dev, self->local, LEN, T_ACCESS_ALL);
	ASSERT_NE(NULL, self->lmr) {
		TH_LOG("cannot register %s MRs", t_mode());
	}
}

FIXTURE_TEARDOWN(events)
{
	int i;

	if (self->child > 0) {
		kill(self->child, SIGKILL);
		waitpid(self->child, NULL, 0);
	}
	for (i = 0; i < 2; i++) {
		if (self->go[i] >= 0)
			close(self->go[i]);
		if (self->back[i] >= 0)
			close(self->back[i]);
	}
	t_rc_pair_destroy(&self->pair);
	t_dereg_mr(self->mr);
	if (self->buf)
		munmap(self->buf, self->len);
	free(self->want);
	free(self->old);
	free(self->fresh);
	t_dereg_mr(self->lmr);
	t_munmap(self->local, LEN);
	t_dev_close(&self->dev);
}

/* t_rdma_chunked() and t_rdma_fresh_pair() from local (lmr). */
static int dev_op_on(FIXTURE_DATA(events) *self, struct t_rc_pair *p,
		     enum ibv_wr_opcode op, void *laddr, void *raddr,
		     size_t len)
{
	return t_rdma_chunked(p, op, laddr, self->lmr->lkey, raddr,
			      self->mr->rkey, len, false);
}

static int dev_op(FIXTURE_DATA(events) *self, enum ibv_wr_opcode op,
		  void *laddr, void *raddr, size_t len)
{
	return t_rdma_fresh_pair(&self->dev, op, laddr, self->lmr->lkey,
				 raddr, self->mr->rkey, len);
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

/* A fresh anonymous buffer of @len bytes under test (self->buf). */
#define BUF_MAP(l) do {							\
	self->len = (l);						\
	self->buf = t_mmap(self->len);					\
	ASSERT_NE(NULL, self->buf);					\
} while (0)

/* An expected image (self->want, old, fresh) of @len bytes. */
#define IMAGE(img, l) do {						\
	self->img = malloc(l);						\
	ASSERT_NE(NULL, self->img) {					\
		TH_LOG("out of memory");				\
	}								\
} while (0)

/* The buffer under test registered (self->mr). */
#define BUF_REG() do {							\
	self->mr = t_reg_mr(&self->dev, self->buf, self->len,		\
			    T_ACCESS_ALL);				\
	ASSERT_NE(NULL, self->mr);					\
} while (0)

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

/* The steps of the MADV_PAGEOUT case, each one test's check. */
enum pageout_step {
	SWAPPED,	/* MADV_PAGEOUT swaps out what the mode expects */
	READ_BACK,	/* then RDMA READ returns the data */
	WRITE_LANDS,	/* again, then RDMA WRITE lands */
	CYCLES_SWAP,	/* the cycles swap out what the mode expects */
	CYCLES_DATA,	/* and lose no byte */
};

/*
 * CYCLES times: MADV_PAGEOUT; the first quarter is swapped back in by
 * CPU reads, the second by a device READ, the rest stays out; an RDMA
 * WRITE over all of it but the first and last page; MADV_PAGEOUT again
 * and the CPU reads everything back.  CYCLES_SWAP checks that every
 * MADV_PAGEOUT swapped what the mode expects, CYCLES_DATA that nothing
 * RDMA wrote is lost.
 */
#define CYCLES	3
static void pageout_cycles(struct __test_metadata *_metadata,
			   FIXTURE_DATA(events) *self, enum pageout_step check)
{
	uint8_t *buf = self->buf, *want = self->want;
	size_t q = LEN / 4, i;
	volatile uint8_t sink = 0;
	char what[96];
	bool ok;
	int c;

	for (c = 1; c <= CYCLES; c++) {
		snprintf(what, sizeof(what), "cycle %d, before the read-only swap-in", c);
		ok = pageout_check(buf, LEN, what);
		if (check == CYCLES_SWAP) {
			EXPECT_TRUE(ok) {
				TH_LOG("%s", what);
			}
		}
		/* Read-only swap-in: CPU reads, then a device READ. */
		for (i = 0; i < q; i += T_PAGE)
			sink += buf[i];
		memset(self->local, 0, q);
		snprintf(what, sizeof(what), "cycle %d: READ swapping in", c);
		if (check == CYCLES_DATA) {
			EXPECT_EQ(0, dev_op(self, IBV_WR_RDMA_READ,
					    self->local, buf + q, q));
			EXPECT_BYTES(self->local, want + q, q, what);
		} else {
			dev_op(self, IBV_WR_RDMA_READ, self->local, buf + q,
			       q);
		}
		t_diag("cycle %d: swapped out after the read-only swap-in: %ld / %ld / %ld pages of each quarter",
		       c, swapped_pages(buf, q), swapped_pages(buf + q, q),
		       swapped_pages(buf + 2 * q, 2 * q));
		/* The device writes into all three kinds of page. */
		t_fill(self->local, LEN - 2 * T_PAGE, 100 + c);
		memcpy(want + T_PAGE + 3 * c, self->local, LEN - 2 * T_PAGE);
		if (check == CYCLES_DATA) {
			EXPECT_EQ(0, dev_op(self, IBV_WR_RDMA_WRITE,
					    self->local, buf + T_PAGE + 3 * c,
					    LEN - 2 * T_PAGE)) {
				TH_LOG("cycle %d: WRITE", c);
			}
		} else {
			dev_op(self, IBV_WR_RDMA_WRITE, self->local,
			       buf + T_PAGE + 3 * c, LEN - 2 * T_PAGE);
		}
		snprintf(what, sizeof(what), "cycle %d, after the WRITE", c);
		ok = pageout_check(buf, LEN, what);
		if (check == CYCLES_SWAP) {
			EXPECT_TRUE(ok) {
				TH_LOG("%s", what);
			}
		}
		snprintf(what, sizeof(what), "cycle %d: CPU read-back after MADV_PAGEOUT", c);
		ok = t_check(buf, want, LEN, what);
		if (check == CYCLES_DATA) {
			EXPECT_TRUE(ok);
		}
	}
	(void)sink;
}

/*
 * The MADV_PAGEOUT case up to step @check, which is checked: the device
 * maps every page, MADV_PAGEOUT (twice with odp_aging), a READ, then
 * MADV_PAGEOUT again and a WRITE, then the cycles.
 */
static void pageout(struct __test_metadata *_metadata,
		    FIXTURE_DATA(events) *self, enum pageout_step check)
{
	long n, n1, total = LEN / T_PAGE;
	bool aging = t_odp && t_odp_aging() == 1;

	BUF_MAP(LEN);
	IMAGE(want, LEN);
	/* Base pages: MADV_PAGEOUT would split a huge page first. */
	madvise(self->buf, LEN, MADV_NOHUGEPAGE);
	t_fill(self->buf, LEN, 11);
	memcpy(self->want, self->buf, LEN);
	BUF_REG();
	t_diag("SwapTotal %ld kB, SwapFree %ld kB", t_meminfo_kb("SwapTotal"),
	       t_meminfo_kb("SwapFree"));
	/* The device maps every page first. */
	ASSERT_EQ(0, dev_op(self, IBV_WR_RDMA_READ, self->local, self->buf,
			    LEN));
	ASSERT_BYTES(self->local, self->want, LEN,
		     "READ before MADV_PAGEOUT");

	/*
	 * With odp_aging, reclaim learns that the device just used every
	 * page and spares them once; the second pass takes them.
	 */
	if (madvise(self->buf, LEN, MADV_PAGEOUT))
		t_diag("madvise(MADV_PAGEOUT): %s", strerror(errno));
	n = n1 = swapped_pages(self->buf, LEN);
	t_diag("after MADV_PAGEOUT %ld of %ld pages are swapped out", n,
	       total);
	if (aging) {
		if (madvise(self->buf, LEN, MADV_PAGEOUT))
			t_diag("madvise(MADV_PAGEOUT): %s", strerror(errno));
		n = swapped_pages(self->buf, LEN);
		t_diag("after a second MADV_PAGEOUT %ld of %ld pages are swapped out",
		       n, total);
	}
	if (check == SWAPPED) {
		if (aging) {
			EXPECT_GE(total / 10, n1);
			EXPECT_LE(total * 9 / 10, n);
		} else if (t_odp) {
			EXPECT_LE(total * 9 / 10, n);
		} else {
			EXPECT_EQ(0, n);
		}
		return;
	}

	memset(self->local, 0, LEN);
	if (check == READ_BACK) {
		EXPECT_EQ(0, dev_op(self, IBV_WR_RDMA_READ, self->local,
				    self->buf, LEN));
		EXPECT_BYTES(self->local, self->want, LEN,
			     "READ after MADV_PAGEOUT");
		return;
	}
	ASSERT_EQ(0, dev_op(self, IBV_WR_RDMA_READ, self->local, self->buf,
			    LEN));
	ASSERT_BYTES(self->local, self->want, LEN, "READ after MADV_PAGEOUT");

	/* Out again, then the device writes. */
	t_pageout(self->buf, LEN);
	t_diag("before the WRITE %ld pages are swapped out",
	       swapped_pages(self->buf, LEN));
	t_fill(self->local, LEN - 2 * T_PAGE, 12);
	memcpy(self->want + T_PAGE + 1, self->local, LEN - 2 * T_PAGE);
	if (check == WRITE_LANDS) {
		EXPECT_EQ(0, dev_op(self, IBV_WR_RDMA_WRITE, self->local,
				    self->buf + T_PAGE + 1, LEN - 2 * T_PAGE));
		EXPECT_BYTES(self->buf, self->want, LEN,
			     "CPU view of a WRITE after MADV_PAGEOUT");
		return;
	}
	ASSERT_EQ(0, dev_op(self, IBV_WR_RDMA_WRITE, self->local,
			    self->buf + T_PAGE + 1, LEN - 2 * T_PAGE));
	ASSERT_BYTES(self->buf, self->want, LEN,
		     "CPU view of a WRITE after MADV_PAGEOUT");
	pageout_cycles(_metadata, self, check);
}

/*
 * MADV_PAGEOUT spares the pages the device just read once, then swaps out
 * >= 90% of them (odp_aging=1); MADV_PAGEOUT swaps out >= 90% of the pages
 * under the ODP MR (odp_aging=0); pinned contrast: MADV_PAGEOUT swaps out
 * no pinned page
 */
TEST_F(events, pageout_swaps_out)
{
	pageout(_metadata, self, SWAPPED);
}

/* after MADV_PAGEOUT, RDMA READ returns the data */
TEST_F(events, pageout_then_read)
{
	pageout(_metadata, self, READ_BACK);
}

/* after MADV_PAGEOUT, RDMA WRITE lands and the CPU sees it */
TEST_F(events, pageout_then_write)
{
	pageout(_metadata, self, WRITE_LANDS);
}

/* The cycles take 10-25 s on Debian's kernel under TCG (a shared host). */
#define CYCLES_TIMEOUT	90

/*
 * 3 MADV_PAGEOUT cycles: each swaps out >= 90% of the pages, also after
 * RDMA WRITEs (pinned contrast: 3 MADV_PAGEOUT cycles swap out no pinned
 * page)
 */
TEST_F_TIMEOUT(events, pageout_cycles_swap, CYCLES_TIMEOUT)
{
	pageout(_metadata, self, CYCLES_SWAP);
}

/*
 * 3 cycles of swap-out, read-only swap-in (CPU, RDMA READ), RDMA WRITE,
 * swap-out: no byte lost
 */
TEST_F_TIMEOUT(events, pageout_cycles_data, CYCLES_TIMEOUT)
{
	pageout(_metadata, self, CYCLES_DATA);
}

/* ---- munmap and a new mapping at the same address ------------------------ */

/*
 * The device READs the buffer, which is then unmapped; a READ of the
 * unmapped range; if @remap, a new mapping at the same address and a READ
 * of it.  Checks the READ of the unmapped range if !@remap, the READ of
 * the new mapping if @remap.
 */
static void unmap_remap(struct __test_metadata *_metadata,
			FIXTURE_DATA(events) *self, bool remap)
{
	struct t_rc_pair *p = &self->pair;
	uint8_t *buf;
	size_t len = 64 * T_PAGE;
	int s;

	BUF_MAP(len);
	buf = self->buf;
	IMAGE(old, len);
	IMAGE(fresh, len);
	t_fill(buf, len, 21);
	memcpy(self->old, buf, len);
	BUF_REG();
	ASSERT_EQ(0, dev_op(self, IBV_WR_RDMA_READ, self->local, buf, len));
	ASSERT_BYTES(self->local, self->old, len, "READ before munmap");

	/*
	 * The QP pair exists before the munmap: creating one maps queues,
	 * and a new mapping could take the freed address range.
	 */
	ASSERT_EQ(0, t_rc_pair_create(&self->dev, p, NULL));
	memset(self->local, 0x5a, len);
	munmap(buf, len);
	self->buf = NULL;
	s = dev_op_on(self, p, IBV_WR_RDMA_READ, self->local,
		      buf + 8 * T_PAGE + 7, 3 * T_PAGE);
	t_diag("READ of the unmapped range: %s", t_wc_status_str(s));
	if (!unmapped(buf, len)) {
		t_diag("something was mapped at the freed range meanwhile: no verdict");
		s = -1;
	}
	t_rc_pair_destroy(p);
	if (s == IBV_WC_SUCCESS && t_odp) {
		if (!t_cmp(self->local, self->old + 8 * T_PAGE + 7,
			   3 * T_PAGE))
			t_diag("the READ returned the data of the unmapped pages");
		else if (t_check_byte(self->local, 0, 3 * T_PAGE,
				      "READ result"))
			t_diag("the READ returned zeros");
	}
	if (!remap) {
		if (t_odp) {
			EXPECT_WC(IBV_WC_REM_ACCESS_ERR, s);
			EXPECT_FILLED(self->local, 0x5a, 3 * T_PAGE,
				      "local buffer after the failed READ");
		} else {
			EXPECT_WC(IBV_WC_SUCCESS, s);
			EXPECT_BYTES(self->local, self->old + 8 * T_PAGE + 7,
				     3 * T_PAGE, "pinned: READ after munmap");
		}
		return;
	}

	ASSERT_EQ(buf, mmap(buf, len, PROT_READ | PROT_WRITE,
			    MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0)) {
		TH_LOG("mmap(MAP_FIXED): %s", strerror(errno));
	}
	self->buf = buf;
	t_fill(buf, len, 22);
	memcpy(self->fresh, buf, len);
	memset(self->local, 0, len);
	EXPECT_WC(IBV_WC_SUCCESS,
		  dev_op(self, IBV_WR_RDMA_READ, self->local, buf, len));
	EXPECT_BYTES(self->local, t_odp ? self->fresh : self->old, len,
		     t_odp ? "READ of the new mapping" :
		     "pinned: READ after a new mapping");
}

/*
 * after munmap, RDMA READ of the range: IBV_WC_REM_ACCESS_ERR (pinned
 * contrast: after munmap, RDMA READ still returns the old data)
 */
TEST_F(events, munmap_read)
{
	unmap_remap(_metadata, self, false);
}

/*
 * after a new mmap at the same address, RDMA READ returns the new data
 * (pinned contrast: after a new mmap at the same address, READ returns the
 * old data)
 */
TEST_F(events, remap_read)
{
	unmap_remap(_metadata, self, true);
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

/* The checks of after_fork(), each one test's. */
enum fork_check {
	FORK_WRITE,	/* the WRITE lands in the parent, not the child */
	FORK_CHILD,	/* the child's writes stay in the child */
	FORK_CPU,	/* the device reads the parent's CPU writes */
};

/*
 * Without MADV_DONTFORK: the parent's WRITE lands in the parent only
 * (FORK_WRITE), the child's CPU writes stay in the child while the device
 * reads and writes the parent's pages (FORK_CHILD), and the device reads
 * what the parent's CPU writes (FORK_CPU).  The whole sequence runs for
 * each: the child reports at its end.
 */
static void after_fork(struct __test_metadata *_metadata,
		       FIXTURE_DATA(events) *self, enum fork_check check)
{
	size_t len = 256 * T_PAGE, off = 5 * T_PAGE + 3, n = 100 * T_PAGE;
	bool write_ok, ok;
	uint8_t *buf, *want;
	int status = 0, s;
	pid_t pid;

	BUF_MAP(len);
	buf = self->buf;
	IMAGE(old, len);
	IMAGE(want, len);
	want = self->want;
	ASSERT_EQ(0, pipe(self->go));
	ASSERT_EQ(0, pipe(self->back));
	t_fill(buf, len, 31);
	memcpy(self->old, buf, len);
	BUF_REG();
	ASSERT_EQ(0, dev_op(self, IBV_WR_RDMA_READ, self->local, buf, len));

	fflush(stdout);
	pid = fork();
	ASSERT_LE(0, pid) {
		TH_LOG("fork: %s", strerror(errno));
	}
	if (!pid)
		fork_child(buf, self->old, len, self->go[0], self->back[1]);
	self->child = pid;

	/* Remote WRITE into the parent's (now copy-on-write) pages. */
	memcpy(want, self->old, len);
	t_fill(self->local, n, 32);
	memcpy(want + off, self->local, n);
	s = dev_op(self, IBV_WR_RDMA_WRITE, self->local, buf + off, n);
	write_ok = t_check(buf, want, len,
			   "parent's view of a WRITE after fork");
	if (check == FORK_WRITE) {
		EXPECT_WC(IBV_WC_SUCCESS, s);
		EXPECT_TRUE(write_ok);
	}
	if (!pipe_put(self->go[1], 'g'))
		t_diag("write(pipe): %s", strerror(errno));

	/* The child has written its copy: the device still sees ours. */
	ok = pipe_get(self->back[0], 'w');
	if (!ok)
		t_diag("no word from the child after its CPU writes");
	if (check == FORK_CHILD) {
		EXPECT_TRUE(ok);
	}
	memset(self->local, 0, len);
	s = dev_op(self, IBV_WR_RDMA_READ, self->local, buf, len);
	ok = t_check(self->local, want, len,
		     "READ of the parent after the child wrote its copy");
	if (check == FORK_CHILD) {
		EXPECT_WC(IBV_WC_SUCCESS, s);
		EXPECT_TRUE(ok);
	}
	t_fill(self->local, n, 35);
	memcpy(want + off + 7 * T_PAGE, self->local, n);
	s = dev_op(self, IBV_WR_RDMA_WRITE, self->local,
		   buf + off + 7 * T_PAGE, n);
	ok = t_check(buf, want, len,
		     "parent's view of a WRITE after the child wrote");
	if (check == FORK_CHILD) {
		EXPECT_WC(IBV_WC_SUCCESS, s);
		EXPECT_TRUE(ok);
	}
	if (!pipe_put(self->go[1], 'c'))
		t_diag("write(pipe): %s", strerror(errno));
	if (waitpid(pid, &status, 0) != pid || !WIFEXITED(status)) {
		t_diag("the child failed (status 0x%x)", status);
		status = 0x700;
	}
	self->child = 0;
	status = WEXITSTATUS(status);
	if (status & 1)
		t_diag("the child saw the parent's WRITE");
	if (status & 2)
		t_diag("the child's own writes changed under the parent's READ/WRITE");
	if (status & ~3)
		t_diag("the child failed (exit status %d)", status);
	if (check == FORK_WRITE) {
		/* the child kept the old data, and it did not fail */
		EXPECT_EQ(0, status & ~2);
	}
	if (check == FORK_CHILD) {
		/* its own writes stayed, and it did not fail */
		EXPECT_EQ(0, status & ~1);
	}

	/* The parent's CPU writes; the device must read that. */
	t_fill(buf, len, 33);
	memcpy(want, buf, len);
	memset(self->local, 0, len);
	if (check == FORK_CPU) {
		EXPECT_WC(IBV_WC_SUCCESS,
			  dev_op(self, IBV_WR_RDMA_READ, self->local, buf,
				 len));
		EXPECT_BYTES(self->local, want, len,
			     "READ of the parent's CPU writes after fork");
	}
}

/* after fork, a remote WRITE lands in the parent, the child keeps the old
 * data
 */
TEST_F(events, fork_write_in_parent)
{
	after_fork(_metadata, self, FORK_WRITE);
}

/*
 * after fork, the child's CPU writes stay in the child: READ returns the
 * parent's data, WRITE lands in the parent
 */
TEST_F(events, fork_child_writes_stay)
{
	after_fork(_metadata, self, FORK_CHILD);
}

/* after fork, RDMA READ returns what the parent's CPU wrote */
TEST_F(events, fork_cpu_writes_read)
{
	after_fork(_metadata, self, FORK_CPU);
}

/*
 * With MADV_DONTFORK on the registered range: the child has no mapping
 * there (mincore() gives ENOMEM for every page, the child's exit status
 * says so; checked if !@rdma), and the device keeps reading and writing
 * the parent's pages (checked if @rdma).
 */
static void after_fork_dontfork(struct __test_metadata *_metadata,
				FIXTURE_DATA(events) *self, bool rdma)
{
	size_t len = 128 * T_PAGE, off = 3 * T_PAGE + 9, n = 90 * T_PAGE;
	uint8_t *buf, *want;
	int status = 0;
	bool gone_ok;
	pid_t pid;

	BUF_MAP(len);
	buf = self->buf;
	IMAGE(want, len);
	want = self->want;
	t_fill(buf, len, 36);
	memcpy(want, buf, len);
	BUF_REG();
	ASSERT_EQ(0, madvise(buf, len, MADV_DONTFORK)) {
		TH_LOG("madvise(MADV_DONTFORK): %s", strerror(errno));
	}
	ASSERT_EQ(0, dev_op(self, IBV_WR_RDMA_READ, self->local, buf, len));

	fflush(stdout);
	pid = fork();
	ASSERT_LE(0, pid) {
		TH_LOG("fork: %s", strerror(errno));
	}
	if (!pid) {
		alarm(60);
		_exit(unmapped(buf, len) ? 0 : 1);
	}
	self->child = pid;
	gone_ok = waitpid(pid, &status, 0) == pid && WIFEXITED(status) &&
		  WEXITSTATUS(status) == 0;
	self->child = 0;
	if (!gone_ok)
		t_diag("MADV_DONTFORK: the child has the range mapped or failed (status 0x%x)",
		       status);
	if (!rdma) {
		EXPECT_TRUE(gone_ok);
		return;
	}

	t_fill(self->local, n, 37);
	memcpy(want + off, self->local, n);
	EXPECT_WC(IBV_WC_SUCCESS,
		  dev_op(self, IBV_WR_RDMA_WRITE, self->local, buf + off, n));
	EXPECT_BYTES(buf, want, len,
		     "parent's view of a WRITE after fork (MADV_DONTFORK)");
	t_fill(buf, len / 2, 38);
	memcpy(want, buf, len / 2);
	memset(self->local, 0, len);
	EXPECT_WC(IBV_WC_SUCCESS,
		  dev_op(self, IBV_WR_RDMA_READ, self->local, buf, len));
	EXPECT_BYTES(self->local, want, len,
		     "READ after fork (MADV_DONTFORK)");
}

/* fork with MADV_DONTFORK: the child has no mapping of the registered
 * range
 */
TEST_F(events, dontfork_child_unmapped)
{
	after_fork_dontfork(_metadata, self, false);
}

/* fork with MADV_DONTFORK: RDMA WRITE and READ reach the parent's pages */
TEST_F(events, dontfork_rdma)
{
	after_fork_dontfork(_metadata, self, true);
}

/* ---- hugetlbfs ------------------------------------------------------------ */

/* RDMA WRITE and READ across 2 MiB hugetlb pages */
TEST_F(events, hugetlb_write_read)
{
	size_t len = NR_HUGE * HUGE_SZ, off = HUGE_SZ - 3 * T_PAGE - 5;
	size_t n = 2 * HUGE_SZ + 11;
	uint8_t *buf, *want;

	t_diag("HugePages_Total %ld, HugePages_Free %ld",
	       t_meminfo_kb("HugePages_Total"), t_meminfo_kb("HugePages_Free"));
	buf = mmap(NULL, len, PROT_READ | PROT_WRITE,
		   MAP_PRIVATE | MAP_ANONYMOUS | MAP_HUGETLB, -1, 0);
	ASSERT_NE(MAP_FAILED, buf) {
		TH_LOG("mmap(MAP_HUGETLB, %zu): %s", len, strerror(errno));
	}
	self->buf = buf;
	self->len = len;
	self->want = calloc(1, len);
	ASSERT_NE(NULL, self->want);
	want = self->want;
	BUF_REG();
	/* WRITE across two huge page boundaries into untouched huge pages. */
	t_fill(self->local, n, 41);
	memcpy(want + off, self->local, n);
	EXPECT_WC(IBV_WC_SUCCESS,
		  dev_op(self, IBV_WR_RDMA_WRITE, self->local, buf + off, n));
	EXPECT_BYTES(buf, want, len, "huge pages after WRITE");
	/* And READ all of it back. */
	t_fill(buf, HUGE_SZ, 42);
	memcpy(want, buf, HUGE_SZ);
	memset(self->local, 0, len);
	EXPECT_WC(IBV_WC_SUCCESS,
		  dev_op(self, IBV_WR_RDMA_READ, self->local, buf, len));
	EXPECT_BYTES(self->local, want, len, "READ of the huge pages");
}

ODP_HARNESS_MAIN("ODP MRs follow swap-out, munmap, fork; huge pages")
