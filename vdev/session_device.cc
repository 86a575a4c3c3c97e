// RoceDevice-level requests of a client context: the device list, open, queries.
#include <sys/eventfd.h>
#include <unistd.h>

#include <cstdio>
#include <cstring>
#include <iterator>
#include <memory>

#include "absl/strings/str_cat.h"
#include "vdev/client_fd.h"
#include "vdev/device_query.h"
#include "vdev/log.h"
#include "vdev/session.h"
#include "vdev/session_util.h"

namespace vrdma::vdev {

using session_util::AddressErrno;
using session_util::Append;
using session_util::Pow2AtLeast;

// ---- device -----------------------------------------------------------------------------

int Session::ListDevices(proto::Message& msg, Payload* out, Fds* /*fds*/) {
  // Virtual devices first (applications that take the first device get a usable one),
  // then the physical devices they are carved from, as the kernel lists both.
  // Only what this client may see (access.h): vdevs of its network namespace, and the
  // pdevs to clients in the daemon's own. From the request's `first` (none: 0), as many
  // as one message holds.
  proto::ListDevicesRequest req{0, 0};
  if (!msg.payload.empty() && !msg.Copy(&req)) return EINVAL;
  const NetnsMode mode = registry_->netns_mode();
  bool pdevs_visible = VisibleTo(registry_->netns(), peer_, mode);
  uint32_t count = pdevs_visible ? static_cast<uint32_t>(registry_->pdevs().size()) : 0;
  for (const auto& [name, v] : registry_->vdevs()) count += VisibleTo(v->netns, peer_, mode);
  proto::ListDevicesReply head{count, req.first};
  Append(out, head);
  uint32_t index = 0, sent = 0;
  auto add = [&](const Vdev* v, const Pdev* p) {
    if (index++ < req.first || sent == proto::kDeviceRecordsPerReply) return;
    Append(out, DeviceRecordOf(v, p));
    ++sent;
  };
  for (const auto& [name, v] : registry_->vdevs()) {
    if (VisibleTo(v->netns, peer_, mode)) add(v.get(), nullptr);
  }
  for (const auto& p : registry_->pdevs()) {
    if (!pdevs_visible) break;
    add(nullptr, p.get());
  }
  return 0;
}

int Session::OpenDevice(proto::Message& msg, Payload* out, Fds* fds) {
  proto::OpenDeviceRequest req;
  if (vdev_ || pdev_ || !msg.Copy(&req) || msg.fd_count() != 1) return EINVAL;
  req.name[proto::kNameLen - 1] = 0;
  Vdev* vdev = registry_->FindVdev(req.name);
  Pdev* pdev = vdev ? nullptr : registry_->FindPdev(req.name);
  if (!vdev && !pdev) return ENODEV;
  // As opening /dev/infiniband/uverbsN: the namespace, then owner, group and mode. A
  // pdev (queries only) to clients of the daemon's namespace, whoever they are.
  if (int err =
          vdev ? OpenErrno(vdev->netns, vdev->access, peer_, registry_->netns_mode())
               : (VisibleTo(registry_->netns(), peer_, registry_->netns_mode()) ? 0 : ENODEV)) {
    Log(LogLevel::kDebug, "open_refused",
        absl::StrCat("dev=", LogQuote(req.name), " pid=", pid(), " uid=", uid(), " errno=", err));
    return err;
  }
  // The async event channel: the daemon's end of the client's socketpair, never a pipe or
  // a file (vdev/client_fd.h). Records go out with SendEventRecord, which never blocks:
  // nothing to set on the descriptor, whose open file description the client shares.
  int async_fd = msg.TakeFd(0);
  if (int err = CheckEventChannel(async_fd)) {
    close(async_fd);
    return err;
  }
  auto region = SharedRegion::Create("vrdma-context", sizeof(proto::ContextShm));
  int efd = region.ok() ? eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK) : -1;
  if (efd < 0) {
    int err = region.ok() ? errno : ENOMEM;
    close(async_fd);
    return err;
  }
  // The client's cgroup pays one hca_handle for a context on a vdev (cgroup_limits.h).
  if (int err = vdev ? ChargeContext(*vdev) : 0; err != 0) {
    close(efd);
    close(async_fd);
    return err;
  }
  async_fd_ = async_fd;
  context_shm_ = std::move(*region);
  context_ = reinterpret_cast<proto::ContextShm*>(context_shm_->data());
  doorbell_fd_ = efd;
  uint64_t guid;
  if (vdev) {
    vdev_ = vdev;
    if (int err = MakeToken()) {
      vdev_ = nullptr;
      ReleaseContext();
      context_shm_.reset();
      context_ = nullptr;
      close(efd);
      doorbell_fd_ = -1;
      close(async_fd);
      async_fd_ = -1;
      return err;
    }
    device_ = vdev->pdev->device.get();
    drain_ = std::make_unique<DoorbellDrain>(
        device_, &drained_, &ahs_,
        [this](uint64_t user_handle, uint32_t event) { WriteAsync(user_handle, event); });
    vdev->open_contexts++;
    guid = vdev->node_guid_be;
  } else {
    pdev_ = pdev;
    device_ = pdev->device.get();
    guid = pdev->node_guid_be;
  }
  proto::OpenDeviceReply r{guid, static_cast<uint32_t>(context_shm_->size()), 0};
  Append(out, r);
  fds->push_back(context_shm_->fd());
  fds->push_back(doorbell_fd_);
  if (token_fd_ >= 0) fds->push_back(token_fd_);
  return 0;
}

