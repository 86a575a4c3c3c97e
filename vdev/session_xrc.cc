// XRC domains of a client context (ibv_open_xrcd, ibv_close_xrcd). A domain opened through
// a file is the vdev's, shared by every context of the vdev that opens the same file (as
// the kernel's uverbs keys XRC domains by inode per device); one opened without a file is
// this context's alone. The daemon identifies the file by the descriptor the client
// passes (fstat), never by a path. XRC SRQs and XRC QPs are in session_objects.cc and
// session_qp.cc.
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>

#include "absl/strings/str_cat.h"
#include "vdev/session.h"
#include "vdev/session_util.h"

namespace vrdma::vdev {

using session_util::Append;

int Session::OpenXrcd(proto::Message& msg, Payload* out, Fds* /*fds*/) {
  proto::OpenXrcdRequest req;
  if (!msg.Copy(&req)) return EINVAL;
  if (req.oflags & ~static_cast<uint32_t>(O_CREAT | O_EXCL)) {
    return Refuse(EINVAL, "open_xrcd: oflags other than O_CREAT and O_EXCL");
  }
  if (msg.fd_count() != (req.has_fd ? 1u : 0u)) return EINVAL;
  // Opens of one context are bounded: each holds a domain of the pdev's table.
  size_t opens = 0;
  for (const auto& [h, n] : xrcds_) opens += n;
  if (opens >= kMaxXrcdOpens) return Refuse(EMFILE, "open_xrcd: too many open XRC domains");
  if (!req.has_fd) {
    auto h = NewXrcd();
    if (!h.ok()) return Refused(h.status(), ENOMEM);
    xrcds_[*h]++;
    Append(out, proto::OpenXrcdReply{*h, 0});
    return 0;
  }
  int fd = msg.TakeFd(0);
  struct stat st {};
  int rc = fstat(fd, &st);
  close(fd);
  if (rc != 0) return Refuse(EBADF, "open_xrcd: the file cannot be examined");
  // ib_uverbs_open_xrcd: a domain not yet opened needs O_CREAT; O_EXCL refuses one that is.
  const FileKey key{static_cast<uint64_t>(st.st_dev), static_cast<uint64_t>(st.st_ino)};
  auto it = vdev_->xrcds.find(key);
  if (it != vdev_->xrcds.end()) {
    if (req.oflags & O_EXCL) return Refuse(EINVAL, "open_xrcd: O_EXCL and the domain exists");
  } else {
    if (!(req.oflags & O_CREAT)) return Refuse(EINVAL, "open_xrcd: no domain for this file");
    auto h = NewXrcd();
    if (!h.ok()) return Refused(h.status(), ENOMEM);
    it = vdev_->xrcds.emplace(key, SharedXrcd{*h, 0}).first;
  }
  it->second.opens++;
  xrcds_[it->second.handle]++;
  Append(out, proto::OpenXrcdReply{it->second.handle, 0});
  return 0;
}

int Session::CloseXrcd(proto::Message& msg, Payload* /*out*/, Fds* /*fds*/) {
  proto::HandleMsg req;
  if (!msg.Copy(&req)) return EINVAL;
  auto it = xrcds_.find(req.handle);
  if (it == xrcds_.end()) return Refuse(EINVAL, absl::StrCat("no XRC domain ", req.handle));
  if (int err = ReleaseXrcd(req.handle, /*closing=*/false)) return err;
  if (--it->second == 0) xrcds_.erase(it);
  return 0;
}

int Session::ReleaseXrcd(uint32_t handle, bool closing) {
  // The last open of a domain frees it, unless SRQs or QPs are still in it: then the
  // close is EBUSY (ib_uverbs_dealloc_xrcd), or, as the context goes, they are the
  // other contexts' and the domain lives on with them.
  for (auto it = vdev_->xrcds.begin(); it != vdev_->xrcds.end(); ++it) {
    if (it->second.handle != handle) continue;
    if (it->second.opens > 1) {
      it->second.opens--;
      return 0;
    }
    absl::Status st = device_->DeallocXrcd(handle);
    if (!st.ok()) {
      if (!closing) return Refused(st, EBUSY);
      it->second.opens = 0;  // kept for the next open of the file
      return 0;
    }
    vdev_->xrcd_count--;
    vdev_->xrcds.erase(it);
    return 0;
  }
  absl::Status st = device_->DeallocXrcd(handle);  // a domain of this context alone
  if (!st.ok()) return closing ? 0 : Refused(st, EBUSY);
  vdev_->xrcd_count--;
  return 0;
}

absl::StatusOr<uint32_t> Session::NewXrcd() {
  // The pdev's domains are shared by its vdevs: one vdev holds at most kMaxXrcdPerVdev.
  if (vdev_->xrcd_count >= kMaxXrcdPerVdev) {
    return absl::ResourceExhaustedError(
        absl::StrCat("open_xrcd: the vdev holds its ", kMaxXrcdPerVdev, " XRC domains"));
  }
  auto h = device_->AllocXrcd(vdev_->id);
  if (h.ok()) vdev_->xrcd_count++;
  return h;
}

}  // namespace vrdma::vdev
