// CRC-32 (IEEE 802.3, the polynomial of the InfiniBand ICRC, IBTA 7.8.1) in its reflected
// form, as raw running state. Three engines: slicing-by-8 tables for any CPU and short
// buffers, PCLMULQDQ folding, and VPCLMULQDQ (AVX-512) folding for long buffers.
#include <immintrin.h>

#include <array>
#include <bit>
#include <cstring>

#include "driver/wire/crc32_internal.h"
#include "driver/wire/icrc.h"

namespace vrdma::driver::wire {
namespace internal {
namespace {

static_assert(std::endian::native == std::endian::little, "CRC engines assume little endian");

constexpr uint32_t kPolyNormal = 0x04C11DB7;     // x^32 + ... + 1 without the x^32 term
constexpr uint32_t kPolyReflected = 0xEDB88320;  // the same, bit-reversed

using Tables = std::array<std::array<uint32_t, 256>, 8>;

// tables[0] advances the state by one byte; tables[k][b] is the contribution of byte b
// followed by k zero bytes, so eight table lookups advance the state by eight bytes.
constexpr Tables MakeTables() {
  Tables t{};
  for (uint32_t b = 0; b < 256; ++b) {
    uint32_t c = b;
    for (int bit = 0; bit < 8; ++bit) c = (c >> 1) ^ ((c & 1) ? kPolyReflected : 0);
    t[0][b] = c;
  }
  for (size_t k = 1; k < 8; ++k) {
    for (uint32_t b = 0; b < 256; ++b) {
      uint32_t prev = t[k - 1][b];
      t[k][b] = (prev >> 8) ^ t[0][prev & 0xff];
    }
  }
  return t;
}

constexpr Tables kTables = MakeTables();

inline uint32_t LoadU32(const uint8_t* p) {
  uint32_t v;
  std::memcpy(&v, p, sizeof(v));
  return v;
}

// x^e mod P(x), normal bit order (bit i is the coefficient of x^i).
constexpr uint32_t XPowModP(int e) {
  uint32_t r = 1;
  for (int i = 0; i < e; ++i) r = (r << 1) ^ ((r & 0x80000000u) ? kPolyNormal : 0);
  return r;
}

constexpr uint32_t Reverse32(uint32_t v) {
  uint32_t r = 0;
  for (int i = 0; i < 32; ++i) r |= ((v >> i) & 1u) << (31 - i);
  return r;
}

// Folding constants. A 16-byte block loaded little-endian holds, in reflected order, a
// polynomial A = H*x^64 + L (H in the low quadword). Moving A forward by `dist` bits
// needs A*x^dist mod P. PCLMULQDQ of two reflected 64-bit operands yields the reflected
// product times x, so H is multiplied by x^(dist+31) mod P and L by x^(dist-33) mod P,
// both written reflected in the low 32 bits of a quadword (the x^32 factor that puts
// them there makes up the rest of the exponent).
constexpr uint64_t FoldForHigh(int dist) { return Reverse32(XPowModP(dist + 31)); }
constexpr uint64_t FoldForLow(int dist) { return Reverse32(XPowModP(dist - 33)); }

constexpr uint64_t kFold512Hi = FoldForHigh(512);
constexpr uint64_t kFold512Lo = FoldForLow(512);
constexpr uint64_t kFold128Hi = FoldForHigh(128);
constexpr uint64_t kFold128Lo = FoldForLow(128);
constexpr uint64_t kFold2048Hi = FoldForHigh(2048);
constexpr uint64_t kFold2048Lo = FoldForLow(2048);

__attribute__((target("pclmul,sse4.1"))) inline __m128i Fold(__m128i acc, __m128i k, __m128i next) {
  __m128i hi = _mm_clmulepi64_si128(acc, k, 0x00);  // acc.low quadword * k.low
  __m128i lo = _mm_clmulepi64_si128(acc, k, 0x11);  // acc.high quadword * k.high
  return _mm_xor_si128(_mm_xor_si128(hi, lo), next);
}

__attribute__((target("pclmul,sse4.1"))) inline __m128i Load128(const uint8_t* p) {
  return _mm_loadu_si128(reinterpret_cast<const __m128i*>(p));
}

#define VRDMA_TARGET_VPCLMUL __attribute__((target("avx512f,avx512bw,vpclmulqdq,pclmul,sse4.1")))

// The same fold on four 128-bit lanes at once (VPCLMULQDQ on 512-bit registers).
VRDMA_TARGET_VPCLMUL inline __m512i Fold4(__m512i acc, __m512i k, __m512i next) {
  __m512i hi = _mm512_clmulepi64_epi128(acc, k, 0x00);
  __m512i lo = _mm512_clmulepi64_epi128(acc, k, 0x11);
  return _mm512_ternarylogic_epi64(hi, lo, next, 0x96);  // hi ^ lo ^ next
}

VRDMA_TARGET_VPCLMUL inline __m512i Load512(const uint8_t* p) {
  return _mm512_loadu_si512(reinterpret_cast<const void*>(p));
}

// The two folding constants in every lane, laid out as in Crc32Clmul's k512/k128.
VRDMA_TARGET_VPCLMUL inline __m512i Broadcast(uint64_t low_qword, uint64_t high_qword) {
  const auto h = static_cast<long long>(high_qword);
  const auto l = static_cast<long long>(low_qword);
  return _mm512_set_epi64(h, l, h, l, h, l, h, l);
}

// Folds the remaining 16-byte blocks into `x`, then reduces: `x` is congruent to the
// whole message so far, so its CRC from state 0 is the running state; the last bytes
// go through the tables.
__attribute__((target("pclmul,sse4.1"))) inline uint32_t FinishFold(__m128i x, __m128i k128,
                                                                    const uint8_t* p, size_t len) {
  while (len >= 16) {
    x = Fold(x, k128, Load128(p));
    p += 16;
    len -= 16;
  }
  alignas(16) uint8_t rest[16];
  _mm_store_si128(reinterpret_cast<__m128i*>(rest), x);
  return Crc32Table(Crc32Table(0, rest, sizeof(rest)), p, len);
}

}  // namespace

uint32_t Crc32Table(uint32_t state, const void* data, size_t len) {
  const auto* p = static_cast<const uint8_t*>(data);
  uint32_t crc = state;
  const auto& t = kTables;
  while (len >= 8) {
    uint32_t a = LoadU32(p) ^ crc;
    uint32_t b = LoadU32(p + 4);
    crc = t[7][a & 0xff] ^ t[6][(a >> 8) & 0xff] ^ t[5][(a >> 16) & 0xff] ^ t[4][a >> 24] ^
          t[3][b & 0xff] ^ t[2][(b >> 8) & 0xff] ^ t[1][(b >> 16) & 0xff] ^ t[0][b >> 24];
    p += 8;
    len -= 8;
  }
  while (len-- > 0) crc = (crc >> 8) ^ t[0][(crc ^ *p++) & 0xff];
  return crc;
}

__attribute__((target("pclmul,sse4.1"))) uint32_t Crc32Clmul(uint32_t state, const void* data,
                                                             size_t len) {
  const auto* p = static_cast<const uint8_t*>(data);
  if (len < 64) return Crc32Table(state, p, len);

  // The running state enters as the first 32 bits of the message (CRC linearity).
  __m128i x0 = _mm_xor_si128(Load128(p), _mm_cvtsi32_si128(static_cast<int>(state)));
  __m128i x1 = Load128(p + 16);
  __m128i x2 = Load128(p + 32);
  __m128i x3 = Load128(p + 48);
  p += 64;
  len -= 64;

  const __m128i k512 =
      _mm_set_epi64x(static_cast<long long>(kFold512Lo), static_cast<long long>(kFold512Hi));
  while (len >= 64) {  // four independent lanes, each folded 512 bits forward
    x0 = Fold(x0, k512, Load128(p));
    x1 = Fold(x1, k512, Load128(p + 16));
    x2 = Fold(x2, k512, Load128(p + 32));
    x3 = Fold(x3, k512, Load128(p + 48));
    p += 64;
    len -= 64;
  }

  const __m128i k128 =
      _mm_set_epi64x(static_cast<long long>(kFold128Lo), static_cast<long long>(kFold128Hi));
  x1 = Fold(x0, k128, x1);
  x2 = Fold(x1, k128, x2);
  x3 = Fold(x2, k128, x3);
  return FinishFold(x3, k128, p, len);
}

VRDMA_TARGET_VPCLMUL uint32_t Crc32Vpclmul(uint32_t state, const void* data, size_t len) {
  const auto* p = static_cast<const uint8_t*>(data);
  if (len < kVpclmulMinLen) return Crc32Clmul(state, p, len);

  // Four 512-bit accumulators over 256-byte blocks; the state enters as the first 32
  // bits of the message, as in Crc32Clmul.
  __m512i z0 = _mm512_xor_si512(
      Load512(p),
      _mm512_inserti32x4(_mm512_setzero_si512(), _mm_cvtsi32_si128(static_cast<int>(state)), 0));
  __m512i z1 = Load512(p + 64);
  __m512i z2 = Load512(p + 128);
  __m512i z3 = Load512(p + 192);
  p += 256;
  len -= 256;
  const __m512i k2048 = Broadcast(kFold2048Hi, kFold2048Lo);
  while (len >= 256) {  // each 128-bit lane folded 2048 bits forward
    z0 = Fold4(z0, k2048, Load512(p));
    z1 = Fold4(z1, k2048, Load512(p + 64));
    z2 = Fold4(z2, k2048, Load512(p + 128));
    z3 = Fold4(z3, k2048, Load512(p + 192));
    p += 256;
    len -= 256;
  }
  // z1 lies 512 bits after z0, lane for lane: fold the accumulators into one.
  const __m512i k512 = Broadcast(kFold512Hi, kFold512Lo);
  z1 = Fold4(z0, k512, z1);
  z2 = Fold4(z1, k512, z2);
  z3 = Fold4(z2, k512, z3);
  // Then its four lanes, 128 bits apart, into one, and on as Crc32Clmul does.
  const __m128i k128 =
      _mm_set_epi64x(static_cast<long long>(kFold128Lo), static_cast<long long>(kFold128Hi));
  // (The maskz forms: GCC 12 warns about the undefined pass-through of the plain ones.)
  __m128i x = _mm512_maskz_extracti32x4_epi32(0xf, z3, 0);
  x = Fold(x, k128, _mm512_maskz_extracti32x4_epi32(0xf, z3, 1));
  x = Fold(x, k128, _mm512_maskz_extracti32x4_epi32(0xf, z3, 2));
  x = Fold(x, k128, _mm512_maskz_extracti32x4_epi32(0xf, z3, 3));
  return FinishFold(x, k128, p, len);
}

bool CpuHasVpclmul() {
  static const bool has = [] {
    __builtin_cpu_init();
    return CpuHasClmul() && __builtin_cpu_supports("avx512f") &&
           __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("vpclmulqdq");
  }();
  return has;
}

bool CpuHasClmul() {
  static const bool has = [] {
    __builtin_cpu_init();
    return __builtin_cpu_supports("pclmul") && __builtin_cpu_supports("sse4.1");
  }();
  return has;
}

}  // namespace internal

uint32_t Crc32Update(uint32_t state, const void* data, size_t len) {
  if (len >= internal::kVpclmulMinLen && internal::CpuHasVpclmul()) {
    return internal::Crc32Vpclmul(state, data, len);
  }
  if (len >= internal::kClmulMinLen && internal::CpuHasClmul()) {
    return internal::Crc32Clmul(state, data, len);
  }
  return internal::Crc32Table(state, data, len);
}

}  // namespace vrdma::driver::wire
