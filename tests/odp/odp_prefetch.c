// SPDX-License-Identifier: GPL-2.0 OR Linux-OpenIB
/*
 * odp_prefetch: implicit ODP, prefetch (advise_mr through librxeodp), the
 * ODP counters and fault batching.
 *
 * Counts come from the device's hw counters (odp_page_faults,
 * odp_page_invalidations, odp_page_prefetch, odp_fault_waits) and, for one
 * case, from 'rdma statistic mr'.  Buffers are MADV_NOHUGEPAGE so that a
 * page is a page, and NUMA balancing is switched off while a test runs
 * (set up and given back around each) so that the kernel does not
 * invalidate pages behind the test's back.
 *
 * Each test goes through its case's steps afresh, up to and including the
 * one it checks: the advise_mr calls and the RDMA traffic of the steps
 * before it are asserted on the way, their counts are only printed.
 *
 * With --pinned, advise_mr on a pinned MR must fail with EINVAL (the
 * bad_pinned_mr test), and everything else is skipped: pinned MRs have
 * no faults to count.
 */
#include <errno.h>
#include <grp.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/mman.h>
#include <sys/wait.h>

#include "odpharness.h"
#include "rxeodp.h"

#define NPAGES	64
#define LEN	(NPAGES * T_PAGE)

#define PINNED_SKIP "pinned MRs have no faults to count"

/*
 * The device, a QP pair and the pinned source / sink of the traffic;
 * what a test allocates: its buffer and MRs (mr, ro, pinned, the
 * implicit imr); NUMA balancing as it was.
 */
FIXTURE(prefetch) {
	struct t_dev dev;
	struct t_rc_pair pair;
	uint8_t *src;
	struct ibv_mr *src_mr;
	uint8_t *buf;
	size_t buf_len;
	struct ibv_mr *mr, *ro, *pinned, *imr;
	char numa_bal[16];
};

ODP_VARIANTS(prefetch);

#define NUMA_BAL "/proc/sys/kernel/numa_balancing"

/*
 * NUMA balancing as the program found it, put back when the program
 * (the harness's parent) exits: a test killed at its time limit skips
 * its teardown, and the next test's setup would save that test's 0.
 */
static char numa_bal_at_start[16];

static void __attribute__((constructor)) numa_bal_save(void)
{
	FILE *f = fopen(NUMA_BAL, "r");

	if (f) {
		if (!fgets(numa_bal_at_start, sizeof(numa_bal_at_start), f))
			numa_bal_at_start[0] = 0;
		fclose(f);
	}
}

static void __attribute__((destructor)) numa_bal_restore(void)
{
	FILE *f;

	if (!numa_bal_at_start[0])
		return;
	f = fopen(NUMA_BAL, "w");
	if (f) {
		fputs(numa_bal_at_start, f);
		fclose(f);
	}
}

FIXTURE_SETUP(prefetch)
{
	FILE *f;

	t_variant();
	ASSERT_EQ(0, t_dev_open(&self->dev));
	ASSERT_EQ(0, t_rc_pair_create(&self->dev, &self->pair, NULL)) {
		TH_LOG("cannot open %s", self->dev.name);
	}
	self->src = t_mmap(T_MIB);
	ASSERT_NE(NULL, self->src);
	self->src_mr = t_reg_mr_mode(&self->dev, self->src, T_MIB,
				     T_ACCESS_ALL, false);
	ASSERT_NE(NULL, self->src_mr) {
		TH_LOG("cannot register the pinned buffer");
	}
	if (!variant->odp)
		return;
	f = fopen(NUMA_BAL, "r+");
	if (f) {
		if (!fgets(self->numa_bal, sizeof(self->numa_bal), f))
			self->numa_bal[0] = 0;
		rewind(f);
		fputs("0\n", f);
		fclose(f);
	}
}

FIXTURE_TEARDOWN(prefetch)
{
	FILE *f;

	t_dereg_mr(self->imr);
	t_dereg_mr(self->pinned);
	t_dereg_mr(self->ro);
	t_dereg_mr(self->mr);
	t_munmap(self->buf, self->buf_len);
	t_dereg_mr(self->src_mr);
	t_munmap(self->src, T_MIB);
	t_rc_pair_destroy(&self->pair);
	t_dev_close(&self->dev);
	/* NUMA balancing as it was */
	if (self->numa_bal[0]) {
		f = fopen(NUMA_BAL, "w");
		if (f) {
			fputs(self->numa_bal, f);
			fclose(f);
		}
	}
}

struct counts {
	long faults, invals, prefetch, waits;
};

static void counts_read(const struct t_dev *dev, struct counts *c)
{
	c->faults = t_hw_counter(dev, "odp_page_faults");
	c->invals = t_hw_counter(dev, "odp_page_invalidations");
	c->prefetch = t_hw_counter(dev, "odp_page_prefetch");
	c->waits = t_hw_counter(dev, "odp_fault_waits");
}

static void counts_delta(const struct t_dev *dev, struct counts *d,
			 const struct counts *before)
{
	struct counts now;

	counts_read(dev, &now);
	d->faults = now.faults - before->faults;
	d->invals = now.invals - before->invals;
	d->prefetch = now.prefetch - before->prefetch;
	d->waits = now.waits - before->waits;
	t_diag("counter deltas: page_faults %ld, page_invalidations %ld, page_prefetch %ld, fault_waits %ld",
	       d->faults, d->invals, d->prefetch, d->waits);
}

