#include "vdev/access.h"

#include <cerrno>

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
  uint32_t bits = peer.uid() == policy.owner  ? (policy.mode >> 6)
                  : peer.InGroup(policy.group) ? (policy.mode >> 3)
                                               : policy.mode;
  return (bits & kReadWrite) == kReadWrite ? 0 : EACCES;
}

}  // namespace vrdma::vdev
