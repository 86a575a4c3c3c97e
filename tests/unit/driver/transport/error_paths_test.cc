// Error paths: each produces the completion status and QP state IBTA requires.
#include <cstring>

#include "tests/unit/driver/transport/engine_pair.h"

namespace vrdma::driver::testing {
namespace {

ibv_qp_state StateOf(Host& h, uint32_t qpn) {
  ibv_qp_attr attr;
  EXPECT_TRUE(h.dev->QueryQp(qpn, &attr, nullptr).ok());
  return attr.qp_state;
}

TEST(ErrorPathsTest, RemoteAccessViolation) {
  EnginePair pair;
  uint32_t qa, qb;
  pair.Connect(QpOptions{}, &qa, &qb);
  Host& a = pair.a;
  Host& b = pair.b;
  // WRITE past the end of B's MR, then a second WR that must be flushed.
  SendWr w = MakeSend(1, IBV_WR_RDMA_WRITE, a, 0, 100);
  w.remote_addr = b.va(b.mem.size() - 50);
  w.rkey = b.mr.rkey;
  ASSERT_TRUE(a.dev->PostSend(qa, w).ok());
  ASSERT_TRUE(a.dev->PostSend(qa, MakeSend(2, IBV_WR_SEND, a, 0, 10)).ok());
  std::vector<ibv_wc> wc;
  ASSERT_TRUE(pair.WaitCq(a, a.scq, 2, &wc));
  EXPECT_EQ(wc[0].status, IBV_WC_REM_ACCESS_ERR);
  EXPECT_EQ(wc[0].wr_id, 1u);
  EXPECT_EQ(wc[1].status, IBV_WC_WR_FLUSH_ERR);
  EXPECT_EQ(StateOf(a, qa), IBV_QPS_ERR);
  EXPECT_EQ(StateOf(b, qb), IBV_QPS_ERR);
  AsyncEvent ev;
  bool access_event = false;
  while (b.dev->PollAsyncEvent(&ev)) access_event |= ev.type == IBV_EVENT_QP_ACCESS_ERR;
  EXPECT_TRUE(access_event);
  EXPECT_EQ(b.dev->counters().naks_sent, 1u);
}

// An ATOMIC WRITE needs remote write access to its target (as rxe checks): into a
// read-only MR it is a Remote Access Error, and the target keeps its value.
TEST(ErrorPathsTest, AtomicWriteIntoReadOnlyMrIsRefused) {
  EnginePair pair;
  uint32_t qa, qb;
  pair.Connect(QpOptions{}, &qa, &qb);
  static uint64_t target = 5;
  auto ro = pair.b.dev->RegMr(pair.b.pd, 0x7000, &target, sizeof target,
                              IBV_ACCESS_LOCAL_WRITE | IBV_ACCESS_REMOTE_READ);
  ASSERT_TRUE(ro.ok());
  SendWr aw{};
  aw.opcode = IBV_WR_ATOMIC_WRITE;
  aw.send_flags = IBV_SEND_SIGNALED;
  aw.remote_addr = 0x7000;
  aw.rkey = ro->rkey;
  aw.compare_add = 99;
  ASSERT_TRUE(pair.a.dev->PostSend(qa, aw).ok());
  std::vector<ibv_wc> wc;
  ASSERT_TRUE(pair.WaitCq(pair.a, pair.a.scq, 1, &wc));
  EXPECT_EQ(wc[0].status, IBV_WC_REM_ACCESS_ERR);
  EXPECT_EQ(target, 5u);
}

TEST(ErrorPathsTest, RkeyOfAnotherPdIsRejected) {
  EnginePair pair;
  uint32_t qa, qb;
  pair.Connect(QpOptions{}, &qa, &qb);
  Host& a = pair.a;
  Host& b = pair.b;
  uint32_t other_pd = *b.dev->AllocPd();
  static uint8_t buf[4096];
  auto keys = b.dev->RegMr(other_pd, 0x5000, buf, sizeof(buf),
                           IBV_ACCESS_LOCAL_WRITE | IBV_ACCESS_REMOTE_READ);
  ASSERT_TRUE(keys.ok());
  SendWr r = MakeSend(1, IBV_WR_RDMA_READ, a, 0, 64);
  r.remote_addr = 0x5000;
  r.rkey = keys->rkey;
  ASSERT_TRUE(a.dev->PostSend(qa, r).ok());
  std::vector<ibv_wc> wc;
  ASSERT_TRUE(pair.WaitCq(a, a.scq, 1, &wc));
  EXPECT_EQ(wc[0].status, IBV_WC_REM_ACCESS_ERR);
}

// ibv_rereg_mr in the engine: the PD moved (the peer's READ through the same rkey is then
// a remote access error) and back; new pages under the same keys; every refusal checked
// before anything changes. Access flags as the kernel's ib_check_mr_access.
TEST(ErrorPathsTest, ReregMrKeepsKeysAndChecksFirst) {
  EnginePair pair;
  uint32_t qa, qb;
  pair.Connect(QpOptions{}, &qa, &qb);
  Host& a = pair.a;
  Host& b = pair.b;
  static uint8_t other[8192];
  std::memset(other, 0x6b, sizeof other);
  const int read_only = IBV_ACCESS_LOCAL_WRITE | IBV_ACCESS_REMOTE_READ;
  auto read = [&](uint64_t wr_id, uint64_t raddr) {
    SendWr r = MakeSend(wr_id, IBV_WR_RDMA_READ, a, 0, 64);
    r.remote_addr = raddr;
    r.rkey = b.mr.rkey;
    EXPECT_TRUE(a.dev->PostSend(qa, r).ok());
    std::vector<ibv_wc> wc;
    EXPECT_TRUE(pair.WaitCq(a, a.scq, 1, &wc));
    return wc.empty() ? IBV_WC_GENERAL_ERR : wc[0].status;
  };
  uint32_t other_pd = *b.dev->AllocPd();
  RoceDevice::MrChange bad;
  bad.pd = 9999;  // no such PD
  bad.access = IBV_ACCESS_REMOTE_WRITE;
  EXPECT_FALSE(b.dev->ReregMr(b.mr.lkey, bad).ok());
  bad = {};
  bad.access = IBV_ACCESS_REMOTE_WRITE;  // without local write
  EXPECT_EQ(b.dev->ReregMr(b.mr.lkey, bad).code(), absl::StatusCode::kInvalidArgument);
  bad.access = IBV_ACCESS_LOCAL_WRITE | (1 << 8);  // IBTA 1.5 flush (IBV_ACCESS_FLUSH_GLOBAL)
  EXPECT_EQ(b.dev->ReregMr(b.mr.lkey, bad).code(), absl::StatusCode::kUnimplemented);
  bad.access = IBV_ACCESS_LOCAL_WRITE | (1 << 12);  // no such flag
  EXPECT_EQ(b.dev->ReregMr(b.mr.lkey, bad).code(), absl::StatusCode::kInvalidArgument);
  bad = {};
  bad.translation = true;  // no memory
  bad.iova = 0x9000;
  bad.length = 4096;
  EXPECT_FALSE(b.dev->ReregMr(b.mr.lkey, bad).ok());
  EXPECT_FALSE(b.dev->ReregMr(b.mr.lkey + 1, RoceDevice::MrChange{}).ok());
  EXPECT_EQ(read(1, b.va(0)), IBV_WC_SUCCESS) << "refusals left the MR as it was";

  RoceDevice::MrChange move_pd;
  move_pd.pd = other_pd;
  ASSERT_TRUE(b.dev->ReregMr(b.mr.lkey, move_pd).ok());
  EXPECT_EQ(read(2, b.va(0)), IBV_WC_REM_ACCESS_ERR);
  uint32_t qa2, qb2;
  pair.Connect(QpOptions{}, &qa2, &qb2);
  qa = qa2;
  move_pd.pd = b.pd;
  ASSERT_TRUE(b.dev->ReregMr(b.mr.lkey, move_pd).ok());
  EXPECT_EQ(read(3, b.va(0)), IBV_WC_SUCCESS);

  RoceDevice::MrChange pages;
  pages.translation = true;
  pages.iova = 0x7700000;
  pages.host = other;
  pages.length = sizeof other;
  pages.access = read_only;
  ASSERT_TRUE(b.dev->ReregMr(b.mr.lkey, pages).ok());
  const MemoryRegion* mr = b.dev->FindMr(b.mr.lkey);
  ASSERT_NE(mr, nullptr);
  EXPECT_EQ(mr->rkey, b.mr.rkey);
  EXPECT_EQ(read(4, 0x7700000 + 100), IBV_WC_SUCCESS);
  EXPECT_EQ(a.at(0)[10], 0x6b);
  EXPECT_EQ(read(5, b.va(0)), IBV_WC_REM_ACCESS_ERR) << "the old range is gone";
}

TEST(ErrorPathsTest, RnrRetryExhausted) {
  EnginePair pair;
  QpOptions opt;
  opt.rnr_retry = 2;
  uint32_t qa, qb;
  pair.Connect(opt, &qa, &qb);
  ASSERT_TRUE(pair.a.dev->PostSend(qa, MakeSend(1, IBV_WR_SEND, pair.a, 0, 10)).ok());
  std::vector<ibv_wc> wc;
  ASSERT_TRUE(pair.WaitCq(pair.a, pair.a.scq, 1, &wc));
  EXPECT_EQ(wc[0].status, IBV_WC_RNR_RETRY_EXC_ERR);
  EXPECT_EQ(StateOf(pair.a, qa), IBV_QPS_ERR);
  EXPECT_EQ(pair.b.dev->counters().rnr_naks_sent, 3u) << "first try + 2 retries";
  EXPECT_EQ(StateOf(pair.b, qb), IBV_QPS_RTS) << "RNR leaves the responder usable";
}

TEST(ErrorPathsTest, RnrThenReceivePostedSucceeds) {
  EnginePair pair;
  QpOptions opt;
  opt.rnr_retry = 7;  // infinite
  uint32_t qa, qb;
  pair.Connect(opt, &qa, &qb);
  FillPattern(pair.a.at(0), 100, 1);
  ASSERT_TRUE(pair.a.dev->PostSend(qa, MakeSend(1, IBV_WR_SEND, pair.a, 0, 100)).ok());
  pair.RunUntil([&] { return pair.b.dev->counters().rnr_naks_sent >= 20; });
  ASSERT_TRUE(pair.b.dev->PostRecv(qb, MakeRecv(5, pair.b, 0, 100)).ok());
  std::vector<ibv_wc> wc;
  ASSERT_TRUE(pair.WaitCq(pair.b, pair.b.rcq, 1, &wc));
  EXPECT_EQ(wc[0].status, IBV_WC_SUCCESS);
  EXPECT_EQ(0, std::memcmp(pair.a.at(0), pair.b.at(0), 100));
}

TEST(ErrorPathsTest, RetryExhaustedWhenPeerIsGone) {
  EnginePair pair;
  QpOptions opt;
  opt.retry_cnt = 3;
  opt.timeout = 10;  // 4.2 ms
  uint32_t qa, qb;
  pair.Connect(opt, &qa, &qb);
  FaultConfig drop_all;
  drop_all.drop = 1.0;
  pair.link().SetFaults(TestLink::kAtoB, drop_all);
  uint64_t start = pair.now();
  ASSERT_TRUE(pair.a.dev->PostSend(qa, MakeSend(1, IBV_WR_SEND, pair.a, 0, 10)).ok());
  ASSERT_TRUE(pair.a.dev->PostSend(qa, MakeSend(2, IBV_WR_SEND, pair.a, 0, 10)).ok());
  std::vector<ibv_wc> wc;
  ASSERT_TRUE(pair.WaitCq(pair.a, pair.a.scq, 2, &wc));
  EXPECT_EQ(wc[0].status, IBV_WC_RETRY_EXC_ERR);
  EXPECT_EQ(wc[1].status, IBV_WC_WR_FLUSH_ERR);
  EXPECT_EQ(pair.a.dev->counters().timeouts, 4u) << "three retries, then the error";
  // (retry_cnt + 1) timeouts of 4.096us * 2^10 each, never earlier.
  EXPECT_GE(pair.now() - start, 4 * 4096ull * 1024);
  EXPECT_EQ(StateOf(pair.a, qa), IBV_QPS_ERR);
}

TEST(ErrorPathsTest, LocalProtectionError) {
  EnginePair pair;
  uint32_t qa, qb;
  pair.Connect(QpOptions{}, &qa, &qb);
  SendWr w = MakeSend(1, IBV_WR_SEND, pair.a, 0, 100);
  w.sg_list[0].lkey = pair.a.mr.lkey ^ 0x100;  // a key that names no MR
  ASSERT_TRUE(pair.a.dev->PostSend(qa, w).ok());
  std::vector<ibv_wc> wc;
  ASSERT_TRUE(pair.WaitCq(pair.a, pair.a.scq, 1, &wc));
  EXPECT_EQ(wc[0].status, IBV_WC_LOC_PROT_ERR);
}

TEST(ErrorPathsTest, ReceiveBufferTooSmall) {
  EnginePair pair;
  uint32_t qa, qb;
  pair.Connect(QpOptions{}, &qa, &qb);
  ASSERT_TRUE(pair.b.dev->PostRecv(qb, MakeRecv(1, pair.b, 0, 100)).ok());
  ASSERT_TRUE(pair.a.dev->PostSend(qa, MakeSend(1, IBV_WR_SEND, pair.a, 0, 3000)).ok());
  std::vector<ibv_wc> swc, rwc;
  ASSERT_TRUE(pair.WaitCq(pair.a, pair.a.scq, 1, &swc));
  ASSERT_TRUE(pair.WaitCq(pair.b, pair.b.rcq, 1, &rwc));
  EXPECT_EQ(swc[0].status, IBV_WC_REM_INV_REQ_ERR);
  EXPECT_EQ(rwc[0].status, IBV_WC_LOC_LEN_ERR);
  EXPECT_EQ(StateOf(pair.b, qb), IBV_QPS_ERR);
}

TEST(ErrorPathsTest, MisalignedAtomicIsInvalidRequest) {
  EnginePair pair;
  uint32_t qa, qb;
  pair.Connect(QpOptions{}, &qa, &qb);
  SendWr w = MakeSend(1, IBV_WR_ATOMIC_FETCH_AND_ADD, pair.a, 0, 8);
  w.remote_addr = pair.b.va(4);
  w.rkey = pair.b.mr.rkey;
  ASSERT_TRUE(pair.a.dev->PostSend(qa, w).ok());
  std::vector<ibv_wc> wc;
  ASSERT_TRUE(pair.WaitCq(pair.a, pair.a.scq, 1, &wc));
  EXPECT_EQ(wc[0].status, IBV_WC_REM_INV_REQ_ERR);
}

TEST(ErrorPathsTest, ErrorStateFlushesReceivesAndNewPosts) {
  EnginePair pair;
  uint32_t qa, qb;
  pair.Connect(QpOptions{}, &qa, &qb);
  ASSERT_TRUE(pair.b.dev->PostRecv(qb, MakeRecv(1, pair.b, 0, 100)).ok());
  ASSERT_TRUE(pair.b.dev->PostRecv(qb, MakeRecv(2, pair.b, 0, 100)).ok());
  ibv_qp_attr attr{};
  attr.qp_state = IBV_QPS_ERR;
  ASSERT_TRUE(pair.b.dev->ModifyQp(qb, attr, IBV_QP_STATE).ok());
  ASSERT_TRUE(pair.b.dev->PostRecv(qb, MakeRecv(3, pair.b, 0, 100)).ok());
  ASSERT_TRUE(pair.b.dev->PostSend(qb, MakeSend(4, IBV_WR_SEND, pair.b, 0, 1)).ok());
  ibv_wc wc[8];
  ASSERT_EQ(*pair.b.dev->PollCq(pair.b.rcq, wc, 8), 3);
  for (int i = 0; i < 3; ++i) {
    EXPECT_EQ(wc[i].status, IBV_WC_WR_FLUSH_ERR);
    EXPECT_EQ(wc[i].wr_id, static_cast<uint64_t>(i + 1));
  }
  ASSERT_EQ(*pair.b.dev->PollCq(pair.b.scq, wc, 8), 1);
  EXPECT_EQ(wc[0].status, IBV_WC_WR_FLUSH_ERR);
  EXPECT_EQ(wc[0].wr_id, 4u);
}

TEST(ErrorPathsTest, CqOverrunRaisesCqError) {
  EnginePair pair;
  uint32_t small = *pair.b.dev->CreateCq(2);
  QpInitAttr init;
  init.type = IBV_QPT_RC;
  init.pd = pair.b.pd;
  init.send_cq = small;
  init.recv_cq = small;
  init.max_send_wr = 8;
  init.max_recv_wr = 8;
  uint32_t q = *pair.b.dev->CreateQp(init);
  ibv_qp_attr to_init{};
  to_init.qp_state = IBV_QPS_INIT;
  to_init.port_num = 1;
  ASSERT_TRUE(pair.b.dev
                  ->ModifyQp(q, to_init,
                             IBV_QP_STATE | IBV_QP_PKEY_INDEX | IBV_QP_PORT | IBV_QP_ACCESS_FLAGS)
                  .ok());
  for (int i = 0; i < 4; ++i) ASSERT_TRUE(pair.b.dev->PostRecv(q, MakeRecv(i, pair.b, 0, 1)).ok());
  ibv_qp_attr attr{};
  attr.qp_state = IBV_QPS_ERR;
  ASSERT_TRUE(pair.b.dev->ModifyQp(q, attr, IBV_QP_STATE).ok());
  AsyncEvent ev;
  ASSERT_TRUE(pair.b.dev->PollAsyncEvent(&ev));
  EXPECT_EQ(ev.type, IBV_EVENT_CQ_ERR);
  EXPECT_EQ(ev.element, small);
}

}  // namespace
}  // namespace vrdma::driver::testing

