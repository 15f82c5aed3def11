// SPDX-License-Identifier: GPL-2.0 OR Linux-OpenIB
/*
 * odp_traffic: every rxe data path over ODP memory regions, checked byte
 * for byte.
 *
 * RC SEND/RECV, RC RDMA WRITE (one SGE and an SGE list), RC RDMA READ,
 * RC atomics (compare-and-swap, fetch-and-add), UD SEND/RECV and RC SEND
 * into an SRQ.  Both the local and the remote MRs are ODP (or pinned with
 * --pinned).  Buffers are fresh mappings; whatever the device writes into
 * is never touched by the CPU first, so the device takes the page faults.
 * Messages go from 1 byte to over 1 MiB, start at odd offsets, cross page
 * boundaries and are all posted before the first completion is polled.
 * Each destination buffer is compared in full with an expected image, so
 * a byte written outside a message is caught too.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "odptest.h"

#define ALIGN_UP(x, a)	(((x) + (a) - 1) & ~((a) - 1))

static struct t_dev dev;

/* Message sizes: 1 byte to > 1 MiB. */
static const size_t rc_sizes[] = {
	1, 2, 3, 7, 8, 63, 64, 100, 4095, 4096, 4097, 8191, 8197,
	65539, 262143, T_MIB, T_MIB + 17,
};
#define NR_RC	T_ARRAY_SIZE(rc_sizes)

struct msg {
	size_t size;
	size_t roff;	/* offset in the remote (responder) buffer */
	size_t loff;	/* offset in the local (requester) buffer */
};

/*
 * Lay messages out with an untouched page between them; each one straddles
 * a page boundary (single bytes sit on the last byte of a page).  The local
 * copy is shifted by @lskew so that local and remote page offsets differ.
 * Returns the buffer length needed on either side.
 */
static size_t layout(struct msg *m, const size_t *sizes, int n, size_t lskew)
{
	size_t off = 0, start, s;
	int i;

	for (i = 0; i < n; i++) {
		s = sizes[i];
		off = ALIGN_UP(off, T_PAGE) + T_PAGE;
		if (s < 2)
			start = off + T_PAGE - 1;
		else if (s < T_PAGE)
			start = off + T_PAGE - s / 2;
		else
			start = off + T_PAGE - 3 - i;
		m[i].size = s;
		m[i].roff = start;
		m[i].loff = start + lskew;
		off = start + s;
	}
	return ALIGN_UP(off + lskew, T_PAGE) + T_PAGE;
}

struct bufs {
	size_t len;
	uint8_t *local, *remote, *expect;
	struct ibv_mr *lmr, *rmr;
};

static void bufs_free(struct bufs *b)
{
	t_dereg_mr(b->lmr);
	t_dereg_mr(b->rmr);
	t_munmap(b->local, b->len);
	t_munmap(b->remote, b->len);
	free(b->expect);
	memset(b, 0, sizeof(*b));
}

/* Fresh, untouched local and remote buffers of @len bytes, registered. */
static int bufs_alloc(struct bufs *b, size_t len)
{
	memset(b, 0, sizeof(*b));
	b->len = len;
	b->local = t_mmap(len);
	b->remote = t_mmap(len);
	b->expect = calloc(1, len);
	if (!b->local || !b->remote || !b->expect)
		goto err;
	b->lmr = t_reg_mr(&dev, b->local, len, T_ACCESS_ALL);
	if (!b->lmr)
		goto err;
	b->rmr = t_reg_mr(&dev, b->remote, len, T_ACCESS_ALL);
	if (!b->rmr)
		goto err;
	return 0;
err:
	bufs_free(b);
	return -1;
}

/* ---- capabilities ------------------------------------------------------- */

static bool caps_general(void)
{
	uint64_t g = dev.attr.odp_caps.general_caps;

	t_diag("odp_caps: general 0x%llx rc 0x%x uc 0x%x ud 0x%x",
	       (unsigned long long)g,
	       dev.attr.odp_caps.per_transport_caps.rc_odp_caps,
	       dev.attr.odp_caps.per_transport_caps.uc_odp_caps,
	       dev.attr.odp_caps.per_transport_caps.ud_odp_caps);
	return g & IBV_ODP_SUPPORT;
}

