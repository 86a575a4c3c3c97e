#include "vdev/shm/registration.h"

#include <unistd.h>

#include <algorithm>

#include "vdev/shm/client_mapping.h"

namespace vrdma::vdev {

absl::StatusOr<RegistrationBacking> RegistrationBacking::Open(
    const Peer& peer, uint64_t page_base, uint64_t page_length, std::span<const proto::MrSegment> segs,
    std::vector<int> passed_fds) {
  RegistrationBacking r;
  size_t next_fd = 0;
  auto close_rest = [&] {
    for (size_t i = next_fd; i < passed_fds.size(); ++i) close(passed_fds[i]);
  };
  size_t by_fd = std::count_if(segs.begin(), segs.end(),
                               [](const proto::MrSegment& s) { return !s.by_reference; });
  if (passed_fds.size() != by_fd) {
    close_rest();
    return absl::OutOfRangeError("one descriptor per segment passed by descriptor");
  }
  for (const proto::MrSegment& s : segs) {
    if (!s.by_reference) {
      r.backing_.push_back(SegmentBacking{passed_fds[next_fd++], s.file_offset, true, false});
      continue;
    }
    if (s.range_offset > page_length) {
      close_rest();
      return absl::OutOfRangeError("segment outside the registered pages");
    }
    absl::StatusOr<ClientMapping> m = OpenClientMapping(peer, page_base + s.range_offset, s.length);
    if (!m.ok()) {
      close_rest();
      return m.status();
    }
    r.backing_.push_back(SegmentBacking{m->fd, m->file_offset, m->writable, m->fixed_size});
  }
  return r;
}

RegistrationBacking::RegistrationBacking(RegistrationBacking&& other) noexcept
    : backing_(std::move(other.backing_)) {
  other.backing_.clear();
}

RegistrationBacking::~RegistrationBacking() { Close(); }

void RegistrationBacking::Close() {
  for (const SegmentBacking& b : backing_) close(b.fd);
  backing_.clear();
}

bool RegistrationBacking::read_only() const {
  return std::any_of(backing_.begin(), backing_.end(),
                     [](const SegmentBacking& b) { return !b.writable; });
}

absl::StatusOr<std::unique_ptr<ClientMemory>> RegistrationBacking::Map(
    uint64_t page_length, std::span<const proto::MrSegment> segs) {
  auto memory = ClientMemory::Map(page_length, segs, backing_);
  Close();  // the mappings keep the pages
  return memory;
}

}  // namespace vrdma::vdev
