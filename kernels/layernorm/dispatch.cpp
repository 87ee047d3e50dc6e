// The LayerNorm family's lists (compiled without ISA flags).
#include "kernels/layernorm/layernorm.hpp"

namespace ne::kernels::layernorm {

const UkernelList<rows_fn>& rows_kernels() {
  static const UkernelList<rows_fn> l{"layernorm_rows", {
#define LN_ROWS(name, isa, note) {#name, ne::cpu::Isa::isa, &name, note},
#include "kernels/layernorm/layernorm_kernels.inc"
  }};
  return l;
}

const UkernelList<cols_fn>& cols_kernels() {
  static const UkernelList<cols_fn> l{"layernorm_cols", {
#define LN_COLS(name, isa, note) {#name, ne::cpu::Isa::isa, &name, note},
#include "kernels/layernorm/layernorm_kernels.inc"
  }};
  return l;
}

const UkernelList<cols_stats_fn>& cols_stats_kernels() {
  static const UkernelList<cols_stats_fn> l{"layernorm_cols_stats", {
#define LN_COLS_STATS(name, isa, note) {#name, ne::cpu::Isa::isa, &name, note},
#include "kernels/layernorm/layernorm_kernels.inc"
  }};
  return l;
}

const UkernelList<cols_apply_fn>& cols_apply_kernels() {
  static const UkernelList<cols_apply_fn> l{"layernorm_cols_apply", {
#define LN_COLS_APPLY(name, isa, note) {#name, ne::cpu::Isa::isa, &name, note},
#include "kernels/layernorm/layernorm_kernels.inc"
  }};
  return l;
}

}  // namespace ne::kernels::layernorm
