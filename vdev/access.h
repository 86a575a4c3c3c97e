// Who may see and open a vdev (docs/security.md): the kernel's exclusive RDMA network
// namespace mode (`rdma system set netns exclusive`: a device is visible only in the
// network namespace of its netdev), then the vdev's owner, group and mode, as for
// /dev/infiniband/uverbsN (opening needs read and write permission).
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <string>

#include "absl/status/statusor.h"
#include "vdev/peer.h"

namespace vrdma::vdev {

enum class NetnsMode : uint8_t {
  kExclusive,  // a vdev is visible only from its netdev's network namespace (the default)
  kShared,     // every vdev is visible from every namespace (`vrdmad --netns-mode shared`)
};

struct AccessPolicy {
  uid_t owner = 0;
  gid_t group = 0;
  uint32_t mode = 0666;  // as the uverbs device nodes rdma-core's udev rules make
};

// Whether `peer` sees a device that lives in network namespace `netns` at all.
bool VisibleTo(const NamespaceId& netns, const Peer& peer, NetnsMode mode);
// 0 when `peer` may open a device of `netns` with `policy`; ENODEV when it cannot see it,
// EACCES when the owner/group/mode refuse it (root of the daemon's user namespace
// passes the mode, as with a device node, but not the namespace).
int OpenErrno(const NamespaceId& netns, const AccessPolicy& policy, const Peer& peer,
              NetnsMode mode);

// A user or group given by name or number, as the daemon's system knows them (vrdmactl dev
// set owner/group, vrdmad --admin-group). NotFound for a name it does not know.
absl::StatusOr<uid_t> ResolveUser(const std::string& name);
absl::StatusOr<gid_t> ResolveGroup(const std::string& name);

}  // namespace vrdma::vdev
