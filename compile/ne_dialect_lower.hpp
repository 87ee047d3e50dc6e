// Internal to the Neural Engine dialect lowering (ne_dialect.cpp, ne_dialect_ops.cpp): symbolic
// shapes in the batch B and sequence S of the model's [B, S] inputs, and the lowerer's state.
#pragma once
#include <map>
#include <set>
#include <string>
#include <vector>

#include "common/ir.hpp"
#include "compile/ne_dialect.hpp"

namespace ne {
namespace ne_dialect {

// c · B^b · S^s; ok = false when the dimension is not known in these terms.
struct Sym {
  int b = 0, s = 0;
  int64_t c = 1;
  bool ok = true;
  static Sym k(int64_t v) { return Sym{0, 0, v, true}; }
  static Sym unknown() { return Sym{0, 0, 1, false}; }
  bool is_const() const { return ok && b == 0 && s == 0; }
  Sym operator*(const Sym& o) const { return Sym{b + o.b, s + o.s, c * o.c, ok && o.ok}; }
  bool operator==(const Sym& o) const { return ok && o.ok && b == o.b && s == o.s && c == o.c; }
  bool operator!=(const Sym& o) const { return !(*this == o); }
};
using SShape = std::vector<Sym>;
Sym numel(const SShape& s);
// a / b when exact (exponents and constant divide); false otherwise.
bool sym_div(const Sym& a, const Sym& b, Sym* r);
std::string sym_str(const Sym& d);
std::string shape_str(const SShape& s);
// The layout we keep a tensor in: a leading B·S·c dim (the Neural Engine's 2-D token-major
// activations, [B·S, H]) is kept as [B, S·c, ...], so activations are [B, S, H] as in our own IRs.
SShape expand(const SShape& s);

// One Neural Engine tensor: the name of the tensor of ours holding it, its shape as the Neural
// Engine has it, the shape ours has (same data, row-major; only dims split or merged).
struct Tens {
  std::string name;
  SShape ne, ours;
  DType dtype = DType::fp32;
  bool dropped = false;  // a quantization side output (`_min`, `_scale`): no tensor of ours
  // Held feature-major by the Neural Engine (transpose_mode_int8 chains); `ne` and ours are the
  // token-major twin, which ours computes.
  bool fm = false;
  DType qdtype = DType::fp32;  // the Neural Engine's quantized type of it (u8 / s8), if any
};

class Lowerer {
 public:
  explicit Lowerer(const Model& in);
  NeLowered run();

  // ---- used by the per-operator lowerings (ne_dialect_ops.cpp)
  const Model& in;
  NeLowered res;
  Model& out;
  std::map<std::string, Tens> ts;
  std::string ref;       // a model input of shape [B, S] (dims for shape tensors)
  const OpInfo* cur = nullptr;  // the Neural Engine op being lowered (for messages)

  [[noreturn]] void error(const std::string& msg) const;
  const Tens& get(const std::string& ne_name);
  void set(const std::string& ne_name, const std::string& ours, const SShape& ne, const SShape& ours_shape,
           DType dt = DType::fp32);
  std::string fresh(const std::string& base);
  OpInfo& emit(const std::string& type, const std::string& name, std::vector<std::string> ins,
               std::vector<std::string> outs, std::vector<std::pair<std::string, std::string>> attrs = {});
  std::string const_i64(const std::string& base, const std::vector<int64_t>& v);
  std::string const_f32(const std::string& base, float v);
  // An int64 [1] tensor holding a symbolic dim at run time (from Shape(ref)).
  std::string sym_tensor(const Sym& d);
  // Reshape `src` (ours, shape `from`) to `to`; returns the tensor holding it (src if equal).
  std::string reshape(const std::string& src, const SShape& from, const SShape& to, const std::string& out_name);
  // The fp32 [K, N] copy of an InnerProduct weight (transposed from [N, K], bf16 widened, s8
  // dequantized with per-channel `scale`); cached per (weight, layout).
  std::string weight_fp32(const std::string& w, bool stored_nk, const std::vector<float>* scale, DType* was);
  std::vector<float> floats_of(const std::string& weight);
  // A weight as ours reads it: fp32 as is (mapped), bf16 widened to an fp32 copy.
  std::string weight_f32(const std::string& weight);  // any float / int weight, as float
  SShape weight_shape(const std::string& w);

  // Attributes: every attribute of the op must be in `known`; returns the op's attribute map.
  std::map<std::string, std::string> attrs(const std::set<std::string>& known);
  // Neural Engine shape inference helpers.
  SShape dst_shape(const std::vector<int64_t>& want, const Sym& size, const SShape* ref_shape,
                   const std::vector<int64_t>& ref_dims);
  SShape merge_dims(const SShape& s, std::vector<int64_t> mul, bool one_based);

 private:
  std::set<std::string> names_;
  std::map<std::string, std::string> weight_cache_;
  std::map<int, std::string> sym_cache_;
  int counter_ = 0;
};

// Per-operator lowerings (ne_dialect_ops.cpp, ne_dialect_attention.cpp). Each reads L.cur.
void lower_op(Lowerer& L);
void lower_attention_ops(Lowerer& L);  // Matmul, Softmax, MultiHeadAttention, LayerNorm, the rest
// Records the weights' precision (fp32 < bf16 | int8 | int8_dynamic); a model mixing them is refused.
void res_precision(Lowerer& L, const std::string& p);
std::vector<int64_t> ints_of(const std::string& v);
bool truthy(const std::string& v);
std::string perm_attr(const std::string& v);

}  // namespace ne_dialect
}  // namespace ne
