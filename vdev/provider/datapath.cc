// The data path: ibv_post_send / ibv_post_recv / ibv_post_srq_recv write WQEs into the
// shared rings and ring the doorbell; ibv_poll_cq and the ibv_cq_ex poll API read CQEs
// from the shared CQ ring; ibv_req_notify_cq arms it. No system call on any of them,
// except the doorbell eventfd while the daemon sleeps and sched_yield while a poller
// finds nothing (a 2-core machine runs the daemon and two polling clients).
#include <sched.h>

#include <cerrno>
#include <cstring>

#include "vdev/provider/provider.h"

namespace vrdma::provider {

namespace {

constexpr uint32_t kEmptyPollsBeforeYield = 64;

int WriteSendWqe(const VQp* qp, const ibv_send_wr* wr, uint8_t* slot) {
  proto::SendWqe h{};
  h.wr_id = wr->wr_id;
  h.opcode = wr->opcode;
  h.send_flags = wr->send_flags;
  h.imm_data = wr->imm_data;  // a union with invalidate_rkey
  // A raw packet QP sends frames: IBV_WR_SEND only (as mlx5).
  if (qp->vqp.qp.qp_type == IBV_QPT_RAW_PACKET && wr->opcode != IBV_WR_SEND) return EINVAL;
  switch (wr->opcode) {
    case IBV_WR_RDMA_WRITE:
    case IBV_WR_RDMA_WRITE_WITH_IMM:
    case IBV_WR_RDMA_READ:
      h.remote_addr = wr->wr.rdma.remote_addr;
      h.rkey = wr->wr.rdma.rkey;
      break;
    case IBV_WR_ATOMIC_CMP_AND_SWP:
    case IBV_WR_ATOMIC_FETCH_AND_ADD:
      h.remote_addr = wr->wr.atomic.remote_addr;
      h.rkey = wr->wr.atomic.rkey;
      h.compare_add = wr->wr.atomic.compare_add;
      h.swap = wr->wr.atomic.swap;
      break;
    case IBV_WR_SEND:
    case IBV_WR_SEND_WITH_IMM:
    case IBV_WR_SEND_WITH_INV:
      break;
    case IBV_WR_ATOMIC_WRITE:
      // The 8 bytes to store: the one 8-byte SGE's, read now (the WQE carries them, as
      // ibv_wr_atomic_write's do).
      if (wr->num_sge != 1 || wr->sg_list[0].length != 8) return EINVAL;
      h.remote_addr = wr->wr.rdma.remote_addr;
      h.rkey = wr->wr.rdma.rkey;
      std::memcpy(&h.compare_add, reinterpret_cast<const void*>(wr->sg_list[0].addr), 8);
      h.send_flags &= ~IBV_SEND_INLINE;
      std::memcpy(slot, &h, sizeof h);
      return 0;
    case IBV_WR_BIND_MW:
    case IBV_WR_LOCAL_INV:
      // Local operations carry no data; a bind names its window and MR (the daemon
      // checks both against the QP's PD when it runs the bind).
      if (wr->opcode == IBV_WR_BIND_MW) {
        const ibv_mw_bind_info& b = wr->bind_mw.bind_info;
        if (!wr->bind_mw.mw) return EINVAL;
        h.rkey = wr->bind_mw.rkey;
        h.bind.mw = wr->bind_mw.mw->handle;
        h.bind.mr_lkey = b.mr ? b.mr->lkey : 0;
        h.remote_addr = b.addr;
        h.compare_add = b.length;
        h.swap = b.mw_access_flags;
      }
      std::memcpy(slot, &h, sizeof h);
      return 0;
    default:
      return EINVAL;
  }
  if (qp->vqp.qp.qp_type == IBV_QPT_UD) {
    if (!wr->wr.ud.ah) return EINVAL;
    h.ud.ah = reinterpret_cast<VAh*>(wr->wr.ud.ah)->handle;
    h.ud.remote_qpn = wr->wr.ud.remote_qpn;
    h.ud.remote_qkey = wr->wr.ud.remote_qkey;
  }
  if (qp->vqp.qp.qp_type == IBV_QPT_XRC_SEND) h.remote_srqn = wr->qp_type.xrc.remote_srqn;
  uint8_t* body = slot + sizeof h;
  if (wr->send_flags & IBV_SEND_INLINE) {
    uint32_t total = 0;
    for (int i = 0; i < wr->num_sge; ++i) {
      const ibv_sge& s = wr->sg_list[i];
      if (s.length > qp->max_inline - total) return EINVAL;
      std::memcpy(body + total, reinterpret_cast<const void*>(s.addr), s.length);
      total += s.length;
    }
    h.inline_len = total;
  } else {
    if (wr->num_sge < 0 || static_cast<uint32_t>(wr->num_sge) > qp->max_send_sge) return EINVAL;
    h.num_sge = static_cast<uint32_t>(wr->num_sge);
    for (int i = 0; i < wr->num_sge; ++i) {
      proto::Sge s{wr->sg_list[i].addr, wr->sg_list[i].length, wr->sg_list[i].lkey};
      std::memcpy(body + i * sizeof s, &s, sizeof s);
    }
  }
  std::memcpy(slot, &h, sizeof h);
  return 0;
}

void WriteRecvWqe(const ibv_recv_wr* wr, uint8_t* slot) {
  proto::RecvWqe h{wr->wr_id, static_cast<uint32_t>(wr->num_sge), 0};
  std::memcpy(slot, &h, sizeof h);
  for (int i = 0; i < wr->num_sge; ++i) {
    proto::Sge s{wr->sg_list[i].addr, wr->sg_list[i].length, wr->sg_list[i].lkey};
    std::memcpy(slot + sizeof h + i * sizeof s, &s, sizeof s);
  }
}

// Posts a chain of receive WRs on one ring (QP RQ or SRQ).
int PostRecvChain(ContextState& st, SendRing& ring, uint32_t max_sge, ibv_recv_wr* wr,
                  ibv_recv_wr** bad) {
  uint32_t retired = ring.header->retired.value.load(std::memory_order_acquire);
  uint32_t start = ring.produced;
  int err = 0;
  for (; wr; wr = wr->next) {
    if (wr->num_sge < 0 || static_cast<uint32_t>(wr->num_sge) > max_sge) {
      err = EINVAL;
      break;
    }
    if (!RingHasRoom(ring, &retired)) {
      err = ENOMEM;
      break;
    }
    WriteRecvWqe(wr, SlotAt(ring, ring.produced));
    ++ring.produced;
  }
  if (ring.produced != start) {
    ring.header->producer.value.store(ring.produced, std::memory_order_release);
    RingDoorbell(st);
  }
  if (err) *bad = wr;
  return err;
}

void FillWc(const proto::Cqe& c, ibv_wc* wc) {
  wc->wr_id = c.wr_id;
  wc->status = static_cast<ibv_wc_status>(c.status);
  wc->opcode = static_cast<ibv_wc_opcode>(c.opcode);
  wc->vendor_err = c.vendor_err;
  wc->byte_len = c.byte_len;
  wc->imm_data = c.imm_data;
  wc->qp_num = c.qp_num;
  wc->src_qp = c.src_qp;
  wc->wc_flags = c.wc_flags;
  wc->pkey_index = c.pkey_index;
  wc->slid = c.slid;
  wc->sl = c.sl;
  wc->dlid_path_bits = c.dlid_path_bits;
}

}  // namespace

int PostSend(ibv_qp* ibqp, ibv_send_wr* wr, ibv_send_wr** bad) {
  VQp* qp = QpOf(ibqp);
  if (qp->device_fatal->load(std::memory_order_relaxed)) {  // the device is gone
    *bad = wr;
    return EIO;
  }
  // Posting to a QP that cannot send is an immediate error (IBTA 10.8.2 / 11.4.1.1);
  // in Error the WQEs complete with flush errors.
  if (ibqp->state == IBV_QPS_RESET || ibqp->state == IBV_QPS_INIT || ibqp->state == IBV_QPS_RTR) {
    *bad = wr;
    return EINVAL;
  }
  LockSq(qp);
  SendRing& ring = qp->sq;
  uint32_t retired = ring.header->retired.value.load(std::memory_order_acquire);
  uint32_t start = ring.produced;
  int err = 0;
  for (; wr; wr = wr->next) {
    if (!RingHasRoom(ring, &retired)) {
      err = ENOMEM;
      break;
    }
    err = WriteSendWqe(qp, wr, SlotAt(ring, ring.produced));
    if (err) break;
    ++ring.produced;
  }
  if (ring.produced != start) {
    ring.header->producer.value.store(ring.produced, std::memory_order_release);
    RingDoorbell(StateOf(ibqp->context));
  }
  UnlockSq(qp);
  if (err) *bad = wr;
  return err;
}

int PostRecv(ibv_qp* ibqp, ibv_recv_wr* wr, ibv_recv_wr** bad) {
  VQp* qp = QpOf(ibqp);
  if (qp->device_fatal->load(std::memory_order_relaxed)) {
    *bad = wr;
    return EIO;
  }
  if (ibqp->srq || ibqp->state == IBV_QPS_RESET) {
    *bad = wr;
    return EINVAL;
  }
  LockRq(qp);
  int err = PostRecvChain(StateOf(ibqp->context), qp->rq, qp->max_recv_sge, wr, bad);
  UnlockRq(qp);
  return err;
}

int PostSrqRecv(ibv_srq* ibsrq, ibv_recv_wr* wr, ibv_recv_wr** bad) {
  VSrq* srq = reinterpret_cast<VSrq*>(ibsrq);
  if (srq->device_fatal->load(std::memory_order_relaxed)) {
    *bad = wr;
    return EIO;
  }
  pthread_spin_lock(&srq->lock);
  int err = PostRecvChain(StateOf(ibsrq->context), srq->ring, srq->max_sge, wr, bad);
  pthread_spin_unlock(&srq->lock);
  return err;
}

int PollCq(ibv_cq* ibcq, int n, ibv_wc* wc) {
  VCq* cq = CqOf(ibcq);
  pthread_spin_lock(&cq->lock);
  uint32_t produced = cq->header->ring.producer.value.load(std::memory_order_acquire);
  int got = 0;
  while (got < n && cq->consumed != produced) {
    FillWc(cq->cqes[cq->consumed & (cq->depth - 1)], &wc[got]);
    ++cq->consumed;
    ++got;
  }
  bool yield = false;
  if (got) {
    cq->header->ring.consumer.value.store(cq->consumed, std::memory_order_release);
    cq->empty_polls = 0;
  } else if (cq->device_fatal->load(std::memory_order_relaxed)) {
    // The device is gone and the CQ is empty: nothing will ever arrive. Only an empty
    // poll looks, so completions already written are still returned.
    got = -EIO;
  } else if (++cq->empty_polls >= kEmptyPollsBeforeYield) {
    cq->empty_polls = 0;
    yield = true;
  }
  pthread_spin_unlock(&cq->lock);
  if (yield) sched_yield();
  return got;
}

void CleanCq(ibv_cq* ibcq, uint32_t qp_num) {
  VCq* cq = CqOf(ibcq);
  pthread_spin_lock(&cq->lock);
  // Entries below the producer index are the daemon's finished writes; it writes the next
  // ones only past the consumer index, which moves last.
  const uint32_t produced = cq->header->ring.producer.value.load(std::memory_order_acquire);
  const uint32_t mask = cq->depth - 1;
  uint32_t removed = 0;
  for (uint32_t i = produced; i != cq->consumed;) {
    --i;
    if (cq->cqes[i & mask].qp_num == qp_num) {
      ++removed;
    } else if (removed) {
      cq->cqes[(i + removed) & mask] = cq->cqes[i & mask];
    }
  }
  if (removed) {
    cq->consumed += removed;
    cq->header->ring.consumer.value.store(cq->consumed, std::memory_order_release);
  }
  pthread_spin_unlock(&cq->lock);
}

int ReqNotifyCq(ibv_cq* ibcq, int solicited_only) {
  VCq* cq = CqOf(ibcq);
  cq->header->arm.arm_solicited.store(solicited_only ? 1 : 0, std::memory_order_relaxed);
  // seq_cst: ordered before the application's next look at the CQ (proto::CqArm).
  cq->header->arm.arm_sequence.fetch_add(1, std::memory_order_seq_cst);
  return 0;
}

// ---- ibv_cq_ex -----------------------------------------------------------------------------

namespace {

bool TakeOne(VCq* cq) {
  uint32_t produced = cq->header->ring.producer.value.load(std::memory_order_acquire);
  if (cq->consumed == produced) return false;
  cq->current = cq->cqes[cq->consumed & (cq->depth - 1)];
  ++cq->consumed;
  cq->vcq.cq_ex.wr_id = cq->current.wr_id;
  cq->vcq.cq_ex.status = static_cast<ibv_wc_status>(cq->current.status);
  return true;
}

int StartPoll(ibv_cq_ex* ex, ibv_poll_cq_attr*) {
  VCq* cq = CqOf(ex);
  pthread_spin_lock(&cq->lock);
  if (TakeOne(cq)) return 0;
  if (cq->device_fatal->load(std::memory_order_relaxed)) {  // empty, and the device is gone
    pthread_spin_unlock(&cq->lock);
    return EIO;
  }
  bool yield = ++cq->empty_polls >= kEmptyPollsBeforeYield;
  if (yield) cq->empty_polls = 0;
  pthread_spin_unlock(&cq->lock);  // end_poll is not called after ENOENT
  if (yield) sched_yield();
  return ENOENT;
}

int NextPoll(ibv_cq_ex* ex) { return TakeOne(CqOf(ex)) ? 0 : ENOENT; }

void EndPoll(ibv_cq_ex* ex) {
  VCq* cq = CqOf(ex);
  cq->empty_polls = 0;
  cq->header->ring.consumer.value.store(cq->consumed, std::memory_order_release);
  pthread_spin_unlock(&cq->lock);
}

ibv_wc_opcode ReadOpcode(ibv_cq_ex* ex) {
  return static_cast<ibv_wc_opcode>(CqOf(ex)->current.opcode);
}
uint32_t ReadVendorErr(ibv_cq_ex* ex) { return CqOf(ex)->current.vendor_err; }
uint32_t ReadByteLen(ibv_cq_ex* ex) { return CqOf(ex)->current.byte_len; }
__be32 ReadImmData(ibv_cq_ex* ex) { return CqOf(ex)->current.imm_data; }
uint32_t ReadQpNum(ibv_cq_ex* ex) { return CqOf(ex)->current.qp_num; }
uint32_t ReadSrcQp(ibv_cq_ex* ex) { return CqOf(ex)->current.src_qp; }
unsigned int ReadWcFlags(ibv_cq_ex* ex) { return CqOf(ex)->current.wc_flags; }
uint32_t ReadSlid(ibv_cq_ex* ex) { return CqOf(ex)->current.slid; }
uint8_t ReadSl(ibv_cq_ex* ex) { return CqOf(ex)->current.sl; }
uint8_t ReadDlidPathBits(ibv_cq_ex* ex) { return CqOf(ex)->current.dlid_path_bits; }
uint64_t ReadCompletionTs(ibv_cq_ex* ex) { return CqOf(ex)->current.timestamp; }

}  // namespace

void InstallCqExOps(VCq* cq, uint64_t wc_flags) {
  ibv_cq_ex& ex = cq->vcq.cq_ex;
  ex.start_poll = StartPoll;
  ex.next_poll = NextPoll;
  ex.end_poll = EndPoll;
  ex.read_opcode = ReadOpcode;
  ex.read_vendor_err = ReadVendorErr;
  ex.read_byte_len = ReadByteLen;
  ex.read_imm_data = ReadImmData;
  ex.read_qp_num = ReadQpNum;
  ex.read_src_qp = ReadSrcQp;
  ex.read_wc_flags = ReadWcFlags;
  ex.read_slid = ReadSlid;
  ex.read_sl = ReadSl;
  ex.read_dlid_path_bits = ReadDlidPathBits;
  if (wc_flags & IBV_WC_EX_WITH_COMPLETION_TIMESTAMP) ex.read_completion_ts = ReadCompletionTs;
}

}  // namespace vrdma::provider
