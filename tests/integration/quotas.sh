#!/usr/bin/env bash
# One tenant takes everything (issue 12, item 8), as unprivileged users the test creates:
#   a. A tenant allocates PDs, CQs, QPs and MRs on vdev_a until refused: it stops at its
#      vdev's default share of the pdev (1/8), not at the pdev's limits; a second tenant
#      gets its whole own quota on vdev_b meanwhile and runs ibv_rc_pingpong with checked
#      data on vdev_c/vdev_d; everything comes back when the hog dies. The administrator
#      still raises a vdev up to the pdev's limits, not above.
#   b. Ring memory (the CQ, QP and SRQ rings the daemon allocates) is charged to the vdev:
#      refused past its ring_bytes quota with ENOMEM, and given back on destroy and exit.
#   c. Limits per cgroup, as the kernel's rdma.max: a cgroup the test creates with
#      hca_handle 2 hca_object 5 on vdev_b caps the contexts and objects of a process moved
#      into it (EAGAIN, as rdmacg_try_charge answers through ib_uverbs); the same user
#      outside it, and other devices, are not capped.
#   d. The daemon's own mappings and descriptors (vm.max_map_count, its RLIMIT_NOFILE),
#      which all tenants share: a tenant registering MRs within its vdev's quota stops at
#      a quarter of what vm.max_map_count leaves (ENOMEM), far from the kernel's limit,
#      while another registers its own; CQs on a completion channel stop at the user's
#      descriptors (EMFILE, `--max-descriptors-per-user`) while another's are made; all
#      of it comes back when the tenant goes.
# Refusals are in the daemon's debug log and counted in `stat show`.
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/tenant_lib.sh"
HOG="$VRDMA_BUILD/tests/integration/hog"
CGDIR=""
trap 'cleanup; if [[ -n "$CGDIR" ]]; then rmdir "$CGDIR" 2>/dev/null || true; fi' EXIT

setup_hosts
setup_second_pair
tenant_ready
ip netns exec "$NS" "$VRDMAD" --socket "$VRDMA_SOCKET" --log-level debug >"$WORK/vrdmad.log" 2>&1 &
DAEMON_PID=$!
wait_for_daemon "$VRDMA_SOCKET" "$DAEMON_PID" "$WORK/vrdmad.log"
ctl dev add vdev_a pdev pdev0 netdev vrd0 >/dev/null
ctl dev add vdev_b pdev pdev0 netdev vrd1 >/dev/null
ctl dev add vdev_c pdev pdev0 netdev vrd2 >/dev/null
ctl dev add vdev_d pdev pdev0 netdev vrd3 >/dev/null
HOGGER=$(tenant_user hog)
GOOD=$(tenant_user good)

# jget JSON EXPR: a value out of vrdmactl's JSON.
jget() { python3 -c "import json,sys; d=json.loads(sys.argv[1]); print($2)" "$1"; }
LIMITS=$(ctl -j pdev show pdev0)
QUOTA_A=$(ctl -j dev show vdev_a)
limit() { jget "$LIMITS" "d[0]['limits']['$1']"; }
quota_a() { jget "$QUOTA_A" "d[0]['quota']['$1']"; }
# field FILE KIND N: field N of the line "KIND COUNT ERRNO" hog printed.
field() { awk -v k="$2" -v n="$3" '$1 == k { print $n }' "$1"; }
# until_holding FILE PID: until hog --hold says it holds what it got (or has died);
# let_go FILE PID: kills it without letting it free anything.
until_holding() {
  for _ in $(seq 600); do
    grep -q '^holding' "$1" && break
    kill -0 "$2" 2>/dev/null || break
    sleep 0.1
  done
}
let_go() {
  local pid
  pid=$(awk '$1 == "holding" { print $2 }' "$1")
  [[ -n "$pid" ]] && kill -KILL "$pid" 2>/dev/null
  wait "$2" 2>/dev/null || true
}

# ---- a. defaults ------------------------------------------------------------------------
bad=""
for r in qp cq mr pd srq ah mr_bytes ring_bytes; do
  l=$(limit $r)
  q=$(quota_a $r)
  [[ $q -eq $((l / 8)) && $q -lt $l ]] || bad+=" $r=$q/$l"
