// vrdmad: the daemon that is the RDMA device.
//
//   vrdmad [EAL args] -- [--socket PATH] [--log-level LEVEL] [--pdev SPEC]... [--pcap FILE]
//          [--admin-group GROUP] [--max-connections N] [--max-connections-per-user N]
//          [--max-mappings-per-user N] [--max-descriptors-per-user N] [--dev-dir DIR|none]
//
// With no --pdev it runs the embedded default, pdev0, whose port is its internal switch.
#include <signal.h>
#include <unistd.h>

#include <cstdio>
#include <cstring>
#include <optional>
#include <string>
#include <vector>

#include "absl/strings/str_join.h"
#include "apps/vrdmad/options.h"
#include "cm/rdma_cm.h"
#include "cm/ucma_requests.h"
#include "qp1/gsi.h"
#include "vdev/access.h"
#include "vdev/admin_requests.h"
#include "vdev/device_poller.h"
#include "vdev/log.h"
#include "vdev/pdev.h"
#include "vdev/protocol/protocol.h"
#include "vdev/server.h"
#include "vdev/shm/client_memory.h"
#include "vdev/verbs_requests.h"
#include "vfio/eal.h"

namespace {

vrdma::vdev::Server* g_server = nullptr;

void OnSignal(int) {
  if (g_server) g_server->Stop();
}

int Usage(const char* argv0, int code) {
  std::fprintf(code ? stderr : stdout,
               "usage: %s [EAL args --] [--socket PATH] [--log-level debug|info|warn|error]\n"
               "          [--pdev SPEC]... [--pcap FILE] [--config FILE] [--admin-group GROUP]\n"
               "  --pdev NAME,iface=IFACE,type=af_xdp|af_packet|tap[,pcap=FILE]\n"
               "        a physical device on a DPDK virtual port on kernel interface IFACE\n"
               "  --pdev NAME,pci=DOMAIN:BUS:DEV.FN[,mtu=N][,pcap=FILE]\n"
               "        a physical device on a PCI NIC bound to vfio-pci (vrdmactl pci bind)\n"
               "  --pcap FILE   record every frame the pdevs' ports send and receive\n"
               "  --config FILE read arguments from FILE (same syntax, # comments)\n"
               "  --admin-group GROUP  members may add, change and delete devices (root may)\n"
               "  --netns-mode exclusive|shared  vdevs visible only from their netdev's\n"
               "                network namespace (default), or from every namespace\n"
               "  --max-connections N, --max-connections-per-user N\n"
               "                client connections of users other than root (default: from\n"
               "                the descriptor limit, a quarter of it per user)\n"
               "  --max-mappings-per-user N, --max-descriptors-per-user N\n"
               "                what one user's objects may hold of the daemon's memory\n"
               "                mappings and descriptors (default: a quarter of what\n"
               "                vm.max_map_count and the descriptor limit leave for clients)\n"
               "  --vdev-default-share N/D  a new vdev's quotas are N/D of its pdev's limits\n"
               "                (default 1/8; `vrdmactl dev set` raises them up to the pdev)\n"
               "  --dev-dir DIR|none  where each vdev gets its character node, with the vdev's\n"
               "                owner, group and mode (default /dev/infiniband)\n"
               "EAL args are DPDK's (-l, --no-huge, -m, --file-prefix, -a, --vdev, ...); without\n"
               "them vrdmad uses: %s (plus -a BDF for PCI pdevs).\n"
               "With no --pdev: the embedded default pdev0 (an internal switch).\n"
               "Control socket: %s unless --socket or $%s says otherwise.\n",
               argv0, absl::StrJoin(vrdma::vrdmad::DefaultEalArgs({}), " ").c_str(),
               vrdma::proto::kDefaultSocket, vrdma::proto::kSocketEnv);
  return code;
}

void SetLogLevel(const std::string& l) {
  if (l == "debug") vrdma::vdev::SetLogLevel(vrdma::vdev::LogLevel::kDebug);
  if (l == "warn") vrdma::vdev::SetLogLevel(vrdma::vdev::LogLevel::kWarn);
  if (l == "error") vrdma::vdev::SetLogLevel(vrdma::vdev::LogLevel::kError);
}

}  // namespace

