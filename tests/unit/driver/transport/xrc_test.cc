// XRC (IBTA annex A14) between two engines: an XRC send QP on host A names, per work
// request, the XRC SRQ on host B whose WQE, CQ and PD a message takes through B's one XRC
// receive QP. Data and completions are checked, and so are the domain rule, the PD of the
// SRQ for RDMA access, RNR on an empty SRQ, and what the objects refuse.
#include <cstring>

#include "tests/unit/driver/transport/engine_pair.h"

namespace vrdma::driver::testing {
namespace {

class XrcTest : public ::testing::Test {
 protected:
  void SetUp() override {
    Host& b = pair_.b;
    xrcd_ = *b.dev->AllocXrcd();
    cq1_ = *b.dev->CreateCq(256);
    cq2_ = *b.dev->CreateCq(256);
    srq1_ = *b.dev->CreateXrcSrq(xrcd_, b.pd, cq1_, 64, kMaxSgePerWqe, 0);
    srq2_ = *b.dev->CreateXrcSrq(xrcd_, b.pd, cq2_, 64, kMaxSgePerWqe, 0);
    QpOptions opt;
    opt.mtu = IBV_MTU_1024;
    absl::Status st = pair_.ConnectXrc(opt, xrcd_, &send_, &recv_);
    ASSERT_TRUE(st.ok()) << st;
  }
  ibv_wc OneCqe(Host& h, uint32_t cq) {
    std::vector<ibv_wc> wc;
    EXPECT_TRUE(pair_.WaitCq(h, cq, 1, &wc));
    return wc.empty() ? ibv_wc{} : wc[0];
  }
  // A SEND of `len` bytes from A's memory at `off` to the XRC SRQ `srqn` on B.
  ibv_wc_status Send(uint32_t srqn, uint64_t off, uint32_t len, uint64_t wr_id = 1) {
    FillPattern(pair_.a.at(off), len, static_cast<uint32_t>(srqn * 131 + len));
    SendWr wr = MakeSend(wr_id, IBV_WR_SEND, pair_.a, off, len);
    wr.remote_srqn = srqn;
    EXPECT_TRUE(pair_.a.dev->PostSend(send_, wr).ok());
    return OneCqe(pair_.a, pair_.a.scq).status;
  }

