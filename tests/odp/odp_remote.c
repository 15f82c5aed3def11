// SPDX-License-Identifier: GPL-2.0 OR Linux-OpenIB
/*
 * odp_remote: an ODP MR on one host follows its process's memory while the
 * other host drives the traffic (the two guests of tests/vm/run-pair.sh).
 *
 * B (RXE_ROLE=B) owns the memory: it serves sessions on a TCP control
 * connection of the link, one after the other, each in a process of its
 * own with one buffer under an ODP MR and one RC QP.  A (RXE_ROLE=A, the
 * tests) connects its own QP to B's, moves data with RDMA WRITE and READ,
 * and between transfers has B change the memory: munmap and mmap again,
 * mprotect, MADV_DONTNEED, MADV_FREE, MADV_PAGEOUT (zram swap),
 * move_pages to the other NUMA node, compaction, KSM merging, a THP split
 * and collapse, fork, and ftruncate of a shared file; and once B's process
 * is killed in the middle of a stream.  Data is checked byte for byte at both ends: B compares its
 * memory with what A wrote, A what it read with what B wrote.  A's buffers
 * are ODP MRs too.
 *
 * Control protocol: one line per request, one line per answer, which
 * starts with "ok" or "err".  Every wait is bounded: A's reads of the
 * control connection give up after CTL_TIMEOUT_S, B's session after
 * SESSION_TIMEOUT_S, B's server after SERVER_TIMEOUT_S without a request.
 */
#include <errno.h>
#include <fcntl.h>
#include <numaif.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <linux/kernel-page-flags.h>

#include "odpharness.h"

#ifndef MADV_COLLAPSE
#define MADV_COLLAPSE		25	/* Linux 6.1; glibc 2.36 lacks it */
#endif

#define CTL_PORT		18402
#define LEN			(4 * T_MIB)	/* two huge pages' worth */
#define CTL_TIMEOUT_S		120
#define SESSION_TIMEOUT_S	600
#define SERVER_TIMEOUT_S	900
#define KSM_DIR			"/sys/kernel/mm/ksm/"
#define KSM_WAIT_S		90
#define RES_WAIT_S		20
/* a test's limit: a few 4 MiB transfers, slow under netem loss and TCG */
#define REMOTE_TIMEOUT		120
#define A_PSN			0x1000
#define B_PSN			0x2000

/* ---- the control connection ---------------------------------------------- */

/* Read one line (without its newline) from @fd; false on EOF or error. */
static bool ctl_read(int fd, char *line, size_t size)
{
	size_t n = 0;

	while (n + 1 < size) {
		ssize_t r = read(fd, line + n, 1);

		if (r <= 0)
			return false;
		if (line[n] == '\n')
			break;
		n++;
	}
	line[n] = 0;
	return true;
}

