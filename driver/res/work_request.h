// Work requests as the engine keeps them: validated copies in fixed-size slots.
#pragma once

#include <infiniband/verbs.h>

#include <cstdint>
#include <cstring>

#include "driver/res/limits.h"
#include "driver/wire/headers.h"

namespace vrdma::driver {

struct Sge {
  uint64_t addr = 0;  // IOVA in the consumer's address space
  uint32_t length = 0;
  uint32_t lkey = 0;
};

// IBV_WR_BIND_MW: the window, and the part of an MR it opens with which rights (the
// window's new rkey is SendWr::rkey).
struct MwBind {
  uint32_t mw = 0;       // the window's handle (ibv_mw.handle)
  uint32_t mr_lkey = 0;  // ignored when length is 0: the window is unbound
  uint64_t addr = 0;
  uint64_t length = 0;
  int access = 0;  // IBV_ACCESS_REMOTE_* and IBV_ACCESS_ZERO_BASED
};

struct SendWr {
  uint64_t wr_id = 0;
  ibv_wr_opcode opcode = IBV_WR_SEND;
  uint32_t send_flags = 0;  // IBV_SEND_SIGNALED | FENCE | SOLICITED | INLINE
  uint32_t num_sge = 0;
  Sge sg_list[kMaxSgePerWqe];
  uint32_t imm_be = 0;           // immediate data, network order as verbs keep it
  uint32_t invalidate_rkey = 0;  // SEND_WITH_INV, LOCAL_INV
  uint64_t remote_addr = 0;      // RDMA and atomics
  uint32_t rkey = 0;             // RDMA and atomics; BIND_MW: the window's new rkey
  MwBind bind;
  uint64_t compare_add = 0;
  uint64_t swap = 0;
  uint32_t ah = 0;  // UD: address handle
  uint32_t remote_qpn = 0;
  uint32_t remote_qkey = 0;
  uint32_t remote_srqn = 0;  // XRC send: the XRC SRQ at the target (XRCETH)
  uint32_t inline_len = 0;
  uint8_t inline_data[kMaxInlineData];
};

// Copies a send WR's fields and only the SGEs and inline bytes it uses (num_sge,
// inline_len, each bounded by the arrays): a small WR is a few cache lines, not the
// whole ~640-byte struct.
inline void CopySendWr(const SendWr& src, SendWr* dst) {
  // A field added to SendWr is copied here too.
  static_assert(sizeof(SendWr) == 632, "CopySendWr copies every field of SendWr");
  dst->wr_id = src.wr_id;
  dst->opcode = src.opcode;
  dst->send_flags = src.send_flags;
  dst->num_sge = src.num_sge;
  const uint32_t nsge = src.num_sge < kMaxSgePerWqe ? src.num_sge : kMaxSgePerWqe;
  for (uint32_t i = 0; i < nsge; ++i) dst->sg_list[i] = src.sg_list[i];
  dst->imm_be = src.imm_be;
  dst->invalidate_rkey = src.invalidate_rkey;
  dst->remote_addr = src.remote_addr;
  dst->rkey = src.rkey;
  dst->bind = src.bind;
  dst->compare_add = src.compare_add;
  dst->swap = src.swap;
  dst->ah = src.ah;
  dst->remote_qpn = src.remote_qpn;
  dst->remote_qkey = src.remote_qkey;
  dst->remote_srqn = src.remote_srqn;
  dst->inline_len = src.inline_len;
  const uint32_t ninline = src.inline_len < kMaxInlineData ? src.inline_len : kMaxInlineData;
  std::memcpy(dst->inline_data, src.inline_data, ninline);
}

struct RecvWr {
  uint64_t wr_id = 0;
  uint32_t num_sge = 0;
  Sge sg_list[kMaxSgePerWqe];
};

// Where packets of a QP or AH go, resolved down to Ethernet (the vdev layer resolves
// the destination MAC from the neighbour table).
struct AddressVector {
  wire::Gid dgid{};
  uint16_t sgid_index = 0;  // the device's GID table entry (a pdev's table spans its vdevs' blocks)
  uint8_t hop_limit = 64;
  uint8_t traffic_class = 0;
  uint32_t flow_label = 0;
  uint8_t sl = 0;
  wire::MacAddr dmac{};
};

// One GID table entry of the port (IBTA 4.1.1; RoCE GIDs are IP or MAC-derived).
struct GidEntry {
  bool valid = false;
  wire::Gid gid{};
  wire::NetworkType type = wire::NetworkType::kRoceV2Ipv4;
  wire::MacAddr mac{};
  bool has_vlan = false;
  uint16_t vlan_id = 0;
  bool operator==(const GidEntry&) const = default;
};

}  // namespace vrdma::driver
