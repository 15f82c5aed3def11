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
 * The MADV_FREE tests, the mremap move tests and the mremap grow tests
 * are three sequences of steps: each test is set up as its sequence
 * starts, replays the steps of the tests before it in that sequence (with
 * their checks), and does its own.
 *
 * Pinned MRs (the pinned variant): MADV_PAGEOUT cannot discard pinned
 * pages (the contrast asserts that none was and both sides still read the
 * data), and a pinned MR follows the pages, not the addresses: after a
 * move the old MR still reads (and writes) the moved pages, even once
 * something else is mapped at the old address.
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

#include "odpharness.h"

#ifndef MADV_PAGEOUT
#define MADV_PAGEOUT	21
#endif

#define LEN	(4 * T_MIB)
#define NP	(LEN / T_PAGE)

/* ---- the threads that race the device ---------------------------------- */

/* MADV_FREE + MADV_PAGEOUT of random chunks */
struct racer {
	uint8_t *buf;
	const uint8_t *refill;
	int stop;
	long drops;
	bool starved;
};

/* MADV_DONTNEED of random chunks */
struct storm {
	uint8_t *buf;
	int stop;
	long drops;
};

/* RDMA WRITEs and READs, one after the other */
struct stream {
	struct t_dev *dev;
	uint8_t *local;		/* wsrc, rdst: local, local + SL */
	uint32_t lkey;
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

/*
 * The device and a local buffer of 4 * LEN bytes (local, lmr), the source
 * and target of the device's transfers; and what a test maps (map[],
 * munmapped in teardown), allocates (want, pat, a, b), registers (mr[])
 * and connects (p), and its thread (stopped through *stop).  The stream
 * tests do three runs, each freeing its own (test_free()).
 */
struct region {
	void *p;
	size_t len;
};

FIXTURE(vmops) {
	struct t_dev dev;
	uint8_t *local;
	struct ibv_mr *lmr;
	struct region map[3];
	uint8_t *want, *pat, *a, *b;
	struct ibv_mr *mr[3];
	struct t_rc_pair p;
	pthread_t thr;
	bool have_thr;
	int *stop;
	struct racer racer;
	struct storm storm;
	struct stream stream;
};

ODP_VARIANTS(vmops);

FIXTURE_SETUP(vmops)
{
	t_variant();
	ASSERT_EQ(0, t_dev_open(&self->dev));
	self->local = t_mmap(4 * LEN);
	ASSERT_NE(NULL, self->local);
	self->lmr = t_reg_mr(&self->dev, self->local, 4 * LEN, T_ACCESS_ALL);
	ASSERT_NE(NULL, self->lmr);
}

/* Stop the test's thread, if it runs. */
static void thread_stop(FIXTURE_DATA(vmops) *self)
{
	if (!self->have_thr)
		return;
	__atomic_store_n(self->stop, 1, __ATOMIC_RELEASE);
	pthread_join(self->thr, NULL);
	self->have_thr = false;
}

/* Free what a test (or a run of one) got to, but the device and local. */
static void test_free(FIXTURE_DATA(vmops) *self)
{
	int i;

	thread_stop(self);
	t_rc_pair_destroy(&self->p);
	t_rc_pair_destroy(&self->stream.p);
	for (i = 0; i < (int)T_ARRAY_SIZE(self->mr); i++)
		t_dereg_mr(self->mr[i]);
	for (i = 0; i < (int)T_ARRAY_SIZE(self->map); i++)
		if (self->map[i].p)
			munmap(self->map[i].p, self->map[i].len);
	free(self->want);
	free(self->pat);
	free(self->a);
	free(self->b);
	memset(self->mr, 0, sizeof(self->mr));
	memset(self->map, 0, sizeof(self->map));
	self->want = self->pat = self->a = self->b = NULL;
	memset(&self->stream, 0, sizeof(self->stream));
}

FIXTURE_TEARDOWN(vmops)
{
	test_free(self);
	t_dereg_mr(self->lmr);
	t_munmap(self->local, 4 * LEN);
	t_dev_close(&self->dev);
}

/* A fresh untouched mapping of @len bytes, as map[@i]. */
#define MAP(i, len) ({							\
	void *__p = t_mmap(len);					\
	ASSERT_NE(NULL, __p);						\
	self->map[i] = (struct region){ __p, (len) };			\
	(uint8_t *)__p;							\
})

/* A heap buffer of @len bytes (zeroed) for self->@field. */
#define ALLOC(field, len) do {						\
	self->field = calloc(1, len);					\
	ASSERT_NE(NULL, self->field);					\
} while (0)

/* mr[@i]: an MR over [@p, @p + @len), every access */
#define REG(i, p, len) ({						\
	self->mr[i] = t_reg_mr(&self->dev, (p), (len), T_ACCESS_ALL);	\
	ASSERT_NE(NULL, self->mr[i]);					\
	self->mr[i];							\
})

#define PAIR() ASSERT_EQ(0, t_rc_pair_create(&self->dev, &self->p, NULL))

#define STEP_ARGS	struct __test_metadata *_metadata,		\
			FIXTURE_DATA(vmops) *self,			\
			const FIXTURE_VARIANT(vmops) *variant
#define STEP(f, ...)	f(_metadata, self, variant, ##__VA_ARGS__)

/*
 * Set a sequence up with @setup, then run the steps of the tests before
 * test @n of it (1 for the first): the state test @n starts from.
 */
static void run_steps(STEP_ARGS, void (*setup)(STEP_ARGS),
		      void (*const *step)(STEP_ARGS), int n)
{
	int i;

	setup(_metadata, self, variant);
	for (i = 0; i < n - 1; i++)
		step[i](_metadata, self, variant);
	ASSERT_TRUE(_metadata->passed) {
		TH_LOG("a step of the tests before this one failed");
	}
}

