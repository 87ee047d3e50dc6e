// The only reader of the engine's environment variables above the kernels (executor/env.hpp
// lists them), and ExecOptions::from_env().
#include "executor/env.hpp"

#include <cstdlib>
#include <cstring>

#include "common/error.hpp"
#include "executor/executor.hpp"

namespace ne {
namespace env {

std::optional<float> sparse_threshold() {
  const char* e = std::getenv("NE_SPARSE_THRESHOLD");
  if (e && *e) return float(std::atof(e));
  return std::nullopt;
}

Dispatch dispatch() {
  const char* d = std::getenv("NE_DISPATCH");
  if (!d || !*d) return Dispatch::timed;
  const std::string v = d;
  if (v == "threshold") return Dispatch::threshold;
  if (v != "timed") fail("NE_DISPATCH='", v, "': expected 'timed' (default) or 'threshold'");
  return Dispatch::timed;
}

bool verbose() { return std::getenv("NE_VERBOSE") != nullptr; }

std::string ip_only() {
  const char* e = std::getenv("NE_IP_ONLY");
  return e ? std::string(e) : std::string();
}

std::string dense_matmul() {
  const char* e = std::getenv("NE_DENSE_MATMUL");
  return e ? std::string(e) : std::string();
}

std::string cache_dir() {
  const char* e = std::getenv("NE_CACHE_DIR");
  return e && *e ? e : "/dev/shm/neural_engine";
}

bool cache_verify() {
  const char* v = std::getenv("NE_CACHE_VERIFY");
  return !(v && std::strcmp(v, "0") == 0);
}

bool test_die_while_packing() { return std::getenv("NE_TEST_DIE_WHILE_PACKING") != nullptr; }

bool weight_sharing() {
  const char* e = std::getenv("WEIGHT_SHARING");
  return e && *e && std::strcmp(e, "0") != 0;
}

bool onednn_isa_set() { return std::getenv("ONEDNN_MAX_CPU_ISA") || std::getenv("DNNL_MAX_CPU_ISA"); }

}  // namespace env

ExecOptions ExecOptions::from_env() {
  ExecOptions eo;
  // As the front ends have always read it: set at all (even "") is a threshold, atof's value.
  // sparse_threshold_for() reads the variable again for an OpConfig left at -1, "" as unset.
  if (const char* e = std::getenv("NE_SPARSE_THRESHOLD")) eo.op.sparse_threshold = float(std::atof(e));
  eo.op.verbose = env::verbose();
  return eo;
}

}  // namespace ne
