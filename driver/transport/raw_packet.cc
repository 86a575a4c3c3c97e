// Raw packet QPs (IBV_QPT_RAW_PACKET): a send WQE is one whole Ethernet frame, which
// leaves as the application built it; received frames reach a raw packet QP through its
// flow steering rules (ibv_create_flow), whole, each into one receive WQE. There is no
// transport: no PSN, no acknowledgement, no retry; a frame with no receive WQE waiting
// is dropped, as a NIC drops it.
//
// A raw packet QP speaks for its interface only: the frames it sends must carry the
// interface's MAC as their source (others are dropped, as by a NIC's spoof check, unless
// the check is off), and it hears only frames sent to that MAC or to a group address. A
// frame to a group address goes to the port and to this device's own raw packet QPs, as
// an embedded switch floods it.
#include <algorithm>
#include <cstring>

#include "driver/transport/device.h"
#include "driver/transport/errors.h"
#include "driver/transport/frame_fields.h"

namespace vrdma::driver {
namespace {

bool Masked(const uint8_t* a, const uint8_t* b, const uint8_t* mask, size_t n) {
  for (size_t i = 0; i < n; ++i) {
    if ((a[i] & mask[i]) != (b[i] & mask[i])) return false;
  }
  return true;
}
template <typename T>
bool Masked(T a, T b, T mask) {
  return (a & mask) == (b & mask);
}

bool Matches(const FlowMatch& m, const FrameFields& f) {
  if (!Masked(f.dst_mac, m.dst_mac.data(), m.dst_mac_mask.data(), 6) ||
      !Masked(f.src_mac, m.src_mac.data(), m.src_mac_mask.data(), 6) ||
      !Masked(f.ether_type, m.ether_type, m.ether_type_mask) ||
      !Masked(f.vlan_tag, m.vlan_tag, m.vlan_tag_mask)) {
    return false;
  }
  if (m.ip_version) {
    const size_t n = m.ip_version == 4 ? 4 : 16;
    if (f.ip_version != m.ip_version ||
        !Masked(f.src_ip.data(), m.src_ip.data(), m.src_ip_mask.data(), n) ||
        !Masked(f.dst_ip.data(), m.dst_ip.data(), m.dst_ip_mask.data(), n) ||
        !Masked(f.proto, m.proto, m.proto_mask) || !Masked(f.tos, m.tos, m.tos_mask) ||
        !Masked(f.hop_limit, m.hop_limit, m.hop_limit_mask) ||
        !Masked(f.flow_label, m.flow_label, m.flow_label_mask)) {
      return false;
    }
  }
  if (m.l4_proto) {
    if (!f.has_ports || f.proto != m.l4_proto || !Masked(f.src_port, m.src_port, m.src_port_mask) ||
        !Masked(f.dst_port, m.dst_port, m.dst_port_mask)) {
      return false;
    }
  }
  return true;
}

// Whether a frame sent to `dst` is one a raw packet QP of interface `mac` may hear.
bool ForInterface(const uint8_t* dst, const wire::MacAddr& mac) {
  return (dst[0] & 1) || std::memcmp(dst, mac.data(), 6) == 0;  // group bit: multicast
}

}  // namespace

absl::StatusOr<uint32_t> RoceDevice::CreateFlow(uint32_t qpn, const FlowRule& rule) {
  QueuePair* qp = LookupQp(qpn);
  if (!qp) return NotFound("QP", qpn);
  if (qp->type != IBV_QPT_RAW_PACKET) {
    return absl::InvalidArgumentError("flow rules steer frames to raw packet QPs only");
  }
  if (flows_.size() >= kMaxFlows) return absl::ResourceExhaustedError("flow table full");
  uint32_t handle = next_flow_++;
  if (next_flow_ == 0) next_flow_ = 1;
  // Normal rules first, then the defaults; within a kind by priority, then by age.
  auto after = std::upper_bound(flows_.begin(), flows_.end(), rule,
                                [](const FlowRule& r, const InstalledFlow& f) {
                                  if (r.kind != f.rule.kind) return r.kind < f.rule.kind;
                                  return r.priority < f.rule.priority;
                                });
  flows_.insert(after, InstalledFlow{handle, qpn, rule});
  return handle;
}

absl::Status RoceDevice::DestroyFlow(uint32_t handle) {
  auto it = std::find_if(flows_.begin(), flows_.end(),
                         [handle](const InstalledFlow& f) { return f.handle == handle; });
  if (it == flows_.end()) return NotFound("flow", handle);
  flows_.erase(it);
  return absl::OkStatus();
}

void RoceDevice::DropFlowsOf(uint32_t qpn) {
  std::erase_if(flows_, [qpn](const InstalledFlow& f) { return f.qpn == qpn; });
}

void RoceDevice::SendRaw(QueuePair& qp, SendWqe& w) {
  const SendWr& wr = w.wr;
  // One frame, Ethernet header first, no larger than the interface carries.
  if (w.length < wire::kEthLen || w.length > qp.init.max_frame) {
    FailSend(qp, IBV_WC_LOC_LEN_ERR);
    return;
  }
  rte_mbuf* m = rte_pktmbuf_alloc(cfg_.pool);
  if (!m) {
    counters_.tx_dropped++;
    return;  // retried on the next pass
  }
  if (rte_pktmbuf_tailroom(m) < w.length) {
    rte_pktmbuf_free(m);
    FailSend(qp, IBV_WC_LOC_LEN_ERR);
    return;
  }
  uint8_t* frame = rte_pktmbuf_mtod(m, uint8_t*);
  Access a = Access::kOk;
  if (wr.send_flags & IBV_SEND_INLINE) {
    std::memcpy(frame, wr.inline_data, w.length);
  } else {
    a = GatherSges(qp, wr.sg_list, wr.num_sge, 0, frame, w.length);
  }
  if (a != Access::kOk) {
    rte_pktmbuf_free(m);
    FailSend(qp, a == Access::kLocalProt ? IBV_WC_LOC_PROT_ERR : IBV_WC_LOC_LEN_ERR);
    return;
  }
  w.req_done = true;
  qp.req.sq_next++;
  if (qp.init.check_source && std::memcmp(frame + 6, qp.init.mac.data(), 6) != 0) {
    // Not its interface's source address: dropped, and the WQE completes as a NIC's
    // would (the drop is counted, raw_tx_spoofed).
    rte_pktmbuf_free(m);
    counters_.raw_tx_spoofed++;
  } else {
    m->data_len = static_cast<uint16_t>(w.length);
    m->pkt_len = w.length;
    counters_.raw_tx_frames++;
    Transmit(m);
  }
  CompleteSend(qp, w, IBV_WC_SUCCESS);
}

bool RoceDevice::SteerRaw(const uint8_t* frame, uint32_t len, FlowRule::Kind pass) {
  if (len < wire::kEthLen) return false;
  if (pass != FlowRule::Kind::kNormal && !HasDefaultFlows()) return false;
  const FrameFields fields = ReadFields(frame, len);
  const bool group = fields.dst_mac[0] & 1;
  for (const InstalledFlow& f : flows_) {
    if (pass == FlowRule::Kind::kNormal) {
      if (f.rule.kind != FlowRule::Kind::kNormal) break;  // normal rules come first
    } else if (f.rule.kind == FlowRule::Kind::kNormal ||
               (f.rule.kind == FlowRule::Kind::kMcDefault && !group)) {
      continue;
    }
    if (f.rule.kind == FlowRule::Kind::kNormal && !Matches(f.rule.match, fields)) continue;
    QueuePair* qp = LookupQp(f.qpn);
    if (!qp || !ForInterface(fields.dst_mac, qp->init.mac)) continue;
    // An RSS QP receives through its work queues, whose readiness decides (as mlx5's
    // RSS QPs, which are never modified); another raw QP in RTR or RTS.
    if (!qp->init.rss_table && qp->state != IBV_QPS_RTR && qp->state != IBV_QPS_RTS) continue;
    DeliverRaw(*qp, frame, len);
    return true;
  }
  return false;
}

void RoceDevice::DeliverRaw(QueuePair& qp, const uint8_t* frame, uint32_t len) {
  if (qp.init.rss_table) {
    DeliverRss(qp, frame, len);
    return;
  }
  RecvWr wr;
  if (!TakeRecv(qp, &wr)) {
    counters_.raw_rx_no_recv_wqe++;
    return;
  }
  counters_.raw_rx_frames++;
  qp.resp.recv = wr;
  qp.resp.have_recv = true;
  Access a = ScatterSges(qp, wr.sg_list, wr.num_sge, 0, frame, len);
  if (a != Access::kOk) {
    CompleteRecv(qp, IBV_WC_RECV, 0,
                 a == Access::kLength ? IBV_WC_LOC_LEN_ERR : IBV_WC_LOC_PROT_ERR, nullptr, nullptr);
    EnterError(qp);
    return;
  }
  CompleteRecv(qp, IBV_WC_RECV, len, IBV_WC_SUCCESS, nullptr, nullptr);
}

}  // namespace vrdma::driver
