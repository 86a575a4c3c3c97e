#!/usr/bin/env bash
# Benchmark of vrdmad's virtual devices (not a test: prints figures, never fails on one).
#
# Debian's perftest between two vdevs of the embedded default (RC, RoCEv2/IPv4, sizes
# 8 B - 1 MiB): send/write/read bandwidth and latency, printed as one table beside the
# same run's single-core memcpy (tests/bench/memcpy_bench) and TCP over loopback in the
# same namespace (iperf3 throughput, sockperf ping-pong latency). Then the effect of
# pinning on latency and bandwidth, and UD against RC in messages per second.
#
# Pinning: vrdmad runs on core 0 (its EAL -l 0). Every other process of a measurement
# (both perftest sides, iperf3 and sockperf client and server, memcpy) runs on
# $VRDMA_BENCH_CPUS (default: core 1), with taskset. On a 2-core machine that keeps the
# busy-polling daemon alone on its core; the two ends of a ping-pong share the other.
#
# Usage (root): tests/bench/vdev_bench.sh   [VRDMA_BUILD=dir] [VRDMA_BENCH_ITERS=n (latency)]
#   [VRDMA_BENCH_SIZES="65536 1048576" (bandwidth sizes; default every power of two 8 B - 1 MiB)]
set -euo pipefail
REPO="$(cd "$(dirname "$0")/../.." && pwd)"
export VRDMA_BUILD="${VRDMA_BUILD:-$REPO/build}"
CPUS="${VRDMA_BENCH_CPUS:-1}"
ITERS="${VRDMA_BENCH_ITERS:-2000}"

"$REPO/scripts/install-deps" >/dev/null
for tool in sockperf iperf3; do
  command -v "$tool" >/dev/null || DEBIAN_FRONTEND=noninteractive apt-get install -y -q \
    --no-install-recommends "$tool" >/dev/null
done
[[ -x "$VRDMA_BUILD/apps/vrdmad" ]] || "$REPO/scripts/build" "$VRDMA_BUILD" >/dev/null
ninja -C "$VRDMA_BUILD" >/dev/null

source "$REPO/tests/integration/lib.sh"
setup_default
PIN=(taskset -c "$CPUS")
SIZES=()
for ((s = 8; s <= 1048576; s *= 2)); do SIZES+=("$s"); done
[[ -n ${VRDMA_BENCH_SIZES:-} ]] && read -r -a SIZES <<<"$VRDMA_BENCH_SIZES"
declare -A R  # R[column,size] = figure
accept() { return 0; }

# perftest rows: "#bytes #iterations ..." with numbers; column $col of the client's.
perftest_column() {
  local name=$1 col=$2
  awk -v n="$name" -v c="$col" '$1 ~ /^[0-9]+$/ && $2 ~ /^[0-9]+$/ && NF >= c { print n, $1, $c }' \
    "$WORK/$name.client"
}
run_perftest() {
  local name=$1 col=$2
  shift 2
  KEEP_WORK=1 run_pair "$name" accept -- "${PIN[@]}" "$@" >/dev/null
  local got=0 n size value  # not the caller's `size`
  while read -r n size value; do
    R[$n,$size]=$value
    got=1
  done < <(perftest_column "$name" "$col")
  if [[ $got == 0 ]]; then  # no figure: say why, once, instead of a silent "-"
    echo "no figure from $name ($*):" >&2
    tail -n 4 "$WORK/$name.client" "$WORK/$name.server" >&2 || true
  fi
}

echo "== perftest between vdev_a and vdev_b" >&2
for t in send write read; do
  # Bandwidth one size at a time, long enough that start-up does not weigh: 1 GiB or
  # 100000 messages, at least 5000 (a short -a run at small sizes measures mostly the
  # first round trips).
  for size in "${SIZES[@]}"; do
    n=$(((1 << 30) / size))
    ((n > 100000)) && n=100000
    ((n < 5000)) && n=5000
    run_perftest "${t}_bw" 4 "ib_${t}_bw" -x 3 -s "$size" -n "$n" --report_gbits  # BW average
  done
  run_perftest "${t}_lat" 5 "ib_${t}_lat" -x 3 -a -n "$ITERS"  # t_typical
done

# UD against RC in messages per second at the same sizes (within one MTU: a UD message
# is one datagram), ib_send_bw's MsgRate column.
UD_SIZES=(64 1024)
for size in "${UD_SIZES[@]}"; do
  for c in UD RC; do
    run_perftest "send_${c}" 5 ib_send_bw -x 3 -c "$c" -s "$size" -n 200000
  done
done

echo "== memcpy, one core" >&2
while read -r size value; do R[memcpy,$size]=$value; done < <("${PIN[@]}" "$VRDMA_BUILD/tests/bench/memcpy_bench")

