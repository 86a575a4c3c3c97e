// vrdma-run: runs an unmodified verbs application on vrdma devices, as a DPDK-style
// launcher: it preloads libvrdma.so (the provider and its interposer) and passes the
// device and socket choice in the environment, then execs the program. Before that it
// asks vrdmad for its devices, so a daemon that is not there or a device that does not
// exist is said plainly instead of as libibverbs' "No IB devices found".
//
// The same environment works without the launcher:
//   LD_PRELOAD=/path/to/libvrdma.so VRDMA_DEVICE=DEV VRDMA_SOCKET=PATH PROGRAM ARGS
#include <limits.h>
#include <stdlib.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

#include "vdev/protocol/channel.h"
#include "vdev/protocol/protocol.h"

#ifndef VRDMA_PROVIDER_PATH
#define VRDMA_PROVIDER_PATH ""
#endif
#ifndef VRDMA_PROVIDER_FROM_BINDIR
#define VRDMA_PROVIDER_FROM_BINDIR "../lib/libvrdma.so.0"
#endif
#ifndef VRDMA_PROVIDER_INSTALLED
#define VRDMA_PROVIDER_INSTALLED ""
#endif

namespace {

std::string ProviderPath() {
  if (const char* p = getenv("VRDMA_PROVIDER"); p && *p) return p;
  // Installed: the libvrdma.so installed with this vrdma-run, found from where it is
  // (BINDIR/VRDMA_PROVIDER_FROM_BINDIR, so a moved tree or a DESTDIR works too). In the
  // build tree that file does not exist: the build's own library.
  char self[PATH_MAX];
  ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);
  if (n > 0) {
    self[n] = 0;
    std::string dir(self);
    dir = dir.substr(0, dir.rfind('/'));
    std::string candidate = dir + "/" VRDMA_PROVIDER_FROM_BINDIR;
    if (access(candidate.c_str(), R_OK) == 0) return candidate;
  }
  if (access(VRDMA_PROVIDER_PATH, R_OK) == 0) return VRDMA_PROVIDER_PATH;
  if (access(VRDMA_PROVIDER_INSTALLED, R_OK) == 0) return VRDMA_PROVIDER_INSTALLED;
  return "";
}

constexpr const char* kUsage =
    "usage: vrdma-run [OPTIONS] [--] PROGRAM [ARGS...]\n"
    "Runs an unmodified verbs (libibverbs/librdmacm) program on vrdmad's devices: preloads\n"
    "libvrdma.so, checks that vrdmad answers and that the device exists, then execs PROGRAM.\n"
    "\n"
    "options:\n"
    "  -d, --device DEV    show PROGRAM only device DEV (a vdev, or a pdev for queries);\n"
    "                      sets VRDMA_DEVICE. Default: every device, vdevs first\n"
    "  -s, --socket PATH   vrdmad's control socket; sets VRDMA_SOCKET\n"
    "      --no-check      exec PROGRAM without asking vrdmad first\n"
    "  -h, --help          this text\n"
    "\n"
    "environment:\n"
    "  VRDMA_DEVICE        as -d (the program sees only this device)\n"
    "  VRDMA_SOCKET        as -s; default /run/vrdma/vrdmad.sock. Several daemons'\n"
    "                      sockets may be listed, separated by ':'\n"
    "  VRDMA_PROVIDER      the libvrdma.so to preload (default: the one built or installed\n"
    "                      beside vrdma-run)\n"
    "\n"
    "examples:\n"
    "  vrdma-run ibv_devinfo -v\n"
    "  vrdma-run -d vdev_a ib_write_bw -x 3 &\n"
    "  vrdma-run -d vdev_b ib_write_bw -x 3 127.0.0.1\n"
    "  vrdma-run -s /tmp/vrdmad.sock --device vdev_a ibv_rc_pingpong -g 1\n"
    "  VRDMA_DEVICE=vdev_a vrdma-run rping -s -a 10.0.0.1\n"
    "Devices: vrdmactl dev show (vdevs), vrdmactl pdev show (pdevs).\n";

int Usage(int code) {
  std::fputs(kUsage, code ? stderr : stdout);
  return code;
}

struct Listing {
  std::vector<std::string> vdevs;
  std::vector<std::string> pdevs;
  std::vector<std::string> reached;
  std::vector<std::pair<std::string, int>> unreachable;  // path, errno
};

