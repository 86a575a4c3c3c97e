// EncodeHeaders / SealFrame / ParseFrame: byte layout of every header, round trips,
// padding, lengths, and Linux's flow label and UDP source port formulas.
#include "driver/wire/codec.h"

#include <cstring>
#include <string>
#include <tuple>
#include <vector>

#include "driver/wire/opcode.h"
#include "gtest/gtest.h"
#include "tests/unit/driver/wire/frame_builder.h"

namespace vrdma::driver::wire {
namespace {

using testing::BuildFrame;
using testing::Pattern;
using testing::SamplePacket;
using Bytes = std::vector<uint8_t>;

Bytes Slice(const Bytes& f, size_t off, size_t n) {
  return Bytes(f.begin() + off, f.begin() + off + n);
}

void ExpectSameHeaders(const RocePacket& a, const RocePacket& b) {
  EXPECT_EQ(a.eth.dst, b.eth.dst);
  EXPECT_EQ(a.eth.src, b.eth.src);
  EXPECT_EQ(a.eth.has_vlan, b.eth.has_vlan);
  EXPECT_EQ(a.eth.vlan_tci, b.eth.vlan_tci);
  EXPECT_EQ(a.net.type, b.net.type);
  EXPECT_EQ(a.net.sgid, b.net.sgid);
  EXPECT_EQ(a.net.dgid, b.net.dgid);
  EXPECT_EQ(a.net.traffic_class, b.net.traffic_class);
  EXPECT_EQ(a.net.hop_limit, b.net.hop_limit);
  if (a.net.type != NetworkType::kRoceV2Ipv4) {
    EXPECT_EQ(a.net.flow_label, b.net.flow_label);
  }
  if (a.net.type == NetworkType::kRoceV2Ipv4) {
    EXPECT_EQ(a.net.ipv4_id, b.net.ipv4_id);
    EXPECT_EQ(a.net.ipv4_dont_fragment, b.net.ipv4_dont_fragment);
  }
  if (a.net.type != NetworkType::kRoceV1) {
    EXPECT_EQ(a.net.udp_src_port, b.net.udp_src_port);
    EXPECT_EQ(a.net.udp_checksum, b.net.udp_checksum);
  }
  EXPECT_EQ(a.bth.opcode, b.bth.opcode);
  EXPECT_EQ(a.bth.solicited, b.bth.solicited);
  EXPECT_EQ(a.bth.mig_req, b.bth.mig_req);
  EXPECT_EQ(a.bth.pad, b.bth.pad);
  EXPECT_EQ(a.bth.tver, b.bth.tver);
  EXPECT_EQ(a.bth.pkey, b.bth.pkey);
  EXPECT_EQ(a.bth.fecn, b.bth.fecn);
  EXPECT_EQ(a.bth.becn, b.bth.becn);
  EXPECT_EQ(a.bth.dest_qp, b.bth.dest_qp);
  EXPECT_EQ(a.bth.ack_req, b.bth.ack_req);
  EXPECT_EQ(a.bth.psn, b.bth.psn);
  EXPECT_EQ(a.ext, b.ext);
  if (a.ext & kHdrDeth) {
    EXPECT_EQ(a.deth.qkey, b.deth.qkey);
    EXPECT_EQ(a.deth.src_qp, b.deth.src_qp);
  }
  if (a.ext & kHdrReth) {
    EXPECT_EQ(a.reth.va, b.reth.va);
    EXPECT_EQ(a.reth.rkey, b.reth.rkey);
    EXPECT_EQ(a.reth.dma_len, b.reth.dma_len);
  }
  if (a.ext & kHdrAtomicEth) {
    EXPECT_EQ(a.atomic.va, b.atomic.va);
    EXPECT_EQ(a.atomic.rkey, b.atomic.rkey);
    EXPECT_EQ(a.atomic.swap_add, b.atomic.swap_add);
    EXPECT_EQ(a.atomic.compare, b.atomic.compare);
  }
  if (a.ext & kHdrAeth) {
    EXPECT_EQ(a.aeth.syndrome, b.aeth.syndrome);
    EXPECT_EQ(a.aeth.msn, b.aeth.msn);
  }
  if (a.ext & kHdrAtomicAckEth) {
    EXPECT_EQ(a.atomic_ack_orig, b.atomic_ack_orig);
  }
  if (a.ext & kHdrImmDt) {
    EXPECT_EQ(a.imm_be, b.imm_be);
  }
  if (a.ext & kHdrIeth) {
    EXPECT_EQ(a.ieth_rkey, b.ieth_rkey);
  }
  if (a.ext & kHdrXrceth) {
    EXPECT_EQ(a.xrc_srqn, b.xrc_srqn);
  }
  EXPECT_EQ(a.payload_len, b.payload_len);
  EXPECT_EQ(a.l3_off, b.l3_off);
  EXPECT_EQ(a.bth_off, b.bth_off);
  EXPECT_EQ(a.frame_len, b.frame_len);
}

class RoundTripTest : public ::testing::TestWithParam<std::tuple<NetworkType, bool>> {};

TEST_P(RoundTripTest, EveryOpcodeParsesBackAndReencodesToTheSameBytes) {
  const auto [type, vlan] = GetParam();
  for (uint8_t op : testing::ValidOpcodes()) {
    for (size_t want : {0, 1, 2, 3, 4, 7, 1024, 4096}) {
      const size_t len = testing::PayloadFor(op, want);
      if (len != want) continue;
      SCOPED_TRACE(::testing::Message() << "opcode " << int(op) << " payload " << len);
      RocePacket sent = SamplePacket(type, op, vlan);
      const Bytes payload = Pattern(len, op);
      const Bytes frame = BuildFrame(&sent, payload);
      ASSERT_FALSE(frame.empty());
      EXPECT_EQ(frame.size(), HeaderLength(sent) + len + sent.bth.pad + kIcrcLen);
      EXPECT_EQ((frame.size() - sent.bth_off) % 4, 0u);  // BTH..ICRC is 4-byte aligned

      RocePacket got;
      ASSERT_EQ(ParseFrame(frame.data(), static_cast<uint32_t>(frame.size()), &got),
                DropReason::kNone);
      ExpectSameHeaders(sent, got);
      ASSERT_EQ(got.payload_len, len);
      EXPECT_EQ(Bytes(got.payload, got.payload + got.payload_len), payload);
      EXPECT_EQ(got.payload, frame.data() + HeaderLength(got));

      RocePacket again = got;
      const Bytes reencoded = BuildFrame(&again, payload);
      ASSERT_EQ(reencoded, frame);
    }
  }
}

INSTANTIATE_TEST_SUITE_P(AllNetworks, RoundTripTest,
                         ::testing::Combine(::testing::Values(NetworkType::kRoceV1,
                                                              NetworkType::kRoceV2Ipv4,
                                                              NetworkType::kRoceV2Ipv6),
                                            ::testing::Bool()),
                         [](const auto& info) {
                           return std::string(testing::NetworkTypeName(std::get<0>(info.param))) +
                                  (std::get<1>(info.param) ? "_Vlan" : "");
                         });

TEST(EncodeTest, EthernetAndVlanLayout) {
  const Bytes f = BuildFrame(NetworkType::kRoceV2Ipv4, op::kRcSendOnly, true, 8);
  EXPECT_EQ(Slice(f, 0, 18), (Bytes{0x52, 0x54, 0x00, 0x12, 0x34, 0x57, 0x52, 0x54, 0x00, 0x12,
                                    0x34, 0x56, 0x81, 0x00, 0x60, 0x64, 0x08, 0x00}));
  const Bytes v1 = BuildFrame(NetworkType::kRoceV1, op::kRcSendOnly, false, 8);
  EXPECT_EQ(Slice(v1, 12, 2), (Bytes{0x89, 0x15}));
  const Bytes v6 = BuildFrame(NetworkType::kRoceV2Ipv6, op::kRcSendOnly, false, 8);
  EXPECT_EQ(Slice(v6, 12, 2), (Bytes{0x86, 0xdd}));
}

TEST(EncodeTest, Ipv4AndUdpLayout) {
  RocePacket p = SamplePacket(NetworkType::kRoceV2Ipv4, op::kRcAcknowledge, false);
  const Bytes f = BuildFrame(&p, {});
  ASSERT_EQ(f.size(), 14u + 20 + 8 + 12 + 4 + 4);
  // 45 | TOS 6a | total 48 | id 1d63 | DF | TTL 63 | UDP | checksum | 10.77.0.2 | 10.77.0.4
  const Bytes ip = Slice(f, 14, 20);
  EXPECT_EQ(Slice(ip, 0, 10), (Bytes{0x45, 0x6a, 0x00, 0x30, 0x1d, 0x63, 0x40, 0x00, 63, 17}));
  EXPECT_EQ(Slice(ip, 12, 8), (Bytes{10, 77, 0, 2, 10, 77, 0, 4}));
  EXPECT_EQ(Ipv4HeaderChecksum(ip.data(), 20), 0);  // a valid header sums to zero
  const uint16_t sport = UdpSourcePort(FlowLabelFromQpns(0x11, 0x12));
  EXPECT_EQ(Slice(f, 34, 8), (Bytes{static_cast<uint8_t>(sport >> 8), static_cast<uint8_t>(sport),
                                    0x12, 0xb7, 0x00, 28, 0x00, 0x00}));
}

TEST(EncodeTest, GrhAndIpv6Layout) {
  for (NetworkType type : {NetworkType::kRoceV1, NetworkType::kRoceV2Ipv6}) {
    RocePacket p = SamplePacket(type, op::kRcAcknowledge, false);
    p.net.traffic_class = 0xb9;
    p.net.flow_label = 0xabcde;
    const Bytes f = BuildFrame(&p, {});
    const bool v1 = type == NetworkType::kRoceV1;
    const uint8_t paylen = v1 ? 12 + 4 + 4 : 8 + 12 + 4 + 4;
    // IPVer 6 | TClass b9 | FlowLabel abcde | PayLen | NxtHdr | HopLmt 1
    EXPECT_EQ(Slice(f, 14, 8), (Bytes{0x6b, 0x9a, 0xbc, 0xde, 0x00, paylen,
                                      static_cast<uint8_t>(v1 ? 0x1b : 17), 1}));
    EXPECT_EQ(Slice(f, 22, 16), Bytes(p.net.sgid.begin(), p.net.sgid.end()));
    EXPECT_EQ(Slice(f, 38, 16), Bytes(p.net.dgid.begin(), p.net.dgid.end()));
  }
}

TEST(EncodeTest, BthLayout) {
  RocePacket p = SamplePacket(NetworkType::kRoceV2Ipv4, op::kRcSendOnly, false);
  p.bth.solicited = true;
  p.bth.mig_req = false;
  p.bth.fecn = true;
  p.bth.becn = false;
  p.bth.ack_req = true;
  const Bytes f = BuildFrame(&p, Pattern(5));  // PadCnt 3
  // opcode | SE M PadCnt TVer | P_Key | FECN BECN resv6 | DestQP | A resv7 | PSN
  EXPECT_EQ(Slice(f, 42, 12),
            (Bytes{0x04, 0xb0, 0x80, 0x01, 0x80, 0xa1, 0xb2, 0xc3, 0x80, 0xb8, 0x61, 0x47}));
  EXPECT_EQ(Slice(f, 54 + 5, 3), (Bytes{0, 0, 0}));  // pad bytes are zero
}

TEST(EncodeTest, ExtendedHeadersInIbtaOrder) {
  const uint32_t bth = 14 + 20 + 8;
  const uint32_t ext = bth + 12;
  {  // RDMA WRITE Only with Immediate: BTH, RETH, ImmDt
    const Bytes f = BuildFrame(NetworkType::kRoceV2Ipv4, op::kRcWriteOnlyImm, false, 4);
    EXPECT_EQ(Slice(f, ext, 20),
              (Bytes{0x00, 0x00, 0x7f, 0x12, 0x34, 0x56, 0x78, 0x90, 0x0b, 0xad,
                     0xca, 0xfe, 0x00, 0x00, 0x10, 0x00, 0xde, 0xad, 0xbe, 0xef}));
  }
  {  // UD SEND Only with Immediate: BTH, DETH (Q_Key, reserved, SrcQP), ImmDt
    const Bytes f = BuildFrame(NetworkType::kRoceV2Ipv4, op::kUdSendOnlyImm, false, 4);
    EXPECT_EQ(Slice(f, ext, 12),
              (Bytes{0x80, 0x01, 0x00, 0x00, 0x00, 0x00, 0x00, 0x01, 0xde, 0xad, 0xbe, 0xef}));
  }
  {  // Atomic: BTH, AtomicETH (VA, R_Key, Swap/Add, Compare)
    const Bytes f = BuildFrame(NetworkType::kRoceV2Ipv4, op::kRcCompareSwap, false, 0);
    EXPECT_EQ(Slice(f, ext, 28), (Bytes{0x00, 0x00, 0x7f, 0x00, 0xde, 0xad, 0xbe, 0xe8, 0x12, 0x34,
                                        0xab, 0xcd, 0x11, 0x11, 0x22, 0x22, 0x33, 0x33, 0x44, 0x44,
                                        0x55, 0x55, 0x66, 0x66, 0x77, 0x77, 0x88, 0x88}));
    EXPECT_EQ(f.size(), ext + 28 + 4u);
  }
  {  // Atomic Acknowledge: BTH, AETH, AtomicAckETH
    const Bytes f = BuildFrame(NetworkType::kRoceV2Ipv4, op::kRcAtomicAcknowledge, false, 0);
    EXPECT_EQ(Slice(f, ext, 12),
              (Bytes{0x1f, 0x00, 0xab, 0xcd, 0x01, 0x23, 0x45, 0x67, 0x89, 0xab, 0xcd, 0xef}));
  }
  {  // SEND Last with Invalidate: BTH, IETH
    const Bytes f = BuildFrame(NetworkType::kRoceV2Ipv4, op::kRcSendLastInv, false, 4);
    EXPECT_EQ(Slice(f, ext, 4), (Bytes{0x00, 0xc0, 0xff, 0xee}));
  }
  {  // XRC RDMA WRITE Only with Immediate: BTH, XRCETH (reserved, XRC SRQ), RETH, ImmDt
    const Bytes f =
        BuildFrame(NetworkType::kRoceV2Ipv4, op::kXrcBase | op::kRcWriteOnlyImm, false, 4);
    EXPECT_EQ(Slice(f, ext, 8), (Bytes{0x00, 0xab, 0xc1, 0x23, 0x00, 0x00, 0x7f, 0x12}));
    EXPECT_EQ(f.size(), ext + 4 + 16 + 4 + 4 + 4u);
  }
  {  // XRC Acknowledge: BTH, AETH (no XRCETH on a response)
    const Bytes f =
        BuildFrame(NetworkType::kRoceV2Ipv4, op::kXrcBase | op::kRcAcknowledge, false, 0);
    EXPECT_EQ(Slice(f, ext, 4), (Bytes{0x1f, 0x00, 0xab, 0xcd}));
  }
  {  // RDMA READ Response First: BTH, AETH, payload
    const Bytes f = BuildFrame(NetworkType::kRoceV2Ipv4, op::kRcReadResponseFirst, false, 4);
    EXPECT_EQ(Slice(f, ext, 8), (Bytes{0x1f, 0x00, 0xab, 0xcd, 1, 8, 15, 22}));
  }
}

TEST(EncodeTest, PadCountFollowsPayloadLength) {
  for (uint32_t len = 0; len < 12; ++len) {
    RocePacket p = SamplePacket(NetworkType::kRoceV2Ipv6, op::kRcSendMiddle, false);
    p.bth.pad = 3;  // ignored
    const Bytes f = BuildFrame(&p, Pattern(len));
    EXPECT_EQ(p.bth.pad, (4 - len % 4) % 4);
    EXPECT_EQ((f[p.bth_off + 1] >> 4) & 3, p.bth.pad);
    for (uint32_t i = 0; i < p.bth.pad; ++i) EXPECT_EQ(f[f.size() - 4 - 1 - i], 0);
    RocePacket got;
    ASSERT_EQ(ParseFrame(f.data(), static_cast<uint32_t>(f.size()), &got), DropReason::kNone);
    EXPECT_EQ(got.payload_len, len);
  }
}

TEST(EncodeTest, ImmediateDataIsCopiedAsOnTheWire) {
  RocePacket p = SamplePacket(NetworkType::kRoceV1, op::kRcSendOnlyImm, false);
  const uint8_t wire[4] = {0x01, 0x02, 0x03, 0x04};
  std::memcpy(&p.imm_be, wire, 4);
  const Bytes f = BuildFrame(&p, {});
  EXPECT_EQ(Slice(f, p.bth_off + 12, 4), (Bytes{1, 2, 3, 4}));
}

TEST(EncodeTest, RefusesFramesThatDoNotFit) {
  RocePacket p = SamplePacket(NetworkType::kRoceV2Ipv4, op::kRcWriteOnly, true);
  const uint32_t need = HeaderLength(p) + 101 + 3 + 4;
  Bytes buf(need);
  EXPECT_EQ(EncodeHeaders(&p, 101, buf.data(), need - 1), 0u);
  EXPECT_EQ(EncodeHeaders(&p, 101, buf.data(), need), HeaderLength(p));
  EXPECT_EQ(p.frame_len, need);
  EXPECT_EQ(p.payload, buf.data() + HeaderLength(p));
  // IP lengths are 16 bits.
  Bytes big(70000);
  EXPECT_EQ(EncodeHeaders(&p, 65500, big.data(), static_cast<uint32_t>(big.size())), 0u);
  RocePacket v6 = SamplePacket(NetworkType::kRoceV2Ipv6, op::kRcWriteOnly, false);
  EXPECT_NE(EncodeHeaders(&v6, 65400, big.data(), static_cast<uint32_t>(big.size())), 0u);
}

TEST(EncodeTest, HeaderLengths) {
  EXPECT_EQ(HeaderLength(SamplePacket(NetworkType::kRoceV2Ipv4, op::kRcSendOnly, false)), 54u);
  EXPECT_EQ(HeaderLength(SamplePacket(NetworkType::kRoceV2Ipv4, op::kRcSendOnly, true)), 58u);
  EXPECT_EQ(HeaderLength(SamplePacket(NetworkType::kRoceV2Ipv6, op::kRcSendOnly, false)), 74u);
  EXPECT_EQ(HeaderLength(SamplePacket(NetworkType::kRoceV1, op::kRcSendOnly, false)), 66u);
  EXPECT_EQ(HeaderLength(SamplePacket(NetworkType::kRoceV1, op::kRcWriteOnlyImm, true)),
            14u + 4 + 40 + 12 + 16 + 4);
  EXPECT_EQ(HeaderLength(SamplePacket(NetworkType::kRoceV2Ipv6, op::kRcAtomicAcknowledge, false)),
            74u + 4 + 8);
}

TEST(ParseTest, Ipv4EndpointsBecomeIpv4MappedGids) {
  const Bytes f = BuildFrame(NetworkType::kRoceV2Ipv4, op::kRcSendOnly, false, 4);
  RocePacket p;
  ASSERT_EQ(ParseFrame(f.data(), static_cast<uint32_t>(f.size()), &p), DropReason::kNone);
  EXPECT_EQ(p.net.sgid, (Gid{0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 10, 77, 0, 2}));
  EXPECT_EQ(p.net.dgid, (Gid{0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 10, 77, 0, 4}));
}

TEST(ParseTest, EthernetPaddingAfterThePacketIsIgnored) {
  // SEND Only with no payload over IPv4 is 58 bytes; Ethernet pads it to 60.
  Bytes f = BuildFrame(NetworkType::kRoceV2Ipv4, op::kRcSendOnly, false, 0);
  ASSERT_EQ(f.size(), 58u);
  f.resize(60, 0);
  RocePacket p;
  ASSERT_EQ(ParseFrame(f.data(), 60, &p), DropReason::kNone);
  EXPECT_EQ(p.frame_len, 58u);
  EXPECT_EQ(p.payload_len, 0u);
  // Any trailer (padding, a kept FCS) is outside the packet.
  f.resize(200, 0xee);
  ASSERT_EQ(ParseFrame(f.data(), 200, &p), DropReason::kNone);
  EXPECT_EQ(p.frame_len, 58u);
  for (NetworkType type : {NetworkType::kRoceV1, NetworkType::kRoceV2Ipv6}) {
    Bytes g = BuildFrame(type, op::kRcReadResponseMiddle, true, 4);
    const uint32_t end = static_cast<uint32_t>(g.size());
    g.resize(end + 17, 0x33);
    ASSERT_EQ(ParseFrame(g.data(), end + 17, &p), DropReason::kNone);
    EXPECT_EQ(p.frame_len, end);
  }
}

TEST(ParseTest, ParseResetsFieldsOfAnEarlierPacket) {
  const Bytes a = BuildFrame(NetworkType::kRoceV2Ipv4, op::kRcWriteOnly, true, 8);
  const Bytes b = BuildFrame(NetworkType::kRoceV1, op::kRcSendOnly, false, 8);
  RocePacket p;
  ASSERT_EQ(ParseFrame(a.data(), static_cast<uint32_t>(a.size()), &p), DropReason::kNone);
  ASSERT_EQ(ParseFrame(b.data(), static_cast<uint32_t>(b.size()), &p), DropReason::kNone);
  EXPECT_FALSE(p.eth.has_vlan);
  EXPECT_EQ(p.reth.va, 0u);
  EXPECT_EQ(p.ext, 0);
  EXPECT_EQ(p.net.udp_src_port, 0);
}

TEST(ParseTest, DetachedPayloadIsTakenFromWhereItLiesAndNeverRead) {
  // The device's own zero-copy frame, turned around by its internal switch: headers in
  // one buffer, payload, pad and ICRC elsewhere (here: nowhere readable but the payload).
  for (NetworkType type :
       {NetworkType::kRoceV2Ipv4, NetworkType::kRoceV2Ipv6, NetworkType::kRoceV1}) {
    const Bytes f = BuildFrame(type, op::kRcWriteFirst, true, 4096);
    RocePacket whole;
    ASSERT_EQ(ParseFrame(f.data(), static_cast<uint32_t>(f.size()), &whole), DropReason::kNone);
    const uint32_t hdr = static_cast<uint32_t>(whole.payload - f.data());
    const Bytes headers(f.begin(), f.begin() + hdr);  // an exact-size copy: ASan sees overreads
    const Bytes payload(whole.payload, whole.payload + whole.payload_len);
    ParseOptions opts;
    opts.detached = payload.data();
    opts.detached_len = static_cast<uint32_t>(f.size()) - hdr;
    RocePacket p;
    ASSERT_EQ(ParseFrame(headers.data(), hdr, &p, opts), DropReason::kNone);
    EXPECT_EQ(p.payload, payload.data());
    EXPECT_EQ(p.payload_len, 4096u);
    EXPECT_EQ(p.reth.va, whole.reth.va);
    EXPECT_EQ(p.bth.psn, whole.bth.psn);
    EXPECT_EQ(p.frame_len, whole.frame_len);
    // The lengths the headers announce must cover what is detached: one byte short is a
    // bad length, as for a whole frame.
    opts.detached_len -= 1;
    EXPECT_EQ(ParseFrame(headers.data(), hdr, &p, opts), DropReason::kBadLength);
    // Headers that end before the payload offset are truncated, never read past.
    opts.detached_len += 2;
    EXPECT_EQ(ParseFrame(headers.data(), hdr - 1, &p, opts), DropReason::kTruncated);
  }
}

TEST(ChecksumTest, Rfc1071Example) {
  // A textbook IPv4 header whose checksum field holds 0xb861.
  Bytes h{0x45, 0x00, 0x00, 0x73, 0x00, 0x00, 0x40, 0x00, 0x40, 0x11,
          0x00, 0x00, 0xc0, 0xa8, 0x00, 0x01, 0xc0, 0xa8, 0x00, 0xc7};
  EXPECT_EQ(Ipv4HeaderChecksum(h.data(), 20), 0xb861);
  h[10] = 0xb8;
  h[11] = 0x61;
  EXPECT_EQ(Ipv4HeaderChecksum(h.data(), 20), 0);
  const uint8_t odd[3] = {0x12, 0x34, 0x56};  // odd length pads with a zero byte
  EXPECT_EQ(Ipv4HeaderChecksum(odd, 3), static_cast<uint16_t>(~(0x1234 + 0x5600)));
}

TEST(FlowLabelTest, UdpSourcePortAsLinux) {
  EXPECT_EQ(UdpSourcePort(0), 0xc000);
  EXPECT_EQ(UdpSourcePort(0xfffff), 0xffc0);
  EXPECT_EQ(UdpSourcePort(0x12345), 0xe341);
  EXPECT_EQ(UdpSourcePort(0xfc000), 0xc03f);
  for (uint32_t fl = 0; fl < 0x100000; fl += 0x1357) EXPECT_GE(UdpSourcePort(fl), 0xc000);
}

TEST(FlowLabelTest, FlowLabelFromQpnsAsLinux) {
  EXPECT_EQ(FlowLabelFromQpns(0x11, 0x12), 0x132u);
  EXPECT_EQ(FlowLabelFromQpns(0xffffff, 0xffffff), 0xfff1eu);
  EXPECT_EQ(FlowLabelFromQpns(0x123456, 0xabcdef), 0xac3e3u);
  EXPECT_EQ(FlowLabelFromQpns(1, 1), 1u);
  EXPECT_EQ(FlowLabelFromQpns(0x123456, 0xabcdef), FlowLabelFromQpns(0xabcdef, 0x123456));
  EXPECT_EQ(UdpSourcePort(FlowLabelFromQpns(0x123456, 0xabcdef)), 0xc3c8);
}

TEST(DropReasonTest, EveryReasonHasAUniqueName) {
  std::vector<std::string> names;
  for (int r = 0; r < static_cast<int>(DropReason::kCount); ++r) {
    const std::string name = DropReasonName(static_cast<DropReason>(r));
    EXPECT_NE(name, "unknown");
    for (const auto& other : names) EXPECT_NE(name, other);
    names.push_back(name);
  }
  EXPECT_STREQ(DropReasonName(DropReason::kBadIcrc), "bad_icrc");
}

}  // namespace
}  // namespace vrdma::driver::wire
