// ONNX protobuf -> IR, one node at a time (no fusion). Internal to compile/.
#pragma once
#include <onnx/onnx_pb.h>

#include <string>

#include "common/ir.hpp"
#include "compile/compile.hpp"

namespace ne {

// Parses an ONNX file; errors name the file (not ONNX, truncated, empty).
onnx::ModelProto read_onnx_model(const std::string& path);

// Converts a TensorProto (raw or typed fields, or external data in `model_dir`).
// `what` names it in errors. External data must resolve (symbolic links followed) inside
// `model_dir`, or inside the directory `model_file` (the model's path, if given) resolves to.
BoundTensor onnx_tensor_value(const onnx::TensorProto& t, const std::string& model_dir,
                              const std::string& what, const std::string& model_file = "");

// Lowers every node 1:1 to IR ops of docs/OPS.md. Initializers and Constant nodes become
// weights; `opt.bound_inputs` replace graph inputs by weights. Throws one ne::Error listing all
// unsupported nodes.
Model lower_onnx(const onnx::ModelProto& mp, const std::string& path, const CompileOptions& opt);

// Adds a weight; an empty one (a 0 in its shape) still gets a non-null data pointer, so that
// readers can tell "constant, no elements" from "no data".
void put_weight(Model& m, const std::string& name, DType dt, const Shape& shape,
                std::vector<uint8_t> bytes);

// ONNX TensorProto data type -> IR dtype; false if the IR has no such dtype.
bool onnx_dtype(int onnx_type, DType* out);

}  // namespace ne
