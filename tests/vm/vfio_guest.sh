#!/usr/bin/env bash
# The VFIO path, for real: a QEMU guest (Debian's kernel, an emulated Intel IOMMU) whose
# emulated Intel NIC (e1000e, 8086:10d3) starts on the kernel's e1000e driver;
# `vrdmactl pci bind` hands it to vfio-pci, vrdmad drives it through DPDK's
# net_e1000_em PMD (`--pdev pg,pci=BDF,kernel=vrd0`) on 2 MiB hugepages, and the guest
# kernel reaches the wire through the exception path (vrd0). Then unmodified
# ibverbs-utils and perftest run between a vdev in the guest (server) and a vdev on this
# machine (client, vrdmad on an AF_PACKET port on the NIC's tap), data checked; at the
# end `vrdmactl pci unbind` gives the NIC back to e1000e.
set -euo pipefail
HERE="$(cd "$(dirname "$0")" && pwd)"
source "$HERE/harness.sh"
vm_test_init vf

BDF=0000:00:07.0
# The guest is the server of every case (its vdev on the NIC it drives through VFIO).
# Path MTU 1024: the NIC runs at Ethernet MTU 1500.
cat >"$WORK/cases" <<'CASES'
rc_pingpong guest 4 ibv_rc_pingpong -c -s 4096 -n 100 -m 1024
ud_pingpong guest 4 ibv_ud_pingpong -c -s 1024 -n 100
send_bw guest 4 ib_send_bw -s 4096 -n 200
write_bw guest 4 ib_write_bw -s 65536 -n 200
read_bw guest 4 ib_read_bw -s 65536 -n 100
atomic_fa guest 4 ib_atomic_bw -A FETCH_AND_ADD -n 100
CASES
echo "xfer guest 4 $XFER -m 1024 -s 262144" >>"$WORK/cases"
# Buffers 104 bytes into a page: the data of every fourth packet crosses a page, whose
# neighbour is elsewhere in the guest's memory (zero-copy splits such payloads).
echo "xfer_unaligned guest 4 $XFER -m 1024 -s 262144 -o 104" >>"$WORK/cases"

cat >"$WORK/guest-run.sh" <<'GUEST'
#!/bin/bash
exec >/mnt/guest.log 2>&1
@PROLOGUE@
B=@BUILD@
BDF=@BDF@
step() { echo "step $* at $(cut -d' ' -f1 /proc/uptime) s"; }
# unix_diag: vrdmad proves a client by sock_diag on kernels before 6.5 (vdev/peer.h); a
# Debian system loads it on demand, this guest has no module directory to do so.
for m in e1000e vfio-pci vfio_iommu_type1 tun unix_diag; do modprobe -d "$KDIR" -S "$KVER" "$m"; done
for _ in $(seq 50); do [[ -e /sys/bus/pci/devices/$BDF/driver ]] && break; sleep 0.1; done
step "modules loaded; iommu groups: $(ls /sys/kernel/iommu_groups | wc -l)"
echo "driver_before=$(basename "$(readlink /sys/bus/pci/devices/$BDF/driver)")" >/mnt/state
ip link set lo up
$B/apps/vrdmactl pci bind $BDF >/mnt/bind.out 2>&1
echo "bind_rc=$?" >>/mnt/state
echo "driver_bound=$(basename "$(readlink /sys/bus/pci/devices/$BDF/driver)")" >>/mnt/state
echo "vfio_dev=$(ls /dev/vfio | grep -v vfio | head -1)" >>/mnt/state
echo 256 >/sys/kernel/mm/hugepages/hugepages-2048kB/nr_hugepages
mkdir -p /dev/hugepages
mount -t hugetlbfs nodev /dev/hugepages
step "bound; hugepages $(cat /sys/kernel/mm/hugepages/hugepages-2048kB/nr_hugepages)"
export VRDMA_SOCKET=/tmp/g.sock
$B/apps/vrdmad -l 0 --file-prefix vg -a $BDF --no-telemetry -- --socket $VRDMA_SOCKET \
  --pdev pg,pci=$BDF,kernel=vrd0 >/mnt/vrdmad-guest.log 2>&1 &
VRDMAD_PID=$!
for _ in $(seq 600); do [[ -S $VRDMA_SOCKET ]] && break; sleep 0.1; done
step "vrdmad up"
ip link set vrd0 up
ip addr add 10.80.0.2/24 dev vrd0
$B/apps/vrdmactl dev add vdev_g pdev pg netdev vrd0
$B/apps/vrdmactl pdev show >>/mnt/state
G4=$($B/apps/vrdmactl dev show vdev_g | awk '$1 == "gid" && $3 == "::ffff:10.80.0.2" && $4 == "RoCEv2" {print $2}')
echo "guest_gid=$G4" >>/mnt/state
ping -c 2 -W 5 10.80.0.1 >/mnt/ping.out 2>&1 && echo "ping=ok" >>/mnt/state
touch /mnt/ready
CASES=/mnt/cases
source @HERE@/run_side.sh
run_side guest "$B/apps/vrdma-run -d vdev_g --" "$G4" "" 10.80.0.1 /mnt
$B/apps/vrdmactl stat show pg >>/mnt/state
kill -TERM $VRDMAD_PID
wait $VRDMAD_PID
$B/apps/vrdmactl pci unbind $BDF >/mnt/unbind.out 2>&1
echo "unbind_rc=$?" >>/mnt/state
for _ in $(seq 50); do [[ -e /sys/bus/pci/devices/$BDF/driver ]] && break; sleep 0.1; done
echo "driver_after=$(basename "$(readlink /sys/bus/pci/devices/$BDF/driver)")" >>/mnt/state
touch /mnt/guest-done
echo o >/proc/sysrq-trigger
GUEST
sed -i "s|@BDF@|$BDF|" "$WORK/guest-run.sh"
vm_fill_guest_script "$WORK/guest-run.sh"

