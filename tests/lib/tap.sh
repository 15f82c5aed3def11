# SPDX-License-Identifier: GPL-2.0
# shellcheck shell=bash disable=SC2034  # TAP_RUN_* are for the callers
#
# tap.sh: run TAP producers and merge their results into ONE flat TAP
# stream.  Sourced by the scripts that run other TAP producers:
# tests/guest/run-all.sh (every guest script), 20-odp-verbs.sh (the verbs
# test programs), 95-inject.sh (the same programs under fault injection,
# counted but not merged) and, on the host, tests/vm/check.sh (the guest's
# stream, the two-host stages and its own results).
#
#   tap_result ok|notok DESCRIPTION [DIRECTIVE]
#       print the next result, "ok 7 DESCRIPTION # DIRECTIVE", and count it
#   tap_run [--quiet] [--log FILE] LABEL TIMEOUT CMD [ARGS...]
#       run CMD (stdin /dev/null, stderr joined to stdout) under
#       `timeout -k 10 TIMEOUT`, which signals its whole process group.
#       Each result CMD prints is renumbered and prefixed with LABEL:
#       "ok 3 traffic.odp.rc_read" becomes "ok 12 odp_traffic: traffic.odp.rc_read";
#       "#" lines pass as they are, any other line becomes "# LABEL: ...".
#       An empty LABEL keeps the results' descriptions as they are.
#       CMD fails (one more "not ok") when it times out, prints no result
#       (but a plan 1..0 with exit 0 is one skip), exits non-zero without
#       a failed result, or prints fewer or more results than it planned.
#       --quiet merges nothing: CMD's results are only counted (and kept
#       in --log FILE, which is written in any case).
#       Afterwards: TAP_RUN_RC (exit status; 124/137 timed out),
#       TAP_RUN_SECS, TAP_RUN_PLANNED, TAP_RUN_SEEN, TAP_RUN_PASSED,
#       TAP_RUN_FAILED, TAP_RUN_SKIPPED; the return status is 0 unless CMD
#       failed by any of the rules above.
#   tap_summary
#       the plan, then "N passed, N failed, N skipped" alone on the last line
#
# "not ok ... # TODO" results (known failures) count as skipped; their
# number is in TAP_KNOWN, and the failed result lines are in TAP_FAILURES.
# Every line goes out through tap_emit LINE, which prints it; a caller
# may define its own after sourcing this file (check.sh keeps a copy and
# shows only failures with --quiet).  Every step per line is a bash
# builtin: under TCG every fork costs a noticeable fraction of a second.

TAP_N=0 TAP_PASSED=0 TAP_FAILED=0 TAP_SKIPPED=0 TAP_KNOWN=0 TAP_FAILURES=()

tap_emit() {
	printf '%s\n' "$1"
}

# Matches a TAP result line: 1 "not ", 2 number, 3 the rest.
TAP_RE_RESULT='^(not )?ok([[:space:]]+[0-9]+)?[[:space:]]*-?[[:space:]]*(.*)$'
# Splits "description # SKIP|TODO reason": 1 description, 2 directive.
TAP_RE_DIRECTIVE='^(.*[^[:space:]])?[[:space:]]*#[[:space:]]*(([Ss][Kk][Ii][Pp]|[Tt][Oo][Dd][Oo]).*)$'
TAP_RE_PLAN='^1\.\.([0-9]+)[[:space:]]*(#[[:space:]]*(.*))?$'
TAP_RC_MARK="@@tap-run-rc@@"

# tap_kind ok|notok DIRECTIVE -> TAP_KIND: pass, fail, skip or known
tap_kind() {
	local d=${2:0:4}
	case "$1:${d^^}" in
	ok:SKIP) TAP_KIND=skip ;;
	ok:*) TAP_KIND=pass ;;
	notok:TODO) TAP_KIND=known ;;
	*) TAP_KIND=fail ;;
	esac
}

tap_result() {
	local res=ok
	TAP_N=$((TAP_N + 1))
	[ "$1" = ok ] || res="not ok"
	local line="$res $TAP_N $2"
	[ -z "${3:-}" ] || line+=" # $3"
	tap_emit "$line"
	tap_kind "$1" "${3:-}"
	case "$TAP_KIND" in
	pass) TAP_PASSED=$((TAP_PASSED + 1)) ;;
	skip) TAP_SKIPPED=$((TAP_SKIPPED + 1)) ;;
	known) TAP_SKIPPED=$((TAP_SKIPPED + 1)) TAP_KNOWN=$((TAP_KNOWN + 1)) ;;
	fail) TAP_FAILED=$((TAP_FAILED + 1)) TAP_FAILURES+=("$line") ;;
	esac
}

