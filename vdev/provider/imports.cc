// PDs and MRs of a context looked up by handle (ibv_import_pd, ibv_import_mr) and given
// up (ibv_unimport_pd, ibv_unimport_mr): the objects stay the context's, only this
// process's handle on them goes, as on the kernel's devices. Mostly used by a process
// that joined the context with ibv_import_device (interposer.cc); any context may.
#include <cerrno>
#include <new>

#include "vdev/provider/provider.h"

namespace vrdma::provider {

namespace {

int LookUp(ibv_context* ctx, proto::ImportKind kind, uint32_t handle,
           proto::ImportObjectReply* out) {
  proto::ImportObjectRequest req{kind, handle};
  return RpcReply(StateOf(ctx), proto::Op::kImportObject, &req, sizeof req, out);
}

}  // namespace

ibv_pd* ImportPd(ibv_context* ctx, uint32_t handle) {
  proto::ImportObjectReply r;
  if (int err = LookUp(ctx, proto::ImportKind::kPd, handle, &r)) return Fail<ibv_pd>(err);
  auto* pd = new (std::nothrow) VPd{};
  if (!pd) return Fail<ibv_pd>(ENOMEM);
  pd->handle = handle;
  pd->pd.handle = handle;
  pd->pd.context = ctx;
  return &pd->pd;
}

void UnimportPd(ibv_pd* pd) { delete reinterpret_cast<VPd*>(pd); }

ibv_mr* ImportMr(ibv_pd* pd, uint32_t handle) {
  proto::ImportObjectReply r;
  if (int err = LookUp(pd->context, proto::ImportKind::kMr, handle, &r)) {
    return Fail<ibv_mr>(err);
  }
  // The MR is in one PD: imported through another it would be a different object.
  if (r.pd != reinterpret_cast<VPd*>(pd)->handle) return Fail<ibv_mr>(EINVAL);
  auto* mr = new (std::nothrow) VMr{};
  if (!mr) return Fail<ibv_mr>(ENOMEM);
  mr->handle = handle;
  mr->vmr.mr_type = IBV_MR_TYPE_IMPORTED_MR;
  mr->vmr.access = static_cast<int>(r.access);
  mr->vmr.ibv_mr.context = pd->context;
  mr->vmr.ibv_mr.pd = pd;
  // The address the MR was registered at, in the registering process (its iova).
  mr->vmr.ibv_mr.addr = reinterpret_cast<void*>(r.addr);
  mr->vmr.ibv_mr.length = r.length;
  mr->vmr.ibv_mr.handle = handle;
  mr->vmr.ibv_mr.lkey = r.lkey;
  mr->vmr.ibv_mr.rkey = r.rkey;
  return &mr->vmr.ibv_mr;
}

void UnimportMr(ibv_mr* mr) { delete reinterpret_cast<VMr*>(mr); }

}  // namespace vrdma::provider
