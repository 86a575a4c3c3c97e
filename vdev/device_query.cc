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

}  // namespace vrdma::vdev
