// The data checker: every verbs opcode across two vdevs of one vrdmad, through the public
// libibverbs API only (so each provider op is reached the way applications reach it),
// with every byte moved compared. Runs under vrdma-run (tests/integration/verbs_check.sh),
// with vdev_a and vdev_b bound to interfaces 10.77.0.1 and 10.77.0.2.
#include <arpa/inet.h>
#include <fcntl.h>
#include <gtest/gtest.h>
#include <infiniband/verbs.h>
#include <poll.h>
#include <pthread.h>
#include <sys/mman.h>
#include <sys/shm.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <new>
#include <random>
#include <span>
#include <string>
#include <thread>
#include <vector>

#include "tests/lib/huge_pages.h"
#include "tests/lib/verbs_peer.h"

namespace {

using vrdma::testing::ConnectTo;
using vrdma::testing::GidIndex;
using vrdma::testing::OpenByName;
using vrdma::testing::PollOne;
using vrdma::testing::ToInit;

constexpr size_t kBuf = 1 << 20;

// Waits for an async event of `type`, acknowledging others on the way (a port's
// GID_CHANGE, say, may come first: applications see unrelated events too).
bool WaitEvent(ibv_context* ctx, ibv_event_type type, ibv_async_event* out, int timeout_ms) {
  auto end = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms);
  while (std::chrono::steady_clock::now() < end) {
    pollfd p{ctx->async_fd, POLLIN, 0};
    if (poll(&p, 1, 100) != 1) continue;
    if (ibv_get_async_event(ctx, out) != 0) return false;
    if (out->event_type == type) return true;
    ibv_ack_async_event(out);
  }
  return false;
}

struct Side {
  ibv_context* ctx = nullptr;
  ibv_pd* pd = nullptr;
  ibv_cq* cq = nullptr;
  ibv_qp* qp = nullptr;
  ibv_srq* srq = nullptr;
  std::vector<uint8_t> buf;
  ibv_mr* mr = nullptr;
  ibv_gid gid{};

  void Open(const char* name) {
    ctx = OpenByName(name);
    ASSERT_NE(ctx, nullptr) << name;
    pd = ibv_alloc_pd(ctx);
    ASSERT_NE(pd, nullptr);
    cq = ibv_create_cq(ctx, 256, nullptr, nullptr, 0);
    ASSERT_NE(cq, nullptr);
    buf.assign(kBuf, 0);
    mr = ibv_reg_mr(pd, buf.data(), buf.size(),
                    IBV_ACCESS_LOCAL_WRITE | IBV_ACCESS_REMOTE_WRITE | IBV_ACCESS_REMOTE_READ |
                        IBV_ACCESS_REMOTE_ATOMIC);
    ASSERT_NE(mr, nullptr) << std::strerror(errno);
    ASSERT_EQ(ibv_query_gid(ctx, 1, GidIndex(), &gid), 0);
  }
  void CreateQp(ibv_qp_type type, bool ex_api) {
    if (ex_api) {
      ibv_qp_init_attr_ex a{};
      a.send_cq = cq;
      a.recv_cq = cq;
      a.srq = srq;
      a.cap = {64, 64, 4, 4, 64};
      a.qp_type = type;
      a.comp_mask = IBV_QP_INIT_ATTR_PD | IBV_QP_INIT_ATTR_SEND_OPS_FLAGS;
      a.pd = pd;
      // What the transport has (a UD QP asking for RDMA is refused, as on mlx5).
      a.send_ops_flags = IBV_QP_EX_WITH_SEND | IBV_QP_EX_WITH_SEND_WITH_IMM;
      if (type != IBV_QPT_UD) {
        a.send_ops_flags |= IBV_QP_EX_WITH_RDMA_WRITE | IBV_QP_EX_WITH_RDMA_WRITE_WITH_IMM |
                            IBV_QP_EX_WITH_BIND_MW | IBV_QP_EX_WITH_LOCAL_INV;
      }
      if (type == IBV_QPT_RC) {
        a.send_ops_flags |= IBV_QP_EX_WITH_RDMA_READ | IBV_QP_EX_WITH_ATOMIC_CMP_AND_SWP |
                            IBV_QP_EX_WITH_ATOMIC_FETCH_AND_ADD | IBV_QP_EX_WITH_SEND_WITH_INV;
      }
      qp = ibv_create_qp_ex(ctx, &a);
    } else {
      ibv_qp_init_attr a{};
      a.send_cq = cq;
      a.recv_cq = cq;
      a.srq = srq;
      a.cap = {64, 64, 4, 4, 64};
      a.qp_type = type;
      qp = ibv_create_qp(pd, &a);
    }
    ASSERT_NE(qp, nullptr) << std::strerror(errno);
  }
  void Close() {
    if (qp) ibv_destroy_qp(qp);
    if (srq) ibv_destroy_srq(srq);
    if (mr) ibv_dereg_mr(mr);
    if (cq) ibv_destroy_cq(cq);
    if (pd) ibv_dealloc_pd(pd);
    if (ctx) ibv_close_device(ctx);
    *this = Side{};
  }
};

void Connect(Side& me, const Side& peer, ibv_qp_type type) {
  ToInit(me.qp, type);
  ibv_qp_attr a{};
  a.qp_state = IBV_QPS_RTR;
  int mask = IBV_QP_STATE;
  if (type != IBV_QPT_UD) {
    a.path_mtu = IBV_MTU_1024;
    a.dest_qp_num = peer.qp->qp_num;
    a.rq_psn = 100;
    a.ah_attr.is_global = 1;
    a.ah_attr.grh.dgid = peer.gid;
    a.ah_attr.grh.sgid_index = GidIndex();
    a.ah_attr.grh.hop_limit = 64;
    a.ah_attr.port_num = 1;
    mask |= IBV_QP_PATH_MTU | IBV_QP_DEST_QPN | IBV_QP_RQ_PSN | IBV_QP_AV;
    if (type == IBV_QPT_RC) {
      a.max_dest_rd_atomic = 16;
      a.min_rnr_timer = 1;
      mask |= IBV_QP_MAX_DEST_RD_ATOMIC | IBV_QP_MIN_RNR_TIMER;
    }
  }
  ASSERT_EQ(ibv_modify_qp(me.qp, &a, mask), 0);
  if (type != IBV_QPT_UD) {
    // ibv_query_qp gives the address vector back as it was given: the GID index is the
    // device's own (vdev_b's entries sit past vdev_a's in the pdev's table).
    ibv_qp_attr q{};
    ibv_qp_init_attr qi{};
    ASSERT_EQ(ibv_query_qp(me.qp, &q, IBV_QP_AV | IBV_QP_DEST_QPN, &qi), 0);
    EXPECT_EQ(q.ah_attr.grh.sgid_index, GidIndex());
    EXPECT_EQ(std::memcmp(q.ah_attr.grh.dgid.raw, peer.gid.raw, 16), 0);
    EXPECT_EQ(q.dest_qp_num, peer.qp->qp_num);
  }
  a = ibv_qp_attr{};
  a.qp_state = IBV_QPS_RTS;
  a.sq_psn = 100;
  mask = IBV_QP_STATE | IBV_QP_SQ_PSN;
  if (type == IBV_QPT_RC) {
    a.timeout = 14;
    a.retry_cnt = 7;
    a.rnr_retry = 7;
    a.max_rd_atomic = 16;
    mask |= IBV_QP_TIMEOUT | IBV_QP_RETRY_CNT | IBV_QP_RNR_RETRY | IBV_QP_MAX_QP_RD_ATOMIC;
  }
  ASSERT_EQ(ibv_modify_qp(me.qp, &a, mask), 0);
}

void Fill(std::vector<uint8_t>& v, size_t off, size_t len, uint32_t seed) {
  std::mt19937 g(seed);
  for (size_t i = 0; i < len; ++i) v[off + i] = static_cast<uint8_t>(g());
}

// One send WR through either API: the classic ibv_post_send or the ibv_wr_* calls.
struct Wr {
  ibv_wr_opcode op = IBV_WR_SEND;
  uint64_t wr_id = 1;
  unsigned flags = IBV_SEND_SIGNALED;
  std::vector<ibv_sge> sges;
  uint32_t imm = 0;
  uint64_t raddr = 0;
  uint32_t rkey = 0;
  uint64_t compare_add = 0, swap = 0;
};

int Post(ibv_qp* qp, const Wr& w, bool ex_api) {
  if (!ex_api) {
    ibv_send_wr wr{};
    wr.wr_id = w.wr_id;
    wr.opcode = w.op;
    wr.send_flags = w.flags;
    wr.sg_list = const_cast<ibv_sge*>(w.sges.data());
    wr.num_sge = static_cast<int>(w.sges.size());
    wr.imm_data = w.imm;
    if (w.op == IBV_WR_ATOMIC_CMP_AND_SWP || w.op == IBV_WR_ATOMIC_FETCH_AND_ADD) {
      wr.wr.atomic = {w.raddr, w.compare_add, w.swap, w.rkey};
    } else {
      wr.wr.rdma = {w.raddr, w.rkey};
    }
    ibv_send_wr* bad;
    return ibv_post_send(qp, &wr, &bad);
  }
  ibv_qp_ex* x = ibv_qp_to_qp_ex(qp);
  if (!x) return EINVAL;
  ibv_wr_start(x);
  x->wr_id = w.wr_id;
  x->wr_flags = w.flags;
  switch (w.op) {
    case IBV_WR_SEND:
      ibv_wr_send(x);
      break;
    case IBV_WR_SEND_WITH_IMM:
      ibv_wr_send_imm(x, w.imm);
      break;
    case IBV_WR_SEND_WITH_INV:
      ibv_wr_send_inv(x, w.imm);
      break;
    case IBV_WR_RDMA_WRITE:
      ibv_wr_rdma_write(x, w.rkey, w.raddr);
      break;
    case IBV_WR_RDMA_WRITE_WITH_IMM:
      ibv_wr_rdma_write_imm(x, w.rkey, w.raddr, w.imm);
      break;
    case IBV_WR_RDMA_READ:
      ibv_wr_rdma_read(x, w.rkey, w.raddr);
      break;
    case IBV_WR_ATOMIC_CMP_AND_SWP:
      ibv_wr_atomic_cmp_swp(x, w.rkey, w.raddr, w.compare_add, w.swap);
      break;
    case IBV_WR_ATOMIC_FETCH_AND_ADD:
      ibv_wr_atomic_fetch_add(x, w.rkey, w.raddr, w.compare_add);
      break;
    case IBV_WR_ATOMIC_WRITE:
      ibv_wr_atomic_write(x, w.rkey, w.raddr, &w.compare_add);
      return ibv_wr_complete(x);  // no SGE: the 8 bytes are the call's
    default:
      break;
  }
  if (w.flags & IBV_SEND_INLINE) {
    std::vector<ibv_data_buf> bufs;
    for (const auto& s : w.sges) bufs.push_back({reinterpret_cast<void*>(s.addr), s.length});
    ibv_wr_set_inline_data_list(x, bufs.size(), bufs.data());
  } else {
    ibv_wr_set_sge_list(x, w.sges.size(), w.sges.data());
  }
  return ibv_wr_complete(x);
}

void PostRecv(ibv_qp* qp, std::vector<ibv_sge> sges, uint64_t wr_id) {
  ibv_recv_wr wr{};
  wr.wr_id = wr_id;
  wr.sg_list = sges.data();
  wr.num_sge = static_cast<int>(sges.size());
  ibv_recv_wr* bad;
  ASSERT_EQ(ibv_post_recv(qp, &wr, &bad), 0);
}

class RcTest : public ::testing::TestWithParam<bool> {
 protected:
  void SetUp() override {
    ASSERT_NO_FATAL_FAILURE(a.Open("vdev_a"));
    ASSERT_NO_FATAL_FAILURE(b.Open("vdev_b"));
    ASSERT_NO_FATAL_FAILURE(a.CreateQp(IBV_QPT_RC, GetParam()));
    ASSERT_NO_FATAL_FAILURE(b.CreateQp(IBV_QPT_RC, GetParam()));
    ASSERT_NO_FATAL_FAILURE(Connect(a, b, IBV_QPT_RC));
    ASSERT_NO_FATAL_FAILURE(Connect(b, a, IBV_QPT_RC));
  }
  void TearDown() override {
    a.Close();
    b.Close();
  }
  ibv_sge Sge(Side& s, size_t off, uint32_t len) {
    return {reinterpret_cast<uintptr_t>(s.buf.data()) + off, len, s.mr->lkey};
  }
  uint64_t Addr(Side& s, size_t off) { return reinterpret_cast<uintptr_t>(s.buf.data()) + off; }
  // Posts on a, expects one successful completion on a with `opcode`.
  void Run(const Wr& w, ibv_wc_opcode opcode) {
    ASSERT_EQ(Post(a.qp, w, GetParam()), 0);
    ibv_wc wc;
    ASSERT_TRUE(PollOne(a.cq, &wc));
    EXPECT_EQ(wc.status, IBV_WC_SUCCESS) << ibv_wc_status_str(wc.status);
    EXPECT_EQ(wc.opcode, opcode);
    EXPECT_EQ(wc.wr_id, w.wr_id);
  }
  Side a, b;
};

TEST_P(RcTest, SendGathersAndScatters) {
  Fill(a.buf, 0, 3000, 1);
  PostRecv(b.qp, {Sge(b, 10000, 1000), Sge(b, 20000, 4000)}, 77);
  Wr w;
  w.sges = {Sge(a, 0, 1000), Sge(a, 1000, 1500), Sge(a, 2500, 500)};
  ASSERT_NO_FATAL_FAILURE(Run(w, IBV_WC_SEND));
  ibv_wc wc;
  ASSERT_TRUE(PollOne(b.cq, &wc));
  EXPECT_EQ(wc.status, IBV_WC_SUCCESS);
  EXPECT_EQ(wc.opcode, IBV_WC_RECV);
  EXPECT_EQ(wc.wr_id, 77u);
  EXPECT_EQ(wc.byte_len, 3000u);
  EXPECT_EQ(wc.qp_num, b.qp->qp_num);
  EXPECT_EQ(0, std::memcmp(&b.buf[10000], &a.buf[0], 1000));
  EXPECT_EQ(0, std::memcmp(&b.buf[20000], &a.buf[1000], 2000));
}

