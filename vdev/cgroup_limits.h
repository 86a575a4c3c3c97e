// Limits per cgroup of the client, as the kernel's rdma cgroup controller gives them
// (Documentation/admin-guide/cgroup-v2.rst, "RDMA"): per cgroup and per device, at most
// `hca_handle` open contexts and `hca_object` verbs objects (PD, CQ, QP, SRQ, MR, AH),
// charged to the cgroup the process is in and to each of its ancestors, refused (EAGAIN,
// what rdmacg_try_charge returns and ib_uverbs passes on) when any level would go past
// its limit.
//
// The kernel's own rdma.max only takes the names of devices the kernel registered with
// the rdma controller (rdmacg_resource_set_max answers ENODEV otherwise), and kernels
// without RDMA have no rdma controller at all, so vrdmad keeps the table itself: the
// administrator writes it with `vrdmactl cgroup set PATH dev NAME hca_handle N hca_object
// M`, one line of rdma.max per cgroup and vdev (docs/vrdmad.md).
#pragma once

#include <array>
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace vrdma::vdev {

enum class CgroupResource : uint8_t { kHcaHandle, kHcaObject, kCount };
inline constexpr size_t kCgroupResourceCount = static_cast<size_t>(CgroupResource::kCount);
inline constexpr std::array<const char*, kCgroupResourceCount> kCgroupResourceNames = {
    "hca_handle", "hca_object"};
// "max": no limit.
inline constexpr uint64_t kCgroupNoLimit = UINT64_MAX;

using CgroupCounts = std::array<uint64_t, kCgroupResourceCount>;

// The cgroup path of a process from the text of its /proc/PID/cgroup: the path of the
// hierarchy that holds the rdma controller when one does (cgroup v1, "N:rdma:/path"),
// else of the unified hierarchy ("0::/path"). Nullopt when the text has neither.
std::optional<std::string> ParseProcCgroup(std::string_view text);

// A cgroup path as the table keys it: absolute, no empty, "." or ".." component, no
// trailing '/'. InvalidArgument otherwise, and for "/" (the kernel has no rdma.max at the
// root: CFTYPE_NOT_ON_ROOT).
absl::StatusOr<std::string> NormalizeCgroupPath(std::string_view path);

// "N" or "max" (kCgroupNoLimit), as rdma.max spells a value.
absl::StatusOr<uint64_t> ParseCgroupLimit(std::string_view text);
std::string CgroupLimitText(uint64_t value);

class CgroupLimits {
 public:
  struct Refusal {
    std::string cgroup;  // the level whose limit refused
    uint64_t limit = 0;
    uint64_t usage = 0;  // hierarchical usage at that level before the refused charge
  };

  // Sets the limits of `path` on device `dev` (kCgroupNoLimit for "max"); a cgroup whose
  // limits on a device are all max has no entry, as the kernel frees such a pool.
  void Set(const std::string& path, const std::string& dev, const CgroupCounts& max);
  // Removes the limits of `path` on `dev`, or on every device when `dev` is empty.
  // False when there were none.
  bool Del(const std::string& path, const std::string& dev);
  // The limits set on `path` for `dev` (all kCgroupNoLimit when none).
  CgroupCounts Max(const std::string& path, const std::string& dev) const;
  // What `path` and its descendants use on `dev` (rdma.current).
  CgroupCounts Usage(const std::string& path, const std::string& dev) const;

  // Charges `n` of `r` on `dev` to cgroup `path` and every ancestor; nothing is charged
  // and the refusing level is returned when one would go past its limit.
  std::optional<Refusal> TryCharge(const std::string& path, const std::string& dev,
                                   CgroupResource r, uint64_t n = 1);
  void Uncharge(const std::string& path, const std::string& dev, CgroupResource r, uint64_t n = 1);

  // Every (path, dev) with limits, in order.
  const std::map<std::pair<std::string, std::string>, CgroupCounts>& limits() const { return max_; }
  bool empty() const { return max_.empty(); }

 private:
  // `path` and its ancestors, the path itself first, "/" last.
  static std::vector<std::string> Levels(const std::string& path);

  std::map<std::pair<std::string, std::string>, CgroupCounts> max_;
  std::map<std::pair<std::string, std::string>, CgroupCounts> usage_;  // hierarchical
};

}  // namespace vrdma::vdev
