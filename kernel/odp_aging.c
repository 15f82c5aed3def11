// SPDX-License-Identifier: GPL-2.0
/*
 * odp_aging: tell reclaim which pages a device uses through its mirrors.
 *
 * A page that only a device touches has no accessed bit set in any CPU
 * page table, so without help reclaim takes it for an idle page and swaps
 * out exactly the pages a device streams through.  The young callbacks of
 * the MMU notifier API (clear_flush_young, clear_young, test_young) are how
 * a secondary MMU says otherwise; mmu_interval_notifier has none, so every
 * address space with mirrors gets one struct mmu_notifier of ours
 * (mmu_notifier_get()), shared by all its mirrors and holding them in an
 * interval tree.  The answers come from the accessed bits that the data
 * path sets in the mirrors' tables (odp_mirror_age()).
 *
 * The callbacks run under the page table lock (and rmap locks) inside the
 * notifier SRCU: they never sleep, never allocate and never drop a
 * translation.  Lock order: page table lock -> odp_aging_mm.lock ->
 * odp_mirror.lock.
 *
 * There is no change_pte callback: every set_pte_at_notify() runs inside an
 * invalidate_range_start/end pair, whose start already dropped the entry,
 * and installing one inside that window is what the mirror forbids.
 */

#include <linux/interval_tree.h>
#include <linux/mmap_lock.h>
#include <linux/mmu_notifier.h>
#include <linux/module.h>
#include <linux/slab.h>
#include <linux/spinlock.h>

#include "odp_mirror.h"
#include "odp_aging.h"

bool odp_aging = true;
module_param(odp_aging, bool, 0644);
MODULE_PARM_DESC(odp_aging,
		 "Tell reclaim which pages On-Demand Paging MRs use (default: true)");

/*
 * The notifier of one address space and the mirrors it answers for.  Each
 * mirror holds a reference to it, and so does the notifier itself, from
 * the first mirror until the address space goes (->release) or the module
 * does (odp_mirror_synchronize()): subscribing a new notifier takes
 * mm_take_all_locks(), and a process that registers and deregisters one
 * MR at a time would pay for that at every registration.
 */
struct odp_aging_mm {
	struct mmu_notifier notifier;
	spinlock_t lock;		/* guards @mirrors */
	struct rb_root_cached mirrors;	/* odp_mirror.aging_node */
	/* on odp_aging_all while it holds its own reference */
	struct list_head resident;
};

static LIST_HEAD(odp_aging_all);
static DEFINE_SPINLOCK(odp_aging_all_lock);

/*
 * Take @amm off odp_aging_all; true if it was there, and its own
 * reference is then the caller's to drop.  Called with odp_aging_all_lock.
 */
static bool odp_aging_unlist(struct odp_aging_mm *amm)
{
	bool held = !list_empty(&amm->resident);

	lockdep_assert_held(&odp_aging_all_lock);
	list_del_init(&amm->resident);
	return held;
}

/* Drop @amm's own reference, if it still holds it. */
static void odp_aging_evict(struct odp_aging_mm *amm)
{
	bool held;

	spin_lock(&odp_aging_all_lock);
	held = odp_aging_unlist(amm);
	spin_unlock(&odp_aging_all_lock);
	if (held)
		mmu_notifier_put(&amm->notifier);
}

static inline struct odp_aging_mm *to_aging_mm(struct mmu_notifier *mn)
{
	return container_of(mn, struct odp_aging_mm, notifier);
}

/*
 * Was a page of [start, end) used by a device since the last question?
 * @clear forgets the answer for the next question.
 */
static int odp_aging_young(struct mmu_notifier *mn, unsigned long start,
			   unsigned long end, bool clear)
{
	struct odp_aging_mm *amm = to_aging_mm(mn);
	struct interval_tree_node *node;
	bool young = false;

	if (!READ_ONCE(odp_aging))
		return 0;

	spin_lock(&amm->lock);
	for (node = interval_tree_iter_first(&amm->mirrors, start, end - 1);
	     node; node = interval_tree_iter_next(node, start, end - 1)) {
		struct odp_mirror *mirror =
			container_of(node, struct odp_mirror, aging_node);

		young |= odp_mirror_age(mirror, start, end, clear);
	}
	spin_unlock(&amm->lock);
	return young;
}

/*
 * Reclaim's question (folio_referenced()); a device has no TLB of its own
 * to flush: the data path reads the table under the mirror's lock.
 */
static int odp_aging_clear_flush_young(struct mmu_notifier *mn,
				       struct mm_struct *mm,
				       unsigned long start, unsigned long end)
{
	return odp_aging_young(mn, start, end, true);
}

/* Idle page tracking and DAMON. */
static int odp_aging_clear_young(struct mmu_notifier *mn,
				 struct mm_struct *mm,
				 unsigned long start, unsigned long end)
{
	return odp_aging_young(mn, start, end, true);
}

