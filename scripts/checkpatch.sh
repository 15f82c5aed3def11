#!/bin/sh
# Run the 6.1 tree's checkpatch.pl --strict on our patch series (complete,
# with the files it adds: scripts/series.sh) and on our own kernel sources
# (kernel/, drivers/).  checkpatch is taken from the
# linux-source-6.1 tarball at run time.  Exit status: non-zero on any
# error, warning or check.
set -eu

TOP=$(cd "$(dirname "$0")/.." && pwd)
TARBALL=${LINUX_SOURCE_TARBALL:-/usr/src/linux-source-6.1.tar.xz}
DIR=${BUILD:-$TOP/build}/checkpatch
CP=$DIR/scripts/checkpatch.pl

if [ ! -f "$CP" ]; then
	mkdir -p "$DIR"
	tar -xJf "$TARBALL" -C "$DIR" --strip-components=1 \
		linux-source-6.1/scripts/checkpatch.pl \
		linux-source-6.1/scripts/spelling.txt \
		linux-source-6.1/scripts/const_structs.checkpatch
fi

rm -rf "$DIR/series"
sh "$TOP/scripts/series.sh" "$DIR/series"
bad=0
for p in $(sed "s|^|$DIR/series/|" "$DIR/series/series"); do
	# a patch is checked as a patch (stdin), as git send-email would;
	# outside a kernel git tree checkpatch cannot look up the commits
	# that Fixes: tags name, and says so of each (UNKNOWN_COMMIT_ID);
	# nor can it read MAINTAINERS, whose SOFT-ROCE entry covers every
	# file the series adds (F: drivers/infiniband/sw/rxe/), and asks of
	# each added file (FILE_PATH_CHANGES)
	if ! out=$(perl "$CP" --no-tree --strict --terse \
		--ignore UNKNOWN_COMMIT_ID,FILE_PATH_CHANGES - <"$p"); then
		echo "$(basename "$p"): $out"
		bad=1
	fi
done
for f in "$TOP"/kernel/*.[ch] "$TOP"/drivers/*.[ch]; do
	if ! out=$(perl "$CP" --no-tree --strict --terse -f "$f"); then
		echo "$out"
		bad=1
	fi
done
[ $bad -eq 0 ] && echo "checkpatch --strict: clean"
exit $bad