namespace vrdma::driver::testing {
namespace {

TEST(ErrorPathsTest, BadReceiveKeyIsRemoteOperationalError) {
  EnginePair pair;
  uint32_t qa, qb;
  pair.Connect(QpOptions{}, &qa, &qb);
  RecvWr r = MakeRecv(1, pair.b, 0, 100);
  r.sg_list[0].lkey ^= 0x100;  // names no MR
  ASSERT_TRUE(pair.b.dev->PostRecv(qb, r).ok());
  ASSERT_TRUE(pair.a.dev->PostSend(qa, MakeSend(1, IBV_WR_SEND, pair.a, 0, 50)).ok());
  std::vector<ibv_wc> swc, rwc;
  ASSERT_TRUE(pair.WaitCq(pair.a, pair.a.scq, 1, &swc));
  ASSERT_TRUE(pair.WaitCq(pair.b, pair.b.rcq, 1, &rwc));
  EXPECT_EQ(swc[0].status, IBV_WC_REM_OP_ERR);
  EXPECT_EQ(rwc[0].status, IBV_WC_LOC_PROT_ERR);
}

TEST(ErrorPathsTest, WriteWithImmediateWaitsForAReceive) {
  EnginePair pair;
  uint32_t qa, qb;
  pair.Connect(QpOptions{}, &qa, &qb);
  FillPattern(pair.a.at(0), 5000, 8);
  SendWr w = MakeSend(1, IBV_WR_RDMA_WRITE_WITH_IMM, pair.a, 0, 5000);
  w.remote_addr = pair.b.va(10000);
  w.rkey = pair.b.mr.rkey;
  ASSERT_TRUE(pair.a.dev->PostSend(qa, w).ok());
  ASSERT_TRUE(pair.RunUntil([&] { return pair.b.dev->counters().rnr_naks_sent >= 3; }));
  ASSERT_TRUE(pair.b.dev->PostRecv(qb, MakeRecv(9, pair.b, 0, 0)).ok());
  std::vector<ibv_wc> rwc;
  ASSERT_TRUE(pair.WaitCq(pair.b, pair.b.rcq, 1, &rwc));
  EXPECT_EQ(rwc[0].opcode, IBV_WC_RECV_RDMA_WITH_IMM);
  EXPECT_EQ(rwc[0].wr_id, 9u);
  EXPECT_EQ(0, std::memcmp(pair.a.at(0), pair.b.at(10000), 5000));
}

}  // namespace
}  // namespace vrdma::driver::testing

