// ibv_import_device, ibv_import_pd and ibv_import_mr across two processes, as an
// application shares a context: the parent passes its context's cmd_fd over a Unix socket
// (SCM_RIGHTS) to a process it execs, which joins the context and moves data with the
// parent's MR and with one of its own; the objects outlive the parent's context while the
// other holds them. Runs under vrdma-run (verbs_check.sh), with vdev_a and vdev_b.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <infiniband/verbs.h>
#include <poll.h>
#include <sched.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "tests/lib/verbs_peer.h"

namespace {

using vrdma::testing::ConnectTo;
using vrdma::testing::OpenByName;
using vrdma::testing::PollOne;

constexpr size_t kChunk = 4096;
constexpr const char* kSockEnv = "VRDMA_IMPORT_SOCK";

// Parent to child, with the context's cmd_fd.
struct Handoff {
  uint32_t pd_handle, other_pd_handle, mr_handle, mr_lkey, mr_rkey;
  uint64_t mr_addr, mr_length;
  uint32_t peer_qpn, peer_rkey;
  uint64_t peer_addr;
  ibv_gid peer_gid;
};
// Each step's word between the two.
struct Step {
  uint32_t step;
  uint32_t qpn;
};

bool SendMsg(int sock, const void* data, size_t len, int fd = -1) {
  iovec iov{const_cast<void*>(data), len};
  msghdr m{};
  m.msg_iov = &iov;
  m.msg_iovlen = 1;
  alignas(cmsghdr) char control[CMSG_SPACE(sizeof(int))] = {};
  if (fd >= 0) {
    m.msg_control = control;
    m.msg_controllen = sizeof control;
    cmsghdr* c = CMSG_FIRSTHDR(&m);
    c->cmsg_level = SOL_SOCKET;
    c->cmsg_type = SCM_RIGHTS;
    c->cmsg_len = CMSG_LEN(sizeof(int));
    std::memcpy(CMSG_DATA(c), &fd, sizeof fd);
  }
  return sendmsg(sock, &m, 0) == static_cast<ssize_t>(len);
}

// Waits at most 20 s for one message of `len` bytes (and a descriptor when `fd` is set).
bool RecvMsg(int sock, void* data, size_t len, int* fd = nullptr) {
  pollfd p{sock, POLLIN, 0};
  if (poll(&p, 1, 20000) != 1) return false;
  iovec iov{data, len};
  msghdr m{};
  m.msg_iov = &iov;
  m.msg_iovlen = 1;
  alignas(cmsghdr) char control[CMSG_SPACE(sizeof(int))] = {};
  m.msg_control = control;
  m.msg_controllen = sizeof control;
  if (recvmsg(sock, &m, MSG_CMSG_CLOEXEC) != static_cast<ssize_t>(len)) return false;
  if (fd) {
    cmsghdr* c = CMSG_FIRSTHDR(&m);
    if (!c || c->cmsg_type != SCM_RIGHTS) return false;
    std::memcpy(fd, CMSG_DATA(c), sizeof *fd);
  }
  return true;
}

bool AllBytes(const uint8_t* p, size_t n, uint8_t v) {
  for (size_t i = 0; i < n; ++i) {
    if (p[i] != v) return false;
  }
  return true;
}

// RDMA WRITE of `len` bytes at `laddr` (key `lkey`) to the peer's `raddr`: the
// completion's status.
ibv_wc_status Write(ibv_qp* qp, ibv_cq* cq, uint64_t laddr, uint32_t lkey, uint64_t raddr,
                    uint32_t rkey, uint32_t len) {
  ibv_sge sge{laddr, len, lkey};
  ibv_send_wr w{};
  w.wr_id = raddr;
  w.opcode = IBV_WR_RDMA_WRITE;
  w.send_flags = IBV_SEND_SIGNALED;
  w.sg_list = &sge;
  w.num_sge = 1;
  w.wr.rdma = {raddr, rkey};
  ibv_send_wr* bad;
  if (ibv_post_send(qp, &w, &bad) != 0) return IBV_WC_GENERAL_ERR;
  ibv_wc wc{};
  if (!PollOne(cq, &wc)) return IBV_WC_GENERAL_ERR;
  return wc.status;
}

TEST(Import, ContextSharedWithAnotherProcess) {
  ibv_context* a = OpenByName("vdev_a");
  ibv_context* b = OpenByName("vdev_b");
  ASSERT_TRUE(a && b);
  ASSERT_GE(a->cmd_fd, 0) << "a vrdma context has a cmd_fd to share";
  ibv_pd* pd = ibv_alloc_pd(a);
  ibv_pd* other_pd = ibv_alloc_pd(a);
  std::vector<uint8_t> parent_buf(kChunk, 0x11);
  ibv_mr* mr = ibv_reg_mr(pd, parent_buf.data(), parent_buf.size(), IBV_ACCESS_LOCAL_WRITE);
  ASSERT_TRUE(pd && other_pd && mr) << std::strerror(errno);

  // The peer: an RC QP on vdev_b whose buffer the other process writes into.
  ibv_pd* bpd = ibv_alloc_pd(b);
  ibv_cq* bcq = ibv_create_cq(b, 16, nullptr, nullptr, 0);
  std::vector<uint8_t> peer_buf(3 * kChunk, 0);
  ibv_mr* bmr = ibv_reg_mr(bpd, peer_buf.data(), peer_buf.size(),
                           IBV_ACCESS_LOCAL_WRITE | IBV_ACCESS_REMOTE_WRITE);
  ibv_qp_init_attr qa{};
  qa.send_cq = bcq;
  qa.recv_cq = bcq;
  qa.cap = {8, 8, 1, 1, 0};
  qa.qp_type = IBV_QPT_RC;
  ibv_qp* bqp = ibv_create_qp(bpd, &qa);
  ASSERT_TRUE(bpd && bcq && bmr && bqp) << std::strerror(errno);
  ibv_gid agid{}, bgid{};
  ASSERT_EQ(ibv_query_gid(a, 1, vrdma::testing::GidIndex(), &agid), 0);
  ASSERT_EQ(ibv_query_gid(b, 1, vrdma::testing::GidIndex(), &bgid), 0);

  int sv[2];
  ASSERT_EQ(socketpair(AF_UNIX, SOCK_SEQPACKET, 0, sv), 0);
  pid_t child = fork();
  ASSERT_GE(child, 0);
  if (child == 0) {
    close(sv[0]);
    setenv(kSockEnv, std::to_string(sv[1]).c_str(), 1);
    execl("/proc/self/exe", "import_check", "--gtest_also_run_disabled_tests",
          "--gtest_filter=Import.DISABLED_JoinedContextMovesData", nullptr);
    _exit(127);
  }
  close(sv[1]);
  int sock = sv[0];
  Handoff h{pd->handle,
            other_pd->handle,
            mr->handle,
            mr->lkey,
            mr->rkey,
            reinterpret_cast<uintptr_t>(parent_buf.data()),
            parent_buf.size(),
            bqp->qp_num,
            bmr->rkey,
            reinterpret_cast<uintptr_t>(peer_buf.data()),
            bgid};
  ASSERT_TRUE(SendMsg(sock, &h, sizeof h, a->cmd_fd));

  Step s{};
  ASSERT_TRUE(RecvMsg(sock, &s, sizeof s)) << "the other process joined and made its QP";
  ASSERT_NO_FATAL_FAILURE(ConnectTo(bqp, IBV_QPT_RC, s.qpn, agid));
  ASSERT_TRUE(SendMsg(sock, &s, sizeof s));

  // Its writes: one from this process's MR (imported), one from an MR of its own.
  ASSERT_TRUE(RecvMsg(sock, &s, sizeof s));
  EXPECT_TRUE(AllBytes(peer_buf.data(), kChunk, 0x11)) << "the imported MR is this process's";
  EXPECT_TRUE(AllBytes(peer_buf.data() + kChunk, kChunk, 0x22)) << "its own MR is its memory";

  // This process closes its context without freeing anything: the other still holds the
  // objects (one uverbs file, two processes), and writes again.
  ibv_close_device(a);
  ASSERT_TRUE(SendMsg(sock, &s, sizeof s));
  ASSERT_TRUE(RecvMsg(sock, &s, sizeof s));
  EXPECT_TRUE(AllBytes(peer_buf.data() + 2 * kChunk, kChunk, 0x33))
      << "the objects outlive the context that made them while the other holds them";

  int status = 0;
  ASSERT_EQ(waitpid(child, &status, 0), child);
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << "the other process failed";
  close(sock);
  ibv_destroy_qp(bqp);
  ibv_dereg_mr(bmr);
  ibv_destroy_cq(bcq);
  ibv_dealloc_pd(bpd);
  ibv_close_device(b);
}

// Holding a token is no pass: a process in a network namespace the vdev is not visible
// from cannot join the context (as it could not open the vdev). VRDMA_OTHER_NETNS names
// such a namespace (/run/netns/...).
TEST(Import, NotFromANamespaceTheVdevIsHiddenFrom) {
  const char* other = std::getenv("VRDMA_OTHER_NETNS");
  if (!other) GTEST_SKIP() << "VRDMA_OTHER_NETNS not set";
  ibv_context* a = OpenByName("vdev_a");
  ASSERT_NE(a, nullptr);
  ibv_pd* pd = ibv_alloc_pd(a);
  ASSERT_NE(pd, nullptr);
  pid_t child = fork();
  ASSERT_GE(child, 0);
  if (child == 0) {
    int ns = open(other, O_RDONLY | O_CLOEXEC);
    if (ns < 0 || setns(ns, CLONE_NEWNET) != 0) _exit(2);
    ibv_context* joined = ibv_import_device(dup(a->cmd_fd));
    _exit(joined == nullptr && errno == ENODEV ? 0 : 1);
  }
  int status = 0;
  ASSERT_EQ(waitpid(child, &status, 0), child);
  ASSERT_TRUE(WIFEXITED(status));
  EXPECT_EQ(WEXITSTATUS(status), 0) << "joined (1) or could not enter the namespace (2)";
  // The context and its PD are as they were.
  ibv_pd* second = ibv_alloc_pd(a);
  EXPECT_NE(second, nullptr);
  if (second) ibv_dealloc_pd(second);
  EXPECT_EQ(ibv_dealloc_pd(pd), 0);
  ibv_close_device(a);
}

// The other process (exec'd by Import.ContextSharedWithAnotherProcess).
TEST(Import, DISABLED_JoinedContextMovesData) {
  const char* env = std::getenv(kSockEnv);
  if (!env) GTEST_SKIP() << "run by Import.ContextSharedWithAnotherProcess";
  int sock = std::atoi(env);
  Handoff h{};
  int cmd_fd = -1;
  ASSERT_TRUE(RecvMsg(sock, &h, sizeof h, &cmd_fd));

  // A token made up by the importer is no context, whatever its name says.
  int forged = memfd_create("vrdma-context:vdev_a", MFD_CLOEXEC);
  ASSERT_GE(forged, 0);
  EXPECT_EQ(ibv_import_device(forged), nullptr);
  EXPECT_EQ(errno, EINVAL);
  close(forged);

  ibv_context* ctx = ibv_import_device(cmd_fd);
  ASSERT_NE(ctx, nullptr) << std::strerror(errno);
  EXPECT_STREQ(ibv_get_device_name(ctx->device), "vdev_a");
  EXPECT_EQ(ibv_import_pd(ctx, 0xfffff), nullptr);
  EXPECT_EQ(errno, EINVAL);
  ibv_pd* pd = ibv_import_pd(ctx, h.pd_handle);
  ASSERT_NE(pd, nullptr) << std::strerror(errno);
  EXPECT_EQ(ibv_import_mr(pd, 0xfffff), nullptr);
  ibv_pd* other = ibv_import_pd(ctx, h.other_pd_handle);
  ASSERT_NE(other, nullptr);
  EXPECT_EQ(ibv_import_mr(other, h.mr_handle), nullptr) << "an MR is imported with its own PD";
  EXPECT_EQ(errno, EINVAL);
  ibv_unimport_pd(other);
  ibv_mr* mr = ibv_import_mr(pd, h.mr_handle);
  ASSERT_NE(mr, nullptr) << std::strerror(errno);
  EXPECT_EQ(mr->lkey, h.mr_lkey);
  EXPECT_EQ(mr->rkey, h.mr_rkey);
  EXPECT_EQ(mr->length, h.mr_length);
  EXPECT_EQ(reinterpret_cast<uintptr_t>(mr->addr), h.mr_addr);

  // Objects of its own in the shared context: its registration is its own memory.
  ibv_cq* cq = ibv_create_cq(ctx, 16, nullptr, nullptr, 0);
  void* mine =
      mmap(nullptr, 2 * kChunk, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  ASSERT_NE(mine, MAP_FAILED);
  auto* own = static_cast<uint8_t*>(mine);
  std::memset(own, 0x22, kChunk);
  std::memset(own + kChunk, 0x33, kChunk);
  ibv_mr* own_mr = ibv_reg_mr(pd, own, 2 * kChunk, IBV_ACCESS_LOCAL_WRITE);
  ibv_qp_init_attr qa{};
  qa.send_cq = cq;
  qa.recv_cq = cq;
  qa.cap = {8, 8, 1, 1, 0};
  qa.qp_type = IBV_QPT_RC;
  ibv_qp* qp = ibv_create_qp(pd, &qa);
  ASSERT_TRUE(cq && own_mr && qp) << std::strerror(errno);
  Step s{1, qp->qp_num};
  ASSERT_TRUE(SendMsg(sock, &s, sizeof s));
  ASSERT_TRUE(RecvMsg(sock, &s, sizeof s));
  ASSERT_NO_FATAL_FAILURE(ConnectTo(qp, IBV_QPT_RC, h.peer_qpn, h.peer_gid));

  EXPECT_EQ(Write(qp, cq, h.mr_addr, mr->lkey, h.peer_addr, h.peer_rkey, kChunk), IBV_WC_SUCCESS);
  EXPECT_EQ(Write(qp, cq, reinterpret_cast<uintptr_t>(own), own_mr->lkey, h.peer_addr + kChunk,
                  h.peer_rkey, kChunk),
            IBV_WC_SUCCESS);
  s.step = 2;
  ASSERT_TRUE(SendMsg(sock, &s, sizeof s));
  ASSERT_TRUE(RecvMsg(sock, &s, sizeof s));  // the parent closed its context
  EXPECT_EQ(Write(qp, cq, reinterpret_cast<uintptr_t>(own) + kChunk, own_mr->lkey,
                  h.peer_addr + 2 * kChunk, h.peer_rkey, kChunk),
            IBV_WC_SUCCESS);
  s.step = 3;
  ASSERT_TRUE(SendMsg(sock, &s, sizeof s));

  // Everything goes through this context now, the parent's objects too.
  EXPECT_EQ(ibv_destroy_qp(qp), 0);
  EXPECT_EQ(ibv_destroy_cq(cq), 0);
  EXPECT_EQ(ibv_dereg_mr(own_mr), 0);
  EXPECT_EQ(ibv_dereg_mr(mr), 0);
  EXPECT_EQ(ibv_dealloc_pd(pd), 0);
  other = ibv_import_pd(ctx, h.other_pd_handle);
  ASSERT_NE(other, nullptr);
  EXPECT_EQ(ibv_dealloc_pd(other), 0);
  EXPECT_EQ(ibv_close_device(ctx), 0);
}

}  // namespace
