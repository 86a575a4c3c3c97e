// The daemon's side of a client's send and receive rings (QP SQ/RQ, SRQ): it consumes
// what the client produced, hands each WQE to the engine, and publishes its consumer
// index so the client can reuse the slots.
#pragma once

#include <cstdint>

#include "vdev/protocol/protocol.h"

namespace vrdma::vdev {

struct RingView {
  proto::RingShmHeader* header = nullptr;
  uint8_t* slots = nullptr;
  uint32_t depth = 0;  // power of two; 0 for a queue that does not exist
  uint32_t stride = 0;
  uint32_t consumed = 0;  // the daemon's own consumer index (never read back)

  // WQEs the client has produced and the daemon not yet taken; `valid` false when the
  // producer index is impossible (ahead by more than the ring holds).
  uint32_t Pending(bool* valid) const {
    uint32_t produced = header->producer.value.load(std::memory_order_acquire);
    uint32_t n = produced - consumed;
    *valid = n <= depth;
    return *valid ? n : 0;
  }
  const uint8_t* Slot(uint32_t index) const { return slots + size_t{index & (depth - 1)} * stride; }
  void Consume() {
    ++consumed;
    header->consumer.value.store(consumed, std::memory_order_release);
  }
};

}  // namespace vrdma::vdev
