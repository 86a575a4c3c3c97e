#include "vfio/xsk_wake.h"

#include <dirent.h>
#include <fcntl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <iterator>

#include "absl/strings/str_cat.h"

namespace vrdma::vfio {

std::vector<int> AfXdpSockets() {
  std::vector<int> out;
  DIR* dir = opendir("/proc/self/fd");
  if (!dir) return out;
  const int own = dirfd(dir);
  while (dirent* e = readdir(dir)) {
    char* end = nullptr;
    long fd = strtol(e->d_name, &end, 10);
    if (end == e->d_name || *end != '\0' || fd == own) continue;
    int domain = 0;
    socklen_t len = sizeof domain;
    if (getsockopt(static_cast<int>(fd), SOL_SOCKET, SO_DOMAIN, &domain, &len) == 0 &&
        domain == AF_XDP) {
      out.push_back(static_cast<int>(fd));
    }
  }
  closedir(dir);
  std::sort(out.begin(), out.end());
  return out;
}

absl::StatusOr<std::unique_ptr<XskWake>> XskWake::Adopt(const std::vector<int>& before) {
  std::vector<int> now = AfXdpSockets();
  std::vector<int> made;
  std::set_difference(now.begin(), now.end(), before.begin(), before.end(),
                      std::back_inserter(made));
  if (made.empty()) return absl::NotFoundError("the port's queue setup made no AF_XDP socket");
  if (made.size() > 1) {
    return absl::FailedPreconditionError(
        absl::StrCat("the port's queue setup made ", made.size(), " AF_XDP sockets, not one"));
  }
  int fd = fcntl(made[0], F_DUPFD_CLOEXEC, 0);
  if (fd < 0) return absl::ErrnoToStatus(errno, "dup of the port's AF_XDP socket");
  return std::unique_ptr<XskWake>(new XskWake(fd));
}

XskWake::~XskWake() { close(fd_); }

}  // namespace vrdma::vfio