  EnginePair pair_;
  uint32_t xrcd_ = 0, cq1_ = 0, cq2_ = 0, srq1_ = 0, srq2_ = 0;
  uint32_t send_ = 0, recv_ = 0;
};

TEST_F(XrcTest, EachSendLandsInTheSrqItNamesAndCompletesOnThatSrqsCq) {
  Host& b = pair_.b;
  ASSERT_TRUE(b.dev->PostSrqRecv(srq1_, MakeRecv(0x11, b, 1 << 20, 8192)).ok());
  ASSERT_TRUE(b.dev->PostSrqRecv(srq2_, MakeRecv(0x22, b, 2 << 20, 8192)).ok());
  // Several MTUs each: every packet of the message carries the XRCETH.
  ASSERT_EQ(Send(srq2_, 0, 5000), IBV_WC_SUCCESS);
  ASSERT_EQ(Send(srq1_, 65536, 3000), IBV_WC_SUCCESS);

  ibv_wc c2 = OneCqe(b, cq2_);
  EXPECT_EQ(c2.status, IBV_WC_SUCCESS);
  EXPECT_EQ(c2.wr_id, 0x22u);
  EXPECT_EQ(c2.opcode, IBV_WC_RECV);
  EXPECT_EQ(c2.byte_len, 5000u);
  EXPECT_EQ(c2.qp_num, recv_);  // the XRC receive QP the message came through
  EXPECT_EQ(0, std::memcmp(b.at(2 << 20), pair_.a.at(0), 5000));
  ibv_wc c1 = OneCqe(b, cq1_);
  EXPECT_EQ(c1.wr_id, 0x11u);
  EXPECT_EQ(c1.byte_len, 3000u);
  EXPECT_EQ(0, std::memcmp(b.at(1 << 20), pair_.a.at(65536), 3000));
  // Nothing on the other SRQ's CQ, nor on B's own CQs.
  ibv_wc none[4];
  EXPECT_EQ(*b.dev->PollCq(cq1_, none, 4), 0);
  EXPECT_EQ(*b.dev->PollCq(cq2_, none, 4), 0);
  EXPECT_EQ(*b.dev->PollCq(b.rcq, none, 4), 0);
}

TEST_F(XrcTest, RdmaAndAtomicsAreCheckedAgainstTheNamedSrqsPd) {
  Host& a = pair_.a;
  Host& b = pair_.b;
  // WRITE, then READ it back, then FETCH_AND_ADD, through srq1 (B's PD, which holds B's MR).
  FillPattern(a.at(0), 6000, 9);
  SendWr wr = MakeSend(1, IBV_WR_RDMA_WRITE, a, 0, 6000);
  wr.remote_addr = b.va(3 << 20);
  wr.rkey = b.mr.rkey;
  wr.remote_srqn = srq1_;
  ASSERT_TRUE(a.dev->PostSend(send_, wr).ok());
  ASSERT_EQ(OneCqe(a, a.scq).status, IBV_WC_SUCCESS);
  EXPECT_EQ(0, std::memcmp(b.at(3 << 20), a.at(0), 6000));

  SendWr rd = MakeSend(2, IBV_WR_RDMA_READ, a, 1 << 20, 6000);
  rd.remote_addr = b.va(3 << 20);
  rd.rkey = b.mr.rkey;
  rd.remote_srqn = srq1_;
  ASSERT_TRUE(a.dev->PostSend(send_, rd).ok());
  ibv_wc r = OneCqe(a, a.scq);
  ASSERT_EQ(r.status, IBV_WC_SUCCESS);
  EXPECT_EQ(r.opcode, IBV_WC_RDMA_READ);
  EXPECT_EQ(0, std::memcmp(a.at(1 << 20), a.at(0), 6000));

  uint64_t v = 40;
  constexpr uint64_t kWord = (3 << 20) + 65536;
  std::memcpy(b.at(kWord), &v, 8);
  SendWr fa = MakeSend(3, IBV_WR_ATOMIC_FETCH_AND_ADD, a, 2 << 20, 8);
  fa.remote_addr = b.va(kWord);
  fa.rkey = b.mr.rkey;
  fa.compare_add = 2;
  fa.remote_srqn = srq1_;
  ASSERT_TRUE(a.dev->PostSend(send_, fa).ok());
  ASSERT_EQ(OneCqe(a, a.scq).status, IBV_WC_SUCCESS);
  uint64_t orig, now;
  std::memcpy(&orig, a.at(2 << 20), 8);
  std::memcpy(&now, b.at(kWord), 8);
  EXPECT_EQ(orig, 40u);
  EXPECT_EQ(now, 42u);

  // An SRQ of the same domain in another PD: B's MR is not its PD's, so the same WRITE
  // through it is a Remote Access Error and B's memory stays as it was.
  uint32_t other_pd = *b.dev->AllocPd();
  uint32_t cq3 = *b.dev->CreateCq(16);
  uint32_t srq3 = *b.dev->CreateXrcSrq(xrcd_, other_pd, cq3, 16, 1, 0);
  constexpr uint64_t kUntouched = (3 << 20) + 131072;
  std::memset(b.at(kUntouched), 0x33, 64);
  SendWr w3 = MakeSend(4, IBV_WR_RDMA_WRITE, a, 0, 64);
  w3.remote_addr = b.va(kUntouched);
  w3.rkey = b.mr.rkey;
  w3.remote_srqn = srq3;
  ASSERT_TRUE(a.dev->PostSend(send_, w3).ok());
  EXPECT_EQ(OneCqe(a, a.scq).status, IBV_WC_REM_ACCESS_ERR);
  EXPECT_EQ(b.at(kUntouched)[0], 0x33);
}

TEST_F(XrcTest, AnSrqOfAnotherDomainIsAnInvalidRequest) {
  Host& b = pair_.b;
  uint32_t other = *b.dev->AllocXrcd();
  uint32_t cq = *b.dev->CreateCq(16);
  uint32_t foreign = *b.dev->CreateXrcSrq(other, b.pd, cq, 16, 1, 0);
  ASSERT_TRUE(b.dev->PostSrqRecv(foreign, MakeRecv(0x33, b, 1 << 20, 4096)).ok());
  const uint64_t before = b.dev->counters().rx_bad_xrc_srq;
  EXPECT_EQ(Send(foreign, 0, 100), IBV_WC_REM_INV_REQ_ERR);
  EXPECT_GT(b.dev->counters().rx_bad_xrc_srq, before);
  ibv_wc none[2];
  EXPECT_EQ(*b.dev->PollCq(cq, none, 2), 0) << "the other domain's SRQ gave up a WQE";
}

TEST_F(XrcTest, NoSrqNumberAtAllIsAnInvalidRequest) {
  EXPECT_EQ(Send(0xabcdef, 0, 100), IBV_WC_REM_INV_REQ_ERR);
}

TEST_F(XrcTest, AnEmptySrqIsReceiverNotReadyUntilAWqeComes) {
  Host& b = pair_.b;
  FillPattern(pair_.a.at(0), 2000, 5);
  SendWr wr = MakeSend(9, IBV_WR_SEND, pair_.a, 0, 2000);
  wr.remote_srqn = srq1_;
  ASSERT_TRUE(pair_.a.dev->PostSend(send_, wr).ok());
  // Let the RNR NAK come back at least once, then give the SRQ a WQE.
  pair_.RunUntil([&] { return b.dev->counters().rnr_naks_sent > 0; });
  EXPECT_GT(b.dev->counters().rnr_naks_sent, 0u);
  ASSERT_TRUE(b.dev->PostSrqRecv(srq1_, MakeRecv(0x44, b, 1 << 20, 4096)).ok());
  EXPECT_EQ(OneCqe(pair_.a, pair_.a.scq).status, IBV_WC_SUCCESS);
  ibv_wc c = OneCqe(b, cq1_);
  EXPECT_EQ(c.wr_id, 0x44u);
  EXPECT_EQ(0, std::memcmp(b.at(1 << 20), pair_.a.at(0), 2000));
}

TEST_F(XrcTest, ObjectsRefuseWhatTheyDoNotHave) {
  Host& a = pair_.a;
  Host& b = pair_.b;
  // The receive QP has no send queue, neither QP a receive queue.
  SendWr s = MakeSend(1, IBV_WR_SEND, b, 0, 8);
  EXPECT_FALSE(b.dev->PostSend(recv_, s).ok());
  EXPECT_FALSE(b.dev->PostRecv(recv_, MakeRecv(1, b, 0, 8)).ok());
  EXPECT_FALSE(a.dev->PostRecv(send_, MakeRecv(1, a, 0, 8)).ok());
  // IBTA 1.5's ATOMIC WRITE has no XRC opcode.
  SendWr aw = MakeSend(2, IBV_WR_ATOMIC_WRITE, a, 0, 8);
  EXPECT_FALSE(a.dev->PostSend(send_, aw).ok());
  // An XRC SRQ serves XRC receive QPs only.
  QpInitAttr rc{};
  rc.type = IBV_QPT_RC;
  rc.pd = b.pd;
  rc.send_cq = b.scq;
  rc.recv_cq = b.rcq;
  rc.has_srq = true;
  rc.srq = srq1_;
  rc.max_send_wr = 4;
  EXPECT_FALSE(b.dev->CreateQp(rc).ok());
  // An XRC receive QP needs a domain and has no queues.
  QpInitAttr recv{};
  recv.type = IBV_QPT_XRC_RECV;
  recv.xrcd = 999;
  EXPECT_FALSE(b.dev->CreateQp(recv).ok());
  recv.xrcd = xrcd_;
  recv.max_send_wr = 1;
  EXPECT_FALSE(b.dev->CreateQp(recv).ok());
  // The domain is busy while SRQs and QPs are in it; so is an SRQ's CQ.
  EXPECT_FALSE(b.dev->DeallocXrcd(xrcd_).ok());
  EXPECT_FALSE(b.dev->DestroyCq(cq1_).ok());
  ASSERT_TRUE(b.dev->DestroyQp(recv_).ok());
  ASSERT_TRUE(b.dev->DestroySrq(srq1_).ok());
  ASSERT_TRUE(b.dev->DestroySrq(srq2_).ok());
  EXPECT_TRUE(b.dev->DestroyCq(cq1_).ok());
  EXPECT_TRUE(b.dev->DeallocXrcd(xrcd_).ok());
}

}  // namespace
}  // namespace vrdma::driver::testing
