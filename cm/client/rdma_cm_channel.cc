#include "cm/client/rdma_cm_channel.h"

#include <fcntl.h>
#include <poll.h>
#include <rdma/rdma_user_cm.h>
#include <sys/socket.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <new>
#include <vector>

#include "vdev/protocol/channel.h"

namespace vrdma::cm_client {
namespace {

// What the client needs of a command (rdma_user_cm.h): the bytes its struct takes, and
// where its `response` pointer is, for the commands the kernel answers through one.
struct Shape {
  bool handled;  // ucma_cmd_table has a handler (GET_OPTION has none: ENOSYS)
  uint16_t min_in;
  int response_at;  // offset of the response pointer, or -1
};

constexpr int kNoResponse = -1;

std::optional<Shape> ShapeOf(uint32_t cmd) {
  switch (cmd) {
    case RDMA_USER_CM_CMD_CREATE_ID:
      return Shape{true, sizeof(rdma_ucm_create_id), offsetof(rdma_ucm_create_id, response)};
    case RDMA_USER_CM_CMD_DESTROY_ID:
    case RDMA_USER_CM_CMD_LEAVE_MCAST:  // takes rdma_ucm_destroy_id too (ucma.c)
      return Shape{true, sizeof(rdma_ucm_destroy_id), offsetof(rdma_ucm_destroy_id, response)};
    case RDMA_USER_CM_CMD_BIND_IP:  // has a response field the kernel never writes
      return Shape{true, sizeof(rdma_ucm_bind_ip), kNoResponse};
    case RDMA_USER_CM_CMD_RESOLVE_IP:
      return Shape{true, sizeof(rdma_ucm_resolve_ip), kNoResponse};
    case RDMA_USER_CM_CMD_RESOLVE_ROUTE:
      return Shape{true, sizeof(rdma_ucm_resolve_route), kNoResponse};
    case RDMA_USER_CM_CMD_QUERY_ROUTE:  // takes rdma_ucm_query (ucma.c)
    case RDMA_USER_CM_CMD_QUERY:
      return Shape{true, sizeof(rdma_ucm_query), offsetof(rdma_ucm_query, response)};
    // CONNECT and ACCEPT grew the ece tail; the kernel requires the fields up to
    // `reserved` and takes ece when present (in_len < offsetofend(reserved): EINVAL).
    case RDMA_USER_CM_CMD_CONNECT:
      return Shape{true, offsetof(rdma_ucm_connect, ece), kNoResponse};
    case RDMA_USER_CM_CMD_ACCEPT:
      return Shape{true, offsetof(rdma_ucm_accept, ece), kNoResponse};
    case RDMA_USER_CM_CMD_LISTEN:
      return Shape{true, sizeof(rdma_ucm_listen), kNoResponse};
    case RDMA_USER_CM_CMD_REJECT:
      return Shape{true, sizeof(rdma_ucm_reject), kNoResponse};
    case RDMA_USER_CM_CMD_DISCONNECT:
      return Shape{true, sizeof(rdma_ucm_disconnect), kNoResponse};
    case RDMA_USER_CM_CMD_INIT_QP_ATTR:
      return Shape{true, sizeof(rdma_ucm_init_qp_attr), offsetof(rdma_ucm_init_qp_attr, response)};
    case RDMA_USER_CM_CMD_GET_EVENT:
      return Shape{true, sizeof(rdma_ucm_get_event), offsetof(rdma_ucm_get_event, response)};
    case RDMA_USER_CM_CMD_GET_OPTION:
      return Shape{false, 0, kNoResponse};
    case RDMA_USER_CM_CMD_SET_OPTION:
      return Shape{true, sizeof(rdma_ucm_set_option), kNoResponse};
    case RDMA_USER_CM_CMD_NOTIFY:
      return Shape{true, sizeof(rdma_ucm_notify), kNoResponse};
    case RDMA_USER_CM_CMD_JOIN_IP_MCAST:
      return Shape{true, sizeof(rdma_ucm_join_ip_mcast),
                   offsetof(rdma_ucm_join_ip_mcast, response)};
    case RDMA_USER_CM_CMD_MIGRATE_ID:
      return Shape{true, sizeof(rdma_ucm_migrate_id), offsetof(rdma_ucm_migrate_id, response)};
    case RDMA_USER_CM_CMD_BIND:
      return Shape{true, sizeof(rdma_ucm_bind), kNoResponse};
    case RDMA_USER_CM_CMD_RESOLVE_ADDR:
      return Shape{true, sizeof(rdma_ucm_resolve_addr), kNoResponse};
    case RDMA_USER_CM_CMD_JOIN_MCAST:
      return Shape{true, sizeof(rdma_ucm_join_mcast), offsetof(rdma_ucm_join_mcast, response)};
    default:
      return std::nullopt;  // past the end of ucma_cmd_table: EINVAL
  }
}

// The identity of the file open at `fd`. fstatat, not fstat: the interposed fstat comes
// back here for a channel.
bool FileId(int fd, dev_t* dev, ino_t* ino) {
  struct stat st;
  if (fstatat(fd, "", &st, AT_EMPTY_PATH) != 0) return false;
  *dev = st.st_dev;
  *ino = st.st_ino;
  return true;
}

// Takes one queue byte off a channel (protocol.h: the daemon sent it when the file's
// event queue became non-empty; a reply says when the queue went empty again).
void TakeQueueByte(int sock) {
  char byte;
  while (recv(sock, &byte, sizeof byte, MSG_DONTWAIT) < 0 && errno == EINTR) {
  }
}

}  // namespace

dev_t CmDeviceNumber() {
  int fd = open("/sys/class/misc/rdma_cm/dev", O_RDONLY | O_CLOEXEC);
  if (fd >= 0) {
    char text[32] = {};
    ssize_t n = read(fd, text, sizeof text - 1);
    close(fd);
    unsigned int major_number = 0, minor_number = 0;
    if (n > 0 && std::sscanf(text, "%u:%u", &major_number, &minor_number) == 2) {
      return makedev(major_number, minor_number);
    }
  }
  // rdma_cm is a misc device (major 10, MISC_MAJOR) with a dynamic minor; minor 255 is
  // MISC_DYNAMIC_MINOR, the "allocate one for me" marker the kernel never gives a device,
  // so the number is rdma_cm-like yet names no real device.
  return makedev(10, 255);
}

Channel::~Channel() { close(conn); }

// A channel held for one command: `sock` is a duplicate of the application's descriptor
// (or the descriptor itself when no descriptor is left to duplicate into), so the command
// polls and drains the channel's own socket even if another thread closes the number,
// and the file lives until the command returns, as a kernel file does during a write.
struct ChannelTable::Pinned {
  Pinned(std::shared_ptr<Channel> ch, int sock, bool owned)
      : ch(std::move(ch)), sock(sock), owned(owned) {}
  Pinned(Pinned&& o) noexcept : ch(std::move(o.ch)), sock(o.sock), owned(o.owned) {
    o.owned = false;
  }
  Pinned& operator=(Pinned&&) = delete;
  ~Pinned() {
    if (owned) close(sock);
  }
  std::shared_ptr<Channel> ch;
  int sock;
  bool owned;
};

ChannelTable::~ChannelTable() { delete entries_; }

size_t ChannelTable::size() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return entries_ ? entries_->size() : 0;
}

