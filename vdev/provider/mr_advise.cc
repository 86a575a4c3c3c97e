// ibv_advise_mr: prefetching on-demand MRs. vrdmad checks that every range lies in an
// on-demand MR of the PD (as the kernel's ib_uverbs_advise_mr does); then the provider
// faults the pages into their memory object itself, in the caller's time. The daemon maps
// the same object and so finds them there; it never pins or populates anything itself.
#include <sys/mman.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <vector>

#include "vdev/provider/provider.h"

namespace vrdma::provider {

namespace {

// Faults [addr, addr + len) in for writing (else, or when the pages may not be written,
// for reading), a page at a time if the kernel has no MADV_POPULATE_* (before 5.14).
void Populate(uint64_t addr, uint64_t len, bool write) {
  const uint64_t page = static_cast<uint64_t>(sysconf(_SC_PAGESIZE));
  const uint64_t lo = addr & ~(page - 1), hi = (addr + len + page - 1) & ~(page - 1);
  void* p = reinterpret_cast<void*>(lo);
  if (write && madvise(p, hi - lo, MADV_POPULATE_WRITE) == 0) return;
  if (madvise(p, hi - lo, MADV_POPULATE_READ) == 0) return;
  if (errno != EINVAL) return;  // EFAULT and the like: the access itself would fail too
  for (uint64_t a = lo; a < hi; a += page) (void)*reinterpret_cast<volatile const char*>(a);
}

}  // namespace

int AdviseMr(ibv_pd* pd, ibv_advise_mr_advice advice, uint32_t flags, ibv_sge* sg_list,
             uint32_t num_sge) {
  if (num_sge == 0 || num_sge > proto::kMaxAdviseSges || !sg_list) return EINVAL;
  std::vector<uint8_t> buf(sizeof(proto::AdviseMrRequest) + num_sge * sizeof(proto::Sge));
  proto::AdviseMrRequest req{reinterpret_cast<VPd*>(pd)->handle, static_cast<uint32_t>(advice),
                             flags, num_sge};
  std::memcpy(buf.data(), &req, sizeof req);
  for (uint32_t i = 0; i < num_sge; ++i) {
    proto::Sge s{sg_list[i].addr, sg_list[i].length, sg_list[i].lkey};
    std::memcpy(buf.data() + sizeof req + i * sizeof s, &s, sizeof s);
  }
  proto::Message reply;
  if (int err = Rpc(StateOf(pd->context), proto::Op::kAdviseMr, buf.data(), buf.size(), &reply)) {
    return err;
  }
  // PREFETCH_NO_FAULT maps only what is present: the daemon's first access does that.
  if (advice == IBV_ADVISE_MR_ADVICE_PREFETCH_NO_FAULT) return 0;
  for (uint32_t i = 0; i < num_sge; ++i) {
    if (sg_list[i].length) {
      Populate(sg_list[i].addr, sg_list[i].length, advice == IBV_ADVISE_MR_ADVICE_PREFETCH_WRITE);
    }
  }
  return 0;
}

}  // namespace vrdma::provider
