#!/bin/bash
# Boot a throw-away QEMU guest running the Debian packaged kernel, load
# rdma_rxe (ours, or the stock one with --stock), create rxe0 over the
# guest's loopback (or its one NIC, see --link) and run one command in it.
# Nothing is ever loaded into the host kernel; RDMA traffic stays on the
# guest's `lo`, or on the link between the two guests of a pair.
#
# Usage:
#   tests/vm/run-vm.sh --kver KVER --module PATH.ko --out DIR
#                      [--timeout SEC] [--mem MiB] [--hugepages N]
#                      [--stock] [--env NAME=VALUE]... [--quiet] [--brief]
#                      [--kernel IMAGE --modroot DIR] [--append ARGS]
#                      -- CMD [ARGS...]
#
#   --kver KVER      kernel to boot: /boot/vmlinuz-KVER, /lib/modules/KVER
#   --module PATH    our rdma_rxe.ko (insmod'ed in the guest)
#   --out DIR        results directory, shared writable with the guest
#   --timeout SEC    kill the guest after SEC seconds (default 1800)
#   --mem MiB        guest memory, split over 2 NUMA nodes (default 2048)
#   --hugepages N    2 MiB huge pages reserved at boot (default 64)
#   --stock          load the distribution's rdma_rxe instead (baselines)
#   --env NAME=VAL   export NAME=VAL to CMD in the guest (repeatable);
#                    TESTS, TEST_TIMEOUT, T_TIMEOUT_MS, RDMA_CORE_*, RXE_*,
#                    ODP_TEST_*, PERFTEST_* and PAIR_* host variables are
#                    forwarded automatically
#   --quiet          do not copy the guest's output to stdout
#   --brief          on failure, do not print the console tail and the
#                    kernel log lines (the caller reports them itself)
#   --kernel IMAGE   boot IMAGE instead of /boot/vmlinuz-KVER (a kernel
#                    built here, e.g. scripts/build-debug-kernel.sh's);
#                    KVER must then be its release (uname -r)
#   --modroot DIR    its modules are in DIR/lib/modules/KVER (make
#                    modules_install INSTALL_MOD_PATH=DIR), not in the
#                    host's /lib/modules/KVER; the guest bind-mounts them
#                    there.  Modules of the initramfs list that such a
#                    kernel has neither built in nor built are skipped.
#   --append ARGS    more kernel command line arguments
#   --link server|client:PORT:ADDR/LEN
#                    give the guest one virtio-net NIC (eth0) instead of
#                    running rxe over lo: a QEMU stream netdev, a TCP
#                    connection on the host's 127.0.0.1:PORT to the other
#                    guest of tests/vm/run-pair.sh (the server listens, the
#                    client connects), address ADDR/LEN on it, no route
#                    beyond that link; rxe0 is created over eth0
#   --mac MAC        the NIC's MAC address (with --link)
#   --link-mtu MTU   the NIC's MTU (with --link; default 1500)
#   --netem SPEC     tc netem on the NIC, e.g. "loss 1%" (with --link)
#
# Host environment: RXE_VM_ACCEL=kvm|tcg|auto (default auto: KVM if a
# probe guest really runs under it, else TCG; the probe result is cached
# in BUILD/vm/kvm-probe per host boot), RXE_ODP_BUILD (default: derived
# from --module, BUILD/KVER/rdma_rxe.ko, else TOP/build), RXE_VM_MONITOR=
# PATH (a QEMU monitor on the unix socket PATH, for post-mortems of a
# stuck guest: "sendkey alt-sysrq-t" lists its tasks on the console).
#
# CMD runs in the guest as root with cwd = repo top (the host's / is the
# guest's read-only root, under a tmpfs overlay, so every host path works),
# stdin from /dev/null, and with these variables:
#   RXE_ODP_TOP    repo top            RXE_ODP_BUILD  build dir (BUILD)
#   RXE_DEV=rxe0   RXE_GID=1 (::ffff:127.0.0.1, RoCE v2)
#   RXE_MODULE     the .ko given       RXE_STOCK      1 with --stock, else 0
#   RXE_OUT        DIR (writable, survives the guest)
#   RXE_KVER       KVER
# /tmp, /run, /dev/shm are fresh tmpfs (but /tmp stays the host's, made
# writable by the overlay, when the repo, module or DIR lives under it).
# The guest has 2 CPUs on 2 NUMA nodes (so move_pages really migrates),
# a 1 GiB zram swap, N huge pages and hugetlbfs on /dev/hugepages, and
# /dev/infiniband/* mode 666 for tests that drop to uid 65534.
#
# Results in DIR:
#   output.log   CMD's stdout+stderr (also streamed to our stdout live)
#   console.log  the guest's serial console (kernel log + CMD output)
#   dmesg.log    the guest kernel log, saved just before power-off
#   rc           CMD's exit status        setup.log  guest setup steps
#   status       host summary: rc=, timed_out=, log_issues=, seconds=
#   log-issues.txt  kernel log lines that look like WARNING/BUG/Oops/...
#
# Exit status: 0 CMD passed and the kernel log is clean; 1 CMD failed;
# 2 kernel log has WARNING/BUG/... lines; 3 guest timed out or died;
# 4 guest setup failed (module/rxe0); 64 usage or host-side error.
#
# Example (one test script, our module):
#   tests/vm/run-vm.sh --kver "$(scripts/kver.sh)" \
#       --module build/$(scripts/kver.sh)/rdma_rxe.ko --out build/vm-run \
#       -- tests/guest/90-rdma-core.sh
set -euo pipefail

