// What vrdmad's one process shares among all its clients: memory mappings (the kernel's
// vm.max_map_count, and fault_guard's ranges for registered memory) and open descriptors
// (RLIMIT_NOFILE). Each object a client makes that keeps one of them in the daemon (an MR's
// mappings, a ring chunk's memfd and mapping, a ring of its own, device memory, a CQ's
// completion channel) takes it from the share of the client's user (its connect-time
// credentials): no user past `per_user`, all users together not past `total`, so one
// tenant cannot make the daemon's mmap or accept fail for the others, nor make an
// allocation of the daemon's own fail. Root (the administrator) is counted, never refused,
// as with connections (Server::AdmissionErrno).
#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <unordered_map>

namespace vrdma::vdev {

enum class DaemonResource : uint8_t { kMappings, kDescriptors, kCount };
inline constexpr size_t kDaemonResourceCount = static_cast<size_t>(DaemonResource::kCount);
inline constexpr std::array<const char*, kDaemonResourceCount> kDaemonResourceNames = {
    "mappings", "descriptors"};

class DaemonBudget {
 public:
  struct Limits {
    std::array<uint64_t, kDaemonResourceCount> total{UINT64_MAX, UINT64_MAX};
    std::array<uint64_t, kDaemonResourceCount> per_user{UINT64_MAX, UINT64_MAX};
  };
  // What a daemon may hand its clients here: the mappings vm.max_map_count leaves beside
  // the ones this process has now and `reserved_mappings` more for its own growth (at
  // most fault_guard's ranges, one per MR), and
  // `descriptors` (what the caller has left after its own and the connections'); a
  // user gets a quarter of each.
  static Limits FromSystem(uint64_t descriptors, uint64_t reserved_mappings = 8192);

  DaemonBudget() = default;  // unlimited until SetLimits (tools and tests without a daemon)
  void SetLimits(const Limits& limits) { limits_ = limits; }
  const Limits& limits() const { return limits_; }

  // Takes `n` of `r` for `uid`; false (nothing taken, `why` says which limit) when that
  // would pass the user's share or the total.
  bool Take(uint32_t uid, DaemonResource r, uint64_t n, std::string* why = nullptr);
  void Give(uint32_t uid, DaemonResource r, uint64_t n);

  uint64_t used(uint32_t uid, DaemonResource r) const;
  uint64_t used_total(DaemonResource r) const { return total_[static_cast<size_t>(r)]; }

 private:
  Limits limits_;
  std::array<uint64_t, kDaemonResourceCount> total_{};
  std::unordered_map<uint32_t, std::array<uint64_t, kDaemonResourceCount>> per_user_;
};

// What one object holds of a DaemonBudget, given back when it goes. Empty (holds nothing)
// by default; movable, not copyable.
class DaemonCharge {
 public:
  DaemonCharge() = default;
  // `mappings` and `descriptors` for `uid`, or nothing (`why` says why) when the budget
  // has not that much left for it.
  static std::optional<DaemonCharge> Take(DaemonBudget* budget, uint32_t uid, uint64_t mappings,
                                          uint64_t descriptors, std::string* why = nullptr);
  ~DaemonCharge() { Reset(); }
  DaemonCharge(DaemonCharge&& o) noexcept { *this = std::move(o); }
  DaemonCharge& operator=(DaemonCharge&& o) noexcept;
  DaemonCharge(const DaemonCharge&) = delete;
  DaemonCharge& operator=(const DaemonCharge&) = delete;

  void Reset();

 private:
  DaemonBudget* budget_ = nullptr;
  uint32_t uid_ = 0;
  uint64_t mappings_ = 0;
  uint64_t descriptors_ = 0;
};

}  // namespace vrdma::vdev
