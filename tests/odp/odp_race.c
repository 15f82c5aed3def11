// SPDX-License-Identifier: GPL-2.0 OR Linux-OpenIB
/*
 * odp_race: several QPs and threads hammer one MR while another thread
 * unmaps, drops and write-protects parts of it.
 *
 * One 1 MiB MR is cut into 1 KiB stripes of sixteen 64-byte slots; stripe
 * i belongs to worker i % NW, so every page is shared by all the workers.
 * Each worker has its own RC QP pair and, in a loop, RDMA WRITEs, RDMA
 * READs and SENDs (received into the MR) batches of its stripes, reads
 * them with the CPU and writes them with the CPU.  Every slot written
 * carries (generation, slot index) and a payload derived from both, so a
 * value read must be all zeros (a fresh page) or exactly an image that was
 * written for that very slot; anything else (garbage, a torn slot, another
 * slot's data, a generation never posted) fails.  Meanwhile the mangler
 * loops over random page ranges: munmap + mmap(MAP_FIXED), MADV_DONTNEED,
 * mprotect(PROT_READ) then back to read-write, and mmap(MAP_FIXED) over
 * the live mapping.
 *
 * The mangler publishes, per page, a sequence count (odd while an
 * operation runs) and the page's state (mapped read-write, read-only,
 * unmapped); workers sample both before posting and after the completion.
 * Hence, for each operation and each value read:
 *  - a drop (DONTNEED, munmap, replacing mmap) takes a snapshot of the
 *    last generation known to have landed in each stripe before it starts;
 *    once it is over, a value of that generation or older is the content
 *    of a page the process no longer has ("stale");
 *  - if the page saw no mangler operation between the post of the last
 *    successful write and the end of a read, the read must return exactly
 *    that write ("lost" otherwise);
 *  - an operation that ran entirely while its page was unmapped must fail
 *    (a WRITE or a SEND also while read-only), with the access error it
 *    is; one that ran entirely over a read-write page must succeed.
 * A failed operation must complete (never hang) with an access error;
 * the worker then recreates its QP pair.  The CPU reads and writes under a
 * read lock that the mangler takes for writing around its operations (a
 * CPU copy racing DONTNEED would tear a slot by itself); the device is
 * never held back.
 *
 * At the end, with the mangler stopped, one RDMA WRITE of the whole MR
 * must read back exactly, the CPU must see it, and the device must read
 * what the CPU writes next.
 *
 * Pinned MRs (--pinned): nothing ever fails, and after a drop the device
 * keeps the old pages while the CPU gets new ones.  The pinned run counts
 * the values where the device's view and the CPU's differ (stale or lost)
 * and requires some: that is what ODP fixes.  Malformed values fail in
 * both modes.
 *
 * The run lasts ODP_RACE_SECS (default 20) and then goes on until every
 * worker did every kind of operation and the mangler every one of its
 * own, at least once (a loaded host can keep one worker's CPU operations
 * waiting for the mangler for a long time), up to three times as long.
 *
 * The run happens once per program: the first test runs it, with the
 * final pass, and leaves its counts in memory shared with the tests that
 * follow; each test then checks its own part of them.  The run's state
 * (the MR, the workers, the page and stripe tables) lives in the fixture
 * of the test that runs it.
 *
 * Environment: ODP_RACE_SECS, ODP_RACE_WORKERS (default 4),
 * T_RACE_SLEEP_US (mangler pause between operations, default 1000).  The
 * tests' time limit fits the default ODP_RACE_SECS.
 */
#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <sys/mman.h>

#include "odpharness.h"

#define LEN		(1 * T_MIB)
#define NPAGES		((int)(LEN / T_PAGE))
#define SLOT		64
#define STRIPE		1024
#define SLOTS_PER	(STRIPE / SLOT)
#define NSTRIPES	((int)(LEN / STRIPE))
#define STRIPES_PER_PAGE ((int)(T_PAGE / STRIPE))
#define MAXW		8
#define K		4	/* stripes per batch */
#define MAX_RANGE	8	/* pages per mangler operation */
#define NO_SEQ		UINT64_MAX

enum { ST_RW, ST_RO, ST_UNMAPPED };

enum { OP_WRITE, OP_READ, OP_SEND, OP_CPU_READ, OP_CPU_WRITE, NOPS };
static const char *const op_name[NOPS] = {
	"RDMA WRITE", "RDMA READ", "SEND", "CPU read", "CPU write",
};

enum { M_UNMAP, M_DONTNEED, M_PROTECT, M_REPLACE, NMOPS };
static const char *const mop_name[NMOPS] = {
	"munmap+mmap", "MADV_DONTNEED", "mprotect RO/RW", "mmap over",
};

#define NSTATUS	32

struct wstats {
	long ok[NOPS];		/* batches that succeeded */
	long failed[NOPS];	/* batches with a failed operation */
	long status[NSTATUS];	/* first failing status of each batch */
	long recv_status[NSTATUS]; /* receive side of failed SENDs */
	long flushed;
	long busy;		/* CPU ops skipped: mangler at work */
	long hangs;
	long recreate;
	long slots;		/* slots checked */
	long zeros;
	long exact;		/* slots checked exactly */
	long bad;		/* malformed: fail in both modes */
	long stale_dev, stale_cpu;	/* below the floor */
	long lost_dev, lost_cpu;	/* exact check failed */
	long must_fail;		/* succeeded over an unmapped/RO page */
	long must_succeed;	/* failed over a read-write page */
	long bad_status;	/* failed with an unexpected status */
	long fail_expected;	/* failed as the page state required */
	int diags;
};

struct race;

struct worker {
	struct race *r;
	int id;
	pthread_t thr;
	uint64_t rnd;
	uint32_t gen;
	struct t_rc_pair p;
	bool have_pair;
	uint8_t *local;		/* K source stripes, then K destination */
	struct ibv_mr *lmr;
	struct wstats s;
};

