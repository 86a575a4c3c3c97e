// The interposer: the few libibverbs entry points that would go to the kernel (sysfs or
// a uverbs command) answered for vrdma devices, and passed to libibverbs for any other.
// Loaded with LD_PRELOAD (vrdma-run); each symbol carries the version node libibverbs
// exports it under (libvrdma.map), so applications bind to it unmodified.
//
// In libibverbs 44 those entry points are: the device list; GID, P_Key and GUID queries
// (ioctl, then sysfs); completion channels (a kernel command); ibv_init_ah_from_wc,
// which looks GIDs up internally; and ibv_import_device, which wants a uverbs character
// device where a vrdma context's cmd_fd is its token (a memfd, proto::OpenDeviceReply). Completion
// and async events need nothing: the daemon writes the kernel's event records into descriptors
// libibverbs read()s.
#include <arpa/inet.h>
#include <dlfcn.h>
#include <fcntl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <map>
#include <mutex>

#include "vdev/provider/ah_from_grh.h"
#include "vdev/provider/device_list.h"
#include "vdev/provider/provider.h"
#include "vdev/provider/sysfs_view.h"

using vrdma::provider::ContextState;
using vrdma::provider::IsVrdmaContext;
using vrdma::provider::IsVrdmaDevice;
using vrdma::provider::StateOf;
using vrdma::provider::VDevice;

namespace {

template <typename Fn>
Fn Real(const char* name, const char* version) {
  return reinterpret_cast<Fn>(dlvsym(RTLD_NEXT, name, version));
}

std::mutex g_lists_mutex;
// Lists we returned -> the list libibverbs returned for its own devices.
std::map<ibv_device**, ibv_device**>* g_lists = new std::map<ibv_device**, ibv_device**>;

int GidTable(ibv_context* ctx, uint8_t port, vrdma::proto::QueryGidTableReply* out) {
  if (port != 1) return EINVAL;
  return vrdma::provider::RpcReply(StateOf(ctx), vrdma::proto::Op::kQueryGidTable, nullptr, 0, out);
}

void PutDevice(ibv_device* dev) {
  verbs_device* vd = VerbsDeviceOf(dev);
  if (__atomic_sub_fetch(&vd->refcount, 1, __ATOMIC_SEQ_CST) == 0) vd->ops->uninit_device(vd);
}

}  // namespace

