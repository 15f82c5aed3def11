#!/bin/bash
# test-timeout: 2700
# Install the Debian packages the way a user would, as TAP: `dpkg -i` of
# rxe-odp-dkms, librxeodp1 and librxeodp-dev (built on the host by
# `make deb` into $RXE_ODP_BUILD/deb), DKMS builds rdma_rxe for the running
# kernel from linux-source-6.1, `modprobe rdma_rxe` loads it (not the stock
# module) and rxe0 reports ODP; librxeodp links through pkg-config and
# prefetches an ODP MR; then `dpkg --purge` and `modprobe rdma_rxe` gives
# the stock module back.  Runs INSIDE the test guest, as root: the guest's
# root is the host's / under a writable tmpfs overlay, so the packages'
# dependencies are those installed on the host and nothing reaches the
# host.  Runs last (98-): it unloads the module under test, and restores it
# (and rxe0) before it exits, whatever happened.
#
# The DKMS build is the package's, with one difference: when make check
# left DEBDIR/test/linux-source-6.1_VERSION_rxe.tar.xz (rxe's directory cut
# from the installed linux-source-6.1 by scripts/rxe-source-subset.sh), it
# is handed to the build as LINUX_SOURCE_TARBALL, because xz-decompressing
# the whole 1.3 GB linux-source-6.1 takes TCG many minutes; the extraction
# code is the same (scripts/build-rxe.sh, which make module runs on the
# host).  RXE_DEB_FULL_SOURCE=1 uses the full tarball (with KVM).
#
# Environment: RXE_DEB_DIR (DEBDIR, default $RXE_ODP_BUILD/deb),
# RXE_DEB_FULL_SOURCE, RXE_DEB_SKIP (a reason: skip the test), plus
# run-vm.sh's RXE_MODULE, RXE_STOCK, RXE_DEV.
#
# Alone, in a guest (after make module deb):
#   tests/vm/run-vm.sh --kver KVER --module build/KVER/rdma_rxe.ko \
#       --out DIR -- tests/guest/98-deb-install.sh
set -u

DEV=${RXE_DEV:-rxe0}
DEBS=${RXE_DEB_DIR:-${RXE_ODP_BUILD:-$(pwd)/build}/deb}
KVER=$(uname -r)
SYS=/sys/module/rdma_rxe
UPDATES=/lib/modules/$KVER/updates/dkms/rdma_rxe.ko
STOCK=/lib/modules/$KVER/kernel/drivers/infiniband/sw/rxe/rdma_rxe.ko
PKGS="rxe-odp-dkms librxeodp1 librxeodp-dev"
WORK=$(mktemp -d /tmp/deb-install.XXXXXX)

