#!/usr/bin/env bash
# RDMA-CM across two hosts (issue 13): a vrdmad in each of two namespaces on AF_PACKET
# ports, joined through a bridge namespace (so that the wire can lose frames), Debian's
# unmodified rdmacm-utils and perftest -R between host A's vdev (10.77.0.1, fd00:77::1)
# and host B's (10.77.0.2, fd00:77::2): the CM's MADs cross the veth through each
# daemon's shared QP1, addresses resolve through the kernel's neighbour tables.
WIRE=bridge
source "$(dirname "$0")/hosts.sh"
setup_two_hosts

on_host() { if [[ $1 == A ]]; then shift; on_a "$@"; else shift; on_b "$@"; fi; }
# Line-buffered, so that a program killed by its timeout still shows what it printed.
# PRELOAD, when set, is preloaded after libvrdma.so (librspreload.so for TCP programs).
run_on() {
  local h=$1
  shift
  on_host "$h" ${PRELOAD:+env "LD_PRELOAD=$PRELOAD"} timeout "${RUN_TIMEOUT:-120}" stdbuf -oL -eL \
    "$VRDMA_RUN" -- "$@"
}

# cm_cross NAME CHECK SERVER_HOST -- SERVER ARGS... -- CLIENT ARGS...: the server on
# SERVER_HOST, the client on the other host; both exit 0 and CHECK holds.
cm_cross() {
  local name=$1 check=$2 sh=$3 ch=B
  [[ $sh == B ]] && ch=A
  shift 4
  local server=() client=()
  while [[ $1 != -- ]]; do server+=("$1"); shift; done
  shift
  client=("$@")
  local srv="$WORK/$name.server" cli="$WORK/$name.client" crc=1 src=0
  run_on "$sh" "${server[@]}" >"$srv" 2>&1 &
  local spid=$!
  if [[ $sh == A ]]; then wait_listener ctl_a "$spid"; else wait_listener ctl_b "$spid"; fi
  # What both CMs hold 30 s into a client attempt, should it hang (shown on failure).
  ( sleep 30; { ctl_a res show cm_id; ctl_b res show cm_id; ctl_a stat show; ctl_b stat show; } 2>&1 |
    grep -v "^pdev\|^dev" >"$WORK/$name.cm_state" ) &
  local state_pid=$!
  for _ in $(seq 20); do
    crc=0
    run_on "$ch" "${client[@]}" >"$cli" 2>&1 || crc=$?
    ((crc != 0)) || break
    kill -0 "$spid" 2>/dev/null || break
    grep -q "REJECTED\|event bl blka 8\|reject" "$cli" || break
    { echo "# attempt rejected:"; cat "$cli"; } >>"$cli.retries"
    sleep 0.5
  done
  wait "$spid" || src=$?
  kill "$state_pid" 2>/dev/null || true
  wait "$state_pid" 2>/dev/null || true
  # Under loss: a DREQ the wire lost after the client destroyed its ID is not sent again
  # (nor is it by Linux, whose cm_destroy_id cancels it), so the server may wait for a
  # disconnect that never comes. With LOST_DREQ_OK the server's timeout ends that wait
  # and the case stands on the data both sides checked.
  if [[ -n ${LOST_DREQ_OK:-} && $src == 124 && $crc == 0 ]] && "$check" "$srv" "$cli"; then
    pass "$name (its server then waited for a DREQ the wire lost)"
    return 0
  fi
  if [[ $crc -ne 0 || $src -ne 0 ]]; then
    fail "$name (server rc=$src client rc=$crc)"
    [[ -f $cli.retries ]] && sed 's/^/    earlier client attempts: /' "$cli.retries" | tail -12
    [[ -f $WORK/$name.cm_state ]] && sed 's/^/    after 30 s: /' "$WORK/$name.cm_state"
    echo "    server output: $(wc -c <"$srv") bytes, client output: $(wc -c <"$cli") bytes"
    sed 's/^/    server: /' "$srv" | tail -8
    sed 's/^/    client: /' "$cli" | tail -8
    return 0
  fi
  if "$check" "$srv" "$cli"; then pass "$name"; else fail "$name (output check)"; tail -n 8 "$srv" "$cli"; fi
}

