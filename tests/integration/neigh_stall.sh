#!/usr/bin/env bash
# One client stalls everyone (issue 12, item 7): tenants create AHs and move a QP to RTR
# toward an on-link address nobody answers, so each request waits ~3 s for the kernel to
# resolve the neighbour, while another tenant's ibv_rc_pingpong runs on two other vdevs.
# The waiting must be the asking client's alone:
#   - vrdmactl is answered while the AH requests are outstanding;
#   - the well-behaved pair finishes while the stalling clients still wait;
#   - the stalling clients get their error (ETIMEDOUT, as ib_core's rdma_resolve_ip gives
#     for a neighbour that does not answer) for every AH and for the RTR transition;
#   - a client killed while its request waits is cleaned up, and vrdmad lives on.
# The vdevs are on a pdev with a port (AF_PACKET), as on a NIC: the internal switch has
# no neighbours to resolve.
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/tenant_lib.sh"
STALL="$VRDMA_BUILD/tests/integration/ah_stall"
SILENT=10.78.0.99  # on vrdm2's subnet; no interface has it, nobody answers its ARP
GID_V2_IPV4=3      # vdev_s's RoCEv2 GID of 10.78.0.1
COUNT=3            # AHs per stalling client, then one RTR: ~12 s each

# The pdev's port is vrdp0 (its peer vrdp1 has no address); the vdevs are on macvlans of
# it, as on a NIC's port: vrdm0 and vrdm1 for the pingpong, vrdm2 for the stalling tenants.
ip netns add "$NS"
in_ns ip link set lo up
in_ns ip link add vrdp0 type veth peer name vrdp1
in_ns ip link set vrdp0 mtu 9000 up
in_ns ip link set vrdp1 mtu 9000 up
for i in 0 1 2; do
  in_ns ip link add "vrdm$i" link vrdp0 type macvlan mode bridge
  in_ns ip link set "vrdm$i" mtu 9000 up
done
in_ns ip addr add 10.77.0.1/24 dev vrdm0
in_ns ip addr add 10.77.0.2/24 dev vrdm1
in_ns ip addr add 10.78.0.1/24 dev vrdm2
tenant_ready
ip netns exec "$NS" "$VRDMAD" -l 0 --no-huge -m 512 --no-pci --no-telemetry \
  --file-prefix "vrdma-neigh-$$" -- --socket "$VRDMA_SOCKET" \
  --pdev "pdev_p,iface=vrdp0,type=af_packet" >"$WORK/vrdmad.log" 2>&1 &
DAEMON_PID=$!
wait_for_daemon "$VRDMA_SOCKET" "$DAEMON_PID" "$WORK/vrdmad.log"
ctl dev add vdev_a pdev pdev_p netdev vrdm0 >/dev/null
ctl dev add vdev_b pdev pdev_p netdev vrdm1 >/dev/null
ctl dev add vdev_s pdev pdev_p netdev vrdm2 >/dev/null
STALLER=$(tenant_user staller)
GOOD=$(tenant_user good)

# wait_line FILE REGEX [TENTHS]: until FILE has a line matching REGEX.
wait_line() {
  for _ in $(seq "${3:-100}"); do
    grep -qE "$2" "$1" 2>/dev/null && return 0
    sleep 0.1
  done
  return 1
}

# ---- two stalling clients, each waiting on one request at a time ----------------------
as_user "$STALLER" timeout 120 "$VRDMA_RUN" -d vdev_s -- "$STALL" vdev_s $GID_V2_IPV4 $SILENT $COUNT \
  >"$WORK/stall1.out" 2>&1 &
stall1=$!
as_tenant "$STALLER" timeout 120 "$VRDMA_RUN" -d vdev_s -- "$STALL" vdev_s $GID_V2_IPV4 $SILENT $COUNT \
  >"$WORK/stall2.out" 2>&1 &
stall2=$!
if wait_line "$WORK/stall1.out" "^ah_begin i=0" && wait_line "$WORK/stall2.out" "^ah_begin i=0"; then
  pass "two stalling clients are waiting for their first AH"
else
  fail "stalling clients did not start"; cat "$WORK/stall1.out" "$WORK/stall2.out"
fi

# ---- the daemon answers others meanwhile -----------------------------------------------
sleep 0.3
if out=$(timeout 2 "$VRDMACTL" dev show 2>&1) && grep -qw vdev_s <<<"$out" &&
  ! grep -q "^ah_end i=0" "$WORK/stall1.out" && ! grep -q "^ah_end i=0" "$WORK/stall2.out"; then
  pass "vrdmactl dev show answered while both AH requests were outstanding"
