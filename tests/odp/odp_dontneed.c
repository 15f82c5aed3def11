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
 * Pinned MRs (--pinned) do not follow MADV_DONTNEED: the device keeps the
 * old pages while the CPU gets new zero pages.  The pinned run asserts
 * that incoherence (the device reads the old data, the CPU reads zeros, and
 * the two no longer see each other's writes) as the contrast to ODP.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
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

int main(int argc, char **argv)
{
	t_init(argc, argv, "ODP MRs follow madvise(MADV_DONTNEED)");
	t_plan(6);
	if (t_dev_open(&dev))
		t_bail("cannot open the RDMA device");

	t_result(first_read(), "RDMA READ of a CPU-filled 4 MiB %s MR", t_mode());
	if (t_odp) {
		t_result(whole(), "after MADV_DONTNEED, RDMA READ returns zeros, never the old data");
		t_result(partial(), "after MADV_DONTNEED of 130 middle pages, READ gives zeros there and the old data elsewhere");
		t_result(cpu_refill(), "after MADV_DONTNEED and a CPU rewrite, READ returns the new data");
		t_result(remote_write(), "after MADV_DONTNEED, a remote WRITE is what the CPU sees");
		t_result(cycles(8), "8 cycles of fill, READ, MADV_DONTNEED, READ zeros");
	} else {
		t_result(whole(), "pinned contrast: after MADV_DONTNEED the device still reads the old data, the CPU zeros");
		t_result(partial(), "pinned contrast: after a partial MADV_DONTNEED the device reads the old data everywhere");
		t_result(cpu_refill(), "pinned contrast: after MADV_DONTNEED the device does not see what the CPU writes");
		t_result(remote_write(), "pinned contrast: after MADV_DONTNEED the CPU does not see what the device writes");
		t_result(cycles(8), "pinned contrast: 8 cycles, the device always reads the first data");
	}
	t_dev_close(&dev);
	return t_finish();
}
