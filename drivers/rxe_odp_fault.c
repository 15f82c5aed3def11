// SPDX-License-Identifier: GPL-2.0 OR Linux-OpenIB
/*
 * On-Demand Paging memory regions for rxe, the fault side: the per-task
 * fault slot, the worker that faults in process context what the data path
 * missed, the read-ahead of a stream and the keepalive of a parked
 * responder.  See rxe_odp.h.
 */

#include <linux/delay.h>
#include <linux/kref.h>
#include <linux/slab.h>

#include "rxe.h"
#include "rxe_loc.h"
#include "rxe_odp_loc.h"

/*
 * A miss faults the rest of the access it belongs to (the rest of the
 * message within the MR), up to this much at a time, so that streaming
 * into cold memory takes one fault per window rather than one per packet.
 */
#define RXE_ODP_FAULT_WINDOW	SZ_2M

/*
 * A miss that continues a stream (see struct rxe_odp_fault) faults up to
 * the next RXE_ODP_FAULT_WINDOW boundary at least, resumes the task, and
 * has this much further faulted in the background, ending on a window
 * boundary (rxe_odp_readahead()).  At most this much, and only inside the
 * MR, is faulted that the stream may not reach.
 */
#define RXE_ODP_READAHEAD	SZ_4M

/* A fault that kept its task waiting longer than this is logged. */
#define RXE_ODP_SLOW_FAULT_MS	5000

/*
 * How often a parked RC responder re-acknowledges while it waits: well
 * below the 67 ms of the usual transport timeout (14) of its peer.
 */
#define RXE_ODP_KEEPALIVE_MS	16

/*
 * How often a fault that failed for want of memory is tried again, after
 * 2, 4, 8 ... ms, before the operation fails.
 */
#define RXE_ODP_FAULT_TRIES	8

/*
 * The part of a fault slot that the worker uses.  It is allocated apart
 * from the QP and referenced by the slot and by each fault and read-ahead
 * work in flight, so that a QP can be destroyed while a fault of it
 * blocks: the QP's destruction detaches the slot (@slot = NULL) instead of
 * waiting, the fault runs to its end against the ODP MR it references, and
 * whoever drops the last reference frees the job.
 */
struct rxe_odp_fault_job {
	struct kref		ref;
	/* guards @slot; taken by the data path (rxe_odp_miss()) in softirq */
	spinlock_t		lock;
	struct rxe_odp_fault	*slot;
	struct work_struct	work;
	struct rxe_odp_mr	*odp_mr;	/* referenced while PENDING */
	/*
	 * The read-ahead of the slot, a work item of its own: bit 0 of
	 * @ra_busy gives the ra_ fields to it while it is queued or running.
	 */
	struct work_struct	readahead_work;
	unsigned long		ra_busy;
	struct rxe_odp_mr	*ra_mr;		/* referenced while busy */
	u64			ra_start;
	u64			ra_length;
	unsigned int		ra_access;
};

static void rxe_odp_job_release(struct kref *ref)
{
	kfree(container_of(ref, struct rxe_odp_fault_job, ref));
}

static void rxe_odp_job_put(struct rxe_odp_fault_job *job)
{
	kref_put(&job->ref, rxe_odp_job_release);
}

/*
 * Count a task's wait of @us for a fault: in the total, the maximum and
 * the histogram (buckets of at most 1, 4, 16 ... 4096 ms, then longer).
 */
static void rxe_odp_count_wait(struct rxe_dev *rxe, s64 us)
{
	atomic64_t *max = &rxe->stats_counters[RXE_CNT_ODP_FAULT_WAIT_MAX_US];
	enum rxe_counters bucket = RXE_CNT_ODP_FAULT_WAIT_1MS;
	s64 limit = USEC_PER_MSEC, old = atomic64_read(max);

	while (bucket < RXE_CNT_ODP_FAULT_WAIT_LONGER && us > limit) {
		bucket++;
		limit *= 4;
	}
	rxe_odp_count(rxe, RXE_CNT_ODP_FAULT_WAITS, 1);
	rxe_odp_count(rxe, RXE_CNT_ODP_FAULT_WAIT_US, us);
	rxe_odp_count(rxe, bucket, 1);
	while (us > old && !atomic64_try_cmpxchg(max, &old, us))
		;
}

