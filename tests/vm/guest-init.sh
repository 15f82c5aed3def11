#!/bin/bash
# PID 1 of the test guest, started by run-vm.sh's initramfs after
# switch_root into the host's / (read-only 9p + tmpfs overlay).
#
# 1. mount the usual pseudo file systems and the writable results share
#    (9p tag "out") at the same path as on the host (rxeodp_out=);
# 2. bring up lo, a 1 GiB zram swap, hugetlbfs;
# 3. load rdma_rxe: ours with insmod (RXE_MODULE), or the stock one with
#    modprobe (RXE_STOCK=1), and record which one is loaded;
# 4. rdma link add rxe0 over lo, open /dev/infiniband to everybody;
# 5. run the job's CMD (cwd = repo top), tee its output to output.log and
#    the console, store its status in rc, save dmesg, power off.
#
# Every step is logged to setup.log in the results directory; the file
# guest-status says setup=ok once rxe0 is usable.  Not meant to be run by
# hand: see run-vm.sh.
set -eu
export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
export HOME=/root LANG=C.UTF-8 TERM=dumb
BUSYBOX=$(command -v busybox)

# The initramfs unmounted /proc and /sys and moved /dev here.  (Careful:
# below our mounts, the host's /proc, /sys and /dev show through 9p.)
mount -t proc proc /proc
OUT="" TOP="" MODROOT=""
# shellcheck disable=SC2013,SC2046  # word splitting is what we want here
for a in $(</proc/cmdline); do
	case "$a" in
	rxeodp_out=*) OUT=${a#rxeodp_out=} ;;
	rxeodp_top=*) TOP=${a#rxeodp_top=} ;;
	rxeodp_modroot=*) MODROOT=${a#rxeodp_modroot=} ;;
	esac
done
mount -t sysfs sysfs /sys
dev_mounted=0
while read -r _ mp _; do [ "$mp" != /dev ] || dev_mounted=1; done </proc/mounts
[ "$dev_mounted" = 1 ] || mount -t devtmpfs devtmpfs /dev
mkdir -p /dev/pts /dev/shm /dev/hugepages
# udev is not running: make the links bash's <(...) and friends need.
[ -e /dev/fd ] || ln -s /proc/self/fd /dev/fd
[ -e /dev/stdin ] || ln -s /proc/self/fd/0 /dev/stdin
[ -e /dev/stdout ] || ln -s /proc/self/fd/1 /dev/stdout
[ -e /dev/stderr ] || ln -s /proc/self/fd/2 /dev/stderr
mount -t devpts -o gid=5,mode=620,ptmxmode=666 devpts /dev/pts
mount -t tmpfs -o mode=1777 tmpfs /dev/shm
mount -t tmpfs -o mode=755 tmpfs /run
mkdir -p /run/lock

SETUP_LOG=/dev/null
# Builtins only: every exec is slow under TCG.
log() {
	local up _
	read -r up _ </proc/uptime
	echo "guest-init: [$up] $*" >>"$SETUP_LOG"
	echo "guest-init: [$up] $*" >/dev/console
}

# shellcheck disable=SC2317  # called through the EXIT trap
finish() {
	local rc=$?
	trap - EXIT
	set +e
	if [ -n "$OUT" ] && mountpoint -q "$OUT"; then
		if [ ! -f "$OUT/rc" ]; then
			echo 125 >"$OUT/rc"
			log "setup failed (status $rc)"
			# stderr went to setup.log only: show it on the console too
			cat "$SETUP_LOG" >/dev/console
		fi
		dmesg >"$OUT/dmesg.log" 2>&1
		sync
	fi
	echo "guest-init: powering off" >/dev/console
	"$BUSYBOX" poweroff -f
	echo o >/proc/sysrq-trigger
	sleep 60
}
trap finish EXIT

[ -n "$OUT" ] && [ -n "$TOP" ] || { echo "guest-init: rxeodp_out=/rxeodp_top= missing" >/dev/console; exit 1; }
mkdir -p "$OUT"
mount -t 9p -o trans=virtio,version=9p2000.L,msize=262144 out "$OUT"
SETUP_LOG=$OUT/setup.log
: >"$SETUP_LOG"
# Until the command runs, error messages go to setup.log (the host shows it
# when setup fails).
exec 3>&2 2>>"$SETUP_LOG"
# shellcheck disable=SC1091
. "$OUT/job.sh"

# A fresh tmpfs on /tmp, unless what we need lives in the host's /tmp (a
# clone under /tmp, say): then the overlay's /tmp, which shows the host's
# files and keeps writes in the guest's memory all the same.
case " $TOP/ $OUT/ $RXE_MODULE $RXE_ODP_BUILD/ " in
*" /tmp/"*) log "host paths under /tmp: keeping the host's /tmp (read-only below a tmpfs overlay)" ;;
*) mount -t tmpfs -o mode=1777 tmpfs /tmp ;;
esac
# A kernel built here (run-vm.sh --kernel/--modroot) has its modules in
# the host's MODROOT/lib/modules/KVER: put them where modprobe looks.
if [ -n "$MODROOT" ]; then
	krel=$(uname -r)
	[ "$krel" = "$RXE_KVER" ] || { log "booted kernel is $krel, not $RXE_KVER (--kver)"; exit 1; }
	mkdir -p "/lib/modules/$RXE_KVER"
	mount --bind "$MODROOT/lib/modules/$RXE_KVER" "/lib/modules/$RXE_KVER"
	log "modules of $RXE_KVER from $MODROOT"
