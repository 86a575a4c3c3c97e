// The vrdma devices the daemon offers (filtered by VRDMA_DEVICE), each with one
// reference held by the list that returned it.
#pragma once

#include <infiniband/verbs.h>

#include <vector>

namespace vrdma::provider {

std::vector<ibv_device*> DiscoverDevices();

}  // namespace vrdma::provider
