// SPDX-License-Identifier: GPL-2.0 OR Linux-OpenIB
/*
 * odp_migrate: pages under an ODP MR move between NUMA nodes while the
 * device writes into them.
 *
 * A 64 MiB buffer ($T_MIGRATE_MB) is placed on node 0 and registered.  A
 * writer thread streams RDMA WRITEs over the whole buffer, generation after
 * generation; every 8-byte word carries the generation and its own offset.
 * After each generation it checks with the CPU that the buffer holds
 * exactly that generation (a write that went to a page the kernel had
 * already migrated away from shows up as an older generation).  Meanwhile
 * the main thread move_pages() the buffer to node 1, back to node 0, and so
 * on, and after each move asks move_pages(..., nodes = NULL, ...) where the
 * pages really are: the return value of a move proves nothing.  At the end
 * every byte must be the last generation, and an RDMA READ must return it.
 *
 * With --pinned the pages are long-term pinned by the registration and
 * cannot migrate.  The pinned run asserts exactly that: after every
 * attempted move all pages are still on node 0 (and the data is intact,
 * since nothing moved).  That is the contrast to ODP, where every page must
 * reach its target node.
 *
 * Then NUMA balancing: a second buffer is first touched on node 0, the
 * process moves to node 1 and never touches it again, NUMA balancing scans
 * fast, and RDMA WRITEs and READs stream through it.  The scanner makes its
 * PTEs PROT_NONE, so every device access after a scan is a NUMA hinting
 * fault taken by the fault worker; the pages must stay on node 0, where the
 * process put them: a device fault is not a CPU access from the worker's
 * node, and pages that followed the worker would bounce between nodes
 * while the device waits for each copy.
 *
 * Last, compaction: a thread streams generations through the buffer, each
 * an RDMA WRITE of all of it and an RDMA READ back into a cleared buffer,
 * checked word by word, while the main thread writes 1 to
 * /proc/sys/vm/compact_memory again and again for 5 s.  Every READ must
 * return what was written, in both modes.  How many pages changed frame
 * (/proc/self/pagemap PFNs, root only) is reported, not asserted:
 * compaction may legitimately move nothing, and pinned pages it skips.
 *
 * Each test places and registers the buffer afresh.  The moves are one
 * test, with a check after each move and after the last: a test per move
 * would make all the moves before it again, and on the debug kernel that
 * took longer than the program's time limit.
 */
#include <errno.h>
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/mount.h>
#include <numa.h>
#include <numaif.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "odpharness.h"

#define ROUNDS		4
#define CHUNK		(256 * T_KIB)
#define WINDOW		16

/* NUMA balancing knobs, set to scan fast while the case runs. */
#define NB_LEN		(16 * T_MIB)
#define NB_CHUNK	T_MIB
#define NB_SECS		6
#define NB_DIR		"/sys/kernel/debug/sched/numa_balancing/"

static const char *const nb_knob[] = {
	"/proc/sys/kernel/numa_balancing",
	NB_DIR "scan_delay_ms",
	NB_DIR "scan_period_min_ms",
	NB_DIR "scan_period_max_ms",
	NB_DIR "scan_size_mb",
};
static const long nb_fast[] = { 1, 0, 100, 200, 256 };
#define NR_NB_KNOBS	T_ARRAY_SIZE(nb_knob)

/*
 * Time limits.  The moves wait at most 120 s for each generation; a
 * generation takes a few seconds under TCG.
 */
#define MOVE_SECS	300
#define NB_TEST_SECS	120
#define COMPACT_TEST_SECS	300

/*
 * The device, the buffer (placed on node 0, registered as mr) and src
 * (registered as smr), a QP pair, what the writer thread and the
 * compaction streamer share with the test, and the NUMA balancing case's
 * buffer and knobs.
 */
