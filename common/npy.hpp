// numpy .npy reader/writer (format 1.0/2.0/3.0, little-endian, C order).
#pragma once
#include <string>
#include <vector>

#include "common/dtype.hpp"

namespace ne {

struct NpyArray {
  DType dtype = DType::fp32;
  Shape shape;
  std::vector<uint8_t> bytes;
  int64_t numel() const { return shape_numel(shape); }
};

// Throws ne::Error naming the file and what was expected.
NpyArray read_npy(const std::string& path);
NpyArray parse_npy(const uint8_t* data, size_t size, const std::string& what);
void write_npy(const std::string& path, DType dt, const Shape& shape, const void* data);

}  // namespace ne