// A queue holds max_send_wr / max_recv_wr WQEs until they complete: one more is ENOMEM
// (ibv_post_send(3)), however fast the device took the others into its engine; room
// comes back as they complete. Sends to a peer with no receive posted wait on RNR NAKs
// (rnr_retry 7: for ever), so they stay outstanding until b posts its receives.
TEST_P(RcTest, QueuesHoldTheirDepthUntilCompletion) {
  ibv_qp_attr qa{};
  ibv_qp_init_attr qi{};
  ASSERT_EQ(ibv_query_qp(a.qp, &qa, IBV_QP_CAP, &qi), 0);
  const uint32_t sq_depth = qa.cap.max_send_wr, rq_depth = qa.cap.max_recv_wr;
  ASSERT_GE(sq_depth, 64u);
  Fill(a.buf, 0, 64, 5);
  Wr w;
  w.sges = {Sge(a, 0, 64)};
  for (uint32_t i = 0; i < sq_depth; ++i) {
    w.wr_id = i;
    ASSERT_EQ(Post(a.qp, w, GetParam()), 0) << i;
  }
  std::this_thread::sleep_for(std::chrono::milliseconds(50));  // the engine takes them
  w.wr_id = 9999;
  EXPECT_EQ(Post(a.qp, w, GetParam()), ENOMEM);
  // A receive queue the same way, on a QP of b's that nothing sends to (b.qp's receives
  // are taken by a's retried sends as soon as they are posted).
  {
    ibv_qp_init_attr xa{};
    xa.send_cq = b.cq;
    xa.recv_cq = b.cq;
    xa.cap = {64, 64, 4, 4, 64};
    xa.qp_type = IBV_QPT_RC;
    ibv_qp* x = ibv_create_qp(b.pd, &xa);
    ASSERT_NE(x, nullptr);
    ASSERT_EQ(xa.cap.max_recv_wr, rq_depth);
    ASSERT_NO_FATAL_FAILURE(ToInit(x, IBV_QPT_RC));
    for (uint32_t i = 0; i < rq_depth; ++i) PostRecv(x, {Sge(b, 64 * (i % 64), 64)}, i);
    ibv_sge sge = Sge(b, 0, 64);
    ibv_recv_wr rwr{};
    rwr.sg_list = &sge;
    rwr.num_sge = 1;
    ibv_recv_wr* bad = nullptr;
    EXPECT_EQ(ibv_post_recv(x, &rwr, &bad), ENOMEM);
    EXPECT_EQ(bad, &rwr);
    EXPECT_EQ(ibv_destroy_qp(x), 0);
  }
  for (uint32_t i = 0; i < rq_depth; ++i) PostRecv(b.qp, {Sge(b, 64 * (i % 64), 64)}, i);
  // The receives let the sends complete, in order and intact.
  ibv_wc wc;
  for (uint32_t i = 0; i < sq_depth; ++i) {
    ASSERT_TRUE(PollOne(a.cq, &wc)) << i;
    EXPECT_EQ(wc.status, IBV_WC_SUCCESS) << ibv_wc_status_str(wc.status);
    EXPECT_EQ(wc.wr_id, i);
  }
  for (uint32_t i = 0; i < std::min(sq_depth, rq_depth); ++i) {
    ASSERT_TRUE(PollOne(b.cq, &wc)) << i;
    EXPECT_EQ(wc.status, IBV_WC_SUCCESS);
    EXPECT_EQ(wc.wr_id, i);
  }
  EXPECT_EQ(0, std::memcmp(&b.buf[0], &a.buf[0], 64));
  // Room again, on both queues.
  PostRecv(b.qp, {Sge(b, 0, 64)}, 7777);
  w.wr_id = 8888;
  ASSERT_NO_FATAL_FAILURE(Run(w, IBV_WC_SEND));
}

TEST_P(RcTest, SendWithImmediateAndInline) {
  Fill(a.buf, 0, 64, 2);
  PostRecv(b.qp, {Sge(b, 0, 4096)}, 1);
  PostRecv(b.qp, {Sge(b, 4096, 4096)}, 2);
  Wr w;
  w.op = IBV_WR_SEND_WITH_IMM;
  w.imm = htonl(0xabcdef01);
  w.sges = {Sge(a, 0, 64)};
  ASSERT_NO_FATAL_FAILURE(Run(w, IBV_WC_SEND));
  Wr inl;
  inl.flags |= IBV_SEND_INLINE;
  inl.sges = {Sge(a, 0, 40)};
  ASSERT_NO_FATAL_FAILURE(Run(inl, IBV_WC_SEND));
  ibv_wc wc;
  ASSERT_TRUE(PollOne(b.cq, &wc));
  EXPECT_EQ(wc.opcode, IBV_WC_RECV);
  EXPECT_TRUE(wc.wc_flags & IBV_WC_WITH_IMM);
  EXPECT_EQ(wc.imm_data, htonl(0xabcdef01));
  EXPECT_EQ(wc.byte_len, 64u);
  EXPECT_EQ(0, std::memcmp(&b.buf[0], &a.buf[0], 64));
  ASSERT_TRUE(PollOne(b.cq, &wc));
  EXPECT_EQ(wc.byte_len, 40u);
  EXPECT_EQ(0, std::memcmp(&b.buf[4096], &a.buf[0], 40));
}

TEST_P(RcTest, RdmaWriteAndWriteWithImmediate) {
  Fill(a.buf, 0, kBuf / 2, 3);
  Wr w;
  w.op = IBV_WR_RDMA_WRITE;
  w.sges = {Sge(a, 0, kBuf / 2)};
  w.raddr = Addr(b, kBuf / 2);
  w.rkey = b.mr->rkey;
  ASSERT_NO_FATAL_FAILURE(Run(w, IBV_WC_RDMA_WRITE));
  EXPECT_EQ(0, std::memcmp(&b.buf[kBuf / 2], &a.buf[0], kBuf / 2));
  PostRecv(b.qp, {}, 9);
  Fill(a.buf, 0, 5000, 4);
  w.op = IBV_WR_RDMA_WRITE_WITH_IMM;
  w.imm = htonl(42);
  w.sges = {Sge(a, 0, 5000)};
  w.raddr = Addr(b, 100);
  ASSERT_NO_FATAL_FAILURE(Run(w, IBV_WC_RDMA_WRITE));
  ibv_wc wc;
  ASSERT_TRUE(PollOne(b.cq, &wc));
  EXPECT_EQ(wc.status, IBV_WC_SUCCESS);
  EXPECT_EQ(wc.opcode, IBV_WC_RECV_RDMA_WITH_IMM);
  EXPECT_EQ(wc.imm_data, htonl(42));
  EXPECT_EQ(wc.wr_id, 9u);
  EXPECT_EQ(0, std::memcmp(&b.buf[100], &a.buf[0], 5000));
}

TEST_P(RcTest, RdmaRead) {
  Fill(b.buf, 0, kBuf, 5);
  Wr w;
  w.op = IBV_WR_RDMA_READ;
  w.sges = {Sge(a, 0, 300000), Sge(a, 500000, 200000)};
  w.raddr = Addr(b, 1000);
  w.rkey = b.mr->rkey;
  ASSERT_NO_FATAL_FAILURE(Run(w, IBV_WC_RDMA_READ));
  EXPECT_EQ(0, std::memcmp(&a.buf[0], &b.buf[1000], 300000));
  EXPECT_EQ(0, std::memcmp(&a.buf[500000], &b.buf[301000], 200000));
}

TEST_P(RcTest, Atomics) {
  uint64_t v = 1000;
  std::memcpy(&b.buf[64], &v, 8);
  Wr w;
  w.op = IBV_WR_ATOMIC_FETCH_AND_ADD;
  w.sges = {Sge(a, 0, 8)};
  w.raddr = Addr(b, 64);
  w.rkey = b.mr->rkey;
  w.compare_add = 5;
  ASSERT_NO_FATAL_FAILURE(Run(w, IBV_WC_FETCH_ADD));
  uint64_t got;
  std::memcpy(&got, &a.buf[0], 8);
  EXPECT_EQ(got, 1000u);
  std::memcpy(&got, &b.buf[64], 8);
  EXPECT_EQ(got, 1005u);
  w.op = IBV_WR_ATOMIC_CMP_AND_SWP;
  w.compare_add = 1005;
  w.swap = 77;
  ASSERT_NO_FATAL_FAILURE(Run(w, IBV_WC_COMP_SWAP));
  std::memcpy(&got, &a.buf[0], 8);
  EXPECT_EQ(got, 1005u);
  std::memcpy(&got, &b.buf[64], 8);
  EXPECT_EQ(got, 77u);
  w.compare_add = 1;  // no match: the remote value stays
  w.swap = 99;
  ASSERT_NO_FATAL_FAILURE(Run(w, IBV_WC_COMP_SWAP));
  std::memcpy(&got, &b.buf[64], 8);
  EXPECT_EQ(got, 77u);
  // IBTA 1.5 ATOMIC WRITE: 8 bytes stored at once (from an SGE with ibv_post_send, from
  // the call's argument with ibv_wr_atomic_write).
  const uint64_t word = 0x0123456789abcdefull;
  std::memcpy(&a.buf[0], &word, 8);
  w.op = IBV_WR_ATOMIC_WRITE;
  w.compare_add = word;
  ASSERT_NO_FATAL_FAILURE(Run(w, IBV_WC_ATOMIC_WRITE));
  std::memcpy(&got, &b.buf[64], 8);
  EXPECT_EQ(got, word);
  // Misaligned: the responder refuses it (Invalid Request), the value stays.
  w.raddr = Addr(b, 68);
  ASSERT_EQ(Post(a.qp, w, GetParam()), 0);
  ibv_wc wc;
  ASSERT_TRUE(PollOne(a.cq, &wc));
  if (std::getenv("VRDMA_TEST_LOSSY_WIRE") != nullptr && wc.status == IBV_WC_RETRY_EXC_ERR) {
    // The responder sends its NAK once and enters Error (an invalid request is fatal to
    // the responder's QP, IBTA 9.9.3), where it answers nothing: on a wire that drops
    // that one NAK the requester's retries go unanswered and end in retry exceeded, as
    // on any RoCE NIC. two_host_faults.sh says when the wire is lossy.
    std::memcpy(&got, &b.buf[64], 8);
    EXPECT_EQ(got, word);
    return;
  }
  EXPECT_EQ(wc.status, IBV_WC_REM_INV_REQ_ERR) << ibv_wc_status_str(wc.status);
  std::memcpy(&got, &b.buf[64], 8);
  EXPECT_EQ(got, word);
}

TEST_P(RcTest, SgePastMrIsLocalProtectionError) {
  Wr w;
  w.op = IBV_WR_RDMA_WRITE;
  w.sges = {Sge(a, kBuf - 100, 200)};  // 100 bytes past the end of the MR
  w.raddr = Addr(b, 0);
  w.rkey = b.mr->rkey;
  ASSERT_EQ(Post(a.qp, w, GetParam()), 0);
  ibv_wc wc;
  ASSERT_TRUE(PollOne(a.cq, &wc));
  EXPECT_EQ(wc.status, IBV_WC_LOC_PROT_ERR) << ibv_wc_status_str(wc.status);
}

TEST_P(RcTest, WrongRkeyIsRemoteAccessErrorAndAsyncEvent) {
  Wr w;
  w.op = IBV_WR_RDMA_WRITE;
  w.sges = {Sge(a, 0, 64)};
  w.raddr = Addr(b, 0);
  w.rkey = b.mr->rkey ^ 0x5500;
  ASSERT_EQ(Post(a.qp, w, GetParam()), 0);
  ibv_wc wc;
  ASSERT_TRUE(PollOne(a.cq, &wc));
  EXPECT_EQ(wc.status, IBV_WC_REM_ACCESS_ERR) << ibv_wc_status_str(wc.status);
  // The responder's QP reports the access violation as an async event.
  ibv_async_event ev;
  ASSERT_TRUE(WaitEvent(b.ctx, IBV_EVENT_QP_ACCESS_ERR, &ev, 5000));
  EXPECT_EQ(ev.element.qp, b.qp);
  ibv_ack_async_event(&ev);
}

INSTANTIATE_TEST_SUITE_P(PostApis, RcTest, ::testing::Values(false, true),
                         [](const auto& info) { return info.param ? "WrApi" : "PostSend"; });

// Registered memory and fork(): as on a NIC, the child gets private copies of the
// registered pages (its writes never reach the parent or the device), and the parent's
// registration keeps working.
TEST_P(RcTest, ForkedChildWritesStayInTheChild) {
  Fill(a.buf, 0, 8192, 11);
  std::vector<uint8_t> before(a.buf.begin(), a.buf.begin() + 8192);
  pid_t child = fork();
  ASSERT_GE(child, 0);
  if (child == 0) {
    std::memset(a.buf.data(), 0xee, a.buf.size());
    std::vector<std::string> churn;  // heap traffic in the child
    for (int i = 0; i < 2000; ++i) churn.push_back(std::string(100 + i % 300, 'x'));
    _exit(a.buf[100] == 0xee ? 0 : 1);
  }
  int status = 0;
  ASSERT_EQ(waitpid(child, &status, 0), child);
  ASSERT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0);
  EXPECT_TRUE(std::equal(before.begin(), before.end(), a.buf.begin())) << "child wrote into parent";
  // The parent's MR still reaches the device both ways.
  Wr w;
  w.op = IBV_WR_RDMA_WRITE;
  w.sges = {Sge(a, 0, 8192)};
  w.raddr = Addr(b, 0);
  w.rkey = b.mr->rkey;
  ASSERT_NO_FATAL_FAILURE(Run(w, IBV_WC_RDMA_WRITE));
  EXPECT_TRUE(std::equal(before.begin(), before.end(), b.buf.begin()));
  Fill(b.buf, 65536, 4096, 12);
  Wr r;
  r.op = IBV_WR_RDMA_READ;
  r.sges = {Sge(a, 65536, 4096)};
  r.raddr = Addr(b, 65536);
  r.rkey = b.mr->rkey;
  ASSERT_NO_FATAL_FAILURE(Run(r, IBV_WC_RDMA_READ));
  EXPECT_TRUE(std::equal(b.buf.begin() + 65536, b.buf.begin() + 69632, a.buf.begin() + 65536));
}

