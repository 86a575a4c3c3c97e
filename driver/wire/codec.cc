// Codec helpers shared by parsing and encoding: header sizes, drop reason names, the
// IPv4 checksum and Linux's flow label / UDP source port conventions.
#include "driver/wire/codec.h"

namespace vrdma::driver::wire {

const char* DropReasonName(DropReason reason) {
  switch (reason) {
    case DropReason::kNone:
      return "none";
    case DropReason::kNotRoce:
      return "not_roce";
    case DropReason::kTruncated:
      return "truncated";
    case DropReason::kBadVlan:
      return "bad_vlan";
    case DropReason::kBadIpVersion:
      return "bad_ip_version";
    case DropReason::kBadIpHeader:
      return "bad_ip_header";
    case DropReason::kBadIpChecksum:
      return "bad_ip_checksum";
    case DropReason::kIpFragment:
      return "ip_fragment";
    case DropReason::kBadLength:
      return "bad_length";
    case DropReason::kBadTver:
      return "bad_tver";
    case DropReason::kUnsupportedOpcode:
      return "unsupported_opcode";
    case DropReason::kBadPad:
      return "bad_pad";
    case DropReason::kUnexpectedPayload:
      return "unexpected_payload";
    case DropReason::kBadIcrc:
      return "bad_icrc";
    case DropReason::kCount:
      break;
  }
  return "unknown";
}

uint32_t HeaderLength(const RocePacket& pkt) {
  uint32_t len = kEthLen + (pkt.eth.has_vlan ? kVlanLen : 0);
  switch (pkt.net.type) {
    case NetworkType::kRoceV1:
      len += kGrhLen;
      break;
    case NetworkType::kRoceV2Ipv4:
      len += kIpv4Len + kUdpLen;
      break;
    case NetworkType::kRoceV2Ipv6:
      len += kGrhLen + kUdpLen;
      break;
  }
  return len + kBthLen + GetOpcodeInfo(pkt.bth.opcode).ext_len;
}

uint16_t UdpSourcePort(uint32_t flow_label) {
  // The low 14 bits, with the top 6 of the 20-bit label folded into them, in the
  // dynamic port range 0xC000..0xFFFF.
  uint32_t low = flow_label & 0x3fff;
  uint32_t high = (flow_label & 0xfc000) >> 14;
  return static_cast<uint16_t>(0xc000 | (low ^ high));
}

uint32_t FlowLabelFromQpns(uint32_t lqpn, uint32_t rqpn) {
  // Symmetric in the two QPNs, so both ends of a connection derive the same label.
  uint64_t v = uint64_t{lqpn} * rqpn;
  v ^= v >> 20;
  v ^= v >> 40;
  return static_cast<uint32_t>(v & 0xfffff);
}

uint16_t Ipv4HeaderChecksum(const uint8_t* hdr, uint32_t len) {
  uint32_t sum = 0;
  uint32_t i = 0;
  for (; i + 1 < len; i += 2) sum += (uint32_t{hdr[i]} << 8) | hdr[i + 1];
  if (i < len) sum += uint32_t{hdr[i]} << 8;
  while (sum >> 16) sum = (sum & 0xffff) + (sum >> 16);
  return static_cast<uint16_t>(~sum);
}

}  // namespace vrdma::driver::wire
