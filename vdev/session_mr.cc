// Memory registration of a client context: the pages come from shm/ (registration.h),
// the keys from the engine, zero-copy transmit from the pdev's DMA domain.
#include <unistd.h>

#include <cstring>
#include <string>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
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

int Session::MapRegistration(proto::Message& msg, size_t header, const RegistrationPages& p,
                             MappedPages* out) {
  if (p.nsegments == 0 || p.nsegments > proto::kMaxMrSegments ||
      msg.payload.size() != header + p.nsegments * sizeof(proto::MrSegment)) {
    return EINVAL;
  }
  // The registered bytes must lie inside the page range the segments back.
  if (p.length == 0 || p.addr < p.page_base || p.length > p.page_length ||
      p.addr - p.page_base > p.page_length - p.length) {
    return EINVAL;
  }
  std::vector<proto::MrSegment> segs(p.nsegments);
  std::memcpy(segs.data(), msg.payload.data() + header, segs.size() * sizeof segs[0]);
  std::vector<int> passed;
  for (size_t i = 0; i < msg.fd_count(); ++i) passed.push_back(msg.TakeFd(i));
  absl::StatusOr<RegistrationBacking> backing =
      RegistrationBacking::Open(*requester_, p.page_base, p.page_length, segs, std::move(passed));
  if (!backing.ok()) {
    Log(LogLevel::kDebug, "reg_mr_refused",
        absl::StrCat("dev=", vdev_->name, " pid=", requester_->pid(),
                     " reason=", LogQuote(backing.status().ToString())));
    return RegistrationErrno(backing.status());
  }
  out->read_only = backing->read_only();
  auto memory = backing->Map(p.page_length, segs);
  if (!memory.ok()) return Refused(memory.status());
  // Its mappings come from the user's share of the daemon's (refused: unmapped again). An
  // MR also takes one of fault_guard's ranges; as it takes at least one mapping, the
  // clients' mappings (at most as many as those ranges, DaemonBudget::FromSystem) bound
  // those too.
  std::string why;
  auto charge =
      DaemonCharge::Take(&registry_->daemon_budget(), uid(), (*memory)->mappings(), 0, &why);
  if (!charge) return Refuse(ENOMEM, why);
  out->charge = std::move(*charge);
  out->memory = std::move(*memory);
  return 0;
}

TxShare* Session::ShareForTransmit(uint32_t lkey, std::unique_ptr<ClientMemory>* memory) {
  const auto& dma = vdev_->pdev->tx_dma;
  if (!dma) return nullptr;
  absl::StatusOr<TxShare*> s = TxShare::Create(memory, dma);
  if (s.ok()) {
    (void)device_->SetMrTxShare(lkey, (*s)->shinfo());
    return *s;
  }
  if (!dma_warned_) {
    dma_warned_ = true;
    Log(LogLevel::kWarn, "zero_copy_off",
        absl::StrCat("vdev=", vdev_->name, " reason=", LogQuote(s.status().ToString())));
  }
  return nullptr;
}

int Session::RegMr(proto::Message& msg, Payload* out, Fds* /*fds*/) {
  proto::RegMrRequest req;
  if (!msg.Copy(&req) || !pds_.count(req.pd)) return EINVAL;
  MappedPages pages;
  if (int err = MapRegistration(
          msg, sizeof req, {req.addr, req.length, req.page_base, req.page_length, req.nsegments},
          &pages)) {
    return err;
  }
  if (pages.read_only && (req.access & kWriteAccess)) return EFAULT;
  if (!Charge(Resource::kMrBytes, req.length)) return ChargeError();
  if (!Charge(Resource::kMr)) {
    Release(Resource::kMrBytes, req.length);
    return ChargeError();
  }
  uint8_t* host = pages.memory->base() + (req.addr - req.page_base);
  auto keys =
      device_->RegMr(req.pd, req.iova, host, req.length, static_cast<int>(req.access), vdev_->id);
  if (!keys.ok()) {
    Release(Resource::kMr);
    Release(Resource::kMrBytes, req.length);
    return Refused(keys.status());
  }
  // Zero-copy transmit from these pages when the pdev's port takes chained frames (and
  // its device can reach them); otherwise frames carry copies.
  TxShare* share = ShareForTransmit(keys->lkey, &pages.memory);
  mrs_[keys->lkey] = MrObject{keys->lkey,      req.length, std::move(pages.memory), share,
                              pages.read_only, 0,          std::move(pages.charge)};
  Append(out, proto::RegMrReply{keys->lkey, keys->lkey, keys->rkey, 0});
  return 0;
}

