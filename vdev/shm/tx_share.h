// Zero-copy transmit from registered client memory: while frames on a port still point
// into an MR's pages (external mbuf buffers), the pages stay mapped in the daemon, and,
// for a port whose device reads frames by DMA, mapped for that device.
#pragma once

#include <rte_mbuf.h>

#include <memory>

#include "absl/status/statusor.h"
#include "driver/ports.h"
#include "vdev/shm/client_memory.h"

namespace vrdma::vdev {

// A pdev's port as zero-copy transmit sees it. The pdev clears `alive` before it tears
// its ports down: a mapping whose last frame is freed after that (by the closing port
// itself) is not unmapped from a port that is going away.
struct TxDmaDomain {
  driver::PacketPort* port = nullptr;
  bool alive = true;
};

class TxShare {
 public:
  // Takes `memory` and maps it for the domain's port. On an error (the device cannot
  // reach it) `memory` is left with the caller and frames from it are copied.
  static absl::StatusOr<TxShare*> Create(std::unique_ptr<ClientMemory>* memory,
                                         std::shared_ptr<TxDmaDomain> domain);
  // The count frames hold (rte_pktmbuf_attach_extbuf); the MR holds one.
  rte_mbuf_ext_shared_info* shinfo() { return &shinfo_; }
  // Drops the MR's reference (after the engine forgot the MR): the memory is unmapped
  // now, or when the port frees the last frame that points into it.
  void Release();

 private:
  TxShare(std::unique_ptr<ClientMemory> memory, std::shared_ptr<TxDmaDomain> domain);
  ~TxShare();
  static void Free(void* addr, void* opaque);

  rte_mbuf_ext_shared_info shinfo_{};
  std::unique_ptr<ClientMemory> memory_;
  std::shared_ptr<TxDmaDomain> domain_;
};

}  // namespace vrdma::vdev
