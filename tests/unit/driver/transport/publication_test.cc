// What a consumer outside the engine sees, and when (engine.cc, PublishHeld): within a
// pass the engine holds the retired WQE counts and a CQ sink's completions, and at its
// end publishes the counts first, so that a consumer that sees a completion also sees
// the slot of its WQE free; outside a pass (a flush by a modify) both go at once.
#include <algorithm>
#include <atomic>
#include <utility>
#include <vector>

#include "tests/unit/driver/transport/engine_pair.h"

namespace vrdma::driver::testing {
namespace {

// A CQ sink that checks, whenever its completions become visible, that the queue they
// came from has published at least as many retired WQEs.
class CheckingSink : public CompletionSink {
 public:
  explicit CheckingSink(const std::atomic<uint32_t>* retired) : retired_(retired) {}
  bool Deliver(uint64_t, const ibv_wc& wc, bool, const RecvInfo*) override {
    wcs.push_back(wc);
    if (!holding_) {
      ++unheld;
      Check();
    }
    return true;
  }
  void Hold() override {
    EXPECT_FALSE(holding_);
    holding_ = true;
  }
  void Release() override {
    EXPECT_TRUE(holding_);
    holding_ = false;
    ++releases;
    Check();
  }
  std::vector<ibv_wc> wcs;
  int releases = 0;
  int unheld = 0;  // completions delivered outside a pass
  int violations = 0;

 private:
  void Check() {
    if (retired_->load() < wcs.size()) ++violations;
  }
  const std::atomic<uint32_t>* retired_;
  bool holding_ = false;
};

// Two engines and one connected pair of QPs (qa on a, qb on b), as every test here needs.
class PublicationTest : public ::testing::Test {
 protected:
  void Connect(const QpOptions& opt = {}) { pair.Connect(opt, &qa, &qb); }
  EnginePair pair;
  Host& a = pair.a;
  Host& b = pair.b;
  uint32_t qa = 0, qb = 0;
};

TEST_F(PublicationTest, RetiredCountsPrecedeTheCompletionsOfEachPass) {
  Connect();
  std::atomic<uint32_t> sq_a{0}, rq_a{0}, sq_b{0}, rq_b{0};
  ASSERT_TRUE(a.dev->PublishRetired(qa, &sq_a, &rq_a).ok());
  ASSERT_TRUE(b.dev->PublishRetired(qb, &sq_b, &rq_b).ok());
  CheckingSink sends(&sq_a), recvs(&rq_b);
  ASSERT_TRUE(a.dev->AttachCqSink(a.scq, &sends, 1).ok());
  ASSERT_TRUE(b.dev->AttachCqSink(b.rcq, &recvs, 2).ok());
  constexpr uint32_t kN = 64;
  for (uint32_t i = 0; i < kN; ++i) {
    ASSERT_TRUE(b.dev->PostRecv(qb, MakeRecv(i, b, i * 256, 256)).ok());
    ASSERT_TRUE(a.dev->PostSend(qa, MakeSend(i, IBV_WR_SEND, a, i * 64, 64)).ok());
  }
  ASSERT_TRUE(pair.RunUntil([&] { return sends.wcs.size() == kN && recvs.wcs.size() == kN; }));
  EXPECT_EQ(sq_a.load(), kN);
  EXPECT_EQ(rq_b.load(), kN);
  EXPECT_EQ(sends.violations, 0);
  EXPECT_EQ(recvs.violations, 0);
  EXPECT_EQ(sends.unheld, 0);
  // Batches: fewer passes made completions visible than there were completions.
  EXPECT_GT(sends.releases, 0);
  EXPECT_LT(sends.releases, static_cast<int>(kN));
  EXPECT_LT(recvs.releases, static_cast<int>(kN));
  for (uint32_t i = 0; i < kN; ++i) {
    EXPECT_EQ(sends.wcs[i].wr_id, i);
    EXPECT_EQ(recvs.wcs[i].wr_id, i);
  }
  // Outside a pass: receive WQEs flushed by a modify to Error complete at once, each
  // after its slot was published.
  for (uint32_t i = 0; i < 3; ++i) {
    ASSERT_TRUE(b.dev->PostRecv(qb, MakeRecv(100 + i, b, 0, 64)).ok());
  }
  const int releases = recvs.releases;
  ibv_qp_attr attr{};
  attr.qp_state = IBV_QPS_ERR;
  ASSERT_TRUE(b.dev->ModifyQp(qb, attr, IBV_QP_STATE).ok());
  ASSERT_EQ(recvs.wcs.size(), kN + 3);
  EXPECT_EQ(recvs.wcs.back().status, IBV_WC_WR_FLUSH_ERR);
  EXPECT_EQ(recvs.releases, releases);
  EXPECT_EQ(recvs.unheld, 3);
  EXPECT_EQ(rq_b.load(), kN + 3);
  EXPECT_EQ(recvs.violations, 0);
}

// A CheckingSink that also notes, at each completion it gets within a pass, whether the
// queue's retired count already counted it.
class HeldCountSink : public CheckingSink {
 public:
  explicit HeldCountSink(const std::atomic<uint32_t>* retired)
      : CheckingSink(retired), retired_(retired) {}
  bool Deliver(uint64_t cookie, const ibv_wc& wc, bool solicited, const RecvInfo* info) override {
    const bool ok = CheckingSink::Deliver(cookie, wc, solicited, info);
    if (retired_->load() < wcs.size()) ++counted_later;
    return ok;
  }
  int counted_later = 0;  // completions whose WQE's retirement was not yet published

