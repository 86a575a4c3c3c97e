#!/usr/bin/env bash
# Issue 14: huge-page memory registers on a vdev as on a NIC, and moves the right bytes.
#   1. verbs_check's HugePages case: System V SHM_HUGETLB, MAP_SHARED and MAP_PRIVATE
#      MAP_HUGETLB, an MFD_HUGETLB memfd, and hugetlbfs files mapped shared and private;
#      RDMA READ and WRITE across a huge-page boundary, from a registration that starts
#      and ends inside huge pages, data checked; private pages keep what was written
#      once deregistered.
#   2. Debian's perftest with --use_hugepages (its buffers are SHM_HUGETLB segments), which
#      failed with "Couldn't allocate MR" before.
#   3. Every huge page given back once the clients are gone.
# The pool: vm.nr_hugepages grows for the test if it has too few free (and shrinks back).
source "$(dirname "$0")/lib.sh"
reserve_huge_pages 48 || { fail "no huge pages for the test"; finish; exit 1; }
mount_hugetlbfs "$WORK/huge" "pagesize=2M,mode=0700"
setup_default
free_before=$(free_huge_pages)

if in_ns env VRDMA_REQUIRE_HUGEPAGES=1 VRDMA_HUGETLBFS="$WORK/huge" "$VRDMA_RUN" -- \
     "$VRDMA_BUILD/tests/integration/verbs_check" --gtest_color=no --gtest_filter='*HugePages*' \
     >"$WORK/verbs_check.log" 2>&1; then
  pass "every kind of huge-page memory registers; READ and WRITE across huge pages, data checked"
else
  fail "verbs_check HugePages"; tail -40 "$WORK/verbs_check.log"
fi

rows() { grep -cE '^ *[0-9]+ +[0-9]+ +[0-9.]+' "$1" || true; }
all_sizes() { [[ $(rows "$2") -ge 20 ]]; }
# perftest will not report when its TSC disagrees with gettimeofday under load
# ("Correlation coefficient r^2 < 0.9", "Can't produce a report": its get_clock.c; seen
# 1 run in 5 with a build beside it), which says nothing of the device: such a run goes
# again, at most 3 runs, each said with RETRY. Any other failure counts at once.
perftest_pair() {
  local name=$1 before=$FAILURES run
  for run in 1 2 3; do
    run_pair "$@" >"$WORK/$name.out"
    if ((FAILURES == before || run == 3)) || ! grep -q "Can't produce a report" "$WORK/$name.out"; then
      cat "$WORK/$name.out"
      return 0
    fi
    FAILURES=$before
    sed "s/^FAIL /RETRY (perftest's clock check, run $run) /" "$WORK/$name.out"
  done
}
for t in ib_write_bw ib_read_bw ib_send_bw; do
  perftest_pair "$t-use_hugepages" all_sizes -- $t -x 3 -a -n 50 --use_hugepages
done
if grep -q "reg_mr_refused" "$WORK/vrdmad.log"; then
  fail "a registration was refused"; grep "reg_mr_refused" "$WORK/vrdmad.log" | head -5
fi

sleep 0.3
check_all_freed "resources freed"
free_after=$(free_huge_pages)
if [[ $free_after == "$free_before" ]]; then
  pass "every huge page given back ($free_after free)"
else
  fail "huge pages free: $free_before before, $free_after after"
fi
finish
