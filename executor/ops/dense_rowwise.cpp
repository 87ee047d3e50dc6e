// Softmax, LayerNorm and Gelu (docs/OPS.md "Dense compute"), fp32.
// Fast paths: contiguous rows (Softmax on the last axis, LayerNorm on any axis: dims axis..rank-1
// are one contiguous row) and element-wise Gelu run the kernels of kernels/eltwise and
// kernels/layernorm: the first entry of their lists the CPU can run (AVX-512, else generic).
#include <omp.h>

#include <algorithm>
#include <cmath>
#include <vector>

#include "executor/operator.hpp"
#include "executor/ops/dense_common.hpp"
#include "executor/ops/quant_common.hpp"

namespace ne {
namespace {

namespace ke = ne::kernels::eltwise;
namespace kln = ne::kernels::layernorm;

// Splits [0, rows) over the OpenMP threads; f(begin, end).
template <class F>
void parallel_rows(int64_t rows, int64_t row_cost, F f) {
  const int64_t min_work = 1 << 14;  // below this a second thread costs more than it gives
  int nt = int(std::min<int64_t>(omp_get_max_threads(),
                                 std::max<int64_t>(1, rows * row_cost / min_work)));
  nt = int(std::min<int64_t>(nt, rows));
  if (nt <= 1) {
    f(int64_t(0), rows);
    return;
  }
#pragma omp parallel num_threads(nt)
  {
    const int t = omp_get_thread_num(), T = omp_get_num_threads();
    const int64_t b = rows * t / T, e = rows * (t + 1) / T;
    if (b < e) f(b, e);
  }
}

int norm_axis(int64_t axis, int rank) { return int(axis < 0 ? axis + rank : axis); }

// Numpy broadcast of a small tensor t to `target` (t's dims aligned right); returns the values.
std::vector<float> expand_to(const Tensor& t, const Shape& target) {
  const int r = int(target.size()), tr = t.rank();
  std::vector<int64_t> st(r, 0);
  int64_t s = 1;
  for (int i = tr - 1; i >= 0; --i) {
    const int j = r - (tr - i);
    if (j >= 0 && t.shape[i] != 1) st[j] = s;
    s *= t.shape[i];
  }
  const int64_t n = shape_numel(target);
  std::vector<float> out(n);
  std::vector<int64_t> idx(r, 0);
  const float* p = t.ptr<float>();
  for (int64_t k = 0; k < n; ++k) {
    int64_t off = 0;
    for (int d = 0; d < r; ++d) off += idx[d] * st[d];
    out[k] = p[off];
    for (int d = r - 1; d >= 0; --d) {
      if (++idx[d] < target[d]) break;
      idx[d] = 0;
    }
  }
  return out;
}

bool broadcastable_to(const Shape& s, const Shape& target) {
  if (s.size() > target.size()) return false;
  for (size_t i = 0; i < s.size(); ++i) {
    const int64_t a = s[s.size() - 1 - i], b = target[target.size() - 1 - i];
    if (a != 1 && a != b) return false;
  }
  return true;
}

// ---------------------------------------------------------------------------------------------

class SoftmaxOp : public Operator {
 public:
  explicit SoftmaxOp(const OpInfo& i) : Operator(i), axis_(i.attr_int("axis", -1)) {}
  int inplace_input() const override { return 0; }
  std::string kernel() const override { return std::string("softmax:") + dense::kernel_isa(); }

  void reshape(const TensorList& in, const TensorList& out) override {
    expect_inputs(in, 1, 1);
    if (in[0]->dtype != DType::fp32) op_error("input must be fp32, got ", dtype_name(in[0]->dtype));
    const int a = norm_axis(axis_, in[0]->rank());
    if (a < 0 || a >= std::max(1, in[0]->rank()))
      op_error("axis ", axis_, " out of range for ", shape_str(in[0]->shape));
    out[0]->dtype = DType::fp32;
    out[0]->shape = in[0]->shape;
  }

