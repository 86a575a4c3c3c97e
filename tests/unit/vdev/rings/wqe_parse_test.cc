#include "vdev/rings/wqe_parse.h"

#include <gtest/gtest.h>
#include <sys/mman.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <random>
#include <vector>

#include "vdev/protocol/protocol.h"

namespace vrdma::vdev {
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
  driver::SendWr wr;
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
  driver::SendWr wr;
  ASSERT_EQ(ParseSendWqe(s.data(), kLimits, &wr), WqeCheck::kOk);
  EXPECT_EQ(wr.inline_len, 64u);
  EXPECT_EQ(0, std::memcmp(wr.inline_data, data, 64));
}

TEST(WqeParse, RefusesWhatTheQueueDoesNotAllow) {
  driver::SendWr wr;
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
    driver::SendWr wr;
    if (ParseSendWqe(slot.data(), kLimits, &wr) == WqeCheck::kOk) {
      ASSERT_LE(wr.num_sge, kLimits.max_sge);
      ASSERT_LE(wr.inline_len, kLimits.max_inline);
    }
    driver::RecvWr rwr;
    if (ParseRecvWqe(slot.data(), 4, &rwr) == WqeCheck::kOk) {
      ASSERT_LE(rwr.num_sge, 4u);
    }
  }
}

// Every opcode the engine knows is accepted with its fields copied; each field of the
// header lands where the engine reads it.
TEST(WqeParse, EveryOpcodeAndItsFields) {
  const ibv_wr_opcode ops[] = {IBV_WR_SEND,
                               IBV_WR_SEND_WITH_IMM,
                               IBV_WR_SEND_WITH_INV,
                               IBV_WR_RDMA_WRITE,
                               IBV_WR_RDMA_WRITE_WITH_IMM,
                               IBV_WR_RDMA_READ,
                               IBV_WR_ATOMIC_CMP_AND_SWP,
                               IBV_WR_ATOMIC_FETCH_AND_ADD,
                               IBV_WR_ATOMIC_WRITE};
  for (ibv_wr_opcode op : ops) {
    SCOPED_TRACE(op);
    proto::SendWqe h{};
    h.wr_id = 0x1122334455667788;
    h.opcode = op;
    h.send_flags = IBV_SEND_SIGNALED | IBV_SEND_SOLICITED | IBV_SEND_FENCE;
    h.num_sge = 1;
    h.imm_data = 0xa1b2c3d4;
    h.rkey = 0xdeadbeef;
    h.remote_addr = 0xfedcba9876543210;
    h.compare_add = 0x0102030405060708;
    h.swap = 0x8070605040302010;
    h.ud.ah = 77;
    h.ud.remote_qpn = 0xabcdef;
    h.ud.remote_qkey = 0x11111111;
    proto::Sge sge{0x5000, 4096, 9};
    driver::SendWr wr;
    ASSERT_EQ(ParseSendWqe(Slot(h, &sge, sizeof sge).data(), kLimits, &wr), WqeCheck::kOk);
    EXPECT_EQ(wr.opcode, op);
    EXPECT_EQ(wr.wr_id, h.wr_id);
    EXPECT_EQ(wr.send_flags, h.send_flags);
    EXPECT_EQ(wr.imm_be, 0xa1b2c3d4u);
    EXPECT_EQ(wr.invalidate_rkey, 0xa1b2c3d4u);
    EXPECT_EQ(wr.rkey, 0xdeadbeefu);
    EXPECT_EQ(wr.remote_addr, 0xfedcba9876543210u);
    EXPECT_EQ(wr.compare_add, 0x0102030405060708u);
    EXPECT_EQ(wr.swap, 0x8070605040302010u);
    EXPECT_EQ(wr.ah, 77u);
    EXPECT_EQ(wr.remote_qpn, 0xabcdefu);
    EXPECT_EQ(wr.remote_qkey, 0x11111111u);
    EXPECT_EQ(wr.num_sge, 1u);
    EXPECT_EQ(wr.inline_len, 0u);
    EXPECT_EQ(wr.sg_list[0].addr, 0x5000u);
    EXPECT_EQ(wr.sg_list[0].length, 4096u);
    EXPECT_EQ(wr.sg_list[0].lkey, 9u);
  }
  // Verbs opcodes the engine does not implement (14: IBTA 1.5 FLUSH in newer rdma-core),
  // and values past them.
  for (uint32_t op : {uint32_t{IBV_WR_TSO}, uint32_t{IBV_WR_DRIVER1}, uint32_t{14},
                      uint32_t{IBV_WR_ATOMIC_WRITE} + 1, 0x80000000u, 0xffffffffu}) {
    proto::SendWqe h{};
    h.opcode = op;
    driver::SendWr wr;
    EXPECT_EQ(ParseSendWqe(Slot(h, nullptr, 0).data(), kLimits, &wr), WqeCheck::kBadOpcode) << op;
  }
}

