// SPDX-License-Identifier: GPL-2.0 OR Linux-OpenIB
/*
 * On-Demand Paging memory regions for rxe, the MR side: registration,
 * copies and atomics through the mirror, advise_mr (prefetch) and the
 * counters.  A miss is handed to the fault side (rxe_odp_fault.c).  See
 * rxe_odp.h.
 */

#include <linux/module.h>
#include <linux/refcount.h>
#include <linux/sched/mm.h>
#include <linux/slab.h>
#include <linux/wait_bit.h>
#include <rdma/restrack.h>

#include "rxe.h"
#include "rxe_loc.h"
#include "rxe_odp_loc.h"

static bool odp = true;
module_param(odp, bool, 0444);
MODULE_PARM_DESC(odp, "Support On-Demand Paging memory regions (default: true)");

/*
 * How many asynchronous prefetches may wait or run for one MR at a time;
 * advise_mr fails with -EBUSY past it.
 */
#define RXE_ODP_PREFETCH_MAX	64

struct workqueue_struct *rxe_odp_wq;

struct rxe_odp_mr *rxe_odp_mr_get(struct rxe_odp_mr *odp_mr)
{
	refcount_inc(&odp_mr->users);
	return odp_mr;
}

/* May sleep when it drops the last reference. */
void rxe_odp_mr_put(struct rxe_odp_mr *odp_mr)
{
	if (refcount_dec_and_test(&odp_mr->users)) {
		odp_mirror_fini(&odp_mr->mirror);
		put_device(&odp_mr->rxe->ib_dev.dev);
		kfree(odp_mr);
		return;
	}
	/* only hashes the address: safe if the waiter frees odp_mr now */
	wake_up_var(&odp_mr->users);
}

int rxe_odp_init(void)
{
	/* faults may allocate memory, so not WQ_MEM_RECLAIM */
	rxe_odp_wq = alloc_workqueue("rxe_odp", WQ_UNBOUND, 0);
	return rxe_odp_wq ? 0 : -ENOMEM;
}

void rxe_odp_exit(void)
{
	/* the last fault of an MR may free its mirror */
	destroy_workqueue(rxe_odp_wq);
	odp_mirror_synchronize();
}

void rxe_odp_init_device_caps(struct rxe_dev *rxe)
{
	struct ib_odp_caps *caps = &rxe->attr.odp_caps;

	if (!odp)
		return;

	rxe->attr.kernel_cap_flags |= IBK_ON_DEMAND_PAGING;
	caps->general_caps = IB_ODP_SUPPORT | IB_ODP_SUPPORT_IMPLICIT;
	caps->per_transport_caps.rc_odp_caps = IB_ODP_SUPPORT_SEND |
					       IB_ODP_SUPPORT_RECV |
					       IB_ODP_SUPPORT_WRITE |
					       IB_ODP_SUPPORT_READ |
					       IB_ODP_SUPPORT_ATOMIC |
					       IB_ODP_SUPPORT_SRQ_RECV;
	caps->per_transport_caps.ud_odp_caps = IB_ODP_SUPPORT_SEND |
					       IB_ODP_SUPPORT_RECV;
}

static void rxe_odp_invalidated(struct odp_mirror *mirror,
				unsigned long npages)
{
	struct rxe_odp_mr *odp_mr =
		container_of(mirror, struct rxe_odp_mr, mirror);

	rxe_odp_count(odp_mr->rxe, RXE_CNT_ODP_PAGE_INVALIDATIONS, npages);
}

/* Reclaim asked whether the device used a page of the MR lately. */
static void rxe_odp_aged(struct odp_mirror *mirror, bool young)
{
	struct rxe_odp_mr *odp_mr =
		container_of(mirror, struct rxe_odp_mr, mirror);

	rxe_odp_count(odp_mr->rxe, RXE_CNT_ODP_YOUNG_QUERIES, 1);
	if (young)
		rxe_odp_count(odp_mr->rxe, RXE_CNT_ODP_YOUNG_FOUND, 1);
}

