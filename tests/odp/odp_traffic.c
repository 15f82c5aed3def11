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

#include "odpharness.h"

#define ALIGN_UP(x, a)	(((x) + (a) - 1) & ~((a) - 1))

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
static int bufs_alloc(struct t_dev *dev, struct bufs *b, size_t len)
{
	memset(b, 0, sizeof(*b));
	b->len = len;
	b->local = t_mmap(len);
	b->remote = t_mmap(len);
	b->expect = calloc(1, len);
	if (!b->local || !b->remote || !b->expect)
		return -1;
	b->lmr = t_reg_mr(dev, b->local, len, T_ACCESS_ALL);
	if (!b->lmr)
		return -1;
	b->rmr = t_reg_mr(dev, b->remote, len, T_ACCESS_ALL);
	if (!b->rmr)
		return -1;
	return 0;
}

/*
 * The device, and what a test allocates: its buffers, an RC or a UD pair,
 * an SRQ.  Teardown frees whatever the test got to.
 */
FIXTURE(traffic) {
	struct t_dev dev;
	struct bufs b;
	struct t_rc_pair rc;
	struct t_ud_pair ud;
	struct ibv_srq *srq;
	bool have_rc, have_ud;
};

ODP_VARIANTS(traffic);

FIXTURE_SETUP(traffic)
{
	t_variant();
	ASSERT_EQ(0, t_dev_open(&self->dev));
}

FIXTURE_TEARDOWN(traffic)
{
	if (self->have_rc)
		t_rc_pair_destroy(&self->rc);
	if (self->have_ud)
		t_ud_pair_destroy(&self->ud);
	if (self->srq)
		ibv_destroy_srq(self->srq);
	bufs_free(&self->b);
	t_dev_close(&self->dev);
}

/* Buffers of @len bytes and an RC pair (receiving from @srq, if any). */
#define TRAFFIC_RC(len, srq) do {					\
	ASSERT_EQ(0, bufs_alloc(&self->dev, &self->b, (len)));		\
	ASSERT_EQ(0, t_rc_pair_create(&self->dev, &self->rc, (srq)));	\
	self->have_rc = true;						\
} while (0)

/* ---- capabilities ------------------------------------------------------- */

TEST_F(traffic, caps_general)
{
	const struct ibv_odp_caps *c = &self->dev.attr.odp_caps;

	if (!variant->odp)
		SKIP(return, "pinned mode");
	t_diag("odp_caps: general 0x%llx rc 0x%x uc 0x%x ud 0x%x",
	       (unsigned long long)c->general_caps,
	       c->per_transport_caps.rc_odp_caps,
	       c->per_transport_caps.uc_odp_caps,
	       c->per_transport_caps.ud_odp_caps);
	EXPECT_TRUE(c->general_caps & IBV_ODP_SUPPORT);
}

/* RC: SEND RECV WRITE READ ATOMIC SRQ_RECV */
TEST_F(traffic, caps_rc)
{
	uint32_t want = IBV_ODP_SUPPORT_SEND | IBV_ODP_SUPPORT_RECV |
			IBV_ODP_SUPPORT_WRITE | IBV_ODP_SUPPORT_READ |
			IBV_ODP_SUPPORT_ATOMIC | IBV_ODP_SUPPORT_SRQ_RECV;
	uint32_t have = self->dev.attr.odp_caps.per_transport_caps.rc_odp_caps;

	if (!variant->odp)
		SKIP(return, "pinned mode");
	EXPECT_EQ(want, have & want) {
		TH_LOG("rc_odp_caps 0x%x lacks 0x%x", have, want & ~have);
	}
}

/* UD: SEND RECV */
TEST_F(traffic, caps_ud)
{
	uint32_t want = IBV_ODP_SUPPORT_SEND | IBV_ODP_SUPPORT_RECV;
	uint32_t have = self->dev.attr.odp_caps.per_transport_caps.ud_odp_caps;

	if (!variant->odp)
		SKIP(return, "pinned mode");
	EXPECT_EQ(want, have & want) {
		TH_LOG("ud_odp_caps 0x%x lacks 0x%x", have, want & ~have);
	}
}

/* ---- RC RDMA WRITE / READ ------------------------------------------------- */