// Memory the application already shares registers by reference (the daemon maps the
// same object): System V shm, MAP_SHARED anonymous, the application's own sealed memfd.
// The peer READs it and WRITEs into it; the bytes are the application's. A memfd that
// could shrink is refused.
TEST_P(RcTest, SharedMemoryRegistersByReference) {
  constexpr size_t kLen = 1 << 16;
  int shmid = shmget(IPC_PRIVATE, kLen, IPC_CREAT | 0600);
  ASSERT_GE(shmid, 0);
  void* sysv = shmat(shmid, nullptr, 0);
  shmctl(shmid, IPC_RMID, nullptr);  // gone once detached
  ASSERT_NE(sysv, reinterpret_cast<void*>(-1));
  void* anon = mmap(nullptr, kLen, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
  int mfd = memfd_create("app-buffer", MFD_CLOEXEC | MFD_ALLOW_SEALING);
  ASSERT_EQ(ftruncate(mfd, kLen), 0);
  ASSERT_EQ(fcntl(mfd, F_ADD_SEALS, F_SEAL_SHRINK), 0);
  void* own = mmap(nullptr, kLen, PROT_READ | PROT_WRITE, MAP_SHARED, mfd, 0);
  const int access = IBV_ACCESS_LOCAL_WRITE | IBV_ACCESS_REMOTE_WRITE | IBV_ACCESS_REMOTE_READ;
  uint32_t seed = 40;
  for (void* region : {sysv, anon, own}) {
    SCOPED_TRACE(region == sysv   ? "System V shm"
                 : region == anon ? "MAP_SHARED anonymous"
                                  : "memfd");
    auto* p = static_cast<uint8_t*>(region);
    std::mt19937 g(seed++);
    for (size_t i = 0; i < kLen; ++i) p[i] = static_cast<uint8_t>(g());
    ibv_mr* mr = ibv_reg_mr(a.pd, p, kLen, access);
    ASSERT_NE(mr, nullptr) << std::strerror(errno);
    Wr r;  // b reads a's shared pages
    r.op = IBV_WR_RDMA_READ;
    r.sges = {{reinterpret_cast<uintptr_t>(b.buf.data()), static_cast<uint32_t>(kLen), b.mr->lkey}};
    r.raddr = reinterpret_cast<uintptr_t>(p);
    r.rkey = mr->rkey;
    ASSERT_EQ(Post(b.qp, r, GetParam()), 0);
    ibv_wc wc;
    ASSERT_TRUE(PollOne(b.cq, &wc));
    EXPECT_EQ(wc.status, IBV_WC_SUCCESS);
    EXPECT_EQ(std::memcmp(b.buf.data(), p, kLen), 0);
    Fill(b.buf, 0, kLen, seed++);
    Wr w = r;  // and writes into them
    w.op = IBV_WR_RDMA_WRITE;
    ASSERT_EQ(Post(b.qp, w, GetParam()), 0);
    ASSERT_TRUE(PollOne(b.cq, &wc));
    EXPECT_EQ(wc.status, IBV_WC_SUCCESS);
    EXPECT_EQ(std::memcmp(b.buf.data(), p, kLen), 0);
    EXPECT_EQ(ibv_dereg_mr(mr), 0);
  }
  shmdt(sysv);
  munmap(anon, kLen);
  munmap(own, kLen);
  close(mfd);
  // A memfd without F_SEAL_SHRINK could be truncated under the daemon: refused.
  int loose = memfd_create("app-loose", MFD_CLOEXEC);
  ASSERT_EQ(ftruncate(loose, kLen), 0);
  void* lp = mmap(nullptr, kLen, PROT_READ | PROT_WRITE, MAP_SHARED, loose, 0);
  errno = 0;
  EXPECT_EQ(ibv_reg_mr(a.pd, lp, kLen, access), nullptr);
  EXPECT_EQ(errno, EOPNOTSUPP);
  munmap(lp, kLen);
  close(loose);
}

// The maps line of the mapping holding addr ("" when none).
std::string MapsLineOf(const void* addr) {
  auto a = reinterpret_cast<uintptr_t>(addr);
  FILE* f = std::fopen("/proc/self/maps", "r");
  char line[512];
  std::string out;
  while (f && std::fgets(line, sizeof line, f)) {
    unsigned long lo, hi;
    if (std::sscanf(line, "%lx-%lx", &lo, &hi) == 2 && a >= lo && a < hi) out = line;
  }
  if (f) std::fclose(f);
  return out;
}

// A field in kB of the smaps entry of the mapping holding addr ("Rss", ...), in bytes;
// 0 when there is none.
uint64_t SmapsBytes(const void* addr, const std::string& field) {
  auto a = reinterpret_cast<uintptr_t>(addr);
  FILE* f = std::fopen("/proc/self/smaps", "r");
  char line[512];
  bool in = false;
  uint64_t size = 0;
  unsigned long lo, hi, kb;
  const std::string format = field + ": %lu kB";
  while (f && std::fgets(line, sizeof line, f)) {
    if (std::sscanf(line, "%lx-%lx ", &lo, &hi) == 2) {  // a mapping's first line
      in = a >= lo && a < hi;
    } else if (in && std::sscanf(line, format.c_str(), &kb) == 1) {
      size = kb * 1024;
    }
  }
  if (f) std::fclose(f);
  return size;
}

// The page size the kernel maps addr with (smaps), or 0.
uint64_t KernelPageSize(const void* addr) { return SmapsBytes(addr, "KernelPageSize"); }

// Every kind of huge-page memory registers (perftest --use_hugepages is the System V
// kind) and moves data both ways, also where the registration starts and ends inside a
// huge page and an operation crosses from one huge page to the next; private huge pages
// keep what was written into them once deregistered.
TEST_P(RcTest, HugePagesRegisterAndMoveData) {
  constexpr size_t kHuge = 2 << 20, kLen = 2 * kHuge;
  VRDMA_REQUIRE_FREE_HUGE_PAGES(16);
  // A hugetlbfs mount for the file kinds (hugepages.sh makes one).
  const char* dir = std::getenv("VRDMA_HUGETLBFS");
  struct Region {
    std::string what;
    uint8_t* p = nullptr;
    bool is_private = false;
    int fd = -1;
    int shmid = -1;
  };
  std::vector<Region> regions;
  auto mapped = [&](const char* what, void* p, bool priv, int fd = -1) {
    ASSERT_NE(p, MAP_FAILED) << what << ": " << std::strerror(errno);
    regions.push_back({what, static_cast<uint8_t*>(p), priv, fd, -1});
  };
  int shmid = shmget(IPC_PRIVATE, kLen, SHM_HUGETLB | IPC_CREAT | 0600);
  ASSERT_GE(shmid, 0) << std::strerror(errno);
  void* sysv = shmat(shmid, nullptr, 0);
  shmctl(shmid, IPC_RMID, nullptr);
  ASSERT_NE(sysv, reinterpret_cast<void*>(-1));
  regions.push_back({"System V SHM_HUGETLB", static_cast<uint8_t*>(sysv), false, -1, shmid});
  const int rw = PROT_READ | PROT_WRITE;
  ASSERT_NO_FATAL_FAILURE(
      mapped("MAP_SHARED|MAP_HUGETLB",
             mmap(nullptr, kLen, rw, MAP_SHARED | MAP_ANONYMOUS | MAP_HUGETLB, -1, 0), false));
  ASSERT_NO_FATAL_FAILURE(
      mapped("MAP_PRIVATE|MAP_HUGETLB",
             mmap(nullptr, kLen, rw, MAP_PRIVATE | MAP_ANONYMOUS | MAP_HUGETLB, -1, 0), true));
  int mfd = memfd_create("app-huge", MFD_CLOEXEC | MFD_HUGETLB | MFD_ALLOW_SEALING);
  ASSERT_GE(mfd, 0) << std::strerror(errno);
  ASSERT_EQ(ftruncate(mfd, kLen), 0);
  ASSERT_EQ(fcntl(mfd, F_ADD_SEALS, F_SEAL_SHRINK), 0);
  ASSERT_NO_FATAL_FAILURE(
      mapped("MFD_HUGETLB memfd", mmap(nullptr, kLen, rw, MAP_SHARED, mfd, 0), false, mfd));
  if (dir && *dir) {
    for (bool priv : {false, true}) {
      std::string path = std::string(dir) + (priv ? "/private" : "/shared");
      int fd = open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600);
      ASSERT_GE(fd, 0) << path << ": " << std::strerror(errno);
      unlink(path.c_str());
      ASSERT_EQ(ftruncate(fd, kLen), 0);
      ASSERT_NO_FATAL_FAILURE(
          mapped(priv ? "hugetlbfs file, MAP_PRIVATE" : "hugetlbfs file, MAP_SHARED",
                 mmap(nullptr, kLen, rw, priv ? MAP_PRIVATE : MAP_SHARED, fd, 0), priv, fd));
    }
  }
  const int access = IBV_ACCESS_LOCAL_WRITE | IBV_ACCESS_REMOTE_WRITE | IBV_ACCESS_REMOTE_READ;
  uint32_t seed = 70;
  for (Region& r : regions) {
    SCOPED_TRACE(r.what);
    std::vector<uint8_t> expect(kLen);
    Fill(expect, 0, kLen, seed++);
    std::memcpy(r.p, expect.data(), kLen);
    // From inside the first huge page to inside the second.
    uint8_t* start = r.p + 4096 + 100;
    const size_t len = kLen - 3 * 4096;
    ibv_mr* mr = ibv_reg_mr(a.pd, start, len, access);
    ASSERT_NE(mr, nullptr) << std::strerror(errno);
    const size_t chunk = kBuf;            // b's buffer
    const size_t at = kHuge - chunk / 2;  // across the two huge pages
    Wr rd;                                // b reads a's huge pages
    rd.op = IBV_WR_RDMA_READ;
    rd.sges = {
        {reinterpret_cast<uintptr_t>(b.buf.data()), static_cast<uint32_t>(chunk), b.mr->lkey}};
    rd.raddr = reinterpret_cast<uintptr_t>(r.p + at);
    rd.rkey = mr->rkey;
    ASSERT_EQ(Post(b.qp, rd, GetParam()), 0);
    ibv_wc wc;
    ASSERT_TRUE(PollOne(b.cq, &wc));
    EXPECT_EQ(wc.status, IBV_WC_SUCCESS) << ibv_wc_status_str(wc.status);
    EXPECT_EQ(std::memcmp(b.buf.data(), expect.data() + at, chunk), 0);
    // b writes into them, at another place across the boundary.
    const size_t wat = kHuge - 300000;
    Fill(b.buf, 0, chunk, seed++);
    Wr wr = rd;
    wr.op = IBV_WR_RDMA_WRITE;
    wr.raddr = reinterpret_cast<uintptr_t>(r.p + wat);
    ASSERT_EQ(Post(b.qp, wr, GetParam()), 0);
    ASSERT_TRUE(PollOne(b.cq, &wc));
    EXPECT_EQ(wc.status, IBV_WC_SUCCESS) << ibv_wc_status_str(wc.status);
    std::memcpy(expect.data() + wat, b.buf.data(), chunk);
    EXPECT_EQ(std::memcmp(r.p, expect.data(), kLen), 0);
    // a sends from them (gathered by the requester), with the last registered byte.
    Wr w;
    w.op = IBV_WR_RDMA_WRITE;
    const size_t from = (start - r.p) + len - chunk;
    w.sges = {{reinterpret_cast<uintptr_t>(r.p + from), static_cast<uint32_t>(chunk), mr->lkey}};
    w.raddr = Addr(b, 0);
    w.rkey = b.mr->rkey;
    ASSERT_NO_FATAL_FAILURE(Run(w, IBV_WC_RDMA_WRITE));
    EXPECT_EQ(std::memcmp(b.buf.data(), expect.data() + from, chunk), 0);
    EXPECT_EQ(ibv_dereg_mr(mr), 0);
    // The process's own memory again, with what the peer wrote.
    EXPECT_EQ(std::memcmp(r.p, expect.data(), kLen), 0);
    if (r.is_private) {
      EXPECT_EQ(MapsLineOf(r.p + kHuge).find("vrdma-mr"), std::string::npos)
          << MapsLineOf(r.p + kHuge);
      EXPECT_EQ(KernelPageSize(r.p), kHuge) << "private huge pages stay huge pages";
    }
  }
  for (Region& r : regions) {
    if (r.shmid >= 0) {
      shmdt(r.p);
    } else {
      munmap(r.p, kLen);
    }
    if (r.fd >= 0) close(r.fd);
  }
}

