// Memory windows of a client context (ibv_alloc_mw, ibv_dealloc_mw). Binding and
// invalidation are work requests: the engine checks each against the QP's PD when it
// runs it (driver/transport/memory_window.cc), so a WQE naming another context's window
// fails with IBV_WC_MW_BIND_ERR. A window counts against the vdev's mr quota: it is a
// memory key like an MR's.
#include <cerrno>

#include "absl/strings/str_cat.h"
#include "vdev/session.h"
#include "vdev/session_util.h"

namespace vrdma::vdev {

using session_util::Append;

int Session::AllocMw(proto::Message& msg, Payload* out, Fds* /*fds*/) {
  proto::AllocMwRequest req;
  if (!msg.Copy(&req) || !pds_.count(req.pd)) return EINVAL;
  if (req.type != IBV_MW_TYPE_1 && req.type != IBV_MW_TYPE_2) {
    return Refuse(EINVAL, absl::StrCat("memory window type ", req.type, ": 1 or 2"));
  }
  if (!Charge(Resource::kMr)) return ChargeError();
  auto keys = device_->AllocMw(req.pd, static_cast<ibv_mw_type>(req.type), vdev_->id);
  if (!keys.ok()) {
    Release(Resource::kMr);
    return Refused(keys.status());
  }
  mws_[keys->handle] = req.pd;
  Append(out, proto::AllocMwReply{keys->handle, keys->rkey});
  return 0;
}

int Session::DeallocMw(proto::Message& msg, Payload* /*out*/, Fds* /*fds*/) {
  proto::HandleMsg req;
  if (!msg.Copy(&req)) return EINVAL;
  auto it = mws_.find(req.handle);
  if (it == mws_.end()) return Refuse(EINVAL, absl::StrCat("no memory window ", req.handle));
  if (absl::Status st = device_->DeallocMw(req.handle); !st.ok()) return Refused(st);
  mws_.erase(it);
  Release(Resource::kMr);
  return 0;
}

}  // namespace vrdma::vdev
