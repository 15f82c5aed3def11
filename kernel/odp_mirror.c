// SPDX-License-Identifier: GPL-2.0
/*
 * odp_mirror: device-independent mirror of a process address range built
 * on mmu_interval_notifier and hmm_range_fault().  See odp_mirror.h for the
 * protocol.
 */

#include <linux/highmem.h>
#include <linux/hmm.h>
#include <linux/mempolicy.h>
#include <linux/mm.h>
#include <linux/module.h>
#include <linux/pagemap.h>
#include <linux/sched/mm.h>
#include <linux/sched/task.h>
#include <linux/slab.h>

#include "odp_mirror.h"
#include "odp_aging.h"

/*
 * A leaf is one page of entries and maps one naturally aligned 2 MiB
 * (with 4 KiB pages) of address space.  Leaves are indexed by absolute
 * address, so that a PMD-mapped huge page is exactly one leaf: it is then
 * kept as a single entry, leaf->entry[0] with ODP_MIRROR_HUGE set, naming
 * the first page of the 2 MiB and the access it grants.
 */
#define ODP_MIRROR_LEAF_SHIFT	(PAGE_SHIFT - ilog2(sizeof(unsigned long)))
#define ODP_MIRROR_LEAF_ENTRIES	BIT(ODP_MIRROR_LEAF_SHIFT)
#define ODP_MIRROR_SPAN_SHIFT	(PAGE_SHIFT + ODP_MIRROR_LEAF_SHIFT)
#define ODP_MIRROR_SPAN		BIT(ODP_MIRROR_SPAN_SHIFT)
#define ODP_MIRROR_ACCESS_MASK	(ODP_MIRROR_READ | ODP_MIRROR_WRITE)
#define ODP_MIRROR_HUGE		BIT(2)	/* struct page is 8-byte aligned */
#define ODP_MIRROR_FLAGS_MASK	(ODP_MIRROR_ACCESS_MASK | ODP_MIRROR_HUGE)

/*
 * Off, every batch faults its whole range by itself, whatever is present
 * already and whoever else faults the same pages: what odp_batch_arm()
 * prevents, kept so that its effect can be measured against its absence.
 */
static bool odp_fault_sharing = true;
module_param(odp_fault_sharing, bool, 0644);
MODULE_PARM_DESC(odp_fault_sharing,
		 "Let overlapping On-Demand Paging faults share their work (default: true)");

struct odp_mirror_leaf {
	unsigned long *entry;	/* one page: ODP_MIRROR_LEAF_ENTRIES entries */
	unsigned int used;	/* entries that are not 0 */
	/*
	 * The accessed bit of each entry (of the whole leaf in bit 0 for a
	 * huge entry): set when the entry is installed or used, cleared when
	 * reclaim asks (odp_mirror_age()) and when the entry goes.  Only
	 * written under the mirror's lock.
	 */
	DECLARE_BITMAP(young, ODP_MIRROR_LEAF_ENTRIES);
};

/*
 * A batch of odp_mirror_fault(): pages [start, end) inside one leaf, on
 * the mirror's list of batches while hmm_range_fault() runs for them, so
 * that an invalidation can tell them apart from the rest of the range.
 */
struct odp_mirror_batch {
	struct list_head node;
	unsigned long start;
	unsigned long end;
	u64 id;			/* for waiters, which do not hold the batch */
	bool raced;		/* an invalidation overlapped [start, end) */
	bool leaf_raced;	/* one overlapped the leaf of the batch */
	bool write;		/* it faults for write */
	bool no_fault;		/* it only installs pages already present */
	/* nobody waits for it (the part ahead, a read-ahead, a prefetch) */
	bool speculative;
	bool yield;		/* a fault somebody waits for wants its pages */
};

static_assert(ODP_MIRROR_LEAF_ENTRIES * sizeof(unsigned long) == PAGE_SIZE);
static_assert(__alignof__(struct page) > ODP_MIRROR_FLAGS_MASK);

static inline unsigned long odp_leaf_index(unsigned long addr)
{
	return addr >> ODP_MIRROR_SPAN_SHIFT;
}

static inline unsigned long odp_entry_index(unsigned long addr)
{
	return (addr >> PAGE_SHIFT) & (ODP_MIRROR_LEAF_ENTRIES - 1);
}

/* The leaf for @addr, or NULL; called with the lock held. */
static struct odp_mirror_leaf *odp_leaf_find(struct odp_mirror *mirror,
					     unsigned long addr)
{
	return xa_load(&mirror->leaves, odp_leaf_index(addr));
}

static void odp_leaf_free(struct odp_mirror_leaf *leaf)
{
	free_page((unsigned long)leaf->entry);
	kfree(leaf);
}

/*
 * Make sure that the leaf for @addr exists; process context only.  The
 * caller has armed a batch in that leaf, which keeps it from being freed
 * (odp_leaf_release()), and looks the leaf up under the lock when it needs
 * it.  Return: 0 or -ENOMEM.
 */
static int odp_leaf_get(struct odp_mirror *mirror, unsigned long addr)
{
	unsigned long flags, lidx = odp_leaf_index(addr);
	struct odp_mirror_leaf *leaf;
	void *old;

	if (xa_load(&mirror->leaves, lidx))
		return 0;

	leaf = kzalloc(sizeof(*leaf), GFP_KERNEL_ACCOUNT);
	if (!leaf)
		return -ENOMEM;
	leaf->entry = (unsigned long *)get_zeroed_page(GFP_KERNEL_ACCOUNT);
	if (!leaf->entry) {
		kfree(leaf);
		return -ENOMEM;
	}

	old = xa_cmpxchg_irq(&mirror->leaves, lidx, NULL, leaf,
			     GFP_KERNEL_ACCOUNT);
	if (old) {
		/* lost a race with another fault, or the xarray failed */
		odp_leaf_free(leaf);
		return xa_is_err(old) ? xa_err(old) : 0;
	}
	flags = odp_mirror_lock(mirror);
	mirror->stats.leaves++;
	odp_mirror_unlock(mirror, flags);
	return 0;
}

/* Has a batch in flight its pages in the leaf of index @lidx? */
static bool odp_leaf_armed(struct odp_mirror *mirror, unsigned long lidx)
{
	struct odp_mirror_batch *batch;

	list_for_each_entry(batch, &mirror->batches, node)
		if (odp_leaf_index(batch->start) == lidx)
			return true;
	return false;
}

