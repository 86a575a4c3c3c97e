// Completion queue: a ring of work completions (ibv_wc layout), each with where its
// packet arrived (RecvInfo), and the arming state of ibv_req_notify_cq (IBTA 11.4.2.2).
#pragma once

#include <infiniband/verbs.h>

#include <cstdint>

#include "driver/res/recv_info.h"
#include "driver/res/ring.h"

namespace vrdma::driver {

// Where completions of a CQ go when its consumer is outside the engine (a client's CQ
// ring in shared memory). Deliver returns false when the consumer's ring is full: a CQ
// overrun. The sink owns arming and completion events for such a CQ. `info` is where
// the packet of a receive completion arrived, null for completions no packet made; it
// lives only for the call.
class CompletionSink {
 public:
  virtual ~CompletionSink() = default;
  virtual bool Deliver(uint64_t cookie, const ibv_wc& wc, bool solicited, const RecvInfo* info) = 0;
  // While the engine runs a pass it delivers in batches: Hold before the pass's first
  // Deliver to the sink, Release once at its end, after the engine has published the
  // work queue slots those completions free. A sink may show its consumer what it was
  // given in between at Release only (one producer index store, one arm check).
  virtual void Hold() {}
  virtual void Release() {}
};

class CompletionQueue {
 public:
  enum class Notify : uint8_t { kNone, kNextCompletion, kSolicited };

  void Init(uint32_t depth) {
    depth_ = depth;
    ring_.Init(depth);
  }
  uint32_t depth() const { return depth_; }
  uint32_t size() const { return ring_.size(); }
  // The memory its own ring holds.
  uint64_t ring_bytes() const { return ring_.bytes(); }

  // Sends every completion to `s` from now on (nullptr: back to the CQ's own ring). A CQ
  // with a sink keeps no ring of its own (the sink's is the CQ, and the memory it takes
  // is charged to its owner there); without one, its first Push makes it again.
  void SetSink(CompletionSink* s, uint64_t cookie) {
    sink = s;
    sink_cookie = cookie;
    if (s && ring_.empty() && ring_.depth() != 0) {
      ring_ = Ring<Entry>();  // the slots freed, not kept as capacity
      ring_.Init(0);
    }
  }

  // Adds a completion, with where its packet arrived (null: no packet made it). Returns
  // false (and the CQ is in error) when the CQ is full: a CQ overrun is a CQ error
  // (IBTA 10.10.2.3).
  bool Push(const ibv_wc& wc, bool solicited, const RecvInfo* info = nullptr) {
    if (ring_.full() && !MakeRing()) {
      overrun_ = true;
      return false;
    }
    Entry& e = ring_.next_free();
    e.wc = wc;
    if (info) {
      e.info = *info;
    } else {
      e.info.valid = false;
    }
    ring_.Commit();
    if (notify_ == Notify::kNextCompletion ||
        (notify_ == Notify::kSolicited && (solicited || wc.status != IBV_WC_SUCCESS))) {
      notify_ = Notify::kNone;
      event_pending_ = true;
    }
    return true;
  }

  int Poll(ibv_wc* out, int n) { return Poll(out, nullptr, n); }
  // Also where each completion's packet arrived, in info[i] (valid false when none did).
  int Poll(ibv_wc* out, RecvInfo* info, int n) {
    int got = 0;
    while (got < n && !ring_.empty()) {
      if (info) info[got] = ring_.front().info;
      out[got++] = ring_.front().wc;
      ring_.Pop();
    }
    return got;
  }

  void Arm(bool solicited_only) {
    notify_ = solicited_only ? Notify::kSolicited : Notify::kNextCompletion;
  }
  // A completion event is owed to the consumer; cleared when taken.
  bool TakeEvent() {
    bool e = event_pending_;
    event_pending_ = false;
    return e;
  }
  bool overrun() const { return overrun_; }
  // Resizing keeps the completions not yet polled; fails if they do not fit.
  bool Resize(uint32_t depth) {
    if (depth < ring_.size()) return false;
    depth_ = depth;
    if (ring_.depth() == 0) return true;  // no ring of its own (SetSink): made at a Push
    Ring<Entry> fresh;
    fresh.Init(depth);
    while (!ring_.empty()) {
      fresh.next_free() = ring_.front();
      fresh.Commit();
      ring_.Pop();
    }
    ring_ = std::move(fresh);
    return true;
  }

  uint32_t owner = 0;
  uint32_t use_count = 0;          // QPs and SRQs referencing it
  CompletionSink* sink = nullptr;  // set: completions bypass the ring (SetSink)
  uint64_t sink_cookie = 0;
  // The sink holds this pass's completions (CompletionSink::Hold); the engine's list.
  bool held = false;
  CompletionQueue* next_held = nullptr;
  void MarkOverrun() { overrun_ = true; }

 private:
  // The CQ's own ring, when it has none (SetSink) and a completion comes without a sink.
  bool MakeRing() {
    if (ring_.depth() != 0 || depth_ == 0) return false;
    ring_.Init(depth_);
    return true;
  }

  struct Entry {
    ibv_wc wc;
    RecvInfo info;
  };
  uint32_t depth_ = 0;  // as asked for, whether or not the CQ's own ring holds it
  Ring<Entry> ring_;
  Notify notify_ = Notify::kNone;
  bool event_pending_ = false;
  bool overrun_ = false;
};

}  // namespace vrdma::driver
