// SPDX-License-Identifier: GPL-2.0 OR Linux-OpenIB
/*
 * LD_PRELOAD=librxeodp-preload.so: every device context an unmodified
 * program opens gets rxeodp_enable_advise_mr(), so that ibv_advise_mr()
 * works on rxe with rdma-core 44 (rdma-core's own tests, perftest, ...).
 */
#define _GNU_SOURCE
#include <dlfcn.h>

#include "rxeodp.h"

typedef struct ibv_context *(*open_device_fn)(struct ibv_device *);

struct ibv_context *ibv_open_device(struct ibv_device *device)
{
	static open_device_fn real_open;
	struct ibv_context *context;

	if (!real_open) {
		real_open = (open_device_fn)dlvsym(RTLD_NEXT, "ibv_open_device",
						   "IBVERBS_1.1");
		if (!real_open)
			real_open = (open_device_fn)dlsym(RTLD_NEXT,
							  "ibv_open_device");
		if (!real_open)
			return NULL;
	}

	context = real_open(device);
	if (context)
		rxeodp_enable_advise_mr(context);
	return context;
}