/*
 * Free the leaf of index @lidx if it holds no entry and no batch is in
 * flight in it, so that the table of a mirror shrinks back when the
 * process unmaps what the device used (an implicit MR spans the whole
 * address space).  Called with the lock held, which every user of a leaf
 * holds: once the leaf is out of the xarray nobody can reach it.
 */
static void odp_leaf_release(struct odp_mirror *mirror, unsigned long lidx)
{
	struct odp_mirror_leaf *leaf = xa_load(&mirror->leaves, lidx);

	lockdep_assert_held(&mirror->lock);
	if (!leaf || leaf->used || odp_leaf_armed(mirror, lidx))
		return;
	xa_lock(&mirror->leaves);
	__xa_erase(&mirror->leaves, lidx);
	xa_unlock(&mirror->leaves);
	mirror->stats.leaves--;
	odp_leaf_free(leaf);
}

/*
 * Clear the entries of [start, end) of @leaf (of index @lidx) and return
 * how many pages lost their translation; called with the lock held.  A
 * huge entry goes as a whole even when the window covers part of it:
 * dropping a translation is always allowed.
 */
static unsigned long odp_leaf_clear(struct odp_mirror_leaf *leaf,
				    unsigned long lidx, unsigned long start,
				    unsigned long end)
{
	unsigned long base = lidx << ODP_MIRROR_LEAF_SHIFT;
	unsigned long i = max(start >> PAGE_SHIFT, base) - base;
	unsigned long n = min((end - 1) >> PAGE_SHIFT,
			      base + ODP_MIRROR_LEAF_ENTRIES - 1) - base;
	unsigned long cleared = 0;

	if (leaf->entry[0] & ODP_MIRROR_HUGE) {
		leaf->entry[0] = 0;
		leaf->used = 0;
		__clear_bit(0, leaf->young);
		return ODP_MIRROR_LEAF_ENTRIES;
	}
	bitmap_clear(leaf->young, i, n + 1 - i);
	for (; i <= n && leaf->used; i++) {
		if (leaf->entry[i]) {
			leaf->entry[i] = 0;
			leaf->used--;
			cleared++;
		}
	}
	return cleared;
}

/*
 * Was an entry of [start, end) of @leaf (of index @lidx) used since the
 * last call that cleared?  Called with the lock held.
 */
static bool odp_leaf_age(struct odp_mirror_leaf *leaf, unsigned long lidx,
			 unsigned long start, unsigned long end, bool clear)
{
	unsigned long base = lidx << ODP_MIRROR_LEAF_SHIFT;
	unsigned long i = max(start >> PAGE_SHIFT, base) - base;
	unsigned long n = min((end - 1) >> PAGE_SHIFT,
			      base + ODP_MIRROR_LEAF_ENTRIES - 1) - base + 1;

	if (leaf->entry[0] & ODP_MIRROR_HUGE) {
		i = 0;
		n = 1;
	}
	if (find_next_bit(leaf->young, n, i) >= n)
		return false;
	if (clear)
		bitmap_clear(leaf->young, i, n - i);
	return true;
}

/**
 * odp_mirror_age - did the device use a page of [start, end) lately?
 * @mirror: the mirror
 * @start: first address asked about
 * @end: end of the range asked about
 * @clear: forget the answer: the next call answers for the time from now on
 *
 * For reclaim's questions (odp_aging.c), in atomic context under the page
 * table lock.  Entries stay as they are.  Return: true if an entry of the
 * range was installed or used since the last call that cleared it.
 */
bool odp_mirror_age(struct odp_mirror *mirror, unsigned long start,
		    unsigned long end, bool clear)
{
	struct odp_mirror_leaf *leaf;
	unsigned long flags, lidx;
	bool young = false;

	start = max(start, mirror->start);
	end = min(end, mirror->end);
	if (start >= end)
		return false;

	flags = odp_mirror_lock(mirror);
	xa_for_each_range(&mirror->leaves, lidx, leaf, odp_leaf_index(start),
			  odp_leaf_index(end - 1))
		young |= odp_leaf_age(leaf, lidx, start, end, clear);
	if (mirror->ops && mirror->ops->aged)
		mirror->ops->aged(mirror, young);
	odp_mirror_unlock(mirror, flags);
	return young;
}

/*
 * The invalidation callback.  It never sleeps, so it honours non-blockable
 * invalidations (the OOM reaper) instead of refusing them: once it returns,
 * no entry in the window exists and none can be installed until the
 * invalidation ends.
 *
 * Every batch in flight that the window overlaps is marked first, all at
 * once, and a batch armed later waits in mmu_interval_read_begin() until
 * the invalidation ends; so when the invalidation may block, the lock can
 * be dropped between leaves (a munmap of an implicit MR spans many).  The
 * data path may meanwhile still use entries not cleared yet: their pages
 * are not freed before this callback returns.
 *
 * Pages the device may write were dirtied when write was granted
 * (odp_mirror_dirty_pages()), so nothing has to be dirtied here.
 */
static bool odp_mirror_invalidate(struct mmu_interval_notifier *mni,
				  const struct mmu_notifier_range *range,
				  unsigned long cur_seq)
{
	struct odp_mirror *mirror =
		container_of(mni, struct odp_mirror, notifier);
	unsigned long start = max(range->start, mirror->start);
	unsigned long end = min(range->end, mirror->end);
	bool blockable = mmu_notifier_range_blockable(range);
	struct odp_mirror_batch *batch;
	struct odp_mirror_leaf *leaf;
	unsigned long flags, lidx, n, cleared = 0;

	flags = odp_mirror_lock(mirror);
	mmu_interval_set_seq(mni, cur_seq);
	list_for_each_entry(batch, &mirror->batches, node) {
		unsigned long base = ALIGN_DOWN(batch->start, ODP_MIRROR_SPAN);

		if (range->start < batch->end && range->end > batch->start)
			batch->raced = true;
		if (range->start < base + ODP_MIRROR_SPAN && range->end > base)
			batch->leaf_raced = true;
	}
	if (start >= end)
		goto out;
	xa_for_each_range(&mirror->leaves, lidx, leaf, odp_leaf_index(start),
			  odp_leaf_index(end - 1)) {
		if (leaf->used) {
			n = odp_leaf_clear(leaf, lidx, start, end);
			if (n && mirror->ops && mirror->ops->invalidated)
				mirror->ops->invalidated(mirror, n);
			cleared += n;
		}
		odp_leaf_release(mirror, lidx);
		if (blockable && need_resched()) {
			odp_mirror_unlock(mirror, flags);
			cond_resched();
			flags = odp_mirror_lock(mirror);
		}
	}
	if (cleared) {
		mirror->stats.invalidations++;
		mirror->stats.invalidated_pages += cleared;
	}
out:
	odp_mirror_unlock(mirror, flags);
	return true;
}

