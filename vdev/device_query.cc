// Device, port and GID answers of vdevs and pdevs (device_query.h).
#include "vdev/device_query.h"

#include <algorithm>
#include <cstdio>
#include <cstring>

namespace vrdma::vdev {

proto::DeviceRecord DeviceRecordOf(const Vdev* vdev, const Pdev* pdev) {
  proto::DeviceRecord rec{};
  const Pdev& owner = vdev ? *vdev->pdev : *pdev;
  std::snprintf(rec.name, sizeof rec.name, "%s", vdev ? vdev->name.c_str() : pdev->name.c_str());
  std::snprintf(rec.pdev, sizeof rec.pdev, "%s", owner.name.c_str());
  if (vdev) std::snprintf(rec.netdev, sizeof rec.netdev, "%s", vdev->netdev.c_str());
  rec.node_guid = vdev ? vdev->node_guid_be : pdev->node_guid_be;
  rec.type =
      static_cast<uint32_t>(vdev ? proto::DeviceType::kVirtual : proto::DeviceType::kPhysical);
  return rec;
}

void DeviceAttrOf(const Vdev* vdev, const Pdev* pdev, ibv_device_attr* out) {
  ibv_device_attr& a = *out;
  a = ibv_device_attr{};
  const Pdev& owner = vdev ? *vdev->pdev : *pdev;
  owner.device->QueryDevice(&a);
  std::snprintf(a.fw_ver, sizeof a.fw_ver, "vrdma 0.1.0");
  if (!vdev) {  // the whole device
    a.node_guid = pdev->node_guid_be;
    a.sys_image_guid = pdev->node_guid_be;
    return;
  }
  auto clamp = [&](int* field, Resource res) {
    uint64_t q = vdev->Quota(res);
    if (q < static_cast<uint64_t>(*field)) *field = static_cast<int>(q);
  };
  // A vdev reports its own provisioning, not the pdev's.
  clamp(&a.max_qp, Resource::kQp);
  clamp(&a.max_cq, Resource::kCq);
  clamp(&a.max_mr, Resource::kMr);
  clamp(&a.max_mw, Resource::kMr);  // windows count against the mr quota too
  clamp(&a.max_pd, Resource::kPd);
  clamp(&a.max_srq, Resource::kSrq);
  clamp(&a.max_ah, Resource::kAh);
  a.max_mr_size = std::min<uint64_t>(a.max_mr_size, vdev->Quota(Resource::kMrBytes));
  a.max_res_rd_atom = a.max_qp * a.max_qp_rd_atom;
  a.node_guid = vdev->node_guid_be;
  a.sys_image_guid = vdev->node_guid_be;
}

void PortAttrOf(const Vdev* vdev, const Pdev* pdev, ibv_port_attr* out) {
  *out = ibv_port_attr{};
  const Pdev& owner = vdev ? *vdev->pdev : *pdev;
  owner.device->QueryPort(out);
  // A pdev's port is its internal switch: no interface, so no addresses and no GIDs.
  out->gid_tbl_len = vdev ? static_cast<int>(kGidsPerVdev) : 0;
  if (!vdev) return;
  out->active_mtu = vdev->ActiveMtu();
  if (!vdev->link_up) {
    out->state = IBV_PORT_DOWN;
    out->phys_state = vdev->admin_up ? 2 : 3;  // Polling, Disabled (as rxe reports them)
  }
}

void GidTableOf(const Vdev* vdev, proto::QueryGidTableReply* out) {
  *out = proto::QueryGidTableReply{};
  if (!vdev) return;  // a pdev: no GIDs
  out->count = kGidsPerVdev;
  for (uint32_t i = 0; i < vdev->gids.size() && i < kGidsPerVdev; ++i) {
    const driver::GidEntry& g = vdev->gids[i];
    if (!g.valid) continue;
    std::memcpy(out->entries[i].gid, g.gid.data(), 16);
    out->entries[i].type =
        g.type == driver::wire::NetworkType::kRoceV1 ? IBV_GID_TYPE_ROCE_V1 : IBV_GID_TYPE_ROCE_V2;
    out->entries[i].ndev_ifindex = static_cast<uint32_t>(vdev->ifindex);
    out->entries[i].valid = 1;
  }
}

void CountersOf(const Vdev& vdev, uint64_t (&out)[proto::kDeviceCounterNames.size()]) {
  const VdevStats& s = vdev.stats;
  const uint64_t counters[] = {s.send_wqes,     s.recv_wqes,      s.completions,
                               s.rejected_wqes, s.cq_overruns,    s.async_events,
                               s.bad_requests,  s.quota_refusals, s.cgroup_refusals};
  static_assert(std::size(counters) == proto::kDeviceCounterNames.size());
  std::copy(std::begin(counters), std::end(counters), out);
}

CounterList PdevCounters(const Pdev& p) {
  const driver::DeviceCounters& c = p.device->counters();
  CounterList out = {
      {"rx_packets", c.rx_packets},       {"rx_bytes", c.rx_bytes},
      {"tx_packets", c.tx_packets},       {"tx_bytes", c.tx_bytes},
      {"tx_dropped", c.tx_dropped},       {"tx_zero_copy", c.tx_zero_copy},
      {"tx_port_busy", c.tx_port_busy},   {"rx_in_place", c.rx_in_place},
      {"direct_wqes", c.direct_wqes},     {"rx_unknown_qp", c.rx_unknown_qp},
      {"rx_not_for_us", c.rx_not_for_us}, {"rx_bad_pkey", c.rx_bad_pkey},
      {"rx_bad_qkey", c.rx_bad_qkey},     {"rx_wrong_transport", c.rx_wrong_transport},
      {"rx_wrong_path", c.rx_wrong_path}, {"rx_no_recv_wqe", c.rx_no_recv_wqe},
      {"rx_duplicate", c.rx_duplicate},   {"rx_out_of_sequence", c.rx_out_of_sequence},
      {"rnr_naks_sent", c.rnr_naks_sent}, {"seq_naks_sent", c.seq_naks_sent},
      {"naks_sent", c.naks_sent},         {"retransmits", c.retransmits},
      {"timeouts", c.timeouts},           {"rnr_naks_received", c.rnr_naks_received},
      {"cq_overruns", c.cq_overruns},     {"rx_bad_xrc_srq", c.rx_bad_xrc_srq},
      {"raw_tx_frames", c.raw_tx_frames}, {"raw_tx_spoofed", c.raw_tx_spoofed},
      {"raw_rx_frames", c.raw_rx_frames}, {"raw_rx_no_recv_wqe", c.raw_rx_no_recv_wqe},
  };
  // Frames that are not RoCE (the kernel's ARP, TCP, ... on a shared interface) are
  // counted apart from malformed RoCE.
  constexpr size_t kNotRoce = static_cast<size_t>(driver::wire::DropReason::kNotRoce);
  uint64_t parse_drops = 0;
  for (size_t i = 0; i < c.rx_parse_drops.size(); ++i) {
    if (i != kNotRoce) parse_drops += c.rx_parse_drops[i];
  }
  out.emplace_back("rx_not_roce", c.rx_parse_drops[kNotRoce]);
  out.emplace_back("rx_malformed", parse_drops);
  if (p.exception_port) {
    const driver::ExceptionCounters& e = p.exception_port->counters();
    out.emplace_back("to_kernel", e.to_kernel);
    out.emplace_back("from_kernel", e.from_kernel);
    out.emplace_back("kernel_dropped", e.dropped);
  }
  return out;
}

CounterList VdevCounters(const Vdev& v) {
  uint64_t values[proto::kDeviceCounterNames.size()];
  CountersOf(v, values);
  CounterList out;
  for (size_t i = 0; i < proto::kDeviceCounterNames.size(); ++i) {
    out.emplace_back(proto::kDeviceCounterNames[i], values[i]);
  }
  return out;
}

}  // namespace vrdma::vdev
