// A physical RDMA device as vrdmad owns it: one engine (driver/ Device) on one port.
// The embedded default is a device whose port is its internal switch: vdevs on it talk
// to each other with the full RoCE protocol and no NIC.
#pragma once

#include <rte_mempool.h>

#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "driver/port/packet_port.h"
#include "driver/transport/device.h"
#include "vdev/protocol/protocol.h"

namespace vrdma {

// GID table entries of the device reserved for each vdev (its port's whole table).
inline constexpr uint32_t kGidsPerVdev = proto::kMaxGids;
inline constexpr uint32_t kMaxVdevsPerPdev = 64;

struct Pdev {
  std::string name;
  std::string kind;  // "internal-switch"; later issues add real ports
  uint64_t node_guid_be = 0;  // set by Registry::AddPdev
  rte_mempool* pool = nullptr;
  std::unique_ptr<PacketPort> port;
  std::unique_ptr<Device> device;
  std::vector<bool> gid_block_used = std::vector<bool>(kMaxVdevsPerPdev);

  // The embedded default: a Device on an internal switch, ICRC left to the "port" (the
  // frames never leave the device).
  static absl::StatusOr<std::unique_ptr<Pdev>> CreateEmbedded(const std::string& name);
  ~Pdev();
};

}  // namespace vrdma
