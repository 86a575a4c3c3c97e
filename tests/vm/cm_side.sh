# RDMA-CM cases between the two ends of a VM test: unmodified rdmacm-utils (rping,
# ucmatose, udaddy) and perftest -R, their connections made by each side's CM (vrdmad's
# on this machine, the kernel's ib_cm/rdma_cm in the guest), addressed by IP. Sourced by
# the host and by the guest (which runs the host's bash on the host's files over 9p).
#
# $CM_CASES lists one case per line: NAME SERVER(host|guest) V(4|6) TOOL ARGS...
# TOOL is rping, ucmatose, udaddy, mckey or ib_*_bw; each side adds its own address (or
# device, for perftest), the client its peer's address and the port (mckey: the server
# is the receiver, the client the sender, started once the receiver joined).
#
# cm_side SIDE PREFIX DEV OWN4 OWN6 PEER4 PEER6 OUTDIR runs SIDE's half of every case:
# the server where SERVER is SIDE (it writes OUTDIR/NAME.up when started and
# OUTDIR/NAME.done when it ended), else the client (started when the server's NAME.up
# is there, tried again while the server rejects it as not listening yet, its earlier
# attempts kept in OUTDIR/NAME.SIDE.retries; OUTDIR/NAME.cdone when it ended). Output
# in OUTDIR/NAME.SIDE, last line rc=N. The tools run with line-buffered output
# (stdbuf), so that what a tool killed by its timeout printed is kept. A side still
# running 10 s after the other ended is stopped (a broken connection costs a case
# seconds, not its whole timeout). A case takes 1 to 10 s under TCG; a client attempt
# is stopped at 30 s, a server at 90 s; a client rejected because its server does not
# listen yet tries again for up to 60 s (a perftest server in the TCG guest has taken
# more than 20 s to listen). A perftest client whose second connection (the test's
# QPs) was rejected before its server listened for it asks for a new server
# (OUTDIR/NAME.restart; at most 3 times) and starts again. A side that defines cm_counters (one line of
# NAME=VALUE counters of its device) has it written before and after its half of each
# case, as "# counters before: ..." and "# counters after: ...".
#
# cm_watched FILE MARKER TIMEOUT COMMAND...: COMMAND (with PREFIX, under timeout) with
# its output appended to FILE; stopped 10 s after MARKER appears, at once when the file
# $CM_RESTART (if set) appears; its exit status.
cm_watched() {
  local f=$1 marker=$2 limit=$3 seen=""
  shift 3
  timeout "$limit" "$@" >>"$f" 2>&1 &
  local pid=$!
  while kill -0 "$pid" 2>/dev/null; do
    if [[ -n "${CM_RESTART:-}" && -f "$CM_RESTART" ]]; then
      echo "# stopped: the client asked for a new server" >>"$f"
      kill -TERM "$pid" 2>/dev/null || true
      break
    fi
    if [[ -z "$seen" && -f "$marker" ]]; then seen=$SECONDS; fi
    if [[ -n "$seen" ]] && ((SECONDS - seen >= 10)); then
      echo "# stopped: still running 10 s after the other side ended" >>"$f"
      kill -TERM "$pid" 2>/dev/null || true
      break
    fi
    sleep 0.2
  done
  local rc=0
  wait "$pid" || rc=$?
  return "$rc"
}

