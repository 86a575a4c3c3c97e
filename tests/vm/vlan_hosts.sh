#!/usr/bin/env bash
# Two hosts whose vdevs sit on 802.1Q VLAN interfaces: run inside a guest by
# vlan_guest.sh (this machine's kernel has no 8021q). hosts.sh's namespaces A and B on a
# veth pair, a vrdmad in each on an AF_PACKET port on its veth end, and VLAN 100 on each
# end (vA.100 10.81.0.1, vB.100 10.81.0.2, fd00:81::1/2) with the vdevs bound to it:
# vdev_a and vdev_b. The vdevs' GIDs carry the VLAN, every RoCE frame on the wire is
# tagged 100 (host A's pcap, read by tshark), and the data checker, the pingpongs and
# perftest run across over RoCEv2/IPv4, RoCEv2/IPv6 and RoCEv1. A second vdev on the
# untagged parent runs beside them.
source "$(dirname "$0")/../integration/hosts.sh"
setup_link
for h in A B; do
  ns="$NS_A" n=1
  [[ $h == B ]] && ns="$NS_B" n=2
  ip -n "$ns" link add link "v$h" name "v$h.100" type vlan id 100
  ip -n "$ns" addr add "10.81.0.$n/24" dev "v$h.100"
  ip -n "$ns" addr add "fd00:81::$n/64" dev "v$h.100" nodad
  ip -n "$ns" link set "v$h.100" up
  # Each interface answers ARP for its own addresses only (see two_host.sh).
  ip netns exec "$ns" sysctl -qw net.ipv4.conf.all.arp_ignore=1 net.ipv4.conf.all.arp_announce=2
done
for _ in $(seq 50); do
  ip -n "$NS_A" -6 addr show dev vA.100 | grep -q tentative || ip -n "$NS_B" -6 addr show dev vB.100 |
    grep -q tentative || break
  sleep 0.1
done
start_vrdmad A --pcap "$WORK/a.pcap"
start_vrdmad B
ctl_a dev add vdev_a pdev pdev_A netdev vA.100 >/dev/null
ctl_b dev add vdev_b pdev pdev_B netdev vB.100 >/dev/null
ctl_a dev add vdev_a0 pdev pdev_A netdev vA >/dev/null
ctl_b dev add vdev_b0 pdev pdev_B netdev vB >/dev/null

# The GID table: the VLAN interface's addresses, each with VLAN 100 (vrdmactl dev show).
gids=$(ctl_a dev show vdev_a)
echo "$gids" | grep -E "^ *gid" | sed 's/^/    /'
if grep -qE "gid +3 +::ffff:10.81.0.1 +RoCEv2 .*vlan 100" <<<"$gids" &&
   grep -qE "gid +5 +fd00:81::1 +RoCEv2 .*vlan 100" <<<"$gids"; then
  pass "the vdev's GIDs are the VLAN interface's addresses, on VLAN 100"
else
  fail "GID table of the VLAN vdev"
fi
declare -A GID=([v2_ipv4]=3 [v2_ipv6]=5 [v1]=2)

for kind in v2_ipv4 v2_ipv6 v1; do
  if VRDMA_GID_INDEX=${GID[$kind]} VRDMA_SOCKET="$SOCK_A:$SOCK_B" VRDMACTL="$VRDMACTL" \
       timeout 300 "$VRDMA_RUN" -- "$VRDMA_BUILD/tests/integration/verbs_check" --gtest_color=no \
       --gtest_filter='PostApis/*:UdTest.*' >"$WORK/verbs_check-$kind.log" 2>&1; then
    pass "verbs_check data tests over VLAN 100 ($kind)"
  else
    fail "verbs_check over VLAN 100 ($kind)"
    grep -E "Failure|FAILED|Expected|Which is" "$WORK/verbs_check-$kind.log" | head -20
  fi
done
for kind in v2_ipv4 v2_ipv6 v1; do
  g=${GID[$kind]}
  run_cross "rc_pingpong-vlan-$kind" summary A -- ibv_rc_pingpong -g "$g" -c -s 65536 -n 100
