// Issue 12, items 4 and 9: the descriptors a client shares with vrdmad, attacked, and the
// client's view of the daemon's death. Run by tests/integration/client_fds.sh.
//
//   fd_attack flood SECONDS   (under vrdma-run) Finds the daemon's ends of its event
//       channels among its own descriptors (they are in this process: the provider keeps
//       a copy), clears O_NONBLOCK on them and on the doorbell eventfd, shrinks their
//       buffers (a pipe's, should a provider pass pipes, to one page), never reads its
//       async fd or completion channel, keeps a process spliced from each reader end,
//       races the daemon for the doorbell counter, and provokes completion events
//       (flushed receives on an armed CQ) and async events (a QP on an SRQ put into
//       error: last WQE reached) for SECONDS. Exits 0 when the daemon kept answering it.
//   fd_attack refuse DEV FIFO  (speaks the protocol itself) Hands OpenDevice and CreateCq
//       descriptors that are not the daemon's end of a socketpair: a regular file, the
//       named FIFO FIFO, a pipe, a stream socketpair, a socket connected to the daemon's
//       own (named) socket, an O_PATH descriptor of that socket file. Each must be
//       refused with EINVAL; a real socketpair must be accepted.
//   fd_attack death           (under vrdma-run) Arms a CQ, blocks a thread in
//       ibv_get_cq_event and itself in ibv_get_async_event, prints READY, and after the
//       device goes away (daemon killed or stopped, or the vdev deleted) checks what the
//       kernel gives after a disassociation: one IBV_EVENT_DEVICE_FATAL, the blocked
//       reader gets an error, posts fail, ibv_poll_cq < 0, destroys still succeed.
#include <dirent.h>
#include <fcntl.h>
#include <infiniband/verbs.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <thread>
#include <vector>

#include "vdev/protocol/channel.h"

namespace {

int g_failures = 0;

void Check(bool ok, const char* what) {
  std::printf("%s: %s\n", ok ? "ok" : "FAIL", what);
  std::fflush(stdout);
  if (!ok) ++g_failures;
}

double Now() {
  timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return ts.tv_sec + ts.tv_nsec / 1e9;
}

bool UnnamedSeqpacket(int fd) {
  struct stat st {};
  if (fstat(fd, &st) != 0 || !S_ISSOCK(st.st_mode)) return false;
  int type = 0;
  socklen_t len = sizeof type;
  if (getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &len) != 0 || type != SOCK_SEQPACKET) return false;
  sockaddr_un peer{};
  len = sizeof peer;
  return getpeername(fd, reinterpret_cast<sockaddr*>(&peer), &len) == 0 &&
         len == sizeof(sa_family_t);
}

std::vector<int> OwnFds() {
  std::vector<int> out;
  DIR* d = opendir("/proc/self/fd");
  if (!d) return out;
  int self = dirfd(d);
  while (dirent* e = readdir(d)) {
    if (e->d_name[0] == '.') continue;
    int fd = std::atoi(e->d_name);
    if (fd != self) out.push_back(fd);
  }
  closedir(d);
  return out;
}

bool IsEventfd(int fd) {
  char path[64], target[64] = {};
  std::snprintf(path, sizeof path, "/proc/self/fd/%d", fd);
  ssize_t n = readlink(path, target, sizeof target - 1);
  return n > 0 && std::strcmp(target, "anon_inode:[eventfd]") == 0;
}

// A child that splices from the reader end `fd` into something full that nobody reads:
// it sits in the kernel holding whatever lock reading `fd` takes. A pipe's reader spliced
// into a full socket holds the pipe's mutex, which every writer of the pipe needs, even
// with O_NONBLOCK or RWF_NOWAIT: a daemon writing to a pipe slept uninterruptibly (the
// reason event channels are not pipes, vdev/client_fd.h). A socket's is spliced into a
// full pipe.
pid_t SpliceHolder(int fd) {
  pid_t pid = fork();
  if (pid != 0) return pid;
  struct stat st {};
  fstat(fd, &st);
  int sink[2];
  bool to_socket = S_ISFIFO(st.st_mode);
  if ((to_socket ? socketpair(AF_UNIX, SOCK_STREAM, 0, sink) : pipe(sink)) != 0) _exit(1);
  fcntl(sink[1], F_SETFL, O_NONBLOCK);
  char junk[4096] = {};
  while (write(sink[1], junk, sizeof junk) > 0) {
  }
  fcntl(sink[1], F_SETFL, 0);
  for (;;) {
    if (splice(fd, nullptr, sink[1], nullptr, 64, 0) < 0 && errno != EINTR) pause();
  }
}

ibv_context* OpenFirst() {
  int n = 0;
  ibv_device** list = ibv_get_device_list(&n);
  if (!list || n < 1) return nullptr;
  ibv_context* ctx = ibv_open_device(list[0]);
  ibv_free_device_list(list);
  return ctx;
}

