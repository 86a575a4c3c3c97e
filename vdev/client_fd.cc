#include "vdev/client_fd.h"

#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <cstdint>

namespace vrdma::vdev {

namespace {

// The device of the sockets' file system (sockfs), from a socket of our own: every socket
// has it, and nothing on a mounted file system does (a socket file's inode is the file
// system's, not a socket).
bool SocketDevice(dev_t* out) {
  static const struct Probe {
    bool ok = false;
    dev_t dev = 0;
    Probe() {
      int sv[2];
      if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) != 0) return;
      struct stat st {};
      ok = fstat(sv[0], &st) == 0 && S_ISSOCK(st.st_mode);
      dev = st.st_dev;
      close(sv[0]);
      close(sv[1]);
    }
  } probe;
  *out = probe.dev;
  return probe.ok;
}

}  // namespace

int CheckEventChannel(int fd) {
  struct stat st {};
  dev_t sockfs;
  if (fd < 0 || fstat(fd, &st) != 0 || !S_ISSOCK(st.st_mode)) return EINVAL;
  if (!SocketDevice(&sockfs) || st.st_dev != sockfs) return EINVAL;
  int domain = 0, type = 0;
  socklen_t len = sizeof domain;
  if (getsockopt(fd, SOL_SOCKET, SO_DOMAIN, &domain, &len) != 0 || domain != AF_UNIX) {
    return EINVAL;
  }
  len = sizeof type;
  if (getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &len) != 0 || type != SOCK_SEQPACKET) {
    return EINVAL;
  }
  // Connected, to an unnamed peer: the other end of a socketpair. A connection to a named
  // (or abstract) listener has the listener's name as its peer's: the daemon would be
  // writing into some other service's socket, with its own credentials attached when that
  // service asks for SO_PASSCRED.
  sockaddr_un peer{};
  len = sizeof peer;
  if (getpeername(fd, reinterpret_cast<sockaddr*>(&peer), &len) != 0) return EINVAL;
  if (len != sizeof(sa_family_t)) return EINVAL;
  return 0;
}

bool SendEventRecord(int fd, const void* record, size_t len) {
  if (fd < 0) return false;
  // MSG_DONTWAIT: non-blocking for this call only, whatever O_NONBLOCK says (the open
  // file description is shared with the client). MSG_NOSIGNAL: a client that shut its
  // end down gets EPIPE here, not a SIGPIPE for the daemon. SOCK_SEQPACKET: a record
  // goes whole or not at all.
  ssize_t n;
  do {
    n = send(fd, record, len, MSG_DONTWAIT | MSG_NOSIGNAL);
  } while (n < 0 && errno == EINTR);
  return n == static_cast<ssize_t>(len);
}

bool DrainEventfd(int fd) {
  uint64_t value;
  iovec iov{&value, sizeof value};
  ssize_t n;
  do {
    n = preadv2(fd, &iov, 1, -1, RWF_NOWAIT);
  } while (n < 0 && errno == EINTR);
  return n >= 0 || errno != EOPNOTSUPP;
}

}  // namespace vrdma::vdev
