// Shared memory the daemon creates for a client (rings, CQs, the context page): a memfd
// sealed against shrinking and growing, so a client holding the fd cannot truncate the
// pages under the daemon (which would fault it). A region is either a memfd of its own
// (Create) or a page range carved out of one of its context's larger memfds (RingArena,
// vdev/shm/ring_arena.h), which the daemon maps once for many rings.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>

#include "absl/status/statusor.h"
#include "vdev/shm/daemon_budget.h"

namespace vrdma::vdev {

class RingChunk;

// A memfd of `bytes` (whole pages) sealed against shrinking and growing, mapped shared.
struct SealedMemfd {
  int fd;
  uint8_t* data;
};
absl::StatusOr<SealedMemfd> CreateSealedMemfd(const char* name, size_t bytes);

class SharedRegion {
 public:
  static absl::StatusOr<std::unique_ptr<SharedRegion>> Create(const char* name, size_t size);
  // `pages` pages of `chunk` from page `first`, which the chunk has set aside for it and
  // gets back when the region goes; `fd` (owned) a descriptor of the chunk's memfd for the
  // client.
  static std::unique_ptr<SharedRegion> Carved(std::shared_ptr<RingChunk> chunk, int fd,
                                              size_t first, size_t pages);
  ~SharedRegion();
  SharedRegion(const SharedRegion&) = delete;
  SharedRegion& operator=(const SharedRegion&) = delete;

  // The memfd, -1 once taken.
  int fd() const { return fd_; }
  // Gives the memfd away (the caller closes it): the mapping stays, and the daemon holds
  // no descriptor per ring, so the number of QPs and CQs is not bounded by its fd limit.
  int TakeFd() {
    int fd = fd_;
    fd_ = -1;
    return fd;
  }
  uint8_t* data() const { return data_; }
  size_t size() const { return size_; }
  // Where the region starts in its memfd: what the client maps (0 for a memfd of its own).
  uint64_t offset() const { return offset_; }
  // What the region takes of the daemon's budget, held while it lives.
  void HoldCharge(DaemonCharge charge) { charge_ = std::move(charge); }

 private:
  SharedRegion(int fd, uint8_t* data, size_t size, uint64_t offset)
      : fd_(fd), data_(data), size_(size), offset_(offset) {}
  int fd_;
  uint8_t* data_;
  size_t size_;
  uint64_t offset_;
  std::shared_ptr<RingChunk> chunk_;  // set for a carved region: its mapping is the chunk's
  DaemonCharge charge_;
};

}  // namespace vrdma::vdev
