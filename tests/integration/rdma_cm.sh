#!/usr/bin/env bash
# Debian's unmodified librdmacm and rdmacm-utils between two vdevs of one vrdmad (issue
# 13): connections made by the IBTA CM through the pdev's shared QP1, addressed by IP.
# vdev_a is 10.77.0.1 / fd00:77::1 on vrd0, vdev_b 10.77.0.2 / fd00:77::2 on vrd1.
source "$(dirname "$0")/lib.sh"
# At debug level vrdmad logs each refused CM command with its errno (cm_command_refused),
# which a failure below prints.
VRDMAD_EXTRA_ARGS="${VRDMAD_EXTRA_ARGS:---log-level debug}"
setup_default

# Line-buffered, so that a program killed by its timeout still shows what it printed.
# PRELOAD, when set, is preloaded after libvrdma.so (librspreload.so for TCP programs).
run() { in_ns ${PRELOAD:+env "LD_PRELOAD=$PRELOAD"} timeout -k 10 120 stdbuf -oL -eL "$VRDMA_RUN" -- "$@"; }

# A server in the background, a client in the foreground; both must exit 0 and CHECK
# (a function of the two output files) must hold.
cm_pair() {  # NAME CHECK -- SERVER ARGS... -- CLIENT ARGS...
  local name=$1 check=$2
  shift 3
  local server=() client=()
  while [[ $1 != -- ]]; do server+=("$1"); shift; done
  shift
  client=("$@")
  local srv="$WORK/$name.server" cli="$WORK/$name.client"
  run "${server[@]}" >"$srv" 2>&1 &
  local spid=$! crc=1 src=0
  # The client starts once the server listens (its ID in state LISTEN). A client that
  # came too early would be rejected, and perftest's then retries its connection and
  # dies with it established, leaving a server waiting for that client's data for good.
  # The port the server listens on (rping's and perftest's -p).
  local port="" i
  for ((i = 0; i < ${#server[@]} - 1; i++)); do [[ ${server[i]} == -p ]] && port=${server[i + 1]}; done
  wait_listener ctl "$spid" 1 "$port"
  # What the CM holds 30 s into a client attempt, should it hang (shown on failure).
  ( sleep 30; { ctl res show cm_id; ctl stat show | grep "^cm "; } >"$WORK/$name.cm_state" 2>&1 ) &
  local state_pid=$!
  for _ in $(seq 20); do
    crc=0
    run "${client[@]}" >"$cli" 2>&1 || crc=$?
    ((crc != 0)) || break
    kill -0 "$spid" 2>/dev/null || break
    grep -q "REJECTED\|event bl blka 8\|reject" "$cli" || break
    { echo "# attempt rejected:"; cat "$cli"; } >>"$cli.retries"
    sleep 0.5
  done
  wait "$spid" || src=$?
  kill "$state_pid" 2>/dev/null || true
  wait "$state_pid" 2>/dev/null || true
  if [[ $crc -ne 0 || $src -ne 0 ]]; then
    fail "$name (server rc=$src client rc=$crc)"
    [[ -f $cli.retries ]] && sed 's/^/    earlier client attempts: /' "$cli.retries" | tail -12
    [[ -f $WORK/$name.cm_state ]] && sed 's/^/    after 30 s: /' "$WORK/$name.cm_state"
    sed 's/^/    server: /' "$srv" | tail -12
    sed 's/^/    client: /' "$cli" | tail -12
    return 0
  fi
  if "$check" "$srv" "$cli"; then pass "$name"; else fail "$name (output check)"; tail -n 8 "$srv" "$cli"; fi
}

# rping -V checks every ping's data on the client (it exits non-zero on a mismatch); -v
# prints each ping: the server saw all N, the client all N, each with its own pattern.
rping_ok() {
  local n=$1 srv=$2 cli=$3
  [[ $(grep -c "ping data: rdma-ping-" "$srv") -ge $n && $(grep -c "ping data: rdma-ping-" "$cli") -ge $n ]] &&
    grep -q "ping data: rdma-ping-$((n - 1)): " "$cli" && ! grep -qi "mismatch" "$cli"
}
rping_5() { rping_ok 5 "$@"; }
rping_50() { rping_ok 50 "$@"; }

cm_pair rping_ipv4 rping_5 -- rping -s -a 10.77.0.1 -p 7171 -v -V -C 5 -- \
  rping -c -a 10.77.0.1 -I 10.77.0.2 -p 7171 -v -V -C 5
cm_pair rping_ipv4_65000 rping_50 -- rping -s -a 10.77.0.1 -p 7172 -v -V -C 50 -S 65000 -- \
  rping -c -a 10.77.0.1 -I 10.77.0.2 -p 7172 -v -V -C 50 -S 65000
cm_pair rping_ipv6 rping_5 -- rping -s -a fd00:77::1 -p 7173 -v -V -C 5 -- \
  rping -c -a fd00:77::1 -I fd00:77::2 -p 7173 -v -V -C 5
# A server on the wildcard address; the client without a source address (its route).
cm_pair rping_wildcard rping_5 -- rping -s -a 0.0.0.0 -p 7174 -v -V -C 5 -- \
  rping -c -a 10.77.0.2 -p 7174 -v -V -C 5

# ucmatose: many connections at once, each sending and receiving messages.
ucmatose_ok() { grep -q "test complete" "$1" && grep -q "test complete" "$2" && ! grep -qi "fail\|error" "$2"; }
cm_pair ucmatose_c20 ucmatose_ok -- ucmatose -b 10.77.0.1 -c 20 -C 10 -- \
  ucmatose -s 10.77.0.1 -b 10.77.0.2 -c 20 -C 10

# udaddy: UD QPs that find each other through SIDR (IBTA 12.11), with RDMA-CM's Q_Key.
cm_pair udaddy ucmatose_ok -- udaddy -b 10.77.0.1 -C 10 -- udaddy -s 10.77.0.1 -b 10.77.0.2 -C 10
# The same in the IPoIB port space (service ID 0x20000 + port, as cma_get_service_id).
cm_pair udaddy_ipoib_ps ucmatose_ok -- udaddy -b 10.77.0.1 -P ipoib -C 10 -- \
  udaddy -s 10.77.0.1 -b 10.77.0.2 -P ipoib -C 10

# rsockets: rstream and riostream (its RDMA-write I/O map) each move 100 x 64 KiB both ways
# (they time transfers; the data check of rsockets is the rping and xfer cases above).
rstream_ok() { grep -qE "^custom +64k +100 " "$1" && grep -qE "^custom +64k +100 " "$2"; }
cm_pair rstream rstream_ok -- rstream -b 10.77.0.1 -S 65536 -C 100 -- \
  rstream -s 10.77.0.1 -b 10.77.0.2 -S 65536 -C 100
cm_pair riostream rstream_ok -- riostream -b 10.77.0.1 -S 65536 -C 100 -- \
  riostream -s 10.77.0.1 -b 10.77.0.2 -S 65536 -C 100
# rcopy: a file over rsockets, its copy compared.
rcopy_case rcopy ctl run run 10.77.0.1 7180 20

# rdma_server and rdma_client (librdmacm's rdma_create_ep API): their messages are
# global arrays, registered with rdma_reg_msgs from the programs' .data/.bss.
ep_ok() { grep -q "rdma_server: end 0" "$1" && grep -q "rdma_client: end 0" "$2"; }
cm_pair rdma_server_client_ipv4 ep_ok -- rdma_server -s 10.77.0.1 -p 7175 -- rdma_client -s 10.77.0.1 -p 7175
cm_pair rdma_server_client_ipv6 ep_ok -- rdma_server -s fd00:77::1 -p 7175 -- rdma_client -s fd00:77::1 -p 7175
# TCP programs through librspreload.so: Debian's netcat, and tcp_echo over IPv4 and IPv6.
nc_over_rsockets nc_rspreload ctl run run 10.77.0.1 10.77.0.2 7181 64
tcp_over_rsockets tcp_rspreload_ipv4 ctl run run 10.77.0.1 10.77.0.2 7178 64
tcp_over_rsockets tcp_rspreload_ipv6 ctl run run fd00:77::1 fd00:77::2 7179 16

# perftest with -R: its QPs connected by the CM. Its client gives rdma_resolve_addr no
# source address (--source_ip only names perftest's own socket), and the destination is
# a local address: as on Linux, the connection then loops back through the destination's
# device (cma_resolve_loopback). Two vdevs in two namespaces: two_host_cm.sh.
bw_ok() {
  grep -qE "^ *65536 +200 +[0-9.]+" "$2" && grep -q "rdma_cm QPs.*ON" "$1" &&
    grep -q "rdma_cm QPs.*ON" "$2"
}
lat_ok() { grep -qE "^ *8 +1000 +[0-9.]+" "$2" && grep -q "rdma_cm QPs.*ON" "$2"; }
for t in send write read; do
  cm_pair "ib_${t}_bw_R" bw_ok -- "ib_${t}_bw" -R -d vdev_a -s 65536 -n 200 -p 7176 -- \
    "ib_${t}_bw" -R -d vdev_b -s 65536 -n 200 -p 7176 10.77.0.1
done
cm_pair ib_send_lat_R lat_ok -- ib_send_lat -R -d vdev_a -s 8 -n 1000 -p 7177 -- \
  ib_send_lat -R -d vdev_b -s 8 -n 1000 -p 7177 10.77.0.1

# Each event in order, as librdmacm hands them to an application (cm_events.py, through
# pyverbs' binding of Debian's librdmacm): a connection with a QP on each side, set up,
# then disconnected by the client, both sides hearing TIMEWAIT_EXIT after; an address
# nobody on the internal switch has (ADDR_ERROR); a SIDR request to a port no one listens
# on (UNREACHABLE).
CM_EVENTS="$(dirname "$0")/cm_events.py"
events() { run /usr/bin/python3 "$CM_EVENTS" "$@" 2>&1 | grep -E "^(RDMA_CM_EVENT_|done$)" | paste -sd' ' || true; }
run /usr/bin/python3 "$CM_EVENTS" server 10.77.0.1 7201 >"$WORK/events.server" 2>&1 &
ev_pid=$!
for _ in $(seq 100); do grep -q listening "$WORK/events.server" && break; sleep 0.1; done
client_events=$(events client 10.77.0.2 10.77.0.1 7201)
wait "$ev_pid" || true
server_events=$(grep -E "^(RDMA_CM_EVENT_|done$)" "$WORK/events.server" | paste -sd' ' || true)
if [[ $client_events == "RDMA_CM_EVENT_ADDR_RESOLVED RDMA_CM_EVENT_ROUTE_RESOLVED RDMA_CM_EVENT_ESTABLISHED RDMA_CM_EVENT_DISCONNECTED RDMA_CM_EVENT_TIMEWAIT_EXIT done" &&
      $server_events == "RDMA_CM_EVENT_CONNECT_REQUEST RDMA_CM_EVENT_ESTABLISHED RDMA_CM_EVENT_DISCONNECTED RDMA_CM_EVENT_TIMEWAIT_EXIT done" ]]; then
  pass "events of a connection, both sides, through TIMEWAIT_EXIT"
else
  fail "connection events: client '$client_events' server '$server_events'"
  sed 's/^/    server: /' "$WORK/events.server" | tail -5
fi
out=$(events addr_error 10.77.0.2 10.77.0.99)
if [[ $out == "RDMA_CM_EVENT_ADDR_ERROR done" ]]; then pass "ADDR_ERROR for an address no one has"; else fail "addr_error: $out"; fi
out=$(events sidr_unreachable 10.77.0.2 10.77.0.1 7202)
if [[ $out == "RDMA_CM_EVENT_ADDR_RESOLVED RDMA_CM_EVENT_ROUTE_RESOLVED RDMA_CM_EVENT_UNREACHABLE done" ]]; then
  pass "UNREACHABLE for a SIDR request to no listener"
else
  fail "sidr_unreachable: $out"
fi

# Multicast joined through the CM (rdma_join_multicast): Debian's mckey, receivers on
# both vdevs and a sender on vdev_a, over IPv4 and IPv6 groups; each receiver counts its
# -C datagrams (mckey reads no status or bytes: vdev_b's completions must grow by
# as many). Then cm_mcast.py: the join's event (QPN 0xFFFFFF, RDMA-CM's Q_Key, the
# group's GID), every datagram's bytes compared, what a join is refused, and another
# process's attempt to leave the receiver's join.
mckey_case() {  # NAME GROUP RECV_B RECV_A SEND_A
  local name=$1 group=$2
  local r0 r1 ra rb rc_b=0 rc_a=0 rc_s=0
  r0=$(ctl stat show vdev_b | sed -n "s/^dev vdev_b:.* completions \([0-9]*\).*/\1/p")
  run mckey -m "$group" -b "$3" -C 10 -S 1000 >"$WORK/$name.b" 2>&1 &
  local pb=$!
  run mckey -m "$group" -b "$4" -C 10 -S 1000 >"$WORK/$name.a" 2>&1 &
  local pa=$!
  for _ in $(seq 100); do
    grep -q "^mckey: joined" "$WORK/$name.b" && grep -q "^mckey: joined" "$WORK/$name.a" && break
    sleep 0.1
  done
  run mckey -m "$group" -b "$5" -s -C 10 -S 1000 >"$WORK/$name.s" 2>&1 || rc_s=$?
  wait "$pb" || rc_b=$?
  wait "$pa" || rc_a=$?
  r1=$(ctl stat show vdev_b | sed -n "s/^dev vdev_b:.* completions \([0-9]*\).*/\1/p")
  if [[ $rc_s == 0 && $rc_b == 0 && $rc_a == 0 ]] &&
     grep -q "^data transfers complete" "$WORK/$name.b" && grep -q "^data transfers complete" "$WORK/$name.a" &&
     grep -q "^mckey: joined dgid: $6 " "$WORK/$name.b" && ((r1 - r0 >= 10)); then
    pass "$name: two receivers on two vdevs each got the sender's 10 datagrams"
  else
    fail "$name (rc send $rc_s, receivers $rc_b $rc_a; vdev_b completions $((r1 - r0)))"
    tail -n 5 "$WORK/$name.b" "$WORK/$name.a" "$WORK/$name.s" | sed 's/^/    /'
  fi
}
mckey_case mckey_ipv4 239.77.0.1 10.77.0.2 10.77.0.1 10.77.0.1 "::ffff:239.77.0.1"
mckey_case mckey_ipv6 ff0e::77:1 fd00:77::2 fd00:77::1 fd00:77::1 "ff0e::77:1"

CM_MCAST="$(dirname "$0")/cm_mcast.py"
mcast_data() {  # NAME GROUP RECV_SRC SEND_SRC
  : >"$WORK/$1.recv"
  run /usr/bin/python3 "$CM_MCAST" recv "$3" "$2" 20 >"$WORK/$1.recv" 2>&1 &
  local pr=$! rs=0 rr=0
  # While the receiver is joined, another process writes LEAVE_MCAST for every join
  # number up to 1000 on its own RDMA-CM file: the receiver's join is another file's
  # (EINVAL), the rest are no one's (ENOENT), and the receiver loses nothing.
  for _ in $(seq 100); do grep -q "^ready 0" "$WORK/$1.recv" && break; sleep 0.1; done
  if out=$(run /usr/bin/python3 "$CM_MCAST" leave_others 1 1000 2>&1) && grep -q "^ok .* refused (EINVAL)" <<<"$out"; then
    pass "$1: leaving another file's join is refused (EINVAL)"
  else
    fail "$1: leave of others' joins: $out"
  fi
  run /usr/bin/python3 "$CM_MCAST" send "$4" "$2" 20 "$WORK/$1.recv" >"$WORK/$1.send" 2>&1 || rs=$?
  wait "$pr" || rr=$?
  if [[ $rs == 0 && $rr == 0 ]] && grep -q "^ok 20 datagrams of 1000 bytes, each as sent" "$WORK/$1.recv"; then
    pass "$1: 20 datagrams to the group, bytes compared; the join's event checked"
  else
    fail "$1 (send rc=$rs recv rc=$rr)"
    grep -v "^ready" "$WORK/$1.recv" | tail -n 6 | sed 's/^/    recv: /'
    tail -n 6 "$WORK/$1.send" | sed 's/^/    send: /'
  fi
}
mcast_data cm_mcast_ipv4 239.77.0.2 10.77.0.2 10.77.0.1
mcast_data cm_mcast_ipv6 ff0e::77:2 fd00:77::2 fd00:77::1
if out=$(run /usr/bin/python3 "$CM_MCAST" refusals 10.77.0.1 239.77.0.3 2>&1) &&
   [[ $(grep -c "^ok " <<<"$out") == 5 ]]; then
  pass "rdma_join_multicast refusals (unbound, RC, unicast: EINVAL) and joins without a QP"
else
  fail "rdma_join_multicast refusals"; sed 's/^/    /' <<<"$out" | tail -8
fi

# A REQ to a port no one listens on: the IBTA CM rejects it (invalid service ID) and
# librdmacm's client sees RDMA_CM_EVENT_REJECTED.
# The CM's counters (stat show's "cm dev NAME:" rows) count it on each side.
cm_counter() {  # DEV NAME: the value of counter NAME in DEV's CM row
  ctl stat show "$1" | sed -n "s/^cm dev $1:.* $2 \([0-9]*\).*/\1/p"
}
a_rej0=$(cm_counter vdev_a rej_no_listener) a_txrej0=$(cm_counter vdev_a tx_rej)
b_txreq0=$(cm_counter vdev_b tx_req) b_rxrej0=$(cm_counter vdev_b rx_rej)
out=$(run rping -c -a 10.77.0.1 -I 10.77.0.2 -p 7199 -C 1 2>&1 || true)
if grep -q "RDMA_CM_EVENT_REJECTED" <<<"$out" || grep -qi "reject" <<<"$out"; then
  pass "REQ to no listener rejected"
else
  fail "REQ to no listener: $out"
fi
a_rej1=$(cm_counter vdev_a rej_no_listener) a_txrej1=$(cm_counter vdev_a tx_rej)
b_txreq1=$(cm_counter vdev_b tx_req) b_rxrej1=$(cm_counter vdev_b rx_rej)
if [[ -n $a_rej0 && -n $b_txreq0 ]] && ((a_rej1 > a_rej0 && a_txrej1 > a_txrej0 &&
      b_txreq1 > b_txreq0 && b_rxrej1 > b_rxrej0)) &&
   ctl -j stat show vdev_a | grep -q '{"dev":"vdev_a","layer":"cm","tx_req":[0-9]*,.*"rej_no_listener":' &&
   ctl stat show | grep -q "^cm pdev pdev0: qp1_rx_mads [1-9]"; then
  pass "stat show: the CM's counters per vdev and its QP1's per pdev"
else
  fail "stat show CM counters: vdev_a rej_no_listener $a_rej0->$a_rej1 tx_rej $a_txrej0->$a_txrej1," \
    "vdev_b tx_req $b_txreq0->$b_txreq1 rx_rej $b_rxrej0->$b_rxrej1"
  ctl stat show | grep "^cm "
fi

# vrdmactl res show cm_id lists the IDs as `rdma res show cm_id` does: a listener on
# vdev_a's address, with its owner; as JSON too.
run rping -s -a 10.77.0.1 -p 7193 -C 1 >"$WORK/listen.server" 2>&1 &
lpid=$!
wait_listener ctl "$lpid"
ids=$(ctl res show cm_id)
ids_json=$(ctl -j res show cm_id)
kill "$lpid" 2>/dev/null || true
wait "$lpid" 2>/dev/null || true
if grep -q "link vdev_a/1 .*state LISTEN ps TCP .*src-addr 10.77.0.1:7193 .*comm rping" <<<"$ids" &&
   grep -q '"ifname":"vdev_a","port":1,.*"state":"LISTEN".*"src-addr":"10.77.0.1:7193"' <<<"$ids_json"; then
  pass "res show cm_id: the listener"
else
  fail "res show cm_id: $ids $ids_json"
fi

# The server dies between the client's REQ and its own accept (stopped, then killed):
# its CM file closes, the daemon rejects the pending request for it, and the client
# hears REJECTED at once, not after the CM's minute of REQ retries.
run rping -s -a 10.77.0.1 -p 7191 -C 1 >"$WORK/killed.server" 2>&1 &
wait_listener ctl $!
pkill -STOP -f "rping -s -a 10.77.0.1 -p 7191" || true
t0=$(date +%s)
run rping -c -a 10.77.0.1 -I 10.77.0.2 -p 7191 -C 1 >"$WORK/killed.client" 2>&1 &
cpid=$!
sleep 1
pkill -KILL -f "rping -s -a 10.77.0.1 -p 7191" || true
wait "$cpid" || true
t1=$(date +%s)
if grep -q "REJECTED" "$WORK/killed.client" && ((t1 - t0 < 10)); then
  pass "server killed mid-handshake: the client is rejected in $((t1 - t0)) s"
else
  fail "server killed mid-handshake ($((t1 - t0)) s): $(tail -3 "$WORK/killed.client")"
fi

# The hardware address of the interface a listener is bound to changes, as a bond's does
# on failover: the listener hears ADDR_CHANGE (rping reports it as an event it does not
# handle, and listens on), and a connection to it afterwards moves its data.
run rping -s -a 10.77.0.1 -p 7190 -v -V -C 3 >"$WORK/addr_change.server" 2>&1 &
apid=$!
wait_listener ctl "$apid"
old_mac=$(in_ns cat /sys/class/net/vrd0/address)
in_ns ip link set vrd0 address 02:77:00:00:0a:01
for _ in $(seq 50); do grep -q "ADDR_CHANGE" "$WORK/addr_change.server" && break; sleep 0.1; done
run rping -c -a 10.77.0.1 -I 10.77.0.2 -p 7190 -v -V -C 3 >"$WORK/addr_change.client" 2>&1 || true
wait "$apid" || true
in_ns ip link set vrd0 address "$old_mac"
# vrdmad applies the change when its netlink watch reports it: the next case starts once
# vdev_a shows its old MAC again and the interface has settled. (A bind in the first tens
# of milliseconds after the MAC came back has failed, EADDRNOTAVAIL or ENODEV, in about one
# run of three on a loaded machine; not understood yet, see the issue 13 note.)
# The next case binds 10.77.0.1: it waits (up to 10 s) until vdev_a's GID table holds it
# again, and the table is printed should it not.
for _ in $(seq 50); do ctl dev show vdev_a | grep -q "mac $old_mac" && break; sleep 0.1; done
for _ in $(seq 100); do
  ctl dev show vdev_a | awk '$1 == "gid" && $3 == "::ffff:10.77.0.1" && $4 == "RoCEv2"' | grep -q . && break
  sleep 0.1
done
ctl dev show vdev_a >"$WORK/gids_after_mac_change"
sleep 1
if grep -q "RDMA_CM_EVENT_ADDR_CHANGE" "$WORK/addr_change.server" &&
   rping_ok 3 "$WORK/addr_change.server" "$WORK/addr_change.client"; then
  pass "MAC of a listener's interface changed: ADDR_CHANGE, then a connection"
else
  fail "ADDR_CHANGE: $(tail -3 "$WORK/addr_change.server") / $(tail -2 "$WORK/addr_change.client")"
fi

# The vdev a listener is bound to is deleted: the listener hears DEVICE_REMOVAL (rping
# reports it and ends); vrdmad carries on.
# (Its bind has failed with EADDRNOTAVAIL in about one CI run of five, more than a second
# after vdev_a's GID table showed 10.77.0.1 again following the MAC change above; not
# understood yet. The bind is retried, and the retries are said in the result: this
# case is about the removal.)
bind_retries=0
for _ in 1 2 3 4 5; do
  run rping -s -a 10.77.0.1 -p 7192 -C 1 >"$WORK/removal.server" 2>&1 &
  rpid=$!
  wait_listener ctl "$rpid" 1 7192
  kill -0 "$rpid" 2>/dev/null || ! grep -q "Cannot assign" "$WORK/removal.server" || {
    bind_retries=$((bind_retries + 1))
    ctl dev show vdev_a | grep "gid" | sed 's/^/    after a refused bind: /'
    sleep 1
    continue
  }
  break
done
ctl dev del vdev_a >/dev/null
wait "$rpid" || true
if grep -qi "device removal" "$WORK/removal.server"; then
  pass "vdev deleted under a listener: DEVICE_REMOVAL (bind retried $bind_retries times)"
else
  fail "vdev deleted under a listener: $(tail -3 "$WORK/removal.server")"
  # The refusals and GID updates around it (the MAC change of the case before).
  { grep -E "cm_command_refused|_refused|gid_table_update|netdev" "$WORK/vrdmad.log" || true; } |
    tail -25 | sed 's/^/    log: /'
  sed 's/^/    vdev_a after the MAC came back: /' "$WORK/gids_after_mac_change"
fi
ctl dev add vdev_a pdev pdev0 netdev vrd0 >/dev/null

# What the connections made is gone with their processes.
sleep 0.5
check_all_freed "resources freed"
if kill -0 "$DAEMON_PID" 2>/dev/null; then pass "vrdmad alive"; else fail "vrdmad died"; fi
finish
