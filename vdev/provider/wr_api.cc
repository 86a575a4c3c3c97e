// The ibv_wr_* send API of ibv_qp_ex (perftest's default): wr_start opens a batch on
// the send ring, each wr_<opcode> starts a WQE in the next slot and the wr_set_*
// calls fill it, wr_complete publishes the batch with one doorbell, wr_abort drops it.
#include <cerrno>
#include <cstring>

#include "vdev/provider/provider.h"

namespace vrdma::provider {

namespace {

void WrStart(ibv_qp_ex* qpx) {
  VQp* qp = QpOf(qpx);
  LockSq(qp);
  qp->wr_count = 0;
  qp->wr_error = 0;
  qp->wr_current = nullptr;
  ibv_qp_state s = qp->vqp.qp.state;
  if (s == IBV_QPS_RESET || s == IBV_QPS_INIT || s == IBV_QPS_RTR) qp->wr_error = EINVAL;
}

int WrComplete(ibv_qp_ex* qpx) {
  VQp* qp = QpOf(qpx);
  int err = qp->wr_error;
  if (!err && qp->device_fatal->load(std::memory_order_relaxed)) err = EIO;  // device gone
  if (!err && qp->wr_count) {
    qp->sq.produced += qp->wr_count;
    qp->sq.header->producer.value.store(qp->sq.produced, std::memory_order_release);
    RingDoorbell(StateOf(qp->vqp.qp.context));
  }
  qp->wr_count = 0;
  qp->wr_current = nullptr;
  UnlockSq(qp);
  return err;
}

void WrAbort(ibv_qp_ex* qpx) {
  VQp* qp = QpOf(qpx);
  qp->wr_count = 0;
  qp->wr_current = nullptr;
  UnlockSq(qp);
}

// Opens the next WQE of the batch; nullptr (and the batch fails) when the ring is full.
proto::SendWqe* NewWqe(ibv_qp_ex* qpx, ibv_wr_opcode opcode) {
  VQp* qp = QpOf(qpx);
  qp->wr_current = nullptr;
  if (qp->wr_error) return nullptr;
  uint32_t retired = qp->sq.header->retired.value.load(std::memory_order_acquire);
  uint32_t index = qp->sq.produced + qp->wr_count;
  if (!SlotFree(qp->sq, index, &retired)) {
    qp->wr_error = ENOMEM;
    return nullptr;
  }
  auto* h = reinterpret_cast<proto::SendWqe*>(SlotAt(qp->sq, index));
  std::memset(h, 0, sizeof *h);
  h->wr_id = qpx->wr_id;
  h->send_flags = qpx->wr_flags;
  h->opcode = opcode;
  ++qp->wr_count;
  qp->wr_current = h;
  return h;
}

uint8_t* Body(proto::SendWqe* h) { return reinterpret_cast<uint8_t*>(h) + sizeof *h; }

void WrSend(ibv_qp_ex* qpx) { NewWqe(qpx, IBV_WR_SEND); }
void WrSendImm(ibv_qp_ex* qpx, __be32 imm) {
  if (auto* h = NewWqe(qpx, IBV_WR_SEND_WITH_IMM)) h->imm_data = imm;
}
void WrSendInv(ibv_qp_ex* qpx, uint32_t rkey) {
  if (auto* h = NewWqe(qpx, IBV_WR_SEND_WITH_INV)) h->imm_data = rkey;
}
void WrRdma(ibv_qp_ex* qpx, ibv_wr_opcode op, uint32_t rkey, uint64_t addr, __be32 imm) {
  if (auto* h = NewWqe(qpx, op)) {
    h->rkey = rkey;
    h->remote_addr = addr;
    h->imm_data = imm;
  }
}
void WrRdmaWrite(ibv_qp_ex* qpx, uint32_t rkey, uint64_t addr) {
  WrRdma(qpx, IBV_WR_RDMA_WRITE, rkey, addr, 0);
}
void WrRdmaWriteImm(ibv_qp_ex* qpx, uint32_t rkey, uint64_t addr, __be32 imm) {
  WrRdma(qpx, IBV_WR_RDMA_WRITE_WITH_IMM, rkey, addr, imm);
}
void WrRdmaRead(ibv_qp_ex* qpx, uint32_t rkey, uint64_t addr) {
  WrRdma(qpx, IBV_WR_RDMA_READ, rkey, addr, 0);
}
void WrCmpSwp(ibv_qp_ex* qpx, uint32_t rkey, uint64_t addr, uint64_t compare, uint64_t swap) {
  if (auto* h = NewWqe(qpx, IBV_WR_ATOMIC_CMP_AND_SWP)) {
    h->rkey = rkey;
    h->remote_addr = addr;
    h->compare_add = compare;
    h->swap = swap;
  }
}
void WrFetchAdd(ibv_qp_ex* qpx, uint32_t rkey, uint64_t addr, uint64_t add) {
  if (auto* h = NewWqe(qpx, IBV_WR_ATOMIC_FETCH_AND_ADD)) {
    h->rkey = rkey;
    h->remote_addr = addr;
    h->compare_add = add;
  }
}

void WrBindMw(ibv_qp_ex* qpx, ibv_mw* mw, uint32_t rkey, const ibv_mw_bind_info* info) {
  proto::SendWqe* h = NewWqe(qpx, IBV_WR_BIND_MW);
  if (!h) return;
  if (!mw || !info) {
    QpOf(qpx)->wr_error = EINVAL;
    return;
  }
  h->rkey = rkey;
  h->bind.mw = mw->handle;
  h->bind.mr_lkey = info->mr ? info->mr->lkey : 0;
  h->remote_addr = info->addr;
  h->compare_add = info->length;
  h->swap = info->mw_access_flags;
}
void WrAtomicWrite(ibv_qp_ex* qpx, uint32_t rkey, uint64_t addr, const void* atomic_wr) {
  if (auto* h = NewWqe(qpx, IBV_WR_ATOMIC_WRITE)) {
    h->rkey = rkey;
    h->remote_addr = addr;
    std::memcpy(&h->compare_add, atomic_wr, 8);  // the 8 bytes to store (IBTA 1.5)
  }
}
void WrLocalInv(ibv_qp_ex* qpx, uint32_t rkey) {
  if (auto* h = NewWqe(qpx, IBV_WR_LOCAL_INV)) h->imm_data = rkey;
}

void Unsupported(ibv_qp_ex* qpx) {
  VQp* qp = QpOf(qpx);
  qp->wr_current = nullptr;
  if (!qp->wr_error) qp->wr_error = EOPNOTSUPP;
}
void WrSendTso(ibv_qp_ex* qpx, void*, uint16_t, uint16_t) { Unsupported(qpx); }
void WrSetXrcSrqn(ibv_qp_ex* qpx, uint32_t remote_srqn) {
  proto::SendWqe* h = QpOf(qpx)->wr_current;
  if (!h) return;
  h->remote_srqn = remote_srqn;
}

void WrSetUdAddr(ibv_qp_ex* qpx, ibv_ah* ah, uint32_t remote_qpn, uint32_t remote_qkey) {
  proto::SendWqe* h = QpOf(qpx)->wr_current;
  if (!h) return;
  h->ud.ah = ah ? reinterpret_cast<VAh*>(ah)->handle : 0;
  h->ud.remote_qpn = remote_qpn;
  h->ud.remote_qkey = remote_qkey;
}

void WrSetSge(ibv_qp_ex* qpx, uint32_t lkey, uint64_t addr, uint32_t length) {
  proto::SendWqe* h = QpOf(qpx)->wr_current;
  if (!h) return;
  proto::Sge s{addr, length, lkey};
  std::memcpy(Body(h), &s, sizeof s);
  h->num_sge = 1;
}

void WrSetSgeList(ibv_qp_ex* qpx, size_t n, const ibv_sge* list) {
  VQp* qp = QpOf(qpx);
  proto::SendWqe* h = qp->wr_current;
  if (!h) return;
  if (n > qp->max_send_sge) {
    qp->wr_error = EINVAL;
    return;
  }
  for (size_t i = 0; i < n; ++i) {
    proto::Sge s{list[i].addr, list[i].length, list[i].lkey};
    std::memcpy(Body(h) + i * sizeof s, &s, sizeof s);
  }
  h->num_sge = static_cast<uint32_t>(n);
}

void WrSetInlineList(ibv_qp_ex* qpx, size_t n, const ibv_data_buf* bufs) {
  VQp* qp = QpOf(qpx);
  proto::SendWqe* h = qp->wr_current;
  if (!h) return;
  size_t total = 0;
  for (size_t i = 0; i < n; ++i) {
    if (bufs[i].length > qp->max_inline - total) {
      qp->wr_error = EINVAL;
      return;
    }
    std::memcpy(Body(h) + total, bufs[i].addr, bufs[i].length);
    total += bufs[i].length;
  }
  h->inline_len = static_cast<uint32_t>(total);
  h->send_flags |= IBV_SEND_INLINE;
}

void WrSetInline(ibv_qp_ex* qpx, void* addr, size_t length) {
  ibv_data_buf buf{addr, length};
  WrSetInlineList(qpx, 1, &buf);
}

}  // namespace

void InstallWrOps(VQp* qp, uint64_t) {
  ibv_qp_ex& x = qp->vqp.qp_ex;
  x.wr_atomic_cmp_swp = WrCmpSwp;
  x.wr_atomic_fetch_add = WrFetchAdd;
  x.wr_bind_mw = WrBindMw;
  x.wr_local_inv = WrLocalInv;
  x.wr_rdma_read = WrRdmaRead;
  x.wr_rdma_write = WrRdmaWrite;
  x.wr_rdma_write_imm = WrRdmaWriteImm;
  x.wr_send = WrSend;
  x.wr_send_imm = WrSendImm;
  x.wr_send_inv = WrSendInv;
  x.wr_send_tso = WrSendTso;
  x.wr_set_ud_addr = WrSetUdAddr;
  x.wr_set_xrc_srqn = WrSetXrcSrqn;
  x.wr_set_inline_data = WrSetInline;
  x.wr_set_inline_data_list = WrSetInlineList;
  x.wr_set_sge = WrSetSge;
  x.wr_set_sge_list = WrSetSgeList;
  x.wr_start = WrStart;
  x.wr_complete = WrComplete;
  x.wr_abort = WrAbort;
  x.wr_atomic_write = WrAtomicWrite;
}

}  // namespace vrdma::provider
