// The paths and texts of the kernel's RDMA sysfs (drivers/infiniband/core/sysfs.c), for the
// sysfs view of vrdma devices (sysfs_view.h): which paths are the view's, and for each
// attribute what the kernel's show() writes, newline included.
#pragma once

#include <infiniband/verbs.h>

#include <cstdint>
#include <string>
#include <string_view>

namespace vrdma::provider::sysfs {

// The part of `path` after "/sys/class/" when it names /sys/class/infiniband,
// /sys/class/infiniband_verbs or /sys/class/infiniband_mad or something in them
// ("infiniband/vdev_a/node_guid"), else an empty view.
std::string_view ClassPath(const char* path);

// node_guid, sys_image_guid: four groups of four hex digits, from the network-order GUID.
std::string Guid(uint64_t guid_be);
// gids/N: eight groups of four hex digits (%pI6).
std::string Gid(const uint8_t gid[16]);
// gid_attrs/types/N: "IB/RoCE v1" or "RoCE v2".
std::string GidType(uint32_t ibv_gid_type);
// state: "4: ACTIVE"; phys_state: "5: LinkUp".
std::string PortState(uint32_t state);
std::string PhysState(uint32_t phys_state);
// rate: "100 Gb/sec (4X EDR)", from active_speed and active_width.
std::string Rate(uint8_t active_speed, uint8_t active_width);
// link_layer: "Ethernet" or "InfiniBand".
std::string LinkLayer(uint8_t link_layer);
// node_type: "1: CA".
std::string NodeType();

}  // namespace vrdma::provider::sysfs
