// The client/daemon protocol: every control message and every shared-memory layout.
//
// vrdmad (the device) and the verbs provider (a client library) both include this header
// and nothing else of each other. Control messages travel on an AF_UNIX SOCK_SEQPACKET
// socket, one connection per ibv_context (or per admin command), one datagram per
// message, with file descriptors (memfds, eventfds, pipes) passed as SCM_RIGHTS.
//
// The daemon treats every byte a client sends or writes into shared memory as untrusted:
// it copies a message or WQE out before it checks it.
#pragma once

#include <infiniband/verbs.h>

#include <array>
#include <atomic>
#include <cstddef>
#include <cstdint>

namespace vrdma::proto {

inline constexpr uint32_t kMagic = 0x414d4452;  // "RDMA" read as little-endian bytes
inline constexpr uint16_t kVersion = 4;  // 4: rings lie at an offset of their memfd (shm_offset)
inline constexpr const char* kDefaultSocket = "/run/vrdma/vrdmad.sock";
inline constexpr const char* kSocketEnv = "VRDMA_SOCKET";  // overrides kDefaultSocket
inline constexpr const char* kDeviceEnv = "VRDMA_DEVICE";  // limits the device list to one
inline constexpr size_t kMaxMessage = 64 * 1024;
inline constexpr size_t kMaxFds = 64;     // per message
inline constexpr size_t kNameLen = 64;    // device and pdev names, NUL-terminated
inline constexpr uint32_t kMaxGids = 16;  // GID table entries per vdev port
inline constexpr uint32_t kMaxMrSegments = 64;

enum class Op : uint16_t {
  // Clients (one connection per ibv_context).
  kListDevices = 1,
  kOpenDevice,
  kQueryDevice,
  kQueryPort,
  kQueryGidTable,
  kAllocPd,
  kDeallocPd,
  kRegMr,
  kDeregMr,
  kCreateCq,
  kResizeCq,
  kDestroyCq,
  kCreateSrq,
  kModifySrq,
  kQuerySrq,
  kDestroySrq,
  kCreateAh,
  kDestroyAh,
  kCreateQp,
  kModifyQp,
  kQueryQp,
  kDestroyQp,
  kReregMr,
  kAllocDm,
  kFreeDm,
  kRegDmMr,
  kAllocMw,
  kDeallocMw,
  kAdviseMr,
  kOpenXrcd,
  kCloseXrcd,
  kOpenQp,
  kImportContext,
  kImportObject,
  kCreateFlow,
  kDestroyFlow,
  kModifyWq,
  kCreateIndTable,
  kDestroyIndTable,
  kAttachMcast,
  kDetachMcast,
  kDescribeDevice,
  // Administration (vrdmactl, the public C API): argv-style words, text or JSON answer.
  kAdmin = 100,
  // RDMA netlink (NETLINK_RDMA) answered for the daemon's devices: one per datagram a
  // process under vrdma-run sends on its netlink socket.
  kRdmaNetlink,
  // The connection manager (cm/): one connection per RDMA-CM event channel.
  kCmOpen = 200,
  kCmCommand,
};
// The daemon routes each request by its operation's range to one handler (docs/
// architecture.md): verbs requests of a context, administration, and the ranges left for
// the layers above vdev/ (the connection manager's requests, 200 onwards).
inline constexpr uint16_t kFirstVerbsOp = 1;
inline constexpr uint16_t kLastVerbsOp = 99;
inline constexpr uint16_t kFirstAdminOp = 100;
inline constexpr uint16_t kLastAdminOp = 199;
inline constexpr uint16_t kFirstCmOp = 200;
inline constexpr uint16_t kLastCmOp = 299;

// Every message starts with this header. `status` is 0 in requests; in replies it is 0
// or a positive errno, and a non-zero status may carry a NUL-terminated message as the
// payload.
struct MsgHeader {
  uint32_t magic;
  uint16_t version;
  uint16_t op;
  uint32_t payload_len;
  int32_t status;
};

// ---- device discovery and open ---------------------------------------------------------

enum class DeviceType : uint32_t { kPhysical = 0, kVirtual = 1 };

struct DeviceRecord {
  char name[kNameLen];
  char pdev[kNameLen];
  char netdev[kNameLen];
  uint64_t node_guid;  // network order, as ibv_get_device_guid returns it
  uint32_t type;       // DeviceType
  uint32_t reserved;
};

// A request may be empty (from the first device) or say where to start: a daemon with
// more devices than one message holds (a pdev carries up to 1024 vdevs) answers in pages,
// and ListAllDevices (channel.h) asks for each.
struct ListDevicesRequest {
  uint32_t first;  // index of the first device wanted
  uint32_t reserved;
};
struct ListDevicesReply {
  uint32_t count;          // devices the caller may see, in all
  uint32_t first;          // index of devices[0]
  DeviceRecord devices[];  // as many as the message holds, from `first`
};
inline constexpr uint32_t kDeviceRecordsPerReply =
    static_cast<uint32_t>((kMaxMessage - 512) / sizeof(DeviceRecord));

// Request fds: [0] one end of an AF_UNIX SOCK_SEQPACKET socketpair, the context's async
// event channel (the daemon sends ib_uverbs_async_event_desc records on it, which
// ibv_get_async_event reads from the other end). Anything else is refused with EINVAL
// (vdev/client_fd.h says why not a pipe).
struct OpenDeviceRequest {
  char name[kNameLen];
};
// Reply fds: [0] the context page (ContextShm), [1] the doorbell eventfd, [2] for a vdev
// the context's token: a sealed empty memfd the daemon made for this context, the
// client's ibv_context::cmd_fd. Passed back with kImportContext (by whichever process it
// was handed to), it names the context, as a dup of a uverbs file does.
struct OpenDeviceReply {
  uint64_t node_guid;
  uint32_t context_shm_size;
  uint32_t reserved;
};

struct QueryDeviceReply {
  ibv_device_attr attr;
};
struct QueryPortRequest {
  uint32_t port;
};
struct QueryPortReply {
  ibv_port_attr attr;
};

struct GidRecord {
  uint8_t gid[16];
  uint32_t type;  // ibv_gid_type (IBV_GID_TYPE_ROCE_V1 / IBV_GID_TYPE_ROCE_V2)
  uint32_t ndev_ifindex;
  uint32_t valid;
  uint32_t reserved;
};
struct QueryGidTableReply {
  uint32_t count;  // table length (valid or not)
  uint32_t reserved;
  GidRecord entries[kMaxGids];
};

// A device described without opening it (the sysfs view of vrdma-run,
// vdev/provider/sysfs_view.h): any device the device list shows the client, whatever the
// vdev's owner, group and mode, as sysfs is world-readable. ENODEV for any other name.
struct DescribeDeviceRequest {
  char name[kNameLen];
};
// The vdev's counters (`vrdmactl stat show`), in this order; a pdev's are zero.
inline constexpr std::array<const char*, 9> kDeviceCounterNames = {
    "send_wqes",    "recv_wqes",    "completions",    "rejected_wqes",  "cq_overruns",
    "async_events", "bad_requests", "quota_refusals", "cgroup_refusals"};
struct DescribeDeviceReply {
  DeviceRecord record;
  ibv_device_attr device;  // as kQueryDevice
  ibv_port_attr port;      // port 1, as kQueryPort
  QueryGidTableReply gids;
  uint64_t counters[kDeviceCounterNames.size()];
};

// kDestroyQp's reply: how many async events the daemon wrote for the QP. ibv_destroy_qp
// frees the QP once the application has acknowledged that many (ibv_ack_async_event
// touches the QP), as a kernel provider waits for resp.events_reported.
struct DestroyQpReply {
  uint32_t events_reported;
  uint32_t reserved;
};

// ---- RDMA netlink (vdev/nldev/nldev.h) ----------------------------------------------------

// A datagram a process sent on its NETLINK_RDMA socket, with the socket's settings. The
// reply carries the datagrams the process reads back, from the `first` on, as many as fit
// in one message: a longer answer (a dump of many objects) is fetched by asking again with
// `first` advanced, and the daemon answers anew, as a kernel dump reads the devices as it
// goes. Anyone may ask; each sees what it may (nldev.h).
inline constexpr uint32_t kNetlinkCapAck = 1;  // NETLINK_CAP_ACK set on the socket
inline constexpr uint32_t kNetlinkExtAck = 2;  // NETLINK_EXT_ACK set on the socket
inline constexpr size_t kMaxNetlinkDatagram = 16 * 1024;
struct RdmaNetlinkRequest {
  uint32_t portid;  // the socket's port ID (replies' nlmsg_pid)
  uint32_t flags;   // kNetlinkCapAck, kNetlinkExtAck
  uint32_t first;
  uint32_t reserved;
  // then the datagram, at most kMaxNetlinkDatagram bytes
};
struct RdmaNetlinkReply {
  uint32_t total;  // datagrams in the whole answer
  uint32_t count;  // datagrams here, each a uint32_t length and then its bytes
};

// ---- PD, MR ---------------------------------------------------------------------------

struct HandleMsg {  // request or reply naming one object
  uint32_t handle;
  uint32_t reserved;
};

// One run of registered pages: [range_offset, range_offset+length) of the page range
// starting at RegMrRequest::page_base. Together the segments cover the page range
// exactly once. Two kinds:
// - a memfd the provider made (private memory remapped, mr_share.cc), passed as the next
//   request fd, the pages at file_offset;
// - by_reference: memory the client already shares with others (System V shm, a
//   MAP_SHARED anonymous mapping, a memfd of its own sealed against shrinking). No fd:
//   the daemon opens the client's mapping itself (/proc/PID/map_files) after checking it
//   in /proc/PID/maps; file_offset is ignored.
struct MrSegment {
  uint64_t range_offset;
  uint64_t length;
  uint64_t file_offset;
  uint32_t by_reference;
  uint32_t reserved;
};
// Request fds: one per segment that is not by_reference, in segment order.
struct RegMrRequest {
  uint32_t pd;
  uint32_t access;  // ibv_access_flags
  uint64_t addr;    // first byte registered, in the client's address space
  uint64_t length;
  uint64_t iova;  // the address remote peers use (ibv_reg_mr_iova2)
  uint64_t page_base;
  uint64_t page_length;
  uint32_t nsegments;
  uint32_t reserved;
  MrSegment segments[];
};
struct RegMrReply {
  uint32_t handle;
  uint32_t lkey;
  uint32_t rkey;
  uint32_t reserved;
};
// ibv_rereg_mr of MR `handle`: `flags` says what changes (IBV_REREG_MR_CHANGE_TRANSLATION,
// _PD, _ACCESS); pd and access are read only with their flag. With a new translation the
// new pages follow as for RegMrRequest (nsegments MrSegments, their fds), the MR's iova
// becoming addr. Reply: RegMrReply (the keys stay).
struct ReregMrRequest {
  uint32_t handle;
  uint32_t flags;
  uint32_t pd;
  uint32_t access;
  uint64_t addr;
  uint64_t length;
  uint64_t page_base;
  uint64_t page_length;
  uint32_t nsegments;
  uint32_t reserved;
  MrSegment segments[];
};

// ---- Device memory (ibv_alloc_dm) ------------------------------------------------------

// A vdev's "device memory" is memory of the daemon, shared with the client that allocated
// it (a sealed memfd, charged to the vdev's ring_bytes): the provider copies to and from
// it (ibv_memcpy_to_dm, in 4-byte units as mlx5 asks) and an MR on it is zero-based
// (ibv_reg_dm_mr). The largest allocation, as query_device_ex's max_dm_size.
inline constexpr uint64_t kMaxDmSize = 256 * 1024;
inline constexpr uint64_t kDmAlignment = 4;  // of offsets and lengths copied
struct AllocDmRequest {
  uint64_t length;
  uint32_t log_align_req;
  uint32_t comp_mask;
};
// Reply fds: [0] the memory (shm_size bytes, the first `length` of them the DM's).
struct AllocDmReply {
  uint32_t handle;
  uint32_t reserved;
  uint64_t shm_size;
};
// Reply: RegMrReply.
struct AllocMwRequest {
  uint32_t pd;
  uint32_t type;  // ibv_mw_type
};
struct AllocMwReply {
  uint32_t handle;  // names the window in BIND_MW WQEs and kDeallocMw
  uint32_t rkey;
};

struct RegDmMrRequest {
  uint32_t pd;
  uint32_t dm;
  uint64_t offset;
  uint64_t length;
  uint32_t access;  // must hold IBV_ACCESS_ZERO_BASED
  uint32_t reserved;
};

// ---- CQ -------------------------------------------------------------------------------

// Request fds: [0] when has_channel, one end of the completion channel's AF_UNIX
// SOCK_SEQPACKET socketpair (the daemon sends ib_uverbs_comp_event_desc records, which
// ibv_get_cq_event reads from the other end); anything else is refused with EINVAL.
struct CreateCqRequest {
  uint32_t cqe;
  uint32_t has_channel;
  uint64_t user_handle;  // the client's struct ibv_cq *, echoed in events
  uint32_t flags;        // kCqTimestamps
  uint32_t reserved;
};
// CreateCqRequest::flags: every CQE carries the time it was written (Cqe::timestamp).
inline constexpr uint32_t kCqTimestamps = 1;
// The device clock of completion timestamps: CLOCK_MONOTONIC in nanoseconds, so a tick
// is 1 ns (hca_core_clock 1000000 kHz) and the client reads the same clock itself
// (ibv_query_rt_values_ex).
// Reply fds: [0] the memfd holding the CQ ring (CqShmHeader + depth CQEs): shm_size bytes
// from shm_offset (page-aligned), which is where the client maps them.
struct CreateCqReply {
  uint32_t handle;
  uint32_t depth;  // CQEs the ring holds (reported back as ibv_cq.cqe)
  uint64_t shm_size;
  uint64_t shm_offset;
};
struct ResizeCqRequest {
  uint32_t handle;
  uint32_t cqe;
};
using ResizeCqReply = CreateCqReply;  // a new ring: completions not yet polled moved over

// ---- SRQ ------------------------------------------------------------------------------

struct CreateSrqRequest {
  uint32_t pd;
  uint32_t max_wr;
  uint32_t max_sge;
  uint32_t srq_limit;
  uint64_t user_handle;
  uint32_t srq_type;  // IBV_SRQT_BASIC, IBV_SRQT_XRC or kSrqTypeWq
  uint32_t xrcd;      // XRC: the domain (OpenXrcdReply::handle) and the SRQ's own CQ
  uint32_t cq;
  uint32_t reserved;
};
// A receive work queue (ibv_create_wq, IBV_WQT_RQ) is an SRQ of this type completing on
// its own CQ (`cq`): its ring and its posting are an SRQ's; it receives once ibv_modify_wq
// made it ready, and only through the indirection tables of receive-side scaling QPs.
inline constexpr uint32_t kSrqTypeWq = 0x100;
// Reply fds: [0] the memfd holding the SRQ ring (RingShmHeader + depth slots of stride
// bytes): shm_size bytes from shm_offset.
struct CreateSrqReply {
  uint32_t handle;
  uint32_t depth;
  uint32_t stride;
  uint32_t max_sge;
  uint64_t shm_size;
  uint32_t srq_num;  // XRC: the number XRC send WQEs name (ibv_get_srq_num)
  uint32_t reserved;
  uint64_t shm_offset;
};

// ---- Shared contexts (ibv_import_device, ibv_import_pd/_mr/_dm) ------------------------

// ibv_import_device(3): a new connection joins the context whose token (fds [1], fds [0]
// the async event channel as for OpenDevice) it passes. Every object is then the two
// contexts' (their handles are one table, as in one uverbs file), while each connection
// registers its own process's memory. `name` is the vdev the token says it belongs to.
// Reply: OpenDeviceReply, fds [0] the context page, [1] the doorbell eventfd.
using ImportContextRequest = OpenDeviceRequest;
inline constexpr const char* kContextTokenPrefix = "vrdma-context:";  // memfd name, + vdev
// ibv_import_pd/_mr/_dm(3): object `handle` of the context, looked up. Reply:
// ImportObjectReply; for a DM fds [0] its memory (AllocDmReply's region).
enum class ImportKind : uint32_t { kPd = 1, kMr = 2, kDm = 3 };
struct ImportObjectRequest {
  ImportKind kind;
  uint32_t handle;
};
struct ImportObjectReply {
  uint64_t addr;        // MR: its iova; DM: 0
  uint64_t length;      // MR, DM
  uint64_t shm_size;    // DM: the size of its region
  uint32_t lkey, rkey;  // MR
  uint32_t pd;          // MR: its PD
  uint32_t access;      // MR: IBV_ACCESS_*
};

// ---- Flow steering (ibv_create_flow, ibv_destroy_flow) ---------------------------------

// A rule steering frames to raw packet QP `qp`: followed by `attr_size` bytes, the
// application's struct ibv_flow_attr and its num_of_specs specs, one after another, each
// as long as its own size field says (ibv_create_flow(3)). Reply: HandleMsg (the rule).
// kDestroyFlow: HandleMsg.
inline constexpr uint32_t kMaxFlowAttrSize = 1024;
struct CreateFlowRequest {
  uint32_t qp;
  uint32_t attr_size;
};

// ---- Multicast (ibv_attach_mcast, ibv_detach_mcast) ------------------------------------

// UD QP `qp` joins (kAttachMcast) or leaves (kDetachMcast) multicast group `gid`; `lid`
// means nothing on RoCE. Reply: none.
struct McastRequest {
  uint32_t qp;
  uint16_t lid;
  uint16_t reserved;
  uint8_t gid[16];
};

// ---- XRC domains ----------------------------------------------------------------------

// Request fds: [0] the file that names the domain when has_fd (ibv_open_xrcd(3): every
// context of the device that opens the same file shares one domain); none for a domain
// of this context alone.
struct OpenXrcdRequest {
  uint32_t oflags;  // O_CREAT, O_EXCL
  uint32_t has_fd;
};
struct OpenXrcdReply {
  uint32_t handle;
  uint32_t reserved;
};
// ibv_open_qp(3): an XRC receive QP of a domain this context opened, made by any context
// of the vdev. Reply: CreateQpReply (no rings), fds [0] its (empty) ring region.
struct OpenQpRequest {
  uint32_t xrcd;
  uint32_t qpn;
  uint32_t qp_type;  // IBV_QPT_XRC_RECV
  uint32_t reserved;
  uint64_t user_handle;
};
struct ModifySrqRequest {
  uint32_t handle;
  uint32_t mask;  // IBV_SRQ_MAX_WR | IBV_SRQ_LIMIT
  uint32_t max_wr;
  uint32_t srq_limit;
};
struct QuerySrqReply {
  uint32_t max_wr;
  uint32_t max_sge;
  uint32_t srq_limit;
  uint32_t reserved;
};

// ---- AH -------------------------------------------------------------------------------

struct CreateAhRequest {
  uint32_t pd;
  uint32_t reserved;
  ibv_ah_attr attr;
};

// ---- QP -------------------------------------------------------------------------------

struct CreateQpRequest {
  uint32_t pd;
  uint32_t qp_type;  // IBV_QPT_RC, UC, UD, XRC_SEND, XRC_RECV, RAW_PACKET
  uint32_t send_cq;
  uint32_t recv_cq;
  uint32_t has_srq;
  uint32_t srq;
  uint32_t max_send_wr;
  uint32_t max_recv_wr;
  uint32_t max_send_sge;
  uint32_t max_recv_sge;
  uint32_t max_inline_data;
  uint32_t sq_sig_all;
  uint64_t user_handle;  // the client's struct ibv_qp *, echoed in async events
  uint32_t xrcd;         // IBV_QPT_XRC_RECV: its domain (no PD, CQs or queues)
  uint32_t rx_hash;      // 1: a receive-side scaling QP, RxHashRequest follows
};
// A raw packet QP that spreads what its flow rules take over the receive work queues of
// indirection table `ind_table` by a Toeplitz hash of `fields` (IBV_RX_HASH_*) with `key`
// (ibv_create_qp_ex(3): IBV_QP_INIT_ATTR_RX_HASH, IBV_QP_INIT_ATTR_IND_TABLE). It has no
// queues or CQs of its own.
struct RxHashRequest {
  uint32_t ind_table;
  uint8_t function;  // IBV_RX_HASH_FUNC_TOEPLITZ
  uint8_t key_len;
  uint16_t reserved;
  uint64_t fields;
  uint8_t key[64];
};
// ibv_modify_wq(3): `state` IBV_WQS_RDY, IBV_WQS_RESET or IBV_WQS_ERR, for WQ `handle`.
struct ModifyWqRequest {
  uint32_t handle;
  uint32_t state;
};
// ibv_create_rwq_ind_table(3): 2^log_size WQ handles follow. Reply: HandleMsg.
// kDestroyIndTable: HandleMsg.
inline constexpr uint32_t kMaxLogIndTableSize = 8;
struct CreateIndTableRequest {
  uint32_t log_size;
  uint32_t reserved;
};
// Reply fds: [0] the memfd holding the QP's rings, shm_size bytes from shm_offset:
// QpShmHeader, then the SQ at sq_offset (sq_depth slots of sq_stride bytes), then the RQ
// at rq_offset (rq_depth slots of rq_stride), both offsets counted from shm_offset.
struct CreateQpReply {
  uint32_t handle;
  uint32_t qpn;
  uint32_t sq_depth;
  uint32_t rq_depth;
  uint32_t sq_stride;
  uint32_t rq_stride;
  uint32_t max_send_sge;
  uint32_t max_recv_sge;
  uint32_t max_inline_data;
  uint32_t reserved;
  uint64_t sq_offset;
  uint64_t rq_offset;
  uint64_t shm_size;
  uint64_t shm_offset;
};
struct ModifyQpRequest {
  uint32_t handle;
  int32_t mask;  // ibv_qp_attr_mask
  ibv_qp_attr attr;
};
struct QueryQpRequest {
  uint32_t handle;
  int32_t mask;
};
struct QueryQpReply {
  ibv_qp_attr attr;
  ibv_qp_cap cap;
  uint32_t sq_sig_all;
  uint32_t reserved;
};

// ---- administration -------------------------------------------------------------------

// Payload: flags, then the command's words, each NUL-terminated ("dev", "add", "vdev0",
// "pdev", "pdev0", "netdev", "veth0"). Reply payload: the text to print (JSON with
// kAdminJson), NUL-terminated; status non-zero on failure. A text longer than a message
// holds (`res show qp` of thousands of QPs) comes instead in a sealed memfd, the reply's
// one descriptor, with an empty payload.
inline constexpr uint32_t kAdminJson = 1;
inline constexpr uint32_t kAdminPretty = 2;  // with kAdminJson: indented JSON
struct AdminRequest {
  uint32_t flags;
  uint32_t nwords;
  char words[];
};

// ---- the connection manager: the RDMA-CM uAPI (rdma/rdma_user_cm.h) ----------------------
//
// The interposer gives librdmacm, for /dev/infiniband/rdma_cm, the client's end of a
// socketpair (the "channel"): pollable, readable while the CM file has events queued.
// Commands go on a connection of their own to vrdmad, one per channel:
//  - kCmOpen, fds[0] = the daemon's end of the channel. Reply: CmOpenReply. From then on
//    the connection is that CM file; closing it destroys every ID of the file.
//  - kCmCommand: CmCommand, then `in_len` bytes: the command struct of rdma_user_cm.h as
//    librdmacm wrote it after struct rdma_ucm_cmd_hdr (the daemon ignores its user
//    pointers), then for SET_OPTION the `optlen` bytes its optval points to (not counted
//    in `in_len`). Reply (status
//    0 or the errno write() fails with): CmCommandReply, then `out_len` bytes for the
//    command's response buffer.
// The daemon sends one byte on the channel when the file's event queue goes from empty to
// non-empty; a reply with kCmQueueDrained (the queue went empty) tells the client to take
// one byte off the channel, so the channel is readable exactly while events wait.
inline constexpr uint32_t kCmMaxCommand = 1024;  // bytes of a command or of a response
struct CmOpenReply {
  uint64_t file_token;  // names the file in another channel's MIGRATE_ID
};
struct CmCommand {
  uint32_t cmd;  // RDMA_USER_CM_CMD_*
  uint32_t in_len;
  uint32_t out_len;  // bytes librdmacm's response buffer holds (the header's `out`)
  uint32_t reserved;
  uint64_t peer_token;  // MIGRATE_ID: the file_token of the channel its `fd` names
};
inline constexpr uint32_t kCmQueueDrained = 1;
inline constexpr uint32_t kCmPeerQueueDrained = 2;  // MIGRATE_ID: the same, for the peer's channel
struct CmCommandReply {
  uint32_t out_len;
  uint32_t flags;  // kCmQueueDrained
};

// ---- shared memory ----------------------------------------------------------------------
//
// Indexes are free-running uint32_t counters; slot = index & (depth - 1), depth a power
// of two. Each index has one writer: the producer index is written by the producer only
// and the consumer index by the consumer only, each in its own cache line.

struct alignas(64) SharedIndex {
  std::atomic<uint32_t> value;
  uint8_t pad[60];
};
static_assert(sizeof(SharedIndex) == 64);
static_assert(std::atomic<uint32_t>::is_always_lock_free);

// One per ibv_context. After writing WQEs and a producer index the client bumps
// `doorbell`; if the engine said it is asleep, it also writes the doorbell eventfd.
struct ContextShm {
  SharedIndex doorbell;         // client: bumped after every post
  SharedIndex engine_sleeping;  // daemon: 1 while the engine may be blocked in epoll
  // 1 once the device is gone for this context: the daemon sets it when it sends
  // IBV_EVENT_DEVICE_FATAL (vdev deleted, daemon stopping), the provider when the daemon
  // hangs up without having sent it (and then sends it itself). Posts and polls fail.
  SharedIndex device_fatal;
};

struct RingShmHeader {
  SharedIndex producer;
  SharedIndex consumer;
  // QP and SRQ rings: how many WQEs have left the device's queue (completed, flushed,
  // refused). The client keeps producer - retired within the queue's depth (post
  // returns ENOMEM beyond it, ibv_post_send(3)); unused by CQ rings.
  SharedIndex retired;
};

// QP rings: the client produces send and receive WQEs, the daemon consumes them (its
// consumer index tells the client which slots are free again).
struct QpShmHeader {
  RingShmHeader sq;
  RingShmHeader rq;
};

// CQ ring: the daemon produces CQEs, the client consumes them. ibv_req_notify_cq bumps
// arm_sequence (after setting arm_solicited); the daemon raises one completion event for
// the first qualifying CQE it writes after a new arm_sequence (IBTA 11.4.2.2).
struct alignas(64) CqArm {
  std::atomic<uint32_t> arm_sequence;
  std::atomic<uint32_t> arm_solicited;
  uint8_t pad[56];
};
struct CqShmHeader {
  RingShmHeader ring;
  CqArm arm;
};

struct Sge {
  uint64_t addr;
  uint32_t length;
  uint32_t lkey;
};

// ibv_advise_mr: the ranges to prefetch, each inside an on-demand MR (by lkey) of `pd`.
// The daemon checks them; the provider then faults the pages in itself.
inline constexpr uint32_t kMaxAdviseSges = 64;
struct AdviseMrRequest {
  uint32_t pd;
  uint32_t advice;  // ibv_advise_mr_advice
  uint32_t flags;   // IBV_ADVISE_MR_FLAG_FLUSH
  uint32_t nsge;
  Sge sges[];
};

// A send WQE slot: this header, then num_sge Sge entries, or inline_len bytes of data
// when send_flags has IBV_SEND_INLINE.
struct SendWqe {
  uint64_t wr_id;
  uint32_t opcode;      // ibv_wr_opcode
  uint32_t send_flags;  // ibv_send_flags
  uint32_t num_sge;
  uint32_t inline_len;
  uint32_t imm_data;     // network order; the rkey to invalidate for SEND_WITH_INV, LOCAL_INV
  uint32_t rkey;         // BIND_MW: the window's new rkey
  uint64_t remote_addr;  // BIND_MW: where the window starts in the MR
  uint64_t compare_add;  // BIND_MW: the window's length; ATOMIC_WRITE: the 8 bytes
  uint64_t swap;         // BIND_MW: the window's access flags
  union {
    struct {
      uint32_t ah;  // the AH handle the daemon returned
      uint32_t remote_qpn;
      uint32_t remote_qkey;
    } ud;
    struct {
      uint32_t mw;       // the window's handle (ibv_mw.handle)
      uint32_t mr_lkey;  // the MR it opens onto
      uint32_t reserved;
    } bind;
  };
  uint32_t remote_srqn;  // XRC send QPs: the XRC SRQ at the target (XRCETH)
};
static_assert(sizeof(SendWqe) == 72);

// A receive WQE slot (QP RQ or SRQ): this header, then num_sge Sge entries.
struct RecvWqe {
  uint64_t wr_id;
  uint32_t num_sge;
  uint32_t reserved;
};

// A completion as the daemon writes it; the provider turns it into struct ibv_wc.
struct Cqe {
  uint64_t wr_id;
  uint32_t status;  // ibv_wc_status
  uint32_t opcode;  // ibv_wc_opcode
  uint32_t vendor_err;
  uint32_t byte_len;
  uint32_t imm_data;  // network order, or the invalidated rkey
  uint32_t qp_num;
  uint32_t src_qp;
  uint32_t wc_flags;
  uint16_t pkey_index;
  uint16_t slid;
  uint8_t sl;
  uint8_t dlid_path_bits;
  uint8_t reserved[2];
  uint64_t timestamp;  // CLOCK_MONOTONIC ns when written, on a CQ made with kCqTimestamps
  uint8_t reserved2[8];
};
static_assert(sizeof(Cqe) == 64);
static_assert(offsetof(Cqe, timestamp) == 48);

inline constexpr uint32_t RoundUp(uint32_t v, uint32_t align) {
  return (v + align - 1) / align * align;
}
// Slot sizes, in whole cache lines.
inline constexpr uint32_t SendWqeStride(uint32_t max_sge, uint32_t max_inline) {
  uint32_t body = max_sge * sizeof(Sge) > max_inline ? max_sge * sizeof(Sge) : max_inline;
  return RoundUp(sizeof(SendWqe) + body, 64);
}
inline constexpr uint32_t RecvWqeStride(uint32_t max_sge) {
  return RoundUp(sizeof(RecvWqe) + max_sge * sizeof(Sge), 64);
}

}  // namespace vrdma::proto
