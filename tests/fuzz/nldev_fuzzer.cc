// libFuzzer target: arbitrary datagrams into vrdmad's RDMA netlink answers (vdev/nldev),
// what any process under vrdma-run may send. The first byte chooses the socket's
// NETLINK_CAP_ACK and NETLINK_EXT_ACK and whether the requester is the administrator; the
// rest is the datagram. The registry holds one embedded pdev, so requests that name its
// index reach the device, port, statistic and resource paths. Every answer must be whole
// netlink messages (lengths that add up, at least a header each) addressed to the
// requester's port.
#include <linux/netlink.h>

#include <cstdint>
#include <cstring>
#include <memory>
#include <span>
#include <vector>

#include "vdev/admin.h"
#include "vdev/nldev/nldev.h"
#include "vdev/pdev.h"
#include "vdev/registry.h"
#include "vfio/eal.h"

namespace {

using namespace vrdma::vdev;

void Check(bool ok) {
  if (!ok) __builtin_trap();
}

Registry* TheRegistry() {
  static Registry* registry = [] {
    // The embedded pdev's engine allocates from DPDK mempools: the EAL comes first, with
    // no devices and no huge pages, as the unit tests bring it up.
    Check(vrdma::vfio::InitEal(vrdma::vfio::NoDeviceEalArgs()).ok());
    auto* r = new Registry();
    auto pdev = Pdev::CreateEmbedded("fuzzpdev");
    Check(pdev.ok());
    Check(r->AddPdev(std::move(*pdev)).ok());
    return r;
  }();
  return registry;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 1) return 0;
  static const std::vector<std::unique_ptr<Session>> kNoSessions;
  AdminContext ctx;
  ctx.registry = TheRegistry();
  ctx.sessions = &kNoSessions;
  ctx.may_change = data[0] & 4;
  nldev::Requester who;
  who.portid = 4242;
  who.cap_ack = data[0] & 1;
  who.ext_ack = data[0] & 2;
  std::vector<std::vector<uint8_t>> out =
      nldev::Answer(ctx, who, std::span<const uint8_t>(data + 1, size - 1));
  for (const std::vector<uint8_t>& d : out) {
    size_t at = 0;
    Check(!d.empty());
    while (at < d.size()) {
      Check(d.size() - at >= NLMSG_HDRLEN);
      nlmsghdr h;
      std::memcpy(&h, d.data() + at, sizeof h);
      Check(h.nlmsg_len >= NLMSG_HDRLEN && h.nlmsg_len <= d.size() - at);
      Check(h.nlmsg_pid == who.portid);
      at += NLMSG_ALIGN(h.nlmsg_len);
    }
    Check(at == d.size());
  }
  return 0;
}