static const struct mmu_interval_notifier_ops odp_mirror_notifier_ops = {
	.invalidate = odp_mirror_invalidate,
};

/**
 * odp_mirror_init - start mirroring [addr, addr + length) of @mm
 * @mirror: the mirror to initialise
 * @mm: the address space, usually current->mm
 * @addr: start of the range, need not be page aligned
 * @length: length of the range in bytes, not zero
 * @ops: optional callbacks
 *
 * Costs the same whatever @length is: no page is looked at until it is
 * faulted.  Return: 0 or a negative errno.
 */
int odp_mirror_init(struct odp_mirror *mirror, struct mm_struct *mm,
		    unsigned long addr, unsigned long length,
		    const struct odp_mirror_ops *ops)
{
	unsigned long end;
	int err;

	if (!length || check_add_overflow(addr, length, &end))
		return -EINVAL;

	mirror->start = ALIGN_DOWN(addr, PAGE_SIZE);
	mirror->end = ALIGN(end, PAGE_SIZE);
	if (mirror->end < end || mirror->end > TASK_SIZE)
		return -EINVAL;

	spin_lock_init(&mirror->lock);
	/* erased from under @lock, which the data path takes in softirq */
	xa_init_flags(&mirror->leaves, XA_FLAGS_LOCK_IRQ);
	mirror->cancelled = false;
	INIT_LIST_HEAD(&mirror->batches);
	init_waitqueue_head(&mirror->batch_wq);
	mirror->batch_seq = 0;
	memset(&mirror->stats, 0, sizeof(mirror->stats));
	mirror->ops = ops;

	err = mmu_interval_notifier_insert(&mirror->notifier, mm,
					   mirror->start,
					   mirror->end - mirror->start,
					   &odp_mirror_notifier_ops);
	if (err)
		return err;
	err = odp_aging_add(mirror, mm);
	if (err)
		mmu_interval_notifier_remove(&mirror->notifier);
	return err;
}

/**
 * odp_mirror_cancel - make faults of the mirror fail from now on
 * @mirror: an initialised mirror
 *
 * For a device that is about to tear the mirror down: every fault in
 * flight stops at its next batch and every later one fails at once, with
 * -ECANCELED.  A batch blocked in hmm_range_fault() (a page of a file whose
 * filesystem does not answer) still runs to its end.  Entries already
 * installed stay usable until odp_mirror_fini().
 */
void odp_mirror_cancel(struct odp_mirror *mirror)
{
	WRITE_ONCE(mirror->cancelled, true);
}

/**
 * odp_mirror_fini - stop mirroring and free the table
 * @mirror: an initialised mirror
 *
 * May sleep: waits for running invalidations to finish.  No fault of the
 * mirror may be in flight: the caller keeps the mirror until its faults
 * have returned.
 */
void odp_mirror_fini(struct odp_mirror *mirror)
{
	struct odp_mirror_leaf *leaf;
	unsigned long lidx;

	odp_aging_remove(mirror);
	mmu_interval_notifier_remove(&mirror->notifier);
	WARN_ON_ONCE(!list_empty(&mirror->batches));

	xa_for_each(&mirror->leaves, lidx, leaf)
		odp_leaf_free(leaf);
	xa_destroy(&mirror->leaves);
}

/* Drop the references odp_mirror_hold_pages() took. */
static void odp_mirror_release_pages(struct hmm_range *range)
{
	unsigned long i, npages = (range->end - range->start) >> PAGE_SHIFT;

	for (i = 0; i < npages; i++)
		if (range->hmm_pfns[i] & HMM_PFN_WRITE)
			folio_put(page_folio(hmm_pfn_to_page(range->hmm_pfns[i])));
}

/*
 * Take a reference to the page of every writable pfn of @range, so that
 * the pages can be dirtied after the mmap lock is dropped.  Nothing is
 * known of a pfn once the lock is dropped: the page may have been freed
 * and reused.  The caller therefore checks that no invalidation raced
 * with the batch after the references are taken: the pages were then
 * still mapped, and are now kept from being freed.  Return: true, or
 * false (holding nothing) if a page was being freed, which took an
 * invalidation of the batch.
 */
static bool odp_mirror_hold_pages(struct hmm_range *range)
{
	unsigned long i, npages = (range->end - range->start) >> PAGE_SHIFT;

	for (i = 0; i < npages; i++) {
		struct folio *folio;
		struct page *page;

		if (!(range->hmm_pfns[i] & HMM_PFN_WRITE))
			continue;
		page = hmm_pfn_to_page(range->hmm_pfns[i]);
		folio = page_folio(page);
		if (folio_try_get(folio)) {
			/* no reference was held: the folio may have been split */
			if (likely(page_folio(page) == folio))
				continue;
			folio_put(folio);
		}
		range->end = range->start + (i << PAGE_SHIFT);
		odp_mirror_release_pages(range);
		range->end = range->start + (npages << PAGE_SHIFT);
		return false;
	}
	return true;
}

/*
 * Mark dirty every page that the device is about to be allowed to write;
 * the caller holds references to them (odp_mirror_hold_pages()).  A write
 * fault does not always leave a dirty PTE behind: hmm does not fault a PTE
 * that is already writable, and shmem maps pages writable but clean on
 * read faults.  Every later clean transition of the page (writeback,
 * MADV_FREE, swap-out) invalidates the entry first, so data the device
 * writes through it is never dropped as clean.  Done before the lock is
 * taken: dirtying a file page takes locks that softirq-safe locks must not
 * nest.
 */