// ibv_rereg_mr(3) (issue 14), with the same keys throughout: a new translation (the peer
// reads and writes the new pages, a gathers from them), refusals that leave the MR as it was, new
// access (remote write taken away: the peer's WRITE is a remote access error; given back: it
// works), a new PD (the MR no longer the QP's PD's: remote access error; back: it works; the new PD
// busy meanwhile), and all three at once.
TEST_P(RcTest, ReregMrChangesTranslationAccessAndPd) {
  auto reconnect = [&] {
    ibv_qp_attr r{};
    r.qp_state = IBV_QPS_RESET;
    ASSERT_EQ(ibv_modify_qp(a.qp, &r, IBV_QP_STATE), 0);
    ASSERT_EQ(ibv_modify_qp(b.qp, &r, IBV_QP_STATE), 0);
    ASSERT_NO_FATAL_FAILURE(Connect(a, b, IBV_QPT_RC));
    ASSERT_NO_FATAL_FAILURE(Connect(b, a, IBV_QPT_RC));
  };
  // b writes 4 KiB into a's MR at `where`: b's completion status (negative: none).
  auto peer_write = [&](uint8_t* where, uint32_t seed) -> int {
    Fill(b.buf, 0, 4096, seed);
    Wr w;
    w.op = IBV_WR_RDMA_WRITE;
    w.sges = {Sge(b, 0, 4096)};
    w.raddr = reinterpret_cast<uintptr_t>(where);
    w.rkey = a.mr->rkey;
    if (Post(b.qp, w, GetParam())) return -1;
    ibv_wc wc;
    if (!PollOne(b.cq, &wc)) return -2;
    return wc.status;
  };
  const int all = IBV_ACCESS_LOCAL_WRITE | IBV_ACCESS_REMOTE_WRITE | IBV_ACCESS_REMOTE_READ |
                  IBV_ACCESS_REMOTE_ATOMIC;
  const uint32_t lkey = a.mr->lkey, rkey = a.mr->rkey;
  // Pages of their own.
  constexpr size_t kNew = 1 << 16;
  void* np = mmap(nullptr, kNew, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  ASSERT_NE(np, MAP_FAILED);
  std::span<uint8_t> nb(static_cast<uint8_t*>(np), kNew);
  {
    std::mt19937 g(90);
    for (uint8_t& byte : nb) byte = static_cast<uint8_t>(g());
  }
  ASSERT_EQ(ibv_rereg_mr(a.mr, IBV_REREG_MR_CHANGE_TRANSLATION, nullptr, nb.data(), nb.size(), 0),
            0)
      << std::strerror(errno);
  EXPECT_EQ(a.mr->addr, nb.data());
  EXPECT_EQ(a.mr->length, nb.size());
  EXPECT_EQ(a.mr->lkey, lkey);
  EXPECT_EQ(a.mr->rkey, rkey);
  Wr rd;
  rd.op = IBV_WR_RDMA_READ;
  rd.sges = {Sge(b, 0, static_cast<uint32_t>(nb.size()))};
  rd.raddr = reinterpret_cast<uintptr_t>(nb.data());
  rd.rkey = a.mr->rkey;
  ASSERT_EQ(Post(b.qp, rd, GetParam()), 0);
  ibv_wc wc;
  ASSERT_TRUE(PollOne(b.cq, &wc));
  EXPECT_EQ(wc.status, IBV_WC_SUCCESS) << ibv_wc_status_str(wc.status);
  EXPECT_EQ(std::memcmp(b.buf.data(), nb.data(), nb.size()), 0);
  EXPECT_EQ(peer_write(nb.data() + 1000, 91), IBV_WC_SUCCESS);
  EXPECT_EQ(std::memcmp(nb.data() + 1000, b.buf.data(), 4096), 0);
  Wr w;
  w.op = IBV_WR_RDMA_WRITE;
  w.sges = {{reinterpret_cast<uintptr_t>(nb.data()) + 5, 3000, a.mr->lkey}};
  w.raddr = Addr(b, 8192);
  w.rkey = b.mr->rkey;
  ASSERT_NO_FATAL_FAILURE(Run(w, IBV_WC_RDMA_WRITE));
  EXPECT_EQ(std::memcmp(&b.buf[8192], nb.data() + 5, 3000), 0);

  // Refused by the device, the MR as it was.
  errno = 0;
  EXPECT_EQ(
      ibv_rereg_mr(a.mr, IBV_REREG_MR_CHANGE_ACCESS, nullptr, nullptr, 0, IBV_ACCESS_REMOTE_WRITE),
      IBV_REREG_MR_ERR_CMD);
  EXPECT_EQ(errno, EINVAL) << "remote write without local write";
  errno = 0;
  // IBTA 1.5 flush access (IBV_ACCESS_FLUSH_GLOBAL in newer rdma-core): not offered.
  EXPECT_EQ(ibv_rereg_mr(a.mr, IBV_REREG_MR_CHANGE_ACCESS, nullptr, nullptr, 0,
                         IBV_ACCESS_LOCAL_WRITE | (1 << 8)),
            IBV_REREG_MR_ERR_CMD);
  EXPECT_EQ(errno, EOPNOTSUPP) << "flush access";
  EXPECT_EQ(peer_write(nb.data(), 92), IBV_WC_SUCCESS);

  ASSERT_EQ(
      ibv_rereg_mr(a.mr, IBV_REREG_MR_CHANGE_ACCESS, nullptr, nullptr, 0, IBV_ACCESS_LOCAL_WRITE),
      0);
  EXPECT_EQ(peer_write(nb.data(), 93), IBV_WC_REM_ACCESS_ERR);
  ASSERT_NO_FATAL_FAILURE(reconnect());
  ASSERT_EQ(ibv_rereg_mr(a.mr, IBV_REREG_MR_CHANGE_ACCESS, nullptr, nullptr, 0, all), 0);
  EXPECT_EQ(peer_write(nb.data(), 94), IBV_WC_SUCCESS);

  ibv_pd* pd2 = ibv_alloc_pd(a.ctx);
  ASSERT_NE(pd2, nullptr);
  ASSERT_EQ(ibv_rereg_mr(a.mr, IBV_REREG_MR_CHANGE_PD, pd2, nullptr, 0, 0), 0);
  EXPECT_EQ(a.mr->pd, pd2);
  EXPECT_EQ(ibv_dealloc_pd(pd2), EBUSY);
  EXPECT_EQ(peer_write(nb.data(), 95), IBV_WC_REM_ACCESS_ERR);
  ASSERT_NO_FATAL_FAILURE(reconnect());
  ASSERT_EQ(ibv_rereg_mr(a.mr, IBV_REREG_MR_CHANGE_PD, a.pd, nullptr, 0, 0), 0);
  EXPECT_EQ(peer_write(nb.data(), 96), IBV_WC_SUCCESS);
  EXPECT_EQ(ibv_dealloc_pd(pd2), 0);

  ASSERT_EQ(ibv_rereg_mr(a.mr,
                         IBV_REREG_MR_CHANGE_TRANSLATION | IBV_REREG_MR_CHANGE_PD |
                             IBV_REREG_MR_CHANGE_ACCESS,
                         a.pd, a.buf.data(), a.buf.size(), all),
            0);
  EXPECT_EQ(peer_write(a.buf.data() + 100, 97), IBV_WC_SUCCESS);
  EXPECT_EQ(std::memcmp(a.buf.data() + 100, b.buf.data(), 4096), 0);
  munmap(np, kNew);
}

// A QP moved to RESET takes its unpolled completions (the flushes of its error state) from
// its CQ, as mlx5's provider does, and leaves another QP's there; restarted, it completes
// anew (rdma-core's test_mr_rereg_pd and _addr restart QPs that way).
TEST_P(RcTest, ResetTakesTheQpsCompletionsFromItsCq) {
  ibv_qp_init_attr ia{};
  ia.send_cq = a.cq;
  ia.recv_cq = a.cq;
  ia.cap = {4, 4, 1, 1, 0};
  ia.qp_type = IBV_QPT_RC;
  ibv_qp* x = ibv_create_qp(a.pd, &ia);
  ASSERT_NE(x, nullptr);
  ASSERT_NO_FATAL_FAILURE(ToInit(x, IBV_QPT_RC));
  PostRecv(a.qp, {Sge(a, 0, 64)}, 1);
  PostRecv(a.qp, {Sge(a, 64, 64)}, 2);
  PostRecv(x, {Sge(a, 128, 64)}, 10);
  PostRecv(a.qp, {Sge(a, 192, 64)}, 3);
  ibv_qp_attr st{};
  st.qp_state = IBV_QPS_ERR;
  ASSERT_EQ(ibv_modify_qp(a.qp, &st, IBV_QP_STATE), 0);
  ASSERT_EQ(ibv_modify_qp(x, &st, IBV_QP_STATE), 0);
  // The daemon flushes them into the CQ (a.qp's three, then x's one) while nobody polls.
  std::this_thread::sleep_for(std::chrono::milliseconds(200));
  st.qp_state = IBV_QPS_RESET;
  ASSERT_EQ(ibv_modify_qp(a.qp, &st, IBV_QP_STATE), 0);
  ibv_wc wc;
  ASSERT_TRUE(PollOne(a.cq, &wc));
  EXPECT_EQ(wc.wr_id, 10u) << "the other QP's flush stays";
  EXPECT_EQ(wc.status, IBV_WC_WR_FLUSH_ERR);
  EXPECT_EQ(wc.qp_num, x->qp_num);
  EXPECT_FALSE(PollOne(a.cq, &wc, 200)) << "a completion of the reset QP: wr_id " << wc.wr_id;
  // Restarted, the QP completes anew.
  ASSERT_NO_FATAL_FAILURE(Connect(a, b, IBV_QPT_RC));
  st.qp_state = IBV_QPS_RESET;
  ASSERT_EQ(ibv_modify_qp(b.qp, &st, IBV_QP_STATE), 0);
  ASSERT_NO_FATAL_FAILURE(Connect(b, a, IBV_QPT_RC));
  Fill(a.buf, 0, 512, 31);
  Wr w;
  w.op = IBV_WR_RDMA_WRITE;
  w.sges = {Sge(a, 0, 512)};
  w.raddr = Addr(b, 0);
  w.rkey = b.mr->rkey;
  ASSERT_NO_FATAL_FAILURE(Run(w, IBV_WC_RDMA_WRITE));
  EXPECT_EQ(std::memcmp(a.buf.data(), b.buf.data(), 512), 0);
  EXPECT_EQ(ibv_destroy_qp(x), 0);
}

// Device memory (ibv_alloc_dm): copies in and out in 4-byte units, a zero-based MR on it
// that the peer reads and writes (bytes compared through ibv_memcpy_from_dm) and that a
// sends from; what mlx5 and the kernel refuse is refused the same way.
TEST_P(RcTest, DeviceMemoryCopiesAndZeroBasedMr) {
  ibv_device_attr_ex attr{};
  ASSERT_EQ(ibv_query_device_ex(a.ctx, nullptr, &attr), 0);
  ASSERT_GE(attr.max_dm_size, 65536u);
  ibv_alloc_dm_attr too_big{attr.max_dm_size + 1, 0, 0};
  errno = 0;
  EXPECT_EQ(ibv_alloc_dm(a.ctx, &too_big), nullptr);
  EXPECT_EQ(errno, ENOMEM);
  constexpr size_t kLen = 65536;
  ibv_alloc_dm_attr da{kLen, 6, 0};
  ibv_dm* dm = ibv_alloc_dm(a.ctx, &da);
  ASSERT_NE(dm, nullptr) << std::strerror(errno);
  std::vector<uint8_t> in(kLen), out(kLen);
  Fill(in, 0, kLen, 55);
  ASSERT_EQ(ibv_memcpy_to_dm(dm, 0, in.data(), kLen), 0);
  EXPECT_EQ(ibv_memcpy_to_dm(dm, 2, in.data(), 8), EINVAL) << "unaligned offset";
  EXPECT_EQ(ibv_memcpy_to_dm(dm, 0, in.data(), 6), EINVAL) << "unaligned length";
  EXPECT_EQ(ibv_memcpy_from_dm(out.data(), dm, kLen - 4, 8), EINVAL) << "past the end";
  const int access = IBV_ACCESS_ZERO_BASED | IBV_ACCESS_LOCAL_WRITE | IBV_ACCESS_REMOTE_WRITE |
                     IBV_ACCESS_REMOTE_READ;
  errno = 0;
  EXPECT_EQ(ibv_reg_dm_mr(a.pd, dm, 0, kLen, access & ~IBV_ACCESS_ZERO_BASED), nullptr);
  EXPECT_EQ(errno, EINVAL) << "not zero-based";
  EXPECT_EQ(ibv_reg_dm_mr(a.pd, dm, 8, kLen, access), nullptr) << "past the end";
  ibv_mr* mr = ibv_reg_dm_mr(a.pd, dm, 0, kLen, access);
  ASSERT_NE(mr, nullptr) << std::strerror(errno);
  EXPECT_EQ(ibv_free_dm(dm), EBUSY) << "an MR lies on it";
  // b reads 32 KiB at zero-based offset 1000, then writes 4 KiB at 20000.
  Wr rd;
  rd.op = IBV_WR_RDMA_READ;
  rd.sges = {Sge(b, 0, 32768)};
  rd.raddr = 1000;
  rd.rkey = mr->rkey;
  ASSERT_EQ(Post(b.qp, rd, GetParam()), 0);
  ibv_wc wc;
  ASSERT_TRUE(PollOne(b.cq, &wc));
  EXPECT_EQ(wc.status, IBV_WC_SUCCESS) << ibv_wc_status_str(wc.status);
  EXPECT_EQ(std::memcmp(b.buf.data(), in.data() + 1000, 32768), 0);
  Fill(b.buf, 0, 4096, 56);
  Wr wr = rd;
  wr.op = IBV_WR_RDMA_WRITE;
  wr.sges = {Sge(b, 0, 4096)};
  wr.raddr = 20000;
  ASSERT_EQ(Post(b.qp, wr, GetParam()), 0);
  ASSERT_TRUE(PollOne(b.cq, &wc));
  EXPECT_EQ(wc.status, IBV_WC_SUCCESS) << ibv_wc_status_str(wc.status);
  ASSERT_EQ(ibv_memcpy_from_dm(out.data(), dm, 0, kLen), 0);
  std::memcpy(in.data() + 20000, b.buf.data(), 4096);
  EXPECT_EQ(out, in);
  // a writes to b from the device memory (its local SGE zero-based too).
  Wr w;
  w.op = IBV_WR_RDMA_WRITE;
  w.sges = {{100, 5000, mr->lkey}};
  w.raddr = Addr(b, 8192);
  w.rkey = b.mr->rkey;
  ASSERT_NO_FATAL_FAILURE(Run(w, IBV_WC_RDMA_WRITE));
  EXPECT_EQ(std::memcmp(&b.buf[8192], in.data() + 100, 5000), 0);
  EXPECT_EQ(ibv_dereg_mr(mr), 0);
  EXPECT_EQ(ibv_free_dm(dm), 0);
}

// Bytes of the memory object behind the shared mapping at `addr` that hold pages (its
// allocated blocks, through /proc/self/map_files), or -1.
long long AllocatedBytesBehind(const void* addr) {
  std::string line = MapsLineOf(addr);
  std::string range = line.substr(0, line.find(' '));
  struct stat st;
  if (range.empty() || stat(("/proc/self/map_files/" + range).c_str(), &st) != 0) return -1;
  return static_cast<long long>(st.st_blocks) * 512;
}

// On-demand paging, explicit: a 64 MiB private buffer with one byte written registers
// without committing more than was resident (a page, or a transparent huge page); the peer writes
// and reads in the middle of it (the daemon faults those pages in), bytes compared; ibv_advise_mr
// prefetches a range into the memory object, and refuses what is not an on-demand MR of the PD;
// implicit MRs are not offered (EINVAL, as mlx5 without them).
TEST_P(RcTest, OnDemandPagingRegistersWhatIsUsedAndPrefetches) {
  ibv_device_attr_ex attr{};
  ASSERT_EQ(ibv_query_device_ex(b.ctx, nullptr, &attr), 0);
  EXPECT_TRUE(attr.odp_caps.general_caps & IBV_ODP_SUPPORT);
  EXPECT_FALSE(attr.odp_caps.general_caps & IBV_ODP_SUPPORT_IMPLICIT);
  const uint32_t rc = attr.odp_caps.per_transport_caps.rc_odp_caps;
  for (uint32_t cap : {IBV_ODP_SUPPORT_SEND, IBV_ODP_SUPPORT_RECV, IBV_ODP_SUPPORT_WRITE,
                       IBV_ODP_SUPPORT_READ, IBV_ODP_SUPPORT_ATOMIC, IBV_ODP_SUPPORT_SRQ_RECV}) {
    EXPECT_TRUE(rc & cap) << cap;
  }
  constexpr size_t kLen = 64 << 20, kMid = 32 << 20;
  auto* p = static_cast<uint8_t*>(
      mmap(nullptr, kLen, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0));
  ASSERT_NE(p, MAP_FAILED);
  p[0] = 7;
  const long long resident = static_cast<long long>(SmapsBytes(p, "Rss"));
  ASSERT_GT(resident, 0);
  const int access = IBV_ACCESS_LOCAL_WRITE | IBV_ACCESS_REMOTE_WRITE | IBV_ACCESS_REMOTE_READ |
                     IBV_ACCESS_ON_DEMAND;
  ibv_mr* odp = ibv_reg_mr(b.pd, p, kLen, access);
  ASSERT_NE(odp, nullptr) << std::strerror(errno);
  const long long at_reg = AllocatedBytesBehind(p);
  ASSERT_GE(at_reg, 0);
  EXPECT_LE(at_reg, resident) << "registration committed pages never used";
  // a writes 64 KiB into the middle, then reads 4 KiB never touched by anyone.
  Fill(a.buf, 0, 65536, 61);
  Wr w;
  w.op = IBV_WR_RDMA_WRITE;
  w.sges = {Sge(a, 0, 65536)};
  w.raddr = reinterpret_cast<uintptr_t>(p) + kMid;
  w.rkey = odp->rkey;
  w.wr_id = 1;
  ASSERT_NO_FATAL_FAILURE(Run(w, IBV_WC_RDMA_WRITE));
  EXPECT_EQ(std::memcmp(p + kMid, a.buf.data(), 65536), 0);
  std::memset(&a.buf[100000], 0x5a, 4096);
  Wr r;
  r.op = IBV_WR_RDMA_READ;
  r.sges = {Sge(a, 100000, 4096)};
  r.raddr = reinterpret_cast<uintptr_t>(p) + kMid + (8 << 20);
  r.rkey = odp->rkey;
  r.wr_id = 2;
  ASSERT_NO_FATAL_FAILURE(Run(r, IBV_WC_RDMA_READ));
  EXPECT_TRUE(std::all_of(&a.buf[100000], &a.buf[104096], [](uint8_t c) { return c == 0; }));
  EXPECT_EQ(p[0], 7);
  // Prefetch 4 MiB for writing: they are in the memory object now.
  const long long before = AllocatedBytesBehind(p);
  ibv_sge pre{reinterpret_cast<uintptr_t>(p) + (16 << 20), 4 << 20, odp->lkey};
  EXPECT_EQ(
      ibv_advise_mr(b.pd, IBV_ADVISE_MR_ADVICE_PREFETCH_WRITE, IBV_ADVISE_MR_FLAG_FLUSH, &pre, 1),
      0);
  EXPECT_GE(AllocatedBytesBehind(p) - before, 4 << 20);
  EXPECT_EQ(ibv_advise_mr(b.pd, IBV_ADVISE_MR_ADVICE_PREFETCH, 0, &pre, 1), 0);
  EXPECT_EQ(ibv_advise_mr(b.pd, IBV_ADVISE_MR_ADVICE_PREFETCH_NO_FAULT, 0, &pre, 1), 0);
  // Refused: not an on-demand MR, a key that is none, a range past the MR, another PD.
  ibv_sge plain{reinterpret_cast<uintptr_t>(b.buf.data()), 4096, b.mr->lkey};
  EXPECT_EQ(ibv_advise_mr(b.pd, IBV_ADVISE_MR_ADVICE_PREFETCH, 0, &plain, 1), EINVAL);
  ibv_sge bad = pre;
  bad.lkey = odp->lkey ^ 0x100;
  EXPECT_EQ(ibv_advise_mr(b.pd, IBV_ADVISE_MR_ADVICE_PREFETCH, 0, &bad, 1), EINVAL);
  bad = pre;
  bad.addr = reinterpret_cast<uintptr_t>(p) + kLen - 4096;
  bad.length = 8192;
  EXPECT_EQ(ibv_advise_mr(b.pd, IBV_ADVISE_MR_ADVICE_PREFETCH, 0, &bad, 1), EINVAL);
  ibv_pd* other = ibv_alloc_pd(b.ctx);
  ASSERT_NE(other, nullptr);
  EXPECT_EQ(ibv_advise_mr(other, IBV_ADVISE_MR_ADVICE_PREFETCH, 0, &pre, 1), EINVAL);
  errno = 0;
  EXPECT_EQ(ibv_reg_mr(b.pd, nullptr, SIZE_MAX, IBV_ACCESS_LOCAL_WRITE | IBV_ACCESS_ON_DEMAND),
            nullptr);
  EXPECT_EQ(errno, EINVAL) << "implicit on-demand MR";
  EXPECT_EQ(ibv_dealloc_pd(other), 0);
  EXPECT_EQ(ibv_dereg_mr(odp), 0);
  EXPECT_EQ(p[kMid + 5], a.buf[5]) << "the peer's bytes stay after deregistration";
  munmap(p, kLen);
}

// Memory windows, both types, through both post APIs: b opens part of its buffer to a with
// a window, a writes and reads through it (bytes compared), and b closes it again by each
// of the spec's means (type 1: a bind of length 0; type 2: SEND with Invalidate from a, and
// Local Invalidate). The MR stays while a window is bound to it.
TEST_P(RcTest, MemoryWindowsBindAccessAndInvalidate) {
  const bool ex_api = GetParam();
  constexpr size_t kWin = 65536, kWinLen = 16384;
  ibv_mr* wmr =
      ibv_reg_mr(b.pd, b.buf.data(), b.buf.size(), IBV_ACCESS_LOCAL_WRITE | IBV_ACCESS_MW_BIND);
  ASSERT_NE(wmr, nullptr) << std::strerror(errno);
  errno = 0;
  EXPECT_EQ(ibv_alloc_mw(b.pd, static_cast<ibv_mw_type>(3)), nullptr);
  EXPECT_EQ(errno, EINVAL);
  ibv_wc wc;
  auto write_through = [&](uint32_t rkey, size_t off, uint32_t len, uint32_t seed) {
    Fill(a.buf, 0, len, seed);
    Wr w;
    w.op = IBV_WR_RDMA_WRITE;
    w.sges = {Sge(a, 0, len)};
    w.raddr = Addr(b, off);
    w.rkey = rkey;
    w.wr_id = seed;
    EXPECT_EQ(Post(a.qp, w, ex_api), 0);
    ibv_wc c{};
    EXPECT_TRUE(PollOne(a.cq, &c));
    return c.status;
  };

  // Type 1, bound with ibv_bind_mw (which posts on b's QP).
  ibv_mw* mw1 = ibv_alloc_mw(b.pd, IBV_MW_TYPE_1);
  ASSERT_NE(mw1, nullptr) << std::strerror(errno);
  const uint32_t first_key = mw1->rkey;
  ibv_mw_bind bind{};
  bind.wr_id = 0xb1;
  bind.send_flags = IBV_SEND_SIGNALED;
  bind.bind_info = {wmr, reinterpret_cast<uintptr_t>(b.buf.data()) + kWin, kWinLen,
                    IBV_ACCESS_REMOTE_WRITE | IBV_ACCESS_REMOTE_READ};
  ASSERT_EQ(ibv_bind_mw(b.qp, mw1, &bind), 0);
  EXPECT_NE(mw1->rkey, first_key);
  ASSERT_TRUE(PollOne(b.cq, &wc));
  EXPECT_EQ(wc.status, IBV_WC_SUCCESS) << ibv_wc_status_str(wc.status);
  EXPECT_EQ(wc.opcode, IBV_WC_BIND_MW);
  EXPECT_EQ(wc.wr_id, 0xb1u);
  ASSERT_EQ(write_through(mw1->rkey, kWin + 1000, 8000, 1), IBV_WC_SUCCESS);
  EXPECT_EQ(std::memcmp(&b.buf[kWin + 1000], a.buf.data(), 8000), 0);
  Fill(b.buf, kWin + kWinLen - 4096, 4096, 2);
  Wr rd;
  rd.op = IBV_WR_RDMA_READ;
  rd.sges = {Sge(a, 100000, 4096)};
  rd.raddr = Addr(b, kWin + kWinLen - 4096);
  rd.rkey = mw1->rkey;
  rd.wr_id = 3;
  ASSERT_NO_FATAL_FAILURE(Run(rd, IBV_WC_RDMA_READ));
  EXPECT_EQ(std::memcmp(&a.buf[100000], &b.buf[kWin + kWinLen - 4096], 4096), 0);
  EXPECT_EQ(ibv_dereg_mr(wmr), EBUSY) << "a window is bound to it";
  // Unbound: a bind of length 0.
  ibv_mw_bind unbind{};
  unbind.send_flags = IBV_SEND_SIGNALED;
  unbind.bind_info = {wmr, 0, 0, 0};
  ASSERT_EQ(ibv_bind_mw(b.qp, mw1, &unbind), 0);
  ASSERT_TRUE(PollOne(b.cq, &wc));
  EXPECT_EQ(wc.status, IBV_WC_SUCCESS) << ibv_wc_status_str(wc.status);

  // Type 2, bound by a work request on b's QP.
  ibv_mw* mw2 = ibv_alloc_mw(b.pd, IBV_MW_TYPE_2);
  ASSERT_NE(mw2, nullptr) << std::strerror(errno);
  ibv_mw_bind_info info{wmr, reinterpret_cast<uintptr_t>(b.buf.data()) + kWin, kWinLen,
                        IBV_ACCESS_REMOTE_WRITE};
  auto bind2 = [&](uint32_t rkey) {
    if (ex_api) {
      ibv_qp_ex* x = ibv_qp_to_qp_ex(b.qp);
      ibv_wr_start(x);
      x->wr_id = 0xb2;
      x->wr_flags = IBV_SEND_SIGNALED;
      ibv_wr_bind_mw(x, mw2, rkey, &info);
      EXPECT_EQ(ibv_wr_complete(x), 0);
    } else {
      ibv_send_wr wr{};
      wr.wr_id = 0xb2;
      wr.opcode = IBV_WR_BIND_MW;
      wr.send_flags = IBV_SEND_SIGNALED;
      wr.bind_mw = {mw2, rkey, info};
      ibv_send_wr* bad;
      EXPECT_EQ(ibv_post_send(b.qp, &wr, &bad), 0);
    }
    ibv_wc c{};
    EXPECT_TRUE(PollOne(b.cq, &c));
    EXPECT_EQ(c.opcode, IBV_WC_BIND_MW);
    return c.status;
  };
  uint32_t key2 = ibv_inc_rkey(mw2->rkey);
  ASSERT_EQ(bind2(key2), IBV_WC_SUCCESS);
  ASSERT_EQ(write_through(key2, kWin, 4096, 4), IBV_WC_SUCCESS);
  EXPECT_EQ(std::memcmp(&b.buf[kWin], a.buf.data(), 4096), 0);
  // a invalidates it with its SEND; b's receive says which key went.
  PostRecv(b.qp, {Sge(b, 0, 64)}, 5);
  Wr inv;
  inv.op = IBV_WR_SEND_WITH_INV;
  inv.sges = {Sge(a, 0, 16)};
  inv.imm = key2;  // the key to invalidate
  inv.wr_id = 6;
  ASSERT_NO_FATAL_FAILURE(Run(inv, IBV_WC_SEND));
  ASSERT_TRUE(PollOne(b.cq, &wc));
  EXPECT_EQ(wc.status, IBV_WC_SUCCESS) << ibv_wc_status_str(wc.status);
  EXPECT_TRUE(wc.wc_flags & IBV_WC_WITH_INV);
  EXPECT_EQ(wc.invalidated_rkey, key2);
  // Free again: it binds with a new key, then b invalidates it itself.
  key2 = ibv_inc_rkey(key2);
  ASSERT_EQ(bind2(key2), IBV_WC_SUCCESS);
  ASSERT_EQ(write_through(key2, kWin + 8192, 64, 7), IBV_WC_SUCCESS);
  if (ex_api) {
    ibv_qp_ex* x = ibv_qp_to_qp_ex(b.qp);
    ibv_wr_start(x);
    x->wr_id = 0x1a;
    x->wr_flags = IBV_SEND_SIGNALED;
    ibv_wr_local_inv(x, key2);
    ASSERT_EQ(ibv_wr_complete(x), 0);
  } else {
    ibv_send_wr wr{};
    wr.wr_id = 0x1a;
    wr.opcode = IBV_WR_LOCAL_INV;
    wr.send_flags = IBV_SEND_SIGNALED;
    wr.invalidate_rkey = key2;
    ibv_send_wr* bad;
    ASSERT_EQ(ibv_post_send(b.qp, &wr, &bad), 0);
  }
  ASSERT_TRUE(PollOne(b.cq, &wc));
  EXPECT_EQ(wc.status, IBV_WC_SUCCESS) << ibv_wc_status_str(wc.status);
  EXPECT_EQ(wc.opcode, IBV_WC_LOCAL_INV);
  EXPECT_EQ(ibv_dealloc_mw(mw2), 0);
  EXPECT_EQ(ibv_dealloc_mw(mw1), 0);
  EXPECT_EQ(ibv_dereg_mr(wmr), 0);
  // The window's last key opens nothing now: a's write fails, as the spec says.
  std::memset(&b.buf[kWin + 8192], 0x77, 64);
  EXPECT_EQ(write_through(key2, kWin + 8192, 64, 8), IBV_WC_REM_ACCESS_ERR);
  EXPECT_EQ(b.buf[kWin + 8192], 0x77);
}

// Deregistered pages are the process's private memory again (same contents).
TEST(Verbs, DeregisteredPagesArePrivateAgain) {
  ibv_context* ctx = OpenByName("vdev_a");
  ASSERT_NE(ctx, nullptr);
  ibv_pd* pd = ibv_alloc_pd(ctx);
  ASSERT_NE(pd, nullptr);
  std::vector<uint8_t> buf(1 << 18);
  Fill(buf, 0, buf.size(), 13);
  std::vector<uint8_t> copy = buf;
  auto backed_by_memfd = [&] {
    uintptr_t addr = reinterpret_cast<uintptr_t>(buf.data()) + buf.size() / 2;
    FILE* f = std::fopen("/proc/self/maps", "r");
    char line[512];
    bool memfd = false;
    while (f && std::fgets(line, sizeof line, f)) {
      unsigned long lo, hi;
      if (std::sscanf(line, "%lx-%lx", &lo, &hi) == 2 && addr >= lo && addr < hi) {
        memfd = std::strstr(line, "/memfd:vrdma-mr") != nullptr;
      }
    }
    if (f) std::fclose(f);
    return memfd;
  };
  ibv_mr* mr = ibv_reg_mr(pd, buf.data(), buf.size(), IBV_ACCESS_LOCAL_WRITE);
  ASSERT_NE(mr, nullptr);
  EXPECT_TRUE(backed_by_memfd());
  ASSERT_EQ(ibv_dereg_mr(mr), 0);
  EXPECT_FALSE(backed_by_memfd());
  EXPECT_EQ(buf, copy);
  ibv_dealloc_pd(pd);
  ibv_close_device(ctx);
}

// Registration moves the registered pages onto a memfd, and deregistration back: other
// threads writing to those pages meanwhile (here a mutex and a counter beside a small
// buffer, as heap blocks share a page) lose nothing, as with a NIC's pinning, which moves
// nothing. The remap window keeps the writes (docs/vrdmad.md, "Registering memory").
TEST(Verbs, RegistrationKeepsWritesOtherThreadsMakeOnThePage) {
  ibv_context* ctx = OpenByName("vdev_a");
  ASSERT_NE(ctx, nullptr);
  ibv_pd* pd = ibv_alloc_pd(ctx);
  ASSERT_NE(pd, nullptr);
  const size_t page = static_cast<size_t>(sysconf(_SC_PAGESIZE));
  auto* p = static_cast<uint8_t*>(
      mmap(nullptr, page, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0));
  ASSERT_NE(p, MAP_FAILED);
  std::memset(p, 0x5a, 64);  // the buffer registered
  auto* lock = new (p + 1024) pthread_mutex_t;
  pthread_mutex_init(lock, nullptr);
  auto* count = reinterpret_cast<volatile uint64_t*>(p + 2048);
  *count = 0;
  std::atomic<bool> stop{false};
  uint64_t made = 0;
  bool unlock_lost = false;  // the mutex stayed locked: an unlock was undone
  std::thread writer([&] {
    while (!stop.load(std::memory_order_relaxed)) {
      timespec deadline;
      clock_gettime(CLOCK_REALTIME, &deadline);
      deadline.tv_sec += 20;
      if (pthread_mutex_timedlock(lock, &deadline) != 0) {
        unlock_lost = true;
        stop = true;
        break;
      }
      *count = *count + 1;
      pthread_mutex_unlock(lock);
      ++made;
    }
  });
  int registered = 0;
  for (int i = 0; i < 2000 && !stop; ++i) {
    ibv_mr* mr = ibv_reg_mr(pd, p, 64, IBV_ACCESS_LOCAL_WRITE | IBV_ACCESS_REMOTE_WRITE);
    if (!mr) break;
    ++registered;
    ibv_dereg_mr(mr);
  }
  stop = true;
  writer.join();
  EXPECT_EQ(registered, 2000);
  EXPECT_GT(made, 0u);
  ASSERT_FALSE(unlock_lost) << "an unlock lost to a registration";
  EXPECT_EQ(*count, made) << "writes lost to a registration";
  for (int i = 0; i < 64; ++i) ASSERT_EQ(p[i], 0x5a);
  munmap(p, page);
  ibv_dealloc_pd(pd);
  ibv_close_device(ctx);
}

// Thread and parent domains: a QP and an MR in a parent domain (with a thread domain, so
// the QP posts without locks) move data as in its protection domain; a CQ in the parent
// domain; what ibv_alloc_parent_domain(3) and ibv_alloc_td(3) refuse; EBUSY for a PD or TD
// a parent domain still uses.
TEST(Verbs, ParentAndThreadDomains) {
  Side a, b;
  ASSERT_NO_FATAL_FAILURE(a.Open("vdev_a"));
  ASSERT_NO_FATAL_FAILURE(b.Open("vdev_b"));
  ibv_td_init_attr bad_td{1};
  EXPECT_EQ(ibv_alloc_td(a.ctx, &bad_td), nullptr);
  ibv_td_init_attr ta{0};
  ibv_td* td = ibv_alloc_td(a.ctx, &ta);
  ASSERT_NE(td, nullptr) << std::strerror(errno);
  ibv_parent_domain_init_attr pa{};
  pa.pd = a.pd;
  pa.td = td;
  ibv_pd* parent = ibv_alloc_parent_domain(a.ctx, &pa);
  ASSERT_NE(parent, nullptr) << std::strerror(errno);
  ibv_parent_domain_init_attr nested{};
  nested.pd = parent;
  errno = 0;
  EXPECT_EQ(ibv_alloc_parent_domain(a.ctx, &nested), nullptr) << "a parent of a parent";
  EXPECT_EQ(errno, EINVAL);
  EXPECT_EQ(ibv_dealloc_pd(a.pd), EBUSY);
  EXPECT_EQ(ibv_dealloc_td(td), EBUSY);
  // A CQ in the parent domain; a plain PD is not one.
  ibv_cq_init_attr_ex ca{};
  ca.cqe = 64;
  ca.comp_mask = IBV_CQ_INIT_ATTR_MASK_PD;
  ca.parent_domain = a.pd;
  EXPECT_EQ(ibv_create_cq_ex(a.ctx, &ca), nullptr);
  ca.parent_domain = parent;
  ibv_cq_ex* pcq = ibv_create_cq_ex(a.ctx, &ca);
  ASSERT_NE(pcq, nullptr) << std::strerror(errno);
  // a's QP and a second MR in the parent domain.
  ibv_pd* own = a.pd;
  a.pd = parent;
  ASSERT_NO_FATAL_FAILURE(a.CreateQp(IBV_QPT_RC, true));
  a.pd = own;
  std::vector<uint8_t> pbuf(1 << 16);
  Fill(pbuf, 0, pbuf.size(), 61);
  ibv_mr* pmr =
      ibv_reg_mr(parent, pbuf.data(), pbuf.size(), IBV_ACCESS_LOCAL_WRITE | IBV_ACCESS_REMOTE_READ);
  ASSERT_NE(pmr, nullptr) << std::strerror(errno);
  EXPECT_EQ(pmr->pd, parent);
  ASSERT_NO_FATAL_FAILURE(b.CreateQp(IBV_QPT_RC, false));
  ASSERT_NO_FATAL_FAILURE(Connect(a, b, IBV_QPT_RC));
  ASSERT_NO_FATAL_FAILURE(Connect(b, a, IBV_QPT_RC));
  // b reads the parent domain's MR; a sends from its protection domain's MR, lock-free.
  Wr rd;
  rd.op = IBV_WR_RDMA_READ;
  rd.sges = {{reinterpret_cast<uintptr_t>(b.buf.data()), 1 << 16, b.mr->lkey}};
  rd.raddr = reinterpret_cast<uintptr_t>(pbuf.data());
  rd.rkey = pmr->rkey;
  ASSERT_EQ(Post(b.qp, rd, false), 0);
  ibv_wc wc;
  ASSERT_TRUE(PollOne(b.cq, &wc));
  EXPECT_EQ(wc.status, IBV_WC_SUCCESS) << ibv_wc_status_str(wc.status);
  EXPECT_EQ(std::memcmp(b.buf.data(), pbuf.data(), pbuf.size()), 0);
  for (uint32_t i = 0; i < 50; ++i) {
    PostRecv(b.qp, {{reinterpret_cast<uintptr_t>(b.buf.data()) + 4096, 4096, b.mr->lkey}}, i);
    Fill(a.buf, 0, 3000, 100 + i);
    Wr w;
    w.wr_id = i;
    w.sges = {{reinterpret_cast<uintptr_t>(a.buf.data()), 3000, a.mr->lkey}};
    ASSERT_EQ(Post(a.qp, w, true), 0);
    ASSERT_TRUE(PollOne(a.cq, &wc));
    ASSERT_EQ(wc.status, IBV_WC_SUCCESS);
    ASSERT_TRUE(PollOne(b.cq, &wc));
    ASSERT_EQ(wc.status, IBV_WC_SUCCESS);
    ASSERT_EQ(std::memcmp(&b.buf[4096], a.buf.data(), 3000), 0) << "message " << i;
  }
  EXPECT_EQ(ibv_dereg_mr(pmr), 0);
  EXPECT_EQ(ibv_destroy_qp(a.qp), 0);
  a.qp = nullptr;
  EXPECT_EQ(ibv_destroy_cq(ibv_cq_ex_to_cq(pcq)), 0);
  EXPECT_EQ(ibv_dealloc_pd(parent), 0);
  EXPECT_EQ(ibv_dealloc_td(td), 0);
  // Operations a QP's transport lacks, or the vdev does not offer, refused at creation.
  for (auto [type, ops] : {std::pair{IBV_QPT_UD, uint64_t{IBV_QP_EX_WITH_RDMA_WRITE}},
                           std::pair{IBV_QPT_UC, uint64_t{IBV_QP_EX_WITH_RDMA_READ}},
                           std::pair{IBV_QPT_UD, uint64_t{IBV_QP_EX_WITH_BIND_MW}},
                           std::pair{IBV_QPT_UC, uint64_t{IBV_QP_EX_WITH_ATOMIC_WRITE}},
                           std::pair{IBV_QPT_UD, uint64_t{IBV_QP_EX_WITH_TSO}}}) {
    ibv_qp_init_attr_ex x{};
    x.send_cq = a.cq;
    x.recv_cq = a.cq;
    x.cap = {4, 4, 1, 1, 0};
    x.qp_type = type;
    x.comp_mask = IBV_QP_INIT_ATTR_PD | IBV_QP_INIT_ATTR_SEND_OPS_FLAGS;
    x.pd = a.pd;
    x.send_ops_flags = IBV_QP_EX_WITH_SEND | ops;
    errno = 0;
    EXPECT_EQ(ibv_create_qp_ex(a.ctx, &x), nullptr) << "type " << type << " ops " << ops;
    EXPECT_EQ(errno, EOPNOTSUPP);
  }
  a.Close();
  b.Close();
}

TEST(Verbs, UdSendCarriesGrhAndSource) {
  Side a, b;
  ASSERT_NO_FATAL_FAILURE(a.Open("vdev_a"));
  ASSERT_NO_FATAL_FAILURE(b.Open("vdev_b"));
  ASSERT_NO_FATAL_FAILURE(a.CreateQp(IBV_QPT_UD, false));
  ASSERT_NO_FATAL_FAILURE(b.CreateQp(IBV_QPT_UD, true));
  ASSERT_NO_FATAL_FAILURE(Connect(a, b, IBV_QPT_UD));
  ASSERT_NO_FATAL_FAILURE(Connect(b, a, IBV_QPT_UD));
  ibv_ah_attr ah_attr{};
  ah_attr.is_global = 1;
  ah_attr.grh.dgid = b.gid;
  ah_attr.grh.sgid_index = GidIndex();
  ah_attr.grh.hop_limit = 64;
  ah_attr.port_num = 1;
  ibv_ah* ah = ibv_create_ah(a.pd, &ah_attr);
  ASSERT_NE(ah, nullptr);
  PostRecv(b.qp, {{reinterpret_cast<uintptr_t>(b.buf.data()), 40 + 1024, b.mr->lkey}}, 5);
  Fill(a.buf, 0, 1024, 6);
  ibv_sge sge{reinterpret_cast<uintptr_t>(a.buf.data()), 1024, a.mr->lkey};
  ibv_send_wr wr{};
  wr.wr_id = 3;
  wr.opcode = IBV_WR_SEND;
  wr.send_flags = IBV_SEND_SIGNALED;
  wr.sg_list = &sge;
  wr.num_sge = 1;
  wr.wr.ud = {ah, b.qp->qp_num, 0x11111111};
  ibv_send_wr* bad;
  ASSERT_EQ(ibv_post_send(a.qp, &wr, &bad), 0);
  ibv_wc wc;
  ASSERT_TRUE(PollOne(a.cq, &wc));
  EXPECT_EQ(wc.status, IBV_WC_SUCCESS);
  ASSERT_TRUE(PollOne(b.cq, &wc));
  EXPECT_EQ(wc.status, IBV_WC_SUCCESS);
  EXPECT_EQ(wc.byte_len, 40u + 1024u);
  EXPECT_EQ(wc.src_qp, a.qp->qp_num);
  EXPECT_TRUE(wc.wc_flags & IBV_WC_GRH);
  EXPECT_EQ(0, std::memcmp(&b.buf[40], &a.buf[0], 1024));
  // An AH back to the sender, from the completion and its GRH (the interposer's
  // ibv_create_ah_from_wc: libibverbs' own looks GIDs up in sysfs).
  ibv_ah* back = ibv_create_ah_from_wc(b.pd, &wc, reinterpret_cast<ibv_grh*>(b.buf.data()), 1);
  ASSERT_NE(back, nullptr) << std::strerror(errno);
  ibv_destroy_ah(back);
  ibv_destroy_ah(ah);
  a.Close();
  b.Close();
}

// UD multicast (ibv_attach_mcast): a datagram vdev_a sends to a group (destination QPN
// 0xFFFFFF, an AH to the multicast GID) reaches every QP attached to it, on vdev_b twice
// and on vdev_a itself, with the sender's GRH and QPN; after ibv_detach_mcast a QP hears
// no more. A unicast GID cannot be joined (EINVAL).
TEST(Verbs, UdMulticastReachesEveryAttachedQp) {
  Side a, b, b2;
  ASSERT_NO_FATAL_FAILURE(a.Open("vdev_a"));
  ASSERT_NO_FATAL_FAILURE(b.Open("vdev_b"));
  ASSERT_NO_FATAL_FAILURE(b2.Open("vdev_b"));
  ASSERT_NO_FATAL_FAILURE(a.CreateQp(IBV_QPT_UD, false));
  ASSERT_NO_FATAL_FAILURE(b.CreateQp(IBV_QPT_UD, false));
  ASSERT_NO_FATAL_FAILURE(b2.CreateQp(IBV_QPT_UD, true));
  ASSERT_NO_FATAL_FAILURE(Connect(a, b, IBV_QPT_UD));
  ASSERT_NO_FATAL_FAILURE(Connect(b, a, IBV_QPT_UD));
  ASSERT_NO_FATAL_FAILURE(Connect(b2, a, IBV_QPT_UD));
  // A group of the sender's address family: 239.1.2.3 as RoCE carries an IPv4 group
  // (::ffff:239.1.2.3) beside an IPv4 GID, ff0e::1:2:3 beside an IPv6 one.
  ibv_gid mgid{};
  const uint8_t v4[16] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 239, 1, 2, 3};
  const uint8_t v6[16] = {0xff, 0x0e, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 2, 0, 3};
  const bool ipv4 = a.gid.raw[10] == 0xff && a.gid.raw[11] == 0xff && a.gid.raw[0] == 0;
  std::memcpy(mgid.raw, ipv4 ? v4 : v6, 16);
  EXPECT_EQ(ibv_attach_mcast(b.qp, &b.gid, 0), EINVAL) << "a unicast GID";
  for (Side* s : {&a, &b, &b2}) ASSERT_EQ(ibv_attach_mcast(s->qp, &mgid, 0), 0);
  ibv_ah_attr ah_attr{};
  ah_attr.is_global = 1;
  ah_attr.grh.dgid = mgid;
  ah_attr.grh.sgid_index = GidIndex();
  ah_attr.grh.hop_limit = 64;
  ah_attr.port_num = 1;
  ibv_ah* ah = ibv_create_ah(a.pd, &ah_attr);
  ASSERT_NE(ah, nullptr) << std::strerror(errno);
  auto send = [&](uint8_t seed) {
    Fill(a.buf, 0, 512, seed);
    ibv_sge sge{reinterpret_cast<uintptr_t>(a.buf.data()), 512, a.mr->lkey};
    ibv_send_wr wr{};
    wr.wr_id = seed;
    wr.opcode = IBV_WR_SEND;
    wr.send_flags = IBV_SEND_SIGNALED;
    wr.sg_list = &sge;
    wr.num_sge = 1;
    wr.wr.ud = {ah, 0xffffff, 0x11111111};
    ibv_send_wr* bad;
    ASSERT_EQ(ibv_post_send(a.qp, &wr, &bad), 0);
    ibv_wc wc;
    ASSERT_TRUE(PollOne(a.cq, &wc));
    EXPECT_EQ(wc.status, IBV_WC_SUCCESS);
  };
  for (Side* s : {&a, &b, &b2}) {
    PostRecv(s->qp, {{reinterpret_cast<uintptr_t>(s->buf.data()) + 65536, 40 + 512, s->mr->lkey}},
             9);
  }
  ASSERT_NO_FATAL_FAILURE(send(21));
  for (Side* s : {&b, &b2, &a}) {
    ibv_wc wc{};
    ASSERT_TRUE(PollOne(s->cq, &wc));
    EXPECT_EQ(wc.status, IBV_WC_SUCCESS);
    EXPECT_EQ(wc.opcode, IBV_WC_RECV);
    EXPECT_EQ(wc.byte_len, 40u + 512u);
    EXPECT_EQ(wc.src_qp, a.qp->qp_num);
    EXPECT_TRUE(wc.wc_flags & IBV_WC_GRH);
    EXPECT_EQ(0, std::memcmp(&s->buf[65536 + 40], &a.buf[0], 512));
  }
  // b2 leaves: the next datagram reaches b (and a), not b2.
  ASSERT_EQ(ibv_detach_mcast(b2.qp, &mgid, 0), 0);
  EXPECT_EQ(ibv_detach_mcast(b2.qp, &mgid, 0), EINVAL) << "not attached any more";
  for (Side* s : {&a, &b, &b2}) {
    PostRecv(s->qp, {{reinterpret_cast<uintptr_t>(s->buf.data()) + 131072, 40 + 512, s->mr->lkey}},
             10);
  }
  ASSERT_NO_FATAL_FAILURE(send(22));
  ibv_wc wc{};
  ASSERT_TRUE(PollOne(b.cq, &wc));
  EXPECT_EQ(0, std::memcmp(&b.buf[131072 + 40], &a.buf[0], 512));
  ASSERT_TRUE(PollOne(a.cq, &wc));
  EXPECT_FALSE(PollOne(b2.cq, &wc, 200)) << "a QP that left hears nothing";
  ibv_destroy_ah(ah);
  a.Close();
  b.Close();
  b2.Close();
}

