#!/usr/bin/env bash
# Issue 15, item 1: each vdev's character node under /dev/infiniband, and Debian's UCX
# (ucx-utils, libucx0: unmodified) over two vdevs, which it takes only because the nodes
# exist. The vdevs are named ucx_a and ucx_b: tests running beside this one make vdev_a
# and vdev_b, whose nodes come and go with their daemons.
#
# - the nodes: char 0:0 (opening it is ENXIO), the vdev's owner, group and mode, following
#   `dev set`; a user the mode leaves out is not offered the vdev by UCX, its owner is;
#   removed with the vdev and when vrdmad stops;
# - ucx_check (libucp): tagged messages, put and get, active messages at 8 B, 64 KiB and
#   1 MiB both ways over rc_verbs and over ud_verbs, every byte compared;
# - ucx_perftest between two processes: UCP tag, put and am at 8 B and 64 KiB over rc_verbs
#   and over ud_verbs, UCT rc_verbs am/put latency, put bandwidth and get, UCT ud_verbs
#   am latency and bandwidth; each must report its iterations, and the vdevs' counters must
#   show the work requests.
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/tenant_lib.sh"
NODES=/dev/infiniband
UCX_CHECK="$VRDMA_BUILD/tests/integration/ucx_check"

setup_hosts
start_daemon
ctl dev add ucx_a pdev pdev0 netdev vrd0 >/dev/null
ctl dev add ucx_b pdev pdev0 netdev vrd1 >/dev/null

node_is() {  # NAME EXPECTED: "type major:minor mode uid gid" of the node
  local got
  got=$(stat -c '%F %t:%T %a %u %g' "$NODES/$1" 2>&1 || true)
  if [[ "$got" == "$2" ]]; then pass "node $1: $2"; else fail "node $1: '$got', wanted '$2'"; fi
}

node_is ucx_a "character special file 0:0 666 0 0"
node_is ucx_b "character special file 0:0 666 0 0"
if ctl dev show ucx_a | grep -q "mode 0666 node $NODES/ucx_a$"; then
  pass "dev show names the node"
else
  fail "dev show: $(ctl dev show ucx_a | head -2)"
fi
if out=$(cat "$NODES/ucx_a" 2>&1); then
  fail "opening the node reached a driver: $out"
elif grep -q "No such device or address" <<<"$out"; then
  pass "opening the node: ENXIO"
else
  fail "opening the node: $out"
fi

# UCX offers both verbs transports on both vdevs.
out=$(in_ns "$VRDMA_RUN" ucx_info -d 2>&1)
for dev in ucx_a ucx_b; do
  for tl in rc_verbs ud_verbs; do
    if awk -v tl="$tl" -v dev="$dev:1" '/Transport:/ {t=$3} /Device:/ && t==tl && $3==dev {f=1} END {exit !f}' <<<"$out"; then
      pass "ucx_info -d: $tl on $dev"
    else
      fail "ucx_info -d: no $tl on $dev"; echo "$out" | grep -E "Transport|Device"
    fi
  done
done

# The node carries the access policy: owner, group and mode, as `dev set` changes them.
OWNER=$(tenant_user owner)
OTHER=$(tenant_user other)
tenant_ready
ctl dev set ucx_a owner "$OWNER" group "$OWNER" mode 0600 >/dev/null
node_is ucx_a "character special file 0:0 600 $(id -u "$OWNER") $(id -g "$OWNER")"
other=$(as_user "$OTHER" "$VRDMA_RUN" ucx_info -d 2>&1 || true)
owner=$(as_user "$OWNER" "$VRDMA_RUN" ucx_info -d 2>&1 || true)
if ! grep -q "Device: ucx_a:1" <<<"$other" && grep -q "Device: ucx_b:1" <<<"$other"; then
  pass "a user the mode leaves out is not offered ucx_a"
else
  fail "another user's ucx_info -d: $(grep Device <<<"$other" | tr -s ' ' | tr '\n' ' ')"
fi
if grep -q "Device: ucx_a:1" <<<"$owner"; then
  pass "the owner is offered ucx_a"
else
  fail "the owner's ucx_info -d: $(grep Device <<<"$owner" | tr -s ' ' | tr '\n' ' ')"
fi
ctl dev set ucx_a owner 0 group 0 mode 0660 >/dev/null
node_is ucx_a "character special file 0:0 660 0 0"
ctl dev set ucx_a mode 0666 >/dev/null

# Every byte UCP moves, in one process holding both vdevs.
for tls in rc_v ud_v; do
  if in_ns timeout 300 "$VRDMA_RUN" "$UCX_CHECK" "$tls" ucx_a:1 ucx_b:1 >"$WORK/check.$tls" 2>&1 &&
     [[ $(grep -c "^ok " "$WORK/check.$tls") -eq 24 ]] && ! grep -q "UCX  *\(WARN\|ERROR\)" "$WORK/check.$tls"; then
    pass "ucx_check over $tls: 24 transfers compared"
  else
    fail "ucx_check over $tls"; grep -v "^ok " "$WORK/check.$tls" | tail -20
  fi
done

