// Generic (scalar) block-sparse GEMM over the packed format: runs on any x86-64, any
// blocking of its dtype, both orientations, all post-ops. The fallback of the list.
#include <omp.h>

#include <vector>

#include "kernels/sparse_gemm/bsgemm_internal.hpp"
#include "kernels/sparse_gemm/postops_scalar.hpp"

namespace ne::sparse {
namespace {

template <typename W, typename X, typename Acc>
void run_generic(const GemmArgs& a, const PackedHeader& h, int nthreads) {
  const int M = a.M, N = h.N, nb = h.nb, kq = h.kq;
  const bool tm = a.layout == Layout::token_major;
  const X* src = static_cast<const X*>(a.src);
  const W* vals = static_cast<const W*>(h.values());
  const int64_t* gp = h.group_ptr();
  const int32_t* ki = h.kidx();
  const size_t os = dtype_size(a.post.dst_dtype);
  uint8_t* dst = static_cast<uint8_t*>(a.dst);
  auto xval = [&](int m, int k) -> Acc {
    if (k >= h.K) return Acc(0);
    X x = tm ? src[int64_t(m) * a.ld_src + k] : src[int64_t(k) * a.ld_src + m];
    if constexpr (sizeof(X) == 2) return Acc(bf16_to_f32(x));
    else return Acc(x);
  };
  auto wval = [&](int64_t idx) -> Acc {
    if constexpr (sizeof(W) == 2) return Acc(bf16_to_f32(vals[idx]));
    else return Acc(vals[idx]);
  };
#pragma omp parallel for num_threads(nthreads) schedule(dynamic, 1)
  for (int g = 0; g < h.groups; ++g) {
    std::vector<Acc> acc(size_t(nb) * M);
    for (int64_t s = gp[g]; s < gp[g + 1]; ++s)
      for (int j = 0; j < kq; ++j) {
        const int k = ki[s * kq + j];
        for (int i = 0; i < nb; ++i) {
          const Acc w = wval(h.value_index(s, i, j));
          if (w == Acc(0)) continue;
          for (int m = 0; m < M; ++m) acc[size_t(i) * M + m] += w * xval(m, k);
        }
      }
    for (int i = 0; i < nb; ++i) {
      const int n = g * nb + i;
      if (n >= N) break;
      for (int m = 0; m < M; ++m) {
        const int64_t off = tm ? int64_t(m) * a.ld_dst + n : int64_t(n) * a.ld_dst + m;
        const int64_t roff = tm ? int64_t(m) * a.post.ld_residual + n : int64_t(n) * a.post.ld_residual + m;
        scalar_post_store(float(acc[size_t(i) * M + m]), n, a.post,
                          a.post.residual ? a.post.residual + roff : nullptr, dst + off * os);
      }
    }
  }
}

}  // namespace

void bsgemm_f32_any_generic__ref(const GemmArgs& a, const void* ph, int nt) {
  run_generic<float, float, float>(a, *static_cast<const PackedHeader*>(ph), nt);
}
void bsgemm_bf16_any_generic__ref(const GemmArgs& a, const void* ph, int nt) {
  run_generic<uint16_t, uint16_t, float>(a, *static_cast<const PackedHeader*>(ph), nt);
}
void bsgemm_u8s8s32_any_generic__ref(const GemmArgs& a, const void* ph, int nt) {
  const auto& h = *static_cast<const PackedHeader*>(ph);
  if (a.src_dtype == DType::s8) run_generic<int8_t, int8_t, int32_t>(a, h, nt);
  else run_generic<int8_t, uint8_t, int32_t>(a, h, nt);
}

}  // namespace ne::sparse
