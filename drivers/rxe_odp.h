/* SPDX-License-Identifier: GPL-2.0 OR Linux-OpenIB */
/*
 * On-Demand Paging memory regions for rxe.
 *
 * An ODP MR pins nothing: it mirrors the registered range of the owner's
 * address space through the notifier core (odp_mirror).  rxe's requester,
 * responder and completer run in tasklets or inline in softirq and must not
 * sleep, so when a translation is missing the data path does not fault: it
 * records the miss in the fault slot of the task it runs in, leaves the
 * QP's state exactly as it was before the packet or WQE it was working on,
 * and returns -EAGAIN.  A worker then faults the range in process context
 * and reschedules the task, which redoes the same step, now with the
 * translation present.  Nothing is dropped or retransmitted on the wire.
 */
#ifndef RXE_ODP_H
#define RXE_ODP_H

#include <linux/ktime.h>
#include <linux/types.h>
#include <linux/workqueue.h>
#include <rdma/ib_user_ioctl_verbs.h>

struct ib_mr;
struct ib_pd;
struct ib_sge;
struct odp_mirror;
struct rxe_dev;
struct sk_buff;
struct uverbs_attr_bundle;
struct rxe_mr;
struct rxe_task;

enum rxe_odp_fault_state {
	RXE_ODP_FAULT_IDLE,	/* no fault outstanding */
	RXE_ODP_FAULT_PENDING,	/* the worker owns the slot */
	RXE_ODP_FAULT_FAILED,	/* the last fault failed: report it once */
};

struct rxe_odp_fault_job;

/*
 * One per QP task (requester, responder, completer): a task waits for at
 * most one fault at a time.  Written by the task while IDLE or FAILED, by
 * the worker while PENDING; @state hands the slot over with release/acquire.
 * The worker reaches the slot only through @job, and only while the QP is
 * alive: the fault itself runs apart from the QP (see rxe_odp_fault.c).
 */
struct rxe_odp_fault {
	struct rxe_odp_fault_job *job;		/* NULL once the QP is gone */
	struct rxe_task		*task;		/* resumed after the fault */
	int			state;
	u32			lkey;		/* MR of the fault */
	u64			addr;		/* range to fault */
	u64			length;
	unsigned int		access;		/* ODP_MIRROR_READ/WRITE */
	int			err;		/* result when FAILED */
	ktime_t			start;		/* when the task parked */
	/*
	 * Set by the task before each copy: how many bytes the access it
	 * belongs to still covers from the copy's address on (the rest of
	 * the message in this MR), so a miss can fault all of it at once.
	 */
	u64			ahead;
	/*
	 * Read-ahead for streams: a miss at or after the last miss of this
	 * slot and before @stream_end (where the last fault, read-ahead
	 * included, ends) continues a stream, and its fault also maps the
	 * next window in the background once the task is resumed.
	 * @stream_end is written by the worker when it hands the slot back.
	 */
	u64			stream_end;
	bool			readahead;
	/*
	 * Set keepalive to have the parked task woken every few ms with
	 * keepalive_due set, so that it can tell its peer it is still there.
	 */
	struct timer_list	keepalive_timer;
	bool			keepalive;
	int			keepalive_due;
};

int rxe_odp_init(void);
void rxe_odp_exit(void);
void rxe_odp_init_device_caps(struct rxe_dev *rxe);

int rxe_odp_fault_init(struct rxe_odp_fault *fault, struct rxe_task *task);
void rxe_odp_fault_reset(struct rxe_odp_fault *fault);
void rxe_odp_fault_cancel(struct rxe_odp_fault *fault);
void rxe_odp_fault_fini(struct rxe_odp_fault *fault);

/* True, once, when a keepalive tick came since the last call. */
static inline bool rxe_odp_keepalive_due(struct rxe_odp_fault *fault)
{
	return READ_ONCE(fault->keepalive_due) && xchg(&fault->keepalive_due, 0);
}

int rxe_odp_mr_init(struct rxe_mr *mr, u64 start, u64 length);
void rxe_odp_mr_quiesce(struct rxe_mr *mr);
void rxe_odp_mr_cleanup(struct rxe_mr *mr);
int rxe_odp_mr_copy(struct rxe_mr *mr, u64 iova, void *addr, int length,
		    bool to_mr, struct rxe_odp_fault *fault);
int rxe_odp_mr_atomic(struct rxe_mr *mr, u64 iova, bool cmp_swap,
		      u64 compare, u64 swap_add, u64 *orig,
		      struct rxe_odp_fault *fault);

int rxe_odp_advise_mr(struct ib_pd *ibpd,
		      enum ib_uverbs_advise_mr_advice advice, u32 flags,
		      struct ib_sge *sg_list, u32 num_sge,
		      struct uverbs_attr_bundle *attrs);
int rxe_odp_fill_stat_mr_entry(struct sk_buff *msg, struct ib_mr *ibmr);

#endif /* RXE_ODP_H */
