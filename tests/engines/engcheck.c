// SPDX-License-Identifier: GPL-2.0 OR Linux-OpenIB
/*
 * engcheck: contents, server commands and verdicts of the engine checkers.
 * See engcheck.h.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engcheck.h"
#include "odptest.h"

void eng_fill(void *buf, uint64_t off, size_t len, uint32_t gen,
	      bool periodic)
{
	uint64_t *w = buf;
	size_t i;

	for (i = 0; i < len / 8; i++)
		w[i] = eng_word(gen, off + i * 8, periodic);
}

void eng_check(const void *buf, uint64_t off, size_t len, uint32_t gen,
	       bool periodic, struct eng_verdict *v)
{
	const uint64_t *w = buf;
	size_t i;

	for (i = 0; i < len / 8; i++) {
		uint64_t exp = eng_word(gen, off + i * 8, periodic);

		if (w[i] == exp)
			continue;
		if (!v->bad++) {
			v->first = off + i * 8;
			v->got = w[i];
			v->exp = exp;
		}
	}
}

char *eng_range(char *buf, size_t size, const struct eng_cmd *c)
{
	if (c->off > size || c->len > size - c->off || c->off % 8 ||
	    c->len % 8) {
		t_diag("bad range %#lx+%#lx of a %zu-byte buffer",
		       (unsigned long)c->off, (unsigned long)c->len, size);
		return NULL;
	}
	return buf + c->off;
}

int eng_serve(struct memstress *ms, char *buf, size_t size,
	      const struct eng_cmd *c, struct eng_verdict *v)
{
	char *p = eng_range(buf, size, c);

	memset(v, 0, sizeof(*v));
	if (!p)
		return -1;
	switch (c->op) {
	case ENG_PREPARE:
	case ENG_FILL:
		/* the device works on this range next: stress it */
		ms_set_range(ms, p, c->len);
		eng_fill(p, c->off, c->len, c->gen, c->periodic);
		if (c->periodic)
			v->ksm = ms_ksm_merge(ms, p, c->len, 60);
		return 0;
	case ENG_CHECK:
		eng_check(p, c->off, c->len, c->gen, false, v);
		return 0;
	default:
		return -1;
	}
}

void eng_opts_init(struct eng_opts *o)
{
	memset(o, 0, sizeof(*o));
	o->ops = ENG_OP_ALL;
	o->sizes[0] = T_MIB;
	o->nsizes = 1;
}

int eng_option(struct eng_opts *o, int c, const char *arg)
{
	switch (c) {
	case 'z':
		if (eng_parse_sizes(arg, &o->size, 1) != 1)
			return -1;
		o->size = (o->size + T_PAGE - 1) & ~(T_PAGE - 1);
		return 1;
	case 's':
		o->kinds = ms_parse(arg);
		return o->kinds < 0 ? -1 : 1;
	case 'o':
		o->ops = eng_parse_ops(arg);
		return o->ops < 0 ? -1 : 1;
	case 'n':
		o->nsizes = eng_parse_sizes(arg, o->sizes, ENG_MAX_SIZES);
		return o->nsizes < 0 ? -1 : 1;
	case 'm':
		o->expect = 1;
		return 1;
	case 'P':
		o->expect = -1;
		return 1;
	default:
		return 0;
	}
}

long eng_status_kb(const char *name)
{
	FILE *f = fopen("/proc/self/status", "r");
	size_t n = strlen(name);
	char line[256];
	long kb = -1;

	if (!f)
		return -1;
	while (fgets(line, sizeof(line), f)) {
		if (!strncmp(line, name, n)) {
			kb = atol(line + n);
			break;
		}
	}
	fclose(f);
	return kb;
}

const char *eng_op_name(int op)
{
	return op == ENG_OP_SEND ? "send" : op == ENG_OP_PUT ? "put" : "get";
}

const char *eng_size_name(size_t len)
{
	static char buf[32];

	if (len >= T_MIB && !(len % T_MIB))
		snprintf(buf, sizeof(buf), "%zu MiB", len / T_MIB);
	else if (len >= T_KIB && !(len % T_KIB))
		snprintf(buf, sizeof(buf), "%zu KiB", len / T_KIB);
	else
		snprintf(buf, sizeof(buf), "%zu B", len);
	return buf;
}

int eng_parse_sizes(const char *s, size_t *sizes, int max)
{
	char *end;
	int n = 0;

	while (*s && n < max) {
		unsigned long long v = strtoull(s, &end, 0);

		if (*end == 'K' || *end == 'k')
			v <<= 10, end++;
		else if (*end == 'M' || *end == 'm')
			v <<= 20, end++;
		if (!v || v % 8 || v > 1ULL << 30 || (*end && *end != ','))
			return -1;
		sizes[n++] = v;
		s = *end ? end + 1 : end;
	}
	return *s || !n ? -1 : n;
}

int eng_parse_ops(const char *s)
{
	char buf[64], *w, *save = NULL;
	int ops = 0;

	if (strlen(s) >= sizeof(buf))
		return -1;
	strcpy(buf, s);
	for (w = strtok_r(buf, ",", &save); w; w = strtok_r(NULL, ",", &save)) {
		if (!strcmp(w, "send"))
			ops |= ENG_OP_SEND;
		else if (!strcmp(w, "put"))
			ops |= ENG_OP_PUT;
		else if (!strcmp(w, "get"))
			ops |= ENG_OP_GET;
		else
			return -1;
	}
	return ops ? ops : -1;
}

bool eng_result(int op, size_t len, uint32_t gen, uint64_t off,
		const char *engine_status, const struct eng_verdict *v,
		const char *where, double secs, bool periodic, long merged)
{
	char what[96];

	snprintf(what, sizeof(what), "%s %s gen %u at +%#lx", eng_op_name(op),
		 eng_size_name(len), gen, (unsigned long)off);
	if (engine_status)
		return t_result(false, "%s: %s", what, engine_status);
	if (v->bad)
		return t_result(false, "%s: %lu of %zu words wrong (checked on "
				"%s), the first at +%#lx: %#lx, expected %#lx",
				what, (unsigned long)v->bad, len / 8, where,
				(unsigned long)v->first, (unsigned long)v->got,
				(unsigned long)v->exp);
	if (periodic && !merged)
		t_diag("%s: no page of the target range was merged", what);
	return t_result(true, "%s: every byte correct (on %s; %.2f s, %.2f "
			"MB/s%s)", what, where, secs, len / secs / 1e6,
			periodic ? (merged ? ", target merged" :
				    ", target not merged") : "");
}

bool eng_stress_result(const struct ms_counts *c, int kinds, int expect)
{
	bool ok = true;

	t_diag("server stress %s: %ld pages migrated in %ld calls, %ld "
	       "pageouts, pswpout %ld pswpin %ld, %ld pages merged",
	       ms_names(kinds), c->migrated, c->migrate_calls,
	       c->pageout_calls, c->swapped_out, c->swapped_in, c->ksm_merged);
	if (!kinds) {
		return t_result(true, "the server's memory was used without "
				"stress");
	} else if (expect > 0) {
		if (kinds & MS_MIGRATE && !c->migrated)
			ok = false;
		if (kinds & MS_PAGEOUT && (!c->swapped_out || !c->swapped_in))
			ok = false;
		if (kinds & MS_KSM && !c->ksm_merged)
			ok = false;
	} else if (expect < 0) {
		if (c->migrated || c->ksm_merged)
			ok = false;
	}
	return t_result(ok, "the server's memory was %s under stress %s",
			expect > 0 ? "moved" : expect < 0 ? "pinned" : "used",
			ms_names(kinds));
}
