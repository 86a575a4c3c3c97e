// A hostile client: it speaks the daemon's protocol itself (no provider), sends
// malformed and out-of-bounds requests, names objects it does not own, hands over
// descriptors that are not what they claim to be and scribbles over its shared rings.
// Every answer must be an error (or an error completion / async event), never a crash of
// the daemon. Exits 0 when every check held; prints what did not.
//
//   hostile_client DEV
#include <fcntl.h>
#include <poll.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdio>
#include <cstring>
#include <random>
#include <vector>

#include "vdev/protocol/channel.h"

using namespace vrdma::proto;

namespace {

int g_failures = 0;

void Check(bool ok, const char* what) {
  if (!ok) {
    std::printf("FAIL: %s\n", what);
    ++g_failures;
  }
}

struct Client {
  int sock = -1;
  int async_r = -1;
  ContextShm* context = nullptr;
  void Doorbell() { context->doorbell.value.fetch_add(1); }
  Message last;

  int Call(Op op, const void* p, size_t len, const int* fds = nullptr, size_t nfds = 0) {
    int err = vrdma::proto::Call(sock, op, p, len, fds, nfds, &last);
    return err ? -err : last.header.status;
  }
  template <typename T>
  T Reply() {
    T t{};
    last.Copy(&t);
    return t;
  }
};

bool Open(Client& c, const char* dev) {
  c.sock = ConnectToDaemon();
  if (c.sock < 0) return false;
  int p[2];
  if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC | SOCK_NONBLOCK, 0, p) != 0) return false;
  OpenDeviceRequest req{};
  std::snprintf(req.name, sizeof req.name, "%s", dev);
  int err = c.Call(Op::kOpenDevice, &req, sizeof req, &p[1], 1);
  close(p[1]);
  c.async_r = p[0];
  if (err) return false;
  auto r = c.Reply<OpenDeviceReply>();
  int fd = c.last.TakeFd(0);
  void* m = mmap(nullptr, r.context_shm_size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
  close(fd);
  if (m == MAP_FAILED) return false;
  c.context = static_cast<ContextShm*>(m);
  return true;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 2) {
    std::fprintf(stderr, "usage: hostile_client DEV\n");
    return 2;
  }
  Client c;
  if (!Open(c, argv[1])) {
    std::printf("FAIL: cannot open %s\n", argv[1]);
    return 1;
  }
  std::mt19937 rng(1234);

  // Requests before/without the objects they name.
  HandleMsg h{12345, 0};
  Check(c.Call(Op::kDeallocPd, &h, sizeof h) == EINVAL, "dealloc of a PD never allocated");
  Check(c.Call(Op::kDestroyQp, &h, sizeof h) == EINVAL, "destroy of a QP never created");
  for (uint32_t qpn = 0; qpn < 64; ++qpn) {  // other clients' QPNs are not ours to touch
    HandleMsg q{qpn, 0};
    Check(c.Call(Op::kDestroyQp, &q, sizeof q) == EINVAL, "destroy of another's QPN");
    ModifyQpRequest m{};
    m.handle = qpn;
    m.mask = IBV_QP_STATE;
    m.attr.qp_state = IBV_QPS_ERR;
    Check(c.Call(Op::kModifyQp, &m, sizeof m) == EINVAL, "modify of another's QPN");
  }
  for (uint32_t key = 0; key < 4096; key += 7) {
    HandleMsg k{key, 0};
    Check(c.Call(Op::kDeregMr, &k, sizeof k) == EINVAL, "dereg of another's key");
  }
  for (uint32_t mw = (1u << 23) - 4; mw < (1u << 23) + 4096; mw += 5) {
    HandleMsg w{mw, 0};
    Check(c.Call(Op::kDeallocMw, &w, sizeof w) == EINVAL, "dealloc of another's memory window");
  }
  Check(c.Call(Op::kOpenDevice, nullptr, 0) != 0, "second open on one connection");
  // Shared contexts: no token, a token that is no file of the daemon's, an object kind
  // that does not exist, on an open connection or a new one.
  {
    ImportObjectRequest bad_kind{static_cast<ImportKind>(99), 1};
    Check(c.Call(Op::kImportObject, &bad_kind, sizeof bad_kind) == EINVAL, "import of kind 99");
    Client j;
    j.sock = ConnectToDaemon();
    ImportContextRequest req{};
    std::snprintf(req.name, sizeof req.name, "%s", argv[1]);
    Check(j.Call(Op::kImportContext, &req, sizeof req) == EINVAL, "import without a token");
    int pipe_fds[2];
    if (pipe(pipe_fds) == 0) {
      const int fds[2] = {pipe_fds[1], pipe_fds[0]};
      Check(j.Call(Op::kImportContext, &req, sizeof req, fds, 2) != 0, "a pipe as a token");
      close(pipe_fds[0]);
      close(pipe_fds[1]);
    }
    Check(j.Call(Op::kAllocPd, nullptr, 0) == ENODEV, "no context joined");
    close(j.sock);
  }
  Check(c.Call(Op::kAllocPd, nullptr, 0) == 0, "alloc PD");
  uint32_t pd = c.Reply<HandleMsg>().handle;
  AllocMwRequest mwr{pd + 1000, IBV_MW_TYPE_2};
  Check(c.Call(Op::kAllocMw, &mwr, sizeof mwr) == EINVAL, "memory window in a PD not ours");
  mwr = {pd, 7};
  Check(c.Call(Op::kAllocMw, &mwr, sizeof mwr) == EINVAL, "memory window of type 7");

  // Short and garbage payloads for every op.
  for (uint16_t op = 1; op <= static_cast<uint16_t>(Op::kDestroyIndTable); ++op) {
    uint8_t junk[3] = {1, 2, 3};
    int r = c.Call(static_cast<Op>(op), junk, sizeof junk);
    if (op != static_cast<uint16_t>(Op::kListDevices) &&
        op != static_cast<uint16_t>(Op::kAllocPd) &&
        op != static_cast<uint16_t>(Op::kQueryDevice) &&
        op != static_cast<uint16_t>(Op::kQueryGidTable)) {
      Check(r != 0, "short payload refused");
    }
  }
  for (int i = 0; i < 2000; ++i) {
    std::vector<uint8_t> junk(rng() % 600);
    for (auto& b : junk) b = static_cast<uint8_t>(rng());
    auto op = static_cast<Op>(1 + rng() % 22);
    if (op == Op::kAllocPd || op == Op::kCreateCq || op == Op::kCreateQp || op == Op::kCreateSrq ||
        op == Op::kCreateAh || op == Op::kRegMr) {
      continue;  // may legitimately succeed with random sizes; covered below
    }
    c.Call(op, junk.data(), junk.size());
  }

  // Registrations with descriptors that are not sealed memfds, or do not cover the range.
  long page = sysconf(_SC_PAGESIZE);
  std::vector<uint8_t> reg(sizeof(RegMrRequest) + sizeof(MrSegment));
  auto try_reg = [&](int fd, uint64_t seg_len, uint64_t page_len, uint64_t file_off) {
    RegMrRequest r{};
    r.pd = pd;
    r.access = IBV_ACCESS_LOCAL_WRITE;
    r.addr = 0x10000000;
    r.length = 100;
    r.iova = r.addr;
    r.page_base = r.addr;
    r.page_length = page_len;
    r.nsegments = 1;
    MrSegment s{0, seg_len, file_off, 0, 0};
    std::memcpy(reg.data(), &r, sizeof r);
    std::memcpy(reg.data() + sizeof r, &s, sizeof s);
    return c.Call(Op::kRegMr, reg.data(), reg.size(), &fd, 1);
  };
  int pipefd[2];
  if (pipe(pipefd) != 0) return 1;
  Check(try_reg(pipefd[0], page, page, 0) != 0, "a pipe as registered memory");
  int unsealed = memfd_create("hostile", MFD_CLOEXEC);
  if (ftruncate(unsealed, page) != 0) return 1;
  Check(try_reg(unsealed, page, page, 0) != 0, "an unsealed memfd (could shrink under us)");
  int sealed = memfd_create("hostile", MFD_CLOEXEC | MFD_ALLOW_SEALING);
  if (ftruncate(sealed, page) != 0) return 1;
  fcntl(sealed, F_ADD_SEALS, F_SEAL_SHRINK);
  Check(try_reg(sealed, 2 * page, 2 * page, 0) != 0, "a memfd smaller than its segment");
  Check(try_reg(sealed, page, 2 * page, 0) != 0, "segments not covering the range");
  Check(try_reg(sealed, page, page, 1) != 0, "unaligned file offset");
  Check(try_reg(sealed, page, page, 0) == 0, "a proper sealed memfd registers");
  RegMrReply mr = c.Reply<RegMrReply>();

  // Memory "by reference": the daemon believes the kernel's map of us, not our word.
  auto try_ref = [&](const void* addr, uint32_t access, int nfds = 0) {
    RegMrRequest r{};
    r.pd = pd;
    r.access = access;
    r.addr = reinterpret_cast<uintptr_t>(addr);
    r.length = 64;
    r.iova = r.addr;
    r.page_base = r.addr & ~static_cast<uint64_t>(page - 1);
    r.page_length = static_cast<uint64_t>(page);
    r.nsegments = 1;
    MrSegment s{0, static_cast<uint64_t>(page), 0, 1, 0};
    std::memcpy(reg.data(), &r, sizeof r);
    std::memcpy(reg.data() + sizeof r, &s, sizeof s);
    return c.Call(Op::kRegMr, reg.data(), reg.size(), nfds ? &sealed : nullptr, nfds);
  };
  Check(try_ref(reinterpret_cast<void*>(0x10000000), IBV_ACCESS_LOCAL_WRITE) == EFAULT,
        "by reference: memory we do not have");
  static uint8_t private_page[8192] __attribute__((aligned(4096)));
  private_page[0] = 1;
  Check(try_ref(private_page, IBV_ACCESS_LOCAL_WRITE) == EOPNOTSUPP,
        "by reference: private memory (not shared)");
  char shm_path[] = "/dev/shm/vrdma-hostile-XXXXXX";
  int shm_file = mkstemp(shm_path);
  if (shm_file < 0 || ftruncate(shm_file, page) != 0) return 1;
  unlink(shm_path);
  void* file_map = mmap(nullptr, page, PROT_READ | PROT_WRITE, MAP_SHARED, shm_file, 0);
  Check(try_ref(file_map, IBV_ACCESS_LOCAL_WRITE) == EOPNOTSUPP,
        "by reference: a tmpfs file we could truncate");
  void* ro = mmap(nullptr, page, PROT_READ, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
  Check(try_ref(ro, IBV_ACCESS_REMOTE_WRITE) == EFAULT,
        "by reference: write access to read-only shared memory");
  Check(try_ref(ro, 0) == 0, "by reference: read-only shared memory, read access");
  RegMrReply ro_mr = c.Reply<RegMrReply>();
  HandleMsg ro_h{ro_mr.handle, 0};
  Check(c.Call(Op::kDeregMr, &ro_h, sizeof ro_h) == 0, "deregister it");
  Check(try_ref(ro, 0, 1) == EINVAL, "by reference with a descriptor too");

  // A QP and CQ whose rings we then scribble over.
  CreateCqRequest cqr{4, 0, 0, 0, 0};
  Check(c.Call(Op::kCreateCq, &cqr, sizeof cqr) == 0, "create CQ");
  auto cq = c.Reply<CreateCqReply>();
  int cq_fd = c.last.TakeFd(0);
  auto* cq_map = static_cast<uint8_t*>(mmap(nullptr, cq.shm_size, PROT_READ | PROT_WRITE,
                                            MAP_SHARED, cq_fd, static_cast<off_t>(cq.shm_offset)));
  CreateQpRequest qr{};
  qr.pd = pd;
  qr.qp_type = IBV_QPT_RC;
  qr.send_cq = qr.recv_cq = cq.handle;
  qr.max_send_wr = qr.max_recv_wr = 8;
  qr.max_send_sge = qr.max_recv_sge = 2;
  Check(c.Call(Op::kCreateQp, &qr, sizeof qr) == 0, "create QP");
  auto qp = c.Reply<CreateQpReply>();
  int qp_fd = c.last.TakeFd(0);
  auto* qp_map = static_cast<uint8_t*>(mmap(nullptr, qp.shm_size, PROT_READ | PROT_WRITE,
                                            MAP_SHARED, qp_fd, static_cast<off_t>(qp.shm_offset)));
  qr.max_send_sge = 1000;
  Check(c.Call(Op::kCreateQp, &qr, sizeof qr) == EINVAL, "QP beyond the device's SGE limit");
  qr.send_cq = 999999;
  qr.max_send_sge = 1;
  Check(c.Call(Op::kCreateQp, &qr, sizeof qr) == EINVAL, "QP on a CQ not ours");

  // INIT, so the daemon takes its WQEs (and completes bad ones with errors).
  ModifyQpRequest m{};
  m.handle = qp.handle;
  m.mask = IBV_QP_STATE | IBV_QP_PKEY_INDEX | IBV_QP_PORT | IBV_QP_ACCESS_FLAGS;
  m.attr.qp_state = IBV_QPS_INIT;
  m.attr.port_num = 1;
  Check(c.Call(Op::kModifyQp, &m, sizeof m) == 0, "QP to INIT");
  auto* hdr = reinterpret_cast<QpShmHeader*>(qp_map);
  for (size_t i = qp.sq_offset; i < qp.shm_size; ++i) qp_map[i] = static_cast<uint8_t>(rng());
  // Receive WQEs of garbage with SGEs past our MR, other keys, absurd counts.
  hdr->rq.producer.value.store(3);
  hdr->sq.producer.value.store(5);
  // And the CQ consumer index set to nonsense: only our own CQ overflows.
  reinterpret_cast<CqShmHeader*>(cq_map)->ring.consumer.value.store(0xdeadbeef);
  c.Doorbell();  // the daemon looks at our rings
  for (int i = 0; i < 20; ++i) {
    Check(c.Call(Op::kQueryDevice, nullptr, 0) == 0, "daemon still answers");
    usleep(10000);
  }
  // An impossible producer index breaks only this QP.
  hdr->sq.producer.value.store(1u << 30);
  c.Doorbell();
  // The client hears about its broken queue (and its overrun CQ) as async events.
  bool fatal = false;
  for (int i = 0; i < 50 && !fatal; ++i) {
    pollfd p{c.async_r, POLLIN, 0};
    poll(&p, 1, 100);
    struct {
      uint64_t element;
      uint32_t type, reserved;
    } ev;
    while (read(c.async_r, &ev, sizeof ev) == sizeof ev) fatal |= ev.type == IBV_EVENT_QP_FATAL;
  }
  Check(fatal, "IBV_EVENT_QP_FATAL for the broken send queue");
  QueryQpRequest qq{qp.handle, IBV_QP_STATE};
  Check(c.Call(Op::kQueryQp, &qq, sizeof qq) == 0, "query QP after the garbage");
  // The memfd our rings were carved from, whole: it holds this context's rings only (a
  // second context's CQ comes in another), cannot be resized, and garbage or holes
  // punched over all of it hurt no one else.
  struct stat chunk_st {};
  Check(fstat(qp_fd, &chunk_st) == 0, "fstat of the rings' memfd");
  Check(ftruncate(qp_fd, 0) != 0 && errno == EPERM, "the rings' memfd cannot be shrunk");
  Check(ftruncate(qp_fd, chunk_st.st_size * 2) != 0 && errno == EPERM,
        "the rings' memfd cannot be grown");
  {
    Client other;
    Check(Open(other, argv[1]), "a second context");
    CreateCqRequest ocq{4, 0, 0, 0, 0};
    Check(other.Call(Op::kCreateCq, &ocq, sizeof ocq) == 0, "a CQ of the second context");
    int other_fd = other.last.TakeFd(0);
    struct stat other_st {};
    Check(fstat(other_fd, &other_st) == 0 && other_st.st_ino != chunk_st.st_ino,
          "another context's ring is not in our memfd");
    close(other_fd);
    auto size = static_cast<size_t>(chunk_st.st_size);
    auto* whole =
        static_cast<uint8_t*>(mmap(nullptr, size, PROT_READ | PROT_WRITE, MAP_SHARED, qp_fd, 0));
    Check(whole != MAP_FAILED, "map all of the rings' memfd");
    if (whole != MAP_FAILED) {
      for (size_t i = 0; i < size; ++i) whole[i] = static_cast<uint8_t>(rng());
      c.Doorbell();
      Check(c.Call(Op::kQueryDevice, nullptr, 0) == 0, "daemon answers after garbage everywhere");
      Check(fallocate(qp_fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, 0,
                      static_cast<off_t>(size)) == 0,
            "punch a hole over all of it");
      c.Doorbell();
      munmap(whole, size);
    }
    Check(other.Call(Op::kQueryDevice, nullptr, 0) == 0, "the second context still answers");
    close(other.sock);
  }
  (void)mr;
  Check(c.Call(Op::kQueryDevice, nullptr, 0) == 0, "daemon alive at the end");
  std::printf("%s: %d failures\n", argv[0], g_failures);
  return g_failures ? 1 : 0;
}
