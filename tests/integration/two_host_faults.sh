#!/usr/bin/env bash
# Two hosts over a lossy and damaging link: nftables on the wire between them (a bridge
# in a third namespace) drops 1% and 5% of the frames each way (hosts.sh, wire_loss), the
# ports' own fault injection duplicates, reorders and corrupts frames; every transfer
# completes with correct data. Then one host's vrdmad is killed mid-transfer: the other
# side's QP ends with retry-exceeded in the time its attributes allow, nothing hangs,
# and the restarted daemon serves new connections.
WIRE=bridge
source "$(dirname "$0")/hosts.sh"
setup_two_hosts

# ibv_rc_pingpong has no closing handshake: a side exits as soon as its own sends and
# receives are done. When the wire drops the ACK of one side's last SEND after the peer
# has exited, that side's retransmissions meet a destroyed QP and its SEND ends with
# retry exceeded (status 12), as against any RoCE NIC. That case, and only it, is
# accepted: the peer received and checked (-c) all 200 messages, so the failed SEND was
# delivered, and the failed side's only failure is that SEND (wr_id 2).
last_ack_lost_after_peer_exit() {
  grep -q "^200 iters in" "$2" && [[ $(grep -c "Failed status" "$1") == 1 ]] &&
    grep -q "Failed status transport retry counter exceeded (12) for wr_id 2$" "$1"
}

# Reliable transfers whose data the tools check: the pingpong's -c, the data checker.
data_runs() {
  local tag="$1"
  ONE_SIDE_FAILURE_OK=last_ack_lost_after_peer_exit
  run_cross "rc_pingpong-64k-$tag" summary A -- ibv_rc_pingpong -g 3 -c -s 65536 -n 200
  run_cross "rc_pingpong-ipv6-$tag" summary B -- ibv_rc_pingpong -g 5 -c -s 20000 -n 200
  ONE_SIDE_FAILURE_OK=
  run_cross "ib_write_bw-$tag" one_size B -- ib_write_bw -x 3 -s 1048576 -n 200
  run_cross "ib_read_bw-$tag" one_size A -- ib_read_bw -x 3 -s 1048576 -n 200
  # The wire may drop the one NAK of a refused request (verbs_check's misaligned atomic).
  if VRDMA_TEST_LOSSY_WIRE=1 VRDMA_SOCKET="$SOCK_A:$SOCK_B" VRDMACTL="$VRDMACTL" timeout 300 "$VRDMA_RUN" -- \
       "$VRDMA_BUILD/tests/integration/verbs_check" --gtest_color=no \
       --gtest_filter='PostApis/RcTest.SendGathersAndScatters/*:PostApis/RcTest.RdmaWrite*:PostApis/RcTest.RdmaRead/*:PostApis/RcTest.Atomics/*' \
       >"$WORK/verbs_check-$tag.log" 2>&1; then
    pass "verbs_check data tests ($tag)"
  else
    fail "verbs_check data tests ($tag)"; grep -E "Failure|FAILED|Expected|Which is" "$WORK/verbs_check-$tag.log" | head
  fi
}

# counter HOST COUNTER: a vdev counter of host A or B (vrdmactl stat show).
counter() {
  local line
  if [[ $1 == A ]]; then line=$(ctl_a stat show | head -1); else line=$(ctl_b stat show | head -1); fi
  grep -o " $2 [0-9]*" <<<"$line" | awk '{print $2}'
}

for pct in 1 5; do
  wire_loss "$pct"
  ra=$(counter A retransmits) rb=$(counter B retransmits)
  data_runs "loss${pct}pct"
  da=$(wire_dropped a)
  db=$(wire_dropped b)
  ra=$(( $(counter A retransmits) - ra )) rb=$(( $(counter B retransmits) - rb ))
  echo "    the wire dropped $db frames to B and $da to A; retransmissions: A $ra, B $rb"
  # The losses are real: both requesters had to go back for lost packets.
  if [[ $da -gt 0 && $db -gt 0 && $ra -gt 0 && $rb -gt 0 ]]; then
    pass "loss ${pct}%: frames were lost both ways and recovered by retransmission"
  else
    fail "loss ${pct}%: no loss recovered (dropped $da/$db, retransmitted $ra/$rb)"
  fi
  wire_loss 0