done
run_cross ud_pingpong-vlan summary B -- ibv_ud_pingpong -g 3 -c -s 2048 -n 100
# perftest in this emulated guest: with an emulated clocksource, a run often ended
# without its report ("Correlation coefficient r^2: 0.57 < 0.9", "Can't produce a report",
# exit 1: perftest checks its TSC against gettimeofday, perftest's get_clock.c); the
# guest now keeps time by its TSC (tests/vm/guest.sh) and 15 of 15 cases passed on the
# first run where 4 of 4 perftest cases had failed 3 runs each. The tests that can (-e;
# ib_write_bw cannot) sleep on completion events rather than spin on the 2 vCPUs. A
# failed case still runs again, up to 4 runs in all, each failed run said with RETRY;
# one run must pass, result row checked (docs/testing.md, vm_vlan_guest).
PERFTEST_RUNS=4
run_cross_retried() {
  local before=$FAILURES run
  for ((run = 1; run < PERFTEST_RUNS; ++run)); do
    run_cross "$@" >"$WORK/$1.run$run"
    if ((FAILURES == before)); then
      cat "$WORK/$1.run$run"
      return 0
    fi
    FAILURES=$before
    # Not a FAIL line: vlan_guest.sh counts the guest's PASS and FAIL lines as its cases.
    sed "s/^FAIL /RETRY (run $run of $PERFTEST_RUNS failed) /" "$WORK/$1.run$run"
  done
  run_cross "$@"
}
run_cross_retried ib_write_bw-vlan one_size B -- ib_write_bw -x 3 -s 262144 -n 100
run_cross_retried ib_read_bw-vlan one_size A -- ib_read_bw -e -x 3 -s 65536 -n 100
run_cross_retried ib_send_bw-vlan-v1 one_size B -- ib_send_bw -e -x 2 -s 65536 -n 100
run_cross_retried ib_atomic_bw-vlan one_size A -- ib_atomic_bw -e -x 3 -n 100 -A FETCH_AND_ADD

# The untagged parent's vdevs beside the VLAN's, on the same pdevs.
pingpongs_at_once "VLAN vdev and untagged vdev on one port at once" \
  vdev_b0 vdev_a0 10.77.0.2 vdev_b vdev_a 10.81.0.2
if on_a ping -c 2 -W 2 10.81.0.2 >/dev/null && on_b ping -c 2 -W 2 fd00:81::1 >/dev/null; then
  pass "kernel ping over the VLAN interfaces"
else
  fail "kernel ping over VLAN 100"
fi

# The wire: host A's capture. RoCE of the VLAN vdevs is tagged 100, the untagged vdev's
# is not, and tshark finds nothing malformed (hosts.sh, pcap_count).
stop_pid "$PID_A"
PID_A=""
count() { pcap_count "$WORK/a.pcap" "$1"; }
tagged=$(count "vlan.id == 100 && infiniband")
tagged_v1=$(count "vlan.id == 100 && vlan.etype == 0x8915 && infiniband")
tagged_v6=$(count "vlan.id == 100 && ipv6 && infiniband")
untagged=$(count "!vlan && infiniband")
untagged_vlan_ip=$(count "!vlan && infiniband && (ip.addr == 10.81.0.0/24 || ipv6.addr == fd00:81::/64)")
bad=$(count "$PCAP_BAD")
echo "    pcap: $tagged RoCE frames on VLAN 100 ($tagged_v1 RoCEv1, $tagged_v6 over IPv6), $untagged untagged, $bad malformed"
if [[ $tagged -gt 1000 && $tagged_v1 -gt 100 && $tagged_v6 -gt 100 && $untagged -gt 100 &&
      $untagged_vlan_ip == 0 && $bad == 0 ]]; then
  pass "tshark: the VLAN vdevs' RoCE is tagged 100 (v1, v2 over IPv4 and IPv6), nothing malformed"
else
  fail "pcap check (tagged=$tagged v1=$tagged_v1 v6=$tagged_v6 untagged=$untagged untagged-with-VLAN-address=$untagged_vlan_ip bad=$bad)"
fi
finish
