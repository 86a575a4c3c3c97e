#!/usr/bin/env bash
# Cross-host benchmark (not a test: prints figures, never fails on one).
#
# Two hosts as in the two-host tests (network namespaces A and B over a veth pair, a
# vrdmad in each on a DPDK port on its veth end), for each port type: perftest RC over
# RoCEv2/IPv4 between vdev_a and vdev_b (send/write/read bandwidth and latency, 8 B -
# 1 MiB), beside iperf3 TCP throughput and sockperf TCP ping-pong latency between the
# same two namespaces over the same veth, in the same run.
#
# Pinning (2 cores): host A's vrdmad (EAL -l 0) and host A's client on core 0, host B's
# vrdmad (-l 1) and host B's server on core 1 (taskset); iperf3 and sockperf the same
# way (client on 0, server on 1). Each host's application shares its core with its
# daemon, as on a one-core host; the backoff of the polling loops makes that work.
#
# Usage (root): tests/bench/two_host_bench.sh [VRDMA_BUILD=dir] [PORT_TYPES="af_packet af_xdp"]
set -euo pipefail
REPO="$(cd "$(dirname "$0")/../.." && pwd)"
export VRDMA_BUILD="${VRDMA_BUILD:-$REPO/build}"
"$REPO/scripts/install-deps" >/dev/null
[[ -x "$VRDMA_BUILD/apps/vrdmad" ]] || "$REPO/scripts/build" "$VRDMA_BUILD" >/dev/null
ninja -C "$VRDMA_BUILD" >/dev/null

SIZES=(8 64 1024 4096 65536 1048576)
accept() { return 0; }
declare -A R

bench_port() {
  local type=$1 mtu=$2
  (
    export PORT_TYPE=$type MTU=$mtu
    source "$REPO/tests/integration/hosts.sh"
    setup_two_hosts
    cross_server() { on_b taskset -c 1 "$VRDMA_RUN" -d vdev_b -- "$@"; }
    cross_client() { on_a taskset -c 0 "$VRDMA_RUN" -d vdev_a -- "$@" 10.77.0.2; }
    column() { awk -v c="$2" '$1 ~ /^[0-9]+$/ && $2 ~ /^[0-9]+$/ && NF >= c { print $1, $c }' "$WORK/$1.client"; }
    for t in send write read; do
      for size in "${SIZES[@]}"; do
        n=$(((1 << 29) / size))
        ((n > 50000)) && n=50000
        ((n < 2000)) && n=2000
        client_server "${t}_bw" accept cross_server cross_client -- "ib_${t}_bw" -x 3 -s "$size" -n "$n" --report_gbits >/dev/null
        column "${t}_bw" 4 | while read -r s v; do echo "${t}_bw $s $v"; done
      done
      client_server "${t}_lat" accept cross_server cross_client -- "ib_${t}_lat" -x 3 -a -n 1000 >/dev/null
      column "${t}_lat" 5 | while read -r s v; do echo "${t}_lat $s $v"; done
    done
    # The application that waits for its completions (a completion channel, -e) instead
    # of polling on the core its daemon needs: vrdmad wakes it, as a NIC's interrupt would.
    client_server send_lat_e accept cross_server cross_client -- ib_send_lat -x 3 -a -n 1000 -e >/dev/null
    column send_lat_e 5 | while read -r s v; do echo "send_lat_e $s $v"; done
    for size in "${SIZES[@]}"; do
      on_b timeout 15 taskset -c 1 iperf3 -s -1 -B 10.77.0.2 -p 5201 >/dev/null 2>&1 &
      srv=$!
      sleep 0.3
      v=$(on_a taskset -c 0 iperf3 -c 10.77.0.2 -p 5201 -l "$size" -t 2 -f g 2>/dev/null |
        awk '/receiver/ { for (i = 1; i < NF; ++i) if ($(i + 1) == "Gbits/sec") print $i }')
      echo "iperf3 $size ${v:--}"
      wait "$srv" 2>/dev/null || true
    done
    on_b taskset -c 1 sockperf sr --tcp -i 10.77.0.2 -p 11111 >/dev/null 2>&1 &
    sp=$!
    sleep 0.5
    for size in "${SIZES[@]}"; do
      ((size >= 14 && size <= 65000)) || continue
      v=$(on_a taskset -c 0 sockperf pp --tcp -i 10.77.0.2 -p 11111 -m "$size" -t 2 2>/dev/null |
        awk '/Summary: Latency is/ { print $(NF - 1) }')
      echo "sockperf $size ${v:--}"
    done
    kill "$sp" 2>/dev/null || true
  ) 2>/dev/null
}

for type in ${PORT_TYPES:-af_packet af_xdp}; do
  mtu=9000
  [[ $type == af_xdp ]] && mtu=3000
  echo "== $type (veth MTU $mtu)" >&2
  while read -r col size value; do R[$type,$col,$size]=$value; done < <(bench_port "$type" "$mtu")
done

cpu_model=$(awk -F': ' '/model name/ { print $2; exit }' /proc/cpuinfo)
echo
echo "vrdma cross-host benchmark — $(date -u +%Y-%m-%d), $(nproc) cores ($cpu_model), kernel $(uname -r)"
echo "host A: vrdmad -l 0 + client on core 0; host B: vrdmad -l 1 + server on core 1; RC, RoCEv2/IPv4"
echo "bandwidth Gb/s (perftest BW average, iperf3 receiver); latency µs (perftest t_typical, sockperf half RTT)"
for type in ${PORT_TYPES:-af_packet af_xdp}; do
  echo
  echo "$type:"
  fmt="%8s | %8s %8s %8s | %8s | %8s %8s %8s %10s | %8s\n"
  printf "$fmt" size send_bw write_bw read_bw iperf3 send_lat write_lat read_lat send_lat_e sockperf
  for size in "${SIZES[@]}"; do
    printf "$fmt" "$size" "${R[$type,send_bw,$size]:--}" "${R[$type,write_bw,$size]:--}" \
      "${R[$type,read_bw,$size]:--}" "${R[$type,iperf3,$size]:--}" "${R[$type,send_lat,$size]:--}" \
      "${R[$type,write_lat,$size]:--}" "${R[$type,read_lat,$size]:--}" \
      "${R[$type,send_lat_e,$size]:--}" "${R[$type,sockperf,$size]:--}"
  done
  # Each figure as a ratio to its anchor of the same run.
  ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (a + 0 > 0 && b + 0 > 0) printf "%.2f", a / b; else print "-" }'; }
  for size in 65536 1048576; do
    echo "  ib_write_bw $size B / iperf3: $(ratio "${R[$type,write_bw,$size]:-}" "${R[$type,iperf3,$size]:-}")"
  done
  for size in 64 1024; do
    echo "  ib_send_lat -e $size B / sockperf: $(ratio "${R[$type,send_lat_e,$size]:-}" "${R[$type,sockperf,$size]:-}")," \
      "polling: $(ratio "${R[$type,send_lat,$size]:-}" "${R[$type,sockperf,$size]:-}")"
  done
done
