// The fused attention family (kernels/attention): every runnable entry of the list against a
// float64 reference written here (shares no code with the kernels), on awkward sizes
// (Sq, Sk in {1, 7, 16, 17, 77, 128, 129}, D in {16, 32, 64, 80}), three layouts (BERT
// token-major [B,S,H,D], feature-major [H,D,B,S], and views with no unit stride at all),
// masks (none, broadcast over query rows, one per row, with -10000 columns), several
// batches and heads, 1 and 2 threads (and fewer problems than threads: the split path).
//
// What the reference models: the bf16 kernel rounds Q, K, V to bf16 (round to nearest even)
// and P = exp(s - max) to bf16, divides by the sum of the ROUNDED P. The reference does the
// same roundings (its own bit arithmetic), all else in double. What remains is fp32 arithmetic
// (u = 2^-24); per output element the bound, first order, times 2 for safety:
//  * scores: products of bf16 values are exact in fp32; the D-term fp32 sum errs by at most
//    D·u·Σ|q·k| (any order); scale·acc + mask adds u·(|scale·acc| + |s|). So
//    |Δs_n| <= E_n = scale·D·u·Σ_d|q k| + u·(scale·|acc| + |s_n|).
//  * p_n = exp(s_n - max): the kernel's differs relatively by δ_n <= E_n + max_j E_j (the max
//    moves by at most that) + u·|s_n - max| (subtraction) + 3e-6 (its exp: degree-5 Taylor on
//    |r| <= ln2/2, remainder 0.347^6/720 = 2.4e-6, plus ~6 fp32 roundings).
//  * bf16 rounding of p: the kernel and the reference round to the same bf16 value unless p_n
//    lies within δ_n·p_n of a rounding midpoint; then they may differ by one bf16 step
//    (hi_n - lo_n). The reference finds those n and adds their step: Σ_near (hi-lo)|V_n,e|.
//  * P·V: bf16 products exact, Sk-term fp32 sums (numerator and the sum of P): (Sk + 3)·u
//    relative to Σ P|V| / Σ P, plus the flipped steps' effect on the sum: Σ_near(hi-lo)/ΣP·|O|.
#include <gtest/gtest.h>
#include <omp.h>

#include <cmath>
#include <cstdint>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "kernels/attention/attention.hpp"
#include "kernels/cpu_features.hpp"

