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
 * Every test mounts a daemon of its own.  Each of these four is a
 * sequence of steps; the test of a step goes through the steps before it
 * first, and stops at the first that fails.  Teardown lets the daemon
 * answer, lets an owner still running end, and waits for the device's
 * resources to be what they were before the test.
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
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include "odpharness.h"
#include "../fuse/stallfs.h"

#define CHUNK		(256 * T_KIB)
#define WAIT_SECS	20	/* a hang after this long */
#define HOLD_MS		1500	/* how long the daemon holds a read */
/*
 * A test's time limit: a failing run waits up to WAIT_SECS at each of
 * about ten steps (setup, the case, teardown's reap and resource check),
 * and a test the harness kills skips its teardown, which would leave the
 * daemon's mount behind.
 */
#define FUSE_TIMEOUT_S	(12 * WAIT_SECS)

enum how { DESTROY_QP, DEREG, KILLED, DAEMON_DIES };

/*
 * The device and its resources before the test; the daemon and its mount;
 * what the READ through the daemon uses; the owner (a child) and the pipes
 * to it.  Teardown frees whatever the test got to.
 */
FIXTURE(fuse) {
	struct t_dev dev;
	const char *devname;
	struct t_res base;
	char mnt[32];
	char data_path[PATH_MAX], stall_path[PATH_MAX];
	pid_t daemon_pid;
	struct t_rc_pair p;
	struct ibv_mr *lmr, *rmr;
	uint8_t *local, *file;
	int fd;
	pid_t owner;
	int up[2], down[2];
	bool res_checked;	/* the test checked res_back() */
};

ODP_VARIANTS(fuse);

/* ---- the daemon ---------------------------------------------------- */

static int stall_write(FIXTURE_DATA(fuse) *self, const char *what)
{
	int fd = open(self->stall_path, O_WRONLY);
	ssize_t n = -1;

	if (fd >= 0) {
		n = write(fd, what, 1);
		close(fd);
	}
	return n == 1 ? 0 : -1;
}

