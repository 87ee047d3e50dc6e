#include "executor/weight_cache.hpp"

#include <dirent.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <cstdint>
#include <mutex>
#include <map>
#include <set>

#include "common/error.hpp"
#include "executor/env.hpp"

namespace ne {

namespace {

constexpr uint64_t kMagic = 0x4b434150454e5350ull;  // "PSNEPACK"
constexpr uint32_t kVersion = 1;
constexpr size_t kHeader = 4096;  // payload starts page-aligned

struct Header {
  uint64_t magic;
  uint32_t version, pad;
  uint64_t key_hash;
  uint64_t size;
  uint64_t checksum;
  char key[256];
};

std::mutex g_mu;
std::atomic<size_t> g_private_bytes{0};
std::set<std::string> g_paths;
// Without WEIGHT_SHARING: the private buffers alive in this process, by key, so operators reading
// one weight (ALBERT's shared layer: one weight, every layer) hold one packed copy.
std::map<std::string, std::weak_ptr<const PackedBuffer>> g_private;

std::shared_ptr<const PackedBuffer> live_private(const std::string& key, size_t size) {
  std::lock_guard<std::mutex> g(g_mu);
  auto it = g_private.find(key);
  if (it == g_private.end()) return nullptr;
  auto b = it->second.lock();
  if (!b) g_private.erase(it);
  return b && (size == SIZE_MAX || b->size() == size) ? b : nullptr;
}

class PrivateBuffer : public PackedBuffer {
 public:
  explicit PrivateBuffer(size_t n) {
    void* p = std::aligned_alloc(64, (std::max<size_t>(n, 64) + 63) / 64 * 64);
    if (!p) fail("out of memory packing weights (", n, " bytes)");
    data_ = static_cast<uint8_t*>(p);
    size_ = n;
    g_private_bytes += n;
  }
  ~PrivateBuffer() override {
    g_private_bytes -= size_;
    std::free(const_cast<uint8_t*>(data_));
  }
  uint8_t* mut() { return const_cast<uint8_t*>(data_); }
};

class MappedBuffer : public PackedBuffer {
 public:
  MappedBuffer(void* base, size_t total, size_t payload, const std::string& path)
      : base_(base), total_(total) {
    data_ = static_cast<const uint8_t*>(base) + kHeader;
    size_ = payload;
    shared_ = true;
    path_ = path;
  }
  ~MappedBuffer() override { munmap(base_, total_); }

