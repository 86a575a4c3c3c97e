#!/usr/bin/env bash
# Issue 15, item 5 (its first part): vdevs bound to interfaces of other network
# namespaces, as a container runtime gives each container its own (`vrdmactl dev add DEV
# netdev eth0 netns /run/netns/NAME`). Two namespaces C1 and C2, joined by a veth pair both
# of whose ends are called eth0, stand for two containers; vrdmad runs in a third. Each
# container's programs see only their own vdev; perftest and ibv_rc_pingpong move data
# between them (address resolution in each container's namespace), and rping through the
# connection manager (routes looked up in the client's namespace); iproute2's rdma in a
# container shows its link and interface; the vdevs follow their interfaces (an address
# added, the pair deleted); refusals.
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/tenant_lib.sh"
setup_hosts
start_daemon
C1="vrdma-it-c1-$$"
C2="vrdma-it-c2-$$"
CLEANUP_NETNS+=(C1 C2)
ip netns add "$C1"
ip netns add "$C2"
ip link add "c1-$$" netns "$C1" type veth peer name "c2-$$" netns "$C2"
for c in 1 2; do
  ns=C$c
  ip -n "${!ns}" link set lo up
  ip -n "${!ns}" link set "c$c-$$" name eth0
  ip -n "${!ns}" link set eth0 up
  ip -n "${!ns}" addr add "10.88.0.$c/24" dev eth0
done
in_c() {  # N CMD...: CMD in container N's namespace, with the daemon's socket
  local ns=C$1
  shift
  ip netns exec "${!ns}" env VRDMA_SOCKET="$VRDMA_SOCKET" "$@"
}

# ---- adding them
out=$(ctl dev add vdev_c1 netdev eth0 netns "/run/netns/$C1" 2>&1)
out2=$(ctl dev add vdev_c2 netdev eth0 netns "/run/netns/$C2" 2>&1)
inode=$(stat -L -c %i "/run/netns/$C1")
if grep -q "vdev_c1: type virtual pdev pdev0 netdev eth0 netns net:\[$inode\]" <<<"$out" &&
   grep -q "gid 3 ::ffff:10.88.0.1 RoCEv2" <<<"$out" && grep -q "netdev eth0 netns" <<<"$out2"; then
  pass "dev add vdev_c1/vdev_c2 netdev eth0 netns: both containers' eth0, their addresses as GIDs"
else
  fail "dev add ... netns"; echo "$out"; echo "$out2"
fi
expect "dev show -j: the namespace's inode" \
  "$(ctl -j dev show vdev_c1 | grep -o '"netns":[0-9]*')" "\"netns\":$inode"

# ---- who sees what
expect "container 1 sees only vdev_c1" "$(in_c 1 "$VRDMA_RUN" ibv_devices | awk 'NR>2 {print $1}' | tr '\n' ' ')" "vdev_c1 "
expect "container 2 sees only vdev_c2" "$(in_c 2 "$VRDMA_RUN" ibv_devices | awk 'NR>2 {print $1}' | tr '\n' ' ')" "vdev_c2 "
out=$(in_ns "$VRDMA_RUN" ibv_devices | awk 'NR>2 {print $1}' | tr '\n' ' ')
expect "the daemon's namespace sees neither (root too)" "$out" "pdev0 "
expect "rdma link in container 1" "$(in_c 1 "$VRDMA_RUN" rdma link 2>&1)" \
  "link vdev_c1/1 state ACTIVE physical_state LINK_UP netdev eth0 "

# ---- data between the containers: RoCEv2 over their IPv4 addresses (GID 3), each
# resolving the other's MAC in its own namespace.
in_c 2 timeout 120 "$VRDMA_RUN" ib_write_bw -x 3 -s 65536 -n 200 -p 18700 >"$WORK/bw.server" 2>&1 &
srv=$!
sleep 0.5
if in_c 1 timeout 120 "$VRDMA_RUN" ib_write_bw -x 3 -s 65536 -n 200 -p 18700 10.88.0.2 \
     >"$WORK/bw.client" 2>&1 && wait "$srv"; then
  pass "ib_write_bw from container 1 to container 2 ($(awk '$1 == 65536 {print $4 " MB/s"}' "$WORK/bw.client"))"
else
  fail "ib_write_bw between the containers"; tail -5 "$WORK/bw.client" "$WORK/bw.server"
fi
in_c 1 timeout 120 "$VRDMA_RUN" ibv_rc_pingpong -g 3 -c -s 65536 -n 50 -p 18701 >"$WORK/pp.server" 2>&1 &
srv=$!
sleep 0.5
if in_c 2 timeout 120 "$VRDMA_RUN" ibv_rc_pingpong -g 3 -c -s 65536 -n 50 -p 18701 10.88.0.1 \
     >"$WORK/pp.client" 2>&1 && wait "$srv"; then
  pass "ibv_rc_pingpong -c (data checked) from container 2 to container 1"
else
  fail "ibv_rc_pingpong between the containers"; tail -5 "$WORK/pp.client" "$WORK/pp.server"
fi

# RDMA-CM between the containers: the route and the neighbour looked up in the client's
# namespace (rping -V checks every ping's data).
in_c 2 timeout 60 "$VRDMA_RUN" rping -s -a 10.88.0.2 -p 7300 -C 5 -v -V >"$WORK/rping.server" 2>&1 &
srv=$!
sleep 0.5
if in_c 1 timeout 60 "$VRDMA_RUN" rping -c -a 10.88.0.2 -p 7300 -C 5 -v -V >"$WORK/rping.client" 2>&1 &&
   wait "$srv" && [[ $(grep -c "ping data" "$WORK/rping.client") -eq 5 ]]; then
  pass "rping -V from container 1 to container 2 (5 pings, data checked)"
else
  fail "rping between the containers"; tail -3 "$WORK/rping.client" "$WORK/rping.server"
fi

# ---- the vdevs follow their interfaces, in their namespaces
ip -n "$C1" addr add 10.89.0.1/24 dev eth0
for _ in $(seq 50); do
  ctl dev show vdev_c1 | grep -q "::ffff:10.89.0.1" && break
  sleep 0.1
done
expect "an address added in container 1: a GID of vdev_c1" \
  "$(ctl dev show vdev_c1 | grep -c "::ffff:10.89.0.1")" 2

# ---- refusals
out=$(ctl dev add vdev_x netdev eth0 netns /etc/hostname 2>&1 || true)
expect "netns of a file that is not a namespace: refused" \
  "$(grep -c "not a network namespace" <<<"$out")" 1
out=$(ctl dev add vdev_x netdev nosuch netns "/run/netns/$C1" 2>&1 || true)
expect "an interface the namespace does not have: refused" "$(grep -c "nosuch" <<<"$out")" 1
tenant_ready
user=$(tenant_user netns)
out=$(as_user "$user" "$VRDMACTL" dev add vdev_x netdev eth0 netns "/run/netns/$C1" 2>&1 || true)
expect "a user who is not the administrator: refused" "$(grep -c "not permitted" <<<"$out")" 1
expect "no vdev_x" "$(ctl dev show vdev_x 2>&1 | grep -c "^[0-9]*: vdev_x")" 0

# ---- the pair deleted inside the containers: both vdevs go
ip -n "$C1" link del eth0
for _ in $(seq 50); do
  [[ $(ctl dev show | grep -c "vdev_c") -eq 0 ]] && break
  sleep 0.1
done
expect "the veth pair deleted: vdev_c1 and vdev_c2 removed" "$(ctl dev show | grep -c "vdev_c")" 0
finish
