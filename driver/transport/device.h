// The physical RDMA device: resource tables, the verbs the vdev layer calls, and the
// engine loop (receive, classify, responder/completer, requester, timers, transmit).
// One file per object, as Linux rdma_rxe: device.cc (the device, GIDs, events),
// resources.cc (PD, MR, CQ, SRQ, AH), qp.cc, post.cc (posting WRs), receive_check.cc
// (is a frame ours, for which QP), engine.cc (the loop), then the protocol files below.
//
// Outside driver/, include the face, driver/device.h, rather than this header.
//
// A RoceDevice is single-threaded: every call, including Poll(), comes from the engine
// thread that owns it. Time is explicit (Poll(now_ns)) so tests can run on virtual time.
#pragma once

#include <infiniband/verbs.h>
#include <rte_mbuf.h>

#include <array>
#include <atomic>
#include <cstdint>
#include <cstring>
#include <map>
#include <optional>
#include <unordered_map>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "driver/port/packet_port.h"
#include "driver/res/completion_queue.h"
#include "driver/res/fault_guard.h"
#include "driver/res/flow_rule.h"
#include "driver/res/limits.h"
#include "driver/res/memory_region.h"
#include "driver/res/memory_window.h"
#include "driver/res/object_table.h"
#include "driver/res/shared_receive_queue.h"
#include "driver/res/work_request.h"
#include "driver/res/xrc_domain.h"
#include "driver/timer/timer_wheel.h"
#include "driver/transport/address_handle.h"
#include "driver/transport/counters.h"
#include "driver/transport/qp.h"
#include "driver/wire/codec.h"

namespace vrdma::driver {

// The completion opcode of a send WR (ibv_wc.opcode for the send queue).
ibv_wc_opcode SendCompletionOpcode(ibv_wr_opcode op);

struct AsyncEvent {
  ibv_event_type type;
  uint32_t element;  // QPN, CQN or SRQ handle; port number for port events
};

struct MrKeys {
  uint32_t lkey;
  uint32_t rkey;
};

struct RoceDeviceConfig {
  DeviceLimits limits;
  rte_mempool* pool = nullptr;  // frames to send are allocated here
  PacketPort* port = nullptr;
  // The port computes and checks the ICRC itself (a NIC's offload, or the internal
  // switch, a path that never leaves the device): the engine writes 0 and skips checks.
  bool icrc_offload = false;
  ibv_mtu port_mtu = IBV_MTU_4096;  // active MTU: the UD message limit
  uint16_t tx_burst = 32;
  uint16_t rx_burst = 32;
  uint32_t qp_tx_budget = 16;  // packets one QP may send per engine pass (fairness)
  // The port sends every frame away (a real port): frames to one of the device's own
  // MACs (another vdev) are turned around inside the device instead.
  bool hairpin = false;
  // Payloads of at least this many bytes go out of client memory uncopied when the
  // port takes chained frames and the MR allows it (smaller ones are cheaper to copy
  // than two more mbufs and a chain are to handle).
  uint32_t zero_copy_min = 512;
  // SENDs, RDMA WRITEs and READs between two QPs of the device, when they are in step, move
  // their data with no frames (direct.cc); false: every operation goes by frames.
  bool direct = true;
};

// What ibv_query_device reports as the vendor (an OUI with the locally-administered bit
// set: no IEEE vendor's) and the part.
inline constexpr uint32_t kVendorId = 0x767264;
inline constexpr uint32_t kVendorPartId = 1;

class RoceDevice {
 public:
  explicit RoceDevice(const RoceDeviceConfig& config);
  ~RoceDevice();
  RoceDevice(const RoceDevice&) = delete;
  RoceDevice& operator=(const RoceDevice&) = delete;

  const DeviceLimits& limits() const { return cfg_.limits; }
  // ibv_query_device / ibv_query_port as this device answers them: the limits every
  // table is sized by, and port 1 (the only port).
  void QueryDevice(ibv_device_attr* attr) const;
  void QueryPort(ibv_port_attr* attr) const;
  const DeviceCounters& counters() const { return counters_; }