// XRC (IBTA annex A14, issue 14): vdev_a's XRC send QP reaches two XRC SRQs of vdev_b
// through one XRC receive QP, naming the SRQ in each work request (ibv_post_send's
// remote_srqn, and ibv_wr_set_xrc_srqn of the extended API). Each SEND lands in the WQE of
// the SRQ it names and completes on that SRQ's CQ; RDMA WRITE and READ run against the
// PD of the SRQ named; a second context of vdev_b that opens the domain through the same
// file shares it: its SRQ is reached through the first context's receive QP. Every byte
// moved is compared.
TEST(Verbs, XrcSendsReachTheSrqTheyName) {
  Side a, b;
  ASSERT_NO_FATAL_FAILURE(a.Open("vdev_a"));
  ASSERT_NO_FATAL_FAILURE(b.Open("vdev_b"));
  char path[] = "/tmp/vrdma-xrcd-XXXXXX";
  int file = mkstemp(path);
  ASSERT_GE(file, 0);
  unlink(path);
  ibv_xrcd_init_attr xa{};
  xa.comp_mask = IBV_XRCD_INIT_ATTR_FD | IBV_XRCD_INIT_ATTR_OFLAGS;
  xa.fd = file;
  xa.oflags = O_CREAT;
  ibv_xrcd* xrcd = ibv_open_xrcd(b.ctx, &xa);
  ASSERT_NE(xrcd, nullptr) << std::strerror(errno);
  ibv_cq* cq1 = ibv_create_cq(b.ctx, 64, nullptr, nullptr, 0);
  ibv_cq* cq2 = ibv_create_cq(b.ctx, 64, nullptr, nullptr, 0);
  ASSERT_TRUE(cq1 && cq2);
  auto xrc_srq = [&](ibv_context* ctx, ibv_pd* pd, ibv_xrcd* d, ibv_cq* cq) {
    ibv_srq_init_attr_ex s{};
    s.attr = {64, 1, 0};
    s.comp_mask = IBV_SRQ_INIT_ATTR_TYPE | IBV_SRQ_INIT_ATTR_XRCD | IBV_SRQ_INIT_ATTR_CQ |
                  IBV_SRQ_INIT_ATTR_PD;
    s.srq_type = IBV_SRQT_XRC;
    s.xrcd = d;
    s.cq = cq;
    s.pd = pd;
    return ibv_create_srq_ex(ctx, &s);
  };
  ibv_srq* srq1 = xrc_srq(b.ctx, b.pd, xrcd, cq1);
  ibv_srq* srq2 = xrc_srq(b.ctx, b.pd, xrcd, cq2);
  ASSERT_TRUE(srq1 && srq2) << std::strerror(errno);
  uint32_t n1 = 0, n2 = 0;
  ASSERT_EQ(ibv_get_srq_num(srq1, &n1), 0);
  ASSERT_EQ(ibv_get_srq_num(srq2, &n2), 0);
  EXPECT_NE(n1, n2);

  ibv_qp_init_attr_ex r{};
  r.qp_type = IBV_QPT_XRC_RECV;
  r.comp_mask = IBV_QP_INIT_ATTR_XRCD;
  r.xrcd = xrcd;
  ibv_qp* recv = ibv_create_qp_ex(b.ctx, &r);
  ASSERT_NE(recv, nullptr) << std::strerror(errno);
  ibv_qp_init_attr_ex s{};
  s.qp_type = IBV_QPT_XRC_SEND;
  s.comp_mask = IBV_QP_INIT_ATTR_PD | IBV_QP_INIT_ATTR_SEND_OPS_FLAGS;
  s.pd = a.pd;
  s.send_cq = a.cq;
  s.cap.max_send_wr = 32;
  s.cap.max_send_sge = 1;
  s.send_ops_flags = IBV_QP_EX_WITH_SEND | IBV_QP_EX_WITH_RDMA_WRITE | IBV_QP_EX_WITH_RDMA_READ;
  ibv_qp* send = ibv_create_qp_ex(a.ctx, &s);
  ASSERT_NE(send, nullptr) << std::strerror(errno);
  ASSERT_NO_FATAL_FAILURE(ConnectTo(recv, IBV_QPT_XRC_RECV, send->qp_num, a.gid));
  ASSERT_NO_FATAL_FAILURE(ConnectTo(send, IBV_QPT_XRC_SEND, recv->qp_num, b.gid));

  auto post_srq = [&](ibv_srq* srq, size_t off, uint64_t id) {
    ibv_sge sge{reinterpret_cast<uintptr_t>(b.buf.data()) + off, 8192, b.mr->lkey};
    ibv_recv_wr w{};
    w.wr_id = id;
    w.sg_list = &sge;
    w.num_sge = 1;
    ibv_recv_wr* bad;
    return ibv_post_srq_recv(srq, &w, &bad);
  };
  auto send_to = [&](uint32_t srqn, ibv_wr_opcode op, size_t off, uint32_t len, uint64_t raddr) {
    ibv_sge sge{reinterpret_cast<uintptr_t>(a.buf.data()) + off, len, a.mr->lkey};
    ibv_send_wr w{};
    w.wr_id = off;
    w.opcode = op;
    w.send_flags = IBV_SEND_SIGNALED;
    w.sg_list = &sge;
    w.num_sge = 1;
    w.wr.rdma = {raddr, b.mr->rkey};
    w.qp_type.xrc.remote_srqn = srqn;
    ibv_send_wr* bad;
    EXPECT_EQ(ibv_post_send(send, &w, &bad), 0);
    ibv_wc wc;
    EXPECT_TRUE(PollOne(a.cq, &wc));
    return wc.status;
  };
  ASSERT_EQ(post_srq(srq1, 0, 11), 0);
  ASSERT_EQ(post_srq(srq2, 8192, 22), 0);
  Fill(a.buf, 0, 5000, 31);
  Fill(a.buf, 8192, 3000, 32);
  EXPECT_EQ(send_to(n2, IBV_WR_SEND, 0, 5000, 0), IBV_WC_SUCCESS);
  EXPECT_EQ(send_to(n1, IBV_WR_SEND, 8192, 3000, 0), IBV_WC_SUCCESS);
  ibv_wc wc;
  ASSERT_TRUE(PollOne(cq2, &wc));
  EXPECT_EQ(wc.status, IBV_WC_SUCCESS);
  EXPECT_EQ(wc.wr_id, 22u);
  EXPECT_EQ(wc.byte_len, 5000u);
  EXPECT_EQ(wc.qp_num, recv->qp_num);
  EXPECT_EQ(0, std::memcmp(&b.buf[8192], &a.buf[0], 5000));
  ASSERT_TRUE(PollOne(cq1, &wc));
  EXPECT_EQ(wc.wr_id, 11u);
  EXPECT_EQ(wc.byte_len, 3000u);
  EXPECT_EQ(0, std::memcmp(&b.buf[0], &a.buf[8192], 3000));

  // RDMA WRITE and READ back through SRQ 1's PD.
  Fill(a.buf, 16384, 6000, 33);
  const uint64_t remote = reinterpret_cast<uintptr_t>(b.buf.data()) + 65536;
  EXPECT_EQ(send_to(n1, IBV_WR_RDMA_WRITE, 16384, 6000, remote), IBV_WC_SUCCESS);
  EXPECT_EQ(0, std::memcmp(&b.buf[65536], &a.buf[16384], 6000));
  EXPECT_EQ(send_to(n1, IBV_WR_RDMA_READ, 32768, 6000, remote), IBV_WC_SUCCESS);
  EXPECT_EQ(0, std::memcmp(&a.buf[32768], &a.buf[16384], 6000));

  // The extended API: ibv_wr_send with ibv_wr_set_xrc_srqn.
  ASSERT_EQ(post_srq(srq2, 16384, 23), 0);
  Fill(a.buf, 40960, 100, 34);
  ibv_qp_ex* qpx = ibv_qp_to_qp_ex(send);
  ibv_wr_start(qpx);
  qpx->wr_id = 5;
  qpx->wr_flags = IBV_SEND_SIGNALED;
  ibv_wr_send(qpx);
  ibv_wr_set_xrc_srqn(qpx, n2);
  ibv_wr_set_sge(qpx, a.mr->lkey, reinterpret_cast<uintptr_t>(a.buf.data()) + 40960, 100);
  ASSERT_EQ(ibv_wr_complete(qpx), 0);
  ASSERT_TRUE(PollOne(a.cq, &wc));
  EXPECT_EQ(wc.status, IBV_WC_SUCCESS);
  ASSERT_TRUE(PollOne(cq2, &wc));
  EXPECT_EQ(wc.wr_id, 23u);
  EXPECT_EQ(0, std::memcmp(&b.buf[16384], &a.buf[40960], 100));

  // A second context of vdev_b opens the same file: the same domain. Its SRQ is reached
  // through the first context's receive QP and completes on its own CQ.
  ibv_context* ctx2 = OpenByName("vdev_b");
  ASSERT_NE(ctx2, nullptr);
  ibv_pd* pd2 = ibv_alloc_pd(ctx2);
  std::vector<uint8_t> buf2(8192, 0);
  ibv_mr* mr2 = ibv_reg_mr(pd2, buf2.data(), buf2.size(), IBV_ACCESS_LOCAL_WRITE);
  ibv_cq* cq3 = ibv_create_cq(ctx2, 16, nullptr, nullptr, 0);
  xa.oflags = 0;  // it exists: no O_CREAT needed
  ibv_xrcd* xrcd2 = ibv_open_xrcd(ctx2, &xa);
  ASSERT_NE(xrcd2, nullptr) << std::strerror(errno);
  ibv_srq* srq3 = xrc_srq(ctx2, pd2, xrcd2, cq3);
  ASSERT_NE(srq3, nullptr) << std::strerror(errno);
  uint32_t n3 = 0;
  ASSERT_EQ(ibv_get_srq_num(srq3, &n3), 0);
  ibv_sge sge3{reinterpret_cast<uintptr_t>(buf2.data()), 8192, mr2->lkey};
  ibv_recv_wr w3{};
  w3.wr_id = 33;
  w3.sg_list = &sge3;
  w3.num_sge = 1;
  ibv_recv_wr* bad3;
  ASSERT_EQ(ibv_post_srq_recv(srq3, &w3, &bad3), 0);
  Fill(a.buf, 49152, 2000, 35);
  EXPECT_EQ(send_to(n3, IBV_WR_SEND, 49152, 2000, 0), IBV_WC_SUCCESS);
  ASSERT_TRUE(PollOne(cq3, &wc));
  EXPECT_EQ(wc.wr_id, 33u);
  EXPECT_EQ(wc.qp_num, recv->qp_num);
  EXPECT_EQ(0, std::memcmp(buf2.data(), &a.buf[49152], 2000));

  // ibv_open_qp: the second context holds the receive QP too. When the creator destroys
  // its handle the QP stays, and messages still reach the second context's SRQ through it.
  ibv_qp_open_attr oa{};
  oa.comp_mask = IBV_QP_OPEN_ATTR_NUM | IBV_QP_OPEN_ATTR_XRCD | IBV_QP_OPEN_ATTR_TYPE;
  ASSERT_NO_FATAL_FAILURE(b.CreateQp(IBV_QPT_RC, false));
  oa.qp_num = b.qp->qp_num;  // a QP of the vdev, but no receive QP of this domain
  oa.xrcd = xrcd2;
  oa.qp_type = IBV_QPT_XRC_RECV;
  errno = 0;
  EXPECT_EQ(ibv_open_qp(ctx2, &oa), nullptr);
  EXPECT_EQ(errno, EINVAL);
  oa.qp_num = recv->qp_num;
  ibv_qp* opened = ibv_open_qp(ctx2, &oa);
  ASSERT_NE(opened, nullptr) << std::strerror(errno);
  EXPECT_EQ(opened->qp_num, recv->qp_num);
  ibv_qp_attr qa{};
  ibv_qp_init_attr qi{};
  ASSERT_EQ(ibv_query_qp(opened, &qa, IBV_QP_STATE, &qi), 0);
  EXPECT_EQ(qa.qp_state, IBV_QPS_RTS);
  const uint32_t recv_qpn = recv->qp_num;
  ASSERT_EQ(ibv_destroy_qp(recv), 0);
  recv = nullptr;
  w3.wr_id = 34;
  ASSERT_EQ(ibv_post_srq_recv(srq3, &w3, &bad3), 0);
  Fill(a.buf, 57344, 1500, 36);
  EXPECT_EQ(send_to(n3, IBV_WR_SEND, 57344, 1500, 0), IBV_WC_SUCCESS);
  ASSERT_TRUE(PollOne(cq3, &wc));
  EXPECT_EQ(wc.wr_id, 34u);
  EXPECT_EQ(wc.qp_num, recv_qpn);
  EXPECT_EQ(0, std::memcmp(buf2.data(), &a.buf[57344], 1500));
  ASSERT_EQ(ibv_destroy_qp(opened), 0);  // the last hold: the QP goes

  // The domain is busy for its SRQ; then both close.
  EXPECT_EQ(ibv_close_xrcd(xrcd2), 0);  // not the last open: dropped at once
  ibv_destroy_srq(srq3);
  ibv_destroy_cq(cq3);
  ibv_dereg_mr(mr2);
  ibv_dealloc_pd(pd2);
  ibv_close_device(ctx2);

  EXPECT_EQ(ibv_close_xrcd(xrcd), EBUSY);  // its SRQs are still in it
  ibv_destroy_qp(send);
  ibv_destroy_srq(srq1);
  ibv_destroy_srq(srq2);
  EXPECT_EQ(ibv_close_xrcd(xrcd), 0);
  ibv_destroy_cq(cq1);
  ibv_destroy_cq(cq2);
  close(file);
  a.Close();
  b.Close();
}