  void forward(const TensorList& in, const TensorList& out) override {
    const Tensor& x = *in[0];
    if (x.numel() == 0) return;
    const int rank = std::max(1, x.rank());
    const int a = norm_axis(axis_, x.rank());
    int64_t outer = 1, len = x.rank() ? x.shape[a] : 1, inner = 1;
    for (int i = 0; i < a; ++i) outer *= x.shape[i];
    for (int i = a + 1; i < rank && i < x.rank(); ++i) inner *= x.shape[i];
    const float* src = x.ptr<float>();
    float* dst = out[0]->ptr<float>();
    if (inner == 1) {
      ke::softmax_fn* const k = dense::pick(ke::softmax_kernels()).fn;
      parallel_rows(outer, len * 8, [&](int64_t b, int64_t e) { k(src + b * len, dst + b * len, e - b, len); });
      return;
    }
    // Strided axis: per outer index, reduce over `len` rows of `inner` contiguous values.
    parallel_rows(outer, len * inner * 8, [&](int64_t b, int64_t e) {
      std::vector<float> mx(inner), sum(inner);
      for (int64_t o = b; o < e; ++o) {
        const float* xs = src + o * len * inner;
        float* ys = dst + o * len * inner;
        std::fill(mx.begin(), mx.end(), -INFINITY);
        std::fill(sum.begin(), sum.end(), 0.f);
        for (int64_t l = 0; l < len; ++l)
          for (int64_t i = 0; i < inner; ++i) mx[i] = std::max(mx[i], xs[l * inner + i]);
        for (int64_t l = 0; l < len; ++l)
          for (int64_t i = 0; i < inner; ++i) {
            const float ev = std::exp(xs[l * inner + i] - mx[i]);
            ys[l * inner + i] = ev;
            sum[i] += ev;
          }
        for (int64_t i = 0; i < inner; ++i) sum[i] = 1.f / sum[i];
        for (int64_t l = 0; l < len; ++l)
          for (int64_t i = 0; i < inner; ++i) ys[l * inner + i] *= sum[i];
      }
    });
  }

 private:
  int64_t axis_;
};

class LayerNormOp : public Operator {
 public:
  explicit LayerNormOp(const OpInfo& i)
      : Operator(i), eps_(i.attr_float("epsilon", 1e-5f)), axis_(i.attr_int("axis", -1)) {
    if (i.has_attr("transpose_mode")) {
      const std::string tm = i.attr("transpose_mode");
      if (tm == "1,0") ba_ = true;
      else if (tm != "0,1" && !tm.empty())
        op_error("transpose_mode '", tm, "' is not supported (expected 1,0: feature-major, normalise dim 0; or 0,1)");
      if (ba_ && i.has_attr("axis") && axis_ != 0)
        op_error("transpose_mode 1,0 normalises dim 0: axis must be 0 or absent, got ", axis_);
    }
    // Optional output 1: output 0 quantized (docs/OPS.md LayerNorm; the compiler's
    // fuse_layernorm_quantize), q = sat(round_half_even(y / quantize_scale) + quantize_zero_point).
    const bool any_q = i.has_attr("quantize_dtype") || i.has_attr("quantize_scale") || i.has_attr("quantize_zero_point");
    if (i.outputs.size() > 2) op_error("has ", i.outputs.size(), " outputs (expected 1, or 2 with quantize_* attributes)");
    if (i.outputs.size() == 2) {
      if (ba_) op_error("a second (quantized) output is not supported with transpose_mode 1,0");
      if (!i.has_attr("quantize_dtype") || !i.has_attr("quantize_scale"))
        op_error("has 2 outputs: the second (quantized) one needs the attributes quantize_dtype (u8|s8) and "
                 "quantize_scale (and quantize_zero_point, default 0)");
      const std::string qd = i.attr("quantize_dtype");
      if (qd == "u8") q_signed_ = false;
      else if (qd == "s8") q_signed_ = true;
      else op_error("quantize_dtype '", qd, "' must be u8 or s8");
      q_scale_ = i.attr_float("quantize_scale", 1.f);
      if (!(q_scale_ > 0) || !std::isfinite(q_scale_))
        op_error("quantize_scale ", i.attr("quantize_scale"), " must be a positive finite number");
      const int64_t zp = i.attr_int("quantize_zero_point", 0);
      const int64_t lo = q_signed_ ? -128 : 0, hi = q_signed_ ? 127 : 255;
      if (zp < lo || zp > hi) op_error("quantize_zero_point ", zp, " out of range for ", qd, " [", lo, ", ", hi, "]");
      q_zp_ = int(zp);
      quantized_ = true;
    } else if (any_q) {
      op_error("has quantize_* attributes but no second output for the quantized copy");
    }
  }
  int inplace_input() const override { return 0; }
  std::string kernel() const override {
    // `layernorm_ba` (the Neural Engine's name for the column form) on both ISA paths.
    if (ba_) return "layernorm_ba";
    std::string k = std::string("layernorm:") + dense::kernel_isa();
    if (quantized_) k += std::string("+quantize_") + (quant::use_avx512() ? "avx512" : "portable");
    return k;
  }

