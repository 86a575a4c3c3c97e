// RDMA-CM's service IDs and struct cma_hdr (Linux's drivers/infiniband/core/cma.c): the
// byte layout, round trips for IPv4 and IPv6, the rejections, and the header of the REQ
// Linux sent in the rping capture (rxe_rping_mads.h).
#include "cm/wire/cma_header.h"

#include <vector>

#include "absl/status/status.h"
#include "cm/wire/cm_messages.h"
#include "gtest/gtest.h"
#include "tests/unit/cm/wire/rxe_rping_mads.h"

namespace vrdma::cm::wire {
namespace {

using Addr = std::array<uint8_t, 16>;
using HeaderBytes = std::array<uint8_t, kCmaHeaderSize>;

constexpr Addr kV4Src = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 192, 168, 7, 1};
constexpr Addr kV4Dst = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 172, 16, 250, 9};
constexpr Addr kV6Src = {0xfd, 0x00, 0x12, 0x34, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x01};
constexpr Addr kV6Dst = {0xfe, 0x80, 0, 0, 0, 0, 0, 0, 0x52, 0x54, 0, 0xff, 0xfe, 0x12, 0x34, 0x56};

HeaderBytes Build(const CmaHeader& h) {
  HeaderBytes out{};
  BuildCmaHeader(h, out);
  return out;
}

CmaHeader V4() {
  return CmaHeader{.ip_version = 4, .src_port = 0xc64d, .src_addr = kV4Src, .dst_addr = kV4Dst};
}
CmaHeader V6() {
  return CmaHeader{.ip_version = 6, .src_port = 0xfffe, .src_addr = kV6Src, .dst_addr = kV6Dst};
}

TEST(ServiceIdTest, PortSpaceAndPort) {
  EXPECT_EQ(ServiceIdOf(kPsTcp, 7174), 0x0000000001061c06u);
  EXPECT_EQ(ServiceIdOf(kPsUdp, 0xffff), 0x000000000111ffffu);
  EXPECT_EQ(ServiceIdOf(kPsIb, 1), 0x00000000013f0001u);
  EXPECT_EQ(ServiceIdOf(kPsIpoib, 0), 0x0000000000020000u);
  static_assert(ServiceIdOf(kPsTcp, 0) == 0x0000000001060000);  // RDMA_IB_IP_PS_TCP
}

TEST(ServiceIdTest, ParsesEveryIpPortSpace) {
  for (uint16_t ps : {kPsIpoib, kPsTcp, kPsUdp, kPsIb}) {
    for (uint16_t port : {uint16_t{0}, uint16_t{7174}, uint16_t{0xffff}}) {
      uint16_t got_ps = 0;
      uint16_t got_port = 1;
      ASSERT_TRUE(ParseIpServiceId(ServiceIdOf(ps, port), &got_ps, &got_port)) << ps;
      EXPECT_EQ(got_ps, ps);
      EXPECT_EQ(got_port, port);
    }
  }
  EXPECT_TRUE(ParseIpServiceId(0x0000000001061c06, nullptr, nullptr));
}

TEST(ServiceIdTest, RejectsOtherServiceIds) {
  uint16_t ps = 0x5555;
  uint16_t port = 0x5555;
  for (uint64_t sid :
       {uint64_t{0}, uint64_t{0x0000000001070000}, uint64_t{0x00000000ffff0001},
        uint64_t{0x0000000101061c06}, uint64_t{0x1000000001061c06}, uint64_t{0x0002c90300001234}}) {
    EXPECT_FALSE(ParseIpServiceId(sid, &ps, &port)) << std::hex << sid;
  }
  EXPECT_EQ(ps, 0x5555);  // untouched
  EXPECT_EQ(port, 0x5555);
}

TEST(CmaHeaderTest, Ipv4Layout) {
  const HeaderBytes b = Build(V4());
  EXPECT_EQ(b[0], kCmaVersion);
  EXPECT_EQ(b[1], 0x40);  // IP version in the high nibble
  EXPECT_EQ(b[2], 0xc6);  // source port, big-endian
  EXPECT_EQ(b[3], 0x4d);
  for (size_t i = 4; i < 16; ++i) EXPECT_EQ(b[i], 0) << i;
  EXPECT_EQ(b[16], 192);
  EXPECT_EQ(b[19], 1);
  for (size_t i = 20; i < 32; ++i) EXPECT_EQ(b[i], 0) << i;
  EXPECT_EQ(b[32], 172);
  EXPECT_EQ(b[35], 9);
}

