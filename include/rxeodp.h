/* SPDX-License-Identifier: GPL-2.0 OR Linux-OpenIB */
/*
 * librxeodp: what applications need from rxe On-Demand Paging beyond
 * rdma-core 44, whose rxe provider has no advise_mr.
 *
 * rxeodp_advise_mr() issues the uverbs ADVISE_MR command for an ibv_pd
 * directly; rxeodp_enable_advise_mr() plugs it into a device context so
 * that the standard ibv_advise_mr() works on it.  See rxeodp_advise_mr(3).
 */
#ifndef RXEODP_H
#define RXEODP_H

#include <infiniband/verbs.h>

#ifdef __cplusplus
extern "C" {
#endif

int rxeodp_advise_mr(struct ibv_pd *pd, enum ibv_advise_mr_advice advice,
		     uint32_t flags, struct ibv_sge *sg_list,
		     uint32_t num_sge);

int rxeodp_enable_advise_mr(struct ibv_context *context);

#ifdef __cplusplus
}
#endif

#endif /* RXEODP_H */
