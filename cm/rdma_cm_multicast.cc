// RDMA-CM multicast on RoCE (Linux's cma_iboe_join_multicast and ucma_process_join): no
// subnet administrator, the group's GID is its IP address, and the join completes at once
// with the address handle a UD QP sends to the group through.
#include <infiniband/verbs.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "cm/rdma_cm.h"
#include "cm/route.h"
#include "driver/device.h"

namespace vrdma::cm {

using driver::wire::Gid;
using driver::wire::NetworkType;

int RdmaCm::JoinMulticast(CmId& id, uint64_t uid, const sockaddr_storage& addr, uint16_t join_flags,
                          uint32_t* handle) {
  // ucma_process_join: a full member, or a send-only one; nothing else.
  if (join_flags != RDMA_MC_JOIN_FLAG_FULLMEMBER &&
      join_flags != RDMA_MC_JOIN_FLAG_SENDONLY_FULLMEMBER) {
    return EINVAL;
  }
  // rdma_join_multicast: an ID with a device, bound or with its address resolved, of a
  // UD port space.
  vdev::Vdev* v = VdevOf(id);
  if (!v || (id.state != IdState::kAddrBound && id.state != IdState::kAddrResolved)) {
    return EINVAL;
  }
  if (id.qp_type != IBV_QPT_UD) return EINVAL;
  std::optional<Gid> group = GidOfSockaddr(addr);
  if (!group || IsAnyAddress(addr)) return EINVAL;  // cma_zero_addr
  // The group is of the ID's address family: its datagrams leave from the ID's GID.
  if (addr.ss_family != id.src.ss_family) return EINVAL;
  if (id.gid_index >= v->gids.size()) return EINVAL;
  const NetworkType type = v->gids[id.gid_index].type;
  // cma_iboe_set_mgid: an IPv4 group is ::ffff:a.b.c.d on RoCEv2, ff0e::ffff:a.b.c.d on
  // RoCEv1; an IPv6 group is its address.
  Gid mgid = *group;
  if (type == NetworkType::kRoceV1 && IsIpv4Mapped(mgid)) {
    mgid[0] = 0xff;
    mgid[1] = 0x0e;
  }
  // Linux takes any address here and then fails the QP's attach to a unicast GID (the
  // MULTICAST_ERROR event); the join is refused at once instead.
  if (!driver::wire::IsMulticastGid(mgid)) return EINVAL;
  if (id.file->joins() >= kMaxJoinsPerFile) return ENOMEM;

  const uint32_t h = next_handle_++;
  if (next_handle_ == 0) next_handle_ = 1;
  // The event cma_make_mc_event makes: an address handle to the group from the ID's GID
  // (ib_init_ah_from_mcmember; hop limit 64 for RoCEv2, cma_iboe_join_multicast's 1 for
  // RoCEv1), RDMA-CM's Q_Key and the multicast QPN, 0xFFFFFF.
  rdma_ucm_event_resp resp{};
  resp.uid = uid;
  resp.id = h;
  resp.event = kEventMulticastJoin;
  resp.param.ud.qp_num = 0xffffff;
  resp.param.ud.qkey = kRdmaUdpQkey;
  ib_uverbs_ah_attr& ah = resp.param.ud.ah_attr;
  std::memcpy(ah.grh.dgid, mgid.data(), 16);
  ah.grh.sgid_index = static_cast<uint8_t>(id.gid_index);
  ah.grh.hop_limit = type == NetworkType::kRoceV1 ? 1 : kHopLimit;
  ah.is_global = 1;
  ah.port_num = 1;
  if (!id.file->Enqueue(id.handle, resp, h)) return ENOMEM;

  CmMulticast m;
  m.handle = h;
  m.uid = uid;
  m.addr = addr;
  m.mgid = mgid;
  m.send_only = join_flags == RDMA_MC_JOIN_FLAG_SENDONLY_FULLMEMBER;
  id.multicasts.push_back(m);
  id.file->CountJoins(1);
  multicast_owner_[h] = &id;
  *handle = h;
  return 0;
}

int RdmaCm::LeaveMulticast(UcmaFile& file, uint32_t handle, uint32_t* reported, bool* drained) {
  // ucma_leave_multicast: an unknown join is ENOENT, another file's EINVAL.
  auto it = multicast_owner_.find(handle);
  if (it == multicast_owner_.end()) return ENOENT;
  CmId& id = *it->second;
  if (id.file != &file) return EINVAL;
  auto m = std::find_if(id.multicasts.begin(), id.multicasts.end(),
                        [&](const CmMulticast& j) { return j.handle == handle; });
  *reported = m == id.multicasts.end() ? 0 : m->reported;
  if (m != id.multicasts.end()) {
    id.multicasts.erase(m);
    file.CountJoins(-1);
  }
  multicast_owner_.erase(it);
  *drained = file.DropMulticastEvents(handle);
  return 0;
}

}  // namespace vrdma::cm
