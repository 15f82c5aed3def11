// SPDX-License-Identifier: GPL-2.0 OR Linux-OpenIB
/*
 * odp_bench: the micro-benchmarks of `make bench`, run in the test guest.
 *
 *   odp_bench memcpy   guest memcpy bandwidth (the ceiling of rxe's copies)
 *   odp_bench reg      ibv_reg_mr/ibv_dereg_mr time and kernel memory versus
 *                      size, pinned and ODP
 *   odp_bench fault    page-fault throughput of a synchronous prefetch and
 *                      kernel memory per faulted page
 *   odp_bench inval    munmap / MADV_DONTNEED of a fully faulted range with
 *                      and without a registered ODP MR
 *   odp_bench migrate  move_pages() throughput with no MR, an idle ODP MR,
 *                      an ODP MR under RDMA WRITE traffic, and a pinned MR
 *   odp_bench stream   RDMA WRITE/READ/SEND streams over a fresh buffer
 *                      (pass 1: cold for ODP) and again (pass 2: warm)
 *
 * Options: --reps N (3), --csv FILE (append; default stdout), --sizes LIST
 * (reg: 4K,64K,1M,16M,256M,1G,16G,256G,1T), --pinned-max S (reg: the
 * largest pinned registration, 1G), --size S (fault 256M, inval 1G,
 * migrate 64M, stream: the largest buffer, 16M), --msg LIST (stream
 * message sizes, 4K,64K,1M), --ops LIST (stream: write,read,send),
 * --qp-timeout N (stream, migrate: the QPs' retransmission timeout, 19),
 * --tag T (stream: appended to the benchmark's name).  Sizes take K, M, G,
 * T suffixes.  RXE_DEV (rxe0) and RXE_GID (1) select the device.
 *
 * Every measurement is one CSV row:
 *   micro,BENCH,MODE,SIZE,METRIC,UNIT,REP,VALUE
 * and every step prints one progress line ("bench: ...") on stdout.
 * Bandwidths are in MiB/s (2^20 bytes per second, as perftest's MB/sec).
 */
#include <errno.h>
#include <getopt.h>
#include <numa.h>
#include <numaif.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "odptest.h"
#include "rxeodp.h"

#ifndef MADV_POPULATE_WRITE
#define MADV_POPULATE_WRITE 23
#endif

#define ACCESS	(IBV_ACCESS_LOCAL_WRITE | IBV_ACCESS_REMOTE_WRITE | \
		 IBV_ACCESS_REMOTE_READ | IBV_ACCESS_REMOTE_ATOMIC)
#define MIB	(1024.0 * 1024.0)

static FILE *csv;
static int reps = 3;
static struct t_dev dev;
static bool dev_opened;
static int qp_timeout = 19;

/* ---- output ------------------------------------------------------------- */

static void row(const char *bench, const char *mode, unsigned long long size,
		const char *metric, const char *unit, int rep, double v)
{
	fprintf(csv, "micro,%s,%s,%llu,%s,%s,%d,%.6g\n", bench, mode, size,
		metric, unit, rep, v);
	fflush(csv);
}

