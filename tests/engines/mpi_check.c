// SPDX-License-Identifier: GPL-2.0 OR Linux-OpenIB
/*
 * mpi_check: MPI moves fresh buffers to and from another rank's memory while
 * that memory is migrated, paged out and merged; every byte is checked.
 *
 * Two ranks, one per host.  Rank 1 (the server, host B) owns one long-lived
 * buffer, exposed as an MPI window (MPI_Win_create) and stressed by
 * tests/lib/memstress.  Rank 0 (the client, host A) sends into it
 * (MPI_Send/MPI_Recv), puts into it and gets from it (MPI_Put/MPI_Get in
 * passive-target epochs), each message from or into a buffer it has just
 * mmap()ed, and prints TAP.  Commands and verdicts are MPI messages; the
 * contents and the commands are engcheck.h's.  With Open MPI's pml ucx and
 * osc ucx the data goes through UCX, and with UCX_IB_REG_METHODS=odp
 * through UCX's implicit ODP MR.
 *
 *   mpirun -np 2 ... mpi_check --size BYTES [--stress KINDS]
 *          [--ops send,put,get] [--sizes N,...]
 *          [--expect-moved | --expect-pinned]
 */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <mpi.h>

#include "engcheck.h"
#include "odptest.h"

enum { TAG_CMD = 1, TAG_VERDICT, TAG_DATA, TAG_COUNTS };

static MPI_Win win;

