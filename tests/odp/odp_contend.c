// SPDX-License-Identifier: GPL-2.0 OR Linux-OpenIB
/*
 * odp_contend: several faulters of the same pages of one ODP MR at once.
 *
 * Four RC QP pairs stream RDMA WRITEs into one cold ODP MR, interleaved
 * 60 KiB apart so that every 2 MiB fault window of one QP overlaps those
 * of the others (each QP's write stream also reads ahead), while an
 * asynchronous prefetch walks the whole MR and a CPU thread keeps
 * rewriting the 4 KiB tail of every 64 KiB slot that no QP writes.  Then
 * every byte is checked: each QP's data where it wrote, the CPU's last
 * pattern in the tails; and the QPs read everything back with RDMA READs,
 * checked again.  The faulters meet in the notifier core, which lets a
 * fault wait for another one in flight that faults the same pages for it,
 * and makes speculative work (read-ahead, prefetch) give way; the mean
 * fault latency is printed from the device's counters.
 */
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "odptest.h"
#include "rxeodp.h"

#define NQP	4
#define LEN	(32 * T_MIB)
#define SLOT	(64 * T_KIB)		/* one QP's slot of a stripe */
#define DATA	(SLOT - 4 * T_KIB)	/* what the QP writes of its slot */
#define STRIPE	(NQP * SLOT)
#define DEPTH	16			/* WRITEs in flight per QP */

static struct t_dev dev;
static struct t_rc_pair pair[NQP];
static uint8_t *target, *src[NQP], *back[NQP];
static struct ibv_mr *target_mr, *src_mr[NQP], *back_mr[NQP];
static atomic_bool stop;
static uint8_t cpu_gen;

/* The CPU writer: the tail of every slot, generation after generation. */
static void *cpu_writer(void *arg)
{
	size_t off;

	(void)arg;
	while (!atomic_load(&stop)) {
		cpu_gen++;
		for (off = 0; off < LEN; off += SLOT)
			memset(target + off + DATA, cpu_gen, SLOT - DATA);
		usleep(1000);	/* leave the guest's CPUs to the faults too */
	}
	return NULL;
}

/* Stream QP @q's slots of every stripe, DEPTH WRITEs in flight. */
static bool stream(int q, enum ibv_wr_opcode op)
{
	uint8_t *local = op == IBV_WR_RDMA_WRITE ? src[q] : back[q];
	uint32_t lkey = op == IBV_WR_RDMA_WRITE ? src_mr[q]->lkey
						: back_mr[q]->lkey;
	size_t n = LEN / STRIPE, posted = 0, done = 0;
	struct ibv_wc wc[DEPTH];
	bool ok = true;

	while (done < n) {
		while (posted < n && posted - done < DEPTH) {
			size_t off = posted * STRIPE + q * SLOT;

			if (t_post_rdma(pair[q].qp[0], op, posted,
					local + posted * DATA, DATA, lkey,
					(uintptr_t)target + off,
					target_mr->rkey))
				return false;
			posted++;
		}
		int got = t_poll(pair[q].scq[0], 1, wc);

		if (got != 1)
			return false;
		if (wc[0].status != IBV_WC_SUCCESS) {
			t_diag("QP %d: %s of slot %lu: %s", q,
			       op == IBV_WR_RDMA_WRITE ? "WRITE" : "READ",
			       (unsigned long)wc[0].wr_id,
			       t_wc_status_str(wc[0].status));
			ok = false;
		}
		done++;
	}
	return ok;
}

struct job {
	int q;
	enum ibv_wr_opcode op;
	bool ok;
};

static void *stream_thread(void *arg)
{
	struct job *j = arg;

	j->ok = stream(j->q, j->op);
	return NULL;
}

static void *prefetcher(void *arg)
{
	size_t off;

	(void)arg;
	for (off = 0; off < LEN && !atomic_load(&stop); off += 2 * T_MIB) {
		struct ibv_sge sge = {
			.addr = (uintptr_t)target + off,
			.length = 2 * T_MIB,
			.lkey = target_mr->lkey,
		};
		int ret = rxeodp_advise_mr(dev.pd,
					   IBV_ADVISE_MR_ADVICE_PREFETCH_WRITE,
					   0, &sge, 1);

		if (ret && ret != EBUSY)
			t_diag("async prefetch at %zu: %s", off, strerror(ret));
	}
	return NULL;
}

