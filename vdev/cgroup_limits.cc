#include "vdev/cgroup_limits.h"

#include <algorithm>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"

namespace vrdma::vdev {

namespace {
// This absl's string_view is its own type.
absl::string_view A(std::string_view s) { return absl::string_view(s.data(), s.size()); }
std::string_view S(absl::string_view s) { return std::string_view(s.data(), s.size()); }
}  // namespace

std::optional<std::string> ParseProcCgroup(std::string_view text) {
  std::optional<std::string> unified;
  for (absl::string_view l : absl::StrSplit(A(text), '\n')) {
    std::string_view line = S(l);
    // hierarchy-ID:controller-list:cgroup-path; the path may itself hold ':'.
    size_t a = line.find(':');
    if (a == std::string_view::npos) continue;
    size_t b = line.find(':', a + 1);
    if (b == std::string_view::npos) continue;
    std::string_view id = line.substr(0, a);
    std::string_view controllers = line.substr(a + 1, b - a - 1);
    std::string_view path = line.substr(b + 1);
    if (path.empty() || path[0] != '/') continue;
    if (id == "0" && controllers.empty()) {
      unified = std::string(path);
      continue;
    }
    for (absl::string_view c : absl::StrSplit(A(controllers), ',')) {
      if (S(c) == "rdma") return std::string(path);
    }
  }
  return unified;
}

absl::StatusOr<std::string> NormalizeCgroupPath(std::string_view path) {
  if (path.empty() || path[0] != '/') {
    return absl::InvalidArgumentError(
        absl::StrCat("cgroup path '", A(path), "' is not absolute (as in /proc/PID/cgroup)"));
  }
  std::string out;
  for (absl::string_view p : absl::StrSplit(A(path.substr(1)), '/')) {
    std::string_view part = S(p);
    if (part.empty()) continue;  // "//" and a trailing '/'
    if (part == "." || part == "..") {
      return absl::InvalidArgumentError(
          absl::StrCat("cgroup path '", A(path), "' has a '.' or '..' component"));
    }
    if (std::any_of(part.begin(), part.end(),
                    [](char c) { return static_cast<unsigned char>(c) < ' ' || c == 127; })) {
      return absl::InvalidArgumentError("cgroup path has a control character");
    }
    absl::StrAppend(&out, "/", A(part));
  }
  if (out.empty()) {
    return absl::InvalidArgumentError(
        "the root cgroup has no rdma limits (as the kernel's rdma.max, not on the root)");
  }
  return out;
}

absl::StatusOr<uint64_t> ParseCgroupLimit(std::string_view text) {
  if (text == "max") return kCgroupNoLimit;
  uint64_t n = 0;
  if (text.empty() || text[0] == '-' || text[0] == '+' || !absl::SimpleAtoi(A(text), &n) ||
      n == kCgroupNoLimit) {
    return absl::InvalidArgumentError(
        absl::StrCat("bad limit '", A(text), "': a whole number or 'max'"));
  }
  return n;
}

std::string CgroupLimitText(uint64_t value) {
  return value == kCgroupNoLimit ? "max" : absl::StrCat(value);
}

std::vector<std::string> CgroupLimits::Levels(const std::string& path) {
  std::vector<std::string> out;
  std::string p = path.empty() ? "/" : path;
  while (true) {
    out.push_back(p);
    if (p == "/") break;
    size_t slash = p.rfind('/');
    p = slash == 0 || slash == std::string::npos ? "/" : p.substr(0, slash);
  }
  return out;
}

void CgroupLimits::Set(const std::string& path, const std::string& dev, const CgroupCounts& max) {
  bool all_max =
      std::all_of(max.begin(), max.end(), [](uint64_t v) { return v == kCgroupNoLimit; });
  if (all_max) {
    max_.erase({path, dev});
  } else {
    max_[{path, dev}] = max;
  }
}

bool CgroupLimits::Del(const std::string& path, const std::string& dev) {
  if (!dev.empty()) return max_.erase({path, dev}) > 0;
  bool any = false;
  for (auto it = max_.begin(); it != max_.end();) {
    if (it->first.first == path) {
      it = max_.erase(it);
      any = true;
    } else {
      ++it;
    }
  }
  return any;
}

CgroupCounts CgroupLimits::Max(const std::string& path, const std::string& dev) const {
  auto it = max_.find({path, dev});
  if (it != max_.end()) return it->second;
  CgroupCounts none;
  none.fill(kCgroupNoLimit);
  return none;
}

CgroupCounts CgroupLimits::Usage(const std::string& path, const std::string& dev) const {
  auto it = usage_.find({path, dev});
  return it == usage_.end() ? CgroupCounts{} : it->second;
}

std::optional<CgroupLimits::Refusal> CgroupLimits::TryCharge(const std::string& path,
                                                             const std::string& dev,
                                                             CgroupResource r, uint64_t n) {
  const size_t i = static_cast<size_t>(r);
  const std::vector<std::string> levels = Levels(path);
  for (const std::string& level : levels) {
    uint64_t max = Max(level, dev)[i];
    uint64_t used = Usage(level, dev)[i];
    if (used + n < used || used + n > max) return Refusal{level, max, used};
  }
  for (const std::string& level : levels) usage_[{level, dev}][i] += n;
  return std::nullopt;
}

void CgroupLimits::Uncharge(const std::string& path, const std::string& dev, CgroupResource r,
                            uint64_t n) {
  const size_t i = static_cast<size_t>(r);
  for (const std::string& level : Levels(path)) {
    auto it = usage_.find({level, dev});
    if (it == usage_.end()) continue;
    uint64_t& u = it->second[i];
    u = u >= n ? u - n : 0;
    if (std::all_of(it->second.begin(), it->second.end(), [](uint64_t v) { return v == 0; })) {
      usage_.erase(it);
    }
  }
}

}  // namespace vrdma::vdev
