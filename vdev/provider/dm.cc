// Device memory (ibv_alloc_dm, ibv_memcpy_to_dm/from_dm, ibv_free_dm, ibv_reg_dm_mr): the
// daemon's memory for this context (proto::kMaxDmSize), mapped here. Copies are in 4-byte
// units inside the allocation, as mlx5 asks (EINVAL otherwise); an MR on it is zero-based.
// Importable by handle (ibv_import_dm): the same memory, mapped again.
#include <sys/mman.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <new>

#include "vdev/provider/provider.h"

namespace vrdma::provider {

namespace {

struct VDm {
  ibv_dm dm;
  uint32_t handle;
  uint64_t length;
  uint8_t* map;
  size_t map_size;
};

VDm* DmOf(ibv_dm* dm) { return reinterpret_cast<VDm*>(dm); }

bool InDm(const VDm* d, uint64_t offset, size_t length) {
  return offset % proto::kDmAlignment == 0 && length % proto::kDmAlignment == 0 &&
         length <= d->length && offset <= d->length - length;
}

int MemcpyToDm(ibv_dm* dm, uint64_t offset, const void* host, size_t length) {
  VDm* d = DmOf(dm);
  if (!InDm(d, offset, length)) return EINVAL;
  std::memcpy(d->map + offset, host, length);
  return 0;
}

int MemcpyFromDm(void* host, ibv_dm* dm, uint64_t offset, size_t length) {
  VDm* d = DmOf(dm);
  if (!InDm(d, offset, length)) return EINVAL;
  std::memcpy(host, d->map + offset, length);
  return 0;
}

}  // namespace

ibv_dm* AllocDm(ibv_context* ctx, ibv_alloc_dm_attr* attr) {
  proto::AllocDmRequest req{attr->length, attr->log_align_req, attr->comp_mask};
  proto::AllocDmReply r;
  proto::Message reply;
  if (int err =
          RpcReply(StateOf(ctx), proto::Op::kAllocDm, &req, sizeof req, &r, nullptr, 0, &reply)) {
    return Fail<ibv_dm>(err);
  }
  void* map = reply.fd_count() == 1 ? MapShared(reply.TakeFd(0), r.shm_size) : nullptr;
  auto* d = map ? new (std::nothrow) VDm{} : nullptr;
  if (!d) {
    if (map) munmap(map, r.shm_size);
    proto::HandleMsg free_req{r.handle, 0};
    proto::Message ignored;
    (void)Rpc(StateOf(ctx), proto::Op::kFreeDm, &free_req, sizeof free_req, &ignored);
    return Fail<ibv_dm>(map ? ENOMEM : EPROTO);
  }
  d->dm.context = ctx;
  d->dm.memcpy_to_dm = MemcpyToDm;
  d->dm.memcpy_from_dm = MemcpyFromDm;
  d->dm.handle = r.handle;
  d->handle = r.handle;
  d->length = attr->length;
  d->map = static_cast<uint8_t*>(map);
  d->map_size = r.shm_size;
  return &d->dm;
}

ibv_dm* ImportDm(ibv_context* ctx, uint32_t handle) {
  proto::ImportObjectRequest req{proto::ImportKind::kDm, handle};
  proto::ImportObjectReply r;
  proto::Message reply;
  if (int err = RpcReply(StateOf(ctx), proto::Op::kImportObject, &req, sizeof req, &r, nullptr, 0,
                         &reply)) {
    return Fail<ibv_dm>(err);
  }
  void* map = reply.fd_count() == 1 ? MapShared(reply.TakeFd(0), r.shm_size) : nullptr;
  auto* d = map ? new (std::nothrow) VDm{} : nullptr;
  if (!d) {
    if (map) munmap(map, r.shm_size);
    return Fail<ibv_dm>(map ? ENOMEM : EPROTO);
  }
  d->dm.context = ctx;
  d->dm.memcpy_to_dm = MemcpyToDm;
  d->dm.memcpy_from_dm = MemcpyFromDm;
  d->dm.handle = handle;
  d->handle = handle;
  d->length = r.length;
  d->map = static_cast<uint8_t*>(map);
  d->map_size = r.shm_size;
  return &d->dm;
}

// This process's mapping goes; the DM stays the context's.
void UnimportDm(ibv_dm* dm) {
  VDm* d = DmOf(dm);
  munmap(d->map, d->map_size);
  delete d;
}

int FreeDm(ibv_dm* dm) {
  VDm* d = DmOf(dm);
  proto::HandleMsg req{d->handle, 0};
  proto::Message reply;
  int err = Rpc(StateOf(dm->context), proto::Op::kFreeDm, &req, sizeof req, &reply);
  if (err && err != EIO) return err;  // EBUSY: an MR lies on it
  munmap(d->map, d->map_size);
  delete d;
  return 0;
}

ibv_mr* RegDmMr(ibv_pd* pd, ibv_dm* dm, uint64_t offset, size_t length, unsigned int access) {
  proto::RegDmMrRequest req{
      reinterpret_cast<VPd*>(pd)->handle, DmOf(dm)->handle, offset, length, access, 0};
  proto::RegMrReply r;
  if (int err = RpcReply(StateOf(pd->context), proto::Op::kRegDmMr, &req, sizeof req, &r)) {
    return Fail<ibv_mr>(err);
  }
  auto* mr = new (std::nothrow) VMr{};
  if (!mr) {
    return Fail<ibv_mr>(ENOMEM);
  }
  mr->handle = r.handle;
  mr->vmr.mr_type = IBV_MR_TYPE_MR;
  mr->vmr.access = static_cast<int>(access);
  mr->vmr.ibv_mr.context = pd->context;
  mr->vmr.ibv_mr.pd = pd;
  mr->vmr.ibv_mr.addr = nullptr;  // zero-based
  mr->vmr.ibv_mr.length = length;
  mr->vmr.ibv_mr.handle = r.handle;
  mr->vmr.ibv_mr.lkey = r.lkey;
  mr->vmr.ibv_mr.rkey = r.rkey;
  return &mr->vmr.ibv_mr;
}

}  // namespace vrdma::provider
