#include "vdev/rings/wqe_parse.h"

#include <gtest/gtest.h>

#include <cstring>
#include <random>
#include <vector>

#include "vdev/protocol/protocol.h"

namespace vrdma {
namespace {

constexpr SendQueueLimits kLimits{proto::SendWqeStride(4, 64), 4, 64};

std::vector<uint8_t> Slot(const proto::SendWqe& h, const void* body, size_t len) {
  std::vector<uint8_t> s(kLimits.stride, 0xcc);
  std::memcpy(s.data(), &h, sizeof h);
  if (len) std::memcpy(s.data() + sizeof h, body, len);
  return s;
}

TEST(WqeParse, SendWithSges) {
  proto::SendWqe h{};
  h.wr_id = 9;
  h.opcode = IBV_WR_RDMA_WRITE;
  h.send_flags = IBV_SEND_SIGNALED;
  h.num_sge = 2;
  h.remote_addr = 0x1000;
  h.rkey = 0x77;
  proto::Sge sges[2] = {{0x10, 100, 5}, {0x20, 200, 6}};
  auto s = Slot(h, sges, sizeof sges);
  SendWr wr;
  ASSERT_EQ(ParseSendWqe(s.data(), kLimits, &wr), WqeCheck::kOk);
  EXPECT_EQ(wr.wr_id, 9u);
  EXPECT_EQ(wr.opcode, IBV_WR_RDMA_WRITE);
  EXPECT_EQ(wr.num_sge, 2u);
  EXPECT_EQ(wr.sg_list[1].addr, 0x20u);
  EXPECT_EQ(wr.sg_list[1].length, 200u);
  EXPECT_EQ(wr.sg_list[1].lkey, 6u);
  EXPECT_EQ(wr.rkey, 0x77u);
}

TEST(WqeParse, InlineData) {
  proto::SendWqe h{};
  h.opcode = IBV_WR_SEND;
  h.send_flags = IBV_SEND_INLINE;
  h.inline_len = 64;
  uint8_t data[64];
  for (int i = 0; i < 64; ++i) data[i] = static_cast<uint8_t>(i);
  auto s = Slot(h, data, sizeof data);
  SendWr wr;
  ASSERT_EQ(ParseSendWqe(s.data(), kLimits, &wr), WqeCheck::kOk);
  EXPECT_EQ(wr.inline_len, 64u);
  EXPECT_EQ(0, std::memcmp(wr.inline_data, data, 64));
}

TEST(WqeParse, RefusesWhatTheQueueDoesNotAllow) {
  SendWr wr;
  proto::SendWqe h{};
  h.opcode = 99;
  EXPECT_EQ(ParseSendWqe(Slot(h, nullptr, 0).data(), kLimits, &wr), WqeCheck::kBadOpcode);
  h.opcode = IBV_WR_SEND;
  h.send_flags = 1u << 20;
  EXPECT_EQ(ParseSendWqe(Slot(h, nullptr, 0).data(), kLimits, &wr), WqeCheck::kBadFlags);
  h.send_flags = 0;
  h.num_sge = 5;
  EXPECT_EQ(ParseSendWqe(Slot(h, nullptr, 0).data(), kLimits, &wr), WqeCheck::kTooManySges);
  h.num_sge = 0xffffffff;
  EXPECT_EQ(ParseSendWqe(Slot(h, nullptr, 0).data(), kLimits, &wr), WqeCheck::kTooManySges);
  h.send_flags = IBV_SEND_INLINE;
  h.inline_len = 65;
  EXPECT_EQ(ParseSendWqe(Slot(h, nullptr, 0).data(), kLimits, &wr), WqeCheck::kInlineTooLong);
  h.inline_len = 0x80000000;
  EXPECT_EQ(ParseSendWqe(Slot(h, nullptr, 0).data(), kLimits, &wr), WqeCheck::kInlineTooLong);
  // The wr_id of a refused WQE is still known, for its error completion.
  h.wr_id = 1234;
  EXPECT_NE(ParseSendWqe(Slot(h, nullptr, 0).data(), kLimits, &wr), WqeCheck::kOk);
  EXPECT_EQ(wr.wr_id, 1234u);
}

TEST(WqeParse, RandomSlotsNeverExceedTheLimits) {
  std::mt19937 g(7);
  std::vector<uint8_t> slot(kLimits.stride);
  for (int i = 0; i < 200000; ++i) {
    for (auto& b : slot) b = static_cast<uint8_t>(g());
    if (i & 1) {  // bias towards plausible opcodes and small counts
      uint32_t op = g() % 9, n = g() % 8;
      std::memcpy(slot.data() + 8, &op, 4);
      std::memcpy(slot.data() + 16, &n, 4);
    }
    SendWr wr;
    if (ParseSendWqe(slot.data(), kLimits, &wr) == WqeCheck::kOk) {
      ASSERT_LE(wr.num_sge, kLimits.max_sge);
      ASSERT_LE(wr.inline_len, kLimits.max_inline);
    }
    RecvWr rwr;
    if (ParseRecvWqe(slot.data(), 4, &rwr) == WqeCheck::kOk) {
      ASSERT_LE(rwr.num_sge, 4u);
    }
  }
}

TEST(WqeParse, Recv) {
  std::vector<uint8_t> s(proto::RecvWqeStride(2), 0);
  proto::RecvWqe h{55, 2, 0};
  proto::Sge sges[2] = {{1, 2, 3}, {4, 5, 6}};
  std::memcpy(s.data(), &h, sizeof h);
  std::memcpy(s.data() + sizeof h, sges, sizeof sges);
  RecvWr wr;
  ASSERT_EQ(ParseRecvWqe(s.data(), 2, &wr), WqeCheck::kOk);
  EXPECT_EQ(wr.wr_id, 55u);
  EXPECT_EQ(wr.sg_list[1].lkey, 6u);
  EXPECT_EQ(ParseRecvWqe(s.data(), 1, &wr), WqeCheck::kTooManySges);
}

}  // namespace
}  // namespace vrdma
