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
 * Pinned MRs (--pinned) do not follow MADV_DONTNEED: the device keeps the
 * old pages while the CPU gets new zero pages.  The pinned run asserts
 * that incoherence (the device reads the old data, the CPU reads zeros, and
 * the two no longer see each other's writes) as the contrast to ODP.
 */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <sys/mman.h>

#include "odptest.h"

#define LEN	(4 * T_MIB)

static struct t_dev dev;

struct ctx {
	uint8_t *buf, *local, *old;
	struct ibv_mr *mr, *lmr;
	struct t_rc_pair p;
};

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

/* A registered buffer filled by the CPU with @seed (copy in c->old). */
static int ctx_init(struct ctx *c, uint64_t seed)
{
	memset(c, 0, sizeof(*c));
	c->buf = t_mmap(LEN);
	c->local = t_mmap(LEN);
	c->old = malloc(LEN);
	if (!c->buf || !c->local || !c->old)
		goto err;
	c->mr = t_reg_mr(&dev, c->buf, LEN, T_ACCESS_ALL);
	c->lmr = t_reg_mr(&dev, c->local, LEN, T_ACCESS_ALL);
	if (!c->mr || !c->lmr)
		goto err;
	if (t_rc_pair_create(&dev, &c->p, NULL))
		goto err;
	t_fill(c->buf, LEN, seed);
	memcpy(c->old, c->buf, LEN);
	return 0;
err:
	ctx_free(c);
	return -1;
}

/* RDMA READ the whole buffer into c->local (poisoned first). */
static bool dev_read(struct ctx *c)
{
	int s;

	memset(c->local, 0x5a, LEN);
	s = t_rdma_sync(&c->p, IBV_WR_RDMA_READ, c->local, LEN, c->lmr->lkey,
			(uintptr_t)c->buf, c->mr->rkey);
	if (s)
		t_diag("RDMA READ of %lu bytes: %s", LEN, t_wc_status_str(s));
	return s == IBV_WC_SUCCESS;
}

static bool dontneed(void *p, size_t len)
{
	if (madvise(p, len, MADV_DONTNEED)) {
		t_diag("madvise(MADV_DONTNEED): %s", strerror(errno));
		return false;
	}
	return true;
}

static bool first_read(void)
{
	struct ctx c;
	bool ok;

	if (ctx_init(&c, 1))
		return false;
	ok = dev_read(&c) && t_check(c.local, c.old, LEN, "READ");
	ctx_free(&c);
	return ok;
}

static bool whole(void)
{
	struct ctx c;
	bool ok;

	if (ctx_init(&c, 2))
		return false;
	ok = dev_read(&c) && t_check(c.local, c.old, LEN, "first READ");
	ok = dontneed(c.buf, LEN) && ok;
	ok = dev_read(&c) && ok;
	if (t_odp) {
		ok = t_check_byte(c.local, 0, LEN, "READ after MADV_DONTNEED") &&
		     ok;
	} else {
		ok = t_check(c.local, c.old, LEN,
			     "pinned: device READ after MADV_DONTNEED") && ok;
		ok = t_check_byte(c.buf, 0, LEN,
				  "pinned: CPU after MADV_DONTNEED") && ok;
	}
	ctx_free(&c);
	return ok;
}

static bool partial(void)
{
	size_t off = 3 * T_PAGE, len = 130 * T_PAGE;
	uint8_t *want;
	struct ctx c;
	bool ok;

	want = malloc(LEN);
	if (!want || ctx_init(&c, 3)) {
		free(want);
		return false;
	}
	ok = dev_read(&c) && t_check(c.local, c.old, LEN, "first READ");
	ok = dontneed(c.buf + off, len) && ok;
	memcpy(want, c.old, LEN);
	if (t_odp)
		memset(want + off, 0, len);
	ok = dev_read(&c) && ok;
	ok = t_check(c.local, want, LEN, "READ after a partial MADV_DONTNEED") &&
	     ok;
	ctx_free(&c);
	free(want);
	return ok;
}

static bool cpu_refill(void)
{
	uint8_t *fresh;
	struct ctx c;
	bool ok;

	fresh = malloc(LEN);
	if (!fresh || ctx_init(&c, 4)) {
		free(fresh);
		return false;
	}
	ok = dev_read(&c) && t_check(c.local, c.old, LEN, "first READ");
	ok = dontneed(c.buf, LEN) && ok;
	t_fill(c.buf, LEN, 40);
	memcpy(fresh, c.buf, LEN);
	ok = dev_read(&c) && ok;
	ok = t_check(c.local, t_odp ? fresh : c.old, LEN,
		     t_odp ? "READ of data the CPU wrote after MADV_DONTNEED" :
		     "pinned: device READ after the CPU rewrote") && ok;
	ctx_free(&c);
	free(fresh);
	return ok;
}

static bool remote_write(void)
{
	size_t off = T_PAGE / 2, len = LEN - T_PAGE;
	struct ctx c;
	uint8_t *want;
	bool ok;
	int s;

	want = calloc(1, LEN);
	if (!want || ctx_init(&c, 5)) {
		free(want);
		return false;
	}
	ok = dev_read(&c) && t_check(c.local, c.old, LEN, "first READ");
	ok = dontneed(c.buf, LEN) && ok;
	t_fill(c.local, len, 50);
	if (t_odp)
		memcpy(want + off, c.local, len);
	s = t_rdma_sync(&c.p, IBV_WR_RDMA_WRITE, c.local, len, c.lmr->lkey,
			(uintptr_t)c.buf + off, c.mr->rkey);
	if (s)
		t_diag("RDMA WRITE after MADV_DONTNEED: %s", t_wc_status_str(s));
	ok = s == IBV_WC_SUCCESS && ok;
	ok = t_check(c.buf, want, LEN, t_odp ?
		     "CPU view of a WRITE after MADV_DONTNEED" :
		     "pinned: CPU view after the device wrote") && ok;
	ctx_free(&c);
	free(want);
	return ok;
}

static bool cycles(int n)
{
	struct ctx c;
	bool ok = true;
	int i;

	if (ctx_init(&c, 100))
		return false;
	for (i = 0; ok && i < n; i++) {
		char what[64];

		if (i)
			t_fill(c.buf, LEN, 100 + i);
		snprintf(what, sizeof(what), "cycle %d: READ", i);
		ok = dev_read(&c) &&
		     t_check(c.local, t_odp ? c.buf : c.old, LEN, what);
		ok = ok && dontneed(c.buf, LEN);
		snprintf(what, sizeof(what), "cycle %d: READ after DONTNEED", i);
		ok = ok && dev_read(&c);
		if (ok && t_odp)
			ok = t_check_byte(c.local, 0, LEN, what);
		else if (ok)
			ok = t_check(c.local, c.old, LEN, what);
	}
	ctx_free(&c);
	return ok;
}

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
 * zero: never the content of a page the process no longer has).
 */