/* Post all messages; 0 or the number of the one that could not be. */
static int rdma_post_all(struct t_rc_pair *p, enum ibv_wr_opcode op,
			 struct bufs *b, const struct msg *m, int n)
{
	int i;

	for (i = 0; i < n; i++)
		if (t_post_rdma(p->qp[0], op, i, b->local + m[i].loff,
				m[i].size, b->lmr->lkey,
				(uintptr_t)b->remote + m[i].roff,
				b->rmr->rkey))
			return i + 1;
	return 0;
}

/*
 * All 17 messages, 1 B .. 1 MiB + 17, in flight at once; @rounds > 1
 * writes new data again into the pages the first round faulted in (the
 * warm path).
 */
static void rc_write(struct __test_metadata *_metadata,
		     FIXTURE_DATA(traffic) *self, int rounds)
{
	struct bufs *b = &self->b;
	struct msg m[NR_RC];
	size_t len;
	int i, r;

	len = layout(m, rc_sizes, NR_RC, 2 * T_PAGE + 777);
	TRAFFIC_RC(len, NULL);
	for (r = 0; r < rounds; r++) {
		/* Source data: the CPU writes it.  Target: untouched. */
		for (i = 0; i < (int)NR_RC; i++) {
			t_fill(b->local + m[i].loff, m[i].size,
			       100 + i + 1000 * r);
			memcpy(b->expect + m[i].roff, b->local + m[i].loff,
			       m[i].size);
		}
		ASSERT_EQ(0, rdma_post_all(&self->rc, IBV_WR_RDMA_WRITE, b, m,
					   NR_RC));
		EXPECT_TRUE(t_wait_ok(self->rc.scq[0], NR_RC, "WRITE"));
		EXPECT_BYTES(b->remote, b->expect, len,
			     r ? "WRITE target (warm)" : "WRITE target");
	}
	t_diag("%zu messages, %zu..%zu bytes, %zu byte buffers", NR_RC,
	       rc_sizes[0], rc_sizes[NR_RC - 1], len);
}

TEST_F(traffic, rc_write)
{
	rc_write(_metadata, self, 1);
}

/* One WRITE gathered from four SGEs on different pages. */
TEST_F(traffic, rc_write_sgl)
{
	static const size_t sz[4] = { 1, 4097, 3000, 65536 + 5 };
	static const size_t lo[4] = { 4095, 3 * T_PAGE - 100, 9 * T_PAGE + 1,
				      12 * T_PAGE - 7 };
	size_t len = 32 * T_PAGE, roff = 5 * T_PAGE - 11, off;
	struct bufs *b = &self->b;
	struct ibv_sge sge[4];
	int i;

	TRAFFIC_RC(len, NULL);
	for (i = 0, off = roff; i < 4; i++) {
		t_fill(b->local + lo[i], sz[i], 200 + i);
		memcpy(b->expect + off, b->local + lo[i], sz[i]);
		sge[i].addr = (uintptr_t)b->local + lo[i];
		sge[i].length = sz[i];
		sge[i].lkey = b->lmr->lkey;
		off += sz[i];
	}
	ASSERT_EQ(0, t_post_rdma_sgl(self->rc.qp[0], IBV_WR_RDMA_WRITE, 1,
				     sge, 4, (uintptr_t)b->remote + roff,
				     b->rmr->rkey));
	EXPECT_TRUE(t_wait_ok(self->rc.scq[0], 1, "WRITE sgl"));
	EXPECT_BYTES(b->remote, b->expect, len, "WRITE sgl target");
}

/* All 17 messages, 1 B .. 1 MiB + 17, in flight at once. */
TEST_F(traffic, rc_read)
{
	struct bufs *b = &self->b;
	struct msg m[NR_RC];
	size_t len;
	int i;

	len = layout(m, rc_sizes, NR_RC, T_PAGE + 1234);
	TRAFFIC_RC(len, NULL);
	/* Source: the whole remote buffer; target: untouched local. */
	t_fill(b->remote, len, 300);
	for (i = 0; i < (int)NR_RC; i++)
		memcpy(b->expect + m[i].loff, b->remote + m[i].roff, m[i].size);
	ASSERT_EQ(0, rdma_post_all(&self->rc, IBV_WR_RDMA_READ, b, m, NR_RC));
	EXPECT_TRUE(t_wait_ok(self->rc.scq[0], NR_RC, "READ"));
	EXPECT_BYTES(b->local, b->expect, len, "READ target");
}