TOP=$(cd "$(dirname "$0")/../.." && pwd)
SELF="$TOP/tests/vm/run-vm.sh"

die() { echo "run-vm: error: $*" >&2; exit 64; }
msg() { echo "run-vm: $*" >&2; }

usage() { sed -n '2,/^set -euo/p' "$SELF" | sed '$d; s/^# \{0,1\}//' >&2; exit 64; }

KVER="" MODULE="" OUT="" TIMEOUT=1800 MEM=2048 HUGEPAGES=64 STOCK=0 QUIET=0 BRIEF=0
KERNEL="" MODROOT="" APPEND="" LINK="" MAC=52:54:00:00:00:01 LINK_MTU=1500 NETEM=""
EXTRA_ENV=()
while [ $# -gt 0 ]; do
	case "$1" in
	--kver) KVER=${2:?}; shift 2 ;;
	--module) MODULE=${2:?}; shift 2 ;;
	--out) OUT=${2:?}; shift 2 ;;
	--timeout) TIMEOUT=${2:?}; shift 2 ;;
	--mem) MEM=${2:?}; shift 2 ;;
	--hugepages) HUGEPAGES=${2:?}; shift 2 ;;
	--stock) STOCK=1; shift ;;
	--env) EXTRA_ENV+=("${2:?}"); shift 2 ;;
	--quiet) QUIET=1; shift ;;
	--brief) BRIEF=1; shift ;;
	--kernel) KERNEL=${2:?}; shift 2 ;;
	--modroot) MODROOT=${2:?}; shift 2 ;;
	--append) APPEND=${2?}; shift 2 ;;
	--link) LINK=${2:?}; shift 2 ;;
	--mac) MAC=${2:?}; shift 2 ;;
	--link-mtu) LINK_MTU=${2:?}; shift 2 ;;
	--netem) NETEM=${2?}; shift 2 ;;
	-h|--help) usage ;;
	--) shift; break ;;
	*) echo "run-vm: unknown argument: $1" >&2; usage ;;
	esac
done
[ $# -gt 0 ] || { echo "run-vm: no command given (missing -- CMD)" >&2; usage; }
[ -n "$KVER" ] && [ -n "$OUT" ] || usage
[ "$STOCK" = 1 ] || [ -n "$MODULE" ] || usage
case "$TIMEOUT$MEM$HUGEPAGES" in *[!0-9]*) die "--timeout/--mem/--hugepages take numbers" ;; esac
[ $((MEM % 4)) -eq 0 ] && [ "$MEM" -ge 512 ] || die "--mem must be >= 512 and a multiple of 4"

