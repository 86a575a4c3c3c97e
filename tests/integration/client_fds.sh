#!/usr/bin/env bash
# Issue 12, items 4 and 9: the descriptors a client shares with vrdmad, and the clients
# when vrdmad goes away.
#
# (a) A tenant (an unprivileged user the test creates, root only of its own user, mount
#     and PID namespaces) clears O_NONBLOCK on the daemon's ends of its event channels and
#     on its doorbell eventfd, shrinks their buffers, never reads its async fd or its
#     completion channel, holds a splice on each reader end, races the daemon for the
#     doorbell counter, and provokes completion and async events for 10 s. Meanwhile
#     another tenant's ibv_rc_pingpong on two other vdevs finishes with its data checked,
#     and `vrdmactl dev show` answers every time; vrdmad is alive after.
# (b) Descriptors that are not the daemon's end of a socketpair (a regular file, a named
#     FIFO, a pipe, a stream socket, a socket connected to a named socket, an O_PATH
#     descriptor) are refused with EINVAL, as the async channel and as a completion channel.
# (c) The daemon goes away — kill -9, SIGTERM — while ibv_rc_pingpong -e waits for
#     completion events and ib_write_bw runs: both exit with an error instead of hanging,
#     and a program checks the client's side: one IBV_EVENT_DEVICE_FATAL, its reader
#     blocked in ibv_get_cq_event gets an error, posts fail, ibv_poll_cq < 0. The same
#     program when `vrdmactl dev del` takes its vdev (daemon alive).
# Timeouts are generous; nothing here measures speed.
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/tenant_lib.sh"
ATTACK="$VRDMA_BUILD/tests/integration/fd_attack"

add_second_pair() {
  in_ns ip link add vrd2 type veth peer name vrd3 2>/dev/null || true
  in_ns ip link set vrd2 mtu 9000 up
  in_ns ip link set vrd3 mtu 9000 up
  in_ns ip addr replace 10.78.0.1/24 dev vrd2
  in_ns ip addr replace 10.78.0.2/24 dev vrd3
}

add_vdevs() {
  ctl dev add vdev_a pdev pdev0 netdev vrd0 >/dev/null
  ctl dev add vdev_b pdev pdev0 netdev vrd1 >/dev/null
  ctl dev add vdev_c pdev pdev0 netdev vrd2 >/dev/null
  ctl dev add vdev_d pdev pdev0 netdev vrd3 >/dev/null
}

setup_hosts
add_second_pair
start_daemon
add_vdevs
tenant_ready
attacker=$(tenant_user fds)
other=$(tenant_user fds2)

# ---- (a) the flood ------------------------------------------------------------------------
as_tenant "$attacker" timeout 120 "$VRDMA_RUN" -d vdev_a -- "$ATTACK" flood 10 \
  >"$WORK/flood.log" 2>&1 &
flood=$!
sleep 1
as_tenant "$other" timeout 120 "$VRDMA_RUN" -d vdev_c -- ibv_rc_pingpong -g 3 -c -s 4096 \
  -n 5000 -p 18530 >"$WORK/good.server" 2>&1 &
good_srv=$!
sleep 0.5
as_tenant "$other" timeout 120 "$VRDMA_RUN" -d vdev_d -- ibv_rc_pingpong -g 3 -c -s 4096 \
  -n 5000 -p 18530 127.0.0.1 >"$WORK/good.client" 2>&1 &
good_cli=$!
# The administrator's view answers during the attack (a daemon blocked on the attacker's
# descriptor answered nothing at all).
shows=0
for _ in 1 2 3 4 5; do
  if in_ns timeout 10 "$VRDMACTL" dev show >/dev/null; then
    shows=$((shows + 1))
  fi
  sleep 1
done
if [[ $shows -eq 5 ]]; then
  pass "vrdmactl dev show answers during the attack (5 of 5)"
else
  fail "vrdmactl dev show answered $shows of 5 during the attack"
fi
rc=0
wait "$flood" || rc=$?
sed 's/^/  /' "$WORK/flood.log"
if [[ $rc -eq 0 ]]; then
  pass "the attacker flooded its own channels and the daemon kept serving it"
else
  fail "flood (rc=$rc)"
fi
good=0
wait "$good_srv" || good=$?
wait "$good_cli" || good=$?
if [[ $good -eq 0 ]] && grep -q "iters in" "$WORK/good.client" && grep -q "iters in" "$WORK/good.server"; then
  pass "other tenant's pingpong finished with its data checked"
else
  fail "other tenant's pingpong (rc=$good)"; tail "$WORK/good.client" "$WORK/good.server"
fi
if kill -0 "$DAEMON_PID"; then pass "vrdmad alive after the flood"; else fail "vrdmad died"; fi
sleep 0.5
check_all_freed "every resource of the attacker freed"

