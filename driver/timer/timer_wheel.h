// Timing wheel for per-QP timers (local ACK timeout, RNR timer): O(1) arm and cancel,
// O(1) per expiry, driven by the engine loop with explicit time. No allocation after
// construction and no system calls.
//
// One wheel of kSlots slots, kTickNs each. A timer further away than one revolution
// sits in its slot and is passed over until its time comes (its expiry is compared,
// so it costs one check per revolution). Expiry is never early; it is as late as the
// engine's next Advance after the deadline.
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

namespace vrdma::driver {

struct TimerNode {
  void* data = nullptr;  // owner (the QP)
  // Intrusive list links, valid while armed.
  TimerNode* prev = nullptr;
  TimerNode* next = nullptr;
  uint64_t expire_ns = 0;
  bool armed = false;
};

class TimerWheel {
 public:
  // 4.096 us is the IBTA timeout unit (4.096 us * 2^timeout); a tick of 4 ticks of
  // that keeps the shortest real timeouts (~16 us) accurate to one tick.
  static constexpr uint64_t kTickNs = 16384;
  static constexpr uint32_t kSlots = 4096;  // one revolution ~ 67 ms

  TimerWheel();

  void Arm(TimerNode* node, uint64_t expire_ns);
  void Cancel(TimerNode* node);
  bool IsArmed(const TimerNode* node) const { return node->armed; }
  size_t armed_count() const { return armed_; }

  // Fires every timer due at or before now_ns, slot by slot in tick order. The callback
  // may arm or cancel any timer, including the one firing.
  template <typename F>
  void Advance(uint64_t now_ns, F&& fire) {
    uint64_t target = now_ns / kTickNs;
    if (armed_ == 0 || target < current_tick_) {
      if (target > current_tick_) current_tick_ = target;
      return;
    }
    // After a long pause, one pass over every slot finds all that is due.
    uint64_t last = target - current_tick_ >= kSlots ? current_tick_ + kSlots - 1 : target;
    for (uint64_t t = current_tick_; t <= last && armed_ > 0; ++t) {
      FireDue(slots_[t & (kSlots - 1)], now_ns, fire);
    }
    current_tick_ = target;
  }

 private:
  template <typename F>
  void FireDue(TimerNode& head, uint64_t now_ns, F& fire) {
    // Move what is due to a local list first, so callbacks can re-arm freely.
    TimerNode due;
    due.prev = due.next = &due;
    for (TimerNode* n = head.next; n != &head;) {
      TimerNode* nx = n->next;
      if (n->expire_ns <= now_ns) {  // later revolutions stay in the slot
        Unlink(n);
        n->prev = due.prev;
        n->next = &due;
        due.prev->next = n;
        due.prev = n;
      }
      n = nx;
    }
    while (due.next != &due) {
      TimerNode* n = due.next;
      Unlink(n);
      n->armed = false;
      --armed_;
      fire(n);
    }
  }

  static void Unlink(TimerNode* n) {
    n->prev->next = n->next;
    n->next->prev = n->prev;
    n->prev = n->next = nullptr;
  }

  std::vector<TimerNode> slots_;  // list heads
  uint64_t current_tick_ = 0;
  size_t armed_ = 0;
};

}  // namespace vrdma::driver
