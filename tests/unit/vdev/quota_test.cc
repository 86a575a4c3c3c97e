// Issue 12, item 8 ("one tenant takes everything") without a daemon: the default share of
// a pdev a new vdev gets (Registry::DefaultQuota, vrdmad --vdev-default-share), and the
// limits per cgroup (vdev/cgroup_limits.h): /proc/PID/cgroup parsing, paths, and the
// hierarchical charge of the kernel's rdma controller.
#include <gtest/gtest.h>

#include <string>

#include "vdev/cgroup_limits.h"
#include "vdev/protocol/admin_call.h"
#include "vdev/registry.h"

namespace vrdma::vdev {
namespace {

constexpr size_t kHandle = static_cast<size_t>(CgroupResource::kHcaHandle);
constexpr size_t kObject = static_cast<size_t>(CgroupResource::kHcaObject);

// ---- defaults ----

class DefaultQuotaTest : public ::testing::Test {
 protected:
  void SetUp() override {
    static int n = 0;
    auto pdev = Pdev::CreateEmbedded("qpdev" + std::to_string(n++));
    ASSERT_TRUE(pdev.ok()) << pdev.status();
    pdev_ = pdev->get();
    ASSERT_TRUE(registry_.AddPdev(std::move(*pdev)).ok());
  }
  Registry registry_;
  Pdev* pdev_ = nullptr;
};

TEST_F(DefaultQuotaTest, ANewVdevGetsAnEighthOfThePdev) {
  const ResourceCounts limits = Registry::PdevLimits(*pdev_);
  EXPECT_EQ(limits[static_cast<size_t>(Resource::kRingBytes)], Registry::PdevRingBytes());
  EXPECT_GE(Registry::PdevRingBytes(), uint64_t{1} << 30);
  EXPECT_EQ(registry_.default_share(), (std::pair<uint64_t, uint64_t>{1, 8}));
  const ResourceCounts q = registry_.DefaultQuota(*pdev_);
  for (size_t i = 0; i < kResourceCount; ++i) {
    ASSERT_GT(limits[i], 0u) << kResourceNames[i];
    EXPECT_EQ(q[i], std::max<uint64_t>(limits[i] / 8, 1)) << kResourceNames[i];
    EXPECT_LT(q[i], limits[i]) << kResourceNames[i] << ": the default leaves room for others";
  }
}

TEST_F(DefaultQuotaTest, TheShareIsConfigurableAndChecked) {
  const ResourceCounts limits = Registry::PdevLimits(*pdev_);
  ASSERT_TRUE(registry_.SetDefaultShare(1, 1).ok());
  EXPECT_EQ(registry_.DefaultQuota(*pdev_), limits);
  ASSERT_TRUE(registry_.SetDefaultShare(3, 4).ok());
  const size_t qp = static_cast<size_t>(Resource::kQp);
  EXPECT_EQ(registry_.DefaultQuota(*pdev_)[qp], limits[qp] * 3 / 4);
  // A share so small it rounds to nothing still gives one of each (a vdev that cannot
  // allocate anything is no vdev): at least 1.
  ASSERT_TRUE(registry_.SetDefaultShare(1, UINT64_MAX).ok());
  for (uint64_t v : registry_.DefaultQuota(*pdev_)) EXPECT_EQ(v, 1u);
  // No overflow of limit * N: 128-bit arithmetic.
  ASSERT_TRUE(registry_.SetDefaultShare(UINT64_MAX - 1, UINT64_MAX).ok());
  const size_t bytes = static_cast<size_t>(Resource::kMrBytes);
  EXPECT_LE(registry_.DefaultQuota(*pdev_)[bytes], limits[bytes]);
  EXPECT_GE(registry_.DefaultQuota(*pdev_)[bytes], limits[bytes] - 1);
  // Refused, and nothing changes: 0/N, N/0, more than the whole.
  EXPECT_TRUE(absl::IsInvalidArgument(registry_.SetDefaultShare(0, 8)));
  EXPECT_TRUE(absl::IsInvalidArgument(registry_.SetDefaultShare(1, 0)));
  EXPECT_TRUE(absl::IsInvalidArgument(registry_.SetDefaultShare(9, 8)));
  EXPECT_EQ(registry_.default_share(), (std::pair<uint64_t, uint64_t>{UINT64_MAX - 1, UINT64_MAX}));
}

TEST(VdevCharge, RingBytesAreABytesCountNotAnObject) {
  EXPECT_TRUE(IsObjectResource(Resource::kQp));
  EXPECT_TRUE(IsObjectResource(Resource::kAh));
  EXPECT_FALSE(IsObjectResource(Resource::kMrBytes));
  EXPECT_FALSE(IsObjectResource(Resource::kRingBytes));
  EXPECT_STREQ(kResourceNames[static_cast<size_t>(Resource::kRingBytes)], "ring_bytes");
  Vdev v;
  v.quota[static_cast<size_t>(Resource::kRingBytes)] = 8192;
  EXPECT_TRUE(v.Charge(Resource::kRingBytes, 4096));
  EXPECT_TRUE(v.Charge(Resource::kRingBytes, 4096));
  EXPECT_FALSE(v.Charge(Resource::kRingBytes, 1));
  v.Release(Resource::kRingBytes, 4096);
  EXPECT_TRUE(v.Charge(Resource::kRingBytes, 4096));
}

// ---- /proc/PID/cgroup ----

TEST(ParseProcCgroup, UnifiedHierarchy) {
  EXPECT_EQ(ParseProcCgroup("0::/user.slice/tenant-a\n"), "/user.slice/tenant-a");
  EXPECT_EQ(ParseProcCgroup("0::/\n"), "/");
  // A path may hold ':' (only the first two separate fields).
  EXPECT_EQ(ParseProcCgroup("0::/a:b/c:d"), "/a:b/c:d");
}

TEST(ParseProcCgroup, TheRdmaHierarchyWinsOnCgroupV1) {
  // A hybrid machine (as this one): v1 controllers and an empty unified hierarchy.
  const char* hybrid =
      "9:name=systemd:/\n"
      "4:memory:/process_api/x\n"
      "3:rdma,pids:/tenants/b\n"
      "0::/\n";
  EXPECT_EQ(ParseProcCgroup(hybrid), "/tenants/b");
  // No rdma controller anywhere: the unified path.
  EXPECT_EQ(ParseProcCgroup("4:memory:/m\n2:cpu:/c\n0::/u/v\n"), "/u/v");
  // "rdmax" is not "rdma".
  EXPECT_EQ(ParseProcCgroup("3:rdmax:/x\n0::/u\n"), "/u");
}

TEST(ParseProcCgroup, NothingUsable) {
  EXPECT_EQ(ParseProcCgroup(""), std::nullopt);
  EXPECT_EQ(ParseProcCgroup("garbage\n"), std::nullopt);
  EXPECT_EQ(ParseProcCgroup("4:memory:/m\n"), std::nullopt);  // v1 only, no rdma
  EXPECT_EQ(ParseProcCgroup("0::relative\n"), std::nullopt);
}

TEST(NormalizeCgroupPath, AbsoluteNoDotsNotTheRoot) {
  EXPECT_EQ(*NormalizeCgroupPath("/a/b"), "/a/b");
  EXPECT_EQ(*NormalizeCgroupPath("//a///b/"), "/a/b");
  for (const char* bad : {"", "a/b", "/", "//", "/a/../b", "/a/./b", "/a/\nb"}) {
    EXPECT_TRUE(absl::IsInvalidArgument(NormalizeCgroupPath(bad).status())) << bad;
  }
}

TEST(CgroupLimitValue, NumberOrMax) {
  EXPECT_EQ(*ParseCgroupLimit("0"), 0u);
  EXPECT_EQ(*ParseCgroupLimit("100"), 100u);
  EXPECT_EQ(*ParseCgroupLimit("max"), kCgroupNoLimit);
  for (const char* bad : {"", "-1", "+1", "1k", "MAX", "18446744073709551615", "x"}) {
    EXPECT_FALSE(ParseCgroupLimit(bad).ok()) << bad;
  }
  EXPECT_EQ(CgroupLimitText(kCgroupNoLimit), "max");
  EXPECT_EQ(CgroupLimitText(7), "7");
}

// ---- the charge ----

CgroupCounts Limits(uint64_t handle, uint64_t object) {
  CgroupCounts c;
  c[kHandle] = handle;
  c[kObject] = object;
  return c;
}

TEST(CgroupLimits, ChargesTheCgroupAndEveryAncestor) {
  CgroupLimits cg;
  EXPECT_TRUE(cg.empty());
  cg.Set("/t", "vdev_a", Limits(2, 3));
  EXPECT_FALSE(cg.empty());
  // Usage is kept with or without limits, so a limit set later sees it.
  EXPECT_EQ(cg.TryCharge("/t/a", "vdev_a", CgroupResource::kHcaHandle), std::nullopt);
  EXPECT_EQ(cg.TryCharge("/t/b", "vdev_a", CgroupResource::kHcaHandle), std::nullopt);
  EXPECT_EQ(cg.Usage("/t", "vdev_a")[kHandle], 2u);
  EXPECT_EQ(cg.Usage("/t/a", "vdev_a")[kHandle], 1u);
  EXPECT_EQ(cg.Usage("/", "vdev_a")[kHandle], 2u);
  // The parent's limit holds for its children together: a third context is refused at /t.
  auto r = cg.TryCharge("/t/a", "vdev_a", CgroupResource::kHcaHandle);
  ASSERT_TRUE(r.has_value());
  EXPECT_EQ(r->cgroup, "/t");
  EXPECT_EQ(r->limit, 2u);
  EXPECT_EQ(r->usage, 2u);
  EXPECT_EQ(cg.Usage("/t/a", "vdev_a")[kHandle], 1u) << "a refused charge takes nothing";
  // Another device, another pool: no limit there.
  EXPECT_EQ(cg.TryCharge("/t/a", "vdev_b", CgroupResource::kHcaHandle), std::nullopt);
  // Objects: 3 in all under /t.
  for (int i = 0; i < 3; ++i) {
    EXPECT_EQ(cg.TryCharge("/t/a", "vdev_a", CgroupResource::kHcaObject), std::nullopt) << i;
  }
  EXPECT_TRUE(cg.TryCharge("/t/b", "vdev_a", CgroupResource::kHcaObject).has_value());
  // Released objects make room again.
  cg.Uncharge("/t/a", "vdev_a", CgroupResource::kHcaObject);
  EXPECT_EQ(cg.TryCharge("/t/b", "vdev_a", CgroupResource::kHcaObject), std::nullopt);
  // A limit on the child itself.
  cg.Set("/t/b", "vdev_a", Limits(kCgroupNoLimit, 1));
  r = cg.TryCharge("/t/b", "vdev_a", CgroupResource::kHcaObject);
  ASSERT_TRUE(r.has_value());
  EXPECT_EQ(r->cgroup, "/t/b");
  // A prefix is not an ancestor: /tx is not under /t.
  EXPECT_EQ(cg.TryCharge("/tx", "vdev_a", CgroupResource::kHcaHandle), std::nullopt);
}

TEST(CgroupLimits, SetAllMaxAndDelRemoveTheEntry) {
  CgroupLimits cg;
  cg.Set("/t", "a", Limits(1, 1));
  cg.Set("/t", "b", Limits(1, kCgroupNoLimit));
  EXPECT_EQ(cg.Max("/t", "a"), Limits(1, 1));
  EXPECT_EQ(cg.Max("/u", "a"), Limits(kCgroupNoLimit, kCgroupNoLimit));
  cg.Set("/t", "a", Limits(kCgroupNoLimit, kCgroupNoLimit));
  EXPECT_EQ(cg.limits().size(), 1u);
  EXPECT_FALSE(cg.Del("/t", "a"));
  EXPECT_TRUE(cg.Del("/t", ""));
  EXPECT_TRUE(cg.empty());
}

TEST(CgroupLimits, UsageEntriesGoWhenEmpty) {
  CgroupLimits cg;
  ASSERT_EQ(cg.TryCharge("/a/b", "d", CgroupResource::kHcaObject, 5), std::nullopt);
  cg.Uncharge("/a/b", "d", CgroupResource::kHcaObject, 5);
  EXPECT_EQ(cg.Usage("/a", "d"), CgroupCounts{});
  // Uncharging more than was charged stops at zero.
  cg.Uncharge("/a/b", "d", CgroupResource::kHcaObject, 1);
  EXPECT_EQ(cg.Usage("/a/b", "d"), CgroupCounts{});
  // Overflow is refused, not wrapped.
  ASSERT_EQ(cg.TryCharge("/a", "d", CgroupResource::kHcaObject, UINT64_MAX - 1), std::nullopt);
  EXPECT_TRUE(cg.TryCharge("/a", "d", CgroupResource::kHcaObject, 2).has_value());
}

// ---- the admin grammar ----

TEST(CgroupCommand, ParsesAndRoundTrips) {
  using proto::AdminCommand;
  using proto::AdminOp;
  using proto::AdminParse;
  AdminCommand c;
  ASSERT_EQ(
      proto::ParseAdminCommand(
          {"cgroup", "set", "/t/a", "dev", "vdev_a", "hca_handle", "2", "hca_object", "max"}, &c)
          .result,
      AdminParse::kOk);
  EXPECT_EQ(c.op, AdminOp::kCgroupSet);
  EXPECT_EQ(c.name, "/t/a");
  EXPECT_EQ(c.dev, "vdev_a");
  ASSERT_EQ(c.cgroup_limits.size(), 2u);
  EXPECT_EQ(c.cgroup_limits[1], (std::pair<std::string, std::string>{"hca_object", "max"}));
  AdminCommand again;
  ASSERT_EQ(proto::ParseAdminCommand(proto::AdminCommandWords(c), &again).result, AdminParse::kOk);
  EXPECT_EQ(proto::AdminCommandWords(again), proto::AdminCommandWords(c));
  ASSERT_EQ(proto::ParseAdminCommand({"cgroup"}, &c).result, AdminParse::kOk);
  EXPECT_EQ(c.op, AdminOp::kCgroupShow);
  ASSERT_EQ(proto::ParseAdminCommand({"cgroup", "del", "/t", "dev", "x"}, &c).result,
            AdminParse::kOk);
  EXPECT_EQ(c.op, AdminOp::kCgroupDel);
  EXPECT_EQ(c.dev, "x");
  // Refused: no dev, an unknown limit, a value that is neither a number nor max, twice.
  EXPECT_EQ(proto::ParseAdminCommand({"cgroup", "set", "/t", "hca_handle", "2"}, &c).result,
            AdminParse::kUsage);
  EXPECT_EQ(proto::ParseAdminCommand({"cgroup", "set", "/t", "dev", "a", "qp", "2"}, &c).result,
            AdminParse::kUsage);
  EXPECT_EQ(
      proto::ParseAdminCommand({"cgroup", "set", "/t", "dev", "a", "hca_handle", "-1"}, &c).result,
      AdminParse::kBadValue);
  EXPECT_EQ(proto::ParseAdminCommand(
                {"cgroup", "set", "/t", "dev", "a", "hca_handle", "1", "hca_handle", "2"}, &c)
                .result,
            AdminParse::kBadValue);
  // ring_bytes is a quota `dev set` takes.
  ASSERT_EQ(proto::ParseAdminCommand({"dev", "set", "a", "ring_bytes", "1M"}, &c).result,
            AdminParse::kOk);
  EXPECT_EQ(c.quotas[0], (std::pair<std::string, uint64_t>{"ring_bytes", 1u << 20}));
}

}  // namespace
}  // namespace vrdma::vdev
