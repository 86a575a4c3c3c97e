#!/usr/bin/env bash
# Issue 15, item 5: the vrdma CNI plugin (apps/vrdma-cni). First as a runtime calls it (the
# CNI_* variables, the configuration on stdin) against a namespace the test makes: ADD
# binds a vdev to the namespace's interface, CHECK finds it as added, DEL removes it (and
# again succeeds), VERSION, and the specification's errors. Then with a real container
# engine, Debian's Podman with its CNI backend, chaining macvlan and vrdma: two containers
# each get their own vdev, see only it, and run perftest and rping between each other;
# stopping a container removes its vdev.
source "$(dirname "$0")/lib.sh"
setup_hosts
setup_second_pair
start_daemon
PLUGIN="$VRDMA_BUILD/apps/vrdma"
C1="vrdma-it-cni-$$"
CLEANUP_NETNS+=(C1)
ip netns add "$C1"
in_ns ip link add "cni-$$" type veth peer name "cnp-$$"
in_ns ip link set "cni-$$" netns "$C1"
ip -n "$C1" link set "cni-$$" name net1
ip -n "$C1" link set net1 up
ip -n "$C1" addr add 10.98.0.1/24 dev net1
ID=0123456789abcdef0123456789abcdef
cni() {  # COMMAND [IFNAME] < CONFIG
  in_ns env CNI_COMMAND="$1" CNI_CONTAINERID="$ID" CNI_NETNS="/run/netns/$C1" \
    CNI_IFNAME="${2:-net1}" CNI_PATH=/usr/lib/cni "$PLUGIN"
}
conf() {  # [VERSION]
  printf '{"cniVersion":"%s","name":"t","type":"vrdma","socket":"%s","prevResult":{"cniVersion":"%s","interfaces":[{"name":"net1","sandbox":"/run/netns/%s"}],"ips":[{"address":"10.98.0.1/24","interface":0}]}}' \
    "${1:-1.0.0}" "$VRDMA_SOCKET" "${1:-1.0.0}" "$C1"
}

out=$(cni VERSION </dev/null)
expect "VERSION" "$(jq -c .supportedVersions <<<"$out")" '["0.3.0","0.3.1","0.4.0","1.0.0"]'
out=$(conf | cni ADD)
if [[ "$(jq -r '.ips[0].address' <<<"$out")" == 10.98.0.1/24 && "$(jq -r .cniVersion <<<"$out")" == 1.0.0 ]] &&
   ctl dev show vrdma-0123456789ab-net1 | grep -q "netdev net1 netns"; then
  pass "ADD: vdev vrdma-0123456789ab-net1 on the namespace's net1; the previous result passed on"
else
  fail "ADD: $out"; ctl dev show
fi
expect "ADD again (a runtime retrying): the same" "$(conf | cni ADD | jq -r '.ips[0].address')" 10.98.0.1/24
expect "the namespace sees its vdev" \
  "$(ip netns exec "$C1" env VRDMA_SOCKET="$VRDMA_SOCKET" "$VRDMA_RUN" ibv_devices | awk 'NR>2 {print $1}')" \
  vrdma-0123456789ab-net1
conf | cni CHECK >/dev/null && pass "CHECK: as added" || fail "CHECK"
out=$(conf | cni CHECK eth9 || true)
expect "CHECK of another interface: error 101" "$(jq .code <<<"$out")" 101
out=$(conf 9.9.9 | cni ADD || true)
expect "an unsupported cniVersion: error 1" "$(jq .code <<<"$out")" 1
out=$(echo '{not json' | cni ADD || true)
expect "a configuration that is not JSON: error 6" "$(jq .code <<<"$out")" 6
out=$(conf | cni ADD nosuch || true)
expect "ADD of an interface the namespace lacks: error 100" "$(jq .code <<<"$out")" 100
conf | cni DEL && [[ $(ctl dev show | grep -c vrdma-0123) -eq 0 ]] && pass "DEL: the vdev removed" ||
  fail "DEL"
conf | cni DEL && pass "DEL again: success (idempotent)" || fail "DEL again"
# On its own (no previous plugin): the interface the container has, reported as used.
out=$(printf '{"cniVersion":"0.4.0","name":"t","type":"vrdma","socket":"%s"}' "$VRDMA_SOCKET" | cni ADD)
expect "ADD on its own: the result names the interface and the namespace" \
  "$(jq -c '[.cniVersion, .interfaces[0].name, .interfaces[0].sandbox]' <<<"$out")" \
  "[\"0.4.0\",\"net1\",\"/run/netns/$C1\"]"
conf | cni DEL >/dev/null

