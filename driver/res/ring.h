// Fixed-capacity FIFO of work queue entries with free-running 32-bit indices.
#pragma once

#include <atomic>
#include <cstdint>
#include <vector>

namespace vrdma::driver {

inline uint32_t RoundUpPow2(uint32_t v) {
  uint32_t p = 1;
  while (p < v) p <<= 1;
  return p;
}

template <typename T>
class Ring {
 public:
  void Init(uint32_t min_capacity) {
    uint32_t cap = RoundUpPow2(min_capacity < 1 ? 1 : min_capacity);
    slots_.assign(cap, T{});
    mask_ = cap - 1;
    head_ = tail_ = 0;
    limit_ = min_capacity;
    unqueued_ = 0;
    retired_out_ = nullptr;  // a reused slot publishes nowhere until told
  }
  // Where to publish how many entries have left the queue (popped, cleared, dropped, or
  // refused without being queued: RetireUnqueued), for a producer elsewhere that must not
  // hold more than depth() outstanding (a client's post_send/post_recv: ENOMEM). Counted
  // from the entries committed since Init.
  void PublishRetiredTo(std::atomic<uint32_t>* counter) {
    retired_out_ = counter;
    Publish();
  }
  // An entry the producer gave that never made it into the queue (refused at once).
  void RetireUnqueued() {
    ++unqueued_;
    Publish();
  }
  // The memory its slots take.
  uint64_t bytes() const { return uint64_t{slots_.capacity()} * sizeof(T); }
  // Usable depth is what was asked for, not the rounded capacity.
  uint32_t depth() const { return limit_; }
  uint32_t size() const { return tail_ - head_; }
  bool empty() const { return head_ == tail_; }
  bool full() const { return size() >= limit_; }

  T& at(uint32_t index) { return slots_[index & mask_]; }
  const T& at(uint32_t index) const { return slots_[index & mask_]; }
  T& front() { return at(head_); }
  const T& front() const { return at(head_); }
  // Slot to fill, then Commit().
  T& next_free() { return at(tail_); }
  void Commit() { ++tail_; }
  void Pop() {
    ++head_;
    Publish();
  }
  // Pop for a caller that publishes later (PublishRetired), before anything can tell
  // the producer that the entry has gone (its completion): one store for many pops.
  void PopUnpublished() { ++head_; }
  void PublishRetired() { Publish(); }
  void Clear() {
    head_ = tail_;
    Publish();
  }
  // Drops the entries from `index` (between head and tail) to the tail.
  void DropFrom(uint32_t index) {
    unqueued_ += tail_ - index;
    tail_ = index;
    Publish();
  }

  uint32_t head() const { return head_; }
  uint32_t tail() const { return tail_; }

 private:
  // Entries retired = committed (tail_, plus those dropped from the tail) less those
  // still queued: head_ plus what never stayed. One plain store, no read-modify-write.
  void Publish() {
    if (retired_out_) retired_out_->store(head_ + unqueued_, std::memory_order_release);
  }

  std::vector<T> slots_;
  std::atomic<uint32_t>* retired_out_ = nullptr;
  uint32_t unqueued_ = 0;
  uint32_t mask_ = 0;
  uint32_t head_ = 0;
  uint32_t tail_ = 0;
  uint32_t limit_ = 0;
};

}  // namespace vrdma::driver