static bool caps_rc(void)
{
	uint32_t want = IBV_ODP_SUPPORT_SEND | IBV_ODP_SUPPORT_RECV |
			IBV_ODP_SUPPORT_WRITE | IBV_ODP_SUPPORT_READ |
			IBV_ODP_SUPPORT_ATOMIC | IBV_ODP_SUPPORT_SRQ_RECV;
	uint32_t have = dev.attr.odp_caps.per_transport_caps.rc_odp_caps;

	if ((have & want) != want)
		t_diag("rc_odp_caps 0x%x lacks 0x%x", have, want & ~have);
	return (have & want) == want;
}

static bool caps_ud(void)
{
	uint32_t want = IBV_ODP_SUPPORT_SEND | IBV_ODP_SUPPORT_RECV;
	uint32_t have = dev.attr.odp_caps.per_transport_caps.ud_odp_caps;

	if ((have & want) != want)
		t_diag("ud_odp_caps 0x%x lacks 0x%x", have, want & ~have);
	return (have & want) == want;
}

/* ---- RC RDMA WRITE / READ ------------------------------------------------- */

/* Post all messages, then wait for all of them. */
static bool rdma_batch(struct t_rc_pair *p, enum ibv_wr_opcode op,
		       struct bufs *b, const struct msg *m, int n)
{
	const char *what = op == IBV_WR_RDMA_READ ? "READ" : "WRITE";
	int i;

	for (i = 0; i < n; i++)
		if (t_post_rdma(p->qp[0], op, i, b->local + m[i].loff,
				m[i].size, b->lmr->lkey,
				(uintptr_t)b->remote + m[i].roff,
				b->rmr->rkey))
			return false;
	return t_wait_ok(p->scq[0], n, what);
}

/* @rounds > 1: write new data again into the pages the first round
 * faulted in (the warm path).
 */
static bool rc_write(int rounds)
{
	struct msg m[NR_RC];
	struct t_rc_pair p;
	struct bufs b;
	size_t len;
	bool ok = true;
	int i, r;

	len = layout(m, rc_sizes, NR_RC, 2 * T_PAGE + 777);
	if (bufs_alloc(&b, len))
		return false;
	if (t_rc_pair_create(&dev, &p, NULL)) {
		bufs_free(&b);
		return false;
	}
	for (r = 0; r < rounds; r++) {
		/* Source data: the CPU writes it.  Target: untouched. */
		for (i = 0; i < (int)NR_RC; i++) {
			t_fill(b.local + m[i].loff, m[i].size,
			       100 + i + 1000 * r);
			memcpy(b.expect + m[i].roff, b.local + m[i].loff,
			       m[i].size);
		}
		ok = rdma_batch(&p, IBV_WR_RDMA_WRITE, &b, m, NR_RC) && ok;
		ok = t_check(b.remote, b.expect, len,
			     r ? "WRITE target (warm)" : "WRITE target") && ok;
	}
	t_diag("%zu messages, %zu..%zu bytes, %zu byte buffers", NR_RC,
	       rc_sizes[0], rc_sizes[NR_RC - 1], len);
	t_rc_pair_destroy(&p);
	bufs_free(&b);
	return ok;
}

/* One WRITE gathered from four SGEs on different pages. */
static bool rc_write_sgl(void)
{
	static const size_t sz[4] = { 1, 4097, 3000, 65536 + 5 };
	static const size_t lo[4] = { 4095, 3 * T_PAGE - 100, 9 * T_PAGE + 1,
				      12 * T_PAGE - 7 };
	size_t len = 32 * T_PAGE, roff = 5 * T_PAGE - 11, off;
	struct ibv_sge sge[4];
	struct t_rc_pair p;
	struct bufs b;
	bool ok;
	int i;

	if (bufs_alloc(&b, len))
		return false;
	if (t_rc_pair_create(&dev, &p, NULL)) {
		bufs_free(&b);
		return false;
	}
	for (i = 0, off = roff; i < 4; i++) {
		t_fill(b.local + lo[i], sz[i], 200 + i);
		memcpy(b.expect + off, b.local + lo[i], sz[i]);
		sge[i].addr = (uintptr_t)b.local + lo[i];
		sge[i].length = sz[i];
		sge[i].lkey = b.lmr->lkey;
		off += sz[i];
	}
	ok = !t_post_rdma_sgl(p.qp[0], IBV_WR_RDMA_WRITE, 1, sge, 4,
			      (uintptr_t)b.remote + roff, b.rmr->rkey);
	ok = ok && t_wait_ok(p.scq[0], 1, "WRITE sgl");
	ok = t_check(b.remote, b.expect, len, "WRITE sgl target") && ok;
	t_rc_pair_destroy(&p);
	bufs_free(&b);
	return ok;
}

