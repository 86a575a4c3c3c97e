// Mbuf pools for RoCE frames.
#pragma once

#include <rte_mbuf.h>

#include <cstdint>

#include "absl/status/statusor.h"

namespace vrdma {

// Data room of one mbuf: the largest RoCE frame (MTU 4096 payload, Ethernet+VLAN,
// IPv6/GRH, UDP, BTH, RETH+ImmDt, pad, ICRC) fits in one segment.
inline constexpr uint16_t kFrameDataRoom = 4352;

absl::StatusOr<rte_mempool*> CreatePacketPool(const char* name, uint32_t count);

}  // namespace vrdma
