// ibv_init_ah_from_wc's pure part (interposer.cc): the addresses a received datagram's
// GRH area carries, and our GID it was sent to. Header-only, no state: unit-tested alone.
#pragma once

#include <arpa/inet.h>
#include <infiniband/verbs.h>

#include <cstdint>
#include <cstring>

#include "vdev/protocol/protocol.h"

namespace vrdma::provider {

struct GrhAddresses {
  uint8_t sgid[16] = {};  // the sender's GID (IPv4 senders as ::ffff:a.b.c.d)
  uint8_t dgid[16] = {};  // the GID it was sent to
  uint8_t traffic_class = 0;
  uint32_t flow_label = 0;  // IPv6 only
};

// The 40-byte GRH area of a receive buffer: a GRH (RoCEv1, RoCEv2 over IPv6), or, for
// RoCEv2 over IPv4, 20 unused bytes then the IPv4 header, as the kernel writes it.
inline GrhAddresses AddressesOfGrh(const ibv_grh* grh) {
  GrhAddresses a;
  const auto* raw = reinterpret_cast<const uint8_t*>(grh);
  uint32_t vtf = ntohl(grh->version_tclass_flow);
  bool ipv4 = (vtf >> 28) != 6 && (raw[20] >> 4) == 4;
  if (ipv4) {
    a.sgid[10] = a.sgid[11] = a.dgid[10] = a.dgid[11] = 0xff;
    std::memcpy(a.sgid + 12, raw + 20 + 12, 4);
    std::memcpy(a.dgid + 12, raw + 20 + 16, 4);
    a.traffic_class = raw[21];
  } else {
    std::memcpy(a.sgid, grh->sgid.raw, 16);
    std::memcpy(a.dgid, grh->dgid.raw, 16);
    a.traffic_class = static_cast<uint8_t>((vtf >> 20) & 0xff);
    a.flow_label = vtf & 0xfffff;
  }
  return a;
}

// The index of the valid entry of `t` holding `gid`, a RoCEv2 one before others; -1 when
// none (entries past count or kMaxGids are not looked at).
inline int FindGidIndex(const proto::QueryGidTableReply& t, const uint8_t gid[16]) {
  int found = -1;
  for (uint32_t i = 0; i < t.count && i < proto::kMaxGids; ++i) {
    if (!t.entries[i].valid || std::memcmp(t.entries[i].gid, gid, 16) != 0) continue;
    if (found < 0 || t.entries[i].type == IBV_GID_TYPE_ROCE_V2) found = static_cast<int>(i);
  }
  return found;
}

}  // namespace vrdma::provider
