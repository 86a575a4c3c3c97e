#!/usr/bin/env bash
# `meson install` into a DESTDIR gives what a user of vrdma needs: vrdmad (in sbindir),
# vrdmactl, vrdma-run, libvrdma.so.0 (and libvrdma.so for the linker), the man pages,
# <vrdma/vrdma.h> and vrdma.pc. A C program using the public API builds with `cc $(pkg-config --cflags --libs vrdma)` against that tree alone and runs
# against the installed vrdmad; the installed vrdma-run preloads the installed
# libvrdma.so, not the build tree's.
source "$(dirname "$0")/lib.sh"
DEST="$WORK/dest"
if meson install -C "$VRDMA_BUILD" --no-rebuild --quiet --destdir "$DEST" >"$WORK/install.log" 2>&1; then
  pass "meson install --destdir"
else
  fail "meson install --destdir"; cat "$WORK/install.log"; finish; exit 1
fi
# Where meson put things (prefix, bindir, libdir, includedir as configured).
opt() {
  meson introspect --buildoptions "$VRDMA_BUILD" |
    /usr/bin/python3 -c "import json, sys; print(next(o['value'] for o in json.load(sys.stdin) if o['name'] == '$1'))"
}
prefix=$(opt prefix)
abs() { [[ $1 == /* ]] && echo "$1" || echo "$prefix/$1"; }
BIN="$DEST$(abs "$(opt bindir)")"
SBIN="$DEST$(abs "$(opt sbindir)")"
LIB="$DEST$(abs "$(opt libdir)")"
INC="$DEST$(abs "$(opt includedir)")"
for f in "$SBIN/vrdmad" "$BIN/vrdmactl" "$BIN/vrdma-run" "$LIB/libvrdma.so" "$LIB/libvrdma.so.0" \
         "$INC/vrdma/vrdma.h" "$LIB/pkgconfig/vrdma.pc"; do
  if [[ -e $f ]]; then pass "installed ${f#"$DEST"}"; else fail "missing ${f#"$DEST"}"; fi
done
cmp -s "$INC/vrdma/vrdma.h" "$(dirname "$0")/../../include/vrdma/vrdma.h" &&
  pass "the public header as <vrdma/vrdma.h>" || fail "installed header differs"

# Build a C program against the installed tree only (the sysroot prefixes its paths).
pc() { PKG_CONFIG_PATH="$LIB/pkgconfig" PKG_CONFIG_SYSROOT_DIR="$DEST" pkg-config "$@" vrdma; }
flags=$(pc --cflags --libs) || flags=""
echo "pkg-config --cflags --libs vrdma: $flags" >"$WORK/cc.log"
if [[ $flags == *"-I$INC"* && $flags == *"-L$LIB"* && $flags == *-lvrdma*-libverbs* ]] &&
   cc -std=c11 -Wall -Wextra -Werror -o "$WORK/install_check" \
     "$(dirname "$0")/install_check.c" $flags >>"$WORK/cc.log" 2>&1; then
  pass "cc \$(pkg-config --cflags --libs vrdma) install_check.c"
else
  fail "building against the installed tree"; cat "$WORK/cc.log"
fi

# The installed daemon and tools, in the test's namespace.
VRDMAD="$SBIN/vrdmad"
VRDMACTL="$BIN/vrdmactl"
setup_hosts
start_daemon
if out=$(in_ns env LD_LIBRARY_PATH="$LIB" "$WORK/install_check" vrd0 2>&1) &&
   [[ $out == "pdev0: physical
vdev_inst: virtual on vrd0
vdev_inst: max_qp 4
vdev_inst: destroyed (again: No such device)" ]]; then
  pass "install_check against the installed vrdmad"
else
  fail "install_check: $out"
fi
if in_ns env LD_LIBRARY_PATH="$LIB" ldd "$WORK/install_check" | grep -q "libvrdma.so.0 => $LIB/libvrdma.so.0"; then
  pass "install_check uses the installed libvrdma.so"
else
  fail "install_check's libvrdma.so: $(ldd "$WORK/install_check" | grep vrdma)"
fi

# The installed vrdma-run preloads the installed library, though the build tree's exists.
[[ -e $VRDMA_BUILD/lib/libvrdma.so.0 ]] || fail "no build tree library to tell apart"
preload=$(in_ns "$BIN/vrdma-run" -- printenv LD_PRELOAD 2>&1)
if [[ -f $preload && $(realpath "$preload") == "$(realpath "$LIB/libvrdma.so.0")" ]]; then
  pass "installed vrdma-run preloads the installed libvrdma.so"
else
  fail "installed vrdma-run preloads '$preload'"
fi
ctl dev add vdev_a pdev pdev0 netdev vrd0 >/dev/null
if in_ns "$BIN/vrdma-run" -- ibv_devices >"$WORK/ibv_devices.log" 2>&1 &&
   grep -q vdev_a "$WORK/ibv_devices.log"; then
  pass "ibv_devices under the installed vrdma-run lists vdev_a"
else
  fail "ibv_devices under the installed vrdma-run"; cat "$WORK/ibv_devices.log"
fi
finish
