// A port moves Ethernet frames in bursts of DPDK mbufs (DPDK's rx/tx burst model).
#pragma once

#include <rte_mbuf.h>

#include <cstddef>
#include <cstdint>
#include <string_view>

#include "absl/status/status.h"

namespace vrdma::driver {

class PacketPort {
 public:
  virtual ~PacketPort() = default;
  // Up to `n` received frames into `pkts`; ownership passes to the caller.
  virtual uint16_t RxBurst(rte_mbuf** pkts, uint16_t n) = 0;
  // Offers `n` frames; returns how many the port took (and now owns). The caller still
  // owns, and must free or retry, pkts[returned .. n).
  virtual uint16_t TxBurst(rte_mbuf** pkts, uint16_t n) = 0;
  virtual std::string_view Name() const = 0;

  // Frames can arrive from outside the device (a wire). An owner that sleeps while idle
  // must then wake on WakeFd(), or poll at a short interval when that is -1.
  virtual bool HasExternalRx() const { return false; }
  // Readable when a frame arrives while armed; -1 when the port has no such descriptor.
  virtual int WakeFd() const { return -1; }
  virtual void ArmWake(bool /*armed*/) {}

  // Zero-copy transmit: the port takes a frame as a chain of mbufs whose payload
  // segment is an external buffer in registered client memory (DPDK's
  // RTE_ETH_TX_OFFLOAD_MULTI_SEGS), and frees it when it no longer needs the payload.
  virtual bool TxChains() const { return false; }
  // Every frame the port receives is one its device sent, as it sent it (an internal
  // switch): never on a wire, so a zero-copy frame's payload can be read in place.
  virtual bool TurnsAround() const { return false; }
  // Makes [va, va + len) reachable by the port's device for DMA (DPDK external memory
  // and rte_dev_dma_map, IOVA = VA). Nothing to do for a port whose PMD reads frames
  // with the CPU; an error when the device cannot reach it (then frames are copied).
  virtual absl::Status DmaMap(void* /*va*/, size_t /*len*/) { return absl::OkStatus(); }
  virtual void DmaUnmap(void* /*va*/, size_t /*len*/) {}
};

}  // namespace vrdma::driver
