// The daemon's connection manager: RDMA-CM (IP addressing, ports, listeners, events) over
// the IBTA CM (REQ/MRA/REJ/REP/RTU/DREQ/DREP through each pdev's shared QP1), for the
// RDMA-CM files of its clients. It plays the parts of Linux's cma.c, cm.c and ucma.c:
//  - rdma_cm.cc: the IDs' operations (bind, resolve, listen, connect, accept, reject,
//    disconnect, queries, QP attributes) and the events they make;
//  - rdma_cm_multicast.cc: multicast joins and leaves (cma_iboe_join_multicast);
//  - ib_cm.cc: the CM MADs, in and out, and their timers (IBTA 12.6, 12.9);
//  - ucma_requests.cc: the RDMA-CM uAPI commands from the wire protocol.
// Everything runs on vrdmad's loop thread and never blocks.
#pragma once

#include <endian.h>
#include <rdma/ib_user_verbs.h>
#include <rdma/rdma_user_cm.h>

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <random>
#include <set>
#include <span>
#include <tuple>
#include <unordered_map>
#include <vector>

#include "absl/status/status.h"
#include "cm/cm_id.h"
#include "cm/ucma_file.h"
#include "cm/wire/cm_messages.h"
#include "qp1/gsi.h"
#include "vdev/plugins.h"
#include "vdev/registry.h"

namespace vrdma::vdev {
class Session;
}

