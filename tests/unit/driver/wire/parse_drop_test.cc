// ParseFrame rejections: at least one test per DropReason, truncation at every header
// boundary, and mutated / random frames parsed right before an unmapped page so that a
// read past the end of the frame would crash the test.
#include <sys/mman.h>
#include <unistd.h>

#include <cstring>
#include <random>
#include <vector>

#include "driver/wire/codec.h"
#include "driver/wire/opcode.h"
#include "gtest/gtest.h"
#include "tests/unit/driver/wire/frame_builder.h"

namespace vrdma::driver::wire {
namespace {

using testing::BuildFrame;
using testing::FixIcrc;
using testing::FixIpv4Checksum;
using Bytes = std::vector<uint8_t>;

DropReason Parse(const Bytes& f) {
  RocePacket p;
  return ParseFrame(f.data(), static_cast<uint32_t>(f.size()), &p);
}

void Put16(Bytes* f, size_t off, uint16_t v) {
  (*f)[off] = static_cast<uint8_t>(v >> 8);
  (*f)[off + 1] = static_cast<uint8_t>(v);
}

// A frame buffer whose last byte sits just before a PROT_NONE page.
class GuardedBuffer {
 public:
  GuardedBuffer() {
    page_ = static_cast<size_t>(sysconf(_SC_PAGESIZE));
    size_ = 4 * page_;
    base_ = static_cast<uint8_t*>(
        mmap(nullptr, size_ + page_, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0));
    if (base_ == MAP_FAILED) std::abort();
    if (mprotect(base_ + size_, page_, PROT_NONE) != 0) std::abort();
  }
  ~GuardedBuffer() { munmap(base_, size_ + page_); }
  DropReason Parse(const uint8_t* data, size_t len, RocePacket* p) {
    uint8_t* at = base_ + size_ - len;
    if (len) std::memcpy(at, data, len);
    return ParseFrame(at, static_cast<uint32_t>(len), p);
  }