static void say(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void say(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	fputs("bench: ", stdout);
	vprintf(fmt, ap);
	putchar('\n');
	fflush(stdout);
	va_end(ap);
}

static __attribute__((noreturn, format(printf, 1, 2)))
void die(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	fputs("odp_bench: error: ", stderr);
	vfprintf(stderr, fmt, ap);
	fputc('\n', stderr);
	va_end(ap);
	exit(1);
}

static const char *hsize(unsigned long long s)
{
	static const char *const unit[] = { "", "KiB", "MiB", "GiB", "TiB" };
	static char buf[4][32];
	static int i;
	char *b = buf[i++ & 3];
	int u = 0;

	while (s >= 1024 && !(s & 1023) && u < 4) {
		s >>= 10;
		u++;
	}
	snprintf(b, sizeof(buf[0]), "%llu%s", s, u ? unit[u] : " B");
	return b;
}

static unsigned long long parse_size(const char *s)
{
	char *end;
	unsigned long long v = strtoull(s, &end, 0);

	switch (*end) {
	case 'T': case 't': v <<= 10; /* fall through */
	case 'G': case 'g': v <<= 10; /* fall through */
	case 'M': case 'm': v <<= 10; /* fall through */
	case 'K': case 'k': v <<= 10; end++; break;
	case 0: break;
	default: die("bad size %s", s);
	}
	if (*end && strcmp(end, "iB") && strcmp(end, "B"))
		die("bad size %s", s);
	return v;
}

static int parse_list(const char *s, unsigned long long *out, int max)
{
	char *dup = strdup(s), *tok, *save = NULL;
	int n = 0;

	for (tok = strtok_r(dup, ", ", &save); tok && n < max;
	     tok = strtok_r(NULL, ", ", &save))
		out[n++] = parse_size(tok);
	free(dup);
	return n;
}

/* ---- device, counters, memory ------------------------------------------- */

static void open_dev(void)
{
	if (dev_opened)
		return;
	if (t_dev_open(&dev))
		die("cannot open the RDMA device");
	dev_opened = true;
}

enum { C_FAULTS, C_INVAL, C_PREFETCH, C_WAITS, C_WAIT_US, C_RETRY, C_NR };
static const char *const ctr_name[C_NR] = {
	"odp_page_faults", "odp_page_invalidations", "odp_page_prefetch",
	"odp_fault_waits", "odp_fault_wait_us", "completer_retry_err",
};

static void ctr_read(long long *c)
{
	const char *name = getenv("RXE_DEV") ? : "rxe0";
	char path[256];
	int i;

	/*
	 * The core caches hw_counters reads for their "lifespan" (10 ms by
	 * default, at jiffy granularity): let it expire, or a read right
	 * after a short operation returns the value from before it.
	 */
	usleep(15000);
	for (i = 0; i < C_NR; i++) {
		FILE *f;

		snprintf(path, sizeof(path),
			 "/sys/class/infiniband/%s/ports/1/hw_counters/%s",
			 name, ctr_name[i]);
		c[i] = 0;
		f = fopen(path, "r");
		if (!f)
			continue;
		if (fscanf(f, "%lld", &c[i]) != 1)
			c[i] = 0;
		fclose(f);
	}
}

/* Kernel memory: slab + vmalloc, and the free page count. */
static void kmem(long *slab_kb, long *free_kb)
{
	*slab_kb = t_meminfo_kb("Slab") + t_meminfo_kb("VmallocUsed");
	*free_kb = t_meminfo_kb("MemFree");
}

/* Anonymous memory, reserved lazily; 4 KiB pages unless @thp. */
static void *map(size_t len, bool thp)
{
	void *p = mmap(NULL, len, PROT_READ | PROT_WRITE,
		       MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);

	if (p == MAP_FAILED)
		die("mmap(%s): %s", hsize(len), strerror(errno));
	if (madvise(p, len, thp ? MADV_HUGEPAGE : MADV_NOHUGEPAGE))
		die("madvise(THP): %s", strerror(errno));
	return p;
}

/* Fault every page in for writing, in the kernel (no user faults). */
static void populate(void *p, size_t len)
{
	size_t i;

	if (!madvise(p, len, MADV_POPULATE_WRITE))
		return;
	for (i = 0; i < len; i += T_PAGE)
		((volatile char *)p)[i] = 1;
}

static int prefetch(struct ibv_mr *mr, void *addr, size_t len, bool write)
{
	size_t off, n;
	int err;

	for (off = 0; off < len; off += n) {
		struct ibv_sge sge = {
			.addr = (uintptr_t)addr + off,
			.lkey = mr->lkey,
		};

		n = len - off > T_GIB ? T_GIB : len - off;
		sge.length = n;
		err = rxeodp_advise_mr(dev.pd, write ?
				       IBV_ADVISE_MR_ADVICE_PREFETCH_WRITE :
				       IBV_ADVISE_MR_ADVICE_PREFETCH,
				       IBV_ADVISE_MR_FLAG_FLUSH, &sge, 1);
		if (err) {
			fprintf(stderr, "odp_bench: advise_mr: %s\n",
				strerror(err));
			return err;
		}
	}
	return 0;
}

static struct ibv_mr *reg(void *p, size_t len, bool odp)
{
	return t_reg_mr_mode(&dev, p, len, ACCESS, odp);
}

/* ---- memcpy ------------------------------------------------------------- */

static void copy_glibc(void *dst, const void *src, size_t n)
{
	memcpy(dst, src, n);
}

static void copy_movsb(void *dst, const void *src, size_t n)
{
	__asm__ __volatile__("rep movsb"
			     : "+D"(dst), "+S"(src), "+c"(n) : : "memory");
}

/*
 * The copy bandwidth of the guest: glibc's memcpy (what user space gets)
 * over 64 KiB blocks (in cache, like a perftest buffer) and 64 MiB blocks
 * (memory); and "rep movsb", which is what the guest kernel's memcpy()
 * runs on a CPU with ERMS (QEMU's "max" CPU has it), i.e. the instruction
 * rxe's copies into and out of packets execute, over 4 KiB (a packet at
 * MTU 4096) and 64 KiB blocks.
 */
static void cmd_memcpy(void)
{
	static const struct {
		const char *mode;
		void (*fn)(void *, const void *, size_t);
		size_t size;
	} how[] = {
		{ "glibc", copy_glibc, 64 * T_KIB },
		{ "glibc", copy_glibc, 64 * T_MIB },
		{ "movsb", copy_movsb, 4 * T_KIB },
		{ "movsb", copy_movsb, 64 * T_KIB },
	};
	unsigned int h;
	int rep;

	for (h = 0; h < T_ARRAY_SIZE(how); h++) {
		size_t sz = how[h].size, i, n;
		char *src = map(sz, false), *dst = map(sz, false);
		double t0, dt;

		memset(src, 0x5a, sz);
		memset(dst, 0xa5, sz);
		/* calibrate: about half a second per measurement */
		how[h].fn(dst, src, sz);
		t0 = t_now();
		how[h].fn(dst, src, sz);
		dt = t_now() - t0;
		n = dt > 0 ? 0.5 / dt : 1;
		if (n < 2)
			n = 2;
		if (n > 65536)
			n = 65536;
		for (rep = 1; rep <= reps; rep++) {
			double bw;

			t0 = t_now();
			for (i = 0; i < n; i++) {
				how[h].fn(dst, src, sz);
				__asm__ __volatile__("" : : "r"(dst) : "memory");
			}
			dt = t_now() - t0;
			bw = n * sz / MIB / dt;
			row("memcpy", how[h].mode, sz, "bw", "MiB/s", rep, bw);
			say("memcpy (%s) %s blocks rep %d/%d: %.0f MiB/s",
			    how[h].mode, hsize(sz), rep, reps, bw);
		}
		munmap(src, sz);
		munmap(dst, sz);
	}
}

/* ---- registration ------------------------------------------------------- */

static void cmd_reg(const char *sizes_s, unsigned long long pinned_max)
{
	unsigned long long sizes[32];
	int nsizes = parse_list(sizes_s, sizes, 32), rep, k, m;

	open_dev();
	/*
	 * The first ODP MR of a process also sets up the mm's notifier
	 * subscription (mmu_notifier_register): measured apart, once, so
	 * that the reps below see the steady state.
	 */
	{
		char *p = map(T_PAGE, false);
		struct ibv_mr *mr;
		double t0;

		populate(p, T_PAGE);
		t0 = t_now();
		mr = reg(p, T_PAGE, true);
		if (mr) {
			row("reg", "odp-first", T_PAGE, "reg_time", "us", 1,
			    (t_now() - t0) * 1e6);
			say("reg: first ODP MR of the process (4 KiB): %.1f us",
			    (t_now() - t0) * 1e6);
			t_dereg_mr(mr);
		}
		mr = reg(p, T_PAGE, false);
		t_dereg_mr(mr);
		munmap(p, T_PAGE);
	}
	for (rep = 1; rep <= reps; rep++) {
		for (k = 0; k < nsizes; k++) {
			size_t sz = sizes[k];
			bool touch = sz <= pinned_max;
			char *p = map(sz, false);
			char line[256];
			int len = 0;

			/* Pinned registrations need memory; give ODP the
			 * same (populated) memory where pinned runs too. */
			if (touch)
				populate(p, sz);
			for (m = touch ? 0 : 1; m < 2; m++) {
				bool odp = m == 1;
				const char *mode = odp ? "odp" : "pinned";
				long s0, f0, s1, f1;
				struct ibv_mr *mr;
				double t0, t1, t2;

				kmem(&s0, &f0);
				t0 = t_now();
				mr = reg(p, sz, odp);
				t1 = t_now();
				if (!mr) {
					len += snprintf(line + len, sizeof(line) - len,
							" %s failed (%s);", mode,
							strerror(errno));
					continue;
				}
				kmem(&s1, &f1);
				t_dereg_mr(mr);
				t2 = t_now();
				row("reg", mode, sz, "reg_time", "us", rep,
				    (t1 - t0) * 1e6);
				row("reg", mode, sz, "dereg_time", "us", rep,
				    (t2 - t1) * 1e6);
				row("reg", mode, sz, "kmem_slab", "KiB", rep,
				    s1 - s0);
				row("reg", mode, sz, "kmem_free_drop", "KiB", rep,
				    f0 - f1);
				len += snprintf(line + len, sizeof(line) - len,
						" %s reg %.1f us dereg %.1f us, %+ld KiB kernel;",
						mode, (t1 - t0) * 1e6,
						(t2 - t1) * 1e6, f0 - f1);
			}
			munmap(p, sz);
			say("reg %s rep %d/%d:%s", hsize(sz), rep, reps, line);
		}
	}
}

/* ---- prefetch faults and memory per faulted page ------------------------ */

static void cmd_fault(size_t sz)
{
	static const struct {
		const char *mode;
		bool touch, thp;
	} v[] = {
		{ "odp-untouched", false, false },
		{ "odp-touched", true, false },
		{ "odp-touched-thp", true, true },
	};
	unsigned long pages = sz / T_PAGE;
	unsigned int k;
	int rep;

	open_dev();
	for (rep = 1; rep <= reps; rep++) {
		for (k = 0; k < T_ARRAY_SIZE(v); k++) {
			char *p = map(sz, v[k].thp);
			long long c0[C_NR], c1[C_NR];
			long s0, f0, s1, f1;
			struct ibv_mr *mr;
			double t0, t1;

			if (v[k].touch)
				populate(p, sz);
			mr = reg(p, sz, true);
			if (!mr)
				die("ODP registration of %s failed", hsize(sz));
			kmem(&s0, &f0);
			ctr_read(c0);
			t0 = t_now();
			if (prefetch(mr, p, sz, true))
				die("prefetch failed");
			t1 = t_now();
			ctr_read(c1);
			kmem(&s1, &f1);
			row("fault", v[k].mode, sz, "prefetch_rate", "pages/s",
			    rep, pages / (t1 - t0));
			row("fault", v[k].mode, sz, "prefetch_time", "ms", rep,
			    (t1 - t0) * 1e3);
			row("fault", v[k].mode, sz, "prefetched_pages", "pages",
			    rep, c1[C_PREFETCH] - c0[C_PREFETCH]);
			if (v[k].touch) {
				/* user pages exist already: what is new is
				 * the mirror's */
				row("fault", v[k].mode, sz, "kmem_per_page_slab",
				    "B", rep, (s1 - s0) * 1024.0 / pages);
				row("fault", v[k].mode, sz,
				    "kmem_per_page_free_drop", "B", rep,
				    (f0 - f1) * 1024.0 / pages);
			}
			say("fault %s %s rep %d/%d: %lu pages in %.1f ms = %.0f pages/s (counter: %lld prefetched)%s",
			    v[k].mode, hsize(sz), rep, reps, pages,
			    (t1 - t0) * 1e3, pages / (t1 - t0),
			    c1[C_PREFETCH] - c0[C_PREFETCH],
			    v[k].touch ? "" : "; allocation included");
			if (v[k].touch)
				say("fault %s: kernel memory +%.1f B per faulted page (MemFree), %+.1f B (slab)",
				    v[k].mode, (f0 - f1) * 1024.0 / pages,
				    (s1 - s0) * 1024.0 / pages);
			t_dereg_mr(mr);
			munmap(p, sz);
		}
	}
}

/* ---- invalidation ------------------------------------------------------- */

static void cmd_inval(size_t sz)
{
	static const char *const ops[] = { "munmap", "dontneed" };
	unsigned int o;
	int rep, withmr;

	open_dev();
	for (rep = 1; rep <= reps; rep++) {
		for (o = 0; o < T_ARRAY_SIZE(ops); o++) {
			double ms[2] = { 0, 0 };
			long long inv = 0;

			for (withmr = 0; withmr < 2; withmr++) {
				char *p = map(sz, false);
				long long c0[C_NR], c1[C_NR];
				struct ibv_mr *mr = NULL;
				double t0, t1;
				int r;

				populate(p, sz);
				if (withmr) {
					long s0, f0, s1, f1;

					mr = reg(p, sz, true);
					if (!mr)
						die("ODP MR over %s", hsize(sz));
					/* the user pages exist: what the
					 * prefetch adds is the mirror's */
					kmem(&s0, &f0);
					if (prefetch(mr, p, sz, true))
						die("prefetch of %s", hsize(sz));
					kmem(&s1, &f1);
					row(ops[o], "odp", sz, "kmem_per_page_slab",
					    "B", rep, (s1 - s0) * 1024.0 / (sz / T_PAGE));
					row(ops[o], "odp", sz,
					    "kmem_per_page_free_drop", "B", rep,
					    (f0 - f1) * 1024.0 / (sz / T_PAGE));
				}
				ctr_read(c0);
				t0 = t_now();
				r = o == 0 ? munmap(p, sz)
					   : madvise(p, sz, MADV_DONTNEED);
				t1 = t_now();
				ctr_read(c1);
				if (r)
					die("%s: %s", ops[o], strerror(errno));
				ms[withmr] = (t1 - t0) * 1e3;
				row(ops[o], withmr ? "odp" : "nomr", sz,
				    "time", "ms", rep, ms[withmr]);
				if (withmr) {
					inv = c1[C_INVAL] - c0[C_INVAL];
					row(ops[o], "odp", sz,
					    "invalidated_pages", "pages", rep,
					    inv);
					t_dereg_mr(mr);
				}
				if (o == 1)
					munmap(p, sz);
			}
			say("%s of a faulted %s rep %d/%d: %.1f ms without MR, %.1f ms with an ODP MR (%lld pages invalidated): x%.2f",
			    ops[o], hsize(sz), rep, reps, ms[0], ms[1], inv,
			    ms[1] / ms[0]);
		}
	}
}

/* ---- migration ---------------------------------------------------------- */

#define MIG_CHUNK	(64 * T_KIB)
#define MIG_WINDOW	16

static struct {
	struct t_rc_pair pair;
	char *buf, *src;
	struct ibv_mr *mr, *smr;
	size_t len;
	int stop, err;
	unsigned long long bytes;	/* completed WRITE bytes */
} mig;

static void *mig_writer(void *arg)
{
	size_t nchunks = mig.len / MIG_CHUNK, posted = 0, done = 0;
	struct ibv_wc wc;

	(void)arg;
	while (!__atomic_load_n(&mig.stop, __ATOMIC_ACQUIRE) ||
	       posted != done) {
		while (!__atomic_load_n(&mig.stop, __ATOMIC_ACQUIRE) &&
		       posted - done < MIG_WINDOW) {
			size_t off = (posted % nchunks) * MIG_CHUNK;
			size_t soff = (posted % MIG_WINDOW) * MIG_CHUNK;

			if (t_post_rdma(mig.pair.qp[0], IBV_WR_RDMA_WRITE,
					posted, mig.src + soff, MIG_CHUNK,
					mig.smr->lkey,
					(uintptr_t)mig.buf + off,
					mig.mr->rkey))
				goto err;
			posted++;
		}
		if (posted == done)
			break;
		if (t_poll(mig.pair.scq[0], 1, &wc) != 1)
			goto err;
		if (wc.status != IBV_WC_SUCCESS) {
			fprintf(stderr, "odp_bench: migrate: WRITE: %s\n",
				ibv_wc_status_str(wc.status));
			goto err;
		}
		done++;
		__atomic_add_fetch(&mig.bytes, MIG_CHUNK, __ATOMIC_RELAXED);
	}
	return NULL;
err:
	__atomic_store_n(&mig.err, 1, __ATOMIC_RELEASE);
	return NULL;
}

static long pages_on(void **pages, int *status, unsigned long n, int node)
{
	unsigned long i;
	long cnt = 0;

	if (numa_move_pages(0, n, pages, NULL, status, 0))
		return -1;
	for (i = 0; i < n; i++)
		cnt += status[i] == node;
	return cnt;
}

/*
 * A connected pair of RC QPs like t_rc_pair_create()'s, but with the
 * retransmission timeout of perftest's -u (qp_timeout): under TCG rxe
 * stalls for long enough that the default (14, 67 ms) retransmits in
 * pinned runs alone.  The timeout cannot be changed in RTS.
 */
static int rc_pair(struct t_rc_pair *p)
{
	struct ibv_qp_init_attr init = {
		.cap = {
			.max_send_wr = 256, .max_recv_wr = 256,
			.max_send_sge = 1, .max_recv_sge = 1,
		},
		.qp_type = IBV_QPT_RC,
	};
	struct ibv_qp_attr a;
	int i;

	memset(p, 0, sizeof(*p));
	for (i = 0; i < 2; i++) {
		p->scq[i] = ibv_create_cq(dev.ctx, 1024, NULL, NULL, 0);
		p->rcq[i] = ibv_create_cq(dev.ctx, 1024, NULL, NULL, 0);
		if (!p->scq[i] || !p->rcq[i])
			return -1;
		init.send_cq = p->scq[i];
		init.recv_cq = p->rcq[i];
		p->qp[i] = ibv_create_qp(dev.pd, &init);
		if (!p->qp[i])
			return -1;
	}
	for (i = 0; i < 2; i++) {
		memset(&a, 0, sizeof(a));
		a.qp_state = IBV_QPS_INIT;
		a.port_num = dev.port;
		a.qp_access_flags = ACCESS & ~IBV_ACCESS_LOCAL_WRITE;
		if (ibv_modify_qp(p->qp[i], &a, IBV_QP_STATE | IBV_QP_PKEY_INDEX |
				  IBV_QP_PORT | IBV_QP_ACCESS_FLAGS))
			return -1;
		memset(&a, 0, sizeof(a));
		a.qp_state = IBV_QPS_RTR;
		a.path_mtu = dev.port_attr.active_mtu;
		a.dest_qp_num = p->qp[!i]->qp_num;
		a.rq_psn = 0x1000 * (2 - i);
		a.max_dest_rd_atomic = 16;
		a.min_rnr_timer = 12;
		a.ah_attr.is_global = 1;
		a.ah_attr.grh.dgid = dev.gid;
		a.ah_attr.grh.sgid_index = dev.gid_index;
		a.ah_attr.grh.hop_limit = 64;
		a.ah_attr.port_num = dev.port;
		if (ibv_modify_qp(p->qp[i], &a, IBV_QP_STATE | IBV_QP_AV |
				  IBV_QP_PATH_MTU | IBV_QP_DEST_QPN |
				  IBV_QP_RQ_PSN | IBV_QP_MAX_DEST_RD_ATOMIC |
				  IBV_QP_MIN_RNR_TIMER))
			return -1;
		memset(&a, 0, sizeof(a));
		a.qp_state = IBV_QPS_RTS;
		a.timeout = qp_timeout;
		a.retry_cnt = 7;
		a.rnr_retry = 7;
		a.sq_psn = 0x1000 * (i + 1);
		a.max_rd_atomic = 16;
		if (ibv_modify_qp(p->qp[i], &a, IBV_QP_STATE | IBV_QP_TIMEOUT |
				  IBV_QP_RETRY_CNT | IBV_QP_RNR_RETRY |
				  IBV_QP_SQ_PSN | IBV_QP_MAX_QP_RD_ATOMIC))
			return -1;
	}
	return 0;
}

static void cmd_migrate(size_t sz)
{
	static const struct {
		const char *mode;
		int mr;		/* 0 none, 1 ODP, 2 pinned */
		bool traffic;
	} v[] = {
		{ "nomr", 0, false },
		{ "odp", 1, false },
		{ "odp-traffic", 1, true },
		{ "pinned", 2, false },
	};
	unsigned long n = sz / T_PAGE, i, mask = 1;
	void **pages = calloc(n, sizeof(*pages));
	int *nodes = calloc(n, sizeof(*nodes));
	int *status = calloc(n, sizeof(*status));
	unsigned int k;
	int rep;

	if (!pages || !nodes || !status)
		die("out of memory");
	if (numa_available() < 0 || numa_max_node() < 1) {
		say("migrate: skipped, needs 2 NUMA nodes");
		return;
	}
	open_dev();
	if (rc_pair(&mig.pair))
		die("cannot create a QP pair: %s", strerror(errno));
	mig.len = sz;
	for (i = 0; i < n; i++)
		nodes[i] = 1;

	for (rep = 1; rep <= reps; rep++) {
		for (k = 0; k < T_ARRAY_SIZE(v); k++) {
			unsigned long long b0, b1, bpre;

			/* pinned pages do not move: once shows it (each try
			 * takes long, the kernel retries every page) */
			if (v[k].mr == 2 && rep > 1)
				continue;
			pthread_t thr;
			double t0, t1, tpre;
			long on0, moved;
			int ret;

			mig.buf = map(sz, false);
			for (i = 0; i < n; i++)
				pages[i] = mig.buf + i * T_PAGE;
			if (mbind(mig.buf, sz, MPOL_PREFERRED, &mask,
				  sizeof(mask) * 8, 0))
				die("mbind: %s", strerror(errno));
			populate(mig.buf, sz);
			on0 = pages_on(pages, status, n, 0);
			mig.mr = mig.smr = NULL;
			if (v[k].mr) {
				mig.mr = reg(mig.buf, sz, v[k].mr == 1);
				if (!mig.mr)
					die("registration failed");
				if (v[k].mr == 1 &&
				    prefetch(mig.mr, mig.buf, sz, true))
					die("prefetch failed");
			}
			bpre = 0;
			tpre = 0;
			if (v[k].traffic) {
				mig.src = map(MIG_CHUNK * MIG_WINDOW, false);
				memset(mig.src, 0x3c, MIG_CHUNK * MIG_WINDOW);
				mig.smr = reg(mig.src, MIG_CHUNK * MIG_WINDOW,
					      true);
				if (!mig.smr)
					die("registration failed");
				mig.stop = 0;
				mig.err = 0;
				mig.bytes = 0;
				if (pthread_create(&thr, NULL, mig_writer, NULL))
					die("pthread_create");
				/* traffic alone, for comparison */
				usleep(200000);
				b0 = __atomic_load_n(&mig.bytes, __ATOMIC_RELAXED);
				t0 = t_now();
				usleep(800000);
				bpre = __atomic_load_n(&mig.bytes, __ATOMIC_RELAXED) - b0;
				tpre = t_now() - t0;
			}
			b0 = __atomic_load_n(&mig.bytes, __ATOMIC_RELAXED);
			t0 = t_now();
			ret = numa_move_pages(0, n, pages, nodes, status,
					      MPOL_MF_MOVE);
			t1 = t_now();
			b1 = __atomic_load_n(&mig.bytes, __ATOMIC_RELAXED);
			if (v[k].traffic) {
				__atomic_store_n(&mig.stop, 1, __ATOMIC_RELEASE);
				pthread_join(thr, NULL);
				if (mig.err)
					say("migrate: WRITE traffic failed");
			}
			moved = pages_on(pages, status, n, 1);
			row("migrate", v[k].mode, sz, "rate", "pages/s", rep,
			    moved / (t1 - t0));
			row("migrate", v[k].mode, sz, "moved_pages", "pages",
			    rep, moved);
			row("migrate", v[k].mode, sz, "time", "ms", rep,
			    (t1 - t0) * 1e3);
			if (v[k].traffic) {
				row("migrate", v[k].mode, sz, "traffic_bw_before",
				    "MiB/s", rep, bpre / MIB / tpre);
				row("migrate", v[k].mode, sz, "traffic_bw_during",
				    "MiB/s", rep, (b1 - b0) / MIB / (t1 - t0));
			}
			say("migrate %s %s rep %d/%d: move_pages returned %d, %ld of %lu pages moved node 0 -> 1 in %.1f ms = %.0f pages/s%s",
			    hsize(sz), v[k].mode, rep, reps, ret, moved,
			    (unsigned long)on0, (t1 - t0) * 1e3,
			    moved / (t1 - t0),
			    v[k].traffic ? "; with WRITE traffic" : "");
			if (v[k].traffic)
				say("migrate: WRITE traffic %.1f MiB/s alone, %.1f MiB/s during the move",
				    bpre / MIB / tpre,
				    (b1 - b0) / MIB / (t1 - t0));
			t_dereg_mr(mig.mr);
			if (mig.smr) {
				t_dereg_mr(mig.smr);
				munmap(mig.src, MIG_CHUNK * MIG_WINDOW);
			}
			munmap(mig.buf, sz);
		}
	}
	t_rc_pair_destroy(&mig.pair);
	free(pages);
	free(nodes);
	free(status);
}

/* ---- streams: cold and warm --------------------------------------------- */

enum { OP_WRITE, OP_READ, OP_SEND };

/*
 * Move @len bytes in @msg-byte messages, a window of them in flight.
 * WRITE: lbuf -> rbuf; READ: rbuf -> lbuf; SEND: lbuf -> receives on rbuf.
 * Returns the seconds it took, or -1.
 */
static double stream_pass(struct t_rc_pair *p, int op, char *lbuf,
			  struct ibv_mr *lmr, char *rbuf, struct ibv_mr *rmr,
			  size_t len, size_t msg)
{
	size_t nchunks = len / msg, posted = 0, done = 0, rdone = 0;
	size_t rneed = op == OP_SEND ? nchunks : 0;
	size_t window = msg >= T_MIB / 16 ? 16 : T_MIB / msg;
	struct ibv_wc wc[16];
	double t0 = t_now();
	int n, i;

	if (window > 128)
		window = 128;
	while (done < nchunks || rdone < rneed) {
		while (posted < nchunks && posted - done < window) {
			size_t off = posted * msg;
			int err;

			if (op == OP_SEND) {
				err = t_post_recv(p->qp[1], posted, rbuf + off,
						  msg, rmr->lkey) ||
				      t_post_send(p->qp[0], posted, lbuf + off,
						  msg, lmr->lkey);
			} else {
				err = t_post_rdma(p->qp[0], op == OP_WRITE ?
						  IBV_WR_RDMA_WRITE :
						  IBV_WR_RDMA_READ, posted,
						  lbuf + off, msg, lmr->lkey,
						  (uintptr_t)rbuf + off,
						  rmr->rkey);
			}
			if (err)
				return -1;
			posted++;
		}
		/* receive completions: drain without waiting, or wait for
		 * the last ones */
		n = 0;
		if (rdone < rneed)
			n = done < nchunks ? ibv_poll_cq(p->rcq[1], 16, wc)
					   : t_poll(p->rcq[1], 1, wc);
		if (n < 0 || (done == nchunks && rdone < rneed && n != 1))
			goto failed;
		for (i = 0; i < n; i++)
			if (wc[i].status != IBV_WC_SUCCESS)
				goto failed_wc;
		rdone += n;
		if (done == nchunks)
			continue;
		n = t_poll(p->scq[0], 1, wc);
		if (n != 1)
			goto failed;
		i = 0;
		if (wc[0].status != IBV_WC_SUCCESS)
			goto failed_wc;
		done++;
	}
	return t_now() - t0;
failed_wc:
	fprintf(stderr, "odp_bench: completion: %s\n",
		ibv_wc_status_str(wc[i].status));
	return -1;
failed:
	fprintf(stderr, "odp_bench: completion timed out\n");
	return -1;
}

/*
 * The buffer of a stream: @max, but no more than 256 messages and no less
 * than 4 MiB (a cold pass takes a fault per message and side).
 */
static size_t stream_len(size_t max, size_t msg)
{
	size_t len = msg * 256;

	if (len < 4 * T_MIB)
		len = 4 * T_MIB;
	if (len > max)
		len = max;
	return len / msg * msg;
}

static void cmd_stream(size_t maxlen, const char *msgs_s, const char *ops_s,
		       const char *tag)
{
	static const char *const opname[] = { "write", "read", "send" };
	unsigned long long msgs[16];
	int nmsg = parse_list(msgs_s, msgs, 16), rep, k, m, op;
	struct t_rc_pair pair;

	open_dev();
	if (rc_pair(&pair))
		die("cannot create a QP pair: %s", strerror(errno));

	for (op = 0; op < 3; op++) {
		char bench[32];

		if (!strstr(ops_s, opname[op]))
			continue;
		snprintf(bench, sizeof(bench), "stream_%s%s%s", opname[op],
			 *tag ? "_" : "", tag);
		for (rep = 1; rep <= reps; rep++) {
			for (k = 0; k < nmsg; k++) {
				size_t msg = msgs[k];
				size_t len = stream_len(maxlen, msg);
				char line[512];
				int ll = 0;

				for (m = 0; m < 2; m++) {
					bool odp = m == 1;
					char *src = map(len, false);
					char *dst = map(len, false);
					struct ibv_mr *smr, *dmr;
					long long c[3][C_NR];
					double dt[2];
					int pass;

					/* the data: written by the CPU, as an
					 * application would; dst is untouched */
					memset(src, 0x11, len);
					smr = reg(src, len, odp);
					dmr = reg(dst, len, odp);
					if (!smr || !dmr)
						die("registration failed");
					ctr_read(c[0]);
					for (pass = 0; pass < 2; pass++) {
						if (pass)
							memset(src, 0x12, len);
						dt[pass] = op == OP_READ ?
							stream_pass(&pair, op, dst, dmr, src, smr, len, msg) :
							stream_pass(&pair, op, src, smr, dst, dmr, len, msg);
						ctr_read(c[pass + 1]);
						if (dt[pass] < 0)
							die("%s stream failed", opname[op]);
						if (memcmp(dst, src, len))
							die("%s stream: data mismatch after pass %d",
							    opname[op], pass + 1);
					}
					for (pass = 0; pass < 2; pass++) {
						const char *mode = odp ?
							(pass ? "odp-warm" : "odp-cold") :
							(pass ? "pinned" : "pinned-first");
						long long *a = c[pass], *b = c[pass + 1];
						long long waits = b[C_WAITS] - a[C_WAITS];
						long long pf = b[C_FAULTS] - a[C_FAULTS];
						double mib = len / MIB;

						row(bench, mode, msg, "bw", "MiB/s", rep,
						    mib / dt[pass]);
						row(bench, mode, msg, "retries", "count",
						    rep, b[C_RETRY] - a[C_RETRY]);
						if (!odp)
							continue;
						row(bench, mode, msg, "fault_waits", "count",
						    rep, waits);
						row(bench, mode, msg, "faulted_pages",
						    "pages", rep, pf);
						row(bench, mode, msg, "invalidated_pages",
						    "pages", rep, b[C_INVAL] - a[C_INVAL]);
						row(bench, mode, msg, "waits_per_MiB",
						    "1/MiB", rep, waits / mib);
						row(bench, mode, msg, "faulted_pages_rate",
						    "pages/s", rep, pf / dt[pass]);
						if (waits)
							row(bench, mode, msg,
							    "fault_wait_mean", "us", rep,
							    (double)(b[C_WAIT_US] - a[C_WAIT_US]) / waits);
					}
					ll += snprintf(line + ll, sizeof(line) - ll,
						       " %s %.1f / %.1f MiB/s;",
						       odp ? "odp cold/warm" : "pinned 1st/2nd",
						       len / MIB / dt[0], len / MIB / dt[1]);
					if (odp)
						ll += snprintf(line + ll, sizeof(line) - ll,
							       " cold pass: %lld QP parks, %lld pages faulted, mean wait %.0f us; warm pass: %lld parks, %lld pages invalidated;",
							       c[1][C_WAITS] - c[0][C_WAITS],
							       c[1][C_FAULTS] - c[0][C_FAULTS],
							       c[1][C_WAITS] - c[0][C_WAITS] ?
							       (double)(c[1][C_WAIT_US] - c[0][C_WAIT_US]) /
							       (c[1][C_WAITS] - c[0][C_WAITS]) : 0.0,
							       c[2][C_WAITS] - c[1][C_WAITS],
							       c[2][C_INVAL] - c[1][C_INVAL]);
					t_dereg_mr(smr);
					t_dereg_mr(dmr);
					munmap(src, len);
					munmap(dst, len);
				}
				say("stream %s%s%s %s msgs over %s rep %d/%d:%s",
				    opname[op], *tag ? " " : "", tag,
				    hsize(msg), hsize(len), rep,
				    reps, line);
			}
		}
	}
	t_rc_pair_destroy(&pair);
}

/* ---- main --------------------------------------------------------------- */

static void usage(void)
{
	fprintf(stderr,
		"usage: odp_bench memcpy|reg|fault|inval|migrate|stream [--reps N] [--csv FILE]\n"
		"       [--sizes LIST] [--size S] [--msg LIST] [--ops LIST] [--pinned-max S]\n");
	exit(2);
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "reps", required_argument, NULL, 'r' },
		{ "csv", required_argument, NULL, 'c' },
		{ "sizes", required_argument, NULL, 'S' },
		{ "size", required_argument, NULL, 's' },
		{ "msg", required_argument, NULL, 'm' },
		{ "ops", required_argument, NULL, 'o' },
		{ "pinned-max", required_argument, NULL, 'p' },
		{ "qp-timeout", required_argument, NULL, 't' },
		{ "tag", required_argument, NULL, 'T' },
		{ NULL, 0, NULL, 0 },
	};
	const char *cmd, *sizes = "4K,64K,1M,16M,256M,1G,16G,256G,1T";
	const char *msgs = "4K,64K,1M", *ops = "write,read,send", *tag = "";
	unsigned long long size = 0, pinned_max = T_GIB;
	int c;

	if (argc < 2)
		usage();
	cmd = argv[1];
	csv = stdout;
	optind = 2;
	while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		switch (c) {
		case 'r': reps = atoi(optarg); break;
		case 'c':
			csv = fopen(optarg, "a");
			if (!csv)
				die("%s: %s", optarg, strerror(errno));
			break;
		case 'S': sizes = optarg; break;
		case 's': size = parse_size(optarg); break;
		case 'm': msgs = optarg; break;
		case 'o': ops = optarg; break;
		case 'p': pinned_max = parse_size(optarg); break;
		case 't': qp_timeout = atoi(optarg); break;
		case 'T': tag = optarg; break;
		default: usage();
		}
	}
	if (optind != argc || reps < 1)
		usage();
	setvbuf(stdout, NULL, _IOLBF, 0);
	t_timeout_ms = 60000;

	if (!strcmp(cmd, "memcpy"))
		cmd_memcpy();
	else if (!strcmp(cmd, "reg"))
		cmd_reg(sizes, pinned_max);
	else if (!strcmp(cmd, "fault"))
		cmd_fault(size ? size : 256 * T_MIB);
	else if (!strcmp(cmd, "inval"))
		cmd_inval(size ? size : T_GIB);
	else if (!strcmp(cmd, "migrate"))
		cmd_migrate(size ? size : 64 * T_MIB);
	else if (!strcmp(cmd, "stream"))
		cmd_stream(size ? size : 16 * T_MIB, msgs, ops, tag);
	else
		usage();

	if (dev_opened)
		t_dev_close(&dev);
	if (csv != stdout)
		fclose(csv);
	return 0;
}
