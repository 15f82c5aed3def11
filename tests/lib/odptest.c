// SPDX-License-Identifier: GPL-2.0 OR Linux-OpenIB
/*
 * odptest: helpers shared by the rxe ODP verbs tests.  See odptest.h.
 */
#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <sys/mman.h>

#include "odptest.h"

bool t_odp = true;
bool t_verbose;
const char *t_only;
int t_timeout_ms = 10000;
int t_rc_timeout = 14;
bool t_harness;

static const char *t_prog = "test";
static int t_planned = -1;
static int t_count;
static int t_failed;
static int t_skipped;

/* ---- arguments and TAP ------------------------------------------------ */

static void usage(FILE *f, const char *what)
{
	fprintf(f,
		"usage: %s [--pinned|--odp] [-v] [--timeout MS] [--only TESTS]\n"
		"  %s\n"
		"  --pinned      register plain (pinned) MRs instead of ODP\n"
		"  --odp         register ODP MRs (IBV_ACCESS_ON_DEMAND, default)\n"
		"  -v            more diagnostics\n"
		"  --timeout MS  give up waiting for a completion after MS ms\n"
		"                (default %d, or $T_TIMEOUT_MS)\n"
		"  --only TEST[,TEST...]  run only the tests of these names\n"
		"environment: RXE_DEV (default rxe0), RXE_GID (default 1)\n"
		"output: TAP version 13\n",
		t_prog, what, t_timeout_ms);
}

void t_init(int argc, char **argv, const char *what)
{
	static const struct option opts[] = {
		{ "pinned", no_argument, NULL, 'P' },
		{ "odp", no_argument, NULL, 'O' },
		{ "timeout", required_argument, NULL, 't' },
		{ "verbose", no_argument, NULL, 'v' },
		{ "help", no_argument, NULL, 'h' },
		{ "only", required_argument, NULL, 'o' },
		{ NULL, 0, NULL, 0 },
	};
	const char *env;
	int c;

	t_prog = argv[0];
	env = getenv("T_TIMEOUT_MS");
	if (env && atoi(env) > 0)
		t_timeout_ms = atoi(env);

	while ((c = getopt_long(argc, argv, "vh", opts, NULL)) != -1) {
		switch (c) {
		case 'P':
			t_odp = false;
			break;
		case 'O':
			t_odp = true;
			break;
		case 't':
			t_timeout_ms = atoi(optarg);
			if (t_timeout_ms <= 0) {
				usage(stderr, what);
				exit(2);
			}
			break;
		case 'v':
			t_verbose = true;
			break;
		case 'o':
			t_only = optarg;
			break;
		case 'h':
			usage(stdout, what);
			exit(0);
		default:
			usage(stderr, what);
			exit(2);
		}
	}
	if (optind != argc) {
		usage(stderr, what);
		exit(2);
	}
	/* Results must appear in order even when we fork. */
	setvbuf(stdout, NULL, _IOLBF, 0);
}

const char *t_mode(void)
{
	return t_odp ? "odp" : "pinned";
}

void t_plan(int n)
{
	t_planned = n;
	printf("TAP version 13\n");
	printf("1..%d\n", n);
	printf("# %s: mode %s, device %s, gid index %s, timeout %d ms\n",
	       t_prog, t_mode(), getenv("RXE_DEV") ? : "rxe0",
	       getenv("RXE_GID") ? : "1", t_timeout_ms);
	fflush(stdout);
}

void t_diag(const char *fmt, ...)
{
	char buf[1024];
	char *line, *save = NULL;
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	for (line = strtok_r(buf, "\n", &save); line;
	     line = strtok_r(NULL, "\n", &save))
		printf("# %s\n", line);
	fflush(stdout);
}

bool t_result(bool pass, const char *fmt, ...)
{
	va_list ap;

	t_count++;
	if (!pass)
		t_failed++;
	printf("%sok %d ", pass ? "" : "not ", t_count);
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	printf("\n");
	fflush(stdout);
	return pass;
}

void t_skip(const char *reason, const char *fmt, ...)
{
	va_list ap;

	t_count++;
	t_skipped++;
	printf("ok %d ", t_count);
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	printf(" # SKIP %s\n", reason);
	fflush(stdout);
}

int t_next(void)
{
	return t_count + 1;
}

int t_finish(void)
{
	if (t_planned >= 0 && t_count != t_planned) {
		t_diag("planned %d tests but ran %d", t_planned, t_count);
		t_failed += t_planned > t_count ? t_planned - t_count : 1;
	}
	t_diag("%s (%s): %d passed, %d failed, %d skipped",
	       t_prog, t_mode(), t_count - t_failed - t_skipped, t_failed,
	       t_skipped);
	return t_failed ? 1 : 0;
}

void t_bail(const char *fmt, ...)
{
	char buf[256];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	t_diag("setup failed: %s", buf);
	/* In a harness test (lib/odpharness.h): that test fails. */
	if (t_harness)
		exit(1);
	if (t_planned < 0)
		t_plan(1);
	while (t_count < t_planned)
		t_result(false, "setup failed: %s", buf);
	exit(t_finish());
}

/* ---- device ------------------------------------------------------------- */

