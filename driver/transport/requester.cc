// Requester (IBTA 9.7.4, 9.7.6): turns send WQEs into request packets, assigns PSNs,
// segments by path MTU, and restarts from a PSN (go-back-N) when asked to.
#include <cstring>

#include "driver/transport/device.h"
#include "driver/transport/ib_timers.h"
#include "driver/transport/psn.h"

namespace vrdma::driver {
namespace {

// Request packets between two AckReq bits inside one long message, so the window
// keeps moving (the last packet of every message always asks for an ACK).
constexpr uint32_t kAckReqInterval = 32;

// Opcode of packet `i` of `n` of a SEND or RDMA WRITE message (IBTA 9.2 table 38).
uint8_t SendWriteOpcode(const SendWr& wr, uint32_t i, uint32_t n) {
  bool first = i == 0, last = i + 1 == n;
  switch (wr.opcode) {
    case IBV_WR_SEND:
      return first && last ? wire::op::kRcSendOnly
             : first       ? wire::op::kRcSendFirst
             : last        ? wire::op::kRcSendLast
                           : wire::op::kRcSendMiddle;
    case IBV_WR_SEND_WITH_IMM:
      return first && last ? wire::op::kRcSendOnlyImm
             : first       ? wire::op::kRcSendFirst
             : last        ? wire::op::kRcSendLastImm
                           : wire::op::kRcSendMiddle;
    case IBV_WR_SEND_WITH_INV:
      return first && last ? wire::op::kRcSendOnlyInv
             : first       ? wire::op::kRcSendFirst
             : last        ? wire::op::kRcSendLastInv
                           : wire::op::kRcSendMiddle;
    case IBV_WR_RDMA_WRITE:
      return first && last ? wire::op::kRcWriteOnly
             : first       ? wire::op::kRcWriteFirst
             : last        ? wire::op::kRcWriteLast
                           : wire::op::kRcWriteMiddle;
    case IBV_WR_ATOMIC_WRITE:
      return wire::op::kRcAtomicWrite;  // one packet: 8 bytes
    default:                            // IBV_WR_RDMA_WRITE_WITH_IMM
      return first && last ? wire::op::kRcWriteOnlyImm
             : first       ? wire::op::kRcWriteFirst
             : last        ? wire::op::kRcWriteLastImm
                           : wire::op::kRcWriteMiddle;
  }
}

}  // namespace

bool RoceDevice::StartWqe(QueuePair& qp, SendWqe& w) {
  const SendWr& wr = w.wr;
  bool datagram = qp.type == IBV_QPT_UD || qp.type == kQpTypeGsi;
  // A WQE that fails locally fails once every WQE before it has completed, so that
  // completions stay in WQE order (IBTA 10.8.3.1) and the earlier WQEs, already on the
  // wire, complete normally. Until then the requester waits at it.
  auto fail_in_order = [&](ibv_wc_status status) {
    if (&qp.sq.front() == &w) FailSend(qp, status);
    return false;
  };
  if (w.reject != IBV_WC_SUCCESS) return fail_in_order(w.reject);
  if (w.is_rd_atomic) {
    // A fenced or further READ/ATOMIC waits for the responder resources it may use
    // (max_rd_atomic, IBTA 9.7.7.2 / 10.2.4).
    if (qp.max_rd_atomic == 0) return fail_in_order(IBV_WC_LOC_QP_OP_ERR);
    if (qp.req.rd_atomic_outstanding >= qp.max_rd_atomic) return false;
    if (wr.opcode != IBV_WR_RDMA_READ && (wr.num_sge < 1 || wr.sg_list[0].length < 8)) {
      return fail_in_order(IBV_WC_LOC_LEN_ERR);
    }
  }
  // Fence: wait until every earlier READ and ATOMIC has completed (IBTA 10.8.3.3).
  if ((wr.send_flags & IBV_SEND_FENCE) && qp.req.rd_atomic_outstanding > 0) return false;
  uint32_t npkts = 1;
  if (datagram) {
    if (w.length > (128u << cfg_.port_mtu)) return fail_in_order(IBV_WC_LOC_LEN_ERR);
  } else if (!(wr.opcode == IBV_WR_ATOMIC_CMP_AND_SWP ||
               wr.opcode == IBV_WR_ATOMIC_FETCH_AND_ADD)) {
    npkts = psn::PacketCount(w.length, qp.mtu);
  }
  w.first_psn = qp.req.next_psn;
  w.last_psn = psn::Add(w.first_psn, npkts - 1);
  w.npkts = npkts;
  w.next_pkt = 0;
  w.resp_pkts = 0;
  w.started = true;
  qp.req.next_psn = psn::Add(qp.req.next_psn, npkts);
  if (w.is_rd_atomic) qp.req.rd_atomic_outstanding++;
  return true;
}

// Bind Memory Window and Local Invalidate send nothing: they run when they reach the head
// of the send queue, so that they take effect after everything posted before them (a
// window unbound after the READ that used it has completed), and complete at once. A
// failure completes the WQE with its status and ends the send queue like any other.
void RoceDevice::RunLocalOperation(QueuePair& qp, SendWqe& w) {
  ibv_wc_status status;
  if (w.wr.opcode == IBV_WR_BIND_MW) {
    status = BindMw(qp, w.wr);
  } else {
    status = InvalidateKey(qp, w.wr.invalidate_rkey, /*remote=*/false) ? IBV_WC_SUCCESS
                                                                       : IBV_WC_LOC_QP_OP_ERR;
  }
  if (status == IBV_WC_SUCCESS) {
    CompleteSend(qp, w, IBV_WC_SUCCESS);
  } else {
    FailSend(qp, status);
  }
}

void RoceDevice::RunRequester(QueuePair& qp, uint32_t* budget) {
  if (qp.state != IBV_QPS_RTS && qp.state != IBV_QPS_SQD) return;
  if (qp.req.rnr_wait) return;
  bool datagram = qp.type == IBV_QPT_UD || qp.type == kQpTypeGsi;
  while (*budget > 0 && qp.state != IBV_QPS_ERR && qp.req.sq_next != qp.sq.tail()) {
    SendWqe& w = qp.sq.at(qp.req.sq_next);
    if (!w.started) {
      if (qp.state == IBV_QPS_SQD) break;  // SQ drain: no new WQEs (IBTA 10.3.1 SQD)
      if (IsLocalOperation(w.wr.opcode) && w.reject == IBV_WC_SUCCESS) {
        if (&qp.sq.front() != &w) break;  // after every earlier WQE has completed
        RunLocalOperation(qp, w);
        --*budget;
        continue;
      }
      if (!StartWqe(qp, w)) break;
      const uint32_t npkts = w.npkts;
      if (ExecuteDirect(qp, w)) {  // to a QP of this device, no frames (direct.cc)
        *budget -= npkts < *budget ? npkts : *budget;
        continue;
      }
    }
    if (datagram) {
      SendUd(qp, w);
      --*budget;
      continue;
    }
    if (qp.type == IBV_QPT_RAW_PACKET) {
      SendRaw(qp, w);
      --*budget;
      continue;
    }
    if (IsReliable(qp.type)) {
      uint32_t pkt_psn = psn::Add(w.first_psn, w.next_pkt);
      if (psn::Diff(pkt_psn, qp.req.acked_psn) > static_cast<int32_t>(cfg_.limits.max_send_window))
        break;  // window full: wait for ACKs
    }
    if (!SendNextPacket(qp, w)) break;
    --*budget;
    if (w.req_done) {
      qp.req.sq_next++;
      // UC has no acknowledgements: a WQE completes once its last packet is sent.
      if (qp.type == IBV_QPT_UC) CompleteSend(qp, w, IBV_WC_SUCCESS);
    }
  }
  if (IsReliable(qp.type) && !timers_.IsArmed(&qp.retransmit_timer) && !qp.sq.empty() &&
      qp.sq.front().started) {
    ArmRetransmit(qp);
  }
}

bool RoceDevice::SendNextPacket(QueuePair& qp, SendWqe& w) {
  const SendWr& wr = w.wr;
  wire::RocePacket h = qp.tmpl;
  h.net.ipv4_id = qp.req.ipv4_id++;
  // UC and XRC reuse RC's low opcode bits; an XRC request names the target's XRC SRQ.
  uint8_t base = qp.type == IBV_QPT_UC         ? wire::op::kUcBase
                 : qp.type == IBV_QPT_XRC_SEND ? wire::op::kXrcBase
                                               : 0;
  h.xrc_srqn = wr.remote_srqn;
  uint32_t i = w.next_pkt;
  h.bth.psn = psn::Add(w.first_psn, i);
  uint32_t payload_len = 0;
  uint32_t offset = 0;
  bool last = false;
  switch (wr.opcode) {
    case IBV_WR_RDMA_READ: {
      // A re-issued READ asks only for the responses still missing: its PSN is the
      // first missing response's and its RETH starts at that data (IBTA 9.7.6.2.2).
      uint32_t done = i * qp.mtu;
      h.bth.opcode = static_cast<uint8_t>(base | wire::op::kRcReadRequest);
      h.reth.va = wr.remote_addr + done;
      h.reth.rkey = wr.rkey;
      h.reth.dma_len = w.length - done;
      last = true;
      break;
    }
    case IBV_WR_ATOMIC_CMP_AND_SWP:
    case IBV_WR_ATOMIC_FETCH_AND_ADD:
      h.bth.opcode = static_cast<uint8_t>(base | (wr.opcode == IBV_WR_ATOMIC_CMP_AND_SWP
                                                      ? wire::op::kRcCompareSwap
                                                      : wire::op::kRcFetchAdd));
      h.atomic.va = wr.remote_addr;
      h.atomic.rkey = wr.rkey;
      h.atomic.swap_add = wr.opcode == IBV_WR_ATOMIC_CMP_AND_SWP ? wr.swap : wr.compare_add;
      h.atomic.compare = wr.opcode == IBV_WR_ATOMIC_CMP_AND_SWP ? wr.compare_add : 0;
      last = true;
      break;
    default: {
      h.bth.opcode = static_cast<uint8_t>(base | SendWriteOpcode(wr, i, w.npkts));
      offset = i * qp.mtu;
      payload_len = w.length - offset < qp.mtu ? w.length - offset : qp.mtu;
      last = i + 1 == w.npkts;
      if (i == 0 && (wr.opcode == IBV_WR_RDMA_WRITE || wr.opcode == IBV_WR_RDMA_WRITE_WITH_IMM ||
                     wr.opcode == IBV_WR_ATOMIC_WRITE)) {
        h.reth.va = wr.remote_addr;
        h.reth.rkey = wr.rkey;
        h.reth.dma_len = w.length;
      }
      h.imm_be = wr.imm_be;
      h.ieth_rkey = wr.invalidate_rkey;
      // Solicited event on the last packet of a SEND or WRITE with immediate.
      h.bth.solicited = last && (wr.send_flags & IBV_SEND_SOLICITED);
      break;
    }
  }
  h.bth.ack_req = IsReliable(qp.type) && (last || (i + 1) % kAckReqInterval == 0);
  if (tx_chains_ && payload_len >= cfg_.zero_copy_min && !(wr.send_flags & IBV_SEND_INLINE)) {
    // Zero-copy: the payload leaves from the client's buffer (a bad key or range finds
    // no source and takes the copying path, which reports it).
    rte_mbuf_ext_shared_info* share = nullptr;
    const MemoryRegion* mr = nullptr;
    const uint8_t* src =
        ZeroCopySource(qp, wr.sg_list, wr.num_sge, offset, payload_len, &share, &mr);
    if (src && UseZeroCopy(h, payload_len, share)) {
      rte_mbuf* zm = NewZeroCopyPacket(&h, src, payload_len, share);
      if (!zm) return false;
      // NewZeroCopyPacket read the payload (ICRC): a page that vanished meanwhile fails
      // the WQE as a bad L_Key would (IBTA 10.6.3: Local Protection Error).
      if (LostPage(*mr)) {
        rte_pktmbuf_free(zm);
        FailSend(qp, IBV_WC_LOC_PROT_ERR);
        return false;
      }
      Transmit(zm);
      w.next_pkt = last ? w.npkts : i + 1;
      w.req_done = last;
      return true;
    }
  }
  uint8_t* payload = nullptr;
  rte_mbuf* m = NewPacket(&h, payload_len, &payload);
  if (!m) return false;
  if (payload_len) {
    Access a = Access::kOk;
    if (wr.send_flags & IBV_SEND_INLINE) {
      std::memcpy(payload, wr.inline_data + offset, payload_len);
    } else {
      a = GatherSges(qp, wr.sg_list, wr.num_sge, offset, payload, payload_len);
    }
    if (a != Access::kOk) {
      rte_pktmbuf_free(m);
      // A bad local key or range fails the WQE with a local protection error.
      FailSend(qp, a == Access::kLocalProt ? IBV_WC_LOC_PROT_ERR : IBV_WC_LOC_LEN_ERR);
      return false;
    }
  }
  SendPacket(m, h);
  w.next_pkt = last ? w.npkts : i + 1;
  w.req_done = last;
  return true;
}

void RoceDevice::SendUd(QueuePair& qp, SendWqe& w) {
  const SendWr& wr = w.wr;
  const AddressHandle* ah = DatagramPath(wr.ah);
  if (!ah || !ah->path_ok) {
    FailSend(qp, IBV_WC_LOC_QP_OP_ERR);
    return;
  }
  wire::RocePacket h = ah->path;
  h.bth.pkey = qp.pkey;
  h.net.ipv4_id = qp.req.ipv4_id++;
  h.bth.dest_qp = wr.remote_qpn & psn::kMask;
  h.bth.psn = w.first_psn;
  h.bth.solicited = wr.send_flags & IBV_SEND_SOLICITED;
  h.bth.opcode =
      wr.opcode == IBV_WR_SEND_WITH_IMM ? wire::op::kUdSendOnlyImm : wire::op::kUdSendOnly;
  h.imm_be = wr.imm_be;
  // A WR Q_Key with its high bit set means "use the QP's Q_Key" (IBTA 10.2.5, C10-15).
  h.deth.qkey = (wr.remote_qkey & 0x80000000u) ? qp.qkey : wr.remote_qkey;
  h.deth.src_qp = qp.qpn;
  uint8_t* payload = nullptr;
  rte_mbuf* m = NewPacket(&h, w.length, &payload);
  if (!m) return;  // retried on the next pass
  Access a = Access::kOk;
  if (wr.send_flags & IBV_SEND_INLINE) {
    std::memcpy(payload, wr.inline_data, w.length);
  } else if (w.length) {
    a = GatherSges(qp, wr.sg_list, wr.num_sge, 0, payload, w.length);
  }
  if (a != Access::kOk) {
    rte_pktmbuf_free(m);
    FailSend(qp, a == Access::kLocalProt ? IBV_WC_LOC_PROT_ERR : IBV_WC_LOC_LEN_ERR);
    return;
  }
  SendPacket(m, h);
  w.req_done = true;
  qp.req.sq_next++;
  CompleteSend(qp, w, IBV_WC_SUCCESS);
}

void RoceDevice::RetryFrom(QueuePair& qp, uint32_t from_psn) {
  for (uint32_t idx = qp.sq.head(); idx != qp.sq.tail(); ++idx) {
    SendWqe& w = qp.sq.at(idx);
    if (!w.started) break;
    if (psn::Diff(from_psn, w.first_psn) < 0 || psn::Diff(from_psn, w.last_psn) > 0) continue;
    // Go back N (IBTA 9.7.6.2): resend from this packet; later WQEs keep their PSNs.
    for (uint32_t j = idx; j != qp.sq.tail(); ++j) {
      SendWqe& later = qp.sq.at(j);
      if (!later.started) break;
      later.next_pkt = 0;
      later.req_done = false;
    }
    w.next_pkt = static_cast<uint32_t>(psn::Diff(from_psn, w.first_psn));
    qp.req.sq_next = idx;
    counters_.retransmits++;
    Activate(qp);
    return;
  }
}

void RoceDevice::ArmRetransmit(QueuePair& qp) {
  uint64_t t = ibtime::LocalAckTimeoutNs(qp.timeout);
  if (t == 0) return;  // timeout 0: wait forever
  timers_.Arm(&qp.retransmit_timer, now_ + t);
}

}  // namespace vrdma::driver
