#include "vfio/xsk_wake.h"

#include <gtest/gtest.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

namespace vrdma::vfio {
namespace {

// An unbound XDP socket, as the PMD's queue setup makes one (CAP_NET_RAW).
int NewXdpSocket() { return socket(AF_XDP, SOCK_RAW | SOCK_CLOEXEC, 0); }

#define NEED_XDP_SOCKET(fd)                                                     \
  if ((fd) < 0 && (errno == EPERM || errno == EAFNOSUPPORT || errno == EACCES)) \
  GTEST_SKIP() << "no AF_XDP socket here: " << strerror(errno)

TEST(XskWake, AdoptsTheOneSocketQueueSetupMade) {
  std::vector<int> before = AfXdpSockets();
  int xsk = NewXdpSocket();
  NEED_XDP_SOCKET(xsk);
  ASSERT_GE(xsk, 0);
  std::vector<int> now = AfXdpSockets();
  EXPECT_NE(std::find(now.begin(), now.end(), xsk), now.end());
  absl::StatusOr<std::unique_ptr<XskWake>> wake = XskWake::Adopt(before);
  ASSERT_TRUE(wake.ok()) << wake.status();
  // Its own descriptor of the same socket, which outlives the PMD's.
  EXPECT_NE((*wake)->fd(), xsk);
  int domain = 0;
  socklen_t len = sizeof domain;
  ASSERT_EQ(getsockopt((*wake)->fd(), SOL_SOCKET, SO_DOMAIN, &domain, &len), 0);
  EXPECT_EQ(domain, AF_XDP);
  close(xsk);
  EXPECT_EQ(getsockopt((*wake)->fd(), SOL_SOCKET, SO_DOMAIN, &domain, &len), 0);
}

TEST(XskWake, RefusesNoneAndMoreThanOne) {
  std::vector<int> before = AfXdpSockets();
  absl::StatusOr<std::unique_ptr<XskWake>> none = XskWake::Adopt(before);
  EXPECT_EQ(none.status().code(), absl::StatusCode::kNotFound);
  int a = NewXdpSocket();
  NEED_XDP_SOCKET(a);
  int b = NewXdpSocket();
  ASSERT_GE(b, 0);
  absl::StatusOr<std::unique_ptr<XskWake>> two = XskWake::Adopt(before);
  EXPECT_EQ(two.status().code(), absl::StatusCode::kFailedPrecondition);
  close(a);
  close(b);
}

TEST(XskWake, OtherSocketsAreNotXdp) {
  int udp = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  ASSERT_GE(udp, 0);
  std::vector<int> xdp = AfXdpSockets();
  EXPECT_EQ(std::find(xdp.begin(), xdp.end(), udp), xdp.end());
  close(udp);
}

}  // namespace
}  // namespace vrdma::vfio