done
if [[ -z "$bad" ]]; then
  pass "a new vdev's quotas are 1/8 of the pdev's limits (qp $(quota_a qp) of $(limit qp))"
else
  fail "default quotas are not 1/8 of the pdev:$bad"
fi
if ctl dev show vdev_a | grep -q " ring_bytes $(quota_a ring_bytes)"; then
  pass "dev show shows the ring_bytes quota"
else
  fail "dev show has no ring_bytes: $(ctl dev show vdev_a)"
fi
# The hog and the second tenant below each get an explicit quota, a small share of the
# pdev: the default 1/8 of rxe-sized limits is 131070 QPs, more than a test should make.
for v in vdev_a vdev_b; do ctl dev set "$v" pd 256 cq 256 qp 256 mr 1024 >/dev/null; done
QUOTA_A=$(ctl -j dev show vdev_a)

as_user "$HOGGER" timeout 300 "$VRDMA_RUN" -d vdev_a -- "$HOG" vdev_a objects --hold \
  >"$WORK/hog.out" 2>&1 &
hog=$!
until_holding "$WORK/hog.out" $hog
bad=""
for k in pd cq qp mr; do
  n=$(field "$WORK/hog.out" $k 2)
  e=$(field "$WORK/hog.out" $k 3)
  [[ "$n" == "$(quota_a $k)" && "$e" == 12 && $n -lt $(limit $k) ]] || bad+=" $k=$n(errno $e)"
done
if [[ -z "$bad" ]] && grep -q '^holding' "$WORK/hog.out"; then
  pass "the hog got its quota and no more, refused with ENOMEM: $(tr '\n' ' ' <"$WORK/hog.out")"
else
  fail "hog on vdev_a:$bad: $(cat "$WORK/hog.out")"
fi

# The second tenant, while the hog holds all it got: its own full quota on vdev_b...
as_user "$GOOD" timeout 300 "$VRDMA_RUN" -d vdev_b -- "$HOG" vdev_b objects >"$WORK/good.out" 2>&1 ||
  true
if [[ "$(field "$WORK/good.out" pd 2)" == "$(quota_a pd)" &&
  "$(field "$WORK/good.out" qp 2)" == "$(quota_a qp)" ]]; then
  pass "a second tenant still allocates its whole quota on vdev_b: $(tr '\n' ' ' <"$WORK/good.out")"
else
  fail "second tenant on vdev_b: $(cat "$WORK/good.out")"
fi
# ... and moves checked data.
as_user "$GOOD" timeout 120 "$VRDMA_RUN" -d vdev_c -- ibv_rc_pingpong -g 3 -c -s 4096 -n 2000 \
  -p 18521 >"$WORK/pp.server" 2>&1 &
pp_srv=$!
sleep 0.5
if as_user "$GOOD" timeout 120 "$VRDMA_RUN" -d vdev_d -- ibv_rc_pingpong -g 3 -c -s 4096 -n 2000 \
  -p 18521 127.0.0.1 >"$WORK/pp.client" 2>&1 && wait $pp_srv &&
  grep -q "2000 iters" "$WORK/pp.client"; then
  pass "the second tenant's ibv_rc_pingpong (checked data) runs while the hog holds vdev_a"
else
  fail "pingpong: $(cat "$WORK/pp.server" "$WORK/pp.client")"
fi
# The hog dies without freeing anything: the daemon frees it all at the hang-up.
let_go "$WORK/hog.out" $hog
for _ in $(seq 50); do
  res=$(ctl -j res show vdev_a)
  [[ "$(jget "$res" "sum(d[0]['used'].values())")" == 0 ]] && break
  sleep 0.1
done
if [[ "$(jget "$res" "sum(d[0]['used'].values())")" == 0 ]]; then
  pass "everything the hog held (ring memory too) is back once it is gone"
else
  fail "vdev_a still used after the hog exited: $res"
fi
# The administrator raises a vdev explicitly, up to the pdev and not above.
if ctl dev set vdev_a pd "$(limit pd)" qp "$(limit qp)" >/dev/null &&
  ! ctl dev set vdev_a pd $(($(limit pd) + 1)) 2>/dev/null &&
  ctl dev show vdev_a | grep -q " pd $(limit pd) "; then
  pass "dev set raises a vdev to the pdev's limits, not above"
else
  fail "dev set up to the pdev: $(ctl dev show vdev_a)"
