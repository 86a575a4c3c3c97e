// BTH opcodes and what each one carries (IBTA Vol 1, 9.2 table 38 "OpCode field",
// and 9.3 "Packet header layout" for the extended headers of each opcode).
#pragma once

#include <cstdint>

namespace vrdma::driver::wire {

// Transport prefix: bits 7..5 of the opcode.
enum class Transport : uint8_t { kRc = 0, kUc = 1, kRd = 2, kUd = 3, kCnp = 4, kXrc = 5 };

namespace op {
// Reliable Connection (0x00..0x17)
inline constexpr uint8_t kRcSendFirst = 0x00;
inline constexpr uint8_t kRcSendMiddle = 0x01;
inline constexpr uint8_t kRcSendLast = 0x02;
inline constexpr uint8_t kRcSendLastImm = 0x03;
inline constexpr uint8_t kRcSendOnly = 0x04;
inline constexpr uint8_t kRcSendOnlyImm = 0x05;
inline constexpr uint8_t kRcWriteFirst = 0x06;
inline constexpr uint8_t kRcWriteMiddle = 0x07;
inline constexpr uint8_t kRcWriteLast = 0x08;
inline constexpr uint8_t kRcWriteLastImm = 0x09;
inline constexpr uint8_t kRcWriteOnly = 0x0a;
inline constexpr uint8_t kRcWriteOnlyImm = 0x0b;
inline constexpr uint8_t kRcReadRequest = 0x0c;
inline constexpr uint8_t kRcReadResponseFirst = 0x0d;
inline constexpr uint8_t kRcReadResponseMiddle = 0x0e;
inline constexpr uint8_t kRcReadResponseLast = 0x0f;
inline constexpr uint8_t kRcReadResponseOnly = 0x10;
inline constexpr uint8_t kRcAcknowledge = 0x11;
inline constexpr uint8_t kRcAtomicAcknowledge = 0x12;
inline constexpr uint8_t kRcCompareSwap = 0x13;
inline constexpr uint8_t kRcFetchAdd = 0x14;
inline constexpr uint8_t kRcSendLastInv = 0x16;
inline constexpr uint8_t kRcSendOnlyInv = 0x17;
// IBTA 1.5 (annex "Memory Placement Extensions"): ATOMIC WRITE, a RETH and 8 bytes.
inline constexpr uint8_t kRcAtomicWrite = 0x1d;
// Unreliable Connection: same low bits as RC for SEND and RDMA WRITE.
inline constexpr uint8_t kUcBase = 0x20;
// Extended Reliable Connection (IBTA annex A14): every RC opcode from SEND FIRST to SEND
// ONLY with Invalidate, with the same low 5 bits; requests carry an XRCETH.
inline constexpr uint8_t kXrcBase = 0xa0;
inline constexpr uint8_t kLowBits = 0x1f;  // an opcode's operation within its transport
// Unreliable Datagram
inline constexpr uint8_t kUdSendOnly = 0x64;
inline constexpr uint8_t kUdSendOnlyImm = 0x65;
// Congestion notification packet (RoCEv2 annex A17.9).
inline constexpr uint8_t kCnp = 0x81;
}  // namespace op

// Extended transport headers present in a packet, as a bit set.
enum ExtHeader : uint16_t {
  kHdrDeth = 1 << 0,
  kHdrReth = 1 << 1,
  kHdrAtomicEth = 1 << 2,
  kHdrAeth = 1 << 3,
  kHdrAtomicAckEth = 1 << 4,
  kHdrImmDt = 1 << 5,
  kHdrIeth = 1 << 6,
  kHdrXrceth = 1 << 7,
};

// Kind of packet within a message.
enum OpFlags : uint16_t {
  kOpFirst = 1 << 0,
  kOpMiddle = 1 << 1,
  kOpLast = 1 << 2,
  kOpOnly = kOpFirst | kOpLast,
  kOpSend = 1 << 3,
  kOpWrite = 1 << 4,
  kOpReadReq = 1 << 5,
  kOpReadResp = 1 << 6,
  kOpAck = 1 << 7,
  kOpAtomic = 1 << 8,  // compare-swap or fetch-add request
  kOpAtomicAck = 1 << 9,
  kOpPayload = 1 << 10,   // may carry payload
  kOpRequest = 1 << 11,   // requester -> responder
  kOpResponse = 1 << 12,  // responder -> requester
  kOpImm = 1 << 13,
  kOpInv = 1 << 14,
  kOpAtomicWrite = 1 << 15,  // with kOpWrite: an RDMA WRITE executed as one 8-byte store
};

struct OpcodeInfo {
  bool valid = false;
  uint16_t headers = 0;  // ExtHeader bits
  uint16_t flags = 0;    // OpFlags bits
  uint8_t ext_len = 0;   // bytes of extended headers after the BTH
};

// Extended header sizes (IBTA 9.3).
inline constexpr uint32_t kBthLen = 12;
inline constexpr uint32_t kRdethLen = 4;
inline constexpr uint32_t kXrcethLen = 4;  // 8 reserved bits, the 24-bit XRC SRQ number
inline constexpr uint32_t kDethLen = 8;
inline constexpr uint32_t kRethLen = 16;
inline constexpr uint32_t kAtomicEthLen = 28;
inline constexpr uint32_t kAethLen = 4;
inline constexpr uint32_t kAtomicAckEthLen = 8;
inline constexpr uint32_t kImmDtLen = 4;
inline constexpr uint32_t kIethLen = 4;
inline constexpr uint32_t kIcrcLen = 4;

// Table lookup, one entry per opcode value. Opcodes this transport does not implement
// (RD, reserved) are !valid.
const OpcodeInfo& GetOpcodeInfo(uint8_t opcode);

inline Transport TransportOf(uint8_t opcode) { return static_cast<Transport>(opcode >> 5); }

}  // namespace vrdma::driver::wire
