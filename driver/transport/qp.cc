// Queue pairs: create, modify, query and destroy; attribute changes and state
// transitions (IBTA 10.3, 11.2.4.2), the error state and flushing (IBTA 10.3.1: in
// Error, outstanding and new WRs complete with flush errors), and completions.
#include <cstring>

#include "absl/strings/str_cat.h"
#include "driver/qp_state/qp_state_machine.h"
#include "driver/transport/device.h"
#include "driver/transport/errors.h"
#include "driver/transport/psn.h"

namespace vrdma::driver {
namespace {

uint32_t MtuBytes(ibv_mtu mtu) { return 128u << static_cast<int>(mtu); }

}  // namespace

absl::StatusOr<uint32_t> RoceDevice::CreateQp(const QpInitAttr& init) {
  const DeviceLimits& l = cfg_.limits;
  if (init.type != IBV_QPT_RC && init.type != IBV_QPT_UC && init.type != IBV_QPT_UD &&
      init.type != kQpTypeGsi && init.type != IBV_QPT_XRC_SEND && init.type != IBV_QPT_XRC_RECV &&
      init.type != IBV_QPT_RAW_PACKET) {
    return absl::InvalidArgumentError(
        "QP type must be RC, UC, UD, GSI, XRC send, XRC receive or raw packet");
  }
  if (init.type == IBV_QPT_RAW_PACKET && init.max_frame < wire::kEthLen) {
    return absl::InvalidArgumentError("a raw packet QP needs its interface (MAC, MTU)");
  }
  // A receive-side scaling QP: its table's work queues receive, it has nothing else.
  const bool rss = init.type == IBV_QPT_RAW_PACKET && init.rss_table;
  RssTable* table = nullptr;
  if (rss) {
    auto t = rss_tables_.find(init.rss_table);
    if (t == rss_tables_.end()) return NotFound("indirection table", init.rss_table);
    table = &t->second;
    if (init.max_send_wr || init.max_recv_wr || init.has_srq)
      return absl::InvalidArgumentError("a receive-side scaling QP has no queues of its own");
    if (!pds_.Get(init.pd)) return NotFound("PD", init.pd);
  }
  if (init.type == kQpTypeGsi && gsi_slot_ != 0) {
    return absl::AlreadyExistsError("the port already has its GSI QP1");
  }
  // An XRC send QP has no receive queue; an XRC receive QP has no queue, CQ or PD of its
  // own, only its domain: each message takes them from the XRC SRQ it names.
  const bool xrc_send = init.type == IBV_QPT_XRC_SEND;
  const bool xrc_recv = init.type == IBV_QPT_XRC_RECV;
  XrcDomain* xrcd = nullptr;
  if (xrc_recv) {
    xrcd = xrcds_.Get(init.xrcd);
    if (!xrcd) return NotFound("XRC domain", init.xrcd);
    if (init.max_send_wr || init.max_recv_wr || init.has_srq)
      return absl::InvalidArgumentError("an XRC receive QP has no queues of its own");
  } else if (!pds_.Get(init.pd)) {
    return NotFound("PD", init.pd);
  }
  if (rss) return CreateRssQp(init, table);
  if (xrc_send && (init.max_recv_wr || init.has_srq))
    return absl::InvalidArgumentError("an XRC send QP has no receive queue");
  CompletionQueue* scq = xrc_recv ? nullptr : cqs_.Get(init.send_cq);
  CompletionQueue* rcq = xrc_send || xrc_recv ? nullptr : cqs_.Get(init.recv_cq);
  if ((!xrc_recv && !scq) || (!xrc_send && !xrc_recv && !rcq))
    return absl::InvalidArgumentError("send or receive CQ does not exist");
  SharedReceiveQueue* srq = nullptr;
  if (init.has_srq) {
    srq = srqs_.Get(init.srq);
    if (!srq) return NotFound("SRQ", init.srq);
    if (srq->xrc) return absl::InvalidArgumentError("an XRC SRQ serves XRC receive QPs only");
    if (srq->pd != init.pd) return absl::InvalidArgumentError("SRQ is in another PD");
  }
  if (init.max_send_wr > l.max_qp_wr || init.max_recv_wr > l.max_qp_wr ||
      init.max_send_sge > l.max_sge || init.max_recv_sge > l.max_sge ||
      init.max_inline_data > l.max_inline_data) {
    return absl::InvalidArgumentError("QP capabilities beyond device limits");
  }
  // The active lists hold every QP at most once (and the emptied entries of QPs destroyed
  // since the last pass): room for one more QP is made here, on the control path, so that
  // Activate never allocates.
  const size_t lists = qps_.in_use() + 1u + active_.size();
  if (active_.capacity() < lists || running_.capacity() < lists) {
    const size_t want = std::max<size_t>(2 * lists, 64);
    active_.reserve(want);
    running_.reserve(want);
  }
  uint32_t qpn;
  QueuePair* qp = qps_.Allocate(&qpn);
  if (!qp) return absl::ResourceExhaustedError("QP table full");
  qp->qpn = qpn;
  if (init.type == kQpTypeGsi) {
    // GSI QP1 (IBTA 13.5.1): one per port, a UD QP answering QPN 1 with the
    // well-known GSI Q_Key.
    gsi_slot_ = qpn;
    qp->qpn = 1;
    qp->qkey = kGsiQkey;
  }
  qp->type = init.type;
  qp->init = init;
  if (xrc_recv) {
    qp->init.pd = 0;
    qp->init.send_cq = qp->init.recv_cq = 0;
  }
  if (xrc_send) qp->init.recv_cq = 0;
  qp->pd = qp->init.pd;
  qp->sq.Init(init.max_send_wr);
  qp->rq.Init(init.has_srq ? 1 : init.max_recv_wr);
  qp->resp.responses.Init(0);  // none until the first response (ResponseRoom)
  qp->retransmit_timer.data = qp;
  qp->rnr_timer.data = qp;
  if (scq) scq->use_count++;
  if (rcq) rcq->use_count++;
  if (srq) srq->use_count++;
  if (xrcd) xrcd->use_count++;
  path_epoch_++;  // a QP that names this QPN as its peer now has one
  return qpn;
}

uint64_t RoceDevice::QpQueueBytes(const QpInitAttr& init) {
  // As CreateQp sizes them: the send queue, and the receive queue unless an SRQ serves it.
  return uint64_t{RoundUpPow2(std::max<uint32_t>(init.max_send_wr, 1))} * sizeof(SendWqe) +
         uint64_t{RoundUpPow2(init.has_srq ? 1 : std::max<uint32_t>(init.max_recv_wr, 1))} *
             sizeof(RecvWr);
}

uint64_t RoceDevice::SrqQueueBytes(uint32_t max_wr) {
  return uint64_t{RoundUpPow2(std::max<uint32_t>(max_wr, 1))} * sizeof(RecvWr);
}

absl::Status RoceDevice::ModifyQp(uint32_t qpn, const ibv_qp_attr& attr, int mask,
                                  const AddressVector* av) {
  QueuePair* qp = LookupQp(qpn);
  if (!qp) return absl::NotFoundError(absl::StrCat("no QP ", qpn));
  path_epoch_++;  // its path, P_Key or peer may change
  ibv_qp_state cur = qp->state;
  if ((mask & IBV_QP_CUR_STATE) && attr.cur_qp_state != cur) {
    return absl::InvalidArgumentError("cur_qp_state does not match the QP's state");
  }
  ibv_qp_state next = (mask & IBV_QP_STATE) ? attr.qp_state : cur;
  if (absl::Status st = CheckModifyQp(qp->type, cur, next, mask); !st.ok()) return st;

  // Check every value before changing anything: a rejected modify changes nothing.
  const DeviceLimits& l = cfg_.limits;
  if ((mask & IBV_QP_PATH_MTU) && (attr.path_mtu < IBV_MTU_256 || attr.path_mtu > IBV_MTU_4096))
    return absl::InvalidArgumentError("path_mtu must be 256..4096");
  if ((mask & IBV_QP_MAX_QP_RD_ATOMIC) && attr.max_rd_atomic > l.max_qp_init_rd_atom)
    return absl::InvalidArgumentError("max_rd_atomic above the device limit");
  if ((mask & IBV_QP_MAX_DEST_RD_ATOMIC) &&
      (attr.max_dest_rd_atomic > l.max_qp_rd_atom ||
       attr.max_dest_rd_atomic > std::size(qp->resp.resources)))
    return absl::InvalidArgumentError("max_dest_rd_atomic above the device limit");
  if ((mask & IBV_QP_PKEY_INDEX) && attr.pkey_index != 0)
    return absl::InvalidArgumentError("P_Key index out of range (table has one entry)");
  if ((mask & IBV_QP_PORT) && attr.port_num != 1)
    return absl::InvalidArgumentError("port must be 1");
  if ((mask & IBV_QP_TIMEOUT) && attr.timeout > 31)
    return absl::InvalidArgumentError("timeout must be 0..31");
  if ((mask & IBV_QP_RETRY_CNT) && attr.retry_cnt > 7)
    return absl::InvalidArgumentError("retry_cnt must be 0..7");
  if ((mask & IBV_QP_RNR_RETRY) && attr.rnr_retry > 7)
    return absl::InvalidArgumentError("rnr_retry must be 0..7");
  if ((mask & IBV_QP_MIN_RNR_TIMER) && attr.min_rnr_timer > 31)
    return absl::InvalidArgumentError("min_rnr_timer must be 0..31");
  // Only the remote bits mean something on a QP (IBTA 10.2.4.1); the other ibv_access_flags
  // (LOCAL_WRITE, ON_DEMAND, ... which applications pass along from their MRs) are
  // accepted and ignored, as by rxe and mlx5. Bits no verbs flag has are refused.
  constexpr unsigned kKnownAccess =
      ((IBV_ACCESS_HUGETLB << 1) - 1) | static_cast<unsigned>(IBV_ACCESS_OPTIONAL_RANGE);
  if ((mask & IBV_QP_ACCESS_FLAGS) && (attr.qp_access_flags & ~kKnownAccess))
    return absl::InvalidArgumentError("unknown QP access flags");
  if (mask & IBV_QP_AV) {
    if (!av) return absl::InvalidArgumentError("address vector not resolved");
    if (!GetGid(av->sgid_index))
      return absl::InvalidArgumentError(absl::StrCat("no GID at index ", av->sgid_index));
  }
  if ((mask & IBV_QP_DEST_QPN) && attr.dest_qp_num > psn::kMask)
    return absl::InvalidArgumentError("dest_qp_num is 24 bits");

  // Apply.
  if (mask & IBV_QP_ACCESS_FLAGS) qp->access_flags = attr.qp_access_flags;
  if (mask & IBV_QP_PKEY_INDEX) qp->pkey_index = attr.pkey_index;
  if (mask & IBV_QP_PORT) qp->port_num = attr.port_num;
  if (mask & IBV_QP_QKEY) qp->qkey = attr.qkey;
  if (mask & IBV_QP_AV) {
    qp->ah_attr = attr.ah_attr;
    qp->av = *av;
    qp->av_valid = true;
  }
  if (mask & IBV_QP_PATH_MTU) {
    qp->path_mtu = attr.path_mtu;
    qp->mtu = MtuBytes(attr.path_mtu);
  }
  if (mask & IBV_QP_TIMEOUT) qp->timeout = attr.timeout;
  if (mask & IBV_QP_RETRY_CNT) qp->retry_cnt = attr.retry_cnt;
  if (mask & IBV_QP_RNR_RETRY) qp->rnr_retry = attr.rnr_retry;
  if (mask & IBV_QP_RQ_PSN) qp->rq_psn = attr.rq_psn & psn::kMask;
  if (mask & IBV_QP_MAX_QP_RD_ATOMIC) qp->max_rd_atomic = attr.max_rd_atomic;
  if (mask & IBV_QP_MIN_RNR_TIMER) qp->min_rnr_timer = attr.min_rnr_timer;
  if (mask & IBV_QP_SQ_PSN) qp->sq_psn = attr.sq_psn & psn::kMask;
  if (mask & IBV_QP_MAX_DEST_RD_ATOMIC) qp->max_dest_rd_atomic = attr.max_dest_rd_atomic;
  if (mask & IBV_QP_DEST_QPN) qp->dest_qpn = attr.dest_qp_num;
  if (mask & IBV_QP_PATH_MIG_STATE) qp->path_mig_state = attr.path_mig_state;

  if (mask & IBV_QP_RQ_PSN) qp->resp.epsn = qp->rq_psn;
  if (mask & IBV_QP_SQ_PSN) {
    qp->req.next_psn = qp->sq_psn;
    qp->req.acked_psn = psn::Add(qp->sq_psn, psn::kMask);  // sq_psn - 1
  }
  if (mask & IBV_QP_RETRY_CNT) qp->req.retry_left = qp->retry_cnt;
  if (mask & IBV_QP_RNR_RETRY) qp->req.rnr_retry_left = qp->rnr_retry;

  if (next == cur) {
    if (cur == IBV_QPS_RTS) Activate(*qp);
    return absl::OkStatus();
  }
  qp->state = next;
  switch (next) {
    case IBV_QPS_RESET:
      ResetQp(*qp);
      break;
    case IBV_QPS_RTR:
      if (IsConnected(qp->type) && !BuildTemplate(*qp, qp->av, &qp->tmpl)) {
        qp->state = cur;
        return absl::InvalidArgumentError("cannot build the path: GID entry missing");
      }
      break;
    case IBV_QPS_RTS:
      Activate(*qp);
      break;
    case IBV_QPS_SQD:
      qp->sq_drained_pending = true;
      Activate(*qp);  // the engine reports SQ drained once nothing is outstanding
      break;
    case IBV_QPS_ERR:
      qp->state = cur;
      EnterError(*qp);
      break;
    default:
      break;
  }
  return absl::OkStatus();
}

absl::Status RoceDevice::QueryQp(uint32_t qpn, ibv_qp_attr* attr, QpInitAttr* init) const {
  const QueuePair* qp = LookupQp(qpn);
  if (!qp) return absl::NotFoundError(absl::StrCat("no QP ", qpn));
  if (attr) {
    *attr = ibv_qp_attr{};
    attr->qp_state = qp->state;
    attr->cur_qp_state = qp->state;
    attr->path_mtu = qp->path_mtu;
    attr->path_mig_state = qp->path_mig_state;
    attr->qkey = qp->qkey;
    attr->rq_psn = qp->rq_psn;
    attr->sq_psn = qp->sq_psn;
    attr->dest_qp_num = qp->dest_qpn;
    attr->qp_access_flags = qp->access_flags;
    attr->cap.max_send_wr = qp->sq.depth();
    attr->cap.max_recv_wr = qp->init.has_srq ? 0 : qp->rq.depth();
    attr->cap.max_send_sge = qp->init.max_send_sge;
    attr->cap.max_recv_sge = qp->init.max_recv_sge;
    attr->cap.max_inline_data = qp->init.max_inline_data;
    attr->ah_attr = qp->ah_attr;
    attr->pkey_index = qp->pkey_index;
    attr->sq_draining = qp->state == IBV_QPS_SQD && qp->sq_drained_pending;
    attr->max_rd_atomic = qp->max_rd_atomic;
    attr->max_dest_rd_atomic = qp->max_dest_rd_atomic;
    attr->min_rnr_timer = qp->min_rnr_timer;
    attr->port_num = qp->port_num;
    attr->timeout = qp->timeout;
    attr->retry_cnt = qp->retry_cnt;
    attr->rnr_retry = qp->rnr_retry;
  }
  if (init) *init = qp->init;
  return absl::OkStatus();
}

absl::Status RoceDevice::DestroyQp(uint32_t qpn) {
  QueuePair* qp = LookupQp(qpn);
  if (!qp) return NotFound("QP", qpn);
  path_epoch_++;  // no QP may keep it as its peer (QueuePair::dest_peer)
  timers_.Cancel(&qp->retransmit_timer);
  timers_.Cancel(&qp->rnr_timer);
  if (qp->active) {
    for (auto& p : active_)
      if (p == qp) p = nullptr;
    for (auto& p : running_)
      if (p == qp) p = nullptr;
  }
  if (auto* cq = cqs_.Get(qp->init.send_cq)) cq->use_count--;
  if (auto* cq = cqs_.Get(qp->init.recv_cq)) cq->use_count--;
  if (qp->init.has_srq)
    if (auto* srq = srqs_.Get(qp->init.srq)) srq->use_count--;
  if (qp->type == IBV_QPT_XRC_RECV)
    if (XrcDomain* d = xrcds_.Get(qp->init.xrcd)) d->use_count--;
  FreeWindowsOf(qp->qpn);
  if (qp->type == IBV_QPT_UD) DetachAllOf(qp->qpn);
  if (qp->type == IBV_QPT_RAW_PACKET) {
    DropFlowsOf(qp->qpn);
    auto t = rss_tables_.find(qp->init.rss_table);
    if (t != rss_tables_.end()) t->second.qps--;
  }
  if (qp->qpn == 1) {
    qps_.Free(gsi_slot_);
    gsi_slot_ = 0;
  } else {
    qps_.Free(qpn);
  }
  return absl::OkStatus();
}

bool RoceDevice::PushCqe(uint32_t cqn, const ibv_wc& wc, bool solicited, const RecvInfo* info) {
  CompletionQueue* cq = cqs_.Get(cqn);
  if (!cq) return false;
  bool was_overrun = cq->overrun();
  if (cq->sink) {
    if (in_pass_ && !cq->held) {  // published at the end of the pass (PublishHeld)
      cq->held = true;
      *cqs_held_tail_ = cq;  // last: the CQs publish in the order they filled
      cqs_held_tail_ = &cq->next_held;
      cq->sink->Hold();
    }
    if (cq->sink->Deliver(cq->sink_cookie, wc, solicited, info)) return true;
    cq->MarkOverrun();
  } else if (cq->Push(wc, solicited, info)) {
    return true;
  }
  // CQ overrun: the CQ is in error and its consumer is told once (IBTA 11.6.2).
  counters_.cq_overruns++;
  if (!was_overrun) PostEvent(IBV_EVENT_CQ_ERR, cqn);
  return false;
}

void RoceDevice::EnterError(QueuePair& qp) {
  if (qp.state == IBV_QPS_ERR) return;
  qp.state = IBV_QPS_ERR;
  FlushQueues(qp);
  // A QP on an SRQ reports its last WQE so the consumer can reclaim it (IBTA 11.6.3.1).
  if (qp.init.has_srq) PostEvent(IBV_EVENT_QP_LAST_WQE_REACHED, qp.qpn);
}

void RoceDevice::FlushSendQueue(QueuePair& qp) {
  timers_.Cancel(&qp.retransmit_timer);
  timers_.Cancel(&qp.rnr_timer);
  ibv_wc wc{};
  wc.status = IBV_WC_WR_FLUSH_ERR;
  wc.qp_num = qp.qpn;
  wc.opcode = IBV_WC_SEND;
  while (!qp.sq.empty()) {
    wc.wr_id = qp.sq.front().wr.wr_id;
    qp.sq.Pop();  // first: see CompleteSend
    PushCqe(qp.init.send_cq, wc, false);
  }
  qp.req.sq_next = qp.sq.head();
  qp.req.rd_atomic_outstanding = 0;
  qp.req.rnr_wait = false;
  qp.req.retrying = false;
}

void RoceDevice::FlushQueues(QueuePair& qp) {
  FlushSendQueue(qp);
  ibv_wc wc{};
  wc.status = IBV_WC_WR_FLUSH_ERR;
  wc.qp_num = qp.qpn;
  wc.opcode = IBV_WC_RECV;
  if (qp.resp.have_recv) {
    wc.wr_id = qp.resp.recv.wr_id;
    PushCqe(RecvCq(qp), wc, false);
    qp.resp.have_recv = false;
  }
  while (!qp.rq.empty()) {
    wc.wr_id = qp.rq.front().wr_id;
    qp.rq.Pop();  // first: see CompleteSend
    PushCqe(qp.init.recv_cq, wc, false);
  }
  qp.resp.kind = ResponderState::kNone;
  qp.resp.responses.Clear();
}

void RoceDevice::ResetQp(QueuePair& qp) {
  timers_.Cancel(&qp.retransmit_timer);
  timers_.Cancel(&qp.rnr_timer);
  qp.sq.Clear();
  qp.rq.Clear();
  qp.req = RequesterState{};
  qp.req.sq_next = qp.sq.head();
  RdAtomicResource none{};
  for (auto& r : qp.resp.resources) r = none;
  qp.resp.responses.Clear();
  qp.resp.kind = ResponderState::kNone;
  qp.resp.have_recv = false;
  qp.resp.nak_sent = false;
  qp.resp.comm_established = false;
  qp.resp.msn = 0;
  qp.resp.xrc_srq = qp.resp.xrc_cq = 0;
  qp.pd = qp.init.pd;
  qp.av_valid = false;
  qp.sq_drained_pending = false;
}

}  // namespace vrdma::driver
