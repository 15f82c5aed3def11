// SPDX-License-Identifier: GPL-2.0 OR Linux-OpenIB
/*
 * odp_ksm_thp: an ODP MR follows KSM merging and transparent huge pages.
 *
 * KSM: pages of the same content in an ODP MR (written by the device, so
 * it had them mapped writable), in another region and in another process
 * are marked MADV_MERGEABLE and ksmd is made to scan fast until every one
 * of them maps the same KSM page (/proc/self/pagemap, /proc/kpageflags).
 * An RDMA WRITE into one page of the MR must break the sharing of that page
 * only: the CPU sees the write, every other copy (the other pages of the
 * MR, the other region, the other process) keeps the old content.
 *
 * THP: an 8 MiB range of 2 MiB transparent huge pages (AnonHugePages in
 * /proc/self/smaps says they are) under an ODP MR, with a stream of RDMA
 * WRITEs and READs running over two of them while the first is split by
 * a partial mprotect(PROT_READ) and the second by a partial munmap: every
 * READ returns what was written, afterwards the device sees what the CPU
 * sees, a WRITE into the read-only part and a READ of the hole fail with
 * IBV_WC_REM_ACCESS_ERR.  Then khugepaged collapses a range the device
 * had mapped as small pages (made to scan fast, bounded wait): READ and
 * WRITE before, during and after the collapse, byte for byte.
 *
 * Pinned MRs (--pinned): KSM does not merge pinned pages and khugepaged
 * does not collapse them (the contrast asserts it, next to an unregistered
 * copy that does merge or collapse), and the device writes into the
 * read-only part and reads the unmapped hole of a split huge page.
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <sys/mman.h>
#include <sys/wait.h>

#include "odptest.h"

#ifndef MADV_COLLAPSE
#define MADV_COLLAPSE	25
#endif

#define HP		(2 * T_MIB)
#define KPF_KSM		21

static struct t_dev dev;
static uint8_t *local;		/* LOCAL_LEN, registered as lmr */
static struct ibv_mr *lmr;
#define LOCAL_LEN	(16 * T_MIB)

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

/* ---- page frames ---------------------------------------------------------- */

/* PFN of the page at @p (0 if not present), via /proc/self/pagemap. */
static uint64_t pfn_of(const void *p)
{
	uint64_t e = 0;
	int fd = open("/proc/self/pagemap", O_RDONLY);

	if (fd < 0)
		return 0;
	if (pread(fd, &e, 8, (uintptr_t)p / T_PAGE * 8) != 8)
		e = 0;
	close(fd);
	return e >> 63 & 1 ? e & ((1ULL << 55) - 1) : 0;
}

static uint64_t kpageflags(uint64_t pfn)
{
	uint64_t f = 0;
	int fd = open("/proc/kpageflags", O_RDONLY);

	if (fd < 0)
		return 0;
	if (pread(fd, &f, 8, pfn * 8) != 8)
		f = 0;
	close(fd);
	return f;
}

/* Pages of [p, p + n pages) that map KSM page @ksm (or any KSM page if 0). */
static long ksm_pages(const uint8_t *p, long n, uint64_t ksm)
{
	long i, c = 0;

	for (i = 0; i < n; i++) {
		uint64_t pfn = pfn_of(p + i * T_PAGE);

		if (pfn && kpageflags(pfn) >> KPF_KSM & 1 && (!ksm || pfn == ksm))
			c++;
	}
	return c;
}

/* ---- KSM ------------------------------------------------------------------ */

#define KSM_DIR		"/sys/kernel/mm/ksm/"
#define NA		64	/* pages in the MR */
#define NB		16	/* pages in the other region */
#define NC		16	/* pages in the other process */
#define WPAGE		5	/* the page the device writes */

static void fill_same(uint8_t *p, long pages)
{
	long i;

	t_fill(p, T_PAGE, 0x45);
	for (i = 1; i < pages; i++)
		memcpy(p + i * T_PAGE, p, T_PAGE);
}

