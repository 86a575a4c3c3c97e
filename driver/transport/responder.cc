// Responder (IBTA 9.7.5): checks PSN and opcode sequence, executes SEND, RDMA WRITE,
// RDMA READ and ATOMIC requests, answers duplicates, and queues ACKs/NAKs and READ
// responses in PSN order.
#include <atomic>
#include <cstring>

#include "driver/transport/device.h"
#include "driver/transport/psn.h"

namespace vrdma::driver {
namespace {

// The SL of a UD receive over RoCE says what the frame's L3 header was, as mlx5 reports
// it: IBTA A17.4.5.1 asks the CQE of a RoCEv2 UD receive to tell IPv4 from IPv6 frames,
// and ibv_wc has no other field for it. Bit 3: a UDP header (RoCEv2); bits 2:0: 0 GRH
// (RoCEv1), 1 IPv6, 2 IPv4. UCX's UD transport reads it to find the destination address
// in the 40-byte GRH buffer (the last 4 bytes for IPv4).
uint8_t RocePacketType(wire::NetworkType type) {
  switch (type) {
    case wire::NetworkType::kRoceV2Ipv4:
      return 0x8 | 0x2;
    case wire::NetworkType::kRoceV2Ipv6:
      return 0x8 | 0x1;
    case wire::NetworkType::kRoceV1:
      break;
  }
  return 0;
}

// A response in the transport of the QP: XRC's own opcodes for an XRC receive QP.
uint8_t ResponseOpcode(const QueuePair& qp, uint8_t rc_opcode) {
  return qp.type == IBV_QPT_XRC_RECV ? static_cast<uint8_t>(wire::op::kXrcBase | rc_opcode)
                                     : rc_opcode;
}

}  // namespace

void RoceDevice::OnRequest(QueuePair& qp, const wire::RocePacket& pkt, const RecvInfo& info) {
  if (!ReceivesRequests(qp.state)) {
    counters_.rx_unknown_qp++;
    return;
  }
  if (qp.type == IBV_QPT_UD || qp.type == kQpTypeGsi) {
    OnUdRequest(qp, pkt, info);
    return;
  }
  if (qp.type == IBV_QPT_XRC_RECV && !AdoptXrcSrq(qp, pkt)) return;
  // First packet on a QP in RTR: communication established (IBTA 11.6.3.1).
  if (qp.state == IBV_QPS_RTR && !qp.resp.comm_established) {
    qp.resp.comm_established = true;
    PostEvent(IBV_EVENT_COMM_EST, qp.qpn);
  }
  OnRcUcRequest(qp, pkt, info);
}

bool RoceDevice::AdoptXrcSrq(QueuePair& qp, const wire::RocePacket& pkt) {
  // The XRCETH must name an XRC SRQ of the receive QP's own domain (IBTA annex A14), and
  // every packet of a message the same one; anything else is a request the responder
  // cannot execute: Invalid Request (IBTA 9.7.5.2.3).
  ResponderState& r = qp.resp;
  const SharedReceiveQueue* srq = srqs_.Get(pkt.xrc_srqn);
  bool in_msg = r.kind != ResponderState::kNone;
  if (!srq || !srq->xrc || srq->xrcd != qp.init.xrcd || (in_msg && pkt.xrc_srqn != r.xrc_srq)) {
    counters_.rx_bad_xrc_srq++;
    // A duplicate is answered from what the QP remembers, whatever it names now.
    if (psn::Diff(pkt.bth.psn, r.epsn) < 0) return true;
    RejectRequest(qp, wire::aeth::kNakInvalidRequest, IBV_EVENT_QP_REQ_ERR);
    return false;
  }
  r.xrc_srq = pkt.xrc_srqn;
  r.xrc_cq = srq->cq;
  qp.pd = srq->pd;
  return true;
}

bool RoceDevice::TakeRecv(QueuePair& qp, RecvWr* out) {
  const bool xrc = qp.type == IBV_QPT_XRC_RECV;
  if (xrc || qp.init.has_srq) {
    const uint32_t srq_h = xrc ? qp.resp.xrc_srq : qp.init.srq;
    SharedReceiveQueue* srq = srqs_.Get(srq_h);
    if (!srq || srq->wqes.empty()) return false;
    *out = srq->wqes.front();
    srq->wqes.PopUnpublished();
    HoldRetired(*srq);  // before the receive completion is seen
    // SRQ limit event fires once when the queue drops below an armed limit (IBTA 10.2.9.4).
    if (srq->limit && srq->wqes.size() < srq->limit) {
      srq->limit = 0;
      PostEvent(IBV_EVENT_SRQ_LIMIT_REACHED, srq_h);
    }
    return true;
  }
  if (qp.rq.empty()) return false;
  *out = qp.rq.front();
  qp.rq.PopUnpublished();
  HoldRetired(qp);  // before the receive completion is seen
  return true;
}

void RoceDevice::QueueAck(QueuePair& qp, uint32_t ack_psn, uint8_t syndrome, bool coalesce) {
  auto& q = qp.resp.responses;
  // ACK coalescing: a newer ACK replaces a queued ACK that has not gone out yet.
  if (coalesce && !q.empty()) {
    ResponseEntry& tail = q.at(q.tail() - 1);
    if (tail.kind == ResponseEntry::kAck &&
        tail.syndrome == wire::aeth::kAck + wire::aeth::kCreditInvalid) {
      tail.psn = ack_psn;
      tail.msn = qp.resp.msn;
      return;
    }
  }
  if (!ResponseRoom(qp.resp)) return;  // a later ACK covers this one, or the requester retries
  ResponseEntry& e = q.next_free();
  e = ResponseEntry{};
  e.kind = ResponseEntry::kAck;
  e.psn = ack_psn;
  e.syndrome = syndrome;
  e.msn = qp.resp.msn;
  q.Commit();
  Activate(qp);
}

void RoceDevice::RejectRequest(QueuePair& qp, uint8_t nak_code, ibv_event_type event) {
  if (IsReliable(qp.type)) {
    // A receive WQE the failed message held completes with the same class of error.
    ResponderError(qp, nak_code,
                   nak_code == wire::aeth::kNakRemoteAccessError ? IBV_WC_REM_ACCESS_ERR
                                                                 : IBV_WC_REM_INV_REQ_ERR,
                   event);
    return;
  }
  // UC has no NAKs: the message in progress is dropped (IBTA 9.8.3) and its receive
  // WQE, if it had one, waits for the next message.
  qp.resp.kind = ResponderState::kNone;
  qp.resp.recv_offset = 0;
}

void RoceDevice::NoReceiveWqe(QueuePair& qp) {
  if (IsReliable(qp.type)) {
    SendRnrNak(qp);
    return;
  }
  counters_.rx_no_recv_wqe++;  // UC drops the message
  qp.resp.kind = ResponderState::kNone;
}

void RoceDevice::SendRnrNak(QueuePair& qp) {
  // Receiver not ready (IBTA 9.7.5.2.8): RNR NAK with our minimum RNR timer. The rest of
  // the requester's burst is dropped silently, as after a sequence NAK, until it
  // retries this PSN: one NAK per stall, so RNR waits do not eat the retry count.
  counters_.rnr_naks_sent++;
  qp.resp.nak_sent = true;
  QueueAck(qp, qp.resp.epsn, static_cast<uint8_t>(wire::aeth::kRnrNak | qp.min_rnr_timer), false);
}

void RoceDevice::ResponderError(QueuePair& qp, uint8_t nak_code, ibv_wc_status recv_status,
                                ibv_event_type event) {
  // Send the NAK before the QP enters Error (the flush clears the response queue).
  wire::RocePacket h = qp.tmpl;
  h.bth.opcode = ResponseOpcode(qp, wire::op::kRcAcknowledge);
  h.bth.psn = qp.resp.epsn;
  h.aeth.syndrome = static_cast<uint8_t>(wire::aeth::kNak | nak_code);
  h.aeth.msn = qp.resp.msn;
  if (IsReliable(qp.type)) {
    uint8_t* payload;
    if (rte_mbuf* m = NewPacket(&h, 0, &payload)) SendPacket(m, h);
    counters_.naks_sent++;
  }
  if (qp.resp.have_recv && recv_status != IBV_WC_SUCCESS) {
    CompleteRecv(qp, IBV_WC_RECV, 0, recv_status, nullptr, nullptr);
  }
  PostEvent(event, qp.qpn);
  EnterError(qp);
}

void RoceDevice::OnRcUcRequest(QueuePair& qp, const wire::RocePacket& pkt, const RecvInfo& info) {
  ResponderState& r = qp.resp;
  const uint16_t flags = wire::GetOpcodeInfo(pkt.bth.opcode).flags;
  bool rc = IsReliable(qp.type);
  int32_t d = psn::Diff(pkt.bth.psn, r.epsn);
  if (rc) {
    if (d < 0) {
      counters_.rx_duplicate++;
      OnDuplicate(qp, pkt);
      return;
    }
    if (d > 0) {
      // PSN sequence error: one NAK per gap, then silence until the expected PSN comes
      // (IBTA 9.7.5, the responder's sequence check).
      counters_.rx_out_of_sequence++;
      if (!r.nak_sent) {
        r.nak_sent = true;
        counters_.seq_naks_sent++;
        QueueAck(qp, r.epsn, wire::aeth::kNak | wire::aeth::kNakPsnSeqError, false);
      }
      return;
    }
    r.nak_sent = false;
  } else if (d != 0) {
    // UC: a lost packet drops the message in progress; resume at the next FIRST/ONLY
    // (IBTA 9.8.3, the unreliable connection responder).
    counters_.rx_out_of_sequence++;
    r.kind = ResponderState::kNone;
    r.recv_offset = 0;
    r.epsn = pkt.bth.psn;
  }

  // Opcode sequence (IBTA 9.7.5): inside a message only MIDDLE and LAST of
  // the same operation; outside it, only FIRST or ONLY.
  bool in_msg = r.kind != ResponderState::kNone;
  bool cont = flags & (wire::kOpMiddle) || ((flags & wire::kOpLast) && !(flags & wire::kOpFirst));
  bool same_kind = (r.kind == ResponderState::kSend && (flags & wire::kOpSend)) ||
                   (r.kind == ResponderState::kWrite && (flags & wire::kOpWrite));
  if (in_msg != cont || (in_msg && !same_kind)) {
    RejectRequest(qp, wire::aeth::kNakInvalidRequest, IBV_EVENT_QP_REQ_ERR);
    if (rc || !(flags & wire::kOpFirst)) return;  // UC: a new message may start here
  }

  // Every packet but the last of a message carries exactly one path MTU (IBTA 9.7.5).
  bool last = flags & wire::kOpLast;
  if ((flags & wire::kOpPayload) &&
      ((!last && pkt.payload_len != qp.mtu) || pkt.payload_len > qp.mtu)) {
    RejectRequest(qp, wire::aeth::kNakInvalidRequest, IBV_EVENT_QP_REQ_ERR);
    return;
  }

  if (flags & wire::kOpSend) {
    DoSend(qp, pkt, flags, info);
  } else if (rc && (flags & wire::kOpAtomicWrite)) {
    DoAtomicWrite(qp, pkt);
  } else if (flags & wire::kOpWrite) {
    DoWrite(qp, pkt, flags, info);
  } else if (rc && (flags & wire::kOpReadReq)) {
    DoRead(qp, pkt, false);
  } else if (rc && (flags & wire::kOpAtomic)) {
    DoAtomic(qp, pkt);
  }
}

void RoceDevice::DoSend(QueuePair& qp, const wire::RocePacket& pkt, uint16_t flags,
                        const RecvInfo& info) {
  ResponderState& r = qp.resp;
  bool rc = IsReliable(qp.type);
  bool last = flags & wire::kOpLast;
  if (flags & wire::kOpFirst) {
    if (!r.have_recv && !TakeRecv(qp, &r.recv)) {
      NoReceiveWqe(qp);
      return;
    }
    r.have_recv = true;
    r.recv_offset = 0;
    r.kind = ResponderState::kSend;
  }
  if (pkt.payload_len) {
    Access a = ScatterSges(qp, r.recv.sg_list, r.recv.num_sge, r.recv_offset, pkt.payload,
                           pkt.payload_len);
    if (a != Access::kOk) {
      // Message longer than the receive buffer: local length error at the responder
      // and an Invalid Request NAK (IBTA 9.7.5); bad receive key: local
      // protection error and a Remote Operational Error NAK.
      if (rc) {
        if (a == Access::kLength) {
          ResponderError(qp, wire::aeth::kNakInvalidRequest, IBV_WC_LOC_LEN_ERR,
                         IBV_EVENT_QP_REQ_ERR);
        } else {
          ResponderError(qp, wire::aeth::kNakRemoteOperationalError, IBV_WC_LOC_PROT_ERR,
                         IBV_EVENT_QP_FATAL);
        }
      } else {
        CompleteRecv(qp, IBV_WC_RECV, 0,
                     a == Access::kLength ? IBV_WC_LOC_LEN_ERR : IBV_WC_LOC_PROT_ERR, nullptr,
                     nullptr);
        r.kind = ResponderState::kNone;
      }
      return;
    }
  }
  r.recv_offset += pkt.payload_len;
  r.epsn = psn::Add(r.epsn, 1);
  if (last) {
    r.msn = psn::Add(r.msn, 1);
    if (flags & wire::kOpInv) {
      // SEND with Invalidate: the named rkey stops working (IBTA 10.6.6 / 9.4.1.1).
      if (!InvalidateKey(qp, pkt.ieth_rkey, /*remote=*/true)) {
        ResponderError(qp, wire::aeth::kNakInvalidRequest, IBV_WC_REM_INV_REQ_ERR,
                       IBV_EVENT_QP_REQ_ERR);
        return;
      }
    }
    CompleteRecv(qp, IBV_WC_RECV, r.recv_offset, IBV_WC_SUCCESS, &pkt, &info);
    r.kind = ResponderState::kNone;
  }
  if (rc && pkt.bth.ack_req)
    QueueAck(qp, pkt.bth.psn, wire::aeth::kAck + wire::aeth::kCreditInvalid, true);
}

void RoceDevice::DoWrite(QueuePair& qp, const wire::RocePacket& pkt, uint16_t flags,
                         const RecvInfo& info) {
  ResponderState& r = qp.resp;
  bool rc = IsReliable(qp.type);
  bool last = flags & wire::kOpLast;
  // RDMA WRITE with immediate consumes a receive WQE: without one, RNR (IBTA 9.7.5.2.8).
  if ((flags & wire::kOpImm) && !r.have_recv) {
    if (!TakeRecv(qp, &r.recv)) {
      NoReceiveWqe(qp);
      return;
    }
    r.have_recv = true;
  }
  if (flags & wire::kOpFirst) {
    r.write_va = pkt.reth.va;
    r.write_rkey = pkt.reth.rkey;
    r.write_resid = pkt.reth.dma_len;
    r.write_len = pkt.reth.dma_len;
    // A zero-length RDMA WRITE checks no R_Key (IBTA 9.4.3).
    if (pkt.reth.dma_len &&
        !ResolveRkey(qp, pkt.reth.rkey, pkt.reth.va, pkt.reth.dma_len, IBV_ACCESS_REMOTE_WRITE)) {
      RejectRequest(qp, wire::aeth::kNakRemoteAccessError, IBV_EVENT_QP_ACCESS_ERR);
      return;
    }
    r.kind = ResponderState::kWrite;
  }
  if (pkt.payload_len > r.write_resid || (last && pkt.payload_len != r.write_resid)) {
    // More or less data than the RETH announced: Invalid Request (IBTA 9.7.5).
    RejectRequest(qp, wire::aeth::kNakInvalidRequest, IBV_EVENT_QP_REQ_ERR);
    return;
  }
  if (pkt.payload_len) {
    const MemoryRegion* mr;
    uint8_t* dst =
        ResolveRkey(qp, r.write_rkey, r.write_va, pkt.payload_len, IBV_ACCESS_REMOTE_WRITE, &mr);
    if (!dst) {  // MR deregistered or invalidated mid-message
      RejectRequest(qp, wire::aeth::kNakRemoteAccessError, IBV_EVENT_QP_ACCESS_ERR);
      return;
    }
    std::memcpy(dst, pkt.payload, pkt.payload_len);
    if (LostPage(*mr)) {
      // The target's page vanished under the copy: its MR is poisoned and the request
      // is refused as for an invalid R_Key (IBTA 9.7.5.2: Remote Access Error).
      RejectRequest(qp, wire::aeth::kNakRemoteAccessError, IBV_EVENT_QP_ACCESS_ERR);
      return;
    }
  }
  r.write_va += pkt.payload_len;
  r.write_resid -= pkt.payload_len;
  r.epsn = psn::Add(r.epsn, 1);
  if (last) {
    r.msn = psn::Add(r.msn, 1);
    if (flags & wire::kOpImm)
      CompleteRecv(qp, IBV_WC_RECV_RDMA_WITH_IMM, r.write_len, IBV_WC_SUCCESS, &pkt, &info);
    r.kind = ResponderState::kNone;
  }
  if (rc && pkt.bth.ack_req)
    QueueAck(qp, pkt.bth.psn, wire::aeth::kAck + wire::aeth::kCreditInvalid, true);
}

// IBTA 1.5 ATOMIC WRITE: 8 bytes stored at once, at an 8-byte aligned address of memory the
// requester may write (the access rxe checks), acknowledged as an RDMA WRITE. A duplicate
// is acknowledged again and not executed (OnDuplicate), as a WRITE is.
void RoceDevice::DoAtomicWrite(QueuePair& qp, const wire::RocePacket& pkt) {
  ResponderState& r = qp.resp;
  if (pkt.reth.dma_len != 8 || pkt.payload_len != 8 || (pkt.reth.va & 7)) {
    RejectRequest(qp, wire::aeth::kNakInvalidRequest, IBV_EVENT_QP_REQ_ERR);
    return;
  }
  const MemoryRegion* mr;
  uint8_t* target = ResolveRkey(qp, pkt.reth.rkey, pkt.reth.va, 8, IBV_ACCESS_REMOTE_WRITE, &mr);
  if (!target) {
    RejectRequest(qp, wire::aeth::kNakRemoteAccessError, IBV_EVENT_QP_ACCESS_ERR);
    return;
  }
  uint64_t value;
  std::memcpy(&value, pkt.payload, 8);
  std::atomic_ref<uint64_t>(*reinterpret_cast<uint64_t*>(target)).store(value);
  if (LostPage(*mr)) {
    RejectRequest(qp, wire::aeth::kNakRemoteAccessError, IBV_EVENT_QP_ACCESS_ERR);
    return;
  }
  r.epsn = psn::Add(r.epsn, 1);
  r.msn = psn::Add(r.msn, 1);
  QueueAck(qp, pkt.bth.psn, wire::aeth::kAck + wire::aeth::kCreditInvalid, true);
}

bool RoceDevice::ResponseRoom(ResponderState& r) {
  // The ring is made at a QP's first response (ACK, NAK, READ or atomic), so that an idle
  // QP, or one that only sends, carries none. Its depth is for a peer that keeps as many READs
  // outstanding as its own device allows (rxe: 128), whatever max_dest_rd_atomic says:
  // a saved response dropped for want of room costs the requester a timeout.
  if (r.responses.depth() == 0) r.responses.Init(2 * cfg_.limits.max_qp_init_rd_atom + 4);
  return !r.responses.full();
}

void RoceDevice::DoRead(QueuePair& qp, const wire::RocePacket& pkt, bool duplicate) {
  ResponderState& r = qp.resp;
  if (!ResponseRoom(r)) return;  // no room to answer: the requester will retry
  uint32_t len = pkt.reth.dma_len;
  if (len && !ResolveRkey(qp, pkt.reth.rkey, pkt.reth.va, len, IBV_ACCESS_REMOTE_READ)) {
    ResponderError(qp, wire::aeth::kNakRemoteAccessError, IBV_WC_SUCCESS, IBV_EVENT_QP_ACCESS_ERR);
    return;
  }
  if (len > (1u << 31)) {
    ResponderError(qp, wire::aeth::kNakInvalidRequest, IBV_WC_SUCCESS, IBV_EVENT_QP_REQ_ERR);
    return;
  }
  uint32_t npkts = psn::PacketCount(len, qp.mtu);
  if (!duplicate) {
    if (qp.max_dest_rd_atomic == 0) {
      ResponderError(qp, wire::aeth::kNakInvalidRequest, IBV_WC_SUCCESS, IBV_EVENT_QP_REQ_ERR);
      return;
    }
    RdAtomicResource& res = r.resources[r.next_resource];
    r.next_resource = (r.next_resource + 1) % qp.max_dest_rd_atomic;
    res.valid = true;
    res.is_atomic = false;
    res.first_psn = pkt.bth.psn;
    res.last_psn = psn::Add(pkt.bth.psn, npkts - 1);
    r.epsn = psn::Add(r.epsn, npkts);
    r.msn = psn::Add(r.msn, 1);
  }
  ResponseEntry& e = r.responses.next_free();
  e = ResponseEntry{};
  e.kind = ResponseEntry::kRead;
  e.psn = pkt.bth.psn;
  e.last_psn = psn::Add(pkt.bth.psn, npkts - 1);
  e.va = pkt.reth.va;
  e.rkey = pkt.reth.rkey;
  e.length = len;
  e.msn = r.msn;
  e.pd = qp.pd;
  r.responses.Commit();
  Activate(qp);
}

void RoceDevice::DoAtomic(QueuePair& qp, const wire::RocePacket& pkt) {
  ResponderState& r = qp.resp;
  if (!ResponseRoom(r)) return;
  if (qp.max_dest_rd_atomic == 0) {
    ResponderError(qp, wire::aeth::kNakInvalidRequest, IBV_WC_SUCCESS, IBV_EVENT_QP_REQ_ERR);
    return;
  }
  // The target must be 8-byte aligned (IBTA 9.4.5): otherwise Invalid Request.
  if (pkt.atomic.va & 7) {
    ResponderError(qp, wire::aeth::kNakInvalidRequest, IBV_WC_SUCCESS, IBV_EVENT_QP_REQ_ERR);
    return;
  }
  const MemoryRegion* mr;
  uint8_t* target =
      ResolveRkey(qp, pkt.atomic.rkey, pkt.atomic.va, 8, IBV_ACCESS_REMOTE_ATOMIC, &mr);
  if (!target) {
    ResponderError(qp, wire::aeth::kNakRemoteAccessError, IBV_WC_SUCCESS, IBV_EVENT_QP_ACCESS_ERR);
    return;
  }
  // Atomic with respect to every other access through this device (IBV_ATOMIC_HCA).
  std::atomic_ref<uint64_t> word(*reinterpret_cast<uint64_t*>(target));
  uint64_t orig;
  if ((pkt.bth.opcode & wire::op::kLowBits) == wire::op::kRcCompareSwap) {
    orig = pkt.atomic.compare;
    word.compare_exchange_strong(orig, pkt.atomic.swap_add);
  } else {
    orig = word.fetch_add(pkt.atomic.swap_add);
  }
  if (LostPage(*mr)) {  // the target's page vanished: as a bad R_Key
    ResponderError(qp, wire::aeth::kNakRemoteAccessError, IBV_WC_SUCCESS, IBV_EVENT_QP_ACCESS_ERR);
    return;
  }
  RdAtomicResource& res = r.resources[r.next_resource];
  r.next_resource = (r.next_resource + 1) % qp.max_dest_rd_atomic;
  res.valid = true;
  res.is_atomic = true;
  res.first_psn = res.last_psn = pkt.bth.psn;
  res.atomic_orig = orig;
  r.epsn = psn::Add(r.epsn, 1);
  r.msn = psn::Add(r.msn, 1);
  ResponseEntry& e = r.responses.next_free();
  e = ResponseEntry{};
  e.kind = ResponseEntry::kAtomicAck;
  e.psn = pkt.bth.psn;
  e.msn = r.msn;
  e.atomic_orig = orig;
  r.responses.Commit();
  Activate(qp);
}

// A duplicate READ at `from_psn` means the requester went back N to it: it resends
// that READ and every request after it, so queued responses from that PSN on would only
// arrive as duplicates or out of sequence. The responder stops them and answers the new
// requests instead (IBTA 9.7.5.1.4: it may abandon the response in progress for the
// duplicate; rdma_rxe replays from the duplicate's PSN the same way).
void RoceDevice::DropSupersededResponses(QueuePair& qp, uint32_t from_psn) {
  auto& q = qp.resp.responses;
  for (uint32_t i = q.head(); i != q.tail(); ++i) {
    const ResponseEntry& e = q.at(i);
    // A READ entry covers e.psn (its next packet) to e.last_psn.
    uint32_t end = e.kind == ResponseEntry::kRead ? e.last_psn : e.psn;
    if (psn::Diff(end, from_psn) >= 0) {
      q.DropFrom(i);
      return;
    }
  }
}

void RoceDevice::OnDuplicate(QueuePair& qp, const wire::RocePacket& pkt) {
  ResponderState& r = qp.resp;
  const uint16_t flags = wire::GetOpcodeInfo(pkt.bth.opcode).flags;
  if (flags & (wire::kOpSend | wire::kOpWrite)) {
    // Duplicate SEND/WRITE: not executed again, acknowledged again (IBTA 9.7.5).
    if (pkt.bth.ack_req)
      QueueAck(qp, psn::Add(r.epsn, psn::kMask), wire::aeth::kAck + wire::aeth::kCreditInvalid,
               true);
    return;
  }
  // Duplicate READ or ATOMIC: find the resource it belongs to.
  for (const RdAtomicResource& res : r.resources) {
    if (!res.valid || psn::Diff(pkt.bth.psn, res.first_psn) < 0 ||
        psn::Diff(pkt.bth.psn, res.last_psn) > 0) {
      continue;
    }
    if (flags & wire::kOpReadReq) {
      if (res.is_atomic) return;
      DropSupersededResponses(qp, pkt.bth.psn);
      DoRead(qp, pkt, /*duplicate=*/true);  // re-executed from the asked-for PSN
      return;
    }
    if (!res.is_atomic || res.first_psn != pkt.bth.psn || !ResponseRoom(r)) return;
    // A duplicate atomic gets its saved result, never a second execution (IBTA 9.4.5).
    ResponseEntry& e = r.responses.next_free();
    e = ResponseEntry{};
    e.kind = ResponseEntry::kAtomicAck;
    e.psn = pkt.bth.psn;
    e.msn = r.msn;
    e.atomic_orig = res.atomic_orig;
    r.responses.Commit();
    Activate(qp);
    return;
  }
  // Too old to remember: dropped; the requester's retry limit ends it.
}

void RoceDevice::OnUdRequest(QueuePair& qp, const wire::RocePacket& pkt, const RecvInfo& info) {
  if (wire::TransportOf(pkt.bth.opcode) != wire::Transport::kUd) {
    counters_.rx_wrong_transport++;
    return;
  }
  // Q_Key check (IBTA 10.2.5): mismatching datagrams are silently dropped.
  if (pkt.deth.qkey != qp.qkey) {
    counters_.rx_bad_qkey++;
    return;
  }
  RecvWr wr;
  if (!TakeRecv(qp, &wr)) {
    // The client may have posted the WQE after its rings were drained for this pass and
    // before this frame came: a NIC would have seen that doorbell first. The datagram
    // waits one pass, for the next drain, and only then is dropped (IBTA C11-20).
    if (rx_may_hold_ && rx_waiting_.size() < kRxWaitingDepth) {
      rx_held_ = true;
      return;
    }
    counters_.rx_no_recv_wqe++;
    return;
  }
  qp.resp.recv = wr;
  qp.resp.have_recv = true;
  // The first 40 bytes of a UD receive buffer hold the GRH; for RoCEv2 over IPv4 the
  // 20-byte IPv4 header sits in its last 20 bytes (as Linux and verbs define it).
  uint8_t grh[wire::kGrhLen] = {};
  uint32_t ext_len = wire::GetOpcodeInfo(pkt.bth.opcode).ext_len;
  const uint8_t* l3 = pkt.payload - ext_len - wire::kBthLen - (pkt.bth_off - pkt.l3_off);
  if (pkt.net.type == wire::NetworkType::kRoceV2Ipv4) {
    std::memcpy(grh + wire::kGrhLen - wire::kIpv4Len, l3, wire::kIpv4Len);
  } else {
    std::memcpy(grh, l3, wire::kGrhLen);
  }
  Access a = ScatterSges(qp, wr.sg_list, wr.num_sge, 0, grh, wire::kGrhLen);
  if (a == Access::kOk && pkt.payload_len) {
    a = ScatterSges(qp, wr.sg_list, wr.num_sge, wire::kGrhLen, pkt.payload, pkt.payload_len);
  }
  if (a != Access::kOk) {
    CompleteRecv(qp, IBV_WC_RECV, 0,
                 a == Access::kLength ? IBV_WC_LOC_LEN_ERR : IBV_WC_LOC_PROT_ERR, &pkt, &info);
    EnterError(qp);
    return;
  }
  CompleteRecv(qp, IBV_WC_RECV, wire::kGrhLen + pkt.payload_len, IBV_WC_SUCCESS, &pkt, &info);
}

void RoceDevice::CompleteRecv(QueuePair& qp, ibv_wc_opcode op, uint32_t byte_len,
                              ibv_wc_status status, const wire::RocePacket* pkt,
                              const RecvInfo* info) {
  ibv_wc wc{};
  wc.wr_id = qp.resp.recv.wr_id;
  wc.status = status;
  wc.opcode = op;
  wc.byte_len = byte_len;
  wc.qp_num = qp.qpn;
  wc.src_qp = qp.dest_qpn;
  bool solicited = false;
  if (pkt) {
    const uint16_t flags = wire::GetOpcodeInfo(pkt->bth.opcode).flags;
    if (flags & wire::kOpImm) {
      wc.wc_flags |= IBV_WC_WITH_IMM;
      wc.imm_data = pkt->imm_be;
    } else if (flags & wire::kOpInv) {
      wc.wc_flags |= IBV_WC_WITH_INV;
      wc.invalidated_rkey = pkt->ieth_rkey;
    }
    if (pkt->ext & wire::kHdrDeth) {
      wc.src_qp = pkt->deth.src_qp;
      wc.wc_flags |= IBV_WC_GRH;
      wc.sl = RocePacketType(pkt->net.type);
    }
    solicited = pkt->bth.solicited;
  }
  qp.resp.have_recv = false;
  PushCqe(RecvCq(qp), wc, solicited, info);
}

void RoceDevice::RunResponses(QueuePair& qp, uint32_t* budget) {
  auto& q = qp.resp.responses;
  while (*budget > 0 && !q.empty() && qp.state != IBV_QPS_ERR) {
    ResponseEntry& e = q.front();
    wire::RocePacket h = qp.tmpl;
    h.net.ipv4_id = qp.req.ipv4_id++;
    uint8_t* payload = nullptr;
    if (e.kind == ResponseEntry::kAck) {
      h.bth.opcode = ResponseOpcode(qp, wire::op::kRcAcknowledge);
      h.bth.psn = e.psn;
      h.aeth.syndrome = e.syndrome;
      h.aeth.msn = e.msn;
      rte_mbuf* m = NewPacket(&h, 0, &payload);
      if (!m) return;
      SendPacket(m, h);
      q.Pop();
    } else if (e.kind == ResponseEntry::kAtomicAck) {
      h.bth.opcode = ResponseOpcode(qp, wire::op::kRcAtomicAcknowledge);
      h.bth.psn = e.psn;
      h.aeth.syndrome = wire::aeth::kAck + wire::aeth::kCreditInvalid;
      h.aeth.msn = e.msn;
      h.atomic_ack_orig = e.atomic_orig;
      rte_mbuf* m = NewPacket(&h, 0, &payload);
      if (!m) return;
      SendPacket(m, h);
      q.Pop();
    } else {
      uint32_t n = e.length < qp.mtu ? e.length : qp.mtu;
      bool last = e.length <= qp.mtu;
      h.bth.opcode = ResponseOpcode(qp, !e.first_sent ? (last ? wire::op::kRcReadResponseOnly
                                                              : wire::op::kRcReadResponseFirst)
                                        : last        ? wire::op::kRcReadResponseLast
                                                      : wire::op::kRcReadResponseMiddle);
      h.bth.psn = e.psn;
      h.aeth.syndrome = wire::aeth::kAck + wire::aeth::kCreditInvalid;
      h.aeth.msn = e.msn;
      const MemoryRegion* mr = nullptr;
      qp.pd = e.pd;  // as checked when the READ came (an XRC QP's PD is per request)
      const uint8_t* src =
          n ? ResolveRkey(qp, e.rkey, e.va, n, IBV_ACCESS_REMOTE_READ, &mr) : nullptr;
      if (n && !src) {
        // The MR went away between request and response.
        q.Pop();
        qp.resp.epsn = e.psn;
        ResponderError(qp, wire::aeth::kNakRemoteAccessError, IBV_WC_SUCCESS,
                       IBV_EVENT_QP_ACCESS_ERR);
        return;
      }
      rte_mbuf_ext_shared_info* share = mr ? mr->tx_share : nullptr;
      rte_mbuf* m;
      const bool zero_copy = UseZeroCopy(h, n, share);
      if (zero_copy) {
        m = NewZeroCopyPacket(&h, src, n, share);  // sent from the MR itself (ICRC read)
        if (!m) return;
      } else {
        m = NewPacket(&h, n, &payload);
        if (!m) return;
        if (n) std::memcpy(payload, src, n);
      }
      if (mr && LostPage(*mr)) {
        // A page of the source vanished under the copy: the MR is poisoned, and the
        // response stops as for an MR gone between request and response.
        rte_pktmbuf_free(m);
        q.Pop();
        qp.resp.epsn = e.psn;
        ResponderError(qp, wire::aeth::kNakRemoteAccessError, IBV_WC_SUCCESS,
                       IBV_EVENT_QP_ACCESS_ERR);
        return;
      }
      if (zero_copy) {
        Transmit(m);
      } else {
        SendPacket(m, h);
      }
      e.first_sent = true;
      e.va += n;
      e.length -= n;
      e.psn = psn::Add(e.psn, 1);
      if (last) q.Pop();
    }
    --*budget;
  }
}

}  // namespace vrdma::driver
