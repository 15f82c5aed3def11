// SPDX-License-Identifier: GPL-2.0 OR Linux-OpenIB
/*
 * ucp_check: UCX (UCP) moves fresh buffers to and from another host's memory
 * while that memory is migrated, paged out and merged; every byte is checked.
 *
 * ucx_perftest measures and checks nothing.  This program is the data check
 * for UCX on rxe: the server (host B) owns one long-lived buffer, mapped
 * with ucp_mem_map(), and stresses it with tests/lib/memstress (migration
 * between NUMA nodes, MADV_PAGEOUT to zram, KSM) while the client (host A)
 * sends into it (tag send/recv), puts into it and gets from it.  Each
 * message comes from, or lands in, a buffer the client has just mmap()ed,
 * so that with UCX's registration cache every message registers (pins)
 * memory that is new to it, and with UCX's implicit ODP MR
 * (UCX_IB_REG_METHODS=odp) every message faults its pages in.
 *
 * Contents, commands and verdicts: engcheck.h.
 *
 * The client prints TAP.  Out-of-band control (addresses, keys, commands,
 * the server's verdicts) goes over one TCP connection on --port.
 *
 *   B: ucp_check --server --port P --size BYTES [--stress KINDS]
 *   A: ucp_check --client HOST --port P [--ops send,put,get]
 *                [--sizes N,N,...] [--expect-moved | --expect-pinned]
 *
 * --expect-moved: the server's pages must have been moved by every stress
 * asked for (ODP: nothing pins them); --expect-pinned: none may have been
 * migrated or merged (the registration cache pins them).
 */
#include <arpa/inet.h>
#include <errno.h>
#include <getopt.h>
#include <netdb.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <unistd.h>
#include <ucp/api/ucp.h>

#include "engcheck.h"
#include "odptest.h"

struct hello {
	uint64_t addr, len;
	uint32_t rkey_len, worker_len;
	int32_t kinds;
	uint32_t pad;
};

static int timeout_s = 300;
static ucp_context_h ctx;
static ucp_worker_h worker;
static ucp_ep_h ep;
static int sock = -1;

/* ---- out of band -------------------------------------------------------- */

static int xfer(bool out, void *p, size_t len)
{
	char *c = p;

	while (len) {
		ssize_t n = out ? send(sock, c, len, MSG_NOSIGNAL) :
				  recv(sock, c, len, 0);

		if (n <= 0) {
			t_diag("out-of-band %s: %s", out ? "send" : "recv",
			       n ? strerror(errno) : "peer closed");
			return -1;
		}
		c += n;
		len -= n;
	}
	return 0;
}

/* Wait for the peer to say something, progressing UCX meanwhile. */
static int oob_wait(const char *what)
{
	struct pollfd pfd = { .fd = sock, .events = POLLIN };
	double end = t_now() + timeout_s;

	for (;;) {
		/* a busy worker is progressed again at once, an idle one 1 ms on */
		if (poll(&pfd, 1, ucp_worker_progress(worker) ? 0 : 1) > 0)
			return 0;
		if (t_now() > end) {
			t_diag("no word from the peer for %d s (%s)", timeout_s,
			       what);
			return -1;
		}
	}
}

/* ---- UCX ---------------------------------------------------------------- */

static ucs_status_t wait_req(void *req, const char *what)
{
	double end = t_now() + timeout_s;
	ucs_status_t st;

	if (!req)
		return UCS_OK;
	if (UCS_PTR_IS_ERR(req))
		return UCS_PTR_STATUS(req);
	while ((st = ucp_request_check_status(req)) == UCS_INPROGRESS) {
		ucp_worker_progress(worker);
		if (t_now() > end) {
			t_diag("%s: not complete after %d s", what, timeout_s);
			return UCS_ERR_TIMED_OUT;	/* left in flight */
		}
	}
	ucp_request_free(req);
	return st;
}

static int ucx_init(void)
{
	ucp_params_t p = {
		.field_mask = UCP_PARAM_FIELD_FEATURES,
		.features = UCP_FEATURE_TAG | UCP_FEATURE_RMA,
	};
	ucp_worker_params_t wp = {
		.field_mask = UCP_WORKER_PARAM_FIELD_THREAD_MODE,
		.thread_mode = UCS_THREAD_MODE_SINGLE,
	};
	ucp_config_t *cfg;
	ucs_status_t st;

	st = ucp_config_read(NULL, NULL, &cfg);
	if (st == UCS_OK) {
		st = ucp_init(&p, cfg, &ctx);
		ucp_config_release(cfg);
	}
	if (st == UCS_OK)
		st = ucp_worker_create(ctx, &wp, &worker);
	if (st != UCS_OK)
		t_diag("UCX init: %s", ucs_status_string(st));
	return st == UCS_OK ? 0 : -1;
}

