// Device resources: the verbs that create, change and destroy objects.
#include "driver/transport/device.h"

#include <algorithm>
#include <cstring>

#include "absl/strings/str_cat.h"
#include "driver/qp_state/qp_state_machine.h"

namespace vrdma {
namespace {

// QPN 0 and 1 are the special QPs (IBTA 3.5.1); ordinary QPs start above them.
constexpr uint32_t kFirstQpn = 16;

absl::Status NotFound(const char* what, uint32_t handle) {
  return absl::NotFoundError(absl::StrCat("no ", what, " ", handle));
}

}  // namespace

Device::Device(const DeviceConfig& config) : cfg_(config) {
  const DeviceLimits& l = cfg_.limits;
  gids_.resize(l.gid_table_len);
  pds_.Reset(l.max_pd, 1);
  mrs_.Reset(l.max_mr, 1);
  cqs_.Reset(l.max_cq, 1);
  srqs_.Reset(l.max_srq, 1);
  ahs_.Reset(l.max_ah, 1);
  // One more slot than max_qp for the GSI QP1, which the device owns.
  qps_.Reset(l.max_qp, kFirstQpn);
  // Room for a burst the port refused plus what the QPs made before they saw it.
  tx_.reserve(4u * cfg_.tx_burst + 2u * cfg_.qp_tx_budget);
  tx_chains_ = cfg_.port && cfg_.port->TxChains();
  hairpin_.reserve(kHairpinDepth);
  hairpin_rx_.reserve(kHairpinDepth);
  active_.reserve(l.max_qp + 1);
  running_.reserve(l.max_qp + 1);
  events_.Init(1024);
}

Device::~Device() {
  for (rte_mbuf* m : tx_) rte_pktmbuf_free(m);
  for (rte_mbuf* m : hairpin_) rte_pktmbuf_free(m);
}

void Device::QueryDevice(ibv_device_attr* attr) const {
  const DeviceLimits& l = cfg_.limits;
  *attr = ibv_device_attr{};
  attr->max_mr_size = l.max_mr_size;
  attr->page_size_cap = 0xfffff000;  // any page size from 4 KiB
  attr->max_qp = static_cast<int>(l.max_qp);
  attr->max_qp_wr = static_cast<int>(l.max_qp_wr);
  // RNR NAK generation and port state change events, as RoCE NICs report.
  attr->device_cap_flags = IBV_DEVICE_RC_RNR_NAK_GEN | IBV_DEVICE_PORT_ACTIVE_EVENT |
                           IBV_DEVICE_SYS_IMAGE_GUID | IBV_DEVICE_CHANGE_PHY_PORT;
  attr->max_sge = static_cast<int>(l.max_sge);
  attr->max_sge_rd = static_cast<int>(l.max_sge);
  attr->max_cq = static_cast<int>(l.max_cq);
  attr->max_cqe = static_cast<int>(l.max_cqe);
  attr->max_mr = static_cast<int>(l.max_mr);
  attr->max_pd = static_cast<int>(l.max_pd);
  attr->max_qp_rd_atom = static_cast<int>(l.max_qp_rd_atom);
  attr->max_qp_init_rd_atom = static_cast<int>(l.max_qp_init_rd_atom);
  attr->max_res_rd_atom = static_cast<int>(l.max_qp_rd_atom * l.max_qp);
  attr->atomic_cap = IBV_ATOMIC_HCA;  // atomic with respect to this device's accesses
  attr->max_ah = static_cast<int>(l.max_ah);
  attr->max_srq = static_cast<int>(l.max_srq);
  attr->max_srq_wr = static_cast<int>(l.max_srq_wr);
  attr->max_srq_sge = static_cast<int>(l.max_srq_sge);
  attr->max_pkeys = 1;
  attr->local_ca_ack_delay = 15;
  attr->phys_port_cnt = 1;
}

void Device::QueryPort(ibv_port_attr* attr) const {
  *attr = ibv_port_attr{};
  attr->state = IBV_PORT_ACTIVE;
  attr->max_mtu = IBV_MTU_4096;
  attr->active_mtu = cfg_.port_mtu;
  attr->gid_tbl_len = static_cast<int>(gids_.size());
  attr->port_cap_flags = IBV_PORT_CM_SUP;
  attr->max_msg_sz = 1u << 31;
  attr->pkey_tbl_len = 1;
  attr->lid = 0;  // RoCE has no LIDs
  attr->lmc = 0;
  attr->max_vl_num = 1;
  attr->active_width = 2;   // 4x
  attr->active_speed = 32;  // 25 Gb/s per lane (EDR), i.e. a 100 Gb/s port
  attr->phys_state = 5;     // LinkUp
  attr->link_layer = IBV_LINK_LAYER_ETHERNET;
}

absl::Status Device::SetGid(uint32_t index, const GidEntry& entry) {
  if (index >= gids_.size()) {
    return absl::OutOfRangeError(
        absl::StrCat("GID index ", index, " beyond table of ", gids_.size()));
  }
  gids_[index] = entry;
  // Receive steering looks GIDs up by value: rebuild the index (a control-path call).
  gid_lookup_.clear();
  local_macs_.clear();
  for (uint32_t i = 0; i < gids_.size(); ++i) {
    if (!gids_[i].valid) continue;
    gid_lookup_.emplace(GidKey{gids_[i].gid, gids_[i].type}, i);
    if (std::find(local_macs_.begin(), local_macs_.end(), gids_[i].mac) == local_macs_.end()) {
      local_macs_.push_back(gids_[i].mac);
    }
  }
  return absl::OkStatus();
}

const GidEntry* Device::FindDestination(const wire::RocePacket& pkt, uint32_t* index) const {
  auto it = gid_lookup_.find(GidKey{pkt.net.dgid, pkt.net.type});
  if (it == gid_lookup_.end()) return nullptr;
  const GidEntry& e = gids_[it->second];
  // The frame must be addressed to the interface that owns the GID: its MAC and VLAN.
  if (pkt.eth.dst != e.mac || pkt.eth.has_vlan != e.has_vlan ||
      (e.has_vlan && (pkt.eth.vlan_tci & 0xfff) != e.vlan_id)) {
    return nullptr;
  }
  *index = it->second;
  return &e;
}

const GidEntry* Device::GetGid(uint32_t index) const {
  if (index >= gids_.size() || !gids_[index].valid) return nullptr;
  return &gids_[index];
}

absl::StatusOr<uint32_t> Device::AllocPd(uint32_t owner) {
  uint32_t h;
  ProtectionDomain* pd = pds_.Allocate(&h);
  if (!pd) return absl::ResourceExhaustedError("PD table full");
  pd->owner = owner;
  return h;
}

absl::Status Device::DeallocPd(uint32_t pd) {
  if (!pds_.Get(pd)) return NotFound("PD", pd);
  bool busy = false;
  mrs_.ForEach([&](uint32_t, const MemoryRegion& mr) { busy |= mr.pd == pd; });
  qps_.ForEach(
      [&](uint32_t, const QueuePair& qp) { busy |= qp.type != kQpTypeGsi && qp.init.pd == pd; });
  srqs_.ForEach([&](uint32_t, const SharedReceiveQueue& s) { busy |= s.pd == pd; });
  if (busy) return absl::FailedPreconditionError("PD still has MRs, QPs or SRQs");
  pds_.Free(pd);
  return absl::OkStatus();
}

absl::StatusOr<MrKeys> Device::RegMr(uint32_t pd, uint64_t iova, void* host, uint64_t length,
                                     int access, uint32_t owner) {
  if (!pds_.Get(pd)) return NotFound("PD", pd);
  if (length > cfg_.limits.max_mr_size) return absl::InvalidArgumentError("MR too large");
  if (iova + length < iova) return absl::InvalidArgumentError("MR range wraps");
  // Remote write or atomic access requires local write (IBTA 10.6.3.1 / ibv_reg_mr(3)).
  if ((access & (IBV_ACCESS_REMOTE_WRITE | IBV_ACCESS_REMOTE_ATOMIC)) &&
      !(access & IBV_ACCESS_LOCAL_WRITE)) {
    return absl::InvalidArgumentError("remote write/atomic access needs local write");
  }
  if (host == nullptr && length != 0) return absl::InvalidArgumentError("MR has no memory");
  uint32_t h;
  MemoryRegion* mr = mrs_.Allocate(&h);
  if (!mr) return absl::ResourceExhaustedError("MR table full");
  mr->pd = pd;
  mr->iova = iova;
  mr->length = length;
  mr->host = static_cast<uint8_t*>(host);
  mr->access = access;
  mr->owner = owner;
  mr->invalidated = false;
  mr->tx_share = nullptr;
  mr->lkey = mr->rkey = MakeKey(h, mrs_.Generation(h));
  return MrKeys{mr->lkey, mr->rkey};
}

const MemoryRegion* Device::FindMr(uint32_t key) const {
  uint32_t h = KeyIndex(key);
  const MemoryRegion* mr = mrs_.Get(h);
  if (!mr || mr->lkey != key) return nullptr;
  return mr;
}

absl::Status Device::SetMrTxShare(uint32_t lkey, rte_mbuf_ext_shared_info* share) {
  MemoryRegion* mr = mrs_.Get(KeyIndex(lkey));
  if (!mr || mr->lkey != lkey) return NotFound("MR with key", lkey);
  mr->tx_share = share;
  return absl::OkStatus();
}

absl::Status Device::DeregMr(uint32_t lkey) {
  if (!FindMr(lkey)) return NotFound("MR with key", lkey);
  mrs_.Free(KeyIndex(lkey));
  return absl::OkStatus();
}

absl::StatusOr<uint32_t> Device::CreateCq(uint32_t depth, uint32_t owner) {
  if (depth < 1 || depth > cfg_.limits.max_cqe) {
    return absl::InvalidArgumentError(
        absl::StrCat("CQ depth ", depth, " outside 1..", cfg_.limits.max_cqe));
  }
  uint32_t h;
  CompletionQueue* cq = cqs_.Allocate(&h);
  if (!cq) return absl::ResourceExhaustedError("CQ table full");
  cq->Init(depth);
  cq->owner = owner;
  return h;
}

absl::Status Device::DestroyCq(uint32_t cqn) {
  CompletionQueue* cq = cqs_.Get(cqn);
  if (!cq) return NotFound("CQ", cqn);
  if (cq->use_count) return absl::FailedPreconditionError("CQ still used by QPs or SRQs");
  cqs_.Free(cqn);
  return absl::OkStatus();
}

absl::Status Device::ResizeCq(uint32_t cqn, uint32_t depth) {
  CompletionQueue* cq = cqs_.Get(cqn);
  if (!cq) return NotFound("CQ", cqn);
  if (depth < 1 || depth > cfg_.limits.max_cqe) return absl::InvalidArgumentError("bad depth");
  if (!cq->Resize(depth)) {
    return absl::FailedPreconditionError("CQ holds more completions than the new depth");
  }
  return absl::OkStatus();
}

absl::StatusOr<int> Device::PollCq(uint32_t cqn, ibv_wc* wc, int n) {
  CompletionQueue* cq = cqs_.Get(cqn);
  if (!cq) return NotFound("CQ", cqn);
  return cq->Poll(wc, n);
}

absl::Status Device::ArmCq(uint32_t cqn, bool solicited_only) {
  CompletionQueue* cq = cqs_.Get(cqn);
  if (!cq) return NotFound("CQ", cqn);
  cq->Arm(solicited_only);
  return absl::OkStatus();
}

absl::Status Device::AttachCqSink(uint32_t cqn, CompletionSink* sink, uint64_t cookie) {
  CompletionQueue* cq = cqs_.Get(cqn);
  if (!cq) return NotFound("CQ", cqn);
  cq->sink = sink;
  cq->sink_cookie = cookie;
  return absl::OkStatus();
}

bool Device::TakeCqEvent(uint32_t cqn) {
  CompletionQueue* cq = cqs_.Get(cqn);
  return cq && cq->TakeEvent();
}

absl::StatusOr<uint32_t> Device::CreateSrq(uint32_t pd, uint32_t max_wr, uint32_t max_sge,
                                           uint32_t limit, uint32_t owner) {
  if (!pds_.Get(pd)) return NotFound("PD", pd);
  if (max_wr < 1 || max_wr > cfg_.limits.max_srq_wr || max_sge > cfg_.limits.max_srq_sge ||
      limit > max_wr) {
    return absl::InvalidArgumentError("SRQ size, SGE count or limit out of range");
  }
  uint32_t h;
  SharedReceiveQueue* srq = srqs_.Allocate(&h);
  if (!srq) return absl::ResourceExhaustedError("SRQ table full");
  srq->pd = pd;
  srq->max_sge = max_sge;
  srq->limit = limit;
  srq->owner = owner;
  srq->wqes.Init(max_wr);
  return h;
}

absl::Status Device::ModifySrq(uint32_t srq_h, uint32_t /*max_wr*/, uint32_t limit, int mask) {
  SharedReceiveQueue* srq = srqs_.Get(srq_h);
  if (!srq) return NotFound("SRQ", srq_h);
  if (mask & IBV_SRQ_MAX_WR) {
    // Resizing is not supported by this device (IBV_DEVICE_SRQ_RESIZE is not reported).
    return absl::InvalidArgumentError("SRQ resize not supported");
  }
  if (mask & IBV_SRQ_LIMIT) {
    if (limit > srq->wqes.depth()) return absl::InvalidArgumentError("SRQ limit above size");
    srq->limit = limit;
  }
  return absl::OkStatus();
}

absl::StatusOr<uint32_t> Device::SrqLimit(uint32_t srq_h) const {
  const SharedReceiveQueue* srq = srqs_.Get(srq_h);
  if (!srq) return NotFound("SRQ", srq_h);
  return srq->limit;
}

absl::Status Device::DestroySrq(uint32_t srq_h) {
  SharedReceiveQueue* srq = srqs_.Get(srq_h);
  if (!srq) return NotFound("SRQ", srq_h);
  if (srq->use_count) return absl::FailedPreconditionError("SRQ still attached to QPs");
  srqs_.Free(srq_h);
  return absl::OkStatus();
}

absl::Status Device::PostSrqRecv(uint32_t srq_h, const RecvWr& wr) {
  SharedReceiveQueue* srq = srqs_.Get(srq_h);
  if (!srq) return NotFound("SRQ", srq_h);
  if (wr.num_sge > srq->max_sge) return absl::InvalidArgumentError("too many SGEs");
  if (srq->wqes.full()) return absl::ResourceExhaustedError("SRQ full");
  srq->wqes.next_free() = wr;
  srq->wqes.Commit();
  return absl::OkStatus();
}

absl::StatusOr<uint32_t> Device::CreateAh(uint32_t pd, const AddressVector& av, uint32_t owner) {
  (void)owner;
  if (!pds_.Get(pd)) return NotFound("PD", pd);
  if (!GetGid(av.sgid_index)) {
    return absl::InvalidArgumentError(absl::StrCat("no GID at index ", av.sgid_index));
  }
  uint32_t h;
  AddressVector* ah = ahs_.Allocate(&h);
  if (!ah) return absl::ResourceExhaustedError("AH table full");
  *ah = av;
  return h;
}

absl::Status Device::DestroyAh(uint32_t ah) {
  if (!ahs_.Get(ah)) return NotFound("AH", ah);
  ahs_.Free(ah);
  return absl::OkStatus();
}

absl::StatusOr<uint32_t> Device::CreateQp(const QpInitAttr& init) {
  const DeviceLimits& l = cfg_.limits;
  if (init.type != IBV_QPT_RC && init.type != IBV_QPT_UC && init.type != IBV_QPT_UD &&
      init.type != kQpTypeGsi) {
    return absl::InvalidArgumentError("QP type must be RC, UC, UD or GSI");
  }
  if (init.type == kQpTypeGsi && gsi_slot_ != 0) {
    return absl::AlreadyExistsError("the port already has its GSI QP1");
  }
  if (!pds_.Get(init.pd)) return NotFound("PD", init.pd);
  CompletionQueue* scq = cqs_.Get(init.send_cq);
  CompletionQueue* rcq = cqs_.Get(init.recv_cq);
  if (!scq || !rcq) return absl::InvalidArgumentError("send or receive CQ does not exist");
  SharedReceiveQueue* srq = nullptr;
  if (init.has_srq) {
    srq = srqs_.Get(init.srq);
    if (!srq) return NotFound("SRQ", init.srq);
    if (srq->pd != init.pd) return absl::InvalidArgumentError("SRQ is in another PD");
  }
  if (init.max_send_wr > l.max_qp_wr || init.max_recv_wr > l.max_qp_wr ||
      init.max_send_sge > l.max_sge || init.max_recv_sge > l.max_sge ||
      init.max_inline_data > l.max_inline_data) {
    return absl::InvalidArgumentError("QP capabilities beyond device limits");
  }
  uint32_t qpn;
  QueuePair* qp = qps_.Allocate(&qpn);
  if (!qp) return absl::ResourceExhaustedError("QP table full");
  qp->qpn = qpn;
  if (init.type == kQpTypeGsi) {
    // GSI QP1 (IBTA 13.5.1): one per port, a UD QP answering QPN 1 with the
    // well-known GSI Q_Key.
    gsi_slot_ = qpn;
    qp->qpn = 1;
    qp->qkey = kGsiQkey;
  }
  qp->type = init.type;
  qp->init = init;
  qp->sq.Init(init.max_send_wr);
  qp->rq.Init(init.has_srq ? 1 : init.max_recv_wr);
  qp->resp.responses.Init(2 * l.max_qp_init_rd_atom + 4);
  qp->retransmit_timer.data = qp;
  qp->rnr_timer.data = qp;
  scq->use_count++;
  rcq->use_count++;
  if (srq) srq->use_count++;
  return qpn;
}

absl::Status Device::DestroyQp(uint32_t qpn) {
  QueuePair* qp = LookupQp(qpn);
  if (!qp) return NotFound("QP", qpn);
  timers_.Cancel(&qp->retransmit_timer);
  timers_.Cancel(&qp->rnr_timer);
  if (qp->active) {
    for (auto& p : active_)
      if (p == qp) p = nullptr;
    for (auto& p : running_)
      if (p == qp) p = nullptr;
  }
  if (auto* cq = cqs_.Get(qp->init.send_cq)) cq->use_count--;
  if (auto* cq = cqs_.Get(qp->init.recv_cq)) cq->use_count--;
  if (qp->init.has_srq)
    if (auto* srq = srqs_.Get(qp->init.srq)) srq->use_count--;
  if (qp->qpn == 1) {
    qps_.Free(gsi_slot_);
    gsi_slot_ = 0;
  } else {
    qps_.Free(qpn);
  }
  return absl::OkStatus();
}

absl::Status Device::PostRecv(uint32_t qpn, const RecvWr& wr) {
  QueuePair* qp = LookupQp(qpn);
  if (!qp) return NotFound("QP", qpn);
  if (qp->init.has_srq) return absl::InvalidArgumentError("QP uses an SRQ");
  if (qp->state == IBV_QPS_RESET) return absl::FailedPreconditionError("QP in RESET");
  if (wr.num_sge > qp->init.max_recv_sge) return absl::InvalidArgumentError("too many SGEs");
  if (qp->rq.full()) return absl::ResourceExhaustedError("receive queue full");
  if (qp->state == IBV_QPS_ERR) {
    // A receive posted to a QP in the error state completes with a flush error.
    ibv_wc wc{};
    wc.wr_id = wr.wr_id;
    wc.status = IBV_WC_WR_FLUSH_ERR;
    wc.opcode = IBV_WC_RECV;
    wc.qp_num = qp->qpn;
    PushCqe(qp->init.recv_cq, wc, false);
    return absl::OkStatus();
  }
  qp->rq.next_free() = wr;
  qp->rq.Commit();
  return absl::OkStatus();
}

absl::Status Device::PostSend(uint32_t qpn, const SendWr& wr) {
  QueuePair* qp = LookupQp(qpn);
  if (!qp) return NotFound("QP", qpn);
  if (!SendQueueOpen(*qp)) return absl::FailedPreconditionError("QP not ready to send");
  if (wr.num_sge > qp->init.max_send_sge) return absl::InvalidArgumentError("too many SGEs");
  if ((wr.send_flags & IBV_SEND_INLINE) && wr.inline_len > qp->init.max_inline_data) {
    return absl::InvalidArgumentError("inline data larger than max_inline_data");
  }
  bool rc = qp->type == IBV_QPT_RC;
  bool datagram = qp->type == IBV_QPT_UD || qp->type == kQpTypeGsi;
  switch (wr.opcode) {
    case IBV_WR_SEND:
    case IBV_WR_SEND_WITH_IMM:
      break;
    case IBV_WR_SEND_WITH_INV:
    case IBV_WR_RDMA_READ:
    case IBV_WR_ATOMIC_CMP_AND_SWP:
    case IBV_WR_ATOMIC_FETCH_AND_ADD:
      if (!rc) return absl::InvalidArgumentError("opcode needs an RC QP");
      break;
    case IBV_WR_RDMA_WRITE:
    case IBV_WR_RDMA_WRITE_WITH_IMM:
      if (datagram) return absl::InvalidArgumentError("no RDMA WRITE on UD");
      break;
    default:
      return absl::InvalidArgumentError("unsupported opcode");
  }
  if (datagram && !ahs_.Get(wr.ah)) return absl::InvalidArgumentError("bad AH");
  if (qp->sq.full()) return absl::ResourceExhaustedError("send queue full");
  SendWqe& wqe = qp->sq.next_free();
  wqe = SendWqe{};
  wqe.wr = wr;
  uint64_t len = 0;
  if (wr.send_flags & IBV_SEND_INLINE) {
    len = wr.inline_len;
  } else {
    for (uint32_t i = 0; i < wr.num_sge; ++i) len += wr.sg_list[i].length;
  }
  if (wr.opcode == IBV_WR_ATOMIC_CMP_AND_SWP || wr.opcode == IBV_WR_ATOMIC_FETCH_AND_ADD) len = 8;
  // Messages are limited to 2^31 bytes (IBTA 9.7.2 / max_msg_sz reported).
  if (len > (1u << 31)) return absl::InvalidArgumentError("message larger than 2 GiB");
  wqe.length = static_cast<uint32_t>(len);
  wqe.is_rd_atomic = wr.opcode == IBV_WR_RDMA_READ || wr.opcode == IBV_WR_ATOMIC_CMP_AND_SWP ||
                     wr.opcode == IBV_WR_ATOMIC_FETCH_AND_ADD;
  CommitSendWqe(*qp);
  return absl::OkStatus();
}

bool Device::SendQueueOpen(const QueuePair& qp) {
  return qp.state != IBV_QPS_RESET && qp.state != IBV_QPS_INIT && qp.state != IBV_QPS_RTR;
}

void Device::CommitSendWqe(QueuePair& qp) {
  qp.sq.Commit();
  // In Error or Send Queue Error, new send WRs complete with a flush error.
  if (qp.state == IBV_QPS_ERR || qp.state == IBV_QPS_SQE) {
    FlushSendQueue(qp);
  } else {
    Activate(qp);
  }
}

absl::Status Device::RejectSend(uint32_t qpn, uint64_t wr_id, ibv_wr_opcode opcode,
                                ibv_wc_status status) {
  QueuePair* qp = LookupQp(qpn);
  if (!qp) return NotFound("QP", qpn);
  if (SendQueueOpen(*qp) && !qp->sq.full()) {
    // Queued in its place, as a NIC finds a malformed WQE when it fetches it: the WQEs
    // before it execute, it fails with `status` (StartWqe), the ones after are flushed.
    SendWqe& wqe = qp->sq.next_free();
    wqe = SendWqe{};
    wqe.wr.wr_id = wr_id;
    wqe.wr.opcode = opcode;
    wqe.reject = status;
    CommitSendWqe(*qp);
    return absl::OkStatus();
  }
  // No place for it (queue full, or a QP that cannot send): it fails now, after the
  // flush of what is queued.
  ibv_wc wc{};
  wc.wr_id = wr_id;
  wc.status = status;
  wc.opcode = SendCompletionOpcode(opcode);
  wc.qp_num = qp->qpn;
  EnterError(*qp);
  PushCqe(qp->init.send_cq, wc, false);
  return absl::OkStatus();
}

absl::Status Device::RejectRecv(uint32_t qpn, uint64_t wr_id, ibv_wc_status status) {
  QueuePair* qp = LookupQp(qpn);
  if (!qp) return NotFound("QP", qpn);
  ibv_wc wc{};
  wc.wr_id = wr_id;
  wc.status = status;
  wc.opcode = IBV_WC_RECV;
  wc.qp_num = qp->qpn;
  EnterError(*qp);
  PushCqe(qp->init.recv_cq, wc, false);
  return absl::OkStatus();
}

uint32_t Device::SendQueueRoom(uint32_t qpn) const {
  const QueuePair* qp = LookupQp(qpn);
  return qp ? qp->sq.depth() - qp->sq.size() : 0;
}

uint32_t Device::RecvQueueRoom(uint32_t qpn) const {
  const QueuePair* qp = LookupQp(qpn);
  return qp ? qp->rq.depth() - qp->rq.size() : 0;
}

uint32_t Device::SrqRoom(uint32_t srq_h) const {
  const SharedReceiveQueue* srq = srqs_.Get(srq_h);
  return srq ? srq->wqes.depth() - srq->wqes.size() : 0;
}

QueuePair* Device::LookupQp(uint32_t qpn) const {
  if (qpn == 1) return gsi_slot_ ? qps_.Get(gsi_slot_) : nullptr;
  return qpn >= kFirstQpn ? qps_.Get(qpn) : nullptr;
}

bool Device::PollAsyncEvent(AsyncEvent* event) {
  if (events_.empty()) return false;
  *event = events_.front();
  events_.Pop();
  return true;
}

void Device::PostEvent(ibv_event_type type, uint32_t element) {
  if (events_.full()) return;  // oldest events are kept; a flood is not reported twice
  events_.next_free() = AsyncEvent{type, element};
  events_.Commit();
}

}  // namespace vrdma
