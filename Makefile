# rxe-odp: On-Demand Paging for Soft-RoCE (rxe) on Debian 12's 6.1 kernel.
#
#   make check   install deps, build rdma_rxe.ko, boot the test VM, run all tests
#   make check-debug  the same on a KASAN/lockdep/kmemleak kernel (slow)
#   make check-pair   the two-host matrix: perftest pinned and ODP under
#                each MTU and netem setting (~40 min; not part of check)
#   make demo    boot the VM and compare ib_write_bw with pinned and ODP MRs
#   make bench   benchmarks, pinned against ODP (~35-40 min under TCG; not
#                part of check): bench/results/
#
# KVER selects the Debian 6.1 kernel to build for and boot (default: the
# newest installed one).  Variables are expanded lazily so that they see
# the packages that the deps step has just installed.

KVER ?= $(shell scripts/kver.sh)
BUILD ?= $(CURDIR)/build
MODDIR = $(BUILD)/$(KVER)
MODULE = $(MODDIR)/rdma_rxe.ko

.PHONY: all deps module userspace tests check check-debug check-pair demo sparse checkpatch series-check clean

all: module userspace tests

deps:
	@sh scripts/deps.sh

module: deps
	@test -n "$(KVER)" || { echo "make: error: no Debian 6.1 kernel with headers installed" >&2; exit 1; }
	@scripts/build-rxe.sh $(KVER) $(MODDIR)

userspace: deps
	@$(MAKE) -s -C userspace BUILD=$(BUILD)

tests: deps userspace
	@$(MAKE) -s -C tests BUILD=$(BUILD)

check: module tests
	@tests/vm/check.sh --kver $(KVER) --module $(MODULE) --out $(BUILD)/check

# The whole suite on a debug kernel (KASAN, lockdep, kmemleak, fault
# injection) built from linux-source-6.1 and cached in /var/cache/rxe-odp:
# the first build takes 10 to 75 minutes here, so it is not part of check.
check-debug: deps tests
	@BUILD=$(BUILD) tests/vm/check-debug.sh --out $(BUILD)/check-debug

# The two-host matrix (tests/vm/pair-matrix.sh); make check runs a
# compact part of it.
check-pair: module tests
	@tests/vm/pair-matrix.sh --kver $(KVER) --module $(MODULE) --out $(BUILD)/check-pair

demo: module tests bench-build
	@tests/vm/demo.sh --kver $(KVER) --module $(MODULE) --out $(BUILD)/demo

# Static checks of our kernel code (sparse and checkpatch --strict), and
# of the series: applied one patch at a time, rxe builds after each.
sparse: deps
	@KBUILD_EXTRA="C=2" scripts/build-rxe.sh $(KVER) $(MODDIR)

checkpatch: deps series-check
	@scripts/checkpatch.sh

series-check: deps
	@scripts/series-check.sh $(KVER)

clean:
	rm -rf $(BUILD)

# Installing on a real host (README, "Installing on a real host"): the
# Debian packages (make deb -> $(BUILD)/deb: rxe-odp-dkms, librxeodp1,
# librxeodp-dev, checked with lintian), or DKMS directly (sudo make install;
# DESTDIR= only stages the files, PREFIX= is librxeodp's, default
# /usr/local).  make check installs the packages in the guest
# (tests/guest/98-deb-install.sh), so it builds them first.
.PHONY: install uninstall deb deb-test-source

deb: deps
	@scripts/mkdeb.sh $(BUILD)/deb

install:
	@BUILD="$(BUILD)" DESTDIR="$(DESTDIR)" PREFIX="$(PREFIX)" scripts/install.sh install

uninstall:
	@BUILD="$(BUILD)" DESTDIR="$(DESTDIR)" PREFIX="$(PREFIX)" scripts/install.sh uninstall

# The guest's DKMS build reads rxe from a small cut of linux-source-6.1
# (xz-decompressing all of it takes TCG many minutes).
check: deb deb-test-source

deb-test-source: deps
	@scripts/rxe-source-subset.sh $(BUILD)/deb/test

# Benchmarks: perftest and micro-benchmarks, pinned against ODP, in one VM
# boot; writes bench/results/ (results.md, bench.csv, raw.csv, *.png).
# Then UCX and Open MPI between two guests, rcache against ODP
# (bench/results/ucx-mpi.md, ucx-mpi.csv).
.PHONY: bench bench-build bench-ucx-mpi
bench-build: userspace
	@$(MAKE) -s -C bench BUILD=$(BUILD)

bench: module bench-build tests
	@bench/run.sh --kver $(KVER) --module $(MODULE) --out $(BUILD)/bench-run
	@bench/ucx-mpi.sh --kver $(KVER) --module $(MODULE) --out $(BUILD)/bench-ucx-mpi

bench-ucx-mpi: module tests
	@bench/ucx-mpi.sh --kver $(KVER) --module $(MODULE) --out $(BUILD)/bench-ucx-mpi
