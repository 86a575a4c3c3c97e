// Devices and contexts: the device list from the daemon, ibv_open_device/ibv_close_device,
// device and port queries.
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <string_view>

#include "vdev/provider/device_list.h"
#include "vdev/provider/provider.h"

namespace vrdma::provider {

int Rpc(ContextState& st, proto::Op op, const void* req, size_t len, proto::Message* reply,
        const int* fds, size_t nfds) {
  {
    // EOWNERDEAD: a process died in a request; its reply, if one came, went with it.
    if (pthread_mutex_lock(st.rpc_lock) == EOWNERDEAD) pthread_mutex_consistent(st.rpc_lock);
    int err = st.dead.load(std::memory_order_relaxed)
                  ? EIO
                  : proto::Call(st.sock, op, req, len, fds, nfds, reply);
    pthread_mutex_unlock(st.rpc_lock);
    if (st.dead.load(std::memory_order_relaxed)) return EIO;
    if (!err) return reply->header.status;
  }
  // The daemon is gone (or broke the protocol): this context is dead, like a device
  // after IBV_EVENT_DEVICE_FATAL. The watcher usually got there first.
  DisassociateContext(st);
  return EIO;
}

void* MapShared(int fd, size_t size, uint64_t offset) {
  void* p = mmap(nullptr, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, static_cast<off_t>(offset));
  close(fd);
  return p == MAP_FAILED ? nullptr : p;
}

void RingDoorbell(ContextState& st) {
  st.shm->doorbell.value.fetch_add(1, std::memory_order_seq_cst);
  if (st.shm->engine_sleeping.value.load(std::memory_order_seq_cst)) {
    uint64_t one = 1;
    ssize_t n = write(st.doorbell_fd, &one, sizeof one);
    (void)n;
  }
}

void FreeContextOp(ibv_context* ibctx) {
  VContext* c = ContextOf(ibctx);
  ContextState* st = c->state;
  if (st) {
    UnwatchContext(st);  // first: the watcher must not touch what is freed next
    if (st->shm) munmap(st->shm, st->shm_size);
    if (st->doorbell_fd >= 0) close(st->doorbell_fd);
    if (st->sock >= 0) close(st->sock);
    if (st->async_write_fd >= 0) close(st->async_write_fd);
    for (auto& [r, w] : st->channel_write_fds) {
      if (w >= 0) close(w);
    }
    munmap(st->rpc_lock, sizeof(pthread_mutex_t));
    for (auto& [qp, reported] : st->destroyed_qps) free(qp);
    delete st;
  }
  verbs_uninit_context(&c->vctx);  // closes async_fd
  free(c);
}

int QueryDeviceExOp(ibv_context* ctx, const ibv_query_device_ex_input*, ibv_device_attr_ex* attr,
                    size_t attr_size) {
  proto::QueryDeviceReply r;
  int err = RpcReply(StateOf(ctx), proto::Op::kQueryDevice, nullptr, 0, &r);
  if (err) return err;
  std::memset(attr, 0, attr_size);
  std::memcpy(attr, &r.attr, std::min(attr_size, sizeof r.attr));
  // The extended fields the caller's struct has room for (an older libibverbs passes a
  // shorter one): one port, however it is counted.
  if (attr_size >= offsetof(ibv_device_attr_ex, phys_port_cnt_ex) + sizeof attr->phys_port_cnt_ex) {
    attr->phys_port_cnt_ex = r.attr.phys_port_cnt;
  }
  if (attr_size >= offsetof(ibv_device_attr_ex, max_dm_size) + sizeof attr->max_dm_size) {
    attr->max_dm_size = proto::kMaxDmSize;
  }
  // On-demand paging, explicit: no registration is pinned, and the engine's accesses fault
  // pages in as they come, for every operation of every transport (SRQs too). Implicit
  // (whole address space) MRs are not offered: IBV_ODP_SUPPORT_IMPLICIT stays clear.
  if (attr_size >= offsetof(ibv_device_attr_ex, odp_caps) + sizeof attr->odp_caps) {
    constexpr uint32_t kAll = IBV_ODP_SUPPORT_SEND | IBV_ODP_SUPPORT_RECV | IBV_ODP_SUPPORT_WRITE |
                              IBV_ODP_SUPPORT_READ | IBV_ODP_SUPPORT_ATOMIC |
                              IBV_ODP_SUPPORT_SRQ_RECV;
    attr->odp_caps.general_caps = IBV_ODP_SUPPORT;
    attr->odp_caps.per_transport_caps.rc_odp_caps = kAll;
    attr->odp_caps.per_transport_caps.uc_odp_caps = IBV_ODP_SUPPORT_SEND | IBV_ODP_SUPPORT_RECV |
                                                    IBV_ODP_SUPPORT_WRITE |
                                                    IBV_ODP_SUPPORT_SRQ_RECV;
    attr->odp_caps.per_transport_caps.ud_odp_caps =
        IBV_ODP_SUPPORT_SEND | IBV_ODP_SUPPORT_RECV | IBV_ODP_SUPPORT_SRQ_RECV;
  }
  // XRC (its receives are always an SRQ's): every operation, as RC.
  if (attr_size >= offsetof(ibv_device_attr_ex, xrc_odp_caps) + sizeof attr->xrc_odp_caps) {
    attr->xrc_odp_caps = IBV_ODP_SUPPORT_SEND | IBV_ODP_SUPPORT_WRITE | IBV_ODP_SUPPORT_READ |
                         IBV_ODP_SUPPORT_ATOMIC | IBV_ODP_SUPPORT_SRQ_RECV;
  }
  // Completion timestamps: 64 bits of a 1 GHz clock (proto::kCqTimestamps).
  if (attr_size >= offsetof(ibv_device_attr_ex, hca_core_clock) + sizeof attr->hca_core_clock) {
    attr->completion_timestamp_mask = ~0ull;
    attr->hca_core_clock = 1000000;  // kHz
  }
  return 0;
}

// ibv_query_rt_values_ex: the device clock now, in the form mlx5 gives it (the raw count
// of ticks in tv_nsec, tv_sec 0). The device clock is CLOCK_MONOTONIC, read here. On
// return comp_mask says which of the values asked for were filled.
int QueryRtValuesOp(ibv_context*, ibv_values_ex* values) {
  uint32_t filled = 0;
  if (values->comp_mask & IBV_VALUES_MASK_RAW_CLOCK) {
    timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    values->raw_clock.tv_sec = 0;
    values->raw_clock.tv_nsec = static_cast<long>(ts.tv_sec * 1000000000ll + ts.tv_nsec);
    filled |= IBV_VALUES_MASK_RAW_CLOCK;
  }
  values->comp_mask = filled;
  return 0;
}

int QueryPortOp(ibv_context* ctx, uint8_t port, ibv_port_attr* attr) {
  proto::QueryPortRequest req{port};
  proto::QueryPortReply r;
  int err = RpcReply(StateOf(ctx), proto::Op::kQueryPort, &req, sizeof req, &r);
  if (err) return err;
  *attr = r.attr;
  return 0;
}

void AsyncEventOp(ibv_context*, ibv_async_event*) {}
void CqEventOp(ibv_cq*) {}

extern const verbs_context_ops kContextOps;

// A new context of `device`, or (with an ImportRequest) the context a token names joined
// on a connection of this process's own (ibv_import_device).
verbs_context* AllocContext(ibv_device* device, int cmd_fd, void* private_data) {
  if (cmd_fd >= 0) close(cmd_fd);
  const auto* import = static_cast<const ImportRequest*>(private_data);
  if (import && import->magic != ImportRequest::kMagic) import = nullptr;
  VDevice* dev = reinterpret_cast<VDevice*>(device);
  int sock = proto::ConnectToSocket(dev->socket_path);
  if (sock < 0) {
    errno = ENODEV;
    return nullptr;
  }
  // The async event channel: the application reads async[0] (libibverbs' async_fd), the
  // daemon sends on async[1]; our copy of async[1] is for the watcher (provider.h).
  int async[2];
  if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, async) != 0) {
    close(sock);
    return nullptr;
  }
  proto::OpenDeviceRequest req{};
  std::snprintf(req.name, sizeof req.name, "%s", dev->record.name);
  proto::Message reply;
  // Open: fds [0] the async channel. Import: and [1] the token of the context to join.
  const int send_fds[2] = {async[1], import ? import->token_fd : -1};
  int err = proto::Call(sock, import ? proto::Op::kImportContext : proto::Op::kOpenDevice, &req,
                        sizeof req, send_fds, import ? 2 : 1, &reply);
  proto::OpenDeviceReply r{};
  if (!err) err = reply.header.status;
  // A context of a vdev comes with its token (the cmd_fd); a pdev's (queries only) without.
  if (!err && (!reply.Copy(&r) || reply.fd_count() < 2 || reply.fd_count() > (import ? 2 : 3))) {
    err = EPROTO;
  }
  int token = import ? import->token_fd : (!err && reply.fd_count() == 3 ? reply.TakeFd(2) : -1);
  void* shm = nullptr;
  if (!err) {
    shm = MapShared(reply.TakeFd(0), r.context_shm_size);
    if (!shm) err = ENOMEM;
  }
  if (err) {
    if (!import && token >= 0) close(token);  // an importer's token stays the caller's
    close(async[0]);
    close(async[1]);
    close(sock);
    errno = err;
    return nullptr;
  }
  // The token is the context's cmd_fd, closed with it (verbs_uninit_context).
  auto* c = static_cast<VContext*>(_verbs_init_and_alloc_context(
      device, token, sizeof(VContext), reinterpret_cast<verbs_context*>(offsetof(VContext, vctx)),
      kRdmaDriverUnknown));
  if (!c) {
    munmap(shm, r.context_shm_size);
    close(async[0]);
    close(async[1]);
    close(sock);
    return nullptr;
  }
  void* lock_page = mmap(nullptr, sizeof(pthread_mutex_t), PROT_READ | PROT_WRITE,
                         MAP_SHARED | MAP_ANONYMOUS, -1, 0);
  if (lock_page == MAP_FAILED) {
    munmap(shm, r.context_shm_size);
    close(async[0]);
    close(async[1]);
    close(sock);
    verbs_uninit_context(&c->vctx);
    free(c);
    return nullptr;
  }
  auto* st = new ContextState();
  st->rpc_lock = static_cast<pthread_mutex_t*>(lock_page);
  pthread_mutexattr_t ma;
  pthread_mutexattr_init(&ma);
  pthread_mutexattr_setpshared(&ma, PTHREAD_PROCESS_SHARED);
  pthread_mutexattr_setrobust(&ma, PTHREAD_MUTEX_ROBUST);
  pthread_mutex_init(st->rpc_lock, &ma);
  pthread_mutexattr_destroy(&ma);
  st->sock = sock;
  st->shm = static_cast<proto::ContextShm*>(shm);
  st->shm_size = r.context_shm_size;
  st->doorbell_fd = reply.TakeFd(1);
  st->node_guid_be = r.node_guid;
  st->async_write_fd = async[1];
  c->state = st;
  c->vctx.context.async_fd = async[0];
  // One completion vector: every CQ's events come from the one engine (comp_vector must
  // be 0, ibv_create_cq(3)).
  c->vctx.context.num_comp_vectors = 1;
  verbs_set_ops(&c->vctx, &kContextOps);
  WatchContext(st);
  return &c->vctx;
}

