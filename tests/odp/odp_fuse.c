// SPDX-License-Identifier: GPL-2.0 OR Linux-OpenIB
/*
 * odp_fuse: ODP MRs over a file whose file system stops answering.
 *
 * The MR mirrors a mapping of a file on a FUSE mount (stallfs, a daemon of
 * our own whose reads can be held on command).  RDMA READs from the MR
 * fault its pages through the daemon: first with the daemon answering
 * (the data is checked byte for byte), then with the daemon holding every
 * read, so that the responder's page fault blocks in the file system for
 * as long as the test says.  While it blocks, the owner of the MR, in a
 * child process:
 *  - destroys its QPs: the kernel destroys them while the fault still
 *    blocks (rdma-core's unmapping of their queues then waits for the
 *    mmap lock, which the fault holds);
 *  - deregisters the MR: that waits for the fault, and returns once the
 *    daemon answers; the READ then completes;
 *  - is killed while its deregistration waits: it ends while the fault
 *    still blocks, and its resources go;
 *  - deregisters the MR and the daemon dies: the fault fails and the
 *    deregistration returns.
 * The kernel log is checked by the test bed: no warning, no splat (before
 * the fault held the MR and the QP, whose destruction waited 50 s, warned
 * and freed them under the fault).
 *
 * Needs root (to mount) and an ODP device; with --pinned there is nothing
 * to test (a pinned MR reads the whole file when it is registered).
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/mman.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include "odptest.h"
#include "../fuse/stallfs.h"

#define CHUNK		(256 * T_KIB)
#define WAIT_SECS	20	/* a hang after this long */
#define HOLD_MS		1500	/* how long the daemon holds a read */
#define PLAN		23

enum how { DESTROY_QP, DEREG, KILLED, DAEMON_DIES };

static char mnt[] = "/tmp/odp_fuse.XXXXXX";
static char data_path[PATH_MAX], stall_path[PATH_MAX];
static pid_t daemon_pid = -1;
static const char *devname;
static struct t_res base;	/* the device's resources before the cases */

/* ---- the daemon ---------------------------------------------------- */

static int stall_write(const char *what)
{
	int fd = open(stall_path, O_WRONLY);
	ssize_t n = -1;

	if (fd >= 0) {
		n = write(fd, what, 1);
		close(fd);
	}
	return n == 1 ? 0 : -1;
}

/* How many reads the daemon holds now, or -1. */
static int stall_waiting(void)
{
	int fd = open(stall_path, O_RDONLY), flag, waiting;
	char line[32];
	ssize_t n = -1;

	if (fd >= 0) {
		n = read(fd, line, sizeof(line) - 1);
		close(fd);
	}
	if (n <= 0)
		return -1;
	line[n] = 0;
	return sscanf(line, "%d %d", &flag, &waiting) == 2 ? waiting : -1;
}

/* Wait up to WAIT_SECS for the daemon to hold (@held) or not a read. */
static bool wait_held(bool held)
{
	double t0 = t_now();
	int n = -1;

	while (t_now() - t0 < WAIT_SECS) {
		n = stall_waiting();
		if (held ? n > 0 : n == 0)
			return true;
		usleep(20000);
	}
	t_diag("the daemon holds %d reads after %d s", n, WAIT_SECS);
	return false;
}

static int daemon_start(const char *self)
{
	char bin[PATH_MAX], *slash;
	struct stat st;
	double t0;

	snprintf(bin, sizeof(bin), "%s", self);
	slash = strrchr(bin, '/');
	snprintf(slash ? slash + 1 : bin, sizeof(bin) - (slash ? slash + 1 - bin : 0),
		 "stallfs");
	if (system("modprobe fuse 2>/dev/null; test -c /dev/fuse"))
		return -1;
	if (!mkdtemp(mnt))
		return -1;
	snprintf(data_path, sizeof(data_path), "%s/data", mnt);
	snprintf(stall_path, sizeof(stall_path), "%s/stall", mnt);
	daemon_pid = fork();
	if (daemon_pid < 0)
		return -1;
	if (!daemon_pid) {
		execl(bin, bin, mnt, (char *)NULL);
		_exit(127);
	}
	for (t0 = t_now(); t_now() - t0 < WAIT_SECS; usleep(20000))
		if (!stat(data_path, &st) && st.st_size == (off_t)STALLFS_SIZE)
			return 0;
	t_diag("%s did not mount %s", bin, mnt);
	return -1;
}

