#!/usr/bin/env bash
# The project's data checker (verbs_check.cc) across two vdevs, under vrdma-run.
source "$(dirname "$0")/lib.sh"
setup_default
export VRDMACTL="$VRDMACTL"
# Everything in the namespace sees the daemon's socket through VRDMA_SOCKET. The huge-page
# case runs in hugepages.sh, which makes a pool and a hugetlbfs mount for it.
if in_ns env VRDMACTL="$VRDMACTL" "$VRDMA_RUN" -- "$VRDMA_BUILD/tests/integration/verbs_check" \
     --gtest_color=no --gtest_filter='-*HugePages*'; then
  pass verbs_check
else
  fail verbs_check
fi
# ibv_import_device: a context shared with a process the test execs (import_check.cc),
# and refused to one in a namespace the vdevs are hidden from.
OTHER_NS="vrdma-it-other-$$"
CLEANUP_NETNS+=(OTHER_NS)
ip netns add "$OTHER_NS"
if in_ns env VRDMA_OTHER_NETNS="/run/netns/$OTHER_NS" "$VRDMA_RUN" -- \
     "$VRDMA_BUILD/tests/integration/import_check" --gtest_color=no; then
  pass "import_check: a context, its PD and MR shared across processes"
else
  fail import_check
fi
# Raw packet QPs and flow rules (raw_check.cc).
if in_ns "$VRDMA_RUN" -- "$VRDMA_BUILD/tests/integration/raw_check" --gtest_color=no; then
  pass "raw_check: raw packet QPs, flow rules, frames compared"
else
  fail raw_check
fi
sleep 0.3
check_all_freed "resources freed"

# Deleting a vdev under an attached client: IBV_EVENT_DEVICE_FATAL for it, later requests
# fail with EIO, the daemon keeps serving the other vdev.
ip netns exec "$NS" "$VRDMA_RUN" -- "$VRDMA_BUILD/tests/integration/verbs_check" --gtest_color=no \
  --gtest_also_run_disabled_tests --gtest_filter='*DeviceFatal*' >"$WORK/del.log" 2>&1 &
del_pid=$!
for _ in $(seq 100); do grep -q ready "$WORK/del.log" && break; sleep 0.1; done
ctl dev del vdev_a
rc=0
wait "$del_pid" || rc=$?
if [[ $rc == 0 ]] && kill -0 "$DAEMON_PID" && ! ctl dev show | grep -q vdev_a &&
   in_ns "$VRDMA_RUN" -d vdev_b ibv_devinfo >/dev/null; then
  pass "dev del: attached client gets IBV_EVENT_DEVICE_FATAL, daemon serves the rest"
else
  fail "dev del under a client (rc=$rc)"; cat "$WORK/del.log"
fi
ctl dev add vdev_a pdev pdev0 netdev vrd0 >/dev/null

# Clean shutdown: SIGTERM with a client attached; it gets IBV_EVENT_DEVICE_FATAL, the
# daemon exits promptly, nothing hangs.
ip netns exec "$NS" "$VRDMA_RUN" -- "$VRDMA_BUILD/tests/integration/verbs_check" --gtest_color=no \
  --gtest_also_run_disabled_tests --gtest_filter='*DeviceFatal*' >"$WORK/fatal.log" 2>&1 &
fatal_pid=$!
for _ in $(seq 100); do grep -q ready "$WORK/fatal.log" && break; sleep 0.1; done
kill -TERM "$DAEMON_PID"
exited=0
for _ in $(seq 50); do kill -0 "$DAEMON_PID" 2>/dev/null || { exited=1; break; }; sleep 0.1; done
rc=0
wait "$fatal_pid" || rc=$?
if [[ $exited == 1 && $rc == 0 ]] && grep -q "event=stop" "$WORK/vrdmad.log"; then
  pass "SIGTERM: clients get IBV_EVENT_DEVICE_FATAL, daemon exits"
else
  fail "SIGTERM shutdown (exited=$exited rc=$rc)"; cat "$WORK/fatal.log"
fi
finish
