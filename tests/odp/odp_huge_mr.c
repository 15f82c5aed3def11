// SPDX-License-Identifier: GPL-2.0 OR Linux-OpenIB
/*
 * odp_huge_mr: register a 1 TiB sparse mapping with ODP.
 *
 * An ODP MR pins nothing and must not allocate per-page state up front:
 * registering a 1 TiB MAP_NORESERVE mapping with RLIMIT_MEMLOCK at 64 KiB
 * must succeed, for root and for an unprivileged user, and must grow the
 * kernel's memory (Slab + VmallocUsed + PageTables) by less than 1 MiB.
 * Then RDMA WRITE and READ at 1024 random pages across the TiB, checked
 * byte for byte (and by the CPU).
 *
 * Contrast: an unprivileged process with RLIMIT_MEMLOCK 64 KiB cannot
 * register the same range pinned; that must fail cleanly (ENOMEM, EPERM or
 * EFAULT), quickly, without harming the machine.  This check runs in both
 * modes.  With --pinned the root cases use a 64 MiB range instead of 1 TiB
 * (pinning a TiB as root would take the guest down) and the ODP-only
 * checks are skipped.
 *
 * Each test registers the range afresh (as root, memlock 64 KiB) and goes
 * as far as its check needs: the READ test WRITEs first, deregistration
 * comes after the WRITEs and READs.  The unprivileged cases run in a child
 * of the test's own, which drops to uid 65534 and opens the device anew.
 */
#include <errno.h>
#include <grp.h>
#include <setjmp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/wait.h>

#include "odpharness.h"

#define NOBODY		65534
#define MEMLOCK		(64 * T_KIB)
#define NR_PAGES	1024
#define NR_HOLES	64
#define BATCH		64
#define NPAIRS		4	/* faults of different QPs proceed in parallel */
#define KMEM_LIMIT_KB	1024
/* the tests with 1024 pages of traffic: 50 s measured under TCG, loaded */
#define TRAFFIC_SECS	180

struct spot {
	size_t off;	/* byte offset in the huge mapping */
	size_t size;
	size_t loff;	/* offset in the local buffers */
};

static int set_memlock(void)
{
	struct rlimit rl = { .rlim_cur = MEMLOCK, .rlim_max = MEMLOCK };

	if (setrlimit(RLIMIT_MEMLOCK, &rl)) {
		t_diag("setrlimit(RLIMIT_MEMLOCK, 64 KiB): %s",
		       strerror(errno));
		return -1;
	}
	return 0;
}

static void *map_huge(size_t len)
{
	void *p = mmap(NULL, len, PROT_READ | PROT_WRITE,
		       MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);

	if (p == MAP_FAILED) {
		t_diag("mmap(%zu, MAP_NORESERVE): %s", len, strerror(errno));
		return NULL;
	}
	return p;
}

static bool near(size_t pg, const struct spot *s, int n)
{
	int j;

	for (j = 0; j < n; j++) {
		size_t other = s[j].off / T_PAGE;

		if (pg + 2 > other && pg < other + 2)
			return true;
	}
	return false;
}

/*
 * @n spots on distinct, non-adjacent random pages of a @len byte range,
 * each 1..4096 bytes at a random offset (so about half cross into the next
 * page, which nobody else uses), and away from the @nx spots in @x.
 */
static void pick_spots(struct spot *s, int n, size_t len, uint64_t seed,
		       const struct spot *x, int nx)
{
	size_t npages = len / T_PAGE, pg;
	int i;

	for (i = 0; i < n; i++) {
		do
			pg = 1 + t_rand64(&seed) % (npages - 3);
		while (near(pg, s, i) || near(pg, x, nx));
		s[i].off = pg * T_PAGE + t_rand64(&seed) % T_PAGE;
		s[i].size = 1 + t_rand64(&seed) % T_PAGE;
		s[i].loff = (size_t)i * 2 * T_PAGE + (i * 37) % T_PAGE;
	}
}

