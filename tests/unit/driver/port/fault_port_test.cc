#include "driver/port/fault_port.h"

#include <cstring>
#include <vector>

#include "driver/port/loopback_port.h"
#include "driver/port/packet_pool.h"
#include "gtest/gtest.h"

namespace vrdma::driver {
namespace {

rte_mempool* FaultPool() {
  static rte_mempool* pool = *CreatePacketPool("fault_test_pool", 1023);
  return pool;
}

// Sends `n` 64-byte frames whose first byte is their index through a FaultPort over a
// loopback; returns the first bytes of what came back (all of it, in order).
std::vector<std::vector<uint8_t>> RoundTrip(const FaultConfig& faults, int n, LinkCounters* c) {
  LoopbackPort loop(1024);
  FaultPort port(&loop, FaultPool(), faults, 7);
  for (int i = 0; i < n; ++i) {
    rte_mbuf* m = rte_pktmbuf_alloc(FaultPool());
    uint8_t* p = reinterpret_cast<uint8_t*>(rte_pktmbuf_append(m, 64));
    std::memset(p, 0, 64);
    p[0] = static_cast<uint8_t>(i);
    EXPECT_EQ(port.TxBurst(&m, 1), 1);
  }
  std::vector<std::vector<uint8_t>> out;
  rte_mbuf* rx[64];
  for (int pass = 0; pass < 4; ++pass) {
    uint16_t got = port.RxBurst(rx, 64);
    for (uint16_t i = 0; i < got; ++i) {
      const uint8_t* p = rte_pktmbuf_mtod(rx[i], const uint8_t*);
      out.emplace_back(p, p + rte_pktmbuf_data_len(rx[i]));
      rte_pktmbuf_free(rx[i]);
    }
  }
  *c = port.counters();
  return out;
}

TEST(FaultPortTest, NoFaultsPassesEverythingInOrder) {
  LinkCounters c;
  auto out = RoundTrip(FaultConfig{}, 20, &c);
  ASSERT_EQ(out.size(), 20u);
  for (int i = 0; i < 20; ++i) EXPECT_EQ(out[i][0], i);
  EXPECT_EQ(c.delivered, 20u);
}

TEST(FaultPortTest, DropDuplicateReorderCorrupt) {
  LinkCounters c;
  EXPECT_TRUE(RoundTrip(FaultConfig{.drop = 1}, 10, &c).empty());
  EXPECT_EQ(c.dropped, 10u);

  auto dup = RoundTrip(FaultConfig{.duplicate = 1}, 5, &c);
  ASSERT_EQ(dup.size(), 10u);
  for (int i = 0; i < 5; ++i) EXPECT_EQ(dup[2 * i], dup[2 * i + 1]);

  // Every frame is a candidate, one is held at a time: pairs swap (1 0 3 2 ...).
  auto re = RoundTrip(FaultConfig{.reorder = 1}, 4, &c);
  ASSERT_EQ(re.size(), 4u);
  EXPECT_EQ(re[0][0], 1);
  EXPECT_EQ(re[1][0], 0);
  EXPECT_EQ(re[2][0], 3);
  EXPECT_EQ(re[3][0], 2);

  // A held frame nothing passes goes out on the next receive poll.
  auto last = RoundTrip(FaultConfig{.reorder = 1}, 1, &c);
  ASSERT_EQ(last.size(), 1u);

  auto bad = RoundTrip(FaultConfig{.corrupt = 1}, 8, &c);
  ASSERT_EQ(bad.size(), 8u);
  for (int i = 0; i < 8; ++i) {
    std::vector<uint8_t> want(64, 0);
    want[0] = static_cast<uint8_t>(i);
    int bits = 0;
    for (int k = 0; k < 64; ++k) bits += __builtin_popcount(bad[i][k] ^ want[k]);
    EXPECT_EQ(bits, 1) << "frame " << i << " has exactly one bit flipped";
  }
}

}  // namespace
}  // namespace vrdma::driver