# UD over each kind of GID, as UCX's default picks RoCEv2/IPv4 once sysfs tells it the GID
# types: RoCEv2 over IPv6 (link-local), RoCEv1 and RoCEv2 over IPv4. UCX finds its
# address in the GRH buffer by the L3 type the receive's SL carries (as on mlx5), and drops
# what it does not take for its own.
for gid in 1 2 3; do
  if in_ns env UCX_IB_GID_INDEX=$gid timeout 120 "$VRDMA_RUN" "$UCX_CHECK" ud_v ucx_a:1 ucx_b:1 \
       >"$WORK/check.gid$gid" 2>&1 && [[ $(grep -c "^ok " "$WORK/check.gid$gid") -eq 24 ]]; then
    pass "ucx_check over ud_v on GID $gid"
  else
    fail "ucx_check over ud_v on GID $gid"; grep -v "^ok " "$WORK/check.gid$gid" | tail -20
  fi
done

# ucx_perftest, two processes, the out-of-band exchange over 127.0.0.1. UCP tests: the
# server on ucx_b, the client on ucx_a (UCX_NET_DEVICES). UCT tests: ucx_perftest's server
# takes the client's device (-d) with the rest of its parameters, so both ends are on
# ucx_a: two processes, two QPs, one vdev.
wqes() { ctl stat show "$1" | awk '/^dev /{for (i = 1; i < NF; i++) if ($i == "send_wqes") print $(i + 1)}'; }
PORT=13500
ITERS=2000
perftest_case() {  # NAME SERVER_VDEV ENV... -- ARGS...
  local name=$1 server_vdev=$2 envs=()
  shift 2
  while [[ $1 != -- ]]; do envs+=("$1"); shift; done
  shift
  PORT=$((PORT + 1))
  local before_a before_b
  before_a=$(wqes ucx_a)
  before_b=$(wqes "$server_vdev")
  in_ns env "${envs[@]}" UCX_NET_DEVICES=ucx_b:1 timeout -k 5 120 "$VRDMA_RUN" \
    ucx_perftest -p "$PORT" >"$WORK/perf.server" 2>&1 &
  local srv=$!
  local ok=0
  for _ in $(seq 100); do
    if in_ns ss -ltn | grep -q ":$PORT "; then ok=1; break; fi
    sleep 0.05
  done
  if ((ok)) && in_ns env "${envs[@]}" UCX_NET_DEVICES=ucx_a:1 timeout -k 5 120 "$VRDMA_RUN" \
      ucx_perftest 127.0.0.1 -p "$PORT" -n "$ITERS" -w 100 -f "$@" >"$WORK/perf.client" 2>&1 &&
     wait "$srv"; then
    local iters sent
    iters=$(grep -v '^$' "$WORK/perf.client" | tail -1 | awk '{for (i = 1; i <= NF; i++) if ($i ~ /^[0-9]+$/) {print $i; exit}}')
    sent=$(( $(wqes ucx_a) - before_a ))
    if [[ "$iters" == "$ITERS" && $sent -ge $ITERS && $(wqes "$server_vdev") -gt $before_b ]]; then
      pass "ucx_perftest $name: $iters iterations, $sent send WQEs on ucx_a"
      return
    fi
    fail "ucx_perftest $name: iterations '$iters', send WQEs on ucx_a $sent"
  else
    wait "$srv" 2>/dev/null || true
    fail "ucx_perftest $name"
  fi
  echo "--- client"; tail -15 "$WORK/perf.client"; echo "--- server"; tail -15 "$WORK/perf.server"
}

for tls in rc_v ud_v; do
  transport=${tls/%_v/_verbs}
  for size in 8 65536; do
    perftest_case "tag_bw $size B over $transport" ucx_b UCX_TLS=$tls -- -t tag_bw -s $size
    perftest_case "ucp_put_bw $size B over $transport" ucx_b UCX_TLS=$tls -- -t ucp_put_bw -s $size
    perftest_case "ucp_am_bw $size B over $transport" ucx_b UCX_TLS=$tls -- -t ucp_am_bw -s $size
  done
done
perftest_case "UCT rc_verbs am_lat 8 B, one vdev" ucx_a -- -x rc_verbs -d ucx_a:1 -t am_lat -s 8
perftest_case "UCT rc_verbs put_lat 8 B, one vdev" ucx_a -- -x rc_verbs -d ucx_a:1 -t put_lat -s 8
perftest_case "UCT rc_verbs put_bw 64 KiB zcopy, one vdev" ucx_a -- -x rc_verbs -d ucx_a:1 -t put_bw -s 65536 -D zcopy
perftest_case "UCT rc_verbs get 64 KiB zcopy, one vdev" ucx_a -- -x rc_verbs -d ucx_a:1 -t get -s 65536 -D zcopy
perftest_case "UCT ud_verbs am_lat 8 B, one vdev" ucx_a -- -x ud_verbs -d ucx_a:1 -t am_lat -s 8
perftest_case "UCT ud_verbs am_bw 8 B, one vdev" ucx_a -- -x ud_verbs -d ucx_a:1 -t am_bw -s 8

# Removed with the vdev, and the others when vrdmad stops.
ctl dev del ucx_b
if [[ ! -e "$NODES/ucx_b" ]]; then pass "dev del removes the node"; else fail "ucx_b's node outlived its vdev"; fi
stop_pid "$DAEMON_PID"
DAEMON_PID=""
if [[ ! -e "$NODES/ucx_a" ]]; then pass "vrdmad's stop removes the nodes"; else fail "ucx_a's node outlived vrdmad"; fi
finish