ibv_qp* NewRcQp(ibv_pd* pd, ibv_cq* cq, ibv_srq* srq) {
  ibv_qp_init_attr a{};
  a.send_cq = cq;
  a.recv_cq = cq;
  a.srq = srq;
  a.qp_type = IBV_QPT_RC;
  a.cap.max_send_wr = 16;
  a.cap.max_recv_wr = srq ? 0 : 64;
  a.cap.max_send_sge = 1;
  a.cap.max_recv_sge = 1;
  return ibv_create_qp(pd, &a);
}

int ToState(ibv_qp* qp, ibv_qp_state s) {
  ibv_qp_attr a{};
  a.qp_state = s;
  int mask = IBV_QP_STATE;
  if (s == IBV_QPS_INIT) {
    a.pkey_index = 0;
    a.port_num = 1;
    a.qp_access_flags = IBV_ACCESS_LOCAL_WRITE;
    mask |= IBV_QP_PKEY_INDEX | IBV_QP_PORT | IBV_QP_ACCESS_FLAGS;
  }
  return ibv_modify_qp(qp, &a, mask);
}

// ---- flood --------------------------------------------------------------------------------

int Flood(double seconds) {
  ibv_context* ctx = OpenFirst();
  if (!ctx) return std::printf("FAIL: no device\n"), 2;
  ibv_comp_channel* ch = ibv_create_comp_channel(ctx);
  ibv_cq* cq = ch ? ibv_create_cq(ctx, 64, nullptr, ch, 0) : nullptr;
  ibv_cq* cq2 = ibv_create_cq(ctx, 64, nullptr, nullptr, 0);
  ibv_pd* pd = ibv_alloc_pd(ctx);
  ibv_srq_init_attr sa{};
  sa.attr.max_wr = 16;
  sa.attr.max_sge = 1;
  ibv_srq* srq = pd ? ibv_create_srq(pd, &sa) : nullptr;
  ibv_qp* qp = (pd && cq) ? NewRcQp(pd, cq, nullptr) : nullptr;
  ibv_qp* qp_srq = (pd && cq2 && srq) ? NewRcQp(pd, cq2, srq) : nullptr;
  if (!qp || !qp_srq) return std::printf("FAIL: objects: %s\n", std::strerror(errno)), 2;

  // The daemon's ends of our event channels, and the doorbell: the shared descriptions.
  int daemon_ends = 0, eventfds = 0;
  std::vector<int> doorbells;
  for (int fd : OwnFds()) {
    if (fd == ch->fd || fd == ctx->async_fd) continue;
    struct stat st {};
    fstat(fd, &st);
    if (UnnamedSeqpacket(fd)) {
      fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) & ~O_NONBLOCK);
      int one = 1;
      setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &one, sizeof one);
      ++daemon_ends;
    } else if (S_ISFIFO(st.st_mode) && (fcntl(fd, F_GETFL) & O_ACCMODE) == O_WRONLY) {
      // A provider that passes pipes (as before issue 12): the write end it shares with
      // the daemon, blocking and one page deep.
      fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) & ~O_NONBLOCK);
      fcntl(fd, F_SETPIPE_SZ, 4096);
      ++daemon_ends;
    } else if (IsEventfd(fd)) {
      fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) & ~O_NONBLOCK);
      doorbells.push_back(fd);
      ++eventfds;
    }
  }
  for (int fd : {ch->fd, ctx->async_fd}) {
    fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) & ~O_NONBLOCK);
    int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &one, sizeof one);
  }
  std::printf("daemon ends of event channels found: %d, eventfds: %d\n", daemon_ends, eventfds);
  Check(daemon_ends >= 2, "found the daemon's ends of the async and completion channels");
  pid_t holders[2] = {SpliceHolder(ch->fd), SpliceHolder(ctx->async_fd)};

  // Race the daemon for the doorbell counter: a write wakes its epoll, our read empties
  // the counter first, and a blocking read() in the daemon would wait for the next one.
  std::atomic<bool> stop{false};
  std::thread racer([&] {
    while (!stop.load()) {
      for (int fd : doorbells) {
        uint64_t v = 1;
        ssize_t n = write(fd, &v, sizeof v);
        iovec iov{&v, sizeof v};
        n = preadv2(fd, &iov, 1, -1, RWF_NOWAIT);
        (void)n;
      }
      usleep(200);
    }
  });

  if (ToState(qp, IBV_QPS_INIT) || ToState(qp, IBV_QPS_ERR)) Check(false, "qp to error");
  uint64_t arms = 0, completions = 0, async_provoked = 0, post_errors = 0;
  double end = Now() + seconds;
  ibv_wc wc[16];
  while (Now() < end) {
    // An armed CQ and a flushed receive: one completion event the daemon sends us.
    ibv_req_notify_cq(cq, 0);
    ++arms;
    ibv_recv_wr wr{}, *bad;
    wr.wr_id = arms;
    if (ibv_post_recv(qp, &wr, &bad)) ++post_errors;
    for (int spin = 0; spin < 100000; ++spin) {
      int n = ibv_poll_cq(cq, 16, wc);
      if (n < 0) return std::printf("FAIL: poll_cq %d\n", n), 1;
      completions += n;
      if (n) break;
    }
    // A QP on an SRQ entering the error state: IBV_EVENT_QP_LAST_WQE_REACHED.
    if (arms % 8 == 0) {
      if (ToState(qp_srq, IBV_QPS_RESET) == 0 && ToState(qp_srq, IBV_QPS_INIT) == 0 &&
          ToState(qp_srq, IBV_QPS_ERR) == 0) {
        ++async_provoked;
      }
    }
  }
  stop = true;
  racer.join();
  std::printf("flood: %llu arms, %llu completions, %llu async events provoked, %llu post errors\n",
              (unsigned long long)arms, (unsigned long long)completions,
              (unsigned long long)async_provoked, (unsigned long long)post_errors);
  Check(completions > 1000, "the daemon kept completing our work (events provoked > 1000)");
  Check(async_provoked > 100, "the daemon kept answering our requests (async events > 100)");
  for (pid_t h : holders) {
    kill(h, SIGKILL);
    waitpid(h, nullptr, 0);
  }
  ibv_destroy_qp(qp_srq);
  ibv_destroy_qp(qp);
  ibv_destroy_srq(srq);
  ibv_dealloc_pd(pd);
  ibv_destroy_cq(cq2);
  ibv_destroy_cq(cq);
  ibv_destroy_comp_channel(ch);
  ibv_close_device(ctx);
  return g_failures ? 1 : 0;
}