static bool race(bool write)
{
	struct racer r = { 0 };
	uint8_t *pat;
	double t0;
	pthread_t thr;
	struct ctx c;
	bool ok = true;
	char what[64];
	int i, s = 0;

	pat = malloc(LEN);
	if (!pat || ctx_init(&c, 7)) {
		free(pat);
		return false;
	}
	memcpy(pat, c.old, LEN);
	if (write) {
		memset(c.buf, 0, LEN);
		memcpy(c.local, pat, LEN);
	}
	r.buf = c.buf;
	r.refill = write ? NULL : pat;
	t0 = t_now();
	if (pthread_create(&thr, NULL, racer_fn, &r)) {
		ctx_free(&c);
		free(pat);
		return false;
	}
	for (i = 0; ok && i < RACE_PASSES; i++) {
		snprintf(what, sizeof(what), "pass %d", i);
		if (!write)
			memset(c.local, 0x5a, LEN);
		s = race_op(&c, &r, write ? IBV_WR_RDMA_WRITE : IBV_WR_RDMA_READ);
		if (s)
			t_diag("%s: %s", what, t_wc_status_str(s));
		ok = s == IBV_WC_SUCCESS &&
		     data_or_zero(write ? c.buf : c.local, pat, LEN, what);
	}
	__atomic_store_n(&r.stop, 1, __ATOMIC_RELEASE);
	pthread_join(thr, NULL);
	t0 = t_now() - t0;
	t_diag("%d passes in %.1f s against %ld drops of 64 KiB (%.0f/s)", i,
	       t0, r.drops, r.drops / t0);
	if (ok && write) {
		s = t_rdma_sync(&c.p, IBV_WR_RDMA_WRITE, c.local, LEN,
				c.lmr->lkey, (uintptr_t)c.buf, c.mr->rkey);
		ok = s == IBV_WC_SUCCESS &&
		     t_check(c.buf, pat, LEN, "quiet WRITE after the race");
	}
	ctx_free(&c);
	free(pat);
	return ok;
}

int main(int argc, char **argv)
{
	t_init(argc, argv, "ODP MRs follow madvise(MADV_DONTNEED)");
	t_plan(8);
	if (t_dev_open(&dev))
		t_bail("cannot open the RDMA device");

	t_result(first_read(), "RDMA READ of a CPU-filled 4 MiB %s MR", t_mode());
	if (t_odp) {
		t_result(whole(), "after MADV_DONTNEED, RDMA READ returns zeros, never the old data");
		t_result(partial(), "after MADV_DONTNEED of 130 middle pages, READ gives zeros there and the old data elsewhere");
		t_result(cpu_refill(), "after MADV_DONTNEED and a CPU rewrite, READ returns the new data");
		t_result(remote_write(), "after MADV_DONTNEED, a remote WRITE is what the CPU sees");
		t_result(cycles(8), "8 cycles of fill, READ, MADV_DONTNEED, READ zeros");
		t_result(race(true), "MADV_DONTNEED racing RDMA WRITEs: the CPU sees the data or zeros, a last WRITE lands whole");
		t_result(race(false), "MADV_DONTNEED and CPU rewrites racing RDMA READs: every byte read is the data or zero");
	} else {
		t_result(whole(), "pinned contrast: after MADV_DONTNEED the device still reads the old data, the CPU zeros");
		t_result(partial(), "pinned contrast: after a partial MADV_DONTNEED the device reads the old data everywhere");
		t_result(cpu_refill(), "pinned contrast: after MADV_DONTNEED the device does not see what the CPU writes");
		t_result(remote_write(), "pinned contrast: after MADV_DONTNEED the CPU does not see what the device writes");
		t_result(cycles(8), "pinned contrast: 8 cycles, the device always reads the first data");
		t_skip("pinned MRs do not follow MADV_DONTNEED (see above)",
		       "MADV_DONTNEED racing RDMA WRITEs");
		t_skip("pinned MRs do not follow MADV_DONTNEED (see above)",
		       "MADV_DONTNEED racing RDMA READs");
	}
	t_dev_close(&dev);
	return t_finish();
}
