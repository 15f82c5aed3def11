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
 *  - once the cold part is in, the device faults (odp_page_faults) at most
 *    2% of the hot pages;
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
 * reaches the tail of the inactive list goes, as a CPU page would.
 * MGLRU runs the same loop too; what it does is printed and its data
 * checked.  NUMA balancing is off meanwhile: its hinting scans invalidate
 * the range whatever reclaim does.
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

#include "odptest.h"

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

#define CGROOT		"/sys/fs/cgroup"
#define LRU_GEN		"/sys/kernel/mm/lru_gen/enabled"
#define NUMA_BALANCING	"/proc/sys/kernel/numa_balancing"

static struct t_dev dev;
static char cgdir[128];

struct stream {
	struct t_rc_pair pair;
	uint8_t *buf, *local, *exp;
	struct ibv_mr *mr, *lmr;
	uint32_t gen[NCHUNKS];
	pthread_t thread;
	volatile bool stop;
	bool data_ok;
	long bytes, passes;
};

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

static bool cgroup_set_max(const char *val)
{
	char path[192];

	snprintf(path, sizeof(path), "%s/memory.max", cgdir);
	return write_file(path, val);
}

/* A memory cgroup of our own, with the caller in it. */
static bool cgroup_enter(void)
{
	char path[192], val[32];

	if (access(CGROOT "/cgroup.controllers", F_OK) &&
	    mount("none", CGROOT, "cgroup2", 0, NULL)) {
		t_diag("mount cgroup2 on %s: %s", CGROOT, strerror(errno));
		return false;
	}
	if (!write_file(CGROOT "/cgroup.subtree_control", "+memory"))
		return false;
	snprintf(cgdir, sizeof(cgdir), CGROOT "/odp_pressure.%d", getpid());
	if (mkdir(cgdir, 0755)) {
		t_diag("mkdir %s: %s", cgdir, strerror(errno));
		return false;
	}
	snprintf(path, sizeof(path), "%s/cgroup.procs", cgdir);
	snprintf(val, sizeof(val), "%d", getpid());
	return write_file(path, val);
}