// ---- refuse -------------------------------------------------------------------------------

int Refuse(const char* dev, const char* fifo) {
  using namespace vrdma::proto;
  std::string path = SocketPaths().front();
  int sock = ConnectToSocket(path);
  if (sock < 0) return std::printf("FAIL: connect %s\n", path.c_str()), 2;

  struct Bad {
    const char* what;
    int fd;
  };
  std::vector<Bad> bad;
  char file[] = "/tmp/fd_attack.XXXXXX";
  int reg = mkstemp(file);
  unlink(file);
  bad.push_back({"a regular file", reg});
  bad.push_back({"a named FIFO", open(fifo, O_RDWR | O_NONBLOCK)});
  int p[2];
  if (pipe(p) == 0) bad.push_back({"an anonymous pipe", p[1]});
  int stream[2];
  if (socketpair(AF_UNIX, SOCK_STREAM, 0, stream) == 0)
    bad.push_back({"a stream socketpair", stream[1]});
  // A socket connected to a named listener: here the daemon's own.
  bad.push_back({"a socket connected to a named socket", ConnectToSocket(path)});
  bad.push_back({"an O_PATH descriptor of a socket file", open(path.c_str(), O_PATH)});

  OpenDeviceRequest open_req{};
  std::snprintf(open_req.name, sizeof open_req.name, "%s", dev);
  for (const Bad& b : bad) {
    if (b.fd < 0) {
      Check(false, b.what);
      continue;
    }
    Message reply;
    int err = Call(sock, Op::kOpenDevice, &open_req, sizeof open_req, &b.fd, 1, &reply);
    std::string what = std::string("OpenDevice refuses ") + b.what + " as its async channel";
    Check(err == 0 && reply.header.status == EINVAL, what.c_str());
  }
  int good[2];
  socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, good);
  Message reply;
  int err = Call(sock, Op::kOpenDevice, &open_req, sizeof open_req, &good[1], 1, &reply);
  Check(err == 0 && reply.header.status == 0, "OpenDevice accepts a socketpair");
  if (err || reply.header.status) return 1;
  for (const Bad& b : bad) {
    if (b.fd < 0) continue;
    CreateCqRequest req{16, 1, 0x1234, 0, 0};
    Message r;
    err = Call(sock, Op::kCreateCq, &req, sizeof req, &b.fd, 1, &r);
    std::string what = std::string("CreateCq refuses ") + b.what + " as its completion channel";
    Check(err == 0 && r.header.status == EINVAL, what.c_str());
  }
  int ch[2];
  socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, ch);
  CreateCqRequest req{16, 1, 0x1234, 0, 0};
  Message r;
  err = Call(sock, Op::kCreateCq, &req, sizeof req, &ch[1], 1, &r);
  Check(err == 0 && r.header.status == 0, "CreateCq accepts a socketpair");
  close(sock);
  return g_failures ? 1 : 0;
}