static bool ctl_write(int fd, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
static bool ctl_write(int fd, const char *fmt, ...)
{
	char line[512];
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(line, sizeof(line) - 1, fmt, ap);
	va_end(ap);
	if (n < 0 || n >= (int)sizeof(line) - 1)
		return false;
	line[n++] = '\n';
	return write(fd, line, n) == n;
}

static void gid_hex(const union ibv_gid *gid, char *hex)
{
	int i;

	for (i = 0; i < 16; i++)
		sprintf(hex + 2 * i, "%02x", gid->raw[i]);
}

static bool gid_parse(const char *hex, union ibv_gid *gid)
{
	unsigned int b;
	int i;

	if (strlen(hex) != 32)
		return false;
	for (i = 0; i < 16; i++) {
		if (sscanf(hex + 2 * i, "%2x", &b) != 1)
			return false;
		gid->raw[i] = b;
	}
	return true;
}

/*
 * The bytes at [off, off + len) of the buffer-sized pattern @seed (zeros
 * for seed 0): both ends fill and compare parts of the same whole.
 */
static bool pattern(uint8_t *dst, uint64_t seed, size_t off, size_t len)
{
	uint8_t *whole;

	if (!seed) {
		memset(dst, 0, len);
		return true;
	}
	whole = malloc(LEN);
	if (!whole)
		return false;
	t_fill(whole, LEN, seed);
	memcpy(dst, whole + off, len);
	free(whole);
	return true;
}

/* ---- B: the memory's owner ------------------------------------------------- */

enum mem_kind { MEM_ANON, MEM_THP, MEM_FILE };

struct session {
	struct t_dev dev;
	struct t_rc_pair p;
	struct ibv_mr *mr;
	uint8_t *buf;
	enum mem_kind kind;
	int memfd;
	pid_t child;		/* "fork": the child, which keeps the old pages */
	int to_child[2], from_child[2];
};

static uint8_t *mem_map(enum mem_kind kind, int memfd, void *at)
{
	int flags = at ? MAP_FIXED : 0;
	uint8_t *p;

	if (kind == MEM_FILE)
		return mmap(at, LEN, PROT_READ | PROT_WRITE, MAP_SHARED | flags,
			    memfd, 0);
	if (kind == MEM_ANON)
		return mmap(at, LEN, PROT_READ | PROT_WRITE,
			    MAP_PRIVATE | MAP_ANONYMOUS | flags, -1, 0);
	/* a 2 MiB-aligned range inside a larger reservation */
	p = mmap(NULL, LEN + 2 * T_MIB, PROT_READ | PROT_WRITE,
		 MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (p == MAP_FAILED)
		return p;
	p = (uint8_t *)(((uintptr_t)p + 2 * T_MIB - 1) & ~(2 * T_MIB - 1));
	madvise(p, LEN, MADV_HUGEPAGE);
	return p;
}

/* Compare [off, off + len) with pattern @seed. */
static bool mem_check(const uint8_t *buf, uint64_t seed, size_t off,
		      size_t len, char *why, size_t size)
{
	uint8_t *want = malloc(len);
	ssize_t at;

	if (!want || !pattern(want, seed, off, len)) {
		free(want);
		snprintf(why, size, "out of memory");
		return false;
	}
	at = t_cmp(buf + off, want, len);
	if (at >= 0)
		snprintf(why, size, "mismatch at offset %zu: 0x%02x, expected 0x%02x",
			 off + at, buf[off + at], want[at]);
	free(want);
	return at < 0;
}

/* Pages of the buffer on NUMA node @node; -1 if move_pages() fails. */
static long pages_on(uint8_t *buf, int node, long *unmapped)
{
	long i, n = LEN / T_PAGE, on = 0;
	void **pages = calloc(n, sizeof(*pages));
	int *status = calloc(n, sizeof(*status));

	*unmapped = 0;
	if (!pages || !status) {
		free(pages);
		free(status);
		return -1;
	}
	for (i = 0; i < n; i++)
		pages[i] = buf + i * T_PAGE;
	if (move_pages(0, n, pages, NULL, status, 0)) {
		on = -1;
	} else {
		for (i = 0; i < n; i++) {
			on += status[i] == node;
			*unmapped += status[i] < 0;
		}
	}
	free(pages);
	free(status);
	return on;
}

static long move_all(uint8_t *buf, int node)
{
	long i, n = LEN / T_PAGE, moved = 0;
	void **pages = calloc(n, sizeof(*pages));
	int *nodes = calloc(n, sizeof(*nodes));
	int *status = calloc(n, sizeof(*status));

	if (!pages || !nodes || !status) {
		moved = -1;
		goto out;
	}
	for (i = 0; i < n; i++) {
		pages[i] = buf + i * T_PAGE;
		nodes[i] = node;
	}
	if (move_pages(0, n, pages, nodes, status, MPOL_MF_MOVE) < 0) {
		moved = -1;
		goto out;
	}
	for (i = 0; i < n; i++)
		moved += status[i] == node;
out:
	free(pages);
	free(nodes);
	free(status);
	return moved;
}

/* Pages of the buffer whose page frame has flag @kpf (KPF_KSM, KPF_THP). */
static long flagged_pages(const uint8_t *buf, int kpf)
{
	long i, n = 0;

	for (i = 0; i < (long)(LEN / T_PAGE); i++) {
		uint64_t pfn = t_pfn(buf + i * T_PAGE);

		n += pfn && (t_kpageflags(pfn) >> kpf & 1);
	}
	return n;
}

/* Pages of the buffer whose page frame differs from the one in @pfns. */
static long pfns_moved(const uint8_t *buf, uint64_t *pfns)
{
	long i, n = 0;

	for (i = 0; i < (long)(LEN / T_PAGE); i++) {
		uint64_t pfn = t_pfn(buf + i * T_PAGE);

		n += pfn != pfns[i];
		pfns[i] = pfn;
	}
	return n;
}

/* Fill every page with the same bytes and wait for ksmd to merge them. */
static long ksm_merge(uint8_t *buf)
{
	long i, merged = 0;
	double t0 = t_now();

	t_fill(buf, T_PAGE, 0x45);
	for (i = 1; i < (long)(LEN / T_PAGE); i++)
		memcpy(buf + i * T_PAGE, buf, T_PAGE);
	if (madvise(buf, LEN, MADV_MERGEABLE))
		return -1;
	t_knob_set(KSM_DIR "pages_to_scan", 4000);
	t_knob_set(KSM_DIR "sleep_millisecs", 10);
	if (!t_knob_set(KSM_DIR "run", 1))
		return -1;
	while (t_now() - t0 < KSM_WAIT_S) {
		merged = flagged_pages(buf, KPF_KSM);
		if (merged >= (long)(LEN / T_PAGE) / 2)
			break;
		usleep(200 * 1000);
	}
	return merged;
}

/* The child of "fork": checks what it sees when asked, until EOF. */
static int fork_child(struct session *s)
{
	char line[256], why[160];
	unsigned long long seed;
	size_t off, len;

	close(s->to_child[1]);
	close(s->from_child[0]);
	while (ctl_read(s->to_child[0], line, sizeof(line))) {
		if (sscanf(line, "check %llu %zu %zu", &seed, &off, &len) != 3 ||
		    off > LEN || len > LEN - off) {
			ctl_write(s->from_child[1], "err bad request");
			continue;
		}
		if (mem_check(s->buf, seed, off, len, why, sizeof(why)))
			ctl_write(s->from_child[1], "ok");
		else
			ctl_write(s->from_child[1], "err child: %s", why);
	}
	return 0;
}

/* One request of a session; the answer goes to @fd. */
static void session_request(struct session *s, int fd, char *line)
{
	char cmd[32] = "", arg[64] = "", why[160];
	unsigned long long a1 = 0, a2 = 0, a3 = 0;
	union ibv_gid gid;
	long n, un;

	sscanf(line, "%31s", cmd);
	if (!strcmp(cmd, "setup")) {
		char hex[33];

		if (sscanf(line, "setup %63s", arg) != 1)
			goto bad;
		s->kind = !strcmp(arg, "thp") ? MEM_THP :
			  !strcmp(arg, "file") ? MEM_FILE : MEM_ANON;
		if (s->kind == MEM_FILE) {
			s->memfd = memfd_create("odp_remote", 0);
			if (s->memfd < 0 || ftruncate(s->memfd, LEN)) {
				ctl_write(fd, "err memfd: %s", strerror(errno));
				return;
			}
		}
		s->buf = mem_map(s->kind, s->memfd, NULL);
		if (s->buf == MAP_FAILED) {
			ctl_write(fd, "err mmap: %s", strerror(errno));
			return;
		}
		t_fill(s->buf, LEN, 77);	/* touched: THP, file pages */
		s->mr = t_reg_mr(&s->dev, s->buf, LEN, T_ACCESS_ALL);
		if (!s->mr || t_rc_remote_create(&s->dev, &s->p)) {
			ctl_write(fd, "err MR or QP: %s", strerror(errno));
			return;
		}
		gid_hex(&s->dev.gid, hex);
		ctl_write(fd, "ok %u %s %llx %x", s->p.qp[0]->qp_num, hex,
			  (unsigned long long)(uintptr_t)s->buf, s->mr->rkey);
	} else if (!strcmp(cmd, "connect")) {
		if (sscanf(line, "connect %llu %63s", &a1, arg) != 2 ||
		    !gid_parse(arg, &gid))
			goto bad;
		if (t_rc_remote_connect(&s->dev, &s->p, a1, &gid, B_PSN, A_PSN))
			ctl_write(fd, "err connect: %s", strerror(errno));
		else
			ctl_write(fd, "ok");
	} else if (!strcmp(cmd, "fill") || !strcmp(cmd, "check")) {
		if (sscanf(line, "%*s %llu %llu %llu", &a1, &a2, &a3) != 3 ||
		    a2 > LEN || a3 > LEN - a2)
			goto bad;
		if (cmd[0] == 'f') {
			if (pattern(s->buf + a2, a1, a2, a3))
				ctl_write(fd, "ok");
			else
				ctl_write(fd, "err out of memory");
		} else if (mem_check(s->buf, a1, a2, a3, why, sizeof(why))) {
			ctl_write(fd, "ok");
		} else {
			ctl_write(fd, "err %s", why);
		}
	} else if (!strcmp(cmd, "madvise")) {
		int advice;

		if (sscanf(line, "madvise %63s %llu %llu", arg, &a2, &a3) != 3 ||
		    a2 > LEN || a3 > LEN - a2)
			goto bad;
		if (!strcmp(arg, "pageout")) {
			if (t_pageout(s->buf + a2, a3))
				ctl_write(fd, "err MADV_PAGEOUT: %s", strerror(errno));
			else
				ctl_write(fd, "ok");
			return;
		}
		advice = !strcmp(arg, "dontneed") ? MADV_DONTNEED :
			 !strcmp(arg, "free") ? MADV_FREE : -1;
		if (advice < 0)
			goto bad;
		if (madvise(s->buf + a2, a3, advice))
			ctl_write(fd, "err madvise %s: %s", arg, strerror(errno));
		else
			ctl_write(fd, "ok");
	} else if (!strcmp(cmd, "swapped")) {
		char *state = malloc(LEN / T_PAGE + 1);

		if (!state || t_page_states(s->buf, LEN, state)) {
			free(state);
			ctl_write(fd, "err pagemap");
			return;
		}
		for (n = 0, un = 0; state[un]; un++)
			n += state[un] == 'S';
		free(state);
		ctl_write(fd, "ok %ld", n);
	} else if (!strcmp(cmd, "remap")) {
		if (munmap(s->buf, LEN) ||
		    mem_map(s->kind, s->memfd, s->buf) != s->buf)
			ctl_write(fd, "err remap: %s", strerror(errno));
		else
			ctl_write(fd, "ok");
	} else if (!strcmp(cmd, "mprotect")) {
		if (sscanf(line, "mprotect %63s %llu %llu", arg, &a2, &a3) != 3 ||
		    a2 > LEN || a3 > LEN - a2)
			goto bad;
		if (mprotect(s->buf + a2, a3, strcmp(arg, "r") ?
			     PROT_READ | PROT_WRITE : PROT_READ))
			ctl_write(fd, "err mprotect: %s", strerror(errno));
		else
			ctl_write(fd, "ok");
	} else if (!strcmp(cmd, "move")) {
		if (sscanf(line, "move %llu", &a1) != 1)
			goto bad;
		n = move_all(s->buf, a1);
		if (n < 0)
			ctl_write(fd, "err move_pages: %s", strerror(errno));
		else
			ctl_write(fd, "ok %ld", n);
	} else if (!strcmp(cmd, "on")) {
		if (sscanf(line, "on %llu", &a1) != 1)
			goto bad;
		n = pages_on(s->buf, a1, &un);
		if (n < 0)
			ctl_write(fd, "err move_pages: %s", strerror(errno));
		else
			ctl_write(fd, "ok %ld %ld", n, un);
	} else if (!strcmp(cmd, "ksm")) {
		n = ksm_merge(s->buf);
		if (n < 0)
			ctl_write(fd, "err KSM: %s", strerror(errno));
		else
			ctl_write(fd, "ok %ld", n);
	} else if (!strcmp(cmd, "ksmpages")) {
		ctl_write(fd, "ok %ld", flagged_pages(s->buf, KPF_KSM));
	} else if (!strcmp(cmd, "collapse")) {
		/* khugepaged's work, synchronously (6.1's MADV_COLLAPSE) */
		if (madvise(s->buf, LEN, MADV_COLLAPSE))
			ctl_write(fd, "err MADV_COLLAPSE: %s", strerror(errno));
		else
			ctl_write(fd, "ok %ld", flagged_pages(s->buf, KPF_THP));
	} else if (!strcmp(cmd, "compact")) {
		/* all of memory compacted: how many of ours moved */
		uint64_t *pfns = calloc(LEN / T_PAGE, sizeof(*pfns));

		if (!pfns) {
			ctl_write(fd, "err out of memory");
			return;
		}
		pfns_moved(s->buf, pfns);
		if (!t_knob_set("/proc/sys/vm/compact_memory", 1))
			ctl_write(fd, "err compact_memory");
		else
			ctl_write(fd, "ok %ld", pfns_moved(s->buf, pfns));
		free(pfns);
	} else if (!strcmp(cmd, "fork")) {
		if (pipe(s->to_child) || pipe(s->from_child)) {
			ctl_write(fd, "err pipe: %s", strerror(errno));
			return;
		}
		fflush(stdout);
		s->child = fork();
		if (!s->child)
			_exit(fork_child(s));
		close(s->to_child[0]);
		close(s->from_child[1]);
		ctl_write(fd, s->child > 0 ? "ok" : "err fork");
	} else if (!strcmp(cmd, "childcheck")) {
		char ans[256];

		if (sscanf(line, "childcheck %llu %llu %llu", &a1, &a2, &a3) != 3 ||
		    s->child <= 0)
			goto bad;
		if (!ctl_write(s->to_child[1], "check %llu %llu %llu", a1, a2, a3) ||
		    !ctl_read(s->from_child[0], ans, sizeof(ans)))
			ctl_write(fd, "err the child did not answer");
		else
			ctl_write(fd, "%s", ans);
	} else if (!strcmp(cmd, "truncate")) {
		if (sscanf(line, "truncate %llu", &a1) != 1 || s->memfd < 0)
			goto bad;
		if (ftruncate(s->memfd, a1))
			ctl_write(fd, "err ftruncate: %s", strerror(errno));
		else
			ctl_write(fd, "ok");
	} else if (!strcmp(cmd, "die")) {
		/* the owner killed in the middle of the traffic */
		kill(getpid(), SIGKILL);
	} else {
		goto bad;
	}
	return;
bad:
	ctl_write(fd, "err bad request: %s", line);
}

static int session(int fd)
{
	struct session s = { .memfd = -1 };
	char line[512];

	alarm(SESSION_TIMEOUT_S);
	if (t_dev_open(&s.dev)) {
		ctl_write(fd, "err no device");
		return 1;
	}
	while (ctl_read(fd, line, sizeof(line)))
		session_request(&s, fd, line);
	if (s.child > 0) {
		close(s.to_child[1]);
		waitpid(s.child, NULL, 0);
	}
	t_rc_pair_destroy(&s.p);
	t_dereg_mr(s.mr);
	t_dev_close(&s.dev);
	return 0;
}

/* Are the device's resources back to @base?  Waits up to RES_WAIT_S. */
static bool res_back(const char *dev, const struct t_res *base,
		     struct t_res *now)
{
	double t0 = t_now();

	do {
		if (!t_res_read(dev, now) && t_res_equal(base, now))
			return true;
		usleep(200 * 1000);
	} while (t_now() - t0 < RES_WAIT_S);
	return false;
}

static int serve(void)
{
	const char *self = getenv("RXE_SELF"), *dev = getenv("RXE_DEV") ? : "rxe0";
	struct sockaddr_in sa = { .sin_family = AF_INET,
				  .sin_port = htons(CTL_PORT) };
	struct t_res base, now;
	int ls, one = 1, sessions = 0;
	char line[512];

	if (!self || inet_pton(AF_INET, self, &sa.sin_addr) != 1) {
		fprintf(stderr, "odp_remote: RXE_SELF is not an IPv4 address\n");
		return 64;
	}
	if (t_res_read(dev, &base)) {
		fprintf(stderr, "odp_remote: rdma resource show %s failed\n", dev);
		return 1;
	}
	ls = socket(AF_INET, SOCK_STREAM, 0);
	if (ls < 0 || setsockopt(ls, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) ||
	    bind(ls, (struct sockaddr *)&sa, sizeof(sa)) || listen(ls, 4)) {
		perror("odp_remote: control socket");
		return 1;
	}
	printf("# odp_remote: B serves on %s:%d\n", self, CTL_PORT);
	fflush(stdout);
	for (;;) {
		struct pollfd pfd = { .fd = ls, .events = POLLIN };
		int fd, st;
		pid_t pid;

		if (poll(&pfd, 1, SERVER_TIMEOUT_S * 1000) != 1) {
			printf("# odp_remote: no request for %d s: giving up\n",
			       SERVER_TIMEOUT_S);
			return 1;
		}
		fd = accept(ls, NULL, NULL);
		if (fd < 0)
			continue;
		setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
		if (!ctl_read(fd, line, sizeof(line))) {
			close(fd);
			continue;
		}
		if (!strcmp(line, "quit")) {
			ctl_write(fd, "ok %d sessions", sessions);
			close(fd);
			printf("# odp_remote: %d sessions\n", sessions);
			return 0;
		}
		if (!strcmp(line, "res")) {
			if (res_back(dev, &base, &now))
				ctl_write(fd, "ok");
			else
				ctl_write(fd, "err rdma resources: pd %ld cq %ld qp %ld mr %ld, were %ld %ld %ld %ld",
					  now.pd, now.cq, now.qp, now.mr,
					  base.pd, base.cq, base.qp, base.mr);
			close(fd);
			continue;
		}
		if (strcmp(line, "session")) {
			ctl_write(fd, "err expected session, res or quit");
			close(fd);
			continue;
		}
		sessions++;
		fflush(stdout);
		pid = fork();
		if (!pid) {
			close(ls);
			ctl_write(fd, "ok");
			_exit(session(fd));
		}
		close(fd);
		if (pid > 0 && waitpid(pid, &st, 0) == pid &&
		    WIFSIGNALED(st) && WTERMSIG(st) != SIGKILL)
			printf("# odp_remote: session %d died of signal %d\n",
			       sessions, WTERMSIG(st));
	}
}

/* ---- A: the tests ---------------------------------------------------------- */

/* Connect to B's control port: a session, "res" or "quit". */
static int ctl_connect(void)
{
	const char *peer = getenv("RXE_PEER");
	struct sockaddr_in sa = { .sin_family = AF_INET,
				  .sin_port = htons(CTL_PORT) };
	struct timeval tv = { .tv_sec = CTL_TIMEOUT_S };
	double t0 = t_now();
	int fd, one = 1;

	if (!peer || inet_pton(AF_INET, peer, &sa.sin_addr) != 1)
		return -1;
	do {
		fd = socket(AF_INET, SOCK_STREAM, 0);
		if (fd < 0)
			return -1;
		if (!connect(fd, (struct sockaddr *)&sa, sizeof(sa))) {
			setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
			setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
			return fd;
		}
		close(fd);
		usleep(500 * 1000);
	} while (t_now() - t0 < 60);	/* B may still be starting */
	return -1;
}

/* One request to B and its answer in @ans; true if it starts with "ok". */
static bool ask(int fd, char *ans, size_t size, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));
static bool ask(int fd, char *ans, size_t size, const char *fmt, ...)
{
	char line[512];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	if (!ctl_write(fd, "%s", line) || !ctl_read(fd, ans, size)) {
		snprintf(ans, size, "err no answer from B to '%.200s'", line);
		return false;
	}
	return !strncmp(ans, "ok", 2);
}

/* B does @fmt and must answer ok; else the test fails, saying why. */
#define B_OK(fmt, ...) do {						\
	char __ans[512];						\
	bool __ok = ask(self->fd, __ans, sizeof(__ans), fmt, ##__VA_ARGS__); \
	ASSERT_TRUE(__ok) {						\
		TH_LOG("B: " fmt ": %s", ##__VA_ARGS__, __ans);		\
	}								\
} while (0)

/* B does @fmt and answers "ok N": N goes to @var */
#define B_LONG(var, fmt, ...) do {					\
	char __ans[512];						\
	bool __ok = ask(self->fd, __ans, sizeof(__ans), fmt, ##__VA_ARGS__); \
	ASSERT_TRUE(__ok && sscanf(__ans, "ok %ld", &(var)) == 1) {	\
		TH_LOG("B: " fmt ": %s", ##__VA_ARGS__, __ans);		\
	}								\
} while (0)

FIXTURE(remote) {
	struct t_dev dev;
	struct t_rc_pair p;
	uint8_t *local, *want;
	struct ibv_mr *lmr;
	uint64_t raddr;
	uint32_t rkey;
	int fd;
};

/* Only ODP: B's MR follows B's memory, which is what every case checks. */
FIXTURE_VARIANT(remote) {
	bool odp;
};

FIXTURE_VARIANT_ADD(remote, odp) {
	.odp = true,
};

/* A session with B over memory of @kind, and the QPs connected. */
static void b_session(struct __test_metadata *_metadata,
		      FIXTURE_DATA(remote) *self, const char *kind)
{
	unsigned long long raddr;
	char ans[512], bgid[64], hex[33];
	union ibv_gid gid;
	unsigned int qpn, rkey;

	self->fd = ctl_connect();
	ASSERT_LE(0, self->fd) {
		TH_LOG("cannot reach B's control port (RXE_PEER %s)",
		       getenv("RXE_PEER") ? : "unset");
	}
	B_OK("session");
	ASSERT_TRUE(ask(self->fd, ans, sizeof(ans), "setup %s", kind)) {
		TH_LOG("B: setup %s: %s", kind, ans);
	}
	ASSERT_EQ(4, sscanf(ans, "ok %u %63s %llx %x", &qpn, bgid, &raddr,
			    &rkey));
	ASSERT_TRUE(gid_parse(bgid, &gid));
	self->raddr = raddr;
	self->rkey = rkey;
	ASSERT_EQ(0, t_rc_remote_create(&self->dev, &self->p));
	gid_hex(&self->dev.gid, hex);
	B_OK("connect %u %s", self->p.qp[0]->qp_num, hex);
	ASSERT_EQ(0, t_rc_remote_connect(&self->dev, &self->p, qpn, &gid,
					 A_PSN, B_PSN));
}

FIXTURE_SETUP(remote)
{
	t_variant();
	self->fd = -1;
	if (!getenv("RXE_PEER"))
		SKIP(return, "no peer: runs between two hosts (tests/vm/run-pair.sh)");
	ASSERT_EQ(0, t_dev_open(&self->dev));
	self->local = t_mmap(LEN);
	self->want = t_mmap(LEN);
	ASSERT_TRUE(self->local && self->want);
	self->lmr = t_reg_mr(&self->dev, self->local, LEN, T_ACCESS_ALL);
	ASSERT_NE(NULL, self->lmr);
}

FIXTURE_TEARDOWN(remote)
{
	if (self->fd >= 0)
		close(self->fd);
	t_rc_pair_destroy(&self->p);
	t_dereg_mr(self->lmr);
	t_munmap(self->local, LEN);
	t_munmap(self->want, LEN);
	t_dev_close(&self->dev);
}

#define XFER_MSG	(64 * T_KIB)
#define XFER_DEPTH	16

/*
 * A's RDMA @op of [off, off + len) of B's buffer, as 64 KiB messages with
 * up to 16 in flight (a lost packet costs the rest of its message, so
 * large messages crawl over a lossy link).  Return: IBV_WC_SUCCESS, the
 * first other completion status, or -1 if posting failed or a completion
 * did not come in time.
 */
static int xfer(FIXTURE_DATA(remote) *self, enum ibv_wr_opcode op,
		size_t off, size_t len)
{
	size_t next = off, end = off + len;
	int inflight = 0, status = IBV_WC_SUCCESS;
	struct ibv_wc wc;

	while (next < end || inflight) {
		while (next < end && inflight < XFER_DEPTH &&
		       status == IBV_WC_SUCCESS) {
			uint32_t n = end - next < XFER_MSG ? end - next : XFER_MSG;

			if (t_post_rdma(self->p.qp[0], op, next,
					self->local + next, n, self->lmr->lkey,
					self->raddr + next, self->rkey))
				return -1;
			next += n;
			inflight++;
		}
		if (!inflight)
			break;
		if (t_poll(self->p.scq[0], 1, &wc) != 1) {
			t_stuck_report(&self->p, "overdue");
			return -1;
		}
		inflight--;
		if (wc.status != IBV_WC_SUCCESS && status == IBV_WC_SUCCESS) {
			t_diag("%s at offset %llu: %s",
			       op == IBV_WR_RDMA_READ ? "READ" : "WRITE",
			       (unsigned long long)wc.wr_id,
			       t_wc_status_str(wc.status));
			status = wc.status;
		}
		if (status != IBV_WC_SUCCESS && next < end)
			next = end;	/* post no more */
	}
	return status;
}

/* A writes pattern @seed over [off, off + len) of B's buffer */
#define A_WRITES(seed, off, len) do {					\
	ASSERT_TRUE(pattern(self->local + (off), (seed), (off), (len)));	\
	ASSERT_WC(IBV_WC_SUCCESS, xfer(self, IBV_WR_RDMA_WRITE, (off), (len))); \
} while (0)

/* A reads [off, off + len) and finds pattern @seed there (0: zeros) */
#define A_READS(seed, off, len) do {					\
	memset(self->local + (off), 0xa5, (len));			\
	ASSERT_WC(IBV_WC_SUCCESS, xfer(self, IBV_WR_RDMA_READ, (off), (len))); \
	ASSERT_TRUE(pattern(self->want + (off), (seed), (off), (len)));	\
	EXPECT_BYTES(self->local + (off), self->want + (off), (len),	\
		     "what A read");					\
} while (0)

/* A's WRITE of the page at @off is refused: a remote access error */
#define A_WRITE_REFUSED(seed, off) do {					\
	ASSERT_TRUE(pattern(self->local + (off), (seed), (off), T_PAGE));	\
	EXPECT_WC(IBV_WC_REM_ACCESS_ERR,				\
		  xfer(self, IBV_WR_RDMA_WRITE, (off), T_PAGE));	\
} while (0)

