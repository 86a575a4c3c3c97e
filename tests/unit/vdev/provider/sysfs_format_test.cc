// vdev/provider/sysfs_format.h: the paths of the sysfs view, and attribute texts as the
// kernel's drivers/infiniband/core/sysfs.c writes them.
#include "vdev/provider/sysfs_format.h"

#include <gtest/gtest.h>

namespace vrdma::provider::sysfs {
namespace {

TEST(SysfsClassPath, TheThreeClassDirectoriesAndWhatIsInThem) {
  EXPECT_EQ(ClassPath("/sys/class/infiniband"), "infiniband");
  EXPECT_EQ(ClassPath("/sys/class/infiniband/"), "infiniband/");
  EXPECT_EQ(ClassPath("/sys/class/infiniband/vdev_a/ports/1/gids/0"),
            "infiniband/vdev_a/ports/1/gids/0");
  EXPECT_EQ(ClassPath("/sys/class/infiniband_verbs/abi_version"), "infiniband_verbs/abi_version");
  EXPECT_EQ(ClassPath("/sys/class/infiniband_mad"), "infiniband_mad");
  for (const char* other :
       {"/sys/class/infinibandx", "/sys/class/infiniband_verbsx/a", "/sys/class/infiniband_cm",
        "/sys/class/net/vrd0", "sys/class/infiniband", "/sys/class/infini",
        "/dev/infiniband/rdma_cm", "", "/sys/class/INFINIBAND"}) {
    EXPECT_TRUE(ClassPath(other).empty()) << other;
  }
  EXPECT_TRUE(ClassPath(nullptr).empty());
}

TEST(SysfsText, GuidsAndGidsInTheKernelsGroupsOfFour) {
  // Network order in memory: 02:11:22:ff:fe:33:44:55.
  const uint64_t guid_be = 0x554433feff221102ull;
  EXPECT_EQ(Guid(guid_be), "0211:22ff:fe33:4455\n");
  const uint8_t gid[16] = {0xfe, 0x80, 0,    0,    0,    0,    0,    0,
                           0x02, 0x11, 0x22, 0xff, 0xfe, 0x33, 0x44, 0x55};
  EXPECT_EQ(Gid(gid), "fe80:0000:0000:0000:0211:22ff:fe33:4455\n");
  const uint8_t v4[16] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 10, 77, 0, 1};
  EXPECT_EQ(Gid(v4), "0000:0000:0000:0000:0000:ffff:0a4d:0001\n");
  EXPECT_EQ(GidType(IBV_GID_TYPE_ROCE_V2), "RoCE v2\n");
  EXPECT_EQ(GidType(IBV_GID_TYPE_ROCE_V1), "IB/RoCE v1\n");
}

TEST(SysfsText, PortStateRateAndLinkLayer) {
  EXPECT_EQ(PortState(IBV_PORT_ACTIVE), "4: ACTIVE\n");
  EXPECT_EQ(PortState(IBV_PORT_DOWN), "1: DOWN\n");
  EXPECT_EQ(PortState(9), "9: UNKNOWN\n");
  EXPECT_EQ(PhysState(5), "5: LinkUp\n");
  EXPECT_EQ(PhysState(3), "3: Disabled\n");
  EXPECT_EQ(PhysState(2), "2: Polling\n");
  EXPECT_EQ(PhysState(42), "42: <unknown>\n");
  EXPECT_EQ(Rate(32, 2), "100 Gb/sec (4X EDR)\n");  // EDR, 4X
  EXPECT_EQ(Rate(1, 1), "2.5 Gb/sec (1X SDR)\n");
  EXPECT_EQ(Rate(16, 2), "56 Gb/sec (4X FDR)\n");
  EXPECT_EQ(Rate(64, 16), "100 Gb/sec (2X HDR)\n");
  EXPECT_EQ(Rate(128, 8), "1200 Gb/sec (12X NDR)\n");
  EXPECT_EQ(LinkLayer(IBV_LINK_LAYER_ETHERNET), "Ethernet\n");
  EXPECT_EQ(LinkLayer(IBV_LINK_LAYER_INFINIBAND), "InfiniBand\n");
  EXPECT_EQ(NodeType(), "1: CA\n");
}

}  // namespace
}  // namespace vrdma::provider::sysfs
