#include "driver/res/work_request.h"

#include <cstring>

#include "gtest/gtest.h"

namespace vrdma::driver {
namespace {

SendWr Filled() {
  SendWr w;
  w.wr_id = 0x1122334455667788;
  w.opcode = IBV_WR_ATOMIC_CMP_AND_SWP;
  w.send_flags = IBV_SEND_SIGNALED | IBV_SEND_FENCE;
  w.imm_be = 0x01020304;
  w.invalidate_rkey = 0x0a0b0c0d;
  w.remote_addr = 0xdead0000beef;
  w.rkey = 0x4444;
  w.bind = MwBind{7, 8, 9, 10, 11};
  w.compare_add = 12;
  w.swap = 13;
  w.ah = 14;
  w.remote_qpn = 15;
  w.remote_qkey = 16;
  w.remote_srqn = 17;
  return w;
}

// A slot reused for a new WR holds exactly that WR where the WR is defined: every field,
// its SGEs up to num_sge and its inline bytes up to inline_len.
TEST(CopySendWr, CopiesEveryFieldAndTheUsedSgesAndInlineBytes) {
  SendWr src = Filled();
  src.num_sge = 2;
  src.sg_list[0] = Sge{100, 200, 300};
  src.sg_list[1] = Sge{400, 500, 600};
  src.inline_len = 5;
  std::memcpy(src.inline_data, "hello", 5);
  SendWr dst;
  dst.sg_list[2] = Sge{1, 2, 3};  // beyond num_sge: left as it was
  CopySendWr(src, &dst);
  EXPECT_EQ(dst.wr_id, src.wr_id);
  EXPECT_EQ(dst.opcode, src.opcode);
  EXPECT_EQ(dst.send_flags, src.send_flags);
  EXPECT_EQ(dst.num_sge, 2u);
  EXPECT_EQ(dst.sg_list[0].addr, 100u);
  EXPECT_EQ(dst.sg_list[1].lkey, 600u);
  EXPECT_EQ(dst.sg_list[2].addr, 1u);
  EXPECT_EQ(dst.imm_be, src.imm_be);
  EXPECT_EQ(dst.invalidate_rkey, src.invalidate_rkey);
  EXPECT_EQ(dst.remote_addr, src.remote_addr);
  EXPECT_EQ(dst.rkey, src.rkey);
  EXPECT_EQ(dst.bind.mw, 7u);
  EXPECT_EQ(dst.bind.mr_lkey, 8u);
  EXPECT_EQ(dst.bind.addr, 9u);
  EXPECT_EQ(dst.bind.length, 10u);
  EXPECT_EQ(dst.bind.access, 11);
  EXPECT_EQ(dst.compare_add, 12u);
  EXPECT_EQ(dst.swap, 13u);
  EXPECT_EQ(dst.ah, 14u);
  EXPECT_EQ(dst.remote_qpn, 15u);
  EXPECT_EQ(dst.remote_qkey, 16u);
  EXPECT_EQ(dst.remote_srqn, 17u);
  EXPECT_EQ(dst.inline_len, 5u);
  EXPECT_EQ(0, std::memcmp(dst.inline_data, "hello", 5));
}

TEST(CopySendWr, CountsBeyondTheArraysCopyOnlyTheArrays) {
  // The engine refuses such WRs before they are queued; the copy itself stays in bounds.
  SendWr src = Filled();
  src.num_sge = 1000;
  src.inline_len = 100000;
  src.sg_list[kMaxSgePerWqe - 1] = Sge{9, 9, 9};
  src.inline_data[kMaxInlineData - 1] = 0x5a;
  SendWr dst;
  CopySendWr(src, &dst);
  EXPECT_EQ(dst.num_sge, 1000u);
  EXPECT_EQ(dst.sg_list[kMaxSgePerWqe - 1].addr, 9u);
  EXPECT_EQ(dst.inline_data[kMaxInlineData - 1], 0x5a);
}

}  // namespace
}  // namespace vrdma::driver
