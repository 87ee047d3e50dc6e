#include "executor/ops/dense_common.hpp"

#include "executor/env.hpp"
#include "kernels/cpu_features.hpp"
#include "kernels/env.hpp"

namespace ne::dense {

// NE_MAX_ISA caps oneDNN too (unless ONEDNN_MAX_CPU_ISA / DNNL_MAX_CPU_ISA says otherwise), so a
// capped run exercises the lower dense paths as well. Must happen before oneDNN's first JIT.
static void cap_onednn_isa() {
  cpu::Isa isa;
  if (env::onednn_isa_set() || !cpu::parse_isa(ne::kernels::env::max_isa(), &isa)) return;
  dnnl_cpu_isa_t d = dnnl_cpu_isa_all;
  switch (isa) {
    case cpu::Isa::generic: case cpu::Isa::sse41: d = dnnl_cpu_isa_sse41; break;
    case cpu::Isa::avx2: d = dnnl_cpu_isa_avx2; break;
    case cpu::Isa::avx512_core: d = dnnl_cpu_isa_avx512_core; break;
    case cpu::Isa::avx512_core_vnni: d = dnnl_cpu_isa_avx512_core_vnni; break;
    case cpu::Isa::avx512_core_bf16: d = dnnl_cpu_isa_avx512_core_bf16; break;
    case cpu::Isa::avx512_core_amx: d = dnnl_cpu_isa_avx512_core_amx; break;
  }
  dnnl_set_max_cpu_isa(d);
}

dnnl::engine& engine() {
  static dnnl::engine e = [] {
    cap_onednn_isa();
    return dnnl::engine(dnnl::engine::kind::cpu, 0);
  }();
  return e;
}

dnnl::stream& stream() {
  thread_local dnnl::stream s(engine());
  return s;
}

// ne::cpu checks CPUID and XCR0 once and applies the NE_MAX_ISA / set_isa_cap() ceiling, so a
// capped run exercises the portable kernels here too.
bool use_avx512() { return !portable_forced() && cpu::mayiuse(cpu::Isa::avx512_core); }

const char* kernel_isa() { return use_avx512() ? "avx512" : "portable"; }

dnnl::memory* find_packed_weights(std::deque<dnnl::memory>& packed, const dnnl::memory::desc& want) {
  for (auto& m : packed)
    if (m.get_desc() == want) return &m;
  return nullptr;
}

dnnl::memory* packed_weights_for(std::deque<dnnl::memory>& packed, const dnnl::memory::desc& want) {
  if (dnnl::memory* m = find_packed_weights(packed, want)) return m;
  dnnl::memory p(want, engine());
  dnnl::reorder(packed.front(), p).execute(stream(), packed.front(), p);
  stream().wait();
  packed.push_back(p);
  return &packed.back();
}

}  // namespace ne::dense