int t_dev_open(struct t_dev *d)
{
	const char *name = getenv("RXE_DEV") ? : "rxe0";
	const char *gid = getenv("RXE_GID");
	struct ibv_device **list, *dev = NULL;
	int i, num = 0;

	memset(d, 0, sizeof(*d));
	snprintf(d->name, sizeof(d->name), "%s", name);
	d->port = 1;
	d->gid_index = gid ? atoi(gid) : 1;

	list = ibv_get_device_list(&num);
	if (!list) {
		t_diag("ibv_get_device_list: %s", strerror(errno));
		return -1;
	}
	for (i = 0; i < num; i++)
		if (!strcmp(ibv_get_device_name(list[i]), name))
			dev = list[i];
	if (!dev) {
		t_diag("RDMA device %s not found (%d devices)", name, num);
		for (i = 0; i < num; i++)
			t_diag("  have %s", ibv_get_device_name(list[i]));
		ibv_free_device_list(list);
		return -1;
	}
	d->ctx = ibv_open_device(dev);
	ibv_free_device_list(list);
	if (!d->ctx) {
		t_diag("ibv_open_device(%s): %s", name, strerror(errno));
		return -1;
	}
	if (ibv_query_port(d->ctx, d->port, &d->port_attr)) {
		t_diag("ibv_query_port(%s, %d) failed", name, d->port);
		goto err;
	}
	if (d->port_attr.state != IBV_PORT_ACTIVE)
		t_diag("warning: %s port %d state is %s", name, d->port,
		       ibv_port_state_str(d->port_attr.state));
	if (ibv_query_gid(d->ctx, d->port, d->gid_index, &d->gid)) {
		t_diag("ibv_query_gid(%s, %d, %d) failed", name, d->port,
		       d->gid_index);
		goto err;
	}
	if (ibv_query_device_ex(d->ctx, NULL, &d->attr)) {
		t_diag("ibv_query_device_ex(%s) failed", name);
		goto err;
	}
	d->pd = ibv_alloc_pd(d->ctx);
	if (!d->pd) {
		t_diag("ibv_alloc_pd: %s", strerror(errno));
		goto err;
	}
	return 0;
err:
	ibv_close_device(d->ctx);
	d->ctx = NULL;
	return -1;
}

void t_dev_close(struct t_dev *d)
{
	if (d->pd)
		ibv_dealloc_pd(d->pd);
	if (d->ctx)
		ibv_close_device(d->ctx);
	memset(d, 0, sizeof(*d));
}

struct ibv_mr *t_reg_mr_mode(struct t_dev *d, void *addr, size_t len,
			     int access, bool odp)
{
	struct ibv_mr *mr;
	int err;

	if (odp)
		access |= IBV_ACCESS_ON_DEMAND;
	mr = ibv_reg_mr(d->pd, addr, len, access);
	if (!mr) {
		err = errno;
		t_diag("ibv_reg_mr(%s, %p, %zu bytes, access 0x%x): %s",
		       odp ? "odp" : "pinned", addr, len, access,
		       strerror(err));
		errno = err;
	}
	return mr;
}

struct ibv_mr *t_reg_mr(struct t_dev *d, void *addr, size_t len, int access)
{
	return t_reg_mr_mode(d, addr, len, access, t_odp);
}

void t_dereg_mr(struct ibv_mr *mr)
{
	if (mr && ibv_dereg_mr(mr))
		t_diag("ibv_dereg_mr: %s", strerror(errno));
}

/* ---- QPs ---------------------------------------------------------------- */

static struct ibv_qp *create_qp(struct t_dev *d, enum ibv_qp_type type,
				struct ibv_cq *scq, struct ibv_cq *rcq,
				struct ibv_srq *srq)
{
	struct ibv_qp_init_attr attr = {
		.send_cq = scq,
		.recv_cq = rcq,
		.srq = srq,
		.cap = {
			.max_send_wr = 256,
			.max_recv_wr = srq ? 0 : 256,
			.max_send_sge = 4,
			.max_recv_sge = 4,
		},
		.qp_type = type,
	};
	struct ibv_qp *qp;

	qp = ibv_create_qp(d->pd, &attr);
	if (!qp)
		t_diag("ibv_create_qp(%s): %s",
		       type == IBV_QPT_RC ? "RC" : "UD", strerror(errno));
	return qp;
}

static void fill_ah_attr(struct t_dev *d, struct ibv_ah_attr *ah)
{
	memset(ah, 0, sizeof(*ah));
	ah->is_global = 1;
	ah->grh.dgid = d->gid;
	ah->grh.sgid_index = d->gid_index;
	ah->grh.hop_limit = 64;
	ah->port_num = d->port;
}

