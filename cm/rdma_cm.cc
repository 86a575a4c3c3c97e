// RDMA-CM: the IDs' operations and the events they make (Linux's cma.c and ucma.c, for a
// RoCE port). The CM MADs they send are in ib_cm.cc.
#include "cm/rdma_cm.h"

#include <arpa/inet.h>

#include <cerrno>
#include <cstring>

#include "cm/route.h"
#include "cm/wire/cma_header.h"
#include "vdev/access.h"
#include "vdev/log.h"
#include "vdev/session.h"

namespace vrdma::cm {
namespace {

// The local port range Linux gives ephemeral binds (net.ipv4.ip_local_port_range).
constexpr uint16_t kEphemeralFirst = 32768;
constexpr uint16_t kEphemeralLast = 60999;
// ucma's cap on a listen backlog (its max_backlog sysctl default).
constexpr int kMaxBacklog = 1024;

bool Overlaps(const CmId& a, const CmId& b) {
  // Two bound addresses collide when they are equal or either is the wildcard of a
  // family the other is in (an IPv6 wildcard without AFONLY covers IPv4).
  std::optional<Gid> ga = GidOfSockaddr(a.src), gb = GidOfSockaddr(b.src);
  if (!ga || !gb) return false;
  bool any_a = IsAnyAddress(a.src), any_b = IsAnyAddress(b.src);
  if (a.src.ss_family == b.src.ss_family) return any_a || any_b || *ga == *gb;
  const CmId& v6 = a.src.ss_family == AF_INET6 ? a : b;
  return IsAnyAddress(v6.src) && !v6.afonly;
}

}  // namespace

RdmaCm::RdmaCm(vdev::Registry* registry, qp1::Qp1Poller* qp1)
    : registry_(registry), qp1_(qp1), random_(std::random_device{}()) {
  comm_id_seed_ = static_cast<uint32_t>(random_());
}

RdmaCm::~RdmaCm() = default;

// ---- files -------------------------------------------------------------------------------

absl::StatusOr<uint64_t> RdmaCm::OpenFile(vdev::Session& client, int channel_fd) {
  if (files_.count(&client)) return absl::AlreadyExistsError("the connection is a CM file already");
  uint64_t token;
  do {
    token = random_();
  } while (token == 0 || files_by_token_.count(token));
  auto file = std::make_unique<UcmaFile>(&client, channel_fd, token);
  files_by_token_[token] = file.get();
  files_[&client] = std::move(file);
  return token;
}

UcmaFile* RdmaCm::FileOf(const vdev::Session& client) {
  auto it = files_.find(&client);
  return it == files_.end() ? nullptr : it->second.get();
}

UcmaFile* RdmaCm::FileByToken(uint64_t token) {
  auto it = files_by_token_.find(token);
  return it == files_by_token_.end() ? nullptr : it->second;
}

void RdmaCm::CloseFile(vdev::Session& client) {
  auto it = files_.find(&client);
  if (it == files_.end()) return;
  UcmaFile& file = *it->second;
  std::vector<uint32_t> handles;
  for (const auto& [h, id] : file.ids()) handles.push_back(h);
  for (uint32_t h : handles) {
    uint32_t reported;
    bool drained;
    DestroyId(file, h, &reported, &drained);
  }
  files_by_token_.erase(file.token());
  files_.erase(it);
}

// ---- helpers -------------------------------------------------------------------------------

vdev::Vdev* RdmaCm::VdevOf(const CmId& id) const {
  if (id.vdev_name.empty()) return nullptr;
  vdev::Vdev* v = registry_->FindVdev(id.vdev_name);
  return v && v->id == id.vdev_id ? v : nullptr;
}

void RdmaCm::BindToVdev(CmId& id, const qp1::InboundMad* /*mad*/, vdev::Vdev* v,
                        uint32_t gid_index) {
  id.vdev_name = v->name;
  id.vdev_id = v->id;
  id.gid_index = gid_index;
  id.sgid = v->gids[gid_index].gid;
  id.smac = v->mac;
}

uint64_t RdmaCm::NamespaceKey(const CmId& id) const {
  return id.file ? id.file->session()->peer().netns().cookie : 0;
}

int RdmaCm::AllocatePort(CmId& id, uint16_t port) {
  const uint64_t ns = NamespaceKey(id);
  auto free_for = [&](uint16_t p) {
    auto it = ports_.find({ns, id.port_space, p});
    if (it == ports_.end()) return true;
    for (const CmId* other : it->second) {
      if (!Overlaps(id, *other)) continue;
      // SO_REUSEADDR's rule in cma_check_port: both ask for it and neither listens.
      if (id.reuseaddr && other->reuseaddr && other->state != IdState::kListen) continue;
      return false;
    }
    return true;
  };
  if (port == 0) {
    const uint32_t span = kEphemeralLast - kEphemeralFirst + 1;
    uint32_t start = static_cast<uint32_t>(random_() % span);
    bool found = false;
    for (uint32_t i = 0; i < span; ++i) {
      uint16_t p = static_cast<uint16_t>(kEphemeralFirst + (start + i) % span);
      if (free_for(p)) {
        port = p;
        found = true;
        break;
      }
    }
    if (!found) return EADDRNOTAVAIL;
  } else if (!free_for(port)) {
    return EADDRINUSE;
  }
  SetPort(&id.src, port);
  ports_[{ns, id.port_space, port}].push_back(&id);
  id.bound = true;
  return 0;
}

void RdmaCm::ReleasePort(CmId& id) {
  if (!id.bound) return;
  auto it = ports_.find({NamespaceKey(id), id.port_space, PortOf(id.src)});
  if (it != ports_.end()) {
    std::erase(it->second, &id);
    if (it->second.empty()) ports_.erase(it);
  }
  id.bound = false;
}

void RdmaCm::Event(CmId& id, uint32_t event, int32_t status) {
  rdma_ucm_conn_param none{};
  EventWithConn(id, id.handle, event, status, none);
}

void RdmaCm::EventWithConn(CmId& id, uint32_t owner, uint32_t event, int32_t status,
                           const rdma_ucm_conn_param& conn) {
  if (!id.file) return;
  rdma_ucm_event_resp resp{};
  resp.uid = id.uid;
  resp.id = id.handle;
  resp.event = event;
  resp.status = static_cast<uint32_t>(status);
  resp.param.conn = conn;
  if (!id.file->Enqueue(owner, resp)) {
    vdev::Log(
        vdev::LogLevel::kWarn, "cm_event_dropped",
        "reason=queue_full event=" + std::to_string(event) + " id=" + std::to_string(id.handle));
  }
}

void RdmaCm::LeaveBacklog(CmId& id, bool accepted) {
  // A request the consumer answered (or that ended) no longer counts against its
  // listener's backlog; an accepted connection no longer depends on its listener.
  if (id.counts_against_backlog && id.file) {
    if (CmId* l = id.file->Find(id.listener_handle)) --l->pending_requests;
  }
  id.counts_against_backlog = false;
  if (accepted) id.listener_handle = 0;
}

void RdmaCm::Forget(CmId& id) {
  if (id.local_comm_id) {
    auto it = by_comm_id_.find(id.local_comm_id);
    if (it != by_comm_id_.end() && it->second == &id) by_comm_id_.erase(it);
  }
  auto r = by_remote_.find({id.remote_comm_id, id.remote_ca_guid});
  if (r != by_remote_.end() && r->second == &id) by_remote_.erase(r);
  Disarm(id);
  id.neighbour.reset();
  timed_.erase(&id);
}

void RdmaCm::CheckVdevs() {
  vdev_generation_ = registry_->generation();
  std::erase_if(counters_, [&](const auto& kv) {
    if (kv.first == 0) return false;
    for (const auto& [n, v] : registry_->vdevs()) {
      if (v->id == kv.first) return false;
    }
    return true;
  });
  for (auto& [session, file] : files_) {
    for (const auto& [h, id] : file->ids()) {
      if (id->vdev_name.empty() || id->state == IdState::kDeviceRemoval) continue;
      if (const vdev::Vdev* v = VdevOf(*id)) {
        // Linux tells the IDs bound to an interface whose hardware address changed under
        // them (a bond's failover): the consumer decides whether to reconnect; the ID and
        // its connection stay as they are.
        if (v->mac != id->smac) {
          id->smac = v->mac;
          Event(*id, kEventAddrChange, 0);
        }
        continue;
      }
      // The device is gone: its connections end without a word on the wire (no port
      // to send from), and the consumer must destroy the ID (RDMA_CM_EVENT_DEVICE_REMOVAL).
      if (id->state == IdState::kListen) std::erase(listeners_, id.get());
      Forget(*id);
      id->conn = ConnState::kIdle;
      id->state = IdState::kDeviceRemoval;
      Event(*id, kEventDeviceRemoval, 0);
    }
  }
}

// ---- operations ------------------------------------------------------------------------------

int RdmaCm::CreateId(UcmaFile& file, uint64_t uid, uint16_t ps, uint8_t qp_type, uint32_t* handle) {
  // ucma_get_qp_type: TCP is RC, UDP and IPoIB are UD, IB takes the caller's type.
  uint8_t type;
  switch (ps) {
    case wire::kPsTcp:
      type = IBV_QPT_RC;
      break;
    case wire::kPsUdp:
    case wire::kPsIpoib:
      type = IBV_QPT_UD;
      break;
    case wire::kPsIb:
      type = qp_type;
      break;
    default:
      return EINVAL;
  }
  uint32_t h = next_handle_++;
  if (next_handle_ == 0) next_handle_ = 1;
  CmId* id = file.NewId(h);
  if (!id) return ENOMEM;
  id->uid = uid;
  id->port_space = ps;
  id->qp_type = type;
  *handle = h;
  return 0;
}

int RdmaCm::DestroyId(UcmaFile& file, uint32_t handle, uint32_t* reported, bool* drained) {
  CmId* id = file.Find(handle);
  if (!id) return ENOENT;
  AbortConnection(*id);
  if (id->state == IdState::kListen) std::erase(listeners_, id);
  LeaveBacklog(*id, false);
  Forget(*id);
  ReleasePort(*id);
  // Its joins go with it (ucma_cleanup_multicast); their events with its own, below.
  for (const CmMulticast& m : id->multicasts) multicast_owner_.erase(m.handle);
  file.CountJoins(-static_cast<ptrdiff_t>(id->multicasts.size()));
  std::deque<QueuedEvent> dropped;
  std::unique_ptr<CmId> gone = file.Take(handle, reported, drained, &dropped);
  // A listener's connection requests the consumer never read go with it: their IDs were
  // never its to destroy (ucma_cleanup_ctx_events). Requests it did read are its own IDs.
  for (const QueuedEvent& e : dropped) {
    if (e.resp.event != kEventConnectRequest || e.resp.id == handle) continue;
    uint32_t r;
    bool d;
    DestroyId(file, e.resp.id, &r, &d);
    *drained = *drained || d;
  }
  return 0;
}

int RdmaCm::Bind(CmId& id, const sockaddr_storage& addr) {
  if (id.state != IdState::kIdle) return EINVAL;
  id.src = addr;
  if (!IsAnyAddress(addr)) {
    std::optional<Gid> gid = GidOfSockaddr(addr);
    std::optional<LocalAddress> local =
        gid ? FindLocalAddress(*registry_, id.file->session()->peer(), *gid) : std::nullopt;
    if (!local) {
      id.src = {};
      return EADDRNOTAVAIL;
    }
    BindToVdev(id, nullptr, local->vdev, local->gid_index);
  }
  if (int err = AllocatePort(id, PortOf(addr))) {
    id.src = {};
    id.vdev_name.clear();
    return err;
  }
  id.state = IdState::kAddrBound;
  return 0;
}

int RdmaCm::ResolveAddr(CmId& id, const sockaddr_storage* src, const sockaddr_storage& dst,
                        uint32_t timeout_ms, uint64_t now_ns) {
  if (src && src->ss_family && id.state == IdState::kIdle) {
    if (int err = Bind(id, *src)) return err;
  }
  if (id.state != IdState::kIdle && id.state != IdState::kAddrBound) return EINVAL;
  if (id.src.ss_family && id.src.ss_family != dst.ss_family) return EINVAL;
  std::optional<Gid> dgid = GidOfSockaddr(dst);
  if (!dgid || IsAnyAddress(dst)) return EINVAL;
  const vdev::Peer& peer = id.file->session()->peer();

  // The device: the bound address's; else the destination's own when it is a local
  // address (loopback, cma_resolve_loopback); else the interface the route leaves by.
  vdev::Vdev* v = VdevOf(id);
  uint32_t gid_index = id.gid_index;
  if (!v) {
    if (std::optional<LocalAddress> local = FindLocalAddress(*registry_, peer, *dgid)) {
      v = local->vdev;
      gid_index = local->gid_index;
    } else {
      // The client's routing table: a container's when it is in one with a vdev.
      std::shared_ptr<vdev::Netns> ns = registry_->NetnsHandle(peer.netns());
      absl::StatusOr<RouteAnswer> route = LookupRoute(*dgid, ns.get());
      if (!route.ok()) return ENETUNREACH;
      vdev::Vdev* out = registry_->FindVdevByIfindex(
          route->ifindex, ns ? vdev::NamespaceId{ns->cookie()} : registry_->netns());
      if (!out || !vdev::VisibleTo(out->netns, peer, registry_->netns_mode())) return EADDRNOTAVAIL;
      int index = -1;
      if (route->prefsrc) index = GidIndexIn(*out, *route->prefsrc);
      if (index < 0) index = RouteGidIndexIn(*out, IsIpv4Mapped(*dgid));
      if (index < 0) return EADDRNOTAVAIL;
      v = out;
      gid_index = static_cast<uint32_t>(index);
    }
    // Bound to the wildcard (or not at all): the source becomes the device's address.
    uint16_t port = PortOf(id.src);
    bool was_bound = id.bound;
    ReleasePort(id);
    BindToVdev(id, nullptr, v, gid_index);
    id.src = SockaddrOfGid(v->gids[gid_index].gid, port);
    if (int err = AllocatePort(id, was_bound ? port : 0)) return err;
  }
  id.dst = dst;
  id.dgid = *dgid;
  id.state = IdState::kAddrQuery;
  // A group's address asks no neighbour: its frames go to the group's Ethernet address
  // (the kernel's neighbour for it is ip_eth_mc_map's or ipv6_eth_mc_map's, NUD_NOARP).
  if (driver::wire::IsMulticastGid(*dgid)) {
    FinishResolve(id, driver::wire::MulticastMac(*dgid));
    return 0;
  }
  if (std::optional<driver::wire::MacAddr> mac = registry_->KnownMac(*v, *dgid)) {
    // The internal switch knows every address it has: one that none of its vdevs has
    // is no one's, the ADDR_ERROR Linux gives when no neighbour answers.
    if (*mac == driver::wire::MacAddr{}) {
      FinishResolve(id, absl::NotFoundError("no such address on the internal switch"));
    } else {
      FinishResolve(id, *mac);
    }
    return 0;
  }
  absl::StatusOr<std::unique_ptr<vdev::NeighbourQuery>> q =
      registry_->StartResolve(*v, *dgid, now_ns);
  if (!q.ok()) {
    FinishResolve(id, q.status());
    return 0;
  }
  (void)timeout_ms;  // the neighbour query has its own bound (Registry::kNeighbourTimeout)
  id.neighbour = std::move(*q);
  timed_.insert(&id);
  return 0;
}

void RdmaCm::FinishResolve(CmId& id, const absl::StatusOr<driver::wire::MacAddr>& mac) {
  id.neighbour.reset();
  if (!mac.ok()) {
    id.state = id.bound ? IdState::kAddrBound : IdState::kIdle;
    Event(id, kEventAddrError, -ETIMEDOUT);
    return;
  }
  id.dmac = *mac;
  id.dmac_known = true;
  id.state = IdState::kAddrResolved;
  Event(id, kEventAddrResolved, 0);
}

int RdmaCm::ResolveRoute(CmId& id) {
  if (id.state != IdState::kAddrResolved) return EINVAL;
  vdev::Vdev* v = VdevOf(id);
  if (!v) return ENODEV;
  // On RoCE the route is the resolved address (cma_resolve_iboe_route): the GIDs, the
  // interface's MTU and the neighbour's MAC; no SA is asked.
  id.params.path_mtu = v->ActiveMtu();
  id.state = IdState::kRouteResolved;
  Event(id, kEventRouteResolved, 0);
  return 0;
}

int RdmaCm::Listen(CmId& id, int backlog) {
  if (id.state == IdState::kListen) {
    id.backlog = backlog > 0 && backlog < kMaxBacklog ? backlog : kMaxBacklog;
    return 0;
  }
  if (id.state == IdState::kIdle) {
    sockaddr_storage any{};
    any.ss_family = AF_INET;
    if (int err = Bind(id, any)) return err;
  }
  if (id.state != IdState::kAddrBound) return EINVAL;
  // A listener may share its port only with IDs that do not listen on an overlapping
  // address (cma_check_port for a listen).
  auto it = ports_.find({NamespaceKey(id), id.port_space, PortOf(id.src)});
  if (it != ports_.end()) {
    for (const CmId* other : it->second) {
      if (other != &id && other->state == IdState::kListen && Overlaps(id, *other))
        return EADDRINUSE;
    }
  }
  id.backlog = backlog > 0 && backlog < kMaxBacklog ? backlog : kMaxBacklog;
  id.state = IdState::kListen;
  listeners_.push_back(&id);
  return 0;
}

CmId* RdmaCm::FindListener(const vdev::Vdev& v, uint16_t ps, uint16_t port, const Gid& dst_ip) {
  // A listener on the address itself wins over one on the wildcard (cma_find_listener).
  CmId* wildcard = nullptr;
  for (CmId* l : listeners_) {
    if (l->port_space != ps || PortOf(l->src) != port || !l->file) continue;
    const vdev::Peer& peer = l->file->session()->peer();
    if (!vdev::VisibleTo(v.netns, peer, registry_->netns_mode())) continue;
    if (IsAnyAddress(l->src)) {
      bool family_ok = IsIpv4Mapped(dst_ip) ? (l->src.ss_family == AF_INET || !l->afonly)
                                            : l->src.ss_family == AF_INET6;
      if (family_ok && !wildcard) wildcard = l;
      continue;
    }
    std::optional<Gid> g = GidOfSockaddr(l->src);
    if (g && *g == dst_ip && VdevOf(*l) == &v) return l;
  }
  return wildcard;
}

int RdmaCm::Connect(CmId& id, const rdma_ucm_conn_param& param, uint64_t now_ns) {
  if (id.state != IdState::kRouteResolved) return EINVAL;
  if (!VdevOf(id)) return ENODEV;
  if (id.qp_type == IBV_QPT_UD) return ConnectUd(id, param, now_ns);
  if (param.private_data_len > wire::kReqPrivateData - wire::kCmaHeaderSize) return EINVAL;
  id.params.local_qpn = param.qp_num & 0xffffff;
  id.params.responder_resources = param.responder_resources;
  id.params.initiator_depth = param.initiator_depth;
  id.params.flow_control = param.flow_control;
  id.params.retry_count = param.retry_count & 7;
  id.params.rnr_retry_count = param.rnr_retry_count & 7;
  id.params.srq = param.srq;
  id.params.local_psn = static_cast<uint32_t>(random_()) & 0xffffff;
  if (id.ack_timeout) id.params.local_ack_timeout = *id.ack_timeout;

  wire::Req req;
  req.local_comm_id = NewCommId();
  id.local_comm_id = req.local_comm_id;
  by_comm_id_[id.local_comm_id] = &id;
  id.transaction_id = random_();
  req.service_id = wire::ServiceIdOf(id.port_space, PortOf(id.dst));
  vdev::Vdev* v = VdevOf(id);
  req.local_ca_guid = be64toh(v->node_guid_be);
  req.local_qpn = id.params.local_qpn;
  req.responder_resources = id.params.responder_resources;
  req.initiator_depth = id.params.initiator_depth;
  req.remote_cm_response_timeout = kCmResponseTimeout;
  req.local_cm_response_timeout = kCmResponseTimeout;
  req.max_cm_retries = kMaxCmRetries;
  req.transport_service_type = wire::kServiceRc;
  req.end_to_end_flow_control = id.params.flow_control;
  req.starting_psn = id.params.local_psn;
  req.retry_count = id.params.retry_count;
  req.rnr_retry_count = id.params.rnr_retry_count;
  req.srq = id.params.srq;
  req.path_mtu = static_cast<uint8_t>(id.params.path_mtu);
  req.primary.local_gid = id.sgid;
  req.primary.remote_gid = id.dgid;
  req.primary.traffic_class = id.tos;
  // cma_get_roce_udp_flow_label: a flow label from the two ports (what a Linux peer sends).
  req.primary.flow_label = (static_cast<uint32_t>(PortOf(id.src)) * 31 + PortOf(id.dst)) & 0xfffff;
  req.primary.hop_limit = kHopLimit;
  req.primary.packet_rate = kPacketRate;
  req.primary.local_ack_timeout = id.params.local_ack_timeout;
  // RDMA-CM's header, then the consumer's private data (cma_format_hdr).
  wire::CmaHeader hdr;
  hdr.ip_version = id.src.ss_family == AF_INET ? 4 : 6;
  hdr.src_port = PortOf(id.src);
  std::optional<Gid> s = GidOfSockaddr(id.src), d = GidOfSockaddr(id.dst);
  if (hdr.ip_version == 4) {
    std::memcpy(&hdr.src_addr[12], &(*s)[12], 4);
    std::memcpy(&hdr.dst_addr[12], &(*d)[12], 4);
  } else {
    hdr.src_addr = *s;
    hdr.dst_addr = *d;
  }
  wire::BuildCmaHeader(
      hdr, std::span<uint8_t, wire::kCmaHeaderSize>(req.private_data.data(), wire::kCmaHeaderSize));
  std::memcpy(req.private_data.data() + wire::kCmaHeaderSize, param.private_data,
              param.private_data_len);
  id.conn = ConnState::kReqSent;
  id.state = IdState::kConnect;
  SendMad(id, req, /*remember=*/true, now_ns);
  // cm.c: the REQ's timeout is twice the path's packet lifetime plus the remote CM
  // response timeout, for max_cm_retries retries.
  ArmResend(id, 2 * CmTimeoutNs(kPacketLifeTime) + CmTimeoutNs(kCmResponseTimeout), kMaxCmRetries,
            now_ns);
  return 0;
}

void RdmaCm::BuildCmaHeaderOf(const CmId& id, uint8_t* out) const {
  wire::CmaHeader hdr;
  hdr.ip_version = id.src.ss_family == AF_INET ? 4 : 6;
  hdr.src_port = PortOf(id.src);
  std::optional<Gid> s = GidOfSockaddr(id.src), d = GidOfSockaddr(id.dst);
  if (hdr.ip_version == 4) {
    std::memcpy(&hdr.src_addr[12], &(*s)[12], 4);
    std::memcpy(&hdr.dst_addr[12], &(*d)[12], 4);
  } else {
    hdr.src_addr = *s;
    hdr.dst_addr = *d;
  }
  wire::BuildCmaHeader(hdr, std::span<uint8_t, wire::kCmaHeaderSize>(out, wire::kCmaHeaderSize));
}

int RdmaCm::ConnectUd(CmId& id, const rdma_ucm_conn_param& param, uint64_t now_ns) {
  // UD: Service ID Resolution (IBTA 12.11) asks the listener for its QP and Q_Key.
  if (param.private_data_len > wire::kSidrReqPrivateData - wire::kCmaHeaderSize) return EINVAL;
  wire::SidrReq req;
  req.request_id = NewCommId();
  id.local_comm_id = req.request_id;
  by_comm_id_[id.local_comm_id] = &id;
  id.transaction_id = random_();
  req.service_id = wire::ServiceIdOf(id.port_space, PortOf(id.dst));
  BuildCmaHeaderOf(id, req.private_data.data());
  std::memcpy(req.private_data.data() + wire::kCmaHeaderSize, param.private_data,
              param.private_data_len);
  id.conn = ConnState::kSidrReqSent;
  id.state = IdState::kConnect;
  SendMad(id, req, /*remember=*/true, now_ns);
  ArmResend(id, 2 * CmTimeoutNs(kPacketLifeTime) + CmTimeoutNs(kCmResponseTimeout), kMaxCmRetries,
            now_ns);
  return 0;
}

void RdmaCm::FillUdAh(const CmId& id, ib_uverbs_ah_attr* ah) const {
  *ah = {};
  std::memcpy(ah->grh.dgid, id.dgid.data(), 16);
  ah->grh.sgid_index = static_cast<uint8_t>(id.gid_index);
  ah->grh.hop_limit = kHopLimit;
  ah->grh.traffic_class = id.tos;
  ah->is_global = 1;
  ah->port_num = 1;
}

int RdmaCm::Accept(CmId& id, uint64_t uid, const rdma_ucm_conn_param& param, bool has_param,
                   uint64_t now_ns) {
  if (id.conn == ConnState::kRepRcvd) {
    // The active side, after CONNECT_RESPONSE: librdmacm moved its QP to RTS; the RTU
    // completes the handshake (cma_rep_recv -> ib_send_cm_rtu).
    SendRtu(id);
    id.conn = ConnState::kEstablished;
    id.state = IdState::kEstablished;
    return 0;
  }
  if (id.conn == ConnState::kSidrReqRcvd && has_param) {
    if (param.private_data_len > wire::kSidrRepPrivateData) return EINVAL;
    id.uid = uid;
    LeaveBacklog(id, true);
    // cma_send_sidr_rep: the consumer's QP and RDMA-CM's Q_Key for the port space.
    SendSidrRep(id, wire::SidrStatus::kValid, param.qp_num & 0xffffff, param.private_data,
                param.private_data_len);
    id.state = IdState::kEstablished;
    return 0;
  }
  if (id.conn != ConnState::kReqRcvd || !has_param) return EINVAL;
  if (param.private_data_len > wire::kRepPrivateData) return EINVAL;
  id.uid = uid;
  id.params.local_qpn = param.qp_num & 0xffffff;
  id.params.responder_resources = param.responder_resources;
  id.params.initiator_depth = param.initiator_depth;
  id.params.rnr_retry_count = param.rnr_retry_count & 7;
  id.params.srq = param.srq;
  id.params.flow_control = param.flow_control;
  LeaveBacklog(id, true);
  id.rep_private_len = param.private_data_len;
  std::memcpy(id.rep_private.data(), param.private_data, param.private_data_len);
  SendRep(id, now_ns);
  return 0;
}

int RdmaCm::Reject(CmId& id, uint8_t reason, const uint8_t* private_data, uint8_t len) {
  if (id.conn == ConnState::kSidrReqRcvd) {
    if (len > wire::kSidrRepPrivateData) return EINVAL;
    SendSidrRep(id, wire::SidrStatus::kRejected, 0, private_data, len);
    LeaveBacklog(id, false);
    Forget(id);
    id.conn = ConnState::kIdle;
    return 0;
  }
  if (id.conn != ConnState::kReqRcvd && id.conn != ConnState::kRepRcvd) return EINVAL;
  if (len > wire::kRejPrivateData) return EINVAL;
  // rdma_reject: the consumer's reason (librdmacm gives 0 or 35), else "consumer reject".
  wire::RejReason r =
      reason ? static_cast<wire::RejReason>(reason) : wire::RejReason::kConsumerReject;
  SendRej(id, r, id.conn == ConnState::kReqRcvd ? wire::kRejectedReq : wire::kRejectedRep,
          private_data, len);
  LeaveBacklog(id, false);
  Forget(id);
  id.conn = ConnState::kIdle;
  id.state = IdState::kDisconnect;
  return 0;
}

int RdmaCm::Disconnect(CmId& id, uint64_t now_ns) {
  switch (id.conn) {
    case ConnState::kEstablished:
    case ConnState::kRepSent:  // an RTU may still come; a DREQ ends it either way
      SendDreq(id, now_ns);
      id.state = IdState::kDisconnect;
      return 0;
    case ConnState::kDreqRcvd:
      SendDrep(id);
      EnterTimeWait(id, now_ns);
      return 0;
    case ConnState::kDreqSent:
    case ConnState::kTimeWait:
      return 0;
    default:
      return EINVAL;
  }
}

int RdmaCm::MigrateId(UcmaFile& from, uint32_t handle, UcmaFile& to, uint32_t* reported,
                      bool* from_drained) {
  if (!from.Find(handle)) return ENOENT;
  if (&from == &to) {
    *reported = 0;
    *from_drained = false;
    return 0;
  }
  // Its joins go with it, within the new file's bound.
  const size_t joins = from.Find(handle)->multicasts.size();
  if (to.joins() + joins > kMaxJoinsPerFile) return ENOMEM;
  from.CountJoins(-static_cast<ptrdiff_t>(joins));
  to.CountJoins(static_cast<ptrdiff_t>(joins));
  std::deque<QueuedEvent> moved;
  std::unique_ptr<CmId> id = from.Take(handle, reported, from_drained, &moved);
  CmId* adopted = to.Adopt(std::move(id));
  for (const QueuedEvent& e : moved) to.Enqueue(e.handle, e.resp, e.multicast);
  (void)adopted;
  return 0;
}

}  // namespace vrdma::cm
