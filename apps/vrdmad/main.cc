// vrdmad: the daemon that is the RDMA device. With no arguments it runs the embedded
// default, pdev0, whose port is its internal switch.
//
//   vrdmad [--socket PATH] [--log-level debug|info|warn|error]
#include <signal.h>
#include <unistd.h>

#include <cstdio>
#include <cstring>
#include <string>

#include "vdev/log.h"
#include "vdev/pdev.h"
#include "vdev/protocol/protocol.h"
#include "vdev/server.h"
#include "vfio/eal.h"

namespace {

vrdma::Server* g_server = nullptr;

void OnSignal(int) {
  if (g_server) g_server->Stop();
}

int Usage(const char* argv0, int code) {
  std::fprintf(code ? stderr : stdout,
               "usage: %s [--socket PATH] [--log-level debug|info|warn|error]\n"
               "Runs the embedded default physical device pdev0 (an internal switch).\n"
               "Control socket: %s unless --socket or $%s says otherwise.\n",
               argv0, vrdma::proto::kDefaultSocket, vrdma::proto::kSocketEnv);
  return code;
}

}  // namespace

int main(int argc, char** argv) {
  vrdma::ServerOptions options;
  const char* env = getenv(vrdma::proto::kSocketEnv);
  options.socket_path = env && *env ? env : vrdma::proto::kDefaultSocket;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    if ((a == "--socket" || a == "-s") && i + 1 < argc) {
      options.socket_path = argv[++i];
    } else if (a == "--log-level" && i + 1 < argc) {
      std::string l = argv[++i];
      if (l == "debug")
        vrdma::SetLogLevel(vrdma::LogLevel::kDebug);
      else if (l == "info")
        vrdma::SetLogLevel(vrdma::LogLevel::kInfo);
      else if (l == "warn")
        vrdma::SetLogLevel(vrdma::LogLevel::kWarn);
      else if (l == "error")
        vrdma::SetLogLevel(vrdma::LogLevel::kError);
      else
        return Usage(argv[0], 2);
    } else if (a == "-h" || a == "--help") {
      return Usage(argv[0], 0);
    } else {
      std::fprintf(stderr, "%s: unknown argument '%s'\n", argv[0], argv[i]);
      return Usage(argv[0], 2);
    }
  }
  if (absl::Status st = vrdma::vfio::InitEal(vrdma::vfio::NoDeviceEalArgs()); !st.ok()) {
    vrdma::Log(vrdma::LogLevel::kError, "eal_init_failed",
               "reason=" + vrdma::LogQuote(st.ToString()));
    return 1;
  }
  auto registry = std::make_unique<vrdma::Registry>();
  auto pdev = vrdma::Pdev::CreateEmbedded("pdev0");
  if (!pdev.ok() || !registry->AddPdev(std::move(*pdev)).ok()) {
    vrdma::Log(vrdma::LogLevel::kError, "pdev_create_failed",
               "pdev=pdev0 reason=" + vrdma::LogQuote(pdev.status().ToString()));
    return 1;
  }
  vrdma::Log(vrdma::LogLevel::kInfo, "pdev_add", "pdev=pdev0 port=internal-switch");
  auto server = vrdma::Server::Create(options, std::move(registry));
  if (!server.ok()) {
    vrdma::Log(vrdma::LogLevel::kError, "listen_failed",
               "reason=" + vrdma::LogQuote(server.status().ToString()));
    return 1;
  }
  g_server = server->get();
  struct sigaction sa {};
  sa.sa_handler = OnSignal;
  sigaction(SIGTERM, &sa, nullptr);
  sigaction(SIGINT, &sa, nullptr);
  signal(SIGPIPE, SIG_IGN);
  (*server)->Run();
  g_server = nullptr;
  server->reset();
  return 0;
}
