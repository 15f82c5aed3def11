/* SPDX-License-Identifier: GPL-2.0 WITH Linux-syscall-note */
/*
 * The ioctls of test_odp_mirror.ko, a test device for the notifier core
 * (odp_mirror) without rxe: each open file of /dev/test_odp_mirror is one
 * mirror of a range of the opener's address space.  Shared by the module
 * and tests/core/odp_mirror_tests.c.
 */
#ifndef _TEST_ODP_MIRROR_H
#define _TEST_ODP_MIRROR_H

#include <linux/ioctl.h>
#include <linux/types.h>

/* odp_test_cmd.access: the odp_mirror_fault() access flags */
#define ODP_TEST_ACCESS_READ		0x1
#define ODP_TEST_ACCESS_WRITE		0x2
#define ODP_TEST_ACCESS_NO_FAULT	0x4
#define ODP_TEST_ACCESS_SPECULATIVE	0x8

/* the most that one ODP_TEST_IOC_READ or _WRITE copies */
#define ODP_TEST_COPY_MAX	(64UL << 20)

struct odp_test_cmd {
	__u64 addr;	/* first byte, in the address space of the mirror */
	__u64 length;	/* bytes */
	__u64 ahead;	/* ODP_TEST_IOC_FAULT: bytes hoped for after @length */
	__u64 buf;	/* ODP_TEST_IOC_READ/WRITE: the caller's buffer */
	__u32 access;	/* ODP_TEST_ACCESS_* */
	__u32 pad;	/* 0 */
	__s64 result;	/* out: pages (IOC_FAULT, IOC_PRESENT) */
};

struct odp_test_atomic {
	__u64 addr;	/* 8-byte aligned */
	__u64 compare;	/* compare and swap: the value compared with */
	__u64 swap_add;	/* the value swapped in or added */
	__u64 orig;	/* out: the value found */
	__u32 cmp_swap;	/* 1: compare and swap, 0: fetch and add */
	__u32 pad;	/* 0 */
};

struct odp_test_stats {
	__u64 faults;
	__u64 faulted_pages;
	__u64 invalidations;
	__u64 invalidated_pages;
	__u64 leaves;
	__u64 passes;
	__u64 busy_passes;
	__u64 raced_passes;
	__u64 batch_waits;
};

/* mirror [addr, addr + length) of the caller's address space; once */
#define ODP_TEST_IOC_INIT		_IOW('O', 0x40, struct odp_test_cmd)
/* odp_mirror_fault(); result: pages made accessible */
#define ODP_TEST_IOC_FAULT		_IOWR('O', 0x41, struct odp_test_cmd)
/* copy [addr, addr + length) to buf; EAGAIN if a page has no entry */
#define ODP_TEST_IOC_READ		_IOW('O', 0x42, struct odp_test_cmd)
/* copy buf to [addr, addr + length); EAGAIN if a page is not writable */
#define ODP_TEST_IOC_WRITE		_IOW('O', 0x43, struct odp_test_cmd)
/* result: pages of [addr, addr + length) with an entry granting access */
#define ODP_TEST_IOC_PRESENT		_IOWR('O', 0x44, struct odp_test_cmd)
#define ODP_TEST_IOC_STATS		_IOR('O', 0x45, struct odp_test_stats)
/* odp_mirror_cancel() */
#define ODP_TEST_IOC_CANCEL		_IO('O', 0x46)
/* odp_mirror_atomic64(); EAGAIN if the page is not writable through it */
#define ODP_TEST_IOC_ATOMIC		_IOWR('O', 0x47, struct odp_test_atomic)

#endif /* _TEST_ODP_MIRROR_H */
