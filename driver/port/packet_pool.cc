#include "driver/port/packet_pool.h"

#include <rte_errno.h>

#include "absl/strings/str_cat.h"

namespace vrdma {

absl::StatusOr<rte_mempool*> CreatePacketPool(const char* name, uint32_t count,
                                              uint16_t data_room) {
  rte_mempool* mp = rte_pktmbuf_pool_create(name, count, /*cache_size=*/256, /*priv_size=*/0,
                                            data_room + RTE_PKTMBUF_HEADROOM, SOCKET_ID_ANY);
  if (mp == nullptr) {
    return absl::ResourceExhaustedError(
        absl::StrCat("cannot create mbuf pool ", name, ": ", rte_strerror(rte_errno)));
  }
  return mp;
}

}  // namespace vrdma
