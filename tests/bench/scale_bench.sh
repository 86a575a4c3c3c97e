#!/usr/bin/env bash
# Scale benchmark (issue 16, goal 7; not a test: prints figures, never fails on one).
#
# One vrdmad (the embedded default), vdev_a and vdev_b on a veth pair as in the tests, then:
#   1. $VDEVS more vdevs, on the two ends of $VDEVS/2 veth pairs (an IPv4 subnet each):
#      time and vrdmad memory per vdev;
#   2. $QPS idle RC QPs spread evenly over those vdevs (scale_bench hold, one process per
#      20 vdevs): creation rate, vrdmad memory per idle QP; then a sample of them
#      ($SAMPLE per pair of vdevs, spread over their QPs) connected to their like on the
#      pair's other vdev and driven: 20 rounds of a 64 B RDMA WRITE each, every byte
#      checked;
#   3. the engine's cost with them: 64-byte RDMA WRITEs between vdev_a and vdev_b
#      (scale_bench rate, 8 connected pairs) before step 1 and after step 2, as a ratio;
#   4. vdevs up to $MANY on the pdev (each on a veth end of its own): time per vdev,
#      memory per vdev, and the same rate.
#
# Pinning: vrdmad on core 0 (its EAL -l 0); every client process on $VRDMA_BENCH_CPUS
# (default core 1). vm.max_map_count is left as it is (Linux's default 65530): vrdmad
# carves a context's rings out of 2 MiB memfds, a mapping each, and each holder process
# (20 vdevs) maps a ring per QP, 20,000 at the default figures.
#
# Usage (root): tests/bench/scale_bench.sh  [VRDMA_BUILD=dir] [VRDMA_SCALE_VDEVS=100]
#               [VRDMA_SCALE_QPS=100000] [VRDMA_SCALE_MANY=1000] [VRDMA_SCALE_SAMPLE=10]
set -euo pipefail
REPO="$(cd "$(dirname "$0")/../.." && pwd)"
export VRDMA_BUILD="${VRDMA_BUILD:-$REPO/build}"
CPUS="${VRDMA_BENCH_CPUS:-1}"
VDEVS="${VRDMA_SCALE_VDEVS:-100}"
QPS="${VRDMA_SCALE_QPS:-100000}"
MANY="${VRDMA_SCALE_MANY:-1000}"
SAMPLE="${VRDMA_SCALE_SAMPLE:-10}"
GROUP=20  # vdevs per holder process: pairs of them, as the sample connects
"$REPO/scripts/install-deps" >/dev/null
[[ -x "$VRDMA_BUILD/apps/vrdmad" ]] || "$REPO/scripts/build" "$VRDMA_BUILD" >/dev/null
ninja -C "$VRDMA_BUILD" >/dev/null
BENCH="$VRDMA_BUILD/tests/bench/scale_bench"

source "$REPO/tests/integration/lib.sh"
HOLDERS=()
stop_holders() {
  for p in "${HOLDERS[@]}"; do kill "$p" 2>/dev/null || true; done
  for p in "${HOLDERS[@]}"; do wait "$p" 2>/dev/null || true; done
  HOLDERS=()
}
CLEANUP_HOOKS+=(stop_holders)
setup_default
PIN=(taskset -c "$CPUS")

rss_kib() { awk '/^VmRSS/ { print $2 }' "/proc/$DAEMON_PID/status"; }
now() { date +%s.%N; }
rate() {
  in_ns "${PIN[@]}" "$VRDMA_RUN" -- "$BENCH" rate vdev_a vdev_b 3 8 3 | awk '/^rate/ { print $2 }'
}
# add_vdevs FIRST LAST: vdevs scale_FIRST .. scale_LAST, each on one end of a veth pair
# of its own (the kernel here has no dummy interfaces).
add_vdevs() {
  local i
  for ((i = $1; i <= $2; i++)); do
    in_ns ip link add "sc$i" type veth peer name "sp$i"
    in_ns ip link set "sc$i" up
  done
  for ((i = $1; i <= $2; i++)); do ctl dev add "scale_$i" pdev pdev0 netdev "sc$i" >/dev/null; done
}
# add_vdev_pairs COUNT: vdevs scale_0 .. scale_COUNT-1, scale_2p and scale_2p+1 on the
# two ends of one veth pair, 10.(200 + p / 200).(p % 200).1 and .2/24, as vdev_a and
# vdev_b are.
add_vdev_pairs() {
  local p i
  for ((p = 0; p < $1 / 2; p++)); do
    local a=$((2 * p)) b=$((2 * p + 1)) net="10.$((200 + p / 200)).$((p % 200))"
    in_ns ip link add "sc$a" type veth peer name "sc$b"
    in_ns ip link set "sc$a" up
    in_ns ip link set "sc$b" up
    in_ns ip addr add "$net.1/24" dev "sc$a"
    in_ns ip addr add "$net.2/24" dev "sc$b"
  done
  for ((i = 0; i < $1; i++)); do ctl dev add "scale_$i" pdev pdev0 netdev "sc$i" >/dev/null; done
}

echo "== rate with two vdevs and no idle QPs" >&2
rate0=$(rate)