namespace {

namespace at = ne::attention;
using ne::cpu::Isa;

// float -> nearest-even bf16 value (as a double). Finite inputs only.
double bf16_round(float f) {
  uint32_t u;
  std::memcpy(&u, &f, 4);
  u = (u + 0x7fffu + ((u >> 16) & 1u)) & 0xffff0000u;
  float r;
  std::memcpy(&r, &u, 4);
  return r;
}
// The two bf16 values around a positive float f (lo <= f <= hi; lo == hi when f is one).
void bf16_neighbours(float f, double* lo, double* hi) {
  uint32_t u;
  std::memcpy(&u, &f, 4);
  const uint32_t t = u & 0xffff0000u;
  float a, b;
  std::memcpy(&a, &t, 4);
  const uint32_t t2 = (u & 0xffffu) ? t + 0x10000u : t;
  std::memcpy(&b, &t2, 4);
  *lo = a, *hi = b;
}

enum class Layout { bert, feature_major, strided };
const char* layout_name(Layout l) { return l == Layout::bert ? "bert" : l == Layout::feature_major ? "feature_major" : "strided"; }
enum class MaskKind { none, broadcast, per_row };

struct Problem {
  int64_t B, H, Sq, Sk, D, Dv;
  Layout layout;
  MaskKind mask;
  std::vector<float> q, k, v, m, o;
  std::vector<int64_t> q_off, k_off, v_off, m_off, o_off;
  at::Args a;
};

// Builds the views. bert: Q [B,Sq,H,D], K [B,Sk,H,D], V [B,Sk,H,Dv], O [B,Sq,H,Dv];
// feature_major: Q [H,D,B,Sq], K [H,D,B,Sk], V [H,Dv,B,Sk], O [H,Dv,B,Sq];
// strided: per problem [rows][cols] blocks with row stride 2·cols+3 and column stride 2.
void build(Problem& p, uint32_t seed) {
  const int64_t B = p.B, H = p.H, Sq = p.Sq, Sk = p.Sk, D = p.D, Dv = p.Dv, T = B * H;
  at::Args& a = p.a;
  a = at::Args{};
  a.batch = T, a.Sq = Sq, a.Sk = Sk, a.D = D, a.Dv = Dv, a.scale = 1.f / std::sqrt(float(D));
  p.q_off.resize(T), p.k_off.resize(T), p.v_off.resize(T), p.o_off.resize(T), p.m_off.resize(T);
  auto sview = [&](int64_t rows, int64_t cols, std::vector<int64_t>& off, int64_t* rs, int64_t* cs) {
    *rs = 2 * cols + 3, *cs = 2;
    for (int64_t t = 0; t < T; ++t) off[t] = t * rows * *rs + 1;
    return T * rows * *rs + 1;
  };
  int64_t nq, nk, nv, no;
  if (p.layout == Layout::bert) {
    a.q_rs = H * D, a.q_cs = 1, a.k_rs = 1, a.k_cs = H * D, a.v_rs = H * Dv, a.v_cs = 1, a.o_rs = H * Dv, a.o_cs = 1;
    for (int64_t b = 0; b < B; ++b)
      for (int64_t h = 0; h < H; ++h) {
        const int64_t t = b * H + h;
        p.q_off[t] = b * Sq * H * D + h * D, p.k_off[t] = b * Sk * H * D + h * D;
        p.v_off[t] = b * Sk * H * Dv + h * Dv, p.o_off[t] = b * Sq * H * Dv + h * Dv;
      }
    nq = B * Sq * H * D, nk = B * Sk * H * D, nv = B * Sk * H * Dv, no = B * Sq * H * Dv;
  } else if (p.layout == Layout::feature_major) {
    a.q_rs = 1, a.q_cs = B * Sq, a.k_rs = B * Sk, a.k_cs = 1, a.v_rs = 1, a.v_cs = B * Sk, a.o_rs = 1, a.o_cs = B * Sq;
    for (int64_t b = 0; b < B; ++b)
      for (int64_t h = 0; h < H; ++h) {
        const int64_t t = b * H + h;
        p.q_off[t] = h * D * B * Sq + b * Sq, p.k_off[t] = h * D * B * Sk + b * Sk;
        p.v_off[t] = h * Dv * B * Sk + b * Sk, p.o_off[t] = h * Dv * B * Sq + b * Sq;
      }
    nq = B * Sq * H * D, nk = B * Sk * H * D, nv = B * Sk * H * Dv, no = B * Sq * H * Dv;
  } else {
    nq = sview(Sq, D, p.q_off, &a.q_rs, &a.q_cs);
    nk = sview(D, Sk, p.k_off, &a.k_rs, &a.k_cs);  // K' [D, Sk]
    nv = sview(Sk, Dv, p.v_off, &a.v_rs, &a.v_cs);
    no = sview(Sq, Dv, p.o_off, &a.o_rs, &a.o_cs);
  }
  std::mt19937 g(seed);
  std::uniform_real_distribution<float> d2(-2.f, 2.f), d1(-1.f, 1.f), dm(-3.f, 0.f);
  p.q.resize(nq), p.k.resize(nk), p.v.resize(nv);
  for (auto& x : p.q) x = d2(g);
  for (auto& x : p.k) x = d2(g);
  for (auto& x : p.v) x = d1(g);
  p.o.assign(no, std::nanf(""));  // cells the kernel must not write stay NaN (checked below)
  if (p.mask != MaskKind::none) {
    const int64_t rows = p.mask == MaskKind::per_row ? Sq : 1;
    p.m.resize(T * rows * Sk);
    for (auto& x : p.m) x = dm(g);
    for (size_t i = 0; i < p.m.size(); i += 5) p.m[i] = -10000.f;  // masked-out keys
    if (p.mask == MaskKind::per_row) {
      a.m_rs = Sk, a.m_cs = 1;
      for (int64_t t = 0; t < T; ++t) p.m_off[t] = t * Sq * Sk;
    } else {  // [B,1,1,Sk]: one row per batch, broadcast over heads and query rows
      a.m_rs = 0, a.m_cs = 1;
      p.m.resize(B * Sk);
      for (int64_t t = 0; t < T; ++t) p.m_off[t] = (t / H) * Sk;
    }
    a.mask = p.m.data(), a.m_off = p.m_off.data();
  }
  a.q = p.q.data(), a.k = p.k.data(), a.v = p.v.data(), a.o = p.o.data();
  a.q_off = p.q_off.data(), a.k_off = p.k_off.data(), a.v_off = p.v_off.data(), a.o_off = p.o_off.data();
}

// Checks p.o against the bf16-modelling float64 reference (see the header for the bound).
void check(const Problem& p, const std::string& what) {
  const at::Args& a = p.a;
  const double u = std::ldexp(1.0, -24);
  int64_t bad = 0, written = 0;
  double worst = 0;
  for (int64_t t = 0; t < a.batch; ++t) {
    auto Q = [&](int64_t m, int64_t d) { return bf16_round(p.q[a.q_off[t] + m * a.q_rs + d * a.q_cs]); };
    auto K = [&](int64_t d, int64_t n) { return bf16_round(p.k[a.k_off[t] + d * a.k_rs + n * a.k_cs]); };
    auto V = [&](int64_t n, int64_t e) { return bf16_round(p.v[a.v_off[t] + n * a.v_rs + e * a.v_cs]); };
    for (int64_t m = 0; m < a.Sq; ++m) {
      std::vector<double> s(a.Sk), E(a.Sk), pt(a.Sk), step(a.Sk, 0.0);
      double mx = -1e300, emax = 0;
      for (int64_t n = 0; n < a.Sk; ++n) {
        double acc = 0, mag = 0;
        for (int64_t d = 0; d < a.D; ++d) acc += Q(m, d) * K(d, n), mag += std::fabs(Q(m, d) * K(d, n));
        const double mk = a.mask ? a.mask[a.m_off[t] + m * a.m_rs + n * a.m_cs] : 0.0;
        s[n] = double(a.scale) * acc + mk;
        E[n] = a.scale * a.D * u * mag + u * (a.scale * std::fabs(acc) + std::fabs(s[n]));
        mx = std::max(mx, s[n]), emax = std::max(emax, E[n]);
      }
      double sum = 0, near_sum = 0;
      for (int64_t n = 0; n < a.Sk; ++n) {
        const double pe = std::exp(s[n] - mx);
        pt[n] = bf16_round(float(pe));
        sum += pt[n];
        const double delta = 1.01 * (E[n] + emax + u * std::fabs(s[n] - mx)) + 3e-6;
        double lo, hi;
        bf16_neighbours(float(pe), &lo, &hi);
        const double mid = 0.5 * (lo + hi);
        if (hi > lo && std::fabs(pe - mid) <= 1.5 * delta * pe) step[n] = hi - lo, near_sum += hi - lo;
      }
      for (int64_t e = 0; e < a.Dv; ++e) {
        double acc = 0, mag = 0, flip = 0;
        for (int64_t n = 0; n < a.Sk; ++n) {
          acc += pt[n] * V(n, e), mag += pt[n] * std::fabs(V(n, e));
          flip += step[n] * std::fabs(V(n, e));
        }
        const double ref = acc / sum;
        const double tol = 2 * ((a.Sk + 3) * u * (mag / sum + std::fabs(ref)) + flip / sum + near_sum / sum * std::fabs(ref)) + 1e-30;
        const float got = p.o[a.o_off[t] + m * a.o_rs + e * a.o_cs];
        const double err = std::fabs(double(got) - ref);
        ++written;
        if (!std::isnan(worst) && !(err / tol <= worst)) worst = err / tol;  // keeps a NaN (std::max would not)
        if (!(err <= tol) && ++bad <= 5)
          ADD_FAILURE() << what << ": t " << t << " m " << m << " e " << e << ": got " << got << ", want " << ref
                        << " (err " << err << " > tol " << tol << ")";
      }
    }
  }
  EXPECT_EQ(bad, 0) << what << ": " << bad << " of " << written << " outputs outside the bound";
  // Nothing outside the O views written (the NaN fill survives everywhere else).
  int64_t nan = 0;
  for (float x : p.o) nan += std::isnan(x);
  EXPECT_EQ(int64_t(p.o.size()) - nan, written) << what << ": writes outside the output view";
  ::testing::Test::RecordProperty("worst_err_over_tol", std::to_string(worst));
}

std::vector<const at::KernelInfo*> runnable(at::Compute c) {
  std::vector<const at::KernelInfo*> r;
  for (const auto& k : at::kernel_list())
    if (k.fn && k.compute == c) r.push_back(&k);
  return r;
}

bool usable(const at::KernelInfo& k, std::string* why) {
  *why = ne::cpu::why_not(k.isa);
  return why->empty();
}

void run_case(const at::KernelInfo& k, int64_t B, int64_t H, int64_t Sq, int64_t Sk, int64_t D, int64_t Dv, Layout l,
              MaskKind mk, int threads, uint32_t seed) {
  Problem p{B, H, Sq, Sk, D, Dv, l, mk, {}, {}, {}, {}, {}, {}, {}, {}, {}, {}, {}};
  build(p, seed);
  p.a.num_threads = threads;
  p.a.compute = k.compute;
  const std::string what = std::string(k.name) + " " + layout_name(l) + " B" + std::to_string(B) + " H" +
                           std::to_string(H) + " Sq" + std::to_string(Sq) + " Sk" + std::to_string(Sk) + " D" +
                           std::to_string(D) + " Dv" + std::to_string(Dv) + " mask" + std::to_string(int(mk)) +
                           " threads " + std::to_string(threads) + " seed " + std::to_string(seed);
  SCOPED_TRACE(what);
  at::run(k, p.a);
  check(p, what);
}

// The bf16 tests below skip when no bf16 entry ran. That is only right where the CPU (or the ISA
// cap) lacks the ISA of every entry this test can run: on a CPU that has one, the entry must be in
// the list with its function and must have run (a lost or unregistered kernel is a failure, not a
// skip). Returns true where the skip is legitimate.
bool no_bf16_kernel_expected(int ran) {
  if (ran) return false;
  for (const auto& k : at::kernel_list())
    if (k.compute == at::Compute::bf16 && ne::cpu::mayiuse(k.isa) && k.fn)
      ADD_FAILURE() << k.name << ": this CPU has " << ne::cpu::isa_name(k.isa) << " but the entry did not run";
  const at::KernelInfo* amx = at::find_kernel("attn_bf16_f32acc_16x16__amx");
  if (ne::cpu::mayiuse(Isa::avx512_core_amx)) {
    EXPECT_TRUE(amx && amx->fn) << "AMX is usable here but the AMX bf16 attention kernel is not in the list with "
                                   "a function, so no bf16 attention kernel ran";
  }
  return !::testing::Test::HasFailure();
}

}  // namespace