  // Port GID table (IBTA 4.1.1), set by the layer that owns the interface.
  absl::Status SetGid(uint32_t index, const GidEntry& entry);
  const GidEntry* GetGid(uint32_t index) const;

  absl::StatusOr<uint32_t> AllocPd(uint32_t owner = 0);
  absl::Status DeallocPd(uint32_t pd);

  // Registers [iova, iova+length) reached by the engine at `host`.
  absl::StatusOr<MrKeys> RegMr(uint32_t pd, uint64_t iova, void* host, uint64_t length, int access,
                               uint32_t owner = 0);
  absl::Status DeregMr(uint32_t lkey);
  // ibv_rereg_mr: changes an MR in place, keeping its keys (as rxe and mlx5's UMR do).
  // What is unset stays; all of it is checked before anything changes.
  struct MrChange {
    std::optional<uint32_t> pd;
    std::optional<int> access;
    bool translation = false;  // then iova, host and length are the MR's new pages
    uint64_t iova = 0;
    void* host = nullptr;
    uint64_t length = 0;
  };
  absl::Status ReregMr(uint32_t lkey, const MrChange& change);
  // Lets frames carry the MR's bytes as external buffers counted on `share` (zero-copy
  // transmit on a port that takes chained frames); the caller keeps the memory mapped
  // until the count drops to zero, after DeregMr.
  absl::Status SetMrTxShare(uint32_t lkey, rte_mbuf_ext_shared_info* share);
  const MemoryRegion* FindMr(uint32_t key) const;

  // Memory windows (memory_window.cc): allocated free (type 2) or unbound (type 1); bound
  // and invalidated by work requests (IBV_WR_BIND_MW, IBV_WR_LOCAL_INV, SEND with
  // Invalidate). A window's handle is the index of its keys.
  struct MwKeys {
    uint32_t handle;
    uint32_t rkey;
  };
  absl::StatusOr<MwKeys> AllocMw(uint32_t pd, ibv_mw_type type, uint32_t owner = 0);
  absl::Status DeallocMw(uint32_t handle);
  const MemoryWindow* FindMw(uint32_t handle) const { return mws_.Get(handle); }

  absl::StatusOr<uint32_t> CreateCq(uint32_t depth, uint32_t owner = 0);
  absl::Status DestroyCq(uint32_t cqn);
  absl::Status ResizeCq(uint32_t cqn, uint32_t depth);
  absl::StatusOr<int> PollCq(uint32_t cqn, ibv_wc* wc, int n);
  // The same, with where each completion's packet arrived in info[i] (valid false for
  // completions no packet made): for a consumer inside the daemon, such as QP1.
  absl::StatusOr<int> PollCq(uint32_t cqn, ibv_wc* wc, RecvInfo* info, int n);
  absl::Status ArmCq(uint32_t cqn, bool solicited_only);
  // Sends the CQ's completions to `sink` instead of its ring (nullptr: back to the ring).
  absl::Status AttachCqSink(uint32_t cqn, CompletionSink* sink, uint64_t cookie);
  // True once per completion event owed to an armed CQ.
  bool TakeCqEvent(uint32_t cqn);

  absl::StatusOr<uint32_t> CreateSrq(uint32_t pd, uint32_t max_wr, uint32_t max_sge, uint32_t limit,
                                     uint32_t owner = 0);
  // XRC (IBTA annex A14): domains, and SRQs in them with a CQ of their own. An XRC SRQ's
  // handle is its number, the one XRC send WQEs name (ibv_get_srq_num).
  absl::StatusOr<uint32_t> AllocXrcd(uint32_t owner = 0);
  absl::Status DeallocXrcd(uint32_t xrcd);
  absl::StatusOr<uint32_t> CreateXrcSrq(uint32_t xrcd, uint32_t pd, uint32_t cq, uint32_t max_wr,
                                        uint32_t max_sge, uint32_t limit, uint32_t owner = 0);
  // IBV_SRQ_MAX_WR / IBV_SRQ_LIMIT semantics of ibv_modify_srq.
  absl::Status ModifySrq(uint32_t srq, uint32_t max_wr, uint32_t limit, int mask);
  absl::Status DestroySrq(uint32_t srq);
  absl::Status PostSrqRecv(uint32_t srq, const RecvWr& wr);
  absl::StatusOr<uint32_t> SrqLimit(uint32_t srq) const;

