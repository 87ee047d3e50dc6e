// The quantization family's lists (compiled without ISA flags).
#include "kernels/quant/quant.hpp"

namespace ne::kernels::quant {

const UkernelList<minmax_fn>& minmax_kernels() {
  static const UkernelList<minmax_fn> l{"minmax", {
#define QUANT_MINMAX(name, isa, note) {#name, ne::cpu::Isa::isa, &name, note},
#include "kernels/quant/quant_kernels.inc"
  }};
  return l;
}

const UkernelList<quantize_fn>& quantize_kernels() {
  static const UkernelList<quantize_fn> l{"quantize", {
#define QUANT_QUANTIZE(name, isa, note) {#name, ne::cpu::Isa::isa, &name, note},
#include "kernels/quant/quant_kernels.inc"
  }};
  return l;
}

const UkernelList<to_bf16_fn>& to_bf16_kernels() {
  static const UkernelList<to_bf16_fn> l{"to_bf16", {
#define QUANT_TO_BF16(name, isa, note) {#name, ne::cpu::Isa::isa, &name, note},
#include "kernels/quant/quant_kernels.inc"
  }};
  return l;
}

}  // namespace ne::kernels::quant
