// The engine loop: receive a burst, classify each frame to its QP, run the responder or
// completer, then let active QPs send (responses first, then requests), fire timers,
// and transmit the batch. No allocation, lock or system call per packet.
#include "driver/transport/device.h"

namespace vrdma::driver {

void RoceDevice::Activate(QueuePair& qp) {
  if (qp.active) return;
  qp.active = true;
  active_.push_back(&qp);  // capacity reserved for every QP: never allocates
}

void RoceDevice::Transmit(rte_mbuf* m) {
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
  if (cfg_.hairpin && (!flows_.empty() || !mcast_groups_.empty()) &&
      (rte_pktmbuf_mtod(m, const uint8_t*)[0] & 1) && hairpin_.size() < hairpin_.capacity()) {
    // To a group address while raw packet QPs or multicast groups listen here: a copy
    // for this device's own QPs too, as an embedded switch floods it.
    if (rte_mbuf* copy = rte_pktmbuf_copy(m, cfg_.pool, 0, UINT32_MAX)) hairpin_.push_back(copy);
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

void RoceDevice::FlushTx() {
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

void RoceDevice::Receive(rte_mbuf** pkts, uint16_t n) {
  for (uint16_t i = 0; i < n; ++i) Classify(pkts[i]);
}

void RoceDevice::OnTimer(TimerNode* node) {
  QueuePair* qp = static_cast<QueuePair*>(node->data);
  if (node == &qp->retransmit_timer) {
    OnRetransmitTimeout(*qp);
  } else if (node == &qp->rnr_timer) {
    qp->req.rnr_wait = false;
    Activate(*qp);
  }
}

void RoceDevice::RunActive() {
  running_.swap(active_);
  for (QueuePair* qp : running_) {
    if (!qp) continue;
    qp->active = false;
    if (TxBackedUp()) {
      Activate(*qp);  // its turn comes when the port has room again
      continue;
    }
    uint32_t budget = cfg_.qp_tx_budget;
    if (IsReliable(qp->type)) RunResponses(*qp, &budget);
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

void RoceDevice::HoldRetired(QueuePair& qp) {
  if (!in_pass_) {
    qp.sq.PublishRetired();
    qp.rq.PublishRetired();
  } else if (!qp.retired_held) {
    qp.retired_held = true;
    qp.next_retired = retired_held_;
    retired_held_ = &qp;
  }
}

void RoceDevice::HoldRetired(SharedReceiveQueue& srq) {
  if (!in_pass_) {
    srq.wqes.PublishRetired();
  } else if (!srq.retired_held) {
    srq.retired_held = true;
    srq.next_retired = srqs_retired_held_;
    srqs_retired_held_ = &srq;
  }
}

void RoceDevice::PublishHeld() {
  // A consumer that sees a completion must also see its WQE's slot free (it may post
  // again into it at once): the retired counts go first.
  for (QueuePair* qp = retired_held_; qp;) {
    QueuePair* next = qp->next_retired;
    qp->retired_held = false;
    qp->next_retired = nullptr;
    qp->sq.PublishRetired();
    qp->rq.PublishRetired();
    qp = next;
  }
  retired_held_ = nullptr;
  for (SharedReceiveQueue* srq = srqs_retired_held_; srq;) {
    SharedReceiveQueue* next = srq->next_retired;
    srq->retired_held = false;
    srq->next_retired = nullptr;
    srq->wqes.PublishRetired();
    srq = next;
  }
  srqs_retired_held_ = nullptr;
  for (CompletionQueue* cq = cqs_held_; cq;) {
    CompletionQueue* next = cq->next_held;
    cq->held = false;
    cq->next_held = nullptr;
    cq->sink->Release();
    cq = next;
  }
  cqs_held_ = nullptr;
  cqs_held_tail_ = &cqs_held_;
}

int RoceDevice::Poll(uint64_t now_ns) {
  now_ = now_ns;
  int work = 0;
  // Retired counts and completions are published once, at the end of the pass.
  in_pass_ = true;
  if (!rx_waiting_.empty()) {
    // Datagrams that found no receive WQE last pass: the clients' rings have been drained
    // since. Still none now: dropped.
    rx_retry_.swap(rx_waiting_);
    rx_retrying_ = true;
    for (rte_mbuf* m : rx_retry_) Classify(m);
    rx_retrying_ = false;
    rx_retry_.clear();
  }
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
  // A page that vanished under a copy the engine does not check itself (a port reading
  // a zero-copy frame's payload, as DPDK's af_packet does into its ring): the MR is
  // poisoned before its next use. One relaxed load per pass.
  if (fault_guard::Generation() != faults_seen_) SyncFaults();
  in_pass_ = false;
  PublishHeld();
  work += static_cast<int>(counters_.tx_packets - before);
  // Frames still waiting for the port, or for a receive WQE, keep the engine polling.
  if (!tx_.empty() || !rx_waiting_.empty()) work++;
  return work;
}

}  // namespace vrdma::driver
