# Two hosts for the cross-host tests: network namespaces A and B joined by a veth pair
# (vA in A, vB in B, MTU 9000, 10.77.0.1/24 + fd00:77::1/64 and .2 / ::2), a vrdmad in
# each on a DPDK port on its veth end, and a vdev in each bound to that end: vdev_a on
# host A, vdev_b on host B. Clients run in their host's namespace and reach their
# daemon through VRDMA_SOCKET; a process that uses both vdevs lists both sockets.
#
# Needs root. VRDMA_BUILD names the build directory; PORT_TYPE the DPDK port
# (af_packet by default, af_xdp). WIRE=bridge puts a third namespace W between the
# hosts, a Linux bridge joining wA (vA's peer) and wB (vB's peer), so that frames can be
# lost on the wire: see wire_loss.
set -euo pipefail

: "${VRDMA_BUILD:?set VRDMA_BUILD to the meson build directory}"
VRDMAD="$VRDMA_BUILD/apps/vrdmad"
VRDMACTL="$VRDMA_BUILD/apps/vrdmactl"
VRDMA_RUN="$VRDMA_BUILD/apps/vrdma-run"
PORT_TYPE="${PORT_TYPE:-af_packet}"
TAG="vrd$$"
NS_A="$TAG-a"
NS_B="$TAG-b"
NS_W="$TAG-w"
WIRE="${WIRE:-direct}"
WORK="$(mktemp -d /tmp/vrdma-2h.XXXXXX)"
SOCK_A="$WORK/a.sock"
SOCK_B="$WORK/b.sock"
PID_A=""
PID_B=""
MTU="${MTU:-9000}"

# pass/fail/finish, wait_for_daemon, stop_pid, cleanup (tests/lib/common.sh).
source "$(dirname "${BASH_SOURCE[0]}")/../lib/common.sh"
CLEANUP_PIDS=(PID_A PID_B)
CLEANUP_NETNS=(NS_A NS_B NS_W)
# A test killed by its timeout still tears its hosts down.
cleanup_on_exit

on_a() { ip netns exec "$NS_A" env VRDMA_SOCKET="$SOCK_A" "$@"; }
on_b() { ip netns exec "$NS_B" env VRDMA_SOCKET="$SOCK_B" "$@"; }
ctl_a() { on_a "$VRDMACTL" "$@"; }
ctl_b() { on_b "$VRDMACTL" "$@"; }

setup_link() {
  ip netns add "$NS_A"
  ip netns add "$NS_B"
  if [[ $WIRE == bridge ]]; then
    ip netns add "$NS_W"
    ip -n "$NS_W" link add br0 type bridge
    for h in A B; do
      local ns="$NS_A"
      [[ $h == B ]] && ns="$NS_B"
      ip link add "$TAG-x" type veth peer name "$TAG-y"
      ip link set "$TAG-x" netns "$ns" name "v$h"
      ip link set "$TAG-y" netns "$NS_W" name "w$h"
      ip -n "$NS_W" link set "w$h" mtu "$MTU" master br0 up
    done
    ip -n "$NS_W" link set br0 mtu "$MTU" up
  else
    ip link add "$TAG-x" type veth peer name "$TAG-y"
    ip link set "$TAG-x" netns "$NS_A" name vA
    ip link set "$TAG-y" netns "$NS_B" name vB
  fi
  for h in A B; do
    local ns="$NS_A" n=1
    [[ $h == B ]] && ns="$NS_B" n=2
    ip -n "$ns" link set lo up
    ip -n "$ns" link set "v$h" mtu "$MTU" up
    ip -n "$ns" addr add "10.77.0.$n/24" dev "v$h"
    ip -n "$ns" addr add "fd00:77::$n/64" dev "v$h" nodad
  done
  # Link-local addresses (the RoCEv1/v2 default GIDs) need DAD to finish.
  for _ in $(seq 50); do
    ip -n "$NS_A" -6 addr show dev vA | grep -q tentative || ip -n "$NS_B" -6 addr show dev vB |
      grep -q tentative || break
    sleep 0.1
  done
}