rping_ok() {
  local n=$1 srv=$2 cli=$3
  [[ $(grep -c "ping data: rdma-ping-" "$srv") -ge $n && $(grep -c "ping data: rdma-ping-" "$cli") -ge $n ]] &&
    ! grep -qi "mismatch" "$cli"
}
rping_10() { rping_ok 10 "$@"; }
done_ok() { grep -q "test complete" "$1" && grep -q "test complete" "$2" && grep -q "return status 0" "$2"; }
bw_ok() { grep -qE "^ *65536 +200 +[0-9.]+" "$2" && grep -q "rdma_cm QPs.*ON" "$2"; }
rstream_ok() { grep -qE "^custom +64k +100 " "$1" && grep -qE "^custom +64k +100 " "$2"; }

# Each host as the server, over RoCEv2/IPv4 and RoCEv2/IPv6.
cm_cross rping_ipv4_serverA rping_10 A -- rping -s -a 10.77.0.1 -p 7181 -v -V -C 10 -- \
  rping -c -a 10.77.0.1 -p 7181 -v -V -C 10
cm_cross rping_ipv4_serverB rping_10 B -- rping -s -a 10.77.0.2 -p 7182 -v -V -C 10 -S 65000 -- \
  rping -c -a 10.77.0.2 -p 7182 -v -V -C 10 -S 65000
cm_cross rping_ipv6 rping_10 A -- rping -s -a fd00:77::1 -p 7183 -v -V -C 10 -- \
  rping -c -a fd00:77::1 -p 7183 -v -V -C 10
cm_cross ucmatose_c20 done_ok B -- ucmatose -c 20 -C 10 -- ucmatose -s 10.77.0.2 -c 20 -C 10
cm_cross udaddy done_ok A -- udaddy -C 10 -- udaddy -s 10.77.0.1 -C 10
cm_cross rstream rstream_ok B -- rstream -S 65536 -C 100 -- rstream -s 10.77.0.2 -S 65536 -C 100
rcopy_case rcopy ctl_a "run_on A" "run_on B" 10.77.0.1 7196 20
ep_ok() { grep -q "rdma_server: end 0" "$1" && grep -q "rdma_client: end 0" "$2"; }
cm_cross rdma_server_client ep_ok A -- rdma_server -s 10.77.0.1 -p 7189 -- rdma_client -s 10.77.0.1 -p 7189
cm_cross rdma_server_client_ipv6 ep_ok B -- rdma_server -s fd00:77::2 -p 7189 -- rdma_client -s fd00:77::2 -p 7189
nc_over_rsockets nc_rspreload ctl_a "run_on A" "run_on B" 10.77.0.1 10.77.0.2 7170 32
tcp_over_rsockets tcp_rspreload_ipv4 ctl_b "run_on B" "run_on A" 10.77.0.2 10.77.0.1 7197 32
tcp_over_rsockets tcp_rspreload_ipv6 ctl_a "run_on A" "run_on B" fd00:77::1 fd00:77::2 7198 16
cm_cross ib_send_bw_R bw_ok A -- ib_send_bw -R -s 65536 -n 200 -p 7184 -- \
  ib_send_bw -R -s 65536 -n 200 -p 7184 10.77.0.1
cm_cross ib_write_bw_R bw_ok B -- ib_write_bw -R -s 65536 -n 200 -p 7185 -- \
  ib_write_bw -R -s 65536 -n 200 -p 7185 10.77.0.2

# The shared QP1 at work: a second vdev on each pdev, on a macvlan of the port's interface
# (arp_ignore as in two_host.sh), and on host A two servers on the same port, one on each
# vdev's address. Host B connects to both at once, 10 connections each, from its two
# vdevs: every REQ reaches the listener of the address it was sent to (a REQ misrouted
# to the other vdev finds no listener for its address and is rejected, and that server
# would wait for connections that never come).
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
run_on A ucmatose -b 10.77.0.1 -p 7187 -c 10 -C 5 >"$WORK/two.server1" 2>&1 &
s1=$!
run_on A ucmatose -b 10.78.0.1 -p 7187 -c 10 -C 5 >"$WORK/two.server2" 2>&1 &
s2=$!
wait_listener ctl_a "$s2" 2
run_on B ucmatose -s 10.77.0.1 -b 10.77.0.2 -p 7187 -c 10 -C 5 >"$WORK/two.client1" 2>&1 &
c1=$!
run_on B ucmatose -s 10.78.0.1 -b 10.78.0.2 -p 7187 -c 10 -C 5 >"$WORK/two.client2" 2>&1 &
c2=$!
rc=0
for p in $s1 $s2 $c1 $c2; do wait "$p" || rc=$((rc + 1)); done
if [[ $rc == 0 ]] && grep -q "test complete" "$WORK/two.server1" && grep -q "test complete" "$WORK/two.server2" &&
   grep -q "return status 0" "$WORK/two.client1" && grep -q "return status 0" "$WORK/two.client2"; then
  pass "two vdevs of one pdev listen on one port: each address's 10 connections reach its own"