// BIND_MW: the window and MR handles, the range and the access flags reach the engine's
// MwBind; flags beyond an int's are refused. LOCAL_INV: the key to invalidate.
TEST(WqeParse, MemoryWindowOperations) {
  proto::SendWqe h{};
  h.opcode = IBV_WR_BIND_MW;
  h.rkey = 0x80000102;
  h.bind.mw = 0x800001;
  h.bind.mr_lkey = 0x305;
  h.remote_addr = 0x7f0000001000;
  h.compare_add = 1ull << 33;
  h.swap = IBV_ACCESS_REMOTE_WRITE | IBV_ACCESS_ZERO_BASED;
  driver::SendWr wr;
  ASSERT_EQ(ParseSendWqe(Slot(h, nullptr, 0).data(), kLimits, &wr), WqeCheck::kOk);
  EXPECT_EQ(wr.opcode, IBV_WR_BIND_MW);
  EXPECT_EQ(wr.rkey, 0x80000102u);
  EXPECT_EQ(wr.bind.mw, 0x800001u);
  EXPECT_EQ(wr.bind.mr_lkey, 0x305u);
  EXPECT_EQ(wr.bind.addr, 0x7f0000001000u);
  EXPECT_EQ(wr.bind.length, 1ull << 33);
  EXPECT_EQ(wr.bind.access, IBV_ACCESS_REMOTE_WRITE | IBV_ACCESS_ZERO_BASED);
  h.swap = 1ull << 40;
  EXPECT_EQ(ParseSendWqe(Slot(h, nullptr, 0).data(), kLimits, &wr), WqeCheck::kBadFlags);

  proto::SendWqe inv{};
  inv.opcode = IBV_WR_LOCAL_INV;
  inv.imm_data = 0x80000203;
  ASSERT_EQ(ParseSendWqe(Slot(inv, nullptr, 0).data(), kLimits, &wr), WqeCheck::kOk);
  EXPECT_EQ(wr.invalidate_rkey, 0x80000203u);
}

// UD: the AH handle and Q_Key go through untouched, the QPN is cut to its 24 bits.
TEST(WqeParse, UdAddressFields) {
  proto::SendWqe h{};
  h.opcode = IBV_WR_SEND;
  h.ud.ah = 0xffffffff;
  h.ud.remote_qpn = 0xff000001;
  h.ud.remote_qkey = 0x80010000;
  driver::SendWr wr;
  ASSERT_EQ(ParseSendWqe(Slot(h, nullptr, 0).data(), kLimits, &wr), WqeCheck::kOk);
  EXPECT_EQ(wr.ah, 0xffffffffu);
  EXPECT_EQ(wr.remote_qpn, 1u);
  EXPECT_EQ(wr.remote_qkey, 0x80010000u);
  EXPECT_EQ(wr.num_sge, 0u);  // a zero-length SEND
}