n=0 bad=0
ok() { n=$((n + 1)); echo "ok $n $*"; }
not_ok() { n=$((n + 1)); bad=$((bad + 1)); echo "not ok $n $*"; }
diag() { sed 's/^/# /'; }
check() {	# check NAME CMD...: ok if CMD succeeds; its output as diagnostics on failure
	local name=$1 out
	shift
	if out=$("$@" 2>&1); then
		ok "$name"
	else
		not_ok "$name"
		[ -z "$out" ] || echo "$out" | tail -n 30 | diag
	fi
}
build_id_loaded() {
	od -An -tx1 -v -j16 "$SYS/notes/.note.gnu.build-id" 2>/dev/null | tr -d ' \n'
}
build_id_file() {
	readelf -n "$1" 2>/dev/null | sed -n 's/.*Build ID: *//p' | head -n 1
}
loaded_is() {	# loaded_is FILE: the loaded rdma_rxe is FILE's image
	local have want
	have=$(build_id_loaded) want=$(build_id_file "$1")
	[ -n "$want" ] && [ "$have" = "$want" ] ||
		{ echo "build-id loaded '$have', $1 '$want'"; return 1; }
}
rxe_down() {	# delete the rxe links and unload rdma_rxe
	local l
	for l in $(rdma link show 2>/dev/null | sed -n 's|^link \([^/]*\)/.* netdev .*|\1|p'); do
		rdma link delete "$l" || return 1
	done
	if [ -d "$SYS" ]; then
		rmmod rdma_rxe || return 1
	fi
	[ ! -d "$SYS" ]
}
rxe_up() {	# create rxe0 over lo and wait for the port
	rdma link add "$DEV" type rxe netdev lo || return 1
	for _ in $(seq 1 20); do
		[ "$(cat "/sys/class/infiniband/$DEV/ports/1/state" 2>/dev/null)" = "4: ACTIVE" ] && break
		sleep 0.5
	done
	chmod 666 /dev/infiniband/* 2>/dev/null
	[ "$(cat "/sys/class/infiniband/$DEV/ports/1/state" 2>/dev/null)" = "4: ACTIVE" ]
}
odp_caps() {	# rxe0 advertises RC ODP
	local out
	out=$(ibv_devinfo -v -d "$DEV" 2>&1) || { echo "$out"; return 1; }
	echo "$out" | grep -q 'ODP_SUPPORT' &&
		echo "$out" | sed -n '/rc_odp_caps/,/uc_odp_caps/p' | grep -q 'SUPPORT_' ||
		{ echo "$out" | grep -i -A8 odp; return 1; }
}
purge() {
	# shellcheck disable=SC2086
	dpkg --purge $PKGS
}
restore() {	# the state the test bed set up: the module under test, rxe0
	local want
	purge >/dev/null 2>&1
	rxe_down >/dev/null 2>&1
	if [ "${RXE_STOCK:-0}" = 1 ]; then
		modprobe rdma_rxe; want=$(modinfo -F filename rdma_rxe)
	else
		# shellcheck disable=SC2046  # one word per module
		modprobe -a $(modinfo -F depends "$RXE_MODULE" | tr ',' ' ')
		insmod "$RXE_MODULE"; want=$RXE_MODULE
	fi
	rxe_up && loaded_is "$want"
}
restored=0 copier=""
cleanup() {
	[ -z "$copier" ] || kill "$copier" 2>/dev/null
	[ "$restored" = 1 ] || restore >/dev/null 2>&1
	rm -rf "$WORK"
}
trap cleanup EXIT

echo "TAP version 13"
if [ -n "${RXE_DEB_SKIP:-}" ]; then
	restored=1
	echo "1..0 # SKIP $RXE_DEB_SKIP"
	exit 0
fi
echo "1..14"

# make deb leaves exactly one build of each package in $DEBS.
files="" nfiles=0 dkms_deb=""
for p in $PKGS; do
	for f in "$DEBS/${p}_"*.deb; do
		[ -f "$f" ] || continue
		files="$files $f" nfiles=$((nfiles + 1))
		[ "$p" != rxe-odp-dkms ] || dkms_deb=$f
	done
done
if [ -z "$dkms_deb" ] || [ "$nfiles" != 3 ]; then
	echo "Bail out! packages (one of each: $PKGS) not found in $DEBS (make deb builds them; make check does it first)"
	exit 1
fi
version=$(dpkg-deb -f "$dkms_deb" Version)
echo "# packages $version from $DEBS"
subset="$DEBS/test/linux-source-6.1_$(dpkg-query -W -f='${Version}' linux-source-6.1 2>/dev/null)_rxe.tar.xz"
if [ "${RXE_DEB_FULL_SOURCE:-0}" != 1 ] && [ -f "$subset" ]; then
	export LINUX_SOURCE_TARBALL=$subset
	echo "# DKMS build reads rxe from $subset (RXE_DEB_FULL_SOURCE=1: the full linux-source-6.1)"
fi

# 1: unload the module under test ------------------------------------------
check "rxe links deleted and rdma_rxe unloaded" rxe_down

# 2-5: install; DKMS builds and installs for the running kernel --------------
t0=$(date +%s)
# dpkg's output, then DKMS's make.log, are kept in RXE_OUT (the host sees
# them as they grow: the DKMS build takes minutes under TCG).
ilog=${RXE_OUT:-$WORK}/deb-install.log
mlog=${RXE_OUT:-$WORK}/dkms-make.log
(while sleep 20; do cp /var/lib/dkms/rxe-odp/*/build/make.log "$mlog" 2>/dev/null; done) &
copier=$!
# shellcheck disable=SC2086
if dpkg -i $files >"$ilog" 2>&1; then
	ok "dpkg -i rxe-odp-dkms librxeodp1 librxeodp-dev ($(( $(date +%s) - t0 ))s with the DKMS build)"
	grep -E 'Building|Done|Installing|depmod|Sign' "$ilog" | diag
else
	not_ok "dpkg -i rxe-odp-dkms librxeodp1 librxeodp-dev ($(( $(date +%s) - t0 ))s)"
	tail -n 40 "$ilog" | diag
	for log in /var/lib/dkms/rxe-odp/*/build/make.log; do
		[ -f "$log" ] && tail -n 30 "$log" | diag
	done
fi
kill "$copier" 2>/dev/null; wait "$copier" 2>/dev/null
for log in /var/lib/dkms/rxe-odp/*/build/make.log; do
	[ -f "$log" ] && cp "$log" "$mlog"
done
status=$(dkms status rxe-odp 2>&1)
echo "$status" | diag
if echo "$status" | grep -q "^rxe-odp/$version, $KVER, [^:]*: installed"; then
	ok "dkms status: rxe-odp/$version installed for $KVER"
else
	not_ok "dkms status: rxe-odp/$version installed for $KVER"
fi
check "DKMS's rdma_rxe.ko is in updates/dkms" test -f "$UPDATES"
check "modinfo rdma_rxe resolves to updates/dkms (preferred to the stock module)" \
	test "$(modinfo -F filename rdma_rxe 2>&1)" = "$UPDATES"

# 6-9: modprobe loads ours, rxe0 reports ODP, librxeodp works ----------------
if out=$(modprobe rdma_rxe 2>&1) && loaded_is "$UPDATES" >/dev/null && [ -r "$SYS/parameters/odp" ]; then
	ok "modprobe rdma_rxe loads DKMS's module (odp=$(cat "$SYS/parameters/odp"))"