std::shared_ptr<Channel> ChannelTable::Lookup(int fd) const {
  std::lock_guard<std::mutex> lock(mutex_);
  if (!entries_) return nullptr;
  auto it = entries_->find(fd);
  return it == entries_->end() ? nullptr : it->second;
}

void ChannelTable::DropIf(int fd, const std::shared_ptr<Channel>& ch) {
  std::shared_ptr<Channel> dropped;  // released after the lock: its destructor closes
  std::lock_guard<std::mutex> lock(mutex_);
  if (!entries_) return;
  auto it = entries_->find(fd);
  if (it == entries_->end() || it->second != ch) return;  // already replaced
  dropped = std::move(it->second);
  entries_->erase(it);
  Mark(fd, false);
}

int ChannelTable::Open(int flags) {
  int fds[2];
  if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, fds) != 0) return -errno;
  int conn = proto::ConnectToDaemon();
  if (conn < 0) {
    close(fds[0]);
    close(fds[1]);
    return -ENOENT;  // no daemon: what open() of a missing device node gives
  }
  proto::Message reply;
  int err = proto::Call(conn, proto::Op::kCmOpen, nullptr, 0, &fds[1], 1, &reply);
  close(fds[1]);  // the daemon has its own copy now
  proto::CmOpenReply opened{};
  if (err) {
    err = ENOENT;  // the daemon went away
  } else if (reply.header.status) {
    err = reply.header.status > 0 ? reply.header.status : EPROTO;
  } else if (!reply.Copy(&opened)) {
    err = EPROTO;
  }
  // open(2)'s flags that a character device honours: O_NONBLOCK (GET_EVENT then fails
  // with EAGAIN instead of waiting, ucma_get_event) and O_CLOEXEC.
  if (!err && (flags & O_NONBLOCK)) {
    int fl = fcntl(fds[0], F_GETFL);
    if (fl < 0 || fcntl(fds[0], F_SETFL, fl | O_NONBLOCK) != 0) err = errno;
  }
  if (!err && !(flags & O_CLOEXEC) && fcntl(fds[0], F_SETFD, 0) != 0) err = errno;
  dev_t dev = 0;
  ino_t ino = 0;
  if (!err && !FileId(fds[0], &dev, &ino)) err = errno;
  if (err) {
    close(conn);
    close(fds[0]);
    return -err;
  }
  std::shared_ptr<Channel> replaced;  // a stale entry under the same number
  try {
    auto ch = std::make_shared<Channel>(fds[0], dev, ino, conn, opened.file_token);
    std::lock_guard<std::mutex> lock(mutex_);
    if (!entries_) entries_ = new std::map<int, std::shared_ptr<Channel>>;
    std::shared_ptr<Channel>& slot = (*entries_)[fds[0]];
    replaced = std::move(slot);
    slot = std::move(ch);
    if (!replaced) Mark(fds[0], true);
  } catch (const std::bad_alloc&) {
    close(conn);
    close(fds[0]);
    return -ENOMEM;
  }
  return fds[0];
}

