// The InnerProduct candidate list (ARCHITECTURE.md "Dispatch"), shared by the fp32 op
// (dense_inner_product.cpp) and the s8 / bf16 ops (quant_inner_product.cpp).
//
// One ordered list per weight dtype, as oneDNN's impl_list: each entry is a factory that either
// builds a candidate for the problem or declines with a reason. The lists today:
//
//   fp32: sparse (AVX-512F block-sparse, 1x4 / 4x1)          > dense (oneDNN matmul)
//   s8:   sparse_amx_kgather (AMX K-gather, needs AMX and z16) > sparse (AVX512-VNNI) > dense (oneDNN)
//         > exact (the block-sparse family's int32 kernels on any weight; fallback)
//   bf16: sparse_amx_kgather > sparse (AVX512-BF16) > dense (oneDNN) > exact (fallback)
//
// Every non-fallback entry that accepts becomes a candidate, unless one says it is exclusive
// (a forced choice, e.g. `--sparse_threshold`, or one sure to win, e.g. fp32 sparse far above its break-even) or
// NE_DISPATCH=threshold (the first that accepts runs). Fallback entries are built only when no
// other entry accepted (oneDNN declining int8 without VNNI, or bf16 below AVX512_CORE).
// NE_IP_ONLY=<entry> makes every other entry decline (tests, and forcing a path by hand).
//
// With more than one candidate the choice is made once per M class at plan time (reshape) by
// IpChooser: each candidate runs on synthetic data of that M, alternating, best of a few rounds
// in a bounded time, and the fastest runs that class from then on. The decision is memoised in
// the process and, with WEIGHT_SHARING=1, cached in NE_CACHE_DIR beside the packed weights (key:
// the weight's hash, the problem, the candidates, the CPU's ISA tier and the threads), so a
// second load or another instance does not time again.
//
// reason() (the profile's "why" column) names the candidates, each M class's timings and
// winner, and every declined entry with its reason; kernel() the kernel that ran last.
#pragma once
#include <algorithm>
#include <cstdint>
#include <cstdlib>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "executor/env.hpp"
#include "executor/operator.hpp"

namespace ne {

// Forgets the decisions memoised in this process (tests: the NE_CACHE_DIR copy stays).
void ip_choice_memo_clear();

template <class S>
struct IpOffer {
  std::unique_ptr<S> impl;  // null: declined
  std::string note;         // declined: why; accepted: what it saw (e.g. "weight 91.0% 1x4-sparse > 30%")
  bool exclusive = false;   // accepted, and it alone runs the weight (entries after it are not tried)
  int64_t sure_from_m = -1;  // >= 0: sure to beat the later candidates from this M on (not timed there)
};

// The built list for one problem: candidates in list order, plus the declined entries.
template <class S>
struct IpBuilt {
  std::vector<std::string> names, notes;
  std::vector<std::unique_ptr<S>> impls;
  std::vector<std::string> declined;  // "<entry>: <why>"
  bool exclusive = false;
  int64_t sure_from_m = -1;  // the first candidate's IpOffer::sure_from_m
};

template <class P, class S>
class IpList {
 public:
  using Factory = std::function<IpOffer<S>(const P&, const OpConfig&)>;
  struct Entry {
    std::string name;
    int priority;  // higher first
    bool fallback;
    Factory make;
  };
  // Returns true (for static registration).
  static bool add(const std::string& name, int priority, Factory f, bool fallback = false) {
    std::lock_guard<std::mutex> g(mu());
    auto& r = reg();
    r.push_back({name, priority, fallback, std::move(f)});
    std::stable_sort(r.begin(), r.end(), [](const Entry& a, const Entry& b) { return a.priority > b.priority; });
    return true;
  }
  static std::vector<Entry> entries() {
    std::lock_guard<std::mutex> g(mu());
    return reg();
  }
  // Tries the entries in order. `all`: every accepting entry becomes a candidate (measured
  // dispatch); else the first one that accepts is the only one.
  static IpBuilt<S> build(const P& p, const OpConfig& cfg, bool all) {
    IpBuilt<S> b;
    const std::string only = env::ip_only();  // NE_IP_ONLY: "" or one entry name
    const auto list = entries();
    for (int pass = 0; pass < 2 && b.impls.empty(); ++pass) {
      for (const Entry& e : list) {
        if (e.fallback != (pass == 1)) continue;
        if (!b.impls.empty() && (b.exclusive || !all)) {
          b.declined.push_back(e.name + ": not tried (" + b.names.front() +
                               (b.exclusive ? " is a sure or forced choice)" : " accepted first; NE_DISPATCH=threshold)"));
          continue;
        }
        if (!only.empty() && e.name != only) {
          b.declined.push_back(e.name + ": NE_IP_ONLY=" + only);
          continue;
        }
        IpOffer<S> o = e.make(p, cfg);
        if (!o.impl) {
          b.declined.push_back(e.name + ": " + (o.note.empty() ? std::string("declined") : o.note));
          continue;
        }
        if (b.impls.empty()) b.sure_from_m = o.sure_from_m;
        b.names.push_back(e.name);
        b.notes.push_back(o.note);
        b.impls.push_back(std::move(o.impl));
        b.exclusive = b.exclusive || o.exclusive;
      }
    }
    return b;
  }

