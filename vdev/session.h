// One client context (one ibv_context of one process) bound to one vdev: its control
// requests, its objects on the pdev's engine, and its shared rings.
//
// Everything the client sends is checked here: it can only name objects it created,
// only within its vdev's quotas, and its rings are read by copy.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <memory>
#include <string>
#include <unordered_map>
#include <vector>

#include "absl/status/status.h"
#include "driver/device.h"
#include "vdev/netdev/neighbour.h"
#include "vdev/object_info.h"
#include "vdev/peer.h"
#include "vdev/protocol/channel.h"
#include "vdev/registry.h"
#include "vdev/reply.h"
#include "vdev/rings/cq_ring.h"
#include "vdev/rings/doorbell_drain.h"
#include "vdev/shm/client_memory.h"
#include "vdev/shm/shared_region.h"
#include "vdev/shm/tx_share.h"

namespace vrdma::vdev {

// errno a verbs call returns for an engine status.
int ErrnoOf(const absl::Status& status, int failed_precondition = EINVAL);

class Session {
 public:
  Session(int sock, Registry* registry, Peer peer);
  ~Session();  // frees every object the client left behind
  Session(const Session&) = delete;
  Session& operator=(const Session&) = delete;

  int sock() const { return sock_; }
  int doorbell_fd() const { return doorbell_fd_; }
  Vdev* vdev() const { return vdev_; }
  const Peer& peer() const { return peer_; }
  pid_t pid() const { return peer_.pid(); }  // for logs: the number at connect time
  uid_t uid() const { return peer_.uid(); }
  const std::string& comm() const { return peer_.comm(); }
  const ResourceCounts& used() const { return used_; }
  // This connection's number among the daemon's, as RDMA netlink numbers contexts (ctxn).
  uint32_t context_id() const { return context_id_; }
  // Appends one record per object this context holds (for `vrdmactl res show qp|...`).
  void ListObjects(std::vector<ObjectInfo>* out) const;

  // Handles one verbs request (proto::Op kListDevices .. kLastVerbs) into *reply. A
  // request whose destination must be resolved through the kernel (CreateAh, ModifyQp
  // with an address vector) is answered later: reply->status is kReplyLater, and
  // ResumeVerbs gives the answer.
  void HandleVerbs(proto::Message& msg, Reply* reply);
  // The answer to the request HandleVerbs left waiting, once its neighbour resolved or
  // the time ran out (true, *reply filled); false while it waits. Does not block.
  bool ResumeVerbs(uint64_t now_ns, Reply* reply);
  bool waiting() const { return deferred_ != nullptr; }

  // Moves the WQEs the client posted into the engine, at most `budget` of them (the rest
  // wait for the next pump; DoorbellDrain). Returns how many moved.
  uint32_t Pump(uint32_t budget = UINT32_MAX);
  // True when a pump must run even without a new doorbell (the engine had no room, or the
  // budget ran out).
  bool NeedsPump() const;

  // An engine event for one of this session's objects is written to its async event
  // descriptor; false when the object is not this session's.
  bool DeliverEvent(const driver::AsyncEvent& event);
  // The device is going away (daemon shutdown, vdev deleted): IBV_EVENT_DEVICE_FATAL.
  void DeliverDeviceFatal();
  void SetEngineSleeping(bool sleeping);
  // Frees every object now (the vdev is being deleted); the connection stays until the
  // client closes it, and every further request fails with EIO.
  void Detach();

  // Shared contexts (session_import.cc). A context that joined another (ibv_import_device)
  // has no objects of its own: its requests run on the other's, as this connection's.
  Session* shared() const { return shared_; }
  // Contexts that joined this one and are still open. While there are any, this one's
  // objects outlive its own connection (Server::CloseSession), as a uverbs file outlives
  // the process that opened it while a dup of it is open elsewhere.
  uint32_t importers() const { return importers_; }
  void DropImporter() { --importers_; }
  // Its client went while importers remain: the socket is closed (sock() becomes -1),
  // the objects and the rings stay, and events for them have nowhere to go.
  void CloseConnection();

