// The internal switch of one physical device: every frame the device sends comes back to
// it, so QPs of different virtual devices on the same physical device talk through the
// full RoCE protocol with no wire (like a NIC's embedded switch). A bounded ring, like a
// NIC queue: frames beyond it are dropped and counted.
#pragma once

#include <rte_mbuf.h>

#include <cstdint>
#include <vector>

#include "driver/port/packet_port.h"

namespace vrdma::driver {

class LoopbackPort : public PacketPort {
 public:
  explicit LoopbackPort(uint32_t depth = 4096);
  ~LoopbackPort() override;
  LoopbackPort(const LoopbackPort&) = delete;
  LoopbackPort& operator=(const LoopbackPort&) = delete;

  uint16_t RxBurst(rte_mbuf** pkts, uint16_t n) override;
  uint16_t TxBurst(rte_mbuf** pkts, uint16_t n) override;
  std::string_view Name() const override { return "internal-switch"; }
  // Zero-copy frames come back as they went: the receiving QP copies the payload
  // straight from the sender's registered memory (one copy between two vdevs).
  bool TxChains() const override { return true; }
  bool TurnsAround() const override { return true; }

  uint64_t dropped() const { return dropped_; }

 private:
  std::vector<rte_mbuf*> ring_;
  uint32_t head_ = 0;
  uint32_t count_ = 0;
  uint64_t dropped_ = 0;
};

}  // namespace vrdma::driver
