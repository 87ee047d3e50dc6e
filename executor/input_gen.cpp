#include "executor/input_gen.hpp"

#include <algorithm>
#include <set>

namespace ne {

int64_t find_vocab(const Model& m, const std::string& input) {
  std::set<std::string> reach = {input};
  int64_t vocab = -1;
  for (auto& op : m.ops) {
    bool reads = false;
    for (auto& i : op.inputs) reads |= reach.count(i) > 0;
    if (!reads) continue;
    if (op.type == "Gather" && op.inputs.size() >= 2 && reach.count(op.inputs[1])) {
      const TensorInfo* t = m.find(op.inputs[0]);
      if (t && t->is_weight && !t->shape.empty() && op.attr_int("axis", 0) == 0)
        vocab = vocab < 0 ? t->shape[0] : std::min(vocab, t->shape[0]);
    } else if (op.type == "Cast" || op.type == "Reshape" || op.type == "Squeeze" ||
               op.type == "Unsqueeze" || op.type == "Flatten" || op.type == "Identity") {
      for (auto& o : op.outputs) reach.insert(o);
    }
  }
  return vocab;
}

std::map<std::string, HostTensor> generate_inputs(const Model& m, int batch, int seq, std::mt19937& rng) {
  std::map<std::string, HostTensor> r;
  for (auto& name : m.input_names()) {
    const TensorInfo* t = m.find(name);
    HostTensor h;
    h.dtype = t ? t->dtype : DType::int64;
    Shape s = t && t->has_shape ? t->shape : Shape{-1, -1};
    int dyn = 0;
    for (auto& d : s)
      if (d < 0) d = dyn++ == 0 ? batch : seq;
    NE_CHECK(dyn <= 2, "input '", name, "' has ", dyn, " dynamic dims: give it with real inputs (--input / --calib_dir)");
    h.shape = s;
    int64_t n = shape_numel(s);
    h.bytes.resize(size_t(n) * dtype_size(h.dtype));
    std::string l = name;
    std::transform(l.begin(), l.end(), l.begin(), ::tolower);
    bool is_mask = l.find("mask") != std::string::npos;
    bool is_type = l.find("token_type") != std::string::npos || l.find("segment") != std::string::npos;
    int64_t vocab = find_vocab(m, name);
    if (vocab <= 0) vocab = 2;
    for (int64_t i = 0; i < n; ++i) {
      int64_t iv = is_mask ? 1 : is_type ? 0 : int64_t(rng() % uint64_t(vocab));
      switch (h.dtype) {
        case DType::int64: h.ptr<int64_t>()[i] = iv; break;
        case DType::int32: case DType::s32: h.ptr<int32_t>()[i] = int32_t(iv); break;
        case DType::fp32: h.ptr<float>()[i] = is_mask ? 1.f : std::uniform_real_distribution<float>(-1, 1)(rng); break;
        case DType::u8: case DType::s8: case DType::boolean: h.bytes[size_t(i)] = uint8_t(is_mask ? 1 : iv & 1); break;
        default: fail("cannot generate input '", name, "' of dtype ", dtype_name(h.dtype));
      }
    }
    r[name] = std::move(h);
  }
  return r;
}

}  // namespace ne
