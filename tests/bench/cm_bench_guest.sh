#!/usr/bin/env bash
# Benchmark (not a test: prints figures, never fails on one): the connection manager
# against its anchor, Linux's own, on the same (emulated) CPU.
#
# One QEMU guest (Debian's kernel, 2 vCPUs, software emulation) runs, one after the other:
#   - Linux's rdma_rxe with ib_cm/rdma_cm: one rxe device on a veth end, cmtime -c N and
#     perftest (ib_send_bw 64 KiB, ib_send_lat 8 B, each with -R and without) looping
#     back through it;
#   - vrdma: tests/bench/cm_bench.sh (one vrdmad, two vdevs of its embedded default, the
#     same cmtime and perftest runs) with this machine's build over 9p.
# Both in the same guest and run, so the ratios hold although TCG makes every figure far
# slower than on the host (tests/bench/cm_bench.sh gives the host's).
#
# Pinning in the guest: vrdmad on vCPU 0 (EAL -l 0); every client (cmtime, perftest, both
# sides) on vCPU 1 with taskset, for rxe as for vrdma. rxe's own work runs in the kernel
# wherever the kernel schedules it.
#
# Usage (root): tests/bench/cm_bench_guest.sh [VRDMA_BUILD=dir] [VRDMA_BENCH_CONNS=n (100)]
set -euo pipefail
HERE="$(cd "$(dirname "$0")/../vm" && pwd)"
REPO="$(cd "$HERE/../.." && pwd)"
export VRDMA_BUILD="${VRDMA_BUILD:-$REPO/build}"
CONNS="${VRDMA_BENCH_CONNS:-100}"
"$REPO/scripts/install-deps" >/dev/null
[[ -x "$VRDMA_BUILD/apps/vrdmad" ]] || "$REPO/scripts/build" "$VRDMA_BUILD" >/dev/null
ninja -C "$VRDMA_BUILD" >/dev/null
source "$HERE/harness.sh"
vm_test_init cb

cat >"$WORK/guest-run.sh" <<'GUEST'
#!/bin/bash
exec >/mnt/guest.log 2>&1
@PROLOGUE@
for m in veth unix_diag crc32_generic rdma_rxe rdma_ucm; do modprobe -d "$KDIR" -S "$KVER" "$m"; done
ip link set lo up
[[ -e /dev/fd ]] || ln -s /proc/self/fd /dev/fd  # bash's <(...); no udev made it here
CONNS=$(cat /mnt/conns)
PIN=(taskset -c 1)
# Linux: rxe0 on one end of a veth pair; both sides of each run on rxe0.
ip link add rxv0 type veth peer name rxv1
ip link set rxv0 up
ip link set rxv1 up
ip addr add 10.9.0.1/24 dev rxv0
rdma link add rxe0 type rxe netdev rxv0
G=""
for _ in $(seq 50); do
  for i in $(seq 0 15); do
    [[ $(cat /sys/class/infiniband/rxe0/ports/1/gids/$i 2>/dev/null) == 0000:0000:0000:0000:0000:ffff:0a09:0001 &&
       $(cat /sys/class/infiniband/rxe0/ports/1/gid_attrs/types/$i 2>/dev/null) == "RoCE v2" ]] && G=$i
  done
  [[ -n $G ]] && break
  sleep 0.2
done
timeout 600 "${PIN[@]}" cmtime -b 10.9.0.1 -p 7400 -c "$CONNS" >/mnt/rxe.cmtime.server 2>&1 &
sleep 1
timeout 600 "${PIN[@]}" cmtime -s 10.9.0.1 -b 10.9.0.1 -p 7400 -c "$CONNS" >/mnt/rxe.cmtime.client 2>&1
wait
perf() {  # NAME ARGS... (the client's output in /mnt/rxe.NAME)
  local name=$1
  shift
  local -a extra=()
  [[ " $* " == *" -R "* ]] && extra=(10.9.0.1) || extra=(127.0.0.1)
  timeout 600 "${PIN[@]}" "$@" -d rxe0 >/mnt/rxe.$name.server 2>&1 &
  sleep 2
  timeout 600 "${PIN[@]}" "$@" -d rxe0 "${extra[@]}" >/mnt/rxe.$name 2>&1
  wait
}
perf send_bw ib_send_bw -x "$G" -s 65536 -n 2000 --report_gbits
perf send_bw_R ib_send_bw -R -s 65536 -n 2000 --report_gbits
perf send_lat ib_send_lat -x "$G" -s 8 -n 1000
perf send_lat_R ib_send_lat -R -s 8 -n 1000
rdma link delete rxe0
# vrdma: the host's bench, as it is, in this guest.
VRDMA_BENCH_PREBUILT=1 VRDMA_BENCH_CONNS=$CONNS VRDMA_BENCH_BW_ITERS=2000 VRDMA_BENCH_LAT_ITERS=1000 \
  VRDMA_BUILD=@BUILD@ timeout 1200 bash @REPO@/tests/bench/cm_bench.sh >/mnt/vrdma.txt 2>/mnt/vrdma.err
touch /mnt/guest-done
echo o >/proc/sysrq-trigger
GUEST
vm_fill_guest_script "$WORK/guest-run.sh"
sed -i "s|@REPO@|$REPO|g" "$WORK/guest-run.sh"
echo "$CONNS" >"$WORK/conns"

