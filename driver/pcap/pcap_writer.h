// Writes Ethernet frames to a classic libpcap file (LINKTYPE_ETHERNET, nanosecond
// timestamps: magic 0xa1b23c4d), readable by tcpdump, Wireshark and libpcap.
#pragma once

#include <cstdint>
#include <cstdio>
#include <string>

#include "absl/status/status.h"

namespace vrdma::driver {

class PcapWriter {
 public:
  // Largest number of bytes stored per frame; longer frames are cut (the record keeps
  // the original length, as libpcap does).
  static constexpr uint32_t kSnapLen = 65535;

  PcapWriter() = default;
  ~PcapWriter();
  PcapWriter(const PcapWriter&) = delete;
  PcapWriter& operator=(const PcapWriter&) = delete;

  // Creates (or truncates) `path` and writes the file header.
  absl::Status Open(const std::string& path);
  // Appends one frame captured at `timestamp_ns` (nanoseconds since the Unix epoch).
  absl::Status Write(const uint8_t* frame, uint32_t len, uint64_t timestamp_ns);
  absl::Status Flush();
  // Flushes and closes; the writer can then be opened again.
  absl::Status Close();

  bool is_open() const { return file_ != nullptr; }
  const std::string& path() const { return path_; }

 private:
  absl::Status WriteBytes(const void* data, size_t len);

  std::FILE* file_ = nullptr;
  std::string path_;
};

// Nanoseconds since the Unix epoch on CLOCK_REALTIME, the clock capture tools use.
uint64_t RealtimeNs();

}  // namespace vrdma::driver