struct huge {
	struct t_dev *d;
	struct t_rc_pair p[NPAIRS];
	uint8_t *base;
	size_t len;
	struct ibv_mr *mr;	/* over the huge range */
	uint8_t *src, *dst;	/* local buffers, 2 pages per spot */
	struct ibv_mr *smr, *dmr;
	size_t llen;
};

static int huge_local_setup(struct huge *h)
{
	int i;

	h->llen = (size_t)NR_PAGES * 2 * T_PAGE;
	h->src = t_mmap(h->llen);
	h->dst = t_mmap(h->llen);
	if (!h->src || !h->dst)
		return -1;
	h->smr = t_reg_mr(h->d, h->src, h->llen, T_ACCESS_ALL);
	h->dmr = t_reg_mr(h->d, h->dst, h->llen, T_ACCESS_ALL);
	if (!h->smr || !h->dmr)
		return -1;
	for (i = 0; i < NPAIRS; i++)
		if (t_rc_pair_create(h->d, &h->p[i], NULL))
			return -1;
	return 0;
}

static void huge_local_teardown(struct huge *h)
{
	int i;

	for (i = 0; i < NPAIRS; i++)
		t_rc_pair_destroy(&h->p[i]);
	t_dereg_mr(h->smr);
	t_dereg_mr(h->dmr);
	t_munmap(h->src, h->llen);
	t_munmap(h->dst, h->llen);
	h->smr = h->dmr = NULL;
	h->src = h->dst = NULL;
}

/* Post the spots in batches of BATCH, spot k on pair k % NPAIRS. */
static bool post_batches(struct __test_metadata *_metadata, struct huge *h,
			 enum ibv_wr_opcode op, const struct spot *s, int n)
{
	const char *what = op == IBV_WR_RDMA_WRITE ? "WRITE" : "READ";
	uint8_t *lbuf = op == IBV_WR_RDMA_WRITE ? h->src : h->dst;
	uint32_t lkey = op == IBV_WR_RDMA_WRITE ? h->smr->lkey : h->dmr->lkey;
	int i, k, q, ret, posted[NPAIRS];
	bool ok;

	for (i = 0; i < n; i += BATCH) {
		memset(posted, 0, sizeof(posted));
		for (k = i; k < n && k < i + BATCH; k++) {
			q = k % NPAIRS;
			ret = t_post_rdma(h->p[q].qp[0], op, k,
					  lbuf + s[k].loff, s[k].size, lkey,
					  (uintptr_t)h->base + s[k].off,
					  h->mr->rkey);
			EXPECT_EQ(0, ret) {
				TH_LOG("posting the %s of spot %d", what, k);
			}
			if (ret)
				return false;
			posted[q]++;
		}
		for (q = 0; q < NPAIRS; q++) {
			if (!posted[q])
				continue;
			ok = t_wait_ok(h->p[q].scq[0], posted[q], what);
			EXPECT_TRUE(ok);
			if (!ok)
				return false;
		}
	}
	return true;
}

/*
 * WRITE the spots, then check with the CPU: data, and zeros around it.
 * Stops at the first spot that is wrong; false if any was.
 */
static bool huge_write(struct __test_metadata *_metadata, struct huge *h,
		       const struct spot *s, int n)
{
	char what[64];
	bool ok;
	int i;

	for (i = 0; i < n; i++)
		t_fill(h->src + s[i].loff, s[i].size, 7000 + i);
	ok = post_batches(_metadata, h, IBV_WR_RDMA_WRITE, s, n);
	for (i = 0; i < n; i++) {
		size_t pg = s[i].off & ~(T_PAGE - 1);
		size_t end = (s[i].off + s[i].size + T_PAGE - 1) &
			     ~(T_PAGE - 1);
		bool good;

		snprintf(what, sizeof(what), "spot %d at 0x%zx+%zu", i,
			 s[i].off, s[i].size);
		good = t_check(h->base + s[i].off, h->src + s[i].loff,
			       s[i].size, what) &&
		       t_check_byte(h->base + pg, 0, s[i].off - pg,
				    "bytes before a spot") &&
		       t_check_byte(h->base + s[i].off + s[i].size, 0,
				    end - s[i].off - s[i].size,
				    "bytes after a spot");
		EXPECT_TRUE(good) {
			TH_LOG("%s", what);
		}
		if (!good)
			return false;
	}
	return ok;
}

