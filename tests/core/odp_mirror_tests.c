// SPDX-License-Identifier: GPL-2.0
/*
 * Tests of the notifier core alone, through test_odp_mirror.ko's device
 * (kernel/odp_mirror_test.c): each test mirrors a piece of its own address
 * space, faults it as a device would, changes the memory the ways the
 * kernel can (munmap, mprotect, MADV_DONTNEED, page migration, fork, THP
 * split) and checks which translations are left and what the device
 * reads through them.  tools/testing/selftests/vm/hmm-tests.c is the
 * model; kselftest_harness.h comes from linux-source-6.1 at build time.
 *
 * In the test guest, as root, with the module loaded:
 *   build/tests/odp_mirror_tests
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "kselftest_harness.h"
#include "test_odp_mirror.h"

#define PAGE		4096UL
#define HUGE		(2UL << 20)
#define NPAGES		512UL		/* the fixture's mirror: 2 MiB */
#define LEN		(NPAGES * PAGE)
#define R		ODP_TEST_ACCESS_READ
#define RW		(ODP_TEST_ACCESS_READ | ODP_TEST_ACCESS_WRITE)
#define DEV		"/dev/test_odp_mirror"
#define MOVE_PAGES_MOVE	2		/* MPOL_MF_MOVE */

/* ---- the device ----------------------------------------------------------- */

static long mirror_op(int fd, unsigned long op, void *addr, size_t length,
		      size_t ahead, unsigned int access, void *buf)
{
	struct odp_test_cmd cmd = {
		.addr = (uintptr_t)addr,
		.length = length,
		.ahead = ahead,
		.buf = (uintptr_t)buf,
		.access = access,
	};

	if (ioctl(fd, op, &cmd))
		return -errno;
	return cmd.result;
}

/* pages made accessible, or -errno */
static long mirror_fault(int fd, void *addr, size_t length, unsigned int access)
{
	return mirror_op(fd, ODP_TEST_IOC_FAULT, addr, length, 0, access, NULL);
}

/* pages of [addr, addr + length) that the device may access so */
static long mirror_present(int fd, void *addr, size_t length,
			   unsigned int access)
{
	return mirror_op(fd, ODP_TEST_IOC_PRESENT, addr, length, 0, access,
			 NULL);
}

/* 0, or -EAGAIN when a page has no translation */
static long mirror_read(int fd, void *addr, size_t length, void *to)
{
	return mirror_op(fd, ODP_TEST_IOC_READ, addr, length, 0, 0, to);
}

static long mirror_write(int fd, void *addr, size_t length, void *from)
{
	return mirror_op(fd, ODP_TEST_IOC_WRITE, addr, length, 0, 0, from);
}

static struct odp_test_stats mirror_stats(int fd)
{
	struct odp_test_stats st;

	memset(&st, 0xff, sizeof(st));
	if (ioctl(fd, ODP_TEST_IOC_STATS, &st))
		memset(&st, 0xff, sizeof(st));
	return st;
}

static int mirror_open(void *addr, size_t length)
{
	int fd = open(DEV, O_RDWR);

	if (fd < 0)
		return -errno;
	if (mirror_op(fd, ODP_TEST_IOC_INIT, addr, length, 0, 0, NULL)) {
		int err = -errno;

		close(fd);
		return err;
	}
	return fd;
}

/* ---- memory --------------------------------------------------------------- */