/* Connect @qp to QP @dqpn at @dgid (NULL: our own GID). */
static int rc_connect(struct t_dev *d, struct ibv_qp *qp, uint32_t dqpn,
		      uint32_t my_psn, uint32_t peer_psn,
		      const union ibv_gid *dgid)
{
	struct ibv_qp_attr a;

	memset(&a, 0, sizeof(a));
	a.qp_state = IBV_QPS_INIT;
	a.pkey_index = 0;
	a.port_num = d->port;
	a.qp_access_flags = IBV_ACCESS_LOCAL_WRITE | IBV_ACCESS_REMOTE_WRITE |
			    IBV_ACCESS_REMOTE_READ | IBV_ACCESS_REMOTE_ATOMIC;
	if (ibv_modify_qp(qp, &a, IBV_QP_STATE | IBV_QP_PKEY_INDEX |
			  IBV_QP_PORT | IBV_QP_ACCESS_FLAGS)) {
		t_diag("modify RC QP %u to INIT: %s", qp->qp_num,
		       strerror(errno));
		return -1;
	}

	memset(&a, 0, sizeof(a));
	a.qp_state = IBV_QPS_RTR;
	a.path_mtu = d->port_attr.active_mtu;
	a.dest_qp_num = dqpn;
	a.rq_psn = peer_psn;
	a.max_dest_rd_atomic = 16;
	a.min_rnr_timer = 12;
	fill_ah_attr(d, &a.ah_attr);
	if (dgid)
		a.ah_attr.grh.dgid = *dgid;
	if (ibv_modify_qp(qp, &a, IBV_QP_STATE | IBV_QP_AV | IBV_QP_PATH_MTU |
			  IBV_QP_DEST_QPN | IBV_QP_RQ_PSN |
			  IBV_QP_MAX_DEST_RD_ATOMIC | IBV_QP_MIN_RNR_TIMER)) {
		t_diag("modify RC QP %u to RTR: %s", qp->qp_num,
		       strerror(errno));
		return -1;
	}

	memset(&a, 0, sizeof(a));
	a.qp_state = IBV_QPS_RTS;
	a.timeout = t_rc_timeout;
	a.retry_cnt = 7;
	a.rnr_retry = 7;
	a.sq_psn = my_psn;
	a.max_rd_atomic = 16;
	if (ibv_modify_qp(qp, &a, IBV_QP_STATE | IBV_QP_TIMEOUT |
			  IBV_QP_RETRY_CNT | IBV_QP_RNR_RETRY | IBV_QP_SQ_PSN |
			  IBV_QP_MAX_QP_RD_ATOMIC)) {
		t_diag("modify RC QP %u to RTS: %s", qp->qp_num,
		       strerror(errno));
		return -1;
	}
	return 0;
}

static struct ibv_cq *create_cq(struct t_dev *d)
{
	struct ibv_cq *cq = ibv_create_cq(d->ctx, 1024, NULL, NULL, 0);

	if (!cq)
		t_diag("ibv_create_cq: %s", strerror(errno));
	return cq;
}

int t_rc_pair_create(struct t_dev *d, struct t_rc_pair *p,
		     struct ibv_srq *srq1)
{
	int i;

	memset(p, 0, sizeof(*p));
	for (i = 0; i < 2; i++) {
		p->scq[i] = create_cq(d);
		p->rcq[i] = create_cq(d);
		if (!p->scq[i] || !p->rcq[i])
			goto err;
		p->qp[i] = create_qp(d, IBV_QPT_RC, p->scq[i], p->rcq[i],
				     i == 1 ? srq1 : NULL);
		if (!p->qp[i])
			goto err;
	}
	if (rc_connect(d, p->qp[0], p->qp[1]->qp_num, 0x1000, 0x2000, NULL) ||
	    rc_connect(d, p->qp[1], p->qp[0]->qp_num, 0x2000, 0x1000, NULL))
		goto err;
	return 0;
err:
	t_rc_pair_destroy(p);
	return -1;
}

int t_rc_remote_create(struct t_dev *d, struct t_rc_pair *p)
{
	memset(p, 0, sizeof(*p));
	p->scq[0] = create_cq(d);
	p->rcq[0] = create_cq(d);
	if (p->scq[0] && p->rcq[0])
		p->qp[0] = create_qp(d, IBV_QPT_RC, p->scq[0], p->rcq[0], NULL);
	if (p->qp[0])
		return 0;
	t_rc_pair_destroy(p);
	return -1;
}

int t_rc_remote_connect(struct t_dev *d, struct t_rc_pair *p, uint32_t dqpn,
			const union ibv_gid *dgid, uint32_t my_psn,
			uint32_t peer_psn)
{
	return rc_connect(d, p->qp[0], dqpn, my_psn, peer_psn, dgid);
}

void t_rc_pair_destroy(struct t_rc_pair *p)
{
	int i;

	for (i = 0; i < 2; i++) {
		if (p->qp[i] && ibv_destroy_qp(p->qp[i]))
			t_diag("ibv_destroy_qp: %s", strerror(errno));
		if (p->scq[i])
			ibv_destroy_cq(p->scq[i]);
		if (p->rcq[i])
			ibv_destroy_cq(p->rcq[i]);
	}
	memset(p, 0, sizeof(*p));
}