struct mstats {
	long ops[NMOPS];
	long errors;
};

/*
 * One run: the shared MR, what the mangler publishes and what the workers
 * keep, and the threads.
 */
struct race {
	struct t_dev *dev;
	uint8_t *buf;
	struct ibv_mr *mr;
	int nworkers;
	int stop;
	pthread_rwlock_t cpu_lock;
	bool have_lock;
	int nthreads;			/* workers started */
	bool have_mangler;
	pthread_t mthr;

	/* Per page, written by the mangler. */
	uint64_t pseq[NPAGES];
	int pstate[NPAGES];

	/* Per stripe: floor written by the mangler, the rest by the owner. */
	uint32_t floor_gen[NSTRIPES];	/* generations <= floor are gone */
	uint32_t done_gen[NSTRIPES];	/* last write known to have landed */
	uint32_t posted_max[NSTRIPES];	/* last generation posted */
	uint64_t wseq[NSTRIPES];	/* page seq before that post */

	struct worker workers[MAXW];
	struct mstats mst;
};

/* ---- slot images ---------------------------------------------------------- */

static inline uint64_t mix(uint64_t z)
{
	z += 0x9e3779b97f4a7c15ULL;
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
	return z ^ (z >> 31);
}

struct slot {
	uint32_t gen;
	uint32_t idx;
	uint64_t v[7];
};

static void slot_make(struct slot *s, uint32_t gen, uint32_t idx)
{
	uint64_t key = (uint64_t)gen << 32 | idx;
	int i;

	s->gen = gen;
	s->idx = idx;
	for (i = 0; i < 7; i++)
		s->v[i] = mix(key * 8 + i);
}

static void stripe_make(void *dst, int stripe, uint32_t gen)
{
	struct slot *s = dst;
	int i;

	for (i = 0; i < SLOTS_PER; i++)
		slot_make(&s[i], gen, stripe * SLOTS_PER + i);
}

