#include "apps/vrdmad/options.h"

#include <map>

#include "gtest/gtest.h"

namespace vrdma {
namespace {

std::map<std::string, std::string>* g_files;

absl::StatusOr<std::string> FakeRead(const std::string& path) {
  auto it = g_files->find(path);
  if (it == g_files->end()) return absl::NotFoundError("cannot read config file " + path);
  return it->second;
}

absl::StatusOr<VrdmadOptions> Parse(std::vector<std::string> args,
                                    std::map<std::string, std::string> files = {}) {
  g_files = &files;
  return ParseVrdmadOptions(args, FakeRead);
}

TEST(VrdmadOptionsTest, EalArgumentsComeBeforeTheDoubleDash) {
  auto o = Parse({"-l", "1", "--no-huge", "--file-prefix", "hostA", "--", "--socket", "/tmp/s",
                  "--pdev", "p0,iface=veth0,type=af_packet"});
  ASSERT_TRUE(o.ok()) << o.status();
  EXPECT_TRUE(o->eal_given);
  EXPECT_EQ(o->eal, (std::vector<std::string>{"-l", "1", "--no-huge", "--file-prefix", "hostA"}));
  EXPECT_EQ(o->socket_path, "/tmp/s");
  ASSERT_EQ(o->pdevs.size(), 1u);
  EXPECT_EQ(o->pdevs[0].iface, "veth0");
}

TEST(VrdmadOptionsTest, WithoutEalArgumentsTheDefaultsKeepPciOffUnlessAPdevNeedsIt) {
  auto o = Parse({"--pdev", "p0,iface=veth0"});
  ASSERT_TRUE(o.ok());
  EXPECT_FALSE(o->eal_given);
  EXPECT_NE(std::find(o->eal.begin(), o->eal.end(), "--no-pci"), o->eal.end());
  auto pci = Parse({"--pdev", "p1,pci=00:04.0"});
  ASSERT_TRUE(pci.ok());
  EXPECT_EQ(std::find(pci->eal.begin(), pci->eal.end(), "--no-pci"), pci->eal.end());
  auto a = std::find(pci->eal.begin(), pci->eal.end(), "-a");
  ASSERT_NE(a, pci->eal.end());
  EXPECT_EQ(*(a + 1), "0000:00:04.0") << "only the pdev's own NIC is allowed";
}

TEST(VrdmadOptionsTest, ConfigFileHoldsTheSameArguments) {
  auto o = Parse({"--config", "/etc/vrdmad.conf", "--log-level", "debug"},
                 {{"/etc/vrdmad.conf",
                   "# host A\n--no-huge -l 0   # one core\n--\n--pdev p0,iface=vA,type=af_packet\n"
                   "--pcap /tmp/a.pcap\n"}});
  ASSERT_TRUE(o.ok()) << o.status();
  EXPECT_EQ(o->eal, (std::vector<std::string>{"--no-huge", "-l", "0"}));
  EXPECT_EQ(o->log_level, "debug");
  ASSERT_EQ(o->pdevs.size(), 1u);
  EXPECT_EQ(o->pdevs[0].pcap, "/tmp/a.pcap");
}

TEST(VrdmadOptionsTest, PcapNamesOneFilePerPdev) {
  auto o = Parse({"--pdev", "a,iface=x", "--pdev", "b,iface=y,pcap=/tmp/own", "--pdev", "c,iface=z",
                  "--pcap", "/tmp/run.pcap"});
  ASSERT_TRUE(o.ok()) << o.status();
  EXPECT_EQ(o->pdevs[0].pcap, "/tmp/run.pcap.a");
  EXPECT_EQ(o->pdevs[1].pcap, "/tmp/own");
  EXPECT_EQ(o->pdevs[2].pcap, "/tmp/run.pcap.c");
}

TEST(VrdmadOptionsTest, Errors) {
  EXPECT_FALSE(Parse({"--pdev", "p0,iface=a", "--pdev", "p0,iface=b"}).ok());
  EXPECT_FALSE(Parse({"--pcap", "/tmp/x"}).ok()) << "no pdev to record";
  EXPECT_FALSE(Parse({"--frobnicate"}).ok());
  EXPECT_FALSE(Parse({"--log-level", "loud"}).ok());
  EXPECT_FALSE(Parse({"-l", "0", "--", "--", "x"}).ok());
  EXPECT_FALSE(Parse({"--config", "/nope"}).ok());
  EXPECT_FALSE(Parse({"--config", "/loop"}, {{"/loop", "--config /loop"}}).ok());
  EXPECT_FALSE(Parse({"--pdev"}).ok());
}

}  // namespace
}  // namespace vrdma