TEST(CmaHeaderTest, Ipv6Layout) {
  const HeaderBytes b = Build(V6());
  EXPECT_EQ(b[0], 0x00);
  EXPECT_EQ(b[1], 0x60);
  EXPECT_EQ(b[2], 0xff);
  EXPECT_EQ(b[3], 0xfe);
  EXPECT_TRUE(std::equal(kV6Src.begin(), kV6Src.end(), b.begin() + 4));
  EXPECT_TRUE(std::equal(kV6Dst.begin(), kV6Dst.end(), b.begin() + 20));
}

TEST(CmaHeaderTest, RoundTrips) {
  for (const CmaHeader& h : {V4(), V6()}) {
    const HeaderBytes b = Build(h);
    absl::StatusOr<CmaHeader> parsed = ParseCmaHeader(b);
    ASSERT_TRUE(parsed.ok()) << parsed.status();
    EXPECT_EQ(*parsed, h);
    EXPECT_EQ(Build(*parsed), b);
  }
}

TEST(CmaHeaderTest, ParsesTheStartOfLongerPrivateData) {
  std::array<uint8_t, kReqPrivateData> private_data;
  private_data.fill(0x77);
  const HeaderBytes b = Build(V6());
  std::copy(b.begin(), b.end(), private_data.begin());
  absl::StatusOr<CmaHeader> parsed = ParseCmaHeader(private_data);
  ASSERT_TRUE(parsed.ok()) << parsed.status();
  EXPECT_EQ(*parsed, V6());
}

TEST(CmaHeaderTest, Ipv4PadIsIgnoredAndBuiltZero) {
  HeaderBytes b = Build(V4());
  b[4] = b[15] = b[20] = b[31] = 0xff;  // in the 12 bytes before each IPv4 address
  absl::StatusOr<CmaHeader> parsed = ParseCmaHeader(b);
  ASSERT_TRUE(parsed.ok()) << parsed.status();
  EXPECT_EQ(*parsed, V4());

  CmaHeader mapped = V4();  // a v4-mapped address in the struct: only its last 4 bytes go
  mapped.src_addr[10] = mapped.src_addr[11] = 0xff;
  EXPECT_EQ(Build(mapped), Build(V4()));
}

TEST(CmaHeaderTest, IgnoresTheLowNibbleOfTheIpVersionByte) {
  HeaderBytes b = Build(V6());
  b[1] = 0x6f;
  absl::StatusOr<CmaHeader> parsed = ParseCmaHeader(b);
  ASSERT_TRUE(parsed.ok()) << parsed.status();
  EXPECT_EQ(*parsed, V6());
}

TEST(CmaHeaderTest, RejectsAShortHeader) {
  const HeaderBytes b = Build(V4());
  for (size_t n : {size_t{0}, size_t{4}, kCmaHeaderSize - 1}) {
    EXPECT_EQ(ParseCmaHeader(std::span<const uint8_t>(b.data(), n)).status().code(),
              absl::StatusCode::kInvalidArgument)
        << n;
  }
}

TEST(CmaHeaderTest, RejectsAnotherVersion) {
  for (uint8_t version : {0x01, 0x10, 0xff}) {
    HeaderBytes b = Build(V4());
    b[0] = version;
    EXPECT_EQ(ParseCmaHeader(b).status().code(), absl::StatusCode::kInvalidArgument) << +version;
  }
}

TEST(CmaHeaderTest, RejectsAnotherIpVersion) {
  for (uint8_t ip : {0x00, 0x50, 0x70, 0xf0, 0x04, 0x06}) {
    HeaderBytes b = Build(V4());
    b[1] = ip;
    EXPECT_EQ(ParseCmaHeader(b).status().code(), absl::StatusCode::kInvalidArgument) << +ip;
  }
}

// The cma_hdr at the start of the private data of the REQ Linux's rping client sent:
// IPv4, source port 50765, 10.77.0.4 -> 10.77.0.2.
TEST(CmaHeaderTest, RxeRpingReq) {
  absl::StatusOr<Mad> mad = ParseMad(testdata::kRxeReq);
  ASSERT_TRUE(mad.ok()) << mad.status();
  const Req& req = std::get<Req>(mad->message);
  absl::StatusOr<CmaHeader> h = ParseCmaHeader(req.private_data);
  ASSERT_TRUE(h.ok()) << h.status();
  const CmaHeader expected{.ip_version = 4,
                           .src_port = 50765,
                           .src_addr = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 10, 77, 0, 4},
                           .dst_addr = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 10, 77, 0, 2}};
  EXPECT_EQ(*h, expected);
  // The header sits at MAD byte 24 + 140.
  const HeaderBytes b = Build(*h);
  EXPECT_TRUE(std::equal(b.begin(), b.end(), testdata::kRxeReq.begin() + kMadHeaderSize + 140));
}

}  // namespace
}  // namespace vrdma::cm::wire