# The only network device a guest may have: a link to the other guest of a
# pair over one TCP connection on the host's loopback.  A stream, not
# datagrams: the link itself never drops a frame (a burst larger than a
# UDP socket's buffer would be dropped on the host, which no test asked
# for), and a receiver that falls behind holds the sender back, as a
# lossless (PFC) Ethernet does; loss, duplication, reordering and delay
# come only from --netem.
NET_OPTS=()
LINK_ADDR=""
if [ -n "$LINK" ]; then
	IFS=: read -r side lport LINK_ADDR <<<"$LINK"
	case "$side" in server) srv=on ;; client) srv=off ;; *) die "--link server|client:PORT:ADDR/LEN, not '$LINK'" ;; esac
	case "$lport" in ''|*[!0-9]*) die "--link server|client:PORT:ADDR/LEN: the port is a number" ;; esac
	case "$LINK_ADDR" in */[0-9]*) ;; *) die "--link: ADDR/LEN expected, not '$LINK_ADDR'" ;; esac
	case "$LINK_MTU" in ''|*[!0-9]*) die "--link-mtu takes a number" ;; esac
	NET_OPTS=(-netdev "stream,id=link0,server=$srv,addr.type=inet,addr.host=127.0.0.1,addr.port=$lport,addr.ipv4=on,addr.ipv6=off"
		-device "virtio-net-pci,netdev=link0,mac=$MAC")
fi

if [ -n "$KERNEL" ]; then
	[ -n "$MODROOT" ] || die "--kernel needs --modroot (where its modules are)"
	[ -r "$KERNEL" ] || die "$KERNEL missing or unreadable"
	KERNEL=$(cd "$(dirname "$KERNEL")" && pwd)/$(basename "$KERNEL")
else
	KERNEL=/boot/vmlinuz-$KVER
	[ -r "$KERNEL" ] || die "$KERNEL missing or unreadable (apt install linux-image-$KVER)"
fi
if [ -n "$MODROOT" ]; then
	MODROOT=$(cd "$MODROOT" 2>/dev/null && pwd) || die "--modroot: no such directory"
	MODDIR=$MODROOT/lib/modules/$KVER
	MODINFO=(modinfo -b "$MODROOT" -k "$KVER")
else
	MODDIR=/lib/modules/$KVER
	MODINFO=(modinfo -k "$KVER")
fi
[ -d "$MODDIR" ] || die "$MODDIR missing"
if [ -n "$MODULE" ]; then
	[ -f "$MODULE" ] || die "module $MODULE not found (run make module)"
	MODULE=$(cd "$(dirname "$MODULE")" && pwd)/$(basename "$MODULE")
fi
mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd)
# Paths travel on the kernel command line and through 9p: keep them simple.
case "$TOP$OUT$MODULE$MODROOT" in *[!A-Za-z0-9_./+-]*) die "paths must not contain spaces or special characters: $TOP $OUT $MODULE $MODROOT" ;; esac

# BUILD is where the Makefile puts everything; the module lives in
# BUILD/KVER/rdma_rxe.ko, so derive it from there unless told otherwise.
if [ -z "${RXE_ODP_BUILD:-}" ]; then
	if [ -n "$MODULE" ] && [ "$(basename "$(dirname "$MODULE")")" = "$KVER" ]; then
		RXE_ODP_BUILD=$(dirname "$(dirname "$MODULE")")
	else
		RXE_ODP_BUILD=$TOP/build
	fi
fi
VMDIR=$RXE_ODP_BUILD/vm
mkdir -p "$VMDIR"

command -v qemu-system-x86_64 >/dev/null || die "qemu-system-x86_64 missing (apt install qemu-system-x86)"
BUSYBOX=$(command -v busybox || true)
[ -n "$BUSYBOX" ] && file -L "$BUSYBOX" 2>/dev/null | grep -q 'statically linked' ||
	BUSYBOX=/bin/busybox
[ -x "$BUSYBOX" ] || die "busybox missing (apt install busybox-static)"

