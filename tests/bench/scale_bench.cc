// Scale benchmark (issue 16, goal 7; not a test: prints figures, never fails on one). Run
// under vrdma-run like any verbs application, by tests/bench/scale_bench.sh.
//
//   scale_bench hold N SAMPLE GID_INDEX DEV...
//                                on each DEV: a PD, a CQ and N idle RC QPs (1 send and 1
//                                receive WR each, moved to INIT as an application's are
//                                before they connect). Prints "created Q qps S s". Then a
//                                sample of them is connected and driven: on each pair of
//                                DEVs (1st and 2nd, 3rd and 4th ...), SAMPLE of the QPs,
//                                spread over the N, connect to their like on the other DEV
//                                (GID_INDEX), and each carries ROUNDS 64-byte RDMA WRITEs
//                                of a new pattern each round, every byte checked at the
//                                target: prints "driven P pairs W writes S s BAD bad".
//                                Then "holding", and keeps them all until SIGTERM.
//   scale_bench rate DEV_A DEV_B GID_INDEX PAIRS SECONDS
//                                PAIRS RC QPs on DEV_A connected to as many on DEV_B, then
//                                64-byte RDMA WRITEs round robin over them for SECONDS:
//                                prints "rate MSGS_PER_S pairs PAIRS".
#include <infiniband/verbs.h>
#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

