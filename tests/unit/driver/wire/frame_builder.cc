#include "tests/unit/driver/wire/frame_builder.h"

#include <cstring>

#include "driver/wire/icrc.h"
#include "driver/wire/opcode.h"

namespace vrdma::driver::wire::testing {
namespace {

uint16_t Be16(const std::vector<uint8_t>& f, size_t off) {
  return static_cast<uint16_t>((f[off] << 8) | f[off + 1]);
}

void Append(std::vector<uint8_t>* out, const std::vector<uint8_t>& f, size_t off, size_t n) {
  out->insert(out->end(), f.begin() + off, f.begin() + off + n);
}

Gid Mapped(uint8_t a, uint8_t b, uint8_t c, uint8_t d) {
  return Gid{0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, a, b, c, d};
}

}  // namespace

uint32_t ReferenceCrc32(uint32_t state, const uint8_t* data, size_t len) {
  for (size_t i = 0; i < len; ++i) {
    state ^= data[i];
    for (int bit = 0; bit < 8; ++bit) {
      state = (state & 1) ? (state >> 1) ^ 0xEDB88320u : state >> 1;
    }
  }
  return state;
}

uint32_t ReferenceIcrc(const std::vector<uint8_t>& f) {
  size_t off = 12;
  uint16_t ethertype = Be16(f, off);
  off += 2;
  if (ethertype == 0x8100) {
    ethertype = Be16(f, off + 2);
    off += 4;
  }
  // 64 bits of ones stand for the LRH that RoCE does not carry.
  std::vector<uint8_t> pseudo(8, 0xff);
  size_t end = 0;
  size_t bth = 0;
  if (ethertype == 0x8915) {  // RoCEv1: GRH
    Append(&pseudo, f, off, 40);
    uint8_t* g = &pseudo[8];
    g[0] |= 0x0f;               // TClass, high nibble
    g[1] = g[2] = g[3] = 0xff;  // TClass low nibble, FlowLabel
    g[7] = 0xff;                // HopLmt
    end = off + 40 + Be16(f, off + 4);
    bth = off + 40;
  } else if (ethertype == 0x0800) {  // RoCEv2 / IPv4 + UDP
    Append(&pseudo, f, off, 28);
    uint8_t* ip = &pseudo[8];
    ip[1] = 0xff;                    // TOS
    ip[8] = 0xff;                    // TTL
    ip[10] = ip[11] = 0xff;          // header checksum
    ip[20 + 6] = ip[20 + 7] = 0xff;  // UDP checksum
    end = off + Be16(f, off + 2);
    bth = off + 28;
  } else {  // RoCEv2 / IPv6 + UDP
    Append(&pseudo, f, off, 48);
    uint8_t* ip = &pseudo[8];
    ip[0] |= 0x0f;
    ip[1] = ip[2] = ip[3] = 0xff;    // traffic class, flow label
    ip[7] = 0xff;                    // hop limit
    ip[40 + 6] = ip[40 + 7] = 0xff;  // UDP checksum
    end = off + 40 + Be16(f, off + 4);
    bth = off + 48;
  }
  const size_t bth_in_pseudo = pseudo.size();
  Append(&pseudo, f, bth, end - 4 - bth);
  pseudo[bth_in_pseudo + 4] = 0xff;  // BTH resv8a: FECN, BECN, reserved
  return ~ReferenceCrc32(0xffffffffu, pseudo.data(), pseudo.size());
}

std::vector<uint8_t> ValidOpcodes() {
  std::vector<uint8_t> ops;
  for (int op = 0; op < 256; ++op) {
    if (GetOpcodeInfo(static_cast<uint8_t>(op)).valid) ops.push_back(static_cast<uint8_t>(op));
  }
  return ops;
}

RocePacket SamplePacket(NetworkType type, uint8_t opcode, bool vlan) {
  RocePacket p;
  p.eth.dst = {0x52, 0x54, 0x00, 0x12, 0x34, 0x57};
  p.eth.src = {0x52, 0x54, 0x00, 0x12, 0x34, 0x56};
  p.eth.has_vlan = vlan;
  p.eth.vlan_tci = vlan ? 0x6064 : 0;  // PCP 3, VID 100
  p.net.type = type;
  if (type == NetworkType::kRoceV2Ipv4) {
    p.net.sgid = Mapped(10, 77, 0, 2);
    p.net.dgid = Mapped(10, 77, 0, 4);
    p.net.traffic_class = 0x6a;  // DSCP 26, ECN 2
    p.net.hop_limit = 63;
    p.net.ipv4_id = 0x1d63;
    p.net.ipv4_dont_fragment = true;
  } else {
    p.net.sgid = {0xfe, 0x80, 0, 0, 0, 0, 0, 0, 0x50, 0x54, 0x00, 0xff, 0xfe, 0x12, 0x34, 0x56};
    p.net.dgid = {0xfe, 0x80, 0, 0, 0, 0, 0, 0, 0x50, 0x54, 0x00, 0xff, 0xfe, 0x12, 0x34, 0x57};
    p.net.traffic_class = 0xb9;
    p.net.flow_label = FlowLabelFromQpns(0x11, 0x12) | 0x50000;
    p.net.hop_limit = 1;
  }
  if (type != NetworkType::kRoceV1) {
    p.net.udp_src_port = UdpSourcePort(FlowLabelFromQpns(0x11, 0x12));
    p.net.udp_checksum = type == NetworkType::kRoceV2Ipv6 ? 0x1234 : 0;
  }
  p.bth.opcode = opcode;
  p.bth.solicited = true;
  p.bth.mig_req = true;
  p.bth.pkey = 0x8001;
  p.bth.fecn = false;
  p.bth.becn = true;
  p.bth.dest_qp = 0xa1b2c3;
  p.bth.ack_req = true;
  p.bth.psn = 0xb86147;
  p.deth = {0x80010000, 0x000001};
  p.reth = {0x00007f1234567890ull, 0x0badcafe, 4096};
  p.atomic = {0x00007f00deadbee8ull, 0x1234abcd, 0x1111222233334444ull, 0x5555666677778888ull};
  p.aeth = {aeth::kAck | aeth::kCreditInvalid, 0x00abcd};
  p.atomic_ack_orig = 0x0123456789abcdefull;
  const uint8_t imm_wire[4] = {0xde, 0xad, 0xbe, 0xef};
  std::memcpy(&p.imm_be, imm_wire, 4);
  p.ieth_rkey = 0x00c0ffee;
  p.xrc_srqn = 0x00abc123;
  return p;
}

std::vector<uint8_t> Pattern(size_t n, uint8_t seed) {
  std::vector<uint8_t> v(n);
  for (size_t i = 0; i < n; ++i) v[i] = static_cast<uint8_t>(i * 7 + seed + 1);
  return v;
}

std::vector<uint8_t> BuildFrame(RocePacket* pkt, const std::vector<uint8_t>& payload) {
  std::vector<uint8_t> buf(8192, 0xa5);  // garbage where the pad goes
  const uint32_t off = EncodeHeaders(pkt, static_cast<uint32_t>(payload.size()), buf.data(),
                                     static_cast<uint32_t>(buf.size()));
  if (off == 0) return {};
  if (!payload.empty()) std::memcpy(buf.data() + off, payload.data(), payload.size());
  SealFrame(buf.data(), *pkt);
  buf.resize(pkt->frame_len);
  return buf;
}

std::vector<uint8_t> BuildFrame(NetworkType type, uint8_t opcode, bool vlan, size_t payload_len) {
  RocePacket pkt = SamplePacket(type, opcode, vlan);
  return BuildFrame(&pkt, Pattern(PayloadFor(opcode, payload_len)));
}

size_t PayloadFor(uint8_t opcode, size_t want) {
  return (GetOpcodeInfo(opcode).flags & kOpPayload) ? want : 0;
}

void FixIpv4Checksum(std::vector<uint8_t>* frame, uint32_t l3_off) {
  uint8_t* ip = frame->data() + l3_off;
  ip[10] = ip[11] = 0;
  const uint16_t sum = Ipv4HeaderChecksum(ip, 20);
  ip[10] = static_cast<uint8_t>(sum >> 8);
  ip[11] = static_cast<uint8_t>(sum);
}

void FixIcrc(std::vector<uint8_t>* frame, uint32_t l3_off, uint32_t end, NetworkType type) {
  const uint32_t icrc = ComputeIcrc(frame->data(), l3_off, end, type);
  for (int i = 0; i < 4; ++i) (*frame)[end - 4 + i] = static_cast<uint8_t>(icrc >> (8 * i));
}

const char* NetworkTypeName(NetworkType type) {
  switch (type) {
    case NetworkType::kRoceV1:
      return "RoCEv1";
    case NetworkType::kRoceV2Ipv4:
      return "RoCEv2_IPv4";
    case NetworkType::kRoceV2Ipv6:
      return "RoCEv2_IPv6";
  }
  return "?";
}

}  // namespace vrdma::driver::wire::testing

namespace vrdma::driver::wire {
void PrintTo(NetworkType type, std::ostream* os) { *os << testing::NetworkTypeName(type); }
}  // namespace vrdma::driver::wire
