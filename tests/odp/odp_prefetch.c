// SPDX-License-Identifier: GPL-2.0 OR Linux-OpenIB
/*
 * odp_prefetch: implicit ODP, prefetch (advise_mr through librxeodp), the
 * ODP counters and fault batching.
 *
 * Counts come from the device's hw counters (odp_page_faults,
 * odp_page_invalidations, odp_page_prefetch, odp_fault_waits) and, for one
 * case, from 'rdma statistic mr'.  Buffers are MADV_NOHUGEPAGE so that a
 * page is a page, and NUMA balancing is switched off while the test runs
 * so that the kernel does not invalidate pages behind the test's back.
 *
 * With --pinned, advise_mr on a pinned MR must fail with EINVAL, and
 * everything else is skipped: pinned MRs have no faults to count.
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

#include "odptest.h"
#include "rxeodp.h"

#define NPAGES	64
#define LEN	(NPAGES * T_PAGE)

static struct t_dev dev;
static struct t_rc_pair pair;
static uint8_t *src;		/* pinned source / sink of the traffic */
static struct ibv_mr *src_mr;

struct counts {
	long faults, invals, prefetch, waits;
};

static void counts_read(struct counts *c)
{
	c->faults = t_hw_counter(&dev, "odp_page_faults");
	c->invals = t_hw_counter(&dev, "odp_page_invalidations");
	c->prefetch = t_hw_counter(&dev, "odp_page_prefetch");
	c->waits = t_hw_counter(&dev, "odp_fault_waits");
}

static void counts_delta(struct counts *d, const struct counts *before)
{
	struct counts now;

	counts_read(&now);
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

	if (!p)
		t_bail("cannot map %zu bytes", len);
	if (madvise(p, len, MADV_NOHUGEPAGE))
		t_diag("madvise(MADV_NOHUGEPAGE): %s", strerror(errno));
	return p;
}

/*
 * An MR the cases below cannot do without: with none (out of memory, or
 * under fault injection) the rest of the plan fails at once.
 */
static struct ibv_mr *reg(void *buf, size_t len, int access)
{
	struct ibv_mr *mr = t_reg_mr(&dev, buf, len, access);

	if (!mr)
		t_bail("cannot register an MR (%s) of %zu bytes: %s", t_mode(),
		       len, strerror(errno));
	return mr;
}

/* RDMA WRITE @len bytes of src into @dst (rkey), then check them. */
static bool write_and_check(void *dst, uint32_t rkey, size_t len,
			    uint64_t seed)
{
	t_fill(src, len, seed);
	if (t_rdma_sync(&pair, IBV_WR_RDMA_WRITE, src, len, src_mr->lkey,
			(uintptr_t)dst, rkey))
		return false;
	return t_check(dst, src, len, "written data");
}

static int prefetch(struct ibv_mr *mr, void *addr, size_t len,
		    enum ibv_advise_mr_advice advice, uint32_t flags)
{
	struct ibv_sge sge = {
		.addr = (uintptr_t)addr,
		.length = len,
		.lkey = mr->lkey,
	};

	return rxeodp_advise_mr(dev.pd, advice, flags, &sge, 1);
}

static void test_counters(void)
{
	uint8_t *buf = fresh(LEN);
	struct ibv_mr *mr = reg(buf, LEN, T_ACCESS_ALL);
	struct counts before, d;
	char line[512];
	bool seen = false;
	FILE *f;

	counts_read(&before);
	t_result(mr && write_and_check(buf, mr->rkey, LEN, 1),
		 "RDMA WRITE of %d fresh pages lands", NPAGES);
	counts_delta(&d, &before);
	t_result(d.faults == NPAGES && d.waits == 1,
		 "a cold %d-page message: %d pages faulted in one fault",
		 NPAGES, NPAGES);

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
	t_result(seen, "'rdma statistic mr' shows page_faults %d", NPAGES);

	counts_read(&before);
	t_munmap(buf, LEN);
	counts_delta(&d, &before);
	t_result(d.invals == NPAGES,
		 "munmap of the %d faulted pages invalidates %d pages",
		 NPAGES, NPAGES);
	t_dereg_mr(mr);
}

