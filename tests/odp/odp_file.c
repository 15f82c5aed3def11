// SPDX-License-Identifier: GPL-2.0 OR Linux-OpenIB
/*
 * odp_file: ODP MRs over shared file mappings (memfd and a tmpfs file in
 * /dev/shm, MAP_SHARED).
 *
 *  - remote RDMA WRITEs into cold pages land in the file (pread reads
 *    them); what is written through the file (pwrite) or through another
 *    mapping of it is what the device reads;
 *  - the data survives msync, munmap and a new mapping (and, for the
 *    tmpfs file, close and open again): the CPU, pread and an MR on the
 *    new mapping all see it;
 *  - ftruncate to 1 MiB while one stream of RDMA WRITEs and READs runs
 *    below the new end of file and another beyond it: the first never
 *    fails, the second ends with IBV_WC_REM_ACCESS_ERR; a READ across the
 *    end and a WRITE beyond it fail the same way and change nothing;
 *  - ftruncate back to 4 MiB: the device reads zeros beyond the old end,
 *    as the CPU does, and its WRITEs there land in the file.
 * The kernel log must stay clean (the test bed checks it).
 *
 * Each of these is a sequence of steps on one file; the test of a step
 * goes through the steps before it first, with their checks, so that
 * every test starts from a new file and a new MR.
 *
 * Pinned MRs (--pinned) keep the truncated pages: the stream beyond the
 * end of file never fails, the device still reads the old data there after
 * the file grows again (the CPU reads zeros), and its WRITEs there never
 * reach the file.  The contrast asserts exactly that.
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/mman.h>

#include "odpharness.h"

#define FL	(4 * T_MIB)
#define EOF2	T_MIB		/* the end of file after truncation */

#define SL	(256 * T_KIB)
#define BELOW	(256 * T_KIB)	/* the stream that stays inside the file */
#define BEYOND	(2 * T_MIB)	/* the stream the truncation cuts off */

/* One stream of WRITEs and READs back over its own QP pair. */
struct stream {
	uint8_t *m;
	struct ibv_mr *mr, *lmr;
	struct t_rc_pair p;
	size_t off;
	uint32_t rlen;		/* bytes each READ reads back */
	uint8_t *src, *dst;
	pthread_t thread;
	bool running;		/* the thread is to be joined */
	int stop;
	long loops;
	int seed, status;
	bool bad;
};

/*
 * The device; local (4 * FL, registered as lmr) and got (what pread
 * reads); the file, its mappings, its MR and what it should hold; the
 * truncation's streams and QP pairs.  Teardown frees whatever the test
 * got to.
 */
FIXTURE(file) {
	struct t_dev dev;
	uint8_t *local, *got;
	struct ibv_mr *lmr;
	int fd;
	char path[64];		/* the tmpfs file, or "" */
	uint8_t *m, *m2, *want;
	struct ibv_mr *mr;
	struct stream in, out;
	struct t_rc_pair ep[2], xp;
};

ODP_VARIANTS(file);

FIXTURE_SETUP(file)
{
	t_variant();
	self->fd = -1;
	ASSERT_EQ(0, t_dev_open(&self->dev));
	self->local = t_mmap(4 * FL);
	ASSERT_NE(NULL, self->local);
	self->got = malloc(FL);
	ASSERT_NE(NULL, self->got);
	self->lmr = t_reg_mr(&self->dev, self->local, 4 * FL, T_ACCESS_ALL);
	ASSERT_NE(NULL, self->lmr) {
		TH_LOG("cannot register %s MRs", t_mode());
	}
}

static void stream_end(struct stream *st)
{
	if (!st->running)
		return;
	__atomic_store_n(&st->stop, 1, __ATOMIC_RELEASE);
	pthread_join(st->thread, NULL);
	st->running = false;
}

FIXTURE_TEARDOWN(file)
{
	stream_end(&self->in);
	stream_end(&self->out);
	t_rc_pair_destroy(&self->in.p);
	t_rc_pair_destroy(&self->out.p);
	t_rc_pair_destroy(&self->xp);
	t_rc_pair_destroy(&self->ep[1]);
	t_rc_pair_destroy(&self->ep[0]);
	t_dereg_mr(self->mr);
	if (self->m)
		munmap(self->m, FL);
	if (self->m2)
		munmap(self->m2, FL);
	if (self->fd >= 0)
		close(self->fd);
	if (self->path[0])
		unlink(self->path);
	free(self->want);
	t_dereg_mr(self->lmr);
	t_munmap(self->local, 4 * FL);
	free(self->got);
	t_dev_close(&self->dev);
}

