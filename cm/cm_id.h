// An RDMA-CM identifier as the daemon keeps it (Linux's struct rdma_id_private and the IB
// CM's cm_id together): its addresses, the vdev it is bound to, its state, and, once it
// connects, the IBTA CM connection (comm IDs, the REQ/REP parameters, retry timer).
#pragma once

#include <netinet/in.h>
#include <sys/socket.h>

#include <array>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "cm/wire/cm_messages.h"
#include "driver/device.h"
#include "vdev/netdev/neighbour.h"

namespace vrdma::cm {

class UcmaFile;

// The events of the RDMA-CM uAPI (enum rdma_cm_event_type: the kernel's and librdmacm's
// numbering, rdma_ucm_event_resp.event).
enum UcmaEvent : uint32_t {
  kEventAddrResolved = 0,
  kEventAddrError = 1,
  kEventRouteResolved = 2,
  kEventRouteError = 3,
  kEventConnectRequest = 4,
  kEventConnectResponse = 5,
  kEventConnectError = 6,
  kEventUnreachable = 7,
  kEventRejected = 8,
  kEventEstablished = 9,
  kEventDisconnected = 10,
  kEventDeviceRemoval = 11,
  kEventMulticastJoin = 12,
  kEventMulticastError = 13,
  kEventAddrChange = 14,
  kEventTimewaitExit = 15,
};

// RDMA-CM states (enum rdma_cm_state in Linux's cma_priv.h).
enum class IdState : uint8_t {
  kIdle,
  kAddrQuery,
  kAddrResolved,
  kRouteQuery,
  kRouteResolved,
  kConnect,  // active: REQ sent; passive: REQ received, waiting for the consumer
  kDisconnect,
  kAddrBound,
  kListen,
  kDeviceRemoval,
  kEstablished,
};
const char* IdStateName(IdState s);

// IBTA CM connection states (IBTA 12.9.5, figure 154), the ones a RoCE CM uses.
enum class ConnState : uint8_t {
  kIdle,
  kReqSent,
  kReqRcvd,  // passive: REQ given to the consumer (MRA sent)
  kRepSent,  // passive: waiting for RTU
  kRepRcvd,  // active: REP given to the consumer, RTU not sent yet
  kEstablished,
  kDreqSent,
  kDreqRcvd,
  kTimeWait,
  kSidrReqSent,
  kSidrReqRcvd,  // passive: SIDR_REQ given to the consumer
};

// What the connection's two sides agreed, from REQ and REP (IBTA 12.6.5, 12.6.8).
struct ConnParams {
  uint32_t local_qpn = 0;
  uint32_t remote_qpn = 0;
  uint32_t local_psn = 0;   // our REQ's/REP's Starting PSN: the QP's RQ PSN
  uint32_t remote_psn = 0;  // the peer's message's: the QP's SQ PSN
  uint32_t qkey = 0;
  uint8_t responder_resources = 0;
  uint8_t initiator_depth = 0;
  uint8_t retry_count = 7;
  uint8_t rnr_retry_count = 7;
  uint8_t local_ack_timeout = 19;  // IBTA 5-bit exponent: 4.096 us * 2^n (the packet lifetime + 1)
  bool flow_control = false;
  bool srq = false;
  ibv_mtu path_mtu = IBV_MTU_1024;
};

// A multicast group an ID joined (rdma_join_multicast: Linux's struct cma_multicast and
// ucma's struct ucma_multicast together).
struct CmMulticast {
  uint32_t handle = 0;  // the join's number (rdma_ucm_create_id_resp.id); LEAVE names it
  uint64_t uid = 0;     // librdmacm's record of the join, echoed in its event
  sockaddr_storage addr{};
  driver::wire::Gid mgid{};
  bool send_only = false;  // RDMA_MC_JOIN_FLAG_SENDONLY_FULLMEMBER
  uint32_t reported = 0;   // its events the consumer has read (LEAVE's events_reported)
};

struct CmId {
  uint32_t handle = 0;  // the ID's number in its file (rdma_ucm_create_id_resp.id)
  uint64_t uid = 0;     // librdmacm's context pointer, echoed in events
  UcmaFile* file = nullptr;
  uint16_t port_space = 0;
  uint8_t qp_type = 0;  // IBV_QPT_RC or IBV_QPT_UD
  IdState state = IdState::kIdle;

  // Addresses (AF_INET or AF_INET6; family 0 while unset).
  sockaddr_storage src{};
  sockaddr_storage dst{};
  bool bound = false;  // holds a port in the port table

  // The vdev it is bound to (by identity; Vdev* is looked up again on use, so a deleted
  // vdev is seen as gone) and the vdev's GID entry its source address is.
  uint32_t vdev_id = 0;
  std::string vdev_name;
  uint32_t gid_index = 0;
  driver::wire::Gid sgid{};
  driver::wire::Gid dgid{};
  // The vdev's MAC when the ID was bound to it (rdma_dev_addr.src_dev_addr): a change of
  // it is an RDMA_CM_EVENT_ADDR_CHANGE (CheckVdevs).
  driver::wire::MacAddr smac{};
  driver::wire::MacAddr dmac{};
  bool dmac_known = false;

  // Options (rdma_set_option).
  uint8_t tos = 0;
  bool reuseaddr = false;
  bool afonly = false;
  std::optional<uint8_t> ack_timeout;

  // Listening: the backlog and the requests given to the consumer and not yet accepted.
  int backlog = 0;
  int pending_requests = 0;
  uint32_t listener_handle = 0;  // passive child: its listener's handle (0 once accepted)
  bool counts_against_backlog = false;

  // The IBTA CM connection.
  ConnState conn = ConnState::kIdle;
  uint32_t local_comm_id = 0;
  uint32_t remote_comm_id = 0;
  uint64_t remote_ca_guid = 0;
  // The peer's REQ: how long its CM takes to answer and how often it retries (IBTA
  // 12.6.5), which time our REP's resends.
  uint8_t peer_cm_response_timeout = 20;
  uint8_t peer_max_cm_retries = 15;
  bool mra_pending = false;
  uint64_t service_id = 0;     // passive SIDR: the service ID asked for
  bool sidr_answered = false;  // passive SIDR: the SIDR_REP is sent (a repeat gets it again)  //
                               // passive: an MRA is owed to a repeated REQ (cm.c's delayed MRA)
  ConnParams params;
  driver::RecvInfo tag;  // passive: how the REQ came in (source MAC, VLAN)
  // The last MAD sent that a timeout resends (REQ, REP, DREQ), its retries left and the
  // time it is due.
  std::array<uint8_t, wire::kMadSize> last_mad{};
  bool resend_armed = false;
  uint64_t resend_at_ns = 0;
  uint64_t resend_interval_ns = 0;
  int retries_left = 0;
  uint64_t timewait_until_ns = 0;
  uint64_t transaction_id = 0;
  // Passive: the consumer's REP private data, kept for resending the REP.
  std::array<uint8_t, wire::kRepPrivateData> rep_private{};
  uint8_t rep_private_len = 0;
  // Multicast groups joined, in the order joined.
  std::vector<CmMulticast> multicasts;
  // Address resolution waiting for the kernel's neighbour table.
  std::unique_ptr<vdev::NeighbourQuery> neighbour;
};

}  // namespace vrdma::cm
