// cm/route: IP socket addresses as RoCE GIDs, and the checks a client's addresses pass.
#include "cm/route.h"

#include <arpa/inet.h>

#include <cerrno>

#include "gtest/gtest.h"

namespace vrdma::cm {
namespace {

sockaddr_storage V4(const char* ip, uint16_t port) {
  sockaddr_storage ss{};
  auto* in = reinterpret_cast<sockaddr_in*>(&ss);
  in->sin_family = AF_INET;
  in->sin_port = htons(port);
  inet_pton(AF_INET, ip, &in->sin_addr);
  return ss;
}

sockaddr_storage V6(const char* ip, uint16_t port) {
  sockaddr_storage ss{};
  auto* in6 = reinterpret_cast<sockaddr_in6*>(&ss);
  in6->sin6_family = AF_INET6;
  in6->sin6_port = htons(port);
  inet_pton(AF_INET6, ip, &in6->sin6_addr);
  return ss;
}

TEST(RouteTest, Ipv4IsTheMappedGidAndBack) {
  std::optional<Gid> g = GidOfSockaddr(V4("10.77.0.1", 7171));
  ASSERT_TRUE(g);
  const Gid want = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 10, 77, 0, 1};
  EXPECT_EQ(*g, want);
  EXPECT_TRUE(IsIpv4Mapped(*g));
  sockaddr_storage back = SockaddrOfGid(*g, 7171);
  EXPECT_EQ(back.ss_family, AF_INET);
  EXPECT_EQ(PortOf(back), 7171);
  EXPECT_EQ(GidOfSockaddr(back), g);
}

TEST(RouteTest, Ipv6IsItsOwnGid) {
  std::optional<Gid> g = GidOfSockaddr(V6("fd00:77::1", 1));
  ASSERT_TRUE(g);
  EXPECT_EQ((*g)[0], 0xfd);
  EXPECT_EQ((*g)[15], 1);
  EXPECT_FALSE(IsIpv4Mapped(*g));
  EXPECT_EQ(SockaddrOfGid(*g, 1).ss_family, AF_INET6);
}

TEST(RouteTest, WildcardsAndPorts) {
  EXPECT_TRUE(IsAnyAddress(V4("0.0.0.0", 5)));
  EXPECT_TRUE(IsAnyAddress(V6("::", 5)));
  EXPECT_FALSE(IsAnyAddress(V4("10.0.0.1", 5)));
  sockaddr_storage a = V6("::", 0);
  SetPort(&a, 4791);
  EXPECT_EQ(PortOf(a), 4791);
}

TEST(RouteTest, ClientAddressesAreChecked) {
  EXPECT_EQ(CheckSockaddr(V4("10.0.0.1", 1), sizeof(sockaddr_in)), 0);
  EXPECT_EQ(CheckSockaddr(V4("10.0.0.1", 1), 4), EINVAL);
  EXPECT_EQ(CheckSockaddr(V6("::1", 1), sizeof(sockaddr_in)), EINVAL);
  sockaddr_storage ib{};
  ib.ss_family = AF_IB;
  EXPECT_EQ(CheckSockaddr(ib, sizeof ib), EAFNOSUPPORT) << "AF_IB: librdmacm then speaks IP";
  sockaddr_storage none{};
  EXPECT_EQ(CheckSockaddr(none, 0), EINVAL);
}

TEST(RouteTest, TheKernelsRouteToLoopback) {
  // The daemon's own routing table answers (RTM_GETROUTE): 127.0.0.1 leaves by lo.
  Gid lo{};
  lo[10] = lo[11] = 0xff;
  lo[12] = 127;
  lo[15] = 1;
  absl::StatusOr<RouteAnswer> r = LookupRoute(lo);
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->ifindex, 1);
}

}  // namespace
}  // namespace vrdma::cm
