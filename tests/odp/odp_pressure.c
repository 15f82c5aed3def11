// SPDX-License-Identifier: GPL-2.0 OR Linux-OpenIB
/*
 * odp_pressure: under memory pressure, reclaim keeps the pages the device
 * streams through and takes the cold ones.
 *
 * The process moves into a cgroup v2 group whose memory.max (96 MiB) is
 * below its working set: a 128 MiB buffer under one ODP MR, zram swap
 * behind it.  The CPU fills the first 48 MiB (the hot part), which only
 * the device uses from then on: a QP pair streams over it, each 256 KiB
 * chunk READ and checked byte for byte against the generation it holds,
 * then given the next generation by a WRITE.  After one warm-up pass, with
 * the stream going, the CPU fills the other 80 MiB (the cold part) a chunk
 * every FILL_MS, past memory.max, and memory.reclaim is asked for RECLAIM
 * every RECLAIM_MS until TAIL_S after the fill.  The hot part is the
 * oldest of the LRU and no CPU page table says it is used: only the device
 * can tell reclaim (odp_aging).  Checked, with aging on:
 *
 *  - every chunk READ holds what the last WRITE put there, and the CPU
 *    reads the last generation of every chunk at the end;
 *  - at least 90% of the hot pages are resident at the end (pagemap);
 *  - once the cold part is in, reclaim takes at most 4% of the hot pages
 *    from the device (odp_page_invalidations: only the hot part is
 *    mapped), two memory.reclaim requests' worth (see below);
 *  - over the whole loop it faults at most a fifth of what it faults with
 *    odp_aging=0, which runs the same loop (and checks the data).
 *
 * The pressure is such that the LRU turns over more slowly than the device
 * revisits its hot pages: the cold fill takes FILL_PASSES times as long as
 * the warm-up pass did (at least a chunk every FILL_MS; a pass takes about
 * 2 s under TCG, a minute on the KASAN kernel, where only the data is
 * judged: at one pass a minute no page is hot).  Classic LRU
 * deactivates an active anonymous page whatever its accessed bits say,
 * which uses them up, so a page that is not touched again before it
 * reaches the tail of the inactive list goes, as a CPU page would.  Once
 * the cold part is in, that can happen within one request: the cold
 * pages, written once by the CPU, are activated when first scanned, the
 * inactive list runs out of unreferenced pages, and one request
 * deactivates hot pages and takes them before the device's next pass
 * (256 pages, 2% of the hot part; a read of a page and the write that
 * follows are two faults, so faults are not the measure).
 * MGLRU runs the same loop too; what it does is printed and its data
 * checked.  NUMA balancing is off meanwhile: its hinting scans invalidate
 * the range whatever reclaim does.
 *
 * Each test runs in a memory cgroup of its own, with NUMA balancing off,
 * and leaves it in teardown (checked there too).  The three runs are the
 * tests of their data; the residency, fault and comparison tests after
 * them judge the outcomes those tests left (in memory shared by the
 * tests' processes), and fail if that run did not complete.
 *
 * Pinned MRs (--pinned) skip: a pinned working set larger than memory.max
 * cannot be reclaimed at all.
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/mman.h>
#include <sys/mount.h>
#include <sys/stat.h>

#include "odpharness.h"

#define BUF_LEN		(128 * T_MIB)
#define HOT_LEN		(48 * T_MIB)
#define MEM_MAX		(96 * T_MIB)
#define CHUNK		(256 * 1024UL)
#define NCHUNKS		(BUF_LEN / CHUNK)
#define NHOT		(HOT_LEN / CHUNK)
#define RECLAIM		"1M"
#define RECLAIM_MS	1000
#define FILL_MS		50
#define TAIL_S		6
/*
 * The cold fill takes at least this many warm-up passes: reclaim then
 * turns the LRU over more slowly than the device revisits its pages.
 * A device slower than SLOW_PASS_S a pass (a debug kernel) is no test of
 * residency at this pressure: the loop is capped and only its data judged.
 */
#define FILL_PASSES	8
#define SLOW_PASS_S	8.0
/*
 * The fill and tail of one run, at most: the three runs and their checks
 * must fit the 240 s the runner gives a program.  A host too loaded to
 * fill the cold part in time ends the fill early, and the run then judges
 * only its data, as a slow device's does.
 */
#define RUN_BUDGET_S	50.0
/*
 * No MGLRU run once the others took this share of the runner's limit
 * (ODP_TEST_TIMEOUT, as tests/guest/20-odp-verbs.sh has it: 240 s).
 */