FIXTURE(migrate) {
	struct t_dev dev;
	size_t len, npages;
	uint64_t *buf, *src;
	struct ibv_mr *mr, *smr;
	struct t_rc_pair pair;
	bool have_pair;
	void **pages;
	int *nodes, *status;
	/* the writer */
	pthread_t thr;
	bool writing;
	int stop;		/* test -> writer: finish one more generation */
	unsigned int gen_done;	/* writer -> test: last complete generation */
	unsigned int gen_bad;	/* generations found corrupt */
	int writer_err;		/* posting or completion failure */
	/* NUMA balancing */
	long nb_saved[NR_NB_KNOBS];
	size_t nb_set;		/* knobs set, to restore */
	uint8_t *nb;
	struct ibv_mr *nmr;
	bool nb_pinned;		/* the test runs on one node */
	/* compaction */
	pthread_t cthr;
	bool cstreaming;
	int cstop;		/* test -> streamer: stop */
	unsigned int cgen;	/* streamer -> test: generations done */
	unsigned int cbad;	/* generations a READ returned wrongly */
	uint64_t *pfn0, *pfn;
};

ODP_VARIANTS(migrate);

FIXTURE_SETUP(migrate)
{
	const char *env = getenv("T_MIGRATE_MB");
	unsigned long mask = 1;
	size_t i;

	t_variant();
	/* Whole multiples of 4 MiB. */
	self->len = (env && atoi(env) >= 4 ? (size_t)atoi(env) / 4 * 4 : 64) *
		    T_MIB;
	self->npages = self->len / T_PAGE;
	ASSERT_TRUE(numa_available() >= 0 && numa_max_node() >= 1) {
		TH_LOG("need NUMA nodes 0 and 1 (numa_max_node %d)",
		       numa_available() < 0 ? -1 : numa_max_node());
	}
	ASSERT_EQ(0, t_dev_open(&self->dev));

	self->buf = t_mmap(self->len);
	self->src = t_mmap(self->len);
	self->pages = calloc(self->npages, sizeof(*self->pages));
	self->nodes = calloc(self->npages, sizeof(*self->nodes));
	self->status = calloc(self->npages, sizeof(*self->status));
	ASSERT_TRUE(self->buf && self->src && self->pages && self->nodes &&
		    self->status) {
		TH_LOG("out of memory");
	}
	for (i = 0; i < self->npages; i++)
		self->pages[i] = (uint8_t *)self->buf + i * T_PAGE;

	/*
	 * Place the buffer on node 0.  The policy stays: a VMA policy without
	 * MPOL_F_MOF also keeps automatic NUMA balancing away from the
	 * buffer, which would otherwise move pages on its own (and, for
	 * pinned pages, leave transient migration entries that the page
	 * query reports as -EFAULT).  move_pages() ignores the policy.
	 */
	ASSERT_EQ(0, mbind(self->buf, self->len, MPOL_PREFERRED, &mask,
			   sizeof(mask) * 8, 0)) {
		TH_LOG("mbind(node 0): %s", strerror(errno));
	}
	memset(self->buf, 0, self->len);

	self->mr = t_reg_mr(&self->dev, self->buf, self->len, T_ACCESS_ALL);
	self->smr = t_reg_mr(&self->dev, self->src, self->len, T_ACCESS_ALL);
	ASSERT_TRUE(self->mr && self->smr) {
		TH_LOG("cannot register %s MRs", t_mode());
	}
	ASSERT_EQ(0, t_rc_pair_create(&self->dev, &self->pair, NULL)) {
		TH_LOG("cannot create a QP pair");
	}
	self->have_pair = true;
}

FIXTURE_TEARDOWN(migrate)
{
	size_t n = self->nb_set;

	if (self->writing) {
		__atomic_store_n(&self->stop, 1, __ATOMIC_RELEASE);
		pthread_join(self->thr, NULL);
	}
	if (self->cstreaming) {
		__atomic_store_n(&self->cstop, 1, __ATOMIC_RELEASE);
		pthread_join(self->cthr, NULL);
	}
	t_dereg_mr(self->nmr);
	t_munmap(self->nb, NB_LEN);
	while (n--)
		t_knob_set(nb_knob[n], self->nb_saved[n]);
	if (self->nb_pinned)
		numa_run_on_node(-1);
	free(self->pfn0);
	free(self->pfn);
	if (self->have_pair)
		t_rc_pair_destroy(&self->pair);
	t_dereg_mr(self->mr);
	t_dereg_mr(self->smr);
	t_munmap(self->buf, self->len);
	t_munmap(self->src, self->len);
	free(self->pages);
	free(self->nodes);
	free(self->status);
	t_dev_close(&self->dev);
}