  absl::StatusOr<uint32_t> CreateAh(uint32_t pd, const AddressVector& av, uint32_t owner = 0);
  absl::Status DestroyAh(uint32_t ah);

  absl::StatusOr<uint32_t> CreateQp(const QpInitAttr& init);
  // The memory the engine keeps for a QP's or SRQ's queues (its copies of the WQEs taken
  // from the client's rings): what a vdev is charged beside the rings themselves.
  static uint64_t QpQueueBytes(const QpInitAttr& init);
  static uint64_t SrqQueueBytes(uint32_t max_wr);
  // `av` carries the resolved destination when mask has IBV_QP_AV.
  absl::Status ModifyQp(uint32_t qpn, const ibv_qp_attr& attr, int mask,
                        const AddressVector* av = nullptr);
  absl::Status QueryQp(uint32_t qpn, ibv_qp_attr* attr, QpInitAttr* init) const;
  absl::Status DestroyQp(uint32_t qpn);
  // Flow steering (raw_packet.cc): rule `rule` sends the frames it matches to raw packet
  // QP `qpn`, which must be in RTR or RTS to take them. Returns the rule's handle.
  absl::StatusOr<uint32_t> CreateFlow(uint32_t qpn, const FlowRule& rule);
  absl::Status DestroyFlow(uint32_t handle);
  // Receive-side scaling (rss.cc): receive work queues (an SRQ with its own CQ, ready or
  // not) and the indirection tables of 2^n of them that RSS QPs (QpInitAttr::rss_table)
  // spread frames over.
  absl::StatusOr<uint32_t> CreateWq(uint32_t pd, uint32_t cq, uint32_t max_wr, uint32_t max_sge,
                                    uint32_t owner = 0);
  absl::Status SetWqReady(uint32_t wq, bool ready);
  absl::StatusOr<uint32_t> CreateRssTable(const std::vector<uint32_t>& wqs);
  absl::Status DestroyRssTable(uint32_t table);
  // Multicast (multicast.cc, ibv_attach_mcast): UD QP `qpn` receives the datagrams sent
  // to multicast GID `mgid` (destination QPN 0xFFFFFF, IBTA 10.5.2.3).
  absl::Status AttachMcast(uint32_t qpn, const wire::Gid& mgid);
  absl::Status DetachMcast(uint32_t qpn, const wire::Gid& mgid);
  static constexpr uint32_t kMaxMcastGroups = 8192;
  static constexpr uint32_t kMaxMcastQpAttach = 256;
  absl::Status PostSend(uint32_t qpn, const SendWr& wr);
  // Posting in place, for a caller that builds the WR from its own copy anyway (the
  // doorbell drain): SendSlot is the work request of the QP's next free send WQE (null
  // when the QP is unknown or its send queue full), for the caller to fill; PostSendSlot
  // then posts it with every check of PostSend. A WR the checks refuse is never queued,
  // and the slot is handed out again. Fields the WR's opcode does not use may hold an
  // earlier WQE's values, as in a NIC's ring.
  SendWr* SendSlot(uint32_t qpn);
  absl::Status PostSendSlot(uint32_t qpn);
  absl::Status PostRecv(uint32_t qpn, const RecvWr& wr);
  // Where the QP's send and receive queues (an SRQ's queue) publish how many WQEs have
  // left them, for the client that posts them to keep within max_send_wr / max_recv_wr
  // (Ring::PublishRetiredTo). nullptr: nowhere.
  absl::Status PublishRetired(uint32_t qpn, std::atomic<uint32_t>* sq, std::atomic<uint32_t>* rq);
  absl::Status PublishSrqRetired(uint32_t srq, std::atomic<uint32_t>* retired);
  // An SRQ WQE refused before it was queued (malformed): it leaves at once.
  void RetireSrqUnqueued(uint32_t srq);
  const QueuePair* FindQp(uint32_t qpn) const { return LookupQp(qpn); }
  // A WQE the consumer handed over but the device could not accept (malformed, or
  // against the QP's limits). It takes its place in the send queue: the WQEs before it
  // execute, then it completes with `status` (IBV_WC_LOC_QP_OP_ERR, ...) and the QP
  // enters the Error state, flushing what follows (IBTA 10.8.3.1, 11.6.2).
  absl::Status RejectSend(uint32_t qpn, uint64_t wr_id, ibv_wr_opcode opcode, ibv_wc_status status);
  absl::Status RejectRecv(uint32_t qpn, uint64_t wr_id, ibv_wc_status status);
  // Room left in the engine's send / receive queue of a QP (0 when unknown).
  uint32_t SendQueueRoom(uint32_t qpn) const;
  uint32_t RecvQueueRoom(uint32_t qpn) const;
  uint32_t SrqRoom(uint32_t srq) const;

