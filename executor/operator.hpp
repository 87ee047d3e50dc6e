// Operators: one class per IR op type, created from a registry by type name.
//
// Life cycle, driven by the Executor:
//   1. constructed from its OpInfo (name, type, input/output tensor names, attributes);
//   2. init(inputs) once: weights (inputs with is_const and data) are available, activations
//      are not (data == nullptr, shape empty). Validate attributes and weights here; pack weights.
//   3. reshape(inputs, outputs) once per new input shape signature, in execution order: set each
//      output's dtype and shape. Inputs with is_const have valid data (weights, shape-derived
//      values); others have only dtype and shape. Throw ne::Error on inconsistent shapes, naming
//      the operator (use op_error()).
//   4. forward(inputs, outputs) per run: every pointer valid; outputs do not alias inputs unless
//      inplace_input()/is_view() said so. Plans are cached: forward may be called with shape A
//      after reshape was last called for shape B, so take every shape from the tensors given,
//      and cache per-shape state (oneDNN primitives, ...) keyed by shape.
// Threading: forward may use OpenMP (omp parallel) freely; ops of one Executor run one at a time.
#pragma once
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "common/ir.hpp"
#include "executor/tensor.hpp"

namespace ne {

using TensorList = std::vector<Tensor*>;

// Settings the executor passes to every operator (from flags and the environment:
// ExecOptions::from_env(), executor/env.hpp).
struct OpConfig {
  // Block sparsity above which a sparse kernel is used. < 0: the per-pattern defaults set from
  // the measured break-even (sparse_dispatch.hpp: 1x4 0.3, 4x1 0.7).
  float sparse_threshold = -1.f;
  bool allow_sparse = true;
  bool verbose = false;  // log kernel choices and reasons
};

class Operator {
 public:
  explicit Operator(const OpInfo& info) : info_(info) {}
  virtual ~Operator() = default;

  const OpInfo& info() const { return info_; }
  const std::string& name() const { return info_.name; }
  const std::string& type() const { return info_.type; }

  virtual void init(const TensorList& in) { (void)in; }
  virtual void reshape(const TensorList& in, const TensorList& out) = 0;
  virtual void forward(const TensorList& in, const TensorList& out) = 0;

  // Index of an input whose buffer output 0 may overwrite when that input dies here; -1 if none.
  virtual int inplace_input() const { return -1; }
  // Output 0 is input 0's bytes under another shape (Reshape, Squeeze, ...): no copy is made
  // and forward() is not called.
  virtual bool is_view() const { return false; }
  // Outputs depend only on the inputs' shapes (Shape): they are computed at plan time.
  virtual bool shape_only() const { return false; }

  // For --profile and logs: the kernel that runs and why it was chosen (or others declined).
  virtual std::string kernel() const { return "ref"; }
  virtual std::string reason() const { return ""; }

  void set_config(const OpConfig& c) { cfg_ = c; }

 protected:
  // An ne::Error that names this operator: "operator 'fc1' (InnerProduct): <msg>".
  template <class... A>
  [[noreturn]] void op_error(const A&... a) const {
    fail("operator '", info_.name, "' (", info_.type, "): ", a...);
  }
  // Checks the input count is within [lo, hi].
  void expect_inputs(const TensorList& in, size_t lo, size_t hi) const {
    if (in.size() < lo || in.size() > hi)
      op_error("expected ", lo == hi ? std::to_string(lo) : std::to_string(lo) + ".." + std::to_string(hi),
               " inputs, got ", in.size());
  }
  OpInfo info_;
  OpConfig cfg_;
};

using OpFactory = std::function<std::unique_ptr<Operator>(const OpInfo&)>;

bool register_op(const std::string& type, OpFactory f);
// nullptr if the type is unknown.
std::unique_ptr<Operator> create_op(const OpInfo& info);
std::vector<std::string> registered_op_types();

}  // namespace ne

// In one .cpp per op family:  NE_REGISTER_OP("Softmax", SoftmaxOp);
#define NE_REGISTER_OP_CAT2(a, b) a##b
#define NE_REGISTER_OP_CAT(a, b) NE_REGISTER_OP_CAT2(a, b)
#define NE_REGISTER_OP(TYPE, CLASS)                                                  \
  static const bool NE_REGISTER_OP_CAT(ne_registered_, __COUNTER__) = ::ne::register_op( \
      TYPE, [](const ::ne::OpInfo& i) -> std::unique_ptr<::ne::Operator> {           \
        return std::make_unique<CLASS>(i);                                           \
      })
