#!/usr/bin/env bash
# Interop with Linux's own Soft-RoCE: a vdev on this machine (vrdmad on an AF_PACKET port
# on a tap) against rxe0 in a QEMU guest running Debian's kernel. Unmodified
# ibverbs-utils and perftest, each side as server and as client: RC SEND (pingpong -c),
# RC WRITE/READ/SEND/ATOMIC (perftest), UD SEND, over RoCEv2 IPv4 and IPv6, path MTU
# 1024 and 4096; xfer_check checks every byte and atomic value of WRITE, READ, ATOMIC
# and SEND at both ends, also through memory windows of both types. Then RDMA-CM
# (cm_side.sh): vrdmad's CM against the kernel's
# ib_cm/rdma_cm through the guest's rdma_ucm, with Debian's unmodified rping -V, ucmatose,
# udaddy (UD, through SIDR), mckey (UD multicast joined through the CM) and perftest -R,
# each side as server. The kernel is the
# reference: a case that fails is a vrdma bug to find, not a tolerance to add.
set -euo pipefail
HERE="$(cd "$(dirname "$0")" && pwd)"
source "$HERE/harness.sh"
vm_test_init vm

# The cases, run in this order by both sides: NAME SERVER(host|guest) V(4|6) COMMAND...
# (each side adds its own device and GID index; the client adds the server's address).
cat >"$WORK/cases" <<'CASES'
rc_send_mtu1024_v4_gs guest 4 ibv_rc_pingpong -c -s 4096 -n 200 -m 1024
rc_send_mtu1024_v4_hs host 4 ibv_rc_pingpong -c -s 4096 -n 200 -m 1024
rc_send_mtu4096_v4_gs guest 4 ibv_rc_pingpong -c -s 65536 -n 100 -m 4096
rc_send_mtu4096_v6_hs host 6 ibv_rc_pingpong -c -s 65536 -n 100 -m 4096
rc_send_mtu1024_v6_gs guest 6 ibv_rc_pingpong -c -s 10000 -n 100 -m 1024
ud_send_v4_gs guest 4 ibv_ud_pingpong -c -s 1024 -n 200
ud_send_v6_hs host 6 ibv_ud_pingpong -c -s 2048 -n 200
write_bw_v4_gs guest 4 ib_write_bw -s 65536 -n 200
write_bw_v4_hs host 4 ib_write_bw -s 65536 -n 200
read_bw_v4_gs guest 4 ib_read_bw -s 65536 -n 200
read_bw_v6_hs host 6 ib_read_bw -s 65536 -n 200
send_bw_v4_hs host 4 ib_send_bw -s 8192 -n 200
atomic_fa_v4_gs guest 4 ib_atomic_bw -A FETCH_AND_ADD -n 200
atomic_cs_v4_hs host 4 ib_atomic_bw -A CMP_AND_SWAP -n 200
write_lat_mtu1024_v4_gs guest 4 ib_write_lat -s 4096 -n 200 -m 1024
CASES
# The data checker (WRITE, READ, FETCH_AND_ADD, CMP_AND_SWAP and SEND, every byte and
# value checked by both ends), both ways, IPv4 and IPv6, MTU 1024 and 4096; then the same
# through a memory window of the server's (-w: type 1 bound by ibv_bind_mw and unbound
# after; type 2 bound by a work request and invalidated by the client's SEND), each side
# as the server.
cat >>"$WORK/cases" <<CASES
xfer_mtu1024_v4_gs guest 4 $XFER -m 1024 -s 1048576
xfer_mtu4096_v4_hs host 4 $XFER -m 4096 -s 1048576
xfer_mtu4096_v6_gs guest 6 $XFER -m 4096 -s 1048576
xfer_mtu1024_v6_hs host 6 $XFER -m 1024 -s 1048576
xfer_mw1_v4_gs guest 4 $XFER -m 1024 -s 65536 -w 1
xfer_mw1_v4_hs host 4 $XFER -m 1024 -s 65536 -w 1
xfer_mw2_v4_gs guest 4 $XFER -m 4096 -s 65536 -w 2
xfer_mw2_v6_hs host 6 $XFER -m 4096 -s 65536 -w 2
CASES
# The RDMA-CM cases, after those (cm_side.sh): NAME SERVER V TOOL ARGS... Each side
# adds its address (perftest: its device), the client the server's address and a port.
# The RC ones (rping, ucmatose, perftest -R) need the PSNs as Linux's CM gives them: the
# Starting PSN a REQ or REP carries is its sender's receive PSN (cm.c: the active side's
# rq_psn is its REQ's, its sq_psn the REP's; the passive side's sq_psn is the REQ's, its
# rq_psn its REP's), as a capture of rping between two rxe peers shows on the wire.
cat >"$WORK/cm_cases" <<'CASES'
cm_rping_v4_hs host 4 rping -v -V -C 10
cm_rping_v4_gs guest 4 rping -v -V -C 10
cm_rping_v6_hs host 6 rping -v -V -C 10 -S 4000
cm_rping_v6_gs guest 6 rping -v -V -C 10 -S 4000
cm_ucmatose_v4_hs host 4 ucmatose -c 4 -C 10
cm_ucmatose_v4_gs guest 4 ucmatose -c 4 -C 10
cm_udaddy_sidr_v4_hs host 4 udaddy -C 10
cm_udaddy_sidr_v4_gs guest 4 udaddy -C 10
cm_mckey_v4_hs host 4 mckey -m 239.79.0.1 -C 10 -S 1000
cm_mckey_v4_gs guest 4 mckey -m 239.79.0.2 -C 10 -S 1000
cm_send_bw_R_v4_hs host 4 ib_send_bw -s 65536 -n 200
cm_send_bw_R_v4_gs guest 4 ib_send_bw -s 65536 -n 200
cm_write_bw_R_v4_hs host 4 ib_write_bw -s 65536 -n 200
cm_write_bw_R_v4_gs guest 4 ib_write_bw -s 65536 -n 200
CASES
# RXE_CASES (a regular expression) runs only the cases it matches.
if [[ -n "${RXE_CASES:-}" ]]; then
  for f in cases cm_cases; do
    grep -E "^(${RXE_CASES}) " "$WORK/$f" >"$WORK/$f.sel" || true
    mv "$WORK/$f.sel" "$WORK/$f"
  done
