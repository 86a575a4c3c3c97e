// A client context's lifetime: the verbs dispatch table, quotas, the WQE pump, async
// events and teardown. The requests themselves are in session_device.cc (device list,
// open, queries), session_objects.cc (PD, CQ, SRQ, AH), session_mr.cc and session_qp.cc.
#include "vdev/session.h"

#include <fcntl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <cstring>
#include <string>

#include "absl/strings/str_cat.h"
#include "vdev/client_fd.h"
#include "vdev/log.h"
#include "vdev/session_util.h"

namespace vrdma::vdev {
namespace {

// The verb a request is, for the log.
std::string OpName(uint16_t op) {
  static constexpr std::array<const char*, 41> kNames = {"list_devices",
                                                         "open_device",
                                                         "query_device",
                                                         "query_port",
                                                         "query_gid_table",
                                                         "alloc_pd",
                                                         "dealloc_pd",
                                                         "reg_mr",
                                                         "dereg_mr",
                                                         "create_cq",
                                                         "resize_cq",
                                                         "destroy_cq",
                                                         "create_srq",
                                                         "modify_srq",
                                                         "query_srq",
                                                         "destroy_srq",
                                                         "create_ah",
                                                         "destroy_ah",
                                                         "create_qp",
                                                         "modify_qp",
                                                         "query_qp",
                                                         "destroy_qp",
                                                         "rereg_mr",
                                                         "alloc_dm",
                                                         "free_dm",
                                                         "reg_dm_mr",
                                                         "alloc_mw",
                                                         "dealloc_mw",
                                                         "advise_mr",
                                                         "open_xrcd",
                                                         "close_xrcd",
                                                         "open_qp",
                                                         "import_device",
                                                         "import_object",
                                                         "create_flow",
                                                         "destroy_flow",
                                                         "modify_wq",
                                                         "create_rwq_ind_table",
                                                         "destroy_rwq_ind_table",
                                                         "attach_mcast",
                                                         "detach_mcast"};
  static_assert(kNames.size() == static_cast<size_t>(proto::Op::kDetachMcast));
  if (op >= 1 && op <= kNames.size()) return kNames[op - 1];
  return std::to_string(op);
}

std::string ErrnoName(int err) {
  const char* name = strerrorname_np(err);
  return name ? name : std::to_string(err);
}

}  // namespace

int ErrnoOf(const absl::Status& status, int failed_precondition) {
  switch (status.code()) {
    case absl::StatusCode::kOk:
      return 0;
    case absl::StatusCode::kResourceExhausted:
      return ENOMEM;
    case absl::StatusCode::kFailedPrecondition:
      return failed_precondition;
    case absl::StatusCode::kPermissionDenied:
      return EACCES;
    case absl::StatusCode::kUnimplemented:
      return EOPNOTSUPP;
    default:
      return EINVAL;
  }
}

namespace {
std::atomic<uint32_t> g_next_context_id{1};
}  // namespace

Session::Session(int sock, Registry* registry, Peer peer)
    : sock_(sock),
      registry_(registry),
      peer_(std::move(peer)),
      context_id_(g_next_context_id.fetch_add(1, std::memory_order_relaxed)) {
  if (registry_) rings_.SetBudget(&registry_->daemon_budget(), peer_.uid());
}

Session::~Session() {
  DropToken();
  FreeAll();
  ReleaseContext();
  if (vdev_ && !detached_) vdev_->open_contexts--;
  if (doorbell_fd_ >= 0) close(doorbell_fd_);
  if (async_fd_ >= 0) close(async_fd_);
  if (sock_ >= 0) close(sock_);
}

void Session::CloseConnection() {
  if (sock_ >= 0) close(sock_);
  sock_ = -1;
}

bool Session::Charge(Resource r, uint64_t n) {
  const size_t i = static_cast<size_t>(r);
  if (!vdev_->Charge(r, n)) {
    vdev_->stats.quota_refusals++;
    charge_error_ = ENOMEM;
    Log(LogLevel::kDebug, "quota_refused",
        absl::StrCat("vdev=", LogQuote(vdev_->name), " resource=", kResourceNames[i], " asked=", n,
                     " used=", vdev_->used[i], " quota=", vdev_->quota[i], " pid=", pid(),
                     " uid=", uid()));
    return false;
  }
  if (cgroup_charged_ && IsObjectResource(r)) {
    auto refusal =
        registry_->cgroup_limits().TryCharge(cgroup_, cgroup_dev_, CgroupResource::kHcaObject, n);
    if (refusal) {
      vdev_->Release(r, n);
      vdev_->stats.cgroup_refusals++;
      charge_error_ = EAGAIN;
      Log(LogLevel::kDebug, "cgroup_refused",
          absl::StrCat(
              "vdev=", LogQuote(cgroup_dev_), " resource=hca_object object=", kResourceNames[i],
              " cgroup=", LogQuote(cgroup_), " limit_at=", LogQuote(refusal->cgroup),
              " usage=", refusal->usage, " max=", refusal->limit, " pid=", pid(), " uid=", uid()));
      return false;
    }
  }
  used_[i] += n;
  return true;
}

void Session::Release(Resource r, uint64_t n) {
  vdev_->Release(r, n);
  uint64_t& u = used_[static_cast<size_t>(r)];
  u = u >= n ? u - n : 0;
  if (cgroup_charged_ && IsObjectResource(r)) {
    registry_->cgroup_limits().Uncharge(cgroup_, cgroup_dev_, CgroupResource::kHcaObject, n);
  }
}

uint64_t Session::RingBytes(size_t bytes) {
  static const uint64_t page = static_cast<uint64_t>(sysconf(_SC_PAGESIZE));
  return (uint64_t{bytes} + page - 1) / page * page;
}

int Session::ChargeContext(Vdev& vdev) {
  CgroupLimits& limits = registry_->cgroup_limits();
  // The cgroup the client is in now, read through its own /proc directory (never a PID
  // number); the kernel charges the cgroup of the task that creates each object, vrdmad
  // the one the process was in when it opened the device.
  std::optional<std::string> path;
  absl::StatusOr<int> fd = peer_.OpenProcFile("cgroup", O_RDONLY | O_CLOEXEC);
  if (fd.ok()) {
    std::string text;
    char buf[4096];
    ssize_t got;
    while (text.size() < (1 << 16) && (got = read(*fd, buf, sizeof buf)) > 0) {
      text.append(buf, static_cast<size_t>(got));
    }
    close(*fd);
    path = ParseProcCgroup(text);
  }
  if (!path) {
    // Unknown cgroup: nothing to enforce unless limits are configured, then refused
    // (a limit must not be escaped by making the cgroup unreadable).
    if (limits.empty()) return 0;
    vdev.stats.cgroup_refusals++;
    Log(LogLevel::kDebug, "cgroup_refused",
        absl::StrCat("vdev=", LogQuote(vdev.name), " resource=hca_handle reason=",
                     LogQuote(fd.ok() ? "no cgroup in /proc/PID/cgroup"
                                      : std::string(fd.status().message())),
                     " pid=", pid(), " uid=", uid()));
    return EACCES;
  }
  if (auto refusal = limits.TryCharge(*path, vdev.name, CgroupResource::kHcaHandle)) {
    vdev.stats.cgroup_refusals++;
    Log(LogLevel::kDebug, "cgroup_refused",
        absl::StrCat("vdev=", LogQuote(vdev.name), " resource=hca_handle cgroup=", LogQuote(*path),
                     " limit_at=", LogQuote(refusal->cgroup), " usage=", refusal->usage,
                     " max=", refusal->limit, " pid=", pid(), " uid=", uid()));
    return EAGAIN;
  }
  cgroup_charged_ = true;
  cgroup_ = *std::move(path);
  cgroup_dev_ = vdev.name;
  return 0;
}

void Session::ReleaseContext() {
  if (!cgroup_charged_) return;
  registry_->cgroup_limits().Uncharge(cgroup_, cgroup_dev_, CgroupResource::kHcaHandle);
  cgroup_charged_ = false;
}

// ---- dispatch -------------------------------------------------------------------------------

const Session::HandlerEntry* Session::FindHandler(uint16_t op) {
  using N = HandlerEntry::Needs;
  using Op = proto::Op;
  static const auto table = [] {
    std::array<HandlerEntry, proto::kLastVerbsOp + 1> t{};
    auto set = [&t](Op op, Handler h, N needs) {
      t[static_cast<size_t>(op)] = HandlerEntry{h, needs};
    };
    set(Op::kListDevices, &Session::ListDevices, N::kNothing);
    set(Op::kDescribeDevice, &Session::DescribeDevice, N::kNothing);
    set(Op::kOpenDevice, &Session::OpenDevice, N::kNoDevice);
    // A physical device is carved into vdevs, never used directly: a context on it may
    // only query; every verbs consumer gets its provisioning and isolation from a vdev.
    set(Op::kQueryDevice, &Session::QueryDevice, N::kAnyDevice);
    set(Op::kQueryPort, &Session::QueryPort, N::kAnyDevice);
    set(Op::kQueryGidTable, &Session::QueryGidTable, N::kAnyDevice);
    set(Op::kAllocPd, &Session::AllocPd, N::kVdev);
    set(Op::kDeallocPd, &Session::DeallocPd, N::kVdev);
    set(Op::kRegMr, &Session::RegMr, N::kVdev);
    set(Op::kDeregMr, &Session::DeregMr, N::kVdev);
    set(Op::kCreateCq, &Session::CreateCq, N::kVdev);
    set(Op::kResizeCq, &Session::ResizeCq, N::kVdev);
    set(Op::kDestroyCq, &Session::DestroyCq, N::kVdev);
    set(Op::kCreateSrq, &Session::CreateSrq, N::kVdev);
    set(Op::kModifySrq, &Session::ModifySrq, N::kVdev);
    set(Op::kQuerySrq, &Session::QuerySrq, N::kVdev);
    set(Op::kDestroySrq, &Session::DestroySrq, N::kVdev);
    set(Op::kCreateAh, &Session::CreateAh, N::kVdev);
    set(Op::kDestroyAh, &Session::DestroyAh, N::kVdev);
    set(Op::kCreateQp, &Session::CreateQp, N::kVdev);
    set(Op::kModifyQp, &Session::ModifyQp, N::kVdev);
    set(Op::kQueryQp, &Session::QueryQp, N::kVdev);
    set(Op::kDestroyQp, &Session::DestroyQp, N::kVdev);
    set(Op::kReregMr, &Session::ReregMr, N::kVdev);
    set(Op::kAllocDm, &Session::AllocDm, N::kVdev);
    set(Op::kFreeDm, &Session::FreeDm, N::kVdev);
    set(Op::kRegDmMr, &Session::RegDmMr, N::kVdev);
    set(Op::kAllocMw, &Session::AllocMw, N::kVdev);
    set(Op::kDeallocMw, &Session::DeallocMw, N::kVdev);
    set(Op::kAdviseMr, &Session::AdviseMr, N::kVdev);
    set(Op::kOpenXrcd, &Session::OpenXrcd, N::kVdev);
    set(Op::kCloseXrcd, &Session::CloseXrcd, N::kVdev);
    set(Op::kOpenQp, &Session::OpenQp, N::kVdev);
    set(Op::kImportContext, &Session::ImportContext, N::kNoDevice);
    set(Op::kImportObject, &Session::ImportObject, N::kVdev);
    set(Op::kCreateFlow, &Session::CreateFlow, N::kVdev);
    set(Op::kDestroyFlow, &Session::DestroyFlow, N::kVdev);
    set(Op::kModifyWq, &Session::ModifyWq, N::kVdev);
    set(Op::kCreateIndTable, &Session::CreateIndTable, N::kVdev);
    set(Op::kDestroyIndTable, &Session::DestroyIndTable, N::kVdev);
    set(Op::kAttachMcast, &Session::AttachMcast, N::kVdev);
    set(Op::kDetachMcast, &Session::DetachMcast, N::kVdev);
    return t;
  }();
  if (op >= table.size() || !table[op].handler) return nullptr;
  return &table[op];
}

template <typename Fn>
void Session::OnShared(Fn&& run) {
  Session& owner = *shared_;
  // The owner's own waiting request (if any) steps aside for this connection's.
  std::swap(owner.deferred_, deferred_);
  const Peer* was = owner.requester_;
  owner.requester_ = &peer_;
  run(owner);
  owner.requester_ = was;
  std::swap(owner.deferred_, deferred_);
}

void Session::HandleVerbs(proto::Message& msg, Reply* reply) {
  using N = HandlerEntry::Needs;
  const HandlerEntry* e = FindHandler(msg.header.op);
  bool open = vdev_ || pdev_;
  int err;
  if (shared_ && !detached_ && e && e->needs != N::kNothing && e->needs != N::kNoDevice) {
    // A context that joined another: the request is the other's objects'.
    OnShared([&](Session& owner) { owner.HandleVerbs(msg, reply); });
    return;
  }
  if (detached_) {
    err = EIO;  // the device went away under this context
  } else if (e && e->needs == N::kNothing) {
    err = (this->*e->handler)(msg, &reply->payload, &reply->fds);
  } else if (!open && (!e || e->needs != N::kNoDevice)) {
    err = ENODEV;  // every other request needs an open device
  } else if (pdev_ && (!e || e->needs != N::kAnyDevice)) {
    err = EOPNOTSUPP;
  } else if (!e) {
    err = EOPNOTSUPP;
  } else {
    err = (this->*e->handler)(msg, &reply->payload, &reply->fds);
  }
  reply->status = err;
  // Descriptors handed over go with the answer (they are the last ones a handler adds)
  // and are closed with it, sent or refused.
  for (int fd : handed_over_) {
    auto at = std::find(reply->fds.begin(), reply->fds.end(), fd);
    if (at != reply->fds.end()) reply->fds.erase(at);
    if (err) {
      close(fd);
    } else {
      reply->owned_fds.push_back(fd);
    }
  }
  handed_over_.clear();
  if (err == kReplyLater) return;
  if (err) {
    reply->payload.clear();
    reply->fds.clear();
    if (vdev_) vdev_->stats.bad_requests++;
    // Every refused verb is counted (bad_requests) and said, with why when the handler
    // said (Refuse): a context's first few at info level, where an administrator sees
    // them without asking, the rest at debug level (a client cannot flood the log).
    const LogLevel level = ++refusals_said_ <= kRefusalsAtInfo ? LogLevel::kInfo : LogLevel::kDebug;
    Log(level, "verb_refused",
        absl::StrCat("op=", OpName(msg.header.op), " errno=", ErrnoName(err),
                     refusal_.empty() ? "" : " why=", refusal_.empty() ? "" : LogQuote(refusal_),
                     " dev=", vdev_ ? vdev_->name : "-", " pid=", requester_->pid(),
                     " comm=", LogQuote(requester_->comm())));
  }
  refusal_.clear();
}

int Session::Defer(proto::Op op, std::unique_ptr<NeighbourQuery> query,
                   const driver::AddressVector& av) {
  deferred_ = std::make_unique<Deferred>();
  deferred_->op = op;
  deferred_->query = std::move(query);
  deferred_->av = av;
  return kReplyLater;
}

bool Session::ResumeVerbs(uint64_t now_ns, Reply* reply) {
  if (shared_ && !detached_) {
    bool done = false;
    OnShared([&](Session& owner) { done = owner.ResumeVerbs(now_ns, reply); });
    return done;
  }
  int err;
  if (!deferred_ || detached_) {
    err = EIO;  // the device went away while the request waited
  } else {
    std::optional<absl::StatusOr<driver::wire::MacAddr>> mac = deferred_->query->Poll(now_ns);
    if (!mac) return false;
    std::unique_ptr<Deferred> d = std::move(deferred_);
    if (!mac->ok()) {
      err = session_util::AddressErrno(mac->status());
    } else {
      d->av.dmac = **mac;
      err = d->op == proto::Op::kCreateAh ? FinishCreateAh(d->ah, d->av, &reply->payload)
                                          : FinishModifyQp(d->qp, &d->av);
    }
  }
  deferred_.reset();
  reply->status = err;
  if (err) {
    reply->payload.clear();
    reply->fds.clear();
    if (vdev_) vdev_->stats.bad_requests++;
  }
  return true;
}

// ---- data path ------------------------------------------------------------------------------

bool Session::NeedsPump() const {
  if (!context_ || !drain_ || detached_) return false;
  return drain_->pending() ||
         context_->doorbell.value.load(std::memory_order_acquire) != doorbell_seen_;
}

uint32_t Session::Pump(uint32_t budget) {
  if (!context_ || !drain_ || detached_) return 0;
  doorbell_seen_ = context_->doorbell.value.load(std::memory_order_acquire);
  uint32_t moved = drain_->Drain(budget);
  vdev_->stats.send_wqes += drained_.send_wqes;
  vdev_->stats.recv_wqes += drained_.recv_wqes;
  vdev_->stats.rejected_wqes += drained_.rejected_wqes;
  drained_ = DrainCounters{};
  return moved;
}

void Session::SetEngineSleeping(bool sleeping) {
  if (context_) context_->engine_sleeping.value.store(sleeping ? 1 : 0, std::memory_order_seq_cst);
}

bool Session::WriteAsync(uint64_t element, uint32_t event_type) {
  if (async_fd_ < 0) return false;
  struct {
    uint64_t element;
    uint32_t event_type;
    uint32_t reserved;
  } record{element, event_type, 0};  // struct ib_uverbs_async_event_desc
  // The client's provider writes DEVICE_FATAL itself when the daemon dies; this flag
  // tells it the daemon already did (one event, as the kernel gives), and makes posts
  // and polls on the context fail from now on.
  if (event_type == IBV_EVENT_DEVICE_FATAL && context_) {
    context_->device_fatal.value.store(1, std::memory_order_release);
  }
  // Never blocks (client_fd.h). A client that does not read its async events loses them,
  // nobody else does; the kernel queues them on a list and drops one when it cannot
  // allocate its entry (ib_uverbs_async_handler).
  if (vdev_) vdev_->stats.async_events++;
  return SendEventRecord(async_fd_, &record, sizeof record);
}

bool Session::DeliverEvent(const driver::AsyncEvent& e) {
  if (detached_) return false;
  switch (e.type) {
    case IBV_EVENT_CQ_ERR: {
      auto it = cqs_.find(e.element);
      if (it == cqs_.end()) return false;
      vdev_->stats.cq_overruns++;
      WriteAsync(it->second->user_handle(), e.type);
      return true;
    }
    case IBV_EVENT_SRQ_ERR:
    case IBV_EVENT_SRQ_LIMIT_REACHED: {
      auto it = srqs_.find(e.element);
      if (it == srqs_.end()) return false;
      WriteAsync(it->second.user_handle, e.type);
      return true;
    }
    case IBV_EVENT_PORT_ACTIVE:
    case IBV_EVENT_PORT_ERR:
    case IBV_EVENT_GID_CHANGE:
    case IBV_EVENT_DEVICE_FATAL:
      WriteAsync(e.element, e.type);
      return false;  // every context of the device hears about its port
    default: {
      auto it = qps_.find(e.element);
      if (it == qps_.end()) return false;
      if (WriteAsync(it->second.user_handle, e.type)) it->second.events_reported++;
      return true;
    }
  }
}

void Session::DeliverDeviceFatal() { WriteAsync(0, IBV_EVENT_DEVICE_FATAL); }

void Session::Detach() {
  if (detached_) return;
  deferred_.reset();  // a request waiting for its neighbour is answered EIO
  DeliverDeviceFatal();
  // As after the kernel disassociates a device: readers of the event channels get the
  // end of them (EOF) once they have read what is queued.
  if (async_fd_ >= 0) shutdown(async_fd_, SHUT_WR);
  for (auto& [cqn, cq] : cqs_) cq->ShutdownChannel();
  DropToken();
  FreeAll();
  ReleaseContext();
  if (vdev_) vdev_->open_contexts--;
  detached_ = true;
  // The vdev may be deleted next: nothing of this context refers to it any more.
  vdev_ = nullptr;
  pdev_ = nullptr;
  device_ = nullptr;
}

void Session::FreeAll() {
  if (!device_) return;
  if (drain_) drain_->Clear();
  for (auto& [h, qpn] : flows_) (void)device_->DestroyFlow(h);
  flows_.clear();
  for (auto& [qpn, qp] : qps_) (void)ReleaseQp(qpn, qp);
  qps_.clear();
  for (auto& [h, unused] : ind_tables_) (void)device_->DestroyRssTable(h);
  ind_tables_.clear();
  for (auto& [h, srq] : srqs_) {
    (void)device_->DestroySrq(h);
    Release(Resource::kRingBytes, srq.charged);
    Release(Resource::kSrq);
  }
  srqs_.clear();
  for (auto& [h, opens] : xrcds_) {
    for (; opens; --opens) (void)ReleaseXrcd(h, /*closing=*/true);
  }
  xrcds_.clear();
  for (auto& [h, pd] : ahs_) {
    (void)device_->DestroyAh(h);
    Release(Resource::kAh);
  }
  ahs_.clear();
  // Windows before MRs: an MR with a window bound cannot go.
  for (auto& [h, pd] : mws_) {
    (void)device_->DeallocMw(h);
    Release(Resource::kMr);
  }
  mws_.clear();
  for (auto& [lkey, mr] : mrs_) {
    (void)device_->DeregMr(lkey);
    if (mr.share) mr.share->Release();
    Release(Resource::kMrBytes, mr.bytes);
    Release(Resource::kMr);
  }
  mrs_.clear();
  for (auto& [h, dm] : dms_) Release(Resource::kRingBytes, RingBytes(dm.length));
  dms_.clear();
  for (auto& [cqn, cq] : cqs_) {
    (void)device_->AttachCqSink(cqn, nullptr, 0);
    (void)device_->DestroyCq(cqn);
    vdev_->stats.completions += cq->delivered();
    Release(Resource::kRingBytes, cq->region().size());
    Release(Resource::kCq);
  }
  cqs_.clear();
  for (auto& [pd, unused] : pds_) {
    (void)device_->DeallocPd(pd);
    Release(Resource::kPd);
  }
  pds_.clear();
}

// ---- introspection ------------------------------------------------------------------------

void Session::ListObjects(std::vector<ObjectInfo>* out) const {
  if (!device_ || detached_) return;
  std::unordered_map<uint32_t, uint32_t> pd_users, cq_users;
  for (const auto& [qpn, qp] : qps_) {
    ObjectInfo o;
    o.kind = Resource::kQp;
    o.id = qpn;
    o.pd = qp.pd;
    o.qp_type = qp.type;
    ibv_qp_attr attr{};
    driver::QpInitAttr init;
    if (device_->QueryQp(qpn, &attr, &init).ok()) {
      o.qp_state = attr.qp_state;
      o.dest_qpn = attr.dest_qp_num;
      o.sq_psn = attr.sq_psn;
      o.rq_psn = attr.rq_psn;
      cq_users[init.send_cq]++;
      if (init.recv_cq != init.send_cq) cq_users[init.recv_cq]++;
    }
    pd_users[qp.pd]++;
    out->push_back(o);
  }
  for (const auto& [lkey, mr] : mrs_) {
    const driver::MemoryRegion* m = device_->FindMr(lkey);
    ObjectInfo o;
    o.kind = Resource::kMr;
    o.id = lkey;
    o.lkey = lkey;
    o.length = mr.bytes;
    if (m) {
      o.rkey = m->rkey;
      o.pd = m->pd;
      pd_users[m->pd]++;
    }
    out->push_back(o);
  }
  for (const auto& [h, srq] : srqs_) {
    ObjectInfo o;
    o.kind = Resource::kSrq;
    o.id = h;
    const SrqRing* ring = drain_ ? drain_->FindSrq(h) : nullptr;
    o.cqe = ring ? ring->ring.depth : 0;
    out->push_back(o);
  }
  for (const auto& [h, pd] : ahs_) {
    ObjectInfo o;
    o.kind = Resource::kAh;
    o.id = h;
    o.pd = pd;
    pd_users[pd]++;
    out->push_back(o);
  }
  for (const auto& [cqn, cq] : cqs_) {
    ObjectInfo o;
    o.kind = Resource::kCq;
    o.id = cqn;
    o.cqe = cq->depth();
    o.users = cq_users[cqn];
    out->push_back(o);
  }
  for (const auto& [pd, unused] : pds_) {
    ObjectInfo o;
    o.kind = Resource::kPd;
    o.id = pd;
    o.pd = pd;
    o.users = pd_users[pd];
    out->push_back(o);
  }
}

}  // namespace vrdma::vdev