static void odp_mirror_dirty_pages(struct hmm_range *range)
{
	unsigned long i, npages = (range->end - range->start) >> PAGE_SHIFT;
	struct folio *last = NULL;

	for (i = 0; i < npages; i++) {
		struct folio *folio;

		if (!(range->hmm_pfns[i] & HMM_PFN_WRITE))
			continue;
		folio = page_folio(hmm_pfn_to_page(range->hmm_pfns[i]));
		if (folio == last)
			continue;
		folio_lock(folio);
		folio_mark_dirty(folio);
		folio_unlock(folio);
		last = folio;
	}
}

/* Did hmm_range_fault() find @range in a huge page that spans its leaf? */
static bool odp_mirror_range_huge(struct hmm_range *range)
{
	unsigned long pfn = range->hmm_pfns[0];

	return (pfn & HMM_PFN_VALID) &&
	       hmm_pfn_to_map_order(pfn) >= ODP_MIRROR_LEAF_SHIFT;
}

/*
 * Install what hmm_range_fault() found for @range (inside one leaf);
 * called with the lock held, once no invalidation raced with the batch.
 * A huge page becomes one entry for the whole leaf if @huge allows it,
 * else one entry per page of @range.  Return: the number of entries that
 * changed (pages new to the mirror, or newly writable).
 */
static unsigned long odp_mirror_install(struct odp_mirror_leaf *leaf,
					struct hmm_range *range, bool huge)
{
	unsigned long first = odp_entry_index(range->start);
	unsigned long npages = (range->end - range->start) >> PAGE_SHIFT;
	bool write_fault = range->default_flags & HMM_PFN_REQ_WRITE;
	unsigned long pfn = range->hmm_pfns[0];
	unsigned long i, n = 0;

	/*
	 * A huge page mapped by a PMD (THP) or a hugetlb page of 2 MiB or
	 * more: one entry translates the whole leaf, whatever part of it was
	 * asked for; any change to the mapping invalidates all of it.
	 */
	if (huge && odp_mirror_range_huge(range)) {
		struct page *head =
			pfn_to_page(page_to_pfn(hmm_pfn_to_page(pfn)) - first);
		unsigned long entry = (unsigned long)head | ODP_MIRROR_HUGE |
				      ODP_MIRROR_READ;

		if (write_fault && (pfn & HMM_PFN_WRITE))
			entry |= ODP_MIRROR_WRITE;
		else if ((leaf->entry[0] & ~ODP_MIRROR_ACCESS_MASK) ==
			 (entry & ~ODP_MIRROR_ACCESS_MASK))
			entry |= leaf->entry[0] & ODP_MIRROR_WRITE;
		__set_bit(0, leaf->young);
		if (leaf->entry[0] == entry)
			return 0;
		memset(leaf->entry, 0, PAGE_SIZE);
		bitmap_zero(leaf->young, ODP_MIRROR_LEAF_ENTRIES);
		__set_bit(0, leaf->young);
		leaf->entry[0] = entry;
		leaf->used = 1;
		return ODP_MIRROR_LEAF_ENTRIES;
	}

	/* the 2 MiB stopped being one huge page: back to single pages */
	if (leaf->entry[0] & ODP_MIRROR_HUGE) {
		leaf->entry[0] = 0;
		leaf->used = 0;
		__clear_bit(0, leaf->young);
	}

	for (i = 0; i < npages; i++) {
		unsigned long old = leaf->entry[first + i];
		unsigned long entry;

		pfn = range->hmm_pfns[i];
		if (!(pfn & HMM_PFN_VALID))	/* ODP_MIRROR_NO_FAULT */
			continue;
		/*
		 * Grant write only to a write fault, which dirtied the page.
		 * A read fault that finds the same page keeps the write right
		 * an earlier write fault gave it: the entry is still there, so
		 * no invalidation of the page ran since, and it still holds.
		 */
		entry = (unsigned long)hmm_pfn_to_page(pfn) | ODP_MIRROR_READ;
		if (write_fault && (pfn & HMM_PFN_WRITE))
			entry |= ODP_MIRROR_WRITE;
		else if ((old & ~ODP_MIRROR_ACCESS_MASK) ==
			 (entry & ~ODP_MIRROR_ACCESS_MASK))
			entry |= old & ODP_MIRROR_WRITE;
		/* the device asked for the page: it is about to use it */
		__set_bit(first + i, leaf->young);
		if (entry == old)
			continue;
		if (!old)
			leaf->used++;
		leaf->entry[first + i] = entry;
		n++;
	}
	return n;
}

/*
 * One pass over @batch: fault @range with hmm_range_fault() and install it
 * if no invalidation overlapped it meanwhile.  Return: the number of pages
 * installed; -EAGAIN if an invalidation overlapped the batch; -EBUSY if
 * one elsewhere in the mirror stopped hmm; or hmm's error.
 */
static long odp_mirror_fault_pass(struct odp_mirror *mirror,
				  struct hmm_range *range,
				  struct odp_mirror_batch *batch)
{
	bool write = range->default_flags & HMM_PFN_REQ_WRITE;
	struct mm_struct *mm = odp_mirror_mm(mirror);
	struct odp_mirror_leaf *leaf;
	ktime_t begun, locked;
	unsigned long flags;
	long ret;

	/*
	 * Arm the batch before read_begin: an invalidation that marked it
	 * before is then either over, or waited for by read_begin; any later
	 * one marks it again.
	 */
	flags = odp_mirror_lock(mirror);
	batch->end = range->end;
	batch->raced = false;
	batch->leaf_raced = false;
	odp_mirror_unlock(mirror, flags);

	range->notifier_seq = mmu_interval_read_begin(&mirror->notifier);
	begun = ktime_get();
	mmap_read_lock(mm);
	locked = ktime_get();
	ret = hmm_range_fault(range);
	mmap_read_unlock(mm);

	flags = odp_mirror_lock(mirror);
	mirror->stats.passes++;
	mirror->stats.lock_wait_us += ktime_us_delta(locked, begun);
	mirror->stats.hmm_us += ktime_us_delta(ktime_get(), locked);
	if (ret == -EBUSY) {
		/*
		 * hmm gives up on any invalidation of the mirror, even of
		 * another part of it; the pages it faulted stay mapped, so
		 * that the next pass only walks them.
		 */
		if (batch->raced) {
			mirror->stats.raced_passes++;
			ret = -EAGAIN;
		} else {
			mirror->stats.busy_passes++;
		}
	}
	odp_mirror_unlock(mirror, flags);
	if (ret)
		return ret;