  bool PollAsyncEvent(AsyncEvent* event);

  // Whether SENDs, WRITEs and READs between QPs of the device may run with no frames
  // (direct.cc).
  void SetDirect(bool on) { cfg_.direct = on; }

  // One engine pass at time `now_ns`. Returns the amount of work done (0 = idle).
  int Poll(uint64_t now_ns);
  // True while the engine has packets to send or timers armed: its owner must keep
  // calling Poll (at least at timer granularity) rather than sleep indefinitely.
  bool HasPendingWork() const {
    return !active_.empty() || !hairpin_.empty() || timers_.armed_count() != 0;
  }

  // Frames handed to the engine directly (fuzzing, tests); the engine frees them.
  void Receive(rte_mbuf** pkts, uint16_t n);

 private:
  // device.cc
  QueuePair* LookupQp(uint32_t qpn) const;
  void PostEvent(ibv_event_type type, uint32_t element);

  // receive_check.cc
  void Classify(rte_mbuf* m);
  bool IsLocalMac(const uint8_t* dst) const;
  // The GID table entry a received packet is addressed to (destination GID and network
  // type, and the owning interface's MAC and VLAN), or nullptr when it is no one's here.
  // When found, *info says where the packet arrived (the entry's index, network type,
  // VLAN, source MAC).
  const GidEntry* FindDestination(const wire::RocePacket& pkt, RecvInfo* info) const;
  // The receive checks after the destination (the QP's device, P_Key, transport, path):
  // the counter of the first that refuses `pkt` at `qp`, or nullptr when `qp` takes it.
  uint64_t* Refusal(const QueuePair& qp, const wire::RocePacket& pkt, const RecvInfo& info);

  // What a local gather or scatter met (memory_access.cc).
  enum class Access : uint8_t { kOk, kLocalProt, kLength };

  // direct.cc
  // The RC QP of this device that `qp`'s frames would reach, if its request frames would
  // come back to this engine and pass every receive check there; else nullptr.
  // *info: where its frames would arrive (the receive completion's tag).
  QueuePair* LocalPeer(QueuePair& qp, RecvInfo* info);
  // The receive WQE the QP's next message would take (its SRQ's), if any.
  const RecvWr* NextRecv(const QueuePair& qp) const;
  // Executes a started SEND (with immediate), RDMA WRITE (with immediate) or READ at the
  // head of `qp`'s send queue at once, from memory to memory with no frames, when its
  // peer is a QP of this device and both are in step (nothing in flight); true when it
  // did (the WQE has completed, or failed as the frames would have made it fail). False
  // leaves the WQE to the frames.
  bool ExecuteDirect(QueuePair& qp, SendWqe& w);
  // ExecuteDirect for a UD QP's SEND (with immediate) to a UD QP of this device.
  bool ExecuteDirectUd(QueuePair& qp, SendWqe& w);
  // Whether frames with these headers would come back to this engine untouched: the port
  // is the internal switch or the embedded switch turns them around, and no raw packet
  // QP's flow rule could take them first.
  bool TurnsAround(const wire::RocePacket& hdr) const;
  // A SEND's payload where it lies: its inline data, or each SGE resolved in its MR.
  struct SendPayload {
    struct Piece {
      const uint8_t* src;
      uint32_t n;
      const MemoryRegion* mr;  // nullptr for inline data
    } pieces[kMaxSgePerWqe];
    uint32_t count = 0;
  };
  Access ResolveSendPayload(const QueuePair& qp, const SendWr& wr, uint32_t len, SendPayload* out);
  // Copies the payload into the receive WQE's buffers from `offset` on; false when they
  // are too short or one of their keys is bad.
  bool ScatterPayload(const QueuePair& peer, const RecvWr& recv, uint32_t offset,
                      const SendPayload& payload);
  // Whether a page of the payload's MRs vanished under the copy (the MR is poisoned).
  bool PayloadLost(const SendPayload& payload);