/*
 * READ the spots back into untouched memory; also read untouched pages
 * (@holes), which must read as zeros.  Stops at the first failure.
 */
static bool huge_read(struct __test_metadata *_metadata, struct huge *h,
		      const struct spot *s, int n, const struct spot *holes,
		      int nholes)
{
	char what[64];
	bool ok;
	int i;

	ok = post_batches(_metadata, h, IBV_WR_RDMA_READ, s, n);
	for (i = 0; ok && i < n; i++) {
		snprintf(what, sizeof(what), "READ spot %d at 0x%zx+%zu", i,
			 s[i].off, s[i].size);
		ok = t_check(h->dst + s[i].loff, h->src + s[i].loff,
			     s[i].size, what);
		EXPECT_TRUE(ok);
	}
	if (!ok)
		return false;
	/* Pages nobody wrote read as zeros. */
	for (i = 0; i < nholes; i++)
		memset(h->dst + holes[i].loff, 0xee, holes[i].size);
	ok = post_batches(_metadata, h, IBV_WR_RDMA_READ, holes, nholes);
	for (i = 0; ok && i < nholes; i++) {
		ok = t_check_byte(h->dst + holes[i].loff, 0, holes[i].size,
				  "READ of an untouched page");
		EXPECT_TRUE(ok) {
			TH_LOG("hole %d at 0x%zx+%zu", i, holes[i].off,
			       holes[i].size);
		}
	}
	return ok;
}

/* ---- children that drop privileges -------------------------------------- */

static int drop_privileges(void)
{
	if (set_memlock())
		return -1;
	if (geteuid() != 0) {
		t_diag("not root: staying uid %d", (int)getuid());
		return 0;
	}
	if (setgroups(0, NULL) || setgid(NOBODY) || setuid(NOBODY)) {
		t_diag("dropping to uid %d: %s", NOBODY, strerror(errno));
		return -1;
	}
	if (getuid() != NOBODY || geteuid() != NOBODY || !setuid(0)) {
		t_diag("still privileged after setuid(%d)", NOBODY);
		return -1;
	}
	return 0;
}

/*
 * In the child: register 1 TiB ODP unprivileged, WRITE and READ 16 spots,
 * deregister.  Exits with the child.
 */
static void child_odp(struct __test_metadata *_metadata)
{
	struct spot s[16];
	struct t_dev d;
	struct huge h = { .d = &d, .len = T_TIB };
	double t0;
	int ret;

	ASSERT_EQ(0, drop_privileges());
	ASSERT_EQ(0, t_dev_open(&d));
	h.base = map_huge(h.len);
	ASSERT_NE(NULL, h.base);
	t0 = t_now();
	h.mr = t_reg_mr_mode(&d, h.base, h.len, T_ACCESS_ALL, true);
	ASSERT_NE(NULL, h.mr);
	t_diag("uid %d, memlock 64 KiB: 1 TiB ODP registration took %.3f ms",
	       (int)getuid(), (t_now() - t0) * 1e3);
	ASSERT_EQ(0, huge_local_setup(&h));
	pick_spots(s, 16, h.len, 42, NULL, 0);
	if (huge_write(_metadata, &h, s, 16))
		huge_read(_metadata, &h, s, 16, NULL, 0);
	huge_local_teardown(&h);
	ret = ibv_dereg_mr(h.mr);
	EXPECT_EQ(0, ret) {
		TH_LOG("ibv_dereg_mr: %s", strerror(errno));
	}
}

