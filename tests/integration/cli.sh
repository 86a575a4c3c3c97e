#!/usr/bin/env bash
# The admin tools as a newcomer meets them: vrdmactl and vrdma-run without a daemon, then
# against a running vrdmad (messages, size suffixes, link aliases, pretty JSON, objects of
# a running client in `res show qp`, pdevs named where vdevs are meant, node GUIDs).
source "$(dirname "$0")/lib.sh"

# expect NAME WANT_RC PATTERN... -- COMMAND...: COMMAND's exit status is WANT_RC ("nz" for
# any failure) and its output (stdout and stderr) holds every PATTERN (grep -F); a
# PATTERN starting with '!' must not appear.
expect() {
  local name="$1" want="$2"
  shift 2
  local patterns=()
  while [[ "$1" != "--" ]]; do
    patterns+=("$1")
    shift
  done
  shift
  local out rc=0
  out=$("$@" 2>&1) || rc=$?
  local ok=1
  if [[ "$want" == nz ]]; then
    [[ $rc -ne 0 ]] || ok=0
  else
    [[ $rc -eq $want ]] || ok=0
  fi
  for p in "${patterns[@]}"; do
    if [[ "$p" == '!'* ]]; then
      grep -qF -- "${p:1}" <<<"$out" && ok=0
    else
      grep -qF -- "$p" <<<"$out" || ok=0
    fi
  done
  if [[ $ok -eq 1 ]]; then
    pass "$name"
  else
    fail "$name (rc=$rc, want $want)"
    sed 's/^/    /' <<<"$out" | head -30
  fi
}

# ---- no daemon ----
NOSOCK="$WORK/nosuch.sock"
expect "vrdmactl without a daemon" 1 "vrdmactl: cannot reach vrdmad at $NOSOCK (No such file or directory)" -- \
  env VRDMA_SOCKET="$NOSOCK" "$VRDMACTL" dev show
expect "vrdmactl --socket without a daemon" 1 "cannot reach vrdmad at $NOSOCK" -- \
  "$VRDMACTL" --socket "$NOSOCK" res show
expect "vrdmactl alone: usage, not the daemon" 2 "usage: vrdmactl" "pci bind BDF" "link add DEV type vrdma" \
  "res show {qp|cq|mr|pd|srq|ah|cm_id}" "-s/--socket" "-j/--json" "-p/--pretty" '!cannot reach' -- \
  env VRDMA_SOCKET="$NOSOCK" "$VRDMACTL"
expect "vrdmactl dev help" 0 "usage: vrdmactl" "dev set DEV" "roce_mode v1|v2" '!cannot reach' -- \
  env VRDMA_SOCKET="$NOSOCK" "$VRDMACTL" dev help
expect "vrdmactl unknown verb" 2 "'frob' is not a dev command" "usage: vrdmactl" '!cannot reach' -- \
  env VRDMA_SOCKET="$NOSOCK" "$VRDMACTL" dev frob
expect "vrdmactl negative quota" 1 "bad value '-1' for qp: negative values are not allowed" '!cannot reach' -- \
  env VRDMA_SOCKET="$NOSOCK" "$VRDMACTL" dev set x qp -1
expect "vrdmactl overflowing quota" 1 "bad value '99999999999T' for mr_bytes: too large" -- \
  env VRDMA_SOCKET="$NOSOCK" "$VRDMACTL" dev set x mr_bytes 99999999999T
expect "vrdmactl bad name states the rule" 1 \
  "invalid device name 'a/b': a device name is 1 to 63 printable characters, without '/', '%' or whitespace" -- \
  env VRDMA_SOCKET="$NOSOCK" "$VRDMACTL" dev add a/b netdev vrd0
expect "vrdmactl refuses the name .." 1 "invalid device name '..'" -- \
  env VRDMA_SOCKET="$NOSOCK" "$VRDMACTL" dev add .. netdev vrd0