/* t_rdma_chunked() and t_rdma_fresh_pair() from local (lmr). */
static int dev_op_on(struct t_rc_pair *p, struct ibv_mr *lmr,
		     enum ibv_wr_opcode op, void *laddr, void *raddr,
		     size_t len, struct ibv_mr *mr)
{
	return t_rdma_chunked(p, op, laddr, lmr->lkey, raddr, mr->rkey, len,
			      true);
}

static int dev_op(FIXTURE_DATA(file) *self, enum ibv_wr_opcode op,
		  void *laddr, void *raddr, size_t len, struct ibv_mr *mr)
{
	return t_rdma_fresh_pair(&self->dev, op, laddr, self->lmr->lkey, raddr,
				 mr->rkey, len);
}

static uint8_t *map_shared(int fd, size_t len)
{
	void *p = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);

	if (p == MAP_FAILED) {
		t_diag("mmap(MAP_SHARED): %s", strerror(errno));
		return NULL;
	}
	return p;
}

/* The file's bytes [0, len) equal @want. */
static void expect_file(struct __test_metadata *_metadata,
			FIXTURE_DATA(file) *self, const uint8_t *want,
			size_t len, const char *what)
{
	ssize_t n;
	int err;

	memset(self->got, 0x5a, len);
	n = pread(self->fd, self->got, len, 0);
	err = errno;
	EXPECT_EQ((ssize_t)len, n) {
		TH_LOG("%s: pread: %s", what,
		       n < 0 ? strerror(err) : "short read");
	}
	if (n == (ssize_t)len) {
		EXPECT_BYTES(self->got, want, len, what);
	}
}

/* ---- WRITE, msync, munmap, map again ------------------------------------ */

/*
 * The steps on a memfd (@tmpfs false) or a tmpfs file, up to and with
 * @last: 0 WRITEs into cold pages, 1 writes through the file and another
 * mapping, 2 msync, munmap (close and open) and a new mapping.
 */
