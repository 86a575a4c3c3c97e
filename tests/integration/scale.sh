#!/usr/bin/env bash
# Scale (issue 16, goal 7): rxe-sized device limits, a pdev with hundreds of vdevs, and a
# process with thousands of QPs, with Debian's ibverbs-utils and perftest unmodified.
#   - the limits vdevs report are rxe's (max_qp_wr, max_cq ...), the quota bounding them;
#   - 3000 QPs in one process (above the old max_qp of 1024), and vrdmad holds neither a
#     descriptor nor a mapping per ring while they exist (its rings are carved out of a
#     few memfds per context, so vm.max_map_count does not bound QPs);
#   - perftest's UD test with 200000 iterations (a receive queue of 200000: the old
#     max_qp_wr refused it);
#   - 400 more vdevs: every one listed (more than one daemon message holds), one opened
#     by name, and checked data between vdev_a and vdev_b beside them; all removed.
source "$(dirname "$0")/lib.sh"
setup_default
HOG="$VRDMA_BUILD/tests/integration/hog"
run() { in_ns timeout 120 "$VRDMA_RUN" "$@"; }
accept_any() { return 0; }
pp_ok() { grep -q "1000 iters" "$2"; }
# field OUT NAME: the value ibv_devinfo -v prints for NAME.
field() { awk -v n="$2:" '$1 == n { print $2; exit }' <<<"$1"; }

# ---- limits
out=$(run -d vdev_a -- ibv_devinfo -v 2>&1)
quota() { ctl -j dev show vdev_a | python3 -c "import json,sys; print(json.load(sys.stdin)[0]['quota']['$1'])"; }
expect "ibv_devinfo -v: max_qp_wr is rxe's" "$(field "$out" max_qp_wr)" 1048576
expect "ibv_devinfo -v: max_qp is the vdev's quota, 1/8 of rxe's" \
  "$(field "$out" max_qp) $(quota qp)" "$((1048560 / 8)) $((1048560 / 8))"

# ---- 3000 QPs in one process; vrdmad's descriptors do not grow with them
ctl dev set vdev_b qp 3000 pd 4 cq 4 mr 4 >/dev/null
fds_before=$(ls "/proc/$DAEMON_PID/fd" | wc -l)
maps_before=$(wc -l <"/proc/$DAEMON_PID/maps")
in_ns timeout 120 "$VRDMA_RUN" -d vdev_b -- "$HOG" vdev_b objects --hold >"$WORK/hog.out" 2>&1 &
hog=$!
for _ in $(seq 600); do
  grep -qs holding "$WORK/hog.out" && break
  kill -0 "$hog" 2>/dev/null || break
  sleep 0.1
done
fds_during=$(ls "/proc/$DAEMON_PID/fd" | wc -l)
maps_during=$(wc -l <"/proc/$DAEMON_PID/maps")
nqp=$(awk '$1 == "qp" { print $2 }' "$WORK/hog.out")
kill "$hog" 2>/dev/null || true
wait "$hog" 2>/dev/null || true
# vrdmad says why it refused, at its default level, a context's first few times: the
# hog's create_qp past its quota.
if grep -q 'level=info event=verb_refused op=create_qp errno=ENOMEM' "$WORK/vrdmad.log"; then
  pass "a refused create_qp is logged at the default level (info), with its errno"
else
  fail "no info-level verb_refused for the hog's create_qp: $(grep verb_refused "$WORK/vrdmad.log" | head -3)"
fi
# vrdmad frees a client's objects once it sees the connection close: wait for that, then
# give vdev_b its default quotas back.
used_qp() { ctl -j res show vdev_b | python3 -c "import json,sys; print(json.load(sys.stdin)[0]['used']['qp'])"; }
for _ in $(seq 100); do [[ $(used_qp) == 0 ]] && break; sleep 0.1; done
ctl dev set vdev_b qp "$(quota qp)" pd "$(quota pd)" cq "$(quota cq)" mr "$(quota mr)" >/dev/null
if [[ $nqp == 3000 && $((fds_during - fds_before)) -lt 64 ]]; then
  pass "one process holds 3000 QPs; vrdmad's descriptors went from $fds_before to $fds_during"
else
  fail "3000 QPs: got ${nqp:-none}, vrdmad's descriptors $fds_before -> $fds_during: $(cat "$WORK/hog.out")"
fi
if [[ $nqp == 3000 && $((maps_during - maps_before)) -lt 64 ]]; then
  pass "3000 QPs: vrdmad's mappings went from $maps_before to $maps_during (not one per ring)"
else
  fail "3000 QPs: got ${nqp:-none}, vrdmad's mappings $maps_before -> $maps_during"
fi

# ---- perftest's UD test with a 200000-entry receive queue
KEEP_WORK=1 run_pair ud_200k accept_any -- ib_send_bw -c UD -x 3 -s 1024 -n 200000 >/dev/null 2>&1 || true
if grep -qE "^ *1024 +200000 " "$WORK/ud_200k.client" 2>/dev/null; then
  pass "ib_send_bw -c UD -n 200000 (a receive queue of 200000 WRs) runs"
else
  fail "ib_send_bw -c UD -n 200000: $(tail -n 5 "$WORK/ud_200k.client" "$WORK/ud_200k.server" 2>&1)"
fi

# ---- 400 more vdevs, each on a veth end of its own
N=400
{
  for ((i = 0; i < N; i++)); do
    echo "link add sc$i type veth peer name sp$i"
    echo "link set sc$i up"
    echo "link set sp$i up"
  done
} >"$WORK/links.batch"
in_ns ip -batch "$WORK/links.batch"
for ((i = 0; i < N; i++)); do ctl dev add "scale_$i" pdev pdev0 netdev "sc$i" >/dev/null || break; done
expect "vdevs added" "$(ctl dev show | grep -c ": type virtual")" $((N + 2))
listed=$(run -- ibv_devices 2>&1 | grep -cE "^ +(vdev_[ab]|scale_[0-9]+|pdev0)[[:space:]]")
expect "ibv_devices lists all $((N + 3)) devices (more than one daemon message holds)" \
  "$listed" $((N + 3))
out=$(run -d scale_399 -- ibv_devinfo 2>&1)
if grep -q $'hca_id:\tscale_399' <<<"$out" && grep -q PORT_ACTIVE <<<"$out"; then
  pass "a vdev among $((N + 2)) opens by name"
else
  fail "ibv_devinfo -d scale_399: $out"
fi
run_pair pingpong_beside_many pp_ok -- ibv_rc_pingpong -g 3 -c -s 4096 -n 1000
for ((i = 0; i < N; i++)); do ctl dev del "scale_$i" >/dev/null || break; done
expect "all $N removed: vdev_a, vdev_b and pdev0 listed" \
  "$(run -- ibv_devices 2>&1 | grep -cE "^ +(vdev_[ab]|scale_[0-9]+|pdev0)[[:space:]]")" 3
finish