/* t_rdma_chunked() and t_rdma_fresh_pair() from local (lmr). */
static int dev_op_on(FIXTURE_DATA(vmops) *self, struct t_rc_pair *p,
		     enum ibv_wr_opcode op, void *laddr, void *raddr,
		     size_t len, struct ibv_mr *mr)
{
	return t_rdma_chunked(p, op, laddr, self->lmr->lkey, raddr, mr->rkey,
			      len, false);
}

static int dev_op(FIXTURE_DATA(vmops) *self, enum ibv_wr_opcode op,
		  void *laddr, void *raddr, size_t len, struct ibv_mr *mr)
{
	return t_rdma_fresh_pair(&self->dev, op, laddr, self->lmr->lkey,
				 raddr, mr->rkey, len);
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
 * map[0] is the buffer, mr[0] its MR, want what it should hold.
 */
#define CPU_OFF		0
#define CPU_LEN		(64 * T_PAGE)
#define DEV_OFF		(64 * T_PAGE)
#define DEV_LEN		(64 * T_PAGE)

/* The device maps every page, writable; then MADV_FREE. */
static void madv_free_setup(STEP_ARGS)
{
	uint8_t *buf = MAP(0, LEN), *local = self->local;
	struct ibv_mr *mr;

	ALLOC(want, LEN);
	madvise(buf, LEN, MADV_NOHUGEPAGE);	/* base pages, no split */
	t_fill(buf, LEN, 1);
	memcpy(self->want, buf, LEN);
	mr = REG(0, buf, LEN);
	memcpy(local, self->want, LEN);
	ASSERT_WC(IBV_WC_SUCCESS,
		  dev_op(self, IBV_WR_RDMA_WRITE, local, buf, LEN, mr));
	ASSERT_BYTES(buf, self->want, LEN, "WRITE before MADV_FREE");

	ASSERT_TRUE(do_madvise(buf, LEN, MADV_FREE, "MADV_FREE"));
}

static void madv_free_read(STEP_ARGS)
{
	uint8_t *buf = self->map[0].p, *want = self->want;
	long pres0, swp;

	EXPECT_EQ(0, page_state(buf, LEN, &pres0, &swp));
	memset(self->local, 0x5a, LEN);
	EXPECT_WC(IBV_WC_SUCCESS, dev_op(self, IBV_WR_RDMA_READ, self->local,
					 buf, LEN, self->mr[0]));
	EXPECT_BYTES(self->local, want, LEN,
		     "READ after MADV_FREE, before reclaim");
	EXPECT_BYTES(buf, want, LEN, "CPU after MADV_FREE, before reclaim");
	t_diag("after MADV_FREE %ld of %lu pages are still present", pres0, NP);
	EXPECT_EQ((long)NP, pres0);
}

/* The CPU rewrites some pages: they are dirty again. */
static void madv_free_cpu_rewrite(STEP_ARGS)
{
	uint8_t *buf = self->map[0].p, *want = self->want;

	t_fill(buf + CPU_OFF, CPU_LEN, 2);
	memcpy(want + CPU_OFF, buf + CPU_OFF, CPU_LEN);
	memset(self->local, 0x5a, LEN);
	EXPECT_WC(IBV_WC_SUCCESS, dev_op(self, IBV_WR_RDMA_READ, self->local,
					 buf, LEN, self->mr[0]));
	EXPECT_BYTES(self->local, want, LEN,
		     "READ after the CPU rewrote MADV_FREE pages");
}

/* The device writes others: they must be dirty too. */
static void madv_free_dev_write(STEP_ARGS)
{
	uint8_t *buf = self->map[0].p, *want = self->want;

	t_fill(self->local, DEV_LEN, 3);
	memcpy(want + DEV_OFF, self->local, DEV_LEN);
	EXPECT_WC(IBV_WC_SUCCESS, dev_op(self, IBV_WR_RDMA_WRITE, self->local,
					 buf + DEV_OFF, DEV_LEN,
					 self->mr[0]));
	EXPECT_BYTES(buf, want, LEN, "CPU view of a WRITE after MADV_FREE");
}

/*
 * Reclaim: clean lazy-free pages go, dirty ones stay.  The device read
 * them all since MADV_FREE, so with odp_aging reclaim spares them once:
 * t_pageout() asks twice.
 */
static void madv_free_pageout(STEP_ARGS)
{
	uint8_t *buf = self->map[0].p, *want = self->want;
	long pres, swp;

	ASSERT_EQ(0, t_pageout(buf, LEN)) {
		TH_LOG("MADV_PAGEOUT: %s", strerror(errno));
	}
	EXPECT_EQ(0, page_state(buf, LEN, &pres, &swp));
	t_diag("after MADV_PAGEOUT %ld of %lu pages present, %ld swapped (%lu rewritten by the CPU or the device)",
	       pres, NP, swp, (CPU_LEN + DEV_LEN) / T_PAGE);
	if (variant->odp) {
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

			EXPECT_EQ(0, page_state(buf + i, T_PAGE, &pp, &ps));
			if (!pp && !ps) {
				memset(want + i, 0, T_PAGE);
				gone++;
			}
		}
		EXPECT_EQ(0, page_state(buf, CPU_LEN + DEV_LEN, &kept, &kswp));
		t_diag("%ld of %ld clean pages discarded; of the %lu written ones %ld present, %ld swapped",
		       gone, clean, (CPU_LEN + DEV_LEN) / T_PAGE, kept, kswp);
		EXPECT_GE(gone, clean * 9 / 10);
		EXPECT_EQ((long)((CPU_LEN + DEV_LEN) / T_PAGE), kept + kswp);
	} else {
		EXPECT_EQ((long)NP, pres);
		EXPECT_EQ(0, swp);
	}
}

