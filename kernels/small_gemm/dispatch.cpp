// The small-GEMM family's lists and scratch sizes (compiled without ISA flags).
#include "kernels/small_gemm/small_gemm.hpp"

namespace ne::kernels::small_gemm {

// f32: the [K][N rounded up to 16] panel of a transposed B (b_cs != 1).
int64_t f32_scratch_bytes(int64_t, int64_t N, int64_t K) { return 4 * K * ((N + 15) / 16 * 16); }

// bf16: A as [M][Kp/2] pair dwords and B as a [Kp/2][Np] pair panel (Kp = K rounded up to even,
// Np = N rounded up to 16), plus 64-byte alignment slack.
int64_t bf16_scratch_bytes(int64_t M, int64_t N, int64_t K) {
  const int64_t kp = (K + 1) / 2, np = (N + 15) / 16 * 16;
  return 4 * (M * kp + kp * np) + 64 * 16;
}

const UkernelList<gemm_fn>& f32_kernels() {
  static const UkernelList<gemm_fn> l{"small_gemm_f32", {
#define SGEMM_F32(name, isa, note) {#name, ne::cpu::Isa::isa, &name, note},
#include "kernels/small_gemm/small_gemm_kernels.inc"
  }};
  return l;
}

const UkernelList<gemm_fn>& bf16_kernels() {
  static const UkernelList<gemm_fn> l{"small_gemm_bf16", {
#define SGEMM_BF16(name, isa, note) {#name, ne::cpu::Isa::isa, &name, note},
#include "kernels/small_gemm/small_gemm_kernels.inc"
  }};
  return l;
}

const UkernelList<transpose_fn>& transpose_kernels() {
  static const UkernelList<transpose_fn> l{"transpose_f32", {
#define SGEMM_TRANSPOSE(name, isa, note) {#name, ne::cpu::Isa::isa, &name, note},
#include "kernels/small_gemm/small_gemm_kernels.inc"
  }};
  return l;
}

}  // namespace ne::kernels::small_gemm
