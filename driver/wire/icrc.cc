// ICRC of RoCE packets. The CRC runs over a pseudo-packet: 64 bits of ones in place of
// the LRH, then the network headers and the BTH with their variant fields replaced by
// ones, then the rest of the packet up to the ICRC (IBTA 7.8.1; annex A16 for RoCEv1,
// annex A17.8 for RoCEv2). Matches rdma_rxe byte for byte.
#include "driver/wire/icrc.h"

#include <cstring>

#include "driver/wire/opcode.h"

namespace vrdma::driver::wire {
namespace {

constexpr uint32_t kMaxMaskedLen = kGrhLen + kUdpLen + kBthLen;
constexpr uint32_t kMaskedBufLen = 256;
static_assert(kMaskedBufLen >= kMaxMaskedLen);
constexpr uint32_t kPseudoLrhState = 0xdebb20e3;

// GRH and IPv6 share their first 8 bytes' layout: IPVer(4) TClass(8) FlowLabel(20)
// PayLen(16) NxtHdr(8) HopLmt(8). TClass, FlowLabel and HopLmt are variant.
void MaskGrhOrIpv6(uint8_t* h) {
  h[0] |= 0x0f;
  h[1] = h[2] = h[3] = 0xff;
  h[7] = 0xff;
}

// IPv4: TOS (DSCP+ECN), TTL and header checksum are variant (A17.8).
void MaskIpv4(uint8_t* h) {
  h[1] = 0xff;
  h[8] = 0xff;
  h[10] = h[11] = 0xff;
}

void MaskUdp(uint8_t* h) { h[6] = h[7] = 0xff; }  // UDP checksum

void MaskBth(uint8_t* h) { h[4] = 0xff; }  // resv8a: FECN, BECN, 6 reserved bits

}  // namespace

namespace {

// Copies the network headers and the BTH at frame + l3_off into buf with their variant
// fields set to ones; returns their length.
uint32_t MaskHeaders(const uint8_t* frame, uint32_t l3_off, NetworkType type, uint8_t* buf) {
  uint32_t net_len = 0;
  switch (type) {
    case NetworkType::kRoceV1:
      net_len = kGrhLen;
      break;
    case NetworkType::kRoceV2Ipv4:
      net_len = kIpv4Len + kUdpLen;
      break;
    case NetworkType::kRoceV2Ipv6:
      net_len = kGrhLen + kUdpLen;
      break;
  }
  std::memcpy(buf, frame + l3_off, net_len + kBthLen);
  switch (type) {
    case NetworkType::kRoceV1:
      MaskGrhOrIpv6(buf);
      break;
    case NetworkType::kRoceV2Ipv4:
      MaskIpv4(buf);
      MaskUdp(buf + kIpv4Len);
      break;
    case NetworkType::kRoceV2Ipv6:
      MaskGrhOrIpv6(buf);
      MaskUdp(buf + kGrhLen);
      break;
  }
  MaskBth(buf + net_len);
  return net_len + kBthLen;
}

}  // namespace

uint32_t ComputeIcrcGather(const uint8_t* frame, uint32_t l3_off, uint32_t hdr_end,
                           const uint8_t* payload, uint32_t payload_len, uint32_t pad,
                           NetworkType type) {
  uint8_t buf[kMaskedBufLen];
  const uint32_t masked_len = MaskHeaders(frame, l3_off, type, buf);
  const uint32_t rest_off = l3_off + masked_len;
  uint32_t crc = Crc32Update(kPseudoLrhState, buf, masked_len);
  crc = Crc32Update(crc, frame + rest_off, hdr_end - rest_off);
  crc = Crc32Update(crc, payload, payload_len);
  static constexpr uint8_t kZeros[4] = {};
  crc = Crc32Update(crc, kZeros, pad);
  return ~crc;
}

uint32_t ComputeIcrc(const uint8_t* frame, uint32_t l3_off, uint32_t frame_len, NetworkType type) {
  // The masked headers and the start of the rest go through one buffer, so even a
  // small packet is one call long enough for the carry-less-multiply path.
  uint8_t buf[kMaskedBufLen];
  const uint32_t masked_len = MaskHeaders(frame, l3_off, type, buf);
  const uint32_t rest_off = l3_off + masked_len;
  const uint32_t rest_len = frame_len - kIcrcLen - rest_off;
  const uint32_t head =
      rest_len < kMaskedBufLen - masked_len ? rest_len : kMaskedBufLen - masked_len;
  std::memcpy(buf + masked_len, frame + rest_off, head);

  // kPseudoLrhState: the CRC state after the 64 bits of ones standing for the LRH
  // (rdma_rxe's 0xdebb20e3; checked by crc32_test).
  uint32_t crc = Crc32Update(kPseudoLrhState, buf, masked_len + head);
  crc = Crc32Update(crc, frame + rest_off + head, rest_len - head);
  return ~crc;
}

}  // namespace vrdma::driver::wire