/* A fresh anonymous buffer of small pages, untouched by the CPU. */
static uint8_t *fresh(size_t len)
{
	uint8_t *p = t_mmap(len);

	if (p && madvise(p, len, MADV_NOHUGEPAGE))
		t_diag("madvise(MADV_NOHUGEPAGE): %s", strerror(errno));
	return p;
}

/* The test's buffer: @len fresh bytes in self->buf. */
#define BUF_FRESH(len) do {						\
	self->buf_len = (len);						\
	self->buf = fresh(self->buf_len);				\
	ASSERT_NE(NULL, self->buf) {					\
		TH_LOG("cannot map %zu bytes", self->buf_len);		\
	}								\
} while (0)

/* An MR the case cannot do without, in self->@field. */
#define REG(field, addr, len, access) do {				\
	self->field = t_reg_mr(&self->dev, (addr), (len), (access));	\
	ASSERT_NE(NULL, self->field) {					\
		TH_LOG("cannot register an MR (%s) of %zu bytes: %s",	\
		       t_mode(), (size_t)(len), strerror(errno));	\
	}								\
} while (0)

/*
 * RDMA WRITE @len bytes of src into @dst (rkey), then check them: EXPECTs
 * if @check, else ASSERTs (a step that later ones need).
 */
static void write_and_check(struct __test_metadata *_metadata,
			    FIXTURE_DATA(prefetch) *self, void *dst,
			    uint32_t rkey, size_t len, uint64_t seed,
			    bool check)
{
	int s;

	t_fill(self->src, len, seed);
	s = t_rdma_sync(&self->pair, IBV_WR_RDMA_WRITE, self->src, len,
			self->src_mr->lkey, (uintptr_t)dst, rkey);
	if (check) {
		EXPECT_WC(IBV_WC_SUCCESS, s);
		EXPECT_BYTES(dst, self->src, len, "written data");
	} else {
		ASSERT_WC(IBV_WC_SUCCESS, s);
		ASSERT_BYTES(dst, self->src, len, "written data");
	}
}

static int prefetch(FIXTURE_DATA(prefetch) *self, struct ibv_mr *mr,
		    void *addr, size_t len, enum ibv_advise_mr_advice advice,
		    uint32_t flags)
{
	struct ibv_sge sge = {
		.addr = (uintptr_t)addr,
		.length = len,
		.lkey = mr->lkey,
	};

	return rxeodp_advise_mr(self->dev.pd, advice, flags, &sge, 1);
}

/* IBV_ODP_SUPPORT_IMPLICIT advertised */
TEST_F(prefetch, implicit_advertised)
{
	if (!variant->odp)
		SKIP(return, PINNED_SKIP);
	EXPECT_TRUE(self->dev.attr.odp_caps.general_caps &
		    IBV_ODP_SUPPORT_IMPLICIT);
}

/* ---- counters ------------------------------------------------------------ */

enum counters_step {
	COUNTERS_WRITE,		/* the WRITE of 64 fresh pages */
	COUNTERS_FAULTS,	/* its counts */
	COUNTERS_STATISTIC,	/* 'rdma statistic mr' */
	COUNTERS_INVALS,	/* munmap */
};

static void counters(struct __test_metadata *_metadata,
		     FIXTURE_DATA(prefetch) *self, enum counters_step check)
{
	struct counts before, d;
	char line[512];
	bool seen = false;
	FILE *f;

	BUF_FRESH(LEN);
	REG(mr, self->buf, LEN, T_ACCESS_ALL);
	counts_read(&self->dev, &before);
	write_and_check(_metadata, self, self->buf, self->mr->rkey, LEN, 1,
			check == COUNTERS_WRITE);
	counts_delta(&self->dev, &d, &before);
	if (check == COUNTERS_WRITE)
		return;
	if (check == COUNTERS_FAULTS) {
		EXPECT_EQ(NPAGES, d.faults);
		EXPECT_EQ(1, d.waits);
		return;
	}

	/* per MR, as 'rdma statistic mr' shows it */
	f = popen("rdma statistic mr 2>&1", "r");
	while (f && fgets(line, sizeof(line), f)) {
		char want[32];

		t_diag("rdma statistic mr: %.*s", (int)strcspn(line, "\n"),
		       line);
		snprintf(want, sizeof(want), "page_faults %d", NPAGES);
		if (strstr(line, want))
			seen = true;
	}
	if (f)
		pclose(f);
	if (check == COUNTERS_STATISTIC) {
		EXPECT_TRUE(seen);
		return;
	}

	counts_read(&self->dev, &before);
	t_munmap(self->buf, LEN);
	self->buf = NULL;
	counts_delta(&self->dev, &d, &before);
	EXPECT_EQ(NPAGES, d.invals);
}

/* RDMA WRITE of 64 fresh pages lands */
TEST_F(prefetch, counters_write_lands)
{
	if (!variant->odp)
		SKIP(return, PINNED_SKIP);
	counters(_metadata, self, COUNTERS_WRITE);
}

