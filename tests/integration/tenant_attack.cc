// Attacks of an unprivileged tenant on the daemon's notion of who a client is (issue 12,
// items 1 and 2), run by tests/integration/tenants.sh. Each prints what happened as
// `key=value` lines the test checks; the exit status says only whether the attack could be
// carried out at all.
//
//   tenant_attack pid-reuse-attacker DEV DIR   (under vrdma-run) a context, then fork: the
//        parent exits, the child waits for DIR/victim (the address of a victim's shared
//        page, placed in the daemon's PID namespace at the parent's old PID) and registers
//        that address in its own address space, by reference
//   tenant_attack pid-reuse-victim DIR         a shared page holding a secret; writes its
//        PID and address to DIR/victim and sleeps
//   tenant_attack admin-after-setuid DEV       connect, fork; the parent execs a setuid
//        program (passwd) and the child, on the inherited connection, asks `dev del DEV`
//   tenant_attack fake-dev-zero DEV FILE       (under vrdma-run, with FILE bind-mounted on
//        /dev/zero by root of a user+mount namespace) maps /dev/zero shared — a regular file
//        that can be truncated — unlinks FILE so /proc/PID/maps says "/dev/zero (deleted)"
//        as for shared anonymous memory, and registers it
//   tenant_attack mw-victim DEV DIR            (under vrdma-run) binds a type 1 and a type 2
//        memory window onto its memory, writes their handles and keys to DIR/windows,
//        waits for DIR/attacked, then uses both windows itself: still bound and intact?
//   tenant_attack mw-attacker DEV DIR          (under vrdma-run, another user, another vdev)
//        names the victim's windows by their handles and keys: binds them onto its own MR,
//        invalidates them, deallocates them
#include <fcntl.h>
#include <infiniband/verbs.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cinttypes>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <string>
#include <thread>
#include <vector>

#include "vdev/protocol/channel.h"
#include "vdev/protocol/protocol.h"

