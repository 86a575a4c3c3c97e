#include "vdev/session.h"

#include <fcntl.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <algorithm>
#include <bit>
#include <cstring>
#include <fstream>

#include "vdev/log.h"
#include "vdev/shm/client_mapping.h"

namespace vrdma {

namespace {

using proto::Op;

uint32_t Pow2AtLeast(uint32_t v) { return v <= 1 ? 1 : std::bit_ceil(v); }

template <typename T>
void Append(std::vector<uint8_t>* out, const T& value) {
  const auto* p = reinterpret_cast<const uint8_t*>(&value);
  out->insert(out->end(), p, p + sizeof(T));
}

}  // namespace

int ErrnoOf(const absl::Status& status, int failed_precondition) {
  switch (status.code()) {
    case absl::StatusCode::kOk:
      return 0;
    case absl::StatusCode::kResourceExhausted:
      return ENOMEM;
    case absl::StatusCode::kFailedPrecondition:
      return failed_precondition;
    case absl::StatusCode::kPermissionDenied:
      return EACCES;
    case absl::StatusCode::kUnimplemented:
      return EOPNOTSUPP;
    default:
      return EINVAL;
  }
}

// Why an address vector could not be made: a bad attribute, or the destination did not
// resolve (no route, no answer: EHOSTUNREACH; no answer yet: ETIMEDOUT).
int AddressErrno(const absl::Status& status) {
  switch (status.code()) {
    case absl::StatusCode::kNotFound:
      return EHOSTUNREACH;
    case absl::StatusCode::kDeadlineExceeded:
      return ETIMEDOUT;
    default:
      return EINVAL;
  }
}

Session::Session(int sock, Registry* registry, pid_t pid, uid_t uid)
    : sock_(sock), registry_(registry), pid_(pid), uid_(uid) {
  std::ifstream f("/proc/" + std::to_string(pid) + "/comm");
  std::getline(f, comm_);
  if (comm_.empty()) comm_ = "?";
}

Session::~Session() {
  FreeAll();
  if (vdev_ && !detached_) vdev_->open_contexts--;
  if (doorbell_fd_ >= 0) close(doorbell_fd_);
  if (async_fd_ >= 0) close(async_fd_);
  close(sock_);
}

bool Session::Charge(Resource r, uint64_t n) {
  if (!vdev_->Charge(r, n)) return false;
  used_[static_cast<size_t>(r)] += n;
  return true;
}

void Session::Release(Resource r, uint64_t n) {
  vdev_->Release(r, n);
  uint64_t& u = used_[static_cast<size_t>(r)];
  u = u >= n ? u - n : 0;
}

bool Session::Handle(proto::Message& msg) {
  Reply reply;
  std::vector<int> fds;
  auto op = static_cast<Op>(msg.header.op);
  int err;
  if (detached_) {
    err = EIO;  // the device went away under this context
  } else if (op == Op::kListDevices) {
    err = ListDevices(&reply);
  } else if (op != Op::kOpenDevice && !vdev_ && !pdev_) {
    err = ENODEV;  // every other request needs an open device
  } else if (pdev_ && op != Op::kQueryDevice && op != Op::kQueryPort && op != Op::kQueryGidTable) {
    // A physical device is carved into vdevs, never used directly: every verbs consumer
    // gets its provisioning and isolation through a vdev.
    err = EOPNOTSUPP;
  } else {
    switch (op) {
      case Op::kOpenDevice:
        err = OpenDevice(msg, &reply, &fds);
        break;
      case Op::kQueryDevice:
        err = QueryDevice(&reply);
        break;
      case Op::kQueryPort:
        err = QueryPort(msg, &reply);
        break;
      case Op::kQueryGidTable:
        err = QueryGidTable(&reply);
        break;
      case Op::kAllocPd:
        err = AllocPd(&reply);
        break;
      case Op::kDeallocPd:
        err = DeallocPd(msg);
        break;
      case Op::kRegMr:
        err = RegMr(msg, &reply);
        break;
      case Op::kDeregMr:
        err = DeregMr(msg);
        break;
      case Op::kCreateCq:
        err = CreateCq(msg, &reply, &fds);
        break;
      case Op::kResizeCq:
        err = ResizeCq(msg, &reply, &fds);
        break;
      case Op::kDestroyCq:
        err = DestroyCq(msg);
        break;
      case Op::kCreateSrq:
        err = CreateSrq(msg, &reply, &fds);
        break;
      case Op::kModifySrq:
        err = ModifySrq(msg);
        break;
      case Op::kQuerySrq:
        err = QuerySrq(msg, &reply);
        break;
      case Op::kDestroySrq:
        err = DestroySrq(msg);
        break;
      case Op::kCreateAh:
        err = CreateAh(msg, &reply);
        break;
      case Op::kDestroyAh:
        err = DestroyAh(msg);
        break;
      case Op::kCreateQp:
        err = CreateQp(msg, &reply, &fds);
        break;
      case Op::kModifyQp:
        err = ModifyQp(msg);
        break;
      case Op::kQueryQp:
        err = QueryQp(msg, &reply);
        break;
      case Op::kDestroyQp:
        err = DestroyQp(msg);
        break;
      default:
        err = EOPNOTSUPP;
        break;
    }
  }
  if (err) {
    reply.clear();
    fds.clear();
    if (vdev_) vdev_->stats.bad_requests++;
  }
  int sent = proto::SendMessage(sock_, op, err, reply.data(), reply.size(), fds.data(), fds.size());
  return sent == 0;
}

// ---- device -----------------------------------------------------------------------------

int Session::ListDevices(Reply* out) {
  // Virtual devices first (applications that take the first device get a usable one),
  // then the physical devices they are carved from, as the kernel lists both.
  proto::ListDevicesReply head{
      static_cast<uint32_t>(registry_->vdevs().size() + registry_->pdevs().size()), 0};
  Append(out, head);
  for (const auto& [name, v] : registry_->vdevs()) {
    proto::DeviceRecord rec{};
    std::snprintf(rec.name, sizeof rec.name, "%s", v->name.c_str());
    std::snprintf(rec.pdev, sizeof rec.pdev, "%s", v->pdev->name.c_str());
    std::snprintf(rec.netdev, sizeof rec.netdev, "%s", v->netdev.c_str());
    rec.node_guid = v->node_guid_be;
    rec.type = static_cast<uint32_t>(proto::DeviceType::kVirtual);
    Append(out, rec);
  }
  for (const auto& p : registry_->pdevs()) {
    proto::DeviceRecord rec{};
    std::snprintf(rec.name, sizeof rec.name, "%s", p->name.c_str());
    std::snprintf(rec.pdev, sizeof rec.pdev, "%s", p->name.c_str());
    rec.node_guid = p->node_guid_be;
    rec.type = static_cast<uint32_t>(proto::DeviceType::kPhysical);
    Append(out, rec);
  }
  return 0;
}

int Session::OpenDevice(proto::Message& msg, Reply* out, std::vector<int>* fds) {
  proto::OpenDeviceRequest req;
  if (vdev_ || pdev_ || !msg.Copy(&req) || msg.fd_count() != 1) return EINVAL;
  req.name[proto::kNameLen - 1] = 0;
  Vdev* vdev = registry_->FindVdev(req.name);
  Pdev* pdev = vdev ? nullptr : registry_->FindPdev(req.name);
  if (!vdev && !pdev) return ENODEV;
  auto region = SharedRegion::Create("vrdma-context", sizeof(proto::ContextShm));
  if (!region.ok()) return ENOMEM;
  int efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  if (efd < 0) return errno;
  async_fd_ = msg.TakeFd(0);
  // Writes to a client's descriptors never block the daemon.
  fcntl(async_fd_, F_SETFL, fcntl(async_fd_, F_GETFL) | O_NONBLOCK);
  context_shm_ = std::move(*region);
  context_ = reinterpret_cast<proto::ContextShm*>(context_shm_->data());
  doorbell_fd_ = efd;
  uint64_t guid;
  if (vdev) {
    vdev_ = vdev;
    device_ = vdev->pdev->device.get();
    vdev->open_contexts++;
    guid = vdev->node_guid_be;
  } else {
    pdev_ = pdev;
    device_ = pdev->device.get();
    guid = pdev->node_guid_be;
  }
  proto::OpenDeviceReply r{guid, static_cast<uint32_t>(context_shm_->size()), 0};
  Append(out, r);
  fds->push_back(context_shm_->fd());
  fds->push_back(doorbell_fd_);
  return 0;
}

int Session::QueryDevice(Reply* out) {
  proto::QueryDeviceReply r{};
  ibv_device_attr& a = r.attr;
  device_->QueryDevice(&a);
  std::snprintf(a.fw_ver, sizeof a.fw_ver, "vrdma 0.1.0");
  if (pdev_) {  // the whole device
    a.node_guid = pdev_->node_guid_be;
    a.sys_image_guid = pdev_->node_guid_be;
    Append(out, r);
    return 0;
  }
  auto clamp = [&](int* field, Resource res) {
    uint64_t q = vdev_->Quota(res);
    if (q < static_cast<uint64_t>(*field)) *field = static_cast<int>(q);
  };
  // A vdev reports its own provisioning, not the pdev's.
  clamp(&a.max_qp, Resource::kQp);
  clamp(&a.max_cq, Resource::kCq);
  clamp(&a.max_mr, Resource::kMr);
  clamp(&a.max_pd, Resource::kPd);
  clamp(&a.max_srq, Resource::kSrq);
  clamp(&a.max_ah, Resource::kAh);
  a.max_mr_size = std::min<uint64_t>(a.max_mr_size, vdev_->Quota(Resource::kMrBytes));
  a.max_res_rd_atom = a.max_qp * a.max_qp_rd_atom;
  a.node_guid = vdev_->node_guid_be;
  a.sys_image_guid = vdev_->node_guid_be;
  Append(out, r);
  return 0;
}

int Session::QueryPort(proto::Message& msg, Reply* out) {
  proto::QueryPortRequest req;
  if (!msg.Copy(&req)) return EINVAL;
  if (req.port != 1) return EINVAL;
  proto::QueryPortReply r{};
  device_->QueryPort(&r.attr);
  // A pdev's port is its internal switch: no interface, so no addresses and no GIDs.
  r.attr.gid_tbl_len = pdev_ ? 0 : static_cast<int>(kGidsPerVdev);
  if (vdev_) r.attr.active_mtu = vdev_->ActiveMtu();
  Append(out, r);
  return 0;
}

int Session::QueryGidTable(Reply* out) {
  proto::QueryGidTableReply r{};
  if (pdev_) {
    Append(out, r);  // no GIDs
    return 0;
  }
  r.count = kGidsPerVdev;
  for (uint32_t i = 0; i < vdev_->gids.size() && i < kGidsPerVdev; ++i) {
    const GidEntry& g = vdev_->gids[i];
    if (!g.valid) continue;
    std::memcpy(r.entries[i].gid, g.gid.data(), 16);
    r.entries[i].type =
        g.type == wire::NetworkType::kRoceV1 ? IBV_GID_TYPE_ROCE_V1 : IBV_GID_TYPE_ROCE_V2;
    r.entries[i].ndev_ifindex = static_cast<uint32_t>(vdev_->ifindex);
    r.entries[i].valid = 1;
  }
  Append(out, r);
  return 0;
}

// ---- PD and MR ----------------------------------------------------------------------------

int Session::AllocPd(Reply* out) {
  if (!Charge(Resource::kPd)) return ENOMEM;
  auto pd = device_->AllocPd(vdev_->id);
  if (!pd.ok()) {
    Release(Resource::kPd);
    return ErrnoOf(pd.status());
  }
  pds_[*pd] = 1;
  Append(out, proto::HandleMsg{*pd, 0});
  return 0;
}

int Session::DeallocPd(proto::Message& msg) {
  proto::HandleMsg req;
  if (!msg.Copy(&req) || !pds_.count(req.handle)) return EINVAL;
  bool used_by_ah = std::any_of(ahs_.begin(), ahs_.end(),
                                [&](const auto& kv) { return kv.second == req.handle; });
  if (used_by_ah) return EBUSY;
  if (absl::Status st = device_->DeallocPd(req.handle); !st.ok()) return ErrnoOf(st, EBUSY);
  pds_.erase(req.handle);
  Release(Resource::kPd);
  return 0;
}

int Session::RegMr(proto::Message& msg, Reply* out) {
  proto::RegMrRequest req;
  if (!msg.Copy(&req) || !pds_.count(req.pd)) return EINVAL;
  if (req.nsegments == 0 || req.nsegments > proto::kMaxMrSegments ||
      msg.payload.size() != sizeof req + req.nsegments * sizeof(proto::MrSegment)) {
    return EINVAL;
  }
  // The registered bytes must lie inside the page range the segments back.
  if (req.length == 0 || req.addr < req.page_base || req.length > req.page_length ||
      req.addr - req.page_base > req.page_length - req.length) {
    return EINVAL;
  }
  std::vector<proto::MrSegment> segs(req.nsegments);
  std::memcpy(segs.data(), msg.payload.data() + sizeof req, segs.size() * sizeof segs[0]);
  size_t by_fd = std::count_if(segs.begin(), segs.end(),
                               [](const proto::MrSegment& s) { return !s.by_reference; });
  if (msg.fd_count() != by_fd) return EINVAL;
  // Every backing is owned here until mapped.
  std::vector<SegmentBacking> backing;
  auto close_fds = [&] {
    for (const SegmentBacking& b : backing) close(b.fd);
  };
  size_t next_fd = 0;
  for (const proto::MrSegment& s : segs) {
    if (!s.by_reference) {
      backing.push_back(SegmentBacking{msg.TakeFd(next_fd++), s.file_offset, true, false});
      continue;
    }
    if (s.range_offset > req.page_length) {
      close_fds();
      return EINVAL;
    }
    auto m = OpenClientMapping(pid_, req.page_base + s.range_offset, s.length);
    if (!m.ok()) {
      close_fds();
      return m.status().code() == absl::StatusCode::kFailedPrecondition ? EOPNOTSUPP : EFAULT;
    }
    backing.push_back(SegmentBacking{m->fd, m->file_offset, m->writable, m->fixed_size});
  }
  // Write access needs pages the client may write (as pinning a read-only mapping for
  // write fails on a NIC).
  constexpr uint32_t kWriteAccess =
      IBV_ACCESS_LOCAL_WRITE | IBV_ACCESS_REMOTE_WRITE | IBV_ACCESS_REMOTE_ATOMIC;
  bool read_only = std::any_of(backing.begin(), backing.end(),
                               [](const SegmentBacking& b) { return !b.writable; });
  if (read_only && (req.access & kWriteAccess)) {
    close_fds();
    return EFAULT;
  }
  if (!Charge(Resource::kMrBytes, req.length)) {
    close_fds();
    return ENOMEM;
  }
  if (!Charge(Resource::kMr)) {
    Release(Resource::kMrBytes, req.length);
    close_fds();
    return ENOMEM;
  }
  auto memory = ClientMemory::Map(req.page_length, segs, backing);
  close_fds();  // the mappings keep the pages
  if (!memory.ok()) {
    Release(Resource::kMr);
    Release(Resource::kMrBytes, req.length);
    return ErrnoOf(memory.status());
  }
  uint8_t* host = (*memory)->base() + (req.addr - req.page_base);
  auto keys =
      device_->RegMr(req.pd, req.iova, host, req.length, static_cast<int>(req.access), vdev_->id);
  if (!keys.ok()) {
    Release(Resource::kMr);
    Release(Resource::kMrBytes, req.length);
    return ErrnoOf(keys.status());
  }
  // Zero-copy transmit from these pages when the pdev's port takes chained frames (and
  // its device can reach them); otherwise frames carry copies.
  TxShare* share = nullptr;
  if (const auto& dma = vdev_->pdev->tx_dma) {
    absl::StatusOr<TxShare*> s = TxShare::Create(&*memory, dma);
    if (s.ok()) {
      share = *s;
      (void)device_->SetMrTxShare(keys->lkey, share->shinfo());
    } else if (!dma_warned_) {
      dma_warned_ = true;
      Log(LogLevel::kWarn, "zero_copy_off",
          absl::StrCat("vdev=", vdev_->name, " reason=", LogQuote(s.status().ToString())));
    }
  }
  mrs_[keys->lkey] = MrObject{keys->lkey, req.length, std::move(*memory), share};
  Append(out, proto::RegMrReply{keys->lkey, keys->lkey, keys->rkey, 0});
  return 0;
}

int Session::DeregMr(proto::Message& msg) {
  proto::HandleMsg req;
  if (!msg.Copy(&req)) return EINVAL;
  auto it = mrs_.find(req.handle);
  if (it == mrs_.end()) return EINVAL;
  if (absl::Status st = device_->DeregMr(req.handle); !st.ok()) return ErrnoOf(st, EBUSY);
  if (it->second.share) it->second.share->Release();
  Release(Resource::kMrBytes, it->second.bytes);
  Release(Resource::kMr);
  mrs_.erase(it);
  return 0;
}

// ---- CQ -------------------------------------------------------------------------------------

int Session::CreateCq(proto::Message& msg, Reply* out, std::vector<int>* fds) {
  proto::CreateCqRequest req;
  if (!msg.Copy(&req)) return EINVAL;
  if (req.cqe < 1 || req.cqe > device_->limits().max_cqe) return EINVAL;
  if (req.has_channel && msg.fd_count() != 1) return EINVAL;
  uint32_t depth = Pow2AtLeast(req.cqe);
  if (!Charge(Resource::kCq)) return ENOMEM;
  int channel = req.has_channel ? msg.TakeFd(0) : -1;
  if (channel >= 0) fcntl(channel, F_SETFL, fcntl(channel, F_GETFL) | O_NONBLOCK);
  auto ring = CqRing::Create(depth, req.user_handle, channel);
  if (!ring.ok()) {
    Release(Resource::kCq);
    return ENOMEM;
  }
  auto cqn = device_->CreateCq(depth, vdev_->id);
  if (!cqn.ok()) {
    Release(Resource::kCq);
    return ErrnoOf(cqn.status());
  }
  (void)device_->AttachCqSink(*cqn, ring->get(), 0);
  proto::CreateCqReply r{*cqn, depth, (*ring)->region().size()};
  fds->push_back((*ring)->region().fd());
  cqs_[*cqn] = std::move(*ring);
  Append(out, r);
  return 0;
}

int Session::ResizeCq(proto::Message& msg, Reply* out, std::vector<int>* fds) {
  proto::ResizeCqRequest req;
  if (!msg.Copy(&req)) return EINVAL;
  auto it = cqs_.find(req.handle);
  if (it == cqs_.end()) return EINVAL;
  if (req.cqe < 1 || req.cqe > device_->limits().max_cqe) return EINVAL;
  uint32_t depth = Pow2AtLeast(req.cqe);
  if (absl::Status st = it->second->Resize(depth); !st.ok()) return ErrnoOf(st);
  (void)device_->ResizeCq(req.handle, depth);
  proto::ResizeCqReply r{req.handle, depth, it->second->region().size()};
  fds->push_back(it->second->region().fd());
  Append(out, r);
  return 0;
}

int Session::DestroyCq(proto::Message& msg) {
  proto::HandleMsg req;
  if (!msg.Copy(&req)) return EINVAL;
  auto it = cqs_.find(req.handle);
  if (it == cqs_.end()) return EINVAL;
  if (absl::Status st = device_->DestroyCq(req.handle); !st.ok()) return ErrnoOf(st, EBUSY);
  vdev_->stats.completions += it->second->delivered();
  cqs_.erase(it);
  Release(Resource::kCq);
  return 0;
}

// ---- SRQ ------------------------------------------------------------------------------------

int Session::CreateSrq(proto::Message& msg, Reply* out, std::vector<int>* fds) {
  proto::CreateSrqRequest req;
  if (!msg.Copy(&req) || !pds_.count(req.pd)) return EINVAL;
  const DeviceLimits& l = device_->limits();
  if (req.max_wr < 1 || req.max_wr > l.max_srq_wr || req.max_sge > l.max_srq_sge ||
      req.srq_limit > req.max_wr) {
    return EINVAL;
  }
  uint32_t depth = Pow2AtLeast(req.max_wr);
  uint32_t max_sge = std::max<uint32_t>(req.max_sge, 1);
  uint32_t stride = proto::RecvWqeStride(max_sge);
  if (!Charge(Resource::kSrq)) return ENOMEM;
  auto region =
      SharedRegion::Create("vrdma-srq", sizeof(proto::RingShmHeader) + size_t{depth} * stride);
  if (!region.ok()) {
    Release(Resource::kSrq);
    return ENOMEM;
  }
  auto h = device_->CreateSrq(req.pd, depth, max_sge, req.srq_limit, vdev_->id);
  if (!h.ok()) {
    Release(Resource::kSrq);
    return ErrnoOf(h.status());
  }
  SrqObject srq;
  srq.handle = *h;
  srq.user_handle = req.user_handle;
  srq.max_sge = max_sge;
  srq.ring.header = reinterpret_cast<proto::RingShmHeader*>((*region)->data());
  srq.ring.slots = (*region)->data() + sizeof(proto::RingShmHeader);
  srq.ring.depth = depth;
  srq.ring.stride = stride;
  srq.region = std::move(*region);
  proto::CreateSrqReply r{*h, depth, stride, max_sge, srq.region->size()};
  fds->push_back(srq.region->fd());
  srqs_[*h] = std::move(srq);
  Append(out, r);
  return 0;
}

int Session::ModifySrq(proto::Message& msg) {
  proto::ModifySrqRequest req;
  if (!msg.Copy(&req) || !srqs_.count(req.handle)) return EINVAL;
  // Resizing an SRQ is not offered (IBV_DEVICE_SRQ_RESIZE is not reported).
  if (req.mask & IBV_SRQ_MAX_WR) return EINVAL;
  if (absl::Status st =
          device_->ModifySrq(req.handle, req.max_wr, req.srq_limit, static_cast<int>(req.mask));
      !st.ok()) {
    return ErrnoOf(st);
  }
  return 0;
}

int Session::QuerySrq(proto::Message& msg, Reply* out) {
  proto::HandleMsg req;
  if (!msg.Copy(&req)) return EINVAL;
  auto it = srqs_.find(req.handle);
  if (it == srqs_.end()) return EINVAL;
  auto limit = device_->SrqLimit(req.handle);
  if (!limit.ok()) return EINVAL;
  Append(out, proto::QuerySrqReply{it->second.ring.depth, it->second.max_sge, *limit, 0});
  return 0;
}

int Session::DestroySrq(proto::Message& msg) {
  proto::HandleMsg req;
  if (!msg.Copy(&req) || !srqs_.count(req.handle)) return EINVAL;
  if (absl::Status st = device_->DestroySrq(req.handle); !st.ok()) return ErrnoOf(st, EBUSY);
  srqs_.erase(req.handle);
  Release(Resource::kSrq);
  return 0;
}

// ---- AH -------------------------------------------------------------------------------------

absl::StatusOr<AddressVector> Session::TranslateAh(const ibv_ah_attr& a) const {
  // RoCE addresses by GID: an address without a GRH names no one (IBTA A16/A17).
  if (!a.is_global) return absl::InvalidArgumentError("RoCE address vectors need a GRH");
  if (a.port_num > 1) return absl::InvalidArgumentError("the device has one port");
  uint32_t idx = a.grh.sgid_index;
  if (idx >= vdev_->gids.size() || !vdev_->gids[idx].valid) {
    return absl::InvalidArgumentError("no GID at that index");
  }
  AddressVector av;
  std::memcpy(av.dgid.data(), a.grh.dgid.raw, 16);
  av.sgid_index = static_cast<uint8_t>(vdev_->gid_base + idx);
  av.hop_limit = a.grh.hop_limit ? a.grh.hop_limit : 64;
  av.traffic_class = a.grh.traffic_class;
  av.flow_label = a.grh.flow_label & 0xfffff;
  av.sl = a.sl;
  absl::StatusOr<wire::MacAddr> dmac = registry_->ResolveMac(*vdev_, av.dgid);
  if (!dmac.ok()) return dmac.status();
  av.dmac = *dmac;
  return av;
}

int Session::CreateAh(proto::Message& msg, Reply* out) {
  proto::CreateAhRequest req;
  if (!msg.Copy(&req) || !pds_.count(req.pd)) return EINVAL;
  auto av = TranslateAh(req.attr);
  if (!av.ok()) return AddressErrno(av.status());
  if (!Charge(Resource::kAh)) return ENOMEM;
  auto h = device_->CreateAh(req.pd, *av, vdev_->id);
  if (!h.ok()) {
    Release(Resource::kAh);
    return ErrnoOf(h.status());
  }
  ahs_[*h] = req.pd;
  Append(out, proto::HandleMsg{*h, 0});
  return 0;
}

int Session::DestroyAh(proto::Message& msg) {
  proto::HandleMsg req;
  if (!msg.Copy(&req) || !ahs_.count(req.handle)) return EINVAL;
  if (absl::Status st = device_->DestroyAh(req.handle); !st.ok()) return ErrnoOf(st);
  ahs_.erase(req.handle);
  Release(Resource::kAh);
  return 0;
}

// ---- QP -------------------------------------------------------------------------------------

int Session::CreateQp(proto::Message& msg, Reply* out, std::vector<int>* fds) {
  proto::CreateQpRequest req;
  if (!msg.Copy(&req) || !pds_.count(req.pd)) return EINVAL;
  if (req.qp_type != IBV_QPT_RC && req.qp_type != IBV_QPT_UC && req.qp_type != IBV_QPT_UD) {
    return EOPNOTSUPP;
  }
  if (!cqs_.count(req.send_cq) || !cqs_.count(req.recv_cq)) return EINVAL;
  if (req.has_srq && !srqs_.count(req.srq)) return EINVAL;
  const DeviceLimits& l = device_->limits();
  if (req.max_send_wr > l.max_qp_wr || req.max_recv_wr > l.max_qp_wr ||
      req.max_send_sge > l.max_sge || req.max_recv_sge > l.max_sge ||
      req.max_inline_data > l.max_inline_data) {
    return EINVAL;
  }
  QpInitAttr init;
  init.type = static_cast<int>(req.qp_type);
  init.pd = req.pd;
  init.send_cq = req.send_cq;
  init.recv_cq = req.recv_cq;
  init.has_srq = req.has_srq != 0;
  init.srq = req.srq;
  init.max_send_wr = Pow2AtLeast(std::max<uint32_t>(req.max_send_wr, 1));
  init.max_recv_wr = init.has_srq ? 0 : Pow2AtLeast(std::max<uint32_t>(req.max_recv_wr, 1));
  init.max_send_sge = std::max<uint32_t>(req.max_send_sge, 1);
  init.max_recv_sge = std::max<uint32_t>(req.max_recv_sge, 1);
  // Report the inline room the slot really has, up to the device's maximum.
  uint32_t sq_stride = proto::SendWqeStride(init.max_send_sge, req.max_inline_data);
  init.max_inline_data = std::min<uint32_t>(sq_stride - sizeof(proto::SendWqe), l.max_inline_data);
  init.sq_sig_all = req.sq_sig_all != 0;
  init.owner = vdev_->id;
  init.gid_first = vdev_->gid_base;
  init.gid_count = kGidsPerVdev;
  uint32_t rq_stride = proto::RecvWqeStride(init.max_recv_sge);
  size_t sq_offset = sizeof(proto::QpShmHeader);
  size_t rq_offset = sq_offset + size_t{init.max_send_wr} * sq_stride;
  size_t size = rq_offset + size_t{init.max_recv_wr} * rq_stride;
  if (!Charge(Resource::kQp)) return ENOMEM;
  auto region = SharedRegion::Create("vrdma-qp", size);
  if (!region.ok()) {
    Release(Resource::kQp);
    return ENOMEM;
  }
  auto qpn = device_->CreateQp(init);
  if (!qpn.ok()) {
    Release(Resource::kQp);
    return ErrnoOf(qpn.status());
  }
  QpObject qp;
  qp.qpn = *qpn;
  qp.pd = req.pd;
  qp.type = init.type;
  qp.user_handle = req.user_handle;
  auto* h = reinterpret_cast<proto::QpShmHeader*>((*region)->data());
  qp.sq = RingView{&h->sq, (*region)->data() + sq_offset, init.max_send_wr, sq_stride, 0};
  qp.rq = RingView{&h->rq, (*region)->data() + rq_offset, init.max_recv_wr, rq_stride, 0};
  qp.send_limits = SendQueueLimits{sq_stride, init.max_send_sge, init.max_inline_data};
  qp.max_recv_sge = init.max_recv_sge;
  qp.region = std::move(*region);
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
  fds->push_back(qp.region->fd());
  qps_[*qpn] = std::move(qp);
  Append(out, r);
  return 0;
}

int Session::ModifyQp(proto::Message& msg) {
  proto::ModifyQpRequest req;
  if (!msg.Copy(&req) || !qps_.count(req.handle)) return EINVAL;
  AddressVector av;
  const AddressVector* avp = nullptr;
  if (req.mask & IBV_QP_AV) {
    auto t = TranslateAh(req.attr.ah_attr);
    if (!t.ok()) return AddressErrno(t.status());
    av = *t;
    avp = &av;
  }
  if (req.mask & IBV_QP_PORT && req.attr.port_num != 1) return EINVAL;
  absl::Status st = device_->ModifyQp(req.handle, req.attr, req.mask, avp);
  return ErrnoOf(st);
}

int Session::QueryQp(proto::Message& msg, Reply* out) {
  proto::QueryQpRequest req;
  if (!msg.Copy(&req) || !qps_.count(req.handle)) return EINVAL;
  proto::QueryQpReply r{};
  QpInitAttr init;
  if (absl::Status st = device_->QueryQp(req.handle, &r.attr, &init); !st.ok()) {
    return ErrnoOf(st);
  }
  // GID indexes are the vdev's own.
  uint32_t idx = r.attr.ah_attr.grh.sgid_index;
  r.attr.ah_attr.grh.sgid_index =
      static_cast<uint8_t>(idx >= vdev_->gid_base ? idx - vdev_->gid_base : 0);
  r.cap.max_send_wr = init.max_send_wr;
  r.cap.max_recv_wr = init.max_recv_wr;
  r.cap.max_send_sge = init.max_send_sge;
  r.cap.max_recv_sge = init.max_recv_sge;
  r.cap.max_inline_data = init.max_inline_data;
  r.sq_sig_all = init.sq_sig_all;
  Append(out, r);
  return 0;
}

int Session::DestroyQp(proto::Message& msg) {
  proto::HandleMsg req;
  if (!msg.Copy(&req) || !qps_.count(req.handle)) return EINVAL;
  if (absl::Status st = device_->DestroyQp(req.handle); !st.ok()) return ErrnoOf(st);
  qps_.erase(req.handle);
  Release(Resource::kQp);
  return 0;
}

// ---- data path --------------------------------------------------------------------------------

bool Session::NeedsPump() const {
  if (!context_ || detached_) return false;
  return pump_pending_ ||
         context_->doorbell.value.load(std::memory_order_acquire) != doorbell_seen_;
}

uint32_t Session::Pump() {
  if (!context_ || detached_) return 0;
  doorbell_seen_ = context_->doorbell.value.load(std::memory_order_acquire);
  pump_pending_ = false;
  uint64_t before = vdev_->stats.send_wqes + vdev_->stats.recv_wqes;
  for (auto& [qpn, qp] : qps_) PumpQp(qp);
  for (auto& [h, srq] : srqs_) PumpSrq(srq);
  return static_cast<uint32_t>(vdev_->stats.send_wqes + vdev_->stats.recv_wqes - before);
}

void Session::PumpQp(QpObject& qp) {
  if (qp.broken) return;
  bool sq_valid = true, rq_valid = true;
  uint32_t n = qp.sq.Pending(&sq_valid);
  uint32_t m = qp.rq.depth ? qp.rq.Pending(&rq_valid) : 0;
  if (!sq_valid || !rq_valid) {
    // A producer index ahead of what the ring holds: the client broke its own queue.
    qp.broken = true;
    vdev_->stats.rejected_wqes++;
    (void)device_->RejectSend(qp.qpn, 0, IBV_WR_SEND, IBV_WC_LOC_QP_OP_ERR);
    WriteAsync(qp.user_handle, IBV_EVENT_QP_FATAL);
    return;
  }
  SendWr wr;
  uint32_t room = device_->SendQueueRoom(qp.qpn);
  for (; n && room; --n, --room) {
    WqeCheck c = ParseSendWqe(qp.sq.Slot(qp.sq.consumed), qp.send_limits, &wr);
    qp.sq.Consume();
    vdev_->stats.send_wqes++;
    bool ok = c == WqeCheck::kOk;
    // UD: the AH must be one of this client's.
    if (ok && qp.type == IBV_QPT_UD && !ahs_.count(wr.ah)) ok = false;
    absl::Status st = ok ? device_->PostSend(qp.qpn, wr) : absl::InvalidArgumentError("bad WQE");
    if (!st.ok()) {
      vdev_->stats.rejected_wqes++;
      (void)device_->RejectSend(qp.qpn, wr.wr_id, wr.opcode, IBV_WC_LOC_QP_OP_ERR);
    }
  }
  if (n) pump_pending_ = true;
  RecvWr rwr;
  room = qp.rq.depth ? device_->RecvQueueRoom(qp.qpn) : 0;
  for (; m && room; --m, --room) {
    WqeCheck c = ParseRecvWqe(qp.rq.Slot(qp.rq.consumed), qp.max_recv_sge, &rwr);
    qp.rq.Consume();
    vdev_->stats.recv_wqes++;
    absl::Status st =
        c == WqeCheck::kOk ? device_->PostRecv(qp.qpn, rwr) : absl::InvalidArgumentError("bad");
    if (!st.ok()) {
      vdev_->stats.rejected_wqes++;
      (void)device_->RejectRecv(qp.qpn, rwr.wr_id, IBV_WC_LOC_QP_OP_ERR);
    }
  }
  if (m) pump_pending_ = true;
}

void Session::PumpSrq(SrqObject& srq) {
  if (srq.broken) return;
  bool valid;
  uint32_t n = srq.ring.Pending(&valid);
  if (!valid) {
    srq.broken = true;
    vdev_->stats.rejected_wqes++;
    WriteAsync(srq.user_handle, IBV_EVENT_SRQ_ERR);
    return;
  }
  RecvWr rwr;
  uint32_t room = device_->SrqRoom(srq.handle);
  for (; n && room; --n, --room) {
    WqeCheck c = ParseRecvWqe(srq.ring.Slot(srq.ring.consumed), srq.max_sge, &rwr);
    srq.ring.Consume();
    vdev_->stats.recv_wqes++;
    if (c != WqeCheck::kOk || !device_->PostSrqRecv(srq.handle, rwr).ok()) {
      vdev_->stats.rejected_wqes++;  // dropped: an SRQ WQE belongs to no QP yet
    }
  }
  if (n) pump_pending_ = true;
}

void Session::SetEngineSleeping(bool sleeping) {
  if (context_) context_->engine_sleeping.value.store(sleeping ? 1 : 0, std::memory_order_seq_cst);
}

// ---- events and teardown ---------------------------------------------------------------------

void Session::WriteAsync(uint64_t element, uint32_t event_type) {
  if (async_fd_ < 0) return;
  struct {
    uint64_t element;
    uint32_t event_type;
    uint32_t reserved;
  } record{element, event_type, 0};  // struct ib_uverbs_async_event_desc
  ssize_t n = write(async_fd_, &record, sizeof record);
  (void)n;
  if (vdev_) vdev_->stats.async_events++;
}

bool Session::DeliverEvent(const AsyncEvent& e) {
  if (detached_) return false;
  switch (e.type) {
    case IBV_EVENT_CQ_ERR: {
      auto it = cqs_.find(e.element);
      if (it == cqs_.end()) return false;
      vdev_->stats.cq_overruns++;
      WriteAsync(it->second->user_handle(), e.type);
      return true;
    }
    case IBV_EVENT_SRQ_ERR:
    case IBV_EVENT_SRQ_LIMIT_REACHED: {
      auto it = srqs_.find(e.element);
      if (it == srqs_.end()) return false;
      WriteAsync(it->second.user_handle, e.type);
      return true;
    }
    case IBV_EVENT_PORT_ACTIVE:
    case IBV_EVENT_PORT_ERR:
    case IBV_EVENT_GID_CHANGE:
    case IBV_EVENT_DEVICE_FATAL:
      WriteAsync(e.element, e.type);
      return false;  // every context of the device hears about its port
    default: {
      auto it = qps_.find(e.element);
      if (it == qps_.end()) return false;
      WriteAsync(it->second.user_handle, e.type);
      return true;
    }
  }
}

void Session::DeliverDeviceFatal() { WriteAsync(0, IBV_EVENT_DEVICE_FATAL); }

void Session::Detach() {
  if (detached_) return;
  DeliverDeviceFatal();
  FreeAll();
  if (vdev_) vdev_->open_contexts--;
  detached_ = true;
  // The vdev may be deleted next: nothing of this context refers to it any more.
  vdev_ = nullptr;
  pdev_ = nullptr;
  device_ = nullptr;
}

void Session::FreeAll() {
  if (!device_) return;
  for (auto& [qpn, qp] : qps_) {
    (void)device_->DestroyQp(qpn);
    Release(Resource::kQp);
  }
  qps_.clear();
  for (auto& [h, srq] : srqs_) {
    (void)device_->DestroySrq(h);
    Release(Resource::kSrq);
  }
  srqs_.clear();
  for (auto& [h, pd] : ahs_) {
    (void)device_->DestroyAh(h);
    Release(Resource::kAh);
  }
  ahs_.clear();
  for (auto& [lkey, mr] : mrs_) {
    (void)device_->DeregMr(lkey);
    if (mr.share) mr.share->Release();
    Release(Resource::kMrBytes, mr.bytes);
    Release(Resource::kMr);
  }
  mrs_.clear();
  for (auto& [cqn, cq] : cqs_) {
    (void)device_->AttachCqSink(cqn, nullptr, 0);
    (void)device_->DestroyCq(cqn);
    vdev_->stats.completions += cq->delivered();
    Release(Resource::kCq);
  }
  cqs_.clear();
  for (auto& [pd, unused] : pds_) {
    (void)device_->DeallocPd(pd);
    Release(Resource::kPd);
  }
  pds_.clear();
}

}  // namespace vrdma

