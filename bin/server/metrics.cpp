#include "bin/server/metrics.hpp"

#include <algorithm>
#include <cstdio>

namespace ne {
namespace server {

namespace {
std::string num(double v) {
  char b[64];
  std::snprintf(b, sizeof b, "%.17g", v);
  return b;
}
}  // namespace

void Histogram::observe(double v) {
  std::lock_guard<std::mutex> g(mu_);
  size_t i = size_t(std::lower_bound(bounds_.begin(), bounds_.end(), v) - bounds_.begin());
  counts_[i]++;
  sum_ += v;
  count_++;
}

void Histogram::render(std::string& out, const std::string& name, const std::string& labels) const {
  std::lock_guard<std::mutex> g(mu_);
  const std::string sep = labels.empty() ? "" : ",";
  uint64_t cum = 0;
  for (size_t i = 0; i < bounds_.size(); ++i) {
    cum += counts_[i];
    out += name + "_bucket{" + labels + sep + "le=\"" + num(bounds_[i]) + "\"} " + std::to_string(cum) + "\n";
  }
  cum += counts_.back();
  out += name + "_bucket{" + labels + sep + "le=\"+Inf\"} " + std::to_string(cum) + "\n";
  out += name + "_sum{" + labels + "} " + num(sum_) + "\n";
  out += name + "_count{" + labels + "} " + std::to_string(count_) + "\n";
}

std::vector<double> latency_buckets() {
  return {0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1, 2, 5, 10, 30};
}

std::vector<double> batch_buckets(int max_batch) {
  std::vector<double> b;
  for (int v = 1; v < max_batch; v *= 2) b.push_back(v);
  b.push_back(std::max(1, max_batch));
  return b;
}

ModelMetrics::ModelMetrics(int max_batch)
    : latency(latency_buckets()),
      queue_time(latency_buckets()),
      batch_size(batch_buckets(max_batch)),
      batch_requests(batch_buckets(max_batch)) {}

}  // namespace server
}  // namespace ne
