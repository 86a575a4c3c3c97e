# Shell helpers shared by the integration tests (tests/integration/lib.sh, hosts.sh) and
# the VM tests (tests/vm/harness.sh, and hosts.sh inside a guest, which mounts the
# repository at its host path): one verdict per case, the final count, the daemon-start
# wait, and teardown on exit. Sourced; defines functions and counters only.
#
#   pass TEXT / fail TEXT   print "PASS TEXT" / "FAIL TEXT" and count it
#   expect NAME GOT WANTED  pass NAME when GOT is WANTED, else fail with both
#   finish                  prints "N passed, N failed"; on a failure runs the function
#                           named by FINISH_DIAGNOSTICS (if set) and returns 1
#   wait_for_daemon SOCKET PID LOG [WHAT]
#                           waits up to 5 s for vrdmad (PID) to listen on SOCKET; if it
#                           exits or never does: "WHAT did not start:" and LOG on stderr,
#                           returns 1
#   stop_pid PID            SIGTERM, up to 5 s to exit, then SIGKILL (nothing if gone)
#   cleanup                 stops the processes and deletes the namespaces named by the
#                           variables listed in CLEANUP_PIDS and CLEANUP_NETNS (read at
#                           exit: a restarted daemon's new PID counts), after the
#                           functions listed in CLEANUP_HOOKS, then removes $WORK unless
#                           KEEP_WORK=1
#   cleanup_on_exit         runs cleanup on exit; SIGTERM/SIGINT (a test's timeout)
#                           exit 143, which still runs it
#   reserve_huge_pages N    at least N free huge pages of the default size: grows
#                           vm.nr_hugepages by what is missing (cleanup gives it back);
#                           returns 1 if the kernel cannot find them
#   mount_hugetlbfs DIR [OPTS]  a hugetlbfs mount at DIR (created), unmounted by cleanup
FAILURES=0
HUGE_PAGES_ADDED=0
HUGETLBFS_MOUNTS=()
PASSES=0
CLEANUP_PIDS=()
CLEANUP_NETNS=()
CLEANUP_HOOKS=()

pass() { PASSES=$((PASSES + 1)); echo "PASS $*"; }
fail() { FAILURES=$((FAILURES + 1)); echo "FAIL $*"; }
expect() {
  if [[ "$2" == "$3" ]]; then pass "$1"; else fail "$1: got '$2', wanted '$3'"; fi
}

finish() {
  echo "$PASSES passed, $FAILURES failed"
  if [[ $FAILURES -ne 0 ]]; then
    if [[ -n "${FINISH_DIAGNOSTICS:-}" ]]; then "$FINISH_DIAGNOSTICS" || true; fi
    return 1
  fi
  return 0
}

wait_for_daemon() {
  local sock="$1" pid="$2" log="$3" what="${4:-vrdmad}"
  for _ in $(seq 100); do
    [[ -S "$sock" ]] && return 0
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.05
  done
  echo "$what did not start:" >&2
  cat "$log" >&2
  return 1
}

stop_pid() {
  local pid="$1"
  [[ -n "$pid" ]] && kill -0 "$pid" 2>/dev/null || return 0
  kill -TERM "$pid" 2>/dev/null || true
  for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || return 0; sleep 0.1; done
  kill -KILL "$pid" 2>/dev/null || true
}

cleanup() {
  local v ns
  # Functions a test registers to undo what it made (before its namespaces go).
  for v in "${CLEANUP_HOOKS[@]}"; do "$v" || true; done
  for v in "${CLEANUP_PIDS[@]}"; do stop_pid "${!v:-}"; done
  for v in "${CLEANUP_NETNS[@]}"; do
    ns="${!v:-}"
    [[ -n "$ns" ]] || continue
    ip netns pids "$ns" 2>/dev/null | xargs -r kill -KILL 2>/dev/null || true
    ip netns del "$ns" 2>/dev/null || true
  done
  for v in "${HUGETLBFS_MOUNTS[@]}"; do umount "$v" 2>/dev/null || true; done
  if ((HUGE_PAGES_ADDED > 0)); then
    local total
    total=$(cat /proc/sys/vm/nr_hugepages)
    echo $((total > HUGE_PAGES_ADDED ? total - HUGE_PAGES_ADDED : 0)) >/proc/sys/vm/nr_hugepages
    HUGE_PAGES_ADDED=0
  fi
  if [[ -n "${WORK:-}" && "${KEEP_WORK:-0}" != 1 ]]; then rm -rf "$WORK"; fi
}

free_huge_pages() { awk '/^HugePages_Free:/ {print $2}' /proc/meminfo; }

reserve_huge_pages() {
  local want=$1 free total
  free=$(free_huge_pages)
  if ((free < want)); then
    total=$(cat /proc/sys/vm/nr_hugepages)
    echo $((total + want - free)) >/proc/sys/vm/nr_hugepages
    HUGE_PAGES_ADDED=$((HUGE_PAGES_ADDED + $(cat /proc/sys/vm/nr_hugepages) - total))
    free=$(free_huge_pages)
  fi
  if ((free < want)); then
    echo "could not reserve $want huge pages: $free free" >&2
    return 1
  fi
}

mount_hugetlbfs() {
  local dir=$1 opts=${2:-}
  mkdir -p "$dir"
  mount -t hugetlbfs ${opts:+-o "$opts"} none "$dir" || return 1
  HUGETLBFS_MOUNTS+=("$dir")
}

cleanup_on_exit() {
  trap cleanup EXIT
  trap "exit 143" TERM INT
}
