// The QPs of a client context: create (with their shared rings), modify, query, destroy.
#include <algorithm>
#include <cstring>

#include "absl/strings/str_cat.h"
#include "vdev/session.h"
#include "vdev/session_util.h"

namespace vrdma::vdev {

using session_util::AddressErrno;
using session_util::Append;
using session_util::Pow2AtLeast;

// ---- QP -------------------------------------------------------------------------------------

int Session::CreateQp(proto::Message& msg, Payload* out, Fds* fds) {
  proto::CreateQpRequest req;
  if (!msg.Copy(&req)) return EINVAL;
  if (req.qp_type != IBV_QPT_RC && req.qp_type != IBV_QPT_UC && req.qp_type != IBV_QPT_UD &&
      req.qp_type != IBV_QPT_XRC_SEND && req.qp_type != IBV_QPT_XRC_RECV &&
      req.qp_type != IBV_QPT_RAW_PACKET) {
    return Refuse(EOPNOTSUPP, absl::StrCat("QP type ", req.qp_type, " not offered"));
  }
  if (req.qp_type == IBV_QPT_RAW_PACKET) {
    if (int err = CheckRawPacketPrivilege()) return err;
  }
  // An XRC send QP has no receive side; an XRC receive QP has only its domain (its
  // messages take SRQ, CQ and PD from the XRC SRQ each names).
  const bool xrc_send = req.qp_type == IBV_QPT_XRC_SEND;
  const bool xrc_recv = req.qp_type == IBV_QPT_XRC_RECV;
  // A receive-side scaling QP: a raw packet QP with no queues or CQs (session_rss.cc).
  const bool rss = req.rx_hash != 0;
  if (rss) {
    if (req.qp_type != IBV_QPT_RAW_PACKET) return Refuse(EINVAL, "an RSS QP is a raw packet QP");
    req.send_cq = req.recv_cq = req.has_srq = req.srq = 0;
    req.max_send_wr = req.max_recv_wr = req.max_send_sge = req.max_recv_sge = 0;
    req.max_inline_data = 0;
    if (!pds_.count(req.pd)) return Refuse(EINVAL, absl::StrCat("no PD ", req.pd));
  } else if (xrc_recv) {
    if (!xrcds_.count(req.xrcd)) return Refuse(EINVAL, absl::StrCat("no XRC domain ", req.xrcd));
    req.pd = req.send_cq = req.recv_cq = req.has_srq = req.srq = 0;
    req.max_send_wr = req.max_recv_wr = req.max_send_sge = req.max_recv_sge = 0;
    req.max_inline_data = 0;
  } else {
    if (!pds_.count(req.pd)) return Refuse(EINVAL, absl::StrCat("no PD ", req.pd));
    if (xrc_send) {
      req.recv_cq = req.has_srq = req.srq = req.max_recv_wr = req.max_recv_sge = 0;
      if (!cqs_.count(req.send_cq)) return Refuse(EINVAL, absl::StrCat("no CQ ", req.send_cq));
    } else if (!cqs_.count(req.send_cq) || !cqs_.count(req.recv_cq)) {
      return Refuse(EINVAL, absl::StrCat("no CQ ", req.send_cq, " or ", req.recv_cq));
    }
  }
  if (req.has_srq && !srqs_.count(req.srq)) return Refuse(EINVAL, absl::StrCat("no SRQ ", req.srq));
  const driver::DeviceLimits& l = device_->limits();
  // ibv_create_qp(3): EINVAL for a capability beyond the device's (max_qp_wr, max_sge,
  // and the inline room a WQE slot can have).
  auto over = [&](const char* what, uint32_t asked, uint32_t max) {
    return Refuse(EINVAL, absl::StrCat(what, " ", asked, " above the device's ", max));
  };
  if (req.max_send_wr > l.max_qp_wr) return over("max_send_wr", req.max_send_wr, l.max_qp_wr);
  if (req.max_recv_wr > l.max_qp_wr) return over("max_recv_wr", req.max_recv_wr, l.max_qp_wr);
  if (req.max_send_sge > l.max_sge) return over("max_send_sge", req.max_send_sge, l.max_sge);
  if (req.max_recv_sge > l.max_sge) return over("max_recv_sge", req.max_recv_sge, l.max_sge);
  if (req.max_inline_data > l.max_inline_data) {
    return over("max_inline_data", req.max_inline_data, l.max_inline_data);
  }
  driver::QpInitAttr init;
  init.type = static_cast<int>(req.qp_type);
  init.pd = req.pd;
  init.send_cq = req.send_cq;
  init.recv_cq = req.recv_cq;
  init.has_srq = req.has_srq != 0;
  init.srq = req.srq;
  init.xrcd = xrc_recv ? req.xrcd : 0;
  init.max_send_wr = xrc_recv ? 0 : Pow2AtLeast(std::max<uint32_t>(req.max_send_wr, 1));
  init.max_recv_wr = init.has_srq || xrc_send || xrc_recv
                         ? 0
                         : Pow2AtLeast(std::max<uint32_t>(req.max_recv_wr, 1));
  init.max_send_sge = std::max<uint32_t>(req.max_send_sge, 1);
  init.max_recv_sge = std::max<uint32_t>(req.max_recv_sge, 1);
  // Report the inline room the slot really has, up to the device's maximum.
  uint32_t sq_stride = proto::SendWqeStride(init.max_send_sge, req.max_inline_data);
  init.max_inline_data = std::min<uint32_t>(sq_stride - sizeof(proto::SendWqe), l.max_inline_data);
  init.sq_sig_all = req.sq_sig_all != 0;
  init.owner = vdev_->id;
  init.gid_first = vdev_->gid_base;
  init.gid_count = kGidsPerVdev;
  // A raw packet QP sends and hears its interface's frames: its MAC, and frames up to
  // the interface's MTU with the Ethernet header and one VLAN tag.
  init.mac = vdev_->mac;
  init.max_frame = vdev_->netdev_mtu + driver::wire::kEthLen + 4;
  init.check_source = vdev_->spoof_check;
  if (rss) {
    if (int err = TakeRxHash(msg, &init)) return err;
    init.max_send_wr = init.max_recv_wr = 0;
  }
  uint32_t rq_stride = proto::RecvWqeStride(init.max_recv_sge);
  size_t sq_offset = sizeof(proto::QpShmHeader);
  size_t rq_offset = sq_offset + size_t{init.max_send_wr} * sq_stride;
  size_t size = rq_offset + size_t{init.max_recv_wr} * rq_stride;
  // The rings and the engine's copies of their queues are the daemon's memory, charged to
  // the vdev before they are made.
  const uint64_t ring_bytes = RingBytes(size) + driver::RoceDevice::QpQueueBytes(init);
  if (!Charge(Resource::kRingBytes, ring_bytes)) return ChargeError();
  if (!Charge(Resource::kQp)) {
    Release(Resource::kRingBytes, ring_bytes);
    return ChargeError();
  }
  auto region = rings_.Allocate(size);
  if (!region.ok()) {
    Release(Resource::kQp);
    Release(Resource::kRingBytes, ring_bytes);
    return ENOMEM;
  }
  auto qpn = device_->CreateQp(init);
  if (!qpn.ok()) {
    Release(Resource::kQp);
    Release(Resource::kRingBytes, ring_bytes);
    return Refused(qpn.status());
  }
  auto* h = reinterpret_cast<proto::QpShmHeader*>((*region)->data());
  (void)device_->PublishRetired(*qpn, &h->sq.retired.value, &h->rq.retired.value);
  QpRings rings;
  rings.qpn = *qpn;
  rings.type = init.type;
  rings.user_handle = req.user_handle;
  rings.sq = RingView{&h->sq, (*region)->data() + sq_offset, init.max_send_wr, sq_stride, 0};
  rings.rq = RingView{&h->rq, (*region)->data() + rq_offset, init.max_recv_wr, rq_stride, 0};
  rings.send_limits = SendQueueLimits{sq_stride, init.max_send_sge, init.max_inline_data};
  rings.max_recv_sge = init.max_recv_sge;
  if (!xrc_recv && !rss) drain_->AddQp(rings);  // XRC receive and RSS QPs have no rings
  if (xrc_recv) vdev_->xrc_qp_holds[*qpn] = 1;
  QpObject qp;
  qp.pd = req.pd;
  qp.type = init.type;
  qp.user_handle = req.user_handle;
  qp.region = std::move(*region);
  qp.charged = ring_bytes;
  proto::CreateQpReply r{};
  r.handle = *qpn;
  r.qpn = *qpn;
  r.sq_depth = init.max_send_wr;
  r.rq_depth = init.max_recv_wr;
  r.sq_stride = sq_stride;
  r.rq_stride = rq_stride;
  r.max_send_sge = init.max_send_sge;
  r.max_recv_sge = init.max_recv_sge;
  r.max_inline_data = init.max_inline_data;
  r.sq_offset = sq_offset;
  r.rq_offset = rq_offset;
  r.shm_size = qp.region->size();
  r.shm_offset = qp.region->offset();
  HandOver(fds, qp.region->TakeFd());
  qps_[*qpn] = std::move(qp);
  Append(out, r);
  return 0;
}

int Session::ModifyQp(proto::Message& msg, Payload* /*out*/, Fds* /*fds*/) {
  proto::ModifyQpRequest req;
  if (!msg.Copy(&req) || !qps_.count(req.handle)) return EINVAL;
  if (req.mask & IBV_QP_PORT && req.attr.port_num != 1) return EINVAL;
  // IBTA 10.2.4: a Q_Key with its high bit set is controlled; only a privileged consumer
  // may give one to a QP (Linux's uverbs asks for CAP_NET_RAW). The GSI's 0x80010000 is
  // one: a tenant's UD QP holding it could send the CM's MADs to QP1 as the CM would.
  if (req.mask & IBV_QP_QKEY && (req.attr.qkey & 0x80000000u) && requester_->uid() != 0)
    return EPERM;
  if (!(req.mask & IBV_QP_AV)) return FinishModifyQp(req, nullptr);
  std::unique_ptr<NeighbourQuery> query;
  auto av = TranslateAh(req.attr.ah_attr, &query);
  if (!av.ok()) return Refuse(AddressErrno(av.status()), std::string(av.status().message()));
  if (query) {  // answered once the destination resolves (RTR waits for it, as in ib_core)
    int later = Defer(proto::Op::kModifyQp, std::move(query), *av);
    deferred_->qp = req;
    return later;
  }
  return FinishModifyQp(req, &*av);
}

int Session::FinishModifyQp(const proto::ModifyQpRequest& req, const driver::AddressVector* av) {
  return Refused(device_->ModifyQp(req.handle, req.attr, req.mask, av));
}

int Session::QueryQp(proto::Message& msg, Payload* out, Fds* /*fds*/) {
  proto::QueryQpRequest req;
  if (!msg.Copy(&req) || !qps_.count(req.handle)) return EINVAL;
  proto::QueryQpReply r{};
  driver::QpInitAttr init;
  if (absl::Status st = device_->QueryQp(req.handle, &r.attr, &init); !st.ok()) {
    return Refused(st);
  }
  // The address vector is kept as the client gave it: its GID index is the vdev's own.
  r.cap.max_send_wr = init.max_send_wr;
  r.cap.max_recv_wr = init.max_recv_wr;
  r.cap.max_send_sge = init.max_send_sge;
  r.cap.max_recv_sge = init.max_recv_sge;
  r.cap.max_inline_data = init.max_inline_data;
  r.sq_sig_all = init.sq_sig_all;
  Append(out, r);
  return 0;
}

int Session::DestroyQp(proto::Message& msg, Payload* out, Fds* /*fds*/) {
  proto::HandleMsg req;
  if (!msg.Copy(&req)) return EINVAL;
  auto it = qps_.find(req.handle);
  if (it == qps_.end()) return EINVAL;
  if (QpHasFlows(req.handle)) return Refuse(EBUSY, "destroy_qp: flow rules still steer to it");
  if (absl::Status st = ReleaseQp(req.handle, it->second); !st.ok()) return Refused(st);
  Append(out, proto::DestroyQpReply{it->second.events_reported, 0});
  qps_.erase(it);
  return 0;
}

absl::Status Session::ReleaseQp(uint32_t qpn, const QpObject& qp) {
  bool last = true;
  if (qp.type == IBV_QPT_XRC_RECV) {
    // An XRC receive QP lives while any context holds it (ibv_destroy_qp(3) of an opened
    // QP closes that handle only).
    auto hold = vdev_->xrc_qp_holds.find(qpn);
    if (hold != vdev_->xrc_qp_holds.end() && --hold->second > 0) {
      last = false;
    } else if (hold != vdev_->xrc_qp_holds.end()) {
      vdev_->xrc_qp_holds.erase(hold);
    }
  }
  if (last) {
    if (absl::Status st = device_->DestroyQp(qpn); !st.ok()) return st;
  }
  if (drain_) drain_->RemoveQp(qpn);
  Release(Resource::kRingBytes, qp.charged);
  if (!qp.opened) Release(Resource::kQp);
  return absl::OkStatus();
}

int Session::OpenQp(proto::Message& msg, Payload* out, Fds* fds) {
  proto::OpenQpRequest req;
  if (!msg.Copy(&req)) return EINVAL;
  if (req.qp_type != IBV_QPT_XRC_RECV) {
    return Refuse(EOPNOTSUPP, "open_qp: only XRC receive QPs are opened");
  }
  if (!xrcds_.count(req.xrcd)) return Refuse(EINVAL, absl::StrCat("no XRC domain ", req.xrcd));
  // A receive QP of that domain, which is the vdev's: held by a context of this vdev.
  const driver::QueuePair* qp = device_->FindQp(req.qpn);
  auto hold = vdev_->xrc_qp_holds.find(req.qpn);
  if (!qp || hold == vdev_->xrc_qp_holds.end() || qp->type != IBV_QPT_XRC_RECV ||
      qp->init.xrcd != req.xrcd) {
    return Refuse(EINVAL,
                  absl::StrCat("open_qp: no XRC receive QP ", req.qpn, " in domain ", req.xrcd));
  }
  if (qps_.count(req.qpn)) return Refuse(EBUSY, absl::StrCat("open_qp: QP ", req.qpn, " held"));
  const size_t size = sizeof(proto::QpShmHeader);
  const uint64_t ring_bytes = RingBytes(size);
  if (!Charge(Resource::kRingBytes, ring_bytes)) return ChargeError();
  auto region = rings_.Allocate(size);
  if (!region.ok()) {
    Release(Resource::kRingBytes, ring_bytes);
    return ENOMEM;
  }
  hold->second++;
  QpObject o;
  o.type = IBV_QPT_XRC_RECV;
  o.user_handle = req.user_handle;
  o.region = std::move(*region);
  o.charged = ring_bytes;
  o.opened = true;
  proto::CreateQpReply r{};
  r.handle = req.qpn;
  r.qpn = req.qpn;
  r.sq_offset = r.rq_offset = size;
  r.shm_size = o.region->size();
  r.shm_offset = o.region->offset();
  HandOver(fds, o.region->TakeFd());
  qps_[req.qpn] = std::move(o);
  Append(out, r);
  return 0;
}
}  // namespace vrdma::vdev
