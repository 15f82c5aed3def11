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
 */
#include <errno.h>
#include <grp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/wait.h>

#include "odptest.h"

#define NOBODY		65534
#define MEMLOCK		(64 * T_KIB)
#define NR_PAGES	1024
#define BATCH		64
#define NPAIRS		4	/* faults of different QPs proceed in parallel */
#define KMEM_LIMIT_KB	1024

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

static bool post_batches(struct huge *h, enum ibv_wr_opcode op,
			 const struct spot *s, int n)
{
	const char *what = op == IBV_WR_RDMA_WRITE ? "WRITE" : "READ";
	uint8_t *lbuf = op == IBV_WR_RDMA_WRITE ? h->src : h->dst;
	uint32_t lkey = op == IBV_WR_RDMA_WRITE ? h->smr->lkey : h->dmr->lkey;
	int i, k, q, posted[NPAIRS];

	/* Spot k goes on pair k % NPAIRS. */
	for (i = 0; i < n; i += BATCH) {
		memset(posted, 0, sizeof(posted));
		for (k = i; k < n && k < i + BATCH; k++) {
			q = k % NPAIRS;
			if (t_post_rdma(h->p[q].qp[0], op, k, lbuf + s[k].loff,
					s[k].size, lkey,
					(uintptr_t)h->base + s[k].off,
					h->mr->rkey))
				return false;
			posted[q]++;
		}
		for (q = 0; q < NPAIRS; q++)
			if (posted[q] && !t_wait_ok(h->p[q].scq[0], posted[q],
						    what))
				return false;
	}
	return true;
}

/* WRITE the spots, then check with the CPU: data, and zeros around it. */
static bool huge_write(struct huge *h, const struct spot *s, int n)
{
	char what[64];
	bool ok;
	int i;

	for (i = 0; i < n; i++)
		t_fill(h->src + s[i].loff, s[i].size, 7000 + i);
	ok = post_batches(h, IBV_WR_RDMA_WRITE, s, n);
	for (i = 0; i < n; i++) {
		size_t pg = s[i].off & ~(T_PAGE - 1);
		size_t end = (s[i].off + s[i].size + T_PAGE - 1) &
			     ~(T_PAGE - 1);

		snprintf(what, sizeof(what), "spot %d at 0x%zx+%zu", i,
			 s[i].off, s[i].size);
		if (!t_check(h->base + s[i].off, h->src + s[i].loff,
			     s[i].size, what) ||
		    !t_check_byte(h->base + pg, 0, s[i].off - pg,
				  "bytes before a spot") ||
		    !t_check_byte(h->base + s[i].off + s[i].size, 0,
				  end - s[i].off - s[i].size,
				  "bytes after a spot")) {
			ok = false;
			break;
		}
	}
	return ok;
}

