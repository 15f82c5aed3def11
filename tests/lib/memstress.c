// SPDX-License-Identifier: GPL-2.0 OR Linux-OpenIB
/*
 * memstress: migration, pageout and KSM under a device's feet.
 * See memstress.h.
 */
#include <errno.h>
#include <fcntl.h>
#include <numa.h>
#include <numaif.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#include "memstress.h"
#include "odptest.h"

#ifndef MADV_PAGEOUT
#define MADV_PAGEOUT	21
#endif

#define MS_CHUNK	(1UL << 20)
#define MS_CHUNK_PAGES	(MS_CHUNK / T_PAGE)
#define KSM_DIR		"/sys/kernel/mm/ksm/"
#define KPF_KSM		21

static const char *const ms_knobs[3] = {
	KSM_DIR "run", KSM_DIR "pages_to_scan", KSM_DIR "sleep_millisecs",
};

int ms_parse(const char *s)
{
	char buf[64], *w, *save = NULL;
	int kinds = 0;

	if (!strcmp(s, "none"))
		return 0;
	if (strlen(s) >= sizeof(buf))
		return -1;
	strcpy(buf, s);
	for (w = strtok_r(buf, ",", &save); w; w = strtok_r(NULL, ",", &save)) {
		if (!strcmp(w, "migrate"))
			kinds |= MS_MIGRATE;
		else if (!strcmp(w, "pageout"))
			kinds |= MS_PAGEOUT;
		else if (!strcmp(w, "ksm"))
			kinds |= MS_KSM;
		else
			return -1;
	}
	return kinds;
}

const char *ms_names(int kinds)
{
	static char buf[32];

	if (!kinds)
		return "none";
	snprintf(buf, sizeof(buf), "%s%s%s",
		 kinds & MS_MIGRATE ? "migrate," : "",
		 kinds & MS_PAGEOUT ? "pageout," : "",
		 kinds & MS_KSM ? "ksm," : "");
	buf[strlen(buf) - 1] = '\0';
	return buf;
}

/*
 * One chunk: migrate it to @node and/or page it out.  Only pages that were
 * elsewhere and are on @node afterwards count as migrated.
 */
static void ms_chunk(struct memstress *m, char *p, size_t len, int node)
{
	void *pages[MS_CHUNK_PAGES];
	int nodes[MS_CHUNK_PAGES], status[MS_CHUNK_PAGES];
	unsigned long i, n = 0;
	long moved = 0;

	if (m->kinds & MS_MIGRATE) {
		for (i = 0; i < len / T_PAGE; i++)
			pages[i] = p + i * T_PAGE;
		if (move_pages(0, len / T_PAGE, pages, NULL, status, 0) < 0)
			goto pageout;
		for (i = 0; i < len / T_PAGE; i++) {
			if (status[i] < 0 || status[i] == node)
				continue;	/* not present, or there */
			pages[n] = p + i * T_PAGE;
			nodes[n++] = node;
		}
		/* a positive return counts pages that did not move */
		if (n && move_pages(0, n, pages, nodes, status, MPOL_MF_MOVE) >= 0) {
			for (i = 0; i < n; i++)
				moved += status[i] == node;
		}
		pthread_mutex_lock(&m->lock);
		m->c.migrated += moved;
		m->c.migrate_calls++;
		pthread_mutex_unlock(&m->lock);
	}
pageout:
	if (m->kinds & MS_PAGEOUT && !madvise(p, len, MADV_PAGEOUT)) {
		pthread_mutex_lock(&m->lock);
		m->c.pageout_calls++;
		pthread_mutex_unlock(&m->lock);
	}
}

static void *ms_thread(void *arg)
{
	struct memstress *m = arg;
	const struct timespec pause = { 0, 2000000 };
	size_t off = 0;
	int node = 1;

	for (;;) {
		char *base;
		size_t len, n;

		pthread_mutex_lock(&m->lock);
		if (m->stop) {
			pthread_mutex_unlock(&m->lock);
			return NULL;
		}
		base = m->base;
		len = m->len;
		pthread_mutex_unlock(&m->lock);
		if (!len || !(m->kinds & (MS_MIGRATE | MS_PAGEOUT))) {
			nanosleep(&pause, NULL);
			continue;
		}
		if (off >= len) {	/* a pass is done: the other way now */
			off = 0;
			node ^= 1;
		}
		n = len - off < MS_CHUNK ? len - off : MS_CHUNK;
		n = (n + T_PAGE - 1) & ~(T_PAGE - 1);
		ms_chunk(m, base + off, n, node);
		off += n;
		nanosleep(&pause, NULL);
	}
}

