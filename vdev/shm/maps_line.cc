#include "vdev/shm/maps_line.h"

namespace vrdma::vdev {

namespace {

int HexDigit(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

// A hex number of 1..max_digits digits at the front of `s`, consumed.
bool TakeHex(std::string_view& s, size_t max_digits, uint64_t* out) {
  size_t n = 0;
  uint64_t v = 0;
  while (n < s.size() && HexDigit(s[n]) >= 0) {
    if (n == max_digits) return false;
    v = v << 4 | static_cast<uint64_t>(HexDigit(s[n]));
    ++n;
  }
  if (n == 0) return false;
  s.remove_prefix(n);
  *out = v;
  return true;
}

// A decimal number that fits 64 bits at the front of `s`, consumed.
bool TakeDec(std::string_view& s, uint64_t* out) {
  size_t n = 0;
  uint64_t v = 0;
  while (n < s.size() && s[n] >= '0' && s[n] <= '9') {
    uint64_t d = static_cast<uint64_t>(s[n] - '0');
    if (v > (UINT64_MAX - d) / 10) return false;
    v = v * 10 + d;
    ++n;
  }
  if (n == 0) return false;
  s.remove_prefix(n);
  *out = v;
  return true;
}

bool Take(std::string_view& s, char c) {
  if (s.empty() || s.front() != c) return false;
  s.remove_prefix(1);
  return true;
}

}  // namespace

std::optional<MapsEntry> ParseMapsLine(std::string_view line) {
  if (!line.empty() && line.back() == '\n') line.remove_suffix(1);
  MapsEntry e;
  uint64_t major = 0, minor = 0;
  if (!TakeHex(line, 16, &e.start) || !Take(line, '-') || !TakeHex(line, 16, &e.end) ||
      !Take(line, ' ') || line.size() < 4) {
    return std::nullopt;
  }
  e.perms = line.substr(0, 4);
  line.remove_prefix(4);
  if ((e.perms[0] != 'r' && e.perms[0] != '-') || (e.perms[1] != 'w' && e.perms[1] != '-') ||
      (e.perms[2] != 'x' && e.perms[2] != '-') || (e.perms[3] != 'p' && e.perms[3] != 's')) {
    return std::nullopt;
  }
  if (!Take(line, ' ') || !TakeHex(line, 16, &e.offset) || !Take(line, ' ') ||
      !TakeHex(line, 8, &major) || !Take(line, ':') || !TakeHex(line, 8, &minor) ||
      !Take(line, ' ') || !TakeDec(line, &e.inode)) {
    return std::nullopt;
  }
  if (e.start >= e.end) return std::nullopt;
  e.dev_major = static_cast<uint32_t>(major);
  e.dev_minor = static_cast<uint32_t>(minor);
  if (line.empty()) return e;
  // The padding, then the path as written (it may hold or end in spaces).
  if (line.front() != ' ') return std::nullopt;
  size_t at = line.find_first_not_of(' ');
  e.path = at == std::string_view::npos ? std::string_view() : line.substr(at);
  return e;
}

std::optional<uint64_t> SmapsKernelPageSize(std::string_view smaps, uint64_t start) {
  bool in_vma = false;
  while (!smaps.empty()) {
    size_t nl = smaps.find('\n');
    std::string_view line = smaps.substr(0, nl);
    smaps.remove_prefix(nl == std::string_view::npos ? smaps.size() : nl + 1);
    // A mapping's header line parses as a maps line; its fields ("Name:   value kB") do not.
    if (std::optional<MapsEntry> e = ParseMapsLine(line)) {
      if (in_vma) return std::nullopt;  // the mapping ended without the field
      in_vma = e->start == start;
      continue;
    }
    constexpr std::string_view kField = "KernelPageSize:";
    if (!in_vma || line.substr(0, kField.size()) != kField) continue;
    std::string_view v = line.substr(kField.size());
    while (!v.empty() && v.front() == ' ') v.remove_prefix(1);
    uint64_t kb = 0;
    size_t digits = 0;
    while (digits < v.size() && v[digits] >= '0' && v[digits] <= '9' && digits < 12) {
      kb = kb * 10 + static_cast<uint64_t>(v[digits] - '0');
      ++digits;
    }
    if (digits == 0 || v.substr(digits) != " kB") return std::nullopt;
    return kb * 1024;
  }
  return std::nullopt;
}

}  // namespace vrdma::vdev