bool ContextTokenVdev(int fd, char* name) {
  struct stat st {};
  if (fd < 0 || fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) return false;
  char link[64], target[256];
  std::snprintf(link, sizeof link, "/proc/self/fd/%d", fd);
  ssize_t n = readlink(link, target, sizeof target - 1);
  if (n <= 0) return false;
  target[n] = 0;
  // "/memfd:vrdma-context:NAME (deleted)"
  std::string_view t(target, static_cast<size_t>(n));
  std::string_view prefix = "/memfd:";
  std::string_view deleted = " (deleted)";
  if (!t.starts_with(prefix)) return false;
  t.remove_prefix(prefix.size());
  if (!t.starts_with(proto::kContextTokenPrefix)) return false;
  t.remove_prefix(std::strlen(proto::kContextTokenPrefix));
  if (t.ends_with(deleted)) t.remove_suffix(deleted.size());
  if (t.empty() || t.size() >= proto::kNameLen) return false;
  std::memcpy(name, t.data(), t.size());
  name[t.size()] = 0;
  return true;
}

void UninitDevice(verbs_device* vdev) { free(reinterpret_cast<VDevice*>(vdev)); }

const verbs_device_ops kDeviceOps = {
    .name = "vrdma",
    .match_min_abi_version = 0,
    .match_max_abi_version = 0,
    .match_table = nullptr,
    .static_providers = nullptr,
    .match_device = nullptr,
    .alloc_context = AllocContext,
    .import_context = nullptr,
    .alloc_device = nullptr,
    .uninit_device = UninitDevice,
};