// XRC domains come from the pdev's table, shared by its vdevs: a context opens at most 64
// at once (EMFILE), a vdev holds at most 64 (ENOMEM), and another vdev still gets its own.
TEST(Verbs, XrcDomainsAreBoundedPerVdev) {
  ibv_context* c1 = OpenByName("vdev_b");
  ibv_context* c2 = OpenByName("vdev_b");
  ibv_context* other = OpenByName("vdev_a");
  ASSERT_TRUE(c1 && c2 && other);
  ibv_xrcd_init_attr xa{};
  xa.comp_mask = IBV_XRCD_INIT_ATTR_FD | IBV_XRCD_INIT_ATTR_OFLAGS;
  xa.fd = -1;  // a domain of the context alone
  std::vector<std::pair<ibv_context*, ibv_xrcd*>> held;
  for (int i = 0; i < 64; ++i) {
    ibv_xrcd* d = ibv_open_xrcd(c1, &xa);
    ASSERT_NE(d, nullptr) << i << ": " << std::strerror(errno);
    held.push_back({c1, d});
  }
  errno = 0;
  EXPECT_EQ(ibv_open_xrcd(c1, &xa), nullptr);
  EXPECT_EQ(errno, EMFILE);
  // The vdev's 64 are taken: c2 gets none; vdev_a gets its own.
  errno = 0;
  EXPECT_EQ(ibv_open_xrcd(c2, &xa), nullptr);
  EXPECT_EQ(errno, ENOMEM);
  ibv_xrcd* mine = ibv_open_xrcd(other, &xa);
  EXPECT_NE(mine, nullptr) << std::strerror(errno);
  // One given back is one c2 can have.
  EXPECT_EQ(ibv_close_xrcd(held.back().second), 0);
  held.pop_back();
  ibv_xrcd* again = ibv_open_xrcd(c2, &xa);
  EXPECT_NE(again, nullptr) << std::strerror(errno);
  if (again) ibv_close_xrcd(again);
  if (mine) ibv_close_xrcd(mine);
  for (auto& [ctx, d] : held) ibv_close_xrcd(d);
  ibv_close_device(c1);
  ibv_close_device(c2);
  ibv_close_device(other);
}