/*
 * The device first reads never-touched memory (which must read as zeros),
 * then writes there.  The write must land in a private page of ours, not
 * in whatever page served the read (the shared zero page): a fresh mapping
 * must still read as zeros afterwards.
 */
TEST_F(traffic, rc_read_untouched_then_write)
{
	size_t len = 64 * T_PAGE, off = 3 * T_PAGE + 5, n = 20 * T_PAGE;
	struct t_rc_pair *p = &self->rc;
	struct bufs *b = &self->b;
	uint8_t *fresh;

	TRAFFIC_RC(len, NULL);
	memset(b->local, 0xa5, len);
	EXPECT_WC(IBV_WC_SUCCESS,
		  t_rdma_sync(p, IBV_WR_RDMA_READ, b->local + off, n,
			      b->lmr->lkey, (uintptr_t)b->remote + off,
			      b->rmr->rkey));
	EXPECT_FILLED(b->local + off, 0, n, "READ of untouched memory");
	t_fill(b->local, len, 400);
	memcpy(b->expect + off, b->local + off, n);
	EXPECT_WC(IBV_WC_SUCCESS,
		  t_rdma_sync(p, IBV_WR_RDMA_WRITE, b->local + off, n,
			      b->lmr->lkey, (uintptr_t)b->remote + off,
			      b->rmr->rkey));
	EXPECT_BYTES(b->remote, b->expect, len, "WRITE after READ");
	/* And the device reads back what it wrote. */
	memset(b->local, 0, len);
	EXPECT_WC(IBV_WC_SUCCESS,
		  t_rdma_sync(p, IBV_WR_RDMA_READ, b->local + off, n,
			      b->lmr->lkey, (uintptr_t)b->remote + off,
			      b->rmr->rkey));
	EXPECT_BYTES(b->local + off, b->expect + off, n, "READ back");
	fresh = t_mmap(len);
	ASSERT_NE(NULL, fresh);
	EXPECT_FILLED(fresh, 0, len, "fresh mapping (zero page)");
	t_munmap(fresh, len);
}

/* ---- RC SEND/RECV, SRQ ---------------------------------------------------- */

/* The receive completions of @n messages @m on QP @qpn, in order. */
static void check_recv_wcs(struct __test_metadata *_metadata,
			   struct ibv_cq *cq, const struct msg *m, int n,
			   uint32_t qpn)
{
	struct ibv_wc wc[NR_RC];
	int got, i;

	ASSERT_GE(NR_RC, n);
	got = t_poll(cq, n, wc);
	EXPECT_EQ(n, got);
	for (i = 0; i < got; i++) {
		EXPECT_WC(IBV_WC_SUCCESS, wc[i].status);
		if (wc[i].status != IBV_WC_SUCCESS) {
			TH_LOG("receive %d", i);
			continue;
		}
		/* RC: receives complete in order */
		EXPECT_TRUE(wc[i].opcode == IBV_WC_RECV &&
			    wc[i].wr_id == (unsigned int)i &&
			    wc[i].byte_len == m[i].size &&
			    wc[i].qp_num == qpn) {
			TH_LOG("receive %d: opcode %d wr_id %llu byte_len %u qp %u; expected RECV wr_id %d byte_len %zu qp %u",
			       i, wc[i].opcode,
			       (unsigned long long)wc[i].wr_id,
			       wc[i].byte_len, wc[i].qp_num, i, m[i].size,
			       qpn);
		}
	}
}

