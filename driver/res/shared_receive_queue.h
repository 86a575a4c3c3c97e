// Shared receive queue with its limit event (IBTA 10.2.9.4: when the number of WQEs
// drops below an armed limit, one SRQ Limit Reached event fires and disarms it).
#pragma once

#include <cstdint>

#include "driver/res/ring.h"
#include "driver/res/work_request.h"

namespace vrdma::driver {

struct SharedReceiveQueue {
  uint32_t pd = 0;
  // An XRC SRQ (IBTA annex A14) belongs to an XRC domain; the messages of every XRC
  // receive QP of that domain that name it take its WQEs, complete on its CQ and are
  // checked against its PD.
  bool xrc = false;
  uint32_t xrcd = 0;
  uint32_t cq = 0;
  // A receive work queue (ibv_create_wq): receives for the receive-side scaling QPs whose
  // indirection tables name it, completes on its own CQ, and only while ready
  // (ibv_modify_wq to IBV_WQS_RDY).
  bool wq = false;
  bool ready = false;
  uint32_t tables = 0;  // indirection tables naming it
  uint32_t max_sge = 0;
  uint32_t limit = 0;  // armed when non-zero
  uint32_t owner = 0;
  uint32_t use_count = 0;  // QPs attached
  Ring<RecvWr> wqes;
  // Its retired count waits for the end of the engine's pass, as a QP's queues' do
  // (RoceDevice::HoldRetired): one store for the pass's pops, not one per WQE.
  bool retired_held = false;
  SharedReceiveQueue* next_retired = nullptr;
};

}  // namespace vrdma::driver
