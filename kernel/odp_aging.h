/* SPDX-License-Identifier: GPL-2.0 */
/*
 * odp_aging: between the mirrors of one address space (odp_mirror.c) and
 * the young callbacks of its MMU notifier (odp_aging.c).  Internal to the
 * notifier core.
 */
#ifndef _ODP_AGING_H
#define _ODP_AGING_H

#include <linux/types.h>

struct mm_struct;
struct odp_mirror;

/* the odp_aging module parameter: do the mirrors answer reclaim? */
extern bool odp_aging;

int odp_aging_add(struct odp_mirror *mirror, struct mm_struct *mm);
void odp_aging_remove(struct odp_mirror *mirror);

bool odp_mirror_age(struct odp_mirror *mirror, unsigned long start,
		    unsigned long end, bool clear);

#endif /* _ODP_AGING_H */
