// The header fields of a received Ethernet frame that flow rules match on and receive-side
// scaling hashes (raw_packet.cc, rss.cc): addresses, an 802.1Q tag, IPv4 or IPv6, and the
// TCP or UDP ports of a first fragment.
#pragma once

#include <array>
#include <cstdint>
#include <cstring>

#include "driver/wire/headers.h"

namespace vrdma::driver {

using wire::kEtherTypeIpv4;
using wire::kEtherTypeIpv6;
using wire::kEtherTypeVlan;
inline constexpr uint8_t kProtoTcp = 6;
inline constexpr uint8_t kProtoUdp = wire::kIpProtoUdp;

inline uint16_t Load16(const uint8_t* p) { return static_cast<uint16_t>(p[0] << 8 | p[1]); }

// The header fields flow rules match on, read from a received frame.
struct FrameFields {
  const uint8_t* dst_mac = nullptr;
  const uint8_t* src_mac = nullptr;
  uint16_t ether_type = 0;
  uint16_t vlan_tag = 0;
  uint8_t ip_version = 0;
  std::array<uint8_t, 16> src_ip{}, dst_ip{};
  uint8_t proto = 0, tos = 0, hop_limit = 0;
  uint32_t flow_label = 0;
  bool has_ports = false;
  uint16_t src_port = 0, dst_port = 0;
};

// `len` is at least an Ethernet header (14 bytes).
inline FrameFields ReadFields(const uint8_t* f, uint32_t len) {
  FrameFields out;
  out.dst_mac = f;
  out.src_mac = f + 6;
  uint32_t off = 12;
  out.ether_type = Load16(f + off);
  off += 2;
  if (out.ether_type == kEtherTypeVlan && len >= off + 4) {
    out.vlan_tag = Load16(f + off);
    out.ether_type = Load16(f + off + 2);
    off += 4;
  }
  const uint8_t* ip = f + off;
  uint32_t l4 = 0;
  if (out.ether_type == kEtherTypeIpv4 && len >= off + 20 && (ip[0] >> 4) == 4) {
    uint32_t ihl = (ip[0] & 0xfu) * 4;
    if (ihl < 20 || len < off + ihl) return out;
    out.ip_version = 4;
    out.tos = ip[1];
    out.hop_limit = ip[8];
    out.proto = ip[9];
    std::memcpy(out.src_ip.data(), ip + 12, 4);
    std::memcpy(out.dst_ip.data(), ip + 16, 4);
    // Only the first fragment carries the ports.
    if ((Load16(ip + 6) & 0x1fff) == 0) l4 = off + ihl;
  } else if (out.ether_type == kEtherTypeIpv6 && len >= off + 40 && (ip[0] >> 4) == 6) {
    out.ip_version = 6;
    out.tos = static_cast<uint8_t>((ip[0] & 0xf) << 4 | ip[1] >> 4);
    out.flow_label = static_cast<uint32_t>(ip[1] & 0xf) << 16 | Load16(ip + 2);
    out.proto = ip[6];
    out.hop_limit = ip[7];
    std::memcpy(out.src_ip.data(), ip + 8, 16);
    std::memcpy(out.dst_ip.data(), ip + 24, 16);
    l4 = off + 40;
  }
  if (l4 && (out.proto == kProtoTcp || out.proto == kProtoUdp) && len >= l4 + 4) {
    out.has_ports = true;
    out.src_port = Load16(f + l4);
    out.dst_port = Load16(f + l4 + 2);
  }
  return out;
}

}  // namespace vrdma::driver
