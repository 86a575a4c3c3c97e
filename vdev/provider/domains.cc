// Thread domains (ibv_alloc_td) and parent domains (ibv_alloc_parent_domain).
//
// A parent domain stands for its protection domain in every verb that takes a PD (its
// requests carry that PD's handle). With a thread domain, the application promises to use
// the parent domain's QPs from one thread at a time, and their queues go without locks, as
// on mlx5. Custom allocators are accepted and not called: they serve buffers a provider
// allocates itself, and a vdev's queues are the daemon's sealed shared memory, which no
// application allocator can supply (a provider calls them only for its own buffers;
// returning IBV_ALLOCATOR_USE_DEFAULT is the same request).
#include <cerrno>
#include <new>

#include "vdev/provider/provider.h"

namespace vrdma::provider {

ibv_td* AllocTd(ibv_context* ctx, ibv_td_init_attr* attr) {
  if (!attr || attr->comp_mask != 0) {
    return Fail<ibv_td>(EINVAL);
  }
  auto* td = new (std::nothrow) VTd{};
  if (!td) {
    return Fail<ibv_td>(ENOMEM);
  }
  td->td.context = ctx;
  return &td->td;
}

int DeallocTd(ibv_td* ibtd) {
  auto* td = reinterpret_cast<VTd*>(ibtd);
  if (td->parents.load() > 0) return EBUSY;
  delete td;
  return 0;
}

ibv_pd* AllocParentDomain(ibv_context* ctx, ibv_parent_domain_init_attr* attr) {
  constexpr uint32_t kKnown =
      IBV_PARENT_DOMAIN_INIT_ATTR_ALLOCATORS | IBV_PARENT_DOMAIN_INIT_ATTR_PD_CONTEXT;
  auto* protection = attr ? reinterpret_cast<VPd*>(attr->pd) : nullptr;
  // ibv_alloc_parent_domain(3): a protection domain of this context (not another parent
  // domain), a thread domain of it if any, allocators given together.
  if (!attr || (attr->comp_mask & ~kKnown) || !protection || protection->protection ||
      attr->pd->context != ctx || (attr->td && attr->td->context != ctx) ||
      ((attr->comp_mask & IBV_PARENT_DOMAIN_INIT_ATTR_ALLOCATORS) &&
       (!attr->alloc != !attr->free))) {
    return Fail<ibv_pd>(EINVAL);
  }
  auto* pd = new (std::nothrow) VPd{};
  if (!pd) {
    return Fail<ibv_pd>(ENOMEM);
  }
  pd->pd.context = ctx;
  pd->pd.handle = protection->handle;
  pd->handle = protection->handle;
  pd->protection = protection;
  pd->td = reinterpret_cast<VTd*>(attr->td);
  protection->parents.fetch_add(1);
  if (pd->td) pd->td->parents.fetch_add(1);
  return &pd->pd;
}

std::optional<int> DeallocParentDomain(ibv_pd* ibpd) {
  auto* pd = reinterpret_cast<VPd*>(ibpd);
  if (!pd->protection) {
    if (pd->parents.load() > 0) return EBUSY;
    return std::nullopt;
  }
  pd->protection->parents.fetch_sub(1);
  if (pd->td) pd->td->parents.fetch_sub(1);
  delete pd;
  return 0;
}

}  // namespace vrdma::provider
