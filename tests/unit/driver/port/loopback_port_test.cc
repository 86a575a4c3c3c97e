#include "driver/port/loopback_port.h"

#include "driver/port/packet_pool.h"
#include "gtest/gtest.h"

namespace vrdma::driver {
namespace {

rte_mempool* LoopPool() {
  static rte_mempool* pool = *CreatePacketPool("loop_test_pool", 1023);
  return pool;
}

TEST(LoopbackPortTest, SentFramesComeBackInOrderAndOverflowIsRefused) {
  unsigned before = rte_mempool_avail_count(LoopPool());
  {
    LoopbackPort port(4);
    rte_mbuf* tx[6];
    for (int i = 0; i < 6; ++i) {
      tx[i] = rte_pktmbuf_alloc(LoopPool());
      tx[i]->data_len = static_cast<uint16_t>(i);  // a tag to check the order
    }
    ASSERT_EQ(port.TxBurst(tx, 6), 4) << "a ring of 4 takes 4";
    EXPECT_EQ(port.dropped(), 2u);
    rte_pktmbuf_free(tx[4]);  // the caller still owns what was refused
    rte_pktmbuf_free(tx[5]);
    rte_mbuf* rx[8];
    ASSERT_EQ(port.RxBurst(rx, 2), 2);
    EXPECT_EQ(rx[0]->data_len, 0u);
    EXPECT_EQ(rx[1]->data_len, 1u);
    rte_pktmbuf_free(rx[0]);
    rte_pktmbuf_free(rx[1]);
    // Two frames stay queued; the port frees them when it goes.
  }
  EXPECT_EQ(rte_mempool_avail_count(LoopPool()), before);
}

}  // namespace
}  // namespace vrdma::driver
