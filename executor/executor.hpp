// The executor: builds operators from a Model, plans per input shape (cached), runs.
#pragma once
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "common/ir.hpp"
#include "executor/operator.hpp"

namespace ne {

// An owned host tensor (inputs given to / outputs returned from the executor).
struct HostTensor {
  DType dtype = DType::fp32;
  Shape shape;
  std::vector<uint8_t> bytes;
  int64_t numel() const { return shape_numel(shape); }
  template <class T> T* ptr() { return reinterpret_cast<T*>(bytes.data()); }
  template <class T> const T* ptr() const { return reinterpret_cast<const T*>(bytes.data()); }
  template <class T>
  static HostTensor make(DType dt, const Shape& s, const std::vector<T>& v) {
    HostTensor h;
    h.dtype = dt;
    h.shape = s;
    h.bytes.resize(v.size() * sizeof(T));
    if (!v.empty()) std::memcpy(h.bytes.data(), v.data(), h.bytes.size());
    return h;
  }
};

// A caller-owned input, used in place for the call (no copy): `data` must stay valid and
// unchanged until run() returns and be aligned to the dtype's size. The executor never writes it.
struct TensorView {
  DType dtype = DType::fp32;
  Shape shape;
  const void* data = nullptr;
  size_t nbytes = 0;
};

struct ExecOptions {
  OpConfig op;           // sparse threshold etc.
  bool profile = false;  // time every operator
  // Upper bound on the activation memory of one plan (arena + tensors computed at plan time),
  // checked before anything is allocated; 0 = no bound beyond 1 TiB per tensor. Shapes come
  // from untrusted models and inputs: a bad one gets an ne::Error, not a huge allocation.
  size_t max_activation_bytes = 0;  // over it: ne::ResourceError
  // Plans cached by input shapes, least recently used dropped beyond it (0: unbounded).
  size_t max_plans = 8;

  // The defaults a front end starts from: op.sparse_threshold from NE_SPARSE_THRESHOLD, op.verbose
  // from NE_VERBOSE (executor/env.hpp); a flag the front end was given then beats them.
  static ExecOptions from_env();
};

struct OpProfile {
  std::string name, type, kernel, reason;
  double total_ms = 0;
  int64_t calls = 0;
};

struct MemoryStats {
  size_t arena_bytes = 0;       // activation arena of the current plan
  size_t peak_live_bytes = 0;   // largest sum of simultaneously live activations (lower bound)
  size_t weight_bytes = 0;      // weights referenced by the model
};

// The checks Executor::run makes on its inputs before planning (every model input given and no
// other, bytes matching shape x dtype, dtype and rank as declared, fixed dims equal), as ne::Error
// with the messages the CLI prints. Callers that queue inputs for an executor elsewhere (the
// server's front end) check them up front with this.
void check_model_inputs(const Model& model, const std::map<std::string, HostTensor>& inputs);
void check_model_inputs(const Model& model, const std::map<std::string, TensorView>& inputs);

class Executor {
 public:
  explicit Executor(Model model, ExecOptions opt = {});
  ~Executor();
  Executor(const Executor&) = delete;
  Executor& operator=(const Executor&) = delete;

  const Model& model() const;
  // Runs with inputs by name (all model inputs required; dtypes and ranks checked against the
  // declared ones). Returns the model outputs in the order of model().output_names().
  // Input errors (names, dtypes, ranks, shapes, byte counts) throw ne::InputError. The inputs are
  // read in place, never copied into the arena. Calls from several threads are safe: they are
  // serialised (one activation arena per Executor); run several Executors for parallel calls.
  std::vector<HostTensor> run(const std::map<std::string, HostTensor>& inputs);
  std::vector<HostTensor> run_views(const std::map<std::string, TensorView>& inputs);
  // The dtypes and shapes the outputs get for these inputs: plans (and caches the plan) without
  // running it. Input data is not read.
  std::vector<std::pair<DType, Shape>> output_types(const std::map<std::string, HostTensor>& inputs);

  std::vector<OpProfile> profile() const;  // in execution order (Input/Output left out)
  void reset_profile();
  void set_profile(bool on);  // time every operator from the next call on
  MemoryStats memory() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace ne
