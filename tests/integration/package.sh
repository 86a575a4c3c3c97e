#!/usr/bin/env bash
# Issue 15, item 4: Debian packages from the repository. dpkg-buildpackage builds vrdma,
# libvrdma0 and libvrdma-dev from a copy of the source tree; lintian finds no error or
# warning in them; the packages install (dpkg -i), put every file where Debian's layout
# says (the daemon in /usr/sbin, the service, /etc/vrdma/vrdmad.conf as a conffile, the
# man pages, the library by its SONAME, the header and pkg-config file), the unit passes
# systemd-analyze verify; then the demo's workload runs from the installed files only: the
# installed vrdmad on its configuration file, the installed vrdmactl, and Debian's
# ibv_rc_pingpong (data checked) and ib_write_bw under the installed vrdma-run. The
# packages are purged at the end, leaving nothing behind.
#
# It installs into this machine's /usr (as scripts/install-deps does with apt), so it is
# not run beside itself; build-tree tests are unaffected (their vrdma-run preloads the
# build tree's library).
source "$(dirname "$0")/lib.sh"
SRC="$(cd "$(dirname "$0")/../.." && pwd)"
PKGS=(vrdma libvrdma0 libvrdma-dev)
purge() { dpkg --purge "${PKGS[@]}" >/dev/null 2>&1 || true; }
FINISH_DIAGNOSTICS=package_diagnostics
package_diagnostics() {
  echo "--- build log (tail)"; tail -30 "$WORK/build.log" 2>/dev/null
  echo "--- vrdmad log (tail)"; tail -20 "$WORK/vrdmad.log" 2>/dev/null
}
trap 'purge; cleanup' EXIT

# A copy of the tree: the files git knows and new ones it does not ignore.
mkdir -p "$WORK/src/vrdma"
(cd "$SRC" && git ls-files -z --cached --others --exclude-standard |
  xargs -0 tar -c --ignore-failed-read 2>/dev/null) | tar -x -C "$WORK/src/vrdma"
if (cd "$WORK/src/vrdma" && dpkg-buildpackage -us -uc -b) >"$WORK/build.log" 2>&1; then
  pass "dpkg-buildpackage -us -uc -b"
else
  fail "dpkg-buildpackage"; finish; exit 1
fi
debs=()
for p in "${PKGS[@]}"; do
  f=$(ls "$WORK"/src/${p}_*.deb 2>/dev/null | head -1)
  if [[ -n $f ]]; then debs+=("$f"); pass "built $(basename "$f")"; else fail "no $p package"; fi
done

# lintian: no error, no warning (informational tags are listed, not judged).
changes=$(ls "$WORK"/src/vrdma_*.changes)
lintian --fail-on error,warning --display-info "$changes" >"$WORK/lintian.log" 2>&1
rc=$?
if ((rc == 0)); then
  pass "lintian: no error or warning ($(grep -c '^[IP]:' "$WORK/lintian.log") informational tags)"
else
  fail "lintian (exit $rc)"; cat "$WORK/lintian.log"
fi

# Installed, every file in its place.
purge
if dpkg -i "${debs[@]}" >"$WORK/dpkg.log" 2>&1; then pass "dpkg -i"; else fail "dpkg -i"; cat "$WORK/dpkg.log"; fi
MA=$(dpkg-architecture -qDEB_HOST_MULTIARCH)
for f in /usr/sbin/vrdmad /usr/bin/vrdmactl /usr/bin/vrdma-run /etc/vrdma/vrdmad.conf \
         /lib/systemd/system/vrdmad.service /usr/share/man/man8/vrdmad.8.gz \
         /usr/share/man/man8/vrdmactl.8.gz /usr/share/man/man1/vrdma-run.1.gz \
         "/usr/lib/$MA/libvrdma.so.0" "/usr/lib/$MA/libvrdma.so" /usr/include/vrdma/vrdma.h \
         "/usr/lib/$MA/pkgconfig/vrdma.pc" /usr/lib/cni/vrdma; do
  if [[ -e $f ]]; then pass "installed $f"; else fail "missing $f"; fi
