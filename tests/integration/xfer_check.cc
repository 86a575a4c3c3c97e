// xfer_check: a two-process RC data checker for a peer that is not vrdma (rdma_rxe in a
// QEMU guest) or another host. Plain libibverbs, so it runs on any provider. The client
// RDMA-WRITEs a pattern into the server's buffer, RDMA-READs the server's pattern back
// and checks it, runs FETCH_AND_ADDs and CMP_AND_SWAPs on the server's words checking
// every original value returned, then SENDs a message; the server checks the written
// bytes, the final atomic words and the message, and tells the client over TCP. Both
// print "xfer_check OK" only if every byte and value was right.
//
//   xfer_check -d DEV -g GID_INDEX [-p PORT] [-m MTU] [-s SIZE] [-o OFF] [-w 1|2] (server)
//   xfer_check -d DEV -g GID_INDEX [-p PORT] [-m MTU] [-s SIZE] [-o OFF] [-w 1|2] SERVER_IP
//   (client)
//
// -o: the buffer starts OFF bytes (a multiple of 8) into a page, so that packets' data
// cross page boundaries (default 0: page-aligned).
// -w: (both sides) the server opens its buffer through a memory window of that type, bound
// once the QPs are connected (type 1 by ibv_bind_mw, type 2 by a BIND_MW work request), and
// the client reaches it only through the window's rkey. The closing message closes the
// window: for type 2 the client's SEND with Invalidate (the server checks the key it
// reports), for type 1 the server's bind of length 0.
#include <arpa/inet.h>
#include <infiniband/verbs.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

namespace {

struct Endpoint {
  uint32_t qpn;
  uint32_t psn;
  uint8_t gid[16];
  uint32_t rkey;
  uint64_t addr;
};

constexpr uint64_t kCounterStart = 0x1000;
constexpr uint64_t kSwapOld = 0x1111222233334444ull;
constexpr uint64_t kSwapNew = 0x5555666677778888ull;
constexpr int kAdds = 10;
constexpr char kMessage[] = "xfer_check send payload";

uint8_t Pattern(size_t i, uint8_t seed) {
  return static_cast<uint8_t>((i * 7 + 13) ^ seed ^ (i >> 8));
}

[[noreturn]] void Die(const char* what) {
  std::fprintf(stderr, "xfer_check: %s (%s)\n", what, std::strerror(errno));
  std::exit(1);
}

bool FullIo(int fd, void* buf, size_t n, bool write_it) {
  auto* p = static_cast<uint8_t*>(buf);
  while (n) {
    ssize_t r = write_it ? write(fd, p, n) : read(fd, p, n);
    if (r <= 0) return false;
    p += r;
    n -= static_cast<size_t>(r);
  }
  return true;
}

ibv_wc WaitCompletion(ibv_cq* cq) {
  ibv_wc wc{};
  for (long spins = 0;; ++spins) {
    int n = ibv_poll_cq(cq, 1, &wc);
    if (n < 0) Die("ibv_poll_cq");
    if (n == 1) break;
    if (spins > 2000000) usleep(50);
    if (spins > 2000000 + 20 * 60 * 1000) {  // about a minute of 50 us sleeps
      std::fprintf(stderr, "xfer_check: no completion\n");
      std::exit(1);
    }
  }
  if (wc.status != IBV_WC_SUCCESS) {
    std::fprintf(stderr, "xfer_check: wr_id %llu failed: %s\n",
                 static_cast<unsigned long long>(wc.wr_id), ibv_wc_status_str(wc.status));
    std::exit(1);
  }
  return wc;
}

void Post(ibv_qp* qp, ibv_send_wr* wr) {
  ibv_send_wr* bad = nullptr;
  if (ibv_post_send(qp, wr, &bad)) Die("ibv_post_send");
}

// One atomic on the peer's word at `addr`; the original value lands in `sge`.
void RunAtomic(ibv_qp* qp, ibv_cq* cq, ibv_sge* sge, ibv_wr_opcode op, uint64_t addr, uint32_t rkey,
               uint64_t compare_add, uint64_t swap) {
  ibv_send_wr at{};
  at.wr_id = op;
  at.sg_list = sge;
  at.num_sge = 1;
  at.opcode = op;
  at.send_flags = IBV_SEND_SIGNALED;
  at.wr.atomic.remote_addr = addr;
  at.wr.atomic.rkey = rkey;
  at.wr.atomic.compare_add = compare_add;
  at.wr.atomic.swap = swap;
  Post(qp, &at);
  WaitCompletion(cq);
}

}  // namespace

