// Raw packet QPs' privilege and flow steering rules of a client context
// (ibv_create_flow, ibv_destroy_flow). The rules are the context's; a QP with rules
// cannot be destroyed before them (EBUSY, as ib_uverbs counts them on the QP).
#include <fcntl.h>
#include <linux/capability.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>

#include "absl/strings/str_cat.h"
#include "vdev/flow_spec.h"
#include "vdev/session.h"
#include "vdev/session_util.h"

namespace vrdma::vdev {

using session_util::Append;

namespace {

// The effective capability set from a /proc/PID/status, or 0.
uint64_t EffectiveCapabilities(int fd) {
  char buf[4096];
  ssize_t n = pread(fd, buf, sizeof buf - 1, 0);
  if (n <= 0) return 0;
  buf[n] = 0;
  const char* line = std::strstr(buf, "\nCapEff:");
  return line ? std::strtoull(line + 8, nullptr, 16) : 0;
}

bool SameUserNamespace(int fd) {
  struct stat theirs {
  }, ours{};
  return fstat(fd, &theirs) == 0 && stat("/proc/self/ns/user", &ours) == 0 &&
         theirs.st_dev == ours.st_dev && theirs.st_ino == ours.st_ino;
}

}  // namespace

int Session::CheckRawPacketPrivilege() {
  // ib_uverbs gives raw packet QPs and flow rules only to a process with CAP_NET_RAW
  // over the device's network namespace (rdma_dev_has_raw_cap), as packet sockets. Here
  // CAP_NET_RAW in vrdmad's user namespace: a tenant's own user namespace gives none.
  // Read through the requester's proven /proc directory (vdev/peer.h).
  absl::StatusOr<int> status = requester_->OpenProcFile("status", O_RDONLY | O_CLOEXEC);
  absl::StatusOr<int> userns = requester_->OpenProcFile("ns/user", O_RDONLY | O_CLOEXEC);
  bool allowed = status.ok() && userns.ok() && SameUserNamespace(*userns) &&
                 (EffectiveCapabilities(*status) & (1ull << CAP_NET_RAW));
  if (status.ok()) close(*status);
  if (userns.ok()) close(*userns);
  if (!allowed) return Refuse(EPERM, "raw packet QPs and flow rules need CAP_NET_RAW");
  return 0;
}

int Session::CreateFlow(proto::Message& msg, Payload* out, Fds* /*fds*/) {
  proto::CreateFlowRequest req;
  if (!msg.Copy(&req)) return EINVAL;
  if (req.attr_size > proto::kMaxFlowAttrSize || msg.payload.size() != sizeof req + req.attr_size) {
    return Refuse(EINVAL, "create_flow: the rule's size");
  }
  auto qp = qps_.find(req.qp);
  if (qp == qps_.end()) return Refuse(EINVAL, absl::StrCat("create_flow: no QP ", req.qp));
  if (qp->second.type != IBV_QPT_RAW_PACKET) {
    return Refuse(EOPNOTSUPP, "create_flow: rules steer to raw packet QPs only");
  }
  if (int err = CheckRawPacketPrivilege()) return err;
  if (flows_.size() >= kMaxFlowsPerContext) {
    return Refuse(ENOMEM, absl::StrCat("create_flow: ", kMaxFlowsPerContext, " rules a context"));
  }
  driver::FlowRule rule;
  std::string why;
  if (int err = ParseFlowAttr(msg.payload.data() + sizeof req, req.attr_size, &rule, &why)) {
    return Refuse(err, why);
  }
  auto handle = device_->CreateFlow(req.qp, rule);
  if (!handle.ok()) return Refused(handle.status(), ENOMEM);
  flows_[*handle] = req.qp;
  Append(out, proto::HandleMsg{*handle, 0});
  return 0;
}

int Session::DestroyFlow(proto::Message& msg, Payload* /*out*/, Fds* /*fds*/) {
  proto::HandleMsg req;
  if (!msg.Copy(&req)) return EINVAL;
  auto it = flows_.find(req.handle);
  if (it == flows_.end()) return Refuse(EINVAL, absl::StrCat("destroy_flow: no rule ", req.handle));
  (void)device_->DestroyFlow(req.handle);
  flows_.erase(it);
  return 0;
}

bool Session::QpHasFlows(uint32_t qpn) const {
  for (const auto& [h, q] : flows_) {
    if (q == qpn) return true;
  }
  return false;
}

}  // namespace vrdma::vdev
