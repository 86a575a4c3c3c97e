// Encoded timer values of the IBTA QP attributes.
#pragma once

#include <cstdint>

namespace vrdma::driver::ibtime {

// Local ACK timeout (IBTA 11.2.4.2 / 9.7.6.1.3): 4.096 us * 2^timeout; 0 means infinite.
inline uint64_t LocalAckTimeoutNs(uint8_t timeout) {
  if (timeout == 0) return 0;
  if (timeout > 31) timeout = 31;
  return 4096ull << timeout;
}

// RNR NAK timer field (IBTA 9.7.5.2.8, table 45), in nanoseconds. Also the encoding of
// the QP attribute min_rnr_timer.
inline uint64_t RnrTimerNs(uint8_t code) {
  static constexpr uint32_t kUs[32] = {
      655360, 10,    20,    30,    40,    60,     80,     120,    160,    240,   320,
      480,    640,   960,   1280,  1920,  2560,   3840,   5120,   7680,   10240, 15360,
      20480,  30720, 40960, 61440, 81920, 122880, 163840, 245760, 327680, 491520};
  return static_cast<uint64_t>(kUs[code & 31]) * 1000;
}

// rnr_retry 7 means "retry forever" (IBTA 9.7.5.2.8).
inline constexpr uint8_t kInfiniteRnrRetry = 7;

}  // namespace vrdma::driver::ibtime