/* Count @npages pages faulted for traffic, on demand or read ahead. */
static void rxe_odp_count_faulted(struct rxe_odp_mr *odp_mr, long npages)
{
	if (npages <= 0)
		return;
	atomic64_add(npages, &odp_mr->page_faults);
	rxe_odp_count(odp_mr->rxe, RXE_CNT_ODP_PAGE_FAULTS, npages);
}

/*
 * Fault [start, start + length) of @mr in the background: the next windows
 * of a stream, mapped on another CPU while the data path copies the window
 * just faulted, so that a stream into cold memory stalls once every few
 * windows instead of at every window.  It is a work item of its own, and
 * all of it speculative: a demand fault of the same pages does not wait
 * for it, the read-ahead yields to it (odp_mirror_fault()).  One
 * read-ahead per slot at a time: a stream that outruns it faults on
 * demand.
 */
static void rxe_odp_readahead(struct rxe_odp_fault_job *job,
			      struct rxe_odp_mr *odp_mr, u64 start, u64 length,
			      unsigned int access)
{
	if (test_and_set_bit_lock(0, &job->ra_busy))
		return;
	kref_get(&job->ref);
	job->ra_mr = rxe_odp_mr_get(odp_mr);
	job->ra_start = start;
	job->ra_length = length;
	job->ra_access = access;
	queue_work(rxe_odp_wq, &job->readahead_work);
}

static void rxe_odp_readahead_work(struct work_struct *work)
{
	struct rxe_odp_fault_job *job =
		container_of(work, struct rxe_odp_fault_job, readahead_work);
	struct rxe_odp_mr *odp_mr = job->ra_mr;
	long ret;

	/*
	 * All of it only hoped for: a failure or a racing invalidation ends
	 * it, and the data path faults on demand and sees any error then.
	 */
	ret = odp_mirror_fault(&odp_mr->mirror, job->ra_start, 0,
			       job->ra_length, job->ra_access);
	rxe_odp_count_faulted(odp_mr, ret);
	job->ra_mr = NULL;
	clear_bit_unlock(0, &job->ra_busy);
	rxe_odp_mr_put(odp_mr);
	rxe_odp_job_put(job);
}

/*
 * Fault what the data path asked for, trying again a few times after a
 * failure that was not its fault (no memory for the table, or for hmm's
 * walk): only an access the memory does not allow fails the operation.
 */
static long rxe_odp_fault_range(struct rxe_odp_mr *odp_mr, u64 addr,
				u64 length, u64 ahead, unsigned int access)
{
	unsigned int tries = 0;
	long ret;

	for (;;) {
		ret = odp_mirror_fault(&odp_mr->mirror, addr, length, ahead,
				       access);
		if (ret != -ENOMEM || ++tries >= RXE_ODP_FAULT_TRIES)
			return ret;
		msleep(1U << tries);
	}
}

/*
 * Say where a slow fault spent its time.  The mirror's counters are
 * shared by every fault of the MR, so with faults of other QPs or a
 * prefetch in flight they tell about all of them.
 */
static void rxe_odp_report_slow(struct rxe_odp_mr *odp_mr,
				const struct odp_mirror_stats *before,
				u64 addr, u64 length, u64 window,
				unsigned int access, s64 waited_us,
				s64 queued_ms, long ret)
{
	struct odp_mirror_stats now;

	odp_mirror_get_stats(&odp_mr->mirror, &now);
	pr_info_ratelimited("ODP %s fault of %llu bytes at %#llx (window %llu) took %lld ms, %lld ms of them queued: %ld; MR: %llu passes, %llu busy, %llu raced, %llu ms for the mmap lock, %llu ms in hmm, %llu waits for other batches in %llu ms\n",
			    access & ODP_MIRROR_WRITE ? "write" : "read",
			    length, addr, window, waited_us / USEC_PER_MSEC,
			    queued_ms, ret, now.passes - before->passes,
			    now.busy_passes - before->busy_passes,
			    now.raced_passes - before->raced_passes,
			    (now.lock_wait_us - before->lock_wait_us) /
				USEC_PER_MSEC,
			    (now.hmm_us - before->hmm_us) / USEC_PER_MSEC,
			    now.batch_waits - before->batch_waits,
			    (now.batch_wait_us - before->batch_wait_us) /
				USEC_PER_MSEC);
}

