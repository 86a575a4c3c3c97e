// The daemon's death, seen from the client: as when the kernel disassociates a device
// (ib_uverbs_disassociate_ucontext), within moments of vrdmad going away a thread blocked
// in ibv_get_cq_event gets an error, posts fail, ibv_poll_cq of an empty CQ returns < 0,
// and the async fd delivers one IBV_EVENT_DEVICE_FATAL.
//
// One thread per process, started with the first context, polls every context's socket
// for POLLRDHUP (POLLHUP and POLLERR come regardless) and never for POLLIN, so the
// requests and replies of the application's threads never wake it; an eventfd wakes it to
// pick up contexts opened or closed since. It costs the data path nothing: the data path
// only loads the context's device_fatal flag, which this thread or the daemon sets.
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstdint>
#include <mutex>
#include <new>
#include <utility>
#include <vector>

#include "vdev/provider/provider.h"

namespace vrdma::provider {

namespace {

struct Watched {
  ContextState* st;
  uint64_t id;  // so a context freed and another allocated at its address is not taken for it
};

struct Watcher {
  std::mutex mutex;
  std::vector<Watched> contexts;
  uint64_t next_id = 1;
  int wake_fd = -1;
  pid_t pid = 0;  // the process the thread runs in; after fork() the child has none
};

// Never destroyed: the thread may still run while the process exits.
//
// On pages of its own, not the heap: registering memory moves the registered pages onto a
// memfd (mr_share.cc), and back at deregistration. The remap window (remap_window.h) keeps
// other threads' writes meanwhile, by stopping the writers until the move is done; the
// watcher thread need not be one of them. (Before the window, a write between the copy and
// the remap was lost: ibv_ud_pingpong's 2 KiB buffer, allocated just before the first
// context, shared its heap page with the Watcher, and the watcher thread's first unlock,
// lost that way, left the mutex held by a thread that then waited for it.)
Watcher& W() {
  static Watcher* w = [] {
    void* page =
        mmap(nullptr, sizeof(Watcher), PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    return page == MAP_FAILED ? new Watcher() : new (page) Watcher();
  }();
  return *w;
}

void Wake(Watcher& w) {
  if (w.wake_fd < 0) return;
  uint64_t one = 1;
  ssize_t n = write(w.wake_fd, &one, sizeof one);
  (void)n;
}

void* Run(void* arg) {
  auto* w = static_cast<Watcher*>(arg);
  std::vector<pollfd> fds;
  std::vector<Watched> polled;
  for (;;) {
    int wake_fd;
    {
      std::lock_guard<std::mutex> lock(w->mutex);
      wake_fd = w->wake_fd;
      polled = w->contexts;
    }
    fds.assign(1, pollfd{wake_fd, POLLIN, 0});
    for (const Watched& c : polled) fds.push_back(pollfd{c.st->sock, POLLRDHUP, 0});
    int n = poll(fds.data(), fds.size(), -1);
    if (n < 0) {
      if (errno == EINTR) continue;
      return nullptr;  // cannot happen with valid arguments; stop rather than spin
    }
    if (fds[0].revents & POLLIN) {
      uint64_t v;
      ssize_t r = read(wake_fd, &v, sizeof v);
      (void)r;
    }
    std::lock_guard<std::mutex> lock(w->mutex);
    for (size_t i = 1; i < fds.size(); ++i) {
      if (!(fds[i].revents & (POLLRDHUP | POLLHUP | POLLERR))) continue;
      const Watched& c = polled[i - 1];
      // Still the same context? (It may have been closed while we polled.)
      for (auto it = w->contexts.begin(); it != w->contexts.end(); ++it) {
        if (it->st != c.st || it->id != c.id) continue;
        w->contexts.erase(it);
        c.st->watch_id = 0;
        DisassociateContext(*c.st);
        break;
      }
    }
  }
}

// fork(): the child has no watcher thread, and must not inherit the parent's list (the
// contexts it inherited share their sockets with the parent, whose watcher answers for
// them). The mutex is held across fork so the child's copy is consistent.
void BeforeFork() { W().mutex.lock(); }
void AfterForkParent() { W().mutex.unlock(); }
void AfterForkChild() {
  Watcher& w = W();
  w.contexts.clear();
  if (w.wake_fd >= 0) close(w.wake_fd);
  w.wake_fd = -1;
  w.pid = 0;
  w.mutex.unlock();
}

// Starts the thread in this process if it has none. Called with the mutex held.
bool StartLocked(Watcher& w) {
  static std::once_flag atfork;
  std::call_once(atfork, [] { pthread_atfork(BeforeFork, AfterForkParent, AfterForkChild); });
  if (w.pid == getpid() && w.wake_fd >= 0) return true;
  int efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  if (efd < 0) return false;
  // The thread must not take signals meant for the application's threads.
  sigset_t all, old;
  sigfillset(&all);
  pthread_sigmask(SIG_SETMASK, &all, &old);
  pthread_attr_t attr;
  pthread_attr_init(&attr);
  pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
  pthread_attr_setstacksize(&attr, 64 * 1024);
  pthread_t thread;
  w.wake_fd = efd;
  int err = pthread_create(&thread, &attr, Run, &w);
  pthread_attr_destroy(&attr);
  pthread_sigmask(SIG_SETMASK, &old, nullptr);
  if (err) {
    close(efd);
    w.wake_fd = -1;
    return false;
  }
  pthread_setname_np(thread, "vrdma-watch");
  w.pid = getpid();
  return true;
}

}  // namespace

void WatchContext(ContextState* st) {
  Watcher& w = W();
  std::lock_guard<std::mutex> lock(w.mutex);
  if (!StartLocked(w)) return;  // no thread: requests still fail with EIO once it is gone
  st->watch_id = w.next_id++;
  w.contexts.push_back(Watched{st, st->watch_id});
  Wake(w);
}

void UnwatchContext(ContextState* st) {
  Watcher& w = W();
  std::lock_guard<std::mutex> lock(w.mutex);
  for (auto it = w.contexts.begin(); it != w.contexts.end(); ++it) {
    if (it->st == st) {
      w.contexts.erase(it);
      Wake(w);  // stop polling its socket before the application reuses the number
      break;
    }
  }
  st->watch_id = 0;
}

void DisassociateContext(ContextState& st) {
  std::lock_guard<std::mutex> lock(st.channel_mutex);
  if (st.dead.exchange(true) && st.async_write_fd < 0) return;  // done already
  // One DEVICE_FATAL, as the kernel gives: not if the daemon sent it already (vdev
  // deleted, or stopped with SIGTERM: it sets device_fatal when it does).
  if (!st.shm->device_fatal.value.load(std::memory_order_acquire) && st.async_write_fd >= 0) {
    struct {
      uint64_t element;
      uint32_t event_type;
      uint32_t reserved;
    } record{0, IBV_EVENT_DEVICE_FATAL, 0};  // struct ib_uverbs_async_event_desc
    ssize_t n = send(st.async_write_fd, &record, sizeof record, MSG_DONTWAIT | MSG_NOSIGNAL);
    (void)n;
  }
  st.shm->device_fatal.value.store(1, std::memory_order_release);
  // The daemon's copies of these ends died with it; with ours closed too, a reader gets
  // EOF once it has read what is queued.
  if (st.async_write_fd >= 0) close(st.async_write_fd);
  st.async_write_fd = -1;
  for (auto& [channel, daemon_end] : st.channel_write_fds) {
    if (daemon_end >= 0) close(daemon_end);
    daemon_end = -1;
  }
}

}  // namespace vrdma::provider
