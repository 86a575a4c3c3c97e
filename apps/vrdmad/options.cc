#include "apps/vrdmad/options.h"

#include <fstream>
#include <initializer_list>
#include <sstream>
#include <string_view>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"

namespace vrdma::vrdmad {
namespace {

constexpr int kMaxConfigDepth = 4;

absl::Status Expand(const std::vector<std::string>& in, int depth,
                    absl::StatusOr<std::string> (*read_file)(const std::string&),
                    std::vector<std::string>* out) {
  for (size_t i = 0; i < in.size(); ++i) {
    if (in[i] != "--config") {
      out->push_back(in[i]);
      continue;
    }
    if (i + 1 >= in.size()) return absl::InvalidArgumentError("--config needs a file");
    if (depth >= kMaxConfigDepth) {
      return absl::InvalidArgumentError(absl::StrCat("--config ", in[i + 1], ": nested too deep"));
    }
    absl::StatusOr<std::string> text = read_file(in[++i]);
    if (!text.ok()) return text.status();
    std::vector<std::string> words;
    std::istringstream lines(*text);
    std::string line;
    while (std::getline(lines, line)) {
      line = line.substr(0, line.find('#'));
      std::istringstream ws(line);
      std::string w;
      while (ws >> w) words.push_back(w);
    }
    if (absl::Status st = Expand(words, depth + 1, read_file, out); !st.ok()) return st;
  }
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<std::string> ReadConfigFile(const std::string& path) {
  std::ifstream f(path);
  if (!f) return absl::NotFoundError(absl::StrCat("cannot read config file ", path));
  std::stringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

namespace {

// Whether `eal` has one of `options`, as getopt reads them: a long option alone or with
// `=value`; a short one alone or with its value attached ("-m512").
bool HasOption(const std::vector<std::string>& eal,
               std::initializer_list<std::string_view> options) {
  for (const std::string& a : eal) {
    for (std::string_view o : options) {
      if (a == o) return true;
      bool is_long = o.size() > 2 && o[1] == '-';
      if (is_long && a.size() > o.size() && a.starts_with(o) && a[o.size()] == '=') return true;
      if (!is_long && a.size() > 2 && a[1] != '-' && a.starts_with(o)) return true;
    }
  }
  return false;
}

}  // namespace

absl::StatusOr<std::vector<std::string>> CompleteEalArgs(const std::vector<std::string>& user,
                                                         const std::vector<vfio::PortSpec>& pdevs) {
  std::vector<std::string> eal = user;
  std::vector<std::string> pci;
  std::string first_pci_pdev;
  for (const auto& p : pdevs) {
    if (p.type != vfio::PortType::kPci) continue;
    if (pci.empty()) first_pci_pdev = p.pdev;
    pci.push_back(p.pci);
  }
  const bool pci_by_hand = HasOption(user, {"-a", "--allow", "-b", "--block"});
  if (!pci.empty() && HasOption(user, {"--no-pci"})) {
    return absl::InvalidArgumentError(absl::StrCat(
        "--no-pci, but pdev ", first_pci_pdev, " is a PCI NIC (pci=", pci[0], "): drop --no-pci"));
  }
  bool no_huge = HasOption(user, {"--no-huge"});
  if (!no_huge && !pci_by_hand &&
      !HasOption(user, {"--huge-dir", "--socket-mem", "--socket-limit", "--huge-unlink",
                        "--single-file-segments", "--legacy-mem", "--match-allocations"})) {
    eal.push_back("--no-huge");
    no_huge = true;
  }
  if (no_huge && !HasOption(user, {"-m", "--socket-mem"})) {
    eal.push_back("-m");
    eal.push_back("512");
  }
  if (pci.empty() && !pci_by_hand && !HasOption(user, {"--no-pci"})) eal.push_back("--no-pci");
  if (!pci.empty() && !pci_by_hand) {
    for (const std::string& bdf : pci) {
      eal.push_back("-a");
      eal.push_back(bdf);
    }
  }
  if (!HasOption(user, {"--file-prefix", "--proc-type"})) eal.push_back("--no-shconf");
  if (!HasOption(user, {"--telemetry", "--no-telemetry"})) eal.push_back("--no-telemetry");
  if (!HasOption(user, {"-l", "-c", "--lcores"})) {
    eal.push_back("-l");
    eal.push_back("0");
  }
  if (!HasOption(user, {"--log-level"})) eal.push_back("--log-level=lib.eal:error");
  return eal;
}

std::vector<std::string> DefaultEalArgs(const std::vector<vfio::PortSpec>& pdevs) {
  // Without user arguments there is nothing to refuse.
  return *CompleteEalArgs({}, pdevs);
}

absl::StatusOr<VrdmadOptions> ParseVrdmadOptions(
    const std::vector<std::string>& raw,
    absl::StatusOr<std::string> (*read_file)(const std::string& path)) {
  std::vector<std::string> args;
  if (absl::Status st = Expand(raw, 0, read_file, &args); !st.ok()) return st;
  VrdmadOptions o;
  size_t start = 0;
  for (size_t i = 0; i < args.size(); ++i) {
    if (args[i] == "--") {
      o.eal_given = true;
      o.eal.assign(args.begin(), args.begin() + static_cast<long>(i));
      start = i + 1;
      break;
    }
  }
  std::string pcap;
  for (size_t i = start; i < args.size(); ++i) {
    const std::string& a = args[i];
    auto value = [&](const char* what) -> absl::StatusOr<std::string> {
      if (i + 1 >= args.size()) return absl::InvalidArgumentError(absl::StrCat(a, " needs ", what));
      return args[++i];
    };
    if (a == "--socket" || a == "-s") {
      auto v = value("a path");
      if (!v.ok()) return v.status();
      o.socket_path = *v;
    } else if (a == "--log-level") {
      auto v = value("debug|info|warn|error");
      if (!v.ok()) return v.status();
      if (*v != "debug" && *v != "info" && *v != "warn" && *v != "error") {
        return absl::InvalidArgumentError(
            absl::StrCat("--log-level ", *v, ": not debug|info|warn|error"));
      }
      o.log_level = *v;
    } else if (a == "--pdev") {
      auto v = value("NAME,iface=IFACE,type=af_xdp|af_packet|tap or NAME,pci=BDF");
      if (!v.ok()) return v.status();
      absl::StatusOr<vfio::PortSpec> spec = vfio::ParsePortSpec(*v);
      if (!spec.ok()) return spec.status();
      for (const auto& p : o.pdevs) {
        if (p.pdev == spec->pdev)
          return absl::InvalidArgumentError(absl::StrCat("pdev ", p.pdev, " given twice"));
      }
      o.pdevs.push_back(*spec);
    } else if (a == "--netns-mode") {
      auto v = value("exclusive|shared");
      if (!v.ok()) return v.status();
      if (*v != "exclusive" && *v != "shared") {
        return absl::InvalidArgumentError(
            absl::StrCat("--netns-mode ", *v, ": not exclusive|shared"));
      }
      o.netns_shared = *v == "shared";
    } else if (a == "--dev-dir") {
      auto v = value("a directory, or none");
      if (!v.ok()) return v.status();
      if (*v != "none" && (v->empty() || (*v)[0] != '/')) {
        return absl::InvalidArgumentError(
            absl::StrCat("--dev-dir ", *v, ": not an absolute path or none"));
      }
      o.dev_dir = *v == "none" ? "" : *v;
    } else if (a == "--admin-group") {
      auto v = value("a group name or number");
      if (!v.ok()) return v.status();
      o.admin_group = *v;
    } else if (a == "--max-connections" || a == "--max-connections-per-user" ||
               a == "--max-mappings-per-user" || a == "--max-descriptors-per-user") {
      auto v = value("a number");
      if (!v.ok()) return v.status();
      const bool connections = a.starts_with("--max-connections");
      uint64_t n = 0;
      if (!absl::SimpleAtoi(*v, &n) || n == 0 || (connections && n > UINT32_MAX)) {
        return absl::InvalidArgumentError(absl::StrCat(a, " ", *v, ": not a positive number"));
      }
      if (a == "--max-connections") o.max_connections = static_cast<uint32_t>(n);
      if (a == "--max-connections-per-user") o.max_connections_per_user = static_cast<uint32_t>(n);
      if (a == "--max-mappings-per-user") o.max_mappings_per_user = n;
      if (a == "--max-descriptors-per-user") o.max_descriptors_per_user = n;
    } else if (a == "--vdev-default-share") {
      auto v = value("N/D, e.g. 1/8");
      if (!v.ok()) return v.status();
      std::pair<std::string, std::string> nd = absl::StrSplit(*v, absl::MaxSplits('/', 1));
      uint64_t num = 0, den = 1;
      if (!absl::SimpleAtoi(nd.first, &num) ||
          (!nd.second.empty() && !absl::SimpleAtoi(nd.second, &den)) ||
          (nd.second.empty() && v->find('/') != std::string::npos) || num == 0 || den == 0 ||
          num > den) {
        return absl::InvalidArgumentError(
            absl::StrCat(a, " ", *v, ": not a share N/D with 0 < N <= D (1/8, 1/4, 1)"));
      }
      o.vdev_default_share = {num, den};
    } else if (a == "--pcap") {
      auto v = value("a file");
      if (!v.ok()) return v.status();
      pcap = *v;
    } else if (a == "-h" || a == "--help") {
      o.help = true;
    } else if (a == "--") {
      return absl::InvalidArgumentError("a second `--`: EAL arguments come before the first");
    } else {
      return absl::InvalidArgumentError(absl::StrCat("unknown argument '", a, "'"));
    }
  }
  if (!pcap.empty()) {
    if (o.pdevs.empty())
      return absl::InvalidArgumentError("--pcap records a --pdev's port; give one");
    for (auto& p : o.pdevs) {
      if (p.pcap.empty()) p.pcap = o.pdevs.size() == 1 ? pcap : absl::StrCat(pcap, ".", p.pdev);
    }
  }
  absl::StatusOr<std::vector<std::string>> eal = CompleteEalArgs(o.eal, o.pdevs);
  if (!eal.ok()) return eal.status();
  o.eal = *std::move(eal);
  return o;
}

}  // namespace vrdma::vrdmad
