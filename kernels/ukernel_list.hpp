// ne::kernels — the shape shared by the small per-op kernel lists of the row-wise families
// (kernels/quant, kernels/eltwise, kernels/layernorm, kernels/small_gemm): one list per op,
// read from the family's `<family>_kernels.inc` by its dispatch.cpp, its test and the bench,
// best first, a portable generic entry last. The dispatch takes the first entry whose lowest ISA
// the CPU supports (ne::cpu::mayiuse: CPUID + XCR0, capped by NE_MAX_ISA / set_isa_cap), and can
// say what it chose and why the others declined. Compiled without ISA flags.
#pragma once
#include <cstddef>
#include <string>
#include <vector>

#include "kernels/cpu_features.hpp"

namespace ne::kernels {

template <class Fn>
struct Ukernel {
  const char* name;  // <op>_<dtypes>[_<layout>]__<isa>, e.g. "softmax_f32_rows__avx512"
  ne::cpu::Isa isa;  // lowest ISA level it needs
  Fn* fn;
  const char* note;  // one line: what it does

  // "" when this CPU (under the ISA cap) can run it, else why not ("ISA: CPU lacks AVX512F").
  std::string why_not() const {
    const std::string w = ne::cpu::why_not(isa);
    return w.empty() ? w : "ISA: " + w;
  }
  bool runnable() const { return ne::cpu::mayiuse(isa); }
};

template <class Fn>
struct UkernelList {
  const char* op;  // "softmax", "quantize", ...
  std::vector<Ukernel<Fn>> entries;  // best first; the last is generic (any x86-64)

  // The first entry this CPU can run; with generic_only the last (portable) entry. Never null:
  // the generic entry runs everywhere.
  const Ukernel<Fn>& choose(bool generic_only = false) const {
    if (!generic_only)
      for (const auto& k : entries)
        if (k.runnable()) return k;
    return entries.back();
  }
  const Ukernel<Fn>* find(const std::string& name) const {
    for (const auto& k : entries)
      if (name == k.name) return &k;
    return nullptr;
  }
  // "softmax: chose softmax_f32_rows__generic; declined: softmax_f32_rows__avx512 (ISA: ...)"
  std::string summary(bool generic_only = false) const {
    const Ukernel<Fn>& c = choose(generic_only);
    std::string s = std::string(op) + ": chose " + c.name;
    std::string d;
    for (const auto& k : entries) {
      if (&k == &c) break;
      d += std::string(" ") + k.name + " (" + (generic_only ? std::string("generic forced") : k.why_not()) + ")";
    }
    return d.empty() ? s : s + "; declined:" + d;
  }
};

}  // namespace ne::kernels
