#include "executor/ops/dense_common.hpp"

#include <atomic>

#include "kernels/cpu_features.hpp"

namespace ne::dense {

dnnl::engine& engine() {
  static dnnl::engine e(dnnl::engine::kind::cpu, 0);
  return e;
}

dnnl::stream& stream() {
  thread_local dnnl::stream s(engine());
  return s;
}

static std::atomic<bool> g_force_portable{false};

// ne::cpu checks CPUID and XCR0 once and applies the NE_MAX_ISA / set_isa_cap() ceiling, so a
// capped run exercises the portable kernels here too.
static bool detect_avx512() { return cpu::mayiuse(cpu::Isa::avx512_core); }

bool use_avx512() {
  return !g_force_portable.load(std::memory_order_relaxed) && detect_avx512();
}

void force_portable(bool on) { g_force_portable.store(on); }

const char* kernel_isa() { return use_avx512() ? "avx512" : "portable"; }

}  // namespace ne::dense
