// The SIGBUS attack of issue 12 item 3, as a tenant would make it: register memory
// whose pages the tenant can take away under the daemon, take them away, then make the
// engine touch them (RDMA WRITE from it, RDMA READ from it and RDMA WRITE into it by a
// peer QP). Links libibverbs only; runs under vrdma-run on one vdev (QPs connected to
// each other on it). tests/integration/sigbus.sh runs it.
//
//   sigbus_client truncate  memfds named vrdma-sigbus-attack*, unsealed: registration
//                           must be refused, unless the daemon runs with the test's
//                           seal shim (then the pages are truncated and every access
//                           must fail with the spec's error, the MR staying unusable)
//   sigbus_client plain     an unsealed memfd of another name: must be refused (exit 10)
//   sigbus_client punch     a memfd sealed against shrinking (accepted), a hole punched
//                           through it while registered: reads give zeros, nothing fails
//   sigbus_client hugetlbfs DIR
//                           files of the hugetlbfs mount DIR, mapped shared: huge pages
//                           register (no seal can keep a huge page, so no shim is needed),
//                           then the files are truncated: as for truncate
//
// Exit 0: every outcome as expected; 10: registration refused (truncate mode); else 1.
#include <fcntl.h>
#include <infiniband/verbs.h>
#include <sys/mman.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

