#include "vdev/netdev/roce_gid_table.h"

namespace vrdma::vdev {

driver::wire::Gid LinkLocalGid(const driver::wire::MacAddr& m) {
  return {0xfe, 0x80, 0,    0,    0,    0,    0,   0, static_cast<uint8_t>(m[0] ^ 0x02),
          m[1], m[2], 0xff, 0xfe, m[3], m[4], m[5]};
}

std::vector<driver::GidEntry> BuildRoceGidTable(const NetdevInfo& info, size_t max_entries) {
  std::vector<driver::GidEntry> out;
  auto add_pair = [&](const driver::wire::Gid& gid, driver::wire::NetworkType v2_type) {
    // The kernel adds each address once per GID type the port supports: RoCEv1, then
    // RoCEv2 (roce_gid_mgmt.c, update_gid with the port's gid_type_mask).
    for (driver::wire::NetworkType t : {driver::wire::NetworkType::kRoceV1, v2_type}) {
      if (out.size() >= max_entries) return;
      driver::GidEntry e;
      e.valid = true;
      e.gid = gid;
      e.type = t;
      e.mac = info.mac;
      e.has_vlan = info.has_vlan;
      e.vlan_id = info.vlan_id;
      out.push_back(e);
    }
  };
  add_pair(LinkLocalGid(info.mac), driver::wire::NetworkType::kRoceV2Ipv6);
  for (const auto& v4 : info.ipv4) {
    driver::wire::Gid g{};
    g[10] = g[11] = 0xff;  // IPv4-mapped IPv6 address (RFC 4291 2.5.5.2)
    std::copy(v4.begin(), v4.end(), g.begin() + 12);
    add_pair(g, driver::wire::NetworkType::kRoceV2Ipv4);
  }
  for (const auto& v6 : info.ipv6) add_pair(v6, driver::wire::NetworkType::kRoceV2Ipv6);
  return out;
}

}  // namespace vrdma::vdev
