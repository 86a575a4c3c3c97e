// The objects of a client context other than QPs and MRs: PDs, CQs, SRQs and AHs.
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstring>
#include <optional>
#include <string>

#include "absl/strings/str_cat.h"
#include "vdev/client_fd.h"
#include "vdev/monotonic.h"
#include "vdev/session.h"
#include "vdev/session_util.h"

namespace vrdma::vdev {

using session_util::AddressErrno;
using session_util::Append;
using session_util::Pow2AtLeast;

// ---- PD and MR ----------------------------------------------------------------------------

int Session::AllocPd(proto::Message& /*msg*/, Payload* out, Fds* /*fds*/) {
  if (!Charge(Resource::kPd)) return ChargeError();
  auto pd = device_->AllocPd(vdev_->id);
  if (!pd.ok()) {
    Release(Resource::kPd);
    return Refused(pd.status());
  }
  pds_[*pd] = 1;
  Append(out, proto::HandleMsg{*pd, 0});
  return 0;
}

int Session::DeallocPd(proto::Message& msg, Payload* /*out*/, Fds* /*fds*/) {
  proto::HandleMsg req;
  if (!msg.Copy(&req) || !pds_.count(req.handle)) return EINVAL;
  bool used_by_ah = std::any_of(ahs_.begin(), ahs_.end(),
                                [&](const auto& kv) { return kv.second == req.handle; });
  if (used_by_ah) return EBUSY;
  if (absl::Status st = device_->DeallocPd(req.handle); !st.ok()) return Refused(st, EBUSY);
  pds_.erase(req.handle);
  Release(Resource::kPd);
  return 0;
}

// ---- CQ -------------------------------------------------------------------------------------

int Session::CreateCq(proto::Message& msg, Payload* out, Fds* fds) {
  proto::CreateCqRequest req;
  if (!msg.Copy(&req)) return EINVAL;
  if (req.cqe < 1 || req.cqe > device_->limits().max_cqe) {
    return Refuse(EINVAL, absl::StrCat("cqe ", req.cqe, " outside 1..", device_->limits().max_cqe));
  }
  if (req.has_channel && msg.fd_count() != 1) return EINVAL;
  if (req.flags & ~proto::kCqTimestamps) return Refuse(EINVAL, "unknown CQ flags");
  // The completion channel: the daemon's end of the client's socketpair (client_fd.h).
  int channel = req.has_channel ? msg.TakeFd(0) : -1;
  if (req.has_channel && CheckEventChannel(channel) != 0) {
    if (channel >= 0) close(channel);
    return Refuse(EINVAL, "the completion channel is not an event channel of this client");
  }
  // The daemon keeps the channel's descriptor while the CQ lives: one of the user's share.
  std::string why;
  std::optional<DaemonCharge> channel_charge =
      DaemonCharge::Take(&registry_->daemon_budget(), uid(), 0, channel >= 0 ? 1 : 0, &why);
  if (!channel_charge) {
    close(channel);
    return Refuse(EMFILE, why);
  }
  uint32_t depth = Pow2AtLeast(req.cqe);
  // The ring is the daemon's memory, charged to the vdev before it is made.
  const uint64_t ring_bytes = RingBytes(CqRing::RegionSize(depth));
  if (!Charge(Resource::kRingBytes, ring_bytes)) {
    if (channel >= 0) close(channel);
    return ChargeError();
  }
  if (!Charge(Resource::kCq)) {
    Release(Resource::kRingBytes, ring_bytes);
    if (channel >= 0) close(channel);
    return ChargeError();
  }
  auto ring = CqRing::Create(rings_, depth, req.user_handle, channel);
  if (!ring.ok()) {
    Release(Resource::kCq);
    Release(Resource::kRingBytes, ring_bytes);
    return ENOMEM;
  }
  (*ring)->HoldCharge(std::move(*channel_charge));
  auto cqn = device_->CreateCq(depth, vdev_->id);
  if (!cqn.ok()) {
    Release(Resource::kCq);
    Release(Resource::kRingBytes, ring_bytes);
    return Refused(cqn.status());
  }
  (*ring)->set_timestamps(req.flags & proto::kCqTimestamps);
  (void)device_->AttachCqSink(*cqn, ring->get(), 0);
  proto::CreateCqReply r{*cqn, depth, (*ring)->region().size(), (*ring)->region().offset()};
  HandOver(fds, (*ring)->TakeRegionFd());
  cqs_[*cqn] = std::move(*ring);
  Append(out, r);
  return 0;
}

int Session::ResizeCq(proto::Message& msg, Payload* out, Fds* fds) {
  proto::ResizeCqRequest req;
  if (!msg.Copy(&req)) return EINVAL;
  auto it = cqs_.find(req.handle);
  if (it == cqs_.end()) return Refuse(EINVAL, absl::StrCat("no CQ ", req.handle));
  if (req.cqe < 1 || req.cqe > device_->limits().max_cqe) {
    return Refuse(EINVAL, absl::StrCat("cqe ", req.cqe, " outside 1..", device_->limits().max_cqe));
  }
  // The new size must hold the completions the CQ has (ibv_resize_cq(3): EINVAL
  // otherwise), those of the work the client posted before it asked included: its
  // rings go into the engine and one engine pass completes what completes locally (UD
  // sends, flushes), as a device that takes its doorbells before its command queue.
  Pump();
  device_->Poll(MonotonicNs());
  uint32_t depth = Pow2AtLeast(req.cqe);
  // The new ring is charged before it is made (both exist while the CQEs move over);
  // the old one is released once it is gone.
  const uint64_t old_bytes = it->second->region().size();
  const uint64_t new_bytes = RingBytes(CqRing::RegionSize(depth));
  if (!Charge(Resource::kRingBytes, new_bytes)) return ChargeError();
  if (absl::Status st = it->second->Resize(rings_, depth); !st.ok()) {
    Release(Resource::kRingBytes, new_bytes);
    return Refused(st);
  }
  Release(Resource::kRingBytes, old_bytes);
  (void)device_->ResizeCq(req.handle, depth);
  proto::ResizeCqReply r{req.handle, depth, it->second->region().size(),
                         it->second->region().offset()};
  HandOver(fds, it->second->TakeRegionFd());
  Append(out, r);
  return 0;
}

int Session::DestroyCq(proto::Message& msg, Payload* /*out*/, Fds* /*fds*/) {
  proto::HandleMsg req;
  if (!msg.Copy(&req)) return EINVAL;
  auto it = cqs_.find(req.handle);
  if (it == cqs_.end()) return EINVAL;
  if (absl::Status st = device_->DestroyCq(req.handle); !st.ok()) return Refused(st, EBUSY);
  vdev_->stats.completions += it->second->delivered();
  Release(Resource::kRingBytes, it->second->region().size());
  cqs_.erase(it);
  Release(Resource::kCq);
  return 0;
}

// ---- SRQ ------------------------------------------------------------------------------------

int Session::CreateSrq(proto::Message& msg, Payload* out, Fds* fds) {
  proto::CreateSrqRequest req;
  if (!msg.Copy(&req) || !pds_.count(req.pd)) return EINVAL;
  const bool xrc = req.srq_type == IBV_SRQT_XRC;
  const bool wq = req.srq_type == proto::kSrqTypeWq;  // a receive work queue (session_rss.cc)
  if (req.srq_type != IBV_SRQT_BASIC && !xrc && !wq) {
    return Refuse(EOPNOTSUPP, absl::StrCat("SRQ type ", req.srq_type, " not offered"));
  }
  // An XRC SRQ is in a domain this context opened and completes on a CQ of its own, as
  // a work queue does.
  if (xrc && !xrcds_.count(req.xrcd))
    return Refuse(EINVAL, absl::StrCat("no XRC domain ", req.xrcd));
  if ((xrc || wq) && !cqs_.count(req.cq)) return Refuse(EINVAL, absl::StrCat("no CQ ", req.cq));
  const driver::DeviceLimits& l = device_->limits();
  if (req.max_wr < 1 || req.max_wr > l.max_srq_wr || req.max_sge > l.max_srq_sge ||
      req.srq_limit > req.max_wr) {
    return EINVAL;
  }
  uint32_t depth = Pow2AtLeast(req.max_wr);
  uint32_t max_sge = std::max<uint32_t>(req.max_sge, 1);
  uint32_t stride = proto::RecvWqeStride(max_sge);
  const size_t region_size = sizeof(proto::RingShmHeader) + size_t{depth} * stride;
  const uint64_t ring_bytes = RingBytes(region_size) + driver::RoceDevice::SrqQueueBytes(depth);
  if (!Charge(Resource::kRingBytes, ring_bytes)) return ChargeError();
  if (!Charge(Resource::kSrq)) {
    Release(Resource::kRingBytes, ring_bytes);
    return ChargeError();
  }
  auto region = rings_.Allocate(region_size);
  if (!region.ok()) {
    Release(Resource::kSrq);
    Release(Resource::kRingBytes, ring_bytes);
    return ENOMEM;
  }
  auto h = xrc  ? device_->CreateXrcSrq(req.xrcd, req.pd, req.cq, depth, max_sge, req.srq_limit,
                                        vdev_->id)
           : wq ? device_->CreateWq(req.pd, req.cq, depth, max_sge, vdev_->id)
                : device_->CreateSrq(req.pd, depth, max_sge, req.srq_limit, vdev_->id);
  if (!h.ok()) {
    Release(Resource::kSrq);
    Release(Resource::kRingBytes, ring_bytes);
    return Refused(h.status());
  }
  SrqRing ring;
  ring.handle = *h;
  ring.user_handle = req.user_handle;
  ring.max_sge = max_sge;
  ring.ring.header = reinterpret_cast<proto::RingShmHeader*>((*region)->data());
  (void)device_->PublishSrqRetired(*h, &ring.ring.header->retired.value);
  ring.ring.slots = (*region)->data() + sizeof(proto::RingShmHeader);
  ring.ring.depth = depth;
  ring.ring.stride = stride;
  drain_->AddSrq(ring);
  proto::CreateSrqReply r{
      *h, depth, stride, max_sge, (*region)->size(), *h, 0, (*region)->offset()};
  HandOver(fds, (*region)->TakeFd());
  srqs_[*h] = SrqObject{req.user_handle, std::move(*region), ring_bytes, wq};
  Append(out, r);
  return 0;
}

int Session::ModifySrq(proto::Message& msg, Payload* /*out*/, Fds* /*fds*/) {
  proto::ModifySrqRequest req;
  if (!msg.Copy(&req) || !srqs_.count(req.handle)) return EINVAL;
  // Resizing an SRQ is not offered (IBV_DEVICE_SRQ_RESIZE is not reported).
  if (req.mask & IBV_SRQ_MAX_WR) return EINVAL;
  if (absl::Status st =
          device_->ModifySrq(req.handle, req.max_wr, req.srq_limit, static_cast<int>(req.mask));
      !st.ok()) {
    return Refused(st);
  }
  return 0;
}

int Session::QuerySrq(proto::Message& msg, Payload* out, Fds* /*fds*/) {
  proto::HandleMsg req;
  if (!msg.Copy(&req)) return EINVAL;
  const SrqRing* ring = srqs_.count(req.handle) ? drain_->FindSrq(req.handle) : nullptr;
  if (!ring) return EINVAL;
  auto limit = device_->SrqLimit(req.handle);
  if (!limit.ok()) return EINVAL;
  Append(out, proto::QuerySrqReply{ring->ring.depth, ring->max_sge, *limit, 0});
  return 0;
}

int Session::DestroySrq(proto::Message& msg, Payload* /*out*/, Fds* /*fds*/) {
  proto::HandleMsg req;
  if (!msg.Copy(&req) || !srqs_.count(req.handle)) return EINVAL;
  if (absl::Status st = device_->DestroySrq(req.handle); !st.ok()) return Refused(st, EBUSY);
  drain_->RemoveSrq(req.handle);
  Release(Resource::kRingBytes, srqs_[req.handle].charged);
  srqs_.erase(req.handle);
  Release(Resource::kSrq);
  return 0;
}

// ---- AH -------------------------------------------------------------------------------------

absl::StatusOr<driver::AddressVector> Session::TranslateAh(
    const ibv_ah_attr& a, std::unique_ptr<NeighbourQuery>* query) const {
  // RoCE addresses by GID: an address without a GRH names no one (IBTA A16/A17).
  if (!a.is_global) return absl::InvalidArgumentError("RoCE address vectors need a GRH");
  if (a.port_num > 1) return absl::InvalidArgumentError("the device has one port");
  uint32_t idx = a.grh.sgid_index;
  if (idx >= vdev_->gids.size() || !vdev_->gids[idx].valid) {
    return absl::InvalidArgumentError("no GID at that index");
  }
  driver::AddressVector av;
  std::memcpy(av.dgid.data(), a.grh.dgid.raw, 16);
  av.sgid_index = static_cast<uint16_t>(vdev_->gid_base + idx);
  av.hop_limit = a.grh.hop_limit ? a.grh.hop_limit : 64;
  av.traffic_class = a.grh.traffic_class;
  av.flow_label = a.grh.flow_label & 0xfffff;
  av.sl = a.sl;
  // A multicast group's frames go to its Ethernet multicast address: nothing to resolve.
  if (driver::wire::IsMulticastGid(av.dgid)) {
    av.dmac = driver::wire::MulticastMac(av.dgid);
    return av;
  }
  if (std::optional<driver::wire::MacAddr> mac = registry_->KnownMac(*vdev_, av.dgid)) {
    av.dmac = *mac;
    return av;
  }
  // The neighbour table: answered now when the entry is there, else later (the client
  // waits for its reply; the daemon's loop goes on).
  auto now = static_cast<uint64_t>(std::chrono::duration_cast<std::chrono::nanoseconds>(
                                       std::chrono::steady_clock::now().time_since_epoch())
                                       .count());  // CLOCK_MONOTONIC, as the server's passes
  absl::StatusOr<std::unique_ptr<NeighbourQuery>> q = registry_->StartResolve(*vdev_, av.dgid, now);
  if (!q.ok()) return q.status();
  std::optional<absl::StatusOr<driver::wire::MacAddr>> mac = (*q)->Poll(now);
  if (!mac) {
    *query = *std::move(q);
    return av;
  }
  if (!mac->ok()) return mac->status();
  av.dmac = **mac;
  return av;
}

int Session::CreateAh(proto::Message& msg, Payload* out, Fds* /*fds*/) {
  proto::CreateAhRequest req;
  if (!msg.Copy(&req) || !pds_.count(req.pd)) return Refuse(EINVAL, "no such PD");
  std::unique_ptr<NeighbourQuery> query;
  auto av = TranslateAh(req.attr, &query);
  if (!av.ok()) return Refuse(AddressErrno(av.status()), std::string(av.status().message()));
  if (query) {
    int later = Defer(proto::Op::kCreateAh, std::move(query), *av);
    deferred_->ah = req;
    return later;
  }
  return FinishCreateAh(req, *av, out);
}

int Session::FinishCreateAh(const proto::CreateAhRequest& req, const driver::AddressVector& av,
                            Payload* out) {
  if (!Charge(Resource::kAh)) return ChargeError();
  auto h = device_->CreateAh(req.pd, av, vdev_->id);
  if (!h.ok()) {
    Release(Resource::kAh);
    return Refused(h.status());
  }
  ahs_[*h] = req.pd;
  Append(out, proto::HandleMsg{*h, 0});
  return 0;
}

int Session::DestroyAh(proto::Message& msg, Payload* /*out*/, Fds* /*fds*/) {
  proto::HandleMsg req;
  if (!msg.Copy(&req) || !ahs_.count(req.handle)) return EINVAL;
  if (absl::Status st = device_->DestroyAh(req.handle); !st.ok()) return Refused(st);
  ahs_.erase(req.handle);
  Release(Resource::kAh);
  return 0;
}
}  // namespace vrdma::vdev
