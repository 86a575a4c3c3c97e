// A PacketPort decorator that injects faults into the frames a port sends, for tests on
// a real link: loss, duplicates, reordering (a frame held back behind the next one) and
// corruption (one bit flipped, so the receiver's ICRC check catches it). The same
// FaultConfig as the in-memory TestLink; delay is not applied. Deterministic from a
// seed. Not on a hot path of a production port: only a pdev given fault options has it.
#pragma once

#include <rte_mbuf.h>

#include <array>
#include <cstdint>

#include "driver/port/packet_port.h"
#include "driver/port/test_link.h"

namespace vrdma::driver {

class FaultPort : public PacketPort {
 public:
  // `inner` is not owned. Duplicates are allocated from `pool`.
  FaultPort(PacketPort* inner, rte_mempool* pool, const FaultConfig& faults, uint64_t seed);
  ~FaultPort() override;

  uint16_t RxBurst(rte_mbuf** pkts, uint16_t n) override;
  // Takes every frame offered; frames the inner port refuses are freed and counted.
  uint16_t TxBurst(rte_mbuf** pkts, uint16_t n) override;
  std::string_view Name() const override { return inner_->Name(); }
  bool HasExternalRx() const override { return inner_->HasExternalRx(); }
  int WakeFd() const override { return inner_->WakeFd(); }
  void ArmWake(bool armed) override { inner_->ArmWake(armed); }
  bool TxChains() const override { return inner_->TxChains(); }
  absl::Status DmaMap(void* va, size_t len) override { return inner_->DmaMap(va, len); }
  void DmaUnmap(void* va, size_t len) override { inner_->DmaUnmap(va, len); }

  const LinkCounters& counters() const { return counters_; }

 private:
  double Uniform();
  void Flush(rte_mbuf** out, uint16_t n);

  PacketPort* inner_;
  rte_mempool* pool_;
  FaultConfig faults_;
  uint64_t rng_;
  rte_mbuf* held_ = nullptr;  // a frame held back for reordering
  LinkCounters counters_;
  static constexpr uint16_t kChunk = 64;
  std::array<rte_mbuf*, 2 * kChunk + 1> out_{};
};

}  // namespace vrdma::driver