static bool rc_read(void)
{
	struct msg m[NR_RC];
	struct t_rc_pair p;
	struct bufs b;
	size_t len;
	bool ok;
	int i;

	len = layout(m, rc_sizes, NR_RC, T_PAGE + 1234);
	if (bufs_alloc(&b, len))
		return false;
	if (t_rc_pair_create(&dev, &p, NULL)) {
		bufs_free(&b);
		return false;
	}
	/* Source: the whole remote buffer; target: untouched local. */
	t_fill(b.remote, len, 300);
	for (i = 0; i < (int)NR_RC; i++)
		memcpy(b.expect + m[i].loff, b.remote + m[i].roff, m[i].size);
	ok = rdma_batch(&p, IBV_WR_RDMA_READ, &b, m, NR_RC);
	ok = t_check(b.local, b.expect, len, "READ target") && ok;
	t_rc_pair_destroy(&p);
	bufs_free(&b);
	return ok;
}

/*
 * The device first reads never-touched memory (which must read as zeros),
 * then writes there.  The write must land in a private page of ours, not
 * in whatever page served the read (the shared zero page): a fresh mapping
 * must still read as zeros afterwards.
 */
static bool rc_read_untouched_then_write(void)
{
	size_t len = 64 * T_PAGE, off = 3 * T_PAGE + 5, n = 20 * T_PAGE;
	struct t_rc_pair p;
	uint8_t *fresh;
	struct bufs b;
	bool ok;

	if (bufs_alloc(&b, len))
		return false;
	if (t_rc_pair_create(&dev, &p, NULL)) {
		bufs_free(&b);
		return false;
	}
	memset(b.local, 0xa5, len);
	ok = t_rdma_sync(&p, IBV_WR_RDMA_READ, b.local + off, n, b.lmr->lkey,
			 (uintptr_t)b.remote + off, b.rmr->rkey) == 0;
	ok = t_check_byte(b.local + off, 0, n, "READ of untouched memory") &&
	     ok;
	t_fill(b.local, len, 400);
	memcpy(b.expect + off, b.local + off, n);
	ok = t_rdma_sync(&p, IBV_WR_RDMA_WRITE, b.local + off, n,
			 b.lmr->lkey, (uintptr_t)b.remote + off,
			 b.rmr->rkey) == 0 && ok;
	ok = t_check(b.remote, b.expect, len, "WRITE after READ") && ok;
	/* And the device reads back what it wrote. */
	memset(b.local, 0, len);
	ok = t_rdma_sync(&p, IBV_WR_RDMA_READ, b.local + off, n, b.lmr->lkey,
			 (uintptr_t)b.remote + off, b.rmr->rkey) == 0 && ok;
	ok = t_check(b.local + off, b.expect + off, n, "READ back") && ok;
	fresh = t_mmap(len);
	if (fresh) {
		ok = t_check_byte(fresh, 0, len, "fresh mapping (zero page)") &&
		     ok;
		t_munmap(fresh, len);
	}
	t_rc_pair_destroy(&p);
	bufs_free(&b);
	return ok;
}

/* ---- RC SEND/RECV, SRQ ---------------------------------------------------- */

static bool check_recv_wcs(struct ibv_cq *cq, const struct msg *m, int n,
			   uint32_t qpn)
{
	struct ibv_wc *wc = calloc(n, sizeof(*wc));
	bool ok = true;
	int got, i;

	if (!wc)
		return false;
	got = t_poll(cq, n, wc);
	for (i = 0; i < got; i++) {
		int k = i;	/* RC: receives complete in order */

		if (wc[i].status != IBV_WC_SUCCESS) {
			t_diag("receive %d: %s", i,
			       ibv_wc_status_str(wc[i].status));
			ok = false;
			continue;
		}
		if (wc[i].opcode != IBV_WC_RECV || wc[i].wr_id != (unsigned int)k ||
		    wc[i].byte_len != m[k].size || wc[i].qp_num != qpn) {
			t_diag("receive %d: opcode %d wr_id %llu byte_len %u qp %u; expected RECV wr_id %d byte_len %zu qp %u",
			       i, wc[i].opcode,
			       (unsigned long long)wc[i].wr_id,
			       wc[i].byte_len, wc[i].qp_num, k, m[k].size,
			       qpn);
			ok = false;
		}
	}
	if (got < n)
		ok = false;
	free(wc);
	return ok;
}