# wire_loss PERCENT (WIRE=bridge): the bridge drops PERCENT of the frames it forwards
# each way (a netdev egress chain with numgen random on wA and wB: this kernel has no
# netem); 0 removes the rules. The drop is on the wire on purpose: a frame that the
# sending host's own egress hook drops is not lost to a DPDK AF_PACKET port, whose TX
# ring marks it for sending again and sends it with the next burst (and AF_XDP's
# transmit bypasses that hook), so a rule on vA or vB only delays frames.
wire_loss() {
  ip netns exec "$NS_W" nft delete table netdev vrdma_loss 2>/dev/null || true
  [[ $1 == 0 ]] && return 0
  ip netns exec "$NS_W" nft -f - <<NFT
table netdev vrdma_loss {
  chain to_b {
    type filter hook egress device "wB" priority 0; policy accept;
    numgen random mod 100 < $1 counter drop
  }
  chain to_a {
    type filter hook egress device "wA" priority 0; policy accept;
    numgen random mod 100 < $1 counter drop
  }
}
NFT
}
# wire_dropped a|b: frames the wire has dropped on their way to host A or B.
wire_dropped() {
  ip netns exec "$NS_W" nft list chain netdev vrdma_loss "to_$1" 2>/dev/null |
    grep -o 'packets [0-9]*' | awk '{s += $2} END {print s + 0}'
}

# start_vrdmad A|B [extra vrdmad args...]: host A's daemon runs on core 0, B's on core 1.
# PDEV_OPTIONS (",dup=0.01,...") is appended to the pdev's --pdev value. The daemons run
# with --netns-mode shared: the cross-host checks are one process (verbs_check, outside
# both hosts' namespaces) holding a vdev of each host, which exclusive mode would hide.
start_vrdmad() {
  local h="$1"
  shift
  local ns="$NS_A" sock="$SOCK_A" core=0
  [[ $h == B ]] && ns="$NS_B" sock="$SOCK_B" core=1
  rm -f "$sock"
  ip netns exec "$ns" "$VRDMAD" -l "$core" --no-huge -m 512 --no-pci --no-telemetry \
    --file-prefix "$TAG-$h" -- --socket "$sock" --netns-mode shared \
    --pdev "pdev_$h,iface=v$h,type=$PORT_TYPE${PDEV_OPTIONS:-}" "$@" >>"$WORK/vrdmad-$h.log" 2>&1 &
  local pid=$!
  if [[ $h == A ]]; then PID_A=$pid; else PID_B=$pid; fi
  wait_for_daemon "$sock" "$pid" "$WORK/vrdmad-$h.log" "vrdmad on host $h"
}

setup_two_hosts() {
  setup_link
  start_vrdmad A "${VRDMAD_ARGS_A[@]}"
  start_vrdmad B "${VRDMAD_ARGS_B[@]}"
  ctl_a dev add vdev_a pdev pdev_A netdev vA >/dev/null
  ctl_b dev add vdev_b pdev pdev_B netdev vB >/dev/null
}
VRDMAD_ARGS_A=()
VRDMAD_ARGS_B=()

source "$(dirname "${BASH_SOURCE[0]}")/client_server.sh"

# run_cross NAME CHECK SERVER_HOST -- PROGRAM ARGS...: PROGRAM ARGS as the server on
# SERVER_HOST's vdev and as the client on the other host's vdev, connecting to the
# server's address over the veth (the tools' own TCP exchange, beside the RoCE
# traffic). Both must exit 0; then CHECK is called with the two output files.
run_cross() {
  local name="$1" check="$2"
  CROSS_SERVER="$3"
  shift 4
  client_server "$name" "$check" cross_server cross_client -- "$@"
}
# Line-buffered (stdbuf): a tool's error messages (stderr) stay in order with what it
# printed before them (stdout to a file is otherwise flushed only at exit, after them).
cross_server() {
  if [[ $CROSS_SERVER == A ]]; then on_a timeout 300 stdbuf -oL -eL "$VRDMA_RUN" -d vdev_a -- "$@"; else on_b timeout 300 stdbuf -oL -eL "$VRDMA_RUN" -d vdev_b -- "$@"; fi
}
cross_client() {
  if [[ $CROSS_SERVER == A ]]; then on_b timeout 300 stdbuf -oL -eL "$VRDMA_RUN" -d vdev_b -- "$@" 10.77.0.1; else on_a timeout 300 stdbuf -oL -eL "$VRDMA_RUN" -d vdev_a -- "$@" 10.77.0.2; fi
}

# The pingpongs print the summary on both sides only when every receive completed; -c
# makes each side check every byte it received.
summary() { grep -q "iters in" "$1" && grep -q "iters in" "$2"; }
# perftest reports a result line per size.
rows() { grep -cE '^ *[0-9]+ +[0-9]+ +[0-9.]+' "$1" || true; }
all_sizes() { [[ $(rows "$2") -ge 20 ]]; }
one_size() { [[ $(rows "$2") -ge 1 ]]; }
ud_sizes() { [[ $(rows "$2") -ge 11 ]]; }

