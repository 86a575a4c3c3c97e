#include "cm/ucma_file.h"

#include <unistd.h>

#include "vdev/client_fd.h"

namespace vrdma::cm {

UcmaFile::UcmaFile(vdev::Session* session, int channel_fd, uint64_t token)
    : session_(session), channel_fd_(channel_fd), token_(token) {}

UcmaFile::~UcmaFile() {
  if (channel_fd_ >= 0) close(channel_fd_);
}

CmId* UcmaFile::NewId(uint32_t handle) {
  if (ids_.size() >= kMaxIds || ids_.count(handle)) return nullptr;
  auto id = std::make_unique<CmId>();
  id->handle = handle;
  id->file = this;
  CmId* raw = id.get();
  ids_[raw->handle] = std::move(id);
  reported_[raw->handle] = 0;
  return raw;
}

CmId* UcmaFile::Find(uint32_t handle) {
  auto it = ids_.find(handle);
  return it == ids_.end() ? nullptr : it->second.get();
}

std::unique_ptr<CmId> UcmaFile::Take(uint32_t handle, uint32_t* reported, bool* drained,
                                     std::deque<QueuedEvent>* dropped) {
  *drained = false;
  *reported = 0;
  auto it = ids_.find(handle);
  if (it == ids_.end()) return nullptr;
  std::unique_ptr<CmId> id = std::move(it->second);
  ids_.erase(it);
  *reported = reported_[handle];
  reported_.erase(handle);
  bool had = !events_.empty();
  std::deque<QueuedEvent> kept;
  for (QueuedEvent& e : events_) {
    if (e.handle != handle) {
      kept.push_back(e);
    } else if (dropped) {
      dropped->push_back(e);
    }
  }
  events_.swap(kept);
  *drained = had && events_.empty();
  id->file = nullptr;
  return id;
}

CmId* UcmaFile::Adopt(std::unique_ptr<CmId> id) {
  id->file = this;
  CmId* raw = id.get();
  reported_[raw->handle] = 0;
  ids_[raw->handle] = std::move(id);
  return raw;
}

bool UcmaFile::Enqueue(uint32_t owner, const rdma_ucm_event_resp& resp, uint32_t multicast) {
  if (events_.size() >= kMaxQueuedEvents) return false;
  bool was_empty = events_.empty();
  events_.push_back(QueuedEvent{owner, resp, multicast});
  if (was_empty) SignalChannel();
  return true;
}

bool UcmaFile::DropMulticastEvents(uint32_t multicast) {
  if (events_.empty()) return false;
  std::erase_if(events_, [&](const QueuedEvent& e) { return e.multicast == multicast; });
  return events_.empty();
}

bool UcmaFile::Dequeue(rdma_ucm_event_resp* out, bool* drained) {
  *drained = false;
  if (events_.empty()) return false;
  const QueuedEvent& e = events_.front();
  *out = e.resp;
  if (auto it = reported_.find(e.handle); it != reported_.end()) ++it->second;
  if (e.multicast) {
    if (CmId* id = Find(e.handle)) {
      for (CmMulticast& m : id->multicasts) {
        if (m.handle == e.multicast) ++m.reported;
      }
    }
  }
  events_.pop_front();
  *drained = events_.empty();
  return true;
}

void UcmaFile::SignalChannel() {
  // One byte says "events wait"; a client that stops reading its channel only loses
  // its own wake-up (the send never blocks: vdev/client_fd.h).
  static constexpr uint8_t kToken = 1;
  vdev::SendEventRecord(channel_fd_, &kToken, 1);
}

}  // namespace vrdma::cm
