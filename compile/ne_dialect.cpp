// Neural Engine dialect: recognition, the lowerer's machinery, and load_model_ir.
// Per-operator lowerings are in ne_dialect_ops.cpp; the mapping is in docs/NE_DIALECT.md.
#include "compile/ne_dialect.hpp"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <stdexcept>

#include "common/error.hpp"
#include "compile/ne_dialect_lower.hpp"
#include "compile/passes/graph.hpp"

namespace ne {
namespace ne_dialect {

Sym numel(const SShape& s) {
  Sym r = Sym::k(1);
  for (auto& d : s) r = r * d;
  return r;
}

bool sym_div(const Sym& a, const Sym& b, Sym* r) {
  if (!a.ok || !b.ok || b.c == 0 || a.b < b.b || a.s < b.s || a.c % b.c != 0) return false;
  *r = Sym{a.b - b.b, a.s - b.s, a.c / b.c, true};
  return true;
}

std::string sym_str(const Sym& d) {
  if (!d.ok) return "?";
  std::string r;
  if (d.c != 1 || (d.b == 0 && d.s == 0)) r = std::to_string(d.c);
  for (int i = 0; i < d.b; ++i) r += (r.empty() ? "" : "*") + std::string("B");
  for (int i = 0; i < d.s; ++i) r += (r.empty() ? "" : "*") + std::string("S");
  return r;
}

std::string shape_str(const SShape& s) {
  std::string r = "[";
  for (size_t i = 0; i < s.size(); ++i) r += (i ? ", " : "") + sym_str(s[i]);
  return r + "]";
}

SShape expand(const SShape& s) {
  SShape r;
  for (size_t i = 0; i < s.size(); ++i) {
    if (i == 0 && s[i].ok && s[i].b == 1 && s[i].s == 1) {
      r.push_back(Sym{1, 0, 1, true});
      r.push_back(Sym{0, 1, s[i].c, true});
    } else {
      r.push_back(s[i]);
    }
  }
  return r;
}

// ------------------------------------------------------------------ the lowerer's machinery

Lowerer::Lowerer(const Model& m) : in(m), out(res.model) {
  out.name = m.name;
  out.source = m.source;
  out.blob = m.blob;
  for (auto& kv : m.tensors) names_.insert(kv.first);
}

void Lowerer::error(const std::string& msg) const {
  std::string where = in.source.empty() ? std::string("<in-memory model>") : in.source;
  if (cur) fail(where, ": operator '", cur->name, "' (", cur->type, "): ", msg, " [Neural Engine dialect]");
  fail(where, ": Neural Engine dialect: ", msg);
}

const Tens& Lowerer::get(const std::string& n) {
  auto it = ts.find(n);
  if (it == ts.end()) {
    const TensorInfo* t = in.find(n);
    if (t && t->is_weight) {
      Tens w;
      w.name = n;
      w.dtype = t->dtype;
      for (auto d : t->shape) w.ne.push_back(Sym::k(d));
      w.ours = w.ne;
      if (!out.tensors.count(n)) out.tensors[n] = *t;
      it = ts.emplace(n, w).first;
    } else {
      error("reads tensor '" + n + "', which no earlier operator writes");
    }
  }
  if (it->second.dropped)
    error("reads '" + n + "', a quantization side output (min / scale) that only InnerProduct and "
          "MultiHeadAttention may read");
  return it->second;
}

void Lowerer::set(const std::string& n, const std::string& ours, const SShape& ne, const SShape& os, DType dt) {
  Tens t;
  t.name = ours;
  t.ne = ne;
  t.ours = os;
  t.dtype = dt;
  ts[n] = t;
  names_.insert(n);
  names_.insert(ours);
}

std::string Lowerer::fresh(const std::string& base) {
  std::string n = base;
  while (names_.count(n) || in.tensors.count(n)) n = base + "_" + std::to_string(++counter_);
  names_.insert(n);
  return n;
}

OpInfo& Lowerer::emit(const std::string& type, const std::string& name, std::vector<std::string> ins,
                      std::vector<std::string> outs, std::vector<std::pair<std::string, std::string>> attrs) {
  for (auto& o : outs) names_.insert(o);
  out.ops.push_back(pass::make_op(name, type, std::move(ins), std::move(outs), std::move(attrs)));
  return out.ops.back();
}

std::string Lowerer::const_i64(const std::string& base, const std::vector<int64_t>& v) {
  std::string n = fresh(base);
  out.add_weight(n, DType::int64, {int64_t(v.size())}, v);
  return n;
}

std::string Lowerer::const_f32(const std::string& base, float v) {
  std::string n = fresh(base);
  out.add_weight(n, DType::fp32, {}, std::vector<float>{v});
  return n;
}

std::string Lowerer::sym_tensor(const Sym& d) {
  if (!d.ok) error("a dimension that is not a product of the batch and sequence sizes is needed at run time");
  const int key = d.b * 2 + d.s;
  if (d.b > 1 || d.s > 1) error("a dimension " + sym_str(d) + " is needed at run time");
  std::string base;
  if (key != 0) {
    auto it = sym_cache_.find(key);
    if (it != sym_cache_.end()) {
      base = it->second;
    } else {
      if (ref.empty()) error("needs the batch / sequence size, but the model has no [-1, -1] input");
      auto dim = [&](int i) {
        std::string o = fresh("ne_dialect/" + std::string(i ? "seq" : "batch"));
        emit("Shape", fresh("ne_dialect/shape_" + std::to_string(i)), {ref}, {o},
             {{"start", std::to_string(i)}, {"end", std::to_string(i + 1)}});
        return o;
      };
      if (key == 1) base = dim(1);
      else if (key == 2) base = dim(0);
      else {
        std::string b = sym_tensor(Sym{1, 0, 1, true}), s = sym_tensor(Sym{0, 1, 1, true});
        base = fresh("ne_dialect/tokens");
        emit("BinaryOp", fresh("ne_dialect/tokens_mul"), {b, s}, {base}, {{"algorithm", "mul"}});
      }
      sym_cache_[key] = base;
    }
    if (d.c == 1) return base;
    std::string r = fresh(base + "_x" + std::to_string(d.c));
    emit("BinaryOp", fresh(r + "_mul"), {base, const_i64(r + "_c", {d.c})}, {r}, {{"algorithm", "mul"}});
    return r;
  }
  return const_i64("ne_dialect/dim", {d.c});
}

std::string Lowerer::reshape(const std::string& src, const SShape& from, const SShape& to,
                             const std::string& out_name) {
  if (from.size() == to.size() && std::equal(from.begin(), from.end(), to.begin())) return src;
  Sym nf = numel(from), nt = numel(to);
  if (nf.ok && nt.ok && nf != nt)
    error("reshape of " + shape_str(from) + " to " + shape_str(to) + ": element counts differ");
  std::vector<int64_t> want;
  int infer = 0;
  for (size_t i = 0; i < to.size(); ++i) {
    if (to[i].is_const()) want.push_back(to[i].c);
    else if (i < from.size() && from[i] == to[i]) want.push_back(0);
    else want.push_back(-1), ++infer;
  }
  std::string o = out_name.empty() ? fresh(src + "/reshaped") : out_name;
  const std::string opname = fresh(o + "/ne_reshape");
  // A 0 in `want` copies the input dim: fine unless a constant 0 dim is wanted (not in these models).
  if (infer <= 1) {
    std::string ds;
    for (size_t i = 0; i < want.size(); ++i) ds += (i ? "," : "") + std::to_string(want[i]);
    emit("Reshape", opname, {src}, {o}, {{"dst_shape", ds}});
  } else {
    std::vector<std::string> parts;
    for (auto& d : to) parts.push_back(sym_tensor(d));
    std::string shape = fresh(o + "/shape");
    emit("Concat", fresh(o + "/shape_concat"), parts, {shape}, {{"axis", "0"}});
    emit("Reshape", opname, {src, shape}, {o});
  }
  return o;
}

std::string Lowerer::weight_f32(const std::string& w) {
  const TensorInfo* t = in.find(w);
  if (!t || !t->is_weight) error("'" + w + "' must be a weight (a tensor with a location in model.bin)");
  if (t->dtype == DType::fp32) {
    if (!out.tensors.count(w)) out.tensors[w] = *t;
    return w;
  }
  if (t->dtype != DType::bf16) error("weight '" + w + "' has dtype " + dtype_name(t->dtype) + " (fp32 or bf16)");
  auto it = weight_cache_.find(w + "|f32");
  if (it != weight_cache_.end()) return it->second;
  std::string n = fresh(w + "/fp32");
  out.add_weight(n, DType::fp32, t->shape, floats_of(w));
  return weight_cache_[w + "|f32"] = n;
}

SShape Lowerer::weight_shape(const std::string& w) {
  const TensorInfo* t = in.find(w);
  if (!t || !t->is_weight) error("'" + w + "' must be a weight (a tensor with a location in model.bin)");
  SShape s;
  for (auto d : t->shape) s.push_back(Sym::k(d));
  return s;
}

std::vector<float> Lowerer::floats_of(const std::string& w) {
  const TensorInfo* t = in.find(w);
  if (!t || !t->is_weight || !t->data) error("'" + w + "' must be a weight with data");
  const int64_t n = t->numel();
  if (uint64_t(n) * dtype_size(t->dtype) != t->nbytes)
    error("weight '" + w + "' has " + std::to_string(t->nbytes) + " bytes for shape of " + std::to_string(n) +
          " elements of " + dtype_name(t->dtype));
  std::vector<float> v(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) {
    switch (t->dtype) {
      case DType::fp32: v[i] = t->as<float>()[i]; break;
      case DType::bf16: v[i] = bf16_to_fp32(t->as<uint16_t>()[i]); break;
      case DType::s8: v[i] = float(t->as<int8_t>()[i]); break;
      case DType::u8: v[i] = float(t->as<uint8_t>()[i]); break;
      case DType::s32: case DType::int32: v[i] = float(t->as<int32_t>()[i]); break;
      case DType::int64: v[i] = float(t->as<int64_t>()[i]); break;
      default: error("weight '" + w + "' has dtype " + dtype_name(t->dtype) + ", not a number type read here");
    }
  }
  return v;
}

std::string Lowerer::weight_fp32(const std::string& w, bool stored_nk, const std::vector<float>* scale, DType* was) {
  const TensorInfo* t = in.find(w);
  if (!t || !t->is_weight) error("weight '" + w + "' must be a constant (a tensor with a location in model.bin)");
  if (t->shape.size() != 2) error("weight '" + w + "' must be 2-D, has rank " + std::to_string(t->shape.size()));
  *was = t->dtype;
  if (t->dtype != DType::fp32 && t->dtype != DType::bf16 && t->dtype != DType::s8)
    error("weight '" + w + "' has dtype " + dtype_name(t->dtype) + " (expected fp32, bf16 or s8)");
  if (t->dtype == DType::s8 && !scale) error("s8 weight '" + w + "' has no min / scale inputs");
  const std::string key = w + (stored_nk ? "|nk" : "|kn");
  auto it = weight_cache_.find(key);
  if (it != weight_cache_.end()) return it->second;
  if (t->dtype == DType::fp32 && !stored_nk) {  // already ours: keep the mapped bytes
    if (!out.tensors.count(w)) out.tensors[w] = *t;
    return weight_cache_[key] = w;
  }
  std::vector<float> v = floats_of(w);
  const int64_t R = t->shape[0], C = t->shape[1];
  const int64_t K = stored_nk ? C : R, N = stored_nk ? R : C;
  if (scale && !(scale->size() == size_t(N) || scale->size() == 1))
    error("weight '" + w + "': " + std::to_string(scale->size()) + " scales for " + std::to_string(N) +
          " output channels");
  std::vector<float> kn(size_t(K * N));
  for (int64_t k = 0; k < K; ++k)
    for (int64_t n = 0; n < N; ++n) {
      float x = stored_nk ? v[size_t(n * C + k)] : v[size_t(k * C + n)];
      if (scale) x *= (*scale)[scale->size() == 1 ? 0 : size_t(n)];
      kn[size_t(k * N + n)] = x;
    }
  std::string n = fresh(w + "/fp32");
  out.add_weight(n, DType::fp32, {K, N}, kn);
  return weight_cache_[key] = n;
}

std::map<std::string, std::string> Lowerer::attrs(const std::set<std::string>& known) {
  std::map<std::string, std::string> r;
  for (auto& kv : cur->attrs) {
    if (!known.count(kv.first)) {
      std::string k;
      for (auto& a : known) k += (k.empty() ? "" : ", ") + a;
      error("unknown attribute '" + kv.first + "' (value '" + kv.second + "'): " + cur->type +
            (k.empty() ? std::string(" takes no attributes") : " takes " + k));
    }
    r[kv.first] = kv.second;
  }
  return r;
}

SShape Lowerer::dst_shape(const std::vector<int64_t>& want, const Sym& size, const SShape* ref_shape,
                          const std::vector<int64_t>& ref_dims) {
  SShape r;
  for (auto w : want) r.push_back(w == -1 ? Sym::unknown() : Sym::k(w));
  std::vector<bool> fill(want.size());
  for (size_t i = 0; i < want.size(); ++i) fill[i] = want[i] == -1;
  if (ref_shape && !ref_dims.empty()) {
    size_t j = 0;
    for (size_t i = 0; i < want.size() && j < ref_dims.size(); ++i) {
      if (!fill[i]) continue;
      const int64_t d = ref_dims[j++];
      if (d < 0 || size_t(d) >= ref_shape->size())
        error("dims / reshape_dims index " + std::to_string(d) + " is outside the shape donor's rank " +
              std::to_string(ref_shape->size()));
      r[i] = (*ref_shape)[size_t(d)];
      fill[i] = false;
    }
  }
  int idx = -1;
  Sym known = Sym::k(1);
  for (size_t i = 0; i < want.size(); ++i) {
    if (fill[i]) idx = int(i);
    else known = known * r[i];
  }
  if (idx >= 0) {
    Sym q;
    if (!sym_div(size, known, &q))
      error("cannot infer the -1 of shape " + shape_str(r) + " from " + sym_str(size) + " elements");
    r[size_t(idx)] = q;
  }
  return r;
}

SShape Lowerer::merge_dims(const SShape& s, std::vector<int64_t> mul, bool one_based) {
  if (mul.size() < 2) return s;
  for (auto& m : mul) {
    if (one_based) --m;
    if (m < 0 || size_t(m) >= s.size()) error("mul index out of range of shape " + shape_str(s));
  }
  SShape r;
  Sym prod = Sym::k(1);
  for (auto m : mul) prod = prod * s[size_t(m)];
  size_t j = 0;
  for (size_t i = 0; i < s.size(); ++i) {
    if (j < mul.size() && int64_t(i) == mul[j]) {
      if (j == 0) r.push_back(prod);
      ++j;
    } else {
      r.push_back(s[i]);
    }
  }
  return r;
}

NeLowered Lowerer::run() {
  if (in.ops.empty() || in.ops.front().type != "Input") error("the first operator must be the Input");
  std::vector<std::string> inputs;
  for (auto& n : in.ops.front().outputs) {
    const TensorInfo* t = in.find(n);
    if (!t || t->is_weight) continue;
    Tens x;
    x.name = n;
    x.dtype = t->dtype;
    for (size_t i = 0; i < t->shape.size(); ++i) {
      const int64_t d = t->shape[i];
      x.ne.push_back(d >= 0 ? Sym::k(d) : i == 0 ? Sym{1, 0, 1, true} : i == 1 ? Sym{0, 1, 1, true} : Sym::unknown());
    }
    x.ours = x.ne;
    if (ref.empty() && t->shape.size() == 2 && t->shape[0] == -1 && t->shape[1] == -1) ref = n;
    ts[n] = x;
    out.tensors[n] = *t;
    inputs.push_back(n);
  }
  emit("Input", in.ops.front().name, {}, inputs);
  for (auto& op : in.ops) {
    if (op.type == "Input") continue;
    cur = &op;
    if (op.type == "Output") {
      std::vector<std::string> outs;
      for (auto& n : op.inputs) {
        const Tens t = get(n);
        std::string name = t.name;
        if (name != n || t.ours.size() != t.ne.size() || !std::equal(t.ours.begin(), t.ours.end(), t.ne.begin())) {
          // Give the output the Neural Engine's name and shape (e.g. [B·S, H] for last_hidden_state).
          if (name == n) {  // rename the producer's output so the Reshape can take the name
            std::string inner = fresh(n + "/ne_out");
            for (auto& o : out.ops) {
              for (auto& x : o.outputs)
                if (x == n) x = inner;
              for (auto& x : o.inputs)
                if (x == n) x = inner;
            }
            name = inner;
          }
          name = reshape(name, t.ours, t.ne, n);
          if (name != n) {  // shapes already equal: copy under the name
            std::string zeros;
            for (size_t i = 0; i < t.ne.size(); ++i) zeros += i ? ",0" : "0";
            emit("Reshape", fresh(n + "/ne_out_copy"), {name}, {n}, {{"dst_shape", zeros}});
          }
        }
        outs.push_back(n);
      }
      emit("Output", op.name, outs, {});
      continue;
    }
    try {
      lower_op(*this);
    } catch (const std::invalid_argument&) {  // std::stoll / stof on an attribute that is not a number
      error("an attribute that must be a number is not one");
    } catch (const std::out_of_range&) {
      error("an attribute number is out of range");
    }
  }
  cur = nullptr;
  return std::move(res);
}

}  // namespace ne_dialect

// ---------------------------------------------------------------------- recognition, loading

bool is_ne_dialect(const Model& m, std::string* evidence) {
  static const std::set<std::string> ne_only = {"PaddingSequence", "StridedSlice",      "PositionIds",
                                                "TokenTypeIds",    "MultiHeadAttention", "SequenceLength"};
  auto say = [&](const OpInfo& op, const std::string& what) {
    if (evidence) *evidence = "operator '" + op.name + "' (" + op.type + ")" + what;
    return true;
  };
  for (auto& op : m.ops) {
    if (ne_only.count(op.type)) return say(op, "");
    for (auto& kv : op.attrs) {
      const std::string& k = kv.first;
      bool hit = false;
      if (op.type == "InnerProduct")
        hit = k == "src1_perm" || k == "src0_perm" || k == "dst_perm" || k == "reshape" || k == "reshape_dims" ||
              k == "squeeze_dims" || k == "per_token" || k == "format_any" || k == "gelu_split";
      else if (op.type == "Matmul")
        hit = k == "format_any" || k == "reshape" || k == "output_dtype";
      else if (op.type == "Gather")
        hit = k == "batch_dims" || k == "append_op" || k == "reshape" || k == "reshape_dims" || k == "mul" ||
              k == "keep_dims";
      else if (op.type == "Reshape")
        hit = k == "dims" || k == "mul" || k == "unsqueeze" || k == "squeeze";
      else if (op.type == "Quantize")
        hit = k == "per_token" || (k == "output_dtype" && kv.second == "bf16");
      else if (op.type == "LayerNorm" || op.type == "Softmax")
        hit = k == "output_dtype";
      if (hit) return say(op, " attribute " + k);
    }
    // The Neural Engine's Gather reads (indices, table): ours reads (table, indices).
    if (op.type == "Gather" && op.inputs.size() >= 2) {
      const TensorInfo* t0 = m.find(op.inputs[0]);
      const TensorInfo* t1 = m.find(op.inputs[1]);
      if (t1 && t1->is_weight && !(t0 && t0->is_weight) && t1->shape.size() == 2 &&
          (t1->dtype == DType::fp32 || t1->dtype == DType::bf16))
        return say(op, " reading (indices, table)");
    }
  }
  return false;
}

NeLowered lower_ne_dialect(const Model& m) {
  ne_dialect::Lowerer L(m);
  return L.run();
}

Model load_model_ir(const std::string& conf_path, const std::string& bin_path) {
  Model m = load_ir(conf_path, bin_path);
  std::string why;
  if (!is_ne_dialect(m, &why)) return m;
  NeLowered l = lower_ne_dialect(m);
  validate(l.model);
  CompileOptions opt;
  opt.precision = l.precision;
  opt.transpose = l.transposed;
  return compile_model(std::move(l.model), opt, conf_path + " (Neural Engine dialect: " + why + ")",
                       l.ranges.empty() ? nullptr : &l.ranges);
}

}  // namespace ne