cm_side() {
  local side=$1 prefix=$2 dev=$3 own4=$4 own6=$5 peer4=$6 peer6=$7 out=$8
  local name server v tool args
  while read -r name server v tool args; do
    [[ -z "$name" ]] && continue
    local own=$own4 peer=$peer4
    [[ $v == 6 ]] && own=$own6 peer=$peer6
    local port=$((21000 + $(grep -n "^$name " "$CM_CASES" | cut -d: -f1)))
    local f="$out/$name.$side" cmd before=""
    : >"$f"
    # The guest was stopped (harness.sh's vm_watch_nic): no case starts.
    if [[ -f "$out/abort" ]]; then
      echo "# not run: $(cat "$out/abort")" >>"$f"
      echo "rc=1" >>"$f"
      continue
    fi
    declare -F cm_counters >/dev/null && before=$(cm_counters)
    if [[ $server == "$side" ]]; then
      case $tool in
        rping) cmd="rping -s -a $own -p $port $args" ;;
        ucmatose) cmd="ucmatose -b $own -p $port $args" ;;
        udaddy) cmd="udaddy -b $own $args" ;;  # its port is always 7174
        mckey) cmd="mckey -b $own $args" ;;     # the receiver: joins, counts -C datagrams
        ib_*) cmd="$tool -R -d $dev -p $port $args" ;;
      esac
      local src restarts=0
      while :; do
        echo "# $cmd" >>"$f"
        touch "$out/$name.up"
        src=0
        CM_RESTART="$out/$name.restart" \
          cm_watched "$f" "$out/$name.cdone" 90 $prefix stdbuf -oL -eL $cmd || src=$?
        [[ -f "$out/$name.restart" ]] && ((restarts++ < 3)) || break
        rm -f "$out/$name.restart"
      done
      echo "rc=$src" >>"$f"
      touch "$out/$name.done"
    else
      case $tool in
        rping) cmd="rping -c -a $peer -I $own -p $port $args" ;;
        ucmatose) cmd="ucmatose -s $peer -b $own -p $port $args" ;;
        udaddy) cmd="udaddy -s $peer -b $own $args" ;;
        mckey) cmd="mckey -s -b $own $args" ;;  # the sender: joins, sends -C datagrams
        ib_*) cmd="$tool -R -d $dev -p $port $args $peer" ;;
      esac
      local rc=1 t0 restarts=0
      for _ in $(seq 1200); do [[ -f "$out/$name.up" || -f "$out/abort" ]] && break; sleep 0.1; done
      # Datagrams sent before the receiver's QP is attached are lost (UD): the sender
      # starts once the receiver says it joined (librdmacm attaches its QP before it
      # hands the application the MULTICAST_JOIN event).
      if [[ $tool == mckey ]]; then
        for _ in $(seq 600); do grep -q "^mckey: joined" "$out/$name.$server" 2>/dev/null && break; sleep 0.1; done
      fi
      t0=$SECONDS
      # The server has been started; give it a second to listen (under TCG the
      # guest's programs start slowly), then try, again while it is not listening yet:
      # a REQ (SIDR REQ) for a service no one listens on is rejected by the other
      # side's CM, and perftest's client then cannot connect.
      sleep 1
      while :; do
        : >"$f"
        echo "# $cmd" >>"$f"
        rc=0
        cm_watched "$f" "$out/$name.done" 30 $prefix stdbuf -oL -eL $cmd || rc=$?
        ((rc != 0)) || break
        [[ -f "$out/$name.done" ]] && break
        if grep -qE "Failed to connect RDMA CM (events|client)" "$f" && ((restarts++ < 3)); then
          # perftest 4.5's second connection (the test's QPs) is rejected when the
          # server in the TCG guest has not listened for it yet. Its client means to
          # try ten times, but its second try uses the IDs and nodes the first one
          # freed (rdma_cm_client_connection after rdma_cm_destroy_cma) and crashes,
          # on any device; the server then waits for a client that has gone. Both
          # start again.
          cat "$f" >>"$f.retries"
          rm -f "$out/$name.up"
          touch "$out/$name.restart"
          for _ in $(seq 600); do
            [[ -f "$out/$name.up" && ! -f "$out/$name.restart" ]] && break
            sleep 0.1
          done
          t0=$SECONDS
          sleep 1
          continue
        fi
        ((SECONDS - t0 < 60)) || break
        grep -qE "REJECTED|UNREACHABLE|Unable to perform rdma_client|Failed to connect" "$f" || break
        cat "$f" >>"$f.retries"
        sleep 0.5
      done
      echo "rc=$rc" >>"$f"
      touch "$out/$name.cdone"
    fi
    if [[ -n "$before" ]]; then
      echo "# counters before: $before" >>"$f"
      echo "# counters after: $(cm_counters)" >>"$f"
    fi
  done <"$CM_CASES"
}

# cm_counter_delta FILE NAME: how much counter NAME grew over the case in FILE (empty
# when FILE has no such counter).
cm_counter_delta() {
  local b a
  b=$(sed -n "s/^# counters before: .*\b$2=\([0-9]*\).*/\1/p" "$1" 2>/dev/null)
  a=$(sed -n "s/^# counters after: .*\b$2=\([0-9]*\).*/\1/p" "$1" 2>/dev/null)
  [[ -n "$b" && -n "$a" ]] && echo $((a - b))
  return 0
}

