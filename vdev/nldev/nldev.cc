#include "vdev/nldev/nldev.h"

#include <endian.h>

#include <algorithm>
#include <cstring>

#include "vdev/access.h"
#include "vdev/device_query.h"
#include "vdev/nldev/nldev_internal.h"

namespace vrdma::vdev::nldev {

namespace {

// The request attributes nldev.c reads, with its policy's types (nldev_policy); others
// are skipped, as nla_parse_deprecated skips them.
enum class Kind : uint8_t { kNone, kU8, kU32, kString };
constexpr Kind KindOf(uint16_t type) {
  switch (type) {
    case RDMA_NLDEV_ATTR_DEV_INDEX:
    case RDMA_NLDEV_ATTR_PORT_INDEX:
    case RDMA_NLDEV_ATTR_RES_LQPN:
    case RDMA_NLDEV_ATTR_RES_CQN:
    case RDMA_NLDEV_ATTR_RES_MRN:
    case RDMA_NLDEV_ATTR_RES_PDN:
    case RDMA_NLDEV_ATTR_RES_CM_IDN:
    case RDMA_NLDEV_ATTR_RES_CTXN:
    case RDMA_NLDEV_ATTR_RES_SRQN:
    case RDMA_NLDEV_ATTR_NDEV_INDEX:
    case RDMA_NLDEV_NET_NS_FD:
    case RDMA_NLDEV_ATTR_STAT_RES:
    case RDMA_NLDEV_ATTR_STAT_MODE:
    case RDMA_NLDEV_ATTR_STAT_AUTO_MODE_MASK:
    case RDMA_NLDEV_ATTR_STAT_COUNTER_ID:
      return Kind::kU32;
    case RDMA_NLDEV_SYS_ATTR_NETNS_MODE:
    case RDMA_NLDEV_ATTR_DEV_DIM:
      return Kind::kU8;
    case RDMA_NLDEV_ATTR_DEV_NAME:
    case RDMA_NLDEV_ATTR_NDEV_NAME:
    case RDMA_NLDEV_ATTR_LINK_TYPE:
    case RDMA_NLDEV_ATTR_CHARDEV_TYPE:
      return Kind::kString;
    default:
      return Kind::kNone;
  }
}

// Parses one message's attributes against the policy. A Failure for a malformed one.
Result ParseRequest(std::span<const uint8_t> message, Request* r) {
  std::memcpy(&r->hdr, message.data(), sizeof r->hdr);
  r->message = message;
  std::optional<std::vector<NlAttr>> attrs = ParseAttrs(message.subspan(NLMSG_HDRLEN));
  if (!attrs) return Failure{EINVAL, "malformed attribute"};
  for (const NlAttr& a : *attrs) {
    if (a.type >= RDMA_NLDEV_ATTR_MAX) continue;
    switch (KindOf(a.type)) {
      case Kind::kNone:
        continue;
      case Kind::kU8:
        if (a.value.size() < 1) return Failure{ERANGE, "Attribute failed policy validation"};
        break;
      case Kind::kU32:
        if (a.value.size() < 4) return Failure{ERANGE, "Attribute failed policy validation"};
        break;
      case Kind::kString:
        if (std::find(a.value.begin(), a.value.end(), 0) == a.value.end()) {
          return Failure{EINVAL, "Attribute failed policy validation"};
        }
        break;
    }
    r->attrs[a.type] = a.value;
    r->present[a.type] = true;
  }
  return std::nullopt;
}

}  // namespace

uint32_t Request::U32(uint16_t type) const {
  uint32_t v = 0;
  std::memcpy(&v, attrs[type].data(), sizeof v);
  return v;
}

std::string Request::String(uint16_t type) const {
  return std::string(reinterpret_cast<const char*>(attrs[type].data()));
}

std::vector<std::vector<uint8_t>> Answer(const AdminContext& ctx, const Requester& who,
                                         std::span<const uint8_t> datagram) {
  return Nldev(ctx, who).Answer(datagram);
}

// Every message of the datagram, as netlink_rcv_skb walks it: a message whose length
// overruns the datagram ends the walk; one that is not a request, or a control message,
// is only acknowledged.
std::vector<std::vector<uint8_t>> Nldev::Answer(std::span<const uint8_t> datagram) {
  while (datagram.size() >= NLMSG_HDRLEN) {
    nlmsghdr h;
    std::memcpy(&h, datagram.data(), sizeof h);
    if (h.nlmsg_len < NLMSG_HDRLEN || h.nlmsg_len > datagram.size()) break;
    Request r;
    std::span<const uint8_t> message = datagram.first(h.nlmsg_len);
    r.hdr = h;
    r.message = message;
    Result res;
    bool dump_started = false;
    if ((h.nlmsg_flags & NLM_F_REQUEST) && h.nlmsg_type >= NLMSG_MIN_TYPE) {
      res = ParseRequest(message, &r);
      if (!res) {
        dump_started = r.dump() && RDMA_NL_GET_CLIENT(h.nlmsg_type) == RDMA_NL_NLDEV;
        res = One(r);
      }
    }
    // A dump ends with NLMSG_DONE, carrying its error (netlink_dump); other requests
    // are acknowledged when they ask, or refused.
    if (dump_started) {
      Done(r, res ? res->err : 0);
    } else if (res) {
      Ack(r, res->err, res->text);
    } else if (h.nlmsg_flags & NLM_F_ACK) {
      Ack(r, 0, "");
    }
    size_t step = std::min<size_t>(NLMSG_ALIGN(h.nlmsg_len), datagram.size());
    datagram = datagram.subspan(step);
  }
  EndDatagram();
  return std::move(out_);
}

Result Nldev::One(const Request& r) {
  // rdma_nl_rcv_msg: a client or operation with no handler is EINVAL. The other RDMA
  // netlink clients (IWCM, LS) are the kernel's conversations with ibacm and iwpmd.
  if (RDMA_NL_GET_CLIENT(r.hdr.nlmsg_type) != RDMA_NL_NLDEV || r.op() >= RDMA_NLDEV_NUM_OPS) {
    return Failure{EINVAL, ""};
  }
  switch (r.op()) {
    case RDMA_NLDEV_CMD_GET:
      return DevGet(r);
    case RDMA_NLDEV_CMD_PORT_GET:
      return PortGet(r);
    case RDMA_NLDEV_CMD_SYS_GET:
      return SysGet(r);
    case RDMA_NLDEV_CMD_RES_GET:
      return ResSummary(r);
    case RDMA_NLDEV_CMD_RES_QP_GET:
    case RDMA_NLDEV_CMD_RES_CM_ID_GET:
    case RDMA_NLDEV_CMD_RES_CQ_GET:
    case RDMA_NLDEV_CMD_RES_MR_GET:
    case RDMA_NLDEV_CMD_RES_PD_GET:
    case RDMA_NLDEV_CMD_RES_CTX_GET:
    case RDMA_NLDEV_CMD_RES_SRQ_GET:
      return ResTable(r);
    case RDMA_NLDEV_CMD_STAT_GET:
      return StatGet(r);
    case RDMA_NLDEV_CMD_SET:
    case RDMA_NLDEV_CMD_NEWLINK:
    case RDMA_NLDEV_CMD_DELLINK:
    case RDMA_NLDEV_CMD_SYS_SET:
    case RDMA_NLDEV_CMD_STAT_SET:
    case RDMA_NLDEV_CMD_STAT_DEL:
      // RDMA_NL_ADMIN_PERM: CAP_NET_ADMIN first, as the kernel checks.
      if (!administrator()) return Failure{EPERM, ""};
      return Failure{EOPNOTSUPP,
                     "vrdma devices are changed with vrdmactl (dev add, dev set, dev del)"};
    default:
      // GET_CHARDEV (librdmacm falls back to its sysfs path), the raw resource dumps
      // (no driver data), STAT_GET_STATUS.
      return Failure{EOPNOTSUPP, ""};
  }
}

// The devices of the requester's network namespace, as the device list shows them
// (access.h's VisibleTo): root of the daemon's namespace too, as the kernel shows a
// device in exclusive mode only in its namespace (vrdmactl shows the administrator all).
std::vector<Device> Nldev::Devices() const {
  std::vector<Device> out;
  const NetnsMode mode = ctx_.registry->netns_mode();
  auto visible = [&](const NamespaceId& netns) {
    return who_.peer ? VisibleTo(netns, *who_.peer, mode) : true;
  };
  for (const auto& [name, v] : ctx_.registry->vdevs()) {
    if ((ctx_.may_see_vdev && !ctx_.may_see_vdev(*v)) || !visible(v->netns)) continue;
    out.push_back(Device{v.get(), nullptr, v->id, name});
  }
  std::sort(out.begin(), out.end(),
            [](const Device& a, const Device& b) { return a.index < b.index; });
  if (ctx_.may_see_pdevs && visible(ctx_.registry->netns())) {
    const auto& pdevs = ctx_.registry->pdevs();
    for (size_t i = 0; i < pdevs.size(); ++i) {
      out.push_back(Device{nullptr, pdevs[i].get(), kPdevIndexBase + static_cast<uint32_t>(i),
                           pdevs[i]->name});
    }
  }
  return out;
}

std::optional<Device> Nldev::DeviceOf(const Request& r) const {
  if (!r.has(RDMA_NLDEV_ATTR_DEV_INDEX)) return std::nullopt;
  uint32_t index = r.U32(RDMA_NLDEV_ATTR_DEV_INDEX);
  for (Device& d : Devices()) {
    if (d.index == index) return d;
  }
  return std::nullopt;
}

NlMessage Nldev::Start(const Request& r, uint16_t flags, const Device* dev) const {
  NlMessage m(r.hdr.nlmsg_type, flags, r.hdr.nlmsg_seq, who_.portid);
  if (dev) {  // fill_nldev_handle
    m.PutU32(RDMA_NLDEV_ATTR_DEV_INDEX, dev->index);
    m.PutString(RDMA_NLDEV_ATTR_DEV_NAME, dev->name);
  }
  return m;
}

void Nldev::Emit(std::vector<uint8_t> msg) {
  if (!open_.empty() && open_.size() + msg.size() > kDatagramSize) EndDatagram();
  open_.insert(open_.end(), msg.begin(), msg.end());
}

void Nldev::EmitLast(NlMessage m) {
  Emit(std::move(m).Finish());
  EndDatagram();
}

void Nldev::EndDatagram() {
  if (!open_.empty()) out_.push_back(std::move(open_));
  open_.clear();
}

// netlink_ack: NLMSG_ERROR with the error (0: an acknowledgement) and the request's
// header, its payload too on an error unless NETLINK_CAP_ACK; the message as an extended
// ACK attribute with NETLINK_EXT_ACK.
void Nldev::Ack(const Request& r, int err, const std::string& text) {
  EndDatagram();
  uint16_t flags = 0;
  bool echo = err && !who_.cap_ack;
  if (!echo) flags |= NLM_F_CAPPED;
  bool tlv = err && who_.ext_ack && !text.empty();
  if (tlv) flags |= NLM_F_ACK_TLVS;
  NlMessage m(NLMSG_ERROR, flags, r.hdr.nlmsg_seq, who_.portid);
  // struct nlmsgerr: the error, then the request's header (and payload).
  std::vector<uint8_t> body(sizeof(int32_t));
  const int32_t error = -err;
  std::memcpy(body.data(), &error, sizeof error);
  std::span<const uint8_t> echoed = echo ? r.message : r.message.first(NLMSG_HDRLEN);
  body.insert(body.end(), echoed.begin(), echoed.end());
  body.resize(NLMSG_ALIGN(body.size()), 0);
  m.Append(body);
  if (tlv) m.PutString(NLMSGERR_ATTR_MSG, text);
  EmitLast(std::move(m));
}

void Nldev::Done(const Request& r, int err) {
  NlMessage m(NLMSG_DONE, NLM_F_MULTI, r.hdr.nlmsg_seq, who_.portid);
  const int32_t v = -err;  // the dump's error, or 0
  m.Append(std::span<const uint8_t>(reinterpret_cast<const uint8_t*>(&v), sizeof v));
  EmitLast(std::move(m));
}

// fill_dev_info.
void Nldev::FillDev(NlAttrs* m, const Device& d) const {
  ibv_device_attr attr{};
  DeviceAttrOf(d.vdev, d.pdev, &attr);
  m->PutU32(RDMA_NLDEV_ATTR_PORT_INDEX, attr.phys_port_cnt);  // the last port
  m->PutU64(RDMA_NLDEV_ATTR_CAP_FLAGS, attr.device_cap_flags);
  if (attr.fw_ver[0]) m->PutString(RDMA_NLDEV_ATTR_FW_VERSION, attr.fw_ver);
  m->PutU64(RDMA_NLDEV_ATTR_NODE_GUID, be64toh(attr.node_guid));
  m->PutU64(RDMA_NLDEV_ATTR_SYS_IMAGE_GUID, be64toh(attr.sys_image_guid));
  m->PutU8(RDMA_NLDEV_ATTR_DEV_NODE_TYPE, 1);  // RDMA_NODE_IB_CA
  m->PutU8(RDMA_NLDEV_ATTR_DEV_DIM, 0);        // no adaptive CQ moderation
  m->PutString(RDMA_NLDEV_ATTR_DEV_PROTOCOL, "roce");
}

// fill_port_info: a RoCE port has no LID, SM or subnet prefix to report; its netdev is
// reported to a requester in the netdev's network namespace.
void Nldev::FillPort(NlAttrs* m, const Device& d) const {
  ibv_port_attr attr{};
  PortAttrOf(d.vdev, d.pdev, &attr);
  m->PutU32(RDMA_NLDEV_ATTR_PORT_INDEX, 1);
  m->PutU8(RDMA_NLDEV_ATTR_PORT_STATE, attr.state);
  m->PutU8(RDMA_NLDEV_ATTR_PORT_PHYS_STATE, attr.phys_state);
  if (d.vdev && who_.peer && d.vdev->netns == who_.peer->netns() && d.vdev->ifindex > 0) {
    m->PutU32(RDMA_NLDEV_ATTR_NDEV_INDEX, static_cast<uint32_t>(d.vdev->ifindex));
    m->PutString(RDMA_NLDEV_ATTR_NDEV_NAME, d.vdev->netdev);
  }
}

// nldev_get_doit / nldev_get_dumpit.
Result Nldev::DevGet(const Request& r) {
  if (r.dump()) {
    for (const Device& d : Devices()) {
      NlMessage m = Start(r, NLM_F_MULTI, &d);
      FillDev(&m, d);
      Emit(std::move(m).Finish());
    }
    return std::nullopt;
  }
  std::optional<Device> d = DeviceOf(r);
  if (!d) return Failure{EINVAL, ""};
  NlMessage m = Start(r, 0, &*d);
  FillDev(&m, *d);
  EmitLast(std::move(m));
  return std::nullopt;
}

// nldev_port_get_doit / nldev_port_get_dumpit: the dump is of one device's ports.
Result Nldev::PortGet(const Request& r) {
  std::optional<Device> d = DeviceOf(r);
  if (!d) return Failure{EINVAL, ""};
  if (r.dump()) {
    NlMessage m = Start(r, NLM_F_MULTI, &*d);
    FillPort(&m, *d);
    Emit(std::move(m).Finish());
    return std::nullopt;
  }
  if (!r.has(RDMA_NLDEV_ATTR_PORT_INDEX) || r.U32(RDMA_NLDEV_ATTR_PORT_INDEX) != 1) {
    return Failure{EINVAL, ""};
  }
  NlMessage m = Start(r, 0, &*d);
  FillPort(&m, *d);
  EmitLast(std::move(m));
  return std::nullopt;
}

// nldev_sys_get_doit: devices are in exclusive mode (0) unless vrdmad shares them
// (--netns-mode shared). No COPY_ON_FORK: libibverbs then keeps MRs out of a child
// (madvise DONTFORK), as it does on kernels that do not report it.
Result Nldev::SysGet(const Request& r) {
  NlMessage m = Start(r, 0, nullptr);
  m.PutU8(RDMA_NLDEV_SYS_ATTR_NETNS_MODE, ctx_.registry->netns_mode() == NetnsMode::kShared);
  EmitLast(std::move(m));
  return std::nullopt;
}

// nldev_stat_get_doit without STAT_RES: the port's counters, as `vrdmactl stat show`
// prints them (a vdev's are the sysfs view's hw_counters; a pdev's its engine's). QP
// counters bound by `rdma statistic qp set` do not exist: the QP mode is none, and the
// dumps of bound counters are empty.
Result Nldev::StatGet(const Request& r) {
  std::optional<Device> d = DeviceOf(r);
  if (!d) return Failure{EINVAL, ""};
  if (r.dump()) return std::nullopt;
  if (!r.has(RDMA_NLDEV_ATTR_PORT_INDEX) || r.U32(RDMA_NLDEV_ATTR_PORT_INDEX) != 1) {
    return Failure{EINVAL, ""};
  }
  NlMessage m = Start(r, 0, &*d);
  m.PutU32(RDMA_NLDEV_ATTR_PORT_INDEX, 1);
  if (r.has(RDMA_NLDEV_ATTR_STAT_RES)) {
    if (r.U32(RDMA_NLDEV_ATTR_STAT_RES) != RDMA_NLDEV_ATTR_RES_QP) return Failure{EINVAL, ""};
    m.PutU32(RDMA_NLDEV_ATTR_STAT_MODE, RDMA_COUNTER_MODE_NONE);
    m.PutU32(RDMA_NLDEV_ATTR_STAT_AUTO_MODE_MASK, 0);
  } else {
    CounterList counters = d->vdev ? VdevCounters(*d->vdev) : PdevCounters(*d->pdev);
    size_t table = m.BeginNest(RDMA_NLDEV_ATTR_STAT_HWCOUNTERS);
    for (const auto& [name, value] : counters) {
      size_t entry = m.BeginNest(RDMA_NLDEV_ATTR_STAT_HWCOUNTER_ENTRY);
      m.PutString(RDMA_NLDEV_ATTR_STAT_HWCOUNTER_ENTRY_NAME, name);
      m.PutU64(RDMA_NLDEV_ATTR_STAT_HWCOUNTER_ENTRY_VALUE, value);
      m.EndNest(entry);
    }
    m.EndNest(table);
  }
  EmitLast(std::move(m));
  return std::nullopt;
}

}  // namespace vrdma::vdev::nldev
