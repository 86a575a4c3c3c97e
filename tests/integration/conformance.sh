#!/usr/bin/env bash
# rdma-core's own verbs test suite, from Debian (python3-pyverbs ships it under
# /usr/share/doc/rdma-core/tests), unmodified, on a vdev under vrdma-run. Every test in
# conformance_pass.txt must pass (the suite checks data and error codes itself); the
# others are counted and listed (docs/verbs.md says why each is skipped or fails).
# Afterwards the vdevs hold nothing: every object the suite made was freed with it.
source "$(dirname "$0")/lib.sh"
HERE="$(cd "$(dirname "$0")" && pwd)"
SUITE_SRC=/usr/share/doc/rdma-core/tests
# At debug level the daemon says why it refused each verb (the suite's bad flows).
VRDMAD_EXTRA_ARGS="--log-level debug"
[[ -d $SUITE_SRC ]] || { fail "no $SUITE_SRC (python3-pyverbs is in scripts/install-deps)"; finish; exit 1; }
# test_parent_domain's huge-page case maps a MAP_HUGETLB page: a pool for it.
reserve_huge_pages 8 || { fail "no huge pages for the suite"; finish; exit 1; }
setup_default
# The suite's raw packet tests send frames from a made-up source MAC (utils.py's
# PacketConsts.SRC_MAC): as on a VF, the spoof check is turned off for them.
ctl dev set vdev_a spoofchk off

# Debian compresses the larger files of the documentation directory.
cp -r "$SUITE_SRC" "$WORK/suite"
gunzip -f "$WORK/suite"/*.gz
# pyverbs is built for Debian's own python3, not whatever python3 comes first in PATH.
in_ns timeout 900 "$VRDMA_RUN" -d vdev_a -- /usr/bin/python3 "$HERE/conformance_run.py" \
  "$WORK/suite" --dev vdev_a >"$WORK/results" 2>&1 || true

declare -A outcome
while read -r _ id result _; do outcome[$id]=$result; done < <(grep "^RESULT " "$WORK/results")
ran=${#outcome[@]}
if ((ran < 200)); then
  fail "the suite ran $ran tests"
  tail -30 "$WORK/results" | sed 's/^/    /'
fi

while read -r id; do
  [[ -z $id || $id == \#* ]] && continue
  if [[ ${outcome[$id]:-none} == pass ]]; then
    pass "$id"
  else
    fail "$id: ${outcome[$id]:-not run}"
    awk -v id="$id" '$0 == "TRACE " id {p = 1; next} /^(TRACE|ran) / {p = 0} p' "$WORK/results" |
      tail -n 8 | sed 's/^/    /'
  fi
done <"$HERE/conformance_pass.txt"

# The counts, and what passes without being listed yet (a test that newly passes).
passed=0 failed=0 skipped=0 new=()
for id in "${!outcome[@]}"; do
  case ${outcome[$id]} in
    pass) passed=$((passed + 1))
      grep -qx "$id" "$HERE/conformance_pass.txt" || new+=("$id") ;;
    skip) skipped=$((skipped + 1)) ;;
    *) failed=$((failed + 1)) ;;
  esac
done
echo "    rdma-core tests on vdev_a: ran $ran, passed $passed, failed or errors $failed, skipped $skipped"
grep -E "^RESULT .* (fail|error)$" "$WORK/results" | sed 's/^RESULT /    not passing: /' || true
for id in "${new[@]}"; do echo "    passes, not yet in conformance_pass.txt: $id"; done
grep "^RESULT .* skip " "$WORK/results" | cut -d' ' -f4- | sort | uniq -c | sort -rn |
  sed 's/^/    skipped: /'

# The suite's bad flows were refused with a reason in the log and counted per vdev: every
# refusal carries one, and three kinds are checked by name.
if grep -q 'event=verb_refused op=create_cq errno=EINVAL why="cqe [0-9]* outside 1\.\.[0-9]*" dev=vdev_a' \
     "$WORK/vrdmad.log" &&
   grep -q 'event=verb_refused op=query_port errno=EINVAL why="port [0-9]*: a vdev has port 1"' \
     "$WORK/vrdmad.log" &&
   grep -q 'event=verb_refused op=alloc_dm errno=ENOMEM why="device memory of [0-9]* bytes: at most' \
     "$WORK/vrdmad.log" &&
   ! grep 'event=verb_refused' "$WORK/vrdmad.log" | grep -qv ' why="' &&
   ctl stat show | grep -qE '^dev vdev_a:.* bad_requests [1-9]'; then
  pass "refused verbs say why (debug log) and are counted (bad_requests)"
else
  fail "refusals: $(grep -c verb_refused "$WORK/vrdmad.log") logged"
  grep verb_refused "$WORK/vrdmad.log" | head -5 | sed 's/^/    /'
fi

check_all_freed "every object the suite made was freed"
finish
