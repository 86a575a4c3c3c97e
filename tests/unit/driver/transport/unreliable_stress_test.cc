// UC and UD over a link that drops, duplicates, reorders and corrupts: every message that
// is delivered is delivered whole and intact (the ICRC stops damage; a UC message with a
// lost packet is dropped whole), and the sender's completions all succeed. Unreliable
// service may lose or (like rxe's UC, which starts a message at any FIRST/ONLY) repeat a
// message; it may never damage one.
#include <cstring>
#include <random>

#include "tests/unit/driver/transport/engine_pair.h"

namespace vrdma::driver::testing {
namespace {

constexpr uint32_t kSlot = 16384;  // receive buffer per message

class UnreliableStressTest : public ::testing::TestWithParam<int> {};

TEST_P(UnreliableStressTest, DeliveredMessagesAreWholeAndIntact) {
  const int type = GetParam();
  EnginePair pair(77 + type, 8 << 20);
  FaultConfig faults;
  faults.drop = 0.05;
  faults.duplicate = 0.05;
  faults.reorder = 0.05;
  faults.corrupt = 0.02;
  pair.link().SetFaults(TestLink::kAtoB, faults);
  QpOptions opt;
  opt.type = type;
  opt.mtu = IBV_MTU_1024;
  uint32_t qa, qb, ah_ab = 0, ah_ba = 0;
  if (type == IBV_QPT_UD) {
    pair.CreateUd(opt, &qa, &qb, &ah_ab, &ah_ba);
  } else {
    pair.Connect(opt, &qa, &qb);
  }
  Host& a = pair.a;
  Host& b = pair.b;
  constexpr int kMessages = 400;
  constexpr int kRecvs = 256;
  std::mt19937 rng(5);
  for (int i = 0; i < kRecvs; ++i) {
    ASSERT_TRUE(b.dev->PostRecv(qb, MakeRecv(i, b, uint64_t(i) * kSlot, kSlot)).ok());
  }
  std::vector<uint32_t> lens(kMessages);
  int sent = 0, send_done = 0;
  std::vector<ibv_wc> rwc;
  uint64_t steps = 0;
  while (send_done < kMessages) {
    while (sent < kMessages && sent - send_done < 32) {
      // UD: one packet (up to 4 KiB, the port MTU); UC: up to 12 packets of 1 KiB.
      uint32_t len = type == IBV_QPT_UD ? rng() % 4097 : 1 + rng() % 12000;
      lens[sent] = len;
      FillPattern(a.at(uint64_t(sent) * kSlot), len, sent);
      SendWr w = MakeSend(sent, IBV_WR_SEND_WITH_IMM, a, uint64_t(sent) * kSlot, len);
      w.imm_be = htobe32(sent);
      w.ah = ah_ab;
      w.remote_qpn = qb;
      w.remote_qkey = 0x11111111;
      ASSERT_TRUE(a.dev->PostSend(qa, w).ok());
      ++sent;
    }
    pair.Step();
    ibv_wc wc[32];
    int n = *a.dev->PollCq(a.scq, wc, 32);
    for (int i = 0; i < n; ++i) {
      ASSERT_EQ(wc[i].status, IBV_WC_SUCCESS);
      ASSERT_EQ(wc[i].wr_id, static_cast<uint64_t>(send_done));
      ++send_done;
    }
    ASSERT_LT(++steps, 5'000'000u);
  }
  pair.RunUntil([] { return false; }, 5'000'000);
  ibv_wc wc[64];
  int n;
  while ((n = *b.dev->PollCq(b.rcq, wc, 64)) > 0) rwc.insert(rwc.end(), wc, wc + n);
  const uint32_t grh = type == IBV_QPT_UD ? 40 : 0;
  std::vector<uint8_t> expect(kSlot);
  for (const ibv_wc& c : rwc) {
    ASSERT_EQ(c.status, IBV_WC_SUCCESS);
    uint32_t id = be32toh(c.imm_data);
    ASSERT_LT(id, static_cast<uint32_t>(kMessages));
    ASSERT_EQ(c.byte_len, lens[id] + grh) << "message " << id << " not whole";
    FillPattern(expect.data(), lens[id], id);
    ASSERT_EQ(0, std::memcmp(b.at(c.wr_id * kSlot + grh), expect.data(), lens[id]))
        << "message " << id << " damaged";
  }
  // Most messages get through; some are lost, as unreliable service allows.
  EXPECT_GT(rwc.size(), kMessages / 3u);
  EXPECT_LT(rwc.size(), static_cast<size_t>(kRecvs) + 1);
  EXPECT_GT(pair.link().counters(TestLink::kAtoB).corrupted, 0u);
}

INSTANTIATE_TEST_SUITE_P(UcAndUd, UnreliableStressTest, ::testing::Values(IBV_QPT_UC, IBV_QPT_UD),
                         [](const auto& info) { return info.param == IBV_QPT_UC ? "UC" : "UD"; });

}  // namespace
}  // namespace vrdma::driver::testing
