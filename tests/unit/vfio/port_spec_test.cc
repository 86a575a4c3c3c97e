#include "vfio/port_spec.h"

#include "gtest/gtest.h"

namespace vrdma::vfio {
namespace {

TEST(PortSpecTest, VirtualPortOnAnInterface) {
  auto s = ParsePortSpec("pdev1,iface=veth0,type=af_packet,pcap=/tmp/x.pcap");
  ASSERT_TRUE(s.ok()) << s.status();
  EXPECT_EQ(s->pdev, "pdev1");
  EXPECT_EQ(s->type, PortType::kAfPacket);
  EXPECT_EQ(s->iface, "veth0");
  EXPECT_EQ(s->pcap, "/tmp/x.pcap");
  EXPECT_TRUE(s->pci.empty());
}

TEST(PortSpecTest, AfXdpIsTheDefaultVirtualPort) {
  auto s = ParsePortSpec("p,iface=eth1");
  ASSERT_TRUE(s.ok());
  EXPECT_EQ(s->type, PortType::kAfXdp);
  EXPECT_EQ(ParsePortSpec("p,iface=tap0,type=tap")->type, PortType::kTap);
}

TEST(PortSpecTest, PciAddressIsNormalised) {
  auto s = ParsePortSpec("p,pci=3:0.1,mtu=4200");
  ASSERT_TRUE(s.ok()) << s.status();
  EXPECT_EQ(s->type, PortType::kPci);
  EXPECT_EQ(s->pci, "0000:03:00.1");
  EXPECT_EQ(s->mtu, 4200u);
  EXPECT_EQ(*NormalizePciAddress("0001:AF:1f.7"), "0001:af:1f.7");
}

TEST(PortSpecTest, ZeroCopyIsOnUnlessTurnedOff) {
  EXPECT_TRUE(ParsePortSpec("p,iface=v,type=af_packet")->zero_copy);
  EXPECT_FALSE(ParsePortSpec("p,iface=v,type=af_packet,zerocopy=0")->zero_copy);
  EXPECT_TRUE(ParsePortSpec("p,pci=3:0.1,zerocopy=1")->zero_copy);
  auto bad = ParsePortSpec("p,iface=v,zerocopy=yes");
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.status().message().find("zerocopy 'yes' is not 0 or 1"), std::string::npos);
}

TEST(PortSpecTest, BusyPollIsOffUnlessAskedOnAfXdp) {
  EXPECT_EQ(ParsePortSpec("p,iface=v,type=af_xdp")->xdp_busy_budget, 0u);
  EXPECT_EQ(ParsePortSpec("p,iface=v,type=af_xdp,busy_poll=64")->xdp_busy_budget, 64u);
  auto big = ParsePortSpec("p,iface=v,type=af_xdp,busy_poll=65536");
  ASSERT_FALSE(big.ok());
  EXPECT_NE(big.status().message().find("busy_poll '65536' is not 0..65535"), std::string::npos);
  auto packet = ParsePortSpec("p,iface=v,type=af_packet,busy_poll=64");
  ASSERT_FALSE(packet.ok());
  EXPECT_NE(packet.status().message().find("busy_poll= is for type=af_xdp ports"),
            std::string::npos);
}

TEST(PortSpecTest, FaultInjectionKeys) {
  auto s = ParsePortSpec("p,iface=v,type=af_packet,drop=0.01,dup=0.02,reorder=0.5,corrupt=1");
  ASSERT_TRUE(s.ok()) << s.status();
  EXPECT_TRUE(s->has_faults());
  EXPECT_DOUBLE_EQ(s->fault_drop, 0.01);
  EXPECT_DOUBLE_EQ(s->fault_duplicate, 0.02);
  EXPECT_DOUBLE_EQ(s->fault_reorder, 0.5);
  EXPECT_DOUBLE_EQ(s->fault_corrupt, 1.0);
  EXPECT_FALSE(ParsePortSpec("p,iface=v")->has_faults());
  EXPECT_FALSE(ParsePortSpec("p,iface=v,dup=1.5").ok());
  EXPECT_FALSE(ParsePortSpec("p,iface=v,drop=x").ok());
}

TEST(PortSpecTest, ErrorsNameTheProblem) {
  auto expect_error = [](const char* text, const char* words) {
    auto s = ParsePortSpec(text);
    ASSERT_FALSE(s.ok()) << text;
    EXPECT_NE(std::string(s.status().message()).find(words), std::string::npos)
        << text << ": " << s.status();
  };
  expect_error("iface=eth0", "start with the device name");
  expect_error("p", "exactly one of pci=BDF or iface=IFACE");
  expect_error("p,iface=a,pci=0000:00:01.0", "exactly one");
  expect_error("p,iface=eth0,type=dpdk", "not af_xdp, af_packet or tap");
  expect_error("p,pci=00:03.0,type=af_xdp", "type= is for iface= ports");
  expect_error("p,pci=zz:03.0", "not a PCI address");
  expect_error("p,pci=00:20.0", "not a PCI address");  // device numbers stop at 0x1f
  expect_error("p,iface=eth0,speed=10", "unknown key 'speed'");
  expect_error("p,iface=", "needs a value");
  expect_error("p,iface=a/b", "bad interface name");
  expect_error("p,pci=00:03.0,mtu=100", "not 576..9600");
  expect_error("p,iface=eth0,type=af_xdp,kernel=k0", "kernel= is for pci= and type=af_packet");
  expect_error("p,iface=eth0,type=tap,kernel=k0", "kernel= is for pci=");
  expect_error("p,iface=eth0,type=af_packet,kernel=eth0", "a new TAP interface");
  expect_error("p,pci=00:03.0,kernel=a/b", "bad interface name");
}

TEST(PortSpecTest, ExceptionPathInterface) {
  auto s = ParsePortSpec("p,pci=00:03.0,kernel=vrd0");
  ASSERT_TRUE(s.ok()) << s.status();
  EXPECT_EQ(s->type, PortType::kPci);
  EXPECT_EQ(s->kernel_iface, "vrd0");
  s = ParsePortSpec("p,iface=vA,type=af_packet,kernel=kA");
  ASSERT_TRUE(s.ok()) << s.status();
  EXPECT_EQ(s->iface, "vA");
  EXPECT_EQ(s->kernel_iface, "kA");
  EXPECT_TRUE(ParsePortSpec("p,iface=vA,type=af_packet")->kernel_iface.empty());
}

}  // namespace
}  // namespace vrdma::vfio
