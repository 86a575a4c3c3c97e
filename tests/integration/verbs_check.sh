#!/usr/bin/env bash
# The project's data checker (verbs_check.cc) across two vdevs, under vrdma-run.
source "$(dirname "$0")/lib.sh"
setup_default
export VRDMACTL="$VRDMACTL"
# Everything in the namespace sees the daemon's socket through VRDMA_SOCKET.
if in_ns env VRDMACTL="$VRDMACTL" "$VRDMA_RUN" -- "$VRDMA_BUILD/tests/integration/verbs_check" \
     --gtest_color=no; then
  pass verbs_check
else
  fail verbs_check
fi
sleep 0.3
res=$(ctl -j res show)
if grep -q '"used":{"qp":0,"cq":0,"mr":0,"pd":0,"srq":0,"ah":0,"mr_bytes":0}' <<<"$res" &&
   ! grep -q '"pid"' <<<"$res"; then
  pass "resources freed"
else
  fail "resources freed: $res"
fi
finish
