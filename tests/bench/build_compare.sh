#!/usr/bin/env bash
# Benchmark of one build against another (not a test: prints figures, never fails on
# one): "measure before and after" for a change. The same few perftest cases between two
# vdevs of the embedded default run on build A and on build B, alternating A B A B ...
# in one namespace, so both see the same machine at the same time; each figure is the
# median of its rounds, and the table gives B / A.
#
# Pinning: vrdmad on core 0 (its EAL -l 0); both perftest sides on $VRDMA_BENCH_CPUS
# (default core 1), with taskset.
#
# Usage (root): tests/bench/build_compare.sh BUILD_A BUILD_B [ROUNDS (default 3)]
# e.g. a build of the commit before a change beside one of the change:
#   git worktree add /tmp/before HEAD~1 && scripts/build /tmp/before/build
#   tests/bench/build_compare.sh /tmp/before/build build
set -euo pipefail
REPO="$(cd "$(dirname "$0")/../.." && pwd)"
BUILD_A=$(cd "${1:?BUILD_A}" && pwd)
BUILD_B=$(cd "${2:?BUILD_B}" && pwd)
ROUNDS=${3:-3}
CPUS="${VRDMA_BENCH_CPUS:-1}"
export VRDMA_BUILD="$BUILD_B"

source "$REPO/tests/integration/lib.sh"
PIN=(taskset -c "$CPUS")
accept() { return 0; }

# name | perftest program and arguments | column of the client's result row | unit
CASES=(
  "write_bw 64 KiB|ib_write_bw -x 3 -s 65536 -n 20000 --report_gbits|4|Gb/s"
  "write_bw 1 MiB|ib_write_bw -x 3 -s 1048576 -n 2000 --report_gbits|4|Gb/s"
  "read_bw 64 KiB|ib_read_bw -x 3 -s 65536 -n 20000 --report_gbits|4|Gb/s"
  "send_bw 64 B|ib_send_bw -x 3 -s 64 -n 200000|5|Mmsg/s"
  "write_bw 64 B|ib_write_bw -x 3 -s 64 -n 200000|5|Mmsg/s"
  "send_lat 8 B|ib_send_lat -x 3 -s 8 -n 5000|5|µs"
  "send_bw RC 1 KiB|ib_send_bw -x 3 -s 1024 -n 100000|5|Mmsg/s"
  "send_bw UD 1 KiB|ib_send_bw -x 3 -c UD -s 1024 -n 100000|5|Mmsg/s"
)

use_build() {  # stops the running daemon, starts BUILD's with two vdevs
  local build=$1
  if [[ -n $DAEMON_PID ]]; then stop_pid "$DAEMON_PID"; DAEMON_PID=""; fi
  VRDMAD="$build/apps/vrdmad"
  VRDMACTL="$build/apps/vrdmactl"
  VRDMA_RUN="$build/apps/vrdma-run"
  start_daemon
  ctl dev add vdev_a pdev pdev0 netdev vrd0 >/dev/null
  ctl dev add vdev_b pdev pdev0 netdev vrd1 >/dev/null
}

declare -A FIG  # FIG[build,case] = "v1 v2 ..."
setup_hosts
for ((round = 1; round <= ROUNDS; ++round)); do
  for side in A B; do
    if [[ $side == A ]]; then use_build "$BUILD_A"; else use_build "$BUILD_B"; fi
    for c in "${CASES[@]}"; do
      IFS='|' read -r name cmd col unit <<<"$c"
      # shellcheck disable=SC2086
      KEEP_WORK=1 run_pair bench accept -- "${PIN[@]}" $cmd >/dev/null
      size=$(awk '{for (i = 1; i <= NF; ++i) if ($i == "-s") print $(i + 1)}' <<<"$cmd")
      v=$(awk -v s="$size" -v c="$col" '$1 == s && $2 ~ /^[0-9]+$/ {print $c}' "$WORK/bench.client")
      FIG[$side,$name]+="${v:-nan} "
    done
    echo "round $round build $side done" >&2
  done
done

median() { tr ' ' '\n' | grep -v '^$' | sort -g | awk '{a[NR] = $1} END {print NR ? a[int((NR + 1) / 2)] : "-"}'; }
cpu_model=$(awk -F': ' '/model name/ { print $2; exit }' /proc/cpuinfo)
echo
echo "build A: $BUILD_A ($(git -C "$BUILD_A/.." rev-parse --short HEAD 2>/dev/null || echo ?))"
echo "build B: $BUILD_B ($(git -C "$BUILD_B/.." rev-parse --short HEAD 2>/dev/null || echo ?))"
echo "$(date -u +%Y-%m-%d), $(nproc) cores ($cpu_model); vrdmad on core 0, perftest on core(s) $CPUS;"
echo "RC (UD where named) over RoCEv2/IPv4 between two vdevs of pdev0; median of $ROUNDS alternating rounds"
fmt="%-16s %-7s %10s %10s %8s   %s\n"
printf "$fmt" case unit A B "B/A" "rounds A | rounds B"
for c in "${CASES[@]}"; do
  IFS='|' read -r name cmd col unit <<<"$c"
  a=$(median <<<"${FIG[A,$name]}")
  b=$(median <<<"${FIG[B,$name]}")
  ratio=$(awk -v a="$a" -v b="$b" 'BEGIN { if (a + 0 > 0) printf "%.2f", b / a; else print "-" }')
  printf "$fmt" "$name" "$unit" "$a" "$b" "$ratio" "${FIG[A,$name]}| ${FIG[B,$name]}"
done