# One run per results directory at a time: a second one would clobber it.
exec 9>"$OUT/.lock"
flock -n 9 || die "another run-vm.sh is using $OUT"

# ---------------------------------------------------------------------------
# initramfs: busybox + the virtio/9p/overlay modules needed to mount the
# host's / as our root.  Cached by KVER and the content of this script
# (the /init below lives here).
# ---------------------------------------------------------------------------
INITRD_MODS="virtio_ring virtio virtio_pci_legacy_dev virtio_pci_modern_dev virtio_pci netfs fscache 9pnet 9pnet_virtio 9p overlay"

build_initramfs() {
	local dst=$1 tmp m f
	tmp=$(mktemp -d "$VMDIR/initramfs.XXXXXX")
	mkdir -p "$tmp"/{bin,dev,proc,sys,lower,upper,newroot,mods}
	cp "$BUSYBOX" "$tmp/bin/busybox"
	# The kernel opens /dev/console before /init runs (needs root here;
	# /init redirects to devtmpfs's console anyway).
	mknod -m 600 "$tmp/dev/console" c 5 1 2>/dev/null || true
	for m in $INITRD_MODS; do
		# modinfo knows where the module is; "(builtin)" needs no file.
		if ! f=$("${MODINFO[@]}" -F filename "$m" 2>/dev/null); then
			# a kernel of our own may simply not have it (fscache, say)
			[ -n "$MODROOT" ] && continue
			rm -rf "$tmp"; die "module $m not found for $KVER"
		fi
		case "$f" in
		"(builtin)"|"") continue ;;
		# busybox insmod cannot read compressed modules: unpack them here.
		*.ko.xz) xz -dc "$f" >"$tmp/mods/$m.ko" ;;
		*.ko.zst) zstd -qdc "$f" >"$tmp/mods/$m.ko" ;;
		*.ko.gz) gzip -dc "$f" >"$tmp/mods/$m.ko" ;;
		*) cp "$f" "$tmp/mods/$m.ko" ;;
		esac
	done
	echo "$INITRD_MODS" >"$tmp/mods/order"
	cat >"$tmp/init" <<'EOF'
#!/bin/busybox sh
# Stage 1: mount the host's / (9p, read-only) under a tmpfs overlay and
# switch_root into it, then run tests/vm/guest-init.sh from there.
/bin/busybox --install -s /bin
export PATH=/bin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
exec </dev/console >/dev/console 2>&1
fail() { echo "initramfs: error: $*"; sleep 1; poweroff -f; }
# KVM probe from run-vm.sh: the kernel ran our init, that is all we need.
grep -q rxeodp_probe /proc/cmdline && { echo rxeodp-kvm-ok; poweroff -f; }
for m in $(cat /mods/order); do
	[ -f /mods/$m.ko ] || continue
	insmod /mods/$m.ko || fail "insmod $m"
done
top=""
for a in $(cat /proc/cmdline); do
	case "$a" in rxeodp_top=*) top=${a#rxeodp_top=} ;; esac
done
[ -n "$top" ] || fail "no rxeodp_top= on the kernel command line"
# cache=loose: the lower layer is read-only for us and nobody should
# change it during a run; page-caching it makes python imports fast.
mount -t 9p -o trans=virtio,version=9p2000.L,msize=262144,cache=loose,ro hostroot /lower ||
	fail "mount hostroot"
mount -t tmpfs -o mode=0755 tmpfs /upper
mkdir -p /upper/u /upper/w
mount -t overlay -o lowerdir=/lower,upperdir=/upper/u,workdir=/upper/w overlay /newroot ||
	fail "mount overlay"
[ -x "/newroot$top/tests/vm/guest-init.sh" ] || fail "$top/tests/vm/guest-init.sh not found in the host root"
umount /proc /sys 2>/dev/null
mount --move /dev /newroot/dev 2>/dev/null || umount /dev
exec switch_root /newroot "$top/tests/vm/guest-init.sh"
EOF
	chmod 755 "$tmp/init"
	(cd "$tmp" && find . -mindepth 1 | LC_ALL=C sort | cpio -o -H newc --quiet -R 0:0) |
		gzip -1 >"$tmp.cpio.gz"
	rm -rf "$tmp"
	mv -f "$tmp.cpio.gz" "$dst"   # atomic: concurrent runs may share the cache
}

