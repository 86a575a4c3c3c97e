#!/usr/bin/env bash
# Two hosts over a veth pair, a vrdmad on a DPDK port (PORT_TYPE, AF_PACKET by default;
# the AF_XDP run uses MTU 3000, as XDP on veth takes no frame above a page) in each: the data checker, Debian's ibverbs-utils pingpongs and perftest across the
# link over RoCEv2/IPv4, RoCEv2/IPv6 and RoCEv1; a second vdev on a macvlan on each
# port; the kernel keeps its own traffic on the same interfaces and sends no ICMP port
# unreachable for RoCE; a pcap of the run that tshark reads with no malformed frame.
source "$(dirname "$0")/hosts.sh"
setup_two_hosts

# The GID table indexes of vdevs on a plain interface (vrdmactl dev show): RoCEv1 and
# RoCEv2 of the link-local address, of the IPv4 address, of the IPv6 address.
declare -A GID=([v2_ipv4]=3 [v2_ipv6]=5 [v1]=2 [v1_link_local]=0)

# The data checker in one process using both vdevs, one on each host's daemon.
for kind in v2_ipv4 v2_ipv6 v1; do
  if VRDMA_GID_INDEX=${GID[$kind]} VRDMA_SOCKET="$SOCK_A:$SOCK_B" VRDMACTL="$VRDMACTL" \
       timeout 300 "$VRDMA_RUN" -- "$VRDMA_BUILD/tests/integration/verbs_check" --gtest_color=no \
       >"$WORK/verbs_check-$kind.log" 2>&1; then
    pass "verbs_check across hosts ($kind)"
  else
    fail "verbs_check across hosts ($kind)"; grep -E "Failure|FAILED|Expected|Which is" "$WORK/verbs_check-$kind.log" | head -20
  fi
done

# ibverbs-utils, each host as server and as client.
for kind in v2_ipv4 v2_ipv6 v1 v1_link_local; do
  g=${GID[$kind]}
  for server in A B; do
    run_cross "rc_pingpong-$kind-server$server" summary $server -- ibv_rc_pingpong -g "$g" -c -s 8192 -n 300
  done
done
run_cross rc_pingpong-events summary A -- ibv_rc_pingpong -g 3 -c -e -n 300
# perftest waiting on one completion channel for its send and receive CQs: it takes the
# first event for the first completion (a pass's CQs publish in the order they filled;
# the other order overran its send CQ within a few hundred round trips).
run_cross ib_send_lat-events one_size A -- ib_send_lat -x 3 -s 8 -n 1000 -e
run_cross uc_pingpong summary B -- ibv_uc_pingpong -g 3 -c -n 300
run_cross ud_pingpong-v2_ipv4 summary A -- ibv_ud_pingpong -g 3 -c -s 2048 -n 300
run_cross ud_pingpong-v2_ipv6 summary B -- ibv_ud_pingpong -g 5 -c -s 1024 -n 300
run_cross srq_pingpong summary A -- ibv_srq_pingpong -g 3 -c -n 200

# perftest: every RC test over all sizes on RoCEv2/IPv4 (one size with QUICK=1), one
# size each on IPv6 and v1.
ITER=${VRDMA_PERFTEST_ITERS:-100}
SIZES=(-a)
SIZES_CHECK=all_sizes
if [[ ${QUICK:-0} == 1 ]]; then SIZES=(-s 4096) SIZES_CHECK=one_size; fi
for t in ib_send_bw ib_send_lat ib_write_bw ib_write_lat ib_read_bw ib_read_lat; do
  run_cross "$t" $SIZES_CHECK B -- $t -x 3 "${SIZES[@]}" -n "$ITER"
  run_cross "$t-v2_ipv6" one_size A -- $t -x 5 -s 65536 -n "$ITER"
  run_cross "$t-v1" one_size A -- $t -x 2 -s 65536 -n "$ITER"
