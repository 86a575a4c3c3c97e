// A tenant that takes all it can (issue 12, item 8), run under vrdma-run like any verbs
// application. Prints one line per kind: "KIND COUNT ERRNO" (how many it got, and the
// errno of the refusal that stopped it; 0 when it stopped at its own cap).
//
//   hog DEV objects [--hold]   PDs, then CQs, QPs, MRs until each is refused
//   hog DEV contexts N         opens up to N contexts of DEV
//   hog DEV rings CQE N        up to N CQs of CQE entries (their rings)
//   hog DEV qp SEND_WR         one RC QP with SEND_WR send WRs: "qp 1 0" or "qp 0 ERRNO"
//   hog DEV mrs N [--hold]     up to N one-page MRs, each on a page of its own (the daemon's
//                              mappings), then "again": one more after freeing one
//   hog DEV channels N [--hold] up to N CQs on one completion channel (the daemon keeps a
//                              descriptor of it per CQ), then "again" as above
// --hold: after printing, says "holding PID" and keeps everything until killed (SIGTERM).
#include <infiniband/verbs.h>
#include <signal.h>
#include <unistd.h>

#include <cerrno>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

namespace {

constexpr int kCap = 100000;  // never loop forever on a daemon that refuses nothing

ibv_context* Open(const char* name) {
  int n = 0;
  ibv_device** list = ibv_get_device_list(&n);
  ibv_context* ctx = nullptr;
  int err = ENODEV;
  for (int i = 0; list && i < n; ++i) {
    if (std::strcmp(ibv_get_device_name(list[i]), name) == 0) {
      errno = 0;
      ctx = ibv_open_device(list[i]);
      err = errno;
      break;
    }
  }
  if (list) ibv_free_device_list(list);
  errno = ctx ? 0 : (err ? err : EIO);
  return ctx;
}

void Report(const char* kind, size_t count, int err) {
  std::printf("%s %zu %d\n", kind, count, err);
  std::fflush(stdout);
}

void Hold() {
  std::printf("holding %d\n", static_cast<int>(getpid()));
  std::fflush(stdout);
  for (;;) pause();
}

ibv_qp* SmallQp(ibv_pd* pd, ibv_cq* cq, uint32_t send_wr) {
  ibv_qp_init_attr a{};
  a.send_cq = cq;
  a.recv_cq = cq;
  a.qp_type = IBV_QPT_RC;
  a.cap.max_send_wr = send_wr;
  a.cap.max_recv_wr = 1;
  a.cap.max_send_sge = 1;
  a.cap.max_recv_sge = 1;
  return ibv_create_qp(pd, &a);
}

int Objects(ibv_context* ctx, bool hold) {
  std::vector<ibv_pd*> pds;
  std::vector<ibv_cq*> cqs;
  std::vector<ibv_qp*> qps;
  std::vector<ibv_mr*> mrs;
  int err = 0;
  for (errno = 0; pds.size() < kCap; errno = 0) {
    ibv_pd* pd = ibv_alloc_pd(ctx);
    if (!pd) {
      err = errno;
      break;
    }
    pds.push_back(pd);
  }
  Report("pd", pds.size(), err);
  err = 0;
  for (errno = 0; cqs.size() < kCap; errno = 0) {
    ibv_cq* cq = ibv_create_cq(ctx, 1, nullptr, nullptr, 0);
    if (!cq) {
      err = errno;
      break;
    }
    cqs.push_back(cq);
  }
  Report("cq", cqs.size(), err);
  err = 0;
  if (!pds.empty() && !cqs.empty()) {
    for (errno = 0; qps.size() < kCap; errno = 0) {
      ibv_qp* qp = SmallQp(pds[0], cqs[0], 1);
      if (!qp) {
        err = errno;
        break;
      }
      qps.push_back(qp);
    }
  }
  Report("qp", qps.size(), err);
  err = 0;
  static char buf[4096] __attribute__((aligned(4096)));
  if (!pds.empty()) {
    for (errno = 0; mrs.size() < kCap; errno = 0) {
      ibv_mr* mr = ibv_reg_mr(pds[0], buf, sizeof buf, IBV_ACCESS_LOCAL_WRITE);
      if (!mr) {
        err = errno;
        break;
      }
      mrs.push_back(mr);
    }
  }
  Report("mr", mrs.size(), err);
  if (hold) Hold();
  // Freed in order, as a well-behaved program would (the daemon frees the rest on exit).
  for (ibv_mr* mr : mrs) ibv_dereg_mr(mr);
  for (ibv_qp* qp : qps) ibv_destroy_qp(qp);
  for (ibv_cq* cq : cqs) ibv_destroy_cq(cq);
  for (ibv_pd* pd : pds) ibv_dealloc_pd(pd);
  return 0;
}

// Up to `n` objects of `make(i)` (nullptr and errno when refused), reported as
// "KIND COUNT ERRNO"; after a refusal, one freed and one more made ("again ...").
template <typename T, typename Make, typename Free>
std::vector<T*> Flood(const char* kind, size_t n, Make make, Free free) {
  std::vector<T*> got;
  int err = 0;
  for (errno = 0; got.size() < n; errno = 0) {
    T* o = make(got.size());
    if (!o) {
      err = errno;
      break;
    }
    got.push_back(o);
  }
  Report(kind, got.size(), err);
  if (err && !got.empty()) {
    free(got.back());
    got.pop_back();
    errno = 0;
    T* o = make(got.size());
    Report("again", o ? 1 : 0, o ? 0 : errno);
    if (o) got.push_back(o);
  }
  return got;
}

int Mrs(ibv_context* ctx, size_t n, bool hold) {
  ibv_pd* pd = ibv_alloc_pd(ctx);
  if (!pd) {
    Report("setup", 0, errno);
    return 1;
  }
  // Each MR on a page of its own.
  const size_t page = static_cast<size_t>(sysconf(_SC_PAGESIZE));
  std::vector<char> buf((n + 1) * page);
  char* base =
      reinterpret_cast<char*>((reinterpret_cast<uintptr_t>(buf.data()) + page - 1) / page * page);
  std::vector<ibv_mr*> mrs = Flood<ibv_mr>(
      "mrs", n,
      [&](size_t i) { return ibv_reg_mr(pd, base + i * page, page, IBV_ACCESS_LOCAL_WRITE); },
      ibv_dereg_mr);
  if (hold) Hold();
  for (ibv_mr* mr : mrs) ibv_dereg_mr(mr);
  ibv_dealloc_pd(pd);
  return 0;
}

int Channels(ibv_context* ctx, size_t n, bool hold) {
  ibv_comp_channel* channel = ibv_create_comp_channel(ctx);
  if (!channel) {
    Report("setup", 0, errno);
    return 1;
  }
  std::vector<ibv_cq*> cqs = Flood<ibv_cq>(
      "channels", n, [&](size_t) { return ibv_create_cq(ctx, 1, nullptr, channel, 0); },
      ibv_destroy_cq);
  if (hold) Hold();
  for (ibv_cq* cq : cqs) ibv_destroy_cq(cq);
  ibv_destroy_comp_channel(channel);
  return 0;
}

int Usage() {
  std::fprintf(stderr,
               "usage: hog DEV objects [--hold] | hog DEV contexts N | hog DEV rings CQE N | "
               "hog DEV qp SEND_WR | hog DEV mrs N [--hold] | hog DEV channels N [--hold]\n");
  return 2;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 3) return Usage();
  const char* dev = argv[1];
  std::string mode = argv[2];
  if (mode == "contexts") {
    if (argc != 4) return Usage();
    int want = std::atoi(argv[3]);
    std::vector<ibv_context*> ctxs;
    int err = 0;
    while (static_cast<int>(ctxs.size()) < want) {
      ibv_context* c = Open(dev);
      if (!c) {
        err = errno;
        break;
      }
      ctxs.push_back(c);
    }
    Report("contexts", ctxs.size(), err);
    for (ibv_context* c : ctxs) ibv_close_device(c);
    return 0;
  }
  ibv_context* ctx = Open(dev);
  if (!ctx) {
    Report("open", 0, errno);
    return 1;
  }
  if (mode == "objects") return Objects(ctx, argc > 3 && std::strcmp(argv[3], "--hold") == 0);
  if (mode == "mrs" || mode == "channels") {
    if (argc < 4) return Usage();
    const size_t n = std::strtoul(argv[3], nullptr, 10);
    const bool hold = argc > 4 && std::strcmp(argv[4], "--hold") == 0;
    return mode == "mrs" ? Mrs(ctx, n, hold) : Channels(ctx, n, hold);
  }
  if (mode == "rings") {
    if (argc != 5) return Usage();
    int cqe = std::atoi(argv[3]);
    int n = std::atoi(argv[4]);
    std::vector<ibv_cq*> cqs;
    int err = 0;
    while (static_cast<int>(cqs.size()) < n) {
      errno = 0;
      ibv_cq* cq = ibv_create_cq(ctx, cqe, nullptr, nullptr, 0);
      if (!cq) {
        err = errno;
        break;
      }
      cqs.push_back(cq);
    }
    Report("rings", cqs.size(), err);
    // One more after freeing one: the memory came back.
    if (!cqs.empty() && err) {
      ibv_destroy_cq(cqs.back());
      cqs.pop_back();
      errno = 0;
      ibv_cq* cq = ibv_create_cq(ctx, cqe, nullptr, nullptr, 0);
      Report("again", cq ? 1 : 0, cq ? 0 : errno);
      if (cq) cqs.push_back(cq);
    }
    for (ibv_cq* cq : cqs) ibv_destroy_cq(cq);
    ibv_close_device(ctx);
    return 0;
  }
  if (mode == "qp") {
    if (argc != 4) return Usage();
    ibv_pd* pd = ibv_alloc_pd(ctx);
    ibv_cq* cq = pd ? ibv_create_cq(ctx, 1, nullptr, nullptr, 0) : nullptr;
    if (!cq) {
      Report("setup", 0, errno);
      return 1;
    }
    errno = 0;
    ibv_qp* qp = SmallQp(pd, cq, static_cast<uint32_t>(std::atoi(argv[3])));
    Report("qp", qp ? 1 : 0, qp ? 0 : errno);
    if (qp) ibv_destroy_qp(qp);
    ibv_destroy_cq(cq);
    ibv_dealloc_pd(pd);
    ibv_close_device(ctx);
    return 0;
  }
  return Usage();
}