static void madv_free_read_reclaimed(STEP_ARGS)
{
	uint8_t *buf = self->map[0].p, *want = self->want;

	memset(self->local, 0x5a, LEN);
	EXPECT_WC(IBV_WC_SUCCESS, dev_op(self, IBV_WR_RDMA_READ, self->local,
					 buf, LEN, self->mr[0]));
	EXPECT_BYTES(self->local, want, LEN, "READ after reclaim");
	EXPECT_BYTES(buf, want, LEN, "CPU after reclaim");
	EXPECT_BYTES(self->local, buf, LEN,
		     "READ against the CPU after reclaim");
}

/* A WRITE into reclaimed (now zero-page backed) pages lands. */
static void madv_free_write_reclaimed(STEP_ARGS)
{
	uint8_t *buf = self->map[0].p, *want = self->want;

	t_fill(self->local, 2 * T_PAGE + 100, 4);
	memcpy(want + LEN - 3 * T_PAGE, self->local, 2 * T_PAGE + 100);
	EXPECT_WC(IBV_WC_SUCCESS, dev_op(self, IBV_WR_RDMA_WRITE, self->local,
					 buf + LEN - 3 * T_PAGE,
					 2 * T_PAGE + 100, self->mr[0]));
	EXPECT_BYTES(buf, want, LEN, "CPU view of a WRITE after reclaim");
	memset(self->local, 0x5a, LEN);
	EXPECT_WC(IBV_WC_SUCCESS, dev_op(self, IBV_WR_RDMA_READ, self->local,
					 buf, LEN, self->mr[0]));
	EXPECT_BYTES(self->local, want, LEN,
		     "READ after the WRITE after reclaim");
}

static void (*const madv_free_steps[])(STEP_ARGS) = {
	madv_free_read,
	madv_free_cpu_rewrite,
	madv_free_dev_write,
	madv_free_pageout,
	madv_free_read_reclaimed,
	madv_free_write_reclaimed,
};

/* Test @n of the MADV_FREE sequence. */
static void madv_free(STEP_ARGS, int n)
{
	STEP(run_steps, madv_free_setup, madv_free_steps, n);
	madv_free_steps[n - 1](_metadata, self, variant);
}

/*
 * after MADV_FREE, before reclaim, the pages stay and RDMA READ returns
 * the data
 */
TEST_F(vmops, madv_free_read_before_reclaim)
{
	STEP(madv_free, 1);
}

/* after MADV_FREE, RDMA READ returns what the CPU rewrote */
TEST_F(vmops, madv_free_read_cpu_rewrite)
{
	STEP(madv_free, 2);
}

/* after MADV_FREE, a remote WRITE lands and the CPU sees it */
TEST_F(vmops, madv_free_remote_write)
{
	STEP(madv_free, 3);
}

/*
 * odp: MADV_PAGEOUT discards >= 90% of the clean MADV_FREE pages, keeps
 * every page the CPU or the device wrote
 * pinned contrast: MADV_PAGEOUT discards (or swaps) no pinned MADV_FREE
 * page
 */
TEST_F(vmops, madv_free_pageout)
{
	STEP(madv_free, 4);
}

/*
 * odp: after reclaim, RDMA READ returns zeros where pages were discarded
 * and the written data elsewhere, as the CPU
 * pinned contrast: after MADV_PAGEOUT the device and the CPU still read
 * all the old data
 */
TEST_F(vmops, madv_free_read_after_reclaim)
{
	STEP(madv_free, 5);
}

/* a WRITE into reclaimed MADV_FREE pages lands, READ returns it */
TEST_F(vmops, madv_free_write_after_reclaim)
{
	STEP(madv_free, 6);
}

/* ---- MADV_FREE + MADV_PAGEOUT racing the device --------------------------- */

