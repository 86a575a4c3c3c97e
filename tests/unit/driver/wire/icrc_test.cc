// ComputeIcrc against the reference ICRC, which fields it masks, and how SealFrame lays
// the four ICRC bytes on the wire.
#include "driver/wire/icrc.h"

#include <string>
#include <tuple>
#include <vector>

#include "driver/wire/codec.h"
#include "driver/wire/opcode.h"
#include "gtest/gtest.h"
#include "tests/unit/driver/wire/frame_builder.h"

namespace vrdma::driver::wire {
namespace {

using testing::BuildFrame;
using testing::FixIpv4Checksum;
using testing::ReferenceIcrc;

uint32_t WireIcrc(const std::vector<uint8_t>& f, uint32_t end) {
  return f[end - 4] | (f[end - 3] << 8) | (f[end - 2] << 16) | (uint32_t{f[end - 1]} << 24);
}

class IcrcTest : public ::testing::TestWithParam<std::tuple<NetworkType, bool>> {
 protected:
  NetworkType type() const { return std::get<0>(GetParam()); }
  bool vlan() const { return std::get<1>(GetParam()); }
  uint32_t l3() const { return vlan() ? 18 : 14; }
};

TEST_P(IcrcTest, MatchesReferenceForEveryOpcodeAndPayloadSize) {
  for (uint8_t op : testing::ValidOpcodes()) {
    for (size_t len : {0, 1, 2, 3, 4, 5, 63, 64, 255, 1024, 4096}) {
      if (testing::PayloadFor(op, len) != len && len != 0) continue;
      const std::vector<uint8_t> f = BuildFrame(type(), op, vlan(), len);
      ASSERT_FALSE(f.empty());
      const uint32_t icrc = ComputeIcrc(f.data(), l3(), static_cast<uint32_t>(f.size()), type());
      ASSERT_EQ(icrc, ReferenceIcrc(f)) << "opcode " << int(op) << " len " << len;
      // SealFrame stores the CRC least significant byte first.
      ASSERT_EQ(WireIcrc(f, static_cast<uint32_t>(f.size())), icrc);
    }
  }
}

// Bits of the ICRC-covered area (l3 .. end-4) that are variant, so masked to ones.
std::vector<bool> MaskedBits(NetworkType type, uint32_t l3, uint32_t end) {
  std::vector<bool> masked(end * 8, false);
  auto mask_byte = [&](uint32_t off, uint8_t bits) {
    for (int b = 0; b < 8; ++b) {
      if (bits & (1 << b)) masked[off * 8 + b] = true;
    }
  };
  uint32_t bth;
  if (type == NetworkType::kRoceV2Ipv4) {
    mask_byte(l3 + 1, 0xff);   // TOS
    mask_byte(l3 + 8, 0xff);   // TTL
    mask_byte(l3 + 10, 0xff);  // header checksum
    mask_byte(l3 + 11, 0xff);
    mask_byte(l3 + 26, 0xff);  // UDP checksum
    mask_byte(l3 + 27, 0xff);
    bth = l3 + 28;
  } else {
    mask_byte(l3 + 0, 0x0f);  // traffic class
    mask_byte(l3 + 1, 0xff);  // traffic class, flow label
    mask_byte(l3 + 2, 0xff);
    mask_byte(l3 + 3, 0xff);
    mask_byte(l3 + 7, 0xff);  // hop limit
    bth = l3 + 40;
    if (type == NetworkType::kRoceV2Ipv6) {
      mask_byte(l3 + 46, 0xff);  // UDP checksum
      mask_byte(l3 + 47, 0xff);
      bth += 8;
    }
  }
  mask_byte(bth + 4, 0xff);  // BTH resv8a: FECN, BECN, reserved
  return masked;
}

TEST_P(IcrcTest, EveryCoveredBitCountsExceptTheMaskedOnes) {
  for (uint8_t op : {op::kRcWriteOnlyImm, op::kUdSendOnlyImm, op::kRcAtomicAcknowledge,
                     op::kRcCompareSwap, op::kRcSendLastInv}) {
    const std::vector<uint8_t> f = BuildFrame(type(), op, vlan(), 13);
    const uint32_t end = static_cast<uint32_t>(f.size());
    const uint32_t good = ComputeIcrc(f.data(), l3(), end, type());
    const std::vector<bool> masked = MaskedBits(type(), l3(), end);
    int masked_seen = 0;
    for (uint32_t bit = l3() * 8; bit < (end - 4) * 8; ++bit) {
      std::vector<uint8_t> g = f;
      g[bit / 8] ^= static_cast<uint8_t>(1 << (bit % 8));
      const uint32_t icrc = ComputeIcrc(g.data(), l3(), end, type());
      if (masked[bit]) {
        ++masked_seen;
        ASSERT_EQ(icrc, good) << "masked bit " << bit << " must not count";
        ASSERT_EQ(icrc, ReferenceIcrc(g));
      } else {
        ASSERT_NE(icrc, good) << "byte " << bit / 8 << " bit " << bit % 8;
      }
    }
    EXPECT_EQ(masked_seen, type() == NetworkType::kRoceV2Ipv4 ? 7 * 8
                           : type() == NetworkType::kRoceV1   ? 4 + 4 * 8 + 8
                                                              : 4 + 4 * 8 + 2 * 8 + 8);
  }
}

// The Ethernet header (and VLAN tag) is outside the ICRC: switches may rewrite it.
TEST_P(IcrcTest, EthernetHeaderIsNotCovered) {
  std::vector<uint8_t> f = BuildFrame(type(), op::kRcSendOnly, vlan(), 32);
  const uint32_t end = static_cast<uint32_t>(f.size());
  const uint32_t good = ComputeIcrc(f.data(), l3(), end, type());
  for (uint32_t i = 0; i < 12; ++i) f[i] ^= 0x5a;
  if (vlan()) f[14] ^= 0xe0;  // PCP
  EXPECT_EQ(ComputeIcrc(f.data(), l3(), end, type()), good);
  RocePacket pkt;
  EXPECT_EQ(ParseFrame(f.data(), end, &pkt), DropReason::kNone);
}

// Routers and switches rewrite the variant fields; the packet must still verify.
TEST_P(IcrcTest, RewritingVariantFieldsKeepsThePacketValid) {
  std::vector<uint8_t> f = BuildFrame(type(), op::kRcWriteFirst, vlan(), 256);
  const uint32_t end = static_cast<uint32_t>(f.size());
  uint8_t* ip = f.data() + l3();
  uint32_t bth = l3();
  if (type() == NetworkType::kRoceV2Ipv4) {
    ip[1] ^= 0x03;  // ECN marked congestion
    ip[1] ^= 0xfc;  // DSCP remarked
    ip[8] -= 5;     // TTL
    FixIpv4Checksum(&f, l3());
    ip[26] = 0xab;  // UDP checksum
    bth += 28;
  } else {
    ip[0] ^= 0x0f;  // traffic class
    ip[1] ^= 0xff;  // traffic class, flow label
    ip[3] ^= 0x42;  // flow label
    ip[7] = 0x3f;   // hop limit
    bth += 40;
    if (type() == NetworkType::kRoceV2Ipv6) {
      ip[47] ^= 0x11;  // UDP checksum
      bth += 8;
    }
  }
  f[bth + 4] ^= 0xc0;  // FECN and BECN
  f[bth + 4] ^= 0x3f;  // reserved bits of resv8a
  RocePacket pkt;
  ASSERT_EQ(ParseFrame(f.data(), end, &pkt), DropReason::kNone);
  EXPECT_TRUE(pkt.bth.fecn);
}

TEST_P(IcrcTest, FlippingCoveredBitsFailsTheIcrc) {
  // Payload, extended headers, addresses and the ICRC itself: nothing but the ICRC
  // check notices a change there.
  const std::vector<uint8_t> f = BuildFrame(type(), op::kRcWriteOnlyImm, vlan(), 40);
  const uint32_t end = static_cast<uint32_t>(f.size());
  RocePacket pkt;
  ASSERT_EQ(ParseFrame(f.data(), end, &pkt), DropReason::kNone);
  std::vector<uint32_t> first_bytes;
  const uint32_t addr = type() == NetworkType::kRoceV2Ipv4 ? l3() + 12 : l3() + 8;
  const uint32_t addr_end = type() == NetworkType::kRoceV2Ipv4 ? l3() + 20 : l3() + 40;
  for (uint32_t i = addr; i < addr_end; ++i) first_bytes.push_back(i);
  for (uint32_t i = pkt.bth_off + 12; i < end; ++i) first_bytes.push_back(i);  // RETH .. ICRC
  first_bytes.push_back(pkt.bth_off + 2);                                      // P_Key
  first_bytes.push_back(pkt.bth_off + 5);                                      // DestQP
  first_bytes.push_back(pkt.bth_off + 9);                                      // PSN
  for (uint32_t byte : first_bytes) {
    for (int bit = 0; bit < 8; ++bit) {
      std::vector<uint8_t> g = f;
      g[byte] ^= static_cast<uint8_t>(1 << bit);
      if (type() == NetworkType::kRoceV2Ipv4 && byte < l3() + 20) FixIpv4Checksum(&g, l3());
      ASSERT_EQ(ParseFrame(g.data(), end, &pkt), DropReason::kBadIcrc)
          << "byte " << byte << " bit " << bit;
    }
  }
  // Without verification the same corruption passes.
  std::vector<uint8_t> g = f;
  g[end - 10] ^= 1;
  EXPECT_EQ(ParseFrame(g.data(), end, &pkt, ParseOptions{.verify_icrc = false}), DropReason::kNone);
}

// A zero-copy frame is sealed in three pieces (headers, payload left in client memory,
// pad + ICRC): put back together, it is byte for byte the frame SealFrame makes.
TEST_P(IcrcTest, GatherSealMatchesContiguousFrame) {
  for (size_t len : {1, 3, 4, 5, 255, 1024, 4093, 4096}) {
    RocePacket pkt = testing::SamplePacket(type(), op::kRcWriteFirst, vlan());
    const std::vector<uint8_t> payload = testing::Pattern(len, 9);
    RocePacket whole_pkt = pkt;
    const std::vector<uint8_t> whole = BuildFrame(&whole_pkt, payload);
    ASSERT_FALSE(whole.empty());
    std::vector<uint8_t> hdr(8192, 0xa5);
    const uint32_t off = EncodeHeaders(&pkt, static_cast<uint32_t>(len), hdr.data(),
                                       static_cast<uint32_t>(hdr.size()));
    ASSERT_NE(off, 0u);
    std::vector<uint8_t> tail(8, 0xa5);  // garbage where the pad goes
    SealFrameGather(hdr.data(), off, payload.data(), static_cast<uint32_t>(len), tail.data(), pkt);
    std::vector<uint8_t> joined(hdr.begin(), hdr.begin() + off);
    joined.insert(joined.end(), payload.begin(), payload.end());
    joined.insert(joined.end(), tail.begin(), tail.begin() + (pkt.frame_len - off - len));
    ASSERT_EQ(joined, whole) << "payload " << len;
    ASSERT_EQ(ComputeIcrcGather(hdr.data(), l3(), off, payload.data(), static_cast<uint32_t>(len),
                                pkt.bth.pad, type()),
              ReferenceIcrc(whole));
  }
}

INSTANTIATE_TEST_SUITE_P(AllNetworks, IcrcTest,
                         ::testing::Combine(::testing::Values(NetworkType::kRoceV1,
                                                              NetworkType::kRoceV2Ipv4,
                                                              NetworkType::kRoceV2Ipv6),
                                            ::testing::Bool()),
                         [](const auto& info) {
                           return std::string(testing::NetworkTypeName(std::get<0>(info.param))) +
                                  (std::get<1>(info.param) ? "_Vlan" : "");
                         });

}  // namespace
}  // namespace vrdma::driver::wire