/* In the child: 1 TiB pinned, unprivileged, must fail cleanly. */
static void child_pinned(struct __test_metadata *_metadata)
{
	struct ibv_mr *mr;
	struct t_dev d;
	void *base;
	double t0;
	int err;

	ASSERT_EQ(0, drop_privileges());
	ASSERT_EQ(0, t_dev_open(&d));
	base = map_huge(T_TIB);
	ASSERT_NE(NULL, base);
	t0 = t_now();
	mr = t_reg_mr_mode(&d, base, T_TIB, T_ACCESS_ALL, false);
	err = errno;
	EXPECT_EQ(NULL, mr) {
		TH_LOG("uid %d, memlock 64 KiB: pinned registration of 1 TiB succeeded",
		       (int)getuid());
	}
	if (mr) {
		ibv_dereg_mr(mr);
		return;
	}
	t_diag("uid %d, memlock 64 KiB: pinned registration of 1 TiB failed after %.3f ms: %s (expected)",
	       (int)getuid(), (t_now() - t0) * 1e3, strerror(err));
	EXPECT_TRUE(err == ENOMEM || err == EPERM || err == EFAULT) {
		TH_LOG("errno %d (%s), expected ENOMEM, EPERM or EFAULT",
		       err, strerror(err));
	}
	t_dev_close(&d);
}

/*
 * Run @fn in a child of the test, under a time limit of 120 s: its
 * EXPECTs and ASSERTs fail the child, which then exits non-zero (an
 * ASSERT jumps back here, not to the test's teardown, which is the
 * parent's to run).  True if the child passed.
 */
static bool run_child(struct __test_metadata *_metadata,
		      void (*fn)(struct __test_metadata *), const char *what)
{
	int status;
	pid_t pid;

	fflush(stdout);
	fflush(stderr);
	pid = fork();
	if (pid < 0) {
		t_diag("fork: %s", strerror(errno));
		return false;
	}
	if (!pid) {
		alarm(120);
		if (setjmp(_metadata->env))
			_exit(1);
		fn(_metadata);
		fflush(stdout);
		fflush(stderr);
		_exit(_metadata->passed ? 0 : 1);
	}
	if (waitpid(pid, &status, 0) != pid) {
		t_diag("waitpid: %s", strerror(errno));
		return false;
	}
	if (WIFSIGNALED(status)) {
		t_diag("%s: child killed by signal %d (%s)", what,
		       WTERMSIG(status), strsignal(WTERMSIG(status)));
		return false;
	}
	return WIFEXITED(status) && WEXITSTATUS(status) == 0;
}

/* ---- the tests ----------------------------------------------------------- */

/*
 * The device (as root, memlock 64 KiB), the range of this mode (1 TiB ODP,
 * 64 MiB pinned) and its MR, the local buffers and QP pairs, the spots.
 */
FIXTURE(huge_mr) {
	struct t_dev dev;
	struct huge h;
	const char *range;
	long k0;
	struct spot spots[NR_PAGES], holes[NR_HOLES];
};

ODP_VARIANTS(huge_mr);

FIXTURE_SETUP(huge_mr)
{
	t_variant();
	self->h.d = &self->dev;
	self->h.len = t_odp ? T_TIB : 64 * T_MIB;
	self->range = t_odp ? "1 TiB" : "64 MiB (pinned)";
	ASSERT_EQ(0, set_memlock());
	ASSERT_EQ(0, t_dev_open(&self->dev));
}

FIXTURE_TEARDOWN(huge_mr)
{
	huge_local_teardown(&self->h);
	t_dereg_mr(self->h.mr);
	if (self->h.base)
		munmap(self->h.base, self->h.len);
	t_dev_close(&self->dev);
}

/* Map and register the range, measuring the kernel's memory around it. */
static void huge_register(struct __test_metadata *_metadata,
			  FIXTURE_DATA(huge_mr) *self, long *k1)
{
	struct huge *h = &self->h;
	double t0;

	h->base = map_huge(h->len);
	ASSERT_NE(NULL, h->base) {
		TH_LOG("cannot map %s", self->range);
	}
	self->k0 = t_kmem_kb();
	t0 = t_now();
	h->mr = t_reg_mr(&self->dev, h->base, h->len, T_ACCESS_ALL);
	*k1 = t_kmem_kb();
	ASSERT_NE(NULL, h->mr) {
		TH_LOG("root, memlock 64 KiB: register %s %s", self->range,
		       t_mode());
	}
	t_diag("registration of %s took %.3f ms", self->range,
	       (t_now() - t0) * 1e3);
}