static void test_batching(void)
{
	const size_t len = T_MIB;
	uint8_t *buf = fresh(len);
	struct ibv_mr *mr = reg(buf, len, T_ACCESS_ALL);
	struct counts before, d;

	counts_read(&before);
	t_result(mr && write_and_check(buf, mr->rkey, len, 2),
		 "cold 1 MiB RDMA WRITE lands");
	counts_delta(&d, &before);
	t_diag("cold 1 MiB WRITE: %ld faults for %ld pages (%.1f faults/MiB)",
	       d.waits, d.faults, (double)d.waits);
	t_result(d.waits >= 1 && d.waits <= 2 && d.faults == 256,
		 "a cold 1 MiB message faults in 1 or 2 goes, not per page");
	t_dereg_mr(mr);
	t_munmap(buf, len);
}

static void test_prefetch(enum ibv_advise_mr_advice advice, bool sync,
			  const char *name)
{
	uint8_t *buf = fresh(LEN);
	struct ibv_mr *mr = reg(buf, LEN, T_ACCESS_ALL);
	struct counts before, d;
	int ret, i;

	counts_read(&before);
	ret = prefetch(mr, buf, LEN, advice,
		       sync ? IBV_ADVISE_MR_FLAG_FLUSH : 0);
	t_result(ret == 0, "%s %s prefetch of %d pages: %s", name,
		 sync ? "sync" : "async", NPAGES, strerror(ret));
	/* an async prefetch is done when the counter says so */
	for (i = 0; i < 250; i++) {
		counts_delta(&d, &before);
		if (d.prefetch >= NPAGES || sync)
			break;
		usleep(20000);
	}
	t_result(d.prefetch == NPAGES && d.faults == 0,
		 "%s: %d pages prefetched, none faulted", name, NPAGES);

	counts_read(&before);
	if (advice == IBV_ADVISE_MR_ADVICE_PREFETCH) {
		/* read access only: the device reads them (zeros) */
		memset(src, 0xa5, LEN);
		ret = t_rdma_sync(&pair, IBV_WR_RDMA_READ, src, LEN,
				  src_mr->lkey, (uintptr_t)buf, mr->rkey);
		t_result(!ret && t_check_byte(src, 0, LEN, "read data"),
			 "%s: RDMA READ of the prefetched pages", name);
	} else {
		t_result(mr && write_and_check(buf, mr->rkey, LEN, 3),
			 "%s: RDMA WRITE into the prefetched pages", name);
	}
	counts_delta(&d, &before);
	t_result(d.waits == 0 && d.faults == 0,
		 "%s: traffic over prefetched pages takes no fault", name);
	t_dereg_mr(mr);
	t_munmap(buf, LEN);
}

static void test_no_fault(bool sync)
{
	uint8_t *buf = fresh(LEN);
	struct ibv_mr *mr = reg(buf, LEN, T_ACCESS_ALL);
	struct counts before, d;
	int ret, i;

	/* the process maps the first half itself */
	memset(buf, 0x5a, LEN / 2);
	counts_read(&before);
	ret = prefetch(mr, buf, LEN, IBV_ADVISE_MR_ADVICE_PREFETCH_NO_FAULT,
		       sync ? IBV_ADVISE_MR_FLAG_FLUSH : 0);
	t_result(ret == 0, "NO_FAULT %s prefetch: %s", sync ? "sync" : "async",
		 strerror(ret));
	for (i = 0; i < 250; i++) {
		counts_delta(&d, &before);
		if (d.prefetch >= NPAGES / 2 || sync)
			break;
		usleep(20000);
	}
	t_result(d.prefetch == NPAGES / 2 && d.faults == 0,
		 "NO_FAULT: only the %d pages present are made accessible",
		 NPAGES / 2);
	counts_read(&before);
	ret = t_rdma_sync(&pair, IBV_WR_RDMA_READ, src, LEN / 2, src_mr->lkey,
			  (uintptr_t)buf, mr->rkey);
	counts_delta(&d, &before);
	t_result(!ret && d.waits == 0 &&
		 t_check_byte(src, 0x5a, LEN / 2, "read data"),
		 "NO_FAULT: reading the present half takes no fault");
	t_dereg_mr(mr);
	t_munmap(buf, LEN);
}