# wait_tcp_listen ON PORT...: waits (up to 20 s) until every PORT has a TCP listener in
# the host ON (on_a, on_b) names. A client that connects once starts only then: an
# emulated guest or a loaded machine can take seconds to get its server there, and a
# fixed wait once left a client "Couldn't connect".
wait_tcp_listen() {
  local on=$1 filter="" port
  shift
  for port in "$@"; do filter+="${filter:+ or }sport = :$port"; done
  for _ in $(seq 100); do
    [[ $($on ss -Hltn "( $filter )" | wc -l) -ge $# ]] && return 0
    sleep 0.2
  done
}

# pingpongs_at_once NAME DEV_B1 DEV_A1 ADDR1 DEV_B2 DEV_A2 ADDR2: two ibv_rc_pingpong -c
# runs at the same time, servers on host B's DEV_B1 and DEV_B2, clients on host A's
# DEV_A1 and DEV_A2 connecting to ADDR1 and ADDR2 (two vdevs of each pdev side by side).
pingpongs_at_once() {
  local name="$1" b1="$2" a1="$3" addr1="$4" b2="$5" a2="$6" addr2="$7" rc=0 s1 s2 c1
  on_b timeout 60 "$VRDMA_RUN" -d "$b1" -- ibv_rc_pingpong -g 3 -c -n 300 -p 18530 >"$WORK/$name-1.server" 2>&1 &
  s1=$!
  on_b timeout 60 "$VRDMA_RUN" -d "$b2" -- ibv_rc_pingpong -g 3 -c -n 300 -p 18531 >"$WORK/$name-2.server" 2>&1 &
  s2=$!
  # The clients connect once: they start when both servers listen.
  wait_tcp_listen on_b 18530 18531
  on_a timeout 60 "$VRDMA_RUN" -d "$a1" -- ibv_rc_pingpong -g 3 -c -n 300 -p 18530 "$addr1" >"$WORK/$name-1.client" 2>&1 &
  c1=$!
  on_a timeout 60 "$VRDMA_RUN" -d "$a2" -- ibv_rc_pingpong -g 3 -c -n 300 -p 18531 "$addr2" >"$WORK/$name-2.client" 2>&1 || rc=1
  wait "$c1" || rc=1
  wait "$s1" || rc=1
  wait "$s2" || rc=1
  if [[ $rc == 0 ]] && summary "$WORK/$name-1.server" "$WORK/$name-1.client" &&
     summary "$WORK/$name-2.server" "$WORK/$name-2.client"; then
    pass "$name"
  else
    fail "$name"; tail -n 3 "$WORK/$name"-*
  fi
}

# pcap_frames FILE [FILTER]: tshark's summary lines of the frames of a capture that the
# display FILTER matches; pcap_count: how many. Wireshark's dissectors for upper
# protocols in InfiniBand payloads (RPC-over-RDMA, SMB Direct, iSER ...) would read the
# tests' application bytes as theirs and call them malformed: they are off, so the RoCE
# headers are what is judged.
pcap_frames() {
  local args=(-r "$1") p
  for p in smc smb_direct rpcordma nvme-rdma lnet iser infiniband_sdp fcoib eoib; do
    args+=(--disable-protocol "$p")
  done
  if [[ -n "${2:-}" ]]; then args+=(-Y "$2"); fi
  tshark "${args[@]}" 2>/dev/null
}
pcap_count() { pcap_frames "$@" | wc -l; }
# Malformed or error-level frames. RoCEv2 over IPv6 carries UDP checksum 0, as rdma_rxe
# sends it (the ICRC covers the packet), which Wireshark flags for IPv6: not counted.
PCAP_BAD="_ws.malformed || (_ws.expert.severity == error && !(ipv6 && udp.checksum == 0))"

# ICMP destination-unreachable messages a host has sent (nstat's absolute counters).
icmp_unreach() {
  ip netns exec "$1" nstat -az 2>/dev/null |
    awk '/^(IcmpOutDestUnreachs|Icmp6OutDestUnreachs) /{s += $2} END {print s + 0}'
}

# What finish prints when a case failed.
hosts_diagnostics() {
  local h
  for h in A B; do
    echo "--- vrdmad $h log (tail)"
    tail -20 "$WORK/vrdmad-$h.log"
    echo "--- host $h counters"
    ip netns exec "$([[ $h == A ]] && echo "$NS_A" || echo "$NS_B")" env \
      VRDMA_SOCKET="$([[ $h == A ]] && echo "$SOCK_A" || echo "$SOCK_B")" "$VRDMACTL" stat show 2>&1 | head -3
  done
}
FINISH_DIAGNOSTICS=hosts_diagnostics