int t_ud_pair_create(struct t_dev *d, struct t_ud_pair *p)
{
	struct ibv_ah_attr ah;
	struct ibv_qp_attr a;
	int i;

	memset(p, 0, sizeof(*p));
	p->qkey = 0x11111111;
	for (i = 0; i < 2; i++) {
		p->scq[i] = create_cq(d);
		p->rcq[i] = create_cq(d);
		if (!p->scq[i] || !p->rcq[i])
			goto err;
		p->qp[i] = create_qp(d, IBV_QPT_UD, p->scq[i], p->rcq[i],
				     NULL);
		if (!p->qp[i])
			goto err;

		memset(&a, 0, sizeof(a));
		a.qp_state = IBV_QPS_INIT;
		a.pkey_index = 0;
		a.port_num = d->port;
		a.qkey = p->qkey;
		if (ibv_modify_qp(p->qp[i], &a, IBV_QP_STATE |
				  IBV_QP_PKEY_INDEX | IBV_QP_PORT |
				  IBV_QP_QKEY)) {
			t_diag("modify UD QP to INIT: %s", strerror(errno));
			goto err;
		}
		memset(&a, 0, sizeof(a));
		a.qp_state = IBV_QPS_RTR;
		if (ibv_modify_qp(p->qp[i], &a, IBV_QP_STATE)) {
			t_diag("modify UD QP to RTR: %s", strerror(errno));
			goto err;
		}
		memset(&a, 0, sizeof(a));
		a.qp_state = IBV_QPS_RTS;
		a.sq_psn = 0x3000 + i;
		if (ibv_modify_qp(p->qp[i], &a, IBV_QP_STATE | IBV_QP_SQ_PSN)) {
			t_diag("modify UD QP to RTS: %s", strerror(errno));
			goto err;
		}
	}
	fill_ah_attr(d, &ah);
	p->ah = ibv_create_ah(d->pd, &ah);
	if (!p->ah) {
		t_diag("ibv_create_ah: %s", strerror(errno));
		goto err;
	}
	return 0;
err:
	t_ud_pair_destroy(p);
	return -1;
}

void t_ud_pair_destroy(struct t_ud_pair *p)
{
	int i;

	if (p->ah)
		ibv_destroy_ah(p->ah);
	for (i = 0; i < 2; i++) {
		if (p->qp[i])
			ibv_destroy_qp(p->qp[i]);
		if (p->scq[i])
			ibv_destroy_cq(p->scq[i]);
		if (p->rcq[i])
			ibv_destroy_cq(p->rcq[i]);
	}
	memset(p, 0, sizeof(*p));
}

struct ibv_srq *t_srq_create(struct t_dev *d, int max_wr)
{
	struct ibv_srq_init_attr attr = {
		.attr = { .max_wr = max_wr, .max_sge = 1 },
	};
	struct ibv_srq *srq = ibv_create_srq(d->pd, &attr);

	if (!srq)
		t_diag("ibv_create_srq: %s", strerror(errno));
	return srq;
}

/* ---- posting and polling ------------------------------------------------ */

static int post_send(struct ibv_qp *qp, struct ibv_send_wr *wr,
		     const char *what)
{
	struct ibv_send_wr *bad;
	int ret = ibv_post_send(qp, wr, &bad);

	if (ret)
		t_diag("ibv_post_send(%s): %s", what, strerror(ret));
	return ret;
}

int t_post_rdma_sgl(struct ibv_qp *qp, enum ibv_wr_opcode op,
		    uint64_t wr_id, struct ibv_sge *sgl, int nsge,
		    uint64_t raddr, uint32_t rkey)
{
	struct ibv_send_wr wr = {
		.wr_id = wr_id,
		.sg_list = sgl,
		.num_sge = nsge,
		.opcode = op,
		.send_flags = IBV_SEND_SIGNALED,
		.wr.rdma = { .remote_addr = raddr, .rkey = rkey },
	};

	return post_send(qp, &wr, op == IBV_WR_RDMA_READ ? "READ" : "WRITE");
}

int t_post_rdma(struct ibv_qp *qp, enum ibv_wr_opcode op, uint64_t wr_id,
		void *laddr, uint32_t len, uint32_t lkey,
		uint64_t raddr, uint32_t rkey)
{
	struct ibv_sge sge = {
		.addr = (uintptr_t)laddr, .length = len, .lkey = lkey,
	};

	return t_post_rdma_sgl(qp, op, wr_id, &sge, 1, raddr, rkey);
}

int t_post_send(struct ibv_qp *qp, uint64_t wr_id, void *addr, uint32_t len,
		uint32_t lkey)
{
	struct ibv_sge sge = {
		.addr = (uintptr_t)addr, .length = len, .lkey = lkey,
	};
	struct ibv_send_wr wr = {
		.wr_id = wr_id,
		.sg_list = &sge,
		.num_sge = 1,
		.opcode = IBV_WR_SEND,
		.send_flags = IBV_SEND_SIGNALED,
	};

	return post_send(qp, &wr, "SEND");
}

int t_post_ud_send(struct t_ud_pair *p, int from, uint64_t wr_id,
		   void *addr, uint32_t len, uint32_t lkey)
{
	struct ibv_sge sge = {
		.addr = (uintptr_t)addr, .length = len, .lkey = lkey,
	};
	struct ibv_send_wr wr = {
		.wr_id = wr_id,
		.sg_list = &sge,
		.num_sge = 1,
		.opcode = IBV_WR_SEND,
		.send_flags = IBV_SEND_SIGNALED,
		.wr.ud = {
			.ah = p->ah,
			.remote_qpn = p->qp[!from]->qp_num,
			.remote_qkey = p->qkey,
		},
	};

	return post_send(p->qp[from], &wr, "UD SEND");
}

int t_post_recv(struct ibv_qp *qp, uint64_t wr_id, void *addr, uint32_t len,
		uint32_t lkey)
{
	struct ibv_sge sge = {
		.addr = (uintptr_t)addr, .length = len, .lkey = lkey,
	};
	struct ibv_recv_wr wr = {
		.wr_id = wr_id, .sg_list = &sge, .num_sge = 1,
	};
	struct ibv_recv_wr *bad;
	int ret = ibv_post_recv(qp, &wr, &bad);

	if (ret)
		t_diag("ibv_post_recv: %s", strerror(ret));
	return ret;
}

