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
#include <fcntl.h>
#include <infiniband/verbs.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cinttypes>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <string>
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

}  // namespace

int main(int argc, char** argv) {
  setvbuf(stdout, nullptr, _IOLBF, 0);
  std::string cmd = argc > 1 ? argv[1] : "";
  if (cmd == "pid-reuse-attacker" && argc == 4) return PidReuseAttacker(argv[2], argv[3]);
  if (cmd == "pid-reuse-victim" && argc == 3) return PidReuseVictim(argv[2]);
  if (cmd == "admin-after-setuid" && argc == 3) return AdminAfterSetuid(argv[2]);
  if (cmd == "fake-dev-zero" && argc == 4) return FakeDevZero(argv[2], argv[3]);
  std::fprintf(stderr,
               "usage: %s pid-reuse-attacker DEV DIR | pid-reuse-victim DIR | "
               "admin-after-setuid DEV | fake-dev-zero DEV FILE\n",
               argv[0]);
  return 2;
}
