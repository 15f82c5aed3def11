/* SPDX-License-Identifier: GPL-2.0 OR Linux-OpenIB */
/*
 * odptest: small helpers shared by the rxe ODP verbs tests.
 *
 * Every test program is a TAP (version 13) producer in the style of the
 * kselftest harness.  It opens the rxe device named by $RXE_DEV (default
 * rxe0), uses GID index $RXE_GID (default 1, ::ffff:127.0.0.1) and talks to
 * itself: both ends of every QP pair live in the same process, connected
 * over loopback with RoCEv2 global routing.
 *
 * Memory regions are registered through t_reg_mr(), which honours the mode
 * switch: ODP (IBV_ACCESS_ON_DEMAND, the default) or pinned (--pinned).
 * Waiting for a completion never hangs: t_poll() gives up after
 * t_timeout_ms (default 10 s, $T_TIMEOUT_MS) and the case fails.
 */
#ifndef ODPTEST_H
#define ODPTEST_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <infiniband/verbs.h>

#define T_PAGE		4096UL
#define T_KIB		1024UL
#define T_MIB		(1024UL * 1024UL)
#define T_GIB		(1024UL * T_MIB)
#define T_TIB		(1024UL * T_GIB)
#define T_GRH		40	/* UD receive buffers start with the GRH */

#define T_ARRAY_SIZE(a)	(sizeof(a) / sizeof((a)[0]))

/* All remote access rights an ODP/pinned test MR may need. */
#define T_ACCESS_ALL	(IBV_ACCESS_LOCAL_WRITE | IBV_ACCESS_REMOTE_WRITE | \
			 IBV_ACCESS_REMOTE_READ | IBV_ACCESS_REMOTE_ATOMIC)

extern bool t_odp;		/* true: ODP MRs (default); false: --pinned */
extern bool t_verbose;		/* -v: more diagnostics */
extern const char *t_only;	/* --only: the harness tests to run */
extern int t_timeout_ms;	/* completion wait limit */
extern int t_rc_timeout;	/* transport timeout of new RC QPs (14) */
extern bool t_harness;		/* on kselftest_harness.h (odpharness.h) */

/* ---- arguments and TAP ------------------------------------------------ */

/*
 * Parse the common switches (--pinned, --odp, -v, --timeout MS, --help).
 * Unknown arguments are an error.  Prints nothing on stdout.
 */
void t_init(int argc, char **argv, const char *what);
const char *t_mode(void);	/* "odp" or "pinned" */

