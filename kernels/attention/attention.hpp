// ne::attention — the fused attention kernel family:
//   O[t] = softmax(scale · Q'[t]·K'[t] + mask[t], last axis) · V'[t]   for t in 0..batch-1
// one problem t per (batch, head). Kernels take pointers, shapes and strides only (nothing of
// the engine): every operand is a strided 2-D view per problem, at an offset given per problem
// (so any batch broadcast or permutation of the caller becomes offsets and strides).
//
// The list of the family is attention_kernels.inc (best first), read by dispatch.cpp, the
// tests (tests/kernels/test_attention.cpp) and the bench (kernels/bench/bench_attention.cpp).
// Entries with fn == nullptr are implemented by their caller (executor/ops/dense_matmul.cpp,
// the AVX-512 small-GEMM paths): they are in the list so that dispatch, --profile and the
// tests see one ordered list, but only the caller can run them.
//
// NE_ATTENTION_AMX=0 (env) makes the AMX entries decline ("disabled by NE_ATTENTION_AMX=0"),
// so the AVX-512 path runs on an AMX CPU (for measurements and comparisons).
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "kernels/cpu_features.hpp"

namespace ne::attention {

enum class Compute { f32, bf16 };  // f32: fp32 products; bf16: bf16 products, fp32 accumulation
const char* compute_name(Compute c);

// Views per problem t, in elements:
//   Q'[m, d] = q[q_off[t] + m*q_rs + d*q_cs]      m < Sq, d < D
//   K'[d, n] = k[k_off[t] + d*k_rs + n*k_cs]      n < Sk   (the product is Q'·K')
//   V'[n, e] = v[v_off[t] + n*v_rs + e*v_cs]      e < Dv
//   mask[m, n] = mask[m_off[t] + m*m_rs + n*m_cs] (optional, additive; strides 0 = broadcast)
//   O[m, e]  = o[o_off[t] + m*o_rs + e*o_cs]      (fp32, written, never read)
// The offset arrays have `batch` entries. All inputs fp32.
struct Args {
  int64_t batch = 0, Sq = 0, Sk = 0, D = 0, Dv = 0;
  float scale = 1.f;
  const float* q = nullptr;
  const int64_t* q_off = nullptr;
  int64_t q_rs = 0, q_cs = 0;
  const float* k = nullptr;
  const int64_t* k_off = nullptr;
  int64_t k_rs = 0, k_cs = 0;
  const float* v = nullptr;
  const int64_t* v_off = nullptr;
  int64_t v_rs = 0, v_cs = 0;
  const float* mask = nullptr;
  const int64_t* m_off = nullptr;
  int64_t m_rs = 0, m_cs = 0;
  float* o = nullptr;
  const int64_t* o_off = nullptr;
  int64_t o_rs = 0, o_cs = 0;
  Compute compute = Compute::bf16;
  int num_threads = 0;  // <= 0: omp_get_max_threads()
};

using Fn = void (*)(const Args&);

struct KernelInfo {
  const char* name;   // attn_<dtypes>_<tile>__<isa>, or the caller's kernel name for external entries
  Compute compute;
  ne::cpu::Isa isa;   // lowest ISA level it needs
  Fn fn;              // nullptr: implemented by the caller (see above)
  const char* note;   // one line: what it does
};

const std::vector<KernelInfo>& kernel_list();
const KernelInfo* find_kernel(const std::string& name);

// Why kernel k cannot run problem a (shape, compute dtype, ISA, env switch); "" if it can.
std::string why_not(const KernelInfo& k, const Args& a);

struct Choice {
  const KernelInfo* kernel = nullptr;
  std::vector<std::pair<const KernelInfo*, std::string>> declined;
  std::string summary() const;  // "chose X; declined: Y (reason), ..."
};
// The first entry of the list that fits a (only the offsets/pointers are not looked at).
// With runnable_only, entries with fn == nullptr are skipped (without being "declined").
Choice choose(const Args& a, bool runnable_only = false);

// Runs entry k (must have fn) on a after checking the arguments (std::invalid_argument).
void run(const KernelInfo& k, const Args& a);

// The kernels (one per ISA file).
void attn_bf16_f32acc_16x16__amx(const Args& a);

}  // namespace ne::attention