// Every runnable bf16 entry, the awkward-size sweep, BERT layout, broadcast mask.
TEST(AttentionKernels, Bf16SizeSweep) {
  int ran = 0;
  for (const at::KernelInfo* k : runnable(at::Compute::bf16)) {
    std::string why;
    if (!usable(*k, &why)) {
      std::printf("[  SKIP    ] %s: %s\n", k->name, why.c_str());
      continue;
    }
    uint32_t seed = 1000;
    for (int64_t Sq : {1, 7, 16, 17, 77, 128, 129})
      for (int64_t Sk : {1, 7, 16, 17, 77, 128, 129})
        for (int64_t D : {16, 32, 64, 80}) {
          if ((Sq * Sk * D) > 129 * 129 * 32 && D != 64) continue;  // the biggest only at D 64 (time)
          run_case(*k, 1, 2, Sq, Sk, D, D, Layout::bert, MaskKind::broadcast, 1, seed++);
        }
    ++ran;
  }
  if (no_bf16_kernel_expected(ran))
    GTEST_SKIP() << "no runnable bf16 attention kernel on this CPU / ISA cap: " << ne::cpu::why_not(Isa::avx512_core_amx);
}

// Layouts, masks, Dv != D, batches and heads, threads (with fewer problems than threads).
TEST(AttentionKernels, Bf16LayoutsMasksThreads) {
  int ran = 0;
  for (const at::KernelInfo* k : runnable(at::Compute::bf16)) {
    std::string why;
    if (!usable(*k, &why)) continue;
    uint32_t seed = 2000;
    for (Layout l : {Layout::bert, Layout::feature_major, Layout::strided})
      for (MaskKind mk : {MaskKind::none, MaskKind::broadcast, MaskKind::per_row}) {
        run_case(*k, 2, 3, 77, 129, 64, 64, l, mk, 2, seed++);
        run_case(*k, 2, 3, 17, 7, 80, 16, l, mk, 1, seed++);
        run_case(*k, 1, 1, 129, 33, 16, 80, l, mk, 2, seed++);  // 1 problem, 2 threads: split query blocks
      }
    run_case(*k, 8, 12, 128, 128, 64, 64, Layout::bert, MaskKind::broadcast, 2, seed++);  // BERT-base b8
    ++ran;
  }
  if (no_bf16_kernel_expected(ran))
    GTEST_SKIP() << "no runnable bf16 attention kernel on this CPU / ISA cap: " << ne::cpu::why_not(Isa::avx512_core_amx);
}