static void file_steps(struct __test_metadata *_metadata,
		       FIXTURE_DATA(file) *self, bool tmpfs, int last)
{
	uint8_t *local = self->local, *want;
	ssize_t n;
	size_t off;
	int err;

	if (tmpfs) {
		snprintf(self->path, sizeof(self->path),
			 "/dev/shm/odp_file.%d", (int)getpid());
		self->fd = open(self->path, O_RDWR | O_CREAT | O_TRUNC, 0600);
		err = errno;
		ASSERT_LE(0, self->fd) {
			TH_LOG("open(%s): %s", self->path, strerror(err));
		}
	} else {
		self->fd = memfd_create("odp_file", 0);
		err = errno;
		ASSERT_LE(0, self->fd) {
			TH_LOG("memfd_create: %s", strerror(err));
		}
	}
	want = self->want = calloc(1, FL);
	ASSERT_NE(NULL, want);
	ASSERT_EQ(0, ftruncate(self->fd, FL));
	self->m = map_shared(self->fd, FL);
	ASSERT_NE(NULL, self->m);
	self->mr = t_reg_mr(&self->dev, self->m, FL, T_ACCESS_ALL);
	ASSERT_NE(NULL, self->mr);

	/* Remote WRITEs into pages the file does not have yet. */
	t_fill(local, FL - 3 * T_PAGE, 1);
	memcpy(want + T_PAGE + 5, local, FL - 3 * T_PAGE);
	EXPECT_WC(IBV_WC_SUCCESS,
		  dev_op(self, IBV_WR_RDMA_WRITE, local, self->m + T_PAGE + 5,
			 FL - 3 * T_PAGE, self->mr));
	expect_file(_metadata, self, want, FL, "pread after the WRITE");
	EXPECT_BYTES(self->m, want, FL, "CPU after the WRITE");
	memset(local, 0x5a, FL);
	EXPECT_WC(IBV_WC_SUCCESS,
		  dev_op(self, IBV_WR_RDMA_READ, local, self->m, FL,
			 self->mr));
	EXPECT_BYTES(local, want, FL, "READ after the WRITE");
	if (last == 0)
		return;

	/* Through the file and through another mapping. */
	t_fill(local, 3 * T_PAGE, 2);
	memcpy(want + 10 * T_PAGE - 7, local, 3 * T_PAGE);
	n = pwrite(self->fd, local, 3 * T_PAGE, 10 * T_PAGE - 7);
	err = errno;
	ASSERT_EQ((ssize_t)(3 * T_PAGE), n) {
		TH_LOG("pwrite: %s", n < 0 ? strerror(err) : "short write");
	}
	self->m2 = map_shared(self->fd, FL);
	ASSERT_NE(NULL, self->m2);
	t_fill(self->m2 + 2 * T_MIB, 5 * T_PAGE, 3);
	memcpy(want + 2 * T_MIB, self->m2 + 2 * T_MIB, 5 * T_PAGE);
	memset(local, 0x5a, FL);
	EXPECT_WC(IBV_WC_SUCCESS,
		  dev_op(self, IBV_WR_RDMA_READ, local, self->m, FL,
			 self->mr));
	EXPECT_BYTES(local, want, FL,
		     "READ after pwrite and a write through another mapping");
	if (last == 1)
		return;

	/* msync, munmap, map again. */
	t_fill(local, 64 * T_KIB, 4);
	memcpy(want + FL - 64 * T_KIB, local, 64 * T_KIB);
	EXPECT_WC(IBV_WC_SUCCESS,
		  dev_op(self, IBV_WR_RDMA_WRITE, local,
			 self->m + FL - 64 * T_KIB, 64 * T_KIB, self->mr));
	n = msync(self->m, FL, MS_SYNC);
	err = errno;
	ASSERT_EQ(0, n) {
		TH_LOG("msync: %s", strerror(err));
	}
	expect_file(_metadata, self, want, FL, "pread after msync");
	t_dereg_mr(self->mr);
	self->mr = NULL;
	munmap(self->m, FL);
	munmap(self->m2, FL);
	self->m = self->m2 = NULL;
	if (tmpfs) {
		/* and close and open again */
		close(self->fd);
		self->fd = open(self->path, O_RDWR);
		err = errno;
		ASSERT_LE(0, self->fd) {
			TH_LOG("open(%s): %s", self->path, strerror(err));
		}
	}
	expect_file(_metadata, self, want, FL, "pread after munmap");
	self->m = map_shared(self->fd, FL);
	ASSERT_NE(NULL, self->m);
	EXPECT_BYTES(self->m, want, FL, "CPU on a new mapping");
	self->mr = t_reg_mr(&self->dev, self->m, FL, T_ACCESS_ALL);
	ASSERT_NE(NULL, self->mr);
	memset(local, 0x5a, FL);
	EXPECT_WC(IBV_WC_SUCCESS,
		  dev_op(self, IBV_WR_RDMA_READ, local, self->m, FL,
			 self->mr));
	EXPECT_BYTES(local, want, FL, "READ through an MR on the new mapping");
	off = 3 * T_MIB + 11;
	t_fill(local, 8 * T_PAGE, 5);
	memcpy(want + off, local, 8 * T_PAGE);
	EXPECT_WC(IBV_WC_SUCCESS,
		  dev_op(self, IBV_WR_RDMA_WRITE, local, self->m + off,
			 8 * T_PAGE, self->mr));
	expect_file(_metadata, self, want, FL,
		    "pread after a WRITE through the new MR");
}

/* memfd: RDMA WRITEs into cold pages land in the file (pread), READ returns them */
TEST_F(file, memfd_write_lands_in_file)
{
	file_steps(_metadata, self, false, 0);
}

/* memfd: RDMA READ returns what pwrite and another mapping wrote */
TEST_F(file, memfd_read_sees_pwrite)
{
	file_steps(_metadata, self, false, 1);
}

/*
 * memfd: the data survives msync, munmap and a new mapping, an MR there
 * reads and writes it
 */
TEST_F(file, memfd_survives_remap)
{
	file_steps(_metadata, self, false, 2);
}

