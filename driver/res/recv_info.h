// Where a received packet arrived: the RoCE fields Linux adds to a receive completion
// (struct ib_wc: network_hdr_type with IB_WC_WITH_NETWORK_HDR_TYPE, vlan_id with
// IB_WC_WITH_VLAN, smac with IB_WC_WITH_SMAC) plus the port GID table entry the packet
// was addressed to. The receive checks produce it for every packet they deliver; it
// travels with the packet to the receive completion, so the shared GSI QP1 can tell
// which interface (vdev) a MAD was for and answer over the same RoCE version and VLAN.
// ibv_wc has no room for it: it sits beside the completion (CompletionQueue,
// CompletionSink) and never reaches a client's ring.
#pragma once

#include <cstdint>

#include "driver/wire/headers.h"

namespace vrdma::driver {

struct RecvInfo {
  // False for completions that no received packet made (sends, flushes, local errors):
  // then the other fields mean nothing.
  bool valid = false;
  uint32_t gid_index = 0;  // the port GID table entry the packet was addressed to
  wire::NetworkType network_type = wire::NetworkType::kRoceV2Ipv4;  // RoCEv1, v2/IPv4, v2/IPv6
  bool has_vlan = false;
  uint16_t vlan_id = 0;  // 12-bit VID of the 802.1Q tag, when has_vlan
  wire::MacAddr smac{};  // the Ethernet source address
  bool operator==(const RecvInfo&) const = default;
};

}  // namespace vrdma::driver