expect "vrdma-run without a daemon" nz "vrdma-run: cannot reach vrdmad at $NOSOCK (No such file or directory)" \
  '!No IB devices found' -- env VRDMA_SOCKET="$NOSOCK" "$VRDMA_RUN" ibv_devinfo
expect "vrdma-run -s without a daemon" nz "vrdma-run: cannot reach vrdmad at $NOSOCK" -- \
  "$VRDMA_RUN" -s "$NOSOCK" -d vdev_a ibv_devinfo
expect "vrdma-run --help" 0 "VRDMA_DEVICE" "VRDMA_SOCKET" "-d, --device DEV" "-s, --socket PATH" "examples:" -- \
  "$VRDMA_RUN" --help

# ---- a daemon ----
setup_default
in_ns ip link add vrd2 type veth peer name vrd3
in_ns ip link set vrd2 up
in_ns ip link set vrd3 up

expect "vrdma-run -d nosuch" nz "vrdma-run: no vdev 'nosuch' (have: vdev_a, vdev_b)" '!No IB devices found' -- \
  in_ns "$VRDMA_RUN" -d nosuch ibv_devinfo
expect "vrdma-run --device --socket" 0 $'hca_id:\tvdev_a' '!vdev_b' -- \
  in_ns "$VRDMA_RUN" --device vdev_a --socket "$VRDMA_SOCKET" ibv_devinfo
expect "vrdma-run -d a pdev" 0 $'hca_id:\tpdev0' -- in_ns "$VRDMA_RUN" -d pdev0 ibv_devinfo

expect "dev set mr_bytes 1G" 0 -- ctl dev set vdev_a mr_bytes 1G qp 1K
expect "dev show shows 1G as bytes" 0 " qp 1024 " " mr_bytes 1073741824" -- ctl dev show vdev_a
expect "dev show -j shows 1G as bytes" 0 '"mr_bytes":1073741824' -- ctl -j dev show vdev_a
expect "dev set 2GiB" 0 '"mr_bytes":2147483648' -- ctl -j dev set vdev_a mr_bytes 2GiB
expect "dev set refuses -1 with a daemon" 1 "negative values are not allowed" -- ctl dev set vdev_a qp -1
expect "dev show lists GIDs of every vdev" 0 ": vdev_a: type virtual" ": vdev_b: type virtual" \
  "gid 3 ::ffff:10.77.0.1 RoCEv2" "gid 3 ::ffff:10.77.0.2 RoCEv2" -- ctl dev show

expect "link add" 0 "vdev_c: type virtual pdev pdev0 netdev vrd2" -- \
  ctl link add vdev_c type vrdma netdev vrd2
expect "link show" 0 "vdev_c: type virtual pdev pdev0 netdev vrd2" '!vdev_a' -- ctl link show vdev_c
expect "link show DEV/1" 0 "vdev_c: type virtual" -- ctl link show vdev_c/1
expect "link add twice" 1 "device vdev_c exists" -- ctl link add vdev_c type vrdma netdev vrd3
expect "link del" 0 -- ctl link del vdev_c
expect "link del: gone" 0 '!vdev_c' ": vdev_a:" -- ctl link show
expect "link add pdev" 0 "vdev_d: type virtual pdev pdev0 netdev vrd3" -- \
  ctl link add vdev_d type vrdma netdev vrd3 pdev pdev0
expect "dev del (vdev_d)" 0 -- ctl dev del vdev_d
expect "bad name with a daemon" 1 "1 to 63 printable characters" -- ctl dev add "a b" netdev vrd2

expect "dev del pdev0" 1 "pdev0 is a physical device (pdev): pdevs are not deleted with \`dev del\`" \
  '!no device named' -- ctl dev del pdev0
expect "dev del nosuch names the vdevs" 1 "no device named nosuch (vdevs: vdev_a, vdev_b)" -- \
  ctl dev del nosuch

