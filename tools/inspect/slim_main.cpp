// neural_engine_slim: compile an ONNX model, run the slim pass (compile/passes/slim.hpp) and
// write the IR. Stand-in for `neural_engine_compile --slim` until that flag is hooked up; used
// by scripts/slim_bench.sh.
#include <gflags/gflags.h>

#include <cstdio>
#include <iostream>

#include "common/cli_flags.hpp"
#include "common/error.hpp"
#include "compile/compile.hpp"
#include "compile/passes/slim.hpp"

DEFINE_string(model, "", "ONNX model");
DEFINE_string(output_dir, "", "where conf.yaml and model.bin go");
DEFINE_bool(slim, true, "run the slim pass (false: plain compile, for comparison)");
DEFINE_bool(canonicalize_zeros, false, "replace -0.0 by +0.0 in InnerProduct weights first");

int main(int argc, char** argv) {
  NE_PARSE_COMMAND_LINE(&argc, &argv, "neural_engine_slim --model model.onnx --output_dir DIR [--slim=false]");
  try {
    NE_CHECK(!FLAGS_model.empty() && !FLAGS_output_dir.empty(), "give --model model.onnx --output_dir DIR");
    ne::Model m = ne::compile_onnx(FLAGS_model, {});
    if (FLAGS_canonicalize_zeros) std::cout << "canonicalize_zeros: " << ne::canonicalize_zeros(m) << " elements\n";
    if (FLAGS_slim) {
      ne::SlimStats st;
      ne::slim_model(m, &st);
      std::cout << st.summary() << "\n";
    }
    ne::save_ir(m, FLAGS_output_dir);
    std::cout << "wrote " << FLAGS_output_dir << "/conf.yaml + model.bin\n";
  } catch (const std::exception& e) {
    std::fprintf(stderr, "error: %s\n", e.what());
    return 1;
  }
  return 0;
}
