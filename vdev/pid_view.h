// A client's PID as another client's PID namespace numbers it, as RDMA netlink reports a
// resource's owner (the kernel's task_pid_vnr in rdma_is_visible_in_pid_ns and
// fill_res_name_pid): a process is visible from its own PID namespace and its ancestors,
// under the number it has there; from any other namespace it is not visible.
#pragma once

#include <sys/types.h>

#include <optional>

#include "vdev/peer.h"

namespace vrdma::vdev {

// `owner`'s PID in `viewer`'s PID namespace, or nullopt when `viewer` cannot see it.
// Read through each peer's own /proc directory (status's NSpid, ns/pid and NS_GET_PARENT),
// never by PID. A peer without a process (Peer::ForCredentials) is taken to live in the
// daemon's namespace.
std::optional<pid_t> PidSeenBy(const Peer& viewer, const Peer& owner);

}  // namespace vrdma::vdev
