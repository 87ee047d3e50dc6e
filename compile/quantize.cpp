// int8 / bf16 precision passes, calibration and fp32 emulation (see quantize.hpp).
#include "compile/quantize.hpp"

#include "executor/input_gen.hpp"

#include <dirent.h>
#include <sys/stat.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <random>
#include <set>

#include "common/npy.hpp"
#include "compile/passes/passes.hpp"

namespace ne {

namespace {

// A fresh name (tensor and operator namespaces are checked together).
struct Namer {
  const Model& m;
  std::set<std::string> used;
  explicit Namer(const Model& mm) : m(mm) {
    for (auto& op : m.ops) {
      used.insert(op.name);
      for (auto& o : op.outputs) used.insert(o);
    }
    for (auto& kv : m.tensors) used.insert(kv.first);
  }
  std::string operator()(const std::string& base) {
    std::string n = base;
    for (int i = 1; used.count(n); ++i) n = base + "_" + std::to_string(i);
    used.insert(n);
    return n;
  }
};

bool is_quantizable_ip(const Model& m, const OpInfo& op) {
  if (op.type != "InnerProduct" || op.inputs.size() < 2) return false;
  const TensorInfo* w = m.find(op.inputs[1]);
  const TensorInfo* s = m.find(op.inputs[0]);
  return w && w->is_weight && w->dtype == DType::fp32 && w->shape.size() == 2 &&
         !(s && s->is_weight);
}

bool is_npy(const std::string& f) { return f.size() > 4 && f.substr(f.size() - 4) == ".npy"; }

std::vector<std::string> list_dir(const std::string& dir) {
  std::vector<std::string> r;
  DIR* d = opendir(dir.c_str());
  NE_CHECK(d, "calibration directory '", dir, "' cannot be opened");
  while (dirent* e = readdir(d)) {
    std::string f = e->d_name;
    if (f != "." && f != "..") r.push_back(f);
  }
  closedir(d);
  std::sort(r.begin(), r.end());
  return r;
}

bool is_dir(const std::string& p) {
  struct stat st;
  return stat(p.c_str(), &st) == 0 && S_ISDIR(st.st_mode);
}

HostTensor convert_ints(const NpyArray& a, DType want, const std::string& what) {
  HostTensor h;
  h.shape = a.shape;
  h.dtype = a.dtype;
  h.bytes = a.bytes;
  if (a.dtype == want) return h;
  auto is_int = [](DType t) { return t == DType::int64 || t == DType::int32 || t == DType::s32; };
  NE_CHECK(is_int(a.dtype) && is_int(want), what, ": dtype ", dtype_name(a.dtype),
           " does not match the model input's ", dtype_name(want));
  int64_t n = a.numel();
  HostTensor r;
  r.dtype = want;
  r.shape = a.shape;
  r.bytes.resize(size_t(n) * dtype_size(want));
  for (int64_t i = 0; i < n; ++i) {
    int64_t v = a.dtype == DType::int64 ? reinterpret_cast<const int64_t*>(a.bytes.data())[i]
                                        : reinterpret_cast<const int32_t*>(a.bytes.data())[i];
    if (want == DType::int64) r.ptr<int64_t>()[i] = v;
    else r.ptr<int32_t>()[i] = int32_t(v);
  }
  return r;
}

InputSet load_set(const std::string& dir, const Model& m) {
  InputSet s;
  for (auto& name : m.input_names()) {
    std::string p = dir + "/" + name + ".npy";
    const TensorInfo* t = m.find(name);
    NpyArray a = read_npy(p);
    s[name] = convert_ints(a, t ? t->dtype : a.dtype, p);
  }
  return s;
}

// Rows of the embedding table a model input indexes (through Cast / view ops); -1 if none.
}  // namespace

void quantize_weight_s8(const float* w, int64_t K, int64_t N, std::vector<int8_t>* q,
                        std::vector<float>* scale) {
  scale->assign(size_t(N), 0.f);
  q->assign(size_t(K * N), 0);
  for (int64_t k = 0; k < K; ++k)
    for (int64_t n = 0; n < N; ++n) (*scale)[n] = std::max((*scale)[n], std::fabs(w[k * N + n]));
  for (auto& s : *scale) s = s > 0 ? s / 127.f : 1.f;
  for (int64_t k = 0; k < K; ++k)
    for (int64_t n = 0; n < N; ++n) {
      float v = std::nearbyint(w[k * N + n] / (*scale)[n]);  // round half to even (default mode)
      (*q)[size_t(k * N + n)] = int8_t(std::max(-127.f, std::min(127.f, v)));
    }
}

void act_qparams(ActRange r, DType dt, float* scale, int* zero_point) {
  float mn = std::min(r.min, 0.f), mx = std::max(r.max, 0.f);
  if (dt == DType::s8) {
    float a = std::max(std::fabs(mn), std::fabs(mx));
    *scale = a > 0 ? a / 127.f : 1.f;
    *zero_point = 0;
    return;
  }
  NE_CHECK(dt == DType::u8, "activation quantization type must be u8 or s8, got ", dtype_name(dt));
  float s = (mx - mn) / 255.f;
  if (!(s > 0) || !std::isfinite(s)) {
    *scale = 1.f;
    *zero_point = 0;
    return;
  }
  *scale = s;
  *zero_point = int(std::max(0.f, std::min(255.f, std::nearbyint(-mn / s))));
}

std::vector<std::string> quantizable_srcs(const Model& m) {
  std::vector<std::string> r;
  std::set<std::string> seen;
  for (auto& op : m.ops)
    if (is_quantizable_ip(m, op) && seen.insert(op.inputs[0]).second) r.push_back(op.inputs[0]);
  return r;
}

std::vector<InputSet> load_calib_sets(const std::string& dir, const Model& m) {
  std::vector<InputSet> sets;
  auto entries = list_dir(dir);
  bool flat = false;
  for (auto& e : entries) flat |= is_npy(e) && !is_dir(dir + "/" + e);
  if (flat) {
    sets.push_back(load_set(dir, m));
    return sets;
  }
  for (auto& e : entries) {
    std::string sub = dir + "/" + e;
    if (!is_dir(sub)) continue;
    bool any = false;
    for (auto& f : list_dir(sub)) any |= is_npy(f);
    if (any) sets.push_back(load_set(sub, m));
  }
  NE_CHECK(!sets.empty(), "calibration directory '", dir,
           "' holds no .npy files (expected DIR/<input>.npy or DIR/<set>/<input>.npy)");
  return sets;
}

std::vector<InputSet> generated_calib_sets(const Model& m, int count, int batch, int seq,
                                           int seed) {
  // The same inputs neural_engine generates (executor/input_gen.hpp).
  std::vector<InputSet> sets;
  std::mt19937 rng(static_cast<uint32_t>(seed));
  for (int c = 0; c < count; ++c) sets.push_back(generate_inputs(m, batch, seq, rng));
  return sets;
}

std::map<std::string, ActRange> calibrate(const Model& m, const std::vector<InputSet>& sets,
                                          const std::vector<std::string>& tensors,
                                          const QuantOptions& q) {
  std::map<std::string, ActRange> r;
  if (tensors.empty() || sets.empty()) return r;
  Model c = m;
  OpInfo* out = nullptr;
  for (auto& op : c.ops)
    if (op.type == "Output") out = &op;
  NE_CHECK(out, "calibration: the model has no Output operator");
  size_t base = out->inputs.size();
  for (auto& t : tensors) out->inputs.push_back(t);
  Executor ex(std::move(c));
  const bool pct = q.calib_method == "percentile";
  NE_CHECK(pct || q.calib_method == "minmax", "calibration method '", q.calib_method,
           "' is unknown (minmax | percentile)");
  const size_t budget = size_t(1) << 22;  // values kept per tensor for the percentile method
  std::vector<std::vector<float>> samples(tensors.size());
  std::vector<bool> seen(tensors.size(), false);
  for (auto& set : sets) {
    std::map<std::string, HostTensor> in;
    for (auto& n : ex.model().input_names()) {
      auto it = set.find(n);
      NE_CHECK(it != set.end(), "calibration: input '", n, "' missing from a calibration set");
      in[n] = it->second;
    }
    auto outs = ex.run(in);
    for (size_t i = 0; i < tensors.size(); ++i) {
      const HostTensor& h = outs[base + i];
      if (h.dtype != DType::fp32) continue;
      const float* p = h.ptr<float>();
      int64_t n = h.numel();
      ActRange& a = r[tensors[i]];
      for (int64_t k = 0; k < n; ++k) {
        if (!seen[i]) { a.min = a.max = p[k]; seen[i] = true; }
        a.min = std::min(a.min, p[k]);
        a.max = std::max(a.max, p[k]);
      }
      if (pct) {
        int64_t stride = std::max<int64_t>(1, int64_t(n * sets.size() / budget));
        for (int64_t k = 0; k < n; k += stride) samples[i].push_back(p[k]);
      }
    }
  }
  if (pct) {
    for (size_t i = 0; i < tensors.size(); ++i) {
      auto& v = samples[i];
      if (v.empty()) continue;
      auto at = [&](double p) {
        size_t k = size_t(std::min<double>(double(v.size() - 1), std::max(0.0, p / 100 * double(v.size() - 1))));
        std::nth_element(v.begin(), v.begin() + k, v.end());
        return v[k];
      };
      r[tensors[i]].min = at(100 - q.percentile);
      r[tensors[i]].max = at(q.percentile);
    }
  }
  return r;
}

int quantize_int8(Model& m, const std::map<std::string, ActRange>& ranges, const QuantOptions& q) {
  NE_CHECK(q.src_dtype == DType::u8 || q.src_dtype == DType::s8,
           "int8 activation type must be u8 or s8");
  Namer names(m);
  std::map<std::string, std::pair<std::string, std::string>> done;  // fp32 weight -> s8, scale
  int count = 0;
  for (auto& op : m.ops) {
    if (!is_quantizable_ip(m, op)) continue;
    float src_scale = 0;
    int src_zp = 0;
    if (!q.dynamic) {
      auto it = ranges.find(op.inputs[0]);
      if (it == ranges.end()) {
        std::fprintf(stderr, "quantize: InnerProduct '%s': no calibration range for src '%s'; left fp32\n",
                     op.name.c_str(), op.inputs[0].c_str());
        continue;
      }
      act_qparams(it->second, q.src_dtype, &src_scale, &src_zp);
    }
    const std::string wname = op.inputs[1];
    auto d = done.find(wname);
    if (d == done.end()) {
      const TensorInfo* w = m.find(wname);
      int64_t K = w->shape[0], N = w->shape[1];
      std::vector<int8_t> wq;
      std::vector<float> ws;
      quantize_weight_s8(w->as<float>(), K, N, &wq, &ws);
      std::string qn = names(wname + "_s8"), sn = names(wname + "_scale");
      m.add_weight(qn, DType::s8, {K, N}, wq);
      m.add_weight(sn, DType::fp32, {N}, ws);
      d = done.emplace(wname, std::make_pair(qn, sn)).first;
    }
    std::vector<std::string> in = {op.inputs[0], d->second.first, d->second.second};
    in.insert(in.end(), op.inputs.begin() + 2, op.inputs.end());
    op.inputs = in;
    if (q.dynamic) {
      op.set_attr("src_scale", "dynamic");
    } else {
      op.set_attr("src_scale", OpInfo::attr_str(src_scale));
      op.set_attr("src_zero_point", std::to_string(src_zp));
    }
    op.set_attr("src_dtype", dtype_name(q.src_dtype));
    ++count;
  }
  return count;
}

int convert_bf16(Model& m) {
  Namer names(m);
  std::map<std::string, std::string> done;
  int count = 0;
  for (auto& op : m.ops) {
    if (!is_quantizable_ip(m, op)) continue;
    const std::string wname = op.inputs[1];
    auto d = done.find(wname);
    if (d == done.end()) {
      const TensorInfo* w = m.find(wname);
      std::vector<uint16_t> b(static_cast<size_t>(w->numel()));
      for (size_t i = 0; i < b.size(); ++i) b[i] = fp32_to_bf16(w->as<float>()[i]);
      std::string bn = names(wname + "_bf16");
      m.add_weight(bn, DType::bf16, w->shape, b);
      d = done.emplace(wname, bn).first;
    }
    op.inputs[1] = d->second;
    ++count;
  }
  return count;
}

namespace {
// An s8 InnerProduct (constant s8 weight) with a calibrated (static) src scale.
bool is_static_s8_ip(const Model& m, const OpInfo& op) {
  if (op.type != "InnerProduct" || op.inputs.size() < 3) return false;
  const TensorInfo* w = m.find(op.inputs[1]);
  return w && w->is_weight && w->dtype == DType::s8 && op.has_attr("src_scale") && op.attr("src_scale") != "dynamic";
}
}  // namespace

int chain_int8(Model& m) {
  std::map<std::string, int> uses;
  for (const auto& op : m.ops)
    for (const auto& t : op.inputs) uses[t]++;
  for (const auto& t : m.output_names()) uses[t] += 2;  // never requantize a model output
  std::map<std::string, const OpInfo*> consumer;  // src tensor -> the s8 InnerProduct reading it
  for (const auto& op : m.ops)
    if (is_static_s8_ip(m, op)) consumer[op.inputs[0]] = &op;
  int count = 0;
  for (auto& op : m.ops) {
    if (!is_static_s8_ip(m, op) || op.outputs.size() != 1 || op.attr("output_dtype", "fp32") != "fp32") continue;
    const std::string& out = op.outputs[0];
    auto c = consumer.find(out);
    if (c == consumer.end() || uses[out] != 1) continue;
    const OpInfo& next = *c->second;
    op.set_attr("output_dtype", next.attr("src_dtype", "u8"));
    op.set_attr("dst_scale", next.attr("src_scale"));
    op.set_attr("dst_zero_point", next.attr("src_zero_point", "0"));
    ++count;
  }
  return count;
}

int share_src_quantization(Model& m) {
  // fp32 tensors produced by an op we know writes fp32 here (an InnerProduct with requantized
  // output is already u8: leave those alone).
  // Likewise Quantize outputs and LayerNorms' quantized second outputs (run twice: a no-op).
  std::set<std::string> quantized_outputs;
  for (const auto& op : m.ops) {
    if (op.type == "InnerProduct" && op.attr("output_dtype", "fp32") != "fp32")
      for (const auto& o : op.outputs) quantized_outputs.insert(o);
    if (op.type == "Quantize")
      for (const auto& o : op.outputs) quantized_outputs.insert(o);
    if (op.type == "LayerNorm" && op.outputs.size() == 2) quantized_outputs.insert(op.outputs[1]);
  }
  // src -> indices of the static s8 InnerProducts reading it, grouped by (dtype, scale, zp).
  std::map<std::pair<std::string, std::string>, std::vector<size_t>> groups;
  for (size_t i = 0; i < m.ops.size(); ++i) {
    const OpInfo& op = m.ops[i];
    if (!is_static_s8_ip(m, op) || quantized_outputs.count(op.inputs[0]) || m.is_weight(op.inputs[0])) continue;
    const std::string key = op.attr("src_dtype", "u8") + "|" + op.attr("src_scale") + "|" + op.attr("src_zero_point", "0");
    groups[{op.inputs[0], key}].push_back(i);
  }
  Namer names(m);
  std::vector<std::pair<size_t, OpInfo>> inserts;  // (before op index, Quantize op)
  int count = 0;
  for (auto& g : groups) {
    if (g.second.size() < 2) continue;
    const OpInfo& first = m.ops[g.second.front()];
    OpInfo q;
    q.name = names(g.first.first + "/quantize");
    q.type = "Quantize";
    q.inputs = {g.first.first};
    q.outputs = {names(g.first.first + "_" + first.attr("src_dtype", "u8"))};
    q.set_attr("output_dtype", first.attr("src_dtype", "u8"));
    q.set_attr("scale", first.attr("src_scale"));
    q.set_attr("zero_point", first.attr("src_zero_point", "0"));
    for (size_t i : g.second) m.ops[i].inputs[0] = q.outputs[0];
    inserts.push_back({g.second.front(), q});
    ++count;
  }
  std::sort(inserts.begin(), inserts.end(), [](const auto& a, const auto& b) { return a.first > b.first; });
  for (auto& ins : inserts) m.ops.insert(m.ops.begin() + long(ins.first), ins.second);
  return count;
}

int unshare_src_quantization(Model& m) {
  // LayerNorms with a quantized second output (fuse_layernorm_quantize) are first split back
  // into LayerNorm + Quantize. A Quantize is undone when every reader of its output is an
  // InnerProduct's src (one with other readers stays, unfused: the same numbers).
  pass::unfuse_layernorm_quantize(m);
  std::map<std::string, int> uses, ip_src_uses;
  for (const auto& op : m.ops) {
    for (const auto& t : op.inputs) uses[t]++;
    if (op.type == "InnerProduct" && !op.inputs.empty() && op.has_attr("src_scale")) ip_src_uses[op.inputs[0]]++;
  }
  std::map<std::string, std::string> undo;  // Quantize output -> its input
  for (const auto& op : m.ops)
    if (op.type == "Quantize" && op.inputs.size() == 1 && op.outputs.size() == 1 && ip_src_uses[op.outputs[0]] >= 1 &&
        ip_src_uses[op.outputs[0]] == uses[op.outputs[0]])
      undo[op.outputs[0]] = op.inputs[0];
  if (undo.empty()) return 0;
  std::vector<OpInfo> ops;
  for (auto& op : m.ops) {
    if (op.type == "Quantize" && op.outputs.size() == 1 && undo.count(op.outputs[0])) continue;
    if (op.type == "InnerProduct" && !op.inputs.empty() && undo.count(op.inputs[0])) op.inputs[0] = undo[op.inputs[0]];
    ops.push_back(op);
  }
  m.ops = std::move(ops);
  for (auto& kv : undo) m.tensors.erase(kv.first);
  return int(undo.size());
}

int mark_matmuls_bf16(Model& m) {
  int count = 0;
  for (auto& op : m.ops) {
    if (op.type != "Matmul" || op.inputs.size() < 2) continue;
    const TensorInfo* a = m.find(op.inputs[0]);
    const TensorInfo* b = m.find(op.inputs[1]);
    if ((a && a->is_weight) || (b && b->is_weight)) continue;
    op.set_attr("compute_dtype", "bf16");
    ++count;
  }
  return count;
}

// ------------------------------------------------------------------------------ emulation
namespace {

struct Emu {
  Model& e;  // the model being built (weights are added to it)
  Namer names;
  std::vector<OpInfo> ops;
  explicit Emu(Model& m) : e(m), names(m) {}