/* tmpfs file: RDMA WRITEs into cold pages land in the file (pread), READ returns them */
TEST_F(file, tmpfs_write_lands_in_file)
{
	file_steps(_metadata, self, true, 0);
}

/* tmpfs file: RDMA READ returns what pwrite and another mapping wrote */
TEST_F(file, tmpfs_read_sees_pwrite)
{
	file_steps(_metadata, self, true, 1);
}

/* tmpfs file: the data survives msync, munmap, close, open and a new mapping */
TEST_F(file, tmpfs_survives_reopen)
{
	file_steps(_metadata, self, true, 2);
}

/* ---- ftruncate under traffic --------------------------------------------- */

static void *stream_fn(void *arg)
{
	struct stream *st = arg;
	int s;

	st->status = IBV_WC_SUCCESS;
	while (!__atomic_load_n(&st->stop, __ATOMIC_ACQUIRE)) {
		st->seed++;
		t_fill(st->src, SL, st->seed * 10 + st->off);
		s = dev_op_on(&st->p, st->lmr, IBV_WR_RDMA_WRITE, st->src,
			      st->m + st->off, SL, st->mr);
		if (!s) {
			memset(st->dst, 0x5a, SL);
			s = dev_op_on(&st->p, st->lmr, IBV_WR_RDMA_READ,
				      st->dst, st->m + st->off, st->rlen,
				      st->mr);
		}
		if (s) {
			__atomic_store_n(&st->status, s, __ATOMIC_RELEASE);
			break;
		}
		if (!t_check(st->dst, st->src, st->rlen,
			     "stream: READ after WRITE")) {
			st->bad = true;
			break;
		}
		__atomic_add_fetch(&st->loops, 1, __ATOMIC_RELEASE);
	}
	return NULL;
}

/*
 * Wait until @st has done @n more loops, or stopped on an error; @max
 * seconds only bound a stream that makes no progress.  Under TCG on a
 * loaded host the guest's clock can leap, so the bounds are generous:
 * the waits end on progress, not on time.
 */
static void wait_loops(struct stream *st, long n, double max)
{
	long l0 = __atomic_load_n(&st->loops, __ATOMIC_ACQUIRE);
	double t0 = t_now();

	while (!st->bad && t_now() - t0 < max &&
	       __atomic_load_n(&st->status, __ATOMIC_ACQUIRE) ==
	       IBV_WC_SUCCESS &&
	       __atomic_load_n(&st->loops, __ATOMIC_ACQUIRE) < l0 + n)
		usleep(10000);
}

/*
 * The steps on a memfd that is truncated, up to and with @last:
 * 0 ftruncate to EOF2 under the two streams, 1 a READ and a WRITE beyond
 * the end, 2 the file grows again and is read, 3 a WRITE into the grown
 * part, 4 ftruncate again and a READ across the end.
 */
