#!/usr/bin/env bash
# package_build.sh DIR: Debian's packages of vrdma built from a copy of this tree in DIR
# (the copy in DIR/src/vrdma, the .deb and .changes files in DIR/src, dpkg-buildpackage's
# output in DIR/build.log), at idle priority (SCHED_IDLE: it takes only CPU time nothing
# else wants). Its exit status is dpkg-buildpackage's, also written to DIR/rc once done.
#
# package.sh runs it itself; scripts/test starts it as soon as build/ is built, beside the
# tests, and tells package.sh where (VRDMA_PACKAGE_DIR), as it does the sanitizer build.
set -uo pipefail
dir=$1
src="$(cd "$(dirname "$0")/../.." && pwd)"
rm -rf "$dir"
mkdir -p "$dir/src/vrdma"
# A copy of the tree: the files git knows and new ones it does not ignore.
(cd "$src" && git ls-files -z --cached --others --exclude-standard |
  xargs -0 tar -c --ignore-failed-read 2>/dev/null) | tar -x -C "$dir/src/vrdma"
rc=0
(cd "$dir/src/vrdma" && chrt --idle 0 dpkg-buildpackage -us -uc -b) >"$dir/build.log" 2>&1 || rc=$?
echo "$rc" >"$dir/rc.tmp" && mv "$dir/rc.tmp" "$dir/rc"
exit "$rc"
