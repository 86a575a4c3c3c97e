// Memory registration of a client context: the pages come from shm/ (registration.h),
// the keys from the engine, zero-copy transmit from the pdev's DMA domain.
#include <unistd.h>

#include <cstring>

#include "vdev/log.h"
#include "vdev/session.h"
#include "vdev/session_util.h"
#include "vdev/shm/registration.h"

namespace vrdma::vdev {

using session_util::Append;

namespace {

// Write access needs pages the client may write (as pinning a read-only mapping for
// write fails on a NIC).
constexpr uint32_t kWriteAccess =
    IBV_ACCESS_LOCAL_WRITE | IBV_ACCESS_REMOTE_WRITE | IBV_ACCESS_REMOTE_ATOMIC;

int RegistrationErrno(const absl::Status& status) {
  switch (status.code()) {
    case absl::StatusCode::kOutOfRange:
      return EINVAL;
    case absl::StatusCode::kFailedPrecondition:
      return EOPNOTSUPP;
    default:
      return EFAULT;
  }
}

}  // namespace

int Session::RegMr(proto::Message& msg, Payload* out, Fds* /*fds*/) {
  proto::RegMrRequest req;
  if (!msg.Copy(&req) || !pds_.count(req.pd)) return EINVAL;
  if (req.nsegments == 0 || req.nsegments > proto::kMaxMrSegments ||
      msg.payload.size() != sizeof req + req.nsegments * sizeof(proto::MrSegment)) {
    return EINVAL;
  }
  // The registered bytes must lie inside the page range the segments back.
  if (req.length == 0 || req.addr < req.page_base || req.length > req.page_length ||
      req.addr - req.page_base > req.page_length - req.length) {
    return EINVAL;
  }
  std::vector<proto::MrSegment> segs(req.nsegments);
  std::memcpy(segs.data(), msg.payload.data() + sizeof req, segs.size() * sizeof segs[0]);
  std::vector<int> passed;
  for (size_t i = 0; i < msg.fd_count(); ++i) passed.push_back(msg.TakeFd(i));
  absl::StatusOr<RegistrationBacking> backing =
      RegistrationBacking::Open(peer_, req.page_base, req.page_length, segs, std::move(passed));
  if (!backing.ok()) {
    Log(LogLevel::kDebug, "reg_mr_refused",
        absl::StrCat("dev=", vdev_->name, " pid=", pid(),
                     " reason=", LogQuote(backing.status().ToString())));
    return RegistrationErrno(backing.status());
  }
  if (backing->read_only() && (req.access & kWriteAccess)) return EFAULT;
  if (!Charge(Resource::kMrBytes, req.length)) return ChargeError();
  if (!Charge(Resource::kMr)) {
    Release(Resource::kMrBytes, req.length);
    return ChargeError();
  }
  auto memory = backing->Map(req.page_length, segs);
  if (!memory.ok()) {
    Release(Resource::kMr);
    Release(Resource::kMrBytes, req.length);
    return Refused(memory.status());
  }
  uint8_t* host = (*memory)->base() + (req.addr - req.page_base);
  auto keys =
      device_->RegMr(req.pd, req.iova, host, req.length, static_cast<int>(req.access), vdev_->id);
  if (!keys.ok()) {
    Release(Resource::kMr);
    Release(Resource::kMrBytes, req.length);
    return Refused(keys.status());
  }
  // Zero-copy transmit from these pages when the pdev's port takes chained frames (and
  // its device can reach them); otherwise frames carry copies.
  TxShare* share = nullptr;
  if (const auto& dma = vdev_->pdev->tx_dma) {
    absl::StatusOr<TxShare*> s = TxShare::Create(&*memory, dma);
    if (s.ok()) {
      share = *s;
      (void)device_->SetMrTxShare(keys->lkey, share->shinfo());
    } else if (!dma_warned_) {
      dma_warned_ = true;
      Log(LogLevel::kWarn, "zero_copy_off",
          absl::StrCat("vdev=", vdev_->name, " reason=", LogQuote(s.status().ToString())));
    }
  }
  mrs_[keys->lkey] = MrObject{keys->lkey, req.length, std::move(*memory), share};
  Append(out, proto::RegMrReply{keys->lkey, keys->lkey, keys->rkey, 0});
  return 0;
}

int Session::DeregMr(proto::Message& msg, Payload* /*out*/, Fds* /*fds*/) {
  proto::HandleMsg req;
  if (!msg.Copy(&req)) return EINVAL;
  auto it = mrs_.find(req.handle);
  if (it == mrs_.end()) return EINVAL;
  if (absl::Status st = device_->DeregMr(req.handle); !st.ok()) return Refused(st, EBUSY);
  if (it->second.share) it->second.share->Release();
  Release(Resource::kMrBytes, it->second.bytes);
  Release(Resource::kMr);
  mrs_.erase(it);
  return 0;
}
}  // namespace vrdma::vdev
