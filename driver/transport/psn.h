// 24-bit packet sequence number arithmetic (IBTA 9.7.1: PSNs wrap modulo 2^24 and are
// compared within a window of half the space).
#pragma once

#include <cstdint>

namespace vrdma::driver::psn {

inline constexpr uint32_t kMask = 0xffffff;

inline uint32_t Add(uint32_t psn, uint32_t n) { return (psn + n) & kMask; }

// Signed distance a - b in the 24-bit space: >0 when a is after b.
inline int32_t Diff(uint32_t a, uint32_t b) {
  return static_cast<int32_t>(((a - b) & kMask) << 8) >> 8;
}

inline bool Before(uint32_t a, uint32_t b) { return Diff(a, b) < 0; }
inline bool AtOrAfter(uint32_t a, uint32_t b) { return Diff(a, b) >= 0; }

// The PSNs a message of `len` bytes takes at path MTU `mtu`: one per packet, and a message
// of no payload is still one packet (IBTA 9.7.1, 9.4).
inline uint32_t PacketCount(uint32_t len, uint32_t mtu) {
  return len == 0 ? 1 : (len + mtu - 1) / mtu;
}

}  // namespace vrdma::driver::psn