static void fill_gen(FIXTURE_DATA(migrate) *self, uint64_t *p,
		     unsigned int gen)
{
	size_t i, n = self->len / 8;

	for (i = 0; i < n; i++)
		p[i] = (uint64_t)gen << 40 | i;
}

/* Stream one generation through the buffer (WRITE from src, or READ
 * into src), WINDOW operations in flight.
 */
static bool stream_gen(FIXTURE_DATA(migrate) *self, enum ibv_wr_opcode op)
{
	size_t posted = 0, done = 0, nchunks = self->len / CHUNK;
	struct ibv_wc wc[WINDOW];
	int n, i;

	while (done < nchunks) {
		while (posted < nchunks && posted - done < WINDOW) {
			size_t off = posted * CHUNK;

			if (t_post_rdma(self->pair.qp[0], op, posted,
					(uint8_t *)self->src + off, CHUNK,
					self->smr->lkey,
					(uintptr_t)self->buf + off,
					self->mr->rkey))
				return false;
			posted++;
		}
		n = t_poll(self->pair.scq[0], 1, wc);
		if (n != 1)
			return false;
		for (i = 0; i < n; i++) {
			if (wc[i].status != IBV_WC_SUCCESS) {
				t_diag("%s of chunk %llu: %s",
				       op == IBV_WR_RDMA_READ ? "READ" : "WRITE",
				       (unsigned long long)wc[i].wr_id,
				       ibv_wc_status_str(wc[i].status));
				return false;
			}
		}
		done += n;
	}
	return true;
}

/*
 * The writer thread: generation after generation until told to stop.
 * What it finds wrong, the test checks (writer_err, gen_bad).
 */
static void *writer(void *arg)
{
	FIXTURE_DATA(migrate) *self = arg;
	unsigned int gen;
	bool last = false;
	char what[64];

	for (gen = 1; !last; gen++) {
		last = __atomic_load_n(&self->stop, __ATOMIC_ACQUIRE);
		fill_gen(self, self->src, gen);
		if (!stream_gen(self, IBV_WR_RDMA_WRITE)) {
			__atomic_store_n(&self->writer_err, 1, __ATOMIC_RELEASE);
			break;
		}
		snprintf(what, sizeof(what), "generation %u", gen);
		if (!t_check(self->buf, self->src, self->len, what))
			__atomic_add_fetch(&self->gen_bad, 1, __ATOMIC_RELEASE);
		__atomic_store_n(&self->gen_done, gen, __ATOMIC_RELEASE);
	}
	return NULL;
}

/* Count pages per node (according to the kernel, not to a move's status). */
static int where(FIXTURE_DATA(migrate) *self, long *on0, long *on1)
{
	int ost[4] = { 0 }, *status = self->status;
	long other = 0, ocnt[4] = { 0 };
	size_t i, first = 0;
	int k;

	if (numa_move_pages(0, self->npages, self->pages, NULL, status, 0)) {
		t_diag("move_pages(query): %s", strerror(errno));
		return -1;
	}
	*on0 = *on1 = 0;
	for (i = 0; i < self->npages; i++) {
		if (status[i] == 0) {
			(*on0)++;
			continue;
		}
		if (status[i] == 1) {
			(*on1)++;
			continue;
		}
		if (!other++)
			first = i;
		for (k = 0; k < 4; k++) {
			if (!ocnt[k] || ost[k] == status[i]) {
				ost[k] = status[i];
				ocnt[k]++;
				break;
			}
		}
	}
	if (!other)
		return 0;
	t_diag("%ld pages neither on node 0 nor 1, the first is page %zu:",
	       other, first);
	for (k = 0; k < 4 && ocnt[k]; k++)
		t_diag("  %ld pages with status %d (%s)", ocnt[k], ost[k],
		       ost[k] < 0 ? strerror(-ost[k]) : "node");
	return 0;
}

