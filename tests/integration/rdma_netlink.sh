#!/usr/bin/env bash
# Issue 15, item 3: RDMA netlink for programs under vrdma-run. Debian's iproute2 `rdma`
# (unmodified) shows the vdevs as the kernel shows its devices, and agrees with vrdmactl:
# devices and their GUIDs, links with their state and interface, the resource summary,
# QPs, CQs, MRs, PDs, contexts and RDMA-CM IDs of running programs (ibv_rc_pingpong,
# rping, a program holding 1000 QPs and 3000 MRs: dumps longer than one reply), the vdev's counters, the
# system's namespace mode. Changes are refused. A user sees only its own processes'
# objects, another namespace no vdev; a malformed request gets the kernel's error and the
# daemon lives on.
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/tenant_lib.sh"
setup_default
run() { in_ns "$VRDMA_RUN" "$@"; }
# The values of KEYS in each JSON object of a list, one object per line, sorted.
# shellcheck disable=SC2016
project() {  # KEYS(comma-separated) < JSON
  python3 -c '
import json, sys
keys = sys.argv[1].split(",")
def value(k, v):  # keys: vrdmactl prints 0x201, rdma -j 201 (hex either way)
    return int(str(v), 16) if k in ("rkey", "lkey") and v is not None else v
rows = [" ".join(f"{k}={value(k, o.get(k))}" for k in keys) for o in json.load(sys.stdin)]
print("\n".join(sorted(rows)))' "$1"
}

# ---- devices and links
id_a=$(ctl dev show vdev_a | awk -F: 'NR==1 {print $1}')
guid_a=$(ctl -j dev show vdev_a | grep -o '"node_guid":"[^"]*"' | cut -d'"' -f4)
out=$(run rdma dev 2>&1)
if grep -q "^$id_a: vdev_a: node_type ca fw vrdma 0.1.0 node_guid $guid_a sys_image_guid $guid_a" <<<"$out" &&
   grep -q ": vdev_b: node_type ca" <<<"$out" && grep -q ": pdev0: node_type ca" <<<"$out"; then
  pass "rdma dev: vdev_a (index $id_a, $guid_a), vdev_b, pdev0"
else
  fail "rdma dev"; echo "$out"
fi
out=$(run rdma dev show vdev_b -d 2>&1)
if grep -q "vdev_b: node_type ca" <<<"$out" && grep -q "caps: <" <<<"$out"; then
  pass "rdma dev show vdev_b -d (capabilities)"
else
  fail "rdma dev show vdev_b -d"; echo "$out"
fi
expect "rdma link show vdev_a/1" "$(run rdma link show vdev_a/1 2>&1)" \
  "link vdev_a/1 state ACTIVE physical_state LINK_UP netdev vrd0 "
out=$(run rdma link 2>&1)
if grep -q "^link vdev_b/1 state ACTIVE physical_state LINK_UP netdev vrd1" <<<"$out" &&
   grep -q "^link pdev0/1 state ACTIVE" <<<"$out"; then
  pass "rdma link: every port"
else
  fail "rdma link"; echo "$out"
fi
in_ns ip link set vrd1 down
for _ in $(seq 50); do
  out=$(run rdma link show vdev_b/1 2>&1)
  grep -q "state DOWN" <<<"$out" && break
  sleep 0.1
done
in_ns ip link set vrd1 up
if grep -q "state DOWN physical_state DISABLED netdev vrd1" <<<"$out"; then
  pass "rdma link: the port follows its interface down"
else
  fail "rdma link after ip link set vrd1 down"; echo "$out"
fi
expect "rdma system show" "$(run rdma system show 2>&1 | grep -o "netns [a-z]*")" "netns exclusive"
expect "rdma dev show of a device that is not there" "$(run rdma dev show nosuch 2>&1)" \
  "Wrong device name - nosuch"