/* a cold 64-page message: 64 pages faulted in one fault */
TEST_F(prefetch, counters_one_fault)
{
	if (!variant->odp)
		SKIP(return, PINNED_SKIP);
	counters(_metadata, self, COUNTERS_FAULTS);
}

/* 'rdma statistic mr' shows page_faults 64 */
TEST_F(prefetch, counters_rdma_statistic)
{
	if (!variant->odp)
		SKIP(return, PINNED_SKIP);
	counters(_metadata, self, COUNTERS_STATISTIC);
}

/* munmap of the 64 faulted pages invalidates 64 pages */
TEST_F(prefetch, counters_munmap_invalidates)
{
	if (!variant->odp)
		SKIP(return, PINNED_SKIP);
	counters(_metadata, self, COUNTERS_INVALS);
}

/* ---- batching ------------------------------------------------------------ */

static void batching(struct __test_metadata *_metadata,
		     FIXTURE_DATA(prefetch) *self, bool counts)
{
	const size_t len = T_MIB;
	struct counts before, d;

	BUF_FRESH(len);
	REG(mr, self->buf, len, T_ACCESS_ALL);
	counts_read(&self->dev, &before);
	write_and_check(_metadata, self, self->buf, self->mr->rkey, len, 2,
			!counts);
	counts_delta(&self->dev, &d, &before);
	t_diag("cold 1 MiB WRITE: %ld faults for %ld pages (%.1f faults/MiB)",
	       d.waits, d.faults, (double)d.waits);
	if (counts) {
		EXPECT_LE(1, d.waits);
		EXPECT_GE(2, d.waits);
		EXPECT_EQ(256, d.faults);
	}
}

/* cold 1 MiB RDMA WRITE lands */
TEST_F(prefetch, batching_write_lands)
{
	if (!variant->odp)
		SKIP(return, PINNED_SKIP);
	batching(_metadata, self, false);
}

/* a cold 1 MiB message faults in 1 or 2 goes, not per page */
TEST_F(prefetch, batching_few_faults)
{
	if (!variant->odp)
		SKIP(return, PINNED_SKIP);
	batching(_metadata, self, true);
}

/* ---- prefetch ------------------------------------------------------------ */

enum prefetch_step {
	PF_RET,		/* advise_mr's return */
	PF_COUNTS,	/* the pages prefetched */
	PF_TRAFFIC,	/* traffic over them */
	PF_NO_FAULT,	/* takes no fault */
};

static void prefetch_case(struct __test_metadata *_metadata,
			  FIXTURE_DATA(prefetch) *self,
			  enum ibv_advise_mr_advice advice, bool sync,
			  const char *name, enum prefetch_step check)
{
	struct counts before, d;
	int ret, i;

	BUF_FRESH(LEN);
	REG(mr, self->buf, LEN, T_ACCESS_ALL);
	counts_read(&self->dev, &before);
	ret = prefetch(self, self->mr, self->buf, LEN, advice,
		       sync ? IBV_ADVISE_MR_FLAG_FLUSH : 0);
	if (check == PF_RET) {
		EXPECT_EQ(0, ret) {
			TH_LOG("%s %s prefetch of %d pages: %s", name,
			       sync ? "sync" : "async", NPAGES,
			       strerror(ret));
		}
		return;
	}
	ASSERT_EQ(0, ret) {
		TH_LOG("%s %s prefetch of %d pages: %s", name,
		       sync ? "sync" : "async", NPAGES, strerror(ret));
	}
	/* an async prefetch is done when the counter says so */
	for (i = 0; i < 250; i++) {
		counts_delta(&self->dev, &d, &before);
		if (d.prefetch >= NPAGES || sync)
			break;
		usleep(20000);
	}
	if (check == PF_COUNTS) {
		EXPECT_EQ(NPAGES, d.prefetch);
		EXPECT_EQ(0, d.faults);
		return;
	}

	counts_read(&self->dev, &before);
	if (advice == IBV_ADVISE_MR_ADVICE_PREFETCH) {
		/* read access only: the device reads them (zeros) */
		memset(self->src, 0xa5, LEN);
		ret = t_rdma_sync(&self->pair, IBV_WR_RDMA_READ, self->src,
				  LEN, self->src_mr->lkey,
				  (uintptr_t)self->buf, self->mr->rkey);
		if (check == PF_TRAFFIC) {
			EXPECT_WC(IBV_WC_SUCCESS, ret);
			EXPECT_FILLED(self->src, 0, LEN, "read data");
		} else {
			ASSERT_WC(IBV_WC_SUCCESS, ret);
			ASSERT_TRUE(t_check_byte(self->src, 0, LEN,
						 "read data"));
		}
	} else {
		write_and_check(_metadata, self, self->buf, self->mr->rkey,
				LEN, 3, check == PF_TRAFFIC);
	}
	counts_delta(&self->dev, &d, &before);
	if (check == PF_NO_FAULT) {
		EXPECT_EQ(0, d.waits);
		EXPECT_EQ(0, d.faults);
	}
}