# Pretty JSON: it parses, and is indented as iproute2's -p.
for cmd in "dev show" "pdev show" "res show" "stat show"; do
  # shellcheck disable=SC2086
  out=$(ctl -j -p $cmd 2>&1)
  if python3 -m json.tool >/dev/null <<<"$out" && grep -q '^    {' <<<"$out"; then
    pass "-j -p $cmd"
  else
    fail "-j -p $cmd"
    head -20 <<<"$out"
  fi
done
out=$(ctl -j dev show)
if python3 -m json.tool >/dev/null <<<"$out" && [[ $(wc -l <<<"$out") -eq 1 ]]; then
  pass "-j without -p is compact"
else
  fail "-j without -p: $out"
fi

# res show qp|cq|mr|pd: the objects of a pingpong server waiting for its client.
# Not through in_ns: $! must be the client itself (ip netns exec and vrdma-run exec it).
ip netns exec "$NS" "$VRDMA_RUN" -d vdev_a ibv_rc_pingpong -g 3 -p 18777 >"$WORK/pp.log" 2>&1 &
PP=$!
listed=0
for _ in $(seq 50); do
  if ctl res show qp | grep -q "link vdev_a/1 lqpn"; then
    listed=1
    break
  fi
  sleep 0.1
done
if [[ $listed -eq 1 ]]; then pass "res show qp lists a running client's QP"; else fail "res show qp: nothing listed"; fi
expect "res show qp columns" 0 "link vdev_a/1 lqpn " " type RC state INIT sq-psn " " rq-psn " " pdn " \
  " pid $PP comm ibv_rc_pingpong" -- ctl res show qp
expect "res show qp dev vdev_b (none)" 0 '!lqpn' -- ctl res show qp dev vdev_b
expect "res show qp -d vdev_a" 0 "link vdev_a/1 lqpn" -- ctl -d vdev_a res show qp
expect "res show cq" 0 "dev vdev_a cqn " " cqe " " users " " pid $PP comm ibv_rc_pingpong" -- ctl res show cq
expect "res show mr" 0 "dev vdev_a mrn " " rkey 0x" " lkey 0x" " mrlen 4096 pdn " "comm ibv_rc_pingpong" -- \
  ctl res show mr
expect "res show pd" 0 "dev vdev_a pdn " " users " " pid $PP comm ibv_rc_pingpong" -- ctl res show pd
expect "res show (counts)" 0 "vdev_a: qp 1/1024" "pid $PP comm ibv_rc_pingpong qp 1 cq 1 mr 1 pd 1" -- \
  ctl res show vdev_a
out=$(ctl -j res show qp)
if python3 -c 'import json,sys; q=json.load(sys.stdin); assert q and q[0]["ifname"]=="vdev_a" and q[0]["type"]=="RC" and q[0]["lqpn"]>0 and q[0]["comm"]=="ibv_rc_pingpong"' <<<"$out"; then
  pass "res show qp -j"
else
  fail "res show qp -j: $out"
fi
out=$(ctl -j -p res show qp)
if python3 -m json.tool >/dev/null <<<"$out" && grep -q '^        "lqpn": ' <<<"$out"; then
  pass "-j -p res show qp"
else
  fail "-j -p res show qp: $out"
fi
kill "$PP" 2>/dev/null || true
wait "$PP" 2>/dev/null || true

# A pdev's node GUID is not derived from its name alone, and a restart keeps it.
guid() { ctl pdev show pdev0 | grep -o 'node_guid [0-9a-f:]*' | cut -d' ' -f2; }
g1=$(guid)
if [[ -n "$g1" && "$g1" != "0076:72ff:fe64:0000" ]]; then
  pass "pdev0 node GUID $g1 is not the name-derived 0076:72ff:fe64:0000"
else
  fail "pdev0 node GUID '$g1'"
fi
kill -TERM "$DAEMON_PID"
wait "$DAEMON_PID" 2>/dev/null || true
rm -f "$VRDMA_SOCKET"
start_daemon
g2=$(guid)
if [[ "$g1" == "$g2" ]]; then pass "pdev0 node GUID stable across a restart"; else fail "GUID $g1 then $g2"; fi

finish