# ---- resources of running programs
ip netns exec "$NS" timeout 120 "$VRDMA_RUN" -d vdev_a -- ibv_rc_pingpong -g 1 -p 18515 >"$WORK/pp.out" 2>&1 &
pp=$!
ip netns exec "$NS" timeout 120 "$VRDMA_RUN" -- rping -s -a 10.77.0.1 -p 7199 >"$WORK/rping.out" 2>&1 &
rp=$!
for _ in $(seq 100); do
  n=$(ctl -j res show qp dev vdev_a | { grep -o '"lqpn"' || true; } | wc -l)
  c=$(ctl -j res show cm_id | { grep -o '"cm-idn"' || true; } | wc -l)
  [[ $n -ge 1 && $c -ge 1 ]] && break
  sleep 0.1
done
for t in qp cq mr pd; do
  case $t in
    qp) keys=ifname,lqpn,type,state,sq-psn,rq-psn,pdn,pid,comm ;;
    cq) keys=ifname,cqn,cqe,users,pid,comm ;;
    mr) keys=ifname,mrn,rkey,lkey,mrlen,pdn,pid,comm ;;
    pd) keys=ifname,pdn,users,pid,comm ;;
  esac
  want=$(ctl -j res show $t dev vdev_a | project "$keys")
  filter=dev
  [[ $t == qp ]] && filter=link  # iproute2 names a QP's port, the others' device
  got=$(run rdma -j res show $t $filter vdev_a 2>&1 | project "$keys")
  if [[ -n "$want" && "$got" == "$want" ]]; then
    pass "rdma res show $t agrees with vrdmactl ($(wc -l <<<"$got") of ibv_rc_pingpong and rping)"
  else
    fail "rdma res show $t"; echo "vrdmactl: $want"; echo "rdma: $got"
  fi
done
out=$(run rdma res show qp lqpn "$(ctl -j res show qp dev vdev_a | grep -o '"lqpn":[0-9]*' | head -1 | cut -d: -f2)" link vdev_a 2>&1)
if grep -q "type RC state INIT" <<<"$out" && grep -q "comm ibv_rc_pingpong" <<<"$out"; then
  pass "rdma res show qp lqpn N (one QP, by its number)"
else
  fail "rdma res show qp lqpn"; echo "$out"
