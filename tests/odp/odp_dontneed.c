// SPDX-License-Identifier: GPL-2.0 OR Linux-OpenIB
/*
 * odp_dontneed: an ODP MR follows MADV_DONTNEED.
 *
 * The CPU fills a buffer under an ODP MR, the device reads it (so its pages
 * are mapped for the device), then madvise(MADV_DONTNEED) drops them.  The
 * next RDMA READ must return zeros, never the old data.  Variants: only the
 * middle pages dropped; the CPU writing new data after the drop; a remote
 * WRITE after the drop (the CPU must see it); many drop/refill cycles.
 * The 4 MiB buffers are big enough for transparent huge pages, which a
 * partial drop splits.
 *
 * Then MADV_DONTNEED of random chunks races streams of RDMA WRITEs and
 * READs: every byte the CPU or the device sees must be the data or zero.
 *
 * Pinned MRs (the pinned variant) do not follow MADV_DONTNEED: the device
 * keeps the old pages while the CPU gets new zero pages.  The pinned tests
 * assert that incoherence (the device reads the old data, the CPU reads
 * zeros, and the two no longer see each other's writes) as the contrast to
 * ODP; the two races skip there.
 */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <sys/mman.h>

#include "odpharness.h"

#define LEN	(4 * T_MIB)

struct ctx {
	uint8_t *buf, *local, *old;
	struct ibv_mr *mr, *lmr;
	struct t_rc_pair p;
};

/* ---- MADV_DONTNEED racing the device ------------------------------------- */

#define RACE_PASSES	4
#define RACE_CHUNK	(64 * T_KIB)

struct racer {
	uint8_t *buf;
	const uint8_t *refill;	/* rewrite dropped chunks with this, or NULL */
	int stop;
	long drops;
};

/*
 * The device and a test's buffers, MRs and QP pair (ctx), an expected
 * image, and the racer thread of the races: teardown stops the racer
 * first, then frees whatever the test got to.
 */
FIXTURE(dontneed) {
	struct t_dev dev;
	struct ctx c;
	uint8_t *want;
	struct racer r;
	pthread_t thr;
	bool have_thr;
};

ODP_VARIANTS(dontneed);

FIXTURE_SETUP(dontneed)
{
	t_variant();
	ASSERT_EQ(0, t_dev_open(&self->dev));
}

static void ctx_free(struct ctx *c)
{
	t_rc_pair_destroy(&c->p);
	t_dereg_mr(c->mr);
	t_dereg_mr(c->lmr);
	t_munmap(c->buf, LEN);
	t_munmap(c->local, LEN);
	free(c->old);
	memset(c, 0, sizeof(*c));
}

FIXTURE_TEARDOWN(dontneed)
{
	if (self->have_thr) {
		__atomic_store_n(&self->r.stop, 1, __ATOMIC_RELEASE);
		pthread_join(self->thr, NULL);
	}
	ctx_free(&self->c);
	free(self->want);
	t_dev_close(&self->dev);
}

/*
 * A registered buffer filled by the CPU with @seed (copy in c->old), a
 * registered local buffer and a QP pair; and, if @want, an expected image
 * of LEN bytes (zeroed) in self->want.
 */
static void ctx_init(struct __test_metadata *_metadata,
		     FIXTURE_DATA(dontneed) *self, uint64_t seed, bool want)
{
	struct ctx *c = &self->c;

	if (want) {
		self->want = calloc(1, LEN);
		ASSERT_NE(NULL, self->want);
	}
	c->buf = t_mmap(LEN);
	ASSERT_NE(NULL, c->buf);
	c->local = t_mmap(LEN);
	ASSERT_NE(NULL, c->local);
	c->old = malloc(LEN);
	ASSERT_NE(NULL, c->old);
	c->mr = t_reg_mr(&self->dev, c->buf, LEN, T_ACCESS_ALL);
	ASSERT_NE(NULL, c->mr);
	c->lmr = t_reg_mr(&self->dev, c->local, LEN, T_ACCESS_ALL);
	ASSERT_NE(NULL, c->lmr);
	ASSERT_EQ(0, t_rc_pair_create(&self->dev, &c->p, NULL));
	t_fill(c->buf, LEN, seed);
	memcpy(c->old, c->buf, LEN);
}