std::optional<ChannelTable::Pinned> ChannelTable::Acquire(int fd) {
  if (!MayBeChannel(fd)) return std::nullopt;
  std::shared_ptr<Channel> ch = Lookup(fd);
  if (!ch) return std::nullopt;
  int sock = fcntl(fd, F_DUPFD_CLOEXEC, 0);
  bool owned = sock >= 0;
  if (sock < 0 && errno != EBADF) sock = fd;  // out of descriptors: use the number itself
  dev_t dev;
  ino_t ino;
  if (sock < 0 || !FileId(sock, &dev, &ino) || dev != ch->dev || ino != ch->ino) {
    // Closed, or closed and reused, behind our back (close_range, dup2 over it): the
    // number is not the channel any more.
    if (owned) close(sock);
    DropIf(fd, ch);
    return std::nullopt;
  }
  return Pinned(std::move(ch), sock, owned);
}

std::optional<ssize_t> ChannelTable::Write(int fd, const void* buf, size_t len) {
  std::optional<Pinned> pinned = Acquire(fd);
  if (!pinned) return std::nullopt;
  try {
    return Command(*pinned, buf, len);
  } catch (const std::bad_alloc&) {
    return -ENOMEM;
  }
}

bool ChannelTable::IsChannelFile(int fd, dev_t dev, ino_t ino) {
  std::shared_ptr<Channel> ch = Lookup(fd);
  if (!ch) return false;
  if (ch->dev == dev && ch->ino == ino) return true;
  DropIf(fd, ch);
  return false;
}

bool ChannelTable::Forget(int fd) {
  if (!MayBeChannel(fd)) return false;
  std::shared_ptr<Channel> dropped;  // released after the lock
  std::lock_guard<std::mutex> lock(mutex_);
  if (!entries_) return false;
  auto it = entries_->find(fd);
  if (it == entries_->end()) return false;
  dropped = std::move(it->second);
  entries_->erase(it);
  Mark(fd, false);
  return true;
}