int ms_start(struct memstress *m, int kinds, void *buf, size_t len)
{
	int i;

	memset(m, 0, sizeof(*m));
	m->kinds = kinds;
	pthread_mutex_init(&m->lock, NULL);
	m->pswpout0 = t_vmstat("pswpout");
	m->pswpin0 = t_vmstat("pswpin");
	if (kinds & MS_MIGRATE && numa_num_configured_nodes() < 2) {
		t_diag("memstress: migrate needs two NUMA nodes, found %d",
		       numa_num_configured_nodes());
		return -1;
	}
	if (kinds & MS_KSM) {
		for (i = 0; i < 3; i++)
			m->ksm_saved[i] = t_knob_get(ms_knobs[i]);
		if (m->ksm_saved[0] < 0) {
			t_diag("memstress: no KSM (%s)", ms_knobs[0]);
			return -1;
		}
		if (madvise(buf, len, MADV_MERGEABLE)) {
			t_diag("memstress: MADV_MERGEABLE: %s", strerror(errno));
			return -1;
		}
		if (!t_knob_set(ms_knobs[1], 4096) ||
		    !t_knob_set(ms_knobs[2], 10) || !t_knob_set(ms_knobs[0], 1))
			return -1;
	}
	if (pthread_create(&m->thread, NULL, ms_thread, m)) {
		t_diag("memstress: pthread_create failed");
		return -1;
	}
	m->running = true;
	return 0;
}

void ms_set_range(struct memstress *m, void *p, size_t len)
{
	/* whole pages: MADV_PAGEOUT refuses an unaligned start */
	uintptr_t start = (uintptr_t)p & ~(T_PAGE - 1);
	uintptr_t end = ((uintptr_t)p + len + T_PAGE - 1) & ~(T_PAGE - 1);

	pthread_mutex_lock(&m->lock);
	m->base = (char *)start;
	m->len = len ? end - start : 0;
	pthread_mutex_unlock(&m->lock);
}

/* Pages of [p, p + len) that map a KSM page, from pagemap and kpageflags. */
static long ms_ksm_pages(const char *p, size_t len)
{
	int pm = open("/proc/self/pagemap", O_RDONLY);
	int kf = open("/proc/kpageflags", O_RDONLY);
	long count = 0;
	size_t i;

	if (pm < 0 || kf < 0)
		goto out;
	for (i = 0; i < len; i += T_PAGE) {
		uint64_t e = 0, f = 0, pfn;

		if (pread(pm, &e, 8, (uintptr_t)(p + i) / T_PAGE * 8) != 8 ||
		    !(e >> 63 & 1))
			continue;
		pfn = e & ((1ULL << 55) - 1);
		if (pread(kf, &f, 8, pfn * 8) == 8 && f >> KPF_KSM & 1)
			count++;
	}
out:
	if (pm >= 0)
		close(pm);
	if (kf >= 0)
		close(kf);
	return count;
}

long ms_ksm_merge(struct memstress *m, void *p, size_t len, int timeout_s)
{
	long want = len / T_PAGE * 9 / 10, got = 0;
	double end = t_now() + timeout_s;

	do {
		got = ms_ksm_pages(p, len);
		if (got >= want)
			break;
		usleep(100000);
	} while (t_now() < end);
	pthread_mutex_lock(&m->lock);
	m->c.ksm_merged += got;
	pthread_mutex_unlock(&m->lock);
	return got;
}

void ms_stop(struct memstress *m, struct ms_counts *out)
{
	int i;

	if (m->running) {
		pthread_mutex_lock(&m->lock);
		m->stop = true;
		pthread_mutex_unlock(&m->lock);
		pthread_join(m->thread, NULL);
		m->running = false;
	}
	if (m->kinds & MS_KSM) {
		for (i = 2; i >= 0; i--)
			if (m->ksm_saved[i] >= 0)
				t_knob_set(ms_knobs[i], m->ksm_saved[i]);
	}
	m->c.swapped_out = t_vmstat("pswpout") - m->pswpout0;
	m->c.swapped_in = t_vmstat("pswpin") - m->pswpin0;
	*out = m->c;
}
