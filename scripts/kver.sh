#!/bin/sh
# Print the newest installed Debian 6.1 kernel that has headers.
for d in /lib/modules/6.1.*; do
	[ -e "$d/build/Makefile" ] && basename "$d"
done | sort -V | tail -n 1