static void wait_gen_after(FIXTURE_DATA(migrate) *self, unsigned int g)
{
	double deadline = t_now() + 120;

	while (__atomic_load_n(&self->gen_done, __ATOMIC_ACQUIRE) <= g &&
	       !__atomic_load_n(&self->writer_err, __ATOMIC_ACQUIRE) &&
	       t_now() < deadline)
		usleep(10000);
}

/* ---- moves under a WRITE stream ------------------------------------------- */

/*
 * Start the writer, let its first generation land (so the device has
 * mapped it all), then make moves 1 .. ROUNDS: to node 1, back to node
 * 0, and so on, each checked, each followed by a whole generation written
 * into the new pages; then stop the writer.
 */
static void moves(struct __test_metadata *_metadata,
		  FIXTURE_DATA(migrate) *self)
{
	size_t i, npages = self->npages;
	long on0 = 0, on1 = 0;
	int round, ret, wret;
	double t0;

	ASSERT_EQ(0, pthread_create(&self->thr, NULL, writer, self)) {
		TH_LOG("pthread_create");
	}
	self->writing = true;
	wait_gen_after(self, 0);

	for (round = 1; round <= ROUNDS; round++) {
		int target = round & 1;
		unsigned int g = __atomic_load_n(&self->gen_done,
						 __ATOMIC_ACQUIRE);

		for (i = 0; i < npages; i++)
			self->nodes[i] = target;
		t0 = t_now();
		ret = numa_move_pages(0, npages, self->pages, self->nodes,
				      self->status, MPOL_MF_MOVE);
		t_diag("move %d to node %d: move_pages returned %d%s%s in %.3f s",
		       round, target, ret, ret < 0 ? ": " : "",
		       ret < 0 ? strerror(errno) : "", t_now() - t0);
		wret = where(self, &on0, &on1);
		t_diag("move %d: %ld pages on node 0, %ld on node 1 (generation %u done)",
		       round, on0, on1, g);
		EXPECT_EQ(0, wret);
		if (t_odp) {
			EXPECT_EQ(npages, target ? on1 : on0) {
				TH_LOG("move %d: not all %zu pages are on node %d",
				       round, npages, target);
			}
		} else {
			EXPECT_EQ(npages, on0) {
				TH_LOG("pinned contrast: move %d to node %d: not all %zu pinned pages stayed on node 0",
				       round, target, npages);
			}
		}
		/*
		 * The device writes a whole generation into the new pages,
		 * for the next move and the checks after the moves.
		 */
		wait_gen_after(self, g + 1);
	}
	__atomic_store_n(&self->stop, 1, __ATOMIC_RELEASE);
	pthread_join(self->thr, NULL);
	self->writing = false;
}

/* %zu MiB buffer placed on node 0 and registered odp (or pinned) */
TEST_F(migrate, placed_on_node0)
{
	long on0 = 0, on1 = 0;
	int ret;

	ret = where(self, &on0, &on1);
	t_diag("%zu pages: %ld on node 0, %ld on node 1", self->npages, on0,
	       on1);
	EXPECT_EQ(0, ret);
	EXPECT_EQ(self->npages, on0);
}

/*
 * Four moves, node 1, 0, 1, 0, while WRITEs stream in: after each, all
 * pages are on the target node (pinned contrast: all stay on node 0);
 * then every generation of WRITEs completed and was intact, every byte
 * is the last generation, and an RDMA READ of the whole buffer returns
 * it.  One test: each step's check needs the steps before it.
 */
TEST_F_TIMEOUT(migrate, moves_under_writes, MOVE_SECS)
{
	size_t i;
	int ret;

	moves(_metadata, self);
	t_diag("%u generations of WRITEs, %u corrupt", self->gen_done,
	       self->gen_bad);
	ASSERT_FALSE(self->writer_err);
	EXPECT_LT(ROUNDS, self->gen_done);
	EXPECT_EQ(0, self->gen_bad);
	/* src holds the last generation. */
	EXPECT_BYTES(self->buf, self->src, self->len, "final buffer");
	/* The device reads the (moved) pages back, 4 MiB per READ. */
	memset(self->src, 0, self->len);
	for (i = 0; i < self->len; i += 4 * T_MIB) {
		ret = t_rdma_sync(&self->pair, IBV_WR_RDMA_READ,
				  (uint8_t *)self->src + i, 4 * T_MIB,
				  self->smr->lkey, (uintptr_t)self->buf + i,
				  self->mr->rkey);
		if (ret)
			t_diag("READ back at offset %zu: %s", i,
			       t_wc_status_str(ret));
		EXPECT_WC(IBV_WC_SUCCESS, ret);
		if (ret)
			break;
	}
	EXPECT_BYTES(self->src, self->buf, self->len, "READ back");
}