 private:
  size_t page_ = 0;
  size_t size_ = 0;
  uint8_t* base_ = nullptr;
};

TEST(DropTest, NotRoce) {
  // ARP request.
  Bytes arp(42, 0);
  Put16(&arp, 12, 0x0806);
  EXPECT_EQ(Parse(arp), DropReason::kNotRoce);
  // Unknown ethertype, also behind a VLAN tag.
  Bytes lldp(60, 0);
  Put16(&lldp, 12, 0x88cc);
  EXPECT_EQ(Parse(lldp), DropReason::kNotRoce);
  Put16(&lldp, 12, 0x8100);
  Put16(&lldp, 16, 0x88cc);
  EXPECT_EQ(Parse(lldp), DropReason::kNotRoce);
  // TCP over IPv4, UDP to another port over IPv4 and IPv6, ICMPv6.
  Bytes tcp = BuildFrame(NetworkType::kRoceV2Ipv4, op::kRcSendOnly, false, 16);
  tcp[14 + 9] = 6;
  FixIpv4Checksum(&tcp, 14);
  EXPECT_EQ(Parse(tcp), DropReason::kNotRoce);
  Bytes udp4 = BuildFrame(NetworkType::kRoceV2Ipv4, op::kRcSendOnly, false, 16);
  Put16(&udp4, 34 + 2, 4790);
  EXPECT_EQ(Parse(udp4), DropReason::kNotRoce);
  Bytes udp6 = BuildFrame(NetworkType::kRoceV2Ipv6, op::kRcSendOnly, true, 16);
  Put16(&udp6, 18 + 40 + 2, 53);
  EXPECT_EQ(Parse(udp6), DropReason::kNotRoce);
  Bytes icmp6 = BuildFrame(NetworkType::kRoceV2Ipv6, op::kRcSendOnly, false, 16);
  icmp6[14 + 6] = 58;
  EXPECT_EQ(Parse(icmp6), DropReason::kNotRoce);
  // An IPv4 header with options that is not RoCE is still just "not ours".
  Bytes opt = BuildFrame(NetworkType::kRoceV2Ipv4, op::kRcSendOnly, false, 16);
  opt[14] = 0x46;
  Put16(&opt, 14 + 24 + 2, 80);
  EXPECT_EQ(Parse(opt), DropReason::kNotRoce);
}

// Cutting a frame anywhere inside the Ethernet, VLAN, IP/GRH or UDP header leaves
// too few bytes for that header; past it, the IP/GRH length promises more than there is.
TEST(DropTest, TruncatedAtEveryHeaderBoundary) {
  for (NetworkType type :
       {NetworkType::kRoceV1, NetworkType::kRoceV2Ipv4, NetworkType::kRoceV2Ipv6}) {
    for (bool vlan : {false, true}) {
      const Bytes f = BuildFrame(type, op::kRcWriteFirst, vlan, 64);
      const uint32_t l3 = vlan ? 18 : 14;
      const uint32_t fixed_end = l3 + (type == NetworkType::kRoceV1       ? 40
                                       : type == NetworkType::kRoceV2Ipv4 ? 28
                                                                          : 48);
      for (uint32_t len = 0; len < f.size(); ++len) {
        RocePacket p;
        const DropReason r = ParseFrame(f.data(), len, &p);
        if (len < fixed_end) {
          ASSERT_EQ(r, DropReason::kTruncated) << testing::NetworkTypeName(type) << " " << len;
        } else {
          ASSERT_EQ(r, DropReason::kBadLength) << testing::NetworkTypeName(type) << " " << len;
        }
      }
    }
  }
}

// The IP/GRH length is consistent but too short for the BTH, the extended headers the
// opcode announces, or the ICRC.
TEST(DropTest, TruncatedTransportHeaders) {
  for (NetworkType type :
       {NetworkType::kRoceV1, NetworkType::kRoceV2Ipv4, NetworkType::kRoceV2Ipv6}) {
    for (uint8_t op : {op::kRcWriteOnlyImm, op::kRcAtomicAcknowledge, op::kUdSendOnlyImm,
                       op::kRcCompareSwap, op::kRcSendOnly}) {
      RocePacket pkt = testing::SamplePacket(type, op, false);
      const Bytes full = BuildFrame(&pkt, {});
      for (uint32_t end = pkt.bth_off; end < full.size(); ++end) {
        Bytes f(full.begin(), full.begin() + end);
        const uint32_t roce = end - pkt.bth_off;
        if (type == NetworkType::kRoceV1) {
          Put16(&f, 18, static_cast<uint16_t>(roce));
        } else if (type == NetworkType::kRoceV2Ipv4) {
          Put16(&f, 16, static_cast<uint16_t>(28 + roce));
          Put16(&f, 38, static_cast<uint16_t>(8 + roce));
          FixIpv4Checksum(&f, 14);
        } else {
          Put16(&f, 18, static_cast<uint16_t>(8 + roce));
          Put16(&f, 58, static_cast<uint16_t>(8 + roce));
        }
        ASSERT_EQ(Parse(f), DropReason::kTruncated)
            << testing::NetworkTypeName(type) << " opcode " << int(op) << " end " << end;
      }
    }
  }
}

TEST(DropTest, StackedVlanTags) {
  Bytes f = BuildFrame(NetworkType::kRoceV2Ipv4, op::kRcSendOnly, true, 8);
  Bytes qinq = f;
  qinq.insert(qinq.begin() + 16, {0x81, 0x00, 0x00, 0x05});  // 8100 | TCI | 8100 | TCI | 0800
  EXPECT_EQ(Parse(qinq), DropReason::kBadVlan);
  Bytes stag = f;
  Put16(&stag, 12, 0x88a8);
  EXPECT_EQ(Parse(stag), DropReason::kBadVlan);
  Bytes inner_stag = f;
  Put16(&inner_stag, 16, 0x88a8);
  EXPECT_EQ(Parse(inner_stag), DropReason::kBadVlan);
  Bytes cut(f.begin(), f.begin() + 16);  // tag cut short
  EXPECT_EQ(Parse(cut), DropReason::kTruncated);
}

TEST(DropTest, IpVersionDoesNotMatchEthertype) {
  Bytes v4 = BuildFrame(NetworkType::kRoceV2Ipv4, op::kRcSendOnly, false, 8);
  v4[14] = 0x65;
  EXPECT_EQ(Parse(v4), DropReason::kBadIpVersion);
  Bytes v6 = BuildFrame(NetworkType::kRoceV2Ipv6, op::kRcSendOnly, false, 8);
  v6[14] = static_cast<uint8_t>(0x40 | (v6[14] & 0x0f));
  EXPECT_EQ(Parse(v6), DropReason::kBadIpVersion);
}

TEST(DropTest, BadIpHeader) {
  // IPv4 options (IHL 6), with the UDP header where IHL puts it.
  Bytes opt = BuildFrame(NetworkType::kRoceV2Ipv4, op::kRcSendOnly, false, 16);
  opt.insert(opt.begin() + 34, {0x01, 0x01, 0x01, 0x00});  // NOP NOP NOP EOL
  opt[14] = 0x46;
  Put16(&opt, 16, static_cast<uint16_t>(opt.size() - 14));
  FixIpv4Checksum(&opt, 14);
  EXPECT_EQ(Parse(opt), DropReason::kBadIpHeader);
  // IHL below the minimum.
  Bytes ihl4 = BuildFrame(NetworkType::kRoceV2Ipv4, op::kRcSendOnly, false, 16);
  ihl4[14] = 0x44;
  EXPECT_EQ(Parse(ihl4), DropReason::kBadIpHeader);
  // RoCEv1 GRH with another IPVer or NxtHdr.
  Bytes ver = BuildFrame(NetworkType::kRoceV1, op::kRcSendOnly, false, 16);
  ver[14] = static_cast<uint8_t>(0x40 | (ver[14] & 0x0f));
  EXPECT_EQ(Parse(ver), DropReason::kBadIpHeader);
  Bytes nxt = BuildFrame(NetworkType::kRoceV1, op::kRcSendOnly, false, 16);
  nxt[14 + 6] = 0x11;
  EXPECT_EQ(Parse(nxt), DropReason::kBadIpHeader);
}

TEST(DropTest, BadIpv4Checksum) {
  Bytes f = BuildFrame(NetworkType::kRoceV2Ipv4, op::kRcSendOnly, true, 8);
  f[18 + 11] ^= 0x01;
  EXPECT_EQ(Parse(f), DropReason::kBadIpChecksum);
  Bytes g = BuildFrame(NetworkType::kRoceV2Ipv4, op::kRcSendOnly, false, 8);
  g[14 + 8] -= 1;  // a router lowered the TTL but did not fix the checksum
  EXPECT_EQ(Parse(g), DropReason::kBadIpChecksum);
}

TEST(DropTest, Ipv4Fragments) {
  Bytes mf = BuildFrame(NetworkType::kRoceV2Ipv4, op::kRcSendOnly, false, 8);
  Put16(&mf, 14 + 6, 0x2000);  // more fragments, offset 0
  FixIpv4Checksum(&mf, 14);
  EXPECT_EQ(Parse(mf), DropReason::kIpFragment);
  Bytes later = BuildFrame(NetworkType::kRoceV2Ipv4, op::kRcSendOnly, false, 8);
  Put16(&later, 14 + 6, 0x0010);  // offset 128 bytes: no UDP header in this fragment
  FixIpv4Checksum(&later, 14);
  EXPECT_EQ(Parse(later), DropReason::kIpFragment);
  Bytes last = later;
  Put16(&last, 14 + 6, 0x4000);  // DF alone is fine
  FixIpv4Checksum(&last, 14);
  EXPECT_EQ(Parse(last), DropReason::kNone);
}

TEST(DropTest, LengthsInconsistentWithTheFrame) {
  {  // IPv4 total length beyond the frame, below IP+UDP, or disagreeing with UDP.
    const Bytes f = BuildFrame(NetworkType::kRoceV2Ipv4, op::kRcSendOnly, false, 8);
    for (uint16_t total : {static_cast<uint16_t>(f.size() - 14 + 1), uint16_t{27}, uint16_t{0}}) {
      Bytes g = f;
      Put16(&g, 16, total);
      FixIpv4Checksum(&g, 14);
      EXPECT_EQ(Parse(g), DropReason::kBadLength) << total;
    }
    Bytes udp = f;
    Put16(&udp, 38, static_cast<uint16_t>(f.size() - 34 - 4));
    EXPECT_EQ(Parse(udp), DropReason::kBadLength);
  }
  {  // IPv6 payload length beyond the frame or below UDP; UDP length disagreeing.
    const Bytes f = BuildFrame(NetworkType::kRoceV2Ipv6, op::kRcSendOnly, false, 8);
    for (uint16_t paylen : {static_cast<uint16_t>(f.size() - 54 + 1), uint16_t{7}}) {
      Bytes g = f;
      Put16(&g, 18, paylen);
      EXPECT_EQ(Parse(g), DropReason::kBadLength) << paylen;
    }
    Bytes udp = f;
    Put16(&udp, 58, static_cast<uint16_t>(f.size() - 54 - 4));
    EXPECT_EQ(Parse(udp), DropReason::kBadLength);
    Bytes jumbo = f;  // UDP length 0 (jumbogram) is not supported either
    Put16(&jumbo, 58, 0);
    EXPECT_EQ(Parse(jumbo), DropReason::kBadLength);
  }
  {  // GRH PayLen beyond the frame.
    Bytes f = BuildFrame(NetworkType::kRoceV1, op::kRcSendOnly, false, 8);
    Put16(&f, 18, static_cast<uint16_t>(f.size() - 54 + 1));
    EXPECT_EQ(Parse(f), DropReason::kBadLength);
  }
}

TEST(DropTest, BadTver) {
  for (NetworkType type :
       {NetworkType::kRoceV1, NetworkType::kRoceV2Ipv4, NetworkType::kRoceV2Ipv6}) {
    RocePacket pkt = testing::SamplePacket(type, op::kRcSendOnly, false);
    pkt.bth.tver = 1;
    const Bytes f = BuildFrame(&pkt, testing::Pattern(8));  // sealed: the ICRC is right
    EXPECT_EQ(Parse(f), DropReason::kBadTver);
  }
}

TEST(DropTest, UnsupportedOpcodes) {
  // RD, UD other than SEND Only, CNP, reserved RC/UC/XRC values (XRC has no ATOMIC WRITE).
  for (int opc : {0x15, 0x18, 0x1f, 0x2c, 0x31, 0x40, 0x4c, 0x60, 0x66, 0x81, 0xb5, 0xb8, 0xbd,
                  0xbf, 0xc0, 0xff}) {
    RocePacket pkt = testing::SamplePacket(NetworkType::kRoceV2Ipv4, op::kRcSendOnly, false);
    pkt.bth.opcode = static_cast<uint8_t>(opc);
    const Bytes f = BuildFrame(&pkt, testing::Pattern(16));
    EXPECT_EQ(Parse(f), DropReason::kUnsupportedOpcode) << opc;
  }
}

TEST(DropTest, BadPad) {
  // More pad than payload+pad bytes.
  RocePacket pkt = testing::SamplePacket(NetworkType::kRoceV2Ipv6, op::kRcSendMiddle, false);
  Bytes f = BuildFrame(&pkt, {});  // empty payload, PadCnt 0
  f[pkt.bth_off + 1] |= 0x10;
  FixIcrc(&f, pkt.l3_off, pkt.frame_len, pkt.net.type);
  EXPECT_EQ(Parse(f), DropReason::kBadPad);
  // Any pad on an opcode without payload.
  RocePacket ack = testing::SamplePacket(NetworkType::kRoceV1, op::kRcAcknowledge, false);
  Bytes a = BuildFrame(&ack, {});
  a[ack.bth_off + 1] |= 0x20;
  FixIcrc(&a, ack.l3_off, ack.frame_len, ack.net.type);
  EXPECT_EQ(Parse(a), DropReason::kBadPad);
  // PadCnt 3 with exactly 3 bytes after the headers is an empty payload, which is fine.
  RocePacket ok = testing::SamplePacket(NetworkType::kRoceV2Ipv4, op::kRcSendOnly, false);
  Bytes o = BuildFrame(&ok, testing::Pattern(1));
  RocePacket p;
  ASSERT_EQ(ParseFrame(o.data(), static_cast<uint32_t>(o.size()), &p), DropReason::kNone);
  EXPECT_EQ(p.bth.pad, 3);
  EXPECT_EQ(p.payload_len, 1u);
}

TEST(DropTest, PayloadOnOpcodesThatCarryNone) {
  for (uint8_t opc : {op::kRcAcknowledge, op::kRcReadRequest, op::kRcCompareSwap, op::kRcFetchAdd,
                      op::kRcAtomicAcknowledge}) {
    RocePacket pkt = testing::SamplePacket(NetworkType::kRoceV2Ipv4, opc, true);
    const Bytes f = BuildFrame(&pkt, testing::Pattern(4));  // the encoder does not refuse
    EXPECT_EQ(Parse(f), DropReason::kUnexpectedPayload) << int(opc);
  }
}

TEST(DropTest, BadIcrc) {
  for (NetworkType type :
       {NetworkType::kRoceV1, NetworkType::kRoceV2Ipv4, NetworkType::kRoceV2Ipv6}) {
    Bytes f = BuildFrame(type, op::kRcSendOnly, false, 100);
    f[f.size() - 50] ^= 0x80;  // payload
    EXPECT_EQ(Parse(f), DropReason::kBadIcrc);
    Bytes g = BuildFrame(type, op::kRcSendOnly, false, 100);
    g[g.size() - 1] ^= 0x01;  // the ICRC itself
    EXPECT_EQ(Parse(g), DropReason::kBadIcrc);
  }
}

TEST(DropTest, NeverReadsOutsideTheFrame) {
  GuardedBuffer guard;
  RocePacket p;
  std::mt19937 rng(7);
  std::vector<Bytes> seeds;
  for (NetworkType type :
       {NetworkType::kRoceV1, NetworkType::kRoceV2Ipv4, NetworkType::kRoceV2Ipv6}) {
    for (bool vlan : {false, true}) {
      for (uint8_t opc : testing::ValidOpcodes()) {
        seeds.push_back(BuildFrame(type, opc, vlan, rng() % 40));
      }
    }
  }
  int parsed = 0;
  for (const Bytes& seed : seeds) {
    for (size_t len = 0; len <= seed.size(); ++len) {  // every truncation
      guard.Parse(seed.data(), len, &p);
    }
    for (int i = 0; i < 200; ++i) {  // header mutations, including lengths
      Bytes m = seed;
      const int flips = 1 + static_cast<int>(rng() % 4);
      for (int k = 0; k < flips; ++k) {
        m[rng() % std::min<size_t>(m.size(), 100)] = static_cast<uint8_t>(rng());
      }
      const size_t len = (rng() % 4 == 0) ? rng() % (m.size() + 1) : m.size();
      const DropReason r = guard.Parse(m.data(), len, &p);
      if (r == DropReason::kNone) {
        ASSERT_LE(p.frame_len, len);
        ASSERT_LE(p.payload_len + p.bth_off, p.frame_len);
        ++parsed;
      }
    }
  }
  for (int i = 0; i < 20000; ++i) {  // random bytes behind plausible Ethernet headers
    Bytes m(rng() % 200);
    for (auto& b : m) b = static_cast<uint8_t>(rng());
    if (m.size() >= 14) {
      static const uint16_t kTypes[] = {0x0800, 0x86dd, 0x8915, 0x8100};
      Put16(&m, 12, kTypes[rng() % 4]);
    }
    guard.Parse(m.data(), m.size(), &p);
  }
  EXPECT_GT(parsed, 0);  // masked-field mutations still parse
}

}  // namespace
}  // namespace vrdma::driver::wire
