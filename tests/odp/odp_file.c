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

#include "odptest.h"

#define FL	(4 * T_MIB)
#define EOF2	T_MIB		/* the end of file after truncation */

static struct t_dev dev;
static uint8_t *local;		/* 4 * FL, registered as lmr */
static struct ibv_mr *lmr;

/* t_rdma_chunked() and t_rdma_fresh_pair() from local (lmr). */
static int dev_op_on(struct t_rc_pair *p, enum ibv_wr_opcode op, void *laddr,
		     void *raddr, size_t len, struct ibv_mr *mr)
{
	return t_rdma_chunked(p, op, laddr, lmr->lkey, raddr, mr->rkey, len,
			      true);
}

static int dev_op(enum ibv_wr_opcode op, void *laddr, void *raddr, size_t len,
		  struct ibv_mr *mr)
{
	return t_rdma_fresh_pair(&dev, op, laddr, lmr->lkey, raddr, mr->rkey,
				 len);
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
static bool file_is(int fd, const uint8_t *want, size_t len, const char *what)
{
	uint8_t *got = malloc(len);
	bool ok;

	if (!got)
		return false;
	memset(got, 0x5a, len);
	if (pread(fd, got, len, 0) != (ssize_t)len) {
		t_diag("%s: pread: %s", what, strerror(errno));
		ok = false;
	} else {
		ok = t_check(got, want, len, what);
	}
	free(got);
	return ok;
}

/* ---- WRITE, msync, munmap, map again ------------------------------------ */

static void file_case(int fd, const char *path, bool r[3])
{
	uint8_t *m = NULL, *m2 = NULL, *want;
	struct ibv_mr *mr = NULL;
	size_t off;

	memset(r, 0, 3 * sizeof(*r));
	want = calloc(1, FL);
	if (!want || ftruncate(fd, FL))
		goto out;
	m = map_shared(fd, FL);
	if (!m)
		goto out;
	mr = t_reg_mr(&dev, m, FL, T_ACCESS_ALL);
	if (!mr)
		goto out;

	/* Remote WRITEs into pages the file does not have yet. */
	t_fill(local, FL - 3 * T_PAGE, 1);
	memcpy(want + T_PAGE + 5, local, FL - 3 * T_PAGE);
	r[0] = !dev_op(IBV_WR_RDMA_WRITE, local, m + T_PAGE + 5,
		       FL - 3 * T_PAGE, mr) &&
	       file_is(fd, want, FL, "pread after the WRITE") &&
	       t_check(m, want, FL, "CPU after the WRITE");
	memset(local, 0x5a, FL);
	r[0] = r[0] && !dev_op(IBV_WR_RDMA_READ, local, m, FL, mr) &&
	       t_check(local, want, FL, "READ after the WRITE");

	/* Through the file and through another mapping. */
	t_fill(local, 3 * T_PAGE, 2);
	memcpy(want + 10 * T_PAGE - 7, local, 3 * T_PAGE);
	if (pwrite(fd, local, 3 * T_PAGE, 10 * T_PAGE - 7) != 3 * T_PAGE)
		t_diag("pwrite: %s", strerror(errno));
	m2 = map_shared(fd, FL);
	if (m2) {
		t_fill(m2 + 2 * T_MIB, 5 * T_PAGE, 3);
		memcpy(want + 2 * T_MIB, m2 + 2 * T_MIB, 5 * T_PAGE);
	}
	memset(local, 0x5a, FL);
	r[1] = m2 && !dev_op(IBV_WR_RDMA_READ, local, m, FL, mr) &&
	       t_check(local, want, FL,
		       "READ after pwrite and a write through another mapping");

	/* msync, munmap, map again. */
	t_fill(local, 64 * T_KIB, 4);
	memcpy(want + FL - 64 * T_KIB, local, 64 * T_KIB);
	r[2] = !dev_op(IBV_WR_RDMA_WRITE, local, m + FL - 64 * T_KIB,
		       64 * T_KIB, mr);
	if (msync(m, FL, MS_SYNC))
		t_diag("msync: %s", strerror(errno));
	r[2] = r[2] && file_is(fd, want, FL, "pread after msync");
	t_dereg_mr(mr);
	mr = NULL;
	munmap(m, FL);
	munmap(m2, FL);
	m = m2 = NULL;
	if (path) {
		/* and close and open again */
		close(fd);
		fd = open(path, O_RDWR);
		if (fd < 0) {
			t_diag("open(%s): %s", path, strerror(errno));
			goto out;
		}
	}
	r[2] = r[2] && file_is(fd, want, FL, "pread after munmap");
	m = map_shared(fd, FL);
	if (!m)
		goto out;
	r[2] = r[2] && t_check(m, want, FL, "CPU on a new mapping");
	mr = t_reg_mr(&dev, m, FL, T_ACCESS_ALL);
	memset(local, 0x5a, FL);
	r[2] = r[2] && mr && !dev_op(IBV_WR_RDMA_READ, local, m, FL, mr) &&
	       t_check(local, want, FL, "READ through an MR on the new mapping");
	off = 3 * T_MIB + 11;
	t_fill(local, 8 * T_PAGE, 5);
	memcpy(want + off, local, 8 * T_PAGE);
	r[2] = r[2] && !dev_op(IBV_WR_RDMA_WRITE, local, m + off, 8 * T_PAGE, mr) &&
	       file_is(fd, want, FL, "pread after a WRITE through the new MR");
out:
	t_dereg_mr(mr);
	if (m)
		munmap(m, FL);
	if (m2)
		munmap(m2, FL);
	if (path && fd >= 0)
		close(fd);
	free(want);
}

/* ---- ftruncate under traffic --------------------------------------------- */

#define SL	(256 * T_KIB)
#define BELOW	(256 * T_KIB)	/* the stream that stays inside the file */
#define BEYOND	(2 * T_MIB)	/* the stream the truncation cuts off */

struct stream {
	uint8_t *m;
	struct ibv_mr *mr;
	struct t_rc_pair p;
	size_t off;
	uint32_t rlen;		/* bytes each READ reads back */
	uint8_t *src, *dst;
	int stop;
	long loops;
	int seed, status;
	bool bad;
};

static void *stream_fn(void *arg)
{
	struct stream *st = arg;
	int s;

	st->status = IBV_WC_SUCCESS;
	while (!__atomic_load_n(&st->stop, __ATOMIC_ACQUIRE)) {
		st->seed++;
		t_fill(st->src, SL, st->seed * 10 + st->off);
		s = dev_op_on(&st->p, IBV_WR_RDMA_WRITE, st->src,
			      st->m + st->off, SL, st->mr);
		if (!s) {
			memset(st->dst, 0x5a, SL);
			s = dev_op_on(&st->p, IBV_WR_RDMA_READ, st->dst,
				      st->m + st->off, st->rlen, st->mr);
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

static void truncate_case(bool r[5])
{
	struct stream in = { 0 }, out = { 0 };
	struct t_rc_pair ep[2];
	uint8_t *m = NULL, *want;
	struct ibv_mr *mr = NULL;
	pthread_t ti, to;
	int fd, s, nep = 0;
	long before;

	memset(r, 0, 5 * sizeof(*r));
	fd = memfd_create("odp_file-truncate", 0);
	want = malloc(FL);
	if (fd < 0 || !want || ftruncate(fd, FL))
		goto out;
	m = map_shared(fd, FL);
	if (!m)
		goto out;
	t_fill(m, FL, 20);
	memcpy(want, m, FL);
	mr = t_reg_mr(&dev, m, FL, T_ACCESS_ALL);
	if (!mr)
		goto out;
	for (nep = 0; nep < 2; nep++)
		if (t_rc_pair_create(&dev, &ep[nep], NULL))
			goto out_ep;
	in.m = out.m = m;
	in.mr = out.mr = mr;
	in.off = BELOW;
	out.off = BEYOND;
	/*
	 * 64-packet READs: the truncation may cut one after its first
	 * response packets (it must still complete, with an error).
	 */
	in.rlen = out.rlen = SL;
	in.src = local;
	in.dst = local + SL;
	out.src = local + 2 * SL;
	out.dst = local + 3 * SL;
	if (t_rc_pair_create(&dev, &in.p, NULL))
		goto out_ep;
	if (t_rc_pair_create(&dev, &out.p, NULL)) {
		t_rc_pair_destroy(&in.p);
		goto out_ep;
	}
	if (pthread_create(&ti, NULL, stream_fn, &in))
		goto out_p;
	if (pthread_create(&to, NULL, stream_fn, &out)) {
		__atomic_store_n(&in.stop, 1, __ATOMIC_RELEASE);
		pthread_join(ti, NULL);
		goto out_p;
	}
	wait_loops(&in, 3, 300);
	wait_loops(&out, 3, 300);
	before = out.loops;
	if (ftruncate(fd, EOF2))
		t_diag("ftruncate(%lu): %s", EOF2, strerror(errno));
	wait_loops(&in, 5, 300);
	wait_loops(&out, 5, 60);
	__atomic_store_n(&in.stop, 1, __ATOMIC_RELEASE);
	__atomic_store_n(&out.stop, 1, __ATOMIC_RELEASE);
	pthread_join(ti, NULL);
	pthread_join(to, NULL);
	t_diag("below the end: %ld loops, ended with %s; beyond it: %ld loops (%ld before the ftruncate), ended with %s",
	       in.loops, t_wc_status_str(in.status), out.loops, before,
	       t_wc_status_str(out.status));
	r[0] = !in.bad && !out.bad && in.status == IBV_WC_SUCCESS &&
	       before >= 3 && in.loops >= 8;
	if (t_odp)
		r[0] = r[0] && out.status == IBV_WC_REM_ACCESS_ERR;
	else
		r[0] = r[0] && out.status == IBV_WC_SUCCESS && out.loops > before;

	/* The file: the last WRITE below, the rest of the first MiB as filled. */
	t_fill(local, SL, in.seed * 10 + BELOW);
	memcpy(want + BELOW, local, SL);
	r[0] = r[0] && lseek(fd, 0, SEEK_END) == EOF2 &&
	       file_is(fd, want, EOF2, "pread of what is left");

	/* A READ beyond the end of file, a WRITE beyond it. */
	memset(local, 0x5a, 2 * T_PAGE);
	s = dev_op_on(&ep[0], IBV_WR_RDMA_READ, local, m + EOF2, 2 * T_PAGE, mr);
	t_diag("READ beyond the end of file: %s", t_wc_status_str(s));
	if (t_odp)
		r[1] = s == IBV_WC_REM_ACCESS_ERR &&
		       t_check_byte(local, 0x5a, 2 * T_PAGE,
				    "local buffer after the failed READ");
	else
		r[1] = s == IBV_WC_SUCCESS;
	t_fill(local, 3 * T_PAGE, 21);
	s = dev_op_on(&ep[1], IBV_WR_RDMA_WRITE, local, m + EOF2 + T_PAGE,
		      3 * T_PAGE, mr);
	t_diag("WRITE beyond the end of file: %s", t_wc_status_str(s));
	if (t_odp)
		r[1] = r[1] && s == IBV_WC_REM_ACCESS_ERR &&
		       lseek(fd, 0, SEEK_END) == EOF2;
	else
		r[1] = r[1] && s == IBV_WC_SUCCESS &&
		       lseek(fd, 0, SEEK_END) == EOF2;

	/* The file grows again: zeros beyond the old end, for everyone. */
	if (ftruncate(fd, FL))
		t_diag("ftruncate(%lu): %s", FL, strerror(errno));
	memset(want + EOF2, 0, FL - EOF2);
	memset(local, 0x5a, FL);
	s = dev_op(IBV_WR_RDMA_READ, local, m, FL, mr);
	r[2] = !s && file_is(fd, want, FL, "pread after the file grew") &&
	       t_check(m, want, FL, "CPU after the file grew");
	if (t_odp) {
		r[2] = r[2] && t_check(local, m, FL,
				       "READ against the CPU after the file grew");
	} else {
		/* the device still has the old pages beyond the old end */
		ssize_t d = t_cmp(local + EOF2, want + EOF2, FL - EOF2);

		t_diag("pinned: the device %s beyond the old end of file",
		       d >= 0 ? "reads stale data" : "reads zeros");
		r[2] = r[2] && d >= 0 && t_check(local, want, EOF2,
						 "pinned: READ inside the file");
	}

	/* A WRITE beyond the old end lands in the file. */
	t_fill(local, 5 * T_PAGE + 3, 22);
	s = dev_op(IBV_WR_RDMA_WRITE, local, m + 3 * T_MIB - 1, 5 * T_PAGE + 3,
		   mr);
	if (t_odp) {
		memcpy(want + 3 * T_MIB - 1, local, 5 * T_PAGE + 3);
		r[3] = !s && file_is(fd, want, FL, "pread after a WRITE into the grown file") &&
		       t_check(m, want, FL, "CPU after a WRITE into the grown file");
	} else {
		r[3] = !s && file_is(fd, want, FL,
				     "pinned: pread after a WRITE into the grown file (unchanged)");
	}

	/*
	 * A READ across the end of file: the first response packet goes out,
	 * the second page is beyond the end.  Before the patch "Accept a
	 * NAK in the middle of an RDMA READ response" it never completed: the
	 * requester dropped the responder's NAK as stale and retried forever.
	 */
	if (ftruncate(fd, EOF2))
		t_diag("ftruncate(%lu): %s", EOF2, strerror(errno));
	{
		struct t_rc_pair xp;

		memset(local, 0x5a, 2 * T_PAGE);
		s = t_rc_pair_create(&dev, &xp, NULL) ? -1 :
		    dev_op_on(&xp, IBV_WR_RDMA_READ, local, m + EOF2 - T_PAGE,
			      2 * T_PAGE, mr);
		t_diag("READ across the end of file: %s", t_wc_status_str(s));
		if (t_odp)
			r[4] = s == IBV_WC_REM_ACCESS_ERR;
		else
			r[4] = s == IBV_WC_SUCCESS &&
			       t_check(local, want + EOF2 - T_PAGE, T_PAGE,
				       "pinned: READ across the end, inside");
		t_rc_pair_destroy(&xp);
	}
out_p:
	t_rc_pair_destroy(&in.p);
	t_rc_pair_destroy(&out.p);
out_ep:
	while (nep > 0)
		t_rc_pair_destroy(&ep[--nep]);
out:
	t_dereg_mr(mr);
	if (m)
		munmap(m, FL);
	if (fd >= 0)
		close(fd);
	free(want);
}

int main(int argc, char **argv)
{
	char path[64];
	bool r[5];
	int fd;

	t_init(argc, argv, "ODP MRs over shared file mappings: memfd, tmpfs, truncation");
	t_plan(11);
	if (t_dev_open(&dev))
		t_bail("cannot open the RDMA device");
	local = t_mmap(4 * FL);
	if (!local)
		t_bail("out of memory");
	lmr = t_reg_mr(&dev, local, 4 * FL, T_ACCESS_ALL);
	if (!lmr)
		t_bail("cannot register %s MRs", t_mode());

	fd = memfd_create("odp_file", 0);
	if (fd < 0)
		t_diag("memfd_create: %s", strerror(errno));
	file_case(fd, NULL, r);
	if (fd >= 0)
		close(fd);
	t_result(r[0], "memfd: RDMA WRITEs into cold pages land in the file (pread), READ returns them");
	t_result(r[1], "memfd: RDMA READ returns what pwrite and another mapping wrote");
	t_result(r[2], "memfd: the data survives msync, munmap and a new mapping, an MR there reads and writes it");

	snprintf(path, sizeof(path), "/dev/shm/odp_file.%d", (int)getpid());
	fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0600);
	if (fd < 0)
		t_diag("open(%s): %s", path, strerror(errno));
	file_case(fd, path, r);
	unlink(path);
	t_result(r[0], "tmpfs file: RDMA WRITEs into cold pages land in the file (pread), READ returns them");
	t_result(r[1], "tmpfs file: RDMA READ returns what pwrite and another mapping wrote");
	t_result(r[2], "tmpfs file: the data survives msync, munmap, close, open and a new mapping");

	truncate_case(r);
	if (t_odp) {
		t_result(r[0], "ftruncate under traffic: the stream below the new end never fails, the one beyond it ends with IBV_WC_REM_ACCESS_ERR");
		t_result(r[1], "after ftruncate, a READ and a WRITE beyond the end: IBV_WC_REM_ACCESS_ERR, nothing changed");
		t_result(r[2], "after the file grows again, RDMA READ returns zeros beyond the old end, as the CPU and pread");
		t_result(r[3], "a WRITE into the grown part lands in the file");
		t_result(r[4], "after ftruncate, a READ across the end (one packet inside): IBV_WC_REM_ACCESS_ERR");
	} else {
		t_result(r[0], "pinned contrast: ftruncate under traffic: the stream beyond the new end never fails");
		t_result(r[1], "pinned contrast: after ftruncate, a READ and a WRITE beyond the end succeed");
		t_result(r[2], "pinned contrast: after the file grows again the device reads stale data beyond the old end, the CPU zeros");
		t_result(r[3], "pinned contrast: a WRITE into the grown part never reaches the file");
		t_result(r[4], "pinned contrast: after ftruncate, a READ across the end succeeds");
	}

	t_dereg_mr(lmr);
	t_dev_close(&dev);
	return t_finish();
}