namespace {

constexpr size_t kLen = 64 * 1024;
constexpr int kAccess = IBV_ACCESS_LOCAL_WRITE | IBV_ACCESS_REMOTE_WRITE | IBV_ACCESS_REMOTE_READ |
                        IBV_ACCESS_REMOTE_ATOMIC;
int g_gid_index = 3;
int g_failures = 0;

void Check(bool ok, const std::string& what) {
  std::printf("%s %s\n", ok ? "ok" : "FAILED", what.c_str());
  if (!ok) ++g_failures;
}

struct Dev {
  ibv_context* ctx = nullptr;
  ibv_pd* pd = nullptr;
  ibv_cq* cq = nullptr;
  ibv_gid gid{};
};

ibv_qp* NewQp(Dev& d) {
  ibv_qp_init_attr a{};
  a.send_cq = d.cq;
  a.recv_cq = d.cq;
  a.cap = {16, 16, 1, 1, 0};
  a.qp_type = IBV_QPT_RC;
  return ibv_create_qp(d.pd, &a);
}

bool Connect(Dev& d, ibv_qp* qp, uint32_t peer_qpn) {
  ibv_qp_attr a{};
  a.qp_state = IBV_QPS_INIT;
  a.port_num = 1;
  a.qp_access_flags = IBV_ACCESS_REMOTE_WRITE | IBV_ACCESS_REMOTE_READ | IBV_ACCESS_REMOTE_ATOMIC;
  if (ibv_modify_qp(qp, &a, IBV_QP_STATE | IBV_QP_PKEY_INDEX | IBV_QP_PORT | IBV_QP_ACCESS_FLAGS))
    return false;
  a = ibv_qp_attr{};
  a.qp_state = IBV_QPS_RTR;
  a.path_mtu = IBV_MTU_1024;
  a.dest_qp_num = peer_qpn;
  a.rq_psn = 1;
  a.max_dest_rd_atomic = 4;
  a.min_rnr_timer = 1;
  a.ah_attr.is_global = 1;
  a.ah_attr.grh.dgid = d.gid;
  a.ah_attr.grh.sgid_index = static_cast<uint8_t>(g_gid_index);
  a.ah_attr.grh.hop_limit = 64;
  a.ah_attr.port_num = 1;
  if (ibv_modify_qp(qp, &a,
                    IBV_QP_STATE | IBV_QP_PATH_MTU | IBV_QP_DEST_QPN | IBV_QP_RQ_PSN | IBV_QP_AV |
                        IBV_QP_MAX_DEST_RD_ATOMIC | IBV_QP_MIN_RNR_TIMER))
    return false;
  a = ibv_qp_attr{};
  a.qp_state = IBV_QPS_RTS;
  a.sq_psn = 1;
  a.timeout = 14;
  a.retry_cnt = 7;
  a.rnr_retry = 7;
  a.max_rd_atomic = 4;
  return ibv_modify_qp(qp, &a,
                       IBV_QP_STATE | IBV_QP_SQ_PSN | IBV_QP_TIMEOUT | IBV_QP_RETRY_CNT |
                           IBV_QP_RNR_RETRY | IBV_QP_MAX_QP_RD_ATOMIC) == 0;
}

// A fresh pair of QPs connected to each other; `a` sends.
struct Pair {
  ibv_qp* a = nullptr;
  ibv_qp* b = nullptr;
};
Pair NewPair(Dev& d) {
  Pair p{NewQp(d), NewQp(d)};
  if (!p.a || !p.b || !Connect(d, p.a, p.b->qp_num) || !Connect(d, p.b, p.a->qp_num)) {
    std::fprintf(stderr, "QP setup failed: %s\n", std::strerror(errno));
    std::exit(1);
  }
  return p;
}

// Posts one RDMA op on `qp` (local SGE over `local`, remote over `remote`) and waits for
// its completion; returns its status (or -1 on timeout).
int Op(Dev& d, ibv_qp* qp, ibv_wr_opcode op, ibv_mr* local, ibv_mr* remote, uint32_t len) {
  ibv_sge sge{reinterpret_cast<uint64_t>(local->addr), len, local->lkey};
  ibv_send_wr wr{};
  wr.wr_id = 7;
  wr.sg_list = &sge;
  wr.num_sge = 1;
  wr.opcode = op;
  wr.send_flags = IBV_SEND_SIGNALED;
  wr.wr.rdma.remote_addr = reinterpret_cast<uint64_t>(remote->addr);
  wr.wr.rdma.rkey = remote->rkey;
  ibv_send_wr* bad = nullptr;
  if (ibv_post_send(qp, &wr, &bad)) return -2;
  auto end = std::chrono::steady_clock::now() + std::chrono::seconds(20);
  while (std::chrono::steady_clock::now() < end) {
    ibv_wc wc;
    int n = ibv_poll_cq(d.cq, 1, &wc);
    if (n < 0) return -3;
    if (n == 1 && wc.wr_id == 7) return wc.status;
  }
  return -1;
}

std::string Status(int s) {
  return s >= 0 ? ibv_wc_status_str(static_cast<ibv_wc_status>(s)) : "error " + std::to_string(s);
}

struct Region {
  int fd = -1;
  uint8_t* p = nullptr;
  ibv_mr* mr = nullptr;
};

// A memfd of kLen bytes named `name`, mapped shared and registered (mr null if refused).
Region MakeRegion(Dev& d, const char* name, bool seal) {
  Region r;
  r.fd = memfd_create(name, MFD_CLOEXEC | MFD_ALLOW_SEALING);
  if (r.fd < 0 || ftruncate(r.fd, kLen) != 0 ||
      (seal && fcntl(r.fd, F_ADD_SEALS, F_SEAL_SHRINK) != 0)) {
    std::perror("memfd");
    std::exit(1);
  }
  void* p = mmap(nullptr, kLen, PROT_READ | PROT_WRITE, MAP_SHARED, r.fd, 0);
  if (p == MAP_FAILED) {
    std::perror("mmap");
    std::exit(1);
  }
  r.p = static_cast<uint8_t*>(p);
  std::memset(r.p, 0x5a, kLen);
  r.mr = ibv_reg_mr(d.pd, r.p, kLen, kAccess);
  return r;
}

// A file of `len` bytes in the hugetlbfs mount `dir`, mapped shared and registered.
Region MakeHugeRegion(Dev& d, const std::string& dir, const char* name, size_t len) {
  Region r;
  const std::string path = dir + "/" + name;
  r.fd = open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600);
  if (r.fd < 0 || ftruncate(r.fd, static_cast<off_t>(len)) != 0) {
    std::perror(path.c_str());
    std::exit(1);
  }
  void* p = mmap(nullptr, len, PROT_READ | PROT_WRITE, MAP_SHARED, r.fd, 0);
  if (p == MAP_FAILED) {
    std::perror("mmap of a hugetlbfs file");
    std::exit(1);
  }
  r.p = static_cast<uint8_t*>(p);
  std::memset(r.p, 0x5a, len);
  r.mr = ibv_reg_mr(d.pd, r.p, len, kAccess);
  return r;
}