extern "C" {

__attribute__((visibility("default"))) ibv_device** ibv_get_device_list(int* num) {
  using Fn = ibv_device** (*)(int*);
  static Fn real = Real<Fn>("ibv_get_device_list", "IBVERBS_1.1");
  int real_n = 0;
  ibv_device** real_list = nullptr;
  {
    // libibverbs scans the kernel's sysfs and RDMA netlink: our devices are not its to
    // find there.
    vrdma::provider::RealKernelScope kernel_sysfs;
    real_list = real ? real(&real_n) : nullptr;
  }
  if (!real_list) real_n = 0;
  std::vector<ibv_device*> ours = vrdma::provider::DiscoverDevices();
  size_t total = ours.size() + static_cast<size_t>(real_n);
  auto** list = static_cast<ibv_device**>(calloc(total + 1, sizeof(ibv_device*)));
  if (!list) {
    for (ibv_device* d : ours) PutDevice(d);
    errno = ENOMEM;
    return nullptr;
  }
  size_t i = 0;
  for (ibv_device* d : ours) list[i++] = d;
  for (int j = 0; j < real_n; ++j) list[i++] = real_list[j];
  {
    std::lock_guard<std::mutex> lock(g_lists_mutex);
    (*g_lists)[list] = real_list;
  }
  if (num) *num = static_cast<int>(total);
  return list;
}

__attribute__((visibility("default"))) void ibv_free_device_list(ibv_device** list) {
  using Fn = void (*)(ibv_device**);
  static Fn real = Real<Fn>("ibv_free_device_list", "IBVERBS_1.1");
  ibv_device** real_list = nullptr;
  {
    std::lock_guard<std::mutex> lock(g_lists_mutex);
    auto it = g_lists->find(list);
    if (it == g_lists->end()) {
      if (real) real(list);
      return;
    }
    real_list = it->second;
    g_lists->erase(it);
  }
  for (ibv_device** d = list; *d; ++d) {
    if (IsVrdmaDevice(*d)) PutDevice(*d);
  }
  if (real_list && real) real(real_list);
  free(list);
}

__attribute__((visibility("default"))) ibv_context* ibv_import_device(int cmd_fd) {
  char name[vrdma::proto::kNameLen];
  if (!vrdma::provider::ContextTokenVdev(cmd_fd, name)) {
    using Fn = ibv_context* (*)(int);
    static Fn real = Real<Fn>("ibv_import_device", "IBVERBS_1.10");
    if (real) return real(cmd_fd);
    errno = EOPNOTSUPP;
    return nullptr;
  }
  // Opened as ibv_open_device opens it (libibverbs sets up its own part of the context),
  // with the token for the provider: it joins that context on a connection of its own.
  std::vector<ibv_device*> ours = vrdma::provider::DiscoverDevices();
  ibv_context* ctx = nullptr;
  int err = ENODEV;
  for (ibv_device* d : ours) {
    if (std::strcmp(d->name, name) != 0) continue;
    vrdma::provider::ImportRequest req;
    req.token_fd = cmd_fd;
    ctx = verbs_open_device(d, &req);
    err = ctx ? 0 : errno;
    break;
  }
  for (ibv_device* d : ours) PutDevice(d);  // the context holds its device
  if (!ctx) errno = err;
  return ctx;
}

__attribute__((visibility("default"))) __be64 ibv_get_device_guid(ibv_device* device) {
  if (IsVrdmaDevice(device)) return reinterpret_cast<VDevice*>(device)->record.node_guid;
  using Fn = __be64 (*)(ibv_device*);
  static Fn real = Real<Fn>("ibv_get_device_guid", "IBVERBS_1.1");
  return real ? real(device) : 0;
}

__attribute__((visibility("default"))) int ibv_query_gid(ibv_context* ctx, uint8_t port, int index,
                                                         ibv_gid* gid) {
  if (!IsVrdmaContext(ctx)) {
    using Fn = int (*)(ibv_context*, uint8_t, int, ibv_gid*);
    static Fn real = Real<Fn>("ibv_query_gid", "IBVERBS_1.1");
    return real ? real(ctx, port, index, gid) : -1;
  }
  vrdma::proto::QueryGidTableReply t;
  int err = GidTable(ctx, port, &t);
  if (!err && (index < 0 || static_cast<uint32_t>(index) >= t.count)) err = EINVAL;
  if (err) {
    errno = err;
    return -1;
  }
  // An empty entry reads as the zero GID (libibverbs' own behaviour).
  std::memcpy(gid->raw, t.entries[index].gid, 16);
  if (!t.entries[index].valid) std::memset(gid->raw, 0, 16);
  return 0;
}

__attribute__((visibility("default"))) int _ibv_query_gid_ex(ibv_context* ctx, uint32_t port,
                                                             uint32_t index, ibv_gid_entry* entry,
                                                             uint32_t flags, size_t entry_size) {
  if (!IsVrdmaContext(ctx)) {
    using Fn = int (*)(ibv_context*, uint32_t, uint32_t, ibv_gid_entry*, uint32_t, size_t);
    static Fn real = Real<Fn>("_ibv_query_gid_ex", "IBVERBS_1.11");
    return real ? real(ctx, port, index, entry, flags, entry_size) : EOPNOTSUPP;
  }
  if (flags || entry_size < sizeof(ibv_gid_entry) || port > 255) return EINVAL;
  vrdma::proto::QueryGidTableReply t;
  if (int err = GidTable(ctx, static_cast<uint8_t>(port), &t)) return err;
  if (index >= t.count) return EINVAL;
  if (!t.entries[index].valid) return ENODATA;
  std::memset(entry, 0, entry_size);
  std::memcpy(entry->gid.raw, t.entries[index].gid, 16);
  entry->gid_index = index;
  entry->port_num = port;
  entry->gid_type = t.entries[index].type;
  entry->ndev_ifindex = t.entries[index].ndev_ifindex;
  return 0;
}

__attribute__((visibility("default"))) ssize_t _ibv_query_gid_table(ibv_context* ctx,
                                                                    ibv_gid_entry* entries,
                                                                    size_t max_entries,
                                                                    uint32_t flags,
                                                                    size_t entry_size) {
  if (!IsVrdmaContext(ctx)) {
    using Fn = ssize_t (*)(ibv_context*, ibv_gid_entry*, size_t, uint32_t, size_t);
    static Fn real = Real<Fn>("_ibv_query_gid_table", "IBVERBS_1.11");
    return real ? real(ctx, entries, max_entries, flags, entry_size) : -EOPNOTSUPP;
  }
  if (flags || entry_size < sizeof(ibv_gid_entry)) return -EINVAL;
  vrdma::proto::QueryGidTableReply t;
  if (int err = GidTable(ctx, 1, &t)) return -err;
  size_t n = 0;
  for (uint32_t i = 0; i < t.count && i < vrdma::proto::kMaxGids; ++i) {
    if (!t.entries[i].valid) continue;
    if (n == max_entries) return -EINVAL;  // the table does not fit
    auto* e = reinterpret_cast<ibv_gid_entry*>(reinterpret_cast<char*>(entries) + n * entry_size);
    std::memset(e, 0, entry_size);
    std::memcpy(e->gid.raw, t.entries[i].gid, 16);
    e->gid_index = i;
    e->port_num = 1;
    e->gid_type = t.entries[i].type;
    e->ndev_ifindex = t.entries[i].ndev_ifindex;
    ++n;
  }
  return static_cast<ssize_t>(n);
}

// enum ibv_gid_type_sysfs (driver.h): 0 IB/RoCEv1, 1 RoCEv2.
__attribute__((visibility("default"))) int ibv_query_gid_type(ibv_context* ctx, uint8_t port,
                                                              unsigned int index, int* type) {
  if (!IsVrdmaContext(ctx)) {
    using Fn = int (*)(ibv_context*, uint8_t, unsigned int, int*);
    static Fn real = Real<Fn>("ibv_query_gid_type", "IBVERBS_PRIVATE_34");
    return real ? real(ctx, port, index, type) : -1;
  }
  vrdma::proto::QueryGidTableReply t;
  int err = GidTable(ctx, port, &t);
  if (!err && index >= t.count) err = EINVAL;
  if (err) {
    errno = err;
    return -1;
  }
  *type = t.entries[index].valid && t.entries[index].type == IBV_GID_TYPE_ROCE_V2 ? 1 : 0;
  return 0;
}

__attribute__((visibility("default"))) int ibv_query_pkey(ibv_context* ctx, uint8_t port, int index,
                                                          __be16* pkey) {
  if (!IsVrdmaContext(ctx)) {
    using Fn = int (*)(ibv_context*, uint8_t, int, __be16*);
    static Fn real = Real<Fn>("ibv_query_pkey", "IBVERBS_1.1");
    return real ? real(ctx, port, index, pkey) : -1;
  }
  // One P_Key, the default full-membership 0xffff (RoCE, IBTA A16.4).
  if (port != 1 || index != 0) {
    errno = EINVAL;
    return -1;
  }
  *pkey = htons(0xffff);
  return 0;
}

__attribute__((visibility("default"))) ibv_comp_channel* ibv_create_comp_channel(ibv_context* ctx) {
  if (!IsVrdmaContext(ctx)) {
    using Fn = ibv_comp_channel* (*)(ibv_context*);
    static Fn real = Real<Fn>("ibv_create_comp_channel", "IBVERBS_1.0");
    return real ? real(ctx) : nullptr;
  }
  auto* ch = static_cast<ibv_comp_channel*>(malloc(sizeof(ibv_comp_channel)));
  if (!ch) return nullptr;
  // The application reads fds[0]; the daemon gets fds[1] with each CQ on this channel,
  // and the provider keeps fds[1] until the daemon goes away (provider.h).
  int fds[2];
  if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, fds) != 0) {
    free(ch);
    return nullptr;
  }
  ch->context = ctx;
  ch->fd = fds[0];
  ch->refcnt = 0;
  ContextState& st = StateOf(ctx);
  std::lock_guard<std::mutex> lock(st.channel_mutex);
  st.channel_write_fds[fds[0]] = fds[1];
  return ch;
}

