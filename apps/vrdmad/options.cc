#include "apps/vrdmad/options.h"

#include <fstream>
#include <sstream>

#include "absl/strings/str_cat.h"
#include "vfio/eal.h"

namespace vrdma {
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

std::vector<std::string> DefaultEalArgs(const std::vector<vfio::PortSpec>& pdevs) {
  std::vector<std::string> eal = vfio::NoDeviceEalArgs();
  bool pci = false;
  for (const auto& p : pdevs) pci |= p.type == vfio::PortType::kPci;
  if (pci) {
    std::erase(eal, std::string("--no-pci"));
    for (const auto& p : pdevs) {
      if (p.type == vfio::PortType::kPci) {
        eal.push_back("-a");
        eal.push_back(p.pci);
      }
    }
  }
  return eal;
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
        return absl::InvalidArgumentError(absl::StrCat("--log-level ", *v, ": not debug|info|warn|error"));
      }
      o.log_level = *v;
    } else if (a == "--pdev") {
      auto v = value("NAME,iface=IFACE,type=af_xdp|af_packet|tap or NAME,pci=BDF");
      if (!v.ok()) return v.status();
      absl::StatusOr<vfio::PortSpec> spec = vfio::ParsePortSpec(*v);
      if (!spec.ok()) return spec.status();
      for (const auto& p : o.pdevs) {
        if (p.pdev == spec->pdev) return absl::InvalidArgumentError(absl::StrCat("pdev ", p.pdev, " given twice"));
      }
      o.pdevs.push_back(*spec);
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
    if (o.pdevs.empty()) return absl::InvalidArgumentError("--pcap records a --pdev's port; give one");
    for (auto& p : o.pdevs) {
      if (p.pcap.empty()) p.pcap = o.pdevs.size() == 1 ? pcap : absl::StrCat(pcap, ".", p.pdev);
    }
  }
  if (!o.eal_given) o.eal = DefaultEalArgs(o.pdevs);
  return o;
}

}  // namespace vrdma
