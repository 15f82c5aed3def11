/* SPDX-License-Identifier: GPL-2.0 OR Linux-OpenIB */
/*
 * What the two halves of rxe's ODP share: the MR side (rxe_odp_mr.c:
 * registration, copy, atomics, prefetch, counters) and the fault side
 * (rxe_odp_fault.c: the per-task slot, the worker, read-ahead, the
 * keepalive).  Not for the rest of rxe, which uses rxe_odp.h.
 */

#ifndef RXE_ODP_LOC_H
#define RXE_ODP_LOC_H

#include <linux/refcount.h>

#include "odp_mirror.h"

/*
 * An ODP MR: the mirror of its range and what rxe counts about it.  It
 * lives apart from the rxe_mr, as long as its last user: the MR itself,
 * and each fault, read-ahead and prefetch of it in flight.  A fault can
 * block for as long as the memory behind it takes to answer (a file on a
 * FUSE mount whose daemon hangs), longer than rxe waits for the
 * references to an MR before it frees it anyway; so a fault holds this,
 * never a reference to the rxe_mr.
 */
struct rxe_odp_mr {
	struct odp_mirror	mirror;
	struct rxe_dev		*rxe;		/* device memory held */
	refcount_t		users;
	atomic_t		prefetch_queued; /* asynchronous prefetches */
	atomic64_t		page_faults;	/* pages faulted for traffic */
	atomic64_t		page_prefetch;	/* pages prefetched */
};

static inline struct rxe_odp_mr *to_odp_mr(struct rxe_mr *mr)
{
	return container_of(mr->odp, struct rxe_odp_mr, mirror);
}

struct rxe_odp_mr *rxe_odp_mr_get(struct rxe_odp_mr *odp_mr);
void rxe_odp_mr_put(struct rxe_odp_mr *odp_mr);

/* faults, read-aheads and asynchronous prefetches run here */
extern struct workqueue_struct *rxe_odp_wq;

static inline void rxe_odp_count(struct rxe_dev *rxe, enum rxe_counters idx,
				 s64 n)
{
	atomic64_add(n, &rxe->stats_counters[idx]);
}

int rxe_odp_miss(struct rxe_odp_fault *fault, struct rxe_mr *mr, u64 addr,
		 u64 length, unsigned int access);

#endif /* RXE_ODP_LOC_H */
