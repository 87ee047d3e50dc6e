// Helpers shared by the graph passes: producer / consumer maps over an ne::Model, constant
// access, small rank inference. Passes rewrite an "anchor" operator in place (keeping its output
// name) and leave the ops it no longer needs to remove_dead_ops().
#pragma once
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "common/ir.hpp"

namespace ne {
namespace pass {

class Graph {
 public:
  explicit Graph(Model& m) : m(m) { rebuild(); }
  Model& m;

  void rebuild();
  // Producer op of a tensor (nullptr for weights, model inputs and unknown names).
  OpInfo* prod(const std::string& t);
  // Producer if it has the given type.
  OpInfo* prod(const std::string& t, const std::string& type);
  int index_of(const OpInfo* op) const { return int(op - m.ops.data()); }
  // Ops reading the tensor (an op reading it twice is listed twice). Includes the Output op.
  std::vector<OpInfo*> consumers(const std::string& t);
  int uses(const std::string& t) const;
  bool single_use(const std::string& t) const { return uses(t) == 1; }
  bool is_output(const std::string& t) const;

  bool is_const(const std::string& t) const { return m.is_weight(t); }
  // A weight of an integer dtype (int32 / int64), any rank (flattened).
  bool const_ints(const std::string& t, std::vector<int64_t>* v) const;
  // A weight of one element (any rank), as double.
  bool const_scalar(const std::string& t, double* v) const;
  // A weight whose every element is the same value (e.g. a broadcast 0.5).
  bool const_uniform(const std::string& t, double* v) const;

  // A fresh tensor name derived from base.
  std::string new_name(const std::string& base);
  // A fresh operator name derived from base.
  std::string new_op_name(const std::string& base);
  template <class T>
  std::string add_const(const std::string& base, DType dt, const Shape& s, const std::vector<T>& v) {
    std::string n = new_name(base);
    m.add_weight(n, dt, s, v);
    return n;
  }

  // Rank of a tensor when it can be told from declarations and simple ops; -1 otherwise.
  int rank_of(const std::string& t, int depth = 0);

 private:
  std::map<std::string, int> producer_;
  std::map<std::string, std::vector<int>> consumers_;
  std::map<std::string, int> rank_cache_;
  int counter_ = 0;
};

// An operator from its parts (passes that build new ops: transpose.cpp, the NE dialect lowering).
inline OpInfo make_op(const std::string& name, const std::string& type, std::vector<std::string> in,
                      std::vector<std::string> out, std::vector<std::pair<std::string, std::string>> attrs = {}) {
  OpInfo o;
  o.name = name;
  o.type = type;
  o.inputs = std::move(in);
  o.outputs = std::move(out);
  o.attrs = std::move(attrs);
  return o;
}

// Binary op helpers. `is_binary(op, "add")` accepts BinaryAdd (2 inputs) and BinaryOp add.
bool is_binary(const OpInfo* op, const std::string& algo);
bool is_unary(const OpInfo* op, const std::string& algo);
// For a binary op with one constant scalar-like operand (all elements equal): the other operand
// and the constant. `const_first` tells which side the constant was on.
bool split_const(Graph& g, const OpInfo* op, std::string* var, double* c, bool* const_first = nullptr);
bool near(double a, double b, double rel = 1e-4);

}  // namespace pass
}  // namespace ne
