// SPDX-License-Identifier: GPL-2.0 OR Linux-OpenIB
/*
 * odp_aging: an ODP MR tells reclaim which pages the device uses.
 *
 * 64 pages filled by the CPU are registered; the device READs pages 0-31
 * only.  MADV_PAGEOUT clears the CPU's accessed bits and asks reclaim to
 * take every page: reclaim asks the MMU notifiers whether each page was
 * used (folio_referenced() -> clear_flush_young), and ours says yes for
 * the 32 the device read.  So:
 *
 *  - the first MADV_PAGEOUT swaps out pages 32-63 and leaves 0-31 present
 *    (pagemap, page by page), and the device's odp_young_found counter
 *    moved by at least 32;
 *  - a second MADV_PAGEOUT, with no traffic in between, swaps out all 64:
 *    the first question cleared the device's accessed bits;
 *  - a READ of all 64 pages then returns the data byte for byte;
 *  - with odp_aging=0 the first MADV_PAGEOUT swaps out all 64 pages and
 *    the young counters do not move;
 *  - a transparent huge page that the device READ (a huge translation
 *    entry) survives the first MADV_PAGEOUT and goes on the second; with
 *    odp_aging=0 it goes on the first.
 *
 * Each test goes through the steps up to the one it checks afresh: the
 * device's READ of the hot pages (or of the THP), which every later step
 * needs, is asserted on the way; the page states and counters of the
 * steps before are only printed.  odp_aging is set as the test needs and
 * given back as it was in teardown.
 *
 * The test runs on one CPU: MADV_PAGEOUT drains only its own CPU's LRU
 * batches, and a page still in another CPU's batch cannot be isolated.
 *
 * Pinned MRs (--pinned): no pinned page is swapped out by any pass, and
 * the data survives all the same; the base_* and thp_* tests check that,
 * the odp_aging=0 ones and the young counters skip (pinned MRs have no
 * odp_aging).
 */
#include <errno.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/mman.h>

#include "odpharness.h"

#ifndef MADV_PAGEOUT
#define MADV_PAGEOUT	21
#endif

#define NPAGES		64
#define HOT		32	/* pages 0 .. HOT - 1 are read by the device */
#define LEN		(NPAGES * T_PAGE)
#define THP_SZ		(2 * T_MIB)

/*
 * The device, the local buffer of every READ, and what a test allocates:
 * the buffer under test (64 pages, or the mapping that holds a THP), its
 * expected image and its MR; odp_aging as it was before the test.
 */
FIXTURE(aging) {
	struct t_dev dev;
	uint8_t *local;
	struct ibv_mr *lmr;
	uint8_t *buf, *want;
	size_t buf_len;
	struct ibv_mr *mr;
	int aging;
};

ODP_VARIANTS(aging);

FIXTURE_SETUP(aging)
{
	cpu_set_t cpu;

	t_variant();
	self->aging = -1;
	ASSERT_EQ(0, t_dev_open(&self->dev));
	if (variant->odp) {
		self->aging = t_odp_aging();
		ASSERT_LE(0, self->aging) {
			TH_LOG("rdma_rxe has no odp_aging parameter");
		}
	}
	CPU_ZERO(&cpu);
	CPU_SET(0, &cpu);
	ASSERT_EQ(0, sched_setaffinity(0, sizeof(cpu), &cpu)) {
		TH_LOG("sched_setaffinity: %s", strerror(errno));
	}
	self->local = t_mmap(THP_SZ);
	ASSERT_NE(NULL, self->local);
	self->lmr = t_reg_mr_mode(&self->dev, self->local, THP_SZ,
				  T_ACCESS_ALL, false);
	ASSERT_NE(NULL, self->lmr) {
		TH_LOG("cannot register the local buffer");
	}
}

FIXTURE_TEARDOWN(aging)
{
	t_dereg_mr(self->mr);
	t_munmap(self->buf, self->buf_len);
	free(self->want);
	if (self->aging >= 0 && t_odp_aging() != self->aging)
		t_odp_aging_set(self->aging);
	t_dereg_mr(self->lmr);
	t_munmap(self->local, THP_SZ);
	t_dev_close(&self->dev);
}

/* odp_aging as the test needs it (ODP only). */
#define AGING_SET(on)							\
	ASSERT_TRUE(t_odp_aging_set(on)) {				\
		TH_LOG("cannot %s odp_aging", (on) ? "set" : "clear");	\
	}

static int dev_read(FIXTURE_DATA(aging) *self, void *raddr, size_t len)
{
	return t_rdma_fresh_pair(&self->dev, IBV_WR_RDMA_READ, self->local,
				 self->lmr->lkey, raddr, self->mr->rkey, len);
}