  // engine.cc
  void FlushTx();
  // A WQE left `qp`'s send or receive queue (Ring::PopUnpublished): its retired count is
  // published at the end of the pass, or now outside one.
  void HoldRetired(QueuePair& qp);
  void HoldRetired(SharedReceiveQueue& srq);
  // The end of a pass: every retired count, then every held completion, published.
  void PublishHeld();
  // The port refused part of the last burst: QPs wait before making more frames.
  bool TxBackedUp() const { return tx_.size() >= cfg_.tx_burst; }
  void Transmit(rte_mbuf* m);
  void Activate(QueuePair& qp);
  void RunActive();
  void OnTimer(TimerNode* node);

  // post.cc
  // Posting to the send queue is allowed in RTS, SQD, SQE and Error (IBTA 10.8.2).
  static bool SendQueueOpen(const QueuePair& qp);
  // Checks the WR written at sq.next_free() (its state reset) against the QP and, if it
  // passes, makes it part of the send queue (CommitSendWqe).
  absl::Status PostNextSendWqe(QueuePair& qp);
  // Makes the WQE written at sq.next_free() part of the send queue and gets it going.
  void CommitSendWqe(QueuePair& qp);

  // packet_builder.cc
  // Lays `hdr` out in a new mbuf (filling its offsets) for `payload_len` bytes of
  // payload at *payload; SendPacket seals it (pad, checksums, ICRC) and queues it.
  rte_mbuf* NewPacket(wire::RocePacket* hdr, uint32_t payload_len, uint8_t** payload);
  // A frame whose payload stays in client memory: headers, the payload as an external
  // buffer counted on `share`, then pad and ICRC; sealed. nullptr when out of mbufs.
  rte_mbuf* NewZeroCopyPacket(wire::RocePacket* hdr, const uint8_t* payload, uint32_t len,
                              rte_mbuf_ext_shared_info* share);
  // Whether a payload of `len` bytes from an MR with `share` goes out uncopied.
  bool UseZeroCopy(const wire::RocePacket& hdr, uint32_t len,
                   const rte_mbuf_ext_shared_info* share) const;
  // The single MR range holding bytes [offset, offset + len) of an SGE list, if one
  // SGE holds them all and its MR (*mr) may be sent from uncopied; else nullptr.
  const uint8_t* ZeroCopySource(const QueuePair& qp, const Sge* sges, uint32_t nsge,
                                uint32_t offset, uint32_t len, rte_mbuf_ext_shared_info** share,
                                const MemoryRegion** mr);
  void SendPacket(rte_mbuf* m, const wire::RocePacket& hdr);
  bool BuildTemplate(QueuePair& qp, const AddressVector& av, wire::RocePacket* out);
  // The headers of a path from `av` with flow label `flow`, up to the BTH's P_Key and
  // DestQP; false when the AV's source GID is gone.
  bool BuildPath(const AddressVector& av, uint32_t flow, wire::RocePacket* out);
  // The AH `handle`, its headers and destination brought up to date with the GID table;
  // nullptr when there is no such AH.
  const AddressHandle* DatagramPath(uint32_t handle);

