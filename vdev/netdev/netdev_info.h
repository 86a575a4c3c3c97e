// A Linux network interface as a vdev sees it: its MAC, MTU, state and addresses.
#pragma once

#include <array>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "driver/device.h"
#include "vdev/netdev/netns.h"

namespace vrdma::vdev {

struct NetdevInfo {
  std::string name;
  int ifindex = 0;
  driver::wire::MacAddr mac{};
  uint32_t mtu = 0;
  bool up = false;                           // administratively up and running
  bool admin_up = false;                     // administratively up (IFF_UP)
  std::vector<std::array<uint8_t, 4>> ipv4;  // in the kernel's order
  std::vector<driver::wire::Gid>
      ipv6;  // global and unique-local only: fe80::/10 is the default GID
  bool has_vlan = false;
  uint16_t vlan_id = 0;
};

// Reads the interface from the kernel (the caller's network namespace). NotFound for an
// interface that does not exist.
absl::StatusOr<NetdevInfo> ReadNetdev(std::string_view ifname);
// The same in `netns` (null: the caller's namespace), entered for the reading.
absl::StatusOr<NetdevInfo> ReadNetdevIn(const Netns* netns, std::string_view ifname);

// True when `upper` is `lower`, or is stacked on it (a macvlan, VLAN or ipvlan whose
// lower device is `lower`, directly or through other stacked devices), per sysfs'
// lower_* links.
bool NetdevSitsOn(std::string_view upper, std::string_view lower);

}  // namespace vrdma::vdev
