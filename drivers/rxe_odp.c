// SPDX-License-Identifier: GPL-2.0 OR Linux-OpenIB
/*
 * On-Demand Paging memory regions for rxe: see rxe_odp.h.
 */

#include <linux/highmem.h>
#include <linux/module.h>
#include <linux/sched/mm.h>
#include <linux/slab.h>

#include "rxe.h"
#include "rxe_loc.h"
#include "odp_mirror.h"

static bool odp = true;
module_param(odp, bool, 0444);
MODULE_PARM_DESC(odp, "Support On-Demand Paging memory regions (default: true)");

/*
 * A miss faults at least this much ahead of the address that missed (within
 * the MR), so that streaming into cold memory takes one fault per window
 * rather than one per packet.
 */
#define RXE_ODP_FAULT_AHEAD	SZ_64K

static struct workqueue_struct *rxe_odp_wq;

int rxe_odp_init(void)
{
	/* faults may allocate memory, so not WQ_MEM_RECLAIM */
	rxe_odp_wq = alloc_workqueue("rxe_odp", WQ_UNBOUND, 0);
	return rxe_odp_wq ? 0 : -ENOMEM;
}

void rxe_odp_exit(void)
{
	destroy_workqueue(rxe_odp_wq);
}

void rxe_odp_init_device_caps(struct rxe_dev *rxe)
{
	struct ib_odp_caps *caps = &rxe->attr.odp_caps;

	if (!odp)
		return;

	rxe->attr.kernel_cap_flags |= IBK_ON_DEMAND_PAGING;
	caps->general_caps = IB_ODP_SUPPORT;
	caps->per_transport_caps.rc_odp_caps = IB_ODP_SUPPORT_SEND |
					       IB_ODP_SUPPORT_RECV |
					       IB_ODP_SUPPORT_WRITE |
					       IB_ODP_SUPPORT_READ |
					       IB_ODP_SUPPORT_ATOMIC |
					       IB_ODP_SUPPORT_SRQ_RECV;
	caps->per_transport_caps.ud_odp_caps = IB_ODP_SUPPORT_SEND |
					       IB_ODP_SUPPORT_RECV;
}

static void rxe_odp_fault_work(struct work_struct *work)
{
	struct rxe_odp_fault *fault =
		container_of(work, struct rxe_odp_fault, work);
	struct rxe_mr *mr = fault->mr;
	struct rxe_qp *qp = fault->qp;
	u64 end = mr->odp->end;
	u64 ahead = min_t(u64, end - fault->addr,
			  max_t(u64, fault->length, RXE_ODP_FAULT_AHEAD));
	int err, state;

	/*
	 * Fault the window ahead; if part of it is not accessible, fall back
	 * to exactly what the data path needs, which decides the outcome.
	 */
	err = odp_mirror_fault(mr->odp, fault->addr, ahead, fault->access);
	if (err && ahead > fault->length)
		err = odp_mirror_fault(mr->odp, fault->addr, fault->length,
				       fault->access);

	fault->mr = NULL;
	rxe_put(mr);

	/* on -EBUSY the data path misses again and asks for a new fault */
	state = RXE_ODP_FAULT_IDLE;
	if (err && err != -EBUSY) {
		fault->err = -EFAULT;
		state = RXE_ODP_FAULT_FAILED;
	}
	/*
	 * Hand the slot back to the task: orders the result (and
	 * fault->mr = NULL) before the state, which the task reads with
	 * smp_load_acquire() in rxe_odp_miss().
	 */
	smp_store_release(&fault->state, state);

	rxe_sched_task(fault->task);
	rxe_put(qp);
}

void rxe_odp_fault_init(struct rxe_odp_fault *fault, struct rxe_qp *qp,
			struct rxe_task *task)
{
	INIT_WORK(&fault->work, rxe_odp_fault_work);
	fault->qp = qp;
	fault->task = task;
	fault->state = RXE_ODP_FAULT_IDLE;
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
static int rxe_odp_miss(struct rxe_odp_fault *fault, struct rxe_mr *mr,
			u64 addr, u64 length, unsigned int access)
{
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

	if (!rxe_get(fault->qp))
		return -EFAULT;
	rxe_get(mr);
	fault->mr = mr;
	fault->lkey = mr->lkey;
	fault->addr = addr;
	fault->length = length;
	fault->access = access;
	fault->state = RXE_ODP_FAULT_PENDING;
	queue_work(rxe_odp_wq, &fault->work);
	return -EAGAIN;
}

/* Called from rxe_mr_init_user() for IB_ACCESS_ON_DEMAND registrations. */
int rxe_odp_mr_init(struct rxe_mr *mr, u64 start, u64 length)
{
	struct odp_mirror *mirror;
	int err;

	if (!odp)
		return -EOPNOTSUPP;

	mirror = kzalloc(sizeof(*mirror), GFP_KERNEL_ACCOUNT);
	if (!mirror)
		return -ENOMEM;

	err = odp_mirror_init(mirror, current->mm, start, length);
	if (err) {
		kfree(mirror);
		return err;
	}

	mr->odp = mirror;
	mr->odp_va = start;
	return 0;
}

void rxe_odp_mr_cleanup(struct rxe_mr *mr)
{
	odp_mirror_fini(mr->odp);
	kfree(mr->odp);
	mr->odp = NULL;
}

static inline u64 rxe_odp_addr(struct rxe_mr *mr, u64 iova)
{
	return mr->odp_va + (iova - mr->ibmr.iova);
}

/*
 * Copy to or from an ODP MR; the range has been checked against the MR.
 * Never sleeps.  Return: 0, -EAGAIN (the task must park, see rxe_odp.h) or
 * -EFAULT (the memory is not accessible as asked).
 */
int rxe_odp_mr_copy(struct rxe_mr *mr, u64 iova, void *addr, int length,
		    bool to_mr, struct rxe_odp_fault *fault)
{
	u64 va = rxe_odp_addr(mr, iova);
	int err;

	err = odp_mirror_copy(mr->odp, va, addr, length, to_mr);
	if (err != -EAGAIN)
		return err;

	return rxe_odp_miss(fault, mr, va, length,
			    to_mr ? ODP_MIRROR_READ | ODP_MIRROR_WRITE
				  : ODP_MIRROR_READ);
}

/*
 * Execute an 8-byte atomic on an ODP MR, under the mirror's lock so that
 * the page cannot go away meanwhile.  Return: 0, -EAGAIN, -EFAULT, or
 * -EINVAL for a misaligned address.
 */
int rxe_odp_mr_atomic(struct rxe_mr *mr, u64 iova, bool cmp_swap,
		      u64 compare, u64 swap_add, u64 *orig,
		      struct rxe_odp_fault *fault)
{
	const unsigned int access = ODP_MIRROR_READ | ODP_MIRROR_WRITE;
	u64 va = rxe_odp_addr(mr, iova);
	unsigned long flags;
	struct page *page;
	u64 *p;

	if (mr_check_range(mr, iova, sizeof(u64)))
		return -EFAULT;
	if (va & (sizeof(u64) - 1))
		return -EINVAL;

	flags = odp_mirror_lock(mr->odp);
	page = odp_mirror_lookup(mr->odp, va, access);
	if (!page) {
		odp_mirror_unlock(mr->odp, flags);
		return rxe_odp_miss(fault, mr, va, sizeof(u64), access);
	}

	p = kmap_local_page(page) + offset_in_page(va);
	*orig = rxe_atomic_op(p, cmp_swap, compare, swap_add);
	kunmap_local(p);

	odp_mirror_unlock(mr->odp, flags);
	return 0;
}