// ---- death --------------------------------------------------------------------------------

int Death() {
  alarm(60);
  ibv_context* ctx = OpenFirst();
  if (!ctx) return std::printf("FAIL: no device\n"), 2;
  ibv_comp_channel* ch = ibv_create_comp_channel(ctx);
  ibv_cq* cq = ch ? ibv_create_cq(ctx, 16, nullptr, ch, 0) : nullptr;
  ibv_pd* pd = ibv_alloc_pd(ctx);
  ibv_qp* qp = (pd && cq) ? NewRcQp(pd, cq, nullptr) : nullptr;
  if (!qp || ToState(qp, IBV_QPS_INIT) || ibv_req_notify_cq(cq, 0)) {
    return std::printf("FAIL: objects: %s\n", std::strerror(errno)), 2;
  }
  std::atomic<int> cq_event_rc{1};
  std::thread reader([&] {
    ibv_cq* ev_cq;
    void* ev_ctx;
    cq_event_rc = ibv_get_cq_event(ch, &ev_cq, &ev_ctx);
  });
  std::printf("READY\n");
  std::fflush(stdout);

  // Events before it (a GID change while an interface leaves) are the device's too.
  ibv_async_event ev{};
  int rc = ibv_get_async_event(ctx, &ev);
  for (int i = 0; i < 16 && rc == 0 && ev.event_type != IBV_EVENT_DEVICE_FATAL; ++i) {
    ibv_ack_async_event(&ev);
    rc = ibv_get_async_event(ctx, &ev);
  }
  double t0 = Now();
  Check(rc == 0 && ev.event_type == IBV_EVENT_DEVICE_FATAL,
        "the async fd delivers IBV_EVENT_DEVICE_FATAL");
  if (rc == 0) ibv_ack_async_event(&ev);
  while (cq_event_rc.load() == 1 && Now() < t0 + 10) usleep(10000);
  Check(cq_event_rc.load() == -1, "a thread blocked in ibv_get_cq_event gets an error");
  if (cq_event_rc.load() == 1) {
    std::printf("(the reader is still blocked)\n");
    std::fflush(stdout);
    _exit(1);
  }
  reader.join();

  ibv_send_wr swr{}, *sbad;
  swr.opcode = IBV_WR_SEND;
  swr.send_flags = IBV_SEND_SIGNALED;
  int post = ibv_post_send(qp, &swr, &sbad);
  std::printf("ibv_post_send: %d\n", post);
  Check(post != 0, "ibv_post_send fails");
  ibv_recv_wr rwr{}, *rbad;
  post = ibv_post_recv(qp, &rwr, &rbad);
  std::printf("ibv_post_recv: %d\n", post);
  Check(post != 0, "ibv_post_recv fails");
  ibv_wc wc;
  int polled = ibv_poll_cq(cq, 1, &wc);
  std::printf("ibv_poll_cq: %d\n", polled);
  Check(polled < 0, "ibv_poll_cq returns a negative value");
  // One DEVICE_FATAL, then the end of the async fd (no second event, no hang).
  pollfd pfd{ctx->async_fd, POLLIN, 0};
  bool readable = poll(&pfd, 1, 5000) == 1;
  Check(readable, "the async fd is at its end after the DEVICE_FATAL");
  if (readable) {
    rc = ibv_get_async_event(ctx, &ev);
    if (rc == 0) {
      std::printf("second async event: %d\n", ev.event_type);
      ibv_ack_async_event(&ev);
    }
    Check(rc != 0, "no second async event (one DEVICE_FATAL, as the kernel gives)");
  }
  Check(ibv_destroy_qp(qp) == 0, "ibv_destroy_qp succeeds on the dead device");
  Check(ibv_dealloc_pd(pd) == 0, "ibv_dealloc_pd succeeds");
  Check(ibv_destroy_cq(cq) == 0, "ibv_destroy_cq succeeds");
  Check(ibv_destroy_comp_channel(ch) == 0, "ibv_destroy_comp_channel succeeds");
  Check(ibv_close_device(ctx) == 0, "ibv_close_device succeeds");
  return g_failures ? 1 : 0;
}

}  // namespace

int main(int argc, char** argv) {
  setvbuf(stdout, nullptr, _IOLBF, 0);
  std::string mode = argc > 1 ? argv[1] : "";
  if (mode == "flood" && argc == 3) return Flood(std::atof(argv[2]));
  if (mode == "refuse" && argc == 4) return Refuse(argv[2], argv[3]);
  if (mode == "death" && argc == 2) return Death();
  std::fprintf(stderr, "usage: fd_attack flood SECONDS | refuse DEV FIFO | death\n");
  return 2;
}