else
  fail "two listeners on one port ($rc failed)"
  tail -n 4 "$WORK"/two.server1 "$WORK"/two.server2 "$WORK"/two.client1 "$WORK"/two.client2
fi

# 5% of the frames lost each way: connections still establish (the CM resends REQ,
# REP and DREQ on its timeouts, as Linux's cm.c), and their data arrives intact.
wire_loss 5
cm_cross "ucmatose_c10_5pct_loss" done_ok A -- ucmatose -c 10 -C 5 -- ucmatose -s 10.77.0.1 -c 10 -C 5
LOST_DREQ_OK=1 RUN_TIMEOUT=60 cm_cross "rping_5pct_loss" rping_10 B -- rping -s -a 10.77.0.2 -p 7186 -v -V -C 10 -- \
  rping -c -a 10.77.0.2 -p 7186 -v -V -C 10
lost=$(($(wire_dropped a) + $(wire_dropped b)))
wire_loss 0
if [[ $lost -gt 0 ]]; then pass "the wire lost $lost frames meanwhile"; else fail "no frame was lost"; fi

# A REQ to a port no one listens on: REJ (invalid service ID), the client sees REJECTED.
out=$(run_on B rping -c -a 10.77.0.1 -p 7199 -C 1 2>&1 || true)
if grep -q "REJECTED" <<<"$out"; then pass "REQ to no listener rejected"; else fail "REQ to no listener: $out"; fi
# An on-link address no neighbour answers for: the kernel's resolution fails, the
# application hears ADDR_ERROR (cm_events.py through Debian's librdmacm).
out=$(run_on B /usr/bin/python3 "$(dirname "$0")/cm_events.py" addr_error 10.77.0.2 10.77.0.99 2>&1 |
  grep -E "^(RDMA_CM_EVENT_|done$)" | paste -sd' ' || true)
if [[ $out == "RDMA_CM_EVENT_ADDR_ERROR done" ]]; then
  pass "ADDR_ERROR for an on-link address no neighbour answers"
else
  fail "addr_error across hosts: $out"
fi

# Hostile MADs from the wire: host B sends host A's QP1 garbage, short and long MADs,
# and CM MADs of every attribute with random bodies (hostile_mads.cc), 16000 in all, while
# an rping between the hosts runs. A's daemon counts and drops them (its CM row in `stat
# show`), its connection carries on, and a new one is made after. Sending to QP1 takes
# the GSI's controlled Q_Key: an unprivileged user the test creates is refused it.
source "$(dirname "$0")/tenant_lib.sh"
HOSTILE="$VRDMA_BUILD/tests/integration/hostile_mads"
chmod 0755 "$WORK"
mallory=$(tenant_user mallory)
rc=0
out=$(ip netns exec "$NS_B" setpriv --reuid "$mallory" --regid "$mallory" --clear-groups \
  --inh-caps=-all --bounding-set=-all -- env VRDMA_SOCKET="$SOCK_B" \
  "$VRDMA_RUN" -d vdev_b -- "$HOSTILE" vdev_b 3 10.77.0.1 1 2>&1) || rc=$?
if [[ $rc == 3 && $out == *qkey_refused* ]]; then
  pass "an unprivileged tenant cannot take the GSI's Q_Key to send to QP1"
else
  fail "unprivileged tenant and the GSI Q_Key (rc=$rc): $out"