/* A WRITE and a READ back, each checked at the other end */
TEST_F_TIMEOUT(remote, write_read, REMOTE_TIMEOUT)
{
	b_session(_metadata, self, "anon");
	A_WRITES(1, 0, LEN);
	B_OK("check 1 0 %lu", LEN);
	B_OK("fill 2 0 %lu", LEN);
	A_READS(2, 0, LEN);
}

/* MADV_DONTNEED on B: A reads zeros there, and its next WRITE lands */
TEST_F_TIMEOUT(remote, dontneed, REMOTE_TIMEOUT)
{
	b_session(_metadata, self, "anon");
	A_WRITES(3, 0, LEN);
	B_OK("madvise dontneed %lu %lu", LEN / 4, LEN / 2);
	B_OK("check 0 %lu %lu", LEN / 4, LEN / 2);
	A_READS(3, 0, LEN / 4);
	A_READS(0, LEN / 4, LEN / 2);
	A_READS(3, 3 * LEN / 4, LEN / 4);
	A_WRITES(4, 0, LEN);
	B_OK("check 4 0 %lu", LEN);
}

/* MADV_FREE on B, then A's WRITE: the pages B sees are A's data */
TEST_F_TIMEOUT(remote, madv_free, REMOTE_TIMEOUT)
{
	b_session(_metadata, self, "anon");
	A_WRITES(5, 0, LEN);
	B_OK("madvise free 0 %lu", LEN);
	A_WRITES(6, 0, LEN);
	B_OK("madvise pageout 0 %lu", LEN);
	B_OK("check 6 0 %lu", LEN);
	A_READS(6, 0, LEN);
}

