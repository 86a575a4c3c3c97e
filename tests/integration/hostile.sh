#!/usr/bin/env bash
# Bad input and failure: a hostile client (its own protocol code: garbage requests,
# other clients' handles and keys, fake memory descriptors, scribbled rings), a client
# that stops polling, and clients killed with SIGKILL mid-transfer — while a well-behaved
# pair on two other vdevs moves data with its check on. The daemon keeps running, the
# well-behaved pair finishes correctly, and everything of the dead clients is freed.
source "$(dirname "$0")/lib.sh"
setup_default
setup_second_pair
ctl dev add vdev_c pdev pdev0 netdev vrd2 >/dev/null
ctl dev add vdev_d pdev pdev0 netdev vrd3 >/dev/null

# The well-behaved pair, checking every byte it receives, for the whole test.
in_ns timeout 300 "$VRDMA_RUN" -d vdev_c -- ibv_rc_pingpong -g 3 -c -s 4096 -n 30000 -p 18515 \
  >"$WORK/good.server" 2>&1 &
good_srv=$!
sleep 0.5
in_ns timeout 300 "$VRDMA_RUN" -d vdev_d -- ibv_rc_pingpong -g 3 -c -s 4096 -n 30000 -p 18515 \
  127.0.0.1 >"$WORK/good.client" 2>&1 &
good_cli=$!

# 1. The hostile client on vdev_a.
if in_ns "$VRDMA_BUILD/tests/integration/hostile_client" vdev_a >"$WORK/hostile.log" 2>&1; then
  pass "hostile client refused everywhere"
else
  fail "hostile client"; cat "$WORK/hostile.log"
fi

# 2. A bandwidth test whose server stops polling (SIGSTOP), then both killed mid-transfer.
# (Started without the in_ns function so that $! is the program, not a subshell.)
ip netns exec "$NS" "$VRDMA_RUN" -d vdev_a -- ib_write_bw -x 3 -D 60 -p 18600 >"$WORK/bw.server" 2>&1 &
bw_srv=$!
sleep 0.5
ip netns exec "$NS" "$VRDMA_RUN" -d vdev_b -- ib_send_bw -x 3 -D 60 -p 18601 >"$WORK/sbw.server" 2>&1 &
sbw_srv=$!
sleep 0.5
ip netns exec "$NS" "$VRDMA_RUN" -d vdev_b -- ib_write_bw -x 3 -D 60 -p 18600 127.0.0.1 >"$WORK/bw.client" 2>&1 &
bw_cli=$!
ip netns exec "$NS" "$VRDMA_RUN" -d vdev_a -- ib_send_bw -x 3 -D 60 -p 18601 127.0.0.1 >"$WORK/sbw.client" 2>&1 &
sbw_cli=$!
sleep 2
kill -STOP "$sbw_srv" 2>/dev/null || true   # the receiver never polls again
sleep 2
if ctl res show | grep -q "comm ib_write_bw"; then pass "transfer running"; else fail "transfer running"; fi
kill -KILL "$bw_cli" "$bw_srv" "$sbw_srv" "$sbw_cli" 2>/dev/null || true
wait "$bw_cli" "$bw_srv" "$sbw_srv" "$sbw_cli" 2>/dev/null || true

# 3. The well-behaved pair finished with its data checked.
good=0
wait "$good_srv" || good=$?
wait "$good_cli" || good=$?
if [[ $good -eq 0 ]] && grep -q "iters in" "$WORK/good.client" && grep -q "iters in" "$WORK/good.server"; then
  pass "well-behaved pair unaffected"
else
  fail "well-behaved pair (rc=$good)"; tail "$WORK/good.client" "$WORK/good.server"
fi

# 4. The daemon lives, and nothing of the dead or hostile clients is left.
sleep 0.5
if kill -0 "$DAEMON_PID"; then pass "vrdmad alive"; else fail "vrdmad died"; fi
check_all_freed "every resource of the dead clients freed"
# And it still serves new clients.
summary_ok() { grep -q "iters in" "$1" && grep -q "iters in" "$2"; }
run_pair after_failures summary_ok -- ibv_rc_pingpong -g 3 -c -n 100
finish