# ---- (b) descriptors that are not an event channel ----------------------------------------
mkfifo -m 0666 "$WORK/fifo"
rc=0
as_tenant "$attacker" "$ATTACK" refuse vdev_a "$WORK/fifo" >"$WORK/refuse.log" 2>&1 || rc=$?
sed 's/^/  /' "$WORK/refuse.log"
if [[ $rc -eq 0 ]]; then
  pass "files, FIFOs, pipes and foreign sockets refused as event channels (EINVAL)"
else
  fail "refuse (rc=$rc)"
fi

# ---- (c) the daemon goes away ---------------------------------------------------------------
# wait_ready FILE: until the program printed READY (or 30 s).
wait_ready() {
  for _ in $(seq 300); do
    grep -q READY "$1" 2>/dev/null && return 0
    sleep 0.1
  done
  return 1
}

# A pingpong waiting for completion events, an ib_write_bw, the checking program.
start_victims() {
  local tag=$1
  in_ns timeout 120 "$VRDMA_RUN" -d vdev_c -- ibv_rc_pingpong -g 3 -e -n 100000000 -p 18531 \
    >"$WORK/$tag.pp.server" 2>&1 &
  pp_srv=$!
  sleep 0.5
  in_ns timeout 120 "$VRDMA_RUN" -d vdev_d -- ibv_rc_pingpong -g 3 -e -n 100000000 -p 18531 \
    127.0.0.1 >"$WORK/$tag.pp.client" 2>&1 &
  pp_cli=$!
  in_ns timeout 120 "$VRDMA_RUN" -d vdev_a -- ib_write_bw -x 3 -D 100 -p 18532 \
    >"$WORK/$tag.bw.server" 2>&1 &
  bw_srv=$!
  sleep 0.5
  in_ns timeout 120 "$VRDMA_RUN" -d vdev_b -- ib_write_bw -x 3 -D 100 -p 18532 127.0.0.1 \
    >"$WORK/$tag.bw.client" 2>&1 &
  bw_cli=$!
  as_tenant "$attacker" timeout 120 "$VRDMA_RUN" -d vdev_a -- "$ATTACK" death \
    >"$WORK/$tag.death" 2>&1 &
  death=$!
  wait_ready "$WORK/$tag.death" || fail "$tag: the checking program did not start"
  # Both tools connected and running (each prints its local address once connected).
  for _ in $(seq 100); do
    grep -q "local address" "$WORK/$tag.pp.client" 2>/dev/null &&
      grep -q "local address" "$WORK/$tag.bw.client" 2>/dev/null && break
    sleep 0.1
  done
  sleep 2
}

# check_victims TAG: everything exited, with an error, before its 120 s timeout.
check_victims() {
  local tag=$1 rc name pid
  local -A out=([pp_srv]=pp.server [pp_cli]=pp.client [bw_srv]=bw.server [bw_cli]=bw.client)
  for name in pp_srv pp_cli bw_srv bw_cli; do
    pid=${!name}
    rc=0
    wait "$pid" || rc=$?
    if [[ $rc -ne 0 && $rc -ne 124 && $rc -lt 128 ]]; then
      pass "$tag: $name exited with an error (rc=$rc), no hang"
    else
      fail "$tag: $name rc=$rc (124: hung until its timeout)"
    fi
    tail -3 "$WORK/$tag.${out[$name]}" | sed 's/^/    /' || true
  done
  rc=0
  wait "$death" || rc=$?
  sed 's/^/  /' "$WORK/$tag.death"
  if [[ $rc -eq 0 ]]; then
    pass "$tag: one DEVICE_FATAL, blocked reader woken, posts fail, poll_cq < 0"
  else
    fail "$tag: the client's view (rc=$rc)"
  fi
}

for how in KILL TERM; do
  start_victims "SIG$how"
  kill -"$how" "$DAEMON_PID"
  wait "$DAEMON_PID" 2>/dev/null || true
  check_victims "SIG$how"
  DAEMON_PID=""
  rm -f "$VRDMA_SOCKET"  # left behind by kill -9
  start_daemon
  add_vdevs
done

# The vdev deleted under its client, the daemon alive and the connection kept.
as_tenant "$attacker" timeout 120 "$VRDMA_RUN" -d vdev_a -- "$ATTACK" death \
  >"$WORK/del.death" 2>&1 &
death=$!
wait_ready "$WORK/del.death" || fail "dev del: the checking program did not start"
sleep 0.5
ctl dev del vdev_a
rc=0
wait "$death" || rc=$?
sed 's/^/  /' "$WORK/del.death"
if [[ $rc -eq 0 ]]; then
  pass "dev del: one DEVICE_FATAL, blocked reader woken, posts fail, poll_cq < 0"
else
  fail "dev del: the client's view (rc=$rc)"
fi
if kill -0 "$DAEMON_PID"; then pass "vrdmad alive after dev del"; else fail "vrdmad died"; fi
finish
