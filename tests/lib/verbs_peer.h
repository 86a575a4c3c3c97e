// Helpers of the verbs test programs (tests/integration/verbs_check.cc, import_check.cc):
// the two vdevs of one vrdmad (vdev_a, vdev_b), opened and connected through the public
// libibverbs API only, as applications do.
#pragma once

#include <gtest/gtest.h>
#include <infiniband/verbs.h>

#include <chrono>
#include <cstdlib>
#include <cstring>

namespace vrdma::testing {

// The GID index both vdevs use: 3 (::ffff:10.77.0.x, RoCEv2) unless VRDMA_GID_INDEX
// names another (the two-host test runs RoCEv2 over IPv6 and RoCEv1 too).
inline int GidIndex() {
  const char* env = std::getenv("VRDMA_GID_INDEX");
  return env && *env ? std::atoi(env) : 3;
}
inline ibv_context* OpenByName(const char* name) {
  int n = 0;
  ibv_device** list = ibv_get_device_list(&n);
  ibv_context* ctx = nullptr;
  for (int i = 0; i < n && list; ++i) {
    if (std::strcmp(ibv_get_device_name(list[i]), name) == 0) ctx = ibv_open_device(list[i]);
  }
  if (list) ibv_free_device_list(list);
  return ctx;
}

inline bool PollOne(ibv_cq* cq, ibv_wc* wc, int timeout_ms = 5000) {
  auto end = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms);
  while (std::chrono::steady_clock::now() < end) {
    int n = ibv_poll_cq(cq, 1, wc);
    if (n < 0) return false;
    if (n == 1) return true;
  }
  return false;
}

inline void ToInit(ibv_qp* qp, ibv_qp_type type) {
  ibv_qp_attr a{};
  a.qp_state = IBV_QPS_INIT;
  a.port_num = 1;
  a.pkey_index = 0;
  int mask = IBV_QP_STATE | IBV_QP_PKEY_INDEX | IBV_QP_PORT;
  if (type == IBV_QPT_UD) {
    a.qkey = 0x11111111;
    mask |= IBV_QP_QKEY;
  } else {
    a.qp_access_flags =
        IBV_ACCESS_REMOTE_WRITE | IBV_ACCESS_REMOTE_READ |
        (type == IBV_QPT_RC || type == IBV_QPT_XRC_RECV ? IBV_ACCESS_REMOTE_ATOMIC : 0);
    mask |= IBV_QP_ACCESS_FLAGS;
  }
  ASSERT_EQ(ibv_modify_qp(qp, &a, mask), 0);
}

// `qp` (of `type`) to RTS towards `peer_qpn` at `peer_gid`. RC and the XRC receive QP
// take the responder's attributes, RC and the XRC send QP the requester's (IBTA 11.2.4.2).
inline void ConnectTo(ibv_qp* qp, ibv_qp_type type, uint32_t peer_qpn, const ibv_gid& peer_gid) {
  ToInit(qp, type);
  const bool responder = type == IBV_QPT_RC || type == IBV_QPT_XRC_RECV;
  const bool requester = type == IBV_QPT_RC || type == IBV_QPT_XRC_SEND;
  ibv_qp_attr a{};
  a.qp_state = IBV_QPS_RTR;
  a.path_mtu = IBV_MTU_1024;
  a.dest_qp_num = peer_qpn;
  a.rq_psn = 100;
  a.ah_attr.is_global = 1;
  a.ah_attr.grh.dgid = peer_gid;
  a.ah_attr.grh.sgid_index = GidIndex();
  a.ah_attr.grh.hop_limit = 64;
  a.ah_attr.port_num = 1;
  int mask = IBV_QP_STATE | IBV_QP_PATH_MTU | IBV_QP_DEST_QPN | IBV_QP_RQ_PSN | IBV_QP_AV;
  if (responder) {
    a.max_dest_rd_atomic = 16;
    a.min_rnr_timer = 1;
    mask |= IBV_QP_MAX_DEST_RD_ATOMIC | IBV_QP_MIN_RNR_TIMER;
  }
  ASSERT_EQ(ibv_modify_qp(qp, &a, mask), 0);
  a = ibv_qp_attr{};
  a.qp_state = IBV_QPS_RTS;
  a.sq_psn = 100;
  a.timeout = 14;
  mask = IBV_QP_STATE | IBV_QP_SQ_PSN | IBV_QP_TIMEOUT;
  if (requester) {
    a.retry_cnt = 7;
    a.rnr_retry = 7;
    a.max_rd_atomic = 16;
    mask |= IBV_QP_RETRY_CNT | IBV_QP_RNR_RETRY | IBV_QP_MAX_QP_RD_ATOMIC;
  }
  ASSERT_EQ(ibv_modify_qp(qp, &a, mask), 0);
}

}  // namespace vrdma::testing