/* ---- NUMA balancing under a WRITE/READ stream ---------------------------- */

static bool pin_to_node(int node)
{
	struct bitmask *cpus = numa_allocate_cpumask();
	bool ok;

	ok = !numa_node_to_cpus(node, cpus) && !numa_sched_setaffinity(0, cpus);
	numa_free_cpumask(cpus);
	return ok;
}

/*
 * Pages of the mapping at @p on node 0 and node 1, from /proc/self/numa_maps:
 * it reads the page tables as they are, so a PTE that NUMA balancing made
 * PROT_NONE still counts where its page is.  Returns false if the mapping
 * is not listed.
 */
static bool count_nodes(const void *p, long *on0, long *on1)
{
	char line[512], key[32];
	bool found = false;
	FILE *f;

	*on0 = *on1 = 0;
	snprintf(key, sizeof(key), "%lx ", (unsigned long)p);
	f = fopen("/proc/self/numa_maps", "r");
	if (!f)
		return false;
	while (!found && fgets(line, sizeof(line), f)) {
		char *n0, *n1;

		if (strncmp(line, key, strlen(key)))
			continue;
		found = true;
		n0 = strstr(line, " N0=");
		n1 = strstr(line, " N1=");
		*on0 = n0 ? atol(n0 + 4) : 0;
		*on1 = n1 ? atol(n1 + 4) : 0;
		t_diag("numa_maps: %s", strtok(line, "\n"));
	}
	fclose(f);
	return found;
}

/*
 * NUMA balancing under RDMA WRITE+READ: the pages stay on node 0, where
 * the process put them (and every READ returns what was written).  Skips
 * if NUMA balancing cannot be made to scan the buffer here.
 */
TEST_F_TIMEOUT(migrate, numa_balancing_pages_stay, NB_TEST_SECS)
{
	size_t i, n = NB_LEN / T_PAGE, k;
	long on0, on1, faults0, faults, moved0, moved;
	uint8_t *nb, *out = (uint8_t *)self->src;
	uint8_t *in = (uint8_t *)self->src + NB_LEN;
	unsigned int rounds = 0;
	char why[160];
	double t0;
	int s;

	if (access(NB_DIR, F_OK))
		mount("debugfs", "/sys/kernel/debug", "debugfs", 0, NULL);
	for (k = 0; k < NR_NB_KNOBS; k++) {
		self->nb_saved[k] = t_knob_get(nb_knob[k]);
		if (self->nb_saved[k] < 0 ||
		    !t_knob_set(nb_knob[k], nb_fast[k])) {
			snprintf(why, sizeof(why), "cannot set %s", nb_knob[k]);
			SKIP(return, "%s", why);
		}
		self->nb_set = k + 1;
	}

	/*
	 * First touch on node 0, then leave it for good.  MADV_HUGEPAGE (THP
	 * is on anyway) keeps the mapping from merging with its neighbours,
	 * so that it has a line of its own in numa_maps.
	 */
	nb = self->nb = t_mmap(NB_LEN);
	self->nb_pinned = true;
	ASSERT_TRUE(nb && !madvise(nb, NB_LEN, MADV_HUGEPAGE) &&
		    pin_to_node(0)) {
		TH_LOG("cannot place a buffer on node 0");
	}
	memset(nb, 0x5a, NB_LEN);
	ASSERT_TRUE(pin_to_node(1)) {
		TH_LOG("cannot move to node 1");
	}
	count_nodes(nb, &on0, &on1);
	t_diag("NUMA balancing: %ld of %zu pages on node 0 after the first touch (%ld on node 1)",
	       on0, n, on1);
	self->nmr = t_reg_mr(&self->dev, nb, NB_LEN, T_ACCESS_ALL);
	ASSERT_TRUE(self->nmr && on0 == (long)n) {
		TH_LOG("cannot set the case up (MR %p)", (void *)self->nmr);
	}

	faults0 = t_vmstat("numa_hint_faults");
	moved0 = t_vmstat("numa_pages_migrated");
	t0 = t_now();
	while (t_now() - t0 < NB_SECS) {
		for (i = 0; i < NB_LEN; i += NB_CHUNK) {
			memset(out, rounds & 0xff, NB_CHUNK);
			s = t_rdma_sync(&self->pair, IBV_WR_RDMA_WRITE, out,
					NB_CHUNK, self->smr->lkey,
					(uintptr_t)nb + i, self->nmr->rkey);
			if (!s)
				s = t_rdma_sync(&self->pair, IBV_WR_RDMA_READ,
						in, NB_CHUNK, self->smr->lkey,
						(uintptr_t)nb + i,
						self->nmr->rkey);
			if (s)
				t_diag("WRITE or READ at offset %zu failed", i);
			ASSERT_WC(IBV_WC_SUCCESS, s);
			ASSERT_BYTES(in, out, NB_CHUNK, "READ of a chunk");
		}
		rounds++;
	}
	faults = t_vmstat("numa_hint_faults") - faults0;
	moved = t_vmstat("numa_pages_migrated") - moved0;
	if (!count_nodes(nb, &on0, &on1))
		t_diag("the buffer is not in /proc/self/numa_maps");
	t_diag("NUMA balancing: %u passes in %d s, %ld NUMA hint faults, %ld pages migrated; %ld pages on node 0, %ld on node 1",
	       rounds, NB_SECS, faults, moved, on0, on1);
	/* Pinned pages never take hinting faults from the device. */
	if (variant->odp && (faults0 < 0 || faults <= 0))
		SKIP(return, "no NUMA hint faults: the scanner did not run");
	EXPECT_EQ(n, on0);
}