fi
want=$(ctl -j res show cm_id | project ifname,state,ps,src-addr,pid,comm)
got=$(run rdma -j res show cm_id 2>&1 | python3 -c '
import json, sys
rows = []
for o in json.load(sys.stdin):
    o["src-addr"] = o.get("src-addr", "") + (":" + str(o["src-port"]) if "src-port" in o else "")
    rows.append(" ".join(f"{k}={o.get(k)}" for k in "ifname,state,ps,src-addr,pid,comm".split(",")))
print("\n".join(sorted(rows)))')
if grep -q "state=LISTEN ps=TCP" <<<"$got" && grep -q "comm=rping" <<<"$got" &&
   [[ "$(sed 's/src-addr=[^ ]*//' <<<"$got")" == "$(sed 's/src-addr=[^ ]*//' <<<"$want")" ]] &&
   grep -q "10.77.0.1:7199" <<<"$got"; then
  pass "rdma res show cm_id: rping's listener, as vrdmactl lists it"
else
  fail "rdma res show cm_id"; echo "vrdmactl: $want"; echo "rdma: $got"
fi
# The summary counts what vrdmactl counts: its objects, its processes' contexts, its IDs.
want=$(ctl -j res show vdev_a | python3 -c '
import json, sys
d = json.load(sys.stdin)[0]
u = d["used"]
print("pd %d cq %d qp %d cm_id CMID mr %d ctx %d srq %d" %
      (u["pd"], u["cq"], u["qp"], u["mr"], len(d["processes"]), u["srq"]))')
want=${want/CMID/$(ctl -j res show cm_id dev vdev_a | { grep -o '"cm-idn"' || true; } | wc -l)}
sum=$(run rdma res show vdev_a 2>&1)
expect "rdma res show vdev_a: the summary, as vrdmactl res show" "$sum" "$id_a: vdev_a: $want "
ctx=$(run rdma -j res show ctx dev vdev_a 2>&1 | project ifname,comm)
want=$(ctl -j res show vdev_a | python3 -c '
import json, sys
print("\n".join(sorted("ifname=vdev_a comm=" + p["comm"] for p in json.load(sys.stdin)[0]["processes"])))')
expect "rdma res show ctx: a context per process" "$ctx" "$want"

# Another user sees none of these processes; root of another user namespace neither. The
# devices stay visible (the kernel shows its devices to anyone in the namespace).
tenant_ready
user=$(tenant_user nl)
out=$(as_user "$user" "$VRDMA_RUN" rdma res show qp 2>&1)
expect "another user: no QP" "$out" ""
out=$(as_tenant "$user" "$VRDMA_RUN" rdma res show 2>&1)
if grep -q "vdev_a: pd 0 cq 0 qp 0 cm_id 0 mr 0 ctx 0 srq 0" <<<"$out"; then
  pass "root of a user namespace: the devices, none of another's objects"
else
  fail "as_tenant rdma res show"; echo "$out"
fi
out=$(as_user "$user" "$VRDMA_RUN" rdma dev set vdev_a name x 2>&1 || true)
expect "another user: rdma dev set refused" "$(grep -c "Operation not permitted" <<<"$out")" 1
out=$(run rdma dev set vdev_a name x 2>&1 || true)
if grep -q "vrdmactl" <<<"$out"; then
  pass "root: rdma dev set refused, with the extended ACK naming vrdmactl"
else
  fail "rdma dev set"; echo "$out"
fi
NS2="vrdma-it2-$$"
CLEANUP_NETNS+=(NS2)
ip netns add "$NS2"
out=$(ip netns exec "$NS2" "$VRDMA_RUN" rdma dev 2>&1)
expect "another network namespace, even as root: no device" "$out" ""
# PID namespaces (root of the daemon's user namespace: the administrator): a process in a
# new PID namespace sees only the objects of processes in it (not the ibv_rc_pingpong
# still running outside), under its own numbers.
out=$(ip netns exec "$NS" timeout 60 unshare --pid --fork --mount-proc bash -c '
  "$1" -d vdev_a -- ibv_rc_pingpong -g 1 -p 18517 >/dev/null 2>&1 &
  # Until the QP is in INIT: it is listed in RESET between ibv_create_qp and
  # ibv_modify_qp, and a loaded machine can take seconds to start the program.
  for _ in $(seq 300); do
    o=$("$1" rdma res show qp link vdev_a)
    grep -q "state INIT" <<<"$o" && break
    sleep 0.1
  done
  echo "$o"
  kill %1' _ "$VRDMA_RUN" 2>&1)
if grep -qE "type RC state INIT .* pid [0-9] comm ibv_rc_pingpong" <<<"$out" && [[ $(wc -l <<<"$out") -eq 1 ]]; then
  pass "a new PID namespace: only its own process's QP, under its PID there ($(grep -o "pid [0-9]*" <<<"$out"))"
else
  fail "rdma res show qp in a PID namespace"; echo "$out"
fi

kill "$pp" "$rp" 2>/dev/null || true
wait "$pp" "$rp" 2>/dev/null || true

# ---- dumps longer than one datagram and than one daemon reply (64 KiB): a program
# holding 1000 QPs and 3000 MRs.
ctl dev set vdev_b qp 1000 mr 3000 pd 16 cq 16 >/dev/null
ip netns exec "$NS" timeout 120 "$VRDMA_RUN" -d vdev_b -- "$VRDMA_BUILD/tests/integration/hog" vdev_b objects --hold \
  >"$WORK/hog.out" 2>&1 &
hog=$!
for _ in $(seq 300); do
  grep -qs holding "$WORK/hog.out" && break
  sleep 0.1
done
count_unique() {  # KEY < JSON: how many objects, how many distinct KEYs
  python3 -c '
import json, sys
rows = json.load(sys.stdin)
print(len(rows), len({o[sys.argv[1]] for o in rows}))' "$1"
}
used=$(ctl -j res show vdev_b | python3 -c '
import json, sys
u = json.load(sys.stdin)[0]["used"]
print(u["qp"], u["mr"])')
got="$(run rdma -j res show qp link vdev_b 2>&1 | count_unique lqpn) $(run rdma -j res show mr dev vdev_b 2>&1 | count_unique mrn)"
read -r nqp nmr <<<"$used"
expect "rdma res show qp and mr: every one of hog's $nqp QPs and $nmr MRs, once" "$got" \
  "$nqp $nqp $nmr $nmr"
[[ $nqp -eq 1000 && $nmr -eq 3000 ]] || fail "hog held $nqp QPs and $nmr MRs, not 1000 and 3000"
# vrdmactl's listing of as many (longer than one message: it comes in a memfd) agrees.
want=$(ctl -j res show mr dev vdev_b | project mrn,lkey,mrlen,pid)
got=$(run rdma -j res show mr dev vdev_b 2>&1 | project mrn,lkey,mrlen,pid)
if [[ $(wc -l <<<"$want") -eq 3000 && "$got" == "$want" ]]; then
  pass "vrdmactl res show mr: hog's 3000 MRs, as rdma lists them"
else
  fail "vrdmactl res show mr (3000): $(wc -l <<<"$want") lines"
fi
expect "vrdmactl res show qp (text): a line per QP" "$(ctl res show qp dev vdev_b | wc -l)" 1000
kill "$hog" 2>/dev/null || true
wait "$hog" 2>/dev/null || true

# ---- counters, after a transfer
run_pair pingpong_counted true -- ibv_rc_pingpong -g 1 -n 50 -p 18516
# compare_counters KIND DEV COUNTER...: `rdma statistic show link DEV/1` against the row
# of `vrdmactl stat show DEV` ({"KIND": DEV}), for those counters; the first not zero.
# shellcheck disable=SC2016
compare_counters() {
  local kind=$1 dev=$2 want got
  shift 2
  want=$(ctl -j stat show "$dev" | python3 -c '
import json, sys
kind, dev, keys = sys.argv[1], sys.argv[2], sys.argv[3:]
for row in json.load(sys.stdin):
    if row.get(kind) == dev and "layer" not in row:
        print(" ".join(f"{k} {row[k]}" for k in keys))' "$kind" "$dev" "$@" 2>&1)
  got=$(run rdma -j statistic show link "$dev/1" 2>&1 | python3 -c '
import json, sys
row = json.load(sys.stdin)[0]
print(" ".join(f"{k} {row[k]}" for k in sys.argv[1:]))' "$@" 2>&1)
  if [[ -n "$want" && "$got" == "$want" && "$got" != "$1 0 "* ]]; then
    pass "rdma statistic show link $dev/1: as vrdmactl stat show ($got)"
  else
    fail "rdma statistic show $dev"; echo "vrdmactl: $want"; echo "rdma: $got"
  fi
}
compare_counters dev vdev_a send_wqes recv_wqes completions  # the vdev's
# the engine's: between two vdevs of one pdev, a pingpong's SENDs run direct (no frames)
compare_counters pdev pdev0 direct_wqes tx_packets rx_packets retransmits

# ---- malformed requests: the kernel's errors; the daemon lives on.
out=$(run python3 "$(dirname "$0")/rdma_netlink_raw.py" 2>&1)
if grep -q "^ok" <<<"$out" && ! grep -q FAIL <<<"$out"; then
  pass "raw requests: $(grep -c ok <<<"$out") answered as the kernel answers"
else
  fail "raw requests"; echo "$out"
fi
expect "vrdmad still answers" "$(run rdma dev show vdev_a 2>&1 | grep -c vdev_a)" 1
finish
