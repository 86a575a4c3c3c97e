// One line of /proc/PID/maps (proc(5)):
//   start-end perms offset major:minor inode [spaces path]
// e.g. "7f3a1c000000-7f3a1c021000 rw-s 00000000 00:01 1234   /SYSV00000000 (deleted)".
// The kernel pads before the path; the path itself is kept as the kernel wrote it (a
// name may hold spaces, and ends with " (deleted)" for an unlinked object).
#pragma once

#include <cstdint>
#include <optional>
#include <string_view>

namespace vrdma::vdev {

struct MapsEntry {
  uint64_t start = 0;  // [start, end), start < end
  uint64_t end = 0;
  std::string_view perms;  // four characters: [r-][w-][x-][ps], into the line
  uint64_t offset = 0;     // of `start` in the object
  uint32_t dev_major = 0;
  uint32_t dev_minor = 0;
  uint64_t inode = 0;
  std::string_view path;  // into the line, "" when none; no line end

  bool readable() const { return perms[0] == 'r'; }
  bool writable() const { return perms[1] == 'w'; }
  bool shared() const { return perms[3] == 's'; }
};

// Parses one line (with or without its '\n'). nullopt for anything that is not such a
// line: a missing or extra field, a number too long for its type, start >= end,
// permissions other than the four flags. Allocation-free; the result points into `line`.
std::optional<MapsEntry> ParseMapsLine(std::string_view line);

// From the text of /proc/PID/smaps: the KernelPageSize, in bytes, of the mapping that
// starts at `start` (the huge page size for a hugetlbfs mapping). nullopt when there is
// no such mapping or no such line under it.
std::optional<uint64_t> SmapsKernelPageSize(std::string_view smaps, uint64_t start);

}  // namespace vrdma::vdev
