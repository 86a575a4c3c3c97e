// Completer (IBTA 9.7.5.3, 9.7.6): matches ACKs, NAKs, READ responses and ATOMIC
// acknowledgements to send WQEs, completes them in order, and drives retries.
#include <cstring>

#include "driver/transport/device.h"
#include "driver/transport/ib_timers.h"
#include "driver/transport/psn.h"

namespace vrdma::driver {

ibv_wc_opcode SendCompletionOpcode(ibv_wr_opcode op) {
  switch (op) {
    case IBV_WR_RDMA_WRITE:
    case IBV_WR_RDMA_WRITE_WITH_IMM:
      return IBV_WC_RDMA_WRITE;
    case IBV_WR_RDMA_READ:
      return IBV_WC_RDMA_READ;
    case IBV_WR_ATOMIC_CMP_AND_SWP:
      return IBV_WC_COMP_SWAP;
    case IBV_WR_ATOMIC_FETCH_AND_ADD:
      return IBV_WC_FETCH_ADD;
    case IBV_WR_ATOMIC_WRITE:
      return IBV_WC_ATOMIC_WRITE;
    case IBV_WR_BIND_MW:
      return IBV_WC_BIND_MW;
    case IBV_WR_LOCAL_INV:
      return IBV_WC_LOCAL_INV;
    default:
      return IBV_WC_SEND;
  }
}

namespace {

bool IsAtomic(ibv_wr_opcode op) {
  return op == IBV_WR_ATOMIC_CMP_AND_SWP || op == IBV_WR_ATOMIC_FETCH_AND_ADD;
}

}  // namespace

void RoceDevice::CompleteSend(QueuePair& qp, SendWqe& w, ibv_wc_status status) {
  // Completions are generated in order: `w` is always the oldest WQE.
  bool signaled = qp.init.sq_sig_all || (w.wr.send_flags & IBV_SEND_SIGNALED);
  ibv_wc wc{};
  wc.wr_id = w.wr.wr_id;
  wc.status = status;
  wc.opcode = SendCompletionOpcode(w.wr.opcode);
  wc.qp_num = qp.qpn;
  wc.byte_len = w.length;
  if (w.is_rd_atomic && w.started && qp.req.rd_atomic_outstanding > 0) {
    qp.req.rd_atomic_outstanding--;
  }
  // The WQE leaves the queue before its completion can be seen: a consumer that polls
  // it may post again at once, into the slot it freed (Ring::PublishRetiredTo).
  bool was_next = qp.req.sq_next == qp.sq.head();
  qp.sq.PopUnpublished();
  HoldRetired(qp);
  if (was_next) qp.req.sq_next = qp.sq.head();
  if (signaled || status != IBV_WC_SUCCESS) PushCqe(qp.init.send_cq, wc, false);
}

void RoceDevice::FailSend(QueuePair& qp, ibv_wc_status status) {
  if (!qp.sq.empty()) CompleteSend(qp, qp.sq.front(), status);
  // Unreliable service keeps receiving: only its send queue stops, in the Send Queue
  // Error state (IBTA 10.3.1); a reliable QP goes to Error.
  if (IsReliable(qp.type)) {
    EnterError(qp);
  } else {
    qp.state = IBV_QPS_SQE;
    FlushSendQueue(qp);
  }
}

// Everything up to and including `ack_psn` has been received by the responder.
void RoceDevice::AckUpTo(QueuePair& qp, uint32_t ack_psn) {
  const uint32_t seen_psn = ack_psn;
  bool progress = false;
  bool implied_nak = false;
  uint32_t missing = 0;
  while (!qp.sq.empty()) {
    SendWqe& w = qp.sq.front();
    if (!w.started) break;
    // A READ/ATOMIC whose responses all arrived is acknowledged by them, even if they
    // came while an earlier WQE was still being retried.
    bool responded = w.is_rd_atomic && w.resp_pkts == w.npkts;
    if (psn::Diff(w.last_psn, ack_psn) > 0) {
      if (!responded) break;
      ack_psn = w.last_psn;
    }
    if (w.is_rd_atomic && !responded) {
      // Acknowledged past a READ/ATOMIC whose response never arrived: the response was
      // lost, so ask again from the first missing one (IBTA 9.7.5.1.3, implied NAK).
      // Its missing responses stay unacknowledged, or they would be taken for duplicates.
      missing = psn::Add(w.first_psn, w.resp_pkts);
      implied_nak = true;
      ack_psn = psn::Add(missing, psn::kMask);
      break;
    }
    CompleteSend(qp, w, IBV_WC_SUCCESS);
    progress = true;
  }
  if (psn::Diff(ack_psn, qp.req.acked_psn) > 0) {
    qp.req.acked_psn = ack_psn;
    progress = true;
  }
  if (progress) {
    // Forward progress restores the retry budgets and ends a retry sequence.
    qp.req.retry_left = qp.retry_cnt;
    qp.req.rnr_retry_left = qp.rnr_retry;
    qp.req.retrying = false;
  }
  if (implied_nak) ReRequestResponses(qp, missing, seen_psn);
  if (!progress) return;
  if (!qp.sq.empty() && qp.sq.front().started) {
    ArmRetransmit(qp);
  } else {
    timers_.Cancel(&qp.retransmit_timer);
  }
  Activate(qp);
}

void RoceDevice::OnResponse(QueuePair& qp, const wire::RocePacket& pkt) {
  if (qp.type != IBV_QPT_RC && qp.type != IBV_QPT_XRC_SEND) {
    counters_.rx_wrong_transport++;
    return;
  }
  if (qp.state != IBV_QPS_RTS && qp.state != IBV_QPS_SQD && qp.state != IBV_QPS_SQE) return;
  uint32_t p = pkt.bth.psn;
  // Only responses to something outstanding count: PSN in (acked_psn, next_psn).
  if (psn::Diff(p, qp.req.acked_psn) <= 0 || psn::Diff(p, qp.req.next_psn) >= 0) {
    counters_.rx_duplicate++;
    return;
  }
  const wire::OpcodeInfo& info = wire::GetOpcodeInfo(pkt.bth.opcode);
  if (info.flags & wire::kOpReadResp) {
    OnReadResponse(qp, pkt);
  } else if (info.flags & wire::kOpAtomicAck) {
    OnAtomicAck(qp, pkt);
  } else if ((pkt.aeth.syndrome & wire::aeth::kTypeMask) == wire::aeth::kAck) {
    AckUpTo(qp, p);
  } else {
    OnNak(qp, pkt);
  }
  if (qp.state == IBV_QPS_SQD && qp.sq_drained_pending &&
      (qp.sq.empty() || !qp.sq.front().started)) {
    qp.sq_drained_pending = false;
    PostEvent(IBV_EVENT_SQ_DRAINED, qp.qpn);
  }
}

SendWqe* RoceDevice::FindSentWqe(QueuePair& qp, uint32_t p) {
  for (uint32_t i = qp.sq.head(); i != qp.sq.tail(); ++i) {
    SendWqe& w = qp.sq.at(i);
    if (!w.started) break;
    if (psn::Diff(p, w.first_psn) >= 0 && psn::Diff(p, w.last_psn) <= 0) return &w;
  }
  return nullptr;
}

void RoceDevice::OnReadResponse(QueuePair& qp, const wire::RocePacket& pkt) {
  uint32_t p = pkt.bth.psn;
  SendWqe* target = FindSentWqe(qp, p);
  if (!target || target->wr.opcode != IBV_WR_RDMA_READ) {
    counters_.rx_out_of_sequence++;
    return;
  }
  // A READ response implicitly acknowledges every request before its READ
  // (IBTA 9.7.5.1.3) -- but not PSNs of the READ itself that have not arrived.
  AckUpTo(qp, psn::Add(target->first_psn, psn::kMask));
  if (qp.state == IBV_QPS_ERR || qp.sq.empty() || &qp.sq.front() != target) return;
  SendWqe& w = *target;
  uint32_t expected = psn::Add(w.first_psn, w.resp_pkts);
  int32_t d = psn::Diff(p, expected);
  if (d < 0) {
    counters_.rx_duplicate++;
    return;
  }
  if (d > 0) {
    // A response is missing: re-request from it once per gap (IBTA 9.7.6.2.2).
    counters_.rx_out_of_sequence++;
    ReRequestResponses(qp, expected, p);
    return;
  }
  qp.req.read_gap = false;
  // The opcode must fit the packet's place: a response may come from the original
  // request or from a re-issued one (which starts with FIRST/ONLY at its own PSN), so
  // a middle place takes FIRST or MIDDLE and the last place LAST or ONLY. The PSN fixes
  // the data offset either way.
  uint32_t i = static_cast<uint32_t>(psn::Diff(p, w.first_psn));
  bool last_place = i == w.npkts - 1;
  uint8_t op = pkt.bth.opcode & wire::op::kLowBits;  // RC's or XRC's
  bool op_ok =
      last_place ? (op == wire::op::kRcReadResponseLast || op == wire::op::kRcReadResponseOnly)
                 : (op == wire::op::kRcReadResponseFirst || op == wire::op::kRcReadResponseMiddle);
  if (i == 0) op_ok &= op == wire::op::kRcReadResponseFirst || op == wire::op::kRcReadResponseOnly;
  uint32_t offset = i * qp.mtu;
  uint32_t want_len = last_place ? w.length - offset : qp.mtu;
  if (!op_ok || pkt.payload_len != want_len) {
    FailSend(qp, IBV_WC_BAD_RESP_ERR);
    return;
  }
  if (want_len) {
    Access a = ScatterSges(qp, w.wr.sg_list, w.wr.num_sge, offset, pkt.payload, want_len);
    if (a != Access::kOk) {
      FailSend(qp, a == Access::kLocalProt ? IBV_WC_LOC_PROT_ERR : IBV_WC_LOC_LEN_ERR);
      return;
    }
  }
  w.resp_pkts = i + 1;
  AckUpTo(qp, p);
}

void RoceDevice::OnAtomicAck(QueuePair& qp, const wire::RocePacket& pkt) {
  uint32_t p = pkt.bth.psn;
  SendWqe* target = FindSentWqe(qp, p);
  if (!target || !IsAtomic(target->wr.opcode)) {
    counters_.rx_out_of_sequence++;
    return;
  }
  if (target->resp_pkts) {  // result already in: a replayed acknowledgement
    counters_.rx_duplicate++;
    AckUpTo(qp, psn::Add(p, psn::kMask));
    return;
  }
  AckUpTo(qp, psn::Add(p, psn::kMask));
  if (qp.state == IBV_QPS_ERR) return;
  // The original remote value lands in the WQE's local buffer (IBTA 9.4.5), even while
  // an earlier READ is still being retried: the WQE then completes in order after it.
  SendWqe& w = *target;
  uint8_t orig[8];
  std::memcpy(orig, &pkt.atomic_ack_orig, 8);
  Access a = ScatterSges(qp, w.wr.sg_list, w.wr.num_sge, 0, orig, 8);
  if (a != Access::kOk) {
    FailSend(qp, a == Access::kLocalProt ? IBV_WC_LOC_PROT_ERR : IBV_WC_LOC_LEN_ERR);
    return;
  }
  w.resp_pkts = 1;
  AckUpTo(qp, p);
}

// Responses from `missing` on were lost: ask again from there (IBTA 9.7.6.2.2), once
// per gap. Until the answer comes, responses the responder sent before the request
// reached it keep arriving out of sequence (the rest of the READ, and later READs, whose
// responses imply this one's loss), each of which would otherwise start one more
// go-back-N. `seen` is the PSN that showed the gap; those stale responses come in
// ascending PSN order. When a later one has a lower PSN, the responder has started over
// from `missing` and lost it again, so it is asked again.
void RoceDevice::ReRequestResponses(QueuePair& qp, uint32_t missing, uint32_t seen) {
  RequesterState& req = qp.req;
  bool same_gap = req.read_gap && req.read_gap_psn == missing;
  bool restarted = psn::Diff(seen, req.read_gap_seen) < 0;
  req.read_gap_seen = seen;
  if (same_gap && !restarted) return;
  req.read_gap = true;
  req.read_gap_psn = missing;
  RetryFrom(qp, missing);
}

uint32_t RoceDevice::FirstUnacked(const QueuePair& qp) const {
  // acked_psn never passes a READ/ATOMIC still waiting for its response (AckUpTo).
  uint32_t una = psn::Add(qp.req.acked_psn, 1);
  if (!qp.sq.empty()) {
    const SendWqe& w = qp.sq.front();
    if (w.is_rd_atomic) {
      uint32_t missing = psn::Add(w.first_psn, w.resp_pkts);
      if (psn::Diff(missing, una) < 0) una = missing;
    } else if (psn::Diff(una, w.first_psn) < 0) {
      una = w.first_psn;
    }
  }
  return una;
}

void RoceDevice::StartRetry(QueuePair& qp, bool count) {
  // One retry sequence at a time (as rxe does): NAKs that arrive while the resent
  // packets are still on their way are answered by that same sequence, so they neither
  // restart it nor spend the retry count. Progress or a timeout ends the sequence.
  if (qp.req.retrying) return;
  if (count) {
    if (qp.req.retry_left == 0) {
      FailSend(qp, IBV_WC_RETRY_EXC_ERR);
      return;
    }
    qp.req.retry_left--;
  }
  qp.req.retrying = true;
  RetryFrom(qp, FirstUnacked(qp));
}

void RoceDevice::OnNak(QueuePair& qp, const wire::RocePacket& pkt) {
  uint32_t p = pkt.bth.psn;
  uint8_t type = pkt.aeth.syndrome & wire::aeth::kTypeMask;
  uint8_t value = pkt.aeth.syndrome & wire::aeth::kValueMask;
  // A NAK acknowledges everything before its PSN (IBTA 9.7.5.2.2).
  AckUpTo(qp, psn::Add(p, psn::kMask));
  if (qp.state == IBV_QPS_ERR) return;
  if (type == wire::aeth::kRnrNak) {
    counters_.rnr_naks_received++;
    if (qp.rnr_retry != ibtime::kInfiniteRnrRetry) {
      if (qp.req.rnr_retry_left == 0) {
        FailSend(qp, IBV_WC_RNR_RETRY_EXC_ERR);
        return;
      }
      qp.req.rnr_retry_left--;
    }
    RetryFrom(qp, FirstUnacked(qp));
    qp.req.rnr_wait = true;
    timers_.Cancel(&qp.retransmit_timer);
    timers_.Arm(&qp.rnr_timer, now_ + ibtime::RnrTimerNs(value));
    return;
  }
  if (type != wire::aeth::kNak) return;  // reserved syndrome: ignore
  switch (value) {
    case wire::aeth::kNakPsnSeqError:
      StartRetry(qp, /*count=*/true);
      break;
    case wire::aeth::kNakInvalidRequest:
      FailSend(qp, IBV_WC_REM_INV_REQ_ERR);
      break;
    case wire::aeth::kNakRemoteAccessError:
      FailSend(qp, IBV_WC_REM_ACCESS_ERR);
      break;
    case wire::aeth::kNakRemoteOperationalError:
      FailSend(qp, IBV_WC_REM_OP_ERR);
      break;
    default:
      FailSend(qp, IBV_WC_REM_INV_RD_REQ_ERR);
      break;
  }
}

void RoceDevice::OnRetransmitTimeout(QueuePair& qp) {
  if (!IsReliable(qp.type) || qp.state == IBV_QPS_ERR) return;
  if (qp.sq.empty() || !qp.sq.front().started) return;
  counters_.timeouts++;
  qp.req.retrying = false;  // a timeout always starts a new retry sequence
  qp.req.read_gap = false;
  StartRetry(qp, /*count=*/true);
  if (qp.state != IBV_QPS_ERR) ArmRetransmit(qp);
}

}  // namespace vrdma::driver
