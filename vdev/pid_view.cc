#include "vdev/pid_view.h"

#include <fcntl.h>
#include <linux/nsfs.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

namespace vrdma::vdev {

namespace {

// The NSpid line of /proc/PID/status: the PID in the daemon's namespace first, then in
// each nested namespace down to the process's own. Empty when it cannot be read.
std::vector<pid_t> NsPids(const Peer& p) {
  absl::StatusOr<int> fd = p.OpenProcFile("status", O_RDONLY | O_CLOEXEC);
  if (!fd.ok()) return {};
  char buf[4096];
  ssize_t n = read(*fd, buf, sizeof buf - 1);
  close(*fd);
  if (n <= 0) return {};
  buf[n] = 0;
  const char* line = std::strstr(buf, "\nNSpid:");
  if (!line) return {};
  std::vector<pid_t> out;
  const char* s = line + 7;
  while (*s && *s != '\n') {
    char* end = nullptr;
    long v = std::strtol(s, &end, 10);
    if (end == s) break;
    out.push_back(static_cast<pid_t>(v));
    s = end;
  }
  return out;
}

bool SameFile(int a, int b) {
  struct stat sa, sb;
  return fstat(a, &sa) == 0 && fstat(b, &sb) == 0 && sa.st_dev == sb.st_dev &&
         sa.st_ino == sb.st_ino;
}

}  // namespace

std::optional<pid_t> PidSeenBy(const Peer& viewer, const Peer& owner) {
  std::vector<pid_t> owner_pids = NsPids(owner);
  if (owner_pids.empty()) return owner.pid();  // no process: as connected
  std::vector<pid_t> viewer_pids = NsPids(viewer);
  size_t depth = viewer_pids.empty() ? 0 : viewer_pids.size() - 1;
  if (depth == 0) return owner_pids[0];  // the daemon's namespace sees every process
  if (owner_pids.size() <= depth) return std::nullopt;
  // The owner's namespace at the viewer's depth must be the viewer's own namespace.
  absl::StatusOr<int> vns = viewer.OpenProcFile("ns/pid", O_RDONLY | O_CLOEXEC);
  if (!vns.ok()) return std::nullopt;
  absl::StatusOr<int> ns = owner.OpenProcFile("ns/pid", O_RDONLY | O_CLOEXEC);
  if (!ns.ok()) {
    close(*vns);
    return std::nullopt;
  }
  int cur = *ns;
  for (size_t up = owner_pids.size() - 1; up > depth && cur >= 0; --up) {
    int parent = ioctl(cur, NS_GET_PARENT);
    close(cur);
    cur = parent;
  }
  bool same = cur >= 0 && SameFile(cur, *vns);
  if (cur >= 0) close(cur);
  close(*vns);
  if (!same) return std::nullopt;
  return owner_pids[depth];
}

}  // namespace vrdma::vdev