 private:
  struct QpObject {
    uint32_t pd = 0;
    int type = IBV_QPT_RC;
    uint64_t user_handle = 0;
    std::unique_ptr<SharedRegion> region;  // its rings, drained by drain_
    uint64_t charged = 0;                  // ring_bytes: the rings and the engine's queues
    bool opened = false;  // ibv_open_qp: an XRC receive QP this context did not create
    // Async events written for it: the client frees the QP once it has acknowledged
    // them (proto::DestroyQpReply).
    uint32_t events_reported = 0;
  };
  struct SrqObject {
    uint64_t user_handle = 0;
    std::unique_ptr<SharedRegion> region;  // its ring, drained by drain_
    uint64_t charged = 0;                  // ring_bytes: the ring and the engine's queue
    bool wq = false;                       // a receive work queue (ibv_create_wq)
  };
  struct MrObject {
    uint32_t lkey = 0;
    uint64_t bytes = 0;
    std::unique_ptr<ClientMemory> memory;  // or, for zero-copy transmit, in `share`
    TxShare* share = nullptr;
    bool read_only = false;  // some of its pages the client may not write
    uint32_t dm = 0;         // the device memory it lies on (RegDmMr), else 0
    DaemonCharge charge;     // the daemon's mappings its pages take
  };
  struct DmObject {
    uint64_t length = 0;
    std::unique_ptr<SharedRegion> region;
    uint32_t mrs = 0;  // MRs on it: it cannot be freed before them (EBUSY)
  };

  using Payload = std::vector<uint8_t>;
  using Fds = std::vector<int>;
  // One verbs request: fills the reply payload and descriptors, or returns an errno.
  using Handler = int (Session::*)(proto::Message& msg, Payload* out, Fds* fds);
  struct HandlerEntry {
    Handler handler = nullptr;
    // Who may call it: anyone, a context with no device yet, a context on a pdev or
    // a vdev (queries only), or a context on a vdev.
    enum class Needs : uint8_t { kNothing, kNoDevice, kAnyDevice, kVdev } needs = Needs::kVdev;
  };
  static const HandlerEntry* FindHandler(uint16_t op);

