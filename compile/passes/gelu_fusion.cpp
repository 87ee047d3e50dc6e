// GELU fusion.
//   erf form:  0.5 * x * (1 + erf(x / sqrt2))   (x/sqrt2 as Div or as Mul by 1/sqrt2)
//   tanh form: 0.5 * x * (1 + tanh(sqrt(2/pi) * (x + 0.044715 * x^3)))
// The outer product 0.5 * x * a appears in several export orders:
//   (x*0.5)*a, a*(x*0.5), (x*a)*0.5, (a*x)*0.5, (a*0.5)*x, x*a/2 ... all accepted.
#include <cmath>

#include "compile/passes/graph.hpp"
#include "compile/passes/passes.hpp"

namespace ne {
namespace pass {

namespace {
bool is_half(Graph& g, const OpInfo* op, std::string* var) {
  double c;
  if (is_binary(op, "mul") && split_const(g, op, var, &c) && near(c, 0.5)) return true;
  bool first;
  if (is_binary(op, "div") && split_const(g, op, var, &c, &first) && !first && near(c, 2.0)) return true;
  return false;
}

// Given a = 1 + f(x) (single use), finds the op computing 0.5 * x * a; returns it or nullptr.
OpInfo* match_tail(Graph& g, const std::string& a, const std::string& x) {
  if (!g.single_use(a)) return nullptr;
  OpInfo* c1 = g.consumers(a)[0];
  std::string other;
  if (is_binary(c1, "mul")) {
    other = c1->inputs[0] == a ? c1->inputs[1] : c1->inputs[0];
    std::string hv;
    if (other == x) {  // (x*a) then *0.5
      if (!g.single_use(c1->outputs[0])) return nullptr;
      OpInfo* c2 = g.consumers(c1->outputs[0])[0];
      return is_half(g, c2, &hv) && hv == c1->outputs[0] ? c2 : nullptr;
    }
    if (is_half(g, g.prod(other), &hv) && hv == x) return c1;  // (x*0.5)*a
    double c;
    if (split_const(g, c1, &hv, &c) && near(c, 0.5)) {  // (a*0.5) then *x
      if (!g.single_use(c1->outputs[0])) return nullptr;
      OpInfo* c2 = g.consumers(c1->outputs[0])[0];
      if (is_binary(c2, "mul") &&
          ((c2->inputs[0] == x && c2->inputs[1] == c1->outputs[0]) ||
           (c2->inputs[1] == x && c2->inputs[0] == c1->outputs[0])))
        return c2;
    }
  }
  return nullptr;
}

// a = f + 1 where f is the single-use output of the nonlinearity.
bool plus_one(Graph& g, const std::string& f, std::string* a) {
  if (!g.single_use(f)) return false;
  OpInfo* add = g.consumers(f)[0];
  std::string v;
  double c;
  if (!is_binary(add, "add") || !split_const(g, add, &v, &c) || !near(c, 1.0) || v != f) return false;
  *a = add->outputs[0];
  return true;
}
}  // namespace

int fuse_gelu(Model& m) {
  int n = 0;
  Graph g(m);
  for (size_t k = 0; k < m.ops.size(); ++k) {
    OpInfo* f = &m.ops[k];
    std::string x, algo, a;
    double c;
    if (is_unary(f, "erf")) {
      OpInfo* s = g.prod(f->inputs[0]);
      bool first;
      if (is_binary(s, "div") && split_const(g, s, &x, &c, &first) && !first && near(c, std::sqrt(2.0))) {}
      else if (is_binary(s, "mul") && split_const(g, s, &x, &c) && near(c, 1 / std::sqrt(2.0))) {}
      else continue;
      algo = "gelu_erf";
    } else if (is_unary(f, "tanh")) {
      OpInfo* s = g.prod(f->inputs[0]);
      std::string inner;
      if (!is_binary(s, "mul") || !split_const(g, s, &inner, &c) || !near(c, std::sqrt(2.0 / M_PI))) continue;
      OpInfo* add = g.prod(inner);
      if (!is_binary(add, "add")) continue;
      bool found = false;
      for (int side = 0; side < 2 && !found; ++side) {
        std::string cand = add->inputs[side], cube_t = add->inputs[1 - side];
        OpInfo* mc = g.prod(cube_t);
        std::string cube;
        if (!is_binary(mc, "mul") || !split_const(g, mc, &cube, &c) || !near(c, 0.044715)) continue;
        OpInfo* pw = g.prod(cube);
        std::string base;
        double three;
        if (is_binary(pw, "pow") && split_const(g, pw, &base, &three) && three == 3.0 && base == cand) found = true;
        if (is_binary(pw, "mul")) {  // x * (x * x) or (x * x) * x
          for (int t = 0; t < 2; ++t) {
            OpInfo* sq = g.prod(pw->inputs[1 - t]);
            if (pw->inputs[t] == cand && is_binary(sq, "mul") && sq->inputs[0] == cand && sq->inputs[1] == cand)
              found = true;
          }
        }
        if (found) x = cand;
      }
      if (!found) continue;
      algo = "gelu_tanh";
    } else {
      continue;
    }
    if (!plus_one(g, f->outputs[0], &a)) continue;
    OpInfo* tail = match_tail(g, a, x);
    if (!tail) continue;
    OpInfo ge;
    ge.name = tail->name;
    ge.type = "Gelu";
    ge.inputs = {x};
    ge.outputs = tail->outputs;
    ge.set_attr("algorithm", algo);
    *tail = ge;
    g.rebuild();
    ++n;
  }
  return n;
}

}  // namespace pass
}  // namespace ne