/* @length bytes at a 2 MiB boundary (a leaf of the mirror's table) */
static uint8_t *map_aligned(size_t length)
{
	uint8_t *p = mmap(NULL, length + HUGE, PROT_READ | PROT_WRITE,
			  MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	uint8_t *a;

	if (p == MAP_FAILED)
		return NULL;
	a = (uint8_t *)(((uintptr_t)p + HUGE - 1) & ~(HUGE - 1));
	if (a > p)
		munmap(p, a - p);
	munmap(a + length, p + HUGE - a);
	return a;
}

/* page i of [p, p + n pages) holds (i * 7 + seed) & 0xff, never 0 */
static void fill(uint8_t *p, size_t npages, unsigned int seed)
{
	size_t i;

	for (i = 0; i < npages; i++)
		memset(p + i * PAGE, (i * 7 + seed) % 255 + 1, PAGE);
}

/* the first page of @got that differs from what fill() wrote, or -1 */
static long first_bad(const uint8_t *got, size_t npages, unsigned int seed)
{
	size_t i, j;

	for (i = 0; i < npages; i++)
		for (j = 0; j < PAGE; j++)
			if (got[i * PAGE + j] != (i * 7 + seed) % 255 + 1)
				return i;
	return -1;
}

/*
 * A page that discard_loop() is writing: zeros after MADV_DONTNEED, with a
 * prefix of one generation's byte (the memset so far).  A page that was
 * freed and used for something else would not look like that.
 */
static bool one_generation(const uint8_t *p)
{
	size_t i = 0;

	while (i < PAGE && p[i] == p[0])
		i++;
	while (i < PAGE && p[i] == 0)
		i++;
	return i == PAGE;
}

static bool all_zero(const uint8_t *p, size_t length)
{
	size_t i;

	for (i = 0; i < length; i++)
		if (p[i])
			return false;
	return true;
}

/* NUMA node of the page at @p, or -errno */
static int page_node(void *p)
{
	int status = -1;

	if (syscall(SYS_move_pages, 0, 1UL, &p, NULL, &status, 0))
		return -errno;
	return status;
}

static bool have_node(int node)
{
	char path[64];

	snprintf(path, sizeof(path), "/sys/devices/system/node/node%d", node);
	return access(path, F_OK) == 0;
}

/* kB of [p, p + length) that /proc/self/smaps reports in huge pages */
static long anon_huge_kb(void *p)
{
	unsigned long lo, hi;
	char line[256];
	long kb = -1;
	bool in = false;
	FILE *f = fopen("/proc/self/smaps", "r");

	if (!f)
		return -1;
	while (fgets(line, sizeof(line), f)) {
		if (sscanf(line, "%lx-%lx ", &lo, &hi) == 2 && strchr(line, '-') &&
		    strchr(line, ':') && line[0] != ' ') {
			in = lo <= (uintptr_t)p && (uintptr_t)p < hi;
			continue;
		}
		if (in && sscanf(line, "AnonHugePages: %ld kB", &kb) == 1)
			break;
	}
	fclose(f);
	return kb;
}

/* ---- the fixture: a 2 MiB mirror of 2 MiB of anonymous memory ------------ */

FIXTURE(mirror) {
	int fd;
	uint8_t *buf;
	uint8_t *copy;
};

FIXTURE_SETUP(mirror)
{
	if (access(DEV, F_OK))
		SKIP(return, "%s: no test_odp_mirror.ko loaded", DEV);
	self->buf = map_aligned(LEN);
	ASSERT_NE(NULL, self->buf);
	ASSERT_EQ(0, madvise(self->buf, LEN, MADV_NOHUGEPAGE));
	fill(self->buf, NPAGES, 1);
	self->copy = malloc(LEN);
	ASSERT_NE(NULL, self->copy);
	self->fd = mirror_open(self->buf, LEN);
	ASSERT_LE(0, self->fd) TH_LOG("open and INIT: %s", strerror(-self->fd));
}

FIXTURE_TEARDOWN(mirror)
{
	if (self->fd > 0)
		close(self->fd);
	free(self->copy);
	if (self->buf)
		munmap(self->buf, LEN);
}

/* Registration establishes nothing; the device cannot read unfaulted pages. */
TEST_F(mirror, nothing_before_fault)
{
	struct odp_test_stats st = mirror_stats(self->fd);

	ASSERT_EQ(0, mirror_present(self->fd, self->buf, LEN, R));
	ASSERT_EQ(-EAGAIN, mirror_read(self->fd, self->buf, PAGE, self->copy));
	ASSERT_EQ(0, st.faults);
	ASSERT_EQ(0, st.leaves);
}

/* A read fault makes exactly the pages asked for readable, counted once. */
TEST_F(mirror, read_fault)
{
	ASSERT_EQ(256, mirror_fault(self->fd, self->buf, 256 * PAGE, R));
	ASSERT_EQ(256, mirror_present(self->fd, self->buf, LEN, R));
	ASSERT_EQ(0, mirror_read(self->fd, self->buf, 256 * PAGE, self->copy));
	ASSERT_EQ(-1, first_bad(self->copy, 256, 1));
	/* present already: a second fault makes nothing new */
	ASSERT_EQ(0, mirror_fault(self->fd, self->buf, 256 * PAGE, R));
	/* the part not faulted stays untranslated */
	ASSERT_EQ(-EAGAIN, mirror_read(self->fd, self->buf + 256 * PAGE, PAGE,
				       self->copy));
	ASSERT_EQ(1, mirror_stats(self->fd).leaves);
}

/* A write through a write fault's entries is what the CPU reads. */
TEST_F(mirror, write_fault)
{
	uint8_t *src = malloc(64 * PAGE);

	ASSERT_NE(NULL, src);
	fill(src, 64, 9);
	ASSERT_EQ(64, mirror_fault(self->fd, self->buf, 64 * PAGE, RW));
	ASSERT_EQ(64, mirror_present(self->fd, self->buf, LEN, RW));
	ASSERT_EQ(0, mirror_write(self->fd, self->buf, 64 * PAGE, src));
	ASSERT_EQ(-1, first_bad(self->buf, 64, 9));
	/* a read-only entry does not take a write */
	ASSERT_EQ(1, mirror_fault(self->fd, self->buf + 64 * PAGE, PAGE, R));
	ASSERT_EQ(0, mirror_present(self->fd, self->buf + 64 * PAGE, PAGE, RW));
	ASSERT_EQ(-EAGAIN, mirror_write(self->fd, self->buf + 64 * PAGE, PAGE,
					src));
	ASSERT_EQ(-1, first_bad(self->buf + 64 * PAGE, 1, 1 + 64 * 7));
	free(src);
}

/*
 * munmap takes the unmapped pages away, and they cannot be faulted; the
 * rest can be faulted again and reads right.  Splitting a VMA that covers
 * the whole 2 MiB around the split point also invalidates those 2 MiB on
 * 6.1 (vma_adjust_trans_huge() -> split_huge_pmd_address() notifies
 * before it looks at the PMD), so more than the hole may go: the notifier
 * contract allows any invalidation to be wider than the change.
 */
TEST_F(mirror, munmap)
{
	struct odp_test_stats before, after;

	ASSERT_EQ(256, mirror_fault(self->fd, self->buf, 256 * PAGE, R));
	before = mirror_stats(self->fd);
	ASSERT_EQ(0, munmap(self->buf + 64 * PAGE, 64 * PAGE));
	after = mirror_stats(self->fd);
	ASSERT_LE(64, after.invalidated_pages - before.invalidated_pages);
	ASSERT_EQ(256 - (after.invalidated_pages - before.invalidated_pages),
		  mirror_present(self->fd, self->buf, LEN, R));
	ASSERT_EQ(0, mirror_present(self->fd, self->buf + 64 * PAGE,
				    64 * PAGE, R));
	ASSERT_EQ(-EFAULT, mirror_fault(self->fd, self->buf + 64 * PAGE, PAGE,
					R));
	ASSERT_EQ(-EFAULT, mirror_fault(self->fd, self->buf, 256 * PAGE, R));
	/* the pages on either side of the hole */
	ASSERT_LE(0, mirror_fault(self->fd, self->buf, 64 * PAGE, R));
	ASSERT_LE(0, mirror_fault(self->fd, self->buf + 128 * PAGE, 128 * PAGE,
				  R));
	ASSERT_EQ(192, mirror_present(self->fd, self->buf, LEN, R));
	ASSERT_EQ(0, mirror_read(self->fd, self->buf, 64 * PAGE, self->copy));
	ASSERT_EQ(-1, first_bad(self->copy, 64, 1));
	ASSERT_EQ(0, mirror_read(self->fd, self->buf + 128 * PAGE, 128 * PAGE,
				 self->copy));
	ASSERT_EQ(-1, first_bad(self->copy, 128, 1 + 128 * 7));
}

/* mprotect(PROT_READ) revokes write; a write fault then fails, a read works. */
TEST_F(mirror, mprotect)
{
	ASSERT_EQ(64, mirror_fault(self->fd, self->buf, 64 * PAGE, RW));
	ASSERT_EQ(0, mprotect(self->buf, 64 * PAGE, PROT_READ));
	ASSERT_EQ(0, mirror_present(self->fd, self->buf, 64 * PAGE, RW));
	ASSERT_EQ(-EAGAIN, mirror_write(self->fd, self->buf, PAGE, self->copy));
	ASSERT_EQ(-EFAULT, mirror_fault(self->fd, self->buf, 64 * PAGE, RW));
	ASSERT_EQ(64, mirror_fault(self->fd, self->buf, 64 * PAGE, R));
	ASSERT_EQ(0, mirror_present(self->fd, self->buf, 64 * PAGE, RW));
	ASSERT_EQ(0, mirror_read(self->fd, self->buf, 64 * PAGE, self->copy));
	ASSERT_EQ(-1, first_bad(self->copy, 64, 1));
	ASSERT_EQ(0, mprotect(self->buf, 64 * PAGE, PROT_NONE));
	ASSERT_EQ(0, mirror_present(self->fd, self->buf, 64 * PAGE, R));
	ASSERT_EQ(-EFAULT, mirror_fault(self->fd, self->buf, PAGE, R));
}

/* After MADV_DONTNEED the device sees the zeros the CPU sees. */
TEST_F(mirror, dontneed)
{
	ASSERT_EQ(64, mirror_fault(self->fd, self->buf, 64 * PAGE, R));
	ASSERT_EQ(0, madvise(self->buf, 64 * PAGE, MADV_DONTNEED));
	ASSERT_EQ(0, mirror_present(self->fd, self->buf, 64 * PAGE, R));
	ASSERT_EQ(64, mirror_fault(self->fd, self->buf, 64 * PAGE, R));
	ASSERT_EQ(0, mirror_read(self->fd, self->buf, 64 * PAGE, self->copy));
	ASSERT_TRUE(all_zero(self->copy, 64 * PAGE));
}

/* A NO_FAULT prefetch installs what is present and faults nothing. */
TEST_F(mirror, no_fault)
{
	long n;

	ASSERT_EQ(0, madvise(self->buf + 32 * PAGE, 32 * PAGE, MADV_DONTNEED));
	n = mirror_fault(self->fd, self->buf, 64 * PAGE,
			 R | ODP_TEST_ACCESS_NO_FAULT);
	ASSERT_EQ(32, n);
	ASSERT_EQ(32, mirror_present(self->fd, self->buf, 32 * PAGE, R));
	ASSERT_EQ(0, mirror_present(self->fd, self->buf + 32 * PAGE, 32 * PAGE,
				    R));
	/* the CPU did not get those pages back either */
	ASSERT_EQ(0, mirror_read(self->fd, self->buf, 32 * PAGE, self->copy));
	ASSERT_EQ(-1, first_bad(self->copy, 32, 1));
}

/* Pages moved to another node lose their entries; the data follows them. */
TEST_F(mirror, migrate)
{
	void *pages[64];
	int nodes[64], status[64];
	int from, to, i;

	if (!have_node(1))
		SKIP(return, "one NUMA node");
	ASSERT_EQ(64, mirror_fault(self->fd, self->buf, 64 * PAGE, R));
	from = page_node(self->buf);
	ASSERT_LE(0, from);
	to = from ? 0 : 1;
	for (i = 0; i < 64; i++) {
		pages[i] = self->buf + i * PAGE;
		nodes[i] = to;
	}
	ASSERT_EQ(0, syscall(SYS_move_pages, 0, 64UL, pages, nodes, status,
			     MOVE_PAGES_MOVE));
	for (i = 0; i < 64; i++)
		ASSERT_EQ(to, status[i]) TH_LOG("page %d not moved", i);
	ASSERT_EQ(0, mirror_present(self->fd, self->buf, 64 * PAGE, R));
	ASSERT_EQ(64, mirror_fault(self->fd, self->buf, 64 * PAGE, R));
	ASSERT_EQ(0, mirror_read(self->fd, self->buf, 64 * PAGE, self->copy));
	ASSERT_EQ(-1, first_bad(self->copy, 64, 1));
}

/* fork write-protects private pages: the writable entries go. */
TEST_F(mirror, fork_cow)
{
	pid_t pid;
	int status;

	ASSERT_EQ(64, mirror_fault(self->fd, self->buf, 64 * PAGE, RW));
	pid = fork();
	ASSERT_LE(0, pid);
	if (pid == 0)
		_exit(0);
	ASSERT_EQ(pid, waitpid(pid, &status, 0));
	ASSERT_EQ(0, mirror_present(self->fd, self->buf, 64 * PAGE, RW));
	/* the write fault breaks COW; the device's write lands in the CPU's page */
	ASSERT_EQ(64, mirror_fault(self->fd, self->buf, 64 * PAGE, RW));
	fill(self->copy, 64, 40);
	ASSERT_EQ(0, mirror_write(self->fd, self->buf, 64 * PAGE, self->copy));
	ASSERT_EQ(-1, first_bad(self->buf, 64, 40));
}

static long mirror_atomic(int fd, void *addr, int cmp_swap, uint64_t compare,
			  uint64_t swap_add, uint64_t *orig)
{
	struct odp_test_atomic at = {
		.addr = (uintptr_t)addr,
		.compare = compare,
		.swap_add = swap_add,
		.cmp_swap = cmp_swap,
	};

	if (ioctl(fd, ODP_TEST_IOC_ATOMIC, &at))
		return -errno;
	*orig = at.orig;
	return 0;
}

/*
 * 8-byte atomics through the entries land in the CPU's page; they need a
 * writable entry, an aligned address inside the mirror.
 */
TEST_F(mirror, atomics)
{
	uint64_t *word = (uint64_t *)(self->buf + 3 * PAGE + 64), orig = 0;

	ASSERT_EQ(-EAGAIN, mirror_atomic(self->fd, word, 0, 0, 1, &orig));
	ASSERT_EQ(1, mirror_fault(self->fd, word, 8, R));
	/* a read-only entry takes no atomic */
	ASSERT_EQ(-EAGAIN, mirror_atomic(self->fd, word, 0, 0, 1, &orig));
	ASSERT_EQ(1, mirror_fault(self->fd, word, 8, RW));
	*word = 40;
	ASSERT_EQ(0, mirror_atomic(self->fd, word, 0, 0, 2, &orig));
	ASSERT_EQ(40, orig);
	ASSERT_EQ(42, *word);
	/* compare and swap: a mismatch changes nothing, a match swaps */
	ASSERT_EQ(0, mirror_atomic(self->fd, word, 1, 41, 7, &orig));
	ASSERT_EQ(42, orig);
	ASSERT_EQ(42, *word);
	ASSERT_EQ(0, mirror_atomic(self->fd, word, 1, 42, 7, &orig));
	ASSERT_EQ(42, orig);
	ASSERT_EQ(7, *word);
	/* the bytes around the word are untouched */
	ASSERT_EQ((3 * 7 + 1) % 255 + 1, self->buf[3 * PAGE + 63]);
	ASSERT_EQ((3 * 7 + 1) % 255 + 1, self->buf[3 * PAGE + 72]);
	ASSERT_EQ(-EINVAL, mirror_atomic(self->fd, (uint8_t *)word + 4, 0, 0,
					 1, &orig));
	ASSERT_EQ(-EFAULT, mirror_atomic(self->fd, self->buf + LEN, 0, 0, 1,
					 &orig));
	ASSERT_EQ(-EFAULT, mirror_atomic(self->fd, self->buf + LEN - 4, 0, 0,
					 1, &orig));
	/* after MADV_DONTNEED the entry is gone: fault again */
	ASSERT_EQ(0, madvise(self->buf, LEN, MADV_DONTNEED));
	ASSERT_EQ(-EAGAIN, mirror_atomic(self->fd, word, 0, 0, 1, &orig));
}

/* After cancel no fault succeeds; what is installed stays readable. */
TEST_F(mirror, cancel)
{
	ASSERT_EQ(8, mirror_fault(self->fd, self->buf, 8 * PAGE, R));
	ASSERT_EQ(0, ioctl(self->fd, ODP_TEST_IOC_CANCEL));
	ASSERT_EQ(-ECANCELED, mirror_fault(self->fd, self->buf + 8 * PAGE,
					   PAGE, R));
	ASSERT_EQ(0, mirror_read(self->fd, self->buf, 8 * PAGE, self->copy));
	ASSERT_EQ(-1, first_bad(self->copy, 8, 1));
}

/* Wrong requests get errors, never a translation. */
TEST_F(mirror, bad_input)
{
	struct odp_test_cmd cmd = { .addr = (uintptr_t)self->buf,
				    .length = PAGE, .access = R, .pad = 1 };

	ASSERT_EQ(-EFAULT, mirror_fault(self->fd, self->buf + LEN, PAGE, R));
	ASSERT_EQ(-EFAULT, mirror_fault(self->fd, self->buf - PAGE, PAGE, R));
	ASSERT_EQ(-EFAULT, mirror_fault(self->fd, self->buf, LEN + PAGE, R));
	ASSERT_EQ(-EFAULT, mirror_fault(self->fd, self->buf, 0, R));
	ASSERT_EQ(-EINVAL, mirror_fault(self->fd, self->buf, PAGE,
					RW | ODP_TEST_ACCESS_NO_FAULT));
	ASSERT_EQ(-EINVAL, mirror_fault(self->fd, self->buf, PAGE,
					ODP_TEST_ACCESS_WRITE));
	ASSERT_EQ(-EINVAL, mirror_fault(self->fd, self->buf, PAGE, R | 0x100));
	ASSERT_EQ(-1, ioctl(self->fd, ODP_TEST_IOC_FAULT, &cmd));
	ASSERT_EQ(EINVAL, errno);
	ASSERT_EQ(-EBUSY, mirror_op(self->fd, ODP_TEST_IOC_INIT, self->buf,
				    LEN, 0, 0, NULL));
	ASSERT_EQ(-E2BIG, mirror_read(self->fd, self->buf,
				      ODP_TEST_COPY_MAX + PAGE, self->copy));
	ASSERT_EQ(-EFAULT, mirror_read(self->fd, self->buf + LEN - PAGE,
				       2 * PAGE, self->copy));
	ASSERT_EQ(-1, ioctl(self->fd, _IO('O', 0x7f)));
	ASSERT_EQ(ENOTTY, errno);
	ASSERT_EQ(0, mirror_present(self->fd, self->buf, LEN, R));
}

/* Mirrors that cannot be: an empty range, one past the address space. */
TEST(bad_init)
{
	int fd = open(DEV, O_RDWR);

	if (fd < 0)
		SKIP(return, "%s: %s", DEV, strerror(errno));
	ASSERT_EQ(-ENXIO, mirror_fault(fd, (void *)PAGE, PAGE, R));
	ASSERT_EQ(-EINVAL, mirror_op(fd, ODP_TEST_IOC_INIT, (void *)PAGE, 0, 0,
				     0, NULL));
	ASSERT_EQ(-EINVAL, mirror_op(fd, ODP_TEST_IOC_INIT, (void *)-PAGE,
				     2 * PAGE, 0, 0, NULL));
	ASSERT_EQ(-EINVAL, mirror_op(fd, ODP_TEST_IOC_INIT, (void *)PAGE,
				     1UL << 60, 0, 0, NULL));
	close(fd);
}

/*
 * A mirror of the whole address space (an implicit MR): registering it
 * costs no table, faulting allocates one leaf per 2 MiB touched, and
 * unmapping gives the leaves back.
 */
TEST(implicit)
{
	const size_t len = 8 * HUGE;
	uint8_t *buf = map_aligned(len), *copy = malloc(PAGE);
	struct odp_test_stats st;
	int fd, i;

	if (access(DEV, F_OK))
		SKIP(return, "%s: no test_odp_mirror.ko loaded", DEV);
	ASSERT_NE(NULL, buf);
	ASSERT_NE(NULL, copy);
	fd = mirror_open(NULL, 0x7ffffffff000UL);
	ASSERT_LE(0, fd);
	ASSERT_EQ(0, mirror_stats(fd).leaves);
	ASSERT_EQ(0, madvise(buf, len, MADV_NOHUGEPAGE));
	for (i = 0; i < 8; i++) {
		fill(buf + i * HUGE, 1, i);
		ASSERT_EQ(1, mirror_fault(fd, buf + i * HUGE, PAGE, R));
	}
	st = mirror_stats(fd);
	ASSERT_EQ(8, st.leaves);
	ASSERT_EQ(0, mirror_read(fd, buf + 5 * HUGE, PAGE, copy));
	ASSERT_EQ(-1, first_bad(copy, 1, 5));
	ASSERT_EQ(0, munmap(buf, len));
	ASSERT_EQ(0, mirror_stats(fd).leaves);
	ASSERT_EQ(-EFAULT, mirror_fault(fd, buf, PAGE, R));
	close(fd);
	free(copy);
}

/*
 * A PMD-mapped huge page is one entry: a fault of one page of it makes the
 * 2 MiB accessible, and splitting it (mprotect of one page) takes the
 * whole entry away.
 */
TEST(thp)
{
	uint8_t *buf = map_aligned(HUGE), *copy = malloc(HUGE);
	struct odp_test_stats before, after;
	long kb;
	int fd;

	if (access(DEV, F_OK))
		SKIP(return, "%s: no test_odp_mirror.ko loaded", DEV);
	ASSERT_NE(NULL, buf);
	ASSERT_NE(NULL, copy);
	ASSERT_EQ(0, madvise(buf, HUGE, MADV_HUGEPAGE));
	fill(buf, NPAGES, 3);
	kb = anon_huge_kb(buf);
	if (kb < 2048)
		SKIP(return, "no transparent huge page (AnonHugePages %ld kB)",
		     kb);
	fd = mirror_open(buf, HUGE);
	ASSERT_LE(0, fd);
	ASSERT_EQ(NPAGES, mirror_fault(fd, buf + 17 * PAGE, PAGE, R));
	ASSERT_EQ(NPAGES, mirror_present(fd, buf, HUGE, R));
	ASSERT_EQ(0, mirror_read(fd, buf, HUGE, copy));
	ASSERT_EQ(-1, first_bad(copy, NPAGES, 3));
	before = mirror_stats(fd);
	ASSERT_EQ(0, mprotect(buf + 100 * PAGE, PAGE, PROT_READ));
	after = mirror_stats(fd);
	ASSERT_EQ(NPAGES, after.invalidated_pages - before.invalidated_pages);
	ASSERT_EQ(0, mirror_present(fd, buf, HUGE, R));
	/* split now: pages come back one by one */
	ASSERT_EQ(1, mirror_fault(fd, buf + 17 * PAGE, PAGE, R));
	ASSERT_EQ(1, mirror_present(fd, buf, HUGE, R));
	close(fd);
	munmap(buf, HUGE);
	free(copy);
}

/* ---- overlapping faulters and racing invalidations ------------------------- */

struct faulter {
	int fd;
	uint8_t *buf;
	long result;
	pthread_barrier_t *go;
};

static void *fault_all(void *arg)
{
	struct faulter *f = arg;

	pthread_barrier_wait(f->go);
	f->result = mirror_fault(f->fd, f->buf, LEN, RW);
	return NULL;
}

/*
 * Four faulters of the same 2 MiB at once: each succeeds, and together
 * they report every page once (a page made accessible by one is not made
 * accessible again by another).
 */
TEST_F(mirror, overlapping_faulters)
{
	struct faulter f[4];
	pthread_barrier_t go;
	pthread_t t[4];
	long sum = 0;
	int i;

	ASSERT_EQ(0, madvise(self->buf, LEN, MADV_DONTNEED));
	ASSERT_EQ(0, pthread_barrier_init(&go, NULL, 4));
	for (i = 0; i < 4; i++) {
		f[i] = (struct faulter){ self->fd, self->buf, 0, &go };
		ASSERT_EQ(0, pthread_create(&t[i], NULL, fault_all, &f[i]));
	}
	for (i = 0; i < 4; i++) {
		pthread_join(t[i], NULL);
		ASSERT_LE(0, f[i].result) TH_LOG("faulter %d: %s", i,
						 strerror(-f[i].result));
		sum += f[i].result;
	}
	pthread_barrier_destroy(&go);
	ASSERT_EQ(NPAGES, sum);
	ASSERT_EQ(NPAGES, mirror_present(self->fd, self->buf, LEN, RW));
	TH_LOG("%llu waits for another faulter's batch",
	       (unsigned long long)mirror_stats(self->fd).batch_waits);
}

struct racer {
	uint8_t *buf;
	int stop;
	int gen;
};

/* Discard the pages and write them again with the next generation. */
static void *discard_loop(void *arg)
{
	struct racer *r = arg;
	int gen;

	while (!__atomic_load_n(&r->stop, __ATOMIC_ACQUIRE)) {
		gen = __atomic_load_n(&r->gen, __ATOMIC_RELAXED) % 250 + 1;
		madvise(r->buf, 64 * PAGE, MADV_DONTNEED);
		memset(r->buf, gen, 64 * PAGE);
		__atomic_store_n(&r->gen, gen, __ATOMIC_RELEASE);
	}
	return NULL;
}

/*
 * Faults racing with invalidations of the same pages: every read through
 * the mirror sees, on each page, one generation of the CPU's writes or
 * the zeros between (never a page that was freed); once the racing stops,
 * a fault gives exactly what the CPU last wrote.
 */
TEST_F_TIMEOUT(mirror, fault_vs_invalidate, 120)
{
	struct racer r = { self->buf, 0, 0 };
	struct odp_test_stats st;
	int i, j, ok = 0, busy = 0;
	pthread_t t;
	long ret;

	ASSERT_EQ(0, pthread_create(&t, NULL, discard_loop, &r));
	for (i = 0; i < 200; i++) {
		ret = mirror_fault(self->fd, self->buf, 64 * PAGE, R);
		if (ret == -EBUSY) {
			busy++;
			continue;
		}
		ASSERT_LE(0, ret) TH_LOG("fault %d: %s", i, strerror(-ret));
		if (mirror_read(self->fd, self->buf, 64 * PAGE, self->copy))
			continue;
		ok++;
		for (j = 0; j < 64; j++) {
			ASSERT_TRUE(one_generation(self->copy + j * PAGE))
				TH_LOG("read %d: page %d is no generation", i, j);
		}
	}
	__atomic_store_n(&r.stop, 1, __ATOMIC_RELEASE);
	pthread_join(t, NULL);
	ASSERT_LE(0, mirror_fault(self->fd, self->buf, 64 * PAGE, R));
	ASSERT_EQ(0, mirror_read(self->fd, self->buf, 64 * PAGE, self->copy));
	ASSERT_EQ(0, memcmp(self->copy, self->buf, 64 * PAGE));
	st = mirror_stats(self->fd);
	TH_LOG("%d reads complete, %d faults busy; %llu passes, %llu raced",
	       ok, busy, (unsigned long long)st.passes,
	       (unsigned long long)st.raced_passes);
}

TEST_HARNESS_MAIN
