# Shared set-up of the integration tests: a private network namespace holding two
# interfaces (a veth pair with IPv4 and IPv6 addresses), a vrdmad on its embedded default
# pdev0, and two vdevs bound to the two interfaces. Everything is torn down on exit.
#
# Needs root (network namespaces). VRDMA_BUILD names the build directory.
set -euo pipefail

: "${VRDMA_BUILD:?set VRDMA_BUILD to the meson build directory}"
VRDMAD="$VRDMA_BUILD/apps/vrdmad"
VRDMACTL="$VRDMA_BUILD/apps/vrdmactl"
VRDMA_RUN="$VRDMA_BUILD/apps/vrdma-run"
NS="vrdma-it-$$"
WORK="$(mktemp -d /tmp/vrdma-it.XXXXXX)"
export VRDMA_SOCKET="$WORK/vrdmad.sock"
DAEMON_PID=""

# pass/fail/finish, wait_for_daemon, cleanup (tests/lib/common.sh).
source "$(dirname "${BASH_SOURCE[0]}")/../lib/common.sh"
CLEANUP_PIDS=(DAEMON_PID)
CLEANUP_NETNS=(NS)
# A test killed by its timeout still tears its hosts down.
cleanup_on_exit

in_ns() { ip netns exec "$NS" "$@"; }

# Two interfaces a and b: veth vrd0/vrd1, MTU 9000 (so the RoCE path MTU is 4096).
setup_hosts() {
  ip netns add "$NS"
  in_ns ip link set lo up
  in_ns ip link add vrd0 type veth peer name vrd1
  in_ns ip link set vrd0 mtu 9000 up
  in_ns ip link set vrd1 mtu 9000 up
  in_ns ip addr add 10.77.0.1/24 dev vrd0
  in_ns ip addr add 10.77.0.2/24 dev vrd1
  in_ns ip addr add fd00:77::1/64 dev vrd0 nodad
  in_ns ip addr add fd00:77::2/64 dev vrd1 nodad
}

# A second pair for tests that keep a well-behaved tenant apart from the one under test:
# veth vrd2/vrd3, MTU 9000, 10.78.0.1 and 10.78.0.2.
setup_second_pair() {
  in_ns ip link add vrd2 type veth peer name vrd3
  in_ns ip link set vrd2 mtu 9000 up
  in_ns ip link set vrd3 mtu 9000 up
  in_ns ip addr add 10.78.0.1/24 dev vrd2
  in_ns ip addr add 10.78.0.2/24 dev vrd3
}

start_daemon() {
  # Not through in_ns: $! must be the daemon itself (ip netns exec execs it).
  ip netns exec "$NS" "$VRDMAD" --socket "$VRDMA_SOCKET" ${VRDMAD_EXTRA_ARGS:-} >"$WORK/vrdmad.log" 2>&1 &
  DAEMON_PID=$!
  wait_for_daemon "$VRDMA_SOCKET" "$DAEMON_PID" "$WORK/vrdmad.log"
}

ctl() { in_ns "$VRDMACTL" "$@"; }

setup_default() {
  setup_hosts
  start_daemon
  ctl dev add vdev_a pdev pdev0 netdev vrd0 >/dev/null
  ctl dev add vdev_b pdev pdev0 netdev vrd1 >/dev/null
}

source "$(dirname "${BASH_SOURCE[0]}")/client_server.sh"

# run_pair NAME CHECK -- PROGRAM ARGS...: PROGRAM ARGS on vdev_a as the server and on
# vdev_b as the client of 127.0.0.1 (the out-of-band exchange both tools use), in the
# namespace. Both must exit 0; then CHECK (a shell function) is called with the two
# output files.
run_pair() {
  local name="$1" check="$2"
  shift 3
  client_server "$name" "$check" pair_server pair_client -- "$@"
}
pair_server() { in_ns timeout 300 "$VRDMA_RUN" -d vdev_a -- "$@"; }
pair_client() { in_ns timeout 300 "$VRDMA_RUN" -d vdev_b -- "$@" 127.0.0.1; }

# Every vdev's usage is zero and no process holds anything (vrdmactl res show).
check_all_freed() {
  local res vdevs zero
  res=$(ctl -j res show)
  vdevs=$(grep -o '"ifname"' <<<"$res" | wc -l)
  zero=$(grep -o '"used":{"qp":0,"cq":0,"mr":0,"pd":0,"srq":0,"ah":0,"mr_bytes":0,"ring_bytes":0}' <<<"$res" | wc -l)
  if [[ $vdevs -gt 0 && $zero -eq $vdevs ]] && ! grep -q '"pid"' <<<"$res"; then
    pass "$1"
  else
    fail "$1: $res"
  fi
}

# What finish prints when a case failed.
daemon_log_tail() {
  echo "--- vrdmad log (tail)"
  tail -40 "$WORK/vrdmad.log"
}
FINISH_DIAGNOSTICS=daemon_log_tail
