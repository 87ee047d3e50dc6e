// compile_onnx: load -> lower -> (fold, fuse) -> finalize.
#include "compile/compile.hpp"

#include "compile/onnx_import.hpp"
#include "compile/passes/passes.hpp"

namespace ne {

Model compile_onnx(const std::string& onnx_path, const CompileOptions& opt) {
  NE_CHECK(opt.precision == "fp32", onnx_path, ": precision '", opt.precision,
           "' is not supported yet (only fp32; int8 and bf16 are later work)");
  NE_CHECK(!opt.transpose, onnx_path, ": --transpose is not supported yet");
  NE_CHECK(!opt.slim, onnx_path, ": --slim is not supported yet");
  onnx::ModelProto mp = read_onnx_model(onnx_path);
  Model m = lower_onnx(mp, onnx_path, opt);
  validate(m);
  if (opt.fuse) {
    for (int round = 0; round < 8; ++round) {
      int changed = pass::fold_constants(m);
      changed += pass::fold_shapes(m);
      changed += pass::remove_dead_ops(m);
      if (!changed) break;
    }
    pass::fuse_layernorm(m);
    pass::fuse_gelu(m);
    pass::remove_dead_ops(m);
    pass::fold_unsqueeze(m);
    pass::fuse_embeddings(m);
    pass::remove_dead_ops(m);
    for (int round = 0; round < 8; ++round) {
      int changed = pass::fuse_inner_product(m);
      changed += pass::fuse_attention(m);
      changed += pass::remove_dead_ops(m);
      if (!changed) break;
    }
  }
  pass::finalize_inputs(m);
  validate(m);
  return m;
}

}  // namespace ne
