// Receive checks: whether a received frame is for this device and for which QP (parse
// and ICRC, destination MAC, VLAN and GID, QPN, P_Key, transport, connected path),
// before the responder or completer sees it.
#include <cstring>

#include "driver/transport/device.h"

namespace vrdma::driver {

void RoceDevice::Classify(rte_mbuf* m) {
  counters_.rx_packets++;
  counters_.rx_bytes += m->pkt_len;
  if (m->nb_segs > 1 && rte_pktmbuf_linearize(m) != 0) {
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
  wire::DropReason why =
      wire::ParseFrame(frame, m->data_len, &pkt, wire::ParseOptions{!cfg_.icrc_offload});
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
  if (pkt.bth.dest_qp == kMulticastQpn && !mcast_groups_.empty() &&
      wire::IsMulticastGid(pkt.net.dgid)) {
    DeliverMulticast(pkt);  // to every QP attached to its group (multicast.cc)
  } else if (!FindDestination(pkt, &info)) {
    if (!SteerRaw(frame, m->data_len, FlowRule::Kind::kAllDefault)) {
      counters_.rx_not_for_us++;
    }
  } else if (!(qp = LookupQp(pkt.bth.dest_qp))) {
    counters_.rx_unknown_qp++;
  } else if (qp->init.gid_count && (info.gid_index < qp->init.gid_first ||
                                    info.gid_index - qp->init.gid_first >= qp->init.gid_count)) {
    // A QP hears only the GIDs of its own (virtual) device.
    counters_.rx_not_for_us++;
  } else if ((pkt.bth.pkey & 0x7fff) != (qp->pkey & 0x7fff)) {
    // P_Key check (IBTA 9.6.1.1, C9-41): the base keys must match.
    counters_.rx_bad_pkey++;
  } else {
    wire::Transport t = wire::TransportOf(pkt.bth.opcode);
    const bool response = wire::GetOpcodeInfo(pkt.bth.opcode).flags & wire::kOpResponse;
    // An XRC send QP hears only responses, an XRC receive QP only requests.
    bool type_ok =
        (qp->type == IBV_QPT_RC && t == wire::Transport::kRc) ||
        (qp->type == IBV_QPT_UC && t == wire::Transport::kUc) ||
        ((qp->type == IBV_QPT_UD || qp->type == kQpTypeGsi) && t == wire::Transport::kUd) ||
        (qp->type == IBV_QPT_XRC_SEND && t == wire::Transport::kXrc && response) ||
        (qp->type == IBV_QPT_XRC_RECV && t == wire::Transport::kXrc && !response);
    if (!type_ok) {
      counters_.rx_wrong_transport++;
    } else if (IsConnected(qp->type) &&
               (!qp->av_valid || pkt.net.sgid != qp->av.dgid || pkt.net.dgid != qp->tmpl.net.sgid ||
                pkt.net.type != qp->tmpl.net.type)) {
      // A connected QP only hears its peer: same GIDs as its path (IBTA 9.6.1).
      counters_.rx_wrong_path++;
    } else if (response) {
      OnResponse(*qp, pkt);
    } else {
      OnRequest(*qp, pkt, info);
    }
  }
  rte_pktmbuf_free(m);
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
