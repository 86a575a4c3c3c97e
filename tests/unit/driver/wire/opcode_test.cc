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
