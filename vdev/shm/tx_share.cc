#include "vdev/shm/tx_share.h"

namespace vrdma::vdev {

absl::StatusOr<TxShare*> TxShare::Create(std::unique_ptr<ClientMemory>* memory,
                                         std::shared_ptr<TxDmaDomain> domain) {
  ClientMemory& m = **memory;
  if (absl::Status st = domain->port->DmaMap(m.base(), m.length()); !st.ok()) return st;
  return new TxShare(std::move(*memory), std::move(domain));
}

TxShare::TxShare(std::unique_ptr<ClientMemory> memory, std::shared_ptr<TxDmaDomain> domain)
    : memory_(std::move(memory)), domain_(std::move(domain)) {
  shinfo_.free_cb = &TxShare::Free;
  shinfo_.fcb_opaque = this;
  rte_mbuf_ext_refcnt_set(&shinfo_, 1);
}

TxShare::~TxShare() {
  if (domain_->alive) domain_->port->DmaUnmap(memory_->base(), memory_->length());
}

void TxShare::Release() {
  if (rte_mbuf_ext_refcnt_update(&shinfo_, -1) == 0) delete this;
}

void TxShare::Free(void* /*addr*/, void* opaque) { delete static_cast<TxShare*>(opaque); }

}  // namespace vrdma::vdev
