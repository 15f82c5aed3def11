// SPDX-License-Identifier: GPL-2.0 OR Linux-OpenIB
/*
 * odp_vmops: an ODP MR follows madvise(MADV_FREE) and mremap().
 *
 * MADV_FREE: the pages stay mapped until reclaim, and what RDMA reads is
 * what the CPU reads at that moment:
 *  - before reclaim the device reads the data (and what the CPU rewrote);
 *  - a remote WRITE after MADV_FREE dirties the page, so reclaim must keep
 *    it (RDMA data is never lost);
 *  - MADV_PAGEOUT then discards the clean lazy-free pages (checked in
 *    /proc/self/pagemap) and the device reads zeros there, like the CPU;
 *  - MADV_FREE + MADV_PAGEOUT of random chunks racing RDMA READs and
 *    WRITEs: every byte is the data or zero, a last WRITE survives
 *    reclaim, and the kernel really discarded pages (pglazyfreed rose).
 *
 * MADV_DONTNEED nonstop in one half of an MR does not hold up faults in
 * the other half: cold WRITEs and READs there complete with the data.
 *
 * mremap:
 *  - a move (MREMAP_MAYMOVE | MREMAP_FIXED): the old range is gone for
 *    the MR (IBV_WC_REM_ACCESS_ERR), an MR on the new range sees the
 *    moved data, and once something new is mapped at the old address the
 *    old MR sees that;
 *  - a grow in place keeps the MR's part and its data, an MR over the
 *    grown range works; a grow that has to move behaves as a move;
 *  - a move while a stream of RDMA WRITEs and READs runs: every READ
 *    returns what was written, the stream ends with a remote access
 *    error, and the moved pages hold what the successful WRITEs wrote;
 *    with 4 KiB READs, and with 64 KiB READs that the move can cut after
 *    their first response packets (they must complete too).
 *
 * Pinned MRs (--pinned): MADV_PAGEOUT cannot discard pinned pages (the
 * contrast asserts that none was and both sides still read the data), and
 * a pinned MR follows the pages, not the addresses: after a move the old
 * MR still reads (and writes) the moved pages, even once something else
 * is mapped at the old address.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <sys/mman.h>

#include "odptest.h"

#ifndef MADV_PAGEOUT
#define MADV_PAGEOUT	21
#endif

#define LEN	(4 * T_MIB)
#define NP	(LEN / T_PAGE)

static struct t_dev dev;
static uint8_t *local;		/* 2 * LEN, registered as lmr */
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

/* Pages of [p, p + len) present in RAM and swapped out (pagemap). */
static int page_state(void *p, size_t len, long *present, long *swapped)
{
	size_t i, n = len / T_PAGE;
	uint64_t *ent;
	int fd, ret = 0;

	*present = *swapped = 0;
	ent = calloc(n, sizeof(*ent));
	fd = open("/proc/self/pagemap", O_RDONLY);
	if (!ent || fd < 0 ||
	    pread(fd, ent, n * 8, (uintptr_t)p / T_PAGE * 8) != (ssize_t)(n * 8)) {
		t_diag("reading /proc/self/pagemap: %s", strerror(errno));
		ret = -1;
	} else {
		for (i = 0; i < n; i++) {
			*present += ent[i] >> 63 & 1;
			*swapped += ent[i] >> 62 & 1;
		}
	}
	if (fd >= 0)
		close(fd);
	free(ent);
	return ret;
}