/* B unmaps and maps the range again: new zero pages for both ends */
TEST_F_TIMEOUT(remote, munmap_remap, REMOTE_TIMEOUT)
{
	b_session(_metadata, self, "anon");
	A_WRITES(7, 0, LEN);
	B_OK("remap");
	A_READS(0, 0, LEN);
	A_WRITES(8, 0, LEN);
	B_OK("check 8 0 %lu", LEN);
}

/* B write-protects its buffer: A reads it, and A's WRITE is refused */
TEST_F_TIMEOUT(remote, mprotect, REMOTE_TIMEOUT)
{
	b_session(_metadata, self, "anon");
	A_WRITES(9, 0, LEN);
	B_OK("mprotect r 0 %lu", LEN);
	A_READS(9, 0, LEN);
	A_WRITE_REFUSED(10, 0);
	B_OK("check 9 0 %lu", LEN);
}

/* B's pages go to zram swap: A reads them back, and B still has them */
TEST_F_TIMEOUT(remote, pageout, REMOTE_TIMEOUT)
{
	long swapped = -1;

	b_session(_metadata, self, "anon");
	A_WRITES(11, 0, LEN);
	B_OK("madvise pageout 0 %lu", LEN);
	B_LONG(swapped, "swapped");
	/* the device's reference must not keep a page in memory */
	EXPECT_LE(LEN / T_PAGE / 2, swapped) {
		TH_LOG("only %ld of %lu pages went to swap", swapped,
		       LEN / T_PAGE);
	}
	A_READS(11, 0, LEN);
	B_OK("check 11 0 %lu", LEN);
}

