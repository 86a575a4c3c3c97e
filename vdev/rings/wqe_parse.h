// WQEs read out of a client's shared rings: each slot is copied to daemon memory first,
// then checked against the queue's limits, then turned into the engine's work request.
// The client may rewrite a slot at any time; nothing is read from it twice.
#pragma once

#include <cstdint>

#include "driver/device.h"

namespace vrdma::vdev {

struct SendQueueLimits {
  uint32_t stride = 0;  // bytes per slot
  uint32_t max_sge = 0;
  uint32_t max_inline = 0;
};

enum class WqeCheck : uint8_t { kOk, kBadOpcode, kBadFlags, kTooManySges, kInlineTooLong };

// Copies the slot at `slot` (stride bytes of shared memory) into *out.
WqeCheck ParseSendWqe(const uint8_t* slot, const SendQueueLimits& limits, driver::SendWr* out);
// Copies a receive slot (header plus max_sge SGEs at most).
WqeCheck ParseRecvWqe(const uint8_t* slot, uint32_t max_sge, driver::RecvWr* out);

const char* WqeCheckName(WqeCheck c);

}  // namespace vrdma::vdev
