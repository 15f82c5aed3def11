/* SPDX-License-Identifier: GPL-2.0 OR Linux-OpenIB */
/*
 * odpharness: the verbs tests on kselftest_harness.h (taken from
 * linux-source-6.1 at build time, see tests/Makefile).
 *
 * Each program defines its fixtures with ODP_VARIANTS(): every fixture
 * has an "odp" variant (MRs registered with IBV_ACCESS_ON_DEMAND) and a
 * "pinned" one, and each TEST_F asserts the outcome of the variant it
 * runs in.  A program runs one of them, chosen as before by --odp
 * (default) or --pinned, so that a run's results keep their meaning:
 * "ok 4 traffic.odp.rc_write".  Every test runs in a child of its own
 * (the harness forks), with its fixture set up and torn down around it,
 * under a time limit: its TEST_F_TIMEOUT (the harness's 30 s by default)
 * scaled by $T_TIMEOUT_MS against the default 10 s per completion, so
 * that the debug kernel's longer waits scale the whole test alike.
 *
 * Include this, not kselftest_harness.h, and end the program with
 * ODP_HARNESS_MAIN("what the program tests").  Only one file of a
 * program may include it: the harness defines its functions in the
 * header.
 */
#ifndef ODPHARNESS_H
#define ODPHARNESS_H

#include <signal.h>

#include "kselftest_harness.h"
#include "odptest.h"

/*
 * The variants of fixture @f: the variant data says whether MRs are ODP.
 * Setup should call t_variant() first.
 */
#define ODP_VARIANTS(f)							\
	FIXTURE_VARIANT(f) {						\
		bool odp;						\
	};								\
	FIXTURE_VARIANT_ADD(f, odp) {					\
		.odp = true,						\
	};								\
	FIXTURE_VARIANT_ADD(f, pinned) {				\
		.odp = false,						\
	}

/* The variant's mode becomes t_reg_mr()'s (t_odp). */
#define t_variant() (t_odp = variant->odp)

/*
 * Byte-for-byte comparisons, reported where they are made: the first
 * differing offset is printed by t_check(), the harness adds file:line.
 */
#define EXPECT_BYTES(got, exp, len, what) \
	EXPECT_TRUE(t_check(got, exp, len, what))
#define ASSERT_BYTES(got, exp, len, what) \
	ASSERT_TRUE(t_check(got, exp, len, what))
#define EXPECT_FILLED(got, c, len, what) \
	EXPECT_TRUE(t_check_byte(got, c, len, what))

/*
 * A completion status: IBV_WC_SUCCESS and friends, by name on failure.
 * The locals must not be named __exp or __seen: EXPECT_EQ() declares
 * those itself, and would initialise its own from itself.
 */
#define EXPECT_WC(expected, seen) do {					\
	int __wc_exp = (expected), __wc_seen = (seen);		\
	if (__wc_exp != __wc_seen)					\
		TH_LOG("completion status %s (%d), expected %s (%d)",	\
		       t_wc_status_str(__wc_seen), __wc_seen,		\
		       t_wc_status_str(__wc_exp), __wc_exp);		\
	EXPECT_EQ(__wc_exp, __wc_seen);				\
} while (0)
#define ASSERT_WC(expected, seen) do {					\
	int __wc_exp = (expected), __wc_seen = (seen);		\
	if (__wc_exp != __wc_seen)					\
		TH_LOG("completion status %s (%d), expected %s (%d)",	\
		       t_wc_status_str(__wc_seen), __wc_seen,		\
		       t_wc_status_str(__wc_exp), __wc_exp);		\
	ASSERT_EQ(__wc_exp, __wc_seen);				\
} while (0)

/* Does a variant of this name run in this mode? */
static inline bool odp_harness_selected(const char *variant)
{
	if (!strcmp(variant, "odp"))
		return t_odp;
	if (!strcmp(variant, "pinned"))
		return !t_odp;
	return true;
}

/* Is this test to run (all are, without --only NAME[,NAME...])? */
static inline bool odp_harness_named(const struct __test_metadata *t)
{
	size_t len = strlen(t->name);
	const char *p;

	if (!t_only)
		return true;
	for (p = t_only; (p = strstr(p, t->name)); p += len)
		if ((p == t_only || p[-1] == ',') &&
		    (p[len] == ',' || !p[len]))
			return true;
	return false;
}