/* MADV_PAGEOUT of [p, p + len), then the state of each page in @state. */
static bool pageout(void *p, size_t len, char *state, const char *when)
{
	if (madvise(p, len, MADV_PAGEOUT)) {
		t_diag("%s: madvise(MADV_PAGEOUT): %s", when, strerror(errno));
		return false;
	}
	if (t_page_states(p, len, state))
		return false;
	if (len / T_PAGE <= NPAGES)
		t_diag("%s: %s", when, state);
	return true;
}

/* Is @state @a for pages [0, n) and @b for the rest? */
static bool states_are(const char *state, size_t n, char a, char b)
{
	size_t i;

	for (i = 0; state[i]; i++)
		if (state[i] != (i < n ? a : b))
			return false;
	return true;
}

struct young {
	long queries, found;
};

static void young_read(const struct t_dev *dev, struct young *y)
{
	y->queries = t_hw_counter(dev, "odp_young_queries");
	y->found = t_hw_counter(dev, "odp_young_found");
}

/* The steps of base_pages(), each one test's check. */
enum base_step {
	HOT_READ,	/* the device READs the hot pages */
	FIRST_STATES,	/* the page states after the first MADV_PAGEOUT */
	FIRST_YOUNG,	/* the young counters over the first MADV_PAGEOUT */
	SECOND_STATES,	/* the page states after the second */
	READ_ALL,	/* a READ of all 64 pages after both */
};

/*
 * The device READs pages 0 .. HOT - 1 of 64 CPU-filled pages, then two
 * MADV_PAGEOUTs and a READ of all of them, up to step @check, which is
 * checked; the outcome each pass must have depends on the mode and on
 * @aging.
 */
static void base_pages(struct __test_metadata *_metadata,
		       FIXTURE_DATA(aging) *self, bool aging,
		       enum base_step check)
{
	char state[NPAGES + 1], what[64];
	struct young y0, y1;
	bool ok, odp_aged = t_odp && aging;
	const char *mode = t_odp ? aging ? "odp_aging=1" : "odp_aging=0" :
			   "pinned";

	if (t_odp)
		AGING_SET(aging);
	self->buf = t_mmap(LEN);
	self->buf_len = LEN;
	self->want = malloc(LEN);
	ASSERT_TRUE(self->buf && self->want) {
		TH_LOG("out of memory");
	}
	madvise(self->buf, LEN, MADV_NOHUGEPAGE);
	t_fill(self->buf, LEN, aging ? 61 : 62);
	memcpy(self->want, self->buf, LEN);
	self->mr = t_reg_mr(&self->dev, self->buf, LEN, T_ACCESS_ALL);
	ASSERT_NE(NULL, self->mr);
	if (check == HOT_READ) {
		EXPECT_EQ(0, dev_read(self, self->buf, HOT * T_PAGE));
		EXPECT_BYTES(self->local, self->want, HOT * T_PAGE,
			     "READ of the hot pages");
		return;
	}
	ASSERT_EQ(0, dev_read(self, self->buf, HOT * T_PAGE));
	ASSERT_BYTES(self->local, self->want, HOT * T_PAGE,
		     "READ of the hot pages");

	young_read(&self->dev, &y0);
	ok = pageout(self->buf, LEN, state, "first MADV_PAGEOUT");
	young_read(&self->dev, &y1);
	t_diag("odp_young_queries +%ld, odp_young_found +%ld",
	       y1.queries - y0.queries, y1.found - y0.found);
	if (check == FIRST_STATES) {
		ASSERT_TRUE(ok);	/* state[] is unset otherwise */
		if (odp_aged) {
			/* pages 32-63 out, 0-31 present */
			EXPECT_TRUE(states_are(state, HOT, 'P', 'S')) {
				TH_LOG("%s: %s", mode, state);
			}
		} else if (t_odp) {
			/* all 64 pages out */
			EXPECT_TRUE(states_are(state, 0, 'P', 'S')) {
				TH_LOG("%s: %s", mode, state);
			}
		} else {
			/* no pinned page out */
			EXPECT_TRUE(states_are(state, NPAGES, 'P', 'S')) {
				TH_LOG("%s: %s", mode, state);
			}
		}
		return;
	}
	if (check == FIRST_YOUNG) {
		if (odp_aged) {
			/* asked about every page, 32 found young */
			EXPECT_LE(NPAGES, y1.queries - y0.queries);
			EXPECT_LE(HOT, y1.found - y0.found);
		} else {
			EXPECT_EQ(y0.queries, y1.queries);
			EXPECT_EQ(y0.found, y1.found);
		}
		return;
	}