/* ---- compaction under a WRITE/READ stream -------------------------------- */

/* Words of src that are not generation @gen; the first is reported. */
static size_t check_gen(FIXTURE_DATA(migrate) *self, const uint64_t *p,
			unsigned int gen)
{
	size_t i, n = self->len / 8, bad = 0;

	for (i = 0; i < n; i++) {
		if (p[i] == ((uint64_t)gen << 40 | i))
			continue;
		if (!bad++)
			t_diag("generation %u: READ returned 0x%llx at offset %zu",
			       gen, (unsigned long long)p[i], i * 8);
	}
	return bad;
}

/*
 * The streamer thread: WRITE a generation, READ it back into a cleared
 * src, check every word.  What it finds wrong, the test checks.
 */
static void *cstreamer(void *arg)
{
	FIXTURE_DATA(migrate) *self = arg;
	unsigned int gen;

	for (gen = 1000; !__atomic_load_n(&self->cstop, __ATOMIC_ACQUIRE);
	     gen++) {
		fill_gen(self, self->src, gen);
		if (!stream_gen(self, IBV_WR_RDMA_WRITE)) {
			__atomic_store_n(&self->writer_err, 1, __ATOMIC_RELEASE);
			break;
		}
		memset(self->src, 0, self->len);
		if (!stream_gen(self, IBV_WR_RDMA_READ)) {
			__atomic_store_n(&self->writer_err, 1, __ATOMIC_RELEASE);
			break;
		}
		if (check_gen(self, self->src, gen))
			__atomic_add_fetch(&self->cbad, 1, __ATOMIC_RELEASE);
		__atomic_add_fetch(&self->cgen, 1, __ATOMIC_RELEASE);
	}
	return NULL;
}

/* Page frame numbers of buf from /proc/self/pagemap (0: not present or
 * hidden from us); false if pagemap cannot be read.
 */
static bool read_pfns(FIXTURE_DATA(migrate) *self, uint64_t *pfn)
{
	size_t i, npages = self->npages;
	int fd;
	bool ok;

	fd = open("/proc/self/pagemap", O_RDONLY);
	ok = fd >= 0 &&
	     pread(fd, pfn, npages * 8, (uintptr_t)self->buf / T_PAGE * 8) ==
	     (ssize_t)(npages * 8);
	if (fd >= 0)
		close(fd);
	for (i = 0; ok && i < npages; i++)
		pfn[i] = pfn[i] >> 63 ? pfn[i] & ((1ULL << 55) - 1) : 0;
	return ok;
}