  // session_device.cc
  int ListDevices(proto::Message& msg, Payload* out, Fds* fds);
  int OpenDevice(proto::Message& msg, Payload* out, Fds* fds);
  int QueryDevice(proto::Message& msg, Payload* out, Fds* fds);
  int QueryPort(proto::Message& msg, Payload* out, Fds* fds);
  int DescribeDevice(proto::Message& msg, Payload* out, Fds* fds);
  int QueryGidTable(proto::Message& msg, Payload* out, Fds* fds);
  // session_mr.cc
  int RegMr(proto::Message& msg, Payload* out, Fds* fds);
  int DeregMr(proto::Message& msg, Payload* out, Fds* fds);
  int ReregMr(proto::Message& msg, Payload* out, Fds* fds);
  int AdviseMr(proto::Message& msg, Payload* out, Fds* fds);
  int AllocDm(proto::Message& msg, Payload* out, Fds* fds);
  int FreeDm(proto::Message& msg, Payload* out, Fds* fds);
  int RegDmMr(proto::Message& msg, Payload* out, Fds* fds);
  // session_mw.cc
  int AllocMw(proto::Message& msg, Payload* out, Fds* fds);
  int OpenXrcd(proto::Message& msg, Payload* out, Fds* fds);
  int OpenQp(proto::Message& msg, Payload* out, Fds* fds);
  // session_flow.cc
  int CreateFlow(proto::Message& msg, Payload* out, Fds* fds);
  int DestroyFlow(proto::Message& msg, Payload* out, Fds* fds);
  // 0, or EPERM (said and counted) unless the requester may have raw packet QPs.
  int CheckRawPacketPrivilege();
  bool QpHasFlows(uint32_t qpn) const;
  static constexpr size_t kMaxFlowsPerContext = 1024;
  // session_rss.cc
  int ModifyWq(proto::Message& msg, Payload* out, Fds* fds);
  int CreateIndTable(proto::Message& msg, Payload* out, Fds* fds);
  int DestroyIndTable(proto::Message& msg, Payload* out, Fds* fds);
  // The RSS part of a CreateQp (RxHashRequest after the request) into `init`: 0 or errno.
  int TakeRxHash(const proto::Message& msg, driver::QpInitAttr* init);
  static constexpr size_t kMaxIndTablesPerContext = 256;
  // session_mcast.cc
  int AttachMcast(proto::Message& msg, Payload* out, Fds* fds);
  int DetachMcast(proto::Message& msg, Payload* out, Fds* fds);
  // session_import.cc
  int ImportContext(proto::Message& msg, Payload* out, Fds* fds);
  int ImportObject(proto::Message& msg, Payload* out, Fds* fds);
  // The context's token (proto::OpenDeviceReply), made and listed in the vdev; 0 or errno.
  int MakeToken();
  void DropToken();
  // Runs `run(owner)` on the context this one joined, as this connection's request: its
  // registrations are this client's memory, and a request it defers is this connection's.
  template <typename Fn>
  void OnShared(Fn&& run);
  // Gives up this context's hold on QP `qpn`: the QP goes, unless it is an XRC receive QP
  // another context of the vdev still holds (created or opened).
  absl::Status ReleaseQp(uint32_t qpn, const QpObject& qp);
  int CloseXrcd(proto::Message& msg, Payload* out, Fds* fds);
  // Gives back one open of XRC domain `handle` (closing: the context is going, and a
  // domain still in use is kept rather than refused).
  int ReleaseXrcd(uint32_t handle, bool closing);
  // A new XRC domain of the engine, counted against the vdev.
  absl::StatusOr<uint32_t> NewXrcd();
  static constexpr size_t kMaxXrcdOpens = 64;      // open at once by one context
  static constexpr uint32_t kMaxXrcdPerVdev = 64;  // domains one vdev holds (the pdev: 4096)
  int DeallocMw(proto::Message& msg, Payload* out, Fds* fds);
  // The pages of a registration (the segments after a request of `header` bytes, their
  // fds), opened, checked and mapped: 0, or the errno to refuse with.
  struct RegistrationPages {
    uint64_t addr, length, page_base, page_length;
    uint32_t nsegments;
  };
  struct MappedPages {
    std::unique_ptr<ClientMemory> memory;
    bool read_only = false;
    DaemonCharge charge;  // the daemon's mappings it takes (daemon_budget.h)
  };
  int MapRegistration(proto::Message& msg, size_t header, const RegistrationPages& p,
                      MappedPages* out);
  // Zero-copy transmit from an MR's pages when the pdev's port takes chained frames.
  TxShare* ShareForTransmit(uint32_t lkey, std::unique_ptr<ClientMemory>* memory);
  // session_objects.cc
  int AllocPd(proto::Message& msg, Payload* out, Fds* fds);
  int DeallocPd(proto::Message& msg, Payload* out, Fds* fds);
  int CreateCq(proto::Message& msg, Payload* out, Fds* fds);
  int ResizeCq(proto::Message& msg, Payload* out, Fds* fds);
  int DestroyCq(proto::Message& msg, Payload* out, Fds* fds);
  int CreateSrq(proto::Message& msg, Payload* out, Fds* fds);
  int ModifySrq(proto::Message& msg, Payload* out, Fds* fds);
  int QuerySrq(proto::Message& msg, Payload* out, Fds* fds);
  int DestroySrq(proto::Message& msg, Payload* out, Fds* fds);
  int CreateAh(proto::Message& msg, Payload* out, Fds* fds);
  int FinishCreateAh(const proto::CreateAhRequest& req, const driver::AddressVector& av,
                     Payload* out);
  int DestroyAh(proto::Message& msg, Payload* out, Fds* fds);
  // The engine's address vector for `attr`. When its MAC must come from the interface's
  // neighbour table and is not there yet, *query is set to the resolution under way and
  // the vector's dmac is left for it to fill.
  absl::StatusOr<driver::AddressVector> TranslateAh(const ibv_ah_attr& attr,
                                                    std::unique_ptr<NeighbourQuery>* query) const;
  // session_qp.cc
  int CreateQp(proto::Message& msg, Payload* out, Fds* fds);
  int ModifyQp(proto::Message& msg, Payload* out, Fds* fds);
  int FinishModifyQp(const proto::ModifyQpRequest& req, const driver::AddressVector* av);
  int QueryQp(proto::Message& msg, Payload* out, Fds* fds);
  int DestroyQp(proto::Message& msg, Payload* out, Fds* fds);

  // Takes `n` of `r` from the vdev's quota and, for verbs objects, one hca_object per
  // object from the client's cgroup (cgroup_limits.h). False when refused: the refusal is
  // logged (debug) and counted, and ChargeError() is the errno to answer with (ENOMEM
  // for the quota, as a NIC at its limit; EAGAIN for a cgroup limit, as ib_uverbs).
  // The request answered later: what it was, and the resolution it waits for.
  struct Deferred {
    proto::Op op = proto::Op::kCreateAh;
    std::unique_ptr<NeighbourQuery> query;
    driver::AddressVector av;
    proto::CreateAhRequest ah{};
    proto::ModifyQpRequest qp{};
  };
  // Keeps `query` for the request being handled; its handler returns kReplyLater.
  int Defer(proto::Op op, std::unique_ptr<NeighbourQuery> query, const driver::AddressVector& av);