static int ucx_connect(const void *addr)
{
	ucp_ep_params_t p = {
		.field_mask = UCP_EP_PARAM_FIELD_REMOTE_ADDRESS,
		.address = addr,
	};
	ucs_status_t st = ucp_ep_create(worker, &p, &ep);

	if (st != UCS_OK)
		t_diag("ucp_ep_create: %s", ucs_status_string(st));
	return st == UCS_OK ? 0 : -1;
}

static void ucx_fini(void)
{
	ucp_request_param_t rp = { .op_attr_mask = UCP_OP_ATTR_FIELD_FLAGS,
				   .flags = UCP_EP_CLOSE_FLAG_FORCE };

	if (ep)
		wait_req(ucp_ep_close_nbx(ep, &rp), "ucp_ep_close");
	if (worker)
		ucp_worker_destroy(worker);
	if (ctx)
		ucp_cleanup(ctx);
}

/* ---- server (B) --------------------------------------------------------- */

static int serve(int port, size_t size, int kinds)
{
	struct sockaddr_in sa = { .sin_family = AF_INET,
				  .sin_port = htons(port) };
	ucp_mem_map_params_t mp = {
		.field_mask = UCP_MEM_MAP_PARAM_FIELD_ADDRESS |
			      UCP_MEM_MAP_PARAM_FIELD_LENGTH,
	};
	void *rkey = NULL, *waddr = NULL, *peer = NULL;
	size_t rkey_len = 0, waddr_len = 0;
	struct memstress ms;
	struct ms_counts mc;
	struct hello h = { 0 };
	ucp_mem_h memh;
	int lsock, one = 1, rc = 1;
	char *buf;

	buf = mmap(NULL, size, PROT_READ | PROT_WRITE,
		   MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (buf == MAP_FAILED) {
		t_diag("mmap %zu: %s", size, strerror(errno));
		return 1;
	}
	if (ucx_init())
		return 1;
	mp.address = buf;
	mp.length = size;
	if (ucp_mem_map(ctx, &mp, &memh) != UCS_OK ||
	    ucp_rkey_pack(ctx, memh, &rkey, &rkey_len) != UCS_OK ||
	    ucp_worker_get_address(worker, (ucp_address_t **)&waddr,
				   &waddr_len) != UCS_OK) {
		t_diag("ucp_mem_map/rkey_pack/worker_get_address failed");
		return 1;
	}
	if (ms_start(&ms, kinds, buf, size))
		return 1;

	lsock = socket(AF_INET, SOCK_STREAM, 0);
	setsockopt(lsock, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (bind(lsock, (struct sockaddr *)&sa, sizeof(sa)) ||
	    listen(lsock, 1)) {
		t_diag("listen on port %d: %s", port, strerror(errno));
		return 1;
	}
	t_diag("server: %zu bytes at %p, stress %s, listening on %d", size,
	       buf, ms_names(kinds), port);
	sock = accept(lsock, NULL, NULL);
	close(lsock);
	if (sock < 0)
		return 1;

	h.addr = (uintptr_t)buf;
	h.len = size;
	h.rkey_len = rkey_len;
	h.worker_len = waddr_len;
	h.kinds = kinds;
	if (xfer(true, &h, sizeof(h)) || xfer(true, rkey, rkey_len) ||
	    xfer(true, waddr, waddr_len) || xfer(false, &h, sizeof(h)))
		return 1;
	peer = malloc(h.worker_len);
	if (!peer || xfer(false, peer, h.worker_len) || ucx_connect(peer))
		return 1;

	for (;;) {
		struct eng_verdict v = { 0 };
		struct eng_cmd c;
		char *p;
		double t0;

		if (oob_wait("next command") || xfer(false, &c, sizeof(c)))
			break;
		if (c.op == ENG_DONE) {
			ms_stop(&ms, &mc);
			rc = xfer(true, &mc, sizeof(mc));
			break;
		}
		if (c.op == ENG_RECV) {
			ucp_request_param_t rp = { 0 };
			void *req;

			p = eng_range(buf, size, &c);
			if (!p)
				break;
			req = ucp_tag_recv_nbx(worker, p, c.len, c.gen, ~0ULL,
					       &rp);
			/* the client sends once it knows this is posted */
			if (xfer(true, &v, sizeof(v)))
				break;
			t0 = t_now();
			v.status = wait_req(req, "tag receive");
			v.secs = t_now() - t0;
			if (!v.status)
				eng_check(p, c.off, c.len, c.gen, false, &v);
		} else if (eng_serve(&ms, buf, size, &c, &v)) {
			t_diag("command %u refused", c.op);
			break;
		}
		if (xfer(true, &v, sizeof(v)))
			break;
	}
	ms_stop(&ms, &mc);
	ucp_rkey_buffer_release(rkey);
	ucp_worker_release_address(worker, waddr);
	ucp_mem_unmap(ctx, memh);
	ucx_fini();
	close(sock);
	t_diag("server: done (%s)", rc ? "error" : "ok");
	return rc;
}

/* ---- client (A) --------------------------------------------------------- */

struct target {
	uint64_t addr, len;
	ucp_rkey_h rkey;
	int kinds;
};

static int command(uint32_t op, uint32_t gen, uint64_t off, uint64_t len,
		   bool periodic, struct eng_verdict *v)
{
	struct eng_cmd c = { op, gen, off, len, periodic, 0 };

	memset(v, 0, sizeof(*v));
	if (xfer(true, &c, sizeof(c)) || oob_wait("verdict") ||
	    xfer(false, v, sizeof(*v)))
		return -1;
	return 0;
}

/* A stream of operations from fresh buffers, summed up in one result. */
struct stream {
	int n, failed;
	double secs;
	long pin_kb, lck_kb;	/* the largest VmPin, VmLck seen on A */
	bool keep;		/* unmap the buffers only at the end */
	char **kept;		/* [n] */
};

/*
 * One operation of @len bytes at offset @off of the server's buffer, from or
 * into a buffer mapped for it alone.  Prints its result, or with @stream
 * only a failure and adds the rest to @stream.  *fatal is set when the
 * state of the connection is unknown afterwards.
 */
static void one_op(struct target *t, int op, uint32_t gen, uint64_t off,
		   size_t len, struct stream *stream, bool *fatal)
{
	ucp_request_param_t rp = { 0 };
	struct eng_verdict v = { 0 }, pv = { 0 };
	bool periodic = t->kinds & MS_KSM;
	ucs_status_t st = UCS_OK;
	char err[64] = "";
	double t0, secs;
	char *buf;

	buf = mmap(NULL, len, PROT_READ | PROT_WRITE,
		   MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (buf == MAP_FAILED) {
		snprintf(err, sizeof(err), "mmap: %s", strerror(errno));
		*fatal = true;
		goto out;
	}
	if (op != ENG_OP_GET)
		eng_fill(buf, off, len, gen, false);
	/* the target range: filled (the previous generation), in use */
	if (command(op == ENG_OP_GET ? ENG_FILL : ENG_PREPARE,
		    op == ENG_OP_GET ? gen : gen - 1, off, len, periodic, &pv))
		goto lost;
	t0 = t_now();
	if (op == ENG_OP_SEND) {
		if (command(ENG_RECV, gen, off, len, false, &v))	/* posted */
			goto lost;
		st = wait_req(ucp_tag_send_nbx(ep, buf, len, gen, &rp),
			      "tag send");
		if (st == UCS_ERR_TIMED_OUT || oob_wait("receive verdict") ||
		    xfer(false, &v, sizeof(v)))
			goto lost;
	} else if (op == ENG_OP_PUT) {
		st = wait_req(ucp_put_nbx(ep, buf, len, t->addr + off, t->rkey,
					  &rp), "put");
		if (st == UCS_OK)
			st = wait_req(ucp_ep_flush_nbx(ep, &rp), "flush");
		if (st == UCS_ERR_TIMED_OUT ||
		    (st == UCS_OK &&
		     command(ENG_CHECK, gen, off, len, false, &v)))
			goto lost;
	} else {
		st = wait_req(ucp_get_nbx(ep, buf, len, t->addr + off, t->rkey,
					  &rp), "get");
		if (st == UCS_OK)
			st = wait_req(ucp_ep_flush_nbx(ep, &rp), "flush");
		if (st == UCS_ERR_TIMED_OUT)
			goto lost;
	}
	secs = t_now() - t0;
	if (op == ENG_OP_GET && st == UCS_OK)
		eng_check(buf, off, len, gen, periodic, &v);
	if (st != UCS_OK || v.status)
		snprintf(err, sizeof(err), "UCX: %s",
			 ucs_status_string(st != UCS_OK ? st :
					   (ucs_status_t)v.status));
	if (stream) {
		/* what the registration of this buffer holds, before munmap */
		long pin = eng_status_kb("VmPin:"), lck = eng_status_kb("VmLck:");

		stream->pin_kb = pin > stream->pin_kb ? pin : stream->pin_kb;
		stream->lck_kb = lck > stream->lck_kb ? lck : stream->lck_kb;
		stream->secs += secs;
		if (stream->keep)
			stream->kept[stream->n] = buf;
		stream->n++;
	}
	if (!stream || err[0] || v.bad) {
		/* a stream ends at its first failure, which is its result */
		if (stream)
			stream->failed++;
		eng_result(op, len, gen, off, err[0] ? err : NULL, &v,
			   op == ENG_OP_GET ? "A" : "B", secs, periodic,
			   pv.ksm);
	}
	if (!stream || !stream->keep)
		munmap(buf, len);
	return;
lost:
	snprintf(err, sizeof(err), "lost the server (UCX: %s)",
		 ucs_status_string(st));
	*fatal = true;
	munmap(buf, len);
out:
	if (stream)
		stream->failed++;
	eng_result(op, len, gen, off, err, &v, "", 0, false, 0);
}

/* @n operations of @len bytes, each from or into a fresh buffer. */
static void stream_op(struct target *t, int op, uint32_t *gen, size_t len,
		      int n, bool keep, bool *fatal)
{
	struct stream acc = { .keep = keep };
	int k;

	acc.kept = calloc(n, sizeof(*acc.kept));
	if (!acc.kept)
		t_bail("out of memory");
	for (k = 0; k < n && !acc.failed && !*fatal; k++) {
		*gen += 2;
		one_op(t, op, *gen, eng_offset(*gen), len, &acc, fatal);
	}
	for (k = 0; k < acc.n && keep; k++)
		munmap(acc.kept[k], len);
	free(acc.kept);
	if (acc.failed)
		return;
	t_diag("stream op=%s%s bytes=%zu n=%d usec_per_msg=%.1f vmpin_kb=%ld "
	       "vmlck_kb=%ld", eng_op_name(op), keep ? "_kept" : "", len,
	       acc.n, acc.secs / acc.n * 1e6, acc.pin_kb, acc.lck_kb);
	t_result(true, "stream of %d %s %s from fresh buffers%s: every byte "
		 "correct, %.0f usec per message, VmPin at most %ld kB, VmLck "
		 "at most %ld kB", acc.n, eng_op_name(op), eng_size_name(len),
		 keep ? " kept mapped" : "", acc.secs / acc.n * 1e6,
		 acc.pin_kb, acc.lck_kb);
}

static int client(const char *host, int port, int ops, const size_t *sizes,
		  int nsizes, int expect, int stream, bool keep)
{
	struct addrinfo hints = { .ai_family = AF_INET,
				  .ai_socktype = SOCK_STREAM }, *ai;
	size_t rkey_len, waddr_len;
	struct target t = { 0 };
	struct ms_counts mc;
	struct hello h, mine = { 0 };
	void *rkey, *peer, *waddr;
	uint32_t gen = ENG_GEN0;
	bool fatal = false;
	char portstr[16];
	int i, op, n = 0;
	double end;

	for (op = ENG_OP_SEND; op <= ENG_OP_GET; op <<= 1)
		n += !!(ops & op) * nsizes;
	t_plan(n + 1);
	snprintf(portstr, sizeof(portstr), "%d", port);
	if (getaddrinfo(host, portstr, &hints, &ai))
		t_bail("cannot resolve %s", host);
	end = t_now() + 60;
	do {
		sock = socket(AF_INET, SOCK_STREAM, 0);
		if (!connect(sock, ai->ai_addr, ai->ai_addrlen))
			break;
		close(sock);
		sock = -1;
		usleep(200000);
	} while (t_now() < end);
	freeaddrinfo(ai);
	if (sock < 0)
		t_bail("cannot connect to %s:%d", host, port);
	if (ucx_init())
		t_bail("UCX did not initialise");
	if (xfer(false, &h, sizeof(h)))
		t_bail("no hello from the server");
	rkey = malloc(h.rkey_len);
	peer = malloc(h.worker_len);
	if (!rkey || !peer || xfer(false, rkey, h.rkey_len) ||
	    xfer(false, peer, h.worker_len))
		t_bail("no keys from the server");
	if (ucp_worker_get_address(worker, (ucp_address_t **)&waddr,
				   &waddr_len) != UCS_OK)
		t_bail("ucp_worker_get_address failed");
	mine.worker_len = waddr_len;
	if (xfer(true, &mine, sizeof(mine)) || xfer(true, waddr, waddr_len))
		t_bail("cannot send our address");
	if (ucx_connect(peer) ||
	    ucp_ep_rkey_unpack(ep, rkey, &t.rkey) != UCS_OK)
		t_bail("cannot reach the server through UCX");
	t.addr = h.addr;
	t.len = h.len;
	t.kinds = h.kinds;
	rkey_len = h.rkey_len;
	t_diag("client: server buffer %#lx+%#lx (rkey %zu bytes), stress %s",
	       (unsigned long)t.addr, (unsigned long)t.len, rkey_len,
	       ms_names(t.kinds));

	for (op = ENG_OP_SEND; op <= ENG_OP_GET && !fatal; op <<= 1) {
		for (i = 0; i < nsizes && !fatal && ops & op; i++) {
			uint64_t off;

			gen += 2;	/* gen - 1 is the prepared contents */
			off = eng_offset(gen);
			if (off + sizes[i] > t.len) {
				t_result(false, "%s %s: larger than the server's "
					 "buffer", eng_op_name(op),
					 eng_size_name(sizes[i]));
				continue;
			}
			if (stream)
				stream_op(&t, op, &gen, sizes[i], stream,
					  keep, &fatal);
			else
				one_op(&t, op, gen, off, sizes[i], NULL,
				       &fatal);
		}
	}
	if (fatal)
		t_bail("the connection to the server is in an unknown state");
	{
		struct eng_cmd c = { .op = ENG_DONE };

		if (xfer(true, &c, sizeof(c)) || oob_wait("stress counts") ||
		    xfer(false, &mc, sizeof(mc)))
			t_bail("no stress counts from the server");
	}
	eng_stress_result(&mc, t.kinds, expect);
	ucp_rkey_destroy(t.rkey);
	ucp_worker_release_address(worker, waddr);
	free(rkey);
	free(peer);
	ucx_fini();
	close(sock);
	return t_finish();
}

static void usage(FILE *f)
{
	fprintf(f, "usage: ucp_check --server --port P --size BYTES "
		"[--stress none|migrate,pageout,ksm]\n"
		"       ucp_check --client HOST --port P [--ops send,put,get] "
		"[--sizes N[K|M],...]\n"
		"                 [--expect-moved|--expect-pinned] "
		"[--stream N [--keep]] [--timeout S]\n"
		"--stream N: N operations of each kind and size, each from or "
		"into a fresh buffer,\n"
		"            timed and summed up in one result; --keep: the "
		"buffers stay mapped\n"
		"            until the stream ends (a registration cache keeps "
		"them registered)\n");
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
		ENG_OPTIONS,
		{ "server", no_argument, NULL, 'S' },
		{ "client", required_argument, NULL, 'C' },
		{ "port", required_argument, NULL, 'p' },
		{ "timeout", required_argument, NULL, 't' },
		{ "stream", required_argument, NULL, 'r' },
		{ "keep", no_argument, NULL, 'k' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	bool server = false, keep = false;
	const char *host = NULL;
	int c, port = 0, stream = 0;
	struct eng_opts o;

	setvbuf(stdout, NULL, _IOLBF, 0);
	eng_opts_init(&o);
	while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		switch (eng_option(&o, c, optarg)) {
		case 1:
			continue;
		case -1:
			goto bad;
		}
		switch (c) {
		case 'S':
			server = true;
			break;
		case 'C':
			host = optarg;
			break;
		case 'p':
			port = atoi(optarg);
			break;
		case 'k':
			keep = true;
			break;
		case 'r':
			stream = atoi(optarg);
			if (stream <= 0)
				goto bad;
			break;
		case 't':
			timeout_s = atoi(optarg);
			if (timeout_s <= 0)
				goto bad;
			break;
		case 'h':
			usage(stdout);
			return 0;
		default:
			goto bad;
		}
	}
	if (optind != argc || port <= 0 || server == !!host ||
	    (server && !o.size) || (keep && !stream))
		goto bad;
	if (server)
		return serve(port, o.size, o.kinds);
	return client(host, port, o.ops, o.sizes, o.nsizes, o.expect, stream,
		      keep);
bad:
	usage(stderr);
	return 2;
}
