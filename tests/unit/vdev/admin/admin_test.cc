#include "vdev/admin.h"

#include <gtest/gtest.h>
#include <rte_eal.h>

#include "tests/unit/vdev/netdev/netns.h"

namespace vrdma::vdev {
namespace {

class AdminTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!testing::PrivateNetns()) GTEST_SKIP() << "needs root for a network namespace";
    static int n = 0;
    auto pdev = Pdev::CreateEmbedded("pdev" + std::to_string(n++));
    ASSERT_TRUE(pdev.ok()) << pdev.status();
    pdev_name_ = (*pdev)->name;
    ASSERT_TRUE(registry_.AddPdev(std::move(*pdev)).ok());
    ctx_.registry = &registry_;
    ctx_.sessions = &sessions_;
    ctx_.may_change = true;
  }
  AdminResult Run(std::vector<std::string> words, bool json = false) {
    return RunAdmin(ctx_, words, json);
  }
  Registry registry_;
  std::vector<std::unique_ptr<Session>> sessions_;
  AdminContext ctx_;
  std::string pdev_name_;
};

TEST_F(AdminTest, AddShowSetDelete) {
  AdminResult r = Run({"dev", "add", "va", "pdev", pdev_name_, "netdev", "vt0"});
  ASSERT_EQ(r.status, 0) << r.text;
  EXPECT_NE(r.text.find("gid 3 ::ffff:10.9.8.7 RoCEv2"), std::string::npos) << r.text;
  r = Run({"dev", "show"}, true);
  EXPECT_EQ(r.status, 0);
  EXPECT_NE(r.text.find("\"ifname\":\"va\""), std::string::npos) << r.text;
  EXPECT_NE(r.text.find("\"netdev\":\"vt0\""), std::string::npos);
  r = Run({"dev", "set", "va", "qp", "10", "mr_bytes", "4096"});
  ASSERT_EQ(r.status, 0) << r.text;
  Vdev* v = registry_.FindVdev("va");
  EXPECT_EQ(v->Quota(Resource::kQp), 10u);
  EXPECT_EQ(v->Quota(Resource::kMrBytes), 4096u);
  r = Run({"res", "show", "va"});
  EXPECT_NE(r.text.find("qp 0/10"), std::string::npos) << r.text;
  // RDMA-CM's RoCE version for the connections the vdev starts: v2 until set.
  EXPECT_FALSE(v->cm_roce_v1);
  EXPECT_NE(Run({"dev", "show", "va"}).text.find("cm roce_mode v2"), std::string::npos);
  ASSERT_EQ(Run({"dev", "set", "va", "roce_mode", "v1"}).status, 0);
  EXPECT_TRUE(v->cm_roce_v1);
  EXPECT_NE(Run({"dev", "show", "va"}, true).text.find("\"roce_mode\":\"v1\""), std::string::npos);
  EXPECT_EQ(Run({"dev", "set", "va", "roce_mode", "v3"}).status, EINVAL);
  EXPECT_TRUE(v->cm_roce_v1) << "a refused value changes nothing";
  ASSERT_EQ(Run({"dev", "set", "va", "roce_mode", "v2"}).status, 0);
  EXPECT_FALSE(v->cm_roce_v1);
  EXPECT_EQ(Run({"dev", "del", "va"}).status, 0);
  EXPECT_EQ(registry_.FindVdev("va"), nullptr);
}

