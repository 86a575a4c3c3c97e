// Memory a client already shares (System V shm, MAP_SHARED anonymous, a sealed memfd of
// its own), reached by the daemon itself: the kernel's view of the client's address
// space decides, never the client's word.
#pragma once

#include <sys/types.h>

#include <cstdint>

#include "absl/status/statusor.h"
#include "vdev/peer.h"

namespace vrdma::vdev {

struct ClientMapping {
  int fd = -1;               // owned by the caller
  uint64_t file_offset = 0;  // of `addr` in the object
  bool writable = false;     // the client's mapping is writable
  bool fixed_size = false;   // an object no one can shrink (System V shm, shared anonymous)
};

// Opens the object behind [addr, addr+length) of process `peer` (through its own /proc
// directory: NotFound once it has exited, whatever now holds its PID): the range must lie in
// one shared mapping of /proc/PID/maps whose object cannot be shrunk under the daemon
// (System V shm, MAP_SHARED|MAP_ANONYMOUS, or a memfd — sealed against shrinking, which
// ClientMemory checks). FailedPrecondition (EOPNOTSUPP) for other memory, NotFound when
// the range is not mapped as one shared mapping.
absl::StatusOr<ClientMapping> OpenClientMapping(const Peer& peer, uint64_t addr, uint64_t length);

// Whether the client's mapping is looked up with PROCMAP_QUERY (vdev/protocol/
// procmap_query.h; the default, until the kernel says it has no such ioctl) or read from
// its maps file; a test sets false to run the maps file's way, as on kernels before 6.11.
void UseProcmapQueryForClientMaps(bool use);

}  // namespace vrdma::vdev
