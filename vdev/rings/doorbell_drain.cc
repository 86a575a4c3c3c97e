#include "vdev/rings/doorbell_drain.h"

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

uint32_t DoorbellDrain::Drain() {
  pending_ = false;
  uint64_t before = counters_->send_wqes + counters_->recv_wqes;
  for (auto& [qpn, qp] : qps_) DrainQp(qp);
  for (auto& [h, srq] : srqs_) DrainSrq(srq);
  return static_cast<uint32_t>(counters_->send_wqes + counters_->recv_wqes - before);
}

void DoorbellDrain::DrainQp(QpRings& qp) {
  if (qp.broken) return;
  bool sq_valid = true, rq_valid = true;
  uint32_t n = qp.sq.Pending(&sq_valid);
  uint32_t m = qp.rq.depth ? qp.rq.Pending(&rq_valid) : 0;
  if (!sq_valid || !rq_valid) {
    // A producer index ahead of what the ring holds: the client broke its own queue.
    qp.broken = true;
    counters_->rejected_wqes++;
    (void)device_->RejectSend(qp.qpn, 0, IBV_WR_SEND, IBV_WC_LOC_QP_OP_ERR);
    on_broken_(qp.user_handle, IBV_EVENT_QP_FATAL);
    return;
  }
  driver::SendWr wr;
  uint32_t room = device_->SendQueueRoom(qp.qpn);
  for (; n && room; --n, --room) {
    WqeCheck c = ParseSendWqe(qp.sq.Slot(qp.sq.consumed), qp.send_limits, &wr);
    qp.sq.Consume();
    counters_->send_wqes++;
    bool ok = c == WqeCheck::kOk;
    // UD: the AH must be one of this client's.
    if (ok && qp.type == IBV_QPT_UD && !owned_ahs_->count(wr.ah)) ok = false;
    absl::Status st = ok ? device_->PostSend(qp.qpn, wr) : absl::InvalidArgumentError("bad WQE");
    if (!st.ok()) {
      counters_->rejected_wqes++;
      (void)device_->RejectSend(qp.qpn, wr.wr_id, wr.opcode, IBV_WC_LOC_QP_OP_ERR);
    }
  }
  if (n) pending_ = true;
  driver::RecvWr rwr;
  room = qp.rq.depth ? device_->RecvQueueRoom(qp.qpn) : 0;
  for (; m && room; --m, --room) {
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
}

void DoorbellDrain::DrainSrq(SrqRing& srq) {
  if (srq.broken) return;
  bool valid;
  uint32_t n = srq.ring.Pending(&valid);
  if (!valid) {
    srq.broken = true;
    counters_->rejected_wqes++;
    on_broken_(srq.user_handle, IBV_EVENT_SRQ_ERR);
    return;
  }
  driver::RecvWr rwr;
  uint32_t room = device_->SrqRoom(srq.handle);
  for (; n && room; --n, --room) {
    WqeCheck c = ParseRecvWqe(srq.ring.Slot(srq.ring.consumed), srq.max_sge, &rwr);
    srq.ring.Consume();
    counters_->recv_wqes++;
    if (c != WqeCheck::kOk || !device_->PostSrqRecv(srq.handle, rwr).ok()) {
      counters_->rejected_wqes++;  // dropped: an SRQ WQE belongs to no QP yet
    }
  }
  if (n) pending_ = true;
}

}  // namespace vrdma::vdev