TEST_F(AdminTest, BadInputIsRefusedAndChangesNothing) {
  ASSERT_EQ(Run({"dev", "add", "va", "pdev", pdev_name_, "netdev", "vt0"}).status, 0);
  // Duplicate name, interface already bound, unknown pdev, unknown interface, bad name.
  EXPECT_EQ(Run({"dev", "add", "va", "pdev", pdev_name_, "netdev", "vt1"}).status, EEXIST);
  EXPECT_EQ(Run({"dev", "add", "vb", "pdev", pdev_name_, "netdev", "vt0"}).status, EEXIST);
  EXPECT_EQ(Run({"dev", "add", "vb", "pdev", "nope", "netdev", "vt1"}).status, ENODEV);
  EXPECT_EQ(Run({"dev", "add", "vb", "pdev", pdev_name_, "netdev", "nosuch0"}).status, ENODEV);
  EXPECT_NE(Run({"dev", "add", "bad/name", "pdev", pdev_name_, "netdev", "vt1"}).status, 0);
  EXPECT_NE(Run({"dev", "add", "vb", "pdev", pdev_name_}).status, 0);
  EXPECT_EQ(registry_.vdevs().size(), 1u);
  // Quotas: unknown resource, bad number, repeated, below use, above the pdev.
  Vdev* v = registry_.FindVdev("va");
  ResourceCounts before = v->quota;
  EXPECT_EQ(Run({"dev", "set", "va", "bogus", "1"}).status, EINVAL);
  EXPECT_EQ(Run({"dev", "set", "va", "qp", "-1"}).status, EINVAL);
  EXPECT_EQ(Run({"dev", "set", "va", "qp", "12x"}).status, EINVAL);
  EXPECT_EQ(Run({"dev", "set", "va", "qp", "1", "qp", "2"}).status, EINVAL);
  v->Used(Resource::kCq) = 3;
  AdminResult r = Run({"dev", "set", "va", "qp", "5", "cq", "2"});
  EXPECT_EQ(r.status, EBUSY);
  EXPECT_NE(r.text.find("below the 3 in use"), std::string::npos) << r.text;
  EXPECT_EQ(Run({"dev", "set", "va", "pd", "99999999"}).status, ERANGE);
  EXPECT_EQ(v->quota, before);  // nothing changed, not even the valid qp part
  v->Used(Resource::kCq) = 0;
  EXPECT_EQ(Run({"dev", "set", "nope", "qp", "1"}).status, ENODEV);
  EXPECT_EQ(Run({"dev", "del", "nope"}).status, ENODEV);
  EXPECT_EQ(Run({"frobnicate"}).status, EINVAL);
  EXPECT_EQ(Run({}).status, EINVAL);
}

TEST_F(AdminTest, OnlyAnAdministratorChangesDevices) {
  ASSERT_EQ(Run({"dev", "add", "va", "pdev", pdev_name_, "netdev", "vt0"}).status, 0);
  ctx_.may_change = false;
  AdminResult r = Run({"dev", "add", "vb", "pdev", pdev_name_, "netdev", "vt1"});
  EXPECT_EQ(r.status, EPERM);
  EXPECT_NE(r.text.find("admin group"), std::string::npos) << r.text;
  EXPECT_EQ(Run({"dev", "set", "va", "qp", "1"}).status, EPERM);
  EXPECT_EQ(Run({"dev", "del", "va"}).status, EPERM);
  EXPECT_EQ(registry_.vdevs().size(), 1u);
  EXPECT_EQ(registry_.FindVdev("va")->quota,
            registry_.DefaultQuota(*registry_.FindPdev(pdev_name_)));
  // Looking needs no privilege.
  EXPECT_EQ(Run({"dev", "show"}).status, 0);
  EXPECT_EQ(Run({"res", "show"}).status, 0);
  EXPECT_EQ(Run({"pdev", "show"}).status, 0);
}

TEST_F(AdminTest, PdevHasANodeGuidAndItsNameIsTaken) {
  AdminResult r = Run({"pdev", "show", pdev_name_});
  ASSERT_EQ(r.status, 0);
  // Not derived from the name alone (two hosts' pdev1 got the same GUID): the internal
  // switch has no MAC, so the machine and the daemon are in it.
  EXPECT_EQ(r.text.find("node_guid 0076:72ff:fe64:"), std::string::npos) << r.text;
  const Pdev* p = registry_.FindPdev(pdev_name_);
  EXPECT_EQ(p->node_guid_be, PdevNodeGuid({}, MachineId(), rte_eal_get_runtime_dir(), p->name));
  EXPECT_EQ(Run({"dev", "add", pdev_name_, "pdev", pdev_name_, "netdev", "vt0"}).status, EEXIST);
}

TEST_F(AdminTest, PdevsAreNotVdevs) {
  AdminResult r = Run({"dev", "del", pdev_name_});
  EXPECT_EQ(r.status, ENODEV);
  EXPECT_NE(r.text.find(pdev_name_ + " is a physical device (pdev): pdevs are not deleted with "
                                     "`dev del`"),
            std::string::npos)
      << r.text;
  r = Run({"dev", "set", pdev_name_, "qp", "1"});
  EXPECT_EQ(r.status, ENODEV);
  EXPECT_NE(r.text.find("quotas are set on vdevs"), std::string::npos) << r.text;
  r = Run({"dev", "show", pdev_name_});  // the device list holds pdevs: shown as one
  EXPECT_EQ(r.status, 0);
  EXPECT_NE(r.text.find("type physical"), std::string::npos) << r.text;
  ASSERT_EQ(Run({"dev", "add", "va", "pdev", pdev_name_, "netdev", "vt0"}).status, 0);
  r = Run({"dev", "del", "nope"});
  EXPECT_EQ(r.status, ENODEV);
  EXPECT_NE(r.text.find("no device named nope (vdevs: va)"), std::string::npos) << r.text;
  r = Run({"dev", "add", "bad name", "pdev", pdev_name_, "netdev", "vt1"});
  EXPECT_EQ(r.status, EINVAL);
  EXPECT_NE(r.text.find("1 to 63 printable characters, without '/', '%' or whitespace"),
            std::string::npos)
      << r.text;
  EXPECT_EQ(registry_.vdevs().size(), 1u);
}