key=$( { echo "$KVER"; cat "$SELF"; ls -lL "$BUSYBOX"; [ -z "$MODROOT" ] || ls -lL "$MODDIR/modules.dep" "$KERNEL"; } |
	sha256sum | cut -c1-16)
INITRD=$VMDIR/initramfs-$KVER-$key.cpio.gz
if [ ! -s "$INITRD" ]; then
	msg "building $INITRD"
	build_initramfs "$INITRD"
	# Drop stale images of older versions of this script.
	find "$VMDIR" -maxdepth 1 -name "initramfs-$KVER-*.cpio.gz" ! -name "$(basename "$INITRD")" \
		-mmin +30 -delete 2>/dev/null || true
fi

# ---------------------------------------------------------------------------
# Accelerator: KVM when /dev/kvm really runs a guest, else TCG.  Opening
# /dev/kvm may succeed where running a vCPU does not, so the probe boots
# the initramfs with rxeodp_probe and waits for its marker.  The answer
# is cached per host boot.
# ---------------------------------------------------------------------------
probe_kvm() {
	local cache=$VMDIR/kvm-probe boot_id log
	boot_id=$(cat /proc/sys/kernel/random/boot_id 2>/dev/null || echo none)
	if [ -f "$cache" ] && [ "$(sed -n 1p "$cache")" = "$boot_id" ]; then
		sed -n 2p "$cache"; return
	fi
	local res=tcg pid i
	if [ -r /dev/kvm ] && [ -w /dev/kvm ]; then
		msg "probing /dev/kvm (once per host boot)"
		log=$(mktemp)
		qemu-system-x86_64 -nodefaults -no-user-config -display none \
			-no-reboot -accel kvm -cpu host -m 256 -kernel "$KERNEL" \
			-append "console=ttyS0 panic=-1 rxeodp_probe" \
			-initrd "$INITRD" -serial "file:$log" >/dev/null 2>&1 &
		pid=$!
		# A working KVM prints within a second; a wedged one prints
		# nothing at all (seen here: the ioctls succeed, the vCPU never
		# runs).  Give up after 6 s of silence or 30 s in total.
		for i in $(seq 1 60); do
			grep -q 'rxeodp-kvm-ok' "$log" 2>/dev/null && { res=kvm; break; }
			kill -0 "$pid" 2>/dev/null || break
			[ "$i" -ge 12 ] && [ ! -s "$log" ] && break
			sleep 0.5
		done
		kill -9 "$pid" 2>/dev/null || true
		wait "$pid" 2>/dev/null || true
		rm -f "$log"
	fi
	printf '%s\n%s\n' "$boot_id" "$res" >"$cache"
	echo "$res"
}
case "${RXE_VM_ACCEL:-auto}" in
auto) ACCEL=$(probe_kvm) ;;
kvm|tcg) ACCEL=$RXE_VM_ACCEL ;;
*) die "RXE_VM_ACCEL must be auto, kvm or tcg" ;;
esac
KARGS_ACCEL=""
if [ "$ACCEL" = kvm ]; then
	ACCEL_OPTS=(-accel kvm -cpu host)
else
	# -cpu max: all the features TCG can emulate; multi-threaded TCG uses
	# one host thread per vCPU.
	# shellcheck disable=SC2054  # the commas belong to qemu options
	ACCEL_OPTS=(-accel tcg,thread=multi -cpu max)
	# The guest's clocks follow the host's, but an emulated vCPU is a host
	# thread that the host may not run for many seconds when its cores
	# are busy (another guest, a build): 6.1's default soft lockup (20 s)
	# and RCU stall (21 s) limits then fire in whatever the vCPU was
	# doing, e.g. clearing a huge page (seen in make check).  Under TCG
	# they are raised to 120 s and 300 s: a real lockup still shows up,
	# a host that did not schedule the vCPU does not.
	KARGS_ACCEL="watchdog_thresh=60 rcupdate.rcu_cpu_stall_timeout=300"