echo "== $VDEVS vdevs" >&2
rss0=$(rss_kib)
t0=$(now)
add_vdev_pairs "$VDEVS"
t1=$(now)
rss1=$(rss_kib)

echo "== $QPS idle QPs over them" >&2
per_vdev=$((QPS / VDEVS))
t2=$(now)
for ((g = 0; g < VDEVS; g += GROUP)); do
  devs=()
  for ((i = g; i < g + GROUP && i < VDEVS; i++)); do devs+=("scale_$i"); done
  in_ns "${PIN[@]}" "$VRDMA_RUN" -- "$BENCH" hold "$per_vdev" "$SAMPLE" 3 "${devs[@]}" \
    >"$WORK/hold.$g" 2>&1 &
  HOLDERS+=($!)
done
# wait_holders LINE: until every holder printed LINE (or stopped, or is gone).
wait_holders() {
  local g
  for ((g = 0; g < VDEVS; g += GROUP)); do
    until grep -q "^$1\|stopped" "$WORK/hold.$g" 2>/dev/null; do
      kill -0 "${HOLDERS[$((g / GROUP))]}" 2>/dev/null || break
      sleep 0.2
    done
  done
}
wait_holders created
t3=$(now)
wait_holders holding
created=$(cat "$WORK"/hold.* | awk '/^created/ { n += $2 } END { print n + 0 }')
# "driven P pairs W writes S s BAD bad" from each holder.
# (Their time is not a figure: the holders share one core, some still making their QPs.)
read -r driven_pairs driven_writes driven_bad < <(cat "$WORK"/hold.* |
  awk '/^driven/ { p += $2; w += $4; b += $8 } END { print p + 0, w + 0, b + 0 }')
grep -h "stopped\|QP\|cannot" "$WORK"/hold.* | head -3 >&2 || true
rss2=$(rss_kib)
maps2=$(wc -l <"/proc/$DAEMON_PID/maps")
echo "== rate with them" >&2
rate1=$(rate)
stop_holders
sleep 1
rss3=$(rss_kib)

echo "== vdevs up to $MANY" >&2
t4=$(now)
add_vdevs "$VDEVS" $((MANY - 1))
t5=$(now)
rss4=$(rss_kib)
vdevs_now=$(ctl dev show | grep -c ": type virtual" || true)
rate2=$(rate)

cpu_model=$(awk -F': ' '/model name/ { print $2; exit }' /proc/cpuinfo)
echo
echo "vrdma scale benchmark — $(date -u +%Y-%m-%d), $(nproc) cores ($cpu_model), kernel $(uname -r)"
echo "vrdmad on core 0 (EAL -l 0); every client on core(s) $CPUS; vm.max_map_count $(cat /proc/sys/vm/max_map_count) (not raised)"
awk -v v="$VDEVS" -v q="$created" -v want="$QPS" -v t0="$t0" -v t1="$t1" -v t2="$t2" -v t3="$t3" \
  -v t4="$t4" -v t5="$t5" -v many="$vdevs_now" -v r0="$rss0" -v r1="$rss1" -v r2="$rss2" \
  -v r3="$rss3" -v r4="$rss4" -v maps="$maps2" -v a="$rate0" -v b="$rate1" -v c="$rate2" \
  -v dp="$driven_pairs" -v dw="$driven_writes" -v db="$driven_bad" \
  -v want_dw="$((VDEVS / 2 * SAMPLE * 20))" 'BEGIN {
  printf "%-58s %s\n", "what", "figure"
  printf "%-58s %.1f ms\n", "add " v " vdevs (on the ends of veth pairs), per vdev", (t1 - t0) * 1000 / v
  printf "%-58s %.1f KiB\n", "vrdmad memory per vdev (RSS)", (r1 - r0) / v
  printf "%-58s %d of %d\n", "idle RC QPs created (INIT)", q, want
  printf "%-58s %.0f QPs/s\n", "creation rate (open, PD, CQ, create_qp, modify to INIT)", q / (t3 - t2)
  printf "%-58s %.2f KiB\n", "vrdmad memory per idle QP (RSS)", q ? (r2 - r1) / q : 0
  printf "%-58s %d\n", "vrdmad mappings with them", maps
  printf "%-58s %d QP pairs, %d of %d WRITEs, %d bad bytes\n", "a sample of them connected and driven (64 B WRITEs)", dp, dw, want_dw, db
  printf "%-58s %.2f M/s\n", "64 B RDMA WRITE, 8 pairs, no idle QPs", a / 1e6
  printf "%-58s %.2f M/s (%.2f x)\n", "the same beside the idle QPs", b / 1e6, a ? b / a : 0
  printf "%-58s %d (%.1f ms per vdev added, %.1f KiB each)\n", "vdevs on the pdev", many + 0, \
    (t5 - t4) * 1000 / (many > v + 2 ? many - v - 2 : 1), (r4 - r3) / (many > v + 2 ? many - v - 2 : 1)
  printf "%-58s %.2f M/s (%.2f x)\n", "64 B RDMA WRITE, 8 pairs, beside them", c / 1e6, a ? c / a : 0
}'
finish >/dev/null
