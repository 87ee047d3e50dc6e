// ne::kernels::quant — the quantization kernels of the int8 / bf16 operators: min/max of an
// fp32 tensor (dynamic quantization), fp32 -> u8/s8 quantization, fp32 -> bf16.
// Single-threaded: the callers (executor/ops/quant_common.cpp) split the range over threads.
//
// Rounding is round-half-to-even everywhere (ONNX QuantizeLinear):
//   q = sat(nearbyint(x / scale) + zp), NaN -> the lowest value (0 for u8, -128 for s8),
// the result of a true division x / scale (as ONNX Runtime's MLAS computes it), bit for bit, in
// every entry. bf16: round to nearest even; NaN stays NaN (quiet bit set).
//
// The lists are quant_kernels.inc (best first, generic last), read by dispatch.cpp, the tests
// and the bench.
#pragma once
#include <cstdint>

#include "kernels/ukernel_list.hpp"

namespace ne::kernels::quant {

using minmax_fn = void(const float* x, int64_t n, float* mn, float* mx);  // n >= 0 (n = 0: +inf, -inf)
using quantize_fn = void(const float* x, void* q, int64_t n, float scale, int zp, bool is_signed);
using to_bf16_fn = void(const float* x, uint16_t* y, int64_t n);

const UkernelList<minmax_fn>& minmax_kernels();
const UkernelList<quantize_fn>& quantize_kernels();
const UkernelList<to_bf16_fn>& to_bf16_kernels();

// The functions of the lists.
#define QUANT_MINMAX(name, isa, note) minmax_fn name;
#define QUANT_QUANTIZE(name, isa, note) quantize_fn name;
#define QUANT_TO_BF16(name, isa, note) to_bf16_fn name;
#include "kernels/quant/quant_kernels.inc"

}  // namespace ne::kernels::quant