namespace vrdma::cm {

// Counters of the CM, per daemon (stat show): MADs by type, retries, drops by reason.
struct CmCounters {
  std::array<uint64_t, 9> sent{};      // by wire::CmMessage index (REQ, MRA, REJ, ...)
  std::array<uint64_t, 9> received{};  // the same
  uint64_t resends = 0;
  uint64_t timeouts = 0;
  uint64_t drop_malformed = 0;     // not a CM MAD we parse
  uint64_t drop_unknown_comm = 0;  // a comm ID no connection has
  uint64_t drop_wrong_vdev = 0;    // a comm ID of another vdev's connection
  uint64_t drop_wrong_state = 0;   // a message the connection's state does not expect
  uint64_t rej_no_listener = 0;    // REQs rejected: no one listens on the service ID
  uint64_t rej_backlog = 0;        // REQs rejected: the listener's backlog is full
  uint64_t send_failures = 0;
};

class RdmaCm : public qp1::MadHandler,
               public vdev::Poller,
               public vdev::ObjectReporter,
               public vdev::CounterReporter {
 public:
  // What Linux's RDMA-CM puts in a REQ (cma.c: CMA_CM_RESPONSE_TIMEOUT, CMA_MAX_CM_RETRIES,
  // CMA_IBOE_PACKET_LIFETIME), so that its peers time out as they would with Linux.
  static constexpr uint8_t kCmResponseTimeout = 20;  // 4.096 us * 2^20, about 4.3 s
  static constexpr uint8_t kMaxCmRetries = 15;
  static constexpr uint8_t kPacketLifeTime = 18;
  static constexpr uint8_t kHopLimit = 64;   // an IP TTL: RoCEv2 packets are routable
  static constexpr uint8_t kPacketRate = 0;  // IB_RATE_PORT_CURRENT, as Linux sends on RoCE
  static constexpr uint32_t kRdmaUdpQkey = 0x01234567;  // RDMA_UDP_QKEY (rdma_cma.h)
  // The IBTA's 5-bit time exponent (4.096 us * 2^t) in nanoseconds, as cm.c rounds it
  // (cm_convert_to_ms: 2^(t-8) ms).
  static constexpr uint64_t CmTimeoutNs(uint8_t t) {
    return (uint64_t{1} << (t > 8 ? t - 8 : 0)) * 1'000'000;
  }
  RdmaCm(vdev::Registry* registry, qp1::Qp1Poller* qp1);
  ~RdmaCm() override;
  void set_qp1(qp1::Qp1Poller* qp1) { qp1_ = qp1; }

  // ---- files (ucma_requests.cc) ----
  // Makes `client`'s connection an RDMA-CM file whose channel is `channel_fd` (owned from
  // now on). Returns the file's token.
  absl::StatusOr<uint64_t> OpenFile(vdev::Session& client, int channel_fd);
  UcmaFile* FileOf(const vdev::Session& client);
  UcmaFile* FileByToken(uint64_t token);
  // The connection closed: every ID of the file is destroyed as by DESTROY_ID.
  void CloseFile(vdev::Session& client);

  // ---- ID operations (rdma_cm.cc): 0 or the errno the kernel's ucma gives ----
  int CreateId(UcmaFile& file, uint64_t uid, uint16_t ps, uint8_t qp_type, uint32_t* handle);
  // *reported: the ID's events already reported; *drained: the queue went empty.
  int DestroyId(UcmaFile& file, uint32_t handle, uint32_t* reported, bool* drained);
  int Bind(CmId& id, const sockaddr_storage& addr);
  int ResolveAddr(CmId& id, const sockaddr_storage* src, const sockaddr_storage& dst,
                  uint32_t timeout_ms, uint64_t now_ns);
  int ResolveRoute(CmId& id);
  int Listen(CmId& id, int backlog);
  int Connect(CmId& id, const rdma_ucm_conn_param& param, uint64_t now_ns);
  int Accept(CmId& id, uint64_t uid, const rdma_ucm_conn_param& param, bool has_param,
             uint64_t now_ns);
  int Reject(CmId& id, uint8_t reason, const uint8_t* private_data, uint8_t len);
  int Disconnect(CmId& id, uint64_t now_ns);
  int InitQpAttr(const CmId& id, uint32_t qp_state, ib_uverbs_qp_attr* out);
  int QueryRoute(const CmId& id, rdma_ucm_query_route_resp* out);
  int QueryAddr(const CmId& id, rdma_ucm_query_addr_resp* out);
  int QueryPath(const CmId& id, std::vector<uint8_t>* out, size_t max);
  int SetOption(CmId& id, uint32_t level, uint32_t name, const uint8_t* value, size_t len);
  // Moves `handle` of `from` into `to` with its queued events (it keeps its number).
  int MigrateId(UcmaFile& from, uint32_t handle, UcmaFile& to, uint32_t* reported,
                bool* from_drained);

  // ---- multicast (rdma_cm_multicast.cc) ----
  // rdma_join_multicast: `id` joins the group at `addr`; *handle names the join. The
  // MULTICAST_JOIN event (the group's address handle, QPN 0xFFFFFF, the Q_Key) is queued.
  int JoinMulticast(CmId& id, uint64_t uid, const sockaddr_storage& addr, uint16_t join_flags,
                    uint32_t* handle);
  // rdma_leave_multicast: the join `handle` of `file` ends; its unread events go.
  int LeaveMulticast(UcmaFile& file, uint32_t handle, uint32_t* reported, bool* drained);
  // Joins a file's IDs may hold together, as many as it may have IDs (the kernel bounds
  // them only by memory): ENOMEM beyond, and a migration that would pass it is refused.
  static constexpr size_t kMaxJoinsPerFile = UcmaFile::kMaxIds;

  // ---- the wire (ib_cm.cc) ----
  void OnMad(const qp1::InboundMad& mad) override;
  int Poll(uint64_t now_ns) override;
  bool HasPendingWork() const override { return !timed_.empty(); }

  // A vdev's counters (zero for one the CM has not seen).
  CmCounters CountersFor(const vdev::Vdev& v) const;

  // `vrdmactl stat show`: "cm dev NAME: ..." per vdev, "cm pdev NAME: ..." (its QP1) per pdev.
  std::string_view kind() const override { return "cm"; }
  void VdevCounters(const vdev::Vdev& v, vdev::CounterList* out) const override;
  void PdevCounters(const vdev::Pdev& p, vdev::CounterList* out) const override;

  // `vrdmactl res show cm_id`: every ID, as `rdma res show cm_id` shows the kernel's.
  std::string_view type() const override { return "cm_id"; }
  void Report(std::vector<vdev::ReportedObject>* out) const override;

 private:
  // rdma_cm.cc
  vdev::Vdev* VdevOf(const CmId& id) const;
  void BindToVdev(CmId& id, const qp1::InboundMad* mad, vdev::Vdev* v, uint32_t gid_index);
  int AllocatePort(CmId& id, uint16_t port);
  void ReleasePort(CmId& id);
  void Event(CmId& id, uint32_t event, int32_t status);
  void EventWithConn(CmId& id, uint32_t owner, uint32_t event, int32_t status,
                     const rdma_ucm_conn_param& conn);
  void Forget(CmId& id);  // out of every table, timers off
  void LeaveBacklog(CmId& id, bool accepted);
  // IDs on a vdev that was deleted hear DEVICE_REMOVAL (cma_process_remove); those on a
  // vdev whose interface's MAC changed, ADDR_CHANGE (cma_netdev_change).
  void CheckVdevs();
  void FinishResolve(CmId& id, const absl::StatusOr<driver::wire::MacAddr>& mac);
  uint64_t NamespaceKey(const CmId& id) const;
  CmId* FindListener(const vdev::Vdev& v, uint16_t ps, uint16_t port,
                     const driver::wire::Gid& dst_ip);

  void BuildCmaHeaderOf(const CmId& id, uint8_t* out) const;
  int ConnectUd(CmId& id, const rdma_ucm_conn_param& param, uint64_t now_ns);
  void FillUdAh(const CmId& id, ib_uverbs_ah_attr* ah) const;

  // ib_cm.cc
  // What a REQ or SIDR_REQ asks for, from its service ID and RDMA-CM header: the port,
  // the addresses and the listener for them on the receiving vdev (null: none). nullopt:
  // not an RDMA-CM IP request.
  struct RequestTarget {
    uint16_t port_space = 0;
    uint16_t port = 0;
    driver::wire::Gid dst_ip{};
    driver::wire::Gid src_ip{};
    uint16_t src_port = 0;
    CmId* listener = nullptr;
  };
  std::optional<RequestTarget> MatchRequest(const qp1::InboundMad& mad, uint64_t service_id,
                                            std::span<const uint8_t> private_data);
  uint32_t NewCommId();
  void OnSidrReq(const qp1::InboundMad& mad, const wire::MadHeader& h, const wire::SidrReq& req);
  void OnSidrRep(CmId& id, const wire::SidrRep& rep);
  void SendSidrRep(CmId& id, wire::SidrStatus status, uint32_t qpn, const uint8_t* data,
                   size_t len);
  void SendMad(CmId& id, const wire::CmMessage& msg, bool arm_resend, uint64_t now_ns);
  void SendTo(const qp1::InboundMad& to, const wire::CmMessage& msg, uint64_t tid);
  void ArmResend(CmId& id, uint64_t interval_ns, int retries, uint64_t now_ns);
  void Disarm(CmId& id);
  void OnReq(const qp1::InboundMad& mad, const wire::MadHeader& h, const wire::Req& req);
  void OnRep(CmId& id, const qp1::InboundMad& mad, const wire::Rep& rep);
  void OnRtu(CmId& id);
  void OnRej(CmId& id, const wire::Rej& rej);
  void OnMra(CmId& id, const wire::Mra& mra, uint64_t now_ns);
  void OnDreq(CmId& id, const qp1::InboundMad& mad, const wire::MadHeader& h,
              const wire::Dreq& dreq);
  void OnDrep(CmId& id, uint64_t now_ns);
  void OnTimeout(CmId& id, uint64_t now_ns);
  void EnterTimeWait(CmId& id, uint64_t now_ns);
  void SendRej(CmId& id, wire::RejReason reason, uint8_t message_rejected, const uint8_t* data,
               size_t len);
  void SendDreq(CmId& id, uint64_t now_ns);
  void SendDrep(CmId& id);
  void SendRtu(CmId& id);
  void SendRep(CmId& id, uint64_t now_ns);
  void SendMra(CmId& id);
  // Tears a connection down for DESTROY_ID or a closing file (IBTA 12.9.5: REJ before
  // it is established, DREQ after).
  void AbortConnection(CmId& id);

  vdev::Registry* registry_;
  qp1::Qp1Poller* qp1_;
  std::map<const vdev::Session*, std::unique_ptr<UcmaFile>> files_;
  std::unordered_map<uint64_t, UcmaFile*> files_by_token_;
  // Ports: (namespace, port space, port) -> the IDs bound to it.
  std::map<std::tuple<uint64_t, uint16_t, uint16_t>, std::vector<CmId*>> ports_;
  std::vector<CmId*> listeners_;
  std::unordered_map<uint32_t, CmId*> by_comm_id_;
  // Passive connections by the peer's (comm ID, CA GUID): a repeated REQ finds its own.
  std::map<std::pair<uint32_t, uint64_t>, CmId*> by_remote_;
  std::set<CmId*> timed_;  // IDs with a resend timer, time wait or neighbour query
  std::unordered_map<uint32_t, CmId*> multicast_owner_;  // a join's handle -> its ID
  std::mt19937_64 random_;
  uint32_t comm_id_seed_ = 0;
  uint32_t next_comm_id_ = 1;
  uint32_t next_handle_ = 1;
  // By vdev ID (IDs are never reused; a deleted vdev's go in CheckVdevs). Entry 0
  // takes what happens to an ID whose vdev is already gone; no row shows it.
  std::unordered_map<uint32_t, CmCounters> counters_;
  CmCounters& CountersOf(const vdev::Vdev* v) { return counters_[v ? v->id : 0]; }
  uint64_t now_ns_ = 0;           // the last pass's time, for requests (which carry none)
  uint64_t vdev_generation_ = 0;  // the registry's, when the IDs were last checked
};

}  // namespace vrdma::cm
