// The IBTA communication manager on the wire (IBTA Vol 1 chapter 12): the MADs an
// RDMA-CM connection exchanges through the shared QP1, their resends and time outs, and
// what each one received does to a connection (figure 154's state machine, as Linux's
// cm.c runs it, so that a Linux peer sees what it would see from Linux).
#include <arpa/inet.h>

#include <cerrno>
#include <cstring>

#include "cm/rdma_cm.h"
#include "cm/route.h"
#include "cm/wire/cma_header.h"
#include "vdev/log.h"
#include "vdev/session.h"

namespace vrdma::cm {

namespace {

// Linux's CMA_CM_MRA_SETTING service timeout (cma.c), sent when a REQ is repeated while
// the consumer has not answered it yet.
constexpr uint8_t kMraServiceTimeout = 24;
// The CA's ACK delay REP reports (IBTA 12.6.8 target ACK delay; rdma_rxe reports 15).
constexpr uint8_t kTargetAckDelay = 15;

uint32_t RemoteCommIdOf(const wire::CmMessage& m) {
  return std::visit(
      [](const auto& msg) -> uint32_t {
        using T = std::decay_t<decltype(msg)>;
        if constexpr (std::is_same_v<T, wire::Req> || std::is_same_v<T, wire::SidrReq> ||
                      std::is_same_v<T, wire::SidrRep>) {
          return 0;
        } else {
          return msg.remote_comm_id;
        }
      },
      m);
}

}  // namespace

uint32_t RdmaCm::NewCommId() {
  // Unique among live connections and never 0; mixed with a random seed so that IDs
  // do not repeat across daemon restarts (a stale REQ must not match a new connection).
  for (;;) {
    uint32_t id = next_comm_id_++ ^ comm_id_seed_;
    if (id != 0 && !by_comm_id_.count(id)) return id;
  }
}

void RdmaCm::SendMad(CmId& id, const wire::CmMessage& msg, bool remember, uint64_t /*now_ns*/) {
  vdev::Vdev* v = VdevOf(id);
  if (!v) {
    ++CountersOf(v).send_failures;
    return;
  }
  wire::MadHeader h;
  h.transaction_id = id.transaction_id;
  std::array<uint8_t, wire::kMadSize> local;
  std::array<uint8_t, wire::kMadSize>& buf = remember ? id.last_mad : local;
  wire::BuildMad(h, msg, buf);
  qp1::MadDestination to;
  to.gid_index = id.gid_index;
  to.dgid = id.dgid;
  to.dmac = id.dmac;
  if (absl::Status s = qp1_->Send(*v, to, buf); !s.ok()) {
    // A MAD that could not leave is as one lost on the wire: its resend timer covers it.
    ++CountersOf(v).send_failures;
    vdev::Log(vdev::LogLevel::kDebug, "cm_send_failed", "reason=" + vdev::LogQuote(s.ToString()));
    return;
  }
  ++CountersOf(v).sent[msg.index()];
}

void RdmaCm::SendTo(const qp1::InboundMad& to, const wire::CmMessage& msg, uint64_t tid) {
  wire::MadHeader h;
  h.transaction_id = tid;
  std::array<uint8_t, wire::kMadSize> buf;
  wire::BuildMad(h, msg, buf);
  qp1::MadDestination dest;
  dest.gid_index = to.gid_index;
  dest.dgid = to.sgid;
  dest.dmac = to.tag.smac;
  if (!qp1_->Send(*to.vdev, dest, buf).ok()) {
    ++CountersOf(to.vdev).send_failures;
    return;
  }
  ++CountersOf(to.vdev).sent[msg.index()];
}

void RdmaCm::ArmResend(CmId& id, uint64_t interval_ns, int retries, uint64_t now_ns) {
  id.resend_armed = true;
  id.resend_interval_ns = interval_ns;
  id.resend_at_ns = now_ns + interval_ns;
  id.retries_left = retries;
  timed_.insert(&id);
}

void RdmaCm::Disarm(CmId& id) {
  id.resend_armed = false;
  if (!id.neighbour) timed_.erase(&id);
}

// ---- sending ---------------------------------------------------------------------------------

void RdmaCm::SendRep(CmId& id, uint64_t now_ns) {
  wire::Rep rep;
  rep.local_comm_id = id.local_comm_id;
  rep.remote_comm_id = id.remote_comm_id;
  rep.local_qpn = id.params.local_qpn;
  rep.starting_psn = id.params.local_psn;
  rep.responder_resources = id.params.responder_resources;
  rep.initiator_depth = id.params.initiator_depth;
  rep.target_ack_delay = kTargetAckDelay;
  rep.end_to_end_flow_control = id.params.flow_control;
  rep.rnr_retry_count = id.params.rnr_retry_count;
  rep.srq = id.params.srq;
  if (vdev::Vdev* v = VdevOf(id)) rep.local_ca_guid = be64toh(v->node_guid_be);
  std::memcpy(rep.private_data.data(), id.rep_private.data(), id.rep_private_len);
  id.conn = ConnState::kRepSent;
  id.mra_pending = false;
  SendMad(id, rep, /*remember=*/true, now_ns);
  // The active side answers within the REQ's local CM response timeout (cm_req_handler),
  // for the REQ's max CM retries.
  ArmResend(id, CmTimeoutNs(id.peer_cm_response_timeout) + 2 * CmTimeoutNs(kPacketLifeTime),
            id.peer_max_cm_retries, now_ns);
}

void RdmaCm::SendRtu(CmId& id) {
  wire::Rtu rtu;
  rtu.local_comm_id = id.local_comm_id;
  rtu.remote_comm_id = id.remote_comm_id;
  SendMad(id, rtu, /*remember=*/false, now_ns_);
}

void RdmaCm::SendMra(CmId& id) {
  wire::Mra mra;
  mra.local_comm_id = id.local_comm_id;
  mra.remote_comm_id = id.remote_comm_id;
  mra.message_mraed = wire::kMraReq;
  mra.service_timeout = kMraServiceTimeout;
  SendMad(id, mra, /*remember=*/false, now_ns_);
}

void RdmaCm::SendRej(CmId& id, wire::RejReason reason, uint8_t message_rejected,
                     const uint8_t* data, size_t len) {
  wire::Rej rej;
  rej.local_comm_id = id.local_comm_id;
  rej.remote_comm_id = id.remote_comm_id;
  rej.message_rejected = message_rejected;
  rej.reason = static_cast<uint16_t>(reason);
  if (data && len)
    std::memcpy(rej.private_data.data(), data, std::min(len, rej.private_data.size()));
  SendMad(id, rej, /*remember=*/false, now_ns_);
}

void RdmaCm::SendDreq(CmId& id, uint64_t now_ns) {
  wire::Dreq dreq;
  dreq.local_comm_id = id.local_comm_id;
  dreq.remote_comm_id = id.remote_comm_id;
  dreq.remote_qpn_eecn = id.params.remote_qpn;
  id.transaction_id = random_();
  id.conn = ConnState::kDreqSent;
  SendMad(id, dreq, /*remember=*/true, now_ns);
  ArmResend(id, 2 * CmTimeoutNs(kPacketLifeTime) + CmTimeoutNs(kCmResponseTimeout), kMaxCmRetries,
            now_ns);
}

void RdmaCm::SendDrep(CmId& id) {
  wire::Drep drep;
  drep.local_comm_id = id.local_comm_id;
  drep.remote_comm_id = id.remote_comm_id;
  SendMad(id, drep, /*remember=*/false, now_ns_);
}

void RdmaCm::EnterTimeWait(CmId& id, uint64_t now_ns) {
  // IBTA 12.9.? TimeWait: the comm ID stays known (a late DREQ is answered) for about
  // twice the packet lifetime (cm.c waits cm_convert_to_ms(av.timeout)).
  Disarm(id);
  id.conn = ConnState::kTimeWait;
  id.timewait_until_ns = now_ns + CmTimeoutNs(kPacketLifeTime + 1);
  timed_.insert(&id);
}

void RdmaCm::AbortConnection(CmId& id) {
  switch (id.conn) {
    case ConnState::kReqSent:
      SendRej(id, wire::RejReason::kTimeout, wire::kRejectedReq, nullptr, 0);
      break;
    case ConnState::kReqRcvd:
      SendRej(id, wire::RejReason::kConsumerReject, wire::kRejectedReq, nullptr, 0);
      break;
    case ConnState::kRepSent:
    case ConnState::kRepRcvd:
      SendRej(id, wire::RejReason::kConsumerReject, wire::kRejectedRep, nullptr, 0);
      break;
    case ConnState::kEstablished: {
      wire::Dreq dreq;
      dreq.local_comm_id = id.local_comm_id;
      dreq.remote_comm_id = id.remote_comm_id;
      dreq.remote_qpn_eecn = id.params.remote_qpn;
      SendMad(id, dreq, /*remember=*/false, now_ns_);
      break;
    }
    case ConnState::kDreqRcvd:
      SendDrep(id);
      break;
    default:
      break;
  }
  id.conn = ConnState::kIdle;
}

// ---- receiving -------------------------------------------------------------------------------

void RdmaCm::OnMad(const qp1::InboundMad& mad) {
  absl::StatusOr<wire::Mad> parsed = wire::ParseMad(mad.mad);
  if (!parsed.ok()) {
    ++CountersOf(mad.vdev).drop_malformed;
    return;
  }
  ++CountersOf(mad.vdev).received[parsed->message.index()];
  if (const auto* req = std::get_if<wire::Req>(&parsed->message)) {
    OnReq(mad, parsed->header, *req);
    return;
  }
  if (const auto* sreq = std::get_if<wire::SidrReq>(&parsed->message)) {
    OnSidrReq(mad, parsed->header, *sreq);
    return;
  }
  if (const auto* srep = std::get_if<wire::SidrRep>(&parsed->message)) {
    // A SIDR_REP names our request by its request ID (IBTA 12.11.2).
    auto it = by_comm_id_.find(srep->request_id);
    if (it == by_comm_id_.end()) {
      ++CountersOf(mad.vdev).drop_unknown_comm;
    } else if (VdevOf(*it->second) != mad.vdev) {
      ++CountersOf(mad.vdev).drop_wrong_vdev;
    } else {
      OnSidrRep(*it->second, *srep);
    }
    return;
  }
  // Every other CM message names our connection by the comm ID we gave it (its
  // "remote comm ID"); it must also have come to the vdev that connection is on, so no
  // MAD to one vdev reaches another's connection.
  auto it = by_comm_id_.find(RemoteCommIdOf(parsed->message));
  if (it == by_comm_id_.end()) {
    ++CountersOf(mad.vdev).drop_unknown_comm;
    return;
  }
  CmId& id = *it->second;
  if (VdevOf(id) != mad.vdev) {
    ++CountersOf(mad.vdev).drop_wrong_vdev;
    return;
  }
  std::visit(
      [&](const auto& msg) {
        using T = std::decay_t<decltype(msg)>;
        if constexpr (std::is_same_v<T, wire::Rep>) {
          OnRep(id, mad, msg);
        } else if constexpr (std::is_same_v<T, wire::Rtu>) {
          OnRtu(id);
        } else if constexpr (std::is_same_v<T, wire::Rej>) {
          OnRej(id, msg);
        } else if constexpr (std::is_same_v<T, wire::Mra>) {
          OnMra(id, msg, now_ns_);
        } else if constexpr (std::is_same_v<T, wire::Dreq>) {
          OnDreq(id, mad, parsed->header, msg);
        } else if constexpr (std::is_same_v<T, wire::Drep>) {
          OnDrep(id, now_ns_);
        }
      },
      parsed->message);
}

std::optional<RdmaCm::RequestTarget> RdmaCm::MatchRequest(const qp1::InboundMad& mad,
                                                          uint64_t service_id,
                                                          std::span<const uint8_t> private_data) {
  RequestTarget t;
  absl::StatusOr<wire::CmaHeader> cma = wire::ParseCmaHeader(private_data);
  if (!wire::ParseIpServiceId(service_id, &t.port_space, &t.port) || !cma.ok()) return std::nullopt;
  if (cma->ip_version == 4) {
    t.dst_ip[10] = t.dst_ip[11] = t.src_ip[10] = t.src_ip[11] = 0xff;
    std::memcpy(&t.dst_ip[12], &cma->dst_addr[12], 4);
    std::memcpy(&t.src_ip[12], &cma->src_addr[12], 4);
  } else {
    t.dst_ip = cma->dst_addr;
    t.src_ip = cma->src_addr;
  }
  t.src_port = cma->src_port;
  // The address must be the receiving interface's (cma_match_net_dev).
  if (GidIndexIn(*mad.vdev, t.dst_ip) >= 0) {
    t.listener = FindListener(*mad.vdev, t.port_space, t.port, t.dst_ip);
  }
  return t;
}

void RdmaCm::OnReq(const qp1::InboundMad& mad, const wire::MadHeader& h, const wire::Req& req) {
  // A repeated REQ (our REP or the consumer is slow): answer it as cm_dup_req_handler
  // does, from the connection it already made.
  if (auto dup = by_remote_.find({req.local_comm_id, req.local_ca_guid}); dup != by_remote_.end()) {
    CmId& id = *dup->second;
    if (id.conn == ConnState::kReqRcvd) {
      id.mra_pending = true;
      SendMra(id);
    } else if (id.conn == ConnState::kRepSent) {
      if (vdev::Vdev* v = VdevOf(id)) {
        qp1::MadDestination to{id.gid_index, id.dgid, id.dmac, 1};
        if (qp1_->Send(*v, to, id.last_mad).ok()) ++CountersOf(mad.vdev).resends;
      }
    }
    return;
  }

  // Rejects are sent from a scratch connection that names the REQ's comm ID.
  auto reject = [&](wire::RejReason reason) {
    wire::Rej rej;
    rej.remote_comm_id = req.local_comm_id;
    rej.message_rejected = wire::kRejectedReq;
    rej.reason = static_cast<uint16_t>(reason);
    SendTo(mad, rej, h.transaction_id);
  };
  std::optional<RequestTarget> target = MatchRequest(mad, req.service_id, req.private_data);
  CmId* listener = target ? target->listener : nullptr;
  if (!listener) {
    ++CountersOf(mad.vdev).rej_no_listener;
    reject(wire::RejReason::kInvalidServiceId);
    return;
  }
  if (req.transport_service_type != wire::kServiceRc || listener->qp_type != IBV_QPT_RC) {
    reject(wire::RejReason::kInvalidTransportType);
    return;
  }
  if (listener->pending_requests >= listener->backlog) {
    ++CountersOf(mad.vdev).rej_backlog;
    reject(wire::RejReason::kConsumerReject);
    return;
  }
  UcmaFile& file = *listener->file;
  uint32_t handle = next_handle_++;
  if (next_handle_ == 0) next_handle_ = 1;
  CmId* id = file.NewId(handle);
  if (!id) {
    reject(wire::RejReason::kNoResources);
    return;
  }
  id->port_space = listener->port_space;
  id->qp_type = listener->qp_type;
  id->tos = req.primary.traffic_class;
  id->state = IdState::kConnect;
  id->conn = ConnState::kReqRcvd;
  BindToVdev(*id, &mad, mad.vdev, mad.gid_index);
  id->sgid = mad.dgid;
  id->dgid = req.primary.local_gid;
  id->dmac = mad.tag.smac;
  id->dmac_known = true;
  id->tag = mad.tag;
  id->src = SockaddrOfGid(target->dst_ip, target->port);
  id->dst = SockaddrOfGid(target->src_ip, target->src_port);
  id->remote_comm_id = req.local_comm_id;
  id->remote_ca_guid = req.local_ca_guid;
  id->local_comm_id = NewCommId();
  id->transaction_id = h.transaction_id;
  id->peer_cm_response_timeout = req.local_cm_response_timeout;
  id->peer_max_cm_retries = req.max_cm_retries;
  by_comm_id_[id->local_comm_id] = id;
  by_remote_[{id->remote_comm_id, id->remote_ca_guid}] = id;
  // The connection from this side (cm_format_req_event swaps the RDMA READ resources).
  ConnParams& p = id->params;
  p.remote_qpn = req.local_qpn;
  p.remote_psn = req.starting_psn;
  // Chosen now: librdmacm moves the QP to RTS (INIT_QP_ATTR) before it sends ACCEPT.
  p.local_psn = static_cast<uint32_t>(random_()) & 0xffffff;
  p.responder_resources = req.initiator_depth;
  p.initiator_depth = req.responder_resources;
  p.retry_count = req.retry_count;
  p.rnr_retry_count = req.rnr_retry_count;
  p.flow_control = req.end_to_end_flow_control;
  p.srq = req.srq;
  p.local_ack_timeout = req.primary.local_ack_timeout;
  ibv_mtu asked = req.path_mtu ? static_cast<ibv_mtu>(req.path_mtu) : IBV_MTU_1024;
  p.path_mtu = std::min(asked, mad.vdev->ActiveMtu());
  id->listener_handle = listener->handle;
  id->counts_against_backlog = true;
  ++listener->pending_requests;

  rdma_ucm_conn_param conn{};
  conn.qp_num = req.local_qpn;
  std::memcpy(conn.private_data, req.private_data.data() + wire::kCmaHeaderSize,
              wire::kReqPrivateData - wire::kCmaHeaderSize);
  conn.private_data_len = static_cast<uint8_t>(wire::kReqPrivateData - wire::kCmaHeaderSize);
  conn.responder_resources = p.responder_resources;
  conn.initiator_depth = p.initiator_depth;
  conn.flow_control = p.flow_control;
  conn.retry_count = p.retry_count;
  conn.rnr_retry_count = p.rnr_retry_count;
  conn.srq = p.srq;
  // The event names the new ID and carries the listener's context (ucma_connect_event_handler).
  rdma_ucm_event_resp resp{};
  resp.uid = listener->uid;
  resp.id = id->handle;
  resp.event = kEventConnectRequest;
  resp.param.conn = conn;
  if (!file.Enqueue(listener->handle, resp)) {
    // ucma could not queue it: the connection is refused, as when it cannot allocate.
    SendRej(*id, wire::RejReason::kConsumerReject, wire::kRejectedReq, nullptr, 0);
    --listener->pending_requests;
    Forget(*id);
    uint32_t reported;
    bool drained;
    file.Take(handle, &reported, &drained);
  }
}

namespace {

// A SIDR request is named by its request ID and its sender (SIDR_REQ carries no CA GUID).
uint64_t SenderKey(const Gid& sgid) {
  uint64_t hi, lo;
  std::memcpy(&hi, sgid.data(), 8);
  std::memcpy(&lo, sgid.data() + 8, 8);
  return hi ^ (lo * 0x9e3779b97f4a7c15ull);
}

}  // namespace

void RdmaCm::SendSidrRep(CmId& id, wire::SidrStatus status, uint32_t qpn, const uint8_t* data,
                         size_t len) {
  wire::SidrRep rep;
  rep.request_id = id.remote_comm_id;
  rep.status = static_cast<uint8_t>(status);
  rep.qpn = qpn;
  rep.service_id = id.service_id;
  rep.qkey = id.params.qkey;
  if (data && len)
    std::memcpy(rep.private_data.data(), data, std::min(len, rep.private_data.size()));
  SendMad(id, rep, /*remember=*/true, now_ns_);
  id.conn = ConnState::kIdle;  // SIDR has no connection to keep (IBTA 12.11)
  id.sidr_answered = true;
}

void RdmaCm::OnSidrReq(const qp1::InboundMad& mad, const wire::MadHeader& h,
                       const wire::SidrReq& req) {
  const uint64_t sender = SenderKey(mad.sgid);
  if (auto dup = by_remote_.find({req.request_id, sender}); dup != by_remote_.end()) {
    CmId& id = *dup->second;
    if (id.sidr_answered) {  // our SIDR_REP was lost: the same answer again
      if (vdev::Vdev* v = VdevOf(id)) {
        qp1::MadDestination to{id.gid_index, id.dgid, id.dmac, 1};
        if (qp1_->Send(*v, to, id.last_mad).ok()) ++CountersOf(mad.vdev).resends;
      }
    }
    return;
  }
  auto answer = [&](wire::SidrStatus status) {
    wire::SidrRep rep;
    rep.request_id = req.request_id;
    rep.status = static_cast<uint8_t>(status);
    rep.service_id = req.service_id;
    SendTo(mad, rep, h.transaction_id);
  };
  std::optional<RequestTarget> target = MatchRequest(mad, req.service_id, req.private_data);
  CmId* listener = target ? target->listener : nullptr;
  if (!listener || listener->qp_type != IBV_QPT_UD) {
    ++CountersOf(mad.vdev).rej_no_listener;
    answer(wire::SidrStatus::kServiceIdNotSupported);
    return;
  }
  if (listener->pending_requests >= listener->backlog) {
    ++CountersOf(mad.vdev).rej_backlog;
    answer(wire::SidrStatus::kRejected);
    return;
  }
  UcmaFile& file = *listener->file;
  uint32_t handle = next_handle_++;
  if (next_handle_ == 0) next_handle_ = 1;
  CmId* id = file.NewId(handle);
  if (!id) {
    answer(wire::SidrStatus::kNoQp);
    return;
  }
  id->port_space = listener->port_space;
  id->qp_type = IBV_QPT_UD;
  id->state = IdState::kConnect;
  id->conn = ConnState::kSidrReqRcvd;
  BindToVdev(*id, &mad, mad.vdev, mad.gid_index);
  id->sgid = mad.dgid;
  id->dgid = mad.sgid;
  id->dmac = mad.tag.smac;
  id->dmac_known = true;
  id->tag = mad.tag;
  id->src = SockaddrOfGid(target->dst_ip, target->port);
  id->dst = SockaddrOfGid(target->src_ip, target->src_port);
  id->remote_comm_id = req.request_id;
  id->remote_ca_guid = sender;
  id->service_id = req.service_id;
  id->transaction_id = h.transaction_id;
  // RDMA-CM's Q_Key for the IP port spaces (cma_set_qkey).
  id->params.qkey = kRdmaUdpQkey;
  by_remote_[{id->remote_comm_id, id->remote_ca_guid}] = id;
  id->listener_handle = listener->handle;
  id->counts_against_backlog = true;
  ++listener->pending_requests;

  rdma_ucm_event_resp resp{};
  resp.uid = listener->uid;
  resp.id = id->handle;
  resp.event = kEventConnectRequest;
  rdma_ucm_ud_param& ud = resp.param.ud;
  FillUdAh(*id, &ud.ah_attr);
  const size_t n = wire::kSidrReqPrivateData - wire::kCmaHeaderSize;
  std::memcpy(ud.private_data, req.private_data.data() + wire::kCmaHeaderSize, n);
  ud.private_data_len = static_cast<uint8_t>(n);
  if (!file.Enqueue(listener->handle, resp)) {
    answer(wire::SidrStatus::kRejected);
    --listener->pending_requests;
    Forget(*id);
    uint32_t reported;
    bool drained;
    file.Take(handle, &reported, &drained);
  }
}

void RdmaCm::OnSidrRep(CmId& id, const wire::SidrRep& rep) {
  if (id.conn != ConnState::kSidrReqSent) {
    ++CountersOf(VdevOf(id)).drop_wrong_state;
    return;
  }
  Disarm(id);
  Forget(id);
  id.conn = ConnState::kIdle;
  rdma_ucm_event_resp resp{};
  resp.uid = id.uid;
  resp.id = id.handle;
  rdma_ucm_ud_param& ud = resp.param.ud;
  std::memcpy(ud.private_data, rep.private_data.data(), wire::kSidrRepPrivateData);
  ud.private_data_len = static_cast<uint8_t>(wire::kSidrRepPrivateData);
  // cma_sidr_rep_handler: an answer other than "valid", or another Q_Key than RDMA-CM's,
  // leaves the peer unreachable.
  if (rep.status != static_cast<uint8_t>(wire::SidrStatus::kValid)) {
    resp.event = kEventUnreachable;
    resp.status = rep.status;
  } else if (rep.qkey != kRdmaUdpQkey && id.port_space != wire::kPsIb) {
    resp.event = kEventUnreachable;
    resp.status = static_cast<uint32_t>(-EINVAL);
  } else {
    resp.event = kEventEstablished;
    id.state = IdState::kEstablished;
    ud.qp_num = rep.qpn;
    ud.qkey = rep.qkey;
    FillUdAh(id, &ud.ah_attr);
  }
  if (id.file) id.file->Enqueue(id.handle, resp);
}

void RdmaCm::OnRep(CmId& id, const qp1::InboundMad& /*mad*/, const wire::Rep& rep) {
  if (id.conn == ConnState::kEstablished && id.remote_comm_id == rep.local_comm_id) {
    SendRtu(id);  // our RTU was lost: the peer repeats its REP (IBTA 12.9.5)
    ++CountersOf(VdevOf(id)).resends;
    return;
  }
  if (id.conn != ConnState::kReqSent) {
    ++CountersOf(VdevOf(id)).drop_wrong_state;
    return;
  }
  Disarm(id);
  id.remote_comm_id = rep.local_comm_id;
  id.remote_ca_guid = rep.local_ca_guid;
  ConnParams& p = id.params;
  p.remote_qpn = rep.local_qpn;
  p.remote_psn = rep.starting_psn;
  // cm_format_rep_event: the peer's initiator depth is our responder resources.
  p.responder_resources = rep.initiator_depth;
  p.initiator_depth = rep.responder_resources;
  p.rnr_retry_count = rep.rnr_retry_count;
  id.conn = ConnState::kRepRcvd;
  rdma_ucm_conn_param conn{};
  conn.qp_num = rep.local_qpn;
  std::memcpy(conn.private_data, rep.private_data.data(), wire::kRepPrivateData);
  conn.private_data_len = static_cast<uint8_t>(wire::kRepPrivateData);
  conn.responder_resources = p.responder_resources;
  conn.initiator_depth = p.initiator_depth;
  conn.flow_control = rep.end_to_end_flow_control;
  conn.rnr_retry_count = rep.rnr_retry_count;
  conn.srq = rep.srq;
  // A user-space consumer moves its own QP: it hears CONNECT_RESPONSE and answers with
  // ACCEPT, which sends the RTU (cma_rep_recv).
  EventWithConn(id, id.handle, kEventConnectResponse, 0, conn);
}

void RdmaCm::OnRtu(CmId& id) {
  if (id.conn != ConnState::kRepSent) {
    ++CountersOf(VdevOf(id)).drop_wrong_state;
    return;
  }
  Disarm(id);
  id.conn = ConnState::kEstablished;
  id.state = IdState::kEstablished;
  Event(id, kEventEstablished, 0);
}

void RdmaCm::OnRej(CmId& id, const wire::Rej& rej) {
  if (id.conn != ConnState::kReqSent && id.conn != ConnState::kRepSent &&
      id.conn != ConnState::kRepRcvd) {
    ++CountersOf(VdevOf(id)).drop_wrong_state;
    return;
  }
  LeaveBacklog(id, false);
  Forget(id);
  id.conn = ConnState::kIdle;
  rdma_ucm_conn_param conn{};
  std::memcpy(conn.private_data, rej.private_data.data(), wire::kRejPrivateData);
  conn.private_data_len = static_cast<uint8_t>(wire::kRejPrivateData);
  // The event's status is the IBTA reason (cma_ib_handler: IB_CM_REJ_RECEIVED).
  EventWithConn(id, id.handle, kEventRejected, rej.reason, conn);
}

void RdmaCm::OnMra(CmId& id, const wire::Mra& mra, uint64_t now_ns) {
  // The peer's consumer is slow: wait its service timeout plus the packet lifetime
  // before resending (cm_mra_handler).
  bool for_req = id.conn == ConnState::kReqSent && mra.message_mraed == wire::kMraReq;
  bool for_rep = id.conn == ConnState::kRepSent && mra.message_mraed == wire::kMraRep;
  if (!for_req && !for_rep) {
    ++CountersOf(VdevOf(id)).drop_wrong_state;
    return;
  }
  ArmResend(id, CmTimeoutNs(mra.service_timeout) + CmTimeoutNs(kPacketLifeTime), id.retries_left,
            now_ns);
}

void RdmaCm::OnDreq(CmId& id, const qp1::InboundMad& /*mad*/, const wire::MadHeader& /*h*/,
                    const wire::Dreq& /*dreq*/) {
  switch (id.conn) {
    case ConnState::kEstablished:
    case ConnState::kRepSent:
      Disarm(id);
      id.conn = ConnState::kDreqRcvd;
      id.state = IdState::kDisconnect;
      Event(id, kEventDisconnected, 0);
      return;
    case ConnState::kDreqSent:
      // Both sides disconnect at once: answer, and this side is done too.
      SendDrep(id);
      EnterTimeWait(id, now_ns_);
      Event(id, kEventDisconnected, 0);
      return;
    case ConnState::kTimeWait:
      SendDrep(id);  // the peer missed our DREP
      return;
    default:
      ++CountersOf(VdevOf(id)).drop_wrong_state;
      return;
  }
}

void RdmaCm::OnDrep(CmId& id, uint64_t now_ns) {
  if (id.conn != ConnState::kDreqSent) {
    ++CountersOf(VdevOf(id)).drop_wrong_state;
    return;
  }
  EnterTimeWait(id, now_ns);
  Event(id, kEventDisconnected, 0);
}

void RdmaCm::OnTimeout(CmId& id, uint64_t now_ns) {
  vdev::Vdev* v = VdevOf(id);
  CmCounters& counters = CountersOf(v);
  if (id.retries_left > 0) {
    --id.retries_left;
    ++counters.resends;
    if (v) {
      qp1::MadDestination to{id.gid_index, id.dgid, id.dmac, 1};
      if (!qp1_->Send(*v, to, id.last_mad).ok()) ++counters.send_failures;
    }
    id.resend_at_ns = now_ns + id.resend_interval_ns;
    return;
  }
  ++counters.timeouts;
  Disarm(id);
  switch (id.conn) {
    case ConnState::kSidrReqSent:
    case ConnState::kReqSent:
    case ConnState::kRepSent:
      // IB_CM_REQ_ERROR / IB_CM_REP_ERROR / IB_CM_SIDR_REQ_ERROR: the peer never answered.
      LeaveBacklog(id, false);
      Forget(id);
      id.conn = ConnState::kIdle;
      Event(id, kEventUnreachable, -ETIMEDOUT);
      return;
    case ConnState::kDreqSent:
      EnterTimeWait(id, now_ns);
      Event(id, kEventDisconnected, 0);
      return;
    default:
      return;
  }
}

int RdmaCm::Poll(uint64_t now_ns) {
  now_ns_ = now_ns;
  if (registry_->generation() != vdev_generation_) CheckVdevs();
  if (timed_.empty()) return 0;
  int work = 0;
  std::vector<CmId*> due(timed_.begin(), timed_.end());
  for (CmId* id : due) {
    if (!timed_.count(id)) continue;
    if (id->neighbour) {
      if (std::optional<absl::StatusOr<driver::wire::MacAddr>> mac = id->neighbour->Poll(now_ns)) {
        timed_.erase(id);
        FinishResolve(*id, *mac);
        ++work;
      }
      continue;
    }
    if (id->resend_armed && now_ns >= id->resend_at_ns) {
      OnTimeout(*id, now_ns);
      ++work;
    } else if (id->conn == ConnState::kTimeWait && now_ns >= id->timewait_until_ns) {
      timed_.erase(id);
      Forget(*id);
      id->conn = ConnState::kIdle;
      Event(*id, kEventTimewaitExit, 0);
      ++work;
    }
  }
  return work;
}

}  // namespace vrdma::cm
