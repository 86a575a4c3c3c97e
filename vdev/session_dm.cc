// Device memory of a client context (ibv_alloc_dm, ibv_free_dm, ibv_reg_dm_mr): memory of
// the daemon shared with the client (proto::kMaxDmSize), charged to the vdev's ring_bytes
// like the other memory the daemon makes for a context, and MRs on it, zero-based.
#include <cerrno>
#include <string>

#include "absl/strings/str_cat.h"
#include "vdev/session.h"
#include "vdev/session_util.h"

namespace vrdma::vdev {

using session_util::Append;

int Session::AllocDm(proto::Message& msg, Payload* out, Fds* fds) {
  proto::AllocDmRequest req;
  if (!msg.Copy(&req)) return EINVAL;
  if (req.comp_mask != 0) return Refuse(EINVAL, absl::StrCat("alloc_dm comp_mask ", req.comp_mask));
  if (req.length == 0 || req.length > proto::kMaxDmSize) {
    return Refuse(ENOMEM, absl::StrCat("device memory of ", req.length, " bytes: at most ",
                                       proto::kMaxDmSize));
  }
  // Mapped at a page boundary: any alignment up to a page is met.
  if (req.log_align_req > 12) {
    return Refuse(EINVAL, absl::StrCat("alignment 2^", req.log_align_req, " above a page"));
  }
  const uint64_t bytes = RingBytes(req.length);
  if (!Charge(Resource::kRingBytes, bytes)) return ChargeError();
  // The daemon keeps the memfd and its mapping: from the user's share of its budget.
  std::string why;
  auto charge = DaemonCharge::Take(&registry_->daemon_budget(), uid(), 1, 1, &why);
  if (!charge) {
    Release(Resource::kRingBytes, bytes);
    return Refuse(ENOMEM, why);
  }
  auto region = SharedRegion::Create("vrdma-dm", req.length);
  if (!region.ok()) {
    Release(Resource::kRingBytes, bytes);
    return ENOMEM;
  }
  (*region)->HoldCharge(std::move(*charge));
  const uint32_t handle = next_dm_++;
  proto::AllocDmReply r{handle, 0, (*region)->size()};
  fds->push_back((*region)->fd());
  dms_[handle] = DmObject{req.length, std::move(*region), 0};
  Append(out, r);
  return 0;
}

int Session::FreeDm(proto::Message& msg, Payload* /*out*/, Fds* /*fds*/) {
  proto::HandleMsg req;
  if (!msg.Copy(&req)) return EINVAL;
  auto it = dms_.find(req.handle);
  if (it == dms_.end()) return Refuse(EINVAL, absl::StrCat("no device memory ", req.handle));
  // As the kernel's ib_uverbs: not while an MR lies on it.
  if (it->second.mrs) return Refuse(EBUSY, absl::StrCat(it->second.mrs, " MRs on it"));
  Release(Resource::kRingBytes, RingBytes(it->second.length));
  dms_.erase(it);
  return 0;
}

int Session::RegDmMr(proto::Message& msg, Payload* out, Fds* /*fds*/) {
  proto::RegDmMrRequest req;
  if (!msg.Copy(&req) || !pds_.count(req.pd)) return EINVAL;
  auto dm = dms_.find(req.dm);
  if (dm == dms_.end()) return Refuse(EINVAL, absl::StrCat("no device memory ", req.dm));
  // The kernel's DM_MR_REG: zero-based only, inside the allocation (empty allowed).
  if (!(req.access & IBV_ACCESS_ZERO_BASED)) {
    return Refuse(EINVAL, "an MR on device memory is zero-based (IBV_ACCESS_ZERO_BASED)");
  }
  if (req.length > dm->second.length || req.offset > dm->second.length - req.length) {
    return Refuse(EINVAL, absl::StrCat("MR of ", req.length, " bytes at ", req.offset,
                                       " outside device memory of ", dm->second.length));
  }
  if (!Charge(Resource::kMr)) return ChargeError();
  auto keys = device_->RegMr(req.pd, 0, dm->second.region->data() + req.offset, req.length,
                             static_cast<int>(req.access), vdev_->id);
  if (!keys.ok()) {
    Release(Resource::kMr);
    return Refused(keys.status());
  }
  // Its bytes are the device memory's, charged there.
  mrs_[keys->lkey] = MrObject{keys->lkey, 0, nullptr, nullptr, false, req.dm, {}};
  ++dm->second.mrs;
  Append(out, proto::RegMrReply{keys->lkey, keys->lkey, keys->rkey, 0});
  return 0;
}

}  // namespace vrdma::vdev