static bool rc_send(bool use_srq)
{
	struct ibv_srq *srq = NULL;
	struct msg m[NR_RC];
	struct t_rc_pair p;
	struct bufs b;
	size_t len;
	bool ok = false;
	int i;

	len = layout(m, rc_sizes, NR_RC, 3 * T_PAGE + 2047);
	if (bufs_alloc(&b, len))
		return false;
	if (use_srq) {
		srq = t_srq_create(&dev, 256);
		if (!srq)
			goto out_bufs;
	}
	if (t_rc_pair_create(&dev, &p, srq))
		goto out_srq;

	/* Receive into untouched remote memory, send from local. */
	for (i = 0; i < (int)NR_RC; i++) {
		t_fill(b.local + m[i].loff, m[i].size, 500 + i);
		memcpy(b.expect + m[i].roff, b.local + m[i].loff, m[i].size);
		if (use_srq ?
		    t_post_srq_recv(srq, i, b.remote + m[i].roff, m[i].size,
				    b.rmr->lkey) :
		    t_post_recv(p.qp[1], i, b.remote + m[i].roff, m[i].size,
				b.rmr->lkey))
			goto out_pair;
	}
	for (i = 0; i < (int)NR_RC; i++)
		if (t_post_send(p.qp[0], i, b.local + m[i].loff, m[i].size,
				b.lmr->lkey))
			goto out_pair;
	ok = t_wait_ok(p.scq[0], NR_RC, "SEND");
	ok = check_recv_wcs(p.rcq[1], m, NR_RC, p.qp[1]->qp_num) && ok;
	ok = t_check(b.remote, b.expect, len,
		     use_srq ? "SRQ receive buffers" : "receive buffers") && ok;
out_pair:
	t_rc_pair_destroy(&p);
out_srq:
	if (srq)
		ibv_destroy_srq(srq);
out_bufs:
	bufs_free(&b);
	return ok;
}

/* ---- RC atomics ----------------------------------------------------------- */

#define NR_ATOMIC	24

/* 8-byte aligned targets on 16 pages: first, middle and last word of pages,
 * half of the pages initialised by the CPU, half untouched (read as 0).
 */
static size_t atomic_target(int i)
{
	static const size_t in_page[3] = { 0, 2048 + 8, T_PAGE - 8 };

	return (i % 16) * T_PAGE + in_page[i % 3] + (i / 16) * 64;
}