/* All 17 messages in flight, received in untouched memory (or an SRQ's). */
static void rc_send(struct __test_metadata *_metadata,
		    FIXTURE_DATA(traffic) *self, bool use_srq)
{
	struct t_rc_pair *p = &self->rc;
	struct bufs *b = &self->b;
	struct msg m[NR_RC];
	size_t len;
	int i;

	len = layout(m, rc_sizes, NR_RC, 3 * T_PAGE + 2047);
	if (use_srq) {
		self->srq = t_srq_create(&self->dev, 256);
		ASSERT_NE(NULL, self->srq);
	}
	TRAFFIC_RC(len, self->srq);
	/* Receive into untouched remote memory, send from local. */
	for (i = 0; i < (int)NR_RC; i++) {
		t_fill(b->local + m[i].loff, m[i].size, 500 + i);
		memcpy(b->expect + m[i].roff, b->local + m[i].loff, m[i].size);
		if (use_srq) {
			ASSERT_EQ(0, t_post_srq_recv(self->srq, i,
						     b->remote + m[i].roff,
						     m[i].size, b->rmr->lkey));
		} else {
			ASSERT_EQ(0, t_post_recv(p->qp[1], i,
						 b->remote + m[i].roff,
						 m[i].size, b->rmr->lkey));
		}
	}
	for (i = 0; i < (int)NR_RC; i++)
		ASSERT_EQ(0, t_post_send(p->qp[0], i, b->local + m[i].loff,
					 m[i].size, b->lmr->lkey));
	EXPECT_TRUE(t_wait_ok(p->scq[0], NR_RC, "SEND"));
	check_recv_wcs(_metadata, p->rcq[1], m, NR_RC, p->qp[1]->qp_num);
	EXPECT_BYTES(b->remote, b->expect, len,
		     use_srq ? "SRQ receive buffers" : "receive buffers");
}

