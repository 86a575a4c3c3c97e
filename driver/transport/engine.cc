// The engine loop: receive a burst, classify each frame to its QP, run the responder or
// completer, then let active QPs send (responses first, then requests), fire timers,
// and transmit the batch. No allocation, lock or system call per packet.
#include "driver/transport/device.h"

namespace vrdma {

void Device::Activate(QueuePair& qp) {
  if (qp.active) return;
  qp.active = true;
  active_.push_back(&qp);  // capacity reserved for every QP: never allocates
}

void Device::Transmit(rte_mbuf* m) {
  counters_.tx_packets++;
  counters_.tx_bytes += m->pkt_len;
  if (cfg_.hairpin && IsLocalMac(rte_pktmbuf_mtod(m, const uint8_t*))) {
    // To another vdev of this device: the embedded switch turns it around (a NIC's
    // eswitch does the same); the port would send it away from us.
    if (hairpin_.size() < hairpin_.capacity()) {
      hairpin_.push_back(m);
    } else {
      rte_pktmbuf_free(m);
      counters_.tx_dropped++;
    }
    return;
  }
  if (tx_.size() == tx_.capacity()) {
    // The port has refused frames for a while: its queue is full.
    rte_pktmbuf_free(m);
    counters_.tx_dropped++;
    return;
  }
  tx_.push_back(m);
  // A burst at a time, also while the port refuses (then the QPs soon stop).
  if (tx_.size() % cfg_.tx_burst == 0) FlushTx();
}

void Device::FlushTx() {
  if (tx_.empty()) return;
  if (!cfg_.port) {
    for (rte_mbuf* m : tx_) rte_pktmbuf_free(m);
    counters_.tx_dropped += tx_.size();
    tx_.clear();
    return;
  }
  uint16_t n = static_cast<uint16_t>(tx_.size());
  uint16_t sent = cfg_.port->TxBurst(tx_.data(), n);
  // What the port did not take (a NIC's transmit ring is full) waits for the next pass
  // in order, and the QPs stop producing until it has gone (TxBackedUp): a frame
  // dropped here would cost a go-back-N.
  tx_.erase(tx_.begin(), tx_.begin() + sent);
  if (sent < n) counters_.tx_port_busy++;
}

void Device::Receive(rte_mbuf** pkts, uint16_t n) {
  for (uint16_t i = 0; i < n; ++i) Classify(pkts[i]);
}

void Device::Classify(rte_mbuf* m) {
  counters_.rx_packets++;
  counters_.rx_bytes += m->pkt_len;
  if (m->nb_segs > 1 && rte_pktmbuf_linearize(m) != 0) {
    counters_.rx_parse_drops[static_cast<size_t>(wire::DropReason::kTruncated)]++;
    rte_pktmbuf_free(m);
    return;
  }
  wire::RocePacket pkt;
  wire::DropReason why = wire::ParseFrame(rte_pktmbuf_mtod(m, const uint8_t*), m->data_len, &pkt,
                                          wire::ParseOptions{!cfg_.icrc_offload});
  if (why != wire::DropReason::kNone) {
    counters_.rx_parse_drops[static_cast<size_t>(why)]++;
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
  uint32_t gid_index = 0;
  QueuePair* qp = nullptr;
  if (!FindDestination(pkt, &gid_index)) {
    counters_.rx_not_for_us++;
  } else if (!(qp = LookupQp(pkt.bth.dest_qp))) {
    counters_.rx_unknown_qp++;
  } else if (qp->init.gid_count && (gid_index < qp->init.gid_first ||
                                    gid_index - qp->init.gid_first >= qp->init.gid_count)) {
    // A QP hears only the GIDs of its own (virtual) device.
    counters_.rx_not_for_us++;
  } else if ((pkt.bth.pkey & 0x7fff) != (qp->pkey & 0x7fff)) {
    // P_Key check (IBTA 9.6.1.1, C9-41): the base keys must match.
    counters_.rx_bad_pkey++;
  } else {
    wire::Transport t = wire::TransportOf(pkt.bth.opcode);
    bool type_ok =
        (qp->type == IBV_QPT_RC && t == wire::Transport::kRc) ||
        (qp->type == IBV_QPT_UC && t == wire::Transport::kUc) ||
        ((qp->type == IBV_QPT_UD || qp->type == kQpTypeGsi) && t == wire::Transport::kUd);
    if (!type_ok) {
      counters_.rx_wrong_transport++;
    } else if ((qp->type == IBV_QPT_RC || qp->type == IBV_QPT_UC) &&
               (!qp->av_valid || pkt.net.sgid != qp->av.dgid || pkt.net.dgid != qp->tmpl.net.sgid ||
                pkt.net.type != qp->tmpl.net.type)) {
      // A connected QP only hears its peer: same GIDs as its path (IBTA 9.6.1).
      counters_.rx_wrong_path++;
    } else if (wire::GetOpcodeInfo(pkt.bth.opcode).flags & wire::kOpResponse) {
      OnResponse(*qp, pkt);
    } else {
      OnRequest(*qp, pkt);
    }
  }
  rte_pktmbuf_free(m);
}

void Device::OnTimer(TimerNode* node) {
  QueuePair* qp = static_cast<QueuePair*>(node->data);
  if (node == &qp->retransmit_timer) {
    OnRetransmitTimeout(*qp);
  } else if (node == &qp->rnr_timer) {
    qp->req.rnr_wait = false;
    Activate(*qp);
  }
}

void Device::RunActive() {
  running_.swap(active_);
  for (QueuePair* qp : running_) {
    if (!qp) continue;
    qp->active = false;
    if (TxBackedUp()) {
      Activate(*qp);  // its turn comes when the port has room again
      continue;
    }
    uint32_t budget = cfg_.qp_tx_budget;
    if (qp->type == IBV_QPT_RC) RunResponses(*qp, &budget);
    RunRequester(*qp, &budget);
    // Out of budget means more to send: stay on the list. Otherwise the QP waits for
    // an ACK, a timer or a new WQE, each of which activates it again.
    if (budget == 0 && qp->state != IBV_QPS_ERR) Activate(*qp);
    if (qp->state == IBV_QPS_SQD && qp->sq_drained_pending &&
        (qp->sq.empty() || !qp->sq.front().started)) {
      qp->sq_drained_pending = false;
      PostEvent(IBV_EVENT_SQ_DRAINED, qp->qpn);
    }
  }
  running_.clear();
}

bool Device::IsLocalMac(const uint8_t* dst) const {
  for (const wire::MacAddr& mac : local_macs_) {
    if (std::memcmp(mac.data(), dst, 6) == 0) return true;
  }
  return false;
}

int Device::Poll(uint64_t now_ns) {
  now_ = now_ns;
  int work = 0;
  if (!hairpin_.empty()) {
    // Frames between vdevs of this device, queued by the previous pass.
    hairpin_rx_.swap(hairpin_);
    for (rte_mbuf* m : hairpin_rx_) Classify(m);
    work += static_cast<int>(hairpin_rx_.size());
    hairpin_rx_.clear();
  }
  if (cfg_.port) {
    rte_mbuf* rx[64];
    uint16_t burst = cfg_.rx_burst < 64 ? cfg_.rx_burst : 64;
    uint16_t n = cfg_.port->RxBurst(rx, burst);
    for (uint16_t i = 0; i < n; ++i) Classify(rx[i]);
    work += n;
  }
  timers_.Advance(now_ns, [this](TimerNode* node) { OnTimer(node); });
  uint64_t before = counters_.tx_packets;
  RunActive();
  FlushTx();
  work += static_cast<int>(counters_.tx_packets - before);
  // Frames still waiting for the port keep the engine polling.
  if (!tx_.empty()) work++;
  return work;
}

}  // namespace vrdma