fi
a_cm() { ctl_a stat show | sed -n "s/^cm $1:.* $2 \([0-9]*\).*/\1/p"; }
malformed0=$(a_cm "dev vdev_a" drop_malformed) unknown0=$(a_cm "dev vdev_a" drop_unknown_comm)
badlen0=$(a_cm "pdev pdev_A" qp1_rx_bad_length)
run_on A rping -s -a 10.77.0.1 -p 7190 -v -V -C 1000 >"$WORK/hostile.server" 2>&1 &
hs=$!
run_on B "$HOSTILE" vdev_b 3 10.77.0.1 1000 >"$WORK/hostile.out" 2>&1 &
hm=$!
wait_listener ctl_a "$hs"
run_on B rping -c -a 10.77.0.1 -p 7190 -v -V -C 1000 >"$WORK/hostile.client" 2>&1 &
hc=$!
rc=0 hrc=0
wait "$hm" || rc=$?
out=$(cat "$WORK/hostile.out")
wait "$hs" || hrc=$?
wait "$hc" || hrc=$((hrc + $?))
malformed1=$(a_cm "dev vdev_a" drop_malformed) unknown1=$(a_cm "dev vdev_a" drop_unknown_comm)
badlen1=$(a_cm "pdev pdev_A" qp1_rx_bad_length)
if [[ $rc == 0 && $out == "sent 16000" && $hrc == 0 ]] && rping_ok 1000 "$WORK/hostile.server" "$WORK/hostile.client" &&
   ((malformed1 > malformed0 && unknown1 > unknown0 && badlen1 > badlen0)) && kill -0 "$PID_A"; then
  pass "16000 hostile MADs counted and dropped (malformed +$((malformed1 - malformed0)), unknown connection +$((unknown1 - unknown0)), bad length +$((badlen1 - badlen0))); rping carried on"
else
  fail "hostile MADs: sender rc=$rc '$out', rping rc=$hrc, malformed $malformed0->$malformed1," \
    "unknown $unknown0->$unknown1, bad length $badlen0->$badlen1"
  tail -n 3 "$WORK/hostile.server" "$WORK/hostile.client"
fi
cm_cross rping_after_hostile rping_10 A -- rping -s -a 10.77.0.1 -p 7195 -v -V -C 10 -- \
  rping -c -a 10.77.0.1 -p 7195 -v -V -C 10

# RoCEv1, and the CM's MADs on the wire. Host A's daemon again, recording (a capture of
# the whole run would be large). Host B's vdev set to RoCEv1 (`dev set roce_mode v1`, as
# Linux's configfs default_roce_mode): the connections it starts take its RoCEv1 GIDs,
# IPv4 and IPv6, and host A's CM answers each REQ with the GID type it arrived on; then
# one RoCEv2 connection. tshark reads every CM MAD of the handshakes and teardowns.
if kill -0 "$PID_A" 2>/dev/null; then pass "vrdmad on host A alive"; else fail "vrdmad on host A died"; fi
stop_pid "$PID_A"
start_vrdmad A --pcap "$WORK/a.pcap"
ctl_a dev add vdev_a pdev pdev_A netdev vA >/dev/null
ctl_b dev set vdev_b roce_mode v1 >/dev/null
cm_cross rping_roce_v1_ipv4 rping_10 A -- rping -s -a 10.77.0.1 -p 7191 -v -V -C 10 -- \
  rping -c -a 10.77.0.1 -p 7191 -v -V -C 10
cm_cross rping_roce_v1_ipv6 rping_10 A -- rping -s -a fd00:77::1 -p 7192 -v -V -C 10 -- \
  rping -c -a fd00:77::1 -p 7192 -v -V -C 10
cm_cross ib_write_bw_R_roce_v1 bw_ok A -- ib_write_bw -R -s 65536 -n 200 -p 7193 -- \
  ib_write_bw -R -s 65536 -n 200 -p 7193 10.77.0.1
ctl_b dev set vdev_b roce_mode v2 >/dev/null
cm_cross rping_roce_v2_pcap rping_10 A -- rping -s -a 10.77.0.1 -p 7194 -v -V -C 10 -- \
  rping -c -a 10.77.0.1 -p 7194 -v -V -C 10