TEST_F(traffic, rc_send)
{
	rc_send(_metadata, self, false);
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

/*
 * 24 targets in flight; for fetch-and-add also 8 adds on one word, whose
 * returns must chain.
 */
static void rc_atomic(struct __test_metadata *_metadata,
		      FIXTURE_DATA(traffic) *self, enum ibv_wr_opcode op)
{
	size_t len = 16 * T_PAGE;
	uint64_t orig[NR_ATOMIC], arg[NR_ATOMIC], swap[NR_ATOMIC];
	uint64_t want_mem[NR_ATOMIC], seed = 0x0dd0 + op;
	struct t_rc_pair *p = &self->rc;
	struct bufs *b = &self->b;
	uint64_t *res, v;
	int i, pg, nr_ops = NR_ATOMIC;
	size_t roff_same = 7 * T_PAGE + 1000;	/* for the FAA chain */
	uint64_t base_same = 0;

	TRAFFIC_RC(len, NULL);
	/* Pages 0, 2, 4, ... get CPU-written values; odd pages stay untouched. */
	for (pg = 0; pg < 16; pg += 2)
		t_fill(b->remote + pg * T_PAGE, T_PAGE, seed + pg);
	memcpy(b->expect, b->remote, len);

	/* Results land 8-aligned in untouched local memory, across pages. */
	res = (uint64_t *)(b->local + T_PAGE - 64);
	for (i = 0; i < NR_ATOMIC; i++) {
		size_t t = atomic_target(i);

		memcpy(&orig[i], b->expect + t, 8);
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
		memcpy(b->expect + t, &want_mem[i], 8);
		ASSERT_EQ(0, t_post_atomic(p->qp[0], op, i, &res[i * 65],
					   b->lmr->lkey,
					   (uintptr_t)b->remote + t,
					   b->rmr->rkey, arg[i], swap[i]));
	}
	/* FAA: eight adds on one word, all in flight: returns must chain. */
	if (op == IBV_WR_ATOMIC_FETCH_AND_ADD) {
		memcpy(&base_same, b->expect + roff_same, 8);
		for (i = 0; i < 8; i++)
			ASSERT_EQ(0, t_post_atomic(p->qp[0], op, 100 + i,
						   &res[(NR_ATOMIC + i) * 65],
						   b->lmr->lkey,
						   (uintptr_t)b->remote +
						   roff_same,
						   b->rmr->rkey, 1000 + i, 0));
		nr_ops += 8;
		v = base_same;
		for (i = 0; i < 8; i++)
			v += 1000 + i;
		memcpy(b->expect + roff_same, &v, 8);
	}
	EXPECT_TRUE(t_wait_ok(p->scq[0], nr_ops, "atomic"));
	for (i = 0; i < NR_ATOMIC; i++) {
		EXPECT_EQ(orig[i], res[i * 65]) {
			TH_LOG("atomic %d at remote offset %zu returned 0x%016llx, original was 0x%016llx",
			       i, atomic_target(i),
			       (unsigned long long)res[i * 65],
			       (unsigned long long)orig[i]);
		}
	}
	if (op == IBV_WR_ATOMIC_FETCH_AND_ADD) {
		v = base_same;
		for (i = 0; i < 8; i++) {
			EXPECT_EQ(v, res[(NR_ATOMIC + i) * 65]) {
				TH_LOG("chained FAA %d returned 0x%016llx, expected 0x%016llx",
				       i,
				       (unsigned long long)res[(NR_ATOMIC + i) * 65],
				       (unsigned long long)v);
			}
			v += 1000 + i;
		}
	}
	EXPECT_BYTES(b->remote, b->expect, len, "atomic target");
}

TEST_F(traffic, rc_atomic_cmp_swap)
{
	rc_atomic(_metadata, self, IBV_WR_ATOMIC_CMP_AND_SWP);
}

TEST_F(traffic, rc_atomic_fetch_add)
{
	rc_atomic(_metadata, self, IBV_WR_ATOMIC_FETCH_AND_ADD);
}

/* ---- UD SEND/RECV --------------------------------------------------------- */

/* Messages up to the MTU, received with their GRH. */
TEST_F(traffic, ud_send)
{
	static const size_t all[] = { 1, 2, 63, 64, 1000, 2048, 4000, 4095,
				      4096 };
	size_t mtu = 128U << self->dev.port_attr.active_mtu, sizes[16];
	struct t_ud_pair *p = &self->ud;
	struct bufs *b = &self->b;
	struct ibv_wc wc[16];
	struct msg m[16];
	size_t len, off;
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
	ASSERT_EQ(0, bufs_alloc(&self->dev, b, len));
	ASSERT_EQ(0, t_ud_pair_create(&self->dev, p));
	self->have_ud = true;
	for (i = 0; i < n; i++) {
		t_fill(b->local + m[i].loff, m[i].size, 600 + i);
		memcpy(b->expect + m[i].roff + T_GRH, b->local + m[i].loff,
		       m[i].size);
		ASSERT_EQ(0, t_post_recv(p->qp[1], i, b->remote + m[i].roff,
					 T_GRH + m[i].size, b->rmr->lkey));
	}
	for (i = 0; i < n; i++)
		ASSERT_EQ(0, t_post_ud_send(p, 0, i, b->local + m[i].loff,
					    m[i].size, b->lmr->lkey));
	EXPECT_TRUE(t_wait_ok(p->scq[0], n, "UD SEND"));
	got = t_poll(p->rcq[1], n, wc);
	EXPECT_EQ(n, got);
	for (i = 0; i < got; i++) {
		EXPECT_TRUE(wc[i].status == IBV_WC_SUCCESS &&
			    wc[i].wr_id == (unsigned int)i &&
			    wc[i].byte_len == T_GRH + m[i].size &&
			    wc[i].src_qp == p->qp[0]->qp_num &&
			    (wc[i].wc_flags & IBV_WC_GRH)) {
			TH_LOG("UD receive %d: status %s wr_id %llu byte_len %u src_qp %u flags 0x%x; expected byte_len %zu src_qp %u with GRH",
			       i, ibv_wc_status_str(wc[i].status),
			       (unsigned long long)wc[i].wr_id,
			       wc[i].byte_len, wc[i].src_qp, wc[i].wc_flags,
			       T_GRH + m[i].size, p->qp[0]->qp_num);
		}
		/* The GRH contents are the device's business: take them. */
		memcpy(b->expect + m[i].roff, b->remote + m[i].roff, T_GRH);
	}
	EXPECT_BYTES(b->remote, b->expect, len, "UD receive buffers");
}

TEST_F(traffic, rc_send_srq)
{
	rc_send(_metadata, self, true);
}

/* The warm path: new data again into the pages a first round faulted. */
TEST_F(traffic, rc_write_again)
{
	rc_write(_metadata, self, 2);
}

ODP_HARNESS_MAIN("RC/UD/SRQ traffic over ODP MRs, checked byte for byte")
