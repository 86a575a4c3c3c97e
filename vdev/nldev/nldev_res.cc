// The resource messages: RES_GET's summary and the QP, CM ID, CQ, MR, PD, context and SRQ
// tables (nldev.c's res_get_common_doit / res_get_common_dumpit and fill_res_*_entry).
#include <infiniband/verbs.h>

#include <algorithm>
#include <cstring>
#include <memory>

#include "vdev/nldev/nldev_internal.h"
#include "vdev/object_info.h"
#include "vdev/pid_view.h"

namespace vrdma::vdev::nldev {

namespace {

// Per table: its command, nested attributes, the attribute naming one object, the
// summary's name and the vdev resource it lists (kCount: not a verbs object).
struct Table {
  uint32_t op;
  uint16_t table;
  uint16_t entry;
  uint16_t id;
  const char* name;
  Resource kind;
};
// In the order of the kernel's summary (fill_res_info's names[]).
constexpr Table kTables[] = {
    {RDMA_NLDEV_CMD_RES_PD_GET, RDMA_NLDEV_ATTR_RES_PD, RDMA_NLDEV_ATTR_RES_PD_ENTRY,
     RDMA_NLDEV_ATTR_RES_PDN, "pd", Resource::kPd},
    {RDMA_NLDEV_CMD_RES_CQ_GET, RDMA_NLDEV_ATTR_RES_CQ, RDMA_NLDEV_ATTR_RES_CQ_ENTRY,
     RDMA_NLDEV_ATTR_RES_CQN, "cq", Resource::kCq},
    {RDMA_NLDEV_CMD_RES_QP_GET, RDMA_NLDEV_ATTR_RES_QP, RDMA_NLDEV_ATTR_RES_QP_ENTRY,
     RDMA_NLDEV_ATTR_RES_LQPN, "qp", Resource::kQp},
    {RDMA_NLDEV_CMD_RES_CM_ID_GET, RDMA_NLDEV_ATTR_RES_CM_ID, RDMA_NLDEV_ATTR_RES_CM_ID_ENTRY,
     RDMA_NLDEV_ATTR_RES_CM_IDN, "cm_id", Resource::kCount},
    {RDMA_NLDEV_CMD_RES_MR_GET, RDMA_NLDEV_ATTR_RES_MR, RDMA_NLDEV_ATTR_RES_MR_ENTRY,
     RDMA_NLDEV_ATTR_RES_MRN, "mr", Resource::kMr},
    {RDMA_NLDEV_CMD_RES_CTX_GET, RDMA_NLDEV_ATTR_RES_CTX, RDMA_NLDEV_ATTR_RES_CTX_ENTRY,
     RDMA_NLDEV_ATTR_RES_CTXN, "ctx", Resource::kCount},
    {RDMA_NLDEV_CMD_RES_SRQ_GET, RDMA_NLDEV_ATTR_RES_SRQ, RDMA_NLDEV_ATTR_RES_SRQ_ENTRY,
     RDMA_NLDEV_ATTR_RES_SRQN, "srq", Resource::kSrq},
};

const Table* TableOf(uint32_t op) {
  for (const Table& t : kTables) {
    if (t.op == op) return &t;
  }
  return nullptr;
}

bool Connected(const ObjectInfo& o) {
  return o.qp_state >= IBV_QPS_RTR && o.qp_state <= IBV_QPS_SQE;
}

// fill_res_qp_entry (with fill_res_qp_entry_query): the port once the QP has one (INIT),
// the remote QPN of a connected RC or UC QP, the receive PSN of RC and UC only.
void QpEntry(const ObjectInfo& o, NlAttrs* a) {
  if (o.qp_state != IBV_QPS_RESET) a->PutU32(RDMA_NLDEV_ATTR_PORT_INDEX, 1);
  a->PutU32(RDMA_NLDEV_ATTR_RES_LQPN, o.id);
  a->PutU32(RDMA_NLDEV_ATTR_RES_PDN, o.pd);
  bool rc_uc = o.qp_type == IBV_QPT_RC || o.qp_type == IBV_QPT_UC;
  if (rc_uc && Connected(o)) a->PutU32(RDMA_NLDEV_ATTR_RES_RQPN, o.dest_qpn);
  if (rc_uc) a->PutU32(RDMA_NLDEV_ATTR_RES_RQ_PSN, o.rq_psn);
  a->PutU32(RDMA_NLDEV_ATTR_RES_SQ_PSN, o.sq_psn);
  // IBV_QPT_* and IBV_QPS_* have the kernel's ib_qp_type and ib_qp_state numbers.
  a->PutU8(RDMA_NLDEV_ATTR_RES_TYPE, static_cast<uint8_t>(o.qp_type));
  a->PutU8(RDMA_NLDEV_ATTR_RES_STATE, static_cast<uint8_t>(o.qp_state));
}

}  // namespace

std::optional<pid_t> Nldev::PidOf(const Session& s) {
  auto it = pids_.find(&s);
  if (it != pids_.end()) return it->second;
  std::optional<pid_t> pid;
  if (!ctx_.may_see_session || ctx_.may_see_session(s)) {
    pid = who_.peer ? PidSeenBy(*who_.peer, s.peer()) : std::optional<pid_t>(s.pid());
  }
  pids_[&s] = pid;
  return pid;
}

std::vector<Nldev::Entry> Nldev::Entries(uint32_t op, const Device& d) {
  const Table* t = TableOf(op);
  std::vector<Entry> out;
  if (!t || !d.vdev) return out;  // a pdev holds no client's objects
  if (op == RDMA_NLDEV_CMD_RES_CM_ID_GET) {
    if (!ctx_.reporters) return out;
    for (const ObjectReporter* rep : *ctx_.reporters) {
      if (rep->type() != "cm_id") continue;
      std::vector<ReportedObject> objects;
      rep->Report(&objects);
      for (ReportedObject& o : objects) {
        if (o.vdev != d.vdev || !o.owner || o.nldev_attrs.empty()) continue;
        std::optional<pid_t> pid = PidOf(*o.owner);
        if (!pid) continue;
        Entry e;
        std::optional<std::vector<NlAttr>> attrs = ParseAttrs(o.nldev_attrs);
        for (const NlAttr& a : attrs ? *attrs : std::vector<NlAttr>{}) {
          uint32_t v = 0;
          if (a.value.size() == sizeof v) std::memcpy(&v, a.value.data(), sizeof v);
          if (a.type == RDMA_NLDEV_ATTR_RES_CM_IDN) e.id = v;
          if (a.type == RDMA_NLDEV_ATTR_PORT_INDEX) e.port = v;
        }
        NlAttrs a;
        a.Append(o.nldev_attrs);
        a.PutU32(RDMA_NLDEV_ATTR_RES_PID, static_cast<uint32_t>(*pid));
        e.attrs = a.bytes();
        out.push_back(std::move(e));
      }
    }
  } else {
    for (const auto& s : *ctx_.sessions) {
      if (s->vdev() != d.vdev) continue;
      std::optional<pid_t> pid = PidOf(*s);
      if (!pid) continue;
      const uint32_t ctxn = s->context_id();
      if (op == RDMA_NLDEV_CMD_RES_CTX_GET) {
        NlAttrs a;
        a.PutU32(RDMA_NLDEV_ATTR_RES_CTXN, ctxn);
        a.PutU32(RDMA_NLDEV_ATTR_RES_PID, static_cast<uint32_t>(*pid));
        out.push_back(Entry{ctxn, 0, a.bytes()});
        continue;
      }
      std::vector<ObjectInfo> objects;
      s->ListObjects(&objects);
      for (const ObjectInfo& o : objects) {
        if (o.kind != t->kind) continue;
        NlAttrs a;
        Entry e{o.id, 0, {}};
        switch (o.kind) {
          case Resource::kQp:
            QpEntry(o, &a);
            e.port = o.qp_state != IBV_QPS_RESET ? 1 : 0;
            break;
          case Resource::kCq:  // fill_res_cq_entry
            a.PutU32(RDMA_NLDEV_ATTR_RES_CQE, o.cqe);
            a.PutU64(RDMA_NLDEV_ATTR_RES_USECNT, o.users);
            a.PutU8(RDMA_NLDEV_ATTR_DEV_DIM, 0);
            a.PutU32(RDMA_NLDEV_ATTR_RES_CQN, o.id);
            a.PutU32(RDMA_NLDEV_ATTR_RES_CTXN, ctxn);
            break;
          case Resource::kMr:  // fill_res_mr_entry: keys with CAP_NET_ADMIN only
            if (administrator()) {
              a.PutU32(RDMA_NLDEV_ATTR_RES_RKEY, o.rkey);
              a.PutU32(RDMA_NLDEV_ATTR_RES_LKEY, o.lkey);
            }
            a.PutU64(RDMA_NLDEV_ATTR_RES_MRLEN, o.length);
            a.PutU32(RDMA_NLDEV_ATTR_RES_MRN, o.id);
            a.PutU32(RDMA_NLDEV_ATTR_RES_PDN, o.pd);
            break;
          case Resource::kPd:  // fill_res_pd_entry
            a.PutU64(RDMA_NLDEV_ATTR_RES_USECNT, o.users);
            a.PutU32(RDMA_NLDEV_ATTR_RES_PDN, o.id);
            a.PutU32(RDMA_NLDEV_ATTR_RES_CTXN, ctxn);
            break;
          case Resource::kSrq:  // fill_res_srq_entry: a basic SRQ
            a.PutU32(RDMA_NLDEV_ATTR_RES_SRQN, o.id);
            a.PutU8(RDMA_NLDEV_ATTR_RES_TYPE, IBV_SRQT_BASIC);
            a.PutU32(RDMA_NLDEV_ATTR_RES_PDN, o.pd);
            break;
          default:
            continue;
        }
        a.PutU32(RDMA_NLDEV_ATTR_RES_PID, static_cast<uint32_t>(*pid));  // fill_res_name_pid
        e.attrs = a.bytes();
        out.push_back(std::move(e));
      }
    }
  }
  std::sort(out.begin(), out.end(), [](const Entry& a, const Entry& b) { return a.id < b.id; });
  return out;
}

// nldev_res_get_doit / nldev_res_get_dumpit: per device, how many objects of each kind
// the requester may see.
Result Nldev::ResSummary(const Request& r) {
  std::vector<Device> devices;
  if (r.dump()) {
    devices = Devices();
  } else {
    std::optional<Device> d = DeviceOf(r);
    if (!d) return Failure{EINVAL, ""};
    devices.push_back(*d);
  }
  for (const Device& d : devices) {
    NlMessage m = Start(r, r.dump() ? NLM_F_MULTI : 0, &d);
    size_t summary = m.BeginNest(RDMA_NLDEV_ATTR_RES_SUMMARY);
    for (const Table& t : kTables) {
      size_t entry = m.BeginNest(RDMA_NLDEV_ATTR_RES_SUMMARY_ENTRY);
      m.PutString(RDMA_NLDEV_ATTR_RES_SUMMARY_ENTRY_NAME, t.name);
      m.PutU64(RDMA_NLDEV_ATTR_RES_SUMMARY_ENTRY_CURR, Entries(t.op, d).size());
      m.EndNest(entry);
    }
    m.EndNest(summary);
    Emit(std::move(m).Finish());
  }
  if (!r.dump()) EndDatagram();
  return std::nullopt;
}

// res_get_common_doit: one object, named by its number, its attributes at the top level;
// res_get_common_dumpit: one device's objects, as many to a message as fit, a port's
// only for QPs and CM IDs when the request names one.
Result Nldev::ResTable(const Request& r) {
  const Table& t = *TableOf(r.op());
  std::optional<Device> d = DeviceOf(r);
  if (!d) return Failure{EINVAL, ""};
  uint32_t port = 0;
  if (r.has(RDMA_NLDEV_ATTR_PORT_INDEX)) {
    port = r.U32(RDMA_NLDEV_ATTR_PORT_INDEX);
    if (port != 1) return Failure{EINVAL, ""};
  }
  std::vector<Entry> entries = Entries(t.op, *d);
  if (!r.dump()) {
    if (!r.has(t.id)) return Failure{EINVAL, ""};
    uint32_t id = r.U32(t.id);
    for (const Entry& e : entries) {
      if (e.id != id) continue;
      NlMessage m = Start(r, 0, &*d);
      m.Append(e.attrs);
      EmitLast(std::move(m));
      return std::nullopt;
    }
    return Failure{ENOENT, ""};
  }
  const bool by_port = t.op == RDMA_NLDEV_CMD_RES_QP_GET || t.op == RDMA_NLDEV_CMD_RES_CM_ID_GET;
  std::unique_ptr<NlMessage> m;
  size_t nest = 0;
  size_t filled = 0;
  auto flush = [&] {
    if (!m) return;
    m->EndNest(nest);
    Emit(std::move(*m).Finish());
    m.reset();
  };
  for (const Entry& e : entries) {
    if (by_port && port && e.port != port) continue;
    if (m && filled && m->size() + NLA_HDRLEN + e.attrs.size() > kDatagramSize) flush();
    if (!m) {
      m = std::make_unique<NlMessage>(Start(r, NLM_F_MULTI, &*d));
      nest = m->BeginNest(t.table);
      filled = 0;
    }
    size_t entry = m->BeginNest(t.entry);
    m->Append(e.attrs);
    m->EndNest(entry);
    ++filled;
  }
  flush();
  return std::nullopt;
}

}  // namespace vrdma::vdev::nldev