fi
log "kernel $(uname -r), $(nproc) CPUs, NUMA nodes $(cat /sys/devices/system/node/online), $(sed -n 's/MemTotal: *//p' /proc/meminfo)"

hostname rxe-vm 2>/dev/null || true
ip link set lo up

# Swap on zram so that tests can push pages out (ODP must cope).
if modprobe zram num_devices=1 2>>"$SETUP_LOG"; then
	echo 1G >/sys/block/zram0/disksize
	mkswap /dev/zram0 >/dev/null
	swapon /dev/zram0
	log "zram swap: $(grep zram0 /proc/swaps | awk '{print $3}') KiB"
else
	log "zram unavailable, no swap"
fi
mount -t hugetlbfs hugetlbfs /dev/hugepages
log "huge pages: $(cat /proc/sys/vm/nr_hugepages)"

# RDMA core modules first (rdma_ucm for librdmacm, ib_umad for the
# diagnostics tools), then rdma_rxe's own dependencies.
modprobe -a ib_core ib_uverbs ib_umad rdma_cm rdma_ucm udp_tunnel ip6_udp_tunnel 2>&1 | tee -a "$SETUP_LOG"
if [ "$RXE_STOCK" = 1 ]; then
	modprobe rdma_rxe
	want=$(modinfo -F filename rdma_rxe)
	log "loaded the stock rdma_rxe ($want)"