/* One test per step of one prefetch case. */
#define PREFETCH_TEST(tname, advice, sync, name, step)			\
	TEST_F(prefetch, tname)						\
	{								\
		if (!variant->odp)					\
			SKIP(return, PINNED_SKIP);			\
		prefetch_case(_metadata, self, advice, sync, name, step); \
	}

/* PREFETCH sync prefetch of 64 pages: Success */
PREFETCH_TEST(prefetch_sync_ret, IBV_ADVISE_MR_ADVICE_PREFETCH, true,
	      "PREFETCH", PF_RET)
/* PREFETCH: 64 pages prefetched, none faulted */
PREFETCH_TEST(prefetch_sync_counts, IBV_ADVISE_MR_ADVICE_PREFETCH, true,
	      "PREFETCH", PF_COUNTS)
/* PREFETCH: RDMA READ of the prefetched pages */
PREFETCH_TEST(prefetch_sync_read, IBV_ADVISE_MR_ADVICE_PREFETCH, true,
	      "PREFETCH", PF_TRAFFIC)
/* PREFETCH: traffic over prefetched pages takes no fault */
PREFETCH_TEST(prefetch_sync_no_fault, IBV_ADVISE_MR_ADVICE_PREFETCH, true,
	      "PREFETCH", PF_NO_FAULT)

/* PREFETCH_WRITE sync prefetch of 64 pages: Success */
PREFETCH_TEST(prefetch_write_sync_ret, IBV_ADVISE_MR_ADVICE_PREFETCH_WRITE,
	      true, "PREFETCH_WRITE", PF_RET)
/* PREFETCH_WRITE: 64 pages prefetched, none faulted */
PREFETCH_TEST(prefetch_write_sync_counts,
	      IBV_ADVISE_MR_ADVICE_PREFETCH_WRITE, true, "PREFETCH_WRITE",
	      PF_COUNTS)
/* PREFETCH_WRITE: RDMA WRITE into the prefetched pages */
PREFETCH_TEST(prefetch_write_sync_write,
	      IBV_ADVISE_MR_ADVICE_PREFETCH_WRITE, true, "PREFETCH_WRITE",
	      PF_TRAFFIC)
/* PREFETCH_WRITE: traffic over prefetched pages takes no fault */
PREFETCH_TEST(prefetch_write_sync_no_fault,
	      IBV_ADVISE_MR_ADVICE_PREFETCH_WRITE, true, "PREFETCH_WRITE",
	      PF_NO_FAULT)

/* PREFETCH async prefetch of 64 pages: Success */
PREFETCH_TEST(prefetch_async_ret, IBV_ADVISE_MR_ADVICE_PREFETCH, false,
	      "PREFETCH", PF_RET)
/* PREFETCH: 64 pages prefetched, none faulted */
PREFETCH_TEST(prefetch_async_counts, IBV_ADVISE_MR_ADVICE_PREFETCH, false,
	      "PREFETCH", PF_COUNTS)
/* PREFETCH: RDMA READ of the prefetched pages */
PREFETCH_TEST(prefetch_async_read, IBV_ADVISE_MR_ADVICE_PREFETCH, false,
	      "PREFETCH", PF_TRAFFIC)
/* PREFETCH: traffic over prefetched pages takes no fault */
PREFETCH_TEST(prefetch_async_no_fault, IBV_ADVISE_MR_ADVICE_PREFETCH, false,
	      "PREFETCH", PF_NO_FAULT)

/* PREFETCH_WRITE async prefetch of 64 pages: Success */
PREFETCH_TEST(prefetch_write_async_ret, IBV_ADVISE_MR_ADVICE_PREFETCH_WRITE,
	      false, "PREFETCH_WRITE", PF_RET)
/* PREFETCH_WRITE: 64 pages prefetched, none faulted */
PREFETCH_TEST(prefetch_write_async_counts,
	      IBV_ADVISE_MR_ADVICE_PREFETCH_WRITE, false, "PREFETCH_WRITE",
	      PF_COUNTS)
/* PREFETCH_WRITE: RDMA WRITE into the prefetched pages */
PREFETCH_TEST(prefetch_write_async_write,
	      IBV_ADVISE_MR_ADVICE_PREFETCH_WRITE, false, "PREFETCH_WRITE",
	      PF_TRAFFIC)
/* PREFETCH_WRITE: traffic over prefetched pages takes no fault */
PREFETCH_TEST(prefetch_write_async_no_fault,
	      IBV_ADVISE_MR_ADVICE_PREFETCH_WRITE, false, "PREFETCH_WRITE",
	      PF_NO_FAULT)

/* ---- NO_FAULT ------------------------------------------------------------ */

enum no_fault_step {
	NF_RET,		/* advise_mr's return */
	NF_COUNTS,	/* only the present pages made accessible */
	NF_READ,	/* reading them takes no fault */
};

static void no_fault(struct __test_metadata *_metadata,
		     FIXTURE_DATA(prefetch) *self, bool sync,
		     enum no_fault_step check)
{
	struct counts before, d;
	int ret, i;

