// Binding a PCI NIC to vfio-pci and back, as dpdk-devbind does it, through sysfs:
// driver_override, unbind from the kernel driver, drivers_probe; the IOMMU group must be
// viable (every device in it bound to vfio-pci, unbound, or a PCI bridge) and the NIC's
// interface must not be in use. The driver it had is remembered and restored on unbind.
// Every refusal says what to do about it.
#pragma once

#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace vrdma::vfio {

struct PciSysfs {
  std::string root = "/sys";              // tests point this at a tree of their own
  std::string state_dir = "/run/vrdma/pci";  // the driver each bound device had
};

// Binds `bdf` to vfio-pci. `force` binds even when the device's interface is up.
absl::Status PciBindVfio(const std::string& bdf, bool force, const PciSysfs& fs = {});
// Unbinds `bdf` from vfio-pci and gives it back to the driver it had.
absl::Status PciUnbindVfio(const std::string& bdf, const PciSysfs& fs = {});
// The driver `bdf` is bound to ("" when none); NotFound when there is no such device.
absl::StatusOr<std::string> PciDriverOf(const std::string& bdf, const PciSysfs& fs = {});

}  // namespace vrdma::vfio