done
if grep -qx /etc/vrdma/vrdmad.conf /var/lib/dpkg/info/vrdma.conffiles 2>/dev/null; then
  pass "/etc/vrdma/vrdmad.conf is a conffile"
else
  fail "vrdmad.conf is not a conffile"
fi
if [[ $(objdump -p "/usr/lib/$MA/libvrdma.so.0" | awk '/SONAME/ {print $2}') == libvrdma.so.0 ]]; then
  pass "SONAME libvrdma.so.0"
else
  fail "libvrdma's SONAME"
fi
if out=$(systemd-analyze verify /lib/systemd/system/vrdmad.service 2>&1); then
  pass "systemd-analyze verify vrdmad.service"
else
  fail "systemd-analyze verify: $out"
fi
if man -w vrdmad >/dev/null 2>&1 && man -w vrdma-run >/dev/null 2>&1; then
  pass "man vrdmad, man vrdma-run"
else
  fail "man pages not found by man"
fi

# The demo's workload from the installed files, as the service would start the daemon
# (its configuration file), with the socket in the test's directory.
setup_hosts
ip netns exec "$NS" /usr/sbin/vrdmad --config /etc/vrdma/vrdmad.conf --socket "$VRDMA_SOCKET" \
  >"$WORK/vrdmad.log" 2>&1 &
DAEMON_PID=$!
wait_for_daemon "$VRDMA_SOCKET" "$DAEMON_PID" "$WORK/vrdmad.log"
in_ns /usr/bin/vrdmactl dev add vdev_a pdev pdev0 netdev vrd0 >/dev/null
in_ns /usr/bin/vrdmactl dev add vdev_b pdev pdev0 netdev vrd1 >/dev/null
preload=$(in_ns /usr/bin/vrdma-run -- printenv LD_PRELOAD)
if [[ $(realpath "$preload") == "$(realpath "/usr/lib/$MA/libvrdma.so.0")" ]]; then
  pass "installed vrdma-run preloads /usr/lib/$MA/libvrdma.so.0"
else
  fail "installed vrdma-run preloads '$preload'"
fi
in_ns timeout 120 /usr/bin/vrdma-run -d vdev_a ibv_rc_pingpong -g 3 -c -n 1000 -s 65536 -p 18700 \
  >"$WORK/pp.server" 2>&1 &
srv=$!
sleep 0.5
if in_ns timeout 120 /usr/bin/vrdma-run -d vdev_b ibv_rc_pingpong -g 3 -c -n 1000 -s 65536 -p 18700 \
     127.0.0.1 >"$WORK/pp.client" 2>&1 && wait "$srv" && grep -q "1000 iters" "$WORK/pp.client"; then
  pass "ibv_rc_pingpong -c (data checked) on the installed files"
else
  wait "$srv" 2>/dev/null || true
  fail "ibv_rc_pingpong"; tail -5 "$WORK/pp.server" "$WORK/pp.client"
fi
in_ns timeout 120 /usr/bin/vrdma-run -d vdev_a ib_write_bw -x 3 -p 18701 -D 2 >"$WORK/bw.server" 2>&1 &
srv=$!
sleep 0.5
if in_ns timeout 120 /usr/bin/vrdma-run -d vdev_b ib_write_bw -x 3 -p 18701 -D 2 127.0.0.1 \
     >"$WORK/bw.client" 2>&1 && wait "$srv" && grep -qE "^ *65536 " "$WORK/bw.client"; then
  pass "ib_write_bw on the installed files: $(awk '/^ *65536 / {print $4 " MB/s"}' "$WORK/bw.client")"
else
  wait "$srv" 2>/dev/null || true
  fail "ib_write_bw"; tail -5 "$WORK/bw.server" "$WORK/bw.client"
fi
stop_pid "$DAEMON_PID"
DAEMON_PID=""

# Purged, nothing left.
purge
left=""
for f in /usr/sbin/vrdmad /usr/bin/vrdma-run "/usr/lib/$MA/libvrdma.so.0" /etc/vrdma /usr/lib/cni/vrdma; do
  [[ -e $f ]] && left+=" $f"
done
if [[ -z $left ]]; then pass "dpkg --purge leaves nothing"; else fail "left after purge:$left"; fi
finish
