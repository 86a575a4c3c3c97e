// An address handle as the engine keeps it: the address vector the consumer gave, and
// what the engine derives from it once per change of the GID table instead of per
// datagram: the headers its datagrams carry, and where they arrive when this device
// holds their destination GID.
#pragma once

#include <cstdint>

#include "driver/res/recv_info.h"
#include "driver/res/work_request.h"
#include "driver/wire/headers.h"

namespace vrdma::driver {

struct AddressHandle {
  AddressVector av;
  // Made at RoceDevice::path_epoch_ `epoch` (0: not yet).
  uint64_t epoch = 0;
  bool path_ok = false;   // the source GID exists: `path` holds the headers
  wire::RocePacket path;  // Ethernet, network and UDP headers; BTH and DETH set per datagram
  bool local = false;     // the destination GID is one of this device's: `dest` says where
  RecvInfo dest;
};

}  // namespace vrdma::driver
