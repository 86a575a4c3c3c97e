#include "driver/port/packet_pool.h"

#include <rte_errno.h>

#include "absl/strings/str_cat.h"

namespace vrdma::driver {

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

uint16_t PagePoolDataRoom() {
  uint32_t header =
      static_cast<uint32_t>(rte_mempool_calc_obj_size(0, RTE_MEMPOOL_F_NO_SPREAD, nullptr));
  return static_cast<uint16_t>(4096 - header - sizeof(rte_mbuf) - RTE_PKTMBUF_HEADROOM);
}

absl::StatusOr<rte_mempool*> CreatePagePacketPool(const char* name, uint32_t count) {
  uint16_t room = static_cast<uint16_t>(PagePoolDataRoom() + RTE_PKTMBUF_HEADROOM);
  rte_pktmbuf_pool_private priv{};
  priv.mbuf_data_room_size = room;
  priv.mbuf_priv_size = 0;
  rte_mempool* mp =
      rte_mempool_create(name, count, sizeof(rte_mbuf) + room, /*cache_size=*/256,
                         sizeof(rte_pktmbuf_pool_private), rte_pktmbuf_pool_init, &priv,
                         rte_pktmbuf_init, nullptr, SOCKET_ID_ANY, RTE_MEMPOOL_F_NO_SPREAD);
  if (mp == nullptr) {
    return absl::ResourceExhaustedError(
        absl::StrCat("cannot create mbuf pool ", name, ": ", rte_strerror(rte_errno)));
  }
  return mp;
}

}  // namespace vrdma::driver
