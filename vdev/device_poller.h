// The poller of the pdevs: one engine pass of every pdev's device per loop pass, and
// the engine's async events (QP, CQ, SRQ, port) delivered to the context that owns the
// object, or to every context of the device for port events.
#pragma once

#include <memory>
#include <vector>

#include "vdev/plugins.h"
#include "vdev/registry.h"
#include "vdev/session.h"

namespace vrdma::vdev {

class DevicePoller : public Poller {
 public:
  DevicePoller(Registry* registry, const std::vector<std::unique_ptr<Session>>* sessions)
      : registry_(registry), sessions_(sessions) {}

  int Poll(uint64_t now_ns) override;
  bool HasPendingWork() const override;
  void ArmWake(bool armed) override;
  void WakeFds(std::vector<int>* out) const override;
  bool NeedsTick() const override;

 private:
  Registry* registry_;
  const std::vector<std::unique_ptr<Session>>* sessions_;
};

}  // namespace vrdma::vdev
