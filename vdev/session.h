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
#include "driver/transport/device.h"
#include "vdev/protocol/channel.h"
#include "vdev/object_info.h"
#include "vdev/registry.h"
#include "vdev/rings/cq_ring.h"
#include "vdev/rings/wqe_parse.h"
#include "vdev/rings/wqe_rings.h"
#include "vdev/shm/client_memory.h"
#include "vdev/shm/shared_region.h"

namespace vrdma {

class Session {
 public:
  Session(int sock, Registry* registry, pid_t pid, uid_t uid);
  ~Session();  // frees every object the client left behind
  Session(const Session&) = delete;
  Session& operator=(const Session&) = delete;

  int sock() const { return sock_; }
  int doorbell_fd() const { return doorbell_fd_; }
  Vdev* vdev() const { return vdev_; }
  pid_t pid() const { return pid_; }
  uid_t uid() const { return uid_; }
  const std::string& comm() const { return comm_; }
  const ResourceCounts& used() const { return used_; }
  // Appends one record per object this context holds (for `vrdmactl res show qp|...`).
  void ListObjects(std::vector<ObjectInfo>* out) const;

  // Handles one client request and sends the reply. False: close the connection.
  bool Handle(proto::Message& msg);

  // Moves the WQEs the client posted into the engine. Returns how many moved.
  uint32_t Pump();
  // True when a pump must run even without a new doorbell (the engine had no room).
  bool NeedsPump() const;

  // An engine event for one of this session's objects is written to its async event
  // descriptor; false when the object is not this session's.
  bool DeliverEvent(const AsyncEvent& event);
  // The device is going away (daemon shutdown, vdev deleted): IBV_EVENT_DEVICE_FATAL.
  void DeliverDeviceFatal();
  void SetEngineSleeping(bool sleeping);
  // Frees every object now (the vdev is being deleted); the connection stays until the
  // client closes it, and every further request fails with EIO.
  void Detach();

 private:
  struct QpObject {
    uint32_t qpn = 0;
    uint32_t pd = 0;
    int type = IBV_QPT_RC;
    uint64_t user_handle = 0;
    std::unique_ptr<SharedRegion> region;
    RingView sq, rq;
    SendQueueLimits send_limits;
    uint32_t max_recv_sge = 0;
    bool broken = false;  // the client corrupted a ring index: the QP is in error
  };
  struct SrqObject {
    uint32_t handle = 0;
    uint64_t user_handle = 0;
    std::unique_ptr<SharedRegion> region;
    RingView ring;
    uint32_t max_sge = 0;
    bool broken = false;
  };
  struct MrObject {
    uint32_t lkey = 0;
    uint64_t bytes = 0;
    std::unique_ptr<ClientMemory> memory;  // or, for zero-copy transmit, in `share`
    TxShare* share = nullptr;
  };

  using Reply = std::vector<uint8_t>;
  // Each handler fills the reply payload and fds, or returns an errno.
  int ListDevices(Reply* out);
  int OpenDevice(proto::Message& msg, Reply* out, std::vector<int>* fds);
  int QueryDevice(Reply* out);
  int QueryPort(proto::Message& msg, Reply* out);
  int QueryGidTable(Reply* out);
  int AllocPd(Reply* out);
  int DeallocPd(proto::Message& msg);
  int RegMr(proto::Message& msg, Reply* out);
  int DeregMr(proto::Message& msg);
  int CreateCq(proto::Message& msg, Reply* out, std::vector<int>* fds);
  int ResizeCq(proto::Message& msg, Reply* out, std::vector<int>* fds);
  int DestroyCq(proto::Message& msg);
  int CreateSrq(proto::Message& msg, Reply* out, std::vector<int>* fds);
  int ModifySrq(proto::Message& msg);
  int QuerySrq(proto::Message& msg, Reply* out);
  int DestroySrq(proto::Message& msg);
  int CreateAh(proto::Message& msg, Reply* out);
  int DestroyAh(proto::Message& msg);
  int CreateQp(proto::Message& msg, Reply* out, std::vector<int>* fds);
  int ModifyQp(proto::Message& msg);
  int QueryQp(proto::Message& msg, Reply* out);
  int DestroyQp(proto::Message& msg);

  absl::StatusOr<AddressVector> TranslateAh(const ibv_ah_attr& attr) const;
  bool Charge(Resource r, uint64_t n = 1);
  void Release(Resource r, uint64_t n = 1);
  void PumpQp(QpObject& qp);
  void PumpSrq(SrqObject& srq);
  void FreeAll();
  void WriteAsync(uint64_t element, uint32_t event_type);

  int sock_;
  Registry* registry_;
  pid_t pid_;
  uid_t uid_;
  std::string comm_;
  Vdev* vdev_ = nullptr;
  Pdev* pdev_ = nullptr;  // a context on a physical device: queries only
  Device* device_ = nullptr;
  bool detached_ = false;
  std::unique_ptr<SharedRegion> context_shm_;
  proto::ContextShm* context_ = nullptr;
  int doorbell_fd_ = -1;
  int async_fd_ = -1;
  uint32_t doorbell_seen_ = 0;
  bool pump_pending_ = false;
  bool dma_warned_ = false;  // zero-copy transmit refused once: said in the log
  ResourceCounts used_{};

  std::unordered_map<uint32_t, uint32_t> pds_;  // handle -> 1
  std::unordered_map<uint32_t, MrObject> mrs_;
  std::unordered_map<uint32_t, std::unique_ptr<CqRing>> cqs_;
  std::unordered_map<uint32_t, SrqObject> srqs_;
  std::unordered_map<uint32_t, uint32_t> ahs_;  // handle -> pd
  std::unordered_map<uint32_t, QpObject> qps_;
};

// errno a verbs call returns for an engine status.
int ErrnoOf(const absl::Status& status, int failed_precondition = EINVAL);

}  // namespace vrdma