fi

# ---------------------------------------------------------------------------
# The job: variables and command for guest-init.sh, as a bash fragment.
# ---------------------------------------------------------------------------
rm -f "$OUT"/{rc,output.log,console.log,dmesg.log,setup.log,status,log-issues.txt,qemu.log,guest-status}
: >"$OUT/output.log"
{
	echo "# generated by run-vm.sh on $(date -u +%FT%TZ)"
	# Forward the host's test selection variables first so that the fixed
	# ones below win.
	while IFS='=' read -r name _; do
		case "$name" in
		TESTS|TEST_TIMEOUT|T_TIMEOUT_MS|RDMA_CORE_*|RXE_*|ODP_TEST_*|PERFTEST_*|PAIR_*)
			printf 'export %s=%q\n' "$name" "${!name}" ;;
		esac
	done < <(env | grep -E '^(TESTS|TEST_TIMEOUT|T_TIMEOUT_MS|(RDMA_CORE|RXE|ODP_TEST|PERFTEST|PAIR)_[A-Za-z0-9_]*)=' || true)
	for kv in "${EXTRA_ENV[@]+"${EXTRA_ENV[@]}"}"; do
		case "$kv" in
		[A-Za-z_]*=*) printf 'export %s=%q\n' "${kv%%=*}" "${kv#*=}" ;;
		*) die "--env takes NAME=VALUE, not $kv" ;;
		esac
	done
	printf 'export %s=%q\n' RXE_ODP_TOP "$TOP" RXE_ODP_BUILD "$RXE_ODP_BUILD" \
		RXE_MODULE "$MODULE" RXE_STOCK "$STOCK" RXE_OUT "$OUT" \
		RXE_DEV rxe0 RXE_GID 1 RXE_KVER "$KVER" \
		RXE_LINK_ADDR "$LINK_ADDR" RXE_LINK_MTU "$LINK_MTU" \
		RXE_LINK_NETEM "$NETEM"
	printf 'CMD=('; printf '%q ' "$@"; printf ')\n'
} >"$OUT/job.sh"

# ---------------------------------------------------------------------------
# Boot.
# ---------------------------------------------------------------------------
half=$((MEM / 2))
# shellcheck disable=SC2054  # the commas belong to qemu options
QEMU=(qemu-system-x86_64 -nodefaults -no-user-config -display none -no-reboot
	"${ACCEL_OPTS[@]}" -machine pc
	# sockets=2,cores=1: other topologies make 6.1 warn at boot.
	-smp 2,sockets=2,cores=1,threads=1 -m "$MEM"
	-object "memory-backend-ram,id=mem0,size=${half}M"
	-object "memory-backend-ram,id=mem1,size=${half}M"
	-numa node,nodeid=0,cpus=0,memdev=mem0
	-numa node,nodeid=1,cpus=1,memdev=mem1
	-kernel "$KERNEL" -initrd "$INITRD"
	-append "console=ttyS0 panic=-1 hugepages=$HUGEPAGES rxeodp_top=$TOP rxeodp_out=$OUT${MODROOT:+ rxeodp_modroot=$MODROOT}${KARGS_ACCEL:+ $KARGS_ACCEL}${APPEND:+ $APPEND}"
	-serial "file:$OUT/console.log"
	-virtfs local,path=/,mount_tag=hostroot,security_model=none,readonly=on,multidevs=remap
	-virtfs "local,path=$OUT,mount_tag=out,security_model=none,multidevs=remap"
	"${NET_OPTS[@]+"${NET_OPTS[@]}"}"
)
# A QEMU monitor for post-mortems of a stuck guest (sysrq by sendkey).
if [ -n "${RXE_VM_MONITOR:-}" ]; then
	QEMU+=(-monitor "unix:$RXE_VM_MONITOR,server,nowait")
