// The vrdma devices the daemon offers (filtered by VRDMA_DEVICE), each with one
// reference held by the list that returned it.
#pragma once

#include <infiniband/verbs.h>

#include <string>
#include <vector>

#include "vdev/protocol/protocol.h"

namespace vrdma::provider {

std::vector<ibv_device*> DiscoverDevices();

// The devices the daemons on proto::SocketPaths() list this process, filtered by
// VRDMA_DEVICE; a name a second daemon lists too is the first one's.
struct DeviceListing {
  proto::DeviceRecord record;
  std::string socket_path;
};
std::vector<DeviceListing> ListDevices();

}  // namespace vrdma::provider
