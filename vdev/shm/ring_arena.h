// The rings of one context (its QPs', CQs' and SRQs' shared memory) carved out of a few
// memfds of kChunkPages pages each, which the daemon maps once: a mapping per chunk rather
// than per ring, so a daemon holding 100,000 QPs stays far under the kernel's
// vm.max_map_count (65,530 by default) and keeps a descriptor per chunk, not per ring.
//
// A chunk is a sealed memfd of the context's own (F_SEAL_SHRINK | F_SEAL_GROW): the client
// that maps its rings from it can reach only its own context's rings, and cannot truncate
// pages under the daemon. Pages are handed out zeroed (a hole punched at allocation, which
// also undoes what a client wrote through a stale mapping of a freed ring) and given back
// to the kernel when their ring is freed. A ring larger than kMaxCarvedPages gets a memfd
// of its own, as before: those are few, since their size is charged to the vdev. So does
// a ring that would need a new chunk while the context's chunks are less than a quarter
// used on average: a descriptor the daemon keeps costs a context 512 KiB of rings, however
// it places and frees them.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <vector>

#include "absl/status/statusor.h"
#include "vdev/shm/shared_region.h"

namespace vrdma::vdev {

class RingChunk {
 public:
  static constexpr size_t kChunkPages = 512;  // 2 MiB of 4 KiB pages
  static size_t PageBytes();

  static absl::StatusOr<std::shared_ptr<RingChunk>> Create(const char* name);
  ~RingChunk();
  RingChunk(const RingChunk&) = delete;
  RingChunk& operator=(const RingChunk&) = delete;

  // The first page of `pages` free ones in a row, now set aside and zeroed; -1 when
  // there is no such run.
  long Allocate(size_t pages);
  // Gives pages back (their memory to the kernel).
  void Free(size_t first, size_t pages);

  int fd() const { return fd_; }
  uint8_t* data() const { return data_; }
  size_t free_pages() const { return free_pages_; }
  // Its descriptor and mapping, from the context's user's share of the daemon's.
  void HoldCharge(DaemonCharge charge) { charge_ = std::move(charge); }

 private:
  RingChunk(int fd, uint8_t* data) : fd_(fd), data_(data) {}
  void Punch(size_t first, size_t pages);

  int fd_;
  uint8_t* data_;
  size_t free_pages_ = kChunkPages;
  std::array<uint64_t, kChunkPages / 64> used_{};  // a bit per page
  DaemonCharge charge_;
};

class RingArena {
 public:
  static constexpr size_t kMaxCarvedPages = 128;  // 512 KiB

  explicit RingArena(const char* name) : name_(name) {}
  // The budget each chunk's descriptor and mapping, and each ring of its own's mapping,
  // is taken from, for `uid` (none set: not counted).
  void SetBudget(DaemonBudget* budget, uint32_t uid) {
    budget_ = budget;
    uid_ = uid;
  }

  // At least `size` bytes of zeroed shared memory, page-aligned in its memfd; its fd()
  // a descriptor of that memfd for the client (TakeFd), its offset() where it starts.
  absl::StatusOr<std::unique_ptr<SharedRegion>> Allocate(size_t size);

  // Chunks held (each one mapping and one descriptor of the daemon's).
  size_t chunks() const { return chunks_.size(); }

  // Lets go of the chunks no ring uses, but one (done at each Allocate).
  void Trim();

 private:
  // A region with a memfd of its own: one mapping of the daemon's (its descriptor goes to
  // the client).
  absl::StatusOr<std::unique_ptr<SharedRegion>> OwnMemfd(size_t size);

  const char* name_;
  DaemonBudget* budget_ = nullptr;
  uint32_t uid_ = 0;
  std::vector<std::shared_ptr<RingChunk>> chunks_;
};

}  // namespace vrdma::vdev
