#include "vdev/shm/daemon_budget.h"

#include <algorithm>
#include <cstdio>
#include <utility>

#include "absl/strings/str_cat.h"
#include "driver/device.h"

namespace vrdma::vdev {
namespace {

uint64_t ReadNumber(const char* path, uint64_t fallback) {
  unsigned long long v = 0;
  FILE* f = std::fopen(path, "re");
  if (!f) return fallback;
  bool ok = std::fscanf(f, "%llu", &v) == 1;
  std::fclose(f);
  return ok ? v : fallback;
}

uint64_t CountLines(const char* path) {
  FILE* f = std::fopen(path, "re");
  if (!f) return 0;
  uint64_t n = 0;
  for (int c; (c = std::fgetc(f)) != EOF;) n += c == '\n';
  std::fclose(f);
  return n;
}

}  // namespace

DaemonBudget::Limits DaemonBudget::FromSystem(uint64_t descriptors, uint64_t reserved_mappings) {
  const uint64_t max_maps = ReadNumber("/proc/sys/vm/max_map_count", 65530);
  const uint64_t in_use = CountLines("/proc/self/maps");
  Limits l;
  // Each MR also takes one of fault_guard's ranges, a constant of the process: where the
  // administrator raised vm.max_map_count past them, they bound the clients' mappings.
  const uint64_t kernel_left =
      max_maps > in_use + reserved_mappings ? max_maps - in_use - reserved_mappings : 0;
  l.total[static_cast<size_t>(DaemonResource::kMappings)] =
      std::min<uint64_t>(kernel_left, driver::fault_guard::kMaxRanges);
  l.total[static_cast<size_t>(DaemonResource::kDescriptors)] = descriptors;
  for (size_t i = 0; i < kDaemonResourceCount; ++i) l.per_user[i] = l.total[i] / 4;
  return l;
}

bool DaemonBudget::Take(uint32_t uid, DaemonResource r, uint64_t n, std::string* why) {
  const size_t i = static_cast<size_t>(r);
  auto& mine = per_user_[uid];
  if (uid != 0) {
    if (mine[i] + n > limits_.per_user[i]) {
      if (why) {
        *why = absl::StrCat("uid ", uid, " holds ", mine[i], " of its ", limits_.per_user[i],
                            " daemon ", kDaemonResourceNames[i]);
      }
      return false;
    }
    if (total_[i] + n > limits_.total[i]) {
      if (why) {
        *why = absl::StrCat("clients hold ", total_[i], " of the daemon's ", limits_.total[i], " ",
                            kDaemonResourceNames[i]);
      }
      return false;
    }
  }
  mine[i] += n;
  total_[i] += n;
  return true;
}

void DaemonBudget::Give(uint32_t uid, DaemonResource r, uint64_t n) {
  const size_t i = static_cast<size_t>(r);
  auto it = per_user_.find(uid);
  if (it == per_user_.end()) return;
  it->second[i] -= std::min(it->second[i], n);
  total_[i] -= std::min(total_[i], n);
  if (it->second == std::array<uint64_t, kDaemonResourceCount>{}) per_user_.erase(it);
}

uint64_t DaemonBudget::used(uint32_t uid, DaemonResource r) const {
  auto it = per_user_.find(uid);
  return it == per_user_.end() ? 0 : it->second[static_cast<size_t>(r)];
}

std::optional<DaemonCharge> DaemonCharge::Take(DaemonBudget* budget, uint32_t uid,
                                               uint64_t mappings, uint64_t descriptors,
                                               std::string* why) {
  DaemonCharge c;
  if (!budget) return c;
  if (!budget->Take(uid, DaemonResource::kMappings, mappings, why)) return std::nullopt;
  if (!budget->Take(uid, DaemonResource::kDescriptors, descriptors, why)) {
    budget->Give(uid, DaemonResource::kMappings, mappings);
    return std::nullopt;
  }
  c.budget_ = budget;
  c.uid_ = uid;
  c.mappings_ = mappings;
  c.descriptors_ = descriptors;
  return c;
}

DaemonCharge& DaemonCharge::operator=(DaemonCharge&& o) noexcept {
  if (this != &o) {
    Reset();
    budget_ = std::exchange(o.budget_, nullptr);
    uid_ = o.uid_;
    mappings_ = std::exchange(o.mappings_, 0);
    descriptors_ = std::exchange(o.descriptors_, 0);
  }
  return *this;
}

void DaemonCharge::Reset() {
  if (!budget_) return;
  budget_->Give(uid_, DaemonResource::kMappings, mappings_);
  budget_->Give(uid_, DaemonResource::kDescriptors, descriptors_);
  budget_ = nullptr;
  mappings_ = descriptors_ = 0;
}

}  // namespace vrdma::vdev
