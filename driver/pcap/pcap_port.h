// A PacketPort decorator that records every frame it passes to a pcap file: frames
// received from the inner port, and frames the inner port accepted for sending.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "driver/pcap/pcap_writer.h"
#include "driver/port/packet_port.h"

namespace vrdma::driver {

class PcapPort : public PacketPort {
 public:
  // Neither `inner` nor `writer` is owned; both must outlive this port. `writer` must
  // be open.
  PcapPort(PacketPort* inner, PcapWriter* writer);

  uint16_t RxBurst(rte_mbuf** pkts, uint16_t n) override;
  // Once the inner port has taken a frame it owns the mbuf and may free it at once, so
  // the offered frames are copied first and only the accepted ones are written after
  // the inner TxBurst returns. Rejected frames (the caller retries or frees them) are
  // not recorded, so a retried frame appears once, when it is sent.
  uint16_t TxBurst(rte_mbuf** pkts, uint16_t n) override;
  std::string_view Name() const override { return name_; }
  bool HasExternalRx() const override { return inner_->HasExternalRx(); }
  int WakeFd() const override { return inner_->WakeFd(); }
  void ArmWake(bool armed) override { inner_->ArmWake(armed); }
  bool TxChains() const override { return inner_->TxChains(); }
  absl::Status DmaMap(void* va, size_t len) override { return inner_->DmaMap(va, len); }
  void DmaUnmap(void* va, size_t len) override { inner_->DmaUnmap(va, len); }

  // The first error writing the capture. Recording stops after it; traffic does not.
  const absl::Status& status() const { return status_; }

 private:
  void Record(const uint8_t* frame, uint32_t len, uint64_t timestamp_ns);
  // Appends the bytes of `m` (any number of segments) to `buf`.
  static void AppendFrame(const rte_mbuf* m, std::vector<uint8_t>* buf);

  PacketPort* inner_;
  PcapWriter* writer_;
  std::string name_;
  absl::Status status_;
  std::vector<uint8_t> rx_copy_;    // a multi-segment frame made contiguous
  std::vector<uint8_t> tx_staged_;  // the offered frames back to back
  std::vector<uint32_t> tx_lens_;
};

}  // namespace vrdma::driver
