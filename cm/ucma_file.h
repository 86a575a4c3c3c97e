// One RDMA-CM file: what the kernel's ucma keeps per open of /dev/infiniband/rdma_cm
// (struct ucma_file), here one client connection (protocol.h, "the connection manager").
// It owns its IDs and their queued events, and keeps the client's channel readable
// exactly while events wait: one byte sent on the channel when the queue becomes
// non-empty, one taken by the client when a reply says the queue went empty.
#pragma once

#include <rdma/rdma_user_cm.h>

#include <cstddef>
#include <cstdint>
#include <deque>
#include <map>
#include <memory>

#include "cm/cm_id.h"

namespace vrdma::vdev {
class Session;
}

namespace vrdma::cm {

struct QueuedEvent {
  uint32_t handle = 0;  // the ID it is for (its events are dropped when it is destroyed)
  rdma_ucm_event_resp resp{};
  uint32_t multicast = 0;  // a join's event: the join's handle (dropped when it is left)
};

class UcmaFile {
 public:
  // Events a file may hold before further ones are refused (the CM then rejects or
  // drops what would have made them, as ucma does when it cannot allocate).
  static constexpr size_t kMaxQueuedEvents = 4096;
  static constexpr size_t kMaxIds = 65536;

  UcmaFile(vdev::Session* session, int channel_fd, uint64_t token);
  ~UcmaFile();
  UcmaFile(const UcmaFile&) = delete;
  UcmaFile& operator=(const UcmaFile&) = delete;

  vdev::Session* session() const { return session_; }
  uint64_t token() const { return token_; }

  // IDs, by handle.
  // A new ID numbered `handle` (handles are the daemon's, unique across files, as the
  // kernel's: librdmacm keeps an ID's number when it migrates). Null beyond kMaxIds.
  CmId* NewId(uint32_t handle);
  CmId* Find(uint32_t handle);
  // Takes an ID out of the file (destroy, migrate): returns it, drops its queued events
  // (into *dropped when given), says how many of its events were reported, and sets
  // *drained when dropping them emptied the queue.
  std::unique_ptr<CmId> Take(uint32_t handle, uint32_t* reported, bool* drained,
                             std::deque<QueuedEvent>* dropped = nullptr);
  // Adopts an ID (migrate), keeping its handle.
  CmId* Adopt(std::unique_ptr<CmId> id);
  const std::map<uint32_t, std::unique_ptr<CmId>>& ids() const { return ids_; }

  // Queues an event, counted against ID `owner` (a CONNECT_REQUEST counts against its
  // listener, as in ucma) and, for a multicast join's, against the join too (its
  // CmMulticast::reported). False (nothing queued) when the queue is full.
  bool Enqueue(uint32_t owner, const rdma_ucm_event_resp& resp, uint32_t multicast = 0);
  // A join was left: its queued events go (ucma_cleanup_mc_events). True when that
  // emptied the queue.
  bool DropMulticastEvents(uint32_t multicast);
  // The next event: false when there is none. *drained when it was the last.
  bool Dequeue(rdma_ucm_event_resp* out, bool* drained);
  size_t queued() const { return events_.size(); }

  // Multicast joins held by the file's IDs (RdmaCm counts them in and out).
  size_t joins() const { return joins_; }
  void CountJoins(ptrdiff_t n) { joins_ += n; }

 private:
  void SignalChannel();

  vdev::Session* session_;
  int channel_fd_;
  uint64_t token_;
  std::map<uint32_t, std::unique_ptr<CmId>> ids_;
  std::deque<QueuedEvent> events_;
  std::map<uint32_t, uint32_t> reported_;
  size_t joins_ = 0;
};

}  // namespace vrdma::cm
