# One side of the cases both ends of a VM test run in the same order (sourced by the host
# and by the guest, which runs the host's bash on the host's files over 9p).
#
# $CASES lists one case per line: NAME SERVER(host|guest) V(4|6) COMMAND ARGS...
# run_side SIDE DEV_PREFIX GID4 GID6 PEER4 OUTDIR runs SIDE's half of every case:
# the server where SERVER is SIDE, else the client (retried while the server is not
# listening yet), each as DEV_PREFIX COMMAND ARGS with its GID index, writing
# OUTDIR/NAME.SIDE and a last line rc=N. The tools' output is line-buffered (stdbuf), so
# what they print on stderr stays in order with their stdout.
#
# A perftest client in the emulated guest can finish every iteration and still refuse to
# report: before reporting it checks its TSC against gettimeofday and gives up when they
# are out of line ("Correlation coefficient r^2: ... < 0.9", "Can't produce a report",
# perftest's get_clock.c), which a vCPU descheduled on a loaded host makes them
# (docs/testing.md). Only then does a perftest case run again, up to $PERFTEST_RUNS runs:
# each run writes OUTDIR/NAME.SIDE.runK, both sides read the client's file of the run
# (OUTDIR is the same directory for both, over 9p) and so decide alike; the last run's is
# copied to OUTDIR/NAME.SIDE.
PERFTEST_RUNS=${PERFTEST_RUNS:-3}

# run_case_once SIDE SERVER PREFIX CMD GFLAG G PORT PEER FILE: one run of one side.
# Once OUTDIR/abort exists (harness.sh's vm_watch_nic stopped the guest), no run starts
# and a client stops retrying.
run_case_once() {
  local side=$1 server=$2 prefix=$3 cmd=$4 gflag=$5 g=$6 port=$7 peer=$8 f=$9
  : >"$f"
  if [[ -f "$(dirname "$f")/abort" ]]; then
    echo "# not run: $(cat "$(dirname "$f")/abort")" >>"$f"
    echo "rc=1" >>"$f"
    return 0
  fi
  if [[ $server == "$side" ]]; then
    local src=0
    timeout 120 $prefix stdbuf -oL -eL $cmd $gflag "$g" -p "$port" >>"$f" 2>&1 || src=$?
    echo "rc=$src" >>"$f"
  else
    # Every attempt's output is kept; only a refused TCP connection is retried.
    local rc=1
    for _ in $(seq 120); do
      local before
      before=$(wc -l <"$f")
      if timeout 120 $prefix stdbuf -oL -eL $cmd $gflag "$g" -p "$port" "$peer" >>"$f" 2>&1; then rc=0; break; fi
      tail -n +"$((before + 1))" "$f" | grep -q "Couldn't connect to\|Failed to connect" || break
      [[ -f "$(dirname "$f")/abort" ]] && break
      sleep 0.5
    done
    echo "rc=$rc" >>"$f"
  fi
}

# rc_written FILE: waits (up to 5 minutes) until FILE ends with its rc= line.
rc_written() {
  for _ in $(seq 1500); do
    grep -q "^rc=" "$1" 2>/dev/null && return 0
    sleep 0.2
  done
  return 1
}

run_side() {
  local side=$1 prefix=$2 g4=$3 g6=$4 p4=$5 out=$6
  local name server v cmd
  while read -r name server v cmd; do
    [[ -z "$name" ]] && continue
    # The tools exchange QP numbers and GIDs over TCP; that connection is always over
    # IPv4 (a pingpong server listens on the first passive address, IPv4's). The GID
    # index alone puts the RoCE traffic on IPv6.
    local g=$g4 peer=$p4
    [[ $v == 6 ]] && g=$g6
    local gflag=-g
    [[ $cmd == ib_* ]] && gflag=-x
    # perftest takes its port from -p; pingpongs too: one port per case keeps a late
    # client from meeting the next case's server.
    local port=$((20000 + $(grep -n "^$name " "$CASES" | cut -d: -f1)))
    local client=host runs=1 run
    [[ $server == host ]] && client=guest
    [[ $cmd == ib_* ]] && runs=$PERFTEST_RUNS
    for ((run = 1; ; ++run)); do
      run_case_once "$side" "$server" "$prefix" "$cmd" "$gflag" "$g" "$port" "$peer" \
        "$out/$name.$side.run$run"
      cp "$out/$name.$side.run$run" "$out/$name.$side"
      ((run < runs)) || break
      rc_written "$out/$name.$client.run$run" || break
      grep -q "^Can't produce a report" "$out/$name.$client.run$run" || break
    done
  done <"$CASES"
}