static void truncate_steps(struct __test_metadata *_metadata,
			   FIXTURE_DATA(file) *self,
			   const FIXTURE_VARIANT(file) *variant, int last)
{
	struct stream *in = &self->in, *out = &self->out;
	uint8_t *local = self->local, *m, *want;
	struct ibv_mr *mr;
	long before;
	int s, err;

	self->fd = memfd_create("odp_file-truncate", 0);
	err = errno;
	ASSERT_LE(0, self->fd) {
		TH_LOG("memfd_create: %s", strerror(err));
	}
	want = self->want = malloc(FL);
	ASSERT_NE(NULL, want);
	ASSERT_EQ(0, ftruncate(self->fd, FL));
	m = self->m = map_shared(self->fd, FL);
	ASSERT_NE(NULL, m);
	t_fill(m, FL, 20);
	memcpy(want, m, FL);
	mr = self->mr = t_reg_mr(&self->dev, m, FL, T_ACCESS_ALL);
	ASSERT_NE(NULL, mr);
	ASSERT_EQ(0, t_rc_pair_create(&self->dev, &self->ep[0], NULL));
	ASSERT_EQ(0, t_rc_pair_create(&self->dev, &self->ep[1], NULL));
	in->m = out->m = m;
	in->mr = out->mr = mr;
	in->lmr = out->lmr = self->lmr;
	in->off = BELOW;
	out->off = BEYOND;
	/*
	 * 64-packet READs: the truncation may cut one after its first
	 * response packets (it must still complete, with an error).
	 */
	in->rlen = out->rlen = SL;
	in->src = local;
	in->dst = local + SL;
	out->src = local + 2 * SL;
	out->dst = local + 3 * SL;
	ASSERT_EQ(0, t_rc_pair_create(&self->dev, &in->p, NULL));
	ASSERT_EQ(0, t_rc_pair_create(&self->dev, &out->p, NULL));
	ASSERT_EQ(0, pthread_create(&in->thread, NULL, stream_fn, in));
	in->running = true;
	ASSERT_EQ(0, pthread_create(&out->thread, NULL, stream_fn, out));
	out->running = true;
	wait_loops(in, 3, 300);
	wait_loops(out, 3, 300);
	before = out->loops;
	s = ftruncate(self->fd, EOF2);
	err = errno;
	ASSERT_EQ(0, s) {
		TH_LOG("ftruncate(%lu): %s", EOF2, strerror(err));
	}
	wait_loops(in, 5, 300);
	wait_loops(out, 5, 60);
	stream_end(in);
	stream_end(out);
	t_diag("below the end: %ld loops, ended with %s; beyond it: %ld loops (%ld before the ftruncate), ended with %s",
	       in->loops, t_wc_status_str(in->status), out->loops, before,
	       t_wc_status_str(out->status));
	EXPECT_FALSE(in->bad);
	EXPECT_FALSE(out->bad);
	EXPECT_WC(IBV_WC_SUCCESS, in->status);
	EXPECT_LE(3, before);
	EXPECT_LE(8, in->loops);
	if (variant->odp) {
		EXPECT_WC(IBV_WC_REM_ACCESS_ERR, out->status);
	} else {
		EXPECT_WC(IBV_WC_SUCCESS, out->status);
		EXPECT_LT(before, out->loops);
	}

	/* The file: the last WRITE below, the rest of the first MiB as filled. */
	t_fill(local, SL, in->seed * 10 + BELOW);
	memcpy(want + BELOW, local, SL);
	EXPECT_EQ((off_t)EOF2, lseek(self->fd, 0, SEEK_END));
	expect_file(_metadata, self, want, EOF2, "pread of what is left");
	if (last == 0)
		return;

	/* A READ beyond the end of file, a WRITE beyond it. */
	memset(local, 0x5a, 2 * T_PAGE);
	s = dev_op_on(&self->ep[0], self->lmr, IBV_WR_RDMA_READ, local,
		      m + EOF2, 2 * T_PAGE, mr);
	t_diag("READ beyond the end of file: %s", t_wc_status_str(s));
	if (variant->odp) {
		EXPECT_WC(IBV_WC_REM_ACCESS_ERR, s);
		EXPECT_FILLED(local, 0x5a, 2 * T_PAGE,
			      "local buffer after the failed READ");
	} else {
		EXPECT_WC(IBV_WC_SUCCESS, s);
	}
	t_fill(local, 3 * T_PAGE, 21);
	s = dev_op_on(&self->ep[1], self->lmr, IBV_WR_RDMA_WRITE, local,
		      m + EOF2 + T_PAGE, 3 * T_PAGE, mr);
	t_diag("WRITE beyond the end of file: %s", t_wc_status_str(s));
	EXPECT_WC(variant->odp ? IBV_WC_REM_ACCESS_ERR : IBV_WC_SUCCESS, s);
	EXPECT_EQ((off_t)EOF2, lseek(self->fd, 0, SEEK_END));
	if (last == 1)
		return;

	/* The file grows again: zeros beyond the old end, for everyone. */
	s = ftruncate(self->fd, FL);
	err = errno;
	ASSERT_EQ(0, s) {
		TH_LOG("ftruncate(%lu): %s", FL, strerror(err));
	}
	memset(want + EOF2, 0, FL - EOF2);
	memset(local, 0x5a, FL);
	EXPECT_WC(IBV_WC_SUCCESS,
		  dev_op(self, IBV_WR_RDMA_READ, local, m, FL, mr));
	expect_file(_metadata, self, want, FL, "pread after the file grew");
	EXPECT_BYTES(m, want, FL, "CPU after the file grew");
	if (variant->odp) {
		EXPECT_BYTES(local, m, FL,
			     "READ against the CPU after the file grew");
	} else {
		/* the device still has the old pages beyond the old end */
		ssize_t d = t_cmp(local + EOF2, want + EOF2, FL - EOF2);

		t_diag("pinned: the device %s beyond the old end of file",
		       d >= 0 ? "reads stale data" : "reads zeros");
		EXPECT_LE(0, d);
		EXPECT_BYTES(local, want, EOF2, "pinned: READ inside the file");
	}
	if (last == 2)
		return;

	/* A WRITE beyond the old end lands in the file. */
	t_fill(local, 5 * T_PAGE + 3, 22);
	EXPECT_WC(IBV_WC_SUCCESS,
		  dev_op(self, IBV_WR_RDMA_WRITE, local, m + 3 * T_MIB - 1,
			 5 * T_PAGE + 3, mr));
	if (variant->odp) {
		memcpy(want + 3 * T_MIB - 1, local, 5 * T_PAGE + 3);
		expect_file(_metadata, self, want, FL,
			    "pread after a WRITE into the grown file");
		EXPECT_BYTES(m, want, FL,
			     "CPU after a WRITE into the grown file");
	} else {
		expect_file(_metadata, self, want, FL,
			    "pinned: pread after a WRITE into the grown file (unchanged)");
	}
	if (last == 3)
		return;

	/*
	 * A READ across the end of file: the first response packet goes out,
	 * the second page is beyond the end.  Before the patch "Accept a
	 * NAK in the middle of an RDMA READ response" it never completed: the
	 * requester dropped the responder's NAK as stale and retried forever.
	 */
	s = ftruncate(self->fd, EOF2);
	err = errno;
	ASSERT_EQ(0, s) {
		TH_LOG("ftruncate(%lu): %s", EOF2, strerror(err));
	}
	memset(local, 0x5a, 2 * T_PAGE);
	ASSERT_EQ(0, t_rc_pair_create(&self->dev, &self->xp, NULL));
	s = dev_op_on(&self->xp, self->lmr, IBV_WR_RDMA_READ, local,
		      m + EOF2 - T_PAGE, 2 * T_PAGE, mr);
	t_diag("READ across the end of file: %s", t_wc_status_str(s));
	if (variant->odp) {
		EXPECT_WC(IBV_WC_REM_ACCESS_ERR, s);
	} else {
		EXPECT_WC(IBV_WC_SUCCESS, s);
		EXPECT_BYTES(local, want + EOF2 - T_PAGE, T_PAGE,
			     "pinned: READ across the end, inside");
	}
}

