// The client side of the RDMA connection manager: the rdma_cm character device that
// Debian's unmodified librdmacm speaks to (rdma/rdma_user_cm.h), answered by vrdmad.
//
// open("/dev/infiniband/rdma_cm") gives the application one end of an AF_UNIX
// SOCK_SEQPACKET socketpair, the "channel" (pollable: readable while the CM file has
// events queued; protocol.h, "the connection manager"), and opens a connection of its own
// to vrdmad, which is the CM file. write() on the channel is a command, forwarded on that
// connection; fstat() of the channel says character device; close() ends the file.
//
// ChannelTable holds that logic and nothing of libc interposition: libc_hooks.cc is the
// thin extern "C" layer that routes open/write/fstat/close to it. Its methods return
// results as -errno; the hooks set errno.
#pragma once

#include <sys/stat.h>
#include <sys/types.h>

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <optional>

#include "vdev/protocol/fd_bitmap.h"

namespace vrdma::cm_client {

// The path librdmacm opens (RDMA_CDEV_DIR "/" the name RDMA netlink reports, "rdma_cm").
inline constexpr const char* kRdmaCmPath = "/dev/infiniband/rdma_cm";

// The device number fstat() reports for a channel. librdmacm's open_cdev() compares
// st_rdev with the number RDMA netlink gave it for "rdma_cm" when the kernel has that
// device (rdma_ucm loaded), so the kernel's own number is reported then (read from
// /sys/class/misc/rdma_cm/dev); when the kernel has none, librdmacm compares nothing
// (dev_cdev = 0) and the number only has to name no real device.
dev_t CmDeviceNumber();

// One open CM file.
struct Channel {
  Channel(int fd, dev_t dev, ino_t ino, int conn, uint64_t file_token)
      : fd(fd), dev(dev), ino(ino), conn(conn), file_token(file_token) {}
  // Closes the daemon connection, which ends the file (the daemon destroys its IDs).
  ~Channel();
  Channel(const Channel&) = delete;
  Channel& operator=(const Channel&) = delete;

  const int fd;  // the application's descriptor (the channel's client end)
  // The channel socket's identity: the descriptor number may be closed behind our back
  // (close_range, dup2 over it) and reused for another file.
  const dev_t dev;
  const ino_t ino;
  const int conn;  // the connection to vrdmad (CLOEXEC)
  const uint64_t file_token;
  std::mutex mutex;  // one request in flight on conn
};

class ChannelTable {
 public:
  constexpr ChannelTable() = default;
  ~ChannelTable();
  ChannelTable(const ChannelTable&) = delete;
  ChannelTable& operator=(const ChannelTable&) = delete;

  // Whether `fd` may be a channel: one relaxed atomic load, no lock. False means it is
  // certainly not one; true means look it up (Write, IsChannelFile, Forget do).
  bool MayBeChannel(int fd) const noexcept { return marked_.MayBe(fd); }

  // open(kRdmaCmPath, flags): a new CM file. Honours O_CLOEXEC and O_NONBLOCK. Returns
  // the descriptor, or -ENOENT when vrdmad cannot be reached (what a missing device node
  // gives), or -errno the daemon refused the open with.
  int Open(int flags);

  // write(fd, buf, len). When fd is a channel: the command's result, len or -errno (the
  // rules of the kernel's ucma_write). std::nullopt when fd is not a channel (any more):
  // the caller does the real write.
  std::optional<ssize_t> Write(int fd, const void* buf, size_t len);

  // fstat(): whether fd is a channel, checked against the file the real fstat found
  // there (dev, ino); a stale entry is dropped.
  bool IsChannelFile(int fd, dev_t dev, ino_t ino);
  template <typename Stat>
  bool PatchStat(int fd, Stat* st) {
    if (!MayBeChannel(fd) || !IsChannelFile(fd, st->st_dev, st->st_ino)) return false;
    // ucma's misc device is created with mode 0666 (ucma_misc in ucma.c).
    st->st_mode = S_IFCHR | 0666;
    st->st_rdev = CmDeviceNumber();
    return true;
  }

  // close(fd): forgets fd if it is a channel, closing its daemon connection unless a
  // command is in flight (it then closes when that command returns, as the kernel's file
  // lives until a write in flight returns). The caller closes fd itself. Returns whether
  // fd was a channel.
  bool Forget(int fd);

  size_t size() const;  // channels known (tests)

 private:
  struct Pinned;
  std::shared_ptr<Channel> Lookup(int fd) const;
  std::optional<Pinned> Acquire(int fd);
  void DropIf(int fd, const std::shared_ptr<Channel>& ch);
  ssize_t Command(Pinned& ch, const void* buf, size_t len);
  void Mark(int fd, bool on) { marked_.Mark(fd, on); }  // with mutex_ held

  mutable std::mutex mutex_;
  std::map<int, std::shared_ptr<Channel>>* entries_ = nullptr;  // made by the first Open
  proto::FdBitmap marked_;
};

}  // namespace vrdma::cm_client
