#include "executor/ops/ip_candidates.hpp"

#include <omp.h>

#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <map>

#include "executor/env.hpp"
#include "executor/weight_cache.hpp"
#include "kernels/cpu_features.hpp"

namespace ne {

void IpChooser::reset(std::vector<std::string> names, std::vector<std::string> notes,
                      std::vector<std::string> declined, std::string cache_key, bool exclusive,
                      int64_t sure_from_m) {
  std::lock_guard<std::mutex> g(mu_);
  sure_from_m_ = sure_from_m;
  names_ = std::move(names);
  notes_ = std::move(notes);
  declined_ = std::move(declined);
  key_ = std::move(cache_key);
  exclusive_ = exclusive;
  for (int c = 0; c < kClasses; ++c) have_[c] = false, classes_[c] = Timing();
  last_ = 0;
  last_m_ = 0;
}

int IpChooser::index_for(int64_t M, int64_t max_timed_m, const std::function<double(int, int64_t)>& time_one) {
  int i = size() <= 1 ? 0 : chosen(M);
  if (i < 0) {
    const int64_t Mt = std::max<int64_t>(1, std::min<int64_t>(M, max_timed_m));
    i = pick(M, Mt, [&](int c) { return time_one(c, Mt); });
  }
  note_run(M, i);
  return i;
}

int IpChooser::chosen(int64_t M) const {
  std::lock_guard<std::mutex> g(mu_);
  if (!timed()) return 0;
  const int c = m_class(M);
  return have_[c] ? classes_[c].winner : -1;
}

namespace {

// A decision as stored in the cache file (NE_CACHE_DIR, with WEIGHT_SHARING=1).
struct Record {
  uint32_t magic = 0x31435049;  // "IPC1"
  uint32_t n = 0;
  int32_t winner = 0;
  uint32_t pad = 0;
  double best[8] = {0, 0, 0, 0, 0, 0, 0, 0};
};

std::mutex g_memo_mu;
std::map<std::string, Record>& memo() {
  static std::map<std::string, Record> m;
  return m;
}

// Alternating rounds, best of each: two calls per candidate first (the first a warm-up: primitive
// creation, cold caches, the thread pool; the second a first sample and the estimate), then at least 3
// and at most 8 rounds, stopping once ~20 ms were spent in timed calls. In a round each
// candidate runs enough calls to last ~0.3 ms (1 to 16; a single call of a few µs is mostly
// noise) and scores their mean. Each round rotates the order.
Record time_all(int n, const std::function<double(int)>& time_one) {
  using clk = std::chrono::steady_clock;
  Record r;
  r.n = uint32_t(n);
  std::vector<double> best(size_t(n), 1e30);
  std::vector<int> reps(size_t(n), 1);
  for (int i = 0; i < n; ++i) time_one(i);
  for (int i = 0; i < n; ++i) {
    const double est = time_one(i);  // warm already: counts as a first sample
    best[size_t(i)] = est;
    reps[size_t(i)] = int(std::max(1.0, std::min(16.0, std::ceil(3e-4 / std::max(1e-7, est)))));
  }
  double spent = 0;
  for (int round = 0; round < 8 && (round < 3 || spent < 0.02); ++round) {
    auto t0 = clk::now();
    for (int j = 0; j < n; ++j) {
      const int i = (j + round) % n;
      double sum = 0;
      for (int k = 0; k < reps[size_t(i)]; ++k) sum += time_one(i);
      best[size_t(i)] = std::min(best[size_t(i)], sum / reps[size_t(i)]);
    }
    spent += std::chrono::duration<double>(clk::now() - t0).count();
  }
  int w = 0;
  for (int i = 1; i < n; ++i)
    if (best[size_t(i)] < best[size_t(w)]) w = i;
  r.winner = w;
  for (int i = 0; i < n && i < 8; ++i) r.best[i] = best[size_t(i)];
  return r;
}

}  // namespace

void ip_choice_memo_clear() {
  std::lock_guard<std::mutex> g(g_memo_mu);
  memo().clear();
}

int IpChooser::pick(int64_t M, int64_t M_timed, const std::function<double(int)>& time_one) {
  std::lock_guard<std::mutex> g(mu_);
  last_m_ = M;
  if (!timed()) return last_ = 0;
  const int c = m_class(M);
  if (have_[c]) return last_ = classes_[c].winner;
  if (sure_from_m_ >= 0 && M >= sure_from_m_) {
    // The first candidate is sure to win from this M on (e.g. fp32 sparse far above its
    // break-even): no timing.
    Timing t;
    t.M = M;
    t.sure = true;
    classes_[c] = t;
    have_[c] = true;
    return last_ = 0;
  }
  const int n = std::min<int>(int(names_.size()), 8);
  std::string key = "ipchoice:v1:" + key_ + ":c" + std::to_string(c) + ":M" + std::to_string(M_timed) + ":t" +
                    std::to_string(omp_get_max_threads()) + ":" + cpu::isa_name(cpu::max_isa()) + ":";
  for (int i = 0; i < n; ++i) key += names_[size_t(i)] + ",";
  Record r;
  bool found = false, cached = false;
  {
    std::lock_guard<std::mutex> mg(g_memo_mu);
    auto it = memo().find(key);
    if (it != memo().end()) r = it->second, found = cached = true;
  }
  if (!found && env::weight_sharing()) {
    // Beside the packed weights: built (timed) by the first process, mapped by the rest.
    bool built = false;
    auto buf = get_packed(key, sizeof(Record), [&](uint8_t* dst) {
      Record t = time_all(n, time_one);
      std::memcpy(dst, &t, sizeof t);
      built = true;
    });
    std::memcpy(&r, buf->data(), sizeof r);
    found = r.magic == Record().magic && int(r.n) == n && r.winner >= 0 && r.winner < n;
    cached = found && !built;
  }
  if (!found) r = time_all(n, time_one);
  {
    std::lock_guard<std::mutex> mg(g_memo_mu);
    memo()[key] = r;
  }
  Timing t;
  t.M = M;
  t.winner = r.winner;
  t.cached = cached;
  t.best.assign(r.best, r.best + n);
  classes_[c] = t;
  have_[c] = true;
  return last_ = t.winner;
}

std::string IpChooser::reason(const std::function<std::string(int, int64_t)>& kernel_of) const {
  std::lock_guard<std::mutex> g(mu_);
  std::string r;
  auto add_declined = [&]() {
    if (declined_.empty()) return;
    r += "; declined: ";
    for (size_t i = 0; i < declined_.size(); ++i) r += (i ? "; " : "") + declined_[i];
  };
  if (!timed()) {
    if (names_.empty()) return "no candidate";
    r = names_[0] + (notes_[0].empty() ? "" : ": " + notes_[0]);
    if (names_.size() > 1) r += " (the other candidates were not timed)";
    add_declined();
    return r;
  }
  r = "candidates";
  for (size_t i = 0; i < names_.size(); ++i)
    r += (i ? ", " : " ") + names_[i] + (notes_[i].empty() ? "" : " (" + notes_[i] + ")");
  char b[64];
  std::snprintf(b, sizeof b, ", %d threads", omp_get_max_threads());
  r += std::string(": timed on this CPU (") + cpu::isa_name(cpu::max_isa()) + b + ")";
  bool any = false;
  for (int c = 0; c < kClasses; ++c) {
    if (!have_[c]) continue;
    any = true;
    const Timing& t = classes_[c];
    if (t.sure) {
      r += "; M=" + std::to_string(t.M) + ": ran " + kernel_of(0, t.M) + " (not timed: " + notes_[0] + ")";
      continue;
    }
    r += "; M=" + std::to_string(t.M) + (t.cached ? " (cached decision)" : "") + ": ran " +
         kernel_of(t.winner, t.M);
    const double wb = t.best[size_t(t.winner)];
    std::snprintf(b, sizeof b, " %.3f ms", wb * 1e3);
    r += b;
    for (size_t i = 0; i < t.best.size(); ++i) {
      if (int(i) == t.winner) continue;
      std::snprintf(b, sizeof b, " %.3f ms, %.2fx slower", t.best[i] * 1e3, t.best[i] / std::max(1e-12, wb));
      r += "; not " + kernel_of(int(i), t.M) + ":" + b;
    }
  }
  if (!any) r += ": no shape planned yet";
  add_declined();
  return r;
}

}  // namespace ne