ssize_t ChannelTable::Command(Pinned& pinned, const void* buf, size_t len) {
  Channel& ch = *pinned.ch;
  // ucma_write: a header, a command the table knows, `in` bytes within the write (the
  // kernel ignores bytes past them), and no handler for GET_OPTION.
  rdma_ucm_cmd_hdr hdr;
  if (len < sizeof hdr) return -EINVAL;
  std::memcpy(&hdr, buf, sizeof hdr);
  std::optional<Shape> shape = ShapeOf(hdr.cmd);
  if (!shape) return -EINVAL;
  if (sizeof hdr + hdr.in > len) return -EINVAL;
  if (!shape->handled) return -ENOSYS;
  // The kernel reads each command's whole struct; the daemon gets what it needs.
  if (hdr.in < shape->min_in) return -EINVAL;
  const auto* in = static_cast<const uint8_t*>(buf) + sizeof hdr;
  // Bytes past kCmMaxCommand are past every command's struct: the kernel never reads them.
  uint32_t in_len = std::min<uint32_t>(hdr.in, proto::kCmMaxCommand);

  proto::CmCommand command{};
  command.cmd = hdr.cmd;
  command.in_len = in_len;
  command.out_len = hdr.out;
  std::vector<uint8_t> payload(sizeof command + in_len);
  std::memcpy(payload.data() + sizeof command, in, in_len);

  std::optional<Pinned> peer;  // MIGRATE_ID's current channel
  if (hdr.cmd == RDMA_USER_CM_CMD_SET_OPTION) {
    // The option's value travels after the command (ucma_set_option copies optlen bytes
    // from optval: EFAULT when it cannot).
    rdma_ucm_set_option set;
    std::memcpy(&set, in, sizeof set);
    if (set.optlen > proto::kCmMaxCommand) return -EINVAL;
    if (set.optlen && !set.optval) return -EFAULT;
    const auto* optval = reinterpret_cast<const uint8_t*>(static_cast<uintptr_t>(set.optval));
    payload.insert(payload.end(), optval, optval + set.optlen);
  } else if (hdr.cmd == RDMA_USER_CM_CMD_MIGRATE_ID) {
    // `fd` is the id's current channel, in this process: the daemon knows it by its token.
    // As ucma_migrate_id: a descriptor not open is ENOENT (fdget fails), one that is not
    // an rdma_cm file is EINVAL.
    rdma_ucm_migrate_id migrate;
    std::memcpy(&migrate, in, sizeof migrate);
    int peer_fd = migrate.fd > INT32_MAX ? -1 : static_cast<int>(migrate.fd);
    std::optional<Pinned> acquired = Acquire(peer_fd);
    if (!acquired) {
      // This command's own pin is not the application's descriptor.
      bool open =
          peer_fd >= 0 && !(pinned.owned && peer_fd == pinned.sock) && fcntl(peer_fd, F_GETFD) >= 0;
      return open ? -EINVAL : -ENOENT;
    }
    peer.emplace(std::move(*acquired));
    command.peer_token = peer->ch->file_token;
  }
  std::memcpy(payload.data(), &command, sizeof command);

  uint64_t response = 0;
  if (shape->response_at != kNoResponse) std::memcpy(&response, in + shape->response_at, 8);

  bool hung_up = false;  // the channel's other end closed: the daemon is going away
  int wakeups_without_event = 0;
  for (;;) {
    proto::Message reply;
    proto::CmCommandReply answer{};
    int err;
    {
      std::lock_guard<std::mutex> lock(ch.mutex);
      err = proto::Call(ch.conn, proto::Op::kCmCommand, payload.data(), payload.size(), nullptr, 0,
                        &reply);
      if (!err && reply.header.status == 0) {
        if (!reply.Copy(&answer) || reply.payload.size() - sizeof answer < answer.out_len) {
          err = EPROTO;
        } else {
          // Drained while this connection is still ours: replies and drains stay in order.
          if (answer.flags & proto::kCmQueueDrained) TakeQueueByte(pinned.sock);
          if ((answer.flags & proto::kCmPeerQueueDrained) && peer) TakeQueueByte(peer->sock);
        }
      }
    }
    // The daemon is gone (or spoke nonsense): the file with it. uverbs answers EIO for a
    // device that went away; so does this.
    if (err) return -EIO;
    int status = reply.header.status;
    if (status == EAGAIN && hdr.cmd == RDMA_USER_CM_CMD_GET_EVENT) {
      // No event queued. ucma_get_event: O_NONBLOCK gives EAGAIN, else it waits for one.
      // The wait is a poll of the channel without the connection's mutex, so other
      // threads' commands on this file go through meanwhile (rping waits in GET_EVENT in
      // one thread while another connects).
      int fl = fcntl(pinned.sock, F_GETFL);
      if (fl < 0) return -errno;
      if (fl & O_NONBLOCK) return -EAGAIN;
      if (hung_up) return -EIO;
      if (wakeups_without_event) {
        // Readable yet no event: another thread's reply drained the queue and has not
        // taken the byte yet. Back off briefly rather than spin on the byte.
        poll(nullptr, 0, std::min(1 << std::min(wakeups_without_event, 6), 50));
      }
      pollfd pfd{pinned.sock, POLLIN, 0};
      int n;
      // A signal does not end the wait: the write is restarted, as ucma_get_event's
      // -ERESTARTSYS is under SA_RESTART (glibc's signal() default). librdmacm takes any
      // failure of GET_EVENT as an error of rdma_get_cm_event, which rping and others treat
      // as fatal, so EINTR would turn a harmless signal into a failure.
      while ((n = poll(&pfd, 1, -1)) < 0 && errno == EINTR) {
      }
      if (n < 0) return -errno;
      if (pfd.revents & POLLNVAL) return -EBADF;
      if (pfd.revents & POLLIN) ++wakeups_without_event;
      // POLLHUP / POLLERR: the daemon closed its end. One more try, then EIO.
      if (pfd.revents & (POLLHUP | POLLERR)) hung_up = true;
      continue;
    }
    if (status < 0) return -EIO;
    if (status) return -status;
    // As the kernel, copy what the command's response buffer holds (hdr.out) of what the
    // daemon answered, through the command's response pointer.
    size_t n = std::min<size_t>(answer.out_len, hdr.out);
    if (shape->response_at != kNoResponse && n) {
      if (!response) return -EFAULT;
      std::memcpy(reinterpret_cast<void*>(static_cast<uintptr_t>(response)),
                  reply.payload.data() + sizeof answer, n);
    }
    return static_cast<ssize_t>(len);
  }
}

}  // namespace vrdma::cm_client