fi

# ---- b. ring memory ---------------------------------------------------------------------
# A CQ of 4096 entries has a 260 KiB ring: three fit in 1 MiB, the fourth does not.
ctl dev set vdev_b ring_bytes 1M >/dev/null
as_user "$GOOD" timeout 60 "$VRDMA_RUN" -d vdev_b -- "$HOG" vdev_b rings 4096 100 \
  >"$WORK/rings.out" 2>&1 || true
if [[ "$(field "$WORK/rings.out" rings 2)" == 3 && "$(field "$WORK/rings.out" rings 3)" == 12 &&
  "$(field "$WORK/rings.out" again 2)" == 1 ]]; then
  pass "CQ rings past the 1 MiB ring_bytes quota are refused (ENOMEM); a destroyed one makes room"
else
  fail "rings: $(cat "$WORK/rings.out")"
fi
ctl dev set vdev_b ring_bytes 128K >/dev/null
as_user "$GOOD" timeout 60 "$VRDMA_RUN" -d vdev_b -- "$HOG" vdev_b qp 4096 >"$WORK/bigqp.out" 2>&1 ||
  true
as_user "$GOOD" timeout 60 "$VRDMA_RUN" -d vdev_b -- "$HOG" vdev_b qp 16 >"$WORK/smallqp.out" 2>&1 ||
  true
if grep -q '^qp 0 12$' "$WORK/bigqp.out" && grep -q '^qp 1 0$' "$WORK/smallqp.out"; then
  pass "a QP whose rings pass the ring_bytes quota is refused (ENOMEM), a small one is not"
else
  fail "QP rings: $(cat "$WORK/bigqp.out" "$WORK/smallqp.out")"
fi
res=$(ctl -j res show vdev_b)
if [[ "$(jget "$res" "d[0]['used']['ring_bytes']")" == 0 ]] &&
  ctl res show vdev_b | grep -q "ring_bytes 0/131072"; then
  pass "res show: ring_bytes 0/131072 once the clients are gone"
else
  fail "ring_bytes not released: $res"
fi
ctl dev set vdev_b ring_bytes "$(quota_a ring_bytes)" >/dev/null

# ---- c. cgroup limits -------------------------------------------------------------------
CG2=$(awk '$3 == "cgroup2" { print $2; exit }' /proc/mounts)
if [[ -z "$CG2" ]]; then
  mkdir -p "$WORK/cg2"
  mount -t cgroup2 none "$WORK/cg2"
  CG2="$WORK/cg2"
fi
CGNAME="vrdma-quota-$$"
CGDIR="$CG2/$CGNAME"
mkdir "$CGDIR"
CGPATH="/$CGNAME"
# Where the daemon finds it: /proc/PID/cgroup of a process in it says 0::$CGPATH.
grep -q "^0::$CGPATH\$" <(sh -c "echo \$\$ > '$CGDIR/cgroup.procs'; cat /proc/self/cgroup") ||
  fail "a process moved into $CGDIR does not read 0::$CGPATH"
# The kernel's rdma.max takes no vdev name (ENODEV for a device it does not know), and a
# kernel without RDMA has no rdma controller at all: the table is vrdmad's.
if [[ -e "$CGDIR/rdma.max" ]]; then
  if ! echo "vdev_b hca_handle=2" >"$CGDIR/rdma.max" 2>/dev/null; then
    pass "the kernel's rdma.max refuses a vdev's name (vrdmactl cgroup set is the way)"
  else
    fail "the kernel's rdma.max took a vdev name"
  fi
else
  pass "no rdma controller on this kernel (no rdma.max): vrdmactl cgroup set is the way"
fi
if ! as_user "$GOOD" "$VRDMACTL" cgroup set "$CGPATH" dev vdev_b hca_handle 9 2>/dev/null &&
  ! ctl cgroup set / dev vdev_b hca_handle 2 2>/dev/null &&
  ! ctl cgroup set "$CGPATH" dev no_such hca_handle 2 2>/dev/null; then
  pass "cgroup set: not by a tenant, not on the root cgroup, not for a device there is not"
else
  fail "cgroup set accepted what it should refuse"
