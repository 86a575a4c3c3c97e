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

# wait_listener CTL PID [N] [PORT]: returns once N (default 1) RDMA-CM IDs are listening
# (`CTL res show cm_id` shows them in state LISTEN), on PORT if given, PID has exited, or
# 20 s have passed. A server that has just exited may still be listed for a moment (vrdmad
# closes its session when it sees the socket close), so callers that reuse a program name
# or run cases back to back pass the port their server listens on.
wait_listener() {
  local ctl_fn=$1 pid=$2 want=${3:-1} port=${4:-}
  local pattern="state LISTEN"
  [[ -n $port ]] && pattern="state LISTEN .*src-addr [^ ]*:$port( |$)"
  for _ in $(seq 200); do
    (($("$ctl_fn" res show cm_id 2>/dev/null | grep -cE "$pattern") >= want)) && return 0
    kill -0 "$pid" 2>/dev/null || return 0
    sleep 0.1
  done
}

# TCP over rsockets: TCP programs under Debian's unmodified librspreload.so, which turns
# their sockets into rsockets. Debian's rdma-core 44 librspreload.so cannot carry
# netcat-openbsd, socat or iperf3 on any device (docs/cm.md: socket() with SOCK_NONBLOCK
# and accept4() are not interposed, socat crashes under it without an RDMA device, iperf3
# stalls after 128 KiB on Linux's own rdma_rxe as on a vdev); netcat-traditional and
# plain TCP code run.
RSPRELOAD="/usr/lib/$(uname -m)-linux-gnu/rsocket/librspreload.so"
TCP_ECHO="$VRDMA_BUILD/tests/integration/tcp_echo"

# The verdict of a transfer of MIB MiB of random bytes from IN, which arrived as OUT:
# both sides exit 0 and every byte matches; shows both logs otherwise.
transfer_verdict() {  # NAME WHAT SERVER_RC CLIENT_RC IN OUT SERVER_LOG CLIENT_LOG
  local name=$1 what=$2 src=$3 crc=$4 in=$5 out=$6 srv=$7 cli=$8
  if ((crc == 0 && src == 0)) && cmp -s "$in" "$out"; then
    pass "$name ($what, every byte checked)"
  else
    fail "$name (server rc=$src client rc=$crc, $(wc -c <"$out" 2>/dev/null || echo 0) of" \
      "$(wc -c <"$in") bytes; $(cmp "$in" "$out" 2>&1 | head -1))"
    sed 's/^/    server: /' "$srv" | tail -4
    sed 's/^/    client: /' "$cli" | tail -4
  fi
  rm -f "$in" "$out"
}

# Debian's netcat-traditional at both ends: the client sends MIB MiB of random bytes and
# closes at the end of its input (-q 0); the server writes what it received to a file.
# (IPv4 only: this netcat knows no IPv6.)
nc_over_rsockets() {  # NAME CTL "SERVER RUNNER" "CLIENT RUNNER" SERVER_ADDR CLIENT_ADDR PORT MIB
  local name=$1 ctl=$2 saddr=$5 caddr=$6 port=$7 mib=$8
  local -a srun=($3) crun=($4)
  local in="$WORK/$name.in" out="$WORK/$name.out" srv="$WORK/$name.server" cli="$WORK/$name.client"
  local spid src=0 crc=0
  head -c "${mib}M" /dev/urandom >"$in"
  PRELOAD=$RSPRELOAD "${srun[@]}" nc.traditional -l -p "$port" -s "$saddr" >"$out" 2>"$srv" </dev/null &
  spid=$!
  wait_listener "$ctl" "$spid"
  PRELOAD=$RSPRELOAD "${crun[@]}" nc.traditional -q 0 -s "$caddr" "$saddr" "$port" <"$in" >"$cli" 2>&1 ||
    crc=$?
  wait "$spid" || src=$?
  transfer_verdict "$name" "$mib MiB" "$src" "$crc" "$in" "$out" "$srv" "$cli"
}

# tcp_echo (tests/integration/tcp_echo.c, plain TCP that knows nothing of RDMA) at both
# ends: the client sends MIB MiB of random bytes and must get every byte back in order,
# both directions at once, IPv4 or IPv6.
tcp_over_rsockets() {  # NAME CTL "SERVER RUNNER" "CLIENT RUNNER" SERVER_ADDR CLIENT_ADDR PORT MIB
  local name=$1 ctl=$2 saddr=$5 caddr=$6 port=$7 mib=$8
  local -a srun=($3) crun=($4)
  local in="$WORK/$name.in" out="$WORK/$name.out" srv="$WORK/$name.server" cli="$WORK/$name.client"
  local spid src=0 crc=0
  head -c "${mib}M" /dev/urandom >"$in"
  PRELOAD=$RSPRELOAD "${srun[@]}" "$TCP_ECHO" listen "$saddr" "$port" >"$srv" 2>&1 &
  spid=$!
  wait_listener "$ctl" "$spid"
  PRELOAD=$RSPRELOAD "${crun[@]}" "$TCP_ECHO" connect "$saddr" "$port" "$caddr" <"$in" >"$out" 2>"$cli" ||
    crc=$?
  wait "$spid" || src=$?
  # The server's own count is the whole input, or its side failed.
  grep -q "received $((mib << 20)) bytes" "$srv" || ((src != 0)) || src=1
  transfer_verdict "$name" "$mib MiB echoed" "$src" "$crc" "$in" "$out" "$srv" "$cli"
}

# rcopy (rdmacm-utils): a file copied over rsockets to SERVER_ADDR. Its server serves
# copies until it is stopped.
rcopy_case() {  # NAME CTL "SERVER RUNNER" "CLIENT RUNNER" SERVER_ADDR PORT MIB
  local name=$1 ctl=$2 saddr=$5 port=$6 mib=$7
  local -a srun=($3) crun=($4)
  local in="$WORK/$name.in" out="$WORK/$name.out" srv="$WORK/$name.server" cli="$WORK/$name.client"
  local spid crc=0
  head -c "${mib}M" /dev/urandom >"$in"
  "${srun[@]}" rcopy -p "$port" >"$srv" 2>&1 &
  spid=$!
  wait_listener "$ctl" "$spid"
  "${crun[@]}" rcopy "$in" "$saddr:$out" -p "$port" >"$cli" 2>&1 || crc=$?
  pkill -TERM -f "^rcopy -p $port\$" 2>/dev/null || true  # the server itself, not its wrappers
  wait "$spid" 2>/dev/null || true
  transfer_verdict "$name" "$mib MiB file" 0 "$crc" "$in" "$out" "$srv" "$cli"
}