void t_plan(int n);
void t_diag(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* Print "ok N name" or "not ok N name"; returns @pass. */
bool t_result(bool pass, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
void t_skip(const char *reason, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
/* Number of the next result line, for callers that count. */
int t_next(void);
/* Print totals and return the exit code: 0 iff every planned test passed. */
int t_finish(void);
/*
 * Exit at once with every remaining planned test "not ok" (setup failed);
 * in a harness test, fail that test.
 */
void t_bail(const char *fmt, ...) __attribute__((format(printf, 1, 2),
						  noreturn));

/* ---- device, PD, QPs ---------------------------------------------------- */

struct t_dev {
	struct ibv_context *ctx;
	struct ibv_pd *pd;
	uint8_t port;
	int gid_index;
	union ibv_gid gid;
	struct ibv_port_attr port_attr;
	struct ibv_device_attr_ex attr;
	char name[64];
};

int t_dev_open(struct t_dev *d);
void t_dev_close(struct t_dev *d);
/*
 * A hw counter of @d's port (/sys/class/infiniband/.../hw_counters/@name),
 * read fresh (waits out the 10 ms for which the kernel caches them); -1 if
 * it cannot be read.
 */
long t_hw_counter(const struct t_dev *d, const char *name);

/*
 * Register @len bytes at @addr with @access, plus IBV_ACCESS_ON_DEMAND in
 * ODP mode.  On failure prints a diagnostic (errno, mode) and returns NULL
 * with errno preserved.
 */
struct ibv_mr *t_reg_mr(struct t_dev *d, void *addr, size_t len, int access);
/* Same, always in the given mode. */
struct ibv_mr *t_reg_mr_mode(struct t_dev *d, void *addr, size_t len,
			     int access, bool odp);
void t_dereg_mr(struct ibv_mr *mr);

/* Two RC QPs connected to each other; qp[1] may take its receives from
 * an SRQ.  Each QP has its own send and receive CQ.
 */
struct t_rc_pair {
	struct ibv_cq *scq[2];
	struct ibv_cq *rcq[2];
	struct ibv_qp *qp[2];
};

int t_rc_pair_create(struct t_dev *d, struct t_rc_pair *p,
		     struct ibv_srq *srq1);
void t_rc_pair_destroy(struct t_rc_pair *p);
/*
 * One end of a pair whose other end is in another process or on another
 * host: p->qp[0] with its CQs (qp[1] stays NULL), which
 * t_rc_remote_connect() connects to QP @dqpn at @dgid; this end sends
 * from PSN @my_psn and expects @peer_psn.  Posting, polling and
 * t_rdma_sync() work on it as on a pair.
 */
int t_rc_remote_create(struct t_dev *d, struct t_rc_pair *p);
int t_rc_remote_connect(struct t_dev *d, struct t_rc_pair *p, uint32_t dqpn,
			const union ibv_gid *dgid, uint32_t my_psn,
			uint32_t peer_psn);

/* Two UD QPs and an address handle that points at our own GID. */
struct t_ud_pair {
	struct ibv_cq *scq[2];
	struct ibv_cq *rcq[2];
	struct ibv_qp *qp[2];
	struct ibv_ah *ah;
	uint32_t qkey;
};

int t_ud_pair_create(struct t_dev *d, struct t_ud_pair *p);
void t_ud_pair_destroy(struct t_ud_pair *p);

struct ibv_srq *t_srq_create(struct t_dev *d, int max_wr);

/* ---- posting and polling ------------------------------------------------ */

/* RDMA WRITE or READ of one SGE; always signalled. */
int t_post_rdma(struct ibv_qp *qp, enum ibv_wr_opcode op, uint64_t wr_id,
		void *laddr, uint32_t len, uint32_t lkey,
		uint64_t raddr, uint32_t rkey);
/* Same with an SGE list. */
int t_post_rdma_sgl(struct ibv_qp *qp, enum ibv_wr_opcode op,
		    uint64_t wr_id, struct ibv_sge *sgl, int nsge,
		    uint64_t raddr, uint32_t rkey);
int t_post_send(struct ibv_qp *qp, uint64_t wr_id, void *addr, uint32_t len,
		uint32_t lkey);
int t_post_ud_send(struct t_ud_pair *p, int from, uint64_t wr_id,
		   void *addr, uint32_t len, uint32_t lkey);
int t_post_recv(struct ibv_qp *qp, uint64_t wr_id, void *addr, uint32_t len,
		uint32_t lkey);
int t_post_srq_recv(struct ibv_srq *srq, uint64_t wr_id, void *addr,
		    uint32_t len, uint32_t lkey);
/* IBV_WR_ATOMIC_CMP_AND_SWP or IBV_WR_ATOMIC_FETCH_AND_ADD; the original
 * value lands in *@result.
 */
int t_post_atomic(struct ibv_qp *qp, enum ibv_wr_opcode op, uint64_t wr_id,
		  uint64_t *result, uint32_t lkey, uint64_t raddr,
		  uint32_t rkey, uint64_t compare_add, uint64_t swap);

/*
 * Collect @n completions from @cq into @wc (which may be NULL).  Returns
 * the number collected; fewer than @n means the wait timed out (a
 * diagnostic says so).
 */
int t_poll(struct ibv_cq *cq, int n, struct ibv_wc *wc);
/* Collect @n completions and require IBV_WC_SUCCESS for each. */
bool t_wait_ok(struct ibv_cq *cq, int n, const char *what);
/* Post one RDMA op on pair->qp[0] and wait; returns the completion
 * status, or -1 if posting failed or the wait timed out.  A timed-out
 * wait is reported with the QPs' states and the device's counters, and
 * goes on three times as long (at most 30 s) to tell a stuck QP from a
 * slow one.
 */
int t_rdma_sync(struct t_rc_pair *p, enum ibv_wr_opcode op, void *laddr,
		uint32_t len, uint32_t lkey, uint64_t raddr, uint32_t rkey);
/*
 * Print what a QP pair whose completion is overdue is doing: the state
 * and PSNs of both QPs, and the device's counters (their change between
 * two reports shows whether packets still flow and faults still happen).
 */
void t_stuck_report(struct t_rc_pair *p, const char *when);
/*
 * RDMA READ or WRITE of @len bytes between @laddr (@lkey) and @raddr
 * (@rkey) over @p, as t_rdma_sync() messages of at most 4 MiB (rxe takes
 * at most 8 MiB per message); stops at the first that fails.  Returns 0,
 * or the failing status as t_rdma_sync() does.  A failure is reported in
 * a diagnostic ("READ of N bytes at ADDR: status") unless @quiet and not
 * t_verbose, for callers that expect it to fail.
 */
int t_rdma_chunked(struct t_rc_pair *p, enum ibv_wr_opcode op, void *laddr,
		   uint32_t lkey, void *raddr, uint32_t rkey, size_t len,
		   bool quiet);
/* The same, reporting failures, on a QP pair of its own on @d, created
 * and destroyed around it; -1 if the pair cannot be created.
 */
int t_rdma_fresh_pair(struct t_dev *d, enum ibv_wr_opcode op, void *laddr,
		      uint32_t lkey, void *raddr, uint32_t rkey, size_t len);

/* ---- memory ------------------------------------------------------------- */

/* A fresh private anonymous mapping, untouched by the CPU. */
void *t_mmap(size_t len);
void t_munmap(void *p, size_t len);
/* Deterministic pseudo-random bytes; every (seed, offset) differs. */
void t_fill(void *buf, size_t len, uint64_t seed);
uint64_t t_rand64(uint64_t *state);
/* Index of the first differing byte, or -1. */
ssize_t t_cmp(const void *got, const void *exp, size_t len);
/* Compare and, on a mismatch, say where: "# WHAT: first mismatch at
 * offset ...".  Returns true if equal.
 */
bool t_check(const void *got, const void *exp, size_t len,
	     const char *what);
/* Same against a constant byte. */
bool t_check_byte(const void *got, int c, size_t len, const char *what);

/* /proc/meminfo field in KiB, or -1. */
/*
 * fork(), with the child's stdout on /dev/null so that its diagnostics do
 * not mix into the parent's TAP; bails out if fork() fails.
 */
pid_t t_fork_quiet(void);

/* Counts of a device's resources, from 'rdma resource show DEV'. */
struct t_res {
	long pd, cq, qp, mr, ctx;
};

/* Return: 0, or -1 if the device is not listed. */
int t_res_read(const char *dev, struct t_res *r);
bool t_res_equal(const struct t_res *a, const struct t_res *b);

long t_meminfo_kb(const char *key);
/* /proc/vmstat counter, or -1. */
long t_vmstat(const char *key);
/* A numeric sysfs/procfs/debugfs knob: its value, or -1; set it (a failure
 * is reported with t_diag()).
 */
long t_knob_get(const char *path);
bool t_knob_set(const char *path, long v);
/*
 * The device's histogram of the times QP tasks waited for ODP faults
 * (odp_fault_wait_1ms .. _4096ms, _longer: at most 1, 4, 16 ... ms).
 */
#define T_WAIT_BUCKETS	8
struct t_waits {
	long n[T_WAIT_BUCKETS];
	long us;		/* odp_fault_wait_us */
};
/* Return: 0, or -1 if the device has no such counters. */
int t_waits_read(const struct t_dev *d, struct t_waits *w);
/*
 * Print the waits between two snapshots: how many, their mean, and the
 * bucket the median, the 99th percentile and the longest fall in
 * ("median <= 4 ms").
 */
void t_waits_diag(const char *what, const struct t_waits *a,
		  const struct t_waits *b);
/*
 * rdma_rxe's odp_aging parameter: 1 if ODP MRs tell reclaim which pages
 * the device used, 0 if not, -1 if the module has no such parameter.
 */
int t_odp_aging(void);
bool t_odp_aging_set(bool on);
/*
 * MADV_PAGEOUT of [p, p + len) until it can take every page it may: twice
 * when odp_aging is on, since a page the device used since reclaim last
 * asked is spared once.  Return: madvise()'s result.
 */
int t_pageout(void *p, size_t len);
/*
 * What /proc/self/pagemap says of each page of [p, p + len): 'P' present,
 * 'S' swapped out, '-' neither; @state gets len / T_PAGE letters and a NUL.
 * Return: 0, or -1 (reported) if pagemap cannot be read.
 */
int t_page_states(const void *p, size_t len, char *state);
/*
 * The page frame number of the page at @p (0 if it is not present), from
 * /proc/self/pagemap; and a frame's flags (KPF_*, 0 if they cannot be
 * read), from /proc/kpageflags.  Both need root.
 */
uint64_t t_pfn(const void *p);
uint64_t t_kpageflags(uint64_t pfn);
/* Kernel memory that registration could consume: Slab + VmallocUsed +
 * PageTables, in KiB.
 */
long t_kmem_kb(void);
double t_now(void);	/* seconds, CLOCK_MONOTONIC */
/*
 * Print (t_diag) the kernel stack of every task that is blocked (D) or in
 * rxe, uverbs, hmm, the MMU notifiers or an address space's teardown: where
 * something slow or stuck waits.  Needs root for /proc/PID/stack.
 */
void t_dump_kernel_stacks(const char *why);

const char *t_wc_status_str(int status);

#endif /* ODPTEST_H */
