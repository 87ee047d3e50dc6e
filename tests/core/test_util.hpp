#pragma once
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <limits>
#include <string>
#include <vector>

#include "common/npy.hpp"
#include "executor/executor.hpp"

namespace ne_test {

inline std::string tmp_dir(const std::string& tag) {
  std::string d = std::string(::testing::TempDir()) + "ne_" + tag + "_" +
                  std::to_string(::getpid());
  std::string cmd = "rm -rf '" + d + "' && mkdir -p '" + d + "'";
  if (std::system(cmd.c_str()) != 0) ADD_FAILURE() << "cannot make " << d;
  return d;
}

inline void write_file(const std::string& path, const std::string& text) {
  std::ofstream f(path, std::ios::binary);
  f << text;
}

inline std::string read_file(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  return std::string((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
}

// Runs a command, returns its exit status; stdout+stderr into *out.
inline int run_cmd(const std::string& cmd, std::string* out) {
  std::string full = cmd + " 2>&1";
  FILE* p = popen(full.c_str(), "r");
  if (!p) return -1;
  char buf[4096];
  size_t n;
  out->clear();
  while ((n = fread(buf, 1, sizeof buf, p)) > 0) out->append(buf, n);
  int st = pclose(p);
  return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

// ---- Numeric comparisons that fail on a non-finite value ----
// A running maximum folded with std::max skips a NaN (std::max(m, NaN) is m: the comparison
// NaN > m is false), so an all-NaN output would "match" any reference; EXPECT_LE(err, tol) and
// EXPECT_GE(cosine, bar) are only safe when err / cosine carry the NaN through. These helpers
// do: any NaN or +-Inf on either side makes the result NaN, which fails every EXPECT_LE / _LT /
// _GE / _GT. Outputs compared bitwise are checked with all_finite() as well.

// One step of a running maximum that keeps a NaN (once NaN, stays NaN).
inline double max_keep_nan(double m, double x) {
  return std::isnan(m) || std::isnan(x) ? std::numeric_limits<double>::quiet_NaN() : (x > m ? x : m);
}

// max |a[i] - b[i]| over n values; NaN if any a[i] or b[i] is NaN or infinite.
template <class A, class B>
double max_abs_diff(const A* a, const B* b, int64_t n) {
  double d = 0;
  for (int64_t i = 0; i < n; ++i) {
    const double x = double(a[i]), y = double(b[i]);
    if (!std::isfinite(x) || !std::isfinite(y)) return std::numeric_limits<double>::quiet_NaN();
    d = std::max(d, std::fabs(x - y));
  }
  return d;
}

// Success if every value is finite, else a failure naming the first bad one and the count.
template <class T>
::testing::AssertionResult all_finite(const T* p, int64_t n) {
  int64_t bad = 0, first = -1;
  for (int64_t i = 0; i < n; ++i)
    if (!std::isfinite(double(p[i]))) bad += 1, first = first < 0 ? i : first;
  if (bad == 0) return ::testing::AssertionSuccess();
  return ::testing::AssertionFailure() << bad << " of " << n << " values not finite (first [" << first
                                       << "] = " << double(p[first]) << ")";
}

// An fp32 / bf16 tensor's values as double (other dtypes: empty; they cannot hold a NaN).
inline std::vector<double> float_values(const ne::HostTensor& t) {
  std::vector<double> v;
  if (t.dtype == ne::DType::fp32) {
    v.assign(t.ptr<float>(), t.ptr<float>() + t.numel());
  } else if (t.dtype == ne::DType::bf16) {
    v.resize(size_t(t.numel()));
    for (int64_t i = 0; i < t.numel(); ++i) {
      const uint32_t u = uint32_t(t.ptr<uint16_t>()[i]) << 16;
      float f;
      std::memcpy(&f, &u, 4);
      v[size_t(i)] = f;
    }
  }
  return v;
}

inline ::testing::AssertionResult all_finite(const ne::HostTensor& t) {
  const std::vector<double> v = float_values(t);
  return all_finite(v.data(), int64_t(v.size()));
}

// max |a - b| of two fp32 tensors of one shape; NaN if any value is not finite (see above). Other
// dtypes: 0 if the bytes are equal, else 1e30. A shape or dtype mismatch is a test failure here.
inline double max_abs_diff(const ne::HostTensor& a, const ne::HostTensor& b) {
  EXPECT_EQ(a.shape, b.shape);
  EXPECT_EQ(int(a.dtype), int(b.dtype));
  if (a.shape != b.shape || a.dtype != b.dtype) return 1e30;
  if (a.dtype != ne::DType::fp32) return a.bytes == b.bytes ? 0 : 1e30;
  return max_abs_diff(a.ptr<float>(), b.ptr<float>(), a.numel());
}

// Cosine similarity per row (last dim) of two fp32 tensors of one shape: the smallest and the mean.
// Both NaN if any value is not finite (a NaN row would otherwise be dropped by std::min).
inline void row_cosines(const ne::HostTensor& a, const ne::HostTensor& b, double* mn, double* mean) {
  const double nan = std::numeric_limits<double>::quiet_NaN();
  *mn = *mean = nan;
  EXPECT_EQ(a.shape, b.shape);
  EXPECT_EQ(int(a.dtype), int(ne::DType::fp32));
  EXPECT_EQ(int(b.dtype), int(ne::DType::fp32));
  if (a.shape != b.shape || a.dtype != ne::DType::fp32 || b.dtype != ne::DType::fp32) return;
  const int64_t H = a.shape.empty() ? 1 : a.shape.back(), T = H ? a.numel() / H : 0;
  double lo = 1, sum = 0;
  for (int64_t t = 0; t < T; ++t) {
    double ab = 0, aa = 0, bb = 0;
    for (int64_t h = 0; h < H; ++h) {
      const double x = a.ptr<float>()[t * H + h], y = b.ptr<float>()[t * H + h];
      if (!std::isfinite(x) || !std::isfinite(y)) return;
      ab += x * y, aa += x * x, bb += y * y;
    }
    const double c = ab / std::sqrt(aa * bb + 1e-30);
    lo = std::min(lo, c);
    sum += c;
  }
  *mn = lo;
  *mean = T ? sum / double(T) : 1;
}

// Smallest cosine similarity over the rows (last dim); NaN if any value is not finite.
inline double min_cosine(const ne::HostTensor& a, const ne::HostTensor& b) {
  double mn, mean;
  row_cosines(a, b, &mn, &mean);
  return mn;
}

}  // namespace ne_test