static void rxe_odp_fault_work(struct work_struct *work)
{
	struct rxe_odp_fault_job *job =
		container_of(work, struct rxe_odp_fault_job, work);
	struct rxe_odp_mr *odp_mr = job->odp_mr;
	u64 addr, length, ahead, window, ra_start, ra_end;
	struct rxe_odp_fault *fault;
	unsigned long flags;
	unsigned int access;
	bool readahead;
	struct odp_mirror_stats before;
	ktime_t start, begun;
	s64 waited;
	long ret;
	int state;

	/* the slot is ours while PENDING, as long as the QP lives */
	spin_lock_irqsave(&job->lock, flags);
	fault = job->slot;
	if (fault) {
		addr = fault->addr;
		length = fault->length;
		ahead = fault->ahead;
		access = fault->access;
		readahead = fault->readahead;
		start = fault->start;
	}
	spin_unlock_irqrestore(&job->lock, flags);
	if (!fault)
		goto out;

	if (readahead)
		ahead = max(ahead, ALIGN(addr + 1, RXE_ODP_FAULT_WINDOW) - addr);
	window = min_t(u64, odp_mr->mirror.end - addr,
		       clamp_t(u64, ahead, length, RXE_ODP_FAULT_WINDOW));
	ra_start = addr + window;
	ra_end = ra_start;

	/*
	 * What the data path needs decides the outcome; the rest of the
	 * window comes with it unless it is inaccessible or the process is
	 * changing it right now (odp_mirror_fault()'s @ahead): the task then
	 * resumes without it and faults again when it gets there.
	 */
	odp_mirror_get_stats(&odp_mr->mirror, &before);
	begun = ktime_get();
	ret = rxe_odp_fault_range(odp_mr, addr, length, window - length,
				  access);
	waited = ktime_us_delta(ktime_get(), start);
	rxe_odp_count_faulted(odp_mr, ret);
	rxe_odp_count_wait(odp_mr->rxe, waited);
	/* a fault this slow is worth a line: the peer may be retrying */
	if (waited > RXE_ODP_SLOW_FAULT_MS * USEC_PER_MSEC)
		rxe_odp_report_slow(odp_mr, &before, addr, length, window,
				    access, waited, ktime_ms_delta(begun, start),
				    ret);

	if (ret >= 0 && readahead) {
		ra_end = min_t(u64, odp_mr->mirror.end,
			       ALIGN(ra_start + RXE_ODP_READAHEAD,
				     RXE_ODP_FAULT_WINDOW));
		if (ra_end > ra_start)
			rxe_odp_readahead(job, odp_mr, ra_start,
					  ra_end - ra_start, access);
	}

	/* on -EBUSY the data path misses again and asks for a new fault */
	state = RXE_ODP_FAULT_IDLE;
	if (ret < 0 && ret != -EBUSY)
		state = RXE_ODP_FAULT_FAILED;

	spin_lock_irqsave(&job->lock, flags);
	fault = job->slot;
	if (fault) {
		WRITE_ONCE(fault->stream_end, ra_end);
		fault->err = -EFAULT;
		/*
		 * Hand the slot back to the task: orders the result before
		 * the state, which the task reads with smp_load_acquire() in
		 * rxe_odp_miss().
		 */
		smp_store_release(&fault->state, state);
		rxe_sched_task(fault->task);
	}
	spin_unlock_irqrestore(&job->lock, flags);
out:
	rxe_odp_mr_put(odp_mr);
	rxe_odp_job_put(job);
}

/*
 * Wake the parked task with keepalive_due set, every RXE_ODP_KEEPALIVE_MS
 * while its fault is pending.  A timer rather than delayed work: the
 * keepalive races the peer's retransmit timer, a timer too, and a work
 * item also waits for a kworker to be scheduled after its timer fired,
 * which on a busy machine is long enough for the peer to resend a window.
 * Takes no reference: rxe_odp_fault_fini() stops it before the QP goes.
 */
static void rxe_odp_keepalive_tick(struct timer_list *timer)
{
	struct rxe_odp_fault *fault = from_timer(fault, timer,
						 keepalive_timer);

	/* pairs with smp_store_release() in rxe_odp_fault_work() */
	if (smp_load_acquire(&fault->state) != RXE_ODP_FAULT_PENDING)
		return;
	WRITE_ONCE(fault->keepalive_due, 1);
	rxe_sched_task(fault->task);
	mod_timer(&fault->keepalive_timer,
		  jiffies + msecs_to_jiffies(RXE_ODP_KEEPALIVE_MS));
}