	if (write) {
		if (!odp_mirror_hold_pages(range))
			return -EAGAIN;
		flags = odp_mirror_lock(mirror);
		ret = 0;
		if (batch->raced) {
			mirror->stats.raced_passes++;
			ret = -EAGAIN;
		}
		odp_mirror_unlock(mirror, flags);
		if (ret) {
			odp_mirror_release_pages(range);
			return ret;
		}
		odp_mirror_dirty_pages(range);
	}

	flags = odp_mirror_lock(mirror);
	leaf = odp_leaf_find(mirror, range->start);
	if (batch->raced || WARN_ON_ONCE(!leaf)) {
		mirror->stats.raced_passes++;
		ret = -EAGAIN;
	} else {
		/*
		 * A huge entry would translate the whole leaf, and only the
		 * batch is known to be unchanged: after a race elsewhere in
		 * the leaf, the batch's pages of a huge page get entries of
		 * their own.
		 */
		ret = odp_mirror_install(leaf, range, !batch->leaf_raced);
		if (ret) {
			mirror->stats.faults++;
			mirror->stats.faulted_pages += ret;
		}
	}
	odp_mirror_unlock(mirror, flags);
	if (write)
		odp_mirror_release_pages(range);
	return ret;
}

/*
 * How many passes a batch that reaches past what was asked for may take
 * while invalidations elsewhere in the mirror stop hmm_range_fault().
 */
#define ODP_MIRROR_AHEAD_PASSES	3

/*
 * The largest batch of a fault that nobody waits for: a fault that
 * somebody waits for and needs its pages waits at most one such pass.
 */
#define ODP_MIRROR_SPECULATIVE_BATCH	(64 * PAGE_SIZE)

/*
 * Entry for @addr, as page | access, if it grants @access; else 0.  With
 * @use, the device is about to use the page: the entry is marked accessed.
 * Called with the lock held.
 */
static unsigned long odp_mirror_entry(struct odp_mirror *mirror,
				      unsigned long addr, unsigned int access,
				      bool use)
{
	struct odp_mirror_leaf *leaf;
	unsigned long entry, bit;

	leaf = xa_load(&mirror->leaves, odp_leaf_index(addr));
	if (!leaf)
		return 0;

	entry = READ_ONCE(leaf->entry[0]);
	if (entry & ODP_MIRROR_HUGE) {
		struct page *head =
			(struct page *)(entry & ~ODP_MIRROR_FLAGS_MASK);

		entry = (unsigned long)nth_page(head, odp_entry_index(addr)) |
			(entry & ODP_MIRROR_ACCESS_MASK);
		bit = 0;
	} else {
		bit = odp_entry_index(addr);
		entry = READ_ONCE(leaf->entry[bit]);
	}
	if ((entry & access) != access || !entry)
		return 0;
	/*
	 * A cache line written only when reclaim has cleared the bit, and
	 * not even read when nobody will ask.
	 */
	if (use && READ_ONCE(odp_aging) && !test_bit(bit, leaf->young))
		__set_bit(bit, leaf->young);
	return entry;
}

/*
 * The first page of [start, end) (inside one leaf) that has no entry
 * granting @access, or @end if there is none; called with the lock held.
 */
static unsigned long odp_mirror_first_missing(struct odp_mirror *mirror,
					      unsigned long start,
					      unsigned long end,
					      unsigned int access)
{
	for (; start < end; start += PAGE_SIZE)
		if (!odp_mirror_entry(mirror, start, access, false))
			break;
	return start;
}

/* An armed batch that overlaps [start, end), or NULL; under the lock. */
static struct odp_mirror_batch *odp_batch_overlap(struct odp_mirror *mirror,
						  unsigned long start,
						  unsigned long end)
{
	struct odp_mirror_batch *batch;

	list_for_each_entry(batch, &mirror->batches, node)
		if (start < batch->end && end > batch->start)
			return batch;
	return NULL;
}

static bool odp_batch_done(struct odp_mirror *mirror, u64 id)
{
	struct odp_mirror_batch *batch;
	unsigned long flags;
	bool done = true;

	flags = odp_mirror_lock(mirror);
	list_for_each_entry(batch, &mirror->batches, node) {
		if (batch->id == id) {
			done = false;
			break;
		}
	}
	odp_mirror_unlock(mirror, flags);
	return done;
}

/*
 * What stands in the way of @batch, under the mirror's lock.  Faulters of
 * the same pages would each walk them and allocate a page for the same
 * PTE, one of the two pages being freed again, and each write upgrade
 * would mark the other's batch; two workers sharing a CPU then hand it to
 * each other at every allocation.  So:
 *  - pages already present as asked are not walked again: the batch starts
 *    at the first missing one;
 *  - a speculative batch skips pages that another batch is faulting, and
 *    a batch that somebody waits for asks a speculative one in its way to
 *    yield (at its next pass) rather than wait for it;
 *  - a batch that somebody waits for waits for one in flight that faults
 *    its pages with at least its access (a read batch does not serve a
 *    write, a no-fault batch serves nothing), then looks again.
 * Return: true if the batch has nothing to fault (range->end is left as
 * it was); else false, with *@wait_for set to the batch to wait for, or
 * NULL if @batch is to be armed now.
 */
static bool odp_batch_in_way(struct odp_mirror *mirror,
			     struct hmm_range *range, unsigned long need_end,
			     struct odp_mirror_batch *batch,
			     struct odp_mirror_batch **wait_for)
{
	unsigned int access = batch->write ? ODP_MIRROR_READ | ODP_MIRROR_WRITE
					   : ODP_MIRROR_READ;
	struct odp_mirror_batch *other;

	*wait_for = NULL;
	if (!batch->no_fault)
		range->start = odp_mirror_first_missing(mirror, range->start,
							range->end, access);
	if (range->start == range->end)
		return true;
	batch->speculative |= range->start >= need_end;
	if (batch->no_fault)
		return false;
	other = odp_batch_overlap(mirror, range->start, range->end);
	if (!other)
		return false;
	if (batch->speculative)
		return true;
	if (other->speculative)
		other->yield = true;
	else if (!other->no_fault && (other->write || !batch->write))
		*wait_for = other;
	return false;
}