namespace {

using Clock = std::chrono::steady_clock;

double Seconds(Clock::time_point since) {
  return std::chrono::duration<double>(Clock::now() - since).count();
}

ibv_context* Open(const char* name) {
  int n = 0;
  ibv_device** list = ibv_get_device_list(&n);
  ibv_context* ctx = nullptr;
  for (int i = 0; list && i < n; ++i) {
    if (std::strcmp(ibv_get_device_name(list[i]), name) == 0) ctx = ibv_open_device(list[i]);
  }
  if (list) ibv_free_device_list(list);
  if (!ctx) std::fprintf(stderr, "cannot open %s: %s\n", name, std::strerror(errno));
  return ctx;
}

ibv_qp* MakeQp(ibv_pd* pd, ibv_cq* cq, uint32_t send_wr) {
  ibv_qp_init_attr a{};
  a.send_cq = a.recv_cq = cq;
  a.qp_type = IBV_QPT_RC;
  a.cap.max_send_wr = send_wr;
  a.cap.max_recv_wr = 1;
  a.cap.max_send_sge = a.cap.max_recv_sge = 1;
  return ibv_create_qp(pd, &a);
}

bool ToInit(ibv_qp* qp) {
  ibv_qp_attr a{};
  a.qp_state = IBV_QPS_INIT;
  a.port_num = 1;
  a.qp_access_flags = IBV_ACCESS_REMOTE_WRITE;
  return ibv_modify_qp(qp, &a,
                       IBV_QP_STATE | IBV_QP_PKEY_INDEX | IBV_QP_PORT | IBV_QP_ACCESS_FLAGS) == 0;
}

bool Connect(ibv_qp* qp, uint32_t dest_qpn, const ibv_gid& dgid, int gid_index) {
  ibv_qp_attr a{};
  a.qp_state = IBV_QPS_RTR;
  a.path_mtu = IBV_MTU_1024;
  a.dest_qp_num = dest_qpn;
  a.max_dest_rd_atomic = 1;
  a.min_rnr_timer = 12;
  a.ah_attr.is_global = 1;
  a.ah_attr.grh.dgid = dgid;
  a.ah_attr.grh.sgid_index = static_cast<uint8_t>(gid_index);
  a.ah_attr.grh.hop_limit = 64;
  a.ah_attr.port_num = 1;
  if (ibv_modify_qp(qp, &a,
                    IBV_QP_STATE | IBV_QP_AV | IBV_QP_PATH_MTU | IBV_QP_DEST_QPN | IBV_QP_RQ_PSN |
                        IBV_QP_MAX_DEST_RD_ATOMIC | IBV_QP_MIN_RNR_TIMER) != 0) {
    return false;
  }
  ibv_qp_attr s{};
  s.qp_state = IBV_QPS_RTS;
  s.timeout = 14;
  s.retry_cnt = 7;
  s.rnr_retry = 7;
  s.max_rd_atomic = 1;
  return ibv_modify_qp(qp, &s,
                       IBV_QP_STATE | IBV_QP_TIMEOUT | IBV_QP_RETRY_CNT | IBV_QP_RNR_RETRY |
                           IBV_QP_SQ_PSN | IBV_QP_MAX_QP_RD_ATOMIC) == 0;
}

volatile sig_atomic_t g_stop = 0;

// ints: ibv_reg_mr's macro tests the flags against another enum's (clang's
// -Wdeprecated-enum-enum-conversion).
constexpr int kSourceAccess = IBV_ACCESS_LOCAL_WRITE;
constexpr int kTargetAccess = int{IBV_ACCESS_LOCAL_WRITE} | int{IBV_ACCESS_REMOTE_WRITE};

struct HeldDevice {
  ibv_context* ctx = nullptr;
  ibv_pd* pd = nullptr;
  ibv_cq* cq = nullptr;
  std::vector<ibv_qp*> qps;
};

// The sample of Hold: QP k of `a` connected to QP k of `b` for SAMPLE k spread over
// them, then `rounds` rounds of one 64-byte WRITE per pair, a new pattern each round,
// checked byte for byte in b's memory. Returns the WRITEs made; counts bad bytes and adds
// the rounds' time (not the connecting) to `seconds`.
uint64_t DriveSample(HeldDevice& a, HeldDevice& b, int sample, int gid_index, int rounds,
                     uint64_t* bad, double* seconds) {
  const size_t n = static_cast<size_t>(sample);
  std::vector<uint8_t> src(n * 64), dst(n * 64);
  ibv_mr* ma = ibv_reg_mr(a.pd, src.data(), src.size(), kSourceAccess);
  ibv_mr* mb = ibv_reg_mr(b.pd, dst.data(), dst.size(), kTargetAccess);
  ibv_gid ga{}, gb{};
  if (!ma || !mb || ibv_query_gid(a.ctx, 1, gid_index, &ga) ||
      ibv_query_gid(b.ctx, 1, gid_index, &gb)) {
    std::fprintf(stderr, "sample: %s\n", std::strerror(errno));
    return 0;
  }
  std::vector<ibv_qp*> qa, qb;
  for (size_t s = 0; s < n; ++s) {
    const size_t k = s * a.qps.size() / n;
    if (!Connect(a.qps[k], b.qps[k]->qp_num, gb, gid_index) ||
        !Connect(b.qps[k], a.qps[k]->qp_num, ga, gid_index)) {
      std::fprintf(stderr, "sample pair %zu: %s\n", k, std::strerror(errno));
      return 0;
    }
    qa.push_back(a.qps[k]);
    qb.push_back(b.qps[k]);
  }
  uint64_t writes = 0;
  constexpr size_t kBatch = 16;  // the CQ's depth
  auto start = Clock::now();
  for (int r = 0; r < rounds; ++r) {
    for (size_t s = 0; s < n; ++s) {
      for (size_t i = 0; i < 64; ++i) src[s * 64 + i] = static_cast<uint8_t>(r * 131 + s * 7 + i);
    }
    for (size_t first = 0; first < n; first += kBatch) {
      const size_t last = std::min(n, first + kBatch);
      for (size_t s = first; s < last; ++s) {
        ibv_sge sge{reinterpret_cast<uintptr_t>(&src[s * 64]), 64, ma->lkey};
        ibv_send_wr wr{}, *badwr = nullptr;
        wr.wr_id = s;
        wr.sg_list = &sge;
        wr.num_sge = 1;
        wr.opcode = IBV_WR_RDMA_WRITE;
        wr.send_flags = IBV_SEND_SIGNALED;
        wr.wr.rdma.remote_addr = reinterpret_cast<uintptr_t>(&dst[s * 64]);
        wr.wr.rdma.rkey = mb->rkey;
        if (ibv_post_send(qa[s], &wr, &badwr)) {
          std::fprintf(stderr, "sample post: %s\n", std::strerror(errno));
          return writes;
        }
      }
      for (size_t got = 0; got < last - first;) {
        ibv_wc wc[kBatch];
        const int m = ibv_poll_cq(a.cq, kBatch, wc);
        for (int j = 0; j < m; ++j) {
          if (wc[j].status != IBV_WC_SUCCESS) {
            std::fprintf(stderr, "sample write: %s\n", ibv_wc_status_str(wc[j].status));
            return writes;
          }
        }
        got += static_cast<size_t>(m > 0 ? m : 0);
      }
      writes += last - first;
    }
    for (size_t i = 0; i < src.size(); ++i) *bad += dst[i] != src[i];
  }
  *seconds += Seconds(start);
  return writes;
}

int Hold(int per_dev, int sample, int gid_index, int ndev, char** devs) {
  signal(SIGTERM, [](int) { g_stop = 1; });
  std::vector<HeldDevice> held(static_cast<size_t>(ndev));
  size_t created = 0;
  auto start = Clock::now();
  for (int d = 0; d < ndev; ++d) {
    HeldDevice& h = held[static_cast<size_t>(d)];
    h.ctx = Open(devs[d]);
    h.pd = h.ctx ? ibv_alloc_pd(h.ctx) : nullptr;
    h.cq = h.pd ? ibv_create_cq(h.ctx, 16, nullptr, nullptr, 0) : nullptr;
    if (!h.cq) {
      std::fprintf(stderr, "%s: no PD or CQ: %s\n", devs[d], std::strerror(errno));
      return 1;
    }
    h.qps.reserve(static_cast<size_t>(per_dev));
    for (int i = 0; i < per_dev; ++i) {
      ibv_qp* qp = MakeQp(h.pd, h.cq, 1);
      if (!qp || !ToInit(qp)) {
        std::fprintf(stderr, "%s: QP %d of %d: %s\n", devs[d], i, per_dev, std::strerror(errno));
        std::printf("created %zu qps %.3f s (stopped)\n", created, Seconds(start));
        return 1;
      }
      h.qps.push_back(qp);
      ++created;
    }
  }
  std::printf("created %zu qps %.3f s\n", created, Seconds(start));
  std::fflush(stdout);
  if (sample > 0 && sample <= per_dev) {
    constexpr int kRounds = 20;
    uint64_t writes = 0, bad = 0;
    double seconds = 0;
    for (size_t d = 0; d + 1 < held.size(); d += 2) {
      writes += DriveSample(held[d], held[d + 1], sample, gid_index, kRounds, &bad, &seconds);
    }
    std::printf("driven %zu pairs %llu writes %.3f s %llu bad\n",
                held.size() / 2 * static_cast<size_t>(sample),
                static_cast<unsigned long long>(writes), seconds,
                static_cast<unsigned long long>(bad));
  }
  std::printf("holding\n");
  std::fflush(stdout);
  while (!g_stop) pause();
  return 0;
}

int Rate(const char* dev_a, const char* dev_b, int gid_index, int pairs, double seconds) {
  ibv_context* ca = Open(dev_a);
  ibv_context* cb = Open(dev_b);
  if (!ca || !cb) return 1;
  ibv_pd* pa = ibv_alloc_pd(ca);
  ibv_pd* pb = ibv_alloc_pd(cb);
  ibv_cq* cqa = ibv_create_cq(ca, 4096, nullptr, nullptr, 0);
  ibv_cq* cqb = ibv_create_cq(cb, 16, nullptr, nullptr, 0);
  static char src[4096], dst[4096];
  ibv_mr* ma = pa ? ibv_reg_mr(pa, src, sizeof(src), kSourceAccess) : nullptr;
  ibv_mr* mb = pb ? ibv_reg_mr(pb, dst, sizeof(dst), kTargetAccess) : nullptr;
  ibv_gid ga{}, gb{};
  if (!cqa || !cqb || !ma || !mb || ibv_query_gid(ca, 1, gid_index, &ga) ||
      ibv_query_gid(cb, 1, gid_index, &gb)) {
    std::fprintf(stderr, "setup: %s\n", std::strerror(errno));
    return 1;
  }
  constexpr uint32_t kDepth = 64, kSignalEvery = 16;
  std::vector<ibv_qp*> qa, qb;
  for (int i = 0; i < pairs; ++i) {
    ibv_qp* a = MakeQp(pa, cqa, kDepth);
    ibv_qp* b = MakeQp(pb, cqb, 1);
    if (!a || !b || !ToInit(a) || !ToInit(b) || !Connect(a, b->qp_num, gb, gid_index) ||
        !Connect(b, a->qp_num, ga, gid_index)) {
      std::fprintf(stderr, "pair %d: %s\n", i, std::strerror(errno));
      return 1;
    }
    qa.push_back(a);
    qb.push_back(b);
  }
  // Each QP keeps up to kDepth WRITEs outstanding, one in kSignalEvery signaled (as
  // perftest does); a signaled completion gives back kSignalEvery slots.
  std::vector<uint32_t> outstanding(qa.size(), 0), posted(qa.size(), 0);
  uint64_t done = 0;
  ibv_sge sge{reinterpret_cast<uintptr_t>(src), 64, ma->lkey};
  auto start = Clock::now();
  auto deadline = start + std::chrono::duration<double>(seconds);
  while (Clock::now() < deadline) {
    for (size_t i = 0; i < qa.size(); ++i) {
      while (outstanding[i] + 1 <= kDepth) {
        ibv_send_wr wr{}, *bad = nullptr;
        wr.wr_id = i;
        wr.sg_list = &sge;
        wr.num_sge = 1;
        wr.opcode = IBV_WR_RDMA_WRITE;
        wr.send_flags = (++posted[i] % kSignalEvery == 0) ? IBV_SEND_SIGNALED : 0;
        wr.wr.rdma.remote_addr = reinterpret_cast<uintptr_t>(dst);
        wr.wr.rdma.rkey = mb->rkey;
        if (ibv_post_send(qa[i], &wr, &bad)) break;
        ++outstanding[i];
      }
    }
    ibv_wc wc[32];
    int n = ibv_poll_cq(cqa, 32, wc);
    for (int k = 0; k < n; ++k) {
      if (wc[k].status != IBV_WC_SUCCESS) {
        std::fprintf(stderr, "completion: %s\n", ibv_wc_status_str(wc[k].status));
        return 1;
      }
      outstanding[wc[k].wr_id] -= kSignalEvery;
      done += kSignalEvery;
    }
  }
  double took = Seconds(start);
  std::printf("rate %.0f pairs %d\n", static_cast<double>(done) / took, pairs);
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  std::string mode = argc > 1 ? argv[1] : "";
  if (mode == "hold" && argc > 5) {
    return Hold(std::atoi(argv[2]), std::atoi(argv[3]), std::atoi(argv[4]), argc - 5, argv + 5);
  }
  if (mode == "rate" && argc == 7) {
    return Rate(argv[2], argv[3], std::atoi(argv[4]), std::atoi(argv[5]), std::atof(argv[6]));
  }
  std::fprintf(stderr,
               "usage: scale_bench hold N SAMPLE GID_INDEX DEV... | rate DEV_A DEV_B GID_INDEX "
               "PAIRS SECONDS\n");
  return 2;
}