 private:
  const std::atomic<uint32_t>* retired_;
};

TEST_F(PublicationTest, AnSrqsRetiredCountIsPublishedOncePerPassBeforeItsCompletions) {
  // SRQ pops were published one store per WQE (a line the client reads, per receive);
  // they are held to the end of the pass like a QP's own queues.
  QpOptions opt;
  opt.srq = true;
  Connect(opt);
  const uint32_t srq = pair.SrqOf(b);
  std::atomic<uint32_t> srq_retired{0};
  ASSERT_TRUE(b.dev->PublishSrqRetired(srq, &srq_retired).ok());
  HeldCountSink recvs(&srq_retired);
  ASSERT_TRUE(b.dev->AttachCqSink(b.rcq, &recvs, 2).ok());
  constexpr uint32_t kN = 64;
  for (uint32_t i = 0; i < kN; ++i) {
    ASSERT_TRUE(b.dev->PostSrqRecv(srq, MakeRecv(i, b, i * 256, 256)).ok());
  }
  for (uint32_t i = 0; i < kN; ++i) {
    ASSERT_TRUE(a.dev->PostSend(qa, MakeSend(i, IBV_WR_SEND, a, i * 64, 64)).ok());
  }
  ASSERT_TRUE(pair.RunUntil([&] { return recvs.wcs.size() == kN; }));
  EXPECT_EQ(srq_retired.load(), kN);
  EXPECT_EQ(recvs.violations, 0);  // never a completion before its slot was free
  EXPECT_EQ(recvs.unheld, 0);
  EXPECT_LT(recvs.releases, static_cast<int>(kN));
  // Held: every completion of the pass came before the pass published its WQE's slot.
  EXPECT_EQ(recvs.counted_later, static_cast<int>(kN));
  for (uint32_t i = 0; i < kN; ++i) EXPECT_EQ(recvs.wcs[i].wr_id, i);
}

// A sink that logs, for OrderOfEvents, when it got its completions and when it made them
// visible (its event, on a real CQ ring).
class LoggingSink : public CompletionSink {
 public:
  LoggingSink(int id, std::vector<std::pair<char, int>>* log) : id_(id), log_(log) {}
  bool Deliver(uint64_t, const ibv_wc&, bool, const RecvInfo*) override {
    log_->push_back({'D', id_});
    return true;
  }
  void Release() override { log_->push_back({'R', id_}); }

 private:
  int id_;
  std::vector<std::pair<char, int>>* log_;
};

TEST_F(PublicationTest, CqsOfAPassPublishInTheOrderOfTheirFirstCompletion) {
  // An application waiting on one completion channel for two CQs (perftest's
  // ib_send_lat -e: a send CQ and a receive CQ) takes the first event for the first
  // completion, as a NIC writes its event queue in CQE order. Before: the last CQ of a
  // pass to get a completion published first, and ib_send_lat -e between two hosts
  // polled its send CQ on the receive CQ's event until the send CQ overran.
  Connect();
  std::vector<std::pair<char, int>> log;
  LoggingSink sends(1, &log), recvs(2, &log);
  ASSERT_TRUE(a.dev->AttachCqSink(a.scq, &sends, 1).ok());
  ASSERT_TRUE(a.dev->AttachCqSink(a.rcq, &recvs, 2).ok());
  constexpr uint32_t kN = 64;
  for (uint32_t i = 0; i < kN; ++i) {
    ASSERT_TRUE(a.dev->PostRecv(qa, MakeRecv(i, a, 65536 + i * 256, 256)).ok());
    ASSERT_TRUE(b.dev->PostRecv(qb, MakeRecv(i, b, i * 256, 256)).ok());
  }
  uint32_t delivered = 0;
  for (uint32_t i = 0; i < kN; ++i) {  // both ways at once: ACKs and SENDs reach A together
    ASSERT_TRUE(a.dev->PostSend(qa, MakeSend(i, IBV_WR_SEND, a, i * 64, 64)).ok());
    ASSERT_TRUE(b.dev->PostSend(qb, MakeSend(i, IBV_WR_SEND, b, i * 64, 64)).ok());
  }
  ASSERT_TRUE(pair.RunUntil([&] {
    delivered = 0;
    for (const auto& [what, id] : log) delivered += what == 'D';
    return delivered == 2 * kN;
  }));
  // Each pass: the CQs in the order of their first completion, then as many releases in
  // that order.
  std::vector<int> order;
  int passes_with_both = 0, releases = 0;
  for (const auto& [what, id] : log) {
    if (what == 'D') {
      if (std::find(order.begin(), order.end(), id) == order.end()) order.push_back(id);
      continue;
    }
    ASSERT_FALSE(order.empty());
    EXPECT_EQ(id, order.front()) << "release " << releases;
    ++releases;
    order.erase(order.begin());
    if (order.size() == 1) ++passes_with_both;
  }
  EXPECT_TRUE(order.empty());
  EXPECT_GT(passes_with_both, 0) << "no pass completed on both CQs: the test proves nothing";
}

}  // namespace
}  // namespace vrdma::driver::testing