fi
ctl cgroup set "$CGPATH" dev vdev_b hca_handle 2 hca_object 5
# in_cg CMD...: CMD in the test's cgroup (moved there as root, then the tenant's own).
in_cg() { (echo $BASHPID >"$CGDIR/cgroup.procs" && "$@"); }
in_cg as_user "$GOOD" timeout 60 "$VRDMA_RUN" -d vdev_b -- "$HOG" vdev_b contexts 4 \
  >"$WORK/cg_ctx.out" 2>&1 || true
if grep -q '^contexts 2 11$' "$WORK/cg_ctx.out"; then
  pass "hca_handle 2: the third context of a process in the cgroup is refused (EAGAIN)"
else
  fail "cgroup contexts: $(cat "$WORK/cg_ctx.out")"
fi
in_cg as_user "$GOOD" timeout 60 "$VRDMA_RUN" -d vdev_b -- "$HOG" vdev_b objects \
  >"$WORK/cg_obj.out" 2>&1 || true
if grep -q '^pd 5 11$' "$WORK/cg_obj.out" && grep -q '^cq 0 11$' "$WORK/cg_obj.out" &&
  grep -q '^mr 0 11$' "$WORK/cg_obj.out"; then
  pass "hca_object 5: five PDs, then no CQ and no MR (EAGAIN): $(tr '\n' ' ' <"$WORK/cg_obj.out")"
else
  fail "cgroup objects: $(cat "$WORK/cg_obj.out")"
fi
as_user "$GOOD" timeout 60 "$VRDMA_RUN" -d vdev_b -- "$HOG" vdev_b contexts 4 \
  >"$WORK/free_ctx.out" 2>&1 || true
in_cg as_user "$GOOD" timeout 60 "$VRDMA_RUN" -d vdev_c -- "$HOG" vdev_c contexts 4 \
  >"$WORK/cg_other.out" 2>&1 || true
if grep -q '^contexts 4 0$' "$WORK/free_ctx.out" && grep -q '^contexts 4 0$' "$WORK/cg_other.out"; then
  pass "the same user outside the cgroup, and the cgroup on another vdev, are not capped"
else
  fail "uncapped: $(cat "$WORK/free_ctx.out" "$WORK/cg_other.out")"
fi
out=$(ctl cgroup show "$CGPATH")
if grep -q "^$CGPATH vdev_b hca_handle=2 hca_object=5  current hca_handle=0 hca_object=0" <<<"$out"; then
  pass "cgroup show: the limits as rdma.max writes them, nothing in use after exit"
else
  fail "cgroup show: $out"
fi
ctl cgroup del "$CGPATH"
if [[ -z "$(ctl cgroup show)" ]]; then pass "cgroup del removes the limits"; else fail "cgroup del"; fi

# ---- refusals are logged and counted -------------------------------------------------------
stat=$(ctl -j stat show vdev_b)
if grep -q 'quota_refused.*vdev=vdev_a' "$WORK/vrdmad.log" &&
  grep -q 'cgroup_refused.*vdev=vdev_b.*resource=hca_handle' "$WORK/vrdmad.log" &&
  grep -q 'cgroup_refused.*resource=hca_object' "$WORK/vrdmad.log" &&
  grep -Eq '"cgroup_refusals":[1-9]' <<<"$stat" && grep -Eq '"quota_refusals":[1-9]' <<<"$stat"; then
  pass "refusals are in the debug log with their reason and counted in stat show"
else
  fail "refusal log/counters: $stat; $(grep -c refused "$WORK/vrdmad.log") log lines"
fi
# ---- d. the daemon's mappings and descriptors ------------------------------------------------
# By default vrdmad gives each user a quarter of what vm.max_map_count leaves beside its
# own mappings (its log's "limits" line), and of its descriptors beside the connections'.
max_maps=$(cat /proc/sys/vm/max_map_count)
limits=$(grep -o 'client_mappings=[0-9]* per_user=[0-9]* client_descriptors=[0-9]* per_user=[0-9]*' \
  "$WORK/vrdmad.log" | head -1)
read -r all_maps user_maps all_fds user_fds < <(tr -c '0-9\n' ' ' <<<"$limits")
if [[ -n "$limits" && $all_maps -gt 0 && $all_maps -lt $max_maps && $user_maps -eq $((all_maps / 4)) &&
  $user_fds -eq $((all_fds / 4)) && $user_fds -gt 0 ]]; then
  pass "the daemon's own budget: $limits (vm.max_map_count $max_maps)"
