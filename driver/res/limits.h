// RoceDevice limits: what query_device reports and what every table is sized by.
#pragma once

#include <cstdint>

namespace vrdma::driver {

// Compile-time bounds of one WQE (the engine keeps WQEs in fixed-size slots).
inline constexpr uint32_t kMaxSgePerWqe = 16;
inline constexpr uint32_t kMaxInlineData = 256;

// The object counts are Linux rdma_rxe's (rxe_param.h), which MPI and UCX at scale are
// sized against; tables grow as objects are made (ObjectTable), and what a vdev may hold
// is its quota. Queue depths cost daemon memory, charged to the vdev (ring_bytes).
struct DeviceLimits {
  uint32_t max_pd = 1048576;
  uint32_t max_mr = 524287;  // an MR's key carries its index in 24 bits
  uint32_t max_mw = 524287;
  uint64_t max_mr_size = 1ull << 40;
  uint32_t max_cq = 1048576;
  uint32_t max_cqe = 65536;
  uint32_t max_qp = 1048560;  // QPNs 16 .. 2^20 - 1
  uint32_t max_qp_wr = 1048576;
  uint32_t max_sge = kMaxSgePerWqe;
  uint32_t max_inline_data = kMaxInlineData;
  uint32_t max_srq = 262144;
  uint32_t max_srq_wr = 1048576;
  uint32_t max_srq_sge = kMaxSgePerWqe;
  uint32_t max_xrcd = 4096;
  uint32_t max_ah = 1048576;
  // ibv_query_device(3): max_qp_rd_atom bounds the reads/atomics a QP serves as the
  // target (max_dest_rd_atomic: responder resources, one saved response each);
  // max_qp_init_rd_atom the ones it has outstanding as the initiator (max_rd_atomic: a
  // counter). The initiator depth is rdma_rxe's (128): perftest sets max_rd_atomic to
  // the peer's max_qp_rd_atom, so a smaller one fails against rxe.
  uint32_t max_qp_rd_atom = 16;
  uint32_t max_qp_init_rd_atom = 128;
  uint32_t gid_table_len = 16;
  uint32_t max_send_window = 1024;  // unacknowledged packets in flight per RC QP
};

}  // namespace vrdma::driver
