// A client's CQ as the daemon produces into it: the engine delivers completions here
// (a CompletionSink), the daemon writes them into the shared ring and raises completion
// events for an armed CQ on the client's channel.
#pragma once

#include <cstdint>
#include <memory>

#include "absl/status/statusor.h"
#include "driver/device.h"
#include "vdev/protocol/protocol.h"
#include "vdev/shm/ring_arena.h"
#include "vdev/shm/shared_region.h"

namespace vrdma::vdev {

class CqRing : public driver::CompletionSink {
 public:
  // `channel_fd` (owned; -1 for none) receives ib_uverbs_comp_event_desc records: the
  // daemon's end of the client's event socketpair, checked with CheckEventChannel
  // (vdev/client_fd.h); records are sent without ever blocking.
  // Its ring comes from `arena` (its context's).
  static absl::StatusOr<std::unique_ptr<CqRing>> Create(RingArena& arena, uint32_t depth,
                                                        uint64_t user_handle, int channel_fd);
  ~CqRing() override;

  // `info` (where a received packet arrived) has no place in a client's CQE: ignored.
  bool Deliver(uint64_t cookie, const ibv_wc& wc, bool solicited,
               const driver::RecvInfo* info = nullptr) override;
  // Between Hold and Release (an engine pass), CQEs are written but the producer index
  // and the arm check wait for Release: one store and one fence for the pass.
  void Hold() override { holding_ = true; }
  void Release() override;

  // The device is gone for this CQ's context: its channel reader gets EOF once it has
  // read what is queued (shutdown acts on the socket, whoever else holds it).
  void ShutdownChannel();

  // A new, larger ring holding the completions the client has not polled yet. Fails
  // (changing nothing) when they do not fit.
  absl::Status Resize(RingArena& arena, uint32_t depth);

  // Every CQE written from now on carries its time (proto::kCqTimestamps).
  void set_timestamps(bool on) { timestamps_ = on; }
  uint32_t depth() const { return depth_; }
  uint64_t user_handle() const { return user_handle_; }
  const SharedRegion& region() const { return *region_; }
  int TakeRegionFd() { return region_->TakeFd(); }
  uint64_t delivered() const { return delivered_; }
  uint64_t overruns() const { return overruns_; }
  // Completion events the channel had no room for (the client does not read it).
  uint64_t events_dropped() const { return events_dropped_; }
  static size_t RegionSize(uint32_t depth) {
    return sizeof(proto::CqShmHeader) + size_t{depth} * sizeof(proto::Cqe);
  }

  // What the CQ takes of the daemon's budget (its channel's descriptor), held while it lives.
  void HoldCharge(DaemonCharge charge) { charge_ = std::move(charge); }

 private:
  CqRing() = default;
  void Attach(std::unique_ptr<SharedRegion> region, uint32_t depth, uint32_t produced);
  // Makes the CQEs written so far visible, and raises the completion event an armed CQ
  // owes (`notify_solicited`: one of them was solicited or an error).
  void Publish(bool notify_solicited);

  std::unique_ptr<SharedRegion> region_;
  proto::CqShmHeader* header_ = nullptr;
  proto::Cqe* cqes_ = nullptr;
  uint32_t depth_ = 0;
  uint32_t produced_ = 0;  // the daemon's own copy of the producer index
  // The client's consumer index as last read: read again only when the ring looks full
  // by it (it only grows), so that a CQE costs no read of the client's cache line.
  uint32_t consumed_seen_ = 0;
  bool holding_ = false;
  uint32_t held_ = 0;            // CQEs written since Hold
  bool held_solicited_ = false;  // one of them was solicited or an error
  uint32_t arm_seen_ = 0;        // last arm_sequence answered with an event
  uint64_t user_handle_ = 0;
  bool timestamps_ = false;
  int channel_fd_ = -1;
  DaemonCharge charge_;
  uint64_t delivered_ = 0;
  uint64_t overruns_ = 0;
  uint64_t events_dropped_ = 0;
};

}  // namespace vrdma::vdev