	BUF_FRESH(LEN);
	REG(mr, self->buf, LEN, T_ACCESS_ALL);
	/* the process maps the first half itself */
	memset(self->buf, 0x5a, LEN / 2);
	counts_read(&self->dev, &before);
	ret = prefetch(self, self->mr, self->buf, LEN,
		       IBV_ADVISE_MR_ADVICE_PREFETCH_NO_FAULT,
		       sync ? IBV_ADVISE_MR_FLAG_FLUSH : 0);
	if (check == NF_RET) {
		EXPECT_EQ(0, ret) {
			TH_LOG("NO_FAULT %s prefetch: %s",
			       sync ? "sync" : "async", strerror(ret));
		}
		return;
	}
	ASSERT_EQ(0, ret) {
		TH_LOG("NO_FAULT %s prefetch: %s", sync ? "sync" : "async",
		       strerror(ret));
	}
	for (i = 0; i < 250; i++) {
		counts_delta(&self->dev, &d, &before);
		if (d.prefetch >= NPAGES / 2 || sync)
			break;
		usleep(20000);
	}
	if (check == NF_COUNTS) {
		EXPECT_EQ(NPAGES / 2, d.prefetch);
		EXPECT_EQ(0, d.faults);
		return;
	}
	counts_read(&self->dev, &before);
	ret = t_rdma_sync(&self->pair, IBV_WR_RDMA_READ, self->src, LEN / 2,
			  self->src_mr->lkey, (uintptr_t)self->buf,
			  self->mr->rkey);
	counts_delta(&self->dev, &d, &before);
	EXPECT_WC(IBV_WC_SUCCESS, ret);
	EXPECT_EQ(0, d.waits);
	EXPECT_FILLED(self->src, 0x5a, LEN / 2, "read data");
}

/* NO_FAULT sync prefetch: Success */
TEST_F(prefetch, no_fault_sync_ret)
{
	if (!variant->odp)
		SKIP(return, PINNED_SKIP);
	no_fault(_metadata, self, true, NF_RET);
}

/* NO_FAULT: only the 32 pages present are made accessible */
TEST_F(prefetch, no_fault_sync_counts)
{
	if (!variant->odp)
		SKIP(return, PINNED_SKIP);
	no_fault(_metadata, self, true, NF_COUNTS);
}

/* NO_FAULT: reading the present half takes no fault */
TEST_F(prefetch, no_fault_sync_read)
{
	if (!variant->odp)
		SKIP(return, PINNED_SKIP);
	no_fault(_metadata, self, true, NF_READ);
}

/* NO_FAULT async prefetch: Success */
TEST_F(prefetch, no_fault_async_ret)
{
	if (!variant->odp)
		SKIP(return, PINNED_SKIP);
	no_fault(_metadata, self, false, NF_RET);
}

/* NO_FAULT: only the 32 pages present are made accessible */
TEST_F(prefetch, no_fault_async_counts)
{
	if (!variant->odp)
		SKIP(return, PINNED_SKIP);
	no_fault(_metadata, self, false, NF_COUNTS);
}

/* NO_FAULT: reading the present half takes no fault */
TEST_F(prefetch, no_fault_async_read)
{
	if (!variant->odp)
		SKIP(return, PINNED_SKIP);
	no_fault(_metadata, self, false, NF_READ);
}

/* ---- implicit ODP -------------------------------------------------------- */

enum implicit_step {
	IMP_REG,		/* the implicit MR registers */
	IMP_WRITE,		/* a WRITE through it lands */
	IMP_PREFETCH,		/* a sync PREFETCH_WRITE through it */
	IMP_WRITE_PREFETCHED,	/* a WRITE into the prefetched pages */
	IMP_NO_FAULT,		/* takes no fault */
	IMP_UNMAPPED,		/* a WRITE to an unmapped address fails */
};

static void implicit(struct __test_metadata *_metadata,
		     FIXTURE_DATA(prefetch) *self, enum implicit_step check)
{
	struct counts before, d;
	struct ibv_wc wc;
	uint8_t *gone;
	int ret;

	self->imr = ibv_reg_mr(self->dev.pd, NULL, SIZE_MAX,
			       T_ACCESS_ALL | IBV_ACCESS_ON_DEMAND);
	BUF_FRESH(LEN);
	if (check == IMP_REG) {
		EXPECT_NE(NULL, self->imr) {
			TH_LOG("implicit ODP MR registers: %s",
			       strerror(errno));
		}
		return;
	}
	ASSERT_NE(NULL, self->imr) {
		TH_LOG("implicit ODP MR registers: %s", strerror(errno));
	}

	write_and_check(_metadata, self, self->buf, self->imr->rkey, LEN, 4,
			check == IMP_WRITE);
	if (check == IMP_WRITE)
		return;

	t_munmap(self->buf, LEN);
	self->buf = NULL;
	BUF_FRESH(LEN);
	counts_read(&self->dev, &before);
	ret = prefetch(self, self->imr, self->buf, LEN,
		       IBV_ADVISE_MR_ADVICE_PREFETCH_WRITE,
		       IBV_ADVISE_MR_FLAG_FLUSH);
	counts_delta(&self->dev, &d, &before);
	if (check == IMP_PREFETCH) {
		EXPECT_EQ(0, ret) {
			TH_LOG("implicit: sync PREFETCH_WRITE: %s",
			       strerror(ret));
		}
		EXPECT_EQ(NPAGES, d.prefetch);
		return;
	}
	ASSERT_EQ(0, ret) {
		TH_LOG("implicit: sync PREFETCH_WRITE: %s", strerror(ret));
	}
	counts_read(&self->dev, &before);
	write_and_check(_metadata, self, self->buf, self->imr->rkey, LEN, 5,
			check == IMP_WRITE_PREFETCHED);
	counts_delta(&self->dev, &d, &before);
	if (check == IMP_WRITE_PREFETCHED)
		return;
	if (check == IMP_NO_FAULT) {
		EXPECT_EQ(0, d.waits);
		return;
	}

	/* an address the process does not map */
	gone = fresh(LEN);
	ASSERT_NE(NULL, gone);
	t_munmap(gone, LEN);
	memset(&wc, 0, sizeof(wc));
	ret = t_post_rdma(self->pair.qp[0], IBV_WR_RDMA_WRITE, 77, self->src,
			  T_PAGE, self->src_mr->lkey, (uintptr_t)gone,
			  self->imr->rkey);
	if (!ret && t_poll(self->pair.scq[0], 1, &wc) != 1)
		ret = -1;
	EXPECT_EQ(0, ret) {
		TH_LOG("implicit: WRITE to an unmapped address: no completion");
	}
	EXPECT_WC(IBV_WC_REM_ACCESS_ERR, wc.status);
}