TEST_F(AdminTest, LinkAliasesAndSizes) {
  // pdev defaults to the only one.
  AdminResult r = Run({"link", "add", "va", "type", "vrdma", "netdev", "vt0"});
  ASSERT_EQ(r.status, 0) << r.text;
  EXPECT_EQ(registry_.FindVdev("va")->pdev->name, pdev_name_);
  r = Run({"link", "show", "va/1"});
  EXPECT_EQ(r.status, 0);
  EXPECT_NE(r.text.find(": va: type virtual"), std::string::npos) << r.text;
  r = Run({"dev", "set", "va", "mr_bytes", "1G", "qp", "1K"});
  ASSERT_EQ(r.status, 0) << r.text;
  EXPECT_EQ(registry_.FindVdev("va")->Quota(Resource::kMrBytes), 1073741824u);
  EXPECT_EQ(registry_.FindVdev("va")->Quota(Resource::kQp), 1024u);
  r = Run({"dev", "show", "va"});
  EXPECT_NE(r.text.find("    quota qp 1024 cq "), std::string::npos) << r.text;
  EXPECT_NE(r.text.find(" mr_bytes 1073741824 ring_bytes "), std::string::npos) << r.text;
  // Without a name, dev show lists every vdev with its GIDs.
  r = Run({"dev", "show"});
  EXPECT_NE(r.text.find("gid 3 ::ffff:10.9.8.7 RoCEv2"), std::string::npos) << r.text;
  // Pretty JSON.
  AdminRequest req{{"dev", "show", "va"}, true, true};
  r = RunAdmin(ctx_, req);
  EXPECT_EQ(r.status, 0);
  EXPECT_EQ(r.text.rfind("[\n    {\n        \"ifindex\": ", 0), 0u) << r.text;
  EXPECT_NE(r.text.find("\"mr_bytes\": 1073741824"), std::string::npos) << r.text;
  // Objects: no client holds any.
  r = Run({"res", "show", "qp"});
  EXPECT_EQ(r.status, 0);
  EXPECT_EQ(r.text, "");
  r = Run({"res", "show", "qp", "dev", "va"}, true);
  EXPECT_EQ(r.text, "[]\n");
  EXPECT_EQ(Run({"res", "show", "qp", "dev", "nope"}).status, ENODEV);
  EXPECT_EQ(Run({"link", "del", "va"}).status, 0);
  EXPECT_EQ(registry_.FindVdev("va"), nullptr);
}

TEST_F(AdminTest, QuotaChargesAndReleases) {
  ASSERT_EQ(Run({"dev", "add", "va", "pdev", pdev_name_, "netdev", "vt0"}).status, 0);
  Vdev* v = registry_.FindVdev("va");
  ASSERT_EQ(Run({"dev", "set", "va", "qp", "2"}).status, 0);
  EXPECT_TRUE(v->Charge(Resource::kQp));
  EXPECT_TRUE(v->Charge(Resource::kQp));
  EXPECT_FALSE(v->Charge(Resource::kQp));
  v->Release(Resource::kQp);
  EXPECT_TRUE(v->Charge(Resource::kQp));
  EXPECT_FALSE(v->Charge(Resource::kMrBytes, ~0ull));  // no wrap-around
}

TEST_F(AdminTest, PdevAndStatShow) {
  AdminResult r = Run({"pdev", "show"}, true);
  EXPECT_EQ(r.status, 0);
  EXPECT_NE(r.text.find("\"pdev\":\"" + pdev_name_ + "\""), std::string::npos) << r.text;
  r = Run({"stat", "show", pdev_name_});
  EXPECT_EQ(r.status, 0);
  EXPECT_NE(r.text.find("rx_packets 0"), std::string::npos) << r.text;
  EXPECT_EQ(Run({"stat", "show", "nope"}).status, ENODEV);
  EXPECT_EQ(Run({"pdev", "show", "nope"}).status, ENODEV);
}

}  // namespace
}  // namespace vrdma::vdev
