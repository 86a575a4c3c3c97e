// Posting work requests: the send and receive queues of QPs and SRQs, the WQEs the
// device refuses, and the room left in each queue.
#include <cstring>

#include "driver/transport/device.h"
#include "driver/transport/errors.h"

namespace vrdma::driver {

absl::Status RoceDevice::PostSend(uint32_t qpn, const SendWr& wr) {
  QueuePair* qp = LookupQp(qpn);
  if (!qp) return NotFound("QP", qpn);
  if (qp->sq.full()) return absl::ResourceExhaustedError("send queue full");
  qp->sq.next_free().Assign(wr);
  return PostNextSendWqe(*qp);
}

SendWr* RoceDevice::SendSlot(uint32_t qpn) {
  QueuePair* qp = LookupQp(qpn);
  if (!qp || qp->sq.full()) return nullptr;
  SendWqe& wqe = qp->sq.next_free();
  static_cast<SendWqeState&>(wqe) = SendWqeState{};
  return &wqe.wr;
}

absl::Status RoceDevice::PostSendSlot(uint32_t qpn) {
  QueuePair* qp = LookupQp(qpn);
  if (!qp) return NotFound("QP", qpn);
  if (qp->sq.full()) return absl::ResourceExhaustedError("send queue full");
  return PostNextSendWqe(*qp);
}

absl::Status RoceDevice::PostNextSendWqe(QueuePair& qp) {
  SendWqe& wqe = qp.sq.next_free();
  SendWr& wr = wqe.wr;
  if (qp.type == IBV_QPT_XRC_RECV)
    return absl::InvalidArgumentError("an XRC receive QP has no send queue");
  if (!SendQueueOpen(qp)) return absl::FailedPreconditionError("QP not ready to send");
  if (wr.num_sge > qp.init.max_send_sge) return absl::InvalidArgumentError("too many SGEs");
  if ((wr.send_flags & IBV_SEND_INLINE) && wr.inline_len > qp.init.max_inline_data) {
    return absl::InvalidArgumentError("inline data larger than max_inline_data");
  }
  bool rc = IsReliable(qp.type);
  bool datagram = qp.type == IBV_QPT_UD || qp.type == kQpTypeGsi;
  // A raw packet QP sends frames: SEND only (mlx5 refuses the other opcodes too).
  if (qp.type == IBV_QPT_RAW_PACKET && wr.opcode != IBV_WR_SEND)
    return absl::InvalidArgumentError("a raw packet QP sends with IBV_WR_SEND only");
  switch (wr.opcode) {
    case IBV_WR_SEND:
    case IBV_WR_SEND_WITH_IMM:
      break;
    case IBV_WR_ATOMIC_WRITE:  // IBTA 1.5 gives it an RC opcode only
      if (qp.type != IBV_QPT_RC) return absl::InvalidArgumentError("opcode needs an RC QP");
      break;
    case IBV_WR_SEND_WITH_INV:
    case IBV_WR_RDMA_READ:
    case IBV_WR_ATOMIC_CMP_AND_SWP:
    case IBV_WR_ATOMIC_FETCH_AND_ADD:
      if (!rc) return absl::InvalidArgumentError("opcode needs an RC QP");
      break;
    case IBV_WR_RDMA_WRITE:
    case IBV_WR_RDMA_WRITE_WITH_IMM:
      if (datagram) return absl::InvalidArgumentError("no RDMA WRITE on UD");
      break;
    case IBV_WR_BIND_MW:
    case IBV_WR_LOCAL_INV:
      // Memory windows are used through connected QPs (IBTA 10.6.7).
      if (datagram) return absl::InvalidArgumentError("no memory window operations on UD");
      if (wr.num_sge || wr.inline_len)
        return absl::InvalidArgumentError("local operation with data");
      break;
    default:
      return absl::InvalidArgumentError("unsupported opcode");
  }
  if (datagram && !ahs_.Get(wr.ah)) return absl::InvalidArgumentError("bad AH");
  uint64_t len = 0;
  if (wr.send_flags & IBV_SEND_INLINE) {
    len = wr.inline_len;
  } else {
    for (uint32_t i = 0; i < wr.num_sge; ++i) len += wr.sg_list[i].length;
  }
  if (wr.opcode == IBV_WR_ATOMIC_CMP_AND_SWP || wr.opcode == IBV_WR_ATOMIC_FETCH_AND_ADD) len = 8;
  if (wr.opcode == IBV_WR_ATOMIC_WRITE) {
    // The 8 bytes to store travel in compare_add; they leave as inline data.
    len = 8;
    wr.num_sge = 0;
    wr.send_flags |= IBV_SEND_INLINE;
    wr.inline_len = 8;
    std::memcpy(wr.inline_data, &wr.compare_add, 8);
  }
  // Messages are limited to 2^31 bytes (IBTA 9.7.2 / max_msg_sz reported).
  if (len > (1u << 31)) return absl::InvalidArgumentError("message larger than 2 GiB");
  wqe.length = static_cast<uint32_t>(len);
  wqe.is_rd_atomic = wr.opcode == IBV_WR_RDMA_READ || wr.opcode == IBV_WR_ATOMIC_CMP_AND_SWP ||
                     wr.opcode == IBV_WR_ATOMIC_FETCH_AND_ADD;
  CommitSendWqe(qp);
  return absl::OkStatus();
}

absl::Status RoceDevice::PostRecv(uint32_t qpn, const RecvWr& wr) {
  QueuePair* qp = LookupQp(qpn);
  if (!qp) return NotFound("QP", qpn);
  if (qp->init.has_srq) return absl::InvalidArgumentError("QP uses an SRQ");
  if (qp->type == IBV_QPT_XRC_SEND || qp->type == IBV_QPT_XRC_RECV)
    return absl::InvalidArgumentError("an XRC QP has no receive queue (XRC SRQs receive)");
  if (qp->state == IBV_QPS_RESET) return absl::FailedPreconditionError("QP in RESET");
  if (wr.num_sge > qp->init.max_recv_sge) return absl::InvalidArgumentError("too many SGEs");
  if (qp->rq.full()) return absl::ResourceExhaustedError("receive queue full");
  if (qp->state == IBV_QPS_ERR) {
    // A receive posted to a QP in the error state completes with a flush error.
    ibv_wc wc{};
    wc.wr_id = wr.wr_id;
    wc.status = IBV_WC_WR_FLUSH_ERR;
    wc.opcode = IBV_WC_RECV;
    wc.qp_num = qp->qpn;
    qp->rq.RetireUnqueued();  // never queued; retired before its completion is seen
    PushCqe(qp->init.recv_cq, wc, false);
    return absl::OkStatus();
  }
  qp->rq.next_free() = wr;
  qp->rq.Commit();
  return absl::OkStatus();
}

absl::Status RoceDevice::PostSrqRecv(uint32_t srq_h, const RecvWr& wr) {
  SharedReceiveQueue* srq = srqs_.Get(srq_h);
  if (!srq) return NotFound("SRQ", srq_h);
  if (wr.num_sge > srq->max_sge) return absl::InvalidArgumentError("too many SGEs");
  if (srq->wqes.full()) return absl::ResourceExhaustedError("SRQ full");
  srq->wqes.next_free() = wr;
  srq->wqes.Commit();
  return absl::OkStatus();
}

bool RoceDevice::SendQueueOpen(const QueuePair& qp) {
  return qp.state != IBV_QPS_RESET && qp.state != IBV_QPS_INIT && qp.state != IBV_QPS_RTR;
}

void RoceDevice::CommitSendWqe(QueuePair& qp) {
  qp.sq.Commit();
  // In Error or Send Queue Error, new send WRs complete with a flush error.
  if (qp.state == IBV_QPS_ERR || qp.state == IBV_QPS_SQE) {
    FlushSendQueue(qp);
  } else {
    Activate(qp);
  }
}

absl::Status RoceDevice::RejectSend(uint32_t qpn, uint64_t wr_id, ibv_wr_opcode opcode,
                                    ibv_wc_status status) {
  QueuePair* qp = LookupQp(qpn);
  if (!qp) return NotFound("QP", qpn);
  if (SendQueueOpen(*qp) && !qp->sq.full()) {
    // Queued in its place, as a NIC finds a malformed WQE when it fetches it: the WQEs
    // before it execute, it fails with `status` (StartWqe), the ones after are flushed.
    SendWqe& wqe = qp->sq.next_free();
    wqe = SendWqe{};
    wqe.wr.wr_id = wr_id;
    wqe.wr.opcode = opcode;
    wqe.reject = status;
    CommitSendWqe(*qp);
    return absl::OkStatus();
  }
  // No place for it (queue full, or a QP that cannot send): it fails now, after the
  // flush of what is queued.
  ibv_wc wc{};
  wc.wr_id = wr_id;
  wc.status = status;
  wc.opcode = SendCompletionOpcode(opcode);
  wc.qp_num = qp->qpn;
  qp->sq.RetireUnqueued();  // it completes now, never queued
  EnterError(*qp);
  PushCqe(qp->init.send_cq, wc, false);
  return absl::OkStatus();
}

absl::Status RoceDevice::PublishRetired(uint32_t qpn, std::atomic<uint32_t>* sq,
                                        std::atomic<uint32_t>* rq) {
  QueuePair* qp = LookupQp(qpn);
  if (!qp) return NotFound("QP", qpn);
  qp->sq.PublishRetiredTo(sq);
  if (!qp->init.has_srq) qp->rq.PublishRetiredTo(rq);
  return absl::OkStatus();
}

absl::Status RoceDevice::PublishSrqRetired(uint32_t srq, std::atomic<uint32_t>* retired) {
  SharedReceiveQueue* s = srqs_.Get(srq);
  if (!s) return NotFound("SRQ", srq);
  s->wqes.PublishRetiredTo(retired);
  return absl::OkStatus();
}

void RoceDevice::RetireSrqUnqueued(uint32_t srq) {
  if (SharedReceiveQueue* s = srqs_.Get(srq)) s->wqes.RetireUnqueued();
}

absl::Status RoceDevice::RejectRecv(uint32_t qpn, uint64_t wr_id, ibv_wc_status status) {
  QueuePair* qp = LookupQp(qpn);
  if (!qp) return NotFound("QP", qpn);
  ibv_wc wc{};
  wc.wr_id = wr_id;
  wc.status = status;
  wc.opcode = IBV_WC_RECV;
  wc.qp_num = qp->qpn;
  qp->rq.RetireUnqueued();  // it completes now, never queued
  EnterError(*qp);
  PushCqe(qp->init.recv_cq, wc, false);
  return absl::OkStatus();
}

uint32_t RoceDevice::SendQueueRoom(uint32_t qpn) const {
  const QueuePair* qp = LookupQp(qpn);
  return qp ? qp->sq.depth() - qp->sq.size() : 0;
}

uint32_t RoceDevice::RecvQueueRoom(uint32_t qpn) const {
  const QueuePair* qp = LookupQp(qpn);
  return qp ? qp->rq.depth() - qp->rq.size() : 0;
}

uint32_t RoceDevice::SrqRoom(uint32_t srq_h) const {
  const SharedReceiveQueue* srq = srqs_.Get(srq_h);
  return srq ? srq->wqes.depth() - srq->wqes.size() : 0;
}

}  // namespace vrdma::driver
