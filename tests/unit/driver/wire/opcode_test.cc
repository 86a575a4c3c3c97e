#include "driver/wire/opcode.h"

#include "gtest/gtest.h"

namespace vrdma::driver::wire {
namespace {

TEST(OpcodeTest, ExtendedHeadersFollowIbtaTable) {
  EXPECT_EQ(GetOpcodeInfo(op::kRcWriteOnlyImm).headers, kHdrReth | kHdrImmDt);
  EXPECT_EQ(GetOpcodeInfo(op::kRcWriteOnlyImm).ext_len, kRethLen + kImmDtLen);
  EXPECT_EQ(GetOpcodeInfo(op::kRcAtomicAcknowledge).ext_len, kAethLen + kAtomicAckEthLen);
  EXPECT_EQ(GetOpcodeInfo(op::kRcCompareSwap).ext_len, kAtomicEthLen);
  EXPECT_EQ(GetOpcodeInfo(op::kUdSendOnlyImm).ext_len, kDethLen + kImmDtLen);
  EXPECT_EQ(GetOpcodeInfo(op::kRcReadResponseMiddle).ext_len, 0);
  EXPECT_EQ(GetOpcodeInfo(op::kRcSendOnlyInv).headers, kHdrIeth);
}

TEST(OpcodeTest, UcHasSendAndWriteOnly) {
  for (uint8_t low = 0; low < 0x20; ++low) {
    const OpcodeInfo& uc = GetOpcodeInfo(op::kUcBase + low);
    EXPECT_EQ(uc.valid, low <= 0x0b) << int(low);
    if (uc.valid) {
      EXPECT_EQ(uc.headers, GetOpcodeInfo(low).headers);
    }
  }
}

TEST(OpcodeTest, XrcIsRcWithAnXrcethOnRequests) {
  for (uint8_t low = 0; low < 0x20; ++low) {
    const OpcodeInfo& rc = GetOpcodeInfo(low);
    const OpcodeInfo& xrc = GetOpcodeInfo(op::kXrcBase + low);
    // 0x00..0x17 as RC; RC's IBTA 1.5 ATOMIC WRITE (0x1D) has no XRC opcode here.
    EXPECT_EQ(xrc.valid, rc.valid && low <= op::kRcSendOnlyInv) << int(low);
    if (!xrc.valid) continue;
    EXPECT_EQ(xrc.flags, rc.flags) << int(low);
    if (rc.flags & kOpRequest) {
      EXPECT_EQ(xrc.headers, rc.headers | kHdrXrceth) << int(low);
      EXPECT_EQ(xrc.ext_len, rc.ext_len + kXrcethLen) << int(low);
    } else {
      EXPECT_EQ(xrc.headers, rc.headers) << int(low);
    }
  }
  EXPECT_EQ(TransportOf(op::kXrcBase | op::kRcSendOnly), Transport::kXrc);
}

TEST(OpcodeTest, ReservedAndRdAreInvalid) {
  EXPECT_FALSE(GetOpcodeInfo(0x15).valid);
  EXPECT_FALSE(GetOpcodeInfo(0x18).valid);
  EXPECT_FALSE(GetOpcodeInfo(0x40).valid);  // RD
  EXPECT_FALSE(GetOpcodeInfo(0x60).valid);  // UD opcodes other than SEND ONLY(+imm)
  EXPECT_FALSE(GetOpcodeInfo(0xff).valid);
  EXPECT_EQ(TransportOf(op::kUdSendOnly), Transport::kUd);
}

}  // namespace
}  // namespace vrdma::driver::wire