// Asks every daemon VRDMA_SOCKET names for its devices, as the provider will.
Listing ListDevices() {
  Listing out;
  for (const std::string& path : vrdma::proto::SocketPaths()) {
    int sock = vrdma::proto::ConnectToSocket(path);
    if (sock < 0) {
      out.unreachable.emplace_back(path, -sock);
      continue;
    }
    std::vector<vrdma::proto::DeviceRecord> records;
    int err = vrdma::proto::ListAllDevices(sock, &records);
    close(sock);
    if (err) {
      out.unreachable.emplace_back(path, err);
      continue;
    }
    out.reached.push_back(path);
    for (const vrdma::proto::DeviceRecord& rec : records) {
      bool physical = rec.type == static_cast<uint32_t>(vrdma::proto::DeviceType::kPhysical);
      (physical ? out.pdevs : out.vdevs).push_back(rec.name);
    }
  }
  return out;
}

std::string Join(const std::vector<std::string>& v) {
  std::string s;
  for (const std::string& x : v) s += (s.empty() ? "" : ", ") + x;
  return s;
}

// 0 when the program can find what it asks for, else says why and returns 1.
int CheckDaemon() {
  Listing l = ListDevices();
  if (l.reached.empty()) {
    for (const auto& [path, err] : l.unreachable) {
      std::fprintf(stderr,
                   "vrdma-run: cannot reach vrdmad at %s (%s): is vrdmad running? -s/--socket "
                   "or VRDMA_SOCKET names its socket\n",
                   path.c_str(), std::strerror(err));
    }
    return 1;
  }
  for (const auto& [path, err] : l.unreachable) {
    std::fprintf(stderr,
                 "vrdma-run: warning: cannot reach vrdmad at %s (%s): its devices are "
                 "not listed\n",
                 path.c_str(), std::strerror(err));
  }
  const char* want = getenv(vrdma::proto::kDeviceEnv);
  if (!want || !*want) return 0;
  for (const auto* names : {&l.vdevs, &l.pdevs}) {
    for (const std::string& n : *names) {
      if (n == want) return 0;
    }
  }
  if (l.vdevs.empty()) {
    std::fprintf(stderr,
                 "vrdma-run: no vdev '%s' (vrdmad has no vdevs: create one with `vrdmactl dev "
                 "add NAME netdev IFACE`)\n",
                 want);
  } else {
    std::fprintf(stderr, "vrdma-run: no vdev '%s' (have: %s)\n", want, Join(l.vdevs).c_str());
  }
  return 1;
}

}  // namespace

int main(int argc, char** argv) {
  bool check = true;
  int i = 1;
  for (; i < argc; ++i) {
    std::string a = argv[i];
    if (a == "--") {
      ++i;
      break;
    }
    // "-d DEV", "--device DEV", "--device=DEV" (and the same for the socket).
    auto option = [&](const char* short_name, const char* long_name, const char* env) {
      std::string eq = std::string(long_name) + "=";
      std::string v;
      if (a.compare(0, eq.size(), eq) == 0) {
        v = a.substr(eq.size());
      } else if (a == short_name || a == long_name) {
        if (i + 1 >= argc) {
          std::fprintf(stderr, "vrdma-run: %s needs a value\n", a.c_str());
          std::exit(Usage(2));
        }
        v = argv[++i];
      } else {
        return false;
      }
      setenv(env, v.c_str(), 1);
      return true;
    };
    if (option("-d", "--device", vrdma::proto::kDeviceEnv) ||
        option("-s", "--socket", vrdma::proto::kSocketEnv)) {
      continue;
    }
    if (a == "-h" || a == "--help") return Usage(0);
    if (a == "--no-check") {
      check = false;
    } else if (a[0] == '-') {
      std::fprintf(stderr, "vrdma-run: unknown option %s\n", a.c_str());
      return Usage(2);
    } else {
      break;
    }
  }
  if (i >= argc) {
    std::fprintf(stderr, "vrdma-run: no program to run\n");
    return Usage(2);
  }
  std::string lib = ProviderPath();
  if (lib.empty()) {
    std::fprintf(stderr, "vrdma-run: libvrdma.so not found (set VRDMA_PROVIDER)\n");
    return 127;
  }
  if (check) {
    if (int err = CheckDaemon()) return err;
  }
  std::string preload = lib;
  if (const char* old = getenv("LD_PRELOAD"); old && *old) preload += std::string(":") + old;
  setenv("LD_PRELOAD", preload.c_str(), 1);
  execvp(argv[i], argv + i);
  std::fprintf(stderr, "vrdma-run: %s: %s\n", argv[i], std::strerror(errno));
  return 127;
}
