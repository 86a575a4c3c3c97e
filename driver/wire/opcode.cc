#include "driver/wire/opcode.h"

#include <array>

namespace vrdma::driver::wire {
namespace {

constexpr uint8_t ExtLen(uint16_t h) {
  return static_cast<uint8_t>(
      ((h & kHdrXrceth) ? kXrcethLen : 0) + ((h & kHdrDeth) ? kDethLen : 0) +
      ((h & kHdrReth) ? kRethLen : 0) + ((h & kHdrAtomicEth) ? kAtomicEthLen : 0) +
      ((h & kHdrAeth) ? kAethLen : 0) + ((h & kHdrAtomicAckEth) ? kAtomicAckEthLen : 0) +
      ((h & kHdrImmDt) ? kImmDtLen : 0) + ((h & kHdrIeth) ? kIethLen : 0));
}

constexpr OpcodeInfo Op(uint16_t headers, uint16_t flags) {
  return OpcodeInfo{true, headers, flags, ExtLen(headers)};
}

// SEND and RDMA WRITE opcodes of RC and UC share their low 5 bits (IBTA 9.2 table 38).
constexpr void FillSendWrite(std::array<OpcodeInfo, 256>& t, uint8_t base) {
  constexpr uint16_t S = kOpSend | kOpPayload | kOpRequest;
  constexpr uint16_t W = kOpWrite | kOpPayload | kOpRequest;
  t[base + 0x00] = Op(0, S | kOpFirst);
  t[base + 0x01] = Op(0, S | kOpMiddle);
  t[base + 0x02] = Op(0, S | kOpLast);
  t[base + 0x03] = Op(kHdrImmDt, S | kOpLast | kOpImm);
  t[base + 0x04] = Op(0, S | kOpOnly);
  t[base + 0x05] = Op(kHdrImmDt, S | kOpOnly | kOpImm);
  t[base + 0x06] = Op(kHdrReth, W | kOpFirst);
  t[base + 0x07] = Op(0, W | kOpMiddle);
  t[base + 0x08] = Op(0, W | kOpLast);
  t[base + 0x09] = Op(kHdrImmDt, W | kOpLast | kOpImm);
  t[base + 0x0a] = Op(kHdrReth, W | kOpOnly);
  t[base + 0x0b] = Op(kHdrReth | kHdrImmDt, W | kOpOnly | kOpImm);
}

constexpr std::array<OpcodeInfo, 256> BuildTable() {
  std::array<OpcodeInfo, 256> t{};
  FillSendWrite(t, 0x00);
  FillSendWrite(t, op::kUcBase);
  constexpr uint16_t RR = kOpReadResp | kOpPayload | kOpResponse;
  t[op::kRcReadRequest] = Op(kHdrReth, kOpReadReq | kOpRequest | kOpOnly);
  t[op::kRcReadResponseFirst] = Op(kHdrAeth, RR | kOpFirst);
  t[op::kRcReadResponseMiddle] = Op(0, RR | kOpMiddle);
  t[op::kRcReadResponseLast] = Op(kHdrAeth, RR | kOpLast);
  t[op::kRcReadResponseOnly] = Op(kHdrAeth, RR | kOpOnly);
  t[op::kRcAcknowledge] = Op(kHdrAeth, kOpAck | kOpResponse | kOpOnly);
  t[op::kRcAtomicAcknowledge] =
      Op(kHdrAeth | kHdrAtomicAckEth, kOpAtomicAck | kOpResponse | kOpOnly);
  t[op::kRcCompareSwap] = Op(kHdrAtomicEth, kOpAtomic | kOpRequest | kOpOnly);
  t[op::kRcFetchAdd] = Op(kHdrAtomicEth, kOpAtomic | kOpRequest | kOpOnly);
  t[op::kRcAtomicWrite] =
      Op(kHdrReth, kOpWrite | kOpAtomicWrite | kOpPayload | kOpRequest | kOpOnly);
  t[op::kRcSendLastInv] = Op(kHdrIeth, kOpSend | kOpPayload | kOpRequest | kOpLast | kOpInv);
  t[op::kRcSendOnlyInv] = Op(kHdrIeth, kOpSend | kOpPayload | kOpRequest | kOpOnly | kOpInv);
  t[op::kUdSendOnly] = Op(kHdrDeth, kOpSend | kOpPayload | kOpRequest | kOpOnly);
  t[op::kUdSendOnlyImm] =
      Op(kHdrDeth | kHdrImmDt, kOpSend | kOpPayload | kOpRequest | kOpOnly | kOpImm);
  // XRC (IBTA annex A14): RC's opcodes 0x00..0x17 again at 0xA0, requests with an XRCETH
  // after the BTH, responses (ACK, READ response, atomic ACK) as RC's.
  for (uint8_t low = 0; low <= op::kRcSendOnlyInv; ++low) {
    OpcodeInfo rc = t[low];
    if (!rc.valid) continue;
    if (rc.flags & kOpRequest) rc = Op(static_cast<uint16_t>(rc.headers | kHdrXrceth), rc.flags);
    t[op::kXrcBase + low] = rc;
  }
  return t;
}

constexpr std::array<OpcodeInfo, 256> kTable = BuildTable();

}  // namespace

const OpcodeInfo& GetOpcodeInfo(uint8_t opcode) { return kTable[opcode]; }

}  // namespace vrdma::driver::wire
