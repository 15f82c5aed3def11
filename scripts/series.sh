#!/bin/sh
# Write our patch series for 6.1's drivers/infiniband/sw/rxe, complete, to
# a directory:
#
#   series.sh OUTDIR
#
# drivers/patches/series names the patches in the order they apply (quilt
# layout, -p1).  A patch that adds one of our own source files does not
# carry a copy of it: it names the file in an "Add-file: PATH" line between
# its "---" and its first diff, PATH being the file in kernel/ or drivers/.
# Here each such file becomes a "new file" diff of
# drivers/infiniband/sw/rxe/$(basename PATH), appended to the patch before
# its signature.  OUTDIR gets the series file and every patch it names,
# ready for patch(1) or git am.
set -eu

die() { echo "series: error: $*" >&2; exit 1; }

[ $# -eq 1 ] || die "usage: series.sh OUTDIR"
TOP=$(cd "$(dirname "$0")/.." && pwd)
PATCHES=$TOP/drivers/patches
OUTDIR=$1
RXE=drivers/infiniband/sw/rxe

mkdir -p "$OUTDIR"
: >"$OUTDIR/series"
gen=$OUTDIR/.new-files
grep -v '^[[:space:]]*\(#\|$\)' "$PATCHES/series" | while read -r p; do
	[ -f "$PATCHES/$p" ] || die "$p (named by the series) missing"
	echo "$p" >>"$OUTDIR/series"
	: >"$gen"
	for f in $(sed -n 's/^Add-file: //p' "$PATCHES/$p"); do
		[ -f "$TOP/$f" ] || die "$p adds $f, which is missing"
		[ -z "$(tail -c 1 "$TOP/$f")" ] ||
			die "$f does not end with a newline"
		name=$RXE/$(basename "$f")
		printf 'diff --git a/%s b/%s\nnew file mode 100644\n--- /dev/null\n+++ b/%s\n@@ -0,0 +1,%d @@\n' \
			"$name" "$name" "$name" "$(wc -l <"$TOP/$f")" >>"$gen"
		sed 's/^/+/' "$TOP/$f" >>"$gen"
	done
	# the new files go last, before the signature ("-- ") if there is one
	awk -v gen="$gen" '
		function emit(  line) {
			while ((getline line < gen) > 0)
				print line
			done = 1
		}
		$0 == "-- " && !done { emit() }
		{ print }
		END { if (!done) emit() }
	' "$PATCHES/$p" >"$OUTDIR/$p"
done
rm -f "$gen"
