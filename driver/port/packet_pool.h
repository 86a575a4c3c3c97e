// Mbuf pools for RoCE frames.
#pragma once

#include <rte_mbuf.h>

#include <cstdint>

#include "absl/status/statusor.h"

namespace vrdma::driver {

// Data room of one mbuf: the largest RoCE frame (MTU 4096 payload, Ethernet+VLAN,
// IPv6/GRH, UDP, BTH, RETH+ImmDt, pad, ICRC) fits in one segment.
inline constexpr uint16_t kFrameDataRoom = 4352;

// The largest RoCE header stack around a payload: Ethernet with a VLAN tag (18), IPv6
// or GRH (40), UDP (8), BTH (12), RETH (16), ImmDt (4), pad (3) and ICRC (4), rounded up.
inline constexpr uint32_t kMaxRoceOverhead = 108;

absl::StatusOr<rte_mempool*> CreatePacketPool(const char* name, uint32_t count,
                                              uint16_t data_room = kFrameDataRoom);

// A pool whose objects (mempool header, mbuf, headroom and data room) are exactly one
// page each and page-aligned, with no padding to spread objects across memory
// channels: an AF_XDP UMEM made of the pool's memory takes each object as one chunk.
absl::StatusOr<rte_mempool*> CreatePagePacketPool(const char* name, uint32_t count);
// The data room of a CreatePagePacketPool mbuf.
uint16_t PagePoolDataRoom();

}  // namespace vrdma::driver
