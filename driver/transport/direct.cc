// Direct execution between two RC QPs of one device: a SEND, RDMA WRITE or READ whose
// frames would only go round the device's internal switch to its own peer QP moves its
// payload once, from one MR to the other, with no frames at all.
//
// It is taken only when the two QPs are in step: nothing of the requester's is in flight
// (the WQE is the oldest, every earlier PSN acknowledged) and the responder expects the
// WQE's first PSN with no message, NAK or response of its own pending. The result is what
// the frames would have left: the responder's expected PSN and MSN advance by the
// message, the requester's WQE completes as acknowledged (IBTA 9.7.5.1, 9.7.6), and every
// check the frames would have met is made by the same code. Whatever would end in a NAK
// (a bad R_Key or range, a target page that vanished, no READ resources, no receive WQE
// or one too short or with a bad key) is left to the frames, so that the peer refuses it
// with the NAK (RNR too) and the asynchronous event the spec asks for; a bad local key or
// SGE list fails the WQE as the requester's own frames would.
#include <cstring>

#include "driver/transport/device.h"
#include "driver/transport/psn.h"

namespace vrdma::driver {

bool RoceDevice::TurnsAround(const wire::RocePacket& hdr) const {
  // A raw packet QP's flow rules see every frame before the RoCE path (receive_check.cc):
  // with any, the frames are made.
  return flows_.empty() && (rx_in_place_ || (cfg_.hairpin && IsLocalMac(hdr.eth.dst.data())));
}

QueuePair* RoceDevice::LocalPeer(QueuePair& qp, RecvInfo* info) {
  // The frames come back to this engine: the port is the internal switch, or the
  // embedded switch turns frames to one of its own MACs around (engine.cc, Transmit).
  if (!TurnsAround(qp.tmpl)) return nullptr;
  // Where they arrive and whether the QP there takes them depends only on the two QPs'
  // attributes and the GID table: found once per change of any (the lookups and the
  // receive checks were a fifth of a small SEND's time).
  if (qp.dest_epoch != path_epoch_) {
    wire::RocePacket pkt = qp.tmpl;  // the headers every request of the QP carries
    pkt.bth.opcode = wire::op::kRcWriteOnly;
    qp.dest_peer = nullptr;
    if (FindDestination(pkt, &qp.dest_info)) {
      QueuePair* peer = LookupQp(qp.dest_qpn);
      if (peer && peer->type == IBV_QPT_RC && !Refusal(*peer, pkt, qp.dest_info)) {
        qp.dest_peer = peer;
      }
    }
    qp.dest_epoch = path_epoch_;
  }
  *info = qp.dest_info;
  return qp.dest_peer;
}

const RecvWr* RoceDevice::NextRecv(const QueuePair& qp) const {
  if (qp.init.has_srq) {
    const SharedReceiveQueue* srq = srqs_.Get(qp.init.srq);
    return srq && !srq->wqes.empty() ? &srq->wqes.front() : nullptr;
  }
  return qp.rq.empty() ? nullptr : &qp.rq.front();
}

RoceDevice::Access RoceDevice::ResolveSendPayload(const QueuePair& qp, const SendWr& wr,
                                                  uint32_t len, SendPayload* out) {
  // Every local SGE resolved before a byte moves, as the first frame's gather would fail
  // on it.
  out->count = 0;
  if (wr.send_flags & IBV_SEND_INLINE) {
    out->pieces[out->count++] = {wr.inline_data, len, nullptr};
    return Access::kOk;
  }
  uint32_t total = 0;
  for (uint32_t i = 0; i < wr.num_sge && i < kMaxSgePerWqe && total < len; ++i) {
    const Sge& sge = wr.sg_list[i];
    const uint32_t n = sge.length < len - total ? sge.length : len - total;
    if (!n) continue;
    const MemoryRegion* mr = FindMr(sge.lkey);
    const uint8_t* src =
        mr && mr->pd == qp.pd && !mr->poisoned ? TranslateMr(*mr, sge.addr, n) : nullptr;
    if (!src) return Access::kLocalProt;
    out->pieces[out->count++] = {src, n, mr};
    total += n;
  }
  return total == len ? Access::kOk : Access::kLength;
}

bool RoceDevice::ScatterPayload(const QueuePair& peer, const RecvWr& recv, uint32_t offset,
                                const SendPayload& payload) {
  for (uint32_t i = 0; i < payload.count; ++i) {
    const SendPayload::Piece& p = payload.pieces[i];
    if (ScatterSges(peer, recv.sg_list, recv.num_sge, offset, p.src, p.n) != Access::kOk) {
      return false;
    }
    offset += p.n;
  }
  return true;
}

bool RoceDevice::PayloadLost(const SendPayload& payload) {
  bool lost = false;
  for (uint32_t i = 0; i < payload.count; ++i) {
    const MemoryRegion* mr = payload.pieces[i].mr;
    if (mr && (LostPage(*mr) || mr->poisoned)) lost = true;
  }
  return lost;
}

namespace {

// The opcode a SEND or WRITE message of one packet would carry (IBTA 9.2 table 38): what
// the receive completion reports (immediate data, solicited event).
uint8_t OnlyOpcode(ibv_wr_opcode op) {
  switch (op) {
    case IBV_WR_SEND_WITH_IMM:
      return wire::op::kRcSendOnlyImm;
    case IBV_WR_RDMA_WRITE_WITH_IMM:
      return wire::op::kRcWriteOnlyImm;
    case IBV_WR_RDMA_WRITE:
      return wire::op::kRcWriteOnly;
    default:
      return wire::op::kRcSendOnly;
  }
}

}  // namespace

bool RoceDevice::ExecuteDirect(QueuePair& qp, SendWqe& w) {
  const SendWr& wr = w.wr;
  const bool read = wr.opcode == IBV_WR_RDMA_READ;
  const bool send = wr.opcode == IBV_WR_SEND || wr.opcode == IBV_WR_SEND_WITH_IMM;
  const bool write = wr.opcode == IBV_WR_RDMA_WRITE || wr.opcode == IBV_WR_RDMA_WRITE_WITH_IMM;
  if (qp.type == IBV_QPT_UD) return ExecuteDirectUd(qp, w);
  if (!cfg_.direct || qp.type != IBV_QPT_RC || qp.state != IBV_QPS_RTS) return false;
  if (!read && !send && !write) return false;
  if (read && (wr.send_flags & IBV_SEND_INLINE)) return false;
  if (&qp.sq.front() != &w || w.next_pkt != 0 || qp.req.retrying || qp.req.rnr_wait ||
      psn::Add(qp.req.acked_psn, 1) != w.first_psn) {
    return false;
  }
  RecvInfo info;
  QueuePair* peer = LocalPeer(qp, &info);
  if (!peer) return false;
  ResponderState& r = peer->resp;
  // The responder's states that execute requests (responder.cc, OnRequest).
  if (!ReceivesRequests(peer->state)) return false;
  // Every packet but the last carries one path MTU: the same MTU on both sides, or the
  // frames' Invalid Request.
  if (r.kind != ResponderState::kNone || r.nak_sent || r.have_recv || !r.responses.empty() ||
      r.epsn != w.first_psn || peer->mtu != qp.mtu) {
    return false;
  }
  // A SEND or a WRITE with immediate consumes a receive WQE: none is the frames' RNR.
  const RecvWr* recv = nullptr;
  if (send || wr.opcode == IBV_WR_RDMA_WRITE_WITH_IMM) {
    recv = NextRecv(*peer);
    if (!recv) return false;
  }
  const uint32_t len = w.length;
  const MemoryRegion* remote = nullptr;
  Access local = Access::kOk;
  if (read) {
    if (peer->max_dest_rd_atomic == 0 || len > (1u << 31)) return false;
    const uint8_t* src =
        len ? ResolveRkey(*peer, wr.rkey, wr.remote_addr, len, IBV_ACCESS_REMOTE_READ, &remote)
            : nullptr;
    if (len && !src) return false;
    if (len) local = ScatterSges(qp, wr.sg_list, wr.num_sge, 0, src, len);
  } else if (write && len) {  // a zero-length RDMA WRITE checks no R_Key (IBTA 9.4.3)
    uint8_t* dst =
        ResolveRkey(*peer, wr.rkey, wr.remote_addr, len, IBV_ACCESS_REMOTE_WRITE, &remote);
    if (!dst) return false;
    if (wr.send_flags & IBV_SEND_INLINE) {
      std::memcpy(dst, wr.inline_data, len);
    } else {
      local = GatherSges(qp, wr.sg_list, wr.num_sge, 0, dst, len);
    }
  } else if (send && len) {
    SendPayload payload;
    local = ResolveSendPayload(qp, wr, len, &payload);
    if (local == Access::kOk) {
      // A receive WQE too short or with a bad key: the frames' responder error.
      if (!ScatterPayload(*peer, *recv, 0, payload)) return false;
      if (PayloadLost(payload)) local = Access::kLocalProt;
    }
  }
  // A page of the peer's MR that vanished under the copy: the MR is poisoned now (the
  // local side's check may have seen the fault first), and the frames meet the NAK.
  if (remote) {
    (void)LostPage(*remote);
    if (remote->poisoned) return false;
  }
  if (local != Access::kOk) {
    // A bad local key or range fails the WQE (IBTA 10.6.3: Local Protection Error).
    FailSend(qp, local == Access::kLocalProt ? IBV_WC_LOC_PROT_ERR : IBV_WC_LOC_LEN_ERR);
    return true;
  }
  // First request on a QP in RTR: communication established (IBTA 11.6.3.1).
  if (peer->state == IBV_QPS_RTR && !r.comm_established) {
    r.comm_established = true;
    PostEvent(IBV_EVENT_COMM_EST, peer->qpn);
  }
  r.epsn = psn::Add(r.epsn, w.npkts);
  r.msn = psn::Add(r.msn, 1);
  if (recv) {
    // The receive completion the message's last packet would have made.
    (void)TakeRecv(*peer, &r.recv);
    r.have_recv = true;
    wire::RocePacket last = qp.tmpl;
    last.bth.opcode = OnlyOpcode(wr.opcode);
    last.bth.solicited = wr.send_flags & IBV_SEND_SOLICITED;
    last.imm_be = wr.imm_be;
    CompleteRecv(*peer, send ? IBV_WC_RECV : IBV_WC_RECV_RDMA_WITH_IMM, len, IBV_WC_SUCCESS, &last,
                 &info);
  }
  w.next_pkt = w.npkts;
  w.req_done = true;
  if (read) w.resp_pkts = w.npkts;
  counters_.direct_wqes++;
  AckUpTo(qp, w.last_psn);
  return true;
}

bool RoceDevice::ExecuteDirectUd(QueuePair& qp, SendWqe& w) {
  // A datagram's frame would carry no state the two QPs share: only the receive side's
  // checks apply (IBTA 10.2.5, 11.4.1.1), and a datagram they drop is gone, as on a wire.
  // Multicast, the GSI QP and a datagram the peer would drop or fail go by frames.
  const SendWr& wr = w.wr;
  if (!cfg_.direct || qp.state != IBV_QPS_RTS || (!rx_in_place_ && !cfg_.hairpin)) return false;
  const uint32_t dest_qpn = wr.remote_qpn & psn::kMask;
  if (dest_qpn == kMulticastQpn) return false;
  const AddressHandle* ah = DatagramPath(wr.ah);
  if (!ah || !ah->local || !TurnsAround(ah->path)) return false;
  const RecvInfo& info = ah->dest;
  wire::RocePacket pkt = ah->path;
  pkt.bth.pkey = qp.pkey;
  pkt.bth.dest_qp = dest_qpn;
  pkt.bth.psn = w.first_psn;
  pkt.bth.solicited = wr.send_flags & IBV_SEND_SOLICITED;
  pkt.bth.opcode =
      wr.opcode == IBV_WR_SEND_WITH_IMM ? wire::op::kUdSendOnlyImm : wire::op::kUdSendOnly;
  pkt.ext = wire::GetOpcodeInfo(pkt.bth.opcode).headers;
  pkt.imm_be = wr.imm_be;
  // A WR Q_Key with its high bit set means "use the QP's Q_Key" (IBTA 10.2.5, C10-15).
  pkt.deth.qkey = (wr.remote_qkey & 0x80000000u) ? qp.qkey : wr.remote_qkey;
  pkt.deth.src_qp = qp.qpn;
  QueuePair* peer = LookupQp(dest_qpn);
  if (!peer || peer->type != IBV_QPT_UD || Refusal(*peer, pkt, info)) return false;
  if (!ReceivesRequests(peer->state)) return false;
  if (pkt.deth.qkey != peer->qkey) return false;
  const RecvWr* recv = NextRecv(*peer);
  if (!recv) return false;
  const uint32_t len = w.length;
  pkt.net.ipv4_id = qp.req.ipv4_id;
  uint8_t grh[wire::kGrhLen];
  if (!wire::EncodeReceiveGrh(pkt, len, grh)) return false;
  SendPayload payload;
  Access local = ResolveSendPayload(qp, wr, len, &payload);
  if (local == Access::kOk) {
    // A receive buffer too short for the GRH and the payload: the frame's receive error.
    if (ScatterSges(*peer, recv->sg_list, recv->num_sge, 0, grh, wire::kGrhLen) != Access::kOk ||
        !ScatterPayload(*peer, *recv, wire::kGrhLen, payload)) {
      return false;
    }
    if (PayloadLost(payload)) local = Access::kLocalProt;
  }
  qp.req.ipv4_id++;  // as the frame would have taken it
  if (local != Access::kOk) {
    // As the frame's gather would have failed (requester.cc, SendUd).
    FailSend(qp, local == Access::kLocalProt ? IBV_WC_LOC_PROT_ERR : IBV_WC_LOC_LEN_ERR);
    return true;
  }
  (void)TakeRecv(*peer, &peer->resp.recv);
  peer->resp.have_recv = true;
  CompleteRecv(*peer, IBV_WC_RECV, wire::kGrhLen + len, IBV_WC_SUCCESS, &pkt, &info);
  w.next_pkt = w.npkts;
  w.req_done = true;
  qp.req.sq_next++;
  counters_.direct_wqes++;
  CompleteSend(qp, w, IBV_WC_SUCCESS);
  return true;
}

}  // namespace vrdma::driver