/* move_pages() of B's buffer to the other node between transfers */
TEST_F_TIMEOUT(remote, move_pages, REMOTE_TIMEOUT)
{
	char ans[64];
	long moved = -1, on = -1, unmapped = -1;

	b_session(_metadata, self, "anon");
	A_WRITES(12, 0, LEN);
	B_OK("move 1");
	ASSERT_TRUE(ask(self->fd, ans, sizeof(ans), "on 1"));
	ASSERT_EQ(2, sscanf(ans, "ok %ld %ld", &on, &unmapped));
	EXPECT_EQ(LEN / T_PAGE, on) {
		TH_LOG("%ld of %lu pages on node 1", on, LEN / T_PAGE);
	}
	A_READS(12, 0, LEN);
	A_WRITES(13, 0, LEN);
	B_OK("check 13 0 %lu", LEN);
	B_OK("move 0");
	ASSERT_TRUE(ask(self->fd, ans, sizeof(ans), "on 0"));
	ASSERT_EQ(2, sscanf(ans, "ok %ld %ld", &moved, &unmapped));
	EXPECT_EQ(LEN / T_PAGE, moved);
	A_READS(13, 0, LEN);
}

/* KSM merges B's identical pages; A reads them and its WRITE unmerges */
TEST_F_TIMEOUT(remote, ksm, 240)
{
	long merged = -1, still = -1;
	size_t i;

	if (access(KSM_DIR "run", W_OK))
		SKIP(return, "no writable " KSM_DIR "run");
	b_session(_metadata, self, "anon");
	A_WRITES(14, 0, LEN);
	B_LONG(merged, "ksm");
	ASSERT_LE(LEN / T_PAGE / 2, merged) {
		TH_LOG("ksmd merged %ld of %lu pages in %d s", merged,
		       LEN / T_PAGE, KSM_WAIT_S);
	}
	memset(self->local, 0, LEN);
	ASSERT_WC(IBV_WC_SUCCESS, xfer(self, IBV_WR_RDMA_READ, 0, LEN));
	t_fill(self->want, T_PAGE, 0x45);
	for (i = 0; i < LEN / T_PAGE; i++)
		ASSERT_BYTES(self->local + i * T_PAGE, self->want, T_PAGE,
			     "a merged page as A read it");
	A_WRITES(15, 0, LEN);
	B_OK("check 15 0 %lu", LEN);
	B_LONG(still, "ksmpages");
	EXPECT_EQ(0, still);
}