 private:
  static std::vector<Entry>& reg() {
    static std::vector<Entry> r;
    return r;
  }
  static std::mutex& mu() {
    static std::mutex m;
    return m;
  }
};

// The per-M-class choice among a problem's candidates.
class IpChooser {
 public:
  // M classes: a choice is made once per class, at the class's first M.
  static int m_class(int64_t M) { return M <= 4 ? 0 : M <= 48 ? 1 : M <= 384 ? 2 : 3; }
  static constexpr int kClasses = 4;

  // `names` / `notes`: the candidates (list order); `declined`: "<entry>: <why>".
  // `cache_key`: names the problem and its weight (the chooser adds the candidates, the CPU's
  // ISA tier, the threads and the M class). `exclusive`: a forced choice (no timing).
  // `sure_from_m` >= 0: from that M on the first candidate runs untimed.
  void reset(std::vector<std::string> names, std::vector<std::string> notes, std::vector<std::string> declined,
             std::string cache_key, bool exclusive, int64_t sure_from_m = -1);
  int size() const { return int(names_.size()); }

  // The candidate for M. With one candidate: 0. Else, the first time a class is seen, runs
  // time_one(i) (candidate i once on synthetic data of `M_timed` rows; returns seconds) in
  // alternating rounds within a budget of ~20 ms, or takes the cached decision (or, from
  // sure_from_m on, candidate 0 untimed).
  int pick(int64_t M, int64_t M_timed, const std::function<double(int)>& time_one);
  // The candidate that runs M rows, and the one the profile names: 0 with one candidate; else
  // the class's choice, made by pick() (timing at min(M, max_timed_m) rows) the first time.
  int index_for(int64_t M, int64_t max_timed_m, const std::function<double(int, int64_t)>& time_one);
  // The choice already made for M's class (-1: not yet).
  int chosen(int64_t M) const;
  // The candidate of the last pick() / note_run(), for kernel(): index and M.
  int last() const { return last_; }
  int64_t last_m() const { return last_m_; }
  void note_run(int64_t M, int idx) {
    last_m_ = M;
    last_ = idx;
  }
  // kernel() of an op whose candidates are `c`: the kernel of the last candidate that ran, at its M.
  template <class S>
  std::string last_kernel(const std::vector<std::unique_ptr<S>>& c) const {
    if (c.empty()) return "uninitialised";
    const int i = std::max(0, std::min<int>(last_, int(c.size()) - 1));
    return last_m_ > 0 ? c[size_t(i)]->kernel_for(last_m_) : c[size_t(i)]->kernel();
  }
  // reason() of such an op.
  template <class S>
  std::string reason_for(const std::vector<std::unique_ptr<S>>& c) const {
    if (c.empty()) return "uninitialised";
    return reason([&](int i, int64_t M) { return c[size_t(i)]->kernel_for(M); });
  }

  // "sparse: weight ...; declined: ..." (one candidate) or "candidates sparse, dense: timed on
  // this CPU (avx512_core_bf16, 2 threads): M=1024: sparse 1.20 ms, dense 2.31 ms (1.93x slower)
  // -> sparse; ...; declined: ...". kernel_of(i, M) names candidate i's kernel at M.
  std::string reason(const std::function<std::string(int, int64_t)>& kernel_of) const;

  // Whether the candidates are timed: more than one, and no forced choice.
  bool timed() const { return names_.size() > 1 && !exclusive_; }

 private:
  struct Timing {
    int64_t M = 0;
    int winner = 0;
    bool cached = false;
    bool sure = false;           // not timed (sure_from_m)
    std::vector<double> best;  // seconds per candidate
  };
  std::vector<std::string> names_, notes_, declined_;
  std::string key_;
  bool exclusive_ = false;
  int64_t sure_from_m_ = -1;
  Timing classes_[kClasses];
  bool have_[kClasses] = {false, false, false, false};
  int last_ = 0;
  int64_t last_m_ = 0;
  mutable std::mutex mu_;
};


}  // namespace ne
