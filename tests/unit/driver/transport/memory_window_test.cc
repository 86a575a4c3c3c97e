// Memory windows (IBTA 10.6.7) between two engines: binding type 1 and type 2 windows,
// remote access through them (data checked), their bounds and rights, local and remote
// invalidation, the bind errors the spec names, and what a bound window holds back.
#include <cstring>

#include "tests/unit/driver/transport/engine_pair.h"

namespace vrdma::driver::testing {
namespace {

constexpr uint64_t kSrc = 0;
constexpr uint64_t kWin = 1 << 20;  // the window on host B: [kWin, kWin + kWinLen)
constexpr uint64_t kWinLen = 8192;

class MemoryWindowTest : public ::testing::Test {
 protected:
  void SetUp() override {
    pair_.Connect(QpOptions{}, &qa_, &qb_);
    // The MR windows open onto: B's memory again, with bind rights.
    auto keys = pair_.b.dev->RegMr(pair_.b.pd, pair_.b.base, pair_.b.mem.data(), pair_.b.mem.size(),
                                   IBV_ACCESS_LOCAL_WRITE | IBV_ACCESS_MW_BIND);
    ASSERT_TRUE(keys.ok()) << keys.status();
    bind_mr_ = *keys;
  }
  ibv_wc OneCqe(Host& h, uint32_t cq) {
    std::vector<ibv_wc> wc;
    EXPECT_TRUE(pair_.WaitCq(h, cq, 1, &wc));
    return wc.empty() ? ibv_wc{} : wc[0];
  }
  // Posts a bind of `mw` on B's QP `qpn` and returns its completion.
  ibv_wc Bind(uint32_t qpn, const RoceDevice::MwKeys& mw, uint32_t new_rkey, uint64_t off,
              uint64_t len, int access, uint32_t mr_lkey = 0) {
    SendWr wr{};
    wr.wr_id = 0xb1;
    wr.opcode = IBV_WR_BIND_MW;
    wr.send_flags = IBV_SEND_SIGNALED;
    wr.rkey = new_rkey;
    wr.bind = MwBind{mw.handle, mr_lkey ? mr_lkey : bind_mr_.lkey, pair_.b.va(off), len, access};
    EXPECT_TRUE(pair_.b.dev->PostSend(qpn, wr).ok());
    return OneCqe(pair_.b, pair_.b.scq);
  }
  // A Local Invalidate of `rkey` on B's QP: its completion.
  ibv_wc LocalInv(uint32_t rkey) {
    SendWr inv{};
    inv.wr_id = 0x1a;
    inv.opcode = IBV_WR_LOCAL_INV;
    inv.send_flags = IBV_SEND_SIGNALED;
    inv.invalidate_rkey = rkey;
    EXPECT_TRUE(pair_.b.dev->PostSend(qb_, inv).ok());
    return OneCqe(pair_.b, pair_.b.scq);
  }
  // An RDMA WRITE of `len` bytes from A to `va` through `rkey`: its completion status.
  ibv_wc_status Write(uint32_t rkey, uint64_t va, uint32_t len, uint32_t qpn = 0) {
    FillPattern(pair_.a.at(kSrc), len, rkey ^ static_cast<uint32_t>(va));
    SendWr wr = MakeSend(7, IBV_WR_RDMA_WRITE, pair_.a, kSrc, len);
    wr.remote_addr = va;
    wr.rkey = rkey;
    EXPECT_TRUE(pair_.a.dev->PostSend(qpn ? qpn : qa_, wr).ok());
    return OneCqe(pair_.a, pair_.a.scq).status;
  }
  absl::StatusOr<RoceDevice::MwKeys> Alloc(ibv_mw_type type) {
    return pair_.b.dev->AllocMw(pair_.b.pd, type);
  }
  static uint32_t NextKey(uint32_t rkey) { return (rkey & ~0xffu) | ((rkey + 1) & 0xff); }

