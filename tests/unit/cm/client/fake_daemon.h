// A stand-in for vrdmad's connection manager, for the client's tests: listens on a UNIX
// SOCK_SEQPACKET socket in a directory of its own and answers kCmOpen / kCmCommand as
// protocol.h says, with an event queue per file (one byte on the channel while events
// wait, kCmQueueDrained when a GET_EVENT empties it; MIGRATE_ID moves the id's events).
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <map>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

namespace vrdma::cm_client::testing {

class FakeDaemon {
 public:
  // Listens on `dir`/vrdmad.sock.
  explicit FakeDaemon(const std::string& dir);
  ~FakeDaemon();
  FakeDaemon(const FakeDaemon&) = delete;
  FakeDaemon& operator=(const FakeDaemon&) = delete;

  const std::string& path() const { return path_; }

  struct Command {
    uint64_t file_token;  // of the connection it came on
    uint32_t cmd;
    uint32_t out_len;
    uint64_t peer_token;
    std::vector<uint8_t> in;     // the command struct's bytes
    std::vector<uint8_t> extra;  // what came after them (SET_OPTION's optval)
  };
  std::vector<Command> commands();
  // Waits until `n` commands have arrived; false on timeout.
  bool WaitForCommands(size_t n, std::chrono::milliseconds timeout = std::chrono::seconds(5));

  // Answers every later kCmOpen with this errno.
  void RefuseOpen(int err);
  // Answers every later `cmd` with this errno.
  void Fail(uint32_t cmd, int err);
  // The response bytes of `cmd` (else out_len bytes of a pattern: byte i is cmd + i).
  void SetResponse(uint32_t cmd, std::vector<uint8_t> bytes);
  // Queues an event on the file; the first of a queue sends the channel its byte.
  void QueueEvent(uint64_t file_token, std::vector<uint8_t> event);

  uint64_t last_token();  // the file the last kCmOpen made
  size_t open_files();    // files whose connection is still open
  // Waits until open_files() == n; false on timeout.
  bool WaitForOpenFiles(size_t n, std::chrono::milliseconds timeout = std::chrono::seconds(5));

 private:
  struct File {
    int channel = -1;  // the daemon's end of the channel
    std::deque<std::vector<uint8_t>> events;
  };
  void Run();
  void Serve(int conn);  // one request; closes the connection on error
  void Drop(int conn);

  std::string path_;
  int listener_ = -1;
  int stop_[2] = {-1, -1};
  std::thread thread_;

  std::mutex mutex_;
  std::condition_variable changed_;
  std::map<int, uint64_t> conns_;  // connection -> its file (0 before kCmOpen)
  std::map<uint64_t, File> files_;
  std::vector<Command> commands_;
  std::map<uint32_t, int> fail_;
  std::map<uint32_t, std::vector<uint8_t>> responses_;
  int refuse_open_ = 0;
  uint64_t next_token_ = 0x1000;
  uint64_t last_token_ = 0;
};

}  // namespace vrdma::cm_client::testing