fi

# The guest: rxe0 on its virtio-net, its side of every case, then power off.
cat >"$WORK/guest-run.sh" <<'GUEST'
#!/bin/bash
exec >/mnt/guest.log 2>&1
@PROLOGUE@
# rdma_ucm (with rdma_cm, ib_cm, iw_cm) gives librdmacm its /dev/infiniband/rdma_cm.
for m in crc32_generic rdma_rxe rdma_ucm; do modprobe -d "$KDIR" -S "$KVER" "$m"; done
echo "modules loaded at $(cut -d' ' -f1 /proc/uptime) s"
sysctl -qw net.ipv6.conf.eth0.disable_ipv6=0 net.ipv6.conf.all.disable_ipv6=0
ip link set lo up
ip link set eth0 mtu 9000 up
rdma link add rxe0 type rxe netdev eth0
ip addr add 10.79.0.2/24 dev eth0
ip addr add fd00:79::2/64 dev eth0 nodad
# GID indexes by address and type, from sysfs.
gid_index() {
  local want=$1 d=/sys/class/infiniband/rxe0/ports/1
  local i
  for i in $(seq 0 15); do
    [[ $(cat "$d/gids/$i" 2>/dev/null) == "$want" ]] || continue
    [[ $(cat "$d/gid_attrs/types/$i" 2>/dev/null) == "RoCE v2" ]] && { echo "$i"; return; }
  done
}
for _ in $(seq 50); do
  G4=$(gid_index 0000:0000:0000:0000:0000:ffff:0a4f:0002)
  G6=$(gid_index fd00:0079:0000:0000:0000:0000:0000:0002)
  [[ -n "$G4" && -n "$G6" ]] && break
  sleep 0.2
done
echo "guest gids v4=$G4 v6=$G6 at $(cut -d' ' -f1 /proc/uptime) s"
for i in $(seq 0 7); do echo "  gid $i $(cat /sys/class/infiniband/rxe0/ports/1/gids/$i) $(cat /sys/class/infiniband/rxe0/ports/1/gid_attrs/types/$i 2>/dev/null)"; done
ip -6 addr show dev eth0
ibv_devinfo -d rxe0 | grep -E "active_mtu|state"
touch /mnt/ready
CASES=/mnt/cases
source @HERE@/run_side.sh
run_side guest "" "$G4" "$G6" 10.79.0.1 /mnt
CM_CASES=/mnt/cm_cases
source @HERE@/cm_side.sh
# rxe's counters, before and after each RDMA-CM case (cm_judge reads them).
cm_counters() {
  local c d=/sys/class/infiniband/rxe0/ports/1/hw_counters
  for c in rdma_recvs rdma_sends retry_exceeded_err retry_rnr_exceeded_err rcvd_seq_err \
    out_of_seq_request duplicate_request completer_retry_err; do
    echo -n "$c=$(cat $d/$c 2>/dev/null) "
  done
  # The CM MADs ib_cm received (QP1's receives count in rdma_recvs too).
  echo "cm_rx_msgs=$(cat /sys/class/infiniband/rxe0/ports/1/cm_rx_msgs/* 2>/dev/null | awk '{s += $1} END {print s + 0}')"
}
cm_side guest "" rxe0 10.79.0.2 fd00:79::2 10.79.0.1 fd00:79::1 /mnt
touch /mnt/guest-done
echo o >/proc/sysrq-trigger
GUEST
vm_fill_guest_script "$WORK/guest-run.sh"

