// A client's registered memory as the daemon reaches it: the memfd segments that back
// the client's pages (vdev/protocol/protocol.h, MrSegment), mapped side by side into one
// contiguous range of the daemon, so the engine reads and writes the application's
// buffers directly.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>

#include "absl/status/statusor.h"
#include "vdev/protocol/protocol.h"

namespace vrdma {

class ClientMemory {
 public:
  // Checks every fd (a memfd sealed against shrinking, large enough, page-aligned
  // offsets) and that the segments tile [0, page_length) exactly, then maps them.
  // The fds stay owned by the caller.
  static absl::StatusOr<std::unique_ptr<ClientMemory>> Map(uint64_t page_length,
                                                           std::span<const proto::MrSegment> segs,
                                                           std::span<const int> fds);
  ~ClientMemory();
  ClientMemory(const ClientMemory&) = delete;
  ClientMemory& operator=(const ClientMemory&) = delete;

  uint8_t* base() const { return base_; }
  uint64_t length() const { return length_; }

 private:
  ClientMemory(uint8_t* base, uint64_t length) : base_(base), length_(length) {}
  uint8_t* base_;
  uint64_t length_;
};

}  // namespace vrdma