  // memory_access.cc: gather/scatter through SGE lists and remote keys.
  Access GatherSges(const QueuePair& qp, const Sge* sges, uint32_t nsge, uint32_t offset,
                    uint8_t* dst, uint32_t len);
  Access ScatterSges(const QueuePair& qp, const Sge* sges, uint32_t nsge, uint32_t offset,
                     const uint8_t* src, uint32_t len);
  // Where [va, va + len) of `rkey` lies, if `qp` may reach it for `access` (through an MR
  // or a window onto one); nullptr if not. *mr: the MR the bytes are in.
  uint8_t* ResolveRkey(const QueuePair& qp, uint32_t rkey, uint64_t va, uint64_t len, int access,
                       const MemoryRegion** mr = nullptr);
  // After an access to the client memory behind `mr`: whether a page of it vanished
  // meanwhile (the fault guard repaired the fault; the MR is now poisoned). One relaxed
  // load when nothing happened.
  bool LostPage(const MemoryRegion& mr) {
    if (fault_guard::Generation() == faults_seen_) [[likely]]
      return false;
    SyncFaults();
    return mr.poisoned;
  }
  // Poisons every MR over a range the fault guard saw fault.
  void SyncFaults();

  // memory_window.cc
  // The local operations of a send queue, run once every WQE before them has completed:
  // the status their completion carries.
  ibv_wc_status BindMw(QueuePair& qp, const SendWr& wr);
  // Local Invalidate (remote false) or SEND with Invalidate received on `qp` (IBTA
  // 9.4.1.1): false when the key names nothing `qp` may invalidate.
  bool InvalidateKey(const QueuePair& qp, uint32_t rkey, bool remote);
  // The MR behind a window's rkey when `qp` may use [*va, *va + len) of it for `access`;
  // *va becomes the address in the MR.
  const MemoryRegion* ResolveWindow(const QueuePair& qp, uint32_t rkey, uint64_t* va, uint64_t len,
                                    int access) const;
  // Type 2 windows bound to a QP going away are freed: its QPN will be another QP's.
  void FreeWindowsOf(uint32_t qpn);
  void Unbind(MemoryWindow& mw);

  // requester.cc
  // A BIND_MW or LOCAL_INV WQE: it waits at the head of the queue, then runs and completes.
  static bool IsLocalOperation(ibv_wr_opcode op) {
    return op == IBV_WR_BIND_MW || op == IBV_WR_LOCAL_INV;
  }
  void RunLocalOperation(QueuePair& qp, SendWqe& wqe);
  void RunRequester(QueuePair& qp, uint32_t* budget);
  bool SendNextPacket(QueuePair& qp, SendWqe& wqe);
  void SendUd(QueuePair& qp, SendWqe& wqe);
  // Raw packet QPs (raw_packet.cc).
  void SendRaw(QueuePair& qp, SendWqe& wqe);
  // Gives a received frame to the raw packet QP a rule of `pass` steers it to; false
  // (the frame untouched) when none does. Pass kNormal runs before the RoCE receive
  // path, the default rules after it, for what it did not take.
  bool SteerRaw(const uint8_t* frame, uint32_t len, FlowRule::Kind pass);
  void DeliverRaw(QueuePair& qp, const uint8_t* frame, uint32_t len);
  void DropFlowsOf(uint32_t qpn);
  struct RssTable;
  absl::StatusOr<uint32_t> CreateRssQp(const QpInitAttr& init, RssTable* table);
  // A datagram to a multicast GID, to every QP attached to it (multicast.cc).
  void DeliverMulticast(const wire::RocePacket& pkt);
  void DetachAllOf(uint32_t qpn);
  // A frame an RSS QP's rule took, to the work queue its hash picks (rss.cc).
  void DeliverRss(QueuePair& qp, const uint8_t* frame, uint32_t len);
  bool StartWqe(QueuePair& qp, SendWqe& wqe);
  void RetryFrom(QueuePair& qp, uint32_t psn);
  void ArmRetransmit(QueuePair& qp);

  // completer.cc
  void OnResponse(QueuePair& qp, const wire::RocePacket& pkt);
  void AckUpTo(QueuePair& qp, uint32_t psn);
  void StartRetry(QueuePair& qp, bool count);
  SendWqe* FindSentWqe(QueuePair& qp, uint32_t psn);
  void OnReadResponse(QueuePair& qp, const wire::RocePacket& pkt);
  void OnAtomicAck(QueuePair& qp, const wire::RocePacket& pkt);
  void OnNak(QueuePair& qp, const wire::RocePacket& pkt);
  uint32_t FirstUnacked(const QueuePair& qp) const;
  void OnRetransmitTimeout(QueuePair& qp);
  void CompleteSend(QueuePair& qp, SendWqe& wqe, ibv_wc_status status);
  void FailSend(QueuePair& qp, ibv_wc_status status);

