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
 *
 * Each test sets all of this up afresh and runs the streams its check
 * needs: the WRITE streams for the checks of what they wrote, the WRITE
 * and then the READ streams for the checks of what was read back.  The
 * first two tests (with and without the prefetch) print how long their
 * WRITE streams took and waited for faults (the lines bench/guest.sh
 * reads).
 *
 * Pinned MRs (--pinned): the same streams into a pinned MR, without the
 * prefetch (a pinned MR cannot be prefetched); every check must pass.
 */
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "odpharness.h"
#include "rxeodp.h"

#define NQP	4
#define LEN	(32 * T_MIB)
#define SLOT	(64 * T_KIB)		/* one QP's slot of a stripe */
#define DATA	(SLOT - 4 * T_KIB)	/* what the QP writes of its slot */
#define STRIPE	(NQP * SLOT)
#define DEPTH	16			/* WRITEs in flight per QP */
#define QP_LEN	(LEN / STRIPE * DATA)	/* a QP's source and sink buffers */

/*
 * The device, the target MR, each QP's pair and its pinned source and
 * sink buffers, and what the CPU writer and the prefetcher share with
 * the test.
 */
FIXTURE(contend) {
	struct t_dev dev;
	struct t_rc_pair pair[NQP];
	uint8_t *target, *src[NQP], *back[NQP];
	struct ibv_mr *target_mr, *src_mr[NQP], *back_mr[NQP];
	atomic_bool stop;
	uint8_t cpu_gen;
};

ODP_VARIANTS(contend);

FIXTURE_SETUP(contend)
{
	int q;

	t_variant();
	ASSERT_EQ(0, t_dev_open(&self->dev));
	self->target = t_mmap(LEN);
	ASSERT_NE(NULL, self->target);
	self->target_mr = t_reg_mr(&self->dev, self->target, LEN,
				   T_ACCESS_ALL);
	ASSERT_NE(NULL, self->target_mr) {
		TH_LOG("cannot register the target");
	}
	for (q = 0; q < NQP; q++) {
		self->src[q] = t_mmap(QP_LEN);
		self->back[q] = t_mmap(QP_LEN);
		ASSERT_TRUE(self->src[q] && self->back[q]);
		ASSERT_EQ(0, t_rc_pair_create(&self->dev, &self->pair[q],
					      NULL)) {
			TH_LOG("cannot set up QP %d", q);
		}
		t_fill(self->src[q], QP_LEN, 1000 + q);
		self->src_mr[q] = t_reg_mr_mode(&self->dev, self->src[q],
						QP_LEN, T_ACCESS_ALL, false);
		self->back_mr[q] = t_reg_mr_mode(&self->dev, self->back[q],
						 QP_LEN, T_ACCESS_ALL, false);
		ASSERT_TRUE(self->src_mr[q] && self->back_mr[q]) {
			TH_LOG("cannot register QP %d's buffers", q);
		}
	}
}

FIXTURE_TEARDOWN(contend)
{
	int q;

	for (q = 0; q < NQP; q++) {
		t_rc_pair_destroy(&self->pair[q]);
		t_dereg_mr(self->src_mr[q]);
		t_dereg_mr(self->back_mr[q]);
		t_munmap(self->src[q], QP_LEN);
		t_munmap(self->back[q], QP_LEN);
	}
	t_dereg_mr(self->target_mr);
	t_munmap(self->target, LEN);
	t_dev_close(&self->dev);
}

/* The CPU writer: the tail of every slot, generation after generation. */
static void *cpu_writer(void *arg)
{
	FIXTURE_DATA(contend) *self = arg;
	size_t off;

	while (!atomic_load(&self->stop)) {
		self->cpu_gen++;
		for (off = 0; off < LEN; off += SLOT)
			memset(self->target + off + DATA, self->cpu_gen,
			       SLOT - DATA);
		usleep(1000);	/* leave the guest's CPUs to the faults too */
	}
	return NULL;
}