# The guest's kernel and initramfs (downloaded and built once, cached).
vm_kernel
vm_initramfs

# The host: a namespace holding the guest's tap, vrdmad on it, vdev_h.
t0=$(date +%s)
NIC=$(vm_tap_nic n0 vmtap virtio-net-pci 52:54:00:76:72:01 host_mtu=9000)
vm_boot vmtap $NIC
vm_watch_nic_start
ip -n "$NS" link set vmtap mtu 9000 up
ip -n "$NS" addr add 10.79.0.1/24 dev vmtap
ip -n "$NS" addr add fd00:79::1/64 dev vmtap nodad
ip netns exec "$NS" "$VRDMAD" -l 0 --no-huge -m 512 --no-pci --no-telemetry --file-prefix "$NS" -- \
  --socket "$VRDMA_SOCKET" ${RXE_VRDMAD_ARGS:-} --pdev "ph,iface=vmtap,type=af_packet" --pcap "$WORK/host.pcap" \
  >"$WORK/vrdmad.log" 2>&1 &
DAEMON_PID=$!
wait_for_daemon "$VRDMA_SOCKET" "$DAEMON_PID" "$WORK/vrdmad.log"
ip netns exec "$NS" "$VRDMACTL" dev add vdev_h pdev ph netdev vmtap >/dev/null
H4=$(ip netns exec "$NS" "$VRDMACTL" dev show vdev_h | awk '$1 == "gid" && $3 == "::ffff:10.79.0.1" && $4 == "RoCEv2" {print $2}')
H6=$(ip netns exec "$NS" "$VRDMACTL" dev show vdev_h | awk '$1 == "gid" && $3 == "fd00:79::1" && $4 == "RoCEv2" {print $2}')

for _ in $(seq 600); do [[ -f "$WORK/ready" ]] && break; kill -0 "$VM_PID" 2>/dev/null || break; sleep 0.2; done
if [[ ! -f "$WORK/ready" ]]; then
  fail "guest did not come up"; tail -20 "$WORK/console.log" "$WORK/guest.log" 2>/dev/null
  exit 1
fi
echo "    guest up in $(($(date +%s) - t0)) s; host gids v4=$H4 v6=$H6; $(grep 'guest gids' "$WORK/guest.log")"
CASES="$WORK/cases"
source "$HERE/run_side.sh"
run_side host "ip netns exec $NS $VRDMA_RUN -d vdev_h --" "$H4" "$H6" 10.79.0.2 "$WORK"
t1=$(date +%s)
CM_CASES="$WORK/cm_cases"
source "$HERE/cm_side.sh"
cm_counters() { ip netns exec "$NS" "$VRDMACTL" stat show | head -1 | sed -E 's/([a-z_]+) ([0-9]+)/\1=\2/g' || true; }
cm_side host "ip netns exec $NS $VRDMA_RUN -d vdev_h --" vdev_h 10.79.0.1 fd00:79::1 10.79.0.2 fd00:79::2 "$WORK"
echo "    boot and verbs cases $((t1 - t0)) s, RDMA-CM cases $(($(date +%s) - t1)) s"
for _ in $(seq 300); do [[ -f "$WORK/guest-done" ]] && break; kill -0 "$VM_PID" 2>/dev/null || break; sleep 0.2; done
vm_nic_verdict

judge_cases "vrdma vdev <-> rdma_rxe"
cm_judge "vrdma CM <-> Linux ib_cm/rdma_cm on rdma_rxe" "$WORK"
echo "    $(ip netns exec "$NS" "$VRDMACTL" stat show | head -1 | tr ' ' '\n' | grep -A1 -E 'rx_malformed|rx_not_for_us|retransmits' | paste -sd' ')"
finish
