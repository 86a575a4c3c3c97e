// UC and UD end to end: UC SEND/WRITE without ACKs, UD SEND with DETH, Q_Key checks,
// per-WR address handles and the 40-byte GRH at the start of the receive buffer.
#include <arpa/inet.h>

#include <cstring>

#include "tests/unit/driver/transport/engine_pair.h"

namespace vrdma::driver::testing {
namespace {

TEST(UcTest, SendAndWriteWithoutAcks) {
  EnginePair pair;
  QpOptions opt;
  opt.type = IBV_QPT_UC;
  opt.mtu = IBV_MTU_1024;
  uint32_t qa, qb;
  pair.Connect(opt, &qa, &qb);
  Host& a = pair.a;
  Host& b = pair.b;
  FillPattern(a.at(0), 5000, 1);
  ASSERT_TRUE(b.dev->PostRecv(qb, MakeRecv(1, b, 1 << 20, 8192)).ok());
  ASSERT_TRUE(a.dev->PostSend(qa, MakeSend(1, IBV_WR_SEND, a, 0, 5000)).ok());
  SendWr w = MakeSend(2, IBV_WR_RDMA_WRITE_WITH_IMM, a, 0, 5000);
  w.remote_addr = b.va(2 << 20);
  w.rkey = b.mr.rkey;
  w.imm_be = htobe32(7);
  ASSERT_TRUE(b.dev->PostRecv(qb, MakeRecv(2, b, 0, 0)).ok());
  ASSERT_TRUE(a.dev->PostSend(qa, w).ok());
  std::vector<ibv_wc> rwc, swc;
  ASSERT_TRUE(pair.WaitCq(b, b.rcq, 2, &rwc));
  ASSERT_TRUE(pair.WaitCq(a, a.scq, 2, &swc));
  EXPECT_EQ(rwc[0].status, IBV_WC_SUCCESS);
  EXPECT_EQ(rwc[0].byte_len, 5000u);
  EXPECT_EQ(rwc[1].opcode, IBV_WC_RECV_RDMA_WITH_IMM);
  EXPECT_EQ(0, std::memcmp(a.at(0), b.at(1 << 20), 5000));
  EXPECT_EQ(0, std::memcmp(a.at(0), b.at(2 << 20), 5000));
  EXPECT_EQ(a.dev->counters().rx_packets, 0u) << "UC responder must not acknowledge";
}

TEST(UcTest, LostPacketDropsWholeMessageOnly) {
  EnginePair pair;
  QpOptions opt;
  opt.type = IBV_QPT_UC;
  uint32_t qa, qb;
  pair.Connect(opt, &qa, &qb);
  Host& a = pair.a;
  Host& b = pair.b;
  ASSERT_TRUE(b.dev->PostRecv(qb, MakeRecv(1, b, 1 << 20, 8192)).ok());
  // Lose every frame of the first message (3 packets), then deliver the second.
  FaultConfig drop_all;
  drop_all.drop = 1.0;
  pair.link().SetFaults(TestLink::kAtoB, drop_all);
  ASSERT_TRUE(a.dev->PostSend(qa, MakeSend(1, IBV_WR_SEND, a, 0, 3000)).ok());
  std::vector<ibv_wc> swc;
  ASSERT_TRUE(pair.WaitCq(a, a.scq, 1, &swc));
  pair.link().SetFaults(TestLink::kAtoB, FaultConfig{});
  FillPattern(a.at(0), 2000, 5);
  ASSERT_TRUE(a.dev->PostSend(qa, MakeSend(2, IBV_WR_SEND, a, 0, 2000)).ok());
  std::vector<ibv_wc> rwc;
  ASSERT_TRUE(pair.WaitCq(b, b.rcq, 1, &rwc));
  EXPECT_EQ(rwc[0].byte_len, 2000u);
  EXPECT_EQ(0, std::memcmp(a.at(0), b.at(1 << 20), 2000));
}

class UdTest : public ::testing::TestWithParam<uint32_t> {};

TEST_P(UdTest, SendCarriesGrhAndSourceQp) {
  EnginePair pair;
  QpOptions opt;
  opt.type = IBV_QPT_UD;
  opt.gid_index = GetParam();
  uint32_t qa, qb, ah_ab, ah_ba;
  pair.CreateUd(opt, &qa, &qb, &ah_ab, &ah_ba);
  Host& a = pair.a;
  Host& b = pair.b;
  FillPattern(a.at(0), 4096, 3);
  std::memset(b.at(0), 0xcc, 8192);
  ASSERT_TRUE(b.dev->PostRecv(qb, MakeRecv(1, b, 0, 4096 + 40)).ok());
  SendWr wr = MakeSend(1, IBV_WR_SEND_WITH_IMM, a, 0, 4096);
  wr.ah = ah_ab;
  wr.remote_qpn = qb;
  wr.remote_qkey = 0x11111111;
  wr.imm_be = htobe32(99);
  ASSERT_TRUE(a.dev->PostSend(qa, wr).ok());
  std::vector<ibv_wc> rwc;
  ASSERT_TRUE(pair.WaitCq(b, b.rcq, 1, &rwc));
  EXPECT_EQ(rwc[0].status, IBV_WC_SUCCESS);
  EXPECT_EQ(rwc[0].byte_len, 4096u + 40);
  EXPECT_EQ(rwc[0].src_qp, qa);
  EXPECT_TRUE(rwc[0].wc_flags & IBV_WC_GRH);
  EXPECT_EQ(be32toh(rwc[0].imm_data), 99u);
  EXPECT_EQ(0, std::memcmp(a.at(0), b.at(40), 4096));
  const GidEntry* sgid = a.dev->GetGid(GetParam());
  if (GetParam() == 0) {
    // RoCEv2/IPv4: 20 unused bytes, then the IPv4 header with A's address as source.
    const uint8_t* ip = b.at(20);
    EXPECT_EQ(ip[0], 0x45);
    EXPECT_EQ(0, std::memcmp(ip + 12, sgid->gid.data() + 12, 4));
  } else {
    // GRH / IPv6 header: version 6, source GID at bytes 8..23.
    EXPECT_EQ(b.at(0)[0] >> 4, 6);
    EXPECT_EQ(0, std::memcmp(b.at(8), sgid->gid.data(), 16));
  }
  std::vector<ibv_wc> swc;
  ASSERT_TRUE(pair.WaitCq(a, a.scq, 1, &swc));
  EXPECT_EQ(swc[0].status, IBV_WC_SUCCESS);
}

TEST_P(UdTest, WrongQkeyIsDroppedAndCounted) {
  EnginePair pair;
  QpOptions opt;
  opt.type = IBV_QPT_UD;
  opt.gid_index = GetParam();
  uint32_t qa, qb, ah_ab, ah_ba;
  pair.CreateUd(opt, &qa, &qb, &ah_ab, &ah_ba);
  Host& a = pair.a;
  Host& b = pair.b;
  ASSERT_TRUE(b.dev->PostRecv(qb, MakeRecv(1, b, 0, 1000)).ok());
  SendWr wr = MakeSend(1, IBV_WR_SEND, a, 0, 100);
  wr.ah = ah_ab;
  wr.remote_qpn = qb;
  wr.remote_qkey = 0x2222;
  ASSERT_TRUE(a.dev->PostSend(qa, wr).ok());
  // A WR Q_Key with the high bit set uses the sender QP's own Q_Key, which matches.
  wr.wr_id = 2;
  wr.remote_qkey = 0x80000000;
  ASSERT_TRUE(a.dev->PostSend(qa, wr).ok());
  std::vector<ibv_wc> rwc;
  ASSERT_TRUE(pair.WaitCq(b, b.rcq, 1, &rwc));
  pair.RunUntil([] { return false; }, 1'000'000);
  EXPECT_EQ(rwc.size(), 1u);
  EXPECT_EQ(b.dev->counters().rx_bad_qkey, 1u);
}

TEST_P(UdTest, MessageAboveMtuFailsLocally) {
  EnginePair pair;
  QpOptions opt;
  opt.type = IBV_QPT_UD;
  uint32_t qa, qb, ah_ab, ah_ba;
  pair.CreateUd(opt, &qa, &qb, &ah_ab, &ah_ba);
  SendWr wr = MakeSend(1, IBV_WR_SEND, pair.a, 0, 5000);
  wr.ah = ah_ab;
  wr.remote_qpn = qb;
  ASSERT_TRUE(pair.a.dev->PostSend(qa, wr).ok());
  std::vector<ibv_wc> swc;
  ASSERT_TRUE(pair.WaitCq(pair.a, pair.a.scq, 1, &swc));
  EXPECT_EQ(swc[0].status, IBV_WC_LOC_LEN_ERR);
}

INSTANTIATE_TEST_SUITE_P(Networks, UdTest, ::testing::Values(0u, 1u, 2u));

TEST(UdTest, SendErrorStopsOnlyTheSendQueue) {
  EnginePair pair;
  QpOptions opt;
  opt.type = IBV_QPT_UD;
  uint32_t qa, qb, ah_ab, ah_ba;
  pair.CreateUd(opt, &qa, &qb, &ah_ab, &ah_ba);
  Host& a = pair.a;
  Host& b = pair.b;
  SendWr bad = MakeSend(1, IBV_WR_SEND, a, 0, 100);
  bad.sg_list[0].lkey ^= 0x100;
  bad.ah = ah_ab;
  bad.remote_qpn = qb;
  bad.remote_qkey = 0x11111111;
  SendWr good = bad;
  good.wr_id = 2;
  good.sg_list[0].lkey = a.mr.lkey;
  ASSERT_TRUE(a.dev->PostSend(qa, bad).ok());
  ASSERT_TRUE(a.dev->PostSend(qa, good).ok());
  std::vector<ibv_wc> swc;
  ASSERT_TRUE(pair.WaitCq(a, a.scq, 2, &swc));
  EXPECT_EQ(swc[0].status, IBV_WC_LOC_PROT_ERR);
  EXPECT_EQ(swc[1].status, IBV_WC_WR_FLUSH_ERR);
  ibv_qp_attr attr;
  ASSERT_TRUE(a.dev->QueryQp(qa, &attr, nullptr).ok());
  EXPECT_EQ(attr.qp_state, IBV_QPS_SQE) << "UD send errors stop only the send queue";
  // The receive side still works in SQE.
  ASSERT_TRUE(a.dev->PostRecv(qa, MakeRecv(7, a, 4096, 1000)).ok());
  SendWr back = MakeSend(3, IBV_WR_SEND, b, 0, 64);
  back.ah = ah_ba;
  back.remote_qpn = qa;
  back.remote_qkey = 0x11111111;
  ASSERT_TRUE(b.dev->PostSend(qb, back).ok());
  std::vector<ibv_wc> rwc;
  ASSERT_TRUE(pair.WaitCq(a, a.rcq, 1, &rwc));
  EXPECT_EQ(rwc[0].status, IBV_WC_SUCCESS);
  // SQE -> RTS resumes sending.
  attr = {};
  attr.qp_state = IBV_QPS_RTS;
  ASSERT_TRUE(a.dev->ModifyQp(qa, attr, IBV_QP_STATE).ok());
  ASSERT_TRUE(b.dev->PostRecv(qb, MakeRecv(8, b, 0, 1000)).ok());
  good.wr_id = 4;
  ASSERT_TRUE(a.dev->PostSend(qa, good).ok());
  swc.clear();
  ASSERT_TRUE(pair.WaitCq(a, a.scq, 1, &swc));
  EXPECT_EQ(swc[0].status, IBV_WC_SUCCESS);
  rwc.clear();
  ASSERT_TRUE(pair.WaitCq(b, b.rcq, 1, &rwc));
  EXPECT_EQ(rwc[0].wr_id, 8u);
}

TEST(UdTest, AddressHandlesFollowTheGidTable) {
  // The engine keeps each AH's headers and destination until the GID table changes: a
  // datagram on an AH whose source GID was removed fails, and once the GID is back
  // (and the send queue out of SQE) datagrams on the same AH go again.
  EnginePair pair;
  QpOptions opt;
  opt.type = IBV_QPT_UD;
  uint32_t qa, qb, ah_ab, ah_ba;
  pair.CreateUd(opt, &qa, &qb, &ah_ab, &ah_ba);
  Host& a = pair.a;
  Host& b = pair.b;
  SendWr wr = MakeDatagram(1, a, 0, 100, ah_ab, qb);
  for (uint64_t id : {1, 2}) ASSERT_TRUE(b.dev->PostRecv(qb, MakeRecv(id, b, id * 1000, 200)).ok());
  ASSERT_TRUE(a.dev->PostSend(qa, wr).ok());
  std::vector<ibv_wc> swc, rwc;
  ASSERT_TRUE(pair.WaitCq(a, a.scq, 1, &swc));
  const GidEntry sgid = *a.dev->GetGid(a.gid_base + opt.gid_index);
  ASSERT_TRUE(a.dev->SetGid(a.gid_base + opt.gid_index, GidEntry{}).ok());
  wr.wr_id = 2;
  ASSERT_TRUE(a.dev->PostSend(qa, wr).ok());
  ASSERT_TRUE(pair.WaitCq(a, a.scq, 2, &swc));
  EXPECT_EQ(swc[1].status, IBV_WC_LOC_QP_OP_ERR);
  ASSERT_TRUE(a.dev->SetGid(a.gid_base + opt.gid_index, sgid).ok());
  ibv_qp_attr attr{};
  attr.qp_state = IBV_QPS_RTS;
  ASSERT_TRUE(a.dev->ModifyQp(qa, attr, IBV_QP_STATE).ok());
  wr.wr_id = 3;
  ASSERT_TRUE(a.dev->PostSend(qa, wr).ok());
  ASSERT_TRUE(pair.WaitCq(a, a.scq, 3, &swc));
  EXPECT_EQ(swc[2].status, IBV_WC_SUCCESS);
  ASSERT_TRUE(pair.WaitCq(b, b.rcq, 2, &rwc));
  EXPECT_EQ(rwc[1].status, IBV_WC_SUCCESS);
  EXPECT_EQ(rwc[1].byte_len, 140u);
}

TEST(UdTest, ADatagramWaitsOnePassForItsReceiveWqe) {
  // A receive WQE a client posts just after the daemon drained its rings, and before
  // the datagram for it arrives, is in the engine one pass later: the datagram waits
  // that pass (a NIC sees the doorbell first). With still no WQE it is dropped.
  EnginePair pair;
  QpOptions opt;
  opt.type = IBV_QPT_UD;
  uint32_t qa, qb, ah_ab, ah_ba;
  pair.CreateUd(opt, &qa, &qb, &ah_ab, &ah_ba);
  Host& a = pair.a;
  Host& b = pair.b;
  FillPattern(a.at(0), 300, 8);
  const uint64_t before = b.dev->counters().rx_packets;
  ASSERT_TRUE(a.dev->PostSend(qa, MakeDatagram(1, a, 0, 300, ah_ab, qb)).ok());
  ASSERT_TRUE(pair.RunUntil([&] { return b.dev->counters().rx_packets > before; }));
  ASSERT_TRUE(b.dev->PostRecv(qb, MakeRecv(1, b, 4096, 40 + 300)).ok());
  std::vector<ibv_wc> rwc;
  ASSERT_TRUE(pair.WaitCq(b, b.rcq, 1, &rwc));
  EXPECT_EQ(rwc[0].byte_len, 40u + 300);
  EXPECT_EQ(0, std::memcmp(b.at(4096 + 40), a.at(0), 300));
  EXPECT_EQ(b.dev->counters().rx_no_recv_wqe, 0u);
  EXPECT_EQ(b.dev->counters().rx_packets, before + 1) << "counted once";
  // None posted: dropped after its pass, and a later WQE is not filled by it.
  ASSERT_TRUE(a.dev->PostSend(qa, MakeDatagram(2, a, 0, 300, ah_ab, qb)).ok());
  ASSERT_TRUE(pair.RunUntil([&] { return b.dev->counters().rx_no_recv_wqe == 1; }));
  ASSERT_TRUE(b.dev->PostRecv(qb, MakeRecv(2, b, 8192, 40 + 300)).ok());
  pair.RunUntil([] { return false; }, 1'000'000);
  ibv_wc extra;
  EXPECT_EQ(*b.dev->PollCq(b.rcq, &extra, 1), 0);
}

}  // namespace
}  // namespace vrdma::driver::testing
