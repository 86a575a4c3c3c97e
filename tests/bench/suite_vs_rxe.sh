#!/usr/bin/env bash
# rdma-core's verbs test suite (Debian's python3-pyverbs, unmodified) on a vdev and on
# Linux's rdma_rxe, in one run (a comparison, not a test: it prints the tallies and the
# differences, and never fails on them; integration_conformance is the test).
#
#   - vdev_a of vrdmad's embedded default on this machine, as conformance.sh runs it
#     (huge pages for the parent-domain case, spoof check off for the raw packet tests);
#   - rxe0 on a veth end in a QEMU guest (Debian's kernel, software emulation, 2 vCPUs),
#     the same suite files and runner over 9p, with the guest's own rdma_rxe, ib_cm,
#     rdma_cm and rdma_ucm, an IPv4 and an IPv6 address on the interface.
#
# Prints, per device: tests run, passed, failed or errors, skipped; then the tests each
# passes that the other does not, and the skip reasons that differ.
#
# Usage (root): tests/bench/suite_vs_rxe.sh [VRDMA_BUILD=dir]
set -euo pipefail
HERE="$(cd "$(dirname "$0")/../vm" && pwd)"
REPO="$(cd "$HERE/../.." && pwd)"
export VRDMA_BUILD="${VRDMA_BUILD:-$REPO/build}"
"$REPO/scripts/install-deps" >/dev/null
[[ -x "$VRDMA_BUILD/apps/vrdmad" ]] || "$REPO/scripts/build" "$VRDMA_BUILD" >/dev/null
ninja -C "$VRDMA_BUILD" >/dev/null
RUNNER="$REPO/tests/integration/conformance_run.py"
OUT="$(mktemp -d /tmp/vrdma-suite.XXXXXX)"
chmod 755 "$OUT"
cp -r /usr/share/doc/rdma-core/tests "$OUT/suite"
gunzip -f "$OUT/suite"/*.gz

echo "== the suite on vdev_a (this machine)" >&2
(
  source "$REPO/tests/integration/lib.sh"
  VRDMAD_EXTRA_ARGS=""
  reserve_huge_pages 8 || true
  setup_default
  ctl dev set vdev_a spoofchk off
  in_ns timeout 1200 "$VRDMA_RUN" -d vdev_a -- /usr/bin/python3 "$RUNNER" "$OUT/suite" --dev vdev_a \
    >"$OUT/vdev.results" 2>&1 || true
  finish >/dev/null || true
)

echo "== the suite on rdma_rxe (QEMU guest)" >&2
source "$HERE/harness.sh"
vm_test_init sv
cp -r "$OUT/suite" "$WORK/suite"
cat >"$WORK/guest-run.sh" <<'GUEST'
#!/bin/bash
exec >/mnt/guest.log 2>&1
@PROLOGUE@
for m in veth crc32_generic rdma_rxe rdma_ucm; do modprobe -d "$KDIR" -S "$KVER" "$m"; done
sysctl -qw net.ipv6.conf.all.disable_ipv6=0 net.ipv6.conf.default.disable_ipv6=0
ip link set lo up
ip link add rxv0 type veth peer name rxv1
ip link set rxv0 up
ip link set rxv1 up
ip addr add 10.9.0.1/24 dev rxv0
ip addr add fd00:9::1/64 dev rxv0 nodad
rdma link add rxe0 type rxe netdev rxv0
for _ in $(seq 50); do
  grep -q "0000:0000:0000:0000:0000:ffff:0a09:0001" /sys/class/infiniband/rxe0/ports/1/gids/* 2>/dev/null && break
  sleep 0.2
done
timeout 3000 /usr/bin/python3 @RUNNER@ /mnt/suite --dev rxe0 >/mnt/rxe.results 2>&1 || true
touch /mnt/guest-done
echo o >/proc/sysrq-trigger
GUEST
vm_fill_guest_script "$WORK/guest-run.sh"
sed -i "s|@RUNNER@|$RUNNER|g" "$WORK/guest-run.sh"
vm_kernel
vm_initramfs
t0=$(date +%s)
VM_SMP=2 vm_boot svtap $(vm_tap_nic n1 svtap virtio-net-pci 52:54:00:76:72:31)
for _ in $(seq 18000); do [[ -f "$WORK/guest-done" ]] && break; kill -0 "$VM_PID" 2>/dev/null || break; sleep 0.2; done
echo "the guest ran the suite in $(($(date +%s) - t0)) s" >&2
cp "$WORK/rxe.results" "$OUT/rxe.results" 2>/dev/null || { tail -20 "$WORK/guest.log"; exit 1; }

# RESULT <id> <pass|fail|error|skip> [reason] (conformance_run.py)
tally() {  # FILE: ran passed failed skipped
  awk '$1 == "RESULT" { n++; if ($3 == "pass") p++; else if ($3 == "skip") s++; else f++ }
       END { printf "%d %d %d %d\n", n, p, f, s }' "$1"
}
outcome() { awk '$1 == "RESULT" { print $2, $3 }' "$1" | sort; }
read -r vr vp vf vs < <(tally "$OUT/vdev.results")
read -r rr rp rf rs < <(tally "$OUT/rxe.results")
echo "rdma-core $(dpkg-query -W -f='${Version}' python3-pyverbs) verbs suite, one run, $(date -u +%Y-%m-%d)"
echo "rxe: Debian kernel $KVER in a QEMU guest (TCG, 2 vCPUs); vdev: vrdmad's embedded default here"
echo
printf "  %-22s %6s %7s %16s %8s\n" device ran passed "failed + errors" skipped
printf "  %-22s %6s %7s %16s %8s\n" "vrdma vdev" "$vr" "$vp" "$vf" "$vs"
printf "  %-22s %6s %7s %16s %8s\n" "Linux rdma_rxe" "$rr" "$rp" "$rf" "$rs"
echo
join <(outcome "$OUT/vdev.results") <(outcome "$OUT/rxe.results") >"$OUT/both"
echo "passes on rxe, not on the vdev:"
awk '$3 == "pass" && $2 != "pass" { print "  " $1 " (vdev: " $2 ")" }' "$OUT/both"
echo "passes on the vdev, not on rxe: $(awk '$2 == "pass" && $3 != "pass"' "$OUT/both" | wc -l)"
echo "failing on rxe:"
awk '$3 == "fail" || $3 == "error" { print "  " $1 }' "$OUT/both"
echo "(results: $OUT/vdev.results, $OUT/rxe.results)"
finish >/dev/null || true