/*
 * Arm @batch for [range->start, range->end), unless other faulters take
 * care of its pages (odp_batch_in_way()).  It waits unarmed and without
 * the mmap lock, so an invalidation never waits for it and no two batches
 * wait for each other.
 * Return: 0 with @batch armed; 1 if the batch has nothing to fault (it is
 * done, range->end is left as it was); -EINTR if the caller was killed.
 */
static int odp_batch_arm(struct odp_mirror *mirror, struct hmm_range *range,
			 unsigned long need_end, struct odp_mirror_batch *batch)
{
	struct odp_mirror_batch *other;
	unsigned long flags;
	ktime_t begun;
	int killed;
	u64 id;

	for (;;) {
		other = NULL;
		flags = odp_mirror_lock(mirror);
		if (READ_ONCE(odp_fault_sharing) &&
		    odp_batch_in_way(mirror, range, need_end, batch, &other)) {
			odp_mirror_unlock(mirror, flags);
			return 1;
		}
		if (!other) {
			batch->start = range->start;
			batch->end = range->end;
			batch->id = ++mirror->batch_seq;
			list_add(&batch->node, &mirror->batches);
			odp_mirror_unlock(mirror, flags);
			return 0;
		}
		id = other->id;
		mirror->stats.batch_waits++;
		odp_mirror_unlock(mirror, flags);
		begun = ktime_get();
		killed = wait_event_killable(mirror->batch_wq,
					     odp_batch_done(mirror, id));
		flags = odp_mirror_lock(mirror);
		mirror->stats.batch_wait_us += ktime_us_delta(ktime_get(),
							      begun);
		odp_mirror_unlock(mirror, flags);
		if (killed)
			return -EINTR;
	}
}

/* What a batch has tried so far; see odp_batch_retry(). */
struct odp_batch_tries {
	unsigned int races;	/* passes that an invalidation overlapped */
	unsigned int busy;	/* passes ahead of need that hmm gave up on */
};

/*
 * The retry policy of a batch, after a pass over @range that failed with
 * @ret.  Pages from @need_end on were not asked for, only hoped for, and a
 * pass over them costs a page fault per page while the device waits.
 *  - -EBUSY (hmm gave up for an invalidation elsewhere in the mirror; what
 *    it faulted stays mapped, so the next pass only walks it): pass again
 *    as it is, while the batch lies within what was asked for; at most
 *    ODP_MIRROR_AHEAD_PASSES times while it reaches past it.
 *  - -EAGAIN (an invalidation overlapped the batch): pass again as it is
 *    the first time, if the batch lies within what was asked for, since a
 *    write fault invalidates what it replaces (the zero page, a COW page)
 *    and may have marked the batch itself.
 *  - Otherwise a batch that reaches past @need_end is cut back to it, one
 *    wholly past it gives up, and one within gives up on an error, or
 *    after a race passes again over its first half (at least a page): each
 *    pass walks and faults the whole batch, and while the process keeps
 *    discarding or protecting pages in it a short pass gets through sooner
 *    than a long one.
 * Return: true to pass again over @range (which may have been shortened),
 * false to give up with @ret.
 */
static bool odp_batch_retry(struct hmm_range *range, unsigned long need_end,
			    long ret, struct odp_batch_tries *tries)
{
	bool within = range->end <= need_end;

	if (ret == -EBUSY &&
	    (within || ++tries->busy < ODP_MIRROR_AHEAD_PASSES))
		return true;
	if (ret == -EAGAIN && ++tries->races == 1 && within)
		return true;
	if (range->start >= need_end)
		return false;
	if (!within) {
		range->end = need_end;
		tries->busy = 0;
		return true;
	}
	if (ret != -EAGAIN)
		return false;
	range->end = range->start +
		max(PAGE_SIZE, ALIGN_DOWN((range->end - range->start) / 2,
					  PAGE_SIZE));
	return true;
}

/* Why @batch must stop before its next pass (a negative errno), or 0. */
static long odp_batch_stop(struct odp_mirror *mirror,
			   struct odp_mirror_batch *batch,
			   unsigned long timeout)
{
	if (READ_ONCE(mirror->cancelled))
		return -ECANCELED;
	/* a fault somebody waits for wants these pages */
	if (READ_ONCE(batch->yield) && batch->speculative)
		return -EBUSY;
	if (time_after(jiffies, timeout))
		return -EBUSY;
	return 0;
}

/*
 * Fault one batch that lies inside one leaf and install it, passing over
 * it again after a race with an invalidation, as any mmu_interval_notifier
 * user does, as odp_batch_retry() decides.
 * Return: pages installed, with range->end moved back to the end of what
 * was installed; or a negative errno (-EBUSY if the batch did not complete
 * in a second).
 */
static long odp_mirror_fault_batch(struct odp_mirror *mirror,
				   struct hmm_range *range,
				   unsigned long need_end, bool speculative)
{
	struct odp_mirror_batch batch = {
		.write = range->default_flags & HMM_PFN_REQ_WRITE,
		.no_fault = !(range->default_flags & HMM_PFN_REQ_FAULT),
		.speculative = speculative || range->start >= need_end,
	};
	unsigned long timeout =
		jiffies + msecs_to_jiffies(HMM_RANGE_DEFAULT_TIMEOUT);
	struct odp_batch_tries tries = { 0 };
	unsigned long flags;
	long ret;

	ret = odp_batch_arm(mirror, range, need_end, &batch);
	if (ret)
		return ret > 0 ? 0 : ret;

	/* on the list, the batch keeps its leaf from being freed */
	ret = odp_leaf_get(mirror, range->start);
	if (ret)
		goto out;
	for (;;) {
		ret = odp_batch_stop(mirror, &batch, timeout);
		if (ret)
			break;
		ret = odp_mirror_fault_pass(mirror, range, &batch);
		if (ret >= 0 || !odp_batch_retry(range, need_end, ret, &tries))
			break;
		cond_resched();
	}
out:
	flags = odp_mirror_lock(mirror);
	list_del(&batch.node);
	/* a fault that installed nothing leaves no empty leaf behind */
	odp_leaf_release(mirror, odp_leaf_index(batch.start));
	odp_mirror_unlock(mirror, flags);
	wake_up_all(&mirror->batch_wq);
	return ret;
}