int t_post_srq_recv(struct ibv_srq *srq, uint64_t wr_id, void *addr,
		    uint32_t len, uint32_t lkey)
{
	struct ibv_sge sge = {
		.addr = (uintptr_t)addr, .length = len, .lkey = lkey,
	};
	struct ibv_recv_wr wr = {
		.wr_id = wr_id, .sg_list = &sge, .num_sge = 1,
	};
	struct ibv_recv_wr *bad;
	int ret = ibv_post_srq_recv(srq, &wr, &bad);

	if (ret)
		t_diag("ibv_post_srq_recv: %s", strerror(ret));
	return ret;
}

int t_post_atomic(struct ibv_qp *qp, enum ibv_wr_opcode op, uint64_t wr_id,
		  uint64_t *result, uint32_t lkey, uint64_t raddr,
		  uint32_t rkey, uint64_t compare_add, uint64_t swap)
{
	struct ibv_sge sge = {
		.addr = (uintptr_t)result, .length = 8, .lkey = lkey,
	};
	struct ibv_send_wr wr = {
		.wr_id = wr_id,
		.sg_list = &sge,
		.num_sge = 1,
		.opcode = op,
		.send_flags = IBV_SEND_SIGNALED,
		.wr.atomic = {
			.remote_addr = raddr,
			.compare_add = compare_add,
			.swap = swap,
			.rkey = rkey,
		},
	};

	return post_send(qp, &wr, op == IBV_WR_ATOMIC_CMP_AND_SWP ?
			 "CMP_AND_SWP" : "FETCH_AND_ADD");
}

double t_now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

int t_poll(struct ibv_cq *cq, int n, struct ibv_wc *wc)
{
	const struct timespec nap = { .tv_nsec = 50000 };
	double deadline = t_now() + t_timeout_ms / 1000.0;
	struct ibv_wc tmp[16];
	int got = 0, spins = 0;

	while (got < n) {
		struct ibv_wc *dst = wc ? wc + got : tmp;
		int want = n - got;
		int r;

		if (!wc && want > (int)T_ARRAY_SIZE(tmp))
			want = T_ARRAY_SIZE(tmp);
		r = ibv_poll_cq(cq, want, dst);
		if (r < 0) {
			t_diag("ibv_poll_cq failed: %d", r);
			return got;
		}
		if (r > 0) {
			got += r;
			spins = 0;
			/* The limit is on the wait for each completion. */
			deadline = t_now() + t_timeout_ms / 1000.0;
			continue;
		}
		if (t_now() > deadline) {
			t_diag("timed out after %d ms waiting for completion %d of %d",
			       t_timeout_ms, got + 1, n);
			return got;
		}
		if (++spins > 64)
			nanosleep(&nap, NULL);
	}
	return got;
}

bool t_wait_ok(struct ibv_cq *cq, int n, const char *what)
{
	struct ibv_wc *wc;
	bool ok = true;
	int got, i;

	wc = calloc(n, sizeof(*wc));
	if (!wc) {
		t_diag("%s: out of memory", what);
		return false;
	}
	got = t_poll(cq, n, wc);
	for (i = 0; i < got; i++) {
		if (wc[i].status == IBV_WC_SUCCESS)
			continue;
		if (ok)
			t_diag("%s: completion %d of %d (wr_id %llu) failed: %s (vendor_err 0x%x)",
			       what, i + 1, n,
			       (unsigned long long)wc[i].wr_id,
			       ibv_wc_status_str(wc[i].status),
			       wc[i].vendor_err);
		ok = false;
	}
	if (got < n) {
		t_diag("%s: %d of %d completions arrived", what, got, n);
		ok = false;
	}
	free(wc);
	return ok;
}

/* rxe's port counters that tell a stuck QP from a slow one */
static const char *const stuck_counters[] = {
	"sent_pkts", "rcvd_pkts", "duplicate_request", "out_of_seq_request",
	"rcvd_seq_err", "completer_retry_err", "rcvd_rnr_err",
	"send_rnr_err", "odp_fault_waits", "odp_page_faults",
	"odp_page_invalidations",
};

void t_stuck_report(struct t_rc_pair *p, const char *when)
{
	const char *dev = ibv_get_device_name(p->qp[0]->context->device);
	char line[512], path[256];
	size_t i, o;
	int q;

	for (q = 0; q < 2 && p->qp[q]; q++) {
		struct ibv_qp_init_attr init;
		struct ibv_qp_attr a;

		if (ibv_query_qp(p->qp[q], &a, IBV_QP_STATE | IBV_QP_SQ_PSN |
				 IBV_QP_RQ_PSN, &init)) {
			t_diag("%s: qp %u: ibv_query_qp: %s", when,
			       p->qp[q]->qp_num, strerror(errno));
			continue;
		}
		t_diag("%s: qp %u: state %d, sq_psn %u, rq_psn %u", when,
		       p->qp[q]->qp_num, a.qp_state, a.sq_psn, a.rq_psn);
	}
	o = snprintf(line, sizeof(line), "%s: %s", when, dev);
	for (i = 0; i < T_ARRAY_SIZE(stuck_counters) && o < sizeof(line); i++) {
		long v = -1;
		FILE *f;

		snprintf(path, sizeof(path),
			 "/sys/class/infiniband/%s/ports/1/hw_counters/%s",
			 dev, stuck_counters[i]);
		f = fopen(path, "r");
		if (f) {
			if (fscanf(f, "%ld", &v) != 1)
				v = -1;
			fclose(f);
		}
		o += snprintf(line + o, sizeof(line) - o, " %s %ld",
			      stuck_counters[i], v);
	}
	t_diag("%s", line);
}