/* RDMA READ the whole buffer into c->local (poisoned first): its status. */
static int dev_read(struct ctx *c)
{
	int s;

	memset(c->local, 0x5a, LEN);
	s = t_rdma_sync(&c->p, IBV_WR_RDMA_READ, c->local, LEN, c->lmr->lkey,
			(uintptr_t)c->buf, c->mr->rkey);
	if (s)
		t_diag("RDMA READ of %lu bytes: %s", LEN, t_wc_status_str(s));
	return s;
}

static bool dontneed(void *p, size_t len)
{
	if (madvise(p, len, MADV_DONTNEED)) {
		t_diag("madvise(MADV_DONTNEED): %s", strerror(errno));
		return false;
	}
	return true;
}

/* The device's first READ of the CPU's data. */
#define FIRST_READ(c, what) do {					\
	EXPECT_WC(IBV_WC_SUCCESS, dev_read(c));				\
	EXPECT_BYTES((c)->local, (c)->old, LEN, what);			\
} while (0)

/* RDMA READ of a CPU-filled 4 MiB MR (odp / pinned) */
TEST_F(dontneed, first_read)
{
	ctx_init(_metadata, self, 1, false);
	FIRST_READ(&self->c, "READ");
}

/*
 * odp: after MADV_DONTNEED, RDMA READ returns zeros, never the old data
 * pinned contrast: after MADV_DONTNEED the device still reads the old
 * data, the CPU zeros
 */
TEST_F(dontneed, whole_reads_zeros)
{
	struct ctx *c = &self->c;

	ctx_init(_metadata, self, 2, false);
	FIRST_READ(c, "first READ");
	ASSERT_TRUE(dontneed(c->buf, LEN));
	EXPECT_WC(IBV_WC_SUCCESS, dev_read(c));
	if (variant->odp) {
		EXPECT_FILLED(c->local, 0, LEN, "READ after MADV_DONTNEED");
	} else {
		EXPECT_BYTES(c->local, c->old, LEN,
			     "pinned: device READ after MADV_DONTNEED");
		EXPECT_FILLED(c->buf, 0, LEN,
			      "pinned: CPU after MADV_DONTNEED");
	}
}

/*
 * odp: after MADV_DONTNEED of 130 middle pages, READ gives zeros there and
 * the old data elsewhere
 * pinned contrast: after a partial MADV_DONTNEED the device reads the old
 * data everywhere
 */
TEST_F(dontneed, partial_reads_zeros_there)
{
	size_t off = 3 * T_PAGE, len = 130 * T_PAGE;
	struct ctx *c = &self->c;

	ctx_init(_metadata, self, 3, true);
	FIRST_READ(c, "first READ");
	ASSERT_TRUE(dontneed(c->buf + off, len));
	memcpy(self->want, c->old, LEN);
	if (variant->odp)
		memset(self->want + off, 0, len);
	EXPECT_WC(IBV_WC_SUCCESS, dev_read(c));
	EXPECT_BYTES(c->local, self->want, LEN,
		     "READ after a partial MADV_DONTNEED");
}

/*
 * odp: after MADV_DONTNEED and a CPU rewrite, READ returns the new data
 * pinned contrast: after MADV_DONTNEED the device does not see what the
 * CPU writes
 */
TEST_F(dontneed, cpu_refill_read)
{
	struct ctx *c = &self->c;

	ctx_init(_metadata, self, 4, true);
	FIRST_READ(c, "first READ");
	ASSERT_TRUE(dontneed(c->buf, LEN));
	t_fill(c->buf, LEN, 40);
	memcpy(self->want, c->buf, LEN);
	EXPECT_WC(IBV_WC_SUCCESS, dev_read(c));
	EXPECT_BYTES(c->local, variant->odp ? self->want : c->old, LEN,
		     variant->odp ?
		     "READ of data the CPU wrote after MADV_DONTNEED" :
		     "pinned: device READ after the CPU rewrote");
}

/*
 * odp: after MADV_DONTNEED, a remote WRITE is what the CPU sees
 * pinned contrast: after MADV_DONTNEED the CPU does not see what the
 * device writes
 */
