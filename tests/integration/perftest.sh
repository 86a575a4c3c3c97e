#!/usr/bin/env bash
# Debian's unmodified perftest on two vdevs of the embedded default: every RC test over
# all message sizes (-a), with the ibv_wr_* API (perftest's default), with
# --use_old_post_send and with completion events (-e); SEND over UD and UC; on-demand
# paging (--odp).
source "$(dirname "$0")/lib.sh"
setup_default

# Both sides report a result line per size; the bandwidth/latency columns are numbers.
rows() { grep -cE '^ *[0-9]+ +[0-9]+ +[0-9.]+' "$1" || true; }
all_sizes() { [[ $(rows "$2") -ge 20 ]]; }
one_size() { [[ $(rows "$2") -ge 1 ]]; }

ITER=${VRDMA_PERFTEST_ITERS:-100}
for t in ib_send_bw ib_send_lat ib_write_bw ib_write_lat ib_read_bw ib_read_lat; do
  run_pair "$t" all_sizes -- $t -x 3 -a -n "$ITER"
  run_pair "$t-old_post_send" all_sizes -- $t -x 3 -a -n "$ITER" --use_old_post_send
  case $t in
    ib_send_bw|ib_read_bw|ib_send_lat) run_pair "$t-events" all_sizes -- $t -x 3 -a -n "$ITER" -e ;;
  esac
done
for t in ib_atomic_bw ib_atomic_lat; do
  run_pair "$t-fetch_add" one_size -- $t -x 3 -n "$ITER" -A FETCH_AND_ADD
  run_pair "$t-cmp_swap" one_size -- $t -x 3 -n "$ITER" -A CMP_AND_SWAP
  run_pair "$t-old_post_send" one_size -- $t -x 3 -n "$ITER" --use_old_post_send
done
run_pair ib_atomic_bw-events one_size -- ib_atomic_bw -x 3 -n "$ITER" -e
# UD messages are limited to the path MTU: sizes 2..4096.
ud_sizes() { [[ $(rows "$2") -ge 11 ]]; }
run_pair ib_send_bw-UD ud_sizes -- ib_send_bw -x 3 -c UD -a -n "$ITER"
run_pair ib_send_lat-UD ud_sizes -- ib_send_lat -x 3 -c UD -a -n "$ITER"
run_pair ib_send_bw-UC all_sizes -- ib_send_bw -x 3 -c UC -a -n "$ITER"
run_pair ib_send_lat-UC all_sizes -- ib_send_lat -x 3 -c UC -a -n "$ITER"
run_pair ib_write_bw-UC all_sizes -- ib_write_bw -x 3 -c UC -a -n "$ITER"
# On-demand paging (--odp: IBV_ACCESS_ON_DEMAND, after checking odp_caps).
for t in ib_send_bw ib_write_bw ib_read_bw; do
  run_pair "$t-odp" all_sizes -- $t -x 3 -a -n "$ITER" --odp
done
finish
