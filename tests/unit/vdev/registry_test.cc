// vdev/registry.cc without a daemon: vdevs on an embedded pdev bound to interfaces of a
// network namespace of the test's own (root), names, GID tables, quotas.
#include "vdev/registry.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <string>

#include "tests/unit/vdev/netdev/netns.h"
#include "vdev/netdev/netdev_info.h"
#include "vdev/netdev/roce_gid_table.h"

namespace vrdma::vdev {
namespace {

TEST(ValidDeviceName, AsTheKernelChecksIbDeviceNames) {
  for (std::string ok : {std::string("a"), std::string("vdev_a"), std::string("mlx5_0"),
                         std::string("v-1.2:3"), std::string("x!y"), std::string(63, 'n')}) {
    EXPECT_TRUE(ValidDeviceName(ok)) << ok;
  }
  for (std::string bad :
       {std::string(), std::string(64, 'n'), std::string("a b"), std::string("a/b"),
        std::string("a%d"), std::string("tab\there"), std::string("nl\n"), std::string("del\x7f"),
        std::string("\xc3\xa9t\xc3\xa9"), std::string("nul\0x", 5), std::string("."),
        std::string("..")}) {
    EXPECT_FALSE(ValidDeviceName(bad)) << bad;
  }
}

class RegistryTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!testing::PrivateNetns()) GTEST_SKIP() << "needs root for a network namespace";
    static int n = 0;
    auto pdev = Pdev::CreateEmbedded("rpdev" + std::to_string(n++));
    ASSERT_TRUE(pdev.ok()) << pdev.status();
    pdev_ = pdev->get();
    ASSERT_TRUE(registry_.AddPdev(std::move(*pdev)).ok());
  }
  // The device's GID table entries [base, base + 16), as the engine sees them.
  std::vector<driver::GidEntry> DeviceGids(uint32_t base) {
    std::vector<driver::GidEntry> out;
    for (uint32_t i = 0; i < kGidsPerVdev; ++i) {
      const driver::GidEntry* e = pdev_->device->GetGid(base + i);
      out.push_back(e ? *e : driver::GidEntry{});
    }
    return out;
  }
  Registry registry_;
  Pdev* pdev_ = nullptr;
};

TEST_F(RegistryTest, AddBuildsTheVdevFromItsInterface) {
  auto v = registry_.AddVdev("va", pdev_->name, "vt0");
  ASSERT_TRUE(v.ok()) << v.status();
  auto info = ReadNetdev("vt0");
  ASSERT_TRUE(info.ok());
  EXPECT_EQ((*v)->name, "va");
  EXPECT_EQ((*v)->pdev, pdev_);
  EXPECT_EQ((*v)->netdev, "vt0");
  EXPECT_EQ((*v)->ifindex, info->ifindex);
  EXPECT_EQ((*v)->mac, (driver::wire::MacAddr{0x02, 0x11, 0x22, 0x33, 0x44, 0x55}));
  EXPECT_EQ((*v)->netdev_mtu, 1500u);
  EXPECT_EQ((*v)->ActiveMtu(), IBV_MTU_1024);  // 1500 less the RoCEv2 headers
  // The node GUID: the MAC's modified EUI-64 (02 -> 00, ff:fe in the middle).
  const uint8_t guid[8] = {0x00, 0x11, 0x22, 0xff, 0xfe, 0x33, 0x44, 0x55};
  EXPECT_EQ(std::memcmp(&(*v)->node_guid_be, guid, 8), 0);
  // Quotas: a share of the pdev (1/8 by default), leaving room for the other vdevs.
  EXPECT_EQ((*v)->quota, registry_.DefaultQuota(*pdev_));
  EXPECT_NE((*v)->quota, Registry::PdevLimits(*pdev_));
  EXPECT_EQ((*v)->used, ResourceCounts{});
  // The GID table: the kernel's for that interface, written into the device's block.
  std::vector<driver::GidEntry> want = BuildRoceGidTable(*info, kGidsPerVdev);
  ASSERT_EQ(want.size(), 6u);  // link-local v1/v2, 10.9.8.7 v1/v2, 2001:db8::7 v1/v2
  EXPECT_EQ((*v)->gids, want);
  EXPECT_EQ((*v)->gid_base, 0u);
  std::vector<driver::GidEntry> dev = DeviceGids(0);
  for (uint32_t i = 0; i < kGidsPerVdev; ++i) {
    EXPECT_EQ(dev[i], i < want.size() ? want[i] : driver::GidEntry{}) << i;
  }
  EXPECT_EQ(registry_.FindVdev("va"), *v);
  EXPECT_EQ(registry_.FindVdevByIfindex(info->ifindex), *v);
  EXPECT_EQ(registry_.FindVdev("vb"), nullptr);
  EXPECT_EQ(registry_.FindVdevByIfindex(0), nullptr);
  // An interface index is its namespace's own: another namespace's is not this one.
  EXPECT_EQ(registry_.FindVdevByIfindex(info->ifindex, NamespaceId{~uint64_t{0}}), nullptr);
  EXPECT_EQ(registry_.NetnsHandle(registry_.netns()), nullptr);
  // A second vdev takes the next block of the device's table.
  auto w = registry_.AddVdev("vb", pdev_->name, "vt1");
  ASSERT_TRUE(w.ok()) << w.status();
  EXPECT_EQ((*w)->gid_base, kGidsPerVdev);
  EXPECT_NE((*w)->id, (*v)->id);
  EXPECT_EQ(DeviceGids(kGidsPerVdev)[2].gid,
            (driver::wire::Gid{0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 10, 9, 8, 8}));
}