static bool cgroup_leave(void)
{
	char val[32];

	snprintf(val, sizeof(val), "%d", getpid());
	if (!write_file(CGROOT "/cgroup.procs", val))
		return false;
	if (rmdir(cgdir)) {
		t_diag("rmdir %s: %s", cgdir, strerror(errno));
		return false;
	}
	return true;
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

struct outcome {
	bool setup, data;
	const char *slow;	/* why only the data is judged, or NULL */
	double pass_s;
	double hot_resident, cold_resident, mbps;
	long hot_faults, tail_faults, pswpin, reclaims;
};

/*
 * Fill the hot part, register the buffer, let the device map the hot part
 * (warm-up); then, with the stream going, the CPU fills the cold part a
 * chunk every FILL_MS, past memory.max, and memory.reclaim is asked for
 * RECLAIM every RECLAIM_MS, until TAIL_S after the fill.  The hot part is
 * the oldest of the LRU and only the device touches it: without aging,
 * reclaim takes it first.
 */
static void run(const char *label, struct outcome *o)
{
	struct stream *s;
	char path[192], max[32];
	long faults0, filled, end, pswpin0, yq0, yf0, fill_ms;
	long hot_pages = HOT_LEN / T_PAGE;
	double t0, t1, next, fill_end;
	size_t c, cold_end;

	memset(o, 0, sizeof(*o));
	s = calloc(1, sizeof(*s));
	if (!s)
		t_bail("out of memory");
	snprintf(max, sizeof(max), "%lu", MEM_MAX);
	if (!cgroup_set_max(max))
		t_bail("cannot set memory.max");
	s->buf = t_mmap(BUF_LEN);
	s->local = t_mmap(CHUNK);
	s->exp = malloc(CHUNK);
	if (!s->buf || !s->local || !s->exp)
		t_bail("out of memory");
	madvise(s->buf, BUF_LEN, MADV_NOHUGEPAGE);
	for (c = 0; c < NHOT; c++)
		t_fill(s->buf + c * CHUNK, CHUNK, chunk_seed(c, 0));
	s->mr = t_reg_mr(&dev, s->buf, BUF_LEN, T_ACCESS_ALL);
	s->lmr = t_reg_mr_mode(&dev, s->local, CHUNK, T_ACCESS_ALL, false);
	if (!s->mr || !s->lmr || t_rc_pair_create(&dev, &s->pair, NULL))
		goto out;
	t0 = t_now();
	s->data_ok = stream_pass(s);	/* warm-up: the device maps the hot part */
	if (!s->data_ok)
		goto out_pair;
	o->setup = true;
	o->pass_s = t_now() - t0;
	if (o->pass_s > SLOW_PASS_S)
		o->slow = "the device takes longer than 8 s a pass";
	fill_ms = o->pass_s * 1000 * FILL_PASSES / (NCHUNKS - NHOT);
	fill_ms = fill_ms < FILL_MS ? FILL_MS : fill_ms;
	if (fill_ms * (NCHUNKS - NHOT) > (RUN_BUDGET_S - TAIL_S) * 1000) {
		if (!o->slow)
			o->slow = "the device is too slow for this pressure";
		fill_ms = (RUN_BUDGET_S - TAIL_S) * 1000 / (NCHUNKS - NHOT);
	}
	t_diag("%s: a pass over the hot part takes %.1f s: the cold part gets a chunk every %ld ms%s%s",
	       label, o->pass_s, fill_ms, o->slow ? "; capped: " : "",
	       o->slow ? o->slow : "");

	snprintf(path, sizeof(path), "%s/memory.reclaim", cgdir);
	faults0 = t_hw_counter(&dev, "odp_page_faults");
	yq0 = t_hw_counter(&dev, "odp_young_queries");
	yf0 = t_hw_counter(&dev, "odp_young_found");
	pswpin0 = t_vmstat("pswpin");
	s->bytes = 0;
	if (pthread_create(&s->thread, NULL, stream_thread, s))
		t_bail("pthread_create failed");
	t0 = t_now();
	next = t0 + RECLAIM_MS / 1000.0;
	fill_end = t0 + RUN_BUDGET_S - TAIL_S;
	for (c = NHOT; c < NCHUNKS && s->data_ok; c++) {
		if (t_now() > fill_end) {
			o->slow = "the host is too loaded to fill the cold part in time";
			t_diag("%s: %zu of %lu cold chunks filled in %.0f s: %s",
			       label, c - NHOT, NCHUNKS - NHOT,
			       RUN_BUDGET_S - TAIL_S, o->slow);
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
	filled = t_hw_counter(&dev, "odp_page_faults");
	t_diag("%s: cold part filled after %.1f s: %ld hot pages faulted so far, %ld of %ld hot and %ld of %lu cold pages resident",
	       label, t_now() - t0, filled - faults0,
	       count_state(s->buf, HOT_LEN, 'P'),
	       hot_pages, count_state(s->buf + HOT_LEN, BUF_LEN - HOT_LEN, 'P'),
	       (BUF_LEN - HOT_LEN) / T_PAGE);
	t1 = t_now() + (o->slow ? TAIL_S : TAIL_S > 3 * o->pass_s ?
					TAIL_S : 3 * o->pass_s);
	while (t_now() < t1 && s->data_ok) {
		usleep(RECLAIM_MS * 1000);
		write_file(path, RECLAIM);
		o->reclaims++;
	}
	s->stop = true;
	pthread_join(s->thread, NULL);
	t1 = t_now();
	end = t_hw_counter(&dev, "odp_page_faults");
	o->tail_faults = end - filled;
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
	       o->pswpin, o->mbps, t_hw_counter(&dev, "odp_young_queries") - yq0,
	       t_hw_counter(&dev, "odp_young_found") - yf0);

	/* the CPU sees the last generation of every chunk it filled */
	o->data = s->data_ok;
	for (c = 0; c < cold_end && o->data; c++) {
		char what[64];

		t_fill(s->exp, CHUNK, chunk_seed(c, s->gen[c]));
		snprintf(what, sizeof(what), "%s: CPU read of chunk %zu", label,
			 c);
		o->data = t_check(s->buf + c * CHUNK, s->exp, CHUNK, what);
	}
out_pair:
	t_rc_pair_destroy(&s->pair);
out:
	t_dereg_mr(s->lmr);
	t_dereg_mr(s->mr);
	t_munmap(s->buf, BUF_LEN);
	t_munmap(s->local, CHUNK);
	free(s->exp);
	free(s);
}

int main(int argc, char **argv)
{
	int aging;
	long lru_gen, numa_balancing;
	struct outcome on, off, mglru;
	double started = t_now(), limit_s;

	t_init(argc, argv, "reclaim under pressure spares what the device streams");
	t_plan(t_odp ? 7 : 1);
	if (!t_odp) {
		t_skip("a pinned working set above memory.max cannot be reclaimed",
		       "pinned: streaming under memory.max");
		return t_finish();
	}
	if (t_dev_open(&dev))
		t_bail("cannot open the RDMA device");
	aging = t_odp_aging();
	if (aging < 0)
		t_bail("rdma_rxe has no odp_aging parameter");
	t_diag("SwapTotal %ld kB, SwapFree %ld kB", t_meminfo_kb("SwapTotal"),
	       t_meminfo_kb("SwapFree"));
	if (t_meminfo_kb("SwapFree") < (long)(BUF_LEN / 1024))
		t_bail("needs %lu kB of free swap", BUF_LEN / 1024);
	if (!cgroup_enter())
		t_bail("cannot set up a memory cgroup");
	/*
	 * NUMA balancing's hinting scans invalidate the whole range every
	 * scan period, whatever reclaim does: it would hide what this
	 * measures (the bench's numabal step measures it).
	 */
	numa_balancing = t_knob_get(NUMA_BALANCING);
	if (numa_balancing > 0 && !t_knob_set(NUMA_BALANCING, 0))
		t_bail("cannot turn NUMA balancing off");

	if (!t_odp_aging_set(true))
		t_bail("cannot set odp_aging");
	run("odp_aging=1", &on);
	t_result(on.setup && on.data,
		 "odp_aging=1: every chunk streamed under memory.max holds the last data written");
	if (on.slow) {
		t_skip(on.slow, "odp_aging=1: 90%% of the hot pages stay resident");
		t_skip(on.slow, "odp_aging=1: at most 2%% of the hot pages faulted");
	} else {
		t_result(on.setup && on.hot_resident >= 0.9,
			 "odp_aging=1: at least 90%% of the hot pages stay resident under memory.reclaim");
		t_result(on.setup && on.tail_faults <= (long)(HOT_LEN / T_PAGE / 50),
			 "odp_aging=1: once the cold part is in, the device faults at most 2%% of the hot pages");
	}

	if (!t_odp_aging_set(false))
		t_bail("cannot clear odp_aging");
	run("odp_aging=0", &off);
	t_result(off.setup && off.data,
		 "odp_aging=0: every chunk streamed under memory.max holds the last data written");
	t_diag("odp_aging=0 against 1: hot resident %.1f%% / %.1f%%, hot faults %ld / %ld (%ld / %ld once the cold part is in), pswpin %ld / %ld, %.2f / %.2f MB/s",
	       100 * off.hot_resident, 100 * on.hot_resident, off.hot_faults,
	       on.hot_faults, off.tail_faults, on.tail_faults, off.pswpin,
	       on.pswpin, off.mbps, on.mbps);
	if (on.slow || off.slow)
		t_skip(on.slow ? on.slow : off.slow, "odp_aging=1 faults a fifth of what odp_aging=0 faults");
	else
		t_result(on.setup && off.setup && on.hot_faults * 5 <= off.hot_faults,
			 "odp_aging=1 faults at most a fifth of the hot pages odp_aging=0 faults");
	t_odp_aging_set(true);

	lru_gen = t_knob_get(LRU_GEN);
	limit_s = getenv("ODP_TEST_TIMEOUT") ? atof(getenv("ODP_TEST_TIMEOUT")) : 0;
	if (limit_s <= 0)
		limit_s = 240;
	if (t_now() - started > MGLRU_BEFORE * limit_s) {
		t_skip("the runs so far took too long for one more in the time limit",
		       "MGLRU, odp_aging=1: streaming under memory.max");
	} else if (lru_gen < 0 || !write_file(LRU_GEN, "y")) {
		t_skip("no MGLRU", "MGLRU, odp_aging=1: streaming under memory.max");
	} else {
		run("MGLRU, odp_aging=1", &mglru);
		t_result(mglru.setup && mglru.data,
			 "MGLRU, odp_aging=1: every chunk streamed under memory.max holds the last data written");
		write_file(LRU_GEN, "n");
	}
	t_result(cgroup_leave(), "the process leaves its memory cgroup, which is removed");
	t_odp_aging_set(aging);
	if (numa_balancing > 0)
		t_knob_set(NUMA_BALANCING, numa_balancing);
	t_dev_close(&dev);
	return t_finish();
}