else
  fail "vrdmactl dev show while AHs resolve: $out"; cat "$WORK/stall1.out" "$WORK/stall2.out"
fi

# ---- a well-behaved tenant's pingpong finishes while they still wait -------------------
good() {
  as_user "$GOOD" timeout 120 "$VRDMA_RUN" -d "$1" -- ibv_rc_pingpong -g 3 -s 1024 -n 500 \
    -p 18600 "${@:2}"
}
good vdev_a >"$WORK/good.server" 2>&1 &
good_srv=$!
sleep 0.5
rc=0
good vdev_b 127.0.0.1 >"$WORK/good.client" 2>&1 || rc=$?
wait "$good_srv" || rc=$?
still1=$(grep -c "^done" "$WORK/stall1.out" || true)
still2=$(grep -c "^done" "$WORK/stall2.out" || true)
if [[ $rc -eq 0 ]] && grep -q "iters in" "$WORK/good.client" && grep -q "iters in" "$WORK/good.server"; then
  pass "the well-behaved pair finished ($(grep -o '[0-9.]* seconds' "$WORK/good.client" | head -1))"
else
  fail "the well-behaved pair (rc=$rc)"; tail -n 3 "$WORK/good.client" "$WORK/good.server"
fi
if [[ $still1 -eq 0 && $still2 -eq 0 ]]; then
  pass "... while the stalling clients were still waiting ($(grep -c ^ah_end "$WORK/stall1.out") and $(grep -c ^ah_end "$WORK/stall2.out") of $COUNT AHs answered)"
else
  fail "a stalling client was done before the pingpong: $(cat "$WORK/stall1.out" "$WORK/stall2.out")"
fi

# ---- the stalling clients get their error ---------------------------------------------
rc=0
wait "$stall1" || rc=$?
wait "$stall2" || rc=$?
for f in stall1 stall2; do
  n=$(grep -c "^ah_end i=[0-9]* errno=110 " "$WORK/$f.out" || true)
  if [[ $rc -eq 0 && $n -eq $COUNT ]] && grep -q "^rtr_end errno=110 " "$WORK/$f.out" &&
    grep -q "^done" "$WORK/$f.out"; then
    pass "$f: every AH and the RTR transition failed with ETIMEDOUT"
  else
    fail "$f (rc=$rc)"; cat "$WORK/$f.out"
  fi
done
# Each waited its ~3 s (the kernel's answer, not an early give-up): begin to end.
slow=$(awk '/^ah_begin/ {split($3, a, "="); b = a[2]} /^ah_end/ {split($4, a, "="); if (a[2] - b >= 2500) n++} END {print n + 0}' "$WORK/stall1.out")
if [[ $slow -eq $COUNT ]]; then
  pass "each AH request waited for the neighbour (>= 2.5 s)"
else
  fail "AH requests answered early: $(cat "$WORK/stall1.out")"
fi

# ---- a client killed while its request waits ------------------------------------------
as_user "$STALLER" "$VRDMA_RUN" -d vdev_s -- "$STALL" vdev_s $GID_V2_IPV4 $SILENT 1 \
  >"$WORK/stall3.out" 2>&1 &
stall3=$!
wait_line "$WORK/stall3.out" "^ah_begin i=0" || true
sleep 0.5
pkill -KILL -P "$stall3" 2>/dev/null || true
kill -KILL "$stall3" 2>/dev/null || true
wait "$stall3" 2>/dev/null || true
sleep 4  # past the resolution's deadline: nothing is left to answer a closed connection
if kill -0 "$DAEMON_PID" 2>/dev/null && ctl dev show | grep -qw vdev_s &&
  ! grep -q "^ah_end" "$WORK/stall3.out"; then
  pass "a client killed while its AH waited: vrdmad alive and answering"
else
  fail "after killing a waiting client"; cat "$WORK/stall3.out"
fi
res=$(ctl -j res show)
if grep -q '"ifname"' <<<"$res" && ! grep -q '"pid"' <<<"$res"; then
  pass "every context closed, nothing left (the killed client's included)"
else
  fail "contexts left: $res"
fi
if [[ $(grep -c "context_close" "$WORK/vrdmad.log") -ge 5 ]]; then
  pass "the daemon closed every stalling and pingpong context"
else
  fail "context_close lines: $(grep -c context_close "$WORK/vrdmad.log")"
fi
if kill -0 "$DAEMON_PID" 2>/dev/null; then pass "vrdmad alive"; else fail "vrdmad died"; fi
finish
