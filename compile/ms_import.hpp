// ONNX Runtime's com.microsoft transformer ops (what `onnxruntime.transformers.optimizer
// --model_type bert` and optimum `--optimize O2` write) -> the IR ops the unoptimized export
// lowers to, so that the fusion passes make the same InnerProducts, LayerNorms and Attention
// ops of them. Internal to compile/; called by the ONNX lowerer for each com.microsoft node.
#pragma once
#include <onnx/onnx_pb.h>

#include <functional>
#include <map>
#include <string>
#include <vector>

#include "common/ir.hpp"

namespace ne {

class MsOpLowerer {
 public:
  // Appends an IR op (trailing empty inputs dropped) and returns it.
  using Emit = std::function<OpInfo&(const std::string& name, const std::string& type,
                                     std::vector<std::string> in, std::vector<std::string> out)>;
  // A fresh tensor name derived from base.
  using Tmp = std::function<std::string(const std::string& base)>;

  MsOpLowerer(Model& m, const onnx::GraphProto& g, Emit emit, Tmp tmp);

  static bool is_ms_domain(const std::string& domain) { return domain == "com.microsoft"; }
  // The com.microsoft op types lowered here.
  static std::vector<std::string> supported();
  // Lowers one com.microsoft node; false (with *why naming the attribute, input or output that
  // is not supported, or empty for an unknown op type) if it cannot.
  bool lower(const onnx::NodeProto& n, std::string* why);

 private:
  bool attention(const onnx::NodeProto& n, std::string* why);
  bool embed_layer_norm(const onnx::NodeProto& n, std::string* why);
  bool skip_layer_norm(const onnx::NodeProto& n, std::string* why);
  bool gelu(const onnx::NodeProto& n, std::string* why);
  // The additive attention mask [B, 1, 1, S] (0 keep, filter masked) from mask_index; shared
  // by every Attention node reading the same mask_index.
  std::string attention_mask(const std::string& mask_index, int rank, const std::string& x, float filter,
                             const std::string& node);
  int rank_of(const std::string& t, int depth = 0) const;
  bool consumed(const std::string& t) const;
  std::string scalar(const std::string& base, DType dt, double v);

  Model& m_;
  const onnx::GraphProto& g_;
  Emit emit_;
  Tmp tmp_;
  std::map<std::string, const onnx::NodeProto*> producer_;
  std::map<std::string, int> ranks_;       // ranks of tensors written here
  std::map<std::string, std::string> masks_;  // (mask_index, filter) -> additive mask
  // mask_index written by EmbedLayerNormalization -> its Shape(input_ids)[1:2] (the sequence
  // length [1], int64): the Attention mask takes S from there, not from the encoder activations
  // (an extra reader there would hide the layer from the --transpose pattern).
  std::map<std::string, std::string> seq_of_mask_;
};

}  // namespace ne