/* How many reads the daemon holds now, or -1. */
static int stall_waiting(FIXTURE_DATA(fuse) *self)
{
	int fd = open(self->stall_path, O_RDONLY), flag, waiting;
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
static bool wait_held(FIXTURE_DATA(fuse) *self, bool held)
{
	double t0 = t_now();
	int n = -1;

	while (t_now() - t0 < WAIT_SECS) {
		n = stall_waiting(self);
		if (held ? n > 0 : n == 0)
			return true;
		usleep(20000);
	}
	t_diag("the daemon holds %d reads after %d s", n, WAIT_SECS);
	return false;
}

static void daemon_stop(FIXTURE_DATA(fuse) *self)
{
	if (self->daemon_pid > 0) {
		stall_write(self, "0");
		kill(self->daemon_pid, SIGTERM);
		waitpid(self->daemon_pid, NULL, 0);
		self->daemon_pid = -1;
	}
	if (self->mnt[0]) {
		umount2(self->mnt, MNT_DETACH);
		rmdir(self->mnt);
		self->mnt[0] = 0;
	}
}

/* stallfs, next to this program, mounted on a directory of its own. */
static int daemon_start(FIXTURE_DATA(fuse) *self)
{
	char bin[PATH_MAX], *slash;
	struct stat st;
	pid_t parent;
	double t0;
	ssize_t n;

	n = readlink("/proc/self/exe", bin, sizeof(bin) - 1);
	if (n < 0)
		return -1;
	bin[n] = 0;
	slash = strrchr(bin, '/');
	snprintf(slash ? slash + 1 : bin, sizeof(bin) - (slash ? slash + 1 - bin : 0),
		 "stallfs");
	if ((stat("/dev/fuse", &st) || !S_ISCHR(st.st_mode)) &&
	    system("modprobe fuse 2>/dev/null; test -c /dev/fuse"))
		return -1;
	snprintf(self->mnt, sizeof(self->mnt), "/tmp/odp_fuse.XXXXXX");
	if (!mkdtemp(self->mnt)) {
		self->mnt[0] = 0;
		return -1;
	}
	snprintf(self->data_path, sizeof(self->data_path), "%s/data",
		 self->mnt);
	snprintf(self->stall_path, sizeof(self->stall_path), "%s/stall",
		 self->mnt);
	fflush(stdout);
	parent = getpid();
	self->daemon_pid = fork();
	if (self->daemon_pid < 0)
		return -1;
	if (!self->daemon_pid) {
		/*
		 * A daemon that outlives its test would keep the mount, and
		 * the runner's pipe (its stdout), alive.
		 */
		if (prctl(PR_SET_PDEATHSIG, SIGKILL) || getppid() != parent)
			_exit(127);
		execl(bin, bin, self->mnt, (char *)NULL);
		_exit(127);
	}
	for (t0 = t_now(); t_now() - t0 < WAIT_SECS; usleep(20000))
		if (!stat(self->data_path, &st) &&
		    st.st_size == (off_t)STALLFS_SIZE)
			return 0;
	t_diag("%s did not mount %s", bin, self->mnt);
	daemon_stop(self);
	return -1;
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

/* Wait up to WAIT_SECS for the device's resources to be back to base. */
static bool res_back(FIXTURE_DATA(fuse) *self)
{
	double t0 = t_now();
	struct t_res now;

	do {
		if (!t_res_read(self->devname, &now) &&
		    t_res_equal(&now, &self->base))
			return true;
		usleep(50000);
	} while (t_now() - t0 < WAIT_SECS);
	t_diag("resources now: pd %ld cq %ld qp %ld mr %ld ctx %ld; before: pd %ld cq %ld qp %ld mr %ld ctx %ld",
	       now.pd, now.cq, now.qp, now.mr, now.ctx,
	       self->base.pd, self->base.cq, self->base.qp, self->base.mr,
	       self->base.ctx);
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

FIXTURE_SETUP(fuse)
{
	t_variant();
	/* a child that died early is a failed write, not the end of us */
	signal(SIGPIPE, SIG_IGN);
	self->daemon_pid = -1;
	self->owner = -1;
	self->fd = -1;
	self->up[0] = self->up[1] = self->down[0] = self->down[1] = -1;
	/* the tests skip */
	if (!variant->odp || geteuid())
		return;
	self->devname = getenv("RXE_DEV") ? getenv("RXE_DEV") : "rxe0";
	ASSERT_EQ(0, t_dev_open(&self->dev));
	ASSERT_EQ(0, t_res_read(self->devname, &self->base)) {
		TH_LOG("cannot read 'rdma resource show %s'", self->devname);
	}
	ASSERT_EQ(0, daemon_start(self)) {
		TH_LOG("cannot mount stallfs (fuse3, /dev/fuse)");
	}
}

static void close_fd(int *fd)
{
	if (*fd >= 0)
		close(*fd);
	*fd = -1;
}

FIXTURE_TEARDOWN(fuse)
{
	int status;

	if (self->owner > 0) {
		/* the daemon answers, the owner ends (EOF on its pipe) */
		stall_write(self, "0");
		close_fd(&self->down[1]);
		if (!reap(self->owner, &status, WAIT_SECS)) {
			kill(self->owner, SIGKILL);
			waitpid(self->owner, &status, 0);
		}
		self->owner = -1;
	}
	close_fd(&self->up[0]);
	close_fd(&self->up[1]);
	close_fd(&self->down[0]);
	close_fd(&self->down[1]);
	t_dereg_mr(self->rmr);
	t_dereg_mr(self->lmr);
	t_rc_pair_destroy(&self->p);
	if (self->file && self->file != MAP_FAILED)
		munmap(self->file, STALLFS_SIZE);
	close_fd(&self->fd);
	t_munmap(self->local, 2 * T_MIB);
	if ((self->daemon_pid > 0 || self->mnt[0]) && !self->res_checked) {
		stall_write(self, "0");
		/* and nothing is left of the test on the device */
		EXPECT_TRUE(res_back(self));
	}
	daemon_stop(self);
	t_dev_close(&self->dev);
}

/* The tests of stallfs skip in the pinned variant, and without root. */
#define FUSE_SKIP() do {						\
	if (!variant->odp)						\
		SKIP(return, "ODP only");				\
	if (geteuid())							\
		SKIP(return, "needs root");				\
} while (0)

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
 * The child: its own context and QP pair, an ODP MR over the file, a READ
 * of a cold part of it posted.  It reports on @up: 'P' posted, 'Q' QPs
 * destroyed, 'D' MR deregistered, 'C' READ completed ('E' with an error);
 * it waits for 'g' on @down before it goes on.
 */
static int child(const char *data_path, enum how how, uint64_t off, int up,
		 int down)
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

/* Wait up to WAIT_SECS for the device to have @n QPs more than at first. */
static bool qps_left(FIXTURE_DATA(fuse) *self, long n)
{
	double t0 = t_now();
	struct t_res now;

	do {
		if (!t_res_read(self->devname, &now) &&
		    now.qp == self->base.qp + n)
			return true;
		usleep(20000);
	} while (t_now() - t0 < WAIT_SECS);
	t_dump_kernel_stacks("the QP is not destroyed");
	return false;
}

/*
 * The next byte from the owner within @secs is one of @want, or with
 * @want "", none comes.  What came is a diagnostic.
 */
static void expect_byte(struct __test_metadata *_metadata,
			FIXTURE_DATA(fuse) *self, double secs,
			const char *want, const char *fmt, const char *name)
{
	int c = get_byte(self->up[0], secs);
	char what[256];

	snprintf(what, sizeof(what), fmt, name);
	t_diag("%s (%c)", what, c > 0 ? c : '-');
	if (*want) {
		EXPECT_TRUE(c > 0 && strchr(want, c)) {
			TH_LOG("%s: expected one of \"%s\"", what, want);
		}
	} else {
		EXPECT_EQ(-1, c) {
			TH_LOG("%s: expected nothing", what);
		}
	}
}

/*
 * Whether the test ends here: its step (counted from 0) is done, or one
 * before it failed.
 */
#define STEP_ENDS(step, last) ((step)++ == (last) || !_metadata->passed)

/*
 * The owner, in a child, posts a READ of a cold part of the file at @off
 * while the daemon holds every read, and then, as @how says, destroys its
 * QPs, deregisters the MR, is killed or sees the daemon die.  Steps up to
 * and with @last.
 */
static void run(struct __test_metadata *_metadata, FIXTURE_DATA(fuse) *self,
		enum how how, uint64_t off, const char *name, int last)
{
	int status = -1, c, step = 0, err;
	bool held;
	pid_t pid;

	drop_caches();
	ASSERT_EQ(0, stall_write(self, "1")) {
		TH_LOG("%s: cannot set up: %s", name, strerror(errno));
	}
	err = pipe(self->up) ? errno : 0;
	ASSERT_EQ(0, err) {
		TH_LOG("%s: cannot set up: %s", name, strerror(err));
	}
	err = pipe(self->down) ? errno : 0;
	ASSERT_EQ(0, err) {
		TH_LOG("%s: cannot set up: %s", name, strerror(err));
	}
	pid = t_fork_quiet();
	if (!pid) {
		close(self->up[0]);
		close(self->down[1]);
		_exit(child(self->data_path, how, off, self->up[1],
			    self->down[0]));
	}
	self->owner = pid;
	close_fd(&self->up[1]);
	close_fd(&self->down[0]);

	c = get_byte(self->up[0], WAIT_SECS);
	held = c == 'P' && wait_held(self, true);
	t_diag("%s: the READ's page fault %s for the daemon", name,
	       held ? "waits" : "does not wait");
	EXPECT_TRUE(held) {
		TH_LOG("the child said %d", c);
	}
	if (STEP_ENDS(step, last))
		return;
	if (write(self->down[1], "g", 1) != 1)
		t_diag("cannot tell the child to go on");

	if (how != DESTROY_QP) {
		expect_byte(_metadata, self, HOLD_MS / 1000.0, "",
			    "%s: deregistration waits for the fault", name);
		if (STEP_ENDS(step, last))
			return;
	}
	switch (how) {
	case DESTROY_QP:
		c = get_byte(self->up[0], WAIT_SECS);
		t_diag("%s: the kernel destroys the parked responder's QP while the fault blocks (%c)",
		       name, c > 0 ? c : '-');
		EXPECT_EQ('q', c);
		if (c == 'q') {
			EXPECT_TRUE(qps_left(self, 1));
			EXPECT_LT(0, stall_waiting(self));
		}
		if (STEP_ENDS(step, last))
			return;
		/*
		 * rdma-core then unmaps the QP's queues, which waits for the
		 * mmap lock that the fault holds (hmm_range_fault() holds it
		 * while the file system reads the page).
		 */
		stall_write(self, "0");
		expect_byte(_metadata, self, WAIT_SECS, "Q",
			    "%s: ibv_destroy_qp() returns once the daemon answers",
			    name);
		if (STEP_ENDS(step, last))
			return;
		expect_byte(_metadata, self, WAIT_SECS, "D",
			    "%s: then the MR deregisters", name);
		if (STEP_ENDS(step, last))
			return;
		break;
	case DEREG:
		stall_write(self, "0");
		expect_byte(_metadata, self, WAIT_SECS, "D",
			    "%s: deregistration returns once the daemon answers",
			    name);
		if (STEP_ENDS(step, last))
			return;
		expect_byte(_metadata, self, WAIT_SECS, "CE",
			    "%s: the READ completes", name);
		if (STEP_ENDS(step, last))
			return;
		break;
	case KILLED:
		kill(pid, SIGKILL);
		break;
	case DAEMON_DIES:
		kill(self->daemon_pid, SIGKILL);
		waitpid(self->daemon_pid, NULL, 0);
		self->daemon_pid = -1;
		expect_byte(_metadata, self, WAIT_SECS, "D",
			    "%s: deregistration returns once the daemon is dead",
			    name);
		if (STEP_ENDS(step, last))
			return;
		break;
	}
	close_fd(&self->up[0]);
	close_fd(&self->down[1]);

	if (!reap(pid, &status, WAIT_SECS)) {
		t_diag("%s: the owner does not end", name);
		EXPECT_TRUE(false) {
			TH_LOG("%s: the owner ends", name);
		}
		if (STEP_ENDS(step, last))
			return;
	} else {
		self->owner = -1;
		if (how == KILLED) {
			t_diag("%s: the killed owner ends while the fault still blocks (status %#x)",
			       name, status);
			EXPECT_TRUE(WIFSIGNALED(status)) {
				TH_LOG("status %#x", status);
			}
			EXPECT_LT(0, stall_waiting(self));
			if (STEP_ENDS(step, last))
				return;
			stall_write(self, "0");
			EXPECT_TRUE(wait_held(self, false));
			if (STEP_ENDS(step, last))
				return;
		} else {
			t_diag("%s: the owner ends cleanly (status %#x)", name,
			       status);
			EXPECT_TRUE(WIFEXITED(status) &&
				    WEXITSTATUS(status) == 0) {
				TH_LOG("status %#x", status);
			}
			if (STEP_ENDS(step, last))
				return;
		}
	}
	stall_write(self, "0");
	EXPECT_TRUE(res_back(self));
	self->res_checked = true;
}

/*
 * RDMA READ of 2 MiB from an ODP MR over a FUSE file: every byte
 * (faults through the daemon while it answers)
 */
TEST_F_TIMEOUT(fuse, read_through_daemon, FUSE_TIMEOUT_S)
{
	const uint64_t off = 3 * T_MIB + 123;
	const size_t len = 2 * T_MIB;
	int st;

	FUSE_SKIP();
	drop_caches();
	ASSERT_EQ(0, t_rc_pair_create(&self->dev, &self->p, NULL));
	self->fd = open(self->data_path, O_RDONLY);
	ASSERT_LE(0, self->fd);
	self->file = mmap(NULL, STALLFS_SIZE, PROT_READ, MAP_SHARED, self->fd,
			  0);
	ASSERT_NE(MAP_FAILED, self->file);
	self->local = t_mmap(len);
	ASSERT_NE(NULL, self->local);
	self->lmr = t_reg_mr(&self->dev, self->local, len, T_ACCESS_ALL);
	ASSERT_NE(NULL, self->lmr);
	self->rmr = t_reg_mr(&self->dev, self->file, STALLFS_SIZE,
			     IBV_ACCESS_REMOTE_READ);
	ASSERT_NE(NULL, self->rmr);
	st = t_rdma_sync(&self->p, IBV_WR_RDMA_READ, self->local, len,
			 self->lmr->lkey, (uintptr_t)self->file + off,
			 self->rmr->rkey);
	EXPECT_WC(IBV_WC_SUCCESS, st);
	if (st == IBV_WC_SUCCESS) {
		EXPECT_TRUE(check_file_bytes(self->local, off, len));
	}
}

/* ---- QPs destroyed while a fault blocks ---------------------------- */

#define RUN_DESTROY_QP(last) \
	run(_metadata, self, DESTROY_QP, 8 * T_MIB, \
	    "QPs destroyed while a fault blocks", (last))

/* QPs destroyed while a fault blocks: the READ's page fault waits for the daemon */
TEST_F_TIMEOUT(fuse, destroy_qp_fault_waits, FUSE_TIMEOUT_S)
{
	FUSE_SKIP();
	RUN_DESTROY_QP(0);
}

/*
 * QPs destroyed while a fault blocks: the kernel destroys the parked
 * responder's QP while the fault blocks
 */
TEST_F_TIMEOUT(fuse, destroy_qp_while_fault_blocks, FUSE_TIMEOUT_S)
{
	FUSE_SKIP();
	RUN_DESTROY_QP(1);
}

/*
 * QPs destroyed while a fault blocks: ibv_destroy_qp() returns once the
 * daemon answers
 */
TEST_F_TIMEOUT(fuse, destroy_qp_returns_on_answer, FUSE_TIMEOUT_S)
{
	FUSE_SKIP();
	RUN_DESTROY_QP(2);
}

/* QPs destroyed while a fault blocks: then the MR deregisters */
TEST_F_TIMEOUT(fuse, destroy_qp_then_dereg, FUSE_TIMEOUT_S)
{
	FUSE_SKIP();
	RUN_DESTROY_QP(3);
}

/* QPs destroyed while a fault blocks: the owner ends cleanly */
TEST_F_TIMEOUT(fuse, destroy_qp_owner_ends, FUSE_TIMEOUT_S)
{
	FUSE_SKIP();
	RUN_DESTROY_QP(4);
}

/*
 * QPs destroyed while a fault blocks: 'rdma resource show' back to what
 * it was
 */
TEST_F_TIMEOUT(fuse, destroy_qp_resources_back, FUSE_TIMEOUT_S)
{
	FUSE_SKIP();
	RUN_DESTROY_QP(5);
}

/* ---- MR deregistered while a fault blocks -------------------------- */

#define RUN_DEREG(last) \
	run(_metadata, self, DEREG, 16 * T_MIB, \
	    "MR deregistered while a fault blocks", (last))

/* MR deregistered while a fault blocks: the READ's page fault waits for the daemon */
TEST_F_TIMEOUT(fuse, dereg_fault_waits, FUSE_TIMEOUT_S)
{
	FUSE_SKIP();
	RUN_DEREG(0);
}

/* MR deregistered while a fault blocks: deregistration waits for the fault */
TEST_F_TIMEOUT(fuse, dereg_waits_for_fault, FUSE_TIMEOUT_S)
{
	FUSE_SKIP();
	RUN_DEREG(1);
}

/*
 * MR deregistered while a fault blocks: deregistration returns once the
 * daemon answers
 */
TEST_F_TIMEOUT(fuse, dereg_returns_on_answer, FUSE_TIMEOUT_S)
{
	FUSE_SKIP();
	RUN_DEREG(2);
}

/* MR deregistered while a fault blocks: the READ completes */
TEST_F_TIMEOUT(fuse, dereg_read_completes, FUSE_TIMEOUT_S)
{
	FUSE_SKIP();
	RUN_DEREG(3);
}

/* MR deregistered while a fault blocks: the owner ends cleanly */
TEST_F_TIMEOUT(fuse, dereg_owner_ends, FUSE_TIMEOUT_S)
{
	FUSE_SKIP();
	RUN_DEREG(4);
}

/*
 * MR deregistered while a fault blocks: 'rdma resource show' back to
 * what it was
 */
TEST_F_TIMEOUT(fuse, dereg_resources_back, FUSE_TIMEOUT_S)
{
	FUSE_SKIP();
	RUN_DEREG(5);
}

/* ---- owner killed while its deregistration waits ------------------- */

#define RUN_KILLED(last) \
	run(_metadata, self, KILLED, 24 * T_MIB, \
	    "owner killed while its deregistration waits", (last))

/*
 * owner killed while its deregistration waits: the READ's page fault
 * waits for the daemon
 */
TEST_F_TIMEOUT(fuse, killed_fault_waits, FUSE_TIMEOUT_S)
{
	FUSE_SKIP();
	RUN_KILLED(0);
}

/*
 * owner killed while its deregistration waits: deregistration waits for
 * the fault
 */
TEST_F_TIMEOUT(fuse, killed_dereg_waits_for_fault, FUSE_TIMEOUT_S)
{
	FUSE_SKIP();
	RUN_KILLED(1);
}

/*
 * owner killed while its deregistration waits: the killed owner ends
 * while the fault still blocks
 */
TEST_F_TIMEOUT(fuse, killed_owner_ends_while_blocked, FUSE_TIMEOUT_S)
{
	FUSE_SKIP();
	RUN_KILLED(2);
}

/*
 * owner killed while its deregistration waits: the fault ends once the
 * daemon answers
 */
TEST_F_TIMEOUT(fuse, killed_fault_ends_on_answer, FUSE_TIMEOUT_S)
{
	FUSE_SKIP();
	RUN_KILLED(3);
}

/*
 * owner killed while its deregistration waits: 'rdma resource show' back
 * to what it was
 */
TEST_F_TIMEOUT(fuse, killed_resources_back, FUSE_TIMEOUT_S)
{
	FUSE_SKIP();
	RUN_KILLED(4);
}

/* ---- daemon dies while a deregistration waits ---------------------- */

#define RUN_DAEMON_DIES(last) \
	run(_metadata, self, DAEMON_DIES, 32 * T_MIB, \
	    "daemon dies while a deregistration waits", (last))

/*
 * daemon dies while a deregistration waits: the READ's page fault waits
 * for the daemon
 */
TEST_F_TIMEOUT(fuse, daemon_dies_fault_waits, FUSE_TIMEOUT_S)
{
	FUSE_SKIP();
	RUN_DAEMON_DIES(0);
}

/*
 * daemon dies while a deregistration waits: deregistration waits for the
 * fault
 */
TEST_F_TIMEOUT(fuse, daemon_dies_dereg_waits_for_fault, FUSE_TIMEOUT_S)
{
	FUSE_SKIP();
	RUN_DAEMON_DIES(1);
}

/*
 * daemon dies while a deregistration waits: deregistration returns once
 * the daemon is dead
 */
TEST_F_TIMEOUT(fuse, daemon_dies_dereg_returns, FUSE_TIMEOUT_S)
{
	FUSE_SKIP();
	RUN_DAEMON_DIES(2);
}

/* daemon dies while a deregistration waits: the owner ends cleanly */
TEST_F_TIMEOUT(fuse, daemon_dies_owner_ends, FUSE_TIMEOUT_S)
{
	FUSE_SKIP();
	RUN_DAEMON_DIES(3);
}

/*
 * daemon dies while a deregistration waits: 'rdma resource show' back to
 * what it was
 */
TEST_F_TIMEOUT(fuse, daemon_dies_resources_back, FUSE_TIMEOUT_S)
{
	FUSE_SKIP();
	RUN_DAEMON_DIES(4);
}

ODP_HARNESS_MAIN("ODP MRs over a FUSE file whose daemon stalls")
