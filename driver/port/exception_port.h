// The kernel's exception path for a port the kernel no longer drives (a NIC bound to
// vfio-pci): RoCE frames go to the engine, every other frame received on the wire goes
// to a kernel interface (a TAP with the port's MAC), and whatever the kernel sends on
// that interface goes out of the wire. The kernel keeps ARP/ND, ping and TCP on the
// port and resolves the engine's neighbours; a NIC's flow steering ("RoCE to the RDMA
// engine, the rest to the netdev") does the same split in hardware.
#pragma once

#include <rte_mbuf.h>

#include <array>
#include <cstdint>

#include "driver/port/packet_port.h"

namespace vrdma::driver {

// True for a RoCE frame: ethertype 0x8915 (RoCEv1, IBTA Annex A16), or IPv4/IPv6 UDP to
// destination port 4791 (RoCEv2, Annex A17), after at most one 802.1Q tag. An IPv4
// fragment other than the first is not RoCE (it has no UDP header).
bool IsRoceFrame(const uint8_t* frame, uint32_t len);

struct ExceptionCounters {
  uint64_t to_kernel = 0;    // wire -> kernel interface
  uint64_t from_kernel = 0;  // kernel interface -> wire
  uint64_t dropped = 0;      // refused by the side they were offered to
};

class ExceptionPort : public PacketPort {
 public:
  // Neither port is owned.
  ExceptionPort(PacketPort* wire, PacketPort* kernel) : wire_(wire), kernel_(kernel) {}

  // RoCE frames from the wire; on the way, passes the rest to the kernel and the
  // kernel's frames to the wire.
  uint16_t RxBurst(rte_mbuf** pkts, uint16_t n) override;
  uint16_t TxBurst(rte_mbuf** pkts, uint16_t n) override { return wire_->TxBurst(pkts, n); }
  std::string_view Name() const override { return wire_->Name(); }
  bool HasExternalRx() const override { return true; }
  // Frames from the kernel interface have no wake-up descriptor of their own: the owner
  // polls at its idle interval.
  int WakeFd() const override { return -1; }
  bool TxChains() const override { return wire_->TxChains(); }
  absl::Status DmaMap(void* va, size_t len) override { return wire_->DmaMap(va, len); }
  void DmaUnmap(void* va, size_t len) override { wire_->DmaUnmap(va, len); }

  const ExceptionCounters& counters() const { return counters_; }

 private:
  void Forward(PacketPort* to, rte_mbuf** pkts, uint16_t n, uint64_t* counter);

  PacketPort* wire_;
  PacketPort* kernel_;
  ExceptionCounters counters_;
  static constexpr uint16_t kBurst = 64;
  std::array<rte_mbuf*, kBurst> side_{};
};

}  // namespace vrdma::driver
