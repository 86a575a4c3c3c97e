#!/usr/bin/env bash
# Issue 15, item 2: the sysfs view of vdevs for programs under vrdma-run. Debian's
# infiniband-diags (ibstat, ibstatus: a C program over libibumad and a shell script over
# cat), coreutils and Python read /sys/class/infiniband as on a kernel's device, and agree
# with ibv_devinfo and vrdmactl: GUIDs, firmware, port state following the interface, rate,
# GIDs with their types and interface, the device's net link, the vdev's counters.
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/tenant_lib.sh"
setup_default
run() { in_ns "$VRDMA_RUN" "$@"; }
SYS=/sys/class/infiniband

guid=$(ctl -j dev show vdev_a | grep -o '"node_guid":"[^"]*"' | cut -d'"' -f4)
devinfo=$(run ibv_devinfo -v -d vdev_a)
fw=$(awk '/fw_ver:/ {sub(/^[^:]*:[[:space:]]*/, ""); print; exit}' <<<"$devinfo")

# ibstat: every device, and vdev_a as ibv_devinfo and vrdmactl describe it.
out=$(run ibstat -l 2>&1)
expect "ibstat -l" "$(tr '\n' ' ' <<<"$out")" "pdev0 vdev_a vdev_b "
out=$(run ibstat vdev_a 2>&1)
hexguid="0x${guid//:/}"
if grep -q "CA 'vdev_a'" <<<"$out" && grep -q "Node GUID: $hexguid" <<<"$out" &&
   grep -q "System image GUID: $hexguid" <<<"$out" && grep -q "Port GUID: $hexguid" <<<"$out" &&
   grep -q "Firmware version: $fw" <<<"$out" && grep -q "State: Active" <<<"$out" &&
   grep -q "Physical state: LinkUp" <<<"$out" && grep -q "Link layer: Ethernet" <<<"$out" &&
   grep -q "Number of ports: 1" <<<"$out"; then
  pass "ibstat vdev_a agrees with ibv_devinfo ($guid, $fw)"
else
  fail "ibstat vdev_a"; echo "$out"
fi

# ibstatus (sh: cd, globs, [ -r ], cat): the default GID is ibv_devinfo's GID[0].
gid0=$(awk '/GID\[  0\]:/ {print $3; exit}' <<<"$devinfo" | tr -d ',')
out=$(run ibstatus vdev_a 2>&1)
got_gid=$(awk '/default gid:/ {print $3}' <<<"$out")
if [[ -n "$gid0" ]] && [[ "$(python3 -c "import ipaddress,sys; print(ipaddress.ip_address(sys.argv[1]) == ipaddress.ip_address(sys.argv[2]))" "$got_gid" "$gid0")" == True ]] &&
   grep -q "state:.*4: ACTIVE" <<<"$out" && grep -q "phys state:.*5: LinkUp" <<<"$out" &&
   grep -q "link_layer:.*Ethernet" <<<"$out" && grep -qE "rate:.*Gb/sec \([0-9]+X" <<<"$out"; then
  pass "ibstatus vdev_a (default gid $got_gid)"
else
  fail "ibstatus vdev_a (ibv_devinfo GID[0] '$gid0')"; echo "$out"
fi
out=$(run ibstatus 2>&1)
expect "ibstatus: every device" "$(grep -c "^Infiniband device" <<<"$out")" 3

# The GID table: IPv4 addresses as ::ffff:a.b.c.d, their types, their interface.
expect "gids/3" "$(run cat $SYS/vdev_a/ports/1/gids/3)" "0000:0000:0000:0000:0000:ffff:0a4d:0001"
expect "gid_attrs/types/3" "$(run cat $SYS/vdev_a/ports/1/gid_attrs/types/3)" "RoCE v2"
expect "gid_attrs/types/2" "$(run cat $SYS/vdev_a/ports/1/gid_attrs/types/2)" "IB/RoCE v1"
expect "gid_attrs/ndevs/3" "$(run cat $SYS/vdev_b/ports/1/gid_attrs/ndevs/3)" "vrd1"
expect "node_guid" "$(run cat $SYS/vdev_a/node_guid)" "$guid"
expect "infiniband_verbs/vdev_a/ibdev" "$(run cat /sys/class/infiniband_verbs/vdev_a/ibdev)" vdev_a
expect "abi versions" "$(run cat /sys/class/infiniband_verbs/abi_version /sys/class/infiniband_mad/abi_version | tr '\n' ' ')" "6 5 "

