#!/usr/bin/env bash
# Benchmark of the connection manager (not a test: prints figures, never fails on one).
#
# Between two vdevs of the embedded default (one vrdmad, RoCEv2/IPv4):
#   - connection set-up: Debian's cmtime (rdmacm-utils) with -c N connections, its
#     per-step times (resolve address and route, create QP, connect, disconnect), as
#     connections per second through the whole of connect (REQ, REP, RTU and the QP
#     transitions) and disconnect (DREQ, DREP);
#   - perftest with -R (QPs connected by the CM) beside the same test without -R
#     (connected by perftest's own TCP exchange): ib_send_bw 64 KiB, ib_send_lat 8 B.
#     The ratio shows what connecting through the CM costs once connected: nothing is
#     expected (the data path is the same).
#
# Pinning: vrdmad on core 0 (EAL -l 0); both client sides on $VRDMA_BENCH_CPUS (default
# core 1), with taskset.
#
# The same against Linux's rdma_rxe, both in one QEMU guest: tests/bench/cm_bench_guest.sh.
#
# Usage (root): tests/bench/cm_bench.sh [VRDMA_BUILD=dir] [VRDMA_BENCH_CONNS=n (default 500)]
#   [VRDMA_BENCH_BW_ITERS=n (20000)] [VRDMA_BENCH_LAT_ITERS=n (5000)]
#   [VRDMA_BENCH_PREBUILT=1: use the build as it is, install nothing (a guest's read-only root)]
set -euo pipefail
REPO="$(cd "$(dirname "$0")/../.." && pwd)"
export VRDMA_BUILD="${VRDMA_BUILD:-$REPO/build}"
CPUS="${VRDMA_BENCH_CPUS:-1}"
CONNS="${VRDMA_BENCH_CONNS:-500}"
BW_ITERS="${VRDMA_BENCH_BW_ITERS:-20000}"
LAT_ITERS="${VRDMA_BENCH_LAT_ITERS:-5000}"

if [[ -z "${VRDMA_BENCH_PREBUILT:-}" ]]; then
  "$REPO/scripts/install-deps" >/dev/null
  [[ -x "$VRDMA_BUILD/apps/vrdmad" ]] || "$REPO/scripts/build" "$VRDMA_BUILD" >/dev/null
  ninja -C "$VRDMA_BUILD" >/dev/null
fi

source "$REPO/tests/integration/lib.sh"
setup_default
PIN=(taskset -c "$CPUS")
# CONNS up to about 1000: each side holds a QP and a CQ per connection, within a vdev's
# default quota.
accept() { return 0; }

# cmtime's table: "step  total ms  max ms  min us  us / conn" (rdma-core 44). The
# figures of one step: total ms and per-connection µs.
cmtime_step() {  # FILE STEP
  awk -F: -v s="$2" '{ n = $1; gsub(/^ +| +$/, "", n) } n == s { split($2, f, " "); print f[1], f[4] }' "$1"
}

echo "== cmtime -c $CONNS between vdev_a and vdev_b" >&2
in_ns timeout 300 "${PIN[@]}" "$VRDMA_RUN" -d vdev_a -- cmtime -b 10.77.0.1 -p 7400 -c "$CONNS" \
  >"$WORK/cmtime.server" 2>&1 &
srv=$!
sleep 1
in_ns timeout 300 "${PIN[@]}" "$VRDMA_RUN" -d vdev_b -- cmtime -s 10.77.0.1 -b 10.77.0.2 -p 7400 \
  -c "$CONNS" >"$WORK/cmtime.client" 2>&1 || echo "cmtime client failed: $(tail -3 "$WORK/cmtime.client")" >&2
wait "$srv" 2>/dev/null || true

echo "== perftest with and without -R" >&2
declare -A R
# With -R each side names its device to perftest (vrdma-run shows both: the client's CM
# resolves 10.77.0.1, a local address, through vdev_a's device as Linux's loopback does),
# and the client names the server's address; without, perftest's TCP exchange goes to
# 127.0.0.1 (run_pair).
cm_server() { in_ns timeout 300 "$VRDMA_RUN" -- "${PIN[@]}" "$@" -d vdev_a; }
cm_client() { in_ns timeout 300 "$VRDMA_RUN" -- "${PIN[@]}" "$@" -d vdev_b 10.77.0.1; }
run_perf() {  # NAME COLUMN ARGS...
  local name=$1 col=$2
  shift 2
  if [[ $name == *_R ]]; then
    KEEP_WORK=1 client_server "$name" accept cm_server cm_client -- "$@" >/dev/null || true
  else
    KEEP_WORK=1 run_pair "$name" accept -- "${PIN[@]}" "$@" >/dev/null || true
  fi
  R[$name]=$(awk -v c="$col" '$1 ~ /^[0-9]+$/ && $2 ~ /^[0-9]+$/ && NF >= c { v = $c } END { print v }' \
    "$WORK/$name.client")
}
run_perf send_bw 4 ib_send_bw -x 3 -s 65536 -n "$BW_ITERS" --report_gbits
run_perf send_bw_R 4 ib_send_bw -R -s 65536 -n "$BW_ITERS" --report_gbits
run_perf send_lat 5 ib_send_lat -x 3 -s 8 -n "$LAT_ITERS"
run_perf send_lat_R 5 ib_send_lat -R -s 8 -n "$LAT_ITERS"

cpu_model=$(awk -F': ' '/model name/ { print $2; exit }' /proc/cpuinfo)
echo
echo "vrdma connection manager benchmark — $(date -u +%Y-%m-%d), $(nproc) cores ($cpu_model), kernel $(uname -r)"
echo "vrdmad on core 0 (EAL -l 0); cmtime and perftest, both sides, on core(s) $CPUS"
echo
echo "cmtime -c $CONNS, vdev_b -> vdev_a (total ms for all connections, µs per connection):"
for step in "create id" "bind addr" "resolve addr" "resolve route" "create qp" connect disconnect destroy; do
  read -r total per < <(cmtime_step "$WORK/cmtime.client" "$step") || true
  printf "  %-14s %10s ms %10s µs/conn\n" "$step" "${total:--}" "${per:--}"
done
read -r ctotal _ < <(cmtime_step "$WORK/cmtime.client" connect) || true
if [[ -n "${ctotal:-}" ]]; then
  echo "  connections per second through connect: $(awk -v n="$CONNS" -v t="$ctotal" \
    'BEGIN { if (t > 0) printf "%.0f", n * 1000 / t; else print "-" }')"
fi
echo
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (a > 0 && b > 0) printf "%.2f", a / b; else print "-" }'; }
echo "perftest, connected by the CM (-R) and by perftest's TCP exchange:"
printf "  ib_send_bw 64 KiB: %s Gb/s with -R, %s Gb/s without (ratio %s)\n" \
  "${R[send_bw_R]:--}" "${R[send_bw]:--}" "$(ratio "${R[send_bw_R]:-0}" "${R[send_bw]:-0}")"
printf "  ib_send_lat 8 B t_typical: %s µs with -R, %s µs without (ratio %s)\n" \
  "${R[send_lat_R]:--}" "${R[send_lat]:--}" "$(ratio "${R[send_lat_R]:-0}" "${R[send_lat]:-0}")"
