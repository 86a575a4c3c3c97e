// Two engines joined by the in-memory test link, on virtual time: the fixture of the
// transport tests. Each host has one PD, CQs and a large registered buffer. With
// `one_device`, both hosts are two virtual devices of one engine whose port is its
// internal switch (their GIDs side by side in its table), as vrdmad's embedded pdev.
#pragma once

#include <infiniband/verbs.h>

#include <cstdint>
#include <cstring>
#include <functional>
#include <memory>
#include <vector>

#include "absl/status/status.h"
#include "driver/pcap/pcap_port.h"
#include "driver/pcap/pcap_writer.h"
#include "driver/port/loopback_port.h"
#include "driver/port/packet_pool.h"
#include "driver/port/test_link.h"
#include "driver/transport/device.h"
#include "gtest/gtest.h"

namespace vrdma::driver::testing {

rte_mempool* SharedPool();

struct Host {
  std::shared_ptr<RoceDevice> dev;  // one_device: the other host's too
  uint32_t gid_base = 0;            // where the host's GIDs start in the device's table
  bool shared_device = false;       // QPs hear only the host's own GIDs (gid_first/count)
  uint32_t pd = 0;
  uint32_t scq = 0;
  uint32_t rcq = 0;
  std::vector<uint8_t> mem;  // registered at IOVA `base`
  uint64_t base = 0;
  MrKeys mr{};

  uint8_t* at(uint64_t off) { return mem.data() + off; }
  uint64_t va(uint64_t off) const { return base + off; }
};

struct QpOptions {
  int type = IBV_QPT_RC;
  ibv_mtu mtu = IBV_MTU_1024;
  uint32_t max_send_wr = 256;
  uint32_t max_recv_wr = 256;
  uint8_t timeout = 8;  // 1 ms
  uint8_t retry_cnt = 7;
  uint8_t rnr_retry = 7;
  uint8_t min_rnr_timer = 1;   // 10 us
  uint8_t rd_atomic = 16;      // max_dest_rd_atomic (and max_rd_atomic unless set below)
  uint8_t init_rd_atomic = 0;  // max_rd_atomic; 0: rd_atomic
  int access = IBV_ACCESS_LOCAL_WRITE | IBV_ACCESS_REMOTE_WRITE | IBV_ACCESS_REMOTE_READ |
               IBV_ACCESS_REMOTE_ATOMIC;
  uint32_t gid_index = 0;  // 0: RoCEv2/IPv4, 1: RoCEv2/IPv6, 2: RoCEv1
  bool srq = false;
  uint32_t max_inline = 64;
  bool sq_sig_all = false;
  uint32_t gid_first = 0;  // the GID entries the QP receives on (gid_count 0: all)
  uint32_t gid_count = 0;
};

class EnginePair {
 public:
  // With `pcap_path`, host A's port records everything it sends and receives there.
  // With `tx_chains`, the link takes zero-copy frames (the test sets MR shares).
  explicit EnginePair(uint64_t seed = 1, size_t mem_bytes = 4 << 20,
                      const char* pcap_path = nullptr, bool tx_chains = false,
                      bool one_device = false);
  ~EnginePair();

  Host a;
  Host b;
  TestLink& link() { return *link_; }
  uint64_t now() const { return now_; }

  // Advances virtual time by one step and polls both engines; returns work done.
  int Step();
  // Steps until pred() or `max_ns` of virtual time pass. Returns pred().
  bool RunUntil(const std::function<bool()>& pred, uint64_t max_ns = 2'000'000'000);

  // Creates a QP on each host and connects them (RESET->INIT->RTR->RTS).
  void Connect(const QpOptions& opt, uint32_t* qa, uint32_t* qb);
  // Connect, returning the first modify that fails instead of failing the test.
  absl::Status TryConnect(const QpOptions& opt, uint32_t* qa, uint32_t* qb);
  // An XRC send QP on host A connected to an XRC receive QP of domain `xrcd_b` on host B.
  absl::Status ConnectXrc(const QpOptions& opt, uint32_t xrcd_b, uint32_t* send_a,
                          uint32_t* recv_b);
  // UD QPs on both hosts in RTS, plus an AH on each towards the other.
  void CreateUd(const QpOptions& opt, uint32_t* qa, uint32_t* qb, uint32_t* ah_ab, uint32_t* ah_ba);
  uint32_t SrqOf(Host& h) { return &h == &a ? srq_a_ : srq_b_; }

  // Collects completions of a CQ into `out` until `n` arrived (or time runs out).
  bool WaitCq(Host& h, uint32_t cq, size_t n, std::vector<ibv_wc>* out,
              uint64_t max_ns = 2'000'000'000);

 private:
  void SetupHost(Host& h, uint8_t id, size_t mem_bytes, bool one_device);
  // QPs qa (on A) and qb (on B) from RESET to RTS, towards each other.
  absl::Status BringUp(const QpOptions& opt, uint32_t qa, uint32_t qb);
  std::unique_ptr<TestLink> link_;
  std::unique_ptr<LoopbackPort> switch_;  // one_device: the engine's port
  std::unique_ptr<PcapWriter> pcap_writer_;
  std::unique_ptr<PcapPort> pcap_port_;
  uint64_t now_ = 0;
  uint32_t srq_a_ = 0;
  uint32_t srq_b_ = 0;
};

// An MR's count of the frames that point into its pages (zero-copy transmit), as vdev's
// TxShare keeps it: the MR holds one reference; `freed` counts last releases.
struct MrShare {
  rte_mbuf_ext_shared_info info{};
  int freed = 0;
  MrShare() {
    info.free_cb = [](void*, void* opaque) { static_cast<MrShare*>(opaque)->freed++; };
    info.fcb_opaque = this;
    rte_mbuf_ext_refcnt_set(&info, 1);  // the MR's own reference
  }
  MrShare(const MrShare&) = delete;
  MrShare& operator=(const MrShare&) = delete;
  uint16_t refs() { return rte_mbuf_ext_refcnt_read(&info); }
};

// Work request builders.
SendWr MakeSend(uint64_t wr_id, ibv_wr_opcode op, const Host& h, uint64_t off, uint32_t len,
                bool signaled = true);
RecvWr MakeRecv(uint64_t wr_id, const Host& h, uint64_t off, uint32_t len);
// A UD SEND of `len` bytes at h.at(off) through AH `ah` to QP `qpn`, with CreateUd's Q_Key.
SendWr MakeDatagram(uint64_t wr_id, const Host& h, uint64_t off, uint32_t len, uint32_t ah,
                    uint32_t qpn);
void FillPattern(uint8_t* p, size_t n, uint32_t seed);

}  // namespace vrdma::driver::testing