TEST_F(RegistryTest, RefusalsChangeNothing) {
  ASSERT_TRUE(registry_.AddVdev("va", pdev_->name, "vt0").ok());
  std::vector<driver::GidEntry> before = DeviceGids(kGidsPerVdev);
  EXPECT_TRUE(absl::IsInvalidArgument(registry_.AddVdev("bad/name", pdev_->name, "vt1").status()));
  EXPECT_TRUE(absl::IsInvalidArgument(registry_.AddVdev("", pdev_->name, "vt1").status()));
  EXPECT_TRUE(absl::IsAlreadyExists(registry_.AddVdev("va", pdev_->name, "vt1").status()));
  EXPECT_TRUE(absl::IsAlreadyExists(registry_.AddVdev(pdev_->name, pdev_->name, "vt1").status()));
  EXPECT_TRUE(absl::IsAlreadyExists(registry_.AddVdev("vb", pdev_->name, "vt0").status()));
  EXPECT_TRUE(absl::IsNotFound(registry_.AddVdev("vb", "nopdev", "vt1").status()));
  EXPECT_TRUE(absl::IsNotFound(registry_.AddVdev("vb", pdev_->name, "nosuch0").status()));
  EXPECT_EQ(registry_.vdevs().size(), 1u);
  EXPECT_EQ(DeviceGids(kGidsPerVdev), before);
  EXPECT_EQ(std::count(pdev_->gid_block_used.begin(), pdev_->gid_block_used.end(), true), 1);
  EXPECT_TRUE(absl::IsNotFound(registry_.DelVdev("vb")));
  EXPECT_TRUE(absl::IsNotFound(registry_.DelVdev(pdev_->name)));
  EXPECT_EQ(registry_.vdevs().size(), 1u);
}

TEST_F(RegistryTest, DeleteClearsTheGidsAndFreesTheBlock) {
  ASSERT_TRUE(registry_.AddVdev("va", pdev_->name, "vt0").ok());
  ASSERT_TRUE(registry_.AddVdev("vb", pdev_->name, "vt1").ok());
  ASSERT_TRUE(registry_.DelVdev("va").ok());
  EXPECT_EQ(registry_.FindVdev("va"), nullptr);
  for (const driver::GidEntry& e : DeviceGids(0)) EXPECT_FALSE(e.valid);
  EXPECT_TRUE(DeviceGids(kGidsPerVdev)[0].valid);  // vb's untouched
  // The freed block is taken again, and the interface may be bound again.
  auto v = registry_.AddVdev("vc", pdev_->name, "vt0");
  ASSERT_TRUE(v.ok()) << v.status();
  EXPECT_EQ((*v)->gid_base, 0u);
  EXPECT_TRUE(DeviceGids(0)[0].valid);
}

