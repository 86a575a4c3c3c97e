#!/usr/bin/env bash
# Tenants attack who the daemon thinks a client is (issue 12, items 1, 2 and 6), as
# unprivileged users the test creates, some root in user namespaces of their own, while a
# well-behaved tenant's ibv_rc_pingpong moves checked data on two other vdevs (through
# items 1 to 4; it has ended before the floods of item 6, whose caps are counted):
#   1. PID reuse: a client connects, forks and exits; a victim of another user is placed
#      at its PID; the client's child registers the victim's address by reference.
#   2. Borrowed admin rights: `vrdmactl dev add|set|del` as root of a user namespace, and
#      `dev del` on a connection whose first owner exec'd a setuid program.
#   3. A regular file bind-mounted on /dev/zero and unlinked, so that its mapping reads as
#      shared anonymous memory: refused (the object is checked, not its name).
#   4. Another tenant's memory windows, named by their handles and keys in the attacker's
#      own work requests: bind, local invalidate, a write through a type 1 window from a
#      QP of another PD, deallocation. Each refused; the victim's windows keep working.
#   6. Connection floods: per-user and total caps answer with a reason, root still gets in,
#      no vdev is lost.
# vrdmad runs in a PID namespace of the test's own, so the test can place a process at a
# chosen PID (ns_last_pid), as an attacker who wins the race for a PID would.
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/tenant_lib.sh"
ATTACK="$VRDMA_BUILD/tests/integration/tenant_attack"

setup_hosts
setup_second_pair
tenant_ready
ip netns exec "$NS" unshare --pid --fork --kill-child --mount-proc "$VRDMAD" --socket "$VRDMA_SOCKET" \
  --max-connections 100 --max-connections-per-user 64 --log-level debug >"$WORK/vrdmad.log" 2>&1 &
DAEMON_PID=$!
wait_for_daemon "$VRDMA_SOCKET" "$DAEMON_PID" "$WORK/vrdmad.log"
VRDMAD_PID=$(pgrep -P "$DAEMON_PID" | head -1)
[[ -n "$VRDMAD_PID" ]] || { echo "vrdmad not found under $DAEMON_PID"; exit 1; }

# Everything below runs in the daemon's PID namespace and the test's network namespace.
in_dns() { nsenter --target "$VRDMAD_PID" --pid --net -- "$@"; }
dns_as() {
  local user=$1
  shift
  in_dns setpriv --reuid "$user" --regid "$user" --clear-groups --inh-caps=-all \
    --bounding-set=-all -- env VRDMA_SOCKET="$VRDMA_SOCKET" "$@"
}
dns_tenant() {
  local user=$1
  shift
  dns_as "$user" unshare --user --map-root-user --mount --pid --fork -- "$@"
}
ctl() { in_dns "$VRDMACTL" "$@"; }

ctl dev add vdev_a pdev pdev0 netdev vrd0 >/dev/null
ctl dev add vdev_b pdev pdev0 netdev vrd1 >/dev/null
ctl dev add vdev_c pdev pdev0 netdev vrd2 >/dev/null
ctl dev add vdev_d pdev pdev0 netdev vrd3 >/dev/null
ATTACKER=$(tenant_user attacker)
VICTIM=$(tenant_user victim)
GOOD=$(tenant_user good)
FLOOD2=$(tenant_user flood2)

# The well-behaved tenant, checking every byte, through the attacks of items 1 to 4.
in_dns setpriv --reuid "$GOOD" --regid "$GOOD" --clear-groups -- env VRDMA_SOCKET="$VRDMA_SOCKET" \
  timeout 300 "$VRDMA_RUN" -d vdev_c -- ibv_rc_pingpong -g 3 -c -s 4096 -n 150000 -p 18515 \
  >"$WORK/good.server" 2>&1 &
good_srv=$!
sleep 0.5
in_dns setpriv --reuid "$GOOD" --regid "$GOOD" --clear-groups -- env VRDMA_SOCKET="$VRDMA_SOCKET" \
  timeout 300 "$VRDMA_RUN" -d vdev_d -- ibv_rc_pingpong -g 3 -c -s 4096 -n 150000 -p 18515 \
  127.0.0.1 >"$WORK/good.client" 2>&1 &
good_cli=$!

# ---- 1. PID reuse ---------------------------------------------------------------------
SHARED="$WORK/pid-reuse"
mkdir -m 1777 "$SHARED"
dns_as "$ATTACKER" "$VRDMA_RUN" -d vdev_a -- "$ATTACK" pid-reuse-attacker vdev_a "$SHARED" \
  >"$WORK/attacker.out" 2>&1 &
