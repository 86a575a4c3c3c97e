// Shared memory the daemon creates for a client (rings, CQs, the context page): a memfd
// sealed against shrinking and growing, so a client holding the fd cannot truncate the
// pages under the daemon (which would fault it).
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>

#include "absl/status/statusor.h"

namespace vrdma::vdev {

class SharedRegion {
 public:
  static absl::StatusOr<std::unique_ptr<SharedRegion>> Create(const char* name, size_t size);
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

 private:
  SharedRegion(int fd, uint8_t* data, size_t size) : fd_(fd), data_(data), size_(size) {}
  int fd_;
  uint8_t* data_;
  size_t size_;
};

}  // namespace vrdma::vdev
