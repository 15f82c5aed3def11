/* SPDX-License-Identifier: GPL-2.0 OR Linux-OpenIB */
/*
 * engcheck: what the engine checkers (ucp_check, mpi_check) share.
 *
 * Both move generation-tagged buffers between a client (host A) and a
 * server (host B) whose one long-lived buffer is stressed by memstress.
 * The client sends commands; the server prepares, fills or checks ranges of
 * its buffer and answers with a verdict.  How commands travel (a TCP socket,
 * MPI messages) and how data moves (UCP, MPI) is each checker's own.
 *
 * Contents: the 64-bit word at byte offset o of generation g is
 * eng_word(g, o), so a stale page, a page of another message or a
 * misplaced page is caught, as is a lost or partial message.  With KSM the
 * server fills ranges page-periodically (every page the same) and waits for
 * them to be merged; a send or put must then break the merge (it writes the
 * unique kind), and a get reads the merged pages.
 */
#ifndef ENGCHECK_H
#define ENGCHECK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "memstress.h"

enum eng_cmd_op {
	ENG_PREPARE = 1,	/* the next target range: fill with gen */
	ENG_FILL,		/* fill the range with gen, for a get */
	ENG_CHECK,		/* check the range holds gen */
	ENG_RECV,		/* receive gen into the range, then check */
	ENG_DONE,		/* stop; answer with the stress counts */
};

struct eng_cmd {
	uint32_t op, gen;
	uint64_t off, len;
	uint32_t periodic;	/* PREPARE, FILL: page-periodic contents */
	uint32_t pad;
};

struct eng_verdict {
	int32_t status;		/* 0, or a negative engine status */
	uint32_t pad;
	uint64_t bad;		/* wrong 64-bit words */
	uint64_t first, got, exp;	/* the first wrong word */
	int64_t ksm;		/* pages merged before the operation */
	double secs;		/* how long the server waited for the data */
};

/* The client's operations, as a set. */
enum { ENG_OP_SEND = 1, ENG_OP_PUT = 2, ENG_OP_GET = 4, ENG_OP_ALL = 7 };

/* Server and client agree on the first generation of a run. */
#define ENG_GEN0	1

static inline uint64_t eng_word(uint32_t gen, uint64_t off, bool periodic)
{
	if (periodic)
		return ((uint64_t)gen << 40 | (off % 4096) >> 3) ^
			0x5a5a5a5a00000000ULL;
	return ((uint64_t)gen << 40 | off >> 3) ^ 0x9e3779b97f4a7c15ULL;
}

/* [buf, buf + len) is at byte offset @off of the pattern; len % 8 == 0. */
void eng_fill(void *buf, uint64_t off, size_t len, uint32_t gen,
	      bool periodic);
/* Count the wrong words into @v (first one's offset and values too). */
void eng_check(const void *buf, uint64_t off, size_t len, uint32_t gen,
	       bool periodic, struct eng_verdict *v);

/*
 * The server's side of PREPARE, FILL and CHECK on its buffer @buf of
 * @size bytes.  Returns 0 with @v filled, or -1 for a command it does not
 * handle or a range outside the buffer (with a diagnostic).
 */
int eng_serve(struct memstress *ms, char *buf, size_t size,
	      const struct eng_cmd *c, struct eng_verdict *v);
/* The range of @c inside [@buf, @buf + @size), or NULL (diagnosed). */
char *eng_range(char *buf, size_t size, const struct eng_cmd *c);

/*
 * The options both checkers take: --size (the server's buffer), --stress,
 * --ops, --sizes (the client's operations), --expect-moved and
 * --expect-pinned.  ENG_OPTIONS goes into a getopt_long() table;
 * eng_option() takes what getopt_long() returned for one of them.
 */
#define ENG_MAX_SIZES	16
#define ENG_OPTIONS \
	{ "size", required_argument, NULL, 'z' }, \
	{ "stress", required_argument, NULL, 's' }, \
	{ "ops", required_argument, NULL, 'o' }, \
	{ "sizes", required_argument, NULL, 'n' }, \
	{ "expect-moved", no_argument, NULL, 'm' }, \
	{ "expect-pinned", no_argument, NULL, 'P' }

struct eng_opts {
	size_t size;		/* the server's buffer, page-aligned up */
	int kinds;		/* memstress kinds */
	int ops;		/* ENG_OP_* */
	size_t sizes[ENG_MAX_SIZES];
	int nsizes;
	int expect;		/* see eng_stress_result() */
};

/* Defaults: no stress, every operation, one size of 1 MiB. */
void eng_opts_init(struct eng_opts *o);
/* 1 if @c was one of ENG_OPTIONS and @arg good, 0 if not ours, -1 if bad. */
int eng_option(struct eng_opts *o, int c, const char *arg);

/* A "Name:" line of /proc/self/status in kB (VmPin:, VmLck:), or -1. */
long eng_status_kb(const char *name);

const char *eng_op_name(int op);
const char *eng_size_name(size_t len);
/* "N[K|M],..." into @sizes (at most @max); the count, or -1. */
int eng_parse_sizes(const char *s, size_t *sizes, int max);
/* "send,put,get" into a set of ENG_OP_*; -1 if bad. */
int eng_parse_ops(const char *s);
/* The sub-page offset at which the operation of generation @gen works. */
static inline uint64_t eng_offset(uint32_t gen)
{
	return (gen % 7) * 520;
}

/*
 * TAP result for one operation from its verdict: @where is the host that
 * checked it ("A" or "B"); @engine_status a non-empty string if the
 * engine failed it.
 */
bool eng_result(int op, size_t len, uint32_t gen, uint64_t off,
		const char *engine_status, const struct eng_verdict *v,
		const char *where, double secs, bool periodic, long merged);

/*
 * TAP result for the stress the server did: @expect > 0, every kind asked
 * for must have moved pages (nothing pins them); < 0, none may have
 * migrated or merged a page (they are pinned); 0, just report.
 */
bool eng_stress_result(const struct ms_counts *c, int kinds, int expect);

#endif