/* khugepaged and idle page tracking, without forgetting the answer. */
static int odp_aging_test_young(struct mmu_notifier *mn,
				struct mm_struct *mm, unsigned long address)
{
	return odp_aging_young(mn, address, address + PAGE_SIZE, false);
}

/*
 * The address space is going: its mirrors have been emptied by the
 * invalidation of everything (their MRs go when the files are closed).
 */
static void odp_aging_release(struct mmu_notifier *mn, struct mm_struct *mm)
{
	odp_aging_evict(to_aging_mm(mn));
}

/* Called with the mmap lock held for write, by odp_aging_add(). */
static struct mmu_notifier *odp_aging_alloc_notifier(struct mm_struct *mm)
{
	struct odp_aging_mm *amm;

	amm = kzalloc(sizeof(*amm), GFP_KERNEL_ACCOUNT);
	if (!amm)
		return ERR_PTR(-ENOMEM);
	spin_lock_init(&amm->lock);
	amm->mirrors = RB_ROOT_CACHED;
	INIT_LIST_HEAD(&amm->resident);
	return &amm->notifier;
}

/* Called after an SRCU grace period, once the last mirror has gone. */
static void odp_aging_free_notifier(struct mmu_notifier *mn)
{
	struct odp_aging_mm *amm = to_aging_mm(mn);

	WARN_ON_ONCE(!RB_EMPTY_ROOT(&amm->mirrors.rb_root) ||
		     !list_empty(&amm->resident));
	kfree(amm);
}

static const struct mmu_notifier_ops odp_aging_ops = {
	.release = odp_aging_release,
	.clear_flush_young = odp_aging_clear_flush_young,
	.clear_young = odp_aging_clear_young,
	.test_young = odp_aging_test_young,
	.alloc_notifier = odp_aging_alloc_notifier,
	.free_notifier = odp_aging_free_notifier,
};

/*
 * Let reclaim ask @mirror about the pages of @mm it maps; process context.
 * Takes the mmap lock of @mm for write, killably: a fault of the process
 * may hold it for read as long as a file system takes to answer.
 * Return: 0, -EINTR if the caller was killed meanwhile, or another
 * negative errno.
 */
int odp_aging_add(struct odp_mirror *mirror, struct mm_struct *mm)
{
	struct mmu_notifier *mn;
	struct odp_aging_mm *amm;

	if (mmap_write_lock_killable(mm))
		return -EINTR;
	mn = mmu_notifier_get_locked(&odp_aging_ops, mm);
	if (IS_ERR(mn)) {
		mmap_write_unlock(mm);
		return PTR_ERR(mn);
	}
	amm = to_aging_mm(mn);
	/* a new notifier: a reference of its own (found, it cannot fail) */
	if (list_empty(&amm->resident) &&
	    !IS_ERR(mmu_notifier_get_locked(&odp_aging_ops, mm))) {
		spin_lock(&odp_aging_all_lock);
		list_add(&amm->resident, &odp_aging_all);
		spin_unlock(&odp_aging_all_lock);
	}
	mmap_write_unlock(mm);

	mirror->aging = amm;
	mirror->aging_node.start = mirror->start;
	mirror->aging_node.last = mirror->end - 1;
	spin_lock(&amm->lock);
	interval_tree_insert(&mirror->aging_node, &amm->mirrors);
	spin_unlock(&amm->lock);
	return 0;
}

/*
 * Take @mirror out of reach of reclaim's questions: once this returns, no
 * young callback uses it.  May sleep.
 */
void odp_aging_remove(struct odp_mirror *mirror)
{
	struct odp_aging_mm *amm = mirror->aging;

	spin_lock(&amm->lock);
	interval_tree_remove(&mirror->aging_node, &amm->mirrors);
	spin_unlock(&amm->lock);
	mirror->aging = NULL;
	mmu_notifier_put(&amm->notifier);
}

/**
 * odp_mirror_synchronize - free the core's per-mm state
 *
 * For module exit, after the last odp_mirror_fini(): the notifiers of the
 * address spaces that are still alive let go of them, and are freed after
 * an SRCU grace period, by code of the module; this waits for that too.
 */
void odp_mirror_synchronize(void)
{
	struct odp_aging_mm *amm;

	/*
	 * Not odp_aging_evict(): once the lock is dropped, ->release may
	 * evict the first entry and its last reference go.  Taken off the
	 * list under the lock, the reference is ours.
	 */
	spin_lock(&odp_aging_all_lock);
	while ((amm = list_first_entry_or_null(&odp_aging_all,
					       struct odp_aging_mm,
					       resident))) {
		odp_aging_unlist(amm);
		spin_unlock(&odp_aging_all_lock);
		mmu_notifier_put(&amm->notifier);
		spin_lock(&odp_aging_all_lock);
	}
	spin_unlock(&odp_aging_all_lock);
	mmu_notifier_synchronize();
}
