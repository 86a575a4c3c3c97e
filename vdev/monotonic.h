// The engine's clock: CLOCK_MONOTONIC in nanoseconds (through the vDSO, no system call).
// Timers, deferred requests and completion timestamps (proto::kCqTimestamps) read it.
#pragma once

#include <cstdint>
#include <ctime>

namespace vrdma::vdev {

inline uint64_t MonotonicNs() {
  timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<uint64_t>(ts.tv_sec) * 1000000000ull + static_cast<uint64_t>(ts.tv_nsec);
}

}  // namespace vrdma::vdev
