// Throughput of Crc32Update and of each CRC engine on 4 KiB and 64 KiB buffers.
// Usage: crc_bench [seconds per measurement, default 0.5]
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <vector>

#include "driver/wire/crc32_internal.h"
#include "driver/wire/icrc.h"

namespace {

using CrcFn = uint32_t (*)(uint32_t, const void*, size_t);

double MegabytesPerSecond(CrcFn fn, const std::vector<uint8_t>& buf, double seconds) {
  using Clock = std::chrono::steady_clock;
  uint32_t state = 0xffffffffu;
  uint64_t bytes = 0;
  const auto start = Clock::now();
  const auto stop = start + std::chrono::duration<double>(seconds);
  auto now = start;
  do {
    for (int i = 0; i < 16; ++i) state = fn(state, buf.data(), buf.size());
    bytes += 16 * buf.size();
    now = Clock::now();
  } while (now < stop);
  const double elapsed = std::chrono::duration<double>(now - start).count();
  volatile uint32_t sink = state;  // keep the work
  (void)sink;
  return static_cast<double>(bytes) / elapsed / 1e6;
}

}  // namespace

int main(int argc, char** argv) {
  const double seconds = argc > 1 ? std::atof(argv[1]) : 0.5;
  struct Engine {
    const char* name;
    CrcFn fn;
    bool available;
  };
  const Engine engines[] = {
      {"Crc32Update", &vrdma::driver::wire::Crc32Update, true},
      {"table (slicing-by-8)", &vrdma::driver::wire::internal::Crc32Table, true},
      {"pclmulqdq folding", &vrdma::driver::wire::internal::Crc32Clmul,
       vrdma::driver::wire::internal::CpuHasClmul()},
      {"vpclmulqdq (AVX-512)", &vrdma::driver::wire::internal::Crc32Vpclmul,
       vrdma::driver::wire::internal::CpuHasVpclmul()},
  };
  std::printf("%-22s %12s %12s\n", "engine", "4 KiB MB/s", "64 KiB MB/s");
  for (const Engine& e : engines) {
    if (!e.available) {
      std::printf("%-22s %12s %12s\n", e.name, "n/a", "n/a");
      continue;
    }
    double rate[2];
    int i = 0;
    for (size_t size : {size_t{4096}, size_t{65536}}) {
      std::vector<uint8_t> buf(size);
      for (size_t k = 0; k < size; ++k) buf[k] = static_cast<uint8_t>(k * 131 + 7);
      rate[i++] = MegabytesPerSecond(e.fn, buf, seconds);
    }
    std::printf("%-22s %12.0f %12.0f\n", e.name, rate[0], rate[1]);
  }
  return 0;
}
