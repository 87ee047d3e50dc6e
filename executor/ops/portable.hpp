// The one switch that makes the operators run the portable (generic) entries of the kernels/ row
// lists: dense fp32 (kernels/eltwise, kernels/layernorm, the small GEMMs: ne::dense::use_avx512)
// and quantization (kernels/quant: ne::quant::use_avx512). Tests use it to check the generic
// entries against the AVX-512 ones in one process. It is not an ISA cap: cpu::set_isa_cap()
// (or NE_MAX_ISA) is the one cap, and lowers every family at once (sparse GEMM, attention, and
// oneDNN at start); this switch changes only which row-list entry the operators pick.
// No dependencies: ISA-flagged operator files may include it.
#pragma once

namespace ne::ops {

void force_portable(bool on);  // true: generic entries; false: back to ne::cpu's choice
bool portable_forced();

}  // namespace ne::ops

// The names the operator families (and their tests) use: the same switch.
namespace ne::dense {
using ne::ops::force_portable;
using ne::ops::portable_forced;
}  // namespace ne::dense
namespace ne::quant {
using ne::ops::force_portable;
using ne::ops::portable_forced;
}  // namespace ne::quant