/* READ the spots back into untouched memory; also read untouched pages. */
static bool huge_read(struct huge *h, const struct spot *s, int n,
		      const struct spot *holes, int nholes)
{
	char what[64];
	bool ok;
	int i;

	ok = post_batches(h, IBV_WR_RDMA_READ, s, n);
	for (i = 0; ok && i < n; i++) {
		snprintf(what, sizeof(what), "READ spot %d at 0x%zx+%zu", i,
			 s[i].off, s[i].size);
		ok = t_check(h->dst + s[i].loff, h->src + s[i].loff,
			     s[i].size, what);
	}
	if (!ok)
		return false;
	/* Pages nobody wrote read as zeros. */
	for (i = 0; i < nholes; i++)
		memset(h->dst + holes[i].loff, 0xee, holes[i].size);
	ok = post_batches(h, IBV_WR_RDMA_READ, holes, nholes);
	for (i = 0; ok && i < nholes; i++)
		ok = t_check_byte(h->dst + holes[i].loff, 0, holes[i].size,
				  "READ of an untouched page");
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

/* Exit status: 0 pass, 1 fail. */
static int child_odp(void)
{
	struct spot s[16];
	struct t_dev d;
	struct huge h = { .d = &d, .len = T_TIB };
	double t0;
	bool ok;

	if (drop_privileges() || t_dev_open(&d))
		return 1;
	h.base = map_huge(h.len);
	if (!h.base)
		return 1;
	t0 = t_now();
	h.mr = t_reg_mr_mode(&d, h.base, h.len, T_ACCESS_ALL, true);
	if (!h.mr)
		return 1;
	t_diag("uid %d, memlock 64 KiB: 1 TiB ODP registration took %.3f ms",
	       (int)getuid(), (t_now() - t0) * 1e3);
	if (huge_local_setup(&h))
		return 1;
	pick_spots(s, 16, h.len, 42, NULL, 0);
	ok = huge_write(&h, s, 16);
	ok = ok && huge_read(&h, s, 16, NULL, 0);
	huge_local_teardown(&h);
	if (ibv_dereg_mr(h.mr)) {
		t_diag("ibv_dereg_mr: %s", strerror(errno));
		ok = false;
	}
	return ok ? 0 : 1;
}

static int child_pinned(void)
{
	struct ibv_mr *mr;
	struct t_dev d;
	void *base;
	double t0;
	int err;

	if (drop_privileges() || t_dev_open(&d))
		return 1;
	base = map_huge(T_TIB);
	if (!base)
		return 1;
	t0 = t_now();
	mr = t_reg_mr_mode(&d, base, T_TIB, T_ACCESS_ALL, false);
	err = errno;
	if (mr) {
		t_diag("uid %d, memlock 64 KiB: pinned registration of 1 TiB succeeded",
		       (int)getuid());
		ibv_dereg_mr(mr);
		return 1;
	}
	t_diag("uid %d, memlock 64 KiB: pinned registration of 1 TiB failed after %.3f ms: %s (expected)",
	       (int)getuid(), (t_now() - t0) * 1e3, strerror(err));
	if (err != ENOMEM && err != EPERM && err != EFAULT)
		return 1;
	t_dev_close(&d);
	return 0;
}

static bool run_child(int (*fn)(void), const char *what)
{
	int status;
	pid_t pid;

	fflush(stdout);
	pid = fork();
	if (pid < 0) {
		t_diag("fork: %s", strerror(errno));
		return false;
	}
	if (!pid) {
		alarm(120);
		fflush(stdout);
		_exit(fn());
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

int main(int argc, char **argv)
{
	static struct spot spots[NR_PAGES], holes[64];
	struct t_dev d;
	struct huge h = { .d = &d };
	long k0, k1, k2;
	const char *range;
	bool reg_ok;
	double t0;

	t_init(argc, argv, "1 TiB sparse ODP MR: no pinning, no up-front kernel memory");
	t_plan(7);

	/* Unprivileged children first: this process has opened nothing. */
	if (t_odp)
		t_result(run_child(child_odp, "unprivileged ODP"),
			 "uid %d, memlock 64 KiB: 1 TiB ODP registration succeeds, WRITE/READ 16 pages",
			 NOBODY);
	else
		t_skip("ODP only", "uid %d, memlock 64 KiB: 1 TiB ODP registration succeeds",
		       NOBODY);
	t_result(run_child(child_pinned, "unprivileged pinned"),
		 "uid %d, memlock 64 KiB: 1 TiB pinned registration fails cleanly (ENOMEM/EPERM/EFAULT)",
		 NOBODY);

	if (set_memlock())
		t_bail("setrlimit");
	if (t_dev_open(&d))
		t_bail("cannot open the RDMA device");
	h.len = t_odp ? T_TIB : 64 * T_MIB;
	range = t_odp ? "1 TiB" : "64 MiB (pinned)";
	h.base = map_huge(h.len);
	if (!h.base)
		t_bail("cannot map %s", range);

	k0 = t_kmem_kb();
	t0 = t_now();
	h.mr = t_reg_mr(&d, h.base, h.len, T_ACCESS_ALL);
	k1 = t_kmem_kb();
	reg_ok = h.mr;
	if (reg_ok)
		t_diag("registration of %s took %.3f ms", range,
		       (t_now() - t0) * 1e3);
	t_result(reg_ok, "root, memlock 64 KiB: register %s %s", range,
		 t_mode());
	if (t_odp) {
		t_diag("kernel memory (Slab+VmallocUsed+PageTables): %ld kB before, %ld kB after registration: %+ld kB",
		       k0, k1, k1 - k0);
		t_result(reg_ok && k0 >= 0 && k1 - k0 < KMEM_LIMIT_KB,
			 "kernel memory grows by < 1 MiB at 1 TiB ODP registration");
	} else {
		t_skip("ODP only", "kernel memory grows by < 1 MiB at registration");
	}
	if (!reg_ok || huge_local_setup(&h)) {
		t_result(false, "RDMA WRITE at %d random pages of %s", NR_PAGES,
			 range);
		t_result(false, "RDMA READ at %d random pages of %s", NR_PAGES,
			 range);
	} else {
		pick_spots(spots, NR_PAGES, h.len, 1, NULL, 0);
		/* Pages that nobody writes, for reads of untouched memory. */
		pick_spots(holes, 64, h.len, 2, spots, NR_PAGES);
		t0 = t_now();
		t_result(huge_write(&h, spots, NR_PAGES),
			 "RDMA WRITE at %d random pages of %s, CPU sees the data",
			 NR_PAGES, range);
		t_diag("WRITE phase %.3f s; kernel memory now %+ld kB",
		       t_now() - t0, t_kmem_kb() - k0);
		t0 = t_now();
		t_result(huge_read(&h, spots, NR_PAGES, holes, 64),
			 "RDMA READ at %d random pages of %s, and zeros from untouched pages",
			 NR_PAGES, range);
		t_diag("READ phase %.3f s", t_now() - t0);
	}
	huge_local_teardown(&h);
	if (reg_ok) {
		int ret = ibv_dereg_mr(h.mr);

		k2 = t_kmem_kb();
		t_diag("kernel memory after deregistration: %+ld kB against before registration",
		       k2 - k0);
		t_result(!ret, "deregister %s", range);
	} else {
		t_result(false, "deregister %s", range);
	}
	munmap(h.base, h.len);
	t_dev_close(&d);
	return t_finish();
}
