// Status values the transport's verbs share (internal to driver/transport).
#pragma once

#include <cstdint>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"

namespace vrdma::driver {

// The handle or key names no object of that kind on this device.
inline absl::Status NotFound(const char* what, uint32_t handle) {
  return absl::NotFoundError(absl::StrCat("no ", what, " ", handle));
}

}  // namespace vrdma::driver
