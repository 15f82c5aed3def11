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

#include "odptest.h"

#define ROUNDS		4
#define CHUNK		(256 * T_KIB)
#define WINDOW		16

static struct t_dev dev;
static size_t len;
static size_t npages;
static uint64_t *buf, *src;
static struct ibv_mr *mr, *smr;
static struct t_rc_pair pair;

static int stop;		/* main -> writer: finish one more generation */
static unsigned int gen_done;	/* writer -> main: last complete generation */
static unsigned int gen_bad;	/* generations found corrupt */
static int writer_err;		/* posting or completion failure */

static void fill_gen(uint64_t *p, unsigned int gen)
{
	size_t i, n = len / 8;

	for (i = 0; i < n; i++)
		p[i] = (uint64_t)gen << 40 | i;
}

/* Stream one generation through the buffer (WRITE from src, or READ
 * into src), WINDOW operations in flight.
 */
static bool stream_gen(enum ibv_wr_opcode op)
{
	size_t posted = 0, done = 0, nchunks = len / CHUNK;
	struct ibv_wc wc[WINDOW];
	int n, i;

	while (done < nchunks) {
		while (posted < nchunks && posted - done < WINDOW) {
			size_t off = posted * CHUNK;

			if (t_post_rdma(pair.qp[0], op, posted,
					(uint8_t *)src + off, CHUNK, smr->lkey,
					(uintptr_t)buf + off, mr->rkey))
				return false;
			posted++;
		}
		n = t_poll(pair.scq[0], 1, wc);
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

static void *writer(void *arg)
{
	unsigned int gen;
	bool last = false;
	char what[64];

	(void)arg;
	for (gen = 1; !last; gen++) {
		last = __atomic_load_n(&stop, __ATOMIC_ACQUIRE);
		fill_gen(src, gen);
		if (!stream_gen(IBV_WR_RDMA_WRITE)) {
			__atomic_store_n(&writer_err, 1, __ATOMIC_RELEASE);
			break;
		}
		snprintf(what, sizeof(what), "generation %u", gen);
		if (!t_check(buf, src, len, what))
			__atomic_add_fetch(&gen_bad, 1, __ATOMIC_RELEASE);
		__atomic_store_n(&gen_done, gen, __ATOMIC_RELEASE);
	}
	return NULL;
}

/* Count pages per node (according to the kernel, not to a move's status). */
static int where(void **pages, int *status, long *on0, long *on1)
{
	int ost[4] = { 0 };
	long other = 0, ocnt[4] = { 0 };
	size_t i, first = 0;
	int k;

	if (numa_move_pages(0, npages, pages, NULL, status, 0)) {
		t_diag("move_pages(query): %s", strerror(errno));
		return -1;
	}
	*on0 = *on1 = 0;
	for (i = 0; i < npages; i++) {
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

static void wait_gen_after(unsigned int g)
{
	double deadline = t_now() + 120;

	while (__atomic_load_n(&gen_done, __ATOMIC_ACQUIRE) <= g &&
	       !__atomic_load_n(&writer_err, __ATOMIC_ACQUIRE) &&
	       t_now() < deadline)
		usleep(10000);
}

/* ---- NUMA balancing under a WRITE/READ stream ---------------------------- */

#define NB_LEN		(16 * T_MIB)
#define NB_CHUNK	T_MIB
#define NB_SECS		6
#define NB_DIR		"/sys/kernel/debug/sched/numa_balancing/"
#define NB_WHAT		"NUMA balancing under RDMA WRITE+READ: the pages stay on node 0, where the process put them"

/* NUMA balancing knobs, set to scan fast while the case runs. */
static const char *const nb_knob[] = {
	"/proc/sys/kernel/numa_balancing",
	NB_DIR "scan_delay_ms",
	NB_DIR "scan_period_min_ms",
	NB_DIR "scan_period_max_ms",
	NB_DIR "scan_size_mb",
};
static const long nb_fast[] = { 1, 0, 100, 200, 256 };
static long nb_saved[T_ARRAY_SIZE(nb_knob)];

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

static void nb_restore(size_t n)
{
	while (n--)
		t_knob_set(nb_knob[n], nb_saved[n]);
}

/*
 * Returns 1 if the pages stayed on node 0 and every READ returned what was
 * written, 0 if not, -1 (after a SKIP) if NUMA balancing cannot be made
 * to scan the buffer here.
 */
static int numa_balancing(void)
{
	size_t i, n = NB_LEN / T_PAGE, k;
	long on0, on1, faults0, faults, moved0, moved;
	uint8_t *nb, *out = (uint8_t *)src, *in = (uint8_t *)src + NB_LEN;
	struct ibv_mr *nmr = NULL;
	unsigned int rounds = 0;
	char why[160];
	int ok = 0;
	double t0;

	if (access(NB_DIR, F_OK))
		mount("debugfs", "/sys/kernel/debug", "debugfs", 0, NULL);
	for (k = 0; k < T_ARRAY_SIZE(nb_knob); k++) {
		nb_saved[k] = t_knob_get(nb_knob[k]);
		if (nb_saved[k] < 0 || !t_knob_set(nb_knob[k], nb_fast[k])) {
			snprintf(why, sizeof(why), "cannot set %s", nb_knob[k]);
			nb_restore(k);
			t_skip(why, NB_WHAT);
			ok = -1;
			goto out_free;
		}
	}

	/*
	 * First touch on node 0, then leave it for good.  MADV_HUGEPAGE (THP
	 * is on anyway) keeps the mapping from merging with its neighbours,
	 * so that it has a line of its own in numa_maps.
	 */
	nb = t_mmap(NB_LEN);
	if (!nb || madvise(nb, NB_LEN, MADV_HUGEPAGE) || !pin_to_node(0))
		t_bail("cannot place a buffer on node 0");
	memset(nb, 0x5a, NB_LEN);
	if (!pin_to_node(1))
		t_bail("cannot move to node 1");
	count_nodes(nb, &on0, &on1);
	t_diag("NUMA balancing: %ld of %zu pages on node 0 after the first touch (%ld on node 1)",
	       on0, n, on1);
	nmr = t_reg_mr(&dev, nb, NB_LEN, T_ACCESS_ALL);
	if (!nmr || on0 != (long)n) {
		t_diag("cannot set the case up (MR %p)", (void *)nmr);
		goto out;
	}

	faults0 = t_vmstat("numa_hint_faults");
	moved0 = t_vmstat("numa_pages_migrated");
	t0 = t_now();
	while (t_now() - t0 < NB_SECS) {
		for (i = 0; i < NB_LEN; i += NB_CHUNK) {
			memset(out, rounds & 0xff, NB_CHUNK);
			if (t_rdma_sync(&pair, IBV_WR_RDMA_WRITE, out, NB_CHUNK,
					smr->lkey, (uintptr_t)nb + i, nmr->rkey) ||
			    t_rdma_sync(&pair, IBV_WR_RDMA_READ, in, NB_CHUNK,
					smr->lkey, (uintptr_t)nb + i, nmr->rkey)) {
				t_diag("WRITE or READ at offset %zu failed", i);
				goto out;
			}
			if (!t_check(in, out, NB_CHUNK, "READ of a chunk"))
				goto out;
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
	if (t_odp && (faults0 < 0 || faults <= 0)) {
		t_skip("no NUMA hint faults: the scanner did not run", NB_WHAT);
		ok = -1;
		goto out;
	}
	ok = on0 == (long)n;
out:
	if (nmr)
		t_dereg_mr(nmr);
	t_munmap(nb, NB_LEN);
	nb_restore(T_ARRAY_SIZE(nb_knob));
	numa_run_on_node(-1);
out_free:
	return ok;
}

/* ---- compaction under a WRITE/READ stream -------------------------------- */

static int cstop;		/* main -> streamer: stop */
static unsigned int cgen;	/* streamer -> main: generations done */
static unsigned int cbad;	/* generations a READ returned wrongly */

/* Words of src that are not generation @gen; the first is reported. */
static size_t check_gen(const uint64_t *p, unsigned int gen)
{
	size_t i, n = len / 8, bad = 0;

	for (i = 0; i < n; i++) {
		if (p[i] == ((uint64_t)gen << 40 | i))
			continue;
		if (!bad++)
			t_diag("generation %u: READ returned 0x%llx at offset %zu",
			       gen, (unsigned long long)p[i], i * 8);
	}
	return bad;
}

/* WRITE a generation, READ it back into a cleared src, check every word. */
static void *cstreamer(void *arg)
{
	unsigned int gen;

	(void)arg;
	for (gen = 1000; !__atomic_load_n(&cstop, __ATOMIC_ACQUIRE); gen++) {
		fill_gen(src, gen);
		if (!stream_gen(IBV_WR_RDMA_WRITE)) {
			__atomic_store_n(&writer_err, 1, __ATOMIC_RELEASE);
			break;
		}
		memset(src, 0, len);
		if (!stream_gen(IBV_WR_RDMA_READ)) {
			__atomic_store_n(&writer_err, 1, __ATOMIC_RELEASE);
			break;
		}
		if (check_gen(src, gen))
			__atomic_add_fetch(&cbad, 1, __ATOMIC_RELEASE);
		__atomic_add_fetch(&cgen, 1, __ATOMIC_RELEASE);
	}
	return NULL;
}

/* Page frame numbers of buf from /proc/self/pagemap (0: not present or
 * hidden from us); false if pagemap cannot be read.
 */
static bool read_pfns(uint64_t *pfn)
{
	size_t i;
	int fd;
	bool ok;

	fd = open("/proc/self/pagemap", O_RDONLY);
	ok = fd >= 0 && pread(fd, pfn, npages * 8, (uintptr_t)buf / T_PAGE * 8) ==
			(ssize_t)(npages * 8);
	if (fd >= 0)
		close(fd);
	for (i = 0; ok && i < npages; i++)
		pfn[i] = pfn[i] >> 63 ? pfn[i] & ((1ULL << 55) - 1) : 0;
	return ok;
}

/*
 * Compaction (/proc/sys/vm/compact_memory) again and again for
 * COMPACT_SECS while a thread streams WRITE + READ generations over the
 * MR.  Returns true if every READ returned what was written.  How many
 * pages changed frame is a diagnostic only: compaction may move nothing.
 */
#define COMPACT_SECS	5
static bool compaction(void)
{
	uint64_t *pfn0 = calloc(npages, 8), *pfn = calloc(npages, 8);
	unsigned int g0;
	long moved = 0, runs = 0, present = 0;
	bool seen, ok;
	pthread_t thr;
	double t0, tc = 0, limit;
	size_t i;
	int fd;

	if (!pfn0 || !pfn)
		return false;
	seen = read_pfns(pfn0);
	if (pthread_create(&thr, NULL, cstreamer, NULL)) {
		t_diag("pthread_create");
		return false;
	}
	while (!__atomic_load_n(&cgen, __ATOMIC_ACQUIRE) &&
	       !__atomic_load_n(&writer_err, __ATOMIC_ACQUIRE))
		usleep(10000);
	g0 = __atomic_load_n(&cgen, __ATOMIC_ACQUIRE);
	t0 = t_now();
	while (t_now() - t0 < COMPACT_SECS &&
	       !__atomic_load_n(&writer_err, __ATOMIC_ACQUIRE)) {
		double t1 = t_now();

		fd = open("/proc/sys/vm/compact_memory", O_WRONLY);
		if (fd < 0 || write(fd, "1", 1) != 1) {
			t_diag("/proc/sys/vm/compact_memory: %s", strerror(errno));
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
	g0 = __atomic_load_n(&cgen, __ATOMIC_ACQUIRE);
	limit = 120 + 2.0 * t_timeout_ms / 1000;
	t0 = t_now();
	while (__atomic_load_n(&cgen, __ATOMIC_ACQUIRE) < g0 + 1 &&
	       !__atomic_load_n(&writer_err, __ATOMIC_ACQUIRE) &&
	       t_now() - t0 < limit)
		usleep(10000);
	if (__atomic_load_n(&cgen, __ATOMIC_ACQUIRE) < g0 + 1)
		t_diag("compaction: the generation in flight when it ended did not finish in %.0f s",
		       limit);
	__atomic_store_n(&cstop, 1, __ATOMIC_RELEASE);
	pthread_join(thr, NULL);

	if (seen && read_pfns(pfn)) {
		for (i = 0; i < npages; i++) {
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
	/* one generation before compaction, one across its end at least */
	ok = runs > 0 && !writer_err && cgen >= 2 && !cbad;
	t_diag("compaction: %u WRITE+READ generations, %u with a wrong READ",
	       cgen, cbad);
	free(pfn0);
	free(pfn);
	return ok;
}

int main(int argc, char **argv)
{
	const char *env = getenv("T_MIGRATE_MB");
	unsigned long mask = 1;
	int *nodes, *status, round, ret;
	void **pages;
	long on0, on1;
	pthread_t thr;
	double t0;
	bool ok;
	size_t i;

	t_init(argc, argv, "ODP MR pages migrate between NUMA nodes under RDMA WRITE");
	t_plan(6 + ROUNDS);

	/* Whole multiples of 4 MiB. */
	len = (env && atoi(env) >= 4 ? (size_t)atoi(env) / 4 * 4 : 64) * T_MIB;
	npages = len / T_PAGE;
	if (numa_available() < 0 || numa_max_node() < 1)
		t_bail("need NUMA nodes 0 and 1 (numa_max_node %d)",
		       numa_available() < 0 ? -1 : numa_max_node());
	if (t_dev_open(&dev))
		t_bail("cannot open the RDMA device");

	buf = t_mmap(len);
	src = t_mmap(len);
	pages = calloc(npages, sizeof(*pages));
	nodes = calloc(npages, sizeof(*nodes));
	status = calloc(npages, sizeof(*status));
	if (!buf || !src || !pages || !nodes || !status)
		t_bail("out of memory");
	for (i = 0; i < npages; i++)
		pages[i] = (uint8_t *)buf + i * T_PAGE;

	/*
	 * Place the buffer on node 0.  The policy stays: a VMA policy without
	 * MPOL_F_MOF also keeps automatic NUMA balancing away from the
	 * buffer, which would otherwise move pages on its own (and, for
	 * pinned pages, leave transient migration entries that the page
	 * query reports as -EFAULT).  move_pages() ignores the policy.
	 */
	if (mbind(buf, len, MPOL_PREFERRED, &mask, sizeof(mask) * 8, 0))
		t_bail("mbind(node 0): %s", strerror(errno));
	memset(buf, 0, len);

	mr = t_reg_mr(&dev, buf, len, T_ACCESS_ALL);
	smr = t_reg_mr(&dev, src, len, T_ACCESS_ALL);
	if (!mr || !smr)
		t_bail("cannot register %s MRs", t_mode());
	if (t_rc_pair_create(&dev, &pair, NULL))
		t_bail("cannot create a QP pair");

	ok = !where(pages, status, &on0, &on1);
	t_diag("%zu pages: %ld on node 0, %ld on node 1", npages, on0, on1);
	t_result(ok && on0 == (long)npages,
		 "%zu MiB buffer placed on node 0 and registered %s",
		 len / T_MIB, t_mode());

	if (pthread_create(&thr, NULL, writer, NULL))
		t_bail("pthread_create");
	/* Let the first generation land, so the device has mapped it all. */
	wait_gen_after(0);

	for (round = 1; round <= ROUNDS; round++) {
		int target = round & 1;
		unsigned int g = __atomic_load_n(&gen_done, __ATOMIC_ACQUIRE);

		for (i = 0; i < npages; i++)
			nodes[i] = target;
		t0 = t_now();
		ret = numa_move_pages(0, npages, pages, nodes, status,
				      MPOL_MF_MOVE);
		t_diag("move %d to node %d: move_pages returned %d%s%s in %.3f s",
		       round, target, ret, ret < 0 ? ": " : "",
		       ret < 0 ? strerror(errno) : "", t_now() - t0);
		ok = !where(pages, status, &on0, &on1);
		t_diag("move %d: %ld pages on node 0, %ld on node 1 (generation %u done)",
		       round, on0, on1, g);
		if (t_odp)
			t_result(ok && (target ? on1 : on0) == (long)npages,
				 "move %d: all %zu pages are on node %d while WRITEs stream in",
				 round, npages, target);
		else
			t_result(ok && on0 == (long)npages,
				 "pinned contrast: move %d to node %d: all %zu pinned pages stay on node 0",
				 round, target, npages);
		/* The device writes a whole generation into the new pages. */
		wait_gen_after(g + 1);
	}
	__atomic_store_n(&stop, 1, __ATOMIC_RELEASE);
	pthread_join(thr, NULL);

	t_result(!writer_err && gen_done > ROUNDS && !gen_bad,
		 "%u generations of WRITEs all completed and were intact (%u corrupt)",
		 gen_done, gen_bad);
	/* src holds the last generation. */
	t_result(!writer_err && t_check(buf, src, len, "final buffer"),
		 "every byte is the last generation after the moves");

	/* The device reads the (moved) pages back, 4 MiB per READ. */
	memset(src, 0, len);
	ok = !writer_err;
	for (i = 0; ok && i < len; i += 4 * T_MIB) {
		ret = t_rdma_sync(&pair, IBV_WR_RDMA_READ, (uint8_t *)src + i,
				  4 * T_MIB, smr->lkey, (uintptr_t)buf + i,
				  mr->rkey);
		if (ret)
			t_diag("READ back at offset %zu: %s", i,
			       t_wc_status_str(ret));
		ok = ret == IBV_WC_SUCCESS;
	}
	ok = t_check(src, buf, len, "READ back") && ok;
	t_result(ok, "RDMA READ of the whole buffer returns the last generation");

	ret = writer_err ? 0 : numa_balancing();
	if (ret >= 0)
		t_result(ret == 1, NB_WHAT);

	ok = !writer_err && compaction();
	t_result(ok, "compaction during an RDMA WRITE+READ stream: every READ returns what was written");

	t_rc_pair_destroy(&pair);
	t_dereg_mr(mr);
	t_dereg_mr(smr);
	t_dev_close(&dev);
	return t_finish();
}
