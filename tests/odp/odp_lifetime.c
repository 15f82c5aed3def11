// SPDX-License-Identifier: GPL-2.0 OR Linux-OpenIB
/*
 * odp_lifetime: ODP MRs going away with traffic in flight.
 *
 * Each test runs its case in a child process with its own device context,
 * which streams RDMA WRITEs and READs into cold memory of ODP MRs (so the
 * QPs park on page faults), and then:
 *  - deregisters the target MR while operations are in flight: every
 *    operation completes (successfully or with an error), nothing hangs;
 *  - exits with its QPs, MRs and context still open;
 *  - is killed with SIGKILL in the middle of the traffic.
 * Two tests per case: one checks how the child ended, the other that the
 * device's resources ('rdma resource show') are back to what they were
 * before the child started; each runs the case itself, and both wait for
 * the resources to come back, so that the next test starts from a quiet
 * device.  The test process itself opens no device.  The kernel log is
 * checked by the test bed: no warning, no splat.
 *
 * How long the child took to end and its resources to go is printed.  Both
 * are bounded only to tell a leak or a hang from a slow teardown (the
 * teardown of a dead owner may run after it was reaped, once the last user
 * of its address space lets go); when either takes more than SLOW_SECS,
 * the kernel stacks of the tasks it may wait for are printed
 * (t_dump_kernel_stacks()), to show where it waits.
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/wait.h>

#include "odpharness.h"

#define LEN	(16 * T_MIB)
#define CHUNK	(64 * T_KIB)
#define INFLIGHT	64
#define SLOW_SECS	10	/* print the kernel stacks after this long */
#define LIMIT_SECS	60	/* a leak or a hang after this long */
/* LIMIT_SECS for the resources, plus the child's own run, with room. */
#define TEST_SECS	180

/* @what is SLOW_SECS late: show where the kernel waits. */
static void slow(const char *what)
{
	char why[128];

	snprintf(why, sizeof(why), "%s after %d s", what, SLOW_SECS);
	t_dump_kernel_stacks(why);
}

/*
 * Wait for the resources of @devname to be back to @base: the teardown
 * of a dead process's context may be asynchronous.
 */
static bool res_back(const char *devname, const struct t_res *base)
{
	double t0 = t_now(), t;
	bool dumped = false;
	struct t_res now;

	for (;;) {
		bool read_ok = !t_res_read(devname, &now);

		t = t_now() - t0;
		if (read_ok && t_res_equal(&now, base)) {
			t_diag("resources back %.1f s after the child ended", t);
			return true;
		}
		if (t > LIMIT_SECS)
			break;
		if (t > SLOW_SECS && !dumped) {
			slow("resources not back");
			dumped = true;
		}
		usleep(100000);
	}
	t_diag("resources now: pd %ld cq %ld qp %ld mr %ld ctx %ld; before: pd %ld cq %ld qp %ld mr %ld ctx %ld",
	       now.pd, now.cq, now.qp, now.mr, now.ctx,
	       base->pd, base->cq, base->qp, base->mr, base->ctx);
	return false;
}

/* Reap @pid, printing the kernel stacks if it takes long to end. */
static pid_t reap(pid_t pid, int *status, double t0, const char *since)
{
	bool dumped = false;
	pid_t ret;

	while (!(ret = waitpid(pid, status, WNOHANG))) {
		if (!dumped && t_now() - t0 > SLOW_SECS) {
			slow("the child has not ended");
			dumped = true;
		}
		usleep(10000);
	}
	t_diag("the child ended %.1f s after %s", t_now() - t0, since);
	return ret;
}

enum how { DEREG_IN_FLIGHT, EXIT_OPEN, KILLED };

/*
 * The child: cold ODP memory on both sides, INFLIGHT operations posted.
 * Exit status: 0 as expected, 1 a setup failure, 2 a hang or a lost
 * completion.
 */
static int child(enum how how, int ready_fd)
{
	struct t_dev dev;
	struct t_rc_pair p;
	struct ibv_mr *lmr, *rmr;
	uint8_t *local, *remote;
	struct ibv_wc wc[INFLIGHT];
	int i, got = 0;

	if (t_dev_open(&dev) || t_rc_pair_create(&dev, &p, NULL))
		return 1;
	local = t_mmap(LEN);
	remote = t_mmap(LEN);
	lmr = local ? t_reg_mr(&dev, local, LEN, T_ACCESS_ALL) : NULL;
	rmr = remote ? t_reg_mr(&dev, remote, LEN, T_ACCESS_ALL) : NULL;
	if (!lmr || !rmr)
		return 1;

	for (i = 0; i < INFLIGHT; i++) {
		size_t off = (size_t)i * (LEN / INFLIGHT);

		if (t_post_rdma(p.qp[0], i & 1 ? IBV_WR_RDMA_READ
					       : IBV_WR_RDMA_WRITE,
				i, local + off, CHUNK, lmr->lkey,
				(uintptr_t)remote + off, rmr->rkey))
			return 1;
	}

	switch (how) {
	case DEREG_IN_FLIGHT:
		if (ibv_dereg_mr(rmr))
			return 1;
		/* every operation completes, with success or an error */
		while (got < INFLIGHT) {
			int n = t_poll(p.scq[0], INFLIGHT - got, wc);

			if (n <= 0)
				return 2;
			got += n;
		}
		t_rc_pair_destroy(&p);
		t_dereg_mr(lmr);
		t_dev_close(&dev);
		return 0;
	case EXIT_OPEN:
		/* leave everything to the kernel's cleanup */
		_exit(0);
	case KILLED:
		/* tell the parent the traffic is running, then wait */
		if (write(ready_fd, "r", 1) != 1)
			return 1;
		pause();
		return 0;
	}
	return 1;
}