namespace vrdma::driver::testing {
namespace {

TEST(ErrorPathsTest, LongRnrStallDoesNotUseTheRetryCount) {
  EnginePair pair;
  QpOptions opt;
  opt.retry_cnt = 1;  // sequence NAKs caused by the stall would exhaust this at once
  opt.rnr_retry = 7;
  uint32_t qa, qb;
  pair.Connect(opt, &qa, &qb);
  FillPattern(pair.a.at(0), 20000, 2);  // 20 packets in flight behind the RNR-NAKed one
  ASSERT_TRUE(pair.a.dev->PostSend(qa, MakeSend(1, IBV_WR_SEND, pair.a, 0, 20000)).ok());
  ASSERT_TRUE(pair.RunUntil([&] { return pair.b.dev->counters().rnr_naks_sent >= 20; }));
  EXPECT_EQ(pair.b.dev->counters().seq_naks_sent, 0u);
  ASSERT_TRUE(pair.b.dev->PostRecv(qb, MakeRecv(1, pair.b, 0, 20000)).ok());
  std::vector<ibv_wc> wc;
  ASSERT_TRUE(pair.WaitCq(pair.a, pair.a.scq, 1, &wc));
  EXPECT_EQ(wc[0].status, IBV_WC_SUCCESS);
  EXPECT_EQ(0, std::memcmp(pair.a.at(0), pair.b.at(0), 20000));
}

}  // namespace
}  // namespace vrdma::driver::testing

