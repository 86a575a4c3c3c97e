// ParseFrame: every read is preceded by a bounds check against the frame (Ethernet,
// VLAN, network header) or against the end of the RoCE packet that the IP/GRH length
// announces (UDP, BTH, extended headers, payload, ICRC). Frames may carry Ethernet
// padding after that end; it is ignored.
#include <cstring>

#include "driver/wire/byte_order.h"
#include "driver/wire/codec.h"
#include "driver/wire/icrc.h"

namespace vrdma::driver::wire {
namespace {

constexpr uint16_t kEtherTypeQinQ = 0x88a8;  // 802.1ad service tag

// Where the transport part of the packet lies, once the network header is accepted.
struct Span {
  uint32_t bth_off = 0;
  uint32_t end = 0;  // one past the ICRC
};

Gid Ipv4MappedGid(const uint8_t* addr) {
  Gid gid{};
  gid[10] = 0xff;
  gid[11] = 0xff;
  std::memcpy(&gid[12], addr, 4);
  return gid;
}

// RoCEv1: a GRH follows the Ethernet header (IBTA annex A16.2, 8.3).
DropReason ParseGrh(const uint8_t* frame, uint32_t len, uint32_t total, uint32_t off,
                    NetHeader* net, Span* span) {
  if (len - off < kGrhLen) return DropReason::kTruncated;
  const uint8_t* g = frame + off;
  if ((g[0] >> 4) != 6) return DropReason::kBadIpHeader;  // IPVer
  if (g[6] != kGrhNextHeaderIbBth) return DropReason::kBadIpHeader;
  const uint32_t paylen = Load16(g + 4);
  if (paylen > total - off - kGrhLen) return DropReason::kBadLength;
  net->type = NetworkType::kRoceV1;
  net->traffic_class = static_cast<uint8_t>((g[0] << 4) | (g[1] >> 4));
  net->flow_label = Load24(g + 1) & 0xfffff;
  net->hop_limit = g[7];
  std::memcpy(net->sgid.data(), g + 8, 16);
  std::memcpy(net->dgid.data(), g + 24, 16);
  span->bth_off = off + kGrhLen;
  span->end = off + kGrhLen + paylen;
  return DropReason::kNone;
}

// RoCEv2 over IPv4 (annex A17.4). A non-first fragment has no UDP header to tell
// whether it is RoCE; it is reported as kIpFragment.
DropReason ParseIpv4(const uint8_t* frame, uint32_t len, uint32_t total_len, uint32_t off,
                     NetHeader* net, Span* span) {
  if (len - off < kIpv4Len) return DropReason::kTruncated;
  const uint8_t* ip = frame + off;
  if ((ip[0] >> 4) != 4) return DropReason::kBadIpVersion;
  if (ip[9] != kIpProtoUdp) return DropReason::kNotRoce;
  const uint32_t ihl = (ip[0] & 0x0fu) * 4;
  if (ihl < kIpv4Len) return DropReason::kBadIpHeader;
  const uint16_t frag = Load16(ip + 6);
  const bool more_fragments = (frag & 0x2000) != 0;
  if ((frag & 0x1fff) != 0) return DropReason::kIpFragment;
  if (len - off < ihl + kUdpLen) return DropReason::kTruncated;
  const uint8_t* udp = ip + ihl;
  if (Load16(udp + 2) != kRoceV2UdpPort) return DropReason::kNotRoce;
  if (ihl != kIpv4Len) return DropReason::kBadIpHeader;  // options
  if (more_fragments) return DropReason::kIpFragment;
  if (Ipv4HeaderChecksum(ip, kIpv4Len) != 0) return DropReason::kBadIpChecksum;
  const uint32_t total = Load16(ip + 2);
  if (total < kIpv4Len + kUdpLen || total > total_len - off) return DropReason::kBadLength;
  if (Load16(udp + 4) != total - kIpv4Len) return DropReason::kBadLength;
  net->type = NetworkType::kRoceV2Ipv4;
  net->traffic_class = ip[1];
  net->ipv4_id = Load16(ip + 4);
  net->ipv4_dont_fragment = (frag & 0x4000) != 0;
  net->hop_limit = ip[8];
  net->flow_label = 0;
  net->sgid = Ipv4MappedGid(ip + 12);
  net->dgid = Ipv4MappedGid(ip + 16);
  net->udp_src_port = Load16(udp);
  net->udp_checksum = Load16(udp + 6);
  span->bth_off = off + kIpv4Len + kUdpLen;
  span->end = off + total;
  return DropReason::kNone;
}

// RoCEv2 over IPv6 (annex A17.4): UDP directly after the fixed header.
DropReason ParseIpv6(const uint8_t* frame, uint32_t len, uint32_t total, uint32_t off,
                     NetHeader* net, Span* span) {
  if (len - off < kGrhLen) return DropReason::kTruncated;
  const uint8_t* ip = frame + off;
  if ((ip[0] >> 4) != 6) return DropReason::kBadIpVersion;
  if (ip[6] != kIpProtoUdp) return DropReason::kNotRoce;
  if (len - off < kGrhLen + kUdpLen) return DropReason::kTruncated;
  const uint8_t* udp = ip + kGrhLen;
  if (Load16(udp + 2) != kRoceV2UdpPort) return DropReason::kNotRoce;
  const uint32_t paylen = Load16(ip + 4);
  if (paylen < kUdpLen || paylen > total - off - kGrhLen) return DropReason::kBadLength;
  if (Load16(udp + 4) != paylen) return DropReason::kBadLength;
  net->type = NetworkType::kRoceV2Ipv6;
  net->traffic_class = static_cast<uint8_t>((ip[0] << 4) | (ip[1] >> 4));
  net->flow_label = Load24(ip + 1) & 0xfffff;
  net->hop_limit = ip[7];
  std::memcpy(net->sgid.data(), ip + 8, 16);
  std::memcpy(net->dgid.data(), ip + 24, 16);
  net->udp_src_port = Load16(udp);
  net->udp_checksum = Load16(udp + 6);
  span->bth_off = off + kGrhLen + kUdpLen;
  span->end = off + kGrhLen + paylen;
  return DropReason::kNone;
}

void ParseBth(const uint8_t* b, Bth* bth) {  // IBTA 9.2, figure 47
  bth->opcode = b[0];
  bth->solicited = (b[1] & 0x80) != 0;
  bth->mig_req = (b[1] & 0x40) != 0;
  bth->pad = (b[1] >> 4) & 0x3;
  bth->tver = b[1] & 0x0f;
  bth->pkey = Load16(b + 2);
  bth->fecn = (b[4] & 0x80) != 0;
  bth->becn = (b[4] & 0x40) != 0;
  bth->dest_qp = Load24(b + 5);
  bth->ack_req = (b[8] & 0x80) != 0;
  bth->psn = Load24(b + 9);
}

// Extended headers in the order IBTA 9.3 lays them out after the BTH: XRCETH (annex A14:
// right after the BTH), DETH, RETH or AtomicETH, AETH, AtomicAckETH, ImmDt or IETH.
void ParseExtHeaders(const uint8_t* p, uint16_t headers, RocePacket* out) {
  if (headers & kHdrXrceth) {
    out->xrc_srqn = Load24(p + 1);
    p += kXrcethLen;
  }
  if (headers & kHdrDeth) {
    out->deth.qkey = Load32(p);
    out->deth.src_qp = Load24(p + 5);
    p += kDethLen;
  }
  if (headers & kHdrReth) {
    out->reth.va = Load64(p);
    out->reth.rkey = Load32(p + 8);
    out->reth.dma_len = Load32(p + 12);
    p += kRethLen;
  }
  if (headers & kHdrAtomicEth) {
    out->atomic.va = Load64(p);
    out->atomic.rkey = Load32(p + 8);
    out->atomic.swap_add = Load64(p + 12);
    out->atomic.compare = Load64(p + 20);
    p += kAtomicEthLen;
  }
  if (headers & kHdrAeth) {
    out->aeth.syndrome = p[0];
    out->aeth.msn = Load24(p + 1);
    p += kAethLen;
  }
  if (headers & kHdrAtomicAckEth) {
    out->atomic_ack_orig = Load64(p);
    p += kAtomicAckEthLen;
  }
  if (headers & kHdrImmDt) {
    std::memcpy(&out->imm_be, p, sizeof(out->imm_be));
    p += kImmDtLen;
  }
  if (headers & kHdrIeth) {
    out->ieth_rkey = Load32(p);
  }
}

// BTH, extended headers, payload and pad in [span.bth_off, span.end - ICRC); `len` bytes
// of them are in `frame`, the rest (a detached frame's payload) at `detached`.
DropReason ParseTransport(const uint8_t* frame, uint32_t len, const uint8_t* detached,
                          const Span& span, RocePacket* out) {
  if (span.end - span.bth_off < kBthLen + kIcrcLen || len - span.bth_off < kBthLen) {
    return DropReason::kTruncated;
  }
  ParseBth(frame + span.bth_off, &out->bth);
  if (out->bth.tver != 0) return DropReason::kBadTver;
  const OpcodeInfo& info = GetOpcodeInfo(out->bth.opcode);
  if (!info.valid) return DropReason::kUnsupportedOpcode;
  const uint32_t payload_off = span.bth_off + kBthLen + info.ext_len;
  if (span.end - span.bth_off < kBthLen + info.ext_len + kIcrcLen || payload_off > len) {
    return DropReason::kTruncated;
  }
  // A detached frame's headers end exactly where its payload begins.
  if (detached && payload_off != len) return DropReason::kBadLength;
  out->ext = info.headers;
  ParseExtHeaders(frame + span.bth_off + kBthLen, info.headers, out);

  const uint32_t room = span.end - kIcrcLen - payload_off;  // payload + pad
  if ((info.flags & kOpPayload) == 0) {
    if (out->bth.pad != 0) return DropReason::kBadPad;
    if (room != 0) return DropReason::kUnexpectedPayload;
  } else if (out->bth.pad > room) {
    return DropReason::kBadPad;
  }
  out->payload = detached ? detached : frame + payload_off;
  out->payload_len = room - out->bth.pad;
  return DropReason::kNone;
}

}  // namespace

DropReason ParseFrame(const uint8_t* frame, uint32_t len, RocePacket* out, ParseOptions options) {
  *out = RocePacket{};
  if (len < kEthLen) return DropReason::kTruncated;
  std::memcpy(out->eth.dst.data(), frame, 6);
  std::memcpy(out->eth.src.data(), frame + 6, 6);
  uint16_t ethertype = Load16(frame + 12);
  uint32_t off = kEthLen;
  if (ethertype == kEtherTypeQinQ) return DropReason::kBadVlan;
  if (ethertype == kEtherTypeVlan) {
    if (len - off < kVlanLen) return DropReason::kTruncated;
    out->eth.has_vlan = true;
    out->eth.vlan_tci = Load16(frame + off);
    ethertype = Load16(frame + off + 2);
    off += kVlanLen;
    if (ethertype == kEtherTypeVlan || ethertype == kEtherTypeQinQ) return DropReason::kBadVlan;
  }
  out->l3_off = static_cast<uint16_t>(off);
  // Bytes of the frame, with a detached payload (never read here) counted.
  const uint32_t total = options.detached ? len + options.detached_len : len;

  Span span;
  DropReason r;
  switch (ethertype) {
    case kEtherTypeRoceV1:
      r = ParseGrh(frame, len, total, off, &out->net, &span);
      break;
    case kEtherTypeIpv4:
      r = ParseIpv4(frame, len, total, off, &out->net, &span);
      break;
    case kEtherTypeIpv6:
      r = ParseIpv6(frame, len, total, off, &out->net, &span);
      break;
    default:
      return DropReason::kNotRoce;
  }
  if (r != DropReason::kNone) return r;
  out->bth_off = static_cast<uint16_t>(span.bth_off);
  out->frame_len = span.end;

  r = ParseTransport(frame, len, options.detached, span, out);
  if (r != DropReason::kNone) return r;

  if (options.verify_icrc && !options.detached) {
    const uint32_t wire = LoadLe32(frame + span.end - kIcrcLen);
    if (ComputeIcrc(frame, off, span.end, out->net.type) != wire) return DropReason::kBadIcrc;
  }
  return DropReason::kNone;
}

}  // namespace vrdma::driver::wire