attacker=$!
apid=""
for _ in $(seq 100); do
  apid=$(sed -n 's/^attacker_pid=//p' "$WORK/attacker.out")
  [[ -n "$apid" ]] && break
  sleep 0.1
done
if grep -q "^own_reg=ok" "$WORK/attacker.out"; then
  pass "a client registers its own shared memory by reference"
else
  fail "own registration by reference"; cat "$WORK/attacker.out"
fi
# The process the daemon identified has exited (its parent reaped it): place the victim,
# another user, at its PID.
for _ in $(seq 100); do
  in_dns sh -c "kill -0 $apid" 2>/dev/null || break
  sleep 0.1
done
in_dns sh -c "echo $((apid - 1)) > /proc/sys/kernel/ns_last_pid;
  setpriv --reuid $VICTIM --regid $VICTIM --clear-groups -- '$ATTACK' pid-reuse-victim '$SHARED'; :" \
  >"$WORK/victim.out" 2>&1 &
victim=$!
for _ in $(seq 150); do
  grep -q "^victim_reg=" "$WORK/attacker.out" && break
  sleep 0.2
done
vpid=$(sed -n 's/^victim_pid=//p' "$WORK/attacker.out")
if [[ -z "$apid" || "$vpid" != "$apid" ]]; then
  fail "set-up: the victim did not get the attacker's PID ($vpid vs $apid)"; cat "$WORK/attacker.out"
elif grep -q "^victim_reg=refused" "$WORK/attacker.out"; then
  pass "PID reuse: the victim's memory (PID $vpid, user $VICTIM) is refused to the exited client's connection"
else
  fail "PID reuse: the victim's memory was registered"; cat "$WORK/attacker.out"
fi
pkill -KILL -f "tenant_attack pid-reuse" 2>/dev/null || true
wait "$attacker" "$victim" 2>/dev/null || true

# ---- 2. admin rights ------------------------------------------------------------------
for cmd in "dev add vdev_x pdev pdev0 netdev vrd2" "dev set vdev_b qp 4" "dev del vdev_b"; do
  # shellcheck disable=SC2086
  if out=$(dns_tenant "$ATTACKER" "$VRDMACTL" $cmd 2>&1); then
    fail "root of a user namespace: vrdmactl $cmd succeeded"
  elif grep -q "not permitted" <<<"$out"; then
    pass "root of a user namespace: vrdmactl $cmd refused ($out)"
  else
    fail "vrdmactl $cmd: unexpected: $out"
  fi
done
out=$(dns_as "$ATTACKER" "$ATTACK" admin-after-setuid vdev_b 2>&1 || true)
if grep -q "^dev_del_status=1$" <<<"$out"; then
  pass "setuid exec after connect: dev del refused (EPERM)"
else
  fail "setuid exec after connect: $out"
fi
if ctl dev show | grep -qw vdev_b && ! ctl dev show | grep -qw vdev_x; then
  pass "no device added or deleted by a tenant"
else
  fail "devices changed by a tenant"; ctl dev show
fi

