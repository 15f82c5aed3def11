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
 * The test runs on one CPU: MADV_PAGEOUT drains only its own CPU's LRU
 * batches, and a page still in another CPU's batch cannot be isolated.
 *
 * Pinned MRs (--pinned): no pinned page is swapped out by any pass, and
 * the data survives all the same.
 */
#include <errno.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/mman.h>

#include "odptest.h"

#ifndef MADV_PAGEOUT
#define MADV_PAGEOUT	21
#endif

#define NPAGES		64
#define HOT		32	/* pages 0 .. HOT - 1 are read by the device */
#define LEN		(NPAGES * T_PAGE)
#define THP_SZ		(2 * T_MIB)

static struct t_dev dev;
static uint8_t *local;
static struct ibv_mr *lmr;

static int dev_read(void *raddr, size_t len, struct ibv_mr *mr)
{
	return t_rdma_fresh_pair(&dev, IBV_WR_RDMA_READ, local, lmr->lkey,
				 raddr, mr->rkey, len);
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

static void young_read(struct young *y)
{
	y->queries = t_hw_counter(&dev, "odp_young_queries");
	y->found = t_hw_counter(&dev, "odp_young_found");
}

/*
 * The device READs pages 0 .. HOT - 1 of 64 CPU-filled pages, then two
 * MADV_PAGEOUTs; the outcome each pass must have depends on the mode and
 * on @aging.
 */
static void base_pages(bool aging)
{
	char state[NPAGES + 1], what[64];
	struct young y0, y1;
	uint8_t *buf, *want;
	struct ibv_mr *mr = NULL;
	bool ok, odp_aged = t_odp && aging;
	const char *mode = t_odp ? aging ? "odp_aging=1" : "odp_aging=0" :
			   "pinned";

	buf = t_mmap(LEN);
	want = malloc(LEN);
	if (!buf || !want)
		t_bail("out of memory");
	madvise(buf, LEN, MADV_NOHUGEPAGE);
	t_fill(buf, LEN, aging ? 61 : 62);
	memcpy(want, buf, LEN);
	mr = t_reg_mr(&dev, buf, LEN, T_ACCESS_ALL);
	ok = mr && !dev_read(buf, HOT * T_PAGE, mr) &&
	     t_check(local, want, HOT * T_PAGE, "READ of the hot pages");
	t_result(ok, "%s: the device READs pages 0-%d of %d", mode, HOT - 1,
		 NPAGES);
	if (!ok)
		goto out;

	young_read(&y0);
	ok = pageout(buf, LEN, state, "first MADV_PAGEOUT");
	young_read(&y1);
	t_diag("odp_young_queries +%ld, odp_young_found +%ld",
	       y1.queries - y0.queries, y1.found - y0.found);
	if (odp_aged) {
		t_result(ok && states_are(state, HOT, 'P', 'S'),
			 "%s: the first MADV_PAGEOUT swaps out pages %d-%d and leaves 0-%d present",
			 mode, HOT, NPAGES - 1, HOT - 1);
		t_result(y1.queries - y0.queries >= NPAGES &&
			 y1.found - y0.found >= HOT,
			 "%s: reclaim asked about every page, %d were found young",
			 mode, HOT);
	} else if (t_odp) {
		t_result(ok && states_are(state, 0, 'P', 'S'),
			 "%s: the first MADV_PAGEOUT swaps out all %d pages",
			 mode, NPAGES);
		t_result(y1.queries == y0.queries && y1.found == y0.found,
			 "%s: the young counters do not move", mode);
	} else {
		t_result(ok && states_are(state, NPAGES, 'P', 'S'),
			 "%s: the first MADV_PAGEOUT swaps out no pinned page",
			 mode);
	}

	ok = pageout(buf, LEN, state, "second MADV_PAGEOUT");
	if (t_odp)
		t_result(ok && states_are(state, 0, 'P', 'S'),
			 "%s: a second MADV_PAGEOUT with no traffic between swaps out all %d pages",
			 mode, NPAGES);
	else
		t_result(ok && states_are(state, NPAGES, 'P', 'S'),
			 "%s: the second MADV_PAGEOUT swaps out no pinned page",
			 mode);

	memset(local, 0, LEN);
	snprintf(what, sizeof(what), "%s: READ after the pageouts", mode);
	ok = !dev_read(buf, LEN, mr) && t_check(local, want, LEN, what) &&
	     t_check(buf, want, LEN, "CPU view after the pageouts");
	t_result(ok, "%s: a READ of all %d pages returns the data", mode,
		 NPAGES);
out:
	t_dereg_mr(mr);
	t_munmap(buf, LEN);
	free(want);
}

/* A 2 MiB-aligned THP inside a fresh mapping, or NULL. */
static uint8_t *thp_alloc(uint8_t **map)
{
	uint8_t *p;
	char state[2];
	long before = t_meminfo_kb("AnonHugePages");

	*map = t_mmap(2 * THP_SZ);
	if (!*map)
		return NULL;
	p = (uint8_t *)(((uintptr_t)*map + THP_SZ - 1) & ~(THP_SZ - 1));
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

static void huge_page(bool aging)
{
	static char state[THP_SZ / T_PAGE + 1];
	uint8_t *map, *p, *want;
	struct ibv_mr *mr = NULL;
	bool ok;
	long present;
	size_t i;

	want = malloc(THP_SZ);
	if (!want)
		t_bail("out of memory");
	p = thp_alloc(&map);
	if (!p) {
		t_skip("no transparent huge page could be had", "THP: the first MADV_PAGEOUT");
		t_skip("no transparent huge page could be had", "THP: the second MADV_PAGEOUT, READ");
		goto out;
	}
	memcpy(want, p, THP_SZ);
	mr = t_reg_mr(&dev, p, THP_SZ, T_ACCESS_ALL);
	ok = mr && !dev_read(p, THP_SZ, mr) &&
	     t_check(local, want, THP_SZ, "READ of the THP");
	ok = ok && pageout(p, THP_SZ, state, "THP, first MADV_PAGEOUT");
	for (present = 0, i = 0; state[i]; i++)
		present += state[i] == 'P';
	t_diag("THP, first MADV_PAGEOUT: %ld of %lu pages present", present,
	       THP_SZ / T_PAGE);
	if (t_odp && aging)
		t_result(ok && present == THP_SZ / T_PAGE,
			 "THP: the device's huge entry keeps a THP resident once");
	else if (t_odp)
		t_result(ok && present == 0,
			 "THP, odp_aging=0: the first MADV_PAGEOUT takes it");
	else
		t_result(ok && present == THP_SZ / T_PAGE,
			 "THP: MADV_PAGEOUT swaps out no page of a pinned THP");

	ok = mr && pageout(p, THP_SZ, state, "THP, second MADV_PAGEOUT");
	for (present = 0, i = 0; state[i]; i++)
		present += state[i] == 'P';
	t_diag("THP, second MADV_PAGEOUT: %ld of %lu pages present", present,
	       THP_SZ / T_PAGE);
	ok = ok && (t_odp ? present == 0 : present == THP_SZ / T_PAGE);
	memset(local, 0, THP_SZ);
	ok = mr && !dev_read(p, THP_SZ, mr) &&
	     t_check(local, want, THP_SZ, "READ of the THP after the pageouts") &&
	     ok;
	if (t_odp)
		t_result(ok, "THP%s: a second MADV_PAGEOUT leaves it out, READ returns the data",
			 aging ? "" : ", odp_aging=0");
	else
		t_result(ok, "THP: a second MADV_PAGEOUT takes no pinned page, READ returns the data");
	t_dereg_mr(mr);
	t_munmap(map, 2 * THP_SZ);
out:
	free(want);
}

int main(int argc, char **argv)
{
	int aging;
	cpu_set_t cpu;

	t_init(argc, argv, "ODP MRs tell reclaim which pages the device uses");
	t_plan(t_odp ? 14 : 6);
	if (t_dev_open(&dev))
		t_bail("cannot open the RDMA device");
	aging = t_odp_aging();
	if (t_odp && aging < 0)
		t_bail("rdma_rxe has no odp_aging parameter");
	CPU_ZERO(&cpu);
	CPU_SET(0, &cpu);
	if (sched_setaffinity(0, sizeof(cpu), &cpu))
		t_bail("sched_setaffinity: %s", strerror(errno));
	local = t_mmap(THP_SZ);
	if (!local)
		t_bail("out of memory");
	lmr = t_reg_mr_mode(&dev, local, THP_SZ, T_ACCESS_ALL, false);
	if (!lmr)
		t_bail("cannot register the local buffer");

	if (t_odp) {
		if (!t_odp_aging_set(true))
			t_bail("cannot set odp_aging");
		base_pages(true);
		if (!t_odp_aging_set(false))
			t_bail("cannot clear odp_aging");
		base_pages(false);
		if (!t_odp_aging_set(true))
			t_bail("cannot set odp_aging");
	} else {
		base_pages(false);
	}
	huge_page(true);
	if (t_odp) {
		if (!t_odp_aging_set(false))
			t_bail("cannot clear odp_aging");
		huge_page(false);
	}
	if (aging >= 0)
		t_odp_aging_set(aging);

	t_dereg_mr(lmr);
	t_munmap(local, THP_SZ);
	t_dev_close(&dev);
	return t_finish();
}