	ok = pageout(self->buf, LEN, state, "second MADV_PAGEOUT");
	if (check == SECOND_STATES) {
		ASSERT_TRUE(ok);	/* state[] is unset otherwise */
		if (t_odp) {
			/* all 64 out: the first pass cleared the bits */
			EXPECT_TRUE(states_are(state, 0, 'P', 'S')) {
				TH_LOG("%s: %s", mode, state);
			}
		} else {
			/* no pinned page out */
			EXPECT_TRUE(states_are(state, NPAGES, 'P', 'S')) {
				TH_LOG("%s: %s", mode, state);
			}
		}
		return;
	}

	memset(self->local, 0, LEN);
	snprintf(what, sizeof(what), "%s: READ after the pageouts", mode);
	EXPECT_EQ(0, dev_read(self, self->buf, LEN));
	EXPECT_BYTES(self->local, self->want, LEN, what);
	EXPECT_BYTES(self->buf, self->want, LEN,
		     "CPU view after the pageouts");
}

/*
 * With odp_aging=1 in the ODP variant, with pinned MRs in the pinned one;
 * MODE is "odp_aging=1" or "pinned".
 */

/* MODE: the device READs pages 0-31 of 64 */
TEST_F(aging, base_hot_read)
{
	base_pages(_metadata, self, variant->odp, HOT_READ);
}

/*
 * odp_aging=1: the first MADV_PAGEOUT swaps out pages 32-63 and leaves
 * 0-31 present (pinned: the first MADV_PAGEOUT swaps out no pinned page)
 */
TEST_F(aging, base_first_pageout)
{
	base_pages(_metadata, self, variant->odp, FIRST_STATES);
}

/* odp_aging=1: reclaim asked about every page, 32 were found young */
TEST_F(aging, base_young_counters)
{
	if (!variant->odp)
		SKIP(return, "pinned MRs have no odp_aging");
	base_pages(_metadata, self, true, FIRST_YOUNG);
}

/*
 * odp_aging=1: a second MADV_PAGEOUT with no traffic between swaps out
 * all 64 pages (pinned: the second MADV_PAGEOUT swaps out no pinned page)
 */
TEST_F(aging, base_second_pageout)
{
	base_pages(_metadata, self, variant->odp, SECOND_STATES);
}

/* MODE: a READ of all 64 pages returns the data */
TEST_F(aging, base_read_after_pageouts)
{
	base_pages(_metadata, self, variant->odp, READ_ALL);
}

/* The same with odp_aging=0; ODP only. */

/* odp_aging=0: the device READs pages 0-31 of 64 */
TEST_F(aging, noaging_hot_read)
{
	if (!variant->odp)
		SKIP(return, "pinned MRs have no odp_aging");
	base_pages(_metadata, self, false, HOT_READ);
}

/* odp_aging=0: the first MADV_PAGEOUT swaps out all 64 pages */
TEST_F(aging, noaging_first_pageout)
{
	if (!variant->odp)
		SKIP(return, "pinned MRs have no odp_aging");
	base_pages(_metadata, self, false, FIRST_STATES);
}

/* odp_aging=0: the young counters do not move */
TEST_F(aging, noaging_young_counters)
{
	if (!variant->odp)
		SKIP(return, "pinned MRs have no odp_aging");
	base_pages(_metadata, self, false, FIRST_YOUNG);
}

/*
 * odp_aging=0: a second MADV_PAGEOUT with no traffic between swaps out
 * all 64 pages
 */
TEST_F(aging, noaging_second_pageout)
{
	if (!variant->odp)
		SKIP(return, "pinned MRs have no odp_aging");
	base_pages(_metadata, self, false, SECOND_STATES);
}

/* odp_aging=0: a READ of all 64 pages returns the data */
TEST_F(aging, noaging_read_after_pageouts)
{
	if (!variant->odp)
		SKIP(return, "pinned MRs have no odp_aging");
	base_pages(_metadata, self, false, READ_ALL);
}

/* A 2 MiB-aligned THP inside a fresh mapping (self->buf), or NULL. */
static uint8_t *thp_alloc(FIXTURE_DATA(aging) *self)
{
	uint8_t *p;
	char state[2];
	long before = t_meminfo_kb("AnonHugePages");

	self->buf = t_mmap(2 * THP_SZ);
	self->buf_len = 2 * THP_SZ;
	if (!self->buf)
		return NULL;
	p = (uint8_t *)(((uintptr_t)self->buf + THP_SZ - 1) & ~(THP_SZ - 1));
	madvise(p, THP_SZ, MADV_HUGEPAGE);
	t_fill(p, THP_SZ, 63);
	if (t_meminfo_kb("AnonHugePages") - before < (long)(THP_SZ / 1024) ||
	    t_page_states(p, T_PAGE, state) || state[0] != 'P') {
		t_diag("no THP (AnonHugePages %ld kB before, %ld kB after)",
		       before, t_meminfo_kb("AnonHugePages"));
		return NULL;
	}
	return p;
}