  void reshape(const TensorList& in, const TensorList& out) override {
    expect_inputs(in, 2, 3);
    const Tensor& x = *in[0];
    for (size_t i = 0; i < in.size(); ++i)
      if (in[i]->dtype != DType::fp32)
        op_error("input ", i, " ('", in[i]->name, "') must be fp32, got ", dtype_name(in[i]->dtype));
    if (x.rank() < 1) op_error("input must have rank >= 1");
    if (ba_) {
      for (size_t i = 1; i < in.size(); ++i)
        if (in[i]->numel() != x.shape[0])
          op_error(i == 1 ? "gamma '" : "beta '", in[i]->name, "' ", shape_str(in[i]->shape), " must have ",
                   x.shape[0], " elements (transpose_mode 1,0 normalises dim 0 of ", shape_str(x.shape), ")");
      out[0]->dtype = DType::fp32;
      out[0]->shape = x.shape;
      return;
    }
    const int a = norm_axis(axis_, x.rank());
    if (a < 0 || a >= x.rank()) op_error("axis ", axis_, " out of range for ", shape_str(x.shape));
    const Shape tail(x.shape.begin() + a, x.shape.end());
    for (size_t i = 1; i < in.size(); ++i)
      if (!broadcastable_to(in[i]->shape, tail))
        op_error(i == 1 ? "gamma " : "beta ", shape_str(in[i]->shape),
                 " does not broadcast to the normalised dims ", shape_str(tail));
    out[0]->dtype = DType::fp32;
    out[0]->shape = x.shape;
    if (quantized_) {
      out[1]->dtype = q_signed_ ? DType::s8 : DType::u8;
      out[1]->shape = x.shape;
    }
  }

  void forward(const TensorList& in, const TensorList& out) override {
    const Tensor& x = *in[0];
    if (x.numel() == 0) return;
    if (ba_) {
      const int64_t n = x.shape[0], cols = x.numel() / n;
      const float* gamma = in[1]->ptr<float>();
      const float* beta = in.size() > 2 ? in[2]->ptr<float>() : nullptr;
      const float* src = x.ptr<float>();
      float* dst = out[0]->ptr<float>();
      const bool v = dense::use_avx512();
      kln::cols_stats_fn* const stats_k = dense::pick(kln::cols_stats_kernels()).fn;
      kln::cols_apply_fn* const apply_k = dense::pick(kln::cols_apply_kernels()).fn;
      kln::cols_fn* const cols_k = dense::pick(kln::cols_kernels()).fn;
      const int nt = int(std::min<int64_t>(omp_get_max_threads(), std::max<int64_t>(1, n * cols / (1 << 14))));
      if (v && nt > 1 && cols < 128 * nt && n >= 16 * nt) {
        // Few columns (one sequence: 128 tokens): split the rows instead, so every thread reads
        // whole rows. Per-thread statistics, merged (Chan et al.'s pairwise update), then each
        // thread writes its rows.
        stats_.assign(size_t(nt) * 2 * size_t(cols), 0.f);
        fin_.resize(2 * size_t(cols));
        float* mean = fin_.data();
        float* rstd = fin_.data() + cols;
#pragma omp parallel num_threads(nt)
        {
          const int t = omp_get_thread_num(), T = omp_get_num_threads();
          const int64_t r0 = n * t / T, r1 = n * (t + 1) / T;
          float* pm = stats_.data() + size_t(t) * 2 * size_t(cols);
          stats_k(src, cols, r0, r1, 0, cols, pm, pm + cols);
#pragma omp barrier
#pragma omp single
          {
            for (int64_t c = 0; c < cols; ++c) {
              double na = 0, ma = 0, m2a = 0;
              for (int u = 0; u < T; ++u) {
                const double nb = double(n * (u + 1) / T - n * u / T);
                const float* q = stats_.data() + size_t(u) * 2 * size_t(cols);
                if (nb == 0) continue;
                const double d = q[c] - ma, nn = na + nb;
                ma += d * nb / nn;
                m2a += q[cols + c] + d * d * na * nb / nn;
                na = nn;
              }
              mean[c] = float(ma);
              rstd[c] = 1.f / std::sqrt(float(m2a) / float(n) + eps_);
            }
          }
          apply_k(src, dst, cols, r0, r1, 0, cols, mean, rstd, gamma, beta);
        }
        return;
      }
      // Split columns in multiples of 16 (whole cache lines per thread).
      const int64_t units = (cols + 15) / 16;
      parallel_rows(units, n * 16 * 4, [&](int64_t b, int64_t e) {
        cols_k(src, dst, n, cols, b * 16, std::min(cols, e * 16), gamma, beta, eps_);
      });
      return;
    }
    const int a = norm_axis(axis_, x.rank());
    const Shape tail(x.shape.begin() + a, x.shape.end());
    const int64_t n = shape_numel(tail), rows = x.numel() / n;
    const float* gamma = in[1]->ptr<float>();
    const float* beta = in.size() > 2 ? in[2]->ptr<float>() : nullptr;
    // gamma/beta smaller than the row (broadcast): expand once per shape.
    if (in[1]->numel() != n) {
      if (g_shape_ != tail || g_src_ != gamma) g_ = expand_to(*in[1], tail), g_shape_ = tail, g_src_ = gamma;
      gamma = g_.data();
    }
    if (beta && in[2]->numel() != n) {
      if (b_shape_ != tail || b_src_ != beta) b_ = expand_to(*in[2], tail), b_shape_ = tail, b_src_ = beta;
      beta = b_.data();
    }
    const float* src = x.ptr<float>();
    float* dst = out[0]->ptr<float>();
    kln::rows_fn* const rows_k = dense::pick(kln::rows_kernels()).fn;
    auto norm = [&](int64_t b, int64_t e) { rows_k(src + b * n, dst + b * n, e - b, n, gamma, beta, eps_); };
    if (!quantized_) {
      parallel_rows(rows, n * 4, norm);
      return;
    }
    // Each thread normalises a block of its rows, then quantizes that block while it is still in
    // L1/L2 (about 32 KB of fp32 per block), so the fp32 output is never read back from memory.
    uint8_t* q = static_cast<uint8_t*>(out[1]->data);
    const int64_t block = std::max<int64_t>(1, 8192 / n);
    parallel_rows(rows, n * 5, [&](int64_t b, int64_t e) {
      for (int64_t r = b; r < e; r += block) {
        const int64_t re = std::min(e, r + block);
        norm(r, re);
        quant::quantize_serial(dst + r * n, q + r * n, (re - r) * n, q_scale_, q_zp_, q_signed_);
      }
    });
  }