  bool Charge(Resource r, uint64_t n = 1);
  void Release(Resource r, uint64_t n = 1);
  int ChargeError() const { return charge_error_; }
  // A verb refused: why, for the debug log HandleVerbs writes (with the request and the
  // errno); returns `err`. Refused(status) takes the reason from a status (ErrnoOf).
  int Refuse(int err, std::string why) {
    refusal_ = std::move(why);
    return err;
  }
  int Refused(const absl::Status& status, int failed_precondition = EINVAL) {
    if (!status.ok()) refusal_ = std::string(status.message());
    return ErrnoOf(status, failed_precondition);
  }
  // The shared memory a ring of `bytes` takes (what SharedRegion::Create maps).
  static uint64_t RingBytes(size_t bytes);
  // Reads the client's cgroup through its own /proc directory and charges one hca_handle
  // of `vdev` to it; 0 or the errno to refuse the open with.
  int ChargeContext(Vdev& vdev);
  void ReleaseContext();
  void FreeAll();
  // True when the record reached the client's async descriptor.
  bool WriteAsync(uint64_t element, uint32_t event_type);

  int sock_;
  Registry* registry_;
  Peer peer_;
  uint32_t context_id_;
  // Whose request is being handled: peer_, or a context that joined this one (OnShared).
  // Registrations map its memory, privileges are its.
  const Peer* requester_ = &peer_;
  Session* shared_ = nullptr;  // the context this one joined (ibv_import_device)
  uint32_t importers_ = 0;     // contexts that joined this one, open
  int token_fd_ = -1;          // this context's token, listed in vdev_->context_tokens
  FileKey token_key_{};
  Vdev* vdev_ = nullptr;
  Pdev* pdev_ = nullptr;  // a context on a physical device: queries only
  driver::RoceDevice* device_ = nullptr;
  bool detached_ = false;
  std::unique_ptr<SharedRegion> context_shm_;
  // Where its QPs', CQs' and SRQs' rings are carved from: a mapping per 2 MiB, not per
  // ring. Each ring holds its chunk, so the rings may outlive the arena.
  RingArena rings_{"vrdma-rings"};
  proto::ContextShm* context_ = nullptr;
  int doorbell_fd_ = -1;
  int async_fd_ = -1;
  uint32_t doorbell_seen_ = 0;
  bool dma_warned_ = false;  // zero-copy transmit refused once: said in the log
  ResourceCounts used_{};
  int charge_error_ = ENOMEM;
  // Descriptors a handler gave up to its answer (HandOver): closed once it is sent.
  std::vector<int> handed_over_;
  // Passes `fd` with the answer and closes it after: a ring's memfd, which the client
  // maps and the daemon needs no more (it keeps its own mapping).
  void HandOver(Fds* fds, int fd) {
    fds->push_back(fd);
    handed_over_.push_back(fd);
  }
  std::string refusal_;  // why the request being handled was refused (Refuse)
  static constexpr uint32_t kRefusalsAtInfo = 8;
  uint32_t refusals_said_ = 0;  // verb_refused lines logged for this context
  // The client's cgroup and the vdev its hca_handle and hca_objects are charged to, once
  // ChargeContext succeeded.
  bool cgroup_charged_ = false;
  std::string cgroup_;
  std::string cgroup_dev_;
  DrainCounters drained_{};
  std::unique_ptr<DoorbellDrain> drain_;  // the WQE pump, once a device is open
  std::unique_ptr<Deferred> deferred_;    // at most one: clients send one request at a time

  std::unordered_map<uint32_t, uint32_t> pds_;  // handle -> 1
  std::unordered_map<uint32_t, MrObject> mrs_;
  std::unordered_map<uint32_t, DmObject> dms_;
  std::unordered_map<uint32_t, uint32_t> mws_;  // window handle -> pd
  uint32_t next_dm_ = 1;
  std::unordered_map<uint32_t, std::unique_ptr<CqRing>> cqs_;
  std::unordered_map<uint32_t, SrqObject> srqs_;
  std::unordered_map<uint32_t, uint32_t> xrcds_;  // XRC domain handle -> opens by this context
  std::unordered_map<uint32_t, uint32_t> ahs_;    // handle -> pd
  std::unordered_map<uint32_t, QpObject> qps_;
  std::unordered_map<uint32_t, uint32_t> flows_;       // flow rule handle -> its raw packet QP
  std::unordered_map<uint32_t, uint32_t> ind_tables_;  // RSS indirection table -> 1
};

}  // namespace vrdma::vdev
