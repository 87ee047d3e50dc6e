// Shared helpers of the int8 / bf16 operators (InnerProduct.s8, InnerProduct.bf16, Quantize,
// Dequantize): per-tensor quantization of fp32 activations, the dynamic (per call) scale and zero
// point, fp32 -> bf16. Compiled without ISA flags; the kernels are kernels/quant (one list per op,
// kernels/quant/quant_kernels.inc: AVX-512 first, generic last), chosen per call.
//
// Rounding is round-half-to-even everywhere (ONNX QuantizeLinear): q = sat(nearbyint(x / scale) + zp)
// — the result of a true division x / scale (as ONNX Runtime's MLAS computes it), bit for bit.
// The AVX-512 body multiplies by 1/scale and redoes the division only for lanes within a few ulp
// of a half step (kernels/quant/quant_avx512.cpp): no faster when the fp32 src streams from memory
// (quantizing [1024, 768] is then bound by reading it), but the division bounded LayerNorm's
// fused quantization (src in cache): 12 LNs of BERT-base int8 (docs/OPS.md LayerNorm).
#pragma once
#include <cstdint>

#include "executor/ops/portable.hpp"
#include "kernels/quant/quant.hpp"

namespace ne::quant {

// The activation quantization parameters ONNX Runtime's DynamicQuantizeLinear computes from a
// tensor's min and max (range widened to include 0): u8 scale = (max − min) / 255,
// zp = sat(nearbyint(−min / scale)); s8 (symmetric) scale = max|.| / 127, zp = 0. A zero range
// gives scale 1, zp 0.
void dynamic_qparams(float mn, float mx, bool is_signed, float* scale, int* zero_point);

// min and max of x[0..n) (n > 0; NaNs ignored), split over the OpenMP threads.
void minmax(const float* x, int64_t n, float* mn, float* mx);

// q[i] = sat(nearbyint(x[i] / scale) + zp) to u8 (is_signed false) or s8, split over threads.
void quantize(const float* x, void* q, int64_t n, float scale, int zp, bool is_signed);

// The same, single-threaded (for an op that already runs in its own OpenMP region, e.g.
// LayerNorm quantizing the rows each thread just normalised): the same bodies, the same bits.
void quantize_serial(const float* x, void* q, int64_t n, float scale, int zp, bool is_signed);

// y[i] = bf16(x[i]) (round to nearest even, NaN kept quiet), split over threads.
void to_bf16(const float* x, uint16_t* y, int64_t n);
void from_bf16(const uint16_t* x, float* y, int64_t n);

// True when the kernels chosen are not forced generic (force_portable(), executor/ops/portable.hpp:
// one switch for these and the dense row kernels) and the CPU (under the NE_MAX_ISA cap) has
// avx512_core, i.e. the __avx512 entries run.
bool use_avx512();
// The entries the wrappers above run now (kernels/quant/quant.hpp lists, generic when forced),
// e.g. minmax_kernel().name == "minmax_f32__avx512".
const ne::kernels::Ukernel<ne::kernels::quant::minmax_fn>& minmax_kernel();
const ne::kernels::Ukernel<ne::kernels::quant::quantize_fn>& quantize_kernel();
const ne::kernels::Ukernel<ne::kernels::quant::to_bf16_fn>& to_bf16_kernel();

}  // namespace ne::quant