echo "== iperf3 and sockperf over TCP, loopback in the namespace" >&2
for size in "${SIZES[@]}"; do
  ip netns exec "$NS" timeout 15 "${PIN[@]}" iperf3 -s -1 -B 10.77.0.1 -p 5201 >/dev/null 2>&1 &
  srv=$!
  sleep 0.3
  R[iperf3,$size]=$(in_ns "${PIN[@]}" iperf3 -c 10.77.0.1 -p 5201 -l "$size" -t 2 -f g 2>/dev/null |
    awk '/receiver/ { for (i = 1; i < NF; ++i) if ($(i + 1) == "Gbits/sec") print $i }')
  wait "$srv" 2>/dev/null || true
done
ip netns exec "$NS" "${PIN[@]}" sockperf sr --tcp -i 10.77.0.1 -p 11111 >/dev/null 2>&1 &
sockperf_srv=$!
sleep 0.5
for size in "${SIZES[@]}"; do
  ((size >= 14 && size <= 65000)) || continue  # sockperf's messages: 14 B to 64 KiB
  R[sockperf,$size]=$(in_ns "${PIN[@]}" sockperf pp --tcp -i 10.77.0.1 -p 11111 -m "$size" -t 2 \
    2>/dev/null | awk '/Summary: Latency is/ { print $(NF - 1) }')
done
kill "$sockperf_srv" 2>/dev/null || true

cpu_model=$(awk -F': ' '/model name/ { print $2; exit }' /proc/cpuinfo)
echo
echo "vrdma vdev benchmark — $(date -u +%Y-%m-%d), $(nproc) cores ($cpu_model), kernel $(uname -r)"
echo "vrdmad on core 0 (EAL -l 0); perftest both sides, iperf3, sockperf and memcpy on core(s) $CPUS"
echo "bandwidth: Gb/s (10^9 bit/s; perftest BW average, iperf3 receiver); latency: µs, perftest"
echo "t_typical (send/write: half round trip; read: one READ round trip), sockperf half RTT"
echo
fmt="%8s | %8s %8s %8s | %8s %8s | %8s %8s %8s | %8s\n"
printf "$fmt" size send_bw write_bw read_bw memcpy iperf3 send_lat write_lat read_lat sockperf
printf "$fmt" "(B)" "Gb/s" "Gb/s" "Gb/s" "Gb/s" "Gb/s" "µs" "µs" "µs" "µs"
for size in "${SIZES[@]}"; do
  printf "$fmt" "$size" "${R[send_bw,$size]:--}" "${R[write_bw,$size]:--}" "${R[read_bw,$size]:--}" \
    "${R[memcpy,$size]:--}" "${R[iperf3,$size]:--}" "${R[send_lat,$size]:--}" \
    "${R[write_lat,$size]:--}" "${R[read_lat,$size]:--}" "${R[sockperf,$size]:--}"
done

echo
echo "Against the same run's one-core memcpy of the same size (bw / memcpy):"
printf "%8s | %8s %8s %8s\n" size send write read
for size in "${SIZES[@]}"; do
  m=${R[memcpy,$size]:-}
  [[ -n $m ]] || continue
  row=()
  for t in send write read; do
    v=${R[${t}_bw,$size]:-}
    row+=("$([[ -n $v ]] && awk -v v="$v" -v m="$m" 'BEGIN { printf "%.2f", v / m }' || echo -)")
  done
  printf "%8s | %8s %8s %8s\n" "$size" "${row[@]}"
done

echo
echo "Pinning (ib_send_lat 8 B t_typical µs / ib_write_bw 64 KiB Gb/s):"
for mode in pinned unpinned; do
  if [[ $mode == pinned ]]; then PIN=(taskset -c "$CPUS"); else PIN=(); fi
  KEEP_WORK=1 run_pair pin_lat accept -- "${PIN[@]}" ib_send_lat -x 3 -s 8 -n 5000 >/dev/null
  KEEP_WORK=1 run_pair pin_bw accept -- "${PIN[@]}" ib_write_bw -x 3 -s 65536 -n 5000 \
    --report_gbits >/dev/null
  lat=$(awk '$1 == 8 && $2 ~ /^[0-9]+$/ { print $5 }' "$WORK/pin_lat.client")
  bw=$(awk '$1 == 65536 && $2 ~ /^[0-9]+$/ { print $4 }' "$WORK/pin_bw.client")
  if [[ $mode == pinned ]]; then
    echo "  clients on core(s) $CPUS, vrdmad alone on core 0:  ${lat:--} µs  ${bw:--} Gb/s"
  else
    echo "  clients unpinned (scheduler's choice):            ${lat:--} µs  ${bw:--} Gb/s"
  fi
done

echo
echo "UD against RC, ib_send_bw M msg/s (same pinning):"
printf "%8s | %8s %8s %8s\n" size UD RC UD/RC
for size in "${UD_SIZES[@]}"; do
  u=${R[send_UD,$size]:-}
  r=${R[send_RC,$size]:-}
  ratio=$([[ -n $u && -n $r ]] && awk -v u="$u" -v r="$r" 'BEGIN { printf "%.2f", u / r }' || echo -)
  printf "%8s | %8s %8s %8s\n" "$size" "${u:--}" "${r:--}" "$ratio"
done