/* The other process: NC pages of the same content, mergeable. */
static int ksm_child(int cmd, int ans)
{
	uint8_t *c = t_mmap(NC * T_PAGE), *want = malloc(T_PAGE);
	char x;
	long i, merged;
	int bad = 0;

	if (!c || !want)
		return 1;
	fill_same(c, NC);
	memcpy(want, c, T_PAGE);
	madvise(c, NC * T_PAGE, MADV_NOHUGEPAGE);
	if (madvise(c, NC * T_PAGE, MADV_MERGEABLE))
		return 1;
	if (write(ans, "r", 1) != 1)
		return 1;
	/* "m": report how many of ours are merged; "c": check and exit */
	while (read(cmd, &x, 1) == 1) {
		if (x == 'm') {
			merged = ksm_pages(c, NC, 0);
			x = merged == NC ? 'y' : 'n';
		} else {
			for (i = 0; i < NC; i++)
				if (memcmp(c + i * T_PAGE, want, T_PAGE))
					bad++;
			merged = ksm_pages(c, NC, 0);
			t_diag("other process: %d of %d pages changed, %ld still merged",
			       bad, NC, merged);
			x = bad ? 'b' : 'g';
		}
		if (write(ans, &x, 1) != 1)
			return 1;
		if (x == 'b' || x == 'g')
			break;
	}
	return 0;
}

static char ask(int cmd, int ans, char q)
{
	char x = 0;

	if (write(cmd, &q, 1) != 1 || read(ans, &x, 1) != 1)
		return 0;
	return x;
}

/*
 * Returns 1 pass, 0 fail, -1 skip (no KSM).  @merged: the merge itself (ODP:
 * the MR's pages merged; pinned: they were not while the others were).
 */
