// SPDX-License-Identifier: GPL-2.0
/*
 * test_odp_mirror.ko: a test device for the notifier core, in the manner of
 * lib/test_hmm.c.  Each open file of /dev/test_odp_mirror is one mirror of
 * a range of the opener's address space, and its ioctls (see
 * test_odp_mirror.h) are what a device does with a mirror: fault, copy
 * through the entries, atomics, look them up, prefetch, cancel.  The device itself
 * never holds a page: whether an entry exists is all that the tests see,
 * and the data they copy goes through the entries as a device's would.
 */

#include <linux/fs.h>
#include <linux/miscdevice.h>
#include <linux/module.h>
#include <linux/sched/mm.h>
#include <linux/slab.h>
#include <linux/uaccess.h>

#include "odp_mirror.h"
#include "test_odp_mirror.h"

/* the bounce buffer of one step of ODP_TEST_IOC_READ and _WRITE */
#define ODP_TEST_COPY_STEP	(16 * PAGE_SIZE)

struct odp_test_file {
	struct mutex init_lock;	/* serialises ODP_TEST_IOC_INIT */
	bool live;		/* @mirror is initialised; set once */
	struct odp_mirror mirror;
};

static int odp_test_open(struct inode *inode, struct file *filp)
{
	struct odp_test_file *tf = kzalloc(sizeof(*tf), GFP_KERNEL);

	if (!tf)
		return -ENOMEM;
	mutex_init(&tf->init_lock);
	filp->private_data = tf;
	return 0;
}

/* no ioctl of the file runs any more: its mirror has no fault in flight */
static int odp_test_release(struct inode *inode, struct file *filp)
{
	struct odp_test_file *tf = filp->private_data;

	if (tf->live)
		odp_mirror_fini(&tf->mirror);
	kfree(tf);
	return 0;
}

static int odp_test_init(struct odp_test_file *tf,
			 const struct odp_test_cmd *cmd)
{
	int err = -EBUSY;

	mutex_lock(&tf->init_lock);
	if (!tf->live) {
		err = odp_mirror_init(&tf->mirror, current->mm, cmd->addr,
				      cmd->length, NULL);
		if (!err) /* the mirror before @live: odp_test_mirror() */
			smp_store_release(&tf->live, true);
	}
	mutex_unlock(&tf->init_lock);
	return err;
}

static struct odp_mirror *odp_test_mirror(struct odp_test_file *tf)
{
	/* @live before the mirror: odp_test_init() */
	return smp_load_acquire(&tf->live) ? &tf->mirror : NULL;
}

static unsigned int odp_test_access(u32 access)
{
	unsigned int mirror_access = 0;

	if (access & ODP_TEST_ACCESS_READ)
		mirror_access |= ODP_MIRROR_READ;
	if (access & ODP_TEST_ACCESS_WRITE)
		mirror_access |= ODP_MIRROR_WRITE;
	if (access & ODP_TEST_ACCESS_NO_FAULT)
		mirror_access |= ODP_MIRROR_NO_FAULT;
	if (access & ODP_TEST_ACCESS_SPECULATIVE)
		mirror_access |= ODP_MIRROR_SPECULATIVE;
	return mirror_access;
}

static long odp_test_fault(struct odp_mirror *mirror, struct odp_test_cmd *cmd)
{
	u32 known = ODP_TEST_ACCESS_READ | ODP_TEST_ACCESS_WRITE |
		    ODP_TEST_ACCESS_NO_FAULT | ODP_TEST_ACCESS_SPECULATIVE;
	long ret;

	/* the core's contract: READ always, NO_FAULT only for reads */
	if ((cmd->access & ~known) || !(cmd->access & ODP_TEST_ACCESS_READ) ||
	    ((cmd->access & ODP_TEST_ACCESS_NO_FAULT) &&
	     (cmd->access & ODP_TEST_ACCESS_WRITE)))
		return -EINVAL;
	ret = odp_mirror_fault(mirror, cmd->addr, cmd->length, cmd->ahead,
			       odp_test_access(cmd->access));
	if (ret < 0)
		return ret;
	cmd->result = ret;
	return 0;
}

/*
 * Copy between the mirror and the caller's buffer in steps, each all or
 * nothing as odp_mirror_copy() is: on -EAGAIN the steps before have been
 * copied.
 */
static long odp_test_copy(struct odp_mirror *mirror,
			  const struct odp_test_cmd *cmd, bool to_mirror)
{
	void __user *ubuf = u64_to_user_ptr(cmd->buf);
	u64 done, n;
	long ret = 0;
	void *kbuf;

	if (cmd->length > ODP_TEST_COPY_MAX)
		return -E2BIG;
	kbuf = kmalloc(ODP_TEST_COPY_STEP, GFP_KERNEL);
	if (!kbuf)
		return -ENOMEM;
	for (done = 0; done < cmd->length; done += n) {
		n = min_t(u64, cmd->length - done, ODP_TEST_COPY_STEP);
		if (to_mirror && copy_from_user(kbuf, ubuf + done, n)) {
			ret = -EFAULT;
			break;
		}
		ret = odp_mirror_copy(mirror, cmd->addr + done, kbuf, n,
				      to_mirror);
		if (ret)
			break;
		if (!to_mirror && copy_to_user(ubuf + done, kbuf, n)) {
			ret = -EFAULT;
			break;
		}
		cond_resched();
	}
	kfree(kbuf);
	return ret;
}

