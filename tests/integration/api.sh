#!/usr/bin/env bash
# The public C API (api_check.c) against a running vrdmad: it creates a vdev on a third
# interface (a macvlan on a veth), moves data through it, provisions it, destroys it.
source "$(dirname "$0")/lib.sh"
setup_default
in_ns ip link add vrd2 type veth peer name vrd3
in_ns ip link set vrd2 up
in_ns ip link set vrd3 up
in_ns ip link add link vrd2 name vrdmv0 type macvlan mode bridge
in_ns ip link set vrdmv0 up
in_ns ip addr add 10.77.1.1/24 dev vrdmv0
# The daemon's socket lives in a private directory: let the unprivileged part reach it.
chmod 755 "$WORK"
if in_ns "$VRDMA_BUILD/tests/integration/api_check" vrdmv0 >"$WORK/api.log" 2>&1; then
  pass "C API: $(tail -1 "$WORK/api.log")"
else
  fail "C API"
  cat "$WORK/api.log"
fi
if ctl dev show | grep -q vdev_api; then fail "vdev_api left behind"; else pass "vdev_api gone"; fi
check_all_freed "resources freed"
finish