static void test_implicit(void)
{
	struct ibv_mr *imr = ibv_reg_mr(dev.pd, NULL, SIZE_MAX, T_ACCESS_ALL |
					IBV_ACCESS_ON_DEMAND);
	uint8_t *buf = fresh(LEN), *gone;
	struct counts before, d;
	struct ibv_wc wc;
	int ret;

	t_result(imr != NULL, "implicit ODP MR registers: %s",
		 imr ? "ok" : strerror(errno));
	if (!imr) {
		t_munmap(buf, LEN);
		return;
	}

	t_result(write_and_check(buf, imr->rkey, LEN, 4),
		 "RDMA WRITE through the implicit MR lands");

	t_munmap(buf, LEN);
	buf = fresh(LEN);
	counts_read(&before);
	ret = prefetch(imr, buf, LEN, IBV_ADVISE_MR_ADVICE_PREFETCH_WRITE,
		       IBV_ADVISE_MR_FLAG_FLUSH);
	counts_delta(&d, &before);
	t_result(!ret && d.prefetch == NPAGES,
		 "implicit: sync PREFETCH_WRITE of %d pages", NPAGES);
	counts_read(&before);
	t_result(write_and_check(buf, imr->rkey, LEN, 5),
		 "implicit: RDMA WRITE into prefetched pages lands");
	counts_delta(&d, &before);
	t_result(d.waits == 0, "implicit: ... and takes no fault");

	/* an address the process does not map */
	gone = fresh(LEN);
	t_munmap(gone, LEN);
	memset(&wc, 0, sizeof(wc));
	ret = t_post_rdma(pair.qp[0], IBV_WR_RDMA_WRITE, 77, src, T_PAGE,
			  src_mr->lkey, (uintptr_t)gone, imr->rkey);
	if (!ret && t_poll(pair.scq[0], 1, &wc) != 1)
		ret = -1;
	t_result(!ret && wc.status == IBV_WC_REM_ACCESS_ERR,
		 "implicit: WRITE to an unmapped address: %s",
		 ret ? "no completion" : t_wc_status_str(wc.status));
	t_munmap(buf, LEN);
	t_dereg_mr(imr);
}