int Session::QueryDevice(proto::Message& /*msg*/, Payload* out, Fds* /*fds*/) {
  proto::QueryDeviceReply r{};
  DeviceAttrOf(vdev_, pdev_, &r.attr);
  Append(out, r);
  return 0;
}

int Session::QueryPort(proto::Message& msg, Payload* out, Fds* /*fds*/) {
  proto::QueryPortRequest req;
  if (!msg.Copy(&req)) return EINVAL;
  if (req.port != 1) return Refuse(EINVAL, absl::StrCat("port ", req.port, ": a vdev has port 1"));
  proto::QueryPortReply r{};
  PortAttrOf(vdev_, pdev_, &r.attr);
  Append(out, r);
  return 0;
}

int Session::QueryGidTable(proto::Message& /*msg*/, Payload* out, Fds* /*fds*/) {
  proto::QueryGidTableReply r{};
  GidTableOf(vdev_, &r);
  Append(out, r);
  return 0;
}

int Session::DescribeDevice(proto::Message& msg, Payload* out, Fds* /*fds*/) {
  proto::DescribeDeviceRequest req;
  if (!msg.Copy(&req)) return EINVAL;
  req.name[proto::kNameLen - 1] = 0;
  // What the device list shows this client (its namespace's vdevs; pdevs to the daemon's
  // namespace), whatever its owner, group and mode: sysfs is world-readable, the
  // device node is not.
  const NetnsMode mode = registry_->netns_mode();
  const Vdev* v = registry_->FindVdev(req.name);
  const Pdev* p = v ? nullptr : registry_->FindPdev(req.name);
  if ((v && !VisibleTo(v->netns, peer_, mode)) ||
      (p && !VisibleTo(registry_->netns(), peer_, mode)) || (!v && !p)) {
    return ENODEV;
  }
  auto r = std::make_unique<proto::DescribeDeviceReply>();
  r->record = DeviceRecordOf(v, p);
  DeviceAttrOf(v, p, &r->device);
  PortAttrOf(v, p, &r->port);
  GidTableOf(v, &r->gids);
  if (v) CountersOf(*v, r->counters);
  Append(out, *r);
  return 0;
}

}  // namespace vrdma::vdev
