#include "report/run_report.hpp"

#include <omp.h>

#include <algorithm>
#include <cmath>

#include "common/proc_mem.hpp"
#include "executor/env.hpp"
#include "executor/weight_cache.hpp"
#include "report/cpu_report.hpp"

namespace ne {

// Nearest-rank percentile (p in 0..100) of v; 0 for an empty v.
double percentile(std::vector<double> v, double p) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  size_t i = size_t(std::ceil(p / 100.0 * double(v.size())));
  i = i == 0 ? 0 : i - 1;
  return v[std::min(i, v.size() - 1)];
}

double mean_of(const std::vector<double>& v) {
  double m = 0;
  for (double x : v) m += x;
  return v.empty() ? 0 : m / double(v.size());
}

// The per-operator table (kernel that ran, why, ms per iteration).
nlohmann::ordered_json profile_json(const std::vector<OpProfile>& prof, int iterations) {
  const int iters = std::max(1, iterations);
  double total = 0;
  for (auto& p : prof) total += p.total_ms;
  nlohmann::ordered_json a = nlohmann::ordered_json::array();
  for (auto& p : prof)
    a.push_back({{"name", p.name},
                 {"type", p.type},
                 {"kernel", p.kernel},
                 {"reason", p.reason},
                 {"ms_per_iter", p.total_ms / iters},
                 {"share", total > 0 ? p.total_ms / total : 0.0}});
  return a;
}

// The --report_json record of a timed run: `lat` holds one batch latency (ms) per iteration;
// `mapped_path` is the model.bin the weights were mapped from ("" for an in-memory model).
nlohmann::ordered_json run_report(const Executor& ex, int batch, int seq, int iterations,
                                         const std::vector<double>& lat, const std::string& mapped_path) {
  const double mean = mean_of(lat);
  MemoryStats ms = ex.memory();
  ProcMem pm = read_proc_mem(mapped_path);
  ProcMem pk = read_proc_mem(mapped_cache_paths());
  nlohmann::ordered_json j;
  j["batch"] = batch;
  j["seq"] = seq;
  j["threads"] = omp_get_max_threads();
  j["iterations"] = iterations;
  j["cpu"] = cpu_report();
  j["latency_ms"] = {{"mean", mean}, {"p50", percentile(lat, 50)}, {"p90", percentile(lat, 90)},
                     {"p99", percentile(lat, 99)}};
  j["latency_per_sample_ms"] = batch ? mean / batch : 0;
  j["throughput"] = mean > 0 ? 1000.0 * batch / mean : 0;
  j["memory"] = {{"weight_bytes", ms.weight_bytes},
                 {"weight_mapped_bytes", pm.file_size},
                 {"weight_resident_bytes", pm.file_rss},
                 {"weight_pss_bytes", pm.file_pss},
                 {"packed_mapped_bytes", pk.file_size},
                 {"packed_resident_bytes", pk.file_rss},
                 {"packed_pss_bytes", pk.file_pss},
                 {"packed_private_bytes", private_packed_bytes()},
                 {"weight_sharing", env::weight_sharing() ? 1 : 0},
                 {"private_bytes", pm.private_bytes},
                 {"rss_bytes", pm.rss},
                 {"arena_bytes", ms.arena_bytes},
                 {"peak_live_activation_bytes", ms.peak_live_bytes}};
  j["profile"] = profile_json(ex.profile(), iterations);
  return j;
}

}  // namespace ne