// Flags: the known ones pass (IP_CSUM dropped: there is no checksum offload to ask
// for), any other bit refuses the WQE. The XRC SRQ number is 24 bits (XRCETH): the top
// byte is not looked at.
TEST(WqeParse, FlagsAndXrcSrqNumber) {
  proto::SendWqe h{};
  h.opcode = IBV_WR_SEND;
  h.send_flags = IBV_SEND_SIGNALED | IBV_SEND_IP_CSUM;
  h.remote_srqn = 0xff123456;
  driver::SendWr wr;
  ASSERT_EQ(ParseSendWqe(Slot(h, nullptr, 0).data(), kLimits, &wr), WqeCheck::kOk);
  EXPECT_EQ(wr.send_flags, uint32_t{IBV_SEND_SIGNALED});
  EXPECT_EQ(wr.remote_srqn, 0x123456u);
  for (int bit = 0; bit < 32; ++bit) {
    h.send_flags = 1u << bit;
    bool known = h.send_flags & (IBV_SEND_FENCE | IBV_SEND_SIGNALED | IBV_SEND_SOLICITED |
                                 IBV_SEND_INLINE | IBV_SEND_IP_CSUM);
    EXPECT_EQ(ParseSendWqe(Slot(h, nullptr, 0).data(), kLimits, &wr),
              known ? WqeCheck::kOk : WqeCheck::kBadFlags)
        << bit;
  }
}

TEST(WqeParse, SgeCountsFromZeroToTheMaximum) {
  constexpr uint32_t kMax = driver::kMaxSgePerWqe;
  const SendQueueLimits lim{proto::SendWqeStride(kMax, 0), kMax, 0};
  for (uint32_t n = 0; n <= kMax + 1; ++n) {
    std::vector<uint8_t> slot(lim.stride, 0xee);
    proto::SendWqe h{};
    h.opcode = IBV_WR_RDMA_WRITE;
    h.num_sge = n;
    std::memcpy(slot.data(), &h, sizeof h);
    for (uint32_t i = 0; i < n && i < kMax; ++i) {
      proto::Sge s{0x1000u * (i + 1), 100 + i, 1000 + i};
      std::memcpy(slot.data() + sizeof h + i * sizeof s, &s, sizeof s);
    }
    driver::SendWr wr;
    WqeCheck c = ParseSendWqe(slot.data(), lim, &wr);
    if (n > kMax) {
      EXPECT_EQ(c, WqeCheck::kTooManySges);
      continue;
    }
    ASSERT_EQ(c, WqeCheck::kOk) << n;
    ASSERT_EQ(wr.num_sge, n);
    for (uint32_t i = 0; i < n; ++i) {
      EXPECT_EQ(wr.sg_list[i].addr, 0x1000u * (i + 1));
      EXPECT_EQ(wr.sg_list[i].length, 100 + i);
      EXPECT_EQ(wr.sg_list[i].lkey, 1000 + i);
    }
  }
  // A queue created with fewer SGEs refuses more, even when the slot would hold them.
  const SendQueueLimits two{proto::SendWqeStride(kMax, 0), 2, 0};
  proto::SendWqe h{};
  h.opcode = IBV_WR_SEND;
  h.num_sge = 3;
  std::vector<uint8_t> slot(two.stride, 0);
  std::memcpy(slot.data(), &h, sizeof h);
  driver::SendWr wr;
  EXPECT_EQ(ParseSendWqe(slot.data(), two, &wr), WqeCheck::kTooManySges);
  // Limits larger than the engine's or than the slot: the smaller bound wins.
  const SendQueueLimits lying{
      static_cast<uint32_t>(sizeof(proto::SendWqe) + 2 * sizeof(proto::Sge)), 1000, 1000};
  h.num_sge = 3;
  slot.assign(lying.stride, 0);
  std::memcpy(slot.data(), &h, sizeof h);
  EXPECT_EQ(ParseSendWqe(slot.data(), lying, &wr), WqeCheck::kTooManySges);
  h.num_sge = 2;
  std::memcpy(slot.data(), &h, sizeof h);
  EXPECT_EQ(ParseSendWqe(slot.data(), lying, &wr), WqeCheck::kOk);
  h.send_flags = IBV_SEND_INLINE;
  h.inline_len = 2 * sizeof(proto::Sge) + 1;
  std::memcpy(slot.data(), &h, sizeof h);
  EXPECT_EQ(ParseSendWqe(slot.data(), lying, &wr), WqeCheck::kInlineTooLong);
}