else
  fail "the daemon's budget: '$limits'"
fi
# A daemon with small shares, so that the test reaches them quickly (a client's
# registrations get slower as its own mappings grow).
kill "$DAEMON_PID"
wait "$DAEMON_PID" 2>/dev/null || true
ip netns exec "$NS" "$VRDMAD" --socket "$VRDMA_SOCKET" --log-level debug \
  --max-mappings-per-user 2000 --max-descriptors-per-user 64 >"$WORK/vrdmad2.log" 2>&1 &
DAEMON_PID=$!
wait_for_daemon "$VRDMA_SOCKET" "$DAEMON_PID" "$WORK/vrdmad2.log"
ctl dev add vdev_a pdev pdev0 netdev vrd0 >/dev/null
ctl dev add vdev_b pdev pdev0 netdev vrd1 >/dev/null
# vdev_a's default MR quota (1/8 of the pdev's 524,287) is more than that: each MR costs
# a mapping per segment and the ends of its reservation (1 to 3).
as_user "$HOGGER" timeout 300 "$VRDMA_RUN" -d vdev_a -- "$HOG" vdev_a mrs 100000 --hold \
  >"$WORK/mrs.out" 2>&1 &
hog=$!
until_holding "$WORK/mrs.out" $hog
n=$(field "$WORK/mrs.out" mrs 2)
if [[ "$(field "$WORK/mrs.out" mrs 3)" == 12 && $n -le 2000 && $((n * 3 + 3)) -gt 2000 &&
  "$(field "$WORK/mrs.out" again 2)" == 1 ]]; then
  pass "MRs stop at the user's 2000 daemon mappings: $n MRs, then ENOMEM"
else
  fail "MR mappings: $(tr '\n' ' ' <"$WORK/mrs.out")"
fi
as_user "$GOOD" timeout 120 "$VRDMA_RUN" -d vdev_b -- "$HOG" vdev_b mrs 500 >"$WORK/good_mrs.out" 2>&1 ||
  true
if grep -q '^mrs 500 0$' "$WORK/good_mrs.out"; then
  pass "another tenant registers its 500 MRs meanwhile"
else
  fail "the other tenant's MRs: $(cat "$WORK/good_mrs.out")"
fi
if grep -q "uid $(id -u "$HOGGER") holds .* of its 2000 daemon mappings" "$WORK/vrdmad2.log"; then
  pass "the refusal is logged with the user and its share"
else
  fail "no refusal naming the daemon's mappings in the log"
fi
let_go "$WORK/mrs.out" $hog
sleep 0.5
as_user "$HOGGER" timeout 120 "$VRDMA_RUN" -d vdev_a -- "$HOG" vdev_a mrs 1000 >"$WORK/mrs2.out" 2>&1 ||
  true
if grep -q '^mrs 1000 0$' "$WORK/mrs2.out"; then
  pass "the tenant's share is back once its process is gone"
else
  fail "after the hog: $(cat "$WORK/mrs2.out")"
fi
# Descriptors: one per CQ's completion channel, one for the chunk its rings are carved from.
as_user "$HOGGER" timeout 120 "$VRDMA_RUN" -d vdev_a -- "$HOG" vdev_a channels 1000 \
  >"$WORK/channels.out" 2>&1 || true
as_user "$GOOD" timeout 120 "$VRDMA_RUN" -d vdev_b -- "$HOG" vdev_b channels 40 \
  >"$WORK/good_channels.out" 2>&1 || true
n=$(field "$WORK/channels.out" channels 2)
if [[ "$(field "$WORK/channels.out" channels 3)" == 24 && $n -ge 60 && $n -lt 64 &&
  "$(field "$WORK/channels.out" again 2)" == 1 ]] &&
  grep -q '^channels 40 0$' "$WORK/good_channels.out"; then
  pass "CQs on a completion channel stop at the user's 64 descriptors (EMFILE after $n), another user's 40 are made"
else
  fail "descriptors: $(tr '\n' ' ' <"$WORK/channels.out") / $(cat "$WORK/good_channels.out")"
fi
if kill -0 "$DAEMON_PID" 2>/dev/null && ctl dev show vdev_a >/dev/null; then
  pass "vrdmad alive, every vdev there"
else
  fail "vrdmad died"
fi
finish
