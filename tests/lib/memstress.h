/* SPDX-License-Identifier: GPL-2.0 OR Linux-OpenIB */
/*
 * memstress: move a process's memory about while a device uses it.
 *
 * A thread of the process that owns a buffer keeps doing, to the range it
 * is told is in use, what the kernel does to memory behind a device's back:
 *
 *   migrate  move_pages() of each 1 MiB chunk to the other NUMA node
 *   pageout  MADV_PAGEOUT of each chunk (to zram swap; the next access
 *            brings it back)
 *   ksm      the buffer is MADV_MERGEABLE and ksmd scans it fast;
 *            ms_ksm_merge() waits until a range is merged
 *
 * Counts of what actually happened are kept, so that a test can assert that
 * the stress it asked for took place (a page that was never moved proves
 * nothing).  Used by the engine checkers (tests/engines/), whose data moves
 * through UCX and MPI rather than through our own verbs calls.
 */
#ifndef MEMSTRESS_H
#define MEMSTRESS_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>

enum {
	MS_MIGRATE	= 1,
	MS_PAGEOUT	= 2,
	MS_KSM		= 4,
};

struct ms_counts {
	long migrated;		/* pages move_pages() put on the other node */
	long migrate_calls;
	long pageout_calls;	/* MADV_PAGEOUT calls that succeeded */
	long swapped_out;	/* /proc/vmstat pswpout over the run */
	long swapped_in;	/* pswpin over the run */
	long ksm_merged;	/* pages ms_ksm_merge() saw merged, summed */
};

struct memstress {
	int kinds;
	pthread_t thread;
	pthread_mutex_t lock;
	char *base;		/* the range in use (under @lock) */
	size_t len;
	bool stop, running;
	struct ms_counts c;
	long pswpout0, pswpin0;
	long ksm_saved[3];	/* run, pages_to_scan, sleep_millisecs */
};

/* "none" or a comma-separated list of migrate, pageout, ksm; -1 if bad. */
int ms_parse(const char *s);
/* The names of @kinds, for messages ("none" for 0). */
const char *ms_names(int kinds);

/*
 * Start stressing @kinds over the ranges later passed to ms_set_range(),
 * which must lie in [@buf, @buf + @len).  KSM: marks the buffer mergeable
 * and makes ksmd fast (restored by ms_stop()).  Returns 0, or -1 with a
 * TAP diagnostic (no second NUMA node, no KSM, ...).
 */
int ms_start(struct memstress *m, int kinds, void *buf, size_t len);
/*
 * The range the device is about to use (len 0: none), widened to whole
 * pages, which must still lie in the buffer (it does if the buffer is
 * page-aligned and a whole number of pages).
 */
void ms_set_range(struct memstress *m, void *p, size_t len);
/*
 * KSM: wait (at most @timeout_s) until at least 90 % of the pages of
 * [@p, @p + @len) map a KSM page; they must have equal contents.  Returns
 * the number of merged pages seen (also added to the counts).
 */
long ms_ksm_merge(struct memstress *m, void *p, size_t len, int timeout_s);
/* Stop the thread, restore KSM, and give what happened. */
void ms_stop(struct memstress *m, struct ms_counts *out);

#endif