static long odp_test_present(struct odp_mirror *mirror,
			     struct odp_test_cmd *cmd)
{
	unsigned int access = odp_test_access(cmd->access) &
			      (ODP_MIRROR_READ | ODP_MIRROR_WRITE);
	unsigned long addr, end;
	s64 n = 0;

	if (!access || check_add_overflow(cmd->addr, cmd->length, &end))
		return -EINVAL;
	for (addr = ALIGN_DOWN(cmd->addr, PAGE_SIZE); addr < end;
	     addr += PAGE_SIZE) {
		if (odp_mirror_accessible(mirror, addr, access))
			n++;
		if (fatal_signal_pending(current))
			return -EINTR;
		cond_resched();
	}
	cmd->result = n;
	return 0;
}

static long odp_test_atomic(struct odp_mirror *mirror, void __user *uarg)
{
	struct odp_test_atomic at;
	long ret;

	if (copy_from_user(&at, uarg, sizeof(at)))
		return -EFAULT;
	if (at.pad || at.cmp_swap > 1)
		return -EINVAL;
	ret = odp_mirror_atomic64(mirror, at.addr, at.cmp_swap, at.compare,
				  at.swap_add, &at.orig);
	if (!ret && copy_to_user(uarg, &at, sizeof(at)))
		ret = -EFAULT;
	return ret;
}

static void odp_test_stats(struct odp_mirror *mirror,
			   struct odp_test_stats *out)
{
	struct odp_mirror_stats stats;

	odp_mirror_get_stats(mirror, &stats);
	memset(out, 0, sizeof(*out));
	out->faults = stats.faults;
	out->faulted_pages = stats.faulted_pages;
	out->invalidations = stats.invalidations;
	out->invalidated_pages = stats.invalidated_pages;
	out->leaves = stats.leaves;
	out->passes = stats.passes;
	out->busy_passes = stats.busy_passes;
	out->raced_passes = stats.raced_passes;
	out->batch_waits = stats.batch_waits;
}

static long odp_test_ioctl(struct file *filp, unsigned int op,
			   unsigned long arg)
{
	struct odp_test_file *tf = filp->private_data;
	void __user *uarg = (void __user *)arg;
	struct odp_mirror *mirror;
	struct odp_test_stats stats;
	struct odp_test_cmd cmd;
	long ret;

	switch (op) {
	case ODP_TEST_IOC_INIT:
	case ODP_TEST_IOC_FAULT:
	case ODP_TEST_IOC_READ:
	case ODP_TEST_IOC_WRITE:
	case ODP_TEST_IOC_PRESENT:
		if (copy_from_user(&cmd, uarg, sizeof(cmd)))
			return -EFAULT;
		if (cmd.pad)
			return -EINVAL;
		break;
	case ODP_TEST_IOC_STATS:
	case ODP_TEST_IOC_CANCEL:
	case ODP_TEST_IOC_ATOMIC:
		break;
	default:
		return -ENOTTY;
	}
	if (op == ODP_TEST_IOC_INIT)
		return odp_test_init(tf, &cmd);

	mirror = odp_test_mirror(tf);
	if (!mirror)
		return -ENXIO;
	switch (op) {
	case ODP_TEST_IOC_FAULT:
		ret = odp_test_fault(mirror, &cmd);
		break;
	case ODP_TEST_IOC_READ:
		return odp_test_copy(mirror, &cmd, false);
	case ODP_TEST_IOC_WRITE:
		return odp_test_copy(mirror, &cmd, true);
	case ODP_TEST_IOC_PRESENT:
		ret = odp_test_present(mirror, &cmd);
		break;
	case ODP_TEST_IOC_STATS:
		odp_test_stats(mirror, &stats);
		return copy_to_user(uarg, &stats, sizeof(stats)) ? -EFAULT : 0;
	case ODP_TEST_IOC_ATOMIC:
		return odp_test_atomic(mirror, uarg);
	default:
		odp_mirror_cancel(mirror);
		return 0;
	}
	if (!ret && copy_to_user(uarg, &cmd, sizeof(cmd)))
		ret = -EFAULT;
	return ret;
}

static const struct file_operations odp_test_fops = {
	.owner = THIS_MODULE,
	.open = odp_test_open,
	.release = odp_test_release,
	.unlocked_ioctl = odp_test_ioctl,
	.llseek = noop_llseek,
};

static struct miscdevice odp_test_device = {
	.minor = MISC_DYNAMIC_MINOR,
	.name = "test_odp_mirror",
	.fops = &odp_test_fops,
};

static int __init odp_test_module_init(void)
{
	return misc_register(&odp_test_device);
}

static void __exit odp_test_module_exit(void)
{
	misc_deregister(&odp_test_device);
	/* the address-space notifiers of mirrors gone */
	odp_mirror_synchronize();
}

module_init(odp_test_module_init);
module_exit(odp_test_module_exit);
MODULE_LICENSE("GPL");
MODULE_DESCRIPTION("Test device for the odp_mirror notifier core");