/* B's transparent huge pages split under a partial mprotect */
TEST_F_TIMEOUT(remote, thp_split, REMOTE_TIMEOUT)
{
	b_session(_metadata, self, "thp");
	A_WRITES(16, 0, LEN);
	B_OK("mprotect r %lu %lu", T_MIB, T_PAGE);
	A_READS(16, 0, LEN);
	B_OK("mprotect rw %lu %lu", T_MIB, T_PAGE);
	A_WRITES(17, 0, LEN);
	B_OK("check 17 0 %lu", LEN);
}

/* B's split huge pages collapse again (MADV_COLLAPSE) between transfers */
TEST_F_TIMEOUT(remote, thp_collapse, REMOTE_TIMEOUT)
{
	long huge = -1;

	b_session(_metadata, self, "thp");
	A_WRITES(23, 0, LEN);
	B_OK("mprotect r %lu %lu", T_MIB, T_PAGE);
	B_OK("mprotect rw %lu %lu", T_MIB, T_PAGE);
	A_READS(23, 0, LEN);
	B_LONG(huge, "collapse");
	EXPECT_EQ(LEN / T_PAGE, huge) {
		TH_LOG("%ld of %lu pages in huge pages after MADV_COLLAPSE",
		       huge, LEN / T_PAGE);
	}
	A_READS(23, 0, LEN);
	A_WRITES(24, 0, LEN);
	B_OK("check 24 0 %lu", LEN);
}