// Lengths are the client's word, copied as given: the engine checks them against the
// MRs and the message size limit (a sum past 2^31 or 2^32 is not wrapped here).
TEST(WqeParse, SgeLengthsAreCopiedExactly) {
  proto::SendWqe h{};
  h.opcode = IBV_WR_RDMA_WRITE;
  h.num_sge = 4;
  proto::Sge sges[4] = {
      {0, 0x80000000u, 1}, {0, 0x80000000u, 2}, {0, 0xffffffffu, 3}, {0xffffffffffffffffu, 0, 4}};
  driver::SendWr wr;
  ASSERT_EQ(ParseSendWqe(Slot(h, sges, sizeof sges).data(), kLimits, &wr), WqeCheck::kOk);
  uint64_t total = 0;
  for (uint32_t i = 0; i < wr.num_sge; ++i) total += wr.sg_list[i].length;
  EXPECT_EQ(total, 0x80000000ull * 2 + 0xffffffffull);
  EXPECT_EQ(wr.sg_list[3].addr, 0xffffffffffffffffu);
  EXPECT_EQ(wr.sg_list[3].length, 0u);
}

// A page whose last `len` bytes are readable and the next page is PROT_NONE: any read
// past the slot faults.
class GuardedSlot {
 public:
  explicit GuardedSlot(size_t len) : page_(static_cast<size_t>(sysconf(_SC_PAGESIZE))) {
    void* p = mmap(nullptr, 2 * page_, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    base_ = p == MAP_FAILED ? nullptr : static_cast<uint8_t*>(p);
    if (base_ && mprotect(base_ + page_, page_, PROT_NONE) != 0) base_ = nullptr;
    slot_ = base_ ? base_ + page_ - len : nullptr;
  }
  ~GuardedSlot() {
    if (base_) munmap(base_, 2 * page_);
  }
  uint8_t* get() const { return slot_; }

 private:
  size_t page_;
  uint8_t* base_ = nullptr;
  uint8_t* slot_ = nullptr;
};

TEST(WqeParse, InlineAtExactlyTheSlotRoomAndOnePast) {
  // The inline bound is the smallest of the queue's max_inline, the engine's
  // kMaxInlineData and the slot's room after the header: each of them binding in turn.
  const uint32_t hdr = sizeof(proto::SendWqe);
  const SendQueueLimits shapes[] = {
      {proto::SendWqeStride(1, driver::kMaxInlineData), 1,
       driver::kMaxInlineData},                                    // the engine's maximum
      {proto::SendWqeStride(1, driver::kMaxInlineData), 1, 1000},  // larger than the engine's
      {hdr + 100, 1, driver::kMaxInlineData},                      // the slot's room
      {hdr + 100, 1, 60}};                                         // the queue's
  for (const SendQueueLimits& lim : shapes) {
    const uint32_t stride = lim.stride;
    const uint32_t room = stride - hdr;
    const uint32_t fits = std::min({room, lim.max_inline, driver::kMaxInlineData});
    SCOPED_TRACE(fits);
    GuardedSlot guarded(stride);  // the slot ends where the readable memory ends
    ASSERT_NE(guarded.get(), nullptr);
    uint8_t* slot = guarded.get();
    for (uint32_t i = 0; i < stride; ++i) slot[i] = static_cast<uint8_t>(i * 7);
    for (uint32_t len : {0u, 1u, fits - 1, fits, fits + 1, room + 1, 0xffffffffu}) {
      proto::SendWqe h{};
      h.opcode = IBV_WR_SEND;
      h.send_flags = IBV_SEND_INLINE;
      h.inline_len = len;
      std::memcpy(slot, &h, sizeof h);
      driver::SendWr wr;
      WqeCheck c = ParseSendWqe(slot, lim, &wr);
      if (len > fits) {
        EXPECT_EQ(c, WqeCheck::kInlineTooLong) << len;
        continue;
      }
      ASSERT_EQ(c, WqeCheck::kOk) << len;
      EXPECT_EQ(wr.inline_len, len);
      EXPECT_EQ(wr.num_sge, 0u);
      EXPECT_EQ(std::memcmp(wr.inline_data, slot + sizeof h, len), 0);
    }
  }
}

// Garbage in slots that end at a PROT_NONE page, for several queue shapes: a read past
// the slot would crash the test; a kOk result must be within every bound.
TEST(WqeParse, GarbageSlotsAgainstAGuardPage) {
  const SendQueueLimits shapes[] = {{proto::SendWqeStride(1, 0), 1, 0},
                                    {proto::SendWqeStride(4, 64), 4, 64},
                                    {proto::SendWqeStride(16, 256), 16, 256},
                                    {proto::SendWqeStride(2, 200), 2, 200}};
  std::mt19937_64 g(11);
  for (const SendQueueLimits& lim : shapes) {
    GuardedSlot slot(lim.stride);
    ASSERT_NE(slot.get(), nullptr);
    uint32_t rmax = (lim.stride - sizeof(proto::RecvWqe)) / sizeof(proto::Sge);
    rmax = std::min(rmax, driver::kMaxSgePerWqe);
    int ok = 0;
    for (int i = 0; i < 50000; ++i) {
      for (uint32_t b = 0; b < lim.stride; ++b) slot.get()[b] = static_cast<uint8_t>(g());
      proto::SendWqe h;
      std::memcpy(&h, slot.get(), sizeof h);
      switch (i % 4) {  // plausible headers half of the time
        case 0:
          h.opcode = static_cast<uint32_t>(g() % 9);
          h.send_flags &= IBV_SEND_SIGNALED | IBV_SEND_INLINE;
          h.num_sge = static_cast<uint32_t>(g() % (lim.max_sge + 3));
          h.inline_len = static_cast<uint32_t>(g() % (lim.max_inline + 3));
          break;
        case 1:
          h.send_flags = 0;
          h.opcode = IBV_WR_SEND;
          h.num_sge = static_cast<uint32_t>(g() % (driver::kMaxSgePerWqe + 2));
          break;
        default:
          break;
      }
      std::memcpy(slot.get(), &h, sizeof h);
      driver::SendWr wr;
      if (ParseSendWqe(slot.get(), lim, &wr) == WqeCheck::kOk) {
        ++ok;
        ASSERT_EQ(wr.opcode, static_cast<ibv_wr_opcode>(h.opcode));
        ASSERT_LE(wr.opcode, IBV_WR_SEND_WITH_INV);
        ASSERT_LE(wr.num_sge, lim.max_sge);
        ASSERT_LE(wr.inline_len, lim.max_inline);
        ASSERT_LE(sizeof(proto::SendWqe) + wr.num_sge * sizeof(proto::Sge), lim.stride);
        ASSERT_LE(sizeof(proto::SendWqe) + wr.inline_len, lim.stride);
        ASSERT_TRUE(wr.inline_len == 0 || wr.num_sge == 0);
        ASSERT_LE(wr.remote_qpn, 0xffffffu);
        ASSERT_EQ(wr.send_flags &
                      ~(IBV_SEND_FENCE | IBV_SEND_SIGNALED | IBV_SEND_SOLICITED | IBV_SEND_INLINE),
                  0u);
        if (wr.num_sge) {
          proto::Sge last;
          std::memcpy(&last, slot.get() + sizeof h + (wr.num_sge - 1) * sizeof last, sizeof last);
          ASSERT_EQ(wr.sg_list[wr.num_sge - 1].addr, last.addr);
        }
      }
      // The receive side with as many SGEs as this slot holds.
      driver::RecvWr rwr;
      if (ParseRecvWqe(slot.get(), rmax, &rwr) == WqeCheck::kOk) {
        ASSERT_LE(rwr.num_sge, rmax);
      }
    }
    EXPECT_GT(ok, 1000) << "the sweep must reach the accepting paths";
  }
}

TEST(WqeParse, Recv) {
  std::vector<uint8_t> s(proto::RecvWqeStride(2), 0);
  proto::RecvWqe h{55, 2, 0};
  proto::Sge sges[2] = {{1, 2, 3}, {4, 5, 6}};
  std::memcpy(s.data(), &h, sizeof h);
  std::memcpy(s.data() + sizeof h, sges, sizeof sges);
  driver::RecvWr wr;
  ASSERT_EQ(ParseRecvWqe(s.data(), 2, &wr), WqeCheck::kOk);
  EXPECT_EQ(wr.wr_id, 55u);
  EXPECT_EQ(wr.sg_list[1].lkey, 6u);
  EXPECT_EQ(ParseRecvWqe(s.data(), 1, &wr), WqeCheck::kTooManySges);
}

}  // namespace
}  // namespace vrdma::vdev
