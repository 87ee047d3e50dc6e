// Shared by the libFuzzer targets: temp files, and "build an Executor and run it once on small
// generated inputs" so that a model that loads also exercises operator validation.
//
// Contract checked: untrusted bytes give either success or an ne::Error. Any other exception
// (std::out_of_range from an unchecked .at(), std::invalid_argument from stoi, bad_alloc, ...)
// is a bug and aborts, so libFuzzer reports it. NE_FUZZ_ALLOW_STD=1 tolerates them (to keep
// fuzzing past a known, reported one).
#pragma once
#include <stdlib.h>
#include <unistd.h>

#include <cstdio>
#include <cstring>
#include <cstdlib>
#include <exception>
#include <fstream>
#include <map>
#include <string>

#include "common/error.hpp"
#include "common/ir.hpp"

#ifdef NE_FUZZ_RUN_MODELS
#include "executor/executor.hpp"
#endif

namespace ne_fuzz {

// One private directory per process (libFuzzer -fork/-jobs run several processes).
inline const std::string& temp_dir() {
  static std::string dir = [] {
    const char* base = std::getenv("TMPDIR");
    std::string t = std::string(base && *base ? base : "/tmp") + "/ne_fuzz_XXXXXX";
    if (!mkdtemp(&t[0])) std::abort();
    return t;
  }();
  return dir;
}

inline void write_file(const std::string& path, const uint8_t* p, size_t n) {
  std::ofstream f(path, std::ios::binary | std::ios::trunc);
  f.write(reinterpret_cast<const char*>(p), std::streamsize(n));
  if (!f.good()) std::abort();
}

inline bool allow_std() {
  static bool a = std::getenv("NE_FUZZ_ALLOW_STD") && std::getenv("NE_FUZZ_ALLOW_STD")[0] == '1';
  return a;
}

// Runs fn; ne::Error is an accepted outcome, any other exception aborts (a finding).
template <class F>
void expect_ok_or_error(F&& fn) {
  try {
    fn();
  } catch (const ne::Error&) {
  } catch (const std::exception& e) {
    if (allow_std()) return;
    std::fprintf(stderr, "\nFUZZ FINDING: non-ne::Error exception escaped: %s\n", e.what());
    std::abort();
  }
}

#ifdef NE_FUZZ_RUN_MODELS
// Memory bound for plans built from fuzzed models (libFuzzer's -rss_limit_mb must stay above).
constexpr size_t kActivationLimit = size_t(64) << 20;

// Small inputs for every model input: dynamic dims 2 (first) and 3 (others), ids 0/1.
inline bool make_inputs(const ne::Model& m, std::map<std::string, ne::HostTensor>* out) {
  for (auto& name : m.input_names()) {
    const ne::TensorInfo* t = m.find(name);
    ne::HostTensor h;
    h.dtype = t ? t->dtype : ne::DType::int64;
    ne::Shape s = t && t->has_shape ? t->shape : ne::Shape{-1, -1};
    int64_t n = 1;
    for (size_t i = 0; i < s.size(); ++i) {
      if (s[i] < 0) s[i] = i == 0 ? 2 : 3;
      if (s[i] > 4096) return false;
      n *= s[i];
      if (n > 4096) return false;  // keep runs fast: a declared big input is not run
    }
    h.shape = s;
    h.bytes.assign(size_t(n) * ne::dtype_size(h.dtype), 0);
    for (int64_t i = 0; i < n; ++i) {
      switch (h.dtype) {
        case ne::DType::fp32: { float v = float(i % 7) * 0.25f - 0.5f; std::memcpy(&h.bytes[4 * i], &v, 4); break; }
        case ne::DType::int32: case ne::DType::s32: { int32_t v = int32_t(i % 2); std::memcpy(&h.bytes[4 * i], &v, 4); break; }
        case ne::DType::int64: { int64_t v = i % 2; std::memcpy(&h.bytes[8 * i], &v, 8); break; }
        case ne::DType::u8: case ne::DType::s8: case ne::DType::boolean: h.bytes[size_t(i)] = uint8_t(i % 2); break;
        default: break;  // fp16/bf16: zeros
      }
    }
    (*out)[name] = std::move(h);
  }
  return true;
}

// Builds an Executor (operator init/validation) and runs it once.
inline void build_and_run(ne::Model m) {
  std::map<std::string, ne::HostTensor> in;
  if (!make_inputs(m, &in)) return;
  ne::ExecOptions eo;
  eo.max_activation_bytes = kActivationLimit;
  ne::Executor ex(std::move(m), eo);
  (void)ex.run(in);
}
#endif

}  // namespace ne_fuzz
