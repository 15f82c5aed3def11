// SPDX-License-Identifier: GPL-2.0 OR Linux-OpenIB
/*
 * odp_force: an LD_PRELOAD shim that adds IBV_ACCESS_ON_DEMAND to every
 * memory registration of the program it is loaded into.
 *
 * perftest 4.5 refuses --odp for ib_atomic_bw ("ODP does not support
 * ATOMICS for now"), a limitation of the tool, not of ODP.  With this shim
 * the atomic benchmark runs over ODP MRs all the same.  At exit it reports
 * on stderr how many MRs it registered, so a run can prove it was active:
 *   odp_force: N MRs registered with IBV_ACCESS_ON_DEMAND, M failed
 */
#include <dlfcn.h>
#include <stdio.h>
#include <infiniband/verbs.h>

#undef ibv_reg_mr

static unsigned long nr_ok, nr_failed;

static struct ibv_mr *count(struct ibv_mr *mr)
{
	if (mr)
		__atomic_add_fetch(&nr_ok, 1, __ATOMIC_RELAXED);
	else
		__atomic_add_fetch(&nr_failed, 1, __ATOMIC_RELAXED);
	return mr;
}

struct ibv_mr *ibv_reg_mr(struct ibv_pd *pd, void *addr, size_t length,
			  int access)
{
	static struct ibv_mr *(*real)(struct ibv_pd *, void *, size_t, int);

	if (!real)
		real = dlvsym(RTLD_NEXT, "ibv_reg_mr", "IBVERBS_1.1");
	if (!real)
		return NULL;
	return count(real(pd, addr, length, access | IBV_ACCESS_ON_DEMAND));
}

struct ibv_mr *ibv_reg_mr_iova2(struct ibv_pd *pd, void *addr, size_t length,
				uint64_t iova, unsigned int access)
{
	static struct ibv_mr *(*real)(struct ibv_pd *, void *, size_t,
				      uint64_t, unsigned int);

	if (!real)
		real = dlvsym(RTLD_NEXT, "ibv_reg_mr_iova2", "IBVERBS_1.8");
	if (!real)
		return NULL;
	return count(real(pd, addr, length, iova,
			  access | IBV_ACCESS_ON_DEMAND));
}

__attribute__((destructor)) static void report(void)
{
	/* perftest may leave its last line unterminated. */
	fprintf(stderr,
		"\nodp_force: %lu MRs registered with IBV_ACCESS_ON_DEMAND, %lu failed\n",
		nr_ok, nr_failed);
}
