// SPDX-License-Identifier: GPL-2.0 OR Linux-OpenIB
/*
 * stallfs: see stallfs.h.  Usage: stallfs MOUNTPOINT (stays in the
 * foreground, multithreaded, so that the control file answers while reads
 * of the data file wait).
 */
#define FUSE_USE_VERSION 31

#include <errno.h>
#include <fcntl.h>
#include <fuse.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "stallfs.h"

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t resume = PTHREAD_COND_INITIALIZER;
static int stalled;	/* reads of data wait while set */
static int waiting;	/* reads of data waiting now */

static int sfs_getattr(const char *path, struct stat *st,
		       struct fuse_file_info *fi)
{
	(void)fi;
	memset(st, 0, sizeof(*st));
	if (!strcmp(path, "/")) {
		st->st_mode = S_IFDIR | 0755;
		st->st_nlink = 2;
	} else if (!strcmp(path, "/data")) {
		st->st_mode = S_IFREG | 0444;
		st->st_nlink = 1;
		st->st_size = STALLFS_SIZE;
	} else if (!strcmp(path, "/stall")) {
		st->st_mode = S_IFREG | 0600;
		st->st_nlink = 1;
		st->st_size = 0;
	} else {
		return -ENOENT;
	}
	return 0;
}

static int sfs_readdir(const char *path, void *buf, fuse_fill_dir_t fill,
		       off_t off, struct fuse_file_info *fi,
		       enum fuse_readdir_flags flags)
{
	(void)off, (void)fi, (void)flags;
	if (strcmp(path, "/"))
		return -ENOENT;
	fill(buf, ".", NULL, 0, 0);
	fill(buf, "..", NULL, 0, 0);
	fill(buf, "data", NULL, 0, 0);
	fill(buf, "stall", NULL, 0, 0);
	return 0;
}

static int sfs_open(const char *path, struct fuse_file_info *fi)
{
	if (!strcmp(path, "/stall")) {
		fi->direct_io = 1;	/* every read asks us */
		return 0;
	}
	if (strcmp(path, "/data"))
		return -ENOENT;
	return (fi->flags & O_ACCMODE) == O_RDONLY ? 0 : -EACCES;
}

static int sfs_read(const char *path, char *buf, size_t size, off_t off,
		    struct fuse_file_info *fi)
{
	size_t i;

	(void)fi;
	if (!strcmp(path, "/stall")) {
		char line[32];
		int n;

		pthread_mutex_lock(&lock);
		n = snprintf(line, sizeof(line), "%d %d\n", stalled, waiting);
		pthread_mutex_unlock(&lock);
		if (off >= n)
			return 0;
		if (size > (size_t)(n - off))
			size = n - off;
		memcpy(buf, line + off, size);
		return size;
	}
	if (off >= (off_t)STALLFS_SIZE)
		return 0;
	if (size > STALLFS_SIZE - off)
		size = STALLFS_SIZE - off;

	pthread_mutex_lock(&lock);
	waiting++;
	while (stalled)
		pthread_cond_wait(&resume, &lock);
	waiting--;
	pthread_mutex_unlock(&lock);

	for (i = 0; i < size; i++)
		buf[i] = stallfs_byte(off + i);
	return size;
}

static int sfs_write(const char *path, const char *buf, size_t size,
		     off_t off, struct fuse_file_info *fi)
{
	(void)off, (void)fi;
	if (strcmp(path, "/stall"))
		return -EACCES;
	if (!size || (buf[0] != '0' && buf[0] != '1'))
		return -EINVAL;
	pthread_mutex_lock(&lock);
	stalled = buf[0] == '1';
	if (!stalled)
		pthread_cond_broadcast(&resume);
	pthread_mutex_unlock(&lock);
	return size;
}

static int sfs_truncate(const char *path, off_t size,
			struct fuse_file_info *fi)
{
	(void)size, (void)fi;
	return strcmp(path, "/stall") ? -EACCES : 0;
}

static const struct fuse_operations sfs_ops = {
	.getattr = sfs_getattr,
	.readdir = sfs_readdir,
	.open = sfs_open,
	.read = sfs_read,
	.write = sfs_write,
	.truncate = sfs_truncate,
};

int main(int argc, char **argv)
{
	char *args[] = { argv[0], "-f", NULL, NULL };

	if (argc != 2) {
		fprintf(stderr, "usage: stallfs MOUNTPOINT\n");
		return 2;
	}
	args[2] = argv[1];
	return fuse_main(3, args, &sfs_ops, NULL);
}