# cm_judge LABEL OUTDIR: PASS or FAIL for every case in $CM_CASES, from the data the
# tools printed: both sides exit 0, and
#   rping -v -V -C N: each side printed N pings ("ping data: rdma-ping-K: ..."), the
#     client's last rdma-ping-(N-1), and neither says mismatch (-V: the client compares
#     every ping's data with what it sent);
#   ucmatose, udaddy: each side moved its messages ("data transfers complete": -C N
#     completions per connection) and returned status 0. Neither tool looks at a
#     completion's status (a QP in error flushes its receives, and they count), so the
#     guest's rxe counters say whether the data went through: rdma_recvs (receives
#     completed successfully, QP1's among them) less cm_rx_msgs (the CM MADs it
#     received) grew by at least -c x -C, what this side sent it;
#   every case: rxe's retry_exceeded_err and retry_rnr_exceeded_err did not grow (no
#     send of the guest's gave up unacknowledged, every message it sent was received);
#   perftest -R: both used rdma_cm QPs, the client printed its result row for -s and
#     -n (ib_send_bw's server too).
cm_judge() {
  local label="$1" out="$2" name server v tool args
  while read -r name server v tool args; do
    [[ -z "$name" ]] && continue
    local h="$out/$name.host" g="$out/$name.guest" srv cli why=""
    srv=$h cli=$g
    [[ $server == guest ]] && srv=$g cli=$h
    # (what a failed grep returns must not end a caller under set -e)
    local sp cp
    sp=$(grep -c "ping data: rdma-ping-" "$srv" 2>/dev/null || true)
    cp=$(grep -c "ping data: rdma-ping-" "$cli" 2>/dev/null || true)
    grep -q "^rc=0" "$srv" 2>/dev/null || why+=" server $(grep -o '^rc=.*' "$srv" 2>/dev/null || echo rc=none)"
    grep -q "^rc=0" "$cli" 2>/dev/null || why+=" client $(grep -o '^rc=.*' "$cli" 2>/dev/null || echo rc=none)"
    local d c
    for c in retry_exceeded_err retry_rnr_exceeded_err; do
      d=$(cm_counter_delta "$g" $c)
      [[ -z "$d" || "$d" == 0 ]] || why+=" rxe $c +$d"
    done
    case $tool in
      rping)
        local n
        n=$(sed -n 's/.*-C \([0-9]*\).*/\1/p' <<<"$args")
        ((${sp:-0} >= n)) || why+=" server printed $sp pings"
        ((${cp:-0} >= n)) || why+=" client printed $cp pings"
        grep -q "ping data: rdma-ping-$((n - 1)): " "$cli" || why+=" no rdma-ping-$((n - 1)) at the client"
        ! grep -qi mismatch "$srv" "$cli" || why+=" data mismatch"
        ;;
      ucmatose | udaddy)
        local x
        for x in "$srv" "$cli"; do
          grep -q "^data transfers complete" "$x" && grep -q "^return status 0" "$x" ||
            why+=" $(basename "$x"): transfers not complete"
        done
        local conns=1 count
        [[ $args =~ -c\ ([0-9]+) ]] && conns=${BASH_REMATCH[1]}
        count=$(sed -n 's/.*-C \([0-9]*\).*/\1/p' <<<"$args")
        local mads
        d=$(cm_counter_delta "$g" rdma_recvs)
        mads=$(cm_counter_delta "$g" cm_rx_msgs)
        [[ -n "$d" && -n "$mads" ]] && d=$((d - mads)) || d=""
        [[ -n "$d" ]] && ((d >= conns * count)) || why+=" rxe completed ${d:-?} data receives of $((conns * count))"
        ;;
      mckey)
        # The receiver counted -C datagrams (mckey does not look at their status), the
        # sender sent them; the receiving side's counters say they arrived: rxe's
        # rdma_recvs grew by -C, or the host port received -C packets with a receive
        # WQE for each.
        local x count
        for x in "$srv" "$cli"; do
          grep -q "^data transfers complete" "$x" && grep -q "^return status 0" "$x" ||
            why+=" $(basename "$x"): transfers not complete"
        done
        count=$(sed -n 's/.*-C \([0-9]*\).*/\1/p' <<<"$args")
        if [[ $server == guest ]]; then
          d=$(cm_counter_delta "$g" rdma_recvs)
          [[ -n "$d" ]] && ((d >= count)) || why+=" rxe completed ${d:-?} receives of $count"
        else
          d=$(cm_counter_delta "$h" rx_packets)
          [[ -n "$d" ]] && ((d >= count)) || why+=" the host port received ${d:-?} packets of $count"
          d=$(cm_counter_delta "$h" rx_no_recv_wqe)
          [[ "$d" == 0 ]] || why+=" ${d:-?} datagrams found no receive WQE"
        fi
        ;;
      ib_*)
        local s n
        s=$(sed -n 's/.*-s \([0-9]*\).*/\1/p' <<<"$args")
        n=$(sed -n 's/.*-n \([0-9]*\).*/\1/p' <<<"$args")
        grep -q "rdma_cm QPs.*ON" "$srv" && grep -q "rdma_cm QPs.*ON" "$cli" || why+=" rdma_cm QPs not ON"
        grep -qE "^ *$s +$n +[0-9.]+" "$cli" || why+=" no client result row"
        if [[ $tool == ib_send_bw ]]; then
          grep -qE "^ *$s +$n +[0-9.]+" "$srv" || why+=" no server result row"
        fi
        ;;
    esac
    if [[ -z "$why" ]]; then
      pass "$name ($label, $server is server)"
    else
      fail "$name ($label, $server is server):$why"
      grep -v "^# counters" "$srv" | tail -n 8 | sed 's/^/    server: /'
      grep -v "^# counters" "$cli" | tail -n 8 | sed 's/^/    client: /'
      [[ -f "$cli.retries" ]] && tail -n 4 "$cli.retries" | sed 's/^/    client, earlier try: /'
    fi
  done <"$CM_CASES"
}