static bool rc_atomic(enum ibv_wr_opcode op)
{
	size_t len = 16 * T_PAGE;
	uint64_t orig[NR_ATOMIC], arg[NR_ATOMIC], swap[NR_ATOMIC];
	uint64_t want_mem[NR_ATOMIC], seed = 0x0dd0 + op;
	struct t_rc_pair p;
	struct bufs b;
	uint64_t *res, v;
	bool ok;
	int i, pg, nr_ops = NR_ATOMIC;
	size_t roff_same = 7 * T_PAGE + 1000;	/* for the FAA chain */
	uint64_t base_same = 0;

	if (bufs_alloc(&b, len))
		return false;
	if (t_rc_pair_create(&dev, &p, NULL)) {
		bufs_free(&b);
		return false;
	}
	/* Pages 0, 2, 4, ... get CPU-written values; odd pages stay untouched. */
	for (pg = 0; pg < 16; pg += 2)
		t_fill(b.remote + pg * T_PAGE, T_PAGE, seed + pg);
	memcpy(b.expect, b.remote, len);

	/* Results land 8-aligned in untouched local memory, across pages. */
	res = (uint64_t *)(b.local + T_PAGE - 64);
	for (i = 0; i < NR_ATOMIC; i++) {
		size_t t = atomic_target(i);

		memcpy(&orig[i], b.expect + t, 8);
		if (op == IBV_WR_ATOMIC_CMP_AND_SWP) {
			/* Every third compare is meant to fail. */
			arg[i] = i % 3 == 2 ? orig[i] ^ 1 : orig[i];
			swap[i] = t_rand64(&seed);
			want_mem[i] = i % 3 == 2 ? orig[i] : swap[i];
		} else {
			arg[i] = i == 5 ? ~0ULL : t_rand64(&seed) >> (i % 40);
			swap[i] = 0;
			want_mem[i] = orig[i] + arg[i];
		}
		memcpy(b.expect + t, &want_mem[i], 8);
		if (t_post_atomic(p.qp[0], op, i, &res[i * 65], b.lmr->lkey,
				  (uintptr_t)b.remote + t, b.rmr->rkey,
				  arg[i], swap[i]))
			nr_ops = i;
	}
	/* FAA: eight adds on one word, all in flight: returns must chain. */
	if (op == IBV_WR_ATOMIC_FETCH_AND_ADD && nr_ops == NR_ATOMIC) {
		memcpy(&base_same, b.expect + roff_same, 8);
		for (i = 0; i < 8; i++)
			if (t_post_atomic(p.qp[0], op, 100 + i,
					  &res[(NR_ATOMIC + i) * 65],
					  b.lmr->lkey,
					  (uintptr_t)b.remote + roff_same,
					  b.rmr->rkey, 1000 + i, 0))
				break;
		nr_ops += i;
		v = base_same;
		for (i = 0; i < 8; i++)
			v += 1000 + i;
		memcpy(b.expect + roff_same, &v, 8);
	}
	ok = nr_ops == (op == IBV_WR_ATOMIC_FETCH_AND_ADD ? NR_ATOMIC + 8 :
			NR_ATOMIC);
	ok = t_wait_ok(p.scq[0], nr_ops, "atomic") && ok;
	for (i = 0; i < NR_ATOMIC && i < nr_ops; i++) {
		if (res[i * 65] == orig[i])
			continue;
		t_diag("atomic %d at remote offset %zu returned 0x%016llx, original was 0x%016llx",
		       i, atomic_target(i), (unsigned long long)res[i * 65],
		       (unsigned long long)orig[i]);
		ok = false;
	}
	if (op == IBV_WR_ATOMIC_FETCH_AND_ADD) {
		v = base_same;
		for (i = 0; i < 8 && NR_ATOMIC + i < nr_ops; i++) {
			if (res[(NR_ATOMIC + i) * 65] != v) {
				t_diag("chained FAA %d returned 0x%016llx, expected 0x%016llx",
				       i,
				       (unsigned long long)res[(NR_ATOMIC + i) * 65],
				       (unsigned long long)v);
				ok = false;
			}
			v += 1000 + i;
		}
	}
	ok = t_check(b.remote, b.expect, len, "atomic target") && ok;
	t_rc_pair_destroy(&p);
	bufs_free(&b);
	return ok;
}

/* ---- UD SEND/RECV --------------------------------------------------------- */

