#include "vdev/shm/memory_layout.h"

#include <algorithm>

#include "absl/strings/str_cat.h"

namespace vrdma::vdev {

absl::StatusOr<MemoryLayout> PlanMemoryLayout(uint64_t page,
                                              std::span<const uint64_t> range_offsets,
                                              std::span<const uint64_t> lengths,
                                              std::span<const uint64_t> file_offsets,
                                              std::span<const uint64_t> units) {
  const size_t n = range_offsets.size();
  if (lengths.size() != n || file_offsets.size() != n || units.size() != n) {
    return absl::InvalidArgumentError("layout: one length, offset and unit per segment");
  }
  MemoryLayout out;
  out.align = page;
  for (uint64_t unit : units) {
    if (unit < page || (unit & (unit - 1)) != 0 || unit > (uint64_t{1} << 40)) {
      return absl::InvalidArgumentError(absl::StrCat("page size ", unit, " of a segment"));
    }
    out.align = std::max(out.align, unit);
  }
  out.maps.reserve(n);
  bool residue_set = false;
  for (size_t i = 0; i < n; ++i) {
    const uint64_t unit = units[i];
    const uint64_t lead = file_offsets[i] % unit;  // the widening before the segment
    SegmentMap m;
    m.offset = static_cast<int64_t>(range_offsets[i]) - static_cast<int64_t>(lead);
    m.length = (lead + lengths[i] + unit - 1) / unit * unit;
    m.file_offset = file_offsets[i] - lead;
    if (unit > page && unit == out.align && !residue_set) {
      // base + offset ≡ 0 (mod unit): base ≡ -offset.
      out.residue = (unit - static_cast<uint64_t>(m.offset) % unit) % unit;
      residue_set = true;
    }
    if (!out.maps.empty()) {
      const SegmentMap& prev = out.maps.back();
      if (m.offset < prev.offset + static_cast<int64_t>(prev.length)) {
        return absl::InvalidArgumentError("a huge page shared by two segments");
      }
    }
    out.maps.push_back(m);
  }
  // Every huge-page segment (of any size) aligned at that base.
  for (size_t i = 0; i < n; ++i) {
    const uint64_t unit = units[i];
    if (unit > page && (out.residue + static_cast<uint64_t>(out.maps[i].offset)) % unit != 0) {
      return absl::InvalidArgumentError("huge-page segments that cannot all be mapped aligned");
    }
  }
  out.slack = out.align > page ? out.align : 0;
  return out;
}

}  // namespace vrdma::vdev
