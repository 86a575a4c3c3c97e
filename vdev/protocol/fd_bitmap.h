// Which descriptors a client-side hook handles itself (the rdma_cm channels, the
// NETLINK_RDMA sockets of vrdma-run): a hook on write(), close() or recvmsg() runs for
// every descriptor of the process, so "not one of ours" must cost one relaxed atomic
// load and no lock. Descriptors below kBitmapFds have a bit; above, a count says whether
// any is there. constexpr-constructible: usable from hooks that run before constructors.
#pragma once

#include <atomic>
#include <cstdint>

namespace vrdma::proto {

class FdBitmap {
 public:
  static constexpr int kBitmapFds = 1 << 16;

  constexpr FdBitmap() = default;
  FdBitmap(const FdBitmap&) = delete;
  FdBitmap& operator=(const FdBitmap&) = delete;

  // False: certainly not marked. True: look it up under the owner's lock.
  bool MayBe(int fd) const noexcept {
    if (fd < 0) return false;
    if (fd < kBitmapFds) return (bits_[fd >> 6].load(std::memory_order_relaxed) >> (fd & 63)) & 1;
    return high_count_.load(std::memory_order_relaxed) != 0;
  }

  // Called with the owner's lock held, once per change of `fd`'s state.
  void Mark(int fd, bool on) noexcept {
    if (fd >= kBitmapFds) {
      if (on) {
        high_count_.fetch_add(1, std::memory_order_relaxed);
      } else {
        high_count_.fetch_sub(1, std::memory_order_relaxed);
      }
      return;
    }
    uint64_t bit = uint64_t{1} << (fd & 63);
    if (on) {
      bits_[fd >> 6].fetch_or(bit, std::memory_order_relaxed);
    } else {
      bits_[fd >> 6].fetch_and(~bit, std::memory_order_relaxed);
    }
  }

 private:
  std::atomic<uint64_t> bits_[kBitmapFds / 64] = {};
  std::atomic<uint32_t> high_count_{0};  // marked descriptors at kBitmapFds or above
};

}  // namespace vrdma::proto
