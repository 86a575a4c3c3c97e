#include "vdev/rings/cq_ring.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/socket.h>
#include <unistd.h>

namespace vrdma::vdev {
namespace {

class CqRingTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_EQ(socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_NONBLOCK, 0, pipe_), 0);
    auto r = CqRing::Create(arena_, 4, 0xfeed, pipe_[1]);
    ASSERT_TRUE(r.ok());
    cq_ = std::move(*r);
    h_ = reinterpret_cast<proto::CqShmHeader*>(cq_->region().data());
  }
  void TearDown() override {
    cq_.reset();
    close(pipe_[0]);
  }
  ibv_wc Wc(uint64_t id, ibv_wc_status st = IBV_WC_SUCCESS) {
    ibv_wc wc{};
    wc.wr_id = id;
    wc.status = st;
    wc.byte_len = 100 + static_cast<uint32_t>(id);
    return wc;
  }
  int Events() {
    int n = 0;
    uint64_t rec;
    while (read(pipe_[0], &rec, sizeof rec) == sizeof rec) {
      EXPECT_EQ(rec, 0xfeedu);
      ++n;
    }
    return n;
  }
  void Arm(bool solicited) {
    h_->arm.arm_solicited.store(solicited);
    h_->arm.arm_sequence.fetch_add(1);
  }
  proto::Cqe At(uint32_t i) {
    return reinterpret_cast<proto::Cqe*>(cq_->region().data() + sizeof(proto::CqShmHeader))[i & 3];
  }
  int pipe_[2];
  RingArena arena_{"cq-ring-test"};
  std::unique_ptr<CqRing> cq_;
  proto::CqShmHeader* h_;
};

TEST_F(CqRingTest, FullRingIsAnOverrunUntilTheClientConsumes) {
  for (uint64_t i = 0; i < 4; ++i) EXPECT_TRUE(cq_->Deliver(0, Wc(i), false));
  EXPECT_FALSE(cq_->Deliver(0, Wc(4), false));
  EXPECT_EQ(cq_->overruns(), 1u);
  EXPECT_EQ(h_->ring.producer.value.load(), 4u);
  EXPECT_EQ(At(2).wr_id, 2u);
  EXPECT_EQ(At(2).byte_len, 102u);
  h_->ring.consumer.value.store(1);
  EXPECT_TRUE(cq_->Deliver(0, Wc(5), false));
  EXPECT_EQ(At(4).wr_id, 5u);
}

TEST_F(CqRingTest, NonsenseConsumerIndexOnlyFillsTheClientsOwnRing) {
  // The daemon reads the consumer index again when the ring looks full by the value it
  // read last; then one ahead of the producer reads as full.
  h_->ring.consumer.value.store(1000);
  for (uint64_t i = 0; i < 4; ++i) EXPECT_TRUE(cq_->Deliver(0, Wc(i), false));
  EXPECT_FALSE(cq_->Deliver(0, Wc(4), false));
  EXPECT_FALSE(cq_->Deliver(0, Wc(5), false));
  EXPECT_EQ(cq_->overruns(), 2u);
}

TEST_F(CqRingTest, HeldCompletionsAppearAtReleaseWithOneEvent) {
  // An engine pass: the CQEs are written at once, the producer index and the event wait
  // for Release, and a solicited-only arm fires if any of the batch is solicited.
  Arm(true);
  cq_->Hold();
  EXPECT_TRUE(cq_->Deliver(0, Wc(1), false));
  EXPECT_TRUE(cq_->Deliver(0, Wc(2), true));
  EXPECT_TRUE(cq_->Deliver(0, Wc(3), false));
  EXPECT_EQ(At(1).wr_id, 2u);
  EXPECT_EQ(h_->ring.producer.value.load(), 0u);
  EXPECT_EQ(Events(), 0);
  cq_->Release();
  EXPECT_EQ(h_->ring.producer.value.load(), 3u);
  EXPECT_EQ(Events(), 1);
  // A batch with nothing solicited leaves a solicited-only arm waiting; an empty one
  // publishes nothing.
  Arm(true);
  cq_->Hold();
  h_->ring.consumer.value.store(3);
  EXPECT_TRUE(cq_->Deliver(0, Wc(4), false));
  cq_->Release();
  EXPECT_EQ(h_->ring.producer.value.load(), 4u);
  EXPECT_EQ(Events(), 0);
  cq_->Hold();
  cq_->Release();
  EXPECT_EQ(Events(), 0);
  // Outside a pass, each CQE is published as it comes.
  EXPECT_TRUE(cq_->Deliver(0, Wc(5, IBV_WC_REM_ACCESS_ERR), false));
  EXPECT_EQ(h_->ring.producer.value.load(), 5u);
  EXPECT_EQ(Events(), 1);
}

TEST_F(CqRingTest, OneEventPerArm) {
  EXPECT_TRUE(cq_->Deliver(0, Wc(1), false));
  EXPECT_EQ(Events(), 0);  // not armed
  Arm(false);
  EXPECT_TRUE(cq_->Deliver(0, Wc(2), false));
  EXPECT_TRUE(cq_->Deliver(0, Wc(3), false));
  EXPECT_EQ(Events(), 1);
}

TEST_F(CqRingTest, SolicitedOnlyWaitsForSolicitedOrError) {
  Arm(true);
  EXPECT_TRUE(cq_->Deliver(0, Wc(1), false));
  EXPECT_EQ(Events(), 0);
  EXPECT_TRUE(cq_->Deliver(0, Wc(2), true));
  EXPECT_EQ(Events(), 1);
  Arm(true);
  EXPECT_TRUE(cq_->Deliver(0, Wc(3, IBV_WC_REM_ACCESS_ERR), false));
  EXPECT_EQ(Events(), 1);
}

TEST_F(CqRingTest, ResizeKeepsUnpolledCompletions) {
  for (uint64_t i = 0; i < 3; ++i) EXPECT_TRUE(cq_->Deliver(0, Wc(i), false));
  h_->ring.consumer.value.store(1);
  EXPECT_FALSE(cq_->Resize(arena_, 1).ok());  // two pending do not fit
  ASSERT_TRUE(cq_->Resize(arena_, 16).ok());
  h_ = reinterpret_cast<proto::CqShmHeader*>(cq_->region().data());
  EXPECT_EQ(cq_->depth(), 16u);
  EXPECT_EQ(h_->ring.producer.value.load(), 2u);
  auto* cqes = reinterpret_cast<proto::Cqe*>(cq_->region().data() + sizeof(proto::CqShmHeader));
  EXPECT_EQ(cqes[0].wr_id, 1u);
  EXPECT_EQ(cqes[1].wr_id, 2u);
  EXPECT_TRUE(cq_->Deliver(0, Wc(9), false));
  EXPECT_EQ(cqes[2].wr_id, 9u);
}

}  // namespace
}  // namespace vrdma::vdev
