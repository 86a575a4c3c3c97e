# The host side shared by the VM tests: paths, a work directory the guest shares, the
# namespace holding the guest's taps, teardown, and the verdict on the cases both sides
# ran (run_side.sh); PASS/FAIL counting, finish, the daemon-start wait and cleanup are
# tests/lib/common.sh's. Sourced after `set -euo pipefail`, with HERE set; vm_test_init
# TAG sets NS, WORK and VRDMA_SOCKET.
: "${VRDMA_BUILD:?set VRDMA_BUILD to the meson build directory}"
VRDMA_BUILD="$(cd "$VRDMA_BUILD" && pwd)"
source "$HERE/guest.sh"
VRDMAD="$VRDMA_BUILD/apps/vrdmad"
VRDMACTL="$VRDMA_BUILD/apps/vrdmactl"
VRDMA_RUN="$VRDMA_BUILD/apps/vrdma-run"
XFER="$VRDMA_BUILD/tests/integration/xfer_check"
# Shared into the guests at their own paths (see vm_start).
export VM_REPO VM_BUILD="$VRDMA_BUILD"
VM_REPO="$(cd "$HERE/../.." && pwd)"
VM_PID="" DAEMON_PID=""
source "$HERE/../lib/common.sh"
CLEANUP_PIDS=(DAEMON_PID VM_PID)
CLEANUP_NETNS=(NS)

vm_test_init() {
  NS="vrd$1$$"
  WORK="$(mktemp -d "/tmp/vrdma-$1.XXXXXX")"
  chmod 777 "$WORK"
  # The socket's directory must be root's and writable by no one else (vrdmad refuses
  # another: docs/security.md); $WORK is open to all for the guest's sake.
  mkdir -m 0755 "$WORK/run"
  export VRDMA_SOCKET="$WORK/run/vrdmad.sock"
  cleanup_on_exit
  ip netns add "$NS"
  ip -n "$NS" link set lo up
}

# judge_cases LABEL: PASS or FAIL for every case in $WORK/cases. Both sides must exit 0;
# pingpongs print the summary only when every receive completed and -c checked every
# byte; xfer_check says OK only when both ends found every byte and value right;
# perftest's client prints its result row.
judge_cases() {
  local label="$1" name server v cmd h g ok
  while read -r name server v cmd; do
    h="$WORK/$name.host" g="$WORK/$name.guest"
    local client=$h
    [[ $server == host ]] && client=$g
    ok=1
    grep -q "^rc=0" "$h" 2>/dev/null || ok=0
    grep -q "^rc=0" "$g" 2>/dev/null || ok=0
    if [[ $cmd == ibv_* ]]; then
      grep -q "iters in" "$h" && grep -q "iters in" "$g" || ok=0
    elif [[ $cmd == */xfer_check* ]]; then
      grep -q "^xfer_check OK" "$h" && grep -q "^xfer_check OK" "$g" || ok=0
    else
      grep -qE '^ *[0-9]+ +[0-9]+ +[0-9.]+' "$client" 2>/dev/null || ok=0
    fi
    # Runs of a perftest case before its last (run_side.sh): said, with the reason.
    local n f
    for ((n = 1; n < PERFTEST_RUNS; ++n)); do
      [[ -f "$h.run$((n + 1))" || -f "$g.run$((n + 1))" ]] || break
      echo "    RETRY $name, run $n: $(grep -h -m1 -E "Correlation coefficient|Can't produce" "$client.run$n")"
    done
    if [[ $ok == 1 ]]; then
      pass "$name ($label, $server is server)"
    else
      fail "$name"
      # Everything but the tools' banners (what went wrong is printed among them).
      for f in "$h" "$g"; do
        echo "    ==> $f"
        grep -vE '^ *(-{10,}|\*{10,})|^ (Device|Number of qps|Connection type|TX depth|CQ Moderation|Mtu|Link type|GID index|Max inline|rdma_cm QPs|Data ex. method|Using SRQ|PCIe relax|ibv_wr\* API|Outstand reads|RX depth|Using Enhanced|Dual-port) ' "$f" 2>/dev/null | tail -n 25 | sed 's/^/    /'
      done
    fi
  done <"$WORK/cases"
}

# vm_boot TAP [qemu args...]: boots the guest in $NS (vm_start there, with the caller's
# VM_MACHINE, VM_APPEND, VM_SMP), waits for QEMU's tap TAP and sets VM_PID.
vm_boot() {
  local tap="$1"
  shift
  ip netns exec "$NS" env VM_MACHINE="${VM_MACHINE:-}" VM_APPEND="${VM_APPEND:-}" VM_SMP="${VM_SMP:-}" \
    bash -c "source '$HERE/guest.sh'; KVER=$KVER; vm_start '$WORK' $*; echo \$VM_PID >'$WORK/vm.pid'; wait \$VM_PID" &
  for _ in $(seq 100); do ip -n "$NS" link show "$tap" >/dev/null 2>&1 && break; sleep 0.1; done
  VM_PID=$(cat "$WORK/vm.pid" 2>/dev/null || true)
}

# Fills a guest script's placeholders: @PROLOGUE@ (mounts the repo and build shares,
# sets KDIR and KVER from the kernel command line), @HERE@ (this directory), @BUILD@
# (the build directory).
vm_fill_guest_script() {
  local f="$1" text prologue
  prologue="$(vm_guest_mounts)
KDIR=\$(sed -n 's/.*vrdma_kdir=\\([^ ]*\\).*/\\1/p' /proc/cmdline)
KVER=\$(sed -n 's/.*vrdma_kver=\\([^ ]*\\).*/\\1/p' /proc/cmdline)"
  text=$(cat "$f")
  text=${text//@PROLOGUE@/$prologue}
  text=${text//@HERE@/$HERE}
  text=${text//@BUILD@/$VRDMA_BUILD}
  printf '%s\n' "$text" >"$f"
  chmod +x "$f"
}
