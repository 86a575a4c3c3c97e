// vrdmactl pci bind/unbind against a sysfs tree of the test's own (the kernel's side of
// the files is not there: nothing reacts to the writes, so a bind that passes every
// check ends with "the kernel did not bind", and the test reads what was written).
#include "vfio/pci_bind.h"

#include <unistd.h>

#include <filesystem>
#include <fstream>

#include "gtest/gtest.h"

namespace vrdma::vfio {
namespace {

namespace fs = std::filesystem;

class FakeSysfs : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/vrdma-sysfs.XXXXXX";
    base_ = mkdtemp(tmpl);
    fs_.root = base_ / "sys";
    fs_.state_dir = base_ / "state";
    fs::create_directories(root() / "bus/pci/devices");
    Write(root() / "bus/pci/drivers_probe", "");
  }
  void TearDown() override { fs::remove_all(base_); }

  fs::path root() const { return fs_.root; }
  static void Write(const fs::path& p, const std::string& s) {
    fs::create_directories(p.parent_path());
    std::ofstream(p) << s;
  }
  static std::string Read(const fs::path& p) {
    std::ifstream f(p);
    std::string s((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
    return s;
  }
  void Driver(const std::string& name) {
    fs::create_directories(root() / "bus/pci/drivers" / name);
    Write(root() / "bus/pci/drivers" / name / "bind", "");
    Write(root() / "bus/pci/drivers" / name / "unbind", "");
  }
  // A device in IOMMU group `group`, bound to `driver` ("" for none).
  fs::path Device(const std::string& bdf, const std::string& driver, int group,
                  const std::string& cls = "0x020000") {
    fs::path d = root() / "bus/pci/devices" / bdf;
    fs::create_directories(d);
    Write(d / "class", cls + "\n");
    Write(d / "driver_override", "(null)\n");
    if (!driver.empty()) {
      Driver(driver);
      fs::create_symlink(root() / "bus/pci/drivers" / driver, d / "driver");
    }
    if (group >= 0) {
      fs::path g = root() / "kernel/iommu_groups" / std::to_string(group);
      fs::create_directories(g / "devices");
      fs::create_symlink(d, g / "devices" / bdf);
      fs::create_symlink(g, d / "iommu_group");
    }
    return d;
  }

  fs::path base_;
  PciSysfs fs_;
};

TEST_F(FakeSysfs, RefusalsNameTheFix) {
  auto msg = [](const absl::Status& st) { return std::string(st.message()); };
  EXPECT_NE(msg(PciBindVfio("0000:00:09.0", false, fs_)).find("no PCI device 0000:00:09.0"),
            std::string::npos);
  EXPECT_NE(msg(PciBindVfio("garbage", false, fs_)).find("not a PCI address"), std::string::npos);
  Device("0000:00:03.0", "e1000e", -1);
  EXPECT_NE(msg(PciBindVfio("00:03.0", false, fs_)).find("modprobe vfio-pci"), std::string::npos);
  Driver("vfio-pci");
  EXPECT_NE(msg(PciBindVfio("00:03.0", false, fs_)).find("intel_iommu=on"), std::string::npos);
}

TEST_F(FakeSysfs, GroupMustBeViable) {
  Driver("vfio-pci");
  Device("0000:00:03.0", "e1000e", 7);
  Device("0000:00:03.1", "e1000e", 7);
  Device("0000:00:01.0", "pcieport", 7, "0x060400");  // a bridge does not count
  absl::Status st = PciBindVfio("0000:00:03.0", false, fs_);
  EXPECT_NE(std::string(st.message()).find("not viable: bind 0000:00:03.1 (e1000e)"), std::string::npos)
      << st;
  EXPECT_EQ(Read(root() / "bus/pci/devices/0000:00:03.0/driver_override"), "(null)\n")
      << "a refusal changes nothing";
}

TEST_F(FakeSysfs, InterfaceUpIsRefusedUnlessForced) {
  Driver("vfio-pci");
  fs::path d = Device("0000:00:03.0", "e1000e", 3);
  Write(d / "net/eth1/operstate", "up\n");
  absl::Status st = PciBindVfio("0000:00:03.0", false, fs_);
  EXPECT_NE(std::string(st.message()).find("ip link set eth1 down"), std::string::npos) << st;
  // Forced: every step is written as dpdk-devbind writes it; this tree has no kernel to
  // act on them, so the device does not end up bound.
  st = PciBindVfio("0000:00:03.0", true, fs_);
  EXPECT_NE(std::string(st.message()).find("did not bind"), std::string::npos) << st;
  EXPECT_EQ(Read(d / "driver_override"), "vfio-pci");
  EXPECT_EQ(Read(root() / "bus/pci/drivers/e1000e/unbind"), "0000:00:03.0");
  EXPECT_EQ(Read(root() / "bus/pci/drivers_probe"), "0000:00:03.0");
  EXPECT_EQ(Read(fs::path(fs_.state_dir) / "0000:00:03.0"), "e1000e");
}

TEST_F(FakeSysfs, UnbindRestoresTheDriverItHad) {
  Device("0000:00:04.0", "vfio-pci", 4);
  Driver("igb");
  Write(fs::path(fs_.state_dir) / "0000:00:04.0", "igb");
  ASSERT_TRUE(PciUnbindVfio("0000:00:04.0", fs_).ok());
  EXPECT_EQ(Read(root() / "bus/pci/drivers/vfio-pci/unbind"), "0000:00:04.0");
  EXPECT_EQ(Read(root() / "bus/pci/devices/0000:00:04.0/driver_override"), "\n");
  EXPECT_EQ(Read(root() / "bus/pci/drivers/igb/bind"), "0000:00:04.0");
  EXPECT_FALSE(fs::exists(fs::path(fs_.state_dir) / "0000:00:04.0"));
  EXPECT_EQ(*PciDriverOf("0000:00:04.0", fs_), "vfio-pci");  // the fake kernel did nothing
  Device("0000:00:05.0", "igb", 5);
  EXPECT_FALSE(PciUnbindVfio("0000:00:05.0", fs_).ok()) << "not bound to vfio-pci";
}

}  // namespace
}  // namespace vrdma::vfio
