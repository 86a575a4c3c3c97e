#!/usr/bin/env bash
# The exception path: host A's port is left to vrdmad as a NIC on vfio-pci would be (an
# AF_PACKET port on vA, which keeps no address, answers no ARP and runs no IPv6), and
# vrdmad gives the kernel a TAP interface kA with the port's MAC (`kernel=kA`): the
# kernel's ARP, neighbour discovery, ping and TCP go through vrdmad to the wire, RoCE
# goes to the engine. Host A's addresses and vdev are on kA; host B is a plain host.
source "$(dirname "$0")/hosts.sh"
setup_link
ip -n "$NS_A" addr flush dev vA
ip -n "$NS_A" link set vA arp off
ip netns exec "$NS_A" sysctl -qw net.ipv6.conf.vA.disable_ipv6=1
PDEV_OPTIONS=",kernel=kA" start_vrdmad A
start_vrdmad B
for _ in $(seq 50); do ip -n "$NS_A" link show kA >/dev/null 2>&1 && break; sleep 0.1; done
ip -n "$NS_A" link set kA up
ip -n "$NS_A" addr add 10.77.0.1/24 dev kA
ip -n "$NS_A" addr add fd00:77::1/64 dev kA nodad
for _ in $(seq 50); do ip -n "$NS_A" -6 addr show dev kA | grep -q tentative || break; sleep 0.1; done
ctl_a dev add vdev_a pdev pdev_A netdev kA >/dev/null
ctl_b dev add vdev_b pdev pdev_B netdev vB >/dev/null

# The port's MAC is the kernel interface's: what the peer learns by ARP and ND.
mac_v=$(ip -n "$NS_A" -br link show vA | awk '{print $3}')
mac_k=$(ip -n "$NS_A" -br link show kA | awk '{print $3}')
if [[ -n "$mac_v" && "$mac_v" == "$mac_k" ]]; then pass "kA has the port's MAC ($mac_k)"; else fail "kA MAC $mac_k, port MAC $mac_v"; fi
# ... and an MTU whose frames the port moves (AF_PACKET here: below its ring frame).
mtu_k=$(ip netns exec "$NS_A" cat /sys/class/net/kA/mtu)
if ((mtu_k >= 4096 && mtu_k < MTU)); then pass "kA has the port's MTU ($mtu_k)"; else fail "kA MTU $mtu_k"; fi

# The kernel's own traffic both ways through the exception path.
if on_a ping -c 3 -i 0.2 -W 2 10.77.0.2 >/dev/null && on_b ping -c 3 -i 0.2 -W 2 10.77.0.1 >/dev/null &&
   on_a ping -6 -c 3 -i 0.2 -W 2 fd00:77::2 >/dev/null && on_b ping -6 -c 3 -i 0.2 -W 2 fd00:77::1 >/dev/null; then
  pass "ping over IPv4 and IPv6 through the exception path"
else
  fail "ping through the exception path"
fi
learned=$(ip -n "$NS_B" neigh show 10.77.0.1 dev vB | awk '{print $3}')
if [[ "$learned" == "$mac_k" ]]; then pass "host B resolved A's address by ARP to the port's MAC"; else fail "host B learned '$learned' for 10.77.0.1"; fi
on_b timeout 20 iperf3 -s -1 -B 10.77.0.2 -p 5201 >/dev/null 2>&1 &
srv=$!
sleep 0.3
if on_a timeout 20 iperf3 -c 10.77.0.2 -p 5201 -n 8M >"$WORK/iperf3.log" 2>&1; then
  pass "TCP (iperf3, 8 MB) from kA through vrdmad"
else
  fail "TCP through the exception path"; tail -5 "$WORK/iperf3.log"
fi
wait "$srv" 2>/dev/null || true

# RoCE between vdev_a (on kA) and vdev_b, with A's neighbour entries gone: the engine
# resolves B's MAC through the kernel, whose solicitation goes out through vrdmad.
ip -n "$NS_A" neigh flush dev kA
declare -A GID=([v2_ipv4]=3 [v2_ipv6]=5 [v1]=2)
for kind in v2_ipv4 v2_ipv6 v1; do
  if VRDMA_GID_INDEX=${GID[$kind]} VRDMA_SOCKET="$SOCK_A:$SOCK_B" VRDMACTL="$VRDMACTL" \
       timeout 300 "$VRDMA_RUN" -- "$VRDMA_BUILD/tests/integration/verbs_check" --gtest_color=no \
       --gtest_filter='PostApis/RcTest.*:*Ud*' >"$WORK/verbs_check-$kind.log" 2>&1; then
    pass "verbs_check across hosts ($kind)"
  else
    fail "verbs_check across hosts ($kind)"; grep -E "Failure|FAILED|Expected|Which is" "$WORK/verbs_check-$kind.log" | head -20
  fi
done
run_cross rc_pingpong-v2_ipv4 summary A -- ibv_rc_pingpong -g 3 -c -s 65536 -n 200
run_cross rc_pingpong-v2_ipv6 summary B -- ibv_rc_pingpong -g 5 -c -s 8192 -n 200
run_cross ud_pingpong-v2_ipv4 summary B -- ibv_ud_pingpong -g 3 -c -s 2048 -n 200
run_cross ib_write_bw one_size A -- ib_write_bw -x 3 -s 65536 -n 500
run_cross ib_read_lat one_size B -- ib_read_lat -x 3 -s 4096 -n 500

# Nothing crossed the wrong way: the engine saw no kernel frame, the kernel no RoCE
# (so it sent no ICMP unreachable for it), and the exception path carried both ways.
declare -A C
while read -r k v; do C[$k]=$v; done < <(ctl_a stat show pdev_A | tr ' ' '\n' | sed -n '3,$p' | paste - -)
echo "    pdev_A: to_kernel ${C[to_kernel]:-?} from_kernel ${C[from_kernel]:-?} rx_not_roce ${C[rx_not_roce]:-?} kernel_dropped ${C[kernel_dropped]:-?}"
if [[ ${C[to_kernel]:-0} -gt 0 && ${C[from_kernel]:-0} -gt 0 && ${C[rx_not_roce]:-1} == 0 ]]; then
  pass "exception path counters: kernel frames both ways, none into the engine"
else
  fail "exception path counters"
fi
if [[ $(icmp_unreach "$NS_A") == 0 ]]; then pass "host A's kernel sent no ICMP unreachable"; else fail "host A sent ICMP unreachable"; fi
finish
