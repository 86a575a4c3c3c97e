// Queue pair: every piece of per-QP state the requester, responder and completer use,
// kept together in one object.
#pragma once

#include <infiniband/verbs.h>

#include <array>
#include <cstdint>

#include "driver/qp_state/qp_state_machine.h"
#include "driver/res/recv_info.h"
#include "driver/res/ring.h"
#include "driver/res/work_request.h"
#include "driver/timer/timer_wheel.h"
#include "driver/wire/headers.h"

namespace vrdma::driver {

inline constexpr uint32_t kGsiQkey = 0x80010000;     // IBTA 13.5.1: well-known GSI Q_Key
inline constexpr uint32_t kMulticastQpn = 0xffffff;  // IBTA 10.5.2.3: a multicast datagram's DestQP

// Reliable service: RC, and XRC's two halves, the send QP that requests (Linux's
// XRC_INI) and the receive QP that answers (XRC_TGT).
inline bool IsReliable(int type) {
  return type == IBV_QPT_RC || type == IBV_QPT_XRC_SEND || type == IBV_QPT_XRC_RECV;
}
// Connected service: one peer QP, a path fixed at RTR.
inline bool IsConnected(int type) { return IsReliable(type) || type == IBV_QPT_UC; }

// The states whose receive side takes requests: from RTR on, and on through SQD and the
// send queue's error (IBTA 10.3.1; SQE is UC and UD only).
inline bool ReceivesRequests(ibv_qp_state s) {
  return s == IBV_QPS_RTR || s == IBV_QPS_RTS || s == IBV_QPS_SQD || s == IBV_QPS_SQE;
}
// P_Key check (IBTA 9.6.1.1, C9-41): the base keys, without the membership bit, match.
inline bool PkeyMatches(uint16_t a, uint16_t b) { return (a & 0x7fff) == (b & 0x7fff); }

// What ibv_create_qp asks for; kept by the QP as created.
struct QpInitAttr {
  // IBV_QPT_RC, IBV_QPT_UC, IBV_QPT_UD, kQpTypeGsi, IBV_QPT_XRC_SEND, IBV_QPT_XRC_RECV or
  // IBV_QPT_RAW_PACKET
  int type = IBV_QPT_RC;
  uint32_t pd = 0;    // none for an XRC receive QP
  uint32_t xrcd = 0;  // XRC receive QP: its domain
  uint32_t send_cq = 0;
  uint32_t recv_cq = 0;
  bool has_srq = false;
  uint32_t srq = 0;
  uint32_t max_send_wr = 0;
  uint32_t max_recv_wr = 0;
  uint32_t max_send_sge = 1;
  uint32_t max_recv_sge = 1;
  uint32_t max_inline_data = 0;
  bool sq_sig_all = false;
  uint32_t owner = 0;  // opaque tag of the creator, for accounting
  // The port GID table entries [gid_first, gid_first + gid_count) are the QP's device's:
  // it receives only packets addressed to them (0: any entry).
  uint32_t gid_first = 0;
  uint32_t gid_count = 0;
  // Raw packet QP: its interface's MAC (the source every frame it sends must carry when
  // check_source, and the unicast destination of the frames it may receive) and the largest frame
  // it may send (the interface's MTU plus the Ethernet header and one VLAN tag).
  wire::MacAddr mac{};
  uint32_t max_frame = 0;
  bool check_source = true;  // frames whose source is not `mac` are dropped (spoof check)
  // Receive-side scaling raw packet QP: no queues or CQs of its own; what its flow rules
  // take goes to the receive work queue of indirection table `rss_table` that a Toeplitz
  // hash of `rss_fields` (IBV_RX_HASH_*) with `rss_key` picks (rss.cc).
  uint32_t rss_table = 0;
  uint64_t rss_fields = 0;
  std::array<uint8_t, 64> rss_key{};
  uint32_t rss_key_len = 0;
};

// A send WQE as the requester and completer track it.
// What the requester and completer keep of a send WQE, ahead of its WR in the slot: with
// the WR's first fields one cache line holds what a small message touches.
struct SendWqeState {
  uint32_t length = 0;     // message length in bytes
  uint32_t first_psn = 0;  // PSNs are assigned when the requester starts the WQE
  uint32_t last_psn = 0;
  uint32_t npkts = 0;      // PSNs the message spans (READ: response packets)
  uint32_t next_pkt = 0;   // requester cursor: next packet (READ: first response asked)
  uint32_t resp_pkts = 0;  // READ: response packets received in order
  bool started = false;    // PSNs assigned
  bool req_done = false;   // every request packet sent (for now)
  bool is_rd_atomic = false;
  // Refused by the device (a malformed WQE): fails with this status when the requester
  // reaches it; IBV_WC_SUCCESS for every valid WQE.
  ibv_wc_status reject = IBV_WC_SUCCESS;
};

struct SendWqe : SendWqeState {
  SendWr wr;
  // Fills the slot for a new WQE: the state reset, the WR's used part copied.
  void Assign(const SendWr& w) {
    static_cast<SendWqeState&>(*this) = SendWqeState{};
    CopySendWr(w, &wr);
  }
};

// An RDMA READ or ATOMIC the responder executed, kept to answer duplicates
// (IBTA 9.7.5.1.4 / C9-114: a duplicate atomic returns the saved result, not a re-execution).
struct RdAtomicResource {
  bool valid = false;
  bool is_atomic = false;
  uint32_t first_psn = 0;
  uint32_t last_psn = 0;
  uint64_t atomic_orig = 0;
};

// One entry of the responder's in-order response stream.
struct ResponseEntry {
  enum Kind : uint8_t { kAck, kRead, kAtomicAck };
  Kind kind = kAck;
  uint8_t syndrome = 0;
  uint32_t psn = 0;  // ACK/atomic ack PSN; READ: PSN of the first response packet to send
  uint32_t msn = 0;
  // READ
  uint64_t va = 0;
  uint32_t rkey = 0;
  uint32_t length = 0;    // bytes still to send, starting at va
  uint32_t last_psn = 0;  // PSN of the final response packet
  bool first_sent = false;
  uint64_t atomic_orig = 0;
  uint32_t pd = 0;  // READ: the PD its R_Key was checked against (XRC: the SRQ's)
};

struct RequesterState {
  uint32_t next_psn = 0;   // PSN for the next new packet
  uint32_t acked_psn = 0;  // PSN of the latest ACK/response (everything <= it is acked)
  uint32_t sq_next = 0;    // index of the WQE the requester sends next
  uint32_t rd_atomic_outstanding = 0;
  uint8_t retry_left = 0;
  uint8_t rnr_retry_left = 0;
  bool rnr_wait = false;  // stopped until the RNR timer fires
  bool retrying = false;  // a go-back-N sequence is under way (no progress since)
  bool read_gap = false;  // a READ was re-requested from read_gap_psn after a lost response
  uint32_t read_gap_psn = 0;
  uint32_t read_gap_seen = 0;  // PSN of the latest response that showed that gap
  uint16_t ipv4_id = 0;
};

struct ResponderState {
  uint32_t epsn = 0;      // expected PSN
  uint32_t msn = 0;       // message sequence number (24 bits)
  bool nak_sent = false;  // a PSN sequence error NAK is outstanding (one per gap)
  // Message in progress (multi-packet SEND or RDMA WRITE).
  enum Kind : uint8_t { kNone, kSend, kWrite } kind = kNone;
  bool have_recv = false;
  RecvWr recv;
  uint32_t recv_offset = 0;
  uint64_t write_va = 0;
  uint32_t write_rkey = 0;
  uint32_t write_resid = 0;
  uint32_t write_len = 0;
  bool comm_established = false;
  // XRC receive QP: the XRC SRQ the message in progress named, and its CQ.
  uint32_t xrc_srq = 0;
  uint32_t xrc_cq = 0;
  RdAtomicResource resources[16];
  uint32_t next_resource = 0;
  Ring<ResponseEntry> responses;
};

struct QueuePair {
  uint32_t qpn = 0;
  int type = IBV_QPT_RC;  // as QpInitAttr::type
  ibv_qp_state state = IBV_QPS_RESET;
  QpInitAttr init;  // as created (queue depths: sq/rq below)
  // The PD memory accesses are checked against: init.pd, or for an XRC receive QP the
  // PD of the XRC SRQ of the request being executed.
  uint32_t pd = 0;

