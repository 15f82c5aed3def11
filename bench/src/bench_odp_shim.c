// SPDX-License-Identifier: GPL-2.0 OR Linux-OpenIB
/*
 * bench_odp_shim: LD_PRELOAD shim for perftest in `make bench`.
 *
 *   BENCH_ODP_FORCE=1     add IBV_ACCESS_ON_DEMAND to every registration
 *                         (perftest 4.5 refuses --odp for ib_atomic_bw)
 *   BENCH_ODP_PREFETCH=1  after every ODP registration, fault the whole MR
 *                         in with rxeodp_advise_mr(PREFETCH_WRITE, FLUSH)
 *                         (PREFETCH without IBV_ACCESS_LOCAL_WRITE), so
 *                         that the timed loop runs on warm translations
 *
 * At exit it says on stderr what it did, so that a run proves it was
 * active:
 *   bench_odp_shim: N ODP MRs, P prefetched (B bytes), F failed
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <dlfcn.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <infiniband/verbs.h>

#include "rxeodp.h"

#undef ibv_reg_mr

static unsigned long nr_odp, nr_prefetched, nr_failed;
static unsigned long long bytes_prefetched;

static int env_on(const char *name)
{
	const char *v = getenv(name);

	return v && *v && *v != '0';
}

static struct ibv_mr *after(struct ibv_pd *pd, struct ibv_mr *mr,
			    uint64_t iova, size_t length, unsigned int access)
{
	enum ibv_advise_mr_advice advice;
	size_t off, n;

	if (!mr) {
		__atomic_add_fetch(&nr_failed, 1, __ATOMIC_RELAXED);
		return mr;
	}
	if (!(access & IBV_ACCESS_ON_DEMAND))
		return mr;
	__atomic_add_fetch(&nr_odp, 1, __ATOMIC_RELAXED);
	if (!env_on("BENCH_ODP_PREFETCH") || !length)
		return mr;

	advice = access & IBV_ACCESS_LOCAL_WRITE ?
		 IBV_ADVISE_MR_ADVICE_PREFETCH_WRITE :
		 IBV_ADVISE_MR_ADVICE_PREFETCH;
	/* an SGE length is 32 bits */
	for (off = 0; off < length; off += n) {
		struct ibv_sge sge = {
			.addr = iova + off,
			.lkey = mr->lkey,
		};
		int err;

		n = length - off > (1UL << 30) ? (1UL << 30) : length - off;
		sge.length = n;
		err = rxeodp_advise_mr(pd, advice, IBV_ADVISE_MR_FLAG_FLUSH,
				       &sge, 1);
		if (err) {
			fprintf(stderr, "bench_odp_shim: advise_mr: error %d\n",
				err);
			__atomic_add_fetch(&nr_failed, 1, __ATOMIC_RELAXED);
			return mr;
		}
	}
	__atomic_add_fetch(&nr_prefetched, 1, __ATOMIC_RELAXED);
	__atomic_add_fetch(&bytes_prefetched, length, __ATOMIC_RELAXED);
	return mr;
}

static unsigned int force(unsigned int access)
{
	return env_on("BENCH_ODP_FORCE") ? access | IBV_ACCESS_ON_DEMAND
					 : access;
}

struct ibv_mr *ibv_reg_mr(struct ibv_pd *pd, void *addr, size_t length,
			  int access)
{
	static struct ibv_mr *(*real)(struct ibv_pd *, void *, size_t, int);
	unsigned int acc = force(access);

	if (!real)
		real = dlvsym(RTLD_NEXT, "ibv_reg_mr", "IBVERBS_1.1");
	if (!real)
		return NULL;
	return after(pd, real(pd, addr, length, acc), (uintptr_t)addr,
		     length, acc);
}

struct ibv_mr *ibv_reg_mr_iova2(struct ibv_pd *pd, void *addr, size_t length,
				uint64_t iova, unsigned int access)
{
	static struct ibv_mr *(*real)(struct ibv_pd *, void *, size_t,
				      uint64_t, unsigned int);
	unsigned int acc = force(access);

	if (!real)
		real = dlvsym(RTLD_NEXT, "ibv_reg_mr_iova2", "IBVERBS_1.8");
	if (!real)
		return NULL;
	return after(pd, real(pd, addr, length, iova, acc), iova, length,
		     acc);
}

__attribute__((destructor)) static void report(void)
{
	/* perftest may leave its last line unterminated */
	fprintf(stderr,
		"\nbench_odp_shim: %lu ODP MRs, %lu prefetched (%llu bytes), %lu failed\n",
		nr_odp, nr_prefetched, bytes_prefetched, nr_failed);
}
