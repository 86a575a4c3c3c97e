#include "driver/pcap/pcap_port.h"

#include <cstring>

namespace vrdma::driver {

PcapPort::PcapPort(PacketPort* inner, PcapWriter* writer)
    : inner_(inner), writer_(writer), name_("pcap:" + std::string(inner->Name())) {}

void PcapPort::AppendFrame(const rte_mbuf* m, std::vector<uint8_t>* buf) {
  const size_t start = buf->size();
  buf->resize(start + rte_pktmbuf_pkt_len(m));
  uint8_t* out = buf->data() + start;
  for (const rte_mbuf* seg = m; seg != nullptr; seg = seg->next) {
    const uint32_t seg_len = rte_pktmbuf_data_len(seg);
    std::memcpy(out, rte_pktmbuf_mtod(seg, const uint8_t*), seg_len);
    out += seg_len;
  }
}

void PcapPort::Record(const uint8_t* frame, uint32_t len, uint64_t timestamp_ns) {
  if (!status_.ok()) return;
  status_ = writer_->Write(frame, len, timestamp_ns);
}

uint16_t PcapPort::RxBurst(rte_mbuf** pkts, uint16_t n) {
  const uint16_t got = inner_->RxBurst(pkts, n);
  if (got == 0 || !status_.ok()) return got;
  const uint64_t now = RealtimeNs();
  for (uint16_t i = 0; i < got; ++i) {
    const rte_mbuf* m = pkts[i];
    if (m->nb_segs == 1) {
      Record(rte_pktmbuf_mtod(m, const uint8_t*), rte_pktmbuf_data_len(m), now);
    } else {
      rx_copy_.clear();
      AppendFrame(m, &rx_copy_);
      Record(rx_copy_.data(), static_cast<uint32_t>(rx_copy_.size()), now);
    }
  }
  return got;
}

uint16_t PcapPort::TxBurst(rte_mbuf** pkts, uint16_t n) {
  if (!status_.ok()) return inner_->TxBurst(pkts, n);
  const uint64_t now = RealtimeNs();
  tx_staged_.clear();
  tx_lens_.clear();
  for (uint16_t i = 0; i < n; ++i) {
    AppendFrame(pkts[i], &tx_staged_);
    tx_lens_.push_back(rte_pktmbuf_pkt_len(pkts[i]));
  }
  const uint16_t sent = inner_->TxBurst(pkts, n);
  const uint8_t* frame = tx_staged_.data();
  for (uint16_t i = 0; i < sent; ++i) {
    Record(frame, tx_lens_[i], now);
    frame += tx_lens_[i];
  }
  return sent;
}

}  // namespace vrdma::driver