static int ksm(bool *merged, bool *write_ok, bool *cpu_ok)
{
	long run0, scan0, sleep0, shared0, sharing0, ma = 0, mb = 0;
	int cmd[2] = { -1, -1 }, ans[2] = { -1, -1 }, status;
	uint8_t *a = NULL, *b = NULL, *want = NULL;
	struct ibv_mr *mr = NULL;
	bool child_merged = false;
	pid_t pid = -1;
	uint64_t kpfn = 0;
	double t0;
	long i;
	char x;

	*merged = *write_ok = *cpu_ok = false;
	run0 = t_knob_get(KSM_DIR "run");
	if (run0 < 0)
		return -1;
	scan0 = t_knob_get(KSM_DIR "pages_to_scan");
	sleep0 = t_knob_get(KSM_DIR "sleep_millisecs");
	shared0 = t_knob_get(KSM_DIR "pages_shared");
	sharing0 = t_knob_get(KSM_DIR "pages_sharing");

	if (pipe(cmd) || pipe(ans))
		goto out;
	fflush(stdout);
	pid = fork();
	if (pid < 0)
		goto out;
	if (!pid) {
		alarm(300);
		_exit(ksm_child(cmd[0], ans[1]));
	}
	if (read(ans[0], &x, 1) != 1 || x != 'r') {
		t_diag("the other process did not start");
		goto out;
	}

	a = t_mmap(NA * T_PAGE);
	b = t_mmap(NB * T_PAGE);
	want = malloc(NA * T_PAGE);
	if (!a || !b || !want)
		goto out;
	madvise(a, NA * T_PAGE, MADV_NOHUGEPAGE);
	madvise(b, NB * T_PAGE, MADV_NOHUGEPAGE);
	fill_same(want, NA);
	memcpy(b, want, NB * T_PAGE);
	mr = t_reg_mr(&dev, a, NA * T_PAGE, T_ACCESS_ALL);
	if (!mr)
		goto out;
	/* The device writes the content: it maps every page writable. */
	memcpy(local, want, NA * T_PAGE);
	if (dev_op(IBV_WR_RDMA_WRITE, local, a, NA * T_PAGE, mr) ||
	    !t_check(a, want, NA * T_PAGE, "CPU after the first WRITE"))
		goto out;
	if (madvise(a, NA * T_PAGE, MADV_MERGEABLE) ||
	    madvise(b, NB * T_PAGE, MADV_MERGEABLE)) {
		t_diag("madvise(MADV_MERGEABLE): %s", strerror(errno));
		goto out;
	}
	if (!t_knob_set(KSM_DIR "pages_to_scan", 10000) ||
	    !t_knob_set(KSM_DIR "sleep_millisecs", 0) ||
	    !t_knob_set(KSM_DIR "run", 1))
		goto out;

	/* Until every copy maps the same KSM page (pinned: all but ours). */
	t0 = t_now();
	while (t_now() - t0 < 60) {
		usleep(200000);
		kpfn = pfn_of(b);
		if (!(kpageflags(kpfn) >> KPF_KSM & 1))
			continue;
		mb = ksm_pages(b, NB, kpfn);
		ma = ksm_pages(a, NA, kpfn);
		if (mb == NB && (ma == NA || !t_odp)) {
			child_merged = ask(cmd[1], ans[0], 'm') == 'y';
			if (child_merged)
				break;
		}
	}
	if (!t_odp && child_merged) {
		/* two more full scans: the pinned pages stay apart */
		long scans = t_knob_get(KSM_DIR "full_scans");

		while (t_now() - t0 < 90 &&
		       t_knob_get(KSM_DIR "full_scans") < scans + 2)
			usleep(100000);
		ma = ksm_pages(a, NA, 0);
	}
	t_diag("after %.1f s: %ld of %d MR pages, %ld of %d other-region pages merged, other process %s; pages_shared %ld -> %ld, pages_sharing %ld -> %ld",
	       t_now() - t0, ma, NA, mb, NB, child_merged ? "merged" : "not merged",
	       shared0, t_knob_get(KSM_DIR "pages_shared"), sharing0,
	       t_knob_get(KSM_DIR "pages_sharing"));
	if (mb != NB || !child_merged) {
		t_diag("ksmd did not merge the copies in time");
		goto out;
	}
	*merged = t_odp ? ma == NA : ma == 0;

	/* The device reads the merged pages. */
	memset(local, 0x5a, NA * T_PAGE);
	if (dev_op(IBV_WR_RDMA_READ, local, a, NA * T_PAGE, mr) ||
	    !t_check(local, want, NA * T_PAGE, "READ of the merged pages"))
		goto out;

	/* One WRITE into one page. */
	t_fill(local, 1000, 0x46);
	memcpy(want + WPAGE * T_PAGE + 100, local, 1000);
	*write_ok = !dev_op(IBV_WR_RDMA_WRITE, local, a + WPAGE * T_PAGE + 100,
			    1000, mr) &&
		    t_check(a, want, NA * T_PAGE, "the MR's pages after the WRITE");
	for (i = 0; i < NB; i++)
		*write_ok = t_check(b + i * T_PAGE, want, T_PAGE,
				    "the other region after the WRITE") &&
			    *write_ok;
	*write_ok = ask(cmd[1], ans[0], 'c') == 'g' && *write_ok;
	if (t_odp) {
		long still = ksm_pages(a, NA, kpfn);

		t_diag("after the WRITE %ld of %d MR pages still map the KSM page, page %d %s",
		       still, NA, WPAGE,
		       pfn_of(a + WPAGE * T_PAGE) == kpfn ? "too" : "not");
		*write_ok = *write_ok && still == NA - 1 &&
			    pfn_of(a + WPAGE * T_PAGE) != kpfn;
	}
	*write_ok = *write_ok && ksm_pages(b, NB, kpfn) == NB;

	/* The CPU writes another page: the device reads it. */
	t_fill(a + 9 * T_PAGE + 7, 77, 0x47);
	memcpy(want + 9 * T_PAGE + 7, a + 9 * T_PAGE + 7, 77);
	memset(local, 0x5a, NA * T_PAGE);
	*cpu_ok = !dev_op(IBV_WR_RDMA_READ, local, a, NA * T_PAGE, mr) &&
		  t_check(local, want, NA * T_PAGE,
			  "READ after the CPU wrote a merged page") &&
		  t_check(b, want, T_PAGE, "the other region");
out:
	if (cmd[1] >= 0)
		close(cmd[1]);
	if (pid > 0)
		waitpid(pid, &status, 0);
	if (cmd[0] >= 0)
		close(cmd[0]);
	if (ans[0] >= 0) {
		close(ans[0]);
		close(ans[1]);
	}
	t_dereg_mr(mr);
	t_munmap(a, NA * T_PAGE);
	t_munmap(b, NB * T_PAGE);
	free(want);
	if (scan0 > 0)
		t_knob_set(KSM_DIR "pages_to_scan", scan0);
	if (sleep0 >= 0)
		t_knob_set(KSM_DIR "sleep_millisecs", sleep0);
	t_knob_set(KSM_DIR "run", run0);
	return 1;
}

/* ---- THP ------------------------------------------------------------------ */

#define THP_DIR		"/sys/kernel/mm/transparent_hugepage/"
#define KHP_DIR		THP_DIR "khugepaged/"