  // Attributes (ibv_modify_qp).
  int access_flags = 0;
  uint16_t pkey = 0xffff;
  uint16_t pkey_index = 0;
  uint32_t qkey = 0;
  uint32_t dest_qpn = 0;
  ibv_mtu path_mtu = IBV_MTU_1024;
  uint32_t mtu = 1024;
  uint8_t timeout = 14;
  uint8_t retry_cnt = 7;
  uint8_t rnr_retry = 7;
  uint8_t min_rnr_timer = 0;
  uint8_t max_rd_atomic = 0;
  uint8_t max_dest_rd_atomic = 0;
  uint8_t port_num = 1;
  uint32_t sq_psn = 0;
  uint32_t rq_psn = 0;
  ibv_ah_attr ah_attr{};
  AddressVector av;
  bool av_valid = false;
  ibv_mig_state path_mig_state = IBV_MIG_MIGRATED;

  // Header template for connected QPs, built when the QP moves to RTR.
  wire::RocePacket tmpl;

  Ring<SendWqe> sq;
  Ring<RecvWr> rq;
  RequesterState req;
  ResponderState resp;

  TimerNode retransmit_timer;
  TimerNode rnr_timer;

  // Direct execution (direct.cc): where the QP's frames arrive on its own device and the
  // QP that takes them there (nullptr: none), as found at RoceDevice::path_epoch_
  // `dest_epoch` (0: not yet).
  uint64_t dest_epoch = 0;
  RecvInfo dest_info;
  QueuePair* dest_peer = nullptr;

  bool active = false;  // on the engine's list of QPs with work to send
  // Its queues' retired counts wait for the end of the pass (RoceDevice::HoldRetired).
  bool retired_held = false;
  QueuePair* next_retired = nullptr;
  bool sq_drained_pending = false;
};

}  // namespace vrdma::driver