static void daemon_stop(void)
{
	if (daemon_pid > 0) {
		stall_write("0");
		kill(daemon_pid, SIGTERM);
		waitpid(daemon_pid, NULL, 0);
		daemon_pid = -1;
	}
	umount2(mnt, MNT_DETACH);
	rmdir(mnt);
}

/* Drop the file's pages from the page cache, so that reads are cold. */
static void drop_caches(void)
{
	int fd = open("/proc/sys/vm/drop_caches", O_WRONLY);

	if (fd >= 0) {
		if (write(fd, "1", 1) != 1)
			t_diag("drop_caches: %s", strerror(errno));
		close(fd);
	}
}

/* ---- the owner ------------------------------------------------------ */

static bool check_file_bytes(const uint8_t *buf, uint64_t off, size_t len)
{
	size_t i;

	for (i = 0; i < len; i++) {
		if (buf[i] != stallfs_byte(off + i)) {
			t_diag("byte %zu of the file at %#lx: %#x, expected %#x",
			       i, (unsigned long)(off + i), buf[i],
			       stallfs_byte(off + i));
			return false;
		}
	}
	return true;
}

/* Read a byte from @fd within @secs; -1 on timeout or EOF. */
static int get_byte(int fd, double secs)
{
	struct pollfd pfd = { .fd = fd, .events = POLLIN };
	char c;

	if (poll(&pfd, 1, (int)(secs * 1000)) != 1 || read(fd, &c, 1) != 1)
		return -1;
	return c;
}

/*
 * One result: the next byte from @fd within @secs is one of @want, or
 * with @want "", none comes.
 */
static void expect(int fd, double secs, const char *want, const char *fmt,
		   const char *name)
{
	int c = get_byte(fd, secs);
	char what[256];

	snprintf(what, sizeof(what), fmt, name);
	t_result(*want ? c > 0 && strchr(want, c) : c < 0, "%s (%c)", what,
		 c > 0 ? c : '-');
}

/*
 * The child: its own context and QP pair, an ODP MR over the file, a READ
 * of a cold part of it posted.  It reports on @up: 'P' posted, 'Q' QPs
 * destroyed, 'D' MR deregistered, 'C' READ completed ('E' with an error);
 * it waits for 'g' on @down before it goes on.
 */
static int child(enum how how, uint64_t off, int up, int down)
{
	struct t_dev dev;
	struct t_rc_pair p;
	struct ibv_mr *lmr, *rmr;
	struct ibv_wc wc;
	uint8_t *local, *file;
	int fd;

	if (t_dev_open(&dev) || t_rc_pair_create(&dev, &p, NULL))
		return 1;
	fd = open(data_path, O_RDONLY);
	file = fd < 0 ? MAP_FAILED : mmap(NULL, STALLFS_SIZE, PROT_READ,
					  MAP_SHARED, fd, 0);
	local = t_mmap(CHUNK);
	if (file == MAP_FAILED || !local)
		return 1;
	lmr = t_reg_mr(&dev, local, CHUNK, T_ACCESS_ALL);
	rmr = t_reg_mr(&dev, file, STALLFS_SIZE, IBV_ACCESS_REMOTE_READ);
	if (!lmr || !rmr)
		return 1;
	if (t_post_rdma(p.qp[0], IBV_WR_RDMA_READ, 1, local, CHUNK, lmr->lkey,
			(uintptr_t)file + off, rmr->rkey))
		return 1;
	if (write(up, "P", 1) != 1 || get_byte(down, 3 * WAIT_SECS) != 'g')
		return 1;

	if (how == DESTROY_QP) {
		/* the responder first: its task is parked on the fault */
		if (write(up, "q", 1) != 1 || ibv_destroy_qp(p.qp[1]))
			return 1;
		p.qp[1] = NULL;
		t_rc_pair_destroy(&p);
		if (write(up, "Q", 1) != 1)
			return 1;
	}
	if (ibv_dereg_mr(rmr) || write(up, "D", 1) != 1)
		return 1;
	if (how == DEREG) {
		if (t_poll(p.scq[0], 1, &wc) != 1)
			return 2;
		if (write(up, wc.status == IBV_WC_SUCCESS ? "C" : "E", 1) != 1)
			return 1;
		if (wc.status == IBV_WC_SUCCESS &&
		    !check_file_bytes(local, off, CHUNK))
			return 3;
	}
	if (how != DESTROY_QP)
		t_rc_pair_destroy(&p);
	t_dereg_mr(lmr);
	t_dev_close(&dev);
	return 0;
}

