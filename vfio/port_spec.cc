#include "vfio/port_spec.h"

#include <cctype>
#include <charconv>
#include <cstdio>
#include <cstdlib>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"

namespace vrdma::vfio {

std::string_view PortTypeName(PortType type) {
  switch (type) {
    case PortType::kPci:
      return "pci";
    case PortType::kAfXdp:
      return "af_xdp";
    case PortType::kAfPacket:
      return "af_packet";
    case PortType::kTap:
      return "tap";
  }
  return "?";
}

absl::StatusOr<std::string> NormalizePciAddress(std::string_view bdf) {
  unsigned domain = 0, bus = 0, dev = 0, fn = 0;
  char tail = 0;
  std::string s(bdf);
  int n = std::sscanf(s.c_str(), "%x:%x:%x.%x%c", &domain, &bus, &dev, &fn, &tail);
  if (n != 4) {
    domain = 0;
    n = std::sscanf(s.c_str(), "%x:%x.%x%c", &bus, &dev, &fn, &tail);
    if (n != 3) n = -1;
  }
  bool digits_only = !s.empty();
  for (char c : s)
    digits_only &= std::isxdigit(static_cast<unsigned char>(c)) || c == ':' || c == '.';
  if (n < 0 || !digits_only || domain > 0xffff || bus > 0xff || dev > 0x1f || fn > 7) {
    return absl::InvalidArgumentError(absl::StrCat(
        "'", s, "' is not a PCI address (DOMAIN:BUS:DEVICE.FUNCTION, e.g. 0000:03:00.0)"));
  }
  char out[16];
  std::snprintf(out, sizeof out, "%04x:%02x:%02x.%x", domain, bus, dev, fn);
  return std::string(out);
}

absl::StatusOr<PortSpec> ParsePortSpec(std::string_view text) {
  std::vector<std::string> parts = absl::StrSplit(absl::string_view(text.data(), text.size()), ',');
  PortSpec spec;
  spec.pdev = std::string(parts[0]);
  if (spec.pdev.empty() || spec.pdev.size() > 63 || spec.pdev.find('=') != std::string::npos) {
    return absl::InvalidArgumentError(absl::StrCat(
        "--pdev '", std::string(text), "': start with the device name, e.g. pdev1,iface=eth1"));
  }
  bool have_type = false;
  bool have_busy_poll = false;
  for (size_t i = 1; i < parts.size(); ++i) {
    std::pair<std::string, std::string> kv = absl::StrSplit(parts[i], absl::MaxSplits('=', 1));
    std::string key = kv.first, value = kv.second;
    if (value.empty()) {
      return absl::InvalidArgumentError(
          absl::StrCat("--pdev ", spec.pdev, ": '", key, "' needs a value"));
    }
    if (key == "iface" || key == "kernel") {
      if (value.size() >= 16 || value.find('/') != std::string::npos) {
        return absl::InvalidArgumentError(
            absl::StrCat("--pdev ", spec.pdev, ": bad interface name '", value, "'"));
      }
      (key == "iface" ? spec.iface : spec.kernel_iface) = value;
    } else if (key == "pci") {
      absl::StatusOr<std::string> bdf = NormalizePciAddress(value);
      if (!bdf.ok()) return bdf.status();
      spec.pci = *bdf;
    } else if (key == "type") {
      have_type = true;
      if (value == "af_xdp") {
        spec.type = PortType::kAfXdp;
      } else if (value == "af_packet") {
        spec.type = PortType::kAfPacket;
      } else if (value == "tap") {
        spec.type = PortType::kTap;
      } else {
        return absl::InvalidArgumentError(absl::StrCat("--pdev ", spec.pdev, ": type '", value,
                                                       "' is not af_xdp, af_packet or tap"));
      }
    } else if (key == "pcap") {
      spec.pcap = value;
    } else if (key == "mtu") {
      auto [p, ec] = std::from_chars(value.data(), value.data() + value.size(), spec.mtu);
      if (ec != std::errc() || p != value.data() + value.size() || spec.mtu < 576 ||
          spec.mtu > 9600) {
        return absl::InvalidArgumentError(
            absl::StrCat("--pdev ", spec.pdev, ": mtu '", value, "' is not 576..9600"));
      }
    } else if (key == "zerocopy") {
      if (value != "0" && value != "1") {
        return absl::InvalidArgumentError(
            absl::StrCat("--pdev ", spec.pdev, ": zerocopy '", value, "' is not 0 or 1"));
      }
      spec.zero_copy = value == "1";
    } else if (key == "busy_poll") {
      have_busy_poll = true;
      auto [p, ec] =
          std::from_chars(value.data(), value.data() + value.size(), spec.xdp_busy_budget);
      if (ec != std::errc() || p != value.data() + value.size() || spec.xdp_busy_budget > 65535) {
        return absl::InvalidArgumentError(
            absl::StrCat("--pdev ", spec.pdev, ": busy_poll '", value, "' is not 0..65535"));
      }
    } else if (key == "drop" || key == "dup" || key == "reorder" || key == "corrupt") {
      double* p = key == "drop"      ? &spec.fault_drop
                  : key == "dup"     ? &spec.fault_duplicate
                  : key == "reorder" ? &spec.fault_reorder
                                     : &spec.fault_corrupt;
      char* end = nullptr;
      *p = std::strtod(value.c_str(), &end);
      if (end != value.c_str() + value.size() || !(*p >= 0 && *p <= 1)) {
        return absl::InvalidArgumentError(absl::StrCat("--pdev ", spec.pdev, ": ", key, " '", value,
                                                       "' is not a probability 0..1"));
      }
    } else {
      return absl::InvalidArgumentError(absl::StrCat(
          "--pdev ", spec.pdev, ": unknown key '", key,
          "' (iface, type, pci, kernel, pcap, mtu, zerocopy, busy_poll, drop, dup, reorder, "
          "corrupt)"));
    }
  }
  if (spec.pci.empty() == spec.iface.empty()) {
    return absl::InvalidArgumentError(
        absl::StrCat("--pdev ", spec.pdev, ": give exactly one of pci=BDF or iface=IFACE"));
  }
  if (!spec.pci.empty()) {
    if (have_type) {
      return absl::InvalidArgumentError(
          absl::StrCat("--pdev ", spec.pdev, ": type= is for iface= ports"));
    }
    spec.type = PortType::kPci;
  }
  if (have_busy_poll && spec.type != PortType::kAfXdp) {
    return absl::InvalidArgumentError(
        absl::StrCat("--pdev ", spec.pdev, ": busy_poll= is for type=af_xdp ports"));
  }
  // The exception path is for a port the kernel does not see: a NIC on vfio-pci, or an
  // AF_PACKET port on an interface left to vrdmad (how the tests model such a NIC).
  if (!spec.kernel_iface.empty()) {
    if (spec.type != PortType::kPci && spec.type != PortType::kAfPacket) {
      return absl::InvalidArgumentError(
          absl::StrCat("--pdev ", spec.pdev,
                       ": kernel= is for pci= and type=af_packet ports (the kernel already "
                       "sees an ",
                       std::string(PortTypeName(spec.type)), " port's interface)"));
    }
    if (spec.kernel_iface == spec.iface) {
      return absl::InvalidArgumentError(absl::StrCat(
          "--pdev ", spec.pdev, ": kernel= names a new TAP interface, not the port's own"));
    }
  }
  return spec;
}

}  // namespace vrdma::vfio