TEST_F(dontneed, remote_write_seen_by_cpu)
{
	size_t off = T_PAGE / 2, len = LEN - T_PAGE;
	struct ctx *c = &self->c;
	int s;

	ctx_init(_metadata, self, 5, true);
	FIRST_READ(c, "first READ");
	ASSERT_TRUE(dontneed(c->buf, LEN));
	t_fill(c->local, len, 50);
	if (variant->odp)
		memcpy(self->want + off, c->local, len);
	s = t_rdma_sync(&c->p, IBV_WR_RDMA_WRITE, c->local, len, c->lmr->lkey,
			(uintptr_t)c->buf + off, c->mr->rkey);
	if (s)
		t_diag("RDMA WRITE after MADV_DONTNEED: %s",
		       t_wc_status_str(s));
	EXPECT_WC(IBV_WC_SUCCESS, s);
	EXPECT_BYTES(c->buf, self->want, LEN, variant->odp ?
		     "CPU view of a WRITE after MADV_DONTNEED" :
		     "pinned: CPU view after the device wrote");
}

/*
 * odp: 8 cycles of fill, READ, MADV_DONTNEED, READ zeros
 * pinned contrast: 8 cycles, the device always reads the first data
 * (7 s under TCG: 60 s)
 */
TEST_F_TIMEOUT(dontneed, cycles, 60)
{
	struct ctx *c = &self->c;
	char what[64];
	int i;

	ctx_init(_metadata, self, 100, false);
	for (i = 0; i < 8; i++) {
		if (i)
			t_fill(c->buf, LEN, 100 + i);
		snprintf(what, sizeof(what), "cycle %d: READ", i);
		ASSERT_WC(IBV_WC_SUCCESS, dev_read(c));
		ASSERT_BYTES(c->local, variant->odp ? c->buf : c->old, LEN,
			     what);
		ASSERT_TRUE(dontneed(c->buf, LEN));
		snprintf(what, sizeof(what), "cycle %d: READ after DONTNEED",
			 i);
		ASSERT_WC(IBV_WC_SUCCESS, dev_read(c));
		if (variant->odp) {
			ASSERT_TRUE(t_check_byte(c->local, 0, LEN, what));
		} else {
			ASSERT_BYTES(c->local, c->old, LEN, what);
		}
	}
}

/*
 * Drop random 64 KiB chunks (and maybe write them again) until told, one
 * every $T_RACE_SLEEP_US (default 2000) microseconds.  Without a pause
 * (T_RACE_SLEEP_US=0) the invalidations come so fast that a fault, which
 * must see no invalidation of the MR while it runs, rarely completes.
 */
static void *racer_fn(void *arg)
{
	const char *env = getenv("T_RACE_SLEEP_US");
	struct timespec nap = { 0, 2000 * 1000 };
	struct racer *r = arg;
	uint64_t seed = 99;
	size_t off;

	if (env)
		nap.tv_nsec = atol(env) % 1000000 * 1000;
	while (!__atomic_load_n(&r->stop, __ATOMIC_ACQUIRE)) {
		off = t_rand64(&seed) % (LEN / RACE_CHUNK) * RACE_CHUNK;
		madvise(r->buf + off, RACE_CHUNK, MADV_DONTNEED);
		if (r->refill)
			memcpy(r->buf + off, r->refill + off, RACE_CHUNK);
		r->drops++;
		if (nap.tv_nsec)
			nanosleep(&nap, NULL);
	}
	return NULL;
}

/*
 * One RDMA op of the whole buffer.  If it does not complete in time, stop
 * the racer and wait once more: does the QP recover once the invalidations
 * stop, or is it stuck?
 */
static int race_op(struct ctx *c, struct racer *r, enum ibv_wr_opcode op)
{
	struct ibv_wc wc;
	double t0;

	if (t_post_rdma(c->p.qp[0], op, 1, c->local, LEN, c->lmr->lkey,
			(uintptr_t)c->buf, c->mr->rkey))
		return -1;
	if (t_poll(c->p.scq[0], 1, &wc) == 1)
		return wc.status;
	__atomic_store_n(&r->stop, 1, __ATOMIC_RELEASE);
	t0 = t_now();
	if (t_poll(c->p.scq[0], 1, &wc) == 1) {
		t_diag("... the %s completed %.3f s after the racer stopped: %s",
		       op == IBV_WR_RDMA_READ ? "READ" : "WRITE",
		       t_now() - t0, ibv_wc_status_str(wc.status));
	} else {
		t_diag("... and it did not complete either in the %d ms after the racer stopped: the QP is stuck",
		       t_timeout_ms);
	}
	return -1;
}