/* Wait up to WAIT_SECS for the device's resources to be back to @base. */
static bool res_back(void)
{
	double t0 = t_now();
	struct t_res now;

	do {
		if (!t_res_read(devname, &now) && t_res_equal(&now, &base))
			return true;
		usleep(50000);
	} while (t_now() - t0 < WAIT_SECS);
	t_diag("resources now: pd %ld cq %ld qp %ld mr %ld ctx %ld; before: pd %ld cq %ld qp %ld mr %ld ctx %ld",
	       now.pd, now.cq, now.qp, now.mr, now.ctx,
	       base.pd, base.cq, base.qp, base.mr, base.ctx);
	return false;
}

/* Wait up to WAIT_SECS for the device to have @n QPs more than at first. */
static bool qps_left(long n)
{
	double t0 = t_now();
	struct t_res now;

	do {
		if (!t_res_read(devname, &now) && now.qp == base.qp + n)
			return true;
		usleep(20000);
	} while (t_now() - t0 < WAIT_SECS);
	t_dump_kernel_stacks("the QP is not destroyed");
	return false;
}

static pid_t reap(pid_t pid, int *status, double secs)
{
	double t0 = t_now();
	pid_t ret;

	while (!(ret = waitpid(pid, status, WNOHANG)) && t_now() - t0 < secs)
		usleep(10000);
	if (!ret)
		t_dump_kernel_stacks("the owner has not ended");
	return ret;
}

static void run(enum how how, uint64_t off, const char *name)
{
	int up[2], down[2], status = -1, c;
	pid_t pid;
	bool held;

	drop_caches();
	if (stall_write("1") || pipe(up) || pipe(down))
		t_bail("%s: cannot set up: %s", name, strerror(errno));
	pid = t_fork_quiet();
	if (!pid) {
		close(up[0]);
		close(down[1]);
		_exit(child(how, off, up[1], down[0]));
	}
	close(up[1]);
	close(down[0]);

	c = get_byte(up[0], WAIT_SECS);
	held = c == 'P' && wait_held(true);
	t_result(held, "%s: the READ's page fault waits for the daemon", name);
	if (!held)
		t_diag("the child said %d", c);
	if (write(down[1], "g", 1) != 1)
		t_diag("cannot tell the child to go on");

	if (how != DESTROY_QP)
		expect(up[0], HOLD_MS / 1000.0, "",
		       "%s: deregistration waits for the fault", name);
	switch (how) {
	case DESTROY_QP:
		c = get_byte(up[0], WAIT_SECS);
		t_result(c == 'q' && qps_left(1) && stall_waiting() > 0,
			 "%s: the kernel destroys the parked responder's QP while the fault blocks (%c)",
			 name, c > 0 ? c : '-');
		/*
		 * rdma-core then unmaps the QP's queues, which waits for the
		 * mmap lock that the fault holds (hmm_range_fault() holds it
		 * while the file system reads the page).
		 */
		stall_write("0");
		expect(up[0], WAIT_SECS, "Q",
		       "%s: ibv_destroy_qp() returns once the daemon answers",
		       name);
		expect(up[0], WAIT_SECS, "D", "%s: then the MR deregisters",
		       name);
		break;
	case DEREG:
		stall_write("0");
		expect(up[0], WAIT_SECS, "D",
		       "%s: deregistration returns once the daemon answers",
		       name);
		expect(up[0], WAIT_SECS, "CE", "%s: the READ completes", name);
		break;
	case KILLED:
		kill(pid, SIGKILL);
		break;
	case DAEMON_DIES:
		kill(daemon_pid, SIGKILL);
		waitpid(daemon_pid, NULL, 0);
		daemon_pid = -1;
		expect(up[0], WAIT_SECS, "D",
		       "%s: deregistration returns once the daemon is dead",
		       name);
		break;
	}
	close(up[0]);
	close(down[1]);

	if (!reap(pid, &status, WAIT_SECS)) {
		t_result(false, "%s: the owner ends", name);
		stall_write("0");
		kill(pid, SIGKILL);
		waitpid(pid, &status, 0);
	} else if (how == KILLED) {
		t_result(WIFSIGNALED(status) && stall_waiting() > 0,
			 "%s: the killed owner ends while the fault still blocks (status %#x)",
			 name, status);
		stall_write("0");
		t_result(wait_held(false), "%s: the fault ends once the daemon answers",
			 name);
	} else {
		t_result(WIFEXITED(status) && WEXITSTATUS(status) == 0,
			 "%s: the owner ends cleanly (status %#x)", name, status);
	}
	stall_write("0");
	t_result(res_back(), "%s: 'rdma resource show' back to what it was",
		 name);
}

