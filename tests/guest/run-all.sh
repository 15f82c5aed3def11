#!/bin/bash
# Run every guest test script, tests/guest/[0-9][0-9]-*.sh, in sort order
# and merge their TAP output into ONE flat TAP stream.  Runs INSIDE the
# test guest (make check boots it with tests/vm/check.sh).
#
# Each script prints TAP (kselftest style: "TAP version 13", "1..N",
# "ok N name", "not ok N name", "ok N name # SKIP why", "# diagnostics").
# Here every result is renumbered and prefixed with the script's short
# name (NN-short-name.sh -> "short-name"), e.g.
#   ok 12 rdma-core: tests.test_odp.OdpTestCase.test_odp_rc_traffic
# Any other output of a script becomes a "# short-name: ..." diagnostic.
# A script fails (one extra "not ok" line) when it times out, exits
# non-zero without reporting a failed test, prints fewer results than it
# planned, or prints no result at all.  "not ok ... # TODO" lines (known
# failures, e.g. on stock 6.1 rxe) are counted as skipped.
#
# The stream ends with the plan, then, alone on the last line:
#   N passed, N failed, N skipped
# Exit status: 0 when nothing failed, 1 otherwise.
#
# Environment:
#   TESTS         space/comma separated globs; run only the scripts whose
#                 short name, file name or number matches one of them,
#                 e.g. TESTS="module rdma-core" or TESTS="2*,30"
#   TEST_TIMEOUT  seconds per script (default 900); a script that needs
#                 more says so in a header line "# test-timeout: SECONDS",
#                 which counts when it is the larger of the two
#
# From the host (one VM, only two scripts):
#   TESTS="module rdma-core" make check
#   tests/vm/run-vm.sh --kver KVER --module M.ko --out DIR \
#       --env TESTS=module -- tests/guest/run-all.sh
set -eu

HERE=$(cd "$(dirname "$0")" && pwd)
TEST_TIMEOUT=${TEST_TIMEOUT:-900}
SELECT=$(echo "${TESTS:-}" | tr ',' ' ')

selected() {	# selected FILE SHORT
	local base num pat
	[ -n "$SELECT" ] || return 0
	base=$(basename "$1")
	num=${base%%-*}
	set -f
	for pat in $SELECT; do
		set +f
		# shellcheck disable=SC2254  # glob matching is the point
		case "$2" in $pat) return 0 ;; esac
		# shellcheck disable=SC2254
		case "$base" in $pat) return 0 ;; esac
		# shellcheck disable=SC2254
		case "$num" in $pat) return 0 ;; esac
	done
	set +f
	return 1
}

n=0 passed=0 failed=0 skipped=0 known=0
emit() {	# emit ok|notok DESCRIPTION [DIRECTIVE]
	n=$((n + 1))
	local res=ok
	[ "$1" = ok ] || res="not ok"
	if [ -n "${3:-}" ]; then
		echo "$res $n $2 # $3"
	else
		echo "$res $n $2"
	fi
}
# Everything per line is a bash builtin: under TCG every fork costs
# a noticeable fraction of a second, and the suite prints ~300 lines.
kind_of() {	# kind_of ok|notok DIRECTIVE -> $KIND: pass, fail, skip or known
	local d=${2:0:4}
	case "$1:${d^^}" in
	ok:SKIP) KIND=skip ;;
	ok:*) KIND=pass ;;
	notok:TODO) KIND=known ;;
	*) KIND=fail ;;
	esac
}
count() {	# count ok|notok DIRECTIVE
	kind_of "$1" "${2:-}"
	case "$KIND" in
	pass) passed=$((passed + 1)) ;;
	skip) skipped=$((skipped + 1)) ;;
	known) skipped=$((skipped + 1)); known=$((known + 1)) ;;
	fail) failed=$((failed + 1)) ;;
	esac
}
result() {	# result ok|notok DESCRIPTION [DIRECTIVE]
	emit "$@"
	count "$1" "${3:-}"
}

# Matches a TAP result line: 1 "not ", 2 number, 3 the rest.
RE_RESULT='^(not )?ok([[:space:]]+[0-9]+)?[[:space:]]*-?[[:space:]]*(.*)$'
# Splits "description # SKIP|TODO reason": 1 description, 2 directive.
RE_DIRECTIVE='^(.*[^[:space:]])?[[:space:]]*#[[:space:]]*(([Ss][Kk][Ii][Pp]|[Tt][Oo][Dd][Oo]).*)$'
RE_PLAN='^1\.\.([0-9]+)[[:space:]]*(#[[:space:]]*(.*))?$'
RC_MARK="@@run-all-rc@@"

