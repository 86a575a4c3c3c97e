#include "driver/pcap/pcap_writer.h"

#include <cerrno>
#include <cstring>
#include <ctime>

#include "absl/strings/str_cat.h"

namespace vrdma::driver {
namespace {

constexpr uint32_t kMagicNanoseconds = 0xa1b23c4d;
constexpr uint16_t kVersionMajor = 2;
constexpr uint16_t kVersionMinor = 4;
constexpr uint32_t kLinkTypeEthernet = 1;

// Both headers are written in host byte order; readers detect it from the magic.
struct FileHeader {
  uint32_t magic;
  uint16_t version_major;
  uint16_t version_minor;
  int32_t thiszone;
  uint32_t sigfigs;
  uint32_t snaplen;
  uint32_t linktype;
};
static_assert(sizeof(FileHeader) == 24);

struct RecordHeader {
  uint32_t ts_sec;
  uint32_t ts_nsec;
  uint32_t incl_len;
  uint32_t orig_len;
};
static_assert(sizeof(RecordHeader) == 16);

absl::Status ErrnoError(const std::string& what, const std::string& path) {
  return absl::InternalError(absl::StrCat(what, " ", path, ": ", std::strerror(errno)));
}

}  // namespace

PcapWriter::~PcapWriter() { (void)Close(); }

absl::Status PcapWriter::Open(const std::string& path) {
  if (file_ != nullptr) return absl::FailedPreconditionError("pcap writer already open");
  std::FILE* f = std::fopen(path.c_str(), "wb");
  if (f == nullptr) return ErrnoError("cannot create", path);
  file_ = f;
  path_ = path;
  const FileHeader header{kMagicNanoseconds, kVersionMajor,    kVersionMinor, 0, 0,
                          kSnapLen,          kLinkTypeEthernet};
  absl::Status st = WriteBytes(&header, sizeof(header));
  if (!st.ok()) {
    std::fclose(file_);
    file_ = nullptr;
  }
  return st;
}

absl::Status PcapWriter::Write(const uint8_t* frame, uint32_t len, uint64_t timestamp_ns) {
  if (file_ == nullptr) return absl::FailedPreconditionError("pcap writer not open");
  const uint32_t stored = len < kSnapLen ? len : kSnapLen;
  const RecordHeader record{static_cast<uint32_t>(timestamp_ns / 1'000'000'000),
                            static_cast<uint32_t>(timestamp_ns % 1'000'000'000), stored, len};
  absl::Status st = WriteBytes(&record, sizeof(record));
  if (!st.ok()) return st;
  return WriteBytes(frame, stored);
}

absl::Status PcapWriter::Flush() {
  if (file_ == nullptr) return absl::FailedPreconditionError("pcap writer not open");
  if (std::fflush(file_) != 0) return ErrnoError("cannot write", path_);
  return absl::OkStatus();
}

absl::Status PcapWriter::Close() {
  if (file_ == nullptr) return absl::OkStatus();
  const bool flushed = std::fflush(file_) == 0;
  const bool closed = std::fclose(file_) == 0;
  file_ = nullptr;
  if (!flushed || !closed) return ErrnoError("cannot write", path_);
  return absl::OkStatus();
}

absl::Status PcapWriter::WriteBytes(const void* data, size_t len) {
  if (len != 0 && std::fwrite(data, 1, len, file_) != len) return ErrnoError("cannot write", path_);
  return absl::OkStatus();
}

uint64_t RealtimeNs() {
  timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  return static_cast<uint64_t>(ts.tv_sec) * 1'000'000'000 + static_cast<uint64_t>(ts.tv_nsec);
}

}  // namespace vrdma::driver