else
	not_ok "modprobe rdma_rxe loads DKMS's module"
	{ echo "$out"; loaded_is "$UPDATES"; ls "$SYS/parameters" 2>&1; } | diag
fi
if rxe_up >/dev/null 2>&1 && out=$(odp_caps); then
	ok "$DEV over lo reports ODP caps (ibv_devinfo -v)"
else
	not_ok "$DEV over lo reports ODP caps (ibv_devinfo -v)"
	echo "${out:-rxe0 did not come up}" | diag
fi

cat >"$WORK/t.c" <<'EOF'
/* librxeodp through pkg-config: ibv_advise_mr() prefetches an ODP MR. */
#include <rxeodp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int main(int argc, char **argv)
{
	struct ibv_device **list = ibv_get_device_list(NULL);
	struct ibv_context *ctx = NULL;
	size_t len = 1 << 20;
	char *buf = malloc(len);
	int i, ret;

	for (i = 0; list && list[i]; i++)
		if (!strcmp(ibv_get_device_name(list[i]), argv[argc - 1]))
			ctx = ibv_open_device(list[i]);
	if (!ctx || !buf) {
		fprintf(stderr, "cannot open %s\n", argv[argc - 1]);
		return 1;
	}
	ret = rxeodp_enable_advise_mr(ctx);
	if (ret) {
		fprintf(stderr, "rxeodp_enable_advise_mr: %s\n", strerror(ret));
		return 1;
	}
	struct ibv_pd *pd = ibv_alloc_pd(ctx);
	struct ibv_mr *mr = pd ? ibv_reg_mr(pd, buf, len, IBV_ACCESS_ON_DEMAND |
					    IBV_ACCESS_LOCAL_WRITE) : NULL;
	if (!mr) {
		perror("ibv_reg_mr(IBV_ACCESS_ON_DEMAND)");
		return 1;
	}
	struct ibv_sge sge = { (uintptr_t)buf, (uint32_t)len, mr->lkey };
	ret = ibv_advise_mr(pd, IBV_ADVISE_MR_ADVICE_PREFETCH_WRITE,
			    IBV_ADVISE_MR_FLAG_FLUSH, &sge, 1);
	if (ret) {
		fprintf(stderr, "ibv_advise_mr: %s\n", strerror(ret));
		return 1;
	}
	printf("prefetched %zu bytes of an ODP MR\n", len);
	ibv_dereg_mr(mr);
	ibv_dealloc_pd(pd);
	ibv_close_device(ctx);
	ibv_free_device_list(list);
	free(buf);
	return 0;
}
EOF
# shellcheck disable=SC2046
if out=$(cc -o "$WORK/t" "$WORK/t.c" $(pkg-config --cflags --libs rxeodp) 2>&1 &&
	"$WORK/t" "$DEV" 2>&1); then
	ok "librxeodp-dev: built with pkg-config rxeodp; ibv_advise_mr prefetch on $DEV ($out)"
else
	not_ok "librxeodp-dev: built with pkg-config rxeodp; ibv_advise_mr prefetch on $DEV"
	echo "$out" | diag
fi
preload=$(dpkg -L librxeodp1 2>/dev/null | grep '/librxeodp-preload\.so$')
check "librxeodp1: LD_PRELOAD=$preload ibv_devinfo -d $DEV" \
	env LD_PRELOAD="$preload" ibv_devinfo -d "$DEV"

# 10-13: purge; the stock module comes back ----------------------------------
check "rxe links deleted and DKMS's rdma_rxe unloaded" rxe_down
check "dpkg --purge $PKGS" purge
if [ -z "$(dkms status rxe-odp 2>&1)" ] && [ ! -e "$UPDATES" ] &&
	! ls -d /usr/src/rxe-odp-* >/dev/null 2>&1; then
	ok "dkms status empty, updates/dkms/rdma_rxe.ko and /usr/src/rxe-odp-* gone"
else
	not_ok "dkms status empty, updates/dkms/rdma_rxe.ko and /usr/src/rxe-odp-* gone"
	{ dkms status rxe-odp; ls -l "$UPDATES" /usr/src; } 2>&1 | diag
fi
if out=$(modprobe rdma_rxe 2>&1) && loaded_is "$STOCK" >/dev/null && [ ! -e "$SYS/parameters/odp" ]; then
	ok "modprobe rdma_rxe loads the stock module again (no odp parameter)"
else
	not_ok "modprobe rdma_rxe loads the stock module again (no odp parameter)"
	{ echo "$out"; modinfo -F filename rdma_rxe; loaded_is "$STOCK"; ls "$SYS/parameters" 2>&1; } | diag
fi

# 14: back to the module under test -------------------------------------------
if out=$(restore 2>&1); then
	ok "module under test and $DEV restored"
	restored=1
else
	not_ok "module under test and $DEV restored"
	echo "$out" | diag
fi
echo "# deb-install: $(( $(date +%s) - t0 ))s from dpkg -i to the end"
[ "$bad" = 0 ]