int main(int argc, char** argv) {
  std::vector<std::string> args(argv + 1, argv + argc);
  absl::StatusOr<vrdma::vrdmad::VrdmadOptions> opts =
      vrdma::vrdmad::ParseVrdmadOptions(args, vrdma::vrdmad::ReadConfigFile);
  if (!opts.ok()) {
    std::fprintf(stderr, "%s: %s\n", argv[0], std::string(opts.status().message()).c_str());
    return Usage(argv[0], 2);
  }
  if (opts->help) return Usage(argv[0], 0);
  SetLogLevel(opts->log_level);
  vrdma::vdev::ServerOptions options;
  const char* env = getenv(vrdma::proto::kSocketEnv);
  options.socket_path = !opts->socket_path.empty() ? opts->socket_path
                        : env && *env              ? env
                                                   : vrdma::proto::kDefaultSocket;
  options.max_connections = opts->max_connections;
  options.max_connections_per_user = opts->max_connections_per_user;
  options.max_mappings_per_user = opts->max_mappings_per_user;
  options.max_descriptors_per_user = opts->max_descriptors_per_user;
  std::optional<gid_t> admin_group;
  if (!opts->admin_group.empty()) {
    absl::StatusOr<gid_t> g = vrdma::vdev::ResolveGroup(opts->admin_group);
    if (!g.ok()) {
      std::fprintf(stderr, "%s: --admin-group %s: %s\n", argv[0], opts->admin_group.c_str(),
                   std::string(g.status().message()).c_str());
      return 2;
    }
    admin_group = *g;
  }
  // A failed start (here or later) leaves nothing of the EAL behind.
  if (absl::Status st = vrdma::vfio::InitEal(opts->eal, vrdma::vfio::EalExit::kCleanUpOnFailure);
      !st.ok()) {
    vrdma::vdev::Log(vrdma::vdev::LogLevel::kError, "eal_init_failed",
                     "reason=" + vrdma::vdev::LogQuote(st.ToString()) +
                         " eal=" + vrdma::vdev::LogQuote(absl::StrJoin(opts->eal, " ")));
    return 1;
  }
  // A page of client memory that vanishes under the engine fails that access, not the
  // daemon (driver/res/fault_guard.h). After the EAL: its own SIGBUS action, if any, is
  // chained to for faults outside client memory.
  if (absl::Status st = vrdma::vdev::ClientMemory::InstallFaultGuard(); !st.ok()) {
    vrdma::vdev::Log(vrdma::vdev::LogLevel::kError, "fault_guard_failed",
                     "reason=" + vrdma::vdev::LogQuote(st.ToString()));
    return 1;
  }
  auto registry = std::make_unique<vrdma::vdev::Registry>();
  registry->set_netns_mode(opts->netns_shared ? vrdma::vdev::NetnsMode::kShared
                                              : vrdma::vdev::NetnsMode::kExclusive);
  registry->set_device_node_dir(opts->dev_dir);
  if (opts->vdev_default_share.first != 0) {
    (void)registry->SetDefaultShare(opts->vdev_default_share.first,
                                    opts->vdev_default_share.second);
  }
  if (opts->pdevs.empty()) {
    auto pdev = vrdma::vdev::Pdev::CreateEmbedded("pdev0");
    if (!pdev.ok() || !registry->AddPdev(std::move(*pdev)).ok()) {
      vrdma::vdev::Log(vrdma::vdev::LogLevel::kError, "pdev_create_failed",
                       "pdev=pdev0 reason=" + vrdma::vdev::LogQuote(pdev.status().ToString()));
      return 1;
    }
    vrdma::vdev::Log(vrdma::vdev::LogLevel::kInfo, "pdev_add", "pdev=pdev0 port=internal-switch");
  }
  for (const vrdma::vfio::PortSpec& spec : opts->pdevs) {
    auto pdev = vrdma::vdev::Pdev::CreateOnPort(spec);
    absl::Status st = pdev.ok() ? registry->AddPdev(std::move(*pdev)) : pdev.status();
    if (!st.ok()) {
      vrdma::vdev::Log(vrdma::vdev::LogLevel::kError, "pdev_create_failed",
                       "pdev=" + spec.pdev + " reason=" + vrdma::vdev::LogQuote(st.ToString()));
      return 1;
    }
    const vrdma::vdev::Pdev& p = *registry->pdevs().back();
    vrdma::vdev::Log(vrdma::vdev::LogLevel::kInfo, "pdev_add",
                     "pdev=" + p.name + " port=" + p.kind + " " +
                         (p.iface.empty() ? "pci=" + p.pci : "iface=" + p.iface) +
                         " max_mtu=" + std::to_string(128 << p.max_mtu) +
                         (spec.pcap.empty() ? "" : " pcap=" + vrdma::vdev::LogQuote(spec.pcap)));
  }
  auto server = vrdma::vdev::Server::Create(options, std::move(registry));
  if (!server.ok()) {
    vrdma::vdev::Log(vrdma::vdev::LogLevel::kError, "listen_failed",
                     "reason=" + vrdma::vdev::LogQuote(server.status().ToString()));
    return 1;
  }
  // The layers plug into the event loop here, bottom up: vdev/'s pdev engines, verbs
  // and admin requests; qp1/'s shared QP1 of each pdev, which hands the MADs it reads in
  // the same pass to cm/'s connection manager, and cm/'s RDMA-CM requests
  // (docs/architecture.md).
  vrdma::vdev::Server& srv = **server;
  srv.AddPoller(std::make_unique<vrdma::vdev::DevicePoller>(&srv.registry(), &srv.sessions()));
  auto cm = std::make_unique<vrdma::cm::RdmaCm>(&srv.registry(), nullptr);
  auto qp1 = std::make_unique<vrdma::qp1::Qp1Poller>(&srv.registry(), cm.get());
  cm->set_qp1(qp1.get());
  vrdma::cm::RdmaCm* cm_raw = cm.get();
  srv.AddReporter(cm_raw);
  srv.AddCounterReporter(cm_raw);
  srv.AddPoller(std::move(qp1));
  srv.AddPoller(std::move(cm));
  absl::Status wired = srv.AddHandler(vrdma::proto::kFirstVerbsOp, vrdma::proto::kLastVerbsOp,
                                      std::make_unique<vrdma::vdev::VerbsRequests>());
  if (wired.ok()) {
    wired = srv.AddHandler(vrdma::proto::kFirstAdminOp, vrdma::proto::kLastAdminOp,
                           std::make_unique<vrdma::vdev::AdminRequests>(&srv, admin_group));
  }
  if (wired.ok()) {
    wired = srv.AddHandler(vrdma::proto::kFirstCmOp, vrdma::proto::kLastCmOp,
                           std::make_unique<vrdma::cm::UcmaRequests>(cm_raw));
  }
  if (!wired.ok()) {
    vrdma::vdev::Log(vrdma::vdev::LogLevel::kError, "wiring_failed",
                     "reason=" + vrdma::vdev::LogQuote(wired.ToString()));
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