# ---- Podman (Debian's, rootful, its CNI backend; ../shared/notes/containers.md): its own
# storage and configuration under $WORK, containers from a local busybox root file system
# (nothing pulled) with the host's /usr, run in the test's network namespace so macvlan's
# master is the test's vrd2.
P="$WORK/podman"
mkdir -p "$P/net.d" "$P/bin" "$P/rootfs/bin" "$P/ipam"
for d in usr proc sys dev tmp etc run; do mkdir -p "$P/rootfs/$d"; done
ln -s usr/lib "$P/rootfs/lib"
ln -s usr/lib64 "$P/rootfs/lib64"
cp /bin/busybox "$P/rootfs/bin/busybox"
for t in sh sleep cat ls; do ln -s busybox "$P/rootfs/bin/$t"; done
cp "$PLUGIN" "$P/bin/vrdma"
cat >"$P/containers.conf" <<CONF
[containers]
default_ulimits = ["nofile=16384:16384", "nproc=16384:16384"]
[engine]
runtime = "runc"
cgroup_manager = "cgroupfs"
events_logger = "file"
[network]
network_backend = "cni"
network_config_dir = "$P/net.d"
cni_plugin_dirs = ["$P/bin", "/usr/lib/cni"]
CONF
cat >"$P/net.d/vrdmanet.conflist" <<CONF
{"cniVersion": "1.0.0", "name": "vrdmanet", "plugins": [
  {"type": "macvlan", "master": "vrd2", "mode": "bridge",
   "ipam": {"type": "host-local", "ranges": [[{"subnet": "10.99.0.0/24"}]], "dataDir": "$P/ipam"}},
  {"type": "vrdma", "socket": "$VRDMA_SOCKET"}]}
CONF
# nsenter, not ip netns exec: the latter's fresh /sys has no cgroup mounts for runc.
pod() {
  nsenter --net="/run/netns/$NS" env CONTAINERS_CONF="$P/containers.conf" \
    podman --root "$P/storage" --runroot "$P/run" "$@"
}
pod_cleanup() { pod rm -f -t 0 c1 c2 >/dev/null 2>&1 || true; }
CLEANUP_HOOKS+=(pod_cleanup)
tar -C "$P/rootfs" -c . | pod import - localhost/vrdma-test >/dev/null
for c in c1 c2; do
  pod run -d --name $c --network vrdmanet --pull never -v /usr:/usr:ro -v "$WORK:$WORK" \
    -v "$VRDMA_BUILD:$VRDMA_BUILD:ro" -e VRDMA_SOCKET="$VRDMA_SOCKET" localhost/vrdma-test \
    sleep 600 >/dev/null
done
ip_of() { pod inspect "$1" --format '{{.NetworkSettings.Networks.vrdmanet.IPAddress}}'; }
id_of() { pod inspect "$1" --format '{{.Id}}' | cut -c1-12; }
in_pod() { local c=$1; shift; pod exec "$c" "$VRDMA_RUN" "$@"; }
vdevs() { ctl dev show | { grep -oE "^[0-9]+: vrdma-[0-9a-f]{12}-eth0" || true; } | cut -d' ' -f2 | sort | tr '\n' ' '; }
dev1="vrdma-$(id_of c1)-eth0"
dev2="vrdma-$(id_of c2)-eth0"
expect "podman run: each container's vdev, from the CNI plugin" \
  "$(vdevs)" "$(printf '%s\n' "$dev1" "$dev2" | sort | tr '\n' ' ')"
expect "container c1 sees only its vdev" "$(in_pod c1 ibv_devices | awk 'NR>2 {print $1}')" "$dev1"
expect "container c2 sees only its vdev" "$(in_pod c2 ibv_devices | awk 'NR>2 {print $1}')" "$dev2"
ip2=$(ip_of c2)
pod exec c2 timeout 60 "$VRDMA_RUN" ib_write_bw -x 3 -s 65536 -n 200 -p 18800 >"$WORK/pod_bw.server" 2>&1 &
srv=$!
sleep 1
if pod exec c1 timeout 60 "$VRDMA_RUN" ib_write_bw -x 3 -s 65536 -n 200 -p 18800 "$ip2" \
     >"$WORK/pod_bw.client" 2>&1 && wait "$srv"; then
  pass "ib_write_bw from container c1 to c2 ($ip2: $(awk '$1 == 65536 {print $4 " MB/s"}' "$WORK/pod_bw.client"))"
else
  fail "ib_write_bw between the containers"; tail -5 "$WORK/pod_bw.client" "$WORK/pod_bw.server"
fi
pod exec c2 timeout 60 "$VRDMA_RUN" rping -s -a "$ip2" -p 7400 -C 5 -v -V >"$WORK/pod_rping.server" 2>&1 &
srv=$!
sleep 1
if pod exec c1 timeout 60 "$VRDMA_RUN" rping -c -a "$ip2" -p 7400 -C 5 -v -V >"$WORK/pod_rping.client" 2>&1 &&
   wait "$srv" && [[ $(grep -c "ping data" "$WORK/pod_rping.client") -eq 5 ]]; then
  pass "rping -V from container c1 to c2 (5 pings, data checked)"
else
  fail "rping between the containers"; tail -3 "$WORK/pod_rping.client" "$WORK/pod_rping.server"
fi
pod stop -t 0 c1 >/dev/null
expect "podman stop c1: its vdev removed (DEL), c2's kept" \
  "$(vdevs)" "$dev2 "
pod rm -f -t 0 c1 c2 >/dev/null
expect "podman rm -f c2 (running): its vdev removed" "$(vdevs)" ""
finish