/* Stream QP @q's slots of every stripe, DEPTH WRITEs in flight. */
static bool stream(FIXTURE_DATA(contend) *self, int q, enum ibv_wr_opcode op)
{
	uint8_t *local = op == IBV_WR_RDMA_WRITE ? self->src[q]
						 : self->back[q];
	uint32_t lkey = op == IBV_WR_RDMA_WRITE ? self->src_mr[q]->lkey
						: self->back_mr[q]->lkey;
	size_t n = LEN / STRIPE, posted = 0, done = 0;
	struct t_rc_pair *p = &self->pair[q];
	struct ibv_wc wc[DEPTH];
	bool ok = true;

	while (done < n) {
		while (posted < n && posted - done < DEPTH) {
			size_t off = posted * STRIPE + q * SLOT;

			if (t_post_rdma(p->qp[0], op, posted,
					local + posted * DATA, DATA, lkey,
					(uintptr_t)self->target + off,
					self->target_mr->rkey))
				return false;
			posted++;
		}
		int got = t_poll(p->scq[0], 1, wc);

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
	FIXTURE_DATA(contend) *self;
	int q;
	enum ibv_wr_opcode op;
	bool ok;
};

static void *stream_thread(void *arg)
{
	struct job *j = arg;

	j->ok = stream(j->self, j->q, j->op);
	return NULL;
}

static void *prefetcher(void *arg)
{
	FIXTURE_DATA(contend) *self = arg;
	size_t off;

	for (off = 0; off < LEN && !atomic_load(&self->stop);
	     off += 2 * T_MIB) {
		struct ibv_sge sge = {
			.addr = (uintptr_t)self->target + off,
			.length = 2 * T_MIB,
			.lkey = self->target_mr->lkey,
		};
		int ret = rxeodp_advise_mr(self->dev.pd,
					   IBV_ADVISE_MR_ADVICE_PREFETCH_WRITE,
					   0, &sge, 1);

		if (ret && ret != EBUSY)
			t_diag("async prefetch at %zu: %s", off, strerror(ret));
	}
	return NULL;
}

/*
 * Run all QPs' streams of @op at once, with the CPU writer and (ODP) the
 * prefetcher beside them if @with_cpu (the prefetcher only if @prefetch
 * too); true if all of them succeeded.  A thread that cannot be started
 * fails the test at once (t_bail()).
 */
static bool some_streams(FIXTURE_DATA(contend) *self, enum ibv_wr_opcode op,
			 bool with_cpu, bool prefetch)
{
	pthread_t th[NQP], cpu, pf;
	struct job j[NQP];
	bool ok = true;
	int q;

	atomic_store(&self->stop, false);
	if (with_cpu && pthread_create(&cpu, NULL, cpu_writer, self))
		t_bail("pthread_create: %s", strerror(errno));
	/* a pinned MR cannot be prefetched */
	prefetch = prefetch && with_cpu && t_odp;
	if (prefetch && pthread_create(&pf, NULL, prefetcher, self))
		t_bail("pthread_create: %s", strerror(errno));
	for (q = 0; q < NQP; q++) {
		j[q] = (struct job){ .self = self, .q = q, .op = op };
		if (pthread_create(&th[q], NULL, stream_thread, &j[q]))
			t_bail("pthread_create: %s", strerror(errno));
	}
	for (q = 0; q < NQP; q++) {
		pthread_join(th[q], NULL);
		ok &= j[q].ok;
	}
	atomic_store(&self->stop, true);
	if (with_cpu)
		pthread_join(cpu, NULL);
	if (prefetch)
		pthread_join(pf, NULL);
	return ok;
}

static bool all_streams(FIXTURE_DATA(contend) *self, enum ibv_wr_opcode op,
			bool with_cpu)
{
	return some_streams(self, op, with_cpu, true);
}

/* A test takes 3-9 s on Debian's kernel under TCG (a shared host). */
#define CONTEND_TIMEOUT	60

/* The WRITE streams, beside the prefetch and the CPU writer. */
#define WRITE_STREAMS()							\
	ASSERT_TRUE(all_streams(self, IBV_WR_RDMA_WRITE, true)) {	\
		TH_LOG("the WRITE streams failed");			\
	}

/*
 * Run the WRITE streams and print how long they took and how long their
 * faults made the QPs wait (what bench/guest.sh reads).
 */
static void timed_write_streams(struct __test_metadata *_metadata,
				FIXTURE_DATA(contend) *self, const char *what,
				bool prefetch)
{
	long faulted = t_hw_counter(&self->dev, "odp_page_faults");
	long prefetched = t_hw_counter(&self->dev, "odp_page_prefetch");
	struct t_waits w0, w1;
	double begun;
	bool hist;

	hist = !t_waits_read(&self->dev, &w0);
	begun = t_now();
	EXPECT_TRUE(some_streams(self, IBV_WR_RDMA_WRITE, true, prefetch));
	t_diag("%s took %.0f ms: %ld pages faulted, %ld prefetched", what,
	       (t_now() - begun) * 1000,
	       t_hw_counter(&self->dev, "odp_page_faults") - faulted,
	       t_hw_counter(&self->dev, "odp_page_prefetch") - prefetched);
	hist = hist && !t_waits_read(&self->dev, &w1);
	if (hist)
		t_waits_diag(what, &w0, &w1);
}

/* 4 QPs stream WRITEs into one cold 32 MiB ODP MR beside async prefetch
 * and a CPU writer
 */
TEST_F_TIMEOUT(contend, write_streams, CONTEND_TIMEOUT)
{
	timed_write_streams(_metadata, self, "the WRITE streams", true);
}

/*
 * The same without the prefetch: the QPs' own faults and read-aheads meet
 * on the same leaves
 */
TEST_F_TIMEOUT(contend, write_streams_unprefetched, CONTEND_TIMEOUT)
{
	bool same = true;
	size_t i;
	int q;

	timed_write_streams(_metadata, self, "the unprefetched WRITE streams",
			    false);
	for (q = 0; q < NQP && same; q++)
		for (i = 0; i < LEN / STRIPE && same; i++)
			same = t_check(self->target + i * STRIPE + q * SLOT,
				       self->src[q] + i * DATA, DATA,
				       "written data");
	EXPECT_TRUE(same) {
		TH_LOG("QP %d: its slot of stripe %zu differs", q - 1, i - 1);
	}
}

/* QP q: every byte it wrote is in the MR */
static void qp_wrote(struct __test_metadata *_metadata,
		     FIXTURE_DATA(contend) *self, int q)
{
	bool same = true;
	size_t i;

	WRITE_STREAMS();
	for (i = 0; i < LEN / STRIPE && same; i++)
		same = t_check(self->target + i * STRIPE + q * SLOT,
			       self->src[q] + i * DATA, DATA, "written data");
	EXPECT_TRUE(same) {
		TH_LOG("QP %d: its slot of stripe %zu differs", q, i - 1);
	}
}

TEST_F_TIMEOUT(contend, qp0_wrote, CONTEND_TIMEOUT)
{
	qp_wrote(_metadata, self, 0);
}

TEST_F_TIMEOUT(contend, qp1_wrote, CONTEND_TIMEOUT)
{
	qp_wrote(_metadata, self, 1);
}

TEST_F_TIMEOUT(contend, qp2_wrote, CONTEND_TIMEOUT)
{
	qp_wrote(_metadata, self, 2);
}

TEST_F_TIMEOUT(contend, qp3_wrote, CONTEND_TIMEOUT)
{
	qp_wrote(_metadata, self, 3);
}

/* the CPU's last writes are in every tail (generation N) */
TEST_F_TIMEOUT(contend, cpu_tails, CONTEND_TIMEOUT)
{
	bool ok = true;
	size_t i;

	WRITE_STREAMS();
	t_diag("the CPU's last generation: %u", self->cpu_gen);
	for (i = 0; i < LEN && ok; i += SLOT)
		ok = t_check_byte(self->target + i + DATA, self->cpu_gen,
				  SLOT - DATA, "the CPU's tail");
	EXPECT_TRUE(ok) {
		TH_LOG("the tail of slot %zu is not generation %u",
		       i / SLOT - 1, self->cpu_gen);
	}
}

/* 4 QPs read the MR back with RDMA READs at once */
TEST_F_TIMEOUT(contend, read_streams, CONTEND_TIMEOUT)
{
	WRITE_STREAMS();
	EXPECT_TRUE(all_streams(self, IBV_WR_RDMA_READ, false));
}

/* QP q: every byte read back */
static void qp_read_back(struct __test_metadata *_metadata,
			 FIXTURE_DATA(contend) *self, int q)
{
	WRITE_STREAMS();
	ASSERT_TRUE(all_streams(self, IBV_WR_RDMA_READ, false)) {
		TH_LOG("the READ streams failed");
	}
	EXPECT_BYTES(self->back[q], self->src[q], QP_LEN, "read back");
}

TEST_F_TIMEOUT(contend, qp0_read_back, CONTEND_TIMEOUT)
{
	qp_read_back(_metadata, self, 0);
}

TEST_F_TIMEOUT(contend, qp1_read_back, CONTEND_TIMEOUT)
{
	qp_read_back(_metadata, self, 1);
}

TEST_F_TIMEOUT(contend, qp2_read_back, CONTEND_TIMEOUT)
{
	qp_read_back(_metadata, self, 2);
}

TEST_F_TIMEOUT(contend, qp3_read_back, CONTEND_TIMEOUT)
{
	qp_read_back(_metadata, self, 3);
}

ODP_HARNESS_MAIN("faulters of the same pages of one ODP MR at once")