// a sends `count` signalled SENDs of len, len + step, len + 2 step ... bytes (wr_id
// 0..count-1), each completion polled on a and successful.
void SendAll(Side& a, uint64_t count, uint32_t len, uint32_t step) {
  for (uint64_t i = 0; i < count; ++i) {
    ibv_sge sge{reinterpret_cast<uintptr_t>(a.buf.data()), len + step * static_cast<uint32_t>(i),
                a.mr->lkey};
    ibv_send_wr wr{};
    wr.wr_id = i;
    wr.opcode = IBV_WR_SEND;
    wr.send_flags = IBV_SEND_SIGNALED;
    wr.sg_list = &sge;
    wr.num_sge = 1;
    ibv_send_wr* bad;
    ASSERT_EQ(ibv_post_send(a.qp, &wr, &bad), 0);
    ibv_wc wc;
    ASSERT_TRUE(PollOne(a.cq, &wc));
    ASSERT_EQ(wc.status, IBV_WC_SUCCESS);
  }
}

// b posts `count` 100-byte receives (wr_id 0..count-1), then a sends them 10, 10 + step,
// ... bytes (SendAll).
void SendMessages(Side& a, Side& b, uint64_t count, uint32_t step) {
  for (uint64_t i = 0; i < count; ++i) {
    PostRecv(b.qp, {{reinterpret_cast<uintptr_t>(b.buf.data()) + i * 100, 100, b.mr->lkey}}, i);
  }
  SendAll(a, count, 10, step);
}