static void say(struct worker *w, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

static void say(struct worker *w, const char *fmt, ...)
{
	char line[512];
	va_list ap;

	if (w && w->s.diags++ >= 12)
		return;
	va_start(ap, fmt);
	vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	t_diag("%s", line);
}

/*
 * Check a stripe's image as the device (@dev_view) or the CPU saw it.
 * @floor: generations up to it belong to dropped pages; @exact: the value
 * must be that of the last landed write (@want, 0 for zeros).
 */
static void check_stripe(struct worker *w, const void *got, int stripe,
			 uint32_t floor, bool exact, uint32_t want,
			 uint32_t posted, bool dev_view, const char *what)
{
	static const struct slot zero;
	const struct slot *s = got;
	struct slot img;
	int i;

	for (i = 0; i < SLOTS_PER; i++) {
		uint32_t idx = stripe * SLOTS_PER + i;
		bool is_zero = !memcmp(&s[i], &zero, SLOT);

		w->s.slots++;
		if (exact)
			w->s.exact++;
		if (!is_zero) {
			slot_make(&img, s[i].gen, idx);
			if (s[i].idx != idx || !s[i].gen ||
			    memcmp(&s[i], &img, SLOT) || s[i].gen > posted) {
				w->s.bad++;
				say(w, "worker %d: %s: slot %u (stripe %d) is malformed: gen %u idx %u word0 0x%016llx (posted up to %u)",
				    w->id, what, idx, stripe, s[i].gen,
				    s[i].idx, (unsigned long long)s[i].v[0],
				    posted);
				continue;
			}
		} else {
			w->s.zeros++;
		}
		if (!is_zero && s[i].gen <= floor) {
			if (dev_view)
				w->s.stale_dev++;
			else
				w->s.stale_cpu++;
			if (t_odp)
				say(w, "worker %d: %s: slot %u holds generation %u, but a drop of its page removed generations <= %u: data of a page the process no longer has",
				    w->id, what, idx, s[i].gen, floor);
			continue;
		}
		if (exact && (is_zero ? 0 : s[i].gen) != want) {
			if (dev_view)
				w->s.lost_dev++;
			else
				w->s.lost_cpu++;
			if (t_odp)
				say(w, "worker %d: %s: slot %u is %s%u, expected generation %u (no unmap/drop/protect of the page since it was written)",
				    w->id, what, idx, is_zero ? "zeros, not " : "generation ",
				    is_zero ? want : s[i].gen, want);
		}
	}
}

/* ---- helpers -------------------------------------------------------------- */

static inline uint64_t ld64(uint64_t *p)
{
	return __atomic_load_n(p, __ATOMIC_SEQ_CST);
}

static inline void st64(uint64_t *p, uint64_t v)
{
	__atomic_store_n(p, v, __ATOMIC_SEQ_CST);
}

static inline uint32_t ld32(uint32_t *p)
{
	return __atomic_load_n(p, __ATOMIC_SEQ_CST);
}

static inline void st32(uint32_t *p, uint32_t v)
{
	__atomic_store_n(p, v, __ATOMIC_SEQ_CST);
}

/* Counters that main reads while the threads run: one writer each. */
static inline void count(long *n)
{
	__atomic_store_n(n, *n + 1, __ATOMIC_RELAXED);
}

static inline long counted(const long *n)
{
	return __atomic_load_n(n, __ATOMIC_RELAXED);
}

static int page_of(int stripe)
{
	return stripe / STRIPES_PER_PAGE;
}

static uint8_t *stripe_addr(struct race *r, int stripe)
{
	return r->buf + (size_t)stripe * STRIPE;
}

/* Poll @n completions within @ms; returns how many arrived. */
static int poll_tmo(struct ibv_cq *cq, int n, struct ibv_wc *wc, int ms)
{
	const struct timespec nap = { .tv_nsec = 50000 };
	double deadline = t_now() + ms / 1000.0;
	int got = 0, r;

	while (got < n) {
		r = ibv_poll_cq(cq, n - got, wc + got);
		if (r < 0)
			return got;
		if (r > 0) {
			got += r;
			deadline = t_now() + ms / 1000.0;
			continue;
		}
		if (t_now() > deadline)
			return got;
		nanosleep(&nap, NULL);
	}
	return got;
}

static bool pair_new(struct worker *w)
{
	int err;

	/* no mmap of ours may land in an munmap window of the mangler */
	pthread_rwlock_rdlock(&w->r->cpu_lock);
	if (w->have_pair)
		t_rc_pair_destroy(&w->p);
	err = t_rc_pair_create(w->r->dev, &w->p, NULL);
	pthread_rwlock_unlock(&w->r->cpu_lock);
	w->have_pair = !err;
	return !err;
}

static void pick(struct worker *w, int *st)
{
	int nw = w->r->nworkers, i, j, n = NSTRIPES / nw;

	for (i = 0; i < K; i++) {
again:
		st[i] = (int)(t_rand64(&w->rnd) % n) * nw + w->id;
		for (j = 0; j < i; j++)
			if (st[j] == st[i])
				goto again;
	}
}

static void count_status(long *tab, int s)
{
	tab[s >= 0 && s < NSTATUS ? s : NSTATUS - 1]++;
}

/*
 * The page state an operation saw: ST_* if the page's sequence was the
 * same even value before and after, else -1 (it changed meanwhile).
 */
static int stable_state(uint64_t s1, int st1, uint64_t s2)
{
	return s1 == s2 && !(s1 & 1) ? st1 : -1;
}

/*
 * Judge one operation's outcome against the page state it saw.  A failed
 * operation must be an access error; over an unmapped page (or a
 * read-only one, for writes) an ODP operation must fail, over a
 * read-write page it must succeed; pinned operations never fail.
 */
static void judge(struct worker *w, int op, int status, int state,
		  int stripe)
{
	bool writes = op != OP_READ;
	bool must_fail = t_odp && (state == ST_UNMAPPED ||
				   (writes && state == ST_RO));
	bool must_ok = !t_odp || state == ST_RW ||
		       (!writes && state == ST_RO);

	if (status == IBV_WC_SUCCESS) {
		if (must_fail) {
			w->s.must_fail++;
			say(w, "worker %d: %s of stripe %d succeeded although page %d was %s all along",
			    w->id, op_name[op], stripe, page_of(stripe),
			    state == ST_RO ? "read-only" : "unmapped");
		}
		return;
	}
	if (must_ok) {
		w->s.must_succeed++;
		say(w, "worker %d: %s of stripe %d failed (%s) although page %d was %s all along",
		    w->id, op_name[op], stripe, t_wc_status_str(status),
		    page_of(stripe), state == ST_RW ? "read-write" :
		    state == ST_RO ? "read-only" : "in flux (pinned)");
	} else if (must_fail) {
		w->s.fail_expected++;
	}
	/* RDMA WRITE/READ: the responder's access check; SEND: the
	 * receive buffer's, which rxe reports as a remote operation error.
	 */
	if (status != IBV_WC_REM_ACCESS_ERR &&
	    !(op == OP_SEND && (status == IBV_WC_REM_OP_ERR ||
				status == IBV_WC_REM_INV_REQ_ERR))) {
		w->s.bad_status++;
		say(w, "worker %d: %s of stripe %d failed with %s (%d), not an access error",
		    w->id, op_name[op], stripe, t_wc_status_str(status),
		    status);
	}
}

/* ---- the workers ---------------------------------------------------------- */

static void rdma_batch(struct worker *w, int op)
{
	struct race *r = w->r;
	uint8_t *src = w->local, *dst = w->local + K * STRIPE;
	uint64_t s1[K], s2[K];
	uint32_t gen[K], floor[K], want[K];
	bool exact[K];
	int st[K], state[K], status[K], i, got;
	struct ibv_wc wc[2 * K];
	bool fail = false;

	pick(w, st);
	for (i = 0; i < K; i++) {
		int pg = page_of(st[i]);

		status[i] = -1;
		floor[i] = ld32(&r->floor_gen[st[i]]);
		s1[i] = ld64(&r->pseq[pg]);
		state[i] = __atomic_load_n(&r->pstate[pg], __ATOMIC_SEQ_CST);
		if (op == OP_READ) {
			memset(dst + i * STRIPE, 0xa5, STRIPE);
			continue;
		}
		gen[i] = ++w->gen;
		r->posted_max[st[i]] = gen[i];
		stripe_make(src + i * STRIPE, st[i], gen[i]);
	}
	for (i = 0; i < K; i++) {
		int e;

		if (op == OP_SEND) {
			e = t_post_recv(w->p.qp[1], i, stripe_addr(r, st[i]),
					STRIPE, r->mr->lkey);
			e = e ? e : t_post_send(w->p.qp[0], i, src + i * STRIPE,
						STRIPE, w->lmr->lkey);
		} else if (op == OP_WRITE) {
			e = t_post_rdma(w->p.qp[0], IBV_WR_RDMA_WRITE, i,
					src + i * STRIPE, STRIPE, w->lmr->lkey,
					(uintptr_t)stripe_addr(r, st[i]),
					r->mr->rkey);
		} else {
			e = t_post_rdma(w->p.qp[0], IBV_WR_RDMA_READ, i,
					dst + i * STRIPE, STRIPE, w->lmr->lkey,
					(uintptr_t)stripe_addr(r, st[i]),
					r->mr->rkey);
		}
		if (e) {
			say(w, "worker %d: posting failed: %s", w->id,
			    strerror(e));
			w->s.bad_status++;
			break;
		}
	}
	got = poll_tmo(w->p.scq[0], i, wc, t_timeout_ms);
	for (int j = 0; j < got; j++)
		status[wc[j].wr_id] = wc[j].status;
	if (got < i) {
		w->s.hangs++;
		say(w, "worker %d: %s batch: %d of %d completions within %d ms: hung",
		    w->id, op_name[op], got, i, t_timeout_ms);
	}
	if (op == OP_SEND) {
		bool all_ok = got == K;

		for (i = 0; i < got; i++)
			all_ok = all_ok && wc[i].status == IBV_WC_SUCCESS;
		/* the receives: all of them now, or whatever comes */
		got = poll_tmo(w->p.rcq[1], K, wc + K,
			       all_ok ? t_timeout_ms : 200);
		for (i = 0; i < got; i++) {
			struct ibv_wc *c = &wc[K + i];

			if (c->status != IBV_WC_SUCCESS) {
				if (c->status != IBV_WC_WR_FLUSH_ERR)
					count_status(w->s.recv_status,
						     c->status);
				/* rxe: a receive buffer it cannot write is a
				 * malformed WQE (LOC_QP_OP_ERR), as with a
				 * bad lkey; LOC_PROT_ERR would do too.
				 */
				if (c->status != IBV_WC_WR_FLUSH_ERR &&
				    c->status != IBV_WC_LOC_QP_OP_ERR &&
				    c->status != IBV_WC_LOC_PROT_ERR) {
					w->s.bad_status++;
					say(w, "worker %d: receive into stripe %d failed with %s",
					    w->id, st[c->wr_id],
					    t_wc_status_str(c->status));
				}
				/* a send must not succeed if its receive failed */
				if (status[c->wr_id] == IBV_WC_SUCCESS) {
					w->s.bad_status++;
					say(w, "worker %d: SEND %llu succeeded but its receive failed: %s",
					    w->id,
					    (unsigned long long)c->wr_id,
					    t_wc_status_str(c->status));
				}
			} else if (c->byte_len != STRIPE) {
				w->s.bad_status++;
				say(w, "worker %d: receive of %u bytes, sent %d",
				    w->id, c->byte_len, STRIPE);
			}
		}
		if (all_ok && got < K) {
			w->s.hangs++;
			say(w, "worker %d: %d of %d receives completed after their SENDs",
			    w->id, got, K);
		}
	}
	for (i = 0; i < K; i++)
		s2[i] = ld64(&r->pseq[page_of(st[i])]);

	for (i = 0; i < K; i++) {
		int stable = stable_state(s1[i], state[i], s2[i]);

		if (status[i] == IBV_WC_WR_FLUSH_ERR) {
			w->s.flushed++;
			fail = true;
		} else if (status[i] < 0) {
			fail = true;
		} else {
			if (status[i] != IBV_WC_SUCCESS) {
				if (!fail)
					count_status(w->s.status, status[i]);
				fail = true;
			}
			judge(w, op, status[i], stable, st[i]);
		}
		if (op == OP_READ) {
			if (status[i] != IBV_WC_SUCCESS)
				continue;
			want[i] = r->done_gen[st[i]];
			exact[i] = r->wseq[st[i]] == s1[i] && stable >= 0;
			check_stripe(w, dst + i * STRIPE, st[i], floor[i],
				     exact[i], want[i], r->posted_max[st[i]],
				     true, "RDMA READ");
			continue;
		}
		if (status[i] == IBV_WC_SUCCESS) {
			st32(&r->done_gen[st[i]], gen[i]);
			r->wseq[st[i]] = s1[i] & 1 ? NO_SEQ : s1[i];
		} else if (status[i] < 0) {
			/* may still land until the QP is gone: unknown */
			r->wseq[st[i]] = NO_SEQ;
		}
	}
	if (fail)
		w->s.failed[op]++;
	else
		count(&w->s.ok[op]);
	if (fail || got < K) {
		w->s.recreate++;
		if (!pair_new(w))
			say(w, "worker %d: cannot recreate its QP pair", w->id);
	}
}

static void cpu_op(struct worker *w, bool write)
{
	struct race *r = w->r;
	uint8_t tmp[STRIPE];
	int st[K], i;

	if (pthread_rwlock_tryrdlock(&r->cpu_lock)) {
		w->s.busy++;
		return;
	}
	pick(w, st);
	for (i = 0; i < K; i++) {
		int s = st[i];
		uint64_t seq = ld64(&r->pseq[page_of(s)]);

		if (write) {
			uint32_t gen = ++w->gen;

			r->posted_max[s] = gen;
			stripe_make(tmp, s, gen);
			memcpy(stripe_addr(r, s), tmp, STRIPE);
			st32(&r->done_gen[s], gen);
			r->wseq[s] = seq;
		} else {
			memcpy(tmp, stripe_addr(r, s), STRIPE);
			check_stripe(w, tmp, s, ld32(&r->floor_gen[s]),
				     r->wseq[s] == seq, r->done_gen[s],
				     r->posted_max[s], false, "CPU read");
		}
	}
	pthread_rwlock_unlock(&r->cpu_lock);
	count(&w->s.ok[write ? OP_CPU_WRITE : OP_CPU_READ]);
}

static void *worker_fn(void *arg)
{
	struct worker *w = arg;

	while (!__atomic_load_n(&w->r->stop, __ATOMIC_ACQUIRE)) {
		unsigned int x = t_rand64(&w->rnd) % 100;

		if (!w->have_pair && !pair_new(w))
			break;
		if (x < 30)
			rdma_batch(w, OP_WRITE);
		else if (x < 60)
			rdma_batch(w, OP_READ);
		else if (x < 75)
			rdma_batch(w, OP_SEND);
		else if (x < 90)
			cpu_op(w, false);
		else
			cpu_op(w, true);
	}
	return NULL;
}

/* ---- the mangler ---------------------------------------------------------- */

static void set_pages(struct race *r, int p0, int n, int state, bool bump)
{
	int p;

	for (p = p0; p < p0 + n; p++) {
		if (state >= 0)
			__atomic_store_n(&r->pstate[p], state,
					 __ATOMIC_SEQ_CST);
		if (bump)
			__atomic_add_fetch(&r->pseq[p], 1, __ATOMIC_SEQ_CST);
	}
}

static void nap_us(long us)
{
	struct timespec ts = { us / 1000000, us % 1000000 * 1000 };

	if (us > 0)
		nanosleep(&ts, NULL);
}

static bool remap(uint8_t *addr, size_t len)
{
	void *p = mmap(addr, len, PROT_READ | PROT_WRITE,
		       MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0);

	if (p == addr)
		return true;
	t_diag("mangler: mmap(MAP_FIXED, %p, %zu): %s", addr, len,
	       p == MAP_FAILED ? strerror(errno) : "another address");
	return false;
}

static void *mangler_fn(void *arg)
{
	struct race *r = arg;
	const char *env = getenv("T_RACE_SLEEP_US");
	long pause = env ? atol(env) : 1000;
	uint32_t snap[MAX_RANGE * STRIPES_PER_PAGE];
	uint64_t rnd = 4242;

	while (!__atomic_load_n(&r->stop, __ATOMIC_ACQUIRE)) {
		int n = 1 + t_rand64(&rnd) % MAX_RANGE;
		int p0 = t_rand64(&rnd) % (NPAGES - n + 1);
		int x = t_rand64(&rnd) % 100;
		int op = x < 30 ? M_UNMAP : x < 60 ? M_DONTNEED :
			 x < 90 ? M_PROTECT : M_REPLACE;
		uint8_t *a = r->buf + (size_t)p0 * T_PAGE;
		size_t len = (size_t)n * T_PAGE;
		long window = t_rand64(&rnd) % 2000;
		int s0 = p0 * STRIPES_PER_PAGE, ns = n * STRIPES_PER_PAGE, i;
		bool ok = true;

		pthread_rwlock_wrlock(&r->cpu_lock);
		/* what is known to have landed before the drop starts */
		for (i = 0; i < ns; i++)
			snap[i] = ld32(&r->done_gen[s0 + i]);
		set_pages(r, p0, n, -1, true);		/* odd: in progress */
		switch (op) {
		case M_UNMAP:
			ok = !munmap(a, len);
			set_pages(r, p0, n, ST_UNMAPPED, true);
			nap_us(window);
			set_pages(r, p0, n, ST_RW, true);
			ok = remap(a, len) && ok;
			break;
		case M_DONTNEED:
			ok = !madvise(a, len, MADV_DONTNEED);
			break;
		case M_PROTECT:
			ok = !mprotect(a, len, PROT_READ);
			set_pages(r, p0, n, ST_RO, true);
			nap_us(window);
			set_pages(r, p0, n, ST_RW, true);
			ok = !mprotect(a, len, PROT_READ | PROT_WRITE) && ok;
			break;
		case M_REPLACE:
			ok = remap(a, len);
			break;
		}
		if (op != M_PROTECT)
			for (i = 0; i < ns; i++)
				if (snap[i] > ld32(&r->floor_gen[s0 + i]))
					st32(&r->floor_gen[s0 + i], snap[i]);
		set_pages(r, p0, n, -1, true);		/* even: done */
		pthread_rwlock_unlock(&r->cpu_lock);
		count(&r->mst.ops[op]);
		if (!ok) {
			count(&r->mst.errors);
			t_diag("mangler: %s of pages %d..%d failed: %s",
			       mop_name[op], p0, p0 + n - 1, strerror(errno));
			break;
		}
		nap_us(pause);
	}
	return NULL;
}

/* ---- the final pass ------------------------------------------------------- */

static void image(uint8_t *dst, uint32_t gen)
{
	int s;

	for (s = 0; s < NSTRIPES; s++)
		stripe_make(dst + (size_t)s * STRIPE, s, gen);
}

static long slots_differ(const uint8_t *a, const uint8_t *b)
{
	long n = 0;
	size_t i;

	for (i = 0; i < LEN; i += SLOT)
		n += memcmp(a + i, b + i, SLOT) != 0;
	return n;
}

struct final {
	bool set_up;		/* its buffers, MRs and QP pair */
	bool dev_ok, cpu_ok, dev_sees_cpu;
	long cpu_differ, dev_differ;
};

static void final_pass(struct race *r, struct final *f)
{
	uint8_t *img = t_mmap(LEN), *rb = t_mmap(LEN);
	struct ibv_mr *imr = NULL, *rmr = NULL;
	struct t_rc_pair p;
	int s;

	memset(f, 0, sizeof(*f));
	if (!img || !rb) {
		t_diag("final pass: mmap: %s", strerror(errno));
		goto out;
	}
	imr = t_reg_mr(r->dev, img, LEN, T_ACCESS_ALL);
	rmr = t_reg_mr(r->dev, rb, LEN, T_ACCESS_ALL);
	if (!imr || !rmr || t_rc_pair_create(r->dev, &p, NULL)) {
		t_diag("final pass: cannot set up its MRs and QP pair");
		goto out;
	}
	f->set_up = true;

	image(img, 0x7ffffff0);
	s = t_rdma_sync(&p, IBV_WR_RDMA_WRITE, img, LEN, imr->lkey,
			(uintptr_t)r->buf, r->mr->rkey);
	if (s)
		t_diag("final WRITE of the whole MR: %s", t_wc_status_str(s));
	if (!s) {
		memset(rb, 0x5a, LEN);
		s = t_rdma_sync(&p, IBV_WR_RDMA_READ, rb, LEN, rmr->lkey,
				(uintptr_t)r->buf, r->mr->rkey);
		if (s)
			t_diag("final READ of the whole MR: %s",
			       t_wc_status_str(s));
	}
	f->dev_ok = !s && t_check(rb, img, LEN, "final READ after WRITE");
	f->cpu_differ = slots_differ(r->buf, img);
	f->cpu_ok = !f->cpu_differ;
	if (t_odp && f->cpu_differ)
		t_check(r->buf, img, LEN, "CPU view of the final WRITE");

	image(r->buf, 0x7ffffff1);
	memcpy(img, r->buf, LEN);
	memset(rb, 0x5a, LEN);
	s = t_rdma_sync(&p, IBV_WR_RDMA_READ, rb, LEN, rmr->lkey,
			(uintptr_t)r->buf, r->mr->rkey);
	if (s)
		t_diag("final READ of CPU-written data: %s", t_wc_status_str(s));
	f->dev_differ = s ? -1 : slots_differ(rb, img);
	f->dev_sees_cpu = !s && !f->dev_differ;
	if (t_odp && f->dev_differ > 0)
		t_check(rb, img, LEN, "device view of the CPU's final data");
	t_diag("final pass: the CPU's view of the device's WRITE differs in %ld of %lu slots, the device's view of the CPU's data in %ld",
	       f->cpu_differ, LEN / SLOT, f->dev_differ);
	t_rc_pair_destroy(&p);
out:
	t_dereg_mr(imr);
	t_dereg_mr(rmr);
	t_munmap(img, LEN);
	t_munmap(rb, LEN);
}

/* ---- the run -------------------------------------------------------------- */

/*
 * Whether every worker did each kind of RDMA batch and a CPU read or
 * write, and the mangler each of its operations, at least once.
 */
static bool covered(struct race *r)
{
	int i, j;

	for (i = 0; i < r->nworkers; i++) {
		const struct wstats *s = &r->workers[i].s;

		for (j = 0; j < NOPS; j++)
			if (j != OP_CPU_WRITE && j != OP_CPU_READ &&
			    !counted(&s->ok[j]))
				return false;
		if (!counted(&s->ok[OP_CPU_READ]) &&
		    !counted(&s->ok[OP_CPU_WRITE]))
			return false;
	}
	for (j = 0; j < NMOPS; j++)
		if (!counted(&r->mst.ops[j]))
			return false;
	return true;
}

/* Stop and join the threads that run. */
static void race_stop(struct race *r)
{
	__atomic_store_n(&r->stop, 1, __ATOMIC_RELEASE);
	if (r->have_mangler)
		pthread_join(r->mthr, NULL);
	r->have_mangler = false;
	while (r->nthreads > 0)
		pthread_join(r->workers[--r->nthreads].thr, NULL);
}

static void race_free(struct race *r)
{
	int i;

	if (!r)
		return;
	race_stop(r);
	for (i = 0; i < r->nworkers; i++) {
		if (r->workers[i].have_pair)
			t_rc_pair_destroy(&r->workers[i].p);
		t_dereg_mr(r->workers[i].lmr);
		t_munmap(r->workers[i].local, 2 * K * STRIPE);
	}
	t_dereg_mr(r->mr);
	t_munmap(r->buf, LEN);
	if (r->have_lock)
		pthread_rwlock_destroy(&r->cpu_lock);
	free(r);
}

/*
 * What the run leaves for the tests, in memory shared by every test's
 * process: each test runs in a child of its own.
 */
struct outcome {
	bool started;		/* a test began the run */
	bool ran;		/* the race is over: its counts are here */
	bool finished;		/* and the final pass too */
	int nworkers;
	double secs;		/* how long the race ran */
	bool progress;		/* covered() at its end */
	long merrors;		/* mangler operations that failed */
	struct wstats tot;	/* the workers' counts, summed */
	struct final fin;
};

static struct outcome *outcome;

/* Before the harness forks the first test. */
static void __attribute__((constructor)) outcome_map(void)
{
	void *p = mmap(NULL, sizeof(*outcome), PROT_READ | PROT_WRITE,
		       MAP_SHARED | MAP_ANONYMOUS, -1, 0);

	outcome = p == MAP_FAILED ? NULL : p;
}

/* The device, and the run's state if this test runs it. */
FIXTURE(race) {
	struct t_dev dev;
	struct race *r;
};

ODP_VARIANTS(race);

FIXTURE_SETUP(race)
{
	t_variant();
	ASSERT_EQ(0, t_dev_open(&self->dev));
}

FIXTURE_TEARDOWN(race)
{
	race_free(self->r);
	t_dev_close(&self->dev);
}

/* The race, then the final pass; their counts go to @o. */
static void run(struct __test_metadata *_metadata, FIXTURE_DATA(race) *self,
		struct outcome *o)
{
	const char *env_secs = getenv("ODP_RACE_SECS");
	const char *env_w = getenv("ODP_RACE_WORKERS");
	double secs = env_secs ? atof(env_secs) : 20, t0;
	pthread_rwlockattr_t la;
	struct wstats tot = { 0 };
	struct race *r;
	char line[512];
	int i, j, len;

	self->r = calloc(1, sizeof(*self->r));
	ASSERT_NE(NULL, self->r);
	r = self->r;
	r->dev = &self->dev;
	r->nworkers = 4;
	if (env_w)
		r->nworkers = atoi(env_w);
	if (r->nworkers < 1 || r->nworkers > MAXW ||
	    NSTRIPES % r->nworkers)
		r->nworkers = 4;

	pthread_rwlockattr_init(&la);
	pthread_rwlockattr_setkind_np(&la,
			PTHREAD_RWLOCK_PREFER_WRITER_NONRECURSIVE_NP);
	ASSERT_EQ(0, pthread_rwlock_init(&r->cpu_lock, &la));
	r->have_lock = true;

	r->buf = t_mmap(LEN);
	ASSERT_NE(NULL, r->buf);
	r->mr = t_reg_mr(r->dev, r->buf, LEN, T_ACCESS_ALL);
	ASSERT_NE(NULL, r->mr) {
		TH_LOG("cannot register the shared MR");
	}
	for (i = 0; i < r->nworkers; i++) {
		struct worker *w = &r->workers[i];

		w->r = r;
		w->id = i;
		w->rnd = 1000 + i;
		w->local = t_mmap(2 * K * STRIPE);
		ASSERT_NE(NULL, w->local);
		w->lmr = t_reg_mr(r->dev, w->local, 2 * K * STRIPE,
				  T_ACCESS_ALL);
		ASSERT_NE(NULL, w->lmr) {
			TH_LOG("worker %d setup", i);
		}
		ASSERT_TRUE(pair_new(w)) {
			TH_LOG("worker %d setup", i);
		}
	}

	t_diag("%d workers x RC QP pair, %d-byte stripes in a %lu KiB %s MR, %.0f s",
	       r->nworkers, STRIPE, LEN / T_KIB, t_mode(), secs);
	t0 = t_now();
	for (i = 0; i < r->nworkers; i++) {
		ASSERT_EQ(0, pthread_create(&r->workers[i].thr, NULL,
					    worker_fn, &r->workers[i]));
		r->nthreads++;
	}
	ASSERT_EQ(0, pthread_create(&r->mthr, NULL, mangler_fn, r));
	r->have_mangler = true;
	while (!counted(&r->mst.errors)) {
		double t = t_now() - t0;

		if (t >= 3 * secs || (t >= secs && covered(r)))
			break;
		nap_us(100000);
	}
	race_stop(r);
	t0 = t_now() - t0;

	for (i = 0; i < r->nworkers; i++) {
		struct wstats *s = &r->workers[i].s;
		long *a = (long *)s, *b = (long *)&tot;

		for (j = 0; j < (int)(offsetof(struct wstats, diags) /
				      sizeof(long)); j++)
			b[j] += a[j];
		len = snprintf(line, sizeof(line), "worker %d: ok/failed", i);
		for (j = 0; j < NOPS; j++)
			len += snprintf(line + len, sizeof(line) - len,
					" %s %ld/%ld", op_name[j], s->ok[j],
					s->failed[j]);
		t_diag("%s; QP pair recreated %ld times", line, s->recreate);
	}
	o->progress = covered(r);
	len = snprintf(line, sizeof(line), "mangler in %.1f s:", t0);
	for (j = 0; j < NMOPS; j++)
		len += snprintf(line + len, sizeof(line) - len, " %s %ld",
				mop_name[j], r->mst.ops[j]);
	t_diag("%s; CPU ops skipped while it worked: %ld", line, tot.busy);
	len = snprintf(line, sizeof(line), "first failure of a batch:");
	for (j = 0; j < NSTATUS; j++)
		if (tot.status[j])
			len += snprintf(line + len, sizeof(line) - len,
					" %s %ld", t_wc_status_str(j),
					tot.status[j]);
	len += snprintf(line + len, sizeof(line) - len,
			"; failed receives:");
	for (j = 0; j < NSTATUS; j++)
		if (tot.recv_status[j])
			len += snprintf(line + len, sizeof(line) - len,
					" %s %ld", t_wc_status_str(j),
					tot.recv_status[j]);
	t_diag("%s; flushed %ld", line, tot.flushed);
	t_diag("slots checked %ld (%ld exactly), zeros %ld, malformed %ld; stale (device/CPU) %ld/%ld, lost (device/CPU) %ld/%ld",
	       tot.slots, tot.exact, tot.zeros, tot.bad, tot.stale_dev,
	       tot.stale_cpu, tot.lost_dev, tot.lost_cpu);
	t_diag("operations: failed as the page state required %ld, succeeded where they had to fail %ld, failed where they had to succeed %ld, wrong status %ld, hung %ld",
	       tot.fail_expected, tot.must_fail, tot.must_succeed,
	       tot.bad_status, tot.hangs);
	o->nworkers = r->nworkers;
	o->secs = t0;
	o->merrors = r->mst.errors;
	o->tot = tot;
	o->ran = true;

	final_pass(r, &o->fin);
	o->finished = true;
}

/*
 * The run's outcome: the first test runs it (and the final pass), the
 * others find it over.
 */
static const struct outcome *race_outcome(struct __test_metadata *_metadata,
					  FIXTURE_DATA(race) *self)
{
	ASSERT_NE(NULL, outcome) {
		TH_LOG("no shared memory for the run's outcome");
	}
	if (!outcome->started) {
		outcome->started = true;
		run(_metadata, self, outcome);
	}
	ASSERT_TRUE(outcome->ran) {
		TH_LOG("the run did not end: see the test that started it");
	}
	return outcome;
}

/* The final pass's outcome. */
static const struct final *final_outcome(struct __test_metadata *_metadata,
					 FIXTURE_DATA(race) *self)
{
	const struct outcome *o = race_outcome(_metadata, self);

	ASSERT_TRUE(o->finished) {
		TH_LOG("the final pass did not end: see the test that ran it");
	}
	ASSERT_TRUE(o->fin.set_up) {
		TH_LOG("the final pass could not be set up");
	}
	return &o->fin;
}

/*
 * The race runs up to three times ODP_RACE_SECS (20 s by default), 22 s
 * quiet; the final pass is quick.
 */
#define RACE_TIMEOUT	180

/* ---- the tests ------------------------------------------------------------ */

/*
 * N QPs and threads ran S s of WRITE/READ/SEND/CPU batches against every
 * mangler operation
 */
TEST_F_TIMEOUT(race, covers_every_operation, RACE_TIMEOUT)
{
	const struct outcome *o = race_outcome(_metadata, self);

	EXPECT_TRUE(o->progress) {
		TH_LOG("%d QPs and threads ran %.0f s, and not every worker did every kind of batch, or the mangler not every operation",
		       o->nworkers, o->secs);
	}
	EXPECT_EQ(0, o->merrors) {
		TH_LOG("%ld mangler operations failed", o->merrors);
	}
}

/*
 * every slot read (N) was zeros or an image written for that slot (N
 * malformed)
 */
TEST_F_TIMEOUT(race, slots_well_formed, RACE_TIMEOUT)
{
	const struct wstats *tot = &race_outcome(_metadata, self)->tot;

	EXPECT_EQ(0, tot->bad) {
		TH_LOG("%ld of the %ld slots read were malformed", tot->bad,
		       tot->slots);
	}
	EXPECT_GT(tot->slots, 0) {
		TH_LOG("no slot was read");
	}
}

/*
 * odp: the CPU never saw a dropped page's data nor missed a write (N
 * stale, N missed)
 * pinned: the CPU never saw a dropped page's data (N stale); it missed N
 * slots the device wrote
 */
TEST_F_TIMEOUT(race, cpu_view, RACE_TIMEOUT)
{
	const struct wstats *tot = &race_outcome(_metadata, self)->tot;

	EXPECT_EQ(0, tot->stale_cpu) {
		TH_LOG("the CPU saw %ld slots of dropped pages",
		       tot->stale_cpu);
	}
	if (variant->odp) {
		EXPECT_EQ(0, tot->lost_cpu) {
			TH_LOG("the CPU missed %ld writes", tot->lost_cpu);
		}
	} else {
		t_diag("pinned: the CPU missed %ld slots the device wrote",
		       tot->lost_cpu);
	}
}

/*
 * odp: the device never read a dropped page's data nor missed a write (N
 * stale, N missed)
 * pinned contrast: the device read N slots of pages the process dropped,
 * missed N CPU writes, the CPU missed N device writes
 */
TEST_F_TIMEOUT(race, device_view, RACE_TIMEOUT)
{
	const struct wstats *tot = &race_outcome(_metadata, self)->tot;

	if (variant->odp) {
		EXPECT_EQ(0, tot->stale_dev) {
			TH_LOG("the device read %ld slots of dropped pages",
			       tot->stale_dev);
		}
		EXPECT_EQ(0, tot->lost_dev) {
			TH_LOG("the device missed %ld writes", tot->lost_dev);
		}
	} else {
		EXPECT_GT(tot->stale_dev + tot->lost_dev + tot->lost_cpu, 0) {
			TH_LOG("pinned contrast: the device's view and the CPU's never differed");
		}
	}
}

/*
 * odp: no operation hung; N failed with access errors, all over unmapped
 * or read-only pages
 * pinned: no operation hung or failed, even over unmapped or read-only
 * pages
 */
TEST_F_TIMEOUT(race, failures_as_page_state_requires, RACE_TIMEOUT)
{
	const struct wstats *tot = &race_outcome(_metadata, self)->tot;

	EXPECT_EQ(0, tot->hangs) {
		TH_LOG("%ld operations hung", tot->hangs);
	}
	EXPECT_EQ(0, tot->bad_status) {
		TH_LOG("%ld operations failed with a wrong status",
		       tot->bad_status);
	}
	EXPECT_EQ(0, tot->must_fail) {
		TH_LOG("%ld operations succeeded where they had to fail",
		       tot->must_fail);
	}
	EXPECT_EQ(0, tot->must_succeed) {
		TH_LOG("%ld operations failed where they had to succeed",
		       tot->must_succeed);
	}
}

/* quiet: an RDMA WRITE of the whole MR reads back exactly */
TEST_F_TIMEOUT(race, quiet_write_reads_back, RACE_TIMEOUT)
{
	EXPECT_TRUE(final_outcome(_metadata, self)->dev_ok);
}

/*
 * odp: quiet: the CPU sees exactly what the device wrote (N slots differ)
 * pinned contrast: the CPU does not see the device's WRITE in N of N slots
 */
TEST_F_TIMEOUT(race, quiet_cpu_view_of_device_write, RACE_TIMEOUT)
{
	const struct final *fin = final_outcome(_metadata, self);

	if (variant->odp) {
		EXPECT_EQ(0, fin->cpu_differ) {
			TH_LOG("the CPU does not see the device's WRITE in %ld slots",
			       fin->cpu_differ);
		}
	} else {
		EXPECT_GT(fin->cpu_differ, 0) {
			TH_LOG("pinned contrast: the CPU sees the device's WRITE in every slot");
		}
	}
}

/*
 * odp: quiet: the device reads exactly what the CPU wrote (N slots differ)
 * pinned contrast: the device does not see the CPU's data in N of N slots
 */
TEST_F_TIMEOUT(race, quiet_device_view_of_cpu_write, RACE_TIMEOUT)
{
	const struct final *fin = final_outcome(_metadata, self);

	if (variant->odp) {
		EXPECT_TRUE(fin->dev_sees_cpu) {
			TH_LOG("the device does not see the CPU's data in %ld slots (-1: its READ failed)",
			       fin->dev_differ);
		}
	} else {
		EXPECT_GT(fin->dev_differ, 0) {
			TH_LOG("pinned contrast: the device sees the CPU's data in every slot (or its READ failed: %ld)",
			       fin->dev_differ);
		}
	}
}

ODP_HARNESS_MAIN("threads and QPs hammering one MR while it is unmapped, dropped and write-protected")
