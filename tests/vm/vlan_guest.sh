#!/usr/bin/env bash
# VLAN-tagged interfaces under two vrdmads: this machine's kernel has no 8021q, so a
# QEMU guest running Debian's kernel runs vlan_hosts.sh (two hosts in namespaces on a
# veth pair, VLAN 100 on each end, the vdevs bound to the VLAN interfaces) with the
# host's build and tools over 9p, and this side reports its results.
set -euo pipefail
HERE="$(cd "$(dirname "$0")" && pwd)"
source "$HERE/harness.sh"
vm_test_init vl

cat >"$WORK/guest-run.sh" <<'GUEST'
#!/bin/bash
exec >/mnt/guest.log 2>&1
@PROLOGUE@
# unix_diag: vrdmad proves a client by sock_diag on kernels before 6.5 (vdev/peer.h); a
# Debian system loads it on demand, this guest has no module directory to do so.
for m in veth 8021q unix_diag; do modprobe -d "$KDIR" -S "$KVER" "$m"; done
echo "modules loaded at $(cut -d' ' -f1 /proc/uptime) s"
echo "clocksource $(cat /sys/devices/system/clocksource/clocksource0/current_clocksource)"
ip link set lo up
rc=0
VRDMA_BUILD=@BUILD@ bash @HERE@/vlan_hosts.sh >/mnt/vlan.log 2>&1 || rc=$?
echo "rc=$rc" >>/mnt/vlan.log
touch /mnt/guest-done
echo o >/proc/sysrq-trigger
GUEST
vm_fill_guest_script "$WORK/guest-run.sh"

vm_kernel
vm_initramfs
t0=$(date +%s)
VM_SMP=2 vm_boot vltap $(vm_tap_nic n1 vltap virtio-net-pci 52:54:00:76:72:20)
# Up to about 17 minutes (the test's own timeout is 20): in a TCG guest on a loaded
# machine the run takes 6 to 11 minutes, more when a flaky perftest case is retried.
for _ in $(seq 5000); do [[ -f "$WORK/guest-done" ]] && break; kill -0 "$VM_PID" 2>/dev/null || break; sleep 0.2; done
echo "    guest ran the VLAN hosts in $(($(date +%s) - t0)) s"
if [[ ! -f "$WORK/vlan.log" ]]; then
  fail "the guest did not run the VLAN hosts"
  tail -20 "$WORK/console.log" "$WORK/guest.log" 2>/dev/null
  exit 1
fi
# The guest's own PASS/FAIL lines are this test's cases.
grep -v "^rc=" "$WORK/vlan.log" | sed 's/^/    /' | grep -v "^    \(PASS\|FAIL\) " || true
while read -r verdict rest; do
  if [[ $verdict == PASS ]]; then pass "$rest"; else fail "$rest"; fi
done < <(grep -E "^(PASS|FAIL) " "$WORK/vlan.log")
grep -q "^rc=0" "$WORK/vlan.log" || fail "vlan_hosts.sh in the guest: $(tail -1 "$WORK/vlan.log")"
finish
[[ $PASSES -gt 0 ]]  # the guest ran cases
