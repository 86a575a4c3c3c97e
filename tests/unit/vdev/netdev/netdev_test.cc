#include <gtest/gtest.h>
#include <fcntl.h>
#include <poll.h>
#include <sched.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>

#include <algorithm>

#include "tests/unit/vdev/netdev/netns.h"
#include "vdev/netdev/netdev_info.h"
#include "vdev/netdev/netlink_watch.h"
#include "vdev/netdev/netns.h"
#include "vdev/netdev/roce_gid_table.h"

namespace vrdma::vdev {
namespace {

TEST(RoceGidTable, KernelOrderAndTypes) {
  NetdevInfo info;
  info.mac = {0x02, 0x11, 0x22, 0x33, 0x44, 0x55};
  info.ipv4 = {{10, 0, 0, 1}};
  driver::wire::Gid v6{0x20, 0x01, 0x0d, 0xb8};
  v6[15] = 7;
  info.ipv6 = {v6};
  auto t = BuildRoceGidTable(info, 16);
  ASSERT_EQ(t.size(), 6u);
  // fe80::(02^02)11:22ff:fe33:4455 — the modified EUI-64 of the MAC.
  driver::wire::Gid ll{0xfe, 0x80, 0,    0,    0,    0,    0,    0,
                       0x00, 0x11, 0x22, 0xff, 0xfe, 0x33, 0x44, 0x55};
  EXPECT_EQ(t[0].gid, ll);
  EXPECT_EQ(t[0].type, driver::wire::NetworkType::kRoceV1);
  EXPECT_EQ(t[1].gid, ll);
  EXPECT_EQ(t[1].type, driver::wire::NetworkType::kRoceV2Ipv6);
  driver::wire::Gid mapped{0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 10, 0, 0, 1};
  EXPECT_EQ(t[2].gid, mapped);
  EXPECT_EQ(t[2].type, driver::wire::NetworkType::kRoceV1);
  EXPECT_EQ(t[3].type, driver::wire::NetworkType::kRoceV2Ipv4);
  EXPECT_EQ(t[4].gid, v6);
  EXPECT_EQ(t[5].type, driver::wire::NetworkType::kRoceV2Ipv6);
  for (const auto& e : t) {
    EXPECT_TRUE(e.valid);
    EXPECT_EQ(e.mac, info.mac);
  }
  EXPECT_EQ(BuildRoceGidTable(info, 3).size(), 3u);
}

TEST(Netdev, ReadsTheKernelsInterface) {
  if (!testing::PrivateNetns()) GTEST_SKIP() << "needs root for a network namespace";
  auto info = ReadNetdev("vt0");
  ASSERT_TRUE(info.ok()) << info.status();
  EXPECT_GT(info->ifindex, 0);
  EXPECT_EQ(info->mac, (driver::wire::MacAddr{0x02, 0x11, 0x22, 0x33, 0x44, 0x55}));
  EXPECT_EQ(info->mtu, 1500u);
  ASSERT_EQ(info->ipv4.size(), 1u);
  EXPECT_EQ(info->ipv4[0], (std::array<uint8_t, 4>{10, 9, 8, 7}));
  ASSERT_EQ(info->ipv6.size(), 1u);  // the link-local address is left to the default GID
  EXPECT_EQ(info->ipv6[0][0], 0x20);
  EXPECT_TRUE(absl::IsNotFound(ReadNetdev("nosuchif0").status()));
  EXPECT_FALSE(ReadNetdev("").ok());
}

// Only the kernel's "no such device" means an interface is gone: a lookup that fails for
// want of a descriptor says nothing about it (vrdmad deletes a vdev on NotFound; issue 12,
// item 6). Run in a child whose descriptor limit is then exhausted.
TEST(Netdev, ALookupWithoutDescriptorsIsNotNotFound) {
  pid_t child = fork();
  ASSERT_GE(child, 0);
  if (child == 0) {
    rlimit lim{64, 64};
    if (setrlimit(RLIMIT_NOFILE, &lim) != 0) _exit(10);
    while (open("/dev/null", O_RDONLY) >= 0) {
    }
    if (errno != EMFILE) _exit(10);
    absl::StatusOr<NetdevInfo> lo = ReadNetdev("lo");
    if (lo.ok()) _exit(11);
    if (absl::IsNotFound(lo.status())) _exit(12);
    _exit(absl::IsUnavailable(lo.status()) ? 0 : 13);
  }
  int status = 0;
  ASSERT_EQ(waitpid(child, &status, 0), child);
  ASSERT_TRUE(WIFEXITED(status));
  EXPECT_EQ(WEXITSTATUS(status), 0) << "10: setrlimit, 11: read, 12: NotFound, 13: other";
  EXPECT_TRUE(absl::IsNotFound(ReadNetdev("vrdma-no-such").status()));
}

TEST(Netdev, WatchSeesAddressChangesAndRemoval) {
  if (!testing::PrivateNetns()) GTEST_SKIP() << "needs root for a network namespace";
  auto watch = NetlinkWatch::Open();
  ASSERT_TRUE(watch.ok());
  ASSERT_EQ(std::system("ip link add vt2 type veth peer name vt3"), 0);
  int idx = ReadNetdev("vt2")->ifindex;
  (*watch)->Drain();
  ASSERT_EQ(std::system("ip addr add 10.1.1.1/24 dev vt2"), 0);
  NetlinkWatch::Changes c;
  for (int i = 0; i < 50 && std::find(c.changed.begin(), c.changed.end(), idx) == c.changed.end();
       ++i) {
    pollfd p{(*watch)->fd(), POLLIN, 0};
    poll(&p, 1, 100);
    auto more = (*watch)->Drain();
    c.changed.insert(c.changed.end(), more.changed.begin(), more.changed.end());
  }
  EXPECT_NE(std::find(c.changed.begin(), c.changed.end(), idx), c.changed.end());
  ASSERT_EQ(std::system("ip link del vt2"), 0);
  for (int i = 0; i < 50 && std::find(c.removed.begin(), c.removed.end(), idx) == c.removed.end();
       ++i) {
    pollfd p{(*watch)->fd(), POLLIN, 0};
    poll(&p, 1, 100);
    auto more = (*watch)->Drain();
    c.removed.insert(c.removed.end(), more.removed.begin(), more.removed.end());
  }
  EXPECT_NE(std::find(c.removed.begin(), c.removed.end(), idx), c.removed.end());
}

uint64_t CurrentCookie() {
  int s = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  uint64_t cookie = 0;
  socklen_t len = sizeof cookie;
  getsockopt(s, SOL_SOCKET, SO_NETNS_COOKIE, &cookie, &len);
  close(s);
  return cookie;
}

// A container's namespace: its interface is read and watched there, from the daemon's
// namespace, and the thread comes back where it was.
TEST(Netns, ReadsAndWatchesAnotherNamespace) {
  if (!testing::PrivateNetns()) GTEST_SKIP() << "needs root for a network namespace";
  const uint64_t home_cookie = CurrentCookie();
  int home = open("/proc/thread-self/ns/net", O_RDONLY | O_CLOEXEC);
  ASSERT_GE(home, 0);
  ASSERT_EQ(unshare(CLONE_NEWNET), 0);
  int other = open("/proc/thread-self/ns/net", O_RDONLY | O_CLOEXEC);
  ASSERT_EQ(std::system("ip link add c0 type veth peer name c1 && ip link set c0 up && "
                        "ip addr add 10.5.5.5/24 dev c0"),
            0);
  ASSERT_EQ(setns(home, CLONE_NEWNET), 0);
  close(home);
  auto ns = Netns::Adopt(other);
  ASSERT_TRUE(ns.ok()) << ns.status();
  EXPECT_NE((*ns)->cookie(), home_cookie);
  EXPECT_TRUE(absl::IsNotFound(ReadNetdev("c0").status()));  // not in this namespace
  auto info = ReadNetdevIn(ns->get(), "c0");
  ASSERT_TRUE(info.ok()) << info.status();
  ASSERT_EQ(info->ipv4.size(), 1u);
  EXPECT_EQ(info->ipv4[0][3], 5);
  EXPECT_EQ(CurrentCookie(), home_cookie);

  auto watch = NetlinkWatch::Open(ns->get());
  ASSERT_TRUE(watch.ok());
  EXPECT_EQ(CurrentCookie(), home_cookie);
  {
    NetnsScope scope(ns->get());
    ASSERT_TRUE(scope.entered());
    EXPECT_EQ(CurrentCookie(), (*ns)->cookie());
    ASSERT_EQ(std::system("ip addr add 10.6.6.6/24 dev c0"), 0);
  }
  EXPECT_EQ(CurrentCookie(), home_cookie);
  NetlinkWatch::Changes c;
  for (int i = 0; i < 50 && std::find(c.changed.begin(), c.changed.end(), info->ifindex) ==
                                c.changed.end();
       ++i) {
    pollfd p{(*watch)->fd(), POLLIN, 0};
    poll(&p, 1, 100);
    auto more = (*watch)->Drain();
    c.changed.insert(c.changed.end(), more.changed.begin(), more.changed.end());
  }
  EXPECT_NE(std::find(c.changed.begin(), c.changed.end(), info->ifindex), c.changed.end());

  EXPECT_TRUE(absl::IsInvalidArgument(Netns::Adopt(open("/dev/null", O_RDONLY)).status()));
  EXPECT_TRUE(absl::IsInvalidArgument(Netns::Adopt(-1).status()));
}

}  // namespace
}  // namespace vrdma::vdev
