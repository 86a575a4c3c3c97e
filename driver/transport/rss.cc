// Receive-side scaling for raw packet QPs (ibv_create_wq, ibv_create_rwq_ind_table, a QP
// with IBV_QP_INIT_ATTR_RX_HASH): a frame the RSS QP's flow rules take goes to one receive
// work queue of its indirection table, picked by the Toeplitz hash (the RSS hash NICs
// compute) of the header fields the QP names, and completes on that work queue's CQ with
// the work queue's number.
#include <cstring>

#include "driver/transport/device.h"
#include "driver/transport/errors.h"
#include "driver/transport/frame_fields.h"
#include "driver/transport/toeplitz.h"

namespace vrdma::driver {
namespace {

// The hash input of a frame: the named fields in RSS order (source address, destination
// address, source port, destination port), those the frame has, in network order.
uint32_t HashInput(const uint8_t* f, uint32_t len, uint64_t fields, uint8_t* out) {
  const FrameFields h = ReadFields(f, len);
  uint32_t n = 0;
  const bool v4 = h.ip_version == 4, v6 = h.ip_version == 6;
  const uint32_t alen = v4 ? 4 : 16;
  if ((v4 && (fields & IBV_RX_HASH_SRC_IPV4)) || (v6 && (fields & IBV_RX_HASH_SRC_IPV6))) {
    std::memcpy(out + n, h.src_ip.data(), alen), n += alen;
  }
  if ((v4 && (fields & IBV_RX_HASH_DST_IPV4)) || (v6 && (fields & IBV_RX_HASH_DST_IPV6))) {
    std::memcpy(out + n, h.dst_ip.data(), alen), n += alen;
  }
  if (h.has_ports) {
    const bool tcp = h.proto == 6;
    auto put = [&](uint16_t port) {
      out[n++] = static_cast<uint8_t>(port >> 8);
      out[n++] = static_cast<uint8_t>(port);
    };
    if (fields & (tcp ? IBV_RX_HASH_SRC_PORT_TCP : IBV_RX_HASH_SRC_PORT_UDP)) put(h.src_port);
    if (fields & (tcp ? IBV_RX_HASH_DST_PORT_TCP : IBV_RX_HASH_DST_PORT_UDP)) put(h.dst_port);
  }
  return n;
}

}  // namespace

absl::StatusOr<uint32_t> RoceDevice::CreateWq(uint32_t pd, uint32_t cqn, uint32_t max_wr,
                                              uint32_t max_sge, uint32_t owner) {
  CompletionQueue* cq = cqs_.Get(cqn);
  if (!cq) return NotFound("CQ", cqn);
  absl::StatusOr<uint32_t> h = CreateSrq(pd, max_wr, max_sge, 0, owner);
  if (!h.ok()) return h;
  SharedReceiveQueue* srq = srqs_.Get(*h);
  srq->wq = true;
  srq->cq = cqn;
  cq->use_count++;
  return h;
}

absl::Status RoceDevice::SetWqReady(uint32_t wq, bool ready) {
  SharedReceiveQueue* srq = srqs_.Get(wq);
  if (!srq || !srq->wq) return NotFound("WQ", wq);
  srq->ready = ready;
  return absl::OkStatus();
}

absl::StatusOr<uint32_t> RoceDevice::CreateRssTable(const std::vector<uint32_t>& wqs) {
  if (wqs.empty() || (wqs.size() & (wqs.size() - 1)))
    return absl::InvalidArgumentError("an indirection table holds 2^n work queues");
  for (uint32_t h : wqs) {
    SharedReceiveQueue* srq = srqs_.Get(h);
    if (!srq || !srq->wq) return NotFound("WQ", h);
  }
  for (uint32_t h : wqs) srqs_.Get(h)->tables++;
  uint32_t handle = next_rss_table_++;
  rss_tables_[handle] = RssTable{wqs, 0};
  return handle;
}

absl::Status RoceDevice::DestroyRssTable(uint32_t table) {
  auto it = rss_tables_.find(table);
  if (it == rss_tables_.end()) return NotFound("indirection table", table);
  if (it->second.qps) return absl::FailedPreconditionError("indirection table used by a QP");
  for (uint32_t h : it->second.wqs) {
    if (SharedReceiveQueue* srq = srqs_.Get(h)) srq->tables--;
  }
  rss_tables_.erase(it);
  return absl::OkStatus();
}

absl::StatusOr<uint32_t> RoceDevice::CreateRssQp(const QpInitAttr& init, RssTable* table) {
  uint32_t qpn;
  QueuePair* qp = qps_.Allocate(&qpn);
  if (!qp) return absl::ResourceExhaustedError("QP table full");
  qp->qpn = qpn;
  qp->type = init.type;
  qp->init = init;
  qp->init.send_cq = qp->init.recv_cq = 0;
  qp->pd = init.pd;
  qp->sq.Init(0);
  qp->rq.Init(0);
  qp->resp.responses.Init(1);
  qp->retransmit_timer.data = qp;
  qp->rnr_timer.data = qp;
  table->qps++;
  return qpn;
}

void RoceDevice::DeliverRss(QueuePair& qp, const uint8_t* frame, uint32_t len) {
  auto t = rss_tables_.find(qp.init.rss_table);
  if (t == rss_tables_.end()) return;
  const std::vector<uint32_t>& wqs = t->second.wqs;
  uint8_t input[36];
  uint32_t n = HashInput(frame, len, qp.init.rss_fields, input);
  uint32_t hash = Toeplitz(qp.init.rss_key.data(), qp.init.rss_key_len, input, n);
  const uint32_t wqn = wqs[hash & (wqs.size() - 1)];
  SharedReceiveQueue* srq = srqs_.Get(wqn);
  if (!srq || !srq->ready || srq->wqes.empty()) {
    counters_.raw_rx_no_recv_wqe++;
    return;
  }
  RecvWr wr = srq->wqes.front();
  srq->wqes.Pop();
  counters_.raw_rx_frames++;
  // The work queue's PD decides its SGEs' access (as an XRC SRQ's does).
  qp.pd = srq->pd;
  Access a = ScatterSges(qp, wr.sg_list, wr.num_sge, 0, frame, len);
  qp.pd = qp.init.pd;
  ibv_wc wc{};
  wc.wr_id = wr.wr_id;
  wc.status = a == Access::kOk       ? IBV_WC_SUCCESS
              : a == Access::kLength ? IBV_WC_LOC_LEN_ERR
                                     : IBV_WC_LOC_PROT_ERR;
  wc.opcode = IBV_WC_RECV;
  wc.byte_len = a == Access::kOk ? len : 0;
  wc.qp_num = wqn;  // the work queue's number, as mlx5 reports an RSS receive
  PushCqe(srq->cq, wc, false);
}

}  // namespace vrdma::driver