 private:
  float eps_;
  int64_t axis_;
  bool ba_ = false;  // transpose_mode 1,0
  bool quantized_ = false;  // output 1: output 0 quantized
  bool q_signed_ = false;
  float q_scale_ = 1.f;
  int q_zp_ = 0;
  std::vector<float> stats_, fin_;  // layernorm_ba with the rows split over threads
  std::vector<float> g_, b_;
  Shape g_shape_, b_shape_;
  const float* g_src_ = nullptr;
  const float* b_src_ = nullptr;
};

class GeluOp : public Operator {
 public:
  explicit GeluOp(const OpInfo& i) : Operator(i) {
    const std::string alg = i.attr("algorithm", "gelu_erf");
    if (alg == "gelu_erf" || alg == "erf")
      tanh_ = false;
    else if (alg == "gelu_tanh" || alg == "tanh")
      tanh_ = true;
    else
      op_error("unknown algorithm '", alg, "' (expected gelu_erf or gelu_tanh)");
  }
  int inplace_input() const override { return 0; }
  std::string kernel() const override {
    return std::string(tanh_ ? "gelu_tanh:" : "gelu_erf:") + dense::kernel_isa();
  }

  void reshape(const TensorList& in, const TensorList& out) override {
    expect_inputs(in, 1, 1);
    if (in[0]->dtype != DType::fp32) op_error("input must be fp32, got ", dtype_name(in[0]->dtype));
    out[0]->dtype = DType::fp32;
    out[0]->shape = in[0]->shape;
  }

  void forward(const TensorList& in, const TensorList& out) override {
    dense::gelu_parallel(tanh_, in[0]->ptr<float>(), out[0]->ptr<float>(), in[0]->numel());
  }

 private:
  bool tanh_ = false;
};

}  // namespace

namespace dense {
void gelu_parallel(bool tanh_form, const float* src, float* dst, int64_t n) {
  ke::unary_fn* const k = pick(tanh_form ? ke::gelu_tanh_kernels() : ke::gelu_erf_kernels()).fn;
  const int64_t chunk = 4096;
  parallel_rows((n + chunk - 1) / chunk, chunk * 16, [&](int64_t b, int64_t e) {
    const int64_t lo = b * chunk, hi = std::min(n, e * chunk);
    k(src + lo, dst + lo, hi - lo);
  });
}
}  // namespace dense

NE_REGISTER_OP("Softmax", SoftmaxOp);
NE_REGISTER_OP("LayerNorm", LayerNormOp);
NE_REGISTER_OP("Gelu", GeluOp);

}  // namespace ne
