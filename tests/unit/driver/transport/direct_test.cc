// Direct execution (driver/transport/direct.cc): between two vdevs of one engine, a
// SEND, RDMA WRITE or READ whose QPs are in step moves its data with no frames; the framed
// operations before and after it keep their PSNs; and every error ends as the frames end
// it (the same completion status, QP states and asynchronous events, with direct
// execution on and off).
#include <cstring>
#include <vector>

#include "tests/unit/driver/transport/engine_pair.h"

namespace vrdma::driver::testing {
namespace {

// A FETCH_AND_ADD always goes by frames: the framed operation around direct ones.
SendWr FetchAdd(uint64_t id, EnginePair& pair, uint64_t add) {
  SendWr w = MakeSend(id, IBV_WR_ATOMIC_FETCH_AND_ADD, pair.a, 3 << 20, 8);
  w.remote_addr = pair.b.va((4 << 20) - 64);
  w.rkey = pair.b.mr.rkey;
  w.compare_add = add;
  return w;
}

TEST(DirectTest, OperationsMoveWithNoFramesBetweenFramedOnes) {
  EnginePair pair(/*seed=*/1, 4 << 20, nullptr, false, /*one_device=*/true);
  QpOptions opt;
  opt.mtu = IBV_MTU_4096;
  uint32_t qa, qb;
  pair.Connect(opt, &qa, &qb);
  RoceDevice& dev = *pair.a.dev;
  FillPattern(pair.a.at(0), 1 << 20, 1);
  FillPattern(pair.b.at(2 << 20), 1 << 20, 2);
  std::vector<ibv_wc> wc;
  // A framed atomic first: the PSNs the direct operations take follow its.
  ASSERT_TRUE(dev.PostSend(qa, FetchAdd(1, pair, 5)).ok());
  ASSERT_TRUE(pair.WaitCq(pair.a, pair.a.scq, 1, &wc));
  const uint64_t frames = dev.counters().tx_packets;
  EXPECT_GT(frames, 0u);
  SendWr write = MakeSend(2, IBV_WR_RDMA_WRITE, pair.a, 0, 1 << 20);
  write.remote_addr = pair.b.va(1 << 20);
  write.rkey = pair.b.mr.rkey;
  SendWr read = MakeSend(3, IBV_WR_RDMA_READ, pair.a, 1 << 20, 1 << 20);
  read.remote_addr = pair.b.va(2 << 20);
  read.rkey = pair.b.mr.rkey;
  SendWr empty = MakeSend(4, IBV_WR_RDMA_WRITE, pair.a, 0, 0);
  empty.num_sge = 0;
  empty.remote_addr = pair.b.va(0);
  empty.rkey = 0x1234;  // a zero-length WRITE checks no R_Key (IBTA 9.4.3)
  SendWr inl = MakeSend(5, IBV_WR_RDMA_WRITE, pair.a, 0, 48);
  inl.send_flags |= IBV_SEND_INLINE;
  inl.inline_len = 48;
  std::memset(inl.inline_data, 0xa5, 48);
  inl.remote_addr = pair.b.va(3 << 20) + 8192;
  inl.rkey = pair.b.mr.rkey;
  // A SEND gathered from two SGEs into a receive WQE of two, a SEND with immediate data
  // and a WRITE with immediate data: each takes a receive WQE and completes it.
  SendWr send = MakeSend(6, IBV_WR_SEND, pair.a, 100, 4000);
  send.sg_list[1] = Sge{pair.a.va(50000), 2000, pair.a.mr.lkey};
  send.num_sge = 2;
  RecvWr recv = MakeRecv(20, pair.b, 3 << 20, 1000);
  recv.sg_list[1] = Sge{pair.b.va((3 << 20) + 100000), 8000, pair.b.mr.lkey};
  recv.num_sge = 2;
  SendWr send_imm = MakeSend(7, IBV_WR_SEND_WITH_IMM, pair.a, 0, 100);
  send_imm.imm_be = 0x01020304;
  send_imm.send_flags |= IBV_SEND_SOLICITED;
  SendWr write_imm = MakeSend(8, IBV_WR_RDMA_WRITE_WITH_IMM, pair.a, 0, 3000);
  write_imm.remote_addr = pair.b.va((3 << 20) + 200000);
  write_imm.rkey = pair.b.mr.rkey;
  write_imm.imm_be = 0x0a0b0c0d;
  ASSERT_TRUE(pair.b.dev->PostRecv(qb, recv).ok());
  ASSERT_TRUE(pair.b.dev->PostRecv(qb, MakeRecv(21, pair.b, (3 << 20) + 300000, 100)).ok());
  ASSERT_TRUE(pair.b.dev->PostRecv(qb, MakeRecv(22, pair.b, 0, 0)).ok());
  for (const SendWr& w : {write, read, empty, inl, send, send_imm, write_imm}) {
    ASSERT_TRUE(dev.PostSend(qa, w).ok());
    ASSERT_TRUE(pair.WaitCq(pair.a, pair.a.scq, wc.size() + 1, &wc));
  }
  EXPECT_EQ(dev.counters().direct_wqes, 7u);
  EXPECT_EQ(dev.counters().tx_packets, frames) << "no frame for the direct operations";
  // And a framed atomic after them: the responder expects the PSN the requester uses next.
  ASSERT_TRUE(dev.PostSend(qa, FetchAdd(9, pair, 7)).ok());
  ASSERT_TRUE(pair.WaitCq(pair.a, pair.a.scq, 9, &wc));
  const ibv_wc_opcode ops[] = {IBV_WC_FETCH_ADD,  IBV_WC_RDMA_WRITE, IBV_WC_RDMA_READ,
                               IBV_WC_RDMA_WRITE, IBV_WC_RDMA_WRITE, IBV_WC_SEND,
                               IBV_WC_SEND,       IBV_WC_RDMA_WRITE, IBV_WC_FETCH_ADD};
  const uint32_t lens[] = {8, 1 << 20, 1 << 20, 0, 48, 6000, 100, 3000, 8};
  for (size_t i = 0; i < wc.size(); ++i) {
    EXPECT_EQ(wc[i].status, IBV_WC_SUCCESS) << i;
    EXPECT_EQ(wc[i].wr_id, i + 1);
    EXPECT_EQ(wc[i].opcode, ops[i]);
    EXPECT_EQ(wc[i].byte_len, lens[i]);
  }
  uint64_t v;
  std::memcpy(&v, pair.a.at(3 << 20), 8);
  EXPECT_EQ(v, 5u);  // what the second atomic found: the first's
  std::vector<ibv_wc> rwc;
  ASSERT_TRUE(pair.WaitCq(pair.b, pair.b.rcq, 3, &rwc));
  EXPECT_EQ(rwc[0].wr_id, 20u);
  EXPECT_EQ(rwc[0].opcode, IBV_WC_RECV);
  EXPECT_EQ(rwc[0].byte_len, 6000u);
  EXPECT_EQ(rwc[0].src_qp, qa);
  EXPECT_EQ(rwc[0].wc_flags & IBV_WC_WITH_IMM, 0);
  EXPECT_EQ(rwc[1].wr_id, 21u);
  EXPECT_EQ(rwc[1].byte_len, 100u);
  EXPECT_TRUE(rwc[1].wc_flags & IBV_WC_WITH_IMM);
  EXPECT_EQ(rwc[1].imm_data, 0x01020304u);
  EXPECT_EQ(rwc[2].wr_id, 22u);
  EXPECT_EQ(rwc[2].opcode, IBV_WC_RECV_RDMA_WITH_IMM);
  EXPECT_EQ(rwc[2].byte_len, 3000u);
  EXPECT_EQ(rwc[2].imm_data, 0x0a0b0c0du);
  EXPECT_EQ(0, std::memcmp(pair.b.at(1 << 20), pair.a.at(0), 1 << 20));
  EXPECT_EQ(0, std::memcmp(pair.a.at(1 << 20), pair.b.at(2 << 20), 1 << 20));
  EXPECT_EQ(pair.b.at(3 << 20)[8192], 0xa5);
  EXPECT_EQ(pair.b.at(3 << 20)[8192 + 47], 0xa5);
  // The SEND's 6000 bytes: 4000 from offset 100, 2000 from 50000, into 1000 + 5000.
  std::vector<uint8_t> sent(pair.a.at(100), pair.a.at(4100));
  sent.insert(sent.end(), pair.a.at(50000), pair.a.at(52000));
  std::vector<uint8_t> got(pair.b.at(3 << 20), pair.b.at((3 << 20) + 1000));
  got.insert(got.end(), pair.b.at((3 << 20) + 100000), pair.b.at((3 << 20) + 105000));
  EXPECT_EQ(got, sent);
  EXPECT_EQ(0, std::memcmp(pair.b.at((3 << 20) + 300000), pair.a.at(0), 100));
  EXPECT_EQ(0, std::memcmp(pair.b.at((3 << 20) + 200000), pair.a.at(0), 3000));
}

TEST(DirectTest, OperationsBehindOutstandingOnesGoByFrames) {
  // A WRITE posted behind an atomic that has not completed is not in step: it goes by
  // frames, after the atomic, so that the peer sees the requests in order.
  EnginePair pair(/*seed=*/2, 4 << 20, nullptr, false, /*one_device=*/true);
  QpOptions opt;
  uint32_t qa, qb;
  pair.Connect(opt, &qa, &qb);
  FillPattern(pair.a.at(0), 65536, 3);
  SendWr write = MakeSend(2, IBV_WR_RDMA_WRITE, pair.a, 0, 65536);
  write.remote_addr = pair.b.va(2 << 20);
  write.rkey = pair.b.mr.rkey;
  ASSERT_TRUE(pair.a.dev->PostSend(qa, FetchAdd(1, pair, 1)).ok());
  ASSERT_TRUE(pair.a.dev->PostSend(qa, write).ok());
  std::vector<ibv_wc> wc;
  ASSERT_TRUE(pair.WaitCq(pair.a, pair.a.scq, 2, &wc));
  EXPECT_EQ(wc[0].wr_id, 1u);
  EXPECT_EQ(wc[1].wr_id, 2u);
  EXPECT_EQ(pair.a.dev->counters().direct_wqes, 0u);
  EXPECT_EQ(0, std::memcmp(pair.b.at(2 << 20), pair.a.at(0), 65536));
}

TEST(DirectTest, SendWithNoReceiveWqeMeetsRnrByFrames) {
  // No receive WQE at the peer: the frames carry the SEND and the peer answers RNR NAK
  // (IBTA 9.7.5.2.8); once a WQE is posted, the retry lands in it.
  EnginePair pair(/*seed=*/3, 4 << 20, nullptr, false, /*one_device=*/true);
  QpOptions opt;
  uint32_t qa, qb;
  pair.Connect(opt, &qa, &qb);
  FillPattern(pair.a.at(0), 5000, 4);
  ASSERT_TRUE(pair.a.dev->PostSend(qa, MakeSend(1, IBV_WR_SEND, pair.a, 0, 5000)).ok());
  ASSERT_TRUE(pair.RunUntil([&] { return pair.a.dev->counters().rnr_naks_sent > 0; }));
  ASSERT_TRUE(pair.b.dev->PostRecv(qb, MakeRecv(10, pair.b, 1 << 20, 8192)).ok());
  std::vector<ibv_wc> wc, rwc;
  ASSERT_TRUE(pair.WaitCq(pair.a, pair.a.scq, 1, &wc));
  ASSERT_TRUE(pair.WaitCq(pair.b, pair.b.rcq, 1, &rwc));
  EXPECT_EQ(wc[0].status, IBV_WC_SUCCESS);
  EXPECT_EQ(rwc[0].byte_len, 5000u);
  EXPECT_EQ(0, std::memcmp(pair.b.at(1 << 20), pair.a.at(0), 5000));
  EXPECT_EQ(pair.a.dev->counters().direct_wqes, 0u);
}

TEST(DirectTest, APeerThatChangedIsFoundAgain) {
  // The peer a QP's frames reach is kept until the GID table or a QP changes: once the
  // peer is destroyed, the next WRITE goes by frames, finds no QP there, and ends in
  // Transport Retry Counter Exceeded, never in the memory of the QP that was.
  EnginePair pair(/*seed=*/6, 4 << 20, nullptr, false, /*one_device=*/true);
  QpOptions opt;
  opt.retry_cnt = 1;
  uint32_t qa, qb;
  pair.Connect(opt, &qa, &qb);
  SendWr w = MakeSend(1, IBV_WR_RDMA_WRITE, pair.a, 0, 4096);
  w.remote_addr = pair.b.va(0);
  w.rkey = pair.b.mr.rkey;
  ASSERT_TRUE(pair.a.dev->PostSend(qa, w).ok());
  std::vector<ibv_wc> wc;
  ASSERT_TRUE(pair.WaitCq(pair.a, pair.a.scq, 1, &wc));
  EXPECT_EQ(pair.a.dev->counters().direct_wqes, 1u);
  ASSERT_TRUE(pair.b.dev->DestroyQp(qb).ok());
  w.wr_id = 2;
  ASSERT_TRUE(pair.a.dev->PostSend(qa, w).ok());
  ASSERT_TRUE(pair.WaitCq(pair.a, pair.a.scq, 2, &wc));
  EXPECT_EQ(wc[1].status, IBV_WC_RETRY_EXC_ERR);
  EXPECT_EQ(pair.a.dev->counters().direct_wqes, 1u);
  EXPECT_GT(pair.a.dev->counters().rx_unknown_qp, 0u);
}

// What an operation left: the requester's completion, both QPs' states, the events.
struct Outcome {
  ibv_wc_status status;
  ibv_qp_state requester;
  ibv_qp_state responder;
  std::vector<std::pair<ibv_event_type, bool>> events;  // type, about the responder QP
  uint64_t direct;
};

Outcome RunOne(bool direct, const std::function<void(EnginePair&, SendWr&, uint32_t)>& shape) {
  EnginePair pair(/*seed=*/4, 4 << 20, nullptr, false, /*one_device=*/true);
  pair.a.dev->SetDirect(direct);
  QpOptions opt;
  opt.retry_cnt = 1;
  uint32_t qa, qb;
  pair.Connect(opt, &qa, &qb);
  SendWr w = MakeSend(1, IBV_WR_RDMA_WRITE, pair.a, 0, 10000);
  w.remote_addr = pair.b.va(0);
  w.rkey = pair.b.mr.rkey;
  shape(pair, w, qb);
  EXPECT_TRUE(pair.a.dev->PostSend(qa, w).ok());
  std::vector<ibv_wc> wc;
  EXPECT_TRUE(pair.WaitCq(pair.a, pair.a.scq, 1, &wc));
  pair.RunUntil([] { return false; }, 1'000'000);  // what follows the completion
  Outcome o{wc.empty() ? IBV_WC_GENERAL_ERR : wc[0].status,
            pair.a.dev->FindQp(qa)->state,
            pair.a.dev->FindQp(qb)->state,
            {},
            pair.a.dev->counters().direct_wqes};
  AsyncEvent ev;
  while (pair.a.dev->PollAsyncEvent(&ev)) o.events.push_back({ev.type, ev.element == qb});
  return o;
}

class DirectErrorTest : public ::testing::TestWithParam<bool> {};

TEST_P(DirectErrorTest, ErrorsEndAsTheFramesEndThem) {
  const bool direct = GetParam();
  // A bad R_Key: the peer NAKs (Remote Access Error) and enters Error with an access
  // event (IBTA 9.7.5.2.4); the requester's WQE fails with it.
  Outcome bad_rkey = RunOne(direct, [](EnginePair&, SendWr& w, uint32_t) { w.rkey ^= 0x100; });
  EXPECT_EQ(bad_rkey.status, IBV_WC_REM_ACCESS_ERR);
  EXPECT_EQ(bad_rkey.requester, IBV_QPS_ERR);
  EXPECT_EQ(bad_rkey.responder, IBV_QPS_ERR);
  ASSERT_EQ(bad_rkey.events.size(), 1u);
  EXPECT_EQ(bad_rkey.events[0], std::make_pair(IBV_EVENT_QP_ACCESS_ERR, true));
  // A READ past the end of the peer's MR: the same.
  Outcome past_end = RunOne(direct, [](EnginePair& p, SendWr& w, uint32_t) {
    w.opcode = IBV_WR_RDMA_READ;
    w.remote_addr = p.b.va(p.b.mem.size() - 100);
  });
  EXPECT_EQ(past_end.status, IBV_WC_REM_ACCESS_ERR);
  EXPECT_EQ(past_end.responder, IBV_QPS_ERR);
  // A bad L_Key: a local protection error; the peer hears nothing and stays in RTS.
  Outcome bad_lkey =
      RunOne(direct, [](EnginePair&, SendWr& w, uint32_t) { w.sg_list[0].lkey ^= 0x100; });
  EXPECT_EQ(bad_lkey.status, IBV_WC_LOC_PROT_ERR);
  EXPECT_EQ(bad_lkey.requester, IBV_QPS_ERR);
  EXPECT_EQ(bad_lkey.responder, IBV_QPS_RTS);
  EXPECT_TRUE(bad_lkey.events.empty());
  // A peer QP that grants no remote write (IBTA 10.2.4.1): as a bad R_Key.
  Outcome no_access = RunOne(direct, [](EnginePair& p, SendWr&, uint32_t qb) {
    ibv_qp_attr a{};
    a.qp_state = IBV_QPS_RTS;
    a.qp_access_flags = IBV_ACCESS_REMOTE_READ;
    ASSERT_TRUE(p.b.dev->ModifyQp(qb, a, IBV_QP_STATE | IBV_QP_ACCESS_FLAGS).ok());
  });
  EXPECT_EQ(no_access.status, IBV_WC_REM_ACCESS_ERR);
  EXPECT_EQ(no_access.responder, IBV_QPS_ERR);
  // Good ones complete, direct only when it is on.
  Outcome good = RunOne(direct, [](EnginePair&, SendWr&, uint32_t) {});
  EXPECT_EQ(good.status, IBV_WC_SUCCESS);
  EXPECT_EQ(good.responder, IBV_QPS_RTS);
  EXPECT_EQ(good.direct, direct ? 1u : 0u);
}

INSTANTIATE_TEST_SUITE_P(DirectAndFramed, DirectErrorTest, ::testing::Bool(),
                         [](const auto& info) { return info.param ? "Direct" : "Framed"; });

// What a run of datagrams left at both ends.
struct UdOutcome {
  std::vector<ibv_wc> sent, received;
  std::vector<uint8_t> memory;  // the receiver's buffers: GRHs and payloads
  uint64_t bad_qkey, no_recv_wqe, direct, frames;
  ibv_qp_state sender, receiver;
};

// Datagrams between two UD QPs of one engine, on network type `gid_index`: good ones of
// every shape, then one with a wrong Q_Key, one with no receive WQE, one into a receive
// buffer too short, and one with a bad L_Key.
UdOutcome RunDatagrams(bool direct, uint32_t gid_index) {
  EnginePair pair(/*seed=*/5, 1 << 20, nullptr, false, /*one_device=*/true);
  pair.a.dev->SetDirect(direct);
  QpOptions opt;
  opt.type = IBV_QPT_UD;
  opt.gid_index = gid_index;
  uint32_t qa, qb, ah_ab, ah_ba;
  pair.CreateUd(opt, &qa, &qb, &ah_ab, &ah_ba);
  Host& a = pair.a;
  Host& b = pair.b;
  FillPattern(a.at(0), 8192, 6);
  std::memset(b.at(0), 0xcc, 65536);
  auto datagram = [&](uint64_t id, uint64_t off, uint32_t len) {
    return MakeDatagram(id, a, off, len, ah_ab, qb);
  };
  RecvWr split = MakeRecv(2, b, 8192, 30);  // the GRH itself split over two SGEs
  split.sg_list[1] = Sge{b.va(16384), 2000, b.mr.lkey};
  split.num_sge = 2;
  for (const RecvWr& r : {MakeRecv(1, b, 0, 40 + 4096), split, MakeRecv(3, b, 32768, 100),
                          MakeRecv(4, b, 40960, 40), MakeRecv(5, b, 49152, 140)}) {
    EXPECT_TRUE(b.dev->PostRecv(qb, r).ok());
  }
  SendWr imm = datagram(1, 0, 4096);
  imm.opcode = IBV_WR_SEND_WITH_IMM;
  imm.imm_be = 0x05060708;
  imm.send_flags |= IBV_SEND_SOLICITED;
  SendWr two = datagram(2, 100, 1000);
  two.sg_list[1] = Sge{a.va(6000), 500, a.mr.lkey};
  two.num_sge = 2;
  SendWr inl = datagram(3, 0, 60);
  inl.send_flags |= IBV_SEND_INLINE;
  inl.inline_len = 60;
  std::memset(inl.inline_data, 0x3c, 60);
  inl.remote_qkey = 0x80000000;  // the sender QP's own Q_Key (IBTA 10.2.5)
  SendWr empty = datagram(4, 0, 0);
  empty.num_sge = 0;
  SendWr wrong_qkey = datagram(5, 0, 100);
  wrong_qkey.remote_qkey = 0x2222;
  const uint64_t frames = a.dev->counters().tx_packets;
  UdOutcome o{};
  for (const SendWr& w : {imm, two, inl, empty, wrong_qkey, datagram(6, 200, 100)}) {
    EXPECT_TRUE(a.dev->PostSend(qa, w).ok());
    EXPECT_TRUE(pair.WaitCq(a, a.scq, o.sent.size() + 1, &o.sent));
  }
  EXPECT_TRUE(pair.WaitCq(b, b.rcq, 5, &o.received));
  // No receive WQE: dropped (IBTA 11.4.1.1, C11-20), before the next one is posted.
  EXPECT_TRUE(a.dev->PostSend(qa, datagram(7, 0, 100)).ok());
  EXPECT_TRUE(pair.RunUntil([&] { return b.dev->counters().rx_no_recv_wqe > 0; }));
  // Too short for the GRH and the payload: the receive fails and the receiver's QP
  // enters Error; then a bad L_Key stops the sender's send queue.
  EXPECT_TRUE(b.dev->PostRecv(qb, MakeRecv(6, b, 57344, 50)).ok());
  EXPECT_TRUE(a.dev->PostSend(qa, datagram(8, 0, 100)).ok());
  EXPECT_TRUE(pair.WaitCq(b, b.rcq, 6, &o.received));
  SendWr bad_lkey = datagram(9, 0, 100);
  bad_lkey.sg_list[0].lkey ^= 0x100;
  EXPECT_TRUE(a.dev->PostSend(qa, bad_lkey).ok());
  EXPECT_TRUE(pair.WaitCq(a, a.scq, 9, &o.sent));
  pair.RunUntil([] { return false; }, 1'000'000);
  o.memory.assign(b.at(0), b.at(65536));
  o.bad_qkey = b.dev->counters().rx_bad_qkey;
  o.no_recv_wqe = b.dev->counters().rx_no_recv_wqe;
  o.direct = a.dev->counters().direct_wqes;
  o.frames = a.dev->counters().tx_packets - frames;
  o.sender = a.dev->FindQp(qa)->state;
  o.receiver = b.dev->FindQp(qb)->state;
  return o;
}

class DirectUdTest : public ::testing::TestWithParam<uint32_t> {};

TEST_P(DirectUdTest, DatagramsLandAsTheirFramesWould) {
  const UdOutcome framed = RunDatagrams(false, GetParam());
  const UdOutcome direct = RunDatagrams(true, GetParam());
  EXPECT_EQ(framed.direct, 0u);
  EXPECT_EQ(framed.frames, 8u);  // the bad L_Key makes none
  // The five good datagrams went with no frames; the four the receiver drops or fails,
  // and the bad L_Key's, by frames or by none, as before.
  EXPECT_EQ(direct.direct, 5u);
  EXPECT_EQ(direct.frames, 3u);
  for (const UdOutcome* o : {&framed, &direct}) {
    ASSERT_EQ(o->sent.size(), 9u);
    for (size_t i = 0; i < 8; ++i) EXPECT_EQ(o->sent[i].status, IBV_WC_SUCCESS) << i;
    EXPECT_EQ(o->sent[8].status, IBV_WC_LOC_PROT_ERR);
    ASSERT_EQ(o->received.size(), 6u);
    EXPECT_EQ(o->received[0].byte_len, 40u + 4096);
    EXPECT_EQ(o->received[1].byte_len, 40u + 1500);
    EXPECT_EQ(o->received[4].byte_len, 40u + 100);
    EXPECT_EQ(o->received[5].status, IBV_WC_LOC_LEN_ERR);
    EXPECT_EQ(o->bad_qkey, 1u);
    EXPECT_EQ(o->no_recv_wqe, 1u);
    EXPECT_EQ(o->sender, IBV_QPS_SQE);
    EXPECT_EQ(o->receiver, IBV_QPS_ERR);
  }
  // Every receive completion alike, field by field.
  for (size_t i = 0; i < framed.received.size(); ++i) {
    const ibv_wc& f = framed.received[i];
    const ibv_wc& d = direct.received[i];
    EXPECT_EQ(d.wr_id, f.wr_id) << i;
    EXPECT_EQ(d.status, f.status) << i;
    EXPECT_EQ(d.opcode, f.opcode) << i;
    EXPECT_EQ(d.byte_len, f.byte_len) << i;
    EXPECT_EQ(d.src_qp, f.src_qp) << i;
    EXPECT_EQ(d.wc_flags, f.wc_flags) << i;
    EXPECT_EQ(d.imm_data, f.imm_data) << i;
    EXPECT_EQ(d.sl, f.sl) << i;
    EXPECT_EQ(d.qp_num, f.qp_num) << i;
  }
  EXPECT_TRUE(direct.received[0].wc_flags & IBV_WC_WITH_IMM);
  // The receive buffers byte for byte: each GRH (or IPv4 header, identification and
  // checksum included) and each payload.
  EXPECT_EQ(direct.memory, framed.memory);
}

INSTANTIATE_TEST_SUITE_P(Networks, DirectUdTest, ::testing::Values(0u, 1u, 2u));

}  // namespace
}  // namespace vrdma::driver::testing