#define MGLRU_BEFORE	0.6
/*
 * The time limit of a test that runs the loop: a run takes up to 70 s
 * under TCG on a loaded host (a warm-up pass of 8 s, the fill and tail,
 * the CPU's check).
 */
#define RUN_TIMEOUT_S	210

#define CGROOT		"/sys/fs/cgroup"
#define LRU_GEN		"/sys/kernel/mm/lru_gen/enabled"
#define NUMA_BALANCING	"/proc/sys/kernel/numa_balancing"

struct stream {
	struct t_rc_pair pair;
	uint8_t *buf, *local, *exp;
	struct ibv_mr *mr, *lmr;
	uint32_t gen[NCHUNKS];
	pthread_t thread;
	bool running;		/* the thread is to be joined */
	volatile bool stop;
	bool data_ok;
	long bytes, passes;
};

struct outcome {
	bool done;		/* the run and its checks completed */
	char slow[96];		/* why only the data is judged, or "" */
	double pass_s;
	double hot_resident, cold_resident, mbps;
	long hot_faults, tail_faults, tail_taken, pswpin, reclaims;
};

enum { AGING_ON, AGING_OFF, MGLRU, NR_RUNS };

/*
 * What the tests leave for the ones after them: when the program started
 * (the MGLRU run's time budget) and the runs' outcomes.  Each test runs
 * in a process of its own: this is shared memory, mapped before the
 * harness forks the first.
 */
struct shared {
	double started;
	struct outcome run[NR_RUNS];
};

static struct shared *shared;

