// UD multicast: a datagram to a multicast GID (destination QPN 0xFFFFFF) reaches every QP
// attached to the group and no other; joining needs a UD QP and a multicast GID.
#include <cstring>

#include "tests/unit/driver/transport/engine_pair.h"

namespace vrdma::driver::testing {
namespace {

// 239.1.2.3 as RoCEv2 carries it, and its Ethernet group address.
const wire::Gid kGroup = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 239, 1, 2, 3};

// The address vector of a datagram to kGroup.
AddressVector GroupAddress() {
  AddressVector av;
  av.dgid = kGroup;
  av.sgid_index = 0;
  av.hop_limit = 8;
  av.dmac = wire::MulticastMac(kGroup);
  return av;
}

// A sender qa on host A and two UD QPs qb and qb2 on host B, with A's AH to kGroup;
// the members join in each test.
class MulticastTest : public ::testing::Test {
 protected:
  void SetUp() override {
    QpOptions opt;
    opt.type = IBV_QPT_UD;
    uint32_t ah_ab, ah_ba, unused, ah2, ah3;
    pair.CreateUd(opt, &qa, &qb, &ah_ab, &ah_ba);
    pair.CreateUd(opt, &unused, &qb2, &ah2, &ah3);
    ah = *a.dev->CreateAh(a.pd, GroupAddress());
  }
  EnginePair pair;
  Host& a = pair.a;
  Host& b = pair.b;
  uint32_t qa = 0, qb = 0, qb2 = 0, ah = 0;
};

TEST_F(MulticastTest, DatagramsReachEveryAttachedQp) {
  EXPECT_TRUE(wire::IsMulticastGid(kGroup));
  EXPECT_EQ(wire::MulticastMac(kGroup), (wire::MacAddr{0x01, 0x00, 0x5e, 0x01, 0x02, 0x03}));
  EXPECT_FALSE(b.dev->AttachMcast(qb, b.dev->GetGid(0)->gid).ok()) << "a unicast GID";
  ASSERT_TRUE(b.dev->AttachMcast(qb, kGroup).ok());
  ASSERT_TRUE(b.dev->AttachMcast(qb, kGroup).ok()) << "joining twice is joined";
  ASSERT_TRUE(b.dev->AttachMcast(qb2, kGroup).ok());
  ASSERT_TRUE(b.dev->PostRecv(qb, MakeRecv(1, b, 0, 4096)).ok());
  ASSERT_TRUE(b.dev->PostRecv(qb2, MakeRecv(2, b, 8192, 4096)).ok());
  FillPattern(a.at(0), 700, 9);
  SendWr w = MakeSend(1, IBV_WR_SEND, a, 0, 700);
  w.ah = ah;
  w.remote_qpn = kMulticastQpn;
  w.remote_qkey = 0x11111111;
  ASSERT_TRUE(a.dev->PostSend(qa, w).ok());
  std::vector<ibv_wc> rwc;
  ASSERT_TRUE(pair.WaitCq(b, b.rcq, 2, &rwc));
  for (const ibv_wc& wc : rwc) {
    EXPECT_EQ(wc.status, IBV_WC_SUCCESS);
    EXPECT_EQ(wc.byte_len, 40u + 700u);
    EXPECT_EQ(wc.src_qp, qa);
    const uint64_t off = wc.qp_num == qb ? 0 : 8192;
    EXPECT_EQ(0, std::memcmp(b.at(off + 40), a.at(0), 700));
  }
  // qb2 leaves; a group without members is gone.
  ASSERT_TRUE(b.dev->DetachMcast(qb2, kGroup).ok());
  EXPECT_FALSE(b.dev->DetachMcast(qb2, kGroup).ok());
  ASSERT_TRUE(b.dev->PostRecv(qb2, MakeRecv(3, b, 8192, 4096)).ok());
  ASSERT_TRUE(b.dev->PostRecv(qb, MakeRecv(4, b, 0, 4096)).ok());
  ASSERT_TRUE(a.dev->PostSend(qa, w).ok());
  rwc.clear();
  ASSERT_TRUE(pair.WaitCq(b, b.rcq, 1, &rwc));
  EXPECT_EQ(rwc[0].qp_num, qb);
  pair.RunUntil([] { return false; }, 1'000'000);
  ibv_wc extra;
  EXPECT_EQ(*b.dev->PollCq(b.rcq, &extra, 1), 0) << "the QP that left hears nothing";
  // Destroying a member takes it out of its groups.
  ASSERT_TRUE(b.dev->DestroyQp(qb).ok());
  EXPECT_FALSE(b.dev->DetachMcast(qb, kGroup).ok());
}

TEST_F(MulticastTest, ADatagramWaitsOnePassForEveryMembersReceiveWqe) {
  // One member has its receive WQE, the other gets one a pass after the datagram came
  // (UdTest.ADatagramWaitsOnePassForItsReceiveWqe): both receive it, each once.
  ASSERT_TRUE(b.dev->AttachMcast(qb, kGroup).ok());
  ASSERT_TRUE(b.dev->AttachMcast(qb2, kGroup).ok());
  ASSERT_TRUE(b.dev->PostRecv(qb, MakeRecv(1, b, 0, 4096)).ok());
  ASSERT_TRUE(b.dev->PostRecv(qb, MakeRecv(3, b, 16384, 4096)).ok());
  FillPattern(a.at(0), 700, 10);
  const uint64_t before = b.dev->counters().rx_packets;
  ASSERT_TRUE(a.dev->PostSend(qa, MakeDatagram(1, a, 0, 700, ah, kMulticastQpn)).ok());
  ASSERT_TRUE(pair.RunUntil([&] { return b.dev->counters().rx_packets > before; }));
  ASSERT_TRUE(b.dev->PostRecv(qb2, MakeRecv(2, b, 8192, 4096)).ok());
  std::vector<ibv_wc> rwc;
  ASSERT_TRUE(pair.WaitCq(b, b.rcq, 2, &rwc));
  pair.RunUntil([] { return false; }, 1'000'000);
  ibv_wc extra;
  EXPECT_EQ(*b.dev->PollCq(b.rcq, &extra, 1), 0) << "no member gets it twice";
  for (const ibv_wc& wc : rwc) {
    EXPECT_EQ(wc.status, IBV_WC_SUCCESS);
    EXPECT_EQ(wc.byte_len, 40u + 700u);
    EXPECT_EQ(wc.wr_id, wc.qp_num == qb ? 1u : 2u);
  }
  EXPECT_NE(rwc[0].qp_num, rwc[1].qp_num);
  EXPECT_EQ(0, std::memcmp(b.at(8192 + 40), a.at(0), 700));
  EXPECT_EQ(b.dev->counters().rx_no_recv_wqe, 0u);
}

TEST_F(MulticastTest, AMemberWhoseSendQueueFailedStillReceives) {
  // SQE stops a UD QP's send queue only (IBTA 10.3.1): the group's datagrams still
  // reach it.
  ASSERT_TRUE(b.dev->AttachMcast(qb, kGroup).ok());
  ASSERT_TRUE(b.dev->AttachMcast(qb2, kGroup).ok());
  SendWr bad = MakeDatagram(9, b, 0, 100, *b.dev->CreateAh(b.pd, GroupAddress()), kMulticastQpn);
  bad.sg_list[0].lkey ^= 0x100;
  ASSERT_TRUE(b.dev->PostSend(qb2, bad).ok());
  std::vector<ibv_wc> swc;
  ASSERT_TRUE(pair.WaitCq(b, b.scq, 1, &swc));
  EXPECT_EQ(swc[0].status, IBV_WC_LOC_PROT_ERR);
  ibv_qp_attr attr;
  ASSERT_TRUE(b.dev->QueryQp(qb2, &attr, nullptr).ok());
  ASSERT_EQ(attr.qp_state, IBV_QPS_SQE);
  ASSERT_TRUE(b.dev->PostRecv(qb, MakeRecv(1, b, 0, 4096)).ok());
  ASSERT_TRUE(b.dev->PostRecv(qb2, MakeRecv(2, b, 8192, 4096)).ok());
  FillPattern(a.at(0), 300, 11);
  ASSERT_TRUE(a.dev->PostSend(qa, MakeDatagram(1, a, 0, 300, ah, kMulticastQpn)).ok());
  std::vector<ibv_wc> rwc;
  ASSERT_TRUE(pair.WaitCq(b, b.rcq, 2, &rwc));
  for (const ibv_wc& wc : rwc) EXPECT_EQ(wc.status, IBV_WC_SUCCESS);
  EXPECT_EQ(0, std::memcmp(b.at(8192 + 40), a.at(0), 300));
}

TEST_F(MulticastTest, OnlyUdQpsJoin) {
  uint32_t rc_a, rc_b;
  pair.Connect(QpOptions{}, &rc_a, &rc_b);
  EXPECT_FALSE(b.dev->AttachMcast(rc_b, kGroup).ok());
}

}  // namespace
}  // namespace vrdma::driver::testing
