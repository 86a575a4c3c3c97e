// Where each segment of a registration goes in the daemon's address space.
//
// ClientMemory maps a registration's segments side by side, so that the engine sees the
// client's pages as one range. Segments of normal pages map exactly where they are. A
// segment of huge pages (hugetlbfs: System V SHM_HUGETLB, MAP_HUGETLB, a hugetlbfs file
// or MFD_HUGETLB memfd) can only be mapped in whole huge pages, at an address and file
// offset aligned to the huge page size: its mapping is widened to the huge pages around
// it, and the range's base is chosen so that every widened mapping starts aligned. The
// reservation keeps room for the widening before and after the range.
#pragma once

#include <cstdint>
#include <span>
#include <vector>

#include "absl/status/statusor.h"

namespace vrdma::vdev {

// One segment as it is to be mapped: at base + offset (offset may be negative: a huge
// page begun before the range), `length` bytes of the object from `file_offset`.
struct SegmentMap {
  int64_t offset = 0;
  uint64_t length = 0;
  uint64_t file_offset = 0;
};

struct MemoryLayout {
  uint64_t align = 0;  // the base must be ≡ residue (mod align): the largest page size
  uint64_t residue = 0;
  uint64_t slack = 0;  // bytes to reserve before and after the range (align, or 0)
  std::vector<SegmentMap> maps;
};

// `units[i]` is the page size of segment i's object (a power of two, at least `page`);
// `file_offsets[i]` where its pages start in the object. Segments are in address order
// and tile [0, page_length) (ClientMemory checks that first). InvalidArgument when the
// huge pages cannot all be mapped aligned at once, or a widened segment would cover
// another: the client's own mappings never look like that (a hugetlbfs mapping starts,
// ends and sits in its file at huge-page boundaries).
absl::StatusOr<MemoryLayout> PlanMemoryLayout(uint64_t page,
                                              std::span<const uint64_t> range_offsets,
                                              std::span<const uint64_t> lengths,
                                              std::span<const uint64_t> file_offsets,
                                              std::span<const uint64_t> units);

}  // namespace vrdma::vdev
