// The run summary shared by bin/neural_engine (--report_json) and the Python module
// (Graph.benchmark): one JSON layout for both.
#pragma once
#include <nlohmann/json.hpp>

#include <string>
#include <vector>

#include "executor/executor.hpp"

namespace ne {

// Nearest-rank percentile (p in 0..100) of v; 0 for an empty v.
double percentile(std::vector<double> v, double p);
double mean_of(const std::vector<double>& v);

// The per-operator table (kernel that ran, why, ms per iteration).
nlohmann::ordered_json profile_json(const std::vector<OpProfile>& prof, int iterations);

// The --report_json record of a timed run: `lat` holds one batch latency (ms) per iteration;
// `mapped_path` is the model.bin the weights were mapped from ("" for an in-memory model).
nlohmann::ordered_json run_report(const Executor& ex, int batch, int seq, int iterations,
                                  const std::vector<double>& lat, const std::string& mapped_path);

}  // namespace ne