static void __attribute__((constructor)) shared_map(void)
{
	shared = mmap(NULL, sizeof(*shared), PROT_READ | PROT_WRITE,
		      MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	if (shared == MAP_FAILED) {
		perror("mmap");
		exit(1);
	}
	shared->started = t_now();
}

/*
 * The device, the knobs the test changes (and their values before), its
 * memory cgroup and the loop's stream.  Teardown puts back whatever the
 * test changed.
 */
FIXTURE(pressure) {
	struct t_dev dev;
	int aging;		/* odp_aging before the test */
	long numa_balancing;	/* before the test */
	bool numa_off, lru_gen_on, in_cgroup;
	char cgdir[128];
	struct stream *s;
};

ODP_VARIANTS(pressure);

static uint64_t chunk_seed(size_t c, uint32_t gen)
{
	return (uint64_t)c * 1000003 + gen;
}

/* One READ-check-WRITE of chunk @c; false (reported) on any failure. */
static bool stream_chunk(struct stream *s, size_t c)
{
	uint8_t *addr = s->buf + c * CHUNK;
	char what[96];
	int st;

	st = t_rdma_sync(&s->pair, IBV_WR_RDMA_READ, s->local, CHUNK,
			 s->lmr->lkey, (uintptr_t)addr, s->mr->rkey);
	t_fill(s->exp, CHUNK, chunk_seed(c, s->gen[c]));
	snprintf(what, sizeof(what), "READ of chunk %zu, generation %u", c,
		 s->gen[c]);
	if (st || !t_check(s->local, s->exp, CHUNK, what))
		return false;
	t_fill(s->local, CHUNK, chunk_seed(c, s->gen[c] + 1));
	st = t_rdma_sync(&s->pair, IBV_WR_RDMA_WRITE, s->local, CHUNK,
			 s->lmr->lkey, (uintptr_t)addr, s->mr->rkey);
	if (st) {
		t_diag("WRITE of chunk %zu: status %d", c, st);
		return false;
	}
	s->gen[c]++;
	s->bytes += 2 * CHUNK;
	return true;
}

static bool stream_pass(struct stream *s)
{
	size_t c;

	for (c = 0; c < NHOT; c++)
		if (!stream_chunk(s, c))
			return false;
	s->passes++;
	return true;
}

static void *stream_thread(void *arg)
{
	struct stream *s = arg;

	while (!s->stop && s->data_ok)
		s->data_ok = stream_pass(s);
	return NULL;
}

static void stream_free(struct stream *s)
{
	if (!s)
		return;
	if (s->running) {
		s->stop = true;
		pthread_join(s->thread, NULL);
		s->running = false;
	}
	t_rc_pair_destroy(&s->pair);
	t_dereg_mr(s->lmr);
	t_dereg_mr(s->mr);
	t_munmap(s->buf, BUF_LEN);
	t_munmap(s->local, CHUNK);
	free(s->exp);
	free(s);
}

static bool write_file(const char *path, const char *val)
{
	int fd = open(path, O_WRONLY);
	ssize_t n;

	if (fd < 0) {
		t_diag("%s: %s", path, strerror(errno));
		return false;
	}
	n = write(fd, val, strlen(val));
	close(fd);
	return n == (ssize_t)strlen(val);
}

static bool cgroup_set_max(FIXTURE_DATA(pressure) *self, const char *val)
{
	char path[192];

	snprintf(path, sizeof(path), "%s/memory.max", self->cgdir);
	return write_file(path, val);
}

/* A memory cgroup of our own, with the caller in it. */
static bool cgroup_enter(FIXTURE_DATA(pressure) *self)
{
	char path[192], val[32];

	if (access(CGROOT "/cgroup.controllers", F_OK) &&
	    mount("none", CGROOT, "cgroup2", 0, NULL)) {
		t_diag("mount cgroup2 on %s: %s", CGROOT, strerror(errno));
		return false;
	}
	if (!write_file(CGROOT "/cgroup.subtree_control", "+memory"))
		return false;
	snprintf(self->cgdir, sizeof(self->cgdir), CGROOT "/odp_pressure.%d",
		 getpid());
	if (mkdir(self->cgdir, 0755)) {
		t_diag("mkdir %s: %s", self->cgdir, strerror(errno));
		return false;
	}
	self->in_cgroup = true;
	snprintf(path, sizeof(path), "%s/cgroup.procs", self->cgdir);
	snprintf(val, sizeof(val), "%d", getpid());
	return write_file(path, val);
}

static bool cgroup_leave(FIXTURE_DATA(pressure) *self)
{
	char val[32];

	self->in_cgroup = false;
	snprintf(val, sizeof(val), "%d", getpid());
	if (!write_file(CGROOT "/cgroup.procs", val))
		return false;
	if (rmdir(self->cgdir)) {
		t_diag("rmdir %s: %s", self->cgdir, strerror(errno));
		return false;
	}
	return true;
}

FIXTURE_SETUP(pressure)
{
	t_variant();
	self->aging = -1;
	/* the tests skip */
	if (!variant->odp)
		return;
	ASSERT_EQ(0, t_dev_open(&self->dev));
	self->aging = t_odp_aging();
	ASSERT_LE(0, self->aging) {
		TH_LOG("rdma_rxe has no odp_aging parameter");
	}
	t_diag("SwapTotal %ld kB, SwapFree %ld kB", t_meminfo_kb("SwapTotal"),
	       t_meminfo_kb("SwapFree"));
	ASSERT_LE((long)(BUF_LEN / 1024), t_meminfo_kb("SwapFree")) {
		TH_LOG("needs %lu kB of free swap", BUF_LEN / 1024);
	}
	ASSERT_TRUE(cgroup_enter(self)) {
		TH_LOG("cannot set up a memory cgroup");
	}
	/*
	 * NUMA balancing's hinting scans invalidate the whole range every
	 * scan period, whatever reclaim does: it would hide what this
	 * measures (the bench's numabal step measures it).
	 */
	self->numa_balancing = t_knob_get(NUMA_BALANCING);
	if (self->numa_balancing > 0) {
		ASSERT_TRUE(t_knob_set(NUMA_BALANCING, 0)) {
			TH_LOG("cannot turn NUMA balancing off");
		}
		self->numa_off = true;
	}
}

FIXTURE_TEARDOWN(pressure)
{
	stream_free(self->s);
	self->s = NULL;
	if (self->lru_gen_on)
		write_file(LRU_GEN, "n");
	if (self->in_cgroup) {
		/* and the cgroup goes, with the memory the test used */
		EXPECT_TRUE(cgroup_leave(self)) {
			TH_LOG("the process does not leave its memory cgroup");
		}
	}
	if (self->aging >= 0)
		t_odp_aging_set(self->aging);
	if (self->numa_off)
		t_knob_set(NUMA_BALANCING, self->numa_balancing);
	t_dev_close(&self->dev);
}

static long count_state(const uint8_t *p, size_t len, char c)
{
	static char state[BUF_LEN / T_PAGE + 1];
	long n = 0;
	size_t i;

	if (t_page_states(p, len, state))
		return -1;
	for (i = 0; state[i]; i++)
		n += state[i] == c;
	return n;
}

/*
 * Fill the hot part, register the buffer, let the device map the hot part
 * (warm-up); then, with the stream going, the CPU fills the cold part a
 * chunk every FILL_MS, past memory.max, and memory.reclaim is asked for
 * RECLAIM every RECLAIM_MS, until TAIL_S after the fill.  The hot part is
 * the oldest of the LRU and only the device touches it: without aging,
 * reclaim takes it first.  The data is checked here; the outcome is left
 * in shared->run[@which] for the tests after this one.
 */
static void run(struct __test_metadata *_metadata,
		FIXTURE_DATA(pressure) *self, int which, const char *label)
{
	struct outcome *o = &shared->run[which];
	struct stream *s;
	char path[192], max[32];
	long faults0, filled, end, pswpin0, yq0, yf0, fill_ms;
	long inval_f, pswpin_f, migr_f, refault_f;
	long hot_pages = HOT_LEN / T_PAGE;
	const char *slow = NULL;
	double t0, t1, next, fill_end;
	size_t c, cold_end;

	memset(o, 0, sizeof(*o));
	s = self->s = calloc(1, sizeof(*s));
	ASSERT_NE(NULL, s);
	snprintf(max, sizeof(max), "%lu", MEM_MAX);
	ASSERT_TRUE(cgroup_set_max(self, max)) {
		TH_LOG("cannot set memory.max");
	}
	s->buf = t_mmap(BUF_LEN);
	ASSERT_NE(NULL, s->buf);
	s->local = t_mmap(CHUNK);
	ASSERT_NE(NULL, s->local);
	s->exp = malloc(CHUNK);
	ASSERT_NE(NULL, s->exp);
	madvise(s->buf, BUF_LEN, MADV_NOHUGEPAGE);
	for (c = 0; c < NHOT; c++)
		t_fill(s->buf + c * CHUNK, CHUNK, chunk_seed(c, 0));
	s->mr = t_reg_mr(&self->dev, s->buf, BUF_LEN, T_ACCESS_ALL);
	ASSERT_NE(NULL, s->mr);
	s->lmr = t_reg_mr_mode(&self->dev, s->local, CHUNK, T_ACCESS_ALL,
			       false);
	ASSERT_NE(NULL, s->lmr);
	ASSERT_EQ(0, t_rc_pair_create(&self->dev, &s->pair, NULL));
	t0 = t_now();
	s->data_ok = stream_pass(s);	/* warm-up: the device maps the hot part */
	ASSERT_TRUE(s->data_ok) {
		TH_LOG("%s: the warm-up pass", label);
	}
	o->pass_s = t_now() - t0;
	if (o->pass_s > SLOW_PASS_S)
		slow = "the device takes longer than 8 s a pass";
	fill_ms = o->pass_s * 1000 * FILL_PASSES / (NCHUNKS - NHOT);
	fill_ms = fill_ms < FILL_MS ? FILL_MS : fill_ms;
	if (fill_ms * (NCHUNKS - NHOT) > (RUN_BUDGET_S - TAIL_S) * 1000) {
		if (!slow)
			slow = "the device is too slow for this pressure";
		fill_ms = (RUN_BUDGET_S - TAIL_S) * 1000 / (NCHUNKS - NHOT);
	}
	t_diag("%s: a pass over the hot part takes %.1f s: the cold part gets a chunk every %ld ms%s%s",
	       label, o->pass_s, fill_ms, slow ? "; capped: " : "",
	       slow ? slow : "");

	snprintf(path, sizeof(path), "%s/memory.reclaim", self->cgdir);
	faults0 = t_hw_counter(&self->dev, "odp_page_faults");
	yq0 = t_hw_counter(&self->dev, "odp_young_queries");
	yf0 = t_hw_counter(&self->dev, "odp_young_found");
	pswpin0 = t_vmstat("pswpin");
	s->bytes = 0;
	ASSERT_EQ(0, pthread_create(&s->thread, NULL, stream_thread, s)) {
		TH_LOG("pthread_create failed");
	}
	s->running = true;
	t0 = t_now();
	next = t0 + RECLAIM_MS / 1000.0;
	fill_end = t0 + RUN_BUDGET_S - TAIL_S;
	for (c = NHOT; c < NCHUNKS && s->data_ok; c++) {
		if (t_now() > fill_end) {
			slow = "the host is too loaded to fill the cold part in time";
			t_diag("%s: %zu of %lu cold chunks filled in %.0f s: %s",
			       label, c - NHOT, NCHUNKS - NHOT,
			       RUN_BUDGET_S - TAIL_S, slow);
			break;
		}
		t_fill(s->buf + c * CHUNK, CHUNK, chunk_seed(c, 0));
		usleep(fill_ms * 1000);
		if (t_now() >= next) {
			/* EAGAIN: reclaim found less than asked, which is fine */
			write_file(path, RECLAIM);
			o->reclaims++;
			next += RECLAIM_MS / 1000.0;
		}
	}
	cold_end = c;
	filled = t_hw_counter(&self->dev, "odp_page_faults");
	t_diag("%s: cold part filled after %.1f s: %ld hot pages faulted so far, %ld of %ld hot and %ld of %lu cold pages resident",
	       label, t_now() - t0, filled - faults0,
	       count_state(s->buf, HOT_LEN, 'P'),
	       hot_pages, count_state(s->buf + HOT_LEN, BUF_LEN - HOT_LEN, 'P'),
	       (BUF_LEN - HOT_LEN) / T_PAGE);
	inval_f = t_hw_counter(&self->dev, "odp_page_invalidations");
	pswpin_f = t_vmstat("pswpin");
	migr_f = t_vmstat("pgmigrate_success");
	refault_f = t_vmstat("workingset_refault_anon");
	t1 = t_now() + (slow ? TAIL_S : TAIL_S > 3 * o->pass_s ?
				TAIL_S : 3 * o->pass_s);
	while (t_now() < t1 && s->data_ok) {
		usleep(RECLAIM_MS * 1000);
		write_file(path, RECLAIM);
		o->reclaims++;
	}
	s->stop = true;
	pthread_join(s->thread, NULL);
	s->running = false;
	t1 = t_now();
	end = t_hw_counter(&self->dev, "odp_page_faults");
	o->tail_faults = end - filled;
	o->tail_taken = t_hw_counter(&self->dev, "odp_page_invalidations") -
			inval_f;
	t_diag("%s: after the fill: %ld hot pages taken from the device, %ld faults; pswpin +%ld, workingset_refault_anon +%ld, pgmigrate_success +%ld",
	       label, o->tail_taken, o->tail_faults,
	       t_vmstat("pswpin") - pswpin_f,
	       t_vmstat("workingset_refault_anon") - refault_f,
	       t_vmstat("pgmigrate_success") - migr_f);
	o->hot_faults = end - faults0;
	o->pswpin = t_vmstat("pswpin") - pswpin0;
	o->mbps = s->bytes / (t1 - t0) / 1e6;
	o->hot_resident = (double)count_state(s->buf, HOT_LEN, 'P') / hot_pages;
	o->cold_resident = (double)count_state(s->buf + HOT_LEN,
					       BUF_LEN - HOT_LEN, 'P') /
			   ((BUF_LEN - HOT_LEN) / T_PAGE);
	t_diag("%s: %.1f s, %ld passes, %ld memory.reclaim of %s: hot %.1f%% resident, cold %.1f%%; %ld hot pages faulted, pswpin +%ld, %.2f MB/s; young queries +%ld, found +%ld",
	       label, t1 - t0, s->passes, o->reclaims, RECLAIM,
	       100 * o->hot_resident, 100 * o->cold_resident, o->hot_faults,
	       o->pswpin, o->mbps,
	       t_hw_counter(&self->dev, "odp_young_queries") - yq0,
	       t_hw_counter(&self->dev, "odp_young_found") - yf0);

	/* every chunk READ held what the last WRITE put there */
	EXPECT_TRUE(s->data_ok) {
		TH_LOG("%s: the stream found other data", label);
	}
	/* the CPU sees the last generation of every chunk it filled */
	for (c = 0; c < cold_end && s->data_ok; c++) {
		char what[64];

		t_fill(s->exp, CHUNK, chunk_seed(c, s->gen[c]));
		snprintf(what, sizeof(what), "%s: CPU read of chunk %zu", label,
			 c);
		EXPECT_BYTES(s->buf + c * CHUNK, s->exp, CHUNK, what);
		if (!_metadata->passed)
			break;
	}
	if (slow)
		snprintf(o->slow, sizeof(o->slow), "%s", slow);
	o->done = true;
}

/*
 * The outcome of run @which, which an earlier test ran; NULL (the test
 * fails) if it did not complete.
 */
static const struct outcome *outcome(struct __test_metadata *_metadata,
				     int which, const char *label)
{
	const struct outcome *o = &shared->run[which];

	EXPECT_TRUE(o->done) {
		TH_LOG("the %s run did not complete", label);
	}
	return o->done ? o : NULL;
}

#define PINNED_SKIP() do {						\
	if (!variant->odp)						\
		SKIP(return, "a pinned working set above memory.max cannot be reclaimed"); \
} while (0)