// Completion timestamps (ibv_create_cq_ex with IBV_WC_EX_WITH_COMPLETION_TIMESTAMP): the
// device says it has them (a mask and a clock), ibv_query_rt_values_ex reads the same
// clock, and each completion's time lies between the clock read before the post and after
// the poll, in the order the completions came. A CQ without the flag has no reader.
TEST(Verbs, CompletionTimestamps) {
  Side a, b;
  ASSERT_NO_FATAL_FAILURE(a.Open("vdev_a"));
  ASSERT_NO_FATAL_FAILURE(b.Open("vdev_b"));
  ibv_device_attr_ex dx{};
  ASSERT_EQ(ibv_query_device_ex(b.ctx, nullptr, &dx), 0);
  EXPECT_EQ(dx.completion_timestamp_mask, ~0ull);
  EXPECT_EQ(dx.hca_core_clock, 1000000u);  // kHz: one tick per nanosecond
  ibv_cq_init_attr_ex ca{};
  ca.cqe = 16;
  ca.wc_flags = IBV_WC_EX_WITH_COMPLETION_TIMESTAMP | IBV_WC_EX_WITH_BYTE_LEN;
  ibv_cq_ex* cqx = ibv_create_cq_ex(b.ctx, &ca);
  ASSERT_NE(cqx, nullptr) << std::strerror(errno);
  ca.wc_flags = IBV_WC_EX_WITH_COMPLETION_TIMESTAMP_WALLCLOCK;
  EXPECT_EQ(ibv_create_cq_ex(b.ctx, &ca), nullptr);
  EXPECT_EQ(errno, EOPNOTSUPP);
  ibv_destroy_cq(b.cq);
  b.cq = ibv_cq_ex_to_cq(cqx);
  ASSERT_NO_FATAL_FAILURE(a.CreateQp(IBV_QPT_RC, false));
  ASSERT_NO_FATAL_FAILURE(b.CreateQp(IBV_QPT_RC, false));
  ASSERT_NO_FATAL_FAILURE(Connect(a, b, IBV_QPT_RC));
  ASSERT_NO_FATAL_FAILURE(Connect(b, a, IBV_QPT_RC));
  auto clock_now = [&]() {
    ibv_values_ex v{};
    v.comp_mask = IBV_VALUES_MASK_RAW_CLOCK;
    EXPECT_EQ(ibv_query_rt_values_ex(b.ctx, &v), 0);
    EXPECT_EQ(v.comp_mask, static_cast<uint32_t>(IBV_VALUES_MASK_RAW_CLOCK));
    return static_cast<uint64_t>(v.raw_clock.tv_sec) * 1000000000ull +
           static_cast<uint64_t>(v.raw_clock.tv_nsec);
  };
  const uint64_t before = clock_now();
  ASSERT_NO_FATAL_FAILURE(SendMessages(a, b, 3, 1));
  std::vector<uint64_t> stamps;
  ibv_poll_cq_attr pa{};
  auto end = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  while (stamps.size() < 3 && std::chrono::steady_clock::now() < end) {
    if (ibv_start_poll(cqx, &pa) != 0) continue;
    do {
      EXPECT_EQ(cqx->status, IBV_WC_SUCCESS);
      EXPECT_EQ(cqx->wr_id, stamps.size());
      EXPECT_EQ(ibv_wc_read_byte_len(cqx), 10 + stamps.size());
      stamps.push_back(ibv_wc_read_completion_ts(cqx));
    } while (ibv_next_poll(cqx) == 0);
    ibv_end_poll(cqx);
  }
  const uint64_t after = clock_now();
  ASSERT_EQ(stamps.size(), 3u);
  for (size_t i = 0; i < 3; ++i) {
    EXPECT_GE(stamps[i], before) << i;
    EXPECT_LE(stamps[i], after) << i;
    if (i) {
      EXPECT_GE(stamps[i], stamps[i - 1]) << i;
    }
  }
  a.Close();
  b.Close();
}

TEST(Verbs, CompletionChannelEventAndResize) {
  Side a, b;
  ASSERT_NO_FATAL_FAILURE(a.Open("vdev_a"));
  ASSERT_NO_FATAL_FAILURE(b.Open("vdev_b"));
  ibv_comp_channel* ch = ibv_create_comp_channel(b.ctx);
  ASSERT_NE(ch, nullptr);
  ibv_destroy_cq(b.cq);
  b.cq = ibv_create_cq(b.ctx, 4, reinterpret_cast<void*>(0x1234), ch, 0);
  ASSERT_NE(b.cq, nullptr);
  ASSERT_NO_FATAL_FAILURE(a.CreateQp(IBV_QPT_RC, false));
  ASSERT_NO_FATAL_FAILURE(b.CreateQp(IBV_QPT_RC, false));
  ASSERT_NO_FATAL_FAILURE(Connect(a, b, IBV_QPT_RC));
  ASSERT_NO_FATAL_FAILURE(Connect(b, a, IBV_QPT_RC));
  ASSERT_EQ(ibv_req_notify_cq(b.cq, 0), 0);
  ASSERT_NO_FATAL_FAILURE(SendMessages(a, b, 3, 0));
  ibv_cq* ev_cq = nullptr;
  void* ev_ctx = nullptr;
  ASSERT_EQ(ibv_get_cq_event(ch, &ev_cq, &ev_ctx), 0);
  EXPECT_EQ(ev_cq, b.cq);
  EXPECT_EQ(ev_ctx, reinterpret_cast<void*>(0x1234));
  ibv_ack_cq_events(b.cq, 1);
  // Resizing keeps the three completions not yet polled.
  ASSERT_EQ(ibv_resize_cq(b.cq, 100), 0);
  EXPECT_GE(b.cq->cqe, 100);
  ibv_wc wc[4];
  int n = 0;
  for (int tries = 0; tries < 1000 && n < 3; ++tries) n += ibv_poll_cq(b.cq, 4 - n, wc + n);
  ASSERT_EQ(n, 3);
  for (int i = 0; i < 3; ++i) EXPECT_EQ(wc[i].wr_id, static_cast<uint64_t>(i));
  ibv_destroy_qp(b.qp);
  b.qp = nullptr;
  ibv_destroy_cq(b.cq);
  b.cq = nullptr;
  EXPECT_EQ(ibv_destroy_comp_channel(ch), 0);
  a.Close();
  b.Close();
}

TEST(Verbs, SrqLimitEvent) {
  Side a, b;
  ASSERT_NO_FATAL_FAILURE(a.Open("vdev_a"));
  ASSERT_NO_FATAL_FAILURE(b.Open("vdev_b"));
  ibv_srq_init_attr sa{};
  sa.attr = {16, 1, 0};
  b.srq = ibv_create_srq(b.pd, &sa);
  ASSERT_NE(b.srq, nullptr);
  ASSERT_NO_FATAL_FAILURE(a.CreateQp(IBV_QPT_RC, false));
  ASSERT_NO_FATAL_FAILURE(b.CreateQp(IBV_QPT_RC, false));
  ASSERT_NO_FATAL_FAILURE(Connect(a, b, IBV_QPT_RC));
  ASSERT_NO_FATAL_FAILURE(Connect(b, a, IBV_QPT_RC));
  for (uint64_t i = 0; i < 8; ++i) {
    ibv_sge sge{reinterpret_cast<uintptr_t>(b.buf.data()) + i * 64, 64, b.mr->lkey};
    ibv_recv_wr wr{};
    wr.wr_id = i;
    wr.sg_list = &sge;
    wr.num_sge = 1;
    ibv_recv_wr* bad;
    ASSERT_EQ(ibv_post_srq_recv(b.srq, &wr, &bad), 0);
  }
  ibv_srq_attr attr{};
  attr.srq_limit = 6;
  ASSERT_EQ(ibv_modify_srq(b.srq, &attr, IBV_SRQ_LIMIT), 0);
  ASSERT_EQ(ibv_query_srq(b.srq, &attr), 0);
  EXPECT_EQ(attr.srq_limit, 6u);
  ASSERT_NO_FATAL_FAILURE(SendAll(a, 3, 8, 0));
  ibv_async_event ev;
  ASSERT_TRUE(WaitEvent(b.ctx, IBV_EVENT_SRQ_LIMIT_REACHED, &ev, 5000));
  EXPECT_EQ(ev.element.srq, b.srq);
  ibv_ack_async_event(&ev);
  a.Close();
  b.Close();
}

TEST(Verbs, QueriesAnswerForTheVdev) {
  ibv_context* ctx = OpenByName("vdev_a");
  ASSERT_NE(ctx, nullptr);
  ibv_device_attr da;
  ASSERT_EQ(ibv_query_device(ctx, &da), 0);
  EXPECT_EQ(da.phys_port_cnt, 1);
  EXPECT_EQ(da.node_guid, ibv_get_device_guid(ctx->device));
  ibv_port_attr pa;
  ASSERT_EQ(ibv_query_port(ctx, 1, &pa), 0);
  EXPECT_EQ(pa.link_layer, IBV_LINK_LAYER_ETHERNET);
  EXPECT_EQ(pa.state, IBV_PORT_ACTIVE);
  ibv_gid gid;
  ASSERT_EQ(ibv_query_gid(ctx, 1, 3, &gid), 0);
  const uint8_t v4[16] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 10, 77, 0, 1};
  EXPECT_EQ(0, std::memcmp(gid.raw, v4, 16));
  ibv_gid_entry e;
  ASSERT_EQ(ibv_query_gid_ex(ctx, 1, 3, &e, 0), 0);
  EXPECT_EQ(e.gid_type, IBV_GID_TYPE_ROCE_V2);
  ASSERT_EQ(ibv_query_gid_ex(ctx, 1, 2, &e, 0), 0);
  EXPECT_EQ(e.gid_type, IBV_GID_TYPE_ROCE_V1);
  EXPECT_EQ(ibv_query_gid_ex(ctx, 1, 15, &e, 0), ENODATA);
  ibv_gid_entry table[16];
  ssize_t n = ibv_query_gid_table(ctx, table, 16, 0);
  EXPECT_EQ(n, 6);  // link-local, IPv4, IPv6; each RoCEv1 and RoCEv2
  __be16 pkey;
  ASSERT_EQ(ibv_query_pkey(ctx, 1, 0, &pkey), 0);
  EXPECT_EQ(pkey, htons(0xffff));
  ibv_close_device(ctx);
}

TEST(Verbs, QuotaRefusesCreationWithNicErrno) {
  const char* ctl = std::getenv("VRDMACTL");
  ASSERT_NE(ctl, nullptr);
  ibv_context* ctx = OpenByName("vdev_a");
  ASSERT_NE(ctx, nullptr);
  ibv_pd* pd = ibv_alloc_pd(ctx);
  ASSERT_NE(pd, nullptr);
  ibv_cq* cq = ibv_create_cq(ctx, 16, nullptr, nullptr, 0);
  ASSERT_NE(cq, nullptr);
  // One CQ in use: a quota of 0 is refused, 1 is accepted, and then a second CQ fails.
  EXPECT_NE(0, std::system((std::string(ctl) + " dev set vdev_a cq 0 2>/dev/null").c_str()));
  ASSERT_EQ(0, std::system((std::string(ctl) + " dev set vdev_a cq 1").c_str()));
  ibv_device_attr da;
  ASSERT_EQ(ibv_query_device(ctx, &da), 0);
  EXPECT_EQ(da.max_cq, 1);
  errno = 0;
  EXPECT_EQ(ibv_create_cq(ctx, 16, nullptr, nullptr, 0), nullptr);
  EXPECT_EQ(errno, ENOMEM);
  ASSERT_EQ(0, std::system((std::string(ctl) + " dev set vdev_a cq 1024").c_str()));
  ibv_cq* cq2 = ibv_create_cq(ctx, 16, nullptr, nullptr, 0);
  EXPECT_NE(cq2, nullptr);
  if (cq2) ibv_destroy_cq(cq2);
  ibv_destroy_cq(cq);
  ibv_dealloc_pd(pd);
  ibv_close_device(ctx);
}

}  // namespace

namespace {

// Run by verbs_check.sh while it stops the daemon with SIGTERM: the open context hears
// IBV_EVENT_DEVICE_FATAL, and later verbs fail instead of hanging.
TEST(Shutdown, DISABLED_DeviceFatalOnDaemonStop) {
  ibv_context* ctx = OpenByName("vdev_a");
  ASSERT_NE(ctx, nullptr);
  ibv_pd* pd = ibv_alloc_pd(ctx);
  ASSERT_NE(pd, nullptr);
  std::printf("ready\n");
  std::fflush(stdout);
  ibv_async_event ev;
  ASSERT_TRUE(WaitEvent(ctx, IBV_EVENT_DEVICE_FATAL, &ev, 30000));
  ibv_ack_async_event(&ev);
  // The daemon is gone: requests fail at once.
  for (int i = 0; i < 50 && ibv_alloc_pd(ctx) == nullptr && errno != EIO; ++i) usleep(100000);
  EXPECT_EQ(ibv_alloc_pd(ctx), nullptr);
  ibv_dealloc_pd(pd);
  ibv_close_device(ctx);
}

}  // namespace
