#include "vdev/device_poller.h"

namespace vrdma::vdev {

int DevicePoller::Poll(uint64_t now_ns) {
  int work = 0;
  for (auto& p : registry_->pdevs()) {
    work += p->device->Poll(now_ns);
    driver::AsyncEvent e;
    while (p->device->PollAsyncEvent(&e)) {
      for (auto& s : *sessions_) {
        if (s->vdev() && s->vdev()->pdev == p.get() && s->DeliverEvent(e)) break;
      }
    }
  }
  return work;
}

bool DevicePoller::HasPendingWork() const {
  for (auto& p : registry_->pdevs()) {
    if (p->device->HasPendingWork()) return true;
  }
  return false;
}

void DevicePoller::ArmWake(bool armed) {
  for (auto& p : registry_->pdevs()) p->port->ArmWake(armed);
}

void DevicePoller::WakeFds(std::vector<int>* out) const {
  for (auto& p : registry_->pdevs()) {
    if (p->port->HasExternalRx() && p->port->WakeFd() >= 0) out->push_back(p->port->WakeFd());
  }
}

bool DevicePoller::NeedsTick() const {
  // A port that receives from a wire but cannot wake the loop.
  for (auto& p : registry_->pdevs()) {
    if (p->port->HasExternalRx() && p->port->WakeFd() < 0) return true;
  }
  return false;
}

}  // namespace vrdma::vdev