/* Translation tables held by the device's ODP MRs ('rdma statistic mr'). */
static long tables_held(void)
{
	char line[1024];
	long n = 0;
	FILE *f;

	f = popen("rdma statistic mr 2>&1", "r");
	while (f && fgets(line, sizeof(line), f)) {
		char *p = strstr(line, "translation_tables ");

		if (strstr(line, dev.name) && p)
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
 */
static void test_implicit_shrink(void)
{
	struct ibv_mr *imr = ibv_reg_mr(dev.pd, NULL, SIZE_MAX, T_ACCESS_ALL |
					IBV_ACCESS_ON_DEMAND);
	long base, held, most = 0, left = 0, kmem0 = t_kmem_kb();
	const size_t len = 1024 * T_MIB;
	int turn, ret = 0;

	base = tables_held();
	for (turn = 0; imr && turn < 16 && !ret && !left; turn++) {
		uint8_t *buf = mmap(NULL, len, PROT_READ | PROT_WRITE,
				    MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE,
				    -1, 0);

		if (buf == MAP_FAILED) {
			ret = errno;
			break;
		}
		ret = prefetch(imr, buf, len, IBV_ADVISE_MR_ADVICE_PREFETCH,
			       IBV_ADVISE_MR_FLAG_FLUSH);
		held = tables_held() - base;
		if (held > most)
			most = held;
		munmap(buf, len);
		left = tables_held() - base;
	}
	t_diag("implicit MR: %d turns, up to %ld tables held, %ld left; kernel memory %+ld KiB",
	       turn, most, left, t_kmem_kb() - kmem0);
	t_result(imr && !ret && turn == 16 && most >= 512 && !left,
		 "implicit MR over 16 x 1 GiB faulted and unmapped in turns: its tables go with each unmap (%s)",
		 imr ? strerror(ret) : "no MR");
	if (imr)
		t_dereg_mr(imr);
}

static void test_bad_input(void)
{
	uint8_t *buf = fresh(LEN);
	struct ibv_mr *mr = reg(buf, LEN, T_ACCESS_ALL);
	struct ibv_mr *ro = reg(buf, LEN, IBV_ACCESS_REMOTE_READ);
	struct ibv_mr *pinned = t_reg_mr_mode(&dev, src, LEN,
					      IBV_ACCESS_LOCAL_WRITE, false);
	struct ibv_sge sge = { .addr = (uintptr_t)buf, .length = LEN };
	int ret;

	if (!pinned)
		t_bail("cannot register a pinned MR: %s", strerror(errno));
	sge.lkey = mr->lkey ^ 0x5500;
	ret = rxeodp_advise_mr(dev.pd, IBV_ADVISE_MR_ADVICE_PREFETCH,
			       IBV_ADVISE_MR_FLAG_FLUSH, &sge, 1);
	t_result(ret == ENOENT, "bad lkey: %s", strerror(ret));

	ret = prefetch(ro, buf, LEN, IBV_ADVISE_MR_ADVICE_PREFETCH_WRITE,
		       IBV_ADVISE_MR_FLAG_FLUSH);
	t_result(ret == EPERM, "PREFETCH_WRITE without local write: %s",
		 strerror(ret));

	ret = prefetch(mr, buf + T_PAGE, LEN, IBV_ADVISE_MR_ADVICE_PREFETCH,
		       IBV_ADVISE_MR_FLAG_FLUSH);
	t_result(ret == EFAULT, "range beyond the MR: %s", strerror(ret));

	ret = prefetch(pinned, src, LEN, IBV_ADVISE_MR_ADVICE_PREFETCH,
		       IBV_ADVISE_MR_FLAG_FLUSH);
	t_result(ret == EINVAL, "pinned MR: %s", strerror(ret));

	ret = prefetch(mr, buf, LEN, 7, IBV_ADVISE_MR_FLAG_FLUSH);
	t_result(ret == EOPNOTSUPP, "unknown advice: %s", strerror(ret));

	/* the uverbs core checks the flags against the ones it knows */
	ret = prefetch(mr, buf, LEN, IBV_ADVISE_MR_ADVICE_PREFETCH, 0x80);
	t_result(ret == EINVAL, "unknown flag: %s", strerror(ret));

	munmap(buf + T_PAGE, T_PAGE);
	ret = prefetch(mr, buf, LEN, IBV_ADVISE_MR_ADVICE_PREFETCH_WRITE,
		       IBV_ADVISE_MR_FLAG_FLUSH);
	t_result(ret == EFAULT, "sync prefetch over an unmapped page: %s",
		 strerror(ret));

	t_dereg_mr(pinned);
	t_dereg_mr(ro);
	t_dereg_mr(mr);
	munmap(buf, LEN);
}

/*
 * An unprivileged process floods asynchronous prefetches of a large cold
 * range, each of which takes a while: past the bound per MR they fail with
 * EBUSY, every other one is queued, and the process exits with many still
 * queued without leaving anything behind.
 */
#define FLOOD_LEN	(1024 * T_MIB)
#define FLOOD_CALLS	4000
#define NOBODY		65534

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

static void test_flood(void)
{
	struct t_res base, now;
	int status = -1;
	bool back = false;
	double t0;
	pid_t pid;

	if (t_res_read(dev.name, &base))
		t_diag("cannot read 'rdma resource show %s'", dev.name);
	fflush(stdout);
	pid = fork();
	if (pid < 0)
		t_bail("fork: %s", strerror(errno));
	if (!pid)
		_exit(flood_child());
	t0 = t_now();
	while (!waitpid(pid, &status, WNOHANG) && t_now() - t0 < 120)
		usleep(20000);
	t_result(WIFEXITED(status) && WEXITSTATUS(status) == 0,
		 "unprivileged flood of %d async prefetches: some queued, the rest EBUSY, no other error (status %#x)",
		 FLOOD_CALLS, status);
	t_result(t_now() - t0 < 120,
		 "the flooding process exits with prefetches queued (%.1f s)",
		 t_now() - t0);
	if (t_now() - t0 >= 120) {
		t_dump_kernel_stacks("the flooding process has not ended");
		kill(pid, SIGKILL);
		waitpid(pid, &status, 0);
	}
	for (t0 = t_now(); t_now() - t0 < 60 && !back; usleep(50000))
		back = !t_res_read(dev.name, &now) && t_res_equal(&now, &base);
	t_result(back, "its MR and context are gone ('rdma resource show')");
}

static char numa_bal[16];

/* Give NUMA balancing back as it was, also when t_bail() exits. */
static void numa_bal_restore(void)
{
	FILE *f;

	if (!numa_bal[0])
		return;
	f = fopen("/proc/sys/kernel/numa_balancing", "w");
	if (f) {
		fputs(numa_bal, f);
		fclose(f);
	}
}

int main(int argc, char **argv)
{
	struct ibv_mr *pinned;
	FILE *f;
	int ret;

	t_init(argc, argv, "implicit ODP, prefetch, ODP counters, batching");
	if (t_dev_open(&dev) || t_rc_pair_create(&dev, &pair, NULL))
		t_bail("cannot open %s", dev.name);
	src = t_mmap(T_MIB);
	src_mr = src ? t_reg_mr_mode(&dev, src, T_MIB, T_ACCESS_ALL, false)
		     : NULL;
	if (!src_mr)
		t_bail("cannot register the pinned buffer");

	if (!t_odp) {
		t_plan(1);
		pinned = src_mr;
		ret = prefetch(pinned, src, LEN, IBV_ADVISE_MR_ADVICE_PREFETCH,
			       IBV_ADVISE_MR_FLAG_FLUSH);
		t_result(ret == EINVAL, "advise_mr on a pinned MR: %s",
			 strerror(ret));
		return t_finish();
	}

	f = fopen("/proc/sys/kernel/numa_balancing", "r+");
	if (f) {
		if (!fgets(numa_bal, sizeof(numa_bal), f))
			numa_bal[0] = 0;
		rewind(f);
		fputs("0\n", f);
		fclose(f);
		atexit(numa_bal_restore);
	}

	t_plan(46);
	t_result(dev.attr.odp_caps.general_caps & IBV_ODP_SUPPORT_IMPLICIT,
		 "IBV_ODP_SUPPORT_IMPLICIT advertised");
	test_counters();
	test_batching();
	test_prefetch(IBV_ADVISE_MR_ADVICE_PREFETCH, true, "PREFETCH");
	test_prefetch(IBV_ADVISE_MR_ADVICE_PREFETCH_WRITE, true,
		      "PREFETCH_WRITE");
	test_prefetch(IBV_ADVISE_MR_ADVICE_PREFETCH, false, "PREFETCH");
	test_prefetch(IBV_ADVISE_MR_ADVICE_PREFETCH_WRITE, false,
		      "PREFETCH_WRITE");
	test_no_fault(true);
	test_no_fault(false);
	test_implicit();
	test_implicit_shrink();
	test_bad_input();
	test_flood();

	t_dereg_mr(src_mr);
	t_rc_pair_destroy(&pair);
	t_dev_close(&dev);
	return t_finish();
}
