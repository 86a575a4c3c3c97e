// RDMA-CM's addressing on the IB CM (Linux's drivers/infiniband/core/cma.c, which every
// RDMA-CM peer speaks): the service ID a port space and port make, and the header
// RDMA-CM puts at the start of a REQ's or SIDR_REQ's private data, which carries the IP
// addresses and the source port of the connection.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <span>

#include "absl/status/statusor.h"

namespace vrdma::cm::wire {

// Port spaces (enum rdma_ucm_port_space).
inline constexpr uint16_t kPsIpoib = 0x0002;
inline constexpr uint16_t kPsTcp = 0x0106;
inline constexpr uint16_t kPsUdp = 0x0111;
inline constexpr uint16_t kPsIb = 0x013f;

// The service ID of (port space, port): ps << 16 | port, as RDMA_IP_PS_* (host order).
inline constexpr uint64_t ServiceIdOf(uint16_t port_space, uint16_t port) {
  return (static_cast<uint64_t>(port_space) << 16) | port;
}
// The port space and port of an RDMA-CM IP service ID; false when it is not one
// (the top 32 bits are zero and the port space one of the IP ones).
bool ParseIpServiceId(uint64_t service_id, uint16_t* port_space, uint16_t* port);

// struct cma_hdr: version 0, IP version in the high nibble of byte 1, the source port,
// then the source and destination addresses, 16 bytes each (an IPv4 address in the last 4).
inline constexpr size_t kCmaHeaderSize = 36;
inline constexpr uint8_t kCmaVersion = 0x00;

struct CmaHeader {
  uint8_t ip_version = 4;  // 4 or 6
  uint16_t src_port = 0;
  std::array<uint8_t, 16> src_addr{};  // IPv4: bytes 12..15
  std::array<uint8_t, 16> dst_addr{};
  bool operator==(const CmaHeader&) const = default;
};

// InvalidArgument when shorter than the header, the CMA version is not 0 or the IP
// version neither 4 nor 6.
absl::StatusOr<CmaHeader> ParseCmaHeader(std::span<const uint8_t> private_data);
void BuildCmaHeader(const CmaHeader& header, std::span<uint8_t, kCmaHeaderSize> out);

}  // namespace vrdma::cm::wire