# ---- 3. (first line) a regular file passed off as shared anonymous memory ---------------
out=$(dns_tenant "$ATTACKER" sh -c 'f=$(mktemp) && mount --bind "$f" /dev/zero &&
  exec "$0" -d vdev_a -- "$1" fake-dev-zero vdev_a "$f"' "$VRDMA_RUN" "$ATTACK" 2>&1 || true)
if grep -q "dev/zero (deleted)" <<<"$out" && grep -q "^fake_reg=refused errno=95" <<<"$out"; then
  pass "a truncatable file mapped as '/dev/zero (deleted)' is refused (EOPNOTSUPP)"
else
  fail "fake /dev/zero: $out"
fi

# ---- 3b. a raw packet QP (frames onto the wire) as root of a user namespace --------------
out=$(dns_tenant "$ATTACKER" "$VRDMA_RUN" -d vdev_a -- "$ATTACK" raw-qp vdev_a 2>&1 || true)
if grep -q "^raw_qp=refused errno=1$" <<<"$out"; then
  pass "a raw packet QP as root of a user namespace is refused (EPERM: no CAP_NET_RAW of vrdmad's)"
else
  fail "raw packet QP by a tenant: $out"
fi

# ---- 4. memory windows: another tenant's, named by handle and key ------------------------
# The victim binds a type 1 and a type 2 window onto its memory; the attacker, another user
# and root of its own user namespace on another vdev, names them in its own work requests.
MWDIR="$WORK/windows"
mkdir -m 1777 "$MWDIR"
dns_as "$VICTIM" "$VRDMA_RUN" -d vdev_a -- "$ATTACK" mw-victim vdev_a "$MWDIR" \
  >"$WORK/mw-victim.out" 2>&1 &
mw_victim=$!
out=$(dns_tenant "$ATTACKER" "$VRDMA_RUN" -d vdev_b -- "$ATTACK" mw-attacker vdev_b "$MWDIR" 2>&1 || true)
wait "$mw_victim" || true
for want in "bind_type1=memory management operation error" \
  "bind_type2=memory management operation error" \
  "local_inv_type1=local QP operation error" "local_inv_type2=local QP operation error" \
  "write_type1=(remote access error|Work Request Flushed Error)" "dealloc=22"; do
  # (The write's QP is connected to itself: the responder's access error ends the QP, which
  # may flush the request before the NAK completes it. Either way it is refused.)
  if grep -qxE "$want" <<<"$out"; then
    pass "another tenant's window refused: $(grep -xE "$want" <<<"$out")"
  else
    fail "another tenant's window: expected $want"; echo "$out"
  fi
done
if grep -q "^victim_windows=intact" "$WORK/mw-victim.out"; then
  pass "the victim's windows stay bound, its memory untouched"
else
  fail "the victim's windows"; cat "$WORK/mw-victim.out"
fi

# ---- the well-behaved tenant carried on through the attacks ----------------------------
# (It ends before the floods: the caps below are counted exactly, with no connection of
# another tenant coming or going while they are judged.)
good=0
wait "$good_srv" || good=$?
wait "$good_cli" || good=$?
if [[ $good -eq 0 ]] && grep -q "iters in" "$WORK/good.client" && grep -q "iters in" "$WORK/good.server"; then
  pass "well-behaved tenant unaffected"
else
  fail "well-behaved tenant (rc=$good)"; tail -3 "$WORK/good.client" "$WORK/good.server"
fi

# ---- 6. connection floods -------------------------------------------------------------
# FLOOD connects N times to the socket and holds every connection for S seconds.
FLOOD='import socket, sys, time
conns = []
for _ in range(int(sys.argv[2])):
    s = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    s.connect(sys.argv[1])
    conns.append(s)
print("connected", len(conns), flush=True)
time.sleep(float(sys.argv[3]))'
dns_as "$ATTACKER" python3 -c "$FLOOD" "$VRDMA_SOCKET" 200 30 >"$WORK/flood1.out" 2>&1 &
flood1=$!
for _ in $(seq 100); do grep -q connected "$WORK/flood1.out" 2>/dev/null && break; sleep 0.1; done
sleep 1  # accepted, up to the per-user cap, before the second user floods
dns_as "$FLOOD2" python3 -c "$FLOOD" "$VRDMA_SOCKET" 200 30 >"$WORK/flood2.out" 2>&1 &
flood2=$!
# Both floods have made their connections (a loaded machine takes its time), and the
# daemon has had a moment to take them in.
for _ in $(seq 200); do grep -q connected "$WORK/flood2.out" 2>/dev/null && break; sleep 0.1; done
sleep 1
out=$(dns_as "$ATTACKER" "$VRDMACTL" dev show 2>&1 || true)
if grep -q "too many client connections of uid" <<<"$out"; then
  pass "per-user cap: the flooding user is refused with a reason ($out)"
else
  fail "per-user cap: $out"
fi
out=$(dns_as "$VICTIM" "$VRDMACTL" dev show 2>&1 || true)
if grep -q "too many client connections (100)" <<<"$out"; then
  pass "total cap: a third user is refused with a reason"
else
  fail "total cap: $out"
fi
if ctl dev show | grep -qw vdev_a; then
  pass "root gets in while tenants hold every connection they may"
else
  fail "root refused during the flood"
fi
pkill -KILL -f "import socket, sys, time" 2>/dev/null || true
wait "$flood1" "$flood2" 2>/dev/null || true
sleep 1
if dns_as "$VICTIM" "$VRDMACTL" dev show | grep -qw vdev_a; then
  pass "the flood's connections are released"
else
  fail "connections not released after the flood"
fi

# ---- the daemon and the other tenants carried on --------------------------------------
if kill -0 "$VRDMAD_PID" 2>/dev/null; then pass "vrdmad alive"; else fail "vrdmad died"; fi
if [[ $(ctl dev show | grep -ow "vdev_[a-d]" | sort -u | wc -l) -eq 4 ]] && ! grep -q "netdev_gone" "$WORK/vrdmad.log"; then
  pass "every vdev still there, none deleted as netdev_gone"
else
  fail "a vdev was lost"; ctl dev show; grep vdev_del "$WORK/vrdmad.log" || true
fi
finish
