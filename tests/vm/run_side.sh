# One side of the cases both ends of a VM test run in the same order (sourced by the host
# and by the guest, which runs the host's bash on the host's files over 9p).
#
# $CASES lists one case per line: NAME SERVER(host|guest) V(4|6) COMMAND ARGS...
# run_side SIDE DEV_PREFIX GID4 GID6 PEER4 OUTDIR runs SIDE's half of every case:
# the server where SERVER is SIDE, else the client (retried while the server is not
# listening yet), each as DEV_PREFIX COMMAND ARGS with its GID index, writing
# OUTDIR/NAME.SIDE and a last line rc=N.
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
    local f="$out/$name.$side"
    : >"$f"
    if [[ $server == "$side" ]]; then
      local src=0
      timeout 120 $prefix $cmd $gflag "$g" -p "$port" >>"$f" 2>&1 || src=$?
      echo "rc=$src" >>"$f"
    else
      # Every attempt's output is kept; only a refused TCP connection is retried.
      local rc=1
      for _ in $(seq 120); do
        local before
        before=$(wc -l <"$f")
        if timeout 120 $prefix $cmd $gflag "$g" -p "$port" "$peer" >>"$f" 2>&1; then rc=0; break; fi
        tail -n +"$((before + 1))" "$f" | grep -q "Couldn't connect to\|Failed to connect" || break
        sleep 0.5
      done
      echo "rc=$rc" >>"$f"
    fi
  done <"$CASES"
}
