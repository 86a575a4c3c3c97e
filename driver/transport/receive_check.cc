// Receive checks: whether a received frame is for this device and for which QP (parse
// and ICRC, destination MAC, VLAN and GID, QPN, P_Key, transport, connected path),
// before the responder or completer sees it.
#include <cstring>

#include "driver/transport/device.h"

namespace vrdma::driver {

namespace {

// A zero-copy frame of this device's own (NewZeroCopyPacket), turned around by its
// internal switch: headers in the first segment, the payload in external segments over
// the sender's registered memory (consecutive addresses), then pad and ICRC. Sets the
// options to parse it in place, so that the payload is copied once, from the
// requester's MR to the responder's. A port's receive chains have no external segments.
bool DetachedPayload(const rte_mbuf* m, wire::ParseOptions* opts, uint32_t* payload_len) {
  const rte_mbuf* seg = m->next;
  if (!seg || !RTE_MBUF_HAS_EXTBUF(seg)) return false;
  const uint8_t* start = rte_pktmbuf_mtod(seg, const uint8_t*);
  uint32_t len = 0;
  for (; seg && RTE_MBUF_HAS_EXTBUF(seg); seg = seg->next) {
    if (rte_pktmbuf_mtod(seg, const uint8_t*) != start + len) return false;
    len += seg->data_len;
  }
  opts->detached = start;
  opts->detached_len = m->pkt_len - m->data_len;
  opts->verify_icrc = false;  // never on a wire; the ICRC was not computed (offload)
  *payload_len = len;
  return true;
}

}  // namespace

void RoceDevice::Classify(rte_mbuf* m) {
  if (!rx_retrying_) {  // a held datagram was counted when it first came
    counters_.rx_packets++;
    counters_.rx_bytes += m->pkt_len;
  }
  wire::ParseOptions opts{!cfg_.icrc_offload};
  uint32_t detached_payload = 0;
  // A frame from a wire is parsed whole, ICRC and all; so is one a raw packet QP's flow
  // rules may read. A chain is made one for them.
  if (m->nb_segs > 1 &&
      (!rx_in_place_ || !flows_.empty() || !DetachedPayload(m, &opts, &detached_payload)) &&
      rte_pktmbuf_linearize(m) != 0) {
    counters_.rx_parse_drops[static_cast<size_t>(wire::DropReason::kTruncated)]++;
    rte_pktmbuf_free(m);
    return;
  }
  const uint8_t* frame = rte_pktmbuf_mtod(m, const uint8_t*);
  // Flow steering rules of raw packet QPs see a frame first (raw_packet.cc); the default
  // rules get what the RoCE path does not take.
  if (!flows_.empty() && SteerRaw(frame, m->data_len, FlowRule::Kind::kNormal)) {
    rte_pktmbuf_free(m);
    return;
  }
  wire::RocePacket pkt;
  wire::DropReason why = wire::ParseFrame(frame, m->data_len, &pkt, opts);
  if (opts.detached && why == wire::DropReason::kNone) {
    if (pkt.payload_len == detached_payload) {
      if (!rx_retrying_) counters_.rx_in_place++;
    } else {
      why = wire::DropReason::kBadLength;
    }
  }
  if (why != wire::DropReason::kNone) {
    if (!SteerRaw(frame, m->data_len, FlowRule::Kind::kAllDefault)) {
      counters_.rx_parse_drops[static_cast<size_t>(why)]++;
    }
    rte_pktmbuf_free(m);
    return;
  }
  // A port hands over every frame on its wire (AF_PACKET sees all of the interface's,
  // a NIC runs promiscuous): steer by destination MAC, VLAN and GID, never by what the
  // sender claims to be.
  if (m->ol_flags & RTE_MBUF_F_RX_VLAN_STRIPPED) {
    pkt.eth.has_vlan = true;
    pkt.eth.vlan_tci = m->vlan_tci;
  }
  RecvInfo info;  // where it arrived: goes with the packet to its receive completion
  QueuePair* qp = nullptr;
  // A datagram may be held for its receive WQEs (OnUdRequest, DeliverMulticast).
  rx_may_hold_ = !rx_retrying_;
  if (pkt.bth.dest_qp == kMulticastQpn && !mcast_groups_.empty() &&
      wire::IsMulticastGid(pkt.net.dgid)) {
    DeliverMulticast(pkt);  // to every QP attached to its group (multicast.cc)
  } else if (!FindDestination(pkt, &info)) {
    if (!SteerRaw(frame, m->data_len, FlowRule::Kind::kAllDefault)) {
      counters_.rx_not_for_us++;
    }
  } else if (!(qp = LookupQp(pkt.bth.dest_qp))) {
    counters_.rx_unknown_qp++;
  } else if (uint64_t* refused = Refusal(*qp, pkt, info)) {
    ++*refused;
  } else if (wire::GetOpcodeInfo(pkt.bth.opcode).flags & wire::kOpResponse) {
    OnResponse(*qp, pkt);
  } else {
    OnRequest(*qp, pkt, info);
  }
  rx_may_hold_ = false;
  if (rx_held_) {
    rx_held_ = false;
    rx_waiting_.push_back(m);
    return;
  }
  rte_pktmbuf_free(m);
}

uint64_t* RoceDevice::Refusal(const QueuePair& qp, const wire::RocePacket& pkt,
                              const RecvInfo& info) {
  if (qp.init.gid_count && (info.gid_index < qp.init.gid_first ||
                            info.gid_index - qp.init.gid_first >= qp.init.gid_count)) {
    // A QP hears only the GIDs of its own (virtual) device.
    return &counters_.rx_not_for_us;
  }
  if (!PkeyMatches(pkt.bth.pkey, qp.pkey)) return &counters_.rx_bad_pkey;
  wire::Transport t = wire::TransportOf(pkt.bth.opcode);
  const bool response = wire::GetOpcodeInfo(pkt.bth.opcode).flags & wire::kOpResponse;
  // An XRC send QP hears only responses, an XRC receive QP only requests.
  bool type_ok = (qp.type == IBV_QPT_RC && t == wire::Transport::kRc) ||
                 (qp.type == IBV_QPT_UC && t == wire::Transport::kUc) ||
                 ((qp.type == IBV_QPT_UD || qp.type == kQpTypeGsi) && t == wire::Transport::kUd) ||
                 (qp.type == IBV_QPT_XRC_SEND && t == wire::Transport::kXrc && response) ||
                 (qp.type == IBV_QPT_XRC_RECV && t == wire::Transport::kXrc && !response);
  if (!type_ok) return &counters_.rx_wrong_transport;
  if (IsConnected(qp.type) &&
      (!qp.av_valid || pkt.net.sgid != qp.av.dgid || pkt.net.dgid != qp.tmpl.net.sgid ||
       pkt.net.type != qp.tmpl.net.type)) {
    // A connected QP only hears its peer: same GIDs as its path (IBTA 9.6.1).
    return &counters_.rx_wrong_path;
  }
  return nullptr;
}

const GidEntry* RoceDevice::FindDestination(const wire::RocePacket& pkt, RecvInfo* info) const {
  auto it = gid_lookup_.find(GidKey{pkt.net.dgid, pkt.net.type});
  if (it == gid_lookup_.end()) return nullptr;
  const GidEntry& e = gids_[it->second];
  // The frame must be addressed to the interface that owns the GID: its MAC and VLAN.
  if (pkt.eth.dst != e.mac || pkt.eth.has_vlan != e.has_vlan ||
      (e.has_vlan && (pkt.eth.vlan_tci & 0xfff) != e.vlan_id)) {
    return nullptr;
  }
  // The tag the kernel puts in a RoCE receive completion (struct ib_wc), plus the entry.
  info->valid = true;
  info->gid_index = it->second;
  info->network_type = pkt.net.type;
  info->has_vlan = pkt.eth.has_vlan;
  info->vlan_id = pkt.eth.vlan_tci & 0xfff;
  info->smac = pkt.eth.src;
  return &e;
}

bool RoceDevice::IsLocalMac(const uint8_t* dst) const {
  if (local_mac_refs_.size() <= kLocalMacScan) {
    for (const wire::MacAddr& mac : local_macs_) {
      if (std::memcmp(mac.data(), dst, 6) == 0) return true;
    }
    return false;
  }
  uint64_t key = 0;
  std::memcpy(&key, dst, 6);
  return local_mac_refs_.count(key) != 0;
}

}  // namespace vrdma::driver
