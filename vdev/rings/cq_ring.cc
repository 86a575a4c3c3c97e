#include "vdev/rings/cq_ring.h"

#include <sys/socket.h>
#include <unistd.h>

#include <atomic>

#include "vdev/client_fd.h"
#include "vdev/monotonic.h"

namespace vrdma::vdev {

absl::StatusOr<std::unique_ptr<CqRing>> CqRing::Create(RingArena& arena, uint32_t depth,
                                                       uint64_t user_handle, int channel_fd) {
  absl::StatusOr<std::unique_ptr<SharedRegion>> region = arena.Allocate(RegionSize(depth));
  if (!region.ok()) {
    if (channel_fd >= 0) close(channel_fd);
    return region.status();
  }
  std::unique_ptr<CqRing> cq(new CqRing());
  cq->user_handle_ = user_handle;
  cq->channel_fd_ = channel_fd;
  cq->Attach(std::move(*region), depth, 0);
  return cq;
}

CqRing::~CqRing() {
  if (channel_fd_ >= 0) close(channel_fd_);
}

void CqRing::Attach(std::unique_ptr<SharedRegion> region, uint32_t depth, uint32_t produced) {
  region_ = std::move(region);
  header_ = reinterpret_cast<proto::CqShmHeader*>(region_->data());
  cqes_ = reinterpret_cast<proto::Cqe*>(region_->data() + sizeof(proto::CqShmHeader));
  depth_ = depth;
  produced_ = produced;
  consumed_seen_ = header_->ring.consumer.value.load(std::memory_order_acquire);
  header_->ring.producer.value.store(produced, std::memory_order_release);
  arm_seen_ = header_->arm.arm_sequence.load(std::memory_order_relaxed);
}

bool CqRing::Deliver(uint64_t, const ibv_wc& wc, bool solicited, const driver::RecvInfo*) {
  // The consumer index is the client's: a value that makes no sense reads as "full",
  // which only ever hurts that client's own CQ.
  if (produced_ - consumed_seen_ >= depth_) {
    consumed_seen_ = header_->ring.consumer.value.load(std::memory_order_acquire);
    if (produced_ - consumed_seen_ >= depth_) {
      ++overruns_;
      return false;
    }
  }
  proto::Cqe& c = cqes_[produced_ & (depth_ - 1)];
  c.wr_id = wc.wr_id;
  c.status = wc.status;
  c.opcode = wc.opcode;
  c.vendor_err = wc.vendor_err;
  c.byte_len = wc.byte_len;
  c.imm_data = wc.imm_data;
  c.qp_num = wc.qp_num;
  c.src_qp = wc.src_qp;
  c.wc_flags = wc.wc_flags;
  c.pkey_index = wc.pkey_index;
  c.slid = wc.slid;
  c.sl = wc.sl;
  c.dlid_path_bits = wc.dlid_path_bits;
  if (timestamps_) c.timestamp = MonotonicNs();
  ++produced_;
  ++delivered_;
  // IBTA 11.4.2.2: a solicited-only CQ fires on a solicited or an error completion.
  const bool notify_solicited = solicited || wc.status != IBV_WC_SUCCESS;
  if (holding_) {
    ++held_;
    held_solicited_ |= notify_solicited;
    return true;
  }
  Publish(notify_solicited);
  return true;
}

void CqRing::Release() {
  holding_ = false;
  if (held_) Publish(held_solicited_);
  held_ = 0;
  held_solicited_ = false;
}

void CqRing::Publish(bool notify_solicited) {
  header_->ring.producer.value.store(produced_, std::memory_order_release);
  // Pairs with the client's fence between bumping arm_sequence and reading the producer
  // index: either it sees this CQE, or we see its arm.
  std::atomic_thread_fence(std::memory_order_seq_cst);
  uint32_t seq = header_->arm.arm_sequence.load(std::memory_order_relaxed);
  if (seq == arm_seen_) return;
  bool solicited_only = header_->arm.arm_solicited.load(std::memory_order_relaxed) != 0;
  if (solicited_only && !notify_solicited) return;
  arm_seen_ = seq;
  if (channel_fd_ < 0) return;
  uint64_t record = user_handle_;  // struct ib_uverbs_comp_event_desc
  // Never blocks (client_fd.h). A client that does not read its channel loses this
  // notification and nothing else: the CQE is in the ring, and the CQ overruns
  // (IBV_EVENT_CQ_ERR) only when the ring itself is full. The kernel queues
  // completion events on a list per channel and drops one when it cannot allocate
  // its entry (ib_uverbs_comp_handler); here the bound is the socket's buffer.
  if (!SendEventRecord(channel_fd_, &record, sizeof record)) ++events_dropped_;
}

void CqRing::ShutdownChannel() {
  if (channel_fd_ >= 0) shutdown(channel_fd_, SHUT_WR);
}

absl::Status CqRing::Resize(RingArena& arena, uint32_t depth) {
  uint32_t consumed = header_->ring.consumer.value.load(std::memory_order_acquire);
  uint32_t pending = produced_ - consumed;
  if (pending > depth_) pending = 0;  // nonsense from the client: nothing to keep
  if (pending > depth) {
    return absl::FailedPreconditionError("more completions pending than the new CQ holds");
  }
  absl::StatusOr<std::unique_ptr<SharedRegion>> region = arena.Allocate(RegionSize(depth));
  if (!region.ok()) return region.status();
  auto* dst = reinterpret_cast<proto::Cqe*>((*region)->data() + sizeof(proto::CqShmHeader));
  for (uint32_t i = 0; i < pending; ++i) dst[i] = cqes_[(consumed + i) & (depth_ - 1)];
  uint32_t seq = header_->arm.arm_sequence.load(std::memory_order_relaxed);
  auto* h = reinterpret_cast<proto::CqShmHeader*>((*region)->data());
  h->arm.arm_sequence.store(seq == arm_seen_ ? 0 : 1, std::memory_order_relaxed);
  h->arm.arm_solicited.store(header_->arm.arm_solicited.load(), std::memory_order_relaxed);
  Attach(std::move(*region), depth, pending);
  arm_seen_ = 0;
  return absl::OkStatus();
}

}  // namespace vrdma::vdev