/*
 * odp_aging=1: every chunk streamed under memory.max holds the last data
 * written
 */
TEST_F_TIMEOUT(pressure, aging_on_data, RUN_TIMEOUT_S)
{
	PINNED_SKIP();
	ASSERT_TRUE(t_odp_aging_set(true)) {
		TH_LOG("cannot set odp_aging");
	}
	run(_metadata, self, AGING_ON, "odp_aging=1");
}

/*
 * odp_aging=1: at least 90% of the hot pages stay resident under
 * memory.reclaim
 */
TEST_F(pressure, aging_on_hot_resident)
{
	const struct outcome *on;

	PINNED_SKIP();
	on = outcome(_metadata, AGING_ON, "odp_aging=1");
	if (!on)
		return;
	if (on->slow[0])
		SKIP(return, "%s", on->slow);
	EXPECT_TRUE(on->hot_resident >= 0.9) {
		TH_LOG("hot %.1f%% resident", 100 * on->hot_resident);
	}
}

/*
 * odp_aging=1: once the cold part is in, reclaim takes at most 4% of the
 * hot pages from the device
 */
TEST_F(pressure, aging_on_few_taken)
{
	const struct outcome *on;

	PINNED_SKIP();
	on = outcome(_metadata, AGING_ON, "odp_aging=1");
	if (!on)
		return;
	if (on->slow[0])
		SKIP(return, "%s", on->slow);
	EXPECT_GE((long)(HOT_LEN / T_PAGE / 25), on->tail_taken) {
		TH_LOG("%ld of %lu hot pages taken after the fill (%ld faults)",
		       on->tail_taken, HOT_LEN / T_PAGE, on->tail_faults);
	}
}