/*
 * Registered, then RDMA WRITE at NR_PAGES random pages; with @read also
 * READ them back and NR_HOLES untouched pages.
 */
static void huge_traffic(struct __test_metadata *_metadata,
			 FIXTURE_DATA(huge_mr) *self, bool read)
{
	struct huge *h = &self->h;
	double t0;
	long k1;

	huge_register(_metadata, self, &k1);
	ASSERT_EQ(0, huge_local_setup(h));
	pick_spots(self->spots, NR_PAGES, h->len, 1, NULL, 0);
	/* Pages that nobody writes, for reads of untouched memory. */
	pick_spots(self->holes, NR_HOLES, h->len, 2, self->spots, NR_PAGES);
	t0 = t_now();
	huge_write(_metadata, h, self->spots, NR_PAGES);
	t_diag("WRITE phase %.3f s; kernel memory now %+ld kB",
	       t_now() - t0, t_kmem_kb() - self->k0);
	if (!read)
		return;
	t0 = t_now();
	huge_read(_metadata, h, self->spots, NR_PAGES, self->holes, NR_HOLES);
	t_diag("READ phase %.3f s", t_now() - t0);
}

/* Unprivileged children first: uid 65534, memlock 64 KiB: 1 TiB ODP
 * registration succeeds, WRITE/READ 16 pages
 */
TEST_F(huge_mr, unprivileged_odp_1tib)
{
	if (!variant->odp)
		SKIP(return, "ODP only");
	EXPECT_TRUE(run_child(_metadata, child_odp, "unprivileged ODP"));
}

/*
 * uid 65534, memlock 64 KiB: 1 TiB pinned registration fails cleanly
 * (ENOMEM/EPERM/EFAULT)
 */
TEST_F(huge_mr, unprivileged_pinned_1tib_fails)
{
	EXPECT_TRUE(run_child(_metadata, child_pinned, "unprivileged pinned"));
}

/* root, memlock 64 KiB: register 1 TiB odp (pinned: 64 MiB) */
TEST_F(huge_mr, root_register)
{
	long k1;

	huge_register(_metadata, self, &k1);
}

/* kernel memory grows by < 1 MiB at 1 TiB ODP registration */
TEST_F(huge_mr, register_kernel_memory)
{
	long k1;

	if (!variant->odp)
		SKIP(return, "ODP only");
	huge_register(_metadata, self, &k1);
	t_diag("kernel memory (Slab+VmallocUsed+PageTables): %ld kB before, %ld kB after registration: %+ld kB",
	       self->k0, k1, k1 - self->k0);
	EXPECT_LE(0, self->k0);
	EXPECT_GT(KMEM_LIMIT_KB, k1 - self->k0);
}

/* RDMA WRITE at 1024 random pages of the range, CPU sees the data */
TEST_F_TIMEOUT(huge_mr, write_random_pages, TRAFFIC_SECS)
{
	huge_traffic(_metadata, self, false);
}

/*
 * RDMA READ at 1024 random pages of the range (after the WRITE), and
 * zeros from untouched pages
 */
TEST_F_TIMEOUT(huge_mr, read_random_pages, TRAFFIC_SECS)
{
	huge_traffic(_metadata, self, true);
}

/* deregister the range (after the WRITEs and READs) */
TEST_F_TIMEOUT(huge_mr, deregister, TRAFFIC_SECS)
{
	struct huge *h = &self->h;
	int ret, err;

	huge_traffic(_metadata, self, true);
	huge_local_teardown(h);
	ret = ibv_dereg_mr(h->mr);
	err = errno;
	h->mr = NULL;
	t_diag("kernel memory after deregistration: %+ld kB against before registration",
	       t_kmem_kb() - self->k0);
	EXPECT_EQ(0, ret) {
		TH_LOG("ibv_dereg_mr: %s", strerror(err));
	}
}

ODP_HARNESS_MAIN("1 TiB sparse ODP MR: no pinning, no up-front kernel memory")
