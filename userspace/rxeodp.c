// SPDX-License-Identifier: GPL-2.0 OR Linux-OpenIB
/*
 * librxeodp: ibv_advise_mr() for rxe on rdma-core 44.  Talks to the kernel
 * only through the uverbs ioctl ABI, using public fields of libibverbs
 * objects (context->cmd_fd, pd->handle).
 */
#include <errno.h>
#include <string.h>
#include <sys/ioctl.h>
#include <rdma/ib_user_ioctl_cmds.h>
#include <rdma/ib_user_ioctl_verbs.h>
#include <rdma/rdma_user_ioctl_cmds.h>

#include "rxeodp.h"

#define ADVISE_MR_ATTRS 4
#define RXE_VENDOR_ID 0xffffff	/* what rxe reports as vendor_id */

struct advise_mr_cmd {
	struct ib_uverbs_ioctl_hdr hdr;
	struct ib_uverbs_attr attrs[ADVISE_MR_ATTRS];
};

static void fill_attr(struct ib_uverbs_attr *attr, uint16_t id, uint16_t len,
		      uint64_t data)
{
	memset(attr, 0, sizeof(*attr));
	attr->attr_id = id;
	attr->len = len;
	attr->flags = UVERBS_ATTR_F_MANDATORY;
	attr->data = data;
}

/*
 * struct ibv_sge and struct ib_uverbs_sge have the same layout; the kernel
 * copies the array in.  Returns 0 or an errno value, like ibv_advise_mr().
 */
int rxeodp_advise_mr(struct ibv_pd *pd, enum ibv_advise_mr_advice advice,
		     uint32_t flags, struct ibv_sge *sg_list, uint32_t num_sge)
{
	struct advise_mr_cmd cmd;
	size_t sge_bytes = (size_t)num_sge * sizeof(struct ib_uverbs_sge);

	_Static_assert(sizeof(struct ibv_sge) == sizeof(struct ib_uverbs_sge),
		       "ibv_sge and ib_uverbs_sge differ");

	if (!pd || !sg_list || !num_sge || sge_bytes > UINT16_MAX)
		return EINVAL;

	memset(&cmd.hdr, 0, sizeof(cmd.hdr));
	cmd.hdr.length = sizeof(cmd);
	cmd.hdr.object_id = UVERBS_OBJECT_MR;
	cmd.hdr.method_id = UVERBS_METHOD_ADVISE_MR;
	cmd.hdr.num_attrs = ADVISE_MR_ATTRS;
	cmd.hdr.driver_id = RDMA_DRIVER_RXE;

	fill_attr(&cmd.attrs[0], UVERBS_ATTR_ADVISE_MR_PD_HANDLE, 0,
		  pd->handle);
	fill_attr(&cmd.attrs[1], UVERBS_ATTR_ADVISE_MR_ADVICE,
		  sizeof(uint64_t), advice);
	fill_attr(&cmd.attrs[2], UVERBS_ATTR_ADVISE_MR_FLAGS,
		  sizeof(uint32_t), flags);
	fill_attr(&cmd.attrs[3], UVERBS_ATTR_ADVISE_MR_SGE_LIST, sge_bytes,
		  (uintptr_t)sg_list);

	if (ioctl(pd->context->cmd_fd, RDMA_VERBS_IOCTL, &cmd))
		return errno;
	return 0;
}

/*
 * Make ibv_advise_mr() on @context call rxeodp_advise_mr().  Only for rxe
 * devices, and only where the provider has no advise_mr of its own (its
 * slot then holds libibverbs' EOPNOTSUPP stub).  Returns 0 or an errno.
 */
int rxeodp_enable_advise_mr(struct ibv_context *context)
{
	struct verbs_context *vctx = verbs_get_ctx(context);
	struct ibv_device_attr attr;
	struct ibv_pd *pd;
	struct ibv_sge sge = { 0 };
	int ret;

	if (!vctx ||
	    vctx->sz < sizeof(*vctx) - offsetof(struct verbs_context, advise_mr))
		return EOPNOTSUPP;
	if (ibv_query_device(context, &attr))
		return errno ? errno : EIO;
	if (attr.vendor_id != RXE_VENDOR_ID)
		return EOPNOTSUPP;

	/* already works: the provider (a newer rdma-core) has advise_mr */
	pd = ibv_alloc_pd(context);
	if (!pd)
		return errno ? errno : ENOMEM;
	ret = vctx->advise_mr ? vctx->advise_mr(pd,
				IBV_ADVISE_MR_ADVICE_PREFETCH, 0, &sge, 1)
			      : EOPNOTSUPP;
	ibv_dealloc_pd(pd);
	if (ret != EOPNOTSUPP)
		return 0;

	vctx->advise_mr = rxeodp_advise_mr;
	return 0;
}