echo "TAP version 13"
echo "# run-all: kernel $(uname -r), rdma_rxe $( [ "${RXE_STOCK:-0}" = 1 ] && echo stock || echo "${RXE_MODULE:-?}")"
t_all=$(date +%s)
nscripts=0
for script in "$HERE"/[0-9][0-9]-*.sh; do
	[ -e "$script" ] || continue
	base=$(basename "$script" .sh)
	short=${base#[0-9][0-9]-}
	selected "$script" "$short" || continue
	nscripts=$((nscripts + 1))
	echo "# ---- $base"
	t0=$(date +%s)
	tmo=$(sed -n 's/^# test-timeout: *\([0-9][0-9]*\)$/\1/p' "$script" | head -n 1)
	[ -n "$tmo" ] && [ "$tmo" -gt "$TEST_TIMEOUT" ] || tmo=$TEST_TIMEOUT
	planned="" seen=0 sfailed=0 rc="" skip_all=""
	while IFS= read -r line; do
		case "$line" in
		"$RC_MARK "*) rc=${line#"$RC_MARK "}; continue ;;
		esac
		if [[ $line =~ $RE_RESULT ]]; then
			kind=ok
			[ -n "${BASH_REMATCH[1]}" ] && kind=notok
			rest=${BASH_REMATCH[3]}
			directive=""
			if [[ $rest =~ $RE_DIRECTIVE ]]; then
				rest=${BASH_REMATCH[1]}
				directive=${BASH_REMATCH[2]}
			fi
			[ -n "$rest" ] || rest="test $((seen + 1))"
			seen=$((seen + 1))
			kind_of "$kind" "$directive"
			[ "$KIND" != fail ] || sfailed=$((sfailed + 1))
			result "$kind" "$short: $rest" "$directive"
		elif [[ $line =~ $RE_PLAN ]]; then
			planned=${BASH_REMATCH[1]}
			[ "$planned" = 0 ] && skip_all=${BASH_REMATCH[3]:-no tests}
		elif [[ $line =~ ^TAP\ version ]]; then
			:
		elif [[ $line =~ ^Bail\ out! ]]; then
			echo "# $short: $line"
			result notok "$short: bailed out (${line#Bail out!})"
			sfailed=$((sfailed + 1))
		elif [[ $line =~ ^[[:space:]]*# ]]; then
			echo "$line"
		elif [ -n "$line" ]; then
			echo "# $short: $line"
		fi
	done < <(
		# timeout runs the script in its own process group and signals
		# the whole group, so children die with it.  stderr joins
		# stdout: all of it ends up in the TAP stream, as diagnostics.
		set +e
		if [ -x "$script" ]; then
			timeout -k 10 "$tmo" "$script" </dev/null 2>&1
		else
			timeout -k 10 "$tmo" bash "$script" </dev/null 2>&1
		fi
		echo "$RC_MARK $?"
	)
	secs=$(( $(date +%s) - t0 ))
	rc=${rc:-255}
	if [ "$rc" = 124 ] || [ "$rc" = 137 ]; then
		result notok "$short: timed out after ${tmo}s (killed)"
	elif [ -n "$skip_all" ] && [ "$seen" = 0 ] && [ "$rc" = 0 ]; then
		result ok "$short" "SKIP $skip_all"
	elif [ "$seen" = 0 ]; then
		result notok "$short: exited with status $rc without any TAP result"
	elif [ "$rc" != 0 ] && [ "$sfailed" = 0 ]; then
		result notok "$short: exited with status $rc but reported no failure"
	elif [ -n "$planned" ] && [ "$planned" != "$seen" ]; then
		result notok "$short: planned $planned tests but reported $seen"
	elif [ -z "$planned" ]; then
		result notok "$short: no TAP plan (1..N) printed"
	fi
	echo "# ---- $base: $seen results, exit $rc, ${secs}s"
done

if [ "$nscripts" = 0 ]; then
	result notok "run-all: no test script matched TESTS='${TESTS:-}'"
fi
echo "1..$n"
[ "$known" = 0 ] || echo "# $known known failure(s) reported as 'not ok ... # TODO' are counted as skipped"
echo "# run-all: $(( $(date +%s) - t_all ))s"
echo "$passed passed, $failed failed, $skipped skipped"
[ "$failed" = 0 ]
