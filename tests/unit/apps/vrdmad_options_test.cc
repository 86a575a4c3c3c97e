#include <algorithm>
#include <map>

#include "apps/vrdmad/options.h"
#include "gtest/gtest.h"

namespace vrdma::vrdmad {
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
  ASSERT_GE(o->eal.size(), 5u);
  EXPECT_EQ(std::vector<std::string>(o->eal.begin(), o->eal.begin() + 5),
            (std::vector<std::string>{"-l", "1", "--no-huge", "--file-prefix", "hostA"}))
      << "the user's arguments come first, unchanged";
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

// How often `eal` holds `arg`.
size_t Count(const std::vector<std::string>& eal, const std::string& arg) {
  return static_cast<size_t>(std::count(eal.begin(), eal.end(), arg));
}

// The value after the last `opt` in `eal` ("" when absent).
std::string ValueOf(const std::vector<std::string>& eal, const std::string& opt) {
  std::string v;
  for (size_t i = 0; i + 1 < eal.size(); ++i) {
    if (eal[i] == opt) v = eal[i + 1];
  }
  return v;
}

TEST(VrdmadOptionsTest, EalArgumentsKeepTheDefaultsTheyDoNotOverride) {
  // The README's two-host example: DPDK's no-huge default of 64 MiB holds no mbuf pool.
  auto o = Parse({"--no-huge", "-l", "0", "--no-pci", "--file-prefix", "hostA", "--", "--pdev",
                  "pdev1,iface=vA,type=af_packet"});
  ASSERT_TRUE(o.ok()) << o.status();
  EXPECT_EQ(ValueOf(o->eal, "-m"), "512");
  EXPECT_EQ(Count(o->eal, "--no-huge"), 1u);
  EXPECT_EQ(Count(o->eal, "--no-pci"), 1u);
  EXPECT_EQ(Count(o->eal, "-l"), 1u);
  EXPECT_EQ(Count(o->eal, "--no-shconf"), 0u) << "--file-prefix asks for shared runtime files";
  EXPECT_EQ(Count(o->eal, "--no-telemetry"), 1u);
  EXPECT_EQ(Count(o->eal, "--log-level=lib.eal:error"), 1u);

  // Only a core: every other default is added.
  auto core = Parse({"-l", "1", "--", "--pdev", "p,iface=vA,type=af_packet"});
  ASSERT_TRUE(core.ok()) << core.status();
  EXPECT_EQ(Count(core->eal, "--no-huge"), 1u);
  EXPECT_EQ(ValueOf(core->eal, "-m"), "512");
  EXPECT_EQ(Count(core->eal, "--no-pci"), 1u);
  EXPECT_EQ(Count(core->eal, "--no-shconf"), 1u);
  EXPECT_EQ(ValueOf(core->eal, "-l"), "1");
  EXPECT_EQ(Count(core->eal, "-l"), 1u);
}

TEST(VrdmadOptionsTest, TheUsersChoiceWinsInEveryForm) {
  // Memory in either form, attached or not.
  for (std::vector<std::string> m : {std::vector<std::string>{"--no-huge", "-m", "256"},
                                     {"--no-huge", "-m256"},
                                     {"--no-huge", "--socket-mem=256"},
                                     {"--no-huge", "--socket-mem", "256"}}) {
    m.push_back("--");
    auto o = Parse(m);
    ASSERT_TRUE(o.ok()) << o.status();
    EXPECT_EQ(ValueOf(o->eal, "-m"), m[1] == "-m" ? "256" : "") << m[1];
    EXPECT_EQ(Count(o->eal, "512"), 0u) << m[1];
  }
  // A hugepage option: hugepages, so no -m either.
  auto huge = Parse({"--huge-dir=/dev/hugepages", "--"});
  ASSERT_TRUE(huge.ok());
  EXPECT_EQ(Count(huge->eal, "--no-huge"), 0u);
  EXPECT_EQ(Count(huge->eal, "-m"), 0u);
  // Cores, logging, telemetry, runtime files.
  auto other =
      Parse({"-c", "0x3", "--log-level=debug", "--telemetry", "--proc-type=primary", "--"});
  ASSERT_TRUE(other.ok());
  EXPECT_EQ(Count(other->eal, "-l"), 0u);
  EXPECT_EQ(Count(other->eal, "--log-level=lib.eal:error"), 0u);
  EXPECT_EQ(Count(other->eal, "--no-telemetry"), 0u);
  EXPECT_EQ(Count(other->eal, "--no-shconf"), 0u);
  auto lcores = Parse({"--lcores=(0-1)@0", "--"});
  ASSERT_TRUE(lcores.ok());
  EXPECT_EQ(Count(lcores->eal, "-l"), 0u);
}

TEST(VrdmadOptionsTest, PciDevicesPickedByHandKeepHugepagesAndTheirOwnList) {
  // The guest test's form: hugepages, the user's allow-list only.
  auto o = Parse({"-l", "0", "-a", "0000:00:04.0", "--", "--pdev", "p,pci=00:04.0"});
  ASSERT_TRUE(o.ok()) << o.status();
  EXPECT_EQ(Count(o->eal, "--no-huge"), 0u);
  EXPECT_EQ(Count(o->eal, "-m"), 0u);
  EXPECT_EQ(Count(o->eal, "-a"), 1u);
  EXPECT_EQ(Count(o->eal, "--no-pci"), 0u);
  // A block-list is a choice too: no allow-list beside it (DPDK refuses both).
  auto block = Parse({"-b", "0000:00:05.0", "--", "--pdev", "p,pci=00:04.0"});
  ASSERT_TRUE(block.ok());
  EXPECT_EQ(Count(block->eal, "-a"), 0u);
  // Without -a/-b: the allow-list of the pdevs, without hugepages as without EAL arguments.
  auto auto_list = Parse({"-l", "0", "--", "--pdev", "p,pci=00:04.0"});
  ASSERT_TRUE(auto_list.ok());
  EXPECT_EQ(ValueOf(auto_list->eal, "-a"), "0000:00:04.0");
  EXPECT_EQ(Count(auto_list->eal, "--no-pci"), 0u);
  EXPECT_EQ(Count(auto_list->eal, "--no-huge"), 1u);
  // --no-pci contradicts a PCI pdev: refused, naming the fix.
  auto no_pci = Parse({"--no-pci", "--", "--pdev", "nic,pci=00:04.0"});
  ASSERT_FALSE(no_pci.ok());
  EXPECT_NE(no_pci.status().message().find("drop --no-pci"), std::string::npos) << no_pci.status();
  EXPECT_NE(no_pci.status().message().find("nic"), std::string::npos);
}

TEST(VrdmadOptionsTest, ConfigFileHoldsTheSameArguments) {
  auto o = Parse({"--config", "/etc/vrdmad.conf", "--log-level", "debug"},
                 {{"/etc/vrdmad.conf",
                   "# host A\n--no-huge -l 0   # one core\n--\n--pdev p0,iface=vA,type=af_packet\n"
                   "--pcap /tmp/a.pcap\n"}});
  ASSERT_TRUE(o.ok()) << o.status();
  EXPECT_EQ(std::vector<std::string>(o->eal.begin(), o->eal.begin() + 3),
            (std::vector<std::string>{"--no-huge", "-l", "0"}));
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

TEST(VrdmadOptionsTest, DeviceNodesGoToDevInfinibandUnlessToldOtherwise) {
  auto o = Parse({});
  ASSERT_TRUE(o.ok()) << o.status();
  EXPECT_EQ(o->dev_dir, "/dev/infiniband");
  o = Parse({"--dev-dir", "/run/test-nodes"});
  ASSERT_TRUE(o.ok()) << o.status();
  EXPECT_EQ(o->dev_dir, "/run/test-nodes");
  o = Parse({"--dev-dir", "none"});
  ASSERT_TRUE(o.ok()) << o.status();
  EXPECT_EQ(o->dev_dir, "");
  EXPECT_FALSE(Parse({"--dev-dir", "relative/dir"}).ok());
  EXPECT_FALSE(Parse({"--dev-dir", ""}).ok());
  EXPECT_FALSE(Parse({"--dev-dir"}).ok());
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
}  // namespace vrdma::vrdmad
