// Randomized stress: thousands of mixed work requests (every RC opcode, sizes 0 B to
// 1 MiB, several MTUs, SRQ and plain receive queues) over a link that drops,
// duplicates, reorders and corrupts. Memory and the completion streams must equal a
// reference model exactly; every wait is bounded.
#include <cstdlib>
#include <cstring>
#include <deque>
#include <map>
#include <random>

#include "tests/unit/driver/transport/engine_pair.h"

namespace vrdma::driver::testing {
namespace {

constexpr size_t kMem = 24 << 20;
// Layout of each host's registered memory.
constexpr uint64_t kSrcOff = 0;  // sources of SEND/WRITE, never written
constexpr uint64_t kSrcLen = 2 << 20;
constexpr uint64_t kTargetOff = 2 << 20;  // written by the peer's WRITEs and ATOMICs
constexpr uint64_t kTargetLen = 4 << 20;
constexpr uint64_t kReadDstOff = 6 << 20;  // where this host's READs land
constexpr uint64_t kReadDstLen = 4 << 20;
constexpr uint64_t kAtomicResOff = 10 << 20;  // one 8-byte slot per atomic
constexpr uint64_t kRecvOff = 12 << 20;       // receive buffers, one slot each
constexpr uint32_t kRecvSlot = 1 << 20;
constexpr uint32_t kRecvSlots = 12;

struct Expected {
  uint64_t wr_id;
  ibv_wc_opcode opcode;
  uint32_t byte_len;
};

struct ExpectedRecv {
  uint64_t wr_id;
  ibv_wc_opcode opcode;
  uint32_t byte_len;
  bool imm;
  uint32_t imm_be;
  uint32_t inv_rkey;  // SEND with Invalidate: the rkey the receive must report, else 0
};

// One direction of traffic: `req` posts to `qp_req`, `resp` receives on `qp_resp`.
struct Flow {
  Host* req;
  Host* resp;
  uint32_t qp_req;
  uint32_t qp_resp;
  bool srq;
  uint32_t srq_handle;
  std::vector<uint8_t> model_req;   // reference image of req's memory
  std::vector<uint8_t> model_resp;  // reference image of resp's memory
  std::deque<Expected> send_cqes;
  std::deque<ExpectedRecv> recv_cqes;
  uint32_t recv_posted = 0;
  uint32_t outstanding = 0;
  // Source ranges of READs not yet complete: a responder may fetch READ data after it
  // has executed later requests (that is what the fence is for, IBTA 10.8.3.3), so the
  // model keeps later WRITEs and ATOMICs off them.
  std::map<uint64_t, std::pair<uint64_t, uint64_t>> reads_in_flight;  // wr_id -> [from, to)
  bool Overlaps(uint64_t from, uint64_t len) const {
    for (const auto& [id, r] : reads_in_flight)
      if (from < r.second && r.first < from + len) return true;
    return false;
  }
};

uint32_t RandomSize(std::mt19937_64& rng) {
  uint32_t r = rng() % 1000;
  if (r < 30) return 0;
  if (r < 700) return 1 + rng() % 4096;
  if (r < 970) return 4097 + rng() % 65536;
  return 65536 + rng() % ((1 << 20) - 65536 + 1);  // up to 1 MiB
}

// Two hosts on a link that drops, duplicates, reorders and corrupts; or (one_device) two
// vdevs of one engine behind its internal switch, where payloads of at least 512 B move
// once (zero-copy frames read in place) and RDMA WRITEs and READs between QPs in step
// run with no frames (direct.cc), interleaved with the framed operations.
void RunStress(ibv_mtu mtu, bool one_device) {
  const bool sanitized = std::getenv("VRDMA_SANITIZED") != nullptr;
  // VRDMA_STRESS_SEED explores other traffic mixes and fault patterns; tests use seed 0.
  const char* seed_env = std::getenv("VRDMA_STRESS_SEED");
  const uint64_t seed = seed_env ? std::strtoull(seed_env, nullptr, 10) : 0;
  const int kWrs = sanitized ? 600 : 2500;
  EnginePair pair(/*seed=*/1234 + mtu + seed * 1000003, kMem, nullptr, /*tx_chains=*/false,
                  one_device);
  MrShare share_a, share_b;
  if (one_device) {
    ASSERT_TRUE(pair.a.dev->SetMrTxShare(pair.a.mr.lkey, &share_a.info).ok());
    ASSERT_TRUE(pair.b.dev->SetMrTxShare(pair.b.mr.lkey, &share_b.info).ok());
  } else {
    FaultConfig faults;
    faults.drop = 0.05;
    faults.duplicate = 0.05;
    faults.reorder = 0.05;
    faults.corrupt = 0.01;
    pair.link().SetFaults(TestLink::kAtoB, faults);
    pair.link().SetFaults(TestLink::kBtoA, faults);
  }

  QpOptions plain;
  plain.mtu = mtu;
  plain.max_send_wr = 64;
  plain.max_recv_wr = 64;
  plain.timeout = 8;
  plain.retry_cnt = 7;
  QpOptions with_srq = plain;
  with_srq.srq = true;
  uint32_t q1a, q1b, q2a, q2b;
  pair.Connect(plain, &q1a, &q1b);     // A -> B, plain receive queue
  pair.Connect(with_srq, &q2a, &q2b);  // B -> A, A receives from its SRQ

  for (Host* h : {&pair.a, &pair.b}) FillPattern(h->at(kSrcOff), kSrcLen, h == &pair.a ? 1 : 2);
  for (Host* h : {&pair.a, &pair.b})
    FillPattern(h->at(kTargetOff), kTargetLen, h == &pair.a ? 3 : 4);
  Flow flows[2] = {
      {&pair.a, &pair.b, q1a, q1b, false, 0, {}, {}, {}, {}, 0, 0, {}},
      {&pair.b, &pair.a, q2b, q2a, true, pair.SrqOf(pair.a), {}, {}, {}, {}, 0, 0, {}},
  };
  // Both flows share the hosts' memory images: the model of A is one vector.
  std::vector<uint8_t> model_a = pair.a.mem, model_b = pair.b.mem;

  std::mt19937_64 rng(mtu * 7919 + 17 + seed);
  uint64_t next_id = 1;
  int posted = 0;
  uint64_t steps = 0;
  const uint64_t kMaxSteps = sanitized ? 20'000'000 : 60'000'000;
  auto model_of = [&](Host* h) -> std::vector<uint8_t>& {
    return h == &pair.a ? model_a : model_b;
  };

  auto post_one = [&](Flow& f) {
    Host& rq = *f.req;
    Host& rs = *f.resp;
    std::vector<uint8_t>& mreq = model_of(f.req);
    std::vector<uint8_t>& mresp = model_of(f.resp);
    uint32_t kind = rng() % 8;
    uint32_t len = RandomSize(rng);
    uint64_t id = next_id++;
    SendWr wr;
    wr.wr_id = id;
    wr.send_flags = IBV_SEND_SIGNALED;
    wr.num_sge = 1;
    uint64_t src = kSrcOff + rng() % (kSrcLen - len + 1);
    wr.sg_list[0] = Sge{rq.va(src), len, rq.mr.lkey};
    // Short SENDs and WRITEs go inline half of the time.
    if ((kind <= 3 || kind == 7) && len <= 64 && (rng() & 1)) {
      wr.send_flags |= IBV_SEND_INLINE;
      wr.inline_len = len;
      std::memcpy(wr.inline_data, mreq.data() + src, len);
    }
    if (kind <= 1 || kind == 7) {  // SEND (+ immediate, + invalidate): a receive slot
      if (f.recv_posted >= kRecvSlots) return false;
      uint32_t slot = static_cast<uint32_t>((id % kRecvSlots));
      RecvWr r = MakeRecv(id, rs, kRecvOff + slot * kRecvSlot, kRecvSlot);
      // Receive slots are reused only after their completion: one per outstanding SEND.
      for (const auto& e : f.recv_cqes)
        if (e.wr_id % kRecvSlots == slot) return false;
      absl::Status st =
          f.srq ? rs.dev->PostSrqRecv(f.srq_handle, r) : rs.dev->PostRecv(f.qp_resp, r);
      EXPECT_TRUE(st.ok()) << st;
      wr.opcode = kind == 0 ? IBV_WR_SEND : kind == 1 ? IBV_WR_SEND_WITH_IMM : IBV_WR_SEND_WITH_INV;
      wr.imm_be = static_cast<uint32_t>(rng());
      if (kind == 7) {
        // A fresh MR on the responder for the SEND to invalidate.
        auto victim = rs.dev->RegMr(rs.pd, 0x10000, rs.at(0), 4096,
                                    IBV_ACCESS_LOCAL_WRITE | IBV_ACCESS_REMOTE_WRITE);
        EXPECT_TRUE(victim.ok()) << victim.status();
        wr.invalidate_rkey = victim->rkey;
      }
      std::memcpy(mresp.data() + kRecvOff + slot * kRecvSlot, mreq.data() + src, len);
      f.recv_cqes.push_back(
          {id, IBV_WC_RECV, len, kind == 1, wr.imm_be, kind == 7 ? wr.invalidate_rkey : 0});
      f.send_cqes.push_back({id, IBV_WC_SEND, len});
    } else if (kind <= 3) {  // RDMA WRITE (+ immediate)
      uint64_t dst = kTargetOff + rng() % (kTargetLen - len + 1);
      if (f.Overlaps(dst, len)) return false;
      wr.opcode = kind == 2 ? IBV_WR_RDMA_WRITE : IBV_WR_RDMA_WRITE_WITH_IMM;
      wr.remote_addr = rs.va(dst);
      wr.rkey = rs.mr.rkey;
      if (kind == 3) {
        if (f.recv_posted >= kRecvSlots) return false;
        RecvWr r = MakeRecv(id, rs, kRecvOff, 0);
        absl::Status st =
            f.srq ? rs.dev->PostSrqRecv(f.srq_handle, r) : rs.dev->PostRecv(f.qp_resp, r);
        EXPECT_TRUE(st.ok()) << st;
        wr.imm_be = static_cast<uint32_t>(rng());
        f.recv_cqes.push_back({id, IBV_WC_RECV_RDMA_WITH_IMM, len, true, wr.imm_be, 0});
      }
      std::memcpy(mresp.data() + dst, mreq.data() + src, len);
      f.send_cqes.push_back({id, IBV_WC_RDMA_WRITE, len});
    } else if (kind == 4) {  // RDMA READ
      uint64_t from = kTargetOff + rng() % (kTargetLen - len + 1);
      uint64_t to = kReadDstOff + rng() % (kReadDstLen - len + 1);
      wr.opcode = IBV_WR_RDMA_READ;
      f.reads_in_flight[id] = {from, from + len};
      wr.sg_list[0] = Sge{rq.va(to), len, rq.mr.lkey};
      wr.remote_addr = rs.va(from);
      wr.rkey = rs.mr.rkey;
      std::memcpy(mreq.data() + to, mresp.data() + from, len);
      f.send_cqes.push_back({id, IBV_WC_RDMA_READ, len});
    } else {                                            // ATOMIC compare-swap or fetch-add
      uint64_t target = kTargetOff + (rng() % 64) * 8;  // a few hot words
      if (f.Overlaps(target, 8)) return false;
      uint64_t res = kAtomicResOff + (id % 100000) * 8;
      uint64_t cur;
      std::memcpy(&cur, mresp.data() + target, 8);
      wr.sg_list[0] = Sge{rq.va(res), 8, rq.mr.lkey};
      wr.remote_addr = rs.va(target);
      wr.rkey = rs.mr.rkey;
      uint64_t next = cur;
      if (kind == 5) {
        wr.opcode = IBV_WR_ATOMIC_FETCH_AND_ADD;
        wr.compare_add = rng();
        next = cur + wr.compare_add;
      } else {
        wr.opcode = IBV_WR_ATOMIC_CMP_AND_SWP;
        wr.compare_add = (rng() & 1) ? cur : rng();
        wr.swap = rng();
        if (wr.compare_add == cur) next = wr.swap;
      }
      std::memcpy(mreq.data() + res, &cur, 8);
      std::memcpy(mresp.data() + target, &next, 8);
      f.send_cqes.push_back({id, kind == 5 ? IBV_WC_FETCH_ADD : IBV_WC_COMP_SWAP, 8});
    }
    absl::Status st = rq.dev->PostSend(f.qp_req, wr);
    EXPECT_TRUE(st.ok()) << st;
    f.outstanding++;
    return true;
  };

  auto reap = [&](Flow& f) {
    ibv_wc wc[64];
    int n = *f.req->dev->PollCq(f.req->scq, wc, 64);
    for (int i = 0; i < n; ++i) {
      ASSERT_FALSE(f.send_cqes.empty()) << "unexpected send completion";
      Expected e = f.send_cqes.front();
      f.send_cqes.pop_front();
      ASSERT_EQ(wc[i].status, IBV_WC_SUCCESS)
          << ibv_wc_status_str(wc[i].status) << " wr " << wc[i].wr_id << " opcode " << e.opcode
          << " len " << e.byte_len << " flow " << (&f - flows);
      ASSERT_EQ(wc[i].wr_id, e.wr_id);
      ASSERT_EQ(wc[i].opcode, e.opcode);
      ASSERT_EQ(wc[i].byte_len, e.byte_len);
      f.reads_in_flight.erase(e.wr_id);
      f.outstanding--;
    }
    n = *f.resp->dev->PollCq(f.resp->rcq, wc, 64);
    for (int i = 0; i < n; ++i) {
      // Both flows receive on different hosts, so each host's receive CQ has one flow.
      ASSERT_FALSE(f.recv_cqes.empty()) << "unexpected receive completion";
      ExpectedRecv e = f.recv_cqes.front();
      f.recv_cqes.pop_front();
      ASSERT_EQ(wc[i].status, IBV_WC_SUCCESS) << ibv_wc_status_str(wc[i].status);
      ASSERT_EQ(wc[i].wr_id, e.wr_id);
      ASSERT_EQ(wc[i].opcode, e.opcode);
      ASSERT_EQ(wc[i].byte_len, e.byte_len);
      ASSERT_EQ(static_cast<bool>(wc[i].wc_flags & IBV_WC_WITH_IMM), e.imm);
      if (e.imm) {
        ASSERT_EQ(wc[i].imm_data, e.imm_be);
      }
      ASSERT_EQ(static_cast<bool>(wc[i].wc_flags & IBV_WC_WITH_INV), e.inv_rkey != 0);
      if (e.inv_rkey) {
        ASSERT_EQ(wc[i].invalidated_rkey, e.inv_rkey);
        const MemoryRegion* mr = f.resp->dev->FindMr(e.inv_rkey);
        ASSERT_TRUE(mr && mr->invalidated) << "SEND with Invalidate left the rkey valid";
        ASSERT_TRUE(f.resp->dev->DeregMr(e.inv_rkey).ok());
      }
    }
  };

  while (posted < kWrs || flows[0].outstanding || flows[1].outstanding ||
         !flows[0].recv_cqes.empty() || !flows[1].recv_cqes.empty()) {
    for (Flow& f : flows) {
      f.recv_posted = static_cast<uint32_t>(f.recv_cqes.size());
      // One device: phases of 100 WRs with 48, 1 or 3 outstanding, so that many WQEs find
      // the QPs in step and run direct, between framed ones.
      constexpr uint32_t kCaps[] = {48, 1, 3};
      const uint32_t cap = one_device ? kCaps[(posted / 100) % 3] : 48;
      while (posted < kWrs && f.outstanding < cap && post_one(f)) ++posted;
    }
    pair.Step();
    for (Flow& f : flows) {
      reap(f);
      if (::testing::Test::HasFatalFailure()) return;
    }
    ASSERT_LT(++steps, kMaxSteps) << "no progress: posted " << posted << " outstanding "
                                  << flows[0].outstanding << "/" << flows[1].outstanding;
  }
  // Memory of both hosts equals the model, byte for byte.
  // Where memory differs from the model, say where (the region names the operation).
  for (auto [name, mem, model] :
       {std::tuple{"A", &pair.a.mem, &model_a}, std::tuple{"B", &pair.b.mem, &model_b}}) {
    size_t first = SIZE_MAX, last = 0, count = 0;
    for (size_t i = 0; i < mem->size(); ++i) {
      if ((*mem)[i] != (*model)[i]) {
        if (first == SIZE_MAX) first = i;
        last = i;
        ++count;
      }
    }
    if (count)
      std::printf("host %s differs in %zu bytes within [%#zx, %#zx]\n", name, count, first, last);
  }
  EXPECT_TRUE(pair.a.mem == model_a) << "host A memory differs from the model";
  EXPECT_TRUE(pair.b.mem == model_b) << "host B memory differs from the model";
  const auto& ca = pair.a.dev->counters();
  const auto& cb = pair.b.dev->counters();
  if (one_device) {
    // Both ways of moving data took part: frames (read in place) and none.
    EXPECT_GT(ca.direct_wqes, 100u);
    if ((128u << mtu) >= 512) {  // zero_copy_min: shorter payloads are copied into frames
      EXPECT_GT(ca.rx_in_place, 0u);
    }
    EXPECT_EQ(share_a.refs(), 1);
    EXPECT_EQ(share_b.refs(), 1);
  } else {
    EXPECT_GT(ca.retransmits + cb.retransmits, 0u);
    EXPECT_GT(cb.rx_duplicate + ca.rx_duplicate, 0u);
    EXPECT_GT(ca.rx_parse_drops[static_cast<size_t>(wire::DropReason::kBadIcrc)] +
                  cb.rx_parse_drops[static_cast<size_t>(wire::DropReason::kBadIcrc)],
              0u);
  }
  std::printf(
      "mtu %u%s: %d WRs, %llu steps, virtual %.3f s, retransmits %llu, timeouts %llu, direct "
      "%llu\n",
      128u << mtu, one_device ? " (one device)" : "", posted,
      static_cast<unsigned long long>(steps), pair.now() / 1e9,
      static_cast<unsigned long long>(ca.retransmits + cb.retransmits),
      static_cast<unsigned long long>(ca.timeouts + cb.timeouts),
      static_cast<unsigned long long>(ca.direct_wqes));
}

class StressTest : public ::testing::TestWithParam<ibv_mtu> {};

TEST_P(StressTest, MixedTrafficOverLossyLinkMatchesModel) { RunStress(GetParam(), false); }

TEST_P(StressTest, MixedTrafficBetweenTwoVdevsOfOneDeviceMatchesModel) {
  RunStress(GetParam(), true);
}

INSTANTIATE_TEST_SUITE_P(Mtus, StressTest,
                         ::testing::Values(IBV_MTU_256, IBV_MTU_1024, IBV_MTU_4096));

}  // namespace
}  // namespace vrdma::driver::testing
