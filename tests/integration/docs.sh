#!/usr/bin/env bash
# Runs the command blocks of README.md and docs/*.md that are marked runnable, as written,
# in throwaway network namespaces, and checks that each one succeeds.
#
# A runnable block is a fenced block preceded by a marker line naming its setup:
#
#   <!-- runnable: one-host -->      one namespace with a veth pair: vrd0 10.77.0.1/24
#                                    and vrd1 10.77.0.2/24 (lib.sh's setup_hosts)
#   <!-- runnable: two-hosts A -->   host A of two namespaces joined by a veth pair: vA
#   <!-- runnable: two-hosts B -->   10.77.0.1/24 in A, vB 10.77.0.2/24 in B (hosts.sh)
#
# The blocks of one page and one setup run in one fresh setup, in the page's order, each
# as a bash script (`set -e`) in its host's namespace, from a directory where `build` is
# the build under test and with its apps/ first on PATH (so `build/apps/vrdmad` and a
# bare `vrdmad` both work); VRDMA_SOCKET names a private socket per host. What a reader
# does between lines, the runner does too: after a line that puts a command in the
# background (`... &`) it waits until that command listens (a new listening TCP or UNIX stream
# socket in the namespace) or exits, before the next line. A block succeeds when every
# line succeeds and every command it put in the background exits 0; background daemons
# (vrdmad) keep running for the page's later blocks and are stopped with SIGTERM at the
# end, and must then exit 0.
#
# Usage: docs.sh [FILE.md...]   (default: README.md and docs/*.md). Needs root.
set -euo pipefail
: "${VRDMA_BUILD:?set VRDMA_BUILD to the meson build directory}"
HERE="$(cd "$(dirname "$0")" && pwd)"
ROOT="$(cd "$HERE/../.." && pwd)"

# extract FILE OUTDIR: one OUTDIR/NNN.sh per runnable block of FILE, and OUTDIR/NNN.meta
# holding "SETUP HOST LINE".
extract() {
  awk -v out="$2" '
    function flush() { close(file) }
    /^<!-- runnable: [a-z-]+( [A-Z])? -->$/ {
      setup = $3; host = ($4 == "-->") ? "-" : $4; marked = NR; next
    }
    marked && /^```/ && !inblock { inblock = 1; n++; file = sprintf("%s/%03d.sh", out, n)
      printf "" > file
      printf "%s %s %d\n", setup, host, NR + 1 > sprintf("%s/%03d.meta", out, n)
      close(sprintf("%s/%03d.meta", out, n)); marked = 0; next }
    inblock && /^```/ { inblock = 0; flush(); next }
    inblock { print > file; next }
    { marked = 0 }
  ' "$1"
}

# runner BLOCK OUT: the script that runs BLOCK line by line (see the top of this file).
runner() {
  local block="$1" out="$2" line code word n=0
  {
    echo 'set -e'
    echo "cd $(printf %q "$DOCS_CWD")"
    echo "export PATH=$(printf %q "$VRDMA_BUILD/apps"):\$PATH"
    echo '__listeners() { ss -H -l -A tcp,unix_stream,unix_seqpacket 2>/dev/null | wc -l; }'
    echo '__await() {  # COUNT PID TEXT: PID listens (more listeners than COUNT) or exits'
    echo '  for _ in $(seq 1200); do'
    echo '    [[ $(__listeners) -gt $1 ]] && return 0'
    echo '    kill -0 "$2" 2>/dev/null || return 0'
    echo '    sleep 0.05'
    echo '  done'
    echo '  echo "docs.sh: \"$3\" neither listened nor exited" >&2; return 1'
    echo '}'
    echo '__jobs=(); __texts=(); __daemons=()'
    while IFS= read -r line || [[ -n $line ]]; do
      code="${line%%#*}"
      if [[ $code =~ (^|[^\&])\&[[:space:]]*$ ]]; then
        n=$((n + 1))
        read -r word _ <<<"$code"
        echo '__n=$(__listeners)'
        printf '%s\n' "$line"
        echo '__p=$!'
        echo "__await \"\$__n\" \"\$__p\" $(printf %q "$code")"
        if [[ $(basename "$word") == vrdmad ]]; then
          echo "__daemons+=(\"\$__p\"); echo \"\$__p\" >>$(printf %q "$out.daemons")"
        else
          echo "__jobs+=(\"\$__p\"); __texts+=($(printf %q "$code"))"
        fi
      else
        printf '%s\n' "$line"
      fi
    done <"$block"
    echo "touch $(printf %q "$out.ready")"
    echo '__rc=0'
    echo 'for i in "${!__jobs[@]}"; do'
    echo '  if ! wait "${__jobs[$i]}"; then echo "docs.sh: background command failed: ${__texts[$i]}" >&2; __rc=1; fi'
    echo 'done'
    echo "touch $(printf %q "$out.done")"
    echo 'for d in "${__daemons[@]}"; do'
    echo '  if ! wait "$d"; then echo "docs.sh: a background vrdmad did not exit 0" >&2; __rc=1; fi'
    echo 'done'
    echo 'exit $__rc'
  } >"$out.run"
}