namespace vrdma {

void Session::ListObjects(std::vector<ObjectInfo>* out) const {
  if (!device_ || detached_) return;
  std::unordered_map<uint32_t, uint32_t> pd_users, cq_users;
  for (const auto& [qpn, qp] : qps_) {
    ObjectInfo o;
    o.kind = Resource::kQp;
    o.id = qpn;
    o.pd = qp.pd;
    o.qp_type = qp.type;
    ibv_qp_attr attr{};
    QpInitAttr init;
    if (device_->QueryQp(qpn, &attr, &init).ok()) {
      o.qp_state = attr.qp_state;
      o.dest_qpn = attr.dest_qp_num;
      o.sq_psn = attr.sq_psn;
      o.rq_psn = attr.rq_psn;
      cq_users[init.send_cq]++;
      if (init.recv_cq != init.send_cq) cq_users[init.recv_cq]++;
    }
    pd_users[qp.pd]++;
    out->push_back(o);
  }
  for (const auto& [lkey, mr] : mrs_) {
    const MemoryRegion* m = device_->FindMr(lkey);
    ObjectInfo o;
    o.kind = Resource::kMr;
    o.id = lkey;
    o.lkey = lkey;
    o.length = mr.bytes;
    if (m) {
      o.rkey = m->rkey;
      o.pd = m->pd;
      pd_users[m->pd]++;
    }
    out->push_back(o);
  }
  for (const auto& [h, srq] : srqs_) {
    ObjectInfo o;
    o.kind = Resource::kSrq;
    o.id = h;
    o.cqe = srq.ring.depth;
    out->push_back(o);
  }
  for (const auto& [h, pd] : ahs_) {
    ObjectInfo o;
    o.kind = Resource::kAh;
    o.id = h;
    o.pd = pd;
    pd_users[pd]++;
    out->push_back(o);
  }
  for (const auto& [cqn, cq] : cqs_) {
    ObjectInfo o;
    o.kind = Resource::kCq;
    o.id = cqn;
    o.cqe = cq->depth();
    o.users = cq_users[cqn];
    out->push_back(o);
  }
  for (const auto& [pd, unused] : pds_) {
    ObjectInfo o;
    o.kind = Resource::kPd;
    o.id = pd;
    o.pd = pd;
    o.users = pd_users[pd];
    out->push_back(o);
  }
}

}  // namespace vrdma