tap_run() {
	local quiet=0 log="" label tmo line kind rest directive skip_all="" t0
	local prefix whole
	while [ $# -gt 0 ]; do
		case "$1" in
		--quiet) quiet=1; shift ;;
		--log) log=$2; shift 2 ;;
		*) break ;;
		esac
	done
	label=$1 tmo=$2
	shift 2
	prefix=${label:+$label: }
	# what a verdict on CMD as a whole names
	whole=${label:-${1##*/}}
	TAP_RUN_RC="" TAP_RUN_PLANNED="" TAP_RUN_SEEN=0
	TAP_RUN_PASSED=0 TAP_RUN_FAILED=0 TAP_RUN_SKIPPED=0
	t0=$SECONDS
	[ -z "$log" ] || : >"$log"
	while IFS= read -r line; do
		# The exit status is the last line: stop there, not at the end
		# of the pipe, which a process that CMD left behind may hold
		# open for ever (a FUSE daemon of a test that died).
		case "$line" in
		"$TAP_RC_MARK "*) TAP_RUN_RC=${line#"$TAP_RC_MARK "}; break ;;
		esac
		[ -z "$log" ] || printf '%s\n' "$line" >>"$log"
		if [[ $line =~ $TAP_RE_RESULT ]]; then
			kind=ok
			[ -n "${BASH_REMATCH[1]}" ] && kind=notok
			rest=${BASH_REMATCH[3]}
			directive=""
			if [[ $rest =~ $TAP_RE_DIRECTIVE ]]; then
				rest=${BASH_REMATCH[1]}
				directive=${BASH_REMATCH[2]}
			fi
			TAP_RUN_SEEN=$((TAP_RUN_SEEN + 1))
			[ -n "$rest" ] || rest="test $TAP_RUN_SEEN"
			tap_kind "$kind" "$directive"
			case "$TAP_KIND" in
			pass) TAP_RUN_PASSED=$((TAP_RUN_PASSED + 1)) ;;
			fail) TAP_RUN_FAILED=$((TAP_RUN_FAILED + 1)) ;;
			*) TAP_RUN_SKIPPED=$((TAP_RUN_SKIPPED + 1)) ;;
			esac
			[ "$quiet" = 1 ] || tap_result "$kind" "$prefix$rest" "$directive"
		elif [[ $line =~ $TAP_RE_PLAN ]]; then
			TAP_RUN_PLANNED=${BASH_REMATCH[1]}
			[ "$TAP_RUN_PLANNED" = 0 ] && skip_all=${BASH_REMATCH[3]:-no tests}
		elif [[ $line =~ ^TAP\ version ]]; then
			:
		elif [[ $line =~ ^Bail\ out! ]]; then
			[ "$quiet" = 1 ] && continue
			tap_emit "# $prefix$line"
			tap_result notok "$whole: bailed out (${line#Bail out!})"
			TAP_RUN_FAILED=$((TAP_RUN_FAILED + 1))
		elif [ "$quiet" = 1 ]; then
			:
		elif [[ $line =~ ^[[:space:]]*# ]]; then
			tap_emit "$line"
		elif [ -n "$line" ]; then
			tap_emit "# $prefix$line"
		fi
	done < <(
		set +e
		timeout -k 10 "$tmo" "$@" </dev/null 2>&1
		echo "$TAP_RC_MARK $?"
	)
	TAP_RUN_SECS=$((SECONDS - t0))
	TAP_RUN_RC=${TAP_RUN_RC:-255}
	local why=""
	if [ "$TAP_RUN_RC" = 124 ] || [ "$TAP_RUN_RC" = 137 ]; then
		why="timed out after ${tmo}s (killed) after $TAP_RUN_SEEN of ${TAP_RUN_PLANNED:-?} results"
	elif [ -n "$skip_all" ] && [ "$TAP_RUN_SEEN" = 0 ] && [ "$TAP_RUN_RC" = 0 ]; then
		[ "$quiet" = 1 ] || tap_result ok "$whole" "SKIP $skip_all"
		return 0
	elif [ "$TAP_RUN_SEEN" = 0 ]; then
		why="exited with status $TAP_RUN_RC without any TAP result"
	elif [ "$TAP_RUN_RC" != 0 ] && [ "$TAP_RUN_FAILED" = 0 ]; then
		why="exited with status $TAP_RUN_RC but reported no failure"
	elif [ -z "$TAP_RUN_PLANNED" ]; then
		why="no TAP plan (1..N) printed"
	elif [ "$TAP_RUN_PLANNED" != "$TAP_RUN_SEEN" ]; then
		why="planned $TAP_RUN_PLANNED results but printed $TAP_RUN_SEEN"
	fi
	if [ -n "$why" ]; then
		[ "$quiet" = 1 ] || tap_result notok "$whole: $why"
		return 1
	fi
	[ "$TAP_RUN_FAILED" = 0 ]
}

tap_summary() {
	tap_emit "1..$TAP_N"
	[ "$TAP_KNOWN" = 0 ] || tap_emit "# $TAP_KNOWN known failure(s) reported as 'not ok ... # TODO' are counted as skipped"
	tap_emit "$TAP_PASSED passed, $TAP_FAILED failed, $TAP_SKIPPED skipped"
}
