// Registered memory shared with the daemon (DESIGN.md, "Memory"): the pages of a
// registration are remapped, in place and with their contents, onto memfds the daemon
// maps too, so the engine reads and writes the application's buffers directly.
//
// The pages are found in /proc/self/maps: private anonymous pages (heap, stack,
// anonymous mmap) are copied into a new memfd which is then mapped over them at the same
// address; pages already remapped by an earlier registration reuse their memfd. Any other
// mapping (a file, a shared mapping, hugetlbfs) is refused with EOPNOTSUPP rather than
// registered wrongly. Writes by other threads to those pages during the remap are lost.
#pragma once

#include <cstdint>
#include <vector>

#include "vdev/protocol/protocol.h"

namespace vrdma::provider {

struct SharedPages {
  uint64_t page_base = 0;
  uint64_t page_length = 0;
  std::vector<proto::MrSegment> segments;
  std::vector<int> fds;          // one per segment, owned by the memfd table (not to be closed)
  std::vector<uint64_t> inodes;  // memfds referenced, one reference each
};

// Shares the pages of [addr, addr+length). Returns 0 or an errno.
int ShareRange(uintptr_t addr, uint64_t length, SharedPages* out);
// Drops the references ShareRange took; a memfd no registration uses is closed (its
// pages stay mapped in the process).
void ReleasePages(const std::vector<uint64_t>& inodes);

}  // namespace vrdma::provider