namespace {

const size_t kPage = static_cast<size_t>(sysconf(_SC_PAGESIZE));
constexpr int kAccess = IBV_ACCESS_LOCAL_WRITE | IBV_ACCESS_REMOTE_READ | IBV_ACCESS_REMOTE_WRITE;

void* SharedPage() {
  void* p = mmap(nullptr, kPage, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
  return p == MAP_FAILED ? nullptr : p;
}

// A PD on a context of device `dev_name`, or null.
ibv_pd* OpenPd(const char* dev_name) {
  int n = 0;
  ibv_device** list = ibv_get_device_list(&n);
  ibv_device* dev = nullptr;
  for (int i = 0; list && i < n; ++i) {
    if (std::strcmp(ibv_get_device_name(list[i]), dev_name) == 0) dev = list[i];
  }
  ibv_context* ctx = dev ? ibv_open_device(dev) : nullptr;
  return ctx ? ibv_alloc_pd(ctx) : nullptr;
}

int PidReuseAttacker(const char* dev_name, const std::string& dir) {
  ibv_pd* pd = OpenPd(dev_name);
  if (!pd) {
    std::printf("error=no_context\n");
    return 2;
  }
  // The path works for the attacker's own shared memory: registered by reference.
  void* own = SharedPage();
  ibv_mr* mr = own ? ibv_reg_mr(pd, own, kPage, kAccess) : nullptr;
  std::printf("own_reg=%s\n", mr ? "ok" : std::strerror(errno));
  if (mr) ibv_dereg_mr(mr);
  std::printf("attacker_pid=%d\n", getpid());
  std::fflush(stdout);
  pid_t child = fork();
  if (child < 0) return 2;
  if (child > 0) _exit(0);  // the process the daemon knows exits; its PID is free again
  // The child keeps the context (its connection) and waits for the victim.
  std::string victim = dir + "/victim";
  uint64_t addr = 0;
  int victim_pid = 0;
  for (int i = 0; i < 600 && addr == 0; ++i) {
    std::ifstream f(victim);
    if (!(f >> victim_pid >> std::hex >> addr)) addr = 0;
    if (addr == 0) usleep(100000);
  }
  if (addr == 0) {
    std::printf("error=no_victim\n");
    return 2;
  }
  std::printf("victim_pid=%d\n", victim_pid);
  // The victim's address, mapped shared in this process too, so the provider asks the
  // daemon to take it by reference: the daemon must look at this client's memory only.
  void* here = mmap(reinterpret_cast<void*>(addr), kPage, PROT_READ | PROT_WRITE,
                    MAP_SHARED | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE, -1, 0);
  if (here == MAP_FAILED) {
    std::printf("error=map_fixed %s\n", std::strerror(errno));
    return 2;
  }
  errno = 0;
  mr = ibv_reg_mr(pd, here, kPage, kAccess);
  if (!mr) {
    std::printf("victim_reg=refused errno=%d\n", errno);
    return 0;
  }
  // Registered: the daemon now reaches whatever backs it; a loopback READ is not even
  // needed to call it an escape, but say what the daemon would read.
  std::printf("victim_reg=ok lkey=%u\n", mr->lkey);
  return 0;
}

int PidReuseVictim(const std::string& dir) {
  char* secret = static_cast<char*>(SharedPage());
  if (!secret) return 2;
  std::snprintf(secret, kPage, "victim secret %d", getpid());
  std::string tmp = dir + "/victim.tmp";
  {
    std::ofstream f(tmp);
    f << getpid() << " " << std::hex << reinterpret_cast<uintptr_t>(secret) << "\n";
  }
  rename(tmp.c_str(), (dir + "/victim").c_str());
  for (;;) pause();
}

int AdminAfterSetuid(const char* dev_name) {
  // The connection is made as the unprivileged user, then inherited.
  int sock = vrdma::proto::ConnectToDaemon();
  if (sock < 0) {
    std::printf("error=connect %s\n", std::strerror(-sock));
    return 2;
  }
  fcntl(sock, F_SETFD, 0);  // kept across exec: the setuid program holds it
  int hold[2];
  if (pipe(hold) != 0) return 2;
  pid_t parent = getpid();
  pid_t child = fork();
  if (child < 0) return 2;
  if (child > 0) {
    // The parent (the PID the daemon was told at connect) becomes a setuid-root program,
    // waiting for a password on a pipe that never delivers one.
    dup2(hold[0], 0);
    close(hold[1]);
    execl("/usr/bin/passwd", "passwd", static_cast<char*>(nullptr));
    _exit(127);
  }
  close(hold[0]);
  // Wait until the parent runs the setuid program (its effective uid is then 0).
  for (int i = 0; i < 100; ++i) {
    std::ifstream f("/proc/" + std::to_string(parent) + "/status");
    std::string line;
    bool root = false;
    while (std::getline(f, line)) {
      if (line.rfind("Uid:", 0) == 0) {
        unsigned r, e;
        if (std::sscanf(line.c_str(), "Uid: %u %u", &r, &e) == 2 && e == 0) root = true;
      }
    }
    if (root) break;
    usleep(50000);
  }
  std::vector<char> req(sizeof(vrdma::proto::AdminRequest));
  std::vector<std::string> words = {"dev", "del", dev_name};
  vrdma::proto::AdminRequest head{0, static_cast<uint32_t>(words.size())};
  std::memcpy(req.data(), &head, sizeof head);
  for (const std::string& w : words) req.insert(req.end(), w.c_str(), w.c_str() + w.size() + 1);
  vrdma::proto::Message reply;
  int err = vrdma::proto::Call(sock, vrdma::proto::Op::kAdmin, req.data(), req.size(), nullptr, 0,
                               &reply);
  close(hold[1]);  // passwd reads EOF and exits
  kill(parent, SIGTERM);
  if (err) {
    std::printf("error=call %s\n", std::strerror(err));
    return 2;
  }
  std::printf("dev_del_status=%d\n", reply.header.status);
  return 0;
}

int FakeDevZero(const char* dev_name, const char* file) {
  ibv_pd* pd = OpenPd(dev_name);
  if (!pd) {
    std::printf("error=no_context\n");
    return 2;
  }
  int fd = open("/dev/zero", O_RDWR | O_CLOEXEC);
  if (fd < 0 || ftruncate(fd, static_cast<off_t>(kPage)) != 0) {
    std::printf("error=not_a_file %s\n", std::strerror(errno));
    return 2;
  }
  void* p = mmap(nullptr, kPage, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
  if (p == MAP_FAILED || unlink(file) != 0) {
    std::printf("error=map %s\n", std::strerror(errno));
    return 2;
  }
  std::ifstream maps("/proc/self/maps");
  std::string line;
  char start[32];
  std::snprintf(start, sizeof start, "%" PRIxPTR "-", reinterpret_cast<uintptr_t>(p));
  while (std::getline(maps, line)) {
    if (line.rfind(start, 0) == 0) std::printf("maps=%s\n", line.c_str());
  }
  errno = 0;
  ibv_mr* mr = ibv_reg_mr(pd, p, kPage, kAccess);
  if (!mr) {
    std::printf("fake_reg=refused errno=%d\n", errno);
    return 0;
  }
  std::printf("fake_reg=ok\n");
  return 0;
}

// ---- memory windows ----------------------------------------------------------------------

// A context with an RC QP connected to itself through its vdev's own GID, and a buffer
// registered for windows.
struct Loop {
  ibv_context* ctx = nullptr;
  ibv_pd* pd = nullptr;
  ibv_cq* cq = nullptr;
  ibv_qp* qp = nullptr;
  std::vector<uint8_t> buf;
  ibv_mr* mr = nullptr;
  int gid_index = 3;  // ::ffff:10.77.0.x, RoCEv2, as the other tests
};

bool ConnectLoop(Loop& l) {
  ibv_qp_init_attr qa{};
  qa.send_cq = qa.recv_cq = l.cq;
  qa.cap = {16, 16, 1, 1, 0};
  qa.qp_type = IBV_QPT_RC;
  l.qp = ibv_create_qp(l.pd, &qa);
  if (!l.qp) return false;
  ibv_gid gid;
  if (ibv_query_gid(l.ctx, 1, l.gid_index, &gid) != 0) return false;
  ibv_qp_attr a{};
  a.qp_state = IBV_QPS_INIT;
  a.port_num = 1;
  a.qp_access_flags = IBV_ACCESS_REMOTE_WRITE | IBV_ACCESS_REMOTE_READ;
  if (ibv_modify_qp(l.qp, &a, IBV_QP_STATE | IBV_QP_PKEY_INDEX | IBV_QP_PORT | IBV_QP_ACCESS_FLAGS))
    return false;
  a = {};
  a.qp_state = IBV_QPS_RTR;
  a.path_mtu = IBV_MTU_1024;
  a.dest_qp_num = l.qp->qp_num;
  a.max_dest_rd_atomic = 1;
  a.min_rnr_timer = 1;
  a.ah_attr.is_global = 1;
  a.ah_attr.grh.dgid = gid;
  a.ah_attr.grh.sgid_index = static_cast<uint8_t>(l.gid_index);
  a.ah_attr.grh.hop_limit = 64;
  a.ah_attr.port_num = 1;
  if (ibv_modify_qp(l.qp, &a,
                    IBV_QP_STATE | IBV_QP_AV | IBV_QP_PATH_MTU | IBV_QP_DEST_QPN | IBV_QP_RQ_PSN |
                        IBV_QP_MAX_DEST_RD_ATOMIC | IBV_QP_MIN_RNR_TIMER)) {
    return false;
  }
  a = {};
  a.qp_state = IBV_QPS_RTS;
  a.timeout = 14;
  a.retry_cnt = 7;
  a.rnr_retry = 7;
  a.max_rd_atomic = 1;
  return ibv_modify_qp(l.qp, &a,
                       IBV_QP_STATE | IBV_QP_SQ_PSN | IBV_QP_TIMEOUT | IBV_QP_RETRY_CNT |
                           IBV_QP_RNR_RETRY | IBV_QP_MAX_QP_RD_ATOMIC) == 0;
}

bool OpenLoop(const char* dev_name, Loop& l) {
  l.pd = OpenPd(dev_name);
  if (!l.pd) return false;
  l.ctx = l.pd->context;
  l.cq = ibv_create_cq(l.ctx, 64, nullptr, nullptr, 0);
  l.buf.assign(65536, 0);
  l.mr =
      l.cq ? ibv_reg_mr(l.pd, l.buf.data(), l.buf.size(), kAccess | IBV_ACCESS_MW_BIND) : nullptr;
  return l.mr && ConnectLoop(l);
}

// The status of the next completion on the loop's CQ (-1: none within 5 s).
int NextStatus(Loop& l) {
  auto end = std::chrono::steady_clock::now() + std::chrono::seconds(5);
  ibv_wc wc;
  while (std::chrono::steady_clock::now() < end) {
    int n = ibv_poll_cq(l.cq, 1, &wc);
    if (n == 1) return wc.status;
    if (n < 0) return -1;
    std::this_thread::yield();
  }
  return -1;
}

const char* StatusName(int status) {
  return status < 0 ? "no-completion" : ibv_wc_status_str(static_cast<ibv_wc_status>(status));
}

int PostOne(Loop& l, ibv_send_wr& wr) {
  wr.send_flags |= IBV_SEND_SIGNALED;
  ibv_send_wr* bad;
  if (int err = ibv_post_send(l.qp, &wr, &bad)) return -err;
  return NextStatus(l);
}

int Bind(Loop& l, ibv_mw* mw, uint32_t rkey, size_t off, size_t len) {
  ibv_send_wr wr{};
  wr.opcode = IBV_WR_BIND_MW;
  wr.bind_mw = {mw,
                rkey,
                {l.mr, reinterpret_cast<uintptr_t>(l.buf.data()) + off, len,
                 IBV_ACCESS_REMOTE_READ | IBV_ACCESS_REMOTE_WRITE}};
  return PostOne(l, wr);
}

int Rdma(Loop& l, ibv_wr_opcode op, size_t local_off, size_t remote_off, uint32_t len,
         uint32_t rkey) {
  ibv_sge sge{reinterpret_cast<uintptr_t>(l.buf.data()) + local_off, len, l.mr->lkey};
  ibv_send_wr wr{};
  wr.opcode = op;
  wr.sg_list = &sge;
  wr.num_sge = 1;
  wr.wr.rdma = {reinterpret_cast<uintptr_t>(l.buf.data()) + remote_off, rkey};
  return PostOne(l, wr);
}

int MwVictim(const char* dev_name, const std::string& dir) {
  Loop l;
  if (!OpenLoop(dev_name, l)) {
    std::printf("error=set-up %s\n", std::strerror(errno));
    return 2;
  }
  std::memcpy(l.buf.data(), "victim-secret-1", 16);
  std::memcpy(l.buf.data() + 4096, "victim-secret-2", 16);
  ibv_mw* mw1 = ibv_alloc_mw(l.pd, IBV_MW_TYPE_1);
  ibv_mw* mw2 = ibv_alloc_mw(l.pd, IBV_MW_TYPE_2);
  if (!mw1 || !mw2) {
    std::printf("error=alloc_mw %s\n", std::strerror(errno));
    return 2;
  }
  ibv_mw_bind b1{};
  b1.send_flags = IBV_SEND_SIGNALED;
  b1.bind_info = {l.mr, reinterpret_cast<uintptr_t>(l.buf.data()), 4096,
                  IBV_ACCESS_REMOTE_READ | IBV_ACCESS_REMOTE_WRITE};
  int s1 = ibv_bind_mw(l.qp, mw1, &b1) ? -1 : NextStatus(l);
  const uint32_t key2 = ibv_inc_rkey(mw2->rkey);
  int s2 = Bind(l, mw2, key2, 4096, 4096);
  if (s1 != IBV_WC_SUCCESS || s2 != IBV_WC_SUCCESS) {
    std::printf("error=bind %s %s\n", StatusName(s1), StatusName(s2));
    return 2;
  }
  {
    std::ofstream f(dir + "/windows.tmp");
    f << mw1->handle << " " << mw1->rkey << " " << mw2->handle << " " << key2 << " "
      << reinterpret_cast<uintptr_t>(l.buf.data()) << "\n";
  }
  std::rename((dir + "/windows.tmp").c_str(), (dir + "/windows").c_str());
  std::printf("victim_windows=bound\n");
  for (int i = 0; i < 1200 && access((dir + "/attacked").c_str(), F_OK) != 0; ++i) usleep(50000);
  // Both windows still open the victim's memory to the victim, secrets untouched.
  bool secrets = std::memcmp(l.buf.data(), "victim-secret-1", 16) == 0 &&
                 std::memcmp(l.buf.data() + 4096, "victim-secret-2", 16) == 0;
  int r1 = Rdma(l, IBV_WR_RDMA_READ, 32768, 0, 16, mw1->rkey);
  int r2 = Rdma(l, IBV_WR_RDMA_READ, 32768 + 64, 4096, 16, key2);
  bool read_back = std::memcmp(l.buf.data() + 32768, "victim-secret-1", 16) == 0 &&
                   std::memcmp(l.buf.data() + 32768 + 64, "victim-secret-2", 16) == 0;
  if (secrets && read_back && r1 == IBV_WC_SUCCESS && r2 == IBV_WC_SUCCESS) {
    std::printf("victim_windows=intact\n");
  } else {
    std::printf("victim_windows=broken secrets=%d read_back=%d type1=%s type2=%s\n", secrets,
                read_back, StatusName(r1), StatusName(r2));
  }
  return 0;
}

int MwAttacker(const char* dev_name, const std::string& dir) {
  Loop l;
  if (!OpenLoop(dev_name, l)) {
    std::printf("error=set-up %s\n", std::strerror(errno));
    return 2;
  }
  uint32_t h1 = 0, k1 = 0, h2 = 0, k2 = 0;
  uintptr_t victim_va = 0;
  for (int i = 0; i < 600 && !victim_va; ++i) {
    std::ifstream f(dir + "/windows");
    if (!(f >> h1 >> k1 >> h2 >> k2 >> victim_va)) {
      victim_va = 0;
      usleep(50000);
    }
  }
  if (!victim_va) {
    std::printf("error=no_victim\n");
    return 2;
  }
  // The victim's windows as if they were ours: its handle and key in our own ibv_mw.
  auto* fake1 = new ibv_mw{l.ctx, l.pd, k1, h1, IBV_MW_TYPE_1};
  auto* fake2 = new ibv_mw{l.ctx, l.pd, k2, h2, IBV_MW_TYPE_2};
  std::printf("bind_type1=%s\n", StatusName(Bind(l, fake1, ibv_inc_rkey(k1), 0, 4096)));
  ibv_destroy_qp(l.qp);  // each refusal ends the QP: a new one for the next try
  ConnectLoop(l);
  std::printf("bind_type2=%s\n", StatusName(Bind(l, fake2, ibv_inc_rkey(k2), 0, 4096)));
  for (uint32_t key : {k1, k2}) {
    ibv_destroy_qp(l.qp);
    ConnectLoop(l);
    ibv_send_wr inv{};
    inv.opcode = IBV_WR_LOCAL_INV;
    inv.invalidate_rkey = key;
    std::printf("local_inv_%s=%s\n", key == k1 ? "type1" : "type2", StatusName(PostOne(l, inv)));
  }
  // A type 1 window serves every QP of its PD: a write through the victim's key at the
  // victim's address, arriving on our QP (another PD), must not reach the victim's memory.
  ibv_destroy_qp(l.qp);
  ConnectLoop(l);
  std::memcpy(l.buf.data() + 8192, "attacker-wrote!", 16);
  ibv_sge sge{reinterpret_cast<uintptr_t>(l.buf.data()) + 8192, 16, l.mr->lkey};
  ibv_send_wr wr{};
  wr.opcode = IBV_WR_RDMA_WRITE;
  wr.sg_list = &sge;
  wr.num_sge = 1;
  wr.wr.rdma = {victim_va, k1};
  std::printf("write_type1=%s\n", StatusName(PostOne(l, wr)));
  std::printf("dealloc=%d\n", ibv_dealloc_mw(fake1));
  std::ofstream(dir + "/attacked") << "done\n";
  return 0;
}

// A raw packet QP as root of the tenant's own user namespace: that CAP_NET_RAW is over its
// namespace, not the machine's; vrdmad answers EPERM.
int RawQp(const char* dev_name) {
  ibv_pd* pd = OpenPd(dev_name);
  if (!pd) {
    std::printf("error=no_context\n");
    return 2;
  }
  ibv_cq* cq = ibv_create_cq(pd->context, 4, nullptr, nullptr, 0);
  ibv_qp_init_attr a{};
  a.send_cq = cq;
  a.recv_cq = cq;
  a.cap = {4, 4, 1, 1, 0};
  a.qp_type = IBV_QPT_RAW_PACKET;
  errno = 0;
  ibv_qp* qp = cq ? ibv_create_qp(pd, &a) : nullptr;
  std::printf(qp ? "raw_qp=created\n" : "raw_qp=refused errno=%d\n", errno);
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  setvbuf(stdout, nullptr, _IOLBF, 0);
  std::string cmd = argc > 1 ? argv[1] : "";
  if (cmd == "pid-reuse-attacker" && argc == 4) return PidReuseAttacker(argv[2], argv[3]);
  if (cmd == "pid-reuse-victim" && argc == 3) return PidReuseVictim(argv[2]);
  if (cmd == "admin-after-setuid" && argc == 3) return AdminAfterSetuid(argv[2]);
  if (cmd == "fake-dev-zero" && argc == 4) return FakeDevZero(argv[2], argv[3]);
  if (cmd == "mw-victim" && argc == 4) return MwVictim(argv[2], argv[3]);
  if (cmd == "mw-attacker" && argc == 4) return MwAttacker(argv[2], argv[3]);
  if (cmd == "raw-qp" && argc == 3) return RawQp(argv[2]);
  std::fprintf(stderr,
               "usage: %s pid-reuse-attacker DEV DIR | pid-reuse-victim DIR | "
               "admin-after-setuid DEV | fake-dev-zero DEV FILE | mw-victim DEV DIR | "
               "mw-attacker DEV DIR | raw-qp DEV\n",
               argv[0]);
  return 2;
}
