#include "vdev/access.h"

#include <grp.h>
#include <pwd.h>

#include <cerrno>
#include <vector>

#include "absl/strings/numbers.h"

namespace vrdma::vdev {

bool VisibleTo(const NamespaceId& netns, const Peer& peer, NetnsMode mode) {
  if (mode == NetnsMode::kShared) return true;
  // A namespace the kernel did not name (no SO_NETNS_COOKIE before Linux 5.14) is not
  // "the same".
  return netns.known() && peer.netns().known() && peer.netns() == netns;
}

int OpenErrno(const NamespaceId& netns, const AccessPolicy& policy, const Peer& peer,
              NetnsMode mode) {
  if (!VisibleTo(netns, peer, mode)) return ENODEV;
  if (peer.uid() == 0) return 0;
  constexpr uint32_t kReadWrite = 06;
  uint32_t bits = peer.uid() == policy.owner   ? (policy.mode >> 6)
                  : peer.InGroup(policy.group) ? (policy.mode >> 3)
                                               : policy.mode;
  return (bits & kReadWrite) == kReadWrite ? 0 : EACCES;
}

absl::StatusOr<uid_t> ResolveUser(const std::string& name) {
  uint32_t n = 0;
  if (absl::SimpleAtoi(name, &n)) return static_cast<uid_t>(n);
  passwd pw;
  passwd* found = nullptr;
  std::vector<char> buf(16384);
  if (getpwnam_r(name.c_str(), &pw, buf.data(), buf.size(), &found) != 0 || !found) {
    return absl::NotFoundError("no such user");
  }
  return found->pw_uid;
}

absl::StatusOr<gid_t> ResolveGroup(const std::string& name) {
  uint32_t n = 0;
  if (absl::SimpleAtoi(name, &n)) return static_cast<gid_t>(n);
  group gr;
  group* found = nullptr;
  std::vector<char> buf(16384);
  if (getgrnam_r(name.c_str(), &gr, buf.data(), buf.size(), &found) != 0 || !found) {
    return absl::NotFoundError("no such group");
  }
  return found->gr_gid;
}

}  // namespace vrdma::vdev