fi
msg "booting $KVER ($ACCEL, ${MEM} MiB, timeout ${TIMEOUT}s, $( [ "$STOCK" = 1 ] && echo 'stock rdma_rxe' || echo "$MODULE"))"
msg "command: $*"
start=$(date +%s)
timeout -k 10 "$TIMEOUT" "${QEMU[@]}" >"$OUT/qemu.log" 2>&1 &
qpid=$!

# Copy the guest's output to our stdout as it arrives (tail stops once
# QEMU is gone, after a last read).
if [ "$QUIET" = 0 ]; then
	tail -n +1 -s 0.5 -F --pid="$qpid" "$OUT/output.log" 2>/dev/null || true
fi
qrc=0
wait "$qpid" || qrc=$?
secs=$(( $(date +%s) - start ))

# ---------------------------------------------------------------------------
# Verdict.
# ---------------------------------------------------------------------------
timed_out=0
[ "$qrc" -eq 124 ] || [ "$qrc" -eq 137 ] && timed_out=1
rc=""
[ -f "$OUT/rc" ] && rc=$(tr -dc '0-9' <"$OUT/rc")

# Kernel trouble.  dmesg.log is the kernel log only; in console.log the
# kernel's lines carry a "[ seconds]" stamp, everything else there is the
# command's own output (which may legitimately say "WARNING:").
KPAT='WARNING:|BUG:|Oops|general protection|Call Trace|KASAN|UBSAN|kernel BUG|Kernel panic|possible circular locking|possible recursive locking|inconsistent lock state|suspicious RCU usage|INFO: task .* blocked|INFO: rcu|rcu_.* self-detected stall|soft lockup|hard LOCKUP|refcount_t:|list_(add|del) corruption|unreferenced object|BUG kmalloc|Bad page'
{
	[ -f "$OUT/dmesg.log" ] && grep -aE "$KPAT" "$OUT/dmesg.log" | sed 's/^/dmesg: /'
	[ -f "$OUT/console.log" ] && grep -aE '^\[ *[0-9]+\.[0-9]+\] ' "$OUT/console.log" |
		grep -aE "$KPAT" | sed 's/^/console: /'
} >"$OUT/log-issues.txt" || true
issues=$(grep -c . "$OUT/log-issues.txt" || true)

setup_ok=0
grep -q '^setup=ok' "$OUT/guest-status" 2>/dev/null && setup_ok=1
{
	echo "rc=$rc"
	echo "timed_out=$timed_out"
	echo "qemu_rc=$qrc"
	echo "setup_ok=$setup_ok"
	echo "log_issues=$issues"
	echo "seconds=$secs"
	echo "accel=$ACCEL"
} >"$OUT/status"

ret=0
if [ "$timed_out" = 1 ] || [ -z "$rc" ]; then
	if [ "$timed_out" = 1 ]; then
		msg "FAIL: guest did not finish within ${TIMEOUT}s and was killed"
	else
		msg "FAIL: guest died without reporting a result (qemu exit $qrc)"
	fi
	if [ "$BRIEF" = 0 ]; then
		msg "last 50 lines of $OUT/console.log:"
		tail -n 50 "$OUT/console.log" 2>/dev/null | sed 's/^/run-vm: | /' >&2 || true
	fi
	ret=3
elif [ "$setup_ok" = 0 ]; then
	msg "FAIL: guest setup failed (see $OUT/setup.log)"
	[ "$BRIEF" = 1 ] || tail -n 20 "$OUT/setup.log" 2>/dev/null | sed 's/^/run-vm: | /' >&2 || true
	ret=4
elif [ "$rc" != 0 ]; then
	msg "FAIL: command exited with status $rc"
	ret=1
fi
if [ "$issues" -gt 0 ]; then
	msg "FAIL: $issues suspicious kernel log line(s) (see $OUT/log-issues.txt)"
	[ "$BRIEF" = 1 ] || head -n 40 "$OUT/log-issues.txt" | sed 's/^/run-vm: | /' >&2
	[ "$ret" = 0 ] && ret=2
fi
msg "guest ran ${secs}s; exit $ret; logs: $OUT/{output,console,dmesg,setup}.log"
exit "$ret"