static bool thp_available(void)
{
	char buf[128] = "";
	FILE *f = fopen(THP_DIR "enabled", "r");

	if (!f)
		return false;
	if (!fgets(buf, sizeof(buf), f))
		buf[0] = 0;
	fclose(f);
	return strstr(buf, "[always]") || strstr(buf, "[madvise]");
}

/* @len bytes, 2 MiB aligned, between PROT_NONE guards (no VMA merging). */
static uint8_t *thp_map(size_t len)
{
	uint8_t *raw, *p;

	raw = mmap(NULL, len + 2 * HP, PROT_NONE,
		   MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	if (raw == MAP_FAILED)
		return NULL;
	p = (uint8_t *)(((uintptr_t)raw + HP) & ~(HP - 1));
	if (mmap(p, len, PROT_READ | PROT_WRITE,
		 MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0) != p) {
		munmap(raw, len + 2 * HP);
		return NULL;
	}
	return p;
}

static void thp_unmap(uint8_t *p, size_t len)
{
	if (p)
		munmap(p - HP, len + 2 * HP);	/* the guards too */
}

/* AnonHugePages (kB) of the VMAs inside [p, p + len), from smaps. */
static long huge_kb(const void *p, size_t len)
{
	uintptr_t lo = (uintptr_t)p, hi = lo + len, s, e;
	char line[512];
	bool in = false;
	long kb = 0, v;
	FILE *f = fopen("/proc/self/smaps", "r");

	if (!f)
		return -1;
	while (fgets(line, sizeof(line), f)) {
		if (sscanf(line, "%lx-%lx ", &s, &e) == 2 && strchr(line, '-') <
		    strchr(line, ' ')) {
			in = s >= lo && e <= hi;
			continue;
		}
		if (in && sscanf(line, "AnonHugePages: %ld kB", &v) == 1)
			kb += v;
	}
	fclose(f);
	return kb;
}

/* -- split under traffic -- */

#define TL	(4 * HP)
/* what the stream writes, and what it reads unchanged */
#define W1_OFF	(HP + T_MIB)
#define W1_LEN	(256 * T_KIB)
#define W2_OFF	(3 * HP)
#define W2_LEN	(512 * T_KIB)
#define R1_OFF	HP
#define R1_LEN	T_MIB
#define R2_OFF	(3 * HP + T_MIB + 128 * T_KIB)
#define R2_LEN	(HP - T_MIB - 128 * T_KIB)
/* read-only part of huge page 1, hole in huge page 3 */
#define RO_OFF	(HP + 512 * T_KIB)
#define RO_LEN	(64 * T_KIB)
#define HOLE_OFF	(3 * HP + T_MIB)
#define HOLE_LEN	(64 * T_KIB)

struct stream {
	uint8_t *buf;
	const uint8_t *orig;
	struct ibv_mr *mr;
	struct t_rc_pair p;
	int stop;
	long loops;
	int seed;
	bool bad;
};

static bool stream_range(struct stream *st, size_t off, size_t len,
			 uint8_t *src, uint8_t *dst, bool write)
{
	int s;

	if (write) {
		t_fill(src, len, st->seed * 1000 + off);
		s = dev_op_on(&st->p, IBV_WR_RDMA_WRITE, src, st->buf + off,
			      len, st->mr);
		if (s)
			return false;
	}
	memset(dst, 0x5a, len);
	s = dev_op_on(&st->p, IBV_WR_RDMA_READ, dst, st->buf + off, len,
		      st->mr);
	return !s && t_check(dst, write ? src : st->orig + off, len,
			     write ? "stream: READ after WRITE" :
			     "stream: READ of unchanged data");
}

static void *stream_fn(void *arg)
{
	struct stream *st = arg;
	uint8_t *src = local, *dst = local + T_MIB;

	while (!__atomic_load_n(&st->stop, __ATOMIC_ACQUIRE)) {
		st->seed++;
		if (!stream_range(st, W1_OFF, W1_LEN, src, dst, true) ||
		    !stream_range(st, W2_OFF, W2_LEN, src, dst, true) ||
		    !stream_range(st, R1_OFF, R1_LEN, src, dst, false) ||
		    !stream_range(st, R2_OFF, R2_LEN, src, dst, false)) {
			st->bad = true;
			break;
		}
		__atomic_add_fetch(&st->loops, 1, __ATOMIC_RELEASE);
	}
	return NULL;
}

static void wait_loops(struct stream *st, long n)
{
	long l0 = __atomic_load_n(&st->loops, __ATOMIC_ACQUIRE);
	double t0 = t_now();

	while (!st->bad && t_now() - t0 < 30 &&
	       __atomic_load_n(&st->loops, __ATOMIC_ACQUIRE) < l0 + n)
		usleep(10000);
}

/* Returns -1 (skip: no THP), else r[0..3] are set. */
static int thp_split(bool r[4])
{
	uint8_t *buf, *want = NULL, *tmp;
	struct stream st = { 0 };
	struct t_rc_pair ep[3];
	int nep = 0, ret = -1, s, tries;
	long kb, l[3];
	pthread_t thr;

	memset(r, 0, 4 * sizeof(*r));
	buf = thp_map(TL);
	if (!buf)
		return -1;
	t_knob_set("/proc/sys/vm/compact_memory", 1);
	if (madvise(buf, TL, MADV_HUGEPAGE))
		t_diag("madvise(MADV_HUGEPAGE): %s", strerror(errno));
	t_fill(buf, TL, 61);
	kb = huge_kb(buf, TL);
	t_diag("8 MiB MADV_HUGEPAGE range: AnonHugePages %ld kB", kb);
	/*
	 * Fragmented memory: compact and collapse them now (6.1 has
	 * MADV_COLLAPSE).  One pass has been seen to leave half of them
	 * small, so try a few times before giving up.
	 */
	for (tries = 1; kb != (long)(TL / 1024) && tries <= 5; tries++) {
		t_knob_set("/proc/sys/vm/compact_memory", 1);
		if (madvise(buf, TL, MADV_COLLAPSE))
			t_diag("madvise(MADV_COLLAPSE): %s", strerror(errno));
		kb = huge_kb(buf, TL);
		t_diag("after compaction and MADV_COLLAPSE (%d): AnonHugePages %ld kB",
		       tries, kb);
	}
	if (kb != (long)(TL / 1024)) {
		thp_unmap(buf, TL);
		return -1;
	}
	ret = 0;
	want = malloc(TL);
	if (!want)
		goto out;
	memcpy(want, buf, TL);
	st.buf = buf;
	st.orig = want;
	st.mr = t_reg_mr(&dev, buf, TL, T_ACCESS_ALL);
	if (!st.mr || t_rc_pair_create(&dev, &st.p, NULL))
		goto out;
	kb = huge_kb(buf, TL);
	t_diag("after registering the %s MR: AnonHugePages %ld kB", t_mode(), kb);
	/* QP pairs for later, made before the hole exists */
	for (nep = 0; nep < 3; nep++)
		if (t_rc_pair_create(&dev, &ep[nep], NULL))
			goto out_p;

	/* Whole huge pages: READ all, WRITE across a boundary. */
	memset(local, 0x5a, TL);
	r[0] = !dev_op_on(&st.p, IBV_WR_RDMA_READ, local, buf, TL, st.mr) &&
	       t_check(local, want, TL, "READ of the huge pages");
	t_fill(local, 128 * T_KIB, 62);
	memcpy(want + 2 * HP - 64 * T_KIB, local, 128 * T_KIB);
	r[0] = r[0] && !dev_op_on(&st.p, IBV_WR_RDMA_WRITE, local,
				  buf + 2 * HP - 64 * T_KIB, 128 * T_KIB,
				  st.mr) &&
	       t_check(buf, want, TL, "CPU after a WRITE across huge pages");
	kb = huge_kb(buf, TL);
	t_diag("after RDMA READ and WRITE: AnonHugePages %ld kB", kb);
	/* pinned: the pin itself may have split them (measured, reported) */
	r[0] = r[0] && (kb == (long)(TL / 1024) || !t_odp);

	/* Split them under traffic. */
	if (pthread_create(&thr, NULL, stream_fn, &st))
		goto out_p;
	wait_loops(&st, 2);
	l[0] = st.loops;
	if (mprotect(buf + RO_OFF, RO_LEN, PROT_READ))
		t_diag("mprotect: %s", strerror(errno));
	wait_loops(&st, 2);
	l[1] = st.loops;
	if (munmap(buf + HOLE_OFF, HOLE_LEN))
		t_diag("munmap: %s", strerror(errno));
	wait_loops(&st, 2);
	__atomic_store_n(&st.stop, 1, __ATOMIC_RELEASE);
	pthread_join(thr, NULL);
	l[2] = st.loops;
	kb = huge_kb(buf, TL);
	t_diag("stream: %ld loops before the mprotect, %ld before the munmap, %ld in all (last seed %d); AnonHugePages now %ld kB",
	       l[0], l[1], l[2], st.seed, kb);
	/*
	 * Two of the four huge pages are cut; the other two usually stay
	 * huge, but the kernel may split them too (seen once in a loaded
	 * run), which is not ODP's doing: require only that a split happened.
	 */
	if (t_odp && kb != (long)(2 * HP / 1024))
		t_diag("expected %ld kB of huge pages to remain, %ld kB did",
		       (long)(2 * HP / 1024), kb);
	r[1] = !st.bad && l[0] >= 2 && l[1] >= l[0] + 2 && l[2] >= l[1] + 2 &&
	       (kb < (long)(TL / 1024) || !t_odp);

	/* What the stream wrote last; the device sees what the CPU sees. */
	tmp = local + 4 * T_MIB;
	t_fill(tmp, W1_LEN, st.seed * 1000 + W1_OFF);
	memcpy(want + W1_OFF, tmp, W1_LEN);
	t_fill(tmp, W2_LEN, st.seed * 1000 + W2_OFF);
	memcpy(want + W2_OFF, tmp, W2_LEN);
	memset(local, 0x5a, TL);
	r[2] = t_check(buf, want, HOLE_OFF, "CPU before the hole") &&
	       t_check(buf + HOLE_OFF + HOLE_LEN, want + HOLE_OFF + HOLE_LEN,
		       TL - HOLE_OFF - HOLE_LEN, "CPU after the hole") &&
	       !dev_op_on(&ep[0], IBV_WR_RDMA_READ, local, buf, HOLE_OFF, st.mr) &&
	       !dev_op_on(&ep[0], IBV_WR_RDMA_READ, local + HOLE_OFF + HOLE_LEN,
			  buf + HOLE_OFF + HOLE_LEN, TL - HOLE_OFF - HOLE_LEN,
			  st.mr) &&
	       t_check(local, buf, HOLE_OFF, "READ before the hole") &&
	       t_check(local + HOLE_OFF + HOLE_LEN, buf + HOLE_OFF + HOLE_LEN,
		       TL - HOLE_OFF - HOLE_LEN, "READ after the hole");

	/* The read-only part and the hole. */
	t_fill(local, RO_LEN, 63);
	s = dev_op_on(&ep[1], IBV_WR_RDMA_WRITE, local, buf + RO_OFF, RO_LEN,
		      st.mr);
	if (t_odp)
		r[3] = s == IBV_WC_REM_ACCESS_ERR &&
		       t_check(buf + RO_OFF, want + RO_OFF, RO_LEN,
			       "read-only part after the failed WRITE");
	else
		r[3] = s == IBV_WC_SUCCESS &&
		       t_check(buf + RO_OFF, local, RO_LEN,
			       "pinned: read-only part after the WRITE");
	memset(local, 0x5a, HOLE_LEN);
	s = dev_op_on(&ep[2], IBV_WR_RDMA_READ, local, buf + HOLE_OFF,
		      HOLE_LEN, st.mr);
	if (t_odp)
		r[3] = r[3] && s == IBV_WC_REM_ACCESS_ERR &&
		       t_check_byte(local, 0x5a, HOLE_LEN,
				    "local buffer after the failed READ");
	else
		r[3] = r[3] && s == IBV_WC_SUCCESS &&
		       t_check(local, want + HOLE_OFF, HOLE_LEN,
			       "pinned: READ of the hole");
out_p:
	while (nep > 0)
		t_rc_pair_destroy(&ep[--nep]);
	t_rc_pair_destroy(&st.p);
out:
	t_dereg_mr(st.mr);
	mprotect(buf + RO_OFF, RO_LEN, PROT_READ | PROT_WRITE);
	thp_unmap(buf, TL);
	free(want);
	return ret;
}

/* -- khugepaged collapse -- */

#define CL	(2 * HP)

/* Returns -1 skip (no collapse at all in time), else sets r[0..2]. */
static int thp_collapse(bool r[3])
{
	static const char *const knobs[] = {
		KHP_DIR "scan_sleep_millisecs", KHP_DIR "alloc_sleep_millisecs",
		KHP_DIR "pages_to_scan",
	};
	static const long fast[] = { 10, 10, 8192 };
	long saved[3], kx = 0, ky = 0, scans;
	uint8_t *x, *y, *want = NULL;
	struct ibv_mr *mr = NULL;
	struct t_rc_pair p;
	int ret = 0, i, reads = 0;
	bool have_p = false;
	double t0;
	size_t off;

	memset(r, 0, 3 * sizeof(*r));
	x = thp_map(CL);
	y = thp_map(CL);
	want = malloc(CL);
	if (!x || !y || !want)
		goto out;
	madvise(x, CL, MADV_NOHUGEPAGE);
	madvise(y, CL, MADV_NOHUGEPAGE);
	t_fill(x, CL, 71);
	t_fill(y, CL, 72);
	memcpy(want, x, CL);
	mr = t_reg_mr(&dev, x, CL, T_ACCESS_ALL);
	if (!mr || t_rc_pair_create(&dev, &p, NULL))
		goto out;
	have_p = true;
	/* The device maps the small pages, and writes some. */
	memset(local, 0x5a, CL);
	r[0] = !dev_op_on(&p, IBV_WR_RDMA_READ, local, x, CL, mr) &&
	       t_check(local, want, CL, "READ of the small pages");
	t_fill(local, 3 * T_PAGE, 73);
	memcpy(want + HP - T_PAGE, local, 3 * T_PAGE);
	r[0] = r[0] && !dev_op_on(&p, IBV_WR_RDMA_WRITE, local,
				  x + HP - T_PAGE, 3 * T_PAGE, mr) &&
	       t_check(x, want, CL, "CPU after a WRITE into small pages");
	kx = huge_kb(x, CL);
	ky = huge_kb(y, CL);
	t_diag("before MADV_HUGEPAGE: AnonHugePages %ld kB (MR), %ld kB (other)",
	       kx, ky);
	r[0] = r[0] && !kx && !ky;

	for (i = 0; i < 3; i++) {
		saved[i] = t_knob_get(knobs[i]);
		t_knob_set(knobs[i], fast[i]);
	}
	if (madvise(x, CL, MADV_HUGEPAGE) || madvise(y, CL, MADV_HUGEPAGE)) {
		t_diag("madvise(MADV_HUGEPAGE): %s", strerror(errno));
		goto out_knobs;
	}
	/* Wait, with READs of the MR meanwhile and the CPU touching both. */
	t0 = t_now();
	r[1] = true;
	while (t_now() - t0 < 90) {
		volatile uint8_t sink;

		for (off = 0; off < CL; off += T_PAGE)
			sink = x[off] + y[off];
		(void)sink;
		memset(local, 0x5a, CL);
		r[1] = !dev_op_on(&p, IBV_WR_RDMA_READ, local, x, CL, mr) &&
		       t_check(local, want, CL, "READ while khugepaged runs") &&
		       r[1];
		reads++;
		kx = huge_kb(x, CL);
		ky = huge_kb(y, CL);
		if (ky == CL / 1024 && (kx == CL / 1024 || !t_odp))
			break;
		usleep(200000);
	}
	if (!t_odp && ky == CL / 1024) {
		/* two more full scans: the pinned pages stay small */
		scans = t_knob_get(KHP_DIR "full_scans");
		while (t_now() - t0 < 120 &&
		       t_knob_get(KHP_DIR "full_scans") < scans + 2)
			usleep(100000);
		kx = huge_kb(x, CL);
	}
	t_diag("after %.1f s (%d READs meanwhile): AnonHugePages %ld kB (MR), %ld kB (other); khugepaged full_scans %ld",
	       t_now() - t0, reads, kx, ky, t_knob_get(KHP_DIR "full_scans"));
	if (!kx && !ky) {
		ret = -1;
		goto out_knobs;
	}
	if (t_odp)
		r[1] = r[1] && kx == CL / 1024;
	else
		r[1] = r[1] && !kx && ky == CL / 1024;

	/* After the collapse: the device sees what the CPU sees. */
	t_fill(x + 7, 100, 74);
	memcpy(want + 7, x + 7, 100);
	memset(local, 0x5a, CL);
	r[2] = !dev_op_on(&p, IBV_WR_RDMA_READ, local, x, CL, mr) &&
	       t_check(local, want, CL, "READ after the collapse");
	t_fill(local, CL - 2 * T_PAGE, 75);
	memcpy(want + T_PAGE, local, CL - 2 * T_PAGE);
	r[2] = r[2] && !dev_op_on(&p, IBV_WR_RDMA_WRITE, local, x + T_PAGE,
				  CL - 2 * T_PAGE, mr) &&
	       t_check(x, want, CL, "CPU after a WRITE after the collapse");
	kx = huge_kb(x, CL);
	t_diag("at the end: AnonHugePages %ld kB (MR)", kx);
out_knobs:
	for (i = 0; i < 3; i++)
		if (saved[i] >= 0)
			t_knob_set(knobs[i], saved[i]);
out:
	if (have_p)
		t_rc_pair_destroy(&p);
	t_dereg_mr(mr);
	thp_unmap(x, CL);
	thp_unmap(y, CL);
	free(want);
	return ret;
}

int main(int argc, char **argv)
{
	bool r[4];
	int ret;

	t_init(argc, argv, "ODP MRs follow KSM and transparent huge pages");
	t_plan(10);
	if (t_dev_open(&dev))
		t_bail("cannot open the RDMA device");
	local = t_mmap(LOCAL_LEN);
	if (!local)
		t_bail("out of memory");
	lmr = t_reg_mr(&dev, local, LOCAL_LEN, T_ACCESS_ALL);
	if (!lmr)
		t_bail("cannot register %s MRs", t_mode());

	ret = ksm(&r[0], &r[1], &r[2]);
	if (ret < 0) {
		t_skip("no /sys/kernel/mm/ksm (CONFIG_KSM)", "KSM merges the MR's pages");
		t_skip("no /sys/kernel/mm/ksm (CONFIG_KSM)", "KSM: RDMA WRITE into one merged page");
		t_skip("no /sys/kernel/mm/ksm (CONFIG_KSM)", "KSM: CPU write into a merged page");
	} else {
		if (t_odp)
			t_result(r[0], "KSM merges the %d pages of the ODP MR with %d pages of another region and %d of another process",
				 NA, NB, NC);
		else
			t_result(r[0], "pinned contrast: KSM merges the other region's and process' pages, none of the pinned MR's");
		t_result(r[1], "KSM: an RDMA WRITE into one merged page changes that page only (the MR's others, the other region and process keep theirs)");
		t_result(r[2], "KSM: RDMA READ returns what the CPU wrote into a merged page");
	}

	if (!thp_available() || thp_split(r) < 0) {
		for (ret = 0; ret < 4; ret++)
			t_skip("no 4 huge pages, even after compaction and MADV_COLLAPSE",
			       "THP split %d", ret);
	} else {
		t_result(r[0], "THP: RDMA READ and WRITE over 4 huge pages (AnonHugePages 8192 kB)%s",
			 t_odp ? ", still huge afterwards" : "");
		t_result(r[1], "THP: partial mprotect and partial munmap split 2 huge pages under a WRITE/READ stream, every READ what was written");
		t_result(r[2], "THP: after the splits RDMA READ returns what the CPU sees");
		if (t_odp)
			t_result(r[3], "THP: a WRITE into the read-only part and a READ of the hole: IBV_WC_REM_ACCESS_ERR, nothing changed");
		else
			t_result(r[3], "pinned contrast: the device writes into the read-only part and reads the unmapped hole");
	}

	ret = thp_available() ? thp_collapse(r) : -1;
	if (ret < 0) {
		for (ret = 0; ret < 3; ret++)
			t_skip("khugepaged collapsed nothing within 90 s",
			       "khugepaged collapse %d", ret);
	} else {
		t_result(r[0], "khugepaged: RDMA READ and WRITE over small pages (AnonHugePages 0)");
		if (t_odp)
			t_result(r[1], "khugepaged collapses the ODP MR's pages into 2 huge pages, READs meanwhile return the data");
		else
			t_result(r[1], "pinned contrast: khugepaged collapses the unregistered copy, not the pinned MR's pages");
		t_result(r[2], "khugepaged: after the collapse RDMA READ returns what the CPU sees and WRITEs land");
	}

	t_dereg_mr(lmr);
	t_dev_close(&dev);
	return t_finish();
}
