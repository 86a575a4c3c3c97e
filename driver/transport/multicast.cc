// Multicast (ibv_attach_mcast, ibv_detach_mcast): UD QPs attached to a multicast GID
// receive every datagram sent to it with destination QPN 0xFFFFFF (IBTA 10.5.2.3, C10-19;
// RoCE: annex A16/A17, the group's Ethernet multicast address). A datagram goes to each
// attached QP through the UD receive checks (P_Key, Q_Key, a receive WQE), the sender's
// own QP included when attached, as rdma_rxe delivers it.
#include <algorithm>

#include "driver/transport/device.h"
#include "driver/transport/errors.h"

namespace vrdma::driver {

absl::Status RoceDevice::AttachMcast(uint32_t qpn, const wire::Gid& mgid) {
  QueuePair* qp = LookupQp(qpn);
  if (!qp) return NotFound("QP", qpn);
  if (qp->type != IBV_QPT_UD)
    return absl::InvalidArgumentError("only UD QPs join multicast groups");
  if (!wire::IsMulticastGid(mgid)) return absl::InvalidArgumentError("not a multicast GID");
  auto it = mcast_groups_.find(mgid);
  if (it == mcast_groups_.end()) {
    if (mcast_groups_.size() >= kMaxMcastGroups) {
      return absl::ResourceExhaustedError("multicast group table full");
    }
    it = mcast_groups_.emplace(mgid, std::vector<uint32_t>{}).first;
  }
  std::vector<uint32_t>& qps = it->second;
  if (std::find(qps.begin(), qps.end(), qpn) != qps.end()) return absl::OkStatus();  // joined
  if (qps.size() >= kMaxMcastQpAttach) {
    return absl::ResourceExhaustedError("multicast group has its QPs");
  }
  qps.push_back(qpn);
  return absl::OkStatus();
}

absl::Status RoceDevice::DetachMcast(uint32_t qpn, const wire::Gid& mgid) {
  auto it = mcast_groups_.find(mgid);
  if (it == mcast_groups_.end()) return absl::InvalidArgumentError("no such multicast group");
  std::vector<uint32_t>& qps = it->second;
  auto q = std::find(qps.begin(), qps.end(), qpn);
  if (q == qps.end()) return absl::InvalidArgumentError("QP not attached to the group");
  qps.erase(q);
  if (qps.empty()) mcast_groups_.erase(it);
  return absl::OkStatus();
}

void RoceDevice::DetachAllOf(uint32_t qpn) {
  for (auto it = mcast_groups_.begin(); it != mcast_groups_.end();) {
    std::erase(it->second, qpn);
    it = it->second.empty() ? mcast_groups_.erase(it) : std::next(it);
  }
}

void RoceDevice::DeliverMulticast(const wire::RocePacket& pkt) {
  auto it = mcast_groups_.find(pkt.net.dgid);
  if (it == mcast_groups_.end() || !(pkt.eth.dst[0] & 1)) {
    counters_.rx_not_for_us++;
    return;
  }
  if (rx_may_hold_ && rx_waiting_.size() < kRxWaitingDepth) {
    // A QP that would take it but has no receive WQE yet: the whole datagram waits one
    // pass for the next drain of the clients' rings (OnUdRequest), so that no QP gets
    // it twice.
    for (uint32_t qpn : it->second) {
      const QueuePair* qp = LookupQp(qpn);
      if (qp && ReceivesRequests(qp->state) && PkeyMatches(pkt.bth.pkey, qp->pkey) &&
          pkt.deth.qkey == qp->qkey && !NextRecv(*qp)) {
        rx_held_ = true;
        return;
      }
    }
  }
  rx_may_hold_ = false;  // delivered now: no QP holds it
  for (uint32_t qpn : it->second) {
    QueuePair* qp = LookupQp(qpn);
    if (!qp || !ReceivesRequests(qp->state)) continue;
    if (!PkeyMatches(pkt.bth.pkey, qp->pkey)) {
      counters_.rx_bad_pkey++;
      continue;
    }
    // Where it arrived, for the completion: the QP's own device's first GID entry.
    RecvInfo info;
    info.valid = true;
    info.gid_index = qp->init.gid_first;
    info.network_type = pkt.net.type;
    info.has_vlan = pkt.eth.has_vlan;
    info.vlan_id = pkt.eth.vlan_tci & 0xfff;
    info.smac = pkt.eth.src;
    OnUdRequest(*qp, pkt, info);
  }
}

}  // namespace vrdma::driver
