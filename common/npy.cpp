#include "common/npy.hpp"

#include <cstring>
#include <fstream>
#include <iterator>

namespace ne {

namespace {
bool descr_to_dtype(const std::string& d, DType* t) {
  // '<f4', '|u1', '|i1', '<i4', '<i8', '|b1', '<f2', '<u2'(bf16 not in numpy)
  std::string s = d;
  if (s.size() < 2) return false;
  char order = s[0];
  if (order == '>') return false;  // big-endian unsupported
  std::string k = s.substr(1);
  if (k == "f4") *t = DType::fp32;
  else if (k == "f2") *t = DType::fp16;
  else if (k == "i1") *t = DType::s8;
  else if (k == "u1") *t = DType::u8;
  else if (k == "i4") *t = DType::int32;
  else if (k == "i8") *t = DType::int64;
  else if (k == "b1") *t = DType::boolean;
  else return false;
  return true;
}
const char* dtype_to_descr(DType t) {
  switch (t) {
    case DType::fp32: return "<f4";
    case DType::fp16: return "<f2";
    case DType::bf16: return "<u2";  // numpy has no bf16: raw uint16
    case DType::s8: return "|i1";
    case DType::u8: return "|u1";
    case DType::s32: case DType::int32: return "<i4";
    case DType::int64: return "<i8";
    case DType::boolean: return "|b1";
  }
  return "?";
}
// Finds the value text after 'key': in a python dict literal.
std::string dict_value(const std::string& h, const std::string& key, const std::string& what) {
  size_t p = h.find("'" + key + "'");
  NE_CHECK(p != std::string::npos, what, ": .npy header has no '", key, "'");
  p = h.find(':', p);
  NE_CHECK(p != std::string::npos, what, ": malformed .npy header");
  ++p;
  while (p < h.size() && h[p] == ' ') ++p;
  NE_CHECK(p < h.size(), what, ": malformed .npy header");
  if (h[p] == '\'') {
    size_t e = h.find('\'', p + 1);
    NE_CHECK(e != std::string::npos, what, ": malformed .npy header");
    return h.substr(p + 1, e - p - 1);
  }
  if (h[p] == '(') {
    size_t e = h.find(')', p);
    NE_CHECK(e != std::string::npos, what, ": malformed .npy header");
    return h.substr(p, e - p + 1);
  }
  size_t e = h.find_first_of(",}", p);
  NE_CHECK(e != std::string::npos, what, ": malformed .npy header");
  return h.substr(p, e - p);
}
}  // namespace

NpyArray parse_npy(const uint8_t* data, size_t size, const std::string& what) {
  static const char magic[] = "\x93NUMPY";
  NE_CHECK(size >= 10 && std::memcmp(data, magic, 6) == 0, what,
           ": not a .npy file (no \\x93NUMPY magic)");
  int major = data[6];
  size_t hlen, hstart;
  if (major == 1) {
    hlen = data[8] | (size_t(data[9]) << 8);
    hstart = 10;
  } else if (major == 2 || major == 3) {
    NE_CHECK(size >= 12, what, ": truncated .npy header");
    hlen = data[8] | (size_t(data[9]) << 8) | (size_t(data[10]) << 16) | (size_t(data[11]) << 24);
    hstart = 12;
  } else {
    fail(what, ": unsupported .npy version ", major);
  }
  NE_CHECK(hlen <= size - hstart, what, ": truncated .npy header");
  std::string h(reinterpret_cast<const char*>(data + hstart), hlen);
  NpyArray a;
  std::string descr = dict_value(h, "descr", what);
  NE_CHECK(descr_to_dtype(descr, &a.dtype), what, ": unsupported .npy dtype '", descr,
           "' (expected little-endian f4, f2, i1, u1, i4, i8 or b1)");
  std::string fo = dict_value(h, "fortran_order", what);
  NE_CHECK(fo.find("False") != std::string::npos, what, ": Fortran-order arrays are not supported");
  std::string sh = dict_value(h, "shape", what);
  NE_CHECK(sh.size() >= 2 && sh.front() == '(' && sh.back() == ')', what, ": malformed shape ", sh);
  std::string cur;
  for (size_t i = 1; i < sh.size(); ++i) {
    char c = sh[i];
    if (c == ',' || c == ')') {
      if (!cur.empty()) {
        char* end = nullptr;
        long long v = std::strtoll(cur.c_str(), &end, 10);
        NE_CHECK(end && *end == 0 && v >= 0, what, ": malformed shape ", sh);
        a.shape.push_back(v);
        NE_CHECK(a.shape.size() <= 16, what, ": rank exceeds 16");
      }
      cur.clear();
    } else if (c != ' ' && c != 'L') cur += c;
  }
  size_t off = hstart + hlen;
  int64_t n = 0;
  try {
    n = shape_numel(a.shape);
  } catch (const Error& e) {
    fail(what, ": shape ", shape_str(a.shape), ": ", e.what());
  }
  NE_CHECK(uint64_t(n) <= (size - off) / dtype_size(a.dtype), what, ": truncated .npy data: shape ",
           shape_str(a.shape), " needs ", uint64_t(n) * dtype_size(a.dtype), " bytes, file has ",
           size - off);
  size_t nb = size_t(n) * dtype_size(a.dtype);
  a.bytes.assign(data + off, data + off + nb);
  return a;
}

NpyArray read_npy(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  NE_CHECK(f.good(), path, ": cannot open");
  std::vector<uint8_t> buf((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
  return parse_npy(buf.data(), buf.size(), path);
}

void write_npy(const std::string& path, DType dt, const Shape& shape, const void* data) {
  std::string h = "{'descr': '" + std::string(dtype_to_descr(dt)) + "', 'fortran_order': False, 'shape': (";
  for (size_t i = 0; i < shape.size(); ++i) h += std::to_string(shape[i]) + (shape.size() == 1 || i + 1 < shape.size() ? "," : "");
  h += "), }";
  size_t total = 10 + h.size() + 1;
  size_t pad = (64 - total % 64) % 64;
  h += std::string(pad, ' ') + "\n";
  std::ofstream f(path, std::ios::binary | std::ios::trunc);
  NE_CHECK(f.good(), path, ": cannot open for writing");
  f.write("\x93NUMPY\x01\x00", 8);
  uint16_t hl = uint16_t(h.size());
  char b[2] = {char(hl & 0xff), char(hl >> 8)};
  f.write(b, 2);
  f.write(h.data(), std::streamsize(h.size()));
  f.write(static_cast<const char*>(data), std::streamsize(size_t(shape_numel(shape)) * dtype_size(dt)));
  NE_CHECK(f.good(), path, ": write failed");
}

}  // namespace ne
