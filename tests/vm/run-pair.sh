#!/bin/bash
# Boot two test guests, A and B, joined by one Ethernet link, and run one
# command in both: rxe0 is created over each guest's NIC (not lo), so that
# RDMA traffic crosses a real (emulated) wire, with real MTUs, and with
# loss, duplication, reordering and delay when --netem asks for them.
#
# The link is one TCP connection on the host's 127.0.0.1 between the two
# guests' QEMU stream netdevs (A's listens, B's connects): nothing else is
# reachable from either guest (no other network device, no default
# route), and all the traffic stays on that link.  The link itself is
# lossless; what is lost, duplicated or reordered is what --netem says.
#
# Usage:
#   tests/vm/run-pair.sh --kver KVER --module PATH.ko --out DIR
#                        [--stock-a] [--stock-b] [--mtu MTU] [--netem SPEC]
#                        [--timeout SEC] [--env NAME=VALUE]... -- CMD [ARGS...]
#
#   --stock-a, --stock-b   that guest loads Debian's rdma_rxe instead of ours
#   --mtu MTU        the link's MTU (default 1500: RoCE MTU 1024; 9000: 4096)
#   --netem SPEC     tc netem on both NICs, e.g. "loss 1%"
#   --timeout SEC    per guest (default 1800)
#
# CMD runs in both guests (see run-vm.sh), with RXE_ROLE=A or B, RXE_SELF
# (its own address), RXE_PEER (the other's address) and RXE_GID (the GID
# index of its address).  Results: DIR/A and DIR/B, each as run-vm.sh
# leaves it (output.log, console.log, dmesg.log, status, ...).  Prints A's
# output as it arrives (B's with --both), then each guest's verdict.  Exit
# status: 0 only if both guests passed (run-vm.sh's verdicts, kernel logs
# included); else the first non-zero of A's and B's.
set -euo pipefail
TOP=$(cd "$(dirname "$0")/../.." && pwd)
KVER="" MODULE="" OUT="" MTU=1500 NETEM="" TIMEOUT=1800
STOCK_A=() STOCK_B=() ENVS=()
die() { echo "run-pair: error: $*" >&2; exit 64; }
while [ $# -gt 0 ]; do
	case "$1" in
	--kver) KVER=${2:?}; shift 2 ;;
	--module) MODULE=${2:?}; shift 2 ;;
	--out) OUT=${2:?}; shift 2 ;;
	--stock-a) STOCK_A=(--stock); shift ;;
	--stock-b) STOCK_B=(--stock); shift ;;
	--mtu) MTU=${2:?}; shift 2 ;;
	--netem) NETEM=${2?}; shift 2 ;;
	--timeout) TIMEOUT=${2:?}; shift 2 ;;
	--env) ENVS+=(--env "${2:?}"); shift 2 ;;
	--) shift; break ;;
	*) die "unknown argument: $1" ;;
	esac
done
[ $# -gt 0 ] && [ -n "$KVER" ] && [ -n "$MODULE" ] && [ -n "$OUT" ] ||
	die "usage: run-pair.sh --kver KVER --module PATH.ko --out DIR [options] -- CMD"
mkdir -p "$OUT/A" "$OUT/B"
OUT=$(cd "$OUT" && pwd)

# A TCP port on 127.0.0.1 that nothing uses.
free_port() {
	local p
	for _ in $(seq 1 100); do
		p=$((20000 + RANDOM % 40000))
		ss -Htan "sport = :$p or dport = :$p" 2>/dev/null | grep -q . || { echo "$p"; return; }
	done
	die "no free TCP port on 127.0.0.1"
}
PORT=$(free_port)
ADDR_A=169.254.77.1 ADDR_B=169.254.77.2

guest() {	# guest ROLE server|client SELF PEER MAC STOCK...
	local role=$1 side=$2 self=$3 peer=$4 mac=$5
	shift 5
	"$TOP/tests/vm/run-vm.sh" --kver "$KVER" --module "$MODULE" \
		--out "$OUT/$role" --timeout "$TIMEOUT" --quiet --brief "$@" \
		--link "$side:$PORT:$self/24" --mac "$mac" --link-mtu "$MTU" \
		--netem "$NETEM" --env "RXE_ROLE=$role" --env "RXE_SELF=$self" \
		--env "RXE_PEER=$peer" "${ENVS[@]+"${ENVS[@]}"}" -- "${CMD[@]}" \
		>"$OUT/$role/run-vm.log" 2>&1
}
CMD=("$@")
echo "run-pair: A $ADDR_A <-> B $ADDR_B over 127.0.0.1:$PORT, mtu $MTU, netem '${NETEM}'" >&2
rm -f "$OUT"/A/output.log "$OUT"/B/output.log
guest A server "$ADDR_A" "$ADDR_B" 52:54:00:77:00:01 "${STOCK_A[@]+"${STOCK_A[@]}"}" &
pa=$!
# B's QEMU connects once, at its start: wait (bounded) for A's to listen.
# A's build of the initramfs comes first, which can take a while.
for _ in $(seq 1 600); do
	ss -Hltn "sport = :$PORT" 2>/dev/null | grep -q . && break
	kill -0 "$pa" 2>/dev/null || break
	sleep 0.5
done
ss -Hltn "sport = :$PORT" 2>/dev/null | grep -q . ||
	echo "run-pair: A's link does not listen on 127.0.0.1:$PORT; B starts anyway (and fails)" >&2
guest B client "$ADDR_B" "$ADDR_A" 52:54:00:77:00:02 "${STOCK_B[@]+"${STOCK_B[@]}"}" &
pb=$!
touch "$OUT/A/output.log"
tail -n +1 -s 0.5 -F --pid="$pa" "$OUT/A/output.log" 2>/dev/null || true
ra=0 rb=0
wait "$pa" || ra=$?
wait "$pb" || rb=$?
for role in A B; do
	sed "s/^/run-pair: $role: /" "$OUT/$role/run-vm.log" >&2
done
[ "$ra" = 0 ] && exit "$rb"
exit "$ra"
