#include "driver/port/loopback_port.h"

namespace vrdma::driver {

LoopbackPort::LoopbackPort(uint32_t depth) : ring_(depth ? depth : 1) {}

LoopbackPort::~LoopbackPort() {
  for (uint32_t i = 0; i < count_; ++i) rte_pktmbuf_free(ring_[(head_ + i) % ring_.size()]);
}

uint16_t LoopbackPort::TxBurst(rte_mbuf** pkts, uint16_t n) {
  const uint32_t size = static_cast<uint32_t>(ring_.size());
  uint16_t taken = 0;
  for (; taken < n && count_ < size; ++taken) {
    ring_[(head_ + count_) % size] = pkts[taken];
    ++count_;
  }
  dropped_ += n - taken;  // the caller frees what the port did not take
  return taken;
}

uint16_t LoopbackPort::RxBurst(rte_mbuf** pkts, uint16_t n) {
  const uint32_t size = static_cast<uint32_t>(ring_.size());
  uint16_t got = 0;
  for (; got < n && count_ > 0; ++got) {
    pkts[got] = ring_[head_];
    head_ = (head_ + 1) % size;
    --count_;
  }
  return got;
}

}  // namespace vrdma::driver
