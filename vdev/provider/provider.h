// The vrdma verbs provider: the objects it hands to libibverbs and the helpers its ops
// share. Built into libvrdma.so together with the interposer (interposer.cc).
//
// Control verbs are requests to vrdmad on the context's socket; the data path (post,
// poll, notify) works on rings in shared memory with no system call, except the
// doorbell eventfd when the daemon has said it sleeps.
#pragma once

#include <pthread.h>

#include <atomic>
#include <cstdint>
#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "vdev/protocol/channel.h"
#include "vdev/protocol/protocol.h"
#include "vdev/provider/verbs_abi.h"

namespace vrdma::provider {

struct VDevice {
  verbs_device vdev;  // must be first: libibverbs' ibv_device
  proto::DeviceRecord record;
  char socket_path[108];  // the daemon that has it (VRDMA_SOCKET may name several)
};

// Provider state of one context; libibverbs' verbs_context is embedded in VContext.
// Event channels (the async fd, each completion channel) are AF_UNIX SOCK_SEQPACKET
// socketpairs: the application reads one end, the daemon sends on the other, and the
// provider keeps its own copy of the daemon's end until the daemon goes away. Then the
// watcher (watcher.cc) sends IBV_EVENT_DEVICE_FATAL if the daemon did not, and closes
// those copies, so a reader blocked in ibv_get_cq_event sees EOF.
struct VQp;

struct ContextState {
  int sock = -1;
  // One request in flight on the context socket, across threads and across processes: a
  // child forked with the context uses it too (as a child shares the parent's uverbs
  // file on a kernel device; rdma-core's test_multi_process_alloc_dm), and replies must
  // reach the process that asked. A robust process-shared mutex in a page of its own
  // (MAP_SHARED|MAP_ANONYMOUS, shared with such children).
  pthread_mutex_t* rpc_lock = nullptr;
  proto::ContextShm* shm = nullptr;
  size_t shm_size = 0;
  int doorbell_fd = -1;
  int async_write_fd = -1;  // the daemon's end of the async socketpair; -1 once it is gone
  uint64_t node_guid_be = 0;
  std::atomic<bool> dead{false};  // the daemon went away: every request fails with EIO
  uint64_t watch_id = 0;          // this context's entry in the watcher (0: not watched)
  std::mutex channel_mutex;
  // Completion channel fd -> the daemon's end of its socketpair (-1 once the daemon is gone).
  std::map<int, int> channel_write_fds;
  // Destroyed QPs with async events the application has not acknowledged yet, and how
  // many the daemon reported: freed once acknowledged (objects.cc), or with the context.
  std::mutex destroyed_qps_mutex;
  std::vector<std::pair<VQp*, uint32_t>> destroyed_qps;
};

// The daemon's-death watcher (watcher.cc): one thread per process, started with the first
// context, polls each watched context's socket for a hangup.
void WatchContext(ContextState* st);
// After it returns the watcher never touches `st` again.
void UnwatchContext(ContextState* st);
// What the watcher does on a hangup (also when a request finds the daemon gone): marks
// the context dead (requests fail with EIO, posts with EIO, polls of an empty CQ < 0),
// sends IBV_EVENT_DEVICE_FATAL unless the daemon did, and closes the provider's copies of
// the daemon's ends of the event channels.
void DisassociateContext(ContextState& st);

// ibv_import_device (interposer.cc) opens the device through libibverbs with this as the
// provider's private data: AllocContext then joins the context whose token (its cmd_fd,
// proto::OpenDeviceReply) this is, instead of opening a new one.
struct ImportRequest {
  static constexpr uint64_t kMagic = 0x76726d612d696d70;  // "vrma-imp"
  uint64_t magic = kMagic;
  int token_fd = -1;
};
// The vdev a context token names (its memfd name, proto::kContextTokenPrefix), into
// name[proto::kNameLen]; false when `fd` is no vrdma context token. Only a hint: the
// daemon knows the token by the file it is.
bool ContextTokenVdev(int fd, char* name);

struct VContext {
  ContextState* state;
  verbs_context vctx;  // libibverbs' part; ibv_context is its last member
};

inline VContext* ContextOf(ibv_context* ctx) {
  return reinterpret_cast<VContext*>(reinterpret_cast<char*>(VerbsContextOf(ctx)) -
                                     offsetof(VContext, vctx));
}
inline ContextState& StateOf(ibv_context* ctx) { return *ContextOf(ctx)->state; }
// The context's device_fatal flag (proto::ContextShm): the data path's one relaxed load.
inline const std::atomic<uint32_t>* FatalFlagOf(ibv_context* ctx) {
  return &StateOf(ctx).shm->device_fatal.value;
}

struct VTd {
  ibv_td td;
  std::atomic<int> parents;  // parent domains on it: no dealloc before them (EBUSY)
};

// A protection domain, or a parent domain (domains.cc): then `protection` is the PD it
// stands for (its handle is that PD's, for every request) and `td` its thread domain.
struct VPd {
  ibv_pd pd;
  uint32_t handle;
  VPd* protection;
  VTd* td;
  std::atomic<int> parents;  // of a protection domain: parent domains on it (EBUSY)
};

struct VMr {
  verbs_mr vmr;
  uint32_t handle;
  std::vector<uint64_t> memfd_inodes;  // shared pages this MR holds (mr_share.h)
};

struct VAh {
  ibv_ah ah;
  uint32_t handle;
};

struct VCq {
  verbs_cq vcq;
  uint32_t handle;
  const std::atomic<uint32_t>* device_fatal;  // FatalFlagOf(context)
  pthread_spinlock_t lock;
  proto::CqShmHeader* header;
  proto::Cqe* cqes;
  size_t map_size;
  uint32_t depth;
  uint32_t consumed;
  uint32_t empty_polls;
  // ibv_cq_ex polling state: the CQE start_poll/next_poll made current.
  proto::Cqe current;
};

struct SendRing {
  proto::RingShmHeader* header;
  uint8_t* slots;
  uint32_t depth;
  uint32_t stride;
  uint32_t produced;
};

// Whether the WQE at `index` of a QP or SRQ ring keeps the queue within its depth: the
// WQEs posted and not yet retired by the device (RingShmHeader::retired, read into
// *retired) are fewer than the depth. A full-looking queue is read again once, since the
// device retires WQEs while the client posts.
inline bool SlotFree(const SendRing& ring, uint32_t index, uint32_t* retired) {
  if (index - *retired < ring.depth) return true;
  *retired = ring.header->retired.value.load(std::memory_order_acquire);
  return index - *retired < ring.depth;
}
inline bool RingHasRoom(const SendRing& ring, uint32_t* retired) {
  return SlotFree(ring, ring.produced, retired);
}
// The WQE slot of a ring's `index` (the depth is a power of two).
inline uint8_t* SlotAt(const SendRing& ring, uint32_t index) {
  return ring.slots + size_t{index & (ring.depth - 1)} * ring.stride;
}

struct VQp {
  verbs_qp vqp;
  uint32_t handle;
  const std::atomic<uint32_t>* device_fatal;  // FatalFlagOf(context)
  pthread_spinlock_t sq_lock;
  pthread_spinlock_t rq_lock;
  void* map;
  size_t map_size;
  SendRing sq;
  SendRing rq;
  uint32_t max_send_sge;
  uint32_t max_recv_sge;
  uint32_t max_inline;
  uint32_t sq_sig_all;
  // Created in a parent domain with a thread domain: the application posts to it from one
  // thread at a time (ibv_alloc_td(3)), so its queues go without locks, as on mlx5.
  bool single_threaded;
  // ibv_wr_* batch in progress: WQEs written at sq.produced + wr_count.
  uint32_t wr_count;
  int wr_error;
  proto::SendWqe* wr_current;
};

// The provider's objects from the verbs handles they begin with (verbs_qp, verbs_cq).
inline VQp* QpOf(ibv_qp* qp) { return reinterpret_cast<VQp*>(qp); }
inline VQp* QpOf(ibv_qp_ex* qpx) { return reinterpret_cast<VQp*>(qpx); }
inline VCq* CqOf(ibv_cq* cq) { return reinterpret_cast<VCq*>(cq); }
inline VCq* CqOf(ibv_cq_ex* cq) { return reinterpret_cast<VCq*>(cq); }

struct VSrq {
  verbs_srq vsrq;  // vsrq.srq is the ibv_srq; XRC SRQs fill its type, domain, CQ, number
  uint32_t handle;
  const std::atomic<uint32_t>* device_fatal;  // FatalFlagOf(context)
  pthread_spinlock_t lock;
  void* map;
  size_t map_size;
  SendRing ring;
  uint32_t max_sge;
};

// A verb that returns an object failing: errno set, nullptr returned.
template <typename T>
T* Fail(int err) {
  errno = err;
  return nullptr;
}

// A request on the context's socket; returns 0 or an errno (the reply's status).
int Rpc(ContextState& st, proto::Op op, const void* req, size_t len, proto::Message* reply,
        const int* fds = nullptr, size_t nfds = 0);
template <typename T>
int RpcReply(ContextState& st, proto::Op op, const void* req, size_t len, T* out,
             const int* fds = nullptr, size_t nfds = 0, proto::Message* keep = nullptr) {
  proto::Message reply;
  int err = Rpc(st, op, req, len, &reply, fds, nfds);
  if (err) return err;
  if (!reply.Copy(out)) return EPROTO;
  if (keep) *keep = std::move(reply);
  return 0;
}

// Thread and parent domains (domains.cc).
ibv_td* AllocTd(ibv_context* ctx, ibv_td_init_attr* attr);
int DeallocTd(ibv_td* td);
ibv_pd* AllocParentDomain(ibv_context* ctx, ibv_parent_domain_init_attr* attr);
// The parent domain's part of ibv_dealloc_pd: its result when the domains decide it (a
// parent domain freed: 0; a protection domain parent domains still use: EBUSY), nullopt
// when `pd` is a protection domain for the daemon to free.
std::optional<int> DeallocParentDomain(ibv_pd* pd);
// Whether a QP in `pd` is used by one thread at a time (a parent domain with a TD).
inline bool SingleThreaded(ibv_pd* pd) {
  const VPd* p = reinterpret_cast<const VPd*>(pd);
  return p->protection && p->td;
}
inline void LockSq(VQp* qp) {
  if (!qp->single_threaded) pthread_spin_lock(&qp->sq_lock);
}
inline void UnlockSq(VQp* qp) {
  if (!qp->single_threaded) pthread_spin_unlock(&qp->sq_lock);
}
inline void LockRq(VQp* qp) {
  if (!qp->single_threaded) pthread_spin_lock(&qp->rq_lock);
}
inline void UnlockRq(VQp* qp) {
  if (!qp->single_threaded) pthread_spin_unlock(&qp->rq_lock);
}

// Device memory (dm.cc).
ibv_dm* AllocDm(ibv_context* ctx, ibv_alloc_dm_attr* attr);
ibv_dm* ImportDm(ibv_context* ctx, uint32_t handle);
void UnimportDm(ibv_dm* dm);

// PDs and MRs of a shared context, by handle (imports.cc).
ibv_pd* ImportPd(ibv_context* ctx, uint32_t handle);
void UnimportPd(ibv_pd* pd);
ibv_mr* ImportMr(ibv_pd* pd, uint32_t handle);
void UnimportMr(ibv_mr* mr);

// Receive-side scaling (wq.cc): receive work queues, each an SRQ completing on its own CQ
// (NewSrq with `wq`), and their indirection tables.
ibv_srq* NewSrq(ibv_pd* pd, ibv_srq_attr* attr, ibv_xrcd* xrcd, ibv_cq* cq, bool wq);
int DestroySrq(ibv_srq* srq);
ibv_wq* CreateWq(ibv_context* ctx, ibv_wq_init_attr* attr);
int ModifyWq(ibv_wq* wq, ibv_wq_attr* attr);
int DestroyWq(ibv_wq* wq);
ibv_rwq_ind_table* CreateRwqIndTable(ibv_context* ctx, ibv_rwq_ind_table_init_attr* attr);
int DestroyRwqIndTable(ibv_rwq_ind_table* table);

// Multicast groups of UD QPs (mcast.cc).
int AttachMcast(ibv_qp* qp, const ibv_gid* gid, uint16_t lid);
int DetachMcast(ibv_qp* qp, const ibv_gid* gid, uint16_t lid);

// Flow steering rules of raw packet QPs (flows.cc).
ibv_flow* CreateFlow(ibv_qp* qp, ibv_flow_attr* attr);
int DestroyFlow(ibv_flow* flow);
int FreeDm(ibv_dm* dm);
ibv_mr* RegDmMr(ibv_pd* pd, ibv_dm* dm, uint64_t offset, size_t length, unsigned int access);

// ibv_advise_mr (mr_advise.cc).
int AdviseMr(ibv_pd* pd, ibv_advise_mr_advice advice, uint32_t flags, ibv_sge* sg_list,
             uint32_t num_sge);

// Memory windows (mw.cc).
ibv_mw* AllocMw(ibv_pd* pd, ibv_mw_type type);
int DeallocMw(ibv_mw* mw);
int BindMw(ibv_qp* qp, ibv_mw* mw, ibv_mw_bind* bind);

// Maps `size` bytes from `offset` of a shared region the daemon sent, and closes `fd`;
// nullptr on failure.
void* MapShared(int fd, size_t size, uint64_t offset = 0);
// Rings the doorbell after producer indexes moved.
void RingDoorbell(ContextState& st);

// Ops (device.cc, objects.cc, datapath.cc, wr_api.cc).
extern const verbs_device_ops kDeviceOps;
extern const verbs_context_ops kContextOps;
bool IsVrdmaContext(ibv_context* ctx);
bool IsVrdmaDevice(ibv_device* dev);
void InstallWrOps(VQp* qp, uint64_t send_ops_flags);

int PostSend(ibv_qp* qp, ibv_send_wr* wr, ibv_send_wr** bad);
int PostRecv(ibv_qp* qp, ibv_recv_wr* wr, ibv_recv_wr** bad);
int PostSrqRecv(ibv_srq* srq, ibv_recv_wr* wr, ibv_recv_wr** bad);
int PollCq(ibv_cq* cq, int n, ibv_wc* wc);
// Removes the completions of QP `qp_num` not yet polled from `cq`, keeping the others in
// order: what a QP's move to RESET does to its CQs on mlx5 (mlx5_cq_clean), so that an
// application restarting a QP polls only what the restarted QP completes.
void CleanCq(ibv_cq* cq, uint32_t qp_num);
int ReqNotifyCq(ibv_cq* cq, int solicited_only);
void InstallCqExOps(VCq* cq, uint64_t wc_flags);

}  // namespace vrdma::provider
