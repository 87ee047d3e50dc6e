// The IR in memory: ordered operators and named tensors, in Intel Neural Engine's schema.
// On disk: conf.yaml + model.bin (see ir_io.cpp and ARCHITECTURE.md "The IR on disk").
#pragma once
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "common/dtype.hpp"

namespace ne {

// A read-only byte buffer holding weights: an mmap'd model.bin or an owned vector.
class Blob {
 public:
  virtual ~Blob() = default;
  const uint8_t* data() const { return data_; }
  size_t size() const { return size_; }
  const std::string& path() const { return path_; }  // file it came from ("" if in memory)
  // Drops this process's resident pages of a mapped file (they fault back in from the page
  // cache when touched); no-op for owned buffers.
  virtual void release_resident() const {}

 protected:
  const uint8_t* data_ = nullptr;
  size_t size_ = 0;
  std::string path_;
};

// mmap a file read-only (MAP_SHARED, so every instance shares the page cache copy).
std::shared_ptr<Blob> map_file(const std::string& path);
// An owned buffer.
std::shared_ptr<Blob> make_blob(std::vector<uint8_t> bytes);

struct TensorInfo {
  std::string name;
  DType dtype = DType::fp32;
  Shape shape;              // -1 = dynamic dim
  bool has_shape = false;   // false: unknown rank (inferred at run time)
  // Weights (constants): an Input's output with `location`, or a constant made by the compiler.
  bool is_weight = false;
  uint64_t offset = 0;      // location in model.bin (only meaningful after load / for writing)
  uint64_t nbytes = 0;
  const uint8_t* data = nullptr;       // the bytes (into `holder`)
  std::shared_ptr<const void> holder;  // keeps `data` alive (the mapped blob or an owned vector)

  int64_t numel() const { return shape_numel(shape); }
  template <class T> const T* as() const { return reinterpret_cast<const T*>(data); }
};

struct OpInfo {
  std::string name;
  std::string type;
  std::vector<std::string> inputs;   // tensor names, in order
  std::vector<std::string> outputs;
  std::vector<std::pair<std::string, std::string>> attrs;  // ordered; lists are "a,b,c"

  bool has_attr(const std::string& k) const;
  std::string attr(const std::string& k, const std::string& def = "") const;
  int64_t attr_int(const std::string& k, int64_t def) const;
  float attr_float(const std::string& k, float def) const;
  std::vector<int64_t> attr_ints(const std::string& k) const;  // empty if absent
  std::vector<float> attr_floats(const std::string& k) const;
  void set_attr(const std::string& k, const std::string& v);
  // A float attribute as the IR writes it (9 significant digits: an fp32 round-trips).
  static std::string attr_str(double v);
  void erase_attr(const std::string& k);
};

struct Model {
  std::string name = "model";
  int version = 1;
  std::vector<OpInfo> ops;                    // execution order; includes Input and Output ops
  std::map<std::string, TensorInfo> tensors;  // every tensor with known info (all weights)
  std::string source;                         // where it was loaded from, for messages
  std::shared_ptr<Blob> blob;                 // the mapped model.bin (null for in-memory models)

  // Non-weight outputs of Input ops: the model's inputs, in order.
  std::vector<std::string> input_names() const;
  // Inputs of Output ops: the model's outputs, in order.
  std::vector<std::string> output_names() const;
  const TensorInfo* find(const std::string& name) const;
  bool is_weight(const std::string& name) const;

  // Adds a constant tensor owning `bytes`.
  TensorInfo& add_weight(const std::string& name, DType dt, const Shape& shape,
                         std::vector<uint8_t> bytes);
  template <class T>
  TensorInfo& add_weight(const std::string& name, DType dt, const Shape& shape,
                         const std::vector<T>& v) {
    std::vector<uint8_t> b(v.size() * sizeof(T));
    if (!b.empty()) std::memcpy(b.data(), v.data(), b.size());
    return add_weight(name, dt, shape, std::move(b));
  }
};

// Reads conf.yaml + model.bin. Errors name the file, operator or tensor and what was expected.
Model load_ir(const std::string& conf_path, const std::string& bin_path);
// Writes DIR/conf.yaml and DIR/model.bin (64-byte aligned offsets, `version:` key).
void save_ir(const Model& m, const std::string& dir);
// Serialises only the YAML (weights' offsets as they will be written by save_ir).
std::string ir_to_yaml(const Model& m);

// Checks structure: every tensor used is produced earlier (or is a weight/input), names unique,
// Input first / Output last. Throws ne::Error naming the operator and tensor.
void validate(const Model& m);

}  // namespace ne