static bool ud_send(void)
{
	static const size_t all[] = { 1, 2, 63, 64, 1000, 2048, 4000, 4095,
				      4096 };
	size_t mtu = 128U << dev.port_attr.active_mtu, sizes[16], len, off;
	struct msg m[16];
	struct ibv_wc wc[16];
	struct t_ud_pair p;
	struct bufs b;
	bool ok = false;
	int i, n = 0, got;

	for (i = 0; i < (int)T_ARRAY_SIZE(all); i++)
		if (all[i] <= mtu)
			sizes[n++] = all[i];
	t_diag("UD: port MTU %zu, %d messages up to %zu bytes", mtu, n,
	       sizes[n - 1]);

	/* Receive buffers hold the 40-byte GRH, then the payload. */
	len = 0;
	for (i = 0; i < n; i++) {
		off = ALIGN_UP(len, T_PAGE) + T_PAGE;
		m[i].size = sizes[i];
		m[i].roff = off + T_PAGE - T_GRH - sizes[i] / 2 - 1;
		m[i].loff = off + 333;
		len = m[i].roff + T_GRH + sizes[i];
	}
	len = ALIGN_UP(len + T_PAGE, T_PAGE);
	if (bufs_alloc(&b, len))
		return false;
	if (t_ud_pair_create(&dev, &p)) {
		bufs_free(&b);
		return false;
	}
	for (i = 0; i < n; i++) {
		t_fill(b.local + m[i].loff, m[i].size, 600 + i);
		memcpy(b.expect + m[i].roff + T_GRH, b.local + m[i].loff,
		       m[i].size);
		if (t_post_recv(p.qp[1], i, b.remote + m[i].roff,
				T_GRH + m[i].size, b.rmr->lkey))
			goto out;
	}
	for (i = 0; i < n; i++)
		if (t_post_ud_send(&p, 0, i, b.local + m[i].loff, m[i].size,
				   b.lmr->lkey))
			goto out;
	ok = t_wait_ok(p.scq[0], n, "UD SEND");
	got = t_poll(p.rcq[1], n, wc);
	ok = got == n && ok;
	for (i = 0; i < got; i++) {
		if (wc[i].status != IBV_WC_SUCCESS ||
		    wc[i].wr_id != (unsigned int)i ||
		    wc[i].byte_len != T_GRH + m[i].size ||
		    wc[i].src_qp != p.qp[0]->qp_num ||
		    !(wc[i].wc_flags & IBV_WC_GRH)) {
			t_diag("UD receive %d: status %s wr_id %llu byte_len %u src_qp %u flags 0x%x; expected byte_len %zu src_qp %u with GRH",
			       i, ibv_wc_status_str(wc[i].status),
			       (unsigned long long)wc[i].wr_id,
			       wc[i].byte_len, wc[i].src_qp, wc[i].wc_flags,
			       T_GRH + m[i].size, p.qp[0]->qp_num);
			ok = false;
		}
		/* The GRH contents are the device's business: take them. */
		memcpy(b.expect + m[i].roff, b.remote + m[i].roff, T_GRH);
	}
	ok = t_check(b.remote, b.expect, len, "UD receive buffers") && ok;
out:
	t_ud_pair_destroy(&p);
	bufs_free(&b);
	return ok;
}

int main(int argc, char **argv)
{
	t_init(argc, argv, "RC/UD/SRQ traffic over ODP MRs, checked byte for byte");
	t_plan(13);
	if (t_dev_open(&dev))
		t_bail("cannot open the RDMA device");

	if (t_odp) {
		t_result(caps_general(), "device reports IBV_ODP_SUPPORT");
		t_result(caps_rc(), "RC ODP caps: SEND RECV WRITE READ ATOMIC SRQ_RECV");
		t_result(caps_ud(), "UD ODP caps: SEND RECV");
	} else {
		t_skip("pinned mode", "device reports IBV_ODP_SUPPORT");
		t_skip("pinned mode", "RC ODP caps: SEND RECV WRITE READ ATOMIC SRQ_RECV");
		t_skip("pinned mode", "UD ODP caps: SEND RECV");
	}
	t_result(rc_write(1), "RC RDMA WRITE, %zu messages 1 B..1 MiB+17 in flight",
		 NR_RC);
	t_result(rc_write_sgl(), "RC RDMA WRITE gathered from 4 SGEs");
	t_result(rc_read(), "RC RDMA READ, %zu messages 1 B..1 MiB+17 in flight",
		 NR_RC);
	t_result(rc_read_untouched_then_write(),
		 "RC RDMA READ of untouched memory gives zeros, then WRITE there lands");
	t_result(rc_send(false), "RC SEND/RECV, %zu messages 1 B..1 MiB+17 in flight",
		 NR_RC);
	t_result(rc_atomic(IBV_WR_ATOMIC_CMP_AND_SWP),
		 "RC ATOMIC compare-and-swap, %d targets", NR_ATOMIC);
	t_result(rc_atomic(IBV_WR_ATOMIC_FETCH_AND_ADD),
		 "RC ATOMIC fetch-and-add, %d targets + 8 chained", NR_ATOMIC);
	t_result(ud_send(), "UD SEND/RECV with GRH, up to the MTU");
	t_result(rc_send(true), "RC SEND into an SRQ, %zu messages in flight",
		 NR_RC);
	t_result(rc_write(2), "RC RDMA WRITE, new data again into faulted-in pages");

	t_dev_close(&dev);
	return t_finish();
}