static const struct odp_mirror_ops rxe_odp_mirror_ops = {
	.invalidated = rxe_odp_invalidated,
	.aged = rxe_odp_aged,
};

/*
 * Called from rxe_mr_init_user() for IB_ACCESS_ON_DEMAND registrations.
 * ibv_reg_mr(pd, NULL, SIZE_MAX, ...) asks for an implicit MR: the whole
 * address space, with iova equal to the address.
 */
int rxe_odp_mr_init(struct rxe_mr *mr, u64 start, u64 length)
{
	struct rxe_odp_mr *odp_mr;
	int err;

	if (!odp)
		return -EOPNOTSUPP;

	if (!start && length == U64_MAX)
		length = TASK_SIZE;

	odp_mr = kzalloc(sizeof(*odp_mr), GFP_KERNEL_ACCOUNT);
	if (!odp_mr)
		return -ENOMEM;
	odp_mr->rxe = to_rdev(mr->ibmr.pd->device);
	refcount_set(&odp_mr->users, 1);

	err = odp_mirror_init(&odp_mr->mirror, current->mm, start, length,
			      &rxe_odp_mirror_ops);
	if (err) {
		kfree(odp_mr);
		return err;
	}
	/* a fault may outlive the device's registration, not its memory */
	get_device(&odp_mr->rxe->ib_dev.dev);

	mr->odp = &odp_mr->mirror;
	mr->odp_va = start;
	return 0;
}

/**
 * rxe_odp_mr_quiesce - stop the faults of an MR being deregistered
 * @mr: an ODP MR
 *
 * Called before the MR is taken out of the pool: faults, read-aheads and
 * prefetches of the MR stop at their next batch, later ones fail at once
 * (so a task parked on the MR resumes and completes with an access
 * error), and the caller waits for those still running, as mlx5 waits for
 * the page-fault work of an MR it destroys.  The wait is killable: if the
 * owner is killed (a fault blocked on a file whose server does not answer
 * cannot be interrupted), deregistration goes on, and the last fault to
 * return frees the mirror (rxe_odp_mr_put()).
 */
void rxe_odp_mr_quiesce(struct rxe_mr *mr)
{
	struct rxe_odp_mr *odp_mr = to_odp_mr(mr);

	odp_mirror_cancel(&odp_mr->mirror);
	wait_var_event_killable(&odp_mr->users,
				refcount_read(&odp_mr->users) == 1);
}

