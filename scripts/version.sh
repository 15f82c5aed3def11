#!/bin/sh
# Print rxe-odp's version, usable both as a Debian (native) package version
# and as a DKMS PACKAGE_VERSION, derived from git:
#
#   tag vX.Y on HEAD            X.Y
#   N commits after tag vX.Y    X.Y+gitYYYYMMDD.N.HASH
#   no tag at all               0.0~gitYYYYMMDD.C.HASH
#
# YYYYMMDD is HEAD's commit date (UTC), C the number of commits up to HEAD
# (so that two builds of the same day still sort in commit order), HASH
# HEAD's abbreviated hash.  When a file that goes into the packages has
# uncommitted changes, ".dirty" is appended (sorts after the clean build of
# the same commit).  Outside a git checkout the version is taken from
# RXE_ODP_VERSION, else it is 0.0~unknown.
set -eu

TOP=$(cd "$(dirname "$0")/.." && pwd)
cd "$TOP"

if ! git rev-parse --verify -q HEAD >/dev/null 2>&1; then
	echo "${RXE_ODP_VERSION:-0.0~unknown}"
	exit 0
fi

date=$(TZ=UTC git log -1 --format=%cd --date=format-local:%Y%m%d HEAD)
hash=$(git rev-parse --short=7 HEAD)
count=$(git rev-list --count HEAD)

if desc=$(git describe --tags --match 'v[0-9]*' HEAD 2>/dev/null); then
	tag=$(git describe --tags --abbrev=0 --match 'v[0-9]*' HEAD)
	base=${tag#v}
	if [ "$desc" = "$tag" ]; then
		ver=$base
	else
		n=$(git rev-list --count "$tag..HEAD")
		ver="$base+git$date.$n.$hash"
	fi
else
	ver="0.0~git$date.$count.$hash"
fi

# Only what the packages are made of counts as dirty (other work in
# progress in the tree does not change what make deb ships).
if ! git diff --quiet HEAD -- dkms.conf kernel drivers include \
	userspace scripts debian 2>/dev/null; then
	ver="$ver.dirty"
fi
# Debian versions allow [A-Za-z0-9.+~] (no '-' in a native version).
echo "$ver" | tr -c 'A-Za-z0-9.+~\n' '.'
