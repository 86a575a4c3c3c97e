# A client/server run of a verbs tool, shared by lib.sh (one host) and hosts.sh (two).
#
# client_server NAME CHECK SERVER_FN CLIENT_FN -- PROGRAM ARGS...: SERVER_FN PROGRAM ARGS
# in the background, then CLIENT_FN PROGRAM ARGS, retried until the server listens.
# Both must exit 0; then CHECK (a shell function) is called with the two output files.
# SERVER_FN and CLIENT_FN run their arguments on the right host and device (the client
# adds the server's address).
client_server() {
  local name="$1" check="$2" server_fn="$3" client_fn="$4"
  shift 5
  local srv="$WORK/$name.server" cli="$WORK/$name.client"
  "$server_fn" "$@" >"$srv" 2>&1 &
  local spid=$!
  local crc=1
  for _ in $(seq 40); do
    sleep 0.25
    if "$client_fn" "$@" >"$cli" 2>&1; then
      crc=0
      break
    fi
    kill -0 "$spid" 2>/dev/null || break
    grep -q "Couldn't connect\|Unable to Connect\|connect to" "$cli" || break
  done
  local src=0
  wait "$spid" || src=$?
  # A caller may name a function that accepts one precise failure of one side (see
  # two_host_faults.sh): told the failed side's output, then the other's, it checks
  # what the side that succeeded must show, as the failed side's is incomplete.
  if [[ -n "${ONE_SIDE_FAILURE_OK:-}" ]]; then
    if { [[ $crc -eq 0 && $src -ne 0 ]] && "$ONE_SIDE_FAILURE_OK" "$srv" "$cli"; } ||
       { [[ $crc -ne 0 && $src -eq 0 ]] && "$ONE_SIDE_FAILURE_OK" "$cli" "$srv"; }; then
      pass "$name ($ONE_SIDE_FAILURE_OK, $([[ $crc -ne 0 ]] && echo client || echo server) side)"
      return 0
    fi
  fi
  if [[ $crc -ne 0 || $src -ne 0 ]]; then
    fail "$name (server rc=$src client rc=$crc)"
    sed 's/^/    server: /' "$srv" | tail -15
    sed 's/^/    client: /' "$cli" | tail -15
    return 0
  fi
  if "$check" "$srv" "$cli"; then
    pass "$name"
  else
    # Both exited 0 without what CHECK looks for (perftest, for one, exits 0 without its
    # report when its clock check fails: "Can't produce a report"): show what they said.
    fail "$name (output check)"
    sed 's/^/    server: /' "$srv" | tail -8
    sed 's/^/    client: /' "$cli" | tail -8
  fi
}

# wait_listener CTL PID [N]: returns once N (default 1) RDMA-CM IDs are listening (`CTL
# res show cm_id` shows them in state LISTEN), PID has exited, or 20 s have passed. The
# callers' servers run one case at a time, so any listener is theirs.
wait_listener() {
  local ctl_fn=$1 pid=$2 want=${3:-1}
  for _ in $(seq 200); do
    (($("$ctl_fn" res show cm_id 2>/dev/null | grep -c "state LISTEN") >= want)) && return 0
    kill -0 "$pid" 2>/dev/null || return 0
    sleep 0.1
  done
}