namespace vrdma::driver::testing {
namespace {

// Posts an RDMA WRITE of `len` bytes of `fill` from a's memory to the start of b's.
void PostWriteToPeer(EnginePair& pair, uint32_t qa, uint64_t wr_id, uint32_t len, uint8_t fill) {
  std::memset(pair.a.at(0), fill, len);
  SendWr w = MakeSend(wr_id, IBV_WR_RDMA_WRITE, pair.a, 0, len);
  w.remote_addr = pair.b.va(0);
  w.rkey = pair.b.mr.rkey;
  ASSERT_TRUE(pair.a.dev->PostSend(qa, w).ok());
}

// Three send completions: wr_ids 1, 2, 3 with success, `second`, flush.
void ExpectSecondFailsInOrder(EnginePair& pair, ibv_wc_status second) {
  std::vector<ibv_wc> wc;
  ASSERT_TRUE(pair.WaitCq(pair.a, pair.a.scq, 3, &wc));
  EXPECT_EQ(wc[0].wr_id, 1u);
  EXPECT_EQ(wc[0].status, IBV_WC_SUCCESS);
  EXPECT_EQ(wc[1].wr_id, 2u);
  EXPECT_EQ(wc[1].status, second);
  EXPECT_EQ(wc[2].wr_id, 3u);
  EXPECT_EQ(wc[2].status, IBV_WC_WR_FLUSH_ERR);
}

// A WQE that fails locally when the requester reaches it fails alone and in post order:
// the WQEs before it (already on the wire) complete normally, it completes with its
// error, the ones after it are flushed (IBTA 10.8.3.1: completions in WQE order).
TEST(ErrorPathsTest, LocalErrorFailsThatWqeAfterTheEarlierOnes) {
  EnginePair pair;
  uint32_t qa, qb;
  pair.Connect(QpOptions{}, &qa, &qb);
  Host& a = pair.a;
  Host& b = pair.b;
  ASSERT_NO_FATAL_FAILURE(PostWriteToPeer(pair, qa, 1, 65536, 0x5a));
  SendWr fa = MakeSend(2, IBV_WR_ATOMIC_FETCH_AND_ADD, a, 70000, 4);  // 4 B: too short
  fa.remote_addr = b.va(70000);
  fa.rkey = b.mr.rkey;
  ASSERT_TRUE(a.dev->PostSend(qa, fa).ok());
  ASSERT_TRUE(a.dev->PostSend(qa, MakeSend(3, IBV_WR_SEND, a, 0, 10)).ok());
  ExpectSecondFailsInOrder(pair, IBV_WC_LOC_LEN_ERR);
  EXPECT_EQ(std::memcmp(b.at(0), a.at(0), 65536), 0);
  EXPECT_EQ(StateOf(a, qa), IBV_QPS_ERR);
}

// A WQE the device refuses (RejectSend: malformed in the client's ring) behaves the same:
// the valid WQEs posted before it execute, then it fails, then the QP is in Error.
TEST(ErrorPathsTest, RejectedWqeFailsAfterTheEarlierOnesExecute) {
  EnginePair pair;
  uint32_t qa, qb;
  pair.Connect(QpOptions{}, &qa, &qb);
  Host& a = pair.a;
  Host& b = pair.b;
  ASSERT_NO_FATAL_FAILURE(PostWriteToPeer(pair, qa, 1, 32768, 0x6b));
  ASSERT_TRUE(a.dev->RejectSend(qa, 2, IBV_WR_SEND, IBV_WC_LOC_QP_OP_ERR).ok());
  ASSERT_TRUE(a.dev->PostSend(qa, MakeSend(3, IBV_WR_SEND, a, 0, 10)).ok());
  ExpectSecondFailsInOrder(pair, IBV_WC_LOC_QP_OP_ERR);
  EXPECT_EQ(std::memcmp(b.at(0), a.at(0), 32768), 0);
  EXPECT_EQ(StateOf(a, qa), IBV_QPS_ERR);
}

// Posting in place (SendSlot, PostSendSlot: the doorbell drain's way) checks the WR as
// PostSend does; a refused WR is never queued, and its slot is handed out again.
TEST(ErrorPathsTest, AWrPostedInPlaceIsCheckedAndARefusedOneNeverQueued) {
  EnginePair pair;
  QpOptions opt;
  opt.max_send_wr = 2;
  uint32_t qa, qb;
  pair.Connect(opt, &qa, &qb);
  Host& a = pair.a;
  Host& b = pair.b;
  EXPECT_EQ(a.dev->SendSlot(0xabcdef), nullptr) << "an unknown QP";
  SendWr* slot = a.dev->SendSlot(qa);
  ASSERT_NE(slot, nullptr);
  *slot = MakeSend(1, IBV_WR_SEND, a, 0, 100);
  slot->num_sge = kMaxSgePerWqe + 1;  // beyond the QP's max_send_sge
  EXPECT_EQ(a.dev->PostSendSlot(qa).code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(a.dev->SendSlot(qa), slot) << "the refused WR's slot is handed out again";
  *slot = MakeSend(2, IBV_WR_SEND, a, 0, 100);
  slot->opcode = IBV_WR_TSO;
  EXPECT_EQ(a.dev->PostSendSlot(qa).code(), absl::StatusCode::kInvalidArgument);
  FillPattern(a.at(0), 100, 21);
  *a.dev->SendSlot(qa) = MakeSend(3, IBV_WR_SEND, a, 0, 100);
  ASSERT_TRUE(a.dev->PostSendSlot(qa).ok());
  *a.dev->SendSlot(qa) = MakeSend(4, IBV_WR_SEND, a, 0, 100);
  ASSERT_TRUE(a.dev->PostSendSlot(qa).ok());
  EXPECT_EQ(a.dev->SendSlot(qa), nullptr) << "a full send queue";
  EXPECT_EQ(a.dev->PostSendSlot(qa).code(), absl::StatusCode::kResourceExhausted);
  ASSERT_TRUE(b.dev->PostRecv(qb, MakeRecv(1, b, 0, 100)).ok());
  ASSERT_TRUE(b.dev->PostRecv(qb, MakeRecv(2, b, 4096, 100)).ok());
  std::vector<ibv_wc> swc, rwc;
  ASSERT_TRUE(pair.WaitCq(a, a.scq, 2, &swc));
  ASSERT_TRUE(pair.WaitCq(b, b.rcq, 2, &rwc));
  EXPECT_EQ(swc[0].wr_id, 3u);
  EXPECT_EQ(swc[1].wr_id, 4u);
  for (const ibv_wc& wc : swc) EXPECT_EQ(wc.status, IBV_WC_SUCCESS);
  EXPECT_EQ(std::memcmp(b.at(0), a.at(0), 100), 0);
  EXPECT_EQ(std::memcmp(b.at(4096), a.at(0), 100), 0);
  pair.RunUntil([] { return false; }, 1'000'000);
  ibv_wc extra;
  EXPECT_EQ(*a.dev->PollCq(a.scq, &extra, 1), 0) << "the refused WRs complete nowhere";
  EXPECT_EQ(StateOf(a, qa), IBV_QPS_RTS);
}

}  // namespace
}  // namespace vrdma::driver::testing