bool IsVrdmaDevice(ibv_device* dev) { return dev && VerbsDeviceOf(dev)->ops == &kDeviceOps; }
bool IsVrdmaContext(ibv_context* ctx) { return ctx && IsVrdmaDevice(ctx->device); }

std::vector<DeviceListing> ListDevices() {
  std::vector<DeviceListing> out;
  const char* only = getenv(proto::kDeviceEnv);
  for (const std::string& path : proto::SocketPaths()) {
    int sock = proto::ConnectToSocket(path);
    if (sock < 0) continue;
    std::vector<proto::DeviceRecord> records;
    int err = proto::ListAllDevices(sock, &records);
    close(sock);
    if (err) continue;
    for (const proto::DeviceRecord& rec : records) {
      if (only && *only && std::strcmp(only, rec.name) != 0) continue;
      // The same name from a second daemon: the first one's device keeps it.
      bool taken = false;
      for (const DeviceListing& d : out) taken |= std::strcmp(d.record.name, rec.name) == 0;
      if (!taken) out.push_back(DeviceListing{rec, path});
    }
  }
  return out;
}

std::vector<ibv_device*> DiscoverDevices() {
  std::vector<ibv_device*> out;
  for (const DeviceListing& listing : ListDevices()) {
    const proto::DeviceRecord& rec = listing.record;
    auto* d = static_cast<VDevice*>(calloc(1, sizeof(VDevice)));
    if (!d) break;
    d->record = rec;
    std::snprintf(d->socket_path, sizeof d->socket_path, "%s", listing.socket_path.c_str());
    ibv_device& ib = d->vdev.device;
    ib.node_type = IBV_NODE_CA;
    ib.transport_type = IBV_TRANSPORT_IB;  // RoCE devices report the IB transport
    std::snprintf(ib.name, sizeof ib.name, "%s", rec.name);
    std::snprintf(ib.dev_name, sizeof ib.dev_name, "%s", rec.name);
    std::snprintf(ib.dev_path, sizeof ib.dev_path, "/sys/class/infiniband_verbs/%s", rec.name);
    std::snprintf(ib.ibdev_path, sizeof ib.ibdev_path, "/sys/class/infiniband/%s", rec.name);
    d->vdev.ops = &kDeviceOps;
    d->vdev.refcount = 1;  // the list's reference
    d->vdev.sysfs = nullptr;
    out.push_back(&ib);
  }
  return out;
}

}  // namespace vrdma::provider
