// Shared contexts: ibv_import_device, and the PDs, MRs and DMs a context looks up by
// handle (ibv_import_pd, ibv_import_mr, ibv_import_dm).
//
// A context's token is a sealed, empty memfd the daemon makes when the context opens;
// the client's ibv_context::cmd_fd is that descriptor. A process that holds it (a dup,
// SCM_RIGHTS) passes it back on a connection of its own, and that connection joins the
// context: one table of objects, as one uverbs file shared by two processes, while each
// connection registers its own process's memory (Session::requester_). The daemon knows
// the token by the file the descriptor is (fstat), never by anything the client says.
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>

#include "absl/strings/str_cat.h"
#include "vdev/client_fd.h"
#include "vdev/log.h"
#include "vdev/session.h"
#include "vdev/session_util.h"

namespace vrdma::vdev {

using session_util::Append;

int Session::MakeToken() {
  std::string name = absl::StrCat(proto::kContextTokenPrefix, vdev_->name);
  int fd = memfd_create(name.c_str(), MFD_CLOEXEC | MFD_ALLOW_SEALING);
  if (fd < 0) return errno;
  // Empty, and sealed so: a client can neither use it as memory nor change it.
  struct stat st {};
  if (fcntl(fd, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_WRITE | F_SEAL_SEAL) != 0 ||
      fstat(fd, &st) != 0) {
    int err = errno;
    close(fd);
    return err;
  }
  // The daemon keeps the descriptor: the inode cannot be reused while it is listed.
  token_fd_ = fd;
  token_key_ = FileKey{static_cast<uint64_t>(st.st_dev), static_cast<uint64_t>(st.st_ino)};
  vdev_->context_tokens[token_key_] = this;
  return 0;
}

void Session::DropToken() {
  if (token_fd_ < 0) return;
  if (vdev_) vdev_->context_tokens.erase(token_key_);
  close(token_fd_);
  token_fd_ = -1;
}

int Session::ImportContext(proto::Message& msg, Payload* out, Fds* fds) {
  proto::ImportContextRequest req;
  if (vdev_ || pdev_ || !msg.Copy(&req) || msg.fd_count() != 2) return EINVAL;
  req.name[proto::kNameLen - 1] = 0;
  Vdev* vdev = registry_->FindVdev(req.name);
  if (!vdev) return Refuse(ENODEV, absl::StrCat("import_device: no vdev ", LogQuote(req.name)));
  // Holding the token is not enough: the importer must be one who may open the vdev
  // (its namespace, then owner, group and mode), as for OpenDevice.
  if (int err = OpenErrno(vdev->netns, vdev->access, peer_, registry_->netns_mode())) {
    return Refuse(err, absl::StrCat("import_device: this client may not open ", vdev->name));
  }
  int token = msg.TakeFd(1);
  struct stat st {};
  int rc = fstat(token, &st);
  close(token);
  if (rc != 0) return Refuse(EBADF, "import_device: the descriptor cannot be examined");
  auto it = vdev->context_tokens.find(
      FileKey{static_cast<uint64_t>(st.st_dev), static_cast<uint64_t>(st.st_ino)});
  if (it == vdev->context_tokens.end()) {
    return Refuse(EINVAL,
                  absl::StrCat("import_device: the descriptor is no context of ", vdev->name));
  }
  Session& owner = *it->second;
  int async_fd = msg.TakeFd(0);
  if (int err = CheckEventChannel(async_fd)) {
    close(async_fd);
    return err;
  }
  async_fd_ = async_fd;
  shared_ = &owner;
  owner.importers_++;
  vdev_ = vdev;
  device_ = owner.device_;
  vdev->open_contexts++;
  Append(out, proto::OpenDeviceReply{vdev->node_guid_be,
                                     static_cast<uint32_t>(owner.context_shm_->size()), 0});
  fds->push_back(owner.context_shm_->fd());
  fds->push_back(owner.doorbell_fd_);
  return 0;
}

int Session::ImportObject(proto::Message& msg, Payload* out, Fds* fds) {
  proto::ImportObjectRequest req;
  if (!msg.Copy(&req)) return EINVAL;
  proto::ImportObjectReply r{};
  switch (req.kind) {
    case proto::ImportKind::kPd:
      if (!pds_.contains(req.handle)) {
        return Refuse(EINVAL, absl::StrCat("import_pd: no PD ", req.handle));
      }
      break;
    case proto::ImportKind::kMr: {
      const driver::MemoryRegion* m =
          mrs_.contains(req.handle) ? device_->FindMr(req.handle) : nullptr;
      if (!m) return Refuse(EINVAL, absl::StrCat("import_mr: no MR ", req.handle));
      r.addr = m->iova;
      r.length = m->length;
      r.lkey = m->lkey;
      r.rkey = m->rkey;
      r.pd = m->pd;
      r.access = static_cast<uint32_t>(m->access);
      break;
    }
    case proto::ImportKind::kDm: {
      auto it = dms_.find(req.handle);
      if (it == dms_.end()) return Refuse(EINVAL, absl::StrCat("import_dm: no DM ", req.handle));
      r.length = it->second.length;
      r.shm_size = it->second.region->size();
      fds->push_back(it->second.region->fd());
      break;
    }
    default:
      return Refuse(EINVAL, "import: no such kind of object");
  }
  Append(out, r);
  return 0;
}

}  // namespace vrdma::vdev
