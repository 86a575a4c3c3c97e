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

# ibv_devinfo -v shows the vdev's GIDs (its interface's addresses), its own limits, its
# device memory, memory windows (type 1 and 2B) and on-demand paging.
ctl dev set vdev_a qp 77 >/dev/null
out=$(in_ns "$VRDMA_RUN" -d vdev_a ibv_devinfo -v)
if grep -q "max_qp:.*77$" <<<"$out" && grep -q "::ffff:10.77.0.1, RoCE v2" <<<"$out" &&
   grep -q "fd00:77::1, RoCE v2" <<<"$out" && grep -q "PORT_ACTIVE" <<<"$out" &&
   grep -q "active_mtu:.*4096" <<<"$out" &&
   grep -q "maximum available device memory:.*262144Bytes" <<<"$out" &&
   grep -qE "^[[:space:]]+MEM_WINDOW$" <<<"$out" && grep -q "MEM_WINDOW_TYPE_2B" <<<"$out" &&
   grep -qE "max_mw:[[:space:]]+[1-9]" <<<"$out" && grep -q "ODP_SUPPORT" <<<"$out"; then
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
# -t: receive completions timestamped on the device clock; both sides print the cycles
# between successive receive completions (a 1 GHz clock, so nanoseconds), min <= max.
ts_summary() {
  local f
  for f in "$1" "$2"; do
    grep -q "iters in" "$f" || return 1
    local max min
    max=$(sed -n 's/^Max receive completion clock cycles = //p' "$f")
    min=$(sed -n 's/^Min receive completion clock cycles = //p' "$f")
    [[ -n $max && -n $min ]] && ((min > 0 && min <= max)) || return 1
  done
}
run_pair rc_pingpong_timestamps ts_summary -- ibv_rc_pingpong -g 3 -c -t -n 200
# Device memory (issue 14): the buffers in ibv_alloc_dm memory, zero-based MRs, copies in
# and out with ibv_memcpy_to_dm/from_dm; -c checks every received buffer.
run_pair rc_pingpong_dm summary -- ibv_rc_pingpong -g 3 -c -j -n 200
run_pair rc_pingpong_dm_64k summary -- ibv_rc_pingpong -g 3 -c -j -s 65536 -n 100
run_pair srq_pingpong summary -- ibv_srq_pingpong -g 3 -c -n 500
run_pair srq_pingpong_events summary -- ibv_srq_pingpong -g 3 -c -e -q 4 -n 200
# XRC (issue 14): each side opens an XRC domain through a file, makes an XRC SRQ and an
# XRC receive QP in it, and an XRC send QP that names the peer's SRQ number in every
# work request; each prints "success" once all its receive completions (through its XRC
# receive QP: find_qp matches wc.qp_num) came and the peer said it finished. It checks
# no data: verbs_check's XRC case compares every byte.
xrc_ok() { grep -q "^success" "$1" && grep -q "^success" "$2" && grep -q "remote: .*SRQN" "$1"; }
run_pair xsrq_pingpong xrc_ok -- ibv_xsrq_pingpong -g 3 -n 200
run_pair xsrq_pingpong_events xrc_ok -- ibv_xsrq_pingpong -g 3 -e -s 10000 -m 1024 -n 50

# The port follows its interface, as rdma_rxe's does: down with the link (Disabled while
# the interface is down), IBV_EVENT_PORT_ERR to every context, then PORT_ACTIVE when it
# comes back; Debian's ibv_asyncwatch hears the events, ibv_devinfo shows the state. An
# RC pingpong over the vdev afterwards shows the port works again.
port_state() { in_ns "$VRDMA_RUN" -d vdev_a ibv_devinfo -v | grep -E "^[[:space:]]+(state|phys_state):" | awk '{print $2}' | paste -sd' '; }
# (timeout first: stopping it stops the watcher, which ip netns exec and vrdma-run exec)
timeout 20 ip netns exec "$NS" stdbuf -oL "$VRDMA_RUN" -d vdev_a ibv_asyncwatch -d vdev_a \
  >"$WORK/asyncwatch" 2>&1 &
watch_pid=$!
for _ in $(seq 50); do grep -q "async event FD" "$WORK/asyncwatch" && break; sleep 0.1; done
in_ns ip link set vrd0 down
down=""
for _ in $(seq 50); do down=$(port_state); [[ $down == "PORT_DOWN DISABLED" ]] && break; sleep 0.1; done
in_ns ip link set vrd0 up
in_ns ip addr add fd00:77::1/64 dev vrd0 nodad 2>/dev/null || true  # flushed with the link
up=""
for _ in $(seq 50); do up=$(port_state); [[ $up == "PORT_ACTIVE LINK_UP" ]] && break; sleep 0.1; done
for _ in $(seq 50); do grep -q "IBV_EVENT_PORT_ACTIVE" "$WORK/asyncwatch" && break; sleep 0.1; done
kill "$watch_pid" 2>/dev/null || true
wait "$watch_pid" 2>/dev/null || true
events=$(grep -o "IBV_EVENT_PORT_[A-Z]*" "$WORK/asyncwatch" | paste -sd' ')
if [[ $down == "PORT_DOWN DISABLED" && $up == "PORT_ACTIVE LINK_UP" &&
      $events == "IBV_EVENT_PORT_ERR IBV_EVENT_PORT_ACTIVE" ]] &&
   grep -q "event=port_state dev=vdev_a netdev=vrd0 state=down" "$WORK/vrdmad.log"; then
  pass "port state follows the link (ibv_devinfo, ibv_asyncwatch)"
else
  fail "port state: down '$down' up '$up' events '$events'"
  sed 's/^/    /' "$WORK/asyncwatch"
fi
run_pair rc_pingpong_after_link_flap summary -- ibv_rc_pingpong -g 3 -c -n 200

# Everything the clients created is gone with them.
sleep 0.5
check_all_freed "resources freed"
finish