done
run_cross ib_atomic_bw-fetch_add one_size B -- ib_atomic_bw -x 3 -n "$ITER" -A FETCH_AND_ADD
run_cross ib_atomic_lat-cmp_swap one_size A -- ib_atomic_lat -x 3 -n "$ITER" -A CMP_AND_SWAP
run_cross ib_send_bw-UD ud_sizes B -- ib_send_bw -x 3 -c UD -a -n "$ITER"
run_cross ib_write_bw-UC $SIZES_CHECK A -- ib_write_bw -x 3 -c UC "${SIZES[@]}" -n "$ITER"

# A second vdev on each pdev, on a macvlan of the port's interface: steered by its own
# MAC and addresses beside the first vdev. With several interfaces on one segment,
# Linux answers ARP for any of its addresses on every one of them ("ARP flux"), so the
# peer could learn the parent's MAC for the macvlan's address, and the engine, which
# steers by the GID's own MAC, would rightly refuse those frames: arp_ignore=1 makes
# each interface answer for its own addresses only, as on any multi-homed RoCE host.
for ns in "$NS_A" "$NS_B"; do
  ip netns exec "$ns" sysctl -qw net.ipv4.conf.all.arp_ignore=1 net.ipv4.conf.all.arp_announce=2
done
ip -n "$NS_A" link add mA link vA type macvlan mode bridge
ip -n "$NS_B" link add mB link vB type macvlan mode bridge
ip -n "$NS_A" addr add 10.78.0.1/24 dev mA
ip -n "$NS_B" addr add 10.78.0.2/24 dev mB
ip -n "$NS_A" link set mA up
ip -n "$NS_B" link set mB up
ctl_a dev add vdev_am pdev pdev_A netdev mA >/dev/null
ctl_b dev add vdev_bm pdev pdev_B netdev mB >/dev/null
mac_am=$(ip -n "$NS_A" -br link show mA | awk '{print $3}')
if ctl_a dev show vdev_am | grep -q "mac $mac_am"; then pass "macvlan vdev has the macvlan's MAC"; else fail "macvlan vdev MAC"; fi
pingpongs_at_once "macvlan vdev and base vdev on one port at once" \
  vdev_bm vdev_am 10.78.0.2 vdev_b vdev_a 10.77.0.2

# Two vdevs of one pdev (vdev_a on vA, vdev_am on its macvlan): the engine turns frames
# for its own MACs around, as a NIC's eswitch does, instead of sending them away.
hp_ok=0
on_a timeout 60 "$VRDMA_RUN" -d vdev_a -- ibv_rc_pingpong -g 3 -c -n 300 -p 18517 >"$WORK/hp.server" 2>&1 &
hp_pid=$!
wait_tcp_listen on_a 18517
tx_before=$(ctl_b stat show | grep -o 'rx_packets [0-9]*' | head -1 | awk '{print $2}')
on_a timeout 60 "$VRDMA_RUN" -d vdev_am -- ibv_rc_pingpong -g 3 -c -n 300 -p 18517 127.0.0.1 >"$WORK/hp.client" 2>&1 || hp_ok=1
wait "$hp_pid" || hp_ok=1
tx_after=$(ctl_b stat show | grep -o 'rx_packets [0-9]*' | head -1 | awk '{print $2}')
if [[ $hp_ok == 0 ]] && summary "$WORK/hp.server" "$WORK/hp.client" && ((tx_after - tx_before < 50)); then
  pass "two vdevs of one pdev talk through the device (hairpin), not the wire"
else
  fail "hairpin (rc=$hp_ok, host B saw $((tx_after - tx_before)) frames)"; tail -n 3 "$WORK"/hp.*
fi

# The kernel's own traffic on the same interfaces: ping and TCP still work, and it never
# answered RoCE with ICMP port unreachable.
if on_a ping -c 2 -W 2 10.77.0.2 >/dev/null && on_b ping -c 2 -W 2 fd00:77::1 >/dev/null; then
  pass "kernel ping over the port's interface"
else
  fail "kernel ping"