  // responder.cc
  // `info` is where the packet arrived (Classify): it goes with its receive completion.
  void OnRequest(QueuePair& qp, const wire::RocePacket& pkt, const RecvInfo& info);
  void OnRcUcRequest(QueuePair& qp, const wire::RocePacket& pkt, const RecvInfo& info);
  void OnDuplicate(QueuePair& qp, const wire::RocePacket& pkt);
  void DropSupersededResponses(QueuePair& qp, uint32_t from_psn);
  void ReRequestResponses(QueuePair& qp, uint32_t missing, uint32_t seen);
  void OnUdRequest(QueuePair& qp, const wire::RocePacket& pkt, const RecvInfo& info);
  bool TakeRecv(QueuePair& qp, RecvWr* out);
  // XRC receive QP: takes the SRQ, CQ and PD of the request from the XRC SRQ its XRCETH
  // names; false (and the request refused) when that is no SRQ of the QP's domain.
  bool AdoptXrcSrq(QueuePair& qp, const wire::RocePacket& pkt);
  // Where the QP's receive completions go (XRC: the CQ of the message's SRQ).
  uint32_t RecvCq(const QueuePair& qp) const {
    return qp.type == IBV_QPT_XRC_RECV ? qp.resp.xrc_cq : qp.init.recv_cq;
  }
  void DoSend(QueuePair& qp, const wire::RocePacket& pkt, uint16_t flags, const RecvInfo& info);
  void DoWrite(QueuePair& qp, const wire::RocePacket& pkt, uint16_t flags, const RecvInfo& info);
  // Room in the responder's ring of responses (ACK, NAK, READ, atomic), made on first use.
  bool ResponseRoom(ResponderState& r);
  void DoRead(QueuePair& qp, const wire::RocePacket& pkt, bool duplicate);
  void DoAtomic(QueuePair& qp, const wire::RocePacket& pkt);
  void DoAtomicWrite(QueuePair& qp, const wire::RocePacket& pkt);
  // `pkt` and `info`: the packet that completes the message and where it arrived (both
  // null for completions no packet carries).
  void CompleteRecv(QueuePair& qp, ibv_wc_opcode op, uint32_t byte_len, ibv_wc_status status,
                    const wire::RocePacket* pkt, const RecvInfo* info);
  void SendRnrNak(QueuePair& qp);
  void RejectRequest(QueuePair& qp, uint8_t nak_code, ibv_event_type event);
  void NoReceiveWqe(QueuePair& qp);
  void QueueAck(QueuePair& qp, uint32_t psn, uint8_t syndrome, bool coalesce);
  void ResponderError(QueuePair& qp, uint8_t nak_code, ibv_wc_status recv_status,
                      ibv_event_type event);
  void RunResponses(QueuePair& qp, uint32_t* budget);

  // qp.cc
  void EnterError(QueuePair& qp);
  void FlushQueues(QueuePair& qp);
  void FlushSendQueue(QueuePair& qp);
  void ResetQp(QueuePair& qp);
  bool PushCqe(uint32_t cqn, const ibv_wc& wc, bool solicited, const RecvInfo* info = nullptr);

