#!/usr/bin/env bash
# A vdev belongs to its netdev's network namespace and to whom its owner, group and mode
# admit (issue 12, item 5), tried by unprivileged tenants the test creates:
#   - from another network namespace (a user of its own, and root of a user namespace with
#     a network namespace of its own): no vdev listed, none opened, nothing in dev/res/stat
#   - in the vdev's namespace: `res show` shows a tenant its own processes only
#   - `dev set vdev_a owner U group G mode 0660`: others get EACCES, the owner and the
#     group get in, as with /dev/infiniband/uverbsN
#   - the vdev's interface moves to another namespace: the vdev is deleted, its client gets
#     IBV_EVENT_DEVICE_FATAL
#   - `vrdmad --netns-mode shared`: every namespace sees every vdev
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/tenant_lib.sh"
FD_ATTACK="$VRDMA_BUILD/tests/integration/fd_attack"
NS2="vrdma-it2-$$"
CLEANUP_NETNS+=(NS2)
setup_default
tenant_ready
ip netns add "$NS2"
OWNER=$(tenant_user owner)
MEMBER=$(tenant_user member)
OTHER=$(tenant_user other)
MEMBER_GID=$(id -g "$MEMBER")

# run_in NETNS USER CMD...: CMD as USER (no capabilities) in network namespace NETNS.
run_in() {
  local netns=$1 user=$2
  shift 2
  ip netns exec "$netns" setpriv --reuid "$user" --regid "$user" --clear-groups \
    --inh-caps=-all --bounding-set=-all -- env VRDMA_SOCKET="$VRDMA_SOCKET" "$@"
}

# A well-behaved pair as root in the vdevs' namespace, running while the others look.
in_ns timeout 120 "$VRDMA_RUN" -d vdev_a -- ibv_rc_pingpong -g 3 -n 100000 -p 18515 \
  >"$WORK/good.server" 2>&1 &
good_srv=$!
sleep 0.5
in_ns timeout 120 "$VRDMA_RUN" -d vdev_b -- ibv_rc_pingpong -g 3 -n 100000 -p 18515 127.0.0.1 \
  >"$WORK/good.client" 2>&1 &
good_cli=$!
sleep 1

# ---- another network namespace ------------------------------------------------------
out=$(run_in "$NS2" "$OTHER" "$VRDMA_RUN" -- ibv_devices 2>&1 || true)
if grep -q "vdev_\|pdev0" <<<"$out"; then
  fail "another namespace lists devices: $out"
else
  pass "another namespace lists no device"
fi
if run_in "$NS2" "$OTHER" "$VRDMA_RUN" -d vdev_a -- ibv_devinfo -d vdev_a >"$WORK/other.devinfo" 2>&1; then
  fail "another namespace opens vdev_a"; cat "$WORK/other.devinfo"
else
  pass "another namespace cannot open vdev_a"
fi
# Root of its own user and network namespaces, the way a container's root is.
out=$(run_in "$NS2" "$OTHER" unshare --user --map-root-user --net -- \
  "$VRDMA_RUN" -- ibv_devices 2>&1 || true)
if grep -q "vdev_" <<<"$out"; then fail "root of a user+net namespace lists vdevs"; else
  pass "root of its own user and network namespaces lists no vdev"; fi
dev=$(run_in "$NS2" "$OTHER" "$VRDMACTL" dev show 2>&1 || true)
res=$(run_in "$NS2" "$OTHER" "$VRDMACTL" res show 2>&1 || true)
stat=$(run_in "$NS2" "$OTHER" "$VRDMACTL" stat show 2>&1 || true)
if grep -q "vdev_\|pdev0" <<<"$dev$res$stat"; then
  fail "vrdmactl from another namespace shows devices"; echo "$dev$res$stat"
else
  pass "vrdmactl dev/res/stat show nothing from another namespace"
fi

# ---- the vdevs' namespace: a tenant sees its own processes only ------------------------
if in_ns "$VRDMACTL" res show | grep -q "comm ibv_rc_pingpong"; then
  pass "root sees the pair's processes"
else
  fail "root does not see the pair"
fi
out=$(run_in "$NS" "$OTHER" "$VRDMACTL" res show 2>&1 || true)
qp=$(run_in "$NS" "$OTHER" "$VRDMACTL" res show qp 2>&1 || true)
if grep -q "vdev_a" <<<"$out" && ! grep -q "ibv_rc_pingpong\|pid " <<<"$out$qp"; then
  pass "a tenant sees the vdevs of its namespace but no other user's processes or QPs"
else
  fail "res show as a tenant: $out / $qp"
fi

# ---- owner, group, mode ----------------------------------------------------------------
ctl dev set vdev_a owner "$OWNER" group "$MEMBER" mode 0660 >/dev/null
if ctl dev show vdev_a | grep -q "access owner $(id -u "$OWNER") group $MEMBER_GID mode 0660"; then
  pass "dev show shows the access policy"
