// IRs written by Intel Neural Engine's own Python compiler (its dialect: InnerProduct
// `src1_perm` / `reshape_dims` with shape-donor inputs, PaddingSequence, StridedSlice,
// PositionIds / TokenTypeIds, MultiHeadAttention, Quantize with `_min` / `_scale` tensors, `:0`
// tensor names, s32 ids) are recognised at load and lowered to our operators, so the executor
// keeps one dialect. The mapping is documented in docs/NE_DIALECT.md.
#pragma once
#include <map>
#include <string>
#include <utility>

#include "common/ir.hpp"
#include "compile/compile.hpp"

namespace ne {

// True when the model uses the Neural Engine compiler's vocabulary; `evidence` (optional) names
// what gave it away ("operator 'x' (PaddingSequence)", "InnerProduct 'y' attribute src1_perm").
bool is_ne_dialect(const Model& m, std::string* evidence = nullptr);

// What a Neural Engine IR lowers to: a graph of our (unfused, fp32-weight) operators plus the
// precision its weights were in, for compile_model() to fuse and convert back.
struct NeLowered {
  Model model;
  std::string precision = "fp32";  // fp32 | bf16 | int8 | int8_dynamic
  bool transposed = false;         // written by transpose_mode_int8 (feature-major sparse chains)
  std::map<std::string, std::pair<float, float>> ranges;  // static int8: activation [min, max]
};
NeLowered lower_ne_dialect(const Model& ne_model);

// load_ir, then, for a Neural Engine IR, lower_ne_dialect + compile_model (the same passes as our
// own compiler: the result runs the same fused, sparse and packed paths). Our own IRs come back
// as load_ir read them. Every front end (neural_engine, the Python module, the server) loads
// IR directories through this.
Model load_model_ir(const std::string& conf_path, const std::string& bin_path);

}  // namespace ne