/* Faults through the daemon while it answers: the data comes through. */
static void read_through(void)
{
	const uint64_t off = 3 * T_MIB + 123;
	const size_t len = 2 * T_MIB;
	struct ibv_mr *lmr = NULL, *rmr = NULL;
	uint8_t *local, *file = MAP_FAILED;
	struct t_rc_pair p;
	struct t_dev dev;
	int fd, st = -1;

	drop_caches();
	if (!t_dev_open(&dev) && !t_rc_pair_create(&dev, &p, NULL)) {
		fd = open(data_path, O_RDONLY);
		if (fd >= 0)
			file = mmap(NULL, STALLFS_SIZE, PROT_READ, MAP_SHARED,
				    fd, 0);
		local = t_mmap(len);
		if (file != MAP_FAILED && local) {
			lmr = t_reg_mr(&dev, local, len, T_ACCESS_ALL);
			rmr = t_reg_mr(&dev, file, STALLFS_SIZE,
				       IBV_ACCESS_REMOTE_READ);
		}
		if (lmr && rmr)
			st = t_rdma_sync(&p, IBV_WR_RDMA_READ, local, len,
					 lmr->lkey, (uintptr_t)file + off,
					 rmr->rkey);
		t_result(st == IBV_WC_SUCCESS && check_file_bytes(local, off, len),
			 "RDMA READ of 2 MiB from an ODP MR over a FUSE file: every byte (status %d)",
			 st);
		t_dereg_mr(rmr);
		t_dereg_mr(lmr);
		t_rc_pair_destroy(&p);
		t_dev_close(&dev);
		return;
	}
	t_result(false, "RDMA READ of 2 MiB from an ODP MR over a FUSE file: set up");
}

int main(int argc, char **argv)
{
	t_init(argc, argv, "ODP MRs over a FUSE file whose daemon stalls");
	devname = getenv("RXE_DEV") ? getenv("RXE_DEV") : "rxe0";
	t_plan(PLAN);
	if (!t_odp || geteuid()) {
		for (int i = 0; i < PLAN; i++)
			t_skip(t_odp ? "needs root" : "ODP only", "case %d", i + 1);
		return t_finish();
	}
	if (t_res_read(devname, &base))
		t_bail("cannot read 'rdma resource show %s'", devname);
	if (daemon_start(argv[0]))
		t_bail("cannot mount stallfs (fuse3, /dev/fuse)");
	read_through();
	run(DESTROY_QP, 8 * T_MIB, "QPs destroyed while a fault blocks");
	run(DEREG, 16 * T_MIB, "MR deregistered while a fault blocks");
	run(KILLED, 24 * T_MIB, "owner killed while its deregistration waits");
	run(DAEMON_DIES, 32 * T_MIB, "daemon dies while a deregistration waits");
	daemon_stop();
	return t_finish();
}