TEST_F(RegistryTest, RefreshFollowsTheInterface) {
  ASSERT_EQ(std::system("ip link add vr0 type veth peer name vr1 && ip link set vr0 up"), 0);
  auto v = registry_.AddVdev("va", pdev_->name, "vr0");
  ASSERT_TRUE(v.ok()) << v.status();
  size_t n = (*v)->gids.size();
  ASSERT_EQ(std::system("ip addr add 10.66.0.1/24 dev vr0 && ip link set vr0 mtu 4200"), 0);
  ASSERT_TRUE(registry_.RefreshGids(**v).ok());
  EXPECT_EQ((*v)->gids.size(), n + 2);  // RoCEv1 and RoCEv2 entries of the address
  EXPECT_EQ((*v)->netdev_mtu, 4200u);
  EXPECT_EQ((*v)->ActiveMtu(), IBV_MTU_4096);
  const driver::wire::Gid mapped{0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 10, 66, 0, 1};
  bool found = false;
  for (uint32_t i = 0; i < kGidsPerVdev; ++i) {
    found |= DeviceGids((*v)->gid_base)[i].gid == mapped;
  }
  EXPECT_TRUE(found);
  ASSERT_EQ(std::system("ip link del vr0"), 0);
  EXPECT_TRUE(absl::IsNotFound(registry_.RefreshGids(**v)));
  ASSERT_TRUE(registry_.DelVdev("va").ok());
}

TEST_F(RegistryTest, QuotasNeverBelowUseNorAboveThePdev) {
  auto v = registry_.AddVdev("va", pdev_->name, "vt0");
  ASSERT_TRUE(v.ok()) << v.status();
  Vdev& vd = **v;
  const ResourceCounts limits = Registry::PdevLimits(*pdev_);
  ASSERT_GT(limits[static_cast<size_t>(Resource::kQp)], 4u);
  ASSERT_TRUE(registry_.SetQuotas(vd, {{Resource::kQp, 4}, {Resource::kMrBytes, 1 << 20}}).ok());
  EXPECT_EQ(vd.Quota(Resource::kQp), 4u);
  EXPECT_EQ(vd.Quota(Resource::kMrBytes), uint64_t{1} << 20);
  // Charges stop at the quota.
  for (int i = 0; i < 4; ++i) EXPECT_TRUE(vd.Charge(Resource::kQp));
  EXPECT_FALSE(vd.Charge(Resource::kQp));
  EXPECT_EQ(vd.Used(Resource::kQp), 4u);
  EXPECT_FALSE(vd.Charge(Resource::kMrBytes, (1 << 20) + 1));
  EXPECT_FALSE(vd.Charge(Resource::kMrBytes, UINT64_MAX));
  ResourceCounts before = vd.quota;
  // Below what is in use, with a valid change in the same call: nothing changes.
  absl::Status st = registry_.SetQuotas(vd, {{Resource::kCq, 7}, {Resource::kQp, 3}});
  EXPECT_TRUE(absl::IsFailedPrecondition(st)) << st;
  EXPECT_NE(st.message().find("below the 4 in use"), std::string::npos) << st;
  EXPECT_EQ(vd.quota, before);
  // Above the pdev.
  st = registry_.SetQuotas(
      vd, {{Resource::kCq, 7}, {Resource::kPd, limits[static_cast<size_t>(Resource::kPd)] + 1}});
  EXPECT_TRUE(absl::IsOutOfRange(st)) << st;
  EXPECT_EQ(vd.quota, before);
  // Exactly what is in use, and exactly the pdev's limit, are fine.
  ASSERT_TRUE(registry_
                  .SetQuotas(vd, {{Resource::kQp, 4},
                                  {Resource::kPd, limits[static_cast<size_t>(Resource::kPd)]}})
                  .ok());
  EXPECT_EQ(vd.Quota(Resource::kPd), limits[static_cast<size_t>(Resource::kPd)]);
  vd.Release(Resource::kQp, 4);
  EXPECT_EQ(vd.Used(Resource::kQp), 0u);
  vd.Release(Resource::kQp);  // never below zero
  EXPECT_EQ(vd.Used(Resource::kQp), 0u);
  ASSERT_TRUE(registry_.SetQuotas(vd, {{Resource::kQp, 0}}).ok());
  EXPECT_FALSE(vd.Charge(Resource::kQp));
}

}  // namespace
}  // namespace vrdma::vdev
