// The environment is read in one place per layer (kernels/env.cpp, executor/env.cpp; #25): the
// readers' values and errors, ExecOptions::from_env() as the front ends use it, the one portable
// switch, and a scan of the sources that fails when an NE_* variable is read in a second file.
#include <gtest/gtest.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <regex>
#include <set>
#include <sstream>
#include <string>

#include "common/error.hpp"
#include "executor/env.hpp"
#include "executor/executor.hpp"
#include "executor/ops/portable.hpp"
#include "kernels/env.hpp"

namespace {

// Sets (or, with nullptr, unsets) a variable for a scope; restores what was there.
struct ScopedEnv {
  std::string name, old;
  bool had = false;
  ScopedEnv(const char* n, const char* v) : name(n) {
    if (const char* e = std::getenv(n)) old = e, had = true;
    v ? setenv(n, v, 1) : unsetenv(n);
  }
  ~ScopedEnv() { had ? setenv(name.c_str(), old.c_str(), 1) : unsetenv(name.c_str()); }
};

TEST(Env, ExecOptionsFromEnvDefaults) {
  ScopedEnv t("NE_SPARSE_THRESHOLD", nullptr), v("NE_VERBOSE", nullptr);
  const ne::ExecOptions eo = ne::ExecOptions::from_env();
  EXPECT_LT(eo.op.sparse_threshold, 0.f);
  EXPECT_FALSE(eo.op.verbose);
  EXPECT_FALSE(ne::env::sparse_threshold().has_value());
}

TEST(Env, ExecOptionsFromEnvReadsThresholdAndVerbose) {
  ScopedEnv t("NE_SPARSE_THRESHOLD", "0.45"), v("NE_VERBOSE", "");
  const ne::ExecOptions eo = ne::ExecOptions::from_env();
  EXPECT_FLOAT_EQ(eo.op.sparse_threshold, 0.45f);
  EXPECT_TRUE(eo.op.verbose);  // set at all, even empty
  ASSERT_TRUE(ne::env::sparse_threshold().has_value());
  EXPECT_FLOAT_EQ(*ne::env::sparse_threshold(), 0.45f);
}

TEST(Env, DispatchValues) {
  {
    ScopedEnv d("NE_DISPATCH", nullptr);
    EXPECT_EQ(ne::env::dispatch(), ne::env::Dispatch::timed);
  }
  {
    ScopedEnv d("NE_DISPATCH", "");
    EXPECT_EQ(ne::env::dispatch(), ne::env::Dispatch::timed);
  }
  {
    ScopedEnv d("NE_DISPATCH", "threshold");
    EXPECT_EQ(ne::env::dispatch(), ne::env::Dispatch::threshold);
  }
  {
    ScopedEnv d("NE_DISPATCH", "x");
    try {
      ne::env::dispatch();
      ADD_FAILURE() << "NE_DISPATCH=x accepted";
    } catch (const ne::Error& e) {
      EXPECT_STREQ(e.what(), "NE_DISPATCH='x': expected 'timed' (default) or 'threshold'");
    }
  }
}

// Variables that tests toggle in-process are read at each call.
TEST(Env, ReadAtEachCall) {
  {
    ScopedEnv a("NE_ATTENTION_AMX", "0");
    EXPECT_TRUE(ne::kernels::env::attention_amx_disabled());
  }
  {
    ScopedEnv a("NE_ATTENTION_AMX", "1");
    EXPECT_FALSE(ne::kernels::env::attention_amx_disabled());
  }
  {
    ScopedEnv m("NE_DENSE_MATMUL", "sgemm"), o("NE_IP_ONLY", "dense");
    EXPECT_EQ(ne::env::dense_matmul(), "sgemm");
    EXPECT_EQ(ne::env::ip_only(), "dense");
  }
  {
    ScopedEnv m("NE_DENSE_MATMUL", nullptr), o("NE_IP_ONLY", nullptr);
    EXPECT_EQ(ne::env::dense_matmul(), "");
    EXPECT_EQ(ne::env::ip_only(), "");
  }
  {
    ScopedEnv d("NE_CACHE_DIR", ""), v("NE_CACHE_VERIFY", "0"), w("WEIGHT_SHARING", "0");
    EXPECT_EQ(ne::env::cache_dir(), "/dev/shm/neural_engine");
    EXPECT_FALSE(ne::env::cache_verify());
    EXPECT_FALSE(ne::env::weight_sharing());
  }
  {
    ScopedEnv d("NE_CACHE_DIR", "/tmp/x"), v("NE_CACHE_VERIFY", nullptr), w("WEIGHT_SHARING", "1");
    EXPECT_EQ(ne::env::cache_dir(), "/tmp/x");
    EXPECT_TRUE(ne::env::cache_verify());
    EXPECT_TRUE(ne::env::weight_sharing());
  }
}

// ne::dense::force_portable and ne::quant::force_portable are one switch.
TEST(Env, OnePortableSwitch) {
  ne::dense::force_portable(true);
  EXPECT_TRUE(ne::quant::portable_forced());
  ne::quant::force_portable(false);
  EXPECT_FALSE(ne::dense::portable_forced());
}

// Each NE_* variable is read (getenv("NE_...")) in one source file of the engine.
TEST(Env, EachVariableReadInOneFile) {
  namespace fs = std::filesystem;
  const fs::path root = NE_SOURCE_DIR;
  const std::regex re(R"(getenv\(\s*"(NE_[A-Z0-9_]+)\")");
  std::map<std::string, std::set<std::string>> where;
  for (const char* part : {"bin", "executor", "kernels", "common", "compile", "python", "tools", "report"}) {
    if (!fs::exists(root / part)) continue;
    for (const auto& f : fs::recursive_directory_iterator(root / part)) {
      const std::string ext = f.path().extension().string();
      if (!f.is_regular_file() || (ext != ".cpp" && ext != ".hpp" && ext != ".h" && ext != ".inc")) continue;
      std::ifstream in(f.path());
      std::stringstream ss;
      ss << in.rdbuf();
      const std::string text = ss.str();
      for (std::sregex_iterator it(text.begin(), text.end(), re), end; it != end; ++it)
        where[(*it)[1]].insert(fs::relative(f.path(), root).string());
    }
  }
  EXPECT_TRUE(where.count("NE_DISPATCH")) << "the scan found nothing: " << root;
  for (const auto& [var, files] : where) {
    std::string list;
    for (const auto& f : files) list += " " + f;
    EXPECT_EQ(files.size(), 1u) << var << " is read in" << list;
  }
}

}  // namespace
