// Sampled checksum of model.bin (see checksum.hpp for what it samples and why).
#include "common/checksum.hpp"

#include <algorithm>
#include <cstdio>
#include <cstring>

namespace ne {

namespace {

constexpr uint64_t kP1 = 0x9E3779B185EBCA87ull;  // XXH64's primes
constexpr uint64_t kP2 = 0xC2B2AE3D27D4EB4Full;
constexpr uint64_t kP3 = 0x165667B19E3779F9ull;
constexpr uint64_t kP4 = 0x85EBCA77C2B2AE63ull;
constexpr uint64_t kP5 = 0x27D4EB2F165667C5ull;
constexpr size_t kPage = 4096;
constexpr size_t kSample = 64;

inline uint64_t rotl(uint64_t x, int r) { return (x << r) | (x >> (64 - r)); }
inline uint64_t load64(const uint8_t* p) {
  uint64_t v;
  std::memcpy(&v, p, 8);  // little-endian host (x86-64)
  return v;
}
inline uint64_t round64(uint64_t acc, uint64_t w) { return rotl(acc + w * kP2, 31) * kP1; }
inline uint64_t avalanche(uint64_t h) {
  h ^= h >> 33;
  h *= kP2;
  h ^= h >> 29;
  h *= kP3;
  h ^= h >> 32;
  return h;
}

// Four lanes; a 64-byte block feeds two words to each.
struct State {
  uint64_t acc[4];
  explicit State(uint64_t seed)
      : acc{seed + kP1 + kP2, seed + kP2, seed, seed - kP1} {}
  void block(const uint8_t* p) {
    for (int j = 0; j < 4; ++j) acc[j] = round64(acc[j], load64(p + 8 * j));
    for (int j = 0; j < 4; ++j) acc[j] = round64(acc[j], load64(p + 32 + 8 * j));
  }
  void word(uint64_t w) { acc[0] = round64(acc[0], w); }
  uint64_t finish(uint64_t len) const {
    uint64_t h = rotl(acc[0], 1) + rotl(acc[1], 7) + rotl(acc[2], 12) + rotl(acc[3], 18);
    for (uint64_t a : acc) h = (h ^ round64(0, a)) * kP1 + kP4;
    return avalanche(h + len);
  }
};

}  // namespace

uint64_t hash64(const void* data, size_t n, uint64_t seed) {
  const uint8_t* p = static_cast<const uint8_t*>(data);
  State s(seed);
  size_t i = 0;
  for (; i + 64 <= n; i += 64) s.block(p + i);
  for (; i + 8 <= n; i += 8) s.word(load64(p + i));
  uint64_t last = 0;
  for (size_t k = 0; i + k < n; ++k) last |= uint64_t(p[i + k]) << (8 * k);
  s.word(last ^ (uint64_t(n - i) * kP5));
  return s.finish(n);
}

std::string weight_file_checksum(const uint8_t* data, size_t size) {
  State s(uint64_t(size) * kP3);
  for (size_t p = 0; p < size; p += kPage) {
    size_t n = std::min(kSample, size - p);
    if (n == kSample) s.block(data + p);
    else s.word(hash64(data + p, n, p));
  }
  size_t t = std::min(kSample, size);
  s.word(hash64(data + (size - t), t, size));
  char hex[17];
  std::snprintf(hex, sizeof hex, "%016llx", static_cast<unsigned long long>(s.finish(size)));
  return std::string(kWeightChecksumMethod) + ":" + hex;
}

}  // namespace ne
