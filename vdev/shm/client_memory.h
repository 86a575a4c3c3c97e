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

namespace vrdma::vdev {

// What backs one segment: the object, where the segment's pages are in it, and how.
struct SegmentBacking {
  int fd = -1;               // owned by the caller
  uint64_t file_offset = 0;  // page-aligned
  bool writable = true;      // the client may write these pages (else mapped read-only)
  bool fixed_size = false;   // an object no one can shrink (see client_mapping.h)
};

class ClientMemory {
 public:
  // Checks every backing (a memfd sealed against shrinking unless fixed_size, or an
  // object of hugetlbfs; large enough; page-aligned offsets) and that the segments tile
  // [0, page_length) exactly, then maps them side by side (huge pages widened to whole
  // huge pages, aligned: memory_layout.h). The mapping is added to the
  // engine's fault guard (driver/res/fault_guard.h): should a page vanish under the
  // daemon all the same, the access that meets it fails, not the daemon.
  static absl::StatusOr<std::unique_ptr<ClientMemory>> Map(uint64_t page_length,
                                                           std::span<const proto::MrSegment> segs,
                                                           std::span<const SegmentBacking> backing);
  // The daemon's SIGBUS handler for the fault guard (once per process, at start).
  static absl::Status InstallFaultGuard();
  ~ClientMemory();
  ClientMemory(const ClientMemory&) = delete;
  ClientMemory& operator=(const ClientMemory&) = delete;

  uint8_t* base() const { return base_; }
  uint64_t length() const { return length_; }
  // The mappings (VMAs) it takes in the daemon at most: one per segment, and the ends of
  // the reservation around them that no segment covers.
  size_t mappings() const { return mappings_; }

 private:
  ClientMemory(uint8_t* base, uint64_t length, uint8_t* reservation, uint64_t reserved,
               int guard_slot, size_t mappings)
      : base_(base),
        length_(length),
        reservation_(reservation),
        reserved_(reserved),
        guard_slot_(guard_slot),
        mappings_(mappings) {}
  uint8_t* base_;
  uint64_t length_;
  uint8_t* reservation_;  // the address space reserved around [base_, base_ + length_)
  uint64_t reserved_;
  int guard_slot_;
  size_t mappings_;
};

}  // namespace vrdma::vdev