stop_pid "$PID_A"
PID_A=""
v1="eth.type == 0x8915 && infiniband"
v2="udp.dstport == 4791 && infiniband"
mad="infiniband.bth.destqp == 1 && infiniband.mad.mgmtclass == 0x07"
why=""
# attribute IDs (IBTA 12.6): REQ 0x10, REP 0x13, RTU 0x14, DREQ 0x15, DREP 0x16.
for t in "v1:2" "v2:1"; do
  net=${t%%:*} conns=${t#*:}
  filter=$v1
  [[ $net == v2 ]] && filter=$v2
  for a in 0x0010:REQ 0x0013:REP 0x0014:RTU 0x0015:DREQ 0x0016:DREP; do
    n=$(pcap_count "$WORK/a.pcap" "$filter && $mad && infiniband.mad.attributeid == ${a%%:*}") || n=0
    ((n >= conns)) || why+=" RoCE$net ${a#*:} x$n (want $conns)"
  done
done
# The data of the RoCEv1 connections went as RoCEv1 (not just their MADs).
data_v1=$(pcap_count "$WORK/a.pcap" "$v1 && infiniband.bth.destqp != 1") || data_v1=0
((data_v1 > 100)) || why+=" $data_v1 RoCEv1 data frames"
bad=$(pcap_count "$WORK/a.pcap" "$PCAP_BAD") || bad=-1
[[ $bad == 0 ]] || why+=" $bad malformed frames"
if [[ -z $why ]]; then
  pass "pcap: every CM MAD of the RoCEv1 and RoCEv2 connections, RoCEv1 data, nothing malformed"
else
  fail "pcap of the CM:$why"
  pcap_frames "$WORK/a.pcap" "$mad" | head -20
fi

# The rest of the tools, over RoCEv2/IPv6 and RoCEv1 (the cases above are RoCEv2/IPv4,
# with rping and tcp_echo over IPv6 and rping and ib_write_bw over RoCEv1 too): host A
# serves each, host B connects, B's vdev in the mode (A answers in the REQ's). Same
# checks as above; the pcap case shows the RoCEv1 connections go as RoCEv1.
lat_ok() { grep -qE "^ *8 +1000 +[0-9.]+" "$2" && grep -q "rdma_cm QPs.*ON" "$2"; }
in_mode() {  # TAG ADDRESS_A ADDRESS_B
  local tag=$1 a=$2 b=$3
  cm_cross "ucmatose_$tag" done_ok A -- ucmatose -b "$a" -c 10 -C 5 -- ucmatose -s "$a" -b "$b" -c 10 -C 5
  cm_cross "udaddy_$tag" done_ok A -- udaddy -b "$a" -C 10 -- udaddy -s "$a" -b "$b" -C 10
  cm_cross "rstream_$tag" rstream_ok A -- rstream -b "$a" -S 65536 -C 100 -- \
    rstream -s "$a" -b "$b" -S 65536 -C 100
  cm_cross "riostream_$tag" rstream_ok A -- riostream -b "$a" -S 65536 -C 100 -- \
    riostream -s "$a" -b "$b" -S 65536 -C 100
  cm_cross "rdma_server_client_$tag" ep_ok A -- rdma_server -s "$a" -p 7176 -- rdma_client -s "$a" -p 7176
  tcp_over_rsockets "tcp_rspreload_$tag" ctl_a "run_on A" "run_on B" "$a" "$b" 7177 8
  # perftest 4.5's -R client resolves the server's name as IPv4 only ("Address family
  # for hostname not supported" for an IPv6 address, on any device).
  [[ $a == *:* ]] && return 0
  local t
  for t in send write read; do
    cm_cross "ib_${t}_bw_R_$tag" bw_ok A -- "ib_${t}_bw" -R -s 65536 -n 200 -p 7178 -- \
      "ib_${t}_bw" -R -s 65536 -n 200 -p 7178 "$a"
  done
  cm_cross "ib_send_lat_R_$tag" lat_ok A -- ib_send_lat -R -s 8 -n 1000 -p 7179 -- \
    ib_send_lat -R -s 8 -n 1000 -p 7179 "$a"
}
start_vrdmad A
ctl_a dev add vdev_a pdev pdev_A netdev vA >/dev/null
in_mode roce_v2_ipv6 fd00:77::1 fd00:77::2
ctl_b dev set vdev_b roce_mode v1 >/dev/null
in_mode roce_v1 10.77.0.1 10.77.0.2
ctl_b dev set vdev_b roce_mode v2 >/dev/null

if kill -0 "$PID_A" 2>/dev/null; then pass "vrdmad on host A alive"; else fail "vrdmad on host A died"; fi
if kill -0 "$PID_B" 2>/dev/null; then pass "vrdmad on host B alive"; else fail "vrdmad on host B died"; fi
finish