/* B's memory compacted between transfers */
TEST_F_TIMEOUT(remote, compaction, REMOTE_TIMEOUT)
{
	long moved = -1;

	b_session(_metadata, self, "anon");
	A_WRITES(25, 0, LEN);
	B_LONG(moved, "compact");
	t_diag("compaction moved %ld of B's %lu pages", moved, LEN / T_PAGE);
	A_READS(25, 0, LEN);
	A_WRITES(26, 0, LEN);
	B_OK("check 26 0 %lu", LEN);
}

/* B forks: A's WRITE lands in B (the parent); the child keeps the old */
TEST_F_TIMEOUT(remote, fork, REMOTE_TIMEOUT)
{
	b_session(_metadata, self, "anon");
	A_WRITES(18, 0, LEN);
	B_OK("fork");
	A_WRITES(19, 0, LEN);
	B_OK("check 19 0 %lu", LEN);
	B_OK("childcheck 18 0 %lu", LEN);
	A_READS(19, 0, LEN);
}

/* B truncates its shared file: A can no longer write past the end */
TEST_F_TIMEOUT(remote, ftruncate, REMOTE_TIMEOUT)
{
	b_session(_metadata, self, "file");
	A_WRITES(20, 0, LEN);
	B_OK("check 20 0 %lu", LEN);
	B_OK("truncate %lu", LEN / 2);
	A_READS(20, 0, LEN / 2);
	A_WRITE_REFUSED(21, 3 * LEN / 4);
}

