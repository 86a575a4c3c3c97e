#include "driver/port/exception_port.h"

#include "driver/wire/headers.h"

namespace vrdma::driver {
namespace {

using wire::kEtherTypeIpv4;
using wire::kEtherTypeIpv6;
using wire::kEtherTypeRoceV1;
using wire::kEtherTypeVlan;
using wire::kRoceV2UdpPort;
constexpr uint8_t kIpProtoUdp = 17;

uint16_t Be16(const uint8_t* p) { return static_cast<uint16_t>(p[0] << 8 | p[1]); }

}  // namespace

bool IsRoceFrame(const uint8_t* frame, uint32_t len) {
  uint32_t off = 12;
  if (len < off + 2) return false;
  uint16_t type = Be16(frame + off);
  off += 2;
  if (type == kEtherTypeVlan) {
    if (len < off + 4) return false;
    type = Be16(frame + off + 2);
    off += 4;
  }
  if (type == kEtherTypeRoceV1) return true;
  if (type == kEtherTypeIpv4) {
    if (len < off + 20) return false;
    const uint8_t* ip = frame + off;
    uint32_t ihl = (ip[0] & 0x0f) * 4u;
    // Fragment offset (the low 13 bits of bytes 6-7) must be 0 for a UDP header here.
    if ((ip[0] >> 4) != 4 || ihl < 20 || ip[9] != kIpProtoUdp || (Be16(ip + 6) & 0x1fff) != 0) {
      return false;
    }
    if (len < off + ihl + 4) return false;
    return Be16(ip + ihl + 2) == kRoceV2UdpPort;
  }
  if (type == kEtherTypeIpv6) {
    // RoCEv2 puts UDP right after the fixed header (no extension headers).
    if (len < off + 40 + 4) return false;
    const uint8_t* ip = frame + off;
    return (ip[0] >> 4) == 6 && ip[6] == kIpProtoUdp && Be16(ip + 40 + 2) == kRoceV2UdpPort;
  }
  return false;
}

void ExceptionPort::Forward(PacketPort* to, rte_mbuf** pkts, uint16_t n, uint64_t* counter) {
  uint16_t sent = n ? to->TxBurst(pkts, n) : 0;
  *counter += sent;
  for (uint16_t i = sent; i < n; ++i) {
    rte_pktmbuf_free(pkts[i]);
    counters_.dropped++;
  }
}

uint16_t ExceptionPort::RxBurst(rte_mbuf** pkts, uint16_t n) {
  // The kernel's frames first, so its ARP replies and TCP go out in this pass.
  uint16_t k = kernel_->RxBurst(side_.data(), kBurst);
  Forward(wire_, side_.data(), k, &counters_.from_kernel);

  uint16_t got = wire_->RxBurst(pkts, n);
  uint16_t keep = 0, aside = 0;
  for (uint16_t i = 0; i < got; ++i) {
    rte_mbuf* m = pkts[i];
    if (IsRoceFrame(rte_pktmbuf_mtod(m, const uint8_t*), m->data_len)) {
      pkts[keep++] = m;
    } else {
      side_[aside++] = m;
      if (aside == kBurst) {
        Forward(kernel_, side_.data(), aside, &counters_.to_kernel);
        aside = 0;
      }
    }
  }
  Forward(kernel_, side_.data(), aside, &counters_.to_kernel);
  return keep;
}

}  // namespace vrdma::driver
