#include "vdev/shm/ring_arena.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <string>

#include "absl/strings/str_cat.h"

namespace vrdma::vdev {

size_t RingChunk::PageBytes() {
  static const size_t page = static_cast<size_t>(sysconf(_SC_PAGESIZE));
  return page;
}

absl::StatusOr<std::shared_ptr<RingChunk>> RingChunk::Create(const char* name) {
  absl::StatusOr<SealedMemfd> m = CreateSealedMemfd(name, kChunkPages * PageBytes());
  if (!m.ok()) return m.status();
  return std::shared_ptr<RingChunk>(new RingChunk(m->fd, m->data));
}

RingChunk::~RingChunk() {
  munmap(data_, kChunkPages * PageBytes());
  close(fd_);
}

long RingChunk::Allocate(size_t pages) {
  if (pages == 0 || pages > free_pages_) return -1;
  size_t run = 0;
  for (size_t page = 0; page < kChunkPages; ++page) {
    const uint64_t word = used_[page / 64];
    if (page % 64 == 0 && word == ~uint64_t{0}) {  // a full word ends any run
      run = 0;
      page += 63;
      continue;
    }
    if (word >> (page % 64) & 1) {
      run = 0;
      continue;
    }
    if (++run < pages) continue;
    const size_t first = page + 1 - pages;
    for (size_t p = first; p <= page; ++p) used_[p / 64] |= uint64_t{1} << (p % 64);
    free_pages_ -= pages;
    Punch(first, pages);
    return static_cast<long>(first);
  }
  return -1;
}

void RingChunk::Free(size_t first, size_t pages) {
  for (size_t p = first; p < first + pages && p < kChunkPages; ++p) {
    used_[p / 64] &= ~(uint64_t{1} << (p % 64));
  }
  free_pages_ += pages;
  Punch(first, pages);
}

void RingChunk::Punch(size_t first, size_t pages) {
  // Zero pages and give their memory back: a punched hole of a memfd reads as zeroes
  // through every mapping of it. Should the kernel refuse, zero them by hand.
  const off_t offset = static_cast<off_t>(first * PageBytes());
  const off_t len = static_cast<off_t>(pages * PageBytes());
  if (fallocate(fd_, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, offset, len) != 0) {
    std::fill_n(data_ + offset, len, uint8_t{0});
  }
}

absl::StatusOr<std::unique_ptr<SharedRegion>> RingArena::Allocate(size_t size) {
  const size_t page = RingChunk::PageBytes();
  const size_t pages = std::max<size_t>((size + page - 1) / page, 1);
  if (pages > kMaxCarvedPages) return OwnMemfd(size);
  Trim();
  std::shared_ptr<RingChunk> chunk;
  long first = -1;
  for (const std::shared_ptr<RingChunk>& c : chunks_) {
    if (c->free_pages() < pages) continue;
    first = c->Allocate(pages);
    if (first >= 0) {
      chunk = c;
      break;
    }
  }
  if (!chunk) {
    // Each chunk costs the daemon a descriptor and a mapping. Rings placed to fragment
    // the chunks (a page kept every 128) could make a chunk per few pages of the
    // context's ring quota; a new chunk is made only while the chunks are at least a
    // quarter used on average, else the ring gets a memfd of its own (no descriptor
    // kept, one mapping).
    size_t used = pages;
    for (const std::shared_ptr<RingChunk>& c : chunks_) {
      used += RingChunk::kChunkPages - c->free_pages();
    }
    if (!chunks_.empty() && used * 4 < (chunks_.size() + 1) * RingChunk::kChunkPages) {
      return OwnMemfd(size);
    }
    std::string why;
    auto charge = DaemonCharge::Take(budget_, uid_, 1, 1, &why);
    if (!charge) return absl::ResourceExhaustedError(why);
    absl::StatusOr<std::shared_ptr<RingChunk>> made = RingChunk::Create(name_);
    if (!made.ok()) return made.status();
    chunk = std::move(*made);
    chunk->HoldCharge(std::move(*charge));
    first = chunk->Allocate(pages);
    chunks_.push_back(chunk);
  }
  int fd = fcntl(chunk->fd(), F_DUPFD_CLOEXEC, 0);
  if (fd < 0) {
    const int err = errno;
    chunk->Free(static_cast<size_t>(first), pages);
    return absl::ErrnoToStatus(err, "a descriptor of a ring chunk");
  }
  return SharedRegion::Carved(std::move(chunk), fd, static_cast<size_t>(first), pages);
}

absl::StatusOr<std::unique_ptr<SharedRegion>> RingArena::OwnMemfd(size_t size) {
  std::string why;
  auto charge = DaemonCharge::Take(budget_, uid_, 1, 0, &why);
  if (!charge) return absl::ResourceExhaustedError(why);
  absl::StatusOr<std::unique_ptr<SharedRegion>> region = SharedRegion::Create(name_, size);
  if (region.ok()) (*region)->HoldCharge(std::move(*charge));
  return region;
}

void RingArena::Trim() {
  // A chunk no region holds any more goes, but for one, kept for the next ring.
  bool kept = false;
  std::erase_if(chunks_, [&kept](const std::shared_ptr<RingChunk>& c) {
    if (c.use_count() > 1 || c->free_pages() != RingChunk::kChunkPages) return false;
    if (!kept) {
      kept = true;
      return false;
    }
    return true;
  });
}

}  // namespace vrdma::vdev
