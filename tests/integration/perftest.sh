#!/usr/bin/env bash
# Debian's unmodified perftest on two vdevs of the embedded default: every RC test over
# all message sizes (-a), with the ibv_wr_* API (perftest's default), with
# --use_old_post_send and with completion events (-e); SEND over UD and UC; raw packet
# QPs (raw_ethernet_bw, raw_ethernet_lat); on-demand paging (--odp).
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
# Raw packet QPs: whole Ethernet frames from vdev_a's raw packet QP, steered to vdev_b's
# by the server's flow rule (its MAC; with -J/-j/-K/-k its IPv4 addresses and UDP ports
# too). No connection between the two: the client starts once the server has its rule,
# and bandwidth runs for a duration (-D) since a frame with no receive WQE waiting is
# dropped, as on a NIC.
MAC_A=$(in_ns cat /sys/class/net/vrd0/address)
MAC_B=$(in_ns cat /sys/class/net/vrd1/address)
raw_server() { in_ns timeout 60 "$VRDMA_RUN" -d vdev_b -- "$@" -B "$MAC_B" -E "$MAC_A" --server; }
raw_client() {
  sleep 1
  in_ns timeout 60 "$VRDMA_RUN" -d vdev_a -- "$@" -B "$MAC_A" -E "$MAC_B" --client
}
# Both sides report a row whose iteration count is not zero.
raw_moved() {
  grep -qE '^ *[0-9]+ +[1-9][0-9]* +[0-9.]+' "$1" && grep -qE '^ *[0-9]+ +[1-9][0-9]* +[0-9.]+' "$2"
}
client_server raw_ethernet_bw raw_moved raw_server raw_client -- raw_ethernet_bw -D 2 -s 1024
client_server raw_ethernet_bw-udp raw_moved raw_server raw_client -- raw_ethernet_bw -D 2 -s 512 \
  -J 10.77.0.2 -j 10.77.0.1 -K 5001 -k 5002
client_server raw_ethernet_lat raw_moved raw_server raw_client -- raw_ethernet_lat -n 1000 -s 256
# On-demand paging (--odp: IBV_ACCESS_ON_DEMAND, after checking odp_caps).
for t in ib_send_bw ib_write_bw ib_read_bw; do
  run_pair "$t-odp" all_sizes -- $t -x 3 -a -n "$ITER" --odp
done
finish
