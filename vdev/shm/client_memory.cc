#include "vdev/shm/client_memory.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>

#include "absl/strings/str_cat.h"
#include "driver/device.h"

namespace vrdma::vdev {

namespace {

absl::Status CheckFd(int fd, uint64_t end, bool fixed_size) {
  struct stat st;
  if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
    return absl::InvalidArgumentError("registered memory must be a memfd");
  }
  // Only memfds carry seals; without F_SEAL_SHRINK the client could truncate the file
  // and fault the daemon on its next access.
  int seals = fcntl(fd, F_GET_SEALS);
  if (!fixed_size && (seals < 0 || !(seals & F_SEAL_SHRINK))) {
    return absl::InvalidArgumentError("registered memory must be a memfd sealed against shrinking");
  }
  // Huge pages (a hugetlbfs memfd) would need huge-page-aligned mappings, and a hole
  // punched in one is refilled from a pool the client can exhaust: a SIGBUS for the
  // daemon. Refused, as OpenClientMapping refuses them.
  if (st.st_blksize > sysconf(_SC_PAGESIZE)) {
    return absl::InvalidArgumentError("registered memory must be of normal pages");
  }
  if (static_cast<uint64_t>(st.st_size) < end) {
    return absl::InvalidArgumentError("memfd smaller than the segment it backs");
  }
  return absl::OkStatus();
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
  uint64_t cursor = 0;
  for (size_t i = 0; i < segs.size(); ++i) {
    const proto::MrSegment& s = segs[i];
    const SegmentBacking& b = backing[i];
    if (s.range_offset != cursor || s.length == 0 || s.length % page || b.file_offset % page ||
        s.length > page_length - cursor || b.file_offset > UINT64_MAX - s.length) {
      return absl::InvalidArgumentError("memory segments do not tile the registered pages");
    }
    if (absl::Status st = CheckFd(b.fd, b.file_offset + s.length, b.fixed_size); !st.ok()) {
      return st;
    }
    cursor += s.length;
  }
  if (cursor != page_length) {
    return absl::InvalidArgumentError("memory segments do not cover the registered pages");
  }
  // Reserve the whole range, then put each segment in its place.
  void* base =
      mmap(nullptr, page_length, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
  if (base == MAP_FAILED) return absl::ErrnoToStatus(errno, "reserving address space");
  uint8_t* b = static_cast<uint8_t*>(base);
  for (size_t i = 0; i < segs.size(); ++i) {
    int prot = PROT_READ | (backing[i].writable ? PROT_WRITE : 0);
    void* p = mmap(b + segs[i].range_offset, segs[i].length, prot, MAP_SHARED | MAP_FIXED,
                   backing[i].fd, static_cast<off_t>(backing[i].file_offset));
    if (p == MAP_FAILED) {
      int err = errno;
      munmap(base, page_length);
      return absl::ErrnoToStatus(err, absl::StrCat("mapping client segment ", i));
    }
  }
  int slot = driver::fault_guard::AddRange(b, page_length);
  if (slot < 0) {
    munmap(base, page_length);
    return absl::ResourceExhaustedError("too many client memory mappings");
  }
  return std::unique_ptr<ClientMemory>(new ClientMemory(b, page_length, slot));
}

absl::Status ClientMemory::InstallFaultGuard() {
  if (!driver::fault_guard::Install()) return absl::ErrnoToStatus(errno, "sigaction(SIGBUS)");
  return absl::OkStatus();
}

ClientMemory::~ClientMemory() {
  driver::fault_guard::RemoveRange(guard_slot_);  // before the range can be reused
  munmap(base_, length_);
}

}  // namespace vrdma::vdev
