#include "vdev/shm/shared_region.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "absl/strings/str_cat.h"
#include "vdev/shm/ring_arena.h"

namespace vrdma::vdev {

absl::StatusOr<SealedMemfd> CreateSealedMemfd(const char* name, size_t bytes) {
  int fd = memfd_create(name, MFD_CLOEXEC | MFD_ALLOW_SEALING);
  if (fd < 0) return absl::ErrnoToStatus(errno, "memfd_create");
  if (ftruncate(fd, static_cast<off_t>(bytes)) != 0 ||
      fcntl(fd, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL) != 0) {
    int err = errno;
    close(fd);
    return absl::ErrnoToStatus(err, "sizing or sealing a shared region");
  }
  void* p = mmap(nullptr, bytes, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
  if (p == MAP_FAILED) {
    int err = errno;
    close(fd);
    return absl::ErrnoToStatus(err, absl::StrCat("mapping ", bytes, " bytes"));
  }
  return SealedMemfd{fd, static_cast<uint8_t*>(p)};
}

absl::StatusOr<std::unique_ptr<SharedRegion>> SharedRegion::Create(const char* name, size_t size) {
  long page = sysconf(_SC_PAGESIZE);
  size = (size + page - 1) / page * page;
  absl::StatusOr<SealedMemfd> m = CreateSealedMemfd(name, size);
  if (!m.ok()) return m.status();
  return std::unique_ptr<SharedRegion>(new SharedRegion(m->fd, m->data, size, 0));
}

std::unique_ptr<SharedRegion> SharedRegion::Carved(std::shared_ptr<RingChunk> chunk, int fd,
                                                   size_t first, size_t pages) {
  const size_t offset = first * RingChunk::PageBytes();
  std::unique_ptr<SharedRegion> r(
      new SharedRegion(fd, chunk->data() + offset, pages * RingChunk::PageBytes(), offset));
  r->chunk_ = std::move(chunk);
  return r;
}

SharedRegion::~SharedRegion() {
  if (chunk_) {
    chunk_->Free(offset_ / RingChunk::PageBytes(), size_ / RingChunk::PageBytes());
  } else {
    munmap(data_, size_);
  }
  if (fd_ >= 0) close(fd_);
}

}  // namespace vrdma::vdev
