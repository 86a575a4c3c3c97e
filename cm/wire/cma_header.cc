// RDMA-CM's service IDs and struct cma_hdr, as Linux's drivers/infiniband/core/cma.c
// makes and reads them.
#include "cm/wire/cma_header.h"

#include <algorithm>

#include "absl/status/status.h"
#include "absl/strings/str_format.h"

namespace vrdma::cm::wire {
namespace {

// Offsets in struct cma_hdr.
constexpr size_t kVersionOffset = 0;
constexpr size_t kIpVersionOffset = 1;  // the high nibble; the low one is reserved
constexpr size_t kPortOffset = 2;       // big-endian
constexpr size_t kSrcAddrOffset = 4;
constexpr size_t kDstAddrOffset = 20;
constexpr size_t kAddrSize = 16;
// An IPv4 address is the last 4 bytes of its 16 (union cma_ip_addr: 12 bytes of pad).
constexpr size_t kIpv4Pad = 12;

bool IsIpPortSpace(uint16_t port_space) {
  return port_space == kPsIpoib || port_space == kPsTcp || port_space == kPsUdp ||
         port_space == kPsIb;
}

// Linux reads only the last 4 bytes of an IPv4 address; the pad carries nothing.
void ZeroIpv4Pad(std::array<uint8_t, kAddrSize>& addr) {
  std::fill_n(addr.begin(), kIpv4Pad, uint8_t{0});
}

std::array<uint8_t, kAddrSize> CopyAddr(std::span<const uint8_t> bytes, size_t offset) {
  std::array<uint8_t, kAddrSize> addr;
  std::copy_n(bytes.begin() + offset, kAddrSize, addr.begin());
  return addr;
}

}  // namespace

bool ParseIpServiceId(uint64_t service_id, uint16_t* port_space, uint16_t* port) {
  if ((service_id >> 32) != 0) return false;
  const auto space = static_cast<uint16_t>(service_id >> 16);
  if (!IsIpPortSpace(space)) return false;
  if (port_space != nullptr) *port_space = space;
  if (port != nullptr) *port = static_cast<uint16_t>(service_id);
  return true;
}

absl::StatusOr<CmaHeader> ParseCmaHeader(std::span<const uint8_t> private_data) {
  if (private_data.size() < kCmaHeaderSize) {
    return absl::InvalidArgumentError(
        absl::StrFormat("cma_hdr: %u bytes, shorter than the header", private_data.size()));
  }
  if (private_data[kVersionOffset] != kCmaVersion) {
    return absl::InvalidArgumentError(
        absl::StrFormat("cma_hdr: version %u, not %u", private_data[kVersionOffset], kCmaVersion));
  }
  CmaHeader header;
  header.ip_version = private_data[kIpVersionOffset] >> 4;
  if (header.ip_version != 4 && header.ip_version != 6) {
    return absl::InvalidArgumentError(
        absl::StrFormat("cma_hdr: IP version %u, neither 4 nor 6", header.ip_version));
  }
  header.src_port =
      static_cast<uint16_t>((private_data[kPortOffset] << 8) | private_data[kPortOffset + 1]);
  header.src_addr = CopyAddr(private_data, kSrcAddrOffset);
  header.dst_addr = CopyAddr(private_data, kDstAddrOffset);
  if (header.ip_version == 4) {
    ZeroIpv4Pad(header.src_addr);
    ZeroIpv4Pad(header.dst_addr);
  }
  return header;
}

void BuildCmaHeader(const CmaHeader& header, std::span<uint8_t, kCmaHeaderSize> out) {
  out[kVersionOffset] = kCmaVersion;
  out[kIpVersionOffset] = static_cast<uint8_t>(header.ip_version << 4);
  out[kPortOffset] = static_cast<uint8_t>(header.src_port >> 8);
  out[kPortOffset + 1] = static_cast<uint8_t>(header.src_port);
  std::array<uint8_t, kAddrSize> src = header.src_addr;
  std::array<uint8_t, kAddrSize> dst = header.dst_addr;
  if (header.ip_version == 4) {  // the pad is zero, whatever the struct holds there
    ZeroIpv4Pad(src);
    ZeroIpv4Pad(dst);
  }
  std::copy(src.begin(), src.end(), out.begin() + kSrcAddrOffset);
  std::copy(dst.begin(), dst.end(), out.begin() + kDstAddrOffset);
}

}  // namespace vrdma::cm::wire
