// Zero-copy transmit: on a port that takes chained frames, SEND/WRITE payloads and READ
// responses leave from the MR itself (an external buffer counted on the MR's share),
// the data arrives intact, through loss and damage too, and every frame's reference is
// given back once the frames are gone.
#include <rte_mbuf.h>

#include <cstring>

#include "tests/unit/driver/transport/engine_pair.h"

namespace vrdma::driver::testing {
namespace {

class ZeroCopyTest : public ::testing::TestWithParam<bool> {};

TEST_P(ZeroCopyTest, PayloadsLeaveFromTheMrAndComeBackCounted) {
  const bool faults = GetParam();
  EnginePair pair(/*seed=*/3, 8 << 20, nullptr, /*tx_chains=*/true);
  MrShare share_a, share_b;
  ASSERT_TRUE(pair.a.dev->SetMrTxShare(pair.a.mr.lkey, &share_a.info).ok());
  ASSERT_TRUE(pair.b.dev->SetMrTxShare(pair.b.mr.lkey, &share_b.info).ok());
  QpOptions opt;
  opt.mtu = IBV_MTU_4096;
  uint32_t qa, qb;
  pair.Connect(opt, &qa, &qb);
  if (faults) {
    FaultConfig f;
    f.drop = 0.02;
    f.duplicate = 0.02;
    f.reorder = 0.02;
    f.corrupt = 0.01;
    pair.link().SetFaults(TestLink::kAtoB, f);
    pair.link().SetFaults(TestLink::kBtoA, f);
  }
  constexpr uint32_t kLen = 256 * 1024;
  FillPattern(pair.a.at(0), kLen, 1);
  FillPattern(pair.b.at(2 << 20), kLen, 2);
  // WRITE A -> B, READ B -> A (B's responses from B's MR), SEND A -> B from one SGE,
  // and a SEND gathered from two SGEs (copied: its payloads span SGEs).
  SendWr write = MakeSend(1, IBV_WR_RDMA_WRITE, pair.a, 0, kLen);
  write.remote_addr = pair.b.va(1 << 20);
  write.rkey = pair.b.mr.rkey;
  SendWr read = MakeSend(2, IBV_WR_RDMA_READ, pair.a, 1 << 20, kLen);
  read.remote_addr = pair.b.va(2 << 20);
  read.rkey = pair.b.mr.rkey;
  SendWr send = MakeSend(3, IBV_WR_SEND, pair.a, 0, 20000);
  SendWr gathered = MakeSend(4, IBV_WR_SEND, pair.a, 0, 3000);
  gathered.sg_list[1] = gathered.sg_list[0];
  gathered.sg_list[0].length = 1000;
  gathered.sg_list[1].addr += 5000;
  gathered.sg_list[1].length = 2000;
  gathered.num_sge = 2;
  ASSERT_TRUE(pair.b.dev->PostRecv(qb, MakeRecv(10, pair.b, 4 << 20, 20000)).ok());
  ASSERT_TRUE(pair.b.dev->PostRecv(qb, MakeRecv(11, pair.b, 5 << 20, 3000)).ok());
  for (const SendWr& w : {write, read, send, gathered})
    ASSERT_TRUE(pair.a.dev->PostSend(qa, w).ok());
  std::vector<ibv_wc> wc;
  ASSERT_TRUE(pair.WaitCq(pair.a, pair.a.scq, 4, &wc, 20'000'000'000));
  for (const ibv_wc& c : wc) EXPECT_EQ(c.status, IBV_WC_SUCCESS) << c.wr_id;
  std::vector<ibv_wc> rwc;
  ASSERT_TRUE(pair.WaitCq(pair.b, pair.b.rcq, 2, &rwc, 20'000'000'000));
  EXPECT_EQ(0, std::memcmp(pair.b.at(1 << 20), pair.a.at(0), kLen));
  EXPECT_EQ(0, std::memcmp(pair.a.at(1 << 20), pair.b.at(2 << 20), kLen));
  EXPECT_EQ(0, std::memcmp(pair.b.at(4 << 20), pair.a.at(0), 20000));
  EXPECT_EQ(0, std::memcmp(pair.b.at(5 << 20), pair.a.at(0), 1000));
  EXPECT_EQ(0, std::memcmp(pair.b.at((5 << 20) + 1000), pair.a.at(5000), 2000));
  EXPECT_GE(pair.a.dev->counters().tx_zero_copy, kLen / 4096 + 4);
  EXPECT_GE(pair.b.dev->counters().tx_zero_copy, kLen / 4096);
  // The buffers are not page-aligned, so payloads of MTU 4096 span two pages: each
  // frame carries them as two segments, neither crossing a page.
  const LinkCounters& ab = pair.link().counters(TestLink::kAtoB);
  EXPECT_GT(ab.external_segments, pair.a.dev->counters().tx_zero_copy);
  EXPECT_EQ(ab.external_crossing_page, 0u);
  EXPECT_EQ(pair.link().counters(TestLink::kBtoA).external_crossing_page, 0u);
  // Once the link has delivered or dropped everything, only the MRs' references remain.
  pair.RunUntil([&] { return pair.link().in_flight() == 0; });
  pair.Step();
  EXPECT_EQ(share_a.refs(), 1);
  EXPECT_EQ(share_b.refs(), 1);
  EXPECT_EQ(share_a.freed + share_b.freed, 0);
}

// A frame no longer keeps an MR's memory once dropped: the last reference, given back by
// the port after the MR is gone, frees it (vdev's TxShare unmaps it then).
TEST(ZeroCopy, LastFrameFreesTheMemoryAfterDeregistration) {
  EnginePair pair(/*seed=*/5, 4 << 20, nullptr, /*tx_chains=*/true);
  MrShare share;
  ASSERT_TRUE(pair.a.dev->SetMrTxShare(pair.a.mr.lkey, &share.info).ok());
  uint32_t qa, qb;
  QpOptions opt;
  opt.mtu = IBV_MTU_4096;
  pair.Connect(opt, &qa, &qb);
  FaultConfig delay;
  delay.delay_ns = 1'000'000;  // frames stay on the link for 1 ms
  pair.link().SetFaults(TestLink::kAtoB, delay);
  SendWr write = MakeSend(1, IBV_WR_RDMA_WRITE, pair.a, 0, 64 * 1024);
  write.remote_addr = pair.b.va(0);
  write.rkey = pair.b.mr.rkey;
  ASSERT_TRUE(pair.a.dev->PostSend(qa, write).ok());
  for (int i = 0; i < 20 && share.refs() == 1; ++i) pair.Step();
  ASSERT_GT(share.refs(), 1) << "frames on the link hold the memory";
  // The MR goes away (its reference dropped) while frames still point into it.
  ASSERT_TRUE(pair.a.dev->DestroyQp(qa).ok());
  ASSERT_TRUE(pair.a.dev->DeregMr(pair.a.mr.lkey).ok());
  rte_mbuf_ext_refcnt_update(&share.info, -1);
  EXPECT_EQ(share.freed, 0);
  pair.RunUntil([&] { return share.freed == 1; }, 100'000'000);
  EXPECT_EQ(share.freed, 1);
}

INSTANTIATE_TEST_SUITE_P(CleanAndFaultyLink, ZeroCopyTest, ::testing::Bool(),
                         [](const auto& info) { return info.param ? "Faulty" : "Clean"; });

}  // namespace
}  // namespace vrdma::driver::testing
