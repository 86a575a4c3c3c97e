#include "driver/port/fault_port.h"

namespace vrdma::driver {

FaultPort::FaultPort(PacketPort* inner, rte_mempool* pool, const FaultConfig& faults, uint64_t seed)
    : inner_(inner), pool_(pool), faults_(faults), rng_(seed | 1) {}

FaultPort::~FaultPort() {
  if (held_) rte_pktmbuf_free(held_);
}

double FaultPort::Uniform() {
  // xorshift64*
  rng_ ^= rng_ >> 12;
  rng_ ^= rng_ << 25;
  rng_ ^= rng_ >> 27;
  return ((rng_ * 0x2545f4914f6cdd1dull) >> 11) * (1.0 / 9007199254740992.0);
}

void FaultPort::Flush(rte_mbuf** out, uint16_t n) {
  uint16_t sent = 0;
  while (sent < n) {
    uint16_t k = inner_->TxBurst(out + sent, static_cast<uint16_t>(n - sent));
    if (k == 0) break;
    sent = static_cast<uint16_t>(sent + k);
  }
  counters_.delivered += sent;
  for (uint16_t i = sent; i < n; ++i) {
    rte_pktmbuf_free(out[i]);
    counters_.overflow++;
  }
}

uint16_t FaultPort::RxBurst(rte_mbuf** pkts, uint16_t n) {
  // A held frame that no later frame passed goes out on the next engine pass.
  if (held_) {
    rte_mbuf* m = held_;
    held_ = nullptr;
    Flush(&m, 1);
  }
  return inner_->RxBurst(pkts, n);
}

uint16_t FaultPort::TxBurst(rte_mbuf** pkts, uint16_t n) {
  for (uint16_t base = 0; base < n; base = static_cast<uint16_t>(base + kChunk)) {
    uint16_t count = static_cast<uint16_t>(n - base < kChunk ? n - base : kChunk);
    uint16_t k = 0;
    for (uint16_t i = 0; i < count; ++i) {
      rte_mbuf* m = pkts[base + i];
      counters_.sent++;
      if (faults_.drop > 0 && Uniform() < faults_.drop) {
        rte_pktmbuf_free(m);
        counters_.dropped++;
        continue;
      }
      if (faults_.corrupt > 0 && Uniform() < faults_.corrupt && rte_pktmbuf_data_len(m) > 0) {
        uint32_t bit = static_cast<uint32_t>(Uniform() * rte_pktmbuf_data_len(m) * 8);
        rte_pktmbuf_mtod(m, uint8_t*)[bit / 8] ^= static_cast<uint8_t>(1u << (bit % 8));
        counters_.corrupted++;
      }
      if (faults_.duplicate > 0 && Uniform() < faults_.duplicate) {
        if (rte_mbuf* dup = rte_pktmbuf_copy(m, pool_, 0, UINT32_MAX)) {
          out_[k++] = dup;
          counters_.duplicated++;
        }
      }
      if (faults_.reorder > 0 && !held_ && Uniform() < faults_.reorder) {
        held_ = m;
        counters_.reordered++;
        continue;
      }
      out_[k++] = m;
      if (held_) {  // the held frame goes out behind the one that passed it
        out_[k++] = held_;
        held_ = nullptr;
      }
    }
    Flush(out_.data(), k);
  }
  return n;
}

}  // namespace vrdma::driver
