// EncodeHeaders lays out every header of a frame to send; SealFrame finishes it once the
// payload is in place (pad bytes, IPv4 checksum, ICRC).
#include <cstring>

#include "driver/wire/byte_order.h"
#include "driver/wire/codec.h"
#include "driver/wire/icrc.h"

namespace vrdma::driver::wire {
namespace {

uint8_t* EncodeEth(const EthHeader& eth, uint16_t ethertype, uint8_t* p) {
  std::memcpy(p, eth.dst.data(), 6);
  std::memcpy(p + 6, eth.src.data(), 6);
  p += 12;
  if (eth.has_vlan) {
    Store16(p, kEtherTypeVlan);
    Store16(p + 2, eth.vlan_tci);
    p += kVlanLen;
  }
  Store16(p, ethertype);
  return p + 2;
}

// GRH (RoCEv1) and IPv6 (RoCEv2) share a layout; only NxtHdr differs.
uint8_t* EncodeGrhOrIpv6(const NetHeader& net, uint16_t paylen, uint8_t next_header, uint8_t* p) {
  const uint32_t fl = net.flow_label & 0xfffff;
  p[0] = static_cast<uint8_t>(0x60 | (net.traffic_class >> 4));
  p[1] = static_cast<uint8_t>((net.traffic_class << 4) | (fl >> 16));
  Store16(p + 2, static_cast<uint16_t>(fl));
  Store16(p + 4, paylen);
  p[6] = next_header;
  p[7] = net.hop_limit;
  std::memcpy(p + 8, net.sgid.data(), 16);
  std::memcpy(p + 24, net.dgid.data(), 16);
  return p + kGrhLen;
}

// The checksum is left 0 here; SealFrame computes it.
uint8_t* EncodeIpv4(const NetHeader& net, uint16_t total_len, uint8_t* p) {
  p[0] = 0x45;
  p[1] = net.traffic_class;
  Store16(p + 2, total_len);
  Store16(p + 4, net.ipv4_id);
  Store16(p + 6, net.ipv4_dont_fragment ? 0x4000 : 0);
  p[8] = net.hop_limit;
  p[9] = kIpProtoUdp;
  Store16(p + 10, 0);
  std::memcpy(p + 12, &net.sgid[12], 4);  // IPv4-mapped GIDs carry the address last
  std::memcpy(p + 16, &net.dgid[12], 4);
  return p + kIpv4Len;
}

uint8_t* EncodeUdp(const NetHeader& net, uint16_t udp_len, uint8_t* p) {
  Store16(p, net.udp_src_port);
  Store16(p + 2, kRoceV2UdpPort);
  Store16(p + 4, udp_len);
  Store16(p + 6, net.udp_checksum);
  return p + kUdpLen;
}

uint8_t* EncodeBth(const Bth& bth, uint8_t* p) {  // IBTA 9.2
  p[0] = bth.opcode;
  p[1] = static_cast<uint8_t>((bth.solicited ? 0x80 : 0) | (bth.mig_req ? 0x40 : 0) |
                              ((bth.pad & 0x3) << 4) | (bth.tver & 0x0f));
  Store16(p + 2, bth.pkey);
  p[4] = static_cast<uint8_t>((bth.fecn ? 0x80 : 0) | (bth.becn ? 0x40 : 0));
  Store24(p + 5, bth.dest_qp & 0xffffff);
  p[8] = bth.ack_req ? 0x80 : 0;
  Store24(p + 9, bth.psn & 0xffffff);
  return p + kBthLen;
}

// Same order as parsing (IBTA 9.3): XRCETH, DETH, RETH, AtomicETH, AETH, AtomicAckETH,
// ImmDt, IETH.
uint8_t* EncodeExtHeaders(const RocePacket& pkt, uint16_t headers, uint8_t* p) {
  if (headers & kHdrXrceth) {
    p[0] = 0;
    Store24(p + 1, pkt.xrc_srqn & 0xffffff);
    p += kXrcethLen;
  }
  if (headers & kHdrDeth) {
    Store32(p, pkt.deth.qkey);
    p[4] = 0;
    Store24(p + 5, pkt.deth.src_qp & 0xffffff);
    p += kDethLen;
  }
  if (headers & kHdrReth) {
    Store64(p, pkt.reth.va);
    Store32(p + 8, pkt.reth.rkey);
    Store32(p + 12, pkt.reth.dma_len);
    p += kRethLen;
  }
  if (headers & kHdrAtomicEth) {
    Store64(p, pkt.atomic.va);
    Store32(p + 8, pkt.atomic.rkey);
    Store64(p + 12, pkt.atomic.swap_add);
    Store64(p + 20, pkt.atomic.compare);
    p += kAtomicEthLen;
  }
  if (headers & kHdrAeth) {
    p[0] = pkt.aeth.syndrome;
    Store24(p + 1, pkt.aeth.msn & 0xffffff);
    p += kAethLen;
  }
  if (headers & kHdrAtomicAckEth) {
    Store64(p, pkt.atomic_ack_orig);
    p += kAtomicAckEthLen;
  }
  if (headers & kHdrImmDt) {
    std::memcpy(p, &pkt.imm_be, sizeof(pkt.imm_be));
    p += kImmDtLen;
  }
  if (headers & kHdrIeth) {
    Store32(p, pkt.ieth_rkey);
    p += kIethLen;
  }
  return p;
}

}  // namespace

namespace {

// Where a frame's headers go and what its length fields count.
struct Layout {
  uint32_t header_len;
  uint32_t pad;
  uint32_t l3_off;
  uint32_t net_len;
  uint64_t frame_len;
  uint64_t l3_payload_len;  // what the IP/GRH length field counts
};

Layout LayOut(const RocePacket& pkt, uint32_t payload_len) {
  Layout l{};
  l.header_len = HeaderLength(pkt);
  l.pad = (4 - (payload_len & 3)) & 3;  // to a 4-byte boundary (IBTA 9.2)
  l.frame_len = uint64_t{l.header_len} + payload_len + l.pad + kIcrcLen;
  l.l3_off = kEthLen + (pkt.eth.has_vlan ? kVlanLen : 0);
  l.net_len = l.header_len - l.l3_off - kBthLen - GetOpcodeInfo(pkt.bth.opcode).ext_len;
  const uint64_t transport_len = l.frame_len - l.l3_off - l.net_len;  // BTH .. ICRC
  switch (pkt.net.type) {
    case NetworkType::kRoceV1:
      l.l3_payload_len = transport_len;
      break;
    case NetworkType::kRoceV2Ipv4:
      l.l3_payload_len = kIpv4Len + kUdpLen + transport_len;  // total length
      break;
    case NetworkType::kRoceV2Ipv6:
      l.l3_payload_len = kUdpLen + transport_len;
      break;
  }
  return l;
}

}  // namespace

uint32_t EncodeHeaders(RocePacket* pkt, uint32_t payload_len, uint8_t* buf, uint32_t cap) {
  const OpcodeInfo& info = GetOpcodeInfo(pkt->bth.opcode);
  const Layout l = LayOut(*pkt, payload_len);
  if (l.frame_len > cap || l.l3_payload_len > 0xffff) return 0;
  const NetHeader& net = pkt->net;

  pkt->bth.pad = static_cast<uint8_t>(l.pad);
  pkt->ext = info.headers;
  uint8_t* p = buf;
  switch (net.type) {
    case NetworkType::kRoceV1:
      p = EncodeEth(pkt->eth, kEtherTypeRoceV1, p);
      p = EncodeGrhOrIpv6(net, static_cast<uint16_t>(l.l3_payload_len), kGrhNextHeaderIbBth, p);
      break;
    case NetworkType::kRoceV2Ipv4:
      p = EncodeEth(pkt->eth, kEtherTypeIpv4, p);
      p = EncodeIpv4(net, static_cast<uint16_t>(l.l3_payload_len), p);
      p = EncodeUdp(net, static_cast<uint16_t>(l.l3_payload_len - kIpv4Len), p);
      break;
    case NetworkType::kRoceV2Ipv6:
      p = EncodeEth(pkt->eth, kEtherTypeIpv6, p);
      p = EncodeGrhOrIpv6(net, static_cast<uint16_t>(l.l3_payload_len), kIpProtoUdp, p);
      p = EncodeUdp(net, static_cast<uint16_t>(l.l3_payload_len), p);
      break;
  }
  p = EncodeBth(pkt->bth, p);
  EncodeExtHeaders(*pkt, info.headers, p);

  pkt->l3_off = static_cast<uint16_t>(l.l3_off);
  pkt->bth_off = static_cast<uint16_t>(l.l3_off + l.net_len);
  pkt->payload = buf + l.header_len;
  pkt->payload_len = payload_len;
  pkt->frame_len = static_cast<uint32_t>(l.frame_len);
  return l.header_len;
}

namespace {

void SealIpv4Header(uint8_t* frame, const RocePacket& pkt) {
  if (pkt.net.type != NetworkType::kRoceV2Ipv4) return;
  uint8_t* ip = frame + pkt.l3_off;
  Store16(ip + 10, 0);
  Store16(ip + 10, Ipv4HeaderChecksum(ip, kIpv4Len));
}

}  // namespace

void SealFrame(uint8_t* buf, const RocePacket& pkt, bool with_icrc) {
  const uint32_t icrc_off = pkt.frame_len - kIcrcLen;
  std::memset(buf + icrc_off - pkt.bth.pad, 0, pkt.bth.pad);
  SealIpv4Header(buf, pkt);
  // The CRC value goes out least significant byte first, as rdma_rxe writes it.
  StoreLe32(buf + icrc_off,
            with_icrc ? ComputeIcrc(buf, pkt.l3_off, pkt.frame_len, pkt.net.type) : 0);
}

void SealFrameGather(uint8_t* hdr, uint32_t hdr_len, const uint8_t* payload, uint32_t payload_len,
                     uint8_t* tail, const RocePacket& pkt, bool with_icrc) {
  std::memset(tail, 0, pkt.bth.pad);
  SealIpv4Header(hdr, pkt);
  StoreLe32(tail + pkt.bth.pad, with_icrc
                                    ? ComputeIcrcGather(hdr, pkt.l3_off, hdr_len, payload,
                                                        payload_len, pkt.bth.pad, pkt.net.type)
                                    : 0);
}

bool EncodeReceiveGrh(const RocePacket& pkt, uint32_t payload_len, uint8_t* grh) {
  const Layout l = LayOut(pkt, payload_len);
  if (l.l3_payload_len > 0xffff) return false;
  const uint16_t len = static_cast<uint16_t>(l.l3_payload_len);
  switch (pkt.net.type) {
    case NetworkType::kRoceV1:
      EncodeGrhOrIpv6(pkt.net, len, kGrhNextHeaderIbBth, grh);
      break;
    case NetworkType::kRoceV2Ipv6:
      EncodeGrhOrIpv6(pkt.net, len, kIpProtoUdp, grh);
      break;
    case NetworkType::kRoceV2Ipv4: {
      std::memset(grh, 0, kGrhLen - kIpv4Len);
      uint8_t* ip = grh + kGrhLen - kIpv4Len;
      EncodeIpv4(pkt.net, len, ip);
      Store16(ip + 10, Ipv4HeaderChecksum(ip, kIpv4Len));
      break;
    }
  }
  return true;
}

}  // namespace vrdma::driver::wire
