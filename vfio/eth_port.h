// One DPDK ethdev port opened for a pdev: a PCI NIC bound to vfio-pci, or a DPDK
// virtual port (AF_XDP, AF_PACKET, TAP) on a kernel interface. One receive and one
// transmit queue, polled by the engine thread that owns the pdev.
#pragma once

#include <rte_ethdev.h>
#include <rte_mbuf.h>

#include <array>
#include <cstdint>
#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "vfio/port_spec.h"
#include "vfio/wake_socket.h"
#include "vfio/xsk_wake.h"

namespace vrdma::vfio {

class EthPort {
 public:
  // Largest Ethernet frame (no FCS) each port type moves in one piece with mbufs of
  // `data_room` bytes. AF_XDP frames live in one UMEM chunk of a page, and the PMD has
  // no multi-buffer XDP, so its frames stay below a page.
  static uint32_t MaxFrame(PortType type, uint32_t data_room);

  // Probes the port (creating the DPDK virtual device for iface= ports), configures
  // one RX and one TX queue over `pool`, and starts it.
  static absl::StatusOr<std::unique_ptr<EthPort>> Open(const PortSpec& spec, rte_mempool* pool);
  ~EthPort();
  EthPort(const EthPort&) = delete;
  EthPort& operator=(const EthPort&) = delete;

  uint16_t RxBurst(rte_mbuf** pkts, uint16_t n) { return rte_eth_rx_burst(port_id_, 0, pkts, n); }
  uint16_t TxBurst(rte_mbuf** pkts, uint16_t n) { return rte_eth_tx_burst(port_id_, 0, pkts, n); }

  const std::string& name() const { return name_; }  // the ethdev's name
  const PortSpec& spec() const { return spec_; }
  uint16_t port_id() const { return port_id_; }
  const std::array<uint8_t, 6>& mac() const { return mac_; }
  // The largest frame this port moves (Ethernet header and VLAN tag included).
  uint32_t max_frame() const { return max_frame_; }
  // The largest IP packet (Ethernet MTU) the port moves in one frame, VLAN tag allowed.
  uint32_t max_mtu() const { return max_frame_ - 18; }
  // A TAP port: sets its kernel interface's MTU. DPDK's TAP PMD caps its own MTU at
  // 1500, yet reads whole frames into mbufs of the pool's size.
  absl::Status SetTapMtu(uint32_t mtu);

  // The PMD transmits chained mbufs (RTE_ETH_TX_OFFLOAD_MULTI_SEGS), so a frame's
  // payload can stay in client memory. DPDK 22.11's AF_XDP PMD sends the first segment
  // only, AF_PACKET and TAP copy every segment, a NIC's PMD DMAs each one.
  bool tx_chains() const { return tx_chains_; }
  // A PCI port's device reads frames by DMA: client memory must be DPDK external memory
  // mapped for it (IOVA = VA, as EAL picks with an IOMMU). Ports the CPU feeds need
  // nothing. Errors name why (IOVA as PA, a refused mapping).
  absl::Status DmaMap(void* va, size_t len);
  void DmaUnmap(void* va, size_t len);

  // A descriptor that becomes readable when a RoCE frame arrives: while armed (the
  // packet socket of AF_PACKET and TAP ports), or whenever its ring holds frames (an
  // AF_XDP port's XDP socket, which only RoCE reaches); -1 when the port has none (the
  // owner then sleeps in short ticks).
  int wake_fd() const {
    if (wake_) return wake_->fd();
    return xsk_wake_ ? xsk_wake_->fd() : -1;
  }
  void ArmWake(bool armed) {
    if (wake_) wake_->Arm(armed);
  }

 private:
  EthPort() = default;

  PortSpec spec_;
  std::string name_;
  std::string devargs_;
  uint16_t port_id_ = 0;
  bool started_ = false;
  std::array<uint8_t, 6> mac_{};
  uint32_t max_frame_ = 1514;
  bool tx_chains_ = false;
  std::unique_ptr<WakeSocket> wake_;   // AF_PACKET and TAP ports
  std::unique_ptr<XskWake> xsk_wake_;  // AF_XDP ports
};

}  // namespace vrdma::vfio
