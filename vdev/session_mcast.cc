// Multicast groups of a client context's UD QPs (ibv_attach_mcast, ibv_detach_mcast). A
// group is the pdev's, as an Ethernet segment's: a datagram to it reaches the attached
// QPs of every vdev on the pdev's switch. Address handles to a group need no neighbour
// (Session::TranslateAh: the group's Ethernet multicast address).
#include <cerrno>
#include <cstring>

#include "absl/strings/str_cat.h"
#include "vdev/session.h"

namespace vrdma::vdev {

namespace {

bool ReadMcast(const proto::Message& msg, proto::McastRequest* req, driver::wire::Gid* gid) {
  if (!msg.Copy(req)) return false;
  std::memcpy(gid->data(), req->gid, 16);
  return true;
}

}  // namespace

int Session::AttachMcast(proto::Message& msg, Payload* /*out*/, Fds* /*fds*/) {
  proto::McastRequest req;
  driver::wire::Gid gid;
  if (!ReadMcast(msg, &req, &gid)) return EINVAL;
  auto qp = qps_.find(req.qp);
  if (qp == qps_.end()) return Refuse(EINVAL, absl::StrCat("attach_mcast: no QP ", req.qp));
  // ib_attach_mcast: a UD QP and a multicast GID, EINVAL otherwise.
  if (qp->second.type != IBV_QPT_UD) return Refuse(EINVAL, "attach_mcast: a UD QP joins groups");
  if (!driver::wire::IsMulticastGid(gid))
    return Refuse(EINVAL, "attach_mcast: not a multicast GID");
  return Refused(device_->AttachMcast(req.qp, gid), ENOMEM);
}

int Session::DetachMcast(proto::Message& msg, Payload* /*out*/, Fds* /*fds*/) {
  proto::McastRequest req;
  driver::wire::Gid gid;
  if (!ReadMcast(msg, &req, &gid)) return EINVAL;
  if (!qps_.count(req.qp)) return Refuse(EINVAL, absl::StrCat("detach_mcast: no QP ", req.qp));
  return Refused(device_->DetachMcast(req.qp, gid));
}

}  // namespace vrdma::vdev
