#include "vfio/pci_bind.h"

#include <filesystem>
#include <fstream>
#include <system_error>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "vfio/port_spec.h"

namespace vrdma::vfio {
namespace {

namespace fs = std::filesystem;

constexpr char kVfioPci[] = "vfio-pci";
constexpr char kPciBridgeClass[] = "0x0604";  // PCI class: bridge, PCI-to-PCI

std::string ReadLine(const fs::path& p) {
  std::ifstream f(p);
  std::string s;
  std::getline(f, s);
  return s;
}

absl::Status WriteTo(const fs::path& p, const std::string& value) {
  std::ofstream f(p);
  if (!f) return absl::PermissionDeniedError(absl::StrCat("cannot open ", p.string(), " (root?)"));
  f << value;
  f.flush();
  if (!f) return absl::InternalError(absl::StrCat("writing '", value, "' to ", p.string(), " failed"));
  return absl::OkStatus();
}

std::string DriverName(const fs::path& dev) {
  std::error_code ec;
  fs::path target = fs::read_symlink(dev / "driver", ec);
  return ec ? "" : target.filename().string();
}

// The interfaces of a network device that are up (operstate "up").
std::vector<std::string> UpInterfaces(const fs::path& dev) {
  std::vector<std::string> up;
  std::error_code ec;
  for (fs::directory_iterator it(dev / "net", ec); !ec && it != fs::directory_iterator(); it.increment(ec)) {
    if (ReadLine(it->path() / "operstate") == "up") up.push_back(it->path().filename().string());
  }
  return up;
}

absl::StatusOr<fs::path> DeviceDir(const std::string& bdf_in, const PciSysfs& s, std::string* bdf) {
  absl::StatusOr<std::string> norm = NormalizePciAddress(bdf_in);
  if (!norm.ok()) return norm.status();
  *bdf = *norm;
  fs::path dev = fs::path(s.root) / "bus/pci/devices" / *bdf;
  if (!fs::exists(dev)) {
    return absl::NotFoundError(absl::StrCat("no PCI device ", *bdf, " (`lspci -D` lists them)"));
  }
  return dev;
}

}  // namespace

absl::StatusOr<std::string> PciDriverOf(const std::string& bdf_in, const PciSysfs& s) {
  std::string bdf;
  absl::StatusOr<fs::path> dev = DeviceDir(bdf_in, s, &bdf);
  if (!dev.ok()) return dev.status();
  return DriverName(*dev);
}

absl::Status PciBindVfio(const std::string& bdf_in, bool force, const PciSysfs& s) {
  std::string bdf;
  absl::StatusOr<fs::path> dev = DeviceDir(bdf_in, s, &bdf);
  if (!dev.ok()) return dev.status();
  fs::path root(s.root);
  std::string current = DriverName(*dev);
  if (current == kVfioPci) return absl::OkStatus();
  if (!fs::exists(root / "bus/pci/drivers" / kVfioPci)) {
    return absl::FailedPreconditionError(
        "the vfio-pci driver is not loaded: `modprobe vfio-pci` (a kernel without VFIO cannot "
        "drive PCI NICs from userspace; use an iface= port)");
  }
  std::error_code ec;
  fs::path group = fs::read_symlink(*dev / "iommu_group", ec);
  if (ec) {
    return absl::FailedPreconditionError(absl::StrCat(
        bdf, " is in no IOMMU group: turn the IOMMU on (VT-d / AMD-Vi in the firmware, kernel "
             "argument intel_iommu=on or amd_iommu=on; in QEMU -device intel-iommu)"));
  }
  // IOMMU group viability (the kernel's rule for VFIO): every other device of the group
  // must be bound to vfio-pci, bound to nothing, or a bridge.
  std::vector<std::string> blocking;
  fs::path members = *dev / "iommu_group" / "devices";  // through the symlink
  for (fs::directory_iterator it(members, ec); !ec && it != fs::directory_iterator(); it.increment(ec)) {
    std::string other = it->path().filename().string();
    if (other == bdf) continue;
    fs::path odev = root / "bus/pci/devices" / other;
    std::string drv = DriverName(odev);
    if (drv.empty() || drv == kVfioPci || ReadLine(odev / "class").rfind(kPciBridgeClass, 0) == 0) continue;
    blocking.push_back(absl::StrCat(other, " (", drv, ")"));
  }
  if (!blocking.empty()) {
    return absl::FailedPreconditionError(absl::StrCat(
        "IOMMU group ", group.filename().string(), " of ", bdf, " is not viable: bind ",
        absl::StrJoin(blocking, ", "), " to vfio-pci too, or unbind them"));
  }
  if (std::vector<std::string> up = UpInterfaces(*dev); !up.empty() && !force) {
    return absl::FailedPreconditionError(absl::StrCat(
        "interface ", absl::StrJoin(up, ", "), " of ", bdf, " is up and would vanish: `ip link set ",
        up[0], " down` first (or --force)"));
  }
  fs::create_directories(s.state_dir, ec);
  if (absl::Status st = WriteTo(fs::path(s.state_dir) / bdf, current); !st.ok()) return st;
  if (absl::Status st = WriteTo(*dev / "driver_override", kVfioPci); !st.ok()) return st;
  if (!current.empty()) {
    if (absl::Status st = WriteTo(*dev / "driver/unbind", bdf); !st.ok()) return st;
  }
  if (absl::Status st = WriteTo(root / "bus/pci/drivers_probe", bdf); !st.ok()) return st;
  if (DriverName(*dev) != kVfioPci) {
    return absl::InternalError(absl::StrCat("the kernel did not bind ", bdf, " to vfio-pci (see dmesg)"));
  }
  return absl::OkStatus();
}

absl::Status PciUnbindVfio(const std::string& bdf_in, const PciSysfs& s) {
  std::string bdf;
  absl::StatusOr<fs::path> dev = DeviceDir(bdf_in, s, &bdf);
  if (!dev.ok()) return dev.status();
  if (DriverName(*dev) != kVfioPci) {
    return absl::FailedPreconditionError(absl::StrCat(bdf, " is not bound to vfio-pci"));
  }
  if (absl::Status st = WriteTo(*dev / "driver/unbind", bdf); !st.ok()) return st;
  if (absl::Status st = WriteTo(*dev / "driver_override", "\n"); !st.ok()) return st;
  fs::path saved = fs::path(s.state_dir) / bdf;
  std::string previous = ReadLine(saved);
  std::error_code ec;
  fs::remove(saved, ec);
  fs::path root(s.root);
  if (!previous.empty()) {
    return WriteTo(root / "bus/pci/drivers" / previous / "bind", bdf);
  }
  return WriteTo(root / "bus/pci/drivers_probe", bdf);
}

}  // namespace vrdma::vfio