#ifdef CONFIG_NUMA
/*
 * The memory policy of a device fault: allocate on the local node, as the
 * kernel's default policy does, but without MPOL_F_MOF.  hmm_range_fault()
 * resolves a NUMA hinting fault (a PTE that NUMA balancing made PROT_NONE)
 * like a CPU access from the faulting thread, and with the default policy
 * it migrates the page to that thread's node.  A device fault runs in a
 * worker on whatever node the worker happens to be on: pages would follow
 * it, and bounce between nodes when workers on two nodes fault them, while
 * the device waits for every copy.  The placement of the pages is for the
 * process to decide, not for the device's fault worker.
 */
static struct mempolicy odp_mirror_fault_policy = {
	.refcnt = ATOMIC_INIT(1),	/* static, never freed */
	.mode = MPOL_LOCAL,
	.home_node = NUMA_NO_NODE,
};

/*
 * Fault with odp_mirror_fault_policy unless the owner of @mm itself asks
 * (a synchronous prefetch): its own policy and its own accesses then
 * decide.  Return: the policy to give back to odp_mirror_policy_exit().
 */
static struct mempolicy *odp_mirror_policy_enter(struct mm_struct *mm)
{
	struct mempolicy *old = current->mempolicy;

	if (current->mm == mm)
		return old;
	task_lock(current);
	current->mempolicy = &odp_mirror_fault_policy;
	task_unlock(current);
	return old;
}

static void odp_mirror_policy_exit(struct mempolicy *old)
{
	if (current->mempolicy != &odp_mirror_fault_policy)
		return;
	task_lock(current);
	current->mempolicy = old;
	task_unlock(current);
}
#else
static inline struct mempolicy *odp_mirror_policy_enter(struct mm_struct *mm)
{
	return NULL;
}

static inline void odp_mirror_policy_exit(struct mempolicy *old)
{
}
#endif

/**
 * odp_mirror_fault - make [addr, addr + length) accessible to the device
 * @mirror: the mirror
 * @addr: first byte
 * @length: number of bytes that must be made accessible; may be 0 if
 *	@ahead is not
 * @ahead: number of bytes after them (cut at the end of the mirror) to make
 *	accessible as well, as long as that is cheap: a batch of them that
 *	fails or races with an invalidation ends the call, without an error
 * @access: ODP_MIRROR_READ, or ODP_MIRROR_READ | ODP_MIRROR_WRITE; or
 *	ODP_MIRROR_READ | ODP_MIRROR_NO_FAULT to only install pages that are
 *	present already (a prefetch that must not fault); with
 *	ODP_MIRROR_SPECULATIVE when nobody waits for the fault (it then skips
 *	pages that other faults are working on, and gives way to them)
 *
 * Process context only; may sleep.  Faults the pages in the owner's address
 * space (holding a reference to it only while doing so) and installs them,
 * in batches of at most one leaf.  Batches shrink while invalidations race
 * with them and grow back once they stop.  Unless the owner itself calls,
 * the fault does not move pages between NUMA nodes (see
 * odp_mirror_fault_policy).
 *
 * Return: the number of pages made accessible, or accessible in a new way
 * (a huge page counts as all its pages; pages that were accessible as asked
 * already do not count, so that overlapping faults count a page once);
 * -EFAULT if part of [addr, addr + length) is outside the mirror, unmapped
 * or not accessible as asked (e.g. a write to a read-only mapping), or the
 * owner has exited; -ENOMEM; -EBUSY if invalidations kept racing;
 * -ECANCELED once odp_mirror_cancel() was called; -EINTR if the caller
 * was killed.  -ENOMEM and -EBUSY are transient: the same fault may
 * succeed later.
 */
long odp_mirror_fault(struct odp_mirror *mirror, unsigned long addr,
		      unsigned long length, unsigned long ahead,
		      unsigned int access)
{
	struct mm_struct *mm = odp_mirror_mm(mirror);
	unsigned long start, need_end, end, planned, *pfns;
	unsigned long batch_size = ODP_MIRROR_SPAN;
	struct hmm_range range = {
		.notifier = &mirror->notifier,
		.hmm_pfns = NULL,
		.default_flags = HMM_PFN_REQ_FAULT,
	};
	bool speculative = access & ODP_MIRROR_SPECULATIVE;
	struct mempolicy *policy;
	long ret = 0, installed = 0;

	if ((!length && !ahead) || addr < mirror->start ||
	    addr >= mirror->end || length > mirror->end - addr)
		return -EFAULT;
	ahead = min(ahead, mirror->end - addr - length);
	if (access & ODP_MIRROR_NO_FAULT)
		range.default_flags = 0;
	else if (access & ODP_MIRROR_WRITE)
		range.default_flags |= HMM_PFN_REQ_WRITE;

	start = ALIGN_DOWN(addr, PAGE_SIZE);
	need_end = length ? ALIGN(addr + length, PAGE_SIZE) : start;
	end = ALIGN(addr + length + ahead, PAGE_SIZE);

	pfns = (unsigned long *)__get_free_page(GFP_KERNEL);
	if (!pfns)
		return -ENOMEM;
	range.hmm_pfns = pfns;

	if (!mmget_not_zero(mm)) {
		ret = -EFAULT;
		goto out_free;
	}

	policy = odp_mirror_policy_enter(mm);
	while (start < end) {
		if (READ_ONCE(mirror->cancelled)) {
			ret = -ECANCELED;
			break;
		}
		/* a caller of its own (a synchronous prefetch) was killed */
		if (fatal_signal_pending(current)) {
			ret = -EINTR;
			break;
		}
		range.start = start;
		planned = min3(end, ALIGN(start + 1, ODP_MIRROR_SPAN),
			       start + batch_size);
		/*
		 * What was asked for comes in batches of its own, and what is
		 * only hoped for in short ones: hmm_range_fault() faults every
		 * page of a batch before it looks for invalidations, so a
		 * batch that reaches far past what the device needs keeps it
		 * waiting for a page fault per page it did not ask for.
		 * Short speculative batches also give way to demand faults at
		 * short intervals.
		 */
		if (start < need_end && !speculative)
			planned = min(planned, need_end);
		else
			planned = min(planned, start + ODP_MIRROR_SPECULATIVE_BATCH);
		range.end = planned;
		ret = odp_mirror_fault_batch(mirror, &range, need_end,
					     speculative);
		if (ret < 0) {
			/* what was only hoped for ends at the first trouble */
			if (start >= need_end && ret != -ECANCELED)
				ret = 0;
			break;
		}
		installed += ret;
		if (range.end < planned)
			batch_size = range.end - start;
		else
			batch_size = min(2 * batch_size, ODP_MIRROR_SPAN);
		start = range.end;
	}
	odp_mirror_policy_exit(policy);
	/* the last reference may be ours: keep exit_mmap() off the worker */
	mmput_async(mm);

	/* hmm reports a write to a read-only mapping as -EPERM */
	if (ret == -EPERM)
		ret = -EFAULT;
out_free:
	free_page((unsigned long)pfns);
	return ret < 0 ? ret : installed;
}