/* Called when the MR is freed; may leave the mirror to a running fault. */
void rxe_odp_mr_cleanup(struct rxe_mr *mr)
{
	struct rxe_odp_mr *odp_mr = to_odp_mr(mr);

	mr->odp = NULL;
	rxe_odp_mr_put(odp_mr);
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
 * Execute an 8-byte atomic on an ODP MR.  Never sleeps.  Return: 0,
 * -EAGAIN (the task must park), -EFAULT, or -EINVAL for a misaligned
 * address.
 */
int rxe_odp_mr_atomic(struct rxe_mr *mr, u64 iova, bool cmp_swap,
		      u64 compare, u64 swap_add, u64 *orig,
		      struct rxe_odp_fault *fault)
{
	u64 va = rxe_odp_addr(mr, iova);
	int err;

	if (mr_check_range(mr, iova, sizeof(u64)))
		return -EFAULT;
	err = odp_mirror_atomic64(mr->odp, va, cmp_swap, compare, swap_add,
				  orig);
	if (err != -EAGAIN)
		return err;
	fault->ahead = sizeof(u64);
	return rxe_odp_miss(fault, mr, va, sizeof(u64),
			    ODP_MIRROR_READ | ODP_MIRROR_WRITE);
}

/* One SGE of a prefetch: a referenced ODP MR and the user range in it. */
struct rxe_odp_prefetch_sge {
	struct rxe_odp_mr	*odp_mr;
	u64			addr;
	u64			length;
};

struct rxe_odp_prefetch {
	struct work_struct		work;
	unsigned int			access;
	bool				queued;	/* counted in prefetch_queued */
	u32				num_sge;
	struct rxe_odp_prefetch_sge	sge[];
};

static void rxe_odp_prefetch_free(struct rxe_odp_prefetch *pf)
{
	u32 i;

	for (i = 0; i < pf->num_sge; i++) {
		if (pf->queued)
			atomic_dec(&pf->sge[i].odp_mr->prefetch_queued);
		rxe_odp_mr_put(pf->sge[i].odp_mr);
	}
	kfree(pf);
}

static int rxe_odp_prefetch_run(struct rxe_odp_prefetch *pf)
{
	int err = 0;
	u32 i;

	for (i = 0; i < pf->num_sge; i++) {
		struct rxe_odp_mr *odp_mr = pf->sge[i].odp_mr;
		long ret;

		ret = odp_mirror_fault(&odp_mr->mirror, pf->sge[i].addr,
				       pf->sge[i].length, 0, pf->access);
		if (ret > 0) {
			atomic64_add(ret, &odp_mr->page_prefetch);
			rxe_odp_count(odp_mr->rxe, RXE_CNT_ODP_PAGE_PREFETCH,
				      ret);
		} else if (ret == -EINTR) {
			err = ret;
			break;
		} else if (ret < 0 && !err) {
			err = ret == -EBUSY || ret == -ENOMEM ? ret : -EFAULT;
		}
	}
	rxe_odp_prefetch_free(pf);
	return err;
}

static void rxe_odp_prefetch_work(struct work_struct *work)
{
	rxe_odp_prefetch_run(container_of(work, struct rxe_odp_prefetch,
					  work));
}

/*
 * Count an asynchronous prefetch against each of its MRs: -EBUSY if one
 * of them has RXE_ODP_PREFETCH_MAX waiting or running already.
 */
static int rxe_odp_prefetch_queue(struct rxe_odp_prefetch *pf)
{
	u32 i;

	for (i = 0; i < pf->num_sge; i++) {
		atomic_t *queued = &pf->sge[i].odp_mr->prefetch_queued;

		if (atomic_inc_return(queued) > RXE_ODP_PREFETCH_MAX) {
			atomic_dec(queued);
			while (i--)
				atomic_dec(&pf->sge[i].odp_mr->prefetch_queued);
			return -EBUSY;
		}
	}
	pf->queued = true;
	queue_work(rxe_odp_wq, &pf->work);
	return 0;
}

/**
 * rxe_odp_advise_mr - the advise_mr verb: prefetch ranges of ODP MRs
 * @ibpd: protection domain of the MRs
 * @advice: PREFETCH (read), PREFETCH_WRITE, or PREFETCH_NO_FAULT (make
 *	present only what the process has mapped already)
 * @flags: IB_UVERBS_ADVISE_MR_FLAG_FLUSH to wait for the faults
 * @sg_list: lkey, iova and length of each range
 * @num_sge: number of ranges
 * @attrs: unused
 *
 * Every range is checked (key, PD, ODP, bounds, write access for
 * PREFETCH_WRITE) before anything is done, so a bad one fails the call
 * whether or not it is synchronous.  A prefetch holds the ODP MRs, not the
 * MRs: deregistration stops it (rxe_odp_mr_quiesce()).
 *
 * Return: 0 or a negative errno; -EBUSY if an MR has too many
 * asynchronous prefetches outstanding, -EINTR if a synchronous one was
 * killed.
 */
int rxe_odp_advise_mr(struct ib_pd *ibpd,
		      enum ib_uverbs_advise_mr_advice advice, u32 flags,
		      struct ib_sge *sg_list, u32 num_sge,
		      struct uverbs_attr_bundle *attrs)
{
	struct rxe_pd *pd = to_rpd(ibpd);
	struct rxe_odp_prefetch *pf;
	int mr_access = 0, err;
	u32 i;

	switch (advice) {
	case IB_UVERBS_ADVISE_MR_ADVICE_PREFETCH:
		break;
	case IB_UVERBS_ADVISE_MR_ADVICE_PREFETCH_WRITE:
		mr_access = IB_ACCESS_LOCAL_WRITE;
		break;
	case IB_UVERBS_ADVISE_MR_ADVICE_PREFETCH_NO_FAULT:
		break;
	default:
		return -EOPNOTSUPP;
	}
	if (flags & ~IB_UVERBS_ADVISE_MR_FLAG_FLUSH)
		return -EOPNOTSUPP;

	pf = kzalloc(struct_size(pf, sge, num_sge), GFP_KERNEL_ACCOUNT);
	if (!pf)
		return -ENOMEM;
	INIT_WORK(&pf->work, rxe_odp_prefetch_work);
	pf->access = advice == IB_UVERBS_ADVISE_MR_ADVICE_PREFETCH_WRITE ?
		     ODP_MIRROR_READ | ODP_MIRROR_WRITE : ODP_MIRROR_READ;
	if (advice == IB_UVERBS_ADVISE_MR_ADVICE_PREFETCH_NO_FAULT)
		pf->access |= ODP_MIRROR_NO_FAULT;
	/* nobody waits for an asynchronous prefetch: traffic goes first */
	if (!(flags & IB_UVERBS_ADVISE_MR_FLAG_FLUSH))
		pf->access |= ODP_MIRROR_SPECULATIVE;

	for (i = 0; i < num_sge; i++) {
		struct rxe_mr *mr = lookup_mr(pd, 0, sg_list[i].lkey,
					      RXE_LOOKUP_LOCAL);

		err = 0;
		if (!mr)
			err = -ENOENT;
		else if (mr_access && !(mr->access & mr_access))
			err = -EPERM;
		else if (!mr->odp)
			err = -EINVAL;
		else if (!sg_list[i].length ||
			 mr_check_range(mr, sg_list[i].addr, sg_list[i].length))
			err = -EFAULT;
		if (err) {
			if (mr)
				rxe_put(mr);
			rxe_odp_prefetch_free(pf);
			return err;
		}
		pf->sge[i].odp_mr = rxe_odp_mr_get(to_odp_mr(mr));
		pf->sge[i].addr = rxe_odp_addr(mr, sg_list[i].addr);
		pf->sge[i].length = sg_list[i].length;
		pf->num_sge++;
		rxe_put(mr);
	}

	if (flags & IB_UVERBS_ADVISE_MR_FLAG_FLUSH)
		return rxe_odp_prefetch_run(pf);

	err = rxe_odp_prefetch_queue(pf);
	if (err)
		rxe_odp_prefetch_free(pf);
	return err;
}

/*
 * Per-MR counters for "rdma statistic mr", named as mlx5 names them, and
 * how many translation tables (pages of entries, 2 MiB each) the MR holds.
 */
int rxe_odp_fill_stat_mr_entry(struct sk_buff *msg, struct ib_mr *ibmr)
{
	struct rxe_mr *mr = to_rmr(ibmr);
	struct odp_mirror_stats stats;
	struct rxe_odp_mr *odp_mr;
	struct nlattr *table;

	if (!mr->odp)
		return 0;
	odp_mr = to_odp_mr(mr);
	odp_mirror_get_stats(mr->odp, &stats);

	table = nla_nest_start(msg, RDMA_NLDEV_ATTR_STAT_HWCOUNTERS);
	if (!table)
		return -EMSGSIZE;

	if (rdma_nl_stat_hwcounter_entry(msg, "page_faults",
					 atomic64_read(&odp_mr->page_faults)) ||
	    rdma_nl_stat_hwcounter_entry(msg, "page_invalidations",
					 stats.invalidated_pages) ||
	    rdma_nl_stat_hwcounter_entry(msg, "page_prefetch",
					 atomic64_read(&odp_mr->page_prefetch)) ||
	    rdma_nl_stat_hwcounter_entry(msg, "translation_tables",
					 stats.leaves)) {
		nla_nest_cancel(msg, table);
		return -EMSGSIZE;
	}

	nla_nest_end(msg, table);
	return 0;
}