int t_rdma_sync(struct t_rc_pair *p, enum ibv_wr_opcode op, void *laddr,
		uint32_t len, uint32_t lkey, uint64_t raddr, uint32_t rkey)
{
	double t0 = t_now();
	struct ibv_wc wc;
	int saved;

	if (t_post_rdma(p->qp[0], op, 1, laddr, len, lkey, raddr, rkey))
		return -1;
	if (t_poll(p->scq[0], 1, &wc) == 1)
		return wc.status;

	/*
	 * Overdue: a failure either way, but say whether the QP is stuck or
	 * only slow, by waiting three times as long again (at most 30 s, so
	 * that a stuck QP does not eat the program's time limit).
	 */
	t_stuck_report(p, "overdue");
	saved = t_timeout_ms;
	t_timeout_ms = saved > 10000 ? 30000 : 3 * saved;
	if (t_poll(p->scq[0], 1, &wc) == 1)
		t_diag("the completion (%s) came %.1f s after the post",
		       ibv_wc_status_str(wc.status), t_now() - t0);
	t_timeout_ms = saved;
	t_stuck_report(p, "later");
	return -1;
}

int t_rdma_chunked(struct t_rc_pair *p, enum ibv_wr_opcode op, void *laddr,
		   uint32_t lkey, void *raddr, uint32_t rkey, size_t len,
		   bool quiet)
{
	size_t off;
	int s = 0;

	for (off = 0; off < len && !s; off += 4 * T_MIB) {
		size_t n = len - off < 4 * T_MIB ? len - off : 4 * T_MIB;

		s = t_rdma_sync(p, op, (uint8_t *)laddr + off, n, lkey,
				(uintptr_t)raddr + off, rkey);
	}
	if (s && (!quiet || t_verbose))
		t_diag("%s of %zu bytes at %p: %s",
		       op == IBV_WR_RDMA_READ ? "READ" : "WRITE", len, raddr,
		       t_wc_status_str(s));
	return s;
}

int t_rdma_fresh_pair(struct t_dev *d, enum ibv_wr_opcode op, void *laddr,
		      uint32_t lkey, void *raddr, uint32_t rkey, size_t len)
{
	struct t_rc_pair p;
	int s;

	if (t_rc_pair_create(d, &p, NULL))
		return -1;
	s = t_rdma_chunked(&p, op, laddr, lkey, raddr, rkey, len, false);
	t_rc_pair_destroy(&p);
	return s;
}

const char *t_wc_status_str(int status)
{
	if (status < 0)
		return "no completion";
	return ibv_wc_status_str(status);
}

/* ---- memory ------------------------------------------------------------- */