#define KILL_WRS	64
#define KILL_MSG	(64 * T_KIB)

/*
 * B's process is killed while A streams WRITEs into its MR: every WRITE
 * completes (the ones after the kill with an error, none hangs), and B's
 * device gives back everything the process had
 */
TEST_F_TIMEOUT(remote, owner_killed, 120)
{
	struct ibv_wc wc[KILL_WRS];
	int i, n, errors = 0, first = 0, fd;
	char ans[256];

	b_session(_metadata, self, "anon");
	t_fill(self->local, LEN, 22);
	for (i = 0; i < KILL_WRS; i++)
		ASSERT_EQ(0, t_post_rdma(self->p.qp[0], IBV_WR_RDMA_WRITE, i,
					 self->local + i * KILL_MSG % LEN,
					 KILL_MSG, self->lmr->lkey,
					 self->raddr + i * KILL_MSG % LEN,
					 self->rkey));
	ctl_write(self->fd, "die");
	n = t_poll(self->p.scq[0], KILL_WRS, wc);
	EXPECT_EQ(KILL_WRS, n) {
		TH_LOG("%d of %d WRITEs completed", n, KILL_WRS);
	}
	for (i = 0; i < n; i++)
		if (wc[i].status != IBV_WC_SUCCESS && !errors++)
			first = wc[i].status;
	t_diag("%d WRITEs succeeded, %d failed (first error: %s)",
	       n - errors, errors, errors ? t_wc_status_str(first) : "none");
	EXPECT_LT(0, errors);
	fd = ctl_connect();
	ASSERT_LE(0, fd);
	EXPECT_TRUE(ask(fd, ans, sizeof(ans), "res")) {
		TH_LOG("B: %s", ans);
	}
	close(fd);
}

int main(int argc, char **argv)
{
	const char *role = getenv("RXE_ROLE");
	char ans[64];
	int fd, ret;

	(void)test_harness_run;
	if (role && !strcmp(role, "B"))
		return serve();
	t_init(argc, argv, "an ODP MR on one host under memory changes, traffic from the other");
	/* A QP whose peer is gone retries for 7 x 67 ms, longer under loss */
	ret = odp_harness_run(argv[0]);
	if (getenv("RXE_PEER")) {
		fd = ctl_connect();
		if (fd < 0 || !ask(fd, ans, sizeof(ans), "quit"))
			printf("# odp_remote: B did not take 'quit'\n");
		if (fd >= 0)
			close(fd);
	}
	return ret;
}
