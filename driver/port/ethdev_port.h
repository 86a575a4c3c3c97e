// The engine's view of a DPDK ethdev port (vfio/ opens and owns the port itself).
#pragma once

#include <memory>

#include "driver/port/packet_port.h"
#include "vfio/eth_port.h"

namespace vrdma::driver {

class EthdevPort : public PacketPort {
 public:
  explicit EthdevPort(std::unique_ptr<vfio::EthPort> port) : port_(std::move(port)) {}

  uint16_t RxBurst(rte_mbuf** pkts, uint16_t n) override { return port_->RxBurst(pkts, n); }
  uint16_t TxBurst(rte_mbuf** pkts, uint16_t n) override { return port_->TxBurst(pkts, n); }
  std::string_view Name() const override { return port_->name(); }
  bool HasExternalRx() const override { return true; }
  int WakeFd() const override { return port_->wake_fd(); }
  void ArmWake(bool armed) override { port_->ArmWake(armed); }
  bool TxChains() const override { return port_->tx_chains(); }
  absl::Status DmaMap(void* va, size_t len) override { return port_->DmaMap(va, len); }
  void DmaUnmap(void* va, size_t len) override { port_->DmaUnmap(va, len); }

  vfio::EthPort& eth() { return *port_; }

 private:
  std::unique_ptr<vfio::EthPort> port_;
};

}  // namespace vrdma::driver