void *t_mmap(size_t len)
{
	void *p = mmap(NULL, len, PROT_READ | PROT_WRITE,
		       MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

	if (p == MAP_FAILED) {
		t_diag("mmap(%zu): %s", len, strerror(errno));
		return NULL;
	}
	return p;
}

void t_munmap(void *p, size_t len)
{
	if (p)
		munmap(p, len);
}

static inline uint64_t mix64(uint64_t z)
{
	z += 0x9e3779b97f4a7c15ULL;
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
	return z ^ (z >> 31);
}

uint64_t t_rand64(uint64_t *state)
{
	*state += 0x9e3779b97f4a7c15ULL;
	return mix64(*state);
}

void t_fill(void *buf, size_t len, uint64_t seed)
{
	uint8_t *p = buf;
	uint64_t s = mix64(seed), v;
	size_t i;

	for (i = 0; i + 8 <= len; i += 8) {
		v = mix64(s + i);
		memcpy(p + i, &v, 8);
	}
	if (i < len) {
		v = mix64(s + i);
		memcpy(p + i, &v, len - i);
	}
}

ssize_t t_cmp(const void *got, const void *exp, size_t len)
{
	const uint8_t *g = got, *e = exp;
	size_t i;

	if (!memcmp(got, exp, len))
		return -1;
	for (i = 0; i < len; i++)
		if (g[i] != e[i])
			return i;
	return -1;
}

bool t_check(const void *got, const void *exp, size_t len, const char *what)
{
	const uint8_t *g = got, *e = exp;
	size_t i, ndiff = 0, last = 0;
	ssize_t first = t_cmp(got, exp, len);

	if (first < 0)
		return true;
	for (i = first; i < len; i++)
		if (g[i] != e[i]) {
			ndiff++;
			last = i;
		}
	t_diag("%s: first mismatch at offset %zd (0x%zx) of %zu: got 0x%02x expected 0x%02x; %zu bytes differ, last at offset %zu",
	       what, first, (size_t)first, len, g[first], e[first], ndiff,
	       last);
	return false;
}

bool t_check_byte(const void *got, int c, size_t len, const char *what)
{
	const uint8_t *g = got;
	size_t i, ndiff = 0, first = 0, last = 0;

	for (i = 0; i < len; i++) {
		if (g[i] == (uint8_t)c)
			continue;
		if (!ndiff)
			first = i;
		ndiff++;
		last = i;
	}
	if (!ndiff)
		return true;
	t_diag("%s: first mismatch at offset %zu (0x%zx) of %zu: got 0x%02x expected 0x%02x; %zu bytes differ, last at offset %zu",
	       what, first, first, len, g[first], (uint8_t)c, ndiff, last);
	return false;
}

/* The number after "@key@sep" in a /proc file of one value per line. */
static long proc_value(const char *path, const char *key, char sep)
{
	char line[256];
	size_t klen = strlen(key);
	long val = -1;
	FILE *f;

	f = fopen(path, "r");
	if (!f)
		return -1;
	while (fgets(line, sizeof(line), f)) {
		if (!strncmp(line, key, klen) && line[klen] == sep) {
			val = strtol(line + klen + 1, NULL, 10);
			break;
		}
	}
	fclose(f);
	return val;
}

long t_meminfo_kb(const char *key)
{
	return proc_value("/proc/meminfo", key, ':');
}

long t_vmstat(const char *key)
{
	return proc_value("/proc/vmstat", key, ' ');
}

static const char *const t_wait_bucket[T_WAIT_BUCKETS] = {
	"1ms", "4ms", "16ms", "64ms", "256ms", "1024ms", "4096ms", "longer",
};

int t_waits_read(const struct t_dev *d, struct t_waits *w)
{
	char name[64];
	int i;

	for (i = 0; i < T_WAIT_BUCKETS; i++) {
		snprintf(name, sizeof(name), "odp_fault_wait_%s",
			 t_wait_bucket[i]);
		w->n[i] = t_hw_counter(d, name);
		if (w->n[i] < 0)
			return -1;
	}
	w->us = t_hw_counter(d, "odp_fault_wait_us");
	return 0;
}

/* The bucket of the waits between @a and @b that holds the @q-quantile. */
static const char *t_waits_quantile(const struct t_waits *a,
				    const struct t_waits *b, double q)
{
	long total = 0, seen = 0;
	int i;

	for (i = 0; i < T_WAIT_BUCKETS; i++)
		total += b->n[i] - a->n[i];
	for (i = 0; i < T_WAIT_BUCKETS; i++) {
		seen += b->n[i] - a->n[i];
		if (total && seen >= q * total)
			return t_wait_bucket[i];
	}
	return "-";
}

void t_waits_diag(const char *what, const struct t_waits *a,
		  const struct t_waits *b)
{
	long total = 0;
	int i;

	for (i = 0; i < T_WAIT_BUCKETS; i++)
		total += b->n[i] - a->n[i];
	t_diag("%s: %ld fault waits, mean %ld us; median <= %s, p99 <= %s, max <= %s",
	       what, total, total ? (b->us - a->us) / total : 0,
	       t_waits_quantile(a, b, 0.5), t_waits_quantile(a, b, 0.99),
	       t_waits_quantile(a, b, 1.0));
}

#define T_ODP_AGING	"/sys/module/rdma_rxe/parameters/odp_aging"

int t_odp_aging(void)
{
	FILE *f = fopen(T_ODP_AGING, "r");
	int c;

	if (!f)
		return -1;
	c = fgetc(f);
	fclose(f);
	return c == 'Y' || c == '1';
}

bool t_odp_aging_set(bool on)
{
	return t_knob_set(T_ODP_AGING, on);
}

#ifndef MADV_PAGEOUT
#define MADV_PAGEOUT	21
#endif

int t_pageout(void *p, size_t len)
{
	int ret = madvise(p, len, MADV_PAGEOUT);

	if (!ret && t_odp_aging() == 1)
		ret = madvise(p, len, MADV_PAGEOUT);
	return ret;
}

uint64_t t_pfn(const void *p)
{
	int fd = open("/proc/self/pagemap", O_RDONLY);
	uint64_t e = 0;

	if (fd < 0)
		return 0;
	if (pread(fd, &e, 8, (uintptr_t)p / T_PAGE * 8) != 8)
		e = 0;
	close(fd);
	return e >> 63 & 1 ? e & ((1ULL << 55) - 1) : 0;
}

uint64_t t_kpageflags(uint64_t pfn)
{
	int fd = open("/proc/kpageflags", O_RDONLY);
	uint64_t f = 0;

	if (fd < 0)
		return 0;
	if (pread(fd, &f, 8, pfn * 8) != 8)
		f = 0;
	close(fd);
	return f;
}

int t_page_states(const void *p, size_t len, char *state)
{
	size_t i, n = len / T_PAGE;
	uint64_t *ent = calloc(n ? n : 1, sizeof(*ent));
	int fd = open("/proc/self/pagemap", O_RDONLY);
	int ret = 0;

	if (!ent || fd < 0 ||
	    pread(fd, ent, n * 8, (uintptr_t)p / T_PAGE * 8) != (ssize_t)(n * 8)) {
		t_diag("reading /proc/self/pagemap: %s", strerror(errno));
		ret = -1;
		n = 0;
	}
	for (i = 0; i < n; i++)
		state[i] = ent[i] >> 63 & 1 ? 'P' : ent[i] >> 62 & 1 ? 'S' : '-';
	state[n] = 0;
	if (fd >= 0)
		close(fd);
	free(ent);
	return ret;
}

long t_hw_counter(const struct t_dev *d, const char *name)
{
	char path[512];
	long v = -1;
	FILE *f;

	usleep(20000);
	snprintf(path, sizeof(path),
		 "/sys/class/infiniband/%s/ports/%u/hw_counters/%s", d->name,
		 d->port, name);
	f = fopen(path, "r");
	if (!f)
		return -1;
	if (fscanf(f, "%ld", &v) != 1)
		v = -1;
	fclose(f);
	return v;
}

long t_knob_get(const char *path)
{
	char buf[64];
	long v = -1;
	FILE *f = fopen(path, "r");

	if (!f)
		return -1;
	if (fgets(buf, sizeof(buf), f))
		v = atol(buf);
	fclose(f);
	return v;
}

bool t_knob_set(const char *path, long v)
{
	FILE *f = fopen(path, "w");
	bool ok;

	if (!f) {
		t_diag("%s: %s", path, strerror(errno));
		return false;
	}
	ok = fprintf(f, "%ld\n", v) > 0;
	ok = !fclose(f) && ok;
	if (!ok)
		t_diag("writing %ld to %s: %s", v, path, strerror(errno));
	return ok;
}

long t_kmem_kb(void)
{
	long slab = t_meminfo_kb("Slab");
	long vmalloc = t_meminfo_kb("VmallocUsed");
	long pt = t_meminfo_kb("PageTables");

	if (slab < 0 || vmalloc < 0 || pt < 0)
		return -1;
	return slab + vmalloc + pt;
}

/* Read /proc/@pid/@name into @buf, NUL-terminated; false if unreadable. */
static bool proc_read(const char *pid, const char *name, char *buf,
		      size_t size)
{
	char path[300];
	size_t n;
	FILE *f;

	snprintf(path, sizeof(path), "/proc/%s/%s", pid, name);
	f = fopen(path, "r");
	if (!f)
		return false;
	n = fread(buf, 1, size - 1, f);
	fclose(f);
	buf[n] = 0;
	return true;
}

void t_dump_kernel_stacks(const char *why)
{
	static const char *const what[] = {
		"rxe", "odp", "uverbs", "ib_", "mmput", "exit_mmap", "fput",
		"hmm_", "mmu_notifier", "mmu_interval",
	};
	char stat[512], stack[4096];
	struct dirent *d;
	DIR *dir;

	t_diag("%s; kernel stacks of the tasks it may wait for:", why);
	dir = opendir("/proc");
	if (!dir)
		return;
	while ((d = readdir(dir))) {
		char *comm, *end, state;
		bool show = false;
		size_t i;

		if (!isdigit((unsigned char)d->d_name[0]) ||
		    !proc_read(d->d_name, "stat", stat, sizeof(stat)) ||
		    !proc_read(d->d_name, "stack", stack, sizeof(stack)))
			continue;
		/* "pid (comm) state ...": comm may hold spaces and ')' */
		comm = strchr(stat, '(');
		end = strrchr(stat, ')');
		if (!comm || !end || end[1] != ' ')
			continue;
		*end = 0;
		state = end[2];
		for (i = 0; i < T_ARRAY_SIZE(what); i++)
			show |= strstr(stack, what[i]) != NULL;
		if (!show && state != 'D')
			continue;
		t_diag("  task %s %s) %c:", d->d_name, comm, state);
		for (char *l = strtok(stack, "\n"); l; l = strtok(NULL, "\n"))
			t_diag("    %s", l);
	}
	closedir(dir);
}

/* Counts of the device's resources, from 'rdma resource show'. */
int t_res_read(const char *dev, struct t_res *r)
{
	char cmd[128], line[512];
	bool found = false;
	FILE *f;

	memset(r, 0, sizeof(*r));
	snprintf(cmd, sizeof(cmd), "rdma resource show %s 2>&1", dev);
	f = popen(cmd, "r");
	if (!f)
		return -1;
	while (fgets(line, sizeof(line), f)) {
		char *p;

		if (!strstr(line, dev))
			continue;
		found = true;
		p = strstr(line, " pd ");
		r->pd = p ? atol(p + 4) : -1;
		p = strstr(line, " cq ");
		r->cq = p ? atol(p + 4) : -1;
		p = strstr(line, " qp ");
		r->qp = p ? atol(p + 4) : -1;
		p = strstr(line, " mr ");
		r->mr = p ? atol(p + 4) : -1;
		p = strstr(line, " ctx ");
		r->ctx = p ? atol(p + 5) : -1;
	}
	pclose(f);
	return found ? 0 : -1;
}

bool t_res_equal(const struct t_res *a, const struct t_res *b)
{
	return a->pd == b->pd && a->cq == b->cq && a->qp == b->qp &&
	       a->mr == b->mr && a->ctx == b->ctx;
}

pid_t t_fork_quiet(void)
{
	pid_t pid;
	int null;

	fflush(stdout);
	pid = fork();
	if (pid < 0)
		t_bail("fork: %s", strerror(errno));
	if (!pid) {
		null = open("/dev/null", O_WRONLY);
		if (null >= 0)
			dup2(null, STDOUT_FILENO);
	}
	return pid;
}