/*
 * Run one test as the harness's own __run_test() does, but with its name
 * on a skip line too, and with its time limit scaled.
 */
static inline void odp_harness_run_test(struct __fixture_metadata *f,
					struct __fixture_variant_metadata *v,
					struct __test_metadata *t,
					unsigned int number)
{
	const char *dot = v->name[0] ? "." : "";
	int timeout = t->timeout;

	t->passed = 1;
	t->skip = 0;
	t->trigger = 0;
	t->step = 1;
	t->no_print = 0;
	memset(t->results->reason, 0, sizeof(t->results->reason));
	if (t_timeout_ms > 10000)
		timeout = (int)((long)timeout * t_timeout_ms / 10000);
	t->timeout = timeout;

	ksft_print_msg(" RUN           %s%s%s.%s ...\n",
		       f->name, dot, v->name, t->name);
	fflush(stdout);
	fflush(stderr);
	t->pid = fork();
	if (t->pid < 0) {
		ksft_print_msg("ERROR SPAWNING TEST CHILD\n");
		t->passed = 0;
	} else if (t->pid == 0) {
		setpgrp();
		t->fn(t, v);
		if (t->skip)
			_exit(255);
		_exit(t->passed ? 0 : t->step);
	} else {
		__wait_for_test(t);
	}
	ksft_print_msg("         %4s  %s%s%s.%s\n", t->passed ? "OK" : "FAIL",
		       f->name, dot, v->name, t->name);
	if (t->timed_out)
		ksft_print_msg("%s%s%s.%s: killed after %d s\n",
			       f->name, dot, v->name, t->name, timeout);
	if (t->skip)
		printf("ok %u %s%s%s.%s # SKIP %s\n", number, f->name, dot,
		       v->name, t->name, t->results->reason[0] ?
		       t->results->reason : "unknown");
	else
		printf("%sok %u %s%s%s.%s\n", t->passed ? "" : "not ", number,
		       f->name, dot, v->name, t->name);
	fflush(stdout);
}

/* The tests of the variants this mode selects, in the harness's order. */
static inline int odp_harness_run(const char *prog)
{
	struct __fixture_variant_metadata no_variant = { .name = "", };
	struct __fixture_variant_metadata *v;
	struct __fixture_metadata *f;
	struct __test_results *results;
	struct __test_metadata *t;
	unsigned int planned = 0, count = 0, passed = 0, failed = 0;
	unsigned int skipped = 0;

	t_harness = true;
	for (f = __fixture_list; f; f = f->next)
		for (v = f->variant ?: &no_variant; v; v = v->next)
			if (odp_harness_selected(v->name))
				for (t = f->tests; t; t = t->next)
					planned += odp_harness_named(t);
	if (t_only && !planned) {
		fprintf(stderr, "%s: no test named %s\n", prog, t_only);
		return 2;
	}
	results = mmap(NULL, sizeof(*results), PROT_READ | PROT_WRITE,
		       MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	if (results == MAP_FAILED) {
		perror("mmap");
		return 1;
	}
	printf("TAP version 13\n1..%u\n", planned);
	printf("# %s: mode %s, device %s, gid index %s, completion timeout %d ms\n",
	       prog, t_mode(), getenv("RXE_DEV") ? : "rxe0",
	       getenv("RXE_GID") ? : "1", t_timeout_ms);
	for (f = __fixture_list; f; f = f->next) {
		for (v = f->variant ?: &no_variant; v; v = v->next) {
			if (!odp_harness_selected(v->name))
				continue;
			for (t = f->tests; t; t = t->next) {
				if (!odp_harness_named(t))
					continue;
				t->results = results;
				odp_harness_run_test(f, v, t, ++count);
				t->results = NULL;
				if (!t->passed)
					failed++;
				else if (t->skip)
					skipped++;
				else
					passed++;
			}
		}
	}
	munmap(results, sizeof(*results));
	printf("# %s (%s): %u passed, %u failed, %u skipped\n", prog,
	       t_mode(), passed, failed, skipped);
	return failed ? 1 : 0;
}

/*
 * The harness's own test_harness_run() is not used: it runs every
 * variant, and names no test on a skip line.
 */
#define ODP_HARNESS_MAIN(what)						\
	int main(int argc, char **argv)					\
	{								\
		(void)test_harness_run;					\
		t_init(argc, argv, what);				\
		return odp_harness_run(argv[0]);			\
	}

#endif /* ODPHARNESS_H */