/*
 * compaction during an RDMA WRITE+READ stream: every READ returns what
 * was written.  Compaction (/proc/sys/vm/compact_memory) again and again
 * for COMPACT_SECS while a thread streams WRITE + READ generations over
 * the MR.  How many pages changed frame is a diagnostic only: compaction
 * may move nothing.
 */
#define COMPACT_SECS	5
TEST_F_TIMEOUT(migrate, compaction_reads_intact, COMPACT_TEST_SECS)
{
	uint64_t *pfn0, *pfn;
	unsigned int g0;
	long moved = 0, runs = 0, present = 0;
	double t0, tc = 0, limit;
	bool seen;
	size_t i;
	int fd;

	pfn0 = self->pfn0 = calloc(self->npages, 8);
	pfn = self->pfn = calloc(self->npages, 8);
	ASSERT_TRUE(pfn0 && pfn);
	seen = read_pfns(self, pfn0);
	ASSERT_EQ(0, pthread_create(&self->cthr, NULL, cstreamer, self)) {
		TH_LOG("pthread_create");
	}
	self->cstreaming = true;
	while (!__atomic_load_n(&self->cgen, __ATOMIC_ACQUIRE) &&
	       !__atomic_load_n(&self->writer_err, __ATOMIC_ACQUIRE))
		usleep(10000);
	t0 = t_now();
	while (t_now() - t0 < COMPACT_SECS &&
	       !__atomic_load_n(&self->writer_err, __ATOMIC_ACQUIRE)) {
		double t1 = t_now();

		fd = open("/proc/sys/vm/compact_memory", O_WRONLY);
		if (fd < 0 || write(fd, "1", 1) != 1) {
			t_diag("/proc/sys/vm/compact_memory: %s",
			       strerror(errno));
			if (fd >= 0)
				close(fd);
			break;
		}
		close(fd);
		tc += t_now() - t1;
		runs++;
		usleep(50000);
	}
	/*
	 * Let the generation that overlaps the end of compaction finish and
	 * be checked.  A debug kernel under TCG takes tens of seconds per
	 * generation, hence the generous limit.
	 */
	g0 = __atomic_load_n(&self->cgen, __ATOMIC_ACQUIRE);
	limit = 120 + 2.0 * t_timeout_ms / 1000;
	t0 = t_now();
	while (__atomic_load_n(&self->cgen, __ATOMIC_ACQUIRE) < g0 + 1 &&
	       !__atomic_load_n(&self->writer_err, __ATOMIC_ACQUIRE) &&
	       t_now() - t0 < limit)
		usleep(10000);
	if (__atomic_load_n(&self->cgen, __ATOMIC_ACQUIRE) < g0 + 1)
		t_diag("compaction: the generation in flight when it ended did not finish in %.0f s",
		       limit);
	__atomic_store_n(&self->cstop, 1, __ATOMIC_RELEASE);
	pthread_join(self->cthr, NULL);
	self->cstreaming = false;

	if (seen && read_pfns(self, pfn)) {
		for (i = 0; i < self->npages; i++) {
			if (!pfn0[i] || !pfn[i])
				continue;
			present++;
			if (pfn0[i] != pfn[i])
				moved++;
		}
	}
	if (present)
		t_diag("compaction: %ld of %ld pages changed physical frame (%ld runs, %.1f s compacting)",
		       moved, present, runs, tc);
	else
		t_diag("compaction: page frames not observable (%ld runs, %.1f s compacting)",
		       runs, tc);
	t_diag("compaction: %u WRITE+READ generations, %u with a wrong READ",
	       self->cgen, self->cbad);
	EXPECT_LT(0, runs);
	EXPECT_FALSE(self->writer_err);
	/* one generation before compaction, one across its end at least */
	EXPECT_LE(2, self->cgen);
	EXPECT_EQ(0, self->cbad);
}

ODP_HARNESS_MAIN("ODP MR pages migrate between NUMA nodes under RDMA WRITE")