// The list: on a CPU with usable AMX the dispatcher picks the AMX entry for bf16 (it must not
// fall back silently); the AVX-512 entries stay in the list for the other CPUs.
TEST(AttentionKernels, DispatchPicksAmxWhereUsable) {
  at::Args a;
  a.batch = 96, a.Sq = a.Sk = 128, a.D = a.Dv = 64, a.compute = at::Compute::bf16;
  const at::Choice c = at::choose(a);
  ASSERT_NE(at::find_kernel("attention_fused_bf16:avx512_bf16"), nullptr);
  ASSERT_NE(at::find_kernel("attention_fused:avx512"), nullptr);
  if (!ne::cpu::mayiuse(Isa::avx512_core)) {
    // Every entry needs AVX-512: none runs (the op computes attention unfused on oneDNN's sgemm).
    EXPECT_EQ(c.kernel, nullptr) << c.summary();
    return;
  }
  if (!ne::cpu::mayiuse(Isa::avx512_core_bf16)) {
    // bf16 compute: the AMX and AVX512_BF16 entries need more than this tier, the fp32 entry
    // computes in f32: none runs (the op takes its own path).
    EXPECT_EQ(c.kernel, nullptr) << c.summary();
    return;
  }
  ASSERT_NE(c.kernel, nullptr) << c.summary();
  if (!ne::cpu::mayiuse(Isa::avx512_core_amx)) {
    EXPECT_STRNE(c.kernel->name, "attn_bf16_f32acc_16x16__amx");
    GTEST_SKIP() << "AMX not usable: " << ne::cpu::why_not(Isa::avx512_core_amx) << " (" << c.summary() << ")";
  }
  EXPECT_STREQ(c.kernel->name, "attn_bf16_f32acc_16x16__amx") << c.summary();
  a.compute = at::Compute::f32;  // fp32 compute never goes to the bf16 AMX kernel
  EXPECT_STRNE(at::choose(a).kernel->name, "attn_bf16_f32acc_16x16__amx");
  setenv("NE_ATTENTION_AMX", "0", 1);
  a.compute = at::Compute::bf16;
  const at::Choice off = at::choose(a);
  unsetenv("NE_ATTENTION_AMX");
  EXPECT_STREQ(off.kernel->name, "attention_fused_bf16:avx512_bf16") << off.summary();
}

TEST(AttentionKernels, RejectsBadArgs) {
  const at::KernelInfo* k = at::find_kernel("attn_bf16_f32acc_16x16__amx");
  ASSERT_NE(k, nullptr);
  at::Args a;
  a.batch = 1, a.Sq = a.Sk = 4, a.D = a.Dv = 8;
  EXPECT_THROW(at::run(*at::find_kernel("attention_fused:avx512"), a), std::invalid_argument);  // caller-run entry
  EXPECT_THROW(at::run(*k, a), std::invalid_argument);  // null pointers (or ISA)
}