else
	deps=$(modinfo -F depends "$RXE_MODULE")
	# shellcheck disable=SC2086  # one word per module
	[ -z "$deps" ] || modprobe -a ${deps//,/ }
	insmod "$RXE_MODULE"
	want=$RXE_MODULE
	log "insmod $RXE_MODULE"
fi

# Which module is loaded?  srcversion when the kernel exposes it (it
# does not for rxe on Debian: no MODULE_VERSION, no SRCVERSION_ALL),
# else the GNU build-id of the loaded image against the file's.
build_id_sys() {
	# raw ELF note: namesz(4) descsz(4) type(4) "GNU\0" then the id
	od -An -tx1 -v -j16 /sys/module/rdma_rxe/notes/.note.gnu.build-id 2>/dev/null | tr -d ' \n'
}
build_id_file() {
	readelf -n "$1" 2>/dev/null | sed -n 's/.*Build ID: *//p' | head -n 1
}
{
	echo "module_file=$want"
	echo "srcversion_loaded=$(cat /sys/module/rdma_rxe/srcversion 2>/dev/null || true)"
	echo "srcversion_file=$(modinfo -F srcversion "$want" 2>/dev/null || true)"
	echo "build_id_loaded=$(build_id_sys)"
	echo "build_id_file=$(build_id_file "$want")"
	echo "taint=$(cat /sys/module/rdma_rxe/taint 2>/dev/null || true)"
	if [ -r /sys/module/rdma_rxe/parameters/odp ]; then
		echo "odp_param=$(cat /sys/module/rdma_rxe/parameters/odp)"
	else
		echo "odp_param="
	fi
} >"$OUT/module-id"
sed 's/^/guest-init: /' "$OUT/module-id" | tee -a "$SETUP_LOG" >/dev/console
grep -q '^build_id_loaded=[0-9a-f]\{8,\}$' "$OUT/module-id" || { log "cannot read the loaded module's build id"; exit 1; }
[ "$(sed -n 's/^build_id_loaded=//p' "$OUT/module-id")" = "$(sed -n 's/^build_id_file=//p' "$OUT/module-id")" ] ||
	{ log "loaded rdma_rxe is not $want"; exit 1; }

# rxe over lo, or over the NIC of a link to the other guest of a pair
# (run-vm.sh --link): an address on that link only, no default route.
RXE_NETDEV=lo
if [ -n "${RXE_LINK_ADDR:-}" ]; then
	modprobe virtio_net
	for _ in $(seq 1 50); do
		RXE_NETDEV=$(ls /sys/class/net | grep -v '^lo$' | head -n 1)
		[ -n "$RXE_NETDEV" ] && break
		sleep 0.1
	done
	[ -n "$RXE_NETDEV" ] || { log "no NIC for the link"; exit 1; }
	ip link set dev "$RXE_NETDEV" mtu "$RXE_LINK_MTU" up
	ip addr add "$RXE_LINK_ADDR" dev "$RXE_NETDEV"
	if [ -n "${RXE_LINK_NETEM:-}" ]; then
		modprobe sch_netem
		# shellcheck disable=SC2086  # the netem words
		tc qdisc add dev "$RXE_NETDEV" root netem $RXE_LINK_NETEM
	fi
	log "link: $RXE_NETDEV $(ip -br addr show dev "$RXE_NETDEV"), mtu $RXE_LINK_MTU, netem '${RXE_LINK_NETEM:-}'"
fi
rdma link add rxe0 type rxe netdev "$RXE_NETDEV"
# The port turns ACTIVE once its netdev is up; give it a moment.
for _ in 1 2 3 4 5 6 7 8 9 10; do
	[ "$(cat /sys/class/infiniband/rxe0/ports/1/state 2>/dev/null)" = "4: ACTIVE" ] && break
	sleep 0.5
done
# RoCE v2 GID of the address: ::ffff:127.0.0.1 on lo, the link's on a NIC
if [ -n "${RXE_LINK_ADDR:-}" ]; then
	want=$(printf '0000:0000:0000:0000:0000:ffff:%02x%02x:%02x%02x' $(echo "${RXE_LINK_ADDR%/*}" | tr . ' '))
	for _ in $(seq 1 20); do
		for g in /sys/class/infiniband/rxe0/ports/1/gids/*; do
			[ "$(cat "$g" 2>/dev/null)" = "$want" ] && RXE_GID=${g##*/} && break 2
		done
		sleep 0.25
	done
	export RXE_GID RXE_NETDEV
fi
log "rxe0 over $RXE_NETDEV: $(cat /sys/class/infiniband/rxe0/ports/1/state), gid$RXE_GID $(cat /sys/class/infiniband/rxe0/ports/1/gids/"$RXE_GID")"
chmod 666 /dev/infiniband/*
echo "setup=ok" >"$OUT/guest-status"

# ---------------------------------------------------------------------------
ulimit -l unlimited
ulimit -c 0
cd "$TOP"
log "running: ${CMD[*]}"
exec 2>&3 3>&-
set +e
"${CMD[@]}" </dev/null 2>&1 | tee "$OUT/output.log"
rc=${PIPESTATUS[0]}
set -e
echo "$rc" >"$OUT/rc"
log "command exited with status $rc"
exit 0