/* Return: 0 or -ENOMEM. */
int rxe_odp_fault_init(struct rxe_odp_fault *fault, struct rxe_task *task)
{
	struct rxe_odp_fault_job *job;

	timer_setup(&fault->keepalive_timer, rxe_odp_keepalive_tick, 0);
	job = kzalloc(sizeof(*job), GFP_KERNEL_ACCOUNT);
	if (!job)
		return -ENOMEM;
	kref_init(&job->ref);
	spin_lock_init(&job->lock);
	job->slot = fault;
	INIT_WORK(&job->work, rxe_odp_fault_work);
	INIT_WORK(&job->readahead_work, rxe_odp_readahead_work);

	fault->job = job;
	fault->task = task;
	fault->state = RXE_ODP_FAULT_IDLE;
	return 0;
}

/*
 * Called when the QP is destroyed, before rxe waits for the references to
 * it: detach the slot from a fault that may still run (the fault then
 * finishes without resuming anything) and resume the task.  A task parked
 * on a fault keeps the packet it works on, which holds the QP; resumed,
 * it finds no fault to wait for, fails the operation as an access error
 * and lets go of the packet.  Never waits for the fault.
 */
void rxe_odp_fault_cancel(struct rxe_odp_fault *fault)
{
	struct rxe_odp_fault_job *job = fault->job;
	unsigned long flags;

	if (!job)
		return;
	spin_lock_irqsave(&job->lock, flags);
	job->slot = NULL;
	spin_unlock_irqrestore(&job->lock, flags);
	/* the keepalive only rearms itself while PENDING */
	smp_store_release(&fault->state, RXE_ODP_FAULT_IDLE);
	rxe_sched_task(fault->task);
}

/* Called when the QP is cleaned up, its tasks stopped. */
void rxe_odp_fault_fini(struct rxe_odp_fault *fault)
{
	struct rxe_odp_fault_job *job = fault->job;

	/*
	 * No job: rxe_odp_fault_init() failed or never ran (the QP's setup
	 * stopped before it), so nothing was queued and the keepalive timer,
	 * which only a queued fault arms, may not even be set up.
	 */
	if (!job)
		return;
	rxe_odp_fault_cancel(fault);
	del_timer_sync(&fault->keepalive_timer);
	fault->job = NULL;
	rxe_odp_job_put(job);
}

/* Forget a failed fault; called when the QP is reset. */
void rxe_odp_fault_reset(struct rxe_odp_fault *fault)
{
	cmpxchg(&fault->state, RXE_ODP_FAULT_FAILED, RXE_ODP_FAULT_IDLE);
}

/*
 * The data path found no usable translation for [addr, addr + length).
 * Return -EAGAIN after queueing (or while waiting for) a fault, or the
 * error of a fault that already failed for this address.
 */
int rxe_odp_miss(struct rxe_odp_fault *fault, struct rxe_mr *mr, u64 addr,
		 u64 length, unsigned int access)
{
	struct rxe_odp_fault_job *job;
	unsigned long flags;

	/* pairs with smp_store_release() in rxe_odp_fault_work() */
	switch (smp_load_acquire(&fault->state)) {
	case RXE_ODP_FAULT_PENDING:
		return -EAGAIN;
	case RXE_ODP_FAULT_FAILED:
		fault->state = RXE_ODP_FAULT_IDLE;
		if (fault->lkey == mr->lkey && addr >= fault->addr &&
		    addr < fault->addr + fault->length &&
		    !(access & ~fault->access))
			return fault->err;
		break;
	}

	/* no fault for a QP being destroyed (rxe_odp_fault_cancel()) */
	job = fault->job;
	if (!job)
		return -EFAULT;
	spin_lock_irqsave(&job->lock, flags);
	if (!job->slot) {
		spin_unlock_irqrestore(&job->lock, flags);
		return -EFAULT;
	}
	kref_get(&job->ref);
	job->odp_mr = rxe_odp_mr_get(to_odp_mr(mr));
	fault->readahead = fault->lkey == mr->lkey && addr >= fault->addr &&
			   addr <= READ_ONCE(fault->stream_end);
	fault->lkey = mr->lkey;
	fault->addr = addr;
	fault->length = length;
	fault->access = access;
	fault->start = ktime_get();
	fault->state = RXE_ODP_FAULT_PENDING;
	queue_work(rxe_odp_wq, &job->work);
	spin_unlock_irqrestore(&job->lock, flags);

	/* start ticking unless already ticking: never push a tick back */
	if (fault->keepalive)
		timer_reduce(&fault->keepalive_timer,
			     jiffies + msecs_to_jiffies(RXE_ODP_KEEPALIVE_MS));
	return -EAGAIN;
}
