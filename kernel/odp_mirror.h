/* SPDX-License-Identifier: GPL-2.0 */
/*
 * odp_mirror: a device-independent mirror of one range of a process
 * address space, for devices that access process memory without pinning
 * it (On-Demand Paging).
 *
 * The mirror keeps a sparse table of translation entries ("the device page
 * table"), one per page, each holding the page and whether the device may
 * read or write it.  Entries are only ever established by odp_mirror_fault()
 * in process context, and only ever removed by the kernel's MMU notifier
 * before the page is unmapped, migrated, swapped, merged or write-protected.
 *
 * Protocol (see mmu_interval_notifier in include/linux/mmu_notifier.h):
 *
 *  - odp_mirror_fault() works in batches.  Each pass over a batch arms it
 *    on @batches (clearing its marks) under @lock, then
 *    mmu_interval_read_begin() waits for any invalidation of the mirror
 *    already under way to end, hmm_range_fault() faults the pages, and the
 *    batch is installed under @lock only if no invalidation marked it
 *    since it was armed.  Invalidations of other parts of the range do
 *    not matter to a batch, so they do not make it retry; this is what
 *    lets a fault make progress while the process keeps changing other
 *    parts of a large MR (and an implicit MR is always being changed
 *    somewhere).
 *
 *  - An invalidation takes @lock, bumps the notifier sequence, marks the
 *    batches it overlaps and clears every entry in its window before it
 *    returns.  Between an invalidation's start and end no new entry can be
 *    installed in the window: a batch armed before the invalidation's
 *    callback ran is marked by it; a batch armed after it waits in
 *    read_begin until the invalidation has ended.
 *
 *  - The data path (which may run in softirq) takes @lock, uses entries and
 *    drops @lock: while it holds the lock no invalidation can complete, so
 *    the pages it uses cannot be freed under it.  It never sleeps; a missing
 *    entry is reported as -EAGAIN and the caller arranges for
 *    odp_mirror_fault() to run in process context.
 *
 * No page reference is taken and nothing is charged to RLIMIT_MEMLOCK: the
 * notifier, not a reference count, keeps the device from using a page that
 * the process no longer has.
 *
 * Aging: each entry has an accessed bit, set when the entry is installed
 * and whenever the data path uses it.  Reclaim asks whether a page was used
 * lately (folio_referenced()) through a notifier per address space shared
 * by its mirrors (odp_aging.c), which test-and-clears the bits, so that
 * pages only the device touches are not taken for idle ones.  Answering
 * never drops a translation.
 */
#ifndef _ODP_MIRROR_H
#define _ODP_MIRROR_H

#include <linux/interval_tree.h>
#include <linux/mmu_notifier.h>
#include <linux/spinlock.h>
#include <linux/wait.h>
#include <linux/xarray.h>

/* Access rights, as requested by a fault and as granted by an entry. */
#define ODP_MIRROR_READ		BIT(0)
#define ODP_MIRROR_WRITE	BIT(1)
/* odp_mirror_fault(): install only pages already present, fault nothing */
#define ODP_MIRROR_NO_FAULT	BIT(2)
/*
 * odp_mirror_fault(): nobody waits for this fault (a prefetch): it skips
 * pages that another fault is faulting, and yields them to a fault that
 * somebody waits for.
 */
#define ODP_MIRROR_SPECULATIVE	BIT(3)

struct odp_mirror_stats {
	u64 faults;		/* hmm_range_fault() calls that installed pages */
	u64 faulted_pages;	/* pages made accessible by them */
	u64 invalidations;	/* invalidation callbacks that hit the mirror */
	u64 invalidated_pages;	/* pages made inaccessible by them */
	u64 leaves;		/* leaf tables allocated now */
	/* where the time of odp_mirror_fault() goes, for slow faults */
	u64 passes;		/* hmm_range_fault() calls */
	u64 busy_passes;	/* given up on for an invalidation elsewhere */
	u64 raced_passes;	/* overlapped by an invalidation */
	u64 lock_wait_us;	/* waiting for the mmap lock */
	u64 hmm_us;		/* inside hmm_range_fault() */
	u64 batch_waits;	/* waits for another faulter's batch */
	u64 batch_wait_us;	/* time in them */
};

