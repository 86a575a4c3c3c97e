// Receive-side scaling of a client context: receive work queues (SRQs of type
// proto::kSrqTypeWq, made by CreateSrq), their readiness (ibv_modify_wq), indirection
// tables (ibv_create_rwq_ind_table), and the hash of an RSS QP (CreateQp with
// RxHashRequest). A table names only this context's work queues.
#include <cerrno>
#include <cstring>
#include <vector>

#include "absl/strings/str_cat.h"
#include "vdev/session.h"
#include "vdev/session_util.h"

namespace vrdma::vdev {

using session_util::Append;

int Session::ModifyWq(proto::Message& msg, Payload* /*out*/, Fds* /*fds*/) {
  proto::ModifyWqRequest req;
  if (!msg.Copy(&req)) return EINVAL;
  auto it = srqs_.find(req.handle);
  if (it == srqs_.end() || !it->second.wq) {
    return Refuse(EINVAL, absl::StrCat("modify_wq: no WQ ", req.handle));
  }
  // RDY receives; RESET and ERR do not (WQEs already posted stay for a later RDY).
  if (req.state != IBV_WQS_RDY && req.state != IBV_WQS_RESET && req.state != IBV_WQS_ERR) {
    return Refuse(EINVAL, absl::StrCat("modify_wq: state ", req.state));
  }
  return Refused(device_->SetWqReady(req.handle, req.state == IBV_WQS_RDY));
}

int Session::CreateIndTable(proto::Message& msg, Payload* out, Fds* /*fds*/) {
  proto::CreateIndTableRequest req;
  if (!msg.Copy(&req)) return EINVAL;
  if (req.log_size > proto::kMaxLogIndTableSize) {
    return Refuse(EINVAL, absl::StrCat("create_rwq_ind_table: 2^", req.log_size, " entries"));
  }
  const size_t n = size_t{1} << req.log_size;
  if (msg.payload.size() != sizeof req + n * sizeof(uint32_t)) return EINVAL;
  if (ind_tables_.size() >= kMaxIndTablesPerContext) {
    return Refuse(ENOMEM, "create_rwq_ind_table: too many tables");
  }
  std::vector<uint32_t> wqs(n);
  std::memcpy(wqs.data(), msg.payload.data() + sizeof req, n * sizeof(uint32_t));
  for (uint32_t h : wqs) {
    auto it = srqs_.find(h);
    if (it == srqs_.end() || !it->second.wq) {
      return Refuse(EINVAL, absl::StrCat("create_rwq_ind_table: no WQ ", h));
    }
  }
  auto table = device_->CreateRssTable(wqs);
  if (!table.ok()) return Refused(table.status());
  ind_tables_[*table] = 1;
  Append(out, proto::HandleMsg{*table, 0});
  return 0;
}

int Session::DestroyIndTable(proto::Message& msg, Payload* /*out*/, Fds* /*fds*/) {
  proto::HandleMsg req;
  if (!msg.Copy(&req)) return EINVAL;
  if (!ind_tables_.count(req.handle)) {
    return Refuse(EINVAL, absl::StrCat("destroy_rwq_ind_table: no table ", req.handle));
  }
  if (absl::Status st = device_->DestroyRssTable(req.handle); !st.ok()) return Refused(st, EBUSY);
  ind_tables_.erase(req.handle);
  return 0;
}

int Session::TakeRxHash(const proto::Message& msg, driver::QpInitAttr* init) {
  proto::RxHashRequest h;
  if (msg.payload.size() != sizeof(proto::CreateQpRequest) + sizeof h) return EINVAL;
  std::memcpy(&h, msg.payload.data() + sizeof(proto::CreateQpRequest), sizeof h);
  if (!ind_tables_.count(h.ind_table)) {
    return Refuse(EINVAL, absl::StrCat("create_qp: no indirection table ", h.ind_table));
  }
  if (h.function != IBV_RX_HASH_FUNC_TOEPLITZ) {
    return Refuse(EOPNOTSUPP, "create_qp: the RSS hash is Toeplitz");
  }
  if (h.key_len > sizeof h.key) return Refuse(EINVAL, "create_qp: RSS key too long");
  // Outer IPv4/IPv6 addresses and TCP/UDP ports; not IPsec SPI or inner headers.
  constexpr uint64_t kFields = IBV_RX_HASH_SRC_IPV4 | IBV_RX_HASH_DST_IPV4 | IBV_RX_HASH_SRC_IPV6 |
                               IBV_RX_HASH_DST_IPV6 | IBV_RX_HASH_SRC_PORT_TCP |
                               IBV_RX_HASH_DST_PORT_TCP | IBV_RX_HASH_SRC_PORT_UDP |
                               IBV_RX_HASH_DST_PORT_UDP;
  if (h.fields & ~kFields) return Refuse(EOPNOTSUPP, "create_qp: RSS fields not offered");
  init->rss_table = h.ind_table;
  init->rss_fields = h.fields;
  init->rss_key_len = h.key_len;
  std::memcpy(init->rss_key.data(), h.key, h.key_len);
  return 0;
}

}  // namespace vrdma::vdev
