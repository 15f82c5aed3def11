#!/bin/bash
# Sanity of the test guest, as TAP: the rdma_rxe that is loaded is the one
# under test, rxe0 is up with the GIDs the other tests rely on, and the
# guest looks like what the ODP tests expect (2 NUMA nodes, swap, huge
# pages, /dev/infiniband open to uid 65534).  Runs INSIDE the test guest,
# as root, after tests/vm/guest-init.sh set things up.
#
# "Which module": the kernel exposes no srcversion for rdma_rxe on Debian
# (no MODULE_VERSION, CONFIG_MODULE_SRCVERSION_ALL unset), so unless it
# does, the GNU build-id of the loaded image
# (/sys/module/rdma_rxe/notes/.note.gnu.build-id) is compared with the
# build-id of the .ko file (RXE_MODULE, or the stock one with RXE_STOCK=1).
#
# Alone, in a guest:
#   tests/vm/run-vm.sh --kver KVER --module M.ko --out DIR -- tests/guest/00-module.sh
set -eu

DEV=${RXE_DEV:-rxe0}
GID=${RXE_GID:-1}
SYS=/sys/module/rdma_rxe
PORT=/sys/class/infiniband/$DEV/ports/1

n=0 bad=0
ok() { n=$((n + 1)); echo "ok $n $*"; }
not_ok() { n=$((n + 1)); bad=$((bad + 1)); echo "not ok $n $*"; }
skip() { n=$((n + 1)); echo "ok $n $1 # SKIP $2"; }
diag() { sed 's/^/# /'; }
check() {	# check NAME CMD...: ok if CMD succeeds; its output as diagnostics
	local name=$1 out
	shift
	if out=$("$@" 2>&1); then
		ok "$name"
	else
		not_ok "$name"
		[ -z "$out" ] || echo "$out" | diag
	fi
}

build_id_loaded() {
	# raw ELF note: namesz(4) descsz(4) type(4) "GNU\0", then the id
	od -An -tx1 -v -j16 "$SYS/notes/.note.gnu.build-id" 2>/dev/null | tr -d ' \n'
}
build_id_file() {
	readelf -n "$1" 2>/dev/null | sed -n 's/.*Build ID: *//p' | head -n 1
}

echo "TAP version 13"
echo "1..12"

# 1-3: the module -----------------------------------------------------------
check "rdma_rxe is loaded" test -d "$SYS"

if [ "${RXE_STOCK:-0}" = 1 ]; then
	file=$(modinfo -F filename rdma_rxe 2>/dev/null || true)
	what="the stock rdma_rxe"
else
	file=${RXE_MODULE:-}
	what="our rdma_rxe.ko"
fi
if [ -z "$file" ] || [ ! -f "$file" ]; then
	not_ok "loaded rdma_rxe is $what"
	echo "# module file '${file}' not found (RXE_MODULE unset?)"
else
	sv_loaded=$(cat "$SYS/srcversion" 2>/dev/null || true)
	sv_file=$(modinfo -F srcversion "$file" 2>/dev/null || true)
	if [ -n "$sv_loaded" ] && [ -n "$sv_file" ]; then
		how="srcversion" have=$sv_loaded want=$sv_file
	else
		how="build-id" have=$(build_id_loaded) want=$(build_id_file "$file")
	fi
	if [ -n "$want" ] && [ "$have" = "$want" ]; then
		ok "loaded rdma_rxe is $what ($how $have)"
	else
		not_ok "loaded rdma_rxe is $what"
		echo "# $how of the loaded module: '$have', of $file: '$want'"
	fi
fi

if [ "${RXE_STOCK:-0}" = 1 ]; then
	skip "rdma_rxe has the odp parameter" "stock module"
elif [ -r "$SYS/parameters/odp" ]; then
	ok "rdma_rxe has the odp parameter (odp=$(cat "$SYS/parameters/odp"))"
else
	skip "rdma_rxe has the odp parameter" "not in this build of the module yet"
fi

# 4-8: rxe0 -----------------------------------------------------------------
check "$DEV exists" test -d "/sys/class/infiniband/$DEV"

if out=$(ibv_devinfo -d "$DEV" 2>&1) && echo "$out" | grep -q 'state:[[:space:]]*PORT_ACTIVE'; then
	ok "$DEV port 1 is PORT_ACTIVE (ibv_devinfo)"
else
	not_ok "$DEV port 1 is PORT_ACTIVE (ibv_devinfo)"
	echo "$out" | diag
fi

gid=$(cat "$PORT/gids/$GID" 2>/dev/null || true)
gtype=$(cat "$PORT/gid_attrs/types/$GID" 2>/dev/null || true)
if [ "$gid" = "0000:0000:0000:0000:0000:ffff:7f00:0001" ] && [ "$gtype" = "RoCE v2" ]; then
	ok "$DEV GID index $GID is ::ffff:127.0.0.1 (RoCE v2)"
else
	not_ok "$DEV GID index $GID is ::ffff:127.0.0.1 (RoCE v2)"
	echo "# gid '$gid', type '$gtype'"
fi

# Unprivileged tests run as uid 65534 (nobody).
check "$DEV is usable by uid 65534" \
	setpriv --reuid=65534 --regid=65534 --clear-groups ibv_devinfo -d "$DEV"

# Only meaningful once the module offers ODP (odp parameter set).
odp=$(cat "$SYS/parameters/odp" 2>/dev/null || true)
case "${RXE_STOCK:-0}:$odp" in
0:1|0:Y|0:y)
	if out=$(ibv_devinfo -v -d "$DEV" 2>&1) &&
		echo "$out" | sed -n '/rc_odp_caps/,/uc_odp_caps/p' | grep -q 'SUPPORT_'; then
		ok "$DEV advertises ODP for RC"
	else
		not_ok "$DEV advertises ODP for RC"
		echo "$out" | grep -i -A8 odp | diag
	fi ;;
*) skip "$DEV advertises ODP for RC" "module has ODP off or no odp parameter" ;;
esac

# 9-12: the machine ----------------------------------------------------------
nodes=$(ls -d /sys/devices/system/node/node[0-9]* 2>/dev/null | wc -l)
mem1=$(sed -n 's/.*MemTotal: *\([0-9]*\) kB/\1/p' /sys/devices/system/node/node1/meminfo 2>/dev/null || echo 0)
if [ "$nodes" -ge 2 ] && [ "${mem1:-0}" -gt 0 ]; then
	ok "2 NUMA nodes with memory (move_pages can migrate)"
else
	not_ok "2 NUMA nodes with memory (move_pages can migrate)"
	echo "# $nodes nodes, node1 MemTotal ${mem1:-?} kB"
fi

check "swap on zram is active" grep -q '^/dev/zram0 ' /proc/swaps
hp=$(cat /proc/sys/vm/nr_hugepages)
if [ "$hp" -gt 0 ] && mountpoint -q /dev/hugepages; then
	ok "huge pages reserved ($hp) and hugetlbfs on /dev/hugepages"
else
	not_ok "huge pages reserved and hugetlbfs on /dev/hugepages"
	echo "# nr_hugepages=$hp"
fi
check "memlock is unlimited for root tests" test "$(ulimit -l)" = unlimited

[ "$bad" = 0 ]
