// The RoCE GID table Linux builds for a netdev (drivers/infiniband/core/roce_gid_mgmt.c
// and cache.c), which a vdev's port mirrors.
#pragma once

#include <cstddef>
#include <vector>

#include "driver/device.h"
#include "vdev/netdev/netdev_info.h"

namespace vrdma::vdev {

// Index 0: the default GID fe80::<modified EUI-64 of the MAC> as RoCEv1, index 1 the
// same as RoCEv2; then, per IPv4 address, ::ffff:a.b.c.d as RoCEv1 and as RoCEv2; then
// per IPv6 address, RoCEv1 and RoCEv2. Every entry carries the MAC and VLAN. Entries
// beyond max_entries are left out.
std::vector<driver::GidEntry> BuildRoceGidTable(const NetdevInfo& info, size_t max_entries);

// fe80::/64 with the modified EUI-64 interface identifier of `mac` (RFC 4291 2.5.1).
driver::wire::Gid LinkLocalGid(const driver::wire::MacAddr& mac);

}  // namespace vrdma::vdev