 private:
  void* base_;
  size_t total_;
};

// Maps `path` and checks it; nullptr if absent, stale or corrupt (then it is removed).
std::shared_ptr<const PackedBuffer> try_map(const std::string& path, const std::string& key, size_t size,
                                            bool verify) {
  int fd = ::open(path.c_str(), O_RDONLY);
  if (fd < 0) return nullptr;
  struct stat st;
  if (size == SIZE_MAX) {  // size from the header
    Header h{};
    if (pread(fd, &h, sizeof h, 0) != ssize_t(sizeof h) || h.magic != kMagic) {
      ::close(fd);
      return nullptr;
    }
    size = h.size;
  }
  size_t total = kHeader + size;
  if (fstat(fd, &st) != 0 || size_t(st.st_size) != total) {
    ::close(fd);
    ::unlink(path.c_str());
    return nullptr;
  }
  void* p = mmap(nullptr, total, PROT_READ, MAP_SHARED, fd, 0);
  ::close(fd);
  if (p == MAP_FAILED) return nullptr;
  const Header* h = static_cast<const Header*>(p);
  bool ok = h->magic == kMagic && h->version == kVersion && h->size == size &&
            std::strncmp(h->key, key.c_str(), sizeof(h->key)) == 0;
  if (ok && verify) ok = hash_bytes(static_cast<const uint8_t*>(p) + kHeader, size) == h->checksum;
  if (!ok) {
    munmap(p, total);
    ::unlink(path.c_str());
    return nullptr;
  }
  return std::make_shared<MappedBuffer>(p, total, size, path);
}

void remove_stale_temps(const std::string& dir) {
  DIR* d = opendir(dir.c_str());
  if (!d) return;
  while (dirent* e = readdir(d)) {
    std::string n = e->d_name;
    auto p = n.find(".tmp.");
    if (p == std::string::npos) continue;
    long pid = std::strtol(n.c_str() + p + 5, nullptr, 10);
    if (pid > 0 && kill(pid_t(pid), 0) != 0 && errno == ESRCH) ::unlink((dir + "/" + n).c_str());
  }
  closedir(d);
}

}  // namespace

uint64_t hash_bytes(const void* data, size_t n, uint64_t seed) {
  // 4 independent lanes of a multiply-xorshift mix over 8-byte words; fast enough for GBs.
  const uint8_t* p = static_cast<const uint8_t*>(data);
  const uint64_t k = 0x9FB21C651E98DF25ull;
  uint64_t h[4] = {seed ^ n, seed + k, seed ^ (k >> 7), seed - k};
  size_t i = 0;
  for (; i + 32 <= n; i += 32)
    for (int l = 0; l < 4; ++l) {
      uint64_t w;
      std::memcpy(&w, p + i + 8 * l, 8);
      h[l] = (h[l] ^ w) * k;
      h[l] ^= h[l] >> 29;
    }
  uint64_t r = h[0] ^ (h[1] * 3) ^ (h[2] * 5) ^ (h[3] * 7);
  for (; i < n; ++i) r = (r ^ p[i]) * k;
  r ^= r >> 31;
  r *= k;
  r ^= r >> 33;
  return r;
}

std::string hex64(uint64_t v) {
  char b[17];
  std::snprintf(b, sizeof b, "%016llx", static_cast<unsigned long long>(v));
  return b;
}

std::shared_ptr<const PackedBuffer> get_packed(const std::string& key, size_t size,
                                               const std::function<void(uint8_t*)>& build) {
  if (!env::weight_sharing()) {
    if (auto live = live_private(key, size)) return live;
    auto b = std::make_shared<PrivateBuffer>(size);
    build(b->mut());
    std::lock_guard<std::mutex> g(g_mu);
    g_private[key] = b;
    return b;
  }
  std::string dir = env::cache_dir();
  ::mkdir(dir.c_str(), 0777);
  std::string path = dir + "/" + hex64(hash_bytes(key.data(), key.size())) + ".pack";
  // NE_CACHE_VERIFY=0 skips the checksum pass over a found file (faster start on trusted disks).
  if (auto b = try_map(path, key, size, env::cache_verify())) {
    std::lock_guard<std::mutex> g(g_mu);
    g_paths.insert(path);
    return b;
  }
  remove_stale_temps(dir);
  // Build into a private temp file, then publish atomically.
  std::string tmp = path + ".tmp." + std::to_string(::getpid());
  int fd = ::open(tmp.c_str(), O_RDWR | O_CREAT | O_TRUNC, 0644);
  if (fd < 0) {
    // Cache dir not writable: fall back to private memory, loudly.
    auto b = std::make_shared<PrivateBuffer>(size);
    build(b->mut());
    return b;
  }
  size_t total = kHeader + size;
  if (ftruncate(fd, off_t(total)) != 0) {
    ::close(fd);
    ::unlink(tmp.c_str());
    fail(tmp, ": cannot size the weight cache file (", std::strerror(errno), ")");
  }
  void* p = mmap(nullptr, total, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
  ::close(fd);
  if (p == MAP_FAILED) {
    ::unlink(tmp.c_str());
    fail(tmp, ": mmap failed (", std::strerror(errno), ")");
  }
  uint8_t* payload = static_cast<uint8_t*>(p) + kHeader;
  build(payload);
  // Test hook: die the way a `kill -9` during packing would, temp file written, not published.
  if (env::test_die_while_packing()) raise(SIGKILL);
  Header h{};
  h.magic = kMagic;
  h.version = kVersion;
  h.key_hash = hash_bytes(key.data(), key.size());
  h.size = size;
  h.checksum = hash_bytes(payload, size);
  std::strncpy(h.key, key.c_str(), sizeof(h.key) - 1);
  std::memcpy(p, &h, sizeof h);
  msync(p, total, MS_SYNC);
  munmap(p, total);
  if (std::rename(tmp.c_str(), path.c_str()) != 0) {
    ::unlink(tmp.c_str());
    fail(path, ": cannot publish the weight cache file (", std::strerror(errno), ")");
  }
  auto b = try_map(path, key, size, false);
  NE_CHECK(b != nullptr, path, ": weight cache file vanished after publishing");
  std::lock_guard<std::mutex> g(g_mu);
  g_paths.insert(path);
  return b;
}

std::shared_ptr<const PackedBuffer> find_packed(const std::string& key) {
  if (!env::weight_sharing()) return live_private(key, SIZE_MAX);
  std::string path = env::cache_dir() + "/" + hex64(hash_bytes(key.data(), key.size())) + ".pack";
  auto b = try_map(path, key, SIZE_MAX, env::cache_verify());
  if (b) {
    std::lock_guard<std::mutex> g(g_mu);
    g_paths.insert(path);
  }
  return b;
}

size_t private_packed_bytes() { return g_private_bytes.load(); }

std::string mapped_cache_paths() {
  std::lock_guard<std::mutex> g(g_mu);
  std::string r;
  for (auto& p : g_paths) r += (r.empty() ? "" : ":") + p;
  return r;
}

}  // namespace ne
