#include "compile/passes/graph.hpp"

#include <cmath>
#include <set>

namespace ne {
namespace pass {

void Graph::rebuild() {
  producer_.clear();
  consumers_.clear();
  rank_cache_.clear();
  for (size_t i = 0; i < m.ops.size(); ++i) {
    const OpInfo& op = m.ops[i];
    if (op.type != "Input")
      for (auto& o : op.outputs) producer_[o] = int(i);
    for (auto& in : op.inputs)
      if (!in.empty()) consumers_[in].push_back(int(i));
  }
}

OpInfo* Graph::prod(const std::string& t) {
  auto it = producer_.find(t);
  return it == producer_.end() ? nullptr : &m.ops[it->second];
}
OpInfo* Graph::prod(const std::string& t, const std::string& type) {
  OpInfo* p = prod(t);
  return p && p->type == type ? p : nullptr;
}
std::vector<OpInfo*> Graph::consumers(const std::string& t) {
  std::vector<OpInfo*> r;
  auto it = consumers_.find(t);
  if (it != consumers_.end())
    for (int i : it->second) r.push_back(&m.ops[i]);
  return r;
}
int Graph::uses(const std::string& t) const {
  auto it = consumers_.find(t);
  return it == consumers_.end() ? 0 : int(it->second.size());
}
bool Graph::is_output(const std::string& t) const {
  for (auto& op : m.ops)
    if (op.type == "Output")
      for (auto& i : op.inputs)
        if (i == t) return true;
  return false;
}

bool Graph::const_ints(const std::string& t, std::vector<int64_t>* v) const {
  const TensorInfo* w = m.find(t);
  if (!w || !w->is_weight) return false;
  v->clear();
  int64_t n = w->numel();
  if (w->dtype == DType::int64)
    for (int64_t i = 0; i < n; ++i) v->push_back(w->as<int64_t>()[i]);
  else if (w->dtype == DType::int32)
    for (int64_t i = 0; i < n; ++i) v->push_back(w->as<int32_t>()[i]);
  else
    return false;
  return true;
}

static bool weight_value(const TensorInfo* w, int64_t i, double* v) {
  switch (w->dtype) {
    case DType::fp32: *v = w->as<float>()[i]; return true;
    case DType::int64: *v = double(w->as<int64_t>()[i]); return true;
    case DType::int32: *v = w->as<int32_t>()[i]; return true;
    default: return false;
  }
}

bool Graph::const_scalar(const std::string& t, double* v) const {
  const TensorInfo* w = m.find(t);
  if (!w || !w->is_weight || w->numel() != 1) return false;
  return weight_value(w, 0, v);
}

bool Graph::const_uniform(const std::string& t, double* v) const {
  const TensorInfo* w = m.find(t);
  if (!w || !w->is_weight || w->numel() < 1) return false;
  if (!weight_value(w, 0, v)) return false;
  double x;
  for (int64_t i = 1; i < w->numel(); ++i)
    if (!weight_value(w, i, &x) || x != *v) return false;
  return true;
}

std::string Graph::new_name(const std::string& base) {
  std::string n;
  do n = base + "__c" + std::to_string(counter_++);
  while (m.tensors.count(n) || producer_.count(n));
  return n;
}
std::string Graph::new_op_name(const std::string& base) {
  std::set<std::string> names;
  for (auto& op : m.ops) names.insert(op.name);
  std::string n = base;
  for (int i = 1; names.count(n); ++i) n = base + "_" + std::to_string(i);
  return n;
}

int Graph::rank_of(const std::string& t, int depth) {
  auto c = rank_cache_.find(t);
  if (c != rank_cache_.end()) return c->second;
  int r = -1;
  const TensorInfo* ti = m.find(t);
  OpInfo* p = prod(t);
  if (ti && (ti->is_weight || (!p && ti->has_shape))) {
    r = ti->has_shape ? int(ti->shape.size()) : -1;
  } else if (p && depth < 64) {
    const std::string& ty = p->type;
    if (ty == "Cast" || ty == "UnaryOp" || ty == "Gelu" || ty == "Softmax" || ty == "LayerNorm" ||
        ty == "Identity" || ty == "Clip" || ty == "Slice" || ty == "Reorder" || ty == "CumSum") {
      r = rank_of(p->inputs[0], depth + 1);
    } else if (ty == "Unsqueeze" || ty == "Squeeze") {
      std::vector<int64_t> axes = p->attr_ints("axes");
      if (!p->has_attr("axes") && p->inputs.size() > 1) const_ints(p->inputs[1], &axes);
      int ri = rank_of(p->inputs[0], depth + 1);
      if (ri >= 0 && (ty == "Unsqueeze" || !axes.empty()))
        r = ty == "Unsqueeze" ? ri + int(axes.size()) : ri - int(axes.size());
    } else if (ty == "Reshape") {
      std::vector<int64_t> s;
      if (p->inputs.size() > 1 && const_ints(p->inputs[1], &s)) r = int(s.size());
      else if (p->inputs.size() == 1 && p->has_attr("dst_shape")) r = int(p->attr_ints("dst_shape").size());
    } else if (ty == "BinaryOp" || ty == "BinaryAdd") {
      int a = rank_of(p->inputs[0], depth + 1), b = rank_of(p->inputs[1], depth + 1);
      if (a >= 0 && b >= 0) r = std::max(a, b);
    } else if (ty == "InnerProduct") {
      r = rank_of(p->inputs[0], depth + 1);
    } else if (ty == "Gather") {
      int a = rank_of(p->inputs[0], depth + 1), b = rank_of(p->inputs[1], depth + 1);
      if (a >= 0 && b >= 0) r = a - 1 + b;
    } else if (ty == "Matmul") {
      int a = rank_of(p->inputs[0], depth + 1), b = rank_of(p->inputs[1], depth + 1);
      if (a >= 2 && b >= 2) r = std::max(a, b);
    } else if (ty == "Expand" && p->inputs.size() == 2) {
      // rank max(rank x, length of the shape): a constant shape, or Shape(T)[start:end]
      int a = rank_of(p->inputs[0], depth + 1), n = -1;
      std::vector<int64_t> s;
      if (const_ints(p->inputs[1], &s)) {
        n = int(s.size());
      } else if (OpInfo* sh = prod(p->inputs[1], "Shape")) {
        const int rt = rank_of(sh->inputs[0], depth + 1);
        if (rt >= 0) {
          auto clampi = [rt](int64_t v) { return int(std::min<int64_t>(rt, std::max<int64_t>(0, v < 0 ? v + rt : v))); };
          const int b = clampi(sh->attr_int("start", 0)), e = clampi(sh->has_attr("end") ? sh->attr_int("end", rt) : rt);
          n = std::max(0, e - b);
        }
      }
      if (a >= 0 && n >= 0) r = std::max(a, n);
    } else if (ty == "Shape") {
      r = 1;
    } else if (ty == "Where") {
      r = 0;
      for (auto& i : p->inputs) {
        int ri = rank_of(i, depth + 1);
        r = (r < 0 || ri < 0) ? -1 : std::max(r, ri);
      }
    }
  }
  rank_cache_[t] = r;
  return r;
}

bool is_binary(const OpInfo* op, const std::string& algo) {
  if (!op) return false;
  if (algo == "add" && op->type == "BinaryAdd" && op->inputs.size() == 2) return true;
  return op->type == "BinaryOp" && op->attr("algorithm") == algo && op->inputs.size() == 2;
}
bool is_unary(const OpInfo* op, const std::string& algo) {
  return op && op->type == "UnaryOp" && op->attr("algorithm") == algo;
}

bool split_const(Graph& g, const OpInfo* op, std::string* var, double* c, bool* const_first) {
  if (!op || op->inputs.size() != 2) return false;
  for (int k = 0; k < 2; ++k) {
    if (g.const_uniform(op->inputs[k], c) && !g.is_const(op->inputs[1 - k])) {
      // Only a one-element constant that cannot widen the result's rank.
      const TensorInfo* w = g.m.find(op->inputs[k]);
      if (w->numel() != 1) return false;
      if (!w->shape.empty()) {
        int other = g.rank_of(op->inputs[1 - k]);
        if (other < int(w->shape.size())) return false;
      }
      *var = op->inputs[1 - k];
      if (const_first) *const_first = k == 0;
      return true;
    }
  }
  return false;
}

bool near(double a, double b, double rel) { return std::fabs(a - b) <= rel * std::max(std::fabs(a), std::fabs(b)); }

}  // namespace pass
}  // namespace ne