// ibv_rereg_mr(3): everything is checked and the new pages mapped before the MR changes;
// a refusal leaves it as it was.
int Session::ReregMr(proto::Message& msg, Payload* out, Fds* /*fds*/) {
  proto::ReregMrRequest req;
  if (!msg.Copy(&req)) return EINVAL;
  auto it = mrs_.find(req.handle);
  const driver::MemoryRegion* mr = device_->FindMr(req.handle);
  if (it == mrs_.end() || !mr) return EINVAL;
  constexpr uint32_t kFlags =
      IBV_REREG_MR_CHANGE_TRANSLATION | IBV_REREG_MR_CHANGE_PD | IBV_REREG_MR_CHANGE_ACCESS;
  if (req.flags == 0 || (req.flags & ~kFlags)) {
    return Refuse(EINVAL, absl::StrFormat("rereg flags 0x%x", req.flags));
  }
  driver::RoceDevice::MrChange change;
  if (req.flags & IBV_REREG_MR_CHANGE_PD) {
    if (!pds_.count(req.pd)) return Refuse(EINVAL, "no such PD");
    change.pd = req.pd;
  }
  if (req.flags & IBV_REREG_MR_CHANGE_ACCESS) change.access = static_cast<int>(req.access);
  const int access = change.access.value_or(mr->access);
  if ((req.flags & IBV_REREG_MR_CHANGE_TRANSLATION) && it->second.dm) {
    return Refuse(EINVAL, "a new translation for an MR on device memory");
  }
  MappedPages pages;
  bool read_only = it->second.read_only;
  uint64_t bytes = it->second.bytes;
  if (req.flags & IBV_REREG_MR_CHANGE_TRANSLATION) {
    if (int err = MapRegistration(
            msg, sizeof req, {req.addr, req.length, req.page_base, req.page_length, req.nsegments},
            &pages)) {
      return err;
    }
    read_only = pages.read_only;
    bytes = req.length;
    change.translation = true;
    change.iova = req.addr;
    change.host = pages.memory->base() + (req.addr - req.page_base);
    change.length = req.length;
  } else if (msg.fd_count() != 0 || req.nsegments != 0) {
    return Refuse(EINVAL, "pages without a new translation");
  }
  if (read_only && (access & kWriteAccess)) return EFAULT;
  Release(Resource::kMrBytes, it->second.bytes);
  if (!Charge(Resource::kMrBytes, bytes)) {
    (void)Charge(Resource::kMrBytes, it->second.bytes);
    return ChargeError();
  }
  if (absl::Status st = device_->ReregMr(req.handle, change); !st.ok()) {
    Release(Resource::kMrBytes, bytes);
    (void)Charge(Resource::kMrBytes, it->second.bytes);
    return Refused(st, EBUSY);  // windows still bound
  }
  MrObject& obj = it->second;
  if (change.translation) {
    // The old pages go as in DeregMr: frames still carrying them keep them mapped.
    if (obj.share) obj.share->Release();
    obj.share = nullptr;
    obj.memory = std::move(pages.memory);
    obj.charge = std::move(pages.charge);
    obj.share = ShareForTransmit(obj.lkey, &obj.memory);
  }
  obj.bytes = bytes;
  obj.read_only = read_only;
  Append(out, proto::RegMrReply{obj.lkey, mr->lkey, mr->rkey, 0});
  return 0;
}

int Session::DeregMr(proto::Message& msg, Payload* /*out*/, Fds* /*fds*/) {
  proto::HandleMsg req;
  if (!msg.Copy(&req)) return EINVAL;
  auto it = mrs_.find(req.handle);
  if (it == mrs_.end()) return EINVAL;
  if (absl::Status st = device_->DeregMr(req.handle); !st.ok()) return Refused(st, EBUSY);
  if (it->second.share) it->second.share->Release();
  if (auto dm = dms_.find(it->second.dm); dm != dms_.end()) --dm->second.mrs;
  Release(Resource::kMrBytes, it->second.bytes);
  Release(Resource::kMr);
  mrs_.erase(it);
  return 0;
}

// ibv_advise_mr: each range must lie in an on-demand MR of this context in `pd`, as the
// kernel's ib_uverbs_advise_mr requires. Nothing is faulted in here: the daemon maps MRs
// without populating them and its accesses fault pages in as they come; the provider
// prefetches into the memory object itself once this check says yes.
int Session::AdviseMr(proto::Message& msg, Payload* /*out*/, Fds* /*fds*/) {
  proto::AdviseMrRequest req;
  if (!msg.Copy(&req) || !pds_.count(req.pd)) return EINVAL;
  if (req.advice > IBV_ADVISE_MR_ADVICE_PREFETCH_NO_FAULT) {
    return Refuse(EOPNOTSUPP, absl::StrCat("advice ", req.advice));
  }
  if (req.flags & ~IBV_ADVISE_MR_FLAG_FLUSH) {
    return Refuse(EINVAL, absl::StrCat("advise_mr flags 0x", absl::Hex(req.flags)));
  }
  if (req.nsge == 0 || req.nsge > proto::kMaxAdviseSges ||
      msg.payload.size() != sizeof req + req.nsge * sizeof(proto::Sge)) {
    return Refuse(EINVAL, absl::StrCat(req.nsge, " ranges: 1..", proto::kMaxAdviseSges));
  }
  std::vector<proto::Sge> sges(req.nsge);
  std::memcpy(sges.data(), msg.payload.data() + sizeof req, sges.size() * sizeof sges[0]);
  for (const proto::Sge& sge : sges) {
    const driver::MemoryRegion* mr = mrs_.count(sge.lkey) ? device_->FindMr(sge.lkey) : nullptr;
    if (!mr || mr->pd != req.pd) {
      return Refuse(EINVAL, absl::StrCat("lkey 0x", absl::Hex(sge.lkey), ": no MR of the PD"));
    }
    if (!(mr->access & IBV_ACCESS_ON_DEMAND)) {
      return Refuse(EINVAL, absl::StrCat("lkey 0x", absl::Hex(sge.lkey), " is not on demand"));
    }
    if (!driver::TranslateMr(*mr, sge.addr, sge.length)) {
      return Refuse(EINVAL, absl::StrCat("range outside the MR of lkey 0x", absl::Hex(sge.lkey)));
    }
  }
  return 0;
}

}  // namespace vrdma::vdev