  std::string scalar(const std::string& base, float v) {
    std::string n = names(base);
    e.add_weight(n, DType::fp32, {}, std::vector<float>{v});
    return n;
  }
  std::string emit(const std::string& base, const std::string& type, std::vector<std::string> in,
                   std::vector<std::pair<std::string, std::string>> attrs = {},
                   std::string out = "") {
    OpInfo op;
    op.name = names(base + "_op");
    op.type = type;
    op.inputs = std::move(in);
    if (out.empty()) out = names(base);
    op.outputs = {out};
    op.attrs = std::move(attrs);
    ops.push_back(op);
    return out;
  }
  std::string bin(const std::string& base, const std::string& algo, const std::string& a,
                  const std::string& b, std::string out = "") {
    return emit(base, "BinaryOp", {a, b}, {{"algorithm", algo}}, out);
  }
  std::string un(const std::string& base, const std::string& algo, const std::string& a) {
    return emit(base, "UnaryOp", {a}, {{"algorithm", algo}});
  }
  std::string clip(const std::string& base, const std::string& a, float lo, float hi,
                   std::string out = "") {
    return emit(base, "Clip", {a}, {{"min", OpInfo::attr_str(lo)}, {"max", OpInfo::attr_str(hi)}}, out);
  }
  // fake quant with a static scale / zero point: (clip(round(x/s), lo-zp, hi-zp)) * s
  std::string fq_static(const std::string& x, float s, int zp, DType dt) {
    float lo = dt == DType::s8 ? -128.f : 0.f, hi = dt == DType::s8 ? 127.f : 255.f;
    std::string b = x + "__fq";
    std::string t = bin(b, "div", x, scalar(b + "_s", s));
    t = un(b, "round", t);
    t = clip(b, t, lo - zp, hi - zp);
    return bin(b, "mul", t, scalar(b + "_s", s));
  }
  // fake quant with scale / zero point from the tensor's range (ONNX DynamicQuantizeLinear for
  // u8; symmetric max|x|/127 for s8).
  std::string fq_dynamic(const std::string& x, DType dt) {
    std::string b = x + "__dq";
    std::vector<std::pair<std::string, std::string>> all = {{"keepdims", "0"}};
    std::string zero = scalar(b + "_0", 0.f);
    if (dt == DType::s8) {
      std::string a = emit(b, "ReduceMax", {un(b, "abs", x)}, all);
      std::string s = bin(b, "div", a, scalar(b + "_127", 127.f));
      std::string t = un(b, "round", bin(b, "div", x, s));
      return bin(b, "mul", clip(b, t, -128.f, 127.f), s);
    }
    std::string mn = bin(b, "min", emit(b, "ReduceMin", {x}, all), zero);
    std::string mx = bin(b, "max", emit(b, "ReduceMax", {x}, all), zero);
    std::string s = bin(b, "div", bin(b, "sub", mx, mn), scalar(b + "_255", 255.f));
    std::string zp = un(b, "round", bin(b, "div", un(b, "neg", mn), s));
    zp = clip(b, zp, 0.f, 255.f);
    std::string t = emit(b, "BinaryAdd", {un(b, "round", bin(b, "div", x, s)), zp});
    t = bin(b, "sub", clip(b, t, 0.f, 255.f), zp);
    return bin(b, "mul", t, s);
  }
};

}  // namespace

Model emulate_fp32(const Model& model) {
  Model m = model;
  pass::unfuse_layernorm_quantize(m);  // a quantizing LayerNorm = LayerNorm + Quantize
  Model e = m;
  Emu emu(e);
  // Quantize ops that feed s8 InnerProducts (share_src_quantization): the InnerProduct's own
  // fake-quant of the Quantize's fp32 input is the same math.
  std::map<std::string, std::string> quantize_input;
  for (const OpInfo& op : m.ops)
    if (op.type == "Quantize" && op.inputs.size() == 1 && op.outputs.size() == 1) quantize_input[op.outputs[0]] = op.inputs[0];
  for (const OpInfo& op : m.ops) {
    const TensorInfo* w = op.type == "InnerProduct" && op.inputs.size() >= 2 ? m.find(op.inputs[1]) : nullptr;
    if (w && w->is_weight && w->dtype == DType::s8) {
      NE_CHECK(op.inputs.size() >= 3, "emulate: InnerProduct '", op.name, "' lacks weight_scale");
      const TensorInfo* ws = m.find(op.inputs[2]);
      NE_CHECK(ws && ws->is_weight && ws->dtype == DType::fp32, "emulate: InnerProduct '", op.name,
               "': weight_scale must be a constant fp32 tensor");
      // A requantized output (chain_int8) is emulated by its consumer's static fake-quant of the
      // fp32 output (same scale and zero point, the same rounding): output_dtype is dropped below.
      int64_t K = w->shape[0], N = w->shape[1];
      bool per_tensor = ws->numel() == 1;
      NE_CHECK(per_tensor || ws->numel() == N, "emulate: weight_scale of '", op.name, "' has ",
               ws->numel(), " elements, expected 1 or ", N);
      std::vector<float> deq(static_cast<size_t>(K * N));
      for (int64_t k = 0; k < K; ++k)
        for (int64_t n = 0; n < N; ++n)
          deq[size_t(k * N + n)] = float(w->as<int8_t>()[k * N + n]) * ws->as<float>()[per_tensor ? 0 : n];
      std::string wn = emu.names(op.inputs[1] + "_deq");
      e.add_weight(wn, DType::fp32, {K, N}, deq);
      DType sdt = op.attr("src_dtype", "u8") == "s8" ? DType::s8 : DType::u8;
      std::string src = op.inputs[0];
      if (quantize_input.count(src)) src = quantize_input[src];
      const TensorInfo* st = m.find(src);
      if (st && (st->dtype == DType::u8 || st->dtype == DType::s8)) {
        fail("emulate: InnerProduct '", op.name, "': pre-quantized src is not emulated");
      } else if (op.attr("src_scale") == "dynamic") {
        src = emu.fq_dynamic(src, sdt);
      } else {
        src = emu.fq_static(src, op.attr_float("src_scale", 1.f), int(op.attr_int("src_zero_point", 0)), sdt);
      }
      OpInfo ip = op;
      ip.inputs = {src, wn};
      ip.inputs.insert(ip.inputs.end(), op.inputs.begin() + 3, op.inputs.end());
      for (auto k : {"src_scale", "src_zero_point", "src_dtype", "output_dtype", "dst_scale", "dst_zero_point"})
        ip.erase_attr(k);
      emu.ops.push_back(ip);
      continue;
    }
    if (w && w->is_weight && w->dtype == DType::bf16) {
      std::vector<float> f(static_cast<size_t>(w->numel()));
      for (size_t i = 0; i < f.size(); ++i) f[i] = bf16_to_fp32(w->as<uint16_t>()[i]);
      std::string wn = emu.names(op.inputs[1] + "_f32");
      e.add_weight(wn, DType::fp32, w->shape, f);
      std::string b = op.inputs[0] + "__bf";
      std::string t = emu.emit(b, "Cast", {op.inputs[0]}, {{"to", "bf16"}});
      t = emu.emit(b, "Cast", {t}, {{"to", "fp32"}});
      OpInfo ip = op;
      ip.inputs[0] = t;
      ip.inputs[1] = wn;
      ip.erase_attr("output_dtype");
      emu.ops.push_back(ip);
      continue;
    }
    if (op.type == "Quantize") {
      DType dt = op.attr("output_dtype", "u8") == "s8" ? DType::s8 : DType::u8;
      float lo = dt == DType::s8 ? -128.f : 0.f, hi = dt == DType::s8 ? 127.f : 255.f;
      float s = op.attr_float("scale", 1.f);
      int zp = int(op.attr_int("zero_point", 0));
      std::string b = op.outputs[0] + "__q";
      std::string t = emu.un(b, "round", emu.bin(b, "div", op.inputs[0], emu.scalar(b + "_s", s)));
      t = emu.emit(b, "BinaryAdd", {t, emu.scalar(b + "_zp", float(zp))});
      emu.clip(b, t, lo, hi, op.outputs[0]);
      e.tensors.erase(op.outputs[0]);
      continue;
    }
    if (op.type == "Dequantize") {
      float s = op.attr_float("scale", 1.f);
      int zp = int(op.attr_int("zero_point", 0));
      std::string b = op.outputs[0] + "__dq";
      std::string x = op.inputs[0];
      const TensorInfo* xt = m.find(x);
      if (xt && xt->dtype != DType::fp32) x = emu.emit(b, "Cast", {x}, {{"to", "fp32"}});
      std::string t = emu.bin(b, "sub", x, emu.scalar(b + "_zp", float(zp)));
      emu.bin(b, "mul", t, emu.scalar(b + "_s", s), op.outputs[0]);
      e.tensors.erase(op.outputs[0]);
      continue;
    }
    emu.ops.push_back(op);
  }
  e.ops = std::move(emu.ops);
  pass::finalize_inputs(e);  // lists the new weights, drops the s8 / bf16 ones
  return e;
}

}  // namespace ne