done

# The ports' own fault injection: duplicates, reordering and bit flips (caught by the
# ICRC) on both hosts.
stop_pid "$PID_A"
stop_pid "$PID_B"
PDEV_OPTIONS=",dup=0.02,reorder=0.02,corrupt=0.01" start_vrdmad A
PDEV_OPTIONS=",dup=0.02,reorder=0.02,corrupt=0.01" start_vrdmad B
ctl_a dev add vdev_a pdev pdev_A netdev vA >/dev/null
ctl_b dev add vdev_b pdev pdev_B netdev vB >/dev/null
data_runs port_faults
dups=$(( $(counter A rx_duplicate) + $(counter B rx_duplicate) ))
bad=$(( $(counter A rx_malformed) + $(counter B rx_malformed) ))
echo "    duplicates seen $dups, corrupted frames dropped $bad"
if [[ $dups -gt 0 && $bad -gt 0 ]]; then pass "port faults reached the engines (duplicates, bad ICRC)"; else fail "port faults not seen ($dups $bad)"; fi

# Kill host B's vrdmad in the middle of a transfer from A.
stop_pid "$PID_A"
stop_pid "$PID_B"
PID_A="" PID_B=""
start_vrdmad A
start_vrdmad B
ctl_a dev add vdev_a pdev pdev_A netdev vA >/dev/null
ctl_b dev add vdev_b pdev pdev_B netdev vB >/dev/null
unreach_before=$(icmp_unreach "$NS_B")
on_b timeout 60 "$VRDMA_RUN" -d vdev_b -- ib_write_bw -x 3 -s 65536 -D 20 >"$WORK/kill.server" 2>&1 &
kserver=$!
sleep 1
on_a timeout 60 "$VRDMA_RUN" -d vdev_a -- ib_write_bw -x 3 -s 65536 -D 20 10.77.0.2 >"$WORK/kill.client" 2>&1 &
kclient=$!
sleep 3
kill -KILL "$PID_B"
t0=$(date +%s%N)
wait "$PID_B" 2>/dev/null || true
crc=0
wait "$kclient" || crc=$?
t1=$(date +%s%N)
ms=$(( (t1 - t0) / 1000000 ))
kill -KILL "$kserver" 2>/dev/null || true
wait "$kserver" 2>/dev/null || true
PID_B=""
echo "    client ended ${ms} ms after the kill: rc=$crc, $(grep -m1 -i 'status' "$WORK/kill.client")"
# perftest's QPs: timeout 14 (4.096 us * 2^14 = 67 ms) and retry_cnt 7, so the error
# comes after about 8 * 67 ms; allow for scheduling on two cores.
if [[ $crc -ne 0 && $ms -lt 10000 ]] && grep -qE "status 12|RETRY_EXC|retry counter exceeded" "$WORK/kill.client"; then
  pass "peer killed: the client's QP ends with retry exceeded, nothing hangs"
else
  fail "peer killed (rc=$crc after ${ms} ms)"; tail -5 "$WORK/kill.client"
fi
# With no vrdmad holding UDP 4791, B's kernel answered the retransmissions with ICMP
# port unreachable: the hold is what keeps it quiet while vrdmad runs.
unreach_after=$(icmp_unreach "$NS_B")
if [[ $unreach_after -gt $unreach_before ]]; then
  pass "without vrdmad the kernel answers RoCE with ICMP unreachable (the hold matters)"
else
  fail "no ICMP unreachable after the kill ($unreach_before -> $unreach_after)"
fi
start_vrdmad B
ctl_b dev add vdev_b pdev pdev_B netdev vB >/dev/null
run_cross rc_pingpong-after-restart summary B -- ibv_rc_pingpong -g 3 -c -n 200
finish