fi
ua=$(icmp_unreach "$NS_A")
ub=$(icmp_unreach "$NS_B")
if [[ $ua == 0 && $ub == 0 ]]; then pass "no ICMP port unreachable for RoCE"; else fail "ICMP unreachable sent: A=$ua B=$ub"; fi
# Steering counters: nothing malformed; on AF_PACKET the engine also sees the kernel's
# frames (counted as not RoCE), on AF_XDP the XDP program keeps them in the kernel.
stats=$(ctl_a stat show)
not_roce_ok=0
if [[ $PORT_TYPE == af_xdp ]]; then
  grep -q "rx_not_roce 0" <<<"$stats" && not_roce_ok=1
else
  grep -qE "rx_not_roce [1-9]" <<<"$stats" && not_roce_ok=1
fi
if [[ $not_roce_ok == 1 ]] && grep -q "rx_malformed 0" <<<"$stats"; then
  pass "port counters: no malformed RoCE, kernel frames where the port type puts them"
else
  fail "port counters: $stats"
fi
# What wakes a sleeping vrdmad when a frame arrives: its event loop watches a packet
# socket (AF_PACKET, 17) on an AF_PACKET port, the PMD's own XDP socket (AF_XDP, 44) on
# an AF_XDP port, whose PMD has no receive interrupt (before, it woke every millisecond).
want_family=17
[[ $PORT_TYPE == af_xdp ]] && want_family=44
for h in A B; do
  pid=$PID_A
  [[ $h == B ]] && pid=$PID_B
  if "$(dirname "$0")/epoll_watches.py" "$pid" | awk -v f="$want_family" '$2 == f {ok = 1} END {exit !ok}'; then
    pass "vrdmad on host $h sleeps on a socket of its port (family $want_family)"
  else
    fail "vrdmad on host $h watches no socket of family $want_family: $("$(dirname "$0")/epoll_watches.py" "$pid" | tr '\n' ' ')"
  fi
done

# vrdmactl pci (local, like dpdk-devbind): a device that does not exist is refused with
# a message naming it (nothing on the machine is touched).
if ! out=$("$VRDMACTL" pci bind 0000:ff:1f.7 2>&1) && grep -q "no PCI device 0000:ff:1f.7" <<<"$out"; then
  pass "vrdmactl pci bind refuses a missing device"
else
  fail "vrdmactl pci bind: $out"
fi

# The capture: tshark finds RoCEv2 (UDP 4791) and RoCEv1 (ethertype 0x8915) and no
# malformed packet (hosts.sh, pcap_count and PCAP_BAD).
# A short capture of its own (the whole run would be gigabytes): host A's daemon again,
# recording, for RC over the three network types, UD, READ and atomics.
stop_pid "$PID_A"
start_vrdmad A --pcap "$WORK/a.pcap"
ctl_a dev add vdev_a pdev pdev_A netdev vA >/dev/null
for g in 3 5 2; do run_cross "pcap-rc-gid$g" summary B -- ibv_rc_pingpong -g $g -c -n 20; done
run_cross pcap-ud summary A -- ibv_ud_pingpong -g 3 -c -n 20
run_cross pcap-read one_size B -- ib_read_bw -x 3 -s 8192 -n 20
run_cross pcap-atomic one_size A -- ib_atomic_bw -x 3 -n 20
stop_pid "$PID_A"
PID_A=""
total=$(pcap_count "$WORK/a.pcap") || total=0
v2=$(pcap_count "$WORK/a.pcap" "udp.dstport == 4791 && infiniband") || v2=0
v1=$(pcap_count "$WORK/a.pcap" "eth.type == 0x8915 && infiniband") || v1=0
bad=$(pcap_count "$WORK/a.pcap" "$PCAP_BAD") || bad=-1
echo "    pcap: $total frames, $v2 RoCEv2, $v1 RoCEv1, $bad malformed"
if [[ $v2 -gt 100 && $v1 -gt 20 && $bad == 0 ]]; then
  pass "tshark reads the pcap: RoCEv2 and RoCEv1, nothing malformed"
else
  fail "pcap check (v2=$v2 v1=$v1 bad=$bad)"
  pcap_frames "$WORK/a.pcap" "$PCAP_BAD" | head -5
fi
finish
