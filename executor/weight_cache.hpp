// Packed weights (sparse blocks, oneDNN-reordered dense weights) built once and shared.
//
// With WEIGHT_SHARING=1 each packed buffer lives in a cache file under NE_CACHE_DIR (default
// /dev/shm/neural_engine; both read in executor/env.cpp), named by a hash of the source weight and the packing; every process
// maps it read-only (MAP_SHARED), so N instances hold one physical copy. A builder writes to a
// private temp file (name carries its pid), then publishes it with an atomic rename: a process
// killed while packing leaves only a temp file, which later starts ignore and remove. Each file
// carries a header (magic, version, key, payload size, checksum); a stale or corrupt file is
// detected and rebuilt. Without WEIGHT_SHARING the buffer is private, aligned memory, shared
// within the process by key while any reader holds it (one weight read by several operators,
// e.g. ALBERT's shared layer, is packed once).
#pragma once
#include <cstdint>
#include <functional>
#include <memory>
#include <string>

namespace ne {

class PackedBuffer {
 public:
  virtual ~PackedBuffer() = default;
  const uint8_t* data() const { return data_; }
  size_t size() const { return size_; }
  bool shared() const { return shared_; }
  const std::string& path() const { return path_; }  // cache file ("" if private)

 protected:
  const uint8_t* data_ = nullptr;  // 64-byte aligned
  size_t size_ = 0;
  bool shared_ = false;
  std::string path_;
};

// 64-bit content hash (for keys).
uint64_t hash_bytes(const void* p, size_t n, uint64_t seed = 0x9E3779B97F4A7C15ull);
std::string hex64(uint64_t v);

// `key` names the packing uniquely (e.g. "ip:<hash of weight bytes>:<format>"); `size` is the
// payload size; `build(dst)` fills exactly `size` bytes at dst (64-byte aligned).
std::shared_ptr<const PackedBuffer> get_packed(const std::string& key, size_t size,
                                               const std::function<void(uint8_t*)>& build);

// The cached buffer for `key` if one was already published (any size), else nullptr. Without
// WEIGHT_SHARING: the private buffer of that key still alive in this process, else nullptr.
std::shared_ptr<const PackedBuffer> find_packed(const std::string& key);

// Bytes of packed weights held in private memory by this process (no WEIGHT_SHARING, or an
// unwritable cache dir).
size_t private_packed_bytes();

// All cache files mapped by this process (for memory reports), ':'-separated.
std::string mapped_cache_paths();

}  // namespace ne