else
  fail "dev show: $(ctl dev show vdev_a)"
fi
if run_in "$NS" "$OTHER" "$VRDMA_RUN" -d vdev_a -- ibv_devinfo -d vdev_a >"$WORK/o.devinfo" 2>&1; then
  fail "mode 0660: another user opened vdev_a"
else
  pass "mode 0660: another user cannot open vdev_a"
fi
if run_in "$NS" "$OWNER" "$VRDMA_RUN" -d vdev_a -- ibv_devinfo -d vdev_a | grep -q "PORT_ACTIVE"; then
  pass "mode 0660: the owner opens vdev_a"
else
  fail "mode 0660: the owner cannot open vdev_a"
fi
if ip netns exec "$NS" setpriv --reuid "$OTHER" --regid "$OTHER" --groups "$MEMBER_GID" \
  --inh-caps=-all -- env VRDMA_SOCKET="$VRDMA_SOCKET" "$VRDMA_RUN" -d vdev_a -- \
  ibv_devinfo -d vdev_a | grep -q "PORT_ACTIVE"; then
  pass "mode 0660: a member of the group opens vdev_a"
else
  fail "mode 0660: the group cannot open vdev_a"
fi
if run_in "$NS" "$OTHER" "$VRDMACTL" dev set vdev_a mode 0666 >/dev/null 2>&1; then
  fail "a tenant changed the mode"
else
  pass "a tenant cannot change the access policy"
fi
ctl dev set vdev_a owner 0 group 0 mode 0666 >/dev/null

good=0
wait "$good_srv" || good=$?
wait "$good_cli" || good=$?
if [[ $good -eq 0 ]] && grep -q "iters in" "$WORK/good.client"; then
  pass "the pair in the vdevs' namespace unaffected"
else
  fail "the pair (rc=$good)"; tail -3 "$WORK/good.client" "$WORK/good.server"
fi

# ---- the interface leaves the namespace -------------------------------------------------
in_ns timeout 60 "$VRDMA_RUN" -d vdev_b -- "$FD_ATTACK" death >"$WORK/move.death" 2>&1 &
death=$!
for _ in $(seq 300); do grep -q READY "$WORK/move.death" 2>/dev/null && break; sleep 0.1; done
sleep 0.5  # its reader blocked in ibv_get_cq_event, as client_fds.sh does before dev del
in_ns ip link set vrd1 netns "$NS2"
rc=0
wait "$death" || rc=$?
if [[ $rc -eq 0 ]] && ! ctl dev show | grep -qw vdev_b &&
  grep -q "vdev_del dev=vdev_b reason=netdev_gone" "$WORK/vrdmad.log"; then
  pass "vrd1 moved to another namespace: vdev_b deleted, its client got DEVICE_FATAL"
else
  fail "netdev moved (rc=$rc)"; sed 's/^/  /' "$WORK/move.death"
fi

# ---- shared mode ----------------------------------------------------------------------
stop_pid "$DAEMON_PID"
ip netns exec "$NS" "$VRDMAD" --socket "$VRDMA_SOCKET" --netns-mode shared >"$WORK/vrdmad2.log" 2>&1 &
DAEMON_PID=$!
wait_for_daemon "$VRDMA_SOCKET" "$DAEMON_PID" "$WORK/vrdmad2.log"
ctl dev add vdev_a pdev pdev0 netdev vrd0 >/dev/null
out=$(run_in "$NS2" "$OTHER" "$VRDMA_RUN" -- ibv_devices 2>&1 || true)
if grep -q "vdev_a" <<<"$out"; then
  pass "--netns-mode shared: another namespace sees vdev_a"
else
  fail "--netns-mode shared: $out"
fi
if kill -0 "$DAEMON_PID"; then pass "vrdmad alive"; else fail "vrdmad died"; fi

# ---- the socket's directory ------------------------------------------------------------
# A directory another user can write to (a tenant could swap the socket for its own):
# vrdmad refuses to listen there.
stop_pid "$DAEMON_PID"
DAEMON_PID=""
mkdir "$WORK/tenant-dir"
chown "$OTHER" "$WORK/tenant-dir"
if ip netns exec "$NS" timeout 60 "$VRDMAD" --socket "$WORK/tenant-dir/vrdmad.sock" \
  >"$WORK/vrdmad3.log" 2>&1; then
  fail "vrdmad listened in a directory owned by a tenant"
elif grep -q "must be owned by uid 0" "$WORK/vrdmad3.log"; then
  pass "vrdmad refuses a socket directory owned by another user"
else
  fail "socket directory: $(tail -2 "$WORK/vrdmad3.log")"
fi
finish