/* Run all QPs' streams of @op at once; true if all of them succeeded. */
static bool all_streams(enum ibv_wr_opcode op, bool with_cpu)
{
	pthread_t th[NQP], cpu, pf;
	struct job j[NQP];
	bool ok = true;
	int q;

	atomic_store(&stop, false);
	if (with_cpu && pthread_create(&cpu, NULL, cpu_writer, NULL))
		t_bail("pthread_create: %s", strerror(errno));
	/* a pinned MR cannot be prefetched */
	if (with_cpu && t_odp && pthread_create(&pf, NULL, prefetcher, NULL))
		t_bail("pthread_create: %s", strerror(errno));
	for (q = 0; q < NQP; q++) {
		j[q] = (struct job){ .q = q, .op = op };
		if (pthread_create(&th[q], NULL, stream_thread, &j[q]))
			t_bail("pthread_create: %s", strerror(errno));
	}
	for (q = 0; q < NQP; q++) {
		pthread_join(th[q], NULL);
		ok &= j[q].ok;
	}
	atomic_store(&stop, true);
	if (with_cpu)
		pthread_join(cpu, NULL);
	if (with_cpu && t_odp)
		pthread_join(pf, NULL);
	return ok;
}

int main(int argc, char **argv)
{
	struct t_waits w0, w1;
	bool ok, hist;
	size_t i;
	int q;

	t_init(argc, argv, "faulters of the same pages of one ODP MR at once");
	t_plan(2 + 2 * NQP + 1);
	if (t_dev_open(&dev))
		t_bail("cannot open %s", dev.name);
	target = t_mmap(LEN);
	target_mr = target ? t_reg_mr(&dev, target, LEN, T_ACCESS_ALL) : NULL;
	if (!target_mr)
		t_bail("cannot register the target");
	for (q = 0; q < NQP; q++) {
		size_t len = LEN / STRIPE * DATA;

		src[q] = t_mmap(len);
		back[q] = t_mmap(len);
		if (!src[q] || !back[q] || t_rc_pair_create(&dev, &pair[q], NULL))
			t_bail("cannot set up QP %d", q);
		t_fill(src[q], len, 1000 + q);
		src_mr[q] = t_reg_mr_mode(&dev, src[q], len, T_ACCESS_ALL, false);
		back_mr[q] = t_reg_mr_mode(&dev, back[q], len, T_ACCESS_ALL,
					   false);
		if (!src_mr[q] || !back_mr[q])
			t_bail("cannot register QP %d's buffers", q);
	}

	hist = !t_waits_read(&dev, &w0);
	ok = all_streams(IBV_WR_RDMA_WRITE, true);
	hist = hist && !t_waits_read(&dev, &w1);
	t_result(ok, "%d QPs stream WRITEs into one cold %d MiB ODP MR beside async prefetch and a CPU writer",
		 NQP, (int)(LEN / T_MIB));
	if (hist)
		t_waits_diag("the WRITE streams", &w0, &w1);

	for (q = 0; q < NQP; q++) {
		bool same = true;

		for (i = 0; i < LEN / STRIPE && same; i++)
			same = t_check(target + i * STRIPE + q * SLOT,
				       src[q] + i * DATA, DATA, "written data");
		t_result(same, "QP %d: every byte it wrote is in the MR", q);
	}
	ok = true;
	for (i = 0; i < LEN && ok; i += SLOT)
		ok = t_check_byte(target + i + DATA, cpu_gen, SLOT - DATA,
				  "the CPU's tail");
	t_result(ok, "the CPU's last writes are in every tail (generation %u)",
		 cpu_gen);

	t_result(all_streams(IBV_WR_RDMA_READ, false),
		 "%d QPs read the MR back with RDMA READs at once", NQP);
	for (q = 0; q < NQP; q++)
		t_result(t_check(back[q], src[q], LEN / STRIPE * DATA,
				 "read back"),
			 "QP %d: every byte read back", q);
	return t_finish();
}
