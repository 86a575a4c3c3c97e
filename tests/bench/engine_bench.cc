// Engine-to-engine benchmark over the in-memory test link, both engines polled from one
// thread pinned to one core: 64 B SEND messages/s and 64 KiB RDMA WRITE GB/s, printed
// beside single-core memcpy GB/s for the same size measured in the same run. Then the
// same workloads on two such pairs at once, each on its own thread and core with its own
// packet pool (as one engine per lcore would run), beside one pair alone in the same run:
// how the engine's code scales with cores (issue 16, goal 5).
// A benchmark, not a test: it prints figures and never fails on them.
#include <sched.h>
#include <time.h>

#include <algorithm>
#include <barrier>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <thread>
#include <vector>

#include "driver/port/packet_pool.h"
#include "driver/port/test_link.h"
#include "driver/transport/device.h"
#include "vfio/eal.h"

namespace {

using namespace vrdma::driver;

void Check(const absl::Status& st) {
  if (!st.ok()) {
    std::fprintf(stderr, "setup failed: %s\n", st.ToString().c_str());
    std::exit(1);
  }
}

uint64_t NowNs() {
  timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<uint64_t>(ts.tv_sec) * 1'000'000'000ull + ts.tv_nsec;
}

struct Side {
  std::unique_ptr<RoceDevice> dev;
  uint32_t pd, cq, qp;
  uint32_t ud_qp = 0, ah = 0;  // a UD QP, and an AH to the peer's (ConnectUd)
  std::vector<uint8_t> mem;
  MrKeys mr;
};

void Setup(Side& s, PacketPort* port, rte_mempool* pool, uint8_t id, bool icrc_offload = false) {
  RoceDeviceConfig cfg;
  cfg.pool = pool;
  cfg.port = port;
  cfg.icrc_offload = icrc_offload;
  s.dev = std::make_unique<RoceDevice>(cfg);
  wire::Gid gid{};
  gid[10] = gid[11] = 0xff;
  gid[12] = 10;
  gid[15] = id;
  Check(s.dev->SetGid(
      0, GidEntry{true, gid, wire::NetworkType::kRoceV2Ipv4, {2, 0, 0, 0, 0, id}, false, 0}));
  s.pd = *s.dev->AllocPd();
  s.cq = *s.dev->CreateCq(8192);
  s.mem.assign(8 << 20, id);
  s.mr = *s.dev->RegMr(s.pd, reinterpret_cast<uint64_t>(s.mem.data()), s.mem.data(), s.mem.size(),
                       IBV_ACCESS_LOCAL_WRITE | IBV_ACCESS_REMOTE_WRITE | IBV_ACCESS_REMOTE_READ);
  QpInitAttr init;
  init.pd = s.pd;
  init.send_cq = init.recv_cq = s.cq;
  init.max_send_wr = 1024;
  init.max_recv_wr = 1024;
  s.qp = *s.dev->CreateQp(init);
}

void Connect(Side& s, const Side& peer, uint8_t peer_id, ibv_mtu mtu) {
  ibv_qp_attr a{};
  a.qp_state = IBV_QPS_INIT;
  a.port_num = 1;
  a.qp_access_flags = IBV_ACCESS_REMOTE_WRITE | IBV_ACCESS_REMOTE_READ;
  Check(s.dev->ModifyQp(s.qp, a,
                        IBV_QP_STATE | IBV_QP_PKEY_INDEX | IBV_QP_PORT | IBV_QP_ACCESS_FLAGS));
  AddressVector av;
  av.dgid = peer.dev->GetGid(0)->gid;
  av.dmac = {2, 0, 0, 0, 0, peer_id};
  a = {};
  a.qp_state = IBV_QPS_RTR;
  a.path_mtu = mtu;
  a.dest_qp_num = peer.qp;
  a.max_dest_rd_atomic = 16;
  a.min_rnr_timer = 1;
  Check(s.dev->ModifyQp(s.qp, a,
                        IBV_QP_STATE | IBV_QP_AV | IBV_QP_PATH_MTU | IBV_QP_DEST_QPN |
                            IBV_QP_RQ_PSN | IBV_QP_MAX_DEST_RD_ATOMIC | IBV_QP_MIN_RNR_TIMER,
                        &av));
  a = {};
  a.qp_state = IBV_QPS_RTS;
  a.timeout = 14;
  a.retry_cnt = 7;
  a.rnr_retry = 7;
  a.max_rd_atomic = 16;
  Check(s.dev->ModifyQp(s.qp, a,
                        IBV_QP_STATE | IBV_QP_SQ_PSN | IBV_QP_TIMEOUT | IBV_QP_RETRY_CNT |
                            IBV_QP_RNR_RETRY | IBV_QP_MAX_QP_RD_ATOMIC));
}

constexpr uint32_t kBenchQkey = 0x11111111;

// A UD QP on each side and an address handle to the other's, for the same SENDs as RC.
void ConnectUd(Side& s, const Side& peer, uint8_t peer_id) {
  QpInitAttr init;
  init.type = IBV_QPT_UD;
  init.pd = s.pd;
  init.send_cq = init.recv_cq = s.cq;
  init.max_send_wr = 1024;
  init.max_recv_wr = 1024;
  s.ud_qp = *s.dev->CreateQp(init);
  ibv_qp_attr a{};
  a.qp_state = IBV_QPS_INIT;
  a.port_num = 1;
  a.qkey = kBenchQkey;
  Check(s.dev->ModifyQp(s.ud_qp, a, IBV_QP_STATE | IBV_QP_PKEY_INDEX | IBV_QP_PORT | IBV_QP_QKEY));
  a = {};
  a.qp_state = IBV_QPS_RTR;
  Check(s.dev->ModifyQp(s.ud_qp, a, IBV_QP_STATE));
  a = {};
  a.qp_state = IBV_QPS_RTS;
  Check(s.dev->ModifyQp(s.ud_qp, a, IBV_QP_STATE | IBV_QP_SQ_PSN));
  AddressVector av;
  av.dgid = peer.dev->GetGid(0)->gid;
  av.dmac = {2, 0, 0, 0, 0, peer_id};
  s.ah = *s.dev->CreateAh(s.pd, av);
}

// Keeps `depth` WRs in flight until `total` complete; returns seconds.
// Takes b's completions; returns the receives among them, each checked (status, length).
uint64_t Received(Side& b, ibv_wc* wc, uint32_t recv_size) {
  uint64_t n_recv = 0;
  int n;
  while ((n = *b.dev->PollCq(b.cq, wc, 64)) > 0) {
    for (int i = 0; i < n; ++i) {
      if (wc[i].opcode != IBV_WC_RECV) continue;
      if (wc[i].status != IBV_WC_SUCCESS || wc[i].byte_len != recv_size) {
        std::fprintf(stderr, "receive: %s, %u bytes\n", ibv_wc_status_str(wc[i].status),
                     wc[i].byte_len);
        std::exit(1);
      }
      ++n_recv;
    }
  }
  return n_recv;
}

// `ud`: SENDs on the UD QPs (each receive buffer 40 bytes longer, for the GRH).
double Run(Side& a, Side& b, TestLink& link, ibv_wr_opcode op, uint32_t size, uint64_t total,
           uint32_t depth, bool ud = false) {
  uint64_t posted = 0, done = 0, recvs = 0, received = 0;
  const uint32_t recv_size = ud ? size + 40 : size;
  auto post_recvs = [&] {
    while (op == IBV_WR_SEND && recvs < posted + depth && recvs < total) {
      RecvWr r;
      r.wr_id = recvs;
      r.num_sge = 1;
      r.sg_list[0] = Sge{reinterpret_cast<uint64_t>(b.mem.data()) + (recvs % 64) * recv_size,
                         recv_size, b.mr.lkey};
      if (!b.dev->PostRecv(ud ? b.ud_qp : b.qp, r).ok()) break;
      ++recvs;
    }
  };
  uint64_t start = NowNs();
  ibv_wc wc[64];
  while (done < total) {
    post_recvs();
    while (posted < total && posted - done < depth) {
      SendWr w;
      w.wr_id = posted;
      w.opcode = op;
      // Signal one WR in 16, as perftest does with its completion moderation.
      w.send_flags = (posted % 16 == 15 || posted + 1 == total) ? IBV_SEND_SIGNALED : 0;
      w.num_sge = 1;
      w.sg_list[0] =
          Sge{reinterpret_cast<uint64_t>(a.mem.data()) + (posted % 64) * size, size, a.mr.lkey};
      w.remote_addr = reinterpret_cast<uint64_t>(b.mem.data()) + (posted % 64) * size;
      w.rkey = b.mr.rkey;
      w.ah = a.ah;
      w.remote_qpn = b.ud_qp;
      w.remote_qkey = kBenchQkey;
      if (!a.dev->PostSend(ud ? a.ud_qp : a.qp, w).ok()) break;
      ++posted;
    }
    uint64_t now = NowNs();
    link.SetNow(now);
    a.dev->Poll(now);
    b.dev->Poll(now);
    int n = *a.dev->PollCq(a.cq, wc, 64);
    for (int i = 0; i < n; ++i) {
      if (wc[i].status != IBV_WC_SUCCESS) {
        std::fprintf(stderr, "completion error %s\n", ibv_wc_status_str(wc[i].status));
        std::exit(1);
      }
      done = wc[i].wr_id + 1;
    }
    received += Received(b, wc, recv_size);
  }
  const double secs = (NowNs() - start) / 1e9;
  // Every SEND arrived, whole (a UD send completes whether its datagram arrives or not).
  for (int spins = 0; op == IBV_WR_SEND && received < total && spins < 1000000; ++spins) {
    const uint64_t now = NowNs();
    link.SetNow(now);
    a.dev->Poll(now);
    b.dev->Poll(now);
    received += Received(b, wc, recv_size);
  }
  if (op == IBV_WR_SEND && received != total) {
    std::fprintf(stderr, "%s: %llu of %llu SENDs received\n", ud ? "UD" : "RC",
                 static_cast<unsigned long long>(received), static_cast<unsigned long long>(total));
    std::exit(1);
  }
  return secs;
}

double MemcpyGbps(uint32_t size) {
  std::vector<uint8_t> src(64ull * size, 1), dst(64ull * size);
  uint64_t iters = (1ull << 30) / size;
  uint64_t start = NowNs();
  for (uint64_t i = 0; i < iters; ++i) {
    std::memcpy(dst.data() + (i % 64) * size, src.data() + (i % 64) * size, size);
    asm volatile("" ::"r"(dst.data()) : "memory");
  }
  return iters * static_cast<double>(size) / ((NowNs() - start) / 1e9) / 1e9;
}

bool PinTo(int core) {
  cpu_set_t set;
  CPU_ZERO(&set);
  CPU_SET(core, &set);
  return sched_setaffinity(0, sizeof(set), &set) == 0;
}

// Two engines joined by a link, with their own packet pool: what one lcore would run.
struct Pair {
  rte_mempool* pool = nullptr;
  std::unique_ptr<TestLink> link;
  Side a, b;
};

std::unique_ptr<Pair> MakePair(int index, bool icrc_offload) {
  auto p = std::make_unique<Pair>();
  std::string name = "bench_pool" + std::to_string(index);
  p->pool = *CreatePacketPool(name.c_str(), 16383);
  p->link = std::make_unique<TestLink>(index + 1, /*queue_depth=*/8192);
  Setup(p->a, p->link->port_a(), p->pool, 1, icrc_offload);
  Setup(p->b, p->link->port_b(), p->pool, 2, icrc_offload);
  Connect(p->a, p->b, 2, IBV_MTU_4096);
  Connect(p->b, p->a, 1, IBV_MTU_4096);
  ConnectUd(p->a, p->b, 2);
  ConnectUd(p->b, p->a, 1);
  return p;
}

// `pairs.size()` pairs run the same workload at once, pair i on a thread pinned to core i
// (registered with DPDK as an lcore, so its pool has a per-lcore cache); returns the
// units moved per second by all of them together (units: messages, or bytes for WRITE).
double RunTogether(std::vector<Pair*> pairs, ibv_wr_opcode op, uint32_t size, uint64_t total,
                   uint32_t depth) {
  std::vector<double> secs(pairs.size());
  std::barrier start(static_cast<std::ptrdiff_t>(pairs.size()));
  std::vector<std::thread> threads;
  for (size_t i = 0; i < pairs.size(); ++i) {
    threads.emplace_back([&, i] {
      PinTo(static_cast<int>(i));
      if (rte_lcore_id() == LCORE_ID_ANY) rte_thread_register();
      start.arrive_and_wait();
      secs[i] = Run(pairs[i]->a, pairs[i]->b, *pairs[i]->link, op, size, total, depth);
    });
  }
  for (auto& t : threads) t.join();
  // All of them finished by the slowest one's end.
  double slowest = *std::max_element(secs.begin(), secs.end());
  double units = op == IBV_WR_SEND ? static_cast<double>(total) : double(total) * size;
  return units * static_cast<double>(pairs.size()) / slowest;
}

}  // namespace