  EnginePair pair_;
  uint32_t qa_ = 0, qb_ = 0;
  MrKeys bind_mr_{};
};

TEST_F(MemoryWindowTest, Type2WindowCarriesWritesAndReadsInsideItsBounds) {
  auto mw = Alloc(IBV_MW_TYPE_2);
  ASSERT_TRUE(mw.ok()) << mw.status();
  EXPECT_NE(mw->rkey, bind_mr_.rkey);
  const uint32_t key = NextKey(mw->rkey);
  ibv_wc c = Bind(qb_, *mw, key, kWin, kWinLen, IBV_ACCESS_REMOTE_WRITE | IBV_ACCESS_REMOTE_READ);
  EXPECT_EQ(c.status, IBV_WC_SUCCESS);
  EXPECT_EQ(c.opcode, IBV_WC_BIND_MW);
  EXPECT_EQ(c.wr_id, 0xb1u);

  Host& a = pair_.a;
  Host& b = pair_.b;
  std::memset(b.at(kWin), 0, kWinLen);
  ASSERT_EQ(Write(key, b.va(kWin + 100), 5000), IBV_WC_SUCCESS);
  EXPECT_EQ(0, std::memcmp(a.at(kSrc), b.at(kWin + 100), 5000));
  // The window's last byte, by READ.
  SendWr rd = MakeSend(8, IBV_WR_RDMA_READ, a, kSrc + 65536, 1);
  rd.remote_addr = b.va(kWin + kWinLen - 1);
  rd.rkey = key;
  b.at(kWin + kWinLen - 1)[0] = 0x5a;
  ASSERT_TRUE(a.dev->PostSend(qa_, rd).ok());
  ibv_wc r = OneCqe(a, a.scq);
  EXPECT_EQ(r.status, IBV_WC_SUCCESS);
  EXPECT_EQ(a.at(kSrc + 65536)[0], 0x5a);
  // One byte past the window, though inside the MR: a Remote Access Error.
  std::memset(b.at(kWin + kWinLen), 0x11, 16);
  EXPECT_EQ(Write(key, b.va(kWin + kWinLen - 1), 2), IBV_WC_REM_ACCESS_ERR);
  EXPECT_EQ(b.at(kWin + kWinLen)[0], 0x11) << "wrote past the window";
}

TEST_F(MemoryWindowTest, KeyFromBeforeTheBindNamesNothing) {
  auto mw = Alloc(IBV_MW_TYPE_2);
  ASSERT_TRUE(mw.ok());
  const uint32_t key = NextKey(mw->rkey);
  ASSERT_EQ(Bind(qb_, *mw, key, kWin, kWinLen, IBV_ACCESS_REMOTE_WRITE).status, IBV_WC_SUCCESS);
  // The key it had before the bind names nothing.
  EXPECT_EQ(Write(mw->rkey, pair_.b.va(kWin), 8), IBV_WC_REM_ACCESS_ERR);
}

TEST_F(MemoryWindowTest, ReadOnlyWindowRefusesWrites) {
  auto mw = Alloc(IBV_MW_TYPE_2);
  ASSERT_TRUE(mw.ok());
  const uint32_t key = NextKey(mw->rkey);
  ASSERT_EQ(Bind(qb_, *mw, key, kWin, kWinLen, IBV_ACCESS_REMOTE_READ).status, IBV_WC_SUCCESS);
  pair_.b.at(kWin)[0] = 0x33;
  EXPECT_EQ(Write(key, pair_.b.va(kWin), 8), IBV_WC_REM_ACCESS_ERR);
  EXPECT_EQ(pair_.b.at(kWin)[0], 0x33);
}

TEST_F(MemoryWindowTest, Type2WindowServesOnlyTheQpItIsBoundTo) {
  uint32_t qa2, qb2;
  pair_.Connect(QpOptions{}, &qa2, &qb2);
  auto mw = Alloc(IBV_MW_TYPE_2);
  ASSERT_TRUE(mw.ok());
  const uint32_t key = NextKey(mw->rkey);
  ASSERT_EQ(Bind(qb_, *mw, key, kWin, kWinLen, IBV_ACCESS_REMOTE_WRITE).status, IBV_WC_SUCCESS);
  EXPECT_EQ(Write(key, pair_.b.va(kWin), 64, qa2), IBV_WC_REM_ACCESS_ERR);
  EXPECT_EQ(Write(key, pair_.b.va(kWin), 64, qa_), IBV_WC_SUCCESS);
}

TEST_F(MemoryWindowTest, LocalInvalidateClosesType2Window) {
  auto mw = Alloc(IBV_MW_TYPE_2);
  ASSERT_TRUE(mw.ok());
  const uint32_t key = NextKey(mw->rkey);
  ASSERT_EQ(Bind(qb_, *mw, key, kWin, kWinLen, IBV_ACCESS_REMOTE_WRITE).status, IBV_WC_SUCCESS);
  ASSERT_EQ(Write(key, pair_.b.va(kWin), 64), IBV_WC_SUCCESS);
  ibv_wc c = LocalInv(key);
  EXPECT_EQ(c.status, IBV_WC_SUCCESS);
  EXPECT_EQ(c.opcode, IBV_WC_LOCAL_INV);
  EXPECT_EQ(Write(key, pair_.b.va(kWin), 64), IBV_WC_REM_ACCESS_ERR);
}

TEST_F(MemoryWindowTest, FreedType2WindowBindsAgainWithANewKey) {
  auto mw = Alloc(IBV_MW_TYPE_2);
  ASSERT_TRUE(mw.ok());
  const uint32_t key1 = NextKey(mw->rkey);
  ASSERT_EQ(Bind(qb_, *mw, key1, kWin, kWinLen, IBV_ACCESS_REMOTE_WRITE).status, IBV_WC_SUCCESS);
  ASSERT_EQ(LocalInv(key1).status, IBV_WC_SUCCESS);
  const uint32_t key2 = NextKey(key1);
  ASSERT_EQ(Bind(qb_, *mw, key2, kWin, 64, IBV_ACCESS_REMOTE_WRITE).status, IBV_WC_SUCCESS);
  EXPECT_EQ(Write(key2, pair_.b.va(kWin), 64), IBV_WC_SUCCESS);
  EXPECT_EQ(Write(key1, pair_.b.va(kWin), 64), IBV_WC_REM_ACCESS_ERR) << "a stale key";
}

TEST_F(MemoryWindowTest, SendWithInvalidateClosesType2WindowOfTheReceivingQp) {
  auto mw = Alloc(IBV_MW_TYPE_2);
  ASSERT_TRUE(mw.ok());
  const uint32_t key = NextKey(mw->rkey);
  ASSERT_EQ(Bind(qb_, *mw, key, kWin, kWinLen, IBV_ACCESS_REMOTE_WRITE).status, IBV_WC_SUCCESS);
  ASSERT_TRUE(pair_.b.dev->PostRecv(qb_, MakeRecv(5, pair_.b, 3 << 20, 64)).ok());
  SendWr wr = MakeSend(6, IBV_WR_SEND_WITH_INV, pair_.a, kSrc, 16);
  wr.invalidate_rkey = key;
  ASSERT_TRUE(pair_.a.dev->PostSend(qa_, wr).ok());
  EXPECT_EQ(OneCqe(pair_.a, pair_.a.scq).status, IBV_WC_SUCCESS);
  ibv_wc r = OneCqe(pair_.b, pair_.b.rcq);
  EXPECT_EQ(r.status, IBV_WC_SUCCESS);
  EXPECT_TRUE(r.wc_flags & IBV_WC_WITH_INV);
  EXPECT_EQ(r.invalidated_rkey, key);
  EXPECT_EQ(Write(key, pair_.b.va(kWin), 64), IBV_WC_REM_ACCESS_ERR);
}

TEST_F(MemoryWindowTest, Type1WindowServesEveryQpOfItsPdAndRebinds) {
  auto mw = Alloc(IBV_MW_TYPE_1);
  ASSERT_TRUE(mw.ok());
  const uint32_t key1 = NextKey(mw->rkey);
  ASSERT_EQ(Bind(qb_, *mw, key1, kWin, kWinLen, IBV_ACCESS_REMOTE_WRITE).status, IBV_WC_SUCCESS);
  ASSERT_EQ(Write(key1, pair_.b.va(kWin), 64), IBV_WC_SUCCESS);
  // A type 1 window serves every QP of its PD.
  uint32_t qa2, qb2;
  pair_.Connect(QpOptions{}, &qa2, &qb2);
  ASSERT_EQ(Write(key1, pair_.b.va(kWin), 64, qa2), IBV_WC_SUCCESS);
  // Rebound while bound: the old key stops, the new one works.
  const uint32_t key2 = NextKey(key1);
  ASSERT_EQ(Bind(qb_, *mw, key2, kWin + 4096, 4096, IBV_ACCESS_REMOTE_WRITE).status,
            IBV_WC_SUCCESS);
  EXPECT_EQ(Write(key2, pair_.b.va(kWin + 4096), 64, qa2), IBV_WC_SUCCESS);
  EXPECT_EQ(Write(key1, pair_.b.va(kWin + 4096), 64), IBV_WC_REM_ACCESS_ERR);
}

TEST_F(MemoryWindowTest, Type1WindowUnboundByZeroLengthBind) {
  auto mw = Alloc(IBV_MW_TYPE_1);
  ASSERT_TRUE(mw.ok());
  const uint32_t key1 = NextKey(mw->rkey);
  ASSERT_EQ(Bind(qb_, *mw, key1, kWin, kWinLen, IBV_ACCESS_REMOTE_WRITE).status, IBV_WC_SUCCESS);
  const uint32_t key2 = NextKey(key1);
  ASSERT_EQ(Bind(qb_, *mw, key2, 0, 0, 0).status, IBV_WC_SUCCESS);
  EXPECT_EQ(Write(key2, pair_.b.va(kWin), 64), IBV_WC_REM_ACCESS_ERR);
}

TEST_F(MemoryWindowTest, LocalInvalidateOfType1WindowFails) {
  auto mw = Alloc(IBV_MW_TYPE_1);
  ASSERT_TRUE(mw.ok());
  const uint32_t key = NextKey(mw->rkey);
  ASSERT_EQ(Bind(qb_, *mw, key, kWin, kWinLen, IBV_ACCESS_REMOTE_WRITE).status, IBV_WC_SUCCESS);
  EXPECT_EQ(LocalInv(key).status, IBV_WC_LOC_QP_OP_ERR);
}

TEST_F(MemoryWindowTest, ZeroBasedType2WindowIsAddressedFromZero) {
  auto mw = Alloc(IBV_MW_TYPE_2);
  ASSERT_TRUE(mw.ok());
  const uint32_t key = NextKey(mw->rkey);
  ASSERT_EQ(
      Bind(qb_, *mw, key, kWin, kWinLen, IBV_ACCESS_REMOTE_WRITE | IBV_ACCESS_ZERO_BASED).status,
      IBV_WC_SUCCESS);
  ASSERT_EQ(Write(key, 16, 100), IBV_WC_SUCCESS);
  EXPECT_EQ(0, std::memcmp(pair_.a.at(kSrc), pair_.b.at(kWin + 16), 100));
  EXPECT_EQ(Write(key, kWinLen - 8, 16), IBV_WC_REM_ACCESS_ERR);
}

TEST_F(MemoryWindowTest, AtomicsThroughAWindow) {
  auto mw = Alloc(IBV_MW_TYPE_2);
  ASSERT_TRUE(mw.ok());
  const uint32_t key = NextKey(mw->rkey);
  ASSERT_EQ(Bind(qb_, *mw, key, kWin, kWinLen, IBV_ACCESS_REMOTE_ATOMIC).status, IBV_WC_SUCCESS);
  uint64_t v = 40;
  std::memcpy(pair_.b.at(kWin + 64), &v, 8);
  SendWr wr = MakeSend(9, IBV_WR_ATOMIC_FETCH_AND_ADD, pair_.a, kSrc, 8);
  wr.remote_addr = pair_.b.va(kWin + 64);
  wr.rkey = key;
  wr.compare_add = 2;
  ASSERT_TRUE(pair_.a.dev->PostSend(qa_, wr).ok());
  EXPECT_EQ(OneCqe(pair_.a, pair_.a.scq).status, IBV_WC_SUCCESS);
  std::memcpy(&v, pair_.b.at(kWin + 64), 8);
  EXPECT_EQ(v, 42u);
}

// Each bind the spec forbids completes with IBV_WC_MW_BIND_ERR and ends the QP.
struct BadBind {
  const char* what;
  ibv_mw_type type;
  uint64_t off, len;
  int access;
  bool other_mr;  // the fixture's MR without bind rights
};

class MemoryWindowBindErrorTest : public MemoryWindowTest,
                                  public ::testing::WithParamInterface<BadBind> {};

TEST_P(MemoryWindowBindErrorTest, FailsWithBindError) {
  const BadBind& p = GetParam();
  auto mw = Alloc(p.type);
  ASSERT_TRUE(mw.ok());
  ibv_wc c =
      Bind(qb_, *mw, NextKey(mw->rkey), p.off, p.len, p.access, p.other_mr ? pair_.b.mr.lkey : 0);
  EXPECT_EQ(c.status, IBV_WC_MW_BIND_ERR) << p.what;
  EXPECT_EQ(c.opcode, IBV_WC_BIND_MW);
  ibv_qp_attr attr{};
  QpInitAttr init;
  ASSERT_TRUE(pair_.b.dev->QueryQp(qb_, &attr, &init).ok());
  EXPECT_EQ(attr.qp_state, IBV_QPS_ERR);
}

INSTANTIATE_TEST_SUITE_P(
    Spec, MemoryWindowBindErrorTest,
    ::testing::Values(BadBind{"MR without MW_BIND (C10-73)", IBV_MW_TYPE_2, kWin, 64,
                              IBV_ACCESS_REMOTE_READ, true},
                      BadBind{"window past the MR's end (C10-75)", IBV_MW_TYPE_2, (4 << 20) - 32,
                              64, IBV_ACCESS_REMOTE_READ, false},
                      BadBind{"zero-based type 1 (o10-36.2.2)", IBV_MW_TYPE_1, kWin, 64,
                              IBV_ACCESS_REMOTE_READ | IBV_ACCESS_ZERO_BASED, false},
                      BadBind{"type 2 unbound by a bind (o10-37.2.40)", IBV_MW_TYPE_2, 0, 0, 0,
                              false},
                      BadBind{"unknown access flags", IBV_MW_TYPE_2, kWin, 64,
                              IBV_ACCESS_REMOTE_READ | (1 << 20), false}),
    [](const auto& info) { return "Case" + std::to_string(info.index); });

TEST_F(MemoryWindowTest, WritableWindowNeedsAnMrTheDeviceMayWrite) {
  auto ro =
      pair_.b.dev->RegMr(pair_.b.pd, pair_.b.base, pair_.b.mem.data(), 1 << 20, IBV_ACCESS_MW_BIND);
  ASSERT_TRUE(ro.ok());
  auto mw = Alloc(IBV_MW_TYPE_2);
  ASSERT_TRUE(mw.ok());
  EXPECT_EQ(Bind(qb_, *mw, NextKey(mw->rkey), 0, 64, IBV_ACCESS_REMOTE_WRITE, ro->lkey).status,
            IBV_WC_MW_BIND_ERR);  // C10-74
}

TEST_F(MemoryWindowTest, BoundType2WindowDoesNotBindAgain) {
  auto mw = Alloc(IBV_MW_TYPE_2);
  ASSERT_TRUE(mw.ok());
  const uint32_t key = NextKey(mw->rkey);
  ASSERT_EQ(Bind(qb_, *mw, key, kWin, 64, IBV_ACCESS_REMOTE_READ).status, IBV_WC_SUCCESS);
  EXPECT_EQ(Bind(qb_, *mw, NextKey(key), kWin, 64, IBV_ACCESS_REMOTE_READ).status,
            IBV_WC_MW_BIND_ERR);  // o10-37.2.30
}

TEST_F(MemoryWindowTest, WindowOfAnotherPdDoesNotBind) {
  auto pd2 = pair_.b.dev->AllocPd();
  ASSERT_TRUE(pd2.ok());
  auto mw = pair_.b.dev->AllocMw(*pd2, IBV_MW_TYPE_2);
  ASSERT_TRUE(mw.ok());
  EXPECT_EQ(Bind(qb_, *mw, NextKey(mw->rkey), kWin, 64, IBV_ACCESS_REMOTE_READ).status,
            IBV_WC_MW_BIND_ERR);  // C10-72
}

TEST_F(MemoryWindowTest, BindWithAnotherWindowsIndexFails) {
  auto mw = Alloc(IBV_MW_TYPE_2);
  auto other = Alloc(IBV_MW_TYPE_2);
  ASSERT_TRUE(mw.ok() && other.ok());
  EXPECT_EQ(Bind(qb_, *mw, NextKey(other->rkey), kWin, 64, IBV_ACCESS_REMOTE_READ).status,
            IBV_WC_MW_BIND_ERR);
}

TEST_F(MemoryWindowTest, BoundWindowHoldsItsMrAndPd) {
  auto mw = Alloc(IBV_MW_TYPE_2);
  ASSERT_TRUE(mw.ok());
  ASSERT_EQ(Bind(qb_, *mw, NextKey(mw->rkey), kWin, 64, IBV_ACCESS_REMOTE_READ).status,
            IBV_WC_SUCCESS);
  RoceDevice& b = *pair_.b.dev;
  EXPECT_EQ(b.DeregMr(bind_mr_.lkey).code(), absl::StatusCode::kFailedPrecondition);
  RoceDevice::MrChange change;
  change.access = IBV_ACCESS_LOCAL_WRITE;
  EXPECT_EQ(b.ReregMr(bind_mr_.lkey, change).code(), absl::StatusCode::kFailedPrecondition);
  ASSERT_TRUE(b.DeallocMw(mw->handle).ok());
  EXPECT_TRUE(b.DeregMr(bind_mr_.lkey).ok());
  // An unbound window still holds its PD.
  auto pd2 = b.AllocPd();
  ASSERT_TRUE(pd2.ok());
  auto mw2 = b.AllocMw(*pd2, IBV_MW_TYPE_1);
  ASSERT_TRUE(mw2.ok());
  EXPECT_FALSE(b.DeallocPd(*pd2).ok());
  ASSERT_TRUE(b.DeallocMw(mw2->handle).ok());
  EXPECT_TRUE(b.DeallocPd(*pd2).ok());
}

TEST_F(MemoryWindowTest, DeallocatedWindowAnswersNoMore) {
  auto mw = Alloc(IBV_MW_TYPE_2);
  ASSERT_TRUE(mw.ok());
  const uint32_t key = NextKey(mw->rkey);
  ASSERT_EQ(Bind(qb_, *mw, key, kWin, 64, IBV_ACCESS_REMOTE_WRITE).status, IBV_WC_SUCCESS);
  ASSERT_TRUE(pair_.b.dev->DeallocMw(mw->handle).ok());
  EXPECT_EQ(Write(key, pair_.b.va(kWin), 8), IBV_WC_REM_ACCESS_ERR);
}

TEST_F(MemoryWindowTest, DestroyingTheQpFreesItsType2Windows) {
  auto mw = Alloc(IBV_MW_TYPE_2);
  ASSERT_TRUE(mw.ok());
  const uint32_t key = NextKey(mw->rkey);
  ASSERT_EQ(Bind(qb_, *mw, key, kWin, 64, IBV_ACCESS_REMOTE_WRITE).status, IBV_WC_SUCCESS);
  const uint32_t old_qb = qb_;
  ASSERT_TRUE(pair_.a.dev->DestroyQp(qa_).ok());
  ASSERT_TRUE(pair_.b.dev->DestroyQp(qb_).ok());
  pair_.Connect(QpOptions{}, &qa_, &qb_);
  ASSERT_EQ(qb_, old_qb) << "the test wants the QPN taken again";
  // The window is free again: a bound type 2 window would not bind (o10-37.2.30). The new
  // QP with the old one's number does not inherit the old binding.
  EXPECT_EQ(Bind(qb_, *mw, NextKey(key), kWin, 64, IBV_ACCESS_REMOTE_WRITE).status, IBV_WC_SUCCESS);
  EXPECT_EQ(Write(key, pair_.b.va(kWin), 8), IBV_WC_REM_ACCESS_ERR);
}

TEST_F(MemoryWindowTest, BindRunsAfterTheWorkBeforeIt) {
  auto mw = Alloc(IBV_MW_TYPE_2);
  ASSERT_TRUE(mw.ok());
  // B reads from A, then binds: the READ completes first, then the bind.
  Host& b = pair_.b;
  SendWr rd = MakeSend(1, IBV_WR_RDMA_READ, b, 3 << 20, 100000);
  rd.remote_addr = pair_.a.va(kSrc);
  rd.rkey = pair_.a.mr.rkey;
  ASSERT_TRUE(b.dev->PostSend(qb_, rd).ok());
  SendWr wr{};
  wr.wr_id = 2;
  wr.opcode = IBV_WR_BIND_MW;
  wr.send_flags = IBV_SEND_SIGNALED;
  wr.rkey = NextKey(mw->rkey);
  wr.bind = MwBind{mw->handle, bind_mr_.lkey, b.va(kWin), 64, IBV_ACCESS_REMOTE_READ};
  ASSERT_TRUE(b.dev->PostSend(qb_, wr).ok());
  std::vector<ibv_wc> wc;
  ASSERT_TRUE(pair_.WaitCq(b, b.scq, 2, &wc));
  EXPECT_EQ(wc[0].wr_id, 1u);
  EXPECT_EQ(wc[0].opcode, IBV_WC_RDMA_READ);
  EXPECT_EQ(wc[1].wr_id, 2u);
  EXPECT_EQ(wc[1].opcode, IBV_WC_BIND_MW);
  EXPECT_EQ(wc[1].status, IBV_WC_SUCCESS);
}

TEST_F(MemoryWindowTest, UdQpRefusesWindowOperations) {
  uint32_t ua, ub, ah_ab, ah_ba;
  QpOptions opt;
  opt.type = IBV_QPT_UD;
  pair_.CreateUd(opt, &ua, &ub, &ah_ab, &ah_ba);
  auto mw = Alloc(IBV_MW_TYPE_2);
  ASSERT_TRUE(mw.ok());
  SendWr wr{};
  wr.opcode = IBV_WR_BIND_MW;
  wr.rkey = NextKey(mw->rkey);
  wr.bind = MwBind{mw->handle, bind_mr_.lkey, pair_.b.va(kWin), 64, IBV_ACCESS_REMOTE_READ};
  EXPECT_EQ(pair_.b.dev->PostSend(ub, wr).code(), absl::StatusCode::kInvalidArgument);
}

TEST_F(MemoryWindowTest, AllocRefusesUnknownTypeAndPd) {
  EXPECT_EQ(pair_.b.dev->AllocMw(pair_.b.pd, static_cast<ibv_mw_type>(3)).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(pair_.b.dev->AllocMw(999, IBV_MW_TYPE_1).status().code(), absl::StatusCode::kNotFound);
  ibv_device_attr attr;
  pair_.b.dev->QueryDevice(&attr);
  EXPECT_GT(attr.max_mw, 0);
  EXPECT_TRUE(attr.device_cap_flags & IBV_DEVICE_MEM_WINDOW);
  EXPECT_TRUE(attr.device_cap_flags & IBV_DEVICE_MEM_WINDOW_TYPE_2B);
}

}  // namespace
}  // namespace vrdma::driver::testing
