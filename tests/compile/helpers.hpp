// Shared helpers for the compiler tests: fixtures, running a Model, comparing outputs.
#pragma once
#include <dirent.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <map>
#include <string>
#include <vector>

#include "common/npy.hpp"
#include "compile/compile.hpp"
#include "executor/executor.hpp"
#include "tests/core/test_util.hpp"  // max_abs_diff, all_finite, min_cosine (NaN fails)

namespace ne_test {

inline std::string fixture_dir(const std::string& name) {
  return std::string(NE_TEST_DATA) + "/models/" + name;
}
inline bool has_fixture(const std::string& name) {
  FILE* f = std::fopen((fixture_dir(name) + "/model.onnx").c_str(), "rb");
  if (f) std::fclose(f);
  return f != nullptr;
}
// The fixtures are checked in (tests/data/models, made by scripts/gen_fixtures.sh): a missing one is a
// broken checkout, so the test fails (ASSERT: it returns from the current function) instead of
// skipping.
#define NE_REQUIRE_FIXTURE(name)                                              \
  ASSERT_TRUE(ne_test::has_fixture(name))                                     \
      << "fixture " << (name) << " missing: " << ne_test::fixture_dir(name)   \
      << "/model.onnx (tests/data/models is checked in)"

inline ne::HostTensor to_host(const ne::NpyArray& a) {
  ne::HostTensor h;
  h.dtype = a.dtype;
  h.shape = a.shape;
  h.bytes = a.bytes;
  return h;
}

// inputs/<name>.npy of a fixture, by name.
inline std::map<std::string, ne::HostTensor> fixture_inputs(const std::string& name) {
  std::map<std::string, ne::HostTensor> r;
  std::string dir = fixture_dir(name) + "/inputs";
  DIR* d = opendir(dir.c_str());
  if (!d) return r;
  while (dirent* e = readdir(d)) {
    std::string f = e->d_name;
    if (f.size() > 4 && f.substr(f.size() - 4) == ".npy")
      r[f.substr(0, f.size() - 4)] = to_host(ne::read_npy(dir + "/" + f));
  }
  closedir(d);
  return r;
}

// Only the inputs the model declares (a fixture may hold more).
inline std::map<std::string, ne::HostTensor> inputs_for(const ne::Model& m,
                                                        const std::map<std::string, ne::HostTensor>& all) {
  std::map<std::string, ne::HostTensor> r;
  for (auto& n : m.input_names()) {
    auto it = all.find(n);
    if (it != all.end()) r[n] = it->second;
  }
  return r;
}

inline std::vector<ne::HostTensor> run_model(const ne::Model& m,
                                             const std::map<std::string, ne::HostTensor>& in) {
  ne::Executor ex(m);
  return ex.run(inputs_for(m, in));
}

inline std::map<std::string, int> op_counts(const ne::Model& m) {
  std::map<std::string, int> c;
  for (auto& op : m.ops) c[op.type]++;
  return c;
}
inline int count_of(const ne::Model& m, const std::string& type) {
  int n = 0;
  for (auto& op : m.ops) n += op.type == type;
  return n;
}
inline std::string counts_str(const ne::Model& m) {
  std::string s;
  for (auto& kv : op_counts(m)) s += kv.first + ":" + std::to_string(kv.second) + " ";
  return s;
}

}  // namespace ne_test
