// The fused attention family's list and dispatcher (compiled without ISA flags).
#include <omp.h>

#include <cstdlib>
#include <stdexcept>
#include <string>

#include "kernels/attention/attention.hpp"
#include "kernels/env.hpp"

namespace ne::attention {

const char* compute_name(Compute c) { return c == Compute::bf16 ? "bf16" : "f32"; }

const std::vector<KernelInfo>& kernel_list() {
  static const std::vector<KernelInfo> list = {
#define ATTN_KERNEL(name, compute, isa, fn, note) KernelInfo{#name, Compute::compute, ne::cpu::Isa::isa, fn, note},
#include "kernels/attention/attention_kernels.inc"
#undef ATTN_KERNEL
  };
  return list;
}

const KernelInfo* find_kernel(const std::string& name) {
  for (const auto& k : kernel_list())
    if (name == k.name) return &k;
  return nullptr;
}

std::string why_not(const KernelInfo& k, const Args& a) {
  if (k.compute != a.compute)
    return std::string("compute dtype is ") + compute_name(a.compute) + ", kernel computes in " + compute_name(k.compute);
  if (k.isa == ne::cpu::Isa::avx512_core_amx && ne::kernels::env::attention_amx_disabled())
    return "disabled by NE_ATTENTION_AMX=0";
  std::string isa = ne::cpu::why_not(k.isa);
  if (!isa.empty()) return "ISA: " + isa;
  if (k.fn && (a.Sq < 1 || a.Sk < 1 || a.D < 1 || a.Dv < 1))
    return "empty shape (Sq " + std::to_string(a.Sq) + ", Sk " + std::to_string(a.Sk) + ", D " + std::to_string(a.D) +
           ", Dv " + std::to_string(a.Dv) + ")";
  // Per-thread buffers are O(Sk * (D + Dv)) (K and V packed) + O(32 * Sk) (scores): cap them.
  if (k.fn && a.Sk * (a.D + a.Dv + 64) > (int64_t(64) << 20))
    return "Sk x (D + Dv) too large for the per-thread packed K/V (" + std::to_string(a.Sk) + " x " +
           std::to_string(a.D + a.Dv) + ")";
  return "";
}

std::string Choice::summary() const {
  std::string s = kernel ? std::string("chose ") + kernel->name : std::string("no kernel");
  if (!declined.empty()) {
    s += "; declined:";
    for (const auto& d : declined) s += std::string(" ") + d.first->name + " (" + d.second + ")";
  }
  return s;
}

Choice choose(const Args& a, bool runnable_only) {
  Choice c;
  for (const auto& k : kernel_list()) {
    if (runnable_only && !k.fn) continue;
    std::string w = why_not(k, a);
    if (w.empty()) {
      c.kernel = &k;
      return c;
    }
    c.declined.push_back({&k, w});
  }
  return c;
}

void run(const KernelInfo& k, const Args& a0) {
  auto fail = [&](const std::string& m) {
    throw std::invalid_argument(std::string("attention ") + k.name + " (batch " + std::to_string(a0.batch) + ", Sq " +
                                std::to_string(a0.Sq) + ", Sk " + std::to_string(a0.Sk) + ", D " +
                                std::to_string(a0.D) + ", Dv " + std::to_string(a0.Dv) + "): " + m);
  };
  if (!k.fn) fail("entry is run by its caller (no kernel function)");
  const std::string w = why_not(k, a0);
  if (!w.empty()) fail(w);
  if (a0.batch < 0) fail("batch < 0");
  if (a0.batch == 0) return;
  if (!a0.q || !a0.k || !a0.v || !a0.o || !a0.q_off || !a0.k_off || !a0.v_off || !a0.o_off) fail("null pointer");
  if (a0.mask && !a0.m_off) fail("mask without m_off");
  Args a = a0;
  if (a.num_threads <= 0) a.num_threads = omp_get_max_threads();
  k.fn(a);
}

}  // namespace ne::attention