vm_kernel
vm_initramfs

t0=$(date +%s)
NIC=$(vm_tap_nic n1 vftap e1000e 52:54:00:76:72:10 bus=pcie.0 addr=0x7)
# An emulated IOMMU with interrupt remapping (vfio-pci needs it) and 48-bit addresses,
# as on a real host: with IOVA = VA, client memory (mapped high in vrdmad's address
# space) is beyond the 39 bits QEMU's IOMMU has by default.
VM_MACHINE=q35,kernel-irqchip=split VM_APPEND="intel_iommu=on" VM_SMP=2 \
  vm_boot vftap -device intel-iommu,intremap=on,aw-bits=48 $NIC
vm_watch_nic_start
ip -n "$NS" link set vftap up
ip -n "$NS" addr add 10.80.0.1/24 dev vftap
ip netns exec "$NS" "$VRDMAD" -l 1 --no-huge -m 512 --no-pci --no-telemetry --file-prefix "$NS" -- \
  --socket "$VRDMA_SOCKET" --pdev "ph,iface=vftap,type=af_packet" >"$WORK/vrdmad.log" 2>&1 &
DAEMON_PID=$!
wait_for_daemon "$VRDMA_SOCKET" "$DAEMON_PID" "$WORK/vrdmad.log"
ip netns exec "$NS" "$VRDMACTL" dev add vdev_h pdev ph netdev vftap >/dev/null
H4=$(ip netns exec "$NS" "$VRDMACTL" dev show vdev_h | awk '$1 == "gid" && $3 == "::ffff:10.80.0.1" && $4 == "RoCEv2" {print $2}')

for _ in $(seq 1500); do [[ -f "$WORK/ready" ]] && break; kill -0 "$VM_PID" 2>/dev/null || break; sleep 0.2; done
state() { sed -n "s/^$1=//p" "$WORK/state" 2>/dev/null | head -1; }
if [[ ! -f "$WORK/ready" ]]; then
  fail "guest did not come up"
  tail -20 "$WORK/console.log" "$WORK/guest.log" "$WORK/bind.out" "$WORK/vrdmad-guest.log" 2>/dev/null
  exit 1
fi
echo "    guest ready in $(($(date +%s) - t0)) s; $(grep '^step' "$WORK/guest.log" | tr '\n' ';')"
if [[ $(state driver_before) == e1000e && $(state bind_rc) == 0 && $(state driver_bound) == vfio-pci && -n $(state vfio_dev) ]]; then
  pass "vrdmactl pci bind: e1000e -> vfio-pci, /dev/vfio/$(state vfio_dev)"
else
  fail "pci bind"; cat "$WORK/state" "$WORK/bind.out"
fi
if grep -q "pg" "$WORK/state" && grep -q "pci" "$WORK/state"; then
  pass "vrdmad drives $BDF through vfio-pci (net_e1000_em)"
else
  fail "vrdmad on the PCI port"; tail -20 "$WORK/vrdmad-guest.log"
fi
if [[ $(state ping) == ok ]]; then pass "the guest kernel pings this host through the exception path"; else fail "ping from vrd0"; cat "$WORK/ping.out"; fi

CASES="$WORK/cases"
source "$HERE/run_side.sh"
run_side host "ip netns exec $NS $VRDMA_RUN -d vdev_h --" "$H4" "" 10.80.0.2 "$WORK"
for _ in $(seq 300); do [[ -f "$WORK/guest-done" ]] && break; kill -0 "$VM_PID" 2>/dev/null || break; sleep 0.2; done
vm_nic_verdict

judge_cases "host vdev <-> guest vdev on vfio-pci e1000e"
grep "^pdev pg" "$WORK/state" | tr ' ' '\n' | paste -sd' ' | cut -c1-200 | sed 's/^/    /'
# Zero-copy transmit through the NIC's DMA: registered client memory is DPDK external
# memory mapped for the e1000e (IOVA = VA under the IOMMU), and payloads leave from it.
zc=$(grep "^pdev pg" "$WORK/state" | grep -o ' tx_zero_copy [0-9]*' | awk '{print $2}')
tx=$(grep "^pdev pg" "$WORK/state" | grep -o ' tx_packets [0-9]*' | awk '{print $2}')
if [[ ${zc:-0} -gt 1000 ]] && ! grep -q zero_copy_off "$WORK/vrdmad-guest.log"; then
  pass "zero-copy transmit by DMA from client memory ($zc of $tx frames)"
else
  fail "zero-copy transmit on the PCI port (tx_zero_copy ${zc:-none})"
  grep -i "zero_copy\|iova" "$WORK/vrdmad-guest.log" | head -5
fi
if [[ $(state unbind_rc) == 0 && $(state driver_after) == e1000e ]]; then
  pass "vrdmactl pci unbind gives the NIC back to e1000e"
else
  fail "pci unbind"; cat "$WORK/unbind.out" 2>/dev/null
fi
finish