# wait_for FILE PID: until FILE exists or PID has exited (bounded: 10 minutes).
wait_for() {
  for _ in $(seq 12000); do
    [[ -e $1 ]] && return 0
    kill -0 "$2" 2>/dev/null || return 1
    sleep 0.05
  done
  return 1
}

# run_group SETUP PAGE BLOCK...: the blocks of one page and setup, in one fresh setup.
run_group() {
  local setup="$1" page="$2"
  shift 2
  case $setup in
    one-host) source "$HERE/lib.sh"; setup_hosts ;;
    two-hosts) source "$HERE/hosts.sh"; setup_link ;;
    *) echo "FAIL $page: unknown setup '$setup'"; exit 1 ;;
  esac
  DOCS_CWD="$WORK/reader"
  mkdir -p "$DOCS_CWD"
  ln -s "$VRDMA_BUILD" "$DOCS_CWD/build"
  local pids=() names=() b meta host line name out pid i
  for b in "$@"; do
    read -r _ host line <"${b%.sh}.meta"
    name="$page:$line ($setup)"
    if [[ $host != - ]]; then name="$page:$line ($setup, host $host)"; fi
    out="$WORK/block-$(basename "${b%.sh}")"
    runner "$b" "$out"
    case $setup/$host in
      one-host/*) ip netns exec "$NS" bash "$out.run" >"$out.log" 2>&1 & ;;
      two-hosts/A) ip netns exec "$NS_A" env VRDMA_SOCKET="$SOCK_A" bash "$out.run" >"$out.log" 2>&1 & ;;
      two-hosts/B) ip netns exec "$NS_B" env VRDMA_SOCKET="$SOCK_B" bash "$out.run" >"$out.log" 2>&1 & ;;
      *) fail "$name: no host '$host' in $setup"; continue ;;
    esac
    pid=$!
    pids+=("$pid") names+=("$name|$out")
    # The next block starts when this one has run its lines (its servers listen).
    wait_for "$out.ready" "$pid" || true
  done
  # Every block's background clients and servers finish, then the daemons are stopped.
  for i in "${!pids[@]}"; do wait_for "${names[$i]#*|}.done" "${pids[$i]}" || true; done
  for i in "${!pids[@]}"; do
    out="${names[$i]#*|}"
    if [[ -f $out.daemons ]]; then
      while read -r pid; do kill -TERM "$pid" 2>/dev/null || true; done <"$out.daemons"
    fi
  done
  for i in "${!pids[@]}"; do
    name="${names[$i]%|*}" out="${names[$i]#*|}"
    if wait "${pids[$i]}"; then
      pass "$name"
    else
      fail "$name"
      sed 's/^/    | /' "${@:i+1:1}"
      echo "    output:"
      tail -n 30 "$out.log" | sed 's/^/    > /'
    fi
  done
  echo "$PASSES passed, $FAILURES failed"
  ((FAILURES == 0))
}

if [[ ${1:-} == --group ]]; then
  shift
  run_group "$@"
  exit
fi

cd "$ROOT"
pages=("$@")
if [[ ${#pages[@]} == 0 ]]; then pages=(README.md docs/*.md); fi
blocks="$(mktemp -d /tmp/vrdma-docs.XXXXXX)"
trap 'rm -rf "$blocks"' EXIT
total=0 failed=0
for page in "${pages[@]}"; do
  dir="$blocks/${page//\//_}"
  mkdir -p "$dir"
  extract "$page" "$dir"
  for setup in $(cat "$dir"/*.meta 2>/dev/null | awk '{print $1}' | sort -u); do
    group=()
    for m in "$dir"/*.meta; do
      [[ $(awk '{print $1}' "$m") == "$setup" ]] && group+=("${m%.meta}.sh")
    done
    total=$((total + ${#group[@]}))
    echo "== $page: ${#group[@]} runnable block(s), setup $setup"
    bash "$0" --group "$setup" "$page" "${group[@]}" || failed=$((failed + 1))
  done
done
if [[ $total == 0 ]]; then
  echo "FAIL no runnable block in ${pages[*]}"
  exit 1
fi
echo "docs: $total runnable block(s), $failed page setup(s) failed"
((failed == 0))
