// What a physical device (pdev) is built on, as vrdmad's `--pdev` option names it:
//   --pdev NAME,pci=DOMAIN:BUS:DEV.FN            a PCI NIC bound to vfio-pci
//   --pdev NAME,iface=IFACE,type=af_xdp|af_packet|tap   a DPDK virtual port on a netdev
// plus optional `pcap=FILE` (record every frame the port sends and receives) and
// `kernel=IFACE`: the exception path, a TAP interface IFACE with the port's MAC through
// which the kernel sends and receives the port's non-RoCE frames (ARP, ND, ping, TCP).
#pragma once

#include <array>
#include <cstdint>
#include <string>
#include <string_view>

#include "absl/status/statusor.h"

namespace vrdma::vfio {

enum class PortType { kPci, kAfXdp, kAfPacket, kTap };

struct PortSpec {
  std::string pdev;  // the physical RDMA device's name
  PortType type = PortType::kAfXdp;
  std::string iface;         // kernel interface (virtual ports)
  std::string pci;           // PCI address, normalised to DOMAIN:BUS:DEV.FN (PCI ports)
  std::string pcap;          // empty: no capture
  std::string kernel_iface;  // the exception path's TAP interface; empty: none
  // TAP ports: the MAC to give the port and its kernel interface (all zero: DPDK's).
  std::array<uint8_t, 6> tap_mac{};
  uint32_t mtu = 0;  // PCI ports: the Ethernet MTU to configure (0: 1500)
  // Fault injection on the frames the port sends (tests): probabilities 0..1 from the
  // keys drop=, dup=, reorder=, corrupt=.
  // Zero-copy transmit from client memory where the PMD takes chained frames
  // (zerocopy=0 copies every payload into mbufs).
  bool zero_copy = true;
  // AF_XDP ports: the PMD's busy_budget (busy_poll=). 0, the default, keeps a receive
  // burst that finds nothing free of system calls; N > 0 is DPDK's preferred busy
  // polling (SO_PREFER_BUSY_POLL): every empty burst is a recvfrom() that runs the
  // interface's NAPI for up to N frames, for zero-copy NICs set up for it.
  uint32_t xdp_busy_budget = 0;
  double fault_drop = 0;
  double fault_duplicate = 0;
  double fault_reorder = 0;
  double fault_corrupt = 0;
  bool has_faults() const {
    return fault_drop > 0 || fault_duplicate > 0 || fault_reorder > 0 || fault_corrupt > 0;
  }
};

// Parses one --pdev value. Errors name the offending key or value.
absl::StatusOr<PortSpec> ParsePortSpec(std::string_view text);

// Normalises "03:00.0" or "0000:03:00.0" to "0000:03:00.0"; InvalidArgument otherwise.
absl::StatusOr<std::string> NormalizePciAddress(std::string_view bdf);

std::string_view PortTypeName(PortType type);

}  // namespace vrdma::vfio
