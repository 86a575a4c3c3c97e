#!/usr/bin/env bash
# Debian's unmodified ibverbs-utils on two vdevs of the embedded default: the device
# list and query tools, and the four pingpongs with their data check (-c).
source "$(dirname "$0")/lib.sh"
setup_default

# ibv_devices lists both vdevs with their node GUIDs.
out=$(in_ns "$VRDMA_RUN" ibv_devices)
guid_a=$(ctl -j dev show vdev_a | grep -o '"node_guid":"[^"]*"' | cut -d'"' -f4 | tr -d ':')
if grep -qE "vdev_a[[:space:]]+$guid_a" <<<"$out" && grep -q "vdev_b" <<<"$out"; then
  pass ibv_devices
else
  fail "ibv_devices: $out"
fi

# ibv_devinfo -v shows the vdev's GIDs (its interface's addresses) and its own limits.
ctl dev set vdev_a qp 77 >/dev/null
out=$(in_ns "$VRDMA_RUN" -d vdev_a ibv_devinfo -v)
if grep -q "max_qp:.*77$" <<<"$out" && grep -q "::ffff:10.77.0.1, RoCE v2" <<<"$out" &&
   grep -q "fd00:77::1, RoCE v2" <<<"$out" && grep -q "PORT_ACTIVE" <<<"$out" &&
   grep -q "active_mtu:.*4096" <<<"$out"; then
  pass "ibv_devinfo -v"
else
  fail "ibv_devinfo -v"; echo "$out" | tail -30
fi
ctl dev set vdev_a qp 1024 >/dev/null

# The GID table follows the interface: an address added shows up, a removed one goes.
in_ns ip addr add 10.99.0.1/24 dev vrd0
follow=0
for _ in $(seq 50); do
  if in_ns "$VRDMA_RUN" -d vdev_a ibv_devinfo -v | grep -q "::ffff:10.99.0.1, RoCE v2"; then follow=1; break; fi
  sleep 0.1
done
in_ns ip addr del 10.99.0.1/24 dev vrd0
gone=0
for _ in $(seq 50); do
  if ! in_ns "$VRDMA_RUN" -d vdev_a ibv_devinfo -v | grep -q "10.99.0.1"; then gone=1; break; fi
  sleep 0.1
done
if [[ $follow == 1 && $gone == 1 ]]; then pass "GID table follows address changes"; else fail "GID follow ($follow $gone)"; fi

# The pingpongs print the transfer summary on both sides only when every receive
# completed; -c makes each side check every byte it received.
summary() { grep -q "iters in" "$1" && grep -q "iters in" "$2"; }

run_pair rc_pingpong summary -- ibv_rc_pingpong -g 3 -c -n 500
run_pair rc_pingpong_events summary -- ibv_rc_pingpong -g 3 -c -e -n 500
run_pair rc_pingpong_64k_ipv6 summary -- ibv_rc_pingpong -g 5 -c -s 65536 -n 100
run_pair rc_pingpong_roce_v1 summary -- ibv_rc_pingpong -g 0 -c -n 200
run_pair rc_pingpong_mtu1024 summary -- ibv_rc_pingpong -g 3 -c -m 1024 -s 10000 -n 100
run_pair uc_pingpong summary -- ibv_uc_pingpong -g 3 -c -n 500
run_pair ud_pingpong summary -- ibv_ud_pingpong -g 3 -c -n 500
run_pair srq_pingpong summary -- ibv_srq_pingpong -g 3 -c -n 500
run_pair srq_pingpong_events summary -- ibv_srq_pingpong -g 3 -c -e -q 4 -n 200

# Everything the clients created is gone with them.
sleep 0.5
check_all_freed "resources freed"
finish
