// ne::kernels::eltwise — fp32 element-wise and row-wise kernels of the dense operators:
// Gelu (erf and tanh forms) over n floats, Softmax over contiguous rows. Single-threaded: the
// callers (executor/ops/dense_rowwise.cpp, dense_matmul.cpp) split the work over threads.
// src may equal dst.
//
// Accuracy (tests/kernels/test_eltwise.cpp states the bounds it checks):
//   __avx512: exp is a Cody-Waite reduction + degree-5 polynomial (1-2 ulp on [-104, 88.7]);
//   erf the piecewise rational approximations of fdlibm's s_erff.c: gelu within a few ulp.
//   __avx2: gelu_tanh as __avx512's, 2^n built in the exponent bits (same polynomial).
//   __generic: libm (erfcf, expf).
//
// The lists are eltwise_kernels.inc (best first, generic last), read by dispatch.cpp, the tests
// and the bench.
#pragma once
#include <cstdint>

#include "kernels/ukernel_list.hpp"

namespace ne::kernels::eltwise {

using unary_fn = void(const float* src, float* dst, int64_t n);
using softmax_fn = void(const float* src, float* dst, int64_t rows, int64_t n);  // rows of n, contiguous

const UkernelList<unary_fn>& gelu_erf_kernels();
const UkernelList<unary_fn>& gelu_tanh_kernels();
const UkernelList<softmax_fn>& softmax_kernels();

#define ELT_GELU_ERF(name, isa, note) unary_fn name;
#define ELT_GELU_TANH(name, isa, note) unary_fn name;
#define ELT_SOFTMAX(name, isa, note) softmax_fn name;
#include "kernels/eltwise/eltwise_kernels.inc"

}  // namespace ne::kernels::eltwise
