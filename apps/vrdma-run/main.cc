// vrdma-run: runs an unmodified verbs application on vrdma devices, as a DPDK-style
// launcher: it preloads libvrdma.so (the provider and its interposer) and passes the
// device and socket choice in the environment, then execs the program.
//
//   vrdma-run [-d DEV] [-s SOCKET] [--] PROGRAM [ARGS...]
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

#include "vdev/protocol/protocol.h"

#ifndef VRDMA_PROVIDER_PATH
#define VRDMA_PROVIDER_PATH ""
#endif

namespace {

std::string ProviderPath() {
  if (const char* p = getenv("VRDMA_PROVIDER"); p && *p) return p;
  if (access(VRDMA_PROVIDER_PATH, R_OK) == 0) return VRDMA_PROVIDER_PATH;
  // Installed layout: bin/vrdma-run beside lib/libvrdma.so.
  char self[PATH_MAX];
  ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);
  if (n > 0) {
    self[n] = 0;
    std::string dir(self);
    dir = dir.substr(0, dir.rfind('/'));
    std::string candidate = dir + "/../lib/libvrdma.so";
    if (access(candidate.c_str(), R_OK) == 0) return candidate;
  }
  return "";
}

int Usage(int code) {
  std::fprintf(code ? stderr : stdout,
               "usage: vrdma-run [-d DEV] [-s SOCKET] [--] PROGRAM [ARGS...]\n");
  return code;
}

}  // namespace

int main(int argc, char** argv) {
  int i = 1;
  for (; i < argc; ++i) {
    std::string a = argv[i];
    if (a == "--") {
      ++i;
      break;
    }
    if (a == "-d" && i + 1 < argc) {
      setenv(vrdma::proto::kDeviceEnv, argv[++i], 1);
    } else if (a == "-s" && i + 1 < argc) {
      setenv(vrdma::proto::kSocketEnv, argv[++i], 1);
    } else if (a == "-h" || a == "--help") {
      return Usage(0);
    } else if (a[0] == '-') {
      return Usage(2);
    } else {
      break;
    }
  }
  if (i >= argc) return Usage(2);
  std::string lib = ProviderPath();
  if (lib.empty()) {
    std::fprintf(stderr, "vrdma-run: libvrdma.so not found (set VRDMA_PROVIDER)\n");
    return 127;
  }
  std::string preload = lib;
  if (const char* old = getenv("LD_PRELOAD"); old && *old) preload += std::string(":") + old;
  setenv("LD_PRELOAD", preload.c_str(), 1);
  execvp(argv[i], argv + i);
  std::fprintf(stderr, "vrdma-run: %s: %s\n", argv[i], std::strerror(errno));
  return 127;
}
