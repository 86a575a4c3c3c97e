#include "driver/port/test_link.h"

#include <cstring>
#include <vector>

#include "driver/port/packet_pool.h"
#include "gtest/gtest.h"

namespace vrdma::driver {
namespace {

rte_mempool* Pool() {
  static rte_mempool* pool = *CreatePacketPool("link_test_pool", 16383);
  return pool;
}

rte_mbuf* Frame(uint32_t seq, uint16_t len = 64) {
  rte_mbuf* m = rte_pktmbuf_alloc(Pool());
  uint8_t* p = reinterpret_cast<uint8_t*>(rte_pktmbuf_append(m, len));
  std::memset(p, 0, len);
  std::memcpy(p, &seq, 4);
  return m;
}

uint32_t SeqOf(rte_mbuf* m) {
  uint32_t s;
  std::memcpy(&s, rte_pktmbuf_mtod(m, void*), 4);
  return s;
}

// Sends n frames A->B one by one and returns the sequence numbers B receives.
std::vector<uint32_t> Pump(TestLink& link, uint32_t n, uint64_t now = 0) {
  std::vector<uint32_t> got;
  link.SetNow(now);
  for (uint32_t i = 0; i < n; ++i) {
    rte_mbuf* m = Frame(i);
    EXPECT_EQ(link.port_a()->TxBurst(&m, 1), 1);
    rte_mbuf* rx[8];
    uint16_t k;
    while ((k = link.port_b()->RxBurst(rx, 8)) > 0) {
      for (uint16_t j = 0; j < k; ++j) {
        got.push_back(SeqOf(rx[j]));
        rte_pktmbuf_free(rx[j]);
      }
    }
  }
  // Let a frame still held back for reordering go.
  link.SetNow(now + TestLink::kMaxHoldNs);
  rte_mbuf* rx[8];
  uint16_t k;
  while ((k = link.port_b()->RxBurst(rx, 8)) > 0) {
    for (uint16_t j = 0; j < k; ++j) {
      got.push_back(SeqOf(rx[j]));
      rte_pktmbuf_free(rx[j]);
    }
  }
  return got;
}

TEST(TestLinkTest, LosslessDeliversInOrderBothWays) {
  TestLink link(1);
  std::vector<uint32_t> got = Pump(link, 1000);
  ASSERT_EQ(got.size(), 1000u);
  for (uint32_t i = 0; i < 1000; ++i) EXPECT_EQ(got[i], i);
  rte_mbuf* m = Frame(7);
  link.port_b()->TxBurst(&m, 1);
  rte_mbuf* rx;
  ASSERT_EQ(link.port_a()->RxBurst(&rx, 1), 1);
  EXPECT_EQ(SeqOf(rx), 7u);
  rte_pktmbuf_free(rx);
  EXPECT_EQ(link.counters(TestLink::kAtoB).delivered, 1000u);
}

TEST(TestLinkTest, FaultRatesAreNearWhatWasAsked) {
  TestLink link(99);
  FaultConfig f;
  f.drop = 0.05;
  f.duplicate = 0.05;
  f.reorder = 0.05;
  f.corrupt = 0.02;
  link.SetFaults(TestLink::kAtoB, f);
  std::vector<uint32_t> got = Pump(link, 10000);
  const LinkCounters& c = link.counters(TestLink::kAtoB);
  EXPECT_NEAR(c.dropped, 500, 150);
  EXPECT_NEAR(c.duplicated, 475, 150);
  EXPECT_NEAR(c.reordered, 475, 150);
  EXPECT_NEAR(c.corrupted, 190, 80);
  EXPECT_EQ(got.size(), 10000 - c.dropped + c.duplicated);
  int out_of_order = 0;
  for (size_t i = 1; i < got.size(); ++i) out_of_order += got[i] < got[i - 1];
  EXPECT_NEAR(out_of_order, c.reordered, c.reordered / 5);
}

TEST(TestLinkTest, SameSeedSameDeliveries) {
  FaultConfig f;
  f.drop = 0.1;
  f.duplicate = 0.1;
  f.reorder = 0.1;
  TestLink one(7), two(7), other(8);
  for (TestLink* l : {&one, &two, &other}) l->SetFaults(TestLink::kAtoB, f);
  std::vector<uint32_t> a = Pump(one, 2000), b = Pump(two, 2000), c = Pump(other, 2000);
  EXPECT_EQ(a, b);
  EXPECT_NE(a, c);
}

TEST(TestLinkTest, CorruptionFlipsExactlyOneBit) {
  TestLink link(3);
  FaultConfig f;
  f.corrupt = 1.0;
  link.SetFaults(TestLink::kAtoB, f);
  rte_mbuf* m = Frame(0, 200);
  link.port_a()->TxBurst(&m, 1);
  rte_mbuf* rx;
  ASSERT_EQ(link.port_b()->RxBurst(&rx, 1), 1);
  int bits = 0;
  const uint8_t* p = rte_pktmbuf_mtod(rx, const uint8_t*);
  for (int i = 0; i < 200; ++i) bits += __builtin_popcount(p[i]);
  EXPECT_EQ(bits, 1);
  rte_pktmbuf_free(rx);
}

TEST(TestLinkTest, DelayHoldsFramesUntilDue) {
  TestLink link(1);
  FaultConfig f;
  f.delay_ns = 10'000;
  link.SetFaults(TestLink::kAtoB, f);
  link.SetNow(1'000);
  rte_mbuf* m = Frame(1);
  link.port_a()->TxBurst(&m, 1);
  rte_mbuf* rx;
  link.SetNow(10'999);
  EXPECT_EQ(link.port_b()->RxBurst(&rx, 1), 0);
  link.SetNow(11'000);
  ASSERT_EQ(link.port_b()->RxBurst(&rx, 1), 1);
  rte_pktmbuf_free(rx);
}

TEST(TestLinkTest, DuplicatesAreIndependentCopies) {
  TestLink link(1);
  FaultConfig f;
  f.duplicate = 1.0;
  link.SetFaults(TestLink::kAtoB, f);
  rte_mbuf* m = Frame(5);
  link.port_a()->TxBurst(&m, 1);
  rte_mbuf* rx[2];
  ASSERT_EQ(link.port_b()->RxBurst(rx, 2), 2);
  EXPECT_NE(rx[0], rx[1]);
  rte_pktmbuf_mtod(rx[0], uint8_t*)[0] = 0xaa;
  EXPECT_EQ(SeqOf(rx[1]), 5u);
  rte_pktmbuf_free(rx[0]);
  rte_pktmbuf_free(rx[1]);
}

TEST(TestLinkTest, OverflowDropsAndCountsAndNothingLeaks) {
  unsigned before = rte_mempool_avail_count(Pool());
  {
    TestLink link(1, /*queue_depth=*/16);
    std::vector<rte_mbuf*> burst;
    for (int i = 0; i < 40; ++i) burst.push_back(Frame(i));
    EXPECT_EQ(link.port_a()->TxBurst(burst.data(), 40), 40);
    EXPECT_EQ(link.counters(TestLink::kAtoB).overflow, 24u);
    rte_mbuf* rx[8];
    ASSERT_EQ(link.port_b()->RxBurst(rx, 8), 8);
    for (rte_mbuf* m : rx) rte_pktmbuf_free(m);
    // The other 8 are still queued; the link frees them when it goes.
  }
  EXPECT_EQ(rte_mempool_avail_count(Pool()), before);
}

}  // namespace
}  // namespace vrdma::driver
