// The pages behind one memory registration (ibv_reg_mr), opened but not yet mapped: for
// each segment, the object that backs it — the memfd the client passed, or the client's
// own shared mapping, found through /proc (client_mapping.h). The kernel's view of the
// client decides, never the client's word.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <memory>
#include <span>
#include <vector>

#include "absl/status/statusor.h"
#include "vdev/protocol/protocol.h"
#include "vdev/peer.h"
#include "vdev/shm/client_memory.h"

namespace vrdma::vdev {

class RegistrationBacking {
 public:
  // Opens what backs each of `segs`, tiling [page_base, page_base + page_length) of
  // process `peer`. `passed_fds` are the descriptors the client sent, one per segment that
  // is not by reference, in order; they are owned from here on. Errors:
  // OutOfRange (a segment outside the range, the wrong number of descriptors: EINVAL),
  // FailedPrecondition (memory that cannot be shared: EOPNOTSUPP), others from
  // OpenClientMapping (not mapped as one shared mapping: EFAULT).
  static absl::StatusOr<RegistrationBacking> Open(const Peer& peer, uint64_t page_base,
                                                  uint64_t page_length,
                                                  std::span<const proto::MrSegment> segs,
                                                  std::vector<int> passed_fds);
  RegistrationBacking(RegistrationBacking&& other) noexcept;
  RegistrationBacking& operator=(RegistrationBacking&&) = delete;
  RegistrationBacking(const RegistrationBacking&) = delete;
  ~RegistrationBacking();  // closes what was not mapped

  // Some page the client may not write (write access needs pages the client may write,
  // as pinning a read-only mapping for write fails on a NIC).
  bool read_only() const;
  // Maps the segments side by side (ClientMemory::Map); the descriptors are closed
  // either way (the mappings keep the pages).
  absl::StatusOr<std::unique_ptr<ClientMemory>> Map(uint64_t page_length,
                                                    std::span<const proto::MrSegment> segs);

 private:
  RegistrationBacking() = default;
  void Close();
  std::vector<SegmentBacking> backing_;
};

}  // namespace vrdma::vdev
