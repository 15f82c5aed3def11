/* SPDX-License-Identifier: GPL-2.0 OR Linux-OpenIB */
/*
 * stallfs: a FUSE file system of one file whose reads can be stalled on
 * command, for tests of faults that block in a file system (odp_fuse).
 *
 *   MNT/data   STALLFS_SIZE bytes, read-only; byte at offset o is
 *              stallfs_byte(o)
 *   MNT/stall  write "1" to make every read of data wait, "0" to let them
 *              go; reading it gives "FLAG WAITING\n", WAITING being how
 *              many reads of data wait now
 */
#ifndef STALLFS_H
#define STALLFS_H

#include <stdint.h>

#define STALLFS_SIZE	(64UL << 20)

static inline uint8_t stallfs_byte(uint64_t off)
{
	return (uint8_t)((off >> 12) * 31 + (off & 0xfff) * 7 + 1);
}

#endif /* STALLFS_H */