/*
 * The device's resources before the case, the pipe on which a child to be
 * killed says that its traffic runs, and the child while it lives.
 */
FIXTURE(lifetime) {
	const char *devname;
	struct t_res base;
	int fds[2];
	pid_t pid;
};

ODP_VARIANTS(lifetime);

FIXTURE_SETUP(lifetime)
{
	t_variant();
	self->fds[0] = -1;
	self->fds[1] = -1;
	self->devname = getenv("RXE_DEV") ? getenv("RXE_DEV") : "rxe0";
	/* read 'rdma resource show' */
	ASSERT_EQ(0, t_res_read(self->devname, &self->base)) {
		TH_LOG("no baseline: 'rdma resource show %s' cannot be read",
		       self->devname);
	}
}

FIXTURE_TEARDOWN(lifetime)
{
	int status;

	if (self->pid > 0) {
		kill(self->pid, SIGKILL);
		waitpid(self->pid, &status, 0);
	}
	if (self->fds[0] >= 0)
		close(self->fds[0]);
	if (self->fds[1] >= 0)
		close(self->fds[1]);
}

/*
 * Run case @how in a child and reap it: its wait status in *@status.
 * Return: whether the resources came back to the baseline.
 */
static bool run(struct __test_metadata *_metadata,
		FIXTURE_DATA(lifetime) *self, enum how how, int *status)
{
	double t0;
	char c;

	*status = -1;
	ASSERT_EQ(0, pipe(self->fds)) {
		TH_LOG("pipe: %s", strerror(errno));
	}
	self->pid = t_fork_quiet();
	if (!self->pid) {
		close(self->fds[0]);
		_exit(child(how, self->fds[1]));
	}
	close(self->fds[1]);
	self->fds[1] = -1;
	t0 = t_now();
	if (how == KILLED) {
		if (read(self->fds[0], &c, 1) == 1)
			usleep(200000);	/* in the middle of the faults */
		t0 = t_now();
		kill(self->pid, SIGKILL);
	}
	close(self->fds[0]);
	self->fds[0] = -1;
	reap(self->pid, status, t0, how == KILLED ? "SIGKILL" : "it started");
	self->pid = 0;
	return res_back(self->devname, &self->base);
}

/*
 * deregister the target MR with 64 operations in flight: child finished
 * cleanly
 */
TEST_F_TIMEOUT(lifetime, dereg_in_flight_child_clean, TEST_SECS)
{
	int status;

	run(_metadata, self, DEREG_IN_FLIGHT, &status);
	EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) {
		TH_LOG("child finished with status %#x", status);
	}
}

/*
 * deregister the target MR with 64 operations in flight: 'rdma resource
 * show' back to baseline
 */
TEST_F_TIMEOUT(lifetime, dereg_in_flight_resources_back, TEST_SECS)
{
	int status;

	EXPECT_TRUE(run(_metadata, self, DEREG_IN_FLIGHT, &status));
}

/*
 * exit with QPs and MRs open and operations in flight: child finished
 * cleanly
 */
TEST_F_TIMEOUT(lifetime, exit_open_child_clean, TEST_SECS)
{
	int status;

	run(_metadata, self, EXIT_OPEN, &status);
	EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) {
		TH_LOG("child finished with status %#x", status);
	}
}

/*
 * exit with QPs and MRs open and operations in flight: 'rdma resource
 * show' back to baseline
 */
TEST_F_TIMEOUT(lifetime, exit_open_resources_back, TEST_SECS)
{
	int status;

	EXPECT_TRUE(run(_metadata, self, EXIT_OPEN, &status));
}

/* SIGKILL of the MR owner mid-traffic: the owner was killed mid-traffic */
TEST_F_TIMEOUT(lifetime, killed_mid_traffic, TEST_SECS)
{
	int status;

	run(_metadata, self, KILLED, &status);
	EXPECT_TRUE(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL) {
		TH_LOG("child ended with status %#x, not by SIGKILL", status);
	}
}

/*
 * SIGKILL of the MR owner mid-traffic: 'rdma resource show' back to
 * baseline
 */
TEST_F_TIMEOUT(lifetime, killed_resources_back, TEST_SECS)
{
	int status;

	EXPECT_TRUE(run(_metadata, self, KILLED, &status));
}

ODP_HARNESS_MAIN("ODP MRs going away with traffic in flight")
