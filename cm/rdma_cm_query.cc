// The questions a consumer asks of an ID (Linux's ucma.c and cma.c): its route and
// addresses, the QP attributes for each state (as the IB CM computes them), its options,
// the listing `vrdmactl res show cm_id` prints and the counters `stat show` prints. The
// operations are in rdma_cm.cc.
#include <arpa/inet.h>
#include <rdma/rdma_netlink.h>

#include <cerrno>
#include <cstring>
#include <variant>

#include "absl/strings/str_cat.h"
#include "cm/rdma_cm.h"
#include "cm/route.h"
#include "cm/wire/cma_header.h"
#include "vdev/nldev/nl_message.h"

namespace vrdma::cm {

// The names `rdma res show cm_id` prints (iproute2's cm_id_state_to_str).
const char* IdStateName(IdState s) {
  switch (s) {
    case IdState::kIdle:
      return "IDLE";
    case IdState::kAddrQuery:
      return "ADDR_QUERY";
    case IdState::kAddrResolved:
      return "ADDR_RESOLVED";
    case IdState::kRouteQuery:
      return "ROUTE_QUERY";
    case IdState::kRouteResolved:
      return "ROUTE_RESOLVED";
    case IdState::kConnect:
      return "CONNECT";
    case IdState::kDisconnect:
      return "DISCONNECT";
    case IdState::kAddrBound:
      return "ADDR_BOUND";
    case IdState::kListen:
      return "LISTEN";
    case IdState::kDeviceRemoval:
      return "DEVICE_REMOVAL";
    case IdState::kEstablished:
      return "CONNECT";  // connected IDs stay CONNECT in the kernel too
  }
  return "UNKNOWN";
}

namespace {

std::string AddressText(const sockaddr_storage& sa) {
  char ip[INET6_ADDRSTRLEN] = "";
  if (sa.ss_family == AF_INET) {
    inet_ntop(AF_INET, &reinterpret_cast<const sockaddr_in*>(&sa)->sin_addr, ip, sizeof ip);
    return std::string(ip) + ":" + std::to_string(PortOf(sa));
  }
  if (sa.ss_family == AF_INET6) {
    inet_ntop(AF_INET6, &reinterpret_cast<const sockaddr_in6*>(&sa)->sin6_addr, ip, sizeof ip);
    return "[" + std::string(ip) + "]:" + std::to_string(PortOf(sa));
  }
  return "";
}

const char* PortSpaceName(uint16_t ps) {
  switch (ps) {
    case wire::kPsTcp:
      return "TCP";
    case wire::kPsUdp:
      return "UDP";
    case wire::kPsIpoib:
      return "IPOIB";
    case wire::kPsIb:
      return "IB";
  }
  return "UNKNOWN";
}

// fill_res_cm_id_entry: the port of an ID bound to a device, the QP of one that has it,
// the port space, the state as enum rdma_cm_state numbers it (IdState's order, with an
// established ID in CONNECT), the addresses set, and the ID's number.
std::vector<uint8_t> NldevEntry(const CmId& id, bool on_device) {
  vdev::nldev::NlAttrs a;
  if (on_device) a.PutU32(RDMA_NLDEV_ATTR_PORT_INDEX, 1);
  if (id.params.local_qpn) {
    a.PutU32(RDMA_NLDEV_ATTR_RES_LQPN, id.params.local_qpn);
    a.PutU8(RDMA_NLDEV_ATTR_RES_TYPE, static_cast<uint8_t>(id.qp_type));
  }
  a.PutU32(RDMA_NLDEV_ATTR_RES_PS, id.port_space);
  static_assert(static_cast<int>(IdState::kDeviceRemoval) == 9);  // RDMA_CM_DEVICE_REMOVAL
  IdState state = id.state == IdState::kEstablished ? IdState::kConnect : id.state;
  a.PutU8(RDMA_NLDEV_ATTR_RES_STATE, static_cast<uint8_t>(state));
  // The kernel's attribute is a whole struct __kernel_sockaddr_storage.
  if (id.src.ss_family) a.Put(RDMA_NLDEV_ATTR_RES_SRC_ADDR, &id.src, sizeof id.src);
  if (id.dst.ss_family) a.Put(RDMA_NLDEV_ATTR_RES_DST_ADDR, &id.dst, sizeof id.dst);
  a.PutU32(RDMA_NLDEV_ATTR_RES_CM_IDN, id.handle);
  return a.bytes();
}

}  // namespace

void RdmaCm::Report(std::vector<vdev::ReportedObject>* out) const {
  for (const auto& [session, file] : files_) {
    for (const auto& [h, id] : file->ids()) {
      vdev::ReportedObject o;
      o.vdev = VdevOf(*id);
      o.owner = session;
      auto num = [](std::string k, uint64_t v) {
        return vdev::ReportedField{std::move(k), std::to_string(v), true};
      };
      auto str = [](std::string k, std::string v) {
        return vdev::ReportedField{std::move(k), std::move(v), false};
      };
      if (id->params.local_qpn) o.fields.push_back(num("lqpn", id->params.local_qpn));
      o.fields.push_back(str("qp-type", id->qp_type == IBV_QPT_UD ? "UD" : "RC"));
      o.fields.push_back(str("state", IdStateName(id->state)));
      o.fields.push_back(str("ps", PortSpaceName(id->port_space)));
      o.fields.push_back(num("cm-idn", id->handle));
      if (id->src.ss_family) o.fields.push_back(str("src-addr", AddressText(id->src)));
      if (id->dst.ss_family) o.fields.push_back(str("dst-addr", AddressText(id->dst)));
      o.nldev_attrs = NldevEntry(*id, o.vdev != nullptr);
      out->push_back(std::move(o));
    }
  }
}

int RdmaCm::InitQpAttr(const CmId& id, uint32_t qp_state, ib_uverbs_qp_attr* out) {
  *out = {};
  out->qp_state = qp_state;
  const bool have_cm = id.conn != ConnState::kIdle;
  switch (qp_state) {
    case IBV_QPS_INIT:
      if (!VdevOf(id)) return ENODEV;
      out->qp_attr_mask = IBV_QP_STATE | IBV_QP_PKEY_INDEX | IBV_QP_PORT;
      out->pkey_index = 0;
      out->port_num = 1;
      if (id.qp_type == IBV_QPT_UD) {
        // RDMA-CM's UD Q_Key (RDMA_UDP_QKEY) for the IP port spaces.
        out->qkey = kRdmaUdpQkey;
        out->qp_attr_mask |= IBV_QP_QKEY;
      } else {
        // cma_ib_init_qp_attr gives no remote access before a connection exists;
        // ib_cm_init_qp_attr gives RDMA WRITE, and READ and atomics when the connection
        // has responder resources.
        out->qp_access_flags = 0;
        if (have_cm) {
          out->qp_access_flags = IBV_ACCESS_REMOTE_WRITE;
          if (id.params.responder_resources)
            out->qp_access_flags |= IBV_ACCESS_REMOTE_READ | IBV_ACCESS_REMOTE_ATOMIC;
        }
        out->qp_attr_mask |= IBV_QP_ACCESS_FLAGS;
      }
      return 0;
    case IBV_QPS_RTR:
      if (id.conn != ConnState::kReqRcvd && id.conn != ConnState::kRepSent &&
          id.conn != ConnState::kRepRcvd && id.conn != ConnState::kEstablished) {
        return EINVAL;
      }
      // cm_init_qp_rtr_attr (IBTA 12.7.2 / 12.9.7).
      out->qp_attr_mask = IBV_QP_STATE | IBV_QP_AV | IBV_QP_PATH_MTU | IBV_QP_DEST_QPN |
                          IBV_QP_RQ_PSN | IBV_QP_MAX_DEST_RD_ATOMIC | IBV_QP_MIN_RNR_TIMER;
      std::memcpy(out->ah_attr.grh.dgid, id.dgid.data(), 16);
      out->ah_attr.grh.sgid_index = static_cast<uint8_t>(id.gid_index);
      out->ah_attr.grh.hop_limit = kHopLimit;
      out->ah_attr.grh.traffic_class = id.tos;
      out->ah_attr.is_global = 1;
      out->ah_attr.port_num = 1;
      out->path_mtu = id.params.path_mtu;
      out->dest_qp_num = id.params.remote_qpn;
      // The Starting PSN a REQ or REP carries is its sender's receive PSN (IBTA 12.7.2
      // Table 103 "Starting PSN", 12.7.3 Table 104; cm.c: the active side's rq_psn is its
      // REQ's, the passive side's sq_psn the REQ's): a capture of rping between two
      // rdma_rxe peers shows each side sending from the PSN in the other's message.
      out->rq_psn = id.params.local_psn;
      out->max_dest_rd_atomic = id.params.responder_resources;
      out->min_rnr_timer = 0;
      return 0;
    case IBV_QPS_RTS:
      if (id.conn != ConnState::kRepSent && id.conn != ConnState::kRepRcvd &&
          id.conn != ConnState::kEstablished && id.conn != ConnState::kReqRcvd) {
        return EINVAL;
      }
      // cm_init_qp_rts_attr.
      out->qp_attr_mask = IBV_QP_STATE | IBV_QP_SQ_PSN | IBV_QP_TIMEOUT | IBV_QP_RETRY_CNT |
                          IBV_QP_RNR_RETRY | IBV_QP_MAX_QP_RD_ATOMIC;
      out->sq_psn = id.params.remote_psn;  // the peer's message's Starting PSN (above)
      out->timeout = id.params.local_ack_timeout;
      out->retry_cnt = id.params.retry_count;
      out->rnr_retry = id.params.rnr_retry_count;
      out->max_rd_atomic = id.params.initiator_depth;
      return 0;
    default:
      return EINVAL;
  }
}

namespace {

void FillPath(const CmId& id, ib_user_path_rec* p) {
  std::memcpy(p->dgid, id.dgid.data(), 16);
  std::memcpy(p->sgid, id.sgid.data(), 16);
  p->pkey = htons(0xffff);
  p->hop_limit = RdmaCm::kHopLimit;
  p->traffic_class = id.tos;
  p->reversible = 1;
  p->numb_path = 1;
  p->mtu_selector = 2;  // exactly
  p->mtu = id.params.path_mtu;
  p->rate_selector = 2;
  p->rate = RdmaCm::kPacketRate;
  p->packet_life_time_selector = 2;
  p->packet_life_time = RdmaCm::kPacketLifeTime;
}

}  // namespace

int RdmaCm::QueryRoute(const CmId& id, rdma_ucm_query_route_resp* out) {
  *out = {};
  vdev::Vdev* v = VdevOf(id);
  out->node_guid = v ? v->node_guid_be : 0;
  out->port_num = v ? 1 : 0;
  // No device index: librdmacm then finds the device by its GUID alone.
  out->ibdev_index = UINT32_MAX;
  std::memcpy(&out->src_addr, &id.src, std::min(sizeof out->src_addr, sizeof id.src));
  std::memcpy(&out->dst_addr, &id.dst, std::min(sizeof out->dst_addr, sizeof id.dst));
  const bool routed = id.state == IdState::kRouteResolved || id.state == IdState::kConnect ||
                      id.state == IdState::kEstablished || id.state == IdState::kDisconnect;
  if (routed && v) {
    // ucma_copy_iboe_route with one path.
    out->num_paths = 1;
    FillPath(id, &out->ib_route[0]);
  } else {
    std::optional<Gid> s = GidOfSockaddr(id.src), d = GidOfSockaddr(id.dst);
    if (s) std::memcpy(out->ib_route[0].sgid, s->data(), 16);
    if (d) std::memcpy(out->ib_route[0].dgid, d->data(), 16);
    out->ib_route[0].pkey = htons(0xffff);
  }
  return 0;
}

int RdmaCm::QueryAddr(const CmId& id, rdma_ucm_query_addr_resp* out) {
  *out = {};
  vdev::Vdev* v = VdevOf(id);
  out->node_guid = v ? v->node_guid_be : 0;
  out->port_num = v ? 1 : 0;
  out->pkey = htons(0xffff);
  out->src_size = static_cast<uint16_t>(SockaddrLen(id.src));
  out->dst_size = static_cast<uint16_t>(SockaddrLen(id.dst));
  std::memcpy(&out->src_addr, &id.src, sizeof id.src);
  std::memcpy(&out->dst_addr, &id.dst, sizeof id.dst);
  out->ibdev_index = UINT32_MAX;
  return 0;
}

int RdmaCm::SetOption(CmId& id, uint32_t level, uint32_t name, const uint8_t* value, size_t len) {
  if (level != RDMA_OPTION_ID) return ENOSYS;  // RDMA_OPTION_IB_PATH: an SA path, not on RoCE
  // ucma_set_option_id: each option's size is fixed.
  switch (name) {
    case RDMA_OPTION_ID_TOS:
      if (len != sizeof(uint8_t)) return EINVAL;
      id.tos = value[0];
      return 0;
    case RDMA_OPTION_ID_REUSEADDR: {
      if (len != sizeof(int)) return EINVAL;
      int v;
      std::memcpy(&v, value, sizeof v);
      // rdma_set_reuseaddr: any time before listening to set it, only unbound to clear it.
      if (!((v && id.state != IdState::kListen) || id.state == IdState::kIdle)) return EINVAL;
      id.reuseaddr = v != 0;
      return 0;
    }
    case RDMA_OPTION_ID_AFONLY: {
      if (len != sizeof(int)) return EINVAL;
      int v;
      std::memcpy(&v, value, sizeof v);
      // rdma_set_afonly: before the ID listens or connects.
      if (id.state != IdState::kIdle && id.state != IdState::kAddrBound) return EINVAL;
      id.afonly = v != 0;
      return 0;
    }
    case RDMA_OPTION_ID_ACK_TIMEOUT:
      if (len != sizeof(uint8_t)) return EINVAL;
      id.ack_timeout = static_cast<uint8_t>(value[0] & 31);
      return 0;
    default:
      return ENOSYS;
  }
}

// ---- counters (stat show) --------------------------------------------------------------------

CmCounters RdmaCm::CountersFor(const vdev::Vdev& v) const {
  auto it = counters_.find(v.id);
  return it == counters_.end() ? CmCounters{} : it->second;
}

void RdmaCm::VdevCounters(const vdev::Vdev& v, vdev::CounterList* out) const {
  // In wire::CmMessage's order.
  static constexpr std::array<const char*, 9> kNames = {
      "req", "mra", "rej", "rep", "rtu", "dreq", "drep", "sidr_req", "sidr_rep"};
  static_assert(kNames.size() == std::variant_size_v<wire::CmMessage>);
  const CmCounters c = CountersFor(v);
  for (size_t i = 0; i < kNames.size(); ++i) {
    out->emplace_back(absl::StrCat("tx_", kNames[i]), c.sent[i]);
  }
  for (size_t i = 0; i < kNames.size(); ++i) {
    out->emplace_back(absl::StrCat("rx_", kNames[i]), c.received[i]);
  }
  out->insert(out->end(), {{"resends", c.resends},
                           {"timeouts", c.timeouts},
                           {"send_failures", c.send_failures},
                           {"rej_no_listener", c.rej_no_listener},
                           {"rej_backlog", c.rej_backlog},
                           {"drop_malformed", c.drop_malformed},
                           {"drop_unknown_comm", c.drop_unknown_comm},
                           {"drop_wrong_vdev", c.drop_wrong_vdev},
                           {"drop_wrong_state", c.drop_wrong_state}});
}

void RdmaCm::PdevCounters(const vdev::Pdev& p, vdev::CounterList* out) const {
  const qp1::GsiPort* port = qp1_ ? qp1_->PortOf(&p) : nullptr;
  if (!port) return;
  const qp1::GsiCounters& c = port->counters();
  out->insert(out->end(), {{"qp1_rx_mads", c.rx_mads},
                           {"qp1_tx_mads", c.tx_mads},
                           {"qp1_rx_no_vdev", c.rx_no_vdev},
                           {"qp1_rx_bad_length", c.rx_bad_length},
                           {"qp1_rx_errors", c.rx_errors},
                           {"qp1_tx_errors", c.tx_errors},
                           {"qp1_tx_no_buffer", c.tx_no_buffer}});
}

}  // namespace vrdma::cm
