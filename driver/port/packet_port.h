// A port moves Ethernet frames in bursts of DPDK mbufs (DPDK's rx/tx burst model).
#pragma once

#include <rte_mbuf.h>

#include <cstdint>
#include <string_view>

namespace vrdma {

class PacketPort {
 public:
  virtual ~PacketPort() = default;
  // Up to `n` received frames into `pkts`; ownership passes to the caller.
  virtual uint16_t RxBurst(rte_mbuf** pkts, uint16_t n) = 0;
  // Offers `n` frames; returns how many the port took (and now owns). The caller still
  // owns, and must free or retry, pkts[returned .. n).
  virtual uint16_t TxBurst(rte_mbuf** pkts, uint16_t n) = 0;
  virtual std::string_view Name() const = 0;
};

}  // namespace vrdma
