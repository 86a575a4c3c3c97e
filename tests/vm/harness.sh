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
VM_PID="" DAEMON_PID="" NIC_WATCH_PID=""
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

# vm_watch_nic_start: vm_watch_nic in the background, for a test whose cases cross the
# guest's NIC (stopped by cleanup).
vm_watch_nic_start() {
  vm_watch_nic &
  NIC_WATCH_PID=$!
  CLEANUP_PIDS+=(NIC_WATCH_PID)
}

# The guest kernel's words for a NIC whose transmit queue stopped moving: the netdev
# watchdog's, virtio-net's and e1000e's.
NIC_STALL_RE='transmit queue [0-9]+ timed out|TX timeout on queue|Detected Hardware Unit Hang'

# vm_watch_nic (in the background): when the guest's console reports a transmit stall,
# records the NIC's state on this side (vm_nic_state) in $WORK/nic-stall.txt; at the
# third such line (the watchdog's, then the driver's repeated ones: the queue stuck for
# more than one watchdog period, which it has not come back from in any run seen)
# records it again, writes the reason to $WORK/abort and stops the guest, so that the
# cases still to run end at once (run_side.sh, cm_side.sh) instead of each waiting out
# its timeouts, and vm_nic_verdict reports it.
vm_watch_nic() {
  set +e  # (a subshell: a diagnostic that fails must not end the watch)
  local n recorded=0
  while kill -0 "$VM_PID" 2>/dev/null; do
    n=$(grep -cE "$NIC_STALL_RE" "$WORK/console.log" 2>/dev/null || true)
    if ((${n:-0} >= 1 && !recorded)); then
      vm_nic_state "first line" >>"$WORK/nic-stall.txt" 2>&1
      recorded=1
    fi
    if ((${n:-0} >= 3)); then
      vm_nic_state "third line" >>"$WORK/nic-stall.txt" 2>&1
      echo "the guest's NIC stopped transmitting: $(grep -m1 -E "$NIC_STALL_RE" "$WORK/console.log")" \
        >"$WORK/abort"
      kill -TERM "$VM_PID" 2>/dev/null || true
      return 0
    fi
    sleep 2
  done
}

# vm_nic_state WHEN: what QEMU and this side's tap say about the guest's NIC: its virtio
# queues (QEMU's used and avail indexes: did QEMU take what the guest queued?), QEMU's
# threads and their system calls (a tap write refused with EAGAIN?), the tap's counters.
vm_nic_state() {
  echo "=== $1, $(date +%T): $(grep -E "$NIC_STALL_RE" "$WORK/console.log" | tail -1)"
  local paths cmds=("info network" "info virtio") p
  paths=$(python3 "$HERE/qmp.py" "$WORK/qmp.sock" "info virtio" 2>/dev/null | awk '/virtio-net/ {print $1}')
  for p in $paths; do cmds+=("info virtio-status $p" "info virtio-queue-status $p 0" "info virtio-queue-status $p 1"); done
  timeout 10 python3 "$HERE/qmp.py" "$WORK/qmp.sock" "${cmds[@]}" || echo "(QMP did not answer)"
  echo "## QEMU's threads: name, wait channel, system call"
  for p in /proc/"$VM_PID"/task/*; do
    echo "$(cat "$p/comm" 2>/dev/null) $(cat "$p/wchan" 2>/dev/null) $(cut -d' ' -f1-4 "$p/syscall" 2>/dev/null)"
  done
  if command -v strace >/dev/null; then
    echo "## QEMU's system calls for 3 s (count, errors)"
    timeout -s INT 3 strace -f -c -p "$VM_PID" 2>&1 | head -30
  fi
  echo "## this side's interfaces"
  ip -s -n "$NS" link show 2>&1
}

# vm_nic_verdict: after the cases, if vm_watch_nic stopped the guest: one FAIL with the
# reason and what it recorded, and the test ends there (every case after the stall failed
# for that one reason).
vm_nic_verdict() {
  [[ -f "$WORK/abort" ]] || return 0
  fail "$(cat "$WORK/abort")"
  sed 's/^/    /' "$WORK/nic-stall.txt"
  tail -5 "$WORK/console.log" | sed 's/^/    console: /'
  finish || exit 1
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
