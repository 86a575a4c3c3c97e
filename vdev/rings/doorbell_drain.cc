#include "vdev/rings/doorbell_drain.h"

#include <iterator>
#include <type_traits>

namespace vrdma::vdev {

DoorbellDrain::DoorbellDrain(driver::RoceDevice* device, DrainCounters* counters,
                             const std::unordered_map<uint32_t, uint32_t>* owned_ahs,
                             std::function<void(uint64_t, uint32_t)> on_broken)
    : device_(device),
      counters_(counters),
      owned_ahs_(owned_ahs),
      on_broken_(std::move(on_broken)) {}

const SrqRing* DoorbellDrain::FindSrq(uint32_t handle) const {
  auto it = srqs_.find(handle);
  return it == srqs_.end() ? nullptr : &it->second;
}

void DoorbellDrain::Clear() {
  qps_.clear();
  srqs_.clear();
  pending_ = false;
}

uint32_t DoorbellDrain::Drain(uint32_t budget) {
  pending_ = false;
  budget_ = budget;
  uint64_t before = counters_->send_wqes + counters_->recv_wqes;
  // One turn of the rings, QPs then SRQs, from where the last drain stopped.
  if (!resume_srq_) {
    auto start = qps_.find(resume_key_);
    if (start == qps_.end()) start = qps_.begin();
    (void)(DrainRange(qps_, start, qps_.end(), false) &&
           DrainRange(srqs_, srqs_.begin(), srqs_.end(), true) &&
           DrainRange(qps_, qps_.begin(), start, false));
  } else {
    auto start = srqs_.find(resume_key_);
    if (start == srqs_.end()) start = srqs_.begin();
    (void)(DrainRange(srqs_, start, srqs_.end(), true) &&
           DrainRange(qps_, qps_.begin(), qps_.end(), false) &&
           DrainRange(srqs_, srqs_.begin(), start, true));
  }
  return static_cast<uint32_t>(counters_->send_wqes + counters_->recv_wqes - before);
}

template <typename Map>
bool DoorbellDrain::DrainRange(Map& rings, typename Map::iterator from, typename Map::iterator to,
                               bool srqs) {
  for (auto it = from; it != to; ++it) {
    bool more;
    if constexpr (std::is_same_v<typename Map::mapped_type, QpRings>) {
      more = DrainQp(it->second);
    } else {
      more = DrainSrq(it->second);
    }
    if (more) continue;
    // The budget ran out: the next drain starts at the ring after this one (this one, if
    // it still holds WQEs, has its turn again last); after the last of one kind comes the
    // first of the other.
    pending_ = true;
    auto next = std::next(it);
    bool other_empty = srqs ? qps_.empty() : srqs_.empty();
    if (next != rings.end()) {
      resume_srq_ = srqs;
      resume_key_ = next->first;
    } else if (!other_empty) {
      resume_srq_ = !srqs;
      resume_key_ = srqs ? qps_.begin()->first : srqs_.begin()->first;
    } else {
      resume_srq_ = srqs;
      resume_key_ = rings.begin()->first;
    }
    return false;
  }
  return true;
}

bool DoorbellDrain::DrainQp(QpRings& qp) {
  if (qp.broken) return true;
  bool sq_valid = true, rq_valid = true;
  uint32_t n = qp.sq.Pending(&sq_valid);
  uint32_t m = qp.rq.depth ? qp.rq.Pending(&rq_valid) : 0;
  if (!sq_valid || !rq_valid) {
    // A producer index ahead of what the ring holds: the client broke its own queue.
    qp.broken = true;
    counters_->rejected_wqes++;
    (void)device_->RejectSend(qp.qpn, 0, IBV_WR_SEND, IBV_WC_LOC_QP_OP_ERR);
    on_broken_(qp.user_handle, IBV_EVENT_QP_FATAL);
    return true;
  }
  // Receives first: a send that draws an answer finds its receive posted.
  driver::RecvWr rwr;
  uint32_t room = qp.rq.depth ? device_->RecvQueueRoom(qp.qpn) : 0;
  for (; m && room && budget_; --m, --room, --budget_) {
    WqeCheck c = ParseRecvWqe(qp.rq.Slot(qp.rq.consumed), qp.max_recv_sge, &rwr);
    qp.rq.Consume();
    counters_->recv_wqes++;
    absl::Status st =
        c == WqeCheck::kOk ? device_->PostRecv(qp.qpn, rwr) : absl::InvalidArgumentError("bad");
    if (!st.ok()) {
      counters_->rejected_wqes++;
      (void)device_->RejectRecv(qp.qpn, rwr.wr_id, IBV_WC_LOC_QP_OP_ERR);
    }
  }
  if (m) pending_ = true;
  // Each WQE is parsed (copied, then checked) straight into the engine's send queue
  // slot, and posted from there: one copy out of the client's ring.
  room = n ? device_->SendQueueRoom(qp.qpn) : 0;
  for (; n && room && budget_; --n, --room, --budget_) {
    driver::SendWr* slot = device_->SendSlot(qp.qpn);
    if (!slot) break;  // not while room > 0
    driver::SendWr& wr = *slot;
    WqeCheck c = ParseSendWqe(qp.sq.Slot(qp.sq.consumed), qp.send_limits, &wr);
    qp.sq.Consume();
    counters_->send_wqes++;
    bool ok = c == WqeCheck::kOk;
    // UD: the AH must be one of this client's.
    if (ok && qp.type == IBV_QPT_UD && !owned_ahs_->count(wr.ah)) ok = false;
    absl::Status st = ok ? device_->PostSendSlot(qp.qpn) : absl::InvalidArgumentError("bad WQE");
    if (!st.ok()) {
      counters_->rejected_wqes++;
      (void)device_->RejectSend(qp.qpn, wr.wr_id, wr.opcode, IBV_WC_LOC_QP_OP_ERR);
    }
  }
  if (n) pending_ = true;
  return budget_ != 0;
}

bool DoorbellDrain::DrainSrq(SrqRing& srq) {
  if (srq.broken) return true;
  bool valid;
  uint32_t n = srq.ring.Pending(&valid);
  if (!valid) {
    srq.broken = true;
    counters_->rejected_wqes++;
    on_broken_(srq.user_handle, IBV_EVENT_SRQ_ERR);
    return true;
  }
  driver::RecvWr rwr;
  uint32_t room = n ? device_->SrqRoom(srq.handle) : 0;
  for (; n && room && budget_; --n, --room, --budget_) {
    WqeCheck c = ParseRecvWqe(srq.ring.Slot(srq.ring.consumed), srq.max_sge, &rwr);
    srq.ring.Consume();
    counters_->recv_wqes++;
    if (c != WqeCheck::kOk || !device_->PostSrqRecv(srq.handle, rwr).ok()) {
      counters_->rejected_wqes++;  // dropped: an SRQ WQE belongs to no QP yet
      device_->RetireSrqUnqueued(srq.handle);
    }
  }
  if (n) pending_ = true;
  return budget_ != 0;
}

}  // namespace vrdma::vdev