/* implicit ODP MR registers */
TEST_F(prefetch, implicit_registers)
{
	if (!variant->odp)
		SKIP(return, PINNED_SKIP);
	implicit(_metadata, self, IMP_REG);
}

/* RDMA WRITE through the implicit MR lands */
TEST_F(prefetch, implicit_write)
{
	if (!variant->odp)
		SKIP(return, PINNED_SKIP);
	implicit(_metadata, self, IMP_WRITE);
}

/* implicit: sync PREFETCH_WRITE of 64 pages */
TEST_F(prefetch, implicit_prefetch)
{
	if (!variant->odp)
		SKIP(return, PINNED_SKIP);
	implicit(_metadata, self, IMP_PREFETCH);
}

/* implicit: RDMA WRITE into prefetched pages lands */
TEST_F(prefetch, implicit_write_prefetched)
{
	if (!variant->odp)
		SKIP(return, PINNED_SKIP);
	implicit(_metadata, self, IMP_WRITE_PREFETCHED);
}

/* implicit: ... and takes no fault */
TEST_F(prefetch, implicit_no_fault)
{
	if (!variant->odp)
		SKIP(return, PINNED_SKIP);
	implicit(_metadata, self, IMP_NO_FAULT);
}

/* implicit: WRITE to an unmapped address: remote access error */
TEST_F(prefetch, implicit_write_unmapped)
{
	if (!variant->odp)
		SKIP(return, PINNED_SKIP);
	implicit(_metadata, self, IMP_UNMAPPED);
}

/* Translation tables held by the device's ODP MRs ('rdma statistic mr'). */
static long tables_held(const struct t_dev *dev)
{
	char line[1024];
	long n = 0;
	FILE *f;

	f = popen("rdma statistic mr 2>&1", "r");
	while (f && fgets(line, sizeof(line), f)) {
		char *p = strstr(line, "translation_tables ");

		if (strstr(line, dev->name) && p)
			n += atol(p + strlen("translation_tables "));
	}
	if (f)
		pclose(f);
	return n;
}

/*
 * An implicit MR over a process that maps 1 GiB, has the device fault all
 * of it (a read prefetch: the zero page, no memory of the process's) and
 * unmaps it, 16 times: the mirror's tables come and go with the mappings.
 *
 * implicit MR over 16 x 1 GiB faulted and unmapped in turns: its tables go
 * with each unmap
 *
 * 20-35 s on Debian's kernel under TCG (a shared host): 120 s.
 */
TEST_F_TIMEOUT(prefetch, implicit_shrink, 120)
{
	long base, held, most = 0, left = 0, kmem0 = t_kmem_kb();
	const size_t len = 1024 * T_MIB;
	int turn, ret = 0;

	if (!variant->odp)
		SKIP(return, PINNED_SKIP);
	self->imr = ibv_reg_mr(self->dev.pd, NULL, SIZE_MAX,
			       T_ACCESS_ALL | IBV_ACCESS_ON_DEMAND);
	ASSERT_NE(NULL, self->imr) {
		TH_LOG("no MR: %s", strerror(errno));
	}
	base = tables_held(&self->dev);
	for (turn = 0; turn < 16 && !ret && !left; turn++) {
		uint8_t *buf = mmap(NULL, len, PROT_READ | PROT_WRITE,
				    MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE,
				    -1, 0);

		if (buf == MAP_FAILED) {
			ret = errno;
			break;
		}
		ret = prefetch(self, self->imr, buf, len,
			       IBV_ADVISE_MR_ADVICE_PREFETCH,
			       IBV_ADVISE_MR_FLAG_FLUSH);
		held = tables_held(&self->dev) - base;
		if (held > most)
			most = held;
		munmap(buf, len);
		left = tables_held(&self->dev) - base;
	}
	t_diag("implicit MR: %d turns, up to %ld tables held, %ld left; kernel memory %+ld KiB",
	       turn, most, left, t_kmem_kb() - kmem0);
	EXPECT_EQ(0, ret) {
		TH_LOG("turn %d: %s", turn, strerror(ret));
	}
	EXPECT_EQ(16, turn);
	EXPECT_LE(512, most);
	EXPECT_EQ(0, left);
}

