#include "driver/timer/timer_wheel.h"

namespace vrdma::driver {

TimerWheel::TimerWheel() : slots_(kSlots) {
  for (TimerNode& head : slots_) head.prev = head.next = &head;
}

void TimerWheel::Arm(TimerNode* node, uint64_t expire_ns) {
  if (node->armed) Cancel(node);
  uint64_t tick = expire_ns / kTickNs;
  // A deadline already in the past goes in the current slot: due at the next Advance.
  if (tick < current_tick_) tick = current_tick_;
  TimerNode& head = slots_[tick & (kSlots - 1)];
  node->expire_ns = expire_ns;
  node->next = &head;
  node->prev = head.prev;
  head.prev->next = node;
  head.prev = node;
  node->armed = true;
  ++armed_;
}

void TimerWheel::Cancel(TimerNode* node) {
  if (!node->armed) return;
  Unlink(node);
  node->armed = false;
  --armed_;
}

}  // namespace vrdma::driver
