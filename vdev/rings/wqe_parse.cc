#include "vdev/rings/wqe_parse.h"

#include <cstdint>
#include <cstring>

#include "vdev/protocol/protocol.h"

namespace vrdma::vdev {

namespace {

constexpr uint32_t kKnownSendFlags =
    IBV_SEND_FENCE | IBV_SEND_SIGNALED | IBV_SEND_SOLICITED | IBV_SEND_INLINE | IBV_SEND_IP_CSUM;

bool KnownOpcode(uint32_t op) {
  switch (op) {
    case IBV_WR_SEND:
    case IBV_WR_SEND_WITH_IMM:
    case IBV_WR_SEND_WITH_INV:
    case IBV_WR_RDMA_WRITE:
    case IBV_WR_RDMA_WRITE_WITH_IMM:
    case IBV_WR_RDMA_READ:
    case IBV_WR_ATOMIC_CMP_AND_SWP:
    case IBV_WR_ATOMIC_FETCH_AND_ADD:
    case IBV_WR_BIND_MW:
    case IBV_WR_LOCAL_INV:
    case IBV_WR_ATOMIC_WRITE:
      return true;
    default:
      return false;
  }
}

void CopySges(const uint8_t* src, uint32_t n, driver::Sge* out) {
  proto::Sge tmp[driver::kMaxSgePerWqe];
  std::memcpy(tmp, src, n * sizeof(proto::Sge));
  for (uint32_t i = 0; i < n; ++i) out[i] = driver::Sge{tmp[i].addr, tmp[i].length, tmp[i].lkey};
}

}  // namespace

WqeCheck ParseSendWqe(const uint8_t* slot, const SendQueueLimits& limits, driver::SendWr* out) {
  proto::SendWqe w;
  std::memcpy(&w, slot, sizeof w);  // one read of the header; checks use the copy only
  out->wr_id = w.wr_id;
  out->opcode = static_cast<ibv_wr_opcode>(w.opcode);
  if (!KnownOpcode(w.opcode)) return WqeCheck::kBadOpcode;
  if (w.send_flags & ~kKnownSendFlags) return WqeCheck::kBadFlags;
  out->send_flags = w.send_flags & ~IBV_SEND_IP_CSUM;
  out->imm_be = w.imm_data;
  out->invalidate_rkey = w.imm_data;
  out->remote_addr = w.remote_addr;
  out->rkey = w.rkey;
  out->compare_add = w.compare_add;
  out->swap = w.swap;
  out->ah = w.ud.ah;
  out->remote_qpn = w.ud.remote_qpn & 0xffffff;
  out->remote_qkey = w.ud.remote_qkey;
  out->remote_srqn = w.remote_srqn & 0xffffff;
  if (w.opcode == IBV_WR_BIND_MW) {
    // The window, the MR and the range are checked by the engine when the bind runs;
    // access flags beyond an int's are not ones it knows.
    if (w.swap > INT32_MAX) return WqeCheck::kBadFlags;
    out->bind = driver::MwBind{w.bind.mw, w.bind.mr_lkey, w.remote_addr, w.compare_add,
                               static_cast<int>(w.swap)};
  }
  const uint8_t* body = slot + sizeof(proto::SendWqe);
  if (w.send_flags & IBV_SEND_INLINE) {
    if (w.inline_len > limits.max_inline || w.inline_len > driver::kMaxInlineData ||
        sizeof(proto::SendWqe) + w.inline_len > limits.stride) {
      return WqeCheck::kInlineTooLong;
    }
    out->num_sge = 0;
    out->inline_len = w.inline_len;
    std::memcpy(out->inline_data, body, w.inline_len);
  } else {
    if (w.num_sge > limits.max_sge || w.num_sge > driver::kMaxSgePerWqe ||
        sizeof(proto::SendWqe) + w.num_sge * sizeof(proto::Sge) > limits.stride) {
      return WqeCheck::kTooManySges;
    }
    out->inline_len = 0;
    out->num_sge = w.num_sge;
    CopySges(body, w.num_sge, out->sg_list);
  }
  return WqeCheck::kOk;
}

WqeCheck ParseRecvWqe(const uint8_t* slot, uint32_t max_sge, driver::RecvWr* out) {
  proto::RecvWqe w;
  std::memcpy(&w, slot, sizeof w);
  out->wr_id = w.wr_id;
  if (w.num_sge > max_sge || w.num_sge > driver::kMaxSgePerWqe) return WqeCheck::kTooManySges;
  out->num_sge = w.num_sge;
  CopySges(slot + sizeof(proto::RecvWqe), w.num_sge, out->sg_list);
  return WqeCheck::kOk;
}

const char* WqeCheckName(WqeCheck c) {
  switch (c) {
    case WqeCheck::kOk:
      return "ok";
    case WqeCheck::kBadOpcode:
      return "unknown opcode";
    case WqeCheck::kBadFlags:
      return "unknown send flags";
    case WqeCheck::kTooManySges:
      return "more SGEs than the queue allows";
    case WqeCheck::kInlineTooLong:
      return "inline data longer than the queue allows";
  }
  return "?";
}

}  // namespace vrdma::vdev