/*
 * odp_aging=0: every chunk streamed under memory.max holds the last data
 * written
 */
TEST_F_TIMEOUT(pressure, aging_off_data, RUN_TIMEOUT_S)
{
	PINNED_SKIP();
	ASSERT_TRUE(t_odp_aging_set(false)) {
		TH_LOG("cannot clear odp_aging");
	}
	run(_metadata, self, AGING_OFF, "odp_aging=0");
}

/*
 * odp_aging=1 faults at most a fifth of the hot pages odp_aging=0 faults
 */
TEST_F(pressure, aging_cuts_faults)
{
	const struct outcome *on, *off;

	PINNED_SKIP();
	on = outcome(_metadata, AGING_ON, "odp_aging=1");
	off = outcome(_metadata, AGING_OFF, "odp_aging=0");
	if (!on || !off)
		return;
	t_diag("odp_aging=0 against 1: hot resident %.1f%% / %.1f%%, hot faults %ld / %ld (%ld / %ld once the cold part is in), pswpin %ld / %ld, %.2f / %.2f MB/s",
	       100 * off->hot_resident, 100 * on->hot_resident, off->hot_faults,
	       on->hot_faults, off->tail_faults, on->tail_faults, off->pswpin,
	       on->pswpin, off->mbps, on->mbps);
	if (on->slow[0] || off->slow[0])
		SKIP(return, "%s", on->slow[0] ? on->slow : off->slow);
	EXPECT_LE(on->hot_faults * 5, off->hot_faults);
}

