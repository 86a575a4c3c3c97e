// Table of device objects (PD, MR, CQ, SRQ, QP, AH) with O(1) allocate, free and lookup,
// up to a capacity (the device limit). Slots are made as objects are, not up front: a
// device that may hold a million QPs costs what it holds. Handles are slot indices plus a
// base; an 8-bit generation per slot makes stale memory keys detectable (the "key" byte
// of lkey/rkey). Allocate and Free run on the control path; Get on the data path.
#pragma once

#include <cstdint>
#include <memory>
#include <vector>

namespace vrdma::driver {

template <typename T>
class ObjectTable {
 public:
  // Handles run from `base` to base + capacity - 1.
  explicit ObjectTable(uint32_t capacity = 0, uint32_t base = 0) { Reset(capacity, base); }

  void Reset(uint32_t capacity, uint32_t base) {
    slots_.clear();
    slots_.shrink_to_fit();
    free_.clear();
    free_.shrink_to_fit();
    capacity_ = capacity;
    base_ = base;
    in_use_ = 0;
  }

  // Returns the new object's handle, or nullptr when the table is full. A freed slot is
  // used again before a new one is made (lowest handles first, as before any was freed).
  T* Allocate(uint32_t* handle) {
    uint32_t idx;
    if (!free_.empty()) {
      idx = free_.back();
      free_.pop_back();
    } else if (slots_.size() < capacity_) {
      idx = static_cast<uint32_t>(slots_.size());
      slots_.emplace_back();
    } else {
      return nullptr;
    }
    Slot& s = slots_[idx];
    s.obj = std::make_unique<T>();
    s.generation = static_cast<uint8_t>(s.generation + 1);
    ++in_use_;
    *handle = base_ + idx;
    return s.obj.get();
  }

  void Free(uint32_t handle) {
    uint32_t idx = handle - base_;
    if (idx >= slots_.size() || !slots_[idx].obj) return;
    slots_[idx].obj.reset();
    free_.push_back(idx);
    --in_use_;
  }

  T* Get(uint32_t handle) const {
    uint32_t idx = handle - base_;
    if (idx >= slots_.size()) return nullptr;
    return slots_[idx].obj.get();
  }

  uint8_t Generation(uint32_t handle) const {
    uint32_t idx = handle - base_;
    return idx < slots_.size() ? slots_[idx].generation : 0;
  }
  uint32_t in_use() const { return in_use_; }
  uint32_t capacity() const { return capacity_; }
  uint32_t base() const { return base_; }

  template <typename F>
  void ForEach(F&& f) const {
    for (uint32_t i = 0; i < slots_.size(); ++i)
      if (slots_[i].obj) f(base_ + i, *slots_[i].obj);
  }

 private:
  struct Slot {
    std::unique_ptr<T> obj;
    uint8_t generation = 0;
  };
  std::vector<Slot> slots_;
  std::vector<uint32_t> free_;  // slots made and freed since
  uint32_t capacity_ = 0;
  uint32_t base_ = 0;
  uint32_t in_use_ = 0;
};

}  // namespace vrdma::driver
