// A physical RDMA device as vrdmad owns it: one engine (driver/ RoceDevice) on one port.
// The embedded default is a device whose port is its internal switch: vdevs on it talk
// to each other with the full RoCE protocol and no NIC.
#pragma once

#include <rte_mempool.h>

#include <array>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "driver/device.h"
#include "driver/ports.h"
#include "vdev/protocol/protocol.h"
#include "vdev/shm/tx_share.h"
#include "vfio/port_spec.h"
#include "vfio/roce_udp_hold.h"

namespace vrdma::vdev {

// GID table entries of the device reserved for each vdev (its port's whole table).
inline constexpr uint32_t kGidsPerVdev = proto::kMaxGids;
inline constexpr uint32_t kMaxVdevsPerPdev = 1024;

struct Pdev {
  std::string name;
  std::string kind;  // "internal-switch", "af_xdp", "af_packet", "tap" or "pci"
  // The kernel interface vdevs sit on: a virtual port's interface, or the exception
  // path's TAP (empty for a PCI port without one, and the internal switch).
  std::string iface;
  std::string pci;                 // the PCI address of a PCI port
  std::array<uint8_t, 6> mac{};    // the port's own address (zero for the internal switch)
  ibv_mtu max_mtu = IBV_MTU_4096;  // the largest IB MTU whose frames the port moves
  uint64_t node_guid_be = 0;       // set by Registry::AddPdev
  rte_mempool* pool = nullptr;
  // The port's layers, bottom up; each is present only when configured.
  std::unique_ptr<driver::PacketPort> wire_port;  // the port (a DPDK port, or the internal switch)
  std::unique_ptr<driver::PacketPort> kernel_port;        // the exception path's TAP (kernel=)
  std::unique_ptr<driver::ExceptionPort> exception_port;  // RoCE up, the rest to kernel_port
  std::unique_ptr<driver::PacketPort> fault_port;         // fault injection (drop=, dup=, ...)
  std::unique_ptr<driver::PcapWriter> pcap;
  std::unique_ptr<driver::PacketPort> pcap_port;  // records what crosses it
  driver::PacketPort* port = nullptr;  // the top layer: what the engine sends to and receives from
  std::unique_ptr<vfio::RoceUdpHold> udp_hold;
  std::unique_ptr<driver::RoceDevice> device;
  // Zero-copy transmit (vdev/shm/tx_share.h): set when the top port takes chained frames.
  std::shared_ptr<TxDmaDomain> tx_dma;
  std::vector<bool> gid_block_used = std::vector<bool>(kMaxVdevsPerPdev);

  // The embedded default: a RoceDevice on an internal switch, ICRC left to the "port" (the
  // frames never leave the device).
  static absl::StatusOr<std::unique_ptr<Pdev>> CreateEmbedded(const std::string& name);
  // A device on a DPDK port: a PCI NIC through vfio-pci or a virtual port on a kernel
  // interface. The engine computes the ICRC (no NIC offloads it).
  static absl::StatusOr<std::unique_ptr<Pdev>> CreateOnPort(const vfio::PortSpec& spec);
  ~Pdev();
};

}  // namespace vrdma::vdev
