// Single-core memcpy throughput per size, the ceiling a copy-based data path could reach
// on this machine: the reference column of tests/bench/vdev_bench.sh's table.
//
// Usage: memcpy_bench [SIZE ...]   (default 8 B to 1 MiB, powers of two)
// Prints "size Gb/s" per line (10^9 bits per second, as perftest --report_gbits and
// iperf3 report). Run it pinned (taskset) to the core the measurement is about.
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <vector>

namespace {

double MeasureGbps(size_t size) {
  // Source and destination each 2 × size rounded up, cycled over 2 halves so that small
  // copies do not run on the same cache line forever, but stay in cache as a NIC's would.
  std::vector<uint8_t> src(2 * size + 64, 1), dst(2 * size + 64, 0);
  auto run = [&](uint64_t n) {
    for (uint64_t i = 0; i < n; ++i) {
      size_t off = (i & 1) * size;
      std::memcpy(dst.data() + off, src.data() + off, size);
      asm volatile("" : : "r"(dst.data()) : "memory");  // keep every copy
    }
  };
  uint64_t n = 16;
  for (;;) {  // grow until a run takes 0.2 s
    auto t0 = std::chrono::steady_clock::now();
    run(n);
    double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    if (s > 0.2) return static_cast<double>(n) * static_cast<double>(size) * 8 / s / 1e9;
    n *= 2;
  }
}

}  // namespace

int main(int argc, char** argv) {
  std::vector<size_t> sizes;
  for (int i = 1; i < argc; ++i) sizes.push_back(std::strtoull(argv[i], nullptr, 0));
  if (sizes.empty()) {
    for (size_t s = 8; s <= (1u << 20); s *= 2) sizes.push_back(s);
  }
  for (size_t s : sizes) std::printf("%zu %.2f\n", s, MeasureGbps(s));
  return 0;
}
