#!/usr/bin/env bash
# Benchmark of raw packet QPs (not a test: prints figures, never fails on one).
#
# Debian's raw_ethernet_bw between two vdevs of the embedded default (frames from
# vdev_a's raw packet QP to a flow rule on vdev_b's MAC), beside the same run's
# ib_send_bw over UD and over RC at the same sizes, 3 s each: messages per second and the
# ratio of raw frames to UD and to RC datagrams/messages.
#
# Pinning: vrdmad runs on core 0 (its default EAL -l 0); both perftest ends run on
# $VRDMA_BENCH_CPUS (default: core 1), with taskset.
#
# Usage (root): tests/bench/raw_bench.sh   [VRDMA_BUILD=dir]
set -euo pipefail
REPO="$(cd "$(dirname "$0")/../.." && pwd)"
export VRDMA_BUILD="${VRDMA_BUILD:-$REPO/build}"
CPUS="${VRDMA_BENCH_CPUS:-1}"
"$REPO/scripts/install-deps" >/dev/null
[[ -x "$VRDMA_BUILD/apps/vrdmad" ]] || "$REPO/scripts/build" "$VRDMA_BUILD" >/dev/null
ninja -C "$VRDMA_BUILD" >/dev/null

source "$REPO/tests/integration/lib.sh"
setup_default
PIN=(taskset -c "$CPUS")
MAC_A=$(in_ns cat /sys/class/net/vrd0/address)
MAC_B=$(in_ns cat /sys/class/net/vrd1/address)

# Mpps (perftest's last column) of the server's row for SIZE in FILE.
mpps() { awk -v s="$2" '$1 == s && NF >= 5 {print $NF}' "$1" | tail -1; }

# run NAME SIZE SERVER_ARGS... -- CLIENT_ARGS...: both ends pinned, the server first.
run() {
  local name=$1 size=$2 server=() client=()
  shift 2
  while [[ $1 != -- ]]; do server+=("$1"); shift; done
  shift
  client=("$@")
  in_ns "${PIN[@]}" "$VRDMA_RUN" -d vdev_b -- "${server[@]}" >"$WORK/$name-$size.s" 2>&1 &
  local spid=$!
  sleep 1
  in_ns "${PIN[@]}" "$VRDMA_RUN" -d vdev_a -- "${client[@]}" >"$WORK/$name-$size.c" 2>&1 || true
  wait "$spid" || true
  mpps "$WORK/$name-$size.s" "$size"
}

printf '%8s %12s %12s %12s %10s %10s\n' bytes 'raw Mpps' 'UD Mpps' 'RC Mpps' raw/UD raw/RC
for size in 64 512 1024; do
  raw=$(run raw "$size" raw_ethernet_bw -B "$MAC_B" -E "$MAC_A" --server -D 3 -s "$size" -- \
    raw_ethernet_bw -B "$MAC_A" -E "$MAC_B" --client -D 3 -s "$size")
  ud=$(run ud "$size" ib_send_bw -x 3 -c UD -D 3 -s "$size" -- \
    ib_send_bw -x 3 -c UD -D 3 -s "$size" 127.0.0.1)
  rc=$(run rc "$size" ib_send_bw -x 3 -D 3 -s "$size" -- ib_send_bw -x 3 -D 3 -s "$size" 127.0.0.1)
  printf '%8s %12s %12s %12s %10s %10s\n' "$size" "${raw:--}" "${ud:--}" "${rc:--}" \
    "$(awk -v a="${raw:-0}" -v b="${ud:-0}" 'BEGIN {if (b > 0) printf "%.2f", a / b; else print "-"}')" \
    "$(awk -v a="${raw:-0}" -v b="${rc:-0}" 'BEGIN {if (b > 0) printf "%.2f", a / b; else print "-"}')"
done
echo "pinning: vrdmad on core 0, both perftest ends on core(s) $CPUS"
finish
