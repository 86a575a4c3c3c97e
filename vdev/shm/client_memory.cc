#include "vdev/shm/client_memory.h"

#include <fcntl.h>
#include <linux/magic.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/vfs.h>
#include <unistd.h>

#include <cerrno>

#include "absl/strings/str_cat.h"
#include "driver/device.h"
#include "vdev/shm/memory_layout.h"

namespace vrdma::vdev {

namespace {

// Checks one backing and returns its page size: the base page, or for hugetlbfs the huge
// page size.
absl::StatusOr<uint64_t> CheckFd(int fd, uint64_t end, bool fixed_size, uint64_t page) {
  struct stat st;
  if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
    return absl::InvalidArgumentError("registered memory must be a memfd");
  }
  struct statfs fs;
  if (fstatfs(fd, &fs) != 0) return absl::ErrnoToStatus(errno, "fstatfs of registered memory");
  uint64_t unit = page;
  if (fs.f_type == HUGETLBFS_MAGIC) {
    // Huge pages: a page can leave a hugetlbfs object whatever its seals (a hole punched,
    // refilled from a pool the client can exhaust; a hugetlbfs file truncated), so seals
    // prove nothing here. The fault guard is the line: the access that meets a lost page
    // fails with the spec's status and poisons the MR (driver/res/fault_guard.h).
    unit = static_cast<uint64_t>(st.st_blksize);
  } else {
    // Only memfds carry seals; without F_SEAL_SHRINK the client could truncate the file
    // and fault the daemon on its next access.
    int seals = fcntl(fd, F_GET_SEALS);
    if (!fixed_size && (seals < 0 || !(seals & F_SEAL_SHRINK))) {
      return absl::InvalidArgumentError(
          "registered memory must be a memfd sealed against shrinking");
    }
    if (st.st_blksize > static_cast<blksize_t>(page)) {
      return absl::InvalidArgumentError("registered memory of an unknown page size");
    }
  }
  if (static_cast<uint64_t>(st.st_size) < end) {
    return absl::InvalidArgumentError("memfd smaller than the segment it backs");
  }
  return unit;
}

}  // namespace

absl::StatusOr<std::unique_ptr<ClientMemory>> ClientMemory::Map(
    uint64_t page_length, std::span<const proto::MrSegment> segs,
    std::span<const SegmentBacking> backing) {
  const uint64_t page = static_cast<uint64_t>(sysconf(_SC_PAGESIZE));
  if (page_length == 0 || page_length % page || segs.empty() || segs.size() != backing.size() ||
      segs.size() > proto::kMaxMrSegments) {
    return absl::InvalidArgumentError("bad memory registration layout");
  }
  std::vector<uint64_t> offsets, lengths, file_offsets, units;
  uint64_t cursor = 0;
  for (size_t i = 0; i < segs.size(); ++i) {
    const proto::MrSegment& s = segs[i];
    const SegmentBacking& b = backing[i];
    if (s.range_offset != cursor || s.length == 0 || s.length % page || b.file_offset % page ||
        s.length > page_length - cursor || b.file_offset > UINT64_MAX - s.length) {
      return absl::InvalidArgumentError("memory segments do not tile the registered pages");
    }
    absl::StatusOr<uint64_t> unit = CheckFd(b.fd, b.file_offset + s.length, b.fixed_size, page);
    if (!unit.ok()) return unit.status();
    offsets.push_back(s.range_offset);
    lengths.push_back(s.length);
    file_offsets.push_back(b.file_offset);
    units.push_back(*unit);
    cursor += s.length;
  }
  if (cursor != page_length) {
    return absl::InvalidArgumentError("memory segments do not cover the registered pages");
  }
  absl::StatusOr<MemoryLayout> layout =
      PlanMemoryLayout(page, offsets, lengths, file_offsets, units);
  if (!layout.ok()) return layout.status();
  // Reserve the whole range (with room to widen huge pages and align the base), then put
  // each segment in its place.
  const uint64_t reserved =
      page_length + 2 * layout->slack + (layout->align > page ? layout->align : 0);
  void* res =
      mmap(nullptr, reserved, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
  if (res == MAP_FAILED) return absl::ErrnoToStatus(errno, "reserving address space");
  uint8_t* r = static_cast<uint8_t*>(res);
  uintptr_t first = reinterpret_cast<uintptr_t>(r) + layout->slack;
  first += (layout->residue - first % layout->align + layout->align) % layout->align;
  uint8_t* b = reinterpret_cast<uint8_t*>(first);
  for (size_t i = 0; i < segs.size(); ++i) {
    const SegmentMap& m = layout->maps[i];
    int prot = PROT_READ | (backing[i].writable ? PROT_WRITE : 0);
    void* p = mmap(b + m.offset, m.length, prot, MAP_SHARED | MAP_FIXED, backing[i].fd,
                   static_cast<off_t>(m.file_offset));
    if (p == MAP_FAILED) {
      int err = errno;
      munmap(res, reserved);
      return absl::ErrnoToStatus(err, absl::StrCat("mapping client segment ", i));
    }
  }
  int slot = driver::fault_guard::AddRange(b, page_length, layout->align);
  if (slot < 0) {
    munmap(res, reserved);
    return absl::ResourceExhaustedError("too many client memory mappings");
  }
  const size_t mappings = segs.size() + (b > r ? 1 : 0) + (r + reserved > b + page_length ? 1 : 0);
  return std::unique_ptr<ClientMemory>(
      new ClientMemory(b, page_length, r, reserved, slot, mappings));
}

absl::Status ClientMemory::InstallFaultGuard() {
  if (!driver::fault_guard::Install()) return absl::ErrnoToStatus(errno, "sigaction(SIGBUS)");
  return absl::OkStatus();
}

ClientMemory::~ClientMemory() {
  driver::fault_guard::RemoveRange(guard_slot_);  // before the range can be reused
  munmap(reservation_, reserved_);
}

}  // namespace vrdma::vdev