int main() {
  bool pinned = PinTo(0);
  if (!vrdma::vfio::InitEal(vrdma::vfio::NoDeviceEalArgs()).ok()) return 1;
  auto pair = MakePair(0, /*icrc_offload=*/false);
  Side& a = pair->a;
  Side& b = pair->b;
  TestLink& link = *pair->link;

  std::printf(
      "engine benchmark: both engines and the link on one thread, %s core 0; "
      "RC, MTU 4096, ICRC computed and verified on every packet\n",
      pinned ? "pinned to" : "NOT pinned (sched_setaffinity failed) to");
  // The machine is a shared VM: each figure is the best and the median of 5 runs.
  auto best_median = [](std::vector<double> v) {
    std::sort(v.begin(), v.end());
    return std::pair{v.back(), v[v.size() / 2]};
  };
  const uint64_t kMsgs = 200000;
  std::vector<double> rates, ud_rates;
  // RC and UD alternate, so that both see the same machine (goal 3: UD as fast as RC).
  for (int i = 0; i < 5; ++i) {
    rates.push_back(kMsgs / Run(a, b, link, IBV_WR_SEND, 64, kMsgs, 128));
    ud_rates.push_back(kMsgs / Run(a, b, link, IBV_WR_SEND, 64, kMsgs, 128, /*ud=*/true));
  }
  auto [send_best, send_median] = best_median(rates);
  std::printf("  64 B SEND          %10.0f messages/s best, %10.0f median\n", send_best,
              send_median);
  auto [ud_best, ud_median] = best_median(ud_rates);
  std::printf("  64 B SEND on UD    %10.0f messages/s best, %10.0f median: %.2f x RC's median\n",
              ud_best, ud_median, ud_median / send_median);
  const uint64_t kWrites = 15000;
  rates.clear();
  for (int i = 0; i < 5; ++i) {
    rates.push_back(kWrites * 65536.0 / Run(a, b, link, IBV_WR_RDMA_WRITE, 65536, kWrites, 64) /
                    1e9);
  }
  auto [write_best, write_median] = best_median(rates);
  std::printf("  64 KiB RDMA WRITE  %10.2f GB/s best, %10.2f median\n", write_best, write_median);
  rates.clear();
  for (int i = 0; i < 5; ++i) rates.push_back(MemcpyGbps(65536));
  auto [copy_best, copy_median] = best_median(rates);
  std::printf("  64 KiB memcpy      %10.2f GB/s best, %10.2f median (single core, same run)\n",
              copy_best, copy_median);
  // The same WRITE with the ICRC left to the port (a NIC's offload, or the trusted
  // internal switch of one physical device).
  {
    auto offloaded = MakePair(1, /*icrc_offload=*/true);
    rates.clear();
    for (int i = 0; i < 5; ++i) {
      rates.push_back(
          kWrites * 65536.0 /
          Run(offloaded->a, offloaded->b, *offloaded->link, IBV_WR_RDMA_WRITE, 65536, kWrites, 64) /
          1e9);
    }
    auto [off_best, off_median] = best_median(rates);
    std::printf(
        "  64 KiB RDMA WRITE  %10.2f GB/s best, %10.2f median, ICRC offloaded to the port\n",
        off_best, off_median);
  }
  // Two engine pairs at once, one per core, against one alone, alternating rounds; the
  // ratio is of medians.
  unsigned cores = std::thread::hardware_concurrency();
  if (cores >= 2) {
    auto second = MakePair(2, /*icrc_offload=*/false);
    std::printf(
        "two pairs of engines, one per core (cores 0 and 1, own pools), beside one "
        "pair on core 0, alternating rounds:\n");
    struct Case {
      const char* what;
      ibv_wr_opcode op;
      uint32_t size;
      uint64_t total;
      uint32_t depth;
      double scale;
      const char* unit;
    };
    for (const Case& c :
         {Case{"64 B SEND", IBV_WR_SEND, 64, kMsgs, 128, 1e6, "M messages/s"},
          Case{"64 KiB RDMA WRITE", IBV_WR_RDMA_WRITE, 65536, kWrites, 64, 1e9, "GB/s"}}) {
      std::vector<double> one, two;
      for (int i = 0; i < 5; ++i) {
        one.push_back(RunTogether({pair.get()}, c.op, c.size, c.total, c.depth) / c.scale);
        two.push_back(RunTogether({pair.get(), second.get()}, c.op, c.size, c.total, c.depth) /
                      c.scale);
      }
      auto [one_best, one_median] = best_median(one);
      auto [two_best, two_median] = best_median(two);
      std::printf("  %-18s one %7.2f %s (best %.2f), two %7.2f (best %.2f): %.2f x\n", c.what,
                  one_median, c.unit, one_best, two_median, two_best, two_median / one_median);
    }
    // The anchor: how this machine's second core adds to the first on a loop that shares
    // nothing (a shared VM's two vCPUs may be one physical core's two threads).
    std::vector<double> one, two;
    for (int i = 0; i < 5; ++i) {
      for (int threads : {1, 2}) {
        std::vector<double> gbps(threads);
        std::barrier start(threads);
        std::vector<std::thread> ts;
        for (int t = 0; t < threads; ++t) {
          ts.emplace_back([&, t] {
            PinTo(t);
            start.arrive_and_wait();
            gbps[t] = MemcpyGbps(65536);
          });
        }
        for (auto& t : ts) t.join();
        double sum = 0;
        for (double g : gbps) sum += g;
        (threads == 1 ? one : two).push_back(sum);
      }
    }
    auto [one_best, one_median] = best_median(one);
    auto [two_best, two_median] = best_median(two);
    std::printf("  %-18s one %7.2f GB/s (best %.2f), two %7.2f (best %.2f): %.2f x (the anchor)\n",
                "64 KiB memcpy", one_median, one_best, two_median, two_best,
                two_median / one_median);
    PinTo(0);
  } else {
    std::printf("two pairs of engines: skipped, %u core(s)\n", cores);
  }
  std::printf("  tx packets A %llu B %llu, retransmits %llu\n",
              static_cast<unsigned long long>(a.dev->counters().tx_packets),
              static_cast<unsigned long long>(b.dev->counters().tx_packets),
              static_cast<unsigned long long>(a.dev->counters().retransmits));
  return 0;
}