struct odp_mirror;
struct odp_aging_mm;

struct odp_mirror_ops {
	/*
	 * Optional: told how many pages an invalidation took away, under the
	 * mirror's lock with interrupts off; must not sleep or take locks.
	 */
	void (*invalidated)(struct odp_mirror *mirror, unsigned long npages);
	/*
	 * Optional: told of each question of reclaim that the mirror
	 * answered, and whether a page asked about was used since the last
	 * question; under the mirror's lock with interrupts off, inside the
	 * page table lock: must not sleep or take locks.
	 */
	void (*aged)(struct odp_mirror *mirror, bool young);
};

struct odp_mirror {
	struct mmu_interval_notifier notifier;
	/* page aligned [start, end) of the mirrored range */
	unsigned long start;
	unsigned long end;
	/*
	 * Serialises entry use and installation against invalidation.  Taken
	 * with interrupts disabled because the data path may run in any
	 * context short of hard interrupts and callers may already have
	 * disabled them.
	 */
	spinlock_t lock;
	/*
	 * One leaf table per naturally aligned 2 MiB of address space that
	 * holds entries or is being faulted, indexed by address >> 21; a leaf
	 * is freed when its last entry goes.  An entry is a struct page
	 * pointer or'ed with ODP_MIRROR_READ/WRITE, 0 if absent; a 2 MiB huge
	 * page is one entry for the whole leaf.  Leaves are looked up and
	 * used, and erased, under @lock only.
	 */
	struct xarray leaves;
	/* batches of odp_mirror_fault() in flight, under @lock */
	struct list_head batches;
	u64 batch_seq;			/* ids of batches, under @lock */
	wait_queue_head_t batch_wq;	/* woken when a batch ends */
	bool cancelled;		/* odp_mirror_cancel() was called */
	struct odp_mirror_stats stats;	/* under @lock */
	const struct odp_mirror_ops *ops;
	/* in the interval tree of the mirrors of the mm, see odp_aging.c */
	struct interval_tree_node aging_node;
	struct odp_aging_mm *aging;
};

int odp_mirror_init(struct odp_mirror *mirror, struct mm_struct *mm,
		    unsigned long addr, unsigned long length,
		    const struct odp_mirror_ops *ops);
void odp_mirror_cancel(struct odp_mirror *mirror);
void odp_mirror_fini(struct odp_mirror *mirror);
void odp_mirror_synchronize(void);

long odp_mirror_fault(struct odp_mirror *mirror, unsigned long addr,
		      unsigned long length, unsigned long ahead,
		      unsigned int access);

int odp_mirror_copy(struct odp_mirror *mirror, unsigned long addr, void *buf,
		    size_t length, bool to_mirror);

int odp_mirror_atomic64(struct odp_mirror *mirror, unsigned long addr,
			bool cmp_swap, u64 compare, u64 swap_add, u64 *orig);

bool odp_mirror_accessible(struct odp_mirror *mirror, unsigned long addr,
			   unsigned int access);

void odp_mirror_get_stats(struct odp_mirror *mirror,
			  struct odp_mirror_stats *stats);

static inline unsigned long odp_mirror_lock(struct odp_mirror *mirror)
	__acquires(&mirror->lock)
{
	unsigned long flags;

	spin_lock_irqsave(&mirror->lock, flags);
	return flags;
}

static inline void odp_mirror_unlock(struct odp_mirror *mirror,
				     unsigned long flags)
	__releases(&mirror->lock)
{
	spin_unlock_irqrestore(&mirror->lock, flags);
}

static inline struct mm_struct *odp_mirror_mm(struct odp_mirror *mirror)
{
	return mirror->notifier.mm;
}

#endif /* _ODP_MIRROR_H */