__attribute__((visibility("default"))) int ibv_destroy_comp_channel(ibv_comp_channel* ch) {
  if (!IsVrdmaContext(ch->context)) {
    using Fn = int (*)(ibv_comp_channel*);
    static Fn real = Real<Fn>("ibv_destroy_comp_channel", "IBVERBS_1.0");
    return real ? real(ch) : EINVAL;
  }
  ibv_context* ctx = ch->context;
  pthread_mutex_lock(&ctx->mutex);
  if (ch->refcnt) {
    pthread_mutex_unlock(&ctx->mutex);
    return EBUSY;
  }
  ContextState& st = StateOf(ctx);
  {
    std::lock_guard<std::mutex> lock(st.channel_mutex);
    auto it = st.channel_write_fds.find(ch->fd);
    if (it != st.channel_write_fds.end()) {
      if (it->second >= 0) close(it->second);
      st.channel_write_fds.erase(it);
    }
  }
  close(ch->fd);
  free(ch);
  pthread_mutex_unlock(&ctx->mutex);
  return 0;
}

__attribute__((visibility("default"))) int ibv_init_ah_from_wc(ibv_context* ctx, uint8_t port,
                                                               ibv_wc* wc, ibv_grh* grh,
                                                               ibv_ah_attr* ah) {
  if (!IsVrdmaContext(ctx)) {
    using Fn = int (*)(ibv_context*, uint8_t, ibv_wc*, ibv_grh*, ibv_ah_attr*);
    static Fn real = Real<Fn>("ibv_init_ah_from_wc", "IBVERBS_1.1");
    return real ? real(ctx, port, wc, grh, ah) : -1;
  }
  std::memset(ah, 0, sizeof *ah);
  ah->dlid = wc->slid;
  ah->sl = wc->sl;
  ah->src_path_bits = wc->dlid_path_bits;
  ah->port_num = port;
  if (!(wc->wc_flags & IBV_WC_GRH)) return 0;
  // RoCEv2 over IPv4 puts the IPv4 header in the last 20 bytes of the 40-byte GRH area.
  vrdma::provider::GrhAddresses addr = vrdma::provider::AddressesOfGrh(grh);
  ah->grh.traffic_class = addr.traffic_class;
  ah->grh.flow_label = addr.flow_label;
  ah->is_global = 1;
  ah->grh.hop_limit = 0xff;
  std::memcpy(ah->grh.dgid.raw, addr.sgid, 16);
  vrdma::proto::QueryGidTableReply t;
  if (int err = GidTable(ctx, port, &t)) {
    errno = err;
    return -1;
  }
  // Our GID the packet was sent to, preferring a RoCEv2 entry.
  int found = vrdma::provider::FindGidIndex(t, addr.dgid);
  if (found < 0) {
    errno = ENOENT;
    return -1;
  }
  ah->grh.sgid_index = static_cast<uint8_t>(found);
  return 0;
}

__attribute__((visibility("default"))) ibv_ah* ibv_create_ah_from_wc(ibv_pd* pd, ibv_wc* wc,
                                                                     ibv_grh* grh, uint8_t port) {
  if (!IsVrdmaContext(pd->context)) {
    using Fn = ibv_ah* (*)(ibv_pd*, ibv_wc*, ibv_grh*, uint8_t);
    static Fn real = Real<Fn>("ibv_create_ah_from_wc", "IBVERBS_1.1");
    return real ? real(pd, wc, grh, port) : nullptr;
  }
  ibv_ah_attr attr;
  if (ibv_init_ah_from_wc(pd->context, port, wc, grh, &attr)) return nullptr;
  return ibv_create_ah(pd, &attr);
}

}  // extern "C"