  RoceDeviceConfig cfg_;
  DeviceCounters counters_;
  bool tx_chains_ = false;    // the port takes zero-copy (chained) frames
  bool rx_in_place_ = false;  // and gives them back as they were (an internal switch)
  // Bumped by every change of the GID table or of a QP (created, modified, destroyed):
  // what is derived from them and kept (QueuePair::dest_epoch, AddressHandle::epoch) is
  // derived again.
  uint64_t path_epoch_ = 1;
  uint64_t faults_seen_ = 0;  // fault_guard::Generation() when SyncFaults last ran
  std::vector<GidEntry> gids_;
  struct GidKey {
    wire::Gid gid;
    wire::NetworkType type;
    bool operator==(const GidKey&) const = default;
  };
  struct GidKeyHash {
    size_t operator()(const GidKey& k) const {
      uint64_t a, b;
      std::memcpy(&a, k.gid.data(), 8);
      std::memcpy(&b, k.gid.data() + 8, 8);
      return std::hash<uint64_t>()(a * 0x9e3779b97f4a7c15ull ^ b ^ static_cast<uint64_t>(k.type));
    }
  };
  std::unordered_map<GidKey, uint32_t, GidKeyHash> gid_lookup_;  // first index of each GID
  ObjectTable<ProtectionDomain> pds_;
  ObjectTable<MemoryRegion> mrs_;
  ObjectTable<MemoryWindow> mws_;
  ObjectTable<CompletionQueue> cqs_;
  ObjectTable<SharedReceiveQueue> srqs_;
  ObjectTable<XrcDomain> xrcds_;
  ObjectTable<AddressHandle> ahs_;
  ObjectTable<QueuePair> qps_;
  uint32_t gsi_slot_ = 0;  // table handle of QP1, 0 when the port has none
  TimerWheel timers_;
  uint64_t now_ = 0;
  std::vector<QueuePair*> active_;   // QPs with something to send
  std::vector<QueuePair*> running_;  // the list being run in this pass
  // Within Poll: what the pass makes visible to consumers only at its end, in this
  // order: the QPs' and SRQs' retired WQE counts, then the completions held by CQ sinks.
  bool in_pass_ = false;
  QueuePair* retired_held_ = nullptr;
  SharedReceiveQueue* srqs_retired_held_ = nullptr;
  // In the order of each CQ's first completion of the pass: their events go out in that
  // order (PublishHeld), as a NIC writes its event queue entries in CQE order.
  CompletionQueue* cqs_held_ = nullptr;
  CompletionQueue** cqs_held_tail_ = &cqs_held_;
  std::vector<rte_mbuf*> tx_;
  static constexpr size_t kHairpinDepth = 4096;  // like a NIC loopback queue: beyond, dropped
  static constexpr size_t kRxWaitingDepth = 64;  // datagrams held for a receive WQE
  std::vector<rte_mbuf*> hairpin_;               // frames to our own MACs, for the next pass
  std::vector<rte_mbuf*> hairpin_rx_;            // the ones being received in this pass
  // Datagrams that found no receive WQE, classified again once next pass, after the
  // clients' rings were drained (OnUdRequest); `rx_may_hold_`: the frame being classified
  // may be held, `rx_held_`: it was.
  std::vector<rte_mbuf*> rx_waiting_;
  std::vector<rte_mbuf*> rx_retry_;
  bool rx_may_hold_ = false;
  bool rx_held_ = false;
  bool rx_retrying_ = false;
  // The MACs of the GID table's interfaces, each with its number of valid entries. The
  // transmit path asks for every frame whether it stays on this device: a short list is
  // scanned, a long one (hundreds of vdevs) hashed, so the cost does not grow with vdevs.
  static constexpr size_t kLocalMacScan = 8;
  std::unordered_map<uint64_t, uint32_t> local_mac_refs_;
  std::vector<wire::MacAddr> local_macs_;  // the same MACs while there are kLocalMacScan or fewer
  void RefLocalMac(const wire::MacAddr& mac, int delta);
  Ring<AsyncEvent> events_;
  // Flow steering rules, normal ones first, each kind by priority (raw_packet.cc).
  struct InstalledFlow {
    uint32_t handle;
    uint32_t qpn;
    FlowRule rule;
  };
  static constexpr size_t kMaxFlows = 65536;
  std::vector<InstalledFlow> flows_;
  // Default rules sort after every normal one: the last rule tells whether there are any.
  bool HasDefaultFlows() const {
    return !flows_.empty() && flows_.back().rule.kind != FlowRule::Kind::kNormal;
  }
  uint32_t next_flow_ = 1;
  struct RssTable {
    std::vector<uint32_t> wqs;  // 2^n receive work queues
    uint32_t qps = 0;           // RSS QPs using it
  };
  std::unordered_map<uint32_t, RssTable> rss_tables_;
  std::map<wire::Gid, std::vector<uint32_t>> mcast_groups_;  // MGID -> attached QPs
  uint32_t next_rss_table_ = 1;
};

}  // namespace vrdma::driver