static void *map(size_t len)
{
	void *p = mmap(NULL, len, PROT_READ | PROT_WRITE,
		       MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

	if (p == MAP_FAILED) {
		fprintf(stderr, "mpi_check: mmap %zu: %s\n", len,
			strerror(errno));
		MPI_Abort(MPI_COMM_WORLD, 1);
	}
	return p;
}

/* ---- rank 1, the server (B) -------------------------------------------- */

static void serve(char *buf, size_t size, int kinds)
{
	struct memstress ms;
	struct ms_counts mc;

	if (ms_start(&ms, kinds, buf, size))
		MPI_Abort(MPI_COMM_WORLD, 1);
	for (;;) {
		struct eng_verdict v = { 0 };
		struct eng_cmd c;
		double t0;
		char *p;

		MPI_Recv(&c, sizeof(c), MPI_BYTE, 0, TAG_CMD, MPI_COMM_WORLD,
			 MPI_STATUS_IGNORE);
		if (c.op == ENG_DONE)
			break;
		if (c.op == ENG_RECV) {
			p = eng_range(buf, size, &c);
			if (!p)
				MPI_Abort(MPI_COMM_WORLD, 1);
			t0 = MPI_Wtime();
			MPI_Recv(p, c.len, MPI_BYTE, 0, TAG_DATA,
				 MPI_COMM_WORLD, MPI_STATUS_IGNORE);
			v.secs = MPI_Wtime() - t0;
			eng_check(p, c.off, c.len, c.gen, false, &v);
		} else if (eng_serve(&ms, buf, size, &c, &v)) {
			MPI_Abort(MPI_COMM_WORLD, 1);
		}
		MPI_Send(&v, sizeof(v), MPI_BYTE, 0, TAG_VERDICT,
			 MPI_COMM_WORLD);
	}
	ms_stop(&ms, &mc);
	MPI_Send(&mc, sizeof(mc), MPI_BYTE, 0, TAG_COUNTS, MPI_COMM_WORLD);
}

/* ---- rank 0, the client (A) -------------------------------------------- */

static void command(uint32_t op, uint32_t gen, uint64_t off, uint64_t len,
		    bool periodic, struct eng_verdict *v, bool wait)
{
	struct eng_cmd c = { op, gen, off, len, periodic, 0 };

	MPI_Send(&c, sizeof(c), MPI_BYTE, 1, TAG_CMD, MPI_COMM_WORLD);
	if (wait)
		MPI_Recv(v, sizeof(*v), MPI_BYTE, 1, TAG_VERDICT,
			 MPI_COMM_WORLD, MPI_STATUS_IGNORE);
}

static void one_op(int op, uint32_t gen, uint64_t off, size_t len, int kinds)
{
	struct eng_verdict v = { 0 }, pv = { 0 };
	bool periodic = kinds & MS_KSM;
	char *buf = map(len);
	double t0;

	command(op == ENG_OP_GET ? ENG_FILL : ENG_PREPARE,
		op == ENG_OP_GET ? gen : gen - 1, off, len, periodic, &pv,
		true);
	t0 = MPI_Wtime();
	if (op == ENG_OP_SEND) {
		eng_fill(buf, off, len, gen, false);
		command(ENG_RECV, gen, off, len, false, NULL, false);
		MPI_Send(buf, len, MPI_BYTE, 1, TAG_DATA, MPI_COMM_WORLD);
		MPI_Recv(&v, sizeof(v), MPI_BYTE, 1, TAG_VERDICT,
			 MPI_COMM_WORLD, MPI_STATUS_IGNORE);
	} else if (op == ENG_OP_PUT) {
		eng_fill(buf, off, len, gen, false);
		MPI_Win_lock(MPI_LOCK_EXCLUSIVE, 1, 0, win);
		MPI_Put(buf, len, MPI_BYTE, 1, off, len, MPI_BYTE, win);
		MPI_Win_unlock(1, win);		/* complete at the target */
		command(ENG_CHECK, gen, off, len, false, &v, true);
	} else {
		MPI_Win_lock(MPI_LOCK_SHARED, 1, 0, win);
		MPI_Get(buf, len, MPI_BYTE, 1, off, len, MPI_BYTE, win);
		MPI_Win_unlock(1, win);
		eng_check(buf, off, len, gen, periodic, &v);
	}
	eng_result(op, len, gen, off, NULL, &v, op == ENG_OP_GET ? "A" : "B",
		   MPI_Wtime() - t0, periodic, pv.ksm);
	munmap(buf, len);
}

static void client(int ops, const size_t *sizes, int nsizes, size_t size,
		   int kinds, int expect)
{
	uint32_t gen = ENG_GEN0;
	struct eng_cmd done = { .op = ENG_DONE };
	struct ms_counts mc;
	int op, i, n = 0;

	for (op = ENG_OP_SEND; op <= ENG_OP_GET; op <<= 1)
		n += !!(ops & op) * nsizes;
	t_plan(n + 1);
	t_diag("mpi_check: rank 1 has %zu bytes, stress %s", size,
	       ms_names(kinds));
	for (op = ENG_OP_SEND; op <= ENG_OP_GET; op <<= 1) {
		for (i = 0; i < nsizes && ops & op; i++) {
			uint64_t off;

			gen += 2;	/* gen - 1 is the prepared contents */
			off = eng_offset(gen);
			if (off + sizes[i] > size) {
				t_result(false, "%s %s: larger than rank 1's "
					 "buffer", eng_op_name(op),
					 eng_size_name(sizes[i]));
				continue;
			}
			one_op(op, gen, off, sizes[i], kinds);
		}
	}
	MPI_Send(&done, sizeof(done), MPI_BYTE, 1, TAG_CMD, MPI_COMM_WORLD);
	MPI_Recv(&mc, sizeof(mc), MPI_BYTE, 1, TAG_COUNTS, MPI_COMM_WORLD,
		 MPI_STATUS_IGNORE);
	eng_stress_result(&mc, kinds, expect);
}

static void usage(FILE *f)
{
	fprintf(f, "usage: mpirun -np 2 ... mpi_check --size BYTES "
		"[--stress none|migrate,pageout,ksm]\n"
		"       [--ops send,put,get] [--sizes N[K|M],...] "
		"[--expect-moved|--expect-pinned]\n");
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
		ENG_OPTIONS,
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	int c, rank, nranks, rc = 0;
	struct eng_opts o;
	char *buf = NULL;

	setvbuf(stdout, NULL, _IOLBF, 0);
	MPI_Init(&argc, &argv);
	MPI_Comm_rank(MPI_COMM_WORLD, &rank);
	MPI_Comm_size(MPI_COMM_WORLD, &nranks);
	eng_opts_init(&o);
	while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		if (c == 'h') {
			if (!rank)
				usage(stdout);
			MPI_Finalize();
			return 0;
		}
		if (eng_option(&o, c, optarg) != 1)
			goto bad;
	}
	if (optind != argc || !o.size || nranks != 2)
		goto bad;

	if (rank == 1)
		buf = map(o.size);
	MPI_Win_create(buf, rank == 1 ? o.size : 0, 1, MPI_INFO_NULL,
		       MPI_COMM_WORLD, &win);
	if (rank == 1)
		serve(buf, o.size, o.kinds);
	else
		client(o.ops, o.sizes, o.nsizes, o.size, o.kinds, o.expect);
	MPI_Win_free(&win);
	if (!rank)
		rc = t_finish();
	MPI_Finalize();
	return rc;
bad:
	if (!rank)
		usage(stderr);
	MPI_Finalize();
	return 2;
}
