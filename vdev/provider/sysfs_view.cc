// The sysfs view of vrdma devices (sysfs_view.h).
#include "vdev/provider/sysfs_view.h"

#include <dirent.h>
#include <fcntl.h>
#include <ftw.h>
#include <signal.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <mutex>
#include <string>

#include "vdev/protocol/channel.h"
#include "vdev/protocol/protocol.h"
#include "vdev/provider/device_list.h"
#include "vdev/provider/sysfs_format.h"

namespace vrdma::provider {

namespace {

thread_local int t_real_kernel = 0;

constexpr const char* kClasses[] = {"infiniband", "infiniband_verbs", "infiniband_mad"};

struct Tree {
  std::string root;
  pid_t pid = 0;  // the process that built it, and only it removes it
};

struct View {
  std::mutex mutex;
  Tree trees[2];  // the current one and the one before (readers may still hold it)
  int current = -1;
  uint64_t built_ns = 0;
  bool swept = false;
  bool exit_handler = false;
};

// Never destroyed: hooks run during exit too.
View& TheView() {
  static View* view = new View();
  return *view;
}

uint64_t NowNs() {
  timespec ts{};
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<uint64_t>(ts.tv_sec) * 1000000000u + static_cast<uint64_t>(ts.tv_nsec);
}

void RemoveTree(const std::string& root) {
  if (root.empty()) return;
  nftw(
      root.c_str(), [](const char* p, const struct stat*, int, FTW*) { return remove(p); }, 16,
      FTW_DEPTH | FTW_PHYS);
}

const char* BaseDir() { return access("/dev/shm", W_OK | X_OK) == 0 ? "/dev/shm" : "/tmp"; }

std::string TreePrefix() { return "vrdma-sysfs-" + std::to_string(getuid()) + "-"; }

// Trees of this user's processes that are gone.
void SweepDeadTrees() {
  const std::string base = BaseDir(), prefix = TreePrefix();
  DIR* d = opendir(base.c_str());
  if (!d) return;
  while (dirent* e = readdir(d)) {
    if (std::strncmp(e->d_name, prefix.c_str(), prefix.size()) != 0) continue;
    const long pid = std::strtol(e->d_name + prefix.size(), nullptr, 10);
    if (pid <= 0 || pid == getpid() || kill(static_cast<pid_t>(pid), 0) == 0 || errno != ESRCH) {
      continue;
    }
    const std::string path = base + "/" + e->d_name;
    struct stat st {};
    if (lstat(path.c_str(), &st) == 0 && S_ISDIR(st.st_mode) && st.st_uid == getuid()) {
      RemoveTree(path);
    }
  }
  closedir(d);
}

void RemoveOwnTrees() {
  View& v = TheView();
  for (Tree& t : v.trees) {
    if (t.pid == getpid()) RemoveTree(t.root);
  }
}

bool WriteFile(const std::string& path, const std::string& text) {
  int fd = open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0444);
  if (fd < 0) return false;
  bool ok = write(fd, text.data(), text.size()) == static_cast<ssize_t>(text.size());
  close(fd);
  return ok;
}

bool MakeDir(const std::string& path) { return mkdir(path.c_str(), 0755) == 0 || errno == EEXIST; }

// A link the view cannot make is an entry it does not show.
bool Link(const std::string& target, const std::string& path) {
  return symlink(target.c_str(), path.c_str()) == 0;
}

bool Describe(const DeviceListing& listing, proto::DescribeDeviceReply* out) {
  int sock = proto::ConnectToSocket(listing.socket_path);
  if (sock < 0) return false;
  proto::DescribeDeviceRequest req{};
  std::snprintf(req.name, sizeof req.name, "%s", listing.record.name);
  proto::Message reply;
  int err = proto::Call(sock, proto::Op::kDescribeDevice, &req, sizeof req, nullptr, 0, &reply);
  close(sock);
  return !err && !reply.header.status && reply.Copy(out);
}

void WriteDevice(const std::string& root, const proto::DescribeDeviceReply& r) {
  std::string name(r.record.name, strnlen(r.record.name, sizeof r.record.name));
  std::string netdev(r.record.netdev, strnlen(r.record.netdev, sizeof r.record.netdev));
  const std::string dev = root + "/infiniband/" + name;
  unlink(dev.c_str());  // the kernel's device of the same name: ours is the one listed first
  if (!MakeDir(dev)) return;
  const ibv_device_attr& a = r.device;
  WriteFile(dev + "/node_type", sysfs::NodeType());
  WriteFile(dev + "/node_guid", sysfs::Guid(a.node_guid));
  WriteFile(dev + "/sys_image_guid", sysfs::Guid(a.sys_image_guid));
  WriteFile(dev + "/node_desc", name + "\n");
  WriteFile(dev + "/fw_ver", std::string(a.fw_ver, strnlen(a.fw_ver, sizeof a.fw_ver)) + "\n");
  WriteFile(dev + "/hw_rev", std::to_string(a.hw_ver) + "\n");
  WriteFile(dev + "/hca_type", "vrdma\n");
  WriteFile(dev + "/board_id", "vrdma\n");
  if (!netdev.empty()) {
    WriteFile(dev + "/parent", netdev + "\n");
    MakeDir(dev + "/device");
    MakeDir(dev + "/device/net");
    Link("/sys/class/net/" + netdev, dev + "/device/net/" + netdev);
  }
  const ibv_port_attr& p = r.port;
  const std::string port = dev + "/ports/1";
  MakeDir(dev + "/ports");
  MakeDir(port);
  WriteFile(port + "/state", sysfs::PortState(p.state));
  WriteFile(port + "/phys_state", sysfs::PhysState(p.phys_state));
  WriteFile(port + "/rate", sysfs::Rate(p.active_speed, p.active_width));
  char hex[32];
  std::snprintf(hex, sizeof hex, "0x%x\n", p.lid);
  WriteFile(port + "/lid", hex);
  std::snprintf(hex, sizeof hex, "0x%x\n", p.sm_lid);
  WriteFile(port + "/sm_lid", hex);
  WriteFile(port + "/lid_mask_count", std::to_string(p.lmc) + "\n");
  WriteFile(port + "/sm_sl", std::to_string(p.sm_sl) + "\n");
  std::snprintf(hex, sizeof hex, "0x%08x\n", p.port_cap_flags);
  WriteFile(port + "/cap_mask", hex);
  WriteFile(port + "/link_layer", sysfs::LinkLayer(p.link_layer));
  MakeDir(port + "/gids");
  MakeDir(port + "/gid_attrs");
  MakeDir(port + "/gid_attrs/types");
  MakeDir(port + "/gid_attrs/ndevs");
  // A pdev's port has no GID table; tools read gids/0 of every port (an empty entry).
  const uint32_t gids = std::max<uint32_t>(std::min<uint32_t>(r.gids.count, proto::kMaxGids), 1);
  for (uint32_t i = 0; i < gids; ++i) {
    const proto::GidRecord& g = r.gids.entries[i];
    static const uint8_t kZero[16] = {};
    const std::string n = std::to_string(i);
    WriteFile(port + "/gids/" + n, sysfs::Gid(g.valid ? g.gid : kZero));
    // The kernel's types/N and ndevs/N of an empty entry fail to read; here they are absent.
    if (!g.valid) continue;
    WriteFile(port + "/gid_attrs/types/" + n, sysfs::GidType(g.type));
    if (!netdev.empty()) WriteFile(port + "/gid_attrs/ndevs/" + n, netdev + "\n");
  }
  MakeDir(port + "/pkeys");
  const uint32_t pkeys = std::min<uint32_t>(p.pkey_tbl_len, 128);
  for (uint32_t i = 0; i < pkeys; ++i) {
    WriteFile(port + "/pkeys/" + std::to_string(i), i == 0 ? "0xffff\n" : "0x0000\n");
  }
  MakeDir(port + "/hw_counters");
  for (size_t i = 0; i < proto::kDeviceCounterNames.size(); ++i) {
    WriteFile(port + "/hw_counters/" + proto::kDeviceCounterNames[i],
              std::to_string(r.counters[i]) + "\n");
  }
  const std::string verbs = root + "/infiniband_verbs/" + name;
  unlink(verbs.c_str());
  if (MakeDir(verbs)) {
    WriteFile(verbs + "/ibdev", name + "\n");
    WriteFile(verbs + "/abi_version", "1\n");
    WriteFile(verbs + "/dev", "0:0\n");  // the device node's number (vdev/device_node.h)
  }
}

bool Build(const std::string& root) {
  for (const char* cls : kClasses) {
    if (!MakeDir(root + "/" + cls)) return false;
    // The kernel's own entries, as links to themselves.
    const std::string real = std::string("/sys/class/") + cls;
    if (DIR* d = opendir(real.c_str())) {
      while (dirent* e = readdir(d)) {
        if (!std::strcmp(e->d_name, ".") || !std::strcmp(e->d_name, "..")) continue;
        Link(real + "/" + e->d_name, root + "/" + cls + "/" + e->d_name);
      }
      closedir(d);
    }
  }
  // The ABI versions the kernel's ib_uverbs and ib_umad report, when it has none.
  struct stat st {};
  if (lstat((root + "/infiniband_verbs/abi_version").c_str(), &st) != 0) {
    WriteFile(root + "/infiniband_verbs/abi_version", "6\n");
  }
  if (lstat((root + "/infiniband_mad/abi_version").c_str(), &st) != 0) {
    WriteFile(root + "/infiniband_mad/abi_version", "5\n");
  }
  auto reply = std::make_unique<proto::DescribeDeviceReply>();
  for (const DeviceListing& listing : ListDevices()) {
    if (Describe(listing, reply.get())) WriteDevice(root, *reply);
  }
  return true;
}

// Builds a new tree and makes it current (the mutex held).
void Rebuild(View& v, uint64_t now) {
  RealKernelScope real;
  if (!v.swept) {
    v.swept = true;
    SweepDeadTrees();
  }
  std::string tmpl =
      std::string(BaseDir()) + "/" + TreePrefix() + std::to_string(getpid()) + "-XXXXXX";
  if (!mkdtemp(tmpl.data())) return;
  chmod(tmpl.c_str(), 0755);
  if (!Build(tmpl)) {
    RemoveTree(tmpl);
    return;
  }
  const int next = v.current < 0 ? 0 : 1 - v.current;
  if (v.trees[next].pid == getpid()) RemoveTree(v.trees[next].root);
  v.trees[next] = Tree{tmpl, getpid()};
  v.current = next;
  v.built_ns = now;
  if (!v.exit_handler) {
    v.exit_handler = true;
    atexit(RemoveOwnTrees);
  }
}

}  // namespace

RealKernelScope::RealKernelScope() { ++t_real_kernel; }
RealKernelScope::~RealKernelScope() { --t_real_kernel; }
bool RealKernelScope::Active() { return t_real_kernel != 0; }

bool SysfsRedirect(const char* path, char* out, size_t cap) {
  if (t_real_kernel) return false;
  std::string_view rest = sysfs::ClassPath(path);
  if (rest.empty()) return false;
  View& v = TheView();
  std::lock_guard<std::mutex> lock(v.mutex);
  const uint64_t now = NowNs();
  const uint64_t lifetime = std::chrono::nanoseconds(kViewLifetime).count();
  if (v.current < 0 || v.trees[v.current].pid != getpid() || now - v.built_ns > lifetime) {
    Rebuild(v, now);
  }
  if (v.current < 0) return false;
  const std::string& root = v.trees[v.current].root;
  int n =
      std::snprintf(out, cap, "%s/%.*s", root.c_str(), static_cast<int>(rest.size()), rest.data());
  return n > 0 && static_cast<size_t>(n) < cap;
}

}  // namespace vrdma::provider