/* ---- bad input ----------------------------------------------------------- */

/* An ODP MR, a remote-read-only ODP MR and a pinned MR for the checks. */
#define BAD_SETUP() do {						\
	BUF_FRESH(LEN);							\
	REG(mr, self->buf, LEN, T_ACCESS_ALL);				\
	REG(ro, self->buf, LEN, IBV_ACCESS_REMOTE_READ);		\
	self->pinned = t_reg_mr_mode(&self->dev, self->src, LEN,	\
				     IBV_ACCESS_LOCAL_WRITE, false);	\
	ASSERT_NE(NULL, self->pinned) {					\
		TH_LOG("cannot register a pinned MR: %s",		\
		       strerror(errno));				\
	}								\
} while (0)

/* An advise_mr call's errno: expected @exp. */
#define EXPECT_ERR(exp, ret) do {					\
	int __ret = (ret);						\
	EXPECT_EQ(exp, __ret) {						\
		TH_LOG("%s, expected %s", strerror(__ret),		\
		       strerror(exp));					\
	}								\
} while (0)

/* bad lkey */
TEST_F(prefetch, bad_lkey)
{
	struct ibv_sge sge = { .length = LEN };

	if (!variant->odp)
		SKIP(return, PINNED_SKIP);
	BAD_SETUP();
	sge.addr = (uintptr_t)self->buf;
	sge.lkey = self->mr->lkey ^ 0x5500;
	EXPECT_ERR(ENOENT, rxeodp_advise_mr(self->dev.pd,
					    IBV_ADVISE_MR_ADVICE_PREFETCH,
					    IBV_ADVISE_MR_FLAG_FLUSH, &sge,
					    1));
}

/* PREFETCH_WRITE without local write */
TEST_F(prefetch, bad_no_local_write)
{
	if (!variant->odp)
		SKIP(return, PINNED_SKIP);
	BAD_SETUP();
	EXPECT_ERR(EPERM, prefetch(self, self->ro, self->buf, LEN,
				   IBV_ADVISE_MR_ADVICE_PREFETCH_WRITE,
				   IBV_ADVISE_MR_FLAG_FLUSH));
}

/* range beyond the MR */
TEST_F(prefetch, bad_range)
{
	if (!variant->odp)
		SKIP(return, PINNED_SKIP);
	BAD_SETUP();
	EXPECT_ERR(EFAULT, prefetch(self, self->mr, self->buf + T_PAGE, LEN,
				    IBV_ADVISE_MR_ADVICE_PREFETCH,
				    IBV_ADVISE_MR_FLAG_FLUSH));
}

/*
 * pinned MR: EINVAL; in the pinned variant the only test that runs:
 * advise_mr on a pinned MR (the pinned source buffer's)
 */
TEST_F(prefetch, bad_pinned_mr)
{
	if (!variant->odp) {
		EXPECT_ERR(EINVAL, prefetch(self, self->src_mr, self->src,
					    LEN,
					    IBV_ADVISE_MR_ADVICE_PREFETCH,
					    IBV_ADVISE_MR_FLAG_FLUSH));
		return;
	}
	BAD_SETUP();
	EXPECT_ERR(EINVAL, prefetch(self, self->pinned, self->src, LEN,
				    IBV_ADVISE_MR_ADVICE_PREFETCH,
				    IBV_ADVISE_MR_FLAG_FLUSH));
}

/* unknown advice */
TEST_F(prefetch, bad_advice)
{
	if (!variant->odp)
		SKIP(return, PINNED_SKIP);
	BAD_SETUP();
	EXPECT_ERR(EOPNOTSUPP, prefetch(self, self->mr, self->buf, LEN, 7,
					IBV_ADVISE_MR_FLAG_FLUSH));
}

/* unknown flag: the uverbs core checks the flags against the ones it knows */
TEST_F(prefetch, bad_flag)
{
	if (!variant->odp)
		SKIP(return, PINNED_SKIP);
	BAD_SETUP();
	EXPECT_ERR(EINVAL, prefetch(self, self->mr, self->buf, LEN,
				    IBV_ADVISE_MR_ADVICE_PREFETCH, 0x80));
}

/* sync prefetch over an unmapped page */
TEST_F(prefetch, bad_unmapped_page)
{
	if (!variant->odp)
		SKIP(return, PINNED_SKIP);
	BAD_SETUP();
	munmap(self->buf + T_PAGE, T_PAGE);
	EXPECT_ERR(EFAULT, prefetch(self, self->mr, self->buf, LEN,
				    IBV_ADVISE_MR_ADVICE_PREFETCH_WRITE,
				    IBV_ADVISE_MR_FLAG_FLUSH));
}

/* ---- flood --------------------------------------------------------------- */

/*
 * An unprivileged process floods asynchronous prefetches of a large cold
 * range, each of which takes a while: past the bound per MR they fail with
 * EBUSY, every other one is queued, and the process exits with many still
 * queued without leaving anything behind.
 */
