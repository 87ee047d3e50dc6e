// The element-wise family's lists (compiled without ISA flags).
#include "kernels/eltwise/eltwise.hpp"

namespace ne::kernels::eltwise {

const UkernelList<unary_fn>& gelu_erf_kernels() {
  static const UkernelList<unary_fn> l{"gelu_erf", {
#define ELT_GELU_ERF(name, isa, note) {#name, ne::cpu::Isa::isa, &name, note},
#include "kernels/eltwise/eltwise_kernels.inc"
  }};
  return l;
}

const UkernelList<unary_fn>& gelu_tanh_kernels() {
  static const UkernelList<unary_fn> l{"gelu_tanh", {
#define ELT_GELU_TANH(name, isa, note) {#name, ne::cpu::Isa::isa, &name, note},
#include "kernels/eltwise/eltwise_kernels.inc"
  }};
  return l;
}

const UkernelList<softmax_fn>& softmax_kernels() {
  static const UkernelList<softmax_fn> l{"softmax", {
#define ELT_SOFTMAX(name, isa, note) {#name, ne::cpu::Isa::isa, &name, note},
#include "kernels/eltwise/eltwise_kernels.inc"
  }};
  return l;
}

}  // namespace ne::kernels::eltwise
