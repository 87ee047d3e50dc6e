#pragma once
#include <string>

#include "common/dtype.hpp"

namespace ne {

// A tensor at run time: a view (the executor owns the memory).
struct Tensor {
  std::string name;
  DType dtype = DType::fp32;
  Shape shape;
  void* data = nullptr;
  // true for weights and for tensors computed at plan time from weights and shapes
  // (Shape -> Gather -> Concat ... chains): their data is valid during reshape().
  bool is_const = false;

  int64_t numel() const { return shape_numel(shape); }
  size_t nbytes() const { return size_t(numel()) * dtype_size(dtype); }
  int64_t dim(int i) const { return shape[i < 0 ? int(shape.size()) + i : i]; }
  int rank() const { return int(shape.size()); }
  template <class T> T* ptr() const { return static_cast<T*>(data); }
};

}  // namespace ne
