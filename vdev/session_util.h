// Small helpers shared by the files of Session (session*.cc): not for other users.
#pragma once

#include <bit>
#include <cerrno>
#include <cstdint>
#include <vector>

#include "absl/status/status.h"

namespace vrdma::vdev::session_util {

inline uint32_t Pow2AtLeast(uint32_t v) { return v <= 1 ? 1 : std::bit_ceil(v); }

template <typename T>
void Append(std::vector<uint8_t>* out, const T& value) {
  const auto* p = reinterpret_cast<const uint8_t*>(&value);
  out->insert(out->end(), p, p + sizeof(T));
}

// Why an address vector could not be made: a bad attribute, or the destination did not
// resolve (no route, no answer: EHOSTUNREACH; no answer yet: ETIMEDOUT).
inline int AddressErrno(const absl::Status& status) {
  switch (status.code()) {
    case absl::StatusCode::kNotFound:
      return EHOSTUNREACH;
    case absl::StatusCode::kDeadlineExceeded:
      return ETIMEDOUT;
    default:
      return EINVAL;
  }
}

}  // namespace vrdma::vdev::session_util