// `make(name)` gives a registered region whose pages ftruncate(fd, 0) takes away.
template <typename Make>
int Truncate(Dev& d, ibv_mr* good, const char* kind, Make make) {
  Region w = make("vrdma-sigbus-attack-w");
  if (!w.mr) {
    std::printf("registration refused: %s\n", std::strerror(errno));
    return 10;
  }
  Region r = make("vrdma-sigbus-attack-r");
  Region t = make("vrdma-sigbus-attack-t");
  if (!r.mr || !t.mr) {
    std::printf("registration refused: %s\n", std::strerror(errno));
    return 10;
  }
  std::printf("registered three %s\n", kind);
  // The pages go away under the daemon (this process no longer touches them).
  for (int fd : {w.fd, r.fd, t.fd}) {
    if (ftruncate(fd, 0) != 0) {
      std::perror("ftruncate");
      return 1;
    }
  }
  // Requester gather: RDMA WRITE from the vanished pages (IBV_WC_LOC_PROT_ERR, as rxe).
  Pair p1 = NewPair(d);
  int s = Op(d, p1.a, IBV_WR_RDMA_WRITE, w.mr, good, 8192);
  Check(s == IBV_WC_LOC_PROT_ERR || s == IBV_WC_LOC_ACCESS_ERR,
        "RDMA WRITE from vanished pages: " + Status(s));
  // Responder: RDMA READ of the vanished pages by the peer (Remote Access Error NAK).
  Pair p2 = NewPair(d);
  s = Op(d, p2.a, IBV_WR_RDMA_READ, good, r.mr, 8192);
  Check(s == IBV_WC_REM_ACCESS_ERR, "RDMA READ from vanished pages: " + Status(s));
  // Responder: RDMA WRITE into the vanished pages.
  Pair p3 = NewPair(d);
  s = Op(d, p3.a, IBV_WR_RDMA_WRITE, good, t.mr, 8192);
  Check(s == IBV_WC_REM_ACCESS_ERR, "RDMA WRITE into vanished pages: " + Status(s));
  // The MR stays unusable, and the tenant's other MR works on a new QP.
  Pair p4 = NewPair(d);
  s = Op(d, p4.a, IBV_WR_RDMA_WRITE, w.mr, good, 100);
  Check(s == IBV_WC_LOC_PROT_ERR, "the faulted MR stays unusable: " + Status(s));
  Pair p5 = NewPair(d);
  s = Op(d, p5.a, IBV_WR_RDMA_WRITE, good, good, 100);
  Check(s == IBV_WC_SUCCESS, "another MR still works: " + Status(s));
  return g_failures ? 1 : 0;
}

// An unsealed memfd the shim does not lie about: the first line must refuse it.
int Plain(Dev& d) {
  Region p = MakeRegion(d, "vrdma-sigbus-plain", false);
  if (p.mr) {
    std::printf("FAILED an unsealed memfd was registered\n");
    return 1;
  }
  std::printf("registration refused: %s\n", std::strerror(errno));
  return 10;
}

int Punch(Dev& d, ibv_mr* good) {
  Region h = MakeRegion(d, "vrdma-sigbus-punch", true);
  if (!h.mr) {
    std::printf("sealed memfd refused: %s\n", std::strerror(errno));
    return 1;
  }
  if (fallocate(h.fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, 0, kLen) != 0) {
    std::perror("fallocate(PUNCH_HOLE)");
    return 1;
  }
  uint8_t* g = static_cast<uint8_t*>(good->addr);
  std::memset(g, 0xff, 8192);
  Pair p = NewPair(d);
  int s = Op(d, p.a, IBV_WR_RDMA_WRITE, h.mr, good, 8192);
  bool zeros = true;
  for (size_t i = 0; i < 8192; ++i) zeros &= g[i] == 0;
  Check(s == IBV_WC_SUCCESS && zeros,
        "RDMA WRITE from a punched hole: " + Status(s) + (zeros ? ", zeros" : ", not zeros"));
  s = Op(d, p.a, IBV_WR_RDMA_READ, h.mr, good, 8192);
  Check(s == IBV_WC_SUCCESS, "RDMA READ into a punched hole: " + Status(s));
  return g_failures ? 1 : 0;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2 || argc > 3) {
    std::fprintf(stderr, "usage: %s truncate|plain|punch|hugetlbfs DIR\n", argv[0]);
    return 2;
  }
  if (const char* env = std::getenv("VRDMA_GID_INDEX"); env && *env) g_gid_index = std::atoi(env);
  int n = 0;
  ibv_device** list = ibv_get_device_list(&n);
  if (!list || n < 1) {
    std::fprintf(stderr, "no RDMA device\n");
    return 1;
  }
  Dev d;
  d.ctx = ibv_open_device(list[0]);
  if (!d.ctx || !(d.pd = ibv_alloc_pd(d.ctx)) ||
      !(d.cq = ibv_create_cq(d.ctx, 64, nullptr, nullptr, 0)) ||
      ibv_query_gid(d.ctx, 1, g_gid_index, &d.gid)) {
    std::fprintf(stderr, "device setup failed: %s\n", std::strerror(errno));
    return 1;
  }
  static std::vector<uint8_t> good_buf(kLen);
  ibv_mr* good = ibv_reg_mr(d.pd, good_buf.data(), kLen, kAccess);
  if (!good) {
    std::fprintf(stderr, "ibv_reg_mr: %s\n", std::strerror(errno));
    return 1;
  }
  const std::string mode = argv[1];
  if (mode == "truncate") {
    return Truncate(d, good, "unsealed memfds",
                    [&](const char* name) { return MakeRegion(d, name, false); });
  }
  if (mode == "hugetlbfs" && argc == 3) {
    const std::string dir = argv[2];
    return Truncate(d, good, "hugetlbfs files",
                    [&](const char* name) { return MakeHugeRegion(d, dir, name, 2u << 20); });
  }
  if (mode == "punch") return Punch(d, good);
  if (mode == "plain") return Plain(d);
  return 2;
}