vm_kernel
vm_initramfs
t0=$(date +%s)
VM_SMP=2 vm_boot cbtap $(vm_tap_nic n1 cbtap virtio-net-pci 52:54:00:76:72:30)
for _ in $(seq 9000); do [[ -f "$WORK/guest-done" ]] && break; kill -0 "$VM_PID" 2>/dev/null || break; sleep 0.2; done
echo "guest ran the bench in $(($(date +%s) - t0)) s" >&2
[[ -f "$WORK/vrdma.txt" ]] || { tail -20 "$WORK/guest.log" "$WORK/vrdma.err" 2>/dev/null; exit 1; }

# cmtime's table (rdma-core 44): "step : total ms  max ms  min us  us / conn".
cmtime_per_conn() {  # FILE STEP: µs per connection
  awk -F: -v s="$2" '{ n = $1; gsub(/^ +| +$/, "", n) } n == s { split($2, f, " "); print f[4] }' "$1"
}
perftest_col() {  # FILE COLUMN: the last result row's column
  awk -v c="$2" '$1 ~ /^[0-9]+$/ && $2 ~ /^[0-9]+$/ && NF >= c { v = $c } END { print v }' "$1"
}
vrdma_line() {  # LABEL: the figures cm_bench.sh printed on that line
  grep -m1 "$1" "$WORK/vrdma.txt" || true
}
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (a > 0 && b > 0) printf "%.2f", a / b; else print "-" }'; }

declare -A RXE VR
for step in "resolve addr" "resolve route" connect disconnect; do
  RXE[$step]=$(cmtime_per_conn "$WORK/rxe.cmtime.client" "$step")
  VR[$step]=$(awk -v s="$step" 'index($0, "  " s " ") == 1 { print $(NF - 1) }' "$WORK/vrdma.txt")
done
RXE[send_bw]=$(perftest_col "$WORK/rxe.send_bw" 4)
RXE[send_bw_R]=$(perftest_col "$WORK/rxe.send_bw_R" 4)
RXE[send_lat]=$(perftest_col "$WORK/rxe.send_lat" 5)
RXE[send_lat_R]=$(perftest_col "$WORK/rxe.send_lat_R" 5)
read -r VR[send_bw_R] VR[send_bw] < <(vrdma_line "ib_send_bw 64 KiB" |
  sed -n 's/.*: \([0-9.-]*\) Gb\/s with -R, \([0-9.-]*\) Gb\/s without.*/\1 \2/p') || true
read -r VR[send_lat_R] VR[send_lat] < <(vrdma_line "ib_send_lat 8 B" |
  sed -n 's/.*: \([0-9.-]*\) µs with -R, \([0-9.-]*\) µs without.*/\1 \2/p') || true

cpu_model=$(awk -F': ' '/model name/ { print $2; exit }' /proc/cpuinfo)
echo "vrdma CM vs Linux's rdma_rxe + rdma_cm, one TCG guest — $(date -u +%Y-%m-%d), host: $(nproc) cores ($cpu_model)"
echo "guest: 2 vCPUs, Debian kernel $KVER; vrdmad on vCPU 0, every client on vCPU 1"
echo
printf "  %-34s %12s %12s %8s\n" "" "vrdma" "rxe" "ratio"
for step in "resolve addr" "resolve route" connect disconnect; do
  printf "  %-34s %12s %12s %8s\n" "cmtime -c $CONNS $step, µs/conn" "${VR[$step]:--}" "${RXE[$step]:--}" \
    "$(ratio "${RXE[$step]:-0}" "${VR[$step]:-0}")"
done
printf "  %-34s %12s %12s %8s\n" "ib_send_bw 64 KiB -R, Gb/s" "${VR[send_bw_R]:--}" "${RXE[send_bw_R]:--}" \
  "$(ratio "${VR[send_bw_R]:-0}" "${RXE[send_bw_R]:-0}")"
printf "  %-34s %12s %12s %8s\n" "ib_send_bw 64 KiB, Gb/s" "${VR[send_bw]:--}" "${RXE[send_bw]:--}" \
  "$(ratio "${VR[send_bw]:-0}" "${RXE[send_bw]:-0}")"
printf "  %-34s %12s %12s %8s\n" "ib_send_lat 8 B -R, µs" "${VR[send_lat_R]:--}" "${RXE[send_lat_R]:--}" \
  "$(ratio "${RXE[send_lat_R]:-0}" "${VR[send_lat_R]:-0}")"
printf "  %-34s %12s %12s %8s\n" "ib_send_lat 8 B, µs" "${VR[send_lat]:--}" "${RXE[send_lat]:--}" \
  "$(ratio "${RXE[send_lat]:-0}" "${VR[send_lat]:-0}")"
echo
echo "ratio: how many times faster vrdma is (rxe's time / vrdma's, vrdma's rate / rxe's)."
missing=0
for k in "resolve addr" "resolve route" connect disconnect send_bw send_bw_R send_lat send_lat_R; do
  [[ -n ${VR[$k]:-} && -n ${RXE[$k]:-} ]] || missing=1
done
if ((missing)); then
  echo
  echo "missing figures; what the runs said:"
  tail -n 5 "$WORK/vrdma.err" "$WORK/rxe.cmtime.client" 2>/dev/null | sed 's/^/  /'
fi