# The device's network interface, as rdma-core's Python tests find it.
out=$(run python3 -c '
import os
print(os.listdir("/sys/class/infiniband/vdev_a/device/net"),
      os.path.realpath("/sys/class/infiniband/vdev_a/"),
      os.path.isdir("/sys/class/infiniband/vdev_b/ports/1"),
      open("/sys/class/infiniband/vdev_a/device/net/vrd0/address").read().strip())' 2>&1)
mac=$(ctl -j dev show vdev_a | grep -o '"mac":"[^"]*"' | cut -d'"' -f4)
expect "Python: device/net, realpath, a port directory, the interface's MAC" "$out" \
  "['vrd0'] /sys/class/infiniband/vdev_a True $mac"
expect "ls device/net" "$(run ls $SYS/vdev_b/device/net 2>&1)" "vrd1"
expect "ls -l ports/1 (no errors)" "$(run ls -l $SYS/vdev_a/ports/1 2>&1 | grep -c "cannot\|No such")" 0

# The port follows its interface (docs/verbs.md): down, then up again.
port_state() { run cat $SYS/vdev_a/ports/1/state $SYS/vdev_a/ports/1/phys_state | tr '\n' ' '; }
wait_state() {  # WANTED
  local got
  for _ in $(seq 50); do
    got=$(port_state)
    [[ "$got" == "$1" ]] && break
    sleep 0.1
  done
  echo "$got"
}
in_ns ip link set vrd0 down
expect "port down with its interface" "$(wait_state "1: DOWN 3: Disabled ")" "1: DOWN 3: Disabled "
if run ibstat vdev_a 2>&1 | grep -q "State: Down"; then pass "ibstat: State: Down"; else fail "ibstat after link down"; fi
in_ns ip link set vrd0 up
expect "port up again" "$(wait_state "4: ACTIVE 5: LinkUp ")" "4: ACTIVE 5: LinkUp "

# hw_counters are the vdev's `stat show` counters.
in_ns timeout 60 "$VRDMA_RUN" -d vdev_a ibv_rc_pingpong -g 3 -n 500 -p 18600 >/dev/null 2>&1 &
srv=$!
sleep 0.5
in_ns timeout 60 "$VRDMA_RUN" -d vdev_b ibv_rc_pingpong -g 3 -n 500 -p 18600 127.0.0.1 >/dev/null 2>&1 || true
wait "$srv" || true
stat_wqes=$(ctl stat show vdev_a | awk '/^dev /{for (i = 1; i < NF; i++) if ($i == "send_wqes") print $(i + 1)}')
sys_wqes=$(run cat $SYS/vdev_a/ports/1/hw_counters/send_wqes)
if [[ "$sys_wqes" == "$stat_wqes" && "$sys_wqes" -ge 500 ]]; then
  pass "hw_counters/send_wqes = stat show's ($sys_wqes)"
else
  fail "hw_counters/send_wqes '$sys_wqes', stat show '$stat_wqes'"
fi

# Only what the device list shows the caller: from another network namespace, no vdev
# (exclusive mode); a user the vdev's mode leaves out still reads its sysfs, as on a kernel.
NS2="vrdma-it2-$$"
CLEANUP_NETNS+=(NS2)
ip netns add "$NS2"
tenant_ready
OTHER=$(tenant_user other)
out=$(ip netns exec "$NS2" setpriv --reuid "$OTHER" --regid "$OTHER" --clear-groups --inh-caps=-all \
  --bounding-set=-all -- env VRDMA_SOCKET="$VRDMA_SOCKET" "$VRDMA_RUN" ls $SYS 2>&1 || true)
if ! grep -q "vdev_" <<<"$out"; then pass "another namespace sees no vdev in sysfs"; else fail "another namespace: $out"; fi
ctl dev set vdev_b owner 0 group 0 mode 0600 >/dev/null
out=$(as_user "$OTHER" "$VRDMA_RUN" ibstat vdev_b 2>&1 || true)
if grep -q "State: Active" <<<"$out"; then pass "sysfs stays readable to a user the mode leaves out"; else fail "other user's ibstat vdev_b: $out"; fi
ctl dev set vdev_b mode 0666 >/dev/null

# Each process's tree goes with it: one while it runs, none after.
# (Command substitution waits for the end of the output, which comes with the exit.)
out=$(run python3 -c '
import glob, os
open("/sys/class/infiniband/vdev_a/node_type").read()
print(os.getpid(), len(glob.glob("/dev/shm/vrdma-sysfs-0-%d-*" % os.getpid()) +
                      glob.glob("/tmp/vrdma-sysfs-0-%d-*" % os.getpid())))')
read -r pid during <<<"$out"
left=$( (ls -d /dev/shm/vrdma-sysfs-0-"$pid"-* /tmp/vrdma-sysfs-0-"$pid"-* 2>/dev/null || true) | wc -l)
expect "the view's tree while the process runs, and after it exits" "$during $left" "1 0"
finish
