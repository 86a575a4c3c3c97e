// DoorbellDrain's budget (issue 12, item 7): one drain takes at most its budget of WQEs,
// leaves the rest pending for the next drain, and the rings of a context take turns (the
// next drain starts after the ring the budget ran out in, SRQs in the turn with QPs).
#include <cstring>
#include <memory>
#include <vector>

#include "gtest/gtest.h"
#include "vdev/pdev.h"
#include "vdev/rings/doorbell_drain.h"

namespace vrdma::vdev {
namespace {

constexpr uint32_t kDepth = 64;

// A receive ring in memory of the test's own, as a client's would be in shared memory.
struct Ring {
  proto::RingShmHeader header{};
  std::vector<uint8_t> slots = std::vector<uint8_t>(size_t{kDepth} * proto::RecvWqeStride(1));
  RingView View() { return RingView{&header, slots.data(), kDepth, proto::RecvWqeStride(1), 0}; }
  void Produce(uint32_t n) {
    for (uint32_t i = 0; i < n; ++i) {
      uint32_t p = header.producer.value.load();
      proto::RecvWqe w{p, 0, 0};
      std::memcpy(slots.data() + size_t{p & (kDepth - 1)} * proto::RecvWqeStride(1), &w, sizeof w);
      header.producer.value.store(p + 1);
    }
  }
  uint32_t Consumed() const { return header.consumer.value.load(); }
};

class DrainBudgetTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto pdev = Pdev::CreateEmbedded("drain-budget");
    ASSERT_TRUE(pdev.ok()) << pdev.status();
    pdev_ = std::move(*pdev);
    dev_ = pdev_->device.get();
    pd_ = *dev_->AllocPd();
    cq_ = *dev_->CreateCq(1024);
    drain_ = std::make_unique<DoorbellDrain>(dev_, &counters_, &ahs_,
                                             [this](uint64_t, uint32_t) { broken_++; });
  }

  // A QP in INIT (receives can be posted) with an empty send ring and rq as its receive ring.
  void AddQp(Ring* rq, Ring* sq) {
    driver::QpInitAttr init;
    init.pd = pd_;
    init.send_cq = init.recv_cq = cq_;
    init.max_send_wr = kDepth;
    init.max_recv_wr = kDepth;
    auto qpn = dev_->CreateQp(init);
    ASSERT_TRUE(qpn.ok()) << qpn.status();
    ibv_qp_attr attr{};
    attr.qp_state = IBV_QPS_INIT;
    attr.port_num = 1;
    ASSERT_TRUE(dev_->ModifyQp(*qpn, attr,
                               IBV_QP_STATE | IBV_QP_PKEY_INDEX | IBV_QP_PORT | IBV_QP_ACCESS_FLAGS)
                    .ok());
    QpRings r;
    r.qpn = *qpn;
    r.sq = RingView{&sq->header, sq->slots.data(), kDepth, proto::RecvWqeStride(1), 0};
    r.rq = rq->View();
    r.max_recv_sge = 1;
    drain_->AddQp(r);
  }

  void AddSrq(Ring* ring) {
    auto h = dev_->CreateSrq(pd_, kDepth, 1, 0);
    ASSERT_TRUE(h.ok()) << h.status();
    SrqRing s;
    s.handle = *h;
    s.ring = ring->View();
    s.max_sge = 1;
    drain_->AddSrq(s);
  }

  std::unique_ptr<Pdev> pdev_;
  driver::RoceDevice* dev_ = nullptr;
  uint32_t pd_ = 0, cq_ = 0;
  DrainCounters counters_;
  std::unordered_map<uint32_t, uint32_t> ahs_;
  int broken_ = 0;
  std::unique_ptr<DoorbellDrain> drain_;
};

TEST_F(DrainBudgetTest, UnboundedDrainTakesEverything) {
  Ring rq[2], sq[2];
  for (int i = 0; i < 2; ++i) {
    AddQp(&rq[i], &sq[i]);
    rq[i].Produce(20);
  }
  EXPECT_EQ(drain_->Drain(), 40u);
  EXPECT_FALSE(drain_->pending());
  EXPECT_EQ(rq[0].Consumed(), 20u);
  EXPECT_EQ(rq[1].Consumed(), 20u);
}

TEST_F(DrainBudgetTest, BudgetBoundsADrainAndTheRestStaysPending) {
  Ring rq, sq;
  AddQp(&rq, &sq);
  rq.Produce(10);
  EXPECT_EQ(drain_->Drain(4), 4u);
  EXPECT_TRUE(drain_->pending());
  EXPECT_EQ(rq.Consumed(), 4u);
  EXPECT_EQ(drain_->Drain(4), 4u);
  EXPECT_TRUE(drain_->pending());
  EXPECT_EQ(drain_->Drain(4), 2u);
  EXPECT_FALSE(drain_->pending());
  EXPECT_EQ(rq.Consumed(), 10u);
  EXPECT_EQ(counters_.recv_wqes, 10u);
  EXPECT_EQ(counters_.rejected_wqes, 0u);
}

// Three QPs and an SRQ, each with more than the budget: every drain serves the next ring,
// so after four drains each ring has had one turn of the budget, whichever comes first.
TEST_F(DrainBudgetTest, RingsTakeTurns) {
  Ring rq[3], sq[3], srq;
  for (int i = 0; i < 3; ++i) {
    AddQp(&rq[i], &sq[i]);
    rq[i].Produce(30);
  }
  AddSrq(&srq);
  srq.Produce(30);
  for (int round = 1; round <= 3; ++round) {
    for (int d = 0; d < 4; ++d) {
      EXPECT_EQ(drain_->Drain(5), 5u);
      EXPECT_TRUE(drain_->pending());
    }
    for (int i = 0; i < 3; ++i) EXPECT_EQ(rq[i].Consumed(), 5u * round) << "QP " << i;
    EXPECT_EQ(srq.Consumed(), 5u * round);
  }
  // A budget across rings: each of the four gets its share in turn.
  EXPECT_EQ(drain_->Drain(60), 60u);
  for (int i = 0; i < 3; ++i) EXPECT_EQ(rq[i].Consumed(), 30u);
  EXPECT_EQ(srq.Consumed(), 30u);
  // The budget ran out exactly: the drain cannot know nothing is left before it looks.
  EXPECT_EQ(drain_->Drain(60), 0u);
  EXPECT_FALSE(drain_->pending());
  EXPECT_EQ(broken_, 0);
}

// A ring removed while it was the next to go: the drain starts at the first one.
TEST_F(DrainBudgetTest, ResumeAtARemovedRing) {
  Ring rq[2], sq[2];
  for (int i = 0; i < 2; ++i) {
    AddQp(&rq[i], &sq[i]);
    rq[i].Produce(10);
  }
  EXPECT_EQ(drain_->Drain(10), 10u);  // one QP's all: the other is next
  uint32_t next = rq[0].Consumed() == 10 ? 1 : 0;
  ASSERT_EQ(rq[1 - next].Consumed(), 10u);
  drain_->Clear();
  EXPECT_EQ(drain_->Drain(10), 0u);
  EXPECT_FALSE(drain_->pending());
}

}  // namespace
}  // namespace vrdma::vdev