#define RACE_PASSES	4
#define RACE_CHUNK	(64 * T_KIB)

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
static void qp_diag(struct t_dev *dev, struct t_rc_pair *p)
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
		 dev->name, dev->port);
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
static int race_op(FIXTURE_DATA(vmops) *self, enum ibv_wr_opcode op,
		   uint8_t *buf, struct ibv_mr *mr)
{
	struct t_rc_pair *p = &self->p;
	struct racer *r = &self->racer;
	struct t_dev *dev = &self->dev;
	struct ibv_wc wc;
	long pswpin0;
	double t0;
	int i;

	if (t_post_rdma(p->qp[0], op, 1, self->local, LEN, self->lmr->lkey,
			(uintptr_t)buf, mr->rkey))
		return -1;
	if (t_poll(p->scq[0], 1, &wc) == 1)
		return wc.status;
	__atomic_store_n(&r->stop, 1, __ATOMIC_RELEASE);
	t0 = t_now();
	pswpin0 = t_vmstat("pswpin");
	for (i = 0; i < RECOVERY_TIMEOUTS; i++) {
		t_diag("racer stopped %.1f s ago: rcvd_pkts %ld, duplicate_request %ld, completer_retry_err %ld, odp_fault_waits %ld, odp_page_faults %ld, odp_page_invalidations %ld, pswpin +%ld, MemFree %ld kB",
		       t_now() - t0, t_hw_counter(dev, "rcvd_pkts"),
		       t_hw_counter(dev, "duplicate_request"),
		       t_hw_counter(dev, "completer_retry_err"),
		       t_hw_counter(dev, "odp_fault_waits"),
		       t_hw_counter(dev, "odp_page_faults"),
		       t_hw_counter(dev, "odp_page_invalidations"),
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
	qp_diag(dev, p);
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

static void race(STEP_ARGS, bool write)
{
	struct racer *r = &self->racer;
	uint8_t *buf, *pat, *local = self->local;
	long lf0, lf, zp = 0, zsum = 0, pswpin0;
	struct ibv_mr *mr;
	double t0;
	int i, s;

	buf = MAP(0, LEN);
	ALLOC(pat, LEN);
	pat = self->pat;
	madvise(buf, LEN, MADV_NOHUGEPAGE);
	t_fill(pat, LEN, write ? 11 : 12);
	if (write)
		memcpy(local, pat, LEN);
	else
		memcpy(buf, pat, LEN);
	mr = REG(0, buf, LEN);
	PAIR();
	lf0 = t_vmstat("pglazyfreed");
	r->buf = buf;
	r->refill = write ? NULL : pat;
	t0 = t_now();
	ASSERT_EQ(0, pthread_create(&self->thr, NULL, racer_fn, r));
	self->have_thr = true;
	self->stop = &r->stop;
	for (i = 0; !r->starved && i < RACE_PASSES; i++) {
		char what[64];

		snprintf(what, sizeof(what), "pass %d", i);
		if (!write)
			memset(local, 0x5a, LEN);
		s = race_op(self, write ? IBV_WR_RDMA_WRITE : IBV_WR_RDMA_READ,
			    buf, mr);
		if (s)
			t_diag("%s: %s", what, t_wc_status_str(s));
		EXPECT_WC(IBV_WC_SUCCESS, s);
		if (!s) {
			EXPECT_TRUE(data_or_zero(write ? buf : local, pat, LEN,
						 what, &zp));
		}
		zsum += zp;
		if (!_metadata->passed) {
			i++;
			break;
		}
	}
	thread_stop(self);
	lf = lf0 < 0 ? 0 : t_vmstat("pglazyfreed") - lf0;
	t_diag("%d passes in %.1f s against %ld MADV_FREE+MADV_PAGEOUT of 64 KiB; pglazyfreed +%ld; %ld all-zero pages seen",
	       i, t_now() - t0, r->drops, lf, zsum);
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
	if (variant->odp) {
		EXPECT_LT(0, lf) {
			TH_LOG("no page was discarded: the race proves nothing");
		}
	} else {
		EXPECT_EQ(0, lf) {
			TH_LOG("pinned: %ld pages were discarded", lf);
		}
	}
	if (_metadata->passed && write) {
		/* A last WRITE, then reclaim without MADV_FREE: it must stay. */
		s = t_rdma_sync(&self->p, IBV_WR_RDMA_WRITE, local, LEN,
				self->lmr->lkey, (uintptr_t)buf, mr->rkey);
		EXPECT_WC(IBV_WC_SUCCESS, s);
		EXPECT_BYTES(buf, pat, LEN, "quiet WRITE after the race");
		t_pageout(buf, LEN);
		/*
		 * What a swap-in costs the CPU here and now: the yardstick
		 * for a starved op's recovery, which swaps pages in too.
		 */
		pswpin0 = t_vmstat("pswpin");
		t0 = t_now();
		EXPECT_BYTES(buf, pat, LEN, "the last WRITE after MADV_PAGEOUT");
		t_diag("the CPU read the paged-out buffer back in %.3f s, %ld pages swapped in",
		       t_now() - t0, swapins_since(pswpin0));
	}
}

/*
 * MADV_FREE + MADV_PAGEOUT and CPU refills racing RDMA READs: every byte
 * read is the data or zero (pinned: nothing discarded)
 *
 * 2 s under TCG; a starved op may recover for RECOVERY_TIMEOUTS
 * completion timeouts and pass: 120 s.
 */
TEST_F_TIMEOUT(vmops, madv_free_pageout_race_reads, 120)
{
	STEP(race, false);
}

/*
 * MADV_FREE + MADV_PAGEOUT racing RDMA WRITEs: the CPU sees the data or
 * zero, a last WRITE survives MADV_PAGEOUT (pinned: nothing discarded)
 * (2 s under TCG, as the READs: 120 s)
 */
TEST_F_TIMEOUT(vmops, madv_free_pageout_race_writes, 120)
{
	STEP(race, true);
}

/* ---- an invalidation storm in another part of the MR ---------------------- */

#define STORM_PASSES	3

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
 *
 * MADV_DONTNEED storm in one half of an MR: cold WRITEs and READs to the
 * other half complete, data intact
 */
TEST_F(vmops, dontneed_storm_other_half)
{
	uint8_t *buf, *pat = self->local, *back = self->local + LEN;
	struct storm *st = &self->storm;
	double t, tmax = 0;
	struct ibv_mr *mr;
	int i, s;

	buf = MAP(0, 2 * LEN);
	madvise(buf, 2 * LEN, MADV_NOHUGEPAGE);
	mr = REG(0, buf, 2 * LEN);
	PAIR();
	st->buf = buf;
	ASSERT_EQ(0, pthread_create(&self->thr, NULL, storm_fn, st));
	self->have_thr = true;
	self->stop = &st->stop;
	for (i = 0; i < STORM_PASSES; i++) {
		/* cold again: every page of the WRITE must be faulted */
		if (variant->odp)
			madvise(buf + LEN, LEN, MADV_DONTNEED);
		t_fill(pat, LEN, 21 + i);
		memset(back, 0, LEN);
		t = t_now();
		s = t_rdma_sync(&self->p, IBV_WR_RDMA_WRITE, pat, LEN,
				self->lmr->lkey, (uintptr_t)buf + LEN,
				mr->rkey);
		if (!s)
			s = t_rdma_sync(&self->p, IBV_WR_RDMA_READ, back, LEN,
					self->lmr->lkey, (uintptr_t)buf + LEN,
					mr->rkey);
		t = t_now() - t;
		tmax = t > tmax ? t : tmax;
		if (s)
			t_diag("pass %d: %s after %.1f s", i,
			       t_wc_status_str(s), t);
		EXPECT_WC(IBV_WC_SUCCESS, s);
		if (s)
			break;
		EXPECT_BYTES(buf + LEN, pat, LEN, "the CPU's view of the WRITE");
		EXPECT_BYTES(back, pat, LEN, "the READ");
		if (!_metadata->passed) {
			i++;
			break;
		}
	}
	thread_stop(self);
	t_diag("%d passes of a cold 4 MiB WRITE + READ, the slowest in %.2f s, against %ld MADV_DONTNEED of 64 KiB in the other half",
	       i, tmax, st->drops);
	EXPECT_LE(STORM_PASSES, st->drops) {
		TH_LOG("the storm hardly ran: the case proves nothing");
	}
}

/* ---- mremap --------------------------------------------------------------- */

#define ML	(256 * T_PAGE)

/*
 * Move [buf, ML) (map[0], mr[0]) to a fresh address (map[1]); then the
 * old MR, a new MR (mr[1]), a new mapping at the old address.
 */
static void mremap_move_setup(STEP_ARGS)
{
	uint8_t *buf, *to, *want;
	struct ibv_mr *mr;

	buf = MAP(0, ML);
	ALLOC(want, ML);
	want = self->want;
	t_fill(buf, ML, 21);
	memcpy(want, buf, ML);
	mr = REG(0, buf, ML);
	PAIR();
	to = mmap(NULL, ML, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	ASSERT_NE(MAP_FAILED, to);
	self->map[1] = (struct region){ to, ML };
	memset(self->local, 0, ML);
	ASSERT_WC(IBV_WC_SUCCESS, dev_op_on(self, &self->p, IBV_WR_RDMA_READ,
					    self->local, buf, ML, mr));
	ASSERT_BYTES(self->local, want, ML, "READ before mremap");
	ASSERT_EQ(to, mremap(buf, ML, ML, MREMAP_MAYMOVE | MREMAP_FIXED, to)) {
		TH_LOG("mremap(MREMAP_FIXED): %s", strerror(errno));
	}
	if (!unmapped(buf, ML))
		t_diag("the old range is still mapped after mremap");
}

/* The old range through the old MR. */
static void mremap_move_old_range(STEP_ARGS)
{
	uint8_t *buf = self->map[0].p, *to = self->map[1].p;
	uint8_t *want = self->want, *local = self->local;
	int s;

	memset(local, 0x5a, ML);
	s = dev_op_on(self, &self->p, IBV_WR_RDMA_READ, local,
		      buf + T_PAGE + 9, 5 * T_PAGE, self->mr[0]);
	if (variant->odp) {
		EXPECT_WC(IBV_WC_REM_ACCESS_ERR, s);
		EXPECT_FILLED(local, 0x5a, 5 * T_PAGE,
			      "local buffer after the failed READ");
	} else {
		EXPECT_WC(IBV_WC_SUCCESS, s);
		EXPECT_BYTES(local, want + T_PAGE + 9, 5 * T_PAGE,
			     "pinned: READ of the old range after the move");
	}
	EXPECT_TRUE(unmapped(buf, ML));
	EXPECT_BYTES(to, want, ML, "CPU at the new address");
}

/* An MR on the new range sees the moved data and writes land. */
static void mremap_move_new_mr(STEP_ARGS)
{
	uint8_t *to = self->map[1].p, *want = self->want, *local = self->local;
	struct ibv_mr *mr2;

	t_fill(to + 7 * T_PAGE, 3 * T_PAGE, 22);
	memcpy(want + 7 * T_PAGE, to + 7 * T_PAGE, 3 * T_PAGE);
	mr2 = REG(1, to, ML);
	memset(local, 0x5a, ML);
	EXPECT_WC(IBV_WC_SUCCESS,
		  dev_op(self, IBV_WR_RDMA_READ, local, to, ML, mr2));
	EXPECT_BYTES(local, want, ML, "READ through an MR on the new range");
	t_fill(local, 20 * T_PAGE, 23);
	memcpy(want + 100 * T_PAGE - 5, local, 20 * T_PAGE);
	EXPECT_WC(IBV_WC_SUCCESS,
		  dev_op(self, IBV_WR_RDMA_WRITE, local, to + 100 * T_PAGE - 5,
			 20 * T_PAGE, mr2));
	EXPECT_BYTES(to, want, ML, "CPU view of a WRITE through the new MR");
}

/* Something new at the old address, which the CPU fills. */
static void mremap_move_new_mapping(STEP_ARGS)
{
	uint8_t *buf = self->map[0].p;

	ASSERT_EQ(buf, mmap(buf, ML, PROT_READ | PROT_WRITE,
			    MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0)) {
		TH_LOG("mmap(MAP_FIXED) at the old address: %s",
		       strerror(errno));
	}
	t_fill(buf, ML, 24);
}

/*
 * odp: after a new mapping at the old address, the old MR reads it;
 * pinned: the old MR still reaches the moved pages.
 */
static void mremap_move_old_mr_reads(STEP_ARGS)
{
	uint8_t *buf = self->map[0].p, *local = self->local;
	int s;

	if (!variant->odp) {
		memset(local, 0x5a, ML);
		EXPECT_WC(IBV_WC_SUCCESS, dev_op(self, IBV_WR_RDMA_READ, local,
						 buf, ML, self->mr[0]));
		EXPECT_BYTES(local, self->want, ML,
			     "pinned: READ through the old MR of the moved pages");
		return;
	}
	STEP(mremap_move_new_mapping);
	memset(local, 0x5a, ML);
	s = dev_op(self, IBV_WR_RDMA_READ, local, buf, ML, self->mr[0]);
	EXPECT_WC(IBV_WC_SUCCESS, s);
	EXPECT_BYTES(local, buf, ML,
		     "READ through the old MR of a new mapping at the old address");
}

/*
 * odp: writes through the old MR land in the new mapping only;
 * pinned: after a new mapping at the old address the old MR still reads
 * the moved pages.
 */
static void mremap_move_old_mr_after_remap(STEP_ARGS)
{
	uint8_t *buf = self->map[0].p, *to = self->map[1].p;
	uint8_t *local = self->local;
	int s;

	if (!variant->odp) {
		STEP(mremap_move_new_mapping);
		memset(local, 0x5a, ML);
		s = dev_op(self, IBV_WR_RDMA_READ, local, buf, ML,
			   self->mr[0]);
		EXPECT_WC(IBV_WC_SUCCESS, s);
		EXPECT_BYTES(local, self->want, ML,
			     "pinned: READ through the old MR after a new mapping at the old address");
		return;
	}
	memcpy(local, buf, ML);
	t_fill(local + 3 * T_PAGE, T_PAGE, 25);
	EXPECT_WC(IBV_WC_SUCCESS, dev_op(self, IBV_WR_RDMA_WRITE, local, buf,
					 ML, self->mr[0]));
	EXPECT_BYTES(buf, local, ML,
		     "new mapping after a WRITE through the old MR");
	EXPECT_BYTES(to, self->want, ML,
		     "moved pages after a WRITE through the old MR");
}

static void (*const mremap_move_steps[])(STEP_ARGS) = {
	mremap_move_old_range,
	mremap_move_new_mr,
	mremap_move_old_mr_reads,
	mremap_move_old_mr_after_remap,
};

static void mremap_move(STEP_ARGS, int n)
{
	STEP(run_steps, mremap_move_setup, mremap_move_steps, n);
	mremap_move_steps[n - 1](_metadata, self, variant);
}

/*
 * odp: mremap move: RDMA READ of the old range through the MR:
 * IBV_WC_REM_ACCESS_ERR
 * pinned contrast: after mremap move, the old MR still reads the moved
 * pages
 */
TEST_F(vmops, mremap_move_old_range)
{
	STEP(mremap_move, 1);
}

/* mremap move: an MR on the new range reads the moved data, WRITEs land */
TEST_F(vmops, mremap_move_new_mr)
{
	STEP(mremap_move, 2);
}

/*
 * odp: mremap move: after a new mmap at the old address, the old MR reads
 * the new data
 * pinned contrast: the old MR reads the CPU's writes at the new address
 */
TEST_F(vmops, mremap_move_old_mr_reads)
{
	STEP(mremap_move, 3);
}

/*
 * odp: mremap move: a WRITE through the old MR lands in the new mapping,
 * not in the moved pages
 * pinned contrast: after a new mmap at the old address, the old MR still
 * reads the moved pages
 */
TEST_F(vmops, mremap_move_old_mr_after_remap)
{
	STEP(mremap_move, 4);
}

/*
 * Grow: in place (a hole after the range), then by moving (a mapping
 * blocks the way).  map[0] is the buffer (buf, then where it moved),
 * mr[0] the MR of its first ML bytes, want what it should hold.
 */
static void mremap_grow_setup(STEP_ARGS)
{
	uint8_t *buf, *local = self->local;
	struct ibv_mr *mr;

	ALLOC(want, 4 * ML);
	buf = MAP(0, 2 * ML);
	t_fill(buf, ML, 31);
	memcpy(self->want, buf, ML);
	mr = REG(0, buf, ML);
	PAIR();
	/* the device maps the pages writable */
	memcpy(local, self->want, ML);
	ASSERT_WC(IBV_WC_SUCCESS, dev_op_on(self, &self->p, IBV_WR_RDMA_WRITE,
					    local, buf, ML, mr));
	/* A hole after the range, made last: nothing else can take it. */
	munmap(buf + ML, ML);
	ASSERT_EQ(buf, mremap(buf, ML, 2 * ML, 0)) {
		TH_LOG("mremap grow in place: %s", strerror(errno));
	}
}

static void mremap_grow_old_mr(STEP_ARGS)
{
	uint8_t *buf = self->map[0].p, *want = self->want;
	uint8_t *local = self->local;

	memset(local, 0x5a, ML);
	EXPECT_WC(IBV_WC_SUCCESS, dev_op_on(self, &self->p, IBV_WR_RDMA_READ,
					    local, buf, ML, self->mr[0]));
	EXPECT_BYTES(local, want, ML,
		     "READ through the old MR after growing in place");
	t_fill(local, 2 * T_PAGE, 32);
	memcpy(want + 50 * T_PAGE, local, 2 * T_PAGE);
	EXPECT_WC(IBV_WC_SUCCESS, dev_op_on(self, &self->p, IBV_WR_RDMA_WRITE,
					    local, buf + 50 * T_PAGE,
					    2 * T_PAGE, self->mr[0]));
	EXPECT_BYTES(buf, want, 2 * ML, "CPU after a WRITE through the old MR");
}

/* mr[1]: an MR over the grown range */
static void mremap_grow_new_mr(STEP_ARGS)
{
	uint8_t *buf = self->map[0].p, *want = self->want;
	uint8_t *local = self->local;
	struct ibv_mr *mr2;

	mr2 = REG(1, buf, 2 * ML);
	memset(local, 0x5a, 2 * ML);
	EXPECT_WC(IBV_WC_SUCCESS,
		  dev_op(self, IBV_WR_RDMA_READ, local, buf, 2 * ML, mr2));
	EXPECT_BYTES(local, want, 2 * ML,
		     "READ of the grown range (data, then zeros)");
	t_fill(local, 8 * T_PAGE, 33);
	memcpy(want + ML - 4 * T_PAGE + 1, local, 8 * T_PAGE);
	EXPECT_WC(IBV_WC_SUCCESS,
		  dev_op(self, IBV_WR_RDMA_WRITE, local,
			 buf + ML - 4 * T_PAGE + 1, 8 * T_PAGE, mr2));
	EXPECT_BYTES(buf, want, 2 * ML, "CPU after a WRITE across the old end");
}

/* Grow again, with a mapping (map[1]) in the way: it must move. */
static void mremap_grow_move(STEP_ARGS)
{
	uint8_t *buf = self->map[0].p, *want = self->want, *nb, *blk;
	uint8_t *local = self->local;
	struct ibv_mr *mr3;
	int s;

	blk = mmap(buf + 2 * ML, T_PAGE, PROT_NONE,
		   MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE, -1, 0);
	if (blk != MAP_FAILED)
		self->map[1] = (struct region){ blk, T_PAGE };
	/* EEXIST: something (a QP's queue) is there already: blocked */
	if (blk != MAP_FAILED || errno != EEXIST) {
		ASSERT_EQ(buf + 2 * ML, blk) {
			TH_LOG("cannot block the range after the buffer: %s",
			       strerror(errno));
		}
	}
	nb = mremap(buf, 2 * ML, 4 * ML, MREMAP_MAYMOVE);
	if (nb != MAP_FAILED)
		self->map[0] = (struct region){ nb, 4 * ML };
	ASSERT_TRUE(nb != MAP_FAILED && nb != buf) {
		TH_LOG("mremap grow with move: %s",
		       nb == buf ? "did not move" : strerror(errno));
	}
	memset(local, 0x5a, 2 * ML);
	s = dev_op(self, IBV_WR_RDMA_READ, local, buf, 2 * ML, self->mr[1]);
	if (variant->odp) {
		EXPECT_WC(IBV_WC_REM_ACCESS_ERR, s);
		EXPECT_FILLED(local, 0x5a, 2 * ML,
			      "local buffer after the failed READ");
	} else {
		EXPECT_WC(IBV_WC_SUCCESS, s);
		EXPECT_BYTES(local, want, 2 * ML,
			     "pinned: READ of the old range after the move");
	}
	mr3 = REG(2, nb, 4 * ML);
	memset(local, 0x5a, 4 * ML);
	EXPECT_WC(IBV_WC_SUCCESS,
		  dev_op(self, IBV_WR_RDMA_READ, local, nb, 4 * ML, mr3));
	EXPECT_BYTES(local, want, 4 * ML, "READ of the moved and grown range");
	t_fill(local, 4 * ML - 10, 34);
	memcpy(want + 5, local, 4 * ML - 10);
	EXPECT_WC(IBV_WC_SUCCESS,
		  dev_op(self, IBV_WR_RDMA_WRITE, local, nb + 5, 4 * ML - 10,
			 mr3));
	EXPECT_BYTES(nb, want, 4 * ML, "CPU after a WRITE of the moved range");
}

static void (*const mremap_grow_steps[])(STEP_ARGS) = {
	mremap_grow_old_mr,
	mremap_grow_new_mr,
	mremap_grow_move,
};

static void mremap_grow(STEP_ARGS, int n)
{
	STEP(run_steps, mremap_grow_setup, mremap_grow_steps, n);
	mremap_grow_steps[n - 1](_metadata, self, variant);
}

/* mremap grow in place: the MR keeps its data, reads and writes work */
TEST_F(vmops, mremap_grow_in_place_old_mr)
{
	STEP(mremap_grow, 1);
}

/*
 * mremap grow in place: an MR over the grown range reads data then zeros,
 * WRITEs land
 */
TEST_F(vmops, mremap_grow_in_place_new_mr)
{
	STEP(mremap_grow, 2);
}

/*
 * odp: mremap grow with move: the old MR gets IBV_WC_REM_ACCESS_ERR, an
 * MR on the new range works
 * pinned contrast: mremap grow with move: the old MR still reads the
 * moved pages
 */
TEST_F(vmops, mremap_grow_with_move)
{
	STEP(mremap_grow, 3);
}

/* ---- a move while the device streams -------------------------------------- */

#define SL	(64 * T_KIB)

/* Post, wait; if nothing comes in time, say more and wait once more. */
static int stream_op(struct stream *st, enum ibv_wr_opcode op, void *l,
		     void *r, uint32_t len, uint32_t rkey)
{
	struct t_rc_pair *p = &st->p;
	struct ibv_wc wc;

	if (t_post_rdma(p->qp[0], op, 1, l, len, st->lkey, (uintptr_t)r, rkey))
		return -1;
	if (t_poll(p->scq[0], 1, &wc) == 1)
		return wc.status;
	t_diag("the %s after the move is stuck", op == IBV_WR_RDMA_READ ?
	       "READ" : "WRITE");
	qp_diag(st->dev, p);
	if (t_poll(p->scq[0], 1, &wc) == 1) {
		t_diag("... it completed %d ms later: %s", t_timeout_ms,
		       ibv_wc_status_str(wc.status));
		qp_diag(st->dev, p);
	}
	return -1;
}

static void *stream_fn(void *arg)
{
	struct stream *st = arg;
	uint8_t *wsrc = st->local, *rdst = st->local + SL;
	int seed, s;

	st->last_ok_seed = -1;
	st->fail_seed = -1;
	st->fail_status = IBV_WC_SUCCESS;
	for (seed = 100; !__atomic_load_n(&st->stop, __ATOMIC_ACQUIRE); seed++) {
		t_fill(wsrc, SL, seed);
		s = stream_op(st, IBV_WR_RDMA_WRITE, wsrc, st->buf, SL,
			      st->mr->rkey);
		if (s) {
			st->fail_seed = seed;
			st->fail_status = s;
			break;
		}
		st->writes++;
		st->last_ok_seed = seed;
		memset(rdst, 0x5a, SL);
		s = stream_op(st, IBV_WR_RDMA_READ, rdst, st->buf,
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

/* One run: move the buffer (map[0]) to map[1] while the stream runs. */
static void move_under_traffic(STEP_ARGS, uint32_t rlen)
{
	struct stream *st = &self->stream;
	struct timespec nap = { 0, 100 * 1000 * 1000 };
	uint8_t *to, *a, *b;
	double t0;
	long before;
	size_t i;

	ALLOC(a, SL);
	ALLOC(b, SL);
	a = self->a;
	b = self->b;
	*st = (struct stream){
		.dev = &self->dev,
		.local = self->local,
		.lkey = self->lmr->lkey,
		.rlen = rlen,
	};
	st->buf = MAP(0, SL);
	to = mmap(NULL, SL, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	ASSERT_NE(MAP_FAILED, to);
	self->map[1] = (struct region){ to, SL };
	st->mr = REG(0, st->buf, SL);
	ASSERT_EQ(0, t_rc_pair_create(&self->dev, &st->p, NULL));
	ASSERT_EQ(0, pthread_create(&self->thr, NULL, stream_fn, st));
	self->have_thr = true;
	self->stop = &st->stop;
	/* a few rounds first (a busy TCG host can take a while) */
	for (t0 = t_now(); t_now() - t0 < 10 &&
	     __atomic_load_n(&st->reads, __ATOMIC_RELAXED) < 3;)
		nanosleep(&nap, NULL);
	before = __atomic_load_n(&st->writes, __ATOMIC_RELAXED);
	ASSERT_EQ(to, mremap(st->buf, SL, SL, MREMAP_MAYMOVE | MREMAP_FIXED,
			     to)) {
		TH_LOG("mremap: %s", strerror(errno));
	}
	nanosleep(&nap, NULL);
	if (!variant->odp) {
		nanosleep(&nap, NULL);
		__atomic_store_n(&st->stop, 1, __ATOMIC_RELEASE);
	}
	pthread_join(self->thr, NULL);
	self->have_thr = false;
	t_rc_pair_destroy(&st->p);
	t_diag("%ld WRITEs (%ld before the move) and %ld READs; the stream ended with %s",
	       st->writes, before, st->reads, t_wc_status_str(st->fail_status));
	EXPECT_FALSE(st->bad);
	EXPECT_LE(3, before);
	EXPECT_LE(0, st->last_ok_seed);
	if (st->last_ok_seed >= 0) {
		/*
		 * The moved pages hold the last successful WRITE, where a
		 * WRITE cut by the move did not get first.
		 */
		t_fill(a, SL, st->last_ok_seed);
		if (st->fail_seed >= 0)
			t_fill(b, SL, st->fail_seed);
		else
			memcpy(b, a, SL);
		for (i = 0; i < SL; i++)
			if (to[i] != a[i] && to[i] != b[i])
				break;
		EXPECT_EQ(SL, i) {
			TH_LOG("moved byte %zu is 0x%02x: neither WRITE %d (0x%02x) nor %d (0x%02x)",
			       i, to[i], st->last_ok_seed, a[i],
			       st->fail_seed, b[i]);
		}
	}
	if (variant->odp) {
		EXPECT_WC(IBV_WC_REM_ACCESS_ERR, st->fail_status);
	} else {
		EXPECT_WC(IBV_WC_SUCCESS, st->fail_status);
		EXPECT_LT(before, st->writes);
		EXPECT_BYTES(to, a, SL, "pinned: the moved pages");
	}
	test_free(self);
}

/*
 * READs of one packet (4 KiB): the responder fails on the first packet of
 * a READ, or not at all.
 *
 * odp: mremap move under a WRITE/READ stream: every 4 KiB READ is what was
 * written, the stream ends with IBV_WC_REM_ACCESS_ERR, the moved pages
 * hold the WRITEs (3 runs)
 * pinned contrast: mremap move under a WRITE/READ stream: the stream never
 * fails, its WRITEs keep landing in the moved pages (3 runs)
 *
 * 2 s under TCG; each run may wait 10 s for the stream to start: 60 s.
 */
TEST_F_TIMEOUT(vmops, mremap_move_under_stream, 60)
{
	int i;

	for (i = 0; i < 3; i++)
		STEP(move_under_traffic, T_PAGE);
}

/*
 * READs of 16 packets: the move can come after the responder sent the
 * first response packets.  It must NAK the packet the requester expects
 * next; before the patch "Accept a NAK in the middle of an RDMA READ
 * response" it NAKed with the READ's first PSN, the requester dropped that
 * as stale and, with retry_cnt 7 (infinite in rxe), retried forever: the
 * READ never completed (1 run in 3 here).
 *
 * mremap move under a stream of 64 KiB READs: every READ completes, the
 * stream ends with IBV_WC_REM_ACCESS_ERR (pinned: the stream never fails)
 * (3 runs; 2.5 s under TCG, as above: 60 s)
 */
TEST_F_TIMEOUT(vmops, mremap_move_under_stream_64k_reads, 60)
{
	int i;

	for (i = 0; i < 3; i++)
		STEP(move_under_traffic, SL);
}

ODP_HARNESS_MAIN("ODP MRs follow MADV_FREE and mremap")