#define FLOOD_LEN	(1024 * T_MIB)
#define FLOOD_CALLS	4000
#define NOBODY		65534
#define FLOOD_WAIT	120	/* s for the flooding process to end */
#define FLOOD_GONE	60	/* s for its resources to go after */

static int flood_child(void)
{
	long ok = 0, busy = 0, other = 0, i;
	struct t_dev d;
	struct ibv_mr *mr;
	uint8_t *buf;

	if (setgroups(0, NULL) || setgid(NOBODY) || setuid(NOBODY))
		return 10;
	if (t_dev_open(&d))
		return 11;
	buf = mmap(NULL, FLOOD_LEN, PROT_READ | PROT_WRITE,
		   MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	mr = buf == MAP_FAILED ? NULL
			       : t_reg_mr(&d, buf, FLOOD_LEN, T_ACCESS_ALL);
	if (!mr)
		return 12;
	for (i = 0; i < FLOOD_CALLS; i++) {
		size_t off = (i % (FLOOD_LEN / (2 * T_MIB))) * 2 * T_MIB;
		struct ibv_sge sge = {
			.addr = (uintptr_t)buf + off,
			.length = 2 * T_MIB,
			.lkey = mr->lkey,
		};
		int ret = rxeodp_advise_mr(d.pd, IBV_ADVISE_MR_ADVICE_PREFETCH,
					   0, &sge, 1);

		if (!ret)
			ok++;
		else if (ret == EBUSY)
			busy++;
		else
			other++;
	}
	fprintf(stderr, "flood: %ld queued, %ld EBUSY, %ld other errors\n",
		ok, busy, other);
	/* exit with prefetches queued: deregistration stops them */
	return ok > 0 && busy > 0 && !other ? 0 : 13;
}

enum flood_check {
	FLOOD_STATUS,	/* the flooding process's verdict */
	FLOOD_EXITS,	/* it ends in time */
	FLOOD_RES_GONE,	/* its MR and context go */
};

/*
 * The flood, its end and its resources' going, each time; @check says
 * which is checked.  The tests' time limit covers both waits (the flood
 * itself takes 1-4 s under TCG), so that a flooding process that does not
 * end is reported with the kernel stacks it waits in.
 */
static void flood(struct __test_metadata *_metadata,
		  FIXTURE_DATA(prefetch) *self, enum flood_check check)
{
	struct t_res base, now;
	int status = -1;
	bool back = false;
	double t0, took;
	pid_t pid;

	if (t_res_read(self->dev.name, &base))
		t_diag("cannot read 'rdma resource show %s'", self->dev.name);
	fflush(stdout);
	pid = fork();
	ASSERT_LE(0, pid) {
		TH_LOG("fork: %s", strerror(errno));
	}
	if (!pid)
		_exit(flood_child());
	t0 = t_now();
	while (!waitpid(pid, &status, WNOHANG) && t_now() - t0 < FLOOD_WAIT)
		usleep(20000);
	took = t_now() - t0;
	t_diag("the flooding process: status %#x after %.1f s", status, took);
	if (check == FLOOD_STATUS) {
		EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) {
			TH_LOG("unprivileged flood of %d async prefetches: status %#x",
			       FLOOD_CALLS, status);
		}
	}
	if (check == FLOOD_EXITS) {
		EXPECT_GT(FLOOD_WAIT, took) {
			TH_LOG("the flooding process has not ended in %d s",
			       FLOOD_WAIT);
		}
	}
	if (took >= FLOOD_WAIT) {
		t_dump_kernel_stacks("the flooding process has not ended");
		kill(pid, SIGKILL);
		waitpid(pid, &status, 0);
	}
	for (t0 = t_now(); t_now() - t0 < FLOOD_GONE && !back; usleep(50000))
		back = !t_res_read(self->dev.name, &now) &&
		       t_res_equal(&now, &base);
	if (check == FLOOD_RES_GONE) {
		EXPECT_TRUE(back) {
			TH_LOG("'rdma resource show' still lists more than before");
		}
	}
}

/*
 * unprivileged flood of 4000 async prefetches: some queued, the rest
 * EBUSY, no other error
 */
TEST_F_TIMEOUT(prefetch, flood_status, FLOOD_WAIT + FLOOD_GONE + 30)
{
	if (!variant->odp)
		SKIP(return, PINNED_SKIP);
	flood(_metadata, self, FLOOD_STATUS);
}

/* the flooding process exits with prefetches queued */
TEST_F_TIMEOUT(prefetch, flood_exits, FLOOD_WAIT + FLOOD_GONE + 30)
{
	if (!variant->odp)
		SKIP(return, PINNED_SKIP);
	flood(_metadata, self, FLOOD_EXITS);
}

/* its MR and context are gone ('rdma resource show') */
TEST_F_TIMEOUT(prefetch, flood_resources_gone, FLOOD_WAIT + FLOOD_GONE + 30)
{
	if (!variant->odp)
		SKIP(return, PINNED_SKIP);
	flood(_metadata, self, FLOOD_RES_GONE);
}

ODP_HARNESS_MAIN("implicit ODP, prefetch, ODP counters, batching")