/*
 * MGLRU, odp_aging=1: every chunk streamed under memory.max holds the
 * last data written
 */
TEST_F_TIMEOUT(pressure, mglru_data, RUN_TIMEOUT_S)
{
	double limit_s;

	PINNED_SKIP();
	limit_s = getenv("ODP_TEST_TIMEOUT") ?
		  atof(getenv("ODP_TEST_TIMEOUT")) : 0;
	if (limit_s <= 0)
		limit_s = 240;
	if (t_now() - shared->started > MGLRU_BEFORE * limit_s)
		SKIP(return, "the runs so far took too long for one more in the time limit");
	if (t_knob_get(LRU_GEN) < 0 || !write_file(LRU_GEN, "y"))
		SKIP(return, "no MGLRU");
	self->lru_gen_on = true;
	ASSERT_TRUE(t_odp_aging_set(true)) {
		TH_LOG("cannot set odp_aging");
	}
	run(_metadata, self, MGLRU, "MGLRU, odp_aging=1");
}

/* the process leaves its memory cgroup, which is removed */
TEST_F(pressure, leaves_cgroup)
{
	PINNED_SKIP();
	EXPECT_TRUE(cgroup_leave(self));
}

ODP_HARNESS_MAIN("reclaim under pressure spares what the device streams")