/* Pages of @state that are present. */
static long present_pages(const char *state)
{
	long present = 0;
	size_t i;

	for (i = 0; state[i]; i++)
		present += state[i] == 'P';
	return present;
}

/*
 * A THP the device READs, then a MADV_PAGEOUT (checked if !@second); if
 * @second, then a second MADV_PAGEOUT and a READ (checked).
 */
static void huge_page(struct __test_metadata *_metadata,
		      FIXTURE_DATA(aging) *self, bool aging, bool second)
{
	static char state[THP_SZ / T_PAGE + 1];
	uint8_t *p;
	bool ok;
	long present;

	if (t_odp)
		AGING_SET(aging);
	self->want = malloc(THP_SZ);
	ASSERT_NE(NULL, self->want) {
		TH_LOG("out of memory");
	}
	p = thp_alloc(self);
	if (!p)
		SKIP(return, "no transparent huge page could be had");
	memcpy(self->want, p, THP_SZ);
	self->mr = t_reg_mr(&self->dev, p, THP_SZ, T_ACCESS_ALL);
	ASSERT_NE(NULL, self->mr);
	if (!second) {
		EXPECT_EQ(0, dev_read(self, p, THP_SZ));
		EXPECT_BYTES(self->local, self->want, THP_SZ,
			     "READ of the THP");
	} else {
		ASSERT_EQ(0, dev_read(self, p, THP_SZ));
		ASSERT_BYTES(self->local, self->want, THP_SZ,
			     "READ of the THP");
	}
	ok = pageout(p, THP_SZ, state, "THP, first MADV_PAGEOUT");
	present = ok ? present_pages(state) : 0;
	t_diag("THP, first MADV_PAGEOUT: %ld of %lu pages present", present,
	       THP_SZ / T_PAGE);
	if (!second) {
		EXPECT_TRUE(ok);
		if (t_odp && aging) {
			/* THP: the device's huge entry keeps a THP resident
			 * once
			 */
			EXPECT_EQ(THP_SZ / T_PAGE, present);
		} else if (t_odp) {
			/* THP, odp_aging=0: the first MADV_PAGEOUT takes it */
			EXPECT_EQ(0, present);
		} else {
			/* THP: MADV_PAGEOUT swaps out no page of a pinned
			 * THP
			 */
			EXPECT_EQ(THP_SZ / T_PAGE, present);
		}
		return;
	}

	ok = pageout(p, THP_SZ, state, "THP, second MADV_PAGEOUT");
	present = ok ? present_pages(state) : 0;
	t_diag("THP, second MADV_PAGEOUT: %ld of %lu pages present", present,
	       THP_SZ / T_PAGE);
	EXPECT_TRUE(ok);
	if (t_odp) {
		EXPECT_EQ(0, present);
	} else {
		EXPECT_EQ(THP_SZ / T_PAGE, present);
	}
	memset(self->local, 0, THP_SZ);
	EXPECT_EQ(0, dev_read(self, p, THP_SZ));
	EXPECT_BYTES(self->local, self->want, THP_SZ,
		     "READ of the THP after the pageouts");
}

/*
 * THP: the device's huge entry keeps a THP resident once
 * (pinned: THP: MADV_PAGEOUT swaps out no page of a pinned THP)
 */
TEST_F(aging, thp_first_pageout)
{
	huge_page(_metadata, self, true, false);
}

/*
 * THP: a second MADV_PAGEOUT leaves it out, READ returns the data
 * (pinned: THP: a second MADV_PAGEOUT takes no pinned page, READ returns
 * the data)
 */
TEST_F(aging, thp_second_pageout_read)
{
	huge_page(_metadata, self, true, true);
}

/* THP, odp_aging=0: the first MADV_PAGEOUT takes it */
TEST_F(aging, noaging_thp_first_pageout)
{
	if (!variant->odp)
		SKIP(return, "pinned MRs have no odp_aging");
	huge_page(_metadata, self, false, false);
}

/*
 * THP, odp_aging=0: a second MADV_PAGEOUT leaves it out, READ returns the
 * data
 */
TEST_F(aging, noaging_thp_second_pageout_read)
{
	if (!variant->odp)
		SKIP(return, "pinned MRs have no odp_aging");
	huge_page(_metadata, self, false, true);
}

ODP_HARNESS_MAIN("ODP MRs tell reclaim which pages the device uses")