static bool do_madvise(void *p, size_t len, int advice, const char *name)
{
	if (madvise(p, len, advice)) {
		t_diag("madvise(%s): %s", name, strerror(errno));
		return false;
	}
	return true;
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

/* ---- MADV_FREE ------------------------------------------------------------ */

/*
 * Layout of the 1024 pages: [0, 64) rewritten by the CPU after MADV_FREE,
 * [64, 128) written by the device after MADV_FREE, the rest left clean.
 */
#define CPU_OFF		0
#define CPU_LEN		(64 * T_PAGE)
#define DEV_OFF		(64 * T_PAGE)
#define DEV_LEN		(64 * T_PAGE)

static void madv_free(bool r[6])
{
	uint8_t *buf, *want;
	struct ibv_mr *mr = NULL;
	long pres, swp, pres0;
	int s;

	memset(r, 0, 6 * sizeof(*r));
	buf = t_mmap(LEN);
	want = malloc(LEN);
	if (!buf || !want)
		goto out;
	madvise(buf, LEN, MADV_NOHUGEPAGE);	/* base pages, no split */
	t_fill(buf, LEN, 1);
	memcpy(want, buf, LEN);
	mr = t_reg_mr(&dev, buf, LEN, T_ACCESS_ALL);
	if (!mr)
		goto out;
	/* The device maps every page, writable. */
	memcpy(local, want, LEN);
	if (dev_op(IBV_WR_RDMA_WRITE, local, buf, LEN, mr) ||
	    !t_check(buf, want, LEN, "WRITE before MADV_FREE"))
		goto out;

	if (!do_madvise(buf, LEN, MADV_FREE, "MADV_FREE"))
		goto out;
	page_state(buf, LEN, &pres0, &swp);
	memset(local, 0x5a, LEN);
	r[0] = !dev_op(IBV_WR_RDMA_READ, local, buf, LEN, mr) &&
	       t_check(local, want, LEN, "READ after MADV_FREE, before reclaim") &&
	       t_check(buf, want, LEN, "CPU after MADV_FREE, before reclaim");
	t_diag("after MADV_FREE %ld of %lu pages are still present", pres0, NP);
	r[0] = r[0] && pres0 == (long)NP;

	/* The CPU rewrites some pages: they are dirty again. */
	t_fill(buf + CPU_OFF, CPU_LEN, 2);
	memcpy(want + CPU_OFF, buf + CPU_OFF, CPU_LEN);
	memset(local, 0x5a, LEN);
	r[1] = !dev_op(IBV_WR_RDMA_READ, local, buf, LEN, mr) &&
	       t_check(local, want, LEN, "READ after the CPU rewrote MADV_FREE pages");

	/* The device writes others: they must be dirty too. */
	t_fill(local, DEV_LEN, 3);
	memcpy(want + DEV_OFF, local, DEV_LEN);
	r[2] = !dev_op(IBV_WR_RDMA_WRITE, local, buf + DEV_OFF, DEV_LEN, mr) &&
	       t_check(buf, want, LEN, "CPU view of a WRITE after MADV_FREE");

	/*
	 * Reclaim: clean lazy-free pages go, dirty ones stay.  The device
	 * read them all since MADV_FREE, so with odp_aging reclaim spares
	 * them once: t_pageout() asks twice.
	 */
	if (t_pageout(buf, LEN)) {
		t_diag("MADV_PAGEOUT: %s", strerror(errno));
		goto out;
	}
	page_state(buf, LEN, &pres, &swp);
	t_diag("after MADV_PAGEOUT %ld of %lu pages present, %ld swapped (%lu rewritten by the CPU or the device)",
	       pres, NP, swp, (CPU_LEN + DEV_LEN) / T_PAGE);
	if (t_odp) {
		long kept, kswp, gone = 0, clean = NP - (CPU_LEN + DEV_LEN) / T_PAGE;
		size_t i;

		/*
		 * A clean page is discarded, or (MADV_FREE still had it in
		 * another CPU's lazy-free batch) swapped or kept like any
		 * anonymous page: pagemap says which, and that is what both
		 * the CPU and the device must read.
		 */
		for (i = CPU_OFF + CPU_LEN + DEV_LEN; i < LEN; i += T_PAGE) {
			long pp, ps;

			page_state(buf + i, T_PAGE, &pp, &ps);
			if (!pp && !ps) {
				memset(want + i, 0, T_PAGE);
				gone++;
			}
		}
		page_state(buf, CPU_LEN + DEV_LEN, &kept, &kswp);
		t_diag("%ld of %ld clean pages discarded; of the %lu written ones %ld present, %ld swapped",
		       gone, clean, (CPU_LEN + DEV_LEN) / T_PAGE, kept, kswp);
		r[3] = gone >= clean * 9 / 10 &&
		       kept + kswp == (long)((CPU_LEN + DEV_LEN) / T_PAGE);
	} else {
		r[3] = pres == (long)NP && !swp;
	}
	memset(local, 0x5a, LEN);
	s = dev_op(IBV_WR_RDMA_READ, local, buf, LEN, mr);
	r[4] = !s && t_check(local, want, LEN, "READ after reclaim") &&
	       t_check(buf, want, LEN, "CPU after reclaim") &&
	       t_check(local, buf, LEN, "READ against the CPU after reclaim");

	/* A WRITE into reclaimed (now zero-page backed) pages lands. */
	t_fill(local, 2 * T_PAGE + 100, 4);
	memcpy(want + LEN - 3 * T_PAGE, local, 2 * T_PAGE + 100);
	r[5] = !dev_op(IBV_WR_RDMA_WRITE, local, buf + LEN - 3 * T_PAGE,
		       2 * T_PAGE + 100, mr) &&
	       t_check(buf, want, LEN, "CPU view of a WRITE after reclaim");
	memset(local, 0x5a, LEN);
	r[5] = r[5] && !dev_op(IBV_WR_RDMA_READ, local, buf, LEN, mr) &&
	       t_check(local, want, LEN, "READ after the WRITE after reclaim");
out:
	t_dereg_mr(mr);
	t_munmap(buf, LEN);
	free(want);
}

/* ---- MADV_FREE + MADV_PAGEOUT racing the device --------------------------- */

#define RACE_PASSES	4
#define RACE_CHUNK	(64 * T_KIB)

struct racer {
	uint8_t *buf;
	const uint8_t *refill;
	int stop;
	long drops;
	bool starved;
};

static void *racer_fn(void *arg)
{
	struct timespec nap = { 0, 3000 * 1000 };
	struct racer *r = arg;
	uint64_t seed = 77;
	size_t off;

	while (!__atomic_load_n(&r->stop, __ATOMIC_ACQUIRE)) {
		off = t_rand64(&seed) % (LEN / RACE_CHUNK) * RACE_CHUNK;
		madvise(r->buf + off, RACE_CHUNK, MADV_FREE);
		madvise(r->buf + off, RACE_CHUNK, MADV_PAGEOUT);
		if (r->refill && t_rand64(&seed) & 1)
			memcpy(r->buf + off, r->refill + off, RACE_CHUNK);
		r->drops++;
		nanosleep(&nap, NULL);
	}
	return NULL;
}

/*
 * Say what a QP that does not complete is doing: both QPs' states and
 * PSNs, the device's non-zero counters, and (as root) the kernel's
 * blocked tasks and CPU backtraces in its log, for whoever reads the
 * failure.
 */
static void qp_diag(struct t_rc_pair *p)
{
	char line[1024], path[512], dir[256], v[32];
	size_t n = 0;
	struct dirent *d;
	DIR *dp;
	FILE *f;

	/* first, before anything here can change the state */
	f = fopen("/proc/sysrq-trigger", "w");
	if (f) {
		fputs("w", f);
		fflush(f);
		fputs("l", f);
		fclose(f);
	}
	/* both QPs' states and PSNs (rxe: next to send, next expected) */
	t_stuck_report(p, "stuck");
	/* no popen(): a fork would invalidate the MRs and disturb the QP */
	snprintf(dir, sizeof(dir), "/sys/class/infiniband/%s/ports/%u/hw_counters",
		 dev.name, dev.port);
	dp = opendir(dir);
	line[0] = 0;
	while (dp && (d = readdir(dp))) {
		if (d->d_name[0] == '.')
			continue;
		snprintf(path, sizeof(path), "%s/%s", dir, d->d_name);
		f = fopen(path, "r");
		if (!f)
			continue;
		if (fgets(v, sizeof(v), f) && atol(v) && n < sizeof(line))
			n += snprintf(line + n, sizeof(line) - n, "%s=%ld ",
				      d->d_name, atol(v));
		fclose(f);
	}
	if (dp)
		closedir(dp);
	t_diag("hw counters: %s", line);
}

/* Pages swapped in since @base (a pswpin count), -1 if not counted. */
static long swapins_since(long base)
{
	return base < 0 ? -1 : t_vmstat("pswpin") - base;
}

/* How many timeouts a starved op may take to complete once the racer stops */
#define RECOVERY_TIMEOUTS	6

/*
 * One RDMA op of the whole buffer.  If it does not complete in time, stop
 * the racer and wait again: a fault needs a moment without any
 * invalidation of its pages to complete, so a fast enough racer can
 * starve it, and its pages then come back from swap (that is reported,
 * and the pass ends there).  While it recovers, the device's packet and
 * fault counters are reported at every timeout; a QP that does not
 * complete in RECOVERY_TIMEOUTS timeouts after the racer stopped is stuck
 * (a failure).
 */
static int race_op(struct t_rc_pair *p, struct racer *r, enum ibv_wr_opcode op,
		   uint8_t *buf, struct ibv_mr *mr)
{
	struct ibv_wc wc;
	long pswpin0;
	double t0;
	int i;

	if (t_post_rdma(p->qp[0], op, 1, local, LEN, lmr->lkey,
			(uintptr_t)buf, mr->rkey))
		return -1;
	if (t_poll(p->scq[0], 1, &wc) == 1)
		return wc.status;
	__atomic_store_n(&r->stop, 1, __ATOMIC_RELEASE);
	t0 = t_now();
	pswpin0 = t_vmstat("pswpin");
	for (i = 0; i < RECOVERY_TIMEOUTS; i++) {
		t_diag("racer stopped %.1f s ago: rcvd_pkts %ld, duplicate_request %ld, completer_retry_err %ld, odp_fault_waits %ld, odp_page_faults %ld, odp_page_invalidations %ld, pswpin +%ld, MemFree %ld kB",
		       t_now() - t0, t_hw_counter(&dev, "rcvd_pkts"),
		       t_hw_counter(&dev, "duplicate_request"),
		       t_hw_counter(&dev, "completer_retry_err"),
		       t_hw_counter(&dev, "odp_fault_waits"),
		       t_hw_counter(&dev, "odp_page_faults"),
		       t_hw_counter(&dev, "odp_page_invalidations"),
		       swapins_since(pswpin0), t_meminfo_kb("MemFree"));
		/* where the fault workers are, once the racer is long gone */
		if (i == 1 || i == RECOVERY_TIMEOUTS - 1)
			t_dump_kernel_stacks("the racer stopped, the op has not completed");
		if (t_poll(p->scq[0], 1, &wc) == 1) {
			t_diag("starved: the %s completed %.3f s after the racer stopped, with %ld pages swapped in: %s",
			       op == IBV_WR_RDMA_READ ? "READ" : "WRITE",
			       t_now() - t0, swapins_since(pswpin0),
			       ibv_wc_status_str(wc.status));
			r->starved = true;
			return wc.status;
		}
	}
	t_diag("... and it did not complete in the %d ms after the racer stopped either: the QP is stuck",
	       RECOVERY_TIMEOUTS * t_timeout_ms);
	qp_diag(p);
	return -1;
}

static bool data_or_zero(const uint8_t *got, const uint8_t *want, size_t len,
			 const char *what, long *zero_pages)
{
	size_t i;

	*zero_pages = 0;
	for (i = 0; i < len; i++) {
		if (got[i] == want[i] || !got[i])
			continue;
		t_diag("%s: byte %zu (0x%zx) is 0x%02x: neither the data (0x%02x) nor zero",
		       what, i, i, got[i], want[i]);
		return false;
	}
	for (i = 0; i < len; i += T_PAGE)
		if (!got[i] && !memcmp(got + i, got + i + 1, T_PAGE - 1))
			++*zero_pages;
	return true;
}

static bool race(bool write)
{
	struct racer r = { 0 };
	uint8_t *buf, *pat;
	struct ibv_mr *mr = NULL;
	struct t_rc_pair p;
	long lf0, lf, zp = 0, zsum = 0, pswpin0;
	bool ok = false;
	pthread_t thr;
	double t0;
	int i, s;

	buf = t_mmap(LEN);
	pat = malloc(LEN);
	if (!buf || !pat)
		goto out;
	madvise(buf, LEN, MADV_NOHUGEPAGE);
	t_fill(pat, LEN, write ? 11 : 12);
	if (write)
		memcpy(local, pat, LEN);
	else
		memcpy(buf, pat, LEN);
	mr = t_reg_mr(&dev, buf, LEN, T_ACCESS_ALL);
	if (!mr || t_rc_pair_create(&dev, &p, NULL))
		goto out;
	lf0 = t_vmstat("pglazyfreed");
	r.buf = buf;
	r.refill = write ? NULL : pat;
	t0 = t_now();
	if (pthread_create(&thr, NULL, racer_fn, &r))
		goto out_p;
	ok = true;
	for (i = 0; ok && !r.starved && i < RACE_PASSES; i++) {
		char what[64];

		snprintf(what, sizeof(what), "pass %d", i);
		if (!write)
			memset(local, 0x5a, LEN);
		s = race_op(&p, &r, write ? IBV_WR_RDMA_WRITE : IBV_WR_RDMA_READ,
			    buf, mr);
		if (s)
			t_diag("%s: %s", what, t_wc_status_str(s));
		ok = !s && data_or_zero(write ? buf : local, pat, LEN, what, &zp);
		zsum += zp;
	}
	__atomic_store_n(&r.stop, 1, __ATOMIC_RELEASE);
	pthread_join(thr, NULL);
	lf = lf0 < 0 ? 0 : t_vmstat("pglazyfreed") - lf0;
	t_diag("%d passes in %.1f s against %ld MADV_FREE+MADV_PAGEOUT of 64 KiB; pglazyfreed +%ld; %ld all-zero pages seen",
	       i, t_now() - t0, r.drops, lf, zsum);
	/*
	 * The proof that pages were discarded is pglazyfreed.  A kernel
	 * without VM event counters (the debug kernel) has none: there the
	 * proof is a whole page of zeros seen in a buffer the pattern fills
	 * (t_fill never makes one).
	 */
	if (lf0 < 0) {
		t_diag("no pglazyfreed in /proc/vmstat (CONFIG_VM_EVENT_COUNTERS off): all-zero pages are the proof of discards");
		lf = zsum;
	}
	if (t_odp && lf <= 0) {
		t_diag("no page was discarded: the race proves nothing");
		ok = false;
	}
	if (!t_odp && lf != 0) {
		t_diag("pinned: %ld pages were discarded", lf);
		ok = false;
	}
	if (ok && write) {
		/* A last WRITE, then reclaim without MADV_FREE: it must stay. */
		s = t_rdma_sync(&p, IBV_WR_RDMA_WRITE, local, LEN, lmr->lkey,
				(uintptr_t)buf, mr->rkey);
		ok = !s && t_check(buf, pat, LEN, "quiet WRITE after the race");
		t_pageout(buf, LEN);
		/*
		 * What a swap-in costs the CPU here and now: the yardstick
		 * for a starved op's recovery, which swaps pages in too.
		 */
		pswpin0 = t_vmstat("pswpin");
		t0 = t_now();
		ok = ok && t_check(buf, pat, LEN, "the last WRITE after MADV_PAGEOUT");
		t_diag("the CPU read the paged-out buffer back in %.3f s, %ld pages swapped in",
		       t_now() - t0, swapins_since(pswpin0));
	}
out_p:
	t_rc_pair_destroy(&p);
out:
	t_dereg_mr(mr);
	t_munmap(buf, LEN);
	free(pat);
	return ok;
}

/* ---- an invalidation storm in another part of the MR ---------------------- */

#define STORM_PASSES	3

struct storm {
	uint8_t *buf;
	int stop;
	long drops;
};

/*
 * MADV_DONTNEED of random 64 KiB chunks of [buf, buf + LEN), nonstop, with
 * a nap of T_STORM_NAP_US (default 100) microseconds between two.
 */
static void *storm_fn(void *arg)
{
	const char *env = getenv("T_STORM_NAP_US");
	long nap_us = env ? atol(env) : 100;
	struct timespec nap = { 0, nap_us * 1000 };
	struct storm *st = arg;
	uint64_t seed = 91;
	size_t off;

	while (!__atomic_load_n(&st->stop, __ATOMIC_ACQUIRE)) {
		off = t_rand64(&seed) % (LEN / RACE_CHUNK) * RACE_CHUNK;
		st->buf[off] = 1;	/* a page for the next one to drop */
		madvise(st->buf + off, RACE_CHUNK, MADV_DONTNEED);
		st->drops++;
		if (nap_us > 0)
			nanosleep(&nap, NULL);
	}
	return NULL;
}

/*
 * One MR over two halves: a thread keeps discarding pages of the first
 * half while cold 4 MiB WRITEs and READs go to the second half.  Each
 * invalidation of the first half changes the MR's notifier sequence, but
 * none of them touches a page the device asked for: the faults of the
 * second half must complete, not retry until they give up (the QP then
 * crawls at a page or so per second), and the data must be right.
 */
static bool storm(void)
{
	uint8_t *buf, *pat = local, *back = local + LEN;
	struct storm st = { 0 };
	struct ibv_mr *mr = NULL;
	struct t_rc_pair p;
	double t, tmax = 0;
	bool ok = false;
	pthread_t thr;
	int i, s;

	buf = t_mmap(2 * LEN);
	if (!buf)
		return false;
	madvise(buf, 2 * LEN, MADV_NOHUGEPAGE);
	mr = t_reg_mr(&dev, buf, 2 * LEN, T_ACCESS_ALL);
	if (!mr || t_rc_pair_create(&dev, &p, NULL))
		goto out;
	st.buf = buf;
	if (pthread_create(&thr, NULL, storm_fn, &st))
		goto out_p;
	ok = true;
	for (i = 0; ok && i < STORM_PASSES; i++) {
		/* cold again: every page of the WRITE must be faulted */
		if (t_odp)
			madvise(buf + LEN, LEN, MADV_DONTNEED);
		t_fill(pat, LEN, 21 + i);
		memset(back, 0, LEN);
		t = t_now();
		s = t_rdma_sync(&p, IBV_WR_RDMA_WRITE, pat, LEN, lmr->lkey,
				(uintptr_t)buf + LEN, mr->rkey);
		if (!s)
			s = t_rdma_sync(&p, IBV_WR_RDMA_READ, back, LEN,
					lmr->lkey, (uintptr_t)buf + LEN,
					mr->rkey);
		t = t_now() - t;
		tmax = t > tmax ? t : tmax;
		if (s) {
			t_diag("pass %d: %s after %.1f s", i,
			       t_wc_status_str(s), t);
			ok = false;
			break;
		}
		ok = t_check(buf + LEN, pat, LEN, "the CPU's view of the WRITE") &&
		     t_check(back, pat, LEN, "the READ");
	}
	__atomic_store_n(&st.stop, 1, __ATOMIC_RELEASE);
	pthread_join(thr, NULL);
	t_diag("%d passes of a cold 4 MiB WRITE + READ, the slowest in %.2f s, against %ld MADV_DONTNEED of 64 KiB in the other half",
	       i, tmax, st.drops);
	if (st.drops < STORM_PASSES) {
		t_diag("the storm hardly ran: the case proves nothing");
		ok = false;
	}
out_p:
	t_rc_pair_destroy(&p);
out:
	t_dereg_mr(mr);
	t_munmap(buf, 2 * LEN);
	return ok;
}

/* ---- mremap --------------------------------------------------------------- */

#define ML	(256 * T_PAGE)

/* Move [buf, ML) to a fresh address; old MR, new MR, new mapping at old. */
static void mremap_move(bool r[4])
{
	uint8_t *buf, *to = MAP_FAILED, *want;
	struct ibv_mr *mr = NULL, *mr2 = NULL;
	struct t_rc_pair p;
	bool have_p = false;
	int s;

	memset(r, 0, 4 * sizeof(*r));
	buf = t_mmap(ML);
	want = malloc(ML);
	if (!buf || !want)
		goto out;
	t_fill(buf, ML, 21);
	memcpy(want, buf, ML);
	mr = t_reg_mr(&dev, buf, ML, T_ACCESS_ALL);
	if (!mr || t_rc_pair_create(&dev, &p, NULL))
		goto out;
	have_p = true;
	to = mmap(NULL, ML, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (to == MAP_FAILED)
		goto out;
	memset(local, 0, ML);
	if (dev_op_on(&p, IBV_WR_RDMA_READ, local, buf, ML, mr) ||
	    !t_check(local, want, ML, "READ before mremap"))
		goto out;
	if (mremap(buf, ML, ML, MREMAP_MAYMOVE | MREMAP_FIXED, to) != to) {
		t_diag("mremap(MREMAP_FIXED): %s", strerror(errno));
		goto out;
	}
	if (!unmapped(buf, ML))
		t_diag("the old range is still mapped after mremap");

	/* The old range through the old MR. */
	memset(local, 0x5a, ML);
	s = dev_op_on(&p, IBV_WR_RDMA_READ, local, buf + T_PAGE + 9,
		      5 * T_PAGE, mr);
	if (t_odp)
		r[0] = s == IBV_WC_REM_ACCESS_ERR &&
		       t_check_byte(local, 0x5a, 5 * T_PAGE,
				    "local buffer after the failed READ");
	else
		r[0] = s == IBV_WC_SUCCESS &&
		       t_check(local, want + T_PAGE + 9, 5 * T_PAGE,
			       "pinned: READ of the old range after the move");
	r[0] = r[0] && unmapped(buf, ML) && t_check(to, want, ML,
						    "CPU at the new address");

	/* An MR on the new range sees the moved data and writes land. */
	t_fill(to + 7 * T_PAGE, 3 * T_PAGE, 22);
	memcpy(want + 7 * T_PAGE, to + 7 * T_PAGE, 3 * T_PAGE);
	mr2 = t_reg_mr(&dev, to, ML, T_ACCESS_ALL);
	memset(local, 0x5a, ML);
	r[1] = mr2 && !dev_op(IBV_WR_RDMA_READ, local, to, ML, mr2) &&
	       t_check(local, want, ML, "READ through an MR on the new range");
	t_fill(local, 20 * T_PAGE, 23);
	memcpy(want + 100 * T_PAGE - 5, local, 20 * T_PAGE);
	r[1] = r[1] && !dev_op(IBV_WR_RDMA_WRITE, local, to + 100 * T_PAGE - 5,
			       20 * T_PAGE, mr2) &&
	       t_check(to, want, ML, "CPU view of a WRITE through the new MR");

	/* Pinned: the old MR still reaches the moved pages. */
	if (!t_odp) {
		memset(local, 0x5a, ML);
		r[2] = !dev_op(IBV_WR_RDMA_READ, local, buf, ML, mr) &&
		       t_check(local, want, ML,
			       "pinned: READ through the old MR of the moved pages");
	}

	/* Something new at the old address. */
	if (mmap(buf, ML, PROT_READ | PROT_WRITE,
		 MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0) != buf) {
		t_diag("mmap(MAP_FIXED) at the old address: %s", strerror(errno));
		goto out;
	}
	t_fill(buf, ML, 24);
	memset(local, 0x5a, ML);
	s = dev_op(IBV_WR_RDMA_READ, local, buf, ML, mr);
	if (t_odp) {
		r[2] = !s && t_check(local, buf, ML,
				     "READ through the old MR of a new mapping at the old address");
	} else {
		r[3] = !s && t_check(local, want, ML,
				     "pinned: READ through the old MR after a new mapping at the old address");
		goto out;
	}
	/* and writes through the old MR land in the new mapping only */
	memcpy(local, buf, ML);
	t_fill(local + 3 * T_PAGE, T_PAGE, 25);
	r[3] = !dev_op(IBV_WR_RDMA_WRITE, local, buf, ML, mr) &&
	       t_check(buf, local, ML, "new mapping after a WRITE through the old MR") &&
	       t_check(to, want, ML, "moved pages after a WRITE through the old MR");
out:
	if (have_p)
		t_rc_pair_destroy(&p);
	t_dereg_mr(mr);
	t_dereg_mr(mr2);
	t_munmap(buf, ML);
	if (to != MAP_FAILED)
		munmap(to, ML);
	free(want);
}

/*
 * Grow: in place (a hole after the range), then by moving (a mapping
 * blocks the way).
 */
static void mremap_grow(bool r[3])
{
	uint8_t *buf, *nb = MAP_FAILED, *want, *blk = MAP_FAILED;
	struct ibv_mr *mr = NULL, *mr2 = NULL, *mr3 = NULL;
	struct t_rc_pair p;
	bool have_p = false;
	int s;

	memset(r, 0, 3 * sizeof(*r));
	want = calloc(1, 4 * ML);
	buf = t_mmap(2 * ML);
	if (!buf || !want)
		goto out;
	t_fill(buf, ML, 31);
	memcpy(want, buf, ML);
	mr = t_reg_mr(&dev, buf, ML, T_ACCESS_ALL);
	if (!mr || t_rc_pair_create(&dev, &p, NULL))
		goto out;
	have_p = true;
	/* the device maps the pages writable */
	memcpy(local, want, ML);
	if (dev_op_on(&p, IBV_WR_RDMA_WRITE, local, buf, ML, mr))
		goto out;
	/* A hole after the range, made last: nothing else can take it. */
	munmap(buf + ML, ML);
	if (mremap(buf, ML, 2 * ML, 0) != buf) {
		t_diag("mremap grow in place: %s", strerror(errno));
		goto out;
	}
	memset(local, 0x5a, ML);
	r[0] = !dev_op_on(&p, IBV_WR_RDMA_READ, local, buf, ML, mr) &&
	       t_check(local, want, ML, "READ through the old MR after growing in place");
	t_fill(local, 2 * T_PAGE, 32);
	memcpy(want + 50 * T_PAGE, local, 2 * T_PAGE);
	r[0] = r[0] &&
	       !dev_op_on(&p, IBV_WR_RDMA_WRITE, local, buf + 50 * T_PAGE,
			  2 * T_PAGE, mr) &&
	       t_check(buf, want, 2 * ML, "CPU after a WRITE through the old MR");

	mr2 = t_reg_mr(&dev, buf, 2 * ML, T_ACCESS_ALL);
	memset(local, 0x5a, 2 * ML);
	r[1] = mr2 && !dev_op(IBV_WR_RDMA_READ, local, buf, 2 * ML, mr2) &&
	       t_check(local, want, 2 * ML, "READ of the grown range (data, then zeros)");
	t_fill(local, 8 * T_PAGE, 33);
	memcpy(want + ML - 4 * T_PAGE + 1, local, 8 * T_PAGE);
	r[1] = r[1] && !dev_op(IBV_WR_RDMA_WRITE, local,
			       buf + ML - 4 * T_PAGE + 1, 8 * T_PAGE, mr2) &&
	       t_check(buf, want, 2 * ML, "CPU after a WRITE across the old end");

	/* Grow again, with a mapping in the way: it must move. */
	blk = mmap(buf + 2 * ML, T_PAGE, PROT_NONE,
		   MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE, -1, 0);
	if (blk == MAP_FAILED && errno == EEXIST) {
		/* something (a QP's queue) is there already: blocked */
	} else if (blk != buf + 2 * ML) {
		t_diag("cannot block the range after the buffer: %s",
		       strerror(errno));
		goto out;
	}
	nb = mremap(buf, 2 * ML, 4 * ML, MREMAP_MAYMOVE);
	if (nb == MAP_FAILED || nb == buf) {
		t_diag("mremap grow with move: %s",
		       nb == buf ? "did not move" : strerror(errno));
		nb = MAP_FAILED;
		goto out;
	}
	memset(local, 0x5a, 2 * ML);
	s = dev_op(IBV_WR_RDMA_READ, local, buf, 2 * ML, mr2);
	if (t_odp)
		r[2] = s == IBV_WC_REM_ACCESS_ERR &&
		       t_check_byte(local, 0x5a, 2 * ML, "local buffer after the failed READ");
	else
		r[2] = !s && t_check(local, want, 2 * ML,
				     "pinned: READ of the old range after the move");
	mr3 = t_reg_mr(&dev, nb, 4 * ML, T_ACCESS_ALL);
	memset(local, 0x5a, 4 * ML);
	r[2] = r[2] && mr3 && !dev_op(IBV_WR_RDMA_READ, local, nb, 4 * ML, mr3) &&
	       t_check(local, want, 4 * ML, "READ of the moved and grown range");
	t_fill(local, 4 * ML - 10, 34);
	memcpy(want + 5, local, 4 * ML - 10);
	r[2] = r[2] && !dev_op(IBV_WR_RDMA_WRITE, local, nb + 5, 4 * ML - 10, mr3) &&
	       t_check(nb, want, 4 * ML, "CPU after a WRITE of the moved range");
out:
	if (have_p)
		t_rc_pair_destroy(&p);
	t_dereg_mr(mr);
	t_dereg_mr(mr2);
	t_dereg_mr(mr3);
	if (nb != MAP_FAILED)
		munmap(nb, 4 * ML);
	else if (buf)
		munmap(buf, 2 * ML);
	if (blk != MAP_FAILED)
		munmap(blk, T_PAGE);
	free(want);
}

/* ---- a move while the device streams -------------------------------------- */

#define SL	(64 * T_KIB)

struct stream {
	uint8_t *buf;
	struct ibv_mr *mr;
	struct t_rc_pair p;
	uint32_t rlen;		/* bytes each READ reads back */
	int stop;
	/* results */
	long writes, reads;
	int last_ok_seed, fail_seed, fail_status;
	bool bad;
};

/* Post, wait; if nothing comes in time, say more and wait once more. */
static int stream_op(struct t_rc_pair *p, enum ibv_wr_opcode op, void *l,
		     void *r, uint32_t len, uint32_t rkey)
{
	struct ibv_wc wc;

	if (t_post_rdma(p->qp[0], op, 1, l, len, lmr->lkey, (uintptr_t)r, rkey))
		return -1;
	if (t_poll(p->scq[0], 1, &wc) == 1)
		return wc.status;
	t_diag("the %s after the move is stuck", op == IBV_WR_RDMA_READ ?
	       "READ" : "WRITE");
	qp_diag(p);
	if (t_poll(p->scq[0], 1, &wc) == 1) {
		t_diag("... it completed %d ms later: %s", t_timeout_ms,
		       ibv_wc_status_str(wc.status));
		qp_diag(p);
	}
	return -1;
}

static void *stream_fn(void *arg)
{
	struct stream *st = arg;
	uint8_t *wsrc = local, *rdst = local + SL;
	int seed, s;

	st->last_ok_seed = -1;
	st->fail_seed = -1;
	st->fail_status = IBV_WC_SUCCESS;
	for (seed = 100; !__atomic_load_n(&st->stop, __ATOMIC_ACQUIRE); seed++) {
		t_fill(wsrc, SL, seed);
		s = stream_op(&st->p, IBV_WR_RDMA_WRITE, wsrc, st->buf, SL,
			      st->mr->rkey);
		if (s) {
			st->fail_seed = seed;
			st->fail_status = s;
			break;
		}
		st->writes++;
		st->last_ok_seed = seed;
		memset(rdst, 0x5a, SL);
		s = stream_op(&st->p, IBV_WR_RDMA_READ, rdst, st->buf,
			      st->rlen, st->mr->rkey);
		if (s) {
			st->fail_status = s;
			break;
		}
		st->reads++;
		if (t_cmp(rdst, wsrc, st->rlen) >= 0) {
			t_check(rdst, wsrc, st->rlen,
				"READ after WRITE in the stream");
			st->bad = true;
			break;
		}
	}
	return NULL;
}

static bool move_under_traffic(uint32_t rlen)
{
	struct stream st = { .rlen = rlen };
	struct timespec nap = { 0, 100 * 1000 * 1000 };
	uint8_t *to, *a, *b;
	double t0;
	pthread_t thr;
	long before;
	bool ok = false;
	size_t i;

	a = malloc(SL);
	b = malloc(SL);
	st.buf = t_mmap(SL);
	to = mmap(NULL, SL, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (!a || !b || !st.buf || to == MAP_FAILED)
		goto out;
	st.mr = t_reg_mr(&dev, st.buf, SL, T_ACCESS_ALL);
	if (!st.mr || t_rc_pair_create(&dev, &st.p, NULL))
		goto out;
	if (pthread_create(&thr, NULL, stream_fn, &st)) {
		t_rc_pair_destroy(&st.p);
		goto out;
	}
	/* a few rounds first (a busy TCG host can take a while) */
	for (t0 = t_now(); t_now() - t0 < 10 &&
	     __atomic_load_n(&st.reads, __ATOMIC_RELAXED) < 3;)
		nanosleep(&nap, NULL);
	before = __atomic_load_n(&st.writes, __ATOMIC_RELAXED);
	if (mremap(st.buf, SL, SL, MREMAP_MAYMOVE | MREMAP_FIXED, to) != to) {
		t_diag("mremap: %s", strerror(errno));
		__atomic_store_n(&st.stop, 1, __ATOMIC_RELEASE);
		pthread_join(thr, NULL);
		t_rc_pair_destroy(&st.p);
		t_munmap(st.buf, SL);
		goto out;
	}
	nanosleep(&nap, NULL);
	if (!t_odp) {
		nanosleep(&nap, NULL);
		__atomic_store_n(&st.stop, 1, __ATOMIC_RELEASE);
	}
	pthread_join(thr, NULL);
	t_rc_pair_destroy(&st.p);
	t_diag("%ld WRITEs (%ld before the move) and %ld READs; the stream ended with %s",
	       st.writes, before, st.reads, t_wc_status_str(st.fail_status));
	if (st.bad || before < 3 || st.last_ok_seed < 0)
		goto out;
	/* The moved pages hold the last successful WRITE, where a WRITE cut
	 * by the move did not get first.
	 */
	t_fill(a, SL, st.last_ok_seed);
	if (st.fail_seed >= 0)
		t_fill(b, SL, st.fail_seed);
	else
		memcpy(b, a, SL);
	for (i = 0; i < SL; i++) {
		if (to[i] == a[i] || to[i] == b[i])
			continue;
		t_diag("moved byte %zu is 0x%02x: neither WRITE %d (0x%02x) nor %d (0x%02x)",
		       i, to[i], st.last_ok_seed, a[i], st.fail_seed, b[i]);
		goto out;
	}
	if (t_odp)
		ok = st.fail_status == IBV_WC_REM_ACCESS_ERR;
	else
		ok = st.fail_status == IBV_WC_SUCCESS && st.writes > before &&
		     t_check(to, a, SL, "pinned: the moved pages");
out:
	t_dereg_mr(st.mr);
	if (to != MAP_FAILED)
		munmap(to, SL);
	free(a);
	free(b);
	return ok;
}

int main(int argc, char **argv)
{
	bool r[6], mv = true;
	int i;

	t_init(argc, argv, "ODP MRs follow MADV_FREE and mremap");
	t_plan(18);
	if (t_dev_open(&dev))
		t_bail("cannot open the RDMA device");
	local = t_mmap(4 * LEN);
	if (!local)
		t_bail("out of memory");
	lmr = t_reg_mr(&dev, local, 4 * LEN, T_ACCESS_ALL);
	if (!lmr)
		t_bail("cannot register %s MRs", t_mode());

	madv_free(r);
	t_result(r[0], "after MADV_FREE, before reclaim, the pages stay and RDMA READ returns the data");
	t_result(r[1], "after MADV_FREE, RDMA READ returns what the CPU rewrote");
	t_result(r[2], "after MADV_FREE, a remote WRITE lands and the CPU sees it");
	if (t_odp) {
		t_result(r[3], "MADV_PAGEOUT discards >= 90%% of the clean MADV_FREE pages, keeps every page the CPU or the device wrote");
		t_result(r[4], "after reclaim, RDMA READ returns zeros where pages were discarded and the written data elsewhere, as the CPU");
	} else {
		t_result(r[3], "pinned contrast: MADV_PAGEOUT discards (or swaps) no pinned MADV_FREE page");
		t_result(r[4], "pinned contrast: after MADV_PAGEOUT the device and the CPU still read all the old data");
	}
	t_result(r[5], "a WRITE into reclaimed MADV_FREE pages lands, READ returns it");
	t_result(race(false), "MADV_FREE + MADV_PAGEOUT and CPU refills racing RDMA READs: every byte read is the data or zero%s",
		 t_odp ? "" : " (pinned: nothing discarded)");
	t_result(race(true), "MADV_FREE + MADV_PAGEOUT racing RDMA WRITEs: the CPU sees the data or zero, a last WRITE survives MADV_PAGEOUT%s",
		 t_odp ? "" : " (pinned: nothing discarded)");

	t_result(storm(), "MADV_DONTNEED storm in one half of an MR: cold WRITEs and READs to the other half complete, data intact");

	mremap_move(r);
	if (t_odp) {
		t_result(r[0], "mremap move: RDMA READ of the old range through the MR: IBV_WC_REM_ACCESS_ERR");
		t_result(r[1], "mremap move: an MR on the new range reads the moved data, WRITEs land");
		t_result(r[2], "mremap move: after a new mmap at the old address, the old MR reads the new data");
		t_result(r[3], "mremap move: a WRITE through the old MR lands in the new mapping, not in the moved pages");
	} else {
		t_result(r[0], "pinned contrast: after mremap move, the old MR still reads the moved pages");
		t_result(r[1], "mremap move: an MR on the new range reads the moved data, WRITEs land");
		t_result(r[2], "pinned contrast: the old MR reads the CPU's writes at the new address");
		t_result(r[3], "pinned contrast: after a new mmap at the old address, the old MR still reads the moved pages");
	}
	mremap_grow(r);
	t_result(r[0], "mremap grow in place: the MR keeps its data, reads and writes work");
	t_result(r[1], "mremap grow in place: an MR over the grown range reads data then zeros, WRITEs land");
	if (t_odp)
		t_result(r[2], "mremap grow with move: the old MR gets IBV_WC_REM_ACCESS_ERR, an MR on the new range works");
	else
		t_result(r[2], "pinned contrast: mremap grow with move: the old MR still reads the moved pages");
	/*
	 * READs of one packet (4 KiB): the responder fails on the first
	 * packet of a READ, or not at all.
	 */
	for (i = 0; i < 3; i++)
		mv = move_under_traffic(T_PAGE) && mv;
	if (t_odp)
		t_result(mv, "mremap move under a WRITE/READ stream: every 4 KiB READ is what was written, the stream ends with IBV_WC_REM_ACCESS_ERR, the moved pages hold the WRITEs (3 runs)");
	else
		t_result(mv, "pinned contrast: mremap move under a WRITE/READ stream: the stream never fails, its WRITEs keep landing in the moved pages (3 runs)");

	/*
	 * READs of 16 packets: the move can come after the responder sent
	 * the first response packets.  It must NAK the packet the requester
	 * expects next; before the patch "Accept a NAK in the middle
	 * of an RDMA READ response" it NAKed with the READ's first PSN, the requester
	 * dropped that as stale and, with retry_cnt 7 (infinite in rxe),
	 * retried forever: the READ never completed (1 run in 3 here).
	 */
	for (mv = true, i = 0; i < 3; i++)
		mv = move_under_traffic(SL) && mv;
	t_result(mv, "mremap move under a stream of 64 KiB READs: %s (3 runs)",
		 t_odp ? "every READ completes, the stream ends with IBV_WC_REM_ACCESS_ERR" :
		 "pinned: the stream never fails");

	t_dereg_mr(lmr);
	t_dev_close(&dev);
	return t_finish();
}
