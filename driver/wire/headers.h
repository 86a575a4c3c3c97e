// Parsed RoCE packet headers, fields in host order. One struct serves parse and build,
// so a parsed packet re-encodes to the same bytes.
#pragma once

#include <array>
#include <cstdint>

#include "driver/wire/opcode.h"

namespace vrdma::driver::wire {

using Gid = std::array<uint8_t, 16>;
using MacAddr = std::array<uint8_t, 6>;

inline constexpr uint16_t kEtherTypeIpv4 = 0x0800;
inline constexpr uint16_t kEtherTypeIpv6 = 0x86dd;
inline constexpr uint16_t kEtherTypeVlan = 0x8100;
inline constexpr uint16_t kEtherTypeRoceV1 = 0x8915;  // IBTA annex A16
inline constexpr uint16_t kRoceV2UdpPort = 4791;      // IBTA annex A17.2.1
inline constexpr uint8_t kGrhNextHeaderIbBth = 0x1b;  // GRH NxtHdr for an IBA transport header
inline constexpr uint8_t kIpProtoUdp = 17;

inline constexpr uint32_t kEthLen = 14;
inline constexpr uint32_t kVlanLen = 4;
inline constexpr uint32_t kGrhLen = 40;  // also the IPv6 header length
inline constexpr uint32_t kIpv4Len = 20;
inline constexpr uint32_t kUdpLen = 8;

// A multicast GID: IPv6 multicast (ff00::/8), or an IPv4-mapped one (::ffff:224.0.0.0/4),
// as RoCEv2 carries IPv4 multicast (IBTA annex A17.4.5.2).
inline bool IsMulticastGid(const Gid& g) {
  if (g[0] == 0xff) return true;
  for (int i = 0; i < 10; ++i) {
    if (g[i]) return false;
  }
  return g[10] == 0xff && g[11] == 0xff && (g[12] & 0xf0) == 0xe0;
}
// The Ethernet address a multicast GID's frames go to: 01:00:5e and the low 23 bits of an
// IPv4 group (RFC 1112), 33:33 and the low 32 bits of an IPv6 one (RFC 2464).
inline MacAddr MulticastMac(const Gid& g) {
  if (g[0] == 0xff) return {0x33, 0x33, g[12], g[13], g[14], g[15]};
  return {0x01, 0x00, 0x5e, static_cast<uint8_t>(g[13] & 0x7f), g[14], g[15]};
}

// How the transport headers are carried (per GID table entry / per QP).
enum class NetworkType : uint8_t {
  kRoceV1 = 0,      // Ethernet + GRH (ethertype 0x8915)
  kRoceV2Ipv4 = 1,  // Ethernet + IPv4 + UDP 4791
  kRoceV2Ipv6 = 2,  // Ethernet + IPv6 + UDP 4791
};

struct EthHeader {
  MacAddr dst{};
  MacAddr src{};
  bool has_vlan = false;
  uint16_t vlan_tci = 0;  // PCP(3) DEI(1) VID(12)
};

// GRH for RoCEv1, IPv6 or IPv4 header for RoCEv2. GIDs of IPv4 endpoints are
// IPv4-mapped IPv6 addresses (::ffff:a.b.c.d), as in RoCE GID tables.
struct NetHeader {
  NetworkType type = NetworkType::kRoceV2Ipv4;
  Gid sgid{};
  Gid dgid{};
  uint8_t traffic_class = 0;  // GRH TClass / IPv6 traffic class / IPv4 TOS (DSCP|ECN)
  uint32_t flow_label = 0;    // 20 bits; GRH and IPv6 only
  uint8_t hop_limit = 64;     // GRH HopLmt / IPv6 hop limit / IPv4 TTL
  uint16_t ipv4_id = 0;       // IPv4 identification
  bool ipv4_dont_fragment = true;
  uint16_t udp_src_port = 0;  // RoCEv2 only; see UdpSourcePort()
  uint16_t udp_checksum = 0;  // as received (rxe sends 0); encoded as given
};

// Base Transport Header (IBTA 9.2).
struct Bth {
  uint8_t opcode = 0;
  bool solicited = false;  // SE
  bool mig_req = false;    // M
  uint8_t pad = 0;         // PadCnt, 0..3
  uint8_t tver = 0;        // transport header version, 0
  uint16_t pkey = 0xffff;
  bool fecn = false;
  bool becn = false;
  uint32_t dest_qp = 0;  // 24 bits
  bool ack_req = false;  // A
  uint32_t psn = 0;      // 24 bits
};

struct Reth {  // RDMA extended transport header (IBTA 9.3.3)
  uint64_t va = 0;
  uint32_t rkey = 0;
  uint32_t dma_len = 0;
};

struct Aeth {  // ACK extended transport header (IBTA 9.3.5)
  uint8_t syndrome = 0;
  uint32_t msn = 0;  // 24 bits
};

struct AtomicEth {  // IBTA 9.3.4
  uint64_t va = 0;
  uint32_t rkey = 0;
  uint64_t swap_add = 0;
  uint64_t compare = 0;
};

struct Deth {  // datagram extended transport header (IBTA 9.3.2)
  uint32_t qkey = 0;
  uint32_t src_qp = 0;  // 24 bits
};

struct RocePacket {
  EthHeader eth;
  NetHeader net;
  Bth bth;
  uint16_t ext = 0;  // ExtHeader bits present (derived from the opcode)
  Deth deth;
  Reth reth;
  AtomicEth atomic;
  Aeth aeth;
  uint64_t atomic_ack_orig = 0;  // AtomicAckETH original remote data
  uint32_t imm_be = 0;           // ImmDt exactly as on the wire (verbs keep it big-endian)
  uint32_t ieth_rkey = 0;        // IETH R_Key to invalidate
  uint32_t xrc_srqn = 0;         // XRCETH: the XRC SRQ a request is for (24 bits)

  // Filled by parsing (and by EncodeHeaders for the frame it lays out).
  const uint8_t* payload = nullptr;
  uint32_t payload_len = 0;  // excludes pad bytes and ICRC
  uint16_t l3_off = 0;       // offset of GRH / IP header
  uint16_t bth_off = 0;      // offset of BTH
  uint32_t frame_len = 0;    // whole frame including ICRC
};

// AETH syndrome (IBTA 9.7.5.1, table 43): bits 6..5 select the kind.
namespace aeth {
inline constexpr uint8_t kAck = 0x00;     // 000xxxxx: ACK, low 5 bits = credit count
inline constexpr uint8_t kRnrNak = 0x20;  // 001xxxxx: RNR NAK, low 5 bits = RNR timer
inline constexpr uint8_t kNak = 0x60;     // 011xxxxx: NAK, low 5 bits = NAK code
inline constexpr uint8_t kTypeMask = 0x60;
inline constexpr uint8_t kValueMask = 0x1f;
inline constexpr uint8_t kNakPsnSeqError = 0;
inline constexpr uint8_t kNakInvalidRequest = 1;
inline constexpr uint8_t kNakRemoteAccessError = 2;
inline constexpr uint8_t kNakRemoteOperationalError = 3;
inline constexpr uint8_t kNakInvalidRdRequest = 4;
inline constexpr uint8_t kCreditInvalid = 0x1f;  // "credit count not valid" (no end-to-end credits)
}  // namespace aeth

}  // namespace vrdma::driver::wire