/* Every byte is either what @want says or zero; else say where. */
static bool data_or_zero(const uint8_t *got, const uint8_t *want, size_t len,
			 const char *what)
{
	size_t i;

	for (i = 0; i < len; i++) {
		if (got[i] == want[i] || !got[i])
			continue;
		t_diag("%s: byte %zu (0x%zx) is 0x%02x: neither the data (0x%02x) nor zero",
		       what, i, i, got[i], want[i]);
		return false;
	}
	return true;
}

/*
 * @write: the device WRITEs the pattern again and again while chunks are
 * dropped (the CPU must see the data or zeros, never anything else, and a
 * last quiet WRITE must land whole); else the device READs while chunks are
 * dropped and written again by the CPU (each byte read is the data or
 * zero: never the content of a page the process no longer has).  The
 * pattern is c->old.
 */
static void race(struct __test_metadata *_metadata,
		 FIXTURE_DATA(dontneed) *self, bool write)
{
	struct racer *r = &self->r;
	struct ctx *c = &self->c;
	char what[64];
	double t0;
	int i, s;

	ctx_init(_metadata, self, 7, false);
	if (write) {
		memset(c->buf, 0, LEN);
		memcpy(c->local, c->old, LEN);
	}
	r->buf = c->buf;
	r->refill = write ? NULL : c->old;
	t0 = t_now();
	ASSERT_EQ(0, pthread_create(&self->thr, NULL, racer_fn, r));
	self->have_thr = true;
	for (i = 0; i < RACE_PASSES; i++) {
		snprintf(what, sizeof(what), "pass %d", i);
		if (!write)
			memset(c->local, 0x5a, LEN);
		s = race_op(c, r, write ? IBV_WR_RDMA_WRITE :
			    IBV_WR_RDMA_READ);
		if (s)
			t_diag("%s: %s", what, t_wc_status_str(s));
		EXPECT_WC(IBV_WC_SUCCESS, s);
		if (s == IBV_WC_SUCCESS) {
			EXPECT_TRUE(data_or_zero(write ? c->buf : c->local,
						 c->old, LEN, what));
		}
		if (!_metadata->passed) {
			i++;
			break;
		}
	}
	__atomic_store_n(&r->stop, 1, __ATOMIC_RELEASE);
	pthread_join(self->thr, NULL);
	self->have_thr = false;
	t0 = t_now() - t0;
	t_diag("%d passes in %.1f s against %ld drops of 64 KiB (%.0f/s)", i,
	       t0, r->drops, r->drops / t0);
	if (write && _metadata->passed) {
		s = t_rdma_sync(&c->p, IBV_WR_RDMA_WRITE, c->local, LEN,
				c->lmr->lkey, (uintptr_t)c->buf, c->mr->rkey);
		EXPECT_WC(IBV_WC_SUCCESS, s);
		if (s == IBV_WC_SUCCESS) {
			EXPECT_BYTES(c->buf, c->old, LEN,
				     "quiet WRITE after the race");
		}
	}
}

/*
 * MADV_DONTNEED racing RDMA WRITEs: the CPU sees the data or zeros, a last
 * WRITE lands whole
 * (9 s under TCG, a pass may take up to a completion timeout: 60 s)
 */
TEST_F_TIMEOUT(dontneed, race_writes, 60)
{
	if (!variant->odp)
		SKIP(return, "pinned MRs do not follow MADV_DONTNEED (see above)");
	race(_metadata, self, true);
}

/*
 * MADV_DONTNEED and CPU rewrites racing RDMA READs: every byte read is the
 * data or zero (4 s under TCG, as race_writes: 60 s)
 */
TEST_F_TIMEOUT(dontneed, race_reads, 60)
{
	if (!variant->odp)
		SKIP(return, "pinned MRs do not follow MADV_DONTNEED (see above)");
	race(_metadata, self, false);
}

ODP_HARNESS_MAIN("ODP MRs follow madvise(MADV_DONTNEED)")