int main(int argc, char** argv) {
  std::string dev_name, server;
  int gid_index = 0, port = 18515, mtu = 1024;
  size_t size = 1 << 20;
  size_t page_offset = 0;
  int mw_type = 0;
  int opt;
  while ((opt = getopt(argc, argv, "d:g:p:m:s:o:w:")) != -1) {
    switch (opt) {
      case 'd':
        dev_name = optarg;
        break;
      case 'g':
        gid_index = std::atoi(optarg);
        break;
      case 'p':
        port = std::atoi(optarg);
        break;
      case 'm':
        mtu = std::atoi(optarg);
        break;
      case 's':
        size = std::strtoull(optarg, nullptr, 0);
        break;
      case 'o':
        page_offset = std::strtoull(optarg, nullptr, 0);
        break;
      case 'w':
        mw_type = std::atoi(optarg);
        if (mw_type != 1 && mw_type != 2) Die("-w takes 1 or 2");
        break;
      default:
        std::fprintf(stderr,
                     "usage: xfer_check -d DEV -g GID [-p PORT] [-m MTU] [-s SIZE] [-o OFF] "
                     "[-w 1|2] [SERVER]\n");
        return 2;
    }
  }
  if (optind < argc) server = argv[optind];
  bool is_server = server.empty();
  ibv_mtu path_mtu = mtu >= 4096   ? IBV_MTU_4096
                     : mtu >= 2048 ? IBV_MTU_2048
                     : mtu >= 1024 ? IBV_MTU_1024
                                   : IBV_MTU_512;

  int num = 0;
  ibv_device** list = ibv_get_device_list(&num);
  ibv_context* ctx = nullptr;
  for (int i = 0; list && i < num; ++i) {
    if (dev_name.empty() || dev_name == ibv_get_device_name(list[i])) {
      ctx = ibv_open_device(list[i]);
      break;
    }
  }
  if (!ctx) Die("no such device");
  ibv_pd* pd = ibv_alloc_pd(ctx);
  ibv_cq* cq = ibv_create_cq(ctx, 64, nullptr, nullptr, 0);
  if (!pd || !cq) Die("pd/cq");
  // Layout: [0, size) written by the client; [size, 2 size) read by the client; then
  // the fetch-add word, the compare-swap word, and the SEND's buffer.
  size_t bytes = 2 * size + 16 + sizeof kMessage;
  if (page_offset % 8 != 0 || page_offset >= 4096) Die("-o must be a multiple of 8 below 4096");
  void* mem = nullptr;
  if (posix_memalign(&mem, 4096, bytes + page_offset) != 0) Die("posix_memalign");
  std::memset(mem, 0, bytes + page_offset);
  uint8_t* base = static_cast<uint8_t*>(mem) + page_offset;
  uint8_t* target = base;
  uint8_t* source = target + size;
  auto* counter = reinterpret_cast<uint64_t*>(source + size);
  auto* swap_word = counter + 1;
  uint8_t* msg = reinterpret_cast<uint8_t*>(swap_word + 1);
  if (is_server) {
    for (size_t i = 0; i < size; ++i) source[i] = Pattern(i, 0xa5);
    *counter = kCounterStart;
    *swap_word = kSwapOld;
  }
  constexpr int kRemote =
      IBV_ACCESS_REMOTE_WRITE | IBV_ACCESS_REMOTE_READ | IBV_ACCESS_REMOTE_ATOMIC;
  ibv_mr* mr = ibv_reg_mr(pd, base, bytes,
                          IBV_ACCESS_LOCAL_WRITE | kRemote | (mw_type ? IBV_ACCESS_MW_BIND : 0));
  if (!mr) Die("ibv_reg_mr");
  ibv_qp_init_attr init{};
  init.send_cq = cq;
  init.recv_cq = cq;
  init.qp_type = IBV_QPT_RC;
  init.cap.max_send_wr = 32;
  init.cap.max_recv_wr = 4;
  init.cap.max_send_sge = 1;
  init.cap.max_recv_sge = 1;
  ibv_qp* qp = ibv_create_qp(pd, &init);
  if (!qp) Die("ibv_create_qp");

  Endpoint me{};
  me.qpn = qp->qp_num;
  me.psn = (getpid() * 2654435761u) & 0xffffff;
  ibv_gid gid;
  if (ibv_query_gid(ctx, 1, gid_index, &gid)) Die("ibv_query_gid");
  std::memcpy(me.gid, gid.raw, 16);
  me.rkey = mr->rkey;
  me.addr = reinterpret_cast<uintptr_t>(base);

  // The TCP exchange of QP number, PSN, GID, rkey and address.
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in sa{};
  sa.sin_family = AF_INET;
  sa.sin_port = htons(static_cast<uint16_t>(port));
  if (is_server) {
    int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (bind(fd, reinterpret_cast<sockaddr*>(&sa), sizeof sa) || listen(fd, 1)) Die("listen");
    int c = accept(fd, nullptr, nullptr);
    close(fd);
    fd = c;
  } else {
    inet_pton(AF_INET, server.c_str(), &sa.sin_addr);
    if (connect(fd, reinterpret_cast<sockaddr*>(&sa), sizeof sa)) Die("Couldn't connect to server");
  }
  Endpoint peer{};
  if (!FullIo(fd, &me, sizeof me, true) || !FullIo(fd, &peer, sizeof peer, false)) Die("exchange");

  ibv_qp_attr a{};
  a.qp_state = IBV_QPS_INIT;
  a.port_num = 1;
  a.qp_access_flags = IBV_ACCESS_REMOTE_WRITE | IBV_ACCESS_REMOTE_READ | IBV_ACCESS_REMOTE_ATOMIC;
  if (ibv_modify_qp(qp, &a, IBV_QP_STATE | IBV_QP_PKEY_INDEX | IBV_QP_PORT | IBV_QP_ACCESS_FLAGS))
    Die("INIT");
  // The server's receive for the closing SEND is posted before it says it is ready.
  ibv_sge rsge{reinterpret_cast<uintptr_t>(msg), sizeof kMessage, mr->lkey};
  ibv_recv_wr rwr{};
  rwr.wr_id = 100;
  rwr.sg_list = &rsge;
  rwr.num_sge = 1;
  ibv_recv_wr* rbad = nullptr;
  if (is_server && ibv_post_recv(qp, &rwr, &rbad)) Die("ibv_post_recv");
  a = {};
  a.qp_state = IBV_QPS_RTR;
  a.path_mtu = path_mtu;
  a.dest_qp_num = peer.qpn;
  a.rq_psn = peer.psn;
  a.max_dest_rd_atomic = 16;
  a.min_rnr_timer = 12;
  a.ah_attr.is_global = 1;
  a.ah_attr.port_num = 1;
  std::memcpy(a.ah_attr.grh.dgid.raw, peer.gid, 16);
  a.ah_attr.grh.sgid_index = static_cast<uint8_t>(gid_index);
  a.ah_attr.grh.hop_limit = 64;
  if (ibv_modify_qp(qp, &a,
                    IBV_QP_STATE | IBV_QP_AV | IBV_QP_PATH_MTU | IBV_QP_DEST_QPN | IBV_QP_RQ_PSN |
                        IBV_QP_MAX_DEST_RD_ATOMIC | IBV_QP_MIN_RNR_TIMER))
    Die("RTR");
  a = {};
  a.qp_state = IBV_QPS_RTS;
  a.sq_psn = me.psn;
  a.timeout = 14;
  a.retry_cnt = 7;
  a.rnr_retry = 7;
  a.max_rd_atomic = 16;
  if (ibv_modify_qp(qp, &a,
                    IBV_QP_STATE | IBV_QP_SQ_PSN | IBV_QP_TIMEOUT | IBV_QP_RETRY_CNT |
                        IBV_QP_RNR_RETRY | IBV_QP_MAX_QP_RD_ATOMIC))
    Die("RTS");
  char ready = 'R';
  if (!FullIo(fd, &ready, 1, true) || !FullIo(fd, &ready, 1, false)) Die("sync");
  // -w: the server binds its window now (its QP can send) and tells the client its key.
  ibv_mw* mw = nullptr;
  if (mw_type && is_server) {
    mw = ibv_alloc_mw(pd, mw_type == 1 ? IBV_MW_TYPE_1 : IBV_MW_TYPE_2);
    if (!mw) Die("ibv_alloc_mw");
    ibv_mw_bind_info info{mr, reinterpret_cast<uintptr_t>(base), bytes, kRemote};
    if (mw_type == 1) {
      ibv_mw_bind bind{};
      bind.wr_id = 200;
      bind.send_flags = IBV_SEND_SIGNALED;
      bind.bind_info = info;
      if (ibv_bind_mw(qp, mw, &bind)) Die("ibv_bind_mw");
    } else {
      ibv_send_wr bwr{};
      bwr.wr_id = 200;
      bwr.opcode = IBV_WR_BIND_MW;
      bwr.send_flags = IBV_SEND_SIGNALED;
      bwr.bind_mw = {mw, ibv_inc_rkey(mw->rkey), info};
      Post(qp, &bwr);
      mw->rkey = bwr.bind_mw.rkey;
    }
    ibv_wc bwc = WaitCompletion(cq);
    if (bwc.opcode != IBV_WC_BIND_MW || bwc.wr_id != 200) Die("bind completion");
    if (mw->rkey == mr->rkey) Die("window key equals the MR's");
    me.rkey = mw->rkey;
  }
  if (mw_type && !FullIo(fd, is_server ? &me.rkey : &peer.rkey, sizeof me.rkey, is_server)) {
    Die("window key");
  }

  int errors = 0;
  if (is_server) {
    ibv_wc wc = WaitCompletion(cq);  // the client's SEND, after its WRITE and atomics
    if (wc.byte_len != sizeof kMessage || std::memcmp(msg, kMessage, sizeof kMessage) != 0) {
      std::printf("send payload wrong (%u bytes)\n", wc.byte_len);
      ++errors;
    }
    // rxe (Debian's 6.1) writes the kernel's flag values into a user CQ: its
    // IB_WC_WITH_INVALIDATE (1 << 2) reads as IBV_WC_IP_CSUM_OK. Taken as what it means; the
    // client's last write shows whether the window really closed.
    constexpr unsigned kKernelWithInvalidate = 1u << 2;
    const bool with_inv = wc.wc_flags & (IBV_WC_WITH_INV | kKernelWithInvalidate);
    if (mw_type == 2 && (!with_inv || wc.invalidated_rkey != mw->rkey)) {
      std::printf(
          "the SEND did not invalidate the window (flags 0x%x, key 0x%x, the window's 0x%x)\n",
          wc.wc_flags, wc.invalidated_rkey, mw->rkey);
      ++errors;
    }
    if (mw_type == 1) {  // unbound: a bind of length 0
      ibv_mw_bind unbind{};
      unbind.wr_id = 201;
      unbind.send_flags = IBV_SEND_SIGNALED;
      unbind.bind_info = {mr, 0, 0, 0};
      if (ibv_bind_mw(qp, mw, &unbind)) Die("ibv_bind_mw (unbind)");
      WaitCompletion(cq);
    }
    for (size_t i = 0; i < size; ++i) {
      if (target[i] != Pattern(i, 0x3c)) {
        std::printf("written byte %zu is 0x%02x, not 0x%02x\n", i, target[i], Pattern(i, 0x3c));
        ++errors;
        break;
      }
    }
    uint64_t want = kCounterStart + kAdds * (kAdds + 1) / 2;
    if (*counter != want) {
      std::printf("fetch-add word 0x%llx, not 0x%llx\n", static_cast<unsigned long long>(*counter),
                  static_cast<unsigned long long>(want));
      ++errors;
    }
    if (*swap_word != kSwapNew) {
      std::printf("compare-swap word 0x%llx, not 0x%llx\n",
                  static_cast<unsigned long long>(*swap_word),
                  static_cast<unsigned long long>(kSwapNew));
      ++errors;
    }
    char verdict = errors ? 'F' : 'K';
    FullIo(fd, &verdict, 1, true);
    // -w: the client's write through the closed window must fail; the QP lives until then.
    if (mw_type && (!FullIo(fd, &verdict, 1, false) || verdict != 'C')) {
      std::printf("the window still took a write after it was closed\n");
      ++errors;
    }
    if (!errors) {
      std::printf(
          "xfer_check OK: server saw %zu written bytes, %d fetch-adds, compare-swap, send%s\n",
          size, kAdds,
          mw_type == 1   ? ", all through a type 1 window, unbound after"
          : mw_type == 2 ? ", all through a type 2 window the send invalidated"
                         : "");
    }
  } else {
    for (size_t i = 0; i < size; ++i) target[i] = Pattern(i, 0x3c);
    ibv_sge sge{reinterpret_cast<uintptr_t>(target), static_cast<uint32_t>(size), mr->lkey};
    ibv_send_wr wr{};
    wr.wr_id = 1;
    wr.sg_list = &sge;
    wr.num_sge = 1;
    wr.opcode = IBV_WR_RDMA_WRITE;
    wr.send_flags = IBV_SEND_SIGNALED;
    wr.wr.rdma.remote_addr = peer.addr;
    wr.wr.rdma.rkey = peer.rkey;
    Post(qp, &wr);
    WaitCompletion(cq);
    // READ the server's pattern into our (unused) second half.
    std::memset(source, 0, size);
    sge.addr = reinterpret_cast<uintptr_t>(source);
    wr.wr_id = 2;
    wr.opcode = IBV_WR_RDMA_READ;
    wr.wr.rdma.remote_addr = peer.addr + size;
    Post(qp, &wr);
    WaitCompletion(cq);
    for (size_t i = 0; i < size; ++i) {
      if (source[i] != Pattern(i, 0xa5)) {
        std::printf("read byte %zu is 0x%02x, not 0x%02x\n", i, source[i], Pattern(i, 0xa5));
        ++errors;
        break;
      }
    }
    // Atomics return the original value into our 8-byte word.
    uint64_t expect = kCounterStart;
    ibv_sge asge{reinterpret_cast<uintptr_t>(counter), 8, mr->lkey};
    for (int k = 1; k <= kAdds; ++k) {
      RunAtomic(qp, cq, &asge, IBV_WR_ATOMIC_FETCH_AND_ADD, peer.addr + 2 * size, peer.rkey,
                static_cast<uint64_t>(k), 0);
      if (*counter != expect) {
        std::printf("fetch-add %d returned 0x%llx, not 0x%llx\n", k,
                    static_cast<unsigned long long>(*counter),
                    static_cast<unsigned long long>(expect));
        ++errors;
      }
      expect += static_cast<uint64_t>(k);
    }
    // A compare that matches swaps; one that does not leaves the word and returns it.
    for (int k = 0; k < 2; ++k) {
      RunAtomic(qp, cq, &asge, IBV_WR_ATOMIC_CMP_AND_SWP, peer.addr + 2 * size + 8, peer.rkey,
                k == 0 ? kSwapOld : 0xdead, k == 0 ? kSwapNew : 0xbeef);
      uint64_t want = k == 0 ? kSwapOld : kSwapNew;
      if (*counter != want) {
        std::printf("compare-swap %d returned 0x%llx, not 0x%llx\n", k,
                    static_cast<unsigned long long>(*counter),
                    static_cast<unsigned long long>(want));
        ++errors;
      }
    }
    std::memcpy(msg, kMessage, sizeof kMessage);
    ibv_sge ssge{reinterpret_cast<uintptr_t>(msg), sizeof kMessage, mr->lkey};
    wr = {};
    wr.wr_id = 40;
    wr.sg_list = &ssge;
    wr.num_sge = 1;
    wr.opcode = IBV_WR_SEND;
    if (mw_type == 2) {  // the message closes the server's window
      wr.opcode = IBV_WR_SEND_WITH_INV;
      wr.invalidate_rkey = peer.rkey;
    }
    wr.send_flags = IBV_SEND_SIGNALED;
    Post(qp, &wr);
    WaitCompletion(cq);
    char verdict = 0;
    if (!FullIo(fd, &verdict, 1, false) || verdict != 'K') {
      std::printf("the server found the data wrong\n");
      ++errors;
    }
    if (mw_type) {
      // The window is closed now (invalidated by our SEND, or unbound by the server before
      // its verdict): a write through its key is a Remote Access Error.
      ibv_sge one{reinterpret_cast<uintptr_t>(target), 8, mr->lkey};
      ibv_send_wr late{};
      late.wr_id = 41;
      late.sg_list = &one;
      late.num_sge = 1;
      late.opcode = IBV_WR_RDMA_WRITE;
      late.send_flags = IBV_SEND_SIGNALED;
      late.wr.rdma.remote_addr = peer.addr;
      late.wr.rdma.rkey = peer.rkey;
      Post(qp, &late);
      ibv_wc lwc{};
      for (int i = 0; i < 10000000 && ibv_poll_cq(cq, 1, &lwc) == 0; ++i) {
        if (i > 100000) usleep(10);
      }
      const bool closed = lwc.wr_id == 41 && lwc.status == IBV_WC_REM_ACCESS_ERR;
      if (!closed) {
        std::printf("a write through the closed window: %s\n", ibv_wc_status_str(lwc.status));
        ++errors;
      }
      char c = closed ? 'C' : 'O';
      FullIo(fd, &c, 1, true);
    }
    if (!errors) {
      std::printf(
          "xfer_check OK: client wrote %zu bytes, read %zu bytes back right, %d fetch-adds and "
          "2 compare-swaps returned the right values, send delivered%s\n",
          size, size, kAdds, mw_type ? ", the closed window refused a write" : "");
    }
  }
  close(fd);
  if (mw) ibv_dealloc_mw(mw);
  ibv_destroy_qp(qp);
  ibv_dereg_mr(mr);
  ibv_destroy_cq(cq);
  ibv_dealloc_pd(pd);
  ibv_close_device(ctx);
  ibv_free_device_list(list);
  return errors ? 1 : 0;
}
