// The fault guard (driver/res/fault_guard.h) through the real path: client memory mapped
// by ClientMemory::Map from a memfd, registered with the engine, then truncated under it.
// Every engine access that meets a vanished page fails as the spec says for an unusable
// memory region — the QP that made it, never the process — and the MR stays unusable;
// other MRs carry on. A SIGBUS anywhere else still kills the process.
#include <fcntl.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <vector>

#include "tests/lib/huge_pages.h"
#include "tests/unit/driver/transport/engine_pair.h"
#include "vdev/shm/client_memory.h"

namespace vrdma::driver::testing {
namespace {

const uint64_t kPage = static_cast<uint64_t>(sysconf(_SC_PAGESIZE));
constexpr int kAllAccess = IBV_ACCESS_LOCAL_WRITE | IBV_ACCESS_REMOTE_WRITE |
                           IBV_ACCESS_REMOTE_READ | IBV_ACCESS_REMOTE_ATOMIC;

// A client MR: a memfd of `pages` pages mapped as the daemon maps one, registered on `h`.
struct ClientMr {
  int fd = -1;
  std::unique_ptr<vdev::ClientMemory> memory;
  MrKeys keys{};
  uint64_t iova = 0;
  uint64_t length = 0;

  ~ClientMr() {
    if (fd >= 0) close(fd);
  }
  // The client takes its pages away: every page of the daemon's mapping now faults.
  void Truncate() const { ASSERT_EQ(ftruncate(fd, 0), 0); }
  uint8_t* host() const { return memory->base(); }
};

std::unique_ptr<ClientMr> MapClientMr(Host& h, uint64_t pages, uint64_t iova) {
  auto mr = std::make_unique<ClientMr>();
  mr->length = pages * kPage;
  mr->iova = iova;
  mr->fd = memfd_create("client-fault-test", MFD_CLOEXEC);
  EXPECT_GE(mr->fd, 0);
  EXPECT_EQ(ftruncate(mr->fd, static_cast<off_t>(mr->length)), 0);
  proto::MrSegment seg{};
  seg.length = mr->length;
  // fixed_size: the seal check (the first line) is not what this test is about; a
  // memfd the test can truncate stands for any object that loses pages after all.
  vdev::SegmentBacking backing{mr->fd, 0, true, true};
  auto memory = vdev::ClientMemory::Map(mr->length, {&seg, 1}, {&backing, 1});
  EXPECT_TRUE(memory.ok()) << memory.status();
  if (!memory.ok()) return mr;
  mr->memory = std::move(*memory);
  FillPattern(mr->host(), mr->length, 7);
  auto keys = h.dev->RegMr(h.pd, iova, mr->host(), mr->length, kAllAccess);
  EXPECT_TRUE(keys.ok()) << keys.status();
  if (keys.ok()) mr->keys = *keys;
  return mr;
}

ibv_qp_state StateOf(Host& h, uint32_t qpn) {
  ibv_qp_attr attr;
  EXPECT_TRUE(h.dev->QueryQp(qpn, &attr, nullptr).ok());
  return attr.qp_state;
}

bool Poisoned(Host& h, const ClientMr& mr) {
  const MemoryRegion* m = h.dev->FindMr(mr.keys.lkey);
  return m && m->poisoned;
}

// SEND from an SGE over `mr` (local key).
SendWr SendFrom(uint64_t wr_id, ibv_wr_opcode op, const ClientMr& mr, uint32_t len) {
  SendWr w{};
  w.wr_id = wr_id;
  w.opcode = op;
  w.send_flags = IBV_SEND_SIGNALED;
  w.num_sge = 1;
  w.sg_list[0] = Sge{mr.iova, len, mr.keys.lkey};
  return w;
}

class ClientFaultTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() { ASSERT_TRUE(vdev::ClientMemory::InstallFaultGuard().ok()); }
};

// Requester gather (SEND): Local Protection Error, QP to Error, MR poisoned; the MR
// stays unusable on a new QP; another MR of the same PD still works.
TEST_F(ClientFaultTest, SendFromVanishedPageFailsTheWqeNotTheDaemon) {
  EnginePair pair;
  uint32_t qa, qb;
  pair.Connect(QpOptions{}, &qa, &qb);
  auto mr = MapClientMr(pair.a, 4, 0x10'0000);
  ASSERT_TRUE(mr->memory);
  mr->Truncate();
  ASSERT_TRUE(pair.b.dev->PostRecv(qb, MakeRecv(9, pair.b, 0, 8192)).ok());
  ASSERT_TRUE(pair.a.dev->PostSend(qa, SendFrom(1, IBV_WR_SEND, *mr, 3 * 4096)).ok());
  std::vector<ibv_wc> wc;
  ASSERT_TRUE(pair.WaitCq(pair.a, pair.a.scq, 1, &wc));
  EXPECT_EQ(wc[0].status, IBV_WC_LOC_PROT_ERR);
  EXPECT_EQ(wc[0].wr_id, 1u);
  EXPECT_EQ(StateOf(pair.a, qa), IBV_QPS_ERR);
  EXPECT_TRUE(Poisoned(pair.a, *mr));
  EXPECT_EQ(pair.a.dev->counters().mr_poisoned, 1u);

  // The MR stays unusable (no fault needed now: the engine refuses it) ...
  uint32_t qa2, qb2;
  pair.Connect(QpOptions{}, &qa2, &qb2);
  ASSERT_TRUE(pair.b.dev->PostRecv(qb2, MakeRecv(19, pair.b, 0, 8192)).ok());
  ASSERT_TRUE(pair.b.dev->PostRecv(qb2, MakeRecv(20, pair.b, 8192, 8192)).ok());
  ASSERT_TRUE(pair.a.dev->PostSend(qa2, SendFrom(2, IBV_WR_SEND, *mr, 100)).ok());
  wc.clear();
  ASSERT_TRUE(pair.WaitCq(pair.a, pair.a.scq, 1, &wc));
  EXPECT_EQ(wc[0].status, IBV_WC_LOC_PROT_ERR);
  // ... while another MR carries on.
  uint32_t qa3, qb3;
  pair.Connect(QpOptions{}, &qa3, &qb3);
  ASSERT_TRUE(pair.b.dev->PostRecv(qb3, MakeRecv(29, pair.b, 0, 8192)).ok());
  FillPattern(pair.a.at(0), 5000, 3);
  ASSERT_TRUE(pair.a.dev->PostSend(qa3, MakeSend(3, IBV_WR_SEND, pair.a, 0, 5000)).ok());
  wc.clear();
  ASSERT_TRUE(pair.WaitCq(pair.a, pair.a.scq, 1, &wc));
  EXPECT_EQ(wc[0].status, IBV_WC_SUCCESS);
  std::vector<ibv_wc> rwc;
  ASSERT_TRUE(pair.WaitCq(pair.b, pair.b.rcq, 1, &rwc));
  EXPECT_EQ(rwc.back().status, IBV_WC_SUCCESS);
  EXPECT_EQ(std::memcmp(pair.a.at(0), pair.b.at(0), 5000), 0);
}

// Responder RDMA WRITE into a vanished page: Remote Access Error NAK.
TEST_F(ClientFaultTest, WriteIntoVanishedPageIsARemoteAccessError) {
  EnginePair pair;
  uint32_t qa, qb;
  pair.Connect(QpOptions{}, &qa, &qb);
  auto mr = MapClientMr(pair.b, 4, 0x20'0000);
  ASSERT_TRUE(mr->memory);
  mr->Truncate();
  SendWr w = MakeSend(1, IBV_WR_RDMA_WRITE, pair.a, 0, 2 * 4096);
  w.remote_addr = mr->iova + 4096;
  w.rkey = mr->keys.rkey;
  ASSERT_TRUE(pair.a.dev->PostSend(qa, w).ok());
  std::vector<ibv_wc> wc;
  ASSERT_TRUE(pair.WaitCq(pair.a, pair.a.scq, 1, &wc));
  EXPECT_EQ(wc[0].status, IBV_WC_REM_ACCESS_ERR);
  EXPECT_TRUE(Poisoned(pair.b, *mr));
  EXPECT_EQ(StateOf(pair.a, qa), IBV_QPS_ERR);
}

// Responder RDMA READ from a vanished page: Remote Access Error NAK.
TEST_F(ClientFaultTest, ReadFromVanishedPageIsARemoteAccessError) {
  EnginePair pair;
  uint32_t qa, qb;
  pair.Connect(QpOptions{}, &qa, &qb);
  auto mr = MapClientMr(pair.b, 4, 0x30'0000);
  ASSERT_TRUE(mr->memory);
  mr->Truncate();
  SendWr r = MakeSend(1, IBV_WR_RDMA_READ, pair.a, 0, 3 * 4096);
  r.remote_addr = mr->iova;
  r.rkey = mr->keys.rkey;
  ASSERT_TRUE(pair.a.dev->PostSend(qa, r).ok());
  std::vector<ibv_wc> wc;
  ASSERT_TRUE(pair.WaitCq(pair.a, pair.a.scq, 1, &wc));
  EXPECT_EQ(wc[0].status, IBV_WC_REM_ACCESS_ERR);
  EXPECT_TRUE(Poisoned(pair.b, *mr));
}

// Completer scatter (READ response into a vanished local page): Local Protection Error.
TEST_F(ClientFaultTest, ReadIntoVanishedPageIsALocalProtectionError) {
  EnginePair pair;
  uint32_t qa, qb;
  pair.Connect(QpOptions{}, &qa, &qb);
  auto mr = MapClientMr(pair.a, 4, 0x40'0000);
  ASSERT_TRUE(mr->memory);
  mr->Truncate();
  SendWr r = SendFrom(1, IBV_WR_RDMA_READ, *mr, 2 * 4096);
  r.remote_addr = pair.b.va(0);
  r.rkey = pair.b.mr.rkey;
  ASSERT_TRUE(pair.a.dev->PostSend(qa, r).ok());
  std::vector<ibv_wc> wc;
  ASSERT_TRUE(pair.WaitCq(pair.a, pair.a.scq, 1, &wc));
  EXPECT_EQ(wc[0].status, IBV_WC_LOC_PROT_ERR);
  EXPECT_TRUE(Poisoned(pair.a, *mr));
  EXPECT_EQ(StateOf(pair.a, qa), IBV_QPS_ERR);
}

// Responder atomic on a vanished page: Remote Access Error NAK.
TEST_F(ClientFaultTest, AtomicOnVanishedPageIsARemoteAccessError) {
  EnginePair pair;
  uint32_t qa, qb;
  pair.Connect(QpOptions{}, &qa, &qb);
  auto mr = MapClientMr(pair.b, 1, 0x50'0000);
  ASSERT_TRUE(mr->memory);
  mr->Truncate();
  SendWr f = MakeSend(1, IBV_WR_ATOMIC_FETCH_AND_ADD, pair.a, 0, 8);
  f.remote_addr = mr->iova + 64;
  f.rkey = mr->keys.rkey;
  f.compare_add = 1;
  ASSERT_TRUE(pair.a.dev->PostSend(qa, f).ok());
  std::vector<ibv_wc> wc;
  ASSERT_TRUE(pair.WaitCq(pair.a, pair.a.scq, 1, &wc));
  EXPECT_EQ(wc[0].status, IBV_WC_REM_ACCESS_ERR);
  EXPECT_TRUE(Poisoned(pair.b, *mr));
}

// Responder SEND into a vanished receive buffer: the receive completes with a Local
// Protection Error and the requester gets a Remote Operational Error NAK.
TEST_F(ClientFaultTest, SendIntoVanishedReceiveBuffer) {
  EnginePair pair;
  uint32_t qa, qb;
  pair.Connect(QpOptions{}, &qa, &qb);
  auto mr = MapClientMr(pair.b, 2, 0x60'0000);
  ASSERT_TRUE(mr->memory);
  mr->Truncate();
  RecvWr rw{};
  rw.wr_id = 5;
  rw.num_sge = 1;
  rw.sg_list[0] = Sge{mr->iova, static_cast<uint32_t>(mr->length), mr->keys.lkey};
  ASSERT_TRUE(pair.b.dev->PostRecv(qb, rw).ok());
  ASSERT_TRUE(pair.a.dev->PostSend(qa, MakeSend(1, IBV_WR_SEND, pair.a, 0, 1000)).ok());
  std::vector<ibv_wc> wc, rwc;
  ASSERT_TRUE(pair.WaitCq(pair.a, pair.a.scq, 1, &wc));
  EXPECT_EQ(wc[0].status, IBV_WC_REM_OP_ERR);
  ASSERT_TRUE(pair.WaitCq(pair.b, pair.b.rcq, 1, &rwc));
  EXPECT_EQ(rwc[0].status, IBV_WC_LOC_PROT_ERR);
  EXPECT_TRUE(Poisoned(pair.b, *mr));
}

// Zero-copy transmit: the engine reads the payload for the ICRC as it builds the frame;
// a vanished page there fails the WQE too.
TEST_F(ClientFaultTest, ZeroCopySendFromVanishedPage) {
  EnginePair pair(/*seed=*/1, 4 << 20, nullptr, /*tx_chains=*/true);
  QpOptions opt;
  opt.mtu = IBV_MTU_4096;
  uint32_t qa, qb;
  pair.Connect(opt, &qa, &qb);
  auto mr = MapClientMr(pair.a, 4, 0x70'0000);
  ASSERT_TRUE(mr->memory);
  rte_mbuf_ext_shared_info share{};
  share.free_cb = [](void*, void*) {};
  rte_mbuf_ext_refcnt_set(&share, 1);
  ASSERT_TRUE(pair.a.dev->SetMrTxShare(mr->keys.lkey, &share).ok());
  mr->Truncate();
  ASSERT_TRUE(pair.b.dev->PostRecv(qb, MakeRecv(9, pair.b, 0, 8192)).ok());
  ASSERT_TRUE(pair.a.dev->PostSend(qa, SendFrom(1, IBV_WR_SEND, *mr, 4096)).ok());
  std::vector<ibv_wc> wc;
  ASSERT_TRUE(pair.WaitCq(pair.a, pair.a.scq, 1, &wc));
  EXPECT_EQ(wc[0].status, IBV_WC_LOC_PROT_ERR);
  EXPECT_TRUE(Poisoned(pair.a, *mr));
  pair.RunUntil([&] { return rte_mbuf_ext_refcnt_read(&share) == 1; }, 100'000'000);
  EXPECT_EQ(rte_mbuf_ext_refcnt_read(&share), 1) << "the failed frame gave its reference back";
}

// The guard's ranges end with the mapping: once a ClientMemory is gone, a fault at
// that address is not the guard's any more.
TEST_F(ClientFaultTest, RangeEndsWithTheMapping) {
  int fd = memfd_create("client-fault-test", MFD_CLOEXEC);
  ASSERT_GE(fd, 0);
  ASSERT_EQ(ftruncate(fd, static_cast<off_t>(kPage)), 0);
  proto::MrSegment seg{};
  seg.length = kPage;
  vdev::SegmentBacking backing{fd, 0, true, true};
  auto memory = vdev::ClientMemory::Map(kPage, {&seg, 1}, {&backing, 1});
  ASSERT_TRUE(memory.ok());
  uint8_t* base = (*memory)->base();
  EXPECT_FALSE(fault_guard::Faulted(base, kPage));
  ASSERT_EQ(ftruncate(fd, 0), 0);
  volatile uint8_t* p = base;
  p[10] = 1;  // faults, repaired
  EXPECT_TRUE(fault_guard::Faulted(base, kPage));
  memory->reset();
  EXPECT_FALSE(fault_guard::Faulted(base, kPage));
  close(fd);
}

// Huge pages (issue 14): a segment inside an MFD_HUGETLB memfd, starting two pages before
// a huge-page boundary, is mapped widened to whole huge pages with the boundary aligned,
// and shows what the client wrote. When the client takes the pages away, the guard
// replaces a whole huge page (the kernel cannot split one into base pages) and the range
// is marked faulted, for the engine to fail the access as the other cases show.
TEST_F(ClientFaultTest, HugePageSegmentMapsAlignedAndLosesPagesSafely) {
  VRDMA_REQUIRE_FREE_HUGE_PAGES(2);
  int fd = memfd_create("client-fault-huge", MFD_CLOEXEC | MFD_ALLOW_SEALING | MFD_HUGETLB);
  ASSERT_GE(fd, 0) << std::strerror(errno);
  struct stat st;
  ASSERT_EQ(fstat(fd, &st), 0);
  const uint64_t huge = static_cast<uint64_t>(st.st_blksize);
  ASSERT_GT(huge, kPage);
  ASSERT_EQ(ftruncate(fd, static_cast<off_t>(2 * huge)), 0);  // unsealed: accepted all the same
  void* mapped = mmap(nullptr, 2 * huge, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
  ASSERT_NE(mapped, MAP_FAILED);
  auto* client = static_cast<uint8_t*>(mapped);
  FillPattern(client, 2 * huge, 11);
  const uint64_t at = huge - 2 * kPage;
  proto::MrSegment seg{};
  seg.length = huge;
  vdev::SegmentBacking backing{fd, at, true, false};
  auto memory = vdev::ClientMemory::Map(huge, {&seg, 1}, {&backing, 1});
  ASSERT_TRUE(memory.ok()) << memory.status();
  uint8_t* base = (*memory)->base();
  EXPECT_EQ((reinterpret_cast<uintptr_t>(base) + 2 * kPage) % huge, 0u);
  EXPECT_EQ(std::memcmp(base, client + at, huge), 0);
  base[3 * kPage] = 0xee;  // the daemon's writes are the client's
  EXPECT_EQ(client[at + 3 * kPage], 0xee);
  munmap(mapped, 2 * huge);
  EXPECT_FALSE(fault_guard::Faulted(base, huge));
  ASSERT_EQ(ftruncate(fd, 0), 0);
  volatile uint8_t* p = base;
  p[kPage] = 1;     // in the first huge page: faults, repaired
  p[huge - 1] = 2;  // in the second
  EXPECT_EQ(p[kPage], 1);
  EXPECT_TRUE(fault_guard::Faulted(base, huge));
  memory->reset();
  close(fd);
}

// Killed by SIGBUS; in the sanitizer build, whose SIGBUS handler the guard chains to for
// faults not its own, killed by that handler's report (abort) or exit.
bool DiedOfSigbus(int status) {
  if (WIFSIGNALED(status) && WTERMSIG(status) == SIGBUS) return true;
  if (!std::getenv("VRDMA_SANITIZED")) return false;
  return WIFSIGNALED(status) || (WIFEXITED(status) && WEXITSTATUS(status) != 0);
}

// A SIGBUS outside client memory is a bug of the daemon: it still kills.
TEST_F(ClientFaultTest, SigbusOutsideClientMemoryStillKills) {
  EXPECT_EXIT(
      {
        ASSERT_TRUE(vdev::ClientMemory::InstallFaultGuard().ok());
        int fd = memfd_create("not-client-memory", MFD_CLOEXEC);
        if (fd < 0 || ftruncate(fd, static_cast<off_t>(kPage)) != 0) _exit(3);
        void* m = mmap(nullptr, kPage, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
        if (m == MAP_FAILED || ftruncate(fd, 0) != 0) _exit(4);
        static_cast<volatile uint8_t*>(m)[0] = 1;
        _exit(0);
      },
      DiedOfSigbus, "");
  EXPECT_EXIT(
      {
        ASSERT_TRUE(vdev::ClientMemory::InstallFaultGuard().ok());
        raise(SIGBUS);
        _exit(0);
      },
      DiedOfSigbus, "");
}

}  // namespace
}  // namespace vrdma::driver::testing
