// The device object: construction, what ibv_query_device / ibv_query_port report, the
// port GID table, asynchronous events and the QP number space.
#include "driver/transport/device.h"

#include <algorithm>
#include <cstring>

#include "absl/strings/str_cat.h"

namespace vrdma::driver {
namespace {

// QPN 0 and 1 are the special QPs (IBTA 3.5.1); ordinary QPs start above them.
constexpr uint32_t kFirstQpn = 16;

}  // namespace

RoceDevice::RoceDevice(const RoceDeviceConfig& config) : cfg_(config) {
  const DeviceLimits& l = cfg_.limits;
  gids_.resize(l.gid_table_len);
  pds_.Reset(l.max_pd, 1);
  mrs_.Reset(l.max_mr, 1);
  mws_.Reset(l.max_mw, kMwHandleBase);
  cqs_.Reset(l.max_cq, 1);
  srqs_.Reset(l.max_srq, 1);
  xrcds_.Reset(l.max_xrcd, 1);
  ahs_.Reset(l.max_ah, 1);
  // One more slot than max_qp for the GSI QP1, which the device owns.
  qps_.Reset(l.max_qp, kFirstQpn);
  // Room for a burst the port refused plus what the QPs made before they saw it.
  tx_.reserve(4u * cfg_.tx_burst + 2u * cfg_.qp_tx_budget);
  tx_chains_ = cfg_.port && cfg_.port->TxChains();
  rx_in_place_ = tx_chains_ && cfg_.port->TurnsAround();
  hairpin_.reserve(kHairpinDepth);
  hairpin_rx_.reserve(kHairpinDepth);
  rx_waiting_.reserve(kRxWaitingDepth);
  rx_retry_.reserve(kRxWaitingDepth);
  events_.Init(1024);
}

RoceDevice::~RoceDevice() {
  for (rte_mbuf* m : tx_) rte_pktmbuf_free(m);
  for (rte_mbuf* m : hairpin_) rte_pktmbuf_free(m);
  for (rte_mbuf* m : rx_waiting_) rte_pktmbuf_free(m);
}

void RoceDevice::QueryDevice(ibv_device_attr* attr) const {
  const DeviceLimits& l = cfg_.limits;
  *attr = ibv_device_attr{};
  // vendor_id is an IEEE OUI (ibv_query_device(3)). 0x767264 ("vrd") has the
  // locally-administered bit of its first octet set, so it is no assigned vendor's; a
  // program that picks quirks by vendor finds none (rxe answers 0xffffff the same way).
  attr->vendor_id = kVendorId;
  attr->vendor_part_id = kVendorPartId;
  attr->hw_ver = 1;
  attr->max_mr_size = l.max_mr_size;
  attr->page_size_cap = 0xfffff000;  // any page size from 4 KiB
  attr->max_qp = static_cast<int>(l.max_qp);
  attr->max_qp_wr = static_cast<int>(l.max_qp_wr);
  // RNR NAK generation and port state change events, as RoCE NICs report.
  // Memory windows of type 1 and 2B (bound to one QP), as rxe.
  attr->device_cap_flags = IBV_DEVICE_RC_RNR_NAK_GEN | IBV_DEVICE_PORT_ACTIVE_EVENT |
                           IBV_DEVICE_SYS_IMAGE_GUID | IBV_DEVICE_CHANGE_PHY_PORT |
                           IBV_DEVICE_MEM_WINDOW | IBV_DEVICE_MEM_WINDOW_TYPE_2B | IBV_DEVICE_XRC;
  attr->max_sge = static_cast<int>(l.max_sge);
  attr->max_sge_rd = static_cast<int>(l.max_sge);
  attr->max_cq = static_cast<int>(l.max_cq);
  attr->max_cqe = static_cast<int>(l.max_cqe);
  attr->max_mr = static_cast<int>(l.max_mr);
  attr->max_mw = static_cast<int>(l.max_mw);
  attr->max_pd = static_cast<int>(l.max_pd);
  attr->max_qp_rd_atom = static_cast<int>(l.max_qp_rd_atom);
  attr->max_qp_init_rd_atom = static_cast<int>(l.max_qp_init_rd_atom);
  attr->max_res_rd_atom = static_cast<int>(l.max_qp_rd_atom * l.max_qp);
  attr->atomic_cap = IBV_ATOMIC_HCA;  // atomic with respect to this device's accesses
  attr->max_ah = static_cast<int>(l.max_ah);
  attr->max_srq = static_cast<int>(l.max_srq);
  attr->max_srq_wr = static_cast<int>(l.max_srq_wr);
  attr->max_srq_sge = static_cast<int>(l.max_srq_sge);
  attr->max_mcast_grp = static_cast<int>(kMaxMcastGroups);
  attr->max_mcast_qp_attach = static_cast<int>(kMaxMcastQpAttach);
  attr->max_total_mcast_qp_attach = static_cast<int>(kMaxMcastGroups * kMaxMcastQpAttach);
  attr->max_pkeys = 1;
  attr->local_ca_ack_delay = 15;
  attr->phys_port_cnt = 1;
}

void RoceDevice::QueryPort(ibv_port_attr* attr) const {
  *attr = ibv_port_attr{};
  attr->state = IBV_PORT_ACTIVE;
  attr->max_mtu = IBV_MTU_4096;
  attr->active_mtu = cfg_.port_mtu;
  attr->gid_tbl_len = static_cast<int>(gids_.size());
  attr->port_cap_flags = IBV_PORT_CM_SUP;
  attr->max_msg_sz = 1u << 31;
  attr->pkey_tbl_len = 1;
  attr->lid = 0;  // RoCE has no LIDs
  attr->lmc = 0;
  attr->max_vl_num = 1;
  attr->active_width = 2;   // 4x
  attr->active_speed = 32;  // 25 Gb/s per lane (EDR), i.e. a 100 Gb/s port
  attr->phys_state = 5;     // LinkUp
  attr->link_layer = IBV_LINK_LAYER_ETHERNET;
}

absl::Status RoceDevice::SetGid(uint32_t index, const GidEntry& entry) {
  if (index >= gids_.size()) {
    return absl::OutOfRangeError(
        absl::StrCat("GID index ", index, " beyond table of ", gids_.size()));
  }
  // Receive steering looks GIDs up by value (the first index holding each): the index is
  // kept up to date entry by entry, so that a table of a thousand vdevs is filled in
  // linear time (a control-path call).
  const GidEntry old = gids_[index];
  gids_[index] = entry;
  path_epoch_++;  // where frames arrive may have changed (QueuePair::dest_epoch)
  if (old.valid) {
    RefLocalMac(old.mac, -1);
    auto it = gid_lookup_.find(GidKey{old.gid, old.type});
    if (it != gid_lookup_.end() && it->second == index) {
      gid_lookup_.erase(it);
      for (uint32_t i = 0; i < gids_.size(); ++i) {  // another entry with the same GID
        if (gids_[i].valid && gids_[i].gid == old.gid && gids_[i].type == old.type) {
          gid_lookup_.emplace(GidKey{old.gid, old.type}, i);
          break;
        }
      }
    }
  }
  if (entry.valid) {
    RefLocalMac(entry.mac, +1);
    auto [it, added] = gid_lookup_.emplace(GidKey{entry.gid, entry.type}, index);
    if (!added && index < it->second) it->second = index;
  }
  return absl::OkStatus();
}

void RoceDevice::RefLocalMac(const wire::MacAddr& mac, int delta) {
  uint64_t key = 0;
  std::memcpy(&key, mac.data(), mac.size());
  uint32_t& refs = local_mac_refs_[key];
  refs = static_cast<uint32_t>(static_cast<int>(refs) + delta);
  if (refs != 0 && !(delta > 0 && refs == 1)) return;  // the set of MACs did not change
  if (refs == 0) local_mac_refs_.erase(key);
  local_macs_.clear();
  if (local_mac_refs_.size() > kLocalMacScan) return;
  for (const auto& [k, n] : local_mac_refs_) {
    wire::MacAddr m;
    std::memcpy(m.data(), &k, m.size());
    local_macs_.push_back(m);
  }
}

const GidEntry* RoceDevice::GetGid(uint32_t index) const {
  if (index >= gids_.size() || !gids_[index].valid) return nullptr;
  return &gids_[index];
}

QueuePair* RoceDevice::LookupQp(uint32_t qpn) const {
  if (qpn == 1) return gsi_slot_ ? qps_.Get(gsi_slot_) : nullptr;
  return qpn >= kFirstQpn ? qps_.Get(qpn) : nullptr;
}

bool RoceDevice::PollAsyncEvent(AsyncEvent* event) {
  if (events_.empty()) return false;
  *event = events_.front();
  events_.Pop();
  return true;
}

void RoceDevice::PostEvent(ibv_event_type type, uint32_t element) {
  if (events_.full()) return;  // oldest events are kept; a flood is not reported twice
  events_.next_free() = AsyncEvent{type, element};
  events_.Commit();
}

}  // namespace vrdma::driver