/*
 * The page at @addr, if the device may access it so, else NULL; marked as
 * used.  Called with the lock held; the page may only be used until it is
 * dropped.
 */
static struct page *odp_mirror_lookup(struct odp_mirror *mirror,
				      unsigned long addr, unsigned int access)
{
	unsigned long entry;

	lockdep_assert_held(&mirror->lock);
	if (addr < mirror->start || addr >= mirror->end)
		return NULL;
	entry = odp_mirror_entry(mirror, addr, access, true);
	return (struct page *)(entry & ~ODP_MIRROR_ACCESS_MASK);
}

/**
 * odp_mirror_accessible - may the device access the page at @addr so now
 * @mirror: the mirror
 * @addr: an address
 * @access: ODP_MIRROR_READ and/or ODP_MIRROR_WRITE
 *
 * Never sleeps.  The answer may be stale as soon as it is given: for
 * tests and statistics, not for deciding to touch the page.
 */
bool odp_mirror_accessible(struct odp_mirror *mirror, unsigned long addr,
			   unsigned int access)
{
	unsigned long flags;
	bool ret;

	if (addr < mirror->start || addr >= mirror->end)
		return false;
	flags = odp_mirror_lock(mirror);
	ret = odp_mirror_entry(mirror, addr, access, false);
	odp_mirror_unlock(mirror, flags);
	return ret;
}

/**
 * odp_mirror_atomic64 - an 8-byte atomic operation on the mirrored range
 * @mirror: the mirror
 * @addr: an 8-byte aligned address in the mirrored range
 * @cmp_swap: compare and swap if true, else fetch and add
 * @compare: the value compared with (compare and swap)
 * @swap_add: the value swapped in or added
 * @orig: set to the value found at @addr
 *
 * Never sleeps; callable from softirq.  The operation is the CPU's own
 * atomic instruction, so it is atomic against the process and against
 * every other device, done under the mirror's lock so that the page
 * cannot go away meanwhile.
 *
 * Return: 0; -EAGAIN if the page must be faulted for write first
 * (odp_mirror_fault()); -EFAULT outside the mirror; -EINVAL if @addr is
 * not 8-byte aligned.
 */
int odp_mirror_atomic64(struct odp_mirror *mirror, unsigned long addr,
			bool cmp_swap, u64 compare, u64 swap_add, u64 *orig)
{
	unsigned long flags;
	struct page *page;
	u64 *p;

	if (addr < mirror->start || addr >= mirror->end ||
	    mirror->end - addr < sizeof(u64))
		return -EFAULT;
	if (!IS_ALIGNED(addr, sizeof(u64)))
		return -EINVAL;

	flags = odp_mirror_lock(mirror);
	page = odp_mirror_lookup(mirror, addr,
				 ODP_MIRROR_READ | ODP_MIRROR_WRITE);
	if (!page) {
		odp_mirror_unlock(mirror, flags);
		return -EAGAIN;
	}
	p = kmap_local_page(page) + offset_in_page(addr);
	if (cmp_swap)
		*orig = cmpxchg64(p, compare, swap_add);
	else
		*orig = atomic64_fetch_add(swap_add, (atomic64_t *)p);
	kunmap_local(p);
	odp_mirror_unlock(mirror, flags);
	return 0;
}

/**
 * odp_mirror_copy - copy between a kernel buffer and the mirrored range
 * @mirror: the mirror
 * @addr: first byte in the mirrored range
 * @buf: kernel buffer
 * @length: number of bytes
 * @to_mirror: true to write the range from @buf, false to read it
 *
 * Never sleeps; callable from softirq.  All or nothing: if any page in the
 * range lacks an entry with the needed access, nothing is copied.
 *
 * Return: 0, -EAGAIN if a page must be faulted first (odp_mirror_fault()),
 * -EFAULT if the range is outside the mirror.
 */
int odp_mirror_copy(struct odp_mirror *mirror, unsigned long addr, void *buf,
		    size_t length, bool to_mirror)
{
	unsigned int access = to_mirror ? ODP_MIRROR_WRITE : ODP_MIRROR_READ;
	unsigned long flags, a;
	int ret = 0;

	if (!length)
		return 0;
	if (addr < mirror->start || addr >= mirror->end ||
	    length > mirror->end - addr)
		return -EFAULT;

	flags = odp_mirror_lock(mirror);

	for (a = ALIGN_DOWN(addr, PAGE_SIZE); a < addr + length; a += PAGE_SIZE) {
		if (!odp_mirror_entry(mirror, a, access, false)) {
			ret = -EAGAIN;
			goto out;
		}
	}

	while (length) {
		struct page *page = odp_mirror_lookup(mirror, addr, access);
		size_t off = offset_in_page(addr);
		size_t n = min_t(size_t, length, PAGE_SIZE - off);
		void *va = kmap_local_page(page);

		if (to_mirror)
			memcpy(va + off, buf, n);
		else
			memcpy(buf, va + off, n);
		kunmap_local(va);

		addr += n;
		buf += n;
		length -= n;
	}
out:
	odp_mirror_unlock(mirror, flags);
	return ret;
}

/**
 * odp_mirror_get_stats - snapshot of the mirror's counters
 * @mirror: the mirror
 * @stats: filled in
 */
void odp_mirror_get_stats(struct odp_mirror *mirror,
			  struct odp_mirror_stats *stats)
{
	unsigned long flags = odp_mirror_lock(mirror);

	*stats = mirror->stats;
	odp_mirror_unlock(mirror, flags);
}
