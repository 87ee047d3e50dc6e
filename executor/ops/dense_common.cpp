#include "executor/ops/dense_common.hpp"

#include <atomic>
#include <cstdlib>
#include <cstring>

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

static bool detect_avx512() {
  __builtin_cpu_init();
  if (!(__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
        __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512dq")))
    return false;
  // The project-wide ISA ceiling (see kernels/cpu_features.hpp): levels below avx512_core.
  if (const char* cap = std::getenv("NE_MAX_ISA")) {
    for (const char* low : {"generic", "sse41", "avx2"})
      if (std::strcmp(cap, low) == 0) return false;
  }
  return true;
}

bool use_avx512() {
  static const bool ok = detect_avx512();
  return ok && !g_force_portable.load(std::memory_order_relaxed);
}

void force_portable(bool on) { g_force_portable.store(on); }

const char* kernel_isa() { return use_avx512() ? "avx512" : "portable"; }

}  // namespace ne::dense
