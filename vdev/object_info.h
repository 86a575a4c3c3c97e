// What a client context holds, one record per object, as `rdma res show qp|cq|mr|pd`
// lists it: read by the admin commands, filled by Session::ListObjects.
#pragma once

#include <cstdint>

#include "vdev/vdev.h"

namespace vrdma::vdev {

struct ObjectInfo {
  Resource kind = Resource::kQp;  // kQp, kCq, kMr, kPd, kSrq or kAh
  uint32_t id = 0;                // QPN, CQN, MR lkey, PD / SRQ / AH handle
  uint32_t pd = 0;                // the PD of a QP, MR, SRQ or AH
  // QP: its type (IBV_QPT_*), state (IBV_QPS_*), destination QPN and PSNs.
  int qp_type = 0;
  int qp_state = 0;
  uint32_t dest_qpn = 0;
  uint32_t sq_psn = 0;
  uint32_t rq_psn = 0;
  // CQ: its depth. SRQ: its depth.
  uint32_t cqe = 0;
  // MR: keys and length.
  uint32_t lkey = 0;
  uint32_t rkey = 0;
  uint64_t length = 0;
  // PD: objects created on it; CQ: QPs completing to it.
  uint32_t users = 0;
};

}  // namespace vrdma::vdev
