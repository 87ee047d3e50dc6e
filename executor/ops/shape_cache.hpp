// Per-shape state an operator builds once and reuses (oneDNN primitives by M, matmul plans by
// shapes): at most `capacity` entries, the least recently used dropped first, so a client that
// sends every sequence length cannot grow a worker without bound. A reference returned by
// find()/emplace() stays valid until the next emplace() of another key (the executor runs one
// call at a time per operator).
#pragma once
#include <cstddef>
#include <cstdint>
#include <map>
#include <utility>

namespace ne {

template <class K, class V>
class ShapeCache {
 public:
  static constexpr size_t kDefaultCapacity = 4;
  explicit ShapeCache(size_t capacity = kDefaultCapacity) : cap_(capacity ? capacity : 1) {}

  V* find(const K& k) {
    auto it = m_.find(k);
    if (it == m_.end()) return nullptr;
    it->second.used = ++tick_;
    return &it->second.v;
  }

  V& emplace(const K& k, V&& v) {
    while (m_.size() >= cap_) {
      auto victim = m_.begin();
      for (auto it = m_.begin(); it != m_.end(); ++it)
        if (it->second.used < victim->second.used) victim = it;
      m_.erase(victim);
    }
    auto& s = m_[k];
    s.v = std::move(v);
    s.used = ++tick_;
    return s.v;
  }

  size_t size() const { return m_.size(); }

 private:
  struct Slot {
    V v;
    uint64_t used = 0;
  };
  size_t cap_;
  uint64_t tick_ = 0;
  std::map<K, Slot> m_;
};

}  // namespace ne