/*
 * odp: ftruncate under traffic: the stream below the new end never
 * fails, the one beyond it ends with IBV_WC_REM_ACCESS_ERR
 * pinned: pinned contrast: ftruncate under traffic: the stream beyond
 * the new end never fails
 */
TEST_F(file, ftruncate_under_traffic)
{
	truncate_steps(_metadata, self, variant, 0);
}

/*
 * odp: after ftruncate, a READ and a WRITE beyond the end:
 * IBV_WC_REM_ACCESS_ERR, nothing changed
 * pinned: pinned contrast: after ftruncate, a READ and a WRITE beyond the
 * end succeed
 */
TEST_F(file, access_beyond_end)
{
	truncate_steps(_metadata, self, variant, 1);
}

/*
 * odp: after the file grows again, RDMA READ returns zeros beyond the old
 * end, as the CPU and pread
 * pinned: pinned contrast: after the file grows again the device reads
 * stale data beyond the old end, the CPU zeros
 */
TEST_F(file, grown_file_read)
{
	truncate_steps(_metadata, self, variant, 2);
}

/*
 * odp: a WRITE into the grown part lands in the file
 * pinned: pinned contrast: a WRITE into the grown part never reaches the
 * file
 */
TEST_F(file, grown_file_write)
{
	truncate_steps(_metadata, self, variant, 3);
}

/*
 * odp: after ftruncate, a READ across the end (one packet inside):
 * IBV_WC_REM_ACCESS_ERR
 * pinned: pinned contrast: after ftruncate, a READ across the end
 * succeeds
 */
TEST_F(file, read_across_end)
{
	truncate_steps(_metadata, self, variant, 4);
}

ODP_HARNESS_MAIN("ODP MRs over shared file mappings: memfd, tmpfs, truncation")
