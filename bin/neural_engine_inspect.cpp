// neural_engine_inspect: per-weight sparsity, the executor's sparse/dense decision, heatmaps and
// per-channel ranges of a model, as DIR/report.html (self-contained), DIR/report.json and a
// text summary. See tools/inspect/README.md.
#include <gflags/gflags.h>

#include <cstdio>
#include <cstdlib>
#include <iostream>

#include "common/cli_flags.hpp"
#include "common/error.hpp"
#include "executor/executor.hpp"
#include "tools/inspect/inspect.hpp"
#ifdef NE_HAVE_COMPILE
#include "compile/compile.hpp"
#include "compile/ne_dialect.hpp"
#include "compile/passes/slim.hpp"
#endif

DEFINE_string(model, "", "ONNX model to compile and inspect");
DEFINE_string(config, "", "IR conf.yaml (with --weight)");
DEFINE_string(weight, "", "IR model.bin");
DEFINE_string(output_dir, "inspect_out", "where report.html, report.json, heatmaps/ and ranges/ go");
DEFINE_double(threshold, -1, "sparse threshold as the executor uses it (default 0.7, env NE_SPARSE_THRESHOLD)");
DEFINE_double(spread_threshold, 10, "flag layers whose per-output-channel range spread is above this");
DEFINE_int32(max_image, 512, "largest heatmap / range plot side in pixels (bigger weights are averaged)");
DEFINE_bool(images, true, "build heatmaps and range plots");
DEFINE_bool(canonicalize_zeros, false, "replace -0.0 by +0.0 in InnerProduct weights first (ONNX only; as a compile pass would)");
DEFINE_bool(quiet, false, "no per-weight lines in the terminal summary");

int main(int argc, char** argv) {
  NE_PARSE_COMMAND_LINE(&argc, &argv,
                        "neural_engine_inspect --model model.onnx | --config conf.yaml --weight model.bin "
                        "--output_dir DIR [--threshold 0.7] [--spread_threshold 10]");
  try {
    ne::Model m;
    if (!FLAGS_model.empty()) {
#ifdef NE_HAVE_COMPILE
      m = ne::compile_onnx(FLAGS_model, {});
      if (FLAGS_canonicalize_zeros)
        std::cout << "canonicalize_zeros: " << ne::canonicalize_zeros(m) << " elements -0.0 -> +0.0\n";
      if (m.source.empty()) m.source = FLAGS_model;
#else
      ne::fail("--model: this build has no ONNX compiler; use --config/--weight");
#endif
    } else {
      NE_CHECK(!FLAGS_config.empty() && !FLAGS_weight.empty(),
               "give --model model.onnx, or --config conf.yaml --weight model.bin");
#ifdef NE_HAVE_COMPILE
      m = ne::load_model_ir(FLAGS_config, FLAGS_weight);  // a Neural Engine IR: lowered as the executor runs it
#else
      m = ne::load_ir(FLAGS_config, FLAGS_weight);
#endif
      if (m.source.empty()) m.source = FLAGS_config;
    }
    ne::inspect::Options o;
    // The executor's OpConfig as neural_engine builds it: flag, else env, else per-pattern defaults.
    o.op.sparse_threshold = ne::ExecOptions::from_env().op.sparse_threshold;
    if (FLAGS_threshold >= 0) o.op.sparse_threshold = float(FLAGS_threshold);
    o.spread_threshold = FLAGS_spread_threshold;
    o.max_image = std::max(16, FLAGS_max_image);
    o.images = FLAGS_images;
    ne::inspect::Report r = ne::inspect::inspect_model(m, o);
    ne::inspect::write_report(r, FLAGS_output_dir);
    std::string s = ne::inspect::summary_text(r, FLAGS_output_dir);
    if (FLAGS_quiet) s = s.substr(s.find("InnerProduct weights:"));
    std::cout << s;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "error: %s\n", e.what());
    return 1;
  }
  return 0;
}
